/* daemon_rate: the open-loop load generator of bench/daemon_adaptive. A
 * camera stream: crops sent at a fixed rate (--rate R crops/s, spread over
 * --connections connections in turn) whatever the daemon answers, for a
 * warm-up and then a measured period; with --rate 0 it is closed loop
 * instead (each connection keeps --window crops in flight), which measures
 * the daemon's capacity. Requests ask no tta of their own (--tta 0: the
 * model's default, or what batching.adaptive_tta gives). Prints one line:
 *
 *   sent=N ok=N exhausted=N errors=N rps=R p50_ms=A p99_ms=B mean_views=V
 *   reduced=N client_full=N seconds=S
 *
 * over the requests sent in the measured period (latency: send to answer,
 * OK answers; rps: OK answers per second; mean_views: the TTA views the OK
 * answers report; reduced: OK answers with fewer views than the largest
 * seen; exhausted: RESOURCE_EXHAUSTED answers; errors: other failures;
 * client_full: sends skipped because a connection owed WINDOW_CAP answers). */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_crops.h"
#include "plankton_client.h"

#define MAX_CONNECTIONS 64
#define WINDOW_CAP 4096

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A whole decimal number; false (after saying so) for anything else. */
static bool number(const char *opt, const char *s, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  if (errno || end == s || *end) {
    fprintf(stderr, "daemon_rate: %s wants a number, got '%s'\n", opt, s);
    return false;
  }
  return true;
}

typedef struct totals {
  long sent, ok, exhausted, errors, views, reduced;
  long client_full; /* open loop: sends skipped, the connection owed WINDOW_CAP answers */
  int max_views;
  double *lat;
  int *views_of;
  size_t n_lat, cap;
} totals;

static int record(totals *t, double ms, const pc_client_response *r) {
  if (r->status == 8) {
    t->exhausted++;
    return 0;
  }
  if (r->kind != PC_CLIENT_RESPONSE_CLASSIFY || r->status != 0) {
    t->errors++;
    return 0;
  }
  t->ok++;
  int v = (int)r->u.classify.tta;
  t->views += v;
  if (v > t->max_views) t->max_views = v;
  if (t->n_lat == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 1 << 14;
    double *lat = realloc(t->lat, cap * sizeof *lat);
    int *vo = realloc(t->views_of, cap * sizeof *vo);
    if (lat) t->lat = lat;
    if (vo) t->views_of = vo;
    if (!lat || !vo) return -1;
    t->cap = cap;
  }
  t->views_of[t->n_lat] = v;
  t->lat[t->n_lat++] = ms;
  return 0;
}

int main(int argc, char **argv) {
  const char *address = NULL;
  int connections = 4, window = 16, tta = 0;
  double rate = 0, seconds = 10, warmup = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *opt = argv[i], *val = argv[i + 1];
    double v = 0;
    if (!strcmp(opt, "--address")) {
      address = val;
      continue;
    }
    if (!number(opt, val, &v)) return 2;
    if (!strcmp(opt, "--rate"))
      rate = v;
    else if (!strcmp(opt, "--connections"))
      connections = (int)v;
    else if (!strcmp(opt, "--window"))
      window = (int)v;
    else if (!strcmp(opt, "--tta"))
      tta = (int)v;
    else if (!strcmp(opt, "--seconds"))
      seconds = v;
    else if (!strcmp(opt, "--warmup"))
      warmup = v;
    else {
      fprintf(stderr, "daemon_rate: unknown option %s\n", opt);
      return 2;
    }
  }
  if (!address || connections < 1 || connections > MAX_CONNECTIONS || window < 1 ||
      window > WINDOW_CAP || rate < 0 || tta < 0 || seconds <= 0) {
    fprintf(stderr,
            "usage: daemon_rate --address ADDR [--rate R (0: closed loop)] "
            "[--connections 1..%d] [--window W] [--tta N] [--seconds S] [--warmup S]\n",
            MAX_CONNECTIONS);
    return 2;
  }
  bench_crop crops[BENCH_N_CROPS] = {0};
  for (int i = 0; i < BENCH_N_CROPS; i++)
    if (bench_crop_make(&crops[i], (uint64_t)i + 1) != 0) {
      fprintf(stderr, "daemon_rate: out of memory for the crops\n");
      return 1;
    }
  /* open loop: a connection may owe many answers while the daemon is behind */
  const int win = rate > 0 ? WINDOW_CAP : window;
  pc_client *cs[MAX_CONNECTIONS];
  struct pollfd pf[MAX_CONNECTIONS];
  static double sent_at[MAX_CONNECTIONS][WINDOW_CAP]; /* by id % win */
  uint64_t next_id[MAX_CONNECTIONS] = {0};
  pc_client_error err;
  for (int i = 0; i < connections; i++) {
    pc_client_options o = {.window = win, .timeout_ms = 60000};
    if (pc_client_connect(address, &o, &cs[i], &err) != PC_CLIENT_OK) {
      fprintf(stderr, "daemon_rate: %s\n", err.message);
      return 1;
    }
  }
  totals t = {0};
  const double t_start = now_s(), t_measure = t_start + warmup, t_end = t_measure + seconds;
  long scheduled = 0; /* open loop: requests due so far */
  int in_flight = 0, turn = 0;
  for (;;) {
    const double now = now_s();
    const bool sending = now < t_end;
    if (!sending && in_flight == 0) break;
    if (sending && rate > 0) {
      const long due = (long)((now - t_start) * rate);
      for (; scheduled < due; scheduled++) {
        const int i = turn++ % connections;
        const uint64_t id = next_id[i];
        if (pc_client_in_flight(cs[i]) >= win) { /* the connection owes too many answers */
          if (now >= t_measure) t.client_full++;
          continue;
        }
        const bench_crop *c = &crops[(id * 7 + (uint64_t)i) % BENCH_N_CROPS];
        pc_client_classify_request rq = {.id = id,
                                         .top_k = 5,
                                         .tta = (uint32_t)tta,
                                         .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                         .data = c->gray,
                                         .len = (size_t)c->w * (size_t)c->h,
                                         .width = (uint32_t)c->w,
                                         .height = (uint32_t)c->h};
        int rc = pc_client_send_classify(cs[i], &rq, &err);
        if (rc != PC_CLIENT_OK) {
          fprintf(stderr, "daemon_rate: %s\n", err.message);
          return 1;
        }
        sent_at[i][id % (uint64_t)win] = now;
        next_id[i]++;
        in_flight++;
        if (now >= t_measure) t.sent++;
      }
    }
    for (int i = 0; i < connections; i++) {
      while (sending && rate == 0 && pc_client_in_flight(cs[i]) < win) {
        const uint64_t id = next_id[i];
        const bench_crop *c = &crops[(id * 7 + (uint64_t)i) % BENCH_N_CROPS];
        pc_client_classify_request rq = {.id = id,
                                         .top_k = 5,
                                         .tta = (uint32_t)tta,
                                         .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                         .data = c->gray,
                                         .len = (size_t)c->w * (size_t)c->h,
                                         .width = (uint32_t)c->w,
                                         .height = (uint32_t)c->h};
        if (pc_client_send_classify(cs[i], &rq, &err) != PC_CLIENT_OK) {
          fprintf(stderr, "daemon_rate: %s\n", err.message);
          return 1;
        }
        sent_at[i][id % (uint64_t)win] = now_s();
        next_id[i]++;
        in_flight++;
        if (now >= t_measure) t.sent++;
      }
      pf[i].fd = pc_client_fd(cs[i]);
      pf[i].events = pc_client_events(cs[i]);
    }
    /* open loop: wake for the next send */
    int timeout = rate > 0 ? (int)ceil(1000.0 / rate) : 100;
    if (timeout > 100) timeout = 100;
    if (poll(pf, (nfds_t)(unsigned)connections, timeout) < 0) break;
    for (int i = 0; i < connections; i++) {
      if (!pf[i].revents) continue;
      if (pc_client_process(cs[i], pf[i].revents, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "daemon_rate: %s\n", err.message);
        return 1;
      }
      pc_client_response *r;
      while (pc_client_next_response(cs[i], &r) == PC_CLIENT_OK) {
        const double t0 = sent_at[i][r->id % (uint64_t)win];
        in_flight--;
        if (t0 >= t_measure && t0 < t_end && record(&t, (now_s() - t0) * 1e3, r) != 0) {
          fprintf(stderr, "daemon_rate: out of memory\n");
          return 1;
        }
        pc_client_response_free(r);
      }
    }
  }
  for (size_t k = 0; k < t.n_lat; k++)
    t.reduced += t.views_of[k] < t.max_views;
  qsort(t.lat, t.n_lat, sizeof *t.lat, cmp_double);
  const double p50 = t.n_lat ? t.lat[t.n_lat / 2] : 0,
               p99 = t.n_lat ? t.lat[(size_t)(0.99 * (double)(t.n_lat - 1))] : 0;
  printf("sent=%ld ok=%ld exhausted=%ld errors=%ld rps=%.2f p50_ms=%.2f p99_ms=%.2f "
         "mean_views=%.2f reduced=%ld client_full=%ld seconds=%.1f\n",
         t.sent, t.ok, t.exhausted, t.errors, (double)t.ok / seconds, p50, p99,
         t.ok ? (double)t.views / (double)t.ok : 0.0, t.reduced, t.client_full, seconds);
  for (int i = 0; i < connections; i++)
    pc_client_close(cs[i]);
  for (int i = 0; i < BENCH_N_CROPS; i++)
    bench_crop_free(&crops[i]);
  free(t.lat);
  free(t.views_of);
  return 0;
}
