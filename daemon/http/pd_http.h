/* pd_http: a small routed HTTP/1.1 server (on TCP addresses, Unix sockets
 * or sockets systemd passed). Owns its listeners, its connections and the
 * requests being parsed or waiting for an answer; requests are parsed with
 * http-parser (Debian's libhttp-parser). Handlers are registered by method
 * and path (or path prefix), as h2o's are: /metrics is one (pd_http_metrics.h),
 * the KServe REST front end's /v2/... are others.
 *
 * A handler gets the whole request (headers and a body bounded by
 * limits.max_body) and answers it with pd_http_respond exactly once, at
 * once or later from the loop (after an inference, say). While a request
 * waits for its answer its connection is not parsed further, so pipelined
 * requests are answered in order. A connection that closes meanwhile
 * leaves the request "gone": the handler still answers it (the answer is
 * dropped) and may check pd_http_request_gone to skip work.
 *
 * The server answers itself: no route for the path 404, a route for the
 * path but not the method 405, malformed requests 400 and a close, a body
 * over limits.max_body 413 and a close, too many or too large header fields
 * 431 and a close. Keep-alive is honoured, within the limits below. Every
 * call runs on the loop thread. */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pd_error.h"
#include "pd_log.h"

typedef struct pd_http pd_http;
typedef struct pd_http_request pd_http_request;

/* What clients may cost: connections beyond max_connections are closed at
 * once; a request begun must be complete within request_timeout_ms (else
 * 408 and a close; 0: no limit); a keep-alive connection silent
 * idle_timeout_ms with no request in progress is closed (0: never); a body
 * may hold max_body bytes. A client that pipelines requests without reading
 * the answers is not read while a few answers wait to be written, so it
 * cannot make the daemon buffer without bound. The names are the settings'
 * (for messages): "<settings>.max_connections". */
typedef struct pd_http_limits {
  int max_connections;
  uint64_t request_timeout_ms, idle_timeout_ms;
  size_t max_body;
} pd_http_limits;

/* Answers `req` (now or later). Handlers must not keep `req` after
 * answering it. */
typedef void (*pd_http_handler)(pd_http_request *req, void *data);

/* what: names the server in messages ("metrics"); settings: the prefix of
 * the settings its limits come from ("metrics"). Nothing listens yet. */
int pd_http_create(uv_loop_t *loop, const char *what, const char *settings,
                   const pd_http_limits *lim, const pd_log *log, pd_http **out, pd_error *err);
/* address: "HOST:PORT" or "unix:PATH"; or, with fd >= 0, a listening
 * socket inherited from systemd (address is then ignored). */
int pd_http_listen(pd_http *h, const char *address, int fd, pd_error *err);
int pd_http_listener_count(const pd_http *h);
/* The first listener's description ("tcp:127.0.0.1:9341"; "" before any). */
const char *pd_http_name(const pd_http *h);

/* method: "GET" (answers HEAD too, without the body), "POST", ... or NULL
 * for any. path: "/metrics" matches that path exactly; a path that ends in
 * a star is a prefix: "/v2/" and a star matches every path that begins with
 * "/v2/". The first route that matches wins. */
int pd_http_route(pd_http *h, const char *method, const char *path, pd_http_handler fn, void *data,
                  pd_error *err);

/* New limits apply at once (max_connections to connections accepted from
 * now on). */
void pd_http_set_limits(pd_http *h, const pd_http_limits *lim);
/* Requests handed to handlers and not yet answered. */
int pd_http_pending(const pd_http *h);
/* Draining: on_empty runs once no request waits for its answer (at once if
 * none does). The listeners stay open (a scraper may watch the drain) until
 * pd_http_close. */
void pd_http_drain(pd_http *h, void (*on_empty)(void *), void *data);
/* Closes every connection now (requests waiting for answers become gone). */
void pd_http_close_all(pd_http *h);
/* Closes the listeners and every connection; frees once they are closed
 * and every request handed out is answered (asynchronous, as uv_close). */
void pd_http_close(pd_http *h);

/* ---- the request, for handlers ---- */

const char *pd_http_request_method(const pd_http_request *r); /* "GET" */
const char *pd_http_request_path(const pd_http_request *r);   /* "/v2/models" (no query) */
const char *pd_http_request_query(const pd_http_request *r);  /* after '?', "" if none */
/* A header's value (the first of that name, case-insensitive) or NULL. */
const char *pd_http_request_header(const pd_http_request *r, const char *name);
const uint8_t *pd_http_request_body(const pd_http_request *r, size_t *len);
/* The client closed its connection: the answer will be dropped. */
bool pd_http_request_gone(const pd_http_request *r);
/* fn(r, data) runs once, on the loop, if the request's connection closes
 * before it is answered (the handler still answers it; that answer is
 * dropped): work for it can be dropped. Set by the handler; NULL: none. */
void pd_http_request_on_gone(pd_http_request *r, void (*fn)(pd_http_request *r, void *data),
                             void *data);
/* The request's connection: 1, 2, ... in accept order on this server (a
 * key per connection, e.g. for fair shares); 0 once it is gone. */
uint64_t pd_http_request_conn(const pd_http_request *r);

/* Answers with `status`; `headers` are extra header lines, each ending in
 * "\r\n" ("Content-Type: text/plain\r\n"; NULL: none); `body` is malloc'ed
 * and taken (freed once written; NULL with len 0: no body). Content-Length
 * and Connection are the server's. close: close the connection after this
 * answer (else keep-alive as the client asked). Frees `r`. */
void pd_http_respond(pd_http_request *r, int status, const char *headers, char *body, size_t len,
                     bool close);
/* A text/plain answer of `text` (copied). */
void pd_http_respond_text(pd_http_request *r, int status, const char *text, bool close);

#endif
