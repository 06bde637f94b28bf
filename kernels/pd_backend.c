/* pd_backend: the wrappers over a backend's ops (argument checks, the
 * one-batch-in-flight bookkeeping) and the synchronous submit/wait split. */
#include "pd_backend.h"

#include <stdlib.h>
#include <string.h>

int pd_plan_create(pd_backend *be, const pd_graph *g, int max_batch, pd_plan **out, pd_error *err) {
  if (!be || !g || !out) return pd_error_set(err, PD_EINVAL, "plan_create: null argument");
  if (max_batch < 1)
    return pd_error_set(err, PD_EINVAL, "plan_create: max_batch %d must be >= 1", max_batch);
  return be->ops->plan_create(be, g, max_batch, out, err);
}

static int check_batch(const char *what, pd_plan *plan, const pd_batch *in, float *probs,
                       pd_error *err) {
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (!plan || !in || !probs) return pd_error_set(err, PD_EINVAL, "%s: null argument", what);
  if (base->in_flight)
    return pd_error_set(err, PD_EINVAL, "%s: the plan has a batch in flight (wait for it first)",
                        what);
  if (in->n < 0 || in->n > base->max_batch)
    return pd_error_set(err, PD_EINVAL, "%s: batch of %d images exceeds the plan's max_batch %d",
                        what, in->n, base->max_batch);
  for (int b = 0; b < base->graph->n_branches; b++)
    if (in->n > 0 && !in->branch[b])
      return pd_error_set(err, PD_EINVAL, "%s: no input for branch '%s'", what,
                          base->graph->branches[b].name);
  return PD_OK;
}

int pd_plan_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  PD_TRY(check_batch("plan_run", plan, in, probs, err));
  return ((const struct pd_plan_base *)plan)->ops->run(plan, in, probs, err);
}

int pd_plan_submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  PD_TRY(check_batch("plan_submit", plan, in, probs, err));
  struct pd_plan_base *base = (struct pd_plan_base *)plan;
  const int rc = base->ops->submit ? base->ops->submit(plan, in, probs, err)
                                   : pd_plan_sync_submit(plan, in, probs, err);
  if (rc == PD_OK) base->in_flight = true;
  return rc;
}

int pd_plan_wait(pd_plan *plan, pd_error *err) {
  struct pd_plan_base *base = (struct pd_plan_base *)plan;
  if (!plan) return pd_error_set(err, PD_EINVAL, "plan_wait: null argument");
  if (!base->in_flight) return pd_error_set(err, PD_EINVAL, "plan_wait: no batch in flight");
  base->in_flight = false;
  return base->ops->wait ? base->ops->wait(plan, err) : pd_plan_sync_wait(plan, err);
}

bool pd_plan_in_flight(const pd_plan *plan) {
  return plan && ((const struct pd_plan_base *)plan)->in_flight;
}

int pd_plan_sync_submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  (void)err; /* the run's error is wait's */
  struct pd_plan_base *base = (struct pd_plan_base *)plan;
  base->sync_err = (pd_error){0};
  base->sync_rc = base->ops->run(plan, in, probs, &base->sync_err);
  return PD_OK;
}

int pd_plan_sync_wait(pd_plan *plan, pd_error *err) {
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (base->sync_rc != PD_OK) {
    if (err) *err = base->sync_err;
    return base->sync_rc;
  }
  return PD_OK;
}

void *pd_plan_host_alloc(pd_plan *plan, size_t bytes) {
  if (!plan) return NULL;
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (base->ops->host_alloc) return base->ops->host_alloc(plan, bytes);
  return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); /* never 0 bytes */
}

void pd_plan_host_free(pd_plan *plan, void *p) {
  if (!plan || !p) return;
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (base->ops->host_free)
    base->ops->host_free(plan, p);
  else
    free(p);
}

void pd_plan_destroy(pd_plan *plan) {
  if (plan) ((const struct pd_plan_base *)plan)->ops->plan_destroy(plan);
}

void pd_backend_destroy(pd_backend *be) {
  if (be) be->ops->destroy(be);
}
