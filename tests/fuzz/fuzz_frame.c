/* fuzz_frame: the daemon's receive path for one connection. The input is a
 * byte stream as a client would send it, cut into reads at fuzzer-chosen
 * points; every read goes through pd_framer_space/commit exactly as
 * pd_conn.c's on_alloc/on_read do, every complete frame is unpacked and
 * handled as pd_server.c's on_frame does (pd_wire_unpack, the classify
 * input copy, and the answer each body gets), and a broken or oversized
 * frame ends the connection as it does there.
 *
 * Input layout: byte 0 picks the frame limit (bits 0-1: 1 KiB, 4 KiB,
 * 64 KiB or the daemon's default 16 MiB) and the read sizes (bits 2-4: a
 * cap of 1, 3, 7, 64, 4096 or 65536 bytes, or "whatever fits"); byte 1
 * seeds the pseudo-random read lengths; the rest is the stream.
 *
 * Answers are made as for a daemon serving a small model (built in memory
 * once by LLVMFuzzerInitialize and read-only after): a classify request
 * gets the OK answer the pipeline would send (pd_wire_classify_answer, with
 * probabilities derived from its id, its top_k and full_distribution), and
 * then the NOT_FOUND refusal; ModelInfo is answered for that model.
 *
 * Oracles: an independent walk of the stream's headers must give the same
 * frames, byte for byte, the same refusal at the same frame, and the same
 * number of bytes left pending; the buffer stays within one maximum frame
 * plus one read (65536 bytes); every answer is one well-formed Response
 * frame; a classify answer has min(top_k, classes) scores (the default when
 * 0, at least 1), best first, each with the label of its index, and the
 * whole distribution when asked. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "pd_frame.h"
#include "pd_image.h"
#include "pd_model.h"
#include "pd_served.h"
#include "pd_stats.h"
#include "pd_test_model.h"
#include "pd_wire.h"

#define DEFAULT_TOP_K 5

static const char k_yaml[] = "format: 1\n"
                             "name: daemon-tiny\n"
                             "version: \"1\"\n"
                             "classes: [c0, c1, c2, c3, c4, c5, c6]\n"
                             "symmetry: none\n"
                             "input: {std: 1}\n"
                             "branches:\n"
                             "  - name: s\n"
                             "    input: {kind: size_features, features: [log_width]}\n"
                             "head:\n"
                             "  layers: [{type: dense, units: 7, name: logits}, {type: softmax}]\n";
static const pd_test_tensor k_tensors[] = {{"logits.weight", 2, {7, 1}}, {"logits.bias", 1, {7}}};

static pd_model *g_model; /* set once by LLVMFuzzerInitialize, read-only after */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  pd_error err = {0};
  if (pd_test_load_model(k_yaml, k_tensors, 2, 1, &g_model, &err) != PD_OK) {
    fprintf(stderr, "fuzz_frame: the built-in model does not load: %s\n", err.msg);
    abort();
  }
  return 0;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A well-formed answer frame (the header matches the body length, the body
 * is a Response), unpacked; the frame is freed. */
static Plankton__Response *unpack_answer(uint8_t *frame, const size_t *lenp) {
  size_t len = *lenp;
  PD_FUZZ_ASSERT(frame != NULL);
  PD_FUZZ_ASSERT(len >= PD_FRAME_HEADER);
  PD_FUZZ_ASSERT(be32(frame) == len - PD_FRAME_HEADER);
  Plankton__Response *r =
      plankton__response__unpack(NULL, len - PD_FRAME_HEADER, frame + PD_FRAME_HEADER);
  PD_FUZZ_ASSERT(r != NULL);
  free(frame);
  return r;
}

static void check_answer(uint8_t *frame, const size_t *lenp) {
  plankton__response__free_unpacked(unpack_answer(frame, lenp), NULL);
}

/* The OK answer of a classify request that ran on g_model. */
static void check_classify_answer(pd_request *req, const pd_served *served, uint32_t asked_top_k) {
  const pd_model *m = served->model;
  float probs[16];
  double sum = 0;
  for (int c = 0; c < m->n_classes; c++) { /* from the id: ties and orders vary with it */
    probs[c] = (float)((req->id >> (c * 3 % 61)) & 7) + 1.0f;
    sum += probs[c];
  }
  for (int c = 0; c < m->n_classes; c++)
    probs[c] = (float)(probs[c] / sum);
  req->status = PD_STATUS_OK;
  req->served = (pd_served *)served;
  req->probs = probs;
  size_t len = 0;
  uint8_t *frame = pd_wire_classify_answer(req, &len);
  req->served = NULL;
  req->probs = NULL;
  Plankton__Response *r = unpack_answer(frame, &len);
  PD_FUZZ_ASSERT(r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY);
  const Plankton__ClassifyResponse *cr = r->classify;
  PD_FUZZ_ASSERT(cr->id == req->id && cr->status && cr->status->code == 0);
  size_t want = asked_top_k == 0 ? DEFAULT_TOP_K : asked_top_k;
  if (want > (size_t)m->n_classes) want = (size_t)m->n_classes;
  PD_FUZZ_ASSERT(cr->n_top == want);
  for (size_t i = 0; i < cr->n_top; i++) {
    const Plankton__ClassScore *s = cr->top[i];
    PD_FUZZ_ASSERT(s->index < (uint32_t)m->n_classes);
    PD_FUZZ_ASSERT(!strcmp(s->label, m->classes[s->index]));
    PD_FUZZ_ASSERT(s->probability == probs[s->index]);
    if (i > 0) PD_FUZZ_ASSERT(cr->top[i - 1]->probability >= s->probability);
    for (size_t j = 0; j < i; j++)
      PD_FUZZ_ASSERT(cr->top[j]->index != s->index);
  }
  PD_FUZZ_ASSERT(cr->n_distribution == (req->full_distribution ? (size_t)m->n_classes : 0));
  plankton__response__free_unpacked(r, NULL);
}

/* pd_server.c on_frame, without the pipeline: 0 to go on, -1 when the
 * connection is closed over a frame that is not a Request. */
static int on_frame(const uint8_t *bytes, size_t n, const pd_served *served) {
  Plankton__Request *msg = pd_wire_unpack(bytes, n);
  size_t len = 0;
  if (!msg) {
    char why[128];
    snprintf(why, sizeof why, "frame of %zu bytes does not decode as a plankton.Request", n);
    check_answer(pd_wire_error(PD_STATUS_INVALID_ARGUMENT, why, &len), &len);
    return -1;
  }
  switch (msg->body_case) {
  case PLANKTON__REQUEST__BODY_CLASSIFY: {
    pd_request req;
    memset(&req, 0, sizeof req);
    pd_wire_classify_input(msg->classify, pd_now_ns(), DEFAULT_TOP_K, &req);
    PD_FUZZ_ASSERT(memchr(req.model, '\0', sizeof req.model) != NULL);
    PD_FUZZ_ASSERT(req.top_k >= 0 && req.tta >= 0);
    PD_FUZZ_ASSERT(req.len == 0 || req.data != NULL);
    if (req.len) { /* the decode thread reads every byte it was given */
      volatile uint8_t sum = 0;
      for (size_t i = 0; i < req.len; i++)
        sum ^= req.data[i];
      (void)sum;
    }
    (void)pd_image_sniff(req.data, req.len);
    check_classify_answer(&req, served, msg->classify->top_k);
    /* the refusal a bad request gets, with the model name it named */
    char message[256];
    snprintf(message, sizeof message, "model '%s' is not served", req.model);
    check_answer(pd_wire_classify_error(req.id, PD_STATUS_NOT_FOUND, message, &len), &len);
    break;
  }
  case PLANKTON__REQUEST__BODY_STATS: {
    pd_stats stats;
    pd_stats_init(&stats);
    pd_stats_report r;
    pd_stats_report_fill(&stats, pd_now_ns(), &r);
    check_answer(pd_wire_stats(msg->stats->id, &r, NULL, 0, &len), &len);
    break;
  }
  case PLANKTON__REQUEST__BODY_HEALTH: {
    pd_reload_report reload = {.unix_time = (int64_t)msg->health->id, .failed = 1};
    snprintf(reload.message, sizeof reload.message, "config x.yaml:%llu: bad",
             (unsigned long long)msg->health->id);
    check_answer(pd_wire_health(msg->health->id, msg->health->id & 1, msg->health->id >> 1,
                                msg->health->id & 4 ? reload.message : NULL,
                                msg->health->id & 2 ? &reload : NULL, &len),
                 &len);
  } break;
  case PLANKTON__REQUEST__BODY_MODEL_INFO:
    check_answer(pd_wire_model_info(msg->model_info->id, msg->model_info->model,
                                    msg->model_info->id & 1 ? NULL : served, &len),
                 &len);
    break;
  default:
    check_answer(pd_wire_error(PD_STATUS_UNIMPLEMENTED,
                               "request has no body, or one this daemon does not know", &len),
                 &len);
    break;
  }
  pd_wire_free(msg);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t limits[4] = {1024, 4096, 65536, 16u << 20};
  static const size_t caps[8] = {1, 3, 7, 64, 4096, 65536, (size_t)-1, (size_t)-1};
  if (size < 2) return 0;
  const size_t max_frame = limits[data[0] & 3];
  const size_t cap = caps[(data[0] >> 2) & 7];
  uint32_t rng = 0x9e3779b9u ^ data[1];
  const uint8_t *stream = data + 2;
  const size_t len = size - 2;

  if (!g_model) LLVMFuzzerInitialize(NULL, NULL);
  pd_served served;
  memset(&served, 0, sizeof served);
  served.model = g_model;
  served.max_batch = 8;

  pd_framer f;
  pd_framer_init(&f, max_frame);
  size_t fed = 0, ref = 0; /* ref: the oracle's position (start of the next frame) */
  bool closed = false;
  while (fed < len && !closed) {
    uint8_t *at;
    size_t avail;
    PD_FUZZ_ASSERT(pd_framer_space(&f, 0, &at, &avail) == PD_OK);
    PD_FUZZ_ASSERT(avail > 0);
    /* pd_frame.h: the buffer never grows past one maximum frame plus one read */
    PD_FUZZ_ASSERT(f.cap <= PD_FRAME_HEADER + max_frame + 65536);
    /* one read: at most `cap` bytes, a pseudo-random length up to it */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    size_t n = len - fed;
    if (n > avail) n = avail;
    if (n > cap) n = 1 + rng % cap;
    memcpy(at, stream + fed, n);
    pd_framer_commit(&f, n);
    fed += n;
    for (;;) {
      const uint8_t *msg;
      size_t mlen;
      pd_error err = {0};
      int rc = pd_framer_next(&f, &msg, &mlen, &err);
      if (rc == 0) {
        /* the oracle agrees that no complete frame is buffered */
        PD_FUZZ_ASSERT(fed - ref < PD_FRAME_HEADER ||
                       (be32(stream + ref) <= max_frame &&
                        fed - ref < PD_FRAME_HEADER + (size_t)be32(stream + ref)));
        break;
      }
      PD_FUZZ_ASSERT(fed - ref >= PD_FRAME_HEADER);
      size_t body = be32(stream + ref);
      if (rc < 0) {
        PD_FUZZ_ASSERT(rc == PD_ELIMIT);
        PD_FUZZ_ASSERT(body > max_frame);
        size_t alen = 0;
        check_answer(pd_wire_error(PD_STATUS_RESOURCE_EXHAUSTED, err.msg, &alen), &alen);
        closed = true;
        break;
      }
      PD_FUZZ_ASSERT(rc == 1);
      PD_FUZZ_ASSERT(body <= max_frame);
      PD_FUZZ_ASSERT(mlen == body);
      PD_FUZZ_ASSERT(fed - ref >= PD_FRAME_HEADER + body);
      PD_FUZZ_ASSERT(mlen == 0 || memcmp(msg, stream + ref + PD_FRAME_HEADER, mlen) == 0);
      ref += PD_FRAME_HEADER + body;
      if (on_frame(msg, mlen, &served) != 0) {
        closed = true;
        break;
      }
    }
    if (!closed) PD_FUZZ_ASSERT(pd_framer_pending(&f) == fed - ref);
  }
  pd_framer_free(&f);
  return 0;
}
