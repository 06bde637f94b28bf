/* pd_served: a model folder being served: the servable (pd_servable.h: one
 * model or an ensemble, with its plans built at max_batch, so nothing is
 * planned on the request path, and the engine's batch buffers) and the
 * backend instance it runs on. Reference-counted: the pipeline holds one for the
 * current model and each request one for the model it was preprocessed for,
 * so after a reload in-flight requests finish on the old model and the last
 * reference frees it. References are taken and dropped on the loop thread
 * (the count is atomic anyway); the engine thread only uses a model through
 * the requests it is running.
 *
 * A sticky device error (a plan run returning PD_EDEVICE: an illegal
 * address, a lost GPU) is handled on the engine thread, between batches
 * (pd_served_device_error), per engine.on_device_error: `cpu` makes a CPU
 * backend and new plans for every member in place (the ensemble and the
 * input layout stay, so requests already preprocessed run on; those queued
 * meanwhile wait), `fail` leaves the model out of service: every later
 * batch fails INTERNAL naming the error, Health and KServe readiness say
 * not serving, until a reload makes a new plan. `auto`: fail under backend
 * cuda (it asked for the GPU and nothing else, as at start-up), cpu under
 * auto and cpu. A device error on the rebuilt CPU plan too leaves it out of
 * service. */
#ifndef PD_SERVED_H
#define PD_SERVED_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_model.h"
#include "pd_servable.h"

typedef struct pd_served_options {
  const char *dir;
  const char *backend;   /* "auto", "cpu" or "cuda" (pd_backend_select) */
  int device;            /* CUDA device index */
  int threads;           /* CPU backend threads; 0 = online CPUs */
  const char *precision; /* "auto", "fp32", "bf16", "int8", "tf32" or "fp16"; NULL: fp32 */
  int max_batch;         /* plan size, in images (TTA transforms count each) */
  /* Called with the backend before anything is planned on it; may replace
   * it with a wrapper that owns it (planktond-faultinject's fault-injecting
   * backend, pd_fault.h). NULL: the backend as made. */
  int (*wrap_backend)(pd_backend **be, pd_error *err);
  const char *on_device_error;     /* "auto", "cpu" or "fail" (above); NULL: auto */
  bool cuda_graphs;                /* CUDA: a graph per batch bucket (pd_cuda_options.graphs) */
  long cuda_workspace_mb;          /* CUDA: most cuDNN workspace per convolution; 0: 256 */
  const char *cuda_algo_cache_dir; /* CUDA: algorithm choices kept there; NULL or "": off */
  /* Where the device-error handling reports, one line each (level: a
   * pd_log_level, 0 error .. 2 info), from the engine thread. NULL: nowhere. */
  void (*log)(const void *ctx, int level, const char *line);
  const void *log_ctx;
} pd_served_options;

/* pd_served.device_state */
enum { PD_DEVICE_OK = 0, PD_DEVICE_ON_CPU, PD_DEVICE_FAILING };

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
  /* model.yaml serving: (pd_model.h): its own max_batch (the plan size, in
   * place of batching.max_batch) and max_queue_delay (the batcher's for it) */
  bool own_max_batch, own_max_queue_delay;
  uint64_t max_queue_delay_ns;
  int threads;            /* CPU backend threads (0 for other backends) */
  char precision[8];      /* the precision planned: "fp32", "bf16", "tf32" or "fp16" */
  char cuda_options[384]; /* "graphs off, workspace 256 MiB, algorithm cache DIR": what CUDA gets */
  char precision_reason[640]; /* why: "fp32 (requested)", "auto: fp32 (no record ...)" */
  char cpu_features[160];     /* CPU model, avx512_bf16, amx (pd_cpu_features_describe) */
  char kernels[1024];         /* CPU: what runs each conv/dense layer of member 0 ("" for CUDA) */
  time_t loaded_at;           /* wall clock */
  double load_seconds;        /* model load + plan build */
  atomic_int refs;
  /* Device errors (engine thread): the action, the state (read anywhere,
   * acquire), the first error (written before the state leaves OK), and
   * what a rebuild on the CPU needs. */
  bool rebuild_on_cpu;
  atomic_int device_state;
  char device_error[512];
  pd_cpu_options cpu;
  int (*wrap_backend)(pd_backend **be, pd_error *err);
  void (*log)(const void *ctx, int level, const char *line);
  const void *log_ctx;
} pd_served;

/* Loads the model, creates the backend and its plan. Blocking (run it off
 * the loop); errors name the folder. The result holds one reference. */
int pd_served_load(const pd_served_options *opt, pd_served **out, pd_error *err);

/* After a run failed with PD_EDEVICE (e): rebuilds on the CPU or puts the
 * model out of service (above), logging the error and the action. Engine
 * thread only, with a reference held, no run in progress. */
void pd_served_device_error(pd_served *s, const pd_error *e);

/* PD_DEVICE_OK, PD_DEVICE_ON_CPU or PD_DEVICE_FAILING (any thread). */
int pd_served_device_state(const pd_served *s);
/* The backend serving now: "cpu" once rebuilt there, else backend_name. */
const char *pd_served_backend_now(const pd_served *s);
/* "cpu" or "fail": what a device error does. */
const char *pd_served_on_device_error(const pd_served *s);
/* "ok", "rebuilt_on_cpu" or "failing". */
const char *pd_served_device_state_name(const pd_served *s);

pd_served *pd_served_ref(pd_served *s);
void pd_served_unref(pd_served *s);

#endif
