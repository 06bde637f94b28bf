/* pd_eval: the metric definitions are in pd_eval.h. Labels are looked up
 * through a sorted index (binary search); unknown labels in a small list in
 * order of first appearance. Sums are in double, counts in int64. */
#include "pd_eval.h"

#include "pd_csv.h"
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct unknown_label {
  char *label;
  int64_t count;
} unknown_label;

struct pd_eval {
  int n_classes;
  char **labels;
  int *sorted;        /* class indices in label order */
  int64_t *confusion; /* [true][predicted] */
  int64_t n, top1, top5;
  double log_loss_sum;
  int n_unknown_labels, cap_unknown;
  int64_t n_unknown;
  unknown_label *unknown;
};

static int cmp_sorted(const void *a, const void *b, void *ctx) {
  char **labels = ctx;
  return strcmp(labels[*(const int *)a], labels[*(const int *)b]);
}

void pd_eval_free(pd_eval *ev) {
  if (!ev) return;
  for (int c = 0; ev->labels && c < ev->n_classes; c++)
    free(ev->labels[c]);
  for (int i = 0; i < ev->n_unknown_labels; i++)
    free(ev->unknown[i].label);
  free(ev->unknown);
  free(ev->labels);
  free(ev->sorted);
  free(ev->confusion);
  free(ev);
}

int pd_eval_create(int n_classes, const char *const *labels, pd_eval **out, pd_error *err) {
  *out = NULL;
  if (n_classes < 1 || n_classes > 100000 || !labels)
    return pd_error_set(err, PD_EINVAL, "eval: %d classes (1..100000 allowed)", n_classes);
  pd_eval *ev = calloc(1, sizeof *ev);
  if (!ev) return pd_error_set(err, PD_ENOMEM, "eval: out of memory");
  ev->n_classes = n_classes;
  ev->labels = calloc((size_t)n_classes, sizeof *ev->labels);
  ev->sorted = malloc((size_t)n_classes * sizeof *ev->sorted);
  ev->confusion = calloc((size_t)n_classes * (size_t)n_classes, sizeof *ev->confusion);
  if (!ev->labels || !ev->sorted || !ev->confusion) {
    pd_eval_free(ev);
    return pd_error_set(err, PD_ENOMEM, "eval: out of memory for %d classes", n_classes);
  }
  for (int c = 0; c < n_classes; c++) {
    ev->labels[c] = strdup(labels[c] ? labels[c] : "");
    if (!ev->labels[c]) {
      pd_eval_free(ev);
      return pd_error_set(err, PD_ENOMEM, "eval: out of memory");
    }
    ev->sorted[c] = c;
  }
  qsort_r(ev->sorted, (size_t)n_classes, sizeof *ev->sorted, cmp_sorted, ev->labels);
  for (int i = 1; i < n_classes; i++)
    if (!strcmp(ev->labels[ev->sorted[i - 1]], ev->labels[ev->sorted[i]])) {
      int rc =
          pd_error_set(err, PD_EINVAL, "eval: class label '%s' appears twice (classes %d and %d)",
                       ev->labels[ev->sorted[i]], ev->sorted[i - 1], ev->sorted[i]);
      pd_eval_free(ev);
      return rc;
    }
  *out = ev;
  return PD_OK;
}

int pd_eval_n_classes(const pd_eval *ev) {
  return ev ? ev->n_classes : 0;
}

const char *pd_eval_label(const pd_eval *ev, int c) {
  return ev && c >= 0 && c < ev->n_classes ? ev->labels[c] : NULL;
}

int pd_eval_class_index(const pd_eval *ev, const char *label) {
  if (!ev || !label) return -1;
  int lo = 0, hi = ev->n_classes - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(label, ev->labels[ev->sorted[mid]]);
    if (c == 0) return ev->sorted[mid];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return -1;
}

int pd_eval_add(pd_eval *ev, const float *probs, int y, pd_error *err) {
  if (!ev || !probs) return pd_error_set(err, PD_EINVAL, "eval: null argument");
  const int nc = ev->n_classes;
  if (y < 0 || y >= nc)
    return pd_error_set(err, PD_EINVAL, "eval: true class %d out of range 0..%d", y, nc - 1);
  int best = 0;
  double clip_sum = 0.0;
  for (int c = 0; c < nc; c++) {
    float p = probs[c];
    if (!(p >= 0.0f) || !isfinite(p))
      return pd_error_set(err, PD_EINVAL, "eval: probability of class %d ('%s') is %g", c,
                          ev->labels[c], (double)p);
    if (p > probs[best]) best = c;
    clip_sum += fmin(fmax((double)p, PD_EVAL_CLIP), 1.0 - PD_EVAL_CLIP);
  }
  const float py = probs[y];
  int rank = 0;
  for (int c = 0; c < nc; c++) {
    const float pc = probs[c];
    rank += pc > py || (pc == py && c < y); /* ties: the lower index ranks first */
  }
  double qy = fmin(fmax((double)py, PD_EVAL_CLIP), 1.0 - PD_EVAL_CLIP) / clip_sum;
  ev->n++;
  ev->top1 += best == y;
  ev->top5 += rank < PD_EVAL_TOPK;
  ev->log_loss_sum += -log(qy);
  ev->confusion[(size_t)y * nc + (size_t)best]++;
  return PD_OK;
}

int pd_eval_add_unknown(pd_eval *ev, const char *label, pd_error *err) {
  if (!ev || !label) return pd_error_set(err, PD_EINVAL, "eval: null argument");
  for (int i = 0; i < ev->n_unknown_labels; i++)
    if (!strcmp(ev->unknown[i].label, label)) {
      ev->unknown[i].count++;
      ev->n_unknown++;
      return PD_OK;
    }
  if (ev->n_unknown_labels == ev->cap_unknown) {
    int cap = ev->cap_unknown ? 2 * ev->cap_unknown : 8;
    unknown_label *u = realloc(ev->unknown, (size_t)cap * sizeof *u);
    if (!u) return pd_error_set(err, PD_ENOMEM, "eval: out of memory");
    ev->unknown = u;
    ev->cap_unknown = cap;
  }
  char *copy = strdup(label);
  if (!copy) return pd_error_set(err, PD_ENOMEM, "eval: out of memory");
  ev->unknown[ev->n_unknown_labels++] = (unknown_label){copy, 1};
  ev->n_unknown++;
  return PD_OK;
}

int pd_eval_add_label(pd_eval *ev, const float *probs, const char *label, int *known,
                      pd_error *err) {
  int y = pd_eval_class_index(ev, label);
  if (known) *known = y >= 0;
  if (y < 0) return pd_eval_add_unknown(ev, label, err);
  return pd_eval_add(ev, probs, y, err);
}

void pd_eval_class(const pd_eval *ev, int c, pd_eval_class_stats *out) {
  memset(out, 0, sizeof *out);
  if (!ev || c < 0 || c >= ev->n_classes) return;
  const int nc = ev->n_classes;
  for (int k = 0; k < nc; k++) {
    out->support += ev->confusion[(size_t)c * nc + k];
    out->predicted += ev->confusion[(size_t)k * nc + c];
  }
  out->tp = ev->confusion[(size_t)c * nc + c];
  out->precision = out->predicted ? (double)out->tp / (double)out->predicted : 0.0;
  out->recall = out->support ? (double)out->tp / (double)out->support : 0.0;
  double pr = out->precision + out->recall;
  out->f1 = pr > 0 ? 2.0 * out->precision * out->recall / pr : 0.0;
}

void pd_eval_summarize(const pd_eval *ev, pd_eval_summary *s) {
  memset(s, 0, sizeof *s);
  if (!ev) return;
  s->n = ev->n;
  s->n_unknown = ev->n_unknown;
  s->n_unknown_labels = ev->n_unknown_labels;
  if (ev->n == 0) return;
  s->accuracy = (double)ev->top1 / (double)ev->n;
  s->top5 = (double)ev->top5 / (double)ev->n;
  s->log_loss = ev->log_loss_sum / (double)ev->n;
  double f1_sum = 0.0;
  for (int c = 0; c < ev->n_classes; c++) {
    pd_eval_class_stats cs;
    pd_eval_class(ev, c, &cs);
    if (cs.support == 0) continue;
    s->n_present++;
    f1_sum += cs.f1;
    s->n_f1_over_half += cs.f1 > 0.5;
  }
  if (s->n_present) {
    s->macro_f1 = f1_sum / s->n_present;
    s->f1a = (double)s->n_f1_over_half / s->n_present;
  }
}

int64_t pd_eval_confusion(const pd_eval *ev, int t, int p) {
  if (!ev || t < 0 || p < 0 || t >= ev->n_classes || p >= ev->n_classes) return 0;
  return ev->confusion[(size_t)t * ev->n_classes + p];
}

const char *pd_eval_unknown_label(const pd_eval *ev, int i, int64_t *count) {
  if (!ev || i < 0 || i >= ev->n_unknown_labels) return NULL;
  if (count) *count = ev->unknown[i].count;
  return ev->unknown[i].label;
}

/* ---- output ---- */

int pd_eval_write_confusion_csv(const pd_eval *ev, FILE *f) {
  const int nc = ev->n_classes;
  fputs("true\\predicted", f);
  for (int c = 0; c < nc; c++) {
    fputc(',', f);
    pd_csv_field(f, ev->labels[c]);
  }
  fputc('\n', f);
  for (int t = 0; t < nc; t++) {
    pd_csv_field(f, ev->labels[t]);
    for (int p = 0; p < nc; p++)
      fprintf(f, ",%lld", (long long)ev->confusion[(size_t)t * nc + p]);
    fputc('\n', f);
  }
  return ferror(f) ? -1 : 0;
}

int pd_eval_save_confusion_csv(const pd_eval *ev, const char *path, pd_error *err) {
  FILE *f = fopen(path, "w");
  if (!f) return pd_error_set(err, PD_EIO, "cannot create %s: %s", path, strerror(errno));
  int bad = pd_eval_write_confusion_csv(ev, f);
  if (fclose(f) != 0 || bad)
    return pd_error_set(err, PD_EIO, "cannot write %s: %s", path, strerror(errno));
  return PD_OK;
}

void pd_eval_print_report(const pd_eval *ev, FILE *f) {
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  fprintf(f, "scored %lld images over %d classes present (model has %d)\n", (long long)s.n,
          s.n_present, ev->n_classes);
  fprintf(f,
          "accuracy %.4f  top-5 %.4f  log loss %.4f  macro F1 %.4f  F1a %.4f (%d of %d "
          "classes with F1 > 0.5)\n",
          s.accuracy, s.top5, s.log_loss, s.macro_f1, s.f1a, s.n_f1_over_half, s.n_present);
  if (s.n_unknown) {
    fprintf(f, "%lld images with %d labels the model does not know (not scored):",
            (long long)s.n_unknown, s.n_unknown_labels);
    for (int i = 0; i < ev->n_unknown_labels; i++)
      fprintf(f, "%s %s (%lld)", i ? "," : "", ev->unknown[i].label,
              (long long)ev->unknown[i].count);
    fputc('\n', f);
  }
  fprintf(f, "%-48s %7s %9s %9s %9s %9s\n", "class", "support", "predicted", "precision", "recall",
          "F1");
  for (int c = 0; c < ev->n_classes; c++) {
    pd_eval_class_stats cs;
    pd_eval_class(ev, c, &cs);
    fprintf(f, "%-48s %7lld %9lld %9.4f %9.4f %9.4f\n", ev->labels[c], (long long)cs.support,
            (long long)cs.predicted, cs.precision, cs.recall, cs.f1);
  }
}
