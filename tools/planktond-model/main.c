/* planktond-model: inspect, run and benchmark a model folder without the
 * daemon.
 *
 *   planktond-model check DIR
 *   planktond-model run DIR [--threads N] [--batch N] [--probs FILE] [--tta N]
 *                           [--dump-inputs FILE] [--dump-gray FILE] IMAGE...
 *   planktond-model run DIR --inputs FILE --count N [--probs FILE] ...
 *   planktond-model eval DIR DATA_ROOT [--split FILE [--subset NAME]] [--tta N]
 *                        [--batch N] [--threads N] [--confusion FILE.csv] [--limit N]
 *   planktond-model bench DIR [--batch N] [--threads N] [--iters N] [--warmup N]
 *   planktond-model sgemm [--threads N] [--size N]
 *
 * File layouts (raw little-endian): inputs are float32, for each branch in
 * model order all images' slots one after another; probs are float32
 * [n][classes]; gray dumps are, per image, int32 width, int32 height and the
 * pixels.
 *
 * DIR may be an ensemble folder (models/FORMAT.md "Ensembles") for check,
 * run with images, and eval. --tta N: transforms per image (1 = none; the
 * default is the model's tta.count), averaged (pd_tta.h). `run` with
 * --inputs, --dump-inputs or --dump-gray works on one plain model without
 * TTA (the raw-slot layouts above); without them it goes through
 * pd_ensemble (identical probabilities at N = 1). eval's last line is
 * machine-readable (models/FORMAT.md "Evaluation"). */
#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_dataset.h"
#include "pd_ensemble.h"
#include "pd_servable.h"
#include "pd_eval.h"
#include "pd_image.h"
#include "pd_model.h"
#include "pd_tta.h"
#include "pd_warp.h"

typedef struct options {
  const char *model_dir, *data_root;
  int threads, batch, iters, warmup, count, size;
  int tta, limit; /* tta: -1 = the model's default */
  const char *probs, *dump_inputs, *dump_gray, *inputs;
  const char *split, *subset, *confusion;
  int n_images;
  char **images;
} options;

static void usage(FILE *f) {
  fputs("usage: planktond-model check DIR\n"
        "       planktond-model run DIR [--threads N] [--batch N] [--probs FILE]\n"
        "                               [--dump-inputs FILE] [--dump-gray FILE] IMAGE...\n"
        "       planktond-model run DIR --inputs FILE --count N [--probs FILE]\n"
        "       planktond-model eval DIR DATA_ROOT [--split FILE [--subset NAME]] [--tta N]\n"
        "                            [--batch N] [--threads N] [--confusion FILE.csv] [--limit N]\n"
        "       planktond-model bench DIR [--batch N] [--threads N] [--iters N] [--warmup N]\n"
        "       planktond-model sgemm [--threads N] [--size N]\n",
        f);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) {
    fprintf(stderr, "planktond-model: %s: expected an integer in %d..%d, got '%s'\n", flag, lo, hi,
            s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* need_dir: 0 = no positional, 1 = DIR, 2 = DIR DATA_ROOT (and no images). */
static int parse_options(int argc, char **argv, int need_dir, options *o) {
  *o = (options){.threads = 0, .batch = 64, .iters = 10, .warmup = 2, .size = 2048, .tta = -1};
  int i = 2;
  for (int k = 0; k < need_dir; k++) {
    if (argc < 3 + k || argv[2 + k][0] == '-') {
      usage(stderr);
      return -1;
    }
    if (k == 0)
      o->model_dir = argv[2];
    else
      o->data_root = argv[3];
    i = 3 + k;
  }
  while (i < argc) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *ip = NULL, lo = 0, hi = 0;
    const char **sp = NULL;
    if (!strcmp(a, "--threads"))
      ip = &o->threads, lo = 0, hi = 256;
    else if (!strcmp(a, "--batch"))
      ip = &o->batch, lo = 1, hi = 65536;
    else if (!strcmp(a, "--iters"))
      ip = &o->iters, lo = 1, hi = 1000000;
    else if (!strcmp(a, "--warmup"))
      ip = &o->warmup, lo = 0, hi = 1000000;
    else if (!strcmp(a, "--count"))
      ip = &o->count, lo = 1, hi = 100000000;
    else if (!strcmp(a, "--size"))
      ip = &o->size, lo = 16, hi = 16384;
    else if (!strcmp(a, "--tta"))
      ip = &o->tta, lo = 0, hi = PD_TTA_MAX;
    else if (!strcmp(a, "--limit"))
      ip = &o->limit, lo = 1, hi = 100000000;
    else if (!strcmp(a, "--split"))
      sp = &o->split;
    else if (!strcmp(a, "--subset"))
      sp = &o->subset;
    else if (!strcmp(a, "--confusion"))
      sp = &o->confusion;
    else if (!strcmp(a, "--probs"))
      sp = &o->probs;
    else if (!strcmp(a, "--dump-inputs"))
      sp = &o->dump_inputs;
    else if (!strcmp(a, "--dump-gray"))
      sp = &o->dump_gray;
    else if (!strcmp(a, "--inputs"))
      sp = &o->inputs;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "planktond-model: unknown option '%s'\n", a);
      return -1;
    } else if (need_dir == 2) {
      fprintf(stderr, "planktond-model: unexpected argument '%s'\n", a);
      return -1;
    } else {
      o->images = argv + i;
      o->n_images = argc - i;
      break;
    }
    if (!v) {
      fprintf(stderr, "planktond-model: %s needs a value\n", a);
      return -1;
    }
    if (ip && parse_int(a, v, lo, hi, ip) != 0) return -1;
    if (sp) *sp = v;
    i += 2;
  }
  return 0;
}

static const char *symmetry_name(pd_symmetry s) {
  return s == PD_SYM_C4 ? "c4" : s == PD_SYM_D4 ? "d4" : "none";
}

static void print_layers(const pd_layer *layers, int n, const char *indent) {
  for (int i = 0; i < n; i++) {
    const pd_layer *l = &layers[i];
    printf("%s%-18s %-16s %dx%dx%dx%d -> %dx%dx%dx%d\n", indent, l->name,
           pd_layer_kind_name(l->kind), l->in.views, l->in.h, l->in.w, l->in.c, l->out.views,
           l->out.h, l->out.w, l->out.c);
  }
}

static void print_model(const pd_model *m, const char *indent) {
  printf("%smodel %s version %s: %d classes, symmetry %s, %zu parameters, %.3f GFLOP per image, "
         "tta count %d\n",
         indent, m->name, m->version, m->n_classes, symmetry_name(m->symmetry), m->n_params,
         pd_model_flops_per_image(m) / 1e9, m->tta.count);
  char sub[16];
  snprintf(sub, sizeof sub, "%s  ", indent);
  for (int b = 0; b < m->n_branches; b++) {
    const pd_input_branch *br = &m->branches[b];
    const pd_graph_branch *gb = &m->graph.branches[b];
    if (br->kind == PD_INPUT_IMAGE)
      printf("%sbranch %s: image %dx%d, %s\n", indent, br->name, br->size, br->size,
             br->rescale == PD_RESCALE_FIT ? "fit" : "fixed factor");
    else
      printf("%sbranch %s: %d size features\n", indent, br->name, br->n_features);
    print_layers(gb->layers, gb->n_layers, sub);
  }
  printf("%shead: %d inputs\n", indent, m->graph.head_in);
  print_layers(m->graph.head, m->graph.n_head, sub);
}

static pd_ensemble *load_or_report(const char *dir) {
  pd_ensemble *e = NULL;
  pd_error err = {0};
  if (pd_ensemble_load(dir, &e, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return NULL;
  }
  return e;
}

static int cmd_check(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 1, &o) != 0) return 2;
  pd_ensemble *e = load_or_report(o.model_dir);
  if (!e) return 1;
  if (!e->is_ensemble) {
    print_model(e->members[0], "");
  } else {
    printf("ensemble %s version %s: %d members, %d classes, tta count %d\n", e->name, e->version,
           e->n_members, e->n_classes, e->tta_count);
    for (int i = 0; i < e->n_members; i++) {
      printf("member %d: %s, weight %.6g%s\n", i, e->member_dir[i], e->weights[i],
             e->perm[i] ? " (class order differs from member 0: mapped)" : "");
      print_model(e->members[i], "  ");
    }
  }
  pd_ensemble_free(e);
  return 0;
}

/* Per-branch input arrays for n images, laid out as in the file format. */
typedef struct inputs {
  int n;
  float *branch[PD_MAX_BRANCHES];
} inputs;

static void inputs_free(inputs *in) {
  for (int b = 0; b < PD_MAX_BRANCHES; b++)
    free(in->branch[b]);
}

static int inputs_alloc(const pd_model *m, int n, inputs *in) {
  memset(in, 0, sizeof *in);
  in->n = n;
  for (int b = 0; b < m->n_branches; b++) {
    in->branch[b] = calloc((size_t)n * pd_model_branch_input_len(m, b), sizeof(float));
    if (!in->branch[b]) return -1;
  }
  return 0;
}

static int write_all(FILE *f, const void *p, size_t bytes) {
  return fwrite(p, 1, bytes, f) == bytes ? 0 : -1;
}

static int write_file(const char *path, const void *data, size_t bytes) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int rc = write_all(f, data, bytes);
  return fclose(f) != 0 || rc != 0 ? -1 : 0;
}

static int inputs_write(const pd_model *m, const inputs *in, const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int rc = 0;
  for (int b = 0; b < m->n_branches && rc == 0; b++)
    rc = write_all(f, in->branch[b], (size_t)in->n * pd_model_branch_input_len(m, b) * 4);
  return fclose(f) != 0 || rc != 0 ? -1 : 0;
}

static int inputs_read(const pd_model *m, const char *path, inputs *in) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "planktond-model: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (int b = 0; b < m->n_branches && rc == 0; b++) {
    size_t want = (size_t)in->n * pd_model_branch_input_len(m, b);
    if (fread(in->branch[b], sizeof(float), want, f) != want) rc = -1;
  }
  if (rc == 0 && fgetc(f) != EOF) rc = -1;
  fclose(f);
  if (rc != 0)
    fprintf(stderr, "planktond-model: %s: size does not match %d images of model '%s'\n", path,
            in->n, m->name);
  return rc;
}

/* Decodes and preprocesses every image; appends each decoded crop to `gray` if open. */
static int inputs_from_images(const pd_model *m, char **paths, inputs *in, FILE *gray) {
  pd_image_limits limits = pd_image_limits_default();
  for (int i = 0; i < in->n; i++) {
    pd_gray_image img;
    pd_error err = {0};
    if (pd_image_load_file(paths[i], &limits, &img, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      return -1;
    }
    float *slots[PD_MAX_BRANCHES];
    for (int b = 0; b < m->n_branches; b++)
      slots[b] = in->branch[b] + (size_t)i * pd_model_branch_input_len(m, b);
    pd_model_fill_view(m, img.pixels, img.width, img.height, NULL, slots);
    int rc = 0;
    if (gray) {
      int32_t wh[2] = {img.width, img.height};
      rc = write_all(gray, wh, sizeof wh) ||
           write_all(gray, img.pixels, (size_t)img.width * img.height);
    }
    pd_gray_image_free(&img);
    if (rc != 0) {
      fprintf(stderr, "planktond-model: cannot write the gray dump\n");
      return -1;
    }
  }
  return 0;
}

/* Runs all n images through the plan in batches of at most max_batch. */
static int run_all(const pd_model *m, pd_plan *plan, int max_batch, const inputs *in,
                   float *probs) {
  for (int first = 0; first < in->n; first += max_batch) {
    pd_batch batch = {.n = in->n - first < max_batch ? in->n - first : max_batch};
    for (int b = 0; b < m->n_branches; b++)
      batch.branch[b] = in->branch[b] + (size_t)first * pd_model_branch_input_len(m, b);
    pd_error err = {0};
    if (pd_plan_run(plan, &batch, probs + (size_t)first * m->n_classes, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      return -1;
    }
  }
  return 0;
}

static int make_engine(const pd_model *m, int threads, int profile, int batch, pd_backend **be,
                       pd_plan **plan) {
  pd_error err = {0};
  pd_cpu_options opt = {.threads = threads, .profile = profile};
  if (pd_cpu_backend_create(&opt, be, &err) != 0 ||
      pd_plan_create(*be, &m->graph, batch, plan, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* Prints one line per image: path, top class, its probability. */
static void print_top(const pd_ensemble *e, const char *name, const float *p) {
  int best = 0;
  for (int c = 1; c < e->n_classes; c++)
    best = p[c] > p[best] ? c : best;
  printf("%s\t%s\t%.6f\n", name, e->classes[best], p[best]);
}

static int make_ensemble_engine(const pd_ensemble *e, int threads, int batch, pd_backend **be,
                                pd_servable **plan) {
  pd_error err = {0};
  pd_cpu_options opt = {.threads = threads};
  if (pd_cpu_backend_create(&opt, be, &err) != 0 ||
      pd_servable_create(*be, e, batch, plan, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static int resolve_tta(const options *o, const pd_ensemble *e) {
  if (o->tta < 0) return e->tta_count;
  return o->tta < 1 ? 1 : o->tta;
}

/* `run` on images through pd_ensemble (plain models, ensembles, TTA): groups
 * of max(1, batch / tta) images, each image's slots averaged. */
static int run_ensemble(const options *o) {
  pd_ensemble *e = load_or_report(o->model_dir);
  if (!e) return 1;
  const int tta = resolve_tta(o, e), n = o->n_images;
  const int group = o->batch / tta > 0 ? o->batch / tta : 1;
  int status = 1;
  pd_backend *be = NULL;
  pd_servable *plan = NULL;
  pd_servable_inputs in = {0};
  pd_error err = {0};
  pd_image_limits limits = pd_image_limits_default();
  float *probs = calloc((size_t)n * e->n_classes, sizeof(float));
  int *counts = malloc((size_t)group * sizeof *counts);
  if (!probs || !counts) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", n);
    goto out;
  }
  if (pd_servable_inputs_init(e, group * tta, &in, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  if (make_ensemble_engine(e, o->threads, o->batch, &be, &plan) != 0) goto out;
  for (int first = 0; first < n; first += group) {
    int k = n - first < group ? n - first : group;
    for (int i = 0; i < k; i++) {
      pd_gray_image img;
      if (pd_image_load_file(o->images[first + i], &limits, &img, &err) != 0) {
        fprintf(stderr, "planktond-model: %s\n", err.msg);
        goto out;
      }
      int rc =
          pd_servable_inputs_fill(e, img.pixels, img.width, img.height, tta, &in, i * tta, &err);
      pd_gray_image_free(&img);
      if (rc != 0) {
        fprintf(stderr, "planktond-model: %s\n", err.msg);
        goto out;
      }
      counts[i] = tta;
    }
    if (pd_servable_run_slots(plan, &in, k, counts, probs + (size_t)first * e->n_classes, &err)) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      goto out;
    }
  }
  if (o->probs && write_file(o->probs, probs, (size_t)n * e->n_classes * 4) != 0) {
    fprintf(stderr, "planktond-model: cannot write %s\n", o->probs);
    goto out;
  }
  for (int i = 0; i < n; i++)
    print_top(e, o->images[i], probs + (size_t)i * e->n_classes);
  status = 0;
out:
  pd_servable_free(plan);
  pd_backend_destroy(be);
  pd_servable_inputs_free(&in);
  free(probs);
  free(counts);
  pd_ensemble_free(e);
  return status;
}

static int cmd_run(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 1, &o) != 0) return 2;
  if (!o.inputs == !o.n_images) {
    fprintf(stderr, "planktond-model run: give either images or --inputs FILE --count N\n");
    return 2;
  }
  if (o.inputs && !o.count) {
    fprintf(stderr, "planktond-model run: --inputs needs --count N\n");
    return 2;
  }
  bool raw = o.inputs || o.dump_inputs || o.dump_gray;
  if (raw && o.tta > 1) {
    fprintf(stderr, "planktond-model run: --tta cannot be combined with --inputs, --dump-inputs "
                    "or --dump-gray\n");
    return 2;
  }
  if (!raw) return run_ensemble(&o);
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    if (err.code == PD_EUNSUPP)
      fprintf(stderr, "planktond-model run: --inputs, --dump-inputs and --dump-gray need one "
                      "plain model folder\n");
    return 1;
  }
  int status = 1;
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  FILE *gray = NULL;
  int n = o.inputs ? o.count : o.n_images;
  inputs in;
  float *probs = calloc((size_t)n * m->n_classes, sizeof(float));
  if (inputs_alloc(m, n, &in) != 0 || !probs) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", n);
    goto out;
  }
  if (o.dump_gray && !(gray = fopen(o.dump_gray, "wb"))) {
    fprintf(stderr, "planktond-model: %s: %s\n", o.dump_gray, strerror(errno));
    goto out;
  }
  if (o.inputs ? inputs_read(m, o.inputs, &in) : inputs_from_images(m, o.images, &in, gray))
    goto out;
  if (o.dump_inputs && inputs_write(m, &in, o.dump_inputs) != 0) {
    fprintf(stderr, "planktond-model: cannot write %s\n", o.dump_inputs);
    goto out;
  }
  if (make_engine(m, o.threads, 0, o.batch, &be, &plan) != 0) goto out;
  if (run_all(m, plan, o.batch, &in, probs) != 0) goto out;
  if (o.probs) {
    FILE *f = fopen(o.probs, "wb");
    if (!f || write_all(f, probs, (size_t)n * m->n_classes * 4) != 0 || fclose(f) != 0) {
      fprintf(stderr, "planktond-model: cannot write %s\n", o.probs);
      goto out;
    }
  }
  for (int i = 0; i < n; i++) {
    const float *p = probs + (size_t)i * m->n_classes;
    int best = 0;
    for (int c = 1; c < m->n_classes; c++)
      best = p[c] > p[best] ? c : best;
    printf("%s\t%s\t%.6f\n", o.inputs ? "-" : o.images[i], m->classes[best], p[best]);
  }
  status = 0;
out:
  if (gray) fclose(gray);
  pd_plan_destroy(plan);
  pd_backend_destroy(be);
  inputs_free(&in);
  free(probs);
  pd_model_free(m);
  return status;
}

/* ---- eval ---- */

/* The eval pipeline: a loader thread decodes and preprocesses step k + 1
 * into one inputs buffer while the main thread runs the engine on step k
 * from the other, then scores it. A step is `per_step` consecutive samples. */

enum { SAMPLE_RUN = 0, SAMPLE_UNKNOWN, SAMPLE_FAILED };
enum { BUF_EMPTY = 0, BUF_READY };
#define EVAL_MAX_REPORTED_FAILURES 10

typedef struct eval_buf {
  pd_servable_inputs in;
  int state, step;
  int n_run;           /* images in `in` */
  int *counts;         /* [per_step] slots per image run */
  unsigned char *what; /* [per_step] SAMPLE_* per sample of the step */
} eval_buf;

typedef struct eval_pipe {
  const pd_ensemble *e;
  const pd_dataset *ds;
  const int *label_of; /* per sample: class index or -1 */
  int tta, per_step, n_steps;
  eval_buf buf[2];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  long failed;                     /* written by the loader, read after join */
  double load_s, wait_s, engine_s; /* loader busy; engine waiting for input; engine running */
} eval_pipe;

static void fill_step(eval_pipe *p, eval_buf *b, int step) {
  const pd_image_limits limits = pd_image_limits_default();
  const int first = step * p->per_step;
  const int k = p->ds->n - first < p->per_step ? p->ds->n - first : p->per_step;
  b->n_run = 0;
  b->step = step;
  for (int i = 0; i < k; i++) {
    const pd_sample *smp = &p->ds->samples[first + i];
    if (p->label_of[first + i] < 0) {
      b->what[i] = SAMPLE_UNKNOWN;
      continue;
    }
    pd_gray_image img;
    pd_error err = {0};
    int rc = pd_image_load_file(smp->path, &limits, &img, &err);
    if (rc == 0) {
      rc = pd_servable_inputs_fill(p->e, img.pixels, img.width, img.height, p->tta, &b->in,
                                   b->n_run * p->tta, &err);
      pd_gray_image_free(&img);
    }
    if (rc != 0) {
      b->what[i] = SAMPLE_FAILED;
      if (++p->failed <= EVAL_MAX_REPORTED_FAILURES)
        fprintf(stderr, "planktond-model eval: skipping an image: %s\n", err.msg);
      continue;
    }
    b->what[i] = SAMPLE_RUN;
    b->counts[b->n_run++] = p->tta;
  }
}

static void *loader_main(void *arg) {
  eval_pipe *p = arg;
  for (int step = 0; step < p->n_steps; step++) {
    eval_buf *b = &p->buf[step % 2];
    pthread_mutex_lock(&p->mu);
    while (b->state != BUF_EMPTY && !p->stop)
      pthread_cond_wait(&p->cv, &p->mu);
    int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (stop) break;
    double t0 = now_seconds();
    fill_step(p, b, step);
    p->load_s += now_seconds() - t0; /* read by the main thread after join */
    pthread_mutex_lock(&p->mu);
    b->state = BUF_READY;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  return NULL;
}

/* Runs the pipeline; scores into ev. Returns 0 or -1 (message printed). */
static int eval_run(eval_pipe *p, pd_servable *plan, pd_eval *ev, float *probs) {
  pthread_t tid;
  if (pthread_create(&tid, NULL, loader_main, p) != 0) {
    fprintf(stderr, "planktond-model eval: cannot start the loader thread\n");
    return -1;
  }
  int status = 0;
  double t0 = now_seconds(), last = t0;
  long done = 0;
  for (int step = 0; step < p->n_steps && status == 0; step++) {
    eval_buf *b = &p->buf[step % 2];
    double tw = now_seconds();
    pthread_mutex_lock(&p->mu);
    while (b->state != BUF_READY)
      pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    double tr = now_seconds();
    pd_error err = {0};
    if (pd_servable_run_slots(plan, &b->in, b->n_run, b->counts, probs, &err) != 0) {
      fprintf(stderr, "planktond-model eval: %s\n", err.msg);
      status = -1;
    }
    p->wait_s += tr - tw;
    p->engine_s += now_seconds() - tr;
    const int first = step * p->per_step;
    const int k = p->ds->n - first < p->per_step ? p->ds->n - first : p->per_step;
    for (int i = 0, r = 0; status == 0 && i < k; i++) {
      const pd_sample *smp = &p->ds->samples[first + i];
      if (b->what[i] == SAMPLE_UNKNOWN && pd_eval_add_unknown(ev, smp->label, &err) != 0)
        status = -1;
      if (b->what[i] != SAMPLE_RUN) continue;
      if (pd_eval_add(ev, probs + (size_t)r++ * p->e->n_classes, p->label_of[first + i], &err)) {
        status = -1;
        pd_error_prefix(&err, "%s", smp->path);
      }
      if (status) fprintf(stderr, "planktond-model eval: %s\n", err.msg);
    }
    done += k;
    double now = now_seconds();
    if (now - last >= 10.0) {
      fprintf(stderr, "eval: %ld/%d images, %.1f images/s\n", done, p->ds->n, done / (now - t0));
      last = now;
    }
    pthread_mutex_lock(&p->mu);
    b->state = BUF_EMPTY;
    if (status) p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_join(tid, NULL);
  return status;
}

static int load_dataset(const options *o, pd_dataset *ds) {
  pd_error err = {0};
  int rc = o->split ? pd_dataset_read_split(o->data_root, o->split, o->subset ? o->subset : "val",
                                            ds, &err)
                    : pd_dataset_scan_tree(o->data_root, ds, &err);
  if (rc != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  pd_dataset_limit(ds, o->limit);
  return 0;
}

static int cmd_eval(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 2, &o) != 0) return 2;
  if (o.subset && !o.split) {
    fprintf(stderr, "planktond-model eval: --subset needs --split FILE\n");
    return 2;
  }
  pd_dataset ds = {0};
  if (load_dataset(&o, &ds) != 0) return 1;
  pd_ensemble *e = load_or_report(o.model_dir);
  if (!e) {
    pd_dataset_free(&ds);
    return 1;
  }
  int status = 1;
  pd_error err = {0};
  pd_backend *be = NULL;
  pd_servable *plan = NULL;
  pd_eval *ev = NULL;
  eval_pipe p = {.e = e, .ds = &ds, .tta = resolve_tta(&o, e)};
  /* About 4 engine batches of inputs per step (at least one image), so that
   * the partial last batch of a step costs little. */
  long target = 4L * o.batch > p.tta ? 4L * o.batch : p.tta;
  long want = target / p.tta;
  p.per_step = (int)(want < 1 ? 1 : want > ds.n ? ds.n : want);
  p.n_steps = (ds.n + p.per_step - 1) / p.per_step;
  int *label_of = malloc((size_t)ds.n * sizeof *label_of);
  float *probs = malloc((size_t)p.per_step * e->n_classes * sizeof *probs);
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.cv, NULL);
  if (!label_of || !probs) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", ds.n);
    goto out;
  }
  if (pd_eval_create(e->n_classes, (const char *const *)e->classes, &ev, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  for (int i = 0; i < ds.n; i++)
    label_of[i] = pd_eval_class_index(ev, ds.samples[i].label);
  p.label_of = label_of;
  for (int k = 0; k < 2; k++) {
    p.buf[k].counts = malloc((size_t)p.per_step * sizeof(int));
    p.buf[k].what = malloc((size_t)p.per_step);
    if (!p.buf[k].counts || !p.buf[k].what ||
        pd_servable_inputs_init(e, p.per_step * p.tta, &p.buf[k].in, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg[0] ? err.msg : "out of memory");
      goto out;
    }
  }
  if (make_ensemble_engine(e, o.threads, o.batch, &be, &plan) != 0) goto out;
  fprintf(stderr, "eval: %d images, model %s (%d member%s), tta %d, batch %d\n", ds.n, e->name,
          e->n_members, e->n_members == 1 ? "" : "s", p.tta, o.batch);
  double t0 = now_seconds();
  if (eval_run(&p, plan, ev, probs) != 0) goto out;
  double secs = now_seconds() - t0;
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  printf("model %s, %s %s%s%s, tta %d: %d images in %.1f s (%.1f images/s)\n", e->name,
         o.split ? "split" : "tree", o.split ? o.split : o.data_root, o.split ? " subset " : "",
         o.split ? (o.subset ? o.subset : "val") : "", p.tta, ds.n, secs, ds.n / secs);
  printf("time: engine %.1f s, waiting for input %.1f s; decode + preprocess %.1f s (in a "
         "second thread)\n",
         p.engine_s, p.wait_s, p.load_s);
  if (p.failed) printf("%ld images could not be read or decoded (not scored)\n", p.failed);
  pd_eval_print_report(ev, stdout);
  printf("n=%lld accuracy=%.6f top5=%.6f log_loss=%.6f macro_f1=%.6f f1a=%.6f unknown=%lld "
         "failed=%ld\n",
         (long long)s.n, s.accuracy, s.top5, s.log_loss, s.macro_f1, s.f1a, (long long)s.n_unknown,
         p.failed);
  if (o.confusion && pd_eval_save_confusion_csv(ev, o.confusion, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  status = s.n > 0 ? 0 : 1;
  if (s.n == 0) fprintf(stderr, "planktond-model eval: no image was scored\n");
out:
  pd_servable_free(plan);
  pd_backend_destroy(be);
  for (int k = 0; k < 2; k++) {
    pd_servable_inputs_free(&p.buf[k].in);
    free(p.buf[k].counts);
    free(p.buf[k].what);
  }
  pthread_mutex_destroy(&p.mu);
  pthread_cond_destroy(&p.cv);
  pd_eval_free(ev);
  free(label_of);
  free(probs);
  pd_ensemble_free(e);
  pd_dataset_free(&ds);
  return status;
}

/* Deterministic standard-normal inputs (xorshift + Box-Muller). */
static void fill_normal(float *x, size_t n, uint64_t *state) {
  for (size_t i = 0; i < n; i += 2) {
    double u[2];
    for (int k = 0; k < 2; k++) {
      *state ^= *state << 13;
      *state ^= *state >> 7;
      *state ^= *state << 17;
      u[k] = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
    }
    double r = sqrt(-2.0 * log(u[0]));
    x[i] = (float)(r * cos(2.0 * M_PI * u[1]));
    if (i + 1 < n) x[i + 1] = (float)(r * sin(2.0 * M_PI * u[1]));
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmd_bench(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 1, &o) != 0) return 2;
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return 1;
  }
  int status = 1;
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  inputs in;
  float *probs = calloc((size_t)o.batch * m->n_classes, sizeof(float));
  double *times = calloc((size_t)o.iters, sizeof(double));
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  if (inputs_alloc(m, o.batch, &in) != 0 || !probs || !times) goto out;
  for (int b = 0; b < m->n_branches; b++)
    fill_normal(in.branch[b], (size_t)o.batch * pd_model_branch_input_len(m, b), &rng);
  for (int pass = 0; pass < 2; pass++) {
    /* Pass 0 times the plain engine; pass 1 profiles the layers. */
    if (make_engine(m, o.threads, pass, o.batch, &be, &plan) != 0) goto out;
    for (int i = 0; i < (pass ? 1 : o.warmup); i++)
      if (run_all(m, plan, o.batch, &in, probs) != 0) goto out;
    int iters = pass ? (o.iters + 1) / 2 : o.iters;
    double t_total = now_seconds();
    for (int i = 0; i < iters; i++) {
      double t0 = now_seconds();
      if (run_all(m, plan, o.batch, &in, probs) != 0) goto out;
      times[i] = now_seconds() - t0;
    }
    t_total = now_seconds() - t_total;
    if (pass == 0) {
      qsort(times, (size_t)iters, sizeof *times, cmp_double);
      double flops = pd_model_flops_per_image(m);
      double ips = o.batch / times[iters / 2];
      printf("engine: batch %d, %d iterations, median %.2f ms/batch, %.1f images/s, "
             "%.2f GFLOP/s (%.3f GFLOP/image)\n",
             o.batch, iters, times[iters / 2] * 1e3, ips, ips * flops / 1e9, flops / 1e9);
      printf("images_per_s=%.3f gflops=%.3f\n", ips, ips * flops / 1e9);
    } else {
      double sec[PD_LAYER_KIND_COUNT], sum = 0.0;
      pd_cpu_plan_layer_seconds(plan, sec);
      for (int k = 0; k < PD_LAYER_KIND_COUNT; k++)
        sum += sec[k];
      for (int k = 0; k < PD_LAYER_KIND_COUNT; k++)
        if (sec[k] > 0.0)
          printf("  %-16s %5.1f%% of thread time\n", pd_layer_kind_name(k), 100.0 * sec[k] / sum);
      /* Conv FLOPs per image: everything but the dense layers. */
      double conv_flops = 0.0;
      for (int b = 0; b < m->n_branches; b++)
        for (int i = 0; i < m->graph.branches[b].n_layers; i++) {
          const pd_layer *l = &m->graph.branches[b].layers[i];
          if (l->kind == PD_LAYER_CONV)
            conv_flops += 2.0 * l->out.views * l->out.h * l->out.w * (double)l->filters *
                          l->kernel * l->kernel * l->in.c;
        }
      int threads = o.threads ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
      if (threads > o.batch) threads = o.batch;
      /* per-core rate: conv work of all profiled runs over conv thread-seconds */
      double runs = 1.0 + iters;
      double conv_gflops = conv_flops * o.batch * runs / sec[PD_LAYER_CONV] / 1e9 * threads;
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      printf("conv_gflops=%.3f conv_time_fraction=%.3f threads=%d peak_rss_mib=%.1f\n", conv_gflops,
             sec[PD_LAYER_CONV] / sum, threads, ru.ru_maxrss / 1024.0);
      (void)t_total;
    }
    pd_plan_destroy(plan);
    pd_backend_destroy(be);
    plan = NULL;
    be = NULL;
  }
  status = 0;
out:
  pd_plan_destroy(plan);
  pd_backend_destroy(be);
  inputs_free(&in);
  free(probs);
  free(times);
  pd_model_free(m);
  return status;
}

/* OpenBLAS SGEMM peak: the best of a few square products, OpenBLAS threads = --threads. */
static int cmd_sgemm(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 0, &o) != 0) return 2;
  int n = o.size, threads = o.threads ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  openblas_set_num_threads(threads);
  float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4),
        *c = malloc((size_t)n * n * 4);
  if (!a || !b || !c) {
    fprintf(stderr, "planktond-model: out of memory for %dx%d matrices\n", n, n);
    free(a);
    free(b);
    free(c);
    return 1;
  }
  uint64_t rng = 12345;
  fill_normal(a, (size_t)n * n, &rng);
  fill_normal(b, (size_t)n * n, &rng);
  double best = 1e30;
  for (int i = 0; i < o.iters; i++) {
    double t0 = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double t = now_seconds() - t0;
    best = t < best ? t : best;
  }
  double gflops = 2.0 * n * (double)n * n / best / 1e9;
  printf("sgemm: %dx%dx%d, %d threads, best %.2f ms, %.1f GFLOP/s\n", n, n, n, threads, best * 1e3,
         gflops);
  printf("sgemm_gflops=%.3f\n", gflops);
  free(a);
  free(b);
  free(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return cmd_check(argc, argv);
  if (!strcmp(argv[1], "run")) return cmd_run(argc, argv);
  if (!strcmp(argv[1], "eval")) return cmd_eval(argc, argv);
  if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
  if (!strcmp(argv[1], "sgemm")) return cmd_sgemm(argc, argv);
  fprintf(stderr, "planktond-model: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
