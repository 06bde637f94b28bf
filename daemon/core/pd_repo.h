/* pd_repo: the models a daemon serves, by their name on the wire. Owns the
 * table of entries (name, version, folder, the loaded model or why it did
 * not load) and the choice of the default; finds the entry a request names
 * ("", "name" or "name:version": no version is the highest loaded). A
 * repository folder holds one folder per model, named as the model is on
 * the wire: either a model folder itself (model.yaml: one model or an
 * ensemble, models/FORMAT.md) or numeric version folders, each a model
 * folder. Loading is blocking (run it off the loop); the table is then
 * read-only and used on the loop thread. */
#ifndef PD_REPO_H
#define PD_REPO_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_repo_stamp.h"
#include "pd_request.h"
#include "pd_served.h"

#define PD_REPO_MAX 64

typedef struct pd_repo_entry {
  char name[64];    /* folder name (model.yaml's for a lone model.dir) */
  char version[64]; /* version folder name, or model.yaml's version */
  char dir[4096];
  pd_served *served;   /* a reference; NULL when the load failed */
  char error[640];     /* why it did not load */
  char warning[256];   /* a model.yaml name that differs from the folder's */
  bool latest;         /* the highest version of its name */
  pd_repo_stamp stamp; /* what it was loaded from */
  bool kept;           /* unchanged since the previous load: its model was kept */
  bool unloaded;       /* unloaded at run time (pd_repo_change); error says so */
} pd_repo_entry;

typedef struct pd_repo {
  int n;
  int default_entry; /* the latest version of the default name; -1: none */
  pd_repo_entry e[PD_REPO_MAX];
} pd_repo;

/* Lists and loads every model of folder `dir` with `base` (its dir
 * replaced). An entry of `previous` (a rescan; may be NULL) with the same
 * name, folder and stamp (pd_repo_stamp.h) is not loaded again: its model
 * is shared (kept set). A model that fails is kept with its error; the result fails
 * only when the folder cannot be read, it holds no model folder, more
 * versions than max_loaded, or the default cannot be chosen (default_name
 * "" with several names, or a name not there): the messages name the
 * choices. */
int pd_repo_load(const char *dir, const pd_served_options *base, const char *default_name,
                 int max_loaded, const pd_repo *previous, pd_repo **out, pd_error *err);
/* A repository of one loaded model (model.dir), named as its model.yaml;
 * takes the reference. */
int pd_repo_single(pd_served *s, pd_repo **out, pd_error *err);
void pd_repo_free(pd_repo *r);
/* On a reload: each entry of `fresh` that failed where `old` has the same
 * name and version loaded keeps serving the old load (a reference; its
 * error says so). Returns how many. */
int pd_repo_keep_failed(pd_repo *fresh, const pd_repo *old);

/* A run-time change of one model name (ModelControl, KServe's repository
 * extension): load a folder of repository `root` not loaded now (every
 * version in it), unload every version of a loaded name (kept as entries
 * with unloaded set and no model, so requests naming it get UNAVAILABLE
 * saying so), or reload one: its folder loaded again, ignoring the stamps.
 * Blocking (run it off the loop, while nothing else changes `now`). *out: a
 * new table sharing now's other models (references), to swap in whole; the
 * model's requests in flight finish on what they started on. Atomic: when a
 * version fails to load, nothing changes and the result says why. Errors
 * set *code (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED
 * past max_loaded, UNAVAILABLE for a load that failed) and err naming the
 * model, the folder or the setting; FAILED_PRECONDITION for an unload of
 * the default model. */
typedef enum pd_repo_op { PD_REPO_LOAD = 1, PD_REPO_UNLOAD = 2, PD_REPO_RELOAD = 3 } pd_repo_op;
int pd_repo_change(const pd_repo *now, const char *root, pd_repo_op op, const char *name,
                   const pd_served_options *base, int max_loaded, pd_repo **out, pd_status *code,
                   pd_error *err);
/* Whether some version of `name` is loaded (serving). */
bool pd_repo_loaded(const pd_repo *r, const char *name);
/* Model versions loaded (serving) in r. */
int pd_repo_count_loaded(const pd_repo *r);

/* The entry `model` names ("" the default, "name" the latest version,
 * "name:version"; version, if not NULL or "", overrides the one after a
 * colon), loaded or not; NULL with *code NOT_FOUND and a message naming
 * the models (or versions) there are. */
const pd_repo_entry *pd_repo_find(const pd_repo *r, const char *model, const char *version,
                                  pd_status *code, char *why, size_t cap);
/* The loaded model `model` names, or NULL with *code (NOT_FOUND, or
 * UNAVAILABLE with the load error) and why. */
pd_served *pd_repo_served(const pd_repo *r, const char *model, const char *version, pd_status *code,
                          char *why, size_t cap);
/* The default entry's model, or NULL. */
pd_served *pd_repo_default(const pd_repo *r);
/* "a, b, c": the distinct names. */
void pd_repo_names(const pd_repo *r, char *out, size_t cap);

#endif
