/* The loader, stage 2: every layer's input and output shape (per image,
 * with its views), checked against the symmetry rules and the limits, the
 * branch outputs flat and the head ending in softmax over the classes. */
#include <stdio.h>
#include <string.h>

#include "pd_model_internal.h"

static int need_symmetry(const load_ctx *c, const pd_layer *l) {
  if (c->m->symmetry != PD_SYM_NONE) return PD_OK;
  return pd_model__layer_fail(c, l, PD_EINVAL,
                              "needs symmetry c4 or d4 (the model's symmetry is none)");
}

static int need_views(const load_ctx *c, const pd_layer *l) {
  PD_TRY(need_symmetry(c, l));
  if (l->in.views > 1) return PD_OK;
  return pd_model__layer_fail(c, l, PD_EINVAL,
                              "needs several views (put cyclic_slice before it), got 1 view");
}

static int infer_slice(const load_ctx *c, pd_layer *l, int *slices) {
  PD_TRY(need_symmetry(c, l));
  if (++*slices > 1)
    return pd_model__layer_fail(c, l, PD_EINVAL,
                                "cyclic_slice may appear only once per layer list");
  if (l->in.views != 1)
    return pd_model__layer_fail(c, l, PD_EINVAL, "needs a 1-view input, got %d views", l->in.views);
  if (l->in.h != l->in.w)
    return pd_model__layer_fail(c, l, PD_EINVAL, "needs a square input, got %dx%d", l->in.h,
                                l->in.w);
  l->out.views = c->m->views;
  return PD_OK;
}

/* Output size of a window of `k` with stride `s` over n + 2 pad (< 1: no pixels). */
static int window_out(int n, int pad, int k, int s) {
  int span = n + 2 * pad - k;
  return span < 0 ? 0 : span / s + 1;
}

static int infer_conv(const load_ctx *c, pd_layer *l) {
  l->out.h = window_out(l->in.h, l->pad, l->kernel, l->stride);
  l->out.w = window_out(l->in.w, l->pad, l->kernel, l->stride);
  if (l->out.h < 1 || l->out.w < 1)
    return pd_model__layer_fail(c, l, PD_EINVAL, "input %dx%d leaves no pixels", l->in.h, l->in.w);
  l->out.c = l->filters;
  return PD_OK;
}

static int infer_maxpool(const load_ctx *c, pd_layer *l) {
  l->out.h = window_out(l->in.h, 0, l->pool_size, l->pool_stride);
  l->out.w = window_out(l->in.w, 0, l->pool_size, l->pool_stride);
  if (l->out.h < 1 || l->out.w < 1)
    return pd_model__layer_fail(c, l, PD_EINVAL, "input %dx%d leaves no pixels", l->in.h, l->in.w);
  return PD_OK;
}

static int infer_roll(const load_ctx *c, pd_layer *l) {
  PD_TRY(need_views(c, l));
  if (l->in.h != l->in.w)
    return pd_model__layer_fail(c, l, PD_EINVAL, "a spatial roll needs a square map, got %dx%d",
                                l->in.h, l->in.w);
  if ((long long)l->in.c * l->in.views > PD_MAX_CHANNELS)
    return pd_model__layer_fail(c, l, PD_ELIMIT, "%d views x %d channels exceeds %d channels",
                                l->in.views, l->in.c, PD_MAX_CHANNELS);
  l->out.c = l->in.c * l->in.views;
  return PD_OK;
}

static int infer_layer(const load_ctx *c, pd_layer *l, bool last_of_head, int *slices) {
  l->out = l->in;
  switch (l->kind) {
  case PD_LAYER_CYCLIC_SLICE:
    return infer_slice(c, l, slices);
  case PD_LAYER_CONV:
    return infer_conv(c, l);
  case PD_LAYER_MAXPOOL:
    return infer_maxpool(c, l);
  case PD_LAYER_CYCLIC_ROLL:
    return infer_roll(c, l);
  case PD_LAYER_CYCLIC_POOL:
    l->out.views = 1;
    return need_views(c, l);
  case PD_LAYER_DENSE:
    l->out = (pd_shape){l->in.views, 1, 1, l->units};
    return PD_OK;
  case PD_LAYER_GLOBAL_AVG_POOL:
    l->out = (pd_shape){l->in.views, 1, 1, l->in.c};
    return PD_OK;
  case PD_LAYER_MAXOUT:
    if (l->in.c % l->pieces)
      return pd_model__layer_fail(
          c, l, PD_EINVAL, "input has %d channels, not divisible by %d pieces", l->in.c, l->pieces);
    l->out.c = l->in.c / l->pieces;
    return PD_OK;
  case PD_LAYER_SOFTMAX:
    if (!last_of_head)
      return pd_model__layer_fail(c, l, PD_EINVAL,
                                  "softmax is allowed only as the last head layer");
    return PD_OK;
  default:
    return PD_OK;
  }
}

static int infer_list(const load_ctx *c, pd_layer *layers, int n, pd_shape in, bool head,
                      pd_shape *out) {
  int slices = 0;
  for (int i = 0; i < n; i++) {
    pd_layer *l = &layers[i];
    l->in = in;
    PD_TRY(infer_layer(c, l, head && i == n - 1, &slices));
    uint64_t len = (uint64_t)l->out.views * l->out.h * l->out.w * l->out.c;
    if (len > PD_MAX_ACTIVATION) {
      char sh[64];
      return pd_model__layer_fail(c, l, PD_ELIMIT, "output %s is more than %llu floats",
                                  pd_model__describe_shape(l->out, sh, sizeof sh),
                                  (unsigned long long)PD_MAX_ACTIVATION);
    }
    in = l->out;
  }
  *out = in;
  return PD_OK;
}

static int infer_branch(load_ctx *c, int index) {
  const pd_input_branch *ib = &c->m->branches[index];
  pd_graph_branch *b = &c->m->graph.branches[index];
  b->in = ib->kind == PD_INPUT_IMAGE ? (pd_shape){1, ib->size, ib->size, 1}
                                     : (pd_shape){1, 1, 1, ib->n_features};
  PD_TRY(infer_list(c, b->layers, b->n_layers, b->in, false, &b->out));
  if (b->out.views == 1 && b->out.h == 1 && b->out.w == 1) return PD_OK;
  char sh[64];
  return pd_error_set(c->err, PD_EINVAL,
                      "%s:%d: branch %s: output is %s; it must be one flat view (end the branch "
                      "with cyclic_pool, dense or global_avg_pool)",
                      c->yaml_name, c->branch_line[index], b->name,
                      pd_model__describe_shape(b->out, sh, sizeof sh));
}

static int check_head_end(const load_ctx *c, pd_shape out) {
  const pd_graph *m = &c->m->graph;
  if (m->n_head < 2 || m->head[m->n_head - 1].kind != PD_LAYER_SOFTMAX)
    return pd_error_set(c->err, PD_EINVAL,
                        "%s:%d: head: the layers must end with a layer giving %d units (one per "
                        "class) and then softmax",
                        c->yaml_name, c->head_line, m->n_classes);
  const pd_layer *prev = &m->head[m->n_head - 2];
  if (out.views == 1 && out.h == 1 && out.w == 1 && out.c == m->n_classes) return PD_OK;
  char sh[64];
  return pd_model__layer_fail(c, prev, PD_EINVAL,
                              "gives %s before softmax but the model has %d classes",
                              pd_model__describe_shape(out, sh, sizeof sh), m->n_classes);
}

static int check_unique_layer_names(const load_ctx *c) {
  for (int i = 1; i < c->n_all; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(c->all[i]->name, c->all[j]->name))
        return pd_model__layer_fail(c, c->all[i], PD_EINVAL,
                                    "layer name '%s' is already used on line %d", c->all[i]->name,
                                    c->all[j]->line);
  return PD_OK;
}

int pd_model__infer(load_ctx *c) {
  pd_graph *m = &c->m->graph;
  snprintf(m->name, sizeof m->name, "%s", c->m->name);
  m->n_classes = c->m->n_classes;
  m->symmetry = c->m->symmetry;
  m->views = c->m->views;
  m->n_branches = c->m->n_branches;
  PD_TRY(check_unique_layer_names(c));
  long long head_in = 0;
  for (int b = 0; b < m->n_branches; b++) {
    PD_TRY(infer_branch(c, b));
    head_in += m->branches[b].out.c;
  }
  m->head_in = (int)head_in;
  pd_shape out;
  PD_TRY(infer_list(c, m->head, m->n_head, (pd_shape){1, 1, 1, m->head_in}, true, &out));
  return check_head_end(c, m->n_head ? m->head[m->n_head - 1].in : out);
}
