#include "pd_yaml.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct pd_yaml {
  yaml_document_t doc;
  char *name;
};

/* ---- loading ---- */

static int parser_error(const yaml_parser_t *p, const char *name, pd_error *err) {
  if (p->error == YAML_MEMORY_ERROR)
    return pd_error_set(err, PD_ENOMEM, "%s: out of memory while parsing", name);
  const char *problem = p->problem ? p->problem : "syntax error";
  if (p->error == YAML_READER_ERROR)
    return pd_error_set(err, PD_EFORMAT, "%s: byte %zu: %s", name, p->problem_offset, problem);
  if (p->context)
    return pd_error_set(err, PD_EFORMAT, "%s:%zu:%zu: %s (%s, which started on line %zu)", name,
                        p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                        p->context_mark.line + 1);
  return pd_error_set(err, PD_EFORMAT, "%s:%zu:%zu: %s", name, p->problem_mark.line + 1,
                      p->problem_mark.column + 1, problem);
}

/* After the first document the stream must end. */
static int check_single_document(yaml_parser_t *p, const char *name, pd_error *err) {
  yaml_document_t extra;
  if (!yaml_parser_load(p, &extra)) return parser_error(p, name, err);
  yaml_node_t *root = yaml_document_get_root_node(&extra);
  int line = root ? (int)root->start_mark.line + 1 : 0;
  yaml_document_delete(&extra);
  if (root)
    return pd_error_set(err, PD_EFORMAT, "%s:%d: a second YAML document is not allowed", name,
                        line);
  return PD_OK;
}

int pd_yaml_load(const char *text, size_t len, const char *name, pd_yaml **out, pd_error *err) {
  *out = NULL;
  if (!name) name = "<yaml>";
  pd_yaml *y = calloc(1, sizeof *y);
  char *name_copy = strdup(name);
  yaml_parser_t p;
  if (!y || !name_copy || !yaml_parser_initialize(&p)) {
    free(y);
    free(name_copy);
    return pd_error_set(err, PD_ENOMEM, "%s: out of memory", name);
  }
  y->name = name_copy;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  int rc = PD_OK;
  if (!yaml_parser_load(&p, &y->doc)) {
    rc = parser_error(&p, name, err);
    yaml_parser_delete(&p);
    free(y->name);
    free(y);
    return rc;
  }
  if (!yaml_document_get_root_node(&y->doc))
    rc = pd_error_set(err, PD_EFORMAT, "%s: the document is empty", name);
  else
    rc = check_single_document(&p, name, err);
  yaml_parser_delete(&p);
  if (rc != PD_OK) {
    pd_yaml_free(y);
    return rc;
  }
  *out = y;
  return PD_OK;
}

void pd_yaml_free(pd_yaml *y) {
  if (!y) return;
  yaml_document_delete(&y->doc);
  free(y->name);
  free(y);
}

const char *pd_yaml_doc_name(const pd_yaml *y) {
  return y->name;
}

/* ---- nodes ---- */

static pd_yaml_node make_node(pd_yaml *doc, yaml_node_t *node, int fallback_line) {
  pd_yaml_node n;
  n.doc = doc;
  n.node = node;
  n.line = node ? (int)node->start_mark.line + 1 : fallback_line;
  n.path[0] = '\0';
  return n;
}

/* Appends text[len] to path, truncating (with "...") if it does not fit. */
static void path_append(char *path, size_t cap, const char *text, size_t len) {
  size_t used = strlen(path);
  if (used + len + 1 > cap) {
    if (used + 4 <= cap) memcpy(path + cap - 4, "...", 4);
    return;
  }
  memcpy(path + used, text, len);
  path[used + len] = '\0';
}

static void child_path_key(pd_yaml_node *child, const pd_yaml_node *parent, const char *key,
                           size_t key_len) {
  memcpy(child->path, parent->path, sizeof child->path);
  if (child->path[0]) path_append(child->path, sizeof child->path, ".", 1);
  path_append(child->path, sizeof child->path, key, key_len);
}

static void child_path_index(pd_yaml_node *child, const pd_yaml_node *parent, int i) {
  char idx[24];
  int k = snprintf(idx, sizeof idx, "[%d]", i);
  memcpy(child->path, parent->path, sizeof child->path);
  path_append(child->path, sizeof child->path, idx, (size_t)k);
}

pd_yaml_node pd_yaml_root(pd_yaml *y) {
  return make_node(y, yaml_document_get_root_node(&y->doc), 1);
}

pd_yaml_kind pd_yaml_kind_of(const pd_yaml_node *n) {
  if (!n->node) return PD_YAML_ABSENT;
  switch (n->node->type) {
  case YAML_SCALAR_NODE:
    return PD_YAML_SCALAR;
  case YAML_SEQUENCE_NODE:
    return PD_YAML_SEQ;
  case YAML_MAPPING_NODE:
    return PD_YAML_MAP;
  default:
    return PD_YAML_ABSENT;
  }
}

bool pd_yaml_present(const pd_yaml_node *n) {
  return pd_yaml_kind_of(n) != PD_YAML_ABSENT;
}

bool pd_yaml_is_null(const pd_yaml_node *n) {
  if (pd_yaml_kind_of(n) != PD_YAML_SCALAR || !pd_yaml_is_plain(n)) return false;
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  return len == 0 || (len == 1 && s[0] == '~') || (len == 4 && !memcmp(s, "null", 4)) ||
         (len == 4 && !memcmp(s, "Null", 4)) || (len == 4 && !memcmp(s, "NULL", 4));
}

int pd_yaml_line(const pd_yaml_node *n) {
  return n->line;
}

/* ---- errors ---- */

int pd_yaml_fail(const pd_yaml_node *n, pd_error *err, int code, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *name = n->doc ? n->doc->name : "<yaml>";
  if (n->line > 0 && n->path[0])
    return pd_error_set(err, code, "%s:%d: %s: %s", name, n->line, n->path, msg);
  if (n->line > 0) return pd_error_set(err, code, "%s:%d: %s", name, n->line, msg);
  if (n->path[0]) return pd_error_set(err, code, "%s: %s: %s", name, n->path, msg);
  return pd_error_set(err, code, "%s: %s", name, msg);
}

/* Describes what the node holds, for "got ..." in messages. */
static const char *describe(const pd_yaml_node *n, char *buf, size_t cap) {
  switch (pd_yaml_kind_of(n)) {
  case PD_YAML_ABSENT:
    return "nothing";
  case PD_YAML_SEQ:
    return "a sequence";
  case PD_YAML_MAP:
    return "a mapping";
  case PD_YAML_SCALAR:
    break;
  }
  if (pd_yaml_is_null(n)) return "an empty value";
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  size_t shown = len > 40 ? 40 : len;
  size_t j = 0;
  buf[j++] = '\'';
  for (size_t i = 0; i < shown && j + 6 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (shown < len) buf[j++] = '.', buf[j++] = '.', buf[j++] = '.';
  buf[j++] = '\'';
  buf[j] = '\0';
  return buf;
}

/* As describe(), saying "the quoted string '3'" where a number or boolean was expected. */
static const char *describe_typed(const pd_yaml_node *n, char *buf, size_t cap) {
  if (pd_yaml_kind_of(n) != PD_YAML_SCALAR || pd_yaml_is_plain(n)) return describe(n, buf, cap);
  char tmp[64];
  snprintf(buf, cap, "the quoted string %s", describe(n, tmp, sizeof tmp));
  return buf;
}

/* ---- mappings ---- */

int pd_yaml_expect_map(const pd_yaml_node *n, pd_error *err) {
  if (pd_yaml_kind_of(n) == PD_YAML_MAP) return PD_OK;
  char buf[64];
  return pd_yaml_fail(n, err, PD_EINVAL, "expected a mapping, got %s",
                      describe(n, buf, sizeof buf));
}

int pd_yaml_map_len(const pd_yaml_node *map) {
  if (pd_yaml_kind_of(map) != PD_YAML_MAP) return 0;
  return (int)(map->node->data.mapping.pairs.top - map->node->data.mapping.pairs.start);
}

const char *pd_yaml_map_entry(const pd_yaml_node *map, int i, size_t *key_len,
                              pd_yaml_node *value) {
  if (i < 0 || i >= pd_yaml_map_len(map)) {
    *value = make_node(map->doc, NULL, map->line);
    *key_len = 0;
    return NULL;
  }
  yaml_node_pair_t *pair = &map->node->data.mapping.pairs.start[i];
  yaml_node_t *key = yaml_document_get_node(&map->doc->doc, pair->key);
  yaml_node_t *val = yaml_document_get_node(&map->doc->doc, pair->value);
  *value = make_node(map->doc, val, map->line);
  if (!key || key->type != YAML_SCALAR_NODE) {
    child_path_key(value, map, "?", 1);
    *key_len = 0;
    return NULL;
  }
  *key_len = key->data.scalar.length;
  child_path_key(value, map, (const char *)key->data.scalar.value, key->data.scalar.length);
  return (const char *)key->data.scalar.value;
}

static bool key_is(const yaml_node_t *key, const char *want) {
  size_t n = strlen(want);
  return key && key->type == YAML_SCALAR_NODE && key->data.scalar.length == n &&
         !memcmp(key->data.scalar.value, want, n);
}

static bool key_allowed(const yaml_node_t *key, const char *const *allowed) {
  for (int i = 0; allowed[i]; i++)
    if (key_is(key, allowed[i])) return true;
  return false;
}

static int unknown_key(const pd_yaml_node *map, const yaml_node_t *key, const char *const *allowed,
                       pd_error *err) {
  char list[256] = "";
  for (int i = 0; allowed[i]; i++) {
    if (i) path_append(list, sizeof list, ", ", 2);
    path_append(list, sizeof list, allowed[i], strlen(allowed[i]));
  }
  pd_yaml_node at = *map;
  at.line = (int)key->start_mark.line + 1;
  pd_yaml_node k = make_node(map->doc, (yaml_node_t *)key, at.line);
  char buf[64];
  if (!allowed[0])
    return pd_yaml_fail(&at, err, PD_EINVAL, "unknown key %s (no keys are allowed here)",
                        describe(&k, buf, sizeof buf));
  return pd_yaml_fail(&at, err, PD_EINVAL, "unknown key %s (allowed: %s)",
                      describe(&k, buf, sizeof buf), list);
}

/* The keys' check; with `report`, every problem goes to it and the check
 * goes on (the first one's code is returned), else the first one ends it. */
static int check_keys(const pd_yaml_node *map, const char *const *allowed, pd_error *err,
                      void (*report)(void *ctx, const pd_error *e), void *ctx) {
  int rc = pd_yaml_expect_map(map, err);
  if (rc != PD_OK) {
    if (report) report(ctx, err);
    return rc;
  }
  yaml_node_pair_t *start = map->node->data.mapping.pairs.start;
  int n = pd_yaml_map_len(map), first = PD_OK;
  for (int i = 0; i < n; i++) {
    yaml_node_t *key = yaml_document_get_node(&map->doc->doc, start[i].key);
    rc = PD_OK;
    if (!key || key->type != YAML_SCALAR_NODE) {
      pd_yaml_node at = *map;
      if (key) at.line = (int)key->start_mark.line + 1;
      rc = pd_yaml_fail(&at, err, PD_EINVAL, "mapping keys must be plain strings");
    } else if (!key_allowed(key, allowed)) {
      rc = unknown_key(map, key, allowed, err);
    }
    for (int j = 0; rc == PD_OK && key && j < i; j++) {
      yaml_node_t *prev = yaml_document_get_node(&map->doc->doc, start[j].key);
      if (prev && prev->type == YAML_SCALAR_NODE &&
          prev->data.scalar.length == key->data.scalar.length &&
          !memcmp(prev->data.scalar.value, key->data.scalar.value, key->data.scalar.length)) {
        pd_yaml_node at = *map;
        at.line = (int)key->start_mark.line + 1;
        pd_yaml_node k = make_node(map->doc, key, at.line);
        char buf[64];
        rc = pd_yaml_fail(&at, err, PD_EINVAL, "duplicate key %s (first on line %d)",
                          describe(&k, buf, sizeof buf), (int)prev->start_mark.line + 1);
      }
    }
    if (rc == PD_OK) continue;
    if (!report) return rc;
    report(ctx, err);
    if (first == PD_OK) first = rc;
  }
  return first;
}

int pd_yaml_check_keys(const pd_yaml_node *map, const char *const *allowed, pd_error *err) {
  return check_keys(map, allowed, err, NULL, NULL);
}

int pd_yaml_check_keys_all(const pd_yaml_node *map, const char *const *allowed, pd_error *err,
                           void (*report)(void *ctx, const pd_error *e), void *ctx) {
  return check_keys(map, allowed, err, report, ctx);
}

pd_yaml_node pd_yaml_get(const pd_yaml_node *map, const char *key) {
  pd_yaml_node out = make_node(map->doc, NULL, map->line);
  child_path_key(&out, map, key, strlen(key));
  if (pd_yaml_kind_of(map) != PD_YAML_MAP) return out;
  yaml_node_pair_t *start = map->node->data.mapping.pairs.start;
  int n = pd_yaml_map_len(map);
  for (int i = 0; i < n; i++) {
    if (!key_is(yaml_document_get_node(&map->doc->doc, start[i].key), key)) continue;
    yaml_node_t *val = yaml_document_get_node(&map->doc->doc, start[i].value);
    out.node = val;
    out.line = val ? (int)val->start_mark.line + 1 : map->line;
    return out;
  }
  return out;
}

int pd_yaml_require(const pd_yaml_node *map, const char *key, pd_yaml_node *out, pd_error *err) {
  *out = pd_yaml_get(map, key);
  if (pd_yaml_present(out)) return PD_OK;
  return pd_yaml_fail(map, err, PD_EINVAL, "missing required key '%s'", key);
}

/* ---- sequences ---- */

int pd_yaml_seq_len(const pd_yaml_node *seq) {
  if (pd_yaml_kind_of(seq) != PD_YAML_SEQ) return 0;
  return (int)(seq->node->data.sequence.items.top - seq->node->data.sequence.items.start);
}

pd_yaml_node pd_yaml_seq_at(const pd_yaml_node *seq, int i) {
  yaml_node_t *item = NULL;
  if (i >= 0 && i < pd_yaml_seq_len(seq))
    item = yaml_document_get_node(&seq->doc->doc, seq->node->data.sequence.items.start[i]);
  pd_yaml_node out = make_node(seq->doc, item, seq->line);
  child_path_index(&out, seq, i);
  return out;
}

int pd_yaml_expect_seq(const pd_yaml_node *n, int min_len, int max_len, pd_error *err) {
  char buf[64];
  if (pd_yaml_kind_of(n) != PD_YAML_SEQ)
    return pd_yaml_fail(n, err, PD_EINVAL, "expected a sequence, got %s",
                        describe(n, buf, sizeof buf));
  int len = pd_yaml_seq_len(n);
  if (len < min_len)
    return pd_yaml_fail(n, err, PD_EINVAL, "expected at least %d item%s, got %d", min_len,
                        min_len == 1 ? "" : "s", len);
  if (len > max_len)
    return pd_yaml_fail(n, err, PD_ELIMIT, "expected at most %d item%s, got %d", max_len,
                        max_len == 1 ? "" : "s", len);
  return PD_OK;
}

/* ---- scalars ---- */

const char *pd_yaml_scalar(const pd_yaml_node *n, size_t *len) {
  if (pd_yaml_kind_of(n) != PD_YAML_SCALAR) return NULL;
  if (len) *len = n->node->data.scalar.length;
  return (const char *)n->node->data.scalar.value;
}

bool pd_yaml_is_plain(const pd_yaml_node *n) {
  return pd_yaml_kind_of(n) == PD_YAML_SCALAR &&
         n->node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* Strict decimal integer: [+-]?[0-9]+ (no YAML 1.1 hex, octal or underscores). */
static bool parse_ll(const char *s, size_t len, long long *out) {
  size_t i = 0;
  if (len && (s[0] == '-' || s[0] == '+')) i = 1;
  if (i == len || len > 32) return false;
  for (size_t j = i; j < len; j++)
    if (s[j] < '0' || s[j] > '9') return false;
  char tmp[40];
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  errno = 0;
  long long v = strtoll(tmp, NULL, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

static void int_expectation(long long lo, long long hi, bool parsed, char *buf, size_t cap) {
  if (parsed && hi < INT_MAX)
    snprintf(buf, cap, "an integer in %lld..%lld", lo, hi);
  else if (lo == 1)
    snprintf(buf, cap, "a positive integer");
  else if (lo == 0)
    snprintf(buf, cap, "a non-negative integer");
  else if (parsed)
    snprintf(buf, cap, "an integer >= %lld", lo);
  else
    snprintf(buf, cap, "an integer");
}

int pd_yaml_int(const pd_yaml_node *n, long long lo, long long hi, long long *out, pd_error *err) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  long long v = 0;
  char want[96], buf[96];
  bool parsed = s && pd_yaml_is_plain(n) && parse_ll(s, len, &v);
  if (parsed && v >= lo && v <= hi) {
    *out = v;
    return PD_OK;
  }
  int_expectation(lo, hi, parsed, want, sizeof want);
  return pd_yaml_fail(n, err, parsed && v > hi ? PD_ELIMIT : PD_EINVAL, "expected %s, got %s", want,
                      describe_typed(n, buf, sizeof buf));
}

/* A decimal number: digits, sign, '.', exponent (no hex, inf or nan). */
static bool parse_double(const char *s, size_t len, double *out) {
  if (len == 0 || len > 64) return false;
  bool digit = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c >= '0' && c <= '9')
      digit = true;
    else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
      return false;
  }
  if (!digit) return false;
  char tmp[72];
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  char *end;
  errno = 0;
  double v = strtod(tmp, &end);
  if (*end || errno == ERANGE || !isfinite(v)) return false;
  *out = v;
  return true;
}

int pd_yaml_float(const pd_yaml_node *n, double lo, double hi, double *out, pd_error *err) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  double v = 0;
  char buf[96];
  if (!s || !pd_yaml_is_plain(n) || !parse_double(s, len, &v))
    return pd_yaml_fail(n, err, PD_EINVAL, "expected a number, got %s",
                        describe_typed(n, buf, sizeof buf));
  if (!(v >= lo && v <= hi))
    return pd_yaml_fail(n, err, PD_EINVAL, "expected a number in [%g, %g], got %s", lo, hi,
                        describe_typed(n, buf, sizeof buf));
  *out = v;
  return PD_OK;
}

int pd_yaml_bool(const pd_yaml_node *n, bool *out, pd_error *err) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  if (s && pd_yaml_is_plain(n)) {
    if ((len == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))) {
      *out = true;
      return PD_OK;
    }
    if (len == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5))) {
      *out = false;
      return PD_OK;
    }
  }
  char buf[96];
  return pd_yaml_fail(n, err, PD_EINVAL, "expected true or false, got %s",
                      describe_typed(n, buf, sizeof buf));
}

int pd_yaml_string(const pd_yaml_node *n, size_t max_len, const char **out, pd_error *err) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  char buf[64];
  if (!s || pd_yaml_is_null(n))
    return pd_yaml_fail(n, err, PD_EINVAL, "expected a string, got %s",
                        describe(n, buf, sizeof buf));
  if (len == 0 || len > max_len)
    return pd_yaml_fail(n, err, len > max_len ? PD_ELIMIT : PD_EINVAL,
                        "expected a string of 1..%zu characters, got %zu characters: %s", max_len,
                        len, describe(n, buf, sizeof buf));
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f)
      return pd_yaml_fail(n, err, PD_EINVAL, "control character 0x%02x in %s", c,
                          describe(n, buf, sizeof buf));
  }
  *out = s;
  return PD_OK;
}

int pd_yaml_enum(const pd_yaml_node *n, const char *const *names, int n_names, int *out,
                 pd_error *err) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  for (int i = 0; s && i < n_names; i++) {
    if (strlen(names[i]) == len && !memcmp(s, names[i], len)) {
      *out = i;
      return PD_OK;
    }
  }
  char list[256] = "", buf[64];
  for (int i = 0; i < n_names; i++) {
    if (i) path_append(list, sizeof list, ", ", 2);
    path_append(list, sizeof list, names[i], strlen(names[i]));
  }
  return pd_yaml_fail(n, err, PD_EINVAL, "expected one of %s, got %s", list,
                      describe(n, buf, sizeof buf));
}

/* ---- optional and required keys ---- */

int pd_yaml_opt_int(const pd_yaml_node *map, const char *key, int lo, int hi, int *out,
                    pd_error *err) {
  pd_yaml_node n = pd_yaml_get(map, key);
  if (!pd_yaml_present(&n)) return PD_OK;
  long long v = 0;
  int rc = pd_yaml_int(&n, lo, hi, &v, err);
  if (rc == PD_OK) *out = (int)v;
  return rc;
}

int pd_yaml_opt_float(const pd_yaml_node *map, const char *key, double lo, double hi, float *out,
                      pd_error *err) {
  pd_yaml_node n = pd_yaml_get(map, key);
  if (!pd_yaml_present(&n)) return PD_OK;
  double v = 0.0;
  int rc = pd_yaml_float(&n, lo, hi, &v, err);
  if (rc == PD_OK) *out = (float)v;
  return rc;
}

int pd_yaml_opt_bool(const pd_yaml_node *map, const char *key, bool *out, pd_error *err) {
  pd_yaml_node n = pd_yaml_get(map, key);
  if (!pd_yaml_present(&n)) return PD_OK;
  return pd_yaml_bool(&n, out, err);
}

int pd_yaml_opt_enum(const pd_yaml_node *map, const char *key, const char *const *names,
                     int n_names, int *out, pd_error *err) {
  pd_yaml_node n = pd_yaml_get(map, key);
  if (!pd_yaml_present(&n)) return PD_OK;
  return pd_yaml_enum(&n, names, n_names, out, err);
}

int pd_yaml_req_int(const pd_yaml_node *map, const char *key, int lo, int hi, int *out,
                    pd_error *err) {
  pd_yaml_node n;
  int rc = pd_yaml_require(map, key, &n, err);
  long long v = 0;
  if (rc == PD_OK) rc = pd_yaml_int(&n, lo, hi, &v, err);
  if (rc == PD_OK) *out = (int)v;
  return rc;
}

int pd_yaml_req_float(const pd_yaml_node *map, const char *key, double lo, double hi, float *out,
                      pd_error *err) {
  pd_yaml_node n;
  int rc = pd_yaml_require(map, key, &n, err);
  double v = 0.0;
  if (rc == PD_OK) rc = pd_yaml_float(&n, lo, hi, &v, err);
  if (rc == PD_OK) *out = (float)v;
  return rc;
}

static bool ident_ok(const char *s, size_t len, size_t max_len, const char *extra) {
  if (len == 0 || len > max_len) return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !strchr(extra, c)) return false;
  }
  return true;
}

int pd_yaml_req_ident(const pd_yaml_node *map, const char *key, const char *extra, char *dst,
                      size_t cap, pd_error *err) {
  pd_yaml_node n;
  const char *s = NULL;
  PD_TRY(pd_yaml_require(map, key, &n, err));
  PD_TRY(pd_yaml_string(&n, cap - 1, &s, err));
  if (!s) return pd_yaml_fail(&n, err, PD_EINVAL, "expected a string");
  size_t len = strlen(s);
  if (!ident_ok(s, len, cap - 1, extra))
    return pd_yaml_fail(&n, err, PD_EINVAL, "'%s' must match [A-Za-z0-9%s]{1,%zu}", s, extra,
                        cap - 1);
  memcpy(dst, s, len + 1);
  return PD_OK;
}
