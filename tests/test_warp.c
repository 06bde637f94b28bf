/* Unit tests of the preprocessing warp (models/FORMAT.md "Preprocessing"):
 * the affine matrix, exact identity / flip / quarter-turn resampling,
 * hand-computed bilinear samples, the background outside the crop, size
 * features, pd_input_fill_view, and agreement with a direct per-point
 * implementation of the spec under random augmentations. */
#include <stdint.h>
#include <time.h>

#include "pd_input.h"
#include "pd_test.h"
#include "pd_warp.h"

/* ---- building specs by hand ---- */

static pd_input_branch image_branch(int size, pd_rescale rescale, float fit_size, float factor) {
  pd_input_branch b;
  memset(&b, 0, sizeof b);
  b.kind = PD_INPUT_IMAGE;
  b.size = size;
  b.rescale = rescale;
  b.fit_size = fit_size;
  b.factor = factor;
  return b;
}

static pd_input_norm input_spec(bool invert, float background, float mean, float std) {
  pd_input_norm in;
  memset(&in, 0, sizeof in);
  in.invert = invert;
  in.background = background;
  in.mean = mean;
  in.std = std;
  return in;
}

/* The spec's step 6 for an exact pixel value. */
static float norm(const pd_input_norm *in, double v) {
  if (in->invert) v = 255.0 - v;
  return (float)((v / 255.0 - (double)in->mean) / (double)in->std);
}

static uint8_t pattern(int x, int y) {
  return (uint8_t)((x * 37 + y * 91 + x * y * 7) % 256);
}

static uint8_t *pattern_image(int w, int h) {
  uint8_t *img = malloc((size_t)w * (size_t)h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      img[y * w + x] = pattern(x, y);
  return img;
}

/* ---- reference: the spec step by step, one point at a time ---- */

static double ref_pixel(const uint8_t *src, int w, int h, double bg, int x, int y) {
  if (x < 0 || y < 0 || x >= w || y >= h) return bg;
  return src[y * w + x];
}

static float ref_warp_pixel(const pd_input_branch *b, const pd_input_norm *in, const uint8_t *src,
                            int w, int h, const pd_warp_aug *aug, int i, int j) {
  const double pi = 3.14159265358979323846;
  double s = b->rescale == PD_RESCALE_FIT ? (w > h ? w : h) / (double)b->fit_size : b->factor;
  double px = i - (b->size - 1) / 2.0 - aug->tx, py = j - (b->size - 1) / 2.0 - aug->ty;
  px /= aug->zoom;
  py /= aug->zoom;
  px /= sqrt(aug->stretch);
  py *= sqrt(aug->stretch);
  px += tan(aug->shear_deg * pi / 180) * py;
  double th = aug->rotation_deg * pi / 180;
  double rx = cos(th) * px - sin(th) * py, ry = sin(th) * px + cos(th) * py;
  if (aug->flip) rx = -rx;
  double qx = (w - 1) / 2.0 + s * rx, qy = (h - 1) / 2.0 + s * ry;
  double fx = floor(qx), fy = floor(qy), ax = qx - fx, ay = qy - fy;
  int x0 = (int)fx, y0 = (int)fy;
  double bg = in->background;
  double v = (1 - ay) * ((1 - ax) * ref_pixel(src, w, h, bg, x0, y0) +
                         ax * ref_pixel(src, w, h, bg, x0 + 1, y0)) +
             ay * ((1 - ax) * ref_pixel(src, w, h, bg, x0, y0 + 1) +
                   ax * ref_pixel(src, w, h, bg, x0 + 1, y0 + 1));
  return norm(in, v);
}

/* ---- cases ---- */

static void test_identity_square(pd_test_state *st, int n) {
  uint8_t *src = pattern_image(n, n);
  pd_input_branch b = image_branch(n, PD_RESCALE_FIXED, 0, 1.0f);
  pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
  float *out = malloc(sizeof(float) * (size_t)(n * n));
  pd_warp_branch(&b, &in, src, n, n, NULL, out);
  int bad = 0;
  for (int k = 0; k < n * n; k++)
    bad += out[k] != norm(&in, src[k]);
  PD_CHECK_INT(st, bad, 0);
  pd_warp_aug id = pd_warp_aug_identity();
  float *out2 = malloc(sizeof(float) * (size_t)(n * n));
  pd_warp_branch(&b, &in, src, n, n, &id, out2);
  PD_CHECK(st, !memcmp(out, out2, sizeof(float) * (size_t)(n * n)));
  free(out2);
  free(out);
  free(src);
}

/* A 5x3 crop in a 5x5 patch: centred, so patch row j reads crop row j - 1. */
static void test_identity_centring(pd_test_state *st) {
  const int w = 5, h = 3, n = 5;
  uint8_t *src = pattern_image(w, h);
  pd_input_branch b = image_branch(n, PD_RESCALE_FIXED, 0, 1.0f);
  pd_input_norm in = input_spec(false, 200, 0.5f, 0.25f);
  float out[25];
  pd_warp_branch(&b, &in, src, w, h, NULL, out);
  int bad = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < n; i++) {
      double want = (j >= 1 && j <= 3) ? src[(j - 1) * w + i] : 200.0;
      bad += out[j * n + i] != norm(&in, want);
    }
  PD_CHECK_INT(st, bad, 0);
  free(src);
}

static void test_bilinear(pd_test_state *st) {
  const uint8_t src[4] = {0, 100, 200, 50}; /* 2x2: row 0 = 0 100, row 1 = 200 50 */
  pd_input_branch b = image_branch(1, PD_RESCALE_FIXED, 0, 1.0f);
  pd_input_norm in = input_spec(false, 255, 0.0f, 1.0f);
  float out[1];
  /* The single output pixel maps to the crop centre (0.5, 0.5). */
  pd_warp_branch(&b, &in, src, 2, 2, NULL, out);
  PD_CHECK_NEAR(st, out[0], 87.5 / 255.0, 1e-7);
  /* p = -t, so t = (0.25, -0.25) samples (0.25, 0.75):
   * 0.25 * (0.75*0 + 0.25*100) + 0.75 * (0.75*200 + 0.25*50) = 128.125. */
  pd_warp_aug aug = pd_warp_aug_identity();
  aug.tx = 0.25;
  aug.ty = -0.25;
  pd_warp_branch(&b, &in, src, 2, 2, &aug, out);
  PD_CHECK_NEAR(st, out[0], 128.125 / 255.0, 1e-7);
  /* Half a pixel left of the crop: x0 = -1 reads the background (255). */
  aug.tx = 1.0;
  aug.ty = 0.5;
  pd_warp_branch(&b, &in, src, 2, 2, &aug, out);
  PD_CHECK_NEAR(st, out[0], (0.5 * 255 + 0.5 * 0) / 255.0, 1e-7);
  /* Inverted and normalised: v = 255 - 87.5. */
  pd_input_norm inv = input_spec(true, 255, 0.1f, 0.2f);
  pd_warp_branch(&b, &inv, src, 2, 2, NULL, out);
  PD_CHECK_NEAR(st, out[0], ((255 - 87.5) / 255.0 - 0.1f) / 0.2f, 1e-6);
}

static void test_outside(pd_test_state *st) {
  uint8_t *src = pattern_image(9, 7);
  pd_input_branch b = image_branch(11, PD_RESCALE_FIXED, 0, 1.0f);
  pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
  pd_warp_aug aug = pd_warp_aug_identity();
  aug.tx = 1000;
  float out[121];
  pd_warp_branch(&b, &in, src, 9, 7, &aug, out);
  int bad = 0;
  for (int k = 0; k < 121; k++)
    bad += out[k] != norm(&in, 255);
  PD_CHECK_INT(st, bad, 0);
  PD_CHECK_NEAR(st, out[0], -0.05 / 0.15, 1e-6);
  /* A non-default background is what outside reads. */
  pd_input_norm in2 = input_spec(true, 200, 0.0f, 1.0f);
  pd_warp_branch(&b, &in2, src, 9, 7, NULL, out);
  PD_CHECK(st, out[0] == norm(&in2, 200)); /* corner (0,0) of the 11x11 patch is outside */
  PD_CHECK_NEAR(st, out[0], 55.0 / 255.0, 1e-7);
  PD_CHECK(st, out[5 * 11 + 5] == norm(&in2, src[3 * 9 + 4])); /* centre on centre */
  /* A non-finite augmentation samples only background (and does not crash). */
  aug = pd_warp_aug_identity();
  aug.zoom = 0.0;
  pd_warp_branch(&b, &in2, src, 9, 7, &aug, out);
  PD_CHECK(st, out[0] == norm(&in2, 200));
  free(src);
}

static void test_affine_matrix(pd_test_state *st) {
  pd_input_branch fit = image_branch(95, PD_RESCALE_FIT, 85.0f, 0);
  pd_affine m = pd_warp_affine(&fit, 40, 100, NULL);
  double s = 100.0 / 85.0;
  PD_CHECK_NEAR(st, m.a[0], s, 1e-12);
  PD_CHECK_NEAR(st, m.a[4], s, 1e-12);
  PD_CHECK(st, m.a[1] == 0.0 && m.a[3] == 0.0);
  PD_CHECK_NEAR(st, m.a[2], 19.5 - s * 47.0, 1e-12);
  PD_CHECK_NEAR(st, m.a[5], 49.5 - s * 47.0, 1e-12);
  m = pd_warp_affine(&fit, 130, 60, NULL); /* max(w, h) is the width now */
  PD_CHECK_NEAR(st, m.a[0], 130.0 / 85.0, 1e-12);
  PD_CHECK_NEAR(st, m.a[4], 130.0 / 85.0, 1e-12);

  pd_input_branch fixed = image_branch(47, PD_RESCALE_FIXED, 0, 5.0f);
  pd_warp_aug aug = pd_warp_aug_identity();
  aug.zoom = 2.0;
  aug.tx = 3.0;
  aug.ty = -1.0;
  m = pd_warp_affine(&fixed, 200, 100, &aug);
  PD_CHECK_NEAR(st, m.a[0], 2.5, 1e-12);
  PD_CHECK_NEAR(st, m.a[4], 2.5, 1e-12);
  PD_CHECK_NEAR(st, m.a[2], 99.5 - 2.5 * (23.0 + 3.0), 1e-12);
  PD_CHECK_NEAR(st, m.a[5], 49.5 - 2.5 * (23.0 - 1.0), 1e-12);

  /* Stretch t: x / sqrt(t), y * sqrt(t); shear: x += tan(sigma) * y; flip negates x. */
  aug = pd_warp_aug_identity();
  aug.stretch = 4.0;
  aug.shear_deg = 45.0;
  aug.flip = true;
  m = pd_warp_affine(&fixed, 100, 100, &aug);
  PD_CHECK_NEAR(st, m.a[0], -5.0 * 0.5, 1e-12);
  PD_CHECK_NEAR(st, m.a[1], -5.0 * 2.0, 1e-12); /* -(tan 45 * 2) */
  PD_CHECK_NEAR(st, m.a[3], 0.0, 1e-12);
  PD_CHECK_NEAR(st, m.a[4], 5.0 * 2.0, 1e-12);
  /* Rotation: (cos -sin; sin cos). */
  aug = pd_warp_aug_identity();
  aug.rotation_deg = 30.0;
  m = pd_warp_affine(&fixed, 100, 100, &aug);
  double c = cos(30.0 * 3.14159265358979323846 / 180),
         sn = sin(30.0 * 3.14159265358979323846 / 180);
  PD_CHECK_NEAR(st, m.a[0], 5.0 * c, 1e-12);
  PD_CHECK_NEAR(st, m.a[1], -5.0 * sn, 1e-12);
  PD_CHECK_NEAR(st, m.a[3], 5.0 * sn, 1e-12);
  PD_CHECK_NEAR(st, m.a[4], 5.0 * c, 1e-12);
}

static void test_flip(pd_test_state *st) {
  const int n = 9;
  uint8_t *src = pattern_image(n, n);
  pd_input_branch b = image_branch(n, PD_RESCALE_FIXED, 0, 1.0f);
  pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
  float plain[81], flipped[81];
  pd_warp_aug aug = pd_warp_aug_identity();
  pd_warp_branch(&b, &in, src, n, n, &aug, plain);
  aug.flip = true;
  pd_warp_branch(&b, &in, src, n, n, &aug, flipped);
  int bad = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < n; i++)
      bad += flipped[j * n + i] != plain[j * n + (n - 1 - i)];
  PD_CHECK_INT(st, bad, 0);
  free(src);
}

/* rotation +90 gives torch.rot90(x, 1): out[j][i] = in[i][n-1-j] (the
 * cyclic_slice convention); -90 gives out[j][i] = in[n-1-i][j]. */
static void test_rotation90(pd_test_state *st) {
  for (int n = 6; n <= 7; n++) {
    uint8_t *src = pattern_image(n, n);
    pd_input_branch b = image_branch(n, PD_RESCALE_FIXED, 0, 1.0f);
    pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
    float out[49];
    pd_warp_aug aug = pd_warp_aug_identity();
    aug.rotation_deg = 90.0;
    pd_warp_branch(&b, &in, src, n, n, &aug, out);
    int bad = 0;
    for (int j = 0; j < n; j++)
      for (int i = 0; i < n; i++)
        bad += out[j * n + i] != norm(&in, src[i * n + (n - 1 - j)]);
    PD_CHECK_INT(st, bad, 0);
    aug.rotation_deg = -90.0;
    pd_warp_branch(&b, &in, src, n, n, &aug, out);
    bad = 0;
    for (int j = 0; j < n; j++)
      for (int i = 0; i < n; i++)
        bad += out[j * n + i] != norm(&in, src[(n - 1 - i) * n + j]);
    PD_CHECK_INT(st, bad, 0);
    aug.rotation_deg = 180.0;
    pd_warp_branch(&b, &in, src, n, n, &aug, out);
    bad = 0;
    for (int k = 0; k < n * n; k++)
      bad += out[k] != norm(&in, src[n * n - 1 - k]);
    PD_CHECK_INT(st, bad, 0);
    free(src);
  }
}

static uint64_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 11;
}

static double rng_uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)rng_next(s) / 9007199254740992.0;
}

static pd_warp_aug random_augment(uint64_t *rng) {
  pd_warp_aug a;
  a.zoom = exp(rng_uniform(rng, log(0.714), log(1.4)));
  a.rotation_deg = rng_uniform(rng, 0, 360);
  a.shear_deg = rng_uniform(rng, -10, 10);
  a.tx = rng_uniform(rng, -8, 8);
  a.ty = rng_uniform(rng, -8, 8);
  a.stretch = exp(rng_uniform(rng, -log(1.2), log(1.2)));
  a.flip = rng_next(rng) & 1;
  return a;
}

/* Against the spec evaluated point by point, for random crops and augmentations. */
static void test_against_reference(pd_test_state *st) {
  uint64_t rng = 12345;
  double worst = 0;
  for (int t = 0; t < 60; t++) {
    int w = 1 + (int)(rng_next(&rng) % 120), h = 1 + (int)(rng_next(&rng) % 120);
    uint8_t *src = pattern_image(w, h);
    pd_input_branch b = t % 2 ? image_branch(47, PD_RESCALE_FIXED, 0, (float)(1 + t % 5))
                              : image_branch(95, PD_RESCALE_FIT, 85.0f, 0);
    pd_input_norm in = input_spec(t % 3 != 0, (float)(t % 3 ? 255 : 128), 0.05f, 0.15f);
    pd_warp_aug aug = t < 2 ? pd_warp_aug_identity() : random_augment(&rng);
    float *out = malloc(sizeof(float) * (size_t)(b.size * b.size));
    pd_warp_branch(&b, &in, src, w, h, &aug, out);
    for (int j = 0; j < b.size; j++)
      for (int i = 0; i < b.size; i++) {
        double d = fabs(out[j * b.size + i] - ref_warp_pixel(&b, &in, src, w, h, &aug, i, j));
        if (d > worst) worst = d;
      }
    free(out);
    free(src);
  }
  PD_CHECK_NEAR(st, worst, 0.0, 1e-5);
}

static double max_diff_to_reference(const pd_input_branch *b, const pd_input_norm *in, int w, int h,
                                    const pd_warp_aug *aug) {
  uint8_t *src = pattern_image(w, h);
  float *out = malloc(sizeof(float) * (size_t)(b->size * b->size));
  pd_warp_branch(b, in, src, w, h, aug, out);
  double worst = 0;
  for (int j = 0; j < b->size; j++)
    for (int i = 0; i < b->size; i++) {
      double d = fabs(out[j * b->size + i] - ref_warp_pixel(b, in, src, w, h, aug, i, j));
      if (d > worst) worst = d;
    }
  free(out);
  free(src);
  return worst;
}

/* Quarter turns make one matrix coefficient ~1e-16 instead of 0: the row
 * span clipping must stay in bounds and exact (this once wrote out of bounds). */
static void test_quarter_turns_clipping(pd_test_state *st) {
  static const double angles[] = {90, 180, 270, -90, 450, 0};
  static const int sizes[][2] = {{40, 130}, {130, 40}, {300, 220}, {3, 200}, {1, 1}};
  pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
  double worst = 0;
  for (size_t a = 0; a < sizeof angles / sizeof angles[0]; a++)
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
      for (int v = 0; v < 3; v++) {
        pd_input_branch b = v == 0   ? image_branch(95, PD_RESCALE_FIT, 85.0f, 0)
                            : v == 1 ? image_branch(47, PD_RESCALE_FIXED, 0, 5.0f)
                                     : image_branch(64, PD_RESCALE_FIXED, 0, 0.5f);
        pd_warp_aug aug = pd_warp_aug_identity();
        aug.rotation_deg = angles[a];
        aug.tx = v == 2 ? 7.5 : 0.0;
        aug.zoom = v == 1 ? 0.714 : 1.0;
        double d = max_diff_to_reference(&b, &in, sizes[k][0], sizes[k][1], &aug);
        if (d > worst) worst = d;
      }
  PD_CHECK_NEAR(st, worst, 0.0, 1e-5);
}

static void test_size_features(pd_test_state *st) {
  pd_input_branch b;
  memset(&b, 0, sizeof b);
  b.kind = PD_INPUT_SIZE_FEATURES;
  b.n_features = 4;
  b.features[0] = PD_FEAT_ASPECT;
  b.features[1] = PD_FEAT_LOG_AREA;
  b.features[2] = PD_FEAT_LOG_WIDTH;
  b.features[3] = PD_FEAT_LOG_HEIGHT;
  float f[4];
  pd_warp_features(&b, 40, 10, f);
  PD_CHECK_NEAR(st, f[0], log(4.0), 1e-6);
  PD_CHECK_NEAR(st, f[1], log(400.0), 1e-6);
  PD_CHECK_NEAR(st, f[2], log(40.0), 1e-6);
  PD_CHECK_NEAR(st, f[3], log(10.0), 1e-6);
  pd_warp_features(&b, 1, 1, f);
  PD_CHECK(st, f[0] == 0.0f && f[1] == 0.0f && f[2] == 0.0f && f[3] == 0.0f);
  pd_warp_features(&b, 7, 21, f);
  PD_CHECK_NEAR(st, f[0], -log(3.0), 1e-6);
}

static void test_preprocess(pd_test_state *st) {
  struct {
    pd_input_norm input;
    pd_input_branch branches[3];
  } *m = calloc(1, sizeof *m);
  m->input = input_spec(true, 255, 0.05f, 0.15f);
  m->branches[0] = image_branch(15, PD_RESCALE_FIT, 12.0f, 0);
  m->branches[1] = image_branch(9, PD_RESCALE_FIXED, 0, 3.0f);
  pd_input_branch *sf = &m->branches[2];
  sf->kind = PD_INPUT_SIZE_FEATURES;
  sf->n_features = 2;
  sf->features[0] = PD_FEAT_LOG_WIDTH;
  sf->features[1] = PD_FEAT_LOG_HEIGHT;
  uint8_t *src = pattern_image(30, 20);
  float a[225], b[81], c[2], ra[225], rb[81], rc[2];
  float *slots[3] = {a, b, c};
  pd_warp_aug aug = pd_warp_aug_identity();
  aug.rotation_deg = 33;
  const pd_input_desc d = {.norm = &m->input, .n_branches = 3, .branches = m->branches};
  pd_input_fill_view(&d, src, 30, 20, &aug, slots);
  pd_warp_branch(&m->branches[0], &m->input, src, 30, 20, &aug, ra);
  pd_warp_branch(&m->branches[1], &m->input, src, 30, 20, &aug, rb);
  pd_warp_features(&m->branches[2], 30, 20, rc);
  PD_CHECK(st, !memcmp(a, ra, sizeof a));
  PD_CHECK(st, !memcmp(b, rb, sizeof b));
  PD_CHECK(st, !memcmp(c, rc, sizeof c));
  PD_CHECK_NEAR(st, c[0], log(30.0), 1e-6);
  free(src);
  free(m);
}

/* Not a check: the per-request cost, for the log. */
static void report_speed(void) {
  uint8_t *src = pattern_image(300, 220);
  pd_input_branch b = image_branch(95, PD_RESCALE_FIT, 85.0f, 0);
  pd_input_norm in = input_spec(true, 255, 0.05f, 0.15f);
  float *out = malloc(sizeof(float) * 95 * 95);
  uint64_t rng = 7;
  struct timespec t0, t1;
  const int reps = 2000;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < reps; r++) {
    pd_warp_aug aug = random_augment(&rng);
    pd_warp_branch(&b, &in, src, 300, 220, &aug, out);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3;
  printf("warp: 95x95 from 300x220: %.1f us per call\n", us / reps);
  free(out);
  free(src);
}

int main(void) {
  pd_test_state st = {0};
  test_identity_square(&st, 6);
  test_identity_square(&st, 7);
  test_identity_centring(&st);
  test_bilinear(&st);
  test_outside(&st);
  test_affine_matrix(&st);
  test_flip(&st);
  test_rotation90(&st);
  test_against_reference(&st);
  test_quarter_turns_clipping(&st);
  test_size_features(&st);
  test_preprocess(&st);
  report_speed();
  return pd_test_finish(&st, "warp");
}
