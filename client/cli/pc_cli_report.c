/* pc_cli_report: evaluate's report (see pc_cli_report.h). */
#include "pc_cli_report.h"

void pc_cli_report_print(const pd_eval *ev, bool all_classes, FILE *f) {
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  const int n_classes = pd_eval_n_classes(ev);
  fprintf(f, "scored %lld images over %d classes present (model has %d)\n", (long long)s.n,
          s.n_present, n_classes);
  fprintf(f,
          "accuracy %.4f  top-5 %.4f  log loss %.4f  macro F1 %.4f  F1a %.4f (%d of %d "
          "classes with F1 > 0.5)\n",
          s.accuracy, s.top5, s.log_loss, s.macro_f1, s.f1a, s.n_f1_over_half, s.n_present);
  if (s.n_unknown) {
    fprintf(f, "%lld images with %d labels the model does not know (not scored):",
            (long long)s.n_unknown, s.n_unknown_labels);
    for (int i = 0; i < s.n_unknown_labels; i++) {
      int64_t count = 0;
      const char *label = pd_eval_unknown_label(ev, i, &count);
      fprintf(f, "%s %s (%lld)", i ? "," : "", label, (long long)count);
    }
    fputc('\n', f);
  }
  fprintf(f, "%-48s %7s %9s %9s %9s %9s\n", "class", "support", "predicted", "precision", "recall",
          "F1");
  int hidden = 0;
  for (int c = 0; c < n_classes; c++) {
    pd_eval_class_stats cs;
    pd_eval_class(ev, c, &cs);
    if (!all_classes && cs.support == 0 && cs.predicted == 0) {
      hidden++;
      continue;
    }
    fprintf(f, "%-48s %7lld %9lld %9.4f %9.4f %9.4f\n", pd_eval_label(ev, c), (long long)cs.support,
            (long long)cs.predicted, cs.precision, cs.recall, cs.f1);
  }
  if (hidden)
    fprintf(f,
            "(%d class%s of the model neither in the data nor predicted; --all-classes lists "
            "them)\n",
            hidden, hidden == 1 ? "" : "es");
}
