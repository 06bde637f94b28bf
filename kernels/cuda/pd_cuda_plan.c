/* The CUDA backend: plan lifetime, built in steps (handles, weights,
 * buffers, per-bucket convolutions in pd_cuda_conv.c, workspace, warm-up,
 * optional graphs), each freeing nothing on failure: the destroy frees
 * whatever a partial plan holds. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

void pd_cuda__plan_destroy(pd_plan *plan) {
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
  (void)cudaFree(p->weights_h);
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
  FAULT_DNN(p->fault, "handles", &w, "cudnnCreate", CUDNN_STATUS_NOT_INITIALIZED);
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

/* fp16: every conv and dense weight rounded to half (pd_f2h, as the
 * device rounds) in one device allocation, 256-byte aligned each. */
static int plan_weights_half(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: half weights"};
  size_t total = 0, biggest = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const pd_layer *l = p->layers[list][i].l;
      if (!l->weight) continue;
      total += align_halves(l->weight_len);
      biggest = max_sz(biggest, l->weight_len);
    }
  if (total == 0) return PD_OK;
  pd_half *host = malloc(biggest * sizeof *host);
  if (!host) return pd_error_set(err, PD_ENOMEM, "plan: half weights: out of memory");
  cudaError_t e = cudaMalloc(&p->weights_h, total * sizeof(pd_half));
  if (e != cudaSuccess) {
    free(host);
    return pd_cuda__cu_fail(err, &w, "cudaMalloc", e);
  }
  size_t at = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      dev_layer *d = &p->layers[list][i];
      const pd_layer *l = d->l;
      if (!l->weight) continue;
      for (size_t k = 0; k < l->weight_len; k++) {
        host[k] = pd_f2h_host(l->weight[k]);
        if ((host[k] & 0x7c00u) == 0x7c00u && isfinite(l->weight[k])) {
          free(host);
          return pd_error_set(err, PD_EUNSUPP,
                              "layer '%s': weight %zu (%g) is beyond half's range (65504); "
                              "fp16 cannot run this model",
                              l->name, k, (double)l->weight[k]);
        }
      }
      pd_half *dst = (pd_half *)p->weights_h + at;
      e = cudaMemcpy(dst, host, l->weight_len * sizeof *host, cudaMemcpyHostToDevice);
      if (e != cudaSuccess) {
        free(host);
        const where wl = {.layer = l};
        return pd_cuda__cu_fail(err, &wl, "cudaMemcpy", e);
      }
      d->wh = dst;
      at += align_halves(l->weight_len);
    }
  free(host);
  return PD_OK;
}

/* Every layer's weights and bias in one device allocation (256-byte aligned
 * each); fp16 plans keep only the biases here (plan_weights_half). */
static int plan_weights(cuda_plan *p, pd_error *err) {
  const where w = {.step = "plan: weights"};
  const int half = p->opt.precision == PD_CUDA_FP16;
  size_t total = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const pd_layer *l = p->layers[list][i].l;
      if (l->weight && !half) total += align_floats(l->weight_len);
      if (l->bias) total += align_floats(l->bias_len);
    }
  FAULT_CU(p->fault, "weights", &w, "cudaMalloc", cudaErrorMemoryAllocation);
  if (half) {
    int rc = plan_weights_half(p, err);
    if (rc != PD_OK) return rc;
  }
  if (total == 0) return PD_OK;
  CU(&w, cudaMalloc, ((void **)&p->weights, total * sizeof(float)));
  size_t at = 0;
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      dev_layer *d = &p->layers[list][i];
      const pd_layer *l = d->l;
      const where wl = {.layer = l};
      if (l->weight && !half) {
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
  FAULT_CU(p->fault, "buffers", &wi, "cudaHostAlloc", cudaErrorMemoryAllocation);
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

static int plan_warm_up(cuda_plan *p, pd_error *err) {
  for (int k = 0; k < p->n_buckets; k++) {
    const where w = {.step = "plan: warm-up run"};
    FAULT_CU(p->fault, "warm-up", &w, "cudaStreamSynchronize", cudaErrorLaunchFailure);
    int rc = pd_cuda__enqueue(p, k, &p->result, NULL, err);
    if (rc != PD_OK) return rc;
    CU(&w, cudaStreamSynchronize, (p->stream));
  }
  if (!p->opt.graphs) return PD_OK;
  for (int k = 0; k < p->n_buckets; k++) {
    const where w = {.step = "plan: graph capture"};
    FAULT_CU(p->fault, "graphs", &w, "cudaStreamBeginCapture", cudaErrorStreamCaptureUnsupported);
    CU(&w, cudaStreamBeginCapture, (p->stream, cudaStreamCaptureModeRelaxed));
    const float *result = NULL;
    int rc = pd_cuda__enqueue(p, k, &result, NULL, err);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(p->stream, &g);
    if (rc != PD_OK) {
      if (g) (void)cudaGraphDestroy(g);
      return rc;
    }
    if (e != cudaSuccess) return pd_cuda__cu_fail(err, &w, "cudaStreamEndCapture", e);
    e = cudaGraphInstantiate(&p->graph[k], g, 0);
    (void)cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      p->graph[k] = NULL;
      return pd_cuda__cu_fail(err, &w, "cudaGraphInstantiate", e);
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

int pd_cuda__plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                         pd_error *err) {
  const cuda_backend *cb = (const cuda_backend *)be;
  cuda_plan *p = calloc(1, sizeof *p);
  if (!p) return pd_error_set(err, PD_ENOMEM, "cuda backend: out of memory for the plan");
  p->base.ops = &pd_cuda__ops;
  p->base.graph = m;
  p->base.max_batch = max_batch;
  p->device = cb->opt.device;
  p->opt = cb->opt;
  memcpy(p->fault, cb->fault, sizeof p->fault);
  p->sync_layers = cb->sync_layers;
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
  if (p->opt.precision == PD_CUDA_FP16) pd_cuda__fp16_mark_outputs(p);

  int rc = check_sizes(m, max_batch, err);
  if (rc == PD_OK) rc = plan_device(p, err);
  if (rc == PD_OK) rc = plan_handles(p, err);
  if (rc == PD_OK) rc = plan_weights(p, err);
  if (rc == PD_OK) rc = plan_buffers(p, err);
  if (rc == PD_OK) rc = pd_cuda__plan_convs(p, err);
  if (rc == PD_OK) rc = plan_warm_up(p, err);
  if (rc != PD_OK) {
    if (p->stream) pd_cuda__drain(p);
    pd_cuda__plan_destroy((pd_plan *)p);
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
  if (!plan || base->ops != &pd_cuda__ops) {
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
      pd_cuda__precision_name(p->opt.precision), p->opt.graphs ? ", graphs" : "");
  if (p->algo_note[0]) PUT("%s\n", p->algo_note);
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const dev_layer *d = &p->layers[list][i];
      if (!d->cb) continue;
      PUT("  %s:", d->l->name);
      for (int k = 0; k < p->n_buckets; k++)
        PUT(" [%d] %s/%s %zuB%s", p->buckets[k], pd_cuda__algo_name(d->cb[k].algo),
            pd_cuda__math_name(d->cb[k].math), d->cb[k].ws, d->cb[k].ms >= 0 ? "" : " (heuristic)");
      PUT("\n");
    }
#undef PUT
}
