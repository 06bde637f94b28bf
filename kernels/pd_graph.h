/* pd_graph: the network a backend plans and runs, and nothing else: the
 * layer kinds (the one op enumeration), per-image activation shapes, the
 * layers with their weights in the engine's layouts, the branches (each a
 * layer list on its own input) and the head (on the branches' outputs
 * concatenated), the class count and the symmetry group of the views.
 *
 * Backends (kernels/cpu, kernels/cuda) include this header and
 * kernels/pd_backend.h only: they know nothing of model folders, labels,
 * preprocessing or TTA (models/pd_model.h owns those and holds a pd_graph).
 * A graph is immutable once its model is loaded, and its weights belong to
 * whoever filled it (the model loader), so a backend only borrows it. */
#ifndef PD_GRAPH_H
#define PD_GRAPH_H

#include <stddef.h>

#define PD_MAX_BRANCHES 8
#define PD_MAX_LAYERS 64
#define PD_NAME_LEN 64
#define PD_MAX_VIEWS 8

typedef enum { PD_SYM_NONE = 0, PD_SYM_C4, PD_SYM_D4 } pd_symmetry;

typedef enum {
  PD_LAYER_CYCLIC_SLICE = 0,
  PD_LAYER_CONV,
  PD_LAYER_LEAKY_RELU,
  PD_LAYER_MAXPOOL,
  PD_LAYER_CYCLIC_ROLL,
  PD_LAYER_CYCLIC_POOL,
  PD_LAYER_DENSE,
  PD_LAYER_MAXOUT,
  PD_LAYER_GLOBAL_AVG_POOL,
  PD_LAYER_DROPOUT,
  PD_LAYER_SOFTMAX,
  PD_LAYER_KIND_COUNT
} pd_layer_kind;

typedef enum { PD_CPOOL_MEAN = 0, PD_CPOOL_RMS, PD_CPOOL_MAX } pd_cyclic_pool_mode;

typedef enum { PD_ACT_NONE = 0, PD_ACT_LEAKY_RELU } pd_activation;

/* Shape of one image's activation: `views` maps of h x w x c (NHWC within a view).
 * Flat features have h = w = 1. */
typedef struct pd_shape {
  int views, h, w, c;
} pd_shape;

static inline size_t pd_shape_len(pd_shape s) {
  return (size_t)s.views * (size_t)s.h * (size_t)s.w * (size_t)s.c;
}

typedef struct pd_layer {
  pd_layer_kind kind;
  char name[PD_NAME_LEN];
  int line; /* line of the layer in model.yaml (1-based), 0 if unknown */

  int filters, kernel, stride, pad; /* conv */
  int units;                        /* dense */
  int pool_size, pool_stride;       /* maxpool */
  int pieces;                       /* maxout */
  pd_cyclic_pool_mode cpool_mode;   /* cyclic_pool */
  pd_activation activation;         /* conv, dense (leaky_relu layer: always leaky) */
  float slope;                      /* leaky ReLU negative slope; 0 = ReLU */
  float dropout_rate;               /* dropout (unused in inference) */

  pd_shape in, out; /* per image */

  /* Engine layouts:
   * conv:  weight[filters][kernel][kernel][in.c]  (OHWI: one GEMM row per filter)
   * dense: weight[units][in.h * in.w * in.c], inputs in h, w, c order
   * bias[filters or units]. NULL for layers without weights. */
  const float *weight;
  const float *bias;
  size_t weight_len, bias_len;
} pd_layer;

/* One branch: a layer list on its own input slot of pd_shape_len(in) floats. */
typedef struct pd_graph_branch {
  char name[32];
  int n_layers;
  pd_layer layers[PD_MAX_LAYERS];
  pd_shape in;  /* image: {1, size, size, 1}; features: {1, 1, 1, n_features} */
  pd_shape out; /* always {1, 1, 1, F} */
} pd_graph_branch;

typedef struct pd_graph {
  char name[PD_NAME_LEN]; /* for messages ("plan for model '<name>'") */
  int n_classes;          /* width of the head's softmax */
  pd_symmetry symmetry;
  int views; /* 1, 4 or 8 */
  int n_branches;
  pd_graph_branch branches[PD_MAX_BRANCHES];
  int head_in; /* sum of branch output widths */
  int n_head;
  pd_layer head[PD_MAX_LAYERS];
} pd_graph;

/* "conv", "dense", ... as in models/FORMAT.md; "unknown" out of range. */
const char *pd_layer_kind_name(pd_layer_kind kind);

/* Floats of one image's input for branch b: pd_shape_len(branches[b].in). */
size_t pd_graph_branch_input_len(const pd_graph *g, int b);

/* Multiply-adds x 2 of one image through the network (conv + dense). */
double pd_graph_flops_per_image(const pd_graph *g);

/* The dihedral group D4 (C4 is its rotation half): element v = f*4 + r
 * stands for T_v = R^r o F^f, R = rot90 (torch.rot90 dims (H, W)), F = flip of W. */
int pd_d4_mul(int a, int b); /* index of T_a o T_b */
int pd_d4_inv(int a);
/* Where Y = T_v(X) reads from: Y[y][x] = X[*sy][*sx] for an n x n map. */
void pd_d4_src(int v, int n, int y, int x, int *sy, int *sx);

#endif
