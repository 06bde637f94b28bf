/* pd_onednn against a direct double-precision reference: convolutions of
 * odd shapes (channel counts and maps that are no multiple of a vector,
 * 1x1, 3x3 and 5x5 kernels, strides 1 and 2, padding 0..2, with and without
 * leaky ReLU), dense layers at several run-time row counts on one op, two
 * slots run from two threads at once, and the precision refusals: bf16
 * where the CPU has no bf16 instructions must fail naming what it runs. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pd_onednn.h"
#include "pd_test.h"

static float *rand_floats(size_t n, unsigned seed, float scale) {
  float *x = malloc((n ? n : 1) * sizeof(float));
  if (!x) exit(1);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    x[i] = scale * (float)((int)(seed >> 16 & 0xffff) - 32768) / 32768.0f;
  }
  return x;
}

static double act_ref(double v, pd_onednn_act act) {
  return act.leaky && v < 0 ? v * act.slope : v;
}

/* Largest |got - ref| relative to the largest |ref| (at least 1e-3). */
static double conv_diff(const pd_onednn_conv_shape *s, const float *in, const float *w,
                        const float *b, pd_onednn_act act, const float *got) {
  const int oh = (s->h + 2 * s->pad - s->kernel) / s->stride + 1;
  const int ow = (s->w + 2 * s->pad - s->kernel) / s->stride + 1;
  double maxd = 0, maxr = 1e-3;
  for (int n = 0; n < s->n; n++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++)
        for (int k = 0; k < s->k; k++) {
          double acc = b[k];
          for (int i = 0; i < s->kernel; i++)
            for (int j = 0; j < s->kernel; j++) {
              int iy = y * s->stride - s->pad + i, ix = x * s->stride - s->pad + j;
              if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
              for (int c = 0; c < s->c; c++)
                acc += (double)w[(((size_t)k * s->kernel + i) * s->kernel + j) * s->c + c] *
                       in[(((size_t)n * s->h + iy) * s->w + ix) * s->c + c];
            }
          double r = act_ref(acc, act);
          double d = fabs(r - got[(((size_t)n * oh + y) * ow + x) * s->k + k]);
          maxd = d > maxd ? d : maxd;
          maxr = fabs(r) > maxr ? fabs(r) : maxr;
        }
  return maxd / maxr;
}

static double dense_diff(int rows, int in_len, int units, const float *in, const float *w,
                         const float *b, pd_onednn_act act, const float *got) {
  double maxd = 0, maxr = 1e-3;
  for (int r = 0; r < rows; r++)
    for (int u = 0; u < units; u++) {
      double acc = b[u];
      for (int i = 0; i < in_len; i++)
        acc += (double)w[(size_t)u * in_len + i] * in[(size_t)r * in_len + i];
      double ref = act_ref(acc, act);
      double d = fabs(ref - got[(size_t)r * units + u]);
      maxd = d > maxd ? d : maxd;
      maxr = fabs(ref) > maxr ? fabs(ref) : maxr;
    }
  return maxd / maxr;
}

static void check_conv(pd_test_state *st, pd_onednn *e, pd_onednn_conv_shape s, int leaky,
                       pd_onednn_precision prec, double tol) {
  const int oh = (s.h + 2 * s.pad - s.kernel) / s.stride + 1;
  const int ow = (s.w + 2 * s.pad - s.kernel) / s.stride + 1;
  const size_t n_in = (size_t)s.n * s.h * s.w * s.c, n_out = (size_t)s.n * oh * ow * s.k;
  const size_t n_w = (size_t)s.k * s.kernel * s.kernel * s.c;
  unsigned seed = (unsigned)(s.h * 131 + s.c * 17 + s.k * 7 + s.kernel + s.stride * 3);
  float *in = rand_floats(n_in, seed, 1.0f);
  float *w = rand_floats(n_w, seed + 1, 1.0f / sqrtf((float)(s.kernel * s.kernel * s.c)));
  float *b = rand_floats((size_t)s.k, seed + 2, 0.2f);
  float *out = malloc(n_out * sizeof(float));
  pd_onednn_act act = {leaky, 0.1f};
  pd_onednn_op *op = NULL;
  pd_error err = {0};
  int rc = pd_onednn_conv_create(e, &s, w, b, act, prec, 1, &op, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) fprintf(stderr, "  conv create: %s\n", err.msg);
  if (rc == PD_OK && out) {
    /* stale output must be overwritten */
    memset(out, 0x7f, n_out * sizeof(float));
    rc = pd_onednn_run(op, 0, 0, in, out, &err);
    PD_CHECK_INT(st, rc, PD_OK);
    double d = rc == PD_OK ? conv_diff(&s, in, w, b, act, out) : 1.0;
    PD_CHECK_NEAR(st, d, 0, tol);
    if (!(d <= tol) || getenv("PD_TEST_VERBOSE"))
      fprintf(stderr, "  %s conv n %d %dx%dx%d -> %d k%d s%d p%d leaky %d [%s]: rel diff %.3g\n",
              pd_onednn_precision_name(prec), s.n, s.h, s.w, s.c, s.k, s.kernel, s.stride, s.pad,
              leaky, pd_onednn_op_impl(op), d);
  }
  pd_onednn_op_destroy(op);
  free(in);
  free(w);
  free(b);
  free(out);
}

typedef struct slot_job {
  pd_onednn_op *op;
  int slot, rows, in_len, units;
  const float *in, *w, *b;
  pd_onednn_act act;
  double diff;
  int rc;
} slot_job;

static void *slot_main(void *arg) {
  slot_job *j = arg;
  float *out = malloc((size_t)j->rows * j->units * sizeof(float));
  pd_error err = {0};
  j->rc = PD_EINTERNAL;
  j->diff = 1.0;
  if (!out) return NULL;
  for (int round = 0; round < 20; round++) {
    j->rc = pd_onednn_run(j->op, j->slot, j->rows, j->in, out, &err);
    if (j->rc != PD_OK) break;
    double d = dense_diff(j->rows, j->in_len, j->units, j->in, j->w, j->b, j->act, out);
    j->diff = round == 0 || d > j->diff ? d : j->diff;
  }
  free(out);
  return NULL;
}

static void check_dense(pd_test_state *st, pd_onednn *e, int in_len, int units, int leaky) {
  const int max_rows = 37;
  float *in = rand_floats((size_t)max_rows * in_len, (unsigned)in_len, 1.0f);
  float *w = rand_floats((size_t)units * in_len, (unsigned)units, 1.0f / sqrtf((float)in_len));
  float *b = rand_floats((size_t)units, 5u, 0.2f);
  float *out = malloc((size_t)max_rows * units * sizeof(float));
  pd_onednn_act act = {leaky, 0.25f};
  pd_onednn_op *op = NULL;
  pd_error err = {0};
  int rc = pd_onednn_dense_create(e, in_len, units, w, b, act, PD_ONEDNN_FP32, 2, &op, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) fprintf(stderr, "  dense create: %s\n", err.msg);
  static const int rows_list[] = {1, 3, 37, 3, 12};
  for (size_t i = 0; rc == PD_OK && out && i < sizeof rows_list / sizeof *rows_list; i++) {
    const int rows = rows_list[i];
    rc = pd_onednn_run(op, 0, rows, in, out, &err);
    PD_CHECK_INT(st, rc, PD_OK);
    double d = rc == PD_OK ? dense_diff(rows, in_len, units, in, w, b, act, out) : 1.0;
    PD_CHECK_NEAR(st, d, 0, 1e-5);
    if (!(d <= 1e-5) || getenv("PD_TEST_VERBOSE"))
      fprintf(stderr, "  dense %d rows %d -> %d leaky %d [%s]: rel diff %.3g\n", rows, in_len,
              units, leaky, pd_onednn_op_impl(op), d);
  }
  if (rc == PD_OK) {
    /* Two slots at once, different row counts and inputs. */
    slot_job jobs[2] = {
        {op, 0, 5, in_len, units, in, w, b, act, 0, 0},
        {op, 1, 9, in_len, units, in + (size_t)5 * in_len, w, b, act, 0, 0},
    };
    pthread_t t[2];
    int started[2];
    for (int k = 0; k < 2; k++)
      started[k] = pthread_create(&t[k], NULL, slot_main, &jobs[k]) == 0;
    for (int k = 0; k < 2; k++) {
      PD_CHECK(st, started[k]);
      if (!started[k]) continue;
      pthread_join(t[k], NULL);
      PD_CHECK_INT(st, jobs[k].rc, PD_OK);
      PD_CHECK_NEAR(st, jobs[k].diff, 0, 1e-5);
    }
    rc = pd_onednn_run(op, 2, 1, in, out, &err);
    PD_CHECK_INT(st, rc, PD_EINVAL);
    PD_CHECK_CONTAINS(st, err.msg, "slot 2");
  }
  pd_onednn_op_destroy(op);
  free(in);
  free(w);
  free(b);
  free(out);
}

int main(void) {
  pd_test_state st = {0};
  pd_error err = {0};
  pd_onednn *e = NULL;
  char info[128], can[64];
  pd_onednn_describe(info, sizeof info);
  pd_onednn_precisions_available(can, sizeof can);
  printf("onednn: %s, precisions: %s\n", info, can);
  PD_CHECK_INT(&st, pd_onednn_create(&e, &err), PD_OK);
  if (!e) return pd_test_finish(&st, "onednn");

  static const struct {
    pd_onednn_conv_shape s;
    int leaky;
  } convs[] = {
      {{2, 7, 9, 3, 5, 3, 1, 1}, 1},     {{1, 13, 11, 17, 24, 3, 2, 1}, 0},
      {{3, 6, 5, 8, 7, 1, 1, 0}, 1},     {{2, 10, 10, 5, 9, 5, 2, 2}, 0},
      {{4, 15, 15, 32, 32, 3, 1, 1}, 1}, {{4, 12, 12, 64, 40, 3, 1, 1}, 1},
      {{1, 1, 1, 3, 4, 3, 1, 1}, 0},     {{2, 9, 7, 16, 16, 3, 2, 0}, 1},
  };
  pd_onednn_precision precs[PD_ONEDNN_PRECISION_COUNT];
  int n_precs = 0;
  for (int p = 0; p < PD_ONEDNN_PRECISION_COUNT; p++)
    if (pd_onednn_precision_available((pd_onednn_precision)p))
      precs[n_precs++] = (pd_onednn_precision)p;
  PD_CHECK(&st, n_precs >= 1 && precs[0] == PD_ONEDNN_FP32);
  for (int p = 0; p < n_precs; p++)
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
      /* bf16 keeps 8 bits of mantissa: about 4e-3 relative per product */
      check_conv(&st, e, convs[i].s, convs[i].leaky, precs[p],
                 precs[p] == PD_ONEDNN_FP32 ? 1e-5 : 2e-2);

  check_dense(&st, e, 7, 3, 0);
  check_dense(&st, e, 33, 17, 1);
  check_dense(&st, e, 1152, 128, 0);

  /* Refusals. */
  if (!pd_onednn_precision_available(PD_ONEDNN_BF16)) {
    PD_CHECK_INT(&st, pd_onednn_precision_check(PD_ONEDNN_BF16, &err), PD_EUNSUPP);
    PD_CHECK_CONTAINS(&st, err.msg, "bf16");
    PD_CHECK_CONTAINS(&st, err.msg, "it runs: fp32");
    pd_onednn_conv_shape s = {1, 8, 8, 8, 8, 3, 1, 1};
    float w[8 * 9 * 8] = {0};
    pd_onednn_op *op = NULL;
    PD_CHECK_INT(
        &st,
        pd_onednn_conv_create(e, &s, w, NULL, (pd_onednn_act){0, 0}, PD_ONEDNN_BF16, 1, &op, &err),
        PD_EUNSUPP);
    PD_CHECK(&st, op == NULL);
    printf("onednn: bf16 refused here: %s\n", err.msg);
  }
  pd_onednn_precision prec;
  PD_CHECK_INT(&st, pd_onednn_precision_parse("fp16", &prec, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(&st, err.msg, "fp16");
  PD_CHECK_INT(&st, pd_onednn_precision_parse("bf16", &prec, &err), PD_OK);
  PD_CHECK(&st, prec == PD_ONEDNN_BF16);
  pd_onednn_conv_shape bad = {1, 2, 2, 1, 1, 5, 1, 0};
  pd_onednn_op *op = NULL;
  float w1[25] = {0};
  PD_CHECK_INT(
      &st,
      pd_onednn_conv_create(e, &bad, w1, NULL, (pd_onednn_act){0, 0}, PD_ONEDNN_FP32, 1, &op, &err),
      PD_EINVAL);
  PD_CHECK_CONTAINS(&st, err.msg, "kernel 5");
  pd_onednn_destroy(e);
  return pd_test_finish(&st, "onednn");
}
