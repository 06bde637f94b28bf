/* pd_kept: the flat-field backgrounds a native connection keeps by name
 * (FrameRequest.background_id: sent once per stream, then named by the
 * frames that follow). Owns the copies of their bytes, reference-counted so
 * a frame in the core keeps the one it was given while a newer one replaces
 * it under the same name. At most PD_KEPT_MAX names per connection. Loop
 * thread only. */
#ifndef PD_KEPT_H
#define PD_KEPT_H

#include <stddef.h>

#include "pd_frame_job.h"

#define PD_KEPT_MAX 4
#define PD_KEPT_ID_LEN 64

typedef struct pd_kept_bg {
  int refs;
  char id[PD_KEPT_ID_LEN];
  pd_frame_image image; /* image.data points at data below */
  size_t len;
  unsigned char data[];
} pd_kept_bg;

typedef struct pd_kept_set {
  pd_kept_bg *bg[PD_KEPT_MAX];
  size_t bytes; /* the kept images' bytes, all together */
} pd_kept_set;

/* A copy of img kept under id (replacing the one kept under it): 0; -1 out
 * of memory; -2 all PD_KEPT_MAX names are taken by others. *delta: the
 * change in set->bytes (for the receive budget). */
int pd_kept_put(pd_kept_set *s, const char *id, const pd_frame_image *img, long long *delta);

/* The image kept under id with a reference for the caller, or NULL. */
pd_kept_bg *pd_kept_get(const pd_kept_set *s, const char *id);

void pd_kept_unref(pd_kept_bg *b);

/* The names kept, comma-separated (for messages). */
void pd_kept_names(const pd_kept_set *s, char *buf, size_t cap);

/* Drops every name (images in the core stay until their frames are done);
 * returns the bytes the set held. */
size_t pd_kept_clear(pd_kept_set *s);

#endif
