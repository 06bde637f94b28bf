/* pd_cpu_choice: which kernel runs each convolution and dense layer of a
 * CPU plan, our own (pd_conv3x3's Winograd or direct kernels, im2col +
 * OpenBLAS SGEMM) or oneDNN's (pd_onednn), decided at plan time by timing
 * both on the layer's shape at the plan's per-worker load (one image's
 * views through a spatial convolution; the most rows a worker gets through
 * a dense layer), single-threaded as the workers run them; the faster one
 * is kept (as cuDNN's algorithm search does). With precision bf16 a
 * convolution's candidates also include oneDNN's bf16 convolution (its
 * weights converted once here), kept only where it is the fastest. Owns the oneDNN engine and
 * ops of the plan and the record of the choices and their timings. Without
 * oneDNN (not built, or -Donednn=disabled) every layer is ours. */
#ifndef PD_CPU_CHOICE_H
#define PD_CPU_CHOICE_H

#include <stddef.h>

#include "pd_conv3x3.h"
#include "pd_error.h"
#include "pd_graph.h"
#include "pd_precision.h"

/* Layer lists of a plan: the branches 0..n_branches-1, then the head. */
#define PD_CPU_CHOICE_LISTS (PD_MAX_BRANCHES + 1)
#define PD_CPU_CHOICE_HEAD PD_MAX_BRANCHES

typedef enum pd_cpu_kernels {
  PD_CPU_KERNELS_AUTO = 0, /* time both per layer, keep the faster */
  PD_CPU_KERNELS_OURS,     /* never oneDNN */
  PD_CPU_KERNELS_ONEDNN,   /* oneDNN wherever it applies (with bf16: in bf16 wherever it can) */
} pd_cpu_kernels;

typedef struct pd_cpu_choice pd_cpu_choice;

/* What the plan runs, for the choice to time our kernels with. */
typedef struct pd_cpu_choice_plan {
  const pd_graph *graph;
  int threads;      /* workers (oneDNN slots) */
  int chunk;        /* most images one worker gets */
  const int *split; /* per branch: layers [0, split) run image by image */
  const pd_conv3x3_kernels *wino;
  float *const (*wino_u)[PD_MAX_LAYERS]; /* [list][layer]: pd_conv3x3 weights or NULL */
  size_t col_cap;                        /* im2col block floats */
  pd_precision precision;                /* fp32, or bf16 (also timed where oneDNN has it) */
} pd_cpu_choice_plan;

int pd_cpu_choice_create(const pd_cpu_choice_plan *plan, pd_cpu_kernels mode, pd_cpu_choice **out,
                         pd_error *err);
void pd_cpu_choice_destroy(pd_cpu_choice *c);

/* Layers timed, run through oneDNN, and of those in bf16. */
void pd_cpu_choice_counts(const pd_cpu_choice *c, int *timed, int *onednn, int *bf16);

/* One line: every conv and dense layer with what runs it ("a.1:ours
 * a.4:onednn a.5:onednn-bf16 ..."), cut at len. */
void pd_cpu_choice_kernels(const pd_cpu_choice *c, char *buf, size_t len);

/* Whether layer `layer` of list `list` runs through oneDNN. */
int pd_cpu_choice_onednn(const pd_cpu_choice *c, int list, int layer);

/* Runs that layer through oneDNN on worker `worker`: a convolution on one
 * image's views (rows ignored), a dense layer on `rows` rows (images x
 * views). */
int pd_cpu_choice_run(pd_cpu_choice *c, int list, int layer, int worker, int rows, const float *in,
                      float *out, pd_error *err);

/* The threads oneDNN's ops use when run from the calling thread: 1 in a
 * worker of a batch split by images, every worker's for a shared image. */
void pd_cpu_choice_thread_init(int threads);

/* The record: one line per timed layer, then a summary; NUL-terminated,
 * cut at len. */
void pd_cpu_choice_describe(const pd_cpu_choice *c, char *buf, size_t len);

/* "OpenBLAS 0.3.21 core Zen (...)": the BLAS the im2col and dense layers
 * use, and the kernels OpenBLAS's CPU detection picked. */
void pd_cpu_blas_describe(char *buf, size_t len);

#endif
