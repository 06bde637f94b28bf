/* pd_http: the small HTTP/1.1 server behind GET /metrics (on a TCP address
 * or a Unix socket). Owns its listener and connections; requests are parsed
 * with http-parser (Debian's libhttp-parser). GET or HEAD /metrics answers
 * the text the render callback makes; other paths get 404, other methods
 * 405, malformed requests 400 and a close. Keep-alive is honoured. */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "pd_error.h"
#include "pd_log.h"

typedef struct pd_http pd_http;

/* Returns a malloc'ed body of *len bytes (NULL: 500). */
typedef char *(*pd_http_render_fn)(void *ctx, size_t *len);

/* address: "HOST:PORT" or "unix:PATH"; or, with fd >= 0, a listening
 * socket inherited from systemd (address is then ignored). */
int pd_http_create(uv_loop_t *loop, const char *address, int fd, pd_http_render_fn render,
                   void *ctx, const pd_log *log, pd_http **out, pd_error *err);
/* The listener's description ("tcp:127.0.0.1:9341"). */
const char *pd_http_name(const pd_http *h);
/* Closes the listener and every connection; frees once they are closed. */
void pd_http_close(pd_http *h);

#endif
