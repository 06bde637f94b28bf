#include "pd_batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pd_served.h"

/* Models a batch close looks at (the rest wait their turn). */
#define PD_BATCHER_MODELS 64

/* One client holding places: its FIFO queue (linked through client_next /
 * client_prev), its place in the round-robin ring (only while it has
 * requests queued) and its deficit in images. Freed when it holds no
 * place. */
struct pd_batcher_client {
  uint64_t key;
  int weight;
  int reserved; /* places, its queued requests included */
  int queued;
  long deficit;
  pd_request *qhead, *qtail;
  struct pd_batcher_client *ring_next, *ring_prev;
  struct pd_batcher_client *hash_next;
};
typedef struct pd_batcher_client client;

struct pd_batcher {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* signalled on submit and stop */
  pd_batcher_limits lim;
  pd_request *head, *tail; /* every queued request, oldest first */
  int queued, reserved;
  int stopping;
  uint64_t batches;        /* batches formed */
  uint64_t compute_avg_ns; /* pd_batcher_computed */
  /* clients holding places: a hash table by key */
  client **buckets;
  size_t n_buckets; /* a power of two */
  int n_clients;
  long weights; /* the weights of those clients */
  /* the deficit round robin: clients with requests queued */
  client *cursor;  /* whose turn it is (NULL: none queued) */
  bool turn_paid;  /* the cursor's weight was added for this turn */
  int ring_length; /* clients in the ring */
  /* models whose batch was ready when another model's closed (their
   * delay had passed or their batch was full): the next batch is theirs */
  const pd_served *passed_over[PD_BATCHER_MODELS];
  int n_passed_over;
};

int pd_batcher_create(const pd_batcher_limits *lim, pd_batcher **out, pd_error *err) {
  if (lim->max_batch < 1 || lim->max_queue < 1)
    return pd_error_set(err, PD_EINVAL, "batcher: max_batch %d and max_queue %d must be >= 1",
                        lim->max_batch, lim->max_queue);
  pd_batcher *b = calloc(1, sizeof *b);
  if (!b) return pd_error_set(err, PD_ENOMEM, "batcher: out of memory");
  b->n_buckets = 64;
  b->buckets = calloc(b->n_buckets, sizeof(client *));
  if (!b->buckets) {
    free(b);
    return pd_error_set(err, PD_ENOMEM, "batcher: out of memory");
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&b->mu, NULL);
  b->lim = *lim;
  *out = b;
  return PD_OK;
}

void pd_batcher_destroy(pd_batcher *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n_buckets; i++)
    for (client *c = b->buckets[i], *next; c; c = next) {
      next = c->hash_next;
      free(c);
    }
  free(b->buckets);
  pthread_cond_destroy(&b->cond);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

void pd_batcher_set_limits(pd_batcher *b, const pd_batcher_limits *lim) {
  pthread_mutex_lock(&b->mu);
  b->lim = *lim;
  pthread_cond_signal(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

/* ---- clients ---- */

static size_t bucket_of(const pd_batcher *b, uint64_t key) {
  uint64_t h = key * 0x9e3779b97f4a7c15ull; /* Fibonacci hashing */
  return (size_t)(h >> 32) & (b->n_buckets - 1);
}

static client *client_find(const pd_batcher *b, uint64_t key) {
  for (client *c = b->buckets[bucket_of(b, key)]; c; c = c->hash_next)
    if (c->key == key) return c;
  return NULL;
}

/* Doubles the table when it holds more clients than buckets (best effort:
 * a failed allocation keeps the longer chains). */
static void clients_grow(pd_batcher *b) {
  if ((size_t)b->n_clients < b->n_buckets) return;
  size_t old_n = b->n_buckets;
  client **old = b->buckets;
  client **nb = calloc(old_n * 2, sizeof(client *));
  if (!nb) return;
  b->buckets = nb;
  b->n_buckets = old_n * 2;
  for (size_t i = 0; i < old_n; i++)
    for (client *c = old[i], *next; c; c = next) {
      next = c->hash_next;
      size_t k = bucket_of(b, c->key);
      c->hash_next = nb[k];
      nb[k] = c;
    }
  free(old);
}

static client *client_add(pd_batcher *b, uint64_t key, int weight) {
  client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->key = key;
  c->weight = weight;
  size_t k = bucket_of(b, key);
  c->hash_next = b->buckets[k];
  b->buckets[k] = c;
  b->n_clients++;
  b->weights += weight;
  clients_grow(b);
  return c;
}

/* One place of c's given back; c goes when it holds none. */
static void client_put(pd_batcher *b, client *c) {
  b->reserved--;
  if (--c->reserved > 0) return;
  for (client **at = &b->buckets[bucket_of(b, c->key)]; *at; at = &(*at)->hash_next)
    if (*at == c) {
      *at = c->hash_next;
      break;
    }
  b->n_clients--;
  b->weights -= c->weight;
  free(c);
}

/* The ring: a client joins at the end of the round (just before the
 * cursor) when its first request is queued, and leaves when it has none. */
static void ring_join(pd_batcher *b, client *c) {
  if (!b->cursor) {
    c->ring_next = c->ring_prev = c;
    b->cursor = c;
    b->turn_paid = false;
  } else {
    c->ring_next = b->cursor;
    c->ring_prev = b->cursor->ring_prev;
    c->ring_prev->ring_next = c;
    b->cursor->ring_prev = c;
  }
  b->ring_length++;
}

static void ring_leave(pd_batcher *b, client *c) {
  if (b->cursor == c) {
    b->cursor = c->ring_next == c ? NULL : c->ring_next;
    b->turn_paid = false;
  }
  c->ring_prev->ring_next = c->ring_next;
  c->ring_next->ring_prev = c->ring_prev;
  c->ring_next = c->ring_prev = NULL;
  c->deficit = 0;
  b->ring_length--;
}

/* ---- admission ---- */

int pd_batcher_reserve(pd_batcher *b, pd_request *req, pd_error *err) {
  const int weight = req->client_weight > 0 ? req->client_weight : 1;
  int rc = PD_OK;
  pthread_mutex_lock(&b->mu);
  client *c = client_find(b, req->client);
  const long long places = b->lim.max_queue;
  const long long held = c ? c->reserved : 0;
  const long long weights = b->weights - (c ? c->weight : 0) + weight;
  if (b->reserved >= 2 * places) {
    rc = pd_error_set(err, PD_ELIMIT,
                      "queue full: %d requests decoding or waiting, twice batching.max_queue %lld, "
                      "for %d clients",
                      b->reserved, places, b->n_clients);
  } else if (b->reserved >= places && held * weights >= places * weight) {
    rc = pd_error_set(err, PD_ELIMIT,
                      "queue full: %d requests decoding or waiting (batching.max_queue %lld), "
                      "%lld of them this client's, at or over its share of %lld among %lld "
                      "clients (weight %d of %lld)",
                      b->reserved, places, held, places * weight / weights,
                      (long long)b->n_clients + (c ? 0 : 1), weight, weights);
  } else if (!c && !(c = client_add(b, req->client, weight))) {
    rc = pd_error_set(err, PD_ENOMEM, "queue: out of memory for a client record");
  } else {
    b->weights += weight - c->weight;
    c->weight = weight;
    c->reserved++;
    b->reserved++;
    req->bclient = c;
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

void pd_batcher_release(pd_batcher *b, pd_request *req) {
  pthread_mutex_lock(&b->mu);
  client_put(b, req->bclient); /* req->bclient is stale from here on */
  pthread_mutex_unlock(&b->mu);
}

void pd_batcher_submit(pd_batcher *b, pd_request *req, uint64_t now_ns) {
  req->t_queued_ns = now_ns;
  req->next = req->client_next = NULL;
  pthread_mutex_lock(&b->mu);
  req->batch_seq = b->batches;
  req->prev = b->tail;
  if (b->tail)
    b->tail->next = req;
  else
    b->head = req;
  b->tail = req;
  client *c = req->bclient;
  req->client_prev = c->qtail;
  if (c->qtail)
    c->qtail->client_next = req;
  else
    c->qhead = req;
  c->qtail = req;
  if (c->queued++ == 0) ring_join(b, c);
  b->queued++;
  pthread_cond_signal(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

/* Takes r out of the queue, its client's queue and its place. Its client
 * may leave the ring (the cursor moves on) and be freed. */
static void unlink_req(pd_batcher *b, pd_request *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    b->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    b->tail = r->prev;
  r->next = r->prev = NULL;
  client *c = r->bclient;
  if (r->client_prev)
    r->client_prev->client_next = r->client_next;
  else
    c->qhead = r->client_next;
  if (r->client_next)
    r->client_next->client_prev = r->client_prev;
  else
    c->qtail = r->client_prev;
  r->client_next = r->client_prev = NULL;
  if (--c->queued == 0) ring_leave(b, c);
  b->queued--;
  client_put(b, c); /* r->bclient is stale from here on */
}

/* Moves every request whose deadline has passed, or that was cancelled,
 * onto *expired. */
static void take_expired(pd_batcher *b, uint64_t now, pd_request **expired) {
  for (pd_request *r = b->head, *next; r; r = next) {
    next = r->next;
    if ((r->deadline_ns && now >= r->deadline_ns) || atomic_load(&r->cancelled)) {
      unlink_req(b, r);
      r->next = *expired;
      *expired = r;
    }
  }
}

/* Images a batch of `model` may hold: its own max_batch (model.yaml
 * serving:), else the daemon's within its plan. */
static int batch_limit(const pd_batcher *b, const pd_served *model) {
  if (model->own_max_batch) return model->max_batch;
  return b->lim.max_batch < model->max_batch ? b->lim.max_batch : model->max_batch;
}

/* How long the oldest request of `model` may wait for its batch to fill. */
static uint64_t queue_delay(const pd_batcher *b, const pd_served *model) {
  return model->own_max_queue_delay ? model->max_queue_delay_ns : b->lim.max_queue_delay_ns;
}

/* True when the queued requests of `model` fill its batch (by images or by
 * count), or the next of them would not fit. */
static bool batch_full(const pd_batcher *b, const pd_served *model, int cap) {
  int limit = batch_limit(b, model);
  int images = 0, count = 0;
  for (const pd_request *r = b->head; r && count < cap; r = r->next) {
    if (r->served != model) continue;
    if (images + r->views > limit) return true;
    images += r->views;
    count++;
  }
  return images >= limit || count >= cap;
}

/* What a request costs in deficit: its images, at most a whole batch (a
 * request larger than a batch runs alone). */
static long cost_of(const pd_request *r, int limit) {
  return r->views < limit ? r->views : limit;
}

/* Fills a batch of `model` by deficit round robin over the clients'
 * queues, starting with the client whose turn it is. */
static void take_batch(pd_batcher *b, const pd_served *model, pd_request **batch, int cap, int *n) {
  const int limit = batch_limit(b, model);
  int images = 0, idle_visits = 0;
  *n = 0;
  while (b->cursor && idle_visits < b->ring_length) {
    client *c = b->cursor;
    const pd_request *r = c->qhead;
    if (r->served != model) { /* sits this batch out */
      b->cursor = c->ring_next;
      b->turn_paid = false;
      idle_visits++;
      continue;
    }
    idle_visits = 0;
    if (!b->turn_paid) {
      c->deficit += c->weight;
      b->turn_paid = true;
    }
    bool full = false, gone = false;
    while (!gone) {
      pd_request *next = c->qhead;
      if (next->served != model || cost_of(next, limit) > c->deficit) break;
      if (*n >= cap || (*n > 0 && images + next->views > limit)) {
        full = true; /* earned, no room: the next batch starts here */
        break;
      }
      gone = c->queued == 1; /* then c leaves the ring and may be freed */
      c->deficit -= cost_of(next, limit);
      images += next->views;
      unlink_req(b, next);
      next->batches_waited = (int)(b->batches - next->batch_seq);
      batch[(*n)++] = next;
    }
    if (full) break;
    if (!gone) { /* its turn is over */
      b->cursor = c->ring_next;
      b->turn_paid = false;
    }
    if (*n >= cap || images >= limit) break;
  }
  b->batches++;
}

static bool was_passed_over(const pd_batcher *b, const pd_served *m) {
  for (int i = 0; i < b->n_passed_over; i++)
    if (b->passed_over[i] == m) return true;
  return false;
}

/* The model whose batch closes now, of those whose batch is ready (full, or
 * its oldest request waited its model's delay: each model its own,
 * model.yaml serving:; any when stopping): one that was ready when another
 * model's batch closed, else the one with the oldest request. So a model
 * with a backlog (its oldest request always the oldest of all) gets most
 * batches, and a ready model waits for at most one batch of others (with
 * many models ready at once, for the ones passed over before it). The
 * other ready models are remembered as passed over. NULL when none is ready
 * yet, with *wake the earliest close time. */
static const pd_served *closing_model(pd_batcher *b, uint64_t now, int cap, uint64_t *wake) {
  const pd_served *seen[PD_BATCHER_MODELS], *ready[PD_BATCHER_MODELS];
  int n_seen = 0, n_ready = 0;
  *wake = UINT64_MAX;
  for (const pd_request *r = b->head; r && n_seen < PD_BATCHER_MODELS; r = r->next) {
    bool known = false;
    for (int i = 0; i < n_seen && !known; i++)
      known = seen[i] == r->served;
    if (known) continue;
    seen[n_seen++] = r->served;
    const uint64_t close_at = r->t_queued_ns + queue_delay(b, r->served);
    if (b->stopping || now >= close_at || batch_full(b, r->served, cap))
      ready[n_ready++] = r->served; /* oldest request first */
    else if (close_at < *wake)
      *wake = close_at;
  }
  if (n_ready == 0) return NULL;
  const pd_served *pick = ready[0];
  for (int i = 0; i < n_ready; i++)
    if (was_passed_over(b, ready[i])) {
      pick = ready[i];
      break;
    }
  /* passed over now: every other ready model (kept while it stays ready) */
  int n = 0;
  for (int i = 0; i < n_ready; i++)
    if (ready[i] != pick) b->passed_over[n++] = ready[i];
  b->n_passed_over = n;
  return pick;
}

static void deadline_to_timespec(uint64_t ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

static int next_batch(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired,
                      bool block) {
  *n = 0;
  *expired = NULL;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    uint64_t now = pd_now_ns();
    take_expired(b, now, expired);
    if (!b->head) {
      if (*expired) break;
      if (b->stopping && block) {
        pthread_mutex_unlock(&b->mu);
        return PD_BATCHER_STOPPED;
      }
      if (!block) break;
      pthread_cond_wait(&b->cond, &b->mu);
      continue;
    }
    uint64_t wake = 0;
    const pd_served *model = closing_model(b, now, cap, &wake);
    if (model) {
      take_batch(b, model, batch, cap, n);
      /* its requests all behind another model's in their clients' queues
       * (each client's own order stands): the oldest request's model then */
      if (*n == 0 && model != b->head->served) take_batch(b, b->head->served, batch, cap, n);
      break;
    }
    if (*expired || !block) break; /* hand those back now; the batch keeps filling */
    /* Wake at the earliest close time or deadline. */
    for (const pd_request *r = b->head; r; r = r->next)
      if (r->deadline_ns && r->deadline_ns < wake) wake = r->deadline_ns;
    struct timespec ts;
    deadline_to_timespec(wake, &ts);
    pthread_cond_timedwait(&b->cond, &b->mu, &ts);
  }
  pthread_mutex_unlock(&b->mu);
  return PD_OK;
}

int pd_batcher_next(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired) {
  return next_batch(b, batch, cap, n, expired, true);
}

int pd_batcher_try_next(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired) {
  return next_batch(b, batch, cap, n, expired, false);
}

void pd_batcher_poke(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  pthread_cond_signal(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

void pd_batcher_stop(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  b->stopping = 1;
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

void pd_batcher_computed(pd_batcher *b, uint64_t ns) {
  pthread_mutex_lock(&b->mu);
  if (b->compute_avg_ns == 0)
    b->compute_avg_ns = ns ? ns : 1;
  else /* avg += (ns - avg) / 8, in signed arithmetic */
    b->compute_avg_ns =
        (uint64_t)((int64_t)b->compute_avg_ns + ((int64_t)ns - (int64_t)b->compute_avg_ns) / 8);
  pthread_mutex_unlock(&b->mu);
}

pd_batcher_load pd_batcher_load_get(pd_batcher *b, uint64_t now_ns) {
  pthread_mutex_lock(&b->mu);
  pd_batcher_load l = {.compute_avg_ns = b->compute_avg_ns};
  /* the head was queued first: the oldest waiting (decodes take about as
   * long for every crop, so it is also about the oldest received) */
  if (b->head && now_ns > b->head->t_recv_ns) l.oldest_wait_ns = now_ns - b->head->t_recv_ns;
  pthread_mutex_unlock(&b->mu);
  return l;
}

pd_batcher_counts pd_batcher_counts_get(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  pd_batcher_counts c = {.queued = b->queued, .reserved = b->reserved, .clients = b->n_clients};
  pthread_mutex_unlock(&b->mu);
  return c;
}
