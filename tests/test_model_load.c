/* Unit tests of the model loader: a small c4 model with every layer kind
 * loads with the right shapes, defaults and weight layouts (OIHW -> OHWI,
 * dense CHW -> HWC, F16 widened); each validation error gives its code and
 * a message naming the file, line, layer and values; truncated or corrupted
 * files fail cleanly; and loading from a directory on disk. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_model.h"
#include "pd_test.h"

#define YAML_NAME "test/model.yaml"
#define WEIGHTS_NAME "test/weights.safetensors"

/* ---- the valid model ---- */

static const char k_yaml[] =
    "format: 1\n"
    "name: test-c4\n"
    "version: \"1.0\"\n"
    "classes: [alpha, beta, gamma]\n"
    "symmetry: c4\n"
    "input:\n"
    "  mean: 0.05\n"
    "  std: 0.15\n"
    "branches:\n"
    "  - name: a\n"
    "    input: {kind: image, size: 12, rescale: fit, fit_size: 10}\n"
    "    layers:\n"
    "      - {type: cyclic_slice}\n"
    "      - {type: conv, filters: 2, kernel: 3}\n"
    "      - {type: maxpool}\n"
    "      - {type: cyclic_roll}\n"
    "      - type: conv\n"
    "        filters: 4\n"
    "        kernel: 3\n"
    "        pad: 0\n"
    "        activation: none\n"
    "      - {type: dense, units: 6, name: a_fc, activation: leaky_relu, slope: 0}\n"
    "      - {type: maxout}\n"
    "      - {type: cyclic_roll}\n"
    "      - {type: cyclic_pool, mode: rms}\n"
    "  - name: b\n"
    "    input: {kind: image, size: 8, rescale: fixed, factor: 2.5}\n"
    "    layers:\n"
    "      - {type: cyclic_slice}\n"
    "      - {type: conv, filters: 3, kernel: 2, stride: 2}\n"
    "      - {type: leaky_relu, slope: 0.1}\n"
    "      - {type: global_avg_pool}\n"
    "      - {type: cyclic_pool, mode: max}\n"
    "  - name: size\n"
    "    input: {kind: size_features, features: [log_long, log_short, log_area]}\n"
    "    layers: []\n"
    "head:\n"
    "  layers:\n"
    "    - {type: dense, units: 5, activation: leaky_relu}\n"
    "    - {type: dropout, rate: 0.25}\n"
    "    - {type: dense, units: 3}\n"
    "    - {type: softmax}\n"
    "tta:\n"
    "  count: 4\n"
    "  zoom: [0.8, 1.25]\n"
    "  flip: false\n";

typedef struct tspec {
  const char *name, *dtype;
  int ndim;
  long long shape[4];
} tspec;

#define N_TENSORS 12
static const tspec k_tensors[N_TENSORS] = {
    {"a.1.weight", "F32", 4, {2, 1, 3, 3}}, {"a.1.bias", "F32", 1, {2}},
    {"a.4.weight", "F32", 4, {4, 8, 3, 3}}, {"a.4.bias", "F32", 1, {4}},
    {"a_fc.weight", "F32", 2, {6, 36}},     {"a_fc.bias", "F32", 1, {6}},
    {"b.1.weight", "F16", 4, {3, 1, 2, 2}}, {"b.1.bias", "F16", 1, {3}},
    {"head.0.weight", "F32", 2, {5, 18}},   {"head.0.bias", "F32", 1, {5}},
    {"head.2.weight", "F16", 2, {3, 5}},    {"head.2.bias", "F32", 1, {3}},
};

/* ---- building weights ---- */

static size_t dtype_size(const char *dtype) {
  if (!strcmp(dtype, "F16") || !strcmp(dtype, "I16")) return 2;
  if (!strcmp(dtype, "U8")) return 1;
  return 4;
}

/* Every value is a multiple of 1/8 in [-3.75, 3.75]: exact in F16 and F32. */
static float pattern(size_t i) {
  return (float)((int)(i % 61) - 30) * 0.125f;
}

static uint16_t to_half(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  int e = (int)((b >> 23) & 0xff) - 127 + 15;
  return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((b >> 13) & 0x3ff));
}

static size_t numel(const tspec *t) {
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= (size_t)t->shape[d];
  return n;
}

/* Tensor k holds pattern(1000*k + i). */
static unsigned char *build_weights(const tspec *ts, int n, size_t *len) {
  char header[8192];
  size_t hl = 0, off = 0, offs[32];
  hl += (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int k = 0; k < n; k++) {
    size_t nb = numel(&ts[k]) * dtype_size(ts[k].dtype);
    hl += (size_t)snprintf(header + hl, sizeof header - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                           ts[k].name, ts[k].dtype);
    for (int d = 0; d < ts[k].ndim; d++)
      hl +=
          (size_t)snprintf(header + hl, sizeof header - hl, "%s%lld", d ? "," : "", ts[k].shape[d]);
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                           off + nb);
    offs[k] = off;
    off += nb;
  }
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
  while (hl % 8)
    header[hl++] = ' ';
  *len = 8 + hl + off;
  unsigned char *buf = calloc(1, *len);
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  for (int k = 0; k < n; k++) {
    unsigned char *p = buf + 8 + hl + offs[k];
    for (size_t i = 0; i < numel(&ts[k]); i++) {
      float v = pattern(1000 * (size_t)k + i);
      uint16_t h = to_half(v);
      int32_t iv = (int32_t)i;
      if (!strcmp(ts[k].dtype, "F32"))
        memcpy(p + 4 * i, &v, 4);
      else if (!strcmp(ts[k].dtype, "F16"))
        memcpy(p + 2 * i, &h, 2);
      else if (!strcmp(ts[k].dtype, "I32"))
        memcpy(p + 4 * i, &iv, 4);
    }
  }
  return buf;
}

static int load(const char *yaml, const tspec *ts, int n, pd_model **m, pd_error *err) {
  size_t len;
  unsigned char *w = build_weights(ts, n, &len);
  int rc = pd_model_load_mem(yaml, strlen(yaml), YAML_NAME, w, len, WEIGHTS_NAME, m, err);
  free(w);
  return rc;
}

/* k_yaml with the first `from` replaced by `to` (NULL if `from` is missing). */
static char *yaml_with(const char *from, const char *to) {
  const char *at = strstr(k_yaml, from);
  if (!at) return NULL;
  size_t n = strlen(k_yaml) - strlen(from) + strlen(to) + 1;
  char *s = malloc(n);
  size_t head = (size_t)(at - k_yaml);
  memcpy(s, k_yaml, head);
  strcpy(s + head, to);
  strcat(s, at + strlen(from));
  return s;
}

static int line_of(const char *text, const char *needle) {
  const char *at = strstr(text, needle);
  if (!at) return -1;
  int line = 1;
  for (const char *p = text; p < at; p++)
    line += *p == '\n';
  return line;
}

static void check_shape(pd_test_state *st, pd_shape s, int v, int h, int w, int c,
                        const char *what) {
  int ok = s.views == v && s.h == h && s.w == w && s.c == c;
  st->checks++;
  if (!ok) {
    st->failures++;
    fprintf(stderr, "%s: shape %dx%dx%dx%d, want %dx%dx%dx%d\n", what, s.views, s.h, s.w, s.c, v, h,
            w, c);
  }
}

/* Expects the YAML (k_yaml with one replacement) to fail with code and the needles. */
static void expect_yaml_error(pd_test_state *st, const char *from, const char *to, int code,
                              const char *n1, const char *n2, const char *n3) {
  char *yaml = yaml_with(from, to);
  PD_CHECK(st, yaml != NULL);
  if (!yaml) {
    fprintf(stderr, "  test YAML lacks '%s'\n", from);
    return;
  }
  pd_model *m = (pd_model *)1;
  pd_error err = {0};
  int rc = load(yaml, k_tensors, N_TENSORS, &m, &err);
  if (rc != code) fprintf(stderr, "  replacing '%s': %s\n", from, err.msg);
  PD_CHECK_INT(st, rc, code);
  PD_CHECK_INT(st, err.code, code);
  PD_CHECK(st, m == NULL);
  PD_CHECK_CONTAINS(st, err.msg, "test/");
  if (n1) PD_CHECK_CONTAINS(st, err.msg, n1);
  if (n2) PD_CHECK_CONTAINS(st, err.msg, n2);
  if (n3) PD_CHECK_CONTAINS(st, err.msg, n3);
  if (rc == PD_OK) pd_model_free(m);
  free(yaml);
}

/* "test/model.yaml:<line of needle in the modified YAML>:" */
static const char *at_line(char *buf, size_t cap, const char *from, const char *to,
                           const char *needle) {
  char *yaml = yaml_with(from, to);
  snprintf(buf, cap, YAML_NAME ":%d:", yaml ? line_of(yaml, needle) : -1);
  free(yaml);
  return buf;
}

/* ---- the valid model ---- */

static void check_structure(pd_test_state *st, const pd_model *m) {
  PD_CHECK(st, !strcmp(m->name, "test-c4") && !strcmp(m->version, "1.0"));
  PD_CHECK_INT(st, m->n_classes, 3);
  PD_CHECK(st, !strcmp(m->classes[0], "alpha") && !strcmp(m->classes[2], "gamma"));
  PD_CHECK_INT(st, m->symmetry, PD_SYM_C4);
  PD_CHECK_INT(st, m->views, 4);
  PD_CHECK(st, m->input.invert);
  PD_CHECK_NEAR(st, m->input.background, 255, 0);
  PD_CHECK_NEAR(st, m->input.mean, 0.05, 1e-7);
  PD_CHECK_NEAR(st, m->input.std, 0.15, 1e-7);
  PD_CHECK_INT(st, m->n_branches, 3);
  const pd_input_branch *a = &m->branches[0], *b = &m->branches[1], *sz = &m->branches[2];
  PD_CHECK(st, !strcmp(a->name, "a") && !strcmp(b->name, "b") && !strcmp(sz->name, "size"));
  PD_CHECK_INT(st, a->kind, PD_INPUT_IMAGE);
  PD_CHECK_INT(st, a->size, 12);
  PD_CHECK_INT(st, a->rescale, PD_RESCALE_FIT);
  PD_CHECK_NEAR(st, a->fit_size, 10, 0);
  PD_CHECK_INT(st, b->rescale, PD_RESCALE_FIXED);
  PD_CHECK_NEAR(st, b->factor, 2.5, 0);
  PD_CHECK_INT(st, sz->kind, PD_INPUT_SIZE_FEATURES);
  PD_CHECK_INT(st, sz->n_features, 3);
  PD_CHECK_INT(st, sz->features[2], PD_FEAT_LOG_AREA);
  PD_CHECK_INT(st, m->graph.branches[2].n_layers, 0);
  PD_CHECK_INT(st, pd_model_branch_input_len(m, 0), 144);
  PD_CHECK_INT(st, pd_model_branch_input_len(m, 1), 64);
  PD_CHECK_INT(st, pd_model_branch_input_len(m, 2), 3);
  PD_CHECK_INT(st, pd_model_branch_input_len(m, 3), 0);
  PD_CHECK_INT(st, m->tta.count, 4);
  PD_CHECK_NEAR(st, m->tta.zoom_min, 0.8, 1e-7);
  PD_CHECK_NEAR(st, m->tta.zoom_max, 1.25, 1e-7);
  PD_CHECK_NEAR(st, m->tta.rotation_max, 360, 0);
  PD_CHECK(st, !m->tta.flip);
  PD_CHECK(st, m->dir[0] == '\0');
}

static void check_layers(pd_test_state *st, const pd_model *m) {
  const pd_graph_branch *a = &m->graph.branches[0], *b = &m->graph.branches[1];
  PD_CHECK_INT(st, a->n_layers, 9);
  PD_CHECK_INT(st, b->n_layers, 5);
  PD_CHECK_INT(st, m->graph.n_head, 4);
  if (a->n_layers != 9 || b->n_layers != 5 || m->graph.n_head != 4) return;
  const pd_layer *L = a->layers;
  PD_CHECK(st, !strcmp(L[0].name, "a.0") && !strcmp(L[5].name, "a_fc") &&
                   !strcmp(L[8].name, "a.8") && !strcmp(m->graph.head[3].name, "head.3"));
  PD_CHECK_INT(st, L[0].line, line_of(k_yaml, "{type: cyclic_slice}"));
  PD_CHECK_INT(st, L[4].line, line_of(k_yaml, "type: conv\n"));
  check_shape(st, a->in, 1, 12, 12, 1, "a.in");
  check_shape(st, L[0].in, 1, 12, 12, 1, "a.0.in");
  check_shape(st, L[0].out, 4, 12, 12, 1, "a.0.out");
  check_shape(st, L[1].out, 4, 12, 12, 2, "a.1.out");
  check_shape(st, L[2].out, 4, 5, 5, 2, "a.2.out");
  check_shape(st, L[3].out, 4, 5, 5, 8, "a.3.out");
  check_shape(st, L[4].out, 4, 3, 3, 4, "a.4.out");
  check_shape(st, L[5].in, 4, 3, 3, 4, "a_fc.in");
  check_shape(st, L[5].out, 4, 1, 1, 6, "a_fc.out");
  check_shape(st, L[6].out, 4, 1, 1, 3, "a.6.out");
  check_shape(st, L[7].out, 4, 1, 1, 12, "a.7.out");
  check_shape(st, L[8].out, 1, 1, 1, 12, "a.8.out");
  check_shape(st, a->out, 1, 1, 1, 12, "a.out");
  check_shape(st, b->layers[1].out, 4, 5, 5, 3, "b.1.out");
  check_shape(st, b->layers[3].out, 4, 1, 1, 3, "b.3.out");
  check_shape(st, b->out, 1, 1, 1, 3, "b.out");
  check_shape(st, m->graph.branches[2].out, 1, 1, 1, 3, "size.out");
  PD_CHECK_INT(st, m->graph.head_in, 18);
  check_shape(st, m->graph.head[0].in, 1, 1, 1, 18, "head.0.in");
  check_shape(st, m->graph.head[3].out, 1, 1, 1, 3, "head.3.out");
  /* defaults and parameters */
  PD_CHECK_INT(st, L[1].pad, 1);
  PD_CHECK_INT(st, L[1].stride, 1);
  PD_CHECK_INT(st, L[1].activation, PD_ACT_LEAKY_RELU);
  PD_CHECK_NEAR(st, L[1].slope, 0.01, 1e-7);
  PD_CHECK_INT(st, L[2].pool_size, 3);
  PD_CHECK_INT(st, L[2].pool_stride, 2);
  PD_CHECK_INT(st, L[4].pad, 0);
  PD_CHECK_INT(st, L[4].activation, PD_ACT_NONE);
  PD_CHECK_INT(st, L[5].activation, PD_ACT_LEAKY_RELU);
  PD_CHECK_NEAR(st, L[5].slope, 0, 0);
  PD_CHECK_INT(st, L[6].pieces, 2);
  PD_CHECK_INT(st, L[8].cpool_mode, PD_CPOOL_RMS);
  PD_CHECK_INT(st, b->layers[1].pad, 1);
  PD_CHECK_INT(st, b->layers[1].stride, 2);
  PD_CHECK_NEAR(st, b->layers[2].slope, 0.1, 1e-7);
  PD_CHECK_INT(st, b->layers[4].cpool_mode, PD_CPOOL_MAX);
  PD_CHECK_INT(st, m->graph.head[0].activation, PD_ACT_LEAKY_RELU);
  PD_CHECK_INT(st, m->graph.head[2].activation, PD_ACT_NONE);
  PD_CHECK_NEAR(st, m->graph.head[1].dropout_rate, 0.25, 0);
  PD_CHECK_INT(st, m->graph.head[3].kind, PD_LAYER_SOFTMAX);
  PD_CHECK(st, !strcmp(pd_layer_kind_name(PD_LAYER_GLOBAL_AVG_POOL), "global_avg_pool"));
  PD_CHECK(st, !strcmp(pd_layer_kind_name(PD_LAYER_KIND_COUNT), "unknown"));
}

static void check_weights(pd_test_state *st, const pd_model *m) {
  const pd_layer *L = m->graph.branches[0].layers;
  size_t params = 0;
  for (int k = 0; k < N_TENSORS; k++)
    params += numel(&k_tensors[k]);
  PD_CHECK_INT(st, m->n_params, params);
  PD_CHECK_NEAR(st, pd_model_flops_per_image(m), 45810, 0);
  PD_CHECK(st, L[0].weight == NULL && L[2].weight == NULL && m->graph.head[3].bias == NULL);
  PD_CHECK_INT(st, L[4].weight_len, 288);
  PD_CHECK_INT(st, L[4].bias_len, 4);
  PD_CHECK_INT(st, (uintptr_t)L[4].weight % 64, 0);
  PD_CHECK(st, L[1].weight >= m->weights && m->graph.head[2].bias > m->weights);
  /* conv a.4: OIHW [4][8][3][3] -> OHWI [4][3][3][8]; torch (1,5,2,0) = 123 -> engine 125 */
  PD_CHECK_NEAR(st, L[4].weight[125], pattern(2000 + 123), 0);
  int bad = 0;
  for (int o = 0; o < 4; o++)
    for (int c = 0; c < 8; c++)
      for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
          bad += L[4].weight[((o * 3 + y) * 3 + x) * 8 + c] !=
                 pattern(2000 + (size_t)(((o * 8 + c) * 3 + y) * 3 + x));
  PD_CHECK_INT(st, bad, 0);
  for (int i = 0; i < 4; i++)
    PD_CHECK_NEAR(st, L[4].bias[i], pattern(3000 + (size_t)i), 0);
  /* dense a_fc on 3x3x4: torch column c*9 + y*3 + x -> engine (y*3 + x)*4 + c;
   * unit 2, (c, y, x) = (1, 2, 0): torch column 15 -> engine column 25 */
  PD_CHECK_NEAR(st, L[5].weight[2 * 36 + 25], pattern(4000 + 2 * 36 + 15), 0);
  bad = 0;
  for (int u = 0; u < 6; u++)
    for (int c = 0; c < 4; c++)
      for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
          bad += L[5].weight[u * 36 + (y * 3 + x) * 4 + c] !=
                 pattern(4000 + (size_t)(u * 36 + c * 9 + y * 3 + x));
  PD_CHECK_INT(st, bad, 0);
  /* flat dense input: unchanged */
  bad = 0;
  for (int i = 0; i < 90; i++)
    bad += m->graph.head[0].weight[i] != pattern(8000 + (size_t)i);
  PD_CHECK_INT(st, bad, 0);
  /* F16 tensors widened (b.1 has C = 1, so OHWI = OIHW) */
  bad = 0;
  for (int i = 0; i < 12; i++)
    bad += m->graph.branches[1].layers[1].weight[i] != pattern(6000 + (size_t)i);
  for (int i = 0; i < 3; i++)
    bad += m->graph.branches[1].layers[1].bias[i] != pattern(7000 + (size_t)i);
  for (int i = 0; i < 15; i++)
    bad += m->graph.head[2].weight[i] != pattern(10000 + (size_t)i);
  PD_CHECK_INT(st, bad, 0);
  PD_CHECK_NEAR(st, m->graph.head[2].weight[1], pattern(10001), 0);
}

static void test_valid_model(pd_test_state *st) {
  pd_model *m = NULL;
  pd_error err = {0};
  int rc = load(k_yaml, k_tensors, N_TENSORS, &m, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  check_structure(st, m);
  check_layers(st, m);
  check_weights(st, m);
  pd_model_free(m);
  pd_model_free(NULL);
  /* tensor order in the file does not matter */
  tspec rev[N_TENSORS];
  for (int k = 0; k < N_TENSORS; k++)
    rev[k] = k_tensors[N_TENSORS - 1 - k];
  PD_CHECK_INT(st, load(k_yaml, rev, N_TENSORS, &m, &err), PD_OK);
  pd_model_free(m);
}

/* ---- description errors ---- */

static void test_yaml_errors(pd_test_state *st) {
  char line[64];
  expect_yaml_error(st, "{type: maxpool}", "{type: avgpool}", PD_EINVAL,
                    at_line(line, sizeof line, "{type: maxpool}", "{type: avgpool}", "avgpool"),
                    "branches[0].layers[2].type: unknown layer type 'avgpool'",
                    "known types: cyclic_slice, conv, leaky_relu, maxpool, cyclic_roll, "
                    "cyclic_pool, dense, maxout, global_avg_pool, dropout, softmax");
  expect_yaml_error(st, "{type: conv, filters: 2, kernel: 3}",
                    "{type: conv, filters: 2, kernel: 3, dilation: 2}", PD_EINVAL,
                    "branches[0].layers[1]: unknown key 'dilation'", "allowed: type, name, filters",
                    at_line(line, sizeof line, "{type: conv, filters: 2, kernel: 3}",
                            "{type: conv, filters: 2, kernel: 3, dilation: 2}", "dilation"));
  expect_yaml_error(st, "{type: conv, filters: 2, kernel: 3}", "{type: conv, kernel: 3}", PD_EINVAL,
                    "branches[0].layers[1]: missing required key 'filters'", NULL, NULL);
  expect_yaml_error(st, "        filters: 4\n", "        filters: abc\n", PD_EINVAL,
                    "test/model.yaml:18: branches[0].layers[4].filters: expected a positive "
                    "integer, got 'abc'",
                    NULL, NULL);
  expect_yaml_error(st, "        kernel: 3\n", "        kernel: \"3\"\n", PD_EINVAL,
                    "branches[0].layers[4].kernel",
                    "expected a positive integer, got the quoted string '3'", NULL);
  expect_yaml_error(st, "units: 6,", "units: 100000,", PD_ELIMIT,
                    "branches[0].layers[5].units: expected an integer in 1..65536, got '100000'",
                    NULL, NULL);
  expect_yaml_error(st, "{type: dropout, rate: 0.25}", "{type: dropout, rate: 1}", PD_EINVAL,
                    "head.layers[1].rate", "rate < 1", NULL);
  expect_yaml_error(st, "format: 1\n", "format: 2\n", PD_EUNSUPP,
                    "test/model.yaml:1: format: 2 is not supported (only format 1)", NULL, NULL);
  expect_yaml_error(st, "format: 1\n", "format: 1\nformat: 1\n", PD_EINVAL,
                    "duplicate key 'format'", NULL, NULL);
  expect_yaml_error(st, "name: test-c4\n", "name: test c4!\n", PD_EINVAL, "test/model.yaml:2: name",
                    "'test c4!'", "[A-Za-z0-9._-]");
  expect_yaml_error(st, "version: \"1.0\"\n", "", PD_EINVAL, "missing required key 'version'", NULL,
                    NULL);
  expect_yaml_error(st, "format: 1\n", "format: 1\nextra: 1\n", PD_EINVAL,
                    "test/model.yaml:2: unknown key 'extra'", "allowed: format, name", NULL);
  expect_yaml_error(st, "  std: 0.15\n", "  std: 0\n", PD_EINVAL, "test/model.yaml:8: input.std",
                    "> 0, got 0", NULL);
  expect_yaml_error(st, "fit_size: 10}", "fit_size: 10, factor: 2}", PD_EINVAL,
                    "branches[0].input: unknown key 'factor'", NULL, NULL);
  expect_yaml_error(st, "rescale: fixed, factor: 2.5}", "rescale: fixed}", PD_EINVAL,
                    "branches[1].input: missing required key 'factor'", NULL, NULL);
  expect_yaml_error(st, "size: 12,", "size: 2000,", PD_ELIMIT, "branches[0].input.size", "1..1024",
                    "'2000'");
  expect_yaml_error(st, "[log_long, log_short, log_area]", "[log_long, log_long]", PD_EINVAL,
                    "branches[2].input.features[1]: duplicate feature 'log_long'", NULL, NULL);
  /* features a quarter turn changes: refused under c4 and d4, allowed under none */
  expect_yaml_error(st, "[log_long, log_short, log_area]", "[log_long, log_width]", PD_EINVAL,
                    "branches[2].input.features[1]: 'log_width' is not invariant under symmetry c4",
                    "log_long, log_short, log_area or log_elongation", NULL);
  expect_yaml_error(st, "[log_long, log_short, log_area]", "[aspect]", PD_EINVAL,
                    "branches[2].input.features[0]: 'aspect' is not invariant under symmetry c4",
                    NULL, NULL);
  expect_yaml_error(st, "  - name: b\n", "  - name: a\n", PD_EINVAL,
                    "branch name 'a' is used twice", NULL, NULL);
  expect_yaml_error(st, "classes: [alpha, beta, gamma]", "classes: [alpha, beta, alpha]", PD_EINVAL,
                    "test/model.yaml:4: classes[2]: duplicate class label 'alpha'", "classes[0]",
                    NULL);
  expect_yaml_error(st, "classes: [alpha, beta, gamma]", "classes: [alpha]", PD_EINVAL,
                    "classes: expected at least 2 items, got 1", NULL, NULL);
  expect_yaml_error(st, "{type: dense, units: 3}", "{type: dense, units: 3, name: a_fc}", PD_EINVAL,
                    "layer a_fc (dense 3)", "layer name 'a_fc' is already used on line 22", NULL);
  expect_yaml_error(st, "{type: dense, units: 3}", "{type: dense, units: 3, name: 'x y'}",
                    PD_EINVAL, "head.layers[2].name", "[A-Za-z0-9_.]", NULL);
}

static void test_yaml_syntax(pd_test_state *st) {
  /* an unclosed flow sequence on line 11 */
  expect_yaml_error(st, "fit_size: 10}\n", "fit_size: 10\n", PD_EFORMAT,
                    "test/model.yaml:12:", "flow mapping", "line 11");
  expect_yaml_error(st, "  mean: 0.05\n", "  mean: 0.05\n   bad\n", PD_EINVAL,
                    "test/model.yaml:7: input.mean: expected a number, got '0.05 bad'", NULL, NULL);
  expect_yaml_error(st, "  mean: 0.05\n", "\tmean: 0.05\n", PD_EFORMAT,
                    "test/model.yaml:7:", "cannot start any token", NULL);
  expect_yaml_error(st, "  std: 0.15\n", "  std: 0.15\n std2: 1\n", PD_EFORMAT,
                    "test/model.yaml:9:", NULL, NULL);
  expect_yaml_error(st, "  std: 0.15\n", "  std: [0.15\n", PD_EFORMAT, "test/model.yaml:", NULL,
                    NULL);
  expect_yaml_error(st, k_yaml, "", PD_EFORMAT, "test/model.yaml: the document is empty", NULL,
                    NULL);
  expect_yaml_error(st, k_yaml, "[1, 2]\n", PD_EINVAL, "test/model.yaml:1: expected a mapping",
                    NULL, NULL);
  expect_yaml_error(st, "flip: false\n", "flip: false\n---\nformat: 1\n", PD_EFORMAT,
                    "a second YAML document", NULL, NULL);
}

static void test_symmetry_errors(pd_test_state *st) {
  char line[64];
  expect_yaml_error(st, "symmetry: c4\n", "symmetry: none\n", PD_EINVAL,
                    "test/model.yaml:13: layer a.0 (cyclic_slice): needs symmetry c4 or d4", NULL,
                    NULL);
  expect_yaml_error(st, "  flip: false\n", "  flip: true\n", PD_EINVAL, "tta.flip",
                    "symmetry none or d4", "c4");
  /* d4 with flip passes the description checks; a.3's roll now gives 8 x 2 channels */
  char *d4 = yaml_with("symmetry: c4\n", "symmetry: d4\n");
  char *d4flip = NULL;
  if (d4) {
    const char *at = strstr(d4, "flip: false");
    d4flip = malloc(strlen(d4) + 2);
    memcpy(d4flip, d4, (size_t)(at - d4));
    strcpy(d4flip + (at - d4), "flip: true\n");
    pd_model *m;
    pd_error err = {0};
    PD_CHECK_INT(st, load(d4flip, k_tensors, N_TENSORS, &m, &err), PD_EFORMAT);
    PD_CHECK_CONTAINS(st, err.msg, "'a.4.weight' has shape [4, 8, 3, 3]");
    PD_CHECK_CONTAINS(st, err.msg, "needs [4, 16, 3, 3]");
  }
  free(d4);
  free(d4flip);
  expect_yaml_error(st, "      - {type: cyclic_roll}\n      - type: conv",
                    "      - {type: cyclic_slice}\n      - type: conv", PD_EINVAL,
                    "layer a.3 (cyclic_slice)", "only once", NULL);
  expect_yaml_error(st, "      - {type: cyclic_slice}\n      - {type: conv, filters: 3",
                    "      - {type: conv, filters: 3", PD_EINVAL, "layer b.3 (cyclic_pool max)",
                    "needs several views", "got 1 view");
  expect_yaml_error(st, "    layers: []\n", "    layers: [{type: cyclic_roll}]\n", PD_EINVAL,
                    at_line(line, sizeof line, "    layers: []\n",
                            "    layers: [{type: cyclic_roll}]\n", "{type: cyclic_roll}]"),
                    "layer size.0 (cyclic_roll): needs several views", NULL);
  /* the head's input is one view, so a slice there is legal but must be pooled again */
  expect_yaml_error(st, "{type: dropout, rate: 0.25}", "{type: cyclic_slice}", PD_EINVAL,
                    "layer head.2 (dense 3)", "gives 4 views of 1x1x3 before softmax", NULL);
  expect_yaml_error(st, "{type: dropout, rate: 0.25}", "{type: cyclic_pool}", PD_EINVAL,
                    "layer head.1 (cyclic_pool mean)", "needs several views", NULL);
}

static void test_geometry_errors(pd_test_state *st) {
  char line[64];
  expect_yaml_error(st, "{type: global_avg_pool}", "{type: maxpool, size: 6}", PD_EINVAL,
                    at_line(line, sizeof line, "{type: global_avg_pool}",
                            "{type: maxpool, size: 6}", "maxpool, size: 6"),
                    "layer b.3 (maxpool 6/2): input 5x5 leaves no pixels", NULL);
  expect_yaml_error(st, "{type: conv, filters: 3, kernel: 2, stride: 2}",
                    "{type: conv, filters: 3, kernel: 9, pad: 0}", PD_EINVAL,
                    "test/model.yaml:30: layer b.1 (conv 3 9x9/1 pad 0): input 8x8 leaves no "
                    "pixels",
                    NULL, NULL);
  expect_yaml_error(st, "{type: maxout}", "{type: maxout, pieces: 4}", PD_EINVAL,
                    "test/model.yaml:23: layer a.6 (maxout 4): input has 6 channels, not "
                    "divisible by 4 pieces",
                    NULL, NULL);
  expect_yaml_error(st, "      - {type: cyclic_pool, mode: rms}\n", "", PD_EINVAL,
                    "test/model.yaml:10: branch a: output is 4 views of 1x1x12", "cyclic_pool",
                    NULL);
  expect_yaml_error(st, "      - {type: global_avg_pool}\n", "", PD_EINVAL,
                    "branch b: output is 1 view of 5x5x3", "flat", NULL);
  expect_yaml_error(st, "    - {type: softmax}\n", "", PD_EINVAL,
                    "test/model.yaml:38: head:", "end with a layer giving 3 units", "softmax");
  expect_yaml_error(st, "{type: dropout, rate: 0.25}", "{type: softmax}", PD_EINVAL,
                    "layer head.1 (softmax)", "only as the last head layer", NULL);
  expect_yaml_error(st, "{type: cyclic_pool, mode: max}", "{type: softmax}", PD_EINVAL,
                    "layer b.4 (softmax)", "only as the last head layer", NULL);
  expect_yaml_error(st, "{type: dense, units: 3}", "{type: dense, units: 4}", PD_EINVAL,
                    "test/model.yaml:41: layer head.2 (dense 4)", "1 view of 1x1x4", "3 classes");
  /* more than PD_MAX_LAYERS layers in a list */
  char many[32 * (PD_MAX_LAYERS + 2)] = "    layers:\n";
  for (int i = 0; i < PD_MAX_LAYERS + 1; i++)
    strcat(many, "      - {type: dropout}\n");
  expect_yaml_error(st, "    layers: []\n", many, PD_ELIMIT, "branches[2].layers",
                    "at most 64 items, got 65", NULL);
}

/* ---- weight errors ---- */

static void expect_weights_error(pd_test_state *st, const tspec *ts, int n, int code,
                                 const char *n1, const char *n2, const char *n3) {
  pd_model *m = (pd_model *)1;
  pd_error err = {0};
  int rc = load(k_yaml, ts, n, &m, &err);
  PD_CHECK_INT(st, rc, code);
  PD_CHECK(st, m == NULL);
  PD_CHECK_CONTAINS(st, err.msg, WEIGHTS_NAME);
  if (n1) PD_CHECK_CONTAINS(st, err.msg, n1);
  if (n2) PD_CHECK_CONTAINS(st, err.msg, n2);
  if (n3) PD_CHECK_CONTAINS(st, err.msg, n3);
  if (rc == PD_OK) pd_model_free(m);
}

static void test_weight_errors(pd_test_state *st) {
  tspec ts[N_TENSORS + 2];
  /* missing: drop a.1.bias */
  memcpy(ts, k_tensors, sizeof k_tensors);
  memmove(&ts[1], &ts[2], (N_TENSORS - 2) * sizeof ts[0]);
  expect_weights_error(st, ts, N_TENSORS - 1, PD_EFORMAT, "missing tensor 'a.1.bias' (shape [2])",
                       "layer a.1 (conv 2 3x3/1 pad 1)", "test/model.yaml:14");
  /* extra tensors */
  memcpy(ts, k_tensors, sizeof k_tensors);
  ts[N_TENSORS] = (tspec){"extra.weight", "F32", 1, {2}};
  expect_weights_error(st, ts, N_TENSORS + 1, PD_EFORMAT,
                       "tensor 'extra.weight' is not used by any layer", NULL, NULL);
  ts[N_TENSORS + 1] = (tspec){"head.3.weight", "F32", 1, {2}};
  expect_weights_error(st, ts, N_TENSORS + 2, PD_EFORMAT, "tensor 'extra.weight' and 1 more", NULL,
                       NULL);
  /* wrong shape */
  memcpy(ts, k_tensors, sizeof k_tensors);
  ts[0].shape[2] = ts[0].shape[3] = 5;
  expect_weights_error(st, ts, N_TENSORS, PD_EFORMAT,
                       "tensor 'a.1.weight' has shape [2, 1, 5, 5] but layer a.1 (conv 2 3x3/1 "
                       "pad 1) at test/model.yaml:14 needs [2, 1, 3, 3]",
                       NULL, NULL);
  memcpy(ts, k_tensors, sizeof k_tensors);
  ts[4] = (tspec){"a_fc.weight", "F32", 2, {36, 6}}; /* transposed */
  expect_weights_error(st, ts, N_TENSORS, PD_EFORMAT, "'a_fc.weight' has shape [36, 6]",
                       "needs [6, 36]", NULL);
  memcpy(ts, k_tensors, sizeof k_tensors);
  ts[9] = (tspec){"head.0.bias", "F32", 2, {1, 5}};
  expect_weights_error(st, ts, N_TENSORS, PD_EFORMAT, "'head.0.bias' has shape [1, 5]", "needs [5]",
                       NULL);
  /* wrong dtype */
  memcpy(ts, k_tensors, sizeof k_tensors);
  ts[4].dtype = "I32";
  expect_weights_error(st, ts, N_TENSORS, PD_EUNSUPP,
                       "tensor 'a_fc.weight' has dtype I32; expected F32 or F16", NULL, NULL);
}

/* Every prefix of the weights file fails cleanly, naming the file. */
static void test_truncated_weights(pd_test_state *st) {
  size_t len;
  unsigned char *w = build_weights(k_tensors, N_TENSORS, &len);
  int bad = 0;
  for (size_t n = 0; n < len; n++) {
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, w, n);
    pd_model *m = (pd_model *)1;
    pd_error err = {0};
    int rc = pd_model_load_mem(k_yaml, strlen(k_yaml), YAML_NAME, copy, n, WEIGHTS_NAME, &m, &err);
    if (rc == PD_OK || m != NULL || !strstr(err.msg, WEIGHTS_NAME)) bad++;
    if (rc == PD_OK) pd_model_free(m);
    free(copy);
  }
  PD_CHECK_INT(st, bad, 0);
  free(w);
}

/* Flipped header bytes and corrupted YAML: errors or valid models, never a crash. */
static void test_corrupted(pd_test_state *st) {
  size_t len;
  unsigned char *w = build_weights(k_tensors, N_TENSORS, &len);
  size_t hlen = 8 + (size_t)w[0] + ((size_t)w[1] << 8);
  int errors = 0, bad = 0;
  const unsigned char subs[] = {0xff, '"', '9', ']', ',', 0};
  for (size_t pos = 0; pos < hlen; pos++) {
    for (size_t k = 0; k < sizeof subs; k++) {
      unsigned char *copy = malloc(len);
      memcpy(copy, w, len);
      copy[pos] = k == 0 ? (unsigned char)~copy[pos] : subs[k];
      pd_model *m = NULL;
      pd_error err = {0};
      int rc =
          pd_model_load_mem(k_yaml, strlen(k_yaml), YAML_NAME, copy, len, WEIGHTS_NAME, &m, &err);
      if (rc != PD_OK) errors++;
      if (rc != PD_OK && !strstr(err.msg, "test/")) bad++;
      pd_model_free(m);
      free(copy);
    }
  }
  PD_CHECK(st, errors > (int)hlen);
  const char ysubs[] = {'\0', '[', '{', ':', '-', '#', '"', '\t', '9'};
  size_t ylen = strlen(k_yaml);
  for (size_t pos = 0; pos < ylen; pos++) {
    for (size_t k = 0; k < sizeof ysubs; k++) {
      char *y = malloc(ylen);
      memcpy(y, k_yaml, ylen);
      y[pos] = ysubs[k];
      pd_model *m = NULL;
      pd_error err = {0};
      int rc = pd_model_load_mem(y, ylen, YAML_NAME, w, len, WEIGHTS_NAME, &m, &err);
      if (rc != PD_OK && !strstr(err.msg, "test/")) bad++;
      pd_model_free(m);
      free(y);
    }
  }
  PD_CHECK_INT(st, bad, 0);
  free(w);
}

/* ---- from a directory ---- */

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(data, 1, len, f);
  fclose(f);
}

static void test_directory(pd_test_state *st) {
  char dir[] = "/tmp/pd_model_test_XXXXXX";
  PD_CHECK(st, mkdtemp(dir) != NULL);
  char yaml_path[128], weights_path[128];
  snprintf(yaml_path, sizeof yaml_path, "%s/model.yaml", dir);
  snprintf(weights_path, sizeof weights_path, "%s/weights.safetensors", dir);
  size_t len;
  unsigned char *w = build_weights(k_tensors, N_TENSORS, &len);
  pd_model *m = NULL;
  pd_error err = {0};

  /* nothing there yet */
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, yaml_path);
  write_file(yaml_path, k_yaml, strlen(k_yaml));
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, weights_path);
  PD_CHECK(st, m == NULL);

  write_file(weights_path, w, len);
  int rc = pd_model_load(dir, &m, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc == PD_OK) {
    PD_CHECK(st, !strcmp(m->dir, dir));
    PD_CHECK_INT(st, m->n_params, 18 + 2 + 288 + 4 + 216 + 6 + 12 + 3 + 90 + 5 + 15 + 3);
    pd_model_free(m);
  } else {
    fprintf(stderr, "  %s\n", err.msg);
  }

  /* errors name the paths */
  write_file(weights_path, w, len / 2);
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EFORMAT);
  PD_CHECK_CONTAINS(st, err.msg, weights_path);
  char *bad_yaml = yaml_with("{type: maxout}", "{type: maxout, pieces: 5}");
  write_file(yaml_path, bad_yaml, strlen(bad_yaml));
  free(bad_yaml);
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EINVAL);
  char want[160];
  snprintf(want, sizeof want, "%s:23: layer a.6 (maxout 5)", yaml_path);
  PD_CHECK_CONTAINS(st, err.msg, want);
  unlink(yaml_path);
  PD_CHECK(st, mkdir(yaml_path, 0700) == 0);
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, "not a regular file");
  rmdir(yaml_path);
  unlink(weights_path);
  rmdir(dir);
  PD_CHECK_INT(st, pd_model_load(dir, &m, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, yaml_path);
  PD_CHECK_INT(st, pd_model_load("", &m, &err), PD_EINVAL);
  free(w);
}

/* thresholds: and lineage: (FORMAT.md "Thresholds", "Lineage"). */
static void test_outputs(pd_test_state *st) {
  const char *flip = "  flip: false\n";
  char *yaml = yaml_with(flip, "  flip: false\n"
                               "thresholds: {alpha: 0.5, gamma: 0.875}\n"
                               "lineage:\n"
                               "  alpha: Eukaryota>Copepoda>Calanoida\n"
                               "  beta: \"Eukaryota>Copepoda\"\n"
                               "  gamma: detritus\n");
  pd_model *m = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, load(yaml, k_tensors, N_TENSORS, &m, &err), PD_OK);
  if (m) {
    PD_CHECK(st, m->thresholds != NULL && m->lineage != NULL);
    if (m->thresholds) {
      PD_CHECK(st, m->thresholds[0] == 0.5f);
      PD_CHECK(st, m->thresholds[1] == 0.0f); /* not listed: none */
      PD_CHECK(st, m->thresholds[2] == 0.875f);
    }
    if (m->lineage) {
      PD_CHECK(st, !strcmp(m->lineage[0], "Eukaryota>Copepoda>Calanoida"));
      PD_CHECK(st, !strcmp(m->lineage[1], "Eukaryota>Copepoda"));
      PD_CHECK(st, !strcmp(m->lineage[2], "detritus"));
    }
    pd_model_free(m);
  } else {
    fprintf(stderr, "  outputs: %s\n", err.msg);
  }
  free(yaml);
  m = NULL; /* absent: nothing */
  PD_CHECK_INT(st, load(k_yaml, k_tensors, N_TENSORS, &m, &err), PD_OK);
  if (m) PD_CHECK(st, m->thresholds == NULL && m->lineage == NULL);
  pd_model_free(m);

  char line[64];
  const char *to = "  flip: false\nthresholds: {alpha: 0.5, delta: 0.2}\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "thresholds"),
                    "thresholds.delta", "'delta' is not one of the model's classes");
  to = "  flip: false\nthresholds:\n  alpha: 1.5\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "alpha: 1.5"),
                    "thresholds.alpha", "1.5");
  to = "  flip: false\nthresholds: [0.5, 0.5, 0.5]\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, "thresholds", "expected a mapping", NULL);
  to = "  flip: false\nlineage:\n  alpha: A>B\n  gamma: A>C\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "alpha: A>B"),
                    "class 'beta' has no lineage", "every class needs one");
  to = "  flip: false\nlineage:\n  alpha: A>B\n  beta: A>>C\n  gamma: A\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "beta: A>>C"),
                    "lineage of class 'beta'", "empty or space-padded name at depth 2");
  to = "  flip: false\nlineage:\n  alpha: A>B\n  beta: A>C\n  gamma: A\n  omega: A\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "omega"),
                    "lineage.omega", "'omega' is not one of the model's classes");
  to = "  flip: false\nlineage:\n  alpha: A>B\n  beta: A> C\n  gamma: A\n";
  expect_yaml_error(st, flip, to, PD_EINVAL, at_line(line, sizeof line, flip, to, "beta: A> C"),
                    "lineage.beta", "'A> C' has an empty or space-padded name at depth 2");
}

int main(void) {
  pd_test_state st = {0};
  test_valid_model(&st);
  test_yaml_errors(&st);
  test_yaml_syntax(&st);
  test_symmetry_errors(&st);
  test_geometry_errors(&st);
  test_weight_errors(&st);
  test_truncated_weights(&st);
  test_corrupted(&st);
  test_directory(&st);
  test_outputs(&st);
  return pd_test_finish(&st, "model_load");
}
