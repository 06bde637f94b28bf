/* The CPU backend. A plan owns T-1 worker threads (the caller is worker 0)
 * and one workspace per worker, all sized at plan time for max_batch. A run
 * gives each worker a contiguous slice of the batch; the worker pushes its
 * images one at a time through each branch's spatial layers (their maps are
 * large), then runs the remaining layers (dense, roll, pooling, head) over
 * its whole slice at once, so dense layers are real matrix products. A
 * batch smaller than the worker count is not split by images: the workers
 * share each image (coop_spatial), so one crop uses every core. */
#include "pd_cpu_backend.h"

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pd_cpu_choice.h"
#include "pd_cpu_ops.h"
#include "pd_conv3x3.h"

#ifdef PD_HAVE_ONEDNN
#include "pd_onednn.h"
#endif

/* im2col blocks up to this size: a block and the layer's weights stay in L2. */
#define PD_CPU_COL_BLOCK_BYTES (1u << 20)

typedef struct cpu_backend {
  pd_backend base;
  int threads;
  int profile;
  pd_cpu_kernels kernels;
  pd_precision precision;
} cpu_backend;

typedef struct cpu_workspace {
  float *img_a, *img_b;                /* one image through the spatial layers */
  float *chunk_a, *chunk_b;            /* the slice through the remaining layers */
  float *head_in;                      /* the slice's concatenated branch outputs */
  float *col;                          /* im2col block */
  float *wino;                         /* pd_conv3x3 scratch (Winograd V and M blocks) */
  double seconds[PD_LAYER_KIND_COUNT]; /* profile: time per layer kind */
  int worker;                          /* index: the worker's oneDNN slot */
  int rc;                              /* of the worker's last run (oneDNN can fail) */
  pd_error err;
} cpu_workspace;

typedef struct cpu_plan {
  struct pd_plan_base base;
  int threads, chunk; /* chunk: most images one worker gets */
  int profile;
  pd_precision precision;
  int split[PD_MAX_BRANCHES]; /* branch layers [0, split) run image by image */
  size_t col_cap;
  /* pd_conv3x3's prepared weights of each 3x3 stride-1 conv, per layer list
   * (branches, then the head at index PD_MAX_BRANCHES); NULL for layers run
   * by im2col + SGEMM. */
  const pd_conv3x3_kernels *wino_kern;
  float *wino_u[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS];
  size_t wino_cap;
  pd_cpu_choice *choice; /* which layers run through oneDNN */
  cpu_workspace *ws;

  pthread_t *tids;
  pthread_barrier_t barrier; /* lockstep of the workers sharing one image */
  pthread_mutex_t mu;
  pthread_cond_t start, done;
  unsigned long generation;
  int pending, stopping;
  const pd_batch *batch; /* of the run in progress */
  float *probs;
} cpu_plan;

/* ---- sizing ---- */

static int branch_split(const pd_graph_branch *b) {
  for (int i = 0; i < b->n_layers; i++) {
    const pd_layer *l = &b->layers[i];
    if (l->kind == PD_LAYER_DENSE || (l->in.h == 1 && l->in.w == 1)) return i;
  }
  return b->n_layers;
}

static size_t max_sz(size_t a, size_t b) {
  return a > b ? a : b;
}

static size_t layers_max_len(const pd_layer *layers, int from, int to) {
  size_t m = 0;
  for (int i = from; i < to; i++)
    m = max_sz(m, max_sz(pd_shape_len(layers[i].in), pd_shape_len(layers[i].out)));
  return m;
}

static size_t layers_col_cap(const pd_layer *layers, int n) {
  size_t m = 0;
  for (int i = 0; i < n; i++)
    if (layers[i].kind == PD_LAYER_CONV)
      m = max_sz(m, pd_cpu_conv_col_floats(&layers[i], PD_CPU_COL_BLOCK_BYTES));
  return m;
}

static float *alloc_floats(size_t n) {
  size_t bytes = (n ? n : 1) * sizeof(float);
  bytes = (bytes + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

static int workspace_alloc(cpu_plan *p, cpu_workspace *ws) {
  const pd_graph *m = p->base.graph;
  size_t img = 0, row = (size_t)m->head_in;
  for (int b = 0; b < m->n_branches; b++) {
    const pd_graph_branch *br = &m->branches[b];
    img = max_sz(img, layers_max_len(br->layers, 0, p->split[b]));
    row = max_sz(row, layers_max_len(br->layers, p->split[b], br->n_layers));
    row = max_sz(row, pd_graph_branch_input_len(m, b));
  }
  row = max_sz(row, layers_max_len(m->head, 0, m->n_head));
  ws->img_a = alloc_floats(img);
  ws->img_b = alloc_floats(img);
  ws->chunk_a = alloc_floats(row * p->chunk);
  ws->chunk_b = alloc_floats(row * p->chunk);
  ws->head_in = alloc_floats((size_t)m->head_in * p->chunk);
  ws->col = alloc_floats(p->col_cap);
  ws->wino = alloc_floats(p->wino_cap);
  return ws->img_a && ws->img_b && ws->chunk_a && ws->chunk_b && ws->head_in && ws->col && ws->wino
             ? 0
             : -1;
}

static void workspace_free(cpu_workspace *ws) {
  free(ws->img_a);
  free(ws->img_b);
  free(ws->chunk_a);
  free(ws->chunk_b);
  free(ws->head_in);
  free(ws->col);
  free(ws->wino);
}

/* ---- running ---- */

/* Runs layers [from, to) on `images` images starting in *cur, ping-ponging
 * between a and b (never writing into the buffer it reads). Returns the result. */
static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *run_layers(const cpu_plan *p, cpu_workspace *ws, const pd_layer *layers, int list,
                         int from, int to, int images, float *cur, float *a, float *b) {
  float *const *wino_u = p->wino_u[list];
  for (int i = from; i < to; i++) {
    float *out = cur == a ? b : a;
    double t0 = p->profile ? now_seconds() : 0.0;
    const pd_layer *l = &layers[i];
    if (pd_cpu_choice_onednn(p->choice, list, i)) {
      int rc = pd_cpu_choice_run(p->choice, list, i, ws->worker, images * l->in.views, cur, out,
                                 &ws->err);
      if (rc != PD_OK && ws->rc == PD_OK) ws->rc = rc;
      cur = out;
    } else if (wino_u[i]) {
      const size_t in_len = pd_shape_len(l->in), out_len = pd_shape_len(l->out);
      for (int img = 0; img < images; img++)
        pd_conv3x3_run(p->wino_kern, l, wino_u[i], cur + img * in_len, out + img * out_len,
                       ws->wino);
      cur = out;
    } else if (!pd_cpu_layer_forward(l, images, cur, out, ws->col, p->col_cap)) {
      cur = out;
    }
    if (p->profile) ws->seconds[layers[i].kind] += now_seconds() - t0;
  }
  return cur;
}

/* A batch smaller than the worker count: every worker takes part in each
 * image's image-by-image layers, in lockstep (a barrier after each layer),
 * on worker 0's image buffers: pd_conv3x3 layers split into parts (blocks of
 * tiles, or views: the same bits as one worker's run), a oneDNN layer run by
 * worker 0 on every thread (oneDNN's own threading), the other layers by
 * worker 0. Worker 0 then runs the rest of the network alone. */
static int layer_in_place(pd_layer_kind k) {
  return k == PD_LAYER_LEAKY_RELU || k == PD_LAYER_DROPOUT || k == PD_LAYER_SOFTMAX;
}

static float *coop_spatial(cpu_plan *p, int worker, int b) {
  const pd_layer *layers = p->base.graph->branches[b].layers;
  cpu_workspace *ws = &p->ws[worker], *w0 = &p->ws[0];
  float *cur = w0->img_a;
  pthread_barrier_wait(&p->barrier); /* worker 0 has put the image in img_a */
  for (int i = 0; i < p->split[b]; i++) {
    const pd_layer *l = &layers[i];
    float *out = cur == w0->img_a ? w0->img_b : w0->img_a;
    double t0 = p->profile ? now_seconds() : 0.0;
    const int dnn = pd_cpu_choice_onednn(p->choice, b, i);
    if (!dnn && p->wino_u[b][i]) {
      pd_conv3x3_run_part(p->wino_kern, l, p->wino_u[b][i], cur, out, ws->wino, worker, p->threads);
    } else if (worker == 0 && dnn) {
      pd_cpu_choice_thread_init(p->threads);
      int rc = pd_cpu_choice_run(p->choice, b, i, 0, l->in.views, cur, out, &ws->err);
      pd_cpu_choice_thread_init(1);
      if (rc != PD_OK && ws->rc == PD_OK) ws->rc = rc;
    } else if (worker == 0) {
      pd_cpu_layer_forward(l, 1, cur, out, ws->col, p->col_cap);
    }
    if (!layer_in_place(l->kind)) cur = out;
    if (p->profile) ws->seconds[l->kind] += now_seconds() - t0;
    pthread_barrier_wait(&p->barrier);
  }
  return cur;
}

/* The part of a shared batch a worker other than 0 takes. */
static void coop_helper(cpu_plan *p, int worker) {
  const pd_graph *m = p->base.graph;
  for (int b = 0; b < m->n_branches; b++)
    for (int i = 0; p->split[b] > 0 && i < p->batch->n; i++)
      coop_spatial(p, worker, b);
}

static void run_branch(cpu_plan *p, cpu_workspace *ws, int b, int first, int count, int coop) {
  const pd_graph *m = p->base.graph;
  const pd_graph_branch *br = &m->branches[b];
  const size_t in_len = pd_graph_branch_input_len(m, b);
  const float *input = p->batch->branch[b] + (size_t)first * in_len;
  const int split = p->split[b];
  float *cur;
  if (split == 0) {
    memcpy(ws->chunk_a, input, (size_t)count * in_len * sizeof(float));
    cur = ws->chunk_a;
  } else {
    const size_t row = pd_shape_len(br->layers[split - 1].out);
    for (int i = 0; i < count; i++) {
      memcpy(ws->img_a, input + (size_t)i * in_len, in_len * sizeof(float));
      float *r =
          coop ? coop_spatial(p, 0, b)
               : run_layers(p, ws, br->layers, b, 0, split, 1, ws->img_a, ws->img_a, ws->img_b);
      memcpy(ws->chunk_a + (size_t)i * row, r, row * sizeof(float));
    }
    cur = ws->chunk_a;
  }
  cur = run_layers(p, ws, br->layers, b, split, br->n_layers, count, cur, ws->chunk_a, ws->chunk_b);

  int offset = 0;
  for (int i = 0; i < b; i++)
    offset += m->branches[i].out.c;
  const int width = br->out.c;
  for (int i = 0; i < count; i++)
    memcpy(ws->head_in + (size_t)i * m->head_in + offset, cur + (size_t)i * width,
           (size_t)width * sizeof(float));
}

static void run_slice(cpu_plan *p, int worker) {
  const pd_graph *m = p->base.graph;
  const int n = p->batch->n;
  const int coop = n < p->threads;
  const int first = coop ? 0 : (int)((long)n * worker / p->threads);
  const int count = coop ? n : (int)((long)n * (worker + 1) / p->threads) - first;
  cpu_workspace *ws = &p->ws[worker];
  ws->rc = PD_OK;
  if (coop && worker > 0) {
    coop_helper(p, worker);
    return;
  }
  if (count <= 0) return;
  for (int b = 0; b < m->n_branches; b++)
    run_branch(p, ws, b, first, count, coop);
  float *out = run_layers(p, ws, m->head, PD_CPU_CHOICE_HEAD, 0, m->n_head, count, ws->head_in,
                          ws->chunk_a, ws->chunk_b);
  memcpy(p->probs + (size_t)first * m->n_classes, out,
         (size_t)count * m->n_classes * sizeof(float));
}

typedef struct worker_arg {
  cpu_plan *plan;
  int index;
} worker_arg;

static void *worker_main(void *arg) {
  worker_arg wa = *(worker_arg *)arg;
  free(arg);
  cpu_plan *p = wa.plan;
  unsigned long seen = 0;
  pd_cpu_choice_thread_init(1);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stopping && p->generation == seen)
      pthread_cond_wait(&p->start, &p->mu);
    if (p->stopping) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    run_slice(p, wa.index);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static int cpu_run(pd_plan *plan, const pd_batch *in, float *probs, pd_error *err) {
  cpu_plan *p = (cpu_plan *)plan;
  if (in->n == 0) return PD_OK;
  pd_cpu_choice_thread_init(1);
  pthread_mutex_lock(&p->mu);
  p->batch = in;
  p->probs = probs;
  p->pending = p->threads - 1;
  p->generation++;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);

  run_slice(p, 0);

  pthread_mutex_lock(&p->mu);
  while (p->pending > 0)
    pthread_cond_wait(&p->done, &p->mu);
  p->batch = NULL;
  p->probs = NULL;
  pthread_mutex_unlock(&p->mu);
  for (int t = 0; t < p->threads; t++)
    if (p->ws[t].rc != PD_OK) {
      pd_error_set(err, p->ws[t].rc, "cpu backend: %s", p->ws[t].err.msg);
      return p->ws[t].rc;
    }
  return PD_OK;
}

/* ---- plan lifetime ---- */

static void cpu_plan_destroy(pd_plan *plan) {
  cpu_plan *p = (cpu_plan *)plan;
  if (!p) return;
  if (p->tids) {
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->threads; t++)
      if (p->tids[t]) pthread_join(p->tids[t], NULL);
    free(p->tids);
  }
  if (p->ws)
    for (int t = 0; t < p->threads; t++)
      workspace_free(&p->ws[t]);
  free(p->ws);
  for (int b = 0; b <= PD_MAX_BRANCHES; b++)
    for (int i = 0; i < PD_MAX_LAYERS; i++)
      free(p->wino_u[b][i]);
  pd_cpu_choice_destroy(p->choice);
  pthread_barrier_destroy(&p->barrier);
  pthread_cond_destroy(&p->start);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static const pd_backend_ops cpu_ops;

/* Transforms the weights of every conv that Winograd computes and sizes the scratch. */
static int plan_winograd_list(cpu_plan *p, const pd_layer *layers, int n, float **u) {
  for (int i = 0; i < n; i++) {
    if (!pd_conv3x3_applies(&layers[i])) continue;
    u[i] = alloc_floats(pd_conv3x3_weights_floats(&layers[i]));
    if (!u[i]) return -1;
    pd_conv3x3_prepare_weights(&layers[i], u[i]);
    p->wino_cap = max_sz(p->wino_cap, pd_conv3x3_scratch_floats(&layers[i]));
  }
  return 0;
}

static int plan_winograd(cpu_plan *p) {
  const pd_graph *m = p->base.graph;
  p->wino_kern = pd_conv3x3_kernels_best();
  for (int b = 0; b < m->n_branches; b++)
    if (plan_winograd_list(p, m->branches[b].layers, m->branches[b].n_layers, p->wino_u[b]) != 0)
      return -1;
  return plan_winograd_list(p, m->head, m->n_head, p->wino_u[PD_MAX_BRANCHES]);
}

static int start_workers(cpu_plan *p, pd_error *err) {
  p->tids = calloc((size_t)p->threads, sizeof *p->tids);
  if (!p->tids) return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory for threads");
  for (int t = 1; t < p->threads; t++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory for threads");
    wa->plan = p;
    wa->index = t;
    int rc = pthread_create(&p->tids[t], NULL, worker_main, wa);
    if (rc != 0) {
      free(wa);
      p->tids[t] = 0;
      return pd_error_set(err, PD_EINTERNAL, "cpu backend: cannot start worker thread %d: %s", t,
                          strerror(rc));
    }
  }
  return PD_OK;
}

static int cpu_plan_create(pd_backend *be, const pd_graph *m, int max_batch, pd_plan **out,
                           pd_error *err) {
  cpu_backend *cb = (cpu_backend *)be;
  cpu_plan *p = calloc(1, sizeof *p);
  if (!p) return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory for the plan");
  p->base.ops = &cpu_ops;
  p->base.graph = m;
  p->base.max_batch = max_batch;
  /* Every worker, even for batches smaller than the workers: those share
   * each image (coop_spatial). */
  p->threads = cb->threads;
  p->chunk = (max_batch + p->threads - 1) / p->threads;
  p->profile = cb->profile;
  p->precision = cb->precision;
  pthread_barrier_init(&p->barrier, NULL, (unsigned)p->threads);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->start, NULL);
  pthread_cond_init(&p->done, NULL);

  for (int b = 0; b < m->n_branches; b++) {
    p->split[b] = branch_split(&m->branches[b]);
    p->col_cap = max_sz(p->col_cap, layers_col_cap(m->branches[b].layers, m->branches[b].n_layers));
  }
  p->col_cap = max_sz(p->col_cap, layers_col_cap(m->head, m->n_head));
  if (plan_winograd(p) != 0) {
    cpu_plan_destroy((pd_plan *)p);
    return pd_error_set(err, PD_ENOMEM,
                        "cpu backend: out of memory for the Winograd weights of model '%s'",
                        m->name);
  }
  pd_cpu_choice_plan cp = {m,         p->threads, p->chunk,    p->split, p->wino_kern,
                           p->wino_u, p->col_cap, p->precision};
  int rc = pd_cpu_choice_create(&cp, cb->kernels, &p->choice, err);
  if (rc != PD_OK) {
    cpu_plan_destroy((pd_plan *)p);
    return pd_error_prefix(err, "cpu backend: plan for model '%s'", m->name);
  }

  p->ws = calloc((size_t)p->threads, sizeof *p->ws);
  rc = p->ws ? PD_OK : PD_ENOMEM;
  for (int t = 0; rc == PD_OK && t < p->threads; t++) {
    p->ws[t].worker = t;
    if (workspace_alloc(p, &p->ws[t]) != 0) rc = PD_ENOMEM;
  }
  if (rc != PD_OK) {
    cpu_plan_destroy((pd_plan *)p);
    return pd_error_set(err, PD_ENOMEM,
                        "cpu backend: out of memory for the workspaces of model '%s' at batch %d",
                        m->name, max_batch);
  }
  rc = start_workers(p, err);
  if (rc != PD_OK) {
    cpu_plan_destroy((pd_plan *)p);
    return rc;
  }
  *out = (pd_plan *)p;
  return PD_OK;
}

static void cpu_destroy(pd_backend *be) {
  free(be);
}

static const pd_backend_ops cpu_ops = {
    .name = "cpu",
    .plan_create = cpu_plan_create,
    .run = cpu_run,
    .submit = pd_plan_sync_submit, /* the batch computes in submit, on these threads */
    .wait = pd_plan_sync_wait,
    .plan_destroy = cpu_plan_destroy,
    .destroy = cpu_destroy,
};

/* PD_OK for a precision this build and CPU run, else why not and what they run. */
static int check_precision(const pd_cpu_options *opt, pd_error *err) {
  const pd_precision p = opt ? opt->precision : PD_PRECISION_FP32;
  char can[32], cpu[160];
  pd_cpu_precisions(can, sizeof can);
  if (p == PD_PRECISION_FP32) return PD_OK;
  if (p == PD_PRECISION_AUTO)
    return pd_error_set(err, PD_EINVAL,
                        "cpu backend: precision auto is resolved per model folder before the "
                        "backend is made; this CPU runs: %s",
                        can);
  if (p == PD_PRECISION_INT8)
    return pd_error_set(err, PD_EUNSUPP,
                        "cpu backend: precision int8 is not implemented; this CPU runs: %s", can);
  if (p == PD_PRECISION_TF32 || p == PD_PRECISION_FP16)
    return pd_error_set(
        err, PD_EUNSUPP,
        "cpu backend: precision %s runs on the CUDA backend only; this CPU runs: %s",
        pd_precision_name(p), can);
  if (p != PD_PRECISION_BF16)
    return pd_error_set(err, PD_EINVAL, "cpu backend: precision %d out of range", (int)p);
  if (opt->kernels == PD_CPU_KERNELS_OURS)
    return pd_error_set(err, PD_EINVAL,
                        "cpu backend: precision bf16 runs through oneDNN, which kernels 'ours' "
                        "excludes");
  if (pd_cpu_precision_available(p)) return PD_OK;
  pd_cpu_features_describe(cpu, sizeof cpu);
#ifdef PD_HAVE_ONEDNN
  char dnn[96];
  pd_onednn_describe(dnn, sizeof dnn);
  return pd_error_set(err, PD_EUNSUPP,
                      "cpu backend: precision bf16 needs oneDNN on AVX-512 BF16 or AMX; here %s "
                      "on %s; it runs: %s",
                      dnn, cpu, can);
#else
  return pd_error_set(err, PD_EUNSUPP,
                      "cpu backend: precision bf16 needs oneDNN, which this build lacks (configure "
                      "with -Donednn=enabled); it runs: %s",
                      can);
#endif
}

int pd_cpu_backend_create(const pd_cpu_options *opt, pd_backend **out, pd_error *err) {
  int threads = opt ? opt->threads : 0;
  if (threads < 0 || threads > 256)
    return pd_error_set(err, PD_EINVAL, "cpu backend: threads %d out of range 0..256", threads);
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  PD_TRY(check_precision(opt, err));
  cpu_backend *cb = calloc(1, sizeof *cb);
  if (!cb) return pd_error_set(err, PD_ENOMEM, "cpu backend: out of memory");
  cb->base.ops = &cpu_ops;
  cb->threads = threads;
  cb->profile = opt ? opt->profile : 0;
  cb->kernels = opt ? (pd_cpu_kernels)opt->kernels : PD_CPU_KERNELS_AUTO;
  cb->precision = opt ? opt->precision : PD_PRECISION_FP32;
  if (cb->kernels < PD_CPU_KERNELS_AUTO || cb->kernels > PD_CPU_KERNELS_ONEDNN) {
    free(cb);
    return pd_error_set(err, PD_EINVAL, "cpu backend: kernels %d out of range (auto, ours, onednn)",
                        opt->kernels);
  }
  /* The backend parallelises over images itself and calls SGEMM from every
   * worker: OpenBLAS's own threads would only oversubscribe the cores. This is
   * process-wide OpenBLAS state, and the engine owns it. */
  openblas_set_num_threads(1);
  *out = &cb->base;
  return PD_OK;
}

void pd_cpu_plan_layer_seconds(const pd_plan *plan, double *seconds) {
  const cpu_plan *p = (const cpu_plan *)plan;
  for (int k = 0; k < PD_LAYER_KIND_COUNT; k++) {
    seconds[k] = 0.0;
    for (int t = 0; t < p->threads; t++)
      seconds[k] += p->ws[t].seconds[k];
  }
}

void pd_cpu_plan_describe(const pd_plan *plan, char *buf, size_t len) {
  const cpu_plan *p = (const cpu_plan *)plan;
  int timed, dnn, bf16;
  char cpu[160];
  pd_cpu_choice_counts(p->choice, &timed, &dnn, &bf16);
  pd_cpu_features_describe(cpu, sizeof cpu);
  int n = snprintf(
      buf, len,
      "cpu plan: precision %s (%d of %d timed layers in bf16); %s; %d worker(s), up to "
      "%d image(s) each; 3x3 kernels %s; ",
      pd_precision_name(p->precision), bf16, timed, cpu, p->threads, p->chunk, p->wino_kern->name);
  if (n > 0 && (size_t)n < len) pd_cpu_choice_describe(p->choice, buf + n, len - (size_t)n);
}

pd_precision pd_cpu_plan_precision(const pd_plan *plan) {
  return ((const cpu_plan *)plan)->precision;
}

void pd_cpu_plan_kernels(const pd_plan *plan, char *buf, size_t len) {
  pd_cpu_choice_kernels(((const cpu_plan *)plan)->choice, buf, len);
}
