/* pd_kserve_frame: the frames variant of a served model on the Open
 * Inference Protocol, as pure conversions (no I/O, no daemon state; fuzzed
 * by tests/fuzz/fuzz_kserve_frame.c). Every served model M is also reachable
 * as "M.frames" (PD_KFRAME_SUFFIX): one whole camera frame per request,
 * segmented and classified by the core's pd_frame_job, as the native
 * FrameRequest is.
 *
 * Owns the checks of a frames ModelInferRequest (the inputs FRAME and
 * optional BACKGROUND, their datatypes and shapes, the segmentation and
 * classify parameters, the requested outputs) and their conversion into a
 * pd_frame_job's inputs; and the answer's layout from a finished job, as a
 * ModelInferResponse (gRPC) or JSON, JSON then binary (REST):
 *   BOXES         INT32 [n,4]        x, y, width, height in frame pixels
 *   AREAS         INT32 [n]          each object's own pixels
 *   PROBABILITIES FP32  [n,classes]  or, with class_count, BYTES [n,k] of
 *                                    "<probability>:<index>:<label>"
 * and the response parameters (int64) frame_width, frame_height,
 * objects_found, dropped_small, dropped_large, dropped_edge, dropped_cap,
 * absorbed, decode_us, segment_us, queue_us, compute_us and tta (the
 * fewest views any object got; absent for no object).
 * Errors are gRPC status codes with a message that names the input or the
 * parameter and the value. */
#ifndef PD_KSERVE_FRAME_H
#define PD_KSERVE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_service.pb-c.h"
#include "pd_frame_job.h"

#define PD_KFRAME_SUFFIX ".frames"
#define PD_KFRAME_INPUT "FRAME"
#define PD_KFRAME_BACKGROUND "BACKGROUND"
#define PD_KFRAME_BOXES "BOXES"
#define PD_KFRAME_AREAS "AREAS"
#define PD_KFRAME_PROBS "PROBABILITIES"

enum { PD_KFRAME_OUT_BOXES, PD_KFRAME_OUT_AREAS, PD_KFRAME_OUT_PROBS, PD_KFRAME_OUTS };

typedef struct pd_kframe_request {
  uint8_t *owned[2];          /* FRAME, BACKGROUND pixels from uint_contents; else NULL */
  uint64_t timeout_us;        /* the "timeout" parameter; 0: not given */
  int want[PD_KFRAME_OUTS];   /* outputs answered (all when none is named) */
  int binary[PD_KFRAME_OUTS]; /* REST: binary_data asked for the output */
  int class_count;            /* > 0: PROBABILITIES as the top class_count strings */
} pd_kframe_request;

/* 1 when `name` is a frames name ("M.frames" with M not empty), with M
 * copied into base[cap]; 0 otherwise (base untouched). */
int pd_kframe_base_name(const char *name, char *base, size_t cap);

/* Rewrites msg[cap], why the model `base` was not found, as the answer for
 * its frames name `name` ("'M.frames' (the frames variant of 'M'): ..."). */
void pd_kframe_not_found(const char *name, const char *base, char *msg, size_t cap);

/* Checks `req` and sets the inputs of `job` (frame, background, options,
 * tta, top_k, full_distribution; not model, client, deadline or the
 * callbacks): the job's image data points into `req` (or `out->owned`).
 * n_classes bounds class_count. Returns 0 or a gRPC status code with
 * msg[cap] saying why; free `out` with pd_kframe_request_free either way. */
int pd_kframe_parse(const Inference__ModelInferRequest *req, int n_classes, pd_kframe_request *out,
                    pd_frame_job *job, char *msg, size_t cap);
void pd_kframe_request_free(pd_kframe_request *r);

/* The answer to a finished job (status OK, every object OK): probabilities
 * come from job->objects[i].probs (n_classes each). With stream set, the
 * message is a ModelStreamInferResponse around it. *out is malloc'ed.
 * Returns 0 or a gRPC status code (out of memory). */
int pd_kframe_pack_response(const pd_kframe_request *rq, const pd_frame_job *job, const char *model,
                            const char *version, const char *id, int n_classes,
                            const char *const *labels, int stream, uint8_t **out, size_t *len);

/* The same answer as REST JSON; binary: every answered output as binary
 * data after the JSON (*json_len is the JSON's length), else only those
 * whose binary_data was asked for. */
int pd_kframe_rest_response(const pd_kframe_request *rq, const pd_frame_job *job, int binary,
                            const char *model, const char *version, const char *id, int n_classes,
                            const char *const *labels, char **out, size_t *len, size_t *json_len);

/* The first object that failed (its index), or -1 when all are OK. */
int pd_kframe_failed_object(const pd_frame_job *job);

#endif
