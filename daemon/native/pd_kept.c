#include "pd_kept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int slot_of(const pd_kept_set *s, const char *id) {
  for (int i = 0; i < PD_KEPT_MAX; i++)
    if (s->bg[i] && !strcmp(s->bg[i]->id, id)) return i;
  return -1;
}

int pd_kept_put(pd_kept_set *s, const char *id, const pd_frame_image *img, long long *delta) {
  *delta = 0;
  int slot = slot_of(s, id);
  for (int i = 0; slot < 0 && i < PD_KEPT_MAX; i++)
    if (!s->bg[i]) slot = i;
  if (slot < 0) return -2;
  pd_kept_bg *b = malloc(sizeof *b + (img->len ? img->len : 1));
  if (!b) return -1;
  b->refs = 1;
  snprintf(b->id, sizeof b->id, "%s", id);
  b->len = img->len;
  if (img->len) memcpy(b->data, img->data, img->len);
  b->image = *img;
  b->image.data = b->data;
  pd_kept_bg *old = s->bg[slot];
  *delta = (long long)b->len - (long long)(old ? old->len : 0);
  s->bytes = s->bytes - (old ? old->len : 0) + b->len;
  s->bg[slot] = b;
  pd_kept_unref(old);
  return 0;
}

pd_kept_bg *pd_kept_get(const pd_kept_set *s, const char *id) {
  int slot = slot_of(s, id);
  if (slot < 0) return NULL;
  s->bg[slot]->refs++;
  return s->bg[slot];
}

void pd_kept_unref(pd_kept_bg *b) {
  if (b && --b->refs == 0) free(b);
}

void pd_kept_names(const pd_kept_set *s, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < PD_KEPT_MAX && n < cap; i++)
    if (s->bg[i]) {
      int w = snprintf(buf + n, cap - n, "%s\"%s\"", n ? ", " : "", s->bg[i]->id);
      if (w < 0) break;
      n += (size_t)w;
    }
  if (!buf[0]) snprintf(buf, cap, "none");
}

size_t pd_kept_clear(pd_kept_set *s) {
  size_t bytes = s->bytes;
  for (int i = 0; i < PD_KEPT_MAX; i++) {
    pd_kept_unref(s->bg[i]);
    s->bg[i] = NULL;
  }
  s->bytes = 0;
  return bytes;
}
