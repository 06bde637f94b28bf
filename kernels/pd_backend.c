#include "pd_backend.h"

int pd_plan_create(pd_backend *be, const pd_graph *g, int max_batch, pd_plan **out, pd_error *err) {
  if (!be || !g || !out) return pd_error_set(err, PD_EINVAL, "plan_create: null argument");
  if (max_batch < 1)
    return pd_error_set(err, PD_EINVAL, "plan_create: max_batch %d must be >= 1", max_batch);
  return be->ops->plan_create(be, g, max_batch, out, err);
}

int pd_plan_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  const struct pd_plan_base *base = (const struct pd_plan_base *)plan;
  if (!plan || !in || !probs) return pd_error_set(err, PD_EINVAL, "plan_run: null argument");
  if (in->n < 0 || in->n > base->max_batch)
    return pd_error_set(err, PD_EINVAL,
                        "plan_run: batch of %d images exceeds the plan's max_batch %d", in->n,
                        base->max_batch);
  for (int b = 0; b < base->graph->n_branches; b++)
    if (in->n > 0 && !in->branch[b])
      return pd_error_set(err, PD_EINVAL, "plan_run: no input for branch '%s'",
                          base->graph->branches[b].name);
  return base->ops->run(plan, in, probs, err);
}

void pd_plan_destroy(pd_plan *plan) {
  if (plan) ((const struct pd_plan_base *)plan)->ops->plan_destroy(plan);
}

void pd_backend_destroy(pd_backend *be) {
  if (be) be->ops->destroy(be);
}
