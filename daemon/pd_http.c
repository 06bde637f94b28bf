#include "pd_http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_listener.h"

#define PD_HTTP_URL_MAX 1024

typedef struct http_conn http_conn;

struct pd_http {
  pd_listener *listener;
  pd_http_render_fn render;
  void *ctx;
  const pd_log *log;
  http_parser_settings settings;
  http_conn *conns;
  int n_conns;
  bool closing;
  char name[600];
};

struct http_conn {
  pd_stream h;
  pd_http *srv;
  http_parser parser;
  char url[PD_HTTP_URL_MAX];
  size_t url_len;
  bool url_too_long, closing;
  int writes;
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
  if (s->closing && s->n_conns == 0 && !s->listener) free(s);
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
  if (status < 0 || w->close_after) conn_close(c);
  free(w->head);
  free(w->body);
  free(w);
}

static void respond(http_conn *c, int code, const char *reason, const char *type, char *body,
                    size_t body_len, bool send_body, bool keep_alive) {
  http_write *w = calloc(1, sizeof *w);
  char *head = malloc(512);
  if (!w || !head) {
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

static char *dup_text(const char *s, size_t *len) {
  *len = strlen(s);
  char *d = malloc(*len + 1);
  if (d) memcpy(d, s, *len + 1);
  return d;
}

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
  c->url_len = 0;
  c->url[0] = '\0';
  c->url_too_long = false;
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_conn *c = p->data;
  bool keep = http_should_keep_alive(p) && !c->srv->closing;
  bool head_only = p->method == HTTP_HEAD;
  size_t len = 0;
  const char *plain = "text/plain; charset=utf-8";
  if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
    respond(c, 405, "Method Not Allowed", plain, dup_text("GET or HEAD only\n", &len), len, true,
            keep);
    return 0;
  }
  size_t path_len = strcspn(c->url, "?#");
  if (c->url_too_long || path_len != 8 || strncmp(c->url, "/metrics", 8) != 0) {
    respond(c, 404, "Not Found", plain, dup_text("not found: try /metrics\n", &len), len, true,
            keep);
    return 0;
  }
  char *body = c->srv->render(c->srv->ctx, &len);
  if (!body) {
    respond(c, 500, "Internal Server Error", plain, dup_text("out of memory\n", &len), len, true,
            false);
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

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  http_conn *c = st->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  size_t done = http_parser_execute(&c->parser, &c->srv->settings, buf->base, (size_t)nread);
  if (c->parser.upgrade || done != (size_t)nread || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
    uv_read_stop(st);
    size_t len = 0;
    char msg[160];
    snprintf(msg, sizeof msg, "bad request: %s\n",
             http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
    respond(c, 400, "Bad Request", "text/plain; charset=utf-8", dup_text(msg, &len), len, true,
            false);
  }
}

static void on_connection(pd_listener *l, void *data) {
  pd_http *s = data;
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
  if (rc != 0) {
    conn_close(c);
    return;
  }
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0) conn_close(c);
}

int pd_http_create(uv_loop_t *loop, const char *address, int fd, pd_http_render_fn render,
                   void *ctx, const pd_log *log, pd_http **out, pd_error *err) {
  pd_http *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "metrics: out of memory");
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
  for (http_conn *c = s->conns; c; c = c->next)
    conn_close(c);
  maybe_free_server(s);
}
