#include "pd_served.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_backend_select.h"
#include "pd_clock.h"
#include "pd_precision_pick.h"

static void served_free(pd_served *s) {
  pd_servable_free(s->servable);
  if (s->backend) pd_backend_destroy(s->backend);
  free(s);
}

/* s->info: member 0 with the folder's identity (see pd_served.h). */
static void describe(pd_served *s) {
  const pd_ensemble *e = s->servable->e;
  s->info = *e->members[0];
  snprintf(s->info.dir, sizeof s->info.dir, "%s", e->dir);
  snprintf(s->info.name, sizeof s->info.name, "%s", e->name);
  snprintf(s->info.version, sizeof s->info.version, "%s", e->version);
  s->info.tta.count = e->tta_count;
  s->info.n_params = 0;
  for (int m = 0; m < e->n_members; m++)
    s->info.n_params += e->members[m]->n_params;
  s->model = &s->info;
}

/* The precision, CPU features and per-layer kernels of what was planned
 * (a wrapped CPU backend, planktond-faultinject's, runs what was asked). */
static void describe_engine(pd_served *s, pd_precision prec) {
  pd_cpu_features_describe(s->cpu_features, sizeof s->cpu_features);
  const pd_plan *plan = s->servable->plans[0];
  const int cpu_plan = plan && strcmp(((const struct pd_plan_base *)plan)->ops->name, "cpu") == 0;
  const int cpu = strcmp(s->backend_name, "cpu") == 0;
  if (cpu_plan) pd_cpu_plan_kernels(plan, s->kernels, sizeof s->kernels);
  const pd_precision ran = cpu_plan ? pd_cpu_plan_precision(plan) : cpu ? prec : PD_PRECISION_FP32;
  snprintf(s->precision, sizeof s->precision, "%s", pd_precision_name(ran));
  if (!cpu && prec != PD_PRECISION_FP32)
    snprintf(s->precision_reason, sizeof s->precision_reason, "fp32 (%s runs fp32 only)",
             s->backend_name);
}

int pd_served_load(const pd_served_options *opt, pd_served **out, pd_error *err) {
  uint64_t t0 = pd_now_ns();
  pd_served *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "out of memory loading model %s", opt->dir);
  atomic_init(&s->refs, 1);
  s->max_batch = opt->max_batch;
  int threads = opt->threads;
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  pd_ensemble *e = NULL;
  int rc = pd_ensemble_load(opt->dir, &e, err);
  if (rc != PD_OK) {
    free(s);
    return rc;
  }
  pd_precision asked = PD_PRECISION_FP32, prec = PD_PRECISION_FP32;
  if (opt->precision) rc = pd_precision_parse(opt->precision, &asked, err);
  if (rc == PD_OK)
    rc = pd_precision_pick(e, asked, &prec, s->precision_reason, sizeof s->precision_reason, err);
  if (rc != PD_OK) {
    pd_error_prefix(err, "model %s", opt->dir);
    pd_ensemble_free(e);
    free(s);
    return rc;
  }
  pd_backend_reason reason = {0};
  pd_backend_request req = pd_backend_request_default();
  req.name = opt->backend;
  req.cuda.device = opt->device;
  req.cpu.threads = threads;
  req.cpu.precision = prec;
  /* CUDA runs fp32 only for now: auto means fp32 there, a named precision is passed on to be
   * refused. */
  req.cuda.precision = asked == PD_PRECISION_BF16   ? PD_CUDA_BF16
                       : asked == PD_PRECISION_INT8 ? PD_CUDA_INT8
                                                    : PD_CUDA_FP32;
  rc = pd_backend_create_request(&req, &s->backend, &reason, err);
  if (rc == PD_OK && opt->wrap_backend) rc = opt->wrap_backend(&s->backend, err);
  /* Threads the plan starts inherit this thread's name: "pd-plan" tells them
   * apart in top and in bench/daemon's CPU accounting. */
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  pthread_setname_np(pthread_self(), "pd-plan");
  if (rc == PD_OK) rc = pd_servable_create(s->backend, e, opt->max_batch, &s->servable, err);
  if (rc != PD_OK && s->backend) {
    /* Under auto, a plan that failed on the GPU is made on the CPU instead. */
    const pd_error plan_err = *err;
    const pd_backend_reason chosen = reason;
    pd_backend_destroy(s->backend);
    s->backend = NULL;
    rc = pd_backend_fall_back(&req, &chosen, &plan_err, &s->backend, &reason, err);
    if (rc == PD_OK && opt->wrap_backend) rc = opt->wrap_backend(&s->backend, err);
    if (rc == PD_OK) rc = pd_servable_create(s->backend, e, opt->max_batch, &s->servable, err);
  }
  pthread_setname_np(pthread_self(), name);
  if (rc != PD_OK) {
    pd_error_prefix(err, "model %s", opt->dir);
    pd_ensemble_free(e);
    served_free(s);
    return rc;
  }
  s->servable->owns = true;
  describe(s);
  snprintf(s->backend_name, sizeof s->backend_name, "%s", reason.name);
  snprintf(s->backend_reason, sizeof s->backend_reason, "%s", reason.text);
  s->threads = strcmp(reason.name, "cpu") ? 0 : threads < opt->max_batch ? threads : opt->max_batch;
  describe_engine(s, prec);
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
