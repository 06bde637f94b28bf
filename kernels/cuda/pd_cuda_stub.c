/* pd_cuda_stub: pd_cuda_backend.h for builds without CUDA (meson -Dcuda=disabled,
 * or no toolkit found). Owns nothing; every call answers "cuda support not
 * built", so callers (pd_backend_select, the daemon, the tests) need no #ifdef. */
#include <stdio.h>

#include "pd_cuda_backend.h"
#include "pd_cuda_test.h"

#define NOT_BUILT "cuda support not built (configure with -Dcuda=enabled and a CUDA toolkit)"

pd_cuda_options pd_cuda_options_default(void) {
  pd_cuda_options o = {.device = 0, .precision = PD_CUDA_FP32};
  return o;
}

int pd_cuda_built(void) {
  return 0;
}

int pd_cuda_device_count(int *count, pd_error *err) {
  if (count) *count = 0;
  return pd_error_set(err, PD_EUNSUPP, NOT_BUILT);
}

int pd_cuda_backend_create(const pd_cuda_options *opt, pd_backend **out, pd_error *err) {
  (void)opt;
  if (out) *out = NULL;
  return pd_error_set(err, PD_EUNSUPP, NOT_BUILT);
}

void pd_cuda_backend_describe(const pd_backend *be, char *buf, size_t len) {
  (void)be;
  if (buf && len) snprintf(buf, len, NOT_BUILT);
}

void pd_cuda_plan_describe(const pd_plan *plan, char *buf, size_t len) {
  (void)plan;
  if (buf && len) snprintf(buf, len, NOT_BUILT);
}

int pd_cuda_plan_trace(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                       pd_error *err) {
  (void)plan, (void)in, (void)fn, (void)user;
  return pd_error_set(err, PD_EUNSUPP, NOT_BUILT);
}

int pd_cuda_warp_check(pd_backend *be, const pd_cuda_warp_spec *spec, const uint8_t *const *pixels,
                       const int *w, const int *h, const double *affines, int count, float *out,
                       pd_error *err) {
  (void)be, (void)spec, (void)pixels, (void)w, (void)h, (void)affines, (void)count, (void)out;
  return pd_error_set(err, PD_EUNSUPP, NOT_BUILT);
}
