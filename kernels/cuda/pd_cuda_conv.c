/* The CUDA backend: the convolutions of a plan, per batch bucket: cuDNN
 * descriptors (NHWC; FLOAT tensors, or HALF tensors with FLOAT compute in an
 * fp16 plan), the math type for the precision, and the algorithm, measured
 * (cudnnFindConvolutionForwardAlgorithmEx) or from cuDNN's heuristics,
 * within the workspace limit. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

const char *pd_cuda__algo_name(cudnnConvolutionFwdAlgo_t a) {
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

const char *pd_cuda__math_name(cudnnMathType_t t) {
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
 * type the precision allows, cuDNN accepts with a workspace within limit
 * (fp16: any math type cuDNN reports; the data are half already, so
 * ALLOW_CONVERSION converts nothing). Returns 1 when one is chosen, 0 when
 * none fits, a PD_E* code on error. */
static int choose_algo(cuda_plan *p, const dev_layer *d, conv_bucket *cb,
                       const cudnnConvolutionFwdAlgoPerf_t *perf, int n, size_t limit, int measured,
                       const where *w, pd_error *err) {
  const int strict = p->opt.precision == PD_CUDA_FP32;
  const int half = p->opt.precision == PD_CUDA_FP16;
  /* FP32: FMA results first; results reported under the default math type
   * are tried with FMA forced (cuDNN refuses the pair if it cannot). */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
      cudnnMathType_t math = perf[i].mathType;
      if (half) {
        if (pass == 1) continue;
      } else if (strict) {
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
  const int half = p->opt.precision == PD_CUDA_FP16;
  const cudnnDataType_t dt = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  DNN(&w, cudnnCreateTensorDescriptor, (&cb->x));
  DNN(&w, cudnnCreateTensorDescriptor, (&cb->y));
  DNN(&w, cudnnCreateConvolutionDescriptor, (&cb->conv));
  FAULT_DNN(p->fault, "descriptors", &w, "cudnnSetTensor4dDescriptor", CUDNN_STATUS_BAD_PARAM);
  DNN(&w, cudnnSetTensor4dDescriptor,
      (cb->x, CUDNN_TENSOR_NHWC, dt, n_in, l->in.c, l->in.h, l->in.w));
  DNN(&w, cudnnSetTensor4dDescriptor,
      (cb->y, CUDNN_TENSOR_NHWC, dt, n_in, l->out.c, l->out.h, l->out.w));
  /* The compute type is FLOAT in every precision: fp16 accumulates in FP32. */
  DNN(&w, cudnnSetConvolution2dDescriptor,
      (cb->conv, l->pad, l->pad, l->stride, l->stride, 1, 1, CUDNN_CROSS_CORRELATION,
       CUDNN_DATA_FLOAT));
  const int strict = p->opt.precision == PD_CUDA_FP32;
  const cudnnMathType_t math0 = strict ? CUDNN_FMA_MATH
                                : half ? CUDNN_TENSOR_OP_MATH
                                       : CUDNN_DEFAULT_MATH;
  DNN(&w, cudnnSetConvolutionMathType, (cb->conv, math0));
  int on, oc, oh, ow;
  DNN(&w, cudnnGetConvolution2dForwardOutputDim, (cb->conv, cb->x, d->filt, &on, &oc, &oh, &ow));
  if (on != n_in || oc != l->out.c || oh != l->out.h || ow != l->out.w)
    return pd_error_set(err, PD_EINTERNAL,
                        "layer '%s': cuDNN computes output %dx%dx%dx%d, the model "
                        "%dx%dx%dx%d",
                        l->name, on, oh, ow, oc, n_in, l->out.h, l->out.w, l->out.c);

  /* The cached choice if cuDNN still takes it, then the measured choice
   * (unless heuristics were asked for), then cuDNN's heuristics, then
   * implicit GEMM; a search that fails is not fatal. */
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT * 2];
  int returned = 0, rc;
  const pd_algo_choice *hit = pd_cuda__algo_cached(p, d, nb);
  if (hit) {
    perf[0] = (cudnnConvolutionFwdAlgoPerf_t){.algo = (cudnnConvolutionFwdAlgo_t)hit->algo,
                                              .status = CUDNN_STATUS_SUCCESS,
                                              .mathType = (cudnnMathType_t)hit->math,
                                              .time = hit->ms};
    if ((rc = choose_algo(p, d, cb, perf, 1, search_bytes, hit->ms >= 0, &w, err)) < 0) return rc;
    if (rc > 0) {
      p->algo_hits++;
      return PD_OK;
    }
  }
  cudnnStatus_t find = CUDNN_STATUS_SUCCESS, heur;
  const int injected = strcmp(p->fault, "algorithms") == 0;
  if (injected) {
    find = heur = CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED;
    goto none;
  }
  if (!p->opt.heuristic_algos) {
    find = cudnnFindConvolutionForwardAlgorithmEx(
        p->dnn, cb->x, p->act[0], d->filt, half ? d->wh : (const void *)d->w, cb->conv, cb->y,
        p->act[1], CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, search_ws, search_bytes);
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
  /* Implicit GEMM needs no workspace and supports every NHWC FP32 case
   * (fp16: cuDNN says whether it takes the half tensors). */
  cudnnConvolutionFwdAlgoPerf_t fallback = {.algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                            .status = CUDNN_STATUS_SUCCESS,
                                            .mathType = math0};
  if ((rc = choose_algo(p, d, cb, &fallback, 1, search_bytes, 0, &w, err)) != 0)
    return rc > 0 ? PD_OK : rc;
none:
  return pd_error_set(err, PD_EUNSUPP,
                      "layer '%s' (conv %dx%d/%d, %d -> %d channels, batch bucket %d): "
                      "cuDNN offers no forward algorithm for NHWC %s within %zu workspace bytes "
                      "(cudnnFindConvolutionForwardAlgorithmEx: %s; "
                      "cudnnGetConvolutionForwardAlgorithm_v7: %s)%s",
                      l->name, l->kernel, l->kernel, l->stride, l->in.c, l->filters, nb,
                      strict ? "FP32 (FMA)"
                      : half ? "FP16 (FP32 compute, tensor op)"
                             : "FP32/TF32",
                      search_bytes, p->opt.heuristic_algos ? "not used" : cudnnGetErrorString(find),
                      cudnnGetErrorString(heur), injected ? " (injected)" : "");
}

/* Descriptors and an algorithm per conv layer and bucket, then the one workspace. */
int pd_cuda__plan_convs(cuda_plan *p, pd_error *err) {
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
  pd_cuda__algo_open(p);
  int rc = PD_OK;
  for (int list = 0; list <= HEAD && rc == PD_OK; list++) {
    for (int i = 0; i < p->n_layers[list] && rc == PD_OK; i++) {
      dev_layer *d = &p->layers[list][i];
      const pd_layer *l = d->l;
      if (l->kind != PD_LAYER_CONV) continue;
      const where wl = {.layer = l};
      cudnnStatus_t s = cudnnCreateFilterDescriptor(&d->filt);
      if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnSetFilter4dDescriptor(
            d->filt, p->opt.precision == PD_CUDA_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT,
            CUDNN_TENSOR_NHWC, l->filters, l->in.c, l->kernel, l->kernel);
      if (s != CUDNN_STATUS_SUCCESS) {
        rc = pd_cuda__dnn_fail(err, &wl, "cudnnSetFilter4dDescriptor", s);
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
  pd_cuda__algo_close(p, rc == PD_OK);
  if (rc != PD_OK) return rc;
  const where wws = {.step = "plan: convolution workspace"};
  FAULT_CU(p->fault, "workspace", &wws, "cudaMalloc", cudaErrorMemoryAllocation);
  if (p->ws_bytes > 0) CU(&wws, cudaMalloc, (&p->ws, p->ws_bytes));
  return PD_OK;
}

/* Runs every bucket once (loads every kernel, checks every call), then
 * captures the graphs if asked. */
