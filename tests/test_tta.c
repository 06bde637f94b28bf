/* Unit tests of test-time augmentation (pd_tta) and ensembles (pd_ensemble):
 * the Halton transforms are deterministic, prefix-stable, start with the
 * identity, stay in the spec's ranges, and never flip for C4; TTA with one
 * transform equals the plain engine run bit for bit; the TTA answer equals
 * the mean of the plain engine's rows over the same transforms, computed
 * here independently (also with mixed per-image counts that straddle engine
 * batches); an ensemble of a model with itself equals the model; a weighted
 * ensemble of two different random-weight members (different branches and
 * patch sizes) equals the weighted mean of their plain answers; members
 * with different labels are refused naming the member and the label, and a
 * different label order is mapped; ensemble folders load from disk. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_ensemble.h"
#include "pd_servable.h"
#include "pd_model.h"
#include "pd_test.h"
#include "pd_test_model.h"
#include "pd_tta.h"
#include "pd_warp.h"

/* ---- the two member models ---- */

#define YAML_A_HEAD                                                                                \
  "format: 1\n"                                                                                    \
  "name: tiny-c4\n"                                                                                \
  "version: \"1\"\n"

#define YAML_A_BODY                                                                                \
  "symmetry: c4\n"                                                                                 \
  "input: {mean: 0.05, std: 0.15}\n"                                                               \
  "branches:\n"                                                                                    \
  "  - name: a\n"                                                                                  \
  "    input: {kind: image, size: 16, rescale: fit, fit_size: 14}\n"                               \
  "    layers:\n"                                                                                  \
  "      - {type: cyclic_slice}\n"                                                                 \
  "      - {type: conv, filters: 4, kernel: 3}\n"                                                  \
  "      - {type: maxpool}\n"                                                                      \
  "      - {type: cyclic_roll}\n"                                                                  \
  "      - {type: conv, filters: 6, kernel: 3}\n"                                                  \
  "      - {type: global_avg_pool}\n"                                                              \
  "      - {type: cyclic_pool, mode: rms}\n"                                                       \
  "  - name: size\n"                                                                               \
  "    input: {kind: size_features, features: [log_long, log_short]}\n"                            \
  "head:\n"                                                                                        \
  "  layers:\n"                                                                                    \
  "    - {type: dense, units: 4}\n"                                                                \
  "    - {type: softmax}\n"                                                                        \
  "tta:\n"                                                                                         \
  "  count: 6\n"                                                                                   \
  "  zoom: [0.8, 1.25]\n"                                                                          \
  "  translate: [-2, 2]\n"

static const char k_yaml_a[] = YAML_A_HEAD "classes: [alpha, beta, gamma, delta]\n" YAML_A_BODY;
/* Same network, labels in another order. */
static const char k_yaml_a_perm[] =
    YAML_A_HEAD "classes: [gamma, alpha, delta, beta]\n" YAML_A_BODY;
/* Same network, one label differs. */
static const char k_yaml_a_other[] =
    YAML_A_HEAD "classes: [alpha, beta, gamma, epsilon]\n" YAML_A_BODY;

static const pd_test_tensor k_tensors_a[] = {
    {"a.1.weight", 4, {4, 1, 3, 3}},  {"a.1.bias", 1, {4}},
    {"a.4.weight", 4, {6, 16, 3, 3}}, {"a.4.bias", 1, {6}},
    {"head.0.weight", 2, {4, 8}},     {"head.0.bias", 1, {4}},
};
#define N_TENSORS_A 6

static const char k_yaml_b[] = "format: 1\n"
                               "name: tiny-none\n"
                               "version: \"2\"\n"
                               "classes: [alpha, beta, gamma, delta]\n"
                               "input: {mean: 0.0, std: 0.2}\n"
                               "branches:\n"
                               "  - name: img\n"
                               "    input: {kind: image, size: 12, rescale: fixed, factor: 3}\n"
                               "    layers:\n"
                               "      - {type: conv, filters: 5, kernel: 3, stride: 2}\n"
                               "      - {type: global_avg_pool}\n"
                               "head:\n"
                               "  layers:\n"
                               "    - {type: dense, units: 4}\n"
                               "    - {type: softmax}\n"
                               "tta: {count: 3, flip: true}\n";

static const pd_test_tensor k_tensors_b[] = {
    {"img.0.weight", 4, {5, 1, 3, 3}},
    {"img.0.bias", 1, {5}},
    {"head.0.weight", 2, {4, 5}},
    {"head.0.bias", 1, {4}},
};
#define N_TENSORS_B 4

#define N_CLASSES 4
#define N_IMAGES 5

typedef struct crop {
  int w, h;
  uint8_t px[64 * 64];
} crop;

static void make_crops(crop *c) {
  static const int dims[N_IMAGES][2] = {{40, 30}, {23, 51}, {64, 64}, {17, 19}, {50, 33}};
  for (int i = 0; i < N_IMAGES; i++) {
    c[i].w = dims[i][0];
    c[i].h = dims[i][1];
    pd_test_crop(c[i].w, c[i].h, 100 + (uint64_t)i, c[i].px);
  }
}

static pd_model *load_or_die(const char *yaml, const pd_test_tensor *ts, int n, uint64_t seed) {
  pd_model *m = NULL;
  pd_error err = {0};
  if (pd_test_load_model(yaml, ts, n, seed, &m, &err) != PD_OK) {
    fprintf(stderr, "test model does not load: %s\n", err.msg);
    exit(1);
  }
  return m;
}

static pd_backend *backend_or_die(int threads) {
  pd_backend *be = NULL;
  pd_error err = {0};
  pd_cpu_options opt = {.threads = threads};
  if (pd_cpu_backend_create(&opt, &be, &err) != PD_OK) {
    fprintf(stderr, "backend: %s\n", err.msg);
    exit(1);
  }
  return be;
}

/* The plain engine on one slot per (image, transform): rows[i * n + t]. */
static void plain_rows(pd_test_state *st, pd_backend *be, const pd_model *m, const crop *c,
                       int n_img, int n_tta, float *rows) {
  int slots = n_img * n_tta;
  float *in[PD_MAX_BRANCHES] = {0};
  pd_warp_aug *augs = calloc((size_t)n_tta, sizeof *augs);
  pd_error err = {0};
  PD_CHECK_INT(st, pd_tta_transforms(&m->tta, m->symmetry, n_tta, augs, &err), PD_OK);
  for (int b = 0; b < m->n_branches; b++)
    in[b] = calloc((size_t)slots * pd_model_branch_input_len(m, b), sizeof(float));
  for (int i = 0; i < n_img; i++) {
    float *first[PD_MAX_BRANCHES];
    for (int b = 0; b < m->n_branches; b++)
      first[b] = in[b] + (size_t)i * n_tta * pd_model_branch_input_len(m, b);
    pd_model_fill_views(m, c[i].px, c[i].w, c[i].h, augs, n_tta, first);
  }
  pd_plan *plan = NULL;
  PD_CHECK_INT(st, pd_plan_create(be, &m->graph, slots, &plan, &err), PD_OK);
  pd_batch batch = {.n = slots};
  for (int b = 0; b < m->n_branches; b++)
    batch.branch[b] = in[b];
  PD_CHECK_INT(st, pd_plan_run(plan, &batch, rows, &err), PD_OK);
  pd_plan_destroy(plan);
  for (int b = 0; b < m->n_branches; b++)
    free(in[b]);
  free(augs);
}

/* The ensemble path: image i gets counts[i] transforms; out[n_img][N_CLASSES]. */
static int ensemble_probs(pd_backend *be, const pd_ensemble *e, const crop *c, int n_img,
                          const int *counts, int max_batch, float *out, pd_error *err) {
  int total = 0;
  for (int i = 0; i < n_img; i++)
    total += counts[i];
  pd_servable_inputs in;
  int rc = pd_servable_inputs_init(e, total, &in, err);
  if (rc != PD_OK) return rc;
  for (int i = 0, first = 0; rc == PD_OK && i < n_img; first += counts[i], i++)
    rc = pd_servable_inputs_fill(e, c[i].px, c[i].w, c[i].h, counts[i], &in, first, err);
  pd_servable *plan = NULL;
  if (rc == PD_OK) rc = pd_servable_create(be, e, max_batch, &plan, err);
  if (rc == PD_OK) rc = pd_servable_run_slots(plan, &in, n_img, counts, out, err);
  pd_servable_free(plan);
  pd_servable_inputs_free(&in);
  return rc;
}

/* ---- Halton transforms ---- */

static void test_halton_values(pd_test_state *st) {
  /* Base 2, multiplier 1: the van der Corput sequence. */
  PD_CHECK_NEAR(st, pd_tta_halton(1, 0), 0.5, 0);
  PD_CHECK_NEAR(st, pd_tta_halton(2, 0), 0.25, 0);
  PD_CHECK_NEAR(st, pd_tta_halton(3, 0), 0.75, 0);
  PD_CHECK_NEAR(st, pd_tta_halton(6, 0), 0.375, 0);
  /* Base 3, multiplier 2: digits 1 -> 2, 2 -> 1. k = 1: 2/3; k = 2: 1/3; k = 4 = (11)_3: 2/3 + 2/9.
   */
  PD_CHECK_NEAR(st, pd_tta_halton(1, 1), 2.0 / 3, 1e-15);
  PD_CHECK_NEAR(st, pd_tta_halton(2, 1), 1.0 / 3, 1e-15);
  PD_CHECK_NEAR(st, pd_tta_halton(4, 1), 2.0 / 3 + 2.0 / 9, 1e-15);
  PD_CHECK_NEAR(st, pd_tta_halton(0, 3), 0, 0);
  /* Every coordinate in [0, 1); each dimension of the first p^2 points has
   * exactly one point in each of the p^2 cells (a digit permutation keeps it). */
  static const int primes[7] = {2, 3, 5, 7, 11, 13, 17};
  for (int d = 0; d < 7; d++) {
    int p2 = primes[d] * primes[d];
    int *hits = calloc((size_t)p2, sizeof *hits);
    bool in_range = true;
    for (int k = 0; k < p2; k++) {
      double u = pd_tta_halton((uint64_t)k, d);
      in_range = in_range && u >= 0 && u < 1;
      int cell = (int)(u * p2 + 1e-9);
      if (cell >= 0 && cell < p2) hits[cell]++;
    }
    bool once = true;
    for (int c = 0; c < p2; c++)
      once = once && hits[c] == 1;
    PD_CHECK(st, in_range);
    PD_CHECK(st, once);
    free(hits);
  }
}

static bool same_aug(const pd_warp_aug *a, const pd_warp_aug *b) {
  return a->zoom == b->zoom && a->rotation_deg == b->rotation_deg && a->shear_deg == b->shear_deg &&
         a->tx == b->tx && a->ty == b->ty && a->stretch == b->stretch && a->flip == b->flip;
}

static pd_tta_spec full_spec(void) {
  return (pd_tta_spec){.count = 70,
                       .zoom_min = 1 / 1.4f,
                       .zoom_max = 1.4f,
                       .rotation_min = 0,
                       .rotation_max = 360,
                       .shear_min = -10,
                       .shear_max = 10,
                       .translate_min = -8,
                       .translate_max = 8,
                       .stretch_max = 1.2f,
                       .flip = true};
}

static void test_transforms(pd_test_state *st) {
  enum { N = 200 };
  pd_tta_spec spec = full_spec();
  pd_warp_aug a[N], b[N], c[N];
  pd_error err = {0};
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, N, a, &err), PD_OK);
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, N, b, &err), PD_OK);
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, 17, c, &err), PD_OK);
  pd_warp_aug id = pd_warp_aug_identity();
  PD_CHECK(st, same_aug(&a[0], &id));
  bool det = true, prefix = true, in_range = true, at = true;
  int flips = 0, distinct = 0;
  double rot_lo = 1e9, rot_hi = -1e9, z_lo = 1e9, z_hi = 0, below1 = 0;
  for (int k = 0; k < N; k++) {
    det = det && same_aug(&a[k], &b[k]);
    if (k < 17) prefix = prefix && same_aug(&a[k], &c[k]);
    pd_warp_aug one = pd_tta_transform_at(&spec, PD_SYM_NONE, k);
    at = at && same_aug(&a[k], &one);
    if (k == 0) continue;
    const double eps = 1e-9;
    in_range = in_range && a[k].rotation_deg >= 0 && a[k].rotation_deg < 360;
    in_range = in_range && a[k].zoom >= spec.zoom_min * (1 - eps) &&
               a[k].zoom <= spec.zoom_max * (1 + eps);
    in_range = in_range && a[k].shear_deg >= -10 && a[k].shear_deg <= 10;
    in_range = in_range && a[k].tx >= -8 && a[k].tx <= 8 && a[k].ty >= -8 && a[k].ty <= 8;
    in_range = in_range && a[k].stretch >= 1 / 1.2 * (1 - eps) && a[k].stretch <= 1.2 * (1 + eps);
    flips += a[k].flip;
    distinct += !same_aug(&a[k], &a[k - 1]);
    rot_lo = fmin(rot_lo, a[k].rotation_deg);
    rot_hi = fmax(rot_hi, a[k].rotation_deg);
    z_lo = fmin(z_lo, a[k].zoom);
    z_hi = fmax(z_hi, a[k].zoom);
    below1 += a[k].zoom < 1;
  }
  PD_CHECK(st, det);
  PD_CHECK(st, prefix);
  PD_CHECK(st, at);
  PD_CHECK(st, in_range);
  PD_CHECK_INT(st, distinct, N - 1);
  /* Low discrepancy: the extremes are nearly reached and zoom is log-uniform (half below 1). */
  PD_CHECK(st, rot_lo < 3 && rot_hi > 357);
  PD_CHECK(st, z_lo < 0.72 && z_hi > 1.38);
  PD_CHECK_NEAR(st, below1 / (N - 1), 0.5, 0.02);
  PD_CHECK_NEAR(st, (double)flips / (N - 1), 0.5, 0.02);
  /* D4 allows flips too. */
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_D4, N, b, &err), PD_OK);
  int d4_flips = 0;
  for (int k = 0; k < N; k++)
    d4_flips += b[k].flip;
  PD_CHECK_INT(st, d4_flips, flips);
  /* C4: never a flip, even when the spec asks; the other parameters unchanged. */
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_C4, N, b, &err), PD_OK);
  int c4_flips = 0;
  bool rest_same = true;
  for (int k = 0; k < N; k++) {
    c4_flips += b[k].flip;
    pd_warp_aug x = a[k];
    x.flip = false;
    rest_same = rest_same && same_aug(&x, &b[k]);
  }
  PD_CHECK_INT(st, c4_flips, 0);
  PD_CHECK(st, rest_same);
  /* No flips when the spec says none. */
  spec.flip = false;
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, N, b, &err), PD_OK);
  int none_flips = 0;
  for (int k = 0; k < N; k++)
    none_flips += b[k].flip;
  PD_CHECK_INT(st, none_flips, 0);
  /* A NULL spec: identities. */
  PD_CHECK_INT(st, pd_tta_transforms(NULL, PD_SYM_NONE, 3, b, &err), PD_OK);
  PD_CHECK(st, same_aug(&b[2], &id));
}

static void test_transform_errors(pd_test_state *st) {
  pd_tta_spec spec = full_spec();
  pd_warp_aug a[4];
  pd_error err = {0};
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, 0, a, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "count 0");
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, PD_TTA_MAX + 1, a, &err), PD_EINVAL);
  spec.zoom_min = 2.0f;
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, 4, a, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "zoom");
  spec = full_spec();
  spec.stretch_max = 0.5f;
  PD_CHECK_INT(st, pd_tta_transforms(&spec, PD_SYM_NONE, 4, a, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "stretch");
  PD_CHECK_CONTAINS(st, err.msg, "0.5");
}

static void test_average(pd_test_state *st) {
  const float rows[3 * 4] = {0.5f, 0.25f, 0.25f, 0.0f, /* */
                             0.1f, 0.2f,  0.3f,  0.4f, /* */
                             0.0f, 0.0f,  1.0f,  0.0f};
  float out[4];
  pd_tta_average(rows, 3, 4, out);
  PD_CHECK_NEAR(st, out[0], 0.6 / 3, 1e-7);
  PD_CHECK_NEAR(st, out[1], 0.45 / 3, 1e-7);
  PD_CHECK_NEAR(st, out[2], 1.55 / 3, 1e-7);
  PD_CHECK_NEAR(st, out[3], 0.4 / 3, 1e-7);
  pd_tta_average(rows + 4, 1, 4, out);
  PD_CHECK(st, !memcmp(out, rows + 4, sizeof out));
  pd_model m = {.tta = {.count = 0}};
  PD_CHECK_INT(st, pd_tta_default_count(&m.tta), 1);
  m.tta.count = 9;
  PD_CHECK_INT(st, pd_tta_default_count(&m.tta), 9);
}

/* ---- the engine with TTA ---- */

static void test_tta_engine(pd_test_state *st, pd_backend *be, const crop *crops) {
  pd_model *m = load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1);
  pd_ensemble *e = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_ensemble_from_models(&m, NULL, 1, NULL, 0, &e, &err), PD_OK);
  if (!e) return;
  PD_CHECK_INT(st, e->tta_count, 6);
  PD_CHECK(st, !e->is_ensemble);

  /* N = 1 is the plain run, bit for bit. */
  float plain[N_IMAGES * N_CLASSES], got[N_IMAGES * N_CLASSES];
  plain_rows(st, be, m, crops, N_IMAGES, 1, plain);
  int ones[N_IMAGES] = {1, 1, 1, 1, 1};
  PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, ones, 2, got, &err), PD_OK);
  PD_CHECK(st, !memcmp(plain, got, sizeof plain));
  /* Rows are distributions and not all the same (the random net sees the images). */
  bool differ = false;
  for (int i = 0; i < N_IMAGES; i++) {
    double sum = 0;
    for (int c = 0; c < N_CLASSES; c++)
      sum += got[i * N_CLASSES + c];
    PD_CHECK_NEAR(st, sum, 1.0, 1e-5);
    differ = differ || fabs(got[i * N_CLASSES] - got[0]) > 1e-3;
  }
  PD_CHECK(st, differ);

  /* N = 7 equals the mean of the plain engine over the same 7 transforms. */
  enum { T = 7 };
  float rows[N_IMAGES * T * N_CLASSES], want[N_IMAGES * N_CLASSES];
  plain_rows(st, be, m, crops, N_IMAGES, T, rows);
  for (int i = 0; i < N_IMAGES; i++)
    for (int c = 0; c < N_CLASSES; c++) {
      double s = 0;
      for (int t = 0; t < T; t++)
        s += rows[(i * T + t) * N_CLASSES + c];
      want[i * N_CLASSES + c] = (float)(s / T);
    }
  int sevens[N_IMAGES] = {T, T, T, T, T};
  for (int mb = 1; mb <= 16; mb += 5) { /* batches of 1, 6, 11, 16 slots */
    PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, sevens, mb, got, &err), PD_OK);
    double worst = 0;
    for (int k = 0; k < N_IMAGES * N_CLASSES; k++)
      worst = fmax(worst, fabs(got[k] - want[k]));
    PD_CHECK_NEAR(st, worst, 0, 1e-6);
  }
  /* pd_tta_average gives the same. */
  float avg[N_CLASSES];
  pd_tta_average(rows + 2 * T * N_CLASSES, T, N_CLASSES, avg);
  for (int c = 0; c < N_CLASSES; c++)
    PD_CHECK_NEAR(st, avg[c], want[2 * N_CLASSES + c], 1e-7);
  /* TTA changes the answer (the transforms do something). */
  double moved = 0;
  for (int k = 0; k < N_IMAGES * N_CLASSES; k++)
    moved = fmax(moved, fabs(want[k] - plain[k]));
  PD_CHECK(st, moved > 1e-4);

  /* Mixed counts straddling batches of 4: image i uses the first counts[i] transforms. */
  int mixed[N_IMAGES] = {3, 1, 7, 2, 5};
  PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, mixed, 4, got, &err), PD_OK);
  double worst = 0;
  for (int i = 0; i < N_IMAGES; i++)
    for (int c = 0; c < N_CLASSES; c++) {
      double s = 0;
      for (int t = 0; t < mixed[i]; t++)
        s += rows[(i * T + t) * N_CLASSES + c];
      worst = fmax(worst, fabs(got[i * N_CLASSES + c] - s / mixed[i]));
    }
  PD_CHECK_NEAR(st, worst, 0, 1e-6);

  /* Argument errors. */
  pd_servable_inputs in;
  PD_CHECK_INT(st, pd_servable_inputs_init(e, 4, &in, &err), PD_OK);
  PD_CHECK_INT(st, pd_servable_inputs_fill(e, crops[0].px, crops[0].w, crops[0].h, 5, &in, 0, &err),
               PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "exceed the 4 input slots");
  PD_CHECK_INT(st, pd_servable_inputs_fill(e, crops[0].px, crops[0].w, crops[0].h, 0, &in, 0, &err),
               PD_EINVAL);
  pd_servable *plan = NULL;
  PD_CHECK_INT(st, pd_servable_create(be, e, 2, &plan, &err), PD_OK);
  int too_many[2] = {3, 2};
  float out[2 * N_CLASSES];
  PD_CHECK_INT(st, pd_servable_run_slots(plan, &in, 2, too_many, out, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "5 slots exceed");
  int zero[1] = {0};
  PD_CHECK_INT(st, pd_servable_run_slots(plan, &in, 1, zero, out, &err), PD_EINVAL);
  pd_servable_free(plan);
  pd_servable_inputs_free(&in);
  pd_ensemble_free(e);
}

/* ---- ensembles ---- */

static void test_self_ensemble(pd_test_state *st, pd_backend *be, const crop *crops) {
  pd_model *solo = load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1);
  pd_model *pair[2] = {load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1),
                       load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1)};
  pd_ensemble *one = NULL, *two = NULL;
  pd_error err = {0};
  const double w[2] = {1.0, 3.0};
  PD_CHECK_INT(st, pd_ensemble_from_models(&solo, NULL, 1, NULL, 0, &one, &err), PD_OK);
  PD_CHECK_INT(st, pd_ensemble_from_models(pair, w, 2, "self-pair", 0, &two, &err), PD_OK);
  if (!one || !two) return;
  PD_CHECK(st, two->is_ensemble);
  PD_CHECK(st, !strcmp(two->name, "self-pair"));
  PD_CHECK_NEAR(st, two->weights[0], 0.25, 1e-15);
  PD_CHECK_NEAR(st, two->weights[1], 0.75, 1e-15);
  float a[N_IMAGES * N_CLASSES], b[N_IMAGES * N_CLASSES];
  for (int n_tta = 1; n_tta <= 4; n_tta += 3) {
    int counts[N_IMAGES] = {n_tta, n_tta, n_tta, n_tta, n_tta};
    PD_CHECK_INT(st, ensemble_probs(be, one, crops, N_IMAGES, counts, 3, a, &err), PD_OK);
    PD_CHECK_INT(st, ensemble_probs(be, two, crops, N_IMAGES, counts, 3, b, &err), PD_OK);
    double worst = 0;
    for (int k = 0; k < N_IMAGES * N_CLASSES; k++)
      worst = fmax(worst, fabs(a[k] - b[k]));
    PD_CHECK_NEAR(st, worst, 0, 1e-7);
  }
  pd_ensemble_free(one);
  pd_ensemble_free(two);
}

static void test_two_members(pd_test_state *st, pd_backend *be, const crop *crops) {
  pd_model *ma = load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 11);
  pd_model *mb = load_or_die(k_yaml_b, k_tensors_b, N_TENSORS_B, 22);
  float ra[N_IMAGES * 3 * N_CLASSES], rb[N_IMAGES * 3 * N_CLASSES];
  plain_rows(st, be, ma, crops, N_IMAGES, 3, ra);
  plain_rows(st, be, mb, crops, N_IMAGES, 3, rb);
  pd_model *both[2] = {ma, mb};
  const double w[2] = {2.0, 1.0};
  pd_ensemble *e = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_ensemble_from_models(both, w, 2, NULL, 0, &e, &err), PD_OK);
  if (!e) return;
  PD_CHECK_INT(st, e->tta_count, 6); /* the larger member default */
  PD_CHECK(st, !strcmp(e->name, "tiny-c4"));
  float got[N_IMAGES * N_CLASSES];
  int counts[N_IMAGES] = {3, 3, 3, 3, 3};
  PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, counts, 4, got, &err), PD_OK);
  double worst = 0, gap = 0;
  for (int i = 0; i < N_IMAGES; i++)
    for (int c = 0; c < N_CLASSES; c++) {
      double sa = 0, sb = 0;
      for (int t = 0; t < 3; t++) {
        sa += ra[(i * 3 + t) * N_CLASSES + c];
        sb += rb[(i * 3 + t) * N_CLASSES + c];
      }
      double want = (2.0 * sa / 3 + 1.0 * sb / 3) / 3.0;
      worst = fmax(worst, fabs(got[i * N_CLASSES + c] - want));
      gap = fmax(gap, fabs(sa - sb) / 3);
    }
  PD_CHECK_NEAR(st, worst, 0, 1e-6);
  PD_CHECK(st, gap > 1e-3); /* the members really differ */
  pd_ensemble_free(e);
}

static void test_labels(pd_test_state *st, pd_backend *be, const crop *crops) {
  pd_error err = {0};
  pd_ensemble *e = NULL;
  /* One label differs: refused, naming the member and both labels; the models stay the caller's. */
  pd_model *pair[2] = {load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1),
                       load_or_die(k_yaml_a_other, k_tensors_a, N_TENSORS_A, 1)};
  PD_CHECK_INT(st, pd_ensemble_from_models(pair, NULL, 2, NULL, 0, &e, &err), PD_EINVAL);
  PD_CHECK(st, e == NULL);
  PD_CHECK_CONTAINS(st, err.msg, "member 1");
  PD_CHECK_CONTAINS(st, err.msg, "'epsilon'");
  PD_CHECK_CONTAINS(st, err.msg, "'delta'");
  pd_model_free(pair[1]);
  /* A different count of classes. */
  pair[1] = load_or_die(k_yaml_b, k_tensors_b, N_TENSORS_B, 2);
  pd_model *three = NULL;
  char *yaml3 = strdup(k_yaml_b);
  char *at = strstr(yaml3, "classes: [alpha, beta, gamma, delta]");
  memcpy(at, "classes: [alpha, beta, gamma]       ",
         strlen("classes: [alpha, beta, gamma, delta]"));
  at = strstr(yaml3, "units: 4");
  at[7] = '3';
  static const pd_test_tensor t3[] = {{"img.0.weight", 4, {5, 1, 3, 3}},
                                      {"img.0.bias", 1, {5}},
                                      {"head.0.weight", 2, {3, 5}},
                                      {"head.0.bias", 1, {3}}};
  PD_CHECK_INT(st, pd_test_load_model(yaml3, t3, 4, 3, &three, &err), PD_OK);
  free(yaml3);
  pd_model *mixed[3] = {pair[0], pair[1], three};
  if (three) {
    PD_CHECK_INT(st, pd_ensemble_from_models(mixed, NULL, 3, NULL, 0, &e, &err), PD_EINVAL);
    PD_CHECK_CONTAINS(st, err.msg, "member 2");
    PD_CHECK_CONTAINS(st, err.msg, "has 3 classes");
    PD_CHECK_CONTAINS(st, err.msg, "has 4");
  }
  pd_model_free(three);
  pd_model_free(pair[1]);
  /* Bad weights. */
  pair[1] = load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 1);
  const double bad[2] = {1.0, -2.0};
  PD_CHECK_INT(st, pd_ensemble_from_models(pair, bad, 2, NULL, 0, &e, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "weights[1]");
  pd_model_free(pair[1]);

  /* The same labels in another order are mapped by name: with the same
   * weights, member 1's raw row r says r[0] is gamma, r[1] alpha, r[2] delta, r[3] beta. */
  pair[1] = load_or_die(k_yaml_a_perm, k_tensors_a, N_TENSORS_A, 1);
  PD_CHECK_INT(st, pd_ensemble_from_models(pair, NULL, 2, NULL, 0, &e, &err), PD_OK);
  if (!e) return;
  PD_CHECK(st, e->perm[1] != NULL && e->perm[0] == NULL);
  float r[N_IMAGES * N_CLASSES], got[N_IMAGES * N_CLASSES];
  plain_rows(st, be, pair[0], crops, N_IMAGES, 1, r);
  int ones[N_IMAGES] = {1, 1, 1, 1, 1};
  PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, ones, 8, got, &err), PD_OK);
  static const int from_perm[N_CLASSES] = {1, 3, 0, 2}; /* alpha beta gamma delta in member 1 */
  double worst = 0;
  for (int i = 0; i < N_IMAGES; i++)
    for (int c = 0; c < N_CLASSES; c++) {
      double want = 0.5 * r[i * N_CLASSES + c] + 0.5 * r[i * N_CLASSES + from_perm[c]];
      worst = fmax(worst, fabs(got[i * N_CLASSES + c] - want));
    }
  PD_CHECK_NEAR(st, worst, 0, 1e-7);
  PD_CHECK_INT(st, pd_ensemble_class_index(e, "delta"), 3);
  PD_CHECK_INT(st, pd_ensemble_class_index(e, "omega"), -1);
  pd_ensemble_free(e);
}

/* ---- ensemble folders ---- */

static void mkdir_or_die(const char *path) {
  if (mkdir(path, 0700) != 0) {
    perror(path);
    exit(1);
  }
}

static void write_text(const char *dir, const char *name, const char *text) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (pd_test_write_file(path, text, strlen(text)) != 0) {
    perror(path);
    exit(1);
  }
}

static void test_folders(pd_test_state *st, pd_backend *be, const crop *crops) {
  char root[] = "/tmp/pd-test-tta-XXXXXX";
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    exit(1);
  }
  char a[4200], b[4200], other[4200], ens[4200];
  snprintf(a, sizeof a, "%s/a", root);
  snprintf(b, sizeof b, "%s/b", root);
  snprintf(other, sizeof other, "%s/other", root);
  snprintf(ens, sizeof ens, "%s/ens", root);
  mkdir_or_die(a);
  mkdir_or_die(b);
  mkdir_or_die(other);
  mkdir_or_die(ens);
  PD_CHECK_INT(st, pd_test_write_model(a, k_yaml_a, k_tensors_a, N_TENSORS_A, 11), 0);
  PD_CHECK_INT(st, pd_test_write_model(b, k_yaml_b, k_tensors_b, N_TENSORS_B, 22), 0);
  PD_CHECK_INT(st, pd_test_write_model(other, k_yaml_a_other, k_tensors_a, N_TENSORS_A, 1), 0);
  pd_error err = {0};

  write_text(ens, "model.yaml",
             "format: 1\nname: ens-ab\nversion: \"3\"\n"
             "ensemble:\n  members: [../a, ../b]\n  weights: [2, 1]\n"
             "tta: {count: 2}\n");
  pd_ensemble *e = NULL;
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_OK);
  if (!e) fprintf(stderr, "  %s\n", err.msg);
  if (e) {
    PD_CHECK(st, e->is_ensemble);
    PD_CHECK_INT(st, e->n_members, 2);
    PD_CHECK(st, !strcmp(e->name, "ens-ab") && !strcmp(e->version, "3"));
    PD_CHECK_NEAR(st, e->weights[0], 2.0 / 3, 1e-15);
    PD_CHECK_INT(st, e->tta_count, 2);
    PD_CHECK_INT(st, e->n_classes, 4);
    PD_CHECK(st, !strcmp(e->classes[1], "beta"));
    /* The same answer as the ensemble built from the same models in memory. */
    pd_model *both[2] = {load_or_die(k_yaml_a, k_tensors_a, N_TENSORS_A, 11),
                         load_or_die(k_yaml_b, k_tensors_b, N_TENSORS_B, 22)};
    const double w[2] = {2, 1};
    pd_ensemble *mem = NULL;
    PD_CHECK_INT(st, pd_ensemble_from_models(both, w, 2, NULL, 0, &mem, &err), PD_OK);
    float x[N_IMAGES * N_CLASSES], y[N_IMAGES * N_CLASSES];
    int counts[N_IMAGES] = {2, 2, 2, 2, 2};
    PD_CHECK_INT(st, ensemble_probs(be, e, crops, N_IMAGES, counts, 5, x, &err), PD_OK);
    PD_CHECK_INT(st, ensemble_probs(be, mem, crops, N_IMAGES, counts, 5, y, &err), PD_OK);
    PD_CHECK(st, !memcmp(x, y, sizeof x));
    pd_ensemble_free(mem);
    pd_ensemble_free(e);
  }
  /* pd_model_load refuses an ensemble folder and says what it is. */
  pd_model *m = NULL;
  PD_CHECK_INT(st, pd_model_load(ens, &m, &err), PD_EUNSUPP);
  PD_CHECK_CONTAINS(st, err.msg, "ensemble");
  PD_CHECK_CONTAINS(st, err.msg, "list the members' own model folders");
  /* A plain folder loads as one member. */
  PD_CHECK_INT(st, pd_ensemble_load(a, &e, &err), PD_OK);
  if (e) {
    PD_CHECK(st, !e->is_ensemble);
    PD_CHECK_INT(st, e->n_members, 1);
    PD_CHECK_INT(st, e->tta_count, 6);
    PD_CHECK(st, !strcmp(e->name, "tiny-c4"));
    pd_ensemble_free(e);
  }
  /* Errors name the ensemble file, the member and what is wrong. */
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-bad\nversion: \"1\"\n"
             "ensemble:\n  members: [../a, ../other]\n");
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "ens/model.yaml");
  PD_CHECK_CONTAINS(st, err.msg, "member 1");
  PD_CHECK_CONTAINS(st, err.msg, "/other");
  PD_CHECK_CONTAINS(st, err.msg, "'epsilon'");
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-bad\nversion: \"1\"\n"
             "ensemble:\n  members: [../a, ../missing]\n");
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, "model.yaml:5: ensemble member 1");
  PD_CHECK_CONTAINS(st, err.msg, "missing");
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-bad\nversion: \"1\"\n"
             "ensemble:\n  members: [../a, ../b]\n  weights: [1]\n");
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "1 weights for 2 members");
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-bad\nversion: \"1\"\n"
             "ensemble:\n  members: [../a]\n  weights: [0]\n");
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "weight must be > 0");
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-bad\nversion: \"1\"\n"
             "ensemble:\n  members: [../a]\n  extra: 1\n");
  PD_CHECK_INT(st, pd_ensemble_load(ens, &e, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "extra");
  /* Nesting: an ensemble member that is an ensemble. */
  char nest[4200];
  snprintf(nest, sizeof nest, "%s/nest", root);
  mkdir_or_die(nest);
  write_text(ens, "model.yaml",
             "format: 1\nname: ens-ok\nversion: \"1\"\nensemble:\n  members: [../a]\n");
  write_text(nest, "model.yaml",
             "format: 1\nname: nest\nversion: \"1\"\nensemble:\n  members: [../ens]\n");
  PD_CHECK_INT(st, pd_ensemble_load(nest, &e, &err), PD_EUNSUPP);
  PD_CHECK_CONTAINS(st, err.msg, "member 0");
  PD_CHECK_CONTAINS(st, err.msg, "may not be an ensemble");

  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

int main(void) {
  pd_test_state st = {0};
  crop *crops = calloc(N_IMAGES, sizeof *crops);
  make_crops(crops);
  pd_backend *be = backend_or_die(2);
  test_halton_values(&st);
  test_transforms(&st);
  test_transform_errors(&st);
  test_average(&st);
  test_tta_engine(&st, be, crops);
  test_self_ensemble(&st, be, crops);
  test_two_members(&st, be, crops);
  test_labels(&st, be, crops);
  test_folders(&st, be, crops);
  pd_backend_destroy(be);
  free(crops);
  return pd_test_finish(&st, "test_tta");
}
