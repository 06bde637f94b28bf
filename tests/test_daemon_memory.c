/* The global receive-buffer bound (limits.max_receive_bytes, pd_conn.h)
 * against the real daemon, with max_frame_bytes 4 MiB and
 * max_receive_bytes 8 MiB:
 *  - 16 "hogs" each send a frame header claiming 4,000,000 bytes and
 *    3,000,000 bytes of it, then go silent. Without the bound the daemon
 *    would buffer ~64 MiB; with it, connections wait for memory: the
 *    budgeted bytes stay within limit + one frame, the daemon's RSS grows by
 *    far less than the hogs sent, planktond_receive_waits_total counts the
 *    waits, and a well-behaved client (small frames, inside each
 *    connection's free 256 KiB) keeps getting correct answers meanwhile;
 *  - the hogs' frames never complete: each is closed with DEADLINE_EXCEEDED
 *    (limits.frame_timeout_ms runs while a connection waits, so a silent
 *    client cannot hold memory or the overdraft for longer), and the memory
 *    comes back;
 *  - 6 clients then send complete 3.5 MB images at once through the client
 *    library: more than the budget holds, so some wait, and every one is
 *    answered OK (the oldest waiter may overdraw by one frame: no
 *    deadlock).
 * No check measures time: every wait has a generous bound that only turns a
 * hang into a failure. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_bystander.h"
#include "pd_td_raw.h"
#include "pd_test_cases.h"

#define MAX_FRAME (4L << 20)
#define BUDGET (8L << 20)
#define FRAME_TIMEOUT_MS 5000
#define HOGS 16
#define HOG_CLAIM 4000000u
#define HOG_SENDS 3000000u
#define BIG_SIDE 1870 /* a raw image of 3.5 MB */
#define BIG_CLIENTS 6
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */

static pd_td_crop_ref small, big; /* the crops below are theirs */
static uint8_t *small_png;
static size_t small_png_len;
static float *small_probs;
static float *big_probs; /* the engine's answer for the big crop */
static int n_classes;

/* ---- hogs: most of a big frame, then silence ---- */

typedef struct hog {
  const pd_td *d;
  pthread_t t;
  size_t sent;
  bool outcome; /* DEADLINE_EXCEEDED, then closed */
} hog;

static void *hog_main(void *arg) {
  hog *h = arg;
  h->outcome = false;
  int fd = pd_raw_connect(h->d->socket);
  if (fd < 0) return NULL;
  uint8_t *buf = calloc(1, 4 + HOG_SENDS);
  buf[0] = (uint8_t)(HOG_CLAIM >> 24);
  buf[1] = (uint8_t)(HOG_CLAIM >> 16);
  buf[2] = (uint8_t)(HOG_CLAIM >> 8);
  buf[3] = (uint8_t)HOG_CLAIM;
  /* in 64 KiB pieces, so `sent` says how far the daemon (and the kernel's
   * socket buffers) let it get before the close */
  for (size_t at = 0; at < 4 + HOG_SENDS; at += 65536) {
    size_t n = 4 + HOG_SENDS - at < 65536 ? 4 + HOG_SENDS - at : 65536;
    if (pd_raw_write(fd, buf + at, n) != 0) break;
    h->sent = at + n;
  }
  free(buf);
  h->outcome = pd_raw_error_then_close(fd, PLANKTON__STATUS_CODE__DEADLINE_EXCEEDED, NULL, 60000);
  close(fd);
  return NULL;
}

/* ---- big complete images through the client library ---- */

typedef struct big_client {
  const pd_td *d;
  pthread_t t;
  const uint8_t *gray;
  int status;   /* the answer's status, or -1 */
  double worst; /* max |p - engine| of its answer (1: none or the wrong size) */
} big_client;

static void *big_main(void *arg) {
  big_client *b = arg;
  b->status = -1;
  b->worst = 1;
  pc_client *c = pd_td_connect(b->d, 1);
  if (!c) return NULL;
  pc_client_classify_request rq = {.id = 7,
                                   .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                   .data = b->gray,
                                   .len = (size_t)BIG_SIDE * BIG_SIDE,
                                   .width = BIG_SIDE,
                                   .height = BIG_SIDE,
                                   .full_distribution = true};
  pc_client_response *r = NULL;
  pc_client_error err;
  if (pc_client_classify(c, &rq, &r, &err) == PC_CLIENT_OK) {
    b->status = r->status;
    const pc_client_classify_result *cr = &r->u.classify;
    if (r->status == 0 && cr->n_distribution == (size_t)n_classes) {
      b->worst = 0;
      for (int j = 0; j < n_classes; j++) {
        double dj = fabs((double)cr->distribution[j] - big_probs[j]);
        if (dj > b->worst) b->worst = dj;
      }
    }
    if (r->status != 0)
      fprintf(stderr, "big image: %s: %s\n", pc_client_status_name(r->status), r->message);
  } else {
    fprintf(stderr, "big image: %s\n", err.message);
  }
  pc_client_response_free(r);
  pc_client_close(c);
  return NULL;
}

/* ---- /metrics ---- */

static double metric(const pd_td *d, const char *name) {
  char path[400];
  snprintf(path, sizeof path, "%s/metrics.sock", d->dir);
  char *text = pd_raw_metrics(path);
  double v = text ? pd_raw_metric(text, name) : -1;
  free(text);
  return v;
}

/* Waits (bounded) until metric >= at_least; returns the last value. */
static double metric_reaches(const pd_td *d, const char *name, double at_least) {
  double v = -1, until = pd_td_now_ms() + 30000;
  while (pd_td_now_ms() < until) {
    v = metric(d, name);
    if (v >= at_least) break;
    usleep(50000);
  }
  return v;
}

static double metric_falls(const pd_td *d, const char *name, double at_most) {
  double v = -1, until = pd_td_now_ms() + 30000;
  while (pd_td_now_ms() < until) {
    v = metric(d, name);
    if (v >= 0 && v <= at_most) break;
    usleep(50000);
  }
  return v;
}

/* ---- the cases (pd_test_cases.h): each on a daemon of its own, with a
 * bystander client whose answers are checked throughout ---- */

static bool start(pd_test_state *st, pd_td_guarded *f) {
  char max_frame[32], budget[64], ftimeout[32];
  snprintf(max_frame, sizeof max_frame, "%ld", MAX_FRAME);
  snprintf(budget, sizeof budget, "limits.max_receive_bytes=%ld", BUDGET);
  snprintf(ftimeout, sizeof ftimeout, "%d", FRAME_TIMEOUT_MS);
  const char *args[] = {"--max-frame-bytes",
                        max_frame,
                        "--set",
                        budget,
                        "--frame-timeout-ms",
                        ftimeout,
                        "--threads",
                        "1",
                        "--metrics",
                        "unix:@DIR@/metrics.sock",
                        NULL};
  const pd_td_bystander by = {.png = small_png,
                              .png_len = small_png_len,
                              .want = small_probs,
                              .n_classes = n_classes,
                              .tol = PROB_TOL};
  if (!pd_td_guarded_start(st, f, args, &by)) return false;
  PD_CHECK(st, pd_td_bystander_progress(&f->b, 5));
  return true;
}

/* Hogs: the daemon waits instead of buffering; their frames never complete:
 * DEADLINE_EXCEEDED, memory back. */
static void hogs_wait(pd_test_state *st) {
  pd_td_guarded f;
  if (!start(st, &f)) return;
  pd_td *d = &f.d;
  pd_td_bystander *b = &f.b;
  long rss0 = pd_raw_rss_kb(d->pid);

  static hog hogs[HOGS];
  for (int i = 0; i < HOGS; i++) {
    hogs[i].d = d;
    pthread_create(&hogs[i].t, NULL, hog_main, &hogs[i]);
  }
  double waits = metric_reaches(d, "planktond_receive_waits_total", HOGS / 2);
  double held = metric(d, "planktond_receive_buffer_bytes");
  long rss1 = pd_raw_rss_kb(d->pid);
  PD_CHECK(st, waits >= HOGS / 2);
  /* the budget plus one overdrawn frame (and its read-size slack) */
  PD_CHECK(st, held >= 0 && held <= (double)(BUDGET + MAX_FRAME + (1 << 20)));
  /* The hogs sent ~48 MB (their buffers would double to 64 MiB); the
   * daemon holds the budget, the overdraft and each connection's free
   * 256 KiB. RSS is coarse (allocator slack; ASan's quarantine keeps freed
   * blocks), so the check is only that it grew by well under what was sent:
   * the exact bound is the budgeted-bytes check above. */
  long grown_kb = rss1 - rss0;
  PD_CHECK(st, rss0 > 0 && rss1 > 0 && grown_kb < (long)HOGS * HOG_SENDS / 1024 * 3 / 4);
  PD_CHECK(st, pd_td_bystander_progress(b, 5)); /* small requests pass meanwhile */
  printf("%d hogs (4 MB frames, 3 MB sent, then silent) -> %.0f waits, %.1f MiB budgeted "
         "(limit %.0f MiB), RSS +%.1f MiB; bystander served\n",
         HOGS, waits, held / 1048576.0, BUDGET / 1048576.0, grown_kb / 1024.0);

  /* 2. their frames never complete: DEADLINE_EXCEEDED, memory back */
  int deadline = 0;
  size_t most = 0;
  for (int i = 0; i < HOGS; i++) {
    pthread_join(hogs[i].t, NULL);
    deadline += hogs[i].outcome;
    if (hogs[i].sent > most) most = hogs[i].sent;
  }
  double left = metric_falls(d, "planktond_receive_buffer_bytes", 0);
  printf("hogs closed: %d of %d with DEADLINE_EXCEEDED (most sent: %zu "
         "bytes); budgeted bytes after: %.0f\n",
         deadline, HOGS, most, left);
  PD_CHECK_INT(st, deadline, HOGS);
  PD_CHECK(st, left == 0);
  /* the Stats RPC reports the same counters as /metrics */
  pc_client *sc = pd_td_connect(d, 2);
  pc_client_response *sr = NULL;
  PD_CHECK(st, sc && pc_client_stats(sc, &sr, NULL) == PC_CLIENT_OK && sr);
  if (sr) {
    const pc_client_stats_result *s = &sr->u.stats;
    printf("stats: %llu frame timeouts, %llu receive waits, %llu receive-buffer bytes\n",
           (unsigned long long)s->frame_timeouts, (unsigned long long)s->receive_waits,
           (unsigned long long)s->receive_buffer_bytes);
    PD_CHECK_INT(st, s->frame_timeouts,
                 metric(d, "planktond_connections_closed_by_limit_total{limit=\"frame_timeout\"}"));
    PD_CHECK(st, s->frame_timeouts >= HOGS);
    PD_CHECK_INT(st, s->receive_waits, metric(d, "planktond_receive_waits_total"));
    PD_CHECK(st, s->receive_waits >= HOGS / 2);
    PD_CHECK_INT(st, s->receive_buffer_bytes, 0);
  }
  pc_client_response_free(sr);
  pc_client_close(sc);

  pd_td_guarded_stop(st, &f);
}

/* Big complete frames, more than the budget at once: all answered. */
static void big_frames(pd_test_state *st) {
  pd_td_guarded f;
  if (!start(st, &f)) return;
  pd_td *d = &f.d;
  uint8_t *big = pd_td_crop(9, BIG_SIDE, BIG_SIDE);
  static big_client bigs[BIG_CLIENTS];
  double waits_before = metric(d, "planktond_receive_waits_total");
  for (int i = 0; i < BIG_CLIENTS; i++) {
    bigs[i].d = d;
    bigs[i].gray = big;
    pthread_create(&bigs[i].t, NULL, big_main, &bigs[i]);
  }
  int answered = 0;
  double worst = 0;
  for (int i = 0; i < BIG_CLIENTS; i++) {
    pthread_join(bigs[i].t, NULL);
    answered += bigs[i].status == 0;
    if (bigs[i].worst > worst) worst = bigs[i].worst;
  }
  double waits_after = metric(d, "planktond_receive_waits_total");
  /* The waits depend on how the clients' sends interleave with the daemon's
   * reads, so they are reported; what is asserted is that every big image is
   * answered, with the engine's answer for it. */
  printf("%d clients x 3.5 MB images at once (budget 8 MiB) -> %d answered OK, %.0f more waits, "
         "max |p - engine| %.2g\n",
         BIG_CLIENTS, answered, waits_after - waits_before, worst);
  PD_CHECK_INT(st, answered, BIG_CLIENTS);
  PD_CHECK(st, worst <= PROB_TOL);
  free(big);

  pd_td_guarded_stop(st, &f);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  signal(SIGPIPE, SIG_IGN);
  if (pd_td_crop_one(&small, 3, 60, 44, &n_classes) != 0 ||
      pd_td_crop_one(&big, 9, BIG_SIDE, BIG_SIDE, NULL) != 0)
    return 1;
  small_png = small.png;
  small_png_len = small.png_len;
  small_probs = small.probs;
  big_probs = big.probs;
  return 0;
}

static void teardown(void) {
  pd_td_crops_free(&small, 1);
  pd_td_crops_free(&big, 1);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(hogs_wait),
    PD_TEST_CASE(big_frames),
};

PD_TEST_MAIN("daemon_memory", setup, teardown, k_cases)
