/* pc_cli_connect: where the daemon is (--socket, --tcp, $PLANKTON_SOCKET or
 * the systemd default path) and connecting to it with a message that says
 * which address was tried and how to choose another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli.h"

int pc_cli_resolve_address(pc_cli_global *g, const char *socket_path, const char *tcp,
                           pc_cli_error *err) {
  if (socket_path && tcp)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "give --socket or --tcp, not both");
  const char *env = getenv("PLANKTON_SOCKET");
  int n;
  if (socket_path) {
    if (!*socket_path) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--socket: empty path");
    n = snprintf(g->address, sizeof g->address, "unix:%s", socket_path);
    g->origin = "--socket";
  } else if (tcp) {
    if (!strchr(tcp, ':'))
      return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--tcp: '%s' is not HOST:PORT", tcp);
    n = snprintf(g->address, sizeof g->address, "tcp:%s", tcp);
    g->origin = "--tcp";
  } else if (env && *env) {
    /* a path, or an address with its scheme (unix:PATH, tcp:HOST:PORT) */
    if (!strncmp(env, "unix:", 5) || !strncmp(env, "tcp:", 4))
      n = snprintf(g->address, sizeof g->address, "%s", env);
    else
      n = snprintf(g->address, sizeof g->address, "unix:%s", env);
    g->origin = "PLANKTON_SOCKET";
  } else {
    n = snprintf(g->address, sizeof g->address, "unix:%s", PC_CLI_DEFAULT_SOCKET);
    g->origin = "the default socket";
  }
  if (n < 0 || (size_t)n >= sizeof g->address)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "daemon address from %s is too long", g->origin);
  return PC_CLI_EXIT_OK;
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
  return pc_cli_fail(err, rc == PC_CLIENT_EINVAL ? PC_CLI_EXIT_USAGE : PC_CLI_EXIT_DAEMON,
                     "%s (address from %s%s)", e.message, g->origin, hint);
}
