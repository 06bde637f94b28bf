#include "pd_engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pd_served.h"

#define PD_ENGINE_MAX_REQUESTS 4096 /* >= the largest max_batch the config allows */

struct pd_engine {
  pd_batcher *batcher;
  pd_stats *stats;
  pd_engine_sink sink;
  void *ctx;
  pthread_t tid;
  pd_request *batch[PD_ENGINE_MAX_REQUESTS];
};

/* Copies every view of every request into the model's batch buffers. */
static int gather(pd_served *s, pd_request **batch, int n) {
  const pd_model *m = s->model;
  int k = 0;
  for (int i = 0; i < n; i++) {
    const float *in = batch[i]->input;
    for (int v = 0; v < batch[i]->views; v++, k++)
      for (int b = 0; b < m->n_branches; b++) {
        memcpy(s->batch_in[b] + (size_t)k * s->slot_len[b], in, s->slot_len[b] * sizeof(float));
        in += s->slot_len[b];
      }
  }
  return k;
}

/* Each request's probabilities: the mean over its views. */
static void scatter(const pd_served *s, pd_request **batch, int n) {
  const int K = s->model->n_classes;
  const float *row = s->batch_probs;
  for (int i = 0; i < n; i++) {
    float *p = batch[i]->probs;
    memcpy(p, row, (size_t)K * sizeof(float));
    row += K;
    for (int v = 1; v < batch[i]->views; v++, row += K)
      for (int c = 0; c < K; c++) p[c] += row[c];
    if (batch[i]->views > 1) {
      float inv = 1.0f / (float)batch[i]->views;
      for (int c = 0; c < K; c++) p[c] *= inv;
    }
  }
}

static void run_batch(pd_engine *e, pd_request **batch, int n) {
  pd_served *s = batch[0]->served;
  uint64_t t0 = pd_now_ns();
  int images = gather(s, batch, n);
  pd_batch in = {.n = images};
  for (int b = 0; b < s->model->n_branches; b++) in.branch[b] = s->batch_in[b];
  pd_error err = {0};
  int rc = pd_plan_run(s->plan, &in, s->batch_probs, &err);
  uint64_t t1 = pd_now_ns();
  if (rc == PD_OK) scatter(s, batch, n);
  pd_stats_observe(e->stats, PD_HIST_BATCH, (uint64_t)images);
  pd_stats_observe(e->stats, PD_HIST_COMPUTE, (t1 - t0) / 1000);
  atomic_fetch_add(&e->stats->batches, 1);
  if (rc == PD_OK) atomic_fetch_add(&e->stats->images, (uint64_t)images);
  for (int i = 0; i < n; i++) {
    pd_request *r = batch[i];
    r->t_batch_ns = t0;
    r->compute_ns = t1 - t0;
    r->batch_size = images;
    uint64_t waited = t0 - r->t_recv_ns;
    r->queue_ns = waited > r->decode_ns ? waited - r->decode_ns : 0;
    if (rc != PD_OK)
      pd_request_fail(r, PD_STATUS_INTERNAL, "backend %s failed on a batch of %d: %s",
                      s->backend_name, images, err.msg);
    else
      r->status = PD_STATUS_OK;
  }
  /* The batch's last request may hold the last reference to the model:
   * nothing here touches `s` once the requests are handed over. */
  for (int i = 0; i < n; i++) e->sink(batch[i], e->ctx);
}

static void *engine_main(void *arg) {
  pd_engine *e = arg;
  for (;;) {
    int n;
    pd_request *expired;
    if (pd_batcher_next(e->batcher, e->batch, PD_ENGINE_MAX_REQUESTS, &n, &expired) != PD_OK)
      break;
    while (expired) {
      pd_request *r = expired;
      expired = r->next;
      r->next = NULL;
      pd_request_fail(r, PD_STATUS_DEADLINE_EXCEEDED,
                      "deadline passed after %.3f ms in the queue, before a batch ran it",
                      (double)(pd_now_ns() - r->t_recv_ns) * 1e-6);
      e->sink(r, e->ctx);
    }
    if (n > 0) run_batch(e, e->batch, n);
  }
  return NULL;
}

int pd_engine_start(pd_batcher *b, pd_stats *stats, pd_engine_sink sink, void *ctx,
                    pd_engine **out, pd_error *err) {
  pd_engine *e = calloc(1, sizeof *e);
  if (!e) return pd_error_set(err, PD_ENOMEM, "engine: out of memory");
  e->batcher = b;
  e->stats = stats;
  e->sink = sink;
  e->ctx = ctx;
  int rc = pthread_create(&e->tid, NULL, engine_main, e);
  if (rc != 0) {
    free(e);
    return pd_error_set(err, PD_EINTERNAL, "engine: cannot start its thread: %s", strerror(rc));
  }
  *out = e;
  return PD_OK;
}

void pd_engine_join(pd_engine *e) {
  if (!e) return;
  pthread_join(e->tid, NULL);
  free(e);
}
