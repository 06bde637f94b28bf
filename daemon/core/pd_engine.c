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
  pd_servable_item items[PD_ENGINE_MAX_REQUESTS];
};

static void run_batch(pd_engine *e, pd_request **batch, int n) {
  pd_served *s = batch[0]->served;
  uint64_t t0 = pd_now_ns();
  int images = 0;
  for (int i = 0; i < n; i++)
    images += batch[i]->views;
  for (int i = 0; i < n; i++)
    e->items[i] = (pd_servable_item){
        .input = batch[i]->input, .views = batch[i]->views, .probs = batch[i]->probs};
  pd_error err = {0};
  int rc;
  if (pd_served_device_state(s) == PD_DEVICE_FAILING)
    rc = pd_error_set(&err, PD_EDEVICE,
                      "model out of service since a sticky device error (%s); a reload (SIGHUP) "
                      "makes a new plan",
                      s->device_error);
  else
    rc = pd_servable_run(s->servable, e->items, n, &err);
  /* a device error the backend reported now (not the out-of-service answer) */
  const bool device_error = rc == PD_EDEVICE && pd_served_device_state(s) != PD_DEVICE_FAILING;
  if (device_error) atomic_fetch_add(&e->stats->device_errors, 1);
  uint64_t t1 = pd_now_ns();
  pd_batcher_computed(e->batcher, t1 - t0);
  pd_stats_observe(e->stats, PD_HIST_BATCH, (uint64_t)images);
  pd_stats_observe(e->stats, PD_HIST_COMPUTE, (t1 - t0) / 1000);
  atomic_fetch_add(&e->stats->batches, 1);
  if (rc == PD_OK) {
    atomic_fetch_add(&e->stats->images, (uint64_t)images);
    atomic_fetch_add(&e->stats->crops, (uint64_t)n); /* once per request, whatever its views */
    atomic_store(&e->stats->batch_failures_in_a_row, 0);
  } else {
    atomic_fetch_add(&e->stats->batch_failures, 1);
    atomic_fetch_add(&e->stats->batch_failures_in_a_row, 1);
  }
  for (int i = 0; i < n; i++) {
    pd_request *r = batch[i];
    r->t_batch_ns = t0;
    r->compute_ns = t1 - t0;
    r->batch_size = images;
    uint64_t waited = t0 - r->t_recv_ns;
    r->queue_ns = waited > r->decode_ns ? waited - r->decode_ns : 0;
    if (rc != PD_OK)
      pd_request_fail(r, PD_STATUS_INTERNAL, "backend %s failed on a batch of %d: %s",
                      pd_served_backend_now(s), images, err.msg);
    else
      r->status = PD_STATUS_OK;
  }
  /* The batch's last request may hold the last reference to the model:
   * nothing here touches `s` once the requests are handed over, but after a
   * device error, answered first, its own reference for the rebuild
   * (meanwhile the next batches wait in the queue). */
  if (device_error) pd_served_ref(s);
  for (int i = 0; i < n; i++)
    e->sink(batch[i], e->ctx);
  if (device_error) {
    pd_served_device_error(s, &err);
    pd_served_unref(s);
  }
}

static void *engine_main(void *arg) {
  pd_engine *e = arg;
  for (;;) {
    int n;
    pd_request *expired;
    if (pd_batcher_next(e->batcher, e->batch, PD_ENGINE_MAX_REQUESTS, &n, &expired) != PD_OK) break;
    while (expired) {
      pd_request *r = expired;
      expired = r->next;
      r->next = NULL;
      if (atomic_load(&r->cancelled)) {
        r->dropped = true;
        pd_request_fail(r, PD_STATUS_CANCELLED,
                        "cancelled in the queue: the client closed its connection before it was "
                        "computed");
      } else {
        pd_request_fail(r, PD_STATUS_DEADLINE_EXCEEDED,
                        "deadline passed after %.3f ms in the queue, before a batch ran it",
                        (double)(pd_now_ns() - r->t_recv_ns) * 1e-6);
      }
      e->sink(r, e->ctx);
    }
    if (n > 0) run_batch(e, e->batch, n);
  }
  return NULL;
}

int pd_engine_start(pd_batcher *b, pd_stats *stats, pd_engine_sink sink, void *ctx, pd_engine **out,
                    pd_error *err) {
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
  pthread_setname_np(e->tid, "pd-engine"); /* for top, and bench/daemon's CPU accounting */
  *out = e;
  return PD_OK;
}

void pd_engine_join(pd_engine *e) {
  if (!e) return;
  pthread_join(e->tid, NULL);
  free(e);
}
