/* pd_cuda_kernels: the kernels behind pd_cuda_kernels.h. Simple, one thread
 * per output element with grid-stride loops and 32-bit indices (pd_idx: a launcher
 * refuses 2^31 elements or more) over the
 * per-element functions of pd_cuda_elem.cuh (each mirrors its pd_cpu_*
 * function operation for operation, and is checked against it on the host by
 * tests/test_cuda_kernels.cu); softmax is one block per row. Nothing here
 * allocates or keeps state. */
#include "pd_cuda_kernels.h"

#include <float.h>
#include <limits.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "pd_cuda_elem.cuh"

namespace {

constexpr int kThreads = 256;

/* Blocks for n elements at kThreads per block; grid-stride loops cover the rest. */
unsigned blocks_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (1u << 20)) b = 1u << 20;
  return (unsigned)b;
}

/* < 2^20 blocks of 256 threads: both fit 32 bits, and i + stride stays
 * below 2^32 for every i < 2^31. */
__device__ __forceinline__ pd_idx thread_index() {
  return blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ pd_idx thread_stride() {
  return gridDim.x * blockDim.x;
}

/* Whether n elements can be indexed with pd_idx (the plan checks this; a
 * launcher refuses more rather than index wrongly). */
bool fits(size_t n) {
  return n <= (size_t)INT_MAX;
}

__global__ void k_bias_act(float *x, pd_idx total, int cols, const float *bias, int leaky,
                           float slope) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    x[i] = elem_bias_act(x[i], i, cols, bias, leaky, slope);
}

__global__ void k_leaky_relu(float *x, pd_idx n, float slope) {
  for (pd_idx i = thread_index(); i < n; i += thread_stride())
    x[i] = elem_leaky(x[i], slope);
}

__global__ void k_maxpool(const float *in, float *out, pd_idx total, int h, int w, int c, int oh,
                          int ow, int size, int stride) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_maxpool(in, i, h, w, c, oh, ow, size, stride);
}

__global__ void k_cyclic_slice(const float *in, float *out, pd_idx total, int views, int n, int c) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_cyclic_slice(in, i, views, n, c);
}

__global__ void k_cyclic_roll(const float *in, float *out, pd_idx total, int views, int h, int w,
                              int c, const __grid_constant__ pd_cuda_d4 g) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_cyclic_roll(in, i, views, h, w, c, &g);
}

__global__ void k_cyclic_pool(const float *in, float *out, pd_idx total, int views, pd_idx len,
                              int mode) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_cyclic_pool(in, i, views, len, mode);
}

__global__ void k_maxout(const float *in, float *out, pd_idx total, int c, int pieces) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_maxout(in, i, c, pieces);
}

__global__ void k_global_avg_pool(const float *in, float *out, pd_idx total, int p, int c) {
  for (pd_idx i = thread_index(); i < total; i += thread_stride())
    out[i] = elem_global_avg_pool(in, i, p, c);
}

/* One block per row: max, expf(x - max) with the sum in double, scale. */
__global__ void k_softmax(float *x, size_t rows, int cols) {
  __shared__ float smax[kThreads / 32];
  __shared__ double ssum[kThreads / 32];
  __shared__ float row_max;
  __shared__ float row_inv;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float *row = x + r * (size_t)cols;
    float m = -FLT_MAX;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
      m = row[c] > m ? row[c] : m;
    for (int o = 16; o > 0; o >>= 1) {
      float other = __shfl_xor_sync(0xffffffffu, m, o);
      m = other > m ? other : m;
    }
    if (lane == 0) smax[warp] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
      float mm = smax[0];
      for (int k = 1; k < nwarps; k++)
        mm = smax[k] > mm ? smax[k] : mm;
      row_max = mm;
    }
    __syncthreads();
    m = row_max;
    double sum = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      float e = expf(row[c] - m);
      row[c] = e;
      sum += (double)e;
    }
    for (int o = 16; o > 0; o >>= 1)
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) ssum[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      double s = 0.0;
      for (int k = 0; k < nwarps; k++)
        s += ssum[k];
      row_inv = (float)(1.0 / s);
    }
    __syncthreads();
    const float inv = row_inv;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
      row[c] *= inv;
    __syncthreads(); /* the shared values are rewritten for the next row */
  }
}

/* Crop k of `count`, pixel (col, j) of its size x size slot. */
__global__ void k_warp(const unsigned char *pixels, const long long *offset, const int *wv,
                       const int *hv, const double *affine, int count,
                       const __grid_constant__ pd_cuda_warp_params prm, float *out,
                       size_t out_stride) {
  const pd_idx plane = (pd_idx)prm.size * (pd_idx)prm.size, total = plane * (pd_idx)count;
  for (pd_idx i = thread_index(); i < total; i += thread_stride()) {
    const int k = (int)(i / plane);
    const int pix = (int)(i % plane);
    const long long off = offset[k];
    const unsigned char *px = off < 0 ? nullptr : pixels + off;
    out[(size_t)k * out_stride + pix] =
        elem_warp(px, wv[k], hv[k], affine + 6 * (size_t)k, pix % prm.size, pix / prm.size, &prm);
  }
}

} // namespace

extern "C" {

cudaError_t pd_cuda_bias_act(cudaStream_t s, float *x, size_t rows, int cols, const float *bias,
                             int leaky, float slope) {
  const size_t total = rows * (size_t)cols;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_bias_act<<<blocks_for(total), kThreads, 0, s>>>(x, total, cols, bias, leaky, slope);
  return cudaGetLastError();
}

cudaError_t pd_cuda_leaky_relu(cudaStream_t s, float *x, size_t n, float slope) {
  if (n == 0) return cudaSuccess;
  if (!fits(n)) return cudaErrorInvalidValue;
  k_leaky_relu<<<blocks_for(n), kThreads, 0, s>>>(x, n, slope);
  return cudaGetLastError();
}

cudaError_t pd_cuda_maxpool(cudaStream_t s, const float *in, float *out, size_t maps, int h, int w,
                            int c, int oh, int ow, int size, int stride) {
  const size_t total = maps * (size_t)oh * ow * c;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_maxpool<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, h, w, c, oh, ow, size, stride);
  return cudaGetLastError();
}

cudaError_t pd_cuda_cyclic_slice(cudaStream_t s, const float *in, float *out, int images, int views,
                                 int n, int c) {
  const size_t total = (size_t)images * views * n * n * c;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_cyclic_slice<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, views, n, c);
  return cudaGetLastError();
}

cudaError_t pd_cuda_cyclic_roll(cudaStream_t s, const float *in, float *out, int images, int views,
                                int h, int w, int c, pd_cuda_d4 group) {
  const size_t total = (size_t)images * views * h * w * views * c;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_cyclic_roll<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, views, h, w, c, group);
  return cudaGetLastError();
}

cudaError_t pd_cuda_cyclic_pool(cudaStream_t s, const float *in, float *out, int images, int views,
                                size_t len, int mode) {
  const size_t total = (size_t)images * len;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_cyclic_pool<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, views, len, mode);
  return cudaGetLastError();
}

cudaError_t pd_cuda_maxout(cudaStream_t s, const float *in, float *out, size_t rows, int c,
                           int pieces) {
  const size_t total = rows * (size_t)(c / pieces);
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_maxout<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, c, pieces);
  return cudaGetLastError();
}

cudaError_t pd_cuda_global_avg_pool(cudaStream_t s, const float *in, float *out, size_t maps, int p,
                                    int c) {
  const size_t total = maps * (size_t)c;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_global_avg_pool<<<blocks_for(total), kThreads, 0, s>>>(in, out, total, p, c);
  return cudaGetLastError();
}

cudaError_t pd_cuda_softmax(cudaStream_t s, float *x, size_t rows, int cols) {
  if (rows == 0 || cols <= 0) return cudaSuccess;
  unsigned grid = rows > 65535 ? 65535u : (unsigned)rows;
  k_softmax<<<grid, kThreads, 0, s>>>(x, rows, cols);
  return cudaGetLastError();
}

cudaError_t pd_cuda_warp(cudaStream_t s, const unsigned char *pixels, const long long *offset,
                         const int *w, const int *h, const double *affine, int count,
                         pd_cuda_warp_params params, float *out, size_t out_stride) {
  const size_t total = (size_t)params.size * params.size * (size_t)count;
  if (total == 0) return cudaSuccess;
  if (!fits(total)) return cudaErrorInvalidValue;
  k_warp<<<blocks_for(total), kThreads, 0, s>>>(pixels, offset, w, h, affine, count, params, out,
                                                out_stride);
  return cudaGetLastError();
}

cudaError_t pd_cuda_kernels_probe(void) {
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, k_bias_act);
}

} // extern "C"
