/* pd_cuda_kernels: our own CUDA kernels for the layers cuDNN and cuBLAS do
 * not cover (or where fusing pays), behind C-callable launchers so the
 * backend's host code stays C. Owns nothing but the kernels: every launcher
 * enqueues one kernel on the caller's stream over caller-owned device
 * buffers and returns the launch status (cudaGetLastError after the launch;
 * execution errors surface at the stream's next synchronisation).
 *
 * Layouts are the CPU's (pd_cpu_ops.h): NHWC maps with the views of one
 * image adjacent, [image][view][h][w][c]. Each kernel computes exactly what
 * its pd_cpu_* counterpart computes, in the same order of floating-point
 * operations where that order is fixed (pooling, cyclic pooling, bias +
 * activation), so only convolution/dense summation order and expf differ
 * between the two backends. */
#ifndef PD_CUDA_KERNELS_H
#define PD_CUDA_KERNELS_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The D4 group tables, filled on the host from pd_d4_mul / pd_d4_inv so the
 * GPU uses exactly the CPU's group (passed to kernels by value). */
typedef struct pd_cuda_d4 {
  int mul[8][8]; /* mul[a][b] = pd_d4_mul(a, b) */
  int inv[8];    /* inv[a] = pd_d4_inv(a) */
} pd_cuda_d4;

/* Cyclic pooling modes, numerically equal to pd_cyclic_pool_mode. */
enum { PD_CUDA_CPOOL_MEAN = 0, PD_CUDA_CPOOL_RMS = 1, PD_CUDA_CPOOL_MAX = 2 };

/* x[r][c] = act(x[r][c] + bias[c]) for rows x cols, in place (pd_cpu_bias_act).
 * leaky: 0 = identity after the bias, 1 = leaky ReLU with `slope`. */
cudaError_t pd_cuda_bias_act(cudaStream_t s, float *x, size_t rows, int cols, const float *bias,
                             int leaky, float slope);

/* x = x > 0 ? x : x * slope, in place, n floats (pd_cpu_leaky_relu). */
cudaError_t pd_cuda_leaky_relu(cudaStream_t s, float *x, size_t n, float slope);

/* Max pooling without padding over `maps` maps of h x w x c (pd_cpu_maxpool). */
cudaError_t pd_cuda_maxpool(cudaStream_t s, const float *in, float *out, size_t maps, int h, int w,
                            int c, int oh, int ow, int size, int stride);

/* images x [1 view, n x n x c] -> images x [views, n x n x c], view v = T_v(x)
 * (pd_cpu_cyclic_slice). views is 4 or 8. */
cudaError_t pd_cuda_cyclic_slice(cudaStream_t s, const float *in, float *out, int images, int views,
                                 int n, int c);

/* images x [views, h x w x c] -> images x [views, h x w x views*c] (pd_cpu_cyclic_roll):
 * out view i, block s = T_s^-1 of view pd_d4_mul(s, i); no spatial transform when h = w = 1. */
cudaError_t pd_cuda_cyclic_roll(cudaStream_t s, const float *in, float *out, int images, int views,
                                int h, int w, int c, pd_cuda_d4 group);

/* images x [views, len] -> images x [len], mean / RMS / max over views (pd_cpu_cyclic_pool). */
cudaError_t pd_cuda_cyclic_pool(cudaStream_t s, const float *in, float *out, int images, int views,
                                size_t len, int mode);

/* rows x c -> rows x c/pieces, max over consecutive groups (pd_cpu_maxout). */
cudaError_t pd_cuda_maxout(cudaStream_t s, const float *in, float *out, size_t rows, int c,
                           int pieces);

/* maps x [p pixels x c] -> maps x c, mean over pixels (pd_cpu_global_avg_pool). */
cudaError_t pd_cuda_global_avg_pool(cudaStream_t s, const float *in, float *out, size_t maps, int p,
                                    int c);

/* Row-wise softmax in place, rows x cols (pd_cpu_softmax: max, expf, sum in double). */
cudaError_t pd_cuda_softmax(cudaStream_t s, float *x, size_t rows, int cols);

/* The per-branch preprocessing warp of pd_warp_branch for `count` crops:
 * crop k is w[k] x h[k] gray8 pixels at pixels + offset[k] (offset[k] < 0:
 * no crop, every pixel is the background), its 2x3 affine map (pd_affine,
 * double) at affine + 6 k, its output slot out + k * size * size. The
 * arithmetic is pd_warp.c's, in double, with every product and sum rounded
 * separately (no FMA contraction), so the result is bit-identical. */
typedef struct pd_cuda_warp_params {
  int size;   /* output patch is size x size */
  int invert; /* 255 - v */
  double background, mean, std;
} pd_cuda_warp_params;
cudaError_t pd_cuda_warp(cudaStream_t s, const unsigned char *pixels, const long long *offset,
                         const int *w, const int *h, const double *affine, int count,
                         pd_cuda_warp_params params, float *out, size_t out_stride);

/* Whether this build has a kernel image the current device can run:
 * cudaFuncGetAttributes on one of the kernels above (cudaErrorNoKernelImageForDevice
 * or cudaErrorInvalidDeviceFunction if not). */
cudaError_t pd_cuda_kernels_probe(void);

#ifdef __cplusplus
}
#endif

#endif
