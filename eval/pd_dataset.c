/* pd_dataset: directory scanning and split-TSV reading (see pd_dataset.h). */
#include "pd_dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PD_DATASET_MAX_SAMPLES 50000000
#define PD_SPLIT_MAX_NAMES 8

typedef struct sample_list {
  int n, cap;
  pd_sample *s;
} sample_list;

static void list_free(sample_list *l) {
  for (int i = 0; i < l->n; i++) {
    free(l->s[i].path);
    free(l->s[i].label);
  }
  free(l->s);
  memset(l, 0, sizeof *l);
}

/* Appends (root/rel, label); rel absolute: used as is. */
static int list_add(sample_list *l, const char *root, const char *rel, const char *label,
                    pd_error *err) {
  if (l->n >= PD_DATASET_MAX_SAMPLES)
    return pd_error_set(err, PD_ELIMIT, "dataset: more than %d images", PD_DATASET_MAX_SAMPLES);
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 256;
    pd_sample *s = realloc(l->s, (size_t)cap * sizeof *s);
    if (!s) return pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
    l->s = s;
    l->cap = cap;
  }
  char *path = NULL;
  int len = rel[0] == '/' ? asprintf(&path, "%s", rel) : asprintf(&path, "%s/%s", root, rel);
  char *lab = strdup(label);
  if (len < 0 || !lab) {
    if (len >= 0) free(path);
    free(lab);
    return pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
  }
  pd_sample *s = &l->s[l->n++];
  s->path = path;
  s->label = lab;
  return PD_OK;
}

static void finish_list(sample_list *l, pd_dataset *out) {
  out->n = l->n;
  out->samples = l->s;
  memset(l, 0, sizeof *l);
}

void pd_dataset_free(pd_dataset *d) {
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    free(d->samples[i].path);
    free(d->samples[i].label);
  }
  free(d->samples);
  d->samples = NULL;
  d->n = 0;
}

/* ---- class-folder tree ---- */

static bool is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot || dot == name) return false;
  return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
         !strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff");
}

typedef struct name_list {
  int n, cap;
  char **v;
} name_list;

static void names_free(name_list *l) {
  for (int i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries of `dir` (not hidden) that are directories (want_dirs) or image files. */
static int list_dir(const char *dir, bool want_dirs, name_list *out, pd_error *err) {
  memset(out, 0, sizeof *out);
  DIR *d = opendir(dir);
  if (!d) return pd_error_set(err, PD_EIO, "cannot open directory %s: %s", dir, strerror(errno));
  int rc = PD_OK;
  struct dirent *de;
  while (rc == PD_OK && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    bool is_dir;
    if (de->d_type == DT_DIR || de->d_type == DT_REG) {
      is_dir = de->d_type == DT_DIR;
    } else { /* DT_UNKNOWN or a link: ask stat */
      char *p = NULL;
      struct stat sb;
      if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
        rc = pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
        break;
      }
      int ok = stat(p, &sb) == 0;
      free(p);
      if (!ok) continue;
      is_dir = S_ISDIR(sb.st_mode);
      if (!is_dir && !S_ISREG(sb.st_mode)) continue;
    }
    if (is_dir != want_dirs || (!want_dirs && !is_image_name(de->d_name))) continue;
    if (out->n == out->cap) {
      int cap = out->cap ? 2 * out->cap : 64;
      char **v = realloc(out->v, (size_t)cap * sizeof *v);
      if (!v) {
        rc = pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
        break;
      }
      out->v = v;
      out->cap = cap;
    }
    if (!(out->v[out->n] = strdup(de->d_name)))
      rc = pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
    else
      out->n++;
  }
  closedir(d);
  if (rc != PD_OK) {
    names_free(out);
    return rc;
  }
  if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
  return PD_OK;
}

int pd_dataset_scan_tree(const char *root, pd_dataset *out, pd_error *err) {
  memset(out, 0, sizeof *out);
  name_list classes;
  int rc = list_dir(root, true, &classes, err);
  if (rc != PD_OK) return rc;
  sample_list l = {0};
  for (int c = 0; rc == PD_OK && c < classes.n; c++) {
    char *sub = NULL;
    if (asprintf(&sub, "%s/%s", root, classes.v[c]) < 0) {
      rc = pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
      break;
    }
    name_list files;
    rc = list_dir(sub, false, &files, err);
    for (int i = 0; rc == PD_OK && i < files.n; i++) {
      char *rel = NULL;
      if (asprintf(&rel, "%s/%s", classes.v[c], files.v[i]) < 0) {
        rc = pd_error_set(err, PD_ENOMEM, "dataset: out of memory");
        break;
      }
      rc = list_add(&l, root, rel, classes.v[c], err);
      free(rel);
    }
    names_free(&files);
    free(sub);
  }
  names_free(&classes);
  if (rc == PD_OK && l.n == 0)
    rc = pd_error_set(err, PD_EINVAL,
                      "%s: no images (expected class folders <label>/<file>.png|jpg|jpeg)", root);
  if (rc != PD_OK) {
    list_free(&l);
    return rc;
  }
  finish_list(&l, out);
  return PD_OK;
}

/* ---- split TSV ---- */

/* Splits line (modified in place) at tabs into at most max fields and
 * returns how many it found; fields past those point to an empty string. */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  char *p = line;
  while (n < max) {
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = 0;
    p = tab + 1;
  }
  char *empty = p + strlen(p);
  for (int i = n; i < max; i++)
    fields[i] = empty;
  return n;
}

static void chomp(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = 0;
}

int pd_dataset_read_split(const char *root, const char *tsv_path, const char *subset,
                          pd_dataset *out, pd_error *err) {
  memset(out, 0, sizeof *out);
  if (subset && !strcmp(subset, "all")) subset = NULL;
  FILE *f = fopen(tsv_path, "r");
  if (!f) return pd_error_set(err, PD_EIO, "cannot open %s: %s", tsv_path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  int rc = PD_OK, lineno = 0, col_path = -1, col_label = -1, col_split = -1, n_cols = 0;
  char *fields[64];
  sample_list l = {0};
  char seen[PD_SPLIT_MAX_NAMES][32];
  int n_seen = 0;
  while (rc == PD_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    chomp(line);
    if (lineno == 1) {
      n_cols = split_tabs(line, fields, 64);
      for (int i = 0; i < n_cols; i++) {
        if (strcmp(fields[i], "path") == 0)
          col_path = i;
        else if (strcmp(fields[i], "label") == 0)
          col_label = i;
        else if (strcmp(fields[i], "split") == 0)
          col_split = i;
      }
      if (col_path < 0 || col_label < 0 || col_split < 0)
        rc = pd_error_set(err, PD_EFORMAT,
                          "%s:1: header must name the columns path, label and split "
                          "(tab-separated); missing '%s'",
                          tsv_path,
                          col_path < 0    ? "path"
                          : col_label < 0 ? "label"
                                          : "split");
      continue;
    }
    if (!line[0]) continue;
    int n = split_tabs(line, fields, 64);
    if (n < n_cols) {
      rc = pd_error_set(err, PD_EFORMAT, "%s:%d: %d fields, the header has %d", tsv_path, lineno, n,
                        n_cols);
      break;
    }
    const char *split = fields[col_split];
    bool known = false;
    for (int i = 0; i < n_seen && !known; i++)
      known = !strncmp(seen[i], split, sizeof seen[i] - 1);
    if (!known && n_seen < PD_SPLIT_MAX_NAMES)
      snprintf(seen[n_seen++], sizeof seen[0], "%s", split);
    if (subset && strcmp(split, subset) != 0) continue;
    if (!fields[col_path][0] || !fields[col_label][0]) {
      rc = pd_error_set(err, PD_EFORMAT, "%s:%d: empty %s", tsv_path, lineno,
                        fields[col_path][0] ? "label" : "path");
      break;
    }
    rc = list_add(&l, root, fields[col_path], fields[col_label], err);
  }
  if (rc == PD_OK && ferror(f)) rc = pd_error_set(err, PD_EIO, "cannot read %s", tsv_path);
  if (rc == PD_OK && lineno == 0) rc = pd_error_set(err, PD_EFORMAT, "%s: empty file", tsv_path);
  if (rc == PD_OK && l.n == 0) {
    char names[300] = "";
    for (int i = 0; i < n_seen; i++) {
      size_t len = strlen(names);
      snprintf(names + len, sizeof names - len, "%s'%s'", i ? ", " : "", seen[i]);
    }
    rc = pd_error_set(err, PD_EINVAL, "%s: no rows with split '%s' (splits seen: %s)", tsv_path,
                      subset ? subset : "all", n_seen ? names : "none");
  }
  free(line);
  fclose(f);
  if (rc != PD_OK) {
    list_free(&l);
    return rc;
  }
  finish_list(&l, out);
  return PD_OK;
}

void pd_dataset_limit(pd_dataset *d, int n) {
  if (!d || n <= 0 || n >= d->n) return;
  const int total = d->n;
  int keep = 0;
  for (int i = 0, next = 0; i < total; i++) {
    int want = next < n ? (int)((long long)next * total / n) : -1;
    if (i == want) {
      d->samples[keep++] = d->samples[i];
      next++;
    } else {
      free(d->samples[i].path);
      free(d->samples[i].label);
    }
  }
  d->n = keep;
}
