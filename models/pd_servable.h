/* pd_servable: the one inference path. A servable is a model folder as the
 * daemon and the tools serve it: one model or an ensemble of members with
 * weights (pd_ensemble.h), and, once planned, one backend plan per member
 * with the batch buffers they run on. The daemon's engine thread,
 * planktond-model and the tests all run images through pd_servable_run.
 *
 * An image's input is one buffer of pd_servable_input_floats(s, views)
 * floats: view-major (view t is TTA transform t of every member, view 0 the
 * identity), then member by member, then branch by branch, each branch's
 * slot pd_model_branch_input_len floats. pd_servable_prepare (bytes) and
 * pd_servable_fill (a decoded crop) write it through pd_input.h; they read
 * only the immutable models, so any thread may prepare while the engine runs.
 *
 * One image's answer is  sum over members m of  w_m * (mean over its views
 * of p_m(view)) : arithmetic means (pd_tta.h says why), the member weights
 * normalised to sum 1, member classes mapped to member 0's order. A run
 * gathers the views of any number of images into engine batches of at most
 * max_batch slots per member, runs each member's plan and accumulates in
 * double; everything it needs is allocated when planned, so a run allocates
 * nothing. One run at a time per servable (like pd_plan).
 *
 * Two batches in flight (the engine): each member's plan has two input
 * slots (pd_plan_host_alloc: pinned on a device). pd_servable_stage gathers
 * a batch of at most max_batch views into the free slot while the batch in
 * the other one computes; pd_servable_submit starts it on every member,
 * pd_servable_wait finishes it and writes its answers. */
#ifndef PD_SERVABLE_H
#define PD_SERVABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd_backend.h"
#include "pd_ensemble.h"
#include "pd_error.h"
#include "pd_input.h"

/* Where a view's slots lie: member m's branch b at member_off[m] + branch_off[m][b]. */
typedef struct pd_servable_layout {
  size_t view_floats; /* one view over every member and branch */
  size_t member_off[PD_MAX_MEMBERS];
  size_t branch_off[PD_MAX_MEMBERS][PD_MAX_BRANCHES];
} pd_servable_layout;

void pd_servable_layout_of(const pd_ensemble *e, pd_servable_layout *out);

typedef struct pd_servable {
  const pd_ensemble *e; /* what is served: its name, version, classes, members */
  bool owns;            /* e is freed with the servable */
  int max_batch;        /* 0 until planned */
  pd_servable_layout layout;
  pd_plan *plans[PD_MAX_MEMBERS];
  /* two input slots per member and branch, max_batch views each, from
   * plans[m]'s pd_plan_host_alloc */
  float *slot_in[2][PD_MAX_MEMBERS][PD_MAX_BRANCHES];
  int fill;    /* the slot pd_servable_stage fills next */
  bool staged; /* slot `fill` holds a staged batch of staged_n views */
  int staged_n;
  int flight;  /* the slot in flight, -1: none */
  float *rows; /* per member, max_batch x n_classes: its output for a chunk */
  double *acc; /* per member, max_batch x n_classes: the chunk's images, being summed */
} pd_servable;

/* One image of a run: its input buffer (`views` views, laid out as above)
 * and where its n_classes probabilities go. */
typedef struct pd_servable_item {
  const float *input;
  int views; /* 1..PD_TTA_MAX */
  float *probs;
} pd_servable_item;

/* Loads a model folder, one model or an ensemble (pd_ensemble_load), and
 * plans it on `be` for max_batch slots; the servable owns the ensemble.
 * Errors name the folder's files and lines. */
int pd_servable_load(const char *dir, pd_backend *be, int max_batch, pd_servable **out,
                     pd_error *err);

/* The same for an ensemble the caller keeps (it must outlive the servable). */
int pd_servable_create(pd_backend *be, const pd_ensemble *e, int max_batch, pd_servable **out,
                       pd_error *err);

void pd_servable_free(pd_servable *s);

/* Plans every member again on `be` (same max_batch), e.g. on the CPU after
 * a sticky device error; the old plans are destroyed only once every new
 * one is made (on failure they stay, and the error names the member). Not
 * during a run. */
int pd_servable_replan(pd_servable *s, pd_backend *be, pd_error *err);

/* Floats of one image's input with `views` views. */
size_t pd_servable_input_floats(const pd_servable *s, int views);

/* Fills an image's input buffer (views 0..views-1) from a gray crop. */
int pd_servable_fill(const pd_servable *s, const uint8_t *px, int w, int h, int views, float *buf,
                     pd_error *err);

/* The same from the bytes a client sent (decoded once for every member);
 * decoding errors are pd_input_decode's. */
int pd_servable_prepare(const pd_servable *s, const pd_input_bytes *in,
                        const pd_image_limits *limits, int views, float *buf, pd_error *err);

/* Runs n images and writes each one's averaged distribution to its probs.
 * A member's failure names the member. */
int pd_servable_run(pd_servable *s, const pd_servable_item *items, int n, pd_error *err);

/* ---- two batches in flight ---- */

/* Whether n images fit one staged batch: 1..PD_TTA_MAX views each, at
 * most max_batch views in all (else pd_servable_run, which chunks). */
bool pd_servable_fits(const pd_servable *s, const pd_servable_item *items, int n);

/* Gathers the images into the free input slot (while another batch may be
 * in flight). PD_EINVAL unless they fit. Staging again replaces it. */
int pd_servable_stage(pd_servable *s, const pd_servable_item *items, int n, pd_error *err);

/* Starts the staged batch on every member; PD_EINVAL with one in flight
 * already or nothing staged. A failure leaves nothing in flight. */
int pd_servable_submit(pd_servable *s, pd_error *err);

/* Waits for the batch in flight and writes the answers of `items` (the
 * ones it was staged from). A member's failure names the member. */
int pd_servable_wait(pd_servable *s, const pd_servable_item *items, int n, pd_error *err);

bool pd_servable_in_flight(const pd_servable *s);

/* ---- a block of slots (evaluation, tests) ---- */

/* `capacity` view slots one after another; an image with n views takes n
 * consecutive slots. */
typedef struct pd_servable_inputs {
  int capacity;
  pd_servable_layout layout;
  float *buf; /* capacity * layout.view_floats */
} pd_servable_inputs;

int pd_servable_inputs_init(const pd_ensemble *e, int capacity, pd_servable_inputs *in,
                            pd_error *err);
void pd_servable_inputs_free(pd_servable_inputs *in);

/* Fills slots [first, first + n_tta) from one gray crop (view t = transform t). */
int pd_servable_inputs_fill(const pd_ensemble *e, const uint8_t *px, int w, int h, int n_tta,
                            pd_servable_inputs *in, int first, pd_error *err);

/* Runs n_images images whose slots lie one after another from slot 0 of
 * `in` (image i has counts[i] >= 1 slots; counts NULL = one slot each) and
 * writes image i's distribution to probs[i * n_classes ...]. */
int pd_servable_run_slots(pd_servable *s, const pd_servable_inputs *in, int n_images,
                          const int *counts, float *probs, pd_error *err);

#endif
