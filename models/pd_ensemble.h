/* pd_ensemble: what the daemon and the tools serve as one "model": either a
 * single model folder, or an ensemble folder whose model.yaml lists member
 * model folders (models/FORMAT.md "Ensembles"). Owns the member pd_models;
 * a pd_ensemble_plan owns one backend plan per member and the scratch to
 * average their outputs; pd_ensemble_inputs owns input slots for every
 * member (members may have different branches and patch sizes, so each has
 * its own slots).
 *
 * One image's answer is  sum over members m of  w_m * mean over its n TTA
 * slots of p_m(slot)  : the arithmetic mean (see pd_tta.h for why), with the
 * member weights normalised to sum 1. All members must have the same class
 * labels; the order may differ (answers use member 0's order).
 *
 * Typical use (eval, daemon):
 *   pd_ensemble_load(dir, &e, err);
 *   pd_ensemble_plan_create(backend, e, max_batch, &plan, err);   // at start-up
 *   pd_ensemble_inputs_init(e, capacity, &in, err);
 *   per image i: pd_ensemble_preprocess(e, px, w, h, n_i, &in, first_slot_i);
 *   pd_ensemble_plan_run(plan, &in, n_images, counts, probs, err);
 * Preprocessing touches only `in` and the (immutable) models, so any thread
 * may fill one inputs buffer while the engine runs another. */
#ifndef PD_ENSEMBLE_H
#define PD_ENSEMBLE_H

#include <stdbool.h>
#include <stdint.h>

#include "pd_backend.h"
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
  int *perm[PD_MAX_MEMBERS]; /* member class c is answer class perm[m][c]; NULL = same order */
  int tta_count;             /* default transforms per image, >= 1 */
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

/* Index of `label` in the answer's classes, or -1. */
int pd_ensemble_class_index(const pd_ensemble *e, const char *label);

/* ---- input slots ---- */

typedef struct pd_ensemble_inputs {
  int capacity; /* slots per member */
  int n_members;
  float *slots[PD_MAX_MEMBERS][PD_MAX_BRANCHES]; /* capacity * branch input len floats */
} pd_ensemble_inputs;

int pd_ensemble_inputs_init(const pd_ensemble *e, int capacity, pd_ensemble_inputs *in,
                            pd_error *err);
void pd_ensemble_inputs_free(pd_ensemble_inputs *in);

/* Preprocesses one gray crop into slots [first, first + n_tta) of every
 * member, slot first + t warped with the member's TTA transform t
 * (pd_tta.h; transform 0 is the identity). n_tta in 1..PD_TTA_MAX. */
int pd_ensemble_preprocess(const pd_ensemble *e, const uint8_t *src, int src_w, int src_h,
                           int n_tta, pd_ensemble_inputs *in, int first, pd_error *err);

/* ---- running ---- */

typedef struct pd_ensemble_plan pd_ensemble_plan;

/* One plan per member on `be`, each for max_batch slots; everything a run
 * needs is allocated here, so a run allocates nothing. One run at a time per
 * plan (like pd_plan); the ensemble must outlive the plan. */
int pd_ensemble_plan_create(pd_backend *be, const pd_ensemble *e, int max_batch,
                            pd_ensemble_plan **out, pd_error *err);
void pd_ensemble_plan_destroy(pd_ensemble_plan *p);
int pd_ensemble_plan_max_batch(const pd_ensemble_plan *p);

/* Runs n_images images whose slots lie one after another from slot 0 of
 * `in` (image i has counts[i] >= 1 slots; counts NULL = one slot each),
 * in engine batches of at most max_batch slots, and writes image i's
 * averaged distribution to probs[i * n_classes ...]. Any total number of
 * slots up to in->capacity. */
int pd_ensemble_plan_run(pd_ensemble_plan *p, const pd_ensemble_inputs *in, int n_images,
                         const int *counts, float *probs, pd_error *err);

#endif
