#include "pd_conn.h"

#include <stdlib.h>
#include <string.h>

typedef struct conn_write {
  uv_write_t req;
  pd_conn *conn;
  uint8_t *frame;
  bool owed; /* an answer (counted in owed), or the final error frame */
  bool close_after;
} conn_write;

static void process(pd_conn *c);

static void unref(pd_conn *c) {
  if (--c->refs == 0) {
    pd_framer_free(&c->framer);
    free(c);
  }
}

void pd_conn_hold(pd_conn *c) {
  c->refs++;
}
void pd_conn_release(pd_conn *c) {
  unref(c);
}
bool pd_conn_open(const pd_conn *c) {
  return !c->closing;
}
size_t pd_conn_pending(const pd_conn *c) {
  return pd_framer_pending(&c->framer);
}

static uint64_t now_ms(const pd_conn *c) {
  return uv_now(c->h.handle.loop);
}

static void on_closed(uv_handle_t *h) {
  pd_conn *c = h->data;
  if (c->handler->on_closed) c->handler->on_closed(c, c->handler->ctx);
  unref(c);
}

void pd_conn_close(pd_conn *c) {
  if (c->closing) return;
  c->closing = true;
  c->reading = false;
  uv_close(&c->h.handle, on_closed);
}

static void stop_reading(pd_conn *c) {
  if (c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = false;
  }
}

/* Closes a connection that has nothing more to do. */
static void maybe_finish(pd_conn *c) {
  if (c->closing || c->owed > 0 || c->writes > 0) return;
  if (c->eof || c->draining) pd_conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pd_conn *c = h->data;
  uint8_t *at;
  size_t avail;
  (void)suggested;
  if (pd_framer_space(&c->framer, 0, &at, &avail) != 0) {
    buf->base = NULL;
    buf->len = 0; /* libuv reports UV_ENOBUFS */
    return;
  }
  buf->base = (char *)at;
  buf->len = avail;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pd_conn *c = s->data;
  (void)buf;
  if (nread > 0) {
    c->active_ms = now_ms(c);
    pd_framer_commit(&c->framer, (size_t)nread);
    process(c);
    return;
  }
  if (nread == 0) return;
  stop_reading(c);
  if (nread == UV_EOF) {
    /* The client is done sending; answer what it asked, then close. */
    c->eof = true;
    maybe_finish(c);
  } else {
    pd_conn_close(c);
  }
}

/* Hands out buffered frames while the window has room; reads when it has. */
static void process(pd_conn *c) {
  if (c->failed) return;
  while (!c->closing && c->owed < c->window) {
    const uint8_t *msg;
    size_t len;
    pd_error err = {0};
    int rc = pd_framer_next(&c->framer, &msg, &len, &err);
    if (rc == 0) break;
    if (rc < 0) {
      c->handler->on_oversize(c, err.msg, c->handler->ctx);
      return;
    }
    c->frame_since_ms = 0;
    if (c->handler->on_frame(c, msg, len, c->handler->ctx) != 0) return;
  }
  if (c->closing) return;
  if (c->owed >= c->window || c->eof) {
    stop_reading(c);
    c->frame_since_ms = 0; /* our doing, not the client's: the clock restarts with reading */
  } else {
    if (!c->reading && uv_read_start(&c->h.stream, on_alloc, on_read) == 0) c->reading = true;
    if (pd_framer_pending(&c->framer) == 0)
      c->frame_since_ms = 0;
    else if (c->frame_since_ms == 0)
      c->frame_since_ms = now_ms(c);
  }
}

void pd_conn_start(pd_conn *c, const pd_conn_handler *h, size_t max_frame, int window,
                   uint64_t serial) {
  c->handler = h;
  c->window = window;
  c->serial = serial;
  c->refs = 1; /* the handle */
  c->h.handle.data = c;
  c->active_ms = now_ms(c);
  pd_framer_init(&c->framer, max_frame);
  process(c);
}

void pd_conn_expect(pd_conn *c) {
  c->owed++;
}

static void on_written(uv_write_t *req, int status) {
  conn_write *w = (conn_write *)req;
  pd_conn *c = w->conn;
  free(w->frame);
  c->writes--;
  if (w->owed) c->owed--;
  c->active_ms = now_ms(c);
  bool close_after = w->close_after;
  free(w);
  if (status < 0 || close_after) {
    pd_conn_close(c);
  } else if (!c->closing) {
    process(c); /* room in the window: buffered frames first, then reading */
    maybe_finish(c);
  }
  unref(c);
}

static void write_frame(pd_conn *c, uint8_t *frame, size_t len, bool owed, bool close_after) {
  conn_write *w = calloc(1, sizeof *w);
  if (!w) {
    free(frame);
    if (owed) c->owed--;
    pd_conn_close(c);
    return;
  }
  w->conn = c;
  w->frame = frame;
  w->owed = owed;
  w->close_after = close_after;
  uv_buf_t buf = uv_buf_init((char *)frame, (unsigned)len);
  c->writes++;
  c->refs++;
  int rc = uv_write(&w->req, &c->h.stream, &buf, 1, on_written);
  if (rc != 0) {
    c->writes--;
    c->refs--;
    if (owed) c->owed--;
    free(frame);
    free(w);
    pd_conn_close(c);
  }
}

void pd_conn_send(pd_conn *c, uint8_t *frame, size_t len) {
  if (c->closing || !frame) {
    free(frame);
    c->owed--;
    if (!c->closing) pd_conn_close(c); /* no frame: out of memory encoding it */
    return;
  }
  write_frame(c, frame, len, true, false);
}

void pd_conn_fail(pd_conn *c, uint8_t *frame, size_t len) {
  if (c->closing) {
    free(frame);
    return;
  }
  stop_reading(c);
  c->failed = true; /* read and handle nothing more */
  if (frame)
    write_frame(c, frame, len, false, true);
  else
    pd_conn_close(c);
}

void pd_conn_drain(pd_conn *c) {
  c->draining = true;
  maybe_finish(c);
}
