/* fuzz_kserve_frame: the KServe frames variant's conversions
 * (pd_kserve_frame) from the wire to the answer, without a pipeline. Byte 0
 * picks the class count (1 + byte0 % 40), the rest is a ModelInferRequest
 * as a client would put it on the wire. Whatever unpacks goes through
 * pd_kframe_parse, an accepted request through the core's checks
 * (pd_frame_job_check, 64 Kpx frames) and the segmentation on this thread;
 * every object then gets made-up probabilities and the answer is packed as
 * gRPC (unary and stream) and as REST JSON (inline and binary).
 *
 * Oracles: a refusal has a status and a message; an accepted request has a
 * frame of a known format whose bytes lie inside the message (or the
 * converted pixels), a raw frame's height and width from its shape, and
 * segmentation options in range; the gRPC answer unpacks with BOXES [n,4]
 * equal to the objects' boxes, AREAS [n] and PROBABILITIES [n, classes]
 * (or BYTES [n,k]) as requested; the REST answer's JSON parses and names
 * as many outputs, with binary sizes that add up to the bytes after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_target.h"
#include "grpc_service.pb-c.h"
#include "pd_kserve_frame.h"

static int inside(const Inference__ModelInferRequest *req, const pd_kframe_request *kr,
                  const pd_frame_image *im) {
  if (im->data == kr->owned[0] || im->data == kr->owned[1]) return im->data != NULL;
  for (size_t i = 0; i < req->n_raw_input_contents; i++) {
    const ProtobufCBinaryData *r = &req->raw_input_contents[i];
    if (im->data >= r->data && im->data + im->len <= r->data + r->len) return 1;
  }
  for (size_t i = 0; i < req->n_inputs; i++) {
    const Inference__InferTensorContents *c = req->inputs[i]->contents;
    for (size_t j = 0; c && j < c->n_bytes_contents; j++)
      if (im->data == c->bytes_contents[j].data && im->len == c->bytes_contents[j].len) return 1;
  }
  return 0;
}

static void check_grpc(const pd_kframe_request *kr, const pd_frame_job *job, int n_classes,
                       const uint8_t *buf, size_t len, int stream) {
  Inference__ModelStreamInferResponse *s = NULL;
  Inference__ModelInferResponse *r;
  if (stream) {
    s = inference__model_stream_infer_response__unpack(NULL, len, buf);
    PD_FUZZ_ASSERT(s && s->infer_response);
    r = s->infer_response;
  } else {
    r = inference__model_infer_response__unpack(NULL, len, buf);
    PD_FUZZ_ASSERT(r);
  }
  const int n = job->seg.count;
  size_t want = 0;
  for (int i = 0; i < PD_KFRAME_OUTS; i++)
    want += (size_t)(kr->want[i] != 0);
  PD_FUZZ_ASSERT(r->n_outputs == want && r->n_raw_output_contents == want);
  for (size_t i = 0; i < r->n_outputs; i++) {
    const Inference__ModelInferResponse__InferOutputTensor *t = r->outputs[i];
    const ProtobufCBinaryData *raw = &r->raw_output_contents[i];
    PD_FUZZ_ASSERT(t->n_shape >= 1 && t->shape[0] == n);
    if (!strcmp(t->name, PD_KFRAME_BOXES)) {
      PD_FUZZ_ASSERT(raw->len == (size_t)n * 16);
      for (int j = 0; j < n; j++) {
        int32_t b[4];
        memcpy(b, raw->data + (size_t)j * 16, 16);
        const pd_segment_object *o = &job->seg.objects[j];
        PD_FUZZ_ASSERT(b[0] == o->x && b[1] == o->y && b[2] == o->width && b[3] == o->height);
      }
    } else if (!strcmp(t->name, PD_KFRAME_AREAS)) {
      PD_FUZZ_ASSERT(raw->len == (size_t)n * 4);
    } else {
      PD_FUZZ_ASSERT(!strcmp(t->name, PD_KFRAME_PROBS) && t->n_shape == 2);
      if (kr->class_count == 0)
        PD_FUZZ_ASSERT(t->shape[1] == n_classes &&
                       raw->len == (size_t)n * (size_t)n_classes * sizeof(float));
      else
        PD_FUZZ_ASSERT(t->shape[1] == kr->class_count && !strcmp(t->datatype, "BYTES"));
    }
  }
  if (s)
    inference__model_stream_infer_response__free_unpacked(s, NULL);
  else
    inference__model_infer_response__free_unpacked(r, NULL);
}

static void check_rest(const pd_kframe_request *kr, const char *body, size_t len, size_t jlen,
                       int binary) {
  const size_t jl = jlen ? jlen : len;
  PD_FUZZ_ASSERT(jl <= len);
  json_error_t e;
  json_t *root = json_loadb(body, jl, 0, &e);
  PD_FUZZ_ASSERT(root != NULL);
  json_t *outs = json_object_get(root, "outputs");
  size_t want = 0, bin = 0, i;
  for (int w = 0; w < PD_KFRAME_OUTS; w++)
    want += (size_t)(kr->want[w] != 0);
  PD_FUZZ_ASSERT(json_is_array(outs) && json_array_size(outs) == want);
  json_t *o;
  json_array_foreach(outs, i, o) {
    json_t *p = json_object_get(o, "parameters");
    json_t *b = p ? json_object_get(p, "binary_data_size") : NULL;
    PD_FUZZ_ASSERT(b || json_is_array(json_object_get(o, "data")));
    PD_FUZZ_ASSERT(!binary || b);
    if (b) bin += (size_t)json_integer_value(b);
  }
  PD_FUZZ_ASSERT(jl + bin == len);
  json_decref(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  pd_segment_set_log(NULL); /* leptonica's messages dropped, as the daemon's are */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const int n_classes = 1 + data[0] % 40;
  Inference__ModelInferRequest *req =
      inference__model_infer_request__unpack(NULL, size - 1, data + 1);
  if (!req) return 0;
  pd_frame_job job;
  memset(&job, 0, sizeof job);
  pd_kframe_request kr;
  char msg[400];
  int rc = pd_kframe_parse(req, n_classes, &kr, &job, msg, sizeof msg);
  if (rc != 0) {
    PD_FUZZ_ASSERT(msg[0] != '\0');
    pd_kframe_request_free(&kr);
    inference__model_infer_request__free_unpacked(req, NULL);
    return 0;
  }
  PD_FUZZ_ASSERT(job.frame.format == PD_FORMAT_AUTO || job.frame.format == PD_FORMAT_RAW_GRAY8 ||
                 job.frame.format == PD_FORMAT_RAW_GRAY16);
  PD_FUZZ_ASSERT(inside(req, &kr, &job.frame));
  PD_FUZZ_ASSERT(!job.has_background || inside(req, &kr, &job.background));
  PD_FUZZ_ASSERT(job.opt.keep_edge >= -1 && job.opt.keep_edge <= 1);
  PD_FUZZ_ASSERT(job.opt.background >= -1 && job.opt.background <= 1);
  PD_FUZZ_ASSERT(kr.class_count >= 0 && kr.class_count <= n_classes);
  const pd_pipeline_limits lim = {.max_tta = 64, .max_frame_pixels = 1L << 16};
  float *probs = NULL;
  if (pd_frame_job_check(&job, &lim)) {
    pd_frame_job_segment(&job);
    if (job.status == PD_STATUS_OK && job.seg.count > 0) {
      job.objects = calloc((size_t)job.seg.count, sizeof *job.objects);
      probs = calloc((size_t)job.seg.count * (size_t)n_classes, sizeof *probs);
      PD_FUZZ_ASSERT(job.objects && probs);
      for (int i = 0; i < job.seg.count; i++) {
        job.objects[i].views = 1;
        job.objects[i].probs = probs + (size_t)i * (size_t)n_classes;
        for (int c = 0; c < n_classes; c++)
          job.objects[i].probs[c] = (float)((i + c) % 7) / 7.0f;
      }
    }
  }
  if (job.status == PD_STATUS_OK) {
    PD_FUZZ_ASSERT(pd_kframe_failed_object(&job) == -1);
    for (int stream = 0; stream < 2; stream++) {
      uint8_t *buf = NULL;
      size_t len = 0;
      PD_FUZZ_ASSERT(pd_kframe_pack_response(&kr, &job, "m.frames", "1", req->id, n_classes, NULL,
                                             stream, &buf, &len) == 0);
      check_grpc(&kr, &job, n_classes, buf, len, stream);
      free(buf);
    }
    for (int binary = 0; binary < 2; binary++) {
      char *body = NULL;
      size_t len = 0, jlen = 0;
      PD_FUZZ_ASSERT(pd_kframe_rest_response(&kr, &job, binary, "m.frames", "1", req->id, n_classes,
                                             NULL, &body, &len, &jlen) == 0);
      check_rest(&kr, body, len, jlen, binary);
      free(body);
    }
  } else {
    PD_FUZZ_ASSERT(job.message[0] != '\0');
  }
  for (int i = 0; job.objects && i < job.seg.count; i++)
    job.objects[i].probs = NULL; /* ours, not the core's */
  free(probs);
  pd_frame_job_dispose(&job);
  pd_kframe_request_free(&kr);
  inference__model_infer_request__free_unpacked(req, NULL);
  return 0;
}
