/* pc_cli_ecotaxa: EcoTaxa's import TSV and bundle (see pc_cli_ecotaxa.h). */
#include "pc_cli_ecotaxa.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_cli_meta.h"
#include "pc_cli_path.h"
#include "pc_cli_strmap.h"
#include "pc_cli_utf8.h"

struct pc_cli_ecotaxa {
  char *cwd;     /* the current folder, absolute */
  char *tsv_dir; /* the folder the TSV sits in (real path) */
  bool bundle;   /* -o given: crops outside tsv_dir are linked or copied in */
  char *root;    /* the id root, normalised absolute */
  bool has_meta;
  pc_cli_meta meta;
  unsigned top_k;
  bool probs;
  size_t n_labels;
  char **p_cols;              /* [n_labels] the object_p_ column names */
  const char *const *lineage; /* [n_labels] borrowed; NULL: no hierarchy column */
  bool thresholds;            /* the object_unclassified and object_threshold columns */
  pc_cli_strmap ids;
  unsigned long linked, copied;
};

static const char *const fixed_columns[] = {"img_file_name",
                                            "object_id",
                                            "object_annotation_category",
                                            "object_annotation_status",
                                            "object_width",
                                            "object_height",
                                            "object_score"};
static const char fixed_types[] = "tttt"
                                  "fff";
#define N_FIXED (sizeof fixed_columns / sizeof fixed_columns[0])

bool pc_cli_ecotaxa_has_control(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return true;
  return false;
}

bool pc_cli_ecotaxa_name_ok(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  return n >= 11 && !strncmp(base, "ecotaxa", 7) && !strcmp(base + n - 4, ".tsv");
}

/* The folder part of path ("." when it has none), malloc'ed. */
static char *folder_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static int output_folder(pc_cli_ecotaxa *e, const char *output, pc_cli_error *err) {
  if (!pc_cli_ecotaxa_name_ok(output))
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "-o %s: EcoTaxa imports only files named ecotaxa*.tsv: write the TSV as "
                       "DIR/ecotaxa_NAME.tsv (the crops go into DIR beside it)",
                       output);
  char *dir = folder_of(output);
  if (!dir) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  struct stat st;
  int rc = PC_CLI_EXIT_OK;
  if (stat(dir, &st) != 0 && mkdir(dir, 0777) != 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "-o %s: cannot make the bundle folder %s: %s", output,
                     dir, strerror(errno));
  else if (!(e->tsv_dir = realpath(dir, NULL)))
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "-o %s: folder %s: %s", output, dir, strerror(errno));
  e->bundle = true;
  free(dir);
  return rc;
}

/* The deepest folder holding every argument (see the header). */
static int id_root(pc_cli_ecotaxa *e, const pc_cli_ecotaxa_options *o, pc_cli_error *err) {
  const char *cwd = e->cwd;
  if (!cwd) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "no current folder");
  if (o->id_root) {
    struct stat st;
    if (stat(o->id_root, &st) != 0)
      return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--id-root %s: %s", o->id_root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
      return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--id-root %s: not a folder", o->id_root);
    e->root = pc_cli_path_abs(o->id_root, cwd);
    return e->root ? PC_CLI_EXIT_OK : pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  }
  e->root = pc_cli_ecotaxa_args_root(o->args, o->n_args, cwd);
  return e->root ? PC_CLI_EXIT_OK : pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
}

char *pc_cli_ecotaxa_args_root(char *const *args, int n_args, const char *cwd) {
  char *root = NULL;
  for (int i = 0; i < n_args; i++) {
    const char *a = args[i];
    const bool list = strcmp(a, "-") == 0;
    char *abs = list ? strdup(cwd) : pc_cli_path_abs(a, cwd);
    if (!abs) {
      free(root);
      return NULL;
    }
    struct stat st;
    if (!list && !(stat(a, &st) == 0 && S_ISDIR(st.st_mode))) pc_cli_path_parent(abs);
    if (!root) {
      root = abs;
    } else {
      pc_cli_path_common(root, abs);
      free(abs);
    }
  }
  return root ? root : strdup(cwd);
}

int pc_cli_ecotaxa_open(const pc_cli_ecotaxa_options *o, pc_cli_ecotaxa **out, pc_cli_error *err) {
  pc_cli_ecotaxa *e = calloc(1, sizeof *e);
  if (!e) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  int rc = PC_CLI_EXIT_OK;
  char *cwd = getcwd(NULL, 0);
  if (!cwd)
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "cannot get the current folder: %s", strerror(errno));
  else if (!(e->cwd = pc_cli_path_abs(cwd, "/")))
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  free(cwd);
  if (rc == PC_CLI_EXIT_OK) {
    if (o->output)
      rc = output_folder(e, o->output, err);
    else if (!(e->tsv_dir = realpath(e->cwd, NULL)))
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "the current folder: %s", strerror(errno));
  }
  if (rc == PC_CLI_EXIT_OK) rc = id_root(e, o, err);
  if (rc == PC_CLI_EXIT_OK && o->metadata) {
    rc = pc_cli_meta_load(o->metadata, e->cwd, &e->meta, err);
    e->has_meta = rc == PC_CLI_EXIT_OK;
  }
  if (rc != PC_CLI_EXIT_OK) {
    pc_cli_ecotaxa_free(e);
    return rc;
  }
  *out = e;
  return PC_CLI_EXIT_OK;
}

void pc_cli_ecotaxa_outputs(pc_cli_ecotaxa *e, const char *const *lineage, bool thresholds) {
  e->lineage = lineage;
  e->thresholds = thresholds;
}

int pc_cli_ecotaxa_columns(pc_cli_ecotaxa *e, unsigned top_k, bool probs, size_t n_labels,
                           const char *const *labels, pc_cli_error *err) {
  e->top_k = top_k ? top_k : 1;
  e->probs = probs;
  e->n_labels = n_labels;
  for (size_t i = 0; i < n_labels; i++)
    if (pc_cli_ecotaxa_has_control(labels[i]))
      return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                         "the model's label %zu holds a tab, line break or control byte: EcoTaxa's "
                         "TSV cannot hold it",
                         i);
  pc_cli_strmap names = {0};
  int rc = PC_CLI_EXIT_OK;
  char name[64];
  for (size_t i = 0; i < N_FIXED; i++)
    if (pc_cli_strmap_add(&names, fixed_columns[i], 0, NULL) < 0) rc = -1;
  for (unsigned k = 2; rc == PC_CLI_EXIT_OK && k <= e->top_k; k++) {
    snprintf(name, sizeof name, "object_category_%u", k);
    if (pc_cli_strmap_add(&names, name, 0, NULL) < 0) rc = -1;
    snprintf(name, sizeof name, "object_score_%u", k);
    if (pc_cli_strmap_add(&names, name, 0, NULL) < 0) rc = -1;
  }
  if (probs && rc == PC_CLI_EXIT_OK &&
      !(e->p_cols = calloc(n_labels ? n_labels : 1, sizeof(char *))))
    rc = -1;
  for (size_t i = 0; probs && rc == PC_CLI_EXIT_OK && i < n_labels; i++) {
    size_t len = strlen(labels[i]);
    char *c = malloc(9 + len + 1);
    if (!c) {
      rc = -1;
      break;
    }
    memcpy(c, "object_p_", 9);
    for (size_t j = 0; j < len; j++) {
      unsigned char b = (unsigned char)labels[i][j];
      c[9 + j] = b < 0x80 && isalnum(b) ? (char)tolower(b) : '_';
    }
    c[9 + len] = '\0';
    int added;
    while ((added = pc_cli_strmap_add(&names, c, 0, NULL)) == 0) { /* taken: append the index */
      char *longer = NULL;
      if (asprintf(&longer, "%s_%zu", c, i) < 0) longer = NULL;
      free(c);
      if (!(c = longer)) break;
    }
    e->p_cols[i] = c;
    if (!c || added < 0) rc = -1;
  }
  if (e->lineage && pc_cli_strmap_add(&names, "object_annotation_hierarchy", 0, NULL) < 0) rc = -1;
  if (e->thresholds && (pc_cli_strmap_add(&names, "object_unclassified", 0, NULL) < 0 ||
                        pc_cli_strmap_add(&names, "object_threshold", 0, NULL) < 0))
    rc = -1;
  for (size_t i = 0; rc == PC_CLI_EXIT_OK && e->has_meta && i < e->meta.n_cols; i++) {
    if ((long)i == e->meta.object_id) continue;
    int added = pc_cli_strmap_add(&names, e->meta.names[i], 0, NULL);
    if (added < 0) rc = -1;
    if (added == 0)
      rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "--metadata %s: column %s is one classify writes for this model",
                       e->meta.file, e->meta.names[i]);
  }
  pc_cli_strmap_free(&names);
  return rc < 0 ? pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory") : rc;
}

/* A value: as it is, or between quotes with '"' doubled when it holds one
 * (EcoTaxa reads the TSV with Python's csv module, quote character '"'). */
void pc_cli_ecotaxa_field(FILE *f, const char *s) {
  if (!strchr(s, '"')) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

void pc_cli_ecotaxa_header(const pc_cli_ecotaxa *e, FILE *f) {
  fputs("\xEF\xBB\xBF", f); /* UTF-8 BOM: EcoTaxa reads latin-1 without it */
  for (size_t i = 0; i < N_FIXED; i++)
    fprintf(f, "%s%s", i ? "\t" : "", fixed_columns[i]);
  for (unsigned k = 2; k <= e->top_k; k++)
    fprintf(f, "\tobject_category_%u\tobject_score_%u", k, k);
  if (e->lineage) fputs("\tobject_annotation_hierarchy", f);
  if (e->thresholds) fputs("\tobject_unclassified\tobject_threshold", f);
  for (size_t i = 0; e->probs && i < e->n_labels; i++)
    fprintf(f, "\t%s", e->p_cols[i]);
  for (size_t i = 0; e->has_meta && i < e->meta.n_cols; i++)
    if ((long)i != e->meta.object_id) fprintf(f, "\t%s", e->meta.names[i]);
  fputc('\n', f);
  for (size_t i = 0; i < N_FIXED; i++)
    fprintf(f, "%s[%c]", i ? "\t" : "", fixed_types[i]);
  for (unsigned k = 2; k <= e->top_k; k++)
    fputs("\t[t]\t[f]", f);
  if (e->lineage) fputs("\t[t]", f);
  if (e->thresholds) fputs("\t[f]\t[f]", f);
  for (size_t i = 0; e->probs && i < e->n_labels; i++)
    fputs("\t[f]", f);
  for (size_t i = 0; e->has_meta && i < e->meta.n_cols; i++)
    if ((long)i != e->meta.object_id) fprintf(f, "\t[%c]", e->meta.types[i]);
  fputc('\n', f);
}

/* Same bytes? (a bundle written before, by this rule) */
static bool same_content(const char *a, const char *b) {
  int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
  bool same = fa >= 0 && fb >= 0;
  char ba[65536], bb[65536];
  while (same) {
    ssize_t na = read(fa, ba, sizeof ba), nb = na > 0 ? read(fb, bb, (size_t)na) : read(fb, bb, 1);
    if (na < 0 || nb < 0 || na != nb || (na > 0 && memcmp(ba, bb, (size_t)na) != 0)) same = false;
    if (na <= 0) break;
  }
  if (fa >= 0) close(fa);
  if (fb >= 0) close(fb);
  return same;
}

static int copy_file(const char *src, const char *dst, pc_cli_error *err) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: cannot open: %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int e = errno;
    close(in);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: cannot create its copy %s: %s", src, dst,
                       strerror(e));
  }
  char buf[65536];
  int e = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) e = errno;
      break;
    }
    for (ssize_t off = 0; off < n && !e;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) e = errno;
      off += w > 0 ? w : 0;
    }
    if (e) break;
  }
  close(in);
  if (close(out) != 0 && !e) e = errno;
  if (e) {
    unlink(dst);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: copying it to %s: %s", src, dst, strerror(e));
  }
  return PC_CLI_EXIT_OK;
}

/* Puts the crop at src into the bundle as tsv_dir/id. */
static int place(pc_cli_ecotaxa *e, const char *src, const char *id, pc_cli_error *err) {
  char *dst = NULL;
  if (asprintf(&dst, "%s/%s", e->tsv_dir, id) < 0)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  struct stat ds, ss;
  int rc = PC_CLI_EXIT_OK;
  if (lstat(dst, &ds) == 0) {
    if (!(stat(src, &ss) == 0 && stat(dst, &ds) == 0 && ss.st_dev == ds.st_dev &&
          ss.st_ino == ds.st_ino) &&
        !same_content(src, dst))
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: the bundle already has another file named %s (remove it, or write the "
                       "bundle to another folder)",
                       src, dst);
  } else if (linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0) {
    e->linked++;
  } else if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) {
    rc = copy_file(src, dst, err);
    if (rc == PC_CLI_EXIT_OK) e->copied++;
  } else {
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: cannot link it into the bundle as %s: %s", src,
                     dst, strerror(errno));
  }
  free(dst);
  return rc;
}

/* The crop's name relative to tsv_dir (*rel points into *real), or NULL. */
static int relative_name(const pc_cli_ecotaxa *e, const char *path, char **real, const char **rel,
                         pc_cli_error *err) {
  *real = NULL;
  *rel = NULL;
  char *dir = folder_of(path);
  if (!dir) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  char *rdir = realpath(dir, NULL);
  free(dir);
  if (!rdir)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: its folder: %s", path, strerror(errno));
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  int n = asprintf(real, "%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", base);
  free(rdir);
  if (n < 0) {
    *real = NULL;
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  }
  *rel = pc_cli_path_below(*real, e->tsv_dir);
  return PC_CLI_EXIT_OK;
}

int pc_cli_ecotaxa_row(pc_cli_ecotaxa *e, FILE *f, const pc_cli_result *r, pc_cli_error *err) {
  const char *path = r->path;
  const pc_client_classify_result *c = &r->resp->u.classify;
  if (pc_cli_ecotaxa_has_control(path))
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: the file name holds a tab, line break or control byte, which EcoTaxa's "
                       "TSV cannot hold: rename the file",
                       path);
  for (size_t i = 0; i < c->n_top && i < e->top_k; i++)
    if (pc_cli_ecotaxa_has_control(c->top[i].label))
      return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: the label holds a tab or line break", path);
  char *abs = pc_cli_path_abs(path, e->cwd);
  if (!abs) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  long row = -1;
  if (e->has_meta && (row = pc_cli_meta_find(&e->meta, abs)) < 0) {
    free(abs);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: --metadata %s has no row for it or a folder above it", path,
                       e->meta.file);
  }
  char *id = NULL;
  if (row >= 0 && e->meta.object_id >= 0 &&
      *pc_cli_meta_cell(&e->meta, row, (size_t)e->meta.object_id))
    id = strdup(pc_cli_meta_cell(&e->meta, row, (size_t)e->meta.object_id));
  else
    id = pc_cli_path_object_id(abs, e->root);
  free(abs);
  if (!id) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  int rc = PC_CLI_EXIT_OK, added = pc_cli_strmap_add(&e->ids, id, (long)r->seq, NULL);
  if (added == 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                     "%s: object_id %s is taken by an earlier row (the same file listed twice?); "
                     "EcoTaxa needs one id per object",
                     path, id);
  else if (added < 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  char *real = NULL;
  const char *rel = NULL;
  if (rc == PC_CLI_EXIT_OK) rc = relative_name(e, path, &real, &rel, err);
  if (rc == PC_CLI_EXIT_OK && rel && !pc_cli_utf8_valid(rel))
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                     "%s: the file name is not UTF-8, as EcoTaxa reads it: rename the file, or "
                     "write the TSV elsewhere with -o so that it is copied under its object_id",
                     path);
  else if (rc == PC_CLI_EXIT_OK && !rel && !e->bundle)
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                     "%s: not under the current folder, where a TSV on standard output must sit "
                     "for EcoTaxa to find the crop: write a bundle with -o DIR/ecotaxa_NAME.tsv "
                     "(crops outside DIR are linked or copied into it)",
                     path);
  else if (rc == PC_CLI_EXIT_OK && !rel)
    rc = place(e, path, id, err);
  if (rc == PC_CLI_EXIT_OK) {
    pc_cli_ecotaxa_field(f, rel ? rel : id);
    fputc('\t', f);
    pc_cli_ecotaxa_field(f, id);
    fputc('\t', f);
    pc_cli_ecotaxa_field(f, c->top[0].label);
    fputs("\tpredicted\t", f);
    if (r->width && r->height)
      fprintf(f, "%u\t%u", r->width, r->height);
    else
      fputc('\t', f);
    fprintf(f, "\t%.9g", (double)c->top[0].probability);
    for (size_t k = 1; k < e->top_k; k++) {
      fputc('\t', f);
      if (k < c->n_top) {
        pc_cli_ecotaxa_field(f, c->top[k].label);
        fprintf(f, "\t%.9g", (double)c->top[k].probability);
      } else {
        fputc('\t', f); /* fewer classes than k: empty cells */
      }
    }
    if (e->lineage) {
      fputc('\t', f);
      if (c->top[0].index < e->n_labels) pc_cli_ecotaxa_field(f, e->lineage[c->top[0].index]);
    }
    if (e->thresholds) fprintf(f, "\t%d\t%.9g", c->unclassified ? 1 : 0, (double)c->threshold);
    for (size_t i = 0; e->probs && i < e->n_labels; i++)
      fprintf(f, "\t%.9g", (double)c->distribution[i]);
    for (size_t i = 0; e->has_meta && i < e->meta.n_cols; i++) {
      if ((long)i == e->meta.object_id) continue;
      fputc('\t', f);
      pc_cli_ecotaxa_field(f, pc_cli_meta_cell(&e->meta, row, i));
    }
    fputc('\n', f);
  }
  free(real);
  free(id);
  return rc;
}

void pc_cli_ecotaxa_counts(const pc_cli_ecotaxa *e, unsigned long *linked, unsigned long *copied) {
  *linked = e->linked;
  *copied = e->copied;
}

void pc_cli_ecotaxa_free(pc_cli_ecotaxa *e) {
  if (!e) return;
  for (size_t i = 0; e->p_cols && i < e->n_labels; i++)
    free(e->p_cols[i]);
  free(e->p_cols);
  if (e->has_meta) pc_cli_meta_free(&e->meta);
  pc_cli_strmap_free(&e->ids);
  free(e->cwd);
  free(e->tsv_dir);
  free(e->root);
  free(e);
}
