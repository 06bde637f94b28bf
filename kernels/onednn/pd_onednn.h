/* pd_onednn: convolutions and dense layers through oneDNN (libdnnl 2.x,
 * its v2 C API), for the CPU backend to use where they beat its own kernels.
 * Owns one oneDNN CPU engine, and per op: the primitive oneDNN chose for the
 * shape, the weights reordered once into that primitive's layout, and one
 * execution slot per caller thread (stream, memory objects, a user-managed
 * scratchpad), so a run allocates nothing and slots run concurrently.
 * Activations are the engine's: NHWC float32 (views adjacent, as images);
 * bias and leaky ReLU are fused as oneDNN post-ops.
 *
 * Precisions: fp32 everywhere; bf16 (bf16 weights and inputs, fp32
 * accumulation and output) only where oneDNN finds AVX-512 BF16 or AMX.
 * Asking for one the CPU cannot run is an error naming those it can. */
#ifndef PD_ONEDNN_H
#define PD_ONEDNN_H

#include <stddef.h>

#include "pd_error.h"

typedef enum pd_onednn_precision {
  PD_ONEDNN_FP32 = 0,
  PD_ONEDNN_BF16,
  PD_ONEDNN_PRECISION_COUNT
} pd_onednn_precision;

typedef struct pd_onednn pd_onednn;
typedef struct pd_onednn_op pd_onednn_op;

/* A convolution over n maps of h x w x c (NHWC): k filters of
 * kernel x kernel (weights OHWI: k x kernel x kernel x c), stride, zero
 * padding pad on every side, output n x oh x ow x k with
 * oh = (h + 2 pad - kernel) / stride + 1 (likewise ow). */
typedef struct pd_onednn_conv_shape {
  int n, h, w, c;
  int k, kernel, stride, pad;
} pd_onednn_conv_shape;

/* Leaky ReLU after the bias (slope 0: ReLU) or nothing. */
typedef struct pd_onednn_act {
  int leaky;
  float slope;
} pd_onednn_act;

const char *pd_onednn_precision_name(pd_onednn_precision p);
/* Parses "fp32" / "bf16"; PD_EINVAL naming the accepted names otherwise. */
int pd_onednn_precision_parse(const char *name, pd_onednn_precision *out, pd_error *err);

/* Whether this CPU runs precision p through oneDNN's native kernels; the
 * comma-separated list of those it runs ("fp32" or "fp32, bf16"). */
int pd_onednn_precision_available(pd_onednn_precision p);
void pd_onednn_precisions_available(char *buf, size_t len);
/* PD_OK, or PD_EUNSUPP naming the CPU's oneDNN ISA and the precisions it runs. */
int pd_onednn_precision_check(pd_onednn_precision p, pd_error *err);

/* oneDNN's version and the instruction set it dispatches to here, e.g.
 * "oneDNN 2.6.3 (isa avx2)". */
void pd_onednn_describe(char *buf, size_t len);

/* The engine (one per backend). */
int pd_onednn_create(pd_onednn **out, pd_error *err);
void pd_onednn_destroy(pd_onednn *e);

/* Threads oneDNN's own parallel regions use when called from this thread
 * (its OpenMP runtime keeps the setting per calling thread). */
void pd_onednn_set_threads(int n);

/* A convolution (bias: k floats, may be NULL for zeros). The op keeps its
 * own copy of the weights; `slots` callers may run it at once. */
int pd_onednn_conv_create(pd_onednn *e, const pd_onednn_conv_shape *s, const float *weight_ohwi,
                          const float *bias, pd_onednn_act act, pd_onednn_precision prec, int slots,
                          pd_onednn_op **out, pd_error *err);

/* A dense layer: out[r] = act(W in[r] + bias) for any number of rows given
 * at run time, W is units x in_len (row-major, a row per unit). oneDNN's
 * matmul with a run-time row count (an inner product fixes it at creation). */
int pd_onednn_dense_create(pd_onednn *e, int in_len, int units, const float *weight,
                           const float *bias, pd_onednn_act act, pd_onednn_precision prec,
                           int slots, pd_onednn_op **out, pd_error *err);

/* Runs the op on slot `slot` (one thread at a time per slot). rows: the
 * dense op's row count; ignored (the shape's n) for a convolution. */
int pd_onednn_run(pd_onednn_op *op, int slot, int rows, const float *in, float *out, pd_error *err);

/* oneDNN's name for the implementation it chose (e.g. "brgconv:avx2",
 * "gemm:jit"). */
const char *pd_onednn_op_impl(const pd_onednn_op *op);
void pd_onednn_op_destroy(pd_onednn_op *op);

#endif
