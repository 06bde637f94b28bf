/* The /metrics front end: a pd_http server with the metrics handler on
 * GET /metrics, behind the pd_frontend ops, with the settings mapped to its
 * limits. */
#include <stdlib.h>
#include <string.h>

#include "pd_frontends.h"
#include "pd_http.h"
#include "pd_http_metrics.h"

/* No request to /metrics has a body worth reading. */
#define PD_METRICS_MAX_BODY 65536

typedef struct metrics_fe {
  pd_frontend fe; /* first */
  pd_frontend_env env;
  pd_http *http;
  pd_http_metrics_source src;
  pd_http_limits lim;
  char address[PD_ADDR_LEN]; /* metrics.listen (restart-only) */
} metrics_fe;

static pd_http_limits metrics_limits(const pd_config *c) {
  pd_http_limits l = {.max_connections = (int)c->metrics_max_connections,
                      .request_timeout_ms = (uint64_t)c->frame_timeout_ms,
                      .idle_timeout_ms = (uint64_t)c->metrics_idle_timeout_s * 1000,
                      .max_body = PD_METRICS_MAX_BODY};
  return l;
}

static void fill(void *ctx, pd_stats_report *r) {
  const metrics_fe *m = ctx;
  pd_stats_report_fill(m->env.stats, pd_now_ns(), r);
  m->env.report(m->env.report_ctx, r);
}

static int metrics_listen(pd_frontend *fe, const int *fds, int n_fds, bool activated,
                          pd_error *err) {
  metrics_fe *m = (metrics_fe *)fe;
  (void)activated; /* metrics.listen applies unless systemd passed a "metrics" socket */
  if (n_fds == 0 && !m->address[0]) return PD_OK; /* off */
  int rc = pd_http_create(m->env.loop, "metrics", "metrics", &m->lim, m->env.log, &m->http, err);
  if (rc == PD_OK) rc = pd_http_metrics_route(m->http, "/metrics", &m->src, err);
  for (int i = 0; i < n_fds && rc == PD_OK; i++)
    rc = pd_http_listen(m->http, "", fds[i], err);
  if (rc == PD_OK && n_fds == 0 && m->address[0]) rc = pd_http_listen(m->http, m->address, -1, err);
  if (rc == PD_OK && pd_http_listener_count(m->http) > 0)
    pd_logf(m->env.log, PD_LOG_INFO, "metrics: http %s /metrics", pd_http_name(m->http));
  return rc;
}

static void metrics_set_limits(pd_frontend *fe, const pd_config *cfg) {
  metrics_fe *m = (metrics_fe *)fe;
  m->lim = metrics_limits(cfg);
  if (m->http) pd_http_set_limits(m->http, &m->lim);
}

static void metrics_drain(pd_frontend *fe, void (*on_empty)(void *), void *data) {
  metrics_fe *m = (metrics_fe *)fe;
  if (m->http)
    pd_http_drain(m->http, on_empty, data);
  else
    on_empty(data);
}

static int metrics_busy(const pd_frontend *fe) {
  const metrics_fe *m = (const metrics_fe *)fe;
  return m->http ? pd_http_pending(m->http) : 0;
}

static void metrics_close_all(pd_frontend *fe) {
  metrics_fe *m = (metrics_fe *)fe;
  if (m->http) pd_http_close_all(m->http);
}

static void metrics_close(pd_frontend *fe) {
  metrics_fe *m = (metrics_fe *)fe;
  pd_http_close(m->http); /* NULL: nothing to close */
  free(m);
}

static const pd_frontend_ops metrics_ops = {
    .name = "metrics",
    .fd_name = "metrics",
    .listen = metrics_listen,
    .set_limits = metrics_set_limits,
    .report = NULL,
    .drain = metrics_drain,
    .busy = metrics_busy,
    .close_all = metrics_close_all,
    .close = metrics_close,
};

int pd_frontend_metrics_create(const pd_frontend_env *env, const pd_config *cfg, pd_frontend **out,
                               pd_error *err) {
  metrics_fe *m = calloc(1, sizeof *m);
  if (!m) return pd_error_set(err, PD_ENOMEM, "metrics: out of memory");
  m->fe.ops = &metrics_ops;
  m->env = *env;
  m->src.fill = fill;
  m->src.ctx = m;
  m->src.pipeline = env->pipeline;
  m->lim = metrics_limits(cfg);
  snprintf(m->address, sizeof m->address, "%s", cfg->metrics);
  *out = &m->fe;
  return PD_OK;
}
