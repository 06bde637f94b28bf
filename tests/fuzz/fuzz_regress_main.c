/* fuzz_regress_main: replays files through a fuzz target without libFuzzer,
 * so any compiler's build runs the committed seed corpus and crash
 * regression files as an ordinary test (meson suite 'fuzz-regress').
 *
 * usage: fuzz_regress_<target> PATH...
 * Each PATH is a file or a folder; a folder's files are run in name order
 * (names starting with '.' and README files are skipped, sub-folders are
 * not entered). A missing path is an error. A crash in the target ends the
 * program as it would end the fuzzer (abort, sanitizer report); otherwise
 * it prints how many inputs it ran and exits 0. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fclose(f);
      fprintf(stderr, "%s: out of memory\n", path);
      return -1;
    }
    len += fread(buf + len, 1, cap - len, f);
    if (len < cap) break;
    uint8_t *nb = realloc(buf, cap * 2);
    if (!nb) free(buf);
    buf = nb;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    fprintf(stderr, "%s: read error\n", path);
    return -1;
  }
  /* an exact-size copy, so reads past the input's end are caught */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "%s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !strncmp(e->d_name, "README", 6)) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(names, cap * sizeof *names);
      if (!nn) break;
      names = nn;
    }
    names[n] = strdup(e->d_name);
    if (names[n]) n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_names);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
      if (run_file(path) != 0)
        rc = -1;
      else
        ++*count;
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  LLVMFuzzerInitialize(&argc, &argv);
  int status = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    int count = 0, rc;
    if (stat(argv[i], &sb) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
      rc = -1;
    } else if (S_ISDIR(sb.st_mode)) {
      rc = run_dir(argv[i], &count);
    } else {
      rc = run_file(argv[i]);
      count = rc == 0;
    }
    printf("%s: %d input%s\n", argv[i], count, count == 1 ? "" : "s");
    if (rc != 0) status = 1;
  }
  return status;
}
