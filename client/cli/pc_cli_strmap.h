/* pc_cli_strmap: a set of strings, each with a long value (open
 * addressing, FNV-1a), for the checks that need "seen before?" over a whole
 * run: EcoTaxa object ids and column names, --metadata keys. Owns copies of
 * its keys. */
#ifndef PC_CLI_STRMAP_H
#define PC_CLI_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pc_cli_strmap {
  char **keys;
  long *values;
  size_t n, cap;
} pc_cli_strmap;

/* Adds key with value: 1 added, 0 already there (*old, if given, is its
 * value; nothing changes), -1 out of memory. A zeroed map is empty. */
int pc_cli_strmap_add(pc_cli_strmap *m, const char *key, long value, long *old);
/* True when key is there (*value, if given, set). */
bool pc_cli_strmap_get(const pc_cli_strmap *m, const char *key, long *value);
void pc_cli_strmap_free(pc_cli_strmap *m);

#endif
