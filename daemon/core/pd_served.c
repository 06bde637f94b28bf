#include "pd_served.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_backend_select.h"
#ifdef PD_FAULT_INJECTION
#include "pd_fault.h"
#endif
#include "pd_request.h"

static void served_free(pd_served *s) {
  if (s->plan) pd_plan_destroy(s->plan);
  if (s->backend) pd_backend_destroy(s->backend);
  for (int b = 0; b < PD_MAX_BRANCHES; b++)
    free(s->batch_in[b]);
  free(s->batch_probs);
  pd_model_free(s->model);
  free(s);
}

int pd_served_load(const pd_served_options *opt, pd_served **out, pd_error *err) {
  uint64_t t0 = pd_now_ns();
  pd_served *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "out of memory loading model %s", opt->dir);
  atomic_init(&s->refs, 1);
  s->max_batch = opt->max_batch;
  int rc = pd_model_load(opt->dir, &s->model, err);
  if (rc != PD_OK) {
    free(s);
    return rc;
  }
  const pd_model *m = s->model;
  for (int b = 0; b < m->n_branches; b++) {
    s->slot_len[b] = pd_model_branch_input_len(m, b);
    s->slot_floats += s->slot_len[b];
    s->batch_in[b] = malloc((size_t)opt->max_batch * s->slot_len[b] * sizeof(float));
    if (!s->batch_in[b]) rc = PD_ENOMEM;
  }
  s->batch_probs = malloc((size_t)opt->max_batch * m->n_classes * sizeof(float));
  if (rc != PD_OK || !s->batch_probs) {
    served_free(s);
    return pd_error_set(err, PD_ENOMEM, "model %s: out of memory for batches of %d", opt->dir,
                        opt->max_batch);
  }
  int threads = opt->threads;
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  pd_backend_reason reason = {0};
  rc = pd_backend_create_by_name(opt->backend, opt->device, threads, &s->backend, &reason, err);
#ifdef PD_FAULT_INJECTION /* the test binary planktond-faultinject only */
  if (rc == PD_OK) rc = pd_fault_wrap(&s->backend, err);
#endif
  /* Threads the plan starts inherit this thread's name: "pd-plan" tells them
   * apart in top and in bench/daemon's CPU accounting. */
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  pthread_setname_np(pthread_self(), "pd-plan");
  if (rc == PD_OK) rc = pd_plan_create(s->backend, m, opt->max_batch, &s->plan, err);
  pthread_setname_np(pthread_self(), name);
  if (rc != PD_OK) {
    pd_error_prefix(err, "model %s", opt->dir);
    served_free(s);
    return rc;
  }
  snprintf(s->backend_name, sizeof s->backend_name, "%s", reason.name);
  snprintf(s->backend_reason, sizeof s->backend_reason, "%s", reason.text);
  s->threads = strcmp(reason.name, "cpu") ? 0 : threads < opt->max_batch ? threads : opt->max_batch;
  s->loaded_at = time(NULL);
  s->load_seconds = (double)(pd_now_ns() - t0) * 1e-9;
  *out = s;
  return PD_OK;
}

pd_served *pd_served_ref(pd_served *s) {
  if (s) atomic_fetch_add(&s->refs, 1);
  return s;
}

void pd_served_unref(pd_served *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) served_free(s);
}
