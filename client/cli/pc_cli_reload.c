/* pc_cli_reload: the `reload` command, for systemd's ExecReload= (and
 * scripts): sends SIGHUP to the daemon's process and waits until its Health
 * answer reports the reload that signal started, then answers with the exit
 * code (0 reloaded, 1 the reload failed and the daemon serves what it had,
 * 3 unreachable or no result in time). A reload's end is known by its time
 * (Health's last_reload_unix, whole seconds): the signal is sent in a later
 * second than the previous reload ended, and the first result from that
 * second on is the one it started. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_cli.h"
#include "pc_cli_args.h"

#define PC_CLI_RELOAD_DEFAULT_WAIT_MS 120000

void pc_cli_reload_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] reload --pid PID [-q] [--wait SECONDS]\n"
          "\n"
          "Sends SIGHUP to the daemon's process PID (it re-reads its config and reloads its\n"
          "model) and waits until the daemon's Health answer reports that reload's result;\n"
          "prints it (\"reload ok\", or \"reload failed: \" and what failed).\n"
          "For systemd: ExecReload=+plankton-client reload --pid $MAINPID, so that\n"
          "`systemctl reload planktond` fails when the reload does.\n"
          "\n"
          "Options:\n"
          "  -p, --pid PID       the daemon's process (systemd's $MAINPID)\n"
          "  -w, --wait SECONDS  wait at most this long for the result (default 120)\n"
          "  -q, --quiet         print nothing; the exit code says it all\n"
          "  -h, --help          this help\n"
          "\n"
          "Exit: 0 reloaded, 1 the reload failed (the daemon serves the settings and model\n"
          "it had) or the daemon is not serving, 3 unreachable, no signal sent, or no result\n"
          "within SECONDS, 2 usage.\n",
          prog);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct reload_state {
  char state[64];
  int64_t unix_time;
  bool failed;
  char message[700];
} reload_state;

/* One Health request. */
static int ask(const pc_cli_global *g, reload_state *out, pc_cli_error *err) {
  pc_client *client;
  int rc = pc_cli_connect(g, 1, &client, err);
  if (rc != PC_CLI_EXIT_OK) return rc;
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_health(client, &r, &e) != PC_CLIENT_OK) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "reload: health: %s", e.message);
  } else if (r->kind != PC_CLIENT_RESPONSE_HEALTH) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "reload: health: %s: %s",
                     pc_client_status_name(r->status), r->message);
  } else {
    snprintf(out->state, sizeof out->state, "%s", r->u.health.state);
    out->unix_time = r->u.health.last_reload_unix;
    out->failed = r->u.health.last_reload_failed;
    snprintf(out->message, sizeof out->message, "%s", r->u.health.last_reload_message);
  }
  pc_client_response_free(r);
  pc_client_close(client);
  return rc;
}

/* Sends the signal in a second later than `before` (so that the reload it
 * starts ends at or after *sent, and no earlier one does). */
static int signal_after(long pid, int64_t before, int64_t *sent, pc_cli_error *err) {
  while ((int64_t)time(NULL) <= before)
    poll(NULL, 0, 50);
  *sent = (int64_t)time(NULL);
  if (kill((pid_t)pid, SIGHUP) != 0)
    return pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "reload: kill -HUP %ld: %s", pid, strerror(errno));
  return PC_CLI_EXIT_OK;
}

static int wait_result(const pc_cli_global *g, int64_t sent, long long deadline, reload_state *s,
                       pc_cli_error *err) {
  int pause_ms = 50;
  for (;;) {
    int rc = ask(g, s, err);
    if (rc == PC_CLI_EXIT_OK && strcmp(s->state, "draining") == 0)
      return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "reload: the daemon is draining (shutting down)");
    if (rc == PC_CLI_EXIT_OK && s->unix_time >= sent) return PC_CLI_EXIT_OK;
    long long left = deadline - now_ms();
    if (left <= 0)
      return rc != PC_CLI_EXIT_OK ? rc
                                  : pc_cli_fail(err, PC_CLI_EXIT_DAEMON,
                                                "reload: no result within --wait (the daemon "
                                                "still reports the reload of %lld)",
                                                (long long)s->unix_time);
    poll(NULL, 0, pause_ms < left ? pause_ms : (int)left);
    pause_ms = pause_ms * 2 > 500 ? 500 : pause_ms * 2;
  }
}

int pc_cli_reload_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"pid", required_argument, NULL, 'p'},
                                        {"wait", required_argument, NULL, 'w'},
                                        {"quiet", no_argument, NULL, 'q'},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};
  int quiet = 0, wait_ms = PC_CLI_RELOAD_DEFAULT_WAIT_MS, c;
  long pid = 0;
  pc_cli_error err = {.msg = ""};
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":p:w:qh", longs, NULL)) != -1) {
    if (c == 'p') {
      char *end;
      errno = 0;
      pid = strtol(optarg, &end, 10);
      if (errno || *end || end == optarg || pid < 2) {
        fprintf(stderr, "%s: reload: --pid: expected a process id (2 or more), got '%s'\n", g->prog,
                optarg);
        return PC_CLI_EXIT_USAGE;
      }
    } else if (c == 'w') {
      if (pc_cli_parse_seconds("--wait", optarg, &wait_ms, &err) != PC_CLI_EXIT_OK) {
        fprintf(stderr, "%s: reload: %s\n", g->prog, err.msg);
        return PC_CLI_EXIT_USAGE;
      }
    } else if (c == 'q') {
      quiet = 1;
    } else if (c == 'h') {
      pc_cli_reload_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    } else {
      return pc_cli_bad_option(g->prog, "reload", c, argv);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: reload: unexpected argument '%s'\n", g->prog, argv[optind]);
    return PC_CLI_EXIT_USAGE;
  }
  if (!pid) {
    fprintf(stderr, "%s: reload: --pid PID is required (systemd: --pid $MAINPID)\n", g->prog);
    return PC_CLI_EXIT_USAGE;
  }
  long long deadline = now_ms() + wait_ms;
  reload_state s = {.unix_time = 0};
  int64_t sent = 0;
  int rc = ask(g, &s, &err);
  if (rc == PC_CLI_EXIT_OK) rc = signal_after(pid, s.unix_time, &sent, &err);
  if (rc == PC_CLI_EXIT_OK) rc = wait_result(g, sent, deadline, &s, &err);
  if (rc == PC_CLI_EXIT_OK && s.failed) rc = PC_CLI_EXIT_FAILED;
  if (!quiet) {
    if (rc == PC_CLI_EXIT_OK)
      printf("reload ok\n");
    else if (err.msg[0])
      fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    else
      fprintf(stderr, "%s: reload failed: %s\n", g->prog, s.message);
  }
  return rc;
}
