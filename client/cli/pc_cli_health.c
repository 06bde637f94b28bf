/* pc_cli_health: the `health` command for scripts and monitoring: one
 * Health request; prints the daemon's state and answers with the exit code
 * (0 serving, 1 answering but not serving, 3 unreachable or silent within
 * --timeout). */
#include <getopt.h>

#include "pc_cli.h"

void pc_cli_health_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] health [-q]\n"
          "\n"
          "Asks the daemon whether it is serving and prints its state (serving, draining,\n"
          "or failing: the backend failed its last batches).\n"
          "Use the global --timeout to bound the wait (e.g. --timeout 2).\n"
          "\n"
          "Options:\n"
          "  -q, --quiet  print nothing; the exit code says it all\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit: 0 serving, 1 answering but not serving (draining, failing),\n"
          "3 unreachable or no answer within the timeout, 2 usage.\n",
          prog);
}

int pc_cli_health_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {
      {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
  int quiet = 0, c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "qh", longs, NULL)) != -1) {
    if (c == 'q')
      quiet = 1;
    else if (c == 'h') {
      pc_cli_health_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    } else {
      fprintf(stderr, "Try '%s health --help'.\n", g->prog);
      return PC_CLI_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: health: unexpected argument '%s'\n", g->prog, argv[optind]);
    return PC_CLI_EXIT_USAGE;
  }
  pc_client *client;
  pc_cli_error err;
  int rc = pc_cli_connect(g, 1, &client, &err);
  if (rc != PC_CLI_EXIT_OK) {
    if (!quiet) fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    return rc;
  }
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_health(client, &r, &e) != PC_CLIENT_OK) {
    if (!quiet) fprintf(stderr, "%s: health: %s\n", g->prog, e.message);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (r->kind != PC_CLIENT_RESPONSE_HEALTH) {
    if (!quiet)
      fprintf(stderr, "%s: health: %s: %s\n", g->prog, pc_client_status_name(r->status),
              r->message);
    rc = PC_CLI_EXIT_DAEMON;
  } else {
    const char *state = r->u.health.state && *r->u.health.state ? r->u.health.state : "unknown";
    if (r->status == PC_CLIENT_STATUS_OK) {
      if (!quiet) printf("%s\n", state);
    } else {
      if (!quiet)
        printf("%s (%s%s%s)\n", state, pc_client_status_name(r->status), *r->message ? ": " : "",
               r->message);
      rc = PC_CLI_EXIT_FAILED;
    }
  }
  pc_client_response_free(r);
  pc_client_close(client);
  return rc;
}
