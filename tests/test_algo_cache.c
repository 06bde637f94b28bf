/* pd_algo_cache, the GPU plan's algorithm choices kept across restarts, on
 * any host: a file written and read back equals what was saved; the path
 * depends on every part of the key; a file for another device, compute
 * capability, cuDNN, precision or model is refused as stale naming what
 * differs; a file cut short, with a flipped byte, a missing check line or
 * garbage is refused as corrupt; a missing file is PD_EIO; a save replaces
 * the old file whole (no .tmp left). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_algo_cache.h"
#include "pd_test.h"

static pd_test_state st;
static char dir[] = "/tmp/pd-algo-cache-XXXXXX";

static pd_algo_key key(void) {
  pd_algo_key k = {.device = "NVIDIA H200", .cc_major = 9, .cc_minor = 0, .cudnn = 91900};
  snprintf(k.precision, sizeof k.precision, "fp32");
  memset(k.model_sha256, 'a', 64);
  k.model_sha256[64] = '\0';
  return k;
}

static pd_algo_cache *filled(void) {
  pd_algo_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->key = key();
  c->n = 3;
  c->e[0] = (pd_algo_choice){.layer = 0, .bucket = 1, .algo = 1, .math = 2, .ms = 0.125f};
  c->e[1] = (pd_algo_choice){.layer = 0, .bucket = 64, .algo = 6, .math = 2, .workspace = 1 << 20};
  c->e[2] = (pd_algo_choice){
      .layer = 13, .bucket = 64, .algo = 7, .math = 1, .workspace = 5000000000u, .ms = 2.5f};
  return c;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 16);
  *len = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
  fclose(f);
  return buf;
}

static void spit(const char *path, const char *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  PD_CHECK(&st, f && fwrite(buf, 1, len, f) == len);
  if (f) fclose(f);
}

static void round_trip(const char *path) {
  pd_algo_cache *c = filled(), *r = calloc(1, sizeof *r);
  pd_error err = {0};
  PD_CHECK(&st, c && r);
  if (!c || !r) {
    free(c);
    free(r);
    return;
  }
  PD_CHECK_INT(&st, pd_algo_cache_save(path, c, &err), PD_OK);
  pd_algo_key k = key();
  PD_CHECK_INT(&st, pd_algo_cache_load(path, &k, r, &err), PD_OK);
  PD_CHECK_INT(&st, r->n, 3);
  PD_CHECK(&st, !strcmp(r->key.device, c->key.device) && !strcmp(r->key.precision, "fp32") &&
                    !strcmp(r->key.model_sha256, c->key.model_sha256) && r->key.cudnn == 91900 &&
                    r->key.cc_major == 9 && r->key.cc_minor == 0);
  for (int i = 0; i < 3; i++) {
    PD_CHECK_INT(&st, r->e[i].layer, c->e[i].layer);
    PD_CHECK_INT(&st, r->e[i].bucket, c->e[i].bucket);
    PD_CHECK_INT(&st, r->e[i].algo, c->e[i].algo);
    PD_CHECK_INT(&st, r->e[i].math, c->e[i].math);
    PD_CHECK(&st, r->e[i].workspace == c->e[i].workspace);
    PD_CHECK(&st, r->e[i].ms == c->e[i].ms);
  }
  const pd_algo_choice *f = pd_algo_cache_find(r, 13, 64);
  PD_CHECK(&st, f && f->algo == 7);
  PD_CHECK(&st, pd_algo_cache_find(r, 13, 32) == NULL);
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%.600s.tmp", path);
  PD_CHECK(&st, access(tmp, F_OK) != 0);
  /* a second save replaces the first */
  c->n = 1;
  PD_CHECK_INT(&st, pd_algo_cache_save(path, c, &err), PD_OK);
  PD_CHECK_INT(&st, pd_algo_cache_load(path, &k, r, &err), PD_OK);
  PD_CHECK_INT(&st, r->n, 1);
  free(c);
  free(r);
}

static void paths(void) {
  pd_algo_key a = key(), b = key();
  char pa[600], pb[600];
  pd_error err = {0};
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &a, pa, sizeof pa, &err), PD_OK);
  PD_CHECK(&st, !strncmp(pa, dir, strlen(dir)) && strstr(pa, "/algo-") && strstr(pa, ".txt"));
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &b, pb, sizeof pb, &err), PD_OK);
  PD_CHECK(&st, !strcmp(pa, pb));
  b.cudnn = 91901;
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &b, pb, sizeof pb, &err), PD_OK);
  PD_CHECK(&st, strcmp(pa, pb) != 0);
  b = key();
  b.model_sha256[10] = 'b';
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &b, pb, sizeof pb, &err), PD_OK);
  PD_CHECK(&st, strcmp(pa, pb) != 0);
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &a, pa, 10, &err), PD_ELIMIT);
}

static void stale(const char *path) {
  pd_algo_cache *c = filled(), *r = calloc(1, sizeof *r);
  pd_error err = {0};
  PD_CHECK(&st, c && r);
  if (!c || !r) {
    free(c);
    free(r);
    return;
  }
  PD_CHECK_INT(&st, pd_algo_cache_save(path, c, &err), PD_OK);
  static const char *const what[] = {"device", "compute", "cudnn", "precision", "model"};
  for (int i = 0; i < 5; i++) {
    pd_algo_key k = key();
    if (i == 0) snprintf(k.device, sizeof k.device, "NVIDIA A100-SXM4-80GB");
    if (i == 1) k.cc_minor = 1;
    if (i == 2) k.cudnn = 90100;
    if (i == 3) snprintf(k.precision, sizeof k.precision, "fp16");
    if (i == 4) k.model_sha256[0] = 'f';
    memset(&err, 0, sizeof err);
    PD_CHECK_INT(&st, pd_algo_cache_load(path, &k, r, &err), PD_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "stale: its %s differs", what[i]);
    PD_CHECK_CONTAINS(&st, err.msg, want);
    PD_CHECK_CONTAINS(&st, err.msg, path);
    PD_CHECK_INT(&st, r->n, 0);
  }
  free(c);
  free(r);
}

static void corrupt(const char *path) {
  pd_algo_cache *c = filled(), *r = calloc(1, sizeof *r);
  pd_error err = {0};
  PD_CHECK(&st, c && r);
  if (!c || !r) {
    free(c);
    free(r);
    return;
  }
  PD_CHECK_INT(&st, pd_algo_cache_save(path, c, &err), PD_OK);
  size_t len = 0;
  char *good = slurp(path, &len);
  PD_CHECK(&st, good && len > 100);
  if (!good) {
    free(c);
    free(r);
    return;
  }
  pd_algo_key k = key();
  struct {
    const char *what, *want;
  } cases[] = {
      {"cut short", "no check line at the end"},
      {"a flipped byte", "does not match its contents"},
      {"garbage", "not a planktond-algo-cache 1 file"},
      {"an entry removed", "does not match its contents"},
      {"empty", "not a planktond-algo-cache 1 file"},
  };
  for (int i = 0; i < 5; i++) {
    char *bad = strdup(good);
    if (!bad) break;
    size_t n = len;
    if (i == 0) n = len / 2;
    if (i == 1) bad[strstr(bad, "\n13 64 ") - bad + 4] = '5'; /* bucket 64 -> 54 */
    if (i == 2) memset(bad, '#', 8);
    if (i == 3) {
      char *e = strstr(bad, "\n0 64 ");
      char *next = strchr(e + 1, '\n');
      memmove(e, next, strlen(next) + 1);
      n = strlen(bad);
    }
    if (i == 4) n = 0;
    spit(path, bad, n);
    memset(&err, 0, sizeof err);
    PD_CHECK_INT(&st, pd_algo_cache_load(path, &k, r, &err), PD_EFORMAT);
    PD_CHECK_CONTAINS(&st, err.msg, cases[i].want);
    printf("%-16s -> %s\n", cases[i].what, err.msg);
    free(bad);
  }
  remove(path);
  PD_CHECK_INT(&st, pd_algo_cache_load(path, &k, r, &err), PD_EIO);
  PD_CHECK_CONTAINS(&st, err.msg, "No such file");
  free(good);
  free(c);
  free(r);
}

int main(void) {
  if (!mkdtemp(dir)) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  char path[600];
  pd_algo_key k = key();
  pd_error err = {0};
  PD_CHECK_INT(&st, pd_algo_cache_path(dir, &k, path, sizeof path, &err), PD_OK);
  paths();
  round_trip(path);
  stale(path);
  corrupt(path);
  remove(path);
  rmdir(dir);
  return pd_test_finish(&st, "algo_cache");
}
