/* oneDNN ops: primitive creation (weights reordered once into the layout
 * the chosen implementation wants, a user-managed scratchpad per slot) and
 * execution on caller-owned activations. */
#include "pd_onednn.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PD_ONEDNN_IMPL_LEN 64

struct pd_onednn {
  dnnl_engine_t engine;
};

/* What one caller thread runs the op with. */
typedef struct onednn_slot {
  dnnl_stream_t stream;
  dnnl_memory_t src, dst, scratch; /* conv: fixed shapes, handles set per run */
  void *scratch_buf;
  /* bf16 conv: the input converted to bf16 before the convolution */
  dnnl_memory_t src_lp;
  void *src_lp_buf;
  /* dense: memory objects per row count, made on the first run with it */
  dnnl_memory_t *rows_src, *rows_dst;
} onednn_slot;

struct pd_onednn_op {
  pd_onednn *eng;
  int dense;
  int max_rows; /* dense: row counts with cached memory objects (more: made per run) */
  int in_len, units;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  dnnl_primitive_t src_reorder; /* bf16: f32 -> bf16 input */
  dnnl_memory_t weights, bias;
  void *weights_buf, *bias_buf;
  dnnl_memory_desc_t src_md, dst_md, src_lp_md;
  int n_slots;
  onednn_slot *slots;
  char impl[PD_ONEDNN_IMPL_LEN];
};

static const char *const precision_names[PD_ONEDNN_PRECISION_COUNT] = {"fp32", "bf16"};

const char *pd_onednn_precision_name(pd_onednn_precision p) {
  return p >= 0 && p < PD_ONEDNN_PRECISION_COUNT ? precision_names[p] : "?";
}

int pd_onednn_precision_parse(const char *name, pd_onednn_precision *out, pd_error *err) {
  for (int p = 0; p < PD_ONEDNN_PRECISION_COUNT; p++)
    if (strcmp(name, precision_names[p]) == 0) {
      *out = (pd_onednn_precision)p;
      return PD_OK;
    }
  return pd_error_set(err, PD_EINVAL, "onednn: unknown precision '%s' (use fp32 or bf16)", name);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_sse41:
    return "sse41";
  case dnnl_cpu_isa_avx:
    return "avx";
  case dnnl_cpu_isa_avx2:
    return "avx2";
  case dnnl_cpu_isa_avx2_vnni:
    return "avx2_vnni";
  case dnnl_cpu_isa_avx512_mic:
    return "avx512_mic";
  case dnnl_cpu_isa_avx512_mic_4ops:
    return "avx512_mic_4ops";
  case dnnl_cpu_isa_avx512_core:
    return "avx512_core";
  case dnnl_cpu_isa_avx512_core_vnni:
    return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core_bf16:
    return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_amx:
    return "avx512_core_amx";
  default:
    return "unknown";
  }
}

int pd_onednn_precision_available(pd_onednn_precision p) {
  if (p == PD_ONEDNN_FP32) return 1;
  if (p != PD_ONEDNN_BF16) return 0;
  /* The ISA values are bit sets, each containing the ones below it. */
  const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
  const unsigned bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
  return (isa & bf16) == bf16;
}

void pd_onednn_precisions_available(char *buf, size_t len) {
  size_t used = 0;
  if (len) buf[0] = '\0';
  for (int p = 0; p < PD_ONEDNN_PRECISION_COUNT; p++) {
    if (!pd_onednn_precision_available((pd_onednn_precision)p)) continue;
    int n = snprintf(buf + used, len > used ? len - used : 0, "%s%s", used ? ", " : "",
                     precision_names[p]);
    if (n > 0) used += (size_t)n;
    if (used >= len) break;
  }
}

int pd_onednn_precision_check(pd_onednn_precision p, pd_error *err) {
  if (p < 0 || p >= PD_ONEDNN_PRECISION_COUNT)
    return pd_error_set(err, PD_EINVAL, "onednn: precision %d out of range", (int)p);
  if (pd_onednn_precision_available(p)) return PD_OK;
  char can[64];
  pd_onednn_precisions_available(can, sizeof can);
  return pd_error_set(err, PD_EUNSUPP,
                      "onednn: precision %s needs AVX-512 BF16 or AMX, which this CPU lacks "
                      "(oneDNN dispatches to %s); it runs: %s",
                      precision_names[p], isa_name(dnnl_get_effective_cpu_isa()), can);
}

void pd_onednn_describe(char *buf, size_t len) {
  const dnnl_version_t *v = dnnl_version();
  snprintf(buf, len, "oneDNN %d.%d.%d (isa %s)", v->major, v->minor, v->patch,
           isa_name(dnnl_get_effective_cpu_isa()));
}

void pd_onednn_set_threads(int n) {
  omp_set_num_threads(n > 0 ? n : 1);
}

static int dnnl_fail(pd_error *err, dnnl_status_t st, const char *what) {
  int code = st == dnnl_out_of_memory   ? PD_ENOMEM
             : st == dnnl_unimplemented ? PD_EUNSUPP
                                        : PD_EINTERNAL;
  return pd_error_set(err, code, "onednn: %s failed: %s", what, dnnl_status2str(st));
}

#define DNNL_TRY(call, what)                                                                       \
  do {                                                                                             \
    dnnl_status_t st_ = (call);                                                                    \
    if (st_ != dnnl_success) return dnnl_fail(err, st_, (what));                                   \
  } while (0)

int pd_onednn_create(pd_onednn **out, pd_error *err) {
  pd_onednn *e = calloc(1, sizeof *e);
  if (!e) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for the engine");
  dnnl_status_t st = dnnl_engine_create(&e->engine, dnnl_cpu, 0);
  if (st != dnnl_success) {
    free(e);
    return dnnl_fail(err, st, "creating the CPU engine");
  }
  *out = e;
  return PD_OK;
}

void pd_onednn_destroy(pd_onednn *e) {
  if (!e) return;
  dnnl_engine_destroy(e->engine);
  free(e);
}

static void *alloc_bytes(size_t n) {
  size_t bytes = ((n ? n : 1) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

void pd_onednn_op_destroy(pd_onednn_op *op) {
  if (!op) return;
  for (int s = 0; op->slots && s < op->n_slots; s++) {
    onednn_slot *sl = &op->slots[s];
    if (sl->stream) dnnl_stream_destroy(sl->stream);
    if (sl->src) dnnl_memory_destroy(sl->src);
    if (sl->dst) dnnl_memory_destroy(sl->dst);
    if (sl->scratch) dnnl_memory_destroy(sl->scratch);
    if (sl->src_lp) dnnl_memory_destroy(sl->src_lp);
    for (int r = 0; r <= op->max_rows && sl->rows_src; r++) {
      if (sl->rows_src[r]) dnnl_memory_destroy(sl->rows_src[r]);
      if (sl->rows_dst[r]) dnnl_memory_destroy(sl->rows_dst[r]);
    }
    free(sl->rows_src);
    free(sl->rows_dst);
    free(sl->scratch_buf);
    free(sl->src_lp_buf);
  }
  free(op->slots);
  if (op->prim) dnnl_primitive_destroy(op->prim);
  if (op->src_reorder) dnnl_primitive_destroy(op->src_reorder);
  if (op->pd) dnnl_primitive_desc_destroy(op->pd);
  if (op->weights) dnnl_memory_destroy(op->weights);
  if (op->bias) dnnl_memory_destroy(op->bias);
  free(op->weights_buf);
  free(op->bias_buf);
  free(op);
}

/* Reorders user memory (md, data) into the primitive's weights layout. */
static int load_weights(pd_onednn_op *op, const dnnl_memory_desc_t *user_md, const float *data,
                        pd_error *err) {
  dnnl_engine_t eng = op->eng->engine;
  const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(op->pd, dnnl_query_weights_md, 0);
  op->weights_buf = alloc_bytes(dnnl_memory_desc_get_size(want));
  if (!op->weights_buf) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for weights");
  DNNL_TRY(dnnl_memory_create(&op->weights, want, eng, op->weights_buf), "weights memory");
  dnnl_memory_t user = NULL;
  DNNL_TRY(dnnl_memory_create(&user, user_md, eng, (void *)data), "user weights memory");
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_stream_t stream = NULL;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rpd, user_md, eng, want, eng, NULL);
  if (st == dnnl_success) st = dnnl_primitive_create(&reorder, rpd);
  if (st == dnnl_success) st = dnnl_stream_create(&stream, eng, dnnl_stream_default_flags);
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, op->weights}};
    st = dnnl_primitive_execute(reorder, stream, 2, args);
  }
  if (st == dnnl_success) st = dnnl_stream_wait(stream);
  if (stream) dnnl_stream_destroy(stream);
  if (reorder) dnnl_primitive_destroy(reorder);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  dnnl_memory_destroy(user);
  if (st != dnnl_success) return dnnl_fail(err, st, "reordering the weights");
  return PD_OK;
}

static int load_bias(pd_onednn_op *op, int n, const float *bias, pd_error *err) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(op->pd, dnnl_query_weights_md, 1);
  op->bias_buf = alloc_bytes(dnnl_memory_desc_get_size(md));
  if (!op->bias_buf) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for the bias");
  float *b = op->bias_buf;
  for (int i = 0; i < n; i++)
    b[i] = bias ? bias[i] : 0.0f;
  DNNL_TRY(dnnl_memory_create(&op->bias, md, op->eng->engine, op->bias_buf), "bias memory");
  return PD_OK;
}

static int make_attr(pd_onednn_act act, dnnl_primitive_attr_t *out, pd_error *err) {
  dnnl_primitive_attr_t attr = NULL;
  DNNL_TRY(dnnl_primitive_attr_create(&attr), "creating attributes");
  dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (st == dnnl_success && act.leaky) {
    dnnl_post_ops_t po = NULL;
    st = dnnl_post_ops_create(&po);
    if (st == dnnl_success)
      st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, act.slope, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (po) dnnl_post_ops_destroy(po);
  }
  if (st != dnnl_success) {
    dnnl_primitive_attr_destroy(attr);
    return dnnl_fail(err, st, "setting the leaky ReLU post-op");
  }
  *out = attr;
  return PD_OK;
}

static int finish_pd(pd_onednn_op *op, const void *desc, dnnl_primitive_attr_t attr,
                     pd_error *err) {
  dnnl_status_t st = dnnl_primitive_desc_create(&op->pd, desc, attr, op->eng->engine, NULL);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return dnnl_fail(err, st, "choosing an implementation");
  const char *impl = NULL;
  DNNL_TRY(dnnl_primitive_desc_query(op->pd, dnnl_query_impl_info_str, 0, (void *)&impl),
           "querying the implementation");
  snprintf(op->impl, sizeof op->impl, "%s", impl ? impl : "?");
  DNNL_TRY(dnnl_primitive_create(&op->prim, op->pd), "creating the primitive");
  return PD_OK;
}

static int make_slots(pd_onednn_op *op, int slots, pd_error *err) {
  dnnl_engine_t eng = op->eng->engine;
  op->slots = calloc((size_t)slots, sizeof *op->slots);
  if (!op->slots) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for slots");
  op->n_slots = slots;
  const dnnl_memory_desc_t *scratch_md =
      dnnl_primitive_desc_query_md(op->pd, dnnl_query_scratchpad_md, 0);
  const size_t scratch_bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
  for (int s = 0; s < slots; s++) {
    onednn_slot *sl = &op->slots[s];
    DNNL_TRY(dnnl_stream_create(&sl->stream, eng, dnnl_stream_default_flags), "creating a stream");
    if (scratch_bytes) {
      sl->scratch_buf = alloc_bytes(scratch_bytes);
      if (!sl->scratch_buf)
        return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for a %zu-byte scratchpad",
                            scratch_bytes);
      DNNL_TRY(dnnl_memory_create(&sl->scratch, scratch_md, eng, sl->scratch_buf),
               "scratchpad memory");
    }
    if (op->dense) {
      sl->rows_src = calloc((size_t)op->max_rows + 1, sizeof(dnnl_memory_t));
      sl->rows_dst = calloc((size_t)op->max_rows + 1, sizeof(dnnl_memory_t));
      if (!sl->rows_src || !sl->rows_dst)
        return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for slots");
      continue;
    }
    DNNL_TRY(dnnl_memory_create(&sl->src, &op->src_md, eng, DNNL_MEMORY_NONE), "input memory");
    DNNL_TRY(dnnl_memory_create(&sl->dst, &op->dst_md, eng, DNNL_MEMORY_NONE), "output memory");
    if (op->src_reorder) {
      sl->src_lp_buf = alloc_bytes(dnnl_memory_desc_get_size(&op->src_lp_md));
      if (!sl->src_lp_buf) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for inputs");
      DNNL_TRY(dnnl_memory_create(&sl->src_lp, &op->src_lp_md, eng, sl->src_lp_buf),
               "bf16 input memory");
    }
  }
  return PD_OK;
}

static int conv_check(const pd_onednn_conv_shape *s, int slots, pd_error *err) {
  if (s->n < 1 || s->h < 1 || s->w < 1 || s->c < 1 || s->k < 1 || s->kernel < 1 || s->stride < 1 ||
      s->pad < 0 || slots < 1)
    return pd_error_set(err, PD_EINVAL,
                        "onednn: bad convolution n %d %dx%dx%d -> %d, kernel %d stride %d pad %d "
                        "(slots %d)",
                        s->n, s->h, s->w, s->c, s->k, s->kernel, s->stride, s->pad, slots);
  if (s->h + 2 * s->pad < s->kernel || s->w + 2 * s->pad < s->kernel)
    return pd_error_set(err, PD_EINVAL, "onednn: kernel %d larger than the padded %dx%d map",
                        s->kernel, s->h + 2 * s->pad, s->w + 2 * s->pad);
  return PD_OK;
}

static int conv_build(pd_onednn_op *op, const pd_onednn_conv_shape *s, const float *weight,
                      const float *bias, pd_onednn_act act, pd_onednn_precision prec, int slots,
                      pd_error *err) {
  const int oh = (s->h + 2 * s->pad - s->kernel) / s->stride + 1;
  const int ow = (s->w + 2 * s->pad - s->kernel) / s->stride + 1;
  const dnnl_data_type_t lp = prec == PD_ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
  dnnl_dims_t src_dims = {s->n, s->c, s->h, s->w}, dst_dims = {s->n, s->k, oh, ow};
  dnnl_dims_t w_dims = {s->k, s->c, s->kernel, s->kernel}, b_dims = {s->k};
  dnnl_dims_t strides = {s->stride, s->stride}, pad = {s->pad, s->pad};
  dnnl_memory_desc_t src_any, w_any, b_md, w_user;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&op->src_md, 4, src_dims, dnnl_f32, dnnl_nhwc), "src md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, lp, dnnl_nhwc), "src md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&op->dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc), "dst md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, lp, dnnl_format_tag_any), "weights md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_ohwi), "weights md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x), "bias md");
  dnnl_convolution_desc_t cd;
  DNNL_TRY(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                              &src_any, &w_any, &b_md, &op->dst_md, strides, pad,
                                              NULL),
           "describing the convolution");
  dnnl_primitive_attr_t attr = NULL;
  PD_TRY(make_attr(act, &attr, err));
  PD_TRY(finish_pd(op, &cd, attr, err));
  if (prec == PD_ONEDNN_BF16) {
    op->src_lp_md = src_any;
    dnnl_primitive_desc_t rpd = NULL;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, &op->src_md, op->eng->engine, &src_any,
                                                op->eng->engine, NULL),
             "describing the bf16 input conversion");
    dnnl_status_t st = dnnl_primitive_create(&op->src_reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) return dnnl_fail(err, st, "creating the bf16 input conversion");
  }
  PD_TRY(load_weights(op, &w_user, weight, err));
  PD_TRY(load_bias(op, s->k, bias, err));
  return make_slots(op, slots, err);
}

int pd_onednn_conv_create(pd_onednn *e, const pd_onednn_conv_shape *s, const float *weight_ohwi,
                          const float *bias, pd_onednn_act act, pd_onednn_precision prec, int slots,
                          pd_onednn_op **out, pd_error *err) {
  PD_TRY(conv_check(s, slots, err));
  PD_TRY(pd_onednn_precision_check(prec, err));
  pd_onednn_op *op = calloc(1, sizeof *op);
  if (!op) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for an op");
  op->eng = e;
  int rc = conv_build(op, s, weight_ohwi, bias, act, prec, slots, err);
  if (rc != PD_OK) {
    pd_onednn_op_destroy(op);
    return pd_error_prefix(err, "%dx%d conv %dx%dx%d -> %d stride %d", s->kernel, s->kernel, s->h,
                           s->w, s->c, s->k, s->stride);
  }
  *out = op;
  return PD_OK;
}

/* Row counts up to this have their memory objects cached per slot. */
#define PD_ONEDNN_DENSE_CACHED_ROWS 1024

static int dense_build(pd_onednn_op *op, const float *weight, const float *bias, pd_onednn_act act,
                       int slots, pd_error *err) {
  dnnl_dims_t src_dims = {DNNL_RUNTIME_DIM_VAL, op->in_len};
  dnnl_dims_t dst_dims = {DNNL_RUNTIME_DIM_VAL, op->units};
  dnnl_dims_t w_dims = {op->in_len, op->units}, b_dims = {1, op->units};
  dnnl_memory_desc_t w_any, w_user, b_md;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&op->src_md, 2, src_dims, dnnl_f32, dnnl_ab), "src md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&op->dst_md, 2, dst_dims, dnnl_f32, dnnl_ab), "dst md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 2, w_dims, dnnl_f32, dnnl_format_tag_any),
           "weights md");
  /* W (units x in_len, row-major) is the in_len x units matrix in column-major order. */
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_user, 2, w_dims, dnnl_f32, dnnl_ba), "weights md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, b_dims, dnnl_f32, dnnl_ab), "bias md");
  dnnl_matmul_desc_t md;
  DNNL_TRY(dnnl_matmul_desc_init(&md, &op->src_md, &w_any, &b_md, &op->dst_md),
           "describing the matmul");
  dnnl_primitive_attr_t attr = NULL;
  PD_TRY(make_attr(act, &attr, err));
  PD_TRY(finish_pd(op, &md, attr, err));
  PD_TRY(load_weights(op, &w_user, weight, err));
  PD_TRY(load_bias(op, op->units, bias, err));
  op->max_rows = PD_ONEDNN_DENSE_CACHED_ROWS;
  return make_slots(op, slots, err);
}

int pd_onednn_dense_create(pd_onednn *e, int in_len, int units, const float *weight,
                           const float *bias, pd_onednn_act act, pd_onednn_precision prec,
                           int slots, pd_onednn_op **out, pd_error *err) {
  if (in_len < 1 || units < 1 || slots < 1)
    return pd_error_set(err, PD_EINVAL, "onednn: bad dense layer %d -> %d (slots %d)", in_len,
                        units, slots);
  PD_TRY(pd_onednn_precision_check(prec, err));
  if (prec != PD_ONEDNN_FP32)
    return pd_error_set(err, PD_EUNSUPP,
                        "onednn: dense %d -> %d: only fp32 dense layers are implemented (asked %s)",
                        in_len, units, pd_onednn_precision_name(prec));
  pd_onednn_op *op = calloc(1, sizeof *op);
  if (!op) return pd_error_set(err, PD_ENOMEM, "onednn: out of memory for an op");
  op->eng = e;
  op->dense = 1;
  op->in_len = in_len;
  op->units = units;
  int rc = dense_build(op, weight, bias, act, slots, err);
  if (rc != PD_OK) {
    pd_onednn_op_destroy(op);
    return pd_error_prefix(err, "dense %d -> %d", in_len, units);
  }
  *out = op;
  return PD_OK;
}

/* The dense op's memory objects for `rows` rows (cached per slot). */
static int dense_mems(pd_onednn_op *op, onednn_slot *sl, int rows, dnnl_memory_t *src,
                      dnnl_memory_t *dst, pd_error *err) {
  if (rows <= op->max_rows && sl->rows_src[rows]) {
    *src = sl->rows_src[rows];
    *dst = sl->rows_dst[rows];
    return PD_OK;
  }
  dnnl_dims_t sd = {rows, op->in_len}, dd = {rows, op->units};
  dnnl_memory_desc_t smd, dmd;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_ab), "src md");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab), "dst md");
  dnnl_memory_t s = NULL, d = NULL;
  DNNL_TRY(dnnl_memory_create(&s, &smd, op->eng->engine, DNNL_MEMORY_NONE), "input memory");
  dnnl_status_t st = dnnl_memory_create(&d, &dmd, op->eng->engine, DNNL_MEMORY_NONE);
  if (st != dnnl_success) {
    dnnl_memory_destroy(s);
    return dnnl_fail(err, st, "output memory");
  }
  if (rows <= op->max_rows) {
    sl->rows_src[rows] = s;
    sl->rows_dst[rows] = d;
  }
  *src = s;
  *dst = d;
  return PD_OK;
}

int pd_onednn_run(pd_onednn_op *op, int slot, int rows, const float *in, float *out,
                  pd_error *err) {
  if (slot < 0 || slot >= op->n_slots)
    return pd_error_set(err, PD_EINVAL, "onednn: slot %d out of range 0..%d", slot,
                        op->n_slots - 1);
  onednn_slot *sl = &op->slots[slot];
  dnnl_memory_t src = sl->src, dst = sl->dst;
  if (op->dense) {
    if (rows < 1) return pd_error_set(err, PD_EINVAL, "onednn: dense run with %d rows", rows);
    PD_TRY(dense_mems(op, sl, rows, &src, &dst, err));
  }
  const int temporary = op->dense && rows > op->max_rows;
  const char *what = "setting the input";
  dnnl_status_t st = dnnl_memory_set_data_handle(src, (void *)in);
  if (st == dnnl_success) {
    what = "setting the output";
    st = dnnl_memory_set_data_handle(dst, out);
  }
  dnnl_memory_t conv_src = src;
  if (st == dnnl_success && op->src_reorder) {
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, sl->src_lp}};
    what = "converting the input to bf16";
    st = dnnl_primitive_execute(op->src_reorder, sl->stream, 2, rargs);
    conv_src = sl->src_lp;
  }
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, conv_src},
                               {DNNL_ARG_WEIGHTS, op->weights},
                               {DNNL_ARG_BIAS, op->bias},
                               {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, sl->scratch}};
    what = "running the primitive";
    st = dnnl_primitive_execute(op->prim, sl->stream, sl->scratch ? 5 : 4, args);
  }
  if (st == dnnl_success) {
    what = "waiting for the primitive";
    st = dnnl_stream_wait(sl->stream);
  }
  if (temporary) {
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(dst);
  }
  return st == dnnl_success ? PD_OK : dnnl_fail(err, st, what);
}

const char *pd_onednn_op_impl(const pd_onednn_op *op) {
  return op->impl;
}
