/* pd_metrics_models: the per-model part of /metrics: each model's
 * requests by status, images, and the sums and counts of its request,
 * queue and compute durations, with `model` and `version` labels (as
 * Triton's), and whether each model of the repository is ready. The
 * unlabelled families of pd_metrics are the totals. Owns only the text it
 * returns. */
#ifndef PD_METRICS_MODELS_H
#define PD_METRICS_MODELS_H

#include <stddef.h>

#include "pd_pipeline.h"

/* A malloc'ed text of *len bytes; NULL when out of memory. */
char *pd_metrics_models_render(const pd_pipeline *p, size_t *len);

#endif
