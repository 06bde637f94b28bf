/* The loader's per-class output blocks of model.yaml (models/FORMAT.md
 * "Thresholds" and "Lineage"): `thresholds:` (class -> the probability its
 * top-1 answers need, below which a crop is reported unclassified) and
 * `lineage:` (class -> "Root>...>Taxon", every class when given). Both are
 * keyed by class label and checked against the model's classes. */
#include <stdlib.h>
#include <string.h>

#include "pd_model_internal.h"

/* The index of the class named by key (key_len bytes), or -1. */
static int class_index(const pd_model *m, const char *key, size_t key_len) {
  for (int i = 0; i < m->n_classes; i++)
    if (strlen(m->classes[i]) == key_len && !memcmp(m->classes[i], key, key_len)) return i;
  return -1;
}

/* Entry i's class index; an error names the key when it is not a class. */
static int entry_class(const load_ctx *c, const pd_yaml_node *map, const char *block, int i,
                       pd_yaml_node *value, int *out) {
  size_t klen = 0;
  const char *key = pd_yaml_map_entry(map, i, &klen, value);
  int k = key ? class_index(c->m, key, klen) : -1;
  if (k < 0)
    return pd_yaml_fail(value, c->err, PD_EINVAL, "%s: '%.*s' is not one of the model's classes",
                        block, key ? (int)(klen > 127 ? 127 : klen) : 0, key ? key : "");
  *out = k;
  return PD_OK;
}

static int parse_thresholds(load_ctx *c, const pd_yaml_node *root) {
  pd_model *m = c->m;
  pd_yaml_node n = pd_yaml_get(root, "thresholds");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, c->err));
  m->thresholds = calloc((size_t)m->n_classes, sizeof *m->thresholds);
  if (!m->thresholds) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  int len = pd_yaml_map_len(&n);
  for (int i = 0; i < len; i++) {
    pd_yaml_node v;
    int k = 0;
    double t;
    PD_TRY(entry_class(c, &n, "thresholds", i, &v, &k));
    PD_TRY(pd_yaml_float(&v, 0.0, 1.0, &t, c->err));
    m->thresholds[k] = (float)t;
  }
  return PD_OK;
}

/* "A>B>C": 1..PD_MAX_LINEAGE_DEPTH names, none empty or padded with spaces. */
static int check_lineage(const load_ctx *c, const pd_yaml_node *v, const char *cls, const char *s) {
  int depth = 1;
  for (const char *p = s;; p++) {
    const char *end = strchr(p, '>');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || p[0] == ' ' || p[len - 1] == ' ')
      return pd_yaml_fail(v, c->err, PD_EINVAL,
                          "lineage of class '%s': '%s' has an empty or space-padded name at "
                          "depth %d (expected \"Root>...>Taxon\")",
                          cls, s, depth);
    if (!end) break;
    p = end;
    if (++depth > PD_MAX_LINEAGE_DEPTH)
      return pd_yaml_fail(v, c->err, PD_EINVAL, "lineage of class '%s' is deeper than %d names",
                          cls, PD_MAX_LINEAGE_DEPTH);
  }
  return PD_OK;
}

static int parse_lineage(load_ctx *c, const pd_yaml_node *root) {
  pd_model *m = c->m;
  pd_yaml_node n = pd_yaml_get(root, "lineage");
  if (!pd_yaml_present(&n)) return PD_OK;
  PD_TRY(pd_yaml_expect_map(&n, c->err));
  m->lineage = calloc((size_t)m->n_classes, sizeof *m->lineage);
  if (!m->lineage) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  int len = pd_yaml_map_len(&n);
  for (int i = 0; i < len; i++) {
    pd_yaml_node v;
    int k = 0;
    const char *s;
    PD_TRY(entry_class(c, &n, "lineage", i, &v, &k));
    PD_TRY(pd_yaml_string(&v, PD_MAX_LINEAGE_LEN, &s, c->err));
    PD_TRY(check_lineage(c, &v, m->classes[k], s));
    m->lineage[k] = strdup(s);
    if (!m->lineage[k]) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->yaml_name);
  }
  for (int k = 0; k < m->n_classes; k++)
    if (!m->lineage[k])
      return pd_yaml_fail(&n, c->err, PD_EINVAL,
                          "class '%s' has no lineage (when lineage is given, every class needs "
                          "one)",
                          m->classes[k]);
  return PD_OK;
}

int pd_model__parse_outputs(load_ctx *c, const pd_yaml_node *root) {
  PD_TRY(parse_thresholds(c, root));
  return parse_lineage(c, root);
}
