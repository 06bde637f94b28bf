#include "pd_daemon.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "pd_control.h"
#include "pd_frontends.h"
#include "pd_log.h"
#include "pd_pipeline.h"
#include "pd_sd.h"

/* The front ends, in the order they start. */
static const pd_frontend_create_fn frontend_list[] = {
    pd_frontend_native_create,
    pd_frontend_metrics_create,
#ifdef PD_HAVE_KSERVE
    pd_frontend_kserve_grpc_create,
    pd_frontend_kserve_http_create,
#endif
};
#define PD_N_FRONTENDS (int)(sizeof frontend_list / sizeof frontend_list[0])

typedef struct pd_daemon {
  uv_loop_t loop;
  const pd_settings_source *src;
  pd_config cfg;
  pd_log log;
  pd_stats stats;
  pd_pipeline *pipeline;
  pd_frontend_env env;
  pd_frontend *fe[PD_N_FRONTENDS];
  int n_fe;
  bool starting_drain; /* the drain is being handed to the front ends */
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t tick, drain_timer, grace_timer;
  bool draining, finished;
  /* SIGTERM's grace (limits.drain_grace_ms): not ready, still serving */
  bool in_grace;
  /* reload in progress (off the loop) */
  bool reloading, reload_again;
  uv_work_t reload_work;
  pd_config reload_cfg;
  pd_repo *reload_repo;
  pd_error reload_err;
  pd_reload_report last_reload; /* Health, Stats and /metrics show it */
  /* run-time model changes (pd_model_control.h): one at a time, not beside a reload */
  pd_model_control *control_head, *control_tail; /* waiting */
  pd_model_control *control_now;                 /* off the loop */
  uv_work_t control_work;
  pd_repo *control_repo;
  pd_error control_err;
  int exit_code;
  /* Connections the open-file limit leaves room for (measured at start), or
   * -1 where there is no limit to speak of. */
  int fd_connection_cap;
} pd_daemon;

/* Descriptors kept free beyond the metrics endpoint's connections: listeners,
 * the model files a reload opens, libuv's own, one being accepted. */
#define PD_FD_RESERVE 24

int pd_settings_check(const pd_settings_source *src, pd_config *out, pd_config_check *chk) {
  pd_config_check_init(chk);
  pd_config_defaults(out, src->default_model_dir);
  if (src->config_path) pd_config_check_file(out, src->config_path, chk);
  for (int i = 0; i < src->n_overrides; i++) {
    const pd_override *o = &src->overrides[i];
    pd_config_check_set(out, o->flag, o->key, o->value, chk);
  }
  pd_config_check_settings(out, chk);
  return chk->n_problems ? PD_EINVAL : PD_OK;
}

int pd_settings_build(const pd_settings_source *src, pd_config *out, pd_error *err) {
  pd_config cfg;
  pd_config_check *chk = malloc(sizeof *chk);
  if (!chk) return pd_error_set(err, PD_ENOMEM, "settings: out of memory");
  int rc = pd_settings_check(src, &cfg, chk);
  if (rc == PD_OK) {
    *out = cfg;
  } else {
    size_t first = strcspn(chk->text, "\n");
    if (chk->n_problems > 1)
      pd_error_set(err, rc, "%.*s (and %d more: planktond --check-config lists them)", (int)first,
                   chk->text, chk->n_problems - 1);
    else
      pd_error_set(err, rc, "%.*s", (int)first, chk->text);
  }
  free(chk);
  return rc;
}

/* A model's device-error lines (pd_served.h), from the engine thread. */
static void served_log(const void *ctx, int level, const char *line) {
  pd_logf(ctx, (pd_log_level)level, "%s", line);
}

static pd_served_options served_options(const pd_daemon *d, const pd_config *c) {
  pd_served_options o = {.wrap_backend = d->src->wrap_backend,
                         .on_device_error = c->on_device_error,
                         .cuda_graphs = c->cuda_graphs != 0,
                         .cuda_workspace_mb = c->cuda_workspace_mb,
                         .cuda_algo_cache_dir = c->cuda_algo_cache_dir,
                         .log = served_log,
                         .log_ctx = &d->log,
                         .dir = c->model_dir,
                         .backend = c->backend,
                         .device = (int)c->device,
                         .threads = (int)c->threads,
                         .precision = c->precision,
                         .max_batch = (int)c->max_batch};
  return o;
}

static pd_pipeline_limits pipeline_limits(const pd_config *c) {
  pd_pipeline_limits l = {
      .batch = {.max_batch = (int)c->max_batch,
                .max_queue_delay_ns = (uint64_t)c->max_queue_delay_us * 1000,
                .max_queue = (int)c->max_queue},
      .image = {.max_width = (int)c->max_image_width,
                .max_height = (int)c->max_image_height,
                .max_pixels = c->max_image_pixels},
      .max_tta = (int)c->max_tta,
      .max_frame_pixels = c->max_frame_pixels,
      .adaptive = {.on = c->adaptive_tta != 0,
                   .min_views = (int)c->min_tta,
                   .wait_ns = (uint64_t)c->adaptive_tta_wait_us * 1000},
  };
  return l;
}

/* Open descriptors of this process now (-1 if /proc cannot tell). */
static int open_fd_count(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(dir));)
    n += e->d_name[0] != '.';
  closedir(dir);
  return n - 1; /* the directory's own descriptor */
}

/* How many client connections RLIMIT_NOFILE leaves room for, given the
 * descriptors open now, the metrics endpoint's and a reserve: beyond it the
 * daemon refuses connections itself (RESOURCE_EXHAUSTED, logged and counted)
 * instead of running out of descriptors. Like redis, it first raises the
 * soft limit towards the hard one as far as limits.max_connections needs
 * (*raised_from: the old soft limit, or -1). -1: no cap (no limit, or /proc
 * is missing). */
static int fd_connection_cap(const pd_config *c, long *limit, int *open_now, long *raised_from) {
  struct rlimit rl;
  *open_now = open_fd_count();
  *limit = *raised_from = -1;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || *open_now < 0)
    return -1;
  const long others = *open_now + PD_FD_RESERVE + (c->metrics[0] ? c->metrics_max_connections : 0);
  const rlim_t need = (rlim_t)(c->max_connections + others);
  if (rl.rlim_cur < need && rl.rlim_max > rl.rlim_cur) {
    struct rlimit up = {.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need,
                        .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
      *raised_from = (long)rl.rlim_cur;
      rl.rlim_cur = up.rlim_cur;
    }
  }
  *limit = rl.rlim_cur > (rlim_t)1 << 30 ? 1L << 30 : (long)rl.rlim_cur;
  long cap = *limit - others;
  return cap < 1 ? 1 : cap > 1L << 30 ? 1 << 30 : (int)cap;
}

static void log_model(pd_daemon *d, const char *what, const pd_served *s) {
  const pd_model *m = s->model;
  pd_logf(&d->log, PD_LOG_INFO,
          "%s model %s version %s from %s: %d classes, %d branches, %zu parameters, %.1f MFLOP "
          "per image; backend %s; precision %s: %s; CUDA %s%s; on device error %s; CPU %s; plan "
          "for batches up to %d (%.2f s)",
          what, m->name, m->version, m->dir, m->n_classes, m->n_branches, m->n_params,
          pd_model_flops_per_image(m) * 1e-6, s->backend_reason, s->precision, s->precision_reason,
          s->cuda_options, strcmp(s->backend_name, "cuda") ? " (unused)" : "",
          pd_served_on_device_error(s), s->cpu_features, s->max_batch, s->load_seconds);
  if (s->kernels[0]) pd_logf(&d->log, PD_LOG_INFO, "kernels per layer: %s", s->kernels);
}

static void log_limits(pd_daemon *d, const pd_config *c) {
  pd_logf(&d->log, PD_LOG_INFO,
          "limits: max_batch %ld, max_queue_delay_us %ld, max_queue %ld, max_frame_bytes %ld, "
          "max_receive_bytes %ld, "
          "image %ldx%ld (%ld pixels), in-flight per connection %ld, connections %ld, tta %ld, "
          "default top_k %ld, drain grace %ld ms, drain timeout %ld s, frame timeout %ld ms, idle "
          "timeout %ld s",
          c->max_batch, c->max_queue_delay_us, c->max_queue, c->max_frame_bytes,
          c->max_receive_bytes, c->max_image_width, c->max_image_height, c->max_image_pixels,
          c->max_in_flight, c->max_connections, c->max_tta, c->default_top_k, c->drain_grace_ms,
          c->drain_timeout_s, c->frame_timeout_ms, c->idle_timeout_s);
}

/* Every model of r: loaded, or why not (naming its folder). */
static void log_repo(pd_daemon *d, const char *what, const pd_repo *r) {
  for (int i = 0; i < r->n; i++) {
    const pd_repo_entry *e = &r->e[i];
    if (e->warning[0]) pd_logf(&d->log, PD_LOG_WARNING, "%s", e->warning);
    if (e->error[0])
      pd_logf(&d->log, PD_LOG_ERROR, "model folder %s (model '%s'): %s", e->dir, e->name, e->error);
    if (e->kept)
      pd_logf(&d->log, PD_LOG_INFO, "kept model %s version %s from %s: unchanged", e->name,
              e->version, e->dir);
    else if (e->served && !e->error[0])
      log_model(d, what, e->served);
  }
}

/* The models c names: model.repository, or model.dir alone. Blocking. On a
 * reload, the repository's unchanged models are kept (read off the loop:
 * the current table is not freed while a reload runs). */
static int load_models(const pd_daemon *d, const pd_config *c, pd_repo **out, pd_error *err) {
  pd_served_options o = served_options(d, c);
  const pd_repo *now = d->pipeline ? pd_pipeline_repo(d->pipeline) : NULL;
  if (c->model_repository[0])
    return pd_repo_load(c->model_repository, &o, c->model_default, (int)c->model_max_loaded, now,
                        out, err);
  pd_served *s = NULL;
  int rc = pd_served_load(&o, &s, err);
  return rc == PD_OK ? pd_repo_single(s, out, err) : rc;
}

static void count_loads(pd_daemon *d, const pd_repo *r) {
  for (int i = 0; i < r->n; i++)
    if (!r->e[i].kept)
      atomic_fetch_add(r->e[i].error[0] ? &d->stats.model_load_failures : &d->stats.model_loads, 1);
}

/* Fills the parts of a stats report the stats module does not own. */
static void fill_report(void *ctx, pd_stats_report *r) {
  pd_daemon *d = ctx;
  const pd_served *s = pd_pipeline_model(d->pipeline);
  if (s) {
    snprintf(r->model_name, sizeof r->model_name, "%s", s->model->name);
    snprintf(r->model_version, sizeof r->model_version, "%s", s->model->version);
    snprintf(r->backend, sizeof r->backend, "%s", pd_served_backend_now(s));
    snprintf(r->on_device_error, sizeof r->on_device_error, "%s", pd_served_on_device_error(s));
    snprintf(r->device_state, sizeof r->device_state, "%s", pd_served_device_state_name(s));
    snprintf(r->cuda_options, sizeof r->cuda_options, "%s", s->cuda_options);
    snprintf(r->precision, sizeof r->precision, "%s", s->precision);
    snprintf(r->cpu_features, sizeof r->cpu_features, "%s", s->cpu_features);
    snprintf(r->kernels, sizeof r->kernels, "%s", s->kernels);
    r->model_loaded_unix = (int64_t)s->loaded_at;
  }
  r->queue_depth = pd_pipeline_queue(d->pipeline).queued;
  for (int i = 0; i < d->n_fe; i++)
    if (d->fe[i]->ops->report) d->fe[i]->ops->report(d->fe[i], r);
  r->draining = d->draining || d->in_grace;
  r->last_reload = d->last_reload;
}

/* What the front ends' drains wait for, all together. */
static int frontends_busy(const pd_daemon *d) {
  int n = 0;
  for (int i = 0; i < d->n_fe; i++)
    n += d->fe[i]->ops->busy(d->fe[i]);
  return n;
}

static void frontends_close_all(pd_daemon *d) {
  for (int i = 0; i < d->n_fe; i++)
    d->fe[i]->ops->close_all(d->fe[i]);
}

static void frontends_close(pd_daemon *d) {
  for (int i = 0; i < d->n_fe; i++)
    d->fe[i]->ops->close(d->fe[i]);
  d->n_fe = 0;
}

/* READY=1 with a STATUS line naming the model being served (after a failed
 * reload: what failed first). */
static void notify_ready(pd_daemon *d) {
  char status[1024], failed[600] = "";
  const pd_served *s = pd_pipeline_model(d->pipeline);
  const pd_repo *r = pd_pipeline_repo(d->pipeline);
  if (d->last_reload.failed)
    snprintf(failed, sizeof failed, "reload failed: %s; still ", d->last_reload.message);
  if (s && r->n == 1)
    snprintf(status, sizeof status, "READY=1\nSTATUS=%sserving %s %s on %s", failed, s->model->name,
             s->model->version, pd_served_backend_now(s));
  else
    snprintf(status, sizeof status, "READY=1\nSTATUS=%sserving %d model versions, default %s",
             failed, r->n, s ? s->model->name : "(not loaded)");
  pd_sd_notify(status);
}

/* ---- shutdown ---- */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish(pd_daemon *d) {
  if (d->finished || d->reloading) return; /* a reload in flight: wait for it */
  d->finished = true;
  pd_pipeline_close(d->pipeline);
  d->pipeline = NULL;
  frontends_close(d);
  close_handle((uv_handle_t *)&d->sig_term);
  close_handle((uv_handle_t *)&d->sig_int);
  close_handle((uv_handle_t *)&d->sig_hup);
  /* Closing the handles restored the default actions: a further SIGTERM (a
   * second `systemctl stop`, an impatient script) or SIGHUP during the last
   * of the teardown must not kill a daemon that already drained. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  close_handle((uv_handle_t *)&d->tick);
  close_handle((uv_handle_t *)&d->drain_timer);
  close_handle((uv_handle_t *)&d->grace_timer);
  pd_logf(&d->log, PD_LOG_INFO, "drained: %llu requests answered OK in all; exiting",
          (unsigned long long)atomic_load(&d->stats.requests[PD_STATUS_OK]));
}

static void check_drained(void *data) {
  pd_daemon *d = data;
  if (d->draining && !d->starting_drain && frontends_busy(d) == 0 &&
      pd_pipeline_in_flight(d->pipeline) == 0)
    finish(d);
}

static void on_drain_timeout(uv_timer_t *t) {
  pd_daemon *d = t->data;
  pd_logf(&d->log, PD_LOG_WARNING,
          "drain timeout (%ld s): closing %d connections with answers still owed",
          d->cfg.drain_timeout_s, frontends_busy(d));
  frontends_close_all(d);
}

static void drain(pd_daemon *d, const char *why) {
  if (d->draining) {
    pd_logf(&d->log, PD_LOG_WARNING, "%s again while draining: closing every connection now", why);
    frontends_close_all(d);
    return;
  }
  if (!d->in_grace) pd_sd_notify("STOPPING=1");
  d->in_grace = false;
  uv_timer_stop(&d->grace_timer);
  d->draining = true;
  pd_logf(&d->log, PD_LOG_INFO,
          "%s: draining: no new connections; answering %d requests in flight on %d connections",
          why, pd_pipeline_in_flight(d->pipeline), frontends_busy(d));
  if (d->cfg.drain_timeout_s > 0)
    uv_timer_start(&d->drain_timer, on_drain_timeout, (uint64_t)d->cfg.drain_timeout_s * 1000, 0);
  pd_pipeline_on_idle(d->pipeline, check_drained, d);
  d->starting_drain = true; /* no finish() while some front ends are still to be told */
  for (int i = 0; i < d->n_fe; i++)
    d->fe[i]->ops->drain(d->fe[i], check_drained, d);
  d->starting_drain = false;
  check_drained(d);
}

static void on_grace_end(uv_timer_t *t) {
  pd_daemon *d = t->data;
  drain(d, "drain grace over");
}

/* SIGTERM with limits.drain_grace_ms: Health, /v2/health/ready, ServerReady
 * and grpc.health.v1 say not ready (and /metrics planktond_draining 1) while
 * every listener stays open and every request is served as before, so a load
 * balancer that checks readiness stops sending here before the drain's
 * GOAWAY and closed listeners; gRPC core cancels the calls that reach it
 * between its shutdown and the client's reading of the GOAWAY, which a
 * balancer that no longer sends has none of. A second signal drains at once. */
static void stop(pd_daemon *d, const char *why) {
  if (d->in_grace) {
    pd_logf(&d->log, PD_LOG_WARNING, "%s during the drain grace: draining now", why);
    drain(d, why);
  } else if (d->draining || d->cfg.drain_grace_ms <= 0) {
    drain(d, why);
  } else {
    d->in_grace = true;
    pd_sd_notify("STOPPING=1");
    pd_logf(&d->log, PD_LOG_INFO,
            "%s: not ready; serving on for the drain grace (%ld ms) so load balancers see it, "
            "then draining",
            why, d->cfg.drain_grace_ms);
    uv_timer_start(&d->grace_timer, on_grace_end, (uint64_t)d->cfg.drain_grace_ms, 0);
  }
}

/* ---- reload ---- */

static void reload_load(uv_work_t *w) {
  pd_daemon *d = w->data;
  d->reload_repo = NULL;
  if (load_models(d, &d->reload_cfg, &d->reload_repo, &d->reload_err) != PD_OK)
    d->reload_repo = NULL;
}

static void start_reload(pd_daemon *d);
static void next_control(pd_daemon *d);

/* Keeps the result of the reload that just ended (message: what failed, or
 * NULL when it succeeded) and tells systemd it is ready again. */
static void reload_finished(pd_daemon *d, const char *message) {
  pd_reload_report *r = &d->last_reload;
  r->unix_time = (int64_t)time(NULL);
  r->failed = message != NULL;
  snprintf(r->message, sizeof r->message, "%s", message ? message : "");
  for (char *p = r->message; *p; p++) /* one line: a STATUS= notice ends at a newline */
    if (*p == '\n' || *p == '\r') *p = ' ';
  if (message) r->failures++;
  if (!d->draining) notify_ready(d);
}

static void reload_done(uv_work_t *w, int status) {
  pd_daemon *d = w->data;
  d->reloading = false;
  const char *failed = NULL;
  if (status != 0 || !d->reload_repo) {
    atomic_fetch_add(&d->stats.model_load_failures, 1);
    failed = status != 0 ? uv_strerror(status) : d->reload_err.msg;
    pd_logf(&d->log, PD_LOG_ERROR, "reload failed, still serving the previous model: %s", failed);
  } else if (d->draining) {
    pd_repo_free(d->reload_repo);
  } else {
    char names[1024];
    if (pd_config_keep_restart_only(&d->reload_cfg, &d->cfg, names, sizeof names) > 0)
      pd_logf(&d->log, PD_LOG_WARNING,
              "reload: %s changed: needs a restart (the running value stays until then)", names);
    d->cfg = d->reload_cfg;
    d->log.level = d->cfg.log_level;
    pd_pipeline_limits pl = pipeline_limits(&d->cfg);
    pd_pipeline_set_limits(d->pipeline, &pl);
    for (int i = 0; i < d->n_fe; i++)
      d->fe[i]->ops->set_limits(d->fe[i], &d->cfg);
    count_loads(d, d->reload_repo);
    pd_repo_keep_failed(d->reload_repo, pd_pipeline_repo(d->pipeline));
    log_repo(d, "reloaded:", d->reload_repo);
    pd_pipeline_set_repo(d->pipeline, d->reload_repo);
    log_limits(d, &d->cfg);
  }
  d->reload_repo = NULL;
  reload_finished(d, failed);
  if (d->control_head) {
    next_control(d); /* then a reload that waited */
  } else if (d->draining) {
    check_drained(d);
  } else if (d->reload_again) {
    d->reload_again = false;
    start_reload(d);
  }
}

static void start_reload(pd_daemon *d) {
  if (d->draining || d->in_grace) return;
  if (d->reloading || d->control_now) {
    d->reload_again = true;
    return;
  }
  /* RELOADING=1 with the time (systemd's Type=notify-reload wants it); every
   * reload ends with READY=1 and a STATUS= (reload_finished). */
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char reloading[80];
  snprintf(reloading, sizeof reloading, "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000);
  pd_sd_notify(reloading);
  pd_error err = {0};
  if (pd_settings_build(d->src, &d->reload_cfg, &err) != PD_OK) {
    atomic_fetch_add(&d->stats.model_load_failures, 1);
    pd_logf(&d->log, PD_LOG_ERROR, "reload failed, keeping the current settings and model: %s",
            err.msg);
    reload_finished(d, err.msg);
    return;
  }
  pd_logf(&d->log, PD_LOG_INFO, "SIGHUP: reloading settings%s%s and %s %s",
          d->src->config_path ? " from " : "", d->src->config_path ? d->src->config_path : "",
          d->reload_cfg.model_repository[0] ? "the models of repository" : "model",
          d->reload_cfg.model_repository[0] ? d->reload_cfg.model_repository
                                            : d->reload_cfg.model_dir);
  d->reloading = true;
  d->reload_work.data = d;
  int rc = uv_queue_work(&d->loop, &d->reload_work, reload_load, reload_done);
  if (rc != 0) {
    d->reloading = false;
    pd_logf(&d->log, PD_LOG_ERROR, "reload failed: cannot queue the load: %s", uv_strerror(rc));
    snprintf(err.msg, sizeof err.msg, "cannot queue the model load: %s", uv_strerror(rc));
    reload_finished(d, err.msg);
  }
}

/* ---- run-time model changes ---- */

static const char *op_name(pd_repo_op op) {
  return op == PD_REPO_LOAD ? "load" : op == PD_REPO_UNLOAD ? "unload" : "reload";
}

/* Answers mc (its status and message set) and lets the drain go on. */
static void control_answer(pd_daemon *d, pd_model_control *mc) {
  mc->n_versions = 0;
  const pd_repo *r = pd_pipeline_repo(d->pipeline);
  for (int i = 0; r && i < r->n && mc->n_versions < PD_MODEL_CONTROL_VERSIONS; i++)
    if (r->e[i].served && !strcmp(r->e[i].name, mc->name))
      snprintf(mc->versions[mc->n_versions++], sizeof mc->versions[0], "%s", r->e[i].version);
  mc->done(mc);
  pd_pipeline_unhold(d->pipeline);
}

static void control_work(uv_work_t *w) {
  pd_daemon *d = w->data;
  pd_model_control *mc = d->control_now;
  pd_served_options o = served_options(d, &d->cfg);
  pd_repo_op op = mc->op;
  const pd_repo *now = pd_pipeline_repo(d->pipeline);
  if (mc->load_or_reload && op == PD_REPO_LOAD && pd_repo_loaded(now, mc->name))
    op = mc->op = PD_REPO_RELOAD; /* the loop does not touch mc until control_done */
  d->control_repo = NULL;
  d->control_err.msg[0] = '\0';
  if (pd_repo_change(now, d->cfg.model_repository, op, mc->name, &o, (int)d->cfg.model_max_loaded,
                     &d->control_repo, &mc->status, &d->control_err) != PD_OK)
    d->control_repo = NULL;
}

static void control_done(uv_work_t *w, int status) {
  pd_daemon *d = w->data;
  pd_model_control *mc = d->control_now;
  d->control_now = NULL;
  pd_repo *r = d->control_repo;
  d->control_repo = NULL;
  if (status != 0 || !r) {
    if (status != 0) mc->status = PD_STATUS_INTERNAL;
    snprintf(mc->message, sizeof mc->message, "%s",
             status != 0 ? uv_strerror(status) : d->control_err.msg);
    if (mc->status == PD_STATUS_UNAVAILABLE) atomic_fetch_add(&d->stats.model_load_failures, 1);
    pd_logf(&d->log, PD_LOG_WARNING, "model control (%s from %s): %s '%s' failed: %s", mc->via,
            mc->peer, op_name(mc->op), mc->name, mc->message);
  } else {
    for (int i = 0; i < r->n; i++) /* the name's models: each loaded just now */
      if (r->e[i].served && !strcmp(r->e[i].name, mc->name)) {
        atomic_fetch_add(&d->stats.model_loads, 1);
        log_model(d, "model control: loaded", r->e[i].served);
      }
    pd_pipeline_set_repo(d->pipeline, r);
    mc->status = PD_STATUS_OK;
    snprintf(mc->message, sizeof mc->message, "%s '%s': done", op_name(mc->op), mc->name);
    pd_logf(&d->log, PD_LOG_INFO, "model control (%s from %s): %s '%s' done", mc->via, mc->peer,
            op_name(mc->op), mc->name);
  }
  control_answer(d, mc);
  next_control(d);
}

/* Starts the next waiting change, unless a change or reload runs; then a
 * reload that waited for it. */
static void next_control(pd_daemon *d) {
  while (!d->control_now && !d->reloading && d->control_head) {
    pd_model_control *mc = d->control_head;
    d->control_head = mc->next;
    if (!d->control_head) d->control_tail = NULL;
    mc->next = NULL;
    if (d->draining) {
      mc->status = PD_STATUS_UNAVAILABLE;
      snprintf(mc->message, sizeof mc->message, "draining: the daemon is shutting down");
      control_answer(d, mc);
      continue;
    }
    d->control_now = mc;
    d->control_work.data = d;
    int rc = uv_queue_work(&d->loop, &d->control_work, control_work, control_done);
    if (rc != 0) {
      d->control_now = NULL;
      mc->status = PD_STATUS_INTERNAL;
      snprintf(mc->message, sizeof mc->message, "cannot queue the change: %s", uv_strerror(rc));
      control_answer(d, mc);
    }
  }
  if (!d->control_now && !d->reloading && d->reload_again && !d->draining) {
    d->reload_again = false;
    start_reload(d);
  }
  if (!d->control_now && d->draining) check_drained(d);
}

/* The front ends' pd_model_control_fn. */
static void control_submit(void *ctx, pd_model_control *mc) {
  pd_daemon *d = ctx;
  char why[sizeof mc->message];
  mc->status = pd_control_allowed(&d->cfg, mc, why, sizeof why);
  mc->next = NULL;
  pd_pipeline_hold(d->pipeline);
  if (mc->status == PD_STATUS_OK && d->draining) {
    mc->status = PD_STATUS_UNAVAILABLE;
    snprintf(why, sizeof why, "draining: the daemon is shutting down");
  } else if (mc->status == PD_STATUS_OK && !d->cfg.model_repository[0]) {
    mc->status = PD_STATUS_FAILED_PRECONDITION;
    snprintf(why, sizeof why,
             "model control needs model.repository (model.dir alone is a repository of one)");
  }
  if (mc->status != PD_STATUS_OK) {
    snprintf(mc->message, sizeof mc->message, "%s", why);
    pd_logf(&d->log, PD_LOG_WARNING, "model control (%s from %s): %s '%s': %s", mc->via, mc->peer,
            op_name(mc->op), mc->name, why);
    control_answer(d, mc);
    return;
  }
  if (d->control_tail)
    d->control_tail->next = mc;
  else
    d->control_head = mc;
  d->control_tail = mc;
  next_control(d);
}

/* ---- signals and timers ---- */

static void on_signal(uv_signal_t *h, int signum) {
  pd_daemon *d = h->data;
  if (signum == SIGHUP)
    start_reload(d);
  else
    stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_tick(uv_timer_t *t) {
  pd_daemon *d = t->data;
  pd_stats_tick(&d->stats, pd_now_ns());
}

/* ---- start-up ---- */

/* Each front end opens its listeners: the sockets systemd passed that are
 * its own (by FileDescriptorName=; the one front end without a name takes
 * the rest), or those its settings name. */
static int open_listeners(pd_daemon *d, pd_error *err) {
  pd_sd_fds fds;
  int n = pd_sd_listen_fds(&fds);
  if (n < 0) return pd_error_set(err, PD_EIO, "sd_listen_fds: %s", strerror(-n));
  int rc = PD_OK;
  for (int i = 0; i < d->n_fe && rc == PD_OK; i++) {
    const pd_frontend_ops *ops = d->fe[i]->ops;
    int mine[PD_SD_MAX_FDS], n_mine = 0;
    for (int f = 0; f < fds.n; f++) {
      int owner = -1;
      for (int j = 0; j < d->n_fe && owner < 0; j++)
        if (d->fe[j]->ops->fd_name && !strcmp(d->fe[j]->ops->fd_name, fds.name[f])) owner = j;
      if (owner == i || (owner < 0 && !ops->fd_name)) mine[n_mine++] = fds.fd[f];
    }
    rc = ops->listen(d->fe[i], mine, n_mine, fds.n > 0, err);
  }
  return rc;
}

static int start(pd_daemon *d, pd_error *err) {
  pd_repo *models = NULL;
  int rc = load_models(d, &d->cfg, &models, err);
  if (rc != PD_OK) return rc;
  count_loads(d, models);
  log_repo(d, "loaded", models);
  log_limits(d, &d->cfg);
  pd_pipeline_limits pl = pipeline_limits(&d->cfg);
  rc = pd_pipeline_create(&d->loop, &pl, &d->stats, &d->pipeline, err);
  if (rc != PD_OK) {
    pd_repo_free(models);
    return rc;
  }
  pd_pipeline_set_repo(d->pipeline, models);
  long nofile = -1, raised_from = -1;
  int open_now = 0;
  d->fd_connection_cap = fd_connection_cap(&d->cfg, &nofile, &open_now, &raised_from);
  if (raised_from >= 0)
    pd_logf(&d->log, PD_LOG_INFO, "open-file limit raised from %ld to %ld for %ld connections",
            raised_from, nofile, d->cfg.max_connections);
  if (d->fd_connection_cap > 0 && d->fd_connection_cap < d->cfg.max_connections)
    pd_logf(&d->log, PD_LOG_WARNING,
            "limits.max_connections %ld lowered to %d by the open-file limit (RLIMIT_NOFILE %ld, "
            "%d descriptors open, %d kept for metrics, reloads and libuv)",
            d->cfg.max_connections, d->fd_connection_cap, nofile, open_now,
            PD_FD_RESERVE + (d->cfg.metrics[0] ? (int)d->cfg.metrics_max_connections : 0));
  d->env = (pd_frontend_env){.loop = &d->loop,
                             .pipeline = d->pipeline,
                             .stats = &d->stats,
                             .log = &d->log,
                             .report = fill_report,
                             .report_ctx = d,
                             .connection_cap = d->fd_connection_cap,
                             .control = control_submit,
                             .control_ctx = d};
  for (int i = 0; i < PD_N_FRONTENDS && rc == PD_OK; i++) {
    rc = frontend_list[i](&d->env, &d->cfg, &d->fe[d->n_fe], err);
    if (rc == PD_OK) d->n_fe++;
  }
  if (rc == PD_OK) rc = open_listeners(d, err);
  if (rc != PD_OK) return rc;
  uv_signal_init(&d->loop, &d->sig_term);
  uv_signal_init(&d->loop, &d->sig_int);
  uv_signal_init(&d->loop, &d->sig_hup);
  d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
  uv_signal_start(&d->sig_term, on_signal, SIGTERM);
  uv_signal_start(&d->sig_int, on_signal, SIGINT);
  uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
  uv_timer_init(&d->loop, &d->tick);
  uv_timer_init(&d->loop, &d->drain_timer);
  uv_timer_init(&d->loop, &d->grace_timer);
  d->tick.data = d->drain_timer.data = d->grace_timer.data = d;
  uv_timer_start(&d->tick, on_tick, 1000, 1000);
  return PD_OK;
}

static void close_all_handles(uv_handle_t *h, void *arg) {
  (void)arg;
  close_handle(h);
}

int pd_daemon_run(const pd_settings_source *src) {
  pd_daemon *d = calloc(1, sizeof *d);
  if (!d) {
    fprintf(stderr, "planktond: out of memory\n");
    return 1;
  }
  d->src = src;
  pd_error err = {0};
  int rc = pd_settings_build(src, &d->cfg, &err);
  pd_log_init(&d->log, rc == PD_OK ? d->cfg.log_level : PD_LOG_INFO);
  if (rc != PD_OK) {
    pd_logf(&d->log, PD_LOG_ERROR, "%s", err.msg);
    free(d);
    return 2;
  }
  if (d->cfg.decode_threads > 0) { /* read by libuv when its pool first starts */
    char n[24];
    snprintf(n, sizeof n, "%ld", d->cfg.decode_threads);
    setenv("UV_THREADPOOL_SIZE", n, 1);
  }
  pd_stats_init(&d->stats);
  uv_loop_init(&d->loop);
  pd_logf(&d->log, PD_LOG_INFO, "planktond %s starting (pid %d)%s%s", PD_VERSION, (int)getpid(),
          src->config_path ? ", config " : "", src->config_path ? src->config_path : "");
  rc = start(d, &err);
  if (rc != PD_OK) {
    pd_logf(&d->log, PD_LOG_ERROR, "start-up failed: %s", err.msg);
    d->exit_code = 1;
    frontends_close(d);
    if (d->pipeline) pd_pipeline_close(d->pipeline);
    uv_walk(&d->loop, close_all_handles, NULL);
  } else {
    notify_ready(d);
    pd_logf(&d->log, PD_LOG_INFO, "ready");
  }
  uv_run(&d->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&d->loop) != 0) {
    uv_walk(&d->loop, close_all_handles, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
  }
  int code = d->exit_code;
  free(d);
  return code;
}
