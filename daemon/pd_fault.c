#include "pd_fault.h"

#include <stdbool.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct fault_rules {
  long every, from, to, after;
  long delay_ms;     /* every run sleeps this long first (a slow device) */
  long leak_bytes;   /* every run loses this many bytes per image (a leak, for the soak) */
  long device_error; /* this run is a sticky device error: its plan is dead from then on */
} fault_rules;

typedef struct fault_backend {
  pd_backend base;
  pd_backend *inner;
  fault_rules rules;
} fault_backend;

/* leak_bytes: what the runs took, held until the plan is destroyed (the
 * daemon's memory grows as a leak's would, and nothing is lost for good) */
typedef struct leak_block {
  struct leak_block *next;
} leak_block;

typedef struct fault_plan {
  struct pd_plan_base base; /* first: pd_plan_run finds the ops here */
  pd_plan *inner;
  const fault_backend *be;
  leak_block *leaked;
  char dead_why[200];       /* after device_error: the error every later run names */
  struct timespec t_submit; /* the batch in flight: when it was submitted */
  int held_rc;              /* and its injected fault, for wait */
  pd_error held_err;
} fault_plan;

static atomic_long runs; /* over the process, every plan */

static int parse_rules(const char *spec, fault_rules *r, pd_error *err) {
  memset(r, 0, sizeof *r);
  if (!spec) return PD_OK;
  const char *p = spec;
  while (*p) {
    char *end;
    if (!strncmp(p, "every=", 6)) {
      r->every = strtol(p + 6, &end, 10);
    } else if (!strncmp(p, "after=", 6)) {
      r->after = strtol(p + 6, &end, 10);
    } else if (!strncmp(p, "delay_ms=", 9)) {
      r->delay_ms = strtol(p + 9, &end, 10);
    } else if (!strncmp(p, "device_error=", 13)) {
      r->device_error = strtol(p + 13, &end, 10);
    } else if (!strncmp(p, "leak_bytes=", 11)) {
      r->leak_bytes = strtol(p + 11, &end, 10);
    } else if (!strncmp(p, "runs=", 5)) {
      r->from = r->to = strtol(p + 5, &end, 10);
      if (*end == ':') r->to = strtol(end + 1, &end, 10);
    } else {
      return pd_error_set(err, PD_EINVAL, "PD_FAULT_INJECT '%s': unknown rule at '%s'", spec, p);
    }
    if ((*end && *end != ',') || r->delay_ms < 0 || r->leak_bytes < 0 || r->device_error < 0)
      return pd_error_set(err, PD_EINVAL, "PD_FAULT_INJECT '%s': bad number at '%s'", spec, p);
    p = *end ? end + 1 : end;
  }
  return PD_OK;
}

static bool should_fail(const fault_rules *r, long run) {
  return (r->every > 0 && run % r->every == 0) || (r->from > 0 && run >= r->from && run <= r->to) ||
         (r->after > 0 && run > r->after);
}

/* Sleeps until `ms` after t0 (CLOCK_MONOTONIC): a device that takes that long per batch. */
static void sleep_until(const struct timespec *t0, long ms) {
  if (ms <= 0) return;
  struct timespec end = *t0;
  end.tv_sec += ms / 1000;
  end.tv_nsec += ms % 1000 * 1000000L;
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == EINTR)
    continue; /* interrupted: sleep what is left */
}

/* The injected faults of run number `run`: PD_OK when it is to compute. */
static int inject(fault_plan *fp, long run, const pd_batch *in, float *probs, pd_error *err) {
  if (fp->be->rules.leak_bytes > 0) { /* written, so that it counts in the RSS */
    size_t n = (size_t)fp->be->rules.leak_bytes * (size_t)in->n;
    leak_block *b = malloc(sizeof *b + n);
    if (b) {
      memset(b + 1, 0x5a, n);
      b->next = fp->leaked; /* one engine thread runs a plan */
      fp->leaked = b;
    }
  }
  /* what a device failure leaves behind: garbage where the answers go */
  const size_t n = (size_t)in->n * (size_t)fp->base.graph->n_classes;
  if (fp->dead_why[0] || run == fp->be->rules.device_error) {
    for (size_t i = 0; i < n; i++)
      probs[i] = NAN;
    if (fp->dead_why[0]) /* as the CUDA plan answers once out of service */
      return pd_error_set(err, PD_EDEVICE,
                          "plan out of service since a sticky device error (%s); a reload makes a "
                          "new plan",
                          fp->dead_why);
    snprintf(fp->dead_why, sizeof fp->dead_why,
             "injected sticky device error on run %ld (batch of %d): cudaErrorIllegalAddress", run,
             in->n);
    return pd_error_set(err, PD_EDEVICE, "%s", fp->dead_why);
  }
  if (should_fail(&fp->be->rules, run)) {
    for (size_t i = 0; i < n; i++)
      probs[i] = NAN;
    return pd_error_set(err, PD_EINTERNAL, "injected device fault on run %ld (batch of %d)", run,
                        in->n);
  }
  return PD_OK;
}

static int fault_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  fault_plan *fp = (fault_plan *)plan;
  long run = atomic_fetch_add(&runs, 1) + 1;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  sleep_until(&t0, fp->be->rules.delay_ms);
  PD_TRY(inject(fp, run, in, probs, err));
  return pd_plan_run(fp->inner, in, probs, err);
}

/* submit/wait: the faults are decided at submit and reported by wait (as a
 * device reports at its synchronisation); delay_ms counts from submit, so
 * the caller's work between the two overlaps it. */
static int fault_submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  fault_plan *fp = (fault_plan *)plan;
  long run = atomic_fetch_add(&runs, 1) + 1;
  clock_gettime(CLOCK_MONOTONIC, &fp->t_submit);
  fp->held_err = (pd_error){0};
  fp->held_rc = inject(fp, run, in, probs, &fp->held_err);
  return fp->held_rc == PD_OK ? pd_plan_submit(fp->inner, in, probs, err) : PD_OK;
}

static int fault_wait(pd_plan *plan, pd_error *err) {
  fault_plan *fp = (fault_plan *)plan;
  sleep_until(&fp->t_submit, fp->be->rules.delay_ms);
  if (fp->held_rc != PD_OK) {
    if (err) *err = fp->held_err;
    return fp->held_rc;
  }
  return pd_plan_wait(fp->inner, err);
}

static void *fault_host_alloc(pd_plan *plan, size_t bytes) {
  return pd_plan_host_alloc(((fault_plan *)plan)->inner, bytes);
}

static void fault_host_free(pd_plan *plan, void *p) {
  pd_plan_host_free(((fault_plan *)plan)->inner, p);
}

static void fault_plan_destroy(pd_plan *plan) {
  fault_plan *fp = (fault_plan *)plan;
  while (fp->leaked) {
    leak_block *next = fp->leaked->next;
    free(fp->leaked);
    fp->leaked = next;
  }
  pd_plan_destroy(fp->inner);
  free(fp);
}

static int fault_plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                             pd_error *err);

static void fault_destroy(pd_backend *be) {
  fault_backend *fb = (fault_backend *)be;
  pd_backend_destroy(fb->inner);
  free(fb);
}

static const pd_backend_ops fault_ops = {
    .name = "fault-injecting",
    .plan_create = fault_plan_create,
    .run = fault_run,
    .submit = fault_submit,
    .wait = fault_wait,
    .host_alloc = fault_host_alloc,
    .host_free = fault_host_free,
    .plan_destroy = fault_plan_destroy,
    .destroy = fault_destroy,
};

static int fault_plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                             pd_error *err) {
  fault_backend *fb = (fault_backend *)be;
  fault_plan *fp = calloc(1, sizeof *fp);
  if (!fp) return pd_error_set(err, PD_ENOMEM, "fault plan: out of memory");
  int rc = pd_plan_create(fb->inner, m, max_batch, &fp->inner, err);
  if (rc != PD_OK) {
    free(fp);
    return rc;
  }
  fp->base.ops = &fault_ops;
  fp->base.graph = m;
  fp->base.max_batch = max_batch;
  fp->be = fb;
  *out = (pd_plan *)fp;
  return PD_OK;
}

int pd_fault_wrap(pd_backend **be, pd_error *err) {
  fault_backend *fb = calloc(1, sizeof *fb);
  if (!fb) return pd_error_set(err, PD_ENOMEM, "fault backend: out of memory");
  int rc = parse_rules(getenv("PD_FAULT_INJECT"), &fb->rules, err);
  if (rc != PD_OK) {
    free(fb);
    return rc;
  }
  fb->base.ops = &fault_ops;
  fb->inner = *be;
  *be = &fb->base;
  return PD_OK;
}
