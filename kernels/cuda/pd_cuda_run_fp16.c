/* The CUDA backend: the network of an fp16 plan (PD_CUDA_FP16) on the
 * plan's stream, pd_cuda__enqueue's counterpart of pd_cuda_run.c.
 *
 * Each tensor between layers is half or float, known per layer at plan time
 * (the same for every run, so graphs capture it):
 *  - a branch's float input rows are converted to half first (act[0]); its
 *    output is half in the head's input rows (head_in holds halves);
 *  - conv: the output filled with the bias (as half), then cuDNN on half
 *    tensors (FP32 compute) adds its sums to it (beta 1) and rounds once to
 *    half, then our leaky ReLU in float on it, stored half;
 *  - dense: cublasGemmEx, CUDA_R_16F weights and input, CUBLAS_COMPUTE_32F,
 *    output half, or float where dev_layer.out_float (the layer feeds a
 *    softmax or ends the head), then bias + activation in float;
 *  - cyclic and global pooling read half and sum in float, writing half or
 *    (out_float) float; slice, roll, max pooling, maxout and leaky ReLU
 *    work on half maps (on float ones after a float-writing layer);
 *  - softmax runs on float (a half input is converted first), so the
 *    probabilities are FP32; the head's result is converted to float if
 *    it is not already.
 * The conversions between half and float are kernels on the ping-pong
 * buffers (which hold act_floats floats, so either fits). Every call is
 * checked and names its layer and bucket, as in pd_cuda_run.c. */
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"
#include "pd_cuda_kernels_half.h"

typedef struct tensor {
  void *p;
  int half;
} tensor;

static void *other(cuda_plan *p, const void *cur) {
  return cur == p->act[0] ? (void *)p->act[1] : (void *)p->act[0];
}

/* cur as half (converted into the other buffer if it is float), n elements. */
static int to_half(cuda_plan *p, tensor *cur, size_t n, const where *w, pd_error *err) {
  if (cur->half) return PD_OK;
  void *out = other(p, cur->p);
  KERN(w, pd_cuda_h_from_f, (p->stream, cur->p, out, n));
  cur->p = out;
  cur->half = 1;
  return PD_OK;
}

static int to_float(cuda_plan *p, tensor *cur, size_t n, const where *w, pd_error *err) {
  if (!cur->half) return PD_OK;
  void *out = other(p, cur->p);
  KERN(w, pd_cuda_h_to_f, (p->stream, cur->p, out, n));
  cur->p = out;
  cur->half = 0;
  return PD_OK;
}

void pd_cuda__fp16_mark_outputs(cuda_plan *p) {
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      int j = i + 1;
      while (j < p->n_layers[list] && p->layers[list][j].l->kind == PD_LAYER_DROPOUT)
        j++;
      p->layers[list][i].out_float =
          j < p->n_layers[list] ? p->layers[list][j].l->kind == PD_LAYER_SOFTMAX : list == HEAD;
    }
}

static int run_layer_h(cuda_plan *p, const dev_layer *d, int k, tensor *cur, pd_error *err) {
  const pd_layer *l = d->l;
  const int nb = p->buckets[k];
  const cudaStream_t s = p->stream;
  const where w = {.layer = l, .bucket = nb};
  const size_t n_in = (size_t)nb * pd_shape_len(l->in), n_out = (size_t)nb * pd_shape_len(l->out);
  const float one = 1.0f, zero = 0.0f;
  const int leaky = l->activation == PD_ACT_LEAKY_RELU;
  int rc;
  switch (l->kind) {
  case PD_LAYER_CYCLIC_SLICE: {
    void *out = other(p, cur->p);
    if (cur->half)
      KERN(&w, pd_cuda_h_cyclic_slice, (s, cur->p, out, nb, l->out.views, l->in.h, l->in.c));
    else
      KERN(&w, pd_cuda_cyclic_slice, (s, cur->p, out, nb, l->out.views, l->in.h, l->in.c));
    cur->p = out;
    break;
  }
  case PD_LAYER_CONV: {
    if ((rc = to_half(p, cur, n_in, &w, err)) != PD_OK) return rc;
    const conv_bucket *cb = &d->cb[k];
    void *out = other(p, cur->p);
    /* The output starts as the bias and cuDNN adds its FP32 sums to it
     * (beta 1) before its one rounding to half: a sum rounded to half before
     * the bias was added would lose what cancels (the host emulation: 2.7e-3
     * instead of 2.0e-3 on the shipped model). HALF tensors with FLOAT
     * compute: alpha and beta are floats. */
    KERN(&w, pd_cuda_h_fill_bias,
         (s, out, (size_t)nb * l->out.views * l->out.h * l->out.w, l->filters, d->b));
    DNN(&w, cudnnConvolutionForward,
        (p->dnn, &one, cb->x, cur->p, d->filt, d->wh, cb->conv, cb->algo, p->ws, p->ws_bytes, &one,
         cb->y, out));
    if (leaky) KERN(&w, pd_cuda_h_leaky_relu, (s, out, n_out, l->slope));
    cur->p = out;
    break;
  }
  case PD_LAYER_LEAKY_RELU:
    if (cur->half)
      KERN(&w, pd_cuda_h_leaky_relu, (s, cur->p, n_in, l->slope));
    else
      KERN(&w, pd_cuda_leaky_relu, (s, cur->p, n_in, l->slope));
    break;
  case PD_LAYER_MAXPOOL: {
    void *out = other(p, cur->p);
    if (cur->half)
      KERN(&w, pd_cuda_h_maxpool,
           (s, cur->p, out, (size_t)nb * l->in.views, l->in.h, l->in.w, l->in.c, l->out.h, l->out.w,
            l->pool_size, l->pool_stride));
    else
      KERN(&w, pd_cuda_maxpool,
           (s, cur->p, out, (size_t)nb * l->in.views, l->in.h, l->in.w, l->in.c, l->out.h, l->out.w,
            l->pool_size, l->pool_stride));
    cur->p = out;
    break;
  }
  case PD_LAYER_CYCLIC_ROLL: {
    void *out = other(p, cur->p);
    if (cur->half)
      KERN(&w, pd_cuda_h_cyclic_roll,
           (s, cur->p, out, nb, l->in.views, l->in.h, l->in.w, l->in.c, p->d4));
    else
      KERN(&w, pd_cuda_cyclic_roll,
           (s, cur->p, out, nb, l->in.views, l->in.h, l->in.w, l->in.c, p->d4));
    cur->p = out;
    break;
  }
  case PD_LAYER_CYCLIC_POOL: {
    void *out = other(p, cur->p);
    const size_t len = (size_t)l->in.h * l->in.w * l->in.c;
    if (cur->half) {
      KERN(&w, pd_cuda_h_cyclic_pool,
           (s, cur->p, out, !d->out_float, nb, l->in.views, len, (int)l->cpool_mode));
      cur->half = !d->out_float;
    } else {
      KERN(&w, pd_cuda_cyclic_pool, (s, cur->p, out, nb, l->in.views, len, (int)l->cpool_mode));
    }
    cur->p = out;
    break;
  }
  case PD_LAYER_DENSE: {
    if ((rc = to_half(p, cur, n_in, &w, err)) != PD_OK) return rc;
    /* Row-major out[rows][N] = in[rows][K] * W[N][K]^T, as in pd_cuda_run.c,
     * with half A and B, FP32 accumulation, C half or (out_float) float. */
    const int rows = nb * l->in.views, K = l->in.h * l->in.w * l->in.c, N = l->units;
    void *out = other(p, cur->p);
    BLAS(&w, cublasGemmEx,
         (p->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, rows, K, &one, d->wh, CUDA_R_16F, K, cur->p,
          CUDA_R_16F, K, &zero, out, d->out_float ? CUDA_R_32F : CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
          CUBLAS_GEMM_DEFAULT));
    if (d->out_float)
      KERN(&w, pd_cuda_bias_act, (s, out, (size_t)rows, N, d->b, leaky, l->slope));
    else
      KERN(&w, pd_cuda_h_bias_act, (s, out, (size_t)rows, N, d->b, leaky, l->slope));
    cur->p = out;
    cur->half = !d->out_float;
    break;
  }
  case PD_LAYER_MAXOUT: {
    void *out = other(p, cur->p);
    const size_t rows = (size_t)nb * l->in.views * l->in.h * l->in.w;
    if (cur->half)
      KERN(&w, pd_cuda_h_maxout, (s, cur->p, out, rows, l->in.c, l->pieces));
    else
      KERN(&w, pd_cuda_maxout, (s, cur->p, out, rows, l->in.c, l->pieces));
    cur->p = out;
    break;
  }
  case PD_LAYER_GLOBAL_AVG_POOL: {
    void *out = other(p, cur->p);
    const size_t maps = (size_t)nb * l->in.views;
    if (cur->half) {
      KERN(&w, pd_cuda_h_global_avg_pool,
           (s, cur->p, out, !d->out_float, maps, l->in.h * l->in.w, l->in.c));
      cur->half = !d->out_float;
    } else {
      KERN(&w, pd_cuda_global_avg_pool, (s, cur->p, out, maps, l->in.h * l->in.w, l->in.c));
    }
    cur->p = out;
    break;
  }
  case PD_LAYER_DROPOUT:
    break;
  case PD_LAYER_SOFTMAX:
    if ((rc = to_float(p, cur, n_in, &w, err)) != PD_OK) return rc;
    KERN(&w, pd_cuda_softmax, (s, cur->p, (size_t)nb * l->in.views, l->in.h * l->in.w * l->in.c));
    break;
  case PD_LAYER_KIND_COUNT:
    return pd_error_set(err, PD_EINTERNAL, "layer '%s': unknown kind", l->name);
  }
  if (d->out_float && (rc = to_float(p, cur, n_out, &w, err)) != PD_OK) return rc;
  if (p->sync_layers) CU(&w, cudaStreamSynchronize, (s));
  return PD_OK;
}

static int run_list_h(cuda_plan *p, int list, int k, tensor *cur, trace *t, pd_error *err) {
  for (int i = 0; i < p->n_layers[list]; i++) {
    int rc = run_layer_h(p, &p->layers[list][i], k, cur, err);
    if (rc == PD_OK) rc = pd_cuda__trace_layer(p, t, list, i, cur->p, cur->half, err);
    if (rc != PD_OK || pd_cuda__trace_stopped(t)) return rc;
  }
  return PD_OK;
}

int pd_cuda__enqueue_fp16(cuda_plan *p, int k, const float **result, trace *t, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const int nb = p->buckets[k];
  pd_half *head = (pd_half *)(void *)p->head_in;
  size_t offset = 0;
  int rc;
  for (int b = 0; b < m->n_branches; b++) {
    const where wi = {.step = "branch input to half"};
    KERN(&wi, pd_cuda_h_from_f,
         (p->stream, p->in[b], (pd_half *)(void *)p->act[0],
          (size_t)nb * pd_graph_branch_input_len(m, b)));
    tensor cur = {.p = p->act[0], .half = 1};
    if ((rc = run_list_h(p, b, k, &cur, t, err)) != PD_OK || pd_cuda__trace_stopped(t)) return rc;
    const size_t width = (size_t)m->branches[b].out.c;
    const where w = {.step = "branch concatenation"};
    if ((rc = to_half(p, &cur, (size_t)nb * width, &w, err)) != PD_OK) return rc;
    CU(&w, cudaMemcpy2DAsync,
       (head + offset, (size_t)m->head_in * sizeof(pd_half), cur.p, width * sizeof(pd_half),
        width * sizeof(pd_half), (size_t)nb, cudaMemcpyDeviceToDevice, p->stream));
    offset += width;
  }
  tensor cur = {.p = head, .half = 1};
  if ((rc = run_list_h(p, HEAD, k, &cur, t, err)) != PD_OK || pd_cuda__trace_stopped(t)) return rc;
  const where wp = {.step = "probabilities to float"};
  if ((rc = to_float(p, &cur, (size_t)nb * m->n_classes, &wp, err)) != PD_OK) return rc;
  *result = cur.p;
  return PD_OK;
}
