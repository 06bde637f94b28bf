/* pd_kserve_rest: the Open Inference Protocol's REST inference request and
 * answer as pure conversions (no I/O; fuzzed by
 * tests/fuzz/fuzz_kserve_rest.c). Owns the JSON side: a POST .../infer body
 * (JSON, or JSON then binary tensors: Triton's binary tensor extension, the
 * JSON's length in Inference-Header-Content-Length and each binary input's
 * size in its binary_data_size parameter) becomes the same
 * ModelInferRequest the gRPC front end receives, so pd_kserve_infer checks
 * both alike; the answer becomes JSON (data inline) or JSON then binary
 * (binary_data on an output or binary_data_output on the request).
 * Every refusal is a gRPC status code and a message naming the field, the
 * input and the sizes. */
#ifndef PD_KSERVE_REST_H
#define PD_KSERVE_REST_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_service.pb-c.h"
#include "pd_kserve_infer.h"

typedef struct pd_krest_request {
  Inference__ModelInferRequest req; /* points into the body and the arena */
  int binary_output;                /* binary_data_output: true */
  void *json;                       /* the parsed header (json_t *) */
  void *arena;
} pd_krest_request;

/* body[len]: the request body; header_len: the value of
 * Inference-Header-Content-Length, -1 when absent (all JSON). The body must
 * outlive `out`. Returns 0 or a gRPC status code with msg[cap]; free `out`
 * with pd_krest_request_free either way. */
int pd_krest_parse(const uint8_t *body, size_t len, long long header_len, pd_krest_request *out,
                   char *msg, size_t cap);
void pd_krest_request_free(pd_krest_request *r);

/* The answer to an accepted request. binary: the output as binary data
 * after the JSON (*json_len is then the JSON's length, for
 * Inference-Header-Content-Length). *out is malloc'ed. Returns 0 or a gRPC
 * code (out of memory). */
int pd_krest_response(const pd_kinfer_request *rq, int binary, const char *model,
                      const char *version, const char *id, int n_classes, const float *probs,
                      const char *const *labels, char **out, size_t *len, size_t *json_len);

/* {"error": message} (malloc'ed). */
char *pd_krest_error_json(const char *message, size_t *len);

/* The HTTP status for a gRPC status code. */
int pd_krest_http_status(int grpc_code);

#endif
