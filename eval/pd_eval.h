/* pd_eval: classification metrics over a stream of (probability row, true
 * label) pairs, for `planktond-model eval` and the client's `evaluate`.
 * Owns a copy of the class labels, the confusion matrix, the running sums
 * and the list of true labels the model does not know. Knows nothing about
 * images, models or engines: feed it rows, read a summary.
 *
 * Definitions (n = scored samples, i.e. those whose label the model knows):
 *  - prediction: the class of largest probability, the lowest index on ties;
 *  - accuracy: share of n whose prediction is the true class;
 *  - top-5: share of n whose true class ranks < 5, ranking by probability
 *    (descending) and then by class index (so top-1 = accuracy);
 *  - log loss: mean over n of -ln q_y, where each row is first clipped to
 *    [1e-15, 1 - 1e-15] and then divided by its sum (the 2015 NDSB rule);
 *  - per class: tp, support (true count), predicted count, precision =
 *    tp / predicted (0 when nothing was predicted), recall = tp / support
 *    (0 without support), F1 = 2PR / (P + R) (0 when P + R = 0);
 *  - macro F1 and F1a over the classes present in the data (support > 0):
 *    F1a is the share of them with F1 > 0.5;
 *  - confusion[t][p]: count of true class t predicted as p.
 * Samples whose label is not a model class are not scored; they are counted
 * per label and reported. */
#ifndef PD_EVAL_H
#define PD_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "pd_error.h"

#define PD_EVAL_CLIP 1e-15
#define PD_EVAL_TOPK 5

typedef struct pd_eval pd_eval;

/* Copies the labels (n_classes >= 1, unique). */
int pd_eval_create(int n_classes, const char *const *labels, pd_eval **out, pd_error *err);
void pd_eval_free(pd_eval *ev);

int pd_eval_n_classes(const pd_eval *ev);
const char *pd_eval_label(const pd_eval *ev, int c);
/* Index of a label among the classes, or -1. */
int pd_eval_class_index(const pd_eval *ev, const char *label);

/* Adds one sample with its row probs[n_classes] and true class index
 * (0..n_classes-1). Rows need not be normalised; NaN or negative entries
 * are an error (PD_EINVAL) and add nothing. */
int pd_eval_add(pd_eval *ev, const float *probs, int true_class, pd_error *err);
/* As pd_eval_add, by label; a label the model does not know is counted as
 * unknown (returns PD_OK; *known, if given, says which). */
int pd_eval_add_label(pd_eval *ev, const float *probs, const char *label, int *known,
                      pd_error *err);
/* Counts a sample of an unknown label without a row (e.g. one not run). */
int pd_eval_add_unknown(pd_eval *ev, const char *label, pd_error *err);

typedef struct pd_eval_class_stats {
  int64_t tp, support, predicted;
  double precision, recall, f1;
} pd_eval_class_stats;

typedef struct pd_eval_summary {
  int64_t n;         /* scored samples */
  int64_t n_unknown; /* samples whose label the model does not know */
  int n_unknown_labels;
  double accuracy, top5, log_loss;
  double macro_f1, f1a;
  int n_present;      /* classes with support > 0 */
  int n_f1_over_half; /* of those, with F1 > 0.5 */
} pd_eval_summary;

/* All fields are 0 when nothing was scored. */
void pd_eval_summarize(const pd_eval *ev, pd_eval_summary *s);
void pd_eval_class(const pd_eval *ev, int c, pd_eval_class_stats *out);
int64_t pd_eval_confusion(const pd_eval *ev, int true_class, int predicted);

/* Unknown label i (0..n_unknown_labels-1), in order of first appearance. */
const char *pd_eval_unknown_label(const pd_eval *ev, int i, int64_t *count);

/* The confusion matrix as CSV: a header row `true\predicted,<label>,...`,
 * then one row per true class `<label>,<count>,...` (labels quoted when
 * they hold a comma, quote or line break). */
int pd_eval_write_confusion_csv(const pd_eval *ev, FILE *f);
int pd_eval_save_confusion_csv(const pd_eval *ev, const char *path, pd_error *err);

/* A human-readable report: the summary, the unknown labels and a per-class
 * table (label, support, predicted, precision, recall, F1). */
void pd_eval_print_report(const pd_eval *ev, FILE *f);

#endif
