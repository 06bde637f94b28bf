/* pd_cuda_module (module side): the table planktond-cuda.so exports
 * (pd_cuda_module.h), over this module's own pd_cuda_backend.h and
 * pd_cuda_test.h. The module is built with hidden visibility: this entry
 * is its only exported symbol. */
#include "cuda_internal.h"
#include "pd_cuda_module.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const pd_cuda_module k_module = {
    .abi = PD_BACKEND_ABI,
    .sizes = PD_CUDA_MODULE_SIZES,
    .build = "CUDA runtime " STR(CUDART_VERSION) ", cuDNN " STR(CUDNN_MAJOR) "." STR(
        CUDNN_MINOR) "." STR(CUDNN_PATCHLEVEL) ", " PD_CUDA_ARCHS,
    .device_count = pd_cuda_device_count,
    .backend_create = pd_cuda_backend_create,
    .backend_describe = pd_cuda_backend_describe,
    .plan_describe = pd_cuda_plan_describe,
    .plan_trace = pd_cuda_plan_trace,
    .warp_check = pd_cuda_warp_check,
};

__attribute__((visibility("default"))) const pd_cuda_module *planktond_cuda_module_entry(void) {
  return &k_module;
}
