/* pd_served: a model being served: the loaded model, the backend instance
 * and plan built for it at max_batch (every batch size <= max_batch runs on
 * that one plan, so nothing is planned on the request path), and the
 * engine's batch buffers. Reference-counted: the pipeline holds one for the
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

typedef struct pd_served_options {
  const char *dir;
  const char *backend; /* "auto", "cpu" or "cuda" (pd_backend_select) */
  int device;          /* CUDA device index */
  int threads;         /* CPU backend threads; 0 = online CPUs */
  int max_batch;       /* plan size, in images (TTA transforms count each) */
} pd_served_options;

typedef struct pd_served {
  pd_model *model;
  pd_backend *backend;
  pd_plan *plan;
  char backend_name[16];    /* "cpu" or "cuda" */
  char backend_reason[768]; /* which backend and why (pd_backend_select) */
  int max_batch;
  int threads;                      /* CPU backend threads (0 for other backends) */
  size_t slot_len[PD_MAX_BRANCHES]; /* floats of one image's input per branch */
  size_t slot_floats;               /* sum of slot_len */
  /* engine-only scratch, max_batch images */
  float *batch_in[PD_MAX_BRANCHES];
  float *batch_probs;
  time_t loaded_at;    /* wall clock */
  double load_seconds; /* model load + plan build */
  atomic_int refs;
} pd_served;

/* Loads the model, creates the backend and its plan. Blocking (run it off
 * the loop); errors name the folder. The result holds one reference. */
int pd_served_load(const pd_served_options *opt, pd_served **out, pd_error *err);

pd_served *pd_served_ref(pd_served *s);
void pd_served_unref(pd_served *s);

#endif
