/* pd_model: a loaded, validated model (models/FORMAT.md). Owns the class
 * labels, the branch and head layer lists with their inferred shapes, and the
 * weights already converted to the engine's layouts. Immutable after load, so
 * any number of backends and threads may read it. */
#ifndef PD_MODEL_H
#define PD_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_error.h"

#define PD_MAX_BRANCHES 8
#define PD_MAX_LAYERS 64
#define PD_MAX_FEATURES 8
#define PD_NAME_LEN 64
#define PD_MAX_VIEWS 8

typedef enum { PD_SYM_NONE = 0, PD_SYM_C4, PD_SYM_D4 } pd_symmetry;

typedef enum {
  PD_LAYER_CYCLIC_SLICE = 0,
  PD_LAYER_CONV,
  PD_LAYER_LEAKY_RELU,
  PD_LAYER_MAXPOOL,
  PD_LAYER_CYCLIC_ROLL,
  PD_LAYER_CYCLIC_POOL,
  PD_LAYER_DENSE,
  PD_LAYER_MAXOUT,
  PD_LAYER_GLOBAL_AVG_POOL,
  PD_LAYER_DROPOUT,
  PD_LAYER_SOFTMAX,
  PD_LAYER_KIND_COUNT
} pd_layer_kind;

typedef enum { PD_CPOOL_MEAN = 0, PD_CPOOL_RMS, PD_CPOOL_MAX } pd_cyclic_pool_mode;

typedef enum { PD_ACT_NONE = 0, PD_ACT_LEAKY_RELU } pd_activation;

/* Shape of one image's activation: `views` maps of h x w x c (NHWC within a view).
 * Flat features have h = w = 1. */
typedef struct pd_shape {
  int views, h, w, c;
} pd_shape;

typedef struct pd_layer {
  pd_layer_kind kind;
  char name[PD_NAME_LEN];
  int line; /* line of the layer in model.yaml (1-based), 0 if unknown */

  int filters, kernel, stride, pad; /* conv */
  int units;                        /* dense */
  int pool_size, pool_stride;       /* maxpool */
  int pieces;                       /* maxout */
  pd_cyclic_pool_mode cpool_mode;   /* cyclic_pool */
  pd_activation activation;         /* conv, dense (leaky_relu layer: always leaky) */
  float slope;                      /* leaky ReLU negative slope; 0 = ReLU */
  float dropout_rate;               /* dropout (unused in inference) */

  pd_shape in, out; /* per image, inferred at load */

  /* Engine layouts (converted from PyTorch's by the loader):
   * conv:  weight[filters][kernel][kernel][in.c]  (OHWI: one GEMM row per filter)
   * dense: weight[units][in.h * in.w * in.c], inputs in h, w, c order
   * bias[filters or units]. NULL for layers without weights. */
  const float *weight;
  const float *bias;
  size_t weight_len, bias_len;
} pd_layer;

typedef enum { PD_INPUT_IMAGE = 0, PD_INPUT_SIZE_FEATURES } pd_input_kind;
typedef enum { PD_RESCALE_FIT = 0, PD_RESCALE_FIXED } pd_rescale;
typedef enum {
  PD_FEAT_LOG_WIDTH = 0,
  PD_FEAT_LOG_HEIGHT,
  PD_FEAT_LOG_AREA,
  PD_FEAT_ASPECT
} pd_size_feature;

typedef struct pd_branch {
  char name[32];
  pd_input_kind kind;
  /* image branches */
  int size; /* output patch is size x size */
  pd_rescale rescale;
  float fit_size; /* fit: scale = max(w, h) / fit_size */
  float factor;   /* fixed: scale = factor */
  /* size-feature branches */
  int n_features;
  pd_size_feature features[PD_MAX_FEATURES];

  int n_layers;
  pd_layer layers[PD_MAX_LAYERS];
  pd_shape in;  /* image: {1, size, size, 1}; features: {1, 1, 1, n_features} */
  pd_shape out; /* always {1, 1, 1, F} */
} pd_branch;

typedef struct pd_tta_spec {
  int count;
  float zoom_min, zoom_max;
  float rotation_min, rotation_max; /* degrees */
  float shear_min, shear_max;       /* degrees */
  float translate_min, translate_max;
  float stretch_max;
  bool flip;
} pd_tta_spec;

typedef struct pd_input_spec {
  bool invert;
  float background; /* 0..255, before inversion */
  float mean, std;
} pd_input_spec;

typedef struct pd_model {
  char dir[4096];
  char name[PD_NAME_LEN];
  char version[PD_NAME_LEN];
  int n_classes;
  char **classes;
  pd_symmetry symmetry;
  int views; /* 1, 4 or 8 */
  pd_input_spec input;
  int n_branches;
  pd_branch branches[PD_MAX_BRANCHES];
  int head_in; /* sum of branch output widths */
  int n_head;
  pd_layer head[PD_MAX_LAYERS];
  pd_tta_spec tta;
  size_t n_params;

  float *weights; /* one allocation behind every layer's weight/bias */
} pd_model;

/* Loads and validates <dir>/model.yaml and <dir>/weights.safetensors. */
int pd_model_load(const char *dir, pd_model **out, pd_error *err);

/* The same from memory (used by tests and fuzzers). `yaml_name` and
 * `weights_name` are used only in error messages. */
int pd_model_load_mem(const char *yaml, size_t yaml_len, const char *yaml_name,
                      const unsigned char *weights, size_t weights_len, const char *weights_name,
                      pd_model **out, pd_error *err);

void pd_model_free(pd_model *m);

const char *pd_layer_kind_name(pd_layer_kind kind);

/* Floats of one image's input for branch b: size*size or n_features. */
size_t pd_model_branch_input_len(const pd_model *m, int b);

/* Multiply-adds x 2 of one image through the network (conv + dense). */
double pd_model_flops_per_image(const pd_model *m);

#endif
