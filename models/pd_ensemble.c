/* pd_ensemble: loading ensemble folders, member input slots, and the plan
 * that runs every member and averages (see pd_ensemble.h).
 *
 * The run walks the slots in chunks of at most max_batch. For each chunk,
 * every member's plan runs on the chunk's slots and each slot's row is added,
 * times w_m / counts[image], to a double accumulator row of its image. The
 * images touched by one chunk are at most max_batch (each has a slot in it),
 * so max_batch accumulator rows suffice: when a chunk ends, the finished
 * images are written out and the one image that continues into the next
 * chunk (if any) keeps its partial sum in row 0. */
#include "pd_ensemble.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_file.h"
#include "pd_model_internal.h"
#include "pd_tta.h"
#include "pd_yaml.h"

#define PD_MAX_ENSEMBLE_YAML (1 << 20)

/* ---- building ---- */

const char *pd_ensemble_member_desc(const pd_ensemble *e, int i, char *buf, size_t cap) {
  const char *where = e->member_dir[i][0] ? e->member_dir[i] : e->members[i]->dir;
  if (where[0])
    snprintf(buf, cap, "member %d '%s' (model %s)", i, where, e->members[i]->name);
  else
    snprintf(buf, cap, "member %d (model %s)", i, e->members[i]->name);
  return buf;
}

/* Member i's labels must be member 0's, in any order; fills e->perm[i] when the order differs. */
static int match_labels(pd_ensemble *e, int i, const char *where, pd_error *err) {
  const pd_model *a = e->members[0], *b = e->members[i];
  char da[4300], db[4300];
  pd_ensemble_member_desc(e, 0, da, sizeof da);
  pd_ensemble_member_desc(e, i, db, sizeof db);
  if (a->n_classes != b->n_classes)
    return pd_error_set(err, PD_EINVAL, "%s: ensemble %s has %d classes but %s has %d", where, db,
                        b->n_classes, da, a->n_classes);
  bool same = true;
  for (int c = 0; c < b->n_classes && same; c++)
    same = !strcmp(a->classes[c], b->classes[c]);
  if (same) return PD_OK;
  int *perm = malloc((size_t)b->n_classes * sizeof *perm);
  if (!perm) return pd_error_set(err, PD_ENOMEM, "%s: out of memory", where);
  for (int c = 0; c < b->n_classes; c++) {
    perm[c] = -1;
    for (int k = 0; k < a->n_classes; k++)
      if (!strcmp(b->classes[c], a->classes[k])) {
        perm[c] = k;
        break;
      }
    if (perm[c] < 0) {
      /* The same count and unique labels: some label of member 0 is missing too. */
      const char *missing = "?";
      for (int k = 0; k < a->n_classes && missing[0] == '?'; k++) {
        bool found = false;
        for (int j = 0; j < b->n_classes && !found; j++)
          found = !strcmp(a->classes[k], b->classes[j]);
        if (!found) missing = a->classes[k];
      }
      int rc = pd_error_set(err, PD_EINVAL,
                            "%s: ensemble %s has class label '%s' (classes[%d]) that %s lacks, "
                            "and lacks '%s'; all members must have the same labels",
                            where, db, b->classes[c], c, da, missing);
      free(perm);
      return rc;
    }
  }
  e->perm[i] = perm;
  return PD_OK;
}

static int finish(pd_ensemble *e, const double *weights, const char *where, pd_error *err) {
  double sum = 0.0;
  for (int i = 0; i < e->n_members; i++) {
    double w = weights ? weights[i] : 1.0;
    if (!(w > 0) || !isfinite(w))
      return pd_error_set(err, PD_EINVAL,
                          "%s: ensemble weights[%d] must be a finite number > 0, "
                          "got %g",
                          where, i, w);
    sum += w;
  }
  for (int i = 0; i < e->n_members; i++)
    e->weights[i] = (weights ? weights[i] : 1.0) / sum;
  for (int i = 1; i < e->n_members; i++)
    PD_TRY(match_labels(e, i, where, err));
  e->n_classes = e->members[0]->n_classes;
  e->classes = e->members[0]->classes;
  if (e->tta_count <= 0) {
    e->tta_count = 1;
    for (int i = 0; i < e->n_members; i++) {
      int c = pd_tta_default_count(&e->members[i]->tta);
      if (c > e->tta_count) e->tta_count = c;
    }
  }
  return PD_OK;
}

int pd_ensemble_from_models(pd_model *const *models, const double *weights, int n, const char *name,
                            int tta_count, pd_ensemble **out, pd_error *err) {
  *out = NULL;
  if (n < 1 || n > PD_MAX_MEMBERS || !models)
    return pd_error_set(err, PD_EINVAL, "ensemble: %d members (1..%d allowed)", n, PD_MAX_MEMBERS);
  if (tta_count < 0 || tta_count > PD_TTA_MAX)
    return pd_error_set(err, PD_EINVAL, "ensemble: tta count %d out of range 0..%d", tta_count,
                        PD_TTA_MAX);
  for (int i = 0; i < n; i++)
    if (!models[i]) return pd_error_set(err, PD_EINVAL, "ensemble: member %d is null", i);
  pd_ensemble *e = calloc(1, sizeof *e);
  if (!e) return pd_error_set(err, PD_ENOMEM, "out of memory for an ensemble");
  e->n_members = n;
  e->is_ensemble = n > 1;
  e->tta_count = tta_count;
  for (int i = 0; i < n; i++)
    e->members[i] = models[i];
  snprintf(e->name, sizeof e->name, "%s", name ? name : models[0]->name);
  snprintf(e->version, sizeof e->version, "%s", models[0]->version);
  int rc = finish(e, weights, "ensemble", err);
  if (rc != PD_OK) {
    for (int i = 0; i < n; i++) {
      e->members[i] = NULL; /* the caller keeps them */
      free(e->perm[i]);
    }
    free(e);
    return rc;
  }
  *out = e;
  return PD_OK;
}

void pd_ensemble_free(pd_ensemble *e) {
  if (!e) return;
  if (e->is_ensemble) {
    for (int c = 0; e->lineage && c < e->n_classes; c++)
      free(e->lineage[c]);
    free(e->lineage);
    free(e->thresholds);
  }
  for (int i = 0; i < PD_MAX_MEMBERS; i++) {
    pd_model_free(e->members[i]);
    free(e->perm[i]);
  }
  free(e);
}

int pd_ensemble_class_index(const pd_ensemble *e, const char *label) {
  for (int c = 0; e && label && c < e->n_classes; c++)
    if (!strcmp(e->classes[c], label)) return c;
  return -1;
}

/* ---- loading an ensemble folder ---- */

typedef struct ens_desc {
  int n;
  char paths[PD_MAX_MEMBERS][4096];
  int lines[PD_MAX_MEMBERS];
  double weights[PD_MAX_MEMBERS];
  int tta_count;
} ens_desc;

static int parse_ensemble_yaml(pd_ensemble *e, const pd_yaml_node *root, ens_desc *d,
                               pd_error *err) {
  static const char *const keys[] = {"format",  "name",         "version",    "ensemble", "tta",
                                     "serving", "segmentation", "thresholds", "lineage",  NULL};
  static const char *const ens_keys[] = {"members", "weights", NULL};
  static const char *const tta_keys[] = {"count", NULL};
  PD_TRY(pd_yaml_expect_map(root, err));
  PD_TRY(pd_yaml_check_keys(root, keys, err));
  pd_yaml_node fmt;
  long long v;
  PD_TRY(pd_yaml_require(root, "format", &fmt, err));
  PD_TRY(pd_yaml_int(&fmt, 0, 1000000, &v, err));
  if (v != 1)
    return pd_yaml_fail(&fmt, err, PD_EUNSUPP, "%lld is not supported (only format 1)", v);
  PD_TRY(pd_yaml_req_ident(root, "name", "._-", e->name, sizeof e->name, err));
  PD_TRY(pd_yaml_req_ident(root, "version", "._+-", e->version, sizeof e->version, err));
  pd_yaml_node ens, members;
  PD_TRY(pd_yaml_require(root, "ensemble", &ens, err));
  PD_TRY(pd_yaml_expect_map(&ens, err));
  PD_TRY(pd_yaml_check_keys(&ens, ens_keys, err));
  PD_TRY(pd_yaml_require(&ens, "members", &members, err));
  PD_TRY(pd_yaml_expect_seq(&members, 1, PD_MAX_MEMBERS, err));
  d->n = pd_yaml_seq_len(&members);
  for (int i = 0; i < d->n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&members, i);
    const char *s;
    PD_TRY(pd_yaml_string(&item, 1024, &s, err));
    d->lines[i] = pd_yaml_line(&item);
    int len = s[0] == '/' ? snprintf(d->paths[i], sizeof d->paths[i], "%s", s)
                          : snprintf(d->paths[i], sizeof d->paths[i], "%s/%s", e->dir, s);
    if (len < 0 || (size_t)len >= sizeof d->paths[i])
      return pd_yaml_fail(&item, err, PD_ELIMIT, "member path '%s' is too long", s);
  }
  for (int i = 0; i < d->n; i++)
    d->weights[i] = 1.0;
  pd_yaml_node w = pd_yaml_get(&ens, "weights");
  if (pd_yaml_present(&w)) {
    PD_TRY(pd_yaml_expect_seq(&w, 0, PD_MAX_MEMBERS, err));
    if (pd_yaml_seq_len(&w) != d->n)
      return pd_yaml_fail(&w, err, PD_EINVAL, "%d weights for %d members", pd_yaml_seq_len(&w),
                          d->n);
    for (int i = 0; i < d->n; i++) {
      pd_yaml_node item = pd_yaml_seq_at(&w, i);
      PD_TRY(pd_yaml_float(&item, 0, 1e6, &d->weights[i], err));
      if (!(d->weights[i] > 0))
        return pd_yaml_fail(&item, err, PD_EINVAL, "weight must be > 0, got %g", d->weights[i]);
    }
  }
  d->tta_count = 0;
  pd_yaml_node tta = pd_yaml_get(root, "tta");
  if (pd_yaml_present(&tta)) {
    PD_TRY(pd_yaml_check_keys(&tta, tta_keys, err));
    PD_TRY(pd_yaml_opt_int(&tta, "count", 0, PD_TTA_MAX, &d->tta_count, err));
    if (d->tta_count == 0) d->tta_count = 1; /* explicit 0: off */
  }
  PD_TRY(pd_model__parse_serving(root, &e->serving, err));
  return pd_model__parse_segmentation(root, &e->segmentation, err);
}

/* thresholds: and lineage: against the answer's classes (member 0's). */
static int parse_outputs(pd_ensemble *e, const pd_yaml_node *root, const char *yaml_path,
                         pd_error *err) {
  pd_model *classes = calloc(1, sizeof *classes);
  if (!classes) return pd_error_set(err, PD_ENOMEM, "%s: out of memory", yaml_path);
  classes->n_classes = e->n_classes;
  classes->classes = e->classes;
  load_ctx c = {.m = classes, .yaml_name = yaml_path, .err = err};
  int rc = pd_model__parse_outputs(&c, root);
  e->thresholds = classes->thresholds; /* freed with e, whatever rc */
  e->lineage = classes->lineage;
  free(classes);
  return rc;
}

static int load_ensemble_folder(pd_ensemble *e, const pd_yaml_node *root, const char *yaml_path,
                                pd_error *err) {
  ens_desc *d = calloc(1, sizeof *d);
  if (!d) return pd_error_set(err, PD_ENOMEM, "%s: out of memory", yaml_path);
  int rc = parse_ensemble_yaml(e, root, d, err);
  for (int i = 0; rc == PD_OK && i < d->n; i++) {
    rc = pd_model_load(d->paths[i], &e->members[i], err);
    if (rc != PD_OK)
      pd_error_prefix(err, "%s:%d: ensemble member %d '%s'", yaml_path, d->lines[i], i,
                      d->paths[i]);
    else {
      snprintf(e->member_dir[i], sizeof e->member_dir[i], "%s", d->paths[i]);
      e->n_members = i + 1;
    }
  }
  if (rc == PD_OK) {
    e->is_ensemble = true;
    e->tta_count = d->tta_count;
    rc = finish(e, d->weights, yaml_path, err);
  }
  free(d);
  return rc == PD_OK ? parse_outputs(e, root, yaml_path, err) : rc;
}

int pd_ensemble_load(const char *dir, pd_ensemble **out, pd_error *err) {
  *out = NULL;
  size_t dlen = dir ? strlen(dir) : 0;
  if (dlen == 0 || dlen + 16 >= sizeof((pd_ensemble *)0)->dir)
    return pd_error_set(err, PD_EINVAL, "model directory name is empty or too long (%zu bytes)",
                        dlen);
  pd_ensemble *e = calloc(1, sizeof *e);
  if (!e) return pd_error_set(err, PD_ENOMEM, "out of memory for a model");
  memcpy(e->dir, dir, dlen + 1);
  char yaml_path[4096 + 16];
  snprintf(yaml_path, sizeof yaml_path, "%s/model.yaml", dir);
  unsigned char *text = NULL;
  size_t len = 0;
  pd_yaml *y = NULL;
  int rc = pd_file_read(yaml_path, PD_MAX_ENSEMBLE_YAML, &text, &len, err);
  if (rc == PD_OK) rc = pd_yaml_load((const char *)text, len, yaml_path, &y, err);
  bool is_ens = false;
  if (rc == PD_OK) {
    pd_yaml_node root = pd_yaml_root(y);
    pd_yaml_node ens = pd_yaml_get(&root, "ensemble");
    is_ens = pd_yaml_kind_of(&root) == PD_YAML_MAP && pd_yaml_present(&ens);
    if (is_ens) rc = load_ensemble_folder(e, &root, yaml_path, err);
  }
  pd_yaml_free(y);
  free(text);
  if (rc == PD_OK && !is_ens) {
    rc = pd_model_load(dir, &e->members[0], err);
    if (rc == PD_OK) {
      e->n_members = 1;
      snprintf(e->name, sizeof e->name, "%s", e->members[0]->name);
      snprintf(e->version, sizeof e->version, "%s", e->members[0]->version);
      snprintf(e->member_dir[0], sizeof e->member_dir[0], "%s", dir);
      e->serving = e->members[0]->serving;
      e->segmentation = e->members[0]->segmentation;
      e->thresholds = e->members[0]->thresholds;
      e->lineage = e->members[0]->lineage;
      rc = finish(e, NULL, yaml_path, err);
    }
  }
  if (rc != PD_OK) {
    pd_ensemble_free(e);
    return rc;
  }
  *out = e;
  return PD_OK;
}
