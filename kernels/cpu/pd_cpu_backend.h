/* pd_cpu_backend: the CPU implementation of pd_backend. Owns a pool of
 * worker threads; each run splits the batch into one contiguous slice of
 * images per thread and runs the whole network on it (a batch smaller than
 * the threads: all threads share each image's convolutions). 3x3 stride-1
 * convolutions go through pd_conv3x3 (Winograd F(4x4, 3x3), or a direct
 * kernel for few input channels), other convolutions and dense layers
 * through im2col + single-threaded OpenBLAS SGEMM; bias + leaky ReLU fused.
 * Where oneDNN is built, each conv/dense layer runs through whichever of
 * those and oneDNN was faster when the plan timed both (pd_cpu_choice).
 * Precision bf16 adds oneDNN's bf16 convolutions to that timing (weights
 * converted once at plan time, fp32 activations between layers, fp32
 * accumulation; pooling, cyclic layers and softmax stay fp32). */
#ifndef PD_CPU_BACKEND_H
#define PD_CPU_BACKEND_H

#include "pd_backend.h"
#include "pd_precision.h"

typedef struct pd_cpu_options {
  int threads; /* worker threads; 0 = number of online CPUs */
  int profile; /* time every layer (for bench/); costs two clock reads per layer */
  int kernels; /* pd_cpu_kernels (pd_cpu_choice.h): 0 = auto, time ours and oneDNN per layer */
  pd_precision precision; /* fp32 (default) or bf16; int8, tf32, fp16 and auto are refused */
} pd_cpu_options;

/* Whether this build and CPU run precision p; the ones they run ("fp32" or
 * "fp32, bf16"). */
int pd_cpu_precision_available(pd_precision p);
void pd_cpu_precisions(char *buf, size_t len);

/* The CPU's model and the features the precisions need, e.g. "AMD EPYC
 * ...; avx512f yes, avx512_bf16 yes, amx no". */
void pd_cpu_features_describe(char *buf, size_t len);

/* Errors name the option and value; a precision it cannot run is PD_EUNSUPP
 * naming those it can. */
int pd_cpu_backend_create(const pd_cpu_options *opt, pd_backend **out, pd_error *err);

/* With profile set: thread-seconds spent in each layer kind since the plan
 * was made, summed over workers, into seconds[PD_LAYER_KIND_COUNT]. */
void pd_cpu_plan_layer_seconds(const pd_plan *plan, double *seconds);

/* What the plan runs: workers, the 3x3 kernel table, the BLAS core, and
 * per conv/dense layer the kernel chosen with the timings that chose it
 * (pd_cpu_choice). Multi-line, NUL-terminated, cut at len. */
void pd_cpu_plan_describe(const pd_plan *plan, char *buf, size_t len);

/* The precision the plan was made with, and one line naming what runs each
 * conv and dense layer (pd_cpu_choice_kernels). */
pd_precision pd_cpu_plan_precision(const pd_plan *plan);
void pd_cpu_plan_kernels(const pd_plan *plan, char *buf, size_t len);

#endif
