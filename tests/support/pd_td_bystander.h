/* pd_td_bystander: the well-behaved client of the hostile-client tests. On
 * its own thread and connection it classifies one PNG crop again and again
 * (a short pause between requests: the machine is shared) and checks every
 * answer's full distribution against the engine's own, so a test can show
 * that the daemon keeps serving others correctly while it is attacked. */
#ifndef PD_TD_BYSTANDER_H
#define PD_TD_BYSTANDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd_daemon_test.h"
#include "pd_test.h"

typedef struct pd_td_bystander {
  /* set by the caller before pd_td_bystander_start */
  const pd_td *d;
  const uint8_t *png;
  size_t png_len;
  const float *want; /* the engine's probabilities for the crop */
  int n_classes;
  double tol; /* largest difference allowed per probability */
  /* the thread's */
  pthread_t t;
  atomic_int stop, ok, failed, wrong;
} pd_td_bystander;

void pd_td_bystander_start(pd_td_bystander *b);
/* Waits for `more` further correct answers (a bound, not a timing check:
 * up to 60 s); false if they do not come or a request failed. */
bool pd_td_bystander_progress(pd_td_bystander *b, int more);
/* Stops and joins the thread; ok/failed/wrong hold the final counts. */
void pd_td_bystander_stop(pd_td_bystander *b);

/* What the hostile-client tests' cases share: a daemon of their own with a
 * bystander on it. */
typedef struct pd_td_guarded {
  pd_td d;
  pd_td_bystander b;
} pd_td_guarded;
/* Starts planktond with args (pd_td_start) and the bystander `proto` (its
 * crop, the engine's answer and the tolerance; d is set here) on it. False,
 * with a failed check in st, when the daemon did not start. */
bool pd_td_guarded_start(pd_test_state *st, pd_td_guarded *g, const char *const *args,
                         const pd_td_bystander *proto);
/* Stops the bystander (checks in st: it had correct answers, no failure,
 * nothing wrong), then the daemon (SIGTERM, exit 0); prints the daemon's log
 * on stderr when a check of st failed, and removes its folder. */
void pd_td_guarded_stop(pd_test_state *st, pd_td_guarded *g);

#endif
