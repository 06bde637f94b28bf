/* The drain on SIGTERM, made able to tell draining from dropping: the
 * daemon runs as planktond-faultinject with a slow backend
 * (PD_FAULT_INJECT=delay_ms=N: every plan run sleeps first), so requests
 * stay in flight while the test acts. Clients here send no Hello, so they
 * get no drain notice.
 *  - drain: a first wave on two connections, all read (Stats: in flight
 *    plus answered OK covers them, polled), then SIGTERM, then a second
 *    wave on the same connections: every first-wave request is answered OK
 *    with the engine's answer, every second-wave one UNAVAILABLE; a new
 *    connection is refused while the daemon still runs; the daemon exits 0;
 *  - a second signal (SIGINT after SIGTERM, SIGTERM after SIGINT) with work
 *    left: the owed connection is closed at once, long before its answers
 *    could come, and the daemon exits 0;
 *  - limits.drain_timeout_s 1 (scaled for slow runs) with several seconds
 *    of work owed: answers come until the timeout, then the connection is
 *    closed (about 1 s after the signal, not before), and the daemon exits 0;
 *  - a deadline that passes while the request is queued behind a slow batch
 *    (200 ms from receipt, not past on arrival) is answered
 *    DEADLINE_EXCEEDED and never computed (Stats counts one batch and one
 *    crop fewer than requests), while its neighbours are answered OK.
 *  - limits.drain_grace_ms: after SIGTERM, for the grace, Health says
 *    "draining" and /metrics planktond_draining 1 while the daemon serves on
 *    as before (a request on an open connection and one on a connection
 *    made after the signal are answered OK); the drain itself (listeners
 *    closed) begins no sooner than the grace after the signal, and the
 *    daemon exits 0; a second SIGTERM during a long grace drains at once.
 * Cases (pd_test_cases.h): drain_waves, second_signal, drain_timeout,
 * queued_deadline, drain_grace, grace_second_signal. */
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"

#define PROB_TOL 1e-5
#define MAX_IDS 64
#define NO_ANSWER (-1)

static uint8_t *png;
static size_t png_len;
static float ref_top_prob;
static int ref_top;

/* One client connection and what it got back, per request id. */
typedef struct peer {
  pc_client *c;
  int sent;
  int status[MAX_IDS];
  double answered_ms[MAX_IDS];
  int answers, dup, wrong;
  bool closed;
  double closed_ms;
} peer;

static int start_slow(pd_td *d, long delay_ms, const char *const *args) {
  const char *bin = getenv("PLANKTOND_FAULTINJECT");
  if (!bin || !*bin) {
    fprintf(stderr, "set PLANKTOND_FAULTINJECT\n");
    return -1;
  }
  char rule[64];
  snprintf(rule, sizeof rule, "PD_FAULT_INJECT=delay_ms=%ld", delay_ms);
  const char *env[] = {rule, NULL};
  pd_td_opts o = {.binary = bin, .env = env};
  return pd_td_start_opts(d, &o, args);
}

static bool peer_open(peer *p, const pd_td *d) {
  memset(p, 0, sizeof *p);
  for (int i = 0; i < MAX_IDS; i++)
    p->status[i] = NO_ANSWER;
  p->c = pd_td_connect(d, MAX_IDS);
  return p->c != NULL;
}

/* Sends n classify requests (the next ids) and writes them all out. */
static void peer_send(pd_test_state *st, peer *p, int n, uint64_t deadline_us) {
  pc_client_error err;
  for (int k = 0; k < n && p->sent < MAX_IDS; k++) {
    pc_client_classify_request rq = {.id = (uint64_t)p->sent,
                                     .format = PC_CLIENT_IMAGE_PNG,
                                     .data = png,
                                     .len = png_len,
                                     .deadline_us = deadline_us};
    PD_CHECK_INT(st, pc_client_send_classify(p->c, &rq, &err), PC_CLIENT_OK);
    p->sent++;
  }
  double until = pd_td_now_ms() + pd_td_scaled_ms(5000);
  while (pc_client_unsent(p->c) > 0 && pd_td_now_ms() < until)
    if (pc_client_wait(p->c, 50, &err) != PC_CLIENT_OK) break;
  PD_CHECK_INT(st, pc_client_unsent(p->c), 0);
}

static void take_answers(peer *p) {
  pc_client_response *r;
  while (pc_client_next_response(p->c, &r) == PC_CLIENT_OK) {
    int id = (int)r->id;
    if (r->kind != PC_CLIENT_RESPONSE_CLASSIFY || id < 0 || id >= p->sent ||
        p->status[id] != NO_ANSWER) {
      p->dup++;
    } else {
      p->status[id] = r->status;
      p->answered_ms[id] = pd_td_now_ms();
      p->answers++;
      if (r->status == 0 &&
          (r->u.classify.n_top < 1 || (int)r->u.classify.top[0].index != ref_top ||
           !(fabsf(r->u.classify.top[0].probability - ref_top_prob) <= PROB_TOL)))
        p->wrong++;
      if (r->status != 0 && r->status != PC_CLIENT_STATUS_UNAVAILABLE)
        fprintf(stderr, "  request %d: %s: %s\n", id, pc_client_status_name(r->status), r->message);
    }
    pc_client_response_free(r);
  }
}

/* Polls every open peer until all are answered or closed, or timeout_ms. */
static void pump(peer *ps, int n, int timeout_ms) {
  double until = pd_td_now_ms() + timeout_ms;
  for (;;) {
    struct pollfd pf[8];
    int open = 0;
    for (int i = 0; i < n; i++) {
      pf[i].fd = -1;
      pf[i].revents = 0;
      if (ps[i].closed || ps[i].answers == ps[i].sent) continue;
      pf[i].fd = pc_client_fd(ps[i].c);
      pf[i].events = pc_client_events(ps[i].c);
      open++;
    }
    double left = until - pd_td_now_ms();
    if (!open || left <= 0) return;
    poll(pf, (nfds_t)n, left < 50 ? (int)left + 1 : 50);
    for (int i = 0; i < n; i++) {
      if (pf[i].fd < 0 || !pf[i].revents) continue;
      pc_client_error err;
      int rc = pc_client_process(ps[i].c, pf[i].revents, &err);
      take_answers(&ps[i]);
      if (rc != PC_CLIENT_OK && !ps[i].closed) {
        ps[i].closed = true;
        ps[i].closed_ms = pd_td_now_ms();
      }
    }
  }
}

static int count_status(const peer *p, int from, int to, int status) {
  int n = 0;
  for (int i = from; i < to; i++)
    n += p->status[i] == status;
  return n;
}

/* Stats: `n` requests more than the baseline are read (in flight or
 * answered OK). */
typedef struct read_cond {
  uint64_t base_ok;
  uint32_t n;
} read_cond;

static bool all_read(const pc_client_stats_result *s, void *ctx) {
  const read_cond *c = ctx;
  return s->in_flight + (s->requests_by_status[0] - c->base_ok) >= c->n;
}

static bool wait_read(const pd_td *d, uint32_t n) {
  pc_client_response *r = pd_td_get_stats(d);
  read_cond c = {.base_ok = r ? r->u.stats.requests_by_status[0] : 0, .n = n};
  pc_client_response_free(r);
  return pd_td_poll_stats(d, all_read, &c, 10000, NULL);
}

static bool alive(pid_t pid) {
  return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static bool connect_refused(const pd_td *d) {
  pc_client *late = NULL;
  pc_client_options o = {.timeout_ms = 1000};
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", d->socket);
  bool refused = pc_client_connect(addr, &o, &late, NULL) != PC_CLIENT_OK;
  pc_client_close(late);
  return refused;
}

static void dump_log_on_failure(pd_test_state *st, const pd_td *d, int failures_before) {
  if (st->failures == failures_before) return;
  char *log = pd_td_log(d);
  fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
  free(log);
}

/* ---- 1. the drain: read before the signal OK, after it UNAVAILABLE ---- */

#define WAVE1 4
#define WAVE2 3

static void drain_waves(pd_test_state *st) {
  int failures = st->failures;
  pd_td d;
  char patience[16]; /* the drain timeout stays well out of the way */
  snprintf(patience, sizeof patience, "%d", pd_td_scaled_s(10));
  const char *args[] = {"--max-batch", "2", "--drain-timeout", patience, NULL};
  if (start_slow(&d, pd_td_scaled_ms(400), args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  peer ps[2];
  PD_CHECK(st, peer_open(&ps[0], &d) && peer_open(&ps[1], &d));
  for (int i = 0; i < 2; i++)
    peer_send(st, &ps[i], WAVE1, 0);
  /* 8 requests at 2 a batch and 400 ms a batch: 1.6 s of work */
  PD_CHECK(st, wait_read(&d, 2 * WAVE1));
  PD_CHECK_INT(st, kill(d.pid, SIGTERM), 0);
  PD_CHECK(st, pd_td_wait_log(&d, "SIGTERM: draining", pd_td_scaled_s(10)));
  /* The log line comes just before the front ends are told: a connection
   * may still land in the listener's backlog for a moment, so connect until
   * refused (bounded). The native front end marks itself draining before
   * it closes its listeners: once refused, everything read is "after". */
  bool refused = false;
  double refuse_until = pd_td_now_ms() + pd_td_scaled_ms(5000);
  while (!(refused = connect_refused(&d)) && pd_td_now_ms() < refuse_until)
    usleep(10000);
  bool still_alive = alive(d.pid);
  for (int i = 0; i < 2; i++)
    peer_send(st, &ps[i], WAVE2, 0);
  /* listeners closed, daemon still there, first wave still owed */
  pump(ps, 2, 0);
  int owed_at_refusal =
      2 * WAVE1 - count_status(&ps[0], 0, WAVE1, 0) - count_status(&ps[1], 0, WAVE1, 0);
  PD_CHECK(st, refused);
  PD_CHECK(st, still_alive);
  PD_CHECK(st, owed_at_refusal > 0);
  pump(ps, 2, pd_td_scaled_ms(30000));
  int ok = 0, unavailable = 0;
  for (int i = 0; i < 2; i++) {
    PD_CHECK_INT(st, ps[i].answers, WAVE1 + WAVE2);
    PD_CHECK_INT(st, ps[i].dup, 0);
    PD_CHECK_INT(st, ps[i].wrong, 0);
    PD_CHECK_INT(st, count_status(&ps[i], 0, WAVE1, 0), WAVE1);
    PD_CHECK_INT(st, count_status(&ps[i], WAVE1, WAVE1 + WAVE2, PC_CLIENT_STATUS_UNAVAILABLE),
                 WAVE2);
    ok += count_status(&ps[i], 0, WAVE1 + WAVE2, 0);
    unavailable += count_status(&ps[i], 0, WAVE1 + WAVE2, PC_CLIENT_STATUS_UNAVAILABLE);
  }
  int code = pd_td_stop(&d, 0, pd_td_scaled_s(30));
  PD_CHECK_INT(st, code, 0);
  PD_CHECK(st, pd_td_wait_log(&d, "drained", 1));
  printf("drain: first wave %d read before SIGTERM, second wave %d after: %d OK, %d UNAVAILABLE; "
         "a new connection refused with %d still owed; exit %d\n",
         2 * WAVE1, 2 * WAVE2, ok, unavailable, owed_at_refusal, code);
  for (int i = 0; i < 2; i++)
    pc_client_close(ps[i].c);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

/* ---- 2. a second signal closes the owed connections at once ---- */

#define OWED 8

static void signal_then(pd_test_state *st, int first, int second) {
  int failures = st->failures;
  pd_td d;
  const char *args[] = {"--max-batch", "1", NULL};
  int delay = pd_td_scaled_ms(700);
  if (start_slow(&d, delay, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  peer p;
  PD_CHECK(st, peer_open(&p, &d));
  peer_send(st, &p, OWED, 0);
  PD_CHECK(st, wait_read(&d, OWED)); /* 8 x 700 ms of work */
  const char *first_name = first == SIGTERM ? "SIGTERM" : "SIGINT";
  const char *second_name = second == SIGTERM ? "SIGTERM" : "SIGINT";
  char draining[64], again[128];
  snprintf(draining, sizeof draining, "%s: draining", first_name);
  snprintf(again, sizeof again, "%s again while draining: closing every connection now",
           second_name);
  PD_CHECK_INT(st, kill(d.pid, first), 0);
  PD_CHECK(st, pd_td_wait_log(&d, draining, pd_td_scaled_s(10)));
  double t_int = pd_td_now_ms();
  PD_CHECK_INT(st, kill(d.pid, second), 0);
  pump(&p, 1, pd_td_scaled_ms(30000));
  double closed_after = p.closed ? p.closed_ms - t_int : -1;
  PD_CHECK(st, p.closed);
  /* "at once": well before the next answer could come */
  PD_CHECK(st, closed_after >= 0 && closed_after < delay / 2.0);
  PD_CHECK(st, p.answers < OWED);
  PD_CHECK_INT(st, p.answers, count_status(&p, 0, OWED, 0)); /* what came was OK */
  PD_CHECK_INT(st, p.wrong, 0);
  PD_CHECK(st, pd_td_wait_log(&d, again, pd_td_scaled_s(5)));
  int code = pd_td_stop(&d, 0, pd_td_scaled_s(30));
  PD_CHECK_INT(st, code, 0);
  printf("%s then %s: %d owed, %d answered, connection closed %.0f ms after the second (a "
         "batch takes %d ms); exit %d\n",
         first_name, second_name, OWED, p.answers, closed_after, delay, code);
  pc_client_close(p.c);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

/* ---- 3. limits.drain_timeout_s ---- */

static void drain_timeout(pd_test_state *st) {
  int failures = st->failures;
  pd_td d;
  /* 1 s (scaled) of patience, batches of one at 300 ms (scaled) each: a
   * few answers come, then the connection is closed with most still owed */
  int timeout_s = pd_td_scaled_s(1), delay = timeout_s * 300;
  char timeout_arg[16], logged[96];
  snprintf(timeout_arg, sizeof timeout_arg, "%d", timeout_s);
  snprintf(logged, sizeof logged, "drain timeout (%d s): closing 1 connections", timeout_s);
  const char *args[] = {"--max-batch", "1", "--drain-timeout", timeout_arg, NULL};
  if (start_slow(&d, delay, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  peer p;
  PD_CHECK(st, peer_open(&p, &d));
  peer_send(st, &p, 3 * OWED, 0); /* 24 x 300 ms: 7.2 s of work */
  PD_CHECK(st, wait_read(&d, 3 * OWED));
  double t_term = pd_td_now_ms();
  PD_CHECK_INT(st, kill(d.pid, SIGTERM), 0);
  pump(&p, 1, pd_td_scaled_ms(30000));
  double closed_after = p.closed ? p.closed_ms - t_term : -1;
  PD_CHECK(st, p.closed);
  PD_CHECK(st, closed_after >= timeout_s * 1000 - 50 &&
                   closed_after < timeout_s * 1000 + pd_td_scaled_ms(1500));
  PD_CHECK(st, p.answers >= 1 && p.answers < 3 * OWED); /* some came meanwhile */
  PD_CHECK_INT(st, p.answers, count_status(&p, 0, 3 * OWED, 0));
  PD_CHECK_INT(st, p.wrong, 0);
  PD_CHECK(st, pd_td_wait_log(&d, logged, pd_td_scaled_s(5)));
  int code = pd_td_stop(&d, 0, pd_td_scaled_s(30));
  PD_CHECK_INT(st, code, 0);
  printf("drain_timeout_s %d: %d owed, %d answered OK, connection closed %.0f ms after SIGTERM; "
         "exit %d\n",
         timeout_s, 3 * OWED, p.answers, closed_after, code);
  pc_client_close(p.c);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

/* ---- 4. a deadline that passes while queued ---- */

static void queued_deadline(pd_test_state *st) {
  int failures = st->failures;
  pd_td d;
  /* one decode thread: the requests reach the queue in the order sent (a
   * valgrind run decoded 1 before 0 with the default pool and ran it first) */
  const char *args[] = {"--max-batch", "1", "--decode-threads", "1", NULL};
  int delay = pd_td_scaled_ms(600);
  if (start_slow(&d, delay, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client_response *before = pd_td_get_stats(&d);
  peer p;
  PD_CHECK(st, before && peer_open(&p, &d));
  if (!before || !p.c) {
    pc_client_response_free(before);
    pd_td_cleanup(&d);
    return;
  }
  peer_send(st, &p, 1, 0); /* 0: runs first, for `delay` ms */
  /* 1: 200 ms (scaled) from receipt, queued behind 0; 2: plenty of time */
  peer_send(st, &p, 1, (uint64_t)pd_td_scaled_ms(200) * 1000);
  peer_send(st, &p, 1, (uint64_t)pd_td_scaled_ms(60000) * 1000);
  pump(&p, 1, pd_td_scaled_ms(30000));
  PD_CHECK_INT(st, p.answers, 3);
  PD_CHECK_INT(st, p.status[0], 0);
  PD_CHECK_INT(st, p.status[1], PC_CLIENT_STATUS_DEADLINE_EXCEEDED);
  PD_CHECK_INT(st, p.status[2], 0);
  PD_CHECK_INT(st, p.wrong, 0);
  pc_client_response *after = pd_td_get_stats(&d);
  PD_CHECK(st, after != NULL);
  if (after) {
    const pc_client_stats_result *a = &after->u.stats, *b = &before->u.stats;
    PD_CHECK_INT(st, a->batches - b->batches, 2); /* 1 was never computed */
    PD_CHECK_INT(st, a->images - b->images, 2);
    PD_CHECK_INT(st, a->crops - b->crops, 2);
    PD_CHECK_INT(st,
                 a->requests_by_status[PC_CLIENT_STATUS_DEADLINE_EXCEEDED] -
                     b->requests_by_status[PC_CLIENT_STATUS_DEADLINE_EXCEEDED],
                 1);
  }
  printf("queued deadline: answers %s, %s, %s\n", pc_client_status_name(p.status[0]),
         pc_client_status_name(p.status[1]), pc_client_status_name(p.status[2]));
  pc_client_response_free(before);
  pc_client_response_free(after);
  pc_client_close(p.c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

static void second_signal(pd_test_state *st) {
  signal_then(st, SIGTERM, SIGINT);
  signal_then(st, SIGINT, SIGTERM);
}

/* ---- 5. limits.drain_grace_ms ---- */

static const char *health_state(pc_client *c, int *status) {
  static char state[32];
  pc_client_response *r = NULL;
  state[0] = '\0';
  *status = -1;
  if (pc_client_health(c, &r, NULL) == PC_CLIENT_OK && r) {
    *status = r->status;
    snprintf(state, sizeof state, "%s", r->u.health.state);
  }
  pc_client_response_free(r);
  return state;
}

static bool classify_ok(pd_test_state *st, pc_client *c, uint64_t id) {
  pc_client_classify_request rq = {
      .id = id, .format = PC_CLIENT_IMAGE_PNG, .data = png, .len = png_len};
  pc_client_response *r = c ? pd_td_classify(c, &rq) : NULL;
  bool ok = r && r->status == 0 && r->u.classify.n_top >= 1 &&
            (int)r->u.classify.top[0].index == ref_top &&
            fabsf(r->u.classify.top[0].probability - ref_top_prob) <= PROB_TOL;
  if (r && r->status != 0)
    fprintf(stderr, "  request %llu: %s: %s\n", (unsigned long long)id,
            pc_client_status_name(r->status), r->message);
  pc_client_response_free(r);
  PD_CHECK(st, ok);
  return ok;
}

static double draining_metric(const pd_td *d) {
  char path[400];
  snprintf(path, sizeof path, "%s/metrics.sock", d->dir);
  char *m = pd_td_metrics(path);
  double v = m ? pd_td_metric(m, "planktond_draining") : NAN;
  free(m);
  return v;
}

static void drain_grace(pd_test_state *st) {
  int failures = st->failures;
  pd_td d;
  int grace = pd_td_scaled_ms(3000);
  char grace_arg[16];
  snprintf(grace_arg, sizeof grace_arg, "%d", grace);
  const char *args[] = {"--drain-grace-ms", grace_arg, "--metrics", "unix:@DIR@/metrics.sock",
                        NULL};
  if (start_slow(&d, 0, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client *open = pd_td_connect(&d, 8);
  int status;
  PD_CHECK(st, !strcmp(health_state(open, &status), "serving"));
  PD_CHECK(st, draining_metric(&d) == 0.0);
  double t_term = pd_td_now_ms();
  PD_CHECK_INT(st, kill(d.pid, SIGTERM), 0);
  PD_CHECK(st, pd_td_wait_log(&d, "SIGTERM: not ready; serving on for the drain grace",
                              pd_td_scaled_s(5)));
  /* in the grace: not ready, and serving everyone as before */
  PD_CHECK(st, !strcmp(health_state(open, &status), "draining"));
  PD_CHECK(st, draining_metric(&d) == 1.0);
  pc_client *late = pd_td_connect(&d, 8); /* a connection made after the signal */
  PD_CHECK(st, late != NULL);
  classify_ok(st, open, 1);
  classify_ok(st, late, 2);
  double served_by = pd_td_now_ms() - t_term;
  PD_CHECK(st, served_by < grace); /* all of it inside the grace */
  PD_CHECK_INT(st, pd_td_log_count(&d, "draining: no new connections"), 0);
  /* then the drain: not before the grace has passed */
  bool refused = false;
  double until = pd_td_now_ms() + 2.0 * grace + pd_td_scaled_ms(5000);
  while (!(refused = connect_refused(&d)) && pd_td_now_ms() < until)
    usleep(20000);
  double refused_after = pd_td_now_ms() - t_term;
  PD_CHECK(st, refused);
  PD_CHECK(st, refused_after >= grace - 50);
  PD_CHECK(st, pd_td_wait_log(&d, "drain grace over: draining", 1));
  pc_client_close(open);
  pc_client_close(late);
  int code = pd_td_stop(&d, 0, pd_td_scaled_s(30));
  PD_CHECK_INT(st, code, 0);
  printf("drain grace %d ms: health draining and 2 requests served %.0f ms into it (one on a "
         "connection made after SIGTERM); new connections refused %.0f ms after SIGTERM; exit "
         "%d\n",
         grace, served_by, refused_after, code);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

static void grace_second_signal(pd_test_state *st) {
  int failures = st->failures;
  pd_td d;
  const char *args[] = {"--drain-grace-ms", "600000", NULL};
  if (start_slow(&d, 0, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  PD_CHECK_INT(st, kill(d.pid, SIGTERM), 0);
  PD_CHECK(st, pd_td_wait_log(&d, "drain grace (600000 ms)", pd_td_scaled_s(5)));
  double t = pd_td_now_ms();
  PD_CHECK_INT(st, kill(d.pid, SIGTERM), 0);
  PD_CHECK(st,
           pd_td_wait_log(&d, "SIGTERM during the drain grace: draining now", pd_td_scaled_s(5)));
  int code = pd_td_stop(&d, 0, pd_td_scaled_s(30));
  PD_CHECK_INT(st, code, 0);
  printf("drain grace 600 s, a second SIGTERM: drained and exited %d %.0f ms after it\n", code,
         pd_td_now_ms() - t);
  dump_log_on_failure(st, &d, failures);
  pd_td_cleanup(&d);
}

static uint8_t *gray;

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  gray = pd_td_crop(11, 80, 60);
  png = pd_td_png(gray, 80, 60, &png_len);
  pd_td_ref ref;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  int K = ref.model->n_classes;
  float *probs = malloc((size_t)K * sizeof *probs);
  int rc = probs ? pd_td_ref_probs(&ref, gray, 80, 60, probs) : -1;
  for (int k = 0; rc == 0 && k < K; k++)
    if (k == 0 || probs[k] > ref_top_prob) {
      ref_top = k;
      ref_top_prob = probs[k];
    }
  pd_td_ref_close(&ref);
  free(probs);
  return rc == 0 ? 0 : 1;
}

static void teardown(void) {
  free(gray);
  free(png);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(drain_waves),     PD_TEST_CASE(second_signal), PD_TEST_CASE(drain_timeout),
    PD_TEST_CASE(queued_deadline), PD_TEST_CASE(drain_grace),   PD_TEST_CASE(grace_second_signal),
};

PD_TEST_MAIN("daemon_sigterm", setup, teardown, k_cases)
