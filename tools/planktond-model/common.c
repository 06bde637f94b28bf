/* planktond-model: the helpers the commands share (pdm.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd_precision_pick.h"
#include "pd_tta.h"
#include "pdm.h"

void pdm_usage(FILE *f) {
  fputs("usage: planktond-model check DIR\n"
        "       planktond-model run DIR [--threads N] [--batch N] [--precision P] [--probs FILE]\n"
        "                               [--dump-inputs FILE] [--dump-gray FILE] IMAGE...\n"
        "       planktond-model run DIR --inputs FILE --count N [--probs FILE]\n"
        "       planktond-model eval DIR DATA_ROOT [--split FILE [--subset NAME]] [--tta N]\n"
        "                            [--batch N] [--threads N] [--confusion FILE.csv] [--limit N]\n"
        "                            [--precision P]\n"
        "       planktond-model bench DIR [--batch N] [--threads N] [--iters N] [--warmup N]\n"
        "                            [--precision P] (not fp32: fp32 timed too, and the ratio)\n"
        "       planktond-model precision-check DIR DATA_ROOT [--split FILE [--subset NAME]]\n"
        "                            [--limit N] [--batch N] [--threads N] [--write]\n"
        "       planktond-model fit-thresholds DIR DATA_ROOT --target-precision Q\n"
        "                            [--split FILE [--subset NAME]] [--tta N] [--limit N]\n"
        "                            [--batch N] [--threads N] [--write]\n"
        "  P: auto, fp32 (default), bf16 or int8; Q: a precision in (0, 1]\n"
        "       planktond-model sgemm [--threads N] [--size N]\n",
        f);
}

double pdm_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) {
    fprintf(stderr, "planktond-model: %s: expected an integer in %d..%d, got '%s'\n", flag, lo, hi,
            s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* need_dir: 0 = no positional, 1 = DIR, 2 = DIR DATA_ROOT (and no images). */

int pdm_parse_options(int argc, char **argv, int need_dir, pdm_options *o) {
  *o = (pdm_options){.threads = 0, .batch = 64, .iters = 10, .warmup = 2, .size = 2048, .tta = -1};
  int i = 2;
  for (int k = 0; k < need_dir; k++) {
    if (argc < 3 + k || argv[2 + k][0] == '-') {
      pdm_usage(stderr);
      return -1;
    }
    if (k == 0)
      o->model_dir = argv[2];
    else
      o->data_root = argv[3];
    i = 3 + k;
  }
  while (i < argc) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *ip = NULL, lo = 0, hi = 0;
    const char **sp = NULL;
    if (!strcmp(a, "--threads"))
      ip = &o->threads, lo = 0, hi = 256;
    else if (!strcmp(a, "--batch"))
      ip = &o->batch, lo = 1, hi = 65536;
    else if (!strcmp(a, "--iters"))
      ip = &o->iters, lo = 1, hi = 1000000;
    else if (!strcmp(a, "--warmup"))
      ip = &o->warmup, lo = 0, hi = 1000000;
    else if (!strcmp(a, "--count"))
      ip = &o->count, lo = 1, hi = 100000000;
    else if (!strcmp(a, "--size"))
      ip = &o->size, lo = 16, hi = 16384;
    else if (!strcmp(a, "--tta"))
      ip = &o->tta, lo = 0, hi = PD_TTA_MAX;
    else if (!strcmp(a, "--limit"))
      ip = &o->limit, lo = 1, hi = 100000000;
    else if (!strcmp(a, "--precision"))
      sp = &o->precision;
    else if (!strcmp(a, "--write")) {
      o->write = 1;
      i++;
      continue;
    } else if (!strcmp(a, "--split"))
      sp = &o->split;
    else if (!strcmp(a, "--subset"))
      sp = &o->subset;
    else if (!strcmp(a, "--target-precision"))
      sp = &o->target;
    else if (!strcmp(a, "--confusion"))
      sp = &o->confusion;
    else if (!strcmp(a, "--probs"))
      sp = &o->probs;
    else if (!strcmp(a, "--dump-inputs"))
      sp = &o->dump_inputs;
    else if (!strcmp(a, "--dump-gray"))
      sp = &o->dump_gray;
    else if (!strcmp(a, "--inputs"))
      sp = &o->inputs;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "planktond-model: unknown option '%s'\n", a);
      return -1;
    } else if (need_dir == 2) {
      fprintf(stderr, "planktond-model: unexpected argument '%s'\n", a);
      return -1;
    } else {
      o->images = argv + i;
      o->n_images = argc - i;
      break;
    }
    if (!v) {
      fprintf(stderr, "planktond-model: %s needs a value\n", a);
      return -1;
    }
    if (ip && parse_int(a, v, lo, hi, ip) != 0) return -1;
    if (sp) *sp = v;
    i += 2;
  }
  return 0;
}

pd_ensemble *pdm_load_or_report(const char *dir) {
  pd_ensemble *e = NULL;
  pd_error err = {0};
  if (pd_ensemble_load(dir, &e, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return NULL;
  }
  return e;
}

void pdm_inputs_free(pdm_inputs *in) {
  for (int b = 0; b < PD_MAX_BRANCHES; b++)
    free(in->branch[b]);
}

int pdm_inputs_alloc(const pd_model *m, int n, pdm_inputs *in) {
  memset(in, 0, sizeof *in);
  in->n = n;
  for (int b = 0; b < m->n_branches; b++) {
    in->branch[b] = calloc((size_t)n * pd_model_branch_input_len(m, b), sizeof(float));
    if (!in->branch[b]) return -1;
  }
  return 0;
}

/* Runs all n images through the plan in batches of at most max_batch. */
int pdm_run_all(const pd_model *m, pd_plan *plan, int max_batch, const pdm_inputs *in,
                float *probs) {
  for (int first = 0; first < in->n; first += max_batch) {
    pd_batch batch = {.n = in->n - first < max_batch ? in->n - first : max_batch};
    for (int b = 0; b < m->n_branches; b++)
      batch.branch[b] = in->branch[b] + (size_t)first * pd_model_branch_input_len(m, b);
    pd_error err = {0};
    if (pd_plan_run(plan, &batch, probs + (size_t)first * m->n_classes, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      return -1;
    }
  }
  return 0;
}

int pdm_resolve_precision(const pdm_options *o, pd_precision *out) {
  pd_error err = {0};
  pd_precision asked = PD_PRECISION_FP32;
  *out = asked;
  if (o->precision && pd_precision_parse(o->precision, &asked, &err) != PD_OK) {
    fprintf(stderr, "planktond-model: --precision: %s\n", err.msg);
    return -1;
  }
  *out = asked;
  if (asked != PD_PRECISION_AUTO) {
    /* A precision the CPU backend refuses is refused before anything runs. */
    pd_backend *be = NULL;
    pd_cpu_options opt = {.threads = 1, .precision = asked};
    if (pd_cpu_backend_create(&opt, &be, &err) != PD_OK) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      return -1;
    }
    pd_backend_destroy(be);
    return 0;
  }
  pd_ensemble *e = pdm_load_or_report(o->model_dir);
  if (!e) return -1;
  char why[640];
  int rc = pd_precision_pick(e, asked, out, why, sizeof why, &err);
  pd_ensemble_free(e);
  if (rc != PD_OK) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  fprintf(stderr, "precision %s\n", why);
  return 0;
}

int pdm_make_engine(const pd_model *m, int threads, int profile, int batch, pd_precision prec,
                    pd_backend **be, pd_plan **plan) {
  pd_error err = {0};
  pd_cpu_options opt = {.threads = threads, .profile = profile, .precision = prec};
  if (pd_cpu_backend_create(&opt, be, &err) != 0 ||
      pd_plan_create(*be, &m->graph, batch, plan, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  return 0;
}

int pdm_make_servable(const pd_ensemble *e, int threads, int batch, pd_precision prec,
                      pd_backend **be, pd_servable **plan) {
  pd_error err = {0};
  pd_cpu_options opt = {.threads = threads, .precision = prec};
  if (pd_cpu_backend_create(&opt, be, &err) != 0 ||
      pd_servable_create(*be, e, batch, plan, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  return 0;
}

int pdm_resolve_tta(const pdm_options *o, const pd_ensemble *e) {
  if (o->tta < 0) return e->tta_count;
  return o->tta < 1 ? 1 : o->tta;
}
