/* Per-layer kernel choice: timing our kernels and oneDNN's at plan time. */
#include "pd_cpu_choice.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd_cpu_backend.h"
#include "pd_cpu_ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifdef PD_HAVE_ONEDNN
#include "pd_onednn.h"
#endif

#define PD_CPU_CHOICE_TEXT 8192
/* Each candidate: one warm-up run, then the best of this many. */
#define PD_CPU_CHOICE_RUNS 3

struct pd_cpu_choice {
  pd_cpu_kernels mode;
#ifdef PD_HAVE_ONEDNN
  pd_onednn *dnn;
  pd_onednn_op *op[PD_CPU_CHOICE_LISTS][PD_MAX_LAYERS];
#endif
  pd_precision precision;
  const pd_graph *graph;
  unsigned char bf16[PD_CPU_CHOICE_LISTS][PD_MAX_LAYERS]; /* the oneDNN op is bf16 */
  int timed, to_onednn, to_bf16;
  double ours_s, chosen_s; /* summed over timed layers: ours only, and the choice */
  char text[PD_CPU_CHOICE_TEXT];
  size_t used;
};

/* ---- precisions and CPU features ---- */

int pd_cpu_precision_available(pd_precision p) {
  if (p == PD_PRECISION_FP32) return 1;
#ifdef PD_HAVE_ONEDNN
  if (p == PD_PRECISION_BF16) return pd_onednn_precision_available(PD_ONEDNN_BF16);
#endif
  return 0;
}

void pd_cpu_precisions(char *buf, size_t len) {
  snprintf(buf, len, "%s", pd_cpu_precision_available(PD_PRECISION_BF16) ? "fp32, bf16" : "fp32");
}

void pd_cpu_features_describe(char *buf, size_t len) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned r[12] = {0}, a, b, cx, d;
  for (size_t i = 0; i < 3; i++)
    if (!__get_cpuid(0x80000002u + (unsigned)i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2],
                     &r[4 * i + 3]))
      r[4 * i] = 0;
  char brand[49];
  memcpy(brand, r, 48);
  brand[48] = '\0';
  const char *name = brand;
  while (*name == ' ')
    name++;
  int f512 = 0, bf16 = 0, amx_bf16 = 0, amx_tile = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
    f512 = (b >> 16) & 1;
    amx_bf16 = (d >> 22) & 1;
    amx_tile = (d >> 24) & 1;
  }
  if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) bf16 = (a >> 5) & 1;
  snprintf(buf, len, "%s; avx512f %s, avx512_bf16 %s, amx %s", name[0] ? name : "unknown CPU",
           f512 ? "yes" : "no", bf16 ? "yes" : "no", amx_bf16 && amx_tile ? "yes" : "no");
#else
  snprintf(buf, len, "not x86: avx512_bf16 no, amx no");
#endif
}

void pd_cpu_blas_describe(char *buf, size_t len) {
  const char *core = openblas_get_corename();
  const char *config = openblas_get_config();
  snprintf(buf, len, "OpenBLAS core %s (%s)", core ? core : "?", config ? config : "?");
}

static void say(pd_cpu_choice *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(pd_cpu_choice *c, const char *fmt, ...) {
  if (c->used >= sizeof c->text) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->text + c->used, sizeof c->text - c->used, fmt, ap);
  va_end(ap);
  if (n > 0) c->used += (size_t)n;
  if (c->used >= sizeof c->text) c->used = sizeof c->text - 1;
}

void pd_cpu_choice_describe(const pd_cpu_choice *c, char *buf, size_t len) {
  char blas[160];
  pd_cpu_blas_describe(blas, sizeof blas);
  snprintf(buf, len, "%s%s", blas, c ? c->text : "\n");
}

void pd_cpu_choice_counts(const pd_cpu_choice *c, int *timed, int *onednn, int *bf16) {
  *timed = c ? c->timed : 0;
  *onednn = c ? c->to_onednn : 0;
  *bf16 = c ? c->to_bf16 : 0;
}

static void kernels_list(const pd_cpu_choice *c, int list, const pd_layer *layers, int n, char *buf,
                         size_t len, size_t *used) {
  for (int i = 0; i < n && *used < len; i++) {
    if (layers[i].kind != PD_LAYER_CONV && layers[i].kind != PD_LAYER_DENSE) continue;
    const char *k = !pd_cpu_choice_onednn(c, list, i) ? "ours"
                    : c->bf16[list][i]                ? "onednn-bf16"
                                                      : "onednn";
    int w = snprintf(buf + *used, len - *used, "%s%s:%s", *used ? " " : "", layers[i].name, k);
    if (w > 0) *used += (size_t)w;
  }
}

void pd_cpu_choice_kernels(const pd_cpu_choice *c, char *buf, size_t len) {
  size_t used = 0;
  if (!len) return;
  buf[0] = '\0';
  if (!c || !c->graph) return;
  const pd_graph *g = c->graph;
  for (int b = 0; b < g->n_branches; b++)
    kernels_list(c, b, g->branches[b].layers, g->branches[b].n_layers, buf, len, &used);
  kernels_list(c, PD_CPU_CHOICE_HEAD, g->head, g->n_head, buf, len, &used);
}

int pd_cpu_choice_onednn(const pd_cpu_choice *c, int list, int layer) {
#ifdef PD_HAVE_ONEDNN
  return c && c->op[list][layer] != NULL;
#else
  (void)c;
  (void)list;
  (void)layer;
  return 0;
#endif
}

void pd_cpu_choice_thread_init(int threads) {
#ifdef PD_HAVE_ONEDNN
  pd_onednn_set_threads(threads);
#else
  (void)threads;
#endif
}

void pd_cpu_choice_destroy(pd_cpu_choice *c) {
  if (!c) return;
#ifdef PD_HAVE_ONEDNN
  for (int l = 0; l < PD_CPU_CHOICE_LISTS; l++)
    for (int i = 0; i < PD_MAX_LAYERS; i++)
      pd_onednn_op_destroy(c->op[l][i]);
  pd_onednn_destroy(c->dnn);
#endif
  free(c);
}

#ifdef PD_HAVE_ONEDNN
int pd_cpu_choice_run(pd_cpu_choice *c, int list, int layer, int worker, int rows, const float *in,
                      float *out, pd_error *err) {
  pd_onednn_op *op = c->op[list][layer];
  if (!op) return pd_error_set(err, PD_EINTERNAL, "cpu backend: layer %d has no oneDNN op", layer);
  return pd_onednn_run(op, worker, rows, in, out, err);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The buffers one candidate's timing needs. */
typedef struct trial {
  const pd_cpu_choice_plan *plan;
  const pd_layer *l;
  int list, layer, rows; /* rows: dense rows (images x views); conv: views of one image */
  float *in, *out, *scratch;
} trial;

static void run_ours(const trial *t) {
  const pd_layer *l = t->l;
  const float *u = t->plan->wino_u[t->list][t->layer];
  if (u)
    pd_conv3x3_run(t->plan->wino, l, u, t->in, t->out, t->scratch);
  else if (l->kind == PD_LAYER_CONV)
    pd_cpu_conv(l, 1, t->in, t->out, t->scratch, t->plan->col_cap);
  else
    pd_cpu_dense(l, t->rows / l->in.views, t->in, t->out);
}

static double best_of(const trial *t, pd_onednn_op *op) {
  double best = 0;
  for (int r = 0; r <= PD_CPU_CHOICE_RUNS; r++) {
    double t0 = now_s();
    if (op) {
      pd_error err = {0};
      if (pd_onednn_run(op, 0, t->rows, t->in, t->out, &err) != PD_OK) return -1.0;
    } else {
      run_ours(t);
    }
    double dt = now_s() - t0;
    if (r == 1 || (r > 1 && dt < best)) best = dt;
  }
  return best;
}

/* Creates the oneDNN op of a layer (conv: one image's views; dense: rows
 * given at run time). PD_EUNSUPP-type failures leave the layer ours. */
static int make_op(pd_cpu_choice *c, const pd_cpu_choice_plan *plan, const pd_layer *l,
                   pd_onednn_precision prec, pd_onednn_op **op, pd_error *err) {
  pd_onednn_act act = {l->activation == PD_ACT_LEAKY_RELU, l->slope};
  if (l->kind == PD_LAYER_CONV) {
    pd_onednn_conv_shape s = {l->in.views, l->in.h,   l->in.w,   l->in.c,
                              l->filters,  l->kernel, l->stride, l->pad};
    return pd_onednn_conv_create(c->dnn, &s, l->weight, l->bias, act, prec, plan->threads, op, err);
  }
  return pd_onednn_dense_create(c->dnn, l->in.h * l->in.w * l->in.c, l->units, l->weight, l->bias,
                                act, PD_ONEDNN_FP32, plan->threads, op, err);
}

static float *rand_buf(size_t n) {
  float *x = malloc((n ? n : 1) * sizeof(float));
  unsigned s = 12345u;
  for (size_t i = 0; x && i < n; i++) {
    s = s * 1103515245u + 12345u;
    x[i] = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f;
  }
  return x;
}

/* Times one layer both ways and keeps the faster. */
static int choose_layer(pd_cpu_choice *c, const pd_cpu_choice_plan *plan, int list, int layer,
                        int image_by_image, pd_error *err) {
  const pd_layer *l = list == PD_CPU_CHOICE_HEAD ? &plan->graph->head[layer]
                                                 : &plan->graph->branches[list].layers[layer];
  const int conv = l->kind == PD_LAYER_CONV;
  if (!conv && l->kind != PD_LAYER_DENSE) return PD_OK;
  /* Convolutions run image by image; dense layers on a worker's slice. */
  if (conv && !image_by_image) return PD_OK;
  pd_onednn_op *op = NULL;
  pd_error oerr = {0};
  if (make_op(c, plan, l, PD_ONEDNN_FP32, &op, &oerr) != PD_OK) {
    if (oerr.code == PD_ENOMEM) return pd_error_set(err, PD_ENOMEM, "%s", oerr.msg);
    say(c, "\n  %s: ours (oneDNN cannot run it: %s)", l->name, oerr.msg);
    return PD_OK;
  }
  /* bf16: oneDNN's bf16 convolution as a third candidate. */
  pd_onednn_op *op16 = NULL;
  if (conv && c->precision == PD_PRECISION_BF16 &&
      make_op(c, plan, l, PD_ONEDNN_BF16, &op16, &oerr) != PD_OK) {
    if (oerr.code == PD_ENOMEM) {
      pd_onednn_op_destroy(op);
      return pd_error_set(err, PD_ENOMEM, "%s", oerr.msg);
    }
    op16 = NULL;
  }
  trial t = {plan, l,    list, layer, conv ? l->in.views : plan->chunk * l->in.views,
             NULL, NULL, NULL};
  const size_t per = conv ? 1 : (size_t)plan->chunk;
  const size_t scratch = plan->wino_u[list][layer] ? pd_conv3x3_scratch_floats(l) : plan->col_cap;
  t.in = rand_buf(pd_shape_len(l->in) * per);
  t.out = malloc((pd_shape_len(l->out) * per + 1) * sizeof(float));
  t.scratch = malloc((scratch + 1) * sizeof(float));
  double ours = -1, dnn = -1, dnn16 = -1;
  if (t.in && t.out && t.scratch) {
    if (c->mode == PD_CPU_KERNELS_AUTO) ours = best_of(&t, NULL);
    dnn = best_of(&t, op);
    if (op16) dnn16 = best_of(&t, op16);
  }
  free(t.in);
  free(t.out);
  free(t.scratch);
  if (dnn < 0) {
    pd_onednn_op_destroy(op);
    pd_onednn_op_destroy(op16);
    if (!t.in || !t.out || !t.scratch)
      return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory timing layer %s", l->name);
    say(c, "\n  %s: ours (oneDNN failed to run it)", l->name);
    return PD_OK;
  }
  const char *our_name =
      plan->wino_u[list][layer] ? plan->wino->name : (conv ? "im2col+sgemm" : "sgemm");
  /* kernels onednn: bf16 wherever oneDNN has it (the most bf16 a plan can have) */
  const int use16 = dnn16 >= 0 && (c->mode == PD_CPU_KERNELS_ONEDNN || dnn16 < dnn);
  const double best_dnn = use16 ? dnn16 : dnn;
  const int take = c->mode == PD_CPU_KERNELS_ONEDNN || best_dnn < ours;
  if (conv)
    say(c, "\n  %s: conv %dx%d/%d %dx%dx%d -> %d, %d views:", l->name, l->kernel, l->kernel,
        l->stride, l->in.h, l->in.w, l->in.c, l->filters, l->in.views);
  else
    say(c, "\n  %s: dense %d -> %d, %d rows:", l->name, l->in.h * l->in.w * l->in.c, l->units,
        t.rows);
  if (ours >= 0) say(c, " ours %.3f ms [%s],", ours * 1e3, our_name);
  say(c, " oneDNN %.3f ms [%s]", dnn * 1e3, pd_onednn_op_impl(op));
  if (dnn16 >= 0) say(c, ", oneDNN bf16 %.3f ms [%s]", dnn16 * 1e3, pd_onednn_op_impl(op16));
  say(c, " -> %s", !take ? "ours" : use16 ? "oneDNN bf16" : "oneDNN");
  c->timed++;
  if (ours >= 0) {
    c->ours_s += ours;
    c->chosen_s += take ? best_dnn : ours;
  }
  if (take) {
    c->op[list][layer] = use16 ? op16 : op;
    pd_onednn_op_destroy(use16 ? op : op16);
    c->to_onednn++;
    c->to_bf16 += use16;
    c->bf16[list][layer] = (unsigned char)use16;
  } else {
    pd_onednn_op_destroy(op);
    pd_onednn_op_destroy(op16);
  }
  return PD_OK;
}
#else
int pd_cpu_choice_run(pd_cpu_choice *c, int list, int layer, int worker, int rows, const float *in,
                      float *out, pd_error *err) {
  (void)c;
  (void)list;
  (void)worker;
  (void)rows;
  (void)in;
  (void)out;
  return pd_error_set(err, PD_EINTERNAL, "cpu backend: layer %d: oneDNN not built", layer);
}
#endif

int pd_cpu_choice_create(const pd_cpu_choice_plan *plan, pd_cpu_kernels mode, pd_cpu_choice **out,
                         pd_error *err) {
  pd_cpu_choice *c = calloc(1, sizeof *c);
  if (!c) return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory for the kernel choice");
  c->mode = mode;
  c->precision = plan->precision;
  c->graph = plan->graph;
  c->text[0] = '\0';
#ifdef PD_HAVE_ONEDNN
  char info[128];
  pd_onednn_describe(info, sizeof info);
  if (mode == PD_CPU_KERNELS_OURS) {
    say(c, "; %s: not used (kernels: ours)\n", info);
    *out = c;
    return PD_OK;
  }
  int rc = pd_onednn_create(&c->dnn, err);
  if (rc != PD_OK) {
    free(c);
    return rc;
  }
  say(c, "; %s; per layer, timed at %d image(s) per worker, %s%s:", info, plan->chunk,
      mode == PD_CPU_KERNELS_AUTO ? "fastest kept" : "oneDNN wherever it runs",
      plan->precision == PD_PRECISION_BF16 ? ", bf16 convolutions timed too" : "");
  pd_cpu_choice_thread_init(1);
  const pd_graph *g = plan->graph;
  for (int b = 0; rc == PD_OK && b < g->n_branches; b++)
    for (int i = 0; rc == PD_OK && i < g->branches[b].n_layers; i++)
      rc = choose_layer(c, plan, b, i, i < plan->split[b], err);
  for (int i = 0; rc == PD_OK && i < g->n_head; i++)
    rc = choose_layer(c, plan, PD_CPU_CHOICE_HEAD, i, 0, err);
  if (rc != PD_OK) {
    pd_cpu_choice_destroy(c);
    return rc;
  }
  if (c->ours_s > 0)
    say(c,
        "\n  %d of %d layers through oneDNN (%d in bf16); timed layers %.3f ms per worker load "
        "(ours only %.3f ms)\n",
        c->to_onednn, c->timed, c->to_bf16, c->chosen_s * 1e3, c->ours_s * 1e3);
  else
    say(c, "\n  %d of %d layers through oneDNN (%d in bf16)\n", c->to_onednn, c->timed, c->to_bf16);
#else
  (void)plan;
  say(c, "; oneDNN: not built (every layer ours)\n");
#endif
  *out = c;
  return PD_OK;
}
