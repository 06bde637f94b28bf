/* pc_cli: what the plankton-client command modules share: the exit codes,
 * the error value, the global options (daemon address, timeout) that
 * main() parses before the command, and each command's entry point.
 * Owns nothing at run time; every command gets its inputs as arguments. */
#ifndef PC_CLI_H
#define PC_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "plankton_client.h"

/* Exit codes (the man page lists them). Functions below main() return one
 * of them (0 = success) and leave a message in a pc_cli_error. */
enum {
  PC_CLI_EXIT_OK = 0,
  PC_CLI_EXIT_FAILED = 1, /* some input failed; health: daemon not serving */
  PC_CLI_EXIT_USAGE = 2,  /* bad command line, unknown model, unreadable DIR */
  PC_CLI_EXIT_DAEMON = 3, /* daemon unreachable, connection lost, timeout */
};

/* Default socket of the daemon (its listen.socket default, which the
 * systemd unit uses). */
#define PC_CLI_DEFAULT_SOCKET "/run/planktond/planktond.sock"

typedef struct pc_cli_error {
  char msg[1200];
} pc_cli_error;

/* Sets err->msg (err may be NULL) and returns code. */
int pc_cli_fail(pc_cli_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct pc_cli_global {
  const char *prog;   /* "plankton-client" */
  char address[1100]; /* "unix:PATH" or "tcp:HOST:PORT" */
  const char *origin; /* where the address came from: "--socket", "--tcp", ... */
  int timeout_ms;     /* connect, blocking calls, and silence while waiting */
} pc_cli_global;

/* Sets g->address and g->origin from --socket PATH, --tcp HOST:PORT
 * (NULL when not given), else $PLANKTON_SOCKET, else PC_CLI_DEFAULT_SOCKET.
 * --socket and PLANKTON_SOCKET take a path, unix:PATH or tcp:HOST:PORT; a
 * port must be a number in 1..65535 (else a usage error). */
int pc_cli_resolve_address(pc_cli_global *g, const char *socket_path, const char *tcp,
                           pc_cli_error *err);
/* Connects to the daemon with a window; a failure's message names the
 * address and where it came from. */
int pc_cli_connect(const pc_cli_global *g, int window, pc_client **out, pc_cli_error *err);
/* After the first request on a connection failed: when the server at the
 * address answers HTTP, replaces err's message with one that says so. */
void pc_cli_explain(const pc_cli_global *g, pc_cli_error *err);

/* Commands: argv[0] is the command name; they print their own results and
 * messages and return the exit code. */
int pc_cli_classify_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_evaluate_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_stats_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_health_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_reload_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_models_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_model_control_main(const pc_cli_global *g, int argc, char **argv);
int pc_cli_segment_main(const pc_cli_global *g, int argc, char **argv);

/* Each command's --help text. */
void pc_cli_classify_usage(const char *prog, FILE *f);
void pc_cli_evaluate_usage(const char *prog, FILE *f);
void pc_cli_stats_usage(const char *prog, FILE *f);
void pc_cli_health_usage(const char *prog, FILE *f);
void pc_cli_reload_usage(const char *prog, FILE *f);
void pc_cli_models_usage(const char *prog, FILE *f);
void pc_cli_model_control_usage(const char *prog, FILE *f);
void pc_cli_segment_usage(const char *prog, FILE *f);

#endif
