/* pd_repo_stamp: what a model folder was loaded from, to tell on a rescan
 * whether it changed: a hash of every file's relative path, size and
 * modification time under the folder (members in sub-folders included;
 * members outside it are not seen), and the load options (backend, device,
 * threads, precision, plan size). Owns nothing. */
#ifndef PD_REPO_STAMP_H
#define PD_REPO_STAMP_H

#include <stdbool.h>
#include <stdint.h>

#include "pd_served.h"

typedef struct pd_repo_stamp {
  uint64_t files; /* the hash; 0: the folder could not be read */
  char options[480];
} pd_repo_stamp;

void pd_repo_stamp_make(const char *dir, const pd_served_options *o, pd_repo_stamp *out);
/* Both read and equal. */
bool pd_repo_stamp_same(const pd_repo_stamp *a, const pd_repo_stamp *b);

#endif
