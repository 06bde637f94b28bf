/* The CUDA backend (design in pd_cuda_backend.h). Host code in C over the
 * CUDA runtime, cuDNN and cuBLAS C APIs; the kernels are in pd_cuda_kernels.cu.
 * A plan is built in steps (handles, weights, buffers, per-bucket cuDNN
 * descriptors and algorithms, workspace, warm-up, optional graphs), each
 * freeing nothing on failure: plan_destroy frees whatever a partial plan
 * holds. Every CUDA/cuDNN/cuBLAS call goes through CU/DNN/BLAS, which return
 * an error naming the call, its error name and the layer or step. */
#include "pd_cuda_backend.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "pd_cuda_kernels.h"
#include "pd_cuda_test.h"

#ifndef PD_CUDA_ARCHS
#define PD_CUDA_ARCHS "unknown"
#endif

#define MAX_BUCKETS 32
#define DEFAULT_WORKSPACE_LIMIT ((size_t)256 << 20)
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLAS's recommendation for Hopper */
#define ALIGN_FLOATS 64                         /* 256-byte alignment of each weight tensor */

/* ---- error reporting ---- */

/* Where a call failed: a plan step, or a layer at a batch bucket. */
typedef struct where {
  const char *step;
  const pd_layer *layer;
  int bucket; /* images in the bucket, 0 if none */
} where;

static void where_text(const where *w, char *buf, size_t len) {
  if (w->layer && w->bucket)
    snprintf(buf, len, "layer '%s' (%s, batch bucket %d)", w->layer->name,
             pd_layer_kind_name(w->layer->kind), w->bucket);
  else if (w->layer)
    snprintf(buf, len, "layer '%s' (%s)", w->layer->name, pd_layer_kind_name(w->layer->kind));
  else
    snprintf(buf, len, "%s", w->step ? w->step : "?");
}

static int cu_code(cudaError_t e) {
  switch (e) {
  case cudaErrorMemoryAllocation:
    return PD_ENOMEM;
  case cudaErrorInsufficientDriver:
  case cudaErrorNoDevice:
  case cudaErrorNoKernelImageForDevice:
  case cudaErrorInvalidDeviceFunction:
    return PD_EUNSUPP;
  default:
    return PD_EINTERNAL;
  }
}

static int cu_fail(pd_error *err, const where *w, const char *call, cudaError_t e) {
  char at[192];
  where_text(w, at, sizeof at);
  (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
  return pd_error_set(err, cu_code(e), "%s: %s: %s (%s)", at, call, cudaGetErrorName(e),
                      cudaGetErrorString(e));
}

static int dnn_fail(pd_error *err, const where *w, const char *call, cudnnStatus_t s) {
  char at[192], detail[256];
  where_text(w, at, sizeof at);
  detail[0] = '\0';
  cudnnGetLastErrorString(detail, sizeof detail);
  return pd_error_set(err, s == CUDNN_STATUS_ALLOC_FAILED ? PD_ENOMEM : PD_EINTERNAL,
                      "%s: %s: %s%s%s%s", at, call, cudnnGetErrorString(s), detail[0] ? " (" : "",
                      detail, detail[0] ? ")" : "");
}

static int blas_fail(pd_error *err, const where *w, const char *call, cublasStatus_t s) {
  char at[192];
  where_text(w, at, sizeof at);
  return pd_error_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? PD_ENOMEM : PD_EINTERNAL,
                      "%s: %s: %s (%s)", at, call, cublasGetStatusName(s),
                      cublasGetStatusString(s));
}

/* CU(w, cudaMemcpyAsync, (dst, src, ...)): call, and on failure return an
 * error naming the function, its status and *w. Needs `pd_error *err` in scope. */
#define CU(w, fn, args)                                                                            \
  do {                                                                                             \
    cudaError_t e_ = fn args;                                                                      \
    if (e_ != cudaSuccess) return cu_fail(err, (w), #fn, e_);                                      \
  } while (0)
#define DNN(w, fn, args)                                                                           \
  do {                                                                                             \
    cudnnStatus_t s_ = fn args;                                                                    \
    if (s_ != CUDNN_STATUS_SUCCESS) return dnn_fail(err, (w), #fn, s_);                            \
  } while (0)
#define BLAS(w, fn, args)                                                                          \
  do {                                                                                             \
    cublasStatus_t s_ = fn args;                                                                   \
    if (s_ != CUBLAS_STATUS_SUCCESS) return blas_fail(err, (w), #fn, s_);                          \
  } while (0)
/* For our kernel launchers (they return the launch's cudaError_t). */
#define KERN(w, fn, args) CU(w, fn, args)

/* ---- the backend ---- */

typedef struct cuda_backend {
  pd_backend base;
  pd_cuda_options opt;
  char describe[512];
} cuda_backend;

pd_cuda_options pd_cuda_options_default(void) {
  pd_cuda_options o = {.device = 0, .precision = PD_CUDA_FP32};
  return o;
}

int pd_cuda_built(void) {
  return 1;
}

int pd_cuda_device_count(int *count, pd_error *err) {
  int n = 0;
  if (count) *count = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return pd_error_set(err, PD_EUNSUPP, "cudaGetDeviceCount: %s (%s)", cudaGetErrorName(e),
                        cudaGetErrorString(e));
  }
  if (n <= 0)
    return pd_error_set(err, PD_EUNSUPP, "no CUDA device present (cudaGetDeviceCount: 0)");
  if (count) *count = n;
  return PD_OK;
}

/* ---- plans ---- */

typedef struct conv_bucket {
  cudnnTensorDescriptor_t x, y;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t algo;
  cudnnMathType_t math;
  size_t ws; /* workspace bytes the algorithm needs */
  float ms;  /* measured time (FindEx), -1 for heuristics */
} conv_bucket;

typedef struct dev_layer {
  const pd_layer *l;
  const float *w, *b;           /* device weights, NULL for layers without */
  cudnnFilterDescriptor_t filt; /* conv */
  conv_bucket *cb;              /* conv: one per bucket */
} dev_layer;

#define HEAD PD_MAX_BRANCHES /* list index of the head */

typedef struct cuda_plan {
  struct pd_plan_base base;
  int device;
  pd_cuda_options opt;
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  void *blas_ws;
  float *weights;
  float *in[PD_MAX_BRANCHES];      /* device inputs, max_batch rows per branch */
  float *host_in[PD_MAX_BRANCHES]; /* pinned staging */
  float *act[2];                   /* ping-pong activations */
  size_t act_floats;
  float *head_in;      /* max_batch x head_in */
  float *host_probs;   /* pinned, max_batch x n_classes */
  const float *result; /* where the network leaves the probabilities */
  void *ws;
  size_t ws_bytes;
  int n_buckets;
  int buckets[MAX_BUCKETS];
  cudaGraphExec_t graph[MAX_BUCKETS];
  pd_cuda_d4 d4;
  int n_layers[PD_MAX_BRANCHES + 1];
  dev_layer layers[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS];
} cuda_plan;

static const pd_backend_ops cuda_ops;

static const pd_layer *list_layers(const pd_graph *m, int list) {
  return list == HEAD ? m->head : m->branches[list].layers;
}

static size_t max_sz(size_t a, size_t b) {
  return a > b ? a : b;
}

static size_t align_floats(size_t n) {
  return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static int bucket_for(const cuda_plan *p, int n) {
  for (int k = 0; k < p->n_buckets; k++)
    if (p->buckets[k] >= n) return k;
  return p->n_buckets - 1;
}

static void make_buckets(cuda_plan *p, int max_batch) {
  int n = 0;
  for (long b = 1; b < max_batch && n < MAX_BUCKETS - 1; b *= 2) {
    p->buckets[n++] = (int)b;
    long b15 = b + b / 2;
    if (b >= 2 && b15 < max_batch && b15 < 2 * b && n < MAX_BUCKETS - 1) p->buckets[n++] = (int)b15;
  }
  p->buckets[n++] = max_batch;
  p->n_buckets = n;
}

/* ---- running the network ---- */

typedef struct trace {
  pd_cuda_trace_fn fn;
  void *user;
  int n;      /* real images */
  float *buf; /* host copy of one layer's output */
  int stop;
} trace;

static int run_layer(cuda_plan *p, const dev_layer *d, int k, float **cur, pd_error *err) {
  const pd_layer *l = d->l;
  const int nb = p->buckets[k];
  const cudaStream_t s = p->stream;
  const where w = {.layer = l, .bucket = nb};
  float *in = *cur;
  float *out = in == p->act[0] ? p->act[1] : p->act[0];
  const float one = 1.0f, zero = 0.0f;
  int in_place = 0;
  switch (l->kind) {
  case PD_LAYER_CYCLIC_SLICE:
    KERN(&w, pd_cuda_cyclic_slice, (s, in, out, nb, l->out.views, l->in.h, l->in.c));
    break;
  case PD_LAYER_CONV: {
    const conv_bucket *cb = &d->cb[k];
    DNN(&w, cudnnConvolutionForward,
        (p->dnn, &one, cb->x, in, d->filt, d->w, cb->conv, cb->algo, p->ws, p->ws_bytes, &zero,
         cb->y, out));
    KERN(&w, pd_cuda_bias_act,
         (s, out, (size_t)nb * l->out.views * l->out.h * l->out.w, l->filters, d->b,
          l->activation == PD_ACT_LEAKY_RELU, l->slope));
    break;
  }
  case PD_LAYER_LEAKY_RELU:
    KERN(&w, pd_cuda_leaky_relu, (s, in, (size_t)nb * pd_shape_len(l->in), l->slope));
    in_place = 1;
    break;
  case PD_LAYER_MAXPOOL:
    KERN(&w, pd_cuda_maxpool,
         (s, in, out, (size_t)nb * l->in.views, l->in.h, l->in.w, l->in.c, l->out.h, l->out.w,
          l->pool_size, l->pool_stride));
    break;
  case PD_LAYER_CYCLIC_ROLL:
    KERN(&w, pd_cuda_cyclic_roll, (s, in, out, nb, l->in.views, l->in.h, l->in.w, l->in.c, p->d4));
    break;
  case PD_LAYER_CYCLIC_POOL:
    KERN(&w, pd_cuda_cyclic_pool,
         (s, in, out, nb, l->in.views, (size_t)l->in.h * l->in.w * l->in.c, (int)l->cpool_mode));
    break;
  case PD_LAYER_DENSE: {
    /* Row-major out[rows][N] = in[rows][K] * W[N][K]^T is, column-major,
     * out^T (N x rows) = W^T (N x K, W stored K x N) * in^T (K x rows). */
    const int rows = nb * l->in.views, K = l->in.h * l->in.w * l->in.c, N = l->units;
    BLAS(&w, cublasSgemm,
         (p->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, rows, K, &one, d->w, K, in, K, &zero, out, N));
    KERN(&w, pd_cuda_bias_act,
         (s, out, (size_t)rows, N, d->b, l->activation == PD_ACT_LEAKY_RELU, l->slope));
    break;
  }
  case PD_LAYER_MAXOUT:
    KERN(&w, pd_cuda_maxout,
         (s, in, out, (size_t)nb * l->in.views * l->in.h * l->in.w, l->in.c, l->pieces));
    break;
  case PD_LAYER_GLOBAL_AVG_POOL:
    KERN(&w, pd_cuda_global_avg_pool,
         (s, in, out, (size_t)nb * l->in.views, l->in.h * l->in.w, l->in.c));
    break;
  case PD_LAYER_DROPOUT:
    in_place = 1;
    break;
  case PD_LAYER_SOFTMAX:
    KERN(&w, pd_cuda_softmax, (s, in, (size_t)nb * l->in.views, l->in.h * l->in.w * l->in.c));
    in_place = 1;
    break;
  case PD_LAYER_KIND_COUNT:
    return pd_error_set(err, PD_EINTERNAL, "layer '%s': unknown kind", l->name);
  }
  if (!in_place) *cur = out;
  return PD_OK;
}

static int trace_layer(cuda_plan *p, trace *t, int list, int i, const float *cur, pd_error *err) {
  const pd_layer *l = p->layers[list][i].l;
  const where w = {.layer = l, .bucket = 0};
  const size_t floats = (size_t)t->n * pd_shape_len(l->out);
  CU(&w, cudaStreamSynchronize, (p->stream));
  CU(&w, cudaMemcpy, (t->buf, cur, floats * sizeof(float), cudaMemcpyDeviceToHost));
  if (t->fn(t->user, list, i, t->buf, floats)) t->stop = 1;
  return PD_OK;
}

static int run_list(cuda_plan *p, int list, int k, float **cur, trace *t, pd_error *err) {
  for (int i = 0; i < p->n_layers[list]; i++) {
    int rc = run_layer(p, &p->layers[list][i], k, cur, err);
    if (rc != PD_OK) return rc;
    if (t) {
      rc = trace_layer(p, t, list, i, *cur, err);
      if (rc != PD_OK || t->stop) return rc;
    }
  }
  return PD_OK;
}

/* Enqueues the whole network for bucket k on the plan's stream (inputs
 * already in p->in); *result gets where the probabilities will be. */
static int enqueue(cuda_plan *p, int k, const float **result, trace *t, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const int nb = p->buckets[k];
  size_t offset = 0;
  for (int b = 0; b < m->n_branches; b++) {
    float *cur = p->in[b];
    int rc = run_list(p, b, k, &cur, t, err);
    if (rc != PD_OK || (t && t->stop)) return rc;
    const size_t width = (size_t)m->branches[b].out.c;
    const where w = {.step = "branch concatenation"};
    CU(&w, cudaMemcpy2DAsync,
       (p->head_in + offset, (size_t)m->head_in * sizeof(float), cur, width * sizeof(float),
        width * sizeof(float), (size_t)nb, cudaMemcpyDeviceToDevice, p->stream));
    offset += width;
  }
  float *cur = p->head_in;
  int rc = run_list(p, HEAD, k, &cur, t, err);
  if (rc != PD_OK) return rc;
  *result = cur;
  return PD_OK;
}

/* Waits for whatever a failed run left on the stream, keeping the first error. */
static void drain(cuda_plan *p) {
  (void)cudaStreamSynchronize(p->stream);
  (void)cudaGetLastError();
}

static int upload_inputs(cuda_plan *p, const pd_batch *in, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const where w = {.step = "input upload"};
  for (int b = 0; b < m->n_branches; b++) {
    const size_t bytes = (size_t)in->n * pd_graph_branch_input_len(m, b) * sizeof(float);
    memcpy(p->host_in[b], in->branch[b], bytes);
    CU(&w, cudaMemcpyAsync, (p->in[b], p->host_in[b], bytes, cudaMemcpyHostToDevice, p->stream));
  }
  return PD_OK;
}

static int run_batch(cuda_plan *p, const pd_batch *in, float *probs, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const int k = bucket_for(p, in->n);
  const where w = {.step = "run"};
  int rc = upload_inputs(p, in, err);
  if (rc != PD_OK) return rc;
  const float *result = p->result;
  if (p->graph[k]) {
    const where wg = {.step = "graph launch"};
    CU(&wg, cudaGraphLaunch, (p->graph[k], p->stream));
  } else {
    rc = enqueue(p, k, &result, NULL, err);
    if (rc != PD_OK) return rc;
  }
  const size_t bytes = (size_t)in->n * m->n_classes * sizeof(float);
  CU(&w, cudaMemcpyAsync, (p->host_probs, result, bytes, cudaMemcpyDeviceToHost, p->stream));
  CU(&w, cudaStreamSynchronize, (p->stream));
  memcpy(probs, p->host_probs, bytes);
  return PD_OK;
}

static int cuda_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  cuda_plan *p = (cuda_plan *)plan;
  if (in->n == 0) return PD_OK;
  const where w = {.step = "run"};
  CU(&w, cudaSetDevice, (p->device));
  int rc = run_batch(p, in, probs, err);
  if (rc != PD_OK) {
    drain(p);
    pd_error_prefix(err, "cuda backend");
  }
  return rc;
}

int pd_cuda_plan_trace(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                       pd_error *err) {
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (!plan || !in || !fn || base->ops != &cuda_ops)
    return pd_error_set(err, PD_EINVAL, "pd_cuda_plan_trace: not a cuda plan, or a null argument");
  cuda_plan *p = (cuda_plan *)plan;
  if (in->n < 1 || in->n > base->max_batch)
    return pd_error_set(err, PD_EINVAL, "pd_cuda_plan_trace: batch of %d outside 1..%d", in->n,
                        base->max_batch);
  const where w = {.step = "trace"};
  CU(&w, cudaSetDevice, (p->device));
  trace t = {.fn = fn, .user = user, .n = in->n};
  t.buf = malloc(p->act_floats * sizeof(float));
  if (!t.buf) return pd_error_set(err, PD_ENOMEM, "pd_cuda_plan_trace: out of memory");
  const float *result;
  int rc = upload_inputs(p, in, err);
  if (rc == PD_OK) rc = enqueue(p, bucket_for(p, in->n), &result, &t, err);
  if (rc != PD_OK) drain(p);
  free(t.buf);
  return rc;
}

/* ---- plan lifetime ---- */

static void cuda_plan_destroy(pd_plan *plan) {
  cuda_plan *p = (cuda_plan *)plan;
  if (!p) return;
  (void)cudaSetDevice(p->device);
  if (p->stream) (void)cudaStreamSynchronize(p->stream);
  for (int k = 0; k < MAX_BUCKETS; k++)
    if (p->graph[k]) (void)cudaGraphExecDestroy(p->graph[k]);
  for (int list = 0; list <= HEAD; list++) {
    for (int i = 0; i < p->n_layers[list]; i++) {
      dev_layer *d = &p->layers[list][i];
      if (d->cb) {
        for (int k = 0; k < p->n_buckets; k++) {
          if (d->cb[k].x) cudnnDestroyTensorDescriptor(d->cb[k].x);
          if (d->cb[k].y) cudnnDestroyTensorDescriptor(d->cb[k].y);
          if (d->cb[k].conv) cudnnDestroyConvolutionDescriptor(d->cb[k].conv);
        }
        free(d->cb);
      }
      if (d->filt) cudnnDestroyFilterDescriptor(d->filt);
    }
  }
  if (p->dnn) cudnnDestroy(p->dnn);
  if (p->blas) cublasDestroy(p->blas);
  (void)cudaFree(p->blas_ws);
  (void)cudaFree(p->weights);
  for (int b = 0; b < PD_MAX_BRANCHES; b++) {
    (void)cudaFree(p->in[b]);
    (void)cudaFreeHost(p->host_in[b]);
  }
  (void)cudaFree(p->act[0]);
  (void)cudaFree(p->act[1]);
  (void)cudaFree(p->head_in);
  (void)cudaFreeHost(p->host_probs);
  (void)cudaFree(p->ws);
  if (p->stream) (void)cudaStreamDestroy(p->stream);
  (void)cudaGetLastError();
  free(p);
}

static int plan_device(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: device"};
  CU(&w, cudaSetDevice, (p->device));
  return PD_OK;
}

static int plan_handles(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: stream and handles"};
  CU(&w, cudaStreamCreateWithFlags, (&p->stream, cudaStreamNonBlocking));
  DNN(&w, cudnnCreate, (&p->dnn));
  DNN(&w, cudnnSetStream, (p->dnn, p->stream));
  BLAS(&w, cublasCreate, (&p->blas));
  BLAS(&w, cublasSetStream, (p->blas, p->stream));
  BLAS(&w, cublasSetMathMode,
       (p->blas,
        p->opt.precision == PD_CUDA_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  /* Our own workspace, so cuBLAS never allocates during a run or a graph capture. */
  CU(&w, cudaMalloc, (&p->blas_ws, BLAS_WORKSPACE_BYTES));
  BLAS(&w, cublasSetWorkspace, (p->blas, p->blas_ws, BLAS_WORKSPACE_BYTES));
  return PD_OK;
}

/* Every layer's weights and bias in one device allocation (256-byte aligned each). */
static int plan_weights(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: weights"};
  size_t total = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const pd_layer *l = p->layers[list][i].l;
      if (l->weight) total += align_floats(l->weight_len);
      if (l->bias) total += align_floats(l->bias_len);
    }
  if (total == 0) return PD_OK;
  CU(&w, cudaMalloc, ((void **)&p->weights, total * sizeof(float)));
  size_t at = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      dev_layer *d = &p->layers[list][i];
      const pd_layer *l = d->l;
      const where wl = {.layer = l};
      if (l->weight) {
        CU(&wl, cudaMemcpy,
           (p->weights + at, l->weight, l->weight_len * sizeof(float), cudaMemcpyHostToDevice));
        d->w = p->weights + at;
        at += align_floats(l->weight_len);
      }
      if (l->bias) {
        CU(&wl, cudaMemcpy,
           (p->weights + at, l->bias, l->bias_len * sizeof(float), cudaMemcpyHostToDevice));
        d->b = p->weights + at;
        at += align_floats(l->bias_len);
      }
    }
  return PD_OK;
}

static int dev_alloc_zero(float **ptr, size_t floats, const where *w, pd_error *err) {
  CU(w, cudaMalloc, ((void **)ptr, max_sz(floats, 1) * sizeof(float)));
  CU(w, cudaMemset, (*ptr, 0, max_sz(floats, 1) * sizeof(float)));
  return PD_OK;
}

static int plan_buffers(cuda_plan *p, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const size_t B = (size_t)p->base.max_batch;
  size_t act = (size_t)m->head_in;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const pd_layer *l = p->layers[list][i].l;
      act = max_sz(act, max_sz(pd_shape_len(l->in), pd_shape_len(l->out)));
    }
  p->act_floats = act * B;
  int rc;
  const where wa = {.step = "plan: activation buffers"};
  if ((rc = dev_alloc_zero(&p->act[0], p->act_floats, &wa, err)) != PD_OK) return rc;
  if ((rc = dev_alloc_zero(&p->act[1], p->act_floats, &wa, err)) != PD_OK) return rc;
  if ((rc = dev_alloc_zero(&p->head_in, B * m->head_in, &wa, err)) != PD_OK) return rc;
  const where wi = {.step = "plan: input and output buffers"};
  for (int b = 0; b < m->n_branches; b++) {
    const size_t floats = max_sz(B * pd_graph_branch_input_len(m, b), 1);
    if ((rc = dev_alloc_zero(&p->in[b], floats, &wi, err)) != PD_OK) return rc;
    CU(&wi, cudaHostAlloc, ((void **)&p->host_in[b], floats * sizeof(float), cudaHostAllocDefault));
  }
  CU(&wi, cudaHostAlloc,
     ((void **)&p->host_probs, B * m->n_classes * sizeof(float), cudaHostAllocDefault));
  /* The weight copies and the zeroing ran on the legacy default stream, which
   * the plan's non-blocking stream does not wait for. */
  CU(&wi, cudaDeviceSynchronize, ());
  return PD_OK;
}

static const char *algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
  case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
    return "implicit_gemm";
  case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
    return "implicit_precomp_gemm";
  case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
    return "gemm";
  case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
    return "direct";
  case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
    return "fft";
  case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
    return "fft_tiling";
  case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
    return "winograd";
  case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
    return "winograd_nonfused";
  default:
    return "?";
  }
}

static const char *math_name(cudnnMathType_t t) {
  switch (t) {
  case CUDNN_DEFAULT_MATH:
    return "default";
  case CUDNN_TENSOR_OP_MATH:
    return "tensor_op";
  case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
    return "tensor_op_conv";
  case CUDNN_FMA_MATH:
    return "fma";
  default:
    return "?";
  }
}

/* Tries the candidates in order: the first whose algorithm, under the math
 * type the precision allows, cuDNN accepts with a workspace within limit.
 * Returns 1 when one is chosen, 0 when none fits, a PD_E* code on error. */
static int choose_algo(cuda_plan *p, const dev_layer *d, conv_bucket *cb,
                       const cudnnConvolutionFwdAlgoPerf_t *perf, int n, size_t limit, int measured,
                       const where *w, pd_error *err) {
  const int strict = p->opt.precision == PD_CUDA_FP32;
  /* FP32: FMA results first; results reported under the default math type
   * are tried with FMA forced (cuDNN refuses the pair if it cannot). */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
      cudnnMathType_t math = perf[i].mathType;
      if (strict) {
        if (pass == 0 && math != CUDNN_FMA_MATH) continue;
        if (pass == 1 && math != CUDNN_DEFAULT_MATH) continue;
        math = CUDNN_FMA_MATH;
      } else if (pass == 1 || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) {
        continue; /* TF32 allows tensor cores, not FP16 down-conversion of the inputs */
      }
      DNN(w, cudnnSetConvolutionMathType, (cb->conv, math));
      size_t ws = 0;
      cudnnStatus_t s = cudnnGetConvolutionForwardWorkspaceSize(p->dnn, cb->x, d->filt, cb->conv,
                                                                cb->y, perf[i].algo, &ws);
      if (s != CUDNN_STATUS_SUCCESS || ws > limit) continue;
      cb->algo = perf[i].algo;
      cb->math = math;
      cb->ws = ws;
      cb->ms = measured ? perf[i].time : -1.0f;
      return 1;
    }
  }
  return 0;
}

static int plan_conv_bucket(cuda_plan *p, dev_layer *d, int k, void *search_ws, size_t search_bytes,
                            pd_error *err) {
  const pd_layer *l = d->l;
  const int nb = p->buckets[k];
  const where w = {.layer = l, .bucket = nb};
  conv_bucket *cb = &d->cb[k];
  const int n_in = nb * l->in.views;
  DNN(&w, cudnnCreateTensorDescriptor, (&cb->x));
  DNN(&w, cudnnCreateTensorDescriptor, (&cb->y));
  DNN(&w, cudnnCreateConvolutionDescriptor, (&cb->conv));
  DNN(&w, cudnnSetTensor4dDescriptor,
      (cb->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n_in, l->in.c, l->in.h, l->in.w));
  DNN(&w, cudnnSetTensor4dDescriptor,
      (cb->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n_in, l->out.c, l->out.h, l->out.w));
  DNN(&w, cudnnSetConvolution2dDescriptor,
      (cb->conv, l->pad, l->pad, l->stride, l->stride, 1, 1, CUDNN_CROSS_CORRELATION,
       CUDNN_DATA_FLOAT));
  const int strict = p->opt.precision == PD_CUDA_FP32;
  DNN(&w, cudnnSetConvolutionMathType, (cb->conv, strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  int on, oc, oh, ow;
  DNN(&w, cudnnGetConvolution2dForwardOutputDim, (cb->conv, cb->x, d->filt, &on, &oc, &oh, &ow));
  if (on != n_in || oc != l->out.c || oh != l->out.h || ow != l->out.w)
    return pd_error_set(err, PD_EINTERNAL,
                        "layer '%s': cuDNN computes output %dx%dx%dx%d, the model "
                        "%dx%dx%dx%d",
                        l->name, on, oh, ow, oc, n_in, l->out.h, l->out.w, l->out.c);

  /* Measured choice first (unless heuristics were asked for), then cuDNN's
   * heuristics, then implicit GEMM; a search that fails is not fatal. */
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT * 2];
  int returned = 0, rc;
  cudnnStatus_t find = CUDNN_STATUS_SUCCESS, heur;
  if (!p->opt.heuristic_algos) {
    find = cudnnFindConvolutionForwardAlgorithmEx(
        p->dnn, cb->x, p->act[0], d->filt, d->w, cb->conv, cb->y, p->act[1],
        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, search_ws, search_bytes);
    if (find == CUDNN_STATUS_SUCCESS &&
        (rc = choose_algo(p, d, cb, perf, returned, search_bytes, 1, &w, err)) != 0)
      return rc > 0 ? PD_OK : rc;
    /* FindEx ran kernels: a failure there may be a device error, not a refusal. */
    const where ws = {.layer = l, .bucket = nb};
    CU(&ws, cudaStreamSynchronize, (p->stream));
  }
  heur =
      cudnnGetConvolutionForwardAlgorithm_v7(p->dnn, cb->x, d->filt, cb->conv, cb->y,
                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT * 2, &returned, perf);
  if (heur == CUDNN_STATUS_SUCCESS &&
      (rc = choose_algo(p, d, cb, perf, returned, search_bytes, 0, &w, err)) != 0)
    return rc > 0 ? PD_OK : rc;
  /* Implicit GEMM needs no workspace and supports every NHWC FP32 case. */
  cudnnConvolutionFwdAlgoPerf_t fallback = {.algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                            .status = CUDNN_STATUS_SUCCESS,
                                            .mathType =
                                                strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH};
  if ((rc = choose_algo(p, d, cb, &fallback, 1, search_bytes, 0, &w, err)) != 0)
    return rc > 0 ? PD_OK : rc;
  return pd_error_set(err, PD_EUNSUPP,
                      "layer '%s' (conv %dx%d/%d, %d -> %d channels, batch bucket %d): "
                      "cuDNN offers no forward algorithm for NHWC %s within %zu workspace bytes "
                      "(cudnnFindConvolutionForwardAlgorithmEx: %s; "
                      "cudnnGetConvolutionForwardAlgorithm_v7: %s)",
                      l->name, l->kernel, l->kernel, l->stride, l->in.c, l->filters, nb,
                      strict ? "FP32 (FMA)" : "FP32/TF32", search_bytes,
                      p->opt.heuristic_algos ? "not used" : cudnnGetErrorString(find),
                      cudnnGetErrorString(heur));
}

/* Descriptors and an algorithm per conv layer and bucket, then the one workspace. */
static int plan_convs(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: convolution algorithm search"};
  size_t limit = p->opt.workspace_limit ? p->opt.workspace_limit : DEFAULT_WORKSPACE_LIMIT;
  size_t free_b = 0, total_b = 0;
  CU(&w, cudaMemGetInfo, (&free_b, &total_b));
  if (limit > free_b / 4) limit = free_b / 4;
  void *search = NULL;
  size_t search_bytes = limit;
  while (search_bytes > 0 && cudaMalloc(&search, search_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    search = NULL;
    search_bytes = search_bytes >= ((size_t)1 << 20) ? search_bytes / 2 : 0;
  }
  int rc = PD_OK;
  for (int list = 0; list <= HEAD && rc == PD_OK; list++) {
    for (int i = 0; i < p->n_layers[list] && rc == PD_OK; i++) {
      dev_layer *d = &p->layers[list][i];
      const pd_layer *l = d->l;
      if (l->kind != PD_LAYER_CONV) continue;
      const where wl = {.layer = l};
      cudnnStatus_t s = cudnnCreateFilterDescriptor(&d->filt);
      if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnSetFilter4dDescriptor(d->filt, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, l->filters,
                                       l->in.c, l->kernel, l->kernel);
      if (s != CUDNN_STATUS_SUCCESS) {
        rc = dnn_fail(err, &wl, "cudnnSetFilter4dDescriptor", s);
        break;
      }
      d->cb = calloc((size_t)p->n_buckets, sizeof *d->cb);
      if (!d->cb) {
        rc = pd_error_set(err, PD_ENOMEM, "out of memory for descriptors");
        break;
      }
      for (int k = 0; k < p->n_buckets && rc == PD_OK; k++) {
        rc = plan_conv_bucket(p, d, k, search, search_bytes, err);
        if (rc == PD_OK) p->ws_bytes = max_sz(p->ws_bytes, d->cb[k].ws);
      }
    }
  }
  (void)cudaFree(search);
  if (rc != PD_OK) return rc;
  if (p->ws_bytes > 0) CU(&w, cudaMalloc, (&p->ws, p->ws_bytes));
  return PD_OK;
}

/* Runs every bucket once (loads every kernel, checks every call), then
 * captures the graphs if asked. */
static int plan_warm_up(cuda_plan *p, pd_error *err) {
  for (int k = 0; k < p->n_buckets; k++) {
    const where w = {.step = "plan: warm-up run"};
    int rc = enqueue(p, k, &p->result, NULL, err);
    if (rc != PD_OK) return rc;
    CU(&w, cudaStreamSynchronize, (p->stream));
  }
  if (!p->opt.graphs) return PD_OK;
  for (int k = 0; k < p->n_buckets; k++) {
    const where w = {.step = "plan: graph capture"};
    CU(&w, cudaStreamBeginCapture, (p->stream, cudaStreamCaptureModeRelaxed));
    const float *result = NULL;
    int rc = enqueue(p, k, &result, NULL, err);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(p->stream, &g);
    if (rc != PD_OK) {
      if (g) (void)cudaGraphDestroy(g);
      return rc;
    }
    if (e != cudaSuccess) return cu_fail(err, &w, "cudaStreamEndCapture", e);
    e = cudaGraphInstantiate(&p->graph[k], g, 0);
    (void)cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      p->graph[k] = NULL;
      return cu_fail(err, &w, "cudaGraphInstantiate", e);
    }
    CU(&w, cudaGraphLaunch, (p->graph[k], p->stream));
    CU(&w, cudaStreamSynchronize, (p->stream));
  }
  return PD_OK;
}

static int check_sizes(const pd_graph *m, int max_batch, pd_error *err) {
  for (int list = 0; list <= HEAD; list++) {
    const int n = list == HEAD ? m->n_head : list < m->n_branches ? m->branches[list].n_layers : 0;
    const pd_layer *layers = list_layers(m, list);
    for (int i = 0; i < n; i++) {
      const pd_layer *l = &layers[i];
      const size_t big = max_sz(pd_shape_len(l->in), pd_shape_len(l->out));
      if ((double)big * max_batch > (double)INT_MAX)
        return pd_error_set(err, PD_ELIMIT,
                            "layer '%s': %zu floats per image x max_batch %d exceeds "
                            "the 2^31 elements cuDNN and cuBLAS index; lower max_batch",
                            l->name, big, max_batch);
    }
  }
  return PD_OK;
}

static int cuda_plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                            pd_error *err) {
  const cuda_backend *cb = (const cuda_backend *)be;
  cuda_plan *p = calloc(1, sizeof *p);
  if (!p) return pd_error_set(err, PD_ENOMEM, "cuda backend: out of memory for the plan");
  p->base.ops = &cuda_ops;
  p->base.graph = m;
  p->base.max_batch = max_batch;
  p->device = cb->opt.device;
  p->opt = cb->opt;
  for (int a = 0; a < 8; a++) {
    p->d4.inv[a] = pd_d4_inv(a);
    for (int b = 0; b < 8; b++)
      p->d4.mul[a][b] = pd_d4_mul(a, b);
  }
  for (int list = 0; list <= HEAD; list++) {
    p->n_layers[list] = list == HEAD           ? m->n_head
                        : list < m->n_branches ? m->branches[list].n_layers
                                               : 0;
    for (int i = 0; i < p->n_layers[list]; i++)
      p->layers[list][i].l = &list_layers(m, list)[i];
  }
  make_buckets(p, max_batch);

  int rc = check_sizes(m, max_batch, err);
  if (rc == PD_OK) rc = plan_device(p, err);
  if (rc == PD_OK) rc = plan_handles(p, err);
  if (rc == PD_OK) rc = plan_weights(p, err);
  if (rc == PD_OK) rc = plan_buffers(p, err);
  if (rc == PD_OK) rc = plan_convs(p, err);
  if (rc == PD_OK) rc = plan_warm_up(p, err);
  if (rc != PD_OK) {
    if (p->stream) drain(p);
    cuda_plan_destroy((pd_plan *)p);
    pd_error_prefix(err, "cuda backend: plan for model '%s' at max_batch %d", m->name, max_batch);
    return rc;
  }
  *out = (pd_plan *)p;
  return PD_OK;
}

void pd_cuda_plan_describe(const pd_plan *plan, char *buf, size_t len) {
  if (!buf || len == 0) return;
  buf[0] = '\0';
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (!plan || base->ops != &cuda_ops) {
    snprintf(buf, len, "not a cuda plan\n");
    return;
  }
  const cuda_plan *p = (const cuda_plan *)plan;
  size_t at = 0;
#define PUT(...)                                                                                   \
  do {                                                                                             \
    if (at < len) {                                                                                \
      int n_ = snprintf(buf + at, len - at, __VA_ARGS__);                                          \
      if (n_ > 0) at += (size_t)n_;                                                                \
    }                                                                                              \
  } while (0)
  PUT("cuda plan: model '%s', max_batch %d, %d buckets, workspace %zu bytes, %s%s\n",
      base->graph->name, base->max_batch, p->n_buckets, p->ws_bytes,
      p->opt.precision == PD_CUDA_TF32 ? "tf32" : "fp32", p->opt.graphs ? ", graphs" : "");
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const dev_layer *d = &p->layers[list][i];
      if (!d->cb) continue;
      PUT("  %s:", d->l->name);
      for (int k = 0; k < p->n_buckets; k++)
        PUT(" [%d] %s/%s %zuB%s", p->buckets[k], algo_name(d->cb[k].algo), math_name(d->cb[k].math),
            d->cb[k].ws, d->cb[k].ms >= 0 ? "" : " (heuristic)");
      PUT("\n");
    }
#undef PUT
}

/* ---- the preprocessing warp, for checking it ---- */

typedef struct warp_bufs {
  unsigned char *px;
  long long *off;
  int *w, *h;
  double *aff;
  float *out;
} warp_bufs;

static int warp_check_run(const pd_cuda_warp_spec *spec, const uint8_t *const *pixels, const int *w,
                          const int *h, const double *affines, int count, float *out, warp_bufs *d,
                          pd_error *err) {
  const where wh = {.step = "warp check"};
  size_t total = 0;
  long long *off = calloc((size_t)count, sizeof *off);
  if (!off) return pd_error_set(err, PD_ENOMEM, "warp check: out of memory");
  for (int k = 0; k < count; k++) {
    const int has = pixels[k] && w[k] > 0 && h[k] > 0;
    off[k] = has ? (long long)total : -1;
    if (has) total += (size_t)w[k] * h[k];
  }
  const size_t plane = (size_t)spec->size * spec->size;
  cudaError_t e = cudaMalloc((void **)&d->px, max_sz(total, 1));
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->off, (size_t)count * sizeof *d->off);
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->w, (size_t)count * sizeof(int));
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->h, (size_t)count * sizeof(int));
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->aff, (size_t)count * 6 * sizeof(double));
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->out, (size_t)count * plane * sizeof(float));
  for (int k = 0; e == cudaSuccess && k < count; k++)
    if (off[k] >= 0)
      e = cudaMemcpy(d->px + off[k], pixels[k], (size_t)w[k] * h[k], cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(d->off, off, (size_t)count * sizeof *off, cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(d->w, w, (size_t)count * sizeof(int), cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(d->h, h, (size_t)count * sizeof(int), cudaMemcpyHostToDevice);
  if (e == cudaSuccess)
    e = cudaMemcpy(d->aff, affines, (size_t)count * 6 * sizeof(double), cudaMemcpyHostToDevice);
  free(off);
  if (e != cudaSuccess) return cu_fail(err, &wh, "cudaMalloc/cudaMemcpy", e);
  pd_cuda_warp_params prm = {.size = spec->size,
                             .invert = spec->invert,
                             .background = spec->background,
                             .mean = spec->mean,
                             .std = spec->std};
  KERN(&wh, pd_cuda_warp, (0, d->px, d->off, d->w, d->h, d->aff, count, prm, d->out, plane));
  CU(&wh, cudaMemcpy, (out, d->out, (size_t)count * plane * sizeof(float), cudaMemcpyDeviceToHost));
  return PD_OK;
}

int pd_cuda_warp_check(pd_backend *be, const pd_cuda_warp_spec *spec, const uint8_t *const *pixels,
                       const int *w, const int *h, const double *affines, int count, float *out,
                       pd_error *err) {
  if (!be || be->ops != &cuda_ops || !spec || !pixels || !w || !h || !affines || !out || count < 1)
    return pd_error_set(err, PD_EINVAL, "cuda warp check: bad argument");
  if (spec->size < 1)
    return pd_error_set(err, PD_EINVAL, "cuda warp check: patch size %d must be >= 1", spec->size);
  const cuda_backend *cb = (const cuda_backend *)be;
  const where wh = {.step = "warp check"};
  CU(&wh, cudaSetDevice, (cb->opt.device));
  warp_bufs d = {0};
  int rc = warp_check_run(spec, pixels, w, h, affines, count, out, &d, err);
  (void)cudaFree(d.px);
  (void)cudaFree(d.off);
  (void)cudaFree(d.w);
  (void)cudaFree(d.h);
  (void)cudaFree(d.aff);
  (void)cudaFree(d.out);
  return rc;
}

/* ---- backend lifetime ---- */

static void cuda_destroy(pd_backend *be) {
  free(be);
}

static const pd_backend_ops cuda_ops = {
    .name = "cuda",
    .plan_create = cuda_plan_create,
    .run = cuda_run,
    .plan_destroy = cuda_plan_destroy,
    .destroy = cuda_destroy,
};

void pd_cuda_backend_describe(const pd_backend *be, char *buf, size_t len) {
  if (!buf || len == 0) return;
  if (!be || be->ops != &cuda_ops)
    snprintf(buf, len, "not a cuda backend");
  else
    snprintf(buf, len, "%s", ((const cuda_backend *)be)->describe);
}

/* Checks the device can run us: kernel image, cuDNN and cuBLAS. */
static int probe_device(const pd_cuda_options *o, const char *dev, pd_error *err) {
  cudaError_t e = pd_cuda_kernels_probe();
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return pd_error_set(err, PD_EUNSUPP,
                        "%s: no kernel image for this device in this build (built for %s): "
                        "cudaFuncGetAttributes: %s (%s)",
                        dev, PD_CUDA_ARCHS, cudaGetErrorName(e), cudaGetErrorString(e));
  }
  const size_t v = cudnnGetVersion();
  if (v / 10000 != CUDNN_MAJOR)
    return pd_error_set(err, PD_EUNSUPP, "%s: cuDNN %zu loaded, this build needs major version %d",
                        dev, v, CUDNN_MAJOR);
  cudnnHandle_t h = NULL;
  cudnnStatus_t s = cudnnCreate(&h);
  if (s != CUDNN_STATUS_SUCCESS)
    return pd_error_set(err, PD_EUNSUPP, "%s: cudnnCreate: %s", dev, cudnnGetErrorString(s));
  cudnnDestroy(h);
  cublasHandle_t bh = NULL;
  cublasStatus_t bs = cublasCreate(&bh);
  if (bs != CUBLAS_STATUS_SUCCESS)
    return pd_error_set(err, PD_EUNSUPP, "%s: cublasCreate: %s (%s)", dev, cublasGetStatusName(bs),
                        cublasGetStatusString(bs));
  cublasDestroy(bh);
  (void)o;
  return PD_OK;
}

int pd_cuda_backend_create(const pd_cuda_options *opt, pd_backend **out, pd_error *err) {
  pd_cuda_options o = opt ? *opt : pd_cuda_options_default();
  if (!out) return pd_error_set(err, PD_EINVAL, "cuda backend: null argument");
  if (o.precision != PD_CUDA_FP32 && o.precision != PD_CUDA_TF32)
    return pd_error_set(err, PD_EINVAL, "cuda backend: unknown precision %d", (int)o.precision);
  if (o.device < 0) return pd_error_set(err, PD_EINVAL, "cuda backend: device %d < 0", o.device);
  int count = 0;
  int rc = pd_cuda_device_count(&count, err);
  if (rc != PD_OK) return rc;
  if (o.device >= count)
    return pd_error_set(err, PD_EINVAL, "device %d requested, but only %d CUDA device%s present",
                        o.device, count, count == 1 ? " is" : "s are");
  const where w = {.step = "backend"};
  CU(&w, cudaSetDevice, (o.device));
  struct cudaDeviceProp prop;
  CU(&w, cudaGetDeviceProperties, (&prop, o.device));
  char dev[320];
  snprintf(dev, sizeof dev, "device %d (%.200s, compute %d.%d)", o.device, prop.name, prop.major,
           prop.minor);
  rc = probe_device(&o, dev, err);
  if (rc != PD_OK) return rc;
  int driver = 0, runtime = 0;
  CU(&w, cudaDriverGetVersion, (&driver));
  CU(&w, cudaRuntimeGetVersion, (&runtime));

  cuda_backend *cb = calloc(1, sizeof *cb);
  if (!cb) return pd_error_set(err, PD_ENOMEM, "cuda backend: out of memory");
  cb->base.ops = &cuda_ops;
  cb->opt = o;
  snprintf(cb->describe, sizeof cb->describe,
           "device %d: %.200s (compute %d.%d, %.1f GiB, %d SMs), driver %d.%d, runtime %d.%d, "
           "cuDNN %zu, %s%s%s",
           o.device, prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.multiProcessorCount,
           driver / 1000, (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10,
           cudnnGetVersion(), o.precision == PD_CUDA_TF32 ? "tf32" : "fp32",
           o.heuristic_algos ? ", heuristic algorithms" : "", o.graphs ? ", graphs" : "");
  *out = &cb->base;
  return PD_OK;
}
