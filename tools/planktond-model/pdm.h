/* pdm: what the planktond-model commands share (tools/planktond-model/,
 * one file per command: check.c, run.c, eval.c, bench.c, precision.c,
 * thresholds.c;
 * main.c picks one).
 * Options parsing, loading a folder with its message, the CPU engine and the
 * servable the commands run on. Nothing here is a library: it prints to
 * stderr and returns exit codes. */
#ifndef PDM_H
#define PDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_ensemble.h"
#include "pd_model.h"
#include "pd_servable.h"

typedef struct pdm_options {
  const char *model_dir, *data_root;
  int threads, batch, iters, warmup, count, size;
  int tta, limit; /* tta: -1 = the model's default */
  const char *probs, *dump_inputs, *dump_gray, *inputs;
  const char *split, *subset, *confusion;
  const char *precision; /* --precision: auto, fp32 (default), bf16 or int8 */
  int write;             /* precision-check and fit-thresholds --write */
  const char *target;    /* fit-thresholds --target-precision */
  int n_images;
  char **images;
} pdm_options;

/* Per-branch input arrays for n images, laid out as in the file format. */
typedef struct pdm_inputs {
  int n;
  float *branch[PD_MAX_BRANCHES];
} pdm_inputs;

void pdm_inputs_free(pdm_inputs *in);
int pdm_inputs_alloc(const pd_model *m, int n, pdm_inputs *in);

/* The usage text into f. */
void pdm_usage(FILE *f);

double pdm_now_seconds(void);
/* argv[2] is DIR when need_dir; 0 or -1 (after the message). */
int pdm_parse_options(int argc, char **argv, int need_dir, pdm_options *o);
/* The folder loaded (model or ensemble), or NULL after printing why. */
pd_ensemble *pdm_load_or_report(const char *dir);
/* Runs all n images through the plan in batches of at most max_batch. */
int pdm_run_all(const pd_model *m, pd_plan *plan, int max_batch, const pdm_inputs *in,
                float *probs);
/* --precision for the folder o->model_dir (auto: pd_precision_pick, its
 * reason on stderr); 0 or -1 after the message. */
int pdm_resolve_precision(const pdm_options *o, pd_precision *out);
/* The CPU backend at precision prec and a plan of m for batch images. */
int pdm_make_engine(const pd_model *m, int threads, int profile, int batch, pd_precision prec,
                    pd_backend **be, pd_plan **plan);
/* The CPU backend at precision prec and a servable of e for batch slots. */
int pdm_make_servable(const pd_ensemble *e, int threads, int batch, pd_precision prec,
                      pd_backend **be, pd_servable **plan);
/* --tta N, or the folder's default. */
int pdm_resolve_tta(const pdm_options *o, const pd_ensemble *e);

/* What eval's run hands on: each scored crop's probabilities (the engine's,
 * as eval scores them) with its class index, then the loaded folder once
 * every crop is scored. Nonzero from either stops the run (status 1). */
typedef struct pdm_eval_hook {
  int (*on_crop)(void *ctx, const float *probs, int label);
  int (*on_done)(void *ctx, const pd_ensemble *e);
  void *ctx;
} pdm_eval_hook;
/* eval on o's dataset (its report on stdout), with hook (NULL: none). */
int pdm_eval_run(const pdm_options *o, const pdm_eval_hook *hook);

int pdm_cmd_check(int argc, char **argv);
int pdm_cmd_run(int argc, char **argv);
int pdm_cmd_eval(int argc, char **argv);
int pdm_cmd_bench(int argc, char **argv);
int pdm_cmd_sgemm(int argc, char **argv);
int pdm_cmd_precision_check(int argc, char **argv);
int pdm_cmd_fit_thresholds(int argc, char **argv);

#endif
