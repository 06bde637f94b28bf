/* planktond-model: inspect, run and benchmark a model folder without the
 * daemon.
 *
 *   planktond-model check DIR
 *   planktond-model run DIR [--threads N] [--batch N] [--probs FILE]
 *                           [--dump-inputs FILE] [--dump-gray FILE] IMAGE...
 *   planktond-model run DIR --inputs FILE --count N [--probs FILE] ...
 *   planktond-model bench DIR [--batch N] [--threads N] [--iters N] [--warmup N]
 *   planktond-model sgemm [--threads N] [--size N]
 *
 * File layouts (raw little-endian): inputs are float32, for each branch in
 * model order all images' slots one after another; probs are float32
 * [n][classes]; gray dumps are, per image, int32 width, int32 height and the
 * pixels. */
#include <cblas.h>
#include <errno.h>
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
#include "pd_image.h"
#include "pd_model.h"
#include "pd_warp.h"

typedef struct options {
  const char *model_dir;
  int threads, batch, iters, warmup, count, size;
  const char *probs, *dump_inputs, *dump_gray, *inputs;
  int n_images;
  char **images;
} options;

static void usage(FILE *f) {
  fputs("usage: planktond-model check DIR\n"
        "       planktond-model run DIR [--threads N] [--batch N] [--probs FILE]\n"
        "                               [--dump-inputs FILE] [--dump-gray FILE] IMAGE...\n"
        "       planktond-model run DIR --inputs FILE --count N [--probs FILE]\n"
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

static int parse_options(int argc, char **argv, int need_dir, options *o) {
  *o = (options){.threads = 0, .batch = 64, .iters = 10, .warmup = 2, .size = 2048};
  int i = 2;
  if (need_dir) {
    if (argc < 3 || argv[2][0] == '-') {
      usage(stderr);
      return -1;
    }
    o->model_dir = argv[2];
    i = 3;
  }
  while (i < argc) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *ip = NULL, lo = 0, hi = 0;
    const char **sp = NULL;
    if (!strcmp(a, "--threads")) ip = &o->threads, lo = 0, hi = 256;
    else if (!strcmp(a, "--batch")) ip = &o->batch, lo = 1, hi = 65536;
    else if (!strcmp(a, "--iters")) ip = &o->iters, lo = 1, hi = 1000000;
    else if (!strcmp(a, "--warmup")) ip = &o->warmup, lo = 0, hi = 1000000;
    else if (!strcmp(a, "--count")) ip = &o->count, lo = 1, hi = 100000000;
    else if (!strcmp(a, "--size")) ip = &o->size, lo = 16, hi = 16384;
    else if (!strcmp(a, "--probs")) sp = &o->probs;
    else if (!strcmp(a, "--dump-inputs")) sp = &o->dump_inputs;
    else if (!strcmp(a, "--dump-gray")) sp = &o->dump_gray;
    else if (!strcmp(a, "--inputs")) sp = &o->inputs;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "planktond-model: unknown option '%s'\n", a);
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

static int cmd_check(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, 1, &o) != 0) return 2;
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return 1;
  }
  printf("model %s version %s: %d classes, symmetry %s, %zu parameters, %.3f GFLOP per image\n",
         m->name, m->version, m->n_classes, symmetry_name(m->symmetry), m->n_params,
         pd_model_flops_per_image(m) / 1e9);
  for (int b = 0; b < m->n_branches; b++) {
    const pd_branch *br = &m->branches[b];
    if (br->kind == PD_INPUT_IMAGE)
      printf("branch %s: image %dx%d, %s\n", br->name, br->size, br->size,
             br->rescale == PD_RESCALE_FIT ? "fit" : "fixed factor");
    else
      printf("branch %s: %d size features\n", br->name, br->n_features);
    print_layers(br->layers, br->n_layers, "  ");
  }
  printf("head: %d inputs\n", m->head_in);
  print_layers(m->head, m->n_head, "  ");
  pd_model_free(m);
  return 0;
}

/* Per-branch input arrays for n images, laid out as in the file format. */
typedef struct inputs {
  int n;
  float *branch[PD_MAX_BRANCHES];
} inputs;

static void inputs_free(inputs *in) {
  for (int b = 0; b < PD_MAX_BRANCHES; b++) free(in->branch[b]);
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
    pd_preprocess_image(m, img.pixels, img.width, img.height, NULL, slots);
    int rc = 0;
    if (gray) {
      int32_t wh[2] = {img.width, img.height};
      rc = write_all(gray, wh, sizeof wh) || write_all(gray, img.pixels, (size_t)img.width * img.height);
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
  if (pd_cpu_backend_create(&opt, be, &err) != 0 || pd_plan_create(*be, m, batch, plan, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  return 0;
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
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
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
    for (int c = 1; c < m->n_classes; c++) best = p[c] > p[best] ? c : best;
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
      for (int k = 0; k < PD_LAYER_KIND_COUNT; k++) sum += sec[k];
      for (int k = 0; k < PD_LAYER_KIND_COUNT; k++)
        if (sec[k] > 0.0)
          printf("  %-16s %5.1f%% of thread time\n", pd_layer_kind_name(k), 100.0 * sec[k] / sum);
      /* Conv FLOPs per image: everything but the dense layers. */
      double conv_flops = 0.0;
      for (int b = 0; b < m->n_branches; b++)
        for (int i = 0; i < m->branches[b].n_layers; i++) {
          const pd_layer *l = &m->branches[b].layers[i];
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
      printf("conv_gflops=%.3f conv_time_fraction=%.3f threads=%d peak_rss_mib=%.1f\n",
             conv_gflops, sec[PD_LAYER_CONV] / sum, threads, ru.ru_maxrss / 1024.0);
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
  float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
  if (!a || !b || !c) {
    fprintf(stderr, "planktond-model: out of memory for %dx%d matrices\n", n, n);
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
  printf("sgemm: %dx%dx%d, %d threads, best %.2f ms, %.1f GFLOP/s\n", n, n, n, threads,
         best * 1e3, gflops);
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
  if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
  if (!strcmp(argv[1], "sgemm")) return cmd_sgemm(argc, argv);
  fprintf(stderr, "planktond-model: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
