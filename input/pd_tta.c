/* pd_tta: Halton transforms, TTA preprocessing and averaging (see pd_tta.h).
 * The digit scrambles (digit d of base p becomes m_p * d mod p) break the
 * strong correlation between the high bases' first points (unscrambled, the
 * first 10 points of bases 11, 13 and 17 are i/11, i/13, i/17: perfectly
 * correlated). The multipliers were chosen by a small search that minimises
 * the largest pairwise correlation of the 7 coordinates over the first
 * 8..100 points (0.46 at worst; i.i.d. uniform points give about 0.8 at 8
 * points and 0.26 at 70). */
#include "pd_tta.h"

#include <math.h>
#include <stddef.h>

#define TTA_DIMS 7

enum { DIM_ROT = 0, DIM_ZOOM, DIM_FLIP, DIM_SHEAR, DIM_TX, DIM_TY, DIM_STRETCH };

static const unsigned k_base[TTA_DIMS] = {2, 3, 5, 7, 11, 13, 17};
static const unsigned k_mult[TTA_DIMS] = {1, 2, 4, 6, 7, 11, 13};

double pd_tta_halton(uint64_t k, int dim) {
  if (dim < 0 || dim >= TTA_DIMS) return 0.0;
  const unsigned p = k_base[dim], m = k_mult[dim];
  if (p < 2) return 0.0; /* the tables hold primes; this keeps k % p defined */
  double f = 1.0 / p, r = 0.0;
  while (k > 0) {
    unsigned d = (unsigned)(k % p);
    r += (double)((m * d) % p) * f;
    k /= p;
    f /= p;
  }
  return r;
}

static double lerp(double lo, double hi, double u) {
  return lo + (hi - lo) * u;
}

static int check_spec(const pd_tta_spec *s, pd_error *err) {
  struct {
    const char *name;
    float lo, hi;
  } r[] = {{"zoom", s->zoom_min, s->zoom_max},
           {"rotation", s->rotation_min, s->rotation_max},
           {"shear", s->shear_min, s->shear_max},
           {"translate", s->translate_min, s->translate_max}};
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    if (!(r[i].lo <= r[i].hi))
      return pd_error_set(err, PD_EINVAL, "tta: %s range [%g, %g] has min > max", r[i].name,
                          (double)r[i].lo, (double)r[i].hi);
  if (!(s->zoom_min > 0))
    return pd_error_set(err, PD_EINVAL, "tta: zoom must be > 0, got %g", (double)s->zoom_min);
  if (!(s->stretch_max >= 1) || !isfinite(s->stretch_max))
    return pd_error_set(err, PD_EINVAL, "tta: stretch must be >= 1, got %g",
                        (double)s->stretch_max);
  if (!(fabs(s->shear_min) < 90 && fabs(s->shear_max) < 90))
    return pd_error_set(err, PD_EINVAL, "tta: shear [%g, %g] must lie inside (-90, 90) degrees",
                        (double)s->shear_min, (double)s->shear_max);
  return PD_OK;
}

int pd_tta_transforms(const pd_tta_spec *spec, pd_symmetry symmetry, int n, pd_warp_aug *out,
                      pd_error *err) {
  if (n < 1 || n > PD_TTA_MAX)
    return pd_error_set(err, PD_EINVAL, "tta: count %d out of range 1..%d", n, PD_TTA_MAX);
  if (!out) return pd_error_set(err, PD_EINVAL, "tta: null output");
  if (spec) {
    int rc = check_spec(spec, err);
    if (rc != PD_OK) return rc;
  }
  out[0] = pd_warp_aug_identity();
  if (!spec) {
    for (int k = 1; k < n; k++)
      out[k] = pd_warp_aug_identity();
    return PD_OK;
  }
  for (int k = 1; k < n; k++)
    out[k] = pd_tta_transform_at(spec, symmetry, k);
  return PD_OK;
}

pd_warp_aug pd_tta_transform_at(const pd_tta_spec *spec, pd_symmetry symmetry, int k) {
  pd_warp_aug a = pd_warp_aug_identity();
  if (!spec || k <= 0) return a;
  const double lz0 = log(spec->zoom_min), lz1 = log(spec->zoom_max);
  const double ls = log(spec->stretch_max);
  a.rotation_deg =
      lerp(spec->rotation_min, spec->rotation_max, pd_tta_halton((uint64_t)k, DIM_ROT));
  a.zoom = exp(lerp(lz0, lz1, pd_tta_halton((uint64_t)k, DIM_ZOOM)));
  a.flip = spec->flip && symmetry != PD_SYM_C4 && pd_tta_halton((uint64_t)k, DIM_FLIP) >= 0.5;
  a.shear_deg = lerp(spec->shear_min, spec->shear_max, pd_tta_halton((uint64_t)k, DIM_SHEAR));
  a.tx = lerp(spec->translate_min, spec->translate_max, pd_tta_halton((uint64_t)k, DIM_TX));
  a.ty = lerp(spec->translate_min, spec->translate_max, pd_tta_halton((uint64_t)k, DIM_TY));
  a.stretch = exp(lerp(-ls, ls, pd_tta_halton((uint64_t)k, DIM_STRETCH)));
  return a;
}

int pd_tta_default_count(const pd_tta_spec *spec) {
  return spec && spec->count > 1 ? spec->count : 1;
}

void pd_tta_average(const float *rows, int n, int n_classes, float *out) {
  if (n < 1) return;
  for (int c = 0; c < n_classes; c++) {
    double s = 0.0;
    for (int t = 0; t < n; t++)
      s += rows[(size_t)t * (size_t)n_classes + (size_t)c];
    out[c] = (float)(s / n);
  }
}
