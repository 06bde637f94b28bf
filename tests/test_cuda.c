/* test_cuda: the CUDA backend against the CPU backend on random-weight models.
 *
 * Models: tests/models/parity_c4.yaml and parity_d4.yaml (between them every
 * layer kind and option of models/FORMAT.md) and bench/models/seed_c4.yaml
 * (the seed network's shape at bench size), with deterministic random
 * weights (pd_test_model.h). They are loaded first on every machine, so the
 * tensor lists below are checked even where there is no GPU.
 *
 * The test's own layer-by-layer CPU reference is checked against the CPU
 * backend first, on every machine. Without a usable CUDA device the test
 * then prints the exact reason
 * (pd_cuda_device_count's message) and exits 77, which meson reports as
 * skipped. With one, it checks:
 *  - per layer (pd_cuda_plan_trace): every layer's output against the CPU op
 *    chain on the same inputs, |gpu - cpu| <= 1e-3 x max(1, max |cpu|); the
 *    first layer off is named with the index and both values;
 *  - probabilities: max abs difference <= 1e-4 in FP32 (2e-3 in TF32) and the
 *    same top-1 (except near ties of the CPU's answer, margin <= 2 x tolerance,
 *    which are counted), for synthetic crops (the real warp) and random-normal inputs,
 *    at batch sizes that hit a bucket exactly and that need padding;
 *  - a repeated batch gives bit-identical probabilities, also after a larger
 *    batch ran in between (padding rows never leak into real ones);
 *  - heuristic algorithms + CUDA graphs and TF32 plans;
 *  - the GPU preprocessing warp equals pd_warp_branch bit for bit;
 *  - errors: an out-of-range device index is refused naming it.
 * PLANKTON_SOURCE_ROOT must name the source tree (meson sets it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_cpu_ops.h"
#include "pd_model.h"
#include "pd_test.h"
#include "pd_test_model.h"
#include "pd_tta.h"
#include "pd_warp.h"
#include "cuda/pd_cuda_backend.h"
#include "cuda/pd_cuda_test.h"

/* ---- the models ---- */

static const pd_test_tensor k_parity_c4[] = {
    {"a.1.weight", 4, {8, 1, 3, 3}},   {"a.1.bias", 1, {8}},
    {"a.2.weight", 4, {8, 8, 3, 3}},   {"a.2.bias", 1, {8}},
    {"a.5.weight", 4, {12, 32, 1, 1}}, {"a.5.bias", 1, {12}},
    {"a.7.weight", 4, {12, 12, 3, 3}}, {"a.7.bias", 1, {12}},
    {"a_fc1.weight", 2, {32, 432}},    {"a_fc1.bias", 1, {32}},
    {"a.14.weight", 2, {16, 64}},      {"a.14.bias", 1, {16}},
    {"b.1.weight", 4, {6, 1, 5, 5}},   {"b.1.bias", 1, {6}},
    {"b.2.weight", 4, {8, 6, 3, 3}},   {"b.2.bias", 1, {8}},
    {"b.5.weight", 4, {16, 32, 3, 3}}, {"b.5.bias", 1, {16}},
    {"size.0.weight", 2, {4, 4}},      {"size.0.bias", 1, {4}},
    {"head_fc.weight", 2, {32, 52}},   {"head_fc.bias", 1, {32}},
    {"logits.weight", 2, {12, 32}},    {"logits.bias", 1, {12}},
};

static const pd_test_tensor k_parity_d4[] = {
    {"fit.1.weight", 4, {6, 1, 3, 3}},    {"fit.1.bias", 1, {6}},
    {"fit.4.weight", 4, {8, 48, 1, 1}},   {"fit.4.bias", 1, {8}},
    {"fit.5.weight", 4, {8, 8, 2, 2}},    {"fit.5.bias", 1, {8}},
    {"fit.9.weight", 4, {16, 64, 3, 3}},  {"fit.9.bias", 1, {16}},
    {"fixed.1.weight", 4, {4, 1, 3, 3}},  {"fixed.1.bias", 1, {4}},
    {"fixed.4.weight", 4, {8, 32, 3, 3}}, {"fixed.4.bias", 1, {8}},
    {"fixed.6.weight", 2, {8, 8}},        {"fixed.6.bias", 1, {8}},
    {"fixed.8.weight", 2, {12, 64}},      {"fixed.8.bias", 1, {12}},
    {"head.0.weight", 2, {30, 22}},       {"head.0.bias", 1, {30}},
    {"head.3.weight", 2, {15, 15}},       {"head.3.bias", 1, {15}},
};

#define CONV(name, o, i)                                                                           \
  {name ".weight", 4, {o, i, 3, 3}}, {                                                             \
    name ".bias", 1, {                                                                             \
      o                                                                                            \
    }                                                                                              \
  }
#define DENSE(name, o, i)                                                                          \
  {name ".weight", 2, {o, i}}, {                                                                   \
    name ".bias", 1, {                                                                             \
      o                                                                                            \
    }                                                                                              \
  }
static const pd_test_tensor k_seed_c4[] = {
    CONV("a.1", 16, 1),       CONV("a.2", 8, 16),       CONV("a.5", 32, 32),
    CONV("a.6", 16, 32),      CONV("a.9", 64, 64),      CONV("a.10", 64, 64),
    CONV("a.11", 32, 64),     CONV("a.14", 128, 128),   CONV("a.15", 128, 128),
    CONV("a.16", 64, 128),    DENSE("a.20", 128, 6400), DENSE("a.24", 128, 256),
    CONV("b.1", 8, 1),        CONV("b.2", 4, 8),        CONV("b.5", 16, 16),
    CONV("b.6", 8, 16),       CONV("b.9", 32, 32),      CONV("b.10", 32, 32),
    CONV("b.11", 16, 32),     DENSE("b.15", 64, 1600),  DENSE("b.19", 64, 128),
    DENSE("head.1", 121, 96),
};
#undef CONV
#undef DENSE

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct test_model {
  const char *path; /* relative to the source root */
  const pd_test_tensor *tensors;
  int n_tensors;
  pd_model *m;
} test_model;

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

static int load_model(pd_test_state *st, const char *root, test_model *tm) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, tm->path);
  char *yaml = read_text(path);
  if (!yaml) {
    fprintf(stderr, "test_cuda: cannot read %s\n", path);
    st->checks++, st->failures++;
    return -1;
  }
  pd_error err = {0};
  int rc = pd_test_load_model(yaml, tm->tensors, tm->n_tensors, 7, &tm->m, &err);
  free(yaml);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) fprintf(stderr, "test_cuda: %s does not load: %s\n", tm->path, err.msg);
  return rc;
}

/* ---- inputs ---- */

typedef struct inputs {
  int n;
  float *branch[PD_MAX_BRANCHES];
} inputs;

static float normal(uint64_t *s) {
  double u1 = ((double)(pd_test_rng(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(pd_test_rng(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Even images: synthetic crops through the real preprocessing; odd: N(0, 1). */
static void make_inputs(const pd_model *m, int n, uint64_t seed, inputs *in) {
  in->n = n;
  for (int b = 0; b < m->n_branches; b++)
    in->branch[b] = calloc((size_t)n * pd_model_branch_input_len(m, b), sizeof(float));
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  uint8_t *px = malloc(200 * 200);
  for (int i = 0; i < n; i++) {
    if (i % 2 == 0) {
      int w = 20 + (int)(pd_test_rng(&s) % 170), h = 20 + (int)(pd_test_rng(&s) % 170);
      pd_test_crop(w, h, seed * 100 + (uint64_t)i, px);
      float *slots[PD_MAX_BRANCHES];
      for (int b = 0; b < m->n_branches; b++)
        slots[b] = in->branch[b] + (size_t)i * pd_model_branch_input_len(m, b);
      pd_model_fill_view(m, px, w, h, NULL, slots);
    } else {
      for (int b = 0; b < m->n_branches; b++) {
        size_t len = pd_model_branch_input_len(m, b);
        for (size_t k = 0; k < len; k++)
          in->branch[b][(size_t)i * len + k] = normal(&s);
      }
    }
  }
  free(px);
}

static void free_inputs(const pd_model *m, inputs *in) {
  for (int b = 0; b < m->n_branches; b++)
    free(in->branch[b]);
}

static pd_batch batch_of(const pd_model *m, const inputs *in, int n) {
  pd_batch batch = {.n = n};
  for (int b = 0; b < m->n_branches; b++)
    batch.branch[b] = in->branch[b];
  return batch;
}

/* ---- the CPU reference, layer by layer ---- */

typedef struct ref_trace {
  float *out[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS];
  size_t len[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS];
} ref_trace;

static size_t max_sz(size_t a, size_t b) {
  return a > b ? a : b;
}

static void cpu_list(const pd_layer *layers, int count, int n, float *cur, float *a, float *b,
                     float *col, size_t col_cap, float **result, float **outs, size_t *lens) {
  for (int i = 0; i < count; i++) {
    float *out = cur == a ? b : a;
    if (!pd_cpu_layer_forward(&layers[i], n, cur, out, col, col_cap)) cur = out;
    lens[i] = (size_t)n * pd_shape_len(layers[i].out);
    outs[i] = malloc(lens[i] * sizeof(float));
    memcpy(outs[i], cur, lens[i] * sizeof(float));
  }
  *result = cur;
}

static void cpu_reference(const pd_model *m, const inputs *in, ref_trace *rt) {
  const int n = in->n;
  size_t big = (size_t)m->graph.head_in, col_cap = 0;
  for (int list = 0; list <= PD_MAX_BRANCHES; list++) {
    const int count = list == PD_MAX_BRANCHES ? m->graph.n_head
                      : list < m->n_branches  ? m->graph.branches[list].n_layers
                                              : 0;
    const pd_layer *layers =
        list == PD_MAX_BRANCHES ? m->graph.head : m->graph.branches[list].layers;
    for (int i = 0; i < count; i++) {
      big = max_sz(big, max_sz(pd_shape_len(layers[i].in), pd_shape_len(layers[i].out)));
      if (layers[i].kind == PD_LAYER_CONV)
        col_cap = max_sz(col_cap, pd_cpu_conv_col_floats(&layers[i], 1u << 20));
    }
  }
  float *a = malloc(big * n * sizeof(float)), *b = malloc(big * n * sizeof(float));
  float *col = malloc(max_sz(col_cap, 1) * sizeof(float));
  float *head = malloc((size_t)m->graph.head_in * n * sizeof(float));
  int offset = 0;
  for (int br = 0; br < m->n_branches; br++) {
    const pd_graph_branch *B = &m->graph.branches[br];
    memcpy(a, in->branch[br], (size_t)n * pd_model_branch_input_len(m, br) * sizeof(float));
    float *res;
    cpu_list(B->layers, B->n_layers, n, a, a, b, col, col_cap, &res, rt->out[br], rt->len[br]);
    for (int i = 0; i < n; i++)
      memcpy(head + (size_t)i * m->graph.head_in + offset, res + (size_t)i * B->out.c,
             (size_t)B->out.c * sizeof(float));
    offset += B->out.c;
  }
  float *res;
  memcpy(a, head, (size_t)m->graph.head_in * n * sizeof(float));
  cpu_list(m->graph.head, m->graph.n_head, n, a, a, b, col, col_cap, &res, rt->out[PD_MAX_BRANCHES],
           rt->len[PD_MAX_BRANCHES]);
  free(a);
  free(b);
  free(col);
  free(head);
}

static void free_ref(ref_trace *rt) {
  for (int l = 0; l <= PD_MAX_BRANCHES; l++)
    for (int i = 0; i < PD_MAX_LAYERS; i++)
      free(rt->out[l][i]);
}

typedef struct trace_cmp {
  const pd_model *m;
  const ref_trace *rt;
  int layers, bad;
} trace_cmp;

static int compare_layer(void *user, int list, int layer, const float *out, size_t floats) {
  trace_cmp *c = user;
  const pd_layer *l = list == PD_MAX_BRANCHES ? &c->m->graph.head[layer]
                                              : &c->m->graph.branches[list].layers[layer];
  const float *ref = c->rt->out[list][layer];
  c->layers++;
  if (floats != c->rt->len[list][layer]) {
    fprintf(stderr, "  layer '%s': gpu gave %zu floats, cpu %zu\n", l->name, floats,
            c->rt->len[list][layer]);
    c->bad++;
    return 1;
  }
  double scale = 1.0, worst = 0.0;
  size_t at = 0;
  for (size_t k = 0; k < floats; k++)
    scale = fmax(scale, fabs(ref[k]));
  for (size_t k = 0; k < floats; k++) {
    double d = fabs((double)out[k] - ref[k]);
    if (!(d <= worst)) {
      worst = isnan(d) ? INFINITY : d;
      at = k;
    }
  }
  if (worst > 1e-3 * scale) {
    fprintf(stderr,
            "  layer '%s' (%s): max |gpu - cpu| %.3g (scale %.3g) at float %zu of %zu: gpu %.7g, "
            "cpu %.7g\n",
            l->name, pd_layer_kind_name(l->kind), worst, scale, at, floats, out[at], ref[at]);
    c->bad++;
    return 1; /* the first bad layer is the one to look at */
  }
  return 0;
}

/* ---- checks ---- */

static double max_diff(const float *a, const float *b, size_t n, int *nan) {
  double d = 0;
  *nan = 0;
  for (size_t k = 0; k < n; k++) {
    if (isnan(a[k]) || isnan(b[k])) *nan = 1;
    d = fmax(d, fabs((double)a[k] - b[k]));
  }
  return d;
}

static int top1(const float *row, int c) {
  int best = 0;
  for (int k = 1; k < c; k++)
    if (row[k] > row[best]) best = k;
  return best;
}

/* The gap between the largest and the second largest probability. */
static float top_margin(const float *row, int c) {
  float a = -1.0f, b = -1.0f;
  for (int k = 0; k < c; k++) {
    if (row[k] > a) {
      b = a;
      a = row[k];
    } else if (row[k] > b) {
      b = row[k];
    }
  }
  return a - b;
}

typedef struct parity_case {
  const char *label;
  pd_cuda_options opt;
  double tol;
  int max_batch;
  int sizes[6];
  int n_sizes;
} parity_case;

static void check_parity(pd_test_state *st, pd_backend *gpu, pd_backend *cpu, const pd_model *m,
                         const parity_case *pc) {
  pd_error err = {0};
  pd_plan *gplan = NULL, *cplan = NULL;
  int rc = pd_plan_create(gpu, &m->graph, pc->max_batch, &gplan, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "%s: cuda plan: %s\n", pc->label, err.msg);
    return;
  }
  rc = pd_plan_create(cpu, &m->graph, pc->max_batch, &cplan, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    pd_plan_destroy(gplan);
    return;
  }
  const int C = m->n_classes;
  inputs in;
  make_inputs(m, pc->max_batch, 11, &in);
  float *g = malloc((size_t)pc->max_batch * C * sizeof(float));
  float *c = malloc((size_t)pc->max_batch * C * sizeof(float));
  float *first = malloc((size_t)pc->max_batch * C * sizeof(float));
  for (int s = 0; s < pc->n_sizes; s++) {
    const int n = pc->sizes[s];
    pd_batch batch = batch_of(m, &in, n);
    rc = pd_plan_run(gplan, &batch, g, &err);
    PD_CHECK_INT(st, rc, PD_OK);
    if (rc != PD_OK) {
      fprintf(stderr, "%s: cuda run of %d: %s\n", pc->label, n, err.msg);
      continue;
    }
    PD_CHECK_INT(st, pd_plan_run(cplan, &batch, c, &err), PD_OK);
    int nan;
    double d = max_diff(g, c, (size_t)n * C, &nan);
    /* Top-1 must agree wherever the CPU's answer is not a near tie (a margin
     * within twice the tolerance may flip either way and says nothing). */
    int same_top = 0, ties = 0;
    for (int i = 0; i < n; i++) {
      const float *gr = g + (size_t)i * C, *cr = c + (size_t)i * C;
      if (top1(gr, C) == top1(cr, C))
        same_top++;
      else if (top_margin(cr, C) <= 2 * pc->tol)
        ties++;
    }
    printf("%s: batch %d: max |p_gpu - p_cpu| = %.3g, same top-1 %d/%d (%d near ties)\n", pc->label,
           n, d, same_top, n, ties);
    PD_CHECK(st, !nan);
    PD_CHECK(st, d <= pc->tol);
    PD_CHECK_INT(st, same_top + ties, n);
    if (s == 0) memcpy(first, g, (size_t)n * C * sizeof(float));
  }
  /* The first size again, after the others: bit-identical. */
  const int n0 = pc->sizes[0];
  pd_batch batch = batch_of(m, &in, n0);
  if (pd_plan_run(gplan, &batch, g, &err) == PD_OK)
    PD_CHECK(st, memcmp(g, first, (size_t)n0 * C * sizeof(float)) == 0);
  else
    PD_CHECK(st, 0);
  free(g);
  free(c);
  free(first);
  free_inputs(m, &in);
  pd_plan_destroy(gplan);
  pd_plan_destroy(cplan);
}

static void check_trace(pd_test_state *st, pd_backend *gpu, const pd_model *m, int n) {
  pd_error err = {0};
  pd_plan *plan = NULL;
  int rc = pd_plan_create(gpu, &m->graph, n, &plan, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "trace %s: %s\n", m->name, err.msg);
    return;
  }
  inputs in;
  make_inputs(m, n, 5, &in);
  ref_trace *rt = calloc(1, sizeof *rt);
  cpu_reference(m, &in, rt);
  trace_cmp tc = {.m = m, .rt = rt};
  pd_batch batch = batch_of(m, &in, n);
  rc = pd_cuda_plan_trace(plan, &batch, compare_layer, &tc, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) fprintf(stderr, "trace %s: %s\n", m->name, err.msg);
  printf("%s: per-layer trace at batch %d: %d layers compared, %d off\n", m->name, n, tc.layers,
         tc.bad);
  PD_CHECK_INT(st, tc.bad, 0);
  free_ref(rt);
  free(rt);
  free_inputs(m, &in);
  pd_plan_destroy(plan);
}

/* The test's own CPU reference (layer by layer through pd_cpu_layer_forward)
 * against the CPU backend: checked on every machine, GPU or not, so the
 * reference the GPU is held to is known good. */
static void check_reference(pd_test_state *st, const pd_model *m, int n) {
  pd_error err = {0};
  pd_backend *cpu = NULL;
  pd_plan *plan = NULL;
  pd_cpu_options copt = {.threads = 1};
  inputs in;
  make_inputs(m, n, 5, &in);
  ref_trace *rt = calloc(1, sizeof *rt);
  cpu_reference(m, &in, rt);
  const int last = m->graph.n_head - 1;
  PD_CHECK(st, rt->len[PD_MAX_BRANCHES][last] == (size_t)n * m->n_classes);
  float *probs = malloc((size_t)n * m->n_classes * sizeof(float));
  PD_CHECK_INT(st, pd_cpu_backend_create(&copt, &cpu, &err), PD_OK);
  PD_CHECK_INT(st, pd_plan_create(cpu, &m->graph, n, &plan, &err), PD_OK);
  pd_batch batch = batch_of(m, &in, n);
  PD_CHECK_INT(st, pd_plan_run(plan, &batch, probs, &err), PD_OK);
  int nan;
  double d = max_diff(probs, rt->out[PD_MAX_BRANCHES][last], (size_t)n * m->n_classes, &nan);
  printf("%s: test reference vs cpu backend at batch %d: max |diff| = %.3g\n", m->name, n, d);
  PD_CHECK(st, !nan && d <= 1e-5);
  /* and the comparison accepts the reference against itself */
  trace_cmp tc = {.m = m, .rt = rt};
  for (int list = 0; list <= PD_MAX_BRANCHES; list++) {
    const int count = list == PD_MAX_BRANCHES ? m->graph.n_head
                      : list < m->n_branches  ? m->graph.branches[list].n_layers
                                              : 0;
    for (int i = 0; i < count; i++)
      compare_layer(&tc, list, i, rt->out[list][i], rt->len[list][i]);
  }
  PD_CHECK_INT(st, tc.bad, 0);
  free(probs);
  pd_plan_destroy(plan);
  pd_backend_destroy(cpu);
  free_ref(rt);
  free(rt);
  free_inputs(m, &in);
}

static void check_warp(pd_test_state *st, pd_backend *gpu, const pd_model *m) {
  enum { N = 9 };
  static const int dims[N][2] = {{40, 30},  {23, 51}, {190, 64}, {17, 19}, {1, 1},
                                 {64, 200}, {95, 95}, {3, 140},  {0, 0}};
  uint8_t *px[N];
  int w[N], h[N];
  pd_warp_aug augs[N];
  pd_error err = {0};
  pd_tta_spec spec = m->tta;
  spec.rotation_min = 0, spec.rotation_max = 360, spec.zoom_min = 0.7f, spec.zoom_max = 1.4f;
  spec.shear_min = -10, spec.shear_max = 10, spec.translate_min = -8, spec.translate_max = 8;
  spec.stretch_max = 1.2f, spec.flip = true;
  for (int k = 0; k < N; k++) {
    w[k] = dims[k][0];
    h[k] = dims[k][1];
    px[k] = w[k] ? malloc((size_t)w[k] * h[k]) : NULL;
    if (px[k]) pd_test_crop(w[k], h[k], 40 + (uint64_t)k, px[k]);
    augs[k] = pd_tta_transform_at(&spec, PD_SYM_D4, k);
  }
  for (int b = 0; b < m->n_branches; b++) {
    const pd_input_branch *br = &m->branches[b];
    if (br->kind != PD_INPUT_IMAGE) continue;
    const size_t plane = (size_t)br->size * br->size;
    float *gpu_out = malloc(N * plane * sizeof(float)),
          *cpu_out = malloc(N * plane * sizeof(float));
    for (int k = 0; k < N; k++)
      pd_warp_branch(br, &m->input, px[k], w[k], h[k], &augs[k], cpu_out + k * plane);
    double aff[N * 6];
    for (int k = 0; k < N; k++) {
      pd_affine a = pd_warp_affine(br, w[k], h[k], &augs[k]);
      memcpy(aff + 6 * k, a.a, sizeof a.a);
    }
    const pd_cuda_warp_spec spec = {.size = br->size,
                                    .invert = m->input.invert,
                                    .background = m->input.background,
                                    .mean = m->input.mean,
                                    .std = m->input.std};
    int rc =
        pd_cuda_warp_check(gpu, &spec, (const uint8_t *const *)px, w, h, aff, N, gpu_out, &err);
    PD_CHECK_INT(st, rc, PD_OK);
    if (rc != PD_OK) {
      fprintf(stderr, "warp %s: %s\n", br->name, err.msg);
    } else {
      size_t differ = 0;
      int nan;
      double d = max_diff(gpu_out, cpu_out, N * plane, &nan);
      for (size_t k = 0; k < N * plane; k++)
        differ += memcmp(&gpu_out[k], &cpu_out[k], 4) != 0;
      printf("warp %s/%s: %zu of %zu pixels differ from pd_warp_branch (max %.3g)\n", m->name,
             br->name, differ, N * plane, d);
      PD_CHECK_INT(st, differ, 0);
    }
    free(gpu_out);
    free(cpu_out);
  }
  for (int k = 0; k < N; k++)
    free(px[k]);
}

int main(void) {
  pd_test_state state = {0}, *st = &state;
  const char *root = getenv("PLANKTON_SOURCE_ROOT");
  if (!root) {
    fprintf(stderr, "test_cuda: PLANKTON_SOURCE_ROOT is not set\n");
    return 1;
  }
  test_model models[3] = {
      {"tests/models/parity_c4.yaml", k_parity_c4, N_OF(k_parity_c4), NULL},
      {"tests/models/parity_d4.yaml", k_parity_d4, N_OF(k_parity_d4), NULL},
      {"bench/models/seed_c4.yaml", k_seed_c4, N_OF(k_seed_c4), NULL},
  };
  for (int i = 0; i < 3; i++)
    if (load_model(st, root, &models[i]) != PD_OK) return pd_test_finish(st, "test_cuda");

  for (int i = 0; i < 2; i++)
    check_reference(st, models[i].m, 3);
  if (st->failures) return pd_test_finish(st, "test_cuda");

  pd_error err = {0};
  int count = 0;
  if (pd_cuda_device_count(&count, &err) != PD_OK) {
    printf("test_cuda: skipped: no usable CUDA device: %s\n", err.msg);
    for (int i = 0; i < 3; i++)
      pd_model_free(models[i].m);
    return 77;
  }

  pd_cuda_options fp32 = pd_cuda_options_default();
  pd_backend *gpu = NULL, *cpu = NULL;
  int rc = pd_cuda_backend_create(&fp32, &gpu, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "test_cuda: %d device(s) present, but the backend fails: %s\n", count, err.msg);
    return pd_test_finish(st, "test_cuda");
  }
  char line[512];
  pd_cuda_backend_describe(gpu, line, sizeof line);
  printf("test_cuda: %s\n", line);
  pd_cpu_options copt = {0};
  PD_CHECK_INT(st, pd_cpu_backend_create(&copt, &cpu, &err), PD_OK);

  /* Layer by layer first: when something is wrong, this names the layer. */
  for (int i = 0; i < 3; i++)
    check_trace(st, gpu, models[i].m, i == 2 ? 2 : 3);

  for (int i = 0; i < 3; i++) {
    parity_case pc = {.opt = fp32, .tol = 1e-4};
    char label[96];
    snprintf(label, sizeof label, "%s fp32", models[i].m->name);
    pc.label = label;
    if (i < 2) {
      pc.max_batch = 16;
      const int sizes[] = {5, 1, 3, 16, 9};
      memcpy(pc.sizes, sizes, sizeof sizes);
      pc.n_sizes = 5;
    } else {
      pc.max_batch = 64;
      const int sizes[] = {7, 64, 1};
      memcpy(pc.sizes, sizes, sizeof sizes);
      pc.n_sizes = 3;
    }
    check_parity(st, gpu, cpu, models[i].m, &pc);
  }

  /* Other options: heuristics + graphs (FP32), and TF32. */
  pd_cuda_options graphs = fp32;
  graphs.heuristic_algos = 1;
  graphs.graphs = 1;
  pd_backend *gpu_graphs = NULL;
  PD_CHECK_INT(st, pd_cuda_backend_create(&graphs, &gpu_graphs, &err), PD_OK);
  if (gpu_graphs) {
    parity_case pc = {.label = "parity-d4 fp32 heuristic+graphs",
                      .opt = graphs,
                      .tol = 1e-4,
                      .max_batch = 12,
                      .sizes = {5, 12, 1},
                      .n_sizes = 3};
    check_parity(st, gpu_graphs, cpu, models[1].m, &pc);
    pc.label = "seed-c4 fp32 heuristic+graphs";
    check_parity(st, gpu_graphs, cpu, models[2].m, &pc);
    pd_backend_destroy(gpu_graphs);
  }
  pd_cuda_options tf32 = fp32;
  tf32.precision = PD_CUDA_TF32;
  pd_backend *gpu_tf32 = NULL;
  PD_CHECK_INT(st, pd_cuda_backend_create(&tf32, &gpu_tf32, &err), PD_OK);
  if (gpu_tf32) {
    parity_case pc = {.label = "seed-c4 tf32",
                      .opt = tf32,
                      .tol = 2e-3,
                      .max_batch = 32,
                      .sizes = {32, 3},
                      .n_sizes = 2};
    check_parity(st, gpu_tf32, cpu, models[2].m, &pc);
    pd_backend_destroy(gpu_tf32);
  }

  for (int i = 0; i < 3; i++)
    check_warp(st, gpu, models[i].m);

  /* Errors. */
  pd_cuda_options bad = fp32;
  bad.device = count;
  pd_backend *none = NULL;
  PD_CHECK_INT(st, pd_cuda_backend_create(&bad, &none, &err), PD_EINVAL);
  char want[64];
  snprintf(want, sizeof want, "device %d requested", count);
  PD_CHECK_CONTAINS(st, err.msg, want);

  pd_backend_destroy(gpu);
  pd_backend_destroy(cpu);
  for (int i = 0; i < 3; i++)
    pd_model_free(models[i].m);
  return pd_test_finish(st, "test_cuda");
}
