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

/* ---- the receive budget ---- */

void pd_rx_budget_init(pd_rx_budget *b, size_t limit) {
  memset(b, 0, sizeof *b);
  b->limit = limit;
}

static void budget_unlink(pd_rx_budget *b, pd_conn *c) {
  pd_conn **p = &b->wait_head, *prev = NULL;
  while (*p && *p != c) {
    prev = *p;
    p = &(*p)->rx_next;
  }
  if (!*p) return;
  *p = c->rx_next;
  if (b->wait_tail == c) b->wait_tail = prev;
  c->rx_next = NULL;
  c->rx_waiting = false;
}

/* Every waiting connection tries again (in order); the oldest gets the
 * overdraft when no one holds it. */
static void budget_wake(pd_rx_budget *b) {
  pd_conn *list = b->wait_head;
  b->wait_head = b->wait_tail = NULL;
  if (list && !b->overdraft) b->overdraft = list;
  while (list) {
    pd_conn *c = list;
    list = c->rx_next;
    c->rx_next = NULL;
    c->rx_waiting = false;
    process(c);
  }
}

void pd_rx_budget_set_limit(pd_rx_budget *b, size_t limit) {
  b->limit = limit;
  budget_wake(b);
}

bool pd_rx_budget_take(pd_rx_budget *b, size_t n) {
  if (n > b->limit || b->used > b->limit - n) return false;
  b->used += n;
  return true;
}

void pd_rx_budget_give(pd_rx_budget *b, size_t n) {
  b->used = n < b->used ? b->used - n : 0;
  if (n && b->wait_head) budget_wake(b);
}

/* Brings c's charge in line with its buffer; wakes the waiters when memory
 * was given back. */
static void budget_update(pd_conn *c) {
  pd_rx_budget *b = c->budget;
  if (!b) return;
  size_t cap = c->closing ? 0 : c->framer.cap;
  size_t charge = cap > PD_RX_BASE ? cap - PD_RX_BASE : 0;
  bool freed = charge < c->rx_charge;
  b->used = b->used - c->rx_charge + charge;
  c->rx_charge = charge;
  if (b->overdraft == c && c->closing) { /* else it keeps it until its frame is in */
    b->overdraft = NULL;
    freed = true;
  }
  if (freed && b->wait_head) budget_wake(b);
}

static void budget_wait(pd_conn *c) {
  pd_rx_budget *b = c->budget;
  c->rx_waiting = true;
  c->rx_next = NULL;
  if (b->wait_tail)
    b->wait_tail->rx_next = c;
  else
    b->wait_head = c;
  b->wait_tail = c;
  b->waits++;
  if (!b->overdraft) budget_wake(b);
}

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
  if (c->budget) { /* nothing more is read: the buffer goes now */
    if (c->rx_waiting) budget_unlink(c->budget, c);
    pd_framer_free(&c->framer);
    budget_update(c);
  }
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
  pd_rx_budget *b = c->budget;
  c->framer.max_cap = 0;
  if (b && b->overdraft != c) {
    size_t room = b->used < b->limit ? b->limit - b->used : 0;
    c->framer.max_cap = PD_RX_BASE + c->rx_charge + room;
  }
  int rc = pd_framer_space(&c->framer, 0, &at, &avail);
  budget_update(c);
  c->rx_blocked = rc == PD_ELIMIT;
  if (rc != PD_OK) {
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
  if (nread == UV_ENOBUFS && c->rx_blocked) {
    /* over the receive budget: wait for memory. The frame's clock keeps
     * running (limits.frame_timeout_ms), so clients that go silent cannot
     * hold the memory, or the overdraft, for longer than that. */
    c->rx_blocked = false;
    budget_wait(c);
    return;
  }
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
  if (c->failed || c->rx_waiting) return;
  int frames = 0;
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
    frames++;
    c->frames_read++;
    if (c->handler->on_frame(c, msg, len, c->handler->ctx) != 0) return;
  }
  if (c->closing) return;
  if (c->budget) { /* a large buffer with nothing in it goes back */
    pd_framer_trim(&c->framer, PD_RX_BASE);
    if (frames > 0 && c->budget->overdraft == c) /* its frame is in: the next waiter's turn */
      c->budget->overdraft = NULL;
    budget_update(c);
    if (!c->budget->overdraft && c->budget->wait_head) budget_wake(c->budget);
    if (c->closing || c->rx_waiting) return;
  }
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
                   uint64_t serial, pd_rx_budget *budget) {
  c->handler = h;
  c->budget = budget;
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

void pd_conn_notify(pd_conn *c, uint8_t *frame, size_t len) {
  if (c->closing || c->failed || !frame) {
    free(frame);
    return;
  }
  write_frame(c, frame, len, false, false);
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
