#include "pd_cpu_ops.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* ---- element-wise ---- */

void pd_cpu_leaky_relu(float *x, size_t n, float slope) {
  for (size_t i = 0; i < n; i++)
    x[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void pd_cpu_bias_act(float *x, size_t rows, int cols, const float *bias, pd_activation act,
                     float slope) {
  for (size_t r = 0; r < rows; r++) {
    float *row = x + r * (size_t)cols;
    if (act == PD_ACT_LEAKY_RELU) {
      for (int c = 0; c < cols; c++) {
        float v = row[c] + bias[c];
        row[c] = v > 0.0f ? v : v * slope;
      }
    } else {
      for (int c = 0; c < cols; c++)
        row[c] += bias[c];
    }
  }
}

void pd_cpu_softmax(float *x, size_t rows, int cols) {
  for (size_t r = 0; r < rows; r++) {
    float *row = x + r * (size_t)cols;
    float max = -FLT_MAX;
    for (int c = 0; c < cols; c++)
      max = row[c] > max ? row[c] : max;
    double sum = 0.0;
    for (int c = 0; c < cols; c++) {
      row[c] = expf(row[c] - max);
      sum += row[c];
    }
    float inv = (float)(1.0 / sum);
    for (int c = 0; c < cols; c++)
      row[c] *= inv;
  }
}

/* ---- convolution: im2col blocks + SGEMM, bias and activation fused per block ---- */

static int conv_is_pointwise(const pd_layer *l) {
  return l->kernel == 1 && l->stride == 1 && l->pad == 0;
}

size_t pd_cpu_conv_col_floats(const pd_layer *l, size_t max_block_bytes) {
  if (conv_is_pointwise(l)) return 0;
  size_t k = (size_t)l->kernel * l->kernel * l->in.c;
  size_t rows_total = (size_t)l->out.views * l->out.h * l->out.w;
  size_t rows = max_block_bytes / (k * sizeof(float));
  if (rows < 256) rows = 256; /* SGEMM needs some rows to amortise packing the weights */
  if (rows > rows_total) rows = rows_total;
  return rows * k;
}

/* Fills col with `rows` im2col rows starting at global row r0 of the layer's output. */
static void im2col_block(const pd_layer *l, const float *in, size_t r0, size_t rows, float *col) {
  const int H = l->in.h, W = l->in.w, C = l->in.c, k = l->kernel;
  const int OH = l->out.h, OW = l->out.w;
  const size_t K = (size_t)k * k * C, map = (size_t)H * W * C;
  const size_t kc_bytes = (size_t)k * C * sizeof(float);
  for (size_t r = 0; r < rows; r++) {
    size_t g = r0 + r;
    size_t iv = g / ((size_t)OH * OW);
    int p = (int)(g % ((size_t)OH * OW));
    int oy = p / OW, ox = p % OW;
    const float *src = in + iv * map;
    float *dst = col + r * K;
    int ix0 = ox * l->stride - l->pad;
    for (int ky = 0; ky < k; ky++, dst += (size_t)k * C) {
      int iy = oy * l->stride - l->pad + ky;
      if (iy < 0 || iy >= H) {
        memset(dst, 0, kc_bytes);
      } else if (ix0 >= 0 && ix0 + k <= W) {
        memcpy(dst, src + ((size_t)iy * W + ix0) * C, kc_bytes);
      } else {
        for (int kx = 0; kx < k; kx++) {
          int ix = ix0 + kx;
          if (ix < 0 || ix >= W)
            memset(dst + (size_t)kx * C, 0, (size_t)C * sizeof(float));
          else
            memcpy(dst + (size_t)kx * C, src + ((size_t)iy * W + ix) * C,
                   (size_t)C * sizeof(float));
        }
      }
    }
  }
}

void pd_cpu_conv(const pd_layer *l, int images, const float *in, float *out, float *col,
                 size_t col_cap) {
  const int O = l->filters;
  const size_t K = (size_t)l->kernel * l->kernel * l->in.c;
  const size_t total = (size_t)images * l->out.views * l->out.h * l->out.w;
  if (conv_is_pointwise(l)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)total, O, (int)K, 1.0f, in, (int)K,
                l->weight, (int)K, 0.0f, out, O);
    pd_cpu_bias_act(out, total, O, l->bias, l->activation, l->slope);
    return;
  }
  size_t block = col_cap / K;
  for (size_t r0 = 0; r0 < total; r0 += block) {
    size_t rows = total - r0 < block ? total - r0 : block;
    im2col_block(l, in, r0, rows, col);
    float *dst = out + r0 * O;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, O, (int)K, 1.0f, col, (int)K,
                l->weight, (int)K, 0.0f, dst, O);
    pd_cpu_bias_act(dst, rows, O, l->bias, l->activation, l->slope);
  }
}

void pd_cpu_dense(const pd_layer *l, int images, const float *in, float *out) {
  const int rows = images * l->in.views;
  const int K = l->in.h * l->in.w * l->in.c, N = l->units;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, N, K, 1.0f, in, K, l->weight, K, 0.0f,
              out, N);
  pd_cpu_bias_act(out, (size_t)rows, N, l->bias, l->activation, l->slope);
}

/* ---- pooling and the cyclic layers ---- */

void pd_cpu_maxpool(const pd_layer *l, int images, const float *in, float *out) {
  const int H = l->in.h, W = l->in.w, C = l->in.c, OH = l->out.h, OW = l->out.w;
  const int k = l->pool_size, s = l->pool_stride;
  const size_t maps = (size_t)images * l->in.views;
  for (size_t m = 0; m < maps; m++) {
    const float *src = in + m * (size_t)H * W * C;
    float *dst = out + m * (size_t)OH * OW * C;
    for (int oy = 0; oy < OH; oy++) {
      for (int ox = 0; ox < OW; ox++) {
        float *o = dst + ((size_t)oy * OW + ox) * C;
        memcpy(o, src + ((size_t)oy * s * W + (size_t)ox * s) * C, (size_t)C * sizeof(float));
        for (int ky = 0; ky < k; ky++) {
          for (int kx = 0; kx < k; kx++) {
            const float *p = src + ((size_t)(oy * s + ky) * W + (ox * s + kx)) * C;
            for (int c = 0; c < C; c++)
              o[c] = p[c] > o[c] ? p[c] : o[c];
          }
        }
      }
    }
  }
}

void pd_cpu_cyclic_slice(const pd_layer *l, int images, const float *in, float *out) {
  const int n = l->in.h, C = l->in.c, V = l->out.views;
  const size_t map = (size_t)n * n * C;
  for (int img = 0; img < images; img++) {
    const float *src = in + (size_t)img * map;
    for (int v = 0; v < V; v++) {
      float *dst = out + ((size_t)img * V + v) * map;
      for (int y = 0; y < n; y++) {
        for (int x = 0; x < n; x++) {
          int sy, sx;
          pd_d4_src(v, n, y, x, &sy, &sx);
          memcpy(dst + ((size_t)y * n + x) * C, src + ((size_t)sy * n + sx) * C,
                 (size_t)C * sizeof(float));
        }
      }
    }
  }
}

void pd_cpu_cyclic_roll(const pd_layer *l, int images, const float *in, float *out) {
  const int V = l->in.views, C = l->in.c, H = l->in.h, W = l->in.w;
  const size_t map_in = (size_t)H * W * C, map_out = map_in * V;
  const size_t cb = (size_t)C * sizeof(float);
  for (int img = 0; img < images; img++) {
    const float *src = in + (size_t)img * V * map_in;
    float *dst = out + (size_t)img * V * map_out;
    for (int i = 0; i < V; i++) {
      for (int s = 0; s < V; s++) {
        const float *fj = src + (size_t)pd_d4_mul(s, i) * map_in;
        int sinv = pd_d4_inv(s);
        for (int y = 0; y < H; y++) {
          for (int x = 0; x < W; x++) {
            int sy = y, sx = x;
            if (H > 1 || W > 1) pd_d4_src(sinv, H, y, x, &sy, &sx);
            memcpy(dst + i * map_out + ((size_t)y * W + x) * V * C + (size_t)s * C,
                   fj + ((size_t)sy * W + sx) * C, cb);
          }
        }
      }
    }
  }
}

void pd_cpu_cyclic_pool(const pd_layer *l, int images, const float *in, float *out) {
  const int V = l->in.views;
  const size_t L = (size_t)l->in.h * l->in.w * l->in.c;
  for (int img = 0; img < images; img++) {
    const float *src = in + (size_t)img * V * L;
    float *dst = out + (size_t)img * L;
    for (size_t i = 0; i < L; i++) {
      float acc = l->cpool_mode == PD_CPOOL_MAX ? -FLT_MAX : 0.0f;
      for (int v = 0; v < V; v++) {
        float x = src[(size_t)v * L + i];
        if (l->cpool_mode == PD_CPOOL_MAX)
          acc = x > acc ? x : acc;
        else if (l->cpool_mode == PD_CPOOL_RMS)
          acc += x * x;
        else
          acc += x;
      }
      if (l->cpool_mode == PD_CPOOL_MEAN) acc /= (float)V;
      if (l->cpool_mode == PD_CPOOL_RMS) acc = sqrtf(acc / (float)V);
      dst[i] = acc;
    }
  }
}

void pd_cpu_maxout(const pd_layer *l, int images, const float *in, float *out) {
  const int C = l->in.c, p = l->pieces, OC = C / p;
  const size_t rows = (size_t)images * l->in.views * l->in.h * l->in.w;
  for (size_t r = 0; r < rows; r++) {
    const float *src = in + r * C;
    float *dst = out + r * OC;
    for (int j = 0; j < OC; j++) {
      const float *unit = src + (size_t)j * p;
      float m = unit[0];
      for (int q = 1; q < p; q++)
        m = unit[q] > m ? unit[q] : m;
      dst[j] = m;
    }
  }
}

void pd_cpu_global_avg_pool(const pd_layer *l, int images, const float *in, float *out) {
  const int C = l->in.c;
  const size_t P = (size_t)l->in.h * l->in.w, maps = (size_t)images * l->in.views;
  for (size_t m = 0; m < maps; m++) {
    const float *src = in + m * P * C;
    float *dst = out + m * C;
    for (int c = 0; c < C; c++)
      dst[c] = 0.0f;
    for (size_t p = 0; p < P; p++)
      for (int c = 0; c < C; c++)
        dst[c] += src[p * C + c];
    for (int c = 0; c < C; c++)
      dst[c] /= (float)P;
  }
}

int pd_cpu_layer_forward(const pd_layer *l, int images, float *in, float *out, float *col,
                         size_t col_cap) {
  switch (l->kind) {
  case PD_LAYER_CYCLIC_SLICE:
    pd_cpu_cyclic_slice(l, images, in, out);
    return 0;
  case PD_LAYER_CONV:
    pd_cpu_conv(l, images, in, out, col, col_cap);
    return 0;
  case PD_LAYER_LEAKY_RELU:
    pd_cpu_leaky_relu(in, (size_t)images * pd_shape_len(l->in), l->slope);
    return 1;
  case PD_LAYER_MAXPOOL:
    pd_cpu_maxpool(l, images, in, out);
    return 0;
  case PD_LAYER_CYCLIC_ROLL:
    pd_cpu_cyclic_roll(l, images, in, out);
    return 0;
  case PD_LAYER_CYCLIC_POOL:
    pd_cpu_cyclic_pool(l, images, in, out);
    return 0;
  case PD_LAYER_DENSE:
    pd_cpu_dense(l, images, in, out);
    return 0;
  case PD_LAYER_MAXOUT:
    pd_cpu_maxout(l, images, in, out);
    return 0;
  case PD_LAYER_GLOBAL_AVG_POOL:
    pd_cpu_global_avg_pool(l, images, in, out);
    return 0;
  case PD_LAYER_DROPOUT:
    return 1;
  case PD_LAYER_SOFTMAX:
    pd_cpu_softmax(in, (size_t)images * l->in.views, l->in.h * l->in.w * l->in.c);
    return 1;
  case PD_LAYER_KIND_COUNT:
    break;
  }
  return 1;
}
