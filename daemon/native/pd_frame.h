/* pd_frame: length-prefixed frames (plankton.proto: 4-byte big-endian
 * length, then the message). Owns one connection's receive buffer: libuv
 * reads straight into its free space, complete frames are handed out in
 * place, and the buffer never grows past one maximum frame plus one read,
 * nor (beyond one read) past twice the bytes that really arrived.
 * No sockets, no protobuf. */
#ifndef PD_FRAME_H
#define PD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"

#define PD_FRAME_HEADER 4

typedef struct pd_framer {
  uint8_t *buf;
  size_t start, len, cap; /* unread bytes are buf[start .. start+len) */
  size_t max_frame;
  /* The owner's cap on the buffer's size for the next pd_framer_space (0:
   * none): a global memory budget (pd_conn). */
  size_t max_cap;
} pd_framer;

void pd_framer_init(pd_framer *f, size_t max_frame);
void pd_framer_free(pd_framer *f);

/* Free space for the next read, at least `hint` bytes when it can (the rest
 * of a frame in progress, or a default read size). Where growing would pass
 * max_cap it offers the free space there is, and PD_ELIMIT when there is
 * none (nothing changed: try again once the owner has room). */
int pd_framer_space(pd_framer *f, size_t hint, uint8_t **at, size_t *avail);
/* Frees the buffer when nothing is pending and it is larger than keep bytes
 * (after a large frame). */
void pd_framer_trim(pd_framer *f, size_t keep);
/* Records n bytes written into the space. */
void pd_framer_commit(pd_framer *f, size_t n);

/* 1: a complete frame (*msg, *len point into the buffer, valid until the
 * next pd_framer_* call); 0: more bytes needed; PD_ELIMIT: the frame's
 * length exceeds max_frame (err says both). */
int pd_framer_next(pd_framer *f, const uint8_t **msg, size_t *len, pd_error *err);

/* Bytes buffered and not yet returned as frames. */
size_t pd_framer_pending(const pd_framer *f);

/* Writes the 4-byte header for a message of len bytes. */
void pd_frame_header(uint8_t out[PD_FRAME_HEADER], uint32_t len);

#endif
