/* pd_warp: the per-branch preprocessing of models/FORMAT.md: one affine
 * warp (branch rescale + centring + augmentation), bilinear sampling,
 * inversion and normalisation, from a gray8 crop into a float input slot.
 * train/planktonnet/warp.py implements the same arithmetic. The sequence
 * over a model's branches and TTA views is pd_input.h. */
#ifndef PD_WARP_H
#define PD_WARP_H

#include <stdbool.h>
#include <stdint.h>

#include "pd_input_spec.h"

typedef struct pd_warp_aug {
  double zoom; /* 1 = identity */
  double rotation_deg;
  double shear_deg;
  double tx, ty;  /* output pixels */
  double stretch; /* 1 = identity */
  bool flip;
} pd_warp_aug;

pd_warp_aug pd_warp_aug_identity(void);

/* Affine map from output pixel (i, j) to source point:
 * q.x = a[0]*i + a[1]*j + a[2];  q.y = a[3]*i + a[4]*j + a[5]. */
typedef struct pd_affine {
  double a[6];
} pd_affine;

pd_affine pd_warp_affine(const pd_input_branch *branch, int src_w, int src_h,
                         const pd_warp_aug *aug);

/* Fills out[size*size] for image branch `branch`. aug may be NULL (identity). */
void pd_warp_branch(const pd_input_branch *branch, const pd_input_norm *norm, const uint8_t *src,
                    int src_w, int src_h, const pd_warp_aug *aug, float *out);

/* Fills out[n_features] for a size-feature branch (from the crop's size only). */
void pd_warp_features(const pd_input_branch *branch, int src_w, int src_h, float *out);

#endif
