/* The inner kernels of pd_conv3x3, written once over 8-float vectors (GCC
 * vector extensions, understood by gcc and clang) and built three times:
 * with the default flags (PD_CONV3X3_ISA=generic), with AVX2 + FMA
 * (PD_CONV3X3_ISA=avx2) and with AVX-512VL + FMA (PD_CONV3X3_ISA=avx512).
 * In the last two the vectors become ymm registers; the GEMM's register
 * blocks are sized to the register file: with AVX-512VL's 32 ymm registers
 * an 8 x 32 or 16 x 16 block of accumulators, with AVX2's 16 a 6 x 16 block
 * (12 accumulators, 2 weight vectors, 1 broadcast). On Zen 4, 256-bit FMAs
 * run at the same FLOP rate as 512-bit ones. */
#include <string.h>

#include "pd_conv3x3.h"

#ifndef PD_CONV3X3_ISA
#error "build with -DPD_CONV3X3_ISA=<suffix>"
#endif
#define WINO_CAT2(a, b) a##_##b
#define WINO_CAT(a, b) WINO_CAT2(a, b)
#define WINO_FN(name) WINO_CAT(name, PD_CONV3X3_ISA)
#define WINO_STR2(x) #x
#define WINO_STR(x) WINO_STR2(x)

typedef float v8 __attribute__((vector_size(32)));
typedef int vi8 __attribute__((vector_size(32)));

/* Vector loads and stores through memcpy (no alignment assumed); macros, as
 * a function returning a vector by value changes the ABI where AVX is off. */
#define LD8(p)                                                                                     \
  ({                                                                                               \
    v8 v_;                                                                                         \
    memcpy(&v_, (p), sizeof v_);                                                                   \
    v_;                                                                                            \
  })
#define ST8(p, v)                                                                                  \
  do {                                                                                             \
    v8 s_ = (v);                                                                                   \
    memcpy((p), &s_, sizeof s_);                                                                   \
  } while (0)
/* n < 8 lanes: the rest read as zero, written nowhere. */
#define LDN(p, n)                                                                                  \
  ({                                                                                               \
    v8 v_ = {0};                                                                                   \
    memcpy(&v_, (p), (size_t)(n) * sizeof(float));                                                 \
    v_;                                                                                            \
  })
#define STN(p, v, n)                                                                               \
  do {                                                                                             \
    v8 s_ = (v);                                                                                   \
    memcpy((p), &s_, (size_t)(n) * sizeof(float));                                                 \
  } while (0)
/* n lanes (1..8), with whole-vector moves where n == 8 (the common case). */
#define LD_LANES(p, n) ((n) == 8 ? LD8(p) : LDN((p), (n)))
#define ST_LANES(p, v, n)                                                                          \
  do {                                                                                             \
    if ((n) == 8)                                                                                  \
      ST8((p), (v));                                                                               \
    else                                                                                           \
      STN((p), (v), (n));                                                                          \
  } while (0)

#define PD_KERN_INLINE static inline __attribute__((always_inline))

/* B^T of F(4, 3) applied to x0..x5 (one column of the 6 x 6 tile). */
PD_KERN_INLINE void wino_bt(const v8 x[6], v8 y[6]) {
  v8 a = x[4] - x[2], b = x[3] - x[1];
  y[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];
  y[1] = x[3] + x[4] - 4.0f * (x[1] + x[2]);
  y[2] = 4.0f * (x[1] - x[2]) + x[4] - x[3];
  y[3] = a + 2.0f * b;
  y[4] = a - 2.0f * b;
  y[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];
}

/* A^T of F(4, 3): 6 values to 4. */
PD_KERN_INLINE void wino_at(const v8 m[6], v8 o[4]) {
  v8 s12 = m[1] + m[2], d12 = m[1] - m[2];
  v8 s34 = m[3] + m[4], d34 = m[3] - m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = d12 + 2.0f * d34;
  o[2] = s12 + 4.0f * s34;
  o[3] = d12 + 8.0f * d34 + m[5];
}

static void WINO_FN(wino_input)(const pd_conv3x3_geom *g, const float *in, int t0, int nt,
                                int ntpad, float *v, const float *zeros) {
  const int C = g->c, H = g->h, W = g->w;
  const size_t plane = pd_conv3x3_plane(ntpad, C); /* floats per Winograd point */
  const int per_view = g->tiles_y * g->tiles_x;
  for (int r = 0; r < nt; r++) {
    int t = t0 + r;
    int view = t / per_view, ty = (t % per_view) / g->tiles_x, tx = t % g->tiles_x;
    const float *map = in + (size_t)view * H * W * C;
    const float *p[36];
    for (int i = 0; i < 6; i++) {
      int y = ty * 4 - 1 + i;
      for (int j = 0; j < 6; j++) {
        int x = tx * 4 - 1 + j;
        p[i * 6 + j] = (y >= 0 && y < H && x >= 0 && x < W) ? map + ((size_t)y * W + x) * C : zeros;
      }
    }
    float *dst = v + (size_t)r * C;
    for (int c = 0; c < C; c += 8) {
      const int n = C - c < 8 ? C - c : 8;
      v8 d[6][6], t6[6][6];
      for (int i = 0; i < 36; i++)
        d[i / 6][i % 6] = LD_LANES(p[i] + c, n);
      for (int j = 0; j < 6; j++) {
        v8 x[6], y[6];
        for (int i = 0; i < 6; i++)
          x[i] = d[i][j];
        wino_bt(x, y);
        for (int i = 0; i < 6; i++)
          t6[i][j] = y[i];
      }
      for (int i = 0; i < 6; i++) {
        v8 y[6];
        wino_bt(t6[i], y);
        for (int j = 0; j < 6; j++) {
          float *o = dst + (size_t)(i * 6 + j) * plane + c;
          ST_LANES(o, y[j], n);
        }
      }
    }
  }
  /* Padding rows: zeros, so the GEMM never meets stale or uninitialised values. */
  for (int xi = 0; xi < 36; xi++)
    memset(v + (size_t)xi * plane + (size_t)nt * C, 0, (size_t)(ntpad - nt) * C * sizeof(float));
}

/* M (rows x K) = V (rows x C) * U (C x K) for one Winograd point, in
 * register blocks of RB rows x NV vectors of 8 columns, over the rows
 * [rb, re); (re - rb) % RB == 0. */
#define WINO_GEMM_BLOCK(NAME, RB, NV)                                                              \
  static void NAME(int rb, int re, int C, int K, int k0, const float *v, const float *u,           \
                   float *m) {                                                                     \
    for (int r0 = rb; r0 < re; r0 += (RB)) {                                                       \
      v8 acc[(RB)][(NV)];                                                                          \
      for (int r = 0; r < (RB); r++)                                                               \
        for (int q = 0; q < (NV); q++)                                                             \
          acc[r][q] = (v8){0};                                                                     \
      const float *vr = v + (size_t)r0 * C;                                                        \
      for (int c = 0; c < C; c++) {                                                                \
        v8 w[(NV)];                                                                                \
        for (int q = 0; q < (NV); q++)                                                             \
          w[q] = LD8(u + (size_t)c * K + (size_t)(k0 + 8 * q));                                    \
        for (int r = 0; r < (RB); r++) {                                                           \
          v8 b = (v8){0} + vr[(size_t)r * C + c];                                                  \
          for (int q = 0; q < (NV); q++)                                                           \
            acc[r][q] += b * w[q];                                                                 \
        }                                                                                          \
      }                                                                                            \
      for (int r = 0; r < (RB); r++)                                                               \
        for (int q = 0; q < (NV); q++)                                                             \
          ST8(m + (size_t)(r0 + r) * K + (size_t)(k0 + 8 * q), acc[r][q]);                         \
    }                                                                                              \
  }

#if defined(__AVX512F__) || !defined(__AVX2__)
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r8_v4), 8, 4)
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r16_v2), 16, 2)
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r16_v1), 16, 1)
#else
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r6_v2), 6, 2)
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r2_v2), 2, 2)
WINO_GEMM_BLOCK(WINO_FN(wino_gemm_r8_v1), 8, 1)
#endif

/* Columns that are not a multiple of 8: plain loops. */
static void WINO_FN(wino_gemm_tail)(int rows, int C, int K, int k0, const float *v, const float *u,
                                    float *m) {
  for (int r = 0; r < rows; r++)
    for (int k = k0; k < K; k++) {
      float s = 0.0f;
      for (int c = 0; c < C; c++)
        s += v[(size_t)r * C + c] * u[(size_t)c * K + k];
      m[(size_t)r * K + k] = s;
    }
}

static void WINO_FN(wino_gemm)(const pd_conv3x3_geom *g, int ntpad, const float *v, const float *u,
                               float *m) {
  const int C = g->c, K = g->k;
  for (int xi = 0; xi < 36; xi++) {
    const float *vx = v + (size_t)xi * pd_conv3x3_plane(ntpad, C);
    const float *ux = u + (size_t)xi * C * K;
    float *mx = m + (size_t)xi * pd_conv3x3_plane(ntpad, K);
    int k0 = 0;
#if defined(__AVX512F__) || !defined(__AVX2__)
    for (; k0 + 32 <= K; k0 += 32)
      WINO_FN(wino_gemm_r8_v4)(0, ntpad, C, K, k0, vx, ux, mx);
    for (; k0 + 16 <= K; k0 += 16)
      WINO_FN(wino_gemm_r16_v2)(0, ntpad, C, K, k0, vx, ux, mx);
    for (; k0 + 8 <= K; k0 += 8)
      WINO_FN(wino_gemm_r16_v1)(0, ntpad, C, K, k0, vx, ux, mx);
#else
    /* ntpad is a multiple of 16, so the rows past the last 6-row block are
     * 0, 2 or 4: pairs. */
    const int r6 = ntpad - ntpad % 6;
    for (; k0 + 16 <= K; k0 += 16) {
      WINO_FN(wino_gemm_r6_v2)(0, r6, C, K, k0, vx, ux, mx);
      WINO_FN(wino_gemm_r2_v2)(r6, ntpad, C, K, k0, vx, ux, mx);
    }
    for (; k0 + 8 <= K; k0 += 8)
      WINO_FN(wino_gemm_r8_v1)(0, ntpad, C, K, k0, vx, ux, mx);
#endif
    if (k0 < K) WINO_FN(wino_gemm_tail)(ntpad, C, K, k0, vx, ux, mx);
  }
}

static void WINO_FN(wino_output)(const pd_conv3x3_geom *g, const float *m, int t0, int nt,
                                 int ntpad, const float *bias, pd_activation act, float slope,
                                 float *out) {
  const int K = g->k, H = g->h, W = g->w;
  const size_t plane = pd_conv3x3_plane(ntpad, K);
  const int per_view = g->tiles_y * g->tiles_x;
  const int leaky = act == PD_ACT_LEAKY_RELU;
  const v8 vslope = (v8){0} + slope, zero = {0};
  for (int r = 0; r < nt; r++) {
    int t = t0 + r;
    int view = t / per_view, ty = (t % per_view) / g->tiles_x, tx = t % g->tiles_x;
    float *map = out + (size_t)view * H * W * K;
    const int oy0 = ty * 4, ox0 = tx * 4;
    const int ny = H - oy0 < 4 ? H - oy0 : 4, nx = W - ox0 < 4 ? W - ox0 : 4;
    const float *src = m + (size_t)r * K;
    for (int k = 0; k < K; k += 8) {
      const int n = K - k < 8 ? K - k : 8;
      v8 mm[6][6], t4[4][6];
      for (int i = 0; i < 36; i++) {
        const float *q = src + (size_t)i * plane + k;
        mm[i / 6][i % 6] = LD_LANES(q, n);
      }
      for (int j = 0; j < 6; j++) {
        v8 x[6], y[4];
        for (int i = 0; i < 6; i++)
          x[i] = mm[i][j];
        wino_at(x, y);
        for (int i = 0; i < 4; i++)
          t4[i][j] = y[i];
      }
      v8 b = LD_LANES(bias + k, n);
      for (int i = 0; i < ny; i++) {
        v8 y[4];
        wino_at(t4[i], y);
        for (int j = 0; j < nx; j++) {
          v8 o = y[j] + b;
          if (leaky) {
            vi8 pos = o > zero;
            o = (v8)((pos & (vi8)o) | (~pos & (vi8)(o * vslope)));
          }
          float *dst = map + ((size_t)(oy0 + i) * W + ox0 + j) * K + k;
          ST_LANES(dst, o, n);
        }
      }
    }
  }
}

/* Direct 3x3 convolution for few input channels (the first layers): each
 * output pixel is 9 * C broadcasts times K / 8 weight vectors, four pixels
 * at a time in the interior so a weight load serves four FMAs. */
#define DIRECT_ACT(o)                                                                              \
  do {                                                                                             \
    if (leaky) {                                                                                   \
      vi8 pos_ = (o) > zero;                                                                       \
      (o) = (v8)((pos_ & (vi8)(o)) | (~pos_ & (vi8)((o)*vslope)));                                 \
    }                                                                                              \
  } while (0)

static void WINO_FN(direct_pixel)(const pd_conv3x3_geom *g, const float *map, int y, int x,
                                  const float *d, int k, int n, const float *bias, int leaky,
                                  float slope, float *dst) {
  const int C = g->c, K = g->k;
  const v8 zero = {0}, vslope = (v8){0} + slope;
  v8 acc = LD_LANES(bias + k, n);
  for (int i = 0; i < 3; i++) {
    int iy = y + i - 1;
    if (iy < 0 || iy >= g->h) continue;
    for (int j = 0; j < 3; j++) {
      int ix = x + j - 1;
      if (ix < 0 || ix >= g->w) continue;
      const float *px = map + ((size_t)iy * g->w + ix) * C;
      const float *dw = d + (size_t)(i * 3 + j) * C * K + k;
      for (int c = 0; c < C; c++) {
        v8 w = LD_LANES(dw + (size_t)c * K, n);
        acc += ((v8){0} + px[c]) * w;
      }
    }
  }
  DIRECT_ACT(acc);
  ST_LANES(dst, acc, n);
}

static void WINO_FN(wino_direct)(const pd_conv3x3_geom *g, const float *in, const float *d,
                                 const float *bias, pd_activation act, float slope, float *out) {
  const int C = g->c, K = g->k, H = g->h, W = g->w;
  const int leaky = act == PD_ACT_LEAKY_RELU;
  const v8 vslope = (v8){0} + slope, zero = {0};
  for (int view = 0; view < g->views; view++) {
    const float *map = in + (size_t)view * H * W * C;
    float *omap = out + (size_t)view * H * W * K;
    for (int k = 0; k < K; k += 8) {
      const int n = K - k < 8 ? K - k : 8;
      const v8 b = LD_LANES(bias + k, n);
      for (int y = 0; y < H; y++) {
        float *orow = omap + (size_t)y * W * K + k;
        int x = 0;
        if (y > 0 && y < H - 1 && n == 8) {
          if (W > 0) WINO_FN(direct_pixel)(g, map, y, 0, d, k, n, bias, leaky, slope, orow);
          for (x = 1; x + 4 <= W - 1; x += 4) {
            v8 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int i = 0; i < 3; i++) {
              const float *row = map + ((size_t)(y + i - 1) * W + x - 1) * C;
              for (int t = 0; t < 3 * C; t++) {
                v8 w = LD8(d + ((size_t)i * 3 * C + t) * K + k);
                a0 += ((v8){0} + row[t]) * w;
                a1 += ((v8){0} + row[t + C]) * w;
                a2 += ((v8){0} + row[t + 2 * C]) * w;
                a3 += ((v8){0} + row[t + 3 * C]) * w;
              }
            }
            DIRECT_ACT(a0);
            DIRECT_ACT(a1);
            DIRECT_ACT(a2);
            DIRECT_ACT(a3);
            ST8(orow + (size_t)x * K, a0);
            ST8(orow + (size_t)(x + 1) * K, a1);
            ST8(orow + (size_t)(x + 2) * K, a2);
            ST8(orow + (size_t)(x + 3) * K, a3);
          }
        }
        for (; x < W; x++)
          WINO_FN(direct_pixel)(g, map, y, x, d, k, n, bias, leaky, slope, orow + (size_t)x * K);
      }
    }
  }
}

const pd_conv3x3_kernels WINO_FN(pd_conv3x3_kernels) = {
    .name = "winograd-f4x4-" WINO_STR(PD_CONV3X3_ISA),
    .input = WINO_FN(wino_input),
    .gemm = WINO_FN(wino_gemm),
    .output = WINO_FN(wino_output),
    .direct = WINO_FN(wino_direct),
};
