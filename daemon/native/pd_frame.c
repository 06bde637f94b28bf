#include "pd_frame.h"

#include <stdlib.h>
#include <string.h>

#define PD_FRAME_READ ((size_t)65536)    /* default read size */
#define PD_FRAME_MIN_READ ((size_t)4096) /* a frame in progress grows below this much room */

void pd_framer_init(pd_framer *f, size_t max_frame) {
  memset(f, 0, sizeof *f);
  f->max_frame = max_frame;
}

void pd_framer_free(pd_framer *f) {
  free(f->buf);
  memset(f, 0, sizeof *f);
}

static uint32_t read_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void pd_frame_header(uint8_t out[PD_FRAME_HEADER], uint32_t len) {
  out[0] = (uint8_t)(len >> 24);
  out[1] = (uint8_t)(len >> 16);
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
}

int pd_framer_space(pd_framer *f, size_t hint, uint8_t **at, size_t *avail) {
  size_t want = hint > PD_FRAME_READ ? hint : PD_FRAME_READ; /* free space to offer a read */
  size_t need = want;                                        /* grow when less is free */
  size_t grow_to = 0;
  /* A frame in progress needs room for all of it, never more than the limit,
   * but the buffer grows by doubling what has arrived: a header alone (of a
   * client that then goes quiet) never reserves a whole maximum frame, and
   * memory follows the bytes that really arrive. It grows only when nearly
   * full, so copying stays linear in the frame. */
  if (f->len >= PD_FRAME_HEADER) {
    size_t frame = PD_FRAME_HEADER + (size_t)read_be32(f->buf + f->start);
    if (frame <= PD_FRAME_HEADER + f->max_frame && frame > f->len) {
      size_t rest = frame - f->len, doubled = f->len > want ? 2 * f->len : f->len + want;
      grow_to = frame + want < doubled ? frame + want : doubled;
      need = rest < PD_FRAME_MIN_READ ? rest : PD_FRAME_MIN_READ;
    }
  }
  if (f->start > 0 && (f->len == 0 || f->cap - f->start - f->len < need)) {
    memmove(f->buf, f->buf + f->start, f->len);
    f->start = 0;
  }
  pd_framer_trim(f, 4 * PD_FRAME_READ); /* shrink after a large frame */
  if (f->cap - f->start - f->len < need) {
    size_t cap = grow_to > f->len + want ? grow_to : f->len + want;
    if (f->max_cap && cap > f->max_cap) {
      if (f->max_cap > f->cap && f->max_cap > f->len) {
        cap = f->max_cap; /* what the owner allows */
      } else if (f->cap - f->start - f->len > 0) {
        if (f->start > 0) { /* offer the free space there is */
          memmove(f->buf, f->buf + f->start, f->len);
          f->start = 0;
        }
        *at = f->buf + f->len;
        *avail = f->cap - f->len;
        return PD_OK;
      } else {
        return PD_ELIMIT;
      }
    }
    uint8_t *nb = realloc(f->buf, cap);
    if (!nb) return PD_ENOMEM;
    f->buf = nb;
    f->cap = cap;
  }
  *at = f->buf + f->start + f->len;
  *avail = f->cap - f->start - f->len;
  return PD_OK;
}

void pd_framer_trim(pd_framer *f, size_t keep) {
  if (f->len == 0 && f->cap > keep) {
    free(f->buf);
    f->buf = NULL;
    f->cap = f->start = 0;
  }
}

void pd_framer_commit(pd_framer *f, size_t n) {
  f->len += n;
}

int pd_framer_next(pd_framer *f, const uint8_t **msg, size_t *len, pd_error *err) {
  if (f->len < PD_FRAME_HEADER) return 0;
  size_t body = read_be32(f->buf + f->start);
  if (body > f->max_frame)
    return pd_error_set(err, PD_ELIMIT, "frame of %zu bytes exceeds the limit of %zu bytes", body,
                        f->max_frame);
  if (f->len < PD_FRAME_HEADER + body) return 0;
  *msg = f->buf + f->start + PD_FRAME_HEADER;
  *len = body;
  f->start += PD_FRAME_HEADER + body;
  f->len -= PD_FRAME_HEADER + body;
  return 1;
}

size_t pd_framer_pending(const pd_framer *f) {
  return f->len;
}
