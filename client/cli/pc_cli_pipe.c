/* pc_cli_pipe: the pipelined classification loop (see pc_cli_pipe.h). */
#include "pc_cli_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pc_cli_imgsize.h"

enum { SLOT_FREE = 0, SLOT_IN_FLIGHT, SLOT_DONE, SLOT_HANDED };

typedef struct slot {
  int state;
  char *path;
  long tag;
  char *error;
  pc_client_response *resp;
  uint32_t w, h;
} slot;

typedef struct pipe_state {
  const pc_cli_pipe_options *o;
  pc_client *c;
  slot *ring;
  uint64_t cap, head, next; /* seqs [head, next) hold slots */
  pc_cli_pipe_counts *counts;
  uint8_t *buf; /* the file being read */
  size_t buf_cap;
  bool flat_field_sent; /* the frame template's kept background went with a frame */
} pipe_state;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void slot_clear(slot *s) {
  free(s->path);
  free(s->error);
  pc_client_response_free(s->resp);
  memset(s, 0, sizeof *s);
}

static void hand_out(pipe_state *p, uint64_t seq) {
  slot *s = &p->ring[seq % p->cap];
  pc_cli_result r = {.seq = seq,
                     .path = s->path,
                     .tag = s->tag,
                     .error = s->error,
                     .resp = s->error ? NULL : s->resp,
                     .width = s->w,
                     .height = s->h};
  if (s->error)
    p->counts->failed++;
  else
    p->counts->ok++;
  p->o->on_result(p->o->ctx, &r);
  pc_client_response_free(s->resp);
  s->resp = NULL;
  s->state = SLOT_HANDED;
}

/* Hands out what is due and frees the slots behind the head. */
static void advance(pipe_state *p) {
  while (p->head < p->next) {
    slot *s = &p->ring[p->head % p->cap];
    if (s->state == SLOT_DONE) hand_out(p, p->head);
    if (s->state != SLOT_HANDED) break;
    slot_clear(s);
    p->head++;
  }
}

static void finish_slot(pipe_state *p, uint64_t seq) {
  p->ring[seq % p->cap].state = SLOT_DONE;
  if (p->o->completion_order) hand_out(p, seq);
}

/* Reads the whole file into p->buf. 0, or -1 with a message (malloc'ed) in *why. */
static int read_file(pipe_state *p, const char *path, size_t *len, char **why) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  int e = 0;
  const char *what = NULL;
  if (fd < 0) {
    e = errno;
    what = "cannot open";
  } else if (fstat(fd, &st) != 0) {
    e = errno;
    what = "cannot stat";
  }
  if (what) {
    if (fd >= 0) close(fd);
    if (asprintf(why, "%s: %s: %s", path, what, strerror(e)) < 0) *why = NULL;
    return -1;
  }
  const char *bad = NULL;
  if (S_ISDIR(st.st_mode))
    bad = "is a directory";
  else if (!S_ISREG(st.st_mode))
    bad = "is not a regular file";
  else if (st.st_size == 0)
    bad = "is empty";
  if (bad) {
    close(fd);
    if (asprintf(why, "%s: %s", path, bad) < 0) *why = NULL;
    return -1;
  }
  if ((uint64_t)st.st_size > p->o->max_file_bytes) {
    close(fd);
    if (asprintf(why, "%s: %lld bytes is more than the limit of %llu (--max-file-size)", path,
                 (long long)st.st_size, (unsigned long long)p->o->max_file_bytes) < 0)
      *why = NULL;
    return -1;
  }
  size_t want = (size_t)st.st_size;
  if (want > p->buf_cap) {
    uint8_t *nb = realloc(p->buf, want);
    if (!nb) {
      close(fd);
      if (asprintf(why, "%s: out of memory for %zu bytes", path, want) < 0) *why = NULL;
      return -1;
    }
    p->buf = nb;
    p->buf_cap = want;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(fd, p->buf + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      e = n < 0 ? errno : 0;
      close(fd);
      if ((n < 0 ? asprintf(why, "%s: cannot read: %s", path, strerror(e))
                 : asprintf(why, "%s: file shrank while reading (%zu of %zu bytes)", path, got,
                            want)) < 0)
        *why = NULL;
      return -1;
    }
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return 0;
}

static char *dup_msg(const char *m) {
  char *s = strdup(m ? m : "out of memory");
  return s;
}

/* Takes the next input into a new slot and sends it. 1: a slot was used;
 * 0: the source is done; 2: the source has nothing yet (poll its wait_fd);
 * -1: fatal (source); -2: the connection failed (err set; the slot stays in
 * flight, unanswered). */
static int take_one(pipe_state *p, const pc_cli_source *src, pc_cli_error *err) {
  const char *path = NULL;
  long tag = 0;
  int rc = src->next(src->ctx, &path, &tag, err);
  if (rc == PC_CLI_SOURCE_END) return 0;
  if (rc == PC_CLI_SOURCE_WAIT) return src->wait_fd ? 2 : -1;
  if (rc < 0) return -1;
  uint64_t seq = p->next++;
  slot *s = &p->ring[seq % p->cap];
  s->path = strdup(path ? path : "");
  s->tag = tag;
  if (!s->path) return pc_cli_fail(err, -1, "out of memory");
  if (rc == PC_CLI_SOURCE_FAILED) {
    s->error = dup_msg(err->msg);
    finish_slot(p, seq);
    return 1;
  }
  size_t len = 0;
  char *why = NULL;
  if (read_file(p, s->path, &len, &why) != 0) {
    s->error = why ? why : dup_msg(NULL);
    finish_slot(p, seq);
    return 1;
  }
  pc_cli_imgsize(p->buf, len, &s->w, &s->h);
  const pc_cli_pipe_options *o = p->o;
  pc_client_classify_request rq = {.id = seq,
                                   .model = o->model,
                                   .format = PC_CLIENT_IMAGE_AUTO,
                                   .data = p->buf,
                                   .len = len,
                                   .top_k = o->top_k,
                                   .full_distribution = o->full_distribution,
                                   .tta = o->tta};
  pc_client_error e;
  s->state = SLOT_IN_FLIGHT;
  int sr;
  if (o->frame) {
    pc_client_frame_request fr = *o->frame;
    if (fr.background && fr.background_id && *fr.background_id) { /* once: kept by name */
      if (p->flat_field_sent) fr.background = NULL;
      p->flat_field_sent = true;
    }
    fr.id = seq;
    fr.image.data = p->buf;
    fr.image.len = len;
    sr = pc_client_send_frame(p->c, &fr, &e);
  } else {
    sr = pc_client_send_classify(p->c, &rq, &e);
  }
  if (sr == PC_CLIENT_OK) return 1;
  if (sr == PC_CLIENT_EAGAIN) { /* cannot happen: the caller checked the window */
    s->state = SLOT_DONE;
    s->error = dup_msg("window full (internal error)");
    return 1;
  }
  pc_cli_fail(err, -2, "%s", e.message);
  return -2;
}

static void collect(pipe_state *p, char *closing, size_t closing_len, double *last) {
  pc_client_response *r;
  while (pc_client_next_response(p->c, &r) == PC_CLIENT_OK) {
    if (r->kind == PC_CLIENT_RESPONSE_ERROR) { /* the daemon is closing the connection */
      snprintf(closing, closing_len, "planktond closed the connection: %s: %s",
               pc_client_status_name(r->status), r->message);
      pc_client_response_free(r);
      continue;
    }
    const pc_client_response_kind want =
        p->o->frame ? PC_CLIENT_RESPONSE_FRAME : PC_CLIENT_RESPONSE_CLASSIFY;
    slot *s =
        r->kind == want && r->id >= p->head && r->id < p->next ? &p->ring[r->id % p->cap] : NULL;
    if (!s || s->state != SLOT_IN_FLIGHT) { /* not ours: ignore */
      pc_client_response_free(r);
      continue;
    }
    *last = now_ms();
    uint64_t seq = r->id;
    if (r->status != PC_CLIENT_STATUS_OK) {
      if (asprintf(&s->error, "%s: %s: %s", s->path, pc_client_status_name(r->status), r->message) <
          0)
        s->error = dup_msg(NULL);
      pc_client_response_free(r);
    } else {
      s->resp = r;
    }
    finish_slot(p, seq);
  }
}

int pc_cli_pipe_run(pc_client *c, const pc_cli_pipe_options *o, const pc_cli_source *src,
                    pc_cli_pipe_counts *counts, pc_cli_error *err) {
  memset(counts, 0, sizeof *counts);
  pipe_state p = {.o = o, .c = c, .counts = counts};
  int window = o->window > 0 ? o->window : 1;
  p.cap = (uint64_t)window * 4 < 16 ? 16 : (uint64_t)window * 4;
  p.ring = calloc(p.cap, sizeof *p.ring);
  if (!p.ring) return pc_cli_fail(err, -1, "out of memory");
  int rc = PC_CLI_EXIT_OK, src_done = 0, src_waiting = 0, conn_failed = 0;
  char closing[700] = "";
  pc_cli_error src_err = {.msg = ""}; /* the source failed: stop reading, drain the answers */
  double last = now_ms();
  for (;;) {
    src_waiting = 0;
    while (!src_done && !src_waiting && !conn_failed && p.next - p.head < p.cap &&
           pc_client_in_flight(c) < window) {
      int t = take_one(&p, src, err);
      if (t == 0) src_done = 1;
      if (t == 2) src_waiting = 1;
      if (t == -1) {
        if (!err->msg[0]) pc_cli_fail(err, -1, "the input source waits but has no descriptor");
        src_err = *err;
        src_done = 1;
      }
      if (t == -2) conn_failed = 1;
      if (pc_client_in_flight(c) == 1) last = now_ms(); /* the clock runs while waiting */
    }
    collect(&p, closing, sizeof closing, &last);
    advance(&p);
    if (conn_failed) break;
    if (src_done && p.head == p.next) break;
    if (o->before_wait) o->before_wait(o->ctx);
    const int in_flight = pc_client_in_flight(c);
    int left = o->timeout_ms - (int)(now_ms() - last);
    if (in_flight == 0 && src_waiting) left = -1; /* only the source to wait for */
    if (in_flight > 0 && left <= 0) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON,
                       "no answer from planktond for %.1f s with %d request%s in flight "
                       "(--timeout)",
                       o->timeout_ms / 1000.0, pc_client_in_flight(c),
                       pc_client_in_flight(c) == 1 ? "" : "s");
      break;
    }
    struct pollfd pfd[2] = {{.fd = pc_client_fd(c), .events = pc_client_events(c)},
                            {.fd = src_waiting ? src->wait_fd(src->ctx) : -1, .events = POLLIN}};
    int n = poll(pfd, 2, left);
    if (n < 0 && errno != EINTR) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "poll: %s", strerror(errno));
      break;
    }
    if (n <= 0 || !pfd[0].revents) continue; /* the source (or nothing) is ready: take more */
    pc_client_error e;
    if (pc_client_process(c, pfd[0].revents, &e) != PC_CLIENT_OK) {
      pc_cli_fail(err, -2, "%s", closing[0] ? closing : e.message);
      conn_failed = 1;
      collect(&p, closing, sizeof closing, &last); /* answers decoded before the end */
      advance(&p);
      break;
    }
  }
  if (conn_failed) {
    rc = PC_CLI_EXIT_DAEMON;
    if (closing[0]) pc_cli_fail(err, rc, "%s", closing);
  } else if (rc == PC_CLI_EXIT_OK && src_err.msg[0]) {
    rc = pc_cli_fail(err, -1, "%s", src_err.msg);
  }
  /* Hand out what was answered; count what never will be. */
  for (uint64_t s = p.head; s < p.next; s++) {
    slot *sl = &p.ring[s % p.cap];
    if (sl->state == SLOT_DONE)
      hand_out(&p, s);
    else if (sl->state == SLOT_IN_FLIGHT)
      counts->unanswered++;
    slot_clear(sl);
  }
  free(p.ring);
  free(p.buf);
  return rc;
}
