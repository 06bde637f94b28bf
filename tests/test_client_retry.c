/* test_client_retry: the client library's retry policy against a scripted
 * fake daemon in this process (a thread on a Unix socket in a temporary
 * folder), because it must misbehave in ways planktond never does: closing
 * with requests unanswered, answering twice, answering UNAVAILABLE,
 * sending a drain notice, accepting and closing at once every time. Each
 * case checks that every request is answered to the caller exactly once
 * (with its own answer, or the library's UNAVAILABLE when the budget ran
 * out), the order of the resends, what each connection received, and the
 * counters. The fake answers the Hello that opens each connection under a
 * retry policy either as planktond does (HelloResponse) or as a daemon
 * older than Hello (ErrorResponse UNIMPLEMENTED, the connection kept): the
 * library must cope with both and hand neither to the caller. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pd_test.h"
#include "plankton.pb-c.h"
#include "plankton_client.h"

#define MAX_CONNS 64
#define MAX_IDS 64

/* ---- the fake daemon ---- */

typedef struct fake fake;
/* Handles connection number n (from 0) on fd; returns false to stop accepting. */
typedef bool (*script_fn)(fake *f, int n, int fd);

struct fake {
  char dir[40], path[96];
  int listen_fd;
  pthread_t thread;
  script_fn script;
  int conns;                        /* connections accepted */
  uint64_t got[MAX_CONNS][MAX_IDS]; /* classify ids read, per connection, in order */
  int n_got[MAX_CONNS];
  bool saw_eof[MAX_CONNS];     /* the client closed it (the script read to the end) */
  bool knows_hello;            /* answers Hello as planktond does; else as an older daemon */
  int hellos[MAX_CONNS];       /* Hello frames read, per connection */
  bool hello_first[MAX_CONNS]; /* ... the first frame there, asking for drain notices */
  int frames[MAX_CONNS];       /* frames read, per connection */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int signal;    /* raised by the test's main thread, awaited by a script */
  bool stopping; /* fake_stop's own connection: not a client */
};

static int write_all(int fd, const uint8_t *b, size_t n) {
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, uint8_t *b, size_t n) {
  while (n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0) return -1; /* a hung test fails instead of hanging */
    ssize_t r = recv(fd, b, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

static int send_response(int fd, const Plankton__Response *r);

/* The answer to a Hello: planktond's, or an older daemon's. */
static void answer_hello(const fake *f, int fd, const Plankton__Hello *h) {
  Plankton__Status st = PLANKTON__STATUS__INIT;
  Plankton__Response r = PLANKTON__RESPONSE__INIT;
  Plankton__HelloResponse hr = PLANKTON__HELLO_RESPONSE__INIT;
  Plankton__ErrorResponse er = PLANKTON__ERROR_RESPONSE__INIT;
  if (f->knows_hello) {
    hr.id = h->id;
    hr.status = &st;
    hr.protocol_version = 1;
    hr.drain_notices = h->drain_notices;
    r.body_case = PLANKTON__RESPONSE__BODY_HELLO;
    r.hello = &hr;
  } else {
    st.code = PLANKTON__STATUS_CODE__UNIMPLEMENTED;
    st.message = "request has no body, or one this daemon does not know";
    er.status = &st;
    r.body_case = PLANKTON__RESPONSE__BODY_ERROR;
    r.error = &er;
  }
  send_response(fd, &r);
}

/* Reads one request (a Hello is answered and skipped); records a classify
 * id. Returns its id, or -1 at EOF. */
static long long read_request(fake *f, int n, int fd) {
again:;
  uint8_t h[4];
  if (read_all(fd, h, 4) != 0) {
    f->saw_eof[n] = true;
    return -1;
  }
  size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
  uint8_t *b = malloc(len ? len : 1);
  if (!b || read_all(fd, b, len) != 0) {
    free(b);
    return -1;
  }
  Plankton__Request *rq = plankton__request__unpack(NULL, len, b);
  free(b);
  if (!rq) return -1;
  f->frames[n]++;
  if (rq->body_case == PLANKTON__REQUEST__BODY_HELLO) {
    f->hellos[n]++;
    if (f->frames[n] == 1 && rq->hello->drain_notices) f->hello_first[n] = true;
    answer_hello(f, fd, rq->hello);
    plankton__request__free_unpacked(rq, NULL);
    goto again;
  }
  long long id = -1;
  if (rq->body_case == PLANKTON__REQUEST__BODY_CLASSIFY) id = (long long)rq->classify->id;
  if (rq->body_case == PLANKTON__REQUEST__BODY_HEALTH) id = (long long)rq->health->id;
  if (rq->body_case == PLANKTON__REQUEST__BODY_CLASSIFY && f->n_got[n] < MAX_IDS)
    f->got[n][f->n_got[n]++] = rq->classify->id;
  plankton__request__free_unpacked(rq, NULL);
  return id;
}

static int send_frame(int fd, const uint8_t *body, size_t len) {
  uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  return write_all(fd, h, 4) || write_all(fd, body, len) ? -1 : 0;
}

static int send_response(int fd, const Plankton__Response *r) {
  size_t len = plankton__response__get_packed_size(r);
  uint8_t *b = malloc(len ? len : 1);
  if (!b) return -1;
  plankton__response__pack(r, b);
  int rc = send_frame(fd, b, len);
  free(b);
  return rc;
}

/* A classify answer whose label names the id ("id7"), so the test can tell
 * each answer belongs to its request. */
static int answer(int fd, uint64_t id, int status) {
  char label[32];
  snprintf(label, sizeof label, "id%llu", (unsigned long long)id);
  Plankton__ClassScore sc = PLANKTON__CLASS_SCORE__INIT;
  sc.label = label;
  sc.probability = 1.0f;
  Plankton__ClassScore *top[1] = {&sc};
  Plankton__Status st = PLANKTON__STATUS__INIT;
  st.code = (Plankton__StatusCode)status;
  st.message = status ? "draining: the daemon is shutting down" : "";
  Plankton__ClassifyResponse cr = PLANKTON__CLASSIFY_RESPONSE__INIT;
  cr.id = id;
  cr.status = &st;
  if (!status) {
    cr.n_top = 1;
    cr.top = top;
  }
  Plankton__Response r = PLANKTON__RESPONSE__INIT;
  r.body_case = PLANKTON__RESPONSE__BODY_CLASSIFY;
  r.classify = &cr;
  return send_response(fd, &r);
}

static int answer_health(int fd, uint64_t id) {
  Plankton__Status st = PLANKTON__STATUS__INIT;
  Plankton__HealthResponse hr = PLANKTON__HEALTH_RESPONSE__INIT;
  hr.id = id;
  hr.status = &st;
  hr.state = "serving";
  Plankton__Response r = PLANKTON__RESPONSE__INIT;
  r.body_case = PLANKTON__RESPONSE__BODY_HEALTH;
  r.health = &hr;
  return send_response(fd, &r);
}

/* The drain notice as the library expects it: Response field 6, a
 * DrainNotice { uint64 requests_read = 1; string message = 2; }. */
static int send_drain_notice(int fd, uint8_t requests_read) {
  static const char msg[] = "draining";
  uint8_t inner[2 + 2 + sizeof msg - 1];
  size_t k = 0;
  inner[k++] = 0x08; /* field 1, varint */
  inner[k++] = requests_read;
  inner[k++] = 0x12; /* field 2, length-delimited */
  inner[k++] = (uint8_t)(sizeof msg - 1);
  memcpy(inner + k, msg, sizeof msg - 1);
  k += sizeof msg - 1;
  uint8_t body[2 + sizeof inner];
  body[0] = 0x32; /* field 6, length-delimited */
  body[1] = (uint8_t)k;
  memcpy(body + 2, inner, k);
  return send_frame(fd, body, 2 + k);
}

/* Reads until the client closes (recording what it still sends). */
static void read_to_eof(fake *f, int n, int fd) {
  while (read_request(f, n, fd) >= 0) {
  }
}

static void wait_signal(fake *f, int want) {
  pthread_mutex_lock(&f->mu);
  while (f->signal < want)
    pthread_cond_wait(&f->cv, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

static void raise_signal(fake *f) {
  pthread_mutex_lock(&f->mu);
  f->signal++;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void *fake_main(void *arg) {
  fake *f = arg;
  for (;;) {
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      break; /* the listener was shut down */
    }
    pthread_mutex_lock(&f->mu);
    bool stop = f->stopping;
    pthread_mutex_unlock(&f->mu);
    if (stop) {
      close(fd);
      break;
    }
    int n = f->conns < MAX_CONNS ? f->conns : MAX_CONNS - 1;
    f->conns++;
    bool more = f->script(f, n, fd);
    close(fd);
    if (!more) break;
  }
  return NULL;
}

static int fake_start(fake *f, script_fn script, bool knows_hello) {
  memset(f, 0, sizeof *f);
  f->knows_hello = knows_hello;
  snprintf(f->dir, sizeof f->dir, "/tmp/pc-retry-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/fake.sock", f->dir);
  f->script = script;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
  f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(f->listen_fd, 16) != 0)
    return -1;
  return pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(fake *f) {
  pthread_mutex_lock(&f->mu);
  f->stopping = true;
  pthread_mutex_unlock(&f->mu);
  /* wakes the accept() (if the script still accepts) */
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
  }
  pthread_join(f->thread, NULL);
  close(f->listen_fd);
  unlink(f->path);
  rmdir(f->dir);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
}

/* ---- the client side ---- */

typedef struct answers {
  int count[MAX_IDS]; /* answers handed out per id */
  int status[MAX_IDS];
  bool right[MAX_IDS]; /* an OK answer carried this id's label */
  char message[MAX_IDS][512];
  int total;
  int others; /* anything else handed out (a Hello's answer must never be) */
} answers;

static void take(pc_client *c, answers *a) {
  pc_client_response *r;
  while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
    if (r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->id < MAX_IDS) {
      int i = (int)r->id;
      a->count[i]++;
      a->status[i] = r->status;
      char want[32];
      snprintf(want, sizeof want, "id%d", i);
      a->right[i] =
          r->status == 0 && r->u.classify.n_top == 1 && !strcmp(r->u.classify.top[0].label, want);
      snprintf(a->message[i], sizeof a->message[i], "%s", r->message);
      a->total++;
    } else if (r->kind != PC_CLIENT_RESPONSE_HEALTH) {
      a->others++;
    }
    pc_client_response_free(r);
  }
}

/* Drives the client until `want` answers are handed out or it fails;
 * returns the last pc_client_process code. */
static int drive(pc_client *c, answers *a, int want, pc_client_error *e) {
  int rc = PC_CLIENT_OK;
  for (int spins = 0; a->total < want && spins < 100000; spins++) {
    struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
    int n = poll(&p, 1, 10000);
    if (n == 0) break; /* silent for 10 s: the checks below fail */
    rc = pc_client_process(c, p.revents, e);
    take(c, a);
    if (rc != PC_CLIENT_OK) break;
  }
  take(c, a);
  return rc;
}

static int send_n(pc_client *c, int from, int to, pc_client_error *e) {
  for (int i = from; i < to; i++) {
    uint8_t img[8] = {(uint8_t)i};
    pc_client_classify_request rq = {.id = (uint64_t)i, .data = img, .len = sizeof img};
    int rc = pc_client_send_classify(c, &rq, e);
    if (rc != PC_CLIENT_OK) return rc;
  }
  return PC_CLIENT_OK;
}

static pc_client *connect_to(pd_test_state *st, const fake *f, double retry_for, int attempts) {
  pc_client_options o = {.window = 64, .timeout_ms = 5000};
  pc_client *c = NULL;
  pc_client_error e;
  int rc = pc_client_connect(f->path, &o, &c, &e);
  PD_CHECK_INT(st, rc, PC_CLIENT_OK);
  if (rc != PC_CLIENT_OK) return NULL;
  pc_client_retry_policy p = {.retry_for_s = retry_for,
                              .max_attempts = attempts,
                              .backoff_initial_ms = 5,
                              .backoff_max_ms = 40};
  PD_CHECK_INT(st, pc_client_set_retry(c, &p, &e), PC_CLIENT_OK);
  return c;
}

/* Every id in [0, n) answered exactly once; OK ones with their own answer. */
static void check_once(pd_test_state *st, const answers *a, int n) {
  for (int i = 0; i < n; i++) {
    PD_CHECK_INT(st, a->count[i], 1);
    if (a->status[i] == 0) PD_CHECK(st, a->right[i]);
  }
  PD_CHECK_INT(st, a->total, n);
  PD_CHECK_INT(st, a->others, 0);
}

/* ---- case: the connection is lost with requests unanswered ---- */

static bool script_lost(fake *f, int n, int fd) {
  if (n == 0) { /* read 5, answer 2, close */
    for (int i = 0; i < 5; i++)
      read_request(f, n, fd);
    answer(fd, 0, 0);
    answer(fd, 1, 0);
    return true;
  }
  /* the resends, answered in reverse, then 2 once more (a duplicate) */
  long long ids[3];
  for (int i = 0; i < 3; i++)
    ids[i] = read_request(f, n, fd);
  for (int i = 2; i >= 0; i--)
    answer(fd, (uint64_t)ids[i], 0);
  answer(fd, 2, 0);
  read_to_eof(f, n, fd);
  return false;
}

static void case_lost(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_lost, false), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 5, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, drive(c, &a, 5, &e), PC_CLIENT_OK);
  check_once(st, &a, 5);
  for (int i = 0; i < 5; i++)
    PD_CHECK_INT(st, a.status[i], 0);
  /* the late duplicate of 2 arrives after its answer: dropped */
  for (int i = 0; i < 20 && pc_client_in_flight(c) == 0; i++) {
    struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
    if (poll(&p, 1, 50) > 0) pc_client_process(c, p.revents, &e);
    take(c, &a);
    pc_client_retry_counters k;
    pc_client_retry_stats(c, &k);
    if (k.duplicates_dropped) break;
  }
  PD_CHECK_INT(st, a.total, 5);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.reconnects, 1);
  PD_CHECK_INT(st, k.resent, 3);
  PD_CHECK_INT(st, k.duplicates_dropped, 1);
  PD_CHECK_INT(st, k.failed_after_retries, 0);
  PD_CHECK_INT(st, pc_client_in_flight(c), 0);
  pc_client_close(c);
  fake_stop(&f);
  /* what each connection received: 0..4, then the unanswered 2, 3, 4 in order,
   * each after a Hello (answered UNIMPLEMENTED: an older daemon) */
  for (int i = 0; i < 2; i++) {
    PD_CHECK_INT(st, f.hellos[i], 1);
    PD_CHECK(st, f.hello_first[i]);
  }
  PD_CHECK_INT(st, f.n_got[0], 5);
  PD_CHECK_INT(st, f.n_got[1], 3);
  for (int i = 0; i < 3; i++)
    PD_CHECK_INT(st, f.got[1][i], 2 + i);
}

/* ---- case: UNAVAILABLE from a draining daemon; an answer after the resend ---- */

static bool script_unavailable(fake *f, int n, int fd) {
  if (n == 0) {
    for (int i = 0; i < 3; i++)
      read_request(f, n, fd);
    answer(fd, 1, 14); /* UNAVAILABLE: draining */
    answer(fd, 0, 0);
    wait_signal(f, 1); /* the test sent 3 meanwhile: it must not come here */
    answer(fd, 2, 0);
    read_to_eof(f, n, fd); /* the client closes once 2 is in */
    return true;
  }
  long long a = read_request(f, n, fd), b = read_request(f, n, fd);
  answer(fd, (uint64_t)a, 0);
  answer(fd, (uint64_t)b, 0);
  answer(fd, 1, 0); /* 1 once more: a duplicate of the resent request's answer */
  read_to_eof(f, n, fd);
  return false;
}

static void case_unavailable(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_unavailable, true), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 3, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, drive(c, &a, 1, &e), PC_CLIENT_OK); /* 0 (after 1's UNAVAILABLE) */
  PD_CHECK_INT(st, a.count[0], 1);
  PD_CHECK_INT(st, a.count[1], 0); /* UNAVAILABLE is not handed out: 1 is owed */
  PD_CHECK_INT(st, send_n(c, 3, 4, &e), PC_CLIENT_OK);
  raise_signal(&f);
  PD_CHECK_INT(st, drive(c, &a, 4, &e), PC_CLIENT_OK);
  check_once(st, &a, 4);
  for (int i = 0; i < 50; i++) { /* until the duplicate of 1 is seen */
    pc_client_retry_counters k;
    pc_client_retry_stats(c, &k);
    if (k.duplicates_dropped) break;
    struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
    if (poll(&p, 1, 50) > 0) pc_client_process(c, p.revents, &e);
    take(c, &a);
  }
  PD_CHECK_INT(st, a.total, 4);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.unavailable, 1);
  PD_CHECK_INT(st, k.reconnects, 1);
  PD_CHECK_INT(st, k.resent, 1); /* 1; 3 was never written before */
  PD_CHECK_INT(st, k.duplicates_dropped, 1);
  pc_client_close(c);
  fake_stop(&f);
  PD_CHECK_INT(st, f.n_got[0], 3); /* nothing written on the draining connection */
  PD_CHECK(st, f.saw_eof[0]);      /* closed by the client once its answers were in */
  PD_CHECK_INT(st, f.n_got[1], 2);
  PD_CHECK_INT(st, f.got[1][0], 1); /* the resend first, then the new one */
  PD_CHECK_INT(st, f.got[1][1], 3);
}

/* ---- case: a drain notice ---- */

static bool script_drain(fake *f, int n, int fd) {
  if (n == 0) {
    for (int i = 0; i < 4; i++)
      read_request(f, n, fd);
    send_drain_notice(fd, 3); /* answers the first 3 read (the Hello, 0, 1), no later one */
    answer(fd, 1, 0);
    answer(fd, 0, 0);
    read_to_eof(f, n, fd); /* never closes: the client must */
    return true;
  }
  long long a = read_request(f, n, fd), b = read_request(f, n, fd);
  answer(fd, (uint64_t)a, 0);
  answer(fd, (uint64_t)b, 0);
  read_to_eof(f, n, fd);
  return false;
}

static void case_drain(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_drain, true), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 4, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, drive(c, &a, 4, &e), PC_CLIENT_OK);
  check_once(st, &a, 4);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.drain_notices, 1);
  PD_CHECK_INT(st, k.reconnects, 1);
  PD_CHECK_INT(st, k.resent, 2);
  pc_client_close(c);
  fake_stop(&f);
  PD_CHECK(st, f.saw_eof[0]);
  PD_CHECK(st, f.hello_first[0]);
  PD_CHECK(st, f.hello_first[1]);
  PD_CHECK_INT(st, f.n_got[0], 4);
  PD_CHECK_INT(st, f.n_got[1], 2);
  PD_CHECK_INT(st, f.got[1][0], 2);
  PD_CHECK_INT(st, f.got[1][1], 3);
}

/* ---- case: the budget runs out in the middle of resending ---- */

static bool script_budget(fake *f, int n, int fd) {
  if (n == 0) {
    for (int i = 0; i < 4; i++)
      read_request(f, n, fd);
    answer(fd, 0, 0);
    return true;
  }
  read_request(f, n, fd); /* takes one resend, then closes: never an answer again */
  return n < MAX_CONNS - 2;
}

static void case_budget(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_budget, false), 0);
  pc_client *c = connect_to(st, &f, 0.4, 1000);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 4, &e), PC_CLIENT_OK);
  int rc = drive(c, &a, 4, &e);
  /* the budget runs out in a pause (the last close) or while connected,
   * waiting on a resend (each connection first exchanges a Hello) */
  if (rc != PC_CLIENT_ECLOSED) PD_CHECK_INT(st, rc, PC_CLIENT_ETIMEDOUT);
  PD_CHECK_CONTAINS(st, e.message, "no answer from planktond");
  check_once(st, &a, 4);
  PD_CHECK_INT(st, a.status[0], 0);
  for (int i = 1; i < 4; i++) {
    PD_CHECK_INT(st, a.status[i], PC_CLIENT_STATUS_UNAVAILABLE);
    PD_CHECK_CONTAINS(st, a.message[i], "retry budget 0.4 s");
  }
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.failed_after_retries, 3);
  PD_CHECK(st, k.reconnects >= 1);
  PD_CHECK(st, k.resent >= 3);
  /* afterwards the client fails as it does without retries */
  PD_CHECK_INT(st, send_n(c, 10, 11, &e), rc);
  PD_CHECK_INT(st, pc_client_in_flight(c), 0);
  take(c, &a);
  PD_CHECK_INT(st, a.total, 4);
  pc_client_close(c);
  fake_stop(&f);
}

/* ---- case: a daemon that accepts and closes at once, every time ---- */

static bool script_slam(fake *f, int n, int fd) {
  (void)f;
  (void)fd;
  return n < 7;
}

static void case_slam(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_slam, false), 0);
  pc_client *c = connect_to(st, &f, 60, 5);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  int rc = send_n(c, 0, 3, &e);
  if (rc == PC_CLIENT_OK) rc = drive(c, &a, 3, &e);
  PD_CHECK(st, rc == PC_CLIENT_ECLOSED || rc == PC_CLIENT_ECONNECT);
  PD_CHECK_CONTAINS(st, e.message, "after 5 connection attempts");
  check_once(st, &a, 3);
  for (int i = 0; i < 3; i++)
    PD_CHECK_INT(st, a.status[i], PC_CLIENT_STATUS_UNAVAILABLE);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.attempts, 5);
  PD_CHECK_INT(st, k.failed_after_retries, 3);
  pc_client_close(c);
  fake_stop(&f);
  PD_CHECK_INT(st, f.conns, 6); /* the first connection and 5 attempts */
}

/* ---- case: no retry policy: a lost connection fails as it always did ---- */

static bool script_once(fake *f, int n, int fd) {
  for (int i = 0; i < 2; i++)
    read_request(f, n, fd);
  answer(fd, 0, 0);
  return false;
}

static void case_no_retry(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_once, false), 0);
  pc_client *c = connect_to(st, &f, 0, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 2, &e), PC_CLIENT_OK);
  int rc = drive(c, &a, 2, &e);
  PD_CHECK_INT(st, rc, PC_CLIENT_ECLOSED);
  PD_CHECK_CONTAINS(st, e.message, "1 request unanswered");
  PD_CHECK_INT(st, a.total, 1);
  PD_CHECK_INT(st, a.count[0], 1);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.reconnects, 0);
  pc_client_close(c);
  fake_stop(&f);
  PD_CHECK_INT(st, f.hellos[0], 0); /* no Hello without a retry policy */
}

/* ---- case: a blocking call across a restart, and a reconnect when idle ---- */

static bool script_health(fake *f, int n, int fd) {
  if (n == 0) return true; /* accept and close: the blocking call must retry */
  for (;;) {
    long long id = read_request(f, n, fd);
    if (id < 0) break;
    answer_health(fd, (uint64_t)id);
    if (n == 1) break; /* closes with nothing owed: the next call reconnects */
  }
  return n < 2;
}

static void case_blocking(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_health, true), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  for (int round = 0; round < 2; round++) {
    pc_client_response *r = NULL;
    int rc = pc_client_health(c, &r, &e);
    PD_CHECK_INT(st, rc, PC_CLIENT_OK);
    if (rc == PC_CLIENT_OK) {
      PD_CHECK_INT(st, r->kind, PC_CLIENT_RESPONSE_HEALTH);
      PD_CHECK(st, !strcmp(r->u.health.state, "serving"));
    }
    pc_client_response_free(r);
  }
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.reconnects, 2);
  pc_client_close(c);
  fake_stop(&f);
}

/* ---- case: reconnected to a daemon that never answers: the budget ends it ---- */

static bool script_silent(fake *f, int n, int fd) {
  if (n == 0) { /* read 2, close: both owed */
    read_request(f, n, fd);
    read_request(f, n, fd);
    return true;
  }
  read_to_eof(f, n, fd); /* takes the resends, answers nothing, waits for the client */
  return false;
}

static void case_silent(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_silent, false), 0);
  pc_client *c = connect_to(st, &f, 0.3, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 2, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, pc_client_timeout_ms(c), -1); /* no outage yet */
  int rc = PC_CLIENT_OK, saw_due = 0;
  /* pc_client_wait with a long timeout: the library's own deadline must end it */
  for (int i = 0; i < 50 && rc == PC_CLIENT_OK && a.total < 2; i++) {
    saw_due |= pc_client_timeout_ms(c) >= 0;
    rc = pc_client_wait(c, 60000, &e);
    take(c, &a);
  }
  PD_CHECK(st, saw_due);
  PD_CHECK_INT(st, rc, PC_CLIENT_ETIMEDOUT);
  PD_CHECK_CONTAINS(st, e.message, "no answer within the budget");
  check_once(st, &a, 2);
  PD_CHECK_INT(st, a.status[0], PC_CLIENT_STATUS_UNAVAILABLE);
  PD_CHECK_INT(st, a.status[1], PC_CLIENT_STATUS_UNAVAILABLE);
  PD_CHECK_INT(st, pc_client_timeout_ms(c), -1);
  pc_client_close(c);
  fake_stop(&f);
  PD_CHECK_INT(st, f.n_got[1], 2); /* the resends did reach it */
}

/* ---- case: lost while idle; the next send reconnects ---- */

static bool script_idle(fake *f, int n, int fd) {
  long long id = read_request(f, n, fd);
  if (id >= 0) answer(fd, (uint64_t)id, 0);
  if (n == 0) return true; /* closes with nothing owed */
  read_to_eof(f, n, fd);
  return false;
}

/* ---- case: frames still queued when the notice comes are taken back ---- */

#define BIG_FRAME (2u << 20) /* larger than any socket buffer: writes stay queued */
#define N_BIG 6

/* Reads and drops what arrives until the peer is quiet for quiet_ms (or
 * closes); returns the bytes. */
static size_t drain_bytes(int fd, int quiet_ms) {
  size_t total = 0;
  uint8_t buf[65536];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, quiet_ms) <= 0) return total;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return total;
    total += (size_t)r;
  }
}

static size_t after_notice; /* bytes the client wrote on connection 0 after the notice */

static bool script_take_back(fake *f, int n, int fd) {
  if (n == 0) {
    read_request(f, n, fd);   /* the Hello (answered), then request 0 */
    send_drain_notice(fd, 2); /* answers the Hello and 0, no later one */
    wait_signal(f, 1);        /* the client has taken the notice */
    after_notice = drain_bytes(fd, 300);
    answer(fd, 0, 0);
    after_notice += drain_bytes(fd, 2000); /* until the client closes */
    return true;
  }
  for (int i = 1; i < N_BIG; i++) {
    long long id = read_request(f, n, fd);
    if (id >= 0) answer(fd, (uint64_t)id, 0);
  }
  read_to_eof(f, n, fd);
  return false;
}

static void case_take_back(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_take_back, true), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  uint8_t *img = calloc(1, BIG_FRAME);
  PD_CHECK(st, img != NULL);
  if (!img) return;
  for (int i = 0; i < N_BIG; i++) {
    pc_client_classify_request rq = {.id = (uint64_t)i, .data = img, .len = BIG_FRAME};
    PD_CHECK_INT(st, pc_client_send_classify(c, &rq, &e), PC_CLIENT_OK);
  }
  PD_CHECK(st, pc_client_unsent(c) > (size_t)2 * BIG_FRAME); /* most of it still queued here */
  pc_client_retry_counters k;
  for (int i = 0; i < 1000; i++) { /* until the notice is in (the fake waits for it) */
    pc_client_retry_stats(c, &k);
    if (k.drain_notices) break;
    struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
    if (poll(&p, 1, 10) > 0) PD_CHECK_INT(st, pc_client_process(c, p.revents, &e), PC_CLIENT_OK);
  }
  PD_CHECK_INT(st, k.drain_notices, 1);
  /* the frames wholly queued were taken back: at most the one partly written is left */
  PD_CHECK(st, pc_client_unsent(c) <= BIG_FRAME + 64);
  raise_signal(&f);
  PD_CHECK_INT(st, drive(c, &a, N_BIG, &e), PC_CLIENT_OK);
  check_once(st, &a, N_BIG);
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.drain_notices, 1);
  PD_CHECK_INT(st, k.reconnects, 1);
  PD_CHECK(st, k.resent <= 1); /* at most the frame partly written when the notice came */
  pc_client_close(c);
  fake_stop(&f);
  free(img);
  /* after the notice, at most the rest of the frame being written (the
   * queued ones would be 2 MiB each) */
  PD_CHECK(st, after_notice <= BIG_FRAME + 64);
  PD_CHECK_INT(st, f.n_got[0], 1);
  PD_CHECK_INT(st, f.n_got[1], N_BIG - 1);
  for (int i = 0; i < f.n_got[1] && i < N_BIG - 1; i++)
    PD_CHECK_INT(st, f.got[1][i], 1 + i);
}

static void case_idle(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_idle, true), 0);
  pc_client *c = connect_to(st, &f, 10, 0);
  if (!c) return;
  pc_client_error e;
  answers a = {0};
  PD_CHECK_INT(st, send_n(c, 0, 1, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, drive(c, &a, 1, &e), PC_CLIENT_OK);
  /* the close is noticed with nothing owed: no reconnect yet, nothing to wait for */
  int rc = PC_CLIENT_OK;
  for (int i = 0; i < 100 && pc_client_fd(c) >= 0 && rc == PC_CLIENT_OK; i++) {
    struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
    if (poll(&p, 1, 100) > 0) rc = pc_client_process(c, p.revents, &e);
  }
  PD_CHECK_INT(st, rc, PC_CLIENT_OK);
  PD_CHECK_INT(st, pc_client_fd(c), -1);
  PD_CHECK_INT(st, pc_client_events(c), 0);
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.reconnects, 0);
  PD_CHECK_INT(st, send_n(c, 1, 2, &e), PC_CLIENT_OK); /* reconnects at once */
  PD_CHECK(st, pc_client_fd(c) >= 0);
  PD_CHECK_INT(st, drive(c, &a, 2, &e), PC_CLIENT_OK);
  check_once(st, &a, 2);
  pc_client_retry_stats(c, &k);
  PD_CHECK_INT(st, k.reconnects, 1);
  PD_CHECK_INT(st, k.resent, 0);
  pc_client_close(c);
  fake_stop(&f);
}

static void case_policy_errors(pd_test_state *st) {
  fake f;
  PD_CHECK_INT(st, fake_start(&f, script_once, false), 0);
  pc_client *c = connect_to(st, &f, 0, 0);
  if (!c) return;
  pc_client_error e;
  pc_client_retry_policy bad = {.retry_for_s = -1};
  PD_CHECK_INT(st, pc_client_set_retry(c, &bad, &e), PC_CLIENT_EINVAL);
  PD_CHECK_CONTAINS(st, e.message, "retry_for_s -1");
  PD_CHECK_INT(st, send_n(c, 0, 1, &e), PC_CLIENT_OK);
  PD_CHECK_INT(st, pc_client_set_retry(c, NULL, &e), PC_CLIENT_EINVAL);
  PD_CHECK_CONTAINS(st, e.message, "1 in flight");
  pc_client_close(c);
  fake_stop(&f);
}

int main(void) {
  pd_test_state st = {0};
  case_lost(&st);
  case_unavailable(&st);
  case_drain(&st);
  case_budget(&st);
  case_slam(&st);
  case_no_retry(&st);
  case_blocking(&st);
  case_idle(&st);
  case_take_back(&st);
  case_silent(&st);
  case_policy_errors(&st);
  return pd_test_finish(&st, "client_retry");
}
