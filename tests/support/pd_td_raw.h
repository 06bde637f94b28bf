/* pd_td_raw: raw-socket helpers for the hostile-client, fault and security
 * tests, where an attack needs bytes the client library would never send:
 * connect without the library, write frames whole or a byte at a time,
 * read one answer frame with a timeout, tell whether the daemon closed the
 * connection, encode a Classify/Health request frame, read the daemon's
 * /proc figures (RSS, open descriptors) and GET /metrics over a Unix
 * socket. */
#ifndef PD_TD_RAW_H
#define PD_TD_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plankton.pb-c.h"

/* A blocking Unix stream socket connected to path, or -1. */
int pd_raw_connect(const char *path);
/* Writes everything (MSG_NOSIGNAL); 0 or -1. */
int pd_raw_write(int fd, const void *buf, size_t len);
/* Reads one frame into buf[cap] within timeout_ms: the body length, or -1
 * (timeout, close, or a frame longer than cap). */
long pd_raw_read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms);
/* One frame decoded as a Response (NULL: none within the timeout). */
Plankton__Response *pd_raw_read_response(int fd, int timeout_ms);
/* True when the peer closes within timeout_ms (what arrives is dropped). */
bool pd_raw_closed(int fd, int timeout_ms);
/* True when nothing arrives and the peer has not closed (a quick poll). */
bool pd_raw_quiet_open(int fd);
/* One answer, then the close: true when the answer is an ErrorResponse with
 * `status` (and `needle` in its message unless NULL) and the peer closes,
 * each within timeout_ms; else says on stderr what came instead. */
bool pd_raw_error_then_close(int fd, int status, const char *needle, int timeout_ms);
/* Sends msg (len bytes) again and again without blocking until the socket
 * stays full for quiet_ms (the peer stopped reading: *blocked true), `max`
 * whole messages went (0: no cap), bound_ms passed or a send failed.
 * Returns the whole messages sent. */
long pd_raw_fill(int fd, const void *msg, size_t len, long max, int quiet_ms, int bound_ms,
                 bool *blocked);

/* Frames (4-byte header included; malloc'ed, *len bytes): any request, a
 * Classify of n bytes in `format` (a Plankton__ImageFormat), a Health. */
uint8_t *pd_raw_request_frame(const Plankton__Request *rq, size_t *len);
uint8_t *pd_raw_classify_frame(uint64_t id, int format, const void *data, size_t n, size_t *len);
uint8_t *pd_raw_health_frame(uint64_t id, size_t *len);

/* The daemon's resident set (kB) and open descriptors, from /proc; -1 if unknown. */
long pd_raw_rss_kb(pid_t pid);
int pd_raw_open_fds(pid_t pid);

/* GET /metrics over a Unix socket: the body (malloc'ed) or NULL. */
char *pd_raw_metrics(const char *unix_path);
/* The value of a metric line "NAME VALUE" (name with labels as written),
 * or -1 when absent. */
double pd_raw_metric(const char *text, const char *name);

/* Raises RLIMIT_NOFILE's soft limit to at least n (up to the hard limit);
 * returns the soft limit now in force. */
long pd_raw_raise_nofile(long n);

#endif
