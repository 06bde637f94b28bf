/* pd_cuda_elem: the per-element arithmetic of our CUDA kernels, as
 * __host__ __device__ functions of the output element's index. The kernels
 * (pd_cuda_kernels.cu) are grid-stride loops over these; the host test
 * tests/test_cuda_kernels.cu calls the same functions on the CPU and checks
 * them bit for bit against the pd_cpu_* ops and pd_warp_branch, so the index
 * arithmetic and the group tables are checked on machines without a GPU.
 * Owns nothing. Each function mirrors its pd_cpu_* counterpart operation for
 * operation; products and sums that the CPU rounds separately use the rn_*
 * helpers, which forbid FMA contraction on the device. */
#ifndef PD_CUDA_ELEM_CUH
#define PD_CUDA_ELEM_CUH

#include <float.h>
#include <math.h>
#include <stddef.h>

#include "pd_cuda_kernels.h"

#if defined(__CUDACC__)
#define PD_HD __host__ __device__ __forceinline__
#else
#define PD_HD static inline
#endif

/* Separately rounded float / double operations (no FMA on the device; the
 * host build has no FMA either: it is compiled for baseline x86-64). */
PD_HD float rn_fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
PD_HD float rn_fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
PD_HD double rn_dmul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
PD_HD double rn_dadd(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
PD_HD double rn_dsub(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
PD_HD double rn_ddiv(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

/* pd_d4_src: where Y = T_v(X) reads from, for an n x n map. */
PD_HD void elem_d4_src(int v, int n, int y, int x, int *sy, int *sx) {
  for (int k = 0; k < (v & 3); k++) {
    int t = y;
    y = x;
    x = n - 1 - t;
  }
  if (v >> 2) x = n - 1 - x;
  *sy = y;
  *sx = x;
}

/* Indices: every tensor a plan touches has fewer than 2^31 elements
 * (pd_cuda_plan.c's check_sizes, and the launchers refuse more), so the
 * index math below is unsigned 32-bit: 64-bit division and remainder are
 * emulated on the device at some 40-100 instructions each. */
typedef unsigned int pd_idx;

/* pd_cpu_bias_act on element i of rows x cols. */
PD_HD float elem_bias_act(float x, pd_idx i, int cols, const float *bias, int leaky, float slope) {
  float v = x + bias[i % (pd_idx)cols];
  if (leaky) v = v > 0.0f ? v : rn_fmul(v, slope);
  return v;
}

PD_HD float elem_leaky(float v, float slope) {
  return v > 0.0f ? v : rn_fmul(v, slope);
}

/* pd_cpu_maxpool: out[m][oy][ox][c]. */
PD_HD float elem_maxpool(const float *in, pd_idx i, int h, int w, int c, int oh, int ow, int size,
                         int stride) {
  pd_idx t = i;
  const pd_idx ch = t % (pd_idx)c;
  t /= (pd_idx)c;
  const pd_idx ox = t % (pd_idx)ow;
  t /= (pd_idx)ow;
  const pd_idx oy = t % (pd_idx)oh;
  const pd_idx m = t / (pd_idx)oh;
  const float *src = in + m * (pd_idx)h * (pd_idx)w * (pd_idx)c + ch;
  const pd_idx y0 = oy * (pd_idx)stride, x0 = ox * (pd_idx)stride;
  float o = src[(y0 * (pd_idx)w + x0) * (pd_idx)c];
  for (pd_idx ky = 0; ky < (pd_idx)size; ky++)
    for (pd_idx kx = 0; kx < (pd_idx)size; kx++) {
      float p = src[((y0 + ky) * (pd_idx)w + (x0 + kx)) * (pd_idx)c];
      o = p > o ? p : o;
    }
  return o;
}

/* pd_cpu_cyclic_slice: out[img][v][y][x][c] = in[img][src(v, y, x)][c]. */
PD_HD float elem_cyclic_slice(const float *in, pd_idx i, int views, int n, int c) {
  pd_idx t = i;
  const pd_idx ch = t % (pd_idx)c;
  t /= (pd_idx)c;
  const int x = (int)(t % (pd_idx)n);
  t /= (pd_idx)n;
  const int y = (int)(t % (pd_idx)n);
  t /= (pd_idx)n;
  const int v = (int)(t % (pd_idx)views);
  const pd_idx img = t / (pd_idx)views;
  int sy, sx;
  elem_d4_src(v, n, y, x, &sy, &sx);
  return in[img * (pd_idx)n * (pd_idx)n * (pd_idx)c +
            ((pd_idx)sy * (pd_idx)n + (pd_idx)sx) * (pd_idx)c + ch];
}

/* pd_cpu_cyclic_roll: out[img][view][y][x][s][c] = T_s^-1 of in[img][mul(s, view)]. */
PD_HD float elem_cyclic_roll(const float *in, pd_idx i, int views, int h, int w, int c,
                             const pd_cuda_d4 *g) {
  pd_idx t = i;
  const pd_idx ch = t % (pd_idx)c;
  t /= (pd_idx)c;
  const int s = (int)(t % (pd_idx)views);
  t /= (pd_idx)views;
  const int x = (int)(t % (pd_idx)w);
  t /= (pd_idx)w;
  const int y = (int)(t % (pd_idx)h);
  t /= (pd_idx)h;
  const int view = (int)(t % (pd_idx)views);
  const pd_idx img = t / (pd_idx)views;
  const pd_idx j = (pd_idx)g->mul[s][view];
  int sy = y, sx = x;
  if (h > 1 || w > 1) elem_d4_src(g->inv[s], h, y, x, &sy, &sx);
  return in[(((img * (pd_idx)views + j) * (pd_idx)h + (pd_idx)sy) * (pd_idx)w + (pd_idx)sx) *
                (pd_idx)c +
            ch];
}

/* pd_cpu_cyclic_pool: out[img][k] over in[img][v][k]. */
PD_HD float elem_cyclic_pool(const float *in, pd_idx i, int views, pd_idx len, int mode) {
  const pd_idx img = i / len, k = i % len;
  const float *src = in + img * (pd_idx)views * len + k;
  float acc = mode == PD_CUDA_CPOOL_MAX ? -FLT_MAX : 0.0f;
  for (int v = 0; v < views; v++) {
    float x = src[(pd_idx)v * len];
    if (mode == PD_CUDA_CPOOL_MAX)
      acc = x > acc ? x : acc;
    else if (mode == PD_CUDA_CPOOL_RMS)
      acc = rn_fadd(acc, rn_fmul(x, x));
    else
      acc += x;
  }
  if (mode == PD_CUDA_CPOOL_MEAN) acc /= (float)views;
  if (mode == PD_CUDA_CPOOL_RMS) acc = sqrtf(acc / (float)views);
  return acc;
}

/* pd_cpu_maxout: out[r][j] = max in[r][j * pieces .. + pieces - 1]. */
PD_HD float elem_maxout(const float *in, pd_idx i, int c, int pieces) {
  const pd_idx oc = (pd_idx)(c / pieces);
  const pd_idx r = i / oc;
  const pd_idx j = i % oc;
  const float *src = in + r * (pd_idx)c + j * (pd_idx)pieces;
  float m = src[0];
  for (int q = 1; q < pieces; q++)
    m = src[q] > m ? src[q] : m;
  return m;
}

/* pd_cpu_global_avg_pool: out[m][c] = sum over pixels / p. */
PD_HD float elem_global_avg_pool(const float *in, pd_idx i, int p, int c) {
  const pd_idx m = i / (pd_idx)c;
  const pd_idx ch = i % (pd_idx)c;
  const float *src = in + m * (pd_idx)p * (pd_idx)c + ch;
  float acc = 0.0f;
  for (int k = 0; k < p; k++)
    acc += src[(pd_idx)k * (pd_idx)c];
  return acc / (float)p;
}

/* ---- the preprocessing warp (pd_warp.c) ---- */

PD_HD int elem_floor_int(double q) {
  int t = (int)q;
  return (double)t > q ? t - 1 : t;
}

PD_HD double elem_pixel_or_bg(const unsigned char *px, int w, int h, int x, int y, double bg) {
  if (x < 0 || y < 0 || x >= w || y >= h) return bg;
  return (double)px[(size_t)y * (size_t)w + (size_t)x];
}

PD_HD double elem_warp_sample(const unsigned char *px, int w, int h, double bg, double qx,
                              double qy) {
  if (!(qx >= -1.0 && qx < w && qy >= -1.0 && qy < h)) return bg;
  const int x0 = elem_floor_int(qx), y0 = elem_floor_int(qy);
  const double ax = rn_dsub(qx, (double)x0), ay = rn_dsub(qy, (double)y0);
  const double p00 = elem_pixel_or_bg(px, w, h, x0, y0, bg);
  const double p10 = elem_pixel_or_bg(px, w, h, x0 + 1, y0, bg);
  const double p01 = elem_pixel_or_bg(px, w, h, x0, y0 + 1, bg);
  const double p11 = elem_pixel_or_bg(px, w, h, x0 + 1, y0 + 1, bg);
  const double top = rn_dadd(p00, rn_dmul(ax, rn_dsub(p10, p00)));
  const double bottom = rn_dadd(p01, rn_dmul(ax, rn_dsub(p11, p01)));
  return rn_dadd(top, rn_dmul(ay, rn_dsub(bottom, top)));
}

/* Pixel (col, j) of one crop: px (NULL or w, h <= 0: all background), a = its affine map. */
PD_HD float elem_warp(const unsigned char *px, int w, int h, const double *a, int col, int j,
                      const pd_cuda_warp_params *prm) {
  if (!px || w <= 0 || h <= 0) w = h = 0;
  /* q = a0 * i + (a1 * j) + a2, as pd_warp_branch evaluates it */
  const double bx = rn_dmul(a[1], (double)j), by = rn_dmul(a[4], (double)j);
  const double qx = rn_dadd(rn_dadd(rn_dmul(a[0], (double)col), bx), a[2]);
  const double qy = rn_dadd(rn_dadd(rn_dmul(a[3], (double)col), by), a[5]);
  double v = elem_warp_sample(px, w, h, prm->background, qx, qy);
  if (prm->invert) v = rn_dsub(255.0, v);
  return (float)rn_ddiv(rn_dsub(rn_ddiv(v, 255.0), prm->mean), prm->std);
}

#endif
