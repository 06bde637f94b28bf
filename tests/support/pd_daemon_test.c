#include "pd_daemon_test.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <jpeglib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_crops.h"
#include "pd_cpu_backend.h"
#include "pd_tta.h"
#include "pd_warp.h"

double pd_td_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

char *pd_td_metrics(const char *unix_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", unix_path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const char req[] = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
  size_t cap = 1 << 20, len = 0;
  char *buf =
      send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1) ? malloc(cap) : NULL;
  for (ssize_t n = 1; buf && n > 0 && len < cap - 1; len += (size_t)(n > 0 ? n : 0))
    n = recv(fd, buf + len, cap - 1 - len, 0);
  close(fd);
  if (!buf) return NULL;
  buf[len] = '\0';
  const char *body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || !body) {
    free(buf);
    return NULL;
  }
  memmove(buf, body + 4, strlen(body + 4) + 1);
  return buf;
}

double pd_td_metric(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; p && (p = strstr(p, name)); p += n)
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
  return NAN;
}

const char *pd_td_model_dir(void) {
  const char *m = getenv("PD_TEST_MODEL");
  return m ? m : "";
}

const char *pd_td_backend(void) {
  const char *b = getenv("PD_TEST_BACKEND");
  return b && *b ? b : "cpu";
}

#if defined(__SANITIZE_ADDRESS__)
#define PD_TD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PD_TD_ASAN 1
#endif
#endif
#ifndef PD_TD_ASAN
#define PD_TD_ASAN 0
#endif

double pd_td_timeout_scale(void) {
  const char *s = getenv("PD_TEST_TIMEOUT_SCALE");
  if (s && *s) {
    double v = strtod(s, NULL);
    return v >= 1 ? v : 1;
  }
  const char *w = getenv("PD_DAEMON_WRAPPER");
  if (w && *w) return 20;
  return PD_TD_ASAN ? 3 : 1;
}

double pd_td_prob_tol(void) {
  return strcmp(pd_td_backend(), "cpu") == 0 ? 2e-6 : 1e-4;
}

bool pd_td_have_model(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/model.yaml", pd_td_model_dir());
  if (access(path, R_OK) == 0) return true;
  fprintf(stderr, "skipped: no test model at %s (PD_TEST_MODEL; meson test builds it)\n",
          pd_td_model_dir());
  return false;
}

static int notify_socket(pd_td *d) {
  char path[400];
  snprintf(path, sizeof path, "%s/notify.sock", d->dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    close(fd);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  setenv("NOTIFY_SOCKET", path, 1);
  return fd;
}

static bool health_ok(const pd_td *d) {
  pc_client_options o = {.window = 4, .timeout_ms = (int)(2000 * pd_td_timeout_scale())};
  pc_client *c;
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", d->socket);
  if (pc_client_connect(addr, &o, &c, NULL) != PC_CLIENT_OK) return false;
  pc_client_response *r = NULL;
  bool ok = pc_client_health(c, &r, NULL) == PC_CLIENT_OK && r->status == 0;
  pc_client_response_free(r);
  pc_client_close(c);
  return ok;
}

int pd_td_start(pd_td *d, const char *const *args) {
  return pd_td_start_opts(d, NULL, args);
}

int pd_td_start_opts(pd_td *d, const pd_td_opts *o, const char *const *args) {
  memset(d, 0, sizeof *d);
  d->notify_fd = -1;
  snprintf(d->dir, sizeof d->dir, "/tmp/pd-daemon-test-XXXXXX");
  if (!mkdtemp(d->dir)) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return -1;
  }
  snprintf(d->socket, sizeof d->socket, "%s/planktond.sock", d->dir);
  snprintf(d->log_path, sizeof d->log_path, "%s/daemon.log", d->dir);
  const char *bin = o && o->binary ? o->binary : getenv("PLANKTOND");
  if (!bin || !*pd_td_model_dir()) {
    fprintf(stderr, "set PLANKTOND and PD_TEST_MODEL\n");
    return -1;
  }
  d->notify_fd = notify_socket(d);
  const char *argv[96];
  int n = 0;
  bool has_config = false, has_backend = false;
  for (int i = 0; args && args[i]; i++) {
    has_config |= !strcmp(args[i], "--config");
    has_backend |= !strcmp(args[i], "--backend");
  }
  char wrapper[1024] = "";
  const char *wrap_env = getenv("PD_DAEMON_WRAPPER");
  const char *wrap_extra = getenv("PD_DAEMON_WRAPPER_EXTRA"); /* e.g. --suppressions=FILE */
  if (wrap_env && *wrap_env)
    snprintf(wrapper, sizeof wrapper, "%s %s", wrap_env, wrap_extra ? wrap_extra : "");
  else
    wrap_env = NULL;
  for (char *save = NULL, *w = strtok_r(wrapper, " ", &save); w && n < 30;
       w = strtok_r(NULL, " ", &save))
    argv[n++] = w;
  const char *exe = n ? argv[0] : bin;
  argv[n++] = bin;
  argv[n++] = "--socket";
  argv[n++] = d->socket;
  if (!has_config) { /* with a config file, the model comes from it */
    argv[n++] = "--model";
    argv[n++] = pd_td_model_dir();
  }
  if (!has_config && !has_backend) { /* never "auto": the suite runs on the backend it names */
    argv[n++] = "--backend";
    argv[n++] = pd_td_backend();
  }
  char expanded[16][512]; /* "@DIR@" in an argument becomes the temporary folder */
  int n_expanded = 0;
  for (int i = 0; args && args[i] && n < 94; i++) {
    const char *at = strstr(args[i], "@DIR@");
    if (at && n_expanded < 16) {
      snprintf(expanded[n_expanded], sizeof expanded[0], "%.*s%s%s", (int)(at - args[i]), args[i],
               d->dir, at + 5);
      argv[n++] = expanded[n_expanded++];
    } else {
      argv[n++] = args[i];
    }
  }
  argv[n] = NULL;
  int logfd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  d->pid = fork();
  if (d->pid == 0) {
    dup2(logfd, 2);
    if (o && o->nofile > 0) {
      struct rlimit rl = {.rlim_cur = (rlim_t)o->nofile, .rlim_max = (rlim_t)o->nofile};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(126);
    }
    for (int i = 0; o && o->env && o->env[i]; i++)
      putenv((char *)o->env[i]);
    execvp(exe, (char *const *)argv);
    _exit(127);
  }
  close(logfd);
  unsetenv("NOTIFY_SOCKET");
  if (d->pid < 0) return -1;
  double until = pd_td_now_ms() + 60000 * pd_td_timeout_scale(); /* valgrind is slow */
  while (pd_td_now_ms() < until) {
    char buf[512];
    ssize_t got = d->notify_fd >= 0 ? recv(d->notify_fd, buf, sizeof buf - 1, 0) : -1;
    if (got > 0) {
      buf[got] = '\0';
      if (strstr(buf, "READY=1")) d->ready_notified = true;
    }
    if (d->ready_notified && health_ok(d)) return 0;
    int status;
    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
      d->pid = 0;
      char *log = pd_td_log(d);
      fprintf(stderr, "planktond exited at start-up (status %d):\n%s\n", status, log ? log : "");
      free(log);
      return -1;
    }
    if (!d->ready_notified && got <= 0 && access(d->socket, F_OK) == 0 && health_ok(d))
      return 0; /* built without libsystemd: no READY=1 */
    usleep(20000);
  }
  fprintf(stderr, "planktond not ready after %.0f s\n", 60 * pd_td_timeout_scale());
  return -1;
}

int pd_td_stop(pd_td *d, int sig, int timeout_s) {
  timeout_s = (int)(timeout_s * pd_td_timeout_scale());
  if (d->pid <= 0) return -1;
  kill(d->pid, sig);
  double until = pd_td_now_ms() + timeout_s * 1000.0;
  int status = 0;
  while (pd_td_now_ms() < until) {
    pid_t p = waitpid(d->pid, &status, WNOHANG);
    if (p == d->pid) {
      d->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    }
    usleep(10000);
  }
  kill(d->pid, SIGKILL);
  waitpid(d->pid, &status, 0);
  d->pid = 0;
  return -1;
}

void pd_td_cleanup(pd_td *d) {
  if (d->pid > 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
  }
  if (d->notify_fd >= 0) close(d->notify_fd);
  d->notify_fd = -1;
  if (d->dir[0]) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", d->dir);
    d->dir[0] = '\0';
  }
}

char *pd_td_log(const pd_td *d) {
  FILE *f = fopen(d->log_path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
  if (buf) buf[got] = '\0';
  fclose(f);
  return buf;
}

bool pd_td_wait_log(const pd_td *d, const char *needle, int timeout_s) {
  double until = pd_td_now_ms() + timeout_s * 1000.0 * pd_td_timeout_scale();
  do {
    char *log = pd_td_log(d);
    bool found = log && strstr(log, needle);
    free(log);
    if (found) return true;
    usleep(20000);
  } while (pd_td_now_ms() < until);
  return false;
}

int pd_td_log_count(const pd_td *d, const char *needle) {
  char *log = pd_td_log(d);
  int n = 0;
  for (const char *p = log; p && (p = strstr(p, needle)); p++)
    n++;
  free(log);
  return n;
}

pc_client_response *pd_td_classify(pc_client *c, const pc_client_classify_request *rq) {
  pc_client_response *r = NULL;
  pc_client_error err;
  if (pc_client_classify(c, rq, &r, &err) != PC_CLIENT_OK) {
    fprintf(stderr, "classify: %s\n", err.message);
    return NULL;
  }
  return r;
}

int pd_td_model_renamed(const char *to, const char *name) {
  const char *from = pd_td_model_dir();
  char cmd[2048];
  int n = snprintf(cmd, sizeof cmd,
                   "mkdir -p '%s' && cp '%s/weights.safetensors' '%s/' && "
                   "sed 's/^name: .*$/name: %s/' '%s/model.yaml' > '%s/model.yaml'",
                   to, from, to, name, from, to);
  if (n < 0 || (size_t)n >= sizeof cmd) return -1;
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "could not copy the test model to %s (%d): %s\n", to, rc, cmd);
  return rc == 0 ? 0 : -1;
}

pc_client *pd_td_connect(const pd_td *d, int window) {
  pc_client_options o = {.window = window, .timeout_ms = (int)(60000 * pd_td_timeout_scale())};
  pc_client *c = NULL;
  pc_client_error err;
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", d->socket);
  if (pc_client_connect(addr, &o, &c, &err) != PC_CLIENT_OK) {
    fprintf(stderr, "connect: %s\n", err.message);
    return NULL;
  }
  return c;
}

/* ---- crops ---- */

uint8_t *pd_td_crop(uint64_t seed, int w, int h) {
  uint8_t *g = malloc((size_t)w * h);
  if (!g) return NULL;
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  memset(g, 255, (size_t)w * h);
  double cx = w * (0.3 + 0.4 * (double)(bench_xorshift(&s) % 1000) / 1000.0);
  double cy = h * (0.3 + 0.4 * (double)(bench_xorshift(&s) % 1000) / 1000.0);
  double rx = w * (0.1 + 0.3 * (double)(bench_xorshift(&s) % 1000) / 1000.0);
  double ry = h * (0.1 + 0.3 * (double)(bench_xorshift(&s) % 1000) / 1000.0);
  int dark = 20 + (int)(bench_xorshift(&s) % 120);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double dx = (x - cx) / rx, dy = (y - cy) / ry;
      double r = dx * dx + dy * dy;
      if (r < 1.0)
        g[(size_t)y * w + x] = (uint8_t)(dark + (int)(r * 100) + (int)(bench_xorshift(&s) % 20));
    }
  int strands = 1 + (int)(bench_xorshift(&s) % 4);
  for (int k = 0; k < strands; k++) {
    double a = (double)(bench_xorshift(&s) % 6283) / 1000.0;
    double len = (w > h ? w : h) * 0.45;
    for (double t = 0; t < len; t += 0.5) {
      int x = (int)(cx + t * cos(a)), y = (int)(cy + t * sin(a));
      if (x >= 0 && y >= 0 && x < w && y < h) g[(size_t)y * w + x] = (uint8_t)(dark + 40);
    }
  }
  return g;
}

uint8_t *pd_td_png(const uint8_t *gray, int w, int h, size_t *len) {
  return bench_png_gray8(gray, w, h, len);
}

uint8_t *pd_td_jpeg(const uint8_t *gray, int w, int h, size_t *len) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  unsigned char *out = NULL;
  unsigned long out_len = 0;
  jpeg_mem_dest(&c, &out, &out_len);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  jpeg_start_compress(&c, TRUE);
  for (int y = 0; y < h; y++) {
    JSAMPROW row = (JSAMPROW)(gray + (size_t)y * w);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  uint8_t *copy = malloc(out_len);
  if (copy) memcpy(copy, out, out_len);
  free(out);
  *len = out_len;
  return copy;
}

/* ---- reference ---- */

int pd_td_ref_open(pd_td_ref *r, const char *dir) {
  memset(r, 0, sizeof *r);
  pd_error err = {0};
  pd_cpu_options o = {.threads = 1};
  if (pd_model_load(dir, &r->model, &err) != 0 ||
      pd_cpu_backend_create(&o, &r->backend, &err) != 0 ||
      pd_plan_create(r->backend, &r->model->graph, 1, &r->plan, &err) != 0) {
    fprintf(stderr, "reference engine: %s\n", err.msg);
    return -1;
  }
  return 0;
}

int pd_td_ref_probs(pd_td_ref *r, const uint8_t *gray, int w, int h, float *probs) {
  const pd_model *m = r->model;
  float *slots[PD_MAX_BRANCHES];
  pd_batch b = {.n = 1};
  int rc = 0;
  for (int i = 0; i < m->n_branches; i++) {
    slots[i] = malloc(pd_model_branch_input_len(m, i) * sizeof(float));
    if (!slots[i]) rc = -1;
    b.branch[i] = slots[i];
  }
  pd_error err = {0};
  if (rc == 0) {
    pd_model_fill_view(m, gray, w, h, NULL, slots);
    rc = pd_plan_run(r->plan, &b, probs, &err);
  }
  for (int i = 0; i < m->n_branches; i++)
    free(slots[i]);
  return rc;
}

int pd_td_ref_probs_tta(pd_td_ref *r, const uint8_t *gray, int w, int h, int n, float *probs) {
  const pd_model *m = r->model;
  const int K = m->n_classes;
  pd_warp_aug *augs = malloc((size_t)n * sizeof *augs);
  float *rows = malloc((size_t)n * K * sizeof(float));
  float *first[PD_MAX_BRANCHES];
  int rc = augs && rows ? 0 : -1;
  for (int b = 0; b < m->n_branches; b++) {
    first[b] = malloc((size_t)n * pd_model_branch_input_len(m, b) * sizeof(float));
    if (!first[b]) rc = -1;
  }
  pd_error err = {0};
  if (rc == 0) rc = pd_tta_transforms(&m->tta, m->symmetry, n, augs, &err);
  if (rc == 0) pd_model_fill_views(m, gray, w, h, augs, n, first);
  for (int t = 0; rc == 0 && t < n; t++) {
    pd_batch in = {.n = 1};
    for (int b = 0; b < m->n_branches; b++)
      in.branch[b] = first[b] + (size_t)t * pd_model_branch_input_len(m, b);
    rc = pd_plan_run(r->plan, &in, rows + (size_t)t * K, &err);
  }
  if (rc == 0) pd_tta_average(rows, n, K, probs);
  for (int b = 0; b < m->n_branches; b++)
    free(first[b]);
  free(augs);
  free(rows);
  return rc;
}

void pd_td_ref_close(pd_td_ref *r) {
  if (r->plan) pd_plan_destroy(r->plan);
  if (r->backend) pd_backend_destroy(r->backend);
  pd_model_free(r->model);
  memset(r, 0, sizeof *r);
}

int pd_td_crops_make(pd_td_crop_ref *c, int n, pd_td_ref *ref, uint64_t seed, int w_min, int w_span,
                     int h_min, int h_span) {
  memset(c, 0, (size_t)n * sizeof *c);
  for (int i = 0; i < n; i++) {
    c[i].w = w_min + (i * 37) % w_span;
    c[i].h = h_min + (i * 53) % h_span;
    c[i].gray = pd_td_crop(seed + (uint64_t)i, c[i].w, c[i].h);
    c[i].png = c[i].gray ? pd_td_png(c[i].gray, c[i].w, c[i].h, &c[i].png_len) : NULL;
    c[i].probs = malloc((size_t)ref->model->n_classes * sizeof(float));
    if (!c[i].png || !c[i].probs ||
        pd_td_ref_probs(ref, c[i].gray, c[i].w, c[i].h, c[i].probs) != 0) {
      pd_td_crops_free(c, i + 1);
      return -1;
    }
  }
  return 0;
}

int pd_td_crop_one(pd_td_crop_ref *c, uint64_t seed, int w, int h, int *n_classes) {
  pd_td_ref ref;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return -1;
  int rc = pd_td_crops_make(c, 1, &ref, seed, w, 1, h, 1);
  if (n_classes) *n_classes = ref.model->n_classes;
  pd_td_ref_close(&ref);
  return rc;
}

void pd_td_crops_free(pd_td_crop_ref *c, int n) {
  for (int i = 0; i < n; i++) {
    free(c[i].gray);
    free(c[i].png);
    free(c[i].probs);
    c[i].gray = c[i].png = NULL;
    c[i].probs = NULL;
  }
}

double pd_td_crop_diff(const pd_td_crop_ref *c, const pd_td_ref *ref, const float *got, size_t n) {
  if (n != (size_t)ref->model->n_classes) return 1.0;
  double worst = 0;
  for (size_t j = 0; j < n; j++) {
    double d = fabs((double)got[j] - c->probs[j]);
    if (d > worst) worst = d;
  }
  return worst;
}

pc_client_classify_request pd_td_crop_request(const pd_td_crop_ref *c, uint64_t id, bool png) {
  pc_client_classify_request r = {.id = id, .top_k = 3, .full_distribution = true};
  if (png) {
    r.format = PC_CLIENT_IMAGE_PNG;
    r.data = c->png;
    r.len = c->png_len;
  } else {
    r.format = PC_CLIENT_IMAGE_RAW_GRAY8;
    r.data = c->gray;
    r.len = (size_t)c->w * c->h;
    r.width = (uint32_t)c->w;
    r.height = (uint32_t)c->h;
  }
  return r;
}
