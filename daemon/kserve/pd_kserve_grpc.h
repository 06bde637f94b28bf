/* pd_kserve_grpc: the gRPC transport of the KServe front end, and the only
 * module that includes gRPC. Owns a gRPC core server (HTTP/2 and gRPC
 * framing are gRPC's), its completion queue and the one thread that drains
 * it: that thread only dequeues events and hands them to the libuv loop
 * (a mutex-protected queue and a uv_async). Everything else happens on the
 * loop thread: calls are started, request messages handed to the callback,
 * answers sent (grpc_call_start_batch), finished calls freed.
 *
 * Methods are registered by path. A unary method delivers its one request
 * message and waits for pd_kgrpc_finish; a streaming method delivers each
 * request message as it arrives and waits for one pd_kgrpc_stream_reply per
 * message (answers are written in the order they are given), then ends the
 * stream with OK once the client has half-closed and everything is
 * answered. A method not registered is answered UNIMPLEMENTED here.
 *
 * Shutdown: GOAWAY to every connection (no new calls), every call accepted
 * before it still answered (open streams stop reading, answer what they
 * owe and end with UNAVAILABLE), then the done callback. */
#ifndef PD_KSERVE_GRPC_H
#define PD_KSERVE_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pd_error.h"

#define PD_KGRPC_MAX_METHODS 24
#define PD_KGRPC_MAX_LISTEN 4

typedef struct pd_kgrpc pd_kgrpc;
typedef struct pd_kgrpc_call pd_kgrpc_call;

typedef enum pd_kgrpc_kind { PD_KGRPC_UNARY = 0, PD_KGRPC_STREAM = 1 } pd_kgrpc_kind;

typedef struct pd_kgrpc_method {
  const char *path; /* "/inference.GRPCInferenceService/ModelInfer" */
  pd_kgrpc_kind kind;
} pd_kgrpc_method;

/* One request message, on the loop thread. `msg` is borrowed for the call
 * only. `method` indexes the options' method table. */
typedef void (*pd_kgrpc_request_fn)(pd_kgrpc_call *call, int method, const uint8_t *msg, size_t len,
                                    void *data);

/* The client of a call went away (it cancelled, its deadline passed, or its
 * connection broke), on the loop thread, once per call, while the handler
 * still owes it answers: work for the call can be dropped (any answer
 * given later is dropped harmlessly; each is still owed). */
typedef void (*pd_kgrpc_cancel_fn)(pd_kgrpc_call *call, void *data);

typedef struct pd_kgrpc_options {
  const pd_kgrpc_method *methods;
  int n_methods;
  const char *listen[PD_KGRPC_MAX_LISTEN]; /* "HOST:PORT" or "unix:PATH" */
  int n_listen;
  int socket_mode;            /* file mode of a unix: socket (never o+w); 0 = 0660 */
  long max_receive_message;   /* bytes of one request message; larger: RESOURCE_EXHAUSTED */
  int max_concurrent_streams; /* per connection (HTTP/2 SETTINGS) */
  int max_stream_in_flight;   /* a stream stops reading while it owes this many answers */
  long idle_timeout_ms;       /* close a connection without calls this long; 0 = never */
  pd_kgrpc_request_fn on_request;
  pd_kgrpc_cancel_fn on_cancel; /* optional */
  void *data;
} pd_kgrpc_options;

/* Binds every listener and starts serving on `loop`. Errors name the
 * address. */
int pd_kgrpc_start(uv_loop_t *loop, const pd_kgrpc_options *opt, pd_kgrpc **out, pd_error *err);

/* The TCP port listener i got (for "HOST:0"); 0 for a unix: listener. */
int pd_kgrpc_port(const pd_kgrpc *s, int i);

/* Answers a unary call: `code` a gRPC status code; the message `msg` is sent
 * only when code is 0. Exactly once per unary call; the call is gone after. */
void pd_kgrpc_finish(pd_kgrpc_call *call, int code, const char *message, const uint8_t *msg,
                     size_t len);

/* Answers one request message of a stream. Exactly once per message. */
void pd_kgrpc_stream_reply(pd_kgrpc_call *call, const uint8_t *msg, size_t len);

/* The call's deadline on CLOCK_MONOTONIC in ns (0: none). */
uint64_t pd_kgrpc_deadline_ns(const pd_kgrpc_call *call);
/* A key for the call's connection: a hash of the peer's address as gRPC
 * names it (TCP: address and port, so one per connection; every Unix-socket
 * peer is named alike and shares one key); never 0. */
uint64_t pd_kgrpc_conn_key(const pd_kgrpc_call *call);
/* Whether the client went away (an answer is then dropped, harmlessly). */
int pd_kgrpc_cancelled(const pd_kgrpc_call *call);
/* The handler's own pointer per call (NULL until set). */
void pd_kgrpc_set_user(pd_kgrpc_call *call, void *user);
void *pd_kgrpc_user(const pd_kgrpc_call *call);

/* Calls accepted and not yet finished. */
int pd_kgrpc_calls(const pd_kgrpc *s);

/* Starts the drain (see above); `done` runs on the loop once every call is
 * finished and the server, its thread and its handles are gone (`s` is
 * freed then). Call once. */
void pd_kgrpc_shutdown(pd_kgrpc *s, void (*done)(void *data), void *data);

/* Cancels every call still open (the drain's time limit). */
void pd_kgrpc_cancel_all(pd_kgrpc *s);

#endif
