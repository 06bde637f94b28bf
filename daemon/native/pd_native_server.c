#include "pd_native_server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pd_conn.h"
#include "pd_kept.h"
#include "pd_wire.h"

#define PD_NATIVE_SERVER_MAX_LISTENERS 16

#ifndef PD_VERSION
#define PD_VERSION "unknown"
#endif

struct pd_native_server {
  uv_loop_t *loop;
  pd_native_server_limits lim;
  pd_pipeline *pipeline;
  pd_stats *stats;
  const pd_log *log;
  pd_native_server_report_fn report;
  void *report_ctx;
  pd_listener *listeners[PD_NATIVE_SERVER_MAX_LISTENERS];
  int n_listeners;
  pd_link *conns;
  int n_conns;
  pd_link *requests; /* classify requests in the pipeline (srv_request.link) */
  pd_link *frames;   /* frame requests in the core (srv_frame.link) */
  uint64_t serial;
  uv_timer_t sweep;             /* the timeouts' check */
  uint64_t sweep_period_ms;     /* 0: not running */
  uint64_t accept_error_log_ms; /* when accept errors were last logged */
  bool draining;
  pd_rx_budget rx_budget;
  void (*on_empty)(void *);
  void *on_empty_data;
  pd_conn_handler handler;
  pd_model_control_fn control;
  void *control_ctx;
};

/* A classify request in the pipeline: the core's part, the connection it
 * answers on and the unpacked message that holds the image bytes. */
typedef struct srv_request {
  pd_request req;
  pd_native_server *srv;
  pd_conn *conn;
  Plankton__Request *msg;
  pd_link link; /* in srv->requests until done */
} srv_request;

/* ---- answers ---- */

static void answer(pd_conn *c, uint8_t *frame, size_t len) {
  pd_conn_send(c, frame, len);
}

/* The answer to a request the core finished: sent (frame NULL when the
 * client left, or when packing ran out of memory: nothing is sent), and a
 * failure logged, INTERNAL as an error and the others at debug level. */
static void answer_logged(pd_native_server *s, pd_conn *c, uint8_t *frame, size_t len,
                          const char *what, uint64_t id, int status, const char *message) {
  answer(c, frame, len);
  if (status == PD_STATUS_INTERNAL)
    pd_logf(s->log, PD_LOG_ERROR, "%s %llu from %s: %s", what, (unsigned long long)id, c->peer,
            message);
  else if (status != PD_STATUS_OK)
    pd_logf(s->log, PD_LOG_DEBUG, "%s %llu from %s: %s: %s", what, (unsigned long long)id, c->peer,
            pd_status_name(status), message);
}

static void classify_done(pd_request *req) {
  srv_request *sr = (srv_request *)req;
  pd_conn *c = sr->conn;
  pd_link_unlink(&sr->srv->requests, &sr->link);
  size_t len = 0;
  uint8_t *frame = pd_conn_open(c) ? pd_wire_classify_answer(req, &len) : NULL;
  answer_logged(sr->srv, c, frame, len, "request", req->id, req->status, req->message);
  pd_request_dispose(req);
  pd_wire_free(sr->msg); /* normally freed already by release_input */
  pd_conn_release(c);
  free(sr);
}

static void classify_release_input(pd_request *req) {
  srv_request *sr = (srv_request *)req;
  pd_wire_free(sr->msg);
  sr->msg = NULL;
}

static void handle_classify(pd_native_server *s, pd_conn *c, Plankton__Request *msg) {
  Plankton__ClassifyRequest *cr = msg->classify;
  if (s->draining) {
    size_t len = 0;
    uint8_t *frame = pd_wire_classify_error(cr->id, PD_STATUS_UNAVAILABLE,
                                            "draining: the daemon is shutting down", &len);
    atomic_fetch_add(&s->stats->requests[PD_STATUS_UNAVAILABLE], 1);
    pd_wire_free(msg);
    answer(c, frame, len);
    return;
  }
  srv_request *sr = calloc(1, sizeof *sr);
  if (!sr) {
    size_t len = 0;
    uint64_t id = cr->id;
    pd_wire_free(msg);
    uint8_t *frame =
        pd_wire_classify_error(id, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory", &len);
    answer(c, frame, len); /* (len is set by the call: not in the same argument list) */
    return;
  }
  sr->srv = s;
  sr->conn = c;
  sr->msg = msg;
  pd_conn_hold(c);
  pd_wire_classify_input(cr, pd_now_ns(), s->lim.default_top_k, &sr->req);
  sr->req.release_input = classify_release_input;
  sr->req.done = classify_done;
  sr->req.owner = sr;
  sr->req.client = c->serial; /* fair shares per connection */
  pd_link_push(&s->requests, &sr->link);
  pd_pipeline_submit(s->pipeline, &sr->req);
}

/* A frame request in the core (pd_frame_job.h), as srv_request is for a crop. */
typedef struct srv_frame {
  pd_frame_job job;
  pd_native_server *srv;
  pd_conn *conn;
  Plankton__Request *msg;
  pd_kept_bg *kept; /* the kept background the frame uses (a reference), or NULL */
  pd_link link;     /* in srv->frames until done */
} srv_frame;

static void frame_done(pd_frame_job *job) {
  srv_frame *sf = job->owner;
  pd_conn *c = sf->conn;
  pd_link_unlink(&sf->srv->frames, &sf->link);
  size_t len = 0;
  uint8_t *frame = pd_conn_open(c) ? pd_wire_frame_answer(job, &len) : NULL;
  answer_logged(sf->srv, c, frame, len, "frame", job->id, job->status, job->message);
  pd_frame_job_dispose(job);
  pd_wire_free(sf->msg); /* normally freed already by release_input */
  pd_kept_unref(sf->kept);
  pd_conn_release(c);
  free(sf);
}

static void frame_release_input(pd_frame_job *job) {
  srv_frame *sf = job->owner;
  pd_wire_free(sf->msg);
  sf->msg = NULL;
  pd_kept_unref(sf->kept);
  sf->kept = NULL;
}

/* FrameRequest.background_id: the frame's background kept under the name
 * (sent with it), or the one kept before taken (sent without). 0, or a
 * status with why[] naming the name and the reason. */
static pd_status kept_background(pd_native_server *s, pd_conn *c, srv_frame *sf,
                                 const Plankton__FrameRequest *f, char *why, size_t cap) {
  const char *id = f->background_id;
  if (strlen(id) >= PD_KEPT_ID_LEN) {
    snprintf(why, cap, "background_id of %zu bytes: at most %d", strlen(id), PD_KEPT_ID_LEN - 1);
    return PD_STATUS_INVALID_ARGUMENT;
  }
  if (!c->kept && !(c->kept = calloc(1, sizeof *c->kept))) {
    snprintf(why, cap, "out of memory keeping background \"%s\"", id);
    return PD_STATUS_RESOURCE_EXHAUSTED;
  }
  char names[PD_KEPT_MAX * (PD_KEPT_ID_LEN + 4)];
  if (!sf->job.has_background) {
    if (!(sf->kept = pd_kept_get(c->kept, id))) {
      pd_kept_names(c->kept, names, sizeof names);
      snprintf(why, cap,
               "background_id \"%s\": no background kept under it on this connection (kept: %s); "
               "send it once with a frame, background and background_id together",
               id, names);
      return PD_STATUS_INVALID_ARGUMENT;
    }
    sf->job.has_background = true;
    sf->job.background = sf->kept->image;
    return PD_STATUS_OK;
  }
  pd_kept_bg *old = pd_kept_get(c->kept, id);
  size_t old_len = old ? old->len : 0, len = sf->job.background.len;
  pd_kept_unref(old);
  if (len > old_len && !pd_rx_budget_take(&s->rx_budget, len - old_len)) {
    snprintf(why, cap,
             "keeping background \"%s\" (%zu bytes) would pass limits.max_receive_bytes (%zu)", id,
             len, s->rx_budget.limit);
    return PD_STATUS_RESOURCE_EXHAUSTED;
  }
  long long delta = 0;
  int rc = pd_kept_put(c->kept, id, &sf->job.background, &delta);
  if (len > old_len && rc != 0) pd_rx_budget_give(&s->rx_budget, len - old_len);
  if (rc == 0 && delta < 0) pd_rx_budget_give(&s->rx_budget, (size_t)-delta);
  if (rc == -2) {
    pd_kept_names(c->kept, names, sizeof names);
    snprintf(why, cap,
             "background_id \"%s\": this connection keeps %d backgrounds already (%s); reuse a "
             "name",
             id, PD_KEPT_MAX, names);
    return PD_STATUS_RESOURCE_EXHAUSTED;
  }
  if (rc != 0) {
    snprintf(why, cap, "out of memory keeping background \"%s\"", id);
    return PD_STATUS_RESOURCE_EXHAUSTED;
  }
  return PD_STATUS_OK;
}

static void handle_frame(pd_native_server *s, pd_conn *c, Plankton__Request *msg) {
  const uint64_t id = msg->frame->id;
  srv_frame *sf = s->draining ? NULL : calloc(1, sizeof *sf);
  if (!sf) {
    size_t len = 0;
    const bool drain = s->draining;
    pd_wire_free(msg);
    uint8_t *frame = pd_wire_frame_error(
        id, drain ? PD_STATUS_UNAVAILABLE : PD_STATUS_RESOURCE_EXHAUSTED,
        drain ? "draining: the daemon is shutting down" : "out of memory", &len);
    answer(c, frame, len);
    return;
  }
  sf->srv = s;
  sf->conn = c;
  sf->msg = msg;
  pd_conn_hold(c);
  pd_wire_frame_input(msg->frame, pd_now_ns(), s->lim.default_top_k, &sf->job);
  if (msg->frame->background_id && msg->frame->background_id[0]) {
    char why[1024];
    pd_status st = kept_background(s, c, sf, msg->frame, why, sizeof why);
    if (st != PD_STATUS_OK) {
      size_t len = 0;
      pd_wire_free(msg);
      pd_kept_unref(sf->kept);
      free(sf);
      uint8_t *frame = pd_wire_frame_error(id, st, why, &len);
      answer(c, frame, len);
      pd_conn_release(c);
      return;
    }
  }
  sf->job.release_input = frame_release_input;
  sf->job.done = frame_done;
  sf->job.owner = sf;
  sf->job.client = c->serial; /* its objects share the connection's fair share */
  pd_link_push(&s->frames, &sf->link);
  pd_frame_job_submit(s->pipeline, &sf->job);
}

static void handle_stats(pd_native_server *s, pd_conn *c, uint64_t id) {
  pd_stats_report r;
  pd_stats_report_fill(s->stats, pd_now_ns(), &r);
  if (s->report) s->report(s->report_ctx, &r);
  size_t len = 0;
  int n_models = 0;
  const pd_model_counts *models = pd_pipeline_model_counts(s->pipeline, &n_models);
  uint8_t *frame = pd_wire_stats(id, &r, models, n_models, &len);
  answer(c, frame, len);
}

/* The report carries the last reload's result (the daemon keeps it). */
static void handle_health(pd_native_server *s, pd_conn *c, uint64_t id) {
  pd_stats_report r;
  pd_stats_report_fill(s->stats, pd_now_ns(), &r);
  if (s->report) s->report(s->report_ctx, &r);
  size_t len = 0;
  const pd_served *m = pd_pipeline_model(s->pipeline);
  const char *oos = m && pd_served_device_state(m) == PD_DEVICE_FAILING ? m->device_error : NULL;
  uint8_t *frame = pd_wire_health(id, s->draining || r.draining, r.batch_failures_in_a_row, oos,
                                  &r.last_reload, &len);
  answer(c, frame, len);
}

/* A ModelControl request with the daemon: answered once it took effect. */
typedef struct srv_control {
  pd_model_control mc;
  pd_native_server *srv;
  pd_conn *conn;
  uint64_t id;
} srv_control;

static void control_done(pd_model_control *mc) {
  srv_control *sc = mc->owner;
  pd_conn *c = sc->conn;
  size_t len = 0;
  uint8_t *frame =
      pd_conn_open(c) ? pd_wire_model_control(sc->id, mc->name, mc->status, mc->message,
                                              (const char(*)[64])mc->versions, mc->n_versions, &len)
                      : NULL;
  answer_logged(sc->srv, c, frame, len, "model control", sc->id, mc->status, mc->message);
  pd_conn_release(c);
  free(sc);
}

static void handle_model_control(pd_native_server *s, pd_conn *c,
                                 const Plankton__ModelControlRequest *m) {
  srv_control *sc = calloc(1, sizeof *sc);
  if (!sc) {
    size_t len = 0;
    uint8_t *frame = pd_wire_model_control(m->id, m->model, PD_STATUS_RESOURCE_EXHAUSTED,
                                           "out of memory", NULL, 0, &len);
    answer(c, frame, len);
    return;
  }
  sc->srv = s;
  sc->conn = c;
  sc->id = m->id;
  pd_model_control *mc = &sc->mc;
  mc->op = m->op == PLANKTON__MODEL_CONTROL_OP__MODEL_CONTROL_LOAD     ? PD_REPO_LOAD
           : m->op == PLANKTON__MODEL_CONTROL_OP__MODEL_CONTROL_UNLOAD ? PD_REPO_UNLOAD
           : m->op == PLANKTON__MODEL_CONTROL_OP__MODEL_CONTROL_RELOAD ? PD_REPO_RELOAD
                                                                       : (pd_repo_op)0;
  snprintf(mc->name, sizeof mc->name, "%s", m->model ? m->model : "");
  mc->via = "ModelControl";
  mc->peer_uid = c->peer_uid;
  snprintf(mc->peer, sizeof mc->peer, "%s", c->peer);
  mc->done = control_done;
  mc->owner = sc;
  pd_conn_hold(c);
  if (!mc->op || !s->control) {
    mc->status = mc->op ? PD_STATUS_UNIMPLEMENTED : PD_STATUS_INVALID_ARGUMENT;
    snprintf(mc->message, sizeof mc->message, "%s",
             mc->op ? "model control is not available here"
                    : "ModelControlRequest.op: none given (load, unload or reload)");
    control_done(mc);
    return;
  }
  s->control(s->control_ctx, mc);
}

/* The drain notice, once, to a connection whose client asked for it (Hello):
 * the frames read so far are all answered, anything later is UNAVAILABLE. */
static void notify_drain(pd_native_server *s, pd_conn *c) {
  if (!c->drain_notices || c->drain_noticed || !pd_conn_open(c) || c->failed) return;
  c->drain_noticed = true;
  char msg[160];
  snprintf(msg, sizeof msg,
           "planktond is draining: the %llu requests read on this connection are answered; "
           "send the rest to another daemon",
           (unsigned long long)c->frames_read);
  size_t len = 0;
  uint8_t *frame = pd_wire_drain_notice(c->frames_read, msg, &len);
  pd_logf(s->log, PD_LOG_DEBUG, "connection %llu (%s): drain notice, %llu requests read",
          (unsigned long long)c->serial, c->peer, (unsigned long long)c->frames_read);
  pd_conn_notify(c, frame, len);
}

static void handle_hello(pd_native_server *s, pd_conn *c, const Plankton__Hello *h) {
  c->drain_notices = h->drain_notices;
  pd_logf(s->log, PD_LOG_DEBUG, "connection %llu (%s): hello from '%.80s'%s",
          (unsigned long long)c->serial, c->peer, h->client ? h->client : "",
          h->drain_notices ? " (drain notices)" : "");
  size_t max_frame = s->lim.max_frame > UINT32_MAX ? UINT32_MAX : s->lim.max_frame;
  size_t len = 0;
  uint8_t *frame = pd_wire_hello(h->id, PD_VERSION, (uint32_t)max_frame, h->drain_notices, &len);
  answer(c, frame, len);
  if (s->draining) notify_drain(s, c); /* a Hello read after the drain began */
}

static int on_frame(pd_conn *c, const uint8_t *bytes, size_t n, void *ctx) {
  pd_native_server *s = ctx;
  Plankton__Request *msg = pd_wire_unpack(bytes, n);
  if (!msg) {
    atomic_fetch_add(&s->stats->broken_frames, 1);
    pd_logf(s->log, PD_LOG_WARNING,
            "connection %llu (%s): frame of %zu bytes is not a Request; closing",
            (unsigned long long)c->serial, c->peer, n);
    char why[128];
    snprintf(why, sizeof why, "frame of %zu bytes does not decode as a plankton.Request", n);
    size_t len = 0;
    uint8_t *frame = pd_wire_error(PD_STATUS_INVALID_ARGUMENT, why, &len);
    pd_conn_fail(c, frame, len);
    return -1;
  }
  pd_conn_expect(c);
  size_t len = 0;
  uint8_t *frame = NULL;
  switch (msg->body_case) {
  case PLANKTON__REQUEST__BODY_CLASSIFY:
    handle_classify(s, c, msg);
    return 0;
  case PLANKTON__REQUEST__BODY_FRAME:
    handle_frame(s, c, msg);
    return 0;
  case PLANKTON__REQUEST__BODY_STATS:
    handle_stats(s, c, msg->stats->id);
    break;
  case PLANKTON__REQUEST__BODY_HEALTH:
    handle_health(s, c, msg->health->id);
    break;
  case PLANKTON__REQUEST__BODY_HELLO:
    handle_hello(s, c, msg->hello);
    break;
  case PLANKTON__REQUEST__BODY_MODEL_CONTROL:
    handle_model_control(s, c, msg->model_control);
    break;
  case PLANKTON__REQUEST__BODY_MODEL_INFO:
    frame = pd_wire_model_info_repo(msg->model_info->id, msg->model_info->model,
                                    pd_pipeline_repo(s->pipeline), &len);
    answer(c, frame, len);
    break;
  default:
    frame = pd_wire_error(PD_STATUS_UNIMPLEMENTED,
                          "request has no body, or one this daemon does not know", &len);
    answer(c, frame, len);
    break;
  }
  pd_wire_free(msg);
  return 0;
}

static void on_oversize(pd_conn *c, const char *why, void *ctx) {
  pd_native_server *s = ctx;
  atomic_fetch_add(&s->stats->broken_frames, 1);
  pd_logf(s->log, PD_LOG_WARNING, "connection %llu (%s): %s; closing",
          (unsigned long long)c->serial, c->peer, why);
  size_t len = 0;
  uint8_t *frame = pd_wire_error(PD_STATUS_RESOURCE_EXHAUSTED, why, &len);
  pd_conn_fail(c, frame, len);
}

/* The client left: its requests that have not started computing are
 * dropped (each still finishes through classify_done, which unlinks it). */
static void cancel_requests_of(pd_native_server *s, const pd_conn *c) {
  for (pd_link *l = s->requests, *next; l; l = next) {
    next = l->next;
    srv_request *sr = pd_link_owner(l, srv_request, link);
    if (sr->conn == c) pd_pipeline_cancel(s->pipeline, &sr->req);
  }
  for (pd_link *l = s->frames, *next; l; l = next) {
    next = l->next;
    srv_frame *sf = pd_link_owner(l, srv_frame, link);
    if (sf->conn == c) pd_frame_job_cancel(&sf->job);
  }
}

static void on_closed(pd_conn *c, void *ctx) {
  pd_native_server *s = ctx;
  cancel_requests_of(s, c);
  if (c->kept) { /* frames in the core keep their own references */
    pd_rx_budget_give(&s->rx_budget, pd_kept_clear(c->kept));
    free(c->kept);
    c->kept = NULL;
  }
  pd_link_unlink(&s->conns, &c->link);
  s->n_conns--;
  atomic_fetch_sub(&s->stats->connections, 1);
  pd_logf(s->log, PD_LOG_INFO, "connection %llu (%s) closed", (unsigned long long)c->serial,
          c->peer);
  if (s->draining && s->n_conns == 0 && s->on_empty) s->on_empty(s->on_empty_data);
}

/* ---- accepting ---- */

static void close_unaccepted(uv_handle_t *h) {
  free(h->data);
}

/* A Unix-socket peer's uid (SO_PEERCRED), or -1 (TCP, or not known). */
static long peer_uid(const pd_listener *l, pd_conn *c) {
  uv_os_fd_t fd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!l->is_unix || uv_fileno(&c->h.handle, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return -1;
  return (long)cred.uid;
}

static void on_connection(pd_listener *l, int status, void *data) {
  pd_native_server *s = data;
  if (status < 0) {
    atomic_fetch_add(&s->stats->accept_errors, 1);
    uint64_t now = uv_now(s->loop);
    if (now - s->accept_error_log_ms >= 1000 || s->accept_error_log_ms == 0) {
      s->accept_error_log_ms = now;
      pd_logf(s->log, PD_LOG_WARNING, "accept on %s: %s (%d connections open)", l->name,
              uv_strerror(status), s->n_conns);
    }
    return;
  }
  pd_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  char peer[sizeof c->peer];
  int rc = pd_listener_accept(l, &c->h, peer, sizeof peer);
  c->h.handle.data = c;
  if (rc != 0 || s->draining) {
    uv_close(&c->h.handle, close_unaccepted);
    return;
  }
  snprintf(c->peer, sizeof c->peer, "%s", peer);
  c->peer_uid = peer_uid(l, c);
  pd_link_push(&s->conns, &c->link);
  s->n_conns++;
  atomic_fetch_add(&s->stats->connections, 1);
  atomic_fetch_add(&s->stats->connections_total, 1);
  pd_conn_start(c, &s->handler, s->lim.max_frame, s->lim.window, ++s->serial, &s->rx_budget);
  if (s->n_conns > s->lim.max_connections) {
    atomic_fetch_add(&s->stats->connections_refused, 1);
    pd_logf(s->log, PD_LOG_WARNING, "connection %llu (%s) refused: %d connections (%s)",
            (unsigned long long)c->serial, c->peer, s->lim.max_connections,
            s->lim.max_connections_from_fds ? "limits.max_connections lowered by RLIMIT_NOFILE"
                                            : "limits.max_connections");
    char why[96];
    snprintf(why, sizeof why, "too many connections (limit %d)", s->lim.max_connections);
    size_t len = 0;
    uint8_t *frame = pd_wire_error(PD_STATUS_RESOURCE_EXHAUSTED, why, &len);
    pd_conn_fail(c, frame, len);
    return;
  }
  pd_logf(s->log, PD_LOG_INFO, "connection %llu (%s) accepted", (unsigned long long)c->serial,
          c->peer);
}

static int add_listener(pd_native_server *s, int rc, pd_listener *l, pd_error *err) {
  if (rc != PD_OK) return rc;
  if (s->n_listeners == PD_NATIVE_SERVER_MAX_LISTENERS) {
    pd_listener_close(l);
    return pd_error_set(err, PD_ELIMIT, "more than %d listeners", PD_NATIVE_SERVER_MAX_LISTENERS);
  }
  s->listeners[s->n_listeners++] = l;
  pd_logf(s->log, PD_LOG_INFO, "listening on %s", l->name);
  return PD_OK;
}

int pd_native_server_listen_unix(pd_native_server *s, const char *path, int mode, const char *group,
                                 pd_error *err) {
  pd_listener *l = NULL;
  int rc = pd_listener_unix(s->loop, path, mode, group, on_connection, s, &l, err);
  return add_listener(s, rc, l, err);
}

int pd_native_server_listen_tcp(pd_native_server *s, const char *host_port, pd_error *err) {
  pd_listener *l = NULL;
  int rc = pd_listener_tcp(s->loop, host_port, on_connection, s, &l, err);
  return add_listener(s, rc, l, err);
}

int pd_native_server_listen_fd(pd_native_server *s, int fd, pd_error *err) {
  pd_listener *l = NULL;
  int rc = pd_listener_fd(s->loop, fd, on_connection, s, &l, err);
  return add_listener(s, rc, l, err);
}

int pd_native_server_listener_count(const pd_native_server *s) {
  return s->n_listeners;
}

/* ---- timeouts ---- */

static void on_sweep(uv_timer_t *t) {
  pd_native_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  const uint64_t frame_ms = s->lim.frame_timeout_ms, idle_ms = s->lim.idle_timeout_ms;
  for (pd_link *l = s->conns, *next; l; l = next) {
    next = l->next; /* pd_conn_fail unlinks nothing now: on_closed does, later */
    pd_conn *c = pd_link_owner(l, pd_conn, link);
    if (c->closing || c->failed) continue;
    char why[160];
    size_t len = 0;
    if (frame_ms && (c->reading || c->rx_waiting) && c->frame_since_ms &&
        now - c->frame_since_ms >= frame_ms) {
      atomic_fetch_add(&s->stats->frame_timeouts, 1);
      snprintf(why, sizeof why,
               "frame incomplete after %llu ms (%zu bytes arrived; limits.frame_timeout_ms)",
               (unsigned long long)(now - c->frame_since_ms), pd_conn_pending(c));
      pd_logf(s->log, PD_LOG_WARNING, "connection %llu (%s): %s; closing",
              (unsigned long long)c->serial, c->peer, why);
      uint8_t *frame = pd_wire_error(PD_STATUS_DEADLINE_EXCEEDED, why, &len);
      pd_conn_fail(c, frame, len);
    } else if (idle_ms && c->owed == 0 && c->writes == 0 && pd_conn_pending(c) == 0 &&
               now - c->active_ms >= idle_ms) {
      atomic_fetch_add(&s->stats->idle_timeouts, 1);
      snprintf(why, sizeof why, "idle for %llu s (limits.idle_timeout_s)",
               (unsigned long long)((now - c->active_ms) / 1000));
      pd_logf(s->log, PD_LOG_INFO, "connection %llu (%s): %s; closing",
              (unsigned long long)c->serial, c->peer, why);
      uint8_t *frame = pd_wire_error(PD_STATUS_UNAVAILABLE, why, &len);
      pd_conn_fail(c, frame, len);
    }
  }
}

/* Checks a quarter of the shortest timeout (within 50 ms .. 1 s). */
static void sweep_schedule(pd_native_server *s) {
  uint64_t shortest = 0;
  if (s->lim.frame_timeout_ms) shortest = s->lim.frame_timeout_ms;
  if (s->lim.idle_timeout_ms && (!shortest || s->lim.idle_timeout_ms < shortest))
    shortest = s->lim.idle_timeout_ms;
  uint64_t period = shortest / 4;
  if (period < 50) period = 50;
  if (period > 1000) period = 1000;
  if (!shortest) period = 0;
  if (period == s->sweep_period_ms) return;
  s->sweep_period_ms = period;
  if (period)
    uv_timer_start(&s->sweep, on_sweep, period, period);
  else
    uv_timer_stop(&s->sweep);
}

/* ---- lifetime ---- */

int pd_native_server_create(uv_loop_t *loop, const pd_native_server_limits *lim,
                            pd_pipeline *pipeline, pd_stats *stats, const pd_log *log,
                            pd_native_server_report_fn report, void *report_ctx,
                            pd_native_server **out, pd_error *err) {
  pd_native_server *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "server: out of memory");
  s->loop = loop;
  s->lim = *lim;
  s->pipeline = pipeline;
  s->stats = stats;
  s->log = log;
  s->report = report;
  s->report_ctx = report_ctx;
  s->handler.on_frame = on_frame;
  s->handler.on_oversize = on_oversize;
  s->handler.on_closed = on_closed;
  s->handler.ctx = s;
  pd_rx_budget_init(&s->rx_budget, lim->max_receive_bytes ? lim->max_receive_bytes : SIZE_MAX);
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  sweep_schedule(s);
  *out = s;
  return PD_OK;
}

void pd_native_server_set_control(pd_native_server *s, pd_model_control_fn fn, void *ctx) {
  s->control = fn;
  s->control_ctx = ctx;
}

void pd_native_server_set_limits(pd_native_server *s, const pd_native_server_limits *lim) {
  s->lim = *lim;
  pd_rx_budget_set_limit(&s->rx_budget, lim->max_receive_bytes ? lim->max_receive_bytes : SIZE_MAX);
  sweep_schedule(s);
}

void pd_native_server_receive_stats(const pd_native_server *s, uint64_t *bytes, uint64_t *waits) {
  *bytes = s->rx_budget.used;
  *waits = s->rx_budget.waits;
}

void pd_native_server_drain(pd_native_server *s, void (*on_empty)(void *), void *data) {
  s->draining = true;
  s->on_empty = on_empty;
  s->on_empty_data = data;
  for (int i = 0; i < s->n_listeners; i++)
    pd_listener_close(s->listeners[i]);
  s->n_listeners = 0;
  /* every connection that asked is told at once, before any answer here
   * can be UNAVAILABLE (all of them come later on the loop) */
  for (pd_link *l = s->conns; l; l = l->next)
    notify_drain(s, pd_link_owner(l, pd_conn, link));
  for (pd_link *l = s->conns, *next; l; l = next) {
    next = l->next; /* pd_conn_drain may close c (it stays allocated until its close callback) */
    pd_conn_drain(pd_link_owner(l, pd_conn, link));
  }
  if (s->n_conns == 0 && on_empty) on_empty(data);
}

void pd_native_server_close_all(pd_native_server *s) {
  for (pd_link *l = s->conns; l; l = l->next)
    pd_conn_close(pd_link_owner(l, pd_conn, link));
}

int pd_native_server_connections(const pd_native_server *s) {
  return s->n_conns;
}

static void sweep_closed(uv_handle_t *h) {
  free(h->data);
}

void pd_native_server_close(pd_native_server *s) {
  for (int i = 0; i < s->n_listeners; i++)
    pd_listener_close(s->listeners[i]);
  s->n_listeners = 0;
  uv_close((uv_handle_t *)&s->sweep, sweep_closed);
}
