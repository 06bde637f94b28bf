/* bench/peak: this machine's measured compute peaks, for bench/engine's
 * "fraction of peak".
 *  - fp32 FMA: each thread runs independent chains of vector FMAs (12 with
 *    AVX2's 16 registers, 24 with AVX-512's 32: more than the FMA latency
 *    times the FMA pipes of current x86 cores, fewer than the registers) on
 *    the widest vectors the CPU has (AVX-512F, else AVX2 + FMA);
 *  - a large oneDNN fp32 matmul (what a tuned library reaches on real data),
 *    and a bf16 one where oneDNN dispatches to AVX-512 BF16 or AMX; elsewhere
 *    it prints that bf16 is not available and why.
 *
 *   peak [--threads N] [--seconds S] [--size N]
 *
 * Last line (machine-readable): fma_fp32_gflops=<x> onednn_fp32_gflops=<y>
 * onednn_bf16_gflops=<z or nan> */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef PD_HAVE_ONEDNN
#include <dnnl.h>
#include <omp.h>

#include "pd_onednn.h"
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define PEAK_INNER 1024

/* One thread's FMA loop over vectors of `lanes` floats; returns FLOPs done. */
#define PEAK_FMA_FN(NAME, TARGET, LANES, CHAINS)                                                   \
  __attribute__((target(TARGET))) static double NAME(double seconds, float seed) {                 \
    typedef float vf __attribute__((vector_size(4 * (LANES))));                                    \
    vf acc[CHAINS], a = (vf){0} + 0.999999f, b = (vf){0} + 1e-7f;                                  \
    _Pragma("GCC unroll 32") for (int i = 0; i < (CHAINS); i++) acc[i] =                           \
        (vf){0} + seed + (float)i;                                                                 \
    double flops = 0, t0 = now();                                                                  \
    do {                                                                                           \
      for (int k = 0; k < PEAK_INNER; k++)                                                         \
        _Pragma("GCC unroll 32") for (int i = 0; i < (CHAINS); i++) acc[i] = acc[i] * a + b;       \
      flops += 2.0 * (LANES) * (CHAINS)*PEAK_INNER;                                                \
    } while (now() - t0 < seconds);                                                                \
    float s = 0;                                                                                   \
    for (int i = 0; i < (CHAINS); i++)                                                             \
      for (int l = 0; l < (LANES); l++)                                                            \
        s += acc[i][l];                                                                            \
    /* keep the result alive */                                                                    \
    if (s == 12345.678f) flops += 1;                                                               \
    return flops;                                                                                  \
  }

#if defined(__x86_64__) || defined(__i386__)
PEAK_FMA_FN(fma_avx2, "avx2,fma", 8, 12)
PEAK_FMA_FN(fma_avx512, "avx512f,fma", 16, 24)
#endif

typedef struct fma_job {
  double seconds, flops, elapsed;
  int isa; /* 0 none, 2 avx2, 5 avx512 */
} fma_job;

static void *fma_main(void *arg) {
  fma_job *j = arg;
  double t0 = now();
#if defined(__x86_64__) || defined(__i386__)
  j->flops = j->isa == 5 ? fma_avx512(j->seconds, 0.5f) : fma_avx2(j->seconds, 0.5f);
#endif
  j->elapsed = now() - t0;
  return NULL;
}

static int fma_isa(const char **name) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    *name = "AVX-512F (16 floats per FMA)";
    return 5;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *name = "AVX2 + FMA (8 floats per FMA)";
    return 2;
  }
#endif
  *name = "none (no AVX2 + FMA)";
  return 0;
}

static double fma_peak(int threads, double seconds) {
  const char *name;
  int isa = fma_isa(&name);
  if (!isa) {
    printf("fp32 FMA peak: not measured: %s\n", name);
    return NAN;
  }
  fma_job *jobs = calloc((size_t)threads, sizeof *jobs);
  pthread_t *t = calloc((size_t)threads, sizeof *t);
  if (!jobs || !t) exit(1);
  for (int i = 0; i < threads; i++) {
    jobs[i].seconds = seconds;
    jobs[i].isa = isa;
    if (pthread_create(&t[i], NULL, fma_main, &jobs[i]) != 0) {
      fprintf(stderr, "peak: cannot start thread %d\n", i);
      exit(1);
    }
  }
  double flops = 0, elapsed = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    flops += jobs[i].flops;
    elapsed = jobs[i].elapsed > elapsed ? jobs[i].elapsed : elapsed;
  }
  free(jobs);
  free(t);
  double g = flops / elapsed / 1e9;
  printf("fp32 FMA peak: %.1f GFLOP/s on %d threads, %s\n", g, threads, name);
  return g;
}

#ifdef PD_HAVE_ONEDNN
/* Best GFLOP/s of an n x n x n matmul (a, b in dt, c in f32) over `seconds`. */
static double onednn_matmul(dnnl_engine_t eng, int n, dnnl_data_type_t dt, double seconds,
                            char *impl, size_t impl_len) {
  dnnl_dims_t d = {n, n};
  dnnl_memory_desc_t a_md, b_md, c_md;
  dnnl_memory_desc_init_by_tag(&a_md, 2, d, dt, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&b_md, 2, d, dt, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&c_md, 2, d, dnnl_f32, dnnl_ab);
  dnnl_matmul_desc_t md;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  dnnl_stream_t stream = NULL;
  dnnl_memory_t a = NULL, b = NULL, c = NULL;
  double best = NAN;
  if (dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success)
    goto out;
  const char *s = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&s);
  snprintf(impl, impl_len, "%s", s ? s : "?");
  if (dnnl_primitive_create(&prim, pd) != dnnl_success ||
      dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) != dnnl_success ||
      dnnl_memory_create(&a, &a_md, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
      dnnl_memory_create(&b, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng,
                         DNNL_MEMORY_ALLOCATE) != dnnl_success ||
      dnnl_memory_create(&c, &c_md, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success)
    goto out;
  /* Contents do not change the speed of an FMA; zeros are as good as any. */
  void *p = NULL;
  dnnl_memory_get_data_handle(a, &p);
  memset(p, 0, dnnl_memory_desc_get_size(&a_md));
  dnnl_memory_get_data_handle(b, &p);
  memset(p, 0,
         dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)));
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  double t_end = now() + seconds;
  int runs = 0;
  do {
    double t0 = now();
    if (dnnl_primitive_execute(prim, stream, 3, args) != dnnl_success ||
        dnnl_stream_wait(stream) != dnnl_success)
      break;
    double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
    if (runs++ > 0) best = isnan(best) || g > best ? g : best; /* the first run warms up */
  } while (now() < t_end || runs < 3);
out:
  if (a) dnnl_memory_destroy(a);
  if (b) dnnl_memory_destroy(b);
  if (c) dnnl_memory_destroy(c);
  if (stream) dnnl_stream_destroy(stream);
  if (prim) dnnl_primitive_destroy(prim);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return best;
}
#endif

int main(int argc, char **argv) {
  int threads = 2, size = 2048;
  double seconds = 2.0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = (int)strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = strtod(argv[++i], NULL);
    else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
      size = (int)strtol(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: peak [--threads N] [--seconds S] [--size N]\n");
      return 2;
    }
  }
  if (threads < 1 || threads > 1024 || !(seconds > 0) || size < 64 || size > 16384) {
    fprintf(stderr, "peak: --threads 1..1024, --seconds > 0, --size 64..16384\n");
    return 2;
  }
  double fma = fma_peak(threads, seconds);
  double f32 = NAN, bf16 = NAN;
#ifdef PD_HAVE_ONEDNN
  char info[128], can[64], impl[64] = "";
  pd_onednn_describe(info, sizeof info);
  pd_onednn_precisions_available(can, sizeof can);
  omp_set_num_threads(threads);
  dnnl_engine_t eng = NULL;
  if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
    fprintf(stderr, "peak: cannot create a oneDNN CPU engine\n");
    return 1;
  }
  f32 = onednn_matmul(eng, size, dnnl_f32, seconds, impl, sizeof impl);
  printf("%s fp32 matmul %d^3 on %d threads: %.1f GFLOP/s (%s)\n", info, size, threads, f32, impl);
  if (pd_onednn_precision_available(PD_ONEDNN_BF16)) {
    bf16 = onednn_matmul(eng, size, dnnl_bf16, seconds, impl, sizeof impl);
    printf("%s bf16 matmul %d^3 on %d threads: %.1f GFLOP/s (%s)\n", info, size, threads, bf16,
           impl);
  } else {
    pd_error err = {0};
    pd_onednn_precision_check(PD_ONEDNN_BF16, &err);
    printf("bf16 peak: not measured: %s\n", err.msg);
  }
  dnnl_engine_destroy(eng);
#else
  printf("oneDNN peaks: not measured (built without oneDNN)\n");
#endif
  printf("fma_fp32_gflops=%.2f onednn_fp32_gflops=%.2f onednn_bf16_gflops=%.2f\n", fma, f32, bf16);
  return 0;
}
