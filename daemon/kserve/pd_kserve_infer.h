/* pd_kserve_infer: the Open Inference Protocol's inference request and
 * answer as planktond understands them, as pure conversions (no I/O, no
 * daemon state; fuzzed by tests/fuzz/fuzz_kserve_infer.c). Owns the
 * checks of a ModelInferRequest (one input, its datatype and shape, the
 * element framing, the parameters, the requested outputs) and the layout
 * of the answer (PROBABILITIES FP32 [N, classes]; the classification
 * extension's BYTES [N, k] of "<probability>:<index>:<label>", best first,
 * as Triton formats them).
 *
 * The input (KSERVE_INPUT, "IMAGE") is one of:
 *   BYTES [N] or [N,1]: encoded PNG/JPEG crops, in raw_input_contents (each
 *     element a 4-byte little-endian length, then its bytes) or in
 *     contents.bytes_contents (one entry per element);
 *   UINT8 [N,H,W] or [N,H,W,1]: gray pixels, row-major, in
 *     raw_input_contents or contents.uint_contents.
 * Errors are gRPC status codes with a message that names the element (by
 * index), the field and the value. */
#ifndef PD_KSERVE_INFER_H
#define PD_KSERVE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_service.pb-c.h"

#define PD_KINFER_INPUT "IMAGE"
#define PD_KINFER_OUTPUT "PROBABILITIES"

typedef struct pd_kinfer_crop {
  int gray8; /* 0: PNG or JPEG bytes (sniffed); 1: width x height gray pixels */
  const uint8_t *data;
  size_t len;
  int width, height;
} pd_kinfer_crop;

typedef struct pd_kinfer_request {
  int n;                 /* crops */
  pd_kinfer_crop *crops; /* point into the request message (or `owned`) */
  uint8_t *owned;        /* pixels converted from uint_contents; NULL otherwise */
  long tta;              /* the "tta" parameter; -1: not given */
  uint64_t timeout_us;   /* the "timeout" parameter; 0: not given */
  int want_probs;        /* PROBABILITIES is answered */
  int class_count;       /* > 0: PROBABILITIES answered as the top class_count strings */
  int probs_binary;      /* REST: binary_data asked for the output */
  /* set by the caller before packing the answer: the fewest TTA views any
   * crop got (fewer than asked under batching.adaptive_tta), reported as
   * the response parameter "tta"; 0: not reported */
  int views;
  /* set by the caller: the model's thresholds (models/FORMAT.md
   * "Thresholds"; NULL: none), reported as the answer's parameter
   * "unclassified" */
  const float *thresholds;
} pd_kinfer_request;

/* PD_KINFER_UNCLASSIFIED_PARAM: for a model with thresholds, the answer's
 * string parameter of one '0' or '1' per crop in input order, comma
 * separated ("0,1,0"): 1 when the crop's top class is below its threshold
 * (PROBABILITIES stays the raw scores). */
#define PD_KINFER_UNCLASSIFIED_PARAM "unclassified"
/* That string for rq's crops (malloc'ed), or NULL when rq has no
 * thresholds or memory ran out (*oom then set). */
char *pd_kinfer_unclassified(const pd_kinfer_request *rq, int n_classes, const float *probs,
                             int *oom);

/* A JSON object of n entries keys[i] -> numbers[i] (the fewest digits that read back as the same
 * float) or, with numbers NULL, -> strings[i], malloc'ed (NULL: out of memory): ModelConfig's
 * parameters "thresholds" and "lineage" (class label -> value). */
char *pd_kinfer_json_map(int n, const char *const *keys, const float *numbers,
                         const char *const *strings);

/* PD_KINFER_VIEWS_PARAM: the answer's parameter with the views. */
#define PD_KINFER_VIEWS_PARAM "tta"

/* Checks `req` and fills `out` (free with pd_kinfer_request_free, also
 * after a failure). `max_crops` bounds N, `n_classes` bounds class_count.
 * Returns 0 or a gRPC status code with msg[cap] saying why. */
int pd_kinfer_parse(const Inference__ModelInferRequest *req, int max_crops, int n_classes,
                    pd_kinfer_request *out, char *msg, size_t cap);
void pd_kinfer_request_free(pd_kinfer_request *r);

/* One classification entry as Triton writes it: "%f:%d" and ":label" when
 * there is a label. Returns the length written (truncated to cap - 1). */
int pd_kinfer_class_string(float prob, int index, const char *label, char *buf, size_t cap);

/* The indices of the k best of probs[n] (best first; ties: lower index)
 * into idx[k]; returns how many it wrote (min(k, n)). */
int pd_kinfer_top_k(const float *probs, int n, int k, int *idx);

/* Packs the answer to `rq`: probs holds n x n_classes. labels may be NULL.
 * With stream set, the message is a ModelStreamInferResponse around it.
 * *out is malloc'ed. Returns 0 or a gRPC status code (out of memory). */
int pd_kinfer_pack_response(const pd_kinfer_request *rq, const char *model, const char *version,
                            const char *id, int n_classes, const float *probs,
                            const char *const *labels, int stream, uint8_t **out, size_t *len);

/* A ModelStreamInferResponse carrying only an error message. */
int pd_kinfer_pack_stream_error(const char *message, uint8_t **out, size_t *len);

#endif
