/* pd_input_spec: what the input path needs to know about one model, as the
 * model loader (models/) fills it: the pixel normalisation, each branch's
 * input (an image patch with its rescale rule, or size features), the
 * symmetry (TTA flips depend on it) and the test-time augmentation spec
 * (models/FORMAT.md "input", "branches", "tta"). Plain values, no
 * behaviour; input/ depends on nothing in models/. */
#ifndef PD_INPUT_SPEC_H
#define PD_INPUT_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_graph.h"

#define PD_MAX_FEATURES 8

typedef enum { PD_INPUT_IMAGE = 0, PD_INPUT_SIZE_FEATURES } pd_input_kind;
typedef enum { PD_RESCALE_FIT = 0, PD_RESCALE_FIXED } pd_rescale;
typedef enum {
  PD_FEAT_LOG_WIDTH = 0,
  PD_FEAT_LOG_HEIGHT,
  PD_FEAT_LOG_AREA,
  PD_FEAT_ASPECT,
  PD_FEAT_LOG_LONG,      /* ln max(w, h): unchanged by a quarter turn */
  PD_FEAT_LOG_SHORT,     /* ln min(w, h) */
  PD_FEAT_LOG_ELONGATION /* ln(max / min) */
} pd_size_feature;
#define PD_FEATURE_KIND_COUNT 7

/* One branch's input. */
typedef struct pd_input_branch {
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
} pd_input_branch;

/* Pixel normalisation: v = (inverted? 255 - p : p) / 255, then (v - mean) / std. */
typedef struct pd_input_norm {
  bool invert;
  float background; /* 0..255, before inversion */
  float mean, std;
} pd_input_norm;

typedef struct pd_tta_spec {
  int count;
  float zoom_min, zoom_max;
  float rotation_min, rotation_max; /* degrees */
  float shear_min, shear_max;       /* degrees */
  float translate_min, translate_max;
  float stretch_max;
  bool flip;
} pd_tta_spec;

/* A model's whole input description, borrowed from the model (pd_model_input). */
typedef struct pd_input_desc {
  const pd_input_norm *norm;
  int n_branches;
  const pd_input_branch *branches; /* [n_branches] */
  pd_symmetry symmetry;
  const pd_tta_spec *tta;
} pd_input_desc;

/* Floats of one image's slot for a branch: size * size, or n_features. */
static inline size_t pd_input_branch_len(const pd_input_branch *b) {
  return b->kind == PD_INPUT_IMAGE ? (size_t)b->size * (size_t)b->size : (size_t)b->n_features;
}

#endif
