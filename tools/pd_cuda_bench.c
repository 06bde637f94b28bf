/* planktond-cuda-bench: times the CUDA backend on one model folder at one
 * batch size (bench/engine_gpu drives it and compares with PyTorch). Owns
 * its model, backend, plan and inputs for one process run.
 *
 *   planktond-cuda-bench MODEL_DIR [--batch 64] [--iters 20] [--warmup 3]
 *       [--device 0] [--precision fp32|tf32|fp16] [--graphs] [--heuristic]
 *       [--check] [--describe]
 *   planktond-cuda-bench --probe [--device 0]
 *
 * A timed iteration is one pd_plan_run of a full batch: inputs copied up,
 * the network, probabilities copied back, one synchronisation. --check also
 * runs the CPU backend on the same inputs and prints the largest probability
 * difference. The last line is machine-readable:
 *   images_per_s=<x> s_per_batch=<median> plan_s=<plan time> gflop_per_image=<f> [max_abs_diff=<d>]
 * --probe prints the device line and exits 0, or the reason and exits 2. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_model.h"
#include "cuda/pd_cuda_backend.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Standard normal (Box-Muller), deterministic. */
static float rng_normal(uint64_t *s) {
  double u1 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A decimal integer in [lo, hi] into *out; 0, or -1 when s is not one. */
static int parse_int(const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int usage(void) {
  fprintf(
      stderr,
      "usage: planktond-cuda-bench MODEL_DIR [--batch N] [--iters N] [--warmup N] "
      "[--device N] [--precision fp32|tf32|fp16] [--graphs] [--heuristic] [--check] [--describe]\n"
      "       planktond-cuda-bench --probe [--device N]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int batch = 64, iters = 20, warmup = 3, probe = 0, check = 0, describe = 0;
  pd_cuda_options opt = pd_cuda_options_default();
  for (int i = 1; i < argc && argv[i]; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--probe") == 0)
      probe = 1;
    else if (strcmp(a, "--check") == 0)
      check = 1;
    else if (strcmp(a, "--describe") == 0)
      describe = 1;
    else if (strcmp(a, "--graphs") == 0)
      opt.graphs = 1;
    else if (strcmp(a, "--heuristic") == 0)
      opt.heuristic_algos = 1;
    else if (strcmp(a, "--batch") == 0 && v) {
      if (parse_int(argv[++i], 1, 1 << 20, &batch) != 0) return usage();
    } else if (strcmp(a, "--iters") == 0 && v) {
      if (parse_int(argv[++i], 1, 1 << 20, &iters) != 0) return usage();
    } else if (strcmp(a, "--warmup") == 0 && v) {
      if (parse_int(argv[++i], 0, 1 << 20, &warmup) != 0) return usage();
    } else if (strcmp(a, "--device") == 0 && v) {
      if (parse_int(argv[++i], 0, 1024, &opt.device) != 0) return usage();
    } else if (strcmp(a, "--precision") == 0 && v) {
      i++;
      if (strcmp(v, "fp32") == 0)
        opt.precision = PD_CUDA_FP32;
      else if (strcmp(v, "tf32") == 0)
        opt.precision = PD_CUDA_TF32;
      else if (strcmp(v, "fp16") == 0)
        opt.precision = PD_CUDA_FP16;
      else
        return usage();
    } else if (a[0] != '-' && !dir)
      dir = a;
    else
      return usage();
  }
  if ((!dir && !probe) || batch < 1 || iters < 1 || warmup < 0) return usage();

  pd_error err = {0};
  pd_backend *be = NULL;
  if (pd_cuda_backend_create(&opt, &be, &err) != PD_OK) {
    printf("no usable CUDA device: %s\n", err.msg);
    return 2;
  }
  char line[512];
  pd_cuda_backend_describe(be, line, sizeof line);
  printf("%s\n", line);
  if (probe) {
    pd_backend_destroy(be);
    return 0;
  }

  pd_model *m = NULL;
  if (pd_model_load(dir, &m, &err) != PD_OK) {
    fprintf(stderr, "planktond-cuda-bench: %s\n", err.msg);
    pd_backend_destroy(be);
    return 1;
  }
  double t0 = now_s();
  pd_plan *plan = NULL;
  if (pd_plan_create(be, &m->graph, batch, &plan, &err) != PD_OK) {
    fprintf(stderr, "planktond-cuda-bench: %s\n", err.msg);
    pd_model_free(m);
    pd_backend_destroy(be);
    return 1;
  }
  const double plan_s = now_s() - t0;
  if (describe) {
    size_t cap = 1 << 20;
    char *d = malloc(cap);
    if (d) {
      pd_cuda_plan_describe(plan, d, cap);
      fputs(d, stdout);
      free(d);
    }
  }

  pd_batch in = {.n = batch};
  float *inputs[PD_MAX_BRANCHES] = {0};
  uint64_t seed = 0x1234567;
  int rc = 0;
  for (int b = 0; b < m->n_branches && rc == 0; b++) {
    size_t len = (size_t)batch * pd_model_branch_input_len(m, b);
    inputs[b] = malloc(len * sizeof(float));
    if (!inputs[b]) {
      rc = 1;
      break;
    }
    for (size_t k = 0; k < len; k++)
      inputs[b][k] = rng_normal(&seed);
    in.branch[b] = inputs[b];
  }
  float *probs = malloc((size_t)batch * m->n_classes * sizeof(float));
  double *times = malloc((size_t)iters * sizeof(double));
  if (rc != 0 || !probs || !times) {
    fprintf(stderr, "planktond-cuda-bench: out of memory for batch %d\n", batch);
    rc = 1;
  }
  for (int k = 0; k < warmup + iters && rc == 0; k++) {
    double s = now_s();
    if (pd_plan_run(plan, &in, probs, &err) != PD_OK) {
      fprintf(stderr, "planktond-cuda-bench: %s\n", err.msg);
      rc = 1;
    }
    if (k >= warmup) times[k - warmup] = now_s() - s;
  }
  if (rc == 0) {
    qsort(times, (size_t)iters, sizeof(double), cmp_double);
    const double med = times[iters / 2];
    const double gflop = pd_model_flops_per_image(m) * 1e-9;
    printf("model %s, batch %d, %s, plan %.2f s; median %.5f s/batch (min %.5f, max %.5f) over %d "
           "iters; %.1f images/s, %.2f TFLOP/s\n",
           m->name, batch,
           opt.precision == PD_CUDA_TF32   ? "tf32"
           : opt.precision == PD_CUDA_FP16 ? "fp16"
                                           : "fp32",
           plan_s, med, times[0], times[iters - 1], iters, batch / med, gflop * batch / med * 1e-3);
    char extra[64] = "";
    if (check) {
      pd_backend *cpu = NULL;
      pd_plan *cplan = NULL;
      float *ref = malloc((size_t)batch * m->n_classes * sizeof(float));
      pd_cpu_options copt = {0};
      if (!ref || pd_cpu_backend_create(&copt, &cpu, &err) != PD_OK ||
          pd_plan_create(cpu, &m->graph, batch, &cplan, &err) != PD_OK ||
          pd_plan_run(cplan, &in, ref, &err) != PD_OK) {
        fprintf(stderr, "planktond-cuda-bench: cpu check: %s\n", err.msg);
        rc = 1;
      } else {
        double d = 0;
        for (size_t k = 0; k < (size_t)batch * m->n_classes; k++)
          d = fmax(d, fabs((double)probs[k] - ref[k]));
        snprintf(extra, sizeof extra, " max_abs_diff=%.3g", d);
      }
      pd_plan_destroy(cplan);
      pd_backend_destroy(cpu);
      free(ref);
    }
    printf("images_per_s=%.2f s_per_batch=%.6f plan_s=%.3f gflop_per_image=%.4f%s\n", batch / med,
           med, plan_s, gflop, extra);
  }
  for (int b = 0; b < m->n_branches; b++)
    free(inputs[b]);
  free(probs);
  free(times);
  pd_plan_destroy(plan);
  pd_model_free(m);
  pd_backend_destroy(be);
  return rc;
}
