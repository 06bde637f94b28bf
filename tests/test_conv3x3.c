/* pd_conv3x3 (Winograd F(4x4, 3x3) and the small-channel direct kernel) against a direct
 * double-precision convolution, for every kernel table this CPU can run, over shapes that hit every
 * edge: maps smaller than a tile and not a multiple of 4, channel counts that are not multiples of
 * 8 (partial vectors), output widths that take each GEMM block and the scalar tail, one and four
 * views, with and without leaky ReLU; and the same layer run in 2 and 3 parts
 * (pd_conv3x3_run_part, as threads sharing one image) gives the whole run's bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pd_test.h"
#include "pd_conv3x3.h"

static double conv_ref(const pd_layer *l, const float *in, int v, int y, int x, int k) {
  const int H = l->in.h, W = l->in.w, C = l->in.c;
  double s = l->bias[k];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      int iy = y + i - 1, ix = x + j - 1;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      for (int c = 0; c < C; c++)
        s += (double)l->weight[((k * 3 + i) * 3 + j) * C + c] *
             in[(((size_t)v * H + iy) * W + ix) * C + c];
    }
  if (l->activation == PD_ACT_LEAKY_RELU && s < 0) s *= l->slope;
  return s;
}

/* Returns the largest |wino - direct| relative to the largest |direct| (or 1). */
static double check_shape(pd_test_state *st, const pd_conv3x3_kernels *kern, int views, int h,
                          int w, int c, int k, int leaky) {
  pd_layer l = {.kind = PD_LAYER_CONV,
                .filters = k,
                .kernel = 3,
                .stride = 1,
                .pad = 1,
                .activation = leaky ? PD_ACT_LEAKY_RELU : PD_ACT_NONE,
                .slope = 0.1f,
                .in = {views, h, w, c},
                .out = {views, h, w, k}};
  size_t n_in = (size_t)views * h * w * c, n_out = (size_t)views * h * w * k;
  float *in = malloc(n_in * sizeof(float)), *out = malloc(n_out * sizeof(float));
  float *wt = malloc((size_t)k * 9 * c * sizeof(float)), *b = malloc((size_t)k * sizeof(float));
  float *u = malloc(pd_conv3x3_weights_floats(&l) * sizeof(float));
  float *scratch = malloc(pd_conv3x3_scratch_floats(&l) * sizeof(float));
  PD_CHECK(st, in && out && wt && b && u && scratch);
  if (!(in && out && wt && b && u && scratch)) exit(1);
  unsigned s = (unsigned)(views * 7919 + h * 104729 + c * 31 + k);
  for (size_t i = 0; i < n_in; i++) {
    s = s * 1103515245u + 12345u;
    in[i] = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f;
  }
  for (int i = 0; i < k * 9 * c; i++) {
    s = s * 1103515245u + 12345u;
    wt[i] = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f / sqrtf(9.0f * c);
  }
  for (int i = 0; i < k; i++)
    b[i] = 0.05f * (float)(i % 7) - 0.1f;
  l.weight = wt;
  l.bias = b;
  l.weight_len = (size_t)k * 9 * c;
  l.bias_len = (size_t)k;
  pd_conv3x3_prepare_weights(&l, u);
  pd_conv3x3_run(kern, &l, u, in, out, scratch);
  double maxdiff = 0, maxref = 1e-3;
  for (int v = 0; v < views; v++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int o = 0; o < k; o++) {
          double r = conv_ref(&l, in, v, y, x, o);
          double d = fabs(out[(((size_t)v * h + y) * w + x) * k + o] - r);
          maxdiff = d > maxdiff ? d : maxdiff;
          maxref = fabs(r) > maxref ? fabs(r) : maxref;
        }
  double rel = maxdiff / maxref;
  /* Split into parts (as threads sharing one image run it): the same bits. */
  float *part_out = malloc(n_out * sizeof(float));
  PD_CHECK(st, part_out != NULL);
  for (int parts = 2; part_out && parts <= 3; parts++) {
    memset(part_out, 0xff, n_out * sizeof(float)); /* NaNs wherever no part writes */
    for (int part = 0; part < parts; part++)
      pd_conv3x3_run_part(kern, &l, u, in, part_out, scratch, part, parts);
    PD_CHECK(st, memcmp(part_out, out, n_out * sizeof(float)) == 0);
  }
  free(part_out);
  /* F(4x4, 3x3) in float32 trades a few bits for its 4x fewer multiplies
   * (its transforms scale values by up to 8 and back); measured here about
   * 1e-5 of the largest output at 64 input channels, against ~1e-6 direct. */
  PD_CHECK_NEAR(st, rel, 0, 5e-5);
  if (!(rel <= 5e-5) || getenv("PD_TEST_VERBOSE"))
    fprintf(stderr, "  %s: views %d %dx%dx%d -> %d leaky %d: rel diff %.3g\n", kern->name, views, h,
            w, c, k, leaky, rel);
  free(in);
  free(out);
  free(wt);
  free(b);
  free(u);
  free(scratch);
  return rel;
}

int main(void) {
  pd_test_state st = {0};
  const pd_conv3x3_kernels *tables[4];
  const int n_tables = pd_conv3x3_kernels_runnable(tables, 4);
  PD_CHECK(&st, n_tables >= 1 && tables[0] == &pd_conv3x3_kernels_generic);
  /* The best table is the last runnable one (each ISA table supersedes the one before). */
  PD_CHECK(&st, n_tables >= 1 && tables[n_tables - 1] == pd_conv3x3_kernels_best());
  printf("conv3x3: this CPU runs");
  for (int t = 0; t < n_tables; t++)
    printf(" %s", tables[t]->name);
  printf("\n");

  pd_layer not3 = {.kind = PD_LAYER_CONV,
                   .kernel = 5,
                   .stride = 1,
                   .pad = 2,
                   .in = {1, 8, 8, 1},
                   .out = {1, 8, 8, 1}};
  PD_CHECK(&st, !pd_conv3x3_applies(&not3));
  pd_layer strided = {.kind = PD_LAYER_CONV,
                      .kernel = 3,
                      .stride = 2,
                      .pad = 1,
                      .in = {1, 8, 8, 1},
                      .out = {1, 4, 4, 1}};
  PD_CHECK(&st, !pd_conv3x3_applies(&strided));
  pd_layer same = {.kind = PD_LAYER_CONV,
                   .kernel = 3,
                   .stride = 1,
                   .pad = 1,
                   .in = {4, 9, 9, 2},
                   .out = {4, 9, 9, 3}};
  PD_CHECK(&st, pd_conv3x3_applies(&same));

  static const int hw[][2] = {{1, 1}, {2, 3}, {4, 4}, {5, 7}, {11, 11}, {23, 23}, {8, 13}};
  static const int ck[][2] = {{1, 16},  {3, 4},   {4, 12},  {7, 40},  {8, 8},   {13, 12},
                              {16, 24}, {32, 32}, {40, 40}, {17, 96}, {64, 128}};
  double worst = 0;
  for (int t = 0; t < n_tables; t++)
    for (size_t i = 0; i < sizeof hw / sizeof *hw; i++)
      for (size_t j = 0; j < sizeof ck / sizeof *ck; j++)
        for (int views = 1; views <= 4; views += 3) {
          double r = check_shape(&st, tables[t], views, hw[i][0], hw[i][1], ck[j][0], ck[j][1],
                                 (int)(i + j) % 2);
          worst = r > worst ? r : worst;
        }
  /* A map large enough to need several tile blocks. */
  for (int t = 0; t < n_tables; t++)
    worst = fmax(worst, check_shape(&st, tables[t], 4, 95, 95, 16, 8, 1));
  printf("conv3x3: %d kernel table(s), worst relative difference to direct %.3g\n", n_tables,
         worst);
  return pd_test_finish(&st, "conv3x3");
}
