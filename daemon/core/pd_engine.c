/* pd_engine: the engine thread. It takes batches from the batcher, gathers
 * each into its servable's free input slot while the previous one computes
 * (two in flight), waits, counts and answers every request once. */
#include "pd_engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pd_served.h"

#define PD_ENGINE_MAX_REQUESTS 4096 /* >= the largest max_batch the config allows */

/* One batch: its requests, their items, and where it stands. */
typedef struct eng_batch {
  pd_request *req[PD_ENGINE_MAX_REQUESTS];
  pd_servable_item items[PD_ENGINE_MAX_REQUESTS];
  int n, images;
  pd_served *s;
  bool staged;    /* gathered into the servable's free input slot */
  bool in_flight; /* submitted, to be waited for */
  int rc;         /* a failure before it was in flight */
  pd_error err;
  uint64_t t0;
} eng_batch;

struct pd_engine {
  pd_batcher *batcher;
  pd_stats *stats;
  pd_engine_sink sink;
  void *ctx;
  pthread_t tid;
  eng_batch b[2]; /* the batch in flight and the next */
};

/* The batch's items, gathered into its servable's free input slot when it
 * fits one (another batch may be computing meanwhile). */
static void prepare(eng_batch *B, int n) {
  B->n = n;
  B->s = B->req[0]->served;
  B->images = 0;
  B->staged = B->in_flight = false;
  B->rc = PD_OK;
  B->err = (pd_error){0};
  for (int i = 0; i < n; i++) {
    B->images += B->req[i]->views;
    B->items[i] = (pd_servable_item){
        .input = B->req[i]->input, .views = B->req[i]->views, .probs = B->req[i]->probs};
  }
  if (pd_served_device_state(B->s) != PD_DEVICE_FAILING &&
      pd_servable_fits(B->s->servable, B->items, n))
    B->staged = pd_servable_stage(B->s->servable, B->items, n, &B->err) == PD_OK;
}

/* Starts the batch: submitted (in flight), or run at once when it does not
 * fit one slot, or failed. */
static void start(eng_batch *B) {
  pd_served *s = B->s;
  B->t0 = pd_now_ns();
  if (pd_served_device_state(s) == PD_DEVICE_FAILING) {
    B->rc = pd_error_set(&B->err, PD_EDEVICE,
                         "model out of service since a sticky device error (%s); a reload "
                         "(SIGHUP) makes a new plan",
                         s->device_error);
    return;
  }
  /* its slot went with the plans of a rebuild (pd_servable_replan): again */
  if (B->staged && !s->servable->staged)
    B->staged = pd_servable_stage(s->servable, B->items, B->n, &B->err) == PD_OK;
  if (!B->staged) {
    B->rc = pd_servable_run(s->servable, B->items, B->n, &B->err);
    return;
  }
  B->rc = pd_servable_submit(s->servable, &B->err);
  B->in_flight = B->rc == PD_OK;
}

/* Waits for the batch (if in flight), counts it and answers its requests. */
static void finish(pd_engine *e, eng_batch *B) {
  pd_served *s = B->s;
  pd_error err = B->err;
  int rc = B->rc;
  if (B->in_flight) rc = pd_servable_wait(s->servable, B->items, B->n, &err);
  B->in_flight = false;
  const int n = B->n, images = B->images;
  const uint64_t t0 = B->t0;
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
    pd_request *r = B->req[i];
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
   * (meanwhile the next batches wait in the queue, or staged: start stages
   * them again when the rebuild took their slot). */
  if (device_error) pd_served_ref(s);
  for (int i = 0; i < n; i++)
    e->sink(B->req[i], e->ctx);
  if (device_error) {
    pd_served_device_error(s, &err);
    pd_served_unref(s);
  }
}

static void answer_expired(pd_engine *e, pd_request *expired) {
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
}

/* Batch k+1 left the queue while k computed: its requests whose deadline
 * passed or whose client left meanwhile are answered as the queue would have
 * answered them (never computed); the rest are gathered again. False when
 * none is left. */
static bool drop_expired(pd_engine *e, eng_batch *B) {
  const uint64_t now = pd_now_ns();
  pd_request *gone = NULL, **tail = &gone;
  int k = 0;
  for (int i = 0; i < B->n; i++) {
    pd_request *r = B->req[i];
    if ((r->deadline_ns && now >= r->deadline_ns) || atomic_load(&r->cancelled)) {
      r->next = NULL;
      *tail = r;
      tail = &r->next;
    } else {
      B->req[k++] = r;
    }
  }
  if (!gone) return true;
  answer_expired(e, gone);
  if (k > 0) prepare(B, k);
  return k > 0;
}

/* Two batches in flight: while batch k computes, batch k+1 (if one is
 * ready, else k is waited for and answered at once) is gathered into the
 * free slot; then k is answered and k+1 submitted. */
static void *engine_main(void *arg) {
  pd_engine *e = arg;
  eng_batch *cur = NULL; /* in flight */
  for (;;) {
    eng_batch *next = cur == &e->b[0] ? &e->b[1] : &e->b[0];
    int n;
    pd_request *expired;
    int rc = cur ? pd_batcher_try_next(e->batcher, next->req, PD_ENGINE_MAX_REQUESTS, &n, &expired)
                 : pd_batcher_next(e->batcher, next->req, PD_ENGINE_MAX_REQUESTS, &n, &expired);
    if (rc != PD_OK) break;
    answer_expired(e, expired);
    if (n == 0) {
      if (cur) finish(e, cur);
      cur = NULL;
      continue;
    }
    prepare(next, n);
    if (cur) {
      if (next->staged) atomic_fetch_add(&e->stats->batches_overlapped, 1);
      finish(e, cur);
      cur = NULL;
      if (!drop_expired(e, next)) continue; /* its deadlines passed while k computed */
    }
    start(next);
    cur = next;
    if (!cur->in_flight) {
      finish(e, cur);
      cur = NULL;
    }
  }
  if (cur) finish(e, cur);
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
