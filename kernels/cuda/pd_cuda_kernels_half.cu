/* pd_cuda_kernels_half: the kernels behind pd_cuda_kernels_half.h. One
 * thread per output element, grid-stride loops and 32-bit indices (a
 * launcher refuses 2^31 elements or more), over the element functions of
 * pd_cuda_half.h, which tests/test_cuda_fp16_host.c checks on the host with
 * the same rounding. Nothing here allocates or keeps state. */
#include "pd_cuda_kernels_half.h"

#include <limits.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "pd_cuda_half.h"

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (1u << 20)) b = 1u << 20;
  return (unsigned)b;
}

__device__ __forceinline__ pd_hidx thread_index() {
  return blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ pd_hidx thread_stride() {
  return gridDim.x * blockDim.x;
}

bool fits(size_t n) {
  return n <= (size_t)INT_MAX;
}

/* A result stored as half (one rounding) or as float. */
__device__ __forceinline__ void store(void *out, int out_half, pd_hidx i, float v) {
  if (out_half)
    static_cast<pd_half *>(out)[i] = pd_f2h(v);
  else
    static_cast<float *>(out)[i] = v;
}

__global__ void k_h_from_f(const float *in, pd_half *out, pd_hidx n) {
  for (pd_hidx i = thread_index(); i < n; i += thread_stride())
    out[i] = pd_f2h(in[i]);
}

__global__ void k_h_to_f(const pd_half *in, float *out, pd_hidx n) {
  for (pd_hidx i = thread_index(); i < n; i += thread_stride())
    out[i] = pd_h2f(in[i]);
}

__global__ void k_h_bias_act(pd_half *x, pd_hidx total, int cols, const float *bias, int leaky,
                             float slope) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    x[i] = pd_f2h(elem_h_bias_act(pd_h2f(x[i]), i, cols, bias, leaky, slope));
}

__global__ void k_h_fill_bias(pd_half *y, pd_hidx total, int cols, const float *bias) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    y[i] = elem_h_bias_fill(i, cols, bias);
}

__global__ void k_h_leaky(pd_half *x, pd_hidx n, float slope) {
  for (pd_hidx i = thread_index(); i < n; i += thread_stride())
    x[i] = pd_f2h(elem_h_leaky(x[i], slope));
}

__global__ void k_h_maxpool(const pd_half *in, pd_half *out, pd_hidx total, int h, int w, int c,
                            int oh, int ow, int size, int stride) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_h_maxpool(in, i, h, w, c, oh, ow, size, stride);
}

__global__ void k_h_cyclic_slice(const pd_half *in, pd_half *out, pd_hidx total, int views, int n,
                                 int c) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_h_cyclic_slice(in, i, views, n, c);
}

__global__ void k_h_cyclic_roll(const pd_half *in, pd_half *out, pd_hidx total, int views, int h,
                                int w, int c, const __grid_constant__ pd_cuda_d4 g) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_h_cyclic_roll(in, i, views, h, w, c, g.mul, g.inv);
}

__global__ void k_h_maxout(const pd_half *in, pd_half *out, pd_hidx total, int c, int pieces) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_h_maxout(in, i, c, pieces);
}

__global__ void k_h_cyclic_pool(const pd_half *in, void *out, int out_half, pd_hidx total,
                                int views, pd_hidx len, int mode) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    store(out, out_half, i, elem_h_cyclic_pool(in, i, views, len, mode));
}

__global__ void k_h_global_avg_pool(const pd_half *in, void *out, int out_half, pd_hidx total,
                                    int p, int c) {
  for (pd_hidx i = thread_index(); i < total; i += thread_stride())
    store(out, out_half, i, elem_h_global_avg_pool(in, i, p, c));
}

} // namespace

extern "C" {

#define PD_H_LAUNCH(total, kernel, ...)                                                            \
  do {                                                                                             \
    if ((total) == 0) return cudaSuccess;                                                          \
    if (!fits(total)) return cudaErrorInvalidValue;                                                \
    kernel<<<blocks_for(total), kThreads, 0, s>>>(__VA_ARGS__);                                    \
    return cudaGetLastError();                                                                     \
  } while (0)

cudaError_t pd_cuda_h_from_f(cudaStream_t s, const float *in, pd_cuda_half_t *out, size_t n) {
  PD_H_LAUNCH(n, k_h_from_f, in, out, (pd_hidx)n);
}

cudaError_t pd_cuda_h_to_f(cudaStream_t s, const pd_cuda_half_t *in, float *out, size_t n) {
  PD_H_LAUNCH(n, k_h_to_f, in, out, (pd_hidx)n);
}

cudaError_t pd_cuda_h_bias_act(cudaStream_t s, pd_cuda_half_t *x, size_t rows, int cols,
                               const float *bias, int leaky, float slope) {
  const size_t total = rows * (size_t)cols;
  PD_H_LAUNCH(total, k_h_bias_act, x, (pd_hidx)total, cols, bias, leaky, slope);
}

cudaError_t pd_cuda_h_fill_bias(cudaStream_t s, pd_cuda_half_t *y, size_t rows, int cols,
                                const float *bias) {
  const size_t total = rows * (size_t)cols;
  PD_H_LAUNCH(total, k_h_fill_bias, y, (pd_hidx)total, cols, bias);
}

cudaError_t pd_cuda_h_leaky_relu(cudaStream_t s, pd_cuda_half_t *x, size_t n, float slope) {
  PD_H_LAUNCH(n, k_h_leaky, x, (pd_hidx)n, slope);
}

cudaError_t pd_cuda_h_maxpool(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                              size_t maps, int h, int w, int c, int oh, int ow, int size,
                              int stride) {
  const size_t total = maps * (size_t)oh * ow * c;
  PD_H_LAUNCH(total, k_h_maxpool, in, out, (pd_hidx)total, h, w, c, oh, ow, size, stride);
}

cudaError_t pd_cuda_h_cyclic_slice(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                                   int images, int views, int n, int c) {
  const size_t total = (size_t)images * views * n * n * c;
  PD_H_LAUNCH(total, k_h_cyclic_slice, in, out, (pd_hidx)total, views, n, c);
}

cudaError_t pd_cuda_h_cyclic_roll(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                                  int images, int views, int h, int w, int c, pd_cuda_d4 group) {
  const size_t total = (size_t)images * views * h * w * views * c;
  PD_H_LAUNCH(total, k_h_cyclic_roll, in, out, (pd_hidx)total, views, h, w, c, group);
}

cudaError_t pd_cuda_h_maxout(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                             size_t rows, int c, int pieces) {
  const size_t total = rows * (size_t)(c / pieces);
  PD_H_LAUNCH(total, k_h_maxout, in, out, (pd_hidx)total, c, pieces);
}

cudaError_t pd_cuda_h_cyclic_pool(cudaStream_t s, const pd_cuda_half_t *in, void *out, int out_half,
                                  int images, int views, size_t len, int mode) {
  const size_t total = (size_t)images * len;
  PD_H_LAUNCH(total, k_h_cyclic_pool, in, out, out_half, (pd_hidx)total, views, (pd_hidx)len, mode);
}

cudaError_t pd_cuda_h_global_avg_pool(cudaStream_t s, const pd_cuda_half_t *in, void *out,
                                      int out_half, size_t maps, int p, int c) {
  const size_t total = maps * (size_t)c;
  PD_H_LAUNCH(total, k_h_global_avg_pool, in, out, out_half, (pd_hidx)total, p, c);
}

#undef PD_H_LAUNCH

} // extern "C"
