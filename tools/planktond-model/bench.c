/* planktond-model bench and sgemm: the engine's and OpenBLAS's speed. */
#include <cblas.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdm.h"

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

int pdm_cmd_bench(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 1, &o) != 0) return 2;
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return 1;
  }
  int status = 1;
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  pdm_inputs in;
  float *probs = calloc((size_t)o.batch * m->n_classes, sizeof(float));
  double *times = calloc((size_t)o.iters, sizeof(double));
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  if (pdm_inputs_alloc(m, o.batch, &in) != 0 || !probs || !times) goto out;
  for (int b = 0; b < m->n_branches; b++)
    fill_normal(in.branch[b], (size_t)o.batch * pd_model_branch_input_len(m, b), &rng);
  pd_precision prec;
  if (pdm_resolve_precision(&o, &prec) != 0) goto out;
  /* Passes: time each precision (fp32 first, the reference), then profile the last. */
  pd_precision precs[3] = {PD_PRECISION_FP32, prec, prec};
  const int n_time = prec == PD_PRECISION_FP32 ? 1 : 2;
  double ips_of[2] = {0, 0};
  for (int k = 0; k <= n_time; k++) {
    const int pass = k == n_time;
    if (!pass) printf("precision %s\n", pd_precision_name(precs[k]));
    if (pdm_make_engine(m, o.threads, pass, o.batch, precs[pass ? 2 : k], &be, &plan) != 0)
      goto out;
    for (int i = 0; i < (pass ? 1 : o.warmup); i++)
      if (pdm_run_all(m, plan, o.batch, &in, probs) != 0) goto out;
    int iters = pass ? (o.iters + 1) / 2 : o.iters;
    double t_total = pdm_now_seconds();
    for (int i = 0; i < iters; i++) {
      double t0 = pdm_now_seconds();
      if (pdm_run_all(m, plan, o.batch, &in, probs) != 0) goto out;
      times[i] = pdm_now_seconds() - t0;
    }
    t_total = pdm_now_seconds() - t_total;
    if (pass == 0) {
      qsort(times, (size_t)iters, sizeof *times, cmp_double);
      double flops = pd_model_flops_per_image(m);
      double ips = o.batch / times[iters / 2];
      printf("engine: batch %d, %d iterations, median %.2f ms/batch, %.1f images/s, "
             "%.2f GFLOP/s (%.3f GFLOP/image)\n",
             o.batch, iters, times[iters / 2] * 1e3, ips, ips * flops / 1e9, flops / 1e9);
      printf("images_per_s=%.3f gflops=%.3f\n", ips, ips * flops / 1e9);
      ips_of[k] = ips;
      char desc[8192];
      pd_cpu_plan_describe(plan, desc, sizeof desc);
      printf("%s", desc);
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
      if (n_time == 2) {
        char cpu[160];
        pd_cpu_features_describe(cpu, sizeof cpu);
        printf("cpu: %s\n%s_images_per_s=%.3f fp32_images_per_s=%.3f ratio_%s_vs_fp32=%.3f\n", cpu,
               pd_precision_name(prec), ips_of[1], ips_of[0], pd_precision_name(prec),
               ips_of[1] / ips_of[0]);
      }
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
  pdm_inputs_free(&in);
  free(probs);
  free(times);
  pd_model_free(m);
  return status;
}

/* OpenBLAS SGEMM peak: the best of a few square products, OpenBLAS threads = --threads. */
int pdm_cmd_sgemm(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 0, &o) != 0) return 2;
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
    double t0 = pdm_now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double t = pdm_now_seconds() - t0;
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
