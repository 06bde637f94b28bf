/* pd_frame: frames split across reads at every byte, several frames in one
 * read, a zero-length frame, the limit, and the header encoding; and the
 * core's status names against plankton.proto's StatusCode. */
#include "pd_frame.h"
#include "pd_request.h"
#include "plankton.pb-c.h"
#include "pd_test.h"

/* Feeds data[len] in chunks of `step` and counts the frames and their bytes. */
static int feed(pd_framer *f, const uint8_t *data, size_t len, size_t step, size_t *lens,
                int max_frames, int *rc_out) {
  int n = 0;
  *rc_out = 0;
  for (size_t off = 0; off < len;) {
    uint8_t *at;
    size_t avail;
    if (pd_framer_space(f, 0, &at, &avail) != 0) return -1;
    size_t k = len - off < step ? len - off : step;
    if (k > avail) k = avail;
    memcpy(at, data + off, k);
    pd_framer_commit(f, k);
    off += k;
    for (;;) {
      const uint8_t *msg;
      size_t ml;
      pd_error err = {0};
      int rc = pd_framer_next(f, &msg, &ml, &err);
      if (rc < 0) {
        *rc_out = rc;
        return n;
      }
      if (rc == 0) break;
      if (n < max_frames) lens[n] = ml;
      for (size_t i = 0; i < ml; i++)
        if (msg[i] != (uint8_t)(ml + i)) return -2; /* payload byte pattern */
      n++;
    }
  }
  return n;
}

int main(void) {
  pd_test_state st = {0};
  /* the core's status names are the wire contract's (plankton.proto StatusCode) */
  PD_CHECK_INT(&st, plankton__status_code__descriptor.n_values, PD_STATUS_COUNT);
  for (int c = 0; c < PD_STATUS_COUNT; c++) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&plankton__status_code__descriptor, c);
    PD_CHECK(&st, v && !strcmp(v->name, pd_status_name(c)));
  }
  /* frames of 0, 1, 5, 300 and 70000 bytes, payload byte i = len + i */
  const size_t sizes[] = {0, 1, 5, 300, 70000};
  size_t total = 0;
  for (int i = 0; i < 5; i++)
    total += PD_FRAME_HEADER + sizes[i];
  uint8_t *stream = malloc(total);
  size_t pos = 0;
  for (int i = 0; i < 5; i++) {
    pd_frame_header(stream + pos, (uint32_t)sizes[i]);
    pos += PD_FRAME_HEADER;
    for (size_t b = 0; b < sizes[i]; b++)
      stream[pos++] = (uint8_t)(sizes[i] + b);
  }
  /* every split point for the small frames; reads of 4 KiB and more for all */
  const size_t steps[] = {1, 3, 4, 7, 4096, 1 << 20};
  const size_t small_total = total - (PD_FRAME_HEADER + sizes[4]);
  for (int s = 0; s < 6; s++) {
    pd_framer f;
    pd_framer_init(&f, 100000);
    size_t lens[8];
    int rc;
    int want = steps[s] < 4096 ? 4 : 5;
    int n = feed(&f, stream, want == 5 ? total : small_total, steps[s], lens, 8, &rc);
    PD_CHECK_INT(&st, n, want);
    PD_CHECK_INT(&st, rc, 0);
    for (int i = 0; i < want && i < n; i++)
      PD_CHECK_INT(&st, lens[i], sizes[i]);
    PD_CHECK_INT(&st, pd_framer_pending(&f), 0);
    pd_framer_free(&f);
  }
  /* the limit: a 70000-byte frame with a 1000-byte limit is refused at its header */
  {
    pd_framer f;
    pd_framer_init(&f, 1000);
    size_t lens[8];
    int rc;
    int n = feed(&f, stream, total, 4096, lens, 8, &rc);
    PD_CHECK_INT(&st, n, 4);
    PD_CHECK_INT(&st, rc, PD_ELIMIT);
    pd_error err = {0};
    const uint8_t *msg;
    size_t ml;
    PD_CHECK_INT(&st, pd_framer_next(&f, &msg, &ml, &err), PD_ELIMIT);
    PD_CHECK_CONTAINS(&st, err.msg, "70000");
    PD_CHECK_CONTAINS(&st, err.msg, "1000");
    pd_framer_free(&f);
  }
  /* max_cap (the owner's budget): growth stops there; the free space left
   * is offered, then PD_ELIMIT until the cap rises; the frame then completes */
  {
    pd_framer f;
    pd_framer_init(&f, 1 << 20);
    f.max_cap = 100000;
    uint8_t *at;
    size_t avail, got = 0, body = 300000;
    uint8_t hdr[4];
    pd_frame_header(hdr, (uint32_t)body);
    PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
    memcpy(at, hdr, 4);
    pd_framer_commit(&f, 4);
    int rc;
    while ((rc = pd_framer_space(&f, 0, &at, &avail)) == 0 && got < body) {
      PD_CHECK(&st, f.cap <= 100000);
      size_t k = body - got < avail ? body - got : avail;
      memset(at, 7, k);
      pd_framer_commit(&f, k);
      got += k;
    }
    PD_CHECK_INT(&st, rc, PD_ELIMIT);
    PD_CHECK_INT(&st, (long)f.cap, 100000);
    PD_CHECK_INT(&st, (long)pd_framer_pending(&f), 100000);
    f.max_cap = 0; /* room again */
    while (got < body && pd_framer_space(&f, 0, &at, &avail) == 0) {
      size_t k = body - got < avail ? body - got : avail;
      memset(at, 7, k);
      pd_framer_commit(&f, k);
      got += k;
    }
    const uint8_t *msg;
    size_t ml;
    pd_error err = {0};
    PD_CHECK_INT(&st, pd_framer_next(&f, &msg, &ml, &err), 1);
    PD_CHECK_INT(&st, (long)ml, (long)body);
    pd_framer_trim(&f, 65536); /* empty and large: the buffer goes */
    PD_CHECK(&st, f.buf == NULL && f.cap == 0);
    pd_framer_free(&f);
  }
  /* big-endian header */
  uint8_t h[4];
  pd_frame_header(h, 0x01020304u);
  PD_CHECK(&st, h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4);
  free(stream);
  return pd_test_finish(&st, "daemon_frame");
}
