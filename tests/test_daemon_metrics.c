/* Stats and /metrics: after a known mix of requests, the Stats answer
 * counts them by status, has every histogram and the model, backend and
 * connection figures; GET /metrics (HTTP over a Unix socket, and over TCP)
 * serves the same numbers as Prometheus text that `promtool check metrics`
 * accepts ($PROMTOOL; without it the test fails); other paths get
 * 404, other methods 405, garbage 400, HEAD no body, and keep-alive works.
 * Also: the protocol over the optional TCP listener, and the Unix socket's
 * mode (0660 by default, --socket-mode otherwise). Cases: counts, http_paths,
 * tcp, crops, process, each on a daemon of its own. */
#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_test_cases.h"

static int connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The port a listener of d bound (it was given port 0): the number after
 * `needle` ("listening on tcp:127.0.0.1:") in its log, waited for; -1 if none. */
static int logged_port(const pd_td *d, const char *needle) {
  if (!pd_td_wait_log(d, needle, 10)) return -1;
  char *log = pd_td_log(d);
  const char *at = log ? strstr(log, needle) : NULL;
  int port = at ? (int)strtol(at + strlen(needle), NULL, 10) : -1;
  free(log);
  return port > 0 ? port : -1;
}

/* Sends `req`, reads until the peer closes (or `responses` complete
 * responses arrived with keep-alive). Returns the malloc'ed text. */
static char *http(int fd, const char *req, int responses) {
  send(fd, req, strlen(req), MSG_NOSIGNAL);
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  double until = pd_td_now_ms() + 10000;
  while (pd_td_now_ms() < until && len < cap - 1) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 200) <= 0) {
      /* keep-alive: stop once the expected responses are complete */
      buf[len] = '\0';
      int complete = 0;
      for (const char *h = buf; (h = strstr(h, "HTTP/1.1 ")); h++) {
        const char *cl = strstr(h, "Content-Length: "), *end = strstr(h, "\r\n\r\n");
        if (!cl || !end) break;
        size_t body = strtoul(cl + 16, NULL, 10);
        bool head_only = strstr(req, "HEAD ") == req;
        if ((size_t)(end + 4 - buf) + (head_only ? 0 : body) <= len) complete++;
      }
      if (responses > 0 && complete >= responses) break;
      continue;
    }
    ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
  return buf;
}

static unsigned long long metric(const char *text, const char *name) {
  const char *p = text;
  size_t n = strlen(name);
  while ((p = strstr(p, name))) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtoull(p + n + 1, NULL, 10);
    p += n;
  }
  return ~0ull;
}

static void promtool_check(pd_test_state *st, const char *body, const char *dir) {
  const char *tool = getenv("PROMTOOL");
  if (!tool || !*tool) { /* scripts/setup installs it (Debian's prometheus): its absence fails */
    st->checks++;
    st->failures++;
    fprintf(stderr, "promtool: not found (meson found no promtool; scripts/setup installs the "
                    "prometheus package): /metrics cannot be checked\n");
    return;
  }
  char path[400], cmd[1200];
  snprintf(path, sizeof path, "%s/metrics.txt", dir);
  FILE *f = fopen(path, "w");
  fputs(body, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s'", tool, path);
  int rc = system(cmd);
  PD_CHECK_INT(st, rc, 0);
  printf("promtool check metrics: %s\n", rc == 0 ? "ok" : "FAILED");
}

/* Entries of /proc/PID/fd, counted here. */
static int count_fds(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *dir = opendir(path);
  int n = 0;
  for (struct dirent *e; dir && (e = readdir(dir));)
    n += e->d_name[0] != '.';
  if (dir) closedir(dir);
  return dir ? n : -1;
}

/* N classify requests with tta 4: crops +N and images +4N, in Stats and in
 * /metrics (planktond_inference_crops_total beside ..._count_total). */
static void crops_on(pd_test_state *st, const pd_td *d, pc_client *c, const char *msock) {
  enum { N = 6, TTA = 4 };
  pc_client_response *r = NULL;
  PD_CHECK_INT(st, pc_client_stats(c, &r, NULL), PC_CLIENT_OK);
  uint64_t crops0 = r ? r->u.stats.crops : 0, images0 = r ? r->u.stats.images : 0;
  pc_client_response_free(r);
  char *m = pd_td_metrics(msock);
  double mcrops0 = m ? pd_td_metric(m, "planktond_inference_crops_total") : NAN;
  double mimages0 = m ? pd_td_metric(m, "planktond_inference_count_total") : NAN;
  free(m);
  PD_CHECK(st, mcrops0 == (double)crops0 && mimages0 == (double)images0);
  uint8_t *gray = pd_td_crop(11, 48, 36);
  for (int i = 0; i < N; i++) {
    pc_client_classify_request rq = {.id = 1000 + (uint64_t)i,
                                     .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                     .data = gray,
                                     .len = 48 * 36,
                                     .width = 48,
                                     .height = 36,
                                     .tta = TTA};
    r = NULL;
    PD_CHECK_INT(st, pc_client_classify(c, &rq, &r, NULL), PC_CLIENT_OK);
    PD_CHECK(st, r && r->status == 0 && r->u.classify.tta == TTA);
    pc_client_response_free(r);
  }
  free(gray);
  r = NULL;
  PD_CHECK_INT(st, pc_client_stats(c, &r, NULL), PC_CLIENT_OK);
  if (r) {
    PD_CHECK_INT(st, r->u.stats.crops - crops0, N);
    PD_CHECK_INT(st, r->u.stats.images - images0, N * TTA);
  }
  m = pd_td_metrics(msock);
  PD_CHECK(st, m != NULL);
  if (m) {
    PD_CHECK(st, pd_td_metric(m, "planktond_inference_crops_total") - mcrops0 == N);
    PD_CHECK(st, pd_td_metric(m, "planktond_inference_count_total") - mimages0 == N * TTA);
    PD_CHECK_CONTAINS(st, m, "# TYPE planktond_inference_crops_total counter");
  }
  printf("crops: %d requests with tta %d: crops +%llu, images +%llu (Stats and /metrics)\n", N, TTA,
         r ? (unsigned long long)(r->u.stats.crops - crops0) : 0ull,
         r ? (unsigned long long)(r->u.stats.images - images0) : 0ull);
  pc_client_response_free(r);
  free(m);
  (void)d;
}

/* process_* as the Prometheus client libraries export them, with values
 * this test can check itself. started_*: the test's window around start. */
static void process_on(pd_test_state *st, const pd_td *d, const char *msock, double started_from,
                       double started_by) {
  char *m = pd_td_metrics(msock);
  int fds_here = count_fds(d->pid);
  PD_CHECK(st, m != NULL);
  if (!m) return;
  const char *types[][2] = {{"process_cpu_seconds_total", "counter"},
                            {"process_resident_memory_bytes", "gauge"},
                            {"process_virtual_memory_bytes", "gauge"},
                            {"process_open_fds", "gauge"},
                            {"process_max_fds", "gauge"},
                            {"process_start_time_seconds", "gauge"}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    char line[128];
    snprintf(line, sizeof line, "# TYPE %s %s\n", types[i][0], types[i][1]);
    PD_CHECK_CONTAINS(st, m, line);
  }
  double rss = pd_td_metric(m, "process_resident_memory_bytes");
  double vsz = pd_td_metric(m, "process_virtual_memory_bytes");
  double cpu = pd_td_metric(m, "process_cpu_seconds_total");
  double fds = pd_td_metric(m, "process_open_fds");
  double max_fds = pd_td_metric(m, "process_max_fds");
  double start = pd_td_metric(m, "process_start_time_seconds");
  PD_CHECK(st, rss > 1e6 && vsz >= rss);
  PD_CHECK(st, cpu > 0 && cpu < 3600);
  PD_CHECK(st, fabs(fds - fds_here) <= 2);
  PD_CHECK(st, max_fds >= fds);
  PD_CHECK(st, start >= started_from - 1 && start <= started_by + 1);
  printf("process: rss %.0f bytes, vsz %.0f, cpu %.2f s, fds %.0f (here %d), max %.0f, "
         "start %.2f (window %.2f..%.2f)\n",
         rss, vsz, cpu, fds, fds_here, max_fds, start, started_from, started_by);
  free(m);
}

/* ---- the cases (pd_test_cases.h), each on a daemon of its own ---- */

static uint8_t *gray, *png;
static size_t png_len;

static bool start(pd_test_state *st, pd_td *d, const char *const *args) {
  if (pd_td_start(d, args) == 0) return true;
  PD_CHECK(st, 0);
  pd_td_cleanup(d);
  return false;
}

static void stop(pd_test_state *st, pd_td *d) {
  PD_CHECK_INT(st, pd_td_stop(d, SIGTERM, 30), 0);
  pd_td_cleanup(d);
}

static const char *const k_unix_metrics[] = {"--metrics", "unix:@DIR@/metrics.sock", NULL};

/* A known mix of requests (40 good, 5 bad images, 3 unknown models): Stats
 * and /metrics count them, and promtool accepts the text; the Unix socket's
 * default mode is 0660. */
static void counts(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, k_unix_metrics)) return;
  /* 40 good requests, 5 bad images, 3 unknown models */
  pc_client *c = pd_td_connect(&d, 64);
  for (int i = 0; i < 48; i++) {
    pc_client_classify_request rq = {.id = (uint64_t)i,
                                     .format = PC_CLIENT_IMAGE_PNG,
                                     .data = png,
                                     .len = i < 45 && i >= 40 ? 10 : png_len};
    if (i >= 45) rq.model = "nope";
    PD_CHECK_INT(st, pc_client_send_classify(c, &rq, NULL), PC_CLIENT_OK);
  }
  int answered = 0;
  while (answered < 48 && pc_client_wait(c, 10000, NULL) == PC_CLIENT_OK) {
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      answered++;
      pc_client_response_free(r);
    }
  }
  PD_CHECK_INT(st, answered, 48);

  pc_client_response *r = NULL;
  PD_CHECK_INT(st, pc_client_stats(c, &r, NULL), PC_CLIENT_OK);
  const pc_client_stats_result *s = r ? &r->u.stats : NULL;
  if (s) {
    PD_CHECK_INT(st, r->status, 0);
    PD_CHECK_INT(st, s->requests_by_status[0], 40);
    PD_CHECK_INT(st, s->requests_by_status[PC_CLIENT_STATUS_INVALID_ARGUMENT], 5);
    PD_CHECK_INT(st, s->requests_by_status[PC_CLIENT_STATUS_NOT_FOUND], 3);
    PD_CHECK_INT(st, s->images, 40);
    PD_CHECK_INT(st, s->crops, 40); /* no TTA: one image per crop */
    PD_CHECK(st, s->batches >= 1 && s->batches <= 40);
    PD_CHECK_INT(st, s->connections, 1);
    PD_CHECK(st, s->connections_total >= 2); /* the harness's health check, and us */
    PD_CHECK_INT(st, s->in_flight, 0);
    PD_CHECK_INT(st, s->queue_depth, 0);
    PD_CHECK(st, !strcmp(s->model_name, "daemon-tiny") && !strcmp(s->model_version, "1"));
    PD_CHECK(st, !strcmp(s->backend, pd_td_backend()));
    PD_CHECK_INT(st, s->model_loads, 1);
    PD_CHECK(st, s->uptime_seconds > 0 && s->model_loaded_unix > 1600000000);
    PD_CHECK_INT(st, s->n_histograms, 6);
    const char *names[] = {"queue_us",   "decode_us",  "compute_us",
                           "request_us", "batch_size", "segment_us"};
    const uint64_t counts[] = {40, 40, s->batches, 48, s->batches, 0}; /* no frame */
    for (size_t h = 0; h < s->n_histograms && h < 6; h++) {
      PD_CHECK(st, !strcmp(s->histograms[h].name, names[h]));
      PD_CHECK_INT(st, s->histograms[h].count, counts[h]);
      for (size_t b = 1; b < s->histograms[h].n_bounds; b++)
        PD_CHECK(st, s->histograms[h].counts[b] >= s->histograms[h].counts[b - 1]);
    }
    PD_CHECK(st, s->histograms[4].sum == 40.0); /* images over every batch */
    printf("stats: %llu OK, %llu INVALID_ARGUMENT, %llu NOT_FOUND, %llu images in %llu batches\n",
           (unsigned long long)s->requests_by_status[0],
           (unsigned long long)s->requests_by_status[3],
           (unsigned long long)s->requests_by_status[5], (unsigned long long)s->images,
           (unsigned long long)s->batches);
  }

  char msock[400];
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);
  char *text = http(pd_raw_connect(msock),
                    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 200 OK\r\n", 17));
  PD_CHECK_CONTAINS(st, text, "Content-Type: text/plain; version=0.0.4");
  char *body = strstr(text, "\r\n\r\n");
  body = body ? body + 4 : text;
  PD_CHECK_INT(st, metric(body, "planktond_inference_request_total{status=\"OK\"}"), 40);
  PD_CHECK_INT(st, metric(body, "planktond_inference_request_total{status=\"INVALID_ARGUMENT\"}"),
               5);
  PD_CHECK_INT(st, metric(body, "planktond_inference_request_success_total"), 40);
  PD_CHECK_INT(st, metric(body, "planktond_inference_request_failure_total"), 8);
  PD_CHECK_INT(st, metric(body, "planktond_inference_count_total"), 40);
  PD_CHECK_INT(st, metric(body, "planktond_inference_crops_total"), 40);
  if (s) {
    PD_CHECK_INT(st, metric(body, "planktond_inference_exec_count_total"), s->batches);
    PD_CHECK_INT(st, metric(body, "planktond_inference_batch_size_count"), s->batches);
  }
  PD_CHECK_INT(st, metric(body, "planktond_inference_request_duration_seconds_count"), 48);
  PD_CHECK_INT(st, metric(body, "planktond_inference_queue_duration_seconds_count"), 40);
  PD_CHECK_INT(
      st, metric(body, "planktond_inference_compute_infer_duration_seconds_bucket{le=\"+Inf\"}"),
      s ? s->batches : 0);
  PD_CHECK_INT(st, metric(body, "planktond_connections"), 1);
  PD_CHECK_INT(st, metric(body, "planktond_inference_pending_requests"), 0);
  char info[160];
  snprintf(info, sizeof info,
           "planktond_model_info{model=\"daemon-tiny\",version=\"1\",backend=\"%s\"} 1",
           pd_td_backend());
  PD_CHECK_CONTAINS(st, body, info);
  PD_CHECK_CONTAINS(st, body, "# TYPE planktond_inference_batch_size histogram");
  PD_CHECK_CONTAINS(st, body, "planktond_uptime_seconds ");
  promtool_check(st, body, d.dir);

  free(text);
  struct stat sb;
  PD_CHECK(st, stat(d.socket, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 0777) == 0660);
  pc_client_response_free(r);
  pc_client_close(c);
  stop(st, &d);
}

/* GET /metrics over HTTP on a Unix socket: 404, 405, 400, HEAD, keep-alive. */
static void http_paths(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, k_unix_metrics)) return;
  char msock[400];
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);
  char *text =
      http(pd_raw_connect(msock), "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 404", 12));
  free(text);
  text = http(pd_raw_connect(msock),
              "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
              0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 405", 12));
  free(text);
  text = http(pd_raw_connect(msock), "\x01\x02garbage\r\n\r\n", 0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 400", 12));
  free(text);
  text = http(pd_raw_connect(msock),
              "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 200", 12));
  PD_CHECK(st, strstr(text, "\r\n\r\n") && strstr(text, "\r\n\r\n")[4] == '\0');
  free(text);
  text = http(
      pd_raw_connect(msock),
      "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 2);
  int oks = 0;
  for (const char *p = text; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
    oks++;
  PD_CHECK_INT(st, oks, 2);
  free(text);
  printf("http: 200, 404, 405, 400, HEAD and keep-alive as expected\n");

  stop(st, &d);
}

/* Port 0: the daemon binds free ports and logs them (no race for a port);
 * /metrics and the protocol over TCP; --socket-mode 0600. */
static void tcp(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--metrics",     "127.0.0.1:0", "--tcp", "127.0.0.1:0",
                        "--socket-mode", "0600",        NULL};
  if (!start(st, &d, args)) return;
  int port = logged_port(&d, "metrics: http tcp:127.0.0.1:");
  int api_port = logged_port(&d, "listening on tcp:127.0.0.1:");
  PD_CHECK(st, port > 0 && api_port > 0 && port != api_port);
  char tcp_api[64];
  snprintf(tcp_api, sizeof tcp_api, "127.0.0.1:%d", api_port);
  printf("port 0: metrics on %d, the protocol on %d (from the log)\n", port, api_port);
  /* the TCP listener */
  char *text =
      http(connect_tcp(port), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
  PD_CHECK(st, !strncmp(text, "HTTP/1.1 200 OK", 15));
  PD_CHECK_CONTAINS(st, text, "planktond_inference_count_total 0");
  free(text);

  /* the protocol over TCP, and the socket's mode */
  pc_client *tc = NULL;
  pc_client_error err;
  PD_CHECK_INT(st, pc_client_connect(tcp_api, NULL, &tc, &err), PC_CLIENT_OK);
  if (tc) {
    pc_client_classify_request rq = {
        .id = 99, .format = PC_CLIENT_IMAGE_PNG, .data = png, .len = png_len};
    pc_client_response *tr = NULL;
    PD_CHECK_INT(st, pc_client_classify(tc, &rq, &tr, &err), PC_CLIENT_OK);
    PD_CHECK(st, tr && tr->status == 0 && tr->id == 99 && tr->u.classify.n_top == 5);
    pc_client_response_free(tr);
    pc_client_close(tc);
    printf("tcp %s: classify OK\n", tcp_api);
  }
  struct stat sb;
  PD_CHECK(st, stat(d.socket, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  stop(st, &d);
}

static void crops(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, k_unix_metrics)) return;
  pc_client *c = pd_td_connect(&d, 64);
  char msock[400];
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);
  crops_on(st, &d, c, msock);
  pc_client_close(c);
  stop(st, &d);
}

static double now_unix(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void process(pd_test_state *st) {
  pd_td d;
  const double started_from = now_unix();
  if (!start(st, &d, k_unix_metrics)) return;
  const double started_by = now_unix();
  char msock[400];
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);
  process_on(st, &d, msock, started_from, started_by);
  stop(st, &d);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  gray = pd_td_crop(3, 50, 40);
  png = pd_td_png(gray, 50, 40, &png_len);
  return png ? 0 : 1;
}

static void teardown(void) {
  free(gray);
  free(png);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(counts), PD_TEST_CASE(http_paths), PD_TEST_CASE(tcp),
    PD_TEST_CASE(crops),  PD_TEST_CASE(process),
};

PD_TEST_MAIN("daemon_metrics", setup, teardown, k_cases)
