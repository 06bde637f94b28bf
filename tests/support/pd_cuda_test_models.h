/* pd_cuda_test_models: the random-weight models and the inputs the CUDA
 * tests run (test_cuda.c on a device, test_cuda_fp16_host.c's host
 * emulation of an fp16 plan everywhere), so both see the same weights and
 * the same images: tests/models/parity_c4.yaml and parity_d4.yaml (between
 * them every layer kind and option of models/FORMAT.md) and
 * bench/models/seed_c4.yaml (the seed network's shape at bench size), with
 * deterministic random weights (pd_test_model.h); inputs are synthetic
 * crops through the real preprocessing (even images) and N(0, 1) values
 * (odd images). Header-only; every function is static. */
#ifndef PD_CUDA_TEST_MODELS_H
#define PD_CUDA_TEST_MODELS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_backend.h"
#include "pd_model.h"
#include "pd_test.h"
#include "pd_test_model.h"

__attribute__((unused)) static const pd_test_tensor k_parity_c4[] = {
    {"a.1.weight", 4, {8, 1, 3, 3}},   {"a.1.bias", 1, {8}},
    {"a.2.weight", 4, {8, 8, 3, 3}},   {"a.2.bias", 1, {8}},
    {"a.5.weight", 4, {12, 32, 1, 1}}, {"a.5.bias", 1, {12}},
    {"a.7.weight", 4, {12, 12, 3, 3}}, {"a.7.bias", 1, {12}},
    {"a_fc1.weight", 2, {32, 432}},    {"a_fc1.bias", 1, {32}},
    {"a.14.weight", 2, {16, 64}},      {"a.14.bias", 1, {16}},
    {"b.1.weight", 4, {6, 1, 5, 5}},   {"b.1.bias", 1, {6}},
    {"b.2.weight", 4, {8, 6, 3, 3}},   {"b.2.bias", 1, {8}},
    {"b.5.weight", 4, {16, 32, 3, 3}}, {"b.5.bias", 1, {16}},
    {"size.0.weight", 2, {4, 4}},      {"size.0.bias", 1, {4}},
    {"head_fc.weight", 2, {32, 52}},   {"head_fc.bias", 1, {32}},
    {"logits.weight", 2, {12, 32}},    {"logits.bias", 1, {12}},
};

__attribute__((unused)) static const pd_test_tensor k_parity_d4[] = {
    {"fit.1.weight", 4, {6, 1, 3, 3}},    {"fit.1.bias", 1, {6}},
    {"fit.4.weight", 4, {8, 48, 1, 1}},   {"fit.4.bias", 1, {8}},
    {"fit.5.weight", 4, {8, 8, 2, 2}},    {"fit.5.bias", 1, {8}},
    {"fit.9.weight", 4, {16, 64, 3, 3}},  {"fit.9.bias", 1, {16}},
    {"fixed.1.weight", 4, {4, 1, 3, 3}},  {"fixed.1.bias", 1, {4}},
    {"fixed.4.weight", 4, {8, 32, 3, 3}}, {"fixed.4.bias", 1, {8}},
    {"fixed.6.weight", 2, {8, 8}},        {"fixed.6.bias", 1, {8}},
    {"fixed.8.weight", 2, {12, 64}},      {"fixed.8.bias", 1, {12}},
    {"head.0.weight", 2, {30, 22}},       {"head.0.bias", 1, {30}},
    {"head.3.weight", 2, {15, 15}},       {"head.3.bias", 1, {15}},
};

#define CONV(name, o, i)                                                                           \
  {name ".weight", 4, {o, i, 3, 3}}, {                                                             \
    name ".bias", 1, {                                                                             \
      o                                                                                            \
    }                                                                                              \
  }
#define DENSE(name, o, i)                                                                          \
  {name ".weight", 2, {o, i}}, {                                                                   \
    name ".bias", 1, {                                                                             \
      o                                                                                            \
    }                                                                                              \
  }
__attribute__((unused)) static const pd_test_tensor k_seed_c4[] = {
    CONV("a.1", 16, 1),       CONV("a.2", 8, 16),       CONV("a.5", 32, 32),
    CONV("a.6", 16, 32),      CONV("a.9", 64, 64),      CONV("a.10", 64, 64),
    CONV("a.11", 32, 64),     CONV("a.14", 128, 128),   CONV("a.15", 128, 128),
    CONV("a.16", 64, 128),    DENSE("a.20", 128, 6400), DENSE("a.24", 128, 256),
    CONV("b.1", 8, 1),        CONV("b.2", 4, 8),        CONV("b.5", 16, 16),
    CONV("b.6", 8, 16),       CONV("b.9", 32, 32),      CONV("b.10", 32, 32),
    CONV("b.11", 16, 32),     DENSE("b.15", 64, 1600),  DENSE("b.19", 64, 128),
    DENSE("head.1", 121, 96),
};
#undef CONV
#undef DENSE

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct test_model {
  const char *path; /* relative to the source root */
  const pd_test_tensor *tensors;
  int n_tensors;
  pd_model *m;
} test_model;

__attribute__((unused)) static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

__attribute__((unused)) static int load_model(pd_test_state *st, const char *root, test_model *tm) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, tm->path);
  char *yaml = read_text(path);
  if (!yaml) {
    fprintf(stderr, "cannot read %s\n", path);
    st->checks++, st->failures++;
    return -1;
  }
  pd_error err = {0};
  int rc = pd_test_load_model(yaml, tm->tensors, tm->n_tensors, 7, &tm->m, &err);
  free(yaml);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) fprintf(stderr, "%s does not load: %s\n", tm->path, err.msg);
  return rc;
}

/* ---- inputs ---- */

typedef struct inputs {
  int n;
  float *branch[PD_MAX_BRANCHES];
} inputs;

__attribute__((unused)) static float normal(uint64_t *s) {
  double u1 = ((double)(pd_test_rng(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(pd_test_rng(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Even images: synthetic crops through the real preprocessing; odd: N(0, 1). */
__attribute__((unused)) static void make_inputs(const pd_model *m, int n, uint64_t seed,
                                                inputs *in) {
  in->n = n;
  for (int b = 0; b < m->n_branches; b++)
    in->branch[b] = calloc((size_t)n * pd_model_branch_input_len(m, b), sizeof(float));
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  uint8_t *px = malloc(200 * 200);
  for (int i = 0; i < n; i++) {
    if (i % 2 == 0) {
      int w = 20 + (int)(pd_test_rng(&s) % 170), h = 20 + (int)(pd_test_rng(&s) % 170);
      pd_test_crop(w, h, seed * 100 + (uint64_t)i, px);
      float *slots[PD_MAX_BRANCHES];
      for (int b = 0; b < m->n_branches; b++)
        slots[b] = in->branch[b] + (size_t)i * pd_model_branch_input_len(m, b);
      pd_model_fill_view(m, px, w, h, NULL, slots);
    } else {
      for (int b = 0; b < m->n_branches; b++) {
        size_t len = pd_model_branch_input_len(m, b);
        for (size_t k = 0; k < len; k++)
          in->branch[b][(size_t)i * len + k] = normal(&s);
      }
    }
  }
  free(px);
}

__attribute__((unused)) static void free_inputs(const pd_model *m, inputs *in) {
  for (int b = 0; b < m->n_branches; b++)
    free(in->branch[b]);
}

__attribute__((unused)) static pd_batch batch_of(const pd_model *m, const inputs *in, int n) {
  pd_batch batch = {.n = n};
  for (int b = 0; b < m->n_branches; b++)
    batch.branch[b] = in->branch[b];
  return batch;
}

/* The three models in the order the tests use them. */
#define PD_CUDA_TEST_MODELS                                                                        \
  {                                                                                                \
    {"tests/models/parity_c4.yaml", k_parity_c4, N_OF(k_parity_c4), NULL},                         \
        {"tests/models/parity_d4.yaml", k_parity_d4, N_OF(k_parity_d4), NULL},                     \
        {"bench/models/seed_c4.yaml", k_seed_c4, N_OF(k_seed_c4), NULL},                           \
  }

#endif
