/* pd_cuda_half: FP16 storage for the CUDA backend's fp16 plans, and the
 * per-element arithmetic of the kernels that read or write half tensors
 * (pd_cuda_kernels_half.cu), as functions shared between host and device
 * like pd_cuda_elem.cuh. Plain C where no CUDA compiler is in use, so the
 * CPU test tests/test_cuda_fp16_host.c runs the very same element code with
 * the device's rounding emulated, on machines without CUDA.
 *
 * pd_half is the IEEE binary16 bit pattern (the layout of CUDA's __half,
 * CUDNN_DATA_HALF and CUDA_R_16F). pd_f2h rounds to nearest, ties to even,
 * with overflow to infinity and gradual underflow: on the device it is
 * __float2half_rn, on the host the bit arithmetic below, which gives the
 * same bits for every float (NaN payloads aside). pd_h2f is exact.
 *
 * Arithmetic is float: every element function reads halves, converts them
 * (exactly) to float, computes as the FP32 kernel does (separately rounded
 * products and sums where the CPU rounds separately), and returns a float
 * that the kernel stores either as a half (pd_f2h, one rounding) or as a
 * float. Functions that only move or compare values (slice, roll, max
 * pooling, maxout) return the half itself: exact. Owns nothing. */
#ifndef PD_CUDA_HALF_H
#define PD_CUDA_HALF_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define PD_HH __host__ __device__ __forceinline__
#else
#define PD_HH static inline
#endif

typedef uint16_t pd_half;
typedef unsigned int pd_hidx; /* 32-bit indices: every tensor has < 2^31 elements */

/* ---- conversions ---- */

/* float -> binary16, round to nearest even, on the host. */
PD_HH pd_half pd_f2h_host(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (pd_half)(sign | 0x7e00u | ((ax >> 13) & 0x1ffu)); /* NaN, quiet */
  if (ax >= 0x47800000u) return (pd_half)(sign | 0x7c00u); /* >= 65536 (and inf): inf */
  const uint32_t e = ax >> 23;                             /* biased float exponent */
  if (e >= 113) {                                          /* >= 2^-14: a normal half */
    uint32_t h = ((e - 112) << 10) | ((ax >> 13) & 0x3ffu);
    const uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry may give 0x7c00: inf */
    return (pd_half)(sign | h);
  }
  /* a subnormal half (units of 2^-24) or zero: value = M * 2^(e - 150) */
  if (e < 102) return (pd_half)sign; /* below 2^-25 (float subnormals too): 0 */
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t s = 126 - e; /* 14 .. 24 */
  uint32_t q = m >> s;
  const uint32_t rest = m & ((1u << s) - 1u), tie = 1u << (s - 1);
  if (rest > tie || (rest == tie && (q & 1u))) q++; /* may reach 0x400: the least normal */
  return (pd_half)(sign | q);
}

/* binary16 -> float, exact, on the host. */
PD_HH float pd_h2f_host(pd_half h) {
  const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  const uint32_t e = ((uint32_t)h >> 10) & 0x1fu, m = (uint32_t)h & 0x3ffu;
  uint32_t x;
  if (e == 0) {
    const float v = (float)m * 5.9604644775390625e-08f; /* m * 2^-24, exact */
    return sign ? -v : v;
  }
  if (e == 31)
    x = sign | 0x7f800000u | (m << 13);
  else
    x = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

PD_HH pd_half pd_f2h(float f) {
#ifdef __CUDA_ARCH__
  return __half_as_ushort(__float2half_rn(f));
#else
  return pd_f2h_host(f);
#endif
}

PD_HH float pd_h2f(pd_half h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return pd_h2f_host(h);
#endif
}

/* Separately rounded float product and sum (no FMA contraction on the device). */
PD_HH float pd_h_fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
PD_HH float pd_h_fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/* ---- element functions on half tensors (layouts as pd_cuda_elem.cuh) ---- */

/* Element i of rows x cols: act(x + bias[c]) in float (pd_cpu_bias_act's order). */
PD_HH float elem_h_bias_act(float x, pd_hidx i, int cols, const float *bias, int leaky,
                            float slope) {
  float v = pd_h_fadd(x, bias[i % (pd_hidx)cols]);
  if (leaky) v = v > 0.0f ? v : pd_h_fmul(v, slope);
  return v;
}

/* Element i of rows x cols: the bias of its column as half (a convolution's
 * output is first filled with it; cuDNN then adds its FP32 sums to it,
 * beta = 1, and rounds once). */
PD_HH pd_half elem_h_bias_fill(pd_hidx i, int cols, const float *bias) {
  return pd_f2h(bias[i % (pd_hidx)cols]);
}

PD_HH float elem_h_leaky(pd_half h, float slope) {
  const float v = pd_h2f(h);
  return v > 0.0f ? v : pd_h_fmul(v, slope);
}

/* Whether half a > half b (neither NaN), without converting. */
PD_HH int pd_h_gt(pd_half a, pd_half b) {
  return pd_h2f(a) > pd_h2f(b);
}

PD_HH pd_half elem_h_maxpool(const pd_half *in, pd_hidx i, int h, int w, int c, int oh, int ow,
                             int size, int stride) {
  pd_hidx t = i;
  const pd_hidx ch = t % (pd_hidx)c;
  t /= (pd_hidx)c;
  const pd_hidx ox = t % (pd_hidx)ow;
  t /= (pd_hidx)ow;
  const pd_hidx oy = t % (pd_hidx)oh;
  const pd_hidx m = t / (pd_hidx)oh;
  const pd_half *src = in + m * (pd_hidx)h * (pd_hidx)w * (pd_hidx)c + ch;
  const pd_hidx y0 = oy * (pd_hidx)stride, x0 = ox * (pd_hidx)stride;
  pd_half o = src[(y0 * (pd_hidx)w + x0) * (pd_hidx)c];
  for (pd_hidx ky = 0; ky < (pd_hidx)size; ky++)
    for (pd_hidx kx = 0; kx < (pd_hidx)size; kx++) {
      const pd_half p = src[((y0 + ky) * (pd_hidx)w + (x0 + kx)) * (pd_hidx)c];
      o = pd_h_gt(p, o) ? p : o;
    }
  return o;
}

/* pd_d4_src for an n x n map (as elem_d4_src). */
PD_HH void elem_h_d4_src(int v, int n, int y, int x, int *sy, int *sx) {
  for (int k = 0; k < (v & 3); k++) {
    const int t = y;
    y = x;
    x = n - 1 - t;
  }
  if (v >> 2) x = n - 1 - x;
  *sy = y;
  *sx = x;
}

PD_HH pd_half elem_h_cyclic_slice(const pd_half *in, pd_hidx i, int views, int n, int c) {
  pd_hidx t = i;
  const pd_hidx ch = t % (pd_hidx)c;
  t /= (pd_hidx)c;
  const int x = (int)(t % (pd_hidx)n);
  t /= (pd_hidx)n;
  const int y = (int)(t % (pd_hidx)n);
  t /= (pd_hidx)n;
  const int v = (int)(t % (pd_hidx)views);
  const pd_hidx img = t / (pd_hidx)views;
  int sy, sx;
  elem_h_d4_src(v, n, y, x, &sy, &sx);
  return in[img * (pd_hidx)n * (pd_hidx)n * (pd_hidx)c +
            ((pd_hidx)sy * (pd_hidx)n + (pd_hidx)sx) * (pd_hidx)c + ch];
}

/* mul[a][b] = pd_d4_mul(a, b), inv[a] = pd_d4_inv(a) (pd_cuda_d4's tables). */
PD_HH pd_half elem_h_cyclic_roll(const pd_half *in, pd_hidx i, int views, int h, int w, int c,
                                 const int (*mul)[8], const int *inv) {
  pd_hidx t = i;
  const pd_hidx ch = t % (pd_hidx)c;
  t /= (pd_hidx)c;
  const int s = (int)(t % (pd_hidx)views);
  t /= (pd_hidx)views;
  const int x = (int)(t % (pd_hidx)w);
  t /= (pd_hidx)w;
  const int y = (int)(t % (pd_hidx)h);
  t /= (pd_hidx)h;
  const int view = (int)(t % (pd_hidx)views);
  const pd_hidx img = t / (pd_hidx)views;
  const pd_hidx j = (pd_hidx)mul[s][view];
  int sy = y, sx = x;
  if (h > 1 || w > 1) elem_h_d4_src(inv[s], h, y, x, &sy, &sx);
  return in[(((img * (pd_hidx)views + j) * (pd_hidx)h + (pd_hidx)sy) * (pd_hidx)w + (pd_hidx)sx) *
                (pd_hidx)c +
            ch];
}

/* Cyclic pooling in float over half views: mode 0 mean, 1 RMS, 2 max (pd_cpu_cyclic_pool). */
PD_HH float elem_h_cyclic_pool(const pd_half *in, pd_hidx i, int views, pd_hidx len, int mode) {
  const pd_hidx img = i / len, k = i % len;
  const pd_half *src = in + img * (pd_hidx)views * len + k;
  float acc = mode == 2 ? -FLT_MAX : 0.0f;
  for (int v = 0; v < views; v++) {
    const float x = pd_h2f(src[(pd_hidx)v * len]);
    if (mode == 2)
      acc = x > acc ? x : acc;
    else if (mode == 1)
      acc = pd_h_fadd(acc, pd_h_fmul(x, x));
    else
      acc = pd_h_fadd(acc, x);
  }
  if (mode == 0) acc /= (float)views;
  if (mode == 1) acc = sqrtf(acc / (float)views);
  return acc;
}

PD_HH pd_half elem_h_maxout(const pd_half *in, pd_hidx i, int c, int pieces) {
  const pd_hidx oc = (pd_hidx)(c / pieces);
  const pd_hidx r = i / oc, j = i % oc;
  const pd_half *src = in + r * (pd_hidx)c + j * (pd_hidx)pieces;
  pd_half m = src[0];
  for (int q = 1; q < pieces; q++)
    m = pd_h_gt(src[q], m) ? src[q] : m;
  return m;
}

/* Mean over p pixels, summed in float (pd_cpu_global_avg_pool's order). */
PD_HH float elem_h_global_avg_pool(const pd_half *in, pd_hidx i, int p, int c) {
  const pd_hidx m = i / (pd_hidx)c, ch = i % (pd_hidx)c;
  const pd_half *src = in + m * (pd_hidx)p * (pd_hidx)c + ch;
  float acc = 0.0f;
  for (int k = 0; k < p; k++)
    acc = pd_h_fadd(acc, pd_h2f(src[(pd_hidx)k * (pd_hidx)c]));
  return acc / (float)p;
}

#endif
