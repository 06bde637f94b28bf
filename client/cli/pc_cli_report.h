/* pc_cli_report: evaluate's report for people, from the metrics in a
 * pd_eval: the summary (scored images, accuracy, top-5, log loss, macro F1,
 * F1a), the labels the model does not know, and the per-class table
 * (support, predicted, precision, recall, F1) for the classes that occur
 * (in the data or among the predictions), or every class of the model.
 * Owns nothing. */
#ifndef PC_CLI_REPORT_H
#define PC_CLI_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "pd_eval.h"

void pc_cli_report_print(const pd_eval *ev, bool all_classes, FILE *f);

#endif
