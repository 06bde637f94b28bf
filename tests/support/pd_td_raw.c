#include "pd_td_raw.h"

#include "plankton_client.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int pd_raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    close(fd);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int pd_raw_write(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

long pd_raw_read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms) {
  size_t have = 0, want = 4;
  double until = now_ms() + timeout_ms;
  if (cap < 4) return -1;
  while (have < want) {
    int left = (int)(until - now_ms());
    if (left <= 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return -1;
    ssize_t n = recv(fd, buf + have, want - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    have += (size_t)n;
    if (have == 4 && want == 4) {
      want = 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
      if (want > cap) return -1;
    }
  }
  return (long)(want - 4);
}

Plankton__Response *pd_raw_read_response(int fd, int timeout_ms) {
  uint8_t *buf = malloc(1 << 20);
  if (!buf) return NULL;
  long n = pd_raw_read_frame(fd, buf, 1 << 20, timeout_ms);
  Plankton__Response *r = n >= 0 ? plankton__response__unpack(NULL, (size_t)n, buf + 4) : NULL;
  free(buf);
  return r;
}

bool pd_raw_closed(int fd, int timeout_ms) {
  uint8_t buf[4096];
  double until = now_ms() + timeout_ms;
  while (now_ms() < until) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return false;
}

bool pd_raw_quiet_open(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 0;
}

bool pd_raw_error_then_close(int fd, int status, const char *needle, int timeout_ms) {
  Plankton__Response *r = pd_raw_read_response(fd, timeout_ms);
  bool ok = r && r->body_case == PLANKTON__RESPONSE__BODY_ERROR && r->error->status &&
            (int)r->error->status->code == status &&
            (!needle || strstr(r->error->status->message, needle));
  if (!ok)
    fprintf(stderr, "  expected an error frame %s (%s), got %s\n", pc_client_status_name(status),
            needle ? needle : "",
            r ? (r->body_case == PLANKTON__RESPONSE__BODY_ERROR && r->error->status
                     ? r->error->status->message
                     : "another answer")
              : "nothing");
  if (r) plankton__response__free_unpacked(r, NULL);
  return ok && pd_raw_closed(fd, timeout_ms);
}

long pd_raw_fill(int fd, const void *msg, size_t len, long max, int quiet_ms, int bound_ms,
                 bool *blocked) {
  const uint8_t *p = msg;
  long sent = 0;
  size_t off = 0;
  double until = now_ms() + bound_ms, quiet_since = now_ms();
  *blocked = false;
  while ((max == 0 || sent < max) && now_ms() < until) {
    if (now_ms() - quiet_since >= quiet_ms) {
      *blocked = true;
      break;
    }
    ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += (size_t)n;
      if (off == len) {
        off = 0;
        sent++;
      }
      quiet_since = now_ms();
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      break;
    } else {
      usleep(5000);
    }
  }
  return sent;
}

uint8_t *pd_raw_request_frame(const Plankton__Request *rq, size_t *len) {
  size_t body = plankton__request__get_packed_size(rq);
  uint8_t *f = malloc(4 + body);
  if (!f) return NULL;
  f[0] = (uint8_t)(body >> 24);
  f[1] = (uint8_t)(body >> 16);
  f[2] = (uint8_t)(body >> 8);
  f[3] = (uint8_t)body;
  plankton__request__pack(rq, f + 4);
  *len = 4 + body;
  return f;
}

uint8_t *pd_raw_classify_frame(uint64_t id, int format, const void *data, size_t n, size_t *len) {
  Plankton__Image img = PLANKTON__IMAGE__INIT;
  img.format = (Plankton__ImageFormat)format;
  img.data.data = (uint8_t *)data;
  img.data.len = n;
  Plankton__ClassifyRequest cr = PLANKTON__CLASSIFY_REQUEST__INIT;
  cr.id = id;
  cr.image = &img;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_CLASSIFY;
  rq.classify = &cr;
  return pd_raw_request_frame(&rq, len);
}

uint8_t *pd_raw_health_frame(uint64_t id, size_t *len) {
  Plankton__HealthRequest hr = PLANKTON__HEALTH_REQUEST__INIT;
  hr.id = id;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_HEALTH;
  rq.health = &hr;
  return pd_raw_request_frame(&rq, len);
}

long pd_raw_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

int pd_raw_open_fds(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

char *pd_raw_metrics(const char *unix_path) {
  int fd = pd_raw_connect(unix_path);
  if (fd < 0) return NULL;
  const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (pd_raw_write(fd, req, strlen(req)) != 0) {
    close(fd);
    return NULL;
  }
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  double until = now_ms() + 10000;
  while (buf && now_ms() < until) {
    if (cap - len < 4096) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) break;
      buf = nb;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  if (!buf) return NULL;
  buf[len] = '\0';
  char *body = strstr(buf, "\r\n\r\n");
  if (!body || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
    free(buf);
    return NULL;
  }
  memmove(buf, body + 4, strlen(body + 4) + 1);
  return buf;
}

double pd_raw_metric(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, name, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
  return -1;
}

long pd_raw_raise_nofile(long n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if ((long)rl.rlim_cur < n) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= n ? (rlim_t)n : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return (long)rl.rlim_cur;
}
