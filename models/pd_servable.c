/* pd_servable: layout and filling of an image's input, planning (the
 * members' plans and their input slots), running (gather, the members'
 * plans, TTA and ensemble averaging), one batch at a time or staged into
 * the free slot while another is in flight, and a block of slots. */
#include "pd_servable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_tta.h"

/* ---- layout and filling ---- */

void pd_servable_layout_of(const pd_ensemble *e, pd_servable_layout *out) {
  memset(out, 0, sizeof *out);
  size_t at = 0;
  for (int m = 0; m < e->n_members; m++) {
    const pd_model *mod = e->members[m];
    out->member_off[m] = at;
    size_t in_member = 0;
    for (int b = 0; b < mod->n_branches; b++) {
      out->branch_off[m][b] = in_member;
      in_member += pd_model_branch_input_len(mod, b);
    }
    at += in_member;
  }
  out->view_floats = at;
}

static int fill(const pd_ensemble *e, const pd_servable_layout *l, const uint8_t *px, int w, int h,
                int views, float *buf, pd_error *err) {
  for (int m = 0; m < e->n_members; m++) {
    const pd_model *mod = e->members[m];
    const pd_input_desc d = pd_model_input(mod);
    float *first[PD_MAX_BRANCHES];
    for (int b = 0; b < mod->n_branches; b++)
      first[b] = buf + l->member_off[m] + l->branch_off[m][b];
    PD_TRY(pd_input_fill(&d, px, w, h, views, first, l->view_floats, err));
  }
  return PD_OK;
}

size_t pd_servable_input_floats(const pd_servable *s, int views) {
  return (size_t)(views > 0 ? views : 0) * s->layout.view_floats;
}

int pd_servable_fill(const pd_servable *s, const uint8_t *px, int w, int h, int views, float *buf,
                     pd_error *err) {
  return fill(s->e, &s->layout, px, w, h, views, buf, err);
}

int pd_servable_prepare(const pd_servable *s, const pd_input_bytes *in,
                        const pd_image_limits *limits, int views, float *buf, pd_error *err) {
  pd_gray_image img;
  int owned = 0;
  PD_TRY(pd_input_decode(in, limits, &img, &owned, err));
  int rc = fill(s->e, &s->layout, img.pixels, img.width, img.height, views, buf, err);
  if (owned) pd_gray_image_free(&img);
  return rc;
}

/* ---- planning ---- */

typedef float *slot_set[2][PD_MAX_MEMBERS][PD_MAX_BRANCHES];

static void free_slots(pd_plan *const *plans, slot_set slots) {
  for (int k = 0; k < 2; k++)
    for (int m = 0; m < PD_MAX_MEMBERS; m++)
      for (int b = 0; b < PD_MAX_BRANCHES; b++) {
        if (slots[k][m][b]) pd_plan_host_free(plans[m], slots[k][m][b]);
        slots[k][m][b] = NULL;
      }
}

/* Both input slots of every member's branches, from the member's plan. */
static int alloc_slots(const pd_ensemble *e, int max_batch, pd_plan *const *plans, slot_set slots,
                       pd_error *err) {
  for (int k = 0; k < 2; k++)
    for (int m = 0; m < e->n_members; m++)
      for (int b = 0; b < e->members[m]->n_branches; b++) {
        const size_t len = pd_model_branch_input_len(e->members[m], b);
        slots[k][m][b] = pd_plan_host_alloc(plans[m], (size_t)max_batch * len * sizeof(float));
        if (!slots[k][m][b]) {
          free_slots(plans, slots);
          return pd_error_set(err, PD_ENOMEM,
                              "model %s: out of host memory for two input slots of %d views",
                              e->name, max_batch);
        }
      }
  return PD_OK;
}

void pd_servable_free(pd_servable *s) {
  if (!s) return;
  if (s->flight >= 0) { /* finished (its answers are nobody's now) before its buffers go */
    for (int m = 0; m < PD_MAX_MEMBERS; m++)
      if (pd_plan_in_flight(s->plans[m])) pd_plan_wait(s->plans[m], NULL);
  }
  free_slots(s->plans, s->slot_in);
  for (int m = 0; m < PD_MAX_MEMBERS; m++)
    pd_plan_destroy(s->plans[m]);
  free(s->rows);
  free(s->acc);
  if (s->owns) pd_ensemble_free((pd_ensemble *)s->e);
  free(s);
}

int pd_servable_create(pd_backend *be, const pd_ensemble *e, int max_batch, pd_servable **out,
                       pd_error *err) {
  *out = NULL;
  if (!be || !e) return pd_error_set(err, PD_EINVAL, "servable: null argument");
  if (max_batch < 1)
    return pd_error_set(err, PD_EINVAL, "servable: max_batch %d must be >= 1", max_batch);
  pd_servable *s = calloc(1, sizeof *s);
  if (!s) return pd_error_set(err, PD_ENOMEM, "out of memory serving model %s", e->name);
  s->e = e;
  s->max_batch = max_batch;
  s->flight = -1;
  pd_servable_layout_of(e, &s->layout);
  const size_t cells = (size_t)max_batch * (size_t)e->n_classes;
  s->rows = malloc(cells * (size_t)e->n_members * sizeof *s->rows);
  s->acc = calloc(cells * (size_t)e->n_members, sizeof *s->acc);
  int rc = s->rows && s->acc ? PD_OK : PD_ENOMEM;
  if (rc != PD_OK) {
    pd_servable_free(s);
    return pd_error_set(err, PD_ENOMEM, "model %s: out of memory for batches of %d", e->name,
                        max_batch);
  }
  for (int m = 0; rc == PD_OK && m < e->n_members; m++) {
    rc = pd_plan_create(be, &e->members[m]->graph, max_batch, &s->plans[m], err);
    if (rc != PD_OK && e->is_ensemble) {
      char desc[4300];
      pd_error_prefix(err, "%s", pd_ensemble_member_desc(e, m, desc, sizeof desc));
    }
  }
  if (rc == PD_OK) rc = alloc_slots(e, max_batch, s->plans, s->slot_in, err);
  if (rc != PD_OK) {
    pd_servable_free(s);
    return rc;
  }
  *out = s;
  return PD_OK;
}

int pd_servable_replan(pd_servable *s, pd_backend *be, pd_error *err) {
  if (!s || !be) return pd_error_set(err, PD_EINVAL, "servable replan: null argument");
  if (s->flight >= 0)
    return pd_error_set(err, PD_EINVAL, "servable replan: a batch of %s is in flight", s->e->name);
  const pd_ensemble *e = s->e;
  pd_plan *plans[PD_MAX_MEMBERS] = {0};
  slot_set slots = {0};
  int rc = PD_OK;
  for (int m = 0; rc == PD_OK && m < e->n_members; m++) {
    rc = pd_plan_create(be, &e->members[m]->graph, s->max_batch, &plans[m], err);
    if (rc != PD_OK && e->is_ensemble) {
      char desc[4300];
      pd_error_prefix(err, "%s", pd_ensemble_member_desc(e, m, desc, sizeof desc));
    }
  }
  if (rc == PD_OK) rc = alloc_slots(e, s->max_batch, plans, slots, err);
  /* the new slots or the old go with their plans; a staged batch is gone */
  free_slots(rc == PD_OK ? s->plans : plans, rc == PD_OK ? s->slot_in : slots);
  if (rc == PD_OK) {
    memcpy(s->slot_in, slots, sizeof slots);
    s->staged = false;
  }
  for (int m = 0; m < e->n_members; m++) {
    pd_plan *drop = rc == PD_OK ? s->plans[m] : plans[m];
    if (drop) pd_plan_destroy(drop);
    if (rc == PD_OK) s->plans[m] = plans[m];
  }
  return rc;
}

int pd_servable_load(const char *dir, pd_backend *be, int max_batch, pd_servable **out,
                     pd_error *err) {
  *out = NULL;
  pd_ensemble *e = NULL;
  PD_TRY(pd_ensemble_load(dir, &e, err));
  pd_servable *s = NULL;
  int rc = pd_servable_create(be, e, max_batch, &s, err);
  if (rc != PD_OK || !s) {
    pd_ensemble_free(e);
    return rc != PD_OK ? rc : pd_error_set(err, PD_EINTERNAL, "model %s: no servable made", dir);
  }
  s->owns = true;
  *out = s;
  return PD_OK;
}

/* ---- running ---- */

/* Member m's accumulator rows (max_batch x n_classes). */
static double *member_acc(const pd_servable *s, int m) {
  return s->acc + (size_t)m * (size_t)s->max_batch * (size_t)s->e->n_classes;
}

/* Member m's output rows (max_batch x n_classes). */
static float *member_rows(const pd_servable *s, int m) {
  return s->rows + (size_t)m * (size_t)s->max_batch * (size_t)s->e->n_classes;
}

/* Adds member m's rows for the `count` slots from (i, v) on into member m's
 * accumulator rows of their images (row 0 = image img_lo). */
static void accumulate(pd_servable *s, int m, const pd_servable_item *items, int i, int v,
                       int count, int img_lo) {
  const pd_ensemble *e = s->e;
  const int nc = e->n_classes;
  const int *perm = e->perm[m];
  double *base = member_acc(s, m);
  const float *rows = member_rows(s, m);
  for (int k = 0; k < count; k++) {
    const float *row = rows + (size_t)k * nc;
    double *acc = base + (size_t)(i - img_lo) * nc;
    if (perm)
      for (int c = 0; c < nc; c++)
        acc[perm[c]] += row[c];
    else
      for (int c = 0; c < nc; c++)
        acc[c] += row[c];
    if (++v == items[i].views) {
      v = 0;
      i++;
    }
  }
}

/* Copies the `count` slots from (i, v) on into the members' input slot `slot`. */
static void gather(pd_servable *s, int slot, const pd_servable_item *items, int i, int v,
                   int count) {
  const pd_ensemble *e = s->e;
  const pd_servable_layout *l = &s->layout;
  for (int k = 0; k < count; k++) {
    const float *view = items[i].input + (size_t)v * l->view_floats;
    for (int m = 0; m < e->n_members; m++)
      for (int b = 0; b < e->members[m]->n_branches; b++) {
        const size_t len = pd_model_branch_input_len(e->members[m], b);
        memcpy(s->slot_in[slot][m][b] + (size_t)k * len,
               view + l->member_off[m] + l->branch_off[m][b], len * sizeof(float));
      }
    if (++v == items[i].views) {
      v = 0;
      i++;
    }
  }
}

/* One image's answer from its accumulator rows: each member's TTA mean,
 * calibrated by the member's temperature (q^(1/T), renormalised), then the
 * members' weighted mean. */
static void finish(const pd_servable *s, int row, int views, float *probs) {
  const pd_ensemble *e = s->e;
  const int nc = e->n_classes;
  for (int c = 0; c < nc; c++)
    probs[c] = 0.0f;
  for (int m = 0; m < e->n_members; m++) {
    const double *acc = member_acc(s, m) + (size_t)row * nc;
    const double t = e->members[m]->temperature;
    const double w = e->weights[m];
    if (!(t > 0.0) || t == 1.0) { /* 0: a model not made by the loader */
      for (int c = 0; c < nc; c++)
        probs[c] += (float)(w * acc[c] / views);
      continue;
    }
    /* softmax(ln q / T) with q = acc / views; the 1/views cancels. */
    double top = -HUGE_VAL, sum = 0.0;
    for (int c = 0; c < nc; c++) {
      const double l = acc[c] > 0.0 ? log(acc[c]) / t : -HUGE_VAL;
      if (l > top) top = l;
    }
    for (int c = 0; c < nc; c++)
      if (acc[c] > 0.0) sum += exp(log(acc[c]) / t - top);
    for (int c = 0; c < nc; c++)
      if (acc[c] > 0.0) probs[c] += (float)(w * exp(log(acc[c]) / t - top) / sum);
  }
}

int pd_servable_run(pd_servable *s, const pd_servable_item *items, int n, pd_error *err) {
  if (!s || (n > 0 && !items)) return pd_error_set(err, PD_EINVAL, "servable run: null argument");
  if (s->flight >= 0)
    return pd_error_set(err, PD_EINVAL, "servable run: a batch of %s is in flight", s->e->name);
  const pd_ensemble *e = s->e;
  for (int k = 0; k < n; k++)
    if (items[k].views < 1 || items[k].views > PD_TTA_MAX || !items[k].input || !items[k].probs)
      return pd_error_set(err, PD_EINVAL, "servable run: image %d has %d views (1..%d allowed)", k,
                          items[k].views, PD_TTA_MAX);
  const int nc = e->n_classes;
  int i = 0, v = 0; /* the next slot: image i, view v */
  while (i < n) {
    /* The chunk: up to max_batch slots from (i, v); images i .. last touched. */
    int count = 0, ci = i, cv = v;
    while (count < s->max_batch && ci < n) {
      count++;
      if (++cv == items[ci].views) {
        cv = 0;
        ci++;
      }
    }
    const int touched = (cv > 0 ? ci + 1 : ci) - i;
    const int keep = v > 0 ? 1 : 0; /* row 0 goes on from the last chunk */
    for (int m = 0; m < e->n_members; m++)
      memset(member_acc(s, m) + (size_t)keep * nc, 0,
             (size_t)(touched - keep) * nc * sizeof *s->acc);
    s->staged = false; /* the slot is this run's now */
    gather(s, s->fill, items, i, v, count);
    for (int m = 0; m < e->n_members; m++) {
      pd_batch batch = {.n = count};
      for (int b = 0; b < e->members[m]->n_branches; b++)
        batch.branch[b] = s->slot_in[s->fill][m][b];
      int rc = pd_plan_run(s->plans[m], &batch, member_rows(s, m), err);
      if (rc != PD_OK) {
        if (e->is_ensemble) {
          char desc[4300];
          pd_error_prefix(err, "%s", pd_ensemble_member_desc(e, m, desc, sizeof desc));
        }
        return rc;
      }
      accumulate(s, m, items, i, v, count, i);
    }
    /* Images i .. ci-1 are whole: write them; image ci (if begun) goes on in row 0. */
    for (int k = i; k < ci; k++)
      finish(s, k - i, items[k].views, items[k].probs);
    if (cv > 0 && ci > i)
      for (int m = 0; m < e->n_members; m++)
        memcpy(member_acc(s, m), member_acc(s, m) + (size_t)(ci - i) * nc,
               (size_t)nc * sizeof *s->acc);
    i = ci;
    v = cv;
  }
  return PD_OK;
}

/* ---- two batches in flight ---- */

bool pd_servable_fits(const pd_servable *s, const pd_servable_item *items, int n) {
  if (!s || n < 1 || !items) return false;
  long views = 0;
  for (int k = 0; k < n; k++) {
    if (items[k].views < 1 || items[k].views > PD_TTA_MAX || !items[k].input || !items[k].probs)
      return false;
    views += items[k].views;
  }
  return views <= s->max_batch;
}

static void member_error(const pd_servable *s, int m, pd_error *err) {
  if (!s->e->is_ensemble) return;
  char desc[4300];
  pd_error_prefix(err, "%s", pd_ensemble_member_desc(s->e, m, desc, sizeof desc));
}

int pd_servable_stage(pd_servable *s, const pd_servable_item *items, int n, pd_error *err) {
  if (!pd_servable_fits(s, items, n))
    return pd_error_set(err, PD_EINVAL,
                        "servable stage: %d images do not fit one batch of %d views of %s", n,
                        s ? s->max_batch : 0, s ? s->e->name : "(none)");
  if (s->flight == s->fill) s->fill = 1 - s->fill;
  int count = 0;
  for (int k = 0; k < n; k++)
    count += items[k].views;
  gather(s, s->fill, items, 0, 0, count);
  s->staged = true;
  s->staged_n = count;
  return PD_OK;
}

int pd_servable_submit(pd_servable *s, pd_error *err) {
  if (!s || !s->staged || s->flight >= 0)
    return pd_error_set(err, PD_EINVAL, "servable submit: %s",
                        !s               ? "null argument"
                        : s->flight >= 0 ? "a batch is in flight"
                                         : "nothing staged");
  const pd_ensemble *e = s->e;
  for (int m = 0; m < e->n_members; m++) {
    pd_batch batch = {.n = s->staged_n};
    for (int b = 0; b < e->members[m]->n_branches; b++)
      batch.branch[b] = s->slot_in[s->fill][m][b];
    int rc = pd_plan_submit(s->plans[m], &batch, member_rows(s, m), err);
    if (rc != PD_OK) {
      member_error(s, m, err);
      for (int j = 0; j < m; j++) /* nothing stays in flight */
        pd_plan_wait(s->plans[j], NULL);
      return rc;
    }
  }
  s->flight = s->fill;
  s->fill = 1 - s->fill;
  s->staged = false;
  return PD_OK;
}

bool pd_servable_in_flight(const pd_servable *s) {
  return s && s->flight >= 0;
}

int pd_servable_wait(pd_servable *s, const pd_servable_item *items, int n, pd_error *err) {
  if (!s || s->flight < 0) return pd_error_set(err, PD_EINVAL, "servable wait: no batch in flight");
  const pd_ensemble *e = s->e;
  int rc = PD_OK;
  for (int m = 0; m < e->n_members; m++) {
    pd_error merr = {0};
    int r = pd_plan_wait(s->plans[m], &merr);
    if (r != PD_OK && rc == PD_OK) {
      rc = r;
      member_error(s, m, &merr);
      if (err) *err = merr;
    }
  }
  s->flight = -1;
  if (rc != PD_OK) return rc;
  const int nc = e->n_classes;
  int count = 0;
  for (int k = 0; k < n; k++)
    count += items[k].views;
  for (int m = 0; m < e->n_members; m++) {
    memset(member_acc(s, m), 0, (size_t)n * nc * sizeof *s->acc);
    accumulate(s, m, items, 0, 0, count, 0);
  }
  for (int k = 0; k < n; k++)
    finish(s, k, items[k].views, items[k].probs);
  return PD_OK;
}

/* ---- a block of slots ---- */

int pd_servable_inputs_init(const pd_ensemble *e, int capacity, pd_servable_inputs *in,
                            pd_error *err) {
  memset(in, 0, sizeof *in);
  if (capacity < 1)
    return pd_error_set(err, PD_EINVAL, "servable inputs: capacity %d must be >= 1", capacity);
  pd_servable_layout_of(e, &in->layout);
  in->buf = malloc((size_t)capacity * in->layout.view_floats * sizeof(float) + sizeof(float));
  if (!in->buf)
    return pd_error_set(err, PD_ENOMEM, "out of memory for %d input slots of model %s", capacity,
                        e->name);
  in->capacity = capacity;
  return PD_OK;
}

void pd_servable_inputs_free(pd_servable_inputs *in) {
  if (!in) return;
  free(in->buf);
  in->buf = NULL;
  in->capacity = 0;
}

int pd_servable_inputs_fill(const pd_ensemble *e, const uint8_t *px, int w, int h, int n_tta,
                            pd_servable_inputs *in, int first, pd_error *err) {
  if (n_tta < 1 || n_tta > PD_TTA_MAX)
    return pd_error_set(err, PD_EINVAL, "tta count %d out of range 1..%d", n_tta, PD_TTA_MAX);
  if (first < 0 || first > in->capacity - n_tta)
    return pd_error_set(err, PD_EINVAL, "slots %d..%d exceed the %d input slots", first,
                        first + n_tta - 1, in->capacity);
  return fill(e, &in->layout, px, w, h, n_tta, in->buf + (size_t)first * in->layout.view_floats,
              err);
}

#define RUN_BLOCK 256 /* images per pd_servable_run call */

int pd_servable_run_slots(pd_servable *s, const pd_servable_inputs *in, int n_images,
                          const int *counts, float *probs, pd_error *err) {
  if (!s || !in || (n_images > 0 && !probs))
    return pd_error_set(err, PD_EINVAL, "servable run: null argument");
  if (n_images < 0) return pd_error_set(err, PD_EINVAL, "servable run: %d images", n_images);
  if (in->layout.view_floats != s->layout.view_floats)
    return pd_error_set(err, PD_EINVAL, "servable run: inputs made for another model than %s",
                        s->e->name);
  long long total = 0;
  for (int i = 0; i < n_images; i++) {
    int c = counts ? counts[i] : 1;
    if (c < 1 || c > PD_TTA_MAX)
      return pd_error_set(err, PD_EINVAL, "servable run: image %d has %d slots (1..%d allowed)", i,
                          c, PD_TTA_MAX);
    total += c;
  }
  if (total > in->capacity)
    return pd_error_set(err, PD_EINVAL, "servable run: %lld slots exceed the inputs' %d", total,
                        in->capacity);
  pd_servable_item items[RUN_BLOCK];
  size_t slot = 0;
  for (int i0 = 0; i0 < n_images; i0 += RUN_BLOCK) {
    int n = n_images - i0 < RUN_BLOCK ? n_images - i0 : RUN_BLOCK;
    for (int k = 0; k < n; k++) {
      int c = counts ? counts[i0 + k] : 1;
      items[k] = (pd_servable_item){.input = in->buf + slot * in->layout.view_floats,
                                    .views = c,
                                    .probs = probs + (size_t)(i0 + k) * s->e->n_classes};
      slot += (size_t)c;
    }
    PD_TRY(pd_servable_run(s, items, n, err));
  }
  return PD_OK;
}
