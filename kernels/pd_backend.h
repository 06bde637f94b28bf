/* pd_backend: the one interface every compute backend (CPU, CUDA)
 * implements. A backend instance owns its
 * device context and threads; a plan owns everything needed to run one graph
 * (kernels/pd_graph.h) at batch sizes up to max_batch (buffers, workspaces,
 * algorithm choices), all made at plan time so a run allocates nothing. One
 * batch at a time per plan: run, or submit then wait (a device backend
 * computes between the two while the caller prepares the next batch, in
 * input slots from host_alloc: pinned memory the upload reads directly). Which backends exist and
 * how one is chosen by name: pd_backend_select.h (the registry). */
#ifndef PD_BACKEND_H
#define PD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_error.h"
#include "pd_graph.h"

/* The version of this interface (this header, pd_graph.h, pd_error.h and the
 * options of a backend loaded at run time): a backend module reports the one
 * it was built with and the loader refuses any other. Bump it with every
 * change to those structs or to the meaning of their fields (2: the CUDA
 * options' precision names bf16 and int8, which the module refuses; 3: a
 * sticky device error is PD_EDEVICE, after which the plan only fails; 4: the
 * CUDA options' precision PD_CUDA_FP16, which a module before 4 refused as
 * unknown; 5: the CUDA options' algo_cache_dir; 6: submit, wait, host_alloc,
 * host_free and the plan header's in-flight fields). */
#define PD_BACKEND_ABI 6

typedef struct pd_backend pd_backend;
typedef struct pd_plan pd_plan;

/* A batch of preprocessed inputs: branch[b] holds n consecutive slots of
 * pd_graph_branch_input_len(graph, b) floats each. */
typedef struct pd_batch {
  int n;
  const float *branch[PD_MAX_BRANCHES];
} pd_batch;

typedef struct pd_backend_ops {
  const char *name;
  int (*plan_create)(pd_backend *be, const pd_graph *g, int max_batch, pd_plan **out,
                     pd_error *err);
  /* probs: in->n * g->n_classes floats, row per image. PD_EDEVICE: a sticky
   * device error; this and every later run of the plan fail, and the caller
   * may make a new plan (on another backend: pd_served.h). */
  int (*run)(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
  /* run split in two: submit starts the batch (in->branch and probs must
   * stay as they are until wait returns), wait finishes it and returns what
   * run would have. NULL: pd_plan_sync_submit/pd_plan_sync_wait (submit runs). */
  int (*submit)(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
  int (*wait)(pd_plan *plan, pd_error *err);
  /* Host memory for input slots (CUDA: pinned; NULL: 64-byte aligned malloc). */
  void *(*host_alloc)(pd_plan *plan, size_t bytes);
  void (*host_free)(pd_plan *plan, void *p);
  void (*plan_destroy)(pd_plan *plan);
  void (*destroy)(pd_backend *be);
} pd_backend_ops;

struct pd_backend {
  const pd_backend_ops *ops;
};

/* Convenience wrappers over ops. The graph must outlive the plan. */
int pd_plan_create(pd_backend *be, const pd_graph *g, int max_batch, pd_plan **out, pd_error *err);
int pd_plan_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
/* One batch in flight: submit, then wait (exactly once per submit, before
 * the next submit or run; PD_EINVAL otherwise). A submit that fails leaves
 * nothing in flight. */
int pd_plan_submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
int pd_plan_wait(pd_plan *plan, pd_error *err);
bool pd_plan_in_flight(const pd_plan *plan);
/* NULL when out of memory; free with pd_plan_host_free on the same plan. */
void *pd_plan_host_alloc(pd_plan *plan, size_t bytes);
void pd_plan_host_free(pd_plan *plan, void *p);
/* The split for a backend that computes synchronously (the CPU): submit
 * runs and keeps the result in the plan header, wait returns it. */
int pd_plan_sync_submit(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
int pd_plan_sync_wait(pd_plan *plan, pd_error *err);
void pd_plan_destroy(pd_plan *plan);
void pd_backend_destroy(pd_backend *be);

/* Every plan starts with this header so the wrappers find the ops. */
struct pd_plan_base {
  const pd_backend_ops *ops;
  const pd_graph *graph;
  int max_batch;
  bool in_flight;    /* submitted, not yet waited for (the wrappers keep it) */
  int sync_rc;       /* pd_plan_sync_submit's result, for pd_plan_sync_wait */
  pd_error sync_err; /* and its error */
};

#endif
