/* A CUDA backend module for the loader's tests (test_daemon_backend): the
 * entry point of pd_cuda_module.h with the backend interface one past this
 * build's, so the loader must refuse it before calling through its table
 * (whose calls are all NULL). tests/meson.build links it with libm as a
 * needed library, so that a test can make a copy whose dependency is
 * missing. */
#include "cuda/pd_cuda_module.h"

static const pd_cuda_module k_module = {
    .abi = PD_BACKEND_ABI + 1, .sizes = PD_CUDA_MODULE_SIZES, .build = "test module"};

__attribute__((visibility("default"))) const pd_cuda_module *planktond_cuda_module_entry(void) {
  return &k_module;
}
