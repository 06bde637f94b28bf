/* cuda_internal: what the CUDA backend's files share (pd_cuda_backend.c:
 * creation and the error helpers; pd_cuda_plan.c: plan lifetime;
 * pd_cuda_conv.c: the convolution algorithm choice; pd_cuda_run.c: running
 * a batch). The backend and plan structs, the CU/DNN/BLAS checks and the
 * batch buckets. Not for use outside kernels/cuda/. */
#ifndef PD_CUDA_INTERNAL_H
#define PD_CUDA_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "pd_algo_cache.h"
#include "pd_cuda_backend.h"
#include "pd_cuda_half.h"
#include "pd_cuda_kernels.h"

#ifndef PD_CUDA_ARCHS
#define PD_CUDA_ARCHS "unknown"
#endif

#define MAX_BUCKETS 32
#define DEFAULT_WORKSPACE_LIMIT ((size_t)256 << 20)
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLAS's recommendation for Hopper */
#define ALIGN_FLOATS 64                         /* 256-byte alignment of each weight tensor */

/* Where a call failed: a plan step, or a layer at a batch bucket. */
typedef struct where {
  const char *step;
  const pd_layer *layer;
  int bucket; /* images in the bucket, 0 if none */
} where;

/* An error naming the call, its status (name and text) and *w. */
int pd_cuda__cu_fail(pd_error *err, const where *w, const char *call, cudaError_t e);
int pd_cuda__dnn_fail(pd_error *err, const where *w, const char *call, cudnnStatus_t s);
int pd_cuda__blas_fail(pd_error *err, const where *w, const char *call, cublasStatus_t s);

/* CU(w, cudaMemcpyAsync, (dst, src, ...)): call, and on failure return an
 * error naming the function, its status and *w. Needs `pd_error *err` in scope. */
#define CU(w, fn, args)                                                                            \
  do {                                                                                             \
    cudaError_t e_ = fn args;                                                                      \
    if (e_ != cudaSuccess) return pd_cuda__cu_fail(err, (w), #fn, e_);                             \
  } while (0)
#define DNN(w, fn, args)                                                                           \
  do {                                                                                             \
    cudnnStatus_t s_ = fn args;                                                                    \
    if (s_ != CUDNN_STATUS_SUCCESS) return pd_cuda__dnn_fail(err, (w), #fn, s_);                   \
  } while (0)
#define BLAS(w, fn, args)                                                                          \
  do {                                                                                             \
    cublasStatus_t s_ = fn args;                                                                   \
    if (s_ != CUBLAS_STATUS_SUCCESS) return pd_cuda__blas_fail(err, (w), #fn, s_);                 \
  } while (0)
/* For our kernel launchers (they return the launch's cudaError_t). A launch
 * fails by itself only for its configuration; a sticky fault of earlier
 * device work also surfaces at the next launch, and pd_cuda__kern_fail says
 * so instead of blaming this layer (PD_CUDA_SYNC_LAYERS=1 names the layer). */
int pd_cuda__kern_fail(pd_error *err, const where *w, const char *call, cudaError_t e);
#define KERN(w, fn, args)                                                                          \
  do {                                                                                             \
    cudaError_t e_ = fn args;                                                                      \
    if (e_ != cudaSuccess) return pd_cuda__kern_fail(err, (w), #fn, e_);                           \
  } while (0)
/* Whether e leaves the context unusable (every later call fails). */
int pd_cuda__sticky(cudaError_t e);

/* Fault injection for the fallback tests: $PD_CUDA_FAULT_INJECT names one
 * stage (PD_CUDA_FAULT_STAGES), whose first call then fails with the status
 * a real failure there gives, marked "(injected)". Read once at backend
 * creation (an unknown name is an error naming it); stages past the device
 * check need a device to be reached. */
#define PD_CUDA_FAULT_ENV "PD_CUDA_FAULT_INJECT"
#define PD_CUDA_FAULT_STAGES                                                                       \
  "probe, handles, weights, buffers, descriptors, algorithms, workspace, warm-up, graphs, run"
int pd_cuda__fault_parse(const char *spec, char *out, size_t cap, pd_error *err);
#define FAULT_CU(fault, stage, w, call, code)                                                      \
  do {                                                                                             \
    if (strcmp((fault), (stage)) == 0)                                                             \
      return pd_cuda__cu_fail(err, (w), call " (injected)", code);                                 \
  } while (0)
#define FAULT_DNN(fault, stage, w, call, code)                                                     \
  do {                                                                                             \
    if (strcmp((fault), (stage)) == 0)                                                             \
      return pd_cuda__dnn_fail(err, (w), call " (injected)", code);                                \
  } while (0)

typedef struct cuda_backend {
  pd_backend base;
  pd_cuda_options opt;
  char fault[16];  /* the injected stage, "" for none */
  int sync_layers; /* $PD_CUDA_SYNC_LAYERS=1: wait after every layer (no graphs) */
  char describe[512];
} cuda_backend;

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
  const float *w, *b;           /* device weights, NULL for layers without (fp16: w NULL) */
  const void *wh;               /* fp16 plans: the weights as half (biases stay float) */
  int out_float;                /* fp16 plans: the layer writes float (it feeds a softmax or
                                 * ends the head), not half */
  cudnnFilterDescriptor_t filt; /* conv */
  conv_bucket *cb;              /* conv: one per bucket */
} dev_layer;

#define HEAD PD_MAX_BRANCHES /* list index of the head */

typedef struct cuda_plan {
  struct pd_plan_base base;
  int device;
  pd_cuda_options opt;
  char fault[16]; /* the backend's injected stage */
  int sync_layers;
  int dead;           /* a sticky device error: every later run fails at once */
  char dead_why[320]; /* that error */
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  void *blas_ws;
  float *weights;
  void *weights_h;                 /* fp16 plans: every conv and dense weight as half */
  float *in[PD_MAX_BRANCHES];      /* device inputs, max_batch rows per branch */
  float *host_in[PD_MAX_BRANCHES]; /* pinned staging */
  float *act[2];                   /* ping-pong activations (fp16: half or float tensors) */
  size_t act_floats;
  float *head_in;       /* max_batch x head_in (fp16: halves) */
  float *host_probs;    /* pinned, max_batch x n_classes */
  const float *result;  /* where the network leaves the probabilities */
  int pending_n;        /* the batch in flight (submit .. wait): its images, */
  float *pending_probs; /* where its probabilities go, */
  int pending_injected; /* and an injected run fault that wait reports */
  void *ws;
  size_t ws_bytes;
  int n_buckets;
  int buckets[MAX_BUCKETS];
  cudaGraphExec_t graph[MAX_BUCKETS];
  pd_cuda_d4 d4;
  int n_layers[PD_MAX_BRANCHES + 1];
  dev_layer layers[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS];
  /* the algorithm cache (pd_cuda_algo.c), while the convolutions are planned */
  pd_algo_cache *algo_cache;
  int algo_hits, algo_tried;
  char algo_path[4200];
  char algo_note[700]; /* what it did, for pd_cuda_plan_describe */
} cuda_plan;

extern const pd_backend_ops pd_cuda__ops;

static inline const pd_layer *list_layers(const pd_graph *m, int list) {
  return list == HEAD ? m->head : m->branches[list].layers;
}

static inline const char *pd_cuda__precision_name(pd_cuda_precision x) {
  return x == PD_CUDA_TF32 ? "tf32" : x == PD_CUDA_FP16 ? "fp16" : "fp32";
}

static inline size_t max_sz(size_t a, size_t b) {
  return a > b ? a : b;
}

static inline size_t align_floats(size_t n) {
  return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static inline int bucket_for(const cuda_plan *p, int n) {
  for (int k = 0; k < p->n_buckets; k++)
    if (p->buckets[k] >= n) return k;
  return p->n_buckets - 1;
}

static inline void make_buckets(cuda_plan *p, int max_batch) {
  int n = 0;
  for (long b = 1; b < max_batch && n < MAX_BUCKETS - 1; b *= 2) {
    p->buckets[n++] = (int)b;
    long b15 = b + b / 2;
    if (b >= 2 && b15 < max_batch && b15 < 2 * b && n < MAX_BUCKETS - 1) p->buckets[n++] = (int)b15;
  }
  p->buckets[n++] = max_batch;
  p->n_buckets = n;
}

/* pd_cuda_plan.c */
int pd_cuda__plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                         pd_error *err);
void pd_cuda__plan_destroy(pd_plan *plan);

/* pd_cuda_conv.c: per bucket, each conv layer's descriptors and algorithm. */
int pd_cuda__plan_convs(cuda_plan *p, pd_error *err);

/* pd_cuda_algo.c: open loads the cache file for this plan (if the options
 * name a folder), cached gives a choice to try for a conv layer's bucket,
 * close writes the choices back (planned: the convolutions all succeeded)
 * and frees it. None of them fails the plan; algo_note says what happened. */
void pd_cuda__algo_open(cuda_plan *p);
const pd_algo_choice *pd_cuda__algo_cached(cuda_plan *p, const dev_layer *d, int bucket);
void pd_cuda__algo_close(cuda_plan *p, int planned);
int pd_cuda__algo_index(const cuda_plan *p, const dev_layer *d);
const char *pd_cuda__algo_name(cudnnConvolutionFwdAlgo_t a);
const char *pd_cuda__math_name(cudnnMathType_t t);

/* pd_cuda_run.c */
typedef struct trace trace;
/* Queues bucket k's network on the plan's stream; *result: the probabilities on the device. */
int pd_cuda__enqueue(cuda_plan *p, int k, const float **result, trace *t, pd_error *err);
/* After layer i of a list: hands its output (n images; half or float) to
 * the trace, converted to float; a no-op without a trace. */
int pd_cuda__trace_layer(cuda_plan *p, trace *t, int list, int i, const void *cur, int half,
                         pd_error *err);
int pd_cuda__trace_stopped(const trace *t);
/* Waits for the plan's stream, ignoring errors (before freeing). */
void pd_cuda__drain(cuda_plan *p);
int pd_cuda__run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
int pd_cuda__submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
int pd_cuda__wait(pd_plan *plan, pd_error *err);
void *pd_cuda__host_alloc(pd_plan *plan, size_t bytes);
void pd_cuda__host_free(pd_plan *plan, void *h);

/* pd_cuda_run_fp16.c: pd_cuda__enqueue for PD_CUDA_FP16 plans. */
int pd_cuda__enqueue_fp16(cuda_plan *p, int k, const float **result, trace *t, pd_error *err);
/* Which layers of an fp16 plan write float (dev_layer.out_float). */
void pd_cuda__fp16_mark_outputs(cuda_plan *p);
/* Elements of half weights one tensor of n takes (256-byte aligned). */
static inline size_t align_halves(size_t n) {
  return (n + 2 * ALIGN_FLOATS - 1) / (2 * ALIGN_FLOATS) * (2 * ALIGN_FLOATS);
}

#endif
