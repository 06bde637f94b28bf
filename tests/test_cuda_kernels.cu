/* test_cuda_kernels: the per-element functions of our CUDA kernels
 * (kernels/cuda/pd_cuda_elem.cuh), run on the host, against the CPU ops they
 * mirror (pd_cpu_* and pd_warp_branch), bit for bit. Needs no GPU: it checks
 * the index arithmetic, the D4 group tables and the warp's arithmetic
 * wherever CUDA is built; the kernels themselves are the same functions in a
 * grid-stride loop (checked on a device by test_cuda). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "pd_cpu_ops.h"
#include "pd_model.h"
#include "pd_warp.h"
}
#include "cuda/pd_cuda_elem.cuh"
#include "pd_test.h"

static uint64_t g_seed = 88172645463325252ull;

static float rnd(void) {
  g_seed ^= g_seed << 13;
  g_seed ^= g_seed >> 7;
  g_seed ^= g_seed << 17;
  return (float)((double)(g_seed >> 11) / 9007199254740992.0 * 4.0 - 2.0);
}

static float *rnd_buf(size_t n) {
  float *b = (float *)malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    b[i] = rnd();
  return b;
}

static pd_shape shp(int views, int h, int w, int c) {
  pd_shape s;
  s.views = views, s.h = h, s.w = w, s.c = c;
  return s;
}

static pd_layer layer(pd_layer_kind kind, pd_shape in, pd_shape out) {
  pd_layer l;
  memset(&l, 0, sizeof l);
  l.kind = kind;
  l.in = in;
  l.out = out;
  snprintf(l.name, sizeof l.name, "%s", pd_layer_kind_name(kind));
  return l;
}

static pd_cuda_d4 group(void) {
  pd_cuda_d4 g;
  for (int a = 0; a < 8; a++) {
    g.inv[a] = pd_d4_inv(a);
    for (int b = 0; b < 8; b++)
      g.mul[a][b] = pd_d4_mul(a, b);
  }
  return g;
}

/* Bitwise equality of n floats; prints the first difference. */
static void same(pd_test_state *st, const char *what, const float *got, const float *want,
                 size_t n) {
  st->checks++;
  for (size_t i = 0; i < n; i++) {
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      st->failures++;
      fprintf(stderr, "%s: element %zu of %zu: kernel %.9g, cpu %.9g\n", what, i, n, got[i],
              want[i]);
      return;
    }
  }
}

static void test_slice(pd_test_state *st) {
  const int images = 2, n = 5, c = 3;
  for (int views = 4; views <= 8; views += 4) {
    pd_layer l = layer(PD_LAYER_CYCLIC_SLICE, shp(1, n, n, c), shp(views, n, n, c));
    float *in = rnd_buf((size_t)images * n * n * c);
    size_t total = (size_t)images * pd_shape_len(l.out);
    float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
    pd_cpu_cyclic_slice(&l, images, in, want);
    for (size_t i = 0; i < total; i++)
      got[i] = elem_cyclic_slice(in, i, views, n, c);
    same(st, views == 4 ? "cyclic_slice c4" : "cyclic_slice d4", got, want, total);
    free(in), free(want), free(got);
  }
}

static void test_roll(pd_test_state *st) {
  const pd_cuda_d4 g = group();
  const int images = 2;
  const int dims[3][2] = {{3, 2}, {4, 1}, {1, 5}}; /* {n, c}: odd, even, flat */
  for (int views = 4; views <= 8; views += 4)
    for (int d = 0; d < 3; d++) {
      const int n = dims[d][0], c = dims[d][1];
      pd_layer l = layer(PD_LAYER_CYCLIC_ROLL, shp(views, n, n, c), shp(views, n, n, views * c));
      float *in = rnd_buf((size_t)images * pd_shape_len(l.in));
      size_t total = (size_t)images * pd_shape_len(l.out);
      float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
      pd_cpu_cyclic_roll(&l, images, in, want);
      for (size_t i = 0; i < total; i++)
        got[i] = elem_cyclic_roll(in, i, views, n, n, c, &g);
      char what[64];
      snprintf(what, sizeof what, "cyclic_roll V=%d n=%d c=%d", views, n, c);
      same(st, what, got, want, total);
      free(in), free(want), free(got);
    }
}

static void test_maxpool(pd_test_state *st) {
  const int cfg[3][4] = {{9, 3, 3, 2}, {8, 2, 2, 2}, {7, 4, 3, 1}}; /* h = w, c, size, stride */
  for (int k = 0; k < 3; k++) {
    const int h = cfg[k][0], c = cfg[k][1], size = cfg[k][2], stride = cfg[k][3];
    const int o = (h - size) / stride + 1, images = 2, views = 4;
    pd_layer l = layer(PD_LAYER_MAXPOOL, shp(views, h, h, c), shp(views, o, o, c));
    l.pool_size = size, l.pool_stride = stride;
    float *in = rnd_buf((size_t)images * pd_shape_len(l.in));
    size_t total = (size_t)images * pd_shape_len(l.out);
    float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
    pd_cpu_maxpool(&l, images, in, want);
    for (size_t i = 0; i < total; i++)
      got[i] = elem_maxpool(in, i, h, h, c, o, o, size, stride);
    same(st, "maxpool", got, want, total);
    free(in), free(want), free(got);
  }
}

static void test_cyclic_pool(pd_test_state *st) {
  const int images = 3, h = 3, c = 5;
  for (int views = 4; views <= 8; views += 4)
    for (int mode = 0; mode < 3; mode++) {
      pd_layer l = layer(PD_LAYER_CYCLIC_POOL, shp(views, h, h, c), shp(1, h, h, c));
      l.cpool_mode = (pd_cyclic_pool_mode)mode;
      float *in = rnd_buf((size_t)images * pd_shape_len(l.in));
      size_t total = (size_t)images * pd_shape_len(l.out), len = (size_t)h * h * c;
      float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
      pd_cpu_cyclic_pool(&l, images, in, want);
      for (size_t i = 0; i < total; i++)
        got[i] = elem_cyclic_pool(in, i, views, len, mode);
      same(st,
           mode == 0   ? "cyclic_pool mean"
           : mode == 1 ? "cyclic_pool rms"
                       : "cyclic_pool max",
           got, want, total);
      free(in), free(want), free(got);
    }
}

static void test_maxout_gap(pd_test_state *st) {
  for (int pieces = 2; pieces <= 3; pieces++) {
    const int images = 2, views = 4, h = 2, c = 6 * pieces / 2;
    pd_layer l = layer(PD_LAYER_MAXOUT, shp(views, h, h, c), shp(views, h, h, c / pieces));
    l.pieces = pieces;
    float *in = rnd_buf((size_t)images * pd_shape_len(l.in));
    size_t total = (size_t)images * pd_shape_len(l.out);
    float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
    pd_cpu_maxout(&l, images, in, want);
    for (size_t i = 0; i < total; i++)
      got[i] = elem_maxout(in, i, c, pieces);
    same(st, "maxout", got, want, total);
    free(in), free(want), free(got);
  }
  const int images = 2, views = 8, h = 4, c = 5;
  pd_layer l = layer(PD_LAYER_GLOBAL_AVG_POOL, shp(views, h, h, c), shp(views, 1, 1, c));
  float *in = rnd_buf((size_t)images * pd_shape_len(l.in));
  size_t total = (size_t)images * pd_shape_len(l.out);
  float *want = (float *)malloc(total * 4), *got = (float *)malloc(total * 4);
  pd_cpu_global_avg_pool(&l, images, in, want);
  for (size_t i = 0; i < total; i++)
    got[i] = elem_global_avg_pool(in, i, h * h, c);
  same(st, "global_avg_pool", got, want, total);
  free(in), free(want), free(got);
}

static void test_bias_act(pd_test_state *st) {
  const size_t rows = 37;
  const int cols = 7;
  float *bias = rnd_buf(cols), *x = rnd_buf(rows * cols);
  float *want = (float *)malloc(rows * cols * 4), *got = (float *)malloc(rows * cols * 4);
  for (int leaky = 0; leaky <= 1; leaky++) {
    memcpy(want, x, rows * cols * 4);
    pd_cpu_bias_act(want, rows, cols, bias, leaky ? PD_ACT_LEAKY_RELU : PD_ACT_NONE, 0.1f);
    for (size_t i = 0; i < rows * cols; i++)
      got[i] = elem_bias_act(x[i], i, cols, bias, leaky, 0.1f);
    same(st, leaky ? "bias + leaky" : "bias", got, want, rows * cols);
  }
  memcpy(want, x, rows * cols * 4);
  pd_cpu_leaky_relu(want, rows * cols, 0.3f);
  for (size_t i = 0; i < rows * cols; i++)
    got[i] = elem_leaky(x[i], 0.3f);
  same(st, "leaky_relu", got, want, rows * cols);
  free(bias), free(x), free(want), free(got);
}

static void test_warp(pd_test_state *st) {
  pd_input_branch br;
  memset(&br, 0, sizeof br);
  br.kind = PD_INPUT_IMAGE;
  pd_input_norm in;
  in.invert = true, in.background = 255.0f, in.mean = 0.05f, in.std = 0.15f;
  const int dims[7][2] = {{40, 30}, {23, 51}, {190, 64}, {1, 1}, {3, 140}, {95, 95}, {0, 0}};
  for (int k = 0; k < 7; k++) {
    const int w = dims[k][0], h = dims[k][1];
    unsigned char *px = w ? (unsigned char *)malloc((size_t)w * h) : NULL;
    for (int i = 0; i < w * h; i++)
      px[i] = (unsigned char)((rnd() + 2.0f) * 63.9f);
    for (int variant = 0; variant < 4; variant++) {
      br.size = variant % 2 ? 47 : 31;
      br.rescale = variant < 2 ? PD_RESCALE_FIT : PD_RESCALE_FIXED;
      br.fit_size = 27.0f, br.factor = 3.0f;
      in.invert = variant != 3;
      pd_warp_aug aug = pd_warp_aug_identity();
      if (variant >= 1) {
        aug.zoom = 1.2, aug.rotation_deg = 37.0 * variant, aug.shear_deg = -7.0;
        aug.tx = 2.5, aug.ty = -3.25, aug.stretch = 1.1, aug.flip = variant == 2;
      }
      const size_t plane = (size_t)br.size * br.size;
      float *want = (float *)malloc(plane * 4), *got = (float *)malloc(plane * 4);
      pd_warp_branch(&br, &in, px, w, h, &aug, want);
      pd_affine a = pd_warp_affine(&br, w, h, &aug);
      pd_cuda_warp_params prm;
      prm.size = br.size, prm.invert = in.invert, prm.background = in.background;
      prm.mean = in.mean, prm.std = in.std;
      for (size_t p = 0; p < plane; p++)
        got[p] = elem_warp(px, w, h, a.a, (int)(p % br.size), (int)(p / br.size), &prm);
      char what[64];
      snprintf(what, sizeof what, "warp %dx%d variant %d", w, h, variant);
      same(st, what, got, want, plane);
      free(want), free(got);
    }
    free(px);
  }
}

int main(void) {
  pd_test_state st = {0};
  test_slice(&st);
  test_roll(&st);
  test_maxpool(&st);
  test_cyclic_pool(&st);
  test_maxout_gap(&st);
  test_bias_act(&st);
  test_warp(&st);
  return pd_test_finish(&st, "test_cuda_kernels");
}
