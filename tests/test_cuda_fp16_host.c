/* test_cuda_fp16_host: the CUDA backend's fp16 arithmetic on the host, no
 * GPU and no CUDA needed (plain C over kernels/cuda/pd_cuda_half.h, the
 * element code the fp16 kernels run):
 *  - the rounding helper: known values (ties to even, subnormals, gradual
 *    underflow, overflow to infinity, NaN), every half through float and
 *    back, every midpoint between neighbouring halves and the floats either
 *    side of it, and random floats against the compiler's _Float16;
 *  - each half element function as its kernel uses it (half in, float math,
 *    one rounding where the kernel stores half) against a straightforward
 *    double reference, within the fp16 bound (half a unit in the last
 *    place, 2^-11 relative or 2^-25 absolute, plus the float sums' error);
 *    the moving and comparing ones (slice, roll, max pooling, maxout)
 *    against the CPU ops bit for bit;
 *  - an fp16 plan emulated on the host: each model of test_cuda's fp16
 *    cases (the random-weight test models and the shipped models/ndsb-fast)
 *    run with the fp16 plan's rounding points (weights and inputs rounded
 *    to half, every stored activation rounded to half, convolutions adding
 *    their FP32 sums to the bias as half, dense outputs rounded before the
 *    bias, the layer before softmax in float) against the CPU backend in
 *    FP32 on the same inputs as test_cuda, and once more with every bias
 *    and activation fused into its GEMM's epilogue (one rounding), for
 *    comparison.
 *    The max |dp| it gives is what the GPU's fp16 path should reach; it is
 *    recorded in tests/support/pd_fp16_expect.h with the bound test_cuda
 *    holds the GPU to (which scripts/gpu-check runs), and checked here to
 *    reproduce the record within 25% (the CPU's summation order moves it a
 *    little), so an emulation that stopped rounding, or rounds somewhere
 *    new, fails. With real crops ($PLANKTON_DATA, the val split) the
 *    shipped model is also run on 400 of those (same top-1 on >= 99.9%).
 * PLANKTON_SOURCE_ROOT must name the source tree (meson sets it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda/pd_cuda_half.h"
#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_cpu_ops.h"
#include "pd_cuda_test_models.h"
#include "pd_dataset.h"
#include "pd_fp16_expect.h"
#include "pd_image.h"
#include "pd_model.h"
#include "pd_test.h"
#include "pd_test_model.h"

static uint64_t g_seed = 0x2545f4914f6cdd1dull;

static double uni(double lo, double hi) {
  return lo + (hi - lo) * ((double)(pd_test_rng(&g_seed) >> 11) / 9007199254740992.0);
}

static float bits_f(uint32_t x) {
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

/* ---- the rounding helper ---- */

static void check_known(pd_test_state *st) {
  static const struct {
    float f;
    pd_half h;
    const char *what;
  } k[] = {
      {0.0f, 0x0000, "+0"},
      {-0.0f, 0x8000, "-0"},
      {1.0f, 0x3c00, "1"},
      {-2.0f, 0xc000, "-2"},
      {0.1f, 0x2e66, "0.1"},
      {65504.0f, 0x7bff, "the largest half"},
      {65519.99f, 0x7bff, "just below the midpoint to 65536"},
      {65520.0f, 0x7c00, "the midpoint to 65536: ties to even = inf"},
      {-65520.0f, 0xfc00, "-65520: -inf"},
      {1e6f, 0x7c00, "1e6: inf"},
      {INFINITY, 0x7c00, "inf"},
      {-INFINITY, 0xfc00, "-inf"},
      {6.103515625e-05f, 0x0400, "2^-14, the least normal"},
      {5.9604644775390625e-08f, 0x0001, "2^-24, the least subnormal"},
      {2.98023223876953125e-08f, 0x0000, "2^-25: tie between 0 and 2^-24, to even 0"},
      {2.9802326e-08f, 0x0001, "just above 2^-25"},
      {-2.98023223876953125e-08f, 0x8000, "-2^-25: -0"},
      {8.94069671630859375e-08f, 0x0002, "1.5 x 2^-24: tie, to even 2"},
      {1.490116119384765625e-07f, 0x0002, "2.5 x 2^-24: tie, to even 2"},
      {2.086162567138671875e-07f, 0x0004, "3.5 x 2^-24: tie, to even 4"},
      {6.097555160522461e-05f, 0x03ff, "1023 x 2^-24, the largest subnormal"},
      {6.100535392761230e-05f, 0x0400, "1023.5 x 2^-24: tie, up to the least normal"},
      {1.00048828125f, 0x3c00, "1 + 2^-11: tie, to even 1"},
      {1.00146484375f, 0x3c02, "1 + 3 x 2^-11: tie, to even 1 + 2^-9"},
      {1.0004884f, 0x3c01, "just above 1 + 2^-11"},
      {2049.0f, 0x6800, "2049: tie, to even 2048"},
      {2051.0f, 0x6802, "2051: tie, to even 2052"},
      {1e-10f, 0x0000, "1e-10: 0"},
      {1.4e-45f, 0x0000, "the least float subnormal: 0"},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    const pd_half got = pd_f2h(k[i].f);
    st->checks++;
    if (got != k[i].h) {
      st->failures++;
      fprintf(stderr, "f2h(%.9g) (%s): 0x%04x, want 0x%04x\n", (double)k[i].f, k[i].what, got,
              k[i].h);
    }
  }
  const pd_half nan = pd_f2h(NAN);
  PD_CHECK(st, (nan & 0x7c00) == 0x7c00 && (nan & 0x03ff) != 0);
  PD_CHECK(st, isnan(pd_h2f(0x7e00)) && isnan(pd_h2f(0xfd01)));
  PD_CHECK(st, pd_h2f(0x0001) == 5.9604644775390625e-08f);
  PD_CHECK(st, pd_h2f(0x8001) == -5.9604644775390625e-08f);
  PD_CHECK(st, pd_h2f(0x03ff) == 6.097555160522461e-05f);
  PD_CHECK(st, pd_h2f(0x7bff) == 65504.0f);
  PD_CHECK(st, pd_h2f(0x3555) == 0.333251953125f);
  PD_CHECK(st, isinf(pd_h2f(0x7c00)) && pd_h2f(0x7c00) > 0);
  PD_CHECK(st, isinf(pd_h2f(0xfc00)) && pd_h2f(0xfc00) < 0);
  PD_CHECK(st, signbit(pd_h2f(0x8000)) && pd_h2f(0x8000) == 0.0f);
}

/* Every half through float and back; every midpoint between neighbouring
 * finite halves (ties to even) and the floats on either side of it. */
static void check_exhaustive(pd_test_state *st) {
  long bad_round = 0, bad_mid = 0;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    const pd_half x = (pd_half)h;
    if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff)) continue; /* NaN */
    if (pd_f2h(pd_h2f(x)) != x && ++bad_round <= 5)
      fprintf(stderr, "0x%04x -> %.9g -> 0x%04x\n", x, (double)pd_h2f(x), pd_f2h(pd_h2f(x)));
    if ((x & 0x7fff) >= 0x7c00) continue; /* inf: no upper neighbour */
    const pd_half up = (pd_half)(x + 1);  /* the next half away from zero (0x7bff -> inf) */
    const float a = pd_h2f(x);
    const float b = (up & 0x7fff) == 0x7c00 ? (x & 0x8000 ? -65536.0f : 65536.0f) : pd_h2f(up);
    const float mid = (float)(((double)a + (double)b) / 2); /* exact: 12 significant bits */
    const pd_half even = (x & 1) ? up : x;
    const float below = nextafterf(mid, a), above = nextafterf(mid, b);
    if ((pd_f2h(mid) != even || pd_f2h(below) != x || pd_f2h(above) != up) && ++bad_mid <= 5)
      fprintf(stderr,
              "between 0x%04x and 0x%04x: mid %.9g -> 0x%04x (want 0x%04x), below -> "
              "0x%04x, above -> 0x%04x\n",
              x, up, (double)mid, pd_f2h(mid), even, pd_f2h(below), pd_f2h(above));
  }
  st->checks += 2;
  st->failures += (bad_round > 0) + (bad_mid > 0);
  printf("rounding: 63488 halves round-trip (%ld wrong), 63488 midpoints tie to even and their "
         "neighbours round to the nearer half (%ld wrong)\n",
         bad_round, bad_mid);
}

/* Random floats of every exponent against the compiler's conversion. */
static void check_random(pd_test_state *st) {
#ifdef __FLT16_MAX__
  long bad = 0, n = 0;
  for (int k = 0; k < 2000000; k++) {
    uint32_t x = (uint32_t)(pd_test_rng(&g_seed) >> 32);
    if (k % 2)
      x = (x & 0x807fffffu) | ((uint32_t)(96 + (x >> 23) % 48) << 23); /* near half range */
    const float f = bits_f(x);
    if (isnan(f)) continue;
    n++;
    const _Float16 c = (_Float16)f;
    pd_half want;
    memcpy(&want, &c, sizeof want);
    if (pd_f2h(f) != want && ++bad <= 5)
      fprintf(stderr, "f2h(%a) = 0x%04x, _Float16 0x%04x\n", (double)f, pd_f2h(f), want);
  }
  PD_CHECK_INT(st, bad, 0);
  printf("rounding: %ld random floats: %ld differ from the compiler's _Float16\n", n, bad);
#else
  (void)st;
  printf("rounding: no _Float16 in this compiler: random floats not cross-checked\n");
#endif
}

/* ---- the element functions ---- */

#define U_HALF 4.8828125e-04              /* 2^-11: half's unit roundoff */
#define U_FLOAT 5.9604644775390625e-08    /* 2^-24 */
#define HALF_TINY 2.98023223876953125e-08 /* 2^-25: half a subnormal step */

typedef struct err_stat {
  const char *what;
  long n, bad;
  double worst_ratio; /* largest |got - ref| / bound */
} err_stat;

static void account(err_stat *e, double got, double ref, double bound, size_t at) {
  e->n++;
  const double d = fabs(got - ref);
  if (!(d <= bound)) {
    if (++e->bad <= 3)
      fprintf(stderr,
              "%s: element %zu: got %.9g, double reference %.9g, |diff| %.3g > bound %.3g\n",
              e->what, at, got, ref, d, bound);
  } else if (bound > 0 && d / bound > e->worst_ratio) {
    e->worst_ratio = d / bound;
  }
}

static void report(pd_test_state *st, const err_stat *e) {
  st->checks++;
  if (e->bad) st->failures++;
  printf("element %-22s %7ld values, %ld outside the fp16 bound, largest error %.2f of it\n",
         e->what, e->n, e->bad, e->worst_ratio);
}

static pd_half *rnd_halves(size_t n, double lo, double hi) {
  pd_half *h = malloc(n * sizeof *h);
  for (size_t i = 0; i < n; i++)
    h[i] = pd_f2h((float)uni(lo, hi));
  return h;
}

static float *to_floats(const pd_half *h, size_t n) {
  float *f = malloc(n * sizeof *f);
  for (size_t i = 0; i < n; i++)
    f[i] = pd_h2f(h[i]);
  return f;
}

static void check_bias_act(pd_test_state *st) {
  const int rows = 97, cols = 23;
  const size_t n = (size_t)rows * cols;
  pd_half *x = rnd_halves(n, -8, 8);
  float bias[23];
  for (int c = 0; c < cols; c++)
    bias[c] = (float)uni(-2, 2);
  static const float slopes[] = {0.0f, 0.01f, 0.2f};
  err_stat e = {.what = "bias + leaky ReLU"}, ef = {.what = "bias + act (float out)"};
  for (int leaky = 0; leaky <= 1; leaky++)
    for (int s = 0; s < 3; s++) {
      for (size_t i = 0; i < n; i++) {
        const double v = (double)pd_h2f(x[i]) + (double)bias[i % (size_t)cols];
        const double ref = leaky && v <= 0 ? v * (double)slopes[s] : v;
        const float f = elem_h_bias_act(pd_h2f(x[i]), (pd_hidx)i, cols, bias, leaky, slopes[s]);
        /* two float roundings (sum, product), then one to half */
        account(&e, pd_h2f(pd_f2h(f)), ref, fabs(ref) * (U_HALF + 3 * U_FLOAT) + HALF_TINY, i);
        account(&ef, f, ref, fabs(ref) * 3 * U_FLOAT, i);
      }
    }
  report(st, &e);
  report(st, &ef);
  /* a convolution's epilogue: its FP32 sum added to the bias filled in as half, one rounding */
  err_stat ec = {.what = "conv sum + bias fill"};
  for (size_t i = 0; i < n; i++) {
    const float sum = (float)uni(-16, 16);
    const double b = bias[i % (size_t)cols], ref = (double)sum + b;
    const float got = pd_h2f(pd_f2h(sum + pd_h2f(elem_h_bias_fill((pd_hidx)i, cols, bias))));
    account(&ec, got, ref, (fabs(ref) + fabs(b)) * (U_HALF + U_FLOAT) + 2 * HALF_TINY, i);
  }
  report(st, &ec);
  err_stat el = {.what = "leaky ReLU"};
  for (size_t i = 0; i < n; i++) {
    const double v = pd_h2f(x[i]), ref = v > 0 ? v : v * (double)0.1f;
    account(&el, pd_h2f(pd_f2h(elem_h_leaky(x[i], 0.1f))), ref,
            fabs(ref) * (U_HALF + 2 * U_FLOAT) + HALF_TINY, i);
  }
  report(st, &el);
  free(x);
}

static void check_pools(pd_test_state *st) {
  const int images = 3;
  for (int views = 4; views <= 8; views += 4) {
    const pd_hidx len = 37;
    const size_t n_in = (size_t)images * views * len, n_out = (size_t)images * len;
    pd_half *x = rnd_halves(n_in, -3, 3);
    static const char *const names[] = {"cyclic pool mean", "cyclic pool rms", "cyclic pool max"};
    for (int mode = 0; mode < 3; mode++) {
      char what[64];
      snprintf(what, sizeof what, "%s V=%d", names[mode], views);
      err_stat e = {.what = what};
      for (size_t i = 0; i < n_out; i++) {
        const size_t img = i / len, k = i % len;
        double acc = mode == 2 ? -INFINITY : 0, mag = 0;
        for (int v = 0; v < views; v++) {
          const double t = pd_h2f(x[(img * (size_t)views + (size_t)v) * len + k]);
          acc = mode == 2 ? fmax(acc, t) : mode == 1 ? acc + t * t : acc + t;
          mag += mode == 1 ? t * t : fabs(t);
        }
        const double ref = mode == 0 ? acc / views : mode == 1 ? sqrt(acc / views) : acc;
        /* float: a sum of `views` terms, a division (and a root) */
        const double sum_err =
            (views + 2) * U_FLOAT * (mode == 1 ? sqrt(mag / views) : mag / views);
        const float f = elem_h_cyclic_pool(x, (pd_hidx)i, views, len, mode);
        account(&e, pd_h2f(pd_f2h(f)), ref, fabs(ref) * U_HALF + HALF_TINY + sum_err, i);
      }
      report(st, &e);
    }
    free(x);
  }
  /* global average pooling: p pixels of c channels per map */
  const int maps = 6, p = 49, c = 13;
  pd_half *x = rnd_halves((size_t)maps * p * c, -3, 3);
  err_stat e = {.what = "global average pool"};
  for (size_t i = 0; i < (size_t)maps * c; i++) {
    const size_t m = i / (size_t)c, ch = i % (size_t)c;
    double acc = 0, mag = 0;
    for (int k = 0; k < p; k++) {
      const double t = pd_h2f(x[(m * (size_t)p + (size_t)k) * (size_t)c + ch]);
      acc += t;
      mag += fabs(t);
    }
    const double ref = acc / p;
    const float f = elem_h_global_avg_pool(x, (pd_hidx)i, p, c);
    account(&e, pd_h2f(pd_f2h(f)), ref,
            fabs(ref) * U_HALF + HALF_TINY + (p + 2) * U_FLOAT * mag / p, i);
  }
  report(st, &e);
  free(x);
}

static pd_shape shp(int views, int h, int w, int c) {
  pd_shape s = {.views = views, .h = h, .w = w, .c = c};
  return s;
}

/* The functions that move or compare halves against the CPU ops on the
 * same values as floats: bit for bit. */
static void same_as_cpu(pd_test_state *st, const char *what, const pd_half *got, const float *want,
                        size_t n) {
  st->checks++;
  for (size_t i = 0; i < n; i++)
    if (pd_h2f(got[i]) != want[i]) {
      st->failures++;
      fprintf(stderr, "%s: element %zu of %zu: half %.9g, cpu %.9g\n", what, i, n,
              (double)pd_h2f(got[i]), (double)want[i]);
      return;
    }
  printf("element %-22s %7zu values, equal to the CPU op\n", what, n);
}

static void check_moves(pd_test_state *st) {
  int mul[8][8], inv[8];
  for (int a = 0; a < 8; a++) {
    inv[a] = pd_d4_inv(a);
    for (int b = 0; b < 8; b++)
      mul[a][b] = pd_d4_mul(a, b);
  }
  const int images = 2;
  for (int views = 4; views <= 8; views += 4) {
    const int n = 5, c = 3;
    pd_layer l = {.kind = PD_LAYER_CYCLIC_SLICE, .in = shp(1, n, n, c), .out = shp(views, n, n, c)};
    const size_t n_in = (size_t)images * pd_shape_len(l.in), n_out = images * pd_shape_len(l.out);
    pd_half *x = rnd_halves(n_in, -2, 2), *got = malloc(n_out * sizeof *got);
    float *xf = to_floats(x, n_in), *want = malloc(n_out * sizeof *want);
    pd_cpu_cyclic_slice(&l, images, xf, want);
    for (size_t i = 0; i < n_out; i++)
      got[i] = elem_h_cyclic_slice(x, (pd_hidx)i, views, n, c);
    same_as_cpu(st, views == 4 ? "cyclic slice c4" : "cyclic slice d4", got, want, n_out);
    free(x), free(got), free(xf), free(want);

    pd_layer r = {.kind = PD_LAYER_CYCLIC_ROLL,
                  .in = shp(views, 3, 3, 2),
                  .out = shp(views, 3, 3, views * 2)};
    const size_t r_in = (size_t)images * pd_shape_len(r.in), r_out = images * pd_shape_len(r.out);
    x = rnd_halves(r_in, -2, 2), got = malloc(r_out * sizeof *got);
    xf = to_floats(x, r_in), want = malloc(r_out * sizeof *want);
    pd_cpu_cyclic_roll(&r, images, xf, want);
    for (size_t i = 0; i < r_out; i++)
      got[i] = elem_h_cyclic_roll(x, (pd_hidx)i, views, 3, 3, 2, (const int(*)[8])mul, inv);
    same_as_cpu(st, views == 4 ? "cyclic roll c4" : "cyclic roll d4", got, want, r_out);
    free(x), free(got), free(xf), free(want);
  }
  pd_layer mp = {.kind = PD_LAYER_MAXPOOL,
                 .in = shp(4, 9, 9, 3),
                 .out = shp(4, 4, 4, 3),
                 .pool_size = 3,
                 .pool_stride = 2};
  const size_t m_in = (size_t)images * pd_shape_len(mp.in), m_out = images * pd_shape_len(mp.out);
  pd_half *x = rnd_halves(m_in, -2, 2), *got = malloc(m_out * sizeof *got);
  float *xf = to_floats(x, m_in), *want = malloc(m_out * sizeof *want);
  pd_cpu_maxpool(&mp, images, xf, want);
  for (size_t i = 0; i < m_out; i++)
    got[i] = elem_h_maxpool(x, (pd_hidx)i, 9, 9, 3, 4, 4, 3, 2);
  same_as_cpu(st, "max pool", got, want, m_out);
  free(x), free(got), free(xf), free(want);
  pd_layer mo = {
      .kind = PD_LAYER_MAXOUT, .in = shp(4, 1, 1, 12), .out = shp(4, 1, 1, 4), .pieces = 3};
  const size_t o_in = (size_t)images * pd_shape_len(mo.in), o_out = images * pd_shape_len(mo.out);
  x = rnd_halves(o_in, -2, 2), got = malloc(o_out * sizeof *got);
  xf = to_floats(x, o_in), want = malloc(o_out * sizeof *want);
  pd_cpu_maxout(&mo, images, xf, want);
  for (size_t i = 0; i < o_out; i++)
    got[i] = elem_h_maxout(x, (pd_hidx)i, 12, 3);
  same_as_cpu(st, "maxout", got, want, o_out);
  free(x), free(got), free(xf), free(want);
}

/* ---- an fp16 plan, emulated ---- */

/* A tensor between layers: half or float, as the fp16 plan stores it. */
typedef struct etensor {
  int half;
  size_t n;
  pd_half *h;
  float *f;
} etensor;

static void et_set_half(etensor *t, pd_half *h, size_t n) {
  free(t->h), free(t->f);
  t->h = h, t->f = NULL, t->half = 1, t->n = n;
}

static void et_set_float(etensor *t, float *f, size_t n) {
  free(t->h), free(t->f);
  t->h = NULL, t->f = f, t->half = 0, t->n = n;
}

static void et_to_half(etensor *t) {
  if (t->half) return;
  pd_half *h = malloc(t->n * sizeof *h);
  for (size_t i = 0; i < t->n; i++)
    h[i] = pd_f2h(t->f[i]);
  et_set_half(t, h, t->n);
}

static void et_to_float(etensor *t) {
  if (!t->half) return;
  et_set_float(t, to_floats(t->h, t->n), t->n);
}

/* A GEMM layer as cuDNN or cuBLAS computes it in fp16: half weights and
 * input, FP32 sums (the CPU's order), no bias yet. */
static float *gemm_no_bias(const pd_layer *l, int images, const etensor *in) {
  float *w = malloc(l->weight_len * sizeof *w), *zero = calloc(l->bias_len, sizeof *zero);
  for (size_t k = 0; k < l->weight_len; k++)
    w[k] = pd_h2f(pd_f2h(l->weight[k]));
  pd_layer g = *l;
  g.weight = w, g.bias = zero, g.activation = PD_ACT_NONE;
  float *x = to_floats(in->h, in->n);
  const size_t n_out = (size_t)images * pd_shape_len(l->out);
  float *out = malloc(n_out * sizeof *out);
  if (l->kind == PD_LAYER_CONV) {
    const size_t cap = pd_cpu_conv_col_floats(l, 1u << 20);
    float *col = malloc((cap ? cap : 1) * sizeof *col);
    pd_cpu_conv(&g, images, x, out, col, cap);
    free(col);
  } else {
    pd_cpu_dense(&g, images, x, out);
  }
  free(w), free(zero), free(x);
  return out;
}

/* fused: every GEMM (conv and dense) adds the float bias to its FP32 sums
 * and applies the activation before the one rounding to half (what a fused
 * conv + bias + activation epilogue gives), instead of the fp16 plan's
 * convolution adding its sums to the bias rounded to half and the leaky
 * ReLU rounding again, and its dense layers rounding before the bias. */
static void emulate_list(const pd_layer *layers, int count, int is_head, int images, int fused,
                         etensor *cur) {
  for (int i = 0; i < count; i++) {
    const pd_layer *l = &layers[i];
    int j = i + 1;
    while (j < count && layers[j].kind == PD_LAYER_DROPOUT)
      j++;
    const int out_float = j < count ? layers[j].kind == PD_LAYER_SOFTMAX : is_head;
    const size_t n_out = (size_t)images * pd_shape_len(l->out);
    const int leaky = l->activation == PD_ACT_LEAKY_RELU;
    pd_half *oh = NULL;
    float *of = NULL;
    switch (l->kind) {
    case PD_LAYER_CONV:
    case PD_LAYER_DENSE: {
      et_to_half(cur);
      float *g = gemm_no_bias(l, images, cur);
      const int cols = l->kind == PD_LAYER_CONV ? l->filters : l->units;
      const int float_out = l->kind == PD_LAYER_DENSE && out_float;
      for (size_t k = 0; k < n_out; k++) {
        if (l->kind == PD_LAYER_CONV && !fused) {
          /* the output filled with the bias as half, cuDNN's sums added (beta 1), one rounding,
           * then the leaky ReLU kernel */
          const pd_half y = pd_f2h(g[k] + pd_h2f(elem_h_bias_fill((pd_hidx)k, cols, l->bias)));
          g[k] = leaky ? elem_h_leaky(y, l->slope) : pd_h2f(y);
          continue;
        }
        /* cuBLAS's stored output (half, unless it is the float one), then bias + activation */
        const float y = float_out || fused ? g[k] : pd_h2f(pd_f2h(g[k]));
        g[k] = elem_h_bias_act(y, (pd_hidx)k, cols, l->bias, leaky, l->slope);
      }
      if (float_out) {
        et_set_float(cur, g, n_out);
      } else {
        oh = malloc(n_out * sizeof *oh);
        for (size_t k = 0; k < n_out; k++)
          oh[k] = pd_f2h(g[k]);
        free(g);
        et_set_half(cur, oh, n_out);
      }
      break;
    }
    case PD_LAYER_SOFTMAX:
      et_to_float(cur);
      pd_cpu_softmax(cur->f, (size_t)images * l->in.views, l->in.h * l->in.w * l->in.c);
      break;
    case PD_LAYER_DROPOUT:
      break;
    default:
      if (!cur->half) { /* after a float-writing layer: the FP32 op */
        of = malloc(n_out * sizeof *of);
        if (!pd_cpu_layer_forward(l, images, cur->f, of, NULL, 0)) {
          et_set_float(cur, of, n_out);
        } else {
          free(of);
        }
        break;
      }
      if (l->kind == PD_LAYER_LEAKY_RELU) {
        for (size_t k = 0; k < cur->n; k++)
          cur->h[k] = pd_f2h(elem_h_leaky(cur->h[k], l->slope));
        break;
      }
      if (l->kind == PD_LAYER_CYCLIC_POOL || l->kind == PD_LAYER_GLOBAL_AVG_POOL) {
        float *v = malloc(n_out * sizeof *v);
        for (size_t k = 0; k < n_out; k++)
          v[k] = l->kind == PD_LAYER_CYCLIC_POOL
                     ? elem_h_cyclic_pool(cur->h, (pd_hidx)k, l->in.views,
                                          (pd_hidx)((size_t)l->in.h * l->in.w * l->in.c),
                                          (int)l->cpool_mode)
                     : elem_h_global_avg_pool(cur->h, (pd_hidx)k, l->in.h * l->in.w, l->in.c);
        if (out_float) {
          et_set_float(cur, v, n_out);
        } else {
          oh = malloc(n_out * sizeof *oh);
          for (size_t k = 0; k < n_out; k++)
            oh[k] = pd_f2h(v[k]);
          free(v);
          et_set_half(cur, oh, n_out);
        }
        break;
      }
      oh = malloc(n_out * sizeof *oh);
      int mul[8][8], inv[8];
      for (int a = 0; a < 8; a++) {
        inv[a] = pd_d4_inv(a);
        for (int b = 0; b < 8; b++)
          mul[a][b] = pd_d4_mul(a, b);
      }
      for (size_t k = 0; k < n_out; k++) {
        const pd_hidx e = (pd_hidx)k;
        switch (l->kind) {
        case PD_LAYER_CYCLIC_SLICE:
          oh[k] = elem_h_cyclic_slice(cur->h, e, l->out.views, l->in.h, l->in.c);
          break;
        case PD_LAYER_MAXPOOL:
          oh[k] = elem_h_maxpool(cur->h, e, l->in.h, l->in.w, l->in.c, l->out.h, l->out.w,
                                 l->pool_size, l->pool_stride);
          break;
        case PD_LAYER_CYCLIC_ROLL:
          oh[k] = elem_h_cyclic_roll(cur->h, e, l->in.views, l->in.h, l->in.w, l->in.c,
                                     (const int(*)[8])mul, inv);
          break;
        case PD_LAYER_MAXOUT:
          oh[k] = elem_h_maxout(cur->h, e, l->in.c, l->pieces);
          break;
        default:
          oh[k] = 0x7e00; /* unreachable: every kind is handled above */
        }
      }
      et_set_half(cur, oh, n_out);
    }
    if (out_float) et_to_float(cur);
  }
}

/* The fp16 plan's probabilities for n images of `in`, into probs. */
static void emulate(const pd_model *m, const inputs *in, int n, int fused, float *probs) {
  const pd_graph *g = &m->graph;
  pd_half *head = malloc((size_t)n * g->head_in * sizeof *head);
  size_t offset = 0;
  for (int b = 0; b < g->n_branches; b++) {
    const size_t len = pd_graph_branch_input_len(g, b);
    etensor cur = {0};
    pd_half *x = malloc((size_t)n * len * sizeof *x);
    for (size_t k = 0; k < (size_t)n * len; k++)
      x[k] = pd_f2h(in->branch[b][k]);
    et_set_half(&cur, x, (size_t)n * len);
    emulate_list(g->branches[b].layers, g->branches[b].n_layers, 0, n, fused, &cur);
    et_to_half(&cur);
    const size_t width = (size_t)g->branches[b].out.c;
    for (int i = 0; i < n; i++)
      memcpy(head + (size_t)i * g->head_in + offset, cur.h + (size_t)i * width,
             width * sizeof *head);
    offset += width;
    et_set_half(&cur, NULL, 0);
  }
  etensor cur = {0};
  et_set_half(&cur, head, (size_t)n * g->head_in);
  emulate_list(g->head, g->n_head, 1, n, fused, &cur);
  et_to_float(&cur);
  memcpy(probs, cur.f, (size_t)n * g->n_classes * sizeof *probs);
  et_set_float(&cur, NULL, 0);
}

static int top1(const float *row, int c) {
  int best = 0;
  for (int k = 1; k < c; k++)
    if (row[k] > row[best]) best = k;
  return best;
}

static float top_margin(const float *row, int c) {
  float a = -1.0f, b = -1.0f;
  for (int k = 0; k < c; k++) {
    if (row[k] > a) {
      b = a;
      a = row[k];
    } else if (row[k] > b) {
      b = row[k];
    }
  }
  return a - b;
}

typedef struct emu_result {
  double max_dp;
  int same, ties, n;
  double fused_max_dp; /* with the bias in the convolution's epilogue (no rounding before it) */
} emu_result;

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  for (size_t k = 0; k < n; k++) {
    const double e = fabs((double)a[k] - b[k]);
    d = isnan(e) ? INFINITY : e > d ? e : d;
  }
  return d;
}

/* Emulated fp16 against the CPU backend (FP32) on n images. */
static int emulate_vs_cpu(const pd_model *m, const inputs *in, int n, emu_result *r,
                          pd_error *err) {
  const int C = m->n_classes;
  pd_backend *cpu = NULL;
  pd_plan *plan = NULL;
  pd_cpu_options copt = {.threads = 1};
  float *ref = malloc((size_t)n * C * sizeof *ref), *got = malloc((size_t)n * C * sizeof *got);
  int rc = pd_cpu_backend_create(&copt, &cpu, err);
  if (rc == PD_OK) rc = pd_plan_create(cpu, &m->graph, n, &plan, err);
  pd_batch batch = batch_of(m, in, n);
  if (rc == PD_OK) rc = pd_plan_run(plan, &batch, ref, err);
  if (rc == PD_OK) {
    memset(r, 0, sizeof *r);
    emulate(m, in, n, 1, got);
    r->fused_max_dp = max_abs_diff(got, ref, (size_t)n * C);
    emulate(m, in, n, 0, got);
    r->max_dp = max_abs_diff(got, ref, (size_t)n * C);
    r->n = n;
    for (int i = 0; i < n; i++) {
      const float *g = got + (size_t)i * C, *c = ref + (size_t)i * C;
      if (top1(g, C) == top1(c, C))
        r->same++;
      else if (top_margin(c, C) <= 2 * PD_FP16_ISSUE_BOUND)
        r->ties++;
    }
  }
  pd_plan_destroy(plan);
  pd_backend_destroy(cpu);
  free(ref), free(got);
  return rc;
}

static void check_plan(pd_test_state *st, const pd_model *m, int n, const char *label) {
  inputs in;
  make_inputs(m, n, PD_FP16_INPUT_SEED, &in);
  emu_result r;
  pd_error err = {0};
  int rc = emulate_vs_cpu(m, &in, n, &r, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  const pd_fp16_expect *x = pd_fp16_expect_for(label);
  PD_CHECK(st, x != NULL);
  if (rc != PD_OK || !x) {
    fprintf(stderr, "%s: %s\n", label, rc != PD_OK ? err.msg : "no recorded expectation");
    free_inputs(m, &in);
    return;
  }
  printf("fp16 host emulation: %s, %d images: max |p_fp16 - p_cpu| = %.3g (recorded %.3g; the "
         "GPU's fp16 bound %.3g), same top-1 %d/%d (%d near ties); with bias and activation fused "
         "into every GEMM %.3g\n",
         label, n, r.max_dp, x->emulated, x->gpu_bound, r.same, n, r.ties, r.fused_max_dp);
  /* The record is reproduced (up to the CPU's summation order): an
   * emulation that stopped rounding, or rounds somewhere new, fails here. */
  PD_CHECK(st, fabs(r.max_dp - x->emulated) <= 0.25 * x->emulated);
  PD_CHECK(st, x->gpu_bound <= PD_FP16_ISSUE_BOUND || !x->meets_issue_bound);
  PD_CHECK_INT(st, r.same + r.ties, n);
  free_inputs(m, &in);
}

/* The shipped model on real val crops (one view each), where they are. */
static void check_real_crops(pd_test_state *st, const pd_model *m, const char *root, int want) {
  const char *data = getenv("PLANKTON_DATA");
  char split[4200];
  snprintf(split, sizeof split, "%s/train/splits/ndsb_seed1.tsv", root);
  pd_dataset ds = {0};
  pd_error err = {0};
  char train[4200];
  snprintf(train, sizeof train, "%s/train", data ? data : "");
  struct stat sb;
  if (!data || stat(train, &sb) != 0 || !S_ISDIR(sb.st_mode) || stat(split, &sb) != 0) {
    printf("fp16 host emulation: no real crops (no folder %s or no split %s; PLANKTON_DATA "
           "names the data): synthetic crops only\n",
           data ? train : "$PLANKTON_DATA/train", split);
    return;
  }
  if (pd_dataset_read_split(train, split, "val", &ds, &err) != PD_OK) {
    fprintf(stderr, "real crops: %s\n", err.msg);
    PD_CHECK(st, 0);
    return;
  }
  pd_dataset_limit(&ds, want);
  inputs in = {0};
  for (int b = 0; b < m->n_branches; b++)
    in.branch[b] = calloc((size_t)ds.n * pd_model_branch_input_len(m, b), sizeof(float));
  const pd_image_limits limits = pd_image_limits_default();
  int n = 0;
  for (int s = 0; s < ds.n; s++) {
    pd_gray_image img;
    if (pd_image_load_file(ds.samples[s].path, &limits, &img, &err) != PD_OK) continue;
    float *slots[PD_MAX_BRANCHES];
    for (int b = 0; b < m->n_branches; b++)
      slots[b] = in.branch[b] + (size_t)n * pd_model_branch_input_len(m, b);
    pd_model_fill_view(m, img.pixels, img.width, img.height, NULL, slots);
    pd_gray_image_free(&img);
    n++;
  }
  in.n = n;
  PD_CHECK(st, n >= ds.n * 9 / 10);
  emu_result r;
  int rc = n > 0 ? emulate_vs_cpu(m, &in, n, &r, &err) : PD_EINVAL;
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc == PD_OK) {
    printf("fp16 host emulation: %s on %d real val crops: max |p_fp16 - p_cpu| = %.3g, same "
           "top-1 %d/%d = %.2f%% (%d near ties); with bias and activation fused into every GEMM "
           "%.3g\n",
           m->name, n, r.max_dp, r.same, n, 100.0 * r.same / n, r.ties, r.fused_max_dp);
    char key[96];
    snprintf(key, sizeof key, "%s val crops", m->name);
    const pd_fp16_expect *x = pd_fp16_expect_for(key);
    PD_CHECK(st, x && fabs(r.max_dp - x->emulated) <= 0.25 * x->emulated);
    PD_CHECK(st, r.same + r.ties >= n - n / 1000);
  } else {
    fprintf(stderr, "real crops: %s\n", err.msg);
  }
  free_inputs(m, &in);
  pd_dataset_free(&ds);
}

int main(void) {
  pd_test_state state = {0}, *st = &state;
  const char *root = getenv("PLANKTON_SOURCE_ROOT");
  if (!root) {
    fprintf(stderr, "test_cuda_fp16_host: PLANKTON_SOURCE_ROOT is not set\n");
    return 1;
  }
  check_known(st);
  check_exhaustive(st);
  check_random(st);
  check_bias_act(st);
  check_pools(st);
  check_moves(st);

  test_model models[3] = PD_CUDA_TEST_MODELS;
  for (int i = 0; i < 3; i++) {
    if (load_model(st, root, &models[i]) != PD_OK) return pd_test_finish(st, "test_cuda_fp16_host");
    check_plan(st, models[i].m, PD_FP16_CASE_IMAGES(i), models[i].m->name);
    pd_model_free(models[i].m);
  }
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/models/ndsb-fast", root);
  pd_model *shipped = NULL;
  pd_error err = {0};
  int rc = pd_model_load(dir, &shipped, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc == PD_OK) {
    check_plan(st, shipped, PD_FP16_CASE_IMAGES(3), shipped->name);
    check_real_crops(st, shipped, root, 400);
    pd_model_free(shipped);
  } else {
    fprintf(stderr, "%s: %s\n", dir, err.msg);
  }
  return pd_test_finish(st, "test_cuda_fp16_host");
}
