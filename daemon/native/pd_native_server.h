/* pd_native_server: the protocol front end (plankton.proto over length-prefixed
 * frames). Owns its listeners and connections, decodes each frame's
 * envelope on the loop, answers Stats, Health and ModelInfo itself and hands
 * Classify requests to the pipeline, whose answers it encodes and writes
 * back on the connection they came from. A bad request gets an error answer
 * and the connection lives on; an oversize or undecodable frame gets an error
 * frame and the connection is closed. Knows nothing of batching or models
 * beyond what pd_pipeline offers: a second front end can sit beside it. */
#ifndef PD_NATIVE_SERVER_H
#define PD_NATIVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pd_log.h"
#include "pd_model_control.h"
#include "pd_pipeline.h"
#include "pd_stats.h"

typedef struct pd_native_server pd_native_server;

typedef struct pd_native_server_limits {
  size_t max_frame; /* bytes of one message */
  int window;       /* answers owed per connection before it stops being read */
  int max_connections;
  bool max_connections_from_fds; /* lowered by the open-file limit (for messages) */
  int default_top_k;
  /* A frame begun must be complete within frame_timeout_ms (else the client
   * gets DEADLINE_EXCEEDED and a close: a slowloris cannot hold a connection
   * and its buffer); a connection silent idle_timeout_ms with nothing owed
   * is closed. 0: no limit. */
  uint64_t frame_timeout_ms, idle_timeout_ms;
  /* Receive buffers of all connections beyond PD_RX_BASE bytes each (see
   * pd_conn.h); at least max_frame. */
  size_t max_receive_bytes;
} pd_native_server_limits;

/* Fills the fields of a stats report the server cannot know (model, queue). */
typedef void (*pd_native_server_report_fn)(void *ctx, pd_stats_report *r);

int pd_native_server_create(uv_loop_t *loop, const pd_native_server_limits *lim,
                            pd_pipeline *pipeline, pd_stats *stats, const pd_log *log,
                            pd_native_server_report_fn report, void *report_ctx,
                            pd_native_server **out, pd_error *err);
/* Where ModelControl requests go (the daemon checks who asks: each carries
 * its connection's peer uid, -1 for TCP); without one they are refused. */
void pd_native_server_set_control(pd_native_server *s, pd_model_control_fn fn, void *ctx);
/* New limits apply to connections accepted from now on (top_k and the
 * timeouts to all). */
void pd_native_server_set_limits(pd_native_server *s, const pd_native_server_limits *lim);

int pd_native_server_listen_unix(pd_native_server *s, const char *path, int mode, const char *group,
                                 pd_error *err);
int pd_native_server_listen_tcp(pd_native_server *s, const char *host_port, pd_error *err);
int pd_native_server_listen_fd(pd_native_server *s, int fd, pd_error *err);
int pd_native_server_listener_count(const pd_native_server *s);
/* Receive-buffer bytes counted against limits.max_receive_bytes now, and how
 * many times a connection had to wait for them. */
void pd_native_server_receive_stats(const pd_native_server *s, uint64_t *bytes, uint64_t *waits);

/* Stops accepting; every connection closes once its answers are written.
 * Connections whose client asked for it (Hello with drain_notices) get a
 * DrainNotice first, counting the requests read there (all answered).
 * New requests meanwhile are answered UNAVAILABLE. on_empty runs when the
 * last connection has closed (at once if there is none). */
void pd_native_server_drain(pd_native_server *s, void (*on_empty)(void *), void *data);
/* Closes every connection now (drain timeout). */
void pd_native_server_close_all(pd_native_server *s);
int pd_native_server_connections(const pd_native_server *s);
/* Closes the listeners and the timer; the server is freed once the timer's
 * handle has closed (asynchronous, as uv_close). Only after drain, once
 * on_empty has run (or before any connection was accepted). */
void pd_native_server_close(pd_native_server *s);

#endif
