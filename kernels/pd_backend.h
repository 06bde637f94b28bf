/* pd_backend: the one interface every compute backend (CPU, CUDA)
 * implements. A backend instance owns its
 * device context and threads; a plan owns everything needed to run one graph
 * (kernels/pd_graph.h) at batch sizes up to max_batch (buffers, workspaces,
 * algorithm choices), all made at plan time so a run allocates nothing. One
 * run at a time per plan. Which backends exist and how one is chosen by
 * name: pd_backend_select.h (the registry). */
#ifndef PD_BACKEND_H
#define PD_BACKEND_H

#include "pd_error.h"
#include "pd_graph.h"

/* The version of this interface (this header, pd_graph.h, pd_error.h and the
 * options of a backend loaded at run time): a backend module reports the one
 * it was built with and the loader refuses any other. Bump it with every
 * change to those structs or to the meaning of their fields (2: the CUDA
 * options' precision names bf16 and int8, which the module refuses; 3: a
 * sticky device error is PD_EDEVICE, after which the plan only fails; 4: the
 * CUDA options' precision PD_CUDA_FP16, which a module before 4 refused as
 * unknown; 5: the CUDA options' algo_cache_dir). */
#define PD_BACKEND_ABI 5

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
  void (*plan_destroy)(pd_plan *plan);
  void (*destroy)(pd_backend *be);
} pd_backend_ops;

struct pd_backend {
  const pd_backend_ops *ops;
};

/* Convenience wrappers over ops. The graph must outlive the plan. */
int pd_plan_create(pd_backend *be, const pd_graph *g, int max_batch, pd_plan **out, pd_error *err);
int pd_plan_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err);
void pd_plan_destroy(pd_plan *plan);
void pd_backend_destroy(pd_backend *be);

/* Every plan starts with this header so the wrappers find the ops. */
struct pd_plan_base {
  const pd_backend_ops *ops;
  const pd_graph *graph;
  int max_batch;
};

#endif
