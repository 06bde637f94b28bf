/* pd_http: the small HTTP/1.1 server behind GET /metrics (on a TCP address
 * or a Unix socket). Owns its listener and connections; requests are parsed
 * with http-parser (Debian's libhttp-parser). GET or HEAD /metrics answers
 * the text the render callback makes; other paths get 404, other methods
 * 405, malformed requests 400 and a close. Keep-alive is honoured, within
 * the limits below. */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pd_error.h"
#include "pd_log.h"

typedef struct pd_http pd_http;

/* Returns a malloc'ed body of *len bytes (NULL: 500). */
typedef char *(*pd_http_render_fn)(void *ctx, size_t *len);

/* What one scraper, or many, may cost: connections beyond max_connections
 * are closed at once; a request begun must be complete within
 * request_timeout_ms (else 408 and a close; 0: no limit); a keep-alive
 * connection silent idle_timeout_ms is closed (0: never). A client that
 * pipelines requests without reading the answers is not read while a few
 * answers wait to be written, so it cannot make the daemon buffer without
 * bound. */
typedef struct pd_http_limits {
  int max_connections;
  uint64_t request_timeout_ms, idle_timeout_ms;
} pd_http_limits;

/* address: "HOST:PORT" or "unix:PATH"; or, with fd >= 0, a listening
 * socket inherited from systemd (address is then ignored). */
int pd_http_create(uv_loop_t *loop, const char *address, int fd, const pd_http_limits *lim,
                   pd_http_render_fn render, void *ctx, const pd_log *log, pd_http **out,
                   pd_error *err);
/* The listener's description ("tcp:127.0.0.1:9341"). */
const char *pd_http_name(const pd_http *h);
/* Closes the listener and every connection; frees once they are closed. */
void pd_http_close(pd_http *h);

#endif
