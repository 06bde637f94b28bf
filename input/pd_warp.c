/* pd_warp: models/FORMAT.md "Preprocessing". The whole map from output pixel
 * to source point is one 2x3 affine matrix built in double by pushing the
 * coefficients of (i, j, 1) through each step of the spec in its order.
 * Sampling evaluates q = a[0]*i + a[1]*j + a[2] per pixel (a[1]*j once per
 * row), skips the columns of a row that provably map outside the crop, and
 * reads the four neighbours without bounds checks when all are inside. */
#include "pd_warp.h"

#include <math.h>
#include <stddef.h>

#define PD_PI 3.14159265358979323846

pd_warp_aug pd_warp_aug_identity(void) {
  pd_warp_aug a = {.zoom = 1.0, .stretch = 1.0};
  return a;
}

/* An affine function of (i, j): x[0]*i + x[1]*j + x[2], same for y. */
typedef struct lin2 {
  double x[3], y[3];
} lin2;

static double branch_scale(const pd_input_branch *b, int w, int h) {
  if (b->rescale == PD_RESCALE_FIT) return (double)(w > h ? w : h) / (double)b->fit_size;
  return (double)b->factor;
}

/* Step 3 of the spec, applied to the coefficients of p. */
static void augment_point(lin2 *p, const pd_warp_aug *aug) {
  p->x[2] -= aug->tx;
  p->y[2] -= aug->ty;
  double rt = sqrt(aug->stretch), sh = tan(aug->shear_deg * (PD_PI / 180.0));
  double th = aug->rotation_deg * (PD_PI / 180.0), c = cos(th), s = sin(th);
  for (int k = 0; k < 3; k++) {
    double x = p->x[k] / aug->zoom, y = p->y[k] / aug->zoom;
    x = x / rt;
    y = y * rt;
    x = x + sh * y;
    double rx = c * x - s * y, ry = s * x + c * y;
    p->x[k] = aug->flip ? -rx : rx;
    p->y[k] = ry;
  }
}

pd_affine pd_warp_affine(const pd_input_branch *branch, int src_w, int src_h,
                         const pd_warp_aug *aug) {
  pd_warp_aug identity = pd_warp_aug_identity();
  if (!aug) aug = &identity;
  double half = (branch->size - 1) / 2.0;
  lin2 p = {.x = {1.0, 0.0, -half}, .y = {0.0, 1.0, -half}};
  augment_point(&p, aug);
  double s = branch_scale(branch, src_w, src_h);
  pd_affine m;
  for (int k = 0; k < 3; k++) {
    m.a[k] = s * p.x[k];
    m.a[3 + k] = s * p.y[k];
  }
  m.a[2] += (src_w - 1) / 2.0;
  m.a[5] += (src_h - 1) / 2.0;
  return m;
}

/* ---- sampling ---- */

typedef struct warp_src {
  const uint8_t *px;
  int w, h;
  double bg; /* background, before inversion */
} warp_src;

/* floor() for |q| well inside int range, without a libm call. */
static inline int floor_int(double q) {
  int t = (int)q;
  return (double)t > q ? t - 1 : t;
}

static inline double pixel_or_bg(const warp_src *s, int x, int y) {
  if (x < 0 || y < 0 || x >= s->w || y >= s->h) return s->bg;
  return s->px[(size_t)y * (size_t)s->w + (size_t)x];
}

/* Bilinear sample at (qx, qy), in the lerp form of train/planktonnet/warp.py
 * (so equal neighbours give exactly their value). All four neighbours outside
 * (or a non-finite point) gives the background, as the formula would. */
static inline double sample(const warp_src *s, double qx, double qy) {
  if (!(qx >= -1.0 && qx < s->w && qy >= -1.0 && qy < s->h)) return s->bg;
  int x0 = floor_int(qx), y0 = floor_int(qy);
  double ax = qx - x0, ay = qy - y0, p00, p10, p01, p11;
  if (x0 >= 0 && y0 >= 0 && x0 + 1 < s->w && y0 + 1 < s->h) {
    const uint8_t *r = s->px + (size_t)y0 * (size_t)s->w + (size_t)x0;
    p00 = r[0];
    p10 = r[1];
    p01 = r[s->w];
    p11 = r[s->w + 1];
  } else {
    p00 = pixel_or_bg(s, x0, y0);
    p10 = pixel_or_bg(s, x0 + 1, y0);
    p01 = pixel_or_bg(s, x0, y0 + 1);
    p11 = pixel_or_bg(s, x0 + 1, y0 + 1);
  }
  double top = p00 + ax * (p10 - p00), bottom = p01 + ax * (p11 - p01);
  return top + ay * (bottom - top);
}

/* Narrows [*lo, *hi) to the columns i where lo_q <= a*i + b < hi_q may hold,
 * with a margin (in q and in i) far beyond the rounding of either side. */
static void clip_span(double a, double b, double lo_q, double hi_q, double *lo, double *hi) {
  double eps = 1e-6 * (1.0 + fabs(b) + fabs(a) * *hi);
  lo_q -= eps;
  hi_q += eps;
  if (!isfinite(a) || !isfinite(b)) return; /* per-pixel checks decide */
  if (a == 0.0) {
    if (!(b >= lo_q && b < hi_q)) *hi = *lo;
    return;
  }
  double t1 = (lo_q - b) / a, t2 = (hi_q - b) / a;
  double tmin = fmin(t1, t2) - 1.0, tmax = fmax(t1, t2) + 2.0;
  if (tmax < *hi) *hi = fmax(tmax, *lo);
  if (tmin > *lo) *lo = fmin(tmin, *hi);
}

/* Columns [*i0, *i1) of row j that may touch the crop; the rest sample the background. */
static void row_span(const pd_affine *m, double ax_j, double ay_j, const warp_src *s, int size,
                     int *i0, int *i1) {
  double lo = 0.0, hi = size;
  clip_span(m->a[0], ax_j + m->a[2], -1.0, s->w, &lo, &hi);
  clip_span(m->a[3], ay_j + m->a[5], -1.0, s->h, &lo, &hi);
  *i0 = (int)ceil(lo);
  *i1 = (int)ceil(hi);
  if (*i1 > size) *i1 = size;
  if (*i0 > *i1) *i0 = *i1;
}

void pd_warp_branch(const pd_input_branch *branch, const pd_input_norm *norm, const uint8_t *src,
                    int src_w, int src_h, const pd_warp_aug *aug, float *out) {
  int size = branch->size;
  if (size <= 0) return;
  pd_affine m = pd_warp_affine(branch, src_w, src_h, aug);
  warp_src s = {.px = src, .w = src_w, .h = src_h, .bg = norm->background};
  if (!src || src_w <= 0 || src_h <= 0) s.w = s.h = 0; /* everything is background */
  const bool invert = norm->invert;
  const double mean = norm->mean, std = norm->std;
  const float bg_out = (float)(((invert ? 255.0 - s.bg : s.bg) / 255.0 - mean) / std);
  for (int j = 0; j < size; j++) {
    float *row = out + (size_t)j * (size_t)size;
    const double bx = m.a[1] * j, by = m.a[4] * j;
    int i0, i1;
    row_span(&m, bx, by, &s, size, &i0, &i1);
    for (int i = 0; i < i0; i++)
      row[i] = bg_out;
    for (int i = i0; i < i1; i++) {
      double v = sample(&s, m.a[0] * i + bx + m.a[2], m.a[3] * i + by + m.a[5]);
      if (invert) v = 255.0 - v;
      row[i] = (float)((v / 255.0 - mean) / std);
    }
    for (int i = i1; i < size; i++)
      row[i] = bg_out;
  }
}

void pd_warp_features(const pd_input_branch *branch, int src_w, int src_h, float *out) {
  const double w = src_w, h = src_h;
  for (int k = 0; k < branch->n_features && k < PD_MAX_FEATURES; k++) {
    double v = 0.0;
    switch (branch->features[k]) {
    case PD_FEAT_LOG_WIDTH:
      v = log(w);
      break;
    case PD_FEAT_LOG_HEIGHT:
      v = log(h);
      break;
    case PD_FEAT_LOG_AREA:
      v = log(w * h);
      break;
    case PD_FEAT_ASPECT:
      v = log(w / h);
      break;
    case PD_FEAT_LOG_LONG:
      v = log(w > h ? w : h);
      break;
    case PD_FEAT_LOG_SHORT:
      v = log(w < h ? w : h);
      break;
    case PD_FEAT_LOG_ELONGATION:
      v = log(w > h ? w / h : h / w);
      break;
    }
    out[k] = (float)v;
  }
}
