/* pd_tta: test-time augmentation (models/FORMAT.md "Test-time augmentation").
 * Owns nothing: it turns a model's TTA spec into a deterministic list of
 * quasi-random transforms (pd_input.h warps a crop with them) and averages
 * probability rows.
 *
 * Transforms: transform 0 is the identity (so n = 1 is exactly no TTA);
 * transform k >= 1 is point k of a 7-dimensional Halton sequence with
 * linearly scrambled digits, one dimension per parameter:
 *   rotation  base 2   uniform in [rotation_min, rotation_max] degrees
 *   zoom      base 3   log-uniform in [zoom_min, zoom_max]
 *   flip      base 5   flipped when the coordinate is >= 0.5, and only when
 *                      spec->flip is set and the symmetry is none or d4
 *   shear     base 7   uniform in [shear_min, shear_max] degrees
 *   tx        base 11  uniform in [translate_min, translate_max]
 *   ty        base 13  uniform in [translate_min, translate_max]
 *   stretch   base 17  log-uniform in [1 / stretch_max, stretch_max]
 * The list for n is a prefix of the list for any larger n.
 *
 * Averaging: the arithmetic mean of the probability rows (not the geometric
 * mean / mean of log-probabilities). Reasons: (1) under log loss the mean of
 * probabilities never scores worse than the average transform
 * (-log mean p <= mean -log p, Jensen), and one bad transform (an organism
 * pushed half out of the patch) cannot veto the true class the way a near-zero
 * factor does in a geometric mean: the averaged probability of a class is at
 * least (its best transform's probability) / n; (2) it is linear, so TTA
 * averaging and ensemble weighting commute, can be accumulated in any order
 * and need no renormalisation; (3) the 2015 Deep Sea team averaged
 * probabilities, which is the recipe we reproduce. */
#ifndef PD_TTA_H
#define PD_TTA_H

#include <stdint.h>

#include "pd_error.h"
#include "pd_input_spec.h"
#include "pd_warp.h"

/* Upper bound on transforms per image in one call (the loader caps tta.count at this too). */
#define PD_TTA_MAX 1024

/* Writes the first n transforms (1 <= n <= PD_TTA_MAX) into out[n].
 * spec == NULL means all transforms are the identity. Errors: n out of range,
 * a spec with min > max, zoom <= 0 or stretch < 1 (PD_EINVAL, naming the field). */
int pd_tta_transforms(const pd_tta_spec *spec, pd_symmetry symmetry, int n, pd_warp_aug *out,
                      pd_error *err);

/* Transform k (0 = identity) of the list above, for a spec as the model
 * loader validated it (pd_tta_transforms checks the spec; this does not). */
pd_warp_aug pd_tta_transform_at(const pd_tta_spec *spec, pd_symmetry symmetry, int k);

/* Coordinate `dim` (0..6, in the table above) of Halton point k in [0, 1). */
double pd_tta_halton(uint64_t k, int dim);

/* The default count of a spec: its count, with 0 (off) meaning 1. */
int pd_tta_default_count(const pd_tta_spec *spec);

/* out[c] = mean over t < n of rows[t * n_classes + c] (arithmetic mean,
 * accumulated in double). n >= 1. out may not alias rows. */
void pd_tta_average(const float *rows, int n, int n_classes, float *out);

#endif
