/* pd_ensemble: a model folder as the daemon and the tools load it: either a
 * single model folder, or an ensemble folder whose model.yaml lists member
 * model folders (models/FORMAT.md "Ensembles"). Owns the member pd_models,
 * their normalised weights and the maps of their class orders onto member
 * 0's. Running one (plans, inputs, averaging) is pd_servable.h.
 *
 * One image's answer is  sum over members m of  w_m * mean over its n TTA
 * slots of p_m(slot)  : the arithmetic mean (see pd_tta.h for why), with the
 * member weights normalised to sum 1. All members must have the same class
 * labels; the order may differ (answers use member 0's order). */
#ifndef PD_ENSEMBLE_H
#define PD_ENSEMBLE_H

#include <stdbool.h>
#include <stdint.h>

#include "pd_error.h"
#include "pd_model.h"

#define PD_MAX_MEMBERS 16

typedef struct pd_ensemble {
  char dir[4096];
  char name[PD_NAME_LEN];
  char version[PD_NAME_LEN];
  bool is_ensemble; /* false: one plain model folder, wrapped as one member */
  int n_classes;
  char **classes; /* member 0's labels (borrowed from members[0]) */
  int n_members;
  pd_model *members[PD_MAX_MEMBERS];     /* owned */
  char member_dir[PD_MAX_MEMBERS][4096]; /* as resolved (ensemble dir + relative path) */
  double weights[PD_MAX_MEMBERS];        /* normalised to sum 1 */
  int *perm[PD_MAX_MEMBERS];    /* member class c is answer class perm[m][c]; NULL = same order */
  int tta_count;                /* default transforms per image, >= 1 */
  pd_serving serving;           /* serving: of the folder's model.yaml (pd_model.h) */
  pd_segmentation segmentation; /* segmentation: of the folder's model.yaml (pd_model.h) */
  /* thresholds: and lineage: of the folder's model.yaml (pd_model.h), per
   * answer class; NULL: not given. An ensemble's own (owned), never its
   * members'; a plain folder's are its model's (borrowed). */
  float *thresholds;
  char **lineage;
} pd_ensemble;

/* Loads a model folder: an ensemble folder (model.yaml with `ensemble:`) or
 * a plain model folder (then one member with weight 1). Errors name the
 * ensemble's model.yaml, the member (index and folder) and what differs. */
int pd_ensemble_load(const char *dir, pd_ensemble **out, pd_error *err);

/* Builds an ensemble from loaded models (tests, tools). On success it owns
 * models[0..n-1]; on failure it frees none of them. weights may be NULL
 * (equal); otherwise each must be finite and > 0. `name` may be NULL
 * (then member 0's). tta_count 0 = the largest member default. */
int pd_ensemble_from_models(pd_model *const *models, const double *weights, int n, const char *name,
                            int tta_count, pd_ensemble **out, pd_error *err);

void pd_ensemble_free(pd_ensemble *e);

/* "member 1 '<dir>' (model <name>)" into buf, for messages. */
const char *pd_ensemble_member_desc(const pd_ensemble *e, int i, char *buf, size_t cap);

/* Index of `label` in the answer's classes, or -1. */
int pd_ensemble_class_index(const pd_ensemble *e, const char *label);

#endif
