/* pd_adaptive: the load-adaptive TTA rule (batching.adaptive_tta,
 * daemon/README.md "Adaptive TTA"). Owns nothing: a pure function of the
 * settings and of the queue's state when a request is admitted, so the
 * pipeline can decide a request's views before its decode makes them.
 *
 * A request that asked for its own tta keeps it; the others get the
 * model's default count `full` while the wait -- how long the oldest
 * request waiting in the batcher has been in the daemon, or, when longer
 * and other requests are in flight, how long the last request decoded
 * waited for a decode thread -- is at most the bound (batching.adaptive_tta_wait_us, or,
 * when that is 0, twice the moving average of a batch's compute time), and
 * half of it for each whole bound the wait is beyond that: more
 * than 1 and up to 2 bounds: full / 2, more than 2 and up to 3: full / 4,
 * and so on, never fewer than min_views (nor more than full). Before any
 * batch was computed the automatic bound is unknown and nothing is
 * reduced. */
#ifndef PD_ADAPTIVE_H
#define PD_ADAPTIVE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pd_adaptive_tta {
  bool on;
  int min_views;    /* >= 1 */
  uint64_t wait_ns; /* the bound; 0: 2 x compute_avg_ns */
} pd_adaptive_tta;

/* The bound the rule uses now (0: unknown, no reduction). */
uint64_t pd_adaptive_bound_ns(const pd_adaptive_tta *a, uint64_t compute_avg_ns);

/* The views for a request without a tta of its own. */
int pd_adaptive_views(const pd_adaptive_tta *a, int full, uint64_t oldest_wait_ns,
                      uint64_t compute_avg_ns);

#endif
