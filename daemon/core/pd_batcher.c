#include "pd_batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pd_served.h"

struct pd_batcher {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* signalled on submit and stop */
  pd_batcher_limits lim;
  pd_request *head, *tail;
  int queued, reserved;
  int stopping;
};

int pd_batcher_create(const pd_batcher_limits *lim, pd_batcher **out, pd_error *err) {
  if (lim->max_batch < 1 || lim->max_queue < 1)
    return pd_error_set(err, PD_EINVAL, "batcher: max_batch %d and max_queue %d must be >= 1",
                        lim->max_batch, lim->max_queue);
  pd_batcher *b = calloc(1, sizeof *b);
  if (!b) return pd_error_set(err, PD_ENOMEM, "batcher: out of memory");
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

int pd_batcher_reserve(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  int ok = b->reserved < b->lim.max_queue;
  if (ok) b->reserved++;
  pthread_mutex_unlock(&b->mu);
  return ok ? PD_OK : PD_ELIMIT;
}

void pd_batcher_release(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  b->reserved--;
  pthread_mutex_unlock(&b->mu);
}

void pd_batcher_submit(pd_batcher *b, pd_request *req, uint64_t now_ns) {
  req->t_queued_ns = now_ns;
  req->next = NULL;
  pthread_mutex_lock(&b->mu);
  req->prev = b->tail;
  if (b->tail)
    b->tail->next = req;
  else
    b->head = req;
  b->tail = req;
  b->queued++;
  pthread_cond_signal(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

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
  b->queued--;
  b->reserved--;
}

/* Moves every request whose deadline has passed onto *expired. */
static void take_expired(pd_batcher *b, uint64_t now, pd_request **expired) {
  for (pd_request *r = b->head, *next; r; r = next) {
    next = r->next;
    if (r->deadline_ns && now >= r->deadline_ns) {
      unlink_req(b, r);
      r->next = *expired;
      *expired = r;
    }
  }
}

/* Images the head's batch may hold, and how many of the queued requests of
 * the head's model fit in it. Returns true when that batch is full. */
static bool head_batch_full(const pd_batcher *b, int cap) {
  const pd_served *model = b->head->served;
  int limit = b->lim.max_batch < model->max_batch ? b->lim.max_batch : model->max_batch;
  int images = 0, count = 0;
  for (const pd_request *r = b->head; r && r->served == model && count < cap; r = r->next) {
    if (images + r->views > limit) return true;
    images += r->views;
    count++;
  }
  return images >= limit || count >= cap;
}

static void take_batch(pd_batcher *b, pd_request **batch, int cap, int *n) {
  const pd_served *model = b->head->served;
  int limit = b->lim.max_batch < model->max_batch ? b->lim.max_batch : model->max_batch;
  int images = 0;
  *n = 0;
  while (b->head && b->head->served == model && *n < cap) {
    pd_request *r = b->head;
    if (*n > 0 && images + r->views > limit) break;
    images += r->views;
    unlink_req(b, r);
    batch[(*n)++] = r;
  }
}

static void deadline_to_timespec(uint64_t ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

int pd_batcher_next(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired) {
  *n = 0;
  *expired = NULL;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    uint64_t now = pd_now_ns();
    take_expired(b, now, expired);
    if (!b->head) {
      if (*expired) break;
      if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return PD_BATCHER_STOPPED;
      }
      pthread_cond_wait(&b->cond, &b->mu);
      continue;
    }
    uint64_t close_at = b->head->t_queued_ns + b->lim.max_queue_delay_ns;
    if (b->stopping || now >= close_at || head_batch_full(b, cap)) {
      take_batch(b, batch, cap, n);
      break;
    }
    if (*expired) break; /* hand those back now; the batch keeps filling */
    /* Wake at the close time or at the earliest deadline, whichever is first. */
    uint64_t wake = close_at;
    for (const pd_request *r = b->head; r; r = r->next)
      if (r->deadline_ns && r->deadline_ns < wake) wake = r->deadline_ns;
    struct timespec ts;
    deadline_to_timespec(wake, &ts);
    pthread_cond_timedwait(&b->cond, &b->mu, &ts);
  }
  pthread_mutex_unlock(&b->mu);
  return PD_OK;
}

void pd_batcher_stop(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  b->stopping = 1;
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

pd_batcher_counts pd_batcher_counts_get(pd_batcher *b) {
  pthread_mutex_lock(&b->mu);
  pd_batcher_counts c = {.queued = b->queued, .reserved = b->reserved};
  pthread_mutex_unlock(&b->mu);
  return c;
}
