/* Hostile and broken clients against the real daemon. While a
 * well-behaved client (the bystander) keeps classifying and checking every
 * answer against the engine run directly, other clients:
 *  - hold 1,000 idle connections, then push past limits.max_connections
 *    (the extra ones get RESOURCE_EXHAUSTED and a close);
 *  - drip frames a byte at a time (slowloris) and send a header with
 *    nothing after it: limits.frame_timeout_ms answers DEADLINE_EXCEEDED and
 *    closes, while a slow but complete frame is answered;
 *  - send headers claiming 4 GiB (and 2 GiB, and max_frame + 1): an error
 *    frame and a close, nothing allocated;
 *  - pipeline thousands of requests and never read (the daemon stops
 *    reading at the window and holds no more), or read only at the end
 *    (every request answered exactly once);
 *  - connect, send (a whole frame, half a frame, a header) and close, or
 *    reset, thousands of times from four threads;
 *  - send decompression bombs: PNG and JPEG headers declaring 60,000 x
 *    60,000 pixels (refused before any pixel buffer), and a real 4096 x
 *    4096 all-black PNG within the limits (answered);
 *  - pipeline more than the per-connection window;
 *  - stay silent on a daemon with limits.idle_timeout_s (closed with
 *    UNAVAILABLE, while an active client is not);
 *  - exhaust the daemon's file descriptors (RLIMIT_NOFILE 64): the daemon
 *    lowers its connection limit to what the descriptors allow (logged at
 *    start), refuses the rest with RESOURCE_EXHAUSTED and a close, keeps
 *    serving the connections it holds, and accepts again once they close.
 * Nothing here measures time: every wait has a generous bound that only
 * turns a hang into a failure. Each is a case of its own (pd_test_cases.h):
 * idle_connections, slowloris, huge_headers, never_reads, reads_late,
 * storms, bombs, over_window (on a daemon with the limits in on_daemon and
 * a bystander), idle_timeout and fd_exhaustion (daemons of their own). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_bystander.h"
#include "pd_td_raw.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"

#define WINDOW 16
#define MAX_FRAME (1 << 20)
#define MAX_CONNECTIONS 1100
#define FRAME_TIMEOUT_MS 2000
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */

static uint8_t *gray, *png;
static size_t png_len;
static const int W = 64, H = 48;
static pd_td_crop_ref crop; /* gray, png and want_probs are its */
static float *want_probs;
static int n_classes;

/* ---- helpers ---- */

static pc_client_stats_result *stats_of(pc_client_response *r) {
  return r ? &r->u.stats : NULL;
}

/* A Stats answer; retried while the daemon refuses the connection (it may
 * hold max_connections for a moment after a storm). */
static pc_client_response *get_stats(const pd_td *d) {
  for (int attempt = 0; attempt < 50; attempt++) {
    pc_client *c = pd_td_connect(d, 2);
    pc_client_response *r = NULL;
    pc_client_error err = {0};
    if (c && pc_client_stats(c, &r, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "stats: %s\n", err.message);
      r = NULL;
    }
    pc_client_close(c);
    if (r && r->kind == PC_CLIENT_RESPONSE_STATS) return r;
    if (r && r->status != PC_CLIENT_STATUS_RESOURCE_EXHAUSTED) /* that one: wait and retry */
      fprintf(stderr, "stats: %s: %s\n", pc_client_status_name(r->status), r->message);
    pc_client_response_free(r);
    usleep(100000);
  }
  return NULL;
}

static bool at_least_connections(const pc_client_stats_result *s, void *ctx) {
  return (int)s->connections >= *(const int *)ctx;
}

static bool at_most_connections(const pc_client_stats_result *s, void *ctx) {
  return (int)s->connections <= *(const int *)ctx;
}

/* Waits until the daemon reports at most `n` connections (the Stats
 * client counts itself) and nothing in flight. */
static bool settles(const pd_td *d, int n) {
  double until = pd_td_now_ms() + 30000;
  while (pd_td_now_ms() < until) {
    pc_client_response *r = get_stats(d);
    bool ok = r && (int)stats_of(r)->connections <= n + 1 && stats_of(r)->in_flight == 0;
    pc_client_response_free(r);
    if (ok) return true;
    usleep(50000);
  }
  return false;
}

/* ---- 1. idle connections and the global connection limit ---- */

static void idle_connections_on(pd_test_state *st, const pd_td *d) {
  enum { IDLE = 1000, EXTRA = 150 };
  static int fds[IDLE + EXTRA];
  int held = 0;
  for (int i = 0; i < IDLE; i++) {
    fds[i] = pd_raw_connect(d->socket);
    if (fds[i] >= 0) held++;
  }
  PD_CHECK_INT(st, held, IDLE);
  /* the daemon accepted them all (Stats sees them) and keeps serving */
  double until = pd_td_now_ms() + 60000;
  int seen = 0;
  while (pd_td_now_ms() < until) {
    pc_client_response *r = get_stats(d);
    seen = r ? (int)stats_of(r)->connections : 0;
    pc_client_response_free(r);
    if (seen >= IDLE + 1) break;
    usleep(50000);
  }
  PD_CHECK(st, seen >= IDLE + 1);
  int open = 0;
  for (int i = 0; i < IDLE; i++)
    open += fds[i] >= 0 && pd_raw_quiet_open(fds[i]);
  PD_CHECK_INT(st, open, IDLE);

  /* past limits.max_connections: each extra one is answered
   * RESOURCE_EXHAUSTED and closed, or held (while under the limit) */
  int refused = 0, kept = 0, bad = 0;
  for (int i = IDLE; i < IDLE + EXTRA; i++)
    fds[i] = pd_raw_connect(d->socket);
  /* The refused ones hear at once. Stats cannot be asked at the limit (its
   * connection would be refused too), so wait on the sockets themselves
   * until at least the ones past the limit have heard (the idle ones and
   * the bystander hold IDLE + 1 places), with a bounded wait. */
  const int must_refuse = IDLE + 1 + EXTRA - MAX_CONNECTIONS;
  double heard_until = pd_td_now_ms() + pd_td_scaled_ms(10000);
  int heard = 0;
  while (heard < must_refuse && pd_td_now_ms() < heard_until) {
    struct pollfd pf[EXTRA];
    for (int i = 0; i < EXTRA; i++)
      pf[i] = (struct pollfd){.fd = fds[IDLE + i], .events = POLLIN};
    heard = poll(pf, EXTRA, 50);
  }
  PD_CHECK(st, heard >= must_refuse);
  for (int i = IDLE; i < IDLE + EXTRA; i++) {
    if (fds[i] < 0) {
      bad++;
      continue;
    }
    struct pollfd p = {.fd = fds[i], .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
      if (pd_raw_error_then_close(fds[i], PC_CLIENT_STATUS_RESOURCE_EXHAUSTED,
                                  "too many connections", 10000))
        refused++;
      else
        bad++;
      close(fds[i]);
      fds[i] = -1;
    } else {
      kept++;
    }
  }
  printf("%-40s -> %d held; %d more: %d held, %d refused (RESOURCE_EXHAUSTED), %d other\n",
         "1,000 idle connections", open, EXTRA, kept, refused, bad);
  PD_CHECK_INT(st, bad, 0);
  PD_CHECK(st, refused >= must_refuse);
  PD_CHECK(st, kept + IDLE + 1 <= MAX_CONNECTIONS);
  for (int i = 0; i < IDLE + EXTRA; i++)
    if (fds[i] >= 0) close(fds[i]);
  PD_CHECK(st, settles(d, 1));
}

/* ---- 2. slowloris ---- */

static void slowloris_on(pd_test_state *st, const pd_td *d) {
  enum { N = 12 };
  size_t flen;
  uint8_t *frame =
      pd_raw_classify_frame(1, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, png, png_len, &flen);
  int fds[N];
  size_t sent[N];
  bool done[N];
  for (int i = 0; i < N; i++) {
    fds[i] = pd_raw_connect(d->socket);
    sent[i] = 0;
    done[i] = fds[i] < 0;
  }
  /* one byte per second per connection (the first connection sends its
   * header only, then nothing) until the daemon gives up on them */
  int closed_ok = 0;
  double until = pd_td_now_ms() + 30000;
  while (pd_td_now_ms() < until) {
    int left = 0;
    for (int i = 0; i < N; i++) {
      if (done[i]) continue;
      left++;
      struct pollfd p = {.fd = fds[i], .events = POLLIN};
      if (poll(&p, 1, 0) > 0) {
        closed_ok += pd_raw_error_then_close(fds[i], PC_CLIENT_STATUS_DEADLINE_EXCEEDED,
                                             "limits.frame_timeout_ms", pd_td_scaled_ms(10000));
        done[i] = true;
        continue;
      }
      size_t chunk = i == 0 ? (sent[i] == 0 ? 4 : 0) : 1;
      if (chunk && sent[i] < flen && pd_raw_write(fds[i], frame + sent[i], chunk) == 0)
        sent[i] += chunk;
    }
    if (!left) break;
    usleep(1000000);
  }
  size_t most = 0;
  for (int i = 0; i < N; i++) {
    if (sent[i] > most) most = sent[i];
    if (fds[i] >= 0) close(fds[i]);
  }
  printf("%-40s -> %d of %d closed with DEADLINE_EXCEEDED after at most %zu of %zu bytes\n",
         "slowloris (a byte per second)", closed_ok, N, most, flen);
  PD_CHECK_INT(st, closed_ok, N);
  PD_CHECK(st, most < flen);

  /* a slow but whole frame: two halves a while apart, well within the limit */
  int fd = pd_raw_connect(d->socket);
  pd_raw_write(fd, frame, flen / 2);
  usleep(FRAME_TIMEOUT_MS * 1000 / 4);
  pd_raw_write(fd, frame + flen / 2, flen - flen / 2);
  Plankton__Response *r = pd_raw_read_response(fd, pd_td_scaled_ms(30000));
  PD_CHECK(st, r && r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY && r->classify->id == 1 &&
                   r->classify->status->code == 0);
  if (r) plankton__response__free_unpacked(r, NULL);
  printf("%-40s -> answered OK\n", "a frame in two halves");
  close(fd);
  free(frame);
}

/* ---- 3. frame headers claiming far too much ---- */

static void huge_headers_on(pd_test_state *st, const pd_td *d) {
  const uint32_t lengths[] = {0xffffffffu, 0x80000000u, MAX_FRAME + 1};
  long rss0 = pd_raw_rss_kb(d->pid);
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
    int fd = pd_raw_connect(d->socket);
    uint8_t hdr[4] = {(uint8_t)(lengths[i] >> 24), (uint8_t)(lengths[i] >> 16),
                      (uint8_t)(lengths[i] >> 8), (uint8_t)lengths[i]};
    pd_raw_write(fd, hdr, 4);
    pd_raw_write(fd, png, png_len); /* and some bytes after it */
    bool ok = pd_raw_error_then_close(fd, PC_CLIENT_STATUS_RESOURCE_EXHAUSTED, "exceeds the limit",
                                      pd_td_scaled_ms(10000));
    PD_CHECK(st, ok);
    printf("%-40s -> %s\n",
           i == 0   ? "header claiming 4 GiB"
           : i == 1 ? "header claiming 2 GiB"
                    : "header claiming max + 1",
           ok ? "RESOURCE_EXHAUSTED, closed" : "NOT REFUSED");
    close(fd);
  }
  /* a header within the limit and no body: nothing is reserved for it
   * (the receive buffer follows the bytes that arrive), and the frame
   * timeout ends it */
  enum { N = 64 };
  int fds[N];
  uint8_t hdr[4] = {0, 0x10, 0, 0}; /* 1 MiB, the limit */
  for (int i = 0; i < N; i++) {
    fds[i] = pd_raw_connect(d->socket);
    pd_raw_write(fds[i], hdr, 4);
  }
  /* Stats shows them all accepted (the bystander and Stats itself
   * besides), then the daemon's memory is measured while they wait */
  int want_conns = N + 2;
  pc_client_response *sr = NULL;
  PD_CHECK(st, pd_td_poll_stats(d, at_least_connections, &want_conns, 10000, &sr));
  uint64_t rx_bytes = sr ? sr->u.stats.receive_buffer_bytes : UINT64_MAX;
  pc_client_response_free(sr);
  long rss1 = pd_raw_rss_kb(d->pid);
  int timed_out = 0;
  for (int i = 0; i < N; i++) {
    timed_out += pd_raw_error_then_close(fds[i], PC_CLIENT_STATUS_DEADLINE_EXCEEDED, NULL,
                                         pd_td_scaled_ms(30000));
    close(fds[i]);
  }
  printf("%-40s -> all %d closed by the frame timeout; daemon RSS %ld -> %ld kB, receive "
         "buffers %llu bytes from the shared budget\n",
         "64 headers of 1 MiB frames, no body", timed_out, rss0, rss1,
         (unsigned long long)rx_bytes);
  PD_CHECK_INT(st, timed_out, N);
  /* 64 MiB if each header reserved its frame: a quarter of that at most
   * (the connections' own state), and nothing taken from the budget */
  PD_CHECK(st, rss0 > 0 && rss1 > 0 && rss1 - rss0 < N * 1024 / 4);
  PD_CHECK(st, rx_bytes < (1u << 20));
}

/* ---- 4. pipelining without reading ---- */

static void never_reads_on(pd_test_state *st, const pd_td *d) {
  int fd = pd_raw_connect(d->socket);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  size_t flen;
  uint8_t *frame =
      pd_raw_classify_frame(1, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, png, png_len, &flen);
  bool blocked;
  long sent = pd_raw_fill(fd, frame, flen, 5000, 1500, 60000, &blocked);
  pc_client_response *r = get_stats(d);
  uint32_t in_flight = r ? stats_of(r)->in_flight : 99999;
  pc_client_response_free(r);
  printf("%-40s -> blocked after %ld of 5000 frames; daemon holds %u in flight (window %d)\n",
         "pipelining 5000 requests, never reading", sent, in_flight, WINDOW);
  PD_CHECK(st, sent < 5000);
  PD_CHECK(st, in_flight <= WINDOW);
  close(fd);
  free(frame);
  PD_CHECK(st, settles(d, 1));
}

typedef struct writer_arg {
  int fd;
  int n;
  int written;
} writer_arg;

static void *writer_main(void *arg) {
  writer_arg *w = arg;
  for (int i = 0; i < w->n; i++) {
    size_t flen;
    uint8_t *f = pd_raw_classify_frame((uint64_t)i, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, png,
                                       png_len, &flen);
    int rc = pd_raw_write(w->fd, f, flen);
    free(f);
    if (rc != 0) break;
    w->written++;
  }
  return NULL;
}

/* Thousands pipelined, read only after a pause: every one answered once. */
static void reads_late_on(pd_test_state *st, const pd_td *d) {
  enum { N = 3000 };
  int fd = pd_raw_connect(d->socket);
  writer_arg w = {.fd = fd, .n = N};
  pthread_t t;
  pthread_create(&t, NULL, writer_main, &w);
  usleep(1000000); /* the daemon stops reading at the window meanwhile */
  static unsigned char seen[N];
  memset(seen, 0, sizeof seen);
  int answers = 0, ok = 0, dup = 0;
  uint8_t *buf = malloc(1 << 16);
  while (answers < N) {
    long n = pd_raw_read_frame(fd, buf, 1 << 16, pd_td_scaled_ms(30000));
    if (n < 0) break;
    Plankton__Response *r = plankton__response__unpack(NULL, (size_t)n, buf + 4);
    if (r && r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY && r->classify->id < N) {
      answers++;
      if (seen[r->classify->id]++) dup++;
      ok += r->classify->status && r->classify->status->code == 0;
    }
    if (r) plankton__response__free_unpacked(r, NULL);
  }
  pthread_join(t, NULL);
  printf("%-40s -> %d written, %d answered (%d OK), %d duplicates\n",
         "3000 pipelined, read after a pause", w.written, answers, ok, dup);
  PD_CHECK_INT(st, w.written, N);
  PD_CHECK_INT(st, answers, N);
  PD_CHECK_INT(st, ok, N);
  PD_CHECK_INT(st, dup, 0);
  free(buf);
  close(fd);
}

/* ---- 5. connect, send, close storms ---- */

typedef struct storm_arg {
  const pd_td *d;
  int n, seed;
  int done;
} storm_arg;

static void *storm_main(void *arg) {
  storm_arg *s = arg;
  size_t flen;
  uint8_t *frame =
      pd_raw_classify_frame(7, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, png, png_len, &flen);
  for (int i = 0; i < s->n; i++) {
    int fd = pd_raw_connect(s->d->socket);
    if (fd < 0) continue;
    switch ((i + s->seed) % 5) {
    case 0: /* a whole request, then leave */
      pd_raw_write(fd, frame, flen);
      break;
    case 1: /* half a request */
      pd_raw_write(fd, frame, flen / 2);
      break;
    case 2: /* a header */
      pd_raw_write(fd, frame, 4);
      break;
    case 3: { /* a whole request, then a reset instead of a close */
      pd_raw_write(fd, frame, flen);
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      break;
    }
    default: /* nothing at all */
      break;
    }
    close(fd);
    s->done++;
  }
  free(frame);
  return NULL;
}

static void storms_on(pd_test_state *st, const pd_td *d) {
  enum { THREADS = 4, EACH = 500 };
  storm_arg a[THREADS];
  pthread_t t[THREADS];
  pc_client_response *r = get_stats(d);
  uint64_t before = r ? stats_of(r)->connections_total : 0;
  pc_client_response_free(r);
  for (int i = 0; i < THREADS; i++) {
    a[i] = (storm_arg){.d = d, .n = EACH, .seed = i};
    pthread_create(&t[i], NULL, storm_main, &a[i]);
  }
  int done = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    done += a[i].done;
  }
  PD_CHECK(st, settles(d, 1));
  r = get_stats(d);
  uint64_t after = r ? stats_of(r)->connections_total : 0;
  pc_client_response_free(r);
  printf("%-40s -> %d done, %llu connections accepted, daemon settled\n",
         "connect-send-close storm (4 x 500)", done, (unsigned long long)(after - before));
  PD_CHECK_INT(st, done, THREADS * EACH);
  PD_CHECK(st, after - before >= (uint64_t)done);
}

/* ---- 6. decompression bombs ---- */

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static pc_client_response *classify_bytes(pc_client *c, uint64_t id, pc_client_image_format f,
                                          const void *data, size_t len) {
  pc_client_classify_request rq = {.id = id, .format = f, .data = data, .len = len};
  return pd_td_classify(c, &rq);
}

static void bombs_on(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 4);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  /* a PNG whose IHDR declares 60000 x 60000 (CRC fixed up) */
  uint8_t *bomb = malloc(png_len);
  memcpy(bomb, png, png_len);
  put_be32(bomb + 16, 60000); /* signature 8, length 4, "IHDR" 4 */
  put_be32(bomb + 20, 60000);
  put_be32(bomb + 29, crc32_of(bomb + 12, 17));
  pc_client_image_format fmts[] = {PC_CLIENT_IMAGE_PNG, PC_CLIENT_IMAGE_AUTO};
  for (int i = 0; i < 2; i++) {
    pc_client_response *r = classify_bytes(c, 100 + (uint64_t)i, fmts[i], bomb, png_len);
    PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_INVALID_ARGUMENT);
    if (r) PD_CHECK_CONTAINS(st, r->message, "60000");
    printf("%-40s -> %s: %s\n", i ? "PNG bomb 60000x60000 (format auto)" : "PNG bomb 60000x60000",
           r ? pc_client_status_name(r->status) : "-", r ? r->message : "");
    pc_client_response_free(r);
  }
  free(bomb);
  /* a JPEG whose SOF0 declares 60000 x 60000 */
  size_t jlen;
  uint8_t *jpeg = pd_td_jpeg(gray, W, H, &jlen);
  for (size_t i = 2; i + 9 < jlen; i++)
    if (jpeg[i] == 0xff && (jpeg[i + 1] == 0xc0 || jpeg[i + 1] == 0xc2)) {
      jpeg[i + 5] = 0xea; /* height, then width: 0xea60 = 60000 */
      jpeg[i + 6] = 0x60;
      jpeg[i + 7] = 0xea;
      jpeg[i + 8] = 0x60;
      break;
    }
  pc_client_response *r = classify_bytes(c, 102, PC_CLIENT_IMAGE_JPEG, jpeg, jlen);
  PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_INVALID_ARGUMENT);
  if (r) PD_CHECK_CONTAINS(st, r->message, "60000");
  printf("%-40s -> %s: %s\n", "JPEG bomb 60000x60000", r ? pc_client_status_name(r->status) : "-",
         r ? r->message : "");
  pc_client_response_free(r);
  free(jpeg);
  /* a real bomb within the limits: 4096 x 4096 black, a few kB compressed */
  uint8_t *black = calloc((size_t)4096 * 4096, 1);
  size_t blen;
  uint8_t *bpng = pd_td_png(black, 4096, 4096, &blen);
  r = classify_bytes(c, 103, PC_CLIENT_IMAGE_PNG, bpng, blen);
  PD_CHECK(st, r && r->status == 0);
  printf("%-40s -> %s (%zu bytes -> 16 MiB of pixels, within limits)\n", "PNG 4096x4096 black",
         r ? pc_client_status_name(r->status) : "-", blen);
  pc_client_response_free(r);
  free(bpng);
  free(black);
  pc_client_close(c);
}

/* ---- 7. the per-connection window ---- */

static void over_window_on(pd_test_state *st, const pd_td *d) {
  enum { N = 200 };
  pc_client *c = pd_td_connect(d, N); /* the client allows 200; the daemon reads 16 at a time */
  int answered = 0, ok = 0;
  pc_client_error err;
  for (int i = 0; i < N; i++) {
    pc_client_classify_request rq = {
        .id = (uint64_t)i, .format = PC_CLIENT_IMAGE_PNG, .data = png, .len = png_len};
    PD_CHECK_INT(st, pc_client_send_classify(c, &rq, &err), PC_CLIENT_OK);
  }
  double until = pd_td_now_ms() + 120000;
  while (answered < N && pd_td_now_ms() < until && pc_client_wait(c, 1000, &err) == PC_CLIENT_OK) {
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      answered++;
      ok += r->status == 0;
      pc_client_response_free(r);
    }
  }
  printf("%-40s -> %d of %d answered OK\n", "200 pipelined over a window of 16", ok, N);
  PD_CHECK_INT(st, answered, N);
  PD_CHECK_INT(st, ok, N);
  pc_client_close(c);
}

/* ---- 8. limits.idle_timeout_s ---- */

static void idle_timeout(pd_test_state *st) {
  pd_td d;
  /* 1 s, scaled with the busy client's pace for slow runs (ASan, valgrind) */
  int idle_s = pd_td_scaled_s(1);
  char idle_arg[16];
  snprintf(idle_arg, sizeof idle_arg, "%d", idle_s);
  const char *args[] = {"--idle-timeout", idle_arg, NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  int quiet = pd_raw_connect(d.socket);
  pc_client *busy = pd_td_connect(&d, 2);
  /* the busy client asks every 300 ms (per second of timeout) for 3 s:
   * never idle for the timeout */
  int busy_ok = 0;
  for (int i = 0; i < 10; i++) {
    pc_client_response *r = NULL;
    if (busy && pc_client_health(busy, &r, NULL) == PC_CLIENT_OK && r->status == 0) busy_ok++;
    pc_client_response_free(r);
    usleep((useconds_t)idle_s * 300000);
  }
  bool closed =
      pd_raw_error_then_close(quiet, PC_CLIENT_STATUS_UNAVAILABLE, "idle", pd_td_scaled_ms(10000));
  printf("%-40s -> silent one closed (UNAVAILABLE): %s; active one answered %d of 10\n",
         "limits.idle_timeout_s 1", closed ? "yes" : "NO", busy_ok);
  PD_CHECK(st, closed);
  PD_CHECK_INT(st, busy_ok, 10);
  close(quiet);
  pc_client_close(busy);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

/* ---- 9. file-descriptor exhaustion ---- */

/* A raw connection that asks for Health: 1 answered, 0 refused with
 * RESOURCE_EXHAUSTED then closed, 2 closed without a word (the kernel's
 * backlog or libuv's reserved descriptor), -1 anything else within the
 * bound. */
static int health_or_refused(int fd) {
  size_t flen;
  uint8_t *f = pd_raw_health_frame(1, &flen);
  pd_raw_write(fd, f, flen); /* may fail: the daemon closed it already */
  free(f);
  Plankton__Response *r = pd_raw_read_response(fd, pd_td_scaled_ms(10000));
  int rc = -1;
  if (!r) {
    rc = pd_raw_closed(fd, pd_td_scaled_ms(10000)) ? 2 : -1;
  } else if (r->body_case == PLANKTON__RESPONSE__BODY_HEALTH) {
    rc = 1;
  } else if (r->body_case == PLANKTON__RESPONSE__BODY_ERROR && r->error->status &&
             (int)r->error->status->code == PC_CLIENT_STATUS_RESOURCE_EXHAUSTED &&
             strstr(r->error->status->message, "too many connections")) {
    rc = pd_raw_closed(fd, pd_td_scaled_ms(10000)) ? 0 : -1;
  }
  if (r) plankton__response__free_unpacked(r, NULL);
  return rc;
}

static void fd_exhaustion(pd_test_state *st) {
  pd_td d;
  pd_td_opts o = {.nofile = 64};
  const char *args[] = {"--threads", "1", "--decode-threads", "2", NULL};
  if (pd_td_start_opts(&d, &o, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  int base_fds = pd_raw_open_fds(d.pid);
  pd_td_bystander b = {.d = &d,
                       .png = png,
                       .png_len = png_len,
                       .want = want_probs,
                       .n_classes = n_classes,
                       .tol = PROB_TOL};
  pd_td_bystander_start(&b);
  PD_CHECK(st, pd_td_bystander_progress(&b, 5));
  enum { MAX = 200 };
  int fds[MAX], held = 0, refused = 0, dropped = 0, hung = 0;
  for (int i = 0; i < MAX && refused + dropped < 20; i++) {
    int fd = pd_raw_connect(d.socket);
    if (fd < 0) {
      dropped++; /* the backlog is full: refused by the kernel, also clean */
      continue;
    }
    int rc = health_or_refused(fd);
    if (rc == 1) {
      fds[held++] = fd;
    } else {
      refused += rc == 0;
      dropped += rc == 2;
      hung += rc < 0;
      close(fd);
    }
  }
  int peak_fds = pd_raw_open_fds(d.pid);
  PD_CHECK_INT(st, refused, 20); /* told, not dropped: the cap keeps descriptors free */
  PD_CHECK_INT(st, dropped, 0);
  PD_CHECK_INT(st, hung, 0);
  PD_CHECK(st, held > 0 && held < MAX);
  /* the connections it holds are still served, the bystander too */
  int served = 0;
  for (int i = 0; i < held; i++)
    served += health_or_refused(fds[i]) == 1;
  PD_CHECK_INT(st, served, held);
  PD_CHECK(st, pd_td_bystander_progress(&b, 5));
  /* descriptors free again: new connections are accepted */
  for (int i = 0; i < 10 && held > 0; i++)
    close(fds[--held]);
  /* polled: Stats answers (a descriptor was free for it) and shows the
   * closes (the held ones, the bystander and Stats itself) */
  int want_conns = held + 2;
  PD_CHECK(st, pd_td_poll_stats(&d, at_most_connections, &want_conns, 10000, NULL));
  int again = 0;
  for (int i = 0; i < 5; i++) {
    int fd = pd_raw_connect(d.socket);
    if (fd >= 0 && health_or_refused(fd) == 1) again++;
    if (fd >= 0) close(fd);
  }
  printf("%-40s -> %d fds at start, %d at the limit; %d connections held, %d refused "
         "(RESOURCE_EXHAUSTED), %d dropped, %d hung; after freeing 10: %d of 5 new ones served\n",
         "RLIMIT_NOFILE 64", base_fds, peak_fds, held + 10, refused, dropped, hung, again);
  PD_CHECK_INT(st, again, 5);
  char *log = pd_td_log(&d);
  PD_CHECK(st, log && strstr(log, "lowered to") && strstr(log, "RLIMIT_NOFILE 64"));
  free(log);
  for (int i = 0; i < held; i++)
    close(fds[i]);
  pd_td_bystander_stop(&b);
  printf("fd exhaustion: bystander got %d correct answers, %d failures, %d wrong\n", b.ok, b.failed,
         b.wrong);
  PD_CHECK(st, b.ok > 0);
  PD_CHECK_INT(st, b.failed, 0);
  PD_CHECK_INT(st, b.wrong, 0);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  if (st->failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log (fd exhaustion) ---\n%s\n", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
}

/* ---- the cases (pd_test_cases.h): each on a daemon of its own with the
 * limits below and a bystander client that must be served correctly
 * before, during and after it ---- */

/* One scenario on a daemon with the program's limits: the bystander is
 * served before and after it. */
static void on_daemon(pd_test_state *st, void (*scenario)(pd_test_state *, const pd_td *)) {
  char window[16], frame[16], conns[16], ftimeout[16];
  snprintf(window, sizeof window, "%d", WINDOW);
  snprintf(frame, sizeof frame, "%d", MAX_FRAME);
  snprintf(conns, sizeof conns, "%d", MAX_CONNECTIONS);
  snprintf(ftimeout, sizeof ftimeout, "%d", FRAME_TIMEOUT_MS);
  const char *args[] = {"--max-in-flight",
                        window,
                        "--max-frame-bytes",
                        frame,
                        "--max-connections",
                        conns,
                        "--frame-timeout-ms",
                        ftimeout,
                        "--log-level",
                        "warning",
                        NULL};
  pd_td_guarded g;
  const pd_td_bystander by = {
      .png = png, .png_len = png_len, .want = want_probs, .n_classes = n_classes, .tol = PROB_TOL};
  if (!pd_td_guarded_start(st, &g, args, &by)) return;
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 5));
  scenario(st, &g.d);
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 5));
  pc_client_response *r = get_stats(&g.d);
  if (r) {
    const pc_client_stats_result *s = stats_of(r);
    printf("daemon: %llu connections in all, %llu broken frames, %u open now, %u in flight\n",
           (unsigned long long)s->connections_total, (unsigned long long)s->broken_frames,
           s->connections, s->in_flight);
  }
  pc_client_response_free(r);
  pd_td_guarded_stop(st, &g);
}

#define ON_DAEMON(name)                                                                            \
  static void name(pd_test_state *st) {                                                            \
    on_daemon(st, name##_on);                                                                      \
  }
ON_DAEMON(idle_connections)
ON_DAEMON(slowloris)
ON_DAEMON(huge_headers)
ON_DAEMON(never_reads)
ON_DAEMON(reads_late)
ON_DAEMON(storms)
ON_DAEMON(bombs)
ON_DAEMON(over_window)

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (pd_raw_raise_nofile(4096) < 2048) {
    fprintf(stderr, "skipped: cannot raise RLIMIT_NOFILE to 2048 for 1,000 connections\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  if (pd_td_crop_one(&crop, 11, W, H, &n_classes) != 0) return 1;
  gray = crop.gray;
  png = crop.png;
  png_len = crop.png_len;
  want_probs = crop.probs;
  return 0;
}

static void teardown(void) {
  pd_td_crops_free(&crop, 1);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(idle_connections),
    PD_TEST_CASE(slowloris),
    PD_TEST_CASE(huge_headers),
    PD_TEST_CASE(never_reads),
    PD_TEST_CASE(reads_late),
    PD_TEST_CASE(storms),
    PD_TEST_CASE(bombs),
    PD_TEST_CASE(over_window),
    PD_TEST_CASE(idle_timeout),
    PD_TEST_CASE(fd_exhaustion),
};

PD_TEST_MAIN("daemon_hostile", setup, teardown, k_cases)
