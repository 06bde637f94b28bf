/* pd_frontend: what the daemon needs of a front end (a server of one
 * protocol: the native framed protobuf, /metrics over HTTP, KServe over gRPC
 * or REST), as an ops table, so pd_daemon keeps a list of front ends and
 * drives them all the same way instead of holding code per protocol.
 *
 * A front end is made by its constructor (a pd_frontend_create_fn, listed in
 * pd_frontends.h) from the settings and what the daemon shares with it. The
 * constructor and set_limits map the settings to the front end's own limits:
 * this is the one place that reads pd_config for it, so the server modules
 * (native/, http/, ...) never see pd_config. Every op runs on the loop
 * thread. The life of one: create, listen, set_limits on each reload that
 * succeeds, drain on SIGTERM (close_all when the drain times out or a second
 * signal comes), close at exit (asynchronous, as uv_close: the front end is
 * freed once its handles have closed; destroy would be synchronous). */
#ifndef PD_FRONTEND_H
#define PD_FRONTEND_H

#include <stdbool.h>

#include <uv.h>

#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_model_control.h"
#include "pd_pipeline.h"
#include "pd_stats.h"

/* What the daemon shares with every front end (it outlives them). */
typedef struct pd_frontend_env {
  uv_loop_t *loop;
  pd_pipeline *pipeline;
  pd_stats *stats;
  const pd_log *log;
  /* Fills the parts of a stats report (already filled from `stats`) that
   * the stats module does not own: the model, the queue, the drain and every
   * front end's own figures (for Stats answers and /metrics). */
  void (*report)(void *ctx, pd_stats_report *r);
  void *report_ctx;
  /* Client connections the open-file limit leaves room for; -1: no cap. */
  int connection_cap;
  /* Run-time model changes (pd_model_control.h): the daemon checks who asks. */
  pd_model_control_fn control;
  void *control_ctx;
} pd_frontend_env;

typedef struct pd_frontend pd_frontend;

typedef struct pd_frontend_ops {
  const char *name; /* "native", "metrics": for messages */
  /* Socket activation: the FileDescriptorName= of the sockets that are this
   * front end's; NULL: every socket no other front end names. */
  const char *fd_name;
  /* Opens the listeners: the inherited sockets that are this front end's
   * (n_fds may be 0), or those the settings name. activated: systemd passed
   * sockets at all (to any front end). */
  int (*listen)(pd_frontend *fe, const int *fds, int n_fds, bool activated, pd_error *err);
  /* The settings after a reload (restart-only ones are unchanged). */
  void (*set_limits)(pd_frontend *fe, const pd_config *cfg);
  /* Adds the figures only this front end knows to a report (NULL: none). */
  void (*report)(const pd_frontend *fe, pd_stats_report *r);
  /* Stops taking new work and answers what it has taken; on_empty runs once
   * busy() is 0 (at once if it is). */
  void (*drain)(pd_frontend *fe, void (*on_empty)(void *), void *data);
  /* What a drain waits for: connections with answers owed, or requests. */
  int (*busy)(const pd_frontend *fe);
  /* Closes every connection now (drain timeout). */
  void (*close_all)(pd_frontend *fe);
  /* Closes everything and frees the front end once its handles are closed. */
  void (*close)(pd_frontend *fe);
} pd_frontend_ops;

/* Each front end's own struct begins with this. */
struct pd_frontend {
  const pd_frontend_ops *ops;
};

/* Makes a front end (nothing listens yet). */
typedef int (*pd_frontend_create_fn)(const pd_frontend_env *env, const pd_config *cfg,
                                     pd_frontend **out, pd_error *err);

#endif
