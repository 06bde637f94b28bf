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

#include "pd_tta.h"
#include "pd_warp.h"
#include "pd_yaml.h"

#define PD_MAX_ENSEMBLE_YAML (1 << 20)

#define TRY(expr)                                                                                  \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != PD_OK) return rc_;                                                                  \
  } while (0)

/* ---- building ---- */

static bool ident_ok(const char *s, const char *extra) {
  size_t len = strlen(s);
  if (len == 0 || len >= PD_NAME_LEN) return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !strchr(extra, c)) return false;
  }
  return true;
}

static const char *member_desc(const pd_ensemble *e, int i, char *buf, size_t cap) {
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
  member_desc(e, 0, da, sizeof da);
  member_desc(e, i, db, sizeof db);
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
    TRY(match_labels(e, i, where, err));
  e->n_classes = e->members[0]->n_classes;
  e->classes = e->members[0]->classes;
  if (e->tta_count <= 0) {
    e->tta_count = 1;
    for (int i = 0; i < e->n_members; i++) {
      int c = pd_tta_default_count(e->members[i]);
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

static int read_text(const char *path, char **out, size_t *len, pd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return pd_error_set(err, PD_EIO, "cannot open %s: %s", path, strerror(errno));
  char *buf = malloc(PD_MAX_ENSEMBLE_YAML + 1);
  if (!buf) {
    fclose(f);
    return pd_error_set(err, PD_ENOMEM, "%s: out of memory", path);
  }
  size_t n = fread(buf, 1, PD_MAX_ENSEMBLE_YAML + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return pd_error_set(err, PD_EIO, "cannot read %s", path);
  }
  if (n > PD_MAX_ENSEMBLE_YAML) {
    free(buf);
    return pd_error_set(err, PD_ELIMIT, "%s is more than %d bytes", path, PD_MAX_ENSEMBLE_YAML);
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return PD_OK;
}

static int parse_ident(const pd_yaml_node *root, const char *key, const char *extra, char *dst,
                       pd_error *err) {
  pd_yaml_node n;
  const char *s;
  TRY(pd_yaml_require(root, key, &n, err));
  TRY(pd_yaml_string(&n, PD_NAME_LEN - 1, &s, err));
  if (!ident_ok(s, extra))
    return pd_yaml_fail(&n, err, PD_EINVAL, "'%s' must match [A-Za-z0-9%s]{1,63}", s, extra);
  snprintf(dst, PD_NAME_LEN, "%s", s);
  return PD_OK;
}

typedef struct ens_desc {
  int n;
  char paths[PD_MAX_MEMBERS][4096];
  int lines[PD_MAX_MEMBERS];
  double weights[PD_MAX_MEMBERS];
  int tta_count;
} ens_desc;

static int parse_ensemble_yaml(pd_ensemble *e, const pd_yaml_node *root, ens_desc *d,
                               pd_error *err) {
  static const char *const keys[] = {"format", "name", "version", "ensemble", "tta", NULL};
  static const char *const ens_keys[] = {"members", "weights", NULL};
  static const char *const tta_keys[] = {"count", NULL};
  TRY(pd_yaml_expect_map(root, err));
  TRY(pd_yaml_check_keys(root, keys, err));
  pd_yaml_node fmt;
  long long v;
  TRY(pd_yaml_require(root, "format", &fmt, err));
  TRY(pd_yaml_int(&fmt, 0, 1000000, &v, err));
  if (v != 1)
    return pd_yaml_fail(&fmt, err, PD_EUNSUPP, "%lld is not supported (only format 1)", v);
  TRY(parse_ident(root, "name", "._-", e->name, err));
  TRY(parse_ident(root, "version", "._+-", e->version, err));
  pd_yaml_node ens, members;
  TRY(pd_yaml_require(root, "ensemble", &ens, err));
  TRY(pd_yaml_expect_map(&ens, err));
  TRY(pd_yaml_check_keys(&ens, ens_keys, err));
  TRY(pd_yaml_require(&ens, "members", &members, err));
  TRY(pd_yaml_expect_seq(&members, 1, PD_MAX_MEMBERS, err));
  d->n = pd_yaml_seq_len(&members);
  for (int i = 0; i < d->n; i++) {
    pd_yaml_node item = pd_yaml_seq_at(&members, i);
    const char *s;
    TRY(pd_yaml_string(&item, 1024, &s, err));
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
    TRY(pd_yaml_expect_seq(&w, 0, PD_MAX_MEMBERS, err));
    if (pd_yaml_seq_len(&w) != d->n)
      return pd_yaml_fail(&w, err, PD_EINVAL, "%d weights for %d members", pd_yaml_seq_len(&w),
                          d->n);
    for (int i = 0; i < d->n; i++) {
      pd_yaml_node item = pd_yaml_seq_at(&w, i);
      TRY(pd_yaml_float(&item, 0, 1e6, &d->weights[i], err));
      if (!(d->weights[i] > 0))
        return pd_yaml_fail(&item, err, PD_EINVAL, "weight must be > 0, got %g", d->weights[i]);
    }
  }
  d->tta_count = 0;
  pd_yaml_node tta = pd_yaml_get(root, "tta");
  if (pd_yaml_present(&tta)) {
    TRY(pd_yaml_check_keys(&tta, tta_keys, err));
    TRY(pd_yaml_opt_int(&tta, "count", 0, PD_TTA_MAX, &d->tta_count, err));
    if (d->tta_count == 0) d->tta_count = 1; /* explicit 0: off */
  }
  return PD_OK;
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
  return rc;
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
  char *text = NULL;
  size_t len = 0;
  pd_yaml *y = NULL;
  int rc = read_text(yaml_path, &text, &len, err);
  if (rc == PD_OK) rc = pd_yaml_load(text, len, yaml_path, &y, err);
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

/* ---- input slots ---- */

void pd_ensemble_inputs_free(pd_ensemble_inputs *in) {
  if (!in) return;
  for (int m = 0; m < PD_MAX_MEMBERS; m++)
    for (int b = 0; b < PD_MAX_BRANCHES; b++) {
      free(in->slots[m][b]);
      in->slots[m][b] = NULL;
    }
  in->capacity = 0;
}

int pd_ensemble_inputs_init(const pd_ensemble *e, int capacity, pd_ensemble_inputs *in,
                            pd_error *err) {
  memset(in, 0, sizeof *in);
  if (capacity < 1)
    return pd_error_set(err, PD_EINVAL, "ensemble inputs: capacity %d must be >= 1", capacity);
  in->capacity = capacity;
  in->n_members = e->n_members;
  for (int m = 0; m < e->n_members; m++)
    for (int b = 0; b < e->members[m]->n_branches; b++) {
      size_t len = pd_model_branch_input_len(e->members[m], b);
      in->slots[m][b] = malloc((size_t)capacity * len * sizeof(float) + sizeof(float));
      if (!in->slots[m][b]) {
        pd_ensemble_inputs_free(in);
        return pd_error_set(err, PD_ENOMEM, "out of memory for %d input slots of model %s",
                            capacity, e->members[m]->name);
      }
    }
  return PD_OK;
}

int pd_ensemble_preprocess(const pd_ensemble *e, const uint8_t *src, int src_w, int src_h,
                           int n_tta, pd_ensemble_inputs *in, int first, pd_error *err) {
  if (n_tta < 1 || n_tta > PD_TTA_MAX)
    return pd_error_set(err, PD_EINVAL, "tta count %d out of range 1..%d", n_tta, PD_TTA_MAX);
  if (first < 0 || first > in->capacity - n_tta)
    return pd_error_set(err, PD_EINVAL, "slots %d..%d exceed the %d input slots", first,
                        first + n_tta - 1, in->capacity);
  for (int m = 0; m < e->n_members; m++) {
    const pd_model *mod = e->members[m];
    float *slots[PD_MAX_BRANCHES];
    for (int t = 0; t < n_tta; t++) {
      pd_augment aug = pd_tta_transform_at(&mod->tta, mod->symmetry, t);
      for (int b = 0; b < mod->n_branches; b++)
        slots[b] = in->slots[m][b] + (size_t)(first + t) * pd_model_branch_input_len(mod, b);
      pd_preprocess_image(mod, src, src_w, src_h, &aug, slots);
    }
  }
  return PD_OK;
}

/* ---- running ---- */

struct pd_ensemble_plan {
  const pd_ensemble *e;
  int max_batch;
  pd_plan *plans[PD_MAX_MEMBERS];
  float *rows; /* max_batch x n_classes: one member's output for a chunk */
  double *acc; /* max_batch x n_classes: the chunk's images, being summed */
};

void pd_ensemble_plan_destroy(pd_ensemble_plan *p) {
  if (!p) return;
  for (int m = 0; m < PD_MAX_MEMBERS; m++)
    pd_plan_destroy(p->plans[m]);
  free(p->rows);
  free(p->acc);
  free(p);
}

int pd_ensemble_plan_create(pd_backend *be, const pd_ensemble *e, int max_batch,
                            pd_ensemble_plan **out, pd_error *err) {
  *out = NULL;
  if (!be || !e) return pd_error_set(err, PD_EINVAL, "ensemble plan: null argument");
  if (max_batch < 1)
    return pd_error_set(err, PD_EINVAL, "ensemble plan: max_batch %d must be >= 1", max_batch);
  pd_ensemble_plan *p = calloc(1, sizeof *p);
  if (!p) return pd_error_set(err, PD_ENOMEM, "out of memory for an ensemble plan");
  p->e = e;
  p->max_batch = max_batch;
  size_t cells = (size_t)max_batch * (size_t)e->n_classes;
  p->rows = malloc(cells * sizeof *p->rows);
  p->acc = calloc(cells, sizeof *p->acc);
  int rc = PD_OK;
  if (!p->rows || !p->acc)
    rc = pd_error_set(err, PD_ENOMEM, "out of memory for an ensemble plan of %d slots", max_batch);
  for (int m = 0; rc == PD_OK && m < e->n_members; m++) {
    rc = pd_plan_create(be, e->members[m], max_batch, &p->plans[m], err);
    if (rc != PD_OK && e->is_ensemble) {
      char desc[4300];
      pd_error_prefix(err, "%s", member_desc(e, m, desc, sizeof desc));
    }
  }
  if (rc != PD_OK) {
    pd_ensemble_plan_destroy(p);
    return rc;
  }
  *out = p;
  return PD_OK;
}

int pd_ensemble_plan_max_batch(const pd_ensemble_plan *p) {
  return p ? p->max_batch : 0;
}

/* Adds member m's rows for slots [s0, s1) into the accumulator rows of their
 * images; image `img_lo` (accumulator row 0) starts at slot `start_lo`. */
static void accumulate(pd_ensemble_plan *p, int m, int s0, int s1, int img_lo, int start_lo,
                       const int *counts) {
  const pd_ensemble *e = p->e;
  const int nc = e->n_classes;
  const int *perm = e->perm[m];
  int i = img_lo, start = start_lo;
  for (int s = s0; s < s1; s++) {
    int cnt = counts ? counts[i] : 1;
    while (s >= start + cnt) {
      start += cnt;
      i++;
      cnt = counts ? counts[i] : 1;
    }
    const double w = e->weights[m] / cnt;
    const float *row = p->rows + (size_t)(s - s0) * nc;
    double *acc = p->acc + (size_t)(i - img_lo) * nc;
    if (perm)
      for (int c = 0; c < nc; c++)
        acc[perm[c]] += w * row[c];
    else
      for (int c = 0; c < nc; c++)
        acc[c] += w * row[c];
  }
}

int pd_ensemble_plan_run(pd_ensemble_plan *p, const pd_ensemble_inputs *in, int n_images,
                         const int *counts, float *probs, pd_error *err) {
  if (!p || !in || (n_images > 0 && !probs))
    return pd_error_set(err, PD_EINVAL, "ensemble run: null argument");
  const pd_ensemble *e = p->e;
  if (n_images < 0) return pd_error_set(err, PD_EINVAL, "ensemble run: %d images", n_images);
  if (in->n_members != e->n_members)
    return pd_error_set(err, PD_EINVAL, "ensemble run: inputs for %d members, model %s has %d",
                        in->n_members, e->name, e->n_members);
  long long total = 0;
  for (int i = 0; i < n_images; i++) {
    int c = counts ? counts[i] : 1;
    if (c < 1 || c > PD_TTA_MAX)
      return pd_error_set(err, PD_EINVAL, "ensemble run: image %d has %d slots (1..%d allowed)", i,
                          c, PD_TTA_MAX);
    total += c;
  }
  if (total > in->capacity)
    return pd_error_set(err, PD_EINVAL, "ensemble run: %lld slots exceed the inputs' %d", total,
                        in->capacity);
  const int nc = e->n_classes;
  memset(p->acc, 0, (size_t)p->max_batch * nc * sizeof *p->acc);
  int img_lo = 0, start_lo = 0;
  for (int s0 = 0; s0 < (int)total; s0 += p->max_batch) {
    int s1 = (int)total - s0 < p->max_batch ? (int)total : s0 + p->max_batch;
    for (int m = 0; m < e->n_members; m++) {
      const pd_model *mod = e->members[m];
      pd_batch batch = {.n = s1 - s0};
      for (int b = 0; b < mod->n_branches; b++)
        batch.branch[b] = in->slots[m][b] + (size_t)s0 * pd_model_branch_input_len(mod, b);
      int rc = pd_plan_run(p->plans[m], &batch, p->rows, err);
      if (rc != PD_OK) {
        if (e->is_ensemble) {
          char desc[4300];
          pd_error_prefix(err, "%s", member_desc(e, m, desc, sizeof desc));
        }
        return rc;
      }
      accumulate(p, m, s0, s1, img_lo, start_lo, counts);
    }
    /* Write out the images that end in this chunk; keep the one that goes on. */
    int i = img_lo, start = start_lo;
    while (i < n_images && start + (counts ? counts[i] : 1) <= s1) {
      const double *acc = p->acc + (size_t)(i - img_lo) * nc;
      float *dst = probs + (size_t)i * nc;
      for (int c = 0; c < nc; c++)
        dst[c] = (float)acc[c];
      start += counts ? counts[i] : 1;
      i++;
    }
    int rows_used = i < n_images && start < s1 ? i - img_lo + 1 : i - img_lo;
    if (i < n_images && start < s1 && i > img_lo)
      memcpy(p->acc, p->acc + (size_t)(i - img_lo) * nc, (size_t)nc * sizeof *p->acc);
    int keep = i < n_images && start < s1 ? 1 : 0;
    memset(p->acc + (size_t)keep * nc, 0, (size_t)(rows_used - keep) * nc * sizeof *p->acc);
    img_lo = i;
    start_lo = start;
  }
  return PD_OK;
}
