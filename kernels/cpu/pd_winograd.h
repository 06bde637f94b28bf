/* pd_winograd: 3x3 stride-1 "same" convolutions by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin & Gray 2015), which needs 36 multiplies per
 * 4x4 output tile and channel pair instead of 144. Owns the transformed
 * weights' layout (made once per plan), the tiling of a map into blocks that
 * stay in L2 and the choice of inner kernels for the running CPU (an
 * AVX-512VL/FMA build and a portable one of the same source,
 * pd_winograd_kern.c). Pure functions over caller-owned buffers. */
#ifndef PD_WINOGRAD_H
#define PD_WINOGRAD_H

#include <stddef.h>

#include "pd_model.h"

/* Geometry of one Winograd convolution over all views of one image. */
typedef struct pd_wino_geom {
  int views, h, w, c, k;   /* input views x h x w x c, k output channels (same h, w) */
  int tiles_y, tiles_x;    /* ceil(h / 4), ceil(w / 4) */
} pd_wino_geom;

/* The inner kernels, one table per instruction set. Each works on a block
 * of tiles [t0, t0 + nt) of one image; per Winograd point the block's rows
 * are padded to `ntpad` (a multiple of PD_WINO_ROW_ALIGN).
 *   input:  in (NHWC, views adjacent) -> V[36][ntpad][c]
 *   gemm:   M[xi] = V[xi] (ntpad x c) * U[xi] (c x k)  for the 36 points
 *   output: M[36][ntpad][k] -> out tiles, + bias, activation */
typedef struct pd_wino_kernels {
  const char *name;
  void (*input)(const pd_wino_geom *g, const float *in, int t0, int nt, int ntpad, float *v,
                const float *zeros);
  void (*gemm)(const pd_wino_geom *g, int ntpad, const float *v, const float *u, float *m);
  void (*output)(const pd_wino_geom *g, const float *m, int t0, int nt, int ntpad,
                 const float *bias, pd_activation act, float slope, float *out);
} pd_wino_kernels;

#define PD_WINO_ROW_ALIGN 16

extern const pd_wino_kernels pd_wino_kernels_generic;
extern const pd_wino_kernels pd_wino_kernels_avx512;

/* The fastest table this CPU runs (AVX-512VL + FMA where present). */
const pd_wino_kernels *pd_wino_kernels_best(void);

/* Whether a conv layer is one this module computes (3x3, stride 1, pad 1). */
int pd_wino_applies(const pd_layer *conv);

/* Floats of the transformed weights U[36][c][k]; the transform itself
 * (from the layer's OHWI weights, in double precision). */
size_t pd_wino_weights_floats(const pd_layer *conv);
void pd_wino_transform_weights(const pd_layer *conv, float *u);

/* Scratch floats one worker needs for the layer (V and M blocks and a row of zeros). */
size_t pd_wino_scratch_floats(const pd_layer *conv);

/* One image (all its views) through the layer, bias and activation fused. */
void pd_wino_conv(const pd_wino_kernels *kern, const pd_layer *conv, const float *u,
                  const float *in, float *out, float *scratch);

#endif
