/* pd_cuda_module: the one entry point of the CUDA backend module
 * (planktond-cuda.so, loaded at run time by pd_cuda_loader.c), shared by
 * the module (pd_cuda_module.c) and the loader. The module holds
 * everything that links CUDA (the runtime, cuDNN, cuBLAS, our kernels), so
 * planktond and the tools link no CUDA library and run on any host.
 *
 * The module exports one symbol, PD_CUDA_MODULE_SYMBOL, a function that
 * returns the table below. The loader reads `abi` and `sizes` first and
 * refuses the module when they differ from its own (a module built against
 * another backend interface); only then does it call through the table. */
#ifndef PD_CUDA_MODULE_H
#define PD_CUDA_MODULE_H

#include <stdint.h>

#include "pd_cuda_backend.h"
#include "pd_cuda_test.h"

#define PD_CUDA_MODULE_FILE "planktond-cuda.so"
#define PD_CUDA_MODULE_SYMBOL "planktond_cuda_module_entry"

/* The sizes of the structs that cross the boundary: a change that forgot
 * to bump PD_BACKEND_ABI still shows as a mismatch here. */
#define PD_CUDA_MODULE_SIZES                                                                       \
  {                                                                                                \
    (uint32_t)sizeof(pd_graph), (uint32_t)sizeof(pd_layer), (uint32_t)sizeof(pd_batch),            \
        (uint32_t)sizeof(pd_backend_ops), (uint32_t)sizeof(pd_error),                              \
        (uint32_t)sizeof(pd_cuda_options), (uint32_t)sizeof(pd_cuda_warp_spec)                     \
  }
#define PD_CUDA_MODULE_N_SIZES 7

typedef struct pd_cuda_module {
  uint32_t abi; /* PD_BACKEND_ABI the module was built with */
  uint32_t sizes[PD_CUDA_MODULE_N_SIZES];
  const char *build; /* "CUDA 13.0, cuDNN 9.19.0, sm_80 sm_90 compute_90" */
  int (*device_count)(int *count, pd_error *err);
  int (*backend_create)(const pd_cuda_options *opt, pd_backend **out, pd_error *err);
  void (*backend_describe)(const pd_backend *be, char *buf, size_t len);
  void (*plan_describe)(const pd_plan *plan, char *buf, size_t len);
  int (*plan_trace)(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                    pd_error *err);
  int (*warp_check)(pd_backend *be, const pd_cuda_warp_spec *spec, const uint8_t *const *pixels,
                    const int *w, const int *h, const double *affines, int count, float *out,
                    pd_error *err);
} pd_cuda_module;

typedef const pd_cuda_module *(*pd_cuda_module_entry_fn)(void);

#endif
