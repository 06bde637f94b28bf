#include "pd_kserve_grpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

/* What a completion-queue tag stands for; each tag is embedded in the
 * struct it belongs to. */
typedef enum tag_kind {
  TAG_REQUEST,  /* a request slot got a new call */
  TAG_RECV,     /* a stream's RECV_MESSAGE (with the first: SEND_INITIAL_METADATA) */
  TAG_WRITE,    /* a stream's SEND_MESSAGE */
  TAG_STATUS,   /* the answer: SEND_STATUS_FROM_SERVER (unary: with the message) */
  TAG_CLOSE,    /* RECV_CLOSE_ON_SERVER: the call is over */
  TAG_SHUTDOWN, /* grpc_server_shutdown_and_notify */
} tag_kind;

typedef struct tag {
  tag_kind kind;
  void *owner;
} tag;

typedef struct out_msg {
  struct out_msg *next;
  grpc_byte_buffer *bb;
} out_msg;

/* Calls requested from gRPC core per method at all times. A call that
 * arrives finds one of them waiting and is the daemon's at once; one that
 * arrives while none waits sits in gRPC's own queue until the loop asks
 * again, and at shutdown gRPC core cancels those (CANCELLED, though the
 * client sent them before the GOAWAY). So: as many as calls are likely to
 * arrive in one turn of the loop. */
#define PD_KGRPC_SLOTS 32

typedef struct req_slot {
  tag t;
  int method; /* index into the method table; -1: the generic slot (unknown methods) */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details;
} req_slot;

struct pd_kgrpc_call {
  pd_kgrpc *srv;
  grpc_call *call;
  int method; /* -1: unknown */
  pd_kgrpc_kind kind;
  uint64_t deadline_ns;
  uint64_t conn_key; /* the peer's address, hashed (pd_kgrpc_conn_key) */
  void *user;
  int refs; /* batches started and not completed, plus answers owed by the handler */
  tag t_recv, t_write, t_status, t_close;
  int close_cancelled;
  bool dead;        /* cancelled or broken: nothing more is sent */
  bool finishing;   /* the status batch was started */
  bool md_sent;     /* stream: initial metadata went with the first read */
  bool reading;     /* stream: a RECV_MESSAGE is pending */
  bool half_closed; /* stream: the client sends no more */
  bool sending;     /* stream: a SEND_MESSAGE is pending */
  int owed;         /* stream: messages delivered and not answered */
  grpc_byte_buffer *recv_bb;
  grpc_byte_buffer *send_bb; /* the message being sent (stream write or unary answer) */
  grpc_slice status_details;
  bool has_details;
  out_msg *q_head, *q_tail;
  pd_kgrpc_call *prev, *next;
};

typedef struct cq_event {
  void *tag; /* NULL: the completion-queue thread is done */
  int ok;
} cq_event;

struct pd_kgrpc {
  uv_loop_t *loop;
  pd_kgrpc_options opt;
  pd_kgrpc_method methods[PD_KGRPC_MAX_METHODS];
  void *registered[PD_KGRPC_MAX_METHODS];
  /* PD_KGRPC_SLOTS per method, then as many generic ones (unknown methods) */
  req_slot slots[(PD_KGRPC_MAX_METHODS + 1) * PD_KGRPC_SLOTS];
  int n_slots;
  int slots_armed;
  int ports[PD_KGRPC_MAX_LISTEN];
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  bool thread_started;
  uv_async_t async;
  pthread_mutex_t mu;
  cq_event *ev;
  size_t n_ev, cap_ev;
  pd_kgrpc_call *calls;
  int n_calls;
  bool draining, shutdown_notified, server_destroyed, cq_done;
  tag t_shutdown;
  void (*done)(void *data);
  void *done_data;
};

/* FNV-1a of the peer gRPC names ("ipv4:127.0.0.1:50412": one per TCP
 * connection), never 0. */
static uint64_t peer_key(grpc_call *call) {
  char *peer = grpc_call_get_peer(call);
  uint64_t h = 14695981039346656037u;
  for (const char *p = peer ? peer : ""; *p; p++) {
    h ^= (unsigned char)*p;
    h *= 1099511628211u;
  }
  gpr_free(peer);
  return h ? h : 1;
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the completion-queue thread: dequeue, hand over, nothing else ---- */

static void push_event(pd_kgrpc *s, void *t, int ok) {
  pthread_mutex_lock(&s->mu);
  while (s->n_ev == s->cap_ev) {
    size_t cap = s->cap_ev ? s->cap_ev * 2 : 256;
    cq_event *grown = realloc(s->ev, cap * sizeof *grown);
    if (grown) {
      s->ev = grown;
      s->cap_ev = cap;
      break;
    }
    /* out of memory: the loop frees some as it works; try again shortly */
    pthread_mutex_unlock(&s->mu);
    usleep(1000);
    pthread_mutex_lock(&s->mu);
  }
  s->ev[s->n_ev].tag = t;
  s->ev[s->n_ev].ok = ok;
  s->n_ev++;
  pthread_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

static void *cq_main(void *arg) {
  pd_kgrpc *s = arg;
  for (;;) {
    grpc_event e = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (e.type == GRPC_QUEUE_SHUTDOWN) break;
    if (e.type == GRPC_OP_COMPLETE) push_event(s, e.tag, e.success);
  }
  push_event(s, NULL, 0);
  return NULL;
}

/* ---- loop thread ---- */

static void arm_slot(pd_kgrpc *s, req_slot *r) {
  if (s->draining) return;
  r->call = NULL;
  r->payload = NULL;
  grpc_metadata_array_init(&r->md);
  grpc_call_error e;
  if (r->method >= 0) {
    e = grpc_server_request_registered_call(
        s->server, s->registered[r->method], &r->call, &r->deadline, &r->md,
        s->methods[r->method].kind == PD_KGRPC_UNARY ? &r->payload : NULL, s->cq, s->cq, &r->t);
  } else {
    grpc_call_details_init(&r->details);
    e = grpc_server_request_call(s->server, &r->call, &r->details, &r->md, s->cq, s->cq, &r->t);
  }
  if (e == GRPC_CALL_OK)
    s->slots_armed++;
  else
    grpc_metadata_array_destroy(&r->md);
}

static void maybe_finish_server(pd_kgrpc *s);

static void call_unref(pd_kgrpc_call *c) {
  if (--c->refs > 0) return;
  pd_kgrpc *s = c->srv;
  if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
  if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
  if (c->has_details) grpc_slice_unref(c->status_details);
  for (out_msg *m = c->q_head; m;) {
    out_msg *n = m->next;
    grpc_byte_buffer_destroy(m->bb);
    free(m);
    m = n;
  }
  grpc_call_unref(c->call);
  if (c->prev)
    c->prev->next = c->next;
  else
    s->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_calls--;
  free(c);
  maybe_finish_server(s);
}

static grpc_call_error start(pd_kgrpc_call *c, const grpc_op *ops, size_t n, tag *t) {
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
  if (e == GRPC_CALL_OK) c->refs++;
  return e;
}

static void start_status(pd_kgrpc_call *c, int code, const char *message, grpc_byte_buffer *bb) {
  grpc_op ops[3];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (!c->md_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    c->md_sent = true;
  }
  if (bb) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    c->send_bb = bb;
  }
  c->status_details = grpc_slice_from_copied_string(message ? message : "");
  c->has_details = true;
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.trailing_metadata_count = 0;
  ops[n].data.send_status_from_server.status = (grpc_status_code)code;
  ops[n].data.send_status_from_server.status_details = &c->status_details;
  n++;
  c->finishing = true;
  if (start(c, ops, n, &c->t_status) != GRPC_CALL_OK) c->dead = true;
}

static void start_read(pd_kgrpc_call *c) {
  grpc_op ops[2];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (!c->md_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    n++;
    c->md_sent = true;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &c->recv_bb;
  n++;
  c->recv_bb = NULL;
  if (start(c, ops, n, &c->t_recv) == GRPC_CALL_OK)
    c->reading = true;
  else
    c->dead = true;
}

static void start_write(pd_kgrpc_call *c) {
  out_msg *m = c->q_head;
  c->q_head = m->next;
  if (!c->q_head) c->q_tail = NULL;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = m->bb;
  c->send_bb = m->bb;
  free(m);
  if (start(c, &op, 1, &c->t_write) == GRPC_CALL_OK)
    c->sending = true;
  else
    c->dead = true;
}

/* A stream's next step: write what is queued, read on while it owes less
 * than its limit, end it when nothing more will come or go. */
static void stream_progress(pd_kgrpc_call *c) {
  if (c->dead || c->finishing) return;
  if (!c->sending && c->q_head) start_write(c);
  if (c->dead) return;
  if (!c->reading && !c->half_closed && !c->srv->draining &&
      c->owed < c->srv->opt.max_stream_in_flight)
    start_read(c);
  if (c->dead) return;
  /* the end: the client is done, or the drain (a pending read then
   * completes empty) */
  if ((c->half_closed || c->srv->draining) && c->owed == 0 && !c->sending && !c->q_head) {
    if (c->half_closed)
      start_status(c, GRPC_STATUS_OK, "", NULL);
    else
      start_status(c, GRPC_STATUS_UNAVAILABLE, "planktond is draining; reconnect to another server",
                   NULL);
  }
}

static int read_all(grpc_byte_buffer *bb, grpc_slice *out) {
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) return -1;
  *out = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  return 0;
}

static void deliver(pd_kgrpc_call *c, grpc_byte_buffer *bb) {
  grpc_slice sl;
  if (read_all(bb, &sl) != 0) {
    grpc_byte_buffer_destroy(bb);
    if (c->kind == PD_KGRPC_UNARY) {
      pd_kgrpc_finish(c, GRPC_STATUS_INTERNAL, "the request message could not be read", NULL, 0);
    } else {
      c->dead = true;
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL,
                                   "a request message could not be read", NULL);
    }
    return;
  }
  grpc_byte_buffer_destroy(bb);
  if (c->kind == PD_KGRPC_STREAM) {
    c->owed++;
    c->refs++;
  }
  pd_kgrpc *s = c->srv;
  s->opt.on_request(c, c->method, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), s->opt.data);
  grpc_slice_unref(sl);
}

static uint64_t deadline_of(gpr_timespec d) {
  if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0) return 0;
  gpr_timespec rem = gpr_time_sub(d, gpr_now(d.clock_type));
  uint64_t now = mono_ns();
  if (rem.tv_sec < 0) return now;
  return now + (uint64_t)rem.tv_sec * 1000000000u + (uint64_t)rem.tv_nsec;
}

static void on_new_call(pd_kgrpc *s, req_slot *r, int ok) {
  s->slots_armed--;
  grpc_call *call = r->call;
  grpc_byte_buffer *payload = r->payload;
  gpr_timespec deadline = r->method >= 0 ? r->deadline : r->details.deadline;
  grpc_metadata_array_destroy(&r->md);
  if (r->method < 0) grpc_call_details_destroy(&r->details);
  r->call = NULL;
  r->payload = NULL;
  if (!ok || !call) {
    if (payload) grpc_byte_buffer_destroy(payload);
    if (call) grpc_call_unref(call);
    maybe_finish_server(s);
    return;
  }
  arm_slot(s, r);

  pd_kgrpc_call *c = calloc(1, sizeof *c);
  if (!c) {
    if (payload) grpc_byte_buffer_destroy(payload);
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    return;
  }
  c->srv = s;
  c->call = call;
  c->method = r->method;
  c->kind = r->method >= 0 ? s->methods[r->method].kind : PD_KGRPC_UNARY;
  c->deadline_ns = deadline_of(deadline);
  c->conn_key = peer_key(call);
  c->t_recv = (tag){TAG_RECV, c};
  c->t_write = (tag){TAG_WRITE, c};
  c->t_status = (tag){TAG_STATUS, c};
  c->t_close = (tag){TAG_CLOSE, c};
  c->next = s->calls;
  if (s->calls) s->calls->prev = c;
  s->calls = c;
  s->n_calls++;
  c->refs = 1; /* held until this function is done with it */

  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  if (start(c, &op, 1, &c->t_close) != GRPC_CALL_OK) c->dead = true;

  if (c->method < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "planktond does not serve this method");
    start_status(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
  } else if (c->kind == PD_KGRPC_UNARY) {
    if (!payload) {
      start_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the call carried no request message", NULL);
    } else {
      c->refs++; /* the answer the handler owes */
      deliver(c, payload);
    }
  } else {
    stream_progress(c);
  }
  call_unref(c);
}

static void on_recv(pd_kgrpc_call *c, int ok) {
  c->reading = false;
  grpc_byte_buffer *bb = c->recv_bb;
  c->recv_bb = NULL;
  if (!ok || !bb) {
    if (bb) grpc_byte_buffer_destroy(bb);
    c->half_closed = true;
  } else if (c->finishing || c->dead) {
    grpc_byte_buffer_destroy(bb); /* came in after the stream was ended */
  } else {
    deliver(c, bb);
  }
  stream_progress(c);
  call_unref(c);
}

static void on_write(pd_kgrpc_call *c, int ok) {
  c->sending = false;
  if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
  c->send_bb = NULL;
  if (!ok) c->dead = true;
  stream_progress(c);
  call_unref(c);
}

static void on_event(pd_kgrpc *s, void *t, int ok) {
  tag *tg = t;
  switch (tg->kind) {
  case TAG_REQUEST:
    on_new_call(s, tg->owner, ok);
    break;
  case TAG_RECV:
    on_recv(tg->owner, ok);
    break;
  case TAG_WRITE:
    on_write(tg->owner, ok);
    break;
  case TAG_STATUS: {
    pd_kgrpc_call *c = tg->owner;
    if (!ok) c->dead = true;
    call_unref(c);
    break;
  }
  case TAG_CLOSE: {
    pd_kgrpc_call *c = tg->owner;
    if (c->close_cancelled) {
      c->dead = true;
      /* refs beyond this batch's own: answers the handler still owes */
      if (c->refs > 1 && !c->finishing && s->opt.on_cancel) s->opt.on_cancel(c, s->opt.data);
    }
    call_unref(c);
    break;
  }
  case TAG_SHUTDOWN:
    s->shutdown_notified = true;
    maybe_finish_server(s);
    break;
  }
}

static void free_server(pd_kgrpc *s) {
  free(s->ev);
  pthread_mutex_destroy(&s->mu);
  void (*done)(void *) = s->done;
  void *data = s->done_data;
  free(s);
  grpc_shutdown();
  if (done) done(data);
}

static void on_async_closed(uv_handle_t *h) {
  free_server(h->data);
}

static void on_async(uv_async_t *a) {
  pd_kgrpc *s = a->data;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    cq_event *batch = s->ev;
    size_t n = s->n_ev;
    s->ev = NULL;
    s->n_ev = 0;
    s->cap_ev = 0;
    pthread_mutex_unlock(&s->mu);
    if (n == 0) {
      free(batch);
      return;
    }
    bool thread_done = false;
    for (size_t i = 0; i < n; i++) {
      if (!batch[i].tag)
        thread_done = true;
      else
        on_event(s, batch[i].tag, batch[i].ok);
    }
    free(batch);
    if (thread_done) {
      pthread_join(s->thread, NULL);
      s->thread_started = false;
      grpc_completion_queue_destroy(s->cq);
      s->cq = NULL;
      uv_close((uv_handle_t *)&s->async, on_async_closed);
      return;
    }
  }
}

/* After the drain: once grpc says shutdown is complete, every call is freed
 * and every request slot returned, the server and the queue go. */
static void maybe_finish_server(pd_kgrpc *s) {
  if (!s->draining || !s->shutdown_notified || s->n_calls > 0 || s->slots_armed > 0 ||
      s->server_destroyed)
    return;
  s->server_destroyed = true;
  grpc_server_destroy(s->server);
  s->server = NULL;
  grpc_completion_queue_shutdown(s->cq);
}

/* A socket file at `path` that a live server still answers on is not ours
 * to take (gRPC would unlink and replace it). */
static int unix_path_in_use(const char *path) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a.sun_path) return 0;
  memcpy(a.sun_path, path, strlen(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int live = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return live;
}

static int add_listener(pd_kgrpc *s, int i, const char *addr, pd_error *err) {
  const char *path = strncmp(addr, "unix:", 5) == 0 ? addr + 5 : NULL;
  if (path) {
    if (!*path) return pd_error_set(err, PD_EINVAL, "gRPC listener \"%s\": empty path", addr);
    if (unix_path_in_use(path))
      return pd_error_set(err, PD_EINVAL,
                          "gRPC listener %s: a server is already listening there; stop it or "
                          "choose another path",
                          addr);
  } else if (!strchr(addr, ':')) {
    return pd_error_set(err, PD_EINVAL, "gRPC listener \"%s\": want HOST:PORT or unix:PATH", addr);
  }
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0)
    return pd_error_set(err, PD_EIO,
                        "gRPC listener %s: cannot bind (in use, no such address or no "
                        "permission)",
                        addr);
  if (path) {
    int mode = s->opt.socket_mode ? s->opt.socket_mode : 0660;
    if (chmod(path, (mode_t)mode) != 0)
      return pd_error_set(err, PD_EIO, "gRPC listener %s: chmod %o: %s", addr, mode,
                          strerror(errno));
    port = 0;
  }
  s->ports[i] = port;
  return PD_OK;
}

int pd_kgrpc_start(uv_loop_t *loop, const pd_kgrpc_options *opt, pd_kgrpc **out, pd_error *err) {
  *out = NULL;
  if (opt->n_methods < 0 || opt->n_methods > PD_KGRPC_MAX_METHODS || !opt->on_request)
    return pd_error_set(err, PD_EINVAL, "gRPC server: %d methods (at most %d) and a callback",
                        opt->n_methods, PD_KGRPC_MAX_METHODS);
  if (opt->n_listen < 1 || opt->n_listen > PD_KGRPC_MAX_LISTEN)
    return pd_error_set(err, PD_EINVAL, "gRPC server: %d listeners (1 to %d)", opt->n_listen,
                        PD_KGRPC_MAX_LISTEN);
  if (opt->socket_mode & 02)
    return pd_error_set(err, PD_EINVAL, "gRPC socket mode %o is world-writable; use 0660",
                        opt->socket_mode);
  pd_kgrpc *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "gRPC server: out of memory");
  s->loop = loop;
  s->opt = *opt;
  if (s->opt.max_stream_in_flight < 1) s->opt.max_stream_in_flight = 1;
  memcpy(s->methods, opt->methods, (size_t)opt->n_methods * sizeof *s->methods);
  s->opt.methods = s->methods;
  s->t_shutdown = (tag){TAG_SHUTDOWN, s};
  pthread_mutex_init(&s->mu, NULL);
  grpc_init();

  grpc_arg args[5];
  int na = 0;
  memset(args, 0, sizeof args);
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[na++].value.integer =
      opt->max_receive_message > 0x7fffffff
          ? 0x7fffffff
          : (int)(opt->max_receive_message > 0 ? opt->max_receive_message : 4 << 20);
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_MAX_CONCURRENT_STREAMS;
  args[na++].value.integer = opt->max_concurrent_streams > 0 ? opt->max_concurrent_streams : 100;
  /* two daemons on one port would split the connections silently */
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
  args[na++].value.integer = 0;
  if (opt->idle_timeout_ms > 0) {
    args[na].type = GRPC_ARG_INTEGER;
    args[na].key = (char *)GRPC_ARG_MAX_CONNECTION_IDLE_MS;
    args[na++].value.integer =
        opt->idle_timeout_ms > 0x7fffffff ? 0x7fffffff : (int)opt->idle_timeout_ms;
  }
  grpc_channel_args cargs = {(size_t)na, args};
  s->server = grpc_server_create(&cargs, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  for (int i = 0; i < opt->n_methods; i++) {
    s->registered[i] = grpc_server_register_method(s->server, opt->methods[i].path, NULL,
                                                   opt->methods[i].kind == PD_KGRPC_UNARY
                                                       ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                                       : GRPC_SRM_PAYLOAD_NONE,
                                                   0);
  }
  int rc = PD_OK;
  for (int i = 0; i < opt->n_listen && rc == PD_OK; i++)
    rc = add_listener(s, i, opt->listen[i], err);
  if (rc != PD_OK) {
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    pthread_mutex_destroy(&s->mu);
    free(s);
    grpc_shutdown();
    return rc;
  }
  uv_async_init(loop, &s->async, on_async);
  s->async.data = s;
  grpc_server_start(s->server);
  if (pthread_create(&s->thread, NULL, cq_main, s) != 0) {
    /* without the thread nothing completes: stop at once */
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);
    grpc_server_cancel_all_calls(s->server);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    s->cq = NULL;
    uv_close((uv_handle_t *)&s->async, on_async_closed);
    return pd_error_set(err, PD_ENOMEM, "gRPC server: cannot start its thread");
  }
  s->thread_started = true;
  pthread_setname_np(s->thread, "kserve-cq"); /* for top and bench/kserve's CPU accounting */
  s->n_slots = (opt->n_methods + 1) * PD_KGRPC_SLOTS;
  for (int i = 0; i < s->n_slots; i++) {
    req_slot *r = &s->slots[i];
    r->t = (tag){TAG_REQUEST, r};
    r->method = i / PD_KGRPC_SLOTS < opt->n_methods ? i / PD_KGRPC_SLOTS : -1;
    arm_slot(s, r);
  }
  *out = s;
  return PD_OK;
}

int pd_kgrpc_port(const pd_kgrpc *s, int i) {
  return i >= 0 && i < s->opt.n_listen ? s->ports[i] : 0;
}

static grpc_byte_buffer *make_bb(const uint8_t *msg, size_t len) {
  grpc_slice sl = grpc_slice_from_copied_buffer((const char *)msg, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

void pd_kgrpc_finish(pd_kgrpc_call *c, int code, const char *message, const uint8_t *msg,
                     size_t len) {
  if (!c->dead && !c->finishing)
    start_status(c, code, message, code == 0 ? make_bb(msg, len) : NULL);
  call_unref(c); /* the answer owed */
}

void pd_kgrpc_stream_reply(pd_kgrpc_call *c, const uint8_t *msg, size_t len) {
  c->owed--;
  if (!c->dead && !c->finishing) {
    out_msg *m = malloc(sizeof *m);
    if (m) {
      m->next = NULL;
      m->bb = make_bb(msg, len);
      if (c->q_tail)
        c->q_tail->next = m;
      else
        c->q_head = m;
      c->q_tail = m;
    } else {
      c->dead = true;
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "out of memory for an answer", NULL);
    }
    stream_progress(c);
  }
  call_unref(c);
}

uint64_t pd_kgrpc_deadline_ns(const pd_kgrpc_call *c) {
  return c->deadline_ns;
}

uint64_t pd_kgrpc_conn_key(const pd_kgrpc_call *c) {
  return c->conn_key;
}

int pd_kgrpc_cancelled(const pd_kgrpc_call *c) {
  return c->dead;
}

void pd_kgrpc_set_user(pd_kgrpc_call *c, void *user) {
  c->user = user;
}

void *pd_kgrpc_user(const pd_kgrpc_call *c) {
  return c->user;
}

int pd_kgrpc_calls(const pd_kgrpc *s) {
  return s->n_calls;
}

void pd_kgrpc_shutdown(pd_kgrpc *s, void (*done)(void *data), void *data) {
  if (s->draining) return;
  s->draining = true;
  s->done = done;
  s->done_data = data;
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);
  for (pd_kgrpc_call *c = s->calls, *n; c; c = n) {
    n = c->next;
    if (c->kind == PD_KGRPC_STREAM) {
      c->refs++;
      stream_progress(c);
      call_unref(c);
    }
  }
}

void pd_kgrpc_cancel_all(pd_kgrpc *s) {
  if (s->server) grpc_server_cancel_all_calls(s->server);
}
