/* pc_cli_connect: where the daemon is (--socket, --tcp, $PLANKTON_SOCKET or
 * the systemd default path), connecting to it, and messages that say what
 * is wrong when that fails: the socket's folder missing, the socket closed
 * to the user (naming its group), a bad port, or an HTTP server where
 * planktond's native port was expected. */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_cli.h"

/* NULL when "HOST:PORT" has a port in 1..65535, else what is wrong. */
static const char *bad_host_port(const char *hp) {
  const char *colon = strrchr(hp, ':');
  if (!colon || colon == hp) return "is not HOST:PORT";
  const char *p = colon + 1;
  if (!*p) return "has no port after the ':'";
  long port = 0;
  for (; *p; p++) {
    if (!isdigit((unsigned char)*p)) return "has a port that is not a number in 1..65535";
    port = port * 10 + (*p - '0');
    if (port > 65535) break;
  }
  return port < 1 || port > 65535 ? "has a port that is not a number in 1..65535" : NULL;
}

int pc_cli_resolve_address(pc_cli_global *g, const char *socket_path, const char *tcp,
                           pc_cli_error *err) {
  if (socket_path && tcp)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "give --socket or --tcp, not both");
  const char *env = getenv("PLANKTON_SOCKET");
  const char *given = NULL; /* an address with its scheme, or a path */
  if (socket_path) {
    if (!*socket_path) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--socket: empty path");
    given = socket_path;
    g->origin = "--socket";
  } else if (tcp) {
    g->origin = "--tcp";
  } else if (env && *env) {
    given = env;
    g->origin = "PLANKTON_SOCKET";
  } else {
    given = PC_CLI_DEFAULT_SOCKET;
    g->origin = "the default socket";
  }
  int n;
  const char *hp = tcp;
  if (given && !strncmp(given, "tcp:", 4)) hp = given + 4;
  if (hp) {
    const char *why = bad_host_port(hp);
    if (why) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: '%s' %s", g->origin, hp, why);
    n = snprintf(g->address, sizeof g->address, "tcp:%s", hp);
  } else {
    /* a path, or unix:PATH */
    const char *path = !strncmp(given, "unix:", 5) ? given + 5 : given;
    if (!*path) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: empty socket path", g->origin);
    n = snprintf(g->address, sizeof g->address, "unix:%s", path);
  }
  if (n < 0 || (size_t)n >= sizeof g->address)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "daemon address from %s is too long", g->origin);
  return PC_CLI_EXIT_OK;
}

/* Why a Unix socket cannot be reached, when the file system tells: its
 * folder is missing, or the socket or its folder is closed to this user.
 * 0 when nothing is found (the library's message stands). */
static int unix_diagnosis(const char *path, char *buf, size_t n) {
  char dir[1100];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  struct stat st;
  if (stat(dir, &st) != 0 && errno == ENOENT) {
    int w = snprintf(buf, n,
                     "cannot connect to planktond at %s: folder %s does not exist (planktond "
                     "makes its socket there when it starts: is it running, with this "
                     "listen.socket?)",
                     path, dir);
    return w > 0;
  }
  const char *closed = NULL;
  if (access(dir, X_OK) != 0 && errno == EACCES)
    closed = dir;
  else if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && access(path, W_OK) != 0 &&
           errno == EACCES)
    closed = path;
  if (!closed || stat(closed, &st) != 0) return 0;
  const struct group *gr = getgrgid(st.st_gid);
  char gname[64];
  if (gr)
    snprintf(gname, sizeof gname, "%s", gr->gr_name);
  else
    snprintf(gname, sizeof gname, "%u", (unsigned)st.st_gid);
  int w = snprintf(buf, n,
                   "cannot connect to planktond at %s: permission denied: %s%s belongs to group "
                   "%s (mode %04o); join that group (usermod -aG %s $USER, then log in again)",
                   path, closed == dir ? "its folder " : "", closed, gname,
                   (unsigned)(st.st_mode & 07777), gname);
  return w > 0;
}

int pc_cli_connect(const pc_cli_global *g, int window, pc_client **out, pc_cli_error *err) {
  pc_client_options o = {.window = window, .timeout_ms = g->timeout_ms};
  pc_client_error e;
  int rc = pc_client_connect(g->address, &o, out, &e);
  if (rc == PC_CLIENT_OK) return PC_CLI_EXIT_OK;
  const char *hint = "";
  if (!strcmp(g->origin, "the default socket") || !strcmp(g->origin, "PLANKTON_SOCKET"))
    hint = "; is planktond running? choose the daemon with --socket PATH, --tcp HOST:PORT or "
           "PLANKTON_SOCKET";
  char why[2600];
  if (!strncmp(g->address, "unix:", 5) && rc != PC_CLIENT_EINVAL &&
      unix_diagnosis(g->address + 5, why, sizeof why))
    return pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "%s (address from %s)", why, g->origin);
  return pc_cli_fail(err, rc == PC_CLIENT_EINVAL ? PC_CLI_EXIT_USAGE : PC_CLI_EXIT_DAEMON,
                     "%s (address from %s%s)", e.message, g->origin, hint);
}

/* Whether the server at the address answers an HTTP request (a HEAD /). */
static bool answers_http(const pc_cli_global *g) {
  pc_client_options o = {.window = 1, .timeout_ms = g->timeout_ms < 2000 ? g->timeout_ms : 2000};
  pc_client *c = NULL;
  pc_client_error e;
  if (pc_client_connect(g->address, &o, &c, &e) != PC_CLIENT_OK) return false;
  static const char req[] = "HEAD / HTTP/1.0\r\n\r\n";
  bool http = send(pc_client_fd(c), req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1);
  char buf[5];
  size_t got = 0;
  while (http && got < sizeof buf) {
    struct pollfd p = {.fd = pc_client_fd(c), .events = POLLIN};
    ssize_t r =
        poll(&p, 1, o.timeout_ms) == 1 ? recv(pc_client_fd(c), buf + got, sizeof buf - got, 0) : -1;
    if (r <= 0) {
      http = false;
      break;
    }
    got += (size_t)r;
  }
  pc_client_close(c);
  return http && !memcmp(buf, "HTTP/", 5);
}

void pc_cli_explain(const pc_cli_global *g, pc_cli_error *err) {
  if (!answers_http(g)) return;
  const char *where = g->address + (strncmp(g->address, "tcp:", 4) ? 5 : 4);
  pc_cli_fail(err, PC_CLI_EXIT_DAEMON,
              "%s answers HTTP: this looks like an HTTP server (planktond's metrics port?), not "
              "planktond's native protocol: give the port of listen.tcp (address from %s)",
              where, g->origin);
}
