/* pd_conn: one client connection of the protocol front end. Owns the
 * stream handle, the frame reassembly buffer, the answers being written and
 * the in-flight window: every request frame owes one answer, and while
 * `window` answers are owed or unwritten the connection stops reading, so a
 * client that pipelines without bound or never reads its answers cannot make
 * the daemon buffer without bound. Frames already buffered wait for room in
 * the window. The connection's memory lives until its handle is closed and
 * the last request holding it (pd_conn_hold) lets go, so answers for a
 * client that left are dropped safely.
 *
 * Receive buffers of all connections together are bounded by a shared
 * pd_rx_budget: each connection may hold PD_RX_BASE bytes freely (every
 * ordinary request fits); beyond that, growing takes budget. A connection
 * that cannot grow waits (stops reading) until memory is freed; its frame
 * clock keeps running, so a silent client holds nothing longer than the
 * frame timeout. So that waiting connections cannot hold each other up for
 * ever, the oldest waiter may overdraw the budget until its frame is in,
 * one connection at a time: memory stays below limit + one maximum frame. */
#ifndef PD_CONN_H
#define PD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd_frame.h"
#include "pd_link.h"
#include "pd_listener.h"

typedef struct pd_conn pd_conn;

#define PD_RX_BASE ((size_t)256 << 10)

typedef struct pd_rx_budget {
  size_t limit; /* bytes beyond PD_RX_BASE per connection, all together */
  size_t used;
  pd_conn *overdraft;             /* the one connection allowed past the limit */
  pd_conn *wait_head, *wait_tail; /* connections waiting for memory, oldest first */
  uint64_t waits;                 /* times a connection had to wait */
} pd_rx_budget;

void pd_rx_budget_init(pd_rx_budget *b, size_t limit);
/* A new limit; waiting connections try again. */
void pd_rx_budget_set_limit(pd_rx_budget *b, size_t limit);
/* Memory an owner keeps beyond a connection's buffers (pd_kept.h) counted
 * in the budget: take refuses (false) what would pass the limit; give hands
 * bytes back and wakes the waiters. */
bool pd_rx_budget_take(pd_rx_budget *b, size_t n);
void pd_rx_budget_give(pd_rx_budget *b, size_t n);
typedef struct pd_conn_handler {
  /* One complete frame. Returns 0 when the frame owes an answer (the handler
   * counted it with pd_conn_expect and will pd_conn_send it, now or later);
   * nonzero after it called pd_conn_fail. */
  int (*on_frame)(pd_conn *c, const uint8_t *msg, size_t len, void *ctx);
  /* A frame longer than the limit: the handler answers with pd_conn_fail. */
  void (*on_oversize)(pd_conn *c, const char *why, void *ctx);
  /* The handle is closed (answers still owed are dropped from now on). */
  void (*on_closed)(pd_conn *c, void *ctx);
  void *ctx;
} pd_conn_handler;

struct pd_conn {
  pd_stream h;
  const pd_conn_handler *handler;
  pd_framer framer;
  int window;
  int owed;   /* answers owed or being written */
  int writes; /* uv_write requests in progress */
  int refs;   /* the handle, holds, writes */
  bool reading, eof, closing, draining, failed;
  pd_rx_budget *budget; /* NULL: no global bound */
  size_t rx_charge;     /* bytes of budget the buffer takes */
  bool rx_blocked;      /* the last alloc was refused for the budget */
  bool rx_waiting;      /* on the budget's wait list */
  pd_conn *rx_next;
  /* loop time (uv_now, ms): since when a frame begun while the connection
   * was being read is waiting for its remaining bytes (0: none), and of the
   * last byte read or answer written; the owner's timeouts use both */
  uint64_t frame_since_ms, active_ms;
  uint64_t serial;
  uint64_t frames_read; /* frames handed to on_frame (each owes an answer) */
  /* the owner's: the client asked for a drain notice (Hello), and got it */
  bool drain_notices, drain_noticed;
  struct pd_kept_set *kept; /* the owner's: backgrounds kept by name (pd_kept.h); NULL: none */
  char peer[96];
  long peer_uid; /* a Unix-socket peer's uid (SO_PEERCRED); -1: TCP or unknown */
  pd_link link;  /* in the owner's list */
};

/* Takes an accepted, initialised stream: c->h must already be set up (see
 * pd_listener_accept). Starts reading. budget may be NULL. */
void pd_conn_start(pd_conn *c, const pd_conn_handler *h, size_t max_frame, int window,
                   uint64_t serial, pd_rx_budget *budget);

/* Counts one answer owed (call for every frame that gets one). */
void pd_conn_expect(pd_conn *c);
/* Sends one owed answer: frame[len] is malloc'ed and taken over. On a
 * closed connection it is dropped. */
void pd_conn_send(pd_conn *c, uint8_t *frame, size_t len);
/* Sends frame (taken over; not an owed answer: a notice the client did not
 * ask for) in order with the answers; dropped on a closed connection. */
void pd_conn_notify(pd_conn *c, uint8_t *frame, size_t len);
/* Sends frame (taken over, not an owed answer; may be NULL), then closes. */
void pd_conn_fail(pd_conn *c, uint8_t *frame, size_t len);
/* Closes now; answers still owed will be dropped. */
void pd_conn_close(pd_conn *c);
/* Close once nothing is owed (shutdown): the handler answers new frames
 * itself in the meantime. */
void pd_conn_drain(pd_conn *c);

/* Bytes of an incomplete frame (or of frames waiting for the window). */
size_t pd_conn_pending(const pd_conn *c);

void pd_conn_hold(pd_conn *c);
void pd_conn_release(pd_conn *c);
bool pd_conn_open(const pd_conn *c);

#endif
