#include "pd_http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_listener.h"

#define PD_HTTP_URL_MAX 1024
#define PD_HTTP_MAX_WRITES 4 /* answers waiting to be written before a connection is not read */

typedef struct http_conn http_conn;

struct pd_http {
  pd_listener *listener;
  pd_http_limits lim;
  pd_http_render_fn render;
  void *ctx;
  const pd_log *log;
  http_parser_settings settings;
  http_conn *conns;
  int n_conns;
  bool closing, timer_open;
  uv_timer_t sweep;
  uint64_t refused_log_ms;
  char name[600];
};

struct http_conn {
  pd_stream h;
  pd_http *srv;
  http_parser parser;
  char url[PD_HTTP_URL_MAX];
  size_t url_len;
  bool url_too_long, closing, reading;
  bool paused;   /* the parser stopped with rbuf[pend_off .. +pend_len) unparsed */
  bool finished; /* answered with Connection: close (or a 4xx that closes): parse no more */
  size_t pend_off, pend_len;
  int writes;
  uint64_t active_ms, request_since_ms; /* uv_now: last byte in or out; request begun (0: none) */
  char rbuf[4096];
  http_conn *next, *prev;
};

typedef struct http_write {
  uv_write_t req;
  http_conn *conn;
  char *head, *body;
  bool close_after;
} http_write;

static void maybe_free_server(pd_http *s) {
  if (s->closing && s->n_conns == 0 && !s->listener && !s->timer_open) free(s);
}

static void parse(http_conn *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void stop_reading(http_conn *c) {
  if (c->reading) uv_read_stop(&c->h.stream);
  c->reading = false;
}

static void conn_closed(uv_handle_t *h) {
  http_conn *c = h->data;
  pd_http *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  free(c);
  maybe_free_server(s);
}

static void conn_close(http_conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(&c->h.handle, conn_closed);
}

static void on_written(uv_write_t *req, int status) {
  http_write *w = (http_write *)req;
  http_conn *c = w->conn;
  c->writes--;
  c->active_ms = uv_now(c->h.handle.loop);
  if (status < 0 || w->close_after) conn_close(c);
  free(w->head);
  free(w->body);
  free(w);
  if (c->closing || c->finished || !c->paused || c->writes >= PD_HTTP_MAX_WRITES) return;
  /* room again: parse what was left, then read on */
  c->paused = false;
  http_parser_pause(&c->parser, 0);
  size_t off = c->pend_off, len = c->pend_len;
  c->pend_len = 0;
  if (len) parse(c, c->rbuf + off, len);
  if (!c->closing && !c->paused && !c->finished && !c->reading &&
      uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
    c->reading = true;
}

static void respond(http_conn *c, int code, const char *reason, const char *type, char *body,
                    size_t body_len, bool send_body, bool keep_alive) {
  http_write *w = calloc(1, sizeof *w);
  char *head = malloc(512);
  if (!w || !head || (!body && body_len)) {
    free(w);
    free(head);
    free(body);
    conn_close(c);
    return;
  }
  int n = snprintf(head, 512,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: %s\r\n\r\n",
                   code, reason, type, body_len, keep_alive ? "keep-alive" : "close");
  w->conn = c;
  w->head = head;
  w->body = body;
  w->close_after = !keep_alive;
  uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(body, (unsigned)body_len)};
  c->writes++;
  if (uv_write(&w->req, &c->h.stream, bufs, send_body && body_len ? 2 : 1, on_written) != 0) {
    c->writes--;
    free(head);
    free(body);
    free(w);
    conn_close(c);
  }
}

/* A plain-text answer (the text is copied). */
static void respond_text(http_conn *c, int code, const char *reason, const char *text,
                         bool keep_alive) {
  size_t len = strlen(text);
  char *body = malloc(len + 1);
  if (body) memcpy(body, text, len + 1);
  respond(c, code, reason, "text/plain; charset=utf-8", body, len, true, keep_alive);
}

static int answer(http_conn *c, http_parser *p, bool keep);

static int on_url(http_parser *p, const char *at, size_t len) {
  http_conn *c = p->data;
  if (c->url_len + len >= sizeof c->url) {
    c->url_too_long = true;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  c->url[c->url_len] = '\0';
  return 0;
}

static int on_message_begin(http_parser *p) {
  http_conn *c = p->data;
  c->request_since_ms = uv_now(c->h.handle.loop);
  c->url_len = 0;
  c->url[0] = '\0';
  c->url_too_long = false;
  return 0;
}

/* After an answer: parse no further while too many wait to be written
 * (on_written resumes), nor ever again after one that closes. */
static void after_answer(http_conn *c, bool keep) {
  if (!keep) c->finished = true;
  if (!keep || c->writes >= PD_HTTP_MAX_WRITES) http_parser_pause(&c->parser, 1);
}

static int on_message_complete(http_parser *p) {
  http_conn *c = p->data;
  c->request_since_ms = 0;
  bool keep = http_should_keep_alive(p) && !c->srv->closing;
  int rc = answer(c, p, keep);
  after_answer(c, keep && !c->finished);
  return rc;
}

static int answer(http_conn *c, http_parser *p, bool keep) {
  bool head_only = p->method == HTTP_HEAD;
  size_t len = 0;
  if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
    respond_text(c, 405, "Method Not Allowed", "GET or HEAD only\n", keep);
    return 0;
  }
  size_t path_len = strcspn(c->url, "?#");
  if (c->url_too_long || path_len != 8 || strncmp(c->url, "/metrics", 8) != 0) {
    respond_text(c, 404, "Not Found", "not found: try /metrics\n", keep);
    return 0;
  }
  char *body = c->srv->render(c->srv->ctx, &len);
  if (!body) {
    respond_text(c, 500, "Internal Server Error", "out of memory\n", false);
    c->finished = true;
    return 0;
  }
  respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len, !head_only, keep);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  http_conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* Parses bytes in c->rbuf; a pause keeps the rest for on_written. */
static void parse(http_conn *c, const char *data, size_t len) {
  size_t done = http_parser_execute(&c->parser, &c->srv->settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->closing) return;
  if (e == HPE_PAUSED) {
    stop_reading(c);
    if (c->finished) return; /* a closing answer: the rest is never read */
    c->paused = true;
    c->pend_off = (size_t)(data - c->rbuf) + done;
    c->pend_len = len - done;
    return;
  }
  if (c->parser.upgrade || done != len || e != HPE_OK) {
    stop_reading(c);
    c->finished = true;
    char msg[160];
    snprintf(msg, sizeof msg, "bad request: %s\n", http_errno_description(e));
    respond_text(c, 400, "Bad Request", msg, false);
  }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  http_conn *c = st->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  c->active_ms = uv_now(c->h.handle.loop);
  parse(c, buf->base, (size_t)nread);
}

static void on_connection(pd_listener *l, int status, void *data) {
  pd_http *s = data;
  if (status < 0) return; /* out of descriptors: libuv closed what was waiting */
  http_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = s;
  char peer[96];
  int rc = pd_listener_accept(l, &c->h, peer, sizeof peer);
  c->h.handle.data = c;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  c->active_ms = uv_now(c->h.handle.loop);
  if (rc != 0) {
    conn_close(c);
    return;
  }
  if (s->n_conns > s->lim.max_connections) {
    uint64_t now = uv_now(c->h.handle.loop);
    if (now - s->refused_log_ms >= 1000 || !s->refused_log_ms) {
      s->refused_log_ms = now;
      pd_logf(s->log, PD_LOG_WARNING,
              "metrics %s: connection refused: %d open (metrics.max_connections)", s->name,
              s->lim.max_connections);
    }
    conn_close(c);
    return;
  }
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
    conn_close(c);
  else
    c->reading = true;
}

static void on_sweep(uv_timer_t *t) {
  pd_http *s = t->data;
  uint64_t now = uv_now(t->loop);
  for (http_conn *c = s->conns; c; c = c->next) { /* conn_close unlinks later, on close */
    if (c->closing) continue;
    if (s->lim.request_timeout_ms && c->request_since_ms && !c->paused && !c->finished &&
        now - c->request_since_ms >= s->lim.request_timeout_ms) {
      stop_reading(c);
      c->finished = true;
      respond_text(c, 408, "Request Timeout", "request incomplete (limits.frame_timeout_ms)\n",
                   false);
    } else if (s->lim.idle_timeout_ms && !c->request_since_ms && c->writes == 0 &&
               now - c->active_ms >= s->lim.idle_timeout_ms) {
      conn_close(c);
    }
  }
}

static void sweep_closed(uv_handle_t *h) {
  pd_http *s = h->data;
  s->timer_open = false;
  maybe_free_server(s);
}

int pd_http_create(uv_loop_t *loop, const char *address, int fd, const pd_http_limits *lim,
                   pd_http_render_fn render, void *ctx, const pd_log *log, pd_http **out,
                   pd_error *err) {
  pd_http *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "metrics: out of memory");
  s->lim = *lim;
  if (s->lim.max_connections < 1) s->lim.max_connections = 1;
  s->render = render;
  s->ctx = ctx;
  s->log = log;
  http_parser_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_message_complete = on_message_complete;
  int rc = fd >= 0 ? pd_listener_fd(loop, fd, on_connection, s, &s->listener, err)
                   : pd_listener_address(loop, address, on_connection, s, &s->listener, err);
  if (rc != PD_OK) {
    pd_error_prefix(err, "metrics");
    free(s);
    return rc;
  }
  snprintf(s->name, sizeof s->name, "%s", s->listener->name);
  uint64_t shortest = s->lim.request_timeout_ms;
  if (s->lim.idle_timeout_ms && (!shortest || s->lim.idle_timeout_ms < shortest))
    shortest = s->lim.idle_timeout_ms;
  uint64_t period = shortest / 4 < 50 ? 50 : shortest / 4 > 1000 ? 1000 : shortest / 4;
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  s->timer_open = true;
  if (shortest) uv_timer_start(&s->sweep, on_sweep, period, period);
  *out = s;
  return PD_OK;
}

const char *pd_http_name(const pd_http *h) {
  return h->name;
}

void pd_http_close(pd_http *s) {
  if (!s) return;
  s->closing = true;
  pd_listener_close(s->listener);
  s->listener = NULL;
  if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->sweep))
    uv_close((uv_handle_t *)&s->sweep, sweep_closed);
  for (http_conn *c = s->conns; c; c = c->next)
    conn_close(c);
  maybe_free_server(s);
}
