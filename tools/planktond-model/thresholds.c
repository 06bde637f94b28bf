/* planktond-model fit-thresholds: per-class probability thresholds fitted
 * on a labelled split (models/FORMAT.md "Thresholds") with the engine's own
 * probabilities (eval's run, pdm_eval_run). For each class, among the crops
 * whose top class it is, the lowest cut t such that the crops with
 * p >= t are at least the target precision (the most kept that reach it);
 * 0 (no threshold) when all of them already reach it; 1 when no cut does
 * (nearly everything it predicts is then unclassified). --write puts the
 * block into DIR/model.yaml in place of any earlier one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_file.h"
#include "pdm.h"

typedef struct crop {
  float p; /* the top class's probability */
  int label;
} crop;

typedef struct fit_ctx {
  const pdm_options *o;
  double target;
  int n_classes;
  crop **by_top; /* per top class, its crops */
  int *n, *cap;
  long scored;
} fit_ctx;

static int on_crop(void *arg, const float *probs, int label) {
  fit_ctx *f = arg;
  int top = 0; /* the first of equal maxima, as the daemon's top list */
  for (int c = 1; c < f->n_classes; c++)
    if (probs[c] > probs[top]) top = c;
  if (f->n[top] == f->cap[top]) {
    int cap = f->cap[top] ? 2 * f->cap[top] : 16;
    crop *grown = realloc(f->by_top[top], (size_t)cap * sizeof *grown);
    if (!grown) return -1;
    f->by_top[top] = grown;
    f->cap[top] = cap;
  }
  f->by_top[top][f->n[top]++] = (crop){probs[top], label};
  f->scored++;
  return 0;
}

static int by_p_desc(const void *a, const void *b) {
  const crop *x = a, *y = b;
  return (x->p < y->p) - (x->p > y->p);
}

/* The class's cut; *kept and *tp of its crops at p >= t. */
static float fit_one(crop *cs, int n, int cls, double target, int *kept, int *tp) {
  qsort(cs, (size_t)n, sizeof *cs, by_p_desc);
  int best = -1, best_tp = 0, hits = 0;
  for (int i = 0; i < n; i++) {
    hits += cs[i].label == cls;
    if (i + 1 < n && cs[i + 1].p == cs[i].p) continue; /* a cut keeps a whole tie */
    if ((double)hits >= target * (double)(i + 1)) best = i, best_tp = hits;
  }
  *kept = best + 1;
  *tp = best_tp;
  if (best == n - 1) return 0.0f; /* every one reaches it: no threshold */
  return best < 0 ? 1.0f : cs[best].p;
}

/* model.yaml without its `thresholds:` block, then the new one. */
static int write_block(const char *dir, const char *const *classes, const float *t, int n,
                       double target, pd_error *err) {
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/model.yaml", dir);
  snprintf(tmp, sizeof tmp, "%s.fit-thresholds.tmp", path);
  unsigned char *text = NULL;
  size_t len = 0;
  PD_TRY(pd_file_read(path, 1 << 24, &text, &len, err));
  FILE *f = fopen(tmp, "w");
  if (!f) {
    free(text);
    return pd_error_set(err, PD_EIO, "cannot write %s", tmp);
  }
  int in_block = 0;
  for (char *line = (char *)text; *line;) {
    char *nl = strchr(line, '\n');
    size_t k = nl ? (size_t)(nl - line) + 1 : strlen(line);
    if (!strncmp(line, "thresholds:", 11))
      in_block = 1;
    else if (in_block && line[0] != ' ' && line[0] != '\n' && line[0] != '#')
      in_block = 0;
    if (!in_block) fwrite(line, 1, k, f);
    line += k;
  }
  if (len && text[len - 1] != '\n') fputc('\n', f);
  free(text);
  fprintf(f, "thresholds:   # planktond-model fit-thresholds --target-precision %g (FORMAT.md)\n",
          target);
  for (int c = 0; c < n; c++)
    if (t[c] > 0) fprintf(f, "  %s: %.9g\n", classes[c], (double)t[c]);
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return pd_error_set(err, PD_EIO, "cannot replace %s", path);
  }
  return PD_OK;
}

static int on_done(void *arg, const pd_ensemble *e) {
  fit_ctx *f = arg;
  float *t = calloc((size_t)f->n_classes, sizeof *t);
  if (!t) return -1;
  long kept_all = 0, tp_all = 0;
  int cut = 0, unreachable = 0, unpredicted = 0;
  printf("thresholds for precision %g (per class: crops it is the top class of, threshold, "
         "kept, precision of those kept):\n",
         f->target);
  for (int c = 0; c < f->n_classes; c++) {
    int kept = 0, tp = 0;
    if (!f->n[c]) {
      unpredicted++;
      continue;
    }
    t[c] = fit_one(f->by_top[c], f->n[c], c, f->target, &kept, &tp);
    cut += t[c] > 0 && kept > 0;
    unreachable += kept == 0;
    kept_all += kept;
    tp_all += tp;
    if (kept)
      printf("  %-32s %6d  t=%-11.9g kept %6d  precision %.4f\n", e->classes[c], f->n[c],
             (double)t[c], kept, (double)tp / kept);
    else
      printf("  %-32s %6d  t=%-11.9g kept %6d  (no cut reaches it)\n", e->classes[c], f->n[c],
             (double)t[c], kept);
  }
  printf("fit-thresholds: target=%g scored=%ld thresholded=%d unreachable=%d unpredicted=%d "
         "kept=%ld precision_kept=%.6f\n",
         f->target, f->scored, cut, unreachable, unpredicted, kept_all,
         kept_all ? (double)tp_all / (double)kept_all : 0.0);
  int rc = 0;
  if (f->o->write) {
    pd_error err = {0};
    if (write_block(e->members[0]->dir, (const char *const *)e->classes, t, f->n_classes, f->target,
                    &err) != PD_OK) {
      fprintf(stderr, "planktond-model fit-thresholds: %s\n", err.msg);
      rc = -1;
    } else {
      printf("written to %s/model.yaml\n", e->members[0]->dir);
    }
  }
  free(t);
  return rc;
}

int pdm_cmd_fit_thresholds(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 2, &o) != 0) return 2;
  char *end = NULL;
  double target = o.target ? strtod(o.target, &end) : 0;
  if (!o.target || end == o.target || *end || !(target > 0 && target <= 1)) {
    fprintf(stderr,
            "planktond-model fit-thresholds: --target-precision: expected a number in (0, 1], "
            "got '%s'\n",
            o.target ? o.target : "(not given)");
    return 2;
  }
  if (o.subset && !o.split) {
    fprintf(stderr, "planktond-model fit-thresholds: --subset needs --split FILE\n");
    return 2;
  }
  pd_ensemble *probe = pdm_load_or_report(o.model_dir);
  if (!probe) return 1;
  int n_classes = probe->n_classes;
  bool ensemble = probe->is_ensemble;
  pd_ensemble_free(probe);
  if (o.write && ensemble) {
    fprintf(stderr,
            "planktond-model fit-thresholds: --write writes one model folder's "
            "model.yaml; %s is an ensemble\n",
            o.model_dir);
    return 2;
  }
  fit_ctx f = {.o = &o, .target = target, .n_classes = n_classes};
  /* an array of pointers: sizeof *f.by_top is meant */
  // NOLINTNEXTLINE(bugprone-sizeof-expression)
  f.by_top = calloc((size_t)n_classes, sizeof *f.by_top);
  f.n = calloc((size_t)n_classes, sizeof *f.n);
  f.cap = calloc((size_t)n_classes, sizeof *f.cap);
  int status = 1;
  if (f.by_top && f.n && f.cap) {
    pdm_eval_hook hook = {.on_crop = on_crop, .on_done = on_done, .ctx = &f};
    status = pdm_eval_run(&o, &hook);
  } else {
    fprintf(stderr, "planktond-model fit-thresholds: out of memory\n");
  }
  for (int c = 0; f.by_top && c < n_classes; c++)
    free(f.by_top[c]);
  free(f.by_top);
  free(f.n);
  free(f.cap);
  return status;
}
