/* pc_cli_rollup: `classify --rollup LEVEL`: the model's classes grouped by
 * their lineage (ModelInfo's lineage, models/FORMAT.md "Lineage") cut to
 * LEVEL names, and each answer's probabilities summed into those groups.
 *  - LEVEL is a depth: 1 is the lineages' first name, 2 the first two, ...
 *    up to the deepest lineage; a class whose lineage is shallower than
 *    LEVEL stays a group of its own lineage (it knows nothing finer);
 *  - a group's label is its lineage cut to LEVEL ("Eukaryota>...>Copepoda"):
 *    unique, where a last name alone need not be;
 *  - the groups are in the order of their first class; each answer's view
 *    gets the groups' distribution (always) and its groups best first;
 *    thresholds are per class, so a rolled-up view is never unclassified.
 * Owns the groups' labels and the scratch of one answer's view. */
#ifndef PC_CLI_ROLLUP_H
#define PC_CLI_ROLLUP_H

#include "pc_cli_model.h"
#include "pc_cli_pipe.h"

typedef struct pc_cli_rollup {
  int level;
  size_t n_classes, n_groups;
  char **labels;    /* [n_groups] */
  size_t *group_of; /* [n_classes] */
  float *p;         /* [n_groups] one answer's sums */
  double *sum;      /* [n_groups] summed in double */
  pc_client_class_score *top;
  pc_client_response view;
} pc_cli_rollup;

/* The groups of model m at level (the --rollup argument). Usage errors
 * name a LEVEL that is not a depth of m's lineages, or m without lineage. */
int pc_cli_rollup_init(pc_cli_rollup *r, const pc_cli_model *m, const char *level,
                       pc_cli_error *err);
/* in with its answer rolled up: *out borrows r's scratch until the next call. */
int pc_cli_rollup_apply(pc_cli_rollup *r, const pc_cli_result *in, pc_cli_result *out,
                        pc_cli_error *err);
void pc_cli_rollup_free(pc_cli_rollup *r);

#endif
