/* pd_frontends: the front ends this daemon is built with, each a
 * pd_frontend (pd_frontend.h) whose constructor maps the settings to its
 * server's limits. pd_daemon.c lists them; a new protocol is a new
 * constructor here, its settings rows in pd_config.c and one line in that
 * list. */
#ifndef PD_FRONTENDS_H
#define PD_FRONTENDS_H

#include "pd_frontend.h"

/* plankton.proto over frames (native/): listen.socket, listen.tcp and every
 * inherited socket not named for another front end. */
int pd_frontend_native_create(const pd_frontend_env *env, const pd_config *cfg, pd_frontend **out,
                              pd_error *err);

/* GET /metrics over HTTP (http/): metrics.listen, or the inherited socket
 * named "metrics". Not draining: it answers scrapes until the exit. */
int pd_frontend_metrics_create(const pd_frontend_env *env, const pd_config *cfg, pd_frontend **out,
                               pd_error *err);

#ifdef PD_HAVE_KSERVE
/* KServe v2 over gRPC and REST (kserve/): kserve.grpc_listen,
 * kserve.http_listen. */
#include "pd_kserve.h"
#endif

#endif
