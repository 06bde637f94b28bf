/* pd_served: a model folder being served: the servable (pd_servable.h: one
 * model or an ensemble, with its plans built at max_batch, so nothing is
 * planned on the request path, and the engine's batch buffers) and the
 * backend instance it runs on. Reference-counted: the pipeline holds one for the
 * current model and each request one for the model it was preprocessed for,
 * so after a reload in-flight requests finish on the old model and the last
 * reference frees it. References are taken and dropped on the loop thread
 * (the count is atomic anyway); the engine thread only uses a model through
 * the requests it is running. */
#ifndef PD_SERVED_H
#define PD_SERVED_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "pd_backend.h"
#include "pd_model.h"
#include "pd_servable.h"

typedef struct pd_served_options {
  const char *dir;
  const char *backend;   /* "auto", "cpu" or "cuda" (pd_backend_select) */
  int device;            /* CUDA device index */
  int threads;           /* CPU backend threads; 0 = online CPUs */
  const char *precision; /* "auto", "fp32", "bf16" or "int8" (pd_precision_pick.h); NULL: fp32 */
  int max_batch;         /* plan size, in images (TTA transforms count each) */
  /* Called with the backend before anything is planned on it; may replace
   * it with a wrapper that owns it (planktond-faultinject's fault-injecting
   * backend, pd_fault.h). NULL: the backend as made. */
  int (*wrap_backend)(pd_backend **be, pd_error *err);
} pd_served_options;

typedef struct pd_served {
  pd_servable *servable;
  /* What the model-info and stats answers describe: member 0 as loaded,
   * with the folder's name, version and path, the default TTA count and the
   * parameters of every member (one model: that model as it is). */
  const pd_model *model;
  pd_model info;
  pd_backend *backend;
  char backend_name[16];    /* "cpu" or "cuda" */
  char backend_reason[768]; /* which backend and why (pd_backend_select) */
  int max_batch;
  int threads;                /* CPU backend threads (0 for other backends) */
  char precision[8];          /* the precision planned: "fp32" or "bf16" */
  char precision_reason[640]; /* why: "fp32 (requested)", "auto: fp32 (no record ...)" */
  char cpu_features[160];     /* CPU model, avx512_bf16, amx (pd_cpu_features_describe) */
  char kernels[1024];         /* CPU: what runs each conv/dense layer of member 0 ("" for CUDA) */
  time_t loaded_at;           /* wall clock */
  double load_seconds;        /* model load + plan build */
  atomic_int refs;
} pd_served;

/* Loads the model, creates the backend and its plan. Blocking (run it off
 * the loop); errors name the folder. The result holds one reference. */
int pd_served_load(const pd_served_options *opt, pd_served **out, pd_error *err);

pd_served *pd_served_ref(pd_served *s);
void pd_served_unref(pd_served *s);

#endif
