/* Security checks against the real daemon:
 *  - the Unix socket gets the configured mode (0660 by default) and group
 *    (listen.socket_group), and is never world-writable: 0666, 0662 and
 *    0777 are refused at start-up (flag and config file), and so is a
 *    world-writable socket inherited through socket activation;
 *  - TCP is off unless configured: by default the daemon owns no TCP or UDP
 *    socket at all (its descriptors against /proc/net/{tcp,tcp6,udp,udp6}),
 *    and --tcp opens exactly the one listener asked for;
 *  - the /metrics server's limits: metrics.max_connections (the extra
 *    connections are closed at once), a request line dripped and left
 *    incomplete gets 408 and a close after limits.frame_timeout_ms, an idle
 *    keep-alive connection is closed after metrics.idle_timeout_s, and a
 *    client that pipelines hundreds of GETs without reading is not read
 *    further (it cannot make the daemon buffer answers without bound),
 *    while other scrapes are answered all along.
 * Cases (pd_test_cases.h): defaults, modes_and_groups,
 * inherited_world_writable (skipped where planktond has no socket
 * activation), metrics_limits. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"

/* ---- descriptors that are Internet sockets ---- */

/* Inodes of the process's sockets. */
static int socket_inodes(pid_t pid, unsigned long *out, int cap) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
  int n = 0;
  for (int fd = 0; fd < 4096 && n < cap; fd++) {
    char path[96], link[128];
    snprintf(path, sizeof path, "%s/%d", dir, fd);
    ssize_t k = readlink(path, link, sizeof link - 1);
    if (k <= 0) continue;
    link[k] = '\0';
    if (strncmp(link, "socket:[", 8) != 0) continue;
    char *end;
    unsigned long ino = strtoul(link + 8, &end, 10);
    if (*end == ']') out[n++] = ino;
  }
  return n;
}

/* Sockets of the process found in /proc/net/<table> (listening ones in
 * *listening). */
static int inet_sockets(pid_t pid, const char *table, int *listening) {
  unsigned long inodes[8192];
  int n = socket_inodes(pid, inodes, 8192);
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/net/%s", (int)pid, table);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int found = 0;
  *listening = 0;
  if (!fgets(line, sizeof line, f)) line[0] = '\0'; /* header */
  while (fgets(line, sizeof line, f)) {
    /* "sl: local remote st tx:rx tr:tm retrnsmt uid timeout inode ..." */
    char *field[10], *save = NULL;
    int nf = 0;
    for (char *t = strtok_r(line, " \t\n", &save); t && nf < 10; t = strtok_r(NULL, " \t\n", &save))
      field[nf++] = t;
    if (nf < 10) continue;
    unsigned long st_ = strtoul(field[3], NULL, 16), ino = strtoul(field[9], NULL, 10);
    for (int i = 0; i < n; i++)
      if (inodes[i] == ino && ino) {
        found++;
        *listening += st_ == 0x0a;
      }
  }
  fclose(f);
  return found;
}

static int all_inet(pid_t pid, int *listening) {
  const char *tables[] = {"tcp", "tcp6", "udp", "udp6"};
  int total = 0;
  *listening = 0;
  for (int i = 0; i < 4; i++) {
    int l = 0;
    total += inet_sockets(pid, tables[i], &l);
    *listening += l;
  }
  return total;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0;
  if (fd >= 0) close(fd);
  return ok ? ntohs(sa.sin_port) : 0;
}

/* ---- 1. defaults: mode 0660, no Internet sockets ---- */

static void defaults(pd_test_state *st) {
  pd_td d;
  if (pd_td_start(&d, NULL) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  struct stat sb;
  PD_CHECK(st, stat(d.socket, &sb) == 0 && S_ISSOCK(sb.st_mode));
  PD_CHECK_INT(st, sb.st_mode & 0777, 0660);
  PD_CHECK_INT(st, sb.st_gid, getegid());
  int listening = 0, inet = all_inet(d.pid, &listening);
  printf("%-40s -> socket mode %04o, gid %d; %d TCP/UDP sockets (%d listening)\n", "defaults",
         (unsigned)(sb.st_mode & 0777), (int)sb.st_gid, inet, listening);
  PD_CHECK_INT(st, inet, 0);
  char *log = pd_td_log(&d);
  PD_CHECK(st, log && !strstr(log, "listening on tcp") && !strstr(log, "metrics: http"));
  free(log);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);

  /* the positive control: --tcp opens exactly that listener */
  char tcp[64];
  const char *args[] = {"--tcp", tcp, NULL};
  /* The daemon takes no port 0: a free port, tried again if another
   * process took it between the probe and the daemon's bind. */
  int started = -1;
  for (int attempt = 0; attempt < 3 && started != 0; attempt++) {
    if (attempt) pd_td_cleanup(&d);
    snprintf(tcp, sizeof tcp, "127.0.0.1:%d", free_port());
    started = pd_td_start(&d, args);
  }
  if (started != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  inet = all_inet(d.pid, &listening);
  printf("%-40s -> %d TCP/UDP sockets (%d listening)\n", "--tcp set", inet, listening);
  PD_CHECK_INT(st, inet, 1);
  PD_CHECK_INT(st, listening, 1);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

/* ---- 2. the configured mode and group; world-writable refused ---- */

static void modes_and_groups(pd_test_state *st) {
  pd_td d;
  struct group *g = getgrnam("daemon");
  gid_t want_gid = g ? g->gr_gid : getegid();
  const char *group = g ? "daemon" : "";
  char gid_text[32];
  snprintf(gid_text, sizeof gid_text, "%d", (int)want_gid);
  const char *args[] = {"--socket-mode", "0600", "--socket-group",
                        geteuid() == 0 ? group : gid_text, NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  struct stat sb;
  PD_CHECK(st, stat(d.socket, &sb) == 0);
  PD_CHECK_INT(st, sb.st_mode & 0777, 0600);
  PD_CHECK_INT(st, sb.st_gid, want_gid);
  printf("%-40s -> mode %04o, gid %d\n", "--socket-mode 0600 --socket-group",
         (unsigned)(sb.st_mode & 0777), (int)sb.st_gid);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);

  const char *bad[] = {"0666", "0662", "0777"};
  for (int i = 0; i < 3; i++) {
    const char *a[] = {"--socket-mode", bad[i], NULL};
    int rc = pd_td_start(&d, a);
    char *log = pd_td_log(&d);
    PD_CHECK(st, rc != 0);
    PD_CHECK_CONTAINS(st, log ? log : "", "world-writable");
    PD_CHECK(st, access(d.socket, F_OK) != 0); /* no socket was made */
    printf("%-40s -> refused at start-up\n", i == 0   ? "--socket-mode 0666"
                                             : i == 1 ? "--socket-mode 0662"
                                                      : "--socket-mode 0777");
    free(log);
    pd_td_cleanup(&d);
  }
  /* from a config file: the error names the file and line */
  char tmp[] = "/tmp/pd-sec-XXXXXX";
  if (mkdtemp(tmp)) {
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/planktond.yaml", tmp);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "model:\n  dir: %s\nlisten:\n  socket_mode: 0666\n", pd_td_model_dir());
    fclose(f);
    const char *a[] = {"--config", cfg, NULL};
    PD_CHECK(st, pd_td_start(&d, a) != 0);
    char *log = pd_td_log(&d);
    PD_CHECK_CONTAINS(st, log ? log : "", "planktond.yaml:4");
    PD_CHECK_CONTAINS(st, log ? log : "", "world-writable");
    free(log);
    pd_td_cleanup(&d);
    unlink(cfg);
    rmdir(tmp);
  }
  /* an unknown group */
  const char *a[] = {"--socket-group", "no-such-group-xyz", NULL};
  PD_CHECK(st, pd_td_start(&d, a) != 0);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", "no-such-group-xyz");
  free(log);
  pd_td_cleanup(&d);
}

/* ---- 3. a world-writable inherited socket ---- */

static void inherited_world_writable(pd_test_state *st) {
  char tmp[] = "/tmp/pd-sec-XXXXXX";
  if (!mkdtemp(tmp)) return;
  char path[300], logp[300];
  snprintf(path, sizeof path, "%s/api.sock", tmp);
  snprintf(logp, sizeof logp, "%s/log", tmp);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  PD_CHECK(st, bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0);
  chmod(path, 0666);
  pid_t pid = fork();
  if (pid == 0) {
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(logfd, 2);
    dup2(fd, 3);
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d", (int)getpid());
    setenv("LISTEN_PID", pidtext, 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "api", 1);
    const char *bin = getenv("PLANKTOND");
    if (bin) execl(bin, "planktond", "--model", pd_td_model_dir(), "--socket", "", NULL);
    _exit(127);
  }
  int status = 0;
  double until = pd_td_now_ms() + 60000;
  pid_t done = 0;
  while (pd_td_now_ms() < until && (done = waitpid(pid, &status, WNOHANG)) == 0)
    usleep(20000);
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  FILE *f = fopen(logp, "r");
  char log[8192] = "";
  if (f) {
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = '\0';
    fclose(f);
  }
  if (strstr(log, "nothing to listen on")) {
    pd_test_skip(st, "inherited world-writable socket: planktond is built without libsystemd "
                     "(no socket activation)");
  } else {
    PD_CHECK(st, done == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    PD_CHECK_CONTAINS(st, log, "world-writable");
    printf("%-40s -> refused at start-up (exit %d)\n", "inherited world-writable socket",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  close(fd);
  unlink(path);
  unlink(logp);
  rmdir(tmp);
}

/* ---- 4. /metrics limits ---- */

static int http_get(const char *path, bool keep_alive) {
  int fd = pd_raw_connect(path);
  if (fd < 0) return -1;
  const char *req = keep_alive ? "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                               : "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  pd_raw_write(fd, req, strlen(req));
  return fd;
}

/* Reads until "HTTP/1.1 <code>" shows (returns the code) or the close. */
static int http_status(int fd, int timeout_ms) {
  char buf[65536];
  size_t len = 0;
  double until = pd_td_now_ms() + timeout_ms;
  while (pd_td_now_ms() < until && len < sizeof buf - 1) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = '\0';
    if (len >= 12 && !strncmp(buf, "HTTP/1.1 ", 9)) return (int)strtol(buf + 9, NULL, 10);
  }
  return -1;
}

static void metrics_limits(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--metrics",
                        "unix:@DIR@/m.sock",
                        "--set",
                        "metrics.max_connections=4",
                        "--set",
                        "metrics.idle_timeout_s=1",
                        "--frame-timeout-ms",
                        "1500",
                        NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  char m[400];
  snprintf(m, sizeof m, "%s/m.sock", d.dir);

  /* metrics.max_connections 4: the 5th and later are closed at once */
  int fds[8], refused = 0;
  for (int i = 0; i < 8; i++) {
    fds[i] = pd_raw_connect(m);
    usleep(20000);
  }
  /* the refused ones hear (the close) at once: wait on the sockets until
   * four have, with a bounded wait, then sort them */
  double heard_until = pd_td_now_ms() + pd_td_scaled_ms(5000);
  for (int heard = 0; heard < 4 && pd_td_now_ms() < heard_until;) {
    struct pollfd pf[8];
    for (int i = 0; i < 8; i++)
      pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    heard = poll(pf, 8, 50);
  }
  for (int i = 0; i < 8; i++)
    if (fds[i] >= 0 && !pd_raw_quiet_open(fds[i]) && pd_raw_closed(fds[i], pd_td_scaled_ms(2000)))
      refused++;
  printf("%-40s -> %d of 8 closed at once\n", "metrics.max_connections 4", refused);
  PD_CHECK_INT(st, refused, 4);
  for (int i = 0; i < 8; i++)
    if (fds[i] >= 0) close(fds[i]);
  /* polled, not slept: a scrape gets a slot again once the closes are seen
   * (and its own slot is free when it returns: the server closes it) */
  double free_until = pd_td_now_ms() + pd_td_scaled_ms(10000);
  char *scrape = NULL;
  while (!(scrape = pd_td_metrics(m)) && pd_td_now_ms() < free_until)
    usleep(20000);
  PD_CHECK(st, scrape != NULL);
  free(scrape);

  /* a request line dripped, never finished: 408 and a close */
  int slow = pd_raw_connect(m);
  pd_raw_write(slow, "GET /met", 8);
  int code = http_status(slow, pd_td_scaled_ms(10000));
  PD_CHECK_INT(st, code, 408);
  PD_CHECK(st, pd_raw_closed(slow, pd_td_scaled_ms(5000)));
  close(slow);
  /* an idle keep-alive connection: closed after metrics.idle_timeout_s */
  int idle = http_get(m, true);
  PD_CHECK_INT(st, http_status(idle, pd_td_scaled_ms(10000)), 200);
  PD_CHECK(st, pd_raw_closed(idle, pd_td_scaled_ms(10000)));
  close(idle);
  printf("%-40s -> slow request 408 and closed; idle keep-alive closed\n", "metrics timeouts");

  /* hundreds of pipelined GETs, never read */
  int hog = pd_raw_connect(m);
  int small = 4096;
  setsockopt(hog, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  bool blocked;
  long sent = pd_raw_fill(hog, req, strlen(req), 20000, 1500, 30000, &blocked);
  long rss = pd_raw_rss_kb(d.pid);
  /* another scraper is answered meanwhile */
  int other = http_get(m, false);
  int other_code = http_status(other, pd_td_scaled_ms(10000));
  close(other);
  printf("%-40s -> writes blocked after %ld of 20000 requests; daemon RSS %ld kB; another scrape "
         "-> %d\n",
         "pipelined GETs, never read", sent, rss, other_code);
  PD_CHECK(st, sent < 20000);
  PD_CHECK_INT(st, other_code, 200);
  close(hog);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  if (st->failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s\n", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(defaults),
    PD_TEST_CASE(modes_and_groups),
    PD_TEST_CASE(inherited_world_writable),
    PD_TEST_CASE(metrics_limits),
};

PD_TEST_MAIN("daemon_security", setup, NULL, k_cases)
