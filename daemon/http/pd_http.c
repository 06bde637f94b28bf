#include "pd_http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pd_link.h"
#include "pd_listener.h"

#define PD_HTTP_URL_MAX 1024
#define PD_HTTP_MAX_WRITES 4 /* answers waiting to be written before a connection is not read */
#define PD_HTTP_MAX_ROUTES 32
#define PD_HTTP_MAX_LISTENERS 8
#define PD_HTTP_MAX_HEADERS 64
#define PD_HTTP_HEADER_BYTES 16384
#define PD_HTTP_NO_VALUE UINT16_MAX /* a header field without a value */

typedef struct http_conn http_conn;

typedef struct route {
  char method[16]; /* "" = any */
  char path[256];
  size_t len;
  bool prefix;
  pd_http_handler fn;
  void *data;
} route;

struct pd_http {
  uv_loop_t *loop;
  pd_listener *listeners[PD_HTTP_MAX_LISTENERS];
  int n_listeners;
  pd_http_limits lim;
  const pd_log *log;
  char what[32], settings_name[32];
  http_parser_settings settings;
  route routes[PD_HTTP_MAX_ROUTES];
  int n_routes;
  pd_link *conns;
  int n_conns;
  int pending; /* requests handed to handlers, not yet answered */
  bool closing, draining, timer_open;
  void (*on_empty)(void *);
  void *on_empty_data;
  uv_timer_t sweep;
  uint64_t sweep_period_ms; /* 0: not running */
  uint64_t refused_log_ms;
  uint64_t serials; /* connections accepted so far */
  char name[600];
};

struct pd_http_request {
  pd_http *srv;
  http_conn *conn; /* NULL once the connection closed (gone) */
  enum http_method method;
  bool keep_alive, dispatched;
  char url[PD_HTTP_URL_MAX], path[PD_HTTP_URL_MAX];
  size_t url_len;
  bool url_too_long, headers_too_large, last_was_value;
  int n_headers;
  uint16_t name_off[PD_HTTP_MAX_HEADERS], value_off[PD_HTTP_MAX_HEADERS];
  size_t hlen;
  char hbuf[PD_HTTP_HEADER_BYTES];
  uint8_t *body;
  size_t body_len, body_cap;
  void (*on_gone)(pd_http_request *r, void *data);
  void *on_gone_data;
};

struct http_conn {
  pd_stream h;
  pd_link link;
  pd_http *srv;
  http_parser parser;
  pd_http_request *req; /* being parsed, or handed out and waiting for its answer */
  bool closing, reading, in_parse;
  bool paused;   /* the parser stopped with rbuf[pend_off .. +pend_len) unparsed */
  bool finished; /* answered with Connection: close (or a 4xx that closes): parse no more */
  size_t pend_off, pend_len;
  int writes;
  uint64_t active_ms, request_since_ms; /* uv_now: last byte in or out; request begun (0: none) */
  uint64_t serial;                      /* 1, 2, ... in accept order (pd_http_request_conn) */
  char rbuf[4096];
};

typedef struct http_write {
  uv_write_t req;
  http_conn *conn;
  char *head, *body;
  bool close_after;
} http_write;

static void maybe_free_server(pd_http *s) {
  if (s->closing && s->n_conns == 0 && s->n_listeners == 0 && !s->timer_open && s->pending == 0)
    free(s);
}

static void parse(http_conn *c, const char *data, size_t len);
static void resume(http_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void stop_reading(http_conn *c) {
  if (c->reading) uv_read_stop(&c->h.stream);
  c->reading = false;
}

static void request_free(pd_http_request *r) {
  free(r->body);
  free(r);
}

static void conn_closed(uv_handle_t *h) {
  http_conn *c = h->data;
  pd_http *s = c->srv;
  pd_link_unlink(&s->conns, &c->link);
  s->n_conns--;
  if (c->req && c->req->dispatched) {
    pd_http_request *r = c->req;
    r->conn = NULL; /* its handler still answers it */
    if (r->on_gone) r->on_gone(r, r->on_gone_data);
  } else if (c->req)
    request_free(c->req);
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
  resume(c);
}

static const char *reason_phrase(int code) {
  switch (code) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Payload Too Large";
  case 415:
    return "Unsupported Media Type";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return code < 300 ? "OK" : code < 500 ? "Bad Request" : "Internal Server Error";
  }
}

/* Writes one answer; the body is taken. keep_alive false: the connection
 * closes once it is written, and nothing more is parsed. */
static void write_answer(http_conn *c, int code, const char *headers, char *body, size_t body_len,
                         bool send_body, bool keep_alive) {
  if (!keep_alive) c->finished = true;
  if (!headers) headers = "";
  size_t cap = strlen(headers) + 160;
  http_write *w = calloc(1, sizeof *w);
  char *head = malloc(cap);
  if (!w || !head || (!body && body_len)) {
    free(w);
    free(head);
    free(body);
    conn_close(c);
    return;
  }
  int n =
      snprintf(head, cap, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\nConnection: %s\r\n\r\n", code,
               reason_phrase(code), headers, body_len, keep_alive ? "keep-alive" : "close");
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

static char *copy_text(const char *text, size_t *len) {
  *len = strlen(text);
  char *body = malloc(*len + 1);
  if (body) memcpy(body, text, *len + 1);
  return body;
}

/* An answer of the server's own to a request it could not hand out: the
 * connection closes after it. */
static void fail_conn(http_conn *c, int code, const char *text) {
  stop_reading(c);
  size_t len = 0;
  char *body = copy_text(text, &len);
  write_answer(c, code, "Content-Type: text/plain; charset=utf-8\r\n", body, len, true, false);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_OK || e == HPE_PAUSED) http_parser_pause(&c->parser, 1); /* (it asserts that) */
}

/* ---- answering ---- */

void pd_http_respond(pd_http_request *r, int status, const char *headers, char *body, size_t len,
                     bool close) {
  pd_http *s = r->srv;
  http_conn *c = r->conn;
  bool dispatched = r->dispatched;
  if (dispatched) s->pending--;
  if (c) c->req = NULL;
  if (!c || c->closing) {
    free(body); /* the client left, or the server is closing it */
  } else {
    bool keep = r->keep_alive && !close && !s->closing && !c->finished;
    write_answer(c, status, headers, body, len, r->method != HTTP_HEAD, keep);
  }
  request_free(r);
  if (c && !c->in_parse) resume(c);
  if (dispatched && s->draining && s->pending == 0 && s->on_empty) {
    void (*fn)(void *) = s->on_empty;
    s->on_empty = NULL;
    fn(s->on_empty_data);
  }
  maybe_free_server(s);
}

void pd_http_respond_text(pd_http_request *r, int status, const char *text, bool close) {
  size_t len = 0;
  char *body = copy_text(text, &len);
  pd_http_respond(r, status, "Content-Type: text/plain; charset=utf-8\r\n", body, len, close);
}

static bool method_matches(const route *rt, enum http_method m) {
  if (!rt->method[0]) return true;
  const char *name = http_method_str(m);
  if (!strcmp(rt->method, name)) return true;
  return m == HTTP_HEAD && !strcmp(rt->method, "GET");
}

static bool path_matches(const route *rt, const char *path) {
  return rt->prefix ? strncmp(path, rt->path, rt->len) == 0 : strcmp(path, rt->path) == 0;
}

/* Hands a complete request to its route's handler, or answers it. */
static void dispatch(pd_http *s, pd_http_request *r) {
  bool path_known = false;
  if (!r->url_too_long) {
    for (int i = 0; i < s->n_routes; i++) {
      const route *rt = &s->routes[i];
      if (!path_matches(rt, r->path)) continue;
      path_known = true;
      if (!method_matches(rt, r->method)) continue;
      r->dispatched = true;
      s->pending++;
      rt->fn(r, rt->data);
      return;
    }
  }
  char msg[PD_HTTP_MAX_ROUTES * 40 + 64];
  if (path_known) { /* the methods this path has: "GET or HEAD only", "POST only" */
    char allow[PD_HTTP_MAX_ROUTES * 20 + 16] = "", text[sizeof allow + 16] = "";
    size_t an = 0, tn = 0;
    for (int i = 0; i < s->n_routes; i++) {
      const route *rt = &s->routes[i];
      if (!path_matches(rt, r->path) || strstr(allow, rt->method)) continue;
      bool get = !strcmp(rt->method, "GET");
      an += (size_t)snprintf(allow + an, sizeof allow - an, "%s%s%s", an ? ", " : "", rt->method,
                             get ? ", HEAD" : "");
      tn += (size_t)snprintf(text + tn, sizeof text - tn, "%s%s%s", tn ? " or " : "", rt->method,
                             get ? " or HEAD" : "");
    }
    char headers[sizeof allow + 64];
    snprintf(headers, sizeof headers, "Content-Type: text/plain; charset=utf-8\r\nAllow: %s\r\n",
             allow);
    snprintf(msg, sizeof msg, "%s only\n", text);
    size_t len = 0;
    char *body = copy_text(msg, &len);
    pd_http_respond(r, 405, headers, body, len, false);
    return;
  }
  int n = snprintf(msg, sizeof msg, "not found: try");
  for (int i = 0; i < s->n_routes && n < (int)sizeof msg - 48; i++)
    n += snprintf(msg + n, sizeof msg - (size_t)n, "%s %s%s", i ? " or" : "", s->routes[i].path,
                  s->routes[i].prefix ? "..." : "");
  snprintf(msg + n, sizeof msg - (size_t)n, "\n");
  pd_http_respond_text(r, 404, msg, false);
}

/* ---- parsing ---- */

static int on_message_begin(http_parser *p) {
  http_conn *c = p->data;
  c->request_since_ms = uv_now(c->h.handle.loop);
  pd_http_request *r = calloc(1, sizeof *r);
  if (!r) return -1; /* a 400 and a close */
  r->srv = c->srv;
  r->conn = c;
  c->req = r;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  pd_http_request *r = ((http_conn *)p->data)->req;
  if (r->url_len + len >= sizeof r->url) {
    r->url_too_long = true;
    return 0;
  }
  memcpy(r->url + r->url_len, at, len);
  r->url_len += len;
  r->url[r->url_len] = '\0';
  return 0;
}

/* Appends to the header being read: names and values alternate, each kept
 * NUL-terminated in hbuf. */
static int header_bytes(http_conn *c, const char *at, size_t len, bool value) {
  pd_http_request *r = c->req;
  if (r->headers_too_large) return 0;
  bool starts = value != r->last_was_value || r->n_headers == 0;
  if (starts && !value && r->n_headers == PD_HTTP_MAX_HEADERS) {
    r->headers_too_large = true;
    return 0;
  }
  if (r->hlen + len + 2 > sizeof r->hbuf) {
    r->headers_too_large = true;
    return 0;
  }
  if (starts) {
    if (r->hlen) r->hbuf[r->hlen++] = '\0';
    if (value) {
      r->value_off[r->n_headers - 1] = (uint16_t)r->hlen;
    } else {
      r->name_off[r->n_headers] = (uint16_t)r->hlen;
      r->value_off[r->n_headers] = PD_HTTP_NO_VALUE; /* "" until a value comes */
      r->n_headers++;
    }
    r->last_was_value = value;
  }
  memcpy(r->hbuf + r->hlen, at, len);
  r->hlen += len;
  r->hbuf[r->hlen] = '\0';
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  return header_bytes(p->data, at, len, false);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  return header_bytes(p->data, at, len, true);
}

static int on_headers_complete(http_parser *p) {
  http_conn *c = p->data;
  pd_http_request *r = c->req;
  if (r->headers_too_large) {
    fail_conn(c, 431, "request header fields too large\n");
    return 0;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->lim.max_body) {
    char msg[160];
    snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %zu bytes\n",
             (unsigned long long)p->content_length, c->srv->lim.max_body);
    fail_conn(c, 413, msg);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  http_conn *c = p->data;
  pd_http_request *r = c->req;
  if (c->finished) return 0;
  if (r->body_len + len > c->srv->lim.max_body) {
    char msg[160];
    snprintf(msg, sizeof msg, "request body over the limit of %zu bytes\n", c->srv->lim.max_body);
    fail_conn(c, 413, msg);
    return 0;
  }
  if (r->body_len + len > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
    while (cap < r->body_len + len)
      cap *= 2;
    if (cap > c->srv->lim.max_body) cap = c->srv->lim.max_body;
    uint8_t *nb = realloc(r->body, cap);
    if (!nb) {
      fail_conn(c, 500, "out of memory\n");
      return 0;
    }
    r->body = nb;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_conn *c = p->data;
  pd_http_request *r = c->req;
  c->request_since_ms = 0;
  if (c->finished) return 0; /* answered already (413, 431) */
  r->method = (enum http_method)p->method;
  r->keep_alive = http_should_keep_alive(p) && !c->srv->closing;
  size_t path_len = strcspn(r->url, "?#");
  memcpy(r->path, r->url, path_len);
  r->path[path_len] = '\0';
  dispatch(c->srv, r);
  /* Parse no further while this request waits for its answer or too many
   * answers wait to be written (resume goes on), nor ever again after an
   * answer that closes. */
  if (c->req || c->finished || c->writes >= PD_HTTP_MAX_WRITES) http_parser_pause(p, 1);
  return 0;
}

/* Paused, a connection is still read (while its request waits for an
 * answer) so that a client who leaves is noticed; what comes meanwhile is
 * kept after the unparsed rest, and reading stops when rbuf is full. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  http_conn *c = h->data;
  (void)suggested;
  if (!c->paused) {
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
    return;
  }
  if (c->pend_off) {
    memmove(c->rbuf, c->rbuf + c->pend_off, c->pend_len);
    c->pend_off = 0;
  }
  *buf = uv_buf_init(c->rbuf + c->pend_len, (unsigned)(sizeof c->rbuf - c->pend_len));
}

static bool rbuf_full(const http_conn *c) {
  return c->pend_off + c->pend_len == sizeof c->rbuf;
}

/* Parses bytes in c->rbuf; a pause keeps the rest for resume. */
static void parse(http_conn *c, const char *data, size_t len) {
  c->in_parse = true;
  size_t done = http_parser_execute(&c->parser, &c->srv->settings, data, len);
  c->in_parse = false;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->closing) return;
  if (e == HPE_PAUSED) {
    if (c->finished) { /* a closing answer: the rest is never read */
      stop_reading(c);
      return;
    }
    c->paused = true;
    c->pend_off = (size_t)(data - c->rbuf) + done;
    c->pend_len = len - done;
    /* too many answers unwritten: read no more (backpressure); a request
     * waiting for its answer: read on until rbuf is full */
    if (c->writes >= PD_HTTP_MAX_WRITES || !c->req || rbuf_full(c)) stop_reading(c);
    return;
  }
  if (c->parser.upgrade || done != len || e != HPE_OK) {
    char msg[160];
    snprintf(msg, sizeof msg, "bad request: %s\n", http_errno_description(e));
    fail_conn(c, 400, msg);
  }
}

/* Parses on (and reads on) once nothing holds the connection back. */
static void resume(http_conn *c) {
  if (c->closing || c->finished || !c->paused || c->in_parse || c->req ||
      c->writes >= PD_HTTP_MAX_WRITES)
    return;
  c->paused = false;
  http_parser_pause(&c->parser, 0);
  size_t off = c->pend_off, len = c->pend_len;
  c->pend_len = 0;
  if (len) parse(c, c->rbuf + off, len);
  if (!c->closing && !c->paused && !c->finished && !c->reading &&
      uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
    c->reading = true;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  http_conn *c = st->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  c->active_ms = uv_now(c->h.handle.loop);
  if (c->paused) { /* kept for resume (on_alloc put it after the rest) */
    c->pend_len += (size_t)nread;
    if (rbuf_full(c)) stop_reading(c);
    return;
  }
  parse(c, buf->base, (size_t)nread);
}

/* ---- accepting ---- */

static void on_connection(pd_listener *l, int status, void *data) {
  pd_http *s = data;
  if (status < 0) return; /* out of descriptors: libuv closed what was waiting */
  http_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = s;
  c->serial = ++s->serials;
  char peer[96];
  int rc = pd_listener_accept(l, &c->h, peer, sizeof peer);
  c->h.handle.data = c;
  pd_link_push(&s->conns, &c->link);
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
      pd_logf(s->log, PD_LOG_WARNING, "%s %s: connection refused: %d open (%s.max_connections)",
              s->what, s->name, s->lim.max_connections, s->settings_name);
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

/* ---- timeouts ---- */

static void on_sweep(uv_timer_t *t) {
  pd_http *s = t->data;
  uint64_t now = uv_now(t->loop);
  for (pd_link *l = s->conns; l; l = l->next) { /* conn_close unlinks later, on close */
    http_conn *c = pd_link_owner(l, http_conn, link);
    if (c->closing) continue;
    if (s->lim.request_timeout_ms && c->request_since_ms && !c->paused && !c->finished &&
        now - c->request_since_ms >= s->lim.request_timeout_ms) {
      fail_conn(c, 408, "request incomplete (limits.frame_timeout_ms)\n");
    } else if (s->lim.idle_timeout_ms && !c->req && c->writes == 0 &&
               now - c->active_ms >= s->lim.idle_timeout_ms) {
      conn_close(c);
    }
  }
}

/* Checks a quarter of the shortest timeout (within 50 ms .. 1 s). */
static void sweep_schedule(pd_http *s) {
  uint64_t shortest = s->lim.request_timeout_ms;
  if (s->lim.idle_timeout_ms && (!shortest || s->lim.idle_timeout_ms < shortest))
    shortest = s->lim.idle_timeout_ms;
  uint64_t period = shortest / 4 < 50 ? 50 : shortest / 4 > 1000 ? 1000 : shortest / 4;
  if (!shortest) period = 0;
  if (period == s->sweep_period_ms) return;
  s->sweep_period_ms = period;
  if (period)
    uv_timer_start(&s->sweep, on_sweep, period, period);
  else
    uv_timer_stop(&s->sweep);
}

static void sweep_closed(uv_handle_t *h) {
  pd_http *s = h->data;
  s->timer_open = false;
  maybe_free_server(s);
}

/* ---- lifetime ---- */

int pd_http_create(uv_loop_t *loop, const char *what, const char *settings,
                   const pd_http_limits *lim, const pd_log *log, pd_http **out, pd_error *err) {
  pd_http *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "%s: out of memory", what);
  s->loop = loop;
  s->lim = *lim;
  if (s->lim.max_connections < 1) s->lim.max_connections = 1;
  s->log = log;
  snprintf(s->what, sizeof s->what, "%s", what);
  snprintf(s->settings_name, sizeof s->settings_name, "%s", settings);
  http_parser_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_header_field = on_header_field;
  s->settings.on_header_value = on_header_value;
  s->settings.on_headers_complete = on_headers_complete;
  s->settings.on_body = on_body;
  s->settings.on_message_complete = on_message_complete;
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  s->timer_open = true;
  sweep_schedule(s);
  *out = s;
  return PD_OK;
}

int pd_http_listen(pd_http *s, const char *address, int fd, pd_error *err) {
  if (s->n_listeners == PD_HTTP_MAX_LISTENERS)
    return pd_error_set(err, PD_ELIMIT, "%s: more than %d listeners", s->what,
                        PD_HTTP_MAX_LISTENERS);
  pd_listener *l = NULL;
  int rc = fd >= 0 ? pd_listener_fd(s->loop, fd, on_connection, s, &l, err)
                   : pd_listener_address(s->loop, address, on_connection, s, &l, err);
  if (rc != PD_OK) {
    pd_error_prefix(err, "%s", s->what);
    return rc;
  }
  if (s->n_listeners == 0) snprintf(s->name, sizeof s->name, "%s", l->name);
  s->listeners[s->n_listeners++] = l;
  return PD_OK;
}

int pd_http_listener_count(const pd_http *h) {
  return h->n_listeners;
}

const char *pd_http_name(const pd_http *h) {
  return h->name;
}

int pd_http_route(pd_http *h, const char *method, const char *path, pd_http_handler fn, void *data,
                  pd_error *err) {
  size_t len = strlen(path);
  if (h->n_routes == PD_HTTP_MAX_ROUTES)
    return pd_error_set(err, PD_ELIMIT, "%s: more than %d routes", h->what, PD_HTTP_MAX_ROUTES);
  route *rt = &h->routes[h->n_routes];
  if (len == 0 || path[0] != '/' || len >= sizeof rt->path ||
      (method && strlen(method) >= sizeof rt->method))
    return pd_error_set(err, PD_EINVAL, "%s: bad route %s %s", h->what, method ? method : "*",
                        path);
  rt->prefix = path[len - 1] == '*';
  rt->len = rt->prefix ? len - 1 : len;
  memcpy(rt->path, path, rt->len);
  rt->path[rt->len] = '\0';
  snprintf(rt->method, sizeof rt->method, "%s", method ? method : "");
  rt->fn = fn;
  rt->data = data;
  h->n_routes++;
  return PD_OK;
}

void pd_http_set_limits(pd_http *h, const pd_http_limits *lim) {
  h->lim = *lim;
  if (h->lim.max_connections < 1) h->lim.max_connections = 1;
  if (h->timer_open) sweep_schedule(h);
}

int pd_http_pending(const pd_http *h) {
  return h->pending;
}

void pd_http_drain(pd_http *h, void (*on_empty)(void *), void *data) {
  h->draining = true;
  h->on_empty = on_empty;
  h->on_empty_data = data;
  if (h->pending == 0 && on_empty) {
    h->on_empty = NULL;
    on_empty(data);
  }
}

void pd_http_close_all(pd_http *h) {
  for (pd_link *l = h->conns; l; l = l->next)
    conn_close(pd_link_owner(l, http_conn, link));
}

void pd_http_close(pd_http *s) {
  if (!s) return;
  s->closing = true;
  s->on_empty = NULL;
  for (int i = 0; i < s->n_listeners; i++)
    pd_listener_close(s->listeners[i]);
  s->n_listeners = 0;
  if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->sweep))
    uv_close((uv_handle_t *)&s->sweep, sweep_closed);
  pd_http_close_all(s);
  maybe_free_server(s);
}

/* ---- the request ---- */

const char *pd_http_request_method(const pd_http_request *r) {
  return http_method_str(r->method);
}

const char *pd_http_request_path(const pd_http_request *r) {
  return r->path;
}

const char *pd_http_request_query(const pd_http_request *r) {
  const char *q = strchr(r->url, '?');
  if (!q) return "";
  return q + 1;
}

const char *pd_http_request_header(const pd_http_request *r, const char *name) {
  for (int i = 0; i < r->n_headers; i++)
    if (!strcasecmp(r->hbuf + r->name_off[i], name))
      return r->value_off[i] == PD_HTTP_NO_VALUE ? "" : r->hbuf + r->value_off[i];
  return NULL;
}

const uint8_t *pd_http_request_body(const pd_http_request *r, size_t *len) {
  *len = r->body_len;
  return r->body;
}

void pd_http_request_on_gone(pd_http_request *r, void (*fn)(pd_http_request *r, void *data),
                             void *data) {
  r->on_gone = fn;
  r->on_gone_data = data;
}

bool pd_http_request_gone(const pd_http_request *r) {
  return r->conn == NULL;
}

uint64_t pd_http_request_conn(const pd_http_request *r) {
  return r->conn ? r->conn->serial : 0;
}
