/* test_kserve_infer: the KServe request and answer conversions
 * (pd_kserve_infer) on requests built with the protoc-c code, packed and
 * unpacked as on the wire: BYTES crops in raw_input_contents and in
 * bytes_contents, UINT8 pixels both ways, [N] / [N,1] / [N,H,W,1] shapes,
 * the parameters, the requested outputs and the classification strings in
 * Triton's format; and every refusal names what is wrong (the element by
 * index). Cases (pd_test_cases.h): bytes, uint8, refusals, answer.
 * `test_kserve_infer corpus DIR` runs them all and writes the fuzz seed
 * corpus (tests/fuzz/corpus/kserve_infer) from the same requests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "pd_kserve_infer.h"
#include "pd_test_cases.h"

/* A request under construction: one input, optional outputs and params. */
typedef struct builder {
  Inference__ModelInferRequest req;
  Inference__ModelInferRequest__InferInputTensor in;
  Inference__ModelInferRequest__InferInputTensor *ins[1];
  Inference__InferTensorContents contents;
  int64_t shape[4];
  ProtobufCBinaryData raw;
  ProtobufCBinaryData elems[8];
  uint32_t uints[64];
  Inference__ModelInferRequest__InferRequestedOutputTensor out;
  Inference__ModelInferRequest__InferRequestedOutputTensor *outs[2];
  Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry oparam;
  Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry *oparams[1];
  Inference__InferParameter oval;
  Inference__ModelInferRequest__ParametersEntry params[2];
  Inference__ModelInferRequest__ParametersEntry *pparams[2];
  Inference__InferParameter pvals[2];
  uint8_t rawbuf[512];
} builder;

static void b_init(builder *b, const char *datatype, const int64_t *shape, int n_shape) {
  memset(b, 0, sizeof *b);
  b->req = (Inference__ModelInferRequest)INFERENCE__MODEL_INFER_REQUEST__INIT;
  b->in = (Inference__ModelInferRequest__InferInputTensor)
      INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
  b->contents = (Inference__InferTensorContents)INFERENCE__INFER_TENSOR_CONTENTS__INIT;
  b->in.name = (char *)"IMAGE";
  b->in.datatype = (char *)datatype;
  memcpy(b->shape, shape, (size_t)n_shape * sizeof *shape);
  b->in.shape = b->shape;
  b->in.n_shape = (size_t)n_shape;
  b->ins[0] = &b->in;
  b->req.inputs = b->ins;
  b->req.n_inputs = 1;
  b->req.model_name = (char *)"ndsb-seed";
}

/* BYTES elements framed in raw_input_contents */
static void b_raw_elements(builder *b, const char *const *el, int n) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    uint32_t l = (uint32_t)strlen(el[i]);
    b->rawbuf[off] = (uint8_t)l;
    b->rawbuf[off + 1] = (uint8_t)(l >> 8);
    b->rawbuf[off + 2] = 0;
    b->rawbuf[off + 3] = 0;
    memcpy(b->rawbuf + off + 4, el[i], l);
    off += 4 + l;
  }
  b->raw.data = b->rawbuf;
  b->raw.len = off;
  b->req.raw_input_contents = &b->raw;
  b->req.n_raw_input_contents = 1;
}

static void b_output(builder *b, const char *name, const char *param, long long value) {
  b->out = (Inference__ModelInferRequest__InferRequestedOutputTensor)
      INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
  b->out.name = (char *)name;
  if (param) {
    b->oparam = (Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry)
        INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__PARAMETERS_ENTRY__INIT;
    b->oval = (Inference__InferParameter)INFERENCE__INFER_PARAMETER__INIT;
    b->oval.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    b->oval.int64_param = value;
    b->oparam.key = (char *)param;
    b->oparam.value = &b->oval;
    b->oparams[0] = &b->oparam;
    b->out.parameters = b->oparams;
    b->out.n_parameters = 1;
  }
  b->outs[b->req.n_outputs++] = &b->out;
  b->req.outputs = b->outs;
}

static void b_param(builder *b, const char *key, long long value) {
  size_t i = b->req.n_parameters++;
  b->params[i] = (Inference__ModelInferRequest__ParametersEntry)
      INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
  b->pvals[i] = (Inference__InferParameter)INFERENCE__INFER_PARAMETER__INIT;
  b->pvals[i].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  b->pvals[i].int64_param = value;
  b->params[i].key = (char *)key;
  b->params[i].value = &b->pvals[i];
  b->pparams[i] = &b->params[i];
  b->req.parameters = b->pparams;
}

static const char *g_corpus;
static int g_seeds;

/* Packs the request as a client would send it, unpacks it as the daemon
 * does, and parses that; writes it as a seed when making the corpus. */
static int roundtrip_parse(builder *b, int max_crops, int n_classes, pd_kinfer_request *r,
                           Inference__ModelInferRequest **wire, char *msg, size_t cap) {
  size_t n = inference__model_infer_request__get_packed_size(&b->req);
  uint8_t *buf = malloc(n + 1);
  inference__model_infer_request__pack(&b->req, buf + 1);
  if (g_corpus) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed_%02d.bin", g_corpus, g_seeds++);
    buf[0] = (uint8_t)((max_crops - 1) % 64 + (n_classes > 1 ? 64 : 0));
    FILE *f = fopen(path, "wb");
    if (f) {
      fwrite(buf, 1, n + 1, f);
      fclose(f);
    }
  }
  *wire = inference__model_infer_request__unpack(NULL, n, buf + 1);
  free(buf);
  if (!*wire) return -1;
  return pd_kinfer_parse(*wire, max_crops, n_classes, r, msg, cap);
}

static void done(pd_kinfer_request *r, Inference__ModelInferRequest *wire) {
  pd_kinfer_request_free(r);
  inference__model_infer_request__free_unpacked(wire, NULL);
}

static void bytes(pd_test_state *st) {
  builder b;
  pd_kinfer_request r;
  Inference__ModelInferRequest *w;
  char msg[256];
  const char *el[] = {"PNGDATA", "JPEGBYTES!", "x"};
  int64_t s1[] = {3};
  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 3);
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 0);
  PD_CHECK_INT(st, r.n, 3);
  PD_CHECK_INT(st, r.want_probs, 1);
  PD_CHECK_INT(st, r.class_count, 0);
  PD_CHECK_INT(st, r.tta, -1);
  for (int i = 0; i < 3 && r.n == 3; i++) {
    PD_CHECK_INT(st, r.crops[i].len, strlen(el[i]));
    PD_CHECK(st, memcmp(r.crops[i].data, el[i], r.crops[i].len) == 0);
    PD_CHECK_INT(st, r.crops[i].gray8, 0);
  }
  done(&r, w);

  /* [N,1] in bytes_contents, with parameters and a classification output */
  int64_t s2[] = {2, 1};
  b_init(&b, "BYTES", s2, 2);
  b.elems[0] = (ProtobufCBinaryData){4, (uint8_t *)"abcd"};
  b.elems[1] = (ProtobufCBinaryData){2, (uint8_t *)"ef"};
  b.contents.bytes_contents = b.elems;
  b.contents.n_bytes_contents = 2;
  b.in.contents = &b.contents;
  b_param(&b, "tta", 8);
  b_param(&b, "timeout", 250000);
  b_output(&b, "PROBABILITIES", "classification", 3);
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 0);
  PD_CHECK_INT(st, r.n, 2);
  PD_CHECK_INT(st, r.tta, 8);
  PD_CHECK_INT(st, r.timeout_us, 250000);
  PD_CHECK_INT(st, r.class_count, 3);
  if (r.n == 2) PD_CHECK(st, r.crops[1].len == 2 && memcmp(r.crops[1].data, "ef", 2) == 0);
  done(&r, w);

  /* a class count beyond the model's classes is the whole list */
  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 3);
  b_output(&b, "PROBABILITIES", "class_count", 500);
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 7, &r, &w, msg, sizeof msg), 0);
  PD_CHECK_INT(st, r.class_count, 7);
  done(&r, w);
}

static void uint8(pd_test_state *st) {
  builder b;
  pd_kinfer_request r;
  Inference__ModelInferRequest *w;
  char msg[256];
  int64_t s[] = {2, 3, 4, 1};
  b_init(&b, "UINT8", s, 4);
  for (int i = 0; i < 24; i++)
    b.rawbuf[i] = (uint8_t)(i * 10);
  b.raw = (ProtobufCBinaryData){24, b.rawbuf};
  b.req.raw_input_contents = &b.raw;
  b.req.n_raw_input_contents = 1;
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 0);
  PD_CHECK_INT(st, r.n, 2);
  if (r.n == 2) {
    PD_CHECK_INT(st, r.crops[1].gray8, 1);
    PD_CHECK_INT(st, r.crops[1].width, 4);
    PD_CHECK_INT(st, r.crops[1].height, 3);
    PD_CHECK_INT(st, r.crops[1].len, 12);
    PD_CHECK_INT(st, r.crops[1].data[0], 120);
  }
  done(&r, w);

  /* the same pixels in uint_contents */
  int64_t s3[] = {2, 3, 4};
  b_init(&b, "UINT8", s3, 3);
  for (int i = 0; i < 24; i++)
    b.uints[i] = (uint32_t)(i * 10);
  b.contents.uint_contents = b.uints;
  b.contents.n_uint_contents = 24;
  b.in.contents = &b.contents;
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 0);
  if (r.n == 2) PD_CHECK_INT(st, r.crops[1].data[11], 230);
  done(&r, w);

  b.uints[13] = 256;
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 3);
  PD_CHECK_CONTAINS(st, msg, "element 1");
  PD_CHECK_CONTAINS(st, msg, "256");
  done(&r, w);

  b.uints[13] = 0;
  b.contents.n_uint_contents = 23;
  PD_CHECK_INT(st, roundtrip_parse(&b, 64, 121, &r, &w, msg, sizeof msg), 3);
  PD_CHECK_CONTAINS(st, msg, "needs 24 values");
  done(&r, w);
}

static void expect_refusal(pd_test_state *st, builder *b, int max_crops, const char *needle) {
  pd_kinfer_request r;
  Inference__ModelInferRequest *w;
  char msg[256];
  int rc = roundtrip_parse(b, max_crops, 121, &r, &w, msg, sizeof msg);
  PD_CHECK_INT(st, rc, 3);
  PD_CHECK_CONTAINS(st, msg, needle);
  done(&r, w);
}

static void refusals(pd_test_state *st) {
  builder b;
  const char *el[] = {"aaaa", "bbbb"};
  int64_t s1[] = {2};
  int64_t s3[] = {3};

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  b.raw.len -= 2; /* element 1 cut short */
  expect_refusal(st, &b, 64, "element 1: length 4 runs past the end");

  b_init(&b, "BYTES", s3, 1);
  b_raw_elements(&b, el, 2);
  expect_refusal(st, &b, 64, "element 2");

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  b.raw.len += 3; /* bytes after the last element */
  expect_refusal(st, &b, 64, "after its 2 elements");

  const char *empty[] = {"aaaa", ""};
  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, empty, 2);
  expect_refusal(st, &b, 64, "element 1 is empty");

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  expect_refusal(st, &b, 1, "batch size 2 is outside 1..1");

  b_init(&b, "FP32", s1, 1);
  b_raw_elements(&b, el, 2);
  expect_refusal(st, &b, 64, "datatype \"FP32\"");

  int64_t bad_shape[] = {2, 2};
  b_init(&b, "BYTES", bad_shape, 2);
  b_raw_elements(&b, el, 2);
  expect_refusal(st, &b, 64, "shape [2,2]");

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  b.in.name = (char *)"INPUT0";
  expect_refusal(st, &b, 64, "unknown input \"INPUT0\"");

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  b_output(&b, "LOGITS", NULL, 0);
  expect_refusal(st, &b, 64, "unknown output \"LOGITS\"");

  b_init(&b, "BYTES", s1, 1);
  b_raw_elements(&b, el, 2);
  b_param(&b, "tta", -3);
  expect_refusal(st, &b, 64, "parameter \"tta\"");

  b_init(&b, "BYTES", s1, 1);
  expect_refusal(st, &b, 64, "bytes_contents has 0");

  b_init(&b, "BYTES", s1, 1);
  b.req.n_inputs = 0;
  expect_refusal(st, &b, 64, "0 inputs");

  int64_t u[] = {1, 2, 2};
  b_init(&b, "UINT8", u, 3);
  b.raw = (ProtobufCBinaryData){3, b.rawbuf};
  b.req.raw_input_contents = &b.raw;
  b.req.n_raw_input_contents = 1;
  expect_refusal(st, &b, 64, "needs 4 bytes, the raw contents have 3");

  int64_t huge[] = {1, 70000, 2};
  b_init(&b, "UINT8", huge, 3);
  expect_refusal(st, &b, 64, "height and width");
}

static void answer(pd_test_state *st) {
  pd_kinfer_request r = {.n = 2, .want_probs = 1, .class_count = 0};
  float probs[2 * 4] = {0.1f, 0.6f, 0.2f, 0.1f, 0.25f, 0.25f, 0.05f, 0.45f};
  const char *labels[4] = {"copepod", "diatom", "", "chaetognath"};
  uint8_t *buf;
  size_t len;
  PD_CHECK_INT(
      st, pd_kinfer_pack_response(&r, "ndsb-seed", "3", "req-7", 4, probs, labels, 0, &buf, &len),
      0);
  Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, buf);
  PD_CHECK(st, resp != NULL);
  if (resp) {
    PD_CHECK(st, strcmp(resp->model_name, "ndsb-seed") == 0 && strcmp(resp->id, "req-7") == 0);
    PD_CHECK(st, strcmp(resp->model_version, "3") == 0);
    PD_CHECK_INT(st, resp->n_outputs, 1);
    PD_CHECK(st, strcmp(resp->outputs[0]->datatype, "FP32") == 0);
    PD_CHECK_INT(st, resp->outputs[0]->shape[1], 4);
    PD_CHECK_INT(st, resp->raw_output_contents[0].len, sizeof probs);
    PD_CHECK(st, memcmp(resp->raw_output_contents[0].data, probs, sizeof probs) == 0);
    inference__model_infer_response__free_unpacked(resp, NULL);
  }
  free(buf);

  /* classification: Triton's "%f:index:label", best first; ties by index;
   * no label: "%f:index" */
  r.class_count = 3;
  PD_CHECK_INT(
      st, pd_kinfer_pack_response(&r, "ndsb-seed", "3", "", 4, probs, labels, 1, &buf, &len), 0);
  Inference__ModelStreamInferResponse *s =
      inference__model_stream_infer_response__unpack(NULL, len, buf);
  PD_CHECK(st, s && s->infer_response && s->error_message[0] == 0);
  if (s && s->infer_response) {
    const ProtobufCBinaryData *raw = &s->infer_response->raw_output_contents[0];
    PD_CHECK(st, strcmp(s->infer_response->outputs[0]->datatype, "BYTES") == 0);
    PD_CHECK_INT(st, s->infer_response->outputs[0]->shape[0], 2);
    PD_CHECK_INT(st, s->infer_response->outputs[0]->shape[1], 3);
    const char *want[] = {"0.600000:1:diatom",      "0.200000:2",         "0.100000:0:copepod",
                          "0.450000:3:chaetognath", "0.250000:0:copepod", "0.250000:1:diatom"};
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
      uint32_t l = raw->data[off] | (uint32_t)raw->data[off + 1] << 8;
      off += 4;
      PD_CHECK_INT(st, l, strlen(want[i]));
      PD_CHECK(st, l == strlen(want[i]) && memcmp(raw->data + off, want[i], l) == 0);
      off += l;
    }
    PD_CHECK_INT(st, off, raw->len);
  }
  if (s) inference__model_stream_infer_response__free_unpacked(s, NULL);
  free(buf);

  PD_CHECK_INT(st, pd_kinfer_pack_stream_error("element 2: not an image", &buf, &len), 0);
  s = inference__model_stream_infer_response__unpack(NULL, len, buf);
  PD_CHECK(st, s && strcmp(s->error_message, "element 2: not an image") == 0 && !s->infer_response);
  if (s) inference__model_stream_infer_response__free_unpacked(s, NULL);
  free(buf);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(bytes),
    PD_TEST_CASE(uint8),
    PD_TEST_CASE(refusals),
    PD_TEST_CASE(answer),
};

int main(int argc, char **argv) {
  const pd_test_suite suite = {"kserve_infer", NULL, NULL, k_cases, PD_TEST_N(k_cases)};
  if (argc == 3 && strcmp(argv[1], "corpus") == 0) { /* every case, each request a seed */
    g_corpus = argv[2];
    int rc = pd_test_cases_main(1, argv, &suite);
    printf("wrote %d seeds to %s\n", g_seeds, g_corpus);
    return rc;
  }
  return pd_test_cases_main(argc, argv, &suite);
}
