/* pc_cli_meta: the --metadata table (see pc_cli_meta.h). */
#include "pc_cli_meta.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli_path.h"
#include "pc_cli_utf8.h"

#define MAX_META_BYTES (256u << 20)

typedef struct record {
  char **v;
  size_t n, cap;
  long line;
} record;

static void record_free(record *r) {
  for (size_t i = 0; r->v && i < r->n; i++)
    free(r->v[i]);
  free(r->v);
  memset(r, 0, sizeof *r);
}

static int record_push(record *r, const char *s, size_t len) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 16;
    char **v = realloc(r->v, cap * sizeof *v);
    if (!v) return -1;
    r->v = v;
    r->cap = cap;
  }
  char *c = malloc(len + 1);
  if (!c) return -1;
  memcpy(c, s, len);
  c[len] = '\0';
  r->v[r->n++] = c;
  return 0;
}

typedef struct reader {
  const char *file;
  char *buf;
  size_t len, pos;
  long line;
  char delim;
  char *cell; /* the cell being read */
  size_t cell_len, cell_cap;
} reader;

static int cell_add(reader *rd, char c) {
  if (rd->cell_len + 1 >= rd->cell_cap) {
    size_t cap = rd->cell_cap ? 2 * rd->cell_cap : 256;
    char *nc = realloc(rd->cell, cap);
    if (!nc) return -1;
    rd->cell = nc;
    rd->cell_cap = cap;
  }
  rd->cell[rd->cell_len++] = c;
  return 0;
}

/* The next record: 1, 0 at the end, or an exit code with err set. Blank
 * lines are skipped. */
static int next_record(reader *rd, record *r, pc_cli_error *err) {
  memset(r, 0, sizeof *r);
  while (rd->pos < rd->len && (rd->buf[rd->pos] == '\n' || rd->buf[rd->pos] == '\r')) {
    if (rd->buf[rd->pos] == '\n') rd->line++;
    rd->pos++;
  }
  if (rd->pos >= rd->len) return 0;
  r->line = rd->line;
  for (;;) {
    rd->cell_len = 0;
    int quoted = rd->pos < rd->len && rd->buf[rd->pos] == '"';
    if (quoted) {
      rd->pos++;
      for (;;) {
        if (rd->pos >= rd->len) {
          const long line = r->line;
          record_free(r);
          return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: a quoted field is not closed",
                             rd->file, line);
        }
        char c = rd->buf[rd->pos++];
        if (c == '"') {
          if (rd->pos < rd->len && rd->buf[rd->pos] == '"')
            rd->pos++;
          else
            break;
        }
        if (c == '\n') rd->line++;
        if (cell_add(rd, c) != 0) goto oom;
      }
    }
    while (rd->pos < rd->len && rd->buf[rd->pos] != rd->delim && rd->buf[rd->pos] != '\n') {
      char c = rd->buf[rd->pos++];
      if (quoted && c != '\r') {
        record_free(r);
        return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                           "%s:%ld: text after a quoted field's closing quote", rd->file, rd->line);
      }
      if (!quoted && cell_add(rd, c) != 0) goto oom;
    }
    size_t n = rd->cell_len;
    while (!quoted && n > 0 && rd->cell[n - 1] == '\r')
      n--;
    if (record_push(r, rd->cell ? rd->cell : "", n) != 0) goto oom;
    if (rd->pos >= rd->len) return 1;
    if (rd->buf[rd->pos++] == '\n') {
      rd->line++;
      return 1;
    }
  }
oom:
  record_free(r);
  return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "out of memory reading %s", rd->file);
}

static int read_all(const char *file, char **buf, size_t *len, pc_cli_error *err) {
  FILE *f = fopen(file, "rb");
  if (!f) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--metadata %s: %s", file, strerror(errno));
  size_t cap = 65536, n = 0;
  char *b = malloc(cap);
  if (!b) {
    fclose(f);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory reading %s", file);
  }
  int rc = PC_CLI_EXIT_OK;
  for (;;) {
    if (n == cap) {
      char *nb = cap >= MAX_META_BYTES ? NULL : realloc(b, cap * 2);
      if (!nb) {
        rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                         "--metadata %s: larger than %u MiB or out of memory", file,
                         MAX_META_BYTES >> 20);
        break;
      }
      b = nb;
      cap *= 2;
    }
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (rc == PC_CLI_EXIT_OK && ferror(f))
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--metadata %s: cannot read: %s", file,
                     strerror(errno));
  fclose(f);
  if (rc != PC_CLI_EXIT_OK) {
    free(b);
    return rc;
  }
  b[n] = '\0'; /* n < cap: the loop grows the buffer before a read */
  *buf = b;
  *len = n;
  return PC_CLI_EXIT_OK;
}

static int is_number(const char *s) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  return *s && end && !*end && !errno && isfinite(v) && !isspace((unsigned char)*s);
}

static int digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return 0;
  return s[n] == '\0';
}

/* NULL when value suits column name of type t, else what is wrong. */
static const char *bad_value(const char *name, char t, const char *v) {
  if (!*v) return NULL;
  if (strpbrk(v, "\t\r\n")) return "holds a tab or line break";
  if (t == 'f' && !is_number(v)) return "is not a number (the column is [f])";
  if (!strcmp(name, "object_lat") && (!is_number(v) || fabs(strtod(v, NULL)) > 90))
    return "is not a latitude in -90..90 (decimal degrees)";
  if (!strcmp(name, "object_lon") && (!is_number(v) || fabs(strtod(v, NULL)) > 180))
    return "is not a longitude in -180..180 (decimal degrees)";
  if (!strcmp(name, "object_date")) {
    if (strlen(v) != 8 || !digits(v, 8)) return "is not a date YYYYMMDD";
    int m = (v[4] - '0') * 10 + (v[5] - '0'), d = (v[6] - '0') * 10 + (v[7] - '0');
    if (m < 1 || m > 12 || d < 1 || d > 31) return "is not a date YYYYMMDD";
  }
  if (!strcmp(name, "object_time")) {
    size_t n = strlen(v);
    if ((n != 4 && n != 6) || !digits(v, n)) return "is not a time HHMM or HHMMSS";
    int h = (v[0] - '0') * 10 + (v[1] - '0'), mi = (v[2] - '0') * 10 + (v[3] - '0');
    int s = n == 6 ? (v[4] - '0') * 10 + (v[5] - '0') : 0;
    if (h > 23 || mi > 59 || s > 59) return "is not a time HHMM or HHMMSS";
  }
  return NULL;
}

static const char *const written[] = {"img_file_name",
                                      "object_annotation_category",
                                      "object_annotation_status",
                                      "object_width",
                                      "object_height",
                                      "object_score"};
static const char *const written_prefixes[] = {"object_p_", "object_category_", "object_score_",
                                               "object_annotation_"};

/* NULL when name (lower case) may be a metadata column, else why not. */
static const char *bad_name(const char *name) {
  static const char *const prefixes[] = {"object_", "sample_", "acq_", "process_"};
  size_t plen = 0;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) plen = strlen(prefixes[i]);
  if (!plen) return "does not start with object_, sample_, acq_ or process_ (EcoTaxa's tables)";
  if (!name[plen]) return "has nothing after its prefix";
  for (const char *p = name + plen; *p; p++)
    if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
      return "may hold only letters, digits and '_' after its prefix";
  for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
    if (!strcmp(name, written[i])) return "is written by classify itself";
  for (size_t i = 0; i < sizeof written_prefixes / sizeof written_prefixes[0]; i++)
    if (!strncmp(name, written_prefixes[i], strlen(written_prefixes[i])))
      return "is a name classify writes itself (its prefix is taken)";
  return NULL;
}

/* Lower case, without surrounding spaces (as EcoTaxa reads a header). */
static void normalise_name(char *s) {
  size_t n = strlen(s), a = 0;
  while (a < n && (s[a] == ' ' || s[a] == '\t'))
    a++;
  while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  memmove(s, s + a, n - a);
  s[n - a] = '\0';
  for (char *p = s; *p; p++)
    *p = (char)tolower((unsigned char)*p);
}

static int is_type_cell(const char *s) {
  return !strcmp(s, "[t]") || !strcmp(s, "[f]");
}

/* "[x]": meant as a type, right or wrong. */
static int looks_like_type(const char *s) {
  return strlen(s) == 3 && s[0] == '[' && s[2] == ']';
}

/* The header: the key column, the names; checks them. */
static int take_header(pc_cli_meta *m, record *h, size_t *key, pc_cli_error *err) {
  const char *f = m->file;
  long key_col = -1;
  for (size_t i = 0; i < h->n; i++) {
    normalise_name(h->v[i]);
    if (!strcmp(h->v[i], "path") || !strcmp(h->v[i], "img_file_name")) {
      if (key_col >= 0)
        return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                           "%s:%ld: two key columns (%s and %s): give one, path", f, h->line,
                           h->v[key_col], h->v[i]);
      key_col = (long)i;
    }
  }
  if (key_col < 0)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "%s:%ld: no key column: the header needs a column named path (the crop or "
                       "folder each row is for)",
                       f, h->line);
  if (h->n < 2)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: no metadata columns beside %s", f, h->line,
                       h->v[key_col]);
  *key = (size_t)key_col;
  m->n_cols = h->n - 1;
  m->names = calloc(m->n_cols, sizeof *m->names);
  m->types = calloc(m->n_cols + 1, 1);
  if (!m->names || !m->types) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  pc_cli_strmap seen = {0};
  int rc = PC_CLI_EXIT_OK;
  int has[3] = {0}, has_id[3] = {0};
  static const char *const parents[3] = {"sample_", "acq_", "process_"};
  for (size_t i = 0, c = 0; rc == PC_CLI_EXIT_OK && i < h->n; i++) {
    if (i == *key) continue;
    const char *name = h->v[i];
    const char *why = bad_name(name);
    long first = 0;
    if (why) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: column '%s' %s", f, h->line, name, why);
    } else if (pc_cli_strmap_add(&seen, name, (long)i, &first) == 0) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: column '%s' appears twice", f, h->line,
                       name);
    } else if (!(m->names[c] = strdup(name))) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
    }
    if (!strcmp(name, "object_id")) m->object_id = (long)c;
    for (int p = 0; p < 3; p++)
      if (!strncmp(name, parents[p], strlen(parents[p]))) {
        has[p] = 1;
        has_id[p] |= !strcmp(name + strlen(parents[p]), "id");
      }
    c++;
  }
  pc_cli_strmap_free(&seen);
  for (int p = 0; rc == PC_CLI_EXIT_OK && p < 3; p++)
    if (has[p] && !has_id[p])
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "%s:%ld: there are %s* columns but no %sid (EcoTaxa needs it to tell the "
                       "%ss apart)",
                       f, h->line, parents[p], parents[p],
                       p == 0   ? "sample"
                       : p == 1 ? "acquisition"
                                : "process");
  return rc;
}

static int fixed_text(const char *name) {
  size_t n = strlen(name);
  return !strcmp(name, "object_date") || !strcmp(name, "object_time") ||
         (n >= 3 && !strcmp(name + n - 3, "_id"));
}

int pc_cli_meta_load(const char *file, const char *cwd, pc_cli_meta *out, pc_cli_error *err) {
  memset(out, 0, sizeof *out);
  out->object_id = -1;
  reader rd = {.file = file, .line = 1};
  int rc = read_all(file, &rd.buf, &rd.len, err);
  if (rc != PC_CLI_EXIT_OK) return rc;
  if (!rd.buf) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory reading %s", file);
  if (!(out->file = strdup(file))) {
    free(rd.buf);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  }
  if (rd.len >= 3 && !memcmp(rd.buf, "\xEF\xBB\xBF", 3)) rd.pos = 3;
  /* UTF-8 throughout (the bytes go into a UTF-8 TSV) */
  if (memchr(rd.buf + rd.pos, '\0', rd.len - rd.pos)) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--metadata %s: holds NUL bytes (not a text table)",
                     file);
    goto done;
  }
  {
    long line = 1;
    for (size_t i = rd.pos; i < rd.len;) {
      size_t n = pc_cli_utf8_seq(rd.buf + i);
      if (!n) {
        rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: not UTF-8 text (save the table as UTF-8)",
                         file, line);
        goto done;
      }
      line += rd.buf[i] == '\n';
      i += n;
    }
  }
  {
    const char *nl = memchr(rd.buf + rd.pos, '\n', rd.len - rd.pos);
    size_t first = nl ? (size_t)(nl - rd.buf) : rd.len;
    rd.delim = memchr(rd.buf + rd.pos, '\t', first - rd.pos) ? '\t' : ',';
  }
  record h;
  rc = next_record(&rd, &h, err);
  if (rc == 0) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--metadata %s: empty", file);
    goto done;
  }
  if (rc != 1) goto done;
  size_t key = 0, width = h.n;
  rc = take_header(out, &h, &key, err);
  record_free(&h);
  if (rc != PC_CLI_EXIT_OK) goto done;

  char *dir = pc_cli_path_abs(file, cwd);
  if (!dir) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
    goto done;
  }
  pc_cli_path_parent(dir);
  size_t cap = 0;
  int types_given = -1; /* -1: not seen yet */
  record r;
  while ((rc = next_record(&rd, &r, err)) == 1) {
    rc = PC_CLI_EXIT_OK;
    if (r.n != width || !r.v) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: %zu cells, the header has %zu", file,
                       r.line, r.n, width);
      record_free(&r);
      break;
    }
    if (types_given < 0) { /* the type row, or the first data row */
      size_t n_type = 0, n_bracketed = 0;
      for (size_t i = 0; i < r.n; i++) {
        n_type += i != key && is_type_cell(r.v[i]);
        n_bracketed += i != key && looks_like_type(r.v[i]);
      }
      types_given = n_bracketed > 0;
      if (n_bracketed && n_type != out->n_cols) {
        rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                         "%s:%ld: a type row gives [t] or [f] for every column (this one gives it "
                         "for %zu of %zu)",
                         file, r.line, n_type, out->n_cols);
        record_free(&r);
        break;
      }
      if (n_bracketed) {
        for (size_t i = 0, c = 0; i < r.n; i++)
          if (i != key) out->types[c++] = r.v[i][1];
        record_free(&r);
        continue;
      }
    }
    if (!r.v[key][0]) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: empty path", file, r.line);
      record_free(&r);
      break;
    }
    char *abs = pc_cli_path_abs(r.v[key], dir);
    long first = 0;
    int added = abs ? pc_cli_strmap_add(&out->keys, abs, (long)out->n_rows, &first) : -1;
    free(abs);
    if (added == 0)
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: %s has a row already (the %ld. row)", file,
                       r.line, r.v[key], first + 1);
    if (added < 0) rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
    if (rc == PC_CLI_EXIT_OK && (out->n_rows + 1) * out->n_cols > cap) {
      size_t ncap = cap ? 2 * cap : 64 * out->n_cols;
      char **nc = realloc(out->cells, ncap * sizeof *nc);
      if (!nc)
        rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
      else {
        out->cells = nc;
        cap = ncap;
      }
    }
    if (rc == PC_CLI_EXIT_OK) {
      for (size_t i = 0, c = 0; i < r.n; i++) {
        if (i == key) continue;
        const char *why = bad_value(out->names[c], out->types[c] ? out->types[c] : 't', r.v[i]);
        if (why && rc == PC_CLI_EXIT_OK)
          rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s:%ld: column %s: '%s' %s", file, r.line,
                           out->names[c], r.v[i], why);
        out->cells[out->n_rows * out->n_cols + c] = r.v[i];
        r.v[i] = NULL;
        c++;
      }
      out->n_rows++;
    }
    record_free(&r);
    if (rc != PC_CLI_EXIT_OK) break;
  }
  free(dir);
  if (rc == PC_CLI_EXIT_OK && out->n_rows == 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--metadata %s: no rows after the header", file);
  for (size_t c = 0; rc == PC_CLI_EXIT_OK && c < out->n_cols; c++) {
    if (out->types[c]) continue;
    int any = 0, numbers = 1;
    for (size_t row = 0; row < out->n_rows; row++) {
      const char *v = out->cells[row * out->n_cols + c];
      if (!*v) continue;
      any = 1;
      numbers &= is_number(v);
    }
    out->types[c] = any && numbers && !fixed_text(out->names[c]) ? 'f' : 't';
  }
done:
  free(rd.buf);
  free(rd.cell);
  if (rc != PC_CLI_EXIT_OK) pc_cli_meta_free(out);
  return rc;
}

long pc_cli_meta_find(const pc_cli_meta *m, const char *abs) {
  char *p = strdup(abs);
  long row = -1;
  while (p) {
    if (pc_cli_strmap_get(&m->keys, p, &row)) break;
    row = -1;
    if (!strcmp(p, "/")) break;
    pc_cli_path_parent(p);
  }
  free(p);
  return row;
}

const char *pc_cli_meta_cell(const pc_cli_meta *m, long row, size_t col) {
  return m->cells[(size_t)row * m->n_cols + col];
}

void pc_cli_meta_free(pc_cli_meta *m) {
  if (!m) return;
  for (size_t i = 0; m->names && i < m->n_cols; i++)
    free(m->names[i]);
  for (size_t i = 0; m->cells && i < m->n_rows * m->n_cols; i++)
    free(m->cells[i]);
  free(m->names);
  free(m->types);
  free(m->cells);
  free(m->file);
  pc_cli_strmap_free(&m->keys);
  memset(m, 0, sizeof *m);
  m->object_id = -1;
}
