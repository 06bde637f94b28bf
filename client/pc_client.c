/* pc_client: the connection: connect (Unix path or host:port, with a
 * timeout), the outgoing byte queue, non-blocking reads and writes, framing
 * (4-byte big-endian length, as plankton.proto says), the in-flight count and
 * the queue of decoded answers. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pc_client_internal.h"

int pc_client__fail(pc_client_error *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

const char *pc_client_strerror(int code) {
  switch (code) {
  case PC_CLIENT_OK:
    return "ok";
  case PC_CLIENT_EAGAIN:
    return "try again";
  case PC_CLIENT_EINVAL:
    return "invalid argument";
  case PC_CLIENT_ENOMEM:
    return "out of memory";
  case PC_CLIENT_ECONNECT:
    return "cannot connect";
  case PC_CLIENT_EIO:
    return "connection failed";
  case PC_CLIENT_ECLOSED:
    return "connection closed by the daemon";
  case PC_CLIENT_ETIMEDOUT:
    return "timed out";
  case PC_CLIENT_EPROTO:
    return "protocol error";
  default:
    return "unknown error";
  }
}

/* The names are the wire contract's own (plankton.proto's StatusCode, through
 * protobuf-c's descriptor), so they are written in one place. */
const char *pc_client_status_name(int status) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&plankton__status_code__descriptor, status);
  return v ? v->name : "UNKNOWN";
}

/* ---- connecting ---- */

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Non-blocking connect with a timeout. Returns 0 or an errno. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms) {
  long long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
  int pause_ms = 1;
  for (;;) {
    if (connect(fd, sa, len) == 0) return 0;
    /* A Unix socket whose listen backlog is full says EAGAIN: nothing is in
     * progress (polling would report the socket writable, unconnected), so
     * try again, a little later each time, within the timeout. */
    if (errno != EAGAIN) break;
    if (deadline >= 0 && mono_ms() >= deadline) return ETIMEDOUT;
    poll(NULL, 0, pause_ms);
    pause_ms = pause_ms < 50 ? pause_ms * 2 : 50;
  }
  if (errno != EINPROGRESS) return errno;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int rc;
  do
    rc = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) return ETIMEDOUT;
  if (rc < 0) return errno;
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return errno;
  return soerr;
}

static int connect_unix(const char *path, int timeout_ms, int *out, pc_client_error *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return pc_client__fail(err, PC_CLIENT_EINVAL, "socket path %s is longer than %zu bytes", path,
                           sizeof sa.sun_path - 1);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return pc_client__fail(err, PC_CLIENT_ECONNECT, "socket: %s", strerror(errno));
  int e = connect_fd(fd, (struct sockaddr *)&sa, sizeof sa, timeout_ms);
  if (e) {
    close(fd);
    return pc_client__fail(err, e == ETIMEDOUT ? PC_CLIENT_ETIMEDOUT : PC_CLIENT_ECONNECT,
                           "cannot connect to planktond at %s: %s", path, strerror(e));
  }
  *out = fd;
  return PC_CLIENT_OK;
}

static int connect_tcp(const char *host_port, int timeout_ms, int *out, pc_client_error *err) {
  const char *colon = strrchr(host_port, ':');
  char host[256];
  if (!colon || colon == host_port || (size_t)(colon - host_port) >= sizeof host || !colon[1])
    return pc_client__fail(err, PC_CLIENT_EINVAL, "address '%s': expected HOST:PORT", host_port);
  size_t hl = (size_t)(colon - host_port);
  memcpy(host, host_port, hl);
  host[hl] = '\0';
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int g = getaddrinfo(host, colon + 1, &hints, &ai);
  if (g != 0)
    return pc_client__fail(err, PC_CLIENT_ECONNECT, "address '%s': %s", host_port, gai_strerror(g));
  int e = ECONNREFUSED, fd = -1;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    e = connect_fd(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
    if (e == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0)
    return pc_client__fail(err, e == ETIMEDOUT ? PC_CLIENT_ETIMEDOUT : PC_CLIENT_ECONNECT,
                           "cannot connect to planktond at %s: %s", host_port, strerror(e));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  *out = fd;
  return PC_CLIENT_OK;
}

int pc_client__open(const char *address, int timeout_ms, int *fd, pc_client_error *err) {
  if (!strncmp(address, "unix:", 5)) return connect_unix(address + 5, timeout_ms, fd, err);
  if (!strncmp(address, "tcp:", 4)) return connect_tcp(address + 4, timeout_ms, fd, err);
  if (strchr(address, '/')) return connect_unix(address, timeout_ms, fd, err);
  return connect_tcp(address, timeout_ms, fd, err);
}

int pc_client_connect(const char *address, const pc_client_options *opt, pc_client **out,
                      pc_client_error *err) {
  if (!address || !*address || !out)
    return pc_client__fail(err, PC_CLIENT_EINVAL, "no daemon address given");
  pc_client_options o = {.window = 64, .timeout_ms = 30000, .max_frame = 64u << 20};
  if (opt) {
    if (opt->window > 0) o.window = opt->window;
    if (opt->timeout_ms != 0) o.timeout_ms = opt->timeout_ms;
    if (opt->max_frame > 0) o.max_frame = opt->max_frame;
  }
  int fd = -1;
  int rc = pc_client__open(address, o.timeout_ms, &fd, err);
  if (rc != PC_CLIENT_OK) return rc;
  pc_client *c = calloc(1, sizeof *c);
  char *addr = strdup(address);
  if (!c || !addr) {
    close(fd);
    free(c);
    free(addr);
    return pc_client__fail(err, PC_CLIENT_ENOMEM, "out of memory");
  }
  c->fd = fd;
  c->address = addr;
  c->opt = o;
  c->next_id = 1;
  c->retry.timer_fd = -1;
  *out = c;
  return PC_CLIENT_OK;
}

void pc_client_close(pc_client *c) {
  if (!c) return;
  if (c->fd >= 0) close(c->fd);
  for (pc_client_response *r = c->ready_head, *n; r; r = n) {
    n = pc_client__response_next(r);
    pc_client_response_free(r);
  }
  pc_client__retry_free(c);
  free(c->address);
  free(c->out);
  free(c->in);
  free(c);
}

int pc_client_fd(const pc_client *c) {
  if (c->retry.on && c->retry.link == PC_CLIENT__PAUSE) return c->retry.timer_fd;
  return c->fd;
}
int pc_client_in_flight(const pc_client *c) {
  return c->retry.on ? (int)c->retry.n_owed : c->in_flight;
}
size_t pc_client_unsent(const pc_client *c) {
  return c->out_len - c->out_off;
}

short pc_client_events(const pc_client *c) {
  if (c->failed) return 0;
  if (c->retry.on && c->retry.link == PC_CLIENT__PAUSE) return POLLIN;
  if (c->fd < 0) return 0;
  short ev = POLLIN;
  if (c->out_len > c->out_off) ev |= POLLOUT;
  return ev;
}

/* ---- I/O ---- */

int pc_client__broken(pc_client *c, pc_client_error *err, int code, const char *fmt, ...) {
  if (!c->failed && c->retry.on && !c->retry.no_retry && code != PC_CLIENT_ENOMEM) {
    char msg[sizeof c->failed_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pc_client__retry_lost(c, code, msg, err);
  }
  if (!c->failed) {
    c->failed = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failed_msg, sizeof c->failed_msg, fmt, ap);
    va_end(ap);
  }
  return pc_client__fail(err, c->failed, "%s", c->failed_msg);
}

static int read_in(pc_client *c, pc_client_error *err);

static int flush_out(pc_client *c, pc_client_error *err) {
  while (c->fd >= 0 && c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    int e = errno;
    /* the daemon closed: first take what it said before (an ErrorResponse
     * saying why: too many connections, a timeout), then fail */
    if (e == EPIPE || e == ECONNRESET) (void)read_in(c, NULL);
    if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
    if (c->fd < 0) return PC_CLIENT_OK; /* the read found the close and a reconnect is due */
    return pc_client__broken(c, err,
                             e == EPIPE || e == ECONNRESET ? PC_CLIENT_ECLOSED : PC_CLIENT_EIO,
                             "writing to planktond: %s", strerror(e));
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  return PC_CLIENT_OK;
}

int pc_client__flush(pc_client *c, pc_client_error *err) {
  return flush_out(c, err);
}

void pc_client__push_ready(pc_client *c, pc_client_response *r) {
  pc_client__response_set_next(r, NULL);
  if (c->ready_tail)
    pc_client__response_set_next(c->ready_tail, r);
  else
    c->ready_head = r;
  c->ready_tail = r;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes every whole frame in the input buffer. */
static int decode_frames(pc_client *c, pc_client_error *err) {
  size_t pos = 0;
  int rc = PC_CLIENT_OK;
  while (c->in_len - pos >= PC_CLIENT_HEADER) {
    size_t body = be32(c->in + pos);
    if (body > c->opt.max_frame) {
      rc = pc_client__broken(c, err, PC_CLIENT_EPROTO,
                             "answer frame of %zu bytes exceeds the limit of %zu", body,
                             c->opt.max_frame);
      break;
    }
    if (c->in_len - pos < PC_CLIENT_HEADER + body) break;
    int oom = 0;
    pc_client_response *r = pc_client__decode(c->in + pos + PC_CLIENT_HEADER, body, &oom);
    if (!r) {
      rc = oom ? pc_client__broken(c, err, PC_CLIENT_ENOMEM, "out of memory decoding an answer")
               : pc_client__broken(c, err, PC_CLIENT_EPROTO,
                                   "frame of %zu bytes from planktond is not a plankton.Response",
                                   body);
      break;
    }
    pos += PC_CLIENT_HEADER + body;
    if (c->retry.on) {
      pc_client__retry_answer(c, r);
      continue;
    }
    if (r->kind == PC_CLIENT__RESPONSE_DRAIN || r->kind == PC_CLIENT__RESPONSE_HELLO) {
      /* a Hello is sent, and a drain notice acted on, with a retry policy only */
      pc_client_response_free(r);
      continue;
    }
    if (r->kind != PC_CLIENT_RESPONSE_ERROR && c->in_flight > 0) c->in_flight--;
    pc_client__push_ready(c, r);
  }
  memmove(c->in, c->in + pos, c->in_len - pos);
  c->in_len -= pos;
  return rc;
}

static int read_in(pc_client *c, pc_client_error *err) {
  while (c->fd >= 0) {
    /* a read, or the rest of the frame in progress, at most doubling what
     * arrived (a header alone does not reserve max_frame bytes) */
    size_t want = 65536;
    if (c->in_len >= PC_CLIENT_HEADER) {
      size_t frame = PC_CLIENT_HEADER + (size_t)be32(c->in);
      if (frame <= PC_CLIENT_HEADER + c->opt.max_frame && frame > c->in_len &&
          frame - c->in_len > want) {
        size_t rest = frame - c->in_len, grow = c->in_len > want ? c->in_len : want;
        want = rest < grow ? rest : grow;
      }
    }
    if (c->in_cap - c->in_len < want) {
      uint8_t *nb = realloc(c->in, c->in_len + want);
      if (!nb) return pc_client__broken(c, err, PC_CLIENT_ENOMEM, "out of memory reading answers");
      c->in = nb;
      c->in_cap = c->in_len + want;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
      c->in_len += (size_t)n;
      int rc = decode_frames(c, err);
      if (rc != PC_CLIENT_OK) return rc;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return PC_CLIENT_OK;
    /* ECONNRESET: the daemon closed while our bytes were still unread
     * (e.g. it refused the connection): a close all the same */
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return pc_client__broken(c, err, PC_CLIENT_ECLOSED,
                               "planktond closed the connection with %d request%s unanswered",
                               c->in_flight, c->in_flight == 1 ? "" : "s");
    return pc_client__broken(c, err, PC_CLIENT_EIO, "reading from planktond: %s", strerror(errno));
  }
  return PC_CLIENT_OK; /* lost, and a reconnect is due */
}

int pc_client_process(pc_client *c, short revents, pc_client_error *err) {
  if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
  if (c->retry.on && c->retry.link != PC_CLIENT__UP) return pc_client__retry_step(c, err);
  int rc = PC_CLIENT_OK;
  if (revents & (POLLIN | POLLHUP | POLLERR)) rc = read_in(c, err);
  if (rc == PC_CLIENT_OK && c->out_len > c->out_off) rc = flush_out(c, err);
  if (rc == PC_CLIENT_OK && c->retry.on) rc = pc_client__retry_step(c, err);
  if (rc == PC_CLIENT_OK && c->failed) rc = pc_client__fail(err, c->failed, "%s", c->failed_msg);
  return rc;
}

int pc_client_wait(pc_client *c, int timeout_ms, pc_client_error *err) {
  if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
  struct pollfd p = {.fd = pc_client_fd(c), .events = pc_client_events(c)};
  int due = pc_client_timeout_ms(c); /* the retry budget of a silent connection */
  if (due >= 0 && (timeout_ms < 0 || due < timeout_ms)) timeout_ms = due;
  int n = poll(&p, 1, timeout_ms);
  if (n < 0 && errno != EINTR)
    return pc_client__fail(err, PC_CLIENT_EIO, "poll: %s", strerror(errno));
  if (n == 0 && due >= 0 && timeout_ms == due) return pc_client_process(c, 0, err);
  if (n <= 0) return PC_CLIENT_OK;
  return pc_client_process(c, p.revents, err);
}

/* Room for n more bytes at out + out_len (NULL: out of memory). */
static uint8_t *reserve(pc_client *c, size_t n) {
  if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  size_t need = c->out_len + n;
  if (need > c->out_cap) {
    if (c->out_off > 0) { /* reclaim what was written before growing */
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
      need = c->out_len + n;
    }
    if (need > c->out_cap) {
      size_t cap = c->out_cap * 2 > need ? c->out_cap * 2 : need + 4096;
      uint8_t *nb = realloc(c->out, cap);
      if (!nb) return NULL;
      c->out = nb;
      c->out_cap = cap;
    }
  }
  return c->out + c->out_len;
}

int pc_client__append(pc_client *c, const uint8_t *bytes, size_t len) {
  uint8_t *at = reserve(c, len);
  if (!at) return PC_CLIENT_ENOMEM;
  memcpy(at, bytes, len);
  c->out_len += len;
  return PC_CLIENT_OK;
}

static void request_key(const Plankton__Request *rq, pc_client_response_kind *kind, uint64_t *id) {
  switch (rq->body_case) {
  case PLANKTON__REQUEST__BODY_CLASSIFY:
    *kind = PC_CLIENT_RESPONSE_CLASSIFY;
    *id = rq->classify->id;
    break;
  case PLANKTON__REQUEST__BODY_FRAME:
    *kind = PC_CLIENT_RESPONSE_FRAME;
    *id = rq->frame->id;
    break;
  case PLANKTON__REQUEST__BODY_STATS:
    *kind = PC_CLIENT_RESPONSE_STATS;
    *id = rq->stats->id;
    break;
  case PLANKTON__REQUEST__BODY_HEALTH:
    *kind = PC_CLIENT_RESPONSE_HEALTH;
    *id = rq->health->id;
    break;
  case PLANKTON__REQUEST__BODY_MODEL_CONTROL:
    *kind = PC_CLIENT_RESPONSE_MODEL_CONTROL;
    *id = rq->model_control->id;
    break;
  default:
    *kind = PC_CLIENT_RESPONSE_MODEL_INFO;
    *id = rq->model_info->id;
    break;
  }
}

int pc_client__queue(pc_client *c, const Plankton__Request *rq, pc_client_error *err) {
  if (c->failed) return pc_client__fail(err, c->failed, "%s", c->failed_msg);
  if (pc_client_in_flight(c) >= c->opt.window) return PC_CLIENT_EAGAIN;
  size_t body = plankton__request__get_packed_size(rq);
  if (body > UINT32_MAX)
    return pc_client__fail(err, PC_CLIENT_EINVAL, "request of %zu bytes is too large", body);
  if (c->retry.on) {
    uint8_t *frame = malloc(PC_CLIENT_HEADER + body);
    if (!frame) return pc_client__fail(err, PC_CLIENT_ENOMEM, "out of memory queueing a request");
    frame[0] = (uint8_t)(body >> 24);
    frame[1] = (uint8_t)(body >> 16);
    frame[2] = (uint8_t)(body >> 8);
    frame[3] = (uint8_t)body;
    plankton__request__pack(rq, frame + PC_CLIENT_HEADER);
    pc_client_response_kind kind;
    uint64_t id;
    request_key(rq, &kind, &id);
    return pc_client__retry_queue(c, kind, id, frame, PC_CLIENT_HEADER + body, err);
  }
  uint8_t *h = reserve(c, PC_CLIENT_HEADER + body);
  if (!h) return pc_client__fail(err, PC_CLIENT_ENOMEM, "out of memory queueing a request");
  h[0] = (uint8_t)(body >> 24);
  h[1] = (uint8_t)(body >> 16);
  h[2] = (uint8_t)(body >> 8);
  h[3] = (uint8_t)body;
  plankton__request__pack(rq, h + PC_CLIENT_HEADER);
  c->out_len += PC_CLIENT_HEADER + body;
  c->in_flight++;
  return flush_out(c, err);
}

int pc_client_send_classify(pc_client *c, const pc_client_classify_request *req,
                            pc_client_error *err) {
  if (!req || (req->len && !req->data))
    return pc_client__fail(err, PC_CLIENT_EINVAL, "classify: no request or no image bytes");
  Plankton__Image img = PLANKTON__IMAGE__INIT;
  img.format = (Plankton__ImageFormat)req->format;
  img.data.data = (uint8_t *)req->data;
  img.data.len = req->len;
  img.width = req->width;
  img.height = req->height;
  Plankton__ClassifyRequest cr = PLANKTON__CLASSIFY_REQUEST__INIT;
  cr.id = req->id;
  cr.model = (char *)(req->model ? req->model : "");
  cr.image = &img;
  cr.top_k = req->top_k;
  cr.full_distribution = req->full_distribution;
  cr.tta = req->tta;
  cr.deadline_us = req->deadline_us;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_CLASSIFY;
  rq.classify = &cr;
  return pc_client__queue(c, &rq, err);
}

static void image_msg(const pc_client_image *in, Plankton__Image *out) {
  plankton__image__init(out);
  out->format = (Plankton__ImageFormat)in->format;
  out->data.data = (uint8_t *)in->data;
  out->data.len = in->len;
  out->width = in->width;
  out->height = in->height;
  out->significant_bits = in->significant_bits;
}

int pc_client_send_frame(pc_client *c, const pc_client_frame_request *req, pc_client_error *err) {
  if (!req || (req->image.len && !req->image.data) ||
      (req->background && req->background->len && !req->background->data))
    return pc_client__fail(err, PC_CLIENT_EINVAL, "frame: no request or no image bytes");
  Plankton__Image img = PLANKTON__IMAGE__INIT, bg = PLANKTON__IMAGE__INIT;
  image_msg(&req->image, &img);
  if (req->background) image_msg(req->background, &bg);
  Plankton__SegmentSettings seg = PLANKTON__SEGMENT_SETTINGS__INIT;
  seg.threshold = req->threshold;
  seg.min_area = req->min_area;
  seg.max_area = req->max_area;
  seg.padding = req->padding;
  seg.edge_objects = (Plankton__EdgeObjects)req->edge_objects;
  seg.max_objects = req->max_objects;
  seg.background = (Plankton__BackgroundMethod)req->background_method;
  Plankton__FrameRequest fr = PLANKTON__FRAME_REQUEST__INIT;
  fr.id = req->id;
  fr.model = (char *)(req->model ? req->model : "");
  fr.image = &img;
  fr.background = req->background ? &bg : NULL;
  fr.background_id = (char *)(req->background_id ? req->background_id : "");
  fr.segment = &seg;
  fr.top_k = req->top_k;
  fr.full_distribution = req->full_distribution;
  fr.tta = req->tta;
  fr.deadline_us = req->deadline_us;
  fr.return_crops = req->return_crops;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_FRAME;
  rq.frame = &fr;
  return pc_client__queue(c, &rq, err);
}

int pc_client_send_stats(pc_client *c, uint64_t id, pc_client_error *err) {
  Plankton__StatsRequest sr = PLANKTON__STATS_REQUEST__INIT;
  sr.id = id;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_STATS;
  rq.stats = &sr;
  return pc_client__queue(c, &rq, err);
}

int pc_client_send_health(pc_client *c, uint64_t id, pc_client_error *err) {
  Plankton__HealthRequest hr = PLANKTON__HEALTH_REQUEST__INIT;
  hr.id = id;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_HEALTH;
  rq.health = &hr;
  return pc_client__queue(c, &rq, err);
}

int pc_client_send_model_info(pc_client *c, uint64_t id, const char *model, pc_client_error *err) {
  Plankton__ModelInfoRequest mr = PLANKTON__MODEL_INFO_REQUEST__INIT;
  mr.id = id;
  mr.model = (char *)(model ? model : "");
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_MODEL_INFO;
  rq.model_info = &mr;
  return pc_client__queue(c, &rq, err);
}

int pc_client_send_model_control(pc_client *c, uint64_t id, pc_client_model_op op,
                                 const char *model, pc_client_error *err) {
  Plankton__ModelControlRequest mr = PLANKTON__MODEL_CONTROL_REQUEST__INIT;
  mr.id = id;
  mr.op = (Plankton__ModelControlOp)op;
  mr.model = (char *)(model ? model : "");
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_MODEL_CONTROL;
  rq.model_control = &mr;
  return pc_client__queue(c, &rq, err);
}

int pc_client_next_response(pc_client *c, pc_client_response **out) {
  pc_client_response *r = c->ready_head;
  if (!r) return PC_CLIENT_EAGAIN;
  c->ready_head = pc_client__response_next(r);
  if (!c->ready_head) c->ready_tail = NULL;
  pc_client__response_set_next(r, NULL);
  *out = r;
  return PC_CLIENT_OK;
}

pc_client_response *pc_client__take(pc_client *c, pc_client_response_kind kind, uint64_t id) {
  pc_client_response *prev = NULL;
  for (pc_client_response *r = c->ready_head; r; prev = r, r = pc_client__response_next(r)) {
    if (r->kind != kind || r->id != id) continue;
    pc_client_response *next = pc_client__response_next(r);
    if (prev)
      pc_client__response_set_next(prev, next);
    else
      c->ready_head = next;
    if (c->ready_tail == r) c->ready_tail = prev;
    pc_client__response_set_next(r, NULL);
    return r;
  }
  return NULL;
}
