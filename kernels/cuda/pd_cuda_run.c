/* The CUDA backend: running a batch (submit: the upload, straight from the
 * caller's buffer when it is pinned (pd_plan_host_alloc) else through the
 * plan's pinned staging, the network or the bucket's CUDA graph and the
 * download, all queued on the plan's stream; wait: the synchronisation, the
 * copy out and the error's attribution; run is the two), the input slots'
 * pinned memory, and
 * the per-layer trace of pd_cuda_test.h. The FP32/TF32 network is here; an
 * fp16 plan's is pd_cuda_run_fp16.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "pd_cuda_test.h"

struct trace {
  pd_cuda_trace_fn fn;
  void *user;
  int n;         /* real images */
  float *buf;    /* host copy of one layer's output, as float */
  pd_half *hbuf; /* fp16 plans: the same as half, before conversion */
  int stop;
};

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
  if (p->sync_layers) CU(&w, cudaStreamSynchronize, (s));
  if (!in_place) *cur = out;
  return PD_OK;
}

int pd_cuda__trace_layer(cuda_plan *p, trace *t, int list, int i, const void *cur, int half,
                         pd_error *err) {
  if (!t) return PD_OK;
  const pd_layer *l = p->layers[list][i].l;
  const where w = {.layer = l, .bucket = 0};
  const size_t floats = (size_t)t->n * pd_shape_len(l->out);
  CU(&w, cudaStreamSynchronize, (p->stream));
  if (half) {
    if (!t->hbuf) return pd_error_set(err, PD_EINTERNAL, "cuda layer trace: no half buffer");
    CU(&w, cudaMemcpy, (t->hbuf, cur, floats * sizeof(pd_half), cudaMemcpyDeviceToHost));
    for (size_t k = 0; k < floats; k++)
      t->buf[k] = pd_h2f_host(t->hbuf[k]);
  } else {
    CU(&w, cudaMemcpy, (t->buf, cur, floats * sizeof(float), cudaMemcpyDeviceToHost));
  }
  if (t->fn(t->user, list, i, t->buf, floats)) t->stop = 1;
  return PD_OK;
}

int pd_cuda__trace_stopped(const trace *t) {
  return t && t->stop;
}

static int run_list(cuda_plan *p, int list, int k, float **cur, trace *t, pd_error *err) {
  for (int i = 0; i < p->n_layers[list]; i++) {
    int rc = run_layer(p, &p->layers[list][i], k, cur, err);
    if (rc != PD_OK) return rc;
    if (t) {
      rc = pd_cuda__trace_layer(p, t, list, i, *cur, 0, err);
      if (rc != PD_OK || t->stop) return rc;
    }
  }
  return PD_OK;
}

/* Enqueues the whole network for bucket k on the plan's stream (inputs
 * already in p->in); *result gets where the probabilities will be. */
int pd_cuda__enqueue(cuda_plan *p, int k, const float **result, trace *t, pd_error *err) {
  if (p->opt.precision == PD_CUDA_FP16) return pd_cuda__enqueue_fp16(p, k, result, t, err);
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
void pd_cuda__drain(cuda_plan *p) {
  (void)cudaStreamSynchronize(p->stream);
  (void)cudaGetLastError();
}

static int upload_inputs(cuda_plan *p, const pd_batch *in, pd_error *err) {
  const pd_graph *m = p->base.graph;
  const where w = {.step = "input upload"};
  for (int b = 0; b < m->n_branches; b++) {
    const size_t bytes = (size_t)in->n * pd_graph_branch_input_len(m, b) * sizeof(float);
    const float *src = in->branch[b];
    struct cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, src) != cudaSuccess || at.type != cudaMemoryTypeHost) {
      (void)cudaGetLastError(); /* pageable memory: not an error */
      memcpy(p->host_in[b], src, bytes);
      src = p->host_in[b];
    }
    CU(&w, cudaMemcpyAsync, (p->in[b], src, bytes, cudaMemcpyHostToDevice, p->stream));
  }
  return PD_OK;
}

/* Queues the batch; the probabilities land in host_probs. */
static int enqueue_batch(cuda_plan *p, const pd_batch *in, pd_error *err) {
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
    rc = pd_cuda__enqueue(p, k, &result, NULL, err);
    if (rc != PD_OK) return rc;
  }
  const size_t bytes = (size_t)in->n * m->n_classes * sizeof(float);
  CU(&w, cudaMemcpyAsync, (p->host_probs, result, bytes, cudaMemcpyDeviceToHost, p->stream));
  return PD_OK;
}

/* After a failed call: the stream drained, a sticky error marks the plan dead. */
static int failed(cuda_plan *p, int rc, int injected, pd_error *err) {
  pd_cuda__drain(p);
  /* a sticky error stays: every later call on the context returns it */
  const cudaError_t e = injected ? cudaErrorIllegalAddress : cudaStreamQuery(p->stream);
  if (pd_cuda__sticky(e)) {
    p->dead = 1;
    snprintf(p->dead_why, sizeof p->dead_why, "%.300s", err->msg);
    rc = err->code = PD_EDEVICE; /* the caller may rebuild elsewhere (pd_backend.h) */
  }
  pd_error_prefix(err, "cuda backend");
  return rc;
}

static int dead(const cuda_plan *p, pd_error *err) {
  return pd_error_set(err, PD_EDEVICE,
                      "cuda backend: plan out of service since a sticky device error (%s); "
                      "a reload makes a new plan",
                      p->dead_why);
}

int pd_cuda__submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  cuda_plan *p = (cuda_plan *)plan;
  p->pending_n = in->n;
  p->pending_probs = probs;
  p->pending_injected = 0;
  if (in->n == 0) return PD_OK;
  if (p->dead) return dead(p, err);
  const where w = {.step = "run"};
  CU(&w, cudaSetDevice, (p->device));
  if (strcmp(p->fault, "run") == 0) { /* reported by wait, as a real fault would be */
    p->pending_injected = 1;
    return PD_OK;
  }
  int rc = enqueue_batch(p, in, err);
  return rc == PD_OK ? PD_OK : failed(p, rc, 0, err);
}

int pd_cuda__wait(pd_plan *plan, pd_error *err) {
  cuda_plan *p = (cuda_plan *)plan;
  if (p->pending_n == 0) return PD_OK;
  const where w = {.step = "run"};
  const int injected = p->pending_injected;
  const cudaError_t e = injected ? cudaErrorIllegalAddress : cudaStreamSynchronize(p->stream);
  if (e != cudaSuccess) {
    int rc = pd_cuda__cu_fail(
        err, &w, injected ? "cudaStreamSynchronize (injected)" : "cudaStreamSynchronize", e);
    return failed(p, rc, injected, err);
  }
  memcpy(p->pending_probs, p->host_probs,
         (size_t)p->pending_n * p->base.graph->n_classes * sizeof(float));
  return PD_OK;
}

int pd_cuda__run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  PD_TRY(pd_cuda__submit(plan, in, probs, err));
  return pd_cuda__wait(plan, err);
}

void *pd_cuda__host_alloc(pd_plan *plan, size_t bytes) {
  (void)plan;
  void *h = NULL; /* portable: pinned for every context, whichever device the plan is on */
  if (cudaHostAlloc(&h, bytes ? bytes : 1, cudaHostAllocPortable) != cudaSuccess) {
    (void)cudaGetLastError();
    return NULL;
  }
  return h;
}

void pd_cuda__host_free(pd_plan *plan, void *h) {
  (void)plan;
  (void)cudaFreeHost(h);
}

int pd_cuda_plan_trace(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                       pd_error *err) {
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (!plan || !in || !fn || base->ops != &pd_cuda__ops)
    return pd_error_set(err, PD_EINVAL, "cuda layer trace: not a cuda plan, or a null argument");
  cuda_plan *p = (cuda_plan *)plan;
  if (in->n < 1 || in->n > base->max_batch)
    return pd_error_set(err, PD_EINVAL, "cuda layer trace: batch of %d outside 1..%d", in->n,
                        base->max_batch);
  const where w = {.step = "trace"};
  CU(&w, cudaSetDevice, (p->device));
  trace t = {.fn = fn, .user = user, .n = in->n};
  t.buf = malloc(p->act_floats * sizeof(float));
  if (p->opt.precision == PD_CUDA_FP16) t.hbuf = malloc(p->act_floats * sizeof(pd_half));
  if (!t.buf || (p->opt.precision == PD_CUDA_FP16 && !t.hbuf)) {
    free(t.buf);
    free(t.hbuf);
    return pd_error_set(err, PD_ENOMEM, "cuda layer trace: out of memory");
  }
  const float *result;
  int rc = upload_inputs(p, in, err);
  if (rc == PD_OK) rc = pd_cuda__enqueue(p, bucket_for(p, in->n), &result, &t, err);
  if (rc != PD_OK) pd_cuda__drain(p);
  free(t.buf);
  free(t.hbuf);
  return rc;
}
