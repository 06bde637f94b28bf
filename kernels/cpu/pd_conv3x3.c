/* 3x3 convolutions: method choice, weight preparation, Winograd tiling and
 * kernel choice. The inner kernels live in pd_conv3x3_kern.c (built once
 * per instruction set). */
#include "pd_conv3x3.h"

/* Blocks of tiles are sized so that a block's V and M (36 * ntpad * (c + k)
 * floats) stay within this many bytes, about half of a Zen 4 core's L2. */
#define PD_CONV3X3_BLOCK_BYTES ((size_t)512 * 1024)
#define PD_CONV3X3_MIN_ROWS 16
#define PD_CONV3X3_MAX_ROWS 512

const pd_conv3x3_kernels *pd_conv3x3_kernels_best(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return &pd_conv3x3_kernels_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return &pd_conv3x3_kernels_avx2;
#endif
  return &pd_conv3x3_kernels_generic;
}

int pd_conv3x3_kernels_runnable(const pd_conv3x3_kernels **out, int max) {
  int n = 0;
  if (n < max) out[n++] = &pd_conv3x3_kernels_generic;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const int fma = __builtin_cpu_supports("fma");
  if (n < max && fma && __builtin_cpu_supports("avx2")) out[n++] = &pd_conv3x3_kernels_avx2;
  if (n < max && fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    out[n++] = &pd_conv3x3_kernels_avx512;
#endif
  return n;
}

int pd_conv3x3_applies(const pd_layer *l) {
  return l->kind == PD_LAYER_CONV && l->kernel == 3 && l->stride == 1 && l->pad == 1 &&
         l->in.h == l->out.h && l->in.w == l->out.w && l->in.views == l->out.views;
}

int pd_conv3x3_uses_winograd(const pd_layer *l) {
  return l->in.c > PD_CONV3X3_DIRECT_MAX_C;
}

size_t pd_conv3x3_weights_floats(const pd_layer *l) {
  return (pd_conv3x3_uses_winograd(l) ? 36u : 9u) * (size_t)l->in.c * l->filters;
}

/* G of F(4, 3): the 6 x 3 filter transform. */
static const double wino_g[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

void pd_conv3x3_prepare_weights(const pd_layer *l, float *u) {
  const int C = l->in.c, K = l->filters;
  if (!pd_conv3x3_uses_winograd(l)) {
    /* D[(i * 3 + j) * C + c][k] = weight[k][i][j][c] */
    for (int k = 0; k < K; k++)
      for (int t = 0; t < 9 * C; t++)
        u[(size_t)t * K + k] = l->weight[(size_t)k * 9 * C + t];
    return;
  }
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++) {
      /* g[i][j] = weight[k][i][j][c] (OHWI) */
      double g[3][3], t[6][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
          g[i][j] = l->weight[(((size_t)k * 3 + i) * 3 + j) * C + c];
      for (int a = 0; a < 6; a++)
        for (int j = 0; j < 3; j++)
          t[a][j] = wino_g[a][0] * g[0][j] + wino_g[a][1] * g[1][j] + wino_g[a][2] * g[2][j];
      for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
          double s = wino_g[b][0] * t[a][0] + wino_g[b][1] * t[a][1] + wino_g[b][2] * t[a][2];
          u[((size_t)(a * 6 + b) * C + c) * K + k] = (float)s;
        }
    }
}

static pd_conv3x3_geom wino_geom(const pd_layer *l) {
  pd_conv3x3_geom g = {
      .views = l->in.views, .h = l->in.h, .w = l->in.w, .c = l->in.c, .k = l->filters};
  g.tiles_y = (g.h + 3) / 4;
  g.tiles_x = (g.w + 3) / 4;
  return g;
}

static int round_up(int x, int a) {
  return (x + a - 1) / a * a;
}

/* Rows (tiles) per block, a multiple of PD_CONV3X3_ROW_ALIGN. */
static int wino_block_rows(const pd_conv3x3_geom *g) {
  int tiles = g->views * g->tiles_y * g->tiles_x;
  int rows = (int)(PD_CONV3X3_BLOCK_BYTES / (36u * sizeof(float) * (size_t)(g->c + g->k)));
  if (rows < PD_CONV3X3_MIN_ROWS) rows = PD_CONV3X3_MIN_ROWS;
  if (rows > PD_CONV3X3_MAX_ROWS) rows = PD_CONV3X3_MAX_ROWS;
  rows = rows / PD_CONV3X3_ROW_ALIGN * PD_CONV3X3_ROW_ALIGN;
  int need = round_up(tiles, PD_CONV3X3_ROW_ALIGN);
  if (rows > need) rows = need;
  /* Even blocks: no tiny last block. */
  int blocks = (tiles + rows - 1) / rows;
  return round_up((tiles + blocks - 1) / blocks, PD_CONV3X3_ROW_ALIGN);
}

size_t pd_conv3x3_scratch_floats(const pd_layer *l) {
  if (!pd_conv3x3_uses_winograd(l)) return 0;
  pd_conv3x3_geom g = wino_geom(l);
  int rows = wino_block_rows(&g);
  /* V, M, and a zero row wide enough for one padded channel vector */
  return 36 * (pd_conv3x3_plane(rows, g.c) + pd_conv3x3_plane(rows, g.k)) + (size_t)g.c + 16;
}

void pd_conv3x3_run(const pd_conv3x3_kernels *kern, const pd_layer *l, const float *u,
                    const float *in, float *out, float *scratch) {
  pd_conv3x3_run_part(kern, l, u, in, out, scratch, 0, 1);
}

void pd_conv3x3_run_part(const pd_conv3x3_kernels *kern, const pd_layer *l, const float *u,
                         const float *in, float *out, float *scratch, int part, int parts) {
  pd_conv3x3_geom g = wino_geom(l);
  if (!pd_conv3x3_uses_winograd(l)) {
    /* The direct kernel's views are independent: part p takes its share. */
    const int v0 = (int)((long)g.views * part / parts);
    const int v1 = (int)((long)g.views * (part + 1) / parts);
    if (v1 <= v0) return;
    const size_t map = (size_t)g.h * g.w;
    g.views = v1 - v0;
    kern->direct(&g, in + (size_t)v0 * map * g.c, u, l->bias, l->activation, l->slope,
                 out + (size_t)v0 * map * g.k);
    return;
  }
  const int rows = wino_block_rows(&g);
  const int tiles = g.views * g.tiles_y * g.tiles_x;
  float *v = scratch;
  float *m = v + 36 * pd_conv3x3_plane(rows, g.c);
  float *zeros = m + 36 * pd_conv3x3_plane(rows, g.k);
  for (int i = 0; i < g.c + 16; i++)
    zeros[i] = 0.0f;
  /* Blocks are the same whatever the parts, so a part's outputs are the
   * same bits as the whole run's. */
  for (int t0 = part * rows; t0 < tiles; t0 += parts * rows) {
    int nt = tiles - t0 < rows ? tiles - t0 : rows;
    int ntpad = round_up(nt, PD_CONV3X3_ROW_ALIGN);
    kern->input(&g, in, t0, nt, ntpad, v, zeros);
    kern->gemm(&g, ntpad, v, u, m);
    kern->output(&g, m, t0, nt, ntpad, l->bias, l->activation, l->slope, out);
  }
}
