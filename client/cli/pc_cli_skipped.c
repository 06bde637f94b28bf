/* pc_cli_skipped: what a run leaves out (see pc_cli_skipped.h). */
#include "pc_cli_skipped.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pc_cli_walk.h"

void pc_cli_skipped_add(pc_cli_skipped *s, const char *name) {
  s->n++;
  if (s->n_names < PC_CLI_SKIPPED_NAMES && (s->names[s->n_names] = strdup(name))) s->n_names++;
}

void pc_cli_skipped_write(const pc_cli_skipped *s, FILE *f, const char *what_one,
                          const char *what_many) {
  if (!s->n) return;
  fprintf(f, "%ld %s (", s->n, s->n == 1 ? what_one : what_many);
  for (int i = 0; i < s->n_names; i++)
    fprintf(f, "%s%s", i ? ", " : "", s->names[i]);
  if (s->n > s->n_names) fprintf(f, " and %ld more", s->n - s->n_names);
  fputc(')', f);
}

void pc_cli_skipped_free(pc_cli_skipped *s) {
  for (int i = 0; i < s->n_names; i++)
    free(s->names[i]);
  memset(s, 0, sizeof *s);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The visible entries of dir, sorted (NULL-terminated, malloc'ed), or NULL. */
static char **list(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return NULL;
  size_t n = 0, cap = 16;
  char **v = malloc(cap * sizeof *v);
  if (!v) {
    closedir(d);
    return NULL;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (n + 1 == cap) {
      char **nv = realloc(v, 2 * cap * sizeof *v);
      if (!nv) break;
      v = nv;
      cap *= 2;
    }
    if ((v[n] = strdup(e->d_name))) n++;
  }
  closedir(d);
  v[n] = NULL;
  qsort(v, n, sizeof *v, cmp_names);
  return v;
}

static void list_free(char **v) {
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

/* 'd' folder, 'f' regular file, 0 anything else (or gone). */
static char kind(const char *dir, const char *name) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0) return 0;
  struct stat st;
  char k = stat(p, &st) != 0 ? 0 : S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : 0;
  free(p);
  return k;
}

int pc_cli_skipped_class_tree(const char *root, pc_cli_skipped *loose, pc_cli_skipped *subfolders,
                              pc_cli_skipped *other) {
  char **top = list(root);
  if (!top) return -1;
  for (size_t i = 0; top[i]; i++) {
    char k = kind(root, top[i]);
    if (k == 'f') pc_cli_skipped_add(loose, top[i]);
    if (k != 'd') continue;
    char *cdir = NULL;
    if (asprintf(&cdir, "%s/%s", root, top[i]) < 0) continue;
    char **in = list(cdir);
    for (size_t j = 0; in && in[j]; j++) {
      char ck = kind(cdir, in[j]);
      char *rel = NULL;
      if (!ck || (ck == 'f' && pc_cli_walk_is_image_name(in[j])) ||
          asprintf(&rel, "%s/%s", top[i], in[j]) < 0)
        continue;
      pc_cli_skipped_add(ck == 'd' ? subfolders : other, rel);
      free(rel);
    }
    list_free(in);
    free(cdir);
  }
  list_free(top);
  return 0;
}
