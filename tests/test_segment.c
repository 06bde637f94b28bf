/* test_segment: pd_segment on small made-up frames with known boxes: 8- and
 * 4-connectivity, merging of fragments and satellites, objects on the frame edge, 16-bit frames
 * with 12 significant bits, multiplicative flat-field gradients (column median, the caller's flat
 * field, the morphological background), the cap, the area filters, moments, crops, leptonica's
 * messages and every bad input. */
#include <leptonica/allheaders.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_segment.h"
#include "pd_test.h"

typedef struct img {
  int w, h, bpp, bits;
  void *px;
} img;

static img img_new(int w, int h, int bpp, int bits, unsigned value) {
  img m = {w, h, bpp, bits, calloc((size_t)w * (size_t)h, (size_t)bpp)};
  if (!m.px) abort();
  for (long i = 0; i < (long)w * h; i++) {
    if (bpp == 1)
      ((uint8_t *)m.px)[i] = (uint8_t)value;
    else
      ((uint16_t *)m.px)[i] = (uint16_t)value;
  }
  return m;
}

static unsigned img_get(const img *m, int x, int y) {
  long i = (long)y * m->w + x;
  return m->bpp == 1 ? ((uint8_t *)m->px)[i] : ((uint16_t *)m->px)[i];
}

static void img_set(img *m, int x, int y, unsigned v) {
  long i = (long)y * m->w + x;
  if (m->bpp == 1)
    ((uint8_t *)m->px)[i] = (uint8_t)v;
  else
    ((uint16_t *)m->px)[i] = (uint16_t)v;
}

static void img_rect(img *m, int x, int y, int w, int h, unsigned v) {
  for (int j = y; j < y + h; j++)
    for (int i = x; i < x + w; i++)
      img_set(m, i, j, v);
}

static pd_segment_frame frame_of(const img *m) {
  pd_segment_frame f = {m->w, m->h, m->bpp, m->bits, m->px};
  return f;
}

/* Every object on its own (no merging, no satellites), down to one pixel. */
static pd_segment_settings settings(void) {
  pd_segment_settings s = pd_segment_settings_default();
  s.min_area = 1;
  s.merge_gap = 0;
  s.satellite_area = 0.0;
  return s;
}

static void check_box(pd_test_state *st, const pd_segment_object *o, int x, int y, int w, int h,
                      long area) {
  PD_CHECK_INT(st, o->x, x);
  PD_CHECK_INT(st, o->y, y);
  PD_CHECK_INT(st, o->width, w);
  PD_CHECK_INT(st, o->height, h);
  PD_CHECK_INT(st, o->area, area);
}

static int run(pd_test_state *st, const img *m, const img *flat, const pd_segment_settings *s,
               pd_segment_result *r) {
  pd_segment_frame f = frame_of(m), ff;
  if (flat) ff = frame_of(flat);
  pd_error err = {0};
  int rc = pd_segment_run(&f, flat ? &ff : NULL, s, r, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc) fprintf(stderr, "  pd_segment_run: %s\n", err.msg);
  return rc;
}

/* Two rectangles on a flat gray8 background: boxes, areas, moments, gray
 * features, crops (margin, clipping, white background). */
static void test_rectangles(pd_test_state *st) {
  img m = img_new(64, 48, 1, 8, 200);
  img_rect(&m, 5, 6, 10, 4, 100); /* 10x4 at (5,6) */
  img_set(&m, 7, 7, 60);          /* its darkest pixel */
  img_rect(&m, 40, 30, 3, 7, 150);
  pd_segment_settings s = settings();
  pd_segment_result r;
  if (run(st, &m, NULL, &s, &r)) goto out;
  PD_CHECK_INT(st, r.count, 2);
  PD_CHECK_INT(st, r.stats.found, 2);
  PD_CHECK_INT(st, r.stats.dropped_small + r.stats.dropped_large + r.stats.dropped_edge, 0);
  if (r.count != 2) goto free;
  const pd_segment_object *a = &r.objects[0], *b = &r.objects[1];
  check_box(st, a, 5, 6, 10, 4, 40);
  check_box(st, b, 40, 30, 3, 7, 21);
  PD_CHECK_NEAR(st, a->cx, 9.5, 1e-12);
  PD_CHECK_NEAR(st, a->cy, 7.5, 1e-12);
  /* a w x h rectangle: axes 4 sqrt(w^2 / 12) and 4 sqrt(h^2 / 12) */
  PD_CHECK_NEAR(st, a->major_axis, 40.0 / sqrt(12.0), 1e-9);
  PD_CHECK_NEAR(st, a->minor_axis, 16.0 / sqrt(12.0), 1e-9);
  PD_CHECK_NEAR(st, a->orientation_deg, 0.0, 1e-9);
  PD_CHECK_NEAR(st, b->orientation_deg, 90.0, 1e-9);
  PD_CHECK_NEAR(st, a->mean_gray, (39 * 100 + 60) / 40.0, 1e-12);
  PD_CHECK_INT(st, a->min_gray, 60);
  PD_CHECK_INT(st, b->min_gray, 150);
  /* crop: box + 10 px per side, clipped at the frame's top-left */
  PD_CHECK_INT(st, a->crop_x, 0);
  PD_CHECK_INT(st, a->crop_y, 0);
  PD_CHECK_INT(st, a->crop_width, 25);
  PD_CHECK_INT(st, a->crop_height, 20);
  PD_CHECK_INT(st, b->crop_x, 30);
  PD_CHECK_INT(st, b->crop_y, 20);
  PD_CHECK_INT(st, b->crop_width, 23);
  PD_CHECK_INT(st, b->crop_height, 27);
  PD_CHECK_INT(st, r.crop_bytes, 25 * 20 + 23 * 27);
  /* background -> 255, 100 / 200 -> 128 (rounded), 60 / 200 -> 77 */
  PD_CHECK_INT(st, a->crop[0], 255);
  PD_CHECK_INT(st, a->crop[6 * 25 + 5], 128);
  PD_CHECK_INT(st, a->crop[7 * 25 + 7], 77);
  PD_CHECK_INT(st, b->crop[10 * 23 + 10], 191);
  /* a diagonal line: orientation -45 degrees (y up), major axis along it */
  img d = img_new(40, 40, 1, 8, 200);
  for (int i = 0; i < 20; i++)
    img_set(&d, 10 + i, 10 + i, 50);
  pd_segment_result rd;
  if (!run(st, &d, NULL, &s, &rd)) {
    PD_CHECK_INT(st, rd.count, 1);
    if (rd.count == 1) {
      check_box(st, &rd.objects[0], 10, 10, 20, 20, 20);
      PD_CHECK_NEAR(st, rd.objects[0].orientation_deg, -45.0, 1e-9);
      PD_CHECK(st, rd.objects[0].major_axis > 4.0 * rd.objects[0].minor_axis);
    }
    pd_segment_result_free(&rd);
  }
  free(d.px);
free:
  pd_segment_result_free(&r);
out:
  free(m.px);
}

/* Diagonal neighbours: one object with 8-connectivity, two with 4. */
static void test_connectivity(pd_test_state *st) {
  img m = img_new(30, 30, 1, 8, 220);
  img_rect(&m, 5, 5, 4, 4, 20);  /* (5..8, 5..8) */
  img_rect(&m, 9, 9, 3, 5, 20);  /* touches (8,8) only diagonally at (9,9) */
  img_rect(&m, 20, 5, 3, 3, 20); /* a separate one */
  img_rect(&m, 23, 5, 2, 2, 20); /* side by side with it: joined in both */
  pd_segment_settings s = settings();
  pd_segment_result r;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 2);
    if (r.count == 2) {
      check_box(st, &r.objects[0], 5, 5, 7, 9, 31);
      check_box(st, &r.objects[1], 20, 5, 5, 3, 13);
    }
    pd_segment_result_free(&r);
  }
  s.connectivity = 4;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    PD_CHECK_INT(st, r.stats.found, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 5, 5, 4, 4, 16);
      check_box(st, &r.objects[1], 20, 5, 5, 3, 13);
      check_box(st, &r.objects[2], 9, 9, 3, 5, 15);
    }
    pd_segment_result_free(&r);
  }
  free(m.px);
}

/* Fragments up to merge_gap apart are one object; its box, area and
 * features count its own dark pixels only, not the dilation's. */
static void test_merge(pd_test_state *st) {
  img m = img_new(80, 40, 1, 8, 200);
  img_rect(&m, 10, 10, 5, 5, 50); /* 25 px */
  img_rect(&m, 21, 12, 3, 3, 50); /* 6 background pixels to the right: 9 px */
  img_rect(&m, 40, 10, 4, 4, 50); /* 16 background pixels further: 16 px */
  img_rect(&m, 51, 21, 2, 2, 50); /* 7 apart from it on both axes: 4 px */
  pd_segment_settings s = settings();
  s.merge_gap = 6;
  pd_segment_result r;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    PD_CHECK_INT(st, r.stats.found, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 10, 10, 14, 5, 34);
      PD_CHECK_NEAR(st, r.objects[0].mean_gray, 50.0, 1e-12);
      PD_CHECK_NEAR(st, r.objects[0].cx, (25 * 12.0 + 9 * 22.0) / 34.0, 1e-9);
      check_box(st, &r.objects[1], 40, 10, 4, 4, 16);
      check_box(st, &r.objects[2], 51, 21, 2, 2, 4);
    }
    pd_segment_result_free(&r);
  }
  s.merge_gap = 7; /* the diagonal pair joins too */
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 2);
    if (r.count == 2) {
      check_box(st, &r.objects[0], 10, 10, 14, 5, 34);
      check_box(st, &r.objects[1], 40, 10, 13, 13, 20);
    }
    pd_segment_result_free(&r);
  }
  s.merge_gap = 5; /* 6 apart: separate */
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 4);
    pd_segment_result_free(&r);
  }
  /* an object whose dilation reaches the frame edge is not on the edge */
  img e = img_new(30, 30, 1, 8, 200);
  img_rect(&e, 2, 10, 3, 3, 50);
  s.merge_gap = 10;
  s.keep_edge = 0;
  if (!run(st, &e, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 1);
    PD_CHECK_INT(st, r.stats.dropped_edge, 0);
    if (r.count == 1) check_box(st, &r.objects[0], 2, 10, 3, 3, 9);
    pd_segment_result_free(&r);
  }
  free(e.px);
  free(m.px);
}

/* A small object inside a larger one's crop joins it; its features are
 * those of the union, as if one component had held both. */
static void test_satellites(pd_test_state *st) {
  img m = img_new(70, 60, 1, 8, 200);
  img_rect(&m, 20, 20, 10, 10, 60); /* 100 px; crop 10..39 x 10..39 */
  img_rect(&m, 33, 22, 3, 3, 20);   /* 9 px <= 25, inside the crop: joins */
  img_rect(&m, 20, 34, 6, 6, 40);   /* 36 px > 25, inside the crop: its own object */
  img_rect(&m, 45, 20, 2, 2, 40);   /* outside the crop: its own object */
  pd_segment_settings s = settings();
  s.satellite_area = 0.25;
  pd_segment_result r, u;
  if (run(st, &m, NULL, &s, &r)) goto out;
  PD_CHECK_INT(st, r.count, 3);
  PD_CHECK_INT(st, r.stats.found, 4);
  PD_CHECK_INT(st, r.stats.absorbed, 1);
  if (r.count == 3) {
    const pd_segment_object *a = &r.objects[0];
    check_box(st, a, 20, 20, 16, 10, 109);
    PD_CHECK_NEAR(st, a->cx, (100 * 24.5 + 9 * 34.0) / 109.0, 1e-9);
    PD_CHECK_NEAR(st, a->mean_gray, (100 * 60.0 + 9 * 20.0) / 109.0, 1e-9);
    PD_CHECK_INT(st, a->min_gray, 20);
    PD_CHECK_INT(st, a->crop_width, 36);
    check_box(st, &r.objects[1], 45, 20, 2, 2, 4);
    check_box(st, &r.objects[2], 20, 34, 6, 6, 36);
    /* the same union as one component (a gap of 3 merged): same features */
    pd_segment_settings one = settings();
    one.merge_gap = 3;
    if (!run(st, &m, NULL, &one, &u)) {
      PD_CHECK(st, u.count >= 1);
      if (u.count >= 1) {
        const pd_segment_object *b = &u.objects[0];
        check_box(st, b, 20, 20, 16, 10, 109);
        PD_CHECK_NEAR(st, a->cx, b->cx, 1e-9);
        PD_CHECK_NEAR(st, a->cy, b->cy, 1e-9);
        PD_CHECK_NEAR(st, a->major_axis, b->major_axis, 1e-9);
        PD_CHECK_NEAR(st, a->minor_axis, b->minor_axis, 1e-9);
        PD_CHECK_NEAR(st, a->orientation_deg, b->orientation_deg, 1e-9);
        PD_CHECK_NEAR(st, a->mean_gray, b->mean_gray, 1e-9);
      }
      pd_segment_result_free(&u);
    }
  }
  pd_segment_result_free(&r);
  /* off: four objects */
  s.satellite_area = 0.0;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 4);
    PD_CHECK_INT(st, r.stats.absorbed, 0);
    pd_segment_result_free(&r);
  }
out:
  free(m.px);
}

/* Objects touching each of the four edges: kept or dropped by keep_edge. */
static void test_edges(pd_test_state *st) {
  img m = img_new(50, 40, 1, 8, 240);
  img_rect(&m, 0, 10, 3, 3, 10);  /* left */
  img_rect(&m, 47, 20, 3, 2, 10); /* right */
  img_rect(&m, 20, 0, 2, 2, 10);  /* top */
  img_rect(&m, 30, 38, 4, 2, 10); /* bottom */
  img_rect(&m, 20, 20, 5, 5, 10); /* inside */
  pd_segment_settings s = settings();
  pd_segment_result r;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 5);
    PD_CHECK_INT(st, r.stats.dropped_edge, 0);
    if (r.count == 5) {
      check_box(st, &r.objects[0], 20, 0, 2, 2, 4);
      check_box(st, &r.objects[1], 0, 10, 3, 3, 9);
      check_box(st, &r.objects[2], 20, 20, 5, 5, 25);
      check_box(st, &r.objects[3], 47, 20, 3, 2, 6);
      check_box(st, &r.objects[4], 30, 38, 4, 2, 8);
      /* clipped crops: the right one ends at the frame's edge */
      PD_CHECK_INT(st, r.objects[3].crop_x, 37);
      PD_CHECK_INT(st, r.objects[3].crop_width, 13);
    }
    pd_segment_result_free(&r);
  }
  s.keep_edge = 0;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 1);
    PD_CHECK_INT(st, r.stats.found, 5);
    PD_CHECK_INT(st, r.stats.dropped_edge, 4);
    if (r.count == 1) check_box(st, &r.objects[0], 20, 20, 5, 5, 25);
    pd_segment_result_free(&r);
  }
  free(m.px);
}

/* 16-bit words with 12 significant bits: features on the original values. */
static void test_gray16_12bit(pd_test_state *st) {
  img m = img_new(60, 40, 2, 12, 4000);
  img_rect(&m, 10, 10, 6, 5, 3500); /* 12.5% darker: an object at threshold 0.1 */
  img_set(&m, 12, 12, 1234);
  img_rect(&m, 30, 20, 4, 4, 3700); /* 7.5% darker: not an object */
  img_set(&m, 59, 39, 4095);        /* the largest 12-bit value is fine */
  pd_segment_settings s = settings();
  pd_segment_result r;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 1);
    if (r.count == 1) {
      check_box(st, &r.objects[0], 10, 10, 6, 5, 30);
      PD_CHECK_INT(st, r.objects[0].min_gray, 1234);
      PD_CHECK_NEAR(st, r.objects[0].mean_gray, (29 * 3500 + 1234) / 30.0, 1e-9);
      /* crop: 3500 / 4000 * 255 = 223.1 -> 223; 4095 / 4000 clips to 255 */
      PD_CHECK_INT(st, r.objects[0].crop[10 * r.objects[0].crop_width + 10], 223);
    }
    pd_segment_result_free(&r);
  }
  /* the same frame through the morphological background */
  s.background = PD_SEGMENT_BG_MORPH;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 1);
    if (r.count == 1) check_box(st, &r.objects[0], 10, 10, 6, 5, 30);
    pd_segment_result_free(&r);
  }
  free(m.px);
}

/* A shadowgraph: frame = flat field x transmission. The flat field varies
 * along the columns by 2.5x, so no global threshold separates the objects:
 * the object on the bright side (250 * 0.6 = 150) is brighter than the
 * background on the dark side (100). */
static void test_flat_field(pd_test_state *st) {
  const int w = 120, h = 50;
  img m = img_new(w, h, 1, 8, 0), flat = img_new(w, h, 1, 8, 0);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      unsigned f = 100u + (unsigned)(150 * x / (w - 1));
      img_set(&flat, x, y, f);
      img_set(&m, x, y, f);
    }
  const int bx[3] = {5, 55, 105}, by[3] = {10, 30, 20};
  for (int i = 0; i < 3; i++)
    for (int y = by[i]; y < by[i] + 8; y++)
      for (int x = bx[i]; x < bx[i] + 9; x++)
        img_set(&m, x, y, img_get(&flat, x, y) * 6u / 10u);
  pd_segment_settings s = settings();
  pd_segment_result r;
  /* per-column median */
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 5, 10, 9, 8, 72);
      check_box(st, &r.objects[1], 105, 20, 9, 8, 72);
      check_box(st, &r.objects[2], 55, 30, 9, 8, 72);
      /* normalised crop: the object is ~0.6 * 255 on both sides */
      PD_CHECK(st, abs((int)r.objects[0].crop[12 * r.objects[0].crop_width + 12] - 153) <= 2);
      PD_CHECK(st, abs((int)r.objects[1].crop[12 * r.objects[1].crop_width + 12] - 153) <= 2);
      PD_CHECK_INT(st, r.objects[1].crop[0], 255);
    }
    pd_segment_result_free(&r);
  }
  /* the flat field varying along the rows as well: the column median cannot
   * follow it, the caller's flat field and the morphological background can */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      unsigned f = 60u + (unsigned)(120 * x / (w - 1)) + (unsigned)(70 * y / (h - 1));
      img_set(&flat, x, y, f);
      img_set(&m, x, y, f);
    }
  for (int i = 0; i < 3; i++)
    for (int y = by[i]; y < by[i] + 8; y++)
      for (int x = bx[i]; x < bx[i] + 9; x++)
        img_set(&m, x, y, img_get(&flat, x, y) * 6u / 10u);
  if (!run(st, &m, &flat, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    PD_CHECK_INT(st, r.stats.found, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 5, 10, 9, 8, 72);
      check_box(st, &r.objects[1], 105, 20, 9, 8, 72);
      check_box(st, &r.objects[2], 55, 30, 9, 8, 72);
      /* the crop is 255 * value / flat, rounded: pixel (7, 12) */
      unsigned fv = img_get(&flat, 7, 12), v = img_get(&m, 7, 12);
      PD_CHECK_INT(st, r.objects[0].crop[12 * r.objects[0].crop_width + 12],
                   (int)(255.0 * v / fv + 0.5));
    }
    pd_segment_result_free(&r);
  }
  s.background = PD_SEGMENT_BG_MORPH;
  s.morph_reduction = 2;
  s.morph_size = 31;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 5, 10, 9, 8, 72);
      check_box(st, &r.objects[1], 105, 20, 9, 8, 72);
      check_box(st, &r.objects[2], 55, 30, 9, 8, 72);
    }
    pd_segment_result_free(&r);
  }
  /* without any background model this frame has no object-free threshold:
   * the column median misses the row gradient and finds the dark top rows */
  s.background = PD_SEGMENT_BG_COLUMN_MEDIAN;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK(st, r.count != 3 || r.objects[0].area != 72);
    pd_segment_result_free(&r);
  }
  free(m.px);
  free(flat.px);
}

/* The cap keeps the largest; the area filters count what they drop. */
static void test_cap_and_areas(pd_test_state *st) {
  img m = img_new(100, 20, 1, 8, 200);
  const int side[6] = {2, 6, 3, 5, 4, 1}; /* areas 4 36 9 25 16 1 */
  for (int i = 0; i < 6; i++)
    img_rect(&m, 5 + 15 * i, 5, side[i], side[i], 30);
  pd_segment_settings s = settings();
  s.max_objects = 3;
  pd_segment_result r;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    PD_CHECK_INT(st, r.stats.found, 6);
    PD_CHECK_INT(st, r.stats.dropped_cap, 3);
    if (r.count == 3) {
      check_box(st, &r.objects[0], 20, 5, 6, 6, 36);
      check_box(st, &r.objects[1], 50, 5, 5, 5, 25);
      check_box(st, &r.objects[2], 65, 5, 4, 4, 16);
    }
    pd_segment_result_free(&r);
  }
  /* equal areas at the cap: the first found are kept */
  img e = img_new(60, 10, 1, 8, 200);
  for (int i = 0; i < 5; i++)
    img_rect(&e, 2 + 10 * i, 2, 3, 3, 30);
  s.max_objects = 2;
  if (!run(st, &e, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 2);
    PD_CHECK_INT(st, r.stats.dropped_cap, 3);
    if (r.count == 2) {
      PD_CHECK_INT(st, r.objects[0].x, 2);
      PD_CHECK_INT(st, r.objects[1].x, 12);
    }
    pd_segment_result_free(&r);
  }
  free(e.px);
  s.max_objects = 1000;
  s.min_area = 9;
  s.max_area = 25;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 3);
    PD_CHECK_INT(st, r.stats.dropped_small, 2);
    PD_CHECK_INT(st, r.stats.dropped_large, 1);
    PD_CHECK_INT(st, r.stats.dropped_cap, 0);
    if (r.count == 3) {
      PD_CHECK_INT(st, r.objects[0].area, 9);
      PD_CHECK_INT(st, r.objects[1].area, 25);
      PD_CHECK_INT(st, r.objects[2].area, 16);
    }
    pd_segment_result_free(&r);
  }
  /* no object: a valid answer with zero objects */
  img blank = img_new(16, 16, 1, 8, 255);
  if (!run(st, &blank, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 0);
    PD_CHECK_INT(st, r.stats.found, 0);
    PD_CHECK_INT(st, r.crop_bytes, 0);
    pd_segment_result_free(&r);
  }
  /* crops off: boxes only */
  s.crops = 0;
  s.min_area = 1;
  s.max_area = pd_segment_settings_default().max_area;
  if (!run(st, &m, NULL, &s, &r)) {
    PD_CHECK_INT(st, r.count, 6);
    PD_CHECK(st, r.crop_pixels == NULL);
    if (r.count == 6) PD_CHECK(st, r.objects[0].crop == NULL);
    pd_segment_result_free(&r);
  }
  free(blank.px);
  free(m.px);
}

/* Random frames against a plain flood fill written here: every component's
 * box and area, for 8- and 4-connectivity, odd sizes included. */
typedef struct nbox {
  int x, y, w, h;
} nbox;

static void naive_components(const uint8_t *dark, int w, int h, int conn, int *count, nbox *boxes,
                             long *areas, int cap) {
  int *label = calloc((size_t)w * (size_t)h, sizeof *label);
  int *stack = malloc((size_t)w * (size_t)h * sizeof *stack);
  if (!label || !stack) abort();
  int n = 0;
  for (int start = 0; start < w * h; start++) {
    if (!dark[start] || label[start]) continue;
    int top = 0, x0 = w, y0 = h, x1 = -1, y1 = -1;
    long area = 0;
    stack[top++] = start;
    label[start] = n + 1;
    while (top) {
      int p = stack[--top], x = p % w, y = p / w;
      area++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          if ((!dx && !dy) || (conn == 4 && dx && dy)) continue;
          int xx = x + dx, yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
          int q = yy * w + xx;
          if (dark[q] && !label[q]) {
            label[q] = n + 1;
            stack[top++] = q;
          }
        }
    }
    if (n < cap) {
      boxes[n] = (nbox){x0, y0, x1 - x0 + 1, y1 - y0 + 1};
      areas[n] = area;
    }
    n++;
  }
  *count = n;
  free(label);
  free(stack);
}

static void test_random_frames(pd_test_state *st) {
  enum { CAP = 4096 };
  static nbox boxes[CAP];
  static long areas[CAP];
  unsigned seed = 12345u;
  const int sizes[5][2] = {{1, 1}, {1, 17}, {33, 1}, {37, 23}, {70, 41}};
  for (int t = 0; t < 20; t++) {
    const int w = sizes[t % 5][0], h = sizes[t % 5][1];
    img m = img_new(w, h, 1, 8, 200), flat = img_new(w, h, 1, 8, 200);
    uint8_t *dark = calloc((size_t)w * (size_t)h, 1);
    if (!dark) abort();
    for (int i = 0; i < w * h; i++) {
      seed = seed * 1103515245u + 12345u;
      dark[i] = (seed >> 16) % 100 < 35;
      if (dark[i]) ((uint8_t *)m.px)[i] = 40;
    }
    for (int conn = 4; conn <= 8; conn += 4) {
      pd_segment_settings s = settings();
      s.connectivity = conn;
      s.max_objects = CAP;
      int n = 0;
      naive_components(dark, w, h, conn, &n, boxes, areas, CAP);
      pd_segment_result r;
      /* the flat field given: a column's median would be dark where most
       * of it is */
      if (run(st, &m, &flat, &s, &r)) continue;
      PD_CHECK_INT(st, r.count, n);
      PD_CHECK_INT(st, r.stats.found, n);
      /* both lists sorted by (top, left): pd_segment's by box, the fill's
       * by first pixel in raster order, which is not the same order: match
       * each naive component to one object with the same box and area */
      int matched = 0;
      for (int i = 0; i < n && i < CAP; i++)
        for (int k = 0; k < r.count; k++) {
          const pd_segment_object *o = &r.objects[k];
          if (o->x == boxes[i].x && o->y == boxes[i].y && o->width == boxes[i].w &&
              o->height == boxes[i].h && o->area == areas[i]) {
            matched++;
            break;
          }
        }
      PD_CHECK_INT(st, matched, n);
      pd_segment_result_free(&r);
    }
    free(dark);
    free(m.px);
    free(flat.px);
  }
}

static void expect_error(pd_test_state *st, const pd_segment_frame *f, const pd_segment_frame *flat,
                         const pd_segment_settings *s, int code, const char *n1, const char *n2) {
  pd_segment_result r;
  pd_error err = {0};
  int rc = pd_segment_run(f, flat, s, &r, &err);
  PD_CHECK_INT(st, rc, code);
  PD_CHECK_INT(st, r.count, 0);
  PD_CHECK(st, r.objects == NULL);
  PD_CHECK_CONTAINS(st, err.msg, n1);
  if (n2) PD_CHECK_CONTAINS(st, err.msg, n2);
}

static void test_bad_input(pd_test_state *st) {
  img m = img_new(40, 30, 2, 12, 1000);
  pd_segment_settings s = settings();
  pd_segment_frame f = frame_of(&m);
  pd_segment_frame z = f;
  z.width = 0;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "0x30", "zero");
  z = f;
  z.height = -3;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "40x-3", NULL);
  z = f;
  z.pixels = NULL;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "no pixels", NULL);
  /* bit depth that does not match the storage or the values */
  z = f;
  z.significant_bits = 17;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "17 significant bits", "gray16");
  z = f;
  z.bytes_per_pixel = 1;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "12 significant bits", "gray8");
  z = f;
  z.bytes_per_pixel = 3;
  expect_error(st, &z, NULL, &s, PD_EINVAL, "3 bytes per pixel", NULL);
  img_set(&m, 7, 9, 4096);
  expect_error(st, &f, NULL, &s, PD_EINVAL, "pixel (7, 9)", "4096");
  z = f;
  z.significant_bits = 10;
  img_set(&m, 7, 9, 1000);
  img_set(&m, 39, 29, 1024);
  expect_error(st, &z, NULL, &s, PD_EINVAL, "1024, above 1023", "10 significant bits");
  img_set(&m, 39, 29, 1000);
  /* a flat field of another size or depth */
  img fl = img_new(40, 31, 2, 12, 1000);
  pd_segment_frame ff = frame_of(&fl);
  expect_error(st, &f, &ff, &s, PD_EINVAL, "40x31 gray16", "40x30 gray16");
  img fl8 = img_new(40, 30, 1, 8, 200);
  ff = frame_of(&fl8);
  expect_error(st, &f, &ff, &s, PD_EINVAL, "40x30 gray8", "40x30 gray16");
  /* over the pixel limit: refused before any pixel is read */
  s.max_frame_pixels = 1199;
  z = f;
  z.pixels = (const void *)1; /* never dereferenced */
  expect_error(st, &z, NULL, &s, PD_ELIMIT, "1200 pixels", "1199");
  pd_error err = {0};
  PD_CHECK_INT(st, pd_segment_frame_check(&z, &s, &err), PD_ELIMIT);
  s.max_frame_pixels = 1200;
  PD_CHECK_INT(st, pd_segment_frame_check(&f, &s, &err), PD_OK);
  /* settings */
  pd_segment_settings b = settings();
  b.threshold = 0.0;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "threshold 0", NULL);
  b = settings();
  b.connectivity = 6;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "connectivity 6", NULL);
  b = settings();
  b.min_area = 10;
  b.max_area = 9;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "10..9", NULL);
  b = settings();
  b.max_objects = 0;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "max_objects 0", NULL);
  b = settings();
  b.margin = -1;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "margin -1", NULL);
  b = settings();
  b.merge_gap = 65;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "merge_gap 65", NULL);
  b = settings();
  b.satellite_area = 1.5;
  expect_error(st, &f, NULL, &b, PD_EINVAL, "satellite_area 1.5", NULL);
  free(fl.px);
  free(fl8.px);
  free(m.px);
}

/* Leptonica's messages go to the handler, never to stderr by themselves. */
typedef struct {
  int n;
  char last[256];
} log_sink;

static log_sink *the_sink; /* test-only: leptonica's handler has no context pointer */

static void sink(const char *msg) {
  the_sink->n++;
  snprintf(the_sink->last, sizeof the_sink->last, "%s", msg);
}

static void test_lept_log(pd_test_state *st) {
  log_sink ls = {0};
  the_sink = &ls;
  pd_segment_set_log(sink);
  PD_CHECK_INT(st, pixGetWidth(NULL), 0); /* leptonica reports the NULL */
  PD_CHECK_INT(st, ls.n, 1);
  PD_CHECK_CONTAINS(st, ls.last, "pixGetWidth");
  pd_segment_set_log(NULL);
  PD_CHECK_INT(st, pixGetWidth(NULL), 0);
  PD_CHECK_INT(st, ls.n, 1);
  the_sink = NULL;
}

int main(void) {
  pd_test_state st = {0};
  test_rectangles(&st);
  test_connectivity(&st);
  test_merge(&st);
  test_satellites(&st);
  test_edges(&st);
  test_gray16_12bit(&st);
  test_flat_field(&st);
  test_cap_and_areas(&st);
  test_random_frames(&st);
  test_bad_input(&st);
  test_lept_log(&st);
  return pd_test_finish(&st, "test_segment");
}
