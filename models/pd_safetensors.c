#include "pd_safetensors.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_yaml.h"

#define PD_ST_MAX_HEADER ((uint64_t)100 << 20)
/* libyaml keeps ~80 bytes per value: cap the values so a hostile header
 * cannot make the parser allocate gigabytes (a real model has a few thousand). */
#define PD_ST_MAX_VALUES (1 << 21)
/* libyaml's scanner is quadratic in the nesting depth; a real header has 3 levels. */
#define PD_ST_MAX_DEPTH 32

typedef struct dtype_info {
  const char *name;
  size_t size;
  pd_dtype kind;
} dtype_info;

/* Every dtype the safetensors format defines (only F32 and F16 convert to float). */
static const dtype_info k_dtypes[] = {
    {"F32", 4, PD_DTYPE_F32},    {"F16", 2, PD_DTYPE_F16},       {"BF16", 2, PD_DTYPE_OTHER},
    {"F64", 8, PD_DTYPE_OTHER},  {"I64", 8, PD_DTYPE_OTHER},     {"I32", 4, PD_DTYPE_OTHER},
    {"I16", 2, PD_DTYPE_OTHER},  {"I8", 1, PD_DTYPE_OTHER},      {"U64", 8, PD_DTYPE_OTHER},
    {"U32", 4, PD_DTYPE_OTHER},  {"U16", 2, PD_DTYPE_OTHER},     {"U8", 1, PD_DTYPE_OTHER},
    {"BOOL", 1, PD_DTYPE_OTHER}, {"F8_E4M3", 1, PD_DTYPE_OTHER}, {"F8_E5M2", 1, PD_DTYPE_OTHER},
};

/* Parsing state: the file's name for messages and its data section. */
typedef struct st_ctx {
  const char *name;
  const uint8_t *data;
  size_t data_len;
  pd_error *err;
} st_ctx;

const char *pd_safetensors_format_shape(const int64_t *shape, int ndim, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i <= ndim && used < cap; i++) {
    int k;
    if (i == ndim)
      k = snprintf(buf + used, cap - used, "]");
    else
      k = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "[", (long long)shape[i]);
    if (k < 0) break;
    used += (size_t)k;
  }
  if (ndim == 0) snprintf(buf, cap, "[]");
  return buf;
}

/* ---- header fields ---- */

/* A non-negative JSON integer (plain digits, at most 2^64 - 1). */
static bool node_u64(const pd_yaml_node *n, uint64_t *out) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  if (!s || !pd_yaml_is_plain(n) || len == 0 || len > 20) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* The scalar's text for a message, shortened and without control characters. */
static const char *shown(const pd_yaml_node *n, char *buf, size_t cap) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  if (!s) return pd_yaml_kind_of(n) == PD_YAML_SEQ ? "a list" : "an object";
  size_t j = 0;
  for (size_t i = 0; i < len && j + 4 < cap; i++)
    buf[j++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (j < len) buf[j++] = '.', buf[j++] = '.', buf[j++] = '.';
  buf[j] = '\0';
  return buf;
}

static int parse_dtype(const st_ctx *c, pd_safetensors_tensor *t, const pd_yaml_node *n,
                       size_t *esize) {
  size_t len = 0;
  const char *s = pd_yaml_scalar(n, &len);
  for (size_t i = 0; s && i < sizeof k_dtypes / sizeof k_dtypes[0]; i++) {
    if (strlen(k_dtypes[i].name) != len || memcmp(s, k_dtypes[i].name, len) != 0) continue;
    t->dtype = k_dtypes[i].kind;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", k_dtypes[i].name);
    *esize = k_dtypes[i].size;
    return PD_OK;
  }
  char buf[48];
  return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", c->name, t->name,
                      shown(n, buf, sizeof buf));
}

static int parse_shape(const st_ctx *c, pd_safetensors_tensor *t, const pd_yaml_node *n) {
  if (pd_yaml_kind_of(n) != PD_YAML_SEQ)
    return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': shape is not a list", c->name,
                        t->name);
  int ndim = pd_yaml_seq_len(n);
  if (ndim > PD_ST_MAX_DIMS)
    return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': %d dimensions (at most %d)", c->name,
                        t->name, ndim, PD_ST_MAX_DIMS);
  for (int i = 0; i < ndim; i++) {
    pd_yaml_node d = pd_yaml_seq_at(n, i);
    uint64_t v;
    if (!node_u64(&d, &v) || v > (uint64_t)INT64_MAX) {
      char buf[48];
      return pd_error_set(c->err, PD_EFORMAT,
                          "%s: tensor '%s': shape[%d] must be a non-negative integer, got %s",
                          c->name, t->name, i, shown(&d, buf, sizeof buf));
    }
    t->shape[i] = (int64_t)v;
  }
  t->ndim = ndim;
  return PD_OK;
}

static int parse_offsets(const st_ctx *c, pd_safetensors_tensor *t, const pd_yaml_node *n,
                         uint64_t *begin, uint64_t *end) {
  if (pd_yaml_kind_of(n) != PD_YAML_SEQ || pd_yaml_seq_len(n) != 2)
    return pd_error_set(c->err, PD_EFORMAT,
                        "%s: tensor '%s': data_offsets must be a list [begin, end]", c->name,
                        t->name);
  uint64_t v[2];
  for (int i = 0; i < 2; i++) {
    pd_yaml_node o = pd_yaml_seq_at(n, i);
    if (!node_u64(&o, &v[i])) {
      char buf[48];
      return pd_error_set(c->err, PD_EFORMAT,
                          "%s: tensor '%s': data_offsets[%d] must be a non-negative integer, "
                          "got %s",
                          c->name, t->name, i, shown(&o, buf, sizeof buf));
    }
  }
  if (v[0] > v[1])
    return pd_error_set(c->err, PD_EFORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] begin after their end", c->name,
                        t->name, (unsigned long long)v[0], (unsigned long long)v[1]);
  if (v[1] > c->data_len)
    return pd_error_set(c->err, PD_EFORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] go beyond the %zu data bytes "
                        "(truncated file?)",
                        c->name, t->name, (unsigned long long)v[0], (unsigned long long)v[1],
                        c->data_len);
  *begin = v[0];
  *end = v[1];
  return PD_OK;
}

/* nbytes must be exactly prod(shape) * sizeof(dtype). */
static int check_size(const st_ctx *c, const pd_safetensors_tensor *t, size_t esize) {
  uint64_t bytes = esize;
  char sh[128];
  for (int i = 0; i < t->ndim; i++) {
    if (__builtin_mul_overflow(bytes, (uint64_t)t->shape[i], &bytes))
      return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': shape %s overflows", c->name,
                          t->name, pd_safetensors_format_shape(t->shape, t->ndim, sh, sizeof sh));
  }
  if (bytes != (uint64_t)t->nbytes)
    return pd_error_set(c->err, PD_EFORMAT,
                        "%s: tensor '%s': data_offsets hold %zu bytes but shape %s of %s needs "
                        "%llu",
                        c->name, t->name, t->nbytes,
                        pd_safetensors_format_shape(t->shape, t->ndim, sh, sizeof sh),
                        t->dtype_name, (unsigned long long)bytes);
  return PD_OK;
}

static const char *const k_entry_keys[] = {"dtype", "shape", "data_offsets", NULL};

static int get_field(const st_ctx *c, const pd_safetensors_tensor *t, const pd_yaml_node *entry,
                     const char *key, pd_yaml_node *out) {
  *out = pd_yaml_get(entry, key);
  if (pd_yaml_present(out)) return PD_OK;
  return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': missing '%s'", c->name, t->name, key);
}

/* Only dtype, shape and data_offsets, each at most once. */
static int check_entry_keys(const st_ctx *c, const pd_safetensors_tensor *t,
                            const pd_yaml_node *entry) {
  if (pd_yaml_kind_of(entry) != PD_YAML_MAP)
    return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': entry is not an object", c->name,
                        t->name);
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < pd_yaml_map_len(entry); i++) {
    size_t klen = 0;
    pd_yaml_node v;
    const char *k = pd_yaml_map_entry(entry, i, &klen, &v);
    int which = -1;
    for (int j = 0; k && k_entry_keys[j]; j++)
      if (strlen(k_entry_keys[j]) == klen && !memcmp(k, k_entry_keys[j], klen)) which = j;
    if (which < 0)
      return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': unknown key '%.40s'", c->name,
                          t->name, k ? k : "?");
    if (seen[which]++)
      return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s': duplicate key '%s'", c->name,
                          t->name, k_entry_keys[which]);
  }
  return PD_OK;
}

static int parse_entry(const st_ctx *c, pd_safetensors_tensor *t, const pd_yaml_node *entry) {
  pd_yaml_node dtype, shape, offsets;
  int rc = check_entry_keys(c, t, entry);
  if (rc == PD_OK) rc = get_field(c, t, entry, "dtype", &dtype);
  if (rc == PD_OK) rc = get_field(c, t, entry, "shape", &shape);
  if (rc == PD_OK) rc = get_field(c, t, entry, "data_offsets", &offsets);
  size_t esize = 0;
  if (rc == PD_OK) rc = parse_dtype(c, t, &dtype, &esize);
  if (rc == PD_OK) rc = parse_shape(c, t, &shape);
  uint64_t begin = 0, end = 0;
  if (rc == PD_OK) rc = parse_offsets(c, t, &offsets, &begin, &end);
  if (rc != PD_OK) return rc;
  t->data = c->data + begin;
  t->nbytes = (size_t)(end - begin);
  return check_size(c, t, esize);
}

/* ---- the table ---- */

static int set_name(const st_ctx *c, pd_safetensors_tensor *t, const char *key, size_t len,
                    int index) {
  if (!key || len == 0 || memchr(key, '\0', len))
    return pd_error_set(c->err, PD_EFORMAT, "%s: tensor #%d has an empty or invalid name", c->name,
                        index);
  t->name = malloc(len + 1);
  if (!t->name) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->name);
  memcpy(t->name, key, len);
  t->name[len] = '\0';
  return PD_OK;
}

static bool is_metadata(const char *key, size_t len) {
  return key && len == 12 && !memcmp(key, "__metadata__", 12);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const pd_safetensors_tensor *)a)->name, ((const pd_safetensors_tensor *)b)->name);
}

static int cmp_data(const void *a, const void *b) {
  const pd_safetensors_tensor *x = *(const pd_safetensors_tensor *const *)a,
                              *y = *(const pd_safetensors_tensor *const *)b;
  return x->data < y->data ? -1 : x->data > y->data ? 1 : 0;
}

/* Sorted by name, equal neighbours are duplicates. */
static int check_duplicates(const st_ctx *c, pd_safetensors_file *f) {
  qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
  for (int i = 1; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name))
      return pd_error_set(c->err, PD_EFORMAT, "%s: tensor '%s' appears twice", c->name,
                          f->tensors[i].name);
  return PD_OK;
}

/* Sorted by start, a non-empty tensor must begin at or after the previous one's end. */
static int check_overlaps(const st_ctx *c, const pd_safetensors_file *f) {
  /* an array of pointers: the pointer's size is meant */
  pd_safetensors_tensor **order =
      malloc(((size_t)f->n_tensors + 1) * sizeof *order); // NOLINT(bugprone-sizeof-expression)
  if (!order) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->name);
  int n = 0;
  for (int i = 0; i < f->n_tensors; i++)
    if (f->tensors[i].nbytes) order[n++] = &f->tensors[i];
  qsort(order, (size_t)n, sizeof *order, cmp_data); // NOLINT(bugprone-sizeof-expression)
  int rc = PD_OK;
  for (int i = 1; i < n && rc == PD_OK; i++) {
    const pd_safetensors_tensor *a = order[i - 1], *b = order[i];
    if (b->data < a->data + a->nbytes)
      rc = pd_error_set(
          c->err, PD_EFORMAT, "%s: tensors '%s' (bytes %zu..%zu) and '%s' (bytes %zu..%zu) overlap",
          c->name, a->name, (size_t)(a->data - c->data), (size_t)(a->data - c->data) + a->nbytes,
          b->name, (size_t)(b->data - c->data), (size_t)(b->data - c->data) + b->nbytes);
  }
  free(order);
  return rc;
}

static int parse_table(const st_ctx *c, const pd_yaml_node *root, pd_safetensors_file *out) {
  int n = pd_yaml_map_len(root);
  out->tensors = calloc((size_t)n + 1, sizeof *out->tensors);
  if (!out->tensors) return pd_error_set(c->err, PD_ENOMEM, "%s: out of memory", c->name);
  for (int i = 0; i < n; i++) {
    size_t klen = 0;
    pd_yaml_node entry;
    const char *key = pd_yaml_map_entry(root, i, &klen, &entry);
    if (is_metadata(key, klen)) continue;
    pd_safetensors_tensor *t = &out->tensors[out->n_tensors];
    int rc = set_name(c, t, key, klen, i);
    if (rc != PD_OK) return rc;
    out->n_tensors++;
    rc = parse_entry(c, t, &entry);
    if (rc != PD_OK) return rc;
  }
  int rc = check_duplicates(c, out);
  if (rc == PD_OK) rc = check_overlaps(c, out);
  return rc;
}

/* Counts separators and openers outside strings (an upper bound on the
 * values) and the deepest nesting of [ and {. */
static void scan_header(const uint8_t *s, size_t len, size_t *values, int *max_depth) {
  size_t n = 0;
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = s[i];
    if (in_string) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    if (ch == '[' || ch == '{') depth++;
    if ((ch == ']' || ch == '}') && depth > 0) depth--;
    if (depth > deepest) deepest = depth;
    if (ch == '"' || ch == ',' || ch == '[' || ch == '{' || ch == ':') n++;
  }
  *values = n;
  *max_depth = deepest;
}

static int read_header_len(const uint8_t *buf, size_t len, const char *name, uint64_t *n,
                           pd_error *err) {
  if (len < 8)
    return pd_error_set(err, PD_EFORMAT,
                        "%s: file is %zu bytes, too short for the 8-byte header length", name, len);
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | buf[i];
  if (v > PD_ST_MAX_HEADER)
    return pd_error_set(err, PD_EFORMAT, "%s: header length %llu is absurd (more than %llu bytes)",
                        name, (unsigned long long)v, (unsigned long long)PD_ST_MAX_HEADER);
  if (v > len - 8)
    return pd_error_set(err, PD_EFORMAT,
                        "%s: header length %llu goes beyond the end of the file (%zu bytes; "
                        "truncated?)",
                        name, (unsigned long long)v, len);
  size_t i = 0;
  while (i < v &&
         (buf[8 + i] == ' ' || buf[8 + i] == '\n' || buf[8 + i] == '\r' || buf[8 + i] == '\t'))
    i++;
  if (i == v || buf[8 + i] != '{')
    return pd_error_set(err, PD_EFORMAT, "%s: header (%llu bytes) is not a JSON object", name,
                        (unsigned long long)v);
  size_t values;
  int depth;
  scan_header(buf + 8, (size_t)v, &values, &depth);
  if (values > PD_ST_MAX_VALUES)
    return pd_error_set(err, PD_ELIMIT, "%s: header holds about %zu values (at most %d)", name,
                        values, PD_ST_MAX_VALUES);
  if (depth > PD_ST_MAX_DEPTH)
    return pd_error_set(err, PD_ELIMIT, "%s: header is nested %d levels deep (at most %d)", name,
                        depth, PD_ST_MAX_DEPTH);
  *n = v;
  return PD_OK;
}

int pd_safetensors_parse(const uint8_t *buf, size_t len, const char *name, pd_safetensors_file *out,
                         pd_error *err) {
  memset(out, 0, sizeof *out);
  if (!name) name = "safetensors";
  uint64_t hlen = 0;
  int rc = read_header_len(buf, len, name, &hlen, err);
  if (rc != PD_OK) return rc;
  char doc_name[512];
  snprintf(doc_name, sizeof doc_name, "%s (JSON header)", name);
  pd_yaml *y;
  rc = pd_yaml_load((const char *)buf + 8, (size_t)hlen, doc_name, &y, err);
  if (rc != PD_OK) return rc;
  pd_yaml_node root = pd_yaml_root(y);
  st_ctx c = {name, buf + 8 + hlen, len - 8 - (size_t)hlen, err};
  if (pd_yaml_kind_of(&root) != PD_YAML_MAP)
    rc = pd_error_set(err, PD_EFORMAT, "%s: header is not a JSON object", name);
  else
    rc = parse_table(&c, &root, out);
  pd_yaml_free(y);
  if (rc != PD_OK) pd_safetensors_free(out);
  return rc;
}

pd_safetensors_tensor *pd_safetensors_find(pd_safetensors_file *f, const char *name) {
  int lo = 0, hi = f->n_tensors - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->tensors[mid].name, name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

size_t pd_safetensors_numel(const pd_safetensors_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= (size_t)t->shape[i];
  return n;
}

void pd_safetensors_free(pd_safetensors_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n_tensors; i++)
    free(f->tensors[i].name);
  free(f->tensors);
  f->tensors = NULL;
  f->n_tensors = 0;
}

/* ---- conversion ---- */

/* IEEE half to float: zero and subnormals (m * 2^-24), normals, inf and nan. */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    float f = ldexpf((float)mant, -24);
    return sign ? -f : f;
  }
  uint32_t bits =
      exp == 31 ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

int pd_safetensors_to_f32(const pd_safetensors_tensor *t, float *dst, size_t n, pd_error *err) {
  size_t numel = pd_safetensors_numel(t);
  if (numel != n)
    return pd_error_set(err, PD_EINVAL, "tensor '%s' has %zu elements, expected %zu", t->name,
                        numel, n);
  const uint8_t *p = t->data;
  if (t->dtype == PD_DTYPE_F32 && t->nbytes == n * 4) {
    for (size_t i = 0; i < n; i++, p += 4) {
      uint32_t bits =
          (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&dst[i], &bits, sizeof bits);
    }
    return PD_OK;
  }
  if (t->dtype == PD_DTYPE_F16 && t->nbytes == n * 2) {
    for (size_t i = 0; i < n; i++, p += 2)
      dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8));
    return PD_OK;
  }
  return pd_error_set(err, PD_EUNSUPP,
                      "tensor '%s': dtype %s cannot be read as float32 "
                      "(expected F32 or F16)",
                      t->name, t->dtype_name);
}
