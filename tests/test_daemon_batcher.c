/* pd_batcher: a batch takes everything already waiting (up to max_batch and
 * the model's plan), batches never mix models, TTA views count as images,
 * max_queue places, expired requests come back as expired and are never
 * batched, and stop ends the engine side once the queue is empty. The
 * engine side runs on a thread, as in the daemon; nothing here depends on
 * timing except that a full batch must not wait for a long delay. */
#include <pthread.h>

#include "pd_batcher.h"
#include "pd_served.h"
#include "pd_test.h"

#define MAXR 64

static pd_request reqs[MAXR];

static void submit(pd_batcher *b, int i, pd_served *s, int views) {
  memset(&reqs[i], 0, sizeof reqs[i]);
  reqs[i].id = (uint64_t)i;
  reqs[i].served = s;
  reqs[i].views = views;
  pd_batcher_submit(b, &reqs[i], pd_now_ns());
}

static int take(pd_batcher *b, pd_request **batch, int *n, pd_request **expired) {
  return pd_batcher_next(b, batch, MAXR, n, expired);
}

typedef struct stopper {
  pd_batcher *b;
  int rc;
} stopper;

static void *wait_stopped(void *arg) {
  stopper *s = arg;
  pd_request *batch[MAXR], *expired;
  int n;
  s->rc = take(s->b, batch, &n, &expired);
  return NULL;
}

int main(void) {
  pd_test_state st = {0};
  pd_served model_a = {.max_batch = 8}, model_b = {.max_batch = 8};
  pd_request *batch[MAXR], *expired;
  int n;
  pd_error err = {0};

  /* a long delay: only full batches (or stop) close one */
  pd_batcher_limits lim = {
      .max_batch = 4, .max_queue_delay_ns = 3600ull * 1000000000ull, .max_queue = 10};
  pd_batcher *b;
  PD_CHECK_INT(&st, pd_batcher_create(&lim, &b, &err), 0);
  for (int i = 0; i < 10; i++)
    PD_CHECK_INT(&st, pd_batcher_reserve(b), 0);
  PD_CHECK_INT(&st, pd_batcher_reserve(b), PD_ELIMIT); /* max_queue */
  pd_batcher_release(b);
  PD_CHECK_INT(&st, pd_batcher_reserve(b), 0);
  for (int i = 0; i < 10; i++)
    submit(b, i, &model_a, 1);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).queued, 10);
  /* full batches of 4, at once, in order */
  for (int k = 0; k < 2; k++) {
    PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
    PD_CHECK_INT(&st, n, 4);
    for (int i = 0; i < n; i++)
      PD_CHECK_INT(&st, batch[i]->id, k * 4 + i);
  }
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).reserved, 2);
  /* the last two close on stop, without waiting an hour */
  pd_batcher_stop(b);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 2);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), PD_BATCHER_STOPPED);
  pd_batcher_destroy(b);

  /* zero delay under load: everything already waiting goes in one batch */
  lim = (pd_batcher_limits){.max_batch = 32, .max_queue_delay_ns = 0, .max_queue = 64};
  PD_CHECK_INT(&st, pd_batcher_create(&lim, &b, &err), 0);
  for (int i = 0; i < 20; i++) {
    pd_batcher_reserve(b);
    submit(b, i, &model_a, 1);
  }
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 8); /* capped by the model's plan (max_batch 8) */
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 8);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 4);

  /* models never mix; views count as images */
  submit(b, 0, &model_a, 1);
  submit(b, 1, &model_a, 1);
  submit(b, 2, &model_b, 1);
  submit(b, 3, &model_b, 3);
  submit(b, 4, &model_b, 5);
  for (int i = 0; i < 5; i++)
    pd_batcher_reserve(b);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 2);
  PD_CHECK(&st, batch[0]->served == &model_a && batch[1]->served == &model_a);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 2); /* 1 + 3 images; + 5 would exceed 8 */
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK_INT(&st, n, 1);
  PD_CHECK_INT(&st, batch[0]->views, 5);

  /* expired requests come back as expired, never in a batch */
  for (int i = 0; i < 3; i++)
    pd_batcher_reserve(b);
  submit(b, 0, &model_a, 1);
  submit(b, 1, &model_a, 1);
  submit(b, 2, &model_a, 1);
  reqs[1].deadline_ns = 1; /* long past */
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK(&st, expired == &reqs[1] && expired->next == NULL);
  for (int i = 0; i < n; i++)
    PD_CHECK(&st, batch[i] != &reqs[1]);
  int got = n;
  if (got < 2) {
    PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
    got += n;
  }
  PD_CHECK_INT(&st, got, 2);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).reserved, 0);

  /* stop wakes a waiting engine */
  stopper s = {.b = b, .rc = -1};
  pthread_t t;
  pthread_create(&t, NULL, wait_stopped, &s);
  pd_batcher_stop(b);
  pthread_join(t, NULL);
  PD_CHECK_INT(&st, s.rc, PD_BATCHER_STOPPED);
  pd_batcher_destroy(b);
  return pd_test_finish(&st, "daemon_batcher");
}
