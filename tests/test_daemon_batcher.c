/* pd_batcher: a batch takes everything already waiting (up to max_batch and
 * the model's plan), batches never mix models, TTA views count as images,
 * max_queue places, expired requests come back as expired and are never
 * batched, and stop ends the engine side once the queue is empty. Fairness:
 * exact batch compositions of the deficit round robin over clients for
 * scripted arrivals (one polite client among floods, weights, TTA views
 * that must wait for room, a request larger than a batch, a client whose
 * oldest request is of another model, an expired request in a client's
 * queue), and the admission rule (first come first served below max_queue,
 * then only clients under their weighted share, up to twice max_queue). The
 * engine side runs on a thread, as in the daemon; nothing here depends on
 * timing except that a full batch must not wait for a long delay. */
#include <pthread.h>

#include "pd_batcher.h"
#include "pd_served.h"
#include "pd_test.h"

#define MAXR 256
#define HOUR_NS (3600ull * 1000000000ull)

static pd_request reqs[MAXR];
static pd_test_state st;

/* Sets up request i (not yet reserved). */
static void prep(int i, uint64_t client, int weight, pd_served *s, int views) {
  memset(&reqs[i], 0, sizeof reqs[i]);
  reqs[i].id = (uint64_t)i;
  reqs[i].client = client;
  reqs[i].client_weight = weight;
  reqs[i].served = s;
  reqs[i].views = views;
}

static int reserve(pd_batcher *b, int i, uint64_t client, int weight, pd_error *err) {
  prep(i, client, weight, NULL, 1);
  return pd_batcher_reserve(b, &reqs[i], err);
}

/* Reserves and queues request i for `client`. */
static void submit_c(pd_batcher *b, int i, uint64_t client, int weight, pd_served *s, int views) {
  pd_error err = {0};
  prep(i, client, weight, s, views);
  int rc = pd_batcher_reserve(b, &reqs[i], &err);
  PD_CHECK_INT(&st, rc, 0);
  if (rc != 0) {
    fprintf(stderr, "  reserve %d: %s\n", i, err.msg);
    return;
  }
  pd_batcher_submit(b, &reqs[i], pd_now_ns());
}

static void submit(pd_batcher *b, int i, pd_served *s, int views) {
  submit_c(b, i, 0, 0, s, views);
}

static int take(pd_batcher *b, pd_request **batch, int *n, pd_request **expired) {
  return pd_batcher_next(b, batch, MAXR, n, expired);
}

/* Takes the next batch and checks its request ids, in order. */
static void expect_batch(pd_batcher *b, const char *what, const int *ids, int count) {
  pd_request *batch[MAXR], *expired;
  int n = 0;
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK(&st, expired == NULL);
  bool same = n == count;
  for (int i = 0; i < n && same; i++)
    same = batch[i]->id == (uint64_t)ids[i];
  PD_CHECK(&st, same);
  if (!same) {
    fprintf(stderr, "  %s: got", what);
    for (int i = 0; i < n; i++)
      fprintf(stderr, " %llu", (unsigned long long)batch[i]->id);
    fprintf(stderr, ", want");
    for (int i = 0; i < count; i++)
      fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
  }
}

#define EXPECT(b, what, ...)                                                                       \
  do {                                                                                             \
    const int ids_[] = {__VA_ARGS__};                                                              \
    expect_batch(b, what, ids_, (int)(sizeof ids_ / sizeof ids_[0]));                              \
  } while (0)

static pd_batcher *make(int max_batch, uint64_t delay_ns, int max_queue) {
  pd_batcher_limits lim = {
      .max_batch = max_batch, .max_queue_delay_ns = delay_ns, .max_queue = max_queue};
  pd_batcher *b = NULL;
  pd_error err = {0};
  PD_CHECK_INT(&st, pd_batcher_create(&lim, &b, &err), 0);
  return b;
}

static void expect_empty(pd_batcher *b) {
  pd_batcher_counts c = pd_batcher_counts_get(b);
  PD_CHECK_INT(&st, c.queued, 0);
  PD_CHECK_INT(&st, c.reserved, 0);
  PD_CHECK_INT(&st, c.clients, 0);
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

/* ---- one client: first come, first served, as before ---- */

static void one_client(void) {
  pd_served model_a = {.max_batch = 8}, model_b = {.max_batch = 8};
  pd_request *batch[MAXR], *expired;
  int n;
  pd_error err = {0};

  /* a long delay: only full batches (or stop) close one */
  pd_batcher *b = make(4, HOUR_NS, 10);
  for (int i = 0; i < 10; i++)
    PD_CHECK_INT(&st, reserve(b, i, 0, 0, &err), 0);
  PD_CHECK_INT(&st, reserve(b, 10, 0, 0, &err), PD_ELIMIT); /* max_queue: a lone client's all */
  PD_CHECK_CONTAINS(&st, err.msg, "max_queue");
  pd_batcher_release(b, &reqs[9]);
  PD_CHECK_INT(&st, reserve(b, 9, 0, 0, &err), 0);
  for (int i = 0; i < 10; i++) {
    reqs[i].served = &model_a;
    pd_batcher_submit(b, &reqs[i], pd_now_ns());
  }
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).queued, 10);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).clients, 1);
  /* full batches of 4, at once, in order */
  EXPECT(b, "full batch 1", 0, 1, 2, 3);
  EXPECT(b, "full batch 2", 4, 5, 6, 7);
  PD_CHECK_INT(&st, reqs[7].batches_waited, 1);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).reserved, 2);
  /* the last two close on stop, without waiting an hour */
  pd_batcher_stop(b);
  EXPECT(b, "on stop", 8, 9);
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), PD_BATCHER_STOPPED);
  expect_empty(b);
  pd_batcher_destroy(b);

  /* zero delay under load: everything already waiting goes in one batch */
  b = make(32, 0, 64);
  for (int i = 0; i < 20; i++)
    submit(b, i, &model_a, 1);
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
  EXPECT(b, "model a", 0, 1);
  EXPECT(b, "model b, 1 + 3 images (+ 5 would exceed 8)", 2, 3);
  EXPECT(b, "model b, 5 images", 4);

  /* expired requests come back as expired, never in a batch */
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
  expect_empty(b);

  /* stop wakes a waiting engine */
  stopper s = {.b = b, .rc = -1};
  pthread_t t;
  pthread_create(&t, NULL, wait_stopped, &s);
  pd_batcher_stop(b);
  pthread_join(t, NULL);
  PD_CHECK_INT(&st, s.rc, PD_BATCHER_STOPPED);
  pd_batcher_destroy(b);
}

/* ---- deficit round robin across clients ---- */

static void round_robin(void) {
  pd_served m = {.max_batch = 16}, other = {.max_batch = 16};

  /* two floods of 10 and a polite client's one request, queued last: it
   * goes into the next batch; the floods alternate */
  pd_batcher *b = make(4, HOUR_NS, 64);
  for (int i = 0; i < 10; i++)
    submit_c(b, i, 1, 0, &m, 1);
  for (int i = 10; i < 20; i++)
    submit_c(b, i, 2, 0, &m, 1);
  submit_c(b, 20, 3, 0, &m, 1);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).clients, 3);
  EXPECT(b, "two floods + polite, batch 1", 0, 10, 20, 1);
  PD_CHECK_INT(&st, reqs[20].batches_waited, 0);
  /* the polite client's next request, queued between two batches */
  submit_c(b, 21, 3, 0, &m, 1);
  EXPECT(b, "batch 2: the newcomer ends the round", 11, 2, 21, 12);
  PD_CHECK_INT(&st, reqs[21].batches_waited, 0);
  PD_CHECK_INT(&st, reqs[12].batches_waited, 1);
  EXPECT(b, "batch 3", 3, 13, 4, 14);
  pd_batcher_stop(b);
  EXPECT(b, "batch 4", 5, 15, 6, 16);
  EXPECT(b, "batch 5", 7, 17, 8, 18);
  EXPECT(b, "batch 6", 9, 19);
  expect_empty(b);
  pd_batcher_destroy(b);

  /* eight floods of 20 and a polite client: its request, queued after all
   * 160 others, is in the next batch of 16 */
  b = make(16, HOUR_NS, 1024);
  for (int i = 0; i < 160; i++)
    submit_c(b, i, 100 + (uint64_t)(i / 20), 0, &m, 1);
  submit_c(b, 160, 7, 0, &m, 1);
  EXPECT(b, "eight floods + polite", 0, 20, 40, 60, 80, 100, 120, 140, 160, 1, 21, 41, 61, 81, 101,
         121);
  PD_CHECK_INT(&st, reqs[160].batches_waited, 0);
  pd_batcher_stop(b);
  pd_request *batch[MAXR], *expired;
  int n, batches = 0, images = 0;
  while (take(b, batch, &n, &expired) == PD_OK) {
    batches++;
    images += n;
  }
  PD_CHECK_INT(&st, images, 160 - 15);
  PD_CHECK_INT(&st, batches, 10); /* still full batches: 145 = 9 x 16 + 1 */
  expect_empty(b);
  pd_batcher_destroy(b);

  /* weights: 3 to 1 in images */
  b = make(8, HOUR_NS, 64);
  for (int i = 0; i < 12; i++)
    submit_c(b, i, 1, 3, &m, 1);
  for (int i = 12; i < 24; i++)
    submit_c(b, i, 2, 1, &m, 1);
  EXPECT(b, "weights 3:1", 0, 1, 2, 12, 3, 4, 5, 13);
  EXPECT(b, "weights 3:1, batch 2", 6, 7, 8, 14, 9, 10, 11, 15);
  pd_batcher_stop(b);
  EXPECT(b, "weights 3:1, the rest", 16, 17, 18, 19, 20, 21, 22, 23);
  expect_empty(b);
  pd_batcher_destroy(b);

  /* a 3-view request earns its images over three turns; when it has them
   * and the batch has no room, the batch closes and the next starts with
   * it (it is not starved by single images) */
  b = make(4, 0, 64);
  for (int i = 0; i < 6; i++)
    submit_c(b, i, 1, 0, &m, 1);
  submit_c(b, 10, 2, 0, &m, 3);
  EXPECT(b, "tta 3 waits for room", 0, 1, 2);
  EXPECT(b, "tta 3 first", 10, 3);
  EXPECT(b, "the rest", 4, 5);
  expect_empty(b);

  /* a request larger than a batch (10 views, max_batch 4) costs a batch
   * and runs alone */
  submit_c(b, 0, 1, 0, &m, 10);
  for (int i = 1; i < 4; i++)
    submit_c(b, i, 2, 0, &m, 1);
  EXPECT(b, "the small ones while it earns a batch", 1, 2, 3);
  EXPECT(b, "alone", 0);
  expect_empty(b);

  /* the batch runs the oldest request's model; a client whose oldest is
   * of another model sits that batch out, its later requests wait (FIFO
   * within a client) */
  submit_c(b, 0, 1, 0, &m, 1);
  submit_c(b, 1, 2, 0, &other, 1);
  submit_c(b, 2, 2, 0, &m, 1);
  submit_c(b, 3, 1, 0, &m, 1);
  submit_c(b, 4, 3, 0, &m, 1);
  EXPECT(b, "model m", 0, 4, 3);
  EXPECT(b, "model other", 1);
  EXPECT(b, "model m again", 2);
  expect_empty(b);

  /* an expired request leaves its client's queue; the others go on */
  submit_c(b, 0, 1, 0, &m, 1);
  submit_c(b, 1, 1, 0, &m, 1);
  submit_c(b, 2, 1, 0, &m, 1);
  submit_c(b, 3, 2, 0, &m, 1);
  reqs[1].deadline_ns = 1;
  PD_CHECK_INT(&st, take(b, batch, &n, &expired), 0);
  PD_CHECK(&st, expired == &reqs[1] && expired->next == NULL);
  PD_CHECK_INT(&st, n, 3);
  PD_CHECK(&st, n == 3 && batch[0] == &reqs[0] && batch[1] == &reqs[3] && batch[2] == &reqs[2]);
  expect_empty(b);
  pd_batcher_destroy(b);
}

/* ---- fair admission ---- */

static void admission(void) {
  pd_error err = {0};
  pd_batcher *b = make(4, HOUR_NS, 8);
  int k = 0;
  /* below max_queue: first come, first served */
  for (int i = 0; i < 6; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 1, 0, &err), 0);
  for (int i = 0; i < 2; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 2, 0, &err), 0);
  /* full: client 1 (6 places, share 8/2) is refused, client 2 (2) is not */
  PD_CHECK_INT(&st, reserve(b, k, 1, 0, &err), PD_ELIMIT);
  PD_CHECK_CONTAINS(&st, err.msg, "6 of them this client's");
  PD_CHECK_CONTAINS(&st, err.msg, "share of 4 among 2 clients");
  PD_CHECK_CONTAINS(&st, err.msg, "max_queue 8");
  for (int i = 0; i < 2; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 2, 0, &err), 0);
  PD_CHECK_INT(&st, reserve(b, k, 2, 0, &err), PD_ELIMIT); /* 4: its share */
  /* a newcomer: share 8/3, so 3 places */
  for (int i = 0; i < 3; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 3, 0, &err), 0);
  PD_CHECK_INT(&st, reserve(b, k, 3, 0, &err), PD_ELIMIT);
  PD_CHECK_INT(&st, reserve(b, k, 1, 0, &err), PD_ELIMIT);
  /* another: 8/4 = 2 places; one more client's one place makes 2 x
   * max_queue in all, the most there can be */
  for (int i = 0; i < 2; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 4, 0, &err), 0);
  PD_CHECK_INT(&st, reserve(b, k, 4, 0, &err), PD_ELIMIT);
  PD_CHECK_INT(&st, reserve(b, k++, 5, 0, &err), 0);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).reserved, 16);
  PD_CHECK_INT(&st, reserve(b, k, 6, 0, &err), PD_ELIMIT);
  PD_CHECK_CONTAINS(&st, err.msg, "twice batching.max_queue 8");
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).clients, 5);
  /* places given back: client 1 is under its share again once it holds
   * fewer than 8/5 */
  for (int i = 0; i < 5; i++)
    pd_batcher_release(b, &reqs[i]);
  PD_CHECK_INT(&st, pd_batcher_counts_get(b).reserved, 11);
  PD_CHECK_INT(&st, reserve(b, k++, 1, 0, &err), 0);
  PD_CHECK_INT(&st, reserve(b, k, 1, 0, &err), PD_ELIMIT);
  for (int i = 5; i < k; i++)
    pd_batcher_release(b, &reqs[i]);
  expect_empty(b);

  /* weights: a client of weight 3 beside one of weight 1 that filled the
   * queue gets 3/4 of max_queue */
  k = 0;
  for (int i = 0; i < 8; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 1, 1, &err), 0);
  for (int i = 0; i < 6; i++)
    PD_CHECK_INT(&st, reserve(b, k++, 2, 3, &err), 0);
  PD_CHECK_INT(&st, reserve(b, k, 2, 3, &err), PD_ELIMIT);
  PD_CHECK_CONTAINS(&st, err.msg, "weight 3 of 4");
  for (int i = 0; i < k; i++)
    pd_batcher_release(b, &reqs[i]);
  expect_empty(b);
  pd_batcher_destroy(b);
}

/* ---- a model's own serving: settings (model.yaml) ---- */

/* With the daemon's max_batch 4 and a delay of an hour: a model with its
 * own max_batch 8 gets batches of 8 (one of the same plan size without, of
 * 4), and a lone request of a model with its own delay 0 is batched at once,
 * also behind an older request of a model waiting on the daemon's hour
 * (were that hour used, pd_batcher_next would wait it out and the test would
 * time out). */
static void own_serving(void) {
  pd_batcher *b = make(4, HOUR_NS, 64);
  if (!b) return;
  pd_served own = {.max_batch = 8, .own_max_batch = true, .own_max_queue_delay = true};
  pd_served plain = {.max_batch = 8};
  for (int i = 0; i < 8; i++)
    submit(b, i, &own, 1);
  EXPECT(b, "own max_batch 8", 0, 1, 2, 3, 4, 5, 6, 7);
  for (int i = 8; i < 16; i++)
    submit(b, i, &plain, 1);
  EXPECT(b, "the daemon's max_batch 4", 8, 9, 10, 11);
  EXPECT(b, "the daemon's max_batch 4, again", 12, 13, 14, 15);
  submit(b, 16, &own, 1);
  EXPECT(b, "own delay 0: a lone request at once", 16);
  /* behind an older request of a model on the daemon's hour, on another
   * client: its own delay closes its batch, the older one waits on */
  submit_c(b, 17, 1, 1, &plain, 1);
  submit_c(b, 18, 2, 1, &own, 1);
  EXPECT(b, "own delay 0 behind a waiting model", 18);
  pd_batcher_stop(b);
  EXPECT(b, "the waiting model's, at the stop", 17);
  expect_empty(b);
  pd_batcher_destroy(b);
}

int main(void) {
  one_client();
  round_robin();
  admission();
  own_serving();
  return pd_test_finish(&st, "daemon_batcher");
}
