/* pc_cli_strmap: strings to values (see pc_cli_strmap.h). */
#include "pc_cli_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* The slot of key, or of the empty slot where it would go (cap > n). */
static size_t find(const pc_cli_strmap *m, const char *key) {
  size_t i = (size_t)(hash(key) & (m->cap - 1));
  while (m->keys[i] && strcmp(m->keys[i], key) != 0)
    i = (i + 1) & (m->cap - 1);
  return i;
}

static int grow(pc_cli_strmap *m) {
  const size_t cap = m->cap ? 2 * m->cap : 64;
  char **keys = calloc(cap, sizeof *keys);
  long *values = calloc(cap, sizeof *values);
  if (!keys || !values) {
    free(keys);
    free(values);
    return -1;
  }
  char **old_keys = m->keys;
  long *old_values = m->values;
  const size_t old_cap = m->cap;
  m->keys = keys;
  m->values = values;
  m->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old_keys[i]) {
      size_t j = find(m, old_keys[i]);
      keys[j] = old_keys[i];
      values[j] = old_values[i];
    }
  free(old_keys);
  free(old_values);
  return 0;
}

int pc_cli_strmap_add(pc_cli_strmap *m, const char *key, long value, long *old) {
  if ((m->n + 1) * 2 > m->cap && grow(m) != 0) return -1;
  size_t i = find(m, key);
  if (m->keys[i]) {
    if (old) *old = m->values[i];
    return 0;
  }
  if (!(m->keys[i] = strdup(key))) return -1;
  m->values[i] = value;
  m->n++;
  return 1;
}

bool pc_cli_strmap_get(const pc_cli_strmap *m, const char *key, long *value) {
  if (!m->cap) return false;
  size_t i = find(m, key);
  if (!m->keys[i]) return false;
  if (value) *value = m->values[i];
  return true;
}

void pc_cli_strmap_free(pc_cli_strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->keys[i]);
  free(m->keys);
  free(m->values);
  memset(m, 0, sizeof *m);
}
