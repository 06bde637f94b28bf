/* pc_client_retry: the retry policy (see plankton_client.h): the requests
 * owed (each one's frame, kept for resending, in first-send order), the
 * state of the link (up, paused between attempts on a timerfd, down with
 * nothing owed), draining connections (a classify answer UNAVAILABLE or a
 * drain notice: nothing more is written there, and it is closed once the
 * answers it still owes are in), bounded exponential backoff with jitter,
 * the outage's time and attempt budget, and giving up: every request still
 * owed answered once, by the library, with the reason. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "pc_client_internal.h"

enum { DEFAULT_ATTEMPTS = 100, DEFAULT_BACKOFF_INITIAL_MS = 25, DEFAULT_BACKOFF_MAX_MS = 2000 };

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies src into dst[size], cut short if need be. */
static void copy_text(char *dst, size_t size, const char *src) {
  size_t n = strnlen(src, size - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int write_hello(pc_client *c);

static uint64_t rng_next(pc_client__retry *r) { /* xorshift64 */
  uint64_t x = r->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  r->rng = x;
  return x;
}

int pc_client_set_retry(pc_client *c, const pc_client_retry_policy *policy, pc_client_error *err) {
  if (!c) return pc_client__fail(err, PC_CLIENT_EINVAL, "retry policy: no client");
  pc_client_retry_policy p = {.retry_for_s = PC_CLIENT_RETRY_FOR_DEFAULT_S};
  if (policy) p = *policy;
  if (!isfinite(p.retry_for_s) || p.retry_for_s < 0 || p.retry_for_s > 86400 * 365.0)
    return pc_client__fail(err, PC_CLIENT_EINVAL,
                           "retry policy: retry_for_s %g is not a number of seconds >= 0",
                           p.retry_for_s);
  if (p.max_attempts < 0 || p.backoff_initial_ms < 0 || p.backoff_max_ms < 0)
    return pc_client__fail(err, PC_CLIENT_EINVAL,
                           "retry policy: max_attempts %d, backoff_initial_ms %d and "
                           "backoff_max_ms %d must be >= 0 (0: the default)",
                           p.max_attempts, p.backoff_initial_ms, p.backoff_max_ms);
  if (pc_client_in_flight(c) > 0)
    return pc_client__fail(err, PC_CLIENT_EINVAL,
                           "retry policy: set it before sending (%d in flight)",
                           pc_client_in_flight(c));
  pc_client__retry *r = &c->retry;
  if (p.retry_for_s == 0) {
    r->on = false;
    return PC_CLIENT_OK;
  }
  if (!p.max_attempts) p.max_attempts = DEFAULT_ATTEMPTS;
  if (!p.backoff_initial_ms) p.backoff_initial_ms = DEFAULT_BACKOFF_INITIAL_MS;
  if (!p.backoff_max_ms) p.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
  if (p.backoff_max_ms < p.backoff_initial_ms) p.backoff_max_ms = p.backoff_initial_ms;
  if (r->timer_fd < 0) {
    r->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->timer_fd < 0)
      return pc_client__fail(err, PC_CLIENT_EIO, "retry policy: timerfd_create: %s",
                             strerror(errno));
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  r->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)(uintptr_t)c << 7) ^
           (uint64_t)getpid();
  if (!r->rng) r->rng = 0x9e3779b97f4a7c15ull;
  bool was_on = r->on;
  r->policy = p;
  r->on = true;
  r->link = c->fd >= 0 ? PC_CLIENT__UP : PC_CLIENT__DOWN;
  r->drain_keep = UINT64_MAX;
  if (was_on || c->fd < 0) return PC_CLIENT_OK;
  r->writes = 0;
  if (write_hello(c) != PC_CLIENT_OK)
    return pc_client__fail(err, PC_CLIENT_ENOMEM, "retry policy: out of memory writing the Hello");
  return pc_client__flush(c, err);
}

void pc_client_retry_stats(const pc_client *c, pc_client_retry_counters *out) {
  *out = c->retry.n;
}

int pc_client_timeout_ms(const pc_client *c) {
  const pc_client__retry *r = &c->retry;
  if (!r->on || c->failed || r->link != PC_CLIENT__UP || !r->outage_start_ms || !r->n_owed)
    return -1;
  long long left = r->outage_start_ms + (long long)(r->policy.retry_for_s * 1000.0) - now_ms();
  return left <= 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

void pc_client__retry_free(pc_client *c) {
  pc_client__retry *r = &c->retry;
  for (size_t i = 0; i < r->n_owed; i++)
    free(r->owed[i].frame);
  free(r->owed);
  if (r->timer_fd >= 0) close(r->timer_fd);
}

/* ---- giving up ---- */

static int give_up(pc_client *c, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  double spent = r->outage_start_ms ? (double)(now_ms() - r->outage_start_ms) / 1000.0 : 0.0;
  char why[1200];
  snprintf(why, sizeof why,
           "no answer from planktond at %s after %d connection attempt%s in %.1f s (retry "
           "budget %g s, %d attempts): %s",
           c->address, r->attempts, r->attempts == 1 ? "" : "s", spent, r->policy.retry_for_s,
           r->policy.max_attempts, r->reason[0] ? r->reason : "connection lost");
  for (size_t i = 0; i < r->n_owed; i++) {
    pc_client__owed *e = &r->owed[i];
    pc_client_response *a = pc_client__synth(e->kind, e->id, PC_CLIENT_STATUS_UNAVAILABLE, why);
    if (a) pc_client__push_ready(c, a);
    r->n.failed_after_retries++;
    free(e->frame);
  }
  r->n_owed = r->n_sent = 0;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  r->link = PC_CLIENT__DOWN;
  c->failed = r->last_code ? r->last_code : PC_CLIENT_ECLOSED;
  copy_text(c->failed_msg, sizeof c->failed_msg, why);
  return pc_client__fail(err, c->failed, "%s", c->failed_msg);
}

/* ---- writing the owed requests ---- */

static int write_entry(pc_client *c, pc_client__owed *e) {
  pc_client__retry *r = &c->retry;
  if (pc_client__append(c, e->frame, e->len) != PC_CLIENT_OK) return PC_CLIENT_ENOMEM;
  e->state = PC_CLIENT__OWED_SENT;
  e->order = r->writes++;
  r->n_sent++;
  e->first = !e->was_sent;
  if (e->was_sent) r->n.resent++;
  e->was_sent = true;
  return PC_CLIENT_OK;
}

/* The Hello that opens every connection under a retry policy (write 0
 * there): it asks for a drain notice. A daemon older than Hello answers
 * UNIMPLEMENTED and keeps the connection (retry_answer takes that). */
static int write_hello(pc_client *c) {
  pc_client__retry *r = &c->retry;
  Plankton__Hello h = PLANKTON__HELLO__INIT;
  h.drain_notices = true;
  h.client = (char *)"libplankton_client";
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_HELLO;
  rq.hello = &h;
  uint8_t frame[PC_CLIENT_HEADER + 64];
  size_t body = plankton__request__get_packed_size(&rq);
  if (body > sizeof frame - PC_CLIENT_HEADER) return PC_CLIENT_EINVAL;
  frame[0] = frame[1] = frame[2] = 0;
  frame[3] = (uint8_t)body;
  plankton__request__pack(&rq, frame + PC_CLIENT_HEADER);
  if (pc_client__append(c, frame, PC_CLIENT_HEADER + body) != PC_CLIENT_OK) return PC_CLIENT_ENOMEM;
  r->writes++;
  r->hello_pending = true;
  return PC_CLIENT_OK;
}

/* Arms the timer for the next attempt, or gives up when the budget is spent. */
static int schedule(pc_client *c, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  long long now = now_ms();
  long long end = r->outage_start_ms + (long long)(r->policy.retry_for_s * 1000.0);
  if (r->attempts >= r->policy.max_attempts || now >= end) return give_up(c, err);
  long long delay = r->policy.backoff_initial_ms;
  for (int i = 0; i < r->attempts && delay < r->policy.backoff_max_ms; i++)
    delay *= 2;
  if (delay > r->policy.backoff_max_ms) delay = r->policy.backoff_max_ms;
  delay = delay / 2 + (long long)(rng_next(r) % (uint64_t)(delay / 2 + 1)); /* [d/2, d] */
  if (now + delay > end) delay = end - now;
  if (delay < 1) delay = 1;
  r->next_attempt_ms = now + delay;
  struct itimerspec its = {
      .it_value = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000}};
  if (timerfd_settime(r->timer_fd, 0, &its, NULL) != 0) {
    snprintf(r->reason, sizeof r->reason, "timerfd_settime: %s", strerror(errno));
    return give_up(c, err);
  }
  r->link = PC_CLIENT__PAUSE;
  return PC_CLIENT_OK;
}

/* One connection attempt; on success every owed request is written, in order. */
static int attempt(pc_client *c, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  r->attempts++;
  r->n.attempts++;
  long long left = r->outage_start_ms + (long long)(r->policy.retry_for_s * 1000.0) - now_ms();
  int timeout = c->opt.timeout_ms;
  if (timeout < 0 || left < timeout) timeout = left < 1 ? 1 : (int)left;
  pc_client_error e;
  int fd = -1;
  int rc = pc_client__open(c->address, timeout, &fd, &e);
  if (rc != PC_CLIENT_OK) {
    copy_text(r->reason, sizeof r->reason, e.message);
    r->last_code = rc;
    return schedule(c, err);
  }
  c->fd = fd;
  c->in_len = 0;
  c->out_off = c->out_len = 0;
  r->link = PC_CLIENT__UP;
  r->n.reconnects++;
  r->draining = false;
  r->drain_keep = UINT64_MAX;
  r->writes = 0;
  r->conn_reason[0] = '\0';
  if (write_hello(c) != PC_CLIENT_OK) {
    snprintf(r->reason, sizeof r->reason, "out of memory writing the Hello");
    r->last_code = PC_CLIENT_ENOMEM;
    return give_up(c, err);
  }
  for (size_t i = 0; i < r->n_owed; i++)
    if (write_entry(c, &r->owed[i]) != PC_CLIENT_OK) {
      snprintf(r->reason, sizeof r->reason, "out of memory resending %zu requests", r->n_owed);
      r->last_code = PC_CLIENT_ENOMEM;
      return give_up(c, err);
    }
  return pc_client__flush(c, err);
}

int pc_client__retry_queue(pc_client *c, pc_client_response_kind kind, uint64_t id,
                           const uint8_t *frame, size_t len, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  if (r->n_owed == r->cap_owed) {
    size_t cap = r->cap_owed ? r->cap_owed * 2 : 64;
    pc_client__owed *n = realloc(r->owed, cap * sizeof *n);
    if (!n) {
      free((void *)frame);
      return pc_client__fail(err, PC_CLIENT_ENOMEM, "out of memory queueing a request");
    }
    r->owed = n;
    r->cap_owed = cap;
  }
  pc_client__owed *e = &r->owed[r->n_owed++];
  *e = (pc_client__owed){.kind = kind, .id = id, .frame = (uint8_t *)frame, .len = len};
  switch (r->link) {
  case PC_CLIENT__UP:
    if (r->draining) return PC_CLIENT_OK; /* for the next connection */
    if (write_entry(c, e) != PC_CLIENT_OK) {
      free(e->frame);
      r->n_owed--;
      return pc_client__fail(err, PC_CLIENT_ENOMEM, "out of memory queueing a request");
    }
    return pc_client__flush(c, err);
  case PC_CLIENT__PAUSE:
    return PC_CLIENT_OK; /* written after the next connect */
  default:               /* down with nothing owed until now: reconnect at once */
    r->outage_start_ms = now_ms();
    r->attempts = 0;
    return attempt(c, err);
  }
}

/* ---- answers ---- */

static void note_reason(pc_client__retry *r, const char *what, const pc_client_response *a) {
  snprintf(r->conn_reason, sizeof r->conn_reason, "%s: %s%s%s", what,
           pc_client_status_name(a->status), a->message[0] ? ": " : "", a->message);
}

static void unsend(pc_client__retry *r, pc_client__owed *e) {
  if (e->state != PC_CLIENT__OWED_SENT) return;
  e->state = PC_CLIENT__OWED_QUEUED;
  r->n_sent--;
}

/* The connection takes nothing more (a drain notice, UNAVAILABLE): the
 * requests whose frames are still wholly in the output queue, at its end,
 * were never written; they are taken back for the next connection (the
 * daemon would only answer them UNAVAILABLE). A frame partly written stays. */
static void take_back_unwritten(pc_client *c) {
  pc_client__retry *r = &c->retry;
  for (;;) {
    pc_client__owed *last = NULL;
    for (size_t i = 0; i < r->n_owed && r->writes > 0; i++)
      if (r->owed[i].state == PC_CLIENT__OWED_SENT && r->owed[i].order == r->writes - 1)
        last = &r->owed[i];
    if (!last || last->len > c->out_len - c->out_off) return;
    c->out_len -= last->len;
    r->writes--;
    unsend(r, last);
    if (last->first)
      last->was_sent = false;
    else
      r->n.resent--;
  }
}

void pc_client__retry_answer(pc_client *c, pc_client_response *a) {
  pc_client__retry *r = &c->retry;
  if (a->kind == PC_CLIENT__RESPONSE_DRAIN) {
    /* the daemon answers the first a->id requests it read here, no later one */
    r->n.drain_notices++;
    r->draining = true;
    r->drain_keep = a->id;
    snprintf(r->conn_reason, sizeof r->conn_reason, "planktond is draining (drain notice)");
    take_back_unwritten(c);
    for (size_t i = 0; i < r->n_owed; i++)
      if (r->owed[i].state == PC_CLIENT__OWED_SENT && r->owed[i].order >= r->drain_keep)
        unsend(r, &r->owed[i]);
    pc_client_response_free(a);
    return;
  }
  if (a->kind == PC_CLIENT__RESPONSE_HELLO) {
    r->hello_pending = false; /* the notice, if any, comes when the drain does */
    pc_client_response_free(a);
    return;
  }
  if (a->kind == PC_CLIENT_RESPONSE_ERROR && r->hello_pending &&
      a->status == PC_CLIENT_STATUS_UNIMPLEMENTED) {
    /* a daemon older than Hello: the connection lives on, without notices
     * (its UNAVAILABLE answers and its close still tell of a drain) */
    r->hello_pending = false;
    pc_client_response_free(a);
    return;
  }
  if (a->kind == PC_CLIENT_RESPONSE_ERROR) {
    /* the daemon closes next; resending what it refused to read would only
     * repeat it, so a refused frame ends the retries */
    if (a->status == PC_CLIENT_STATUS_INVALID_ARGUMENT ||
        a->status == PC_CLIENT_STATUS_UNIMPLEMENTED) {
      r->no_retry = true;
      pc_client__push_ready(c, a);
      return;
    }
    note_reason(r, "planktond closed the connection", a);
    pc_client_response_free(a);
    return;
  }
  size_t i = 0;
  while (i < r->n_owed && (r->owed[i].kind != a->kind || r->owed[i].id != a->id))
    i++;
  if (i == r->n_owed) { /* answered already, or never asked here */
    r->n.duplicates_dropped++;
    pc_client_response_free(a);
    return;
  }
  pc_client__owed *e = &r->owed[i];
  if (a->kind == PC_CLIENT_RESPONSE_CLASSIFY && a->status == PC_CLIENT_STATUS_UNAVAILABLE) {
    r->n.unavailable++;
    r->draining = true;
    note_reason(r, "planktond answered", a);
    unsend(r, e);
    take_back_unwritten(c);
    pc_client_response_free(a);
    return;
  }
  unsend(r, e);
  free(e->frame);
  memmove(e, e + 1, (r->n_owed - i - 1) * sizeof *e);
  r->n_owed--;
  r->outage_start_ms = 0; /* an answer: the outage, if any, is over */
  r->attempts = 0;
  pc_client__push_ready(c, a);
}

/* ---- losing the connection ---- */

int pc_client__retry_lost(pc_client *c, int code, const char *msg, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
  if (r->link != PC_CLIENT__UP) return PC_CLIENT_OK; /* already lost */
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->out_off = c->out_len = 0;
  for (size_t i = 0; i < r->n_owed; i++)
    unsend(r, &r->owed[i]);
  copy_text(r->reason, sizeof r->reason, r->conn_reason[0] ? r->conn_reason : msg);
  r->conn_reason[0] = '\0';
  r->last_code = code;
  r->draining = false;
  if (r->n_owed == 0) {
    r->link = PC_CLIENT__DOWN;
    r->outage_start_ms = 0;
    return PC_CLIENT_OK;
  }
  if (!r->outage_start_ms) {
    r->outage_start_ms = now_ms();
    r->attempts = 0;
  }
  return schedule(c, err);
}

int pc_client__retry_step(pc_client *c, pc_client_error *err) {
  pc_client__retry *r = &c->retry;
  if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
  if (r->link == PC_CLIENT__PAUSE) {
    uint64_t fired = 0;
    if (read(r->timer_fd, &fired, sizeof fired) != (ssize_t)sizeof fired) fired = 0;
    return fired || now_ms() >= r->next_attempt_ms ? attempt(c, err) : PC_CLIENT_OK;
  }
  if (r->link == PC_CLIENT__UP && r->outage_start_ms && r->n_owed &&
      now_ms() >= r->outage_start_ms + (long long)(r->policy.retry_for_s * 1000.0)) {
    copy_text(r->reason, sizeof r->reason, "connected, but no answer within the budget");
    r->last_code = PC_CLIENT_ETIMEDOUT;
    return give_up(c, err);
  }
  if (r->link == PC_CLIENT__UP && r->draining && r->n_sent == 0)
    return pc_client__retry_lost(c, PC_CLIENT_ECLOSED, "planktond is draining", err);
  return PC_CLIENT_OK;
}
