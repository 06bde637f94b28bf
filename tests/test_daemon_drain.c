/* test_daemon_drain: the drain notice and Health during a drain, on a real
 * planktond over raw sockets (the client library hides the notice):
 *  - Hello is answered with HelloResponse: protocol version 1, the daemon's
 *    version (as its log names it), its limits.max_frame_bytes, and the
 *    drain_notices asked for echoed;
 *  - requests wait in the batcher (a long max_queue_delay_us) when SIGTERM
 *    comes: a connection that sent Hello with drain_notices gets one
 *    DrainNotice at once, before any UNAVAILABLE answer, whose
 *    requests_read counts every request read there (the Hello included);
 *    each of those is answered OK, and what it sends after the notice is
 *    answered UNAVAILABLE; every request is answered exactly once;
 *  - a connection without Hello, and one whose Hello said
 *    drain_notices=false, get no notice (today's behaviour: OK for what was
 *    read, UNAVAILABLE after, then the close);
 *  - a Hello read after the drain began is answered, then noticed at once;
 *  - Health says "draining" (UNAVAILABLE) from the first moment, while the
 *    requests read before are still waiting to be answered (asked on a
 *    connection with an answer owed: one with nothing owed is closed when
 *    the drain begins, and new ones are refused), and where the daemon is
 *    built with the kserve feature ($PD_HAVE_KSERVE=1) the KServe REST
 *    readiness GET /v2/health/ready turns from 200 to 503 as well. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_test.h"

static pd_test_state st;

#define QUEUE_DELAY_US 3000000 /* requests wait this long in the batcher */
#define MAX_FRAME 1048576
#define N_EARLY 10 /* classify requests read before SIGTERM, per connection */
#define N_LATE 3   /* sent after the drain began */

static int send_frame(int fd, uint8_t *frame, size_t len) {
  int rc = frame ? pd_raw_write(fd, frame, len) : -1;
  free(frame);
  return rc;
}

static int send_hello(int fd, uint64_t id, bool notices) {
  Plankton__Hello h = PLANKTON__HELLO__INIT;
  h.id = id;
  h.drain_notices = notices;
  h.client = (char *)"test_daemon_drain";
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_HELLO;
  rq.hello = &h;
  size_t body = plankton__request__get_packed_size(&rq);
  uint8_t *frame = malloc(4 + body);
  if (!frame) return -1;
  frame[0] = (uint8_t)(body >> 24);
  frame[1] = (uint8_t)(body >> 16);
  frame[2] = (uint8_t)(body >> 8);
  frame[3] = (uint8_t)body;
  plankton__request__pack(&rq, frame + 4);
  return send_frame(fd, frame, 4 + body);
}

static uint8_t *png;
static size_t png_len;

static int send_classify(int fd, uint64_t id) {
  size_t len = 0;
  uint8_t *frame = pd_raw_classify_frame(id, 0, png, png_len, &len);
  return send_frame(fd, frame, len); /* (len is set by the call: not in the same argument list) */
}

/* Reads the HelloResponse to a Hello and checks its fields. */
static void check_hello(int fd, uint64_t id, bool notices, const char *version) {
  Plankton__Response *r = pd_raw_read_response(fd, 10000);
  PD_CHECK(&st, r && r->body_case == PLANKTON__RESPONSE__BODY_HELLO);
  if (r && r->body_case == PLANKTON__RESPONSE__BODY_HELLO) {
    const Plankton__HelloResponse *h = r->hello;
    PD_CHECK_INT(&st, h->id, id);
    PD_CHECK_INT(&st, h->status ? h->status->code : 0, PLANKTON__STATUS_CODE__OK);
    PD_CHECK_INT(&st, h->protocol_version, 1);
    PD_CHECK(&st, h->daemon_version && version && !strcmp(h->daemon_version, version));
    PD_CHECK_INT(&st, h->max_frame_bytes, MAX_FRAME);
    PD_CHECK_INT(&st, h->drain_notices, notices);
  }
  if (r) plankton__response__free_unpacked(r, NULL);
}

/* What arrived on one connection after SIGTERM, until the daemon closed it. */
typedef struct seen {
  int notices;
  uint64_t requests_read;
  int notice_pos;            /* frames before the notice (-1: none) */
  int first_unavailable_pos; /* -1: none */
  int ok[N_EARLY + N_LATE];  /* answers per id, by status */
  int unavailable[N_EARLY + N_LATE];
  int other; /* any other answer */
  int frames;
} seen;

static void collect(int fd, seen *s, int want_answers) {
  memset(s, 0, sizeof *s);
  s->notice_pos = s->first_unavailable_pos = -1;
  int answers = 0;
  while (answers < want_answers) {
    Plankton__Response *r = pd_raw_read_response(fd, 15000);
    if (!r) break;
    if (r->body_case == PLANKTON__RESPONSE__BODY_DRAIN) {
      s->notices++;
      s->requests_read = r->drain->requests_read;
      if (s->notice_pos < 0) s->notice_pos = s->frames;
      PD_CHECK_CONTAINS(&st, r->drain->message, "draining");
    } else if (r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY && r->classify->id >= 1 &&
               r->classify->id <= N_EARLY + N_LATE) {
      int code = r->classify->status ? (int)r->classify->status->code : 0;
      int i = (int)r->classify->id - 1;
      answers++;
      if (code == PLANKTON__STATUS_CODE__OK) {
        s->ok[i]++;
      } else if (code == PLANKTON__STATUS_CODE__UNAVAILABLE) {
        s->unavailable[i]++;
        if (s->first_unavailable_pos < 0) s->first_unavailable_pos = s->frames;
      } else {
        s->other++;
      }
    } else {
      s->other++;
    }
    s->frames++;
    plankton__response__free_unpacked(r, NULL);
  }
}

/* Every early request answered OK once, every late one UNAVAILABLE once. */
static void check_answers(const seen *s) {
  for (int i = 0; i < N_EARLY; i++) {
    PD_CHECK_INT(&st, s->ok[i], 1);
    PD_CHECK_INT(&st, s->unavailable[i], 0);
  }
  for (int i = N_EARLY; i < N_EARLY + N_LATE; i++) {
    PD_CHECK_INT(&st, s->ok[i], 0);
    PD_CHECK_INT(&st, s->unavailable[i], 1);
  }
  PD_CHECK_INT(&st, s->other, 0);
}

/* The version in the log's "planktond VERSION starting (pid N)" line. */
static char *daemon_version(const pd_td *d) {
  char *log = pd_td_log(d);
  const char *end = log ? strstr(log, " starting (pid") : NULL;
  char *v = NULL;
  if (end) {
    const char *p = end;
    while (p > log && p[-1] != ' ')
      p--;
    v = strndup(p, (size_t)(end - p));
  }
  free(log);
  return v;
}

static const char *health_state(pc_client *c, int *status) {
  static char state[32];
  pc_client_response *r = NULL;
  pc_client_error e;
  state[0] = '\0';
  *status = -1;
  if (pc_client_health(c, &r, &e) == PC_CLIENT_OK && r) {
    *status = r->status;
    snprintf(state, sizeof state, "%s", r->u.health.state);
  }
  pc_client_response_free(r);
  return state;
}

/* The status code of GET path over the Unix socket at unix_path (-1: none). */
static int http_status(const char *unix_path, const char *path) {
  int fd = pd_raw_connect(unix_path);
  if (fd < 0) return -1;
  char req[256];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  char buf[512];
  size_t len = 0;
  if (pd_raw_write(fd, req, strlen(req)) == 0) {
    for (double until = pd_td_now_ms() + 10000; pd_td_now_ms() < until && len < 12;) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
      if (n <= 0) break;
      len += (size_t)n;
    }
  }
  close(fd);
  buf[len] = '\0';
  if (len < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0) return -1;
  return (int)strtol(buf + 9, NULL, 10);
}

int main(void) {
  if (!pd_td_have_model()) return 77;
  uint8_t *crop = pd_td_crop(7, 40, 30);
  png = pd_td_png(crop, 40, 30, &png_len);
  free(crop);
  char delay[32], max_frame[32];
  snprintf(delay, sizeof delay, "%d", QUEUE_DELAY_US);
  snprintf(max_frame, sizeof max_frame, "%d", MAX_FRAME);
  const char *kserve = getenv("PD_HAVE_KSERVE");
  bool rest = kserve && !strcmp(kserve, "1"); /* the KServe REST front end is built */
  const char *args[] = {"--max-queue-delay-us",
                        delay,
                        "--max-batch",
                        "64",
                        "--max-frame-bytes",
                        max_frame,
                        rest ? "--http" : NULL,
                        "unix:@DIR@/http.sock",
                        NULL};
  pd_td d;
  if (pd_td_start(&d, args) != 0) {
    fprintf(stderr, "planktond did not start\n");
    return 1;
  }
  char *version = daemon_version(&d);
  char http_sock[400];
  snprintf(http_sock, sizeof http_sock, "%s/http.sock", d.dir);
  if (rest) PD_CHECK_INT(&st, http_status(http_sock, "/v2/health/ready"), 200);
  PD_CHECK(&st, version && version[0]);

  /* a: Hello with notices; b: no Hello; c: Hello without notices;
   * h: Health (a classify owed keeps it open in the drain); late: a
   * classify before the drain, its Hello after */
  int a = pd_raw_connect(d.socket), b = pd_raw_connect(d.socket), c = pd_raw_connect(d.socket);
  int late = pd_raw_connect(d.socket);
  pc_client *h = pd_td_connect(&d, 8);
  PD_CHECK(&st, a >= 0 && b >= 0 && c >= 0 && late >= 0 && h);
  PD_CHECK_INT(&st, send_hello(a, 42, true), 0);
  check_hello(a, 42, true, version);
  PD_CHECK_INT(&st, send_hello(c, 43, false), 0);
  check_hello(c, 43, false, version);
  int status;
  PD_CHECK(&st, !strcmp(health_state(h, &status), "serving"));
  PD_CHECK_INT(&st, status, 0);

  pc_client_error e;
  pc_client_classify_request hold = {.id = 99, .data = png, .len = png_len};
  PD_CHECK_INT(&st, pc_client_send_classify(h, &hold, &e), PC_CLIENT_OK);
  PD_CHECK_INT(&st, send_classify(late, 1), 0);
  for (int i = 1; i <= N_EARLY; i++) {
    PD_CHECK_INT(&st, send_classify(a, (uint64_t)i), 0);
    PD_CHECK_INT(&st, send_classify(b, (uint64_t)i), 0);
    PD_CHECK_INT(&st, send_classify(c, (uint64_t)i), 0);
  }
  /* all of them read and waiting in the batcher */
  const uint32_t want_in_flight = 3 * N_EARLY + 2;
  uint32_t in_flight = 0;
  for (double until = pd_td_now_ms() + 10000; pd_td_now_ms() < until;) {
    pc_client_response *r = NULL;
    if (pc_client_stats(h, &r, &e) == PC_CLIENT_OK && r) in_flight = r->u.stats.in_flight;
    pc_client_response_free(r);
    if (in_flight >= want_in_flight) break;
    usleep(20000);
  }
  PD_CHECK_INT(&st, in_flight, want_in_flight);

  double t0 = pd_td_now_ms();
  kill(d.pid, SIGTERM);
  PD_CHECK(&st, pd_td_wait_log(&d, "draining", 10));
  /* Health at once: draining, while the early requests still wait */
  PD_CHECK(&st, !strcmp(health_state(h, &status), "draining"));
  PD_CHECK_INT(&st, status, PC_CLIENT_STATUS_UNAVAILABLE);
  if (rest) PD_CHECK_INT(&st, http_status(http_sock, "/v2/health/ready"), 503);
  PD_CHECK(&st, pd_td_now_ms() - t0 < QUEUE_DELAY_US / 1000.0 / 2);
  /* a Hello read after the drain began: answered, then noticed */
  PD_CHECK_INT(&st, send_hello(late, 44, true), 0);
  check_hello(late, 44, true, version);
  Plankton__Response *n = pd_raw_read_response(late, 10000);
  PD_CHECK(&st, n && n->body_case == PLANKTON__RESPONSE__BODY_DRAIN);
  if (n && n->body_case == PLANKTON__RESPONSE__BODY_DRAIN)
    PD_CHECK_INT(&st, n->drain->requests_read, 2); /* the classify and the Hello */
  if (n) plankton__response__free_unpacked(n, NULL);

  for (int i = N_EARLY + 1; i <= N_EARLY + N_LATE; i++) {
    PD_CHECK_INT(&st, send_classify(a, (uint64_t)i), 0);
    PD_CHECK_INT(&st, send_classify(b, (uint64_t)i), 0);
    PD_CHECK_INT(&st, send_classify(c, (uint64_t)i), 0);
  }
  seen sa, sb, sc;
  collect(a, &sa, N_EARLY + N_LATE);
  collect(b, &sb, N_EARLY + N_LATE);
  collect(c, &sc, N_EARLY + N_LATE);
  /* a: one notice, first of all, counting the Hello and the early requests */
  PD_CHECK_INT(&st, sa.notices, 1);
  PD_CHECK_INT(&st, sa.notice_pos, 0);
  PD_CHECK_INT(&st, sa.requests_read, 1 + N_EARLY);
  PD_CHECK(&st, sa.first_unavailable_pos > sa.notice_pos);
  check_answers(&sa);
  /* b and c: no notice, the answers as without Hello */
  PD_CHECK_INT(&st, sb.notices, 0);
  PD_CHECK_INT(&st, sc.notices, 0);
  check_answers(&sb);
  check_answers(&sc);
  PD_CHECK(&st, pd_raw_closed(a, 10000));
  PD_CHECK(&st, pd_raw_closed(b, 10000));
  PD_CHECK(&st, pd_raw_closed(c, 10000));
  n = pd_raw_read_response(late, 10000); /* its classify, read before: answered */
  PD_CHECK(&st, n && n->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY);
  if (n && n->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY) {
    PD_CHECK_INT(&st, n->classify->id, 1);
    PD_CHECK_INT(&st, n->classify->status ? n->classify->status->code : 0, 0);
  }
  if (n) plankton__response__free_unpacked(n, NULL);
  PD_CHECK(&st, pd_raw_closed(late, 10000));
  pc_client_response *held = NULL; /* h's classify, kept aside by the Health call */
  for (int i = 0; i < 50 && pc_client_next_response(h, &held) != PC_CLIENT_OK; i++)
    if (pc_client_wait(h, 200, &e) != PC_CLIENT_OK) { /* closed once answered */
      (void)pc_client_next_response(h, &held);
      break;
    }
  PD_CHECK(&st, held && held->id == 99 && held->status == 0);
  pc_client_response_free(held);
  printf("drain: notice after %d frames, requests_read %llu; a %d frames, b %d, c %d\n",
         sa.notice_pos, (unsigned long long)sa.requests_read, sa.frames, sb.frames, sc.frames);

  pc_client_close(h);
  PD_CHECK_INT(&st, pd_td_stop(&d, 0, 30), 0);
  if (st.failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
    free(log);
  }
  close(a);
  close(b);
  close(c);
  close(late);
  pd_td_cleanup(&d);
  free(version);
  free(png);
  return pd_test_finish(&st, "daemon_drain");
}
