/* pd_cuda_backend: the GPU implementation of pd_backend (kernels/pd_backend.h)
 * on one CUDA device, with cuDNN 9 (legacy convolution API), cuBLAS and our
 * own kernels (pd_cuda_kernels.h). This header is plain C and names no CUDA
 * type. The backend is a module loaded at run time (planktond-cuda.so,
 * pd_cuda_module.h): every build has these calls through pd_cuda_loader.c,
 * which loads the module or answers "cuda support not built or not found"
 * with the paths it tried.
 *
 * Ownership, as in the CPU backend:
 *  - the backend owns the device choice (index, properties) and nothing on
 *    the device; creating it checks that the runtime, the driver, a kernel
 *    image for the device, cuDNN and cuBLAS all work, so `auto` selection
 *    (pd_backend_select.h) can fall back to the CPU with the reason;
 *  - a plan (one model, one max_batch) owns everything a run touches: its
 *    stream, its cuDNN and cuBLAS handles (bound to the stream), the weights
 *    on the device, the activation buffers, the cuDNN workspace, the cuBLAS
 *    workspace, pinned host staging for inputs and probabilities, and per
 *    batch bucket the cuDNN descriptors and chosen algorithms (and, with
 *    `graphs`, one CUDA graph per bucket). All of it is made at plan time;
 *    a run allocates nothing.
 *
 * Batch buckets: cuDNN descriptors and algorithm choices depend on the batch
 * size, so a plan prepares the sizes 1, 2, 3, 4, 6, 8, 12, ... (powers of two
 * and 1.5x powers of two) up to max_batch, and max_batch itself. A run of n
 * images uses the smallest bucket >= n: inputs for n images are copied up,
 * the padding images compute on whatever their slots hold (zeros from plan
 * time, later an earlier batch's rows) and are never copied back. Every
 * layer is per image, so padding cannot change a real image's answer. Waste is at most 50% (n = 2^k
 * + 1), none at max_batch.
 *
 * A run: copy each branch's n input rows into pinned staging, one async
 * host-to-device copy per branch, the network (or the bucket's graph) on the
 * plan's stream, one device-to-host copy of the n probability rows, one
 * cudaStreamSynchronize, copy out. Layers:
 *  - conv: cudnnConvolutionForward, NHWC input/output and NHWC (= OHWI, the
 *    loader's layout) filters, algorithm chosen per bucket at plan time by
 *    cudnnFindConvolutionForwardAlgorithmEx (measured) or
 *    cudnnGetConvolutionForwardAlgorithm_v7 (heuristic; `heuristic_algos`),
 *    then our fused bias + leaky ReLU kernel (cuDNN has no leaky ReLU, and
 *    cudnnConvolutionBiasActivationForward only fuses its own activations);
 *  - dense: cublasSgemm (row-major out = in * W^T) + the bias/activation kernel;
 *  - max pooling, cyclic slice / roll / pool, maxout, global average pooling,
 *    leaky ReLU, softmax: our kernels, each the CPU op's arithmetic;
 *  - dropout: nothing; branch concatenation: cudaMemcpy2DAsync into the
 *    head's input rows.
 * Precision: PD_CUDA_FP32 keeps convolutions on FMA kernels
 * (CUDNN_FMA_MATH: no TF32 tensor cores) and cuBLAS in CUBLAS_DEFAULT_MATH
 * (no TF32); PD_CUDA_TF32 lets cuDNN and cuBLAS use TF32 tensor cores.
 * PD_CUDA_FP16 (pd_cuda_run_fp16.c): conv and dense weights converted to
 * half once at plan time (biases stay float), activations half between
 * layers, cuDNN convolutions on CUDNN_DATA_HALF tensors with FP32 compute
 * under CUDNN_TENSOR_OP_MATH, dense layers through cublasGemmEx (CUDA_R_16F
 * in, CUBLAS_COMPUTE_32F), a convolution's output filled with its bias and
 * cuDNN adding its sums to it (beta 1, one rounding), bias + leaky ReLU and
 * the other element kernels on half maps with float arithmetic
 * (pd_cuda_half.h); the layer before a
 * softmax writes float, so softmax and the probabilities are FP32, and
 * cyclic and global pooling sum in float.
 *
 * Errors: every CUDA, cuDNN and cuBLAS call is checked; the message names
 * the call, its error name and text, and the layer (or the plan step), e.g.
 * "cuda backend: layer 'a.1' (conv, batch bucket 64): cudnnConvolutionForward:
 * CUDNN_STATUS_EXECUTION_FAILED". A failed run fails only that batch; after
 * a sticky device error (an illegal address, a lost device) the plan is out
 * of service: that run and every later one fail with PD_EDEVICE at once
 * naming that error, and the plan and backend must be destroyed and
 * recreated (or the CPU used: engine.on_device_error, pd_served.h). Under
 * `auto` a plan that fails to be made falls back to the CPU
 * (pd_backend_fall_back). $PD_CUDA_FAULT_INJECT=<stage> makes a stage fail
 * for the tests; $PD_CUDA_SYNC_LAYERS=1 waits after each layer so an
 * asynchronous fault names its layer.
 *
 * Thread use: one run at a time per plan (pd_backend.h); every entry point
 * makes the backend's device current on the calling thread first, so plans
 * may be made and run from any thread. No global mutable state here.
 * */
#ifndef PD_CUDA_BACKEND_H
#define PD_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pd_backend.h"

typedef enum {
  PD_CUDA_FP32 = 0, /* exact FP32 arithmetic (FMA kernels only) */
  PD_CUDA_TF32,     /* TF32 tensor cores for convolutions and dense layers */
  PD_CUDA_BF16,     /* engine precisions not implemented here yet: create refuses them */
  PD_CUDA_INT8,
  PD_CUDA_FP16, /* half weights and activations, FP32 accumulation, tensor cores */
} pd_cuda_precision;

typedef struct pd_cuda_options {
  int device;                  /* CUDA device index (0 = first) */
  pd_cuda_precision precision; /* default PD_CUDA_FP32 */
  int heuristic_algos;         /* 1: cuDNN heuristics (fast plan); 0: measure (FindEx) */
  int graphs;                  /* 1: run each bucket as a CUDA graph captured at plan time */
  size_t workspace_limit;      /* most cuDNN workspace bytes one conv may use; 0 = 256 MiB */
  char algo_cache_dir[256];    /* where plans keep algorithm choices (pd_cuda_algo.c); "": off */
} pd_cuda_options;

/* Options with every field at its default (device 0, FP32, measured algorithms, no graphs). */
pd_cuda_options pd_cuda_options_default(void);

/* Whether the CUDA module loads here (built, found, same backend interface). */
int pd_cuda_built(void);

/* The module's path and build ("/x/planktond-cuda.so (CUDA runtime 13000,
 * cuDNN 9.19.0, sm_80 ...)"), or why it does not load. */
int pd_cuda_module_path(char *buf, size_t len, pd_error *err);

/* Number of CUDA devices. On failure the message says why, naming the call:
 * "cudaGetDeviceCount: cudaErrorInsufficientDriver (CUDA driver version is
 * insufficient for CUDA runtime version)", "no CUDA device present", or
 * "cuda support not built or not found (tried ...)". */
int pd_cuda_device_count(int *count, pd_error *err);

/* Creates the backend on opt->device (NULL: defaults). Checks the device
 * index, makes the device current, reads its properties, checks that this
 * build has a kernel image for it, and that cuDNN (major version as built)
 * and cuBLAS initialise on it. */
int pd_cuda_backend_create(const pd_cuda_options *opt, pd_backend **out, pd_error *err);

/* One line about the backend's device: "device 0: NVIDIA H100 80GB HBM3
 * (compute 9.0, 79.1 GiB, 132 SMs), driver 13.0, runtime 13.0, cuDNN 91900, fp32". */
void pd_cuda_backend_describe(const pd_backend *be, char *buf, size_t len);

/* One line per conv layer and bucket: the algorithm and workspace chosen
 * (for bench/ and debugging). Writes at most len bytes, always terminated. */
void pd_cuda_plan_describe(const pd_plan *plan, char *buf, size_t len);

#endif
