/* The loader, stage 1: model.yaml (through pd_yaml) into the model's
 * names, classes, input normalisation, branch inputs, layer lists (kinds
 * and parameters, no shapes yet) and TTA spec. Stops at the first error,
 * naming the file, the line and the rule. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_model_internal.h"

static const char *const k_symmetry_names[] = {"none", "c4", "d4"};
static const char *const k_activation_names[] = {"none", "leaky_relu"};
const char *const pd_model__cpool_names[3] = {"mean", "rms", "max"};
static const char *const k_input_kind_names[] = {"image", "size_features"};
static const char *const k_rescale_names[] = {"fit", "fixed"};
static const char *const k_feature_names[PD_FEATURE_KIND_COUNT] = {
    "log_width", "log_height", "log_area", "aspect", "log_long", "log_short", "log_elongation"};

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

/* A float that must be > 0 (and at most hi). */
static int positive_float(const pd_yaml_node *n, double hi, float *out, pd_error *err) {
  double v;
  PD_TRY(pd_yaml_float(n, -hi, hi, &v, err));
  if (v <= 0) return pd_yaml_fail(n, err, PD_EINVAL, "expected a number > 0, got %g", v);
  *out = (float)v;
  return PD_OK;
}
/* ---- top level: name, version, classes, input ---- */

static int parse_format(const pd_yaml_node *root, pd_error *err) {
  pd_yaml_node n;
  long long v;
  PD_TRY(pd_yaml_require(root, "format", &n, err));
  PD_TRY(pd_yaml_int(&n, 0, INT32_MAX, &v, err));
  if (v != 1) return pd_yaml_fail(&n, err, PD_EUNSUPP, "%lld is not supported (only format 1)", v);
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
  PD_TRY(pd_yaml_require(root, "classes", &seq, c->err));
  PD_TRY(pd_yaml_expect_seq(&seq, 2, PD_MAX_CLASSES, c->err));
  int n = pd_yaml_seq_len(&seq);
  m->classes = calloc((size_t)n, sizeof *m->classes);
  if (!m->classes) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    const char *s;
    PD_TRY(pd_yaml_string(&item, PD_MAX_LABEL_LEN, &s, c->err));
    m->classes[i] = strdup(s);
    if (!m->classes[i]) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
    m->n_classes = i + 1;
  }
  return check_unique_labels(c, &seq);
}

static int parse_input_spec(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"invert", "background", "mean", "std", NULL};
  pd_input_norm *in = &c->m->input;
  *in = (pd_input_norm){.invert = true, .background = 255.0f, .mean = 0.0f, .std = 1.0f};
  pd_yaml_node n, std;
  PD_TRY(pd_yaml_require(root, "input", &n, c->err));
  PD_TRY(pd_yaml_check_keys(&n, keys, c->err));
  PD_TRY(pd_yaml_opt_bool(&n, "invert", &in->invert, c->err));
  PD_TRY(pd_yaml_opt_float(&n, "background", 0, 255, &in->background, c->err));
  PD_TRY(pd_yaml_opt_float(&n, "mean", -1e6, 1e6, &in->mean, c->err));
  PD_TRY(pd_yaml_require(&n, "std", &std, c->err));
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
  PD_TRY(pd_yaml_require(n, "type", &t, err));
  size_t len = 0;
  const char *s = pd_yaml_scalar(&t, &len);
  for (int k = 0; s && k < PD_LAYER_KIND_COUNT; k++) {
    if (strlen(pd_layer_kind_name((pd_layer_kind)k)) == len &&
        !memcmp(s, pd_layer_kind_name((pd_layer_kind)k), len)) {
      l->kind = (pd_layer_kind)k;
      return PD_OK;
    }
  }
  char known[256] = "";
  size_t used = 0; /* bounded: the list is cut short rather than overflow */
  for (int k = 0; k < PD_LAYER_KIND_COUNT && used < sizeof known; k++)
    used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "",
                             pd_layer_kind_name((pd_layer_kind)k));
  return pd_yaml_fail(&t, err, PD_EINVAL, "unknown layer type '%.40s' (known types: %s)",
                      s ? s : "(not a string)", known);
}

static int parse_conv(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  int act = PD_ACT_LEAKY_RELU;
  PD_TRY(pd_yaml_req_int(n, "filters", 1, PD_MAX_WIDTH, &l->filters, err));
  PD_TRY(pd_yaml_req_int(n, "kernel", 1, PD_MAX_KERNEL, &l->kernel, err));
  l->stride = 1;
  l->pad = l->kernel / 2;
  PD_TRY(pd_yaml_opt_int(n, "stride", 1, PD_MAX_KERNEL, &l->stride, err));
  PD_TRY(pd_yaml_opt_int(n, "pad", 0, PD_MAX_KERNEL, &l->pad, err));
  PD_TRY(pd_yaml_opt_enum(n, "activation", k_activation_names, 2, &act, err));
  l->activation = (pd_activation)act;
  return pd_yaml_opt_float(n, "slope", 0, 1, &l->slope, err);
}

static int parse_dense(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  int act = PD_ACT_NONE;
  PD_TRY(pd_yaml_req_int(n, "units", 1, PD_MAX_WIDTH, &l->units, err));
  PD_TRY(pd_yaml_opt_enum(n, "activation", k_activation_names, 2, &act, err));
  l->activation = (pd_activation)act;
  return pd_yaml_opt_float(n, "slope", 0, 1, &l->slope, err);
}

static int parse_dropout(const pd_yaml_node *n, pd_layer *l, pd_error *err) {
  pd_yaml_node r = pd_yaml_get(n, "rate");
  l->dropout_rate = 0.5f;
  if (!pd_yaml_present(&r)) return PD_OK;
  double v;
  PD_TRY(pd_yaml_float(&r, 0, 1, &v, err));
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
    PD_TRY(pd_yaml_opt_int(n, "size", 1, PD_MAX_KERNEL, &l->pool_size, err));
    return pd_yaml_opt_int(n, "stride", 1, PD_MAX_KERNEL, &l->pool_stride, err);
  case PD_LAYER_MAXOUT:
    l->pieces = 2;
    return pd_yaml_opt_int(n, "pieces", 1, PD_MAX_KERNEL, &l->pieces, err);
  case PD_LAYER_CYCLIC_POOL:
    PD_TRY(pd_yaml_opt_enum(n, "mode", pd_model__cpool_names, 3, &mode, err));
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
  PD_TRY(pd_yaml_string(&name, PD_NAME_LEN - 1, &s, err));
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
  PD_TRY(pd_yaml_expect_map(n, c->err));
  PD_TRY(parse_layer_type(n, l, c->err));
  PD_TRY(pd_yaml_check_keys(n, k_layer_keys[l->kind], c->err));
  PD_TRY(parse_layer_name(n, l, list, index, c->err));
  PD_TRY(parse_layer_params(n, l, c->err));
  c->all[c->n_all++] = l;
  return PD_OK;
}

/* An optional `layers` list (absent = empty) of at most PD_MAX_LAYERS layers. */
static int parse_layer_list(load_ctx *c, const pd_yaml_node *parent, const char *list,
                            pd_layer *layers, int *n_layers) {
  pd_yaml_node seq = pd_yaml_get(parent, "layers");
  *n_layers = 0;
  if (!pd_yaml_present(&seq)) return PD_OK;
  PD_TRY(pd_yaml_expect_seq(&seq, 0, PD_MAX_LAYERS, c->err));
  int n = pd_yaml_seq_len(&seq);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    PD_TRY(parse_layer(c, &item, list, i, &layers[i]));
    *n_layers = i + 1;
  }
  return PD_OK;
}

/* ---- branches ---- */

/* A quarter turn swaps a crop's width and height: these features change
 * under it, so a c4 or d4 model may not use them. */
static bool feature_turns(pd_size_feature f) {
  return f == PD_FEAT_LOG_WIDTH || f == PD_FEAT_LOG_HEIGHT || f == PD_FEAT_ASPECT;
}

static int parse_features(const pd_yaml_node *in, pd_symmetry sym, pd_input_branch *b,
                          pd_error *err) {
  pd_yaml_node seq;
  PD_TRY(pd_yaml_require(in, "features", &seq, err));
  PD_TRY(pd_yaml_expect_seq(&seq, 1, PD_MAX_FEATURES, err));
  b->n_features = pd_yaml_seq_len(&seq);
  for (int i = 0; i < b->n_features; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    int f;
    PD_TRY(pd_yaml_enum(&item, k_feature_names, PD_FEATURE_KIND_COUNT, &f, err));
    for (int j = 0; j < i; j++)
      if ((int)b->features[j] == f)
        return pd_yaml_fail(&item, err, PD_EINVAL, "duplicate feature '%s'", k_feature_names[f]);
    if (sym != PD_SYM_NONE && feature_turns((pd_size_feature)f))
      return pd_yaml_fail(&item, err, PD_EINVAL,
                          "'%s' is not invariant under symmetry %s (a quarter turn swaps width "
                          "and height); use log_long, log_short, log_area or log_elongation",
                          k_feature_names[f], k_symmetry_names[sym]);
    b->features[i] = (pd_size_feature)f;
  }
  return PD_OK;
}

static int parse_image_input(const pd_yaml_node *in, pd_input_branch *b, pd_error *err) {
  static const char *const fit_keys[] = {"kind", "size", "rescale", "fit_size", NULL};
  static const char *const fixed_keys[] = {"kind", "size", "rescale", "factor", NULL};
  int rescale = PD_RESCALE_FIT;
  PD_TRY(pd_yaml_opt_enum(in, "rescale", k_rescale_names, 2, &rescale, err));
  b->rescale = (pd_rescale)rescale;
  PD_TRY(pd_yaml_check_keys(in, rescale == PD_RESCALE_FIT ? fit_keys : fixed_keys, err));
  PD_TRY(pd_yaml_req_int(in, "size", 1, PD_MAX_IMAGE_SIZE, &b->size, err));
  if (rescale == PD_RESCALE_FIT) {
    pd_yaml_node fs = pd_yaml_get(in, "fit_size");
    b->fit_size = (float)b->size;
    return pd_yaml_present(&fs) ? positive_float(&fs, 1e5, &b->fit_size, err) : PD_OK;
  }
  pd_yaml_node f;
  PD_TRY(pd_yaml_require(in, "factor", &f, err));
  return positive_float(&f, 1e4, &b->factor, err);
}

static int parse_branch_input(const pd_yaml_node *br, pd_symmetry sym, pd_input_branch *b,
                              pd_error *err) {
  static const char *const feature_keys[] = {"kind", "features", NULL};
  pd_yaml_node in, kind_node;
  int kind;
  PD_TRY(pd_yaml_require(br, "input", &in, err));
  PD_TRY(pd_yaml_expect_map(&in, err));
  PD_TRY(pd_yaml_require(&in, "kind", &kind_node, err));
  PD_TRY(pd_yaml_enum(&kind_node, k_input_kind_names, 2, &kind, err));
  b->kind = (pd_input_kind)kind;
  if (b->kind == PD_INPUT_IMAGE) return parse_image_input(&in, b, err);
  PD_TRY(pd_yaml_check_keys(&in, feature_keys, err));
  return parse_features(&in, sym, b, err);
}

static int parse_branch(load_ctx *c, const pd_yaml_node *n, int index) {
  static const char *const keys[] = {"name", "input", "layers", NULL};
  pd_input_branch *b = &c->m->branches[index];
  c->branch_line[index] = pd_yaml_line(n);
  PD_TRY(pd_yaml_check_keys(n, keys, c->err));
  pd_yaml_node name;
  const char *s;
  PD_TRY(pd_yaml_require(n, "name", &name, c->err));
  PD_TRY(pd_yaml_string(&name, sizeof b->name - 1, &s, c->err));
  if (!name_ok(s, strlen(s), sizeof b->name - 1, "_"))
    return pd_yaml_fail(&name, c->err, PD_EINVAL, "branch name '%s' must match [A-Za-z0-9_]{1,31}",
                        s);
  for (int i = 0; i < index; i++)
    if (!strcmp(c->m->branches[i].name, s))
      return pd_yaml_fail(&name, c->err, PD_EINVAL, "branch name '%s' is used twice", s);
  memcpy(b->name, s, strlen(s) + 1);
  pd_graph_branch *gb = &c->m->graph.branches[index];
  memcpy(gb->name, s, strlen(s) + 1);
  PD_TRY(parse_branch_input(n, c->m->symmetry, b, c->err));
  return parse_layer_list(c, n, b->name, gb->layers, &gb->n_layers);
}

static int parse_branches(load_ctx *c, const pd_yaml_node *root) {
  pd_yaml_node seq;
  PD_TRY(pd_yaml_require(root, "branches", &seq, c->err));
  PD_TRY(pd_yaml_expect_seq(&seq, 1, PD_MAX_BRANCHES, c->err));
  int n = pd_yaml_seq_len(&seq);
  for (int i = 0; i < n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    PD_TRY(pd_yaml_expect_map(&item, c->err));
    PD_TRY(parse_branch(c, &item, i));
    c->m->n_branches = i + 1;
  }
  return PD_OK;
}

static int parse_head(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"layers", NULL};
  pd_yaml_node head, layers;
  PD_TRY(pd_yaml_require(root, "head", &head, c->err));
  PD_TRY(pd_yaml_check_keys(&head, keys, c->err));
  PD_TRY(pd_yaml_require(&head, "layers", &layers, c->err));
  c->head_line = pd_yaml_line(&head);
  return parse_layer_list(c, &head, "head", c->m->graph.head, &c->m->graph.n_head);
}

/* ---- tta ---- */

/* An optional [min, max] pair within [lo, hi]. */
static int parse_range(const pd_yaml_node *tta, const char *key, double lo, double hi, float *min,
                       float *max, pd_error *err) {
  pd_yaml_node seq = pd_yaml_get(tta, key);
  if (!pd_yaml_present(&seq)) return PD_OK;
  PD_TRY(pd_yaml_expect_seq(&seq, 2, 2, err));
  double v[2];
  for (int i = 0; i < 2; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&seq, i);
    PD_TRY(pd_yaml_float(&item, lo, hi, &v[i], err));
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
  PD_TRY(pd_yaml_check_keys(&n, keys, c->err));
  PD_TRY(pd_yaml_opt_int(&n, "count", 0, PD_MAX_TTA, &t->count, c->err));
  pd_yaml_node zoom = pd_yaml_get(&n, "zoom");
  PD_TRY(parse_range(&n, "zoom", 0, 100, &t->zoom_min, &t->zoom_max, c->err));
  if (t->zoom_min <= 0)
    return pd_yaml_fail(&zoom, c->err, PD_EINVAL, "zoom must be > 0, got %g", t->zoom_min);
  PD_TRY(parse_range(&n, "rotation", -360, 360, &t->rotation_min, &t->rotation_max, c->err));
  PD_TRY(parse_range(&n, "shear", -80, 80, &t->shear_min, &t->shear_max, c->err));
  PD_TRY(parse_range(&n, "translate", -1024, 1024, &t->translate_min, &t->translate_max, c->err));
  PD_TRY(pd_yaml_opt_float(&n, "stretch", 1, 100, &t->stretch_max, c->err));
  PD_TRY(pd_yaml_opt_bool(&n, "flip", &t->flip, c->err));
  if (t->flip && c->m->symmetry == PD_SYM_C4) {
    pd_yaml_node flip = pd_yaml_get(&n, "flip");
    return pd_yaml_fail(&flip, c->err, PD_EINVAL,
                        "flip is allowed only with symmetry none or d4 (the model's symmetry is "
                        "c4)");
  }
  return PD_OK;
}

/* calibration: {temperature: T} (FORMAT.md "Calibration"); default 1. */
static int parse_calibration(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"temperature", NULL};
  c->m->temperature = 1.0f;
  pd_yaml_node n = pd_yaml_get(root, "calibration");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, c->err));
  PD_TRY(pd_yaml_check_keys(&n, keys, c->err));
  return pd_yaml_opt_float(&n, "temperature", 0.05, 20.0, &c->m->temperature, c->err);
}

/* precision: {bf16: {weights_sha256, crops, top1_same, log_loss_fp32,
 * log_loss_bf16}} (FORMAT.md "Precision"); absent: no record. */
static int parse_precision(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"bf16", NULL};
  static const char *const rec_keys[] = {"weights_sha256", "crops",         "top1_same",
                                         "log_loss_fp32",  "log_loss_bf16", NULL};
  pd_precision_record *r = &c->m->bf16;
  pd_yaml_node n = pd_yaml_get(root, "precision");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, c->err));
  PD_TRY(pd_yaml_check_keys(&n, keys, c->err));
  pd_yaml_node b = pd_yaml_get(&n, "bf16");
  if (!pd_yaml_present(&b)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&b, c->err));
  PD_TRY(pd_yaml_check_keys(&b, rec_keys, c->err));
  pd_yaml_node v;
  const char *hex = NULL;
  PD_TRY(pd_yaml_require(&b, "weights_sha256", &v, c->err));
  PD_TRY(pd_yaml_string(&v, 64, &hex, c->err));
  snprintf(r->weights_sha256, sizeof r->weights_sha256, "%.64s", hex);
  if (strlen(r->weights_sha256) != 64 || strspn(r->weights_sha256, "0123456789abcdef") != 64)
    return pd_yaml_fail(&v, c->err, PD_EINVAL, "weights_sha256 must be 64 lowercase hex digits");
  PD_TRY(pd_yaml_req_int(&b, "crops", 1, 100000000, &r->crops, c->err));
  const char *fkeys[] = {"top1_same", "log_loss_fp32", "log_loss_bf16"};
  double *fout[] = {&r->top1_same, &r->log_loss_fp32, &r->log_loss_bf16};
  for (int i = 0; i < 3; i++) {
    PD_TRY(pd_yaml_require(&b, fkeys[i], &v, c->err));
    PD_TRY(pd_yaml_float(&v, 0.0, i == 0 ? 1.0 : 1000.0, fout[i], c->err));
  }
  r->present = true;
  return PD_OK;
}

int pd_model__parse_serving(const pd_yaml_node *root, pd_serving *out, pd_error *err) {
  static const char *const keys[] = {"max_batch", "max_queue_delay_us", NULL};
  *out = (pd_serving){0};
  pd_yaml_node n = pd_yaml_get(root, "serving");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, err));
  PD_TRY(pd_yaml_check_keys(&n, keys, err));
  PD_TRY(pd_yaml_opt_int(&n, "max_batch", 1, 4096, &out->max_batch, err));
  pd_yaml_node d = pd_yaml_get(&n, "max_queue_delay_us");
  out->has_max_queue_delay = pd_yaml_present(&d);
  return pd_yaml_opt_int(&n, "max_queue_delay_us", 0, 10000000, &out->max_queue_delay_us, err);
}

int pd_model__parse_segmentation(const pd_yaml_node *root, pd_segmentation *out, pd_error *err) {
  static const char *const keys[] = {"background",   "threshold",      "min_area",  "max_area",
                                     "connectivity", "max_objects",    "keep_edge", "margin",
                                     "merge_gap",    "satellite_area", NULL};
  static const char *const backgrounds[] = {"column_median", "morph"};
  out->present = false;
  out->s = pd_segment_settings_default();
  pd_yaml_node n = pd_yaml_get(root, "segmentation");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, err));
  PD_TRY(pd_yaml_check_keys(&n, keys, err));
  pd_segment_settings *s = &out->s;
  int bg = (int)s->background, keep = s->keep_edge, min_area = (int)s->min_area;
  int max_area = (int)(s->max_area > INT32_MAX ? INT32_MAX : s->max_area);
  float threshold = (float)s->threshold, satellite = (float)s->satellite_area;
  PD_TRY(pd_yaml_opt_enum(&n, "background", backgrounds, 2, &bg, err));
  PD_TRY(pd_yaml_opt_float(&n, "threshold", 0.0, 1.0, &threshold, err));
  PD_TRY(pd_yaml_opt_int(&n, "min_area", 1, INT32_MAX, &min_area, err));
  PD_TRY(pd_yaml_opt_int(&n, "max_area", 1, INT32_MAX, &max_area, err));
  PD_TRY(pd_yaml_opt_int(&n, "connectivity", 4, 8, &s->connectivity, err));
  PD_TRY(pd_yaml_opt_int(&n, "max_objects", 1, PD_SEGMENT_MAX_OBJECTS, &s->max_objects, err));
  bool keep_edge = keep != 0;
  PD_TRY(pd_yaml_opt_bool(&n, "keep_edge", &keep_edge, err));
  PD_TRY(pd_yaml_opt_int(&n, "margin", 0, PD_SEGMENT_MAX_MARGIN, &s->margin, err));
  PD_TRY(pd_yaml_opt_int(&n, "merge_gap", 0, PD_SEGMENT_MAX_MERGE_GAP, &s->merge_gap, err));
  PD_TRY(pd_yaml_opt_float(&n, "satellite_area", 0.0, 1.0, &satellite, err));
  s->background = (pd_segment_background)bg;
  s->threshold = threshold;
  s->min_area = min_area;
  s->max_area = max_area;
  s->keep_edge = keep_edge ? 1 : 0;
  s->satellite_area = satellite;
  pd_error why = {0};
  if (pd_segment_settings_check(s, &why) != PD_OK) /* "segment: what": the key names the block */
    return pd_yaml_fail(&n, err, PD_EINVAL, "%s",
                        strncmp(why.msg, "segment: ", 9) == 0 ? why.msg + 9 : why.msg);
  out->present = true;
  return PD_OK;
}

/* An ensemble folder (models/FORMAT.md "Ensembles") is not one model. */
int pd_model__refuse_ensemble(const pd_yaml_node *root, pd_error *err) {
  pd_yaml_node ens = pd_yaml_get(root, "ensemble");
  if (!pd_yaml_present(&ens)) return PD_OK;
  return pd_yaml_fail(&ens, err, PD_EUNSUPP,
                      "this folder is an ensemble of model folders, not one model; an ensemble "
                      "member may not be an ensemble (list the members' own model folders)");
}

int pd_model__parse(load_ctx *c, const pd_yaml_node *root) {
  static const char *const keys[] = {"format",       "name",        "version",   "classes",
                                     "symmetry",     "input",       "branches",  "head",
                                     "tta",          "calibration", "precision", "serving",
                                     "segmentation", "thresholds",  "lineage",   NULL};
  pd_model *m = c->m;
  int sym = PD_SYM_NONE;
  PD_TRY(pd_model__refuse_ensemble(root, c->err));
  PD_TRY(pd_yaml_check_keys(root, keys, c->err));
  PD_TRY(parse_format(root, c->err));
  PD_TRY(pd_yaml_req_ident(root, "name", "._-", m->name, sizeof m->name, c->err));
  PD_TRY(pd_yaml_req_ident(root, "version", "._+-", m->version, sizeof m->version, c->err));
  PD_TRY(parse_classes(c, root));
  PD_TRY(pd_yaml_opt_enum(root, "symmetry", k_symmetry_names, 3, &sym, c->err));
  m->symmetry = (pd_symmetry)sym;
  m->views = sym == PD_SYM_NONE ? 1 : sym == PD_SYM_C4 ? 4 : 8;
  PD_TRY(parse_input_spec(c, root));
  PD_TRY(parse_branches(c, root));
  PD_TRY(parse_head(c, root));
  PD_TRY(parse_tta(c, root));
  PD_TRY(parse_precision(c, root));
  PD_TRY(pd_model__parse_serving(root, &m->serving, c->err));
  PD_TRY(pd_model__parse_segmentation(root, &m->segmentation, c->err));
  PD_TRY(pd_model__parse_outputs(c, root));
  return parse_calibration(c, root);
}
