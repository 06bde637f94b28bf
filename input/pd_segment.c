#include "pd_segment.h"

#include "pd_clock.h"

#include <leptonica/allheaders.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

pd_segment_settings pd_segment_settings_default(void) {
  pd_segment_settings s = {
      .background = PD_SEGMENT_BG_COLUMN_MEDIAN,
      .threshold = 0.1,
      .min_area = 16,
      .max_area = 4L << 20,
      .connectivity = 8,
      .max_objects = 1000,
      .keep_edge = 1,
      .margin = 10,
      .merge_gap = 10,
      .satellite_area = 0.25,
      .crops = 1,
      .morph_size = 255,
      .morph_reduction = 8,
      .max_frame_pixels = 64L << 20,
  };
  return s;
}

int pd_segment_settings_check(const pd_segment_settings *s, pd_error *err) {
  if (s->background != PD_SEGMENT_BG_COLUMN_MEDIAN && s->background != PD_SEGMENT_BG_MORPH)
    return pd_error_set(err, PD_EINVAL,
                        "segment: background %d is not column median (0) or morph (1)",
                        (int)s->background);
  if (!(s->threshold > 0.0 && s->threshold < 1.0))
    return pd_error_set(err, PD_EINVAL,
                        "segment: threshold %g is outside (0, 1) (a fraction of the background)",
                        s->threshold);
  if (s->min_area < 1 || s->max_area < s->min_area)
    return pd_error_set(err, PD_EINVAL,
                        "segment: area range %ld..%ld pixels is empty or below 1 (min_area >= 1, "
                        "max_area >= min_area)",
                        s->min_area, s->max_area);
  if (s->connectivity != 4 && s->connectivity != 8)
    return pd_error_set(err, PD_EINVAL, "segment: connectivity %d is not 4 or 8", s->connectivity);
  if (s->max_objects < 1 || s->max_objects > PD_SEGMENT_MAX_OBJECTS)
    return pd_error_set(err, PD_EINVAL, "segment: max_objects %d is outside 1..%d", s->max_objects,
                        PD_SEGMENT_MAX_OBJECTS);
  if (s->margin < 0 || s->margin > PD_SEGMENT_MAX_MARGIN)
    return pd_error_set(err, PD_EINVAL, "segment: margin %d is outside 0..%d pixels", s->margin,
                        PD_SEGMENT_MAX_MARGIN);
  if (s->merge_gap < 0 || s->merge_gap > PD_SEGMENT_MAX_MERGE_GAP)
    return pd_error_set(err, PD_EINVAL, "segment: merge_gap %d is outside 0..%d pixels",
                        s->merge_gap, PD_SEGMENT_MAX_MERGE_GAP);
  if (!(s->satellite_area >= 0.0 && s->satellite_area <= 1.0))
    return pd_error_set(err, PD_EINVAL, "segment: satellite_area %g is outside 0..1",
                        s->satellite_area);
  if (s->morph_reduction < 1 || s->morph_reduction > 16)
    return pd_error_set(err, PD_EINVAL, "segment: morph_reduction %d is outside 1..16",
                        s->morph_reduction);
  if (s->morph_size < 3 || s->morph_size > 4096)
    return pd_error_set(err, PD_EINVAL, "segment: morph_size %d is outside 3..4096 pixels",
                        s->morph_size);
  if (s->max_frame_pixels < 1)
    return pd_error_set(err, PD_EINVAL, "segment: max_frame_pixels %ld is below 1",
                        s->max_frame_pixels);
  return PD_OK;
}

static int check_image(const pd_segment_frame *f, const char *what, const pd_segment_settings *s,
                       pd_error *err) {
  if (!f->pixels) return pd_error_set(err, PD_EINVAL, "segment: %s has no pixels", what);
  if (f->width <= 0 || f->height <= 0)
    return pd_error_set(err, PD_EINVAL, "segment: %s is %dx%d pixels (zero or negative size)", what,
                        f->width, f->height);
  long long px = (long long)f->width * f->height;
  if (px > s->max_frame_pixels)
    return pd_error_set(err, PD_ELIMIT,
                        "segment: %s of %dx%d = %lld pixels is over the limit of %ld pixels "
                        "(max_frame_pixels)",
                        what, f->width, f->height, px, s->max_frame_pixels);
  if (f->bytes_per_pixel != 1 && f->bytes_per_pixel != 2)
    return pd_error_set(err, PD_EINVAL,
                        "segment: %s has %d bytes per pixel (1 for gray8, 2 for gray16)", what,
                        f->bytes_per_pixel);
  int maxbits = 8 * f->bytes_per_pixel;
  if (f->significant_bits < 1 || f->significant_bits > maxbits)
    return pd_error_set(err, PD_EINVAL,
                        "segment: %s declares %d significant bits, outside 1..%d for gray%d", what,
                        f->significant_bits, maxbits, maxbits);
  return PD_OK;
}

int pd_segment_frame_check(const pd_segment_frame *frame, const pd_segment_settings *s,
                           pd_error *err) {
  return check_image(frame, "frame", s, err);
}

/* ---- leptonica's messages ---- */

static void drop_message(const char *msg) {
  (void)msg;
}

static pthread_once_t lept_once = PTHREAD_ONCE_INIT;

static void lept_setup(void) {
  setMsgSeverity(L_SEVERITY_WARNING);
  leptSetStderrHandler(drop_message);
}

void pd_segment_set_log(void (*fn)(const char *msg)) {
  pthread_once(&lept_once, lept_setup);
  leptSetStderrHandler(fn ? fn : drop_message);
}

/* ---- helpers ---- */

static double now_ms(void) {
  return (double)pd_now_ns() / 1e6;
}

static inline unsigned sample(const pd_segment_frame *f, long i) {
  return f->bytes_per_pixel == 1 ? ((const uint8_t *)f->pixels)[i]
                                 : ((const uint16_t *)f->pixels)[i];
}

/* The background of the frame, in the frame's original units. */
typedef struct background {
  int mode; /* 0 column, 1 morph grid, 2 flat field */
  int width, height;
  float *col;   /* column: width values */
  float *grid;  /* morph: gw * gh values */
  int gw, gh;   /* morph grid */
  float sx, sy; /* frame pixels per grid cell */
  const pd_segment_frame *flat;
} background;

/* Fills out[0..n) with the background of row y, columns x0..x0+n-1. */
static void background_span(const background *bg, int y, int x0, int n, float *out) {
  if (bg->mode == 0) {
    memcpy(out, bg->col + x0, (size_t)n * sizeof *out);
  } else if (bg->mode == 2) {
    long base = (long)y * bg->width + x0;
    for (int i = 0; i < n; i++)
      out[i] = (float)sample(bg->flat, base + i);
  } else {
    float fy = ((float)y + 0.5f) / bg->sy - 0.5f;
    if (fy < 0.0f) fy = 0.0f;
    if (fy > (float)(bg->gh - 1)) fy = (float)(bg->gh - 1);
    int y0 = (int)fy;
    int y1 = y0 + 1 < bg->gh ? y0 + 1 : y0;
    float wy = fy - (float)y0;
    const float *g0 = bg->grid + (long)y0 * bg->gw, *g1 = bg->grid + (long)y1 * bg->gw;
    for (int i = 0; i < n; i++) {
      float fx = ((float)(x0 + i) + 0.5f) / bg->sx - 0.5f;
      if (fx < 0.0f) fx = 0.0f;
      if (fx > (float)(bg->gw - 1)) fx = (float)(bg->gw - 1);
      int xa = (int)fx;
      int xb = xa + 1 < bg->gw ? xa + 1 : xa;
      float wx = fx - (float)xa;
      float top = g0[xa] + wx * (g0[xb] - g0[xa]);
      float bot = g1[xa] + wx * (g1[xb] - g1[xa]);
      out[i] = top + wy * (bot - top);
    }
  }
}

enum { MEDIAN_BINS = 256 };

/* The median of each column from a histogram of 256 bins per column, filled
 * row by row (contiguous reads; bin-major, so neighbouring columns of
 * similar background count into neighbouring words); within the median's bin the value is
 * interpolated from the counts, so 16-bit frames keep sub-bin precision. */
static int column_median(const pd_segment_frame *f, background *bg, size_t *work, pd_error *err) {
  const int w = f->width, h = f->height, bits = f->significant_bits;
  const int shift = bits > 8 ? bits - 8 : 0;
  const float bin_width = (float)(1u << shift);
  bg->col = malloc((size_t)w * sizeof *bg->col);
  uint32_t *hist = calloc((size_t)w * MEDIAN_BINS, sizeof *hist);
  if (!bg->col || !hist) {
    free(hist);
    return pd_error_set(err, PD_ENOMEM, "segment: no memory for the column median of a %dx%d frame",
                        w, h);
  }
  *work += (size_t)w * sizeof *bg->col + (size_t)w * MEDIAN_BINS * sizeof *hist;
  for (int y = 0; y < h; y++) {
    const long base = (long)y * w;
    if (f->bytes_per_pixel == 1) {
      const uint8_t *p = (const uint8_t *)f->pixels + base;
      for (int x = 0; x < w; x++)
        hist[(long)p[x] * w + x]++;
    } else {
      const uint16_t *p = (const uint16_t *)f->pixels + base;
      for (int x = 0; x < w; x++)
        hist[(long)((p[x] >> shift) & (MEDIAN_BINS - 1)) * w + x]++;
    }
  }
  const uint32_t half = (uint32_t)h / 2u; /* the (h/2)-th smallest, from 0 */
  /* walk the bins for all columns at once (contiguous); below = the count
   * under the bin, UINT32_MAX once the column's median is found */
  uint32_t *below = calloc((size_t)w, sizeof *below);
  if (!below) {
    free(hist);
    return pd_error_set(err, PD_ENOMEM, "segment: no memory for the column median of a %dx%d frame",
                        w, h);
  }
  *work += (size_t)w * sizeof *below;
  for (int b = 0; b < MEDIAN_BINS; b++) {
    const uint32_t *hb = hist + (long)b * w;
    for (int x = 0; x < w; x++) {
      if (below[x] == UINT32_MAX) continue;
      if (below[x] + hb[x] > half || b == MEDIAN_BINS - 1) {
        float frac = hb[x] ? ((float)(half - below[x]) + 0.5f) / (float)hb[x] : 0.5f;
        bg->col[x] = ((float)b + frac) * bin_width - (shift ? 0.5f : frac);
        below[x] = UINT32_MAX;
      } else {
        below[x] += hb[x];
      }
    }
  }
  free(below);
  free(hist);
  return PD_OK;
}

static int lept_failed(pd_error *err, const char *call, const pd_segment_frame *f) {
  return pd_error_set(err, PD_EINTERNAL,
                      "segment: leptonica %s failed on a %dx%d frame (out of memory, or a bug: "
                      "report it with the frame's size and the settings)",
                      call, f->width, f->height);
}

/* Grey closing (removes dark objects smaller than morph_size) of the frame
 * reduced by area averaging (noise down before the closing's max), smoothed
 * by a 5x5 mean; leptonica
 * works on 8 bpp, so 16-bit frames are brought down by their significant
 * bits and the grid is scaled back to the original units. */
static int morph_background(const pd_segment_frame *f, const pd_segment_settings *s, background *bg,
                            size_t *work, pd_error *err) {
  const int w = f->width, h = f->height;
  const int bits = f->significant_bits;
  PIX *pix8 = pixCreate(w, h, 8);
  if (!pix8) return lept_failed(err, "pixCreate (8 bpp)", f);
  *work += (size_t)pixGetWpl(pix8) * 4u * (size_t)h;
  l_uint32 *data = pixGetData(pix8);
  const int wpl = pixGetWpl(pix8);
  for (int y = 0; y < h; y++) {
    l_uint32 *line = data + (long)y * wpl;
    long base = (long)y * w;
    for (int x = 0; x < w; x++) {
      unsigned v = sample(f, base + x);
      SET_DATA_BYTE(line, x, bits >= 8 ? v >> (bits - 8) : v << (8 - bits));
    }
  }
  const int r = s->morph_reduction;
  PIX *red = r > 1 ? pixScaleAreaMap(pix8, 1.0f / (float)r, 1.0f / (float)r) : pixCopy(NULL, pix8);
  pixDestroy(&pix8);
  if (!red) return lept_failed(err, "pixScaleAreaMap", f);
  int size = s->morph_size / r;
  if (size < 3) size = 3;
  size |= 1;
  /* a replicated border keeps the closing exact on a linear ramp up to the
   * frame's edge (leptonica's own border biases it there) */
  const int wc = 2, border = size / 2 + wc + 2;
  PIX *bord = pixAddContinuedBorder(red, border, border, border, border);
  pixDestroy(&red);
  if (!bord) return lept_failed(err, "pixAddContinuedBorder", f);
  PIX *closed = pixCloseGray(bord, size, size);
  pixDestroy(&bord);
  if (!closed) return lept_failed(err, "pixCloseGray", f);
  PIX *smooth = pixBlockconv(closed, wc, wc);
  pixDestroy(&closed);
  if (!smooth) return lept_failed(err, "pixBlockconv", f);
  closed = pixRemoveBorder(smooth, border);
  pixDestroy(&smooth);
  if (!closed) return lept_failed(err, "pixRemoveBorder", f);
  const int gw = pixGetWidth(closed), gh = pixGetHeight(closed);
  bg->grid = malloc((size_t)gw * (size_t)gh * sizeof *bg->grid);
  if (!bg->grid) {
    pixDestroy(&closed);
    return pd_error_set(err, PD_ENOMEM, "segment: no memory for a %dx%d background grid", gw, gh);
  }
  *work += (size_t)gw * (size_t)gh * sizeof *bg->grid;
  const l_uint32 *cd = pixGetData(closed);
  const int cwpl = pixGetWpl(closed);
  /* back to the original units: the middle of each 8-bit step */
  const float scale = bits >= 8 ? (float)(1u << (bits - 8)) : 1.0f / (float)(1u << (8 - bits));
  const float half = bits > 8 ? 0.5f * scale : 0.0f;
  for (int y = 0; y < gh; y++)
    for (int x = 0; x < gw; x++)
      bg->grid[(long)y * gw + x] = (float)GET_DATA_BYTE(cd + (long)y * cwpl, x) * scale + half;
  pixDestroy(&closed);
  bg->gw = gw;
  bg->gh = gh;
  bg->sx = (float)w / (float)gw;
  bg->sy = (float)h / (float)gh;
  return PD_OK;
}

/* ---- objects ---- */

/* Pixel sums of an object, coordinates relative to (ox, oy). */
typedef struct sums {
  long long n, sx, sy, sxx, syy, sxy, sg;
  unsigned gmin;
  int ox, oy;
} sums;

typedef struct candidate {
  pd_segment_object obj; /* box and area; the rest filled from `sum` at the end */
  sums sum;
  long seq; /* order found, for ties */
  int alive;
} candidate;

/* a ranks below b: smaller area, or the same area found later. */
static int ranks_below(const candidate *a, const candidate *b) {
  return a->obj.area < b->obj.area || (a->obj.area == b->obj.area && a->seq > b->seq);
}

static void heap_down(candidate *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && ranks_below(&h[l], &h[m])) m = l;
    if (r < n && ranks_below(&h[r], &h[m])) m = r;
    if (m == i) return;
    candidate t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void heap_up(candidate *h, int i) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!ranks_below(&h[i], &h[p])) return;
    candidate t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

static int by_position(const void *pa, const void *pb) {
  const pd_segment_object *a = pa, *b = pb;
  if (a->y != b->y) return a->y < b->y ? -1 : 1;
  if (a->x != b->x) return a->x < b->x ? -1 : 1;
  return 0;
}

/* Features of the component whose pixels are set in `before` and clear in
 * `after` inside the fill's box, counting only the dark pixels of `mask`
 * (NULL: all of them; with merge_gap the fill ran on the dilated mask). */
static void measure(const pd_segment_frame *f, const l_uint32 *before, const l_uint32 *after,
                    const l_uint32 *mask, int wpl, int bx, int by, int bw, int bh, candidate *c) {
  sums t = {.gmin = 0xffffffffu, .ox = bx, .oy = by};
  int x_lo = bx + bw, x_hi = -1, y_lo = by + bh, y_hi = -1;
  const int wa = bx >> 5, wb = (bx + bw - 1) >> 5;
  for (int y = by; y < by + bh; y++) {
    const l_uint32 *lb = before + (long)y * wpl, *la = after + (long)y * wpl;
    const l_uint32 *lm = mask ? mask + (long)y * wpl : NULL;
    const long base = (long)y * f->width;
    const long long dy = y - by;
    for (int wi = wa; wi <= wb; wi++) {
      l_uint32 m = lb[wi] & ~la[wi];
      if (lm) m &= lm[wi];
      if (m) {
        int first = wi * 32 + __builtin_clz(m), last = wi * 32 + 31 - __builtin_ctz(m);
        if (first < x_lo) x_lo = first;
        if (last > x_hi) x_hi = last;
        if (y < y_lo) y_lo = y;
        y_hi = y;
      }
      while (m) {
        int bit = __builtin_clz(m);
        m &= ~(0x80000000u >> bit);
        int x = wi * 32 + bit;
        long long dx = x - bx;
        unsigned g = sample(f, base + x);
        t.n++;
        t.sx += dx;
        t.sy += dy;
        t.sxx += dx * dx;
        t.syy += dy * dy;
        t.sxy += dx * dy;
        t.sg += g;
        if (g < t.gmin) t.gmin = g;
      }
    }
  }
  c->sum = t;
  c->obj.area = (long)t.n;
  if (t.n == 0) return; /* cannot happen: every dilated component holds a dark pixel */
  c->obj.x = x_lo;
  c->obj.y = y_lo;
  c->obj.width = x_hi - x_lo + 1;
  c->obj.height = y_hi - y_lo + 1;
}

/* Adds b's pixels to a (sums moved to a's origin, boxes joined). */
static void absorb(candidate *a, const candidate *b) {
  sums *s = &a->sum;
  const sums *t = &b->sum;
  const long long dx = t->ox - s->ox, dy = t->oy - s->oy;
  s->sxx += t->sxx + 2 * dx * t->sx + t->n * dx * dx;
  s->syy += t->syy + 2 * dy * t->sy + t->n * dy * dy;
  s->sxy += t->sxy + dx * t->sy + dy * t->sx + t->n * dx * dy;
  s->sx += t->sx + t->n * dx;
  s->sy += t->sy + t->n * dy;
  s->n += t->n;
  s->sg += t->sg;
  if (t->gmin < s->gmin) s->gmin = t->gmin;
  pd_segment_object *o = &a->obj;
  const pd_segment_object *q = &b->obj;
  int x1 = o->x + o->width, y1 = o->y + o->height;
  if (q->x + q->width > x1) x1 = q->x + q->width;
  if (q->y + q->height > y1) y1 = q->y + q->height;
  if (q->x < o->x) o->x = q->x;
  if (q->y < o->y) o->y = q->y;
  o->width = x1 - o->x;
  o->height = y1 - o->y;
  o->area = (long)s->n;
}

/* Centroid, axes, orientation and gray features from the sums. */
static void finish(candidate *c) {
  const sums *t = &c->sum;
  pd_segment_object *o = &c->obj;
  const double dn = (double)t->n;
  const double mx = (double)t->sx / dn, my = (double)t->sy / dn;
  o->cx = t->ox + mx;
  o->cy = t->oy + my;
  /* central moments per pixel; + 1/12 for each pixel's own extent */
  const double mu20 = (double)t->sxx / dn - mx * mx + 1.0 / 12.0;
  const double mu02 = (double)t->syy / dn - my * my + 1.0 / 12.0;
  const double mu11 = (double)t->sxy / dn - mx * my;
  const double half = 0.5 * (mu20 - mu02);
  const double common = sqrt(half * half + mu11 * mu11);
  const double l1 = 0.5 * (mu20 + mu02) + common, l2 = 0.5 * (mu20 + mu02) - common;
  o->major_axis = 4.0 * sqrt(l1);
  o->minor_axis = 4.0 * sqrt(l2 > 0.0 ? l2 : 0.0);
  /* image y points down; the angle is measured with y up */
  double deg = 0.5 * atan2(-2.0 * mu11, mu20 - mu02) * (180.0 / M_PI);
  if (deg <= -90.0) deg += 180.0;
  o->orientation_deg = deg;
  o->mean_gray = (double)t->sg / dn;
  o->min_gray = (int)t->gmin;
}

static int by_area_desc(const void *pa, const void *pb) {
  const candidate *a = pa, *b = pb;
  if (a->obj.area != b->obj.area) return a->obj.area > b->obj.area ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq ? 1 : 0;
}

enum { SAT_CELL = 64 };

/* An object of at most `fraction` of a larger one's area whose box lies
 * inside that one's crop (box + margin) is part of that crop, as in the
 * training crops, and joins it. Largest first; a grid of 64-px cells by
 * box corner finds the candidates. Returns the number absorbed, or -1
 * without memory. */
static long absorb_satellites(candidate *c, int n, double fraction, int margin, int w, int h) {
  qsort(c, (size_t)n, sizeof *c, by_area_desc);
  const int gw = (w + SAT_CELL - 1) / SAT_CELL, gh = (h + SAT_CELL - 1) / SAT_CELL;
  int *head = malloc((size_t)gw * (size_t)gh * sizeof *head);
  int *next = malloc(((size_t)n + 1u) * sizeof *next);
  if (!head || !next) {
    free(head);
    free(next);
    return -1;
  }
  for (long i = 0; i < (long)gw * gh; i++)
    head[i] = -1;
  for (int i = n - 1; i >= 0; i--) {
    long cell = (long)(c[i].obj.y / SAT_CELL) * gw + c[i].obj.x / SAT_CELL;
    next[i] = head[cell];
    head[cell] = i;
    c[i].alive = 1;
  }
  long absorbed = 0;
  for (int i = 0; i < n; i++) {
    if (!c[i].alive) continue;
    const pd_segment_object o = c[i].obj; /* the crop as it was before absorbing */
    const int x0 = o.x - margin, y0 = o.y - margin;
    const int x1 = o.x + o.width + margin, y1 = o.y + o.height + margin;
    const int cx0 = x0 < 0 ? 0 : x0 / SAT_CELL, cy0 = y0 < 0 ? 0 : y0 / SAT_CELL;
    const int cx1 = (x1 - 1) / SAT_CELL < gw - 1 ? (x1 - 1) / SAT_CELL : gw - 1;
    const int cy1 = (y1 - 1) / SAT_CELL < gh - 1 ? (y1 - 1) / SAT_CELL : gh - 1;
    const double limit = fraction * (double)o.area;
    for (int cy = cy0; cy <= cy1; cy++)
      for (int cx = cx0; cx <= cx1; cx++)
        for (int j = head[(long)cy * gw + cx]; j >= 0; j = next[j]) {
          const pd_segment_object *q = &c[j].obj;
          if (j <= i || !c[j].alive || (double)q->area > limit) continue;
          if (q->x < x0 || q->y < y0 || q->x + q->width > x1 || q->y + q->height > y1) continue;
          absorb(&c[i], &c[j]);
          c[j].alive = 0;
          absorbed++;
        }
  }
  free(head);
  free(next);
  return absorbed;
}

/* Builds the 1-bpp image of dark pixels: value < background * (1 - threshold).
 * The limit is turned into an integer per column (value < limit), the
 * comparison made into a row of flags and the flags packed into words. */
static int threshold_frame(const pd_segment_frame *f, const background *bg, double threshold,
                           PIX *bin, float *row, uint16_t *limit, uint8_t *flag, pd_error *err) {
  const int w = f->width, h = f->height;
  const unsigned maxv = (1u << f->significant_bits) - 1u;
  const float k = (float)(1.0 - threshold);
  l_uint32 *data = pixGetData(bin);
  const int wpl = pixGetWpl(bin);
  const int fixed = bg->mode == 0;
  for (int y = 0; y < h; y++) {
    if (!fixed || y == 0) {
      background_span(bg, y, 0, w, row);
      for (int x = 0; x < w; x++) {
        float t = ceilf(row[x] * k); /* integer v < t <=> v < row * k */
        limit[x] = t <= 0.0f ? 0 : t >= 65535.0f ? 65535 : (uint16_t)t;
      }
    }
    l_uint32 *line = data + (long)y * wpl;
    const long base = (long)y * w;
    unsigned seen = 0;
    if (f->bytes_per_pixel == 1) {
      const uint8_t *p = (const uint8_t *)f->pixels + base;
      for (int x = 0; x < w; x++) {
        seen |= p[x];
        flag[x] = p[x] < limit[x];
      }
    } else {
      const uint16_t *p = (const uint16_t *)f->pixels + base;
      for (int x = 0; x < w; x++) {
        seen |= p[x];
        flag[x] = p[x] < limit[x];
      }
    }
    /* 8 flags (bytes of 0/1, the first lowest) to 8 bits (the first
     * highest, leptonica's order) with one multiply */
    for (int x = w; x < ((w + 31) & ~31); x++)
      flag[x] = 0;
    for (int x0 = 0; x0 < w; x0 += 32) {
      l_uint32 word = 0;
      for (int q = 0; q < 4; q++) {
        uint64_t eight;
        memcpy(&eight, flag + x0 + (ptrdiff_t)8 * q, sizeof eight);
        word |= (l_uint32)((eight * 0x8040201008040201ull) >> 56) << (24 - 8 * q);
      }
      line[x0 >> 5] = word;
    }
    if (seen > maxv) {
      for (int x = 0; x < w; x++) {
        unsigned v = sample(f, base + x);
        if (v > maxv)
          return pd_error_set(err, PD_EINVAL,
                              "segment: pixel (%d, %d) of the frame is %u, above %u: the frame "
                              "does not have the %d significant bits it declares",
                              x, y, v, maxv, f->significant_bits);
      }
    }
  }
  return PD_OK;
}

/* Scans the dark pixels; each component is filled (erased) in `work` by
 * leptonica's seed fill, measured from the difference with `shadow`, and
 * `shadow` is brought level inside its box. */
static int components(const pd_segment_frame *f, const pd_segment_settings *s, PIX *work,
                      PIX *shadow, const PIX *mask, candidate **heap_out, int *count_out,
                      size_t *work_bytes, pd_segment_stats *st, pd_error *err) {
  const int w = f->width, h = f->height;
  l_uint32 *wd = pixGetData(work);
  const l_uint32 *sd = pixGetData(shadow);
  const l_uint32 *md = mask ? pixGetData((PIX *)mask) : NULL;
  const int wpl = pixGetWpl(work);
  L_STACK *stack = lstackCreate(h > 64 ? h : 64);
  if (!stack) return lept_failed(err, "lstackCreate", f);
  stack->auxstack = lstackCreate(0);
  if (!stack->auxstack) {
    lstackDestroy(&stack, TRUE);
    return lept_failed(err, "lstackCreate", f);
  }
  candidate *heap = NULL;
  int n = 0, cap = 0, rc = PD_OK;
  long seq = 0;
  for (int y = 0; y < h && rc == PD_OK; y++) {
    l_uint32 *line = wd + (long)y * wpl;
    for (int wi = 0; wi < wpl && rc == PD_OK; wi++) {
      while (line[wi]) {
        int x = wi * 32 + __builtin_clz(line[wi]);
        BOX *box = s->connectivity == 8 ? pixSeedfill8BB(work, stack, x, y)
                                        : pixSeedfill4BB(work, stack, x, y);
        if (!box) {
          rc = lept_failed(err, "pixSeedfillBB", f);
          break;
        }
        l_int32 bx, by, bw, bh;
        boxGetGeometry(box, &bx, &by, &bw, &bh);
        boxDestroy(&box);
        st->found++;
        candidate c = {.seq = seq};
        seq++;
        int drop = 0;
        if ((long long)bw * bh < s->min_area) {
          drop = 1; /* cannot reach min_area: no need to measure */
          st->dropped_small++;
        } else {
          measure(f, sd, wd, md, wpl, bx, by, bw, bh, &c);
          if (c.obj.area < s->min_area) {
            drop = 1;
            st->dropped_small++;
          } else if (c.obj.area > s->max_area) {
            drop = 1;
            st->dropped_large++;
          } else if (!s->keep_edge && (c.obj.x == 0 || c.obj.y == 0 || c.obj.x + c.obj.width == w ||
                                       c.obj.y + c.obj.height == h)) {
            drop = 1;
            st->dropped_edge++;
          }
        }
        pixRasterop(shadow, bx, by, bw, bh, PIX_SRC, work, bx, by);
        if (drop) continue;
        if (n < s->max_objects) {
          if (n == cap) {
            int ncap = cap ? cap * 2 : 64;
            if (ncap > s->max_objects) ncap = s->max_objects;
            candidate *nh = realloc(heap, (size_t)ncap * sizeof *nh);
            if (!nh) {
              rc = pd_error_set(err, PD_ENOMEM, "segment: no memory for %d objects", ncap);
              break;
            }
            *work_bytes += (size_t)(ncap - cap) * sizeof *nh;
            heap = nh;
            cap = ncap;
          }
          heap[n] = c;
          heap_up(heap, n);
          n++;
        } else {
          st->dropped_cap++;
          if (heap && ranks_below(&heap[0], &c)) { /* heap is full here (n >= 1) */
            heap[0] = c;
            heap_down(heap, n, 0);
          }
        }
      }
    }
  }
  lstackDestroy(&stack, TRUE);
  if (rc != PD_OK) {
    free(heap);
    return rc;
  }
  *heap_out = heap;
  *count_out = n;
  return PD_OK;
}

static int cut_crops(const pd_segment_frame *f, const background *bg, int margin,
                     pd_segment_result *out, float *row, pd_error *err) {
  size_t total = 0;
  for (int i = 0; i < out->count; i++) {
    pd_segment_object *o = &out->objects[i];
    int x0 = o->x - margin, y0 = o->y - margin;
    int x1 = o->x + o->width + margin, y1 = o->y + o->height + margin;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > f->width) x1 = f->width;
    if (y1 > f->height) y1 = f->height;
    o->crop_x = x0;
    o->crop_y = y0;
    o->crop_width = x1 - x0;
    o->crop_height = y1 - y0;
    total += (size_t)o->crop_width * (size_t)o->crop_height;
  }
  if (total == 0) return PD_OK;
  out->crop_pixels = malloc(total);
  if (!out->crop_pixels)
    return pd_error_set(err, PD_ENOMEM, "segment: no memory for %zu bytes of crops of %d objects",
                        total, out->count);
  out->crop_bytes = total;
  uint8_t *p = out->crop_pixels;
  for (int i = 0; i < out->count; i++) {
    pd_segment_object *o = &out->objects[i];
    o->crop = p;
    for (int y = o->crop_y; y < o->crop_y + o->crop_height; y++) {
      background_span(bg, y, o->crop_x, o->crop_width, row);
      const long base = (long)y * f->width + o->crop_x;
      for (int x = 0; x < o->crop_width; x++) {
        float b = row[x];
        float v = b > 0.0f ? 255.0f * (float)sample(f, base + x) / b + 0.5f : 255.0f;
        *p++ = v >= 255.0f ? 255 : (uint8_t)v;
      }
    }
  }
  return PD_OK;
}

int pd_segment_run(const pd_segment_frame *frame, const pd_segment_frame *flat,
                   const pd_segment_settings *s, pd_segment_result *out, pd_error *err) {
  memset(out, 0, sizeof *out);
  int rc = pd_segment_settings_check(s, err);
  if (rc) return rc;
  if ((rc = check_image(frame, "frame", s, err))) return rc;
  if (flat) {
    if ((rc = check_image(flat, "flat-field image", s, err))) return rc;
    if (flat->width != frame->width || flat->height != frame->height ||
        flat->bytes_per_pixel != frame->bytes_per_pixel)
      return pd_error_set(err, PD_EINVAL,
                          "segment: flat-field image is %dx%d gray%d but the frame is %dx%d "
                          "gray%d: send a background of the frame's size and depth",
                          flat->width, flat->height, 8 * flat->bytes_per_pixel, frame->width,
                          frame->height, 8 * frame->bytes_per_pixel);
  }
  pthread_once(&lept_once, lept_setup);
  const double t0 = now_ms();
  pd_segment_stats *st = &out->stats;
  background bg = {.width = frame->width, .height = frame->height};
  PIX *work = NULL, *shadow = NULL, *mask = NULL;
  candidate *heap = NULL;
  int n = 0;
  /* one row of background floats, of integer limits and of flags (padded
   * to whole words) */
  const size_t wd = (size_t)frame->width;
  float *row = malloc(wd * sizeof *row);
  uint16_t *limit = malloc(wd * sizeof *limit);
  uint8_t *flag = malloc(wd + 32u);
  if (!row || !limit || !flag) {
    free(row);
    free(limit);
    free(flag);
    return pd_error_set(err, PD_ENOMEM, "segment: no memory for a row of the frame");
  }
  st->work_bytes += wd * (sizeof *row + sizeof *limit + 1u) + 32u;
  if (flat) {
    bg.mode = 2;
    bg.flat = flat;
  } else if (s->background == PD_SEGMENT_BG_COLUMN_MEDIAN) {
    bg.mode = 0;
    rc = column_median(frame, &bg, &st->work_bytes, err);
  } else {
    bg.mode = 1;
    rc = morph_background(frame, s, &bg, &st->work_bytes, err);
  }
  const double t1 = now_ms();
  st->background_ms = t1 - t0;
  if (rc) goto done;
  mask = pixCreate(frame->width, frame->height, 1);
  if (!mask) {
    rc = lept_failed(err, "pixCreate (1 bpp)", frame);
    goto done;
  }
  const size_t bin_bytes = (size_t)pixGetWpl(mask) * 4u * (size_t)frame->height;
  st->work_bytes += bin_bytes;
  if ((rc = threshold_frame(frame, &bg, s->threshold, mask, row, limit, flag, err))) goto done;
  if (s->merge_gap > 0) {
    /* a (gap + 1)-square brick closes gaps of up to merge_gap background
     * pixels (chessboard distance) between fragments */
    const int k = s->merge_gap + 1;
    work = pixDilateBrick(NULL, mask, k, k);
    if (!work) {
      rc = lept_failed(err, "pixDilateBrick", frame);
      goto done;
    }
    st->work_bytes += bin_bytes;
  } else {
    work = mask;
    mask = NULL;
  }
  shadow = pixCopy(NULL, work);
  if (!shadow) {
    rc = lept_failed(err, "pixCopy (1 bpp)", frame);
    goto done;
  }
  st->work_bytes += bin_bytes;
  const double t2 = now_ms();
  st->threshold_ms = t2 - t1;
  rc = components(frame, s, work, shadow, mask, &heap, &n, &st->work_bytes, st, err);
  if (rc) goto done;
  pixDestroy(&work);
  pixDestroy(&shadow);
  pixDestroy(&mask);
  if (s->satellite_area > 0.0 && n > 1) {
    long a = absorb_satellites(heap, n, s->satellite_area, s->margin, frame->width, frame->height);
    if (a < 0) {
      rc = pd_error_set(err, PD_ENOMEM, "segment: no memory to join the satellites of %d objects",
                        n);
      goto done;
    }
    st->absorbed = a;
  }
  out->objects = calloc(n ? (size_t)n : 1u, sizeof *out->objects);
  if (!out->objects) {
    rc = pd_error_set(err, PD_ENOMEM, "segment: no memory for %d objects", n);
    goto done;
  }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (s->satellite_area > 0.0 && n > 1 && !heap[i].alive) continue;
    finish(&heap[i]);
    out->objects[kept++] = heap[i].obj;
  }
  n = kept;
  out->count = n;
  qsort(out->objects, (size_t)n, sizeof *out->objects, by_position);
  const double t3 = now_ms();
  st->components_ms = t3 - t2;
  if (s->crops && (rc = cut_crops(frame, &bg, s->margin, out, row, err))) goto done;
  const double t4 = now_ms();
  st->crops_ms = t4 - t3;
  st->total_ms = t4 - t0;
done:
  pixDestroy(&work);
  pixDestroy(&shadow);
  pixDestroy(&mask);
  free(heap);
  free(row);
  free(limit);
  free(flag);
  free(bg.col);
  free(bg.grid);
  if (rc) {
    pd_segment_stats keep = out->stats;
    pd_segment_result_free(out);
    out->stats = keep;
  }
  return rc;
}

void pd_segment_result_free(pd_segment_result *r) {
  if (!r) return;
  free(r->objects);
  free(r->crop_pixels);
  memset(r, 0, sizeof *r);
}
