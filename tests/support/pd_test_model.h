/* pd_test_model: tiny random-weight models and synthetic crops for the C
 * tests of TTA, ensembles and evaluation (test_tta.c, test_eval.c). Builds
 * a safetensors file from a list of tensor names and shapes with
 * deterministic pseudo-random F32 values (uniform, scaled by 1/sqrt(fan_in)
 * so activations stay O(1)), loads it with model.yaml text from memory or
 * writes both to a folder. Header-only; every function is static. */
#ifndef PD_TEST_MODEL_H
#define PD_TEST_MODEL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_model.h"

typedef struct pd_test_tensor {
  const char *name;
  int ndim;
  long long shape[4];
} pd_test_tensor;

static inline uint64_t pd_test_rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Uniform in [-1, 1). */
static inline double pd_test_uniform(uint64_t *s) {
  return (double)(pd_test_rng(s) >> 11) / 4503599627370496.0 - 1.0;
}

static inline size_t pd_test_numel(const pd_test_tensor *t) {
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= (size_t)t->shape[d];
  return n;
}

/* A safetensors image of the tensors, F32, values from `seed` (malloc'd). */
__attribute__((unused)) static unsigned char *pd_test_weights(const pd_test_tensor *ts, int n,
                                                              uint64_t seed, size_t *len) {
  char header[8192];
  size_t hl = 0, off = 0, offs[64];
  hl += (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int k = 0; k < n; k++) {
    size_t nb = pd_test_numel(&ts[k]) * 4;
    hl += (size_t)snprintf(header + hl, sizeof header - hl,
                           ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", ts[k].name);
    for (int d = 0; d < ts[k].ndim; d++)
      hl +=
          (size_t)snprintf(header + hl, sizeof header - hl, "%s%lld", d ? "," : "", ts[k].shape[d]);
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                           off + nb);
    offs[k] = off;
    off += nb;
  }
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
  while (hl % 8)
    header[hl++] = ' ';
  *len = 8 + hl + off;
  unsigned char *buf = calloc(1, *len);
  if (!buf) abort();
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 12345;
  for (int k = 0; k < n; k++) {
    size_t numel = pd_test_numel(&ts[k]);
    size_t fan_in = ts[k].ndim > 1 ? numel / (size_t)ts[k].shape[0] : 16;
    double scale = 1.7 / sqrt((double)fan_in);
    unsigned char *p = buf + 8 + hl + offs[k];
    for (size_t i = 0; i < numel; i++) {
      float v = (float)(pd_test_uniform(&s) * scale);
      memcpy(p + 4 * i, &v, 4);
    }
  }
  return buf;
}

__attribute__((unused)) static int pd_test_load_model(const char *yaml, const pd_test_tensor *ts,
                                                      int n, uint64_t seed, pd_model **m,
                                                      pd_error *err) {
  size_t len;
  unsigned char *w = pd_test_weights(ts, n, seed, &len);
  int rc = pd_model_load_mem(yaml, strlen(yaml), "test/model.yaml", w, len,
                             "test/weights.safetensors", m, err);
  free(w);
  return rc;
}

__attribute__((unused)) static int pd_test_write_file(const char *path, const void *data,
                                                      size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t put = fwrite(data, 1, len, f);
  return fclose(f) != 0 || put != len ? -1 : 0;
}

/* Writes dir/model.yaml and dir/weights.safetensors (dir must exist). */
__attribute__((unused)) static int pd_test_write_model(const char *dir, const char *yaml,
                                                       const pd_test_tensor *ts, int n,
                                                       uint64_t seed) {
  char path[8192];
  snprintf(path, sizeof path, "%s/model.yaml", dir);
  if (pd_test_write_file(path, yaml, strlen(yaml)) != 0) return -1;
  if (!ts) return 0;
  size_t len;
  unsigned char *w = pd_test_weights(ts, n, seed, &len);
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  int rc = pd_test_write_file(path, w, len);
  free(w);
  return rc;
}

/* A w x h gray crop: white background, a dark noisy ellipse off centre. */
__attribute__((unused)) static void pd_test_crop(int w, int h, uint64_t seed, uint8_t *px) {
  uint64_t s = seed * 2654435761u + 7;
  double cx = w * (0.4 + 0.2 * (pd_test_uniform(&s) + 1) / 2);
  double cy = h * (0.35 + 0.2 * (pd_test_uniform(&s) + 1) / 2);
  double rx = w * 0.3, ry = h * 0.15;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double u = (x - cx) / rx, v = (y - cy) / ry;
      double d = u * u + v * v;
      double val = d < 1 ? 60 + 40 * d : 255;
      val += 6 * pd_test_uniform(&s);
      px[(size_t)y * w + x] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
    }
}

#endif
