/* pd_cuda_kernels_half: the kernels of an fp16 plan (pd_cuda_run_fp16.c)
 * that read or write half tensors, behind C-callable launchers like
 * pd_cuda_kernels.h: conversions, bias + activation, and the pooling and
 * cyclic layers on half maps. Each is a grid-stride loop over an element
 * function of pd_cuda_half.h (float arithmetic, one rounding to half where
 * the result is stored as half), which tests/test_cuda_fp16_host.c runs on
 * the host. Every launcher enqueues one kernel on the caller's stream over
 * caller-owned buffers and returns the launch status; more than 2^31
 * elements is refused (cudaErrorInvalidValue). Owns nothing. */
#ifndef PD_CUDA_KERNELS_HALF_H
#define PD_CUDA_KERNELS_HALF_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "pd_cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t pd_cuda_half_t; /* binary16 bits (pd_cuda_half.h's pd_half) */

/* out[i] = half(in[i]) (round to nearest even), n elements. */
cudaError_t pd_cuda_h_from_f(cudaStream_t s, const float *in, pd_cuda_half_t *out, size_t n);
/* out[i] = float(in[i]) (exact), n elements. */
cudaError_t pd_cuda_h_to_f(cudaStream_t s, const pd_cuda_half_t *in, float *out, size_t n);

/* x[r][c] = half(act(float(x[r][c]) + bias[c])), in place, float bias. */
cudaError_t pd_cuda_h_bias_act(cudaStream_t s, pd_cuda_half_t *x, size_t rows, int cols,
                               const float *bias, int leaky, float slope);

/* y[r][c] = half(bias[c]): a convolution's output before cuDNN adds its sums (beta 1). */
cudaError_t pd_cuda_h_fill_bias(cudaStream_t s, pd_cuda_half_t *y, size_t rows, int cols,
                                const float *bias);

/* x = half(x > 0 ? x : x * slope), in place, n elements. */
cudaError_t pd_cuda_h_leaky_relu(cudaStream_t s, pd_cuda_half_t *x, size_t n, float slope);

/* As pd_cuda_maxpool, pd_cuda_cyclic_slice, pd_cuda_cyclic_roll and
 * pd_cuda_maxout, on half maps (exact: values are only moved or compared). */
cudaError_t pd_cuda_h_maxpool(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                              size_t maps, int h, int w, int c, int oh, int ow, int size,
                              int stride);
cudaError_t pd_cuda_h_cyclic_slice(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                                   int images, int views, int n, int c);
cudaError_t pd_cuda_h_cyclic_roll(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                                  int images, int views, int h, int w, int c, pd_cuda_d4 group);
cudaError_t pd_cuda_h_maxout(cudaStream_t s, const pd_cuda_half_t *in, pd_cuda_half_t *out,
                             size_t rows, int c, int pieces);

/* As pd_cuda_cyclic_pool and pd_cuda_global_avg_pool on half input, in
 * float; out is half (out_half 1) or float (0). */
cudaError_t pd_cuda_h_cyclic_pool(cudaStream_t s, const pd_cuda_half_t *in, void *out, int out_half,
                                  int images, int views, size_t len, int mode);
cudaError_t pd_cuda_h_global_avg_pool(cudaStream_t s, const pd_cuda_half_t *in, void *out,
                                      int out_half, size_t maps, int p, int c);

#ifdef __cplusplus
}
#endif

#endif
