/* pd_http_metrics: the GET /metrics handler of a pd_http server. Asks its
 * source for a whole stats report (the daemon's: stats, model, front ends),
 * renders it as Prometheus text (pd_metrics) and answers 200, or 500 and a
 * close when out of memory. Owns nothing; the source outlives the route. */
#ifndef PD_HTTP_METRICS_H
#define PD_HTTP_METRICS_H

#include "pd_http.h"
#include "pd_stats.h"

typedef struct pd_http_metrics_source {
  void (*fill)(void *ctx, pd_stats_report *r);
  void *ctx;
  /* the per-model figures of this pipeline follow (pd_metrics_models); NULL: none */
  const struct pd_pipeline *pipeline;
} pd_http_metrics_source;

/* Registers GET (and HEAD) `path` ("/metrics") on `h`. */
int pd_http_metrics_route(pd_http *h, const char *path, const pd_http_metrics_source *src,
                          pd_error *err);

#endif
