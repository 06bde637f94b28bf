/* pc_client_internal: what the client's files share and callers never see:
 * the connection state, the answer queue and the protobuf conversions. */
#ifndef PC_CLIENT_INTERNAL_H
#define PC_CLIENT_INTERNAL_H

#include "plankton.pb-c.h"
#include "plankton_client.h"

#define PC_CLIENT_HEADER 4

/* One request not yet answered, kept for resending (retry policy only). */
typedef struct pc_client__owed {
  pc_client_response_kind kind;
  uint64_t id;
  uint8_t *frame; /* header + body, as written */
  size_t len;
  int state;      /* PC_CLIENT__OWED_* */
  bool was_sent;  /* written on some connection before (a later write is a resend) */
  bool first;     /* its write on the current connection is its first */
  uint64_t order; /* its write position on the current connection */
} pc_client__owed;

enum {
  PC_CLIENT__OWED_QUEUED = 0, /* not on the current connection: written after the next connect */
  PC_CLIENT__OWED_SENT,       /* written on the current connection, its answer awaited there */
};

enum {
  PC_CLIENT__UP = 0, /* connected (fd is the socket) */
  PC_CLIENT__PAUSE,  /* between attempts: fd is the timer */
  PC_CLIENT__DOWN,   /* lost with nothing owed: the next send connects */
};

/* The retry policy's state (pc_client_retry.c). */
typedef struct pc_client__retry {
  bool on;
  pc_client_retry_policy policy;
  int link;            /* PC_CLIENT__UP / PAUSE / DOWN */
  int timer_fd;        /* timerfd for PAUSE */
  bool draining;       /* the current connection takes no new request */
  uint64_t drain_keep; /* drain notice: the daemon answers the first drain_keep writes */
  bool no_retry;       /* the daemon refused our bytes: fail as without retries */
  bool hello_pending;  /* our Hello (write 0 here) is not answered yet */
  pc_client__owed *owed;
  size_t n_owed, cap_owed;
  size_t n_sent;             /* owed entries in state SENT */
  uint64_t writes;           /* requests written on the current connection */
  long long outage_start_ms; /* 0: no outage */
  long long next_attempt_ms;
  int attempts; /* in this outage */
  int last_code;
  char reason[300];      /* why the last connection or attempt failed */
  char conn_reason[300]; /* what the daemon said on the current connection */
  uint64_t rng;
  pc_client_retry_counters n;
} pc_client__retry;

struct pc_client {
  int fd;
  char *address;
  pc_client_options opt;
  uint8_t *out; /* bytes to write: out[out_off .. out_len) */
  size_t out_off, out_len, out_cap;
  uint8_t *in; /* bytes read, not yet whole frames */
  size_t in_len, in_cap;
  int in_flight;
  pc_client_response *ready_head, *ready_tail;
  int failed; /* a PC_CLIENT_E* once the connection is unusable */
  char failed_msg[400];
  uint64_t next_id; /* ids of the blocking stats/health/model calls */
  pc_client__retry retry;
};

/* Sets err (if any) and returns code. */
int pc_client__fail(pc_client_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frames and queues one request; counts it in flight. */
int pc_client__queue(pc_client *c, const Plankton__Request *rq, pc_client_error *err);

/* Decodes one Response frame body into a public response (NULL: not a Response or out of memory;
 * *oom says which). */
pc_client_response *pc_client__decode(const uint8_t *msg, size_t len, int *oom);
pc_client_response *pc_client__response_next(pc_client_response *r);
void pc_client__response_set_next(pc_client_response *r, pc_client_response *next);

/* Kind of the decoded drain notice (never handed to the caller); its id is
 * the count of requests the daemon read on the connection, our Hello
 * included, and will answer. */
#define PC_CLIENT__RESPONSE_DRAIN ((pc_client_response_kind)100)
/* Kind of the decoded HelloResponse (never handed to the caller either). */
#define PC_CLIENT__RESPONSE_HELLO ((pc_client_response_kind)101)

/* A response made by the library (no message behind it): the owed request's
 * kind and id, a status and a copy of msg. NULL when out of memory. */
pc_client_response *pc_client__synth(pc_client_response_kind kind, uint64_t id, int status,
                                     const char *msg);

/* Opens a connection to address (non-blocking socket). */
int pc_client__open(const char *address, int timeout_ms, int *fd, pc_client_error *err);

/* The connection is unusable: closes it and marks the client failed. */
int pc_client__broken(pc_client *c, pc_client_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends bytes to the output queue (no write). */
int pc_client__append(pc_client *c, const uint8_t *bytes, size_t len);
/* Writes what it can of the output queue. */
int pc_client__flush(pc_client *c, pc_client_error *err);
void pc_client__push_ready(pc_client *c, pc_client_response *r);

/* ---- the retry policy (pc_client_retry.c) ---- */

/* A request framed in frame[0..len): records it as owed and writes it when
 * the connection takes requests. */
int pc_client__retry_queue(pc_client *c, pc_client_response_kind kind, uint64_t id,
                           const uint8_t *frame, size_t len, pc_client_error *err);
/* An answer decoded: hands it out (pushes it ready), or keeps the request
 * owed (UNAVAILABLE, a drain notice), or drops it (not owed). */
void pc_client__retry_answer(pc_client *c, pc_client_response *r);
/* The connection failed with code/msg: schedules a reconnect (PC_CLIENT_OK)
 * or gives up (the error, every owed request answered once). */
int pc_client__retry_lost(pc_client *c, int code, const char *msg, pc_client_error *err);
/* pc_client_process's part while paused or draining: attempts when due,
 * closes a drained connection. */
int pc_client__retry_step(pc_client *c, pc_client_error *err);
void pc_client__retry_free(pc_client *c);

/* Unlinks and returns the first queued answer of this kind and id, or NULL. */
pc_client_response *pc_client__take(pc_client *c, pc_client_response_kind kind, uint64_t id);

#endif
