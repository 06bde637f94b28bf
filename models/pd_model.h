/* pd_model: a loaded, validated model folder (models/FORMAT.md). Owns the
 * class labels, the input description (normalisation, each branch's input,
 * the TTA spec: input/pd_input_spec.h) and the graph a backend runs
 * (kernels/pd_graph.h: the branch and head layer lists with their inferred
 * shapes, and the weights already converted to the engine's layouts).
 * Immutable after load, so any number of backends and threads may read it. */
#ifndef PD_MODEL_H
#define PD_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_error.h"
#include "pd_graph.h"
#include "pd_input.h"
#include "pd_segment.h"

/* A recorded bf16-vs-fp32 comparison on validation crops (FORMAT.md
 * "Precision"; written by planktond-model precision-check --write). */
typedef struct pd_precision_record {
  bool present;
  char weights_sha256[65]; /* of weights.safetensors when measured */
  int crops;               /* compared */
  double top1_same;        /* fraction of crops with the same top-1 class as fp32 */
  double log_loss_fp32, log_loss_bf16;
} pd_precision_record;

/* serving: {max_batch, max_queue_delay_us} (FORMAT.md "Serving"): the
 * daemon's batching for this model folder, in place of batching.max_batch
 * and batching.max_queue_delay_us; all zero: nothing given (the daemon's). */
typedef struct pd_serving {
  int max_batch;            /* images per batch (TTA views count each); 0: not given */
  bool has_max_queue_delay; /* max_queue_delay_us was given */
  int max_queue_delay_us;
} pd_serving;

/* segmentation: of a model.yaml (models/FORMAT.md "Segmentation"): how the
 * frame path cuts crops for this model, over pd_segment_settings_default;
 * a frame request's own choices go over these. */
typedef struct pd_segmentation {
  bool present;          /* the block was given */
  pd_segment_settings s; /* the defaults with its keys applied (checked) */
} pd_segmentation;

typedef struct pd_model {
  char dir[4096];
  char name[PD_NAME_LEN];
  char version[PD_NAME_LEN];
  int n_classes;
  char **classes;
  pd_symmetry symmetry;
  int views; /* 1, 4 or 8 */
  pd_input_norm input;
  int n_branches;
  pd_input_branch branches[PD_MAX_BRANCHES]; /* each branch's input */
  pd_tta_spec tta;
  float temperature;            /* calibration (FORMAT.md): p = softmax(ln p_tta / T); 1 = none */
  pd_precision_record bf16;     /* precision.bf16, if recorded */
  pd_serving serving;           /* serving:, if given */
  pd_segmentation segmentation; /* segmentation:, if given */
  float *thresholds;            /* thresholds: per class (0: none for it); NULL: not given */
  char **lineage;               /* lineage: per class, "Root>...>Taxon"; NULL: not given */
  pd_graph graph;               /* what a backend plans: the layers, their shapes and weights */
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

/* Floats of one image's input for branch b: size*size or n_features. */
size_t pd_model_branch_input_len(const pd_model *m, int b);

/* Multiply-adds x 2 of one image through the network (conv + dense). */
double pd_model_flops_per_image(const pd_model *m);

/* The model's input description for pd_input.h (borrows from m). */
pd_input_desc pd_model_input(const pd_model *m);

/* pd_input_fill_view with the model's description: one view of every
 * branch, slots[b] getting pd_model_branch_input_len(m, b) floats. */
void pd_model_fill_view(const pd_model *m, const uint8_t *px, int w, int h, const pd_warp_aug *aug,
                        float *const *slots);

/* n views with the given transforms (augs NULL: identity), view t of
 * branch b at first[b] + t * pd_model_branch_input_len(m, b). */
void pd_model_fill_views(const pd_model *m, const uint8_t *px, int w, int h,
                         const pd_warp_aug *augs, int n, float *const *first);

#endif
