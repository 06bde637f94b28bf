/* pd_conv3x3: 3x3 stride-1 "same" convolutions, the bulk of the seed
 * network's arithmetic, by one of two methods chosen per layer:
 *  - Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2015): 36
 *    multiplies per 4x4 output tile and channel pair instead of 144, for
 *    layers with at least PD_CONV3X3_DIRECT_MAX_C + 1 input channels;
 *  - a direct register-blocked kernel for the first layers (1..7 input
 *    channels), where Winograd's transforms would cost more than they save.
 * Owns the prepared weights' layouts (made once per plan), the tiling of a
 * map into blocks that stay in L2, and the inner kernels for the running CPU
 * (AVX-512VL + FMA, AVX2 + FMA and portable builds of pd_conv3x3_kern.c).
 * Pure functions over caller-owned buffers. */
#ifndef PD_CONV3X3_H
#define PD_CONV3X3_H

#include <stddef.h>

#include "pd_graph.h"

#define PD_CONV3X3_DIRECT_MAX_C 7
#define PD_CONV3X3_ROW_ALIGN 16

/* Geometry of one convolution over all views of one image. */
typedef struct pd_conv3x3_geom {
  int views, h, w, c, k; /* input views x h x w x c, k output channels (same h, w) */
  int tiles_y, tiles_x;  /* Winograd: ceil(h / 4), ceil(w / 4) */
} pd_conv3x3_geom;

/* Floats between two Winograd points' planes of a block of `rows` rows of
 * `cols` values: padded by a cache line so the 36 planes never alias in L1. */
static inline size_t pd_conv3x3_plane(int rows, int cols) {
  return (size_t)rows * (size_t)cols + 16;
}

/* The inner kernels, one table per instruction set. The Winograd ones work
 * on a block of tiles [t0, t0 + nt) of one image, its rows padded to ntpad
 * (a multiple of PD_CONV3X3_ROW_ALIGN):
 *   input:  in (NHWC, views adjacent) -> V[36 planes][ntpad][c]
 *   gemm:   M[xi] = V[xi] (ntpad x c) * U[xi] (c x k)  for the 36 points
 *   output: M[36 planes][ntpad][k] -> out tiles, + bias, activation
 * direct: the whole image, weights as D[9 * c][k] (tap-major). */
typedef struct pd_conv3x3_kernels {
  const char *name;
  void (*input)(const pd_conv3x3_geom *g, const float *in, int t0, int nt, int ntpad, float *v,
                const float *zeros);
  void (*gemm)(const pd_conv3x3_geom *g, int ntpad, const float *v, const float *u, float *m);
  void (*output)(const pd_conv3x3_geom *g, const float *m, int t0, int nt, int ntpad,
                 const float *bias, pd_activation act, float slope, float *out);
  void (*direct)(const pd_conv3x3_geom *g, const float *in, const float *d, const float *bias,
                 pd_activation act, float slope, float *out);
} pd_conv3x3_kernels;

extern const pd_conv3x3_kernels pd_conv3x3_kernels_generic;
extern const pd_conv3x3_kernels pd_conv3x3_kernels_avx2;
extern const pd_conv3x3_kernels pd_conv3x3_kernels_avx512;

/* The fastest table this CPU runs (AVX-512VL + FMA where present, else
 * AVX2 + FMA, else the portable build). */
const pd_conv3x3_kernels *pd_conv3x3_kernels_best(void);
/* Every table this CPU runs, slowest first (the portable one first); returns
 * how many (at most `max`) it wrote to out. */
int pd_conv3x3_kernels_runnable(const pd_conv3x3_kernels **out, int max);

/* Whether a conv layer is one this module computes (3x3, stride 1, pad 1). */
int pd_conv3x3_applies(const pd_layer *conv);
/* Whether it goes through Winograd (else the direct kernel). */
int pd_conv3x3_uses_winograd(const pd_layer *conv);

/* Floats of the prepared weights, and their preparation from the layer's
 * OHWI weights (Winograd: U[36][c][k] = G g G^T in double precision;
 * direct: D[9 * c][k]). */
size_t pd_conv3x3_weights_floats(const pd_layer *conv);
void pd_conv3x3_prepare_weights(const pd_layer *conv, float *prepared);

/* Scratch floats one worker needs for the layer. */
size_t pd_conv3x3_scratch_floats(const pd_layer *conv);

/* One image (all its views) through the layer, bias and activation fused. */
void pd_conv3x3_run(const pd_conv3x3_kernels *kern, const pd_layer *conv, const float *prepared,
                    const float *in, float *out, float *scratch);
/* Part `part` of `parts` of that run (Winograd: every parts-th block of
 * tiles; direct: a share of the views), so that parts threads with their
 * own scratch compute one image together; the union of the parts' outputs
 * is pd_conv3x3_run's, bit for bit. */
void pd_conv3x3_run_part(const pd_conv3x3_kernels *kern, const pd_layer *conv,
                         const float *prepared, const float *in, float *out, float *scratch,
                         int part, int parts);

#endif
