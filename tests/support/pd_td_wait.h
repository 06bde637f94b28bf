/* pd_td_wait: waiting in the daemon tests. Timeouts scaled for slow runs
 * (valgrind, sanitizers) and polls of the daemon's Stats until a condition
 * holds, in place of fixed sleeps.
 *
 * The scale: pd_td_timeout_scale() (pd_daemon_test.h). */
#ifndef PD_TD_WAIT_H
#define PD_TD_WAIT_H

#include <stdbool.h>

#include "pd_daemon_test.h"

/* pd_td_timeout_scale() is the harness's (pd_daemon_test.h). ms (or s) times the scale. */
int pd_td_scaled_ms(double ms);
int pd_td_scaled_s(double s);

/* One Stats answer on a fresh connection (which the answer counts among
 * `connections`); NULL when none came. Free with pc_client_response_free. */
pc_client_response *pd_td_get_stats(const pd_td *d);

/* Polls Stats (every 20 ms, each on a fresh connection) until holds(stats,
 * ctx) is true or timeout_ms (scaled) pass. True when it held; *last (may
 * be NULL) gets the last answer (free it), NULL when none came. */
typedef bool (*pd_td_stats_cond)(const pc_client_stats_result *s, void *ctx);
bool pd_td_poll_stats(const pd_td *d, pd_td_stats_cond holds, void *ctx, int timeout_ms,
                      pc_client_response **last);

#endif
