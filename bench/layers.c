/* bench/layers: the CPU backend's per-layer kernel choice on a model, as a
 * cuDNN-style algorithm search would show it. For each conv and dense layer
 * it prints our kernel's time and oneDNN's at the model's batch and
 * threads (per worker load, single-threaded as the workers run them) and
 * which one the plan keeps; then it runs the same random batch through a
 * plan of our kernels only, the chosen plan and a oneDNN-wherever-it-runs
 * plan, and prints their images/s and the largest difference of their
 * probabilities from ours; then the first image alone on our plan (all
 * workers share one image), which must give the batch's answer bit for
 * bit. Exits 1 if a difference exceeds 1e-4 or the lone image differs, 77
 * if MODEL_DIR/SKIP exists (a test model that could not be made).
 *
 *   layers MODEL_DIR [--batch 64] [--threads 2] [--iters 5]
 *
 * Last line: ours_images_per_s=<x> chosen_images_per_s=<y> onednn_images_per_s=<z>
 * max_prob_diff=<d> */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_cpu_choice.h"
#include "pd_model.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct plan_run {
  double images_per_s;
  float *probs;
  float *single; /* ours: the first image run alone on the same plan */
} plan_run;

static int run_mode(const pd_model *m, pd_cpu_kernels mode, int threads, int batch, int iters,
                    const pd_batch *in, int describe, plan_run *res, pd_error *err) {
  pd_cpu_options opt = {.threads = threads, .kernels = mode};
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  PD_TRY(pd_cpu_backend_create(&opt, &be, err));
  double t0 = now();
  int rc = pd_plan_create(be, &m->graph, batch, &plan, err);
  double plan_s = now() - t0;
  if (rc != PD_OK) {
    pd_backend_destroy(be);
    return rc;
  }
  if (describe) {
    char *text = malloc(16384);
    if (text) {
      pd_cpu_plan_describe(plan, text, 16384);
      printf("%s(plan made in %.0f ms)\n", text, plan_s * 1e3);
      free(text);
    }
  }
  res->probs = malloc((size_t)batch * m->n_classes * sizeof(float));
  if (!res->probs) rc = pd_error_set(err, PD_ENOMEM, "layers: out of memory");
  double best = INFINITY;
  for (int i = 0; rc == PD_OK && i <= iters; i++) {
    t0 = now();
    rc = pd_plan_run(plan, in, res->probs, err);
    double dt = now() - t0;
    if (i > 0 && dt < best) best = dt; /* run 0 warms up */
  }
  res->images_per_s = batch / best;
  if (rc == PD_OK && batch > 1 && mode == PD_CPU_KERNELS_OURS) {
    /* One image alone on the same plan: every worker shares it, and with
     * our kernels the answer must be the batch's, bit for bit. */
    pd_batch one = *in;
    one.n = 1;
    res->single = malloc((size_t)m->n_classes * sizeof(float));
    if (!res->single) rc = pd_error_set(err, PD_ENOMEM, "layers: out of memory");
    if (rc == PD_OK) rc = pd_plan_run(plan, &one, res->single, err);
  }
  pd_plan_destroy(plan);
  pd_backend_destroy(be);
  return rc;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int batch = 64, threads = 2, iters = 5;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
      batch = (int)strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = (int)strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
      iters = (int)strtol(argv[++i], NULL, 10);
    else if (!dir && argv[i][0] != '-')
      dir = argv[i];
    else
      dir = NULL, i = argc;
  }
  if (!dir || batch < 1 || batch > 4096 || threads < 1 || threads > 256 || iters < 1) {
    fprintf(stderr, "usage: layers MODEL_DIR [--batch 1..4096] [--threads 1..256] [--iters N]\n");
    return 2;
  }
  char skip[4200];
  snprintf(skip, sizeof skip, "%s/SKIP", dir);
  FILE *sf = fopen(skip, "r");
  if (sf) { /* a test model that could not be made (tests/make_daemon_model.sh) */
    fclose(sf);
    printf("layers: skipped: %s exists (the model could not be made)\n", skip);
    return 77;
  }
  pd_error err = {0};
  pd_model *m = NULL;
  if (pd_model_load(dir, &m, &err) != PD_OK) {
    fprintf(stderr, "layers: %s\n", err.msg);
    return 1;
  }
  float *inputs[PD_MAX_BRANCHES] = {0};
  pd_batch in = {.n = batch};
  unsigned s = 7u;
  for (int b = 0; b < m->graph.n_branches; b++) {
    size_t n = pd_graph_branch_input_len(&m->graph, b) * (size_t)batch;
    inputs[b] = malloc(n * sizeof(float));
    if (!inputs[b]) {
      fprintf(stderr, "layers: out of memory for the inputs\n");
      for (int k = 0; k < b; k++)
        free(inputs[k]);
      pd_model_free(m);
      return 1;
    }
    for (size_t i = 0; i < n; i++) {
      s = s * 1103515245u + 12345u;
      inputs[b][i] = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f;
    }
    in.branch[b] = inputs[b];
  }
  printf("model %s, batch %d, %d threads\n", m->name, batch, threads);
  plan_run ours = {0}, chosen = {0}, dnn = {0};
  int rc = run_mode(m, PD_CPU_KERNELS_OURS, threads, batch, iters, &in, 0, &ours, &err);
  if (rc == PD_OK)
    rc = run_mode(m, PD_CPU_KERNELS_AUTO, threads, batch, iters, &in, 1, &chosen, &err);
  if (rc == PD_OK)
    rc = run_mode(m, PD_CPU_KERNELS_ONEDNN, threads, batch, iters, &in, 0, &dnn, &err);
  double diff = INFINITY;
  if (rc != PD_OK) {
    fprintf(stderr, "layers: %s\n", err.msg);
    goto out;
  }
  diff = 0;
  for (size_t i = 0; i < (size_t)batch * m->n_classes; i++) {
    diff = fmax(diff, fabs((double)chosen.probs[i] - ours.probs[i]));
    diff = fmax(diff, fabs((double)dnn.probs[i] - ours.probs[i]));
  }
  printf("whole plan, best of %d: ours %.1f images/s, chosen %.1f, oneDNN wherever it runs %.1f; "
         "max |probs - ours| %.3g\n",
         iters, ours.images_per_s, chosen.images_per_s, dnn.images_per_s, diff);
  if (ours.single) {
    const int same = memcmp(ours.single, ours.probs, (size_t)m->n_classes * sizeof(float)) == 0;
    printf("one image alone on the plan (workers share it): %s the batch's answer\n",
           same ? "bit for bit" : "DIFFERENT from");
    if (!same) diff = INFINITY;
  }
  printf("ours_images_per_s=%.2f chosen_images_per_s=%.2f onednn_images_per_s=%.2f "
         "max_prob_diff=%.3g\n",
         ours.images_per_s, chosen.images_per_s, dnn.images_per_s, diff);
out:
  free(ours.single);
  free(ours.probs);
  free(chosen.probs);
  free(dnn.probs);
  for (int b = 0; b < m->graph.n_branches; b++)
    free(inputs[b]);
  pd_model_free(m);
  return diff <= 1e-4 ? 0 : 1;
}
