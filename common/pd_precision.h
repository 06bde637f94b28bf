/* pd_precision: the engine's arithmetic precisions (engine.precision,
 * --precision) and their names. Which ones a backend runs is the backend's
 * to say (pd_cpu_backend.h, pd_cuda_backend.h); `auto` is resolved per model
 * folder before a backend is made (pd_precision_pick.h). Header only. */
#ifndef PD_PRECISION_H
#define PD_PRECISION_H

#include <string.h>

#include "pd_error.h"

typedef enum pd_precision {
  PD_PRECISION_FP32 = 0, /* the default: zeroed options mean fp32 */
  PD_PRECISION_BF16,     /* bf16 weights and inputs, fp32 accumulation */
  PD_PRECISION_INT8,     /* a name the parser knows; no backend runs it yet */
  PD_PRECISION_TF32,     /* CUDA: TF32 tensor cores for convolutions and dense layers */
  PD_PRECISION_FP16,     /* CUDA: half weights and activations, FP32 accumulation */
  PD_PRECISION_AUTO,     /* the fastest whose recorded parity holds */
  PD_PRECISION_COUNT
} pd_precision;

/* Accepted names, in enum order, NULL-terminated (for the settings table). */
#define PD_PRECISION_NAMES                                                                         \
  { "fp32", "bf16", "int8", "tf32", "fp16", "auto", NULL }

static inline const char *pd_precision_name(pd_precision p) {
  static const char *const names[] = PD_PRECISION_NAMES;
  return p >= 0 && p < PD_PRECISION_COUNT ? names[p] : "?";
}

/* PD_EINVAL naming the accepted values for anything else. */
static inline int pd_precision_parse(const char *name, pd_precision *out, pd_error *err) {
  for (int p = 0; p < PD_PRECISION_COUNT; p++)
    if (name && strcmp(name, pd_precision_name((pd_precision)p)) == 0) {
      *out = (pd_precision)p;
      return PD_OK;
    }
  return pd_error_set(err, PD_EINVAL,
                      "unknown precision '%s' (auto, fp32, bf16, int8, tf32 or fp16)",
                      name ? name : "");
}

#endif
