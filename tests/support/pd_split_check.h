/* pd_split_check: the check that a backend's submit/wait path (two input
 * slots from pd_plan_host_alloc, batch k+1 written into the free slot while
 * batch k is in flight) gives bit-identical probabilities to pd_plan_run on
 * the same images, and that the one-batch-in-flight rule is enforced
 * (test_backend_split.c on the CPU, test_cuda.c on a device). Header-only;
 * needs pd_cuda_test_models.h's inputs first. */
#ifndef PD_SPLIT_CHECK_H
#define PD_SPLIT_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "pd_backend.h"
#include "pd_model.h"
#include "pd_test.h"

/* Batch k: sizes[k] images from image offset 0 (k even) or from the end of
 * the inputs (k odd), so that neighbouring batches differ. */
static int split_offset(int k, int n, int max_batch) {
  return k % 2 == 0 ? 0 : max_batch - n;
}

__attribute__((unused)) static void pd_split_check(pd_test_state *st, pd_backend *be,
                                                   const pd_model *m, int max_batch,
                                                   const int *sizes, int n_sizes,
                                                   const char *label) {
  pd_error err = {0};
  pd_plan *plan = NULL;
  int rc = pd_plan_create(be, &m->graph, max_batch, &plan, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "%s: plan: %s\n", label, err.msg);
    return;
  }
  const int C = m->n_classes;
  inputs in;
  make_inputs(m, max_batch, 23, &in);
  float *slot[2][PD_MAX_BRANCHES] = {{0}};
  for (int k = 0; k < 2; k++)
    for (int b = 0; b < m->n_branches; b++) {
      slot[k][b] =
          pd_plan_host_alloc(plan, (size_t)max_batch * pd_model_branch_input_len(m, b) * 4);
      PD_CHECK(st, slot[k][b] != NULL);
      if (!slot[k][b]) goto out;
    }
  float *ref = malloc((size_t)n_sizes * max_batch * C * sizeof(float));
  float *got = malloc((size_t)n_sizes * max_batch * C * sizeof(float));
  /* the references, one pd_plan_run each, from the pageable inputs */
  for (int k = 0; k < n_sizes; k++) {
    const int n = sizes[k], off = split_offset(k, n, max_batch);
    pd_batch batch = {.n = n};
    for (int b = 0; b < m->n_branches; b++)
      batch.branch[b] = in.branch[b] + (size_t)off * pd_model_branch_input_len(m, b);
    PD_CHECK_INT(st, pd_plan_run(plan, &batch, ref + (size_t)k * max_batch * C, &err), PD_OK);
  }
  /* batch k in slot k % 2; k + 1 is written while k is in flight */
  pd_batch batch[2];
  for (int k = 0; k <= n_sizes; k++) {
    if (k < n_sizes) {
      const int n = sizes[k], off = split_offset(k, n, max_batch);
      batch[k % 2] = (pd_batch){.n = n};
      for (int b = 0; b < m->n_branches; b++) {
        const size_t len = pd_model_branch_input_len(m, b);
        memcpy(slot[k % 2][b], in.branch[b] + (size_t)off * len, (size_t)n * len * sizeof(float));
        batch[k % 2].branch[b] = slot[k % 2][b];
      }
    }
    if (k > 0) {
      PD_CHECK(st, pd_plan_in_flight(plan));
      rc = pd_plan_wait(plan, &err);
      PD_CHECK_INT(st, rc, PD_OK);
      if (rc != PD_OK) fprintf(stderr, "%s: wait for batch %d: %s\n", label, k - 1, err.msg);
      const size_t cells = (size_t)sizes[k - 1] * C;
      const int same = memcmp(got + (size_t)(k - 1) * max_batch * C,
                              ref + (size_t)(k - 1) * max_batch * C, cells * sizeof(float)) == 0;
      printf("%s: batch %d of %d: submit/wait %s run\n", label, k - 1, sizes[k - 1],
             same ? "bit-identical to" : "DIFFERS from");
      PD_CHECK(st, same);
    }
    if (k < n_sizes) {
      rc = pd_plan_submit(plan, &batch[k % 2], got + (size_t)k * max_batch * C, &err);
      PD_CHECK_INT(st, rc, PD_OK);
      if (rc != PD_OK) {
        fprintf(stderr, "%s: submit batch %d: %s\n", label, k, err.msg);
        break;
      }
      if (k == 0) { /* one in flight: a second submit, or a run, is refused */
        float spare[1];
        PD_CHECK_INT(st, pd_plan_submit(plan, &batch[0], spare, &err), PD_EINVAL);
        PD_CHECK_CONTAINS(st, err.msg, "in flight");
        PD_CHECK_INT(st, pd_plan_run(plan, &batch[0], spare, &err), PD_EINVAL);
        PD_CHECK(st, pd_plan_in_flight(plan));
      }
    }
  }
  PD_CHECK(st, !pd_plan_in_flight(plan));
  PD_CHECK_INT(st, pd_plan_wait(plan, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "no batch in flight");
  free(ref);
  free(got);
out:
  for (int k = 0; k < 2; k++)
    for (int b = 0; b < m->n_branches; b++)
      pd_plan_host_free(plan, slot[k][b]);
  free_inputs(m, &in);
  pd_plan_destroy(plan);
}

#endif
