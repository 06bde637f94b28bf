/* fuzz_kserve_rest: the KServe REST front end's request conversion
 * (pd_kserve_rest, then pd_kserve_infer as the daemon runs them). Byte 0:
 * bit 0 set means the body has an Inference-Header-Content-Length, whose
 * value is bytes 1-2 (little-endian, may exceed the body); the rest is the
 * body (JSON, then binary tensors).
 *
 * Oracles: a refusal has a status and a message; an accepted body gives a
 * request whose binary inputs lie inside the body's binary part, one per
 * input or none; what pd_kinfer_parse accepts is answered with
 * pd_krest_response, JSON and binary, and the JSON part parses again with
 * the crop count and, in binary, a binary_data_size that is exactly what
 * follows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_target.h"
#include "pd_kserve_infer.h"
#include "pd_kserve_rest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

static void check_answer(const pd_kinfer_request *kr, int n_classes, const char *buf, size_t len,
                         size_t jlen, int binary) {
  PD_FUZZ_ASSERT(jlen <= len);
  json_error_t e;
  json_t *o = json_loadb(buf, jlen, 0, &e);
  PD_FUZZ_ASSERT(o);
  json_t *t = json_array_get(json_object_get(o, "outputs"), 0);
  PD_FUZZ_ASSERT(t);
  json_t *shape = json_object_get(t, "shape");
  PD_FUZZ_ASSERT(json_integer_value(json_array_get(shape, 0)) == kr->n);
  long cols = kr->class_count > 0 ? kr->class_count : n_classes;
  PD_FUZZ_ASSERT(json_integer_value(json_array_get(shape, 1)) == cols);
  if (binary) {
    json_int_t size =
        json_integer_value(json_object_get(json_object_get(t, "parameters"), "binary_data_size"));
    PD_FUZZ_ASSERT((size_t)size == len - jlen);
  } else {
    PD_FUZZ_ASSERT(len == jlen);
    PD_FUZZ_ASSERT(json_array_size(json_object_get(t, "data")) == (size_t)(kr->n * cols));
  }
  json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  long long hl = (data[0] & 1) ? (long long)(data[1] | data[2] << 8) : -1;
  const uint8_t *body = data + 3;
  size_t len = size - 3;
  pd_krest_request r;
  char msg[256];
  int rc = pd_krest_parse(body, len, hl, &r, msg, sizeof msg);
  if (rc != 0) {
    PD_FUZZ_ASSERT(msg[0] && (rc == 3 || rc == 8));
    pd_krest_request_free(&r);
    return 0;
  }
  const Inference__ModelInferRequest *q = &r.req;
  PD_FUZZ_ASSERT(q->n_raw_input_contents == 0 || q->n_raw_input_contents == q->n_inputs);
  size_t jl = hl >= 0 ? (size_t)hl : len;
  for (size_t i = 0; i < q->n_raw_input_contents; i++) {
    const ProtobufCBinaryData *b = &q->raw_input_contents[i];
    PD_FUZZ_ASSERT(b->len == 0 || (b->data >= body + jl && b->data + b->len <= body + len));
  }
  int n_classes = 1 + (data[0] >> 1) % 16;
  pd_kinfer_request kr;
  q = &r.req;
  r.req.model_name = (char *)"m";
  if (pd_kinfer_parse(&r.req, 8, n_classes, &kr, msg, sizeof msg) == 0) {
    float *probs = calloc((size_t)kr.n * (size_t)n_classes, sizeof *probs);
    PD_FUZZ_ASSERT(probs);
    for (int i = 0; i < kr.n * n_classes; i++)
      probs[i] = (float)(i % 7) / 7.0f;
    for (int binary = 0; binary < 2; binary++) {
      char *buf;
      size_t blen, jlen;
      PD_FUZZ_ASSERT(pd_krest_response(&kr, binary, "m", "1", q->id, n_classes, probs, NULL, &buf,
                                       &blen, &jlen) == 0);
      check_answer(&kr, n_classes, buf, blen, jlen, binary);
      free(buf);
    }
    free(probs);
  }
  pd_kinfer_request_free(&kr);
  pd_krest_request_free(&r);
  return 0;
}
