/* fuzz_kserve_infer: the KServe front end's request conversion
 * (pd_kserve_infer). The input is a ModelInferRequest as a client would
 * put it on the wire; byte 0 picks the crop limit (1 + byte0 % 64) and the
 * class count (1 + byte0 / 64 * 40), the rest is the protobuf message.
 * Whatever unpacks goes through pd_kinfer_parse, and an accepted request is
 * answered with pd_kinfer_pack_response (probabilities made up from the
 * crop index), in both the unary and the stream framing.
 *
 * Oracles: a refusal has a status and a message; an accepted request has
 * 1..limit crops, each non-empty and inside the message (or the converted
 * pixels), a raw crop's size equal to its width x height; the packed answer
 * unpacks again with the request's crop count and the requested layout:
 * FP32 [N, classes] with the same bytes, or BYTES [N, k] whose k x N
 * entries are length-framed "<p>:<index>[:<label>]" strings, best first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "grpc_service.pb-c.h"
#include "pd_kserve_infer.h"

static int in_range(const uint8_t *p, size_t len, const uint8_t *lo, size_t n) {
  return p >= lo && p + len <= lo + n;
}

/* inside one of the message's binary fields */
static int crop_inside(const Inference__ModelInferRequest *req, const pd_kinfer_request *r,
                       const pd_kinfer_crop *c) {
  if (r->owned) return 1; /* checked by the size oracle */
  for (size_t i = 0; i < req->n_raw_input_contents; i++)
    if (in_range(c->data, c->len, req->raw_input_contents[i].data, req->raw_input_contents[i].len))
      return 1;
  const Inference__InferTensorContents *tc = req->n_inputs ? req->inputs[0]->contents : NULL;
  if (tc)
    for (size_t i = 0; i < tc->n_bytes_contents; i++)
      if (c->data == tc->bytes_contents[i].data && c->len == tc->bytes_contents[i].len) return 1;
  return 0;
}

static void check_answer(const pd_kinfer_request *r, int n_classes, const float *probs,
                         const uint8_t *buf, size_t len, int stream) {
  Inference__ModelInferResponse *resp;
  Inference__ModelStreamInferResponse *s = NULL;
  if (stream) {
    s = inference__model_stream_infer_response__unpack(NULL, len, buf);
    PD_FUZZ_ASSERT(s && s->infer_response);
    resp = s->infer_response;
  } else {
    resp = inference__model_infer_response__unpack(NULL, len, buf);
    PD_FUZZ_ASSERT(resp);
  }
  PD_FUZZ_ASSERT(resp->n_outputs == 1 && resp->n_raw_output_contents == 1);
  const Inference__ModelInferResponse__InferOutputTensor *t = resp->outputs[0];
  PD_FUZZ_ASSERT(strcmp(t->name, PD_KINFER_OUTPUT) == 0 && t->n_shape == 2);
  PD_FUZZ_ASSERT(t->shape[0] == r->n);
  const ProtobufCBinaryData *raw = &resp->raw_output_contents[0];
  if (r->class_count == 0) {
    PD_FUZZ_ASSERT(strcmp(t->datatype, "FP32") == 0 && t->shape[1] == n_classes);
    PD_FUZZ_ASSERT(raw->len == (size_t)r->n * (size_t)n_classes * sizeof(float));
    PD_FUZZ_ASSERT(memcmp(raw->data, probs, raw->len) == 0);
  } else {
    PD_FUZZ_ASSERT(strcmp(t->datatype, "BYTES") == 0 && t->shape[1] == r->class_count);
    size_t off = 0;
    for (int i = 0; i < r->n; i++) {
      float prev = 2.0f;
      for (int j = 0; j < r->class_count; j++) {
        PD_FUZZ_ASSERT(raw->len - off >= 4);
        uint32_t l = (uint32_t)raw->data[off] | (uint32_t)raw->data[off + 1] << 8 |
                     (uint32_t)raw->data[off + 2] << 16 | (uint32_t)raw->data[off + 3] << 24;
        off += 4;
        PD_FUZZ_ASSERT(l <= raw->len - off && l < 200);
        char str[200];
        memcpy(str, raw->data + off, l);
        str[l] = 0;
        off += l;
        char *end;
        float p = strtof(str, &end);
        PD_FUZZ_ASSERT(*end == ':');
        long idx = strtol(end + 1, &end, 10);
        PD_FUZZ_ASSERT(*end == ':');
        const char *label = end + 1;
        PD_FUZZ_ASSERT(idx >= 0 && idx < n_classes);
        char want[16];
        snprintf(want, sizeof want, "c%ld", idx);
        PD_FUZZ_ASSERT(strcmp(label, want) == 0);
        PD_FUZZ_ASSERT(p <= prev + 1e-6f);
        prev = p;
      }
    }
    PD_FUZZ_ASSERT(off == raw->len);
  }
  if (s)
    inference__model_stream_infer_response__free_unpacked(s, NULL);
  else
    inference__model_infer_response__free_unpacked(resp, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int max_crops = 1 + data[0] % 64;
  int n_classes = 1 + data[0] / 64 * 40;
  Inference__ModelInferRequest *req =
      inference__model_infer_request__unpack(NULL, size - 1, data + 1);
  if (!req) return 0;
  pd_kinfer_request r;
  char msg[256];
  int rc = pd_kinfer_parse(req, max_crops, n_classes, &r, msg, sizeof msg);
  if (rc != 0) {
    PD_FUZZ_ASSERT(msg[0] != 0);
    PD_FUZZ_ASSERT(rc == 3 || rc == 8);
  } else {
    PD_FUZZ_ASSERT(r.n >= 1 && r.n <= max_crops && r.crops);
    PD_FUZZ_ASSERT(r.class_count >= 0 && r.class_count <= n_classes);
    PD_FUZZ_ASSERT(r.want_probs);
    for (int i = 0; i < r.n; i++) {
      const pd_kinfer_crop *c = &r.crops[i];
      PD_FUZZ_ASSERT(c->len > 0 && c->data);
      PD_FUZZ_ASSERT(crop_inside(req, &r, c));
      if (c->gray8) PD_FUZZ_ASSERT(c->len == (size_t)c->width * (size_t)c->height);
    }
    float *probs = malloc((size_t)r.n * (size_t)n_classes * sizeof *probs);
    const char **labels = malloc((size_t)n_classes * sizeof *labels);
    char(*names)[16] = malloc((size_t)n_classes * sizeof *names);
    PD_FUZZ_ASSERT(probs && labels && names);
    for (int c = 0; c < n_classes; c++) {
      snprintf(names[c], sizeof names[c], "c%d", c);
      labels[c] = names[c];
    }
    for (int i = 0; i < r.n * n_classes; i++)
      probs[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (int stream = 0; stream < 2; stream++) {
      uint8_t *buf = NULL;
      size_t len = 0;
      PD_FUZZ_ASSERT(pd_kinfer_pack_response(&r, req->model_name, req->model_version, req->id,
                                             n_classes, probs, labels, stream, &buf, &len) == 0);
      check_answer(&r, n_classes, probs, buf, len, stream);
      free(buf);
    }
    free(probs);
    free(labels);
    free(names);
  }
  pd_kinfer_request_free(&r);
  inference__model_infer_request__free_unpacked(req, NULL);
  return 0;
}
