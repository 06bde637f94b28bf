#include "pd_served.h"

#include <pthread.h>
#include <stdarg.h>
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
  s->info.thresholds = e->thresholds; /* the folder's, not member 0's */
  s->info.lineage = e->lineage;
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
  if (plan && strcmp(((const struct pd_plan_base *)plan)->ops->name, "cuda") == 0) {
    /* the plan's summary and what the algorithm cache did: its first lines */
    char text[2048];
    pd_cuda_plan_describe(plan, text, sizeof text);
    char *second = strchr(text, '\n');
    if (second && strncmp(second + 1, "algorithm cache", 15) == 0)
      second = strchr(second + 1, '\n');
    if (second) *second = '\0';
    for (char *q = text; (q = strchr(q, '\n'));)
      *q = ';';
    snprintf(s->kernels, sizeof s->kernels, "%.1000s", text);
  }
  /* CUDA runs fp32, tf32 and fp16 (the others it refuses: not here); auto is fp32 there */
  const bool gpu_named = prec == PD_PRECISION_TF32 || prec == PD_PRECISION_FP16;
  const pd_precision ran = cpu_plan    ? pd_cpu_plan_precision(plan)
                           : cpu       ? prec
                           : gpu_named ? prec
                                       : PD_PRECISION_FP32;
  snprintf(s->precision, sizeof s->precision, "%s", pd_precision_name(ran));
  if (!cpu && ran != prec)
    snprintf(s->precision_reason, sizeof s->precision_reason, "fp32 (%s runs fp32, tf32, fp16)",
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
  /* the folder's serving: settings, in place of the daemon's */
  s->own_max_batch = e->serving.max_batch > 0;
  if (s->own_max_batch) s->max_batch = e->serving.max_batch;
  s->own_max_queue_delay = e->serving.has_max_queue_delay;
  s->max_queue_delay_ns = (uint64_t)e->serving.max_queue_delay_us * 1000u;
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
  /* CUDA: auto means fp32 there; a precision it does not run is passed on to be refused. */
  req.cuda.precision = asked == PD_PRECISION_BF16   ? PD_CUDA_BF16
                       : asked == PD_PRECISION_INT8 ? PD_CUDA_INT8
                       : asked == PD_PRECISION_TF32 ? PD_CUDA_TF32
                       : asked == PD_PRECISION_FP16 ? PD_CUDA_FP16
                                                    : PD_CUDA_FP32;
  req.cuda.graphs = opt->cuda_graphs;
  const long ws_mb = opt->cuda_workspace_mb > 0 ? opt->cuda_workspace_mb : 256;
  req.cuda.workspace_limit = (size_t)ws_mb << 20;
  const char *cache = opt->cuda_algo_cache_dir ? opt->cuda_algo_cache_dir : "";
  snprintf(req.cuda.algo_cache_dir, sizeof req.cuda.algo_cache_dir, "%s", cache);
  snprintf(s->cuda_options, sizeof s->cuda_options, "graphs %s, workspace %ld MiB, %s%.255s",
           opt->cuda_graphs ? "on" : "off", ws_mb,
           cache[0] ? "algorithm cache " : "no algorithm cache", cache);
  rc = pd_backend_create_request(&req, &s->backend, &reason, err);
  if (rc == PD_OK && opt->wrap_backend) rc = opt->wrap_backend(&s->backend, err);
  /* Threads the plan starts inherit this thread's name: "pd-plan" tells them
   * apart in top and in bench/daemon's CPU accounting. */
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  pthread_setname_np(pthread_self(), "pd-plan");
  if (rc == PD_OK) rc = pd_servable_create(s->backend, e, s->max_batch, &s->servable, err);
  if (rc != PD_OK && s->backend) {
    /* Under auto, a plan that failed on the GPU is made on the CPU instead. */
    const pd_error plan_err = *err;
    const pd_backend_reason chosen = reason;
    pd_backend_destroy(s->backend);
    s->backend = NULL;
    rc = pd_backend_fall_back(&req, &chosen, &plan_err, &s->backend, &reason, err);
    if (rc == PD_OK && opt->wrap_backend) rc = opt->wrap_backend(&s->backend, err);
    if (rc == PD_OK) rc = pd_servable_create(s->backend, e, s->max_batch, &s->servable, err);
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
  s->threads = strcmp(reason.name, "cpu") ? 0 : threads < s->max_batch ? threads : s->max_batch;
  describe_engine(s, prec);
  s->loaded_at = time(NULL);
  s->load_seconds = (double)(pd_now_ns() - t0) * 1e-9;
  const char *act = opt->on_device_error ? opt->on_device_error : "auto";
  s->rebuild_on_cpu = strcmp(act, "cpu") == 0 || (strcmp(act, "auto") == 0 &&
                                                  !(opt->backend && !strcmp(opt->backend, "cuda")));
  s->cpu = req.cpu;
  s->wrap_backend = opt->wrap_backend;
  s->log = opt->log;
  s->log_ctx = opt->log_ctx;
  *out = s;
  return PD_OK;
}

/* ---- sticky device errors (engine thread) ---- */

__attribute__((format(printf, 3, 4))) static void say(const pd_served *s, int level,
                                                      const char *fmt, ...) {
  if (!s->log) return;
  char line[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->log(s->log_ctx, level, line);
}

/* The new plans on the CPU; the old backend goes once its plans are gone. */
static int rebuild_on_cpu(pd_served *s, pd_error *err) {
  pd_backend *be = NULL;
  int rc = pd_cpu_backend_create(&s->cpu, &be, err);
  if (rc == PD_OK && s->wrap_backend) rc = s->wrap_backend(&be, err);
  if (rc == PD_OK) rc = pd_servable_replan(s->servable, be, err);
  if (rc != PD_OK) {
    if (be) pd_backend_destroy(be);
    return rc;
  }
  pd_backend *old = s->backend;
  s->backend = be;
  if (old) pd_backend_destroy(old);
  return PD_OK;
}

void pd_served_device_error(pd_served *s, const pd_error *e) {
  const int state = atomic_load_explicit(&s->device_state, memory_order_acquire);
  if (state == PD_DEVICE_FAILING) return;
  if (state == PD_DEVICE_OK) snprintf(s->device_error, sizeof s->device_error, "%s", e->msg);
  const char *name = s->model->name, *version = s->model->version;
  const char *now = pd_served_backend_now(s);
  if (!s->rebuild_on_cpu || state == PD_DEVICE_ON_CPU) {
    atomic_store_explicit(&s->device_state, PD_DEVICE_FAILING, memory_order_release);
    say(s, 0,
        "model %s version %s: sticky device error on backend %s: %s; engine.on_device_error %s: "
        "out of service, every batch fails INTERNAL until a reload (SIGHUP) makes a new plan",
        name, version, now, e->msg, state == PD_DEVICE_ON_CPU ? "cpu (already rebuilt)" : "fail");
    return;
  }
  say(s, 1,
      "model %s version %s: sticky device error on backend %s: %s; engine.on_device_error cpu: "
      "rebuilding its plan on the CPU (requests wait in the queue)",
      name, version, now, e->msg);
  const uint64_t t0 = pd_now_ns();
  pd_error err = {0};
  if (rebuild_on_cpu(s, &err) != PD_OK) {
    atomic_store_explicit(&s->device_state, PD_DEVICE_FAILING, memory_order_release);
    say(s, 0,
        "model %s version %s: cannot rebuild on the CPU: %s; out of service, every batch fails "
        "INTERNAL until a reload (SIGHUP) makes a new plan",
        name, version, err.msg);
    return;
  }
  atomic_store_explicit(&s->device_state, PD_DEVICE_ON_CPU, memory_order_release);
  say(s, 2, "model %s version %s: rebuilt on the CPU in %.2f s; serving on cpu", name, version,
      (double)(pd_now_ns() - t0) * 1e-9);
}

int pd_served_device_state(const pd_served *s) {
  return atomic_load_explicit(&s->device_state, memory_order_acquire);
}

const char *pd_served_backend_now(const pd_served *s) {
  return pd_served_device_state(s) == PD_DEVICE_ON_CPU ? "cpu" : s->backend_name;
}

const char *pd_served_on_device_error(const pd_served *s) {
  return s->rebuild_on_cpu ? "cpu" : "fail";
}

const char *pd_served_device_state_name(const pd_served *s) {
  static const char *const names[] = {"ok", "rebuilt_on_cpu", "failing"};
  return names[pd_served_device_state(s)];
}

pd_served *pd_served_ref(pd_served *s) {
  if (s) atomic_fetch_add(&s->refs, 1);
  return s;
}

void pd_served_unref(pd_served *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) served_free(s);
}
