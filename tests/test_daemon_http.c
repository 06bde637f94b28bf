/* pd_http, the routed HTTP/1.1 server, through real sockets: exact and
 * prefix routes, 404 and 405 (with Allow), HEAD, headers and the query,
 * request bodies (Content-Length, chunked, one byte at a time) up to the
 * limit and 413 beyond, 431 for too many header fields, keep-alive,
 * answers given later from the loop (pipelined requests still answered in
 * order), a connection that closes while its request waits (the late
 * answer is dropped safely), and a drain that waits for the answers owed.
 *
 * Each case runs alone: `test_daemon_http NAME` (no name: all). The server
 * runs on this thread's loop; the case's client runs on a second thread
 * with blocking sockets and makes every check. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "pd_http.h"
#include "pd_test.h"

#define MAX_BODY 1024

static pd_test_state st;

/* ---- the server side (loop thread) ---- */

typedef struct server {
  uv_loop_t loop;
  pd_http *http;
  pd_log log;
  uv_async_t done;
  uv_timer_t later;
  pd_http_request *waiting[8]; /* /async answers due when the timer fires */
  int n_waiting;
  pd_http_request *held; /* /hold: answered by /release */
  int empty_calls;       /* the drain's on_empty */
  char sock[100];
} server;

static void answer(pd_http_request *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(pd_http_request *r, const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  pd_http_respond_text(r, 200, text, false);
}

static void h_sync(pd_http_request *r, void *data) {
  (void)data;
  answer(r, "sync");
}

static void h_prefix(pd_http_request *r, void *data) {
  (void)data;
  answer(r, "%s", pd_http_request_path(r));
}

static void h_echo(pd_http_request *r, void *data) {
  (void)data;
  size_t len = 0;
  const uint8_t *body = pd_http_request_body(r, &len);
  const char *x = pd_http_request_header(r, "x-test");
  char headers[256];
  snprintf(headers, sizeof headers, "Content-Type: text/plain\r\nX-Seen: %s\r\n", x ? x : "-");
  char *text = malloc(len + 512);
  int n = snprintf(text, 512, "%s %s ?%s x-test=%s body=", pd_http_request_method(r),
                   pd_http_request_path(r), pd_http_request_query(r), x ? x : "-");
  if (len) memcpy(text + n, body, len);
  pd_http_respond(r, 200, headers, text, (size_t)n + len, false);
}

static void on_later(uv_timer_t *t) {
  server *s = t->data;
  for (int i = 0; i < s->n_waiting; i++)
    answer(s->waiting[i], "later %s", pd_http_request_path(s->waiting[i]));
  s->n_waiting = 0;
}

static void h_async(pd_http_request *r, void *data) {
  server *s = data;
  s->waiting[s->n_waiting++] = r;
  uv_timer_start(&s->later, on_later, 20, 0);
}

static void h_hold(pd_http_request *r, void *data) {
  server *s = data;
  s->held = r;
}

static void h_held(pd_http_request *r, void *data) {
  server *s = data;
  answer(r, "held=%d gone=%d", s->held != NULL, s->held && pd_http_request_gone(s->held));
}

static void h_release(pd_http_request *r, void *data) {
  server *s = data;
  int gone = s->held && pd_http_request_gone(s->held);
  if (s->held) answer(s->held, "released");
  s->held = NULL;
  answer(r, "released gone=%d", gone);
}

static void on_empty(void *data) {
  server *s = data;
  s->empty_calls++;
}

static void h_drain(pd_http_request *r, void *data) {
  server *s = data;
  pd_http_drain(s->http, on_empty, s);
  answer(r, "draining");
}

static void h_status(pd_http_request *r, void *data) {
  server *s = data;
  answer(r, "empty=%d pending=%d", s->empty_calls, pd_http_pending(s->http));
}

static void on_done(uv_async_t *a) {
  server *s = a->data;
  pd_http_close(s->http);
  if (s->held) answer(s->held, "closing"); /* the server frees itself after this answer */
  s->held = NULL;
  for (int i = 0; i < s->n_waiting; i++)
    answer(s->waiting[i], "closing");
  s->n_waiting = 0;
  uv_close((uv_handle_t *)&s->later, NULL);
  uv_close((uv_handle_t *)&s->done, NULL);
}

static int server_start(server *s) {
  pd_error err = {0};
  uv_loop_init(&s->loop);
  pd_log_init(&s->log, PD_LOG_ERROR);
  snprintf(s->sock, sizeof s->sock, "/tmp/pd_http_test.%d.sock", (int)getpid());
  char addr[160];
  snprintf(addr, sizeof addr, "unix:%s", s->sock);
  pd_http_limits lim = {.max_connections = 64, .max_body = MAX_BODY};
  int rc = pd_http_create(&s->loop, "test", "test", &lim, &s->log, &s->http, &err);
  struct {
    const char *method, *path;
    pd_http_handler fn;
  } routes[] = {
      {"GET", "/sync", h_sync},       {"GET", "/v2/*", h_prefix},  {NULL, "/echo", h_echo},
      {"GET", "/async/*", h_async},   {"GET", "/hold", h_hold},    {"GET", "/held", h_held},
      {"GET", "/release", h_release}, {"POST", "/drain", h_drain}, {"GET", "/status", h_status}};
  for (size_t i = 0; rc == PD_OK && i < sizeof routes / sizeof routes[0]; i++)
    rc = pd_http_route(s->http, routes[i].method, routes[i].path, routes[i].fn, s, &err);
  if (rc == PD_OK) rc = pd_http_listen(s->http, addr, -1, &err);
  if (rc != PD_OK) fprintf(stderr, "server: %s\n", err.msg);
  uv_async_init(&s->loop, &s->done, on_done);
  s->done.data = s;
  uv_timer_init(&s->loop, &s->later);
  s->later.data = s;
  return rc;
}

/* ---- the client side (its own thread) ---- */

static int connect_to(const server *s) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0) return;
    data += n;
    len -= (size_t)n;
  }
}

typedef struct reply {
  int status;
  char headers[2048];
  char body[4096];
  bool closed; /* the server closed the connection after the replies read */
} reply;

/* Reads `n` replies (fewer if the server closes). Returns how many. */
static int read_replies(int fd, reply *out, int n) {
  static char buf[65536];
  size_t len = 0;
  int got = 0;
  memset(out, 0, sizeof *out * (size_t)n);
  for (;;) {
    /* complete replies in buf? */
    while (got < n) {
      buf[len] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (!end || strncmp(buf, "HTTP/1.1 ", 9) != 0) break;
      size_t head = (size_t)(end - buf) + 4;
      const char *cl = strstr(buf, "Content-Length: ");
      size_t body = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
      if (len < head + body) break;
      out[got].status = atoi(buf + 9);
      snprintf(out[got].headers, sizeof out[got].headers, "%.*s", (int)head, buf);
      snprintf(out[got].body, sizeof out[got].body, "%.*s", (int)body, buf + head);
      memmove(buf, buf + head + body, len - head - body);
      len -= head + body;
      got++;
    }
    if (got == n) return got;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0) return got; /* a hang guard, not a measure */
    ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (r <= 0) {
      if (got < n) out[got].closed = true;
      if (got > 0) out[got - 1].closed = true;
      return got;
    }
    len += (size_t)r;
  }
}

/* Whether the server closed the connection (EOF within the guard). */
static bool closed_by_server(int fd) {
  char b[256];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0) return false;
    ssize_t r = recv(fd, b, sizeof b, 0);
    if (r <= 0) return true;
  }
}

/* One request on a new connection; the reply. */
static reply one(const server *s, const char *req) {
  reply r = {0};
  int fd = connect_to(s);
  send_all(fd, req, strlen(req));
  if (read_replies(fd, &r, 1) != 1) r.status = -1;
  close(fd);
  return r;
}

/* GET path until the body equals want (the server acts on what other
 * connections did: wait for it, within the guard). */
static bool wait_body(const server *s, const char *path, const char *want) {
  char req[256];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  for (int i = 0; i < 1000; i++) {
    reply r = one(s, req);
    if (r.status == 200 && !strcmp(r.body, want)) return true;
    usleep(10000);
  }
  return false;
}

/* ---- the cases ---- */

static void case_routes(server *s) {
  reply r = one(s, "GET /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 200);
  PD_CHECK(&st, !strcmp(r.body, "sync"));
  r = one(s, "GET /v2/models/x/ready?y=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 200);
  PD_CHECK(&st, !strcmp(r.body, "/v2/models/x/ready"));
  r = one(s, "GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n"); /* the prefix is "/v2/" */
  PD_CHECK_INT(&st, r.status, 404);
  PD_CHECK_CONTAINS(&st, r.body, "not found: try /sync or /v2/...");
  r = one(s, "GET /sync2 HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 404);
  r = one(s, "POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 405);
  PD_CHECK_CONTAINS(&st, r.headers, "Allow: GET, HEAD\r\n");
  PD_CHECK(&st, !strcmp(r.body, "GET or HEAD only\n"));
  r = one(s, "GET /drain HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 405);
  PD_CHECK_CONTAINS(&st, r.headers, "Allow: POST\r\n");
  /* HEAD: the GET route's headers, no body */
  int fd = connect_to(s);
  const char *head = "HEAD /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  send_all(fd, head, strlen(head));
  char buf[1024];
  size_t len = 0;
  for (ssize_t n; (n = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0;)
    len += (size_t)n;
  buf[len] = '\0';
  close(fd);
  PD_CHECK(&st, !strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
  PD_CHECK_CONTAINS(&st, buf, "Content-Length: 4\r\n");
  PD_CHECK(&st, strstr(buf, "\r\n\r\n") && strstr(buf, "\r\n\r\n")[4] == '\0');
  /* a handler for any method sees the method, path, query and headers */
  r = one(s, "DELETE /echo?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Test: forty two\r\n"
             "Connection: close\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 200);
  PD_CHECK(&st, !strcmp(r.body, "DELETE /echo ?a=1&b=2 x-test=forty two body="));
  PD_CHECK_CONTAINS(&st, r.headers, "X-Seen: forty two\r\n");
  PD_CHECK_CONTAINS(&st, r.headers, "Connection: close\r\n");
}

static void case_bodies(server *s) {
  /* three requests on one keep-alive connection */
  int fd = connect_to(s);
  const char *a = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
  const char *b = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n chunk\r\n0\r\n\r\n";
  reply r[2];
  send_all(fd, a, strlen(a));
  PD_CHECK_INT(&st, read_replies(fd, r, 1), 1);
  PD_CHECK(&st, !strcmp(r[0].body, "POST /echo ? x-test=- body=hello world"));
  PD_CHECK_CONTAINS(&st, r[0].headers, "Connection: keep-alive\r\n");
  send_all(fd, b, strlen(b));
  PD_CHECK_INT(&st, read_replies(fd, r, 1), 1);
  PD_CHECK(&st, !strcmp(r[0].body, "POST /echo ? x-test=- body=hello chunk"));
  /* one byte at a time: every field, value and body split */
  const char *c = "PUT /echo?q HTTP/1.1\r\nHost: x\r\nX-Test: split\r\nContent-Length: 4\r\n\r\n"
                  "abcd";
  for (const char *p = c; *p; p++)
    send_all(fd, p, 1);
  PD_CHECK_INT(&st, read_replies(fd, r, 1), 1);
  PD_CHECK(&st, !strcmp(r[0].body, "PUT /echo ?q x-test=split body=abcd"));
  close(fd);
  /* exactly the limit */
  char *big = malloc(MAX_BODY + 256);
  int n =
      snprintf(big, 256, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
  memset(big + n, 'z', MAX_BODY);
  big[n + MAX_BODY] = '\0';
  reply ok = one(s, big);
  PD_CHECK_INT(&st, ok.status, 200);
  PD_CHECK_INT(&st, strlen(ok.body), strlen("POST /echo ? x-test=- body=") + MAX_BODY);
  free(big);
}

static void case_limits(server *s) {
  /* a declared body over the limit: 413 before any of it is read, then a close */
  int fd = connect_to(s);
  const char *a = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
  send_all(fd, a, strlen(a));
  reply r;
  PD_CHECK_INT(&st, read_replies(fd, &r, 1), 1);
  PD_CHECK_INT(&st, r.status, 413);
  PD_CHECK_CONTAINS(&st, r.body, "5000 bytes is over the limit of 1024 bytes");
  PD_CHECK_CONTAINS(&st, r.headers, "Connection: close\r\n");
  PD_CHECK(&st, closed_by_server(fd));
  close(fd);
  /* a chunked body that grows over it */
  fd = connect_to(s);
  char chunk[1024];
  const char *b = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  send_all(fd, b, strlen(b));
  for (int i = 0; i < 2; i++) {
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 800);
    memset(chunk + n, 'y', 800);
    memcpy(chunk + n + 800, "\r\n", 2);
    send_all(fd, chunk, (size_t)n + 802);
  }
  PD_CHECK_INT(&st, read_replies(fd, &r, 1), 1);
  PD_CHECK_INT(&st, r.status, 413);
  PD_CHECK(&st, closed_by_server(fd));
  close(fd);
  /* too many header fields */
  char req[8192];
  int n = snprintf(req, sizeof req, "GET /sync HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 70; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "X-H%d: %d\r\n", i, i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  fd = connect_to(s);
  send_all(fd, req, strlen(req));
  PD_CHECK_INT(&st, read_replies(fd, &r, 1), 1);
  PD_CHECK_INT(&st, r.status, 431);
  PD_CHECK(&st, closed_by_server(fd));
  close(fd);
  /* garbage: 400 and a close */
  r = one(s, "\x01\x02 nonsense\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 400);
  /* the server is fine after all that */
  r = one(s, "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK_INT(&st, r.status, 200);
}

static void case_async(server *s) {
  /* pipelined: an answer given later, then one given at once: in order */
  int fd = connect_to(s);
  const char *p = "GET /async/a HTTP/1.1\r\nHost: x\r\n\r\nGET /sync HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /async/b HTTP/1.1\r\nHost: x\r\n\r\nGET /async/c HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\n\r\n";
  send_all(fd, p, strlen(p));
  reply r[4];
  PD_CHECK_INT(&st, read_replies(fd, r, 4), 4);
  PD_CHECK(&st, !strcmp(r[0].body, "later /async/a"));
  PD_CHECK(&st, !strcmp(r[1].body, "sync"));
  PD_CHECK(&st, !strcmp(r[2].body, "later /async/b"));
  PD_CHECK(&st, !strcmp(r[3].body, "later /async/c"));
  PD_CHECK(&st, r[3].closed || closed_by_server(fd));
  close(fd);
}

static void case_gone(server *s) {
  /* the client leaves while its request waits: the late answer is dropped */
  int fd = connect_to(s);
  const char *h = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
  send_all(fd, h, strlen(h));
  PD_CHECK(&st, wait_body(s, "/held", "held=1 gone=0"));
  close(fd);
  PD_CHECK(&st, wait_body(s, "/held", "held=1 gone=1"));
  reply r = one(s, "GET /release HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "released gone=1"));
  r = one(s, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "empty=0 pending=1")); /* only /status itself */
  /* one left waiting when the server closes: answered then, and freed */
  fd = connect_to(s);
  send_all(fd, h, strlen(h));
  PD_CHECK(&st, wait_body(s, "/held", "held=1 gone=0"));
  close(fd);
}

static void case_drain(server *s) {
  int fd = connect_to(s);
  const char *h = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
  send_all(fd, h, strlen(h));
  PD_CHECK(&st, wait_body(s, "/held", "held=1 gone=0"));
  reply r = one(s, "POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "draining"));
  r = one(s, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "empty=0 pending=2")); /* /hold and /status */
  r = one(s, "GET /release HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "released gone=0"));
  reply held;
  PD_CHECK_INT(&st, read_replies(fd, &held, 1), 1);
  PD_CHECK(&st, !strcmp(held.body, "released"));
  close(fd);
  r = one(s, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
  PD_CHECK(&st, !strcmp(r.body, "empty=1 pending=1")); /* still listening while draining */
}

typedef struct test_case {
  const char *name;
  void (*run)(server *s);
} test_case;

static const test_case cases[] = {
    {"routes", case_routes}, {"bodies", case_bodies}, {"limits", case_limits},
    {"async", case_async},   {"gone", case_gone},     {"drain", case_drain},
};

typedef struct client_arg {
  server *s;
  const test_case *c;
} client_arg;

static void *client_main(void *p) {
  client_arg *a = p;
  a->c->run(a->s);
  uv_async_send(&a->s->done);
  return NULL;
}

static void run_case(const test_case *c) {
  server s = {0};
  if (server_start(&s) != PD_OK) {
    PD_CHECK(&st, 0);
    return;
  }
  client_arg a = {&s, c};
  pthread_t t;
  pthread_create(&t, NULL, client_main, &a);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  pthread_join(t, NULL);
  PD_CHECK_INT(&st, uv_loop_close(&s.loop), 0); /* every handle closed, the server freed */
  unlink(s.sock);
  printf("%s: done\n", c->name);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* as planktond: a write to a client gone is an error, not a death */
  int ran = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    run_case(&cases[i]);
    ran++;
  }
  if (!ran) {
    fprintf(stderr, "no case named %s\n", argv[1]);
    return 1;
  }
  return pd_test_finish(&st, "daemon_http");
}
