/* pd_cuda_test: hooks into the CUDA backend for tests/ and tools/ only
 * (parity checks and debugging); the daemon never calls them. Plain C like
 * pd_cuda_backend.h; without the module, pd_cuda_loader.c answers "cuda
 * support not built or not found". */
#ifndef PD_CUDA_TEST_H
#define PD_CUDA_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "pd_backend.h"

/* Runs `in` layer by layer, synchronising after each, and calls fn with a
 * host copy of each layer's output (list = branch index, or PD_MAX_BRANCHES
 * for the head; the rows of in->n images, pd_shape_len(layer.out) floats
 * each). fn returning non-zero stops the run (not an error). */
typedef int (*pd_cuda_trace_fn)(void *user, int list, int layer, const float *out, size_t floats);
int pd_cuda_plan_trace(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                       pd_error *err);

/* One image branch's warp as pd_warp_branch does it (input/pd_warp.h). */
typedef struct pd_cuda_warp_spec {
  int size; /* output patch is size x size */
  int invert;
  float background, mean, std;
} pd_cuda_warp_spec;

/* Runs the GPU preprocessing warp (pd_cuda_warp) for `count` crops (crop k:
 * pixels[k], w[k] x h[k], warped with the affine map affines[6k .. 6k+5],
 * pd_warp_affine's coefficients) on the backend's device, into
 * out[count][size*size] on the host. Allocates. */
int pd_cuda_warp_check(pd_backend *be, const pd_cuda_warp_spec *spec, const uint8_t *const *pixels,
                       const int *w, const int *h, const double *affines, int count, float *out,
                       pd_error *err);

#endif
