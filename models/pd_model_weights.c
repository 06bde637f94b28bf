/* The loader, stage 3: the tensors of weights.safetensors (through
 * pd_safetensors) checked against the layers (names, shapes, dtype, no
 * extras), converted from PyTorch's layouts into the engine's (conv OHWI,
 * dense in h, w, c order) in one aligned float allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_model_internal.h"
#include "pd_safetensors.h"

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

static int check_tensor(const load_ctx *c, pd_safetensors_file *st, const pd_layer *l,
                        const char *suffix, const int64_t *shape, int ndim) {
  char name[PD_NAME_LEN + 16], want[128], got[128], desc[64];
  snprintf(name, sizeof name, "%s.%s", l->name, suffix);
  pd_safetensors_tensor *t = pd_safetensors_find(st, name);
  if (!t)
    return pd_error_set(
        c->err, PD_EFORMAT, "%s: missing tensor '%s' (shape %s) for layer %s (%s) at %s:%d",
        c->weights_name, name, pd_safetensors_format_shape(shape, ndim, want, sizeof want), l->name,
        pd_model__describe_layer(l, desc, sizeof desc), c->yaml_name, l->line);
  if (t->dtype != PD_DTYPE_F32 && t->dtype != PD_DTYPE_F16)
    return pd_error_set(c->err, PD_EUNSUPP, "%s: tensor '%s' has dtype %s; expected F32 or F16",
                        c->weights_name, name, t->dtype_name);
  bool same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = t->shape[i] == shape[i];
  if (!same)
    return pd_error_set(
        c->err, PD_EFORMAT, "%s: tensor '%s' has shape %s but layer %s (%s) at %s:%d needs %s",
        c->weights_name, name, pd_safetensors_format_shape(t->shape, t->ndim, got, sizeof got),
        l->name, pd_model__describe_layer(l, desc, sizeof desc), c->yaml_name, l->line,
        pd_safetensors_format_shape(shape, ndim, want, sizeof want));
  t->used = 1;
  return PD_OK;
}

static int check_extra_tensors(const load_ctx *c, const pd_safetensors_file *st) {
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
static int check_weights(load_ctx *c, pd_safetensors_file *st, size_t *total) {
  *total = 0;
  for (int i = 0; i < c->n_all; i++) {
    const pd_layer *l = c->all[i];
    if (!has_weights(l)) continue;
    int64_t wshape[4];
    int wdim = torch_weight_shape(l, wshape);
    int64_t bshape[1] = {wshape[0]};
    PD_TRY(check_tensor(c, st, l, "weight", wshape, wdim));
    PD_TRY(check_tensor(c, st, l, "bias", bshape, 1));
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

static int read_tensor(const load_ctx *c, pd_safetensors_file *st, const pd_layer *l,
                       const char *suffix, float *dst, size_t n) {
  char name[PD_NAME_LEN + 16];
  snprintf(name, sizeof name, "%s.%s", l->name, suffix);
  int rc = pd_safetensors_to_f32(pd_safetensors_find(st, name), dst, n, c->err);
  if (rc != PD_OK) pd_error_prefix(c->err, "%s", c->weights_name);
  return rc;
}

static int convert_layer(const load_ctx *c, pd_safetensors_file *st, pd_layer *l, float *dst) {
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

int pd_model__load_weights(load_ctx *c, const unsigned char *buf, size_t len) {
  pd_safetensors_file st;
  PD_TRY(pd_safetensors_parse(buf, len, c->weights_name, &st, c->err));
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
  pd_safetensors_free(&st);
  return rc;
}
