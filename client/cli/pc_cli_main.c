/* pc_cli_main: plankton-client's main(): the global options (--socket,
 * --tcp, --timeout: before the command, or anywhere after it up to a "--"),
 * the command table and the top-level help. Owns the pc_cli_global the
 * commands read. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli.h"
#include "pc_cli_args.h"

#ifndef PC_CLI_VERSION
#define PC_CLI_VERSION "unknown"
#endif

#define DEFAULT_TIMEOUT_MS 60000

typedef struct command {
  const char *name;
  int (*main)(const pc_cli_global *g, int argc, char **argv);
  void (*usage)(const char *prog, FILE *f);
  const char *summary;
} command;

static const command commands[] = {
    {"classify", pc_cli_classify_main, pc_cli_classify_usage,
     "classify image files, folders, or a path list on stdin"},
    {"segment", pc_cli_segment_main, pc_cli_segment_usage,
     "find and classify every organism in whole camera frames"},
    {"evaluate", pc_cli_evaluate_main, pc_cli_evaluate_usage,
     "score the model on a folder of class-named subfolders"},
    {"stats", pc_cli_stats_main, pc_cli_stats_usage, "the daemon's counters and histograms"},
    {"health", pc_cli_health_main, pc_cli_health_usage, "is the daemon serving? (exit code)"},
    {"reload", pc_cli_reload_main, pc_cli_reload_usage,
     "SIGHUP the daemon and wait for the reload's result (exit code)"},
    {"models", pc_cli_models_main, pc_cli_models_usage, "the models served, their classes"},
    {"model", pc_cli_model_control_main, pc_cli_model_control_usage,
     "load, unload or reload one repository model at run time"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [--socket PATH | --tcp HOST:PORT] [--timeout SEC] COMMAND [ARGS]...\n"
          "\n"
          "The command line of planktond, the plankton image classification daemon.\n"
          "\n"
          "Commands:\n",
          prog);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "Global options (before the command, or after it):\n"
          "  --socket PATH     the daemon's Unix socket (or unix:PATH, tcp:HOST:PORT)\n"
          "  --tcp HOST:PORT   the daemon's TCP address\n"
          "  --timeout SEC     connecting, and the longest wait for an answer (default %d)\n"
          "  -h, --help        this help; COMMAND --help (or help COMMAND) for a command's\n"
          "  --version         the version\n"
          "\n"
          "Without --socket or --tcp, the daemon is found at $PLANKTON_SOCKET (a path, or\n"
          "unix:PATH, or tcp:HOST:PORT), else at " PC_CLI_DEFAULT_SOCKET ".\n"
          "Exit codes: 0 success, 1 some input failed or not serving, 2 usage, 3 daemon\n"
          "unreachable or lost. See plankton-client(1).\n",
          DEFAULT_TIMEOUT_MS / 1000);
}

/* Takes the global options given after the command out of argv[from, *argc)
 * (moving the rest down): --socket X, --socket=X, --tcp, --timeout; a "--"
 * ends the options. */
static int take_late_globals(const char *prog, int *argc, char **argv, int from,
                             const char **socket_path, const char **tcp, int *timeout_ms) {
  static const char *const names[] = {"--socket", "--tcp", "--timeout"};
  int out = from;
  for (int i = from; i < *argc; i++) {
    const char *a = argv[i];
    int which = -1;
    const char *value = NULL;
    if (!strcmp(a, "--")) { /* the rest are arguments, "--" included for the command */
      while (i < *argc)
        argv[out++] = argv[i++];
      break;
    }
    for (int k = 0; k < 3 && which < 0; k++) {
      size_t n = strlen(names[k]);
      if (!strncmp(a, names[k], n) && (a[n] == '\0' || a[n] == '=')) {
        which = k;
        value = a[n] == '=' ? a + n + 1 : NULL;
      }
    }
    if (which < 0) {
      argv[out++] = argv[i];
      continue;
    }
    if (!value) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "%s: option '%s' needs a value\n", prog, names[which]);
        return PC_CLI_EXIT_USAGE;
      }
      value = argv[++i];
    }
    if (which == 0) *socket_path = value;
    if (which == 1) *tcp = value;
    if (which == 2) {
      pc_cli_error err;
      if (pc_cli_parse_seconds("--timeout", value, timeout_ms, &err) != PC_CLI_EXIT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return PC_CLI_EXIT_USAGE;
      }
    }
  }
  argv[out] = NULL;
  *argc = out;
  return PC_CLI_EXIT_OK;
}

static const command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(commands[i].name, name)) return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  pc_cli_global g = {.prog = "plankton-client", .timeout_ms = DEFAULT_TIMEOUT_MS};
  static const struct option longs[] = {
      {"socket", required_argument, NULL, 'S'},  {"tcp", required_argument, NULL, 'T'},
      {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},       {0, 0, 0, 0}};
  const char *socket_path = NULL, *tcp = NULL;
  pc_cli_error err;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
    switch (c) {
    case 'S':
      socket_path = optarg;
      break;
    case 'T':
      tcp = optarg;
      break;
    case 't':
      if (pc_cli_parse_seconds("--timeout", optarg, &g.timeout_ms, &err) != PC_CLI_EXIT_OK) {
        fprintf(stderr, "%s: %s\n", g.prog, err.msg);
        return PC_CLI_EXIT_USAGE;
      }
      break;
    case 'h':
      usage(g.prog, stdout);
      return PC_CLI_EXIT_OK;
    case 'V':
      printf("plankton-client %s\n", PC_CLI_VERSION);
      return PC_CLI_EXIT_OK;
    default:
      return pc_cli_bad_option(g.prog, NULL, c, argv);
    }
  }
  if (optind == argc) {
    fprintf(stderr,
            "%s: no command given (commands: classify, segment, evaluate, stats, health, reload, "
            "models, model)\n",
            g.prog);
    pc_cli_try_help(g.prog, NULL);
    return PC_CLI_EXIT_USAGE;
  }
  const char *name = argv[optind];
  if (!strcmp(name, "help")) {
    const command *cmd = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
    if (optind + 1 < argc && !cmd) {
      fprintf(stderr, "%s: help: unknown command '%s'\n", g.prog, argv[optind + 1]);
      return PC_CLI_EXIT_USAGE;
    }
    if (cmd)
      cmd->usage(g.prog, stdout);
    else
      usage(g.prog, stdout);
    return PC_CLI_EXIT_OK;
  }
  const command *cmd = find_command(name);
  if (!cmd) {
    fprintf(stderr,
            "%s: unknown command '%s' (commands: classify, segment, evaluate, stats, health, "
            "reload, models, model)\n",
            g.prog, name);
    pc_cli_try_help(g.prog, NULL);
    return PC_CLI_EXIT_USAGE;
  }
  if (take_late_globals(g.prog, &argc, argv, optind + 1, &socket_path, &tcp, &g.timeout_ms) !=
      PC_CLI_EXIT_OK)
    return PC_CLI_EXIT_USAGE;
  if (pc_cli_resolve_address(&g, socket_path, tcp, &err) != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g.prog, err.msg);
    return PC_CLI_EXIT_USAGE;
  }
  return cmd->main(&g, argc - optind, argv + optind);
}
