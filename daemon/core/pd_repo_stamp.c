#include "pd_repo_stamp.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STAMP_DEPTH 4 /* a version folder's ensemble members, and their folders */

static uint64_t fnv_byte(uint64_t h, unsigned char b) {
  return (h ^ b) * 0x100000001b3ull;
}

static uint64_t fnv_text(uint64_t h, const char *s) {
  for (; *s; s++)
    h = fnv_byte(h, (unsigned char)*s);
  return fnv_byte(h, 0);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; i++)
    h = fnv_byte(h, (unsigned char)(v >> (8 * i)));
  return h;
}

/* Folds every entry under path into *h, in name order. */
static void walk(const char *path, int depth, uint64_t *h) {
  struct dirent **list = NULL;
  int n = scandir(path, &list, NULL, alphasort);
  if (n < 0) return;
  for (int i = 0; i < n; i++) {
    const char *name = list[i]->d_name;
    char sub[4096];
    int len = snprintf(sub, sizeof sub, "%s/%s", path, name);
    struct stat st = {0};
    if (name[0] != '.' && len > 0 && (size_t)len < sizeof sub && stat(sub, &st) == 0) {
      *h = fnv_text(*h, name);
      *h = fnv_u64(*h, (uint64_t)st.st_size);
      *h = fnv_u64(*h, (uint64_t)st.st_mtim.tv_sec);
      *h = fnv_u64(*h, (uint64_t)st.st_mtim.tv_nsec);
      if (S_ISDIR(st.st_mode) && depth > 0) walk(sub, depth - 1, h);
    }
  }
  for (int i = 0; i < n; i++)
    free(list[i]);
  free(list);
}

void pd_repo_stamp_make(const char *dir, const pd_served_options *o, pd_repo_stamp *out) {
  uint64_t h = 0xcbf29ce484222325ull;
  struct stat st;
  walk(dir, STAMP_DEPTH, &h);
  out->files = stat(dir, &st) == 0 ? (h ? h : 1) : 0;
  snprintf(out->options, sizeof out->options, "%s|%d|%d|%s|%d|%s|%d|%ld|%.255s",
           o->backend ? o->backend : "", o->device, o->threads, o->precision ? o->precision : "",
           o->max_batch, o->on_device_error ? o->on_device_error : "", o->cuda_graphs,
           o->cuda_workspace_mb, o->cuda_algo_cache_dir ? o->cuda_algo_cache_dir : "");
}

bool pd_repo_stamp_same(const pd_repo_stamp *a, const pd_repo_stamp *b) {
  return a->files && a->files == b->files && strcmp(a->options, b->options) == 0;
}
