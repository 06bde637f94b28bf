/* test_backend_select: pd_backend_create_by_name on whatever this machine has.
 *  - "cpu" makes the CPU backend and says "cpu: requested";
 *  - without a usable CUDA device (or without CUDA support built), "auto"
 *    falls back to the CPU and its reason is "cpu: cuda unavailable: " plus
 *    exactly what the CUDA backend said (e.g. "cudaGetDeviceCount:
 *    cudaErrorInsufficientDriver (...)" or "cuda support not built ..."), and
 *    "cuda" fails with PD_EUNSUPP and that same reason, never falling back;
 *  - with a device, "auto" and "cuda" make the CUDA backend and name the
 *    device, and a device index past the last one is refused naming it;
 *  - unknown names are refused naming the choices;
 *  - whatever "auto" made runs a small model and agrees with the CPU backend.
 * Prints the reasons, so the test log shows what this machine chose and why. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pd_backend.h"
#include "pd_backend_select.h"
#include "pd_model.h"
#include "pd_test.h"
#include "pd_test_model.h"

static const char k_yaml[] = "format: 1\n"
                             "name: select-c4\n"
                             "version: \"1\"\n"
                             "classes: [alpha, beta, gamma, delta]\n"
                             "symmetry: c4\n"
                             "input: {mean: 0.05, std: 0.15}\n"
                             "branches:\n"
                             "  - name: a\n"
                             "    input: {kind: image, size: 16, rescale: fit, fit_size: 14}\n"
                             "    layers:\n"
                             "      - {type: cyclic_slice}\n"
                             "      - {type: conv, filters: 4, kernel: 3}\n"
                             "      - {type: maxpool}\n"
                             "      - {type: cyclic_roll}\n"
                             "      - {type: conv, filters: 6, kernel: 3}\n"
                             "      - {type: global_avg_pool}\n"
                             "      - {type: cyclic_pool, mode: rms}\n"
                             "head:\n"
                             "  layers:\n"
                             "    - {type: dense, units: 4}\n"
                             "    - {type: softmax}\n";

static const pd_test_tensor k_tensors[] = {
    {"a.1.weight", 4, {4, 1, 3, 3}},  {"a.1.bias", 1, {4}},
    {"a.4.weight", 4, {6, 16, 3, 3}}, {"a.4.bias", 1, {6}},
    {"head.0.weight", 2, {4, 6}},     {"head.0.bias", 1, {4}},
};

#define N_IMG 3

static void run_model(pd_test_state *st, pd_backend *be, const pd_model *m, float *probs) {
  pd_error err = {0};
  pd_plan *plan = NULL;
  int rc = pd_plan_create(be, &m->graph, 4, &plan, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "plan on %s: %s\n", be->ops->name, err.msg);
    return;
  }
  static float in[N_IMG * 16 * 16];
  uint8_t px[30 * 24];
  for (int i = 0; i < N_IMG; i++) {
    pd_test_crop(30, 24, 3 + (uint64_t)i, px);
    float *slot = in + i * 256;
    pd_model_fill_view(m, px, 30, 24, NULL, &slot);
  }
  pd_batch batch = {.n = N_IMG, .branch = {in}};
  PD_CHECK_INT(st, pd_plan_run(plan, &batch, probs, &err), PD_OK);
  for (int i = 0; i < N_IMG; i++) {
    double sum = 0;
    for (int c = 0; c < 4; c++)
      sum += probs[i * 4 + c];
    PD_CHECK_NEAR(st, sum, 1.0, 1e-5);
  }
  pd_plan_destroy(plan);
}

int main(void) {
  pd_test_state st = {0};
  pd_error err = {0};
  pd_backend_reason why;
  pd_backend *be = NULL;

  pd_model *m = NULL;
  if (pd_test_load_model(k_yaml, k_tensors, 6, 3, &m, &err) != PD_OK) {
    fprintf(stderr, "test model: %s\n", err.msg);
    return 1;
  }

  /* cpu */
  PD_CHECK_INT(&st, pd_backend_create_by_name("cpu", 0, 1, &be, &why, &err), PD_OK);
  PD_CHECK(&st, be && strcmp(be->ops->name, "cpu") == 0);
  PD_CHECK(&st, strcmp(why.name, "cpu") == 0);
  PD_CHECK(&st, strcmp(why.text, "cpu: requested") == 0);
  float ref[N_IMG * 4] = {0}, got[N_IMG * 4] = {0};
  if (be) run_model(&st, be, m, ref);
  pd_backend_destroy(be);
  be = NULL;

  /* unknown */
  PD_CHECK_INT(&st, pd_backend_create_by_name("gpu", 0, 1, &be, &why, &err), PD_EINVAL);
  PD_CHECK(&st, be == NULL);
  PD_CHECK_CONTAINS(&st, err.msg, "unknown backend 'gpu' (auto, cpu or cuda)");

  /* What the CUDA backend says on this machine. */
  pd_error cuda_err = {0};
  pd_backend *probe = NULL;
  const int have_cuda = pd_cuda_backend_create(NULL, &probe, &cuda_err) == PD_OK;
  pd_backend_destroy(probe);
  printf("cuda support built: %s; cuda backend: %s\n", pd_cuda_built() ? "yes" : "no",
         have_cuda ? "works" : cuda_err.msg);
  if (!pd_cuda_built()) PD_CHECK_CONTAINS(&st, cuda_err.msg, "cuda support not built");

  /* auto */
  PD_CHECK_INT(&st, pd_backend_create_by_name("auto", 0, 1, &be, &why, &err), PD_OK);
  printf("auto chose: %s\n", why.text);
  if (have_cuda) {
    PD_CHECK(&st, be && strcmp(be->ops->name, "cuda") == 0);
    PD_CHECK(&st, strcmp(why.name, "cuda") == 0);
    PD_CHECK_CONTAINS(&st, why.text, "cuda: auto found a working CUDA device: device 0: ");
  } else {
    PD_CHECK(&st, be && strcmp(be->ops->name, "cpu") == 0);
    PD_CHECK(&st, strcmp(why.name, "cpu") == 0);
    char want[sizeof why.text];
    snprintf(want, sizeof want, "cpu: cuda unavailable: %s", cuda_err.msg);
    PD_CHECK(&st, strcmp(why.text, want) == 0);
    if (pd_cuda_built() && strstr(cuda_err.msg, "cudaGetDeviceCount"))
      PD_CHECK_CONTAINS(&st, why.text, "cpu: cuda unavailable: cudaGetDeviceCount: cudaError");
  }
  if (be) {
    run_model(&st, be, m, got);
    for (int k = 0; k < N_IMG * 4; k++)
      PD_CHECK_NEAR(&st, got[k], ref[k], 1e-4);
  }
  pd_backend_destroy(be);
  be = NULL;

  /* cuda */
  int rc = pd_backend_create_by_name("cuda", 0, 1, &be, &why, &err);
  if (have_cuda) {
    PD_CHECK_INT(&st, rc, PD_OK);
    PD_CHECK(&st, be && strcmp(be->ops->name, "cuda") == 0);
    PD_CHECK_CONTAINS(&st, why.text, "cuda: requested; device 0: ");
    pd_backend_destroy(be);
    be = NULL;
    int count = 0;
    PD_CHECK_INT(&st, pd_cuda_device_count(&count, &err), PD_OK);
    PD_CHECK_INT(&st, pd_backend_create_by_name("cuda", count, 1, &be, &why, &err), PD_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "device %d requested", count);
    PD_CHECK_CONTAINS(&st, err.msg, want);
  } else {
    printf("cuda refused: %s\n", err.msg);
    PD_CHECK_INT(&st, rc, PD_EUNSUPP);
    PD_CHECK(&st, be == NULL);
    PD_CHECK(&st, why.name[0] == '\0');
    char want[sizeof err.msg + 64];
    snprintf(want, sizeof want, "backend cuda unavailable: %s", cuda_err.msg);
    PD_CHECK(&st, strncmp(err.msg, want, sizeof err.msg - 1) == 0);
  }
  pd_backend_destroy(be);

  /* Bad arguments to the CUDA backend are refused before touching a device. */
  pd_cuda_options neg = pd_cuda_options_default();
  neg.device = -1;
  if (pd_cuda_built()) {
    PD_CHECK_INT(&st, pd_cuda_backend_create(&neg, &be, &err), PD_EINVAL);
    PD_CHECK_CONTAINS(&st, err.msg, "device -1");
  }

  /* A plan that failed on CUDA: auto falls back to the CPU saying why; a
   * requested backend, or a failure on the CPU itself, stays the error. */
  const pd_error plan_err = {PD_ENOMEM, "cuda backend: plan: weights: cudaMalloc: "
                                        "cudaErrorMemoryAllocation (out of memory)"};
  const pd_backend_reason on_cuda = {"cuda", "cuda: auto found a working CUDA device"};
  const pd_backend_reason on_cpu = {"cpu", "cpu: cuda unavailable: no CUDA device present"};
  pd_backend_request req = pd_backend_request_default();
  req.cpu.threads = 1;
  PD_CHECK_INT(&st, pd_backend_fall_back(&req, &on_cuda, &plan_err, &be, &why, &err), PD_OK);
  PD_CHECK(&st, be && strcmp(be->ops->name, "cpu") == 0);
  PD_CHECK(&st, strcmp(why.name, "cpu") == 0);
  PD_CHECK(&st, strcmp(why.text, "cpu: cuda plan failed: cuda backend: plan: weights: cudaMalloc: "
                                 "cudaErrorMemoryAllocation (out of memory)") == 0);
  if (be) run_model(&st, be, m, got);
  for (int k = 0; be && k < N_IMG * 4; k++)
    PD_CHECK_NEAR(&st, got[k], ref[k], 1e-4);
  pd_backend_destroy(be);
  be = NULL;
  PD_CHECK_INT(&st, pd_backend_fall_back(&req, &on_cpu, &plan_err, &be, &why, &err), PD_ENOMEM);
  PD_CHECK(&st, be == NULL && why.name[0] == '\0' && strcmp(err.msg, plan_err.msg) == 0);
  req.name = "cuda";
  PD_CHECK_INT(&st, pd_backend_fall_back(&req, &on_cuda, &plan_err, &be, &why, &err), PD_ENOMEM);
  PD_CHECK(&st, be == NULL && strcmp(err.msg, plan_err.msg) == 0);

  pd_model_free(m);
  return pd_test_finish(&st, "test_backend_select");
}
