/* Unit tests of the CPU layer kernels on tiny, hand-computable cases. */
#include <stdlib.h>

#include "pd_cpu_ops.h"
#include "pd_test.h"

static pd_shape shp(int views, int h, int w, int c) {
  return (pd_shape){views, h, w, c};
}

static void test_group(pd_test_state *st) {
  /* identity, inverses, closure, and C4 is the rotation half */
  for (int a = 0; a < 8; a++) {
    PD_CHECK_INT(st, pd_d4_mul(a, 0), a);
    PD_CHECK_INT(st, pd_d4_mul(0, a), a);
    PD_CHECK_INT(st, pd_d4_mul(a, pd_d4_inv(a)), 0);
    PD_CHECK_INT(st, pd_d4_mul(pd_d4_inv(a), a), 0);
    for (int b = 0; b < 8; b++) {
      int ab = pd_d4_mul(a, b);
      PD_CHECK(st, ab >= 0 && ab < 8);
      for (int c = 0; c < 8; c++)
        PD_CHECK_INT(st, pd_d4_mul(ab, c), pd_d4_mul(a, pd_d4_mul(b, c)));
    }
  }
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      PD_CHECK_INT(st, pd_d4_mul(a, b), (a + b) % 4);
  /* flip then rotate: F R = R^-1 F */
  PD_CHECK_INT(st, pd_d4_mul(4, 1), pd_d4_mul(3, 4));
}

/* torch.rot90([[1,2],[3,4]]) = [[2,4],[1,3]]; flip = [[2,1],[4,3]] */
static void test_slice(pd_test_state *st) {
  float x[4] = {1, 2, 3, 4}, out[8 * 4];
  pd_layer l = {.kind = PD_LAYER_CYCLIC_SLICE, .in = shp(1, 2, 2, 1), .out = shp(4, 2, 2, 1)};
  pd_cpu_cyclic_slice(&l, 1, x, out);
  const float want4[16] = {1, 2, 3, 4, 2, 4, 1, 3, 4, 3, 2, 1, 3, 1, 4, 2};
  for (int i = 0; i < 16; i++)
    PD_CHECK_NEAR(st, out[i], want4[i], 0);
  l.out = shp(8, 2, 2, 1);
  pd_cpu_cyclic_slice(&l, 1, x, out);
  /* view 4 = flip; view 5 = rot90(flip) = rot90([[2,1],[4,3]]) = [[1,3],[2,4]] */
  const float want_flip[8] = {2, 1, 4, 3, 1, 3, 2, 4};
  for (int i = 0; i < 8; i++)
    PD_CHECK_NEAR(st, out[16 + i], want_flip[i], 0);
}

static void test_roll(pd_test_state *st) {
  /* Four distinct 2x2 one-channel views F_v = {4v+1 .. 4v+4}. View 0, block s is
   * rot90(F_s, -s); view 1, block 1 is rot90(F_2, -1). */
  float in[16], out[64];
  for (int i = 0; i < 16; i++)
    in[i] = (float)(i + 1);
  pd_layer l = {.kind = PD_LAYER_CYCLIC_ROLL, .in = shp(4, 2, 2, 1), .out = shp(4, 2, 2, 4)};
  pd_cpu_cyclic_roll(&l, 1, in, out);
  /* out[i][y][x][s] at index ((i*2 + y)*2 + x)*4 + s */
#define AT(i, y, x, s) out[(((i)*2 + (y)) * 2 + (x)) * 4 + (s)]
  PD_CHECK_NEAR(st, AT(0, 0, 0, 0), 1, 0); /* block 0 = F_0 unchanged */
  PD_CHECK_NEAR(st, AT(0, 1, 1, 0), 4, 0);
  /* rot90([[5,6],[7,8]], -1) = [[7,5],[8,6]] */
  PD_CHECK_NEAR(st, AT(0, 0, 0, 1), 7, 0);
  PD_CHECK_NEAR(st, AT(0, 0, 1, 1), 5, 0);
  PD_CHECK_NEAR(st, AT(0, 1, 0, 1), 8, 0);
  PD_CHECK_NEAR(st, AT(0, 1, 1, 1), 6, 0);
  /* rot90(F_2, -2) = [[12,11],[10,9]] */
  PD_CHECK_NEAR(st, AT(0, 0, 0, 2), 12, 0);
  PD_CHECK_NEAR(st, AT(0, 1, 0, 2), 10, 0);
  /* view 1, block 1: rot90(F_2 = [[9,10],[11,12]], -1) = [[11,9],[12,10]] */
  PD_CHECK_NEAR(st, AT(1, 0, 0, 1), 11, 0);
  PD_CHECK_NEAR(st, AT(1, 1, 1, 1), 10, 0);
  /* view 3, block 1 wraps to F_0: rot90([[1,2],[3,4]], -1) = [[3,1],[4,2]] */
  PD_CHECK_NEAR(st, AT(3, 0, 0, 1), 3, 0);
  PD_CHECK_NEAR(st, AT(3, 0, 1, 1), 1, 0);
#undef AT

  /* Equivariance: rolling the slices of one map gives identical blocks. */
  float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, views[72], rolled[72 * 8];
  pd_layer sl = {.kind = PD_LAYER_CYCLIC_SLICE, .in = shp(1, 3, 3, 1), .out = shp(8, 3, 3, 1)};
  pd_cpu_cyclic_slice(&sl, 1, x, views);
  pd_layer r8 = {.kind = PD_LAYER_CYCLIC_ROLL, .in = shp(8, 3, 3, 1), .out = shp(8, 3, 3, 8)};
  pd_cpu_cyclic_roll(&r8, 1, views, rolled);
  int same = 1;
  for (int i = 0; i < 8; i++)
    for (int p = 0; p < 9; p++)
      for (int s = 0; s < 8; s++)
        same &= rolled[(i * 9 + p) * 8 + s] == views[i * 9 + p];
  PD_CHECK(st, same);

  /* Dense roll on flat D4 features: view i, block s is F_{s*i}. */
  float flat[8 * 2], froll[8 * 16];
  for (int v = 0; v < 8; v++)
    flat[v * 2] = (float)v, flat[v * 2 + 1] = (float)(10 + v);
  pd_layer fr = {.kind = PD_LAYER_CYCLIC_ROLL, .in = shp(8, 1, 1, 2), .out = shp(8, 1, 1, 16)};
  pd_cpu_cyclic_roll(&fr, 1, flat, froll);
  for (int i = 0; i < 8; i++)
    for (int s = 0; s < 8; s++) {
      PD_CHECK_NEAR(st, froll[i * 16 + s * 2], pd_d4_mul(s, i), 0);
      PD_CHECK_NEAR(st, froll[i * 16 + s * 2 + 1], 10 + pd_d4_mul(s, i), 0);
    }
}

static void test_cyclic_pool(pd_test_state *st) {
  float in[8] = {1, -1, 2, -2, 3, -3, 4, -4}, out[2];
  pd_layer l = {.kind = PD_LAYER_CYCLIC_POOL, .in = shp(4, 1, 1, 2), .out = shp(1, 1, 1, 2)};
  l.cpool_mode = PD_CPOOL_MEAN;
  pd_cpu_cyclic_pool(&l, 1, in, out);
  PD_CHECK_NEAR(st, out[0], 2.5, 1e-6);
  PD_CHECK_NEAR(st, out[1], -2.5, 1e-6);
  l.cpool_mode = PD_CPOOL_RMS;
  pd_cpu_cyclic_pool(&l, 1, in, out);
  PD_CHECK_NEAR(st, out[0], sqrt(30.0 / 4), 1e-6);
  PD_CHECK_NEAR(st, out[1], sqrt(30.0 / 4), 1e-6);
  l.cpool_mode = PD_CPOOL_MAX;
  pd_cpu_cyclic_pool(&l, 1, in, out);
  PD_CHECK_NEAR(st, out[0], 4, 0);
  PD_CHECK_NEAR(st, out[1], -1, 0);
}

static void test_pool_maxout_gap(pd_test_state *st) {
  float in[25], out[4];
  for (int i = 0; i < 25; i++)
    in[i] = (float)((i * 7) % 25); /* a permutation of 0..24 */
  pd_layer mp = {.kind = PD_LAYER_MAXPOOL,
                 .pool_size = 3,
                 .pool_stride = 2,
                 .in = shp(1, 5, 5, 1),
                 .out = shp(1, 2, 2, 1)};
  pd_cpu_maxpool(&mp, 1, in, out);
  for (int oy = 0; oy < 2; oy++)
    for (int ox = 0; ox < 2; ox++) {
      float m = -1;
      for (int y = 2 * oy; y < 2 * oy + 3; y++)
        for (int x = 2 * ox; x < 2 * ox + 3; x++)
          m = in[y * 5 + x] > m ? in[y * 5 + x] : m;
      PD_CHECK_NEAR(st, out[oy * 2 + ox], m, 0);
    }
  float in2[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, out2[4];
  pd_layer mp2 = {.kind = PD_LAYER_MAXPOOL,
                  .pool_size = 2,
                  .pool_stride = 2,
                  .in = shp(1, 4, 4, 1),
                  .out = shp(1, 2, 2, 1)};
  pd_cpu_maxpool(&mp2, 1, in2, out2);
  PD_CHECK_NEAR(st, out2[0], 6, 0);
  PD_CHECK_NEAR(st, out2[1], 8, 0);
  PD_CHECK_NEAR(st, out2[2], 14, 0);
  PD_CHECK_NEAR(st, out2[3], 16, 0);

  float mi[6] = {1, 5, 3, 2, -1, -4}, mo[3];
  pd_layer mx = {
      .kind = PD_LAYER_MAXOUT, .pieces = 2, .in = shp(1, 1, 1, 6), .out = shp(1, 1, 1, 3)};
  pd_cpu_maxout(&mx, 1, mi, mo);
  PD_CHECK_NEAR(st, mo[0], 5, 0);
  PD_CHECK_NEAR(st, mo[1], 3, 0);
  PD_CHECK_NEAR(st, mo[2], -1, 0);

  /* 2x2 map with 2 channels: means per channel */
  float gi[8] = {1, 10, 2, 20, 3, 30, 4, 40}, go[2];
  pd_layer gap = {.kind = PD_LAYER_GLOBAL_AVG_POOL, .in = shp(1, 2, 2, 2), .out = shp(1, 1, 1, 2)};
  pd_cpu_global_avg_pool(&gap, 1, gi, go);
  PD_CHECK_NEAR(st, go[0], 2.5, 1e-6);
  PD_CHECK_NEAR(st, go[1], 25, 1e-5);
}

/* Direct (naive) convolution in the engine's layouts, as the reference. */
static float conv_ref(const pd_layer *l, const float *in, int iv, int oy, int ox, int o) {
  const int C = l->in.c, k = l->kernel;
  double acc = l->bias[o];
  for (int ky = 0; ky < k; ky++)
    for (int kx = 0; kx < k; kx++) {
      int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
      if (iy < 0 || ix < 0 || iy >= l->in.h || ix >= l->in.w) continue;
      for (int c = 0; c < C; c++)
        acc += (double)l->weight[((o * k + ky) * k + kx) * C + c] *
               in[(((size_t)iv * l->in.h + iy) * l->in.w + ix) * C + c];
    }
  float v = (float)acc;
  return l->activation == PD_ACT_LEAKY_RELU && v < 0 ? v * l->slope : v;
}

static void test_conv_hand(pd_test_state *st) {
  /* 3x3 input 1..9, all-ones 3x3 kernel, pad 1, bias -20, slope 0.5:
   * centre sum 45 - 20 = 25; corner (0,0) sum 1+2+4+5 = 12 - 20 = -8 -> -4 */
  float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], b[1] = {-20}, out[9], col[81];
  for (int i = 0; i < 9; i++)
    w[i] = 1;
  pd_layer l = {.kind = PD_LAYER_CONV,
                .filters = 1,
                .kernel = 3,
                .stride = 1,
                .pad = 1,
                .activation = PD_ACT_LEAKY_RELU,
                .slope = 0.5f,
                .in = shp(1, 3, 3, 1),
                .out = shp(1, 3, 3, 1),
                .weight = w,
                .bias = b};
  pd_cpu_conv(&l, 1, in, out, col, sizeof col / sizeof *col);
  PD_CHECK_NEAR(st, out[4], 25, 1e-5);
  PD_CHECK_NEAR(st, out[0], -4, 1e-5);
  PD_CHECK_NEAR(st, out[8], 5 + 6 + 8 + 9 - 20, 1e-5); /* positive: no leak */
}

static void test_conv_vs_direct(pd_test_state *st) {
  /* Two images x 4 views of 7x7x3, 5 filters; stride 2 pad 1, then pad 0 stride 1,
   * then 1x1; col blocks of 3 rows force many SGEMM calls and partial blocks. */
  const int V = 4, H = 7, C = 3, O = 5, imgs = 2;
  float *in = malloc(sizeof(float) * imgs * V * H * H * C), w[5 * 3 * 3 * 3], b[5];
  float *out = malloc(sizeof(float) * imgs * V * H * H * O), col[27 * 3];
  for (int i = 0; i < imgs * V * H * H * C; i++)
    in[i] = (float)((i * 37) % 17 - 8) / 8.0f;
  for (int i = 0; i < O * 27; i++)
    w[i] = (float)((i * 11) % 13 - 6) / 6.0f;
  for (int i = 0; i < O; i++)
    b[i] = 0.1f * (float)i - 0.2f;
  const int cfg[3][3] = {{3, 2, 1}, {3, 1, 0}, {1, 1, 0}}; /* kernel, stride, pad */
  for (int t = 0; t < 3; t++) {
    pd_layer l = {.kind = PD_LAYER_CONV,
                  .filters = O,
                  .kernel = cfg[t][0],
                  .stride = cfg[t][1],
                  .pad = cfg[t][2],
                  .activation = PD_ACT_LEAKY_RELU,
                  .slope = 0.1f,
                  .in = shp(V, H, H, C),
                  .weight = w,
                  .bias = b};
    int oh = (H + 2 * l.pad - l.kernel) / l.stride + 1;
    l.out = shp(V, oh, oh, O);
    size_t K = (size_t)l.kernel * l.kernel * C;
    pd_cpu_conv(&l, imgs, in, out, col, 3 * K);
    double maxdiff = 0;
    for (int iv = 0; iv < imgs * V; iv++)
      for (int y = 0; y < oh; y++)
        for (int x = 0; x < oh; x++)
          for (int o = 0; o < O; o++) {
            double d = fabs(out[((iv * oh + y) * oh + x) * O + o] - conv_ref(&l, in, iv, y, x, o));
            maxdiff = d > maxdiff ? d : maxdiff;
          }
    PD_CHECK_NEAR(st, maxdiff, 0, 1e-5);
  }
  free(in);
  free(out);
}

static void test_dense_softmax(pd_test_state *st) {
  /* two rows x 3 inputs -> 2 units */
  float in[6] = {1, 2, 3, -1, 0, 1}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {0.5f, -1};
  float out[4];
  pd_layer l = {.kind = PD_LAYER_DENSE,
                .units = 2,
                .in = shp(1, 1, 1, 3),
                .out = shp(1, 1, 1, 2),
                .weight = w,
                .bias = b,
                .activation = PD_ACT_NONE};
  pd_cpu_dense(&l, 2, in, out);
  PD_CHECK_NEAR(st, out[0], 1 - 3 + 0.5, 1e-6);
  PD_CHECK_NEAR(st, out[1], 3 - 1, 1e-6);
  PD_CHECK_NEAR(st, out[2], -1 - 1 + 0.5, 1e-6);
  PD_CHECK_NEAR(st, out[3], 0 - 1, 1e-6);
  l.activation = PD_ACT_LEAKY_RELU;
  l.slope = 0.25f;
  pd_cpu_dense(&l, 2, in, out);
  PD_CHECK_NEAR(st, out[0], -1.5 * 0.25, 1e-6);

  float s[3] = {1, 2, 3};
  pd_cpu_softmax(s, 1, 3);
  double z = exp(1) + exp(2) + exp(3);
  PD_CHECK_NEAR(st, s[0], exp(1) / z, 1e-6);
  PD_CHECK_NEAR(st, s[2], exp(3) / z, 1e-6);
  float big[2] = {1000, 0}; /* no overflow */
  pd_cpu_softmax(big, 1, 2);
  PD_CHECK_NEAR(st, big[0], 1, 1e-6);
  PD_CHECK_NEAR(st, big[1], 0, 1e-6);

  float x[4] = {-2, -1, 0, 3};
  pd_cpu_leaky_relu(x, 4, 0.1f);
  PD_CHECK_NEAR(st, x[0], -0.2, 1e-7);
  PD_CHECK_NEAR(st, x[3], 3, 0);
}

int main(void) {
  pd_test_state st = {0};
  test_group(&st);
  test_slice(&st);
  test_roll(&st);
  test_cyclic_pool(&st);
  test_pool_maxout_gap(&st);
  test_conv_hand(&st);
  test_conv_vs_direct(&st);
  test_dense_softmax(&st);
  return pd_test_finish(&st, "layers");
}
