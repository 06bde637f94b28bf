/* test_backend_split: the CPU backend's submit/wait path (two pinned-style
 * input slots from pd_plan_host_alloc, the next batch written while one is
 * in flight) against pd_plan_run on the random-weight test models
 * (pd_cuda_test_models.h) at several batch sizes: bit-identical
 * probabilities, and the one-batch-in-flight rule refused with PD_EINVAL. */
#include <stdio.h>
#include <stdlib.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_cuda_test_models.h"
#include "pd_split_check.h"
#include "pd_test.h"

int main(void) {
  pd_test_state state = {0}, *st = &state;
  const char *root = getenv("PLANKTON_SOURCE_ROOT");
  if (!root) {
    fprintf(stderr, "test_backend_split: PLANKTON_SOURCE_ROOT is not set\n");
    return 1;
  }
  test_model models[3] = PD_CUDA_TEST_MODELS;
  for (int i = 0; i < 3; i++)
    if (load_model(st, root, &models[i]) != PD_OK) return pd_test_finish(st, "test_backend_split");
  pd_error err = {0};
  pd_cpu_options copt = {0};
  pd_backend *cpu = NULL;
  PD_CHECK_INT(st, pd_cpu_backend_create(&copt, &cpu, &err), PD_OK);
  if (cpu) {
    const int sizes[] = {1, 5, 16, 3, 16, 9};
    pd_split_check(st, cpu, models[0].m, 16, sizes, 6, "parity-c4 cpu");
    pd_split_check(st, cpu, models[1].m, 16, sizes, 6, "parity-d4 cpu");
    const int seed_sizes[] = {7, 32, 1};
    pd_split_check(st, cpu, models[2].m, 32, seed_sizes, 3, "seed-c4 cpu");
    pd_backend_destroy(cpu);
  }
  for (int i = 0; i < 3; i++)
    pd_model_free(models[i].m);
  return pd_test_finish(st, "test_backend_split");
}
