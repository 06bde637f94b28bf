/* pd_safetensors: a bounds-checked reader of the safetensors container
 * (u64 LE header length, JSON header, raw little-endian data). Owns the
 * parsed tensor table; tensor data points into the caller's buffer. */
#ifndef PD_SAFETENSORS_H
#define PD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"

#define PD_ST_MAX_DIMS 8

typedef enum { PD_DTYPE_F32 = 0, PD_DTYPE_F16, PD_DTYPE_OTHER } pd_dtype;

typedef struct pd_safetensors_tensor {
  char *name;
  pd_dtype dtype;
  char dtype_name[16];
  int ndim;
  int64_t shape[PD_ST_MAX_DIMS];
  const uint8_t *data; /* into the caller's buffer */
  size_t nbytes;
  int used; /* set by the model loader to find extra tensors */
} pd_safetensors_tensor;

typedef struct pd_safetensors_file {
  int n_tensors;
  pd_safetensors_tensor *tensors;
} pd_safetensors_file;

/* Parses buf[len]; `name` is used in error messages. buf must outlive out.
 * The table is sorted by tensor name. On error *out is left empty. */
int pd_safetensors_parse(const uint8_t *buf, size_t len, const char *name, pd_safetensors_file *out,
                         pd_error *err);

pd_safetensors_tensor *pd_safetensors_find(pd_safetensors_file *f, const char *name);

/* Number of elements (the product of the shape; 1 for a scalar). */
size_t pd_safetensors_numel(const pd_safetensors_tensor *t);

/* Writes "[d0, d1, ...]" into buf[cap] (for error messages) and returns buf. */
const char *pd_safetensors_format_shape(const int64_t *shape, int ndim, char *buf, size_t cap);

/* Copies the tensor into dst[n] as float32 (F32 copied, F16 widened). */
int pd_safetensors_to_f32(const pd_safetensors_tensor *t, float *dst, size_t n, pd_error *err);

void pd_safetensors_free(pd_safetensors_file *f);

#endif
