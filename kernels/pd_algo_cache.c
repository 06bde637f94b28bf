#include "pd_algo_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "planktond-algo-cache 1\n"
#define MAX_FILE (1 << 20)

static uint64_t fnv1a(const char *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

#define FNV_START 0xcbf29ce484222325ULL

/* The key as the header lines write it (the hash of the path covers exactly these). */
static int key_text(const pd_algo_key *k, char *out, size_t cap) {
  return snprintf(out, cap, "device %s\ncompute %d.%d\ncudnn %d\nprecision %s\nmodel %s\n",
                  k->device, k->cc_major, k->cc_minor, k->cudnn, k->precision, k->model_sha256);
}

static int key_ok(const pd_algo_key *k) {
  return !strchr(k->device, '\n') && !strchr(k->precision, '\n') &&
         !strchr(k->model_sha256, '\n') && k->device[0] && k->precision[0];
}

int pd_algo_cache_path(const char *state_dir, const pd_algo_key *k, char *out, size_t cap,
                       pd_error *err) {
  char text[512];
  key_text(k, text, sizeof text);
  const uint64_t h = fnv1a(text, strlen(text), FNV_START);
  int n = snprintf(out, cap, "%s/algo-%016" PRIx64 ".txt", state_dir, h);
  if (n < 0 || (size_t)n >= cap)
    return pd_error_set(err, PD_ELIMIT, "algorithm cache: state folder '%s' makes too long a path",
                        state_dir);
  return PD_OK;
}

static char *read_file(const char *path, size_t *len, pd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    pd_error_set(err, PD_EIO, "algorithm cache %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_FILE + 1);
  size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
  const int bad = ferror(f);
  fclose(f);
  if (!buf || bad || n > MAX_FILE) {
    free(buf);
    pd_error_set(err, buf ? PD_EFORMAT : PD_ENOMEM, "algorithm cache %s: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "larger than 1 MiB");
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* The line at *p (up to '\n', which must be there), advancing *p past it. */
static const char *next_line(char **p, char *line, size_t cap) {
  char *nl = strchr(*p, '\n');
  if (!nl || (size_t)(nl - *p) >= cap) return NULL;
  memcpy(line, *p, (size_t)(nl - *p));
  line[nl - *p] = '\0';
  *p = nl + 1;
  return line;
}

/* line is prefix then n integers separated by sep (the last by ' ' too):
 * v[0..n-1] (0..n-2 within int, the last any long); false unless exactly that. */
static bool numbers(const char *line, const char *prefix, char sep, long *v, int n) {
  const size_t k = strlen(prefix);
  if (strncmp(line, prefix, k) != 0) return false;
  const char *p = line + k;
  for (int i = 0; i < n; i++) {
    char *end;
    errno = 0;
    v[i] = strtol(p, &end, 10);
    if (errno || end == p || (i + 1 < n && (v[i] > INT_MAX || v[i] < INT_MIN))) return false;
    if (i + 1 < n && *end != sep && *end != ' ') return false;
    p = i + 1 < n ? end + 1 : end;
  }
  return *p == '\0';
}

/* line is prefix then one word (no space) that fits cap: copied to out. */
static bool word(const char *line, const char *prefix, char *out, size_t cap) {
  const size_t k = strlen(prefix), n = strlen(line);
  if (strncmp(line, prefix, k) != 0 || n == k || n - k >= cap || strchr(line + k, ' '))
    return false;
  memcpy(out, line + k, n - k + 1);
  return true;
}

#define CORRUPT(...)                                                                               \
  do {                                                                                             \
    free(buf);                                                                                     \
    return pd_error_set(err, PD_EFORMAT, __VA_ARGS__);                                             \
  } while (0)

int pd_algo_cache_load(const char *path, const pd_algo_key *k, pd_algo_cache *out, pd_error *err) {
  if (!path || !k || !out) return pd_error_set(err, PD_EINVAL, "algorithm cache: null argument");
  memset(&out->key, 0, sizeof out->key);
  out->n = 0;
  size_t len = 0;
  char *buf = read_file(path, &len, err);
  if (!buf) return err ? err->code : PD_EIO;
  /* the check line last: the hash covers everything before it */
  char *check = NULL;
  for (char *q = buf; (q = strstr(q, "\ncheck ")); q++)
    check = q + 1;
  if (strncmp(buf, MAGIC, strlen(MAGIC)) != 0)
    CORRUPT("algorithm cache %s: corrupt: not a planktond-algo-cache 1 file", path);
  char *end = NULL;
  errno = 0;
  const uint64_t want = check && check[6] != '-' ? strtoull(check + 6, &end, 16) : 0;
  if (!check || errno || end != check + 6 + 16 || strcmp(end, "\n") != 0)
    CORRUPT("algorithm cache %s: corrupt: no check line at the end (cut short?)", path);
  const uint64_t got = fnv1a(buf, (size_t)(check - buf), FNV_START);
  if (got != want)
    CORRUPT("algorithm cache %s: corrupt: check %016" PRIx64 " does not match its contents "
            "(%016" PRIx64 ")",
            path, want, got);
  char line[256];
  char *p = buf + strlen(MAGIC);
  pd_algo_key *fk = &out->key;
  long v[6];
  if (!next_line(&p, line, sizeof line) || strncmp(line, "device ", 7) != 0)
    CORRUPT("algorithm cache %s: corrupt: no device line", path);
  snprintf(fk->device, sizeof fk->device, "%.95s", line + 7);
  if (!next_line(&p, line, sizeof line) || !numbers(line, "compute ", '.', v, 2) ||
      !next_line(&p, line, sizeof line) || !numbers(line, "cudnn ", ' ', v + 2, 1) ||
      v[1] > INT_MAX || v[1] < 0 || v[2] > INT_MAX || v[2] < 0)
    CORRUPT("algorithm cache %s: corrupt: the compute or cudnn line does not parse", path);
  fk->cc_major = (int)v[0], fk->cc_minor = (int)v[1], fk->cudnn = (int)v[2];
  if (!next_line(&p, line, sizeof line) ||
      !word(line, "precision ", fk->precision, sizeof fk->precision) ||
      !next_line(&p, line, sizeof line) ||
      !word(line, "model ", fk->model_sha256, sizeof fk->model_sha256))
    CORRUPT("algorithm cache %s: corrupt: the precision or model line does not parse", path);
  if (!next_line(&p, line, sizeof line) || !numbers(line, "entries ", ' ', v, 1) || v[0] < 0 ||
      v[0] > PD_ALGO_CACHE_MAX)
    CORRUPT("algorithm cache %s: corrupt: no entries line (0..%d)", path, PD_ALGO_CACHE_MAX);
  const int n = (int)v[0];
  for (int i = 0; i < n; i++) {
    pd_algo_choice *c = &out->e[i];
    char *ms = NULL;
    if (!next_line(&p, line, sizeof line) || !(ms = strrchr(line, ' ')) ||
        !(*ms = '\0', numbers(line, "", ' ', v, 5)) || v[4] < 0)
      CORRUPT("algorithm cache %s: corrupt: entry %d of %d does not parse", path, i + 1, n);
    char *end;
    errno = 0;
    c->ms = strtof(ms + 1, &end);
    if (errno || *end || end == ms + 1)
      CORRUPT("algorithm cache %s: corrupt: entry %d of %d: bad time", path, i + 1, n);
    c->layer = (int)v[0], c->bucket = (int)v[1], c->algo = (int)v[2], c->math = (int)v[3];
    c->workspace = (size_t)v[4];
  }
  if (p != check) CORRUPT("algorithm cache %s: corrupt: more lines than %d entries", path, n);
  free(buf);
  const char *what = strcmp(fk->device, k->device)                                ? "device"
                     : fk->cc_major != k->cc_major || fk->cc_minor != k->cc_minor ? "compute"
                     : fk->cudnn != k->cudnn                                      ? "cudnn"
                     : strcmp(fk->precision, k->precision)                        ? "precision"
                     : strcmp(fk->model_sha256, k->model_sha256)                  ? "model"
                                                                                  : NULL;
  if (what) {
    char have[512], asked[512];
    key_text(fk, have, sizeof have);
    key_text(k, asked, sizeof asked);
    for (char *q = have; (q = strchr(q, '\n'));)
      *q = ';';
    for (char *q = asked; (q = strchr(q, '\n'));)
      *q = ';';
    out->n = 0;
    return pd_error_set(err, PD_EINVAL,
                        "algorithm cache %s: stale: its %s differs (file: %.200s "
                        "this plan: %.200s)",
                        path, what, have, asked);
  }
  out->n = n;
  return PD_OK;
}

int pd_algo_cache_save(const char *path, const pd_algo_cache *c, pd_error *err) {
  if (!path || !c || c->n < 0 || c->n > PD_ALGO_CACHE_MAX || !key_ok(&c->key))
    return pd_error_set(err, PD_EINVAL, "algorithm cache %s: bad contents to save",
                        path ? path : "");
  const size_t cap = 1024 + (size_t)c->n * 96;
  char *buf = malloc(cap);
  if (!buf) return pd_error_set(err, PD_ENOMEM, "algorithm cache %s: out of memory", path);
  size_t used = (size_t)snprintf(buf, cap, "%s", MAGIC);
  used += (size_t)key_text(&c->key, buf + used, cap - used);
  used += (size_t)snprintf(buf + used, cap - used, "entries %d\n", c->n);
  for (int i = 0; i < c->n && used < cap; i++) {
    const pd_algo_choice *e = &c->e[i];
    used += (size_t)snprintf(buf + used, cap - used, "%d %d %d %d %zu %.6g\n", e->layer, e->bucket,
                             e->algo, e->math, e->workspace, (double)e->ms);
  }
  if (used < cap)
    used += (size_t)snprintf(buf + used, cap - used, "check %016" PRIx64 "\n",
                             fnv1a(buf, used, FNV_START));
  if (used >= cap) {
    free(buf);
    return pd_error_set(err, PD_ELIMIT, "algorithm cache %s: contents too long", path);
  }
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    free(buf);
    return pd_error_set(err, PD_ELIMIT, "algorithm cache %s: path too long", path);
  }
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(buf, 1, used, f) == used;
  if (f && fclose(f) != 0) ok = 0;
  free(buf);
  if (!ok || rename(tmp, path) != 0) {
    const int e = errno;
    remove(tmp);
    return pd_error_set(err, PD_EIO, "algorithm cache %s: cannot write it: %s", path, strerror(e));
  }
  return PD_OK;
}

const pd_algo_choice *pd_algo_cache_find(const pd_algo_cache *c, int layer, int bucket) {
  for (int i = 0; c && i < c->n; i++)
    if (c->e[i].layer == layer && c->e[i].bucket == bucket) return &c->e[i];
  return NULL;
}
