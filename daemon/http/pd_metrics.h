/* pd_metrics: the Prometheus text exposition (format 0.0.4) of a stats
 * report, with Triton-like names (planktond_inference_request_success_total,
 * ..._queue_duration_seconds, ..._compute_infer_duration_seconds, average
 * batch = inference_count / inference_exec_count). Pure formatting: owns
 * only the text it returns. */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>

#include "pd_process.h"
#include "pd_stats.h"

/* A malloc'ed text of *len bytes; NULL when out of memory. proc: the
 * process_* figures (NULL: left out, as when /proc could not be read). */
char *pd_metrics_render(const pd_stats_report *r, const pd_process_stats *proc, size_t *len);

#endif
