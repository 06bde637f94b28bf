#include "pd_graph.h"

static const char *const k_kind_names[PD_LAYER_KIND_COUNT] = {
    "cyclic_slice", "conv",   "leaky_relu",      "maxpool", "cyclic_roll", "cyclic_pool",
    "dense",        "maxout", "global_avg_pool", "dropout", "softmax",
};

const char *pd_layer_kind_name(pd_layer_kind kind) {
  if ((int)kind < 0 || kind >= PD_LAYER_KIND_COUNT) return "unknown";
  return k_kind_names[kind];
}

size_t pd_graph_branch_input_len(const pd_graph *g, int b) {
  if (!g || b < 0 || b >= g->n_branches) return 0;
  return pd_shape_len(g->branches[b].in);
}

static double layers_flops(const pd_layer *layers, int n) {
  double f = 0;
  for (int i = 0; i < n; i++) {
    const pd_layer *l = &layers[i];
    if (l->kind == PD_LAYER_CONV)
      f += 2.0 * l->out.views * l->out.h * l->out.w * l->filters * l->kernel * l->kernel * l->in.c;
    else if (l->kind == PD_LAYER_DENSE)
      f += 2.0 * l->in.views * l->units * ((double)l->in.h * l->in.w * l->in.c);
  }
  return f;
}

double pd_graph_flops_per_image(const pd_graph *g) {
  double f = 0;
  for (int b = 0; b < g->n_branches; b++)
    f += layers_flops(g->branches[b].layers, g->branches[b].n_layers);
  return f + layers_flops(g->head, g->n_head);
}

/* ---- the dihedral group ---- */

static int d4_f(int v) {
  return v >> 2;
}
static int d4_r(int v) {
  return v & 3;
}
static int d4_make(int f, int r) {
  return (f << 2) | (((r % 4) + 4) % 4);
}

int pd_d4_mul(int a, int b) {
  /* R^ra F^fa R^rb F^fb = R^(ra + (fa ? -rb : rb)) F^(fa ^ fb), since F R = R^-1 F. */
  int r = d4_r(a) + (d4_f(a) ? -d4_r(b) : d4_r(b));
  return d4_make(d4_f(a) ^ d4_f(b), r);
}

int pd_d4_inv(int a) {
  /* (R^r F^f)^-1 = F^f R^-r = R^(f ? r : -r) F^f */
  return d4_make(d4_f(a), d4_f(a) ? d4_r(a) : -d4_r(a));
}

void pd_d4_src(int v, int n, int y, int x, int *sy, int *sx) {
  /* Y = R(Z): Y[y][x] = Z[x][n-1-y]; Z = F(X): Z[y][x] = X[y][n-1-x]. Outer R's first. */
  for (int k = 0; k < d4_r(v); k++) {
    int t = y;
    y = x;
    x = n - 1 - t;
  }
  if (d4_f(v)) x = n - 1 - x;
  *sy = y;
  *sx = x;
}
