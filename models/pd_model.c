/* The model loader: model.yaml (through pd_yaml) and weights.safetensors
 * (through pd_safetensors) into a validated pd_model. Three stages, each
 * stopping at the first error: parse the description (keys, types, ranges,
 * defaults), infer and check every layer's shapes and the symmetry rules,
 * then check the tensors against the layers and convert them into one float
 * allocation in the engine's layouts. */
#include "pd_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_safetensors.h"
#include "pd_yaml.h"

#define PD_MAX_IMAGE_SIZE 1024
#define PD_MAX_WIDTH 65536 /* conv filters, dense units */
#define PD_MAX_CLASSES 10000
#define PD_MAX_LABEL_LEN 127
#define PD_MAX_KERNEL 64 /* conv kernel and pad, pool size and stride */
#define PD_MAX_CHANNELS (1 << 20)
#define PD_MAX_ACTIVATION ((uint64_t)1 << 28) /* floats of one image's activation */
#define PD_MAX_TTA 1024
#define PD_MAX_YAML_BYTES ((off_t)16 << 20)
#define PD_MAX_WEIGHT_BYTES ((off_t)16 << 30)
#define PD_ALIGN_FLOATS 16 /* each weight and bias block starts 64-byte aligned */
#define PD_MAX_ALL_LAYERS (PD_MAX_BRANCHES * PD_MAX_LAYERS + PD_MAX_LAYERS)

#define TRY(expr)                                                                                  \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != PD_OK) return rc_;                                                                  \
  } while (0)

/* Loading state: names for messages and the lines of what is checked later. */
typedef struct load_ctx {
  pd_model *m;
  const char *yaml_name, *weights_name;
  pd_error *err;
  int branch_line[PD_MAX_BRANCHES];
  int head_line;
  int n_all;
  pd_layer *all[PD_MAX_ALL_LAYERS]; /* every layer, branches then head */
} load_ctx;

static const char *const k_kind_names[PD_LAYER_KIND_COUNT] = {
    "cyclic_slice", "conv",   "leaky_relu",      "maxpool", "cyclic_roll", "cyclic_pool",
    "dense",        "maxout", "global_avg_pool", "dropout", "softmax",
};
static const char *const k_symmetry_names[] = {"none", "c4", "d4"};
static const char *const k_activation_names[] = {"none", "leaky_relu"};
static const char *const k_cpool_names[] = {"mean", "rms", "max"};
static const char *const k_input_kind_names[] = {"image", "size_features"};
static const char *const k_rescale_names[] = {"fit", "fixed"};
static const char *const k_feature_names[] = {"log_width", "log_height", "log_area", "aspect"};

const char *pd_layer_kind_name(pd_layer_kind kind) {
  if ((int)kind < 0 || kind >= PD_LAYER_KIND_COUNT) return "unknown";
  return k_kind_names[kind];
}

/* ---- small helpers ---- */

static bool name_ok(const char *s, size_t len, size_t max_len, const char *extra) {
  if (len == 0 || len > max_len) return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !strchr(extra, c)) return false;
  }
  return true;
}

static const char *describe_layer(const pd_layer *l, char *buf, size_t cap) {
  switch (l->kind) {
  case PD_LAYER_CONV:
    snprintf(buf, cap, "conv %d %dx%d/%d pad %d", l->filters, l->kernel, l->kernel, l->stride,
             l->pad);
    break;
  case PD_LAYER_MAXPOOL:
    snprintf(buf, cap, "maxpool %d/%d", l->pool_size, l->pool_stride);
    break;
  case PD_LAYER_DENSE:
    snprintf(buf, cap, "dense %d", l->units);
    break;
  case PD_LAYER_MAXOUT:
    snprintf(buf, cap, "maxout %d", l->pieces);
    break;
  case PD_LAYER_CYCLIC_POOL:
    snprintf(buf, cap, "cyclic_pool %s", k_cpool_names[l->cpool_mode]);
    break;
  default:
    snprintf(buf, cap, "%s", pd_layer_kind_name(l->kind));
    break;
  }
  return buf;
}

static const char *describe_shape(pd_shape s, char *buf, size_t cap) {
  snprintf(buf, cap, "%d view%s of %dx%dx%d", s.views, s.views == 1 ? "" : "s", s.h, s.w, s.c);
  return buf;
}

/* "<yaml>:<line>: layer <name> (<description>): <message>" */
static int layer_fail(const load_ctx *c, const pd_layer *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int layer_fail(const load_ctx *c, const pd_layer *l, int code, const char *fmt, ...) {
  char msg[320], desc[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return pd_error_set(c->err, code, "%s:%d: layer %s (%s): %s", c->yaml_name, l->line, l->name,
                      describe_layer(l, desc, sizeof desc), msg);
}

/* A float that must be > 0 (and at most hi). */
static int positive_float(const pd_yaml_node *n, double hi, float *out, pd_error *err) {
  double v;
  TRY(pd_yaml_float(n, -hi, hi, &v, err));
  if (v <= 0) return pd_yaml_fail(n, err, PD_EINVAL, "expected a number > 0, got %g", v);
  *out = (float)v;
  return PD_OK;
}

/* ---- top level: name, version, classes, input ---- */

static int parse_format(const pd_yaml_node *root, pd_error *err) {
  pd_yaml_node n;
  long long v;
  TRY(pd_yaml_require(root, "format", &n, err));
  TRY(pd_yaml_int(&n, 0, INT32_MAX, &v, err));
  if (v != 1) return pd_yaml_fail(&n, err, PD_EUNSUPP, "%lld is not supported (only format 1)", v);
  return PD_OK;
}

static int parse_ident(const pd_yaml_node *root, const char *key, const char *extra, char *dst,
                       pd_error *err) {
  pd_yaml_node n;
  const char *s;
  TRY(pd_yaml_require(root, key, &n, err));
  TRY(pd_yaml_string(&n, PD_NAME_LEN - 1, &s, err));
  if (!name_ok(s, strlen(s), PD_NAME_LEN - 1, extra))
    return pd_yaml_fail(&n, err, PD_EINVAL, "'%s' must match [A-Za-z0-9%s]{1,63}", s, extra);
  memcpy(dst, s, strlen(s) + 1);
  return PD_OK;
}

typedef struct label_ref {
  const char *s;
  int index;
} label_ref;

static int cmp_label(const void *a, const void *b) {
  const label_ref *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int check_unique_labels(const load_ctx *c, const pd_yaml_node *seq) {
  pd_model *m = c->m;
  if (m->n_classes < 2) return PD_OK; /* the class count is checked elsewhere */
  label_ref *refs = malloc((size_t)m->n_classes * sizeof *refs);
  if (!refs) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  for (int i = 0; i < m->n_classes; i++)
    refs[i] = (label_ref){m->classes[i], i};
  qsort(refs, (size_t)m->n_classes, sizeof *refs, cmp_label);
  int rc = PD_OK;
  for (int i = 1; i < m->n_classes && rc == PD_OK; i++) {
    if (strcmp(refs[i - 1].s, refs[i].s) != 0) continue;
    pd_yaml_node n = pd_yaml_seq_at(seq, refs[i].index);
    rc = pd_yaml_fail(&n, c->err, PD_EINVAL, "duplicate class label '%s' (also classes[%d])",
                      refs[i].s, refs[i - 1].index);
  }
  free(refs);
  return rc;
}

static int parse_classes(load_ctx *c, const pd_yaml_node *root) {
  pd_model *m = c->m;
  pd_yaml_node seq;
  TRY(pd_yaml_require(root, "classes", &seq, c->err));
  TRY(pd_yaml_expect_seq(&seq, 2, PD_MAX_CLASSES, c->err));
  int n = pd_yaml_seq_len(&seq);
  m->classes = calloc((size_t)n, sizeof *m->classes);
  if (!m->classes) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    const char *s;
    TRY(pd_yaml_string(&item, PD_MAX_LABEL_LEN, &s, c->err));
    m->classes[i] = strdup(s);
    if (!m->classes[i]) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
    m->n_classes = i + 1;
  }
  return check_unique_labels(c, &seq);
}

static int parse_input_spec(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"invert", "background", "mean", "std", NULL};
  pd_input_spec *in = &c->m->input;
  *in = (pd_input_spec){.invert = true, .background = 255.0f, .mean = 0.0f, .std = 1.0f};
  pd_yaml_node n, std;
  TRY(pd_yaml_require(root, "input", &n, c->err));
  TRY(pd_yaml_check_keys(&n, keys, c->err));
  TRY(pd_yaml_opt_bool(&n, "invert", &in->invert, c->err));
  TRY(pd_yaml_opt_float(&n, "background", 0, 255, &in->background, c->err));
  TRY(pd_yaml_opt_float(&n, "mean", -1e6, 1e6, &in->mean, c->err));
  TRY(pd_yaml_require(&n, "std", &std, c->err));
  return positive_float(&std, 1e6, &in->std, c->err);
}

/* ---- layers ---- */

static const char *const k_keys_plain[] = {"type", "name", NULL};
static const char *const k_keys_conv[] = {"type", "name",       "filters", "kernel", "stride",
                                          "pad",  "activation", "slope",   NULL};
static const char *const k_keys_slope[] = {"type", "name", "slope", NULL};
static const char *const k_keys_pool[] = {"type", "name", "size", "stride", NULL};
static const char *const k_keys_cpool[] = {"type", "name", "mode", NULL};
static const char *const k_keys_dense[] = {"type", "name", "units", "activation", "slope", NULL};
static const char *const k_keys_maxout[] = {"type", "name", "pieces", NULL};
static const char *const k_keys_dropout[] = {"type", "name", "rate", NULL};

static const char *const *const k_layer_keys[PD_LAYER_KIND_COUNT] = {
    [PD_LAYER_CYCLIC_SLICE] = k_keys_plain,    [PD_LAYER_CONV] = k_keys_conv,
    [PD_LAYER_LEAKY_RELU] = k_keys_slope,      [PD_LAYER_MAXPOOL] = k_keys_pool,
    [PD_LAYER_CYCLIC_ROLL] = k_keys_plain,     [PD_LAYER_CYCLIC_POOL] = k_keys_cpool,
    [PD_LAYER_DENSE] = k_keys_dense,           [PD_LAYER_MAXOUT] = k_keys_maxout,
    [PD_LAYER_GLOBAL_AVG_POOL] = k_keys_plain, [PD_LAYER_DROPOUT] = k_keys_dropout,
    [PD_LAYER_SOFTMAX] = k_keys_plain,
};

static int parse_layer_type(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  pd_yaml_node t;
  TRY(pd_yaml_require(n, "type", &t, err));
  size_t len = 0;
  const char *s = pd_yaml_scalar(&t, &len);
  for (int k = 0; s && k < PD_LAYER_KIND_COUNT; k++) {
    if (strlen(k_kind_names[k]) == len && !memcmp(s, k_kind_names[k], len)) {
      l->kind = (pd_layer_kind)k;
      return PD_OK;
    }
  }
  char known[256] = "";
  size_t used = 0; /* bounded: the list is cut short rather than overflow */
  for (int k = 0; k < PD_LAYER_KIND_COUNT && used < sizeof known; k++)
    used +=
        (size_t)snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", k_kind_names[k]);
  return pd_yaml_fail(&t, err, PD_EINVAL, "unknown layer type '%.40s' (known types: %s)",
                      s ? s : "(not a string)", known);
}

static int parse_conv(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  int act = PD_ACT_LEAKY_RELU;
  TRY(pd_yaml_req_int(n, "filters", 1, PD_MAX_WIDTH, &l->filters, err));
  TRY(pd_yaml_req_int(n, "kernel", 1, PD_MAX_KERNEL, &l->kernel, err));
  l->stride = 1;
  l->pad = l->kernel / 2;
  TRY(pd_yaml_opt_int(n, "stride", 1, PD_MAX_KERNEL, &l->stride, err));
  TRY(pd_yaml_opt_int(n, "pad", 0, PD_MAX_KERNEL, &l->pad, err));
  TRY(pd_yaml_opt_enum(n, "activation", k_activation_names, 2, &act, err));
  l->activation = (pd_activation)act;
  return pd_yaml_opt_float(n, "slope", 0, 1, &l->slope, err);
}

static int parse_dense(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  int act = PD_ACT_NONE;
  TRY(pd_yaml_req_int(n, "units", 1, PD_MAX_WIDTH, &l->units, err));
  TRY(pd_yaml_opt_enum(n, "activation", k_activation_names, 2, &act, err));
  l->activation = (pd_activation)act;
  return pd_yaml_opt_float(n, "slope", 0, 1, &l->slope, err);
}

static int parse_dropout(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  pd_yaml_node r = pd_yaml_get(n, "rate");
  l->dropout_rate = 0.5f;
  if (!pd_yaml_present(&r)) return PD_OK;
  double v;
  TRY(pd_yaml_float(&r, 0, 1, &v, err));
  if (v >= 1) return pd_yaml_fail(&r, err, PD_EINVAL, "expected 0 <= rate < 1, got %g", v);
  l->dropout_rate = (float)v;
  return PD_OK;
}

static int parse_layer_params(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  int mode = PD_CPOOL_MEAN;
  switch (l->kind) {
  case PD_LAYER_CONV:
    return parse_conv(n, l, err);
  case PD_LAYER_DENSE:
    return parse_dense(n, l, err);
  case PD_LAYER_DROPOUT:
    return parse_dropout(n, l, err);
  case PD_LAYER_LEAKY_RELU:
    l->activation = PD_ACT_LEAKY_RELU;
    return pd_yaml_opt_float(n, "slope", 0, 1, &l->slope, err);
  case PD_LAYER_MAXPOOL:
    l->pool_size = 3;
    l->pool_stride = 2;
    TRY(pd_yaml_opt_int(n, "size", 1, PD_MAX_KERNEL, &l->pool_size, err));
    return pd_yaml_opt_int(n, "stride", 1, PD_MAX_KERNEL, &l->pool_stride, err);
  case PD_LAYER_MAXOUT:
    l->pieces = 2;
    return pd_yaml_opt_int(n, "pieces", 1, PD_MAX_KERNEL, &l->pieces, err);
  case PD_LAYER_CYCLIC_POOL:
    TRY(pd_yaml_opt_enum(n, "mode", k_cpool_names, 3, &mode, err));
    l->cpool_mode = (pd_cyclic_pool_mode)mode;
    return PD_OK;
  default:
    return PD_OK;
  }
}

static int parse_layer_name(const pd_yaml_node *n, pd_layer *l, const char *list, int index,
                            pd_error *err) {
  pd_yaml_node name = pd_yaml_get(n, "name");
  if (!pd_yaml_present(&name)) {
    snprintf(l->name, sizeof l->name, "%s.%d", list, index);
    return PD_OK;
  }
  const char *s;
  TRY(pd_yaml_string(&name, PD_NAME_LEN - 1, &s, err));
  if (!name_ok(s, strlen(s), PD_NAME_LEN - 1, "_."))
    return pd_yaml_fail(&name, err, PD_EINVAL, "layer name '%s' must match [A-Za-z0-9_.]{1,63}", s);
  memcpy(l->name, s, strlen(s) + 1);
  return PD_OK;
}

static int parse_layer(load_ctx *c, const pd_yaml_node *n, const char *list, int index,
                       pd_layer *l) {
  memset(l, 0, sizeof *l);
  l->line = pd_yaml_line(n);
  l->slope = 0.01f;
  TRY(pd_yaml_expect_map(n, c->err));
  TRY(parse_layer_type(n, l, c->err));
  TRY(pd_yaml_check_keys(n, k_layer_keys[l->kind], c->err));
  TRY(parse_layer_name(n, l, list, index, c->err));
  TRY(parse_layer_params(n, l, c->err));
  c->all[c->n_all++] = l;
  return PD_OK;
}

/* An optional `layers` list (absent = empty) of at most PD_MAX_LAYERS layers. */
static int parse_layer_list(load_ctx *c, const pd_yaml_node *parent, const char *list,
                            pd_layer *layers, int *n_layers) {
  pd_yaml_node seq = pd_yaml_get(parent, "layers");
  *n_layers = 0;
  if (!pd_yaml_present(&seq)) return PD_OK;
  TRY(pd_yaml_expect_seq(&seq, 0, PD_MAX_LAYERS, c->err));
  int n = pd_yaml_seq_len(&seq);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    TRY(parse_layer(c, &item, list, i, &layers[i]));
    *n_layers = i + 1;
  }
  return PD_OK;
}

/* ---- branches ---- */

static int parse_features(const pd_yaml_node *in, pd_branch *b, pd_error *err) {
  pd_yaml_node seq;
  TRY(pd_yaml_require(in, "features", &seq, err));
  TRY(pd_yaml_expect_seq(&seq, 1, PD_MAX_FEATURES, err));
  b->n_features = pd_yaml_seq_len(&seq);
  for (int i = 0; i < b->n_features; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    int f;
    TRY(pd_yaml_enum(&item, k_feature_names, 4, &f, err));
    for (int j = 0; j < i; j++)
      if ((int)b->features[j] == f)
        return pd_yaml_fail(&item, err, PD_EINVAL, "duplicate feature '%s'", k_feature_names[f]);
    b->features[i] = (pd_size_feature)f;
  }
  b->in = (pd_shape){1, 1, 1, b->n_features};
  return PD_OK;
}

static int parse_image_input(const pd_yaml_node *in, pd_branch *b, pd_error *err) {
  static const char *const fit_keys[] = {"kind", "size", "rescale", "fit_size", NULL};
  static const char *const fixed_keys[] = {"kind", "size", "rescale", "factor", NULL};
  int rescale = PD_RESCALE_FIT;
  TRY(pd_yaml_opt_enum(in, "rescale", k_rescale_names, 2, &rescale, err));
  b->rescale = (pd_rescale)rescale;
  TRY(pd_yaml_check_keys(in, rescale == PD_RESCALE_FIT ? fit_keys : fixed_keys, err));
  TRY(pd_yaml_req_int(in, "size", 1, PD_MAX_IMAGE_SIZE, &b->size, err));
  b->in = (pd_shape){1, b->size, b->size, 1};
  if (rescale == PD_RESCALE_FIT) {
    pd_yaml_node fs = pd_yaml_get(in, "fit_size");
    b->fit_size = (float)b->size;
    return pd_yaml_present(&fs) ? positive_float(&fs, 1e5, &b->fit_size, err) : PD_OK;
  }
  pd_yaml_node f;
  TRY(pd_yaml_require(in, "factor", &f, err));
  return positive_float(&f, 1e4, &b->factor, err);
}

static int parse_branch_input(const pd_yaml_node *br, pd_branch *b, pd_error *err) {
  static const char *const feature_keys[] = {"kind", "features", NULL};
  pd_yaml_node in, kind_node;
  int kind;
  TRY(pd_yaml_require(br, "input", &in, err));
  TRY(pd_yaml_expect_map(&in, err));
  TRY(pd_yaml_require(&in, "kind", &kind_node, err));
  TRY(pd_yaml_enum(&kind_node, k_input_kind_names, 2, &kind, err));
  b->kind = (pd_input_kind)kind;
  if (b->kind == PD_INPUT_IMAGE) return parse_image_input(&in, b, err);
  TRY(pd_yaml_check_keys(&in, feature_keys, err));
  return parse_features(&in, b, err);
}

static int parse_branch(load_ctx *c, const pd_yaml_node *n, int index) {
  static const char *const keys[] = {"name", "input", "layers", NULL};
  pd_branch *b = &c->m->branches[index];
  c->branch_line[index] = pd_yaml_line(n);
  TRY(pd_yaml_check_keys(n, keys, c->err));
  pd_yaml_node name;
  const char *s;
  TRY(pd_yaml_require(n, "name", &name, c->err));
  TRY(pd_yaml_string(&name, sizeof b->name - 1, &s, c->err));
  if (!name_ok(s, strlen(s), sizeof b->name - 1, "_"))
    return pd_yaml_fail(&name, c->err, PD_EINVAL, "branch name '%s' must match [A-Za-z0-9_]{1,31}",
                        s);
  for (int i = 0; i < index; i++)
    if (!strcmp(c->m->branches[i].name, s))
      return pd_yaml_fail(&name, c->err, PD_EINVAL, "branch name '%s' is used twice", s);
  memcpy(b->name, s, strlen(s) + 1);
  TRY(parse_branch_input(n, b, c->err));
  return parse_layer_list(c, n, b->name, b->layers, &b->n_layers);
}

static int parse_branches(load_ctx *c, const pd_yaml_node *root) {
  pd_yaml_node seq;
  TRY(pd_yaml_require(root, "branches", &seq, c->err));
  TRY(pd_yaml_expect_seq(&seq, 1, PD_MAX_BRANCHES, c->err));
  int n = pd_yaml_seq_len(&seq);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    TRY(pd_yaml_expect_map(&item, c->err));
    TRY(parse_branch(c, &item, i));
    c->m->n_branches = i + 1;
  }
  return PD_OK;
}

static int parse_head(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"layers", NULL};
  pd_yaml_node head, layers;
  TRY(pd_yaml_require(root, "head", &head, c->err));
  TRY(pd_yaml_check_keys(&head, keys, c->err));
  TRY(pd_yaml_require(&head, "layers", &layers, c->err));
  c->head_line = pd_yaml_line(&head);
  return parse_layer_list(c, &head, "head", c->m->head, &c->m->n_head);
}

/* ---- tta ---- */

/* An optional [min, max] pair within [lo, hi]. */
static int parse_range(const pd_yaml_node *tta, const char *key, double lo, double hi, float *min,
                       float *max, pd_error *err) {
  pd_yaml_node seq = pd_yaml_get(tta, key);
  if (!pd_yaml_present(&seq)) return PD_OK;
  TRY(pd_yaml_expect_seq(&seq, 2, 2, err));
  double v[2];
  for (int i = 0; i < 2; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    TRY(pd_yaml_float(&item, lo, hi, &v[i], err));
  }
  if (v[0] > v[1])
    return pd_yaml_fail(&seq, err, PD_EINVAL, "range [%g, %g] has min > max", v[0], v[1]);
  *min = (float)v[0];
  *max = (float)v[1];
  return PD_OK;
}

static int parse_tta(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"count",     "zoom",    "rotation", "shear",
                                     "translate", "stretch", "flip",     NULL};
  pd_tta_spec *t = &c->m->tta;
  *t = (pd_tta_spec){.zoom_min = 0.714f,
                     .zoom_max = 1.4f,
                     .rotation_max = 360.0f,
                     .shear_min = -10.0f,
                     .shear_max = 10.0f,
                     .translate_min = -8.0f,
                     .translate_max = 8.0f,
                     .stretch_max = 1.2f};
  pd_yaml_node n = pd_yaml_get(root, "tta");
  if (!pd_yaml_present(&n)) return PD_OK;
  TRY(pd_yaml_check_keys(&n, keys, c->err));
  TRY(pd_yaml_opt_int(&n, "count", 0, PD_MAX_TTA, &t->count, c->err));
  pd_yaml_node zoom = pd_yaml_get(&n, "zoom");
  TRY(parse_range(&n, "zoom", 0, 100, &t->zoom_min, &t->zoom_max, c->err));
  if (t->zoom_min <= 0)
    return pd_yaml_fail(&zoom, c->err, PD_EINVAL, "zoom must be > 0, got %g", t->zoom_min);
  TRY(parse_range(&n, "rotation", -360, 360, &t->rotation_min, &t->rotation_max, c->err));
  TRY(parse_range(&n, "shear", -80, 80, &t->shear_min, &t->shear_max, c->err));
  TRY(parse_range(&n, "translate", -1024, 1024, &t->translate_min, &t->translate_max, c->err));
  TRY(pd_yaml_opt_float(&n, "stretch", 1, 100, &t->stretch_max, c->err));
  TRY(pd_yaml_opt_bool(&n, "flip", &t->flip, c->err));
  if (t->flip && c->m->symmetry == PD_SYM_C4) {
    pd_yaml_node flip = pd_yaml_get(&n, "flip");
    return pd_yaml_fail(&flip, c->err, PD_EINVAL,
                        "flip is allowed only with symmetry none or d4 (the model's symmetry is "
                        "c4)");
  }
  return PD_OK;
}

/* An ensemble folder (models/FORMAT.md "Ensembles") is not one model. */
static int refuse_ensemble(const pd_yaml_node *root, pd_error *err) {
  pd_yaml_node ens = pd_yaml_get(root, "ensemble");
  if (!pd_yaml_present(&ens)) return PD_OK;
  return pd_yaml_fail(&ens, err, PD_EUNSUPP,
                      "this folder is an ensemble of model folders, not one model; load it with "
                      "pd_ensemble_load (pd_ensemble.h); an ensemble member may not be an "
                      "ensemble");
}

static int parse_model(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"format", "name",     "version", "classes", "symmetry",
                                     "input",  "branches", "head",    "tta",     NULL};
  pd_model *m = c->m;
  int sym = PD_SYM_NONE;
  TRY(refuse_ensemble(root, c->err));
  TRY(pd_yaml_check_keys(root, keys, c->err));
  TRY(parse_format(root, c->err));
  TRY(parse_ident(root, "name", "._-", m->name, c->err));
  TRY(parse_ident(root, "version", "._+-", m->version, c->err));
  TRY(parse_classes(c, root));
  TRY(pd_yaml_opt_enum(root, "symmetry", k_symmetry_names, 3, &sym, c->err));
  m->symmetry = (pd_symmetry)sym;
  m->views = sym == PD_SYM_NONE ? 1 : sym == PD_SYM_C4 ? 4 : 8;
  TRY(parse_input_spec(c, root));
  TRY(parse_branches(c, root));
  TRY(parse_head(c, root));
  return parse_tta(c, root);
}

/* ---- shape inference ---- */

static int need_symmetry(const load_ctx *c, const pd_layer *l) {
  if (c->m->symmetry != PD_SYM_NONE) return PD_OK;
  return layer_fail(c, l, PD_EINVAL, "needs symmetry c4 or d4 (the model's symmetry is none)");
}

static int need_views(const load_ctx *c, const pd_layer *l) {
  TRY(need_symmetry(c, l));
  if (l->in.views > 1) return PD_OK;
  return layer_fail(c, l, PD_EINVAL,
                    "needs several views (put cyclic_slice before it), got 1 view");
}

static int infer_slice(const load_ctx *c, pd_layer *l, int *slices) {
  TRY(need_symmetry(c, l));
  if (++*slices > 1)
    return layer_fail(c, l, PD_EINVAL, "cyclic_slice may appear only once per layer list");
  if (l->in.views != 1)
    return layer_fail(c, l, PD_EINVAL, "needs a 1-view input, got %d views", l->in.views);
  if (l->in.h != l->in.w)
    return layer_fail(c, l, PD_EINVAL, "needs a square input, got %dx%d", l->in.h, l->in.w);
  l->out.views = c->m->views;
  return PD_OK;
}

/* Output size of a window of `k` with stride `s` over n + 2 pad (< 1: no pixels). */
static int window_out(int n, int pad, int k, int s) {
  int span = n + 2 * pad - k;
  return span < 0 ? 0 : span / s + 1;
}

static int infer_conv(const load_ctx *c, pd_layer *l) {
  l->out.h = window_out(l->in.h, l->pad, l->kernel, l->stride);
  l->out.w = window_out(l->in.w, l->pad, l->kernel, l->stride);
  if (l->out.h < 1 || l->out.w < 1)
    return layer_fail(c, l, PD_EINVAL, "input %dx%d leaves no pixels", l->in.h, l->in.w);
  l->out.c = l->filters;
  return PD_OK;
}

static int infer_maxpool(const load_ctx *c, pd_layer *l) {
  l->out.h = window_out(l->in.h, 0, l->pool_size, l->pool_stride);
  l->out.w = window_out(l->in.w, 0, l->pool_size, l->pool_stride);
  if (l->out.h < 1 || l->out.w < 1)
    return layer_fail(c, l, PD_EINVAL, "input %dx%d leaves no pixels", l->in.h, l->in.w);
  return PD_OK;
}

static int infer_roll(const load_ctx *c, pd_layer *l) {
  TRY(need_views(c, l));
  if (l->in.h != l->in.w)
    return layer_fail(c, l, PD_EINVAL, "a spatial roll needs a square map, got %dx%d", l->in.h,
                      l->in.w);
  if ((long long)l->in.c * l->in.views > PD_MAX_CHANNELS)
    return layer_fail(c, l, PD_ELIMIT, "%d views x %d channels exceeds %d channels", l->in.views,
                      l->in.c, PD_MAX_CHANNELS);
  l->out.c = l->in.c * l->in.views;
  return PD_OK;
}

static int infer_layer(const load_ctx *c, pd_layer *l, bool last_of_head, int *slices) {
  l->out = l->in;
  switch (l->kind) {
  case PD_LAYER_CYCLIC_SLICE:
    return infer_slice(c, l, slices);
  case PD_LAYER_CONV:
    return infer_conv(c, l);
  case PD_LAYER_MAXPOOL:
    return infer_maxpool(c, l);
  case PD_LAYER_CYCLIC_ROLL:
    return infer_roll(c, l);
  case PD_LAYER_CYCLIC_POOL:
    l->out.views = 1;
    return need_views(c, l);
  case PD_LAYER_DENSE:
    l->out = (pd_shape){l->in.views, 1, 1, l->units};
    return PD_OK;
  case PD_LAYER_GLOBAL_AVG_POOL:
    l->out = (pd_shape){l->in.views, 1, 1, l->in.c};
    return PD_OK;
  case PD_LAYER_MAXOUT:
    if (l->in.c % l->pieces)
      return layer_fail(c, l, PD_EINVAL, "input has %d channels, not divisible by %d pieces",
                        l->in.c, l->pieces);
    l->out.c = l->in.c / l->pieces;
    return PD_OK;
  case PD_LAYER_SOFTMAX:
    if (!last_of_head)
      return layer_fail(c, l, PD_EINVAL, "softmax is allowed only as the last head layer");
    return PD_OK;
  default:
    return PD_OK;
  }
}

static int infer_list(const load_ctx *c, pd_layer *layers, int n, pd_shape in, bool head,
                      pd_shape *out) {
  int slices = 0;
  for (int i = 0; i < n; i++) {
    pd_layer *l = &layers[i];
    l->in = in;
    TRY(infer_layer(c, l, head && i == n - 1, &slices));
    uint64_t len = (uint64_t)l->out.views * l->out.h * l->out.w * l->out.c;
    if (len > PD_MAX_ACTIVATION) {
      char sh[64];
      return layer_fail(c, l, PD_ELIMIT, "output %s is more than %llu floats",
                        describe_shape(l->out, sh, sizeof sh),
                        (unsigned long long)PD_MAX_ACTIVATION);
    }
    in = l->out;
  }
  *out = in;
  return PD_OK;
}

static int infer_branch(load_ctx *c, int index) {
  pd_branch *b = &c->m->branches[index];
  TRY(infer_list(c, b->layers, b->n_layers, b->in, false, &b->out));
  if (b->out.views == 1 && b->out.h == 1 && b->out.w == 1) return PD_OK;
  char sh[64];
  return pd_error_set(c->err, PD_EINVAL,
                      "%s:%d: branch %s: output is %s; it must be one flat view (end the branch "
                      "with cyclic_pool, dense or global_avg_pool)",
                      c->yaml_name, c->branch_line[index], b->name,
                      describe_shape(b->out, sh, sizeof sh));
}

static int check_head_end(const load_ctx *c, pd_shape out) {
  const pd_model *m = c->m;
  if (m->n_head < 2 || m->head[m->n_head - 1].kind != PD_LAYER_SOFTMAX)
    return pd_error_set(c->err, PD_EINVAL,
                        "%s:%d: head: the layers must end with a layer giving %d units (one per "
                        "class) and then softmax",
                        c->yaml_name, c->head_line, m->n_classes);
  const pd_layer *prev = &m->head[m->n_head - 2];
  if (out.views == 1 && out.h == 1 && out.w == 1 && out.c == m->n_classes) return PD_OK;
  char sh[64];
  return layer_fail(c, prev, PD_EINVAL, "gives %s before softmax but the model has %d classes",
                    describe_shape(out, sh, sizeof sh), m->n_classes);
}

static int check_unique_layer_names(const load_ctx *c) {
  for (int i = 1; i < c->n_all; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(c->all[i]->name, c->all[j]->name))
        return layer_fail(c, c->all[i], PD_EINVAL, "layer name '%s' is already used on line %d",
                          c->all[i]->name, c->all[j]->line);
  return PD_OK;
}

static int infer_model(load_ctx *c) {
  pd_model *m = c->m;
  TRY(check_unique_layer_names(c));
  long long head_in = 0;
  for (int b = 0; b < m->n_branches; b++) {
    TRY(infer_branch(c, b));
    head_in += m->branches[b].out.c;
  }
  m->head_in = (int)head_in;
  pd_shape out;
  TRY(infer_list(c, m->head, m->n_head, (pd_shape){1, 1, 1, m->head_in}, true, &out));
  return check_head_end(c, m->n_head ? m->head[m->n_head - 1].in : out);
}

/* ---- weights ---- */

static bool has_weights(const pd_layer *l) {
  return l->kind == PD_LAYER_CONV || l->kind == PD_LAYER_DENSE;
}

/* PyTorch shapes: conv [filters, C, k, k], dense [units, in features]; bias [out]. */
static int torch_weight_shape(const pd_layer *l, int64_t shape[4]) {
  if (l->kind == PD_LAYER_CONV) {
    shape[0] = l->filters, shape[1] = l->in.c, shape[2] = l->kernel, shape[3] = l->kernel;
    return 4;
  }
  shape[0] = l->units;
  shape[1] = (int64_t)l->in.h * l->in.w * l->in.c;
  return 2;
}

static size_t shape_count(const int64_t *shape, int ndim) {
  size_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= (size_t)shape[i];
  return n;
}

static size_t round_up(size_t n) {
  return (n + PD_ALIGN_FLOATS - 1) / PD_ALIGN_FLOATS * PD_ALIGN_FLOATS;
}

static int check_tensor(const load_ctx *c, pd_st_file *st, const pd_layer *l, const char *suffix,
                        const int64_t *shape, int ndim) {
  char name[PD_NAME_LEN + 16], want[128], got[128], desc[64];
  snprintf(name, sizeof name, "%s.%s", l->name, suffix);
  pd_st_tensor *t = pd_st_find(st, name);
  if (!t)
    return pd_error_set(c->err, PD_EFORMAT,
                        "%s: missing tensor '%s' (shape %s) for layer %s (%s) at %s:%d",
                        c->weights_name, name, pd_st_format_shape(shape, ndim, want, sizeof want),
                        l->name, describe_layer(l, desc, sizeof desc), c->yaml_name, l->line);
  if (t->dtype != PD_DTYPE_F32 && t->dtype != PD_DTYPE_F16)
    return pd_error_set(c->err, PD_EUNSUPP, "%s: tensor '%s' has dtype %s; expected F32 or F16",
                        c->weights_name, name, t->dtype_name);
  bool same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = t->shape[i] == shape[i];
  if (!same)
    return pd_error_set(
        c->err, PD_EFORMAT, "%s: tensor '%s' has shape %s but layer %s (%s) at %s:%d needs %s",
        c->weights_name, name, pd_st_format_shape(t->shape, t->ndim, got, sizeof got), l->name,
        describe_layer(l, desc, sizeof desc), c->yaml_name, l->line,
        pd_st_format_shape(shape, ndim, want, sizeof want));
  t->used = 1;
  return PD_OK;
}

static int check_extra_tensors(const load_ctx *c, const pd_st_file *st) {
  int extra = 0;
  const char *first = NULL;
  for (int i = 0; i < st->n_tensors; i++) {
    if (st->tensors[i].used) continue;
    if (!first) first = st->tensors[i].name;
    extra++;
  }
  if (!extra) return PD_OK;
  if (extra == 1)
    return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s' is not used by any layer",
                        c->weights_name, first);
  return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s' and %d more are not used by any layer",
                      c->weights_name, first, extra - 1);
}

/* Checks every weighted layer's tensors and counts the floats to allocate. */
static int check_weights(load_ctx *c, pd_st_file *st, size_t *total) {
  *total = 0;
  for (int i = 0; i < c->n_all; i++) {
    const pd_layer *l = c->all[i];
    if (!has_weights(l)) continue;
    int64_t wshape[4];
    int wdim = torch_weight_shape(l, wshape);
    int64_t bshape[1] = {wshape[0]};
    TRY(check_tensor(c, st, l, "weight", wshape, wdim));
    TRY(check_tensor(c, st, l, "bias", bshape, 1));
    *total += round_up(shape_count(wshape, wdim)) + round_up((size_t)bshape[0]);
    c->m->n_params += shape_count(wshape, wdim) + (size_t)bshape[0];
  }
  return check_extra_tensors(c, st);
}

/* OIHW -> OHWI */
static void conv_to_ohwi(const float *src, float *dst, int O, int C, int k) {
  for (int o = 0; o < O; o++)
    for (int ch = 0; ch < C; ch++)
      for (int y = 0; y < k; y++)
        for (int x = 0; x < k; x++)
          dst[(((size_t)o * k + y) * k + x) * C + ch] = src[(((size_t)o * C + ch) * k + y) * k + x];
}

/* Dense columns from PyTorch's C,H,W flatten order to H,W,C. */
static void dense_to_hwc(const float *src, float *dst, int units, int H, int W, int C) {
  const size_t K = (size_t)H * W * C;
  for (int u = 0; u < units; u++)
    for (int ch = 0; ch < C; ch++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
          dst[u * K + ((size_t)y * W + x) * C + ch] = src[u * K + ((size_t)ch * H + y) * W + x];
}

static int read_tensor(const load_ctx *c, pd_st_file *st, const pd_layer *l, const char *suffix,
                       float *dst, size_t n) {
  char name[PD_NAME_LEN + 16];
  snprintf(name, sizeof name, "%s.%s", l->name, suffix);
  int rc = pd_st_to_f32(pd_st_find(st, name), dst, n, c->err);
  if (rc != PD_OK) pd_error_prefix(c->err, "%s", c->weights_name);
  return rc;
}

static int convert_layer(const load_ctx *c, pd_st_file *st, pd_layer *l, float *dst) {
  int64_t wshape[4];
  const int wdim = torch_weight_shape(l, wshape);
  size_t wlen = shape_count(wshape, wdim);
  size_t blen = (size_t)wshape[0];
  bool permute = l->kind == PD_LAYER_CONV || (size_t)l->in.h * l->in.w > 1;
  float *tmp = permute ? malloc(wlen * sizeof *tmp) : dst;
  if (!tmp) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->weights_name);
  int rc = read_tensor(c, st, l, "weight", tmp, wlen);
  if (rc == PD_OK && l->kind == PD_LAYER_CONV)
    conv_to_ohwi(tmp, dst, l->filters, l->in.c, l->kernel);
  else if (rc == PD_OK && permute)
    dense_to_hwc(tmp, dst, l->units, l->in.h, l->in.w, l->in.c);
  if (permute) free(tmp);
  float *bias = dst + round_up(wlen);
  if (rc == PD_OK) rc = read_tensor(c, st, l, "bias", bias, blen);
  l->weight = dst;
  l->bias = bias;
  l->weight_len = wlen;
  l->bias_len = blen;
  return rc;
}

static int load_weights(load_ctx *c, const unsigned char *buf, size_t len) {
  pd_st_file st;
  TRY(pd_st_parse(buf, len, c->weights_name, &st, c->err));
  size_t total = 0;
  int rc = check_weights(c, &st, &total);
  if (rc == PD_OK) {
    c->m->weights = aligned_alloc(PD_ALIGN_FLOATS * sizeof(float),
                                  (total ? total : PD_ALIGN_FLOATS) * sizeof(float));
    if (!c->m->weights)
      rc = pd_error_set(c->err, PD_ENOMEM, "%s: out of memory for %zu weights", c->weights_name,
                        total);
  }
  float *dst = c->m->weights;
  for (int i = 0; rc == PD_OK && i < c->n_all; i++) {
    pd_layer *l = c->all[i];
    if (!has_weights(l)) continue;
    rc = convert_layer(c, &st, l, dst);
    dst += round_up(l->weight_len) + round_up(l->bias_len);
  }
  pd_st_free(&st);
  return rc;
}

/* ---- public ---- */

int pd_model_load_mem(const char *yaml, size_t yaml_len, const char *yaml_name,
                      const unsigned char *weights, size_t weights_len, const char *weights_name,
                      pd_model **out, pd_error *err) {
  *out = NULL;
  load_ctx *c = calloc(1, sizeof *c);
  pd_model *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return pd_error_set(err, PD_ENOMEM, "out of memory for a model");
  }
  c->m = m;
  c->yaml_name = yaml_name ? yaml_name : "model.yaml";
  c->weights_name = weights_name ? weights_name : "weights.safetensors";
  c->err = err;
  pd_yaml *y = NULL;
  int rc = pd_yaml_load(yaml ? yaml : "", yaml ? yaml_len : 0, c->yaml_name, &y, err);
  if (rc == PD_OK) {
    pd_yaml_node root = pd_yaml_root(y);
    rc = pd_yaml_expect_map(&root, err);
    if (rc == PD_OK) rc = parse_model(c, &root);
  }
  pd_yaml_free(y);
  if (rc == PD_OK) rc = infer_model(c);
  if (rc == PD_OK)
    rc = load_weights(c, weights ? weights : (const unsigned char *)"", weights ? weights_len : 0);
  free(c);
  if (rc != PD_OK) {
    pd_model_free(m);
    return rc;
  }
  *out = m;
  return PD_OK;
}

/* Reads a whole regular file of at most max_bytes. */
static int read_file(const char *path, off_t max_bytes, unsigned char **buf, size_t *len,
                     pd_error *err) {
  *buf = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return pd_error_set(err, PD_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  int rc = PD_OK;
  if (fstat(fd, &sb) != 0)
    rc = pd_error_set(err, PD_EIO, "cannot stat %s: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    rc = pd_error_set(err, PD_EIO, "%s is not a regular file", path);
  else if (sb.st_size > max_bytes)
    rc = pd_error_set(err, PD_ELIMIT, "%s is %lld bytes (at most %lld)", path,
                      (long long)sb.st_size, (long long)max_bytes);
  unsigned char *data = rc == PD_OK ? malloc((size_t)sb.st_size + 1) : NULL;
  if (rc == PD_OK && !data) rc = pd_error_set(err, PD_ENOMEM, "%s: out of memory", path);
  size_t got = 0;
  while (rc == PD_OK && got < (size_t)sb.st_size) {
    ssize_t r = read(fd, data + got, (size_t)sb.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      rc = pd_error_set(err, PD_EIO, "cannot read %s: %s", path, strerror(errno));
    else if (r == 0)
      break; /* shrank while reading: parse what is there */
    else
      got += (size_t)r;
  }
  close(fd);
  if (rc != PD_OK) {
    free(data);
    return rc;
  }
  *buf = data;
  *len = got;
  return PD_OK;
}

int pd_model_load(const char *dir, pd_model **out, pd_error *err) {
  *out = NULL;
  char yaml_path[4096 + 32], weights_path[4096 + 32];
  const size_t dlen = dir ? strlen(dir) : 0;
  if (!dir || dlen == 0 || dlen >= sizeof((pd_model *)0)->dir)
    return pd_error_set(err, PD_EINVAL, "model directory name is empty or too long (%zu bytes)",
                        dlen);
  snprintf(yaml_path, sizeof yaml_path, "%s/model.yaml", dir);
  snprintf(weights_path, sizeof weights_path, "%s/weights.safetensors", dir);
  unsigned char *yaml = NULL, *weights = NULL;
  size_t yaml_len = 0, weights_len = 0;
  int rc = read_file(yaml_path, PD_MAX_YAML_BYTES, &yaml, &yaml_len, err);
  if (rc == PD_OK) rc = read_file(weights_path, PD_MAX_WEIGHT_BYTES, &weights, &weights_len, err);
  if (rc == PD_EIO && yaml) {
    /* An ensemble folder has no weights: say what it is rather than what is missing. */
    pd_yaml *y = NULL;
    pd_error yerr = {0};
    if (pd_yaml_load((const char *)yaml, yaml_len, yaml_path, &y, &yerr) == PD_OK) {
      pd_yaml_node root = pd_yaml_root(y);
      if (pd_yaml_kind_of(&root) == PD_YAML_MAP && refuse_ensemble(&root, &yerr) != PD_OK) {
        rc = yerr.code;
        if (err) *err = yerr;
      }
    }
    pd_yaml_free(y);
  }
  if (rc == PD_OK)
    rc = pd_model_load_mem((const char *)yaml, yaml_len, yaml_path, weights, weights_len,
                           weights_path, out, err);
  free(yaml);
  free(weights);
  if (rc == PD_OK && *out) memcpy((*out)->dir, dir, dlen + 1);
  return rc;
}

void pd_model_free(pd_model *m) {
  if (!m) return;
  for (int i = 0; m->classes && i < m->n_classes; i++)
    free(m->classes[i]);
  free(m->classes);
  free(m->weights);
  free(m);
}

size_t pd_model_branch_input_len(const pd_model *m, int b) {
  if (!m || b < 0 || b >= m->n_branches) return 0;
  const pd_branch *br = &m->branches[b];
  if (br->kind == PD_INPUT_IMAGE) return (size_t)br->size * (size_t)br->size;
  return (size_t)br->n_features;
}

static double layers_flops(const pd_layer *layers, int n) {
  double f = 0;
  for (int i = 0; i < n; i++) {
    const pd_layer *l = &layers[i];
    if (l->kind == PD_LAYER_CONV)
      f += 2.0 * l->out.views * l->out.h * l->out.w * l->filters * l->kernel * l->kernel * l->in.c;
    else if (l->kind == PD_LAYER_DENSE)
      f += 2.0 * l->in.views * l->units * ((double)l->in.h * l->in.w * l->in.c);
  }
  return f;
}

double pd_model_flops_per_image(const pd_model *m) {
  double f = 0;
  for (int b = 0; b < m->n_branches; b++)
    f += layers_flops(m->branches[b].layers, m->branches[b].n_layers);
  return f + layers_flops(m->head, m->n_head);
}
