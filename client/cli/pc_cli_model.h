/* pc_cli_model: which model a run talks to and its class labels, asked of
 * the daemon once with a ModelInfo request (the named model, or the one the
 * daemon marks default). Owns copies of the name, version, labels and
 * lineages, and knows whether the model has thresholds. */
#ifndef PC_CLI_MODEL_H
#define PC_CLI_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "pc_cli.h"

typedef struct pc_cli_model {
  char *name, *version;
  size_t n_classes;
  char **labels;
  bool has_thresholds; /* the model reports crops below their threshold as unclassified */
  char **lineage;      /* per class "Root>...>Taxon"; NULL: the model carries none */
} pc_cli_model;

/* name NULL or "": the daemon's default model. PC_CLI_EXIT_USAGE when the
 * daemon does not serve that model (the message lists those it serves),
 * PC_CLI_EXIT_DAEMON when it cannot be asked. */
int pc_cli_model_fetch(pc_client *c, const char *name, pc_cli_model *out, pc_cli_error *err);
void pc_cli_model_free(pc_cli_model *m);

#endif
