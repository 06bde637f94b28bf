/* The CUDA backend (design in pd_cuda_backend.h): creation (device checks,
 * the probe of kernels, cuDNN and cuBLAS), the error helpers every file uses,
 * and the warp check of pd_cuda_test.h. A plan: pd_cuda_plan.c; the
 * convolution algorithms: pd_cuda_conv.c; a run: pd_cuda_run.c. Every
 * CUDA/cuDNN/cuBLAS call goes through CU/DNN/BLAS (cuda_internal.h), which
 * return an error naming the call, its error name and the layer or step. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "pd_cuda_test.h"

#ifndef PD_CUDA_ARCHS
#define PD_CUDA_ARCHS "unknown"
#endif

/* ---- error reporting ---- */

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

int pd_cuda__cu_fail(pd_error *err, const where *w, const char *call, cudaError_t e) {
  char at[192];
  where_text(w, at, sizeof at);
  (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
  return pd_error_set(err, cu_code(e), "%s: %s: %s (%s)", at, call, cudaGetErrorName(e),
                      cudaGetErrorString(e));
}

int pd_cuda__sticky(cudaError_t e) {
  switch (e) {
  case cudaErrorIllegalAddress:
  case cudaErrorLaunchFailure:
  case cudaErrorHardwareStackError:
  case cudaErrorIllegalInstruction:
  case cudaErrorMisalignedAddress:
  case cudaErrorInvalidAddressSpace:
  case cudaErrorInvalidPc:
  case cudaErrorAssert:
  case cudaErrorECCUncorrectable:
  case cudaErrorLaunchTimeout:
    return 1;
  default:
    return 0;
  }
}

int pd_cuda__kern_fail(pd_error *err, const where *w, const char *call, cudaError_t e) {
  if (!pd_cuda__sticky(e)) return pd_cuda__cu_fail(err, w, call, e);
  char at[192];
  where_text(w, at, sizeof at);
  return pd_error_set(err, PD_EINTERNAL,
                      "%s: %s: %s (%s), a device fault of earlier work seen at this launch "
                      "(PD_CUDA_SYNC_LAYERS=1 names the layer)",
                      at, call, cudaGetErrorName(e), cudaGetErrorString(e));
}

int pd_cuda__dnn_fail(pd_error *err, const where *w, const char *call, cudnnStatus_t s) {
  char at[192], detail[256];
  where_text(w, at, sizeof at);
  detail[0] = '\0';
  cudnnGetLastErrorString(detail, sizeof detail);
  return pd_error_set(err, s == CUDNN_STATUS_ALLOC_FAILED ? PD_ENOMEM : PD_EINTERNAL,
                      "%s: %s: %s%s%s%s", at, call, cudnnGetErrorString(s), detail[0] ? " (" : "",
                      detail, detail[0] ? ")" : "");
}

int pd_cuda__blas_fail(pd_error *err, const where *w, const char *call, cublasStatus_t s) {
  char at[192];
  where_text(w, at, sizeof at);
  return pd_error_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? PD_ENOMEM : PD_EINTERNAL,
                      "%s: %s: %s (%s)", at, call, cublasGetStatusName(s),
                      cublasGetStatusString(s));
}

int pd_cuda__fault_parse(const char *spec, char *out, size_t cap, pd_error *err) {
  out[0] = '\0';
  if (!spec || !*spec) return PD_OK;
  static const char *const stages[] = {"probe",       "handles",    "weights",   "buffers",
                                       "descriptors", "algorithms", "workspace", "warm-up",
                                       "graphs",      "run"};
  for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
    if (strcmp(spec, stages[i]) == 0) {
      snprintf(out, cap, "%s", stages[i]);
      return PD_OK;
    }
  return pd_error_set(err, PD_EINVAL, "%s '%.64s': unknown stage (%s)", PD_CUDA_FAULT_ENV, spec,
                      PD_CUDA_FAULT_STAGES);
}

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
  if (e != cudaSuccess) return pd_cuda__cu_fail(err, &wh, "cudaMalloc/cudaMemcpy", e);
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
  if (!be || be->ops != &pd_cuda__ops || !spec || !pixels || !w || !h || !affines || !out ||
      count < 1)
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

const pd_backend_ops pd_cuda__ops = {
    .name = "cuda",
    .plan_create = pd_cuda__plan_create,
    .run = pd_cuda__run,
    .submit = pd_cuda__submit,
    .wait = pd_cuda__wait,
    .host_alloc = pd_cuda__host_alloc,
    .host_free = pd_cuda__host_free,
    .plan_destroy = pd_cuda__plan_destroy,
    .destroy = cuda_destroy,
};

void pd_cuda_backend_describe(const pd_backend *be, char *buf, size_t len) {
  if (!buf || len == 0) return;
  if (!be || be->ops != &pd_cuda__ops)
    snprintf(buf, len, "not a cuda backend");
  else
    snprintf(buf, len, "%s", ((const cuda_backend *)be)->describe);
}

/* cuDNN loads its sub-libraries (cnn, engines) only when first used: one
 * small convolution's descriptors and a heuristic algorithm query load
 * them, so a partial install fails here, not at plan time. */
static cudnnStatus_t probe_conv(cudnnHandle_t h) {
  cudnnTensorDescriptor_t x = NULL, y = NULL;
  cudnnFilterDescriptor_t f = NULL;
  cudnnConvolutionDescriptor_t c = NULL;
  cudnnStatus_t s = cudnnCreateTensorDescriptor(&x);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateTensorDescriptor(&y);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateFilterDescriptor(&f);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateConvolutionDescriptor(&c);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 8, 8, 8);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 8, 8, 8);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetFilter4dDescriptor(f, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 8, 8, 3, 3);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetConvolution2dDescriptor(c, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT);
  cudnnConvolutionFwdAlgoPerf_t perf[1];
  int n = 0;
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnGetConvolutionForwardAlgorithm_v7(h, x, f, c, y, 1, &n, perf);
  if (c) cudnnDestroyConvolutionDescriptor(c);
  if (f) cudnnDestroyFilterDescriptor(f);
  if (y) cudnnDestroyTensorDescriptor(y);
  if (x) cudnnDestroyTensorDescriptor(x);
  return s;
}

/* Checks the device can run us: kernel image, cuDNN (with a convolution) and cuBLAS. */
static int probe_device(const char *fault, const char *dev, pd_error *err) {
  cudaError_t e = pd_cuda_kernels_probe();
  if (e != cudaSuccess && e != cudaErrorNoKernelImageForDevice &&
      e != cudaErrorInvalidDeviceFunction) {
    (void)cudaGetLastError(); /* e.g. a sticky error, or a GPU in exclusive-process use */
    return pd_error_set(err, PD_EUNSUPP, "%s: probe: cudaFuncGetAttributes: %s (%s)", dev,
                        cudaGetErrorName(e), cudaGetErrorString(e));
  }
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
  cudnnStatus_t s =
      strcmp(fault, "probe") == 0 ? CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED : cudnnCreate(&h);
  if (s != CUDNN_STATUS_SUCCESS)
    return pd_error_set(err, PD_EUNSUPP, "%s: probe: cudnnCreate%s: %s", dev,
                        strcmp(fault, "probe") == 0 ? " (injected)" : "", cudnnGetErrorString(s));
  s = probe_conv(h);
  cudnnDestroy(h);
  if (s != CUDNN_STATUS_SUCCESS)
    return pd_error_set(err, PD_EUNSUPP,
                        "%s: probe: a 3x3 NHWC FP32 convolution's descriptors and algorithm "
                        "(cuDNN's cnn sub-library): %s",
                        dev, cudnnGetErrorString(s));
  cublasHandle_t bh = NULL;
  cublasStatus_t bs = cublasCreate(&bh);
  if (bs != CUBLAS_STATUS_SUCCESS)
    return pd_error_set(err, PD_EUNSUPP, "%s: cublasCreate: %s (%s)", dev, cublasGetStatusName(bs),
                        cublasGetStatusString(bs));
  cublasDestroy(bh);
  return PD_OK;
}

int pd_cuda_backend_create(const pd_cuda_options *opt, pd_backend **out, pd_error *err) {
  pd_cuda_options o = opt ? *opt : pd_cuda_options_default();
  if (!out) return pd_error_set(err, PD_EINVAL, "cuda backend: null argument");
  if (o.precision == PD_CUDA_BF16 || o.precision == PD_CUDA_INT8)
    return pd_error_set(err, PD_EUNSUPP,
                        "cuda backend: precision %s is not implemented; it runs: fp32, tf32, fp16",
                        o.precision == PD_CUDA_BF16 ? "bf16" : "int8");
  if (o.precision != PD_CUDA_FP32 && o.precision != PD_CUDA_TF32 && o.precision != PD_CUDA_FP16)
    return pd_error_set(err, PD_EINVAL, "cuda backend: unknown precision %d", (int)o.precision);
  if (o.device < 0) return pd_error_set(err, PD_EINVAL, "cuda backend: device %d < 0", o.device);
  char fault[16];
  int rc = pd_cuda__fault_parse(getenv(PD_CUDA_FAULT_ENV), fault, sizeof fault, err);
  if (rc != PD_OK) return rc;
  int count = 0;
  rc = pd_cuda_device_count(&count, err);
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
  rc = probe_device(fault, dev, err);
  if (rc != PD_OK) return rc;
  int driver = 0, runtime = 0;
  CU(&w, cudaDriverGetVersion, (&driver));
  CU(&w, cudaRuntimeGetVersion, (&runtime));

  cuda_backend *cb = calloc(1, sizeof *cb);
  if (!cb) return pd_error_set(err, PD_ENOMEM, "cuda backend: out of memory");
  cb->base.ops = &pd_cuda__ops;
  cb->opt = o;
  snprintf(cb->fault, sizeof cb->fault, "%s", fault);
  const char *sync = getenv("PD_CUDA_SYNC_LAYERS");
  cb->sync_layers = sync && strcmp(sync, "1") == 0;
  if (cb->sync_layers) cb->opt.graphs = 0; /* a wait cannot be captured */
  snprintf(cb->describe, sizeof cb->describe,
           "device %d: %.200s (compute %d.%d, %.1f GiB, %d SMs), driver %d.%d, runtime %d.%d, "
           "cuDNN %zu, %s%s%s",
           o.device, prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.multiProcessorCount,
           driver / 1000, (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10,
           cudnnGetVersion(), pd_cuda__precision_name(o.precision),
           o.heuristic_algos ? ", heuristic algorithms" : "", o.graphs ? ", graphs" : "");
  *out = &cb->base;
  return PD_OK;
}
