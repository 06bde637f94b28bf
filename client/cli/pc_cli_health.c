/* pc_cli_health: the `health` command for scripts and monitoring: one
 * Health request, or with --wait SECONDS one every little while (a pause
 * that doubles from 50 ms to 1 s) until the daemon serves; prints the
 * daemon's state and answers with the exit code (0 serving, 1 answering but
 * not serving, 3 unreachable or silent within --timeout). */
#include <getopt.h>
#include <poll.h>
#include <time.h>

#include "pc_cli.h"
#include "pc_cli_args.h"

void pc_cli_health_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] health [-q] [--wait SECONDS]\n"
          "\n"
          "Asks the daemon whether it is serving and prints its state (serving, draining,\n"
          "or failing: the backend failed its last batches), and \"(last reload failed:\n"
          "...)\" when the last SIGHUP reload failed (the daemon serves what it had; the\n"
          "exit code stays 0: `plankton-client reload` is the command that fails then).\n"
          "Use the global --timeout to bound the wait for one answer (e.g. --timeout 2).\n"
          "\n"
          "Options:\n"
          "  -q, --quiet         print nothing; the exit code says it all\n"
          "  -w, --wait SECONDS  ask again (50 ms, doubling up to 1 s between tries) until\n"
          "                      the daemon serves, for at most SECONDS; replaces sleep loops\n"
          "                      in scripts that start a daemon\n"
          "  -h, --help          this help\n"
          "\n"
          "Exit: 0 serving, 1 answering but not serving (draining, failing),\n"
          "3 unreachable or no answer within the timeout, 2 usage; with --wait, the\n"
          "last try's code once SECONDS have passed.\n",
          prog);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One try: connect, ask, judge. The state line goes to *line; a message
 * for stderr to err. */
static int ask(const pc_cli_global *g, int timeout_ms, char *line, size_t line_len,
               pc_cli_error *err) {
  pc_cli_global gt = *g;
  gt.timeout_ms = timeout_ms;
  pc_client *client;
  int rc = pc_cli_connect(&gt, 1, &client, err);
  if (rc != PC_CLI_EXIT_OK) return rc;
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_health(client, &r, &e) != PC_CLIENT_OK) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "health: %s", e.message);
  } else if (r->kind != PC_CLIENT_RESPONSE_HEALTH) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "health: %s: %s", pc_client_status_name(r->status),
                     r->message);
  } else {
    const char *state = r->u.health.state && *r->u.health.state ? r->u.health.state : "unknown";
    if (r->status == PC_CLIENT_STATUS_OK && r->u.health.last_reload_failed) {
      /* still serving, on what it had: said, but the exit code stays 0 */
      snprintf(line, line_len, "%s (last reload failed: %s)", state,
               r->u.health.last_reload_message);
    } else if (r->status == PC_CLIENT_STATUS_OK) {
      snprintf(line, line_len, "%s", state);
    } else {
      snprintf(line, line_len, "%s (%s%s%s)", state, pc_client_status_name(r->status),
               *r->message ? ": " : "", r->message);
      rc = PC_CLI_EXIT_FAILED;
    }
  }
  pc_client_response_free(r);
  pc_client_close(client);
  return rc;
}

int pc_cli_health_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"quiet", no_argument, NULL, 'q'},
                                        {"wait", required_argument, NULL, 'w'},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};
  int quiet = 0, wait_ms = 0, c;
  pc_cli_error err;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":qw:h", longs, NULL)) != -1) {
    if (c == 'q') {
      quiet = 1;
    } else if (c == 'w') {
      if (pc_cli_parse_seconds("--wait", optarg, &wait_ms, &err) != PC_CLI_EXIT_OK) {
        fprintf(stderr, "%s: health: %s\n", g->prog, err.msg);
        return PC_CLI_EXIT_USAGE;
      }
    } else if (c == 'h') {
      pc_cli_health_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    } else {
      return pc_cli_bad_option(g->prog, "health", c, argv);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: health: unexpected argument '%s'\n", g->prog, argv[optind]);
    return PC_CLI_EXIT_USAGE;
  }
  char line[700] = "";
  long long deadline = now_ms() + wait_ms;
  int pause_ms = 50, tries = 0, rc;
  for (;;) {
    long long left = deadline - now_ms();
    /* each try within what is left of --wait (and never more than --timeout) */
    int timeout = wait_ms && left < g->timeout_ms ? (left > 1 ? (int)left : 1) : g->timeout_ms;
    line[0] = '\0';
    err.msg[0] = '\0';
    rc = ask(g, timeout, line, sizeof line, &err);
    tries++;
    if (rc == PC_CLI_EXIT_OK || rc == PC_CLI_EXIT_USAGE || !wait_ms) break;
    left = deadline - now_ms();
    if (left <= 0) break;
    poll(NULL, 0, pause_ms < left ? pause_ms : (int)left);
    pause_ms = pause_ms * 2 > 1000 ? 1000 : pause_ms * 2;
  }
  if (!quiet) {
    if (line[0]) printf("%s\n", line);
    if (err.msg[0]) fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    if (wait_ms && rc != PC_CLI_EXIT_OK && rc != PC_CLI_EXIT_USAGE)
      fprintf(stderr, "%s: health: not serving after %.1f s and %d tr%s (--wait)\n", g->prog,
              wait_ms / 1000.0, tries, tries == 1 ? "y" : "ies");
  }
  return rc;
}
