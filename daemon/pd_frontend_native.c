/* The native protocol's front end: pd_native_server behind the pd_frontend
 * ops, with the settings mapped to its limits. */
#include <stdlib.h>
#include <string.h>

#include "pd_frontends.h"
#include "pd_native_server.h"

typedef struct native_fe {
  pd_frontend fe; /* first */
  pd_frontend_env env;
  pd_native_server *server;
  pd_config cfg; /* for the listeners it names (restart-only) */
} native_fe;

static pd_native_server_limits native_limits(const pd_frontend_env *env, const pd_config *c) {
  int conns = (int)c->max_connections;
  if (env->connection_cap > 0 && env->connection_cap < conns) conns = env->connection_cap;
  pd_native_server_limits l = {.max_frame = (size_t)c->max_frame_bytes,
                               .max_receive_bytes = (size_t)c->max_receive_bytes,
                               .window = (int)c->max_in_flight,
                               .max_connections = conns,
                               .max_connections_from_fds = conns < c->max_connections,
                               .default_top_k = (int)c->default_top_k,
                               .frame_timeout_ms = (uint64_t)c->frame_timeout_ms,
                               .idle_timeout_ms = (uint64_t)c->idle_timeout_s * 1000};
  return l;
}

static int native_listen(pd_frontend *fe, const int *fds, int n_fds, bool activated,
                         pd_error *err) {
  native_fe *n = (native_fe *)fe;
  int rc = PD_OK;
  for (int i = 0; i < n_fds && rc == PD_OK; i++)
    rc = pd_native_server_listen_fd(n->server, fds[i], err);
  if (rc != PD_OK || activated) return rc;
  if (n->cfg.socket_path[0])
    rc = pd_native_server_listen_unix(n->server, n->cfg.socket_path, (int)n->cfg.socket_mode,
                                      n->cfg.socket_group, err);
  if (rc == PD_OK && n->cfg.tcp[0]) rc = pd_native_server_listen_tcp(n->server, n->cfg.tcp, err);
  if (rc == PD_OK && pd_native_server_listener_count(n->server) == 0)
    rc = pd_error_set(err, PD_EINVAL, "nothing to listen on: set listen.socket or listen.tcp");
  return rc;
}

static void native_set_limits(pd_frontend *fe, const pd_config *cfg) {
  native_fe *n = (native_fe *)fe;
  pd_native_server_limits l = native_limits(&n->env, cfg);
  pd_native_server_set_limits(n->server, &l);
}

static void native_report(const pd_frontend *fe, pd_stats_report *r) {
  const native_fe *n = (const native_fe *)fe;
  pd_native_server_receive_stats(n->server, &r->receive_buffer_bytes, &r->receive_waits);
}

static void native_drain(pd_frontend *fe, void (*on_empty)(void *), void *data) {
  pd_native_server_drain(((native_fe *)fe)->server, on_empty, data);
}

static int native_busy(const pd_frontend *fe) {
  return pd_native_server_connections(((const native_fe *)fe)->server);
}

static void native_close_all(pd_frontend *fe) {
  pd_native_server_close_all(((native_fe *)fe)->server);
}

static void native_close(pd_frontend *fe) {
  native_fe *n = (native_fe *)fe;
  pd_native_server_close(n->server);
  free(n);
}

static const pd_frontend_ops native_ops = {
    .name = "native",
    .fd_name = NULL,
    .listen = native_listen,
    .set_limits = native_set_limits,
    .report = native_report,
    .drain = native_drain,
    .busy = native_busy,
    .close_all = native_close_all,
    .close = native_close,
};

int pd_frontend_native_create(const pd_frontend_env *env, const pd_config *cfg, pd_frontend **out,
                              pd_error *err) {
  native_fe *n = calloc(1, sizeof *n);
  if (!n) return pd_error_set(err, PD_ENOMEM, "server: out of memory");
  n->fe.ops = &native_ops;
  n->env = *env;
  n->cfg = *cfg;
  pd_native_server_limits l = native_limits(env, cfg);
  int rc = pd_native_server_create(env->loop, &l, env->pipeline, env->stats, env->log, env->report,
                                   env->report_ctx, &n->server, err);
  if (rc != PD_OK) {
    free(n);
    return rc;
  }
  if (env->control) pd_native_server_set_control(n->server, env->control, env->control_ctx);
  *out = &n->fe;
  return PD_OK;
}
