/* pd_model_internal: what the loader's three stages share (pd_model.c
 * drives them): the limits, the loading state, and the message helpers.
 * Not for use outside models/pd_model*.c. */
#ifndef PD_MODEL_INTERNAL_H
#define PD_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pd_model.h"
#include "pd_yaml.h"

#define PD_MAX_IMAGE_SIZE 1024
#define PD_MAX_WIDTH 65536 /* conv filters, dense units */
#define PD_MAX_CLASSES 10000
#define PD_MAX_LABEL_LEN 127
#define PD_MAX_LINEAGE_LEN 1023 /* bytes of one class's "A>B>C" */
#define PD_MAX_LINEAGE_DEPTH 32
#define PD_MAX_KERNEL 64 /* conv kernel and pad, pool size and stride */
#define PD_MAX_CHANNELS (1 << 20)
#define PD_MAX_ACTIVATION ((uint64_t)1 << 28) /* floats of one image's activation */
#define PD_MAX_TTA 1024
#define PD_MAX_YAML_BYTES ((off_t)16 << 20)
#define PD_MAX_WEIGHT_BYTES ((off_t)16 << 30)
#define PD_ALIGN_FLOATS 16 /* each weight and bias block starts 64-byte aligned */
#define PD_MAX_ALL_LAYERS (PD_MAX_BRANCHES * PD_MAX_LAYERS + PD_MAX_LAYERS)

/* Loading state: names for messages and the lines of what is checked later. */
typedef struct load_ctx {
  pd_model *m;
  const char *yaml_name, *weights_name;
  pd_error *err;
  int branch_line[PD_MAX_BRANCHES];
  int head_line;
  int n_all;
  pd_layer *all[PD_MAX_ALL_LAYERS]; /* every layer, branches then head */
} load_ctx;

extern const char *const pd_model__cpool_names[3];

/* "conv 16 3x3/1 pad 1", "maxpool 3/2", ... into buf. */
const char *pd_model__describe_layer(const pd_layer *l, char *buf, size_t cap);
/* "4 views of 10x10x16" into buf. */
const char *pd_model__describe_shape(pd_shape s, char *buf, size_t cap);
/* "<yaml>:<line>: layer <name> (<description>): <message>" */
int pd_model__layer_fail(const load_ctx *c, const pd_layer *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Stage 1 (pd_model_parse.c): model.yaml into c->m (names, classes, input,
 * branch inputs, layer lists, tta). */
int pd_model__parse(load_ctx *c, const pd_yaml_node *root);
/* PD_EUNSUPP naming the line when root describes an ensemble folder. */
int pd_model__refuse_ensemble(const pd_yaml_node *root, pd_error *err);
/* serving: {max_batch: 1..4096, max_queue_delay_us: 0..10000000} of a model
 * or ensemble model.yaml; absent keys stay 0 (not given). */
int pd_model__parse_serving(const pd_yaml_node *root, pd_serving *out, pd_error *err);
/* segmentation: {background, threshold, min_area, max_area, connectivity,
 * max_objects, keep_edge, margin, merge_gap, satellite_area} of a model or
 * an ensemble (models/FORMAT.md "Segmentation"); checked as a whole. */
int pd_model__parse_segmentation(const pd_yaml_node *root, pd_segmentation *out, pd_error *err);
/* thresholds: and lineage: (pd_model_outputs.c), after the classes. */
int pd_model__parse_outputs(load_ctx *c, const pd_yaml_node *root);
/* Stage 2 (pd_model_shape.c): every layer's shapes, the symmetry rules, the graph's totals. */
int pd_model__infer(load_ctx *c);
/* Stage 3 (pd_model_weights.c): the tensors checked against the layers and converted. */
int pd_model__load_weights(load_ctx *c, const unsigned char *buf, size_t len);

#endif
