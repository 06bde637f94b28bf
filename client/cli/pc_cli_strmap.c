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
  size_t cap = m->cap ? 2 * m->cap : 64;
  pc_cli_strmap g = {
      .keys = calloc(cap, sizeof(char *)), .values = calloc(cap, sizeof(long)), .cap = cap};
  if (!g.keys || !g.values) {
    free(g.keys);
    free(g.values);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) {
      size_t j = find(&g, m->keys[i]);
      g.keys[j] = m->keys[i];
      g.values[j] = m->values[i];
    }
  g.n = m->n;
  free(m->keys);
  free(m->values);
  *m = g;
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
