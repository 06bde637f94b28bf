/* pc_cli_model_control: the `model` command: `model load|unload|reload
 * NAME` sends one ModelControl request (the daemon's model.control) and
 * prints its result once the change took effect: the versions of NAME
 * serving now, or why it was refused or failed. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "pc_cli.h"
#include "pc_cli_args.h"

void pc_cli_model_control_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] model load|unload|reload NAME\n"
          "\n"
          "Changes one model of the daemon's repository at run time, without touching the\n"
          "others, and waits until the change took effect:\n"
          "  load NAME    load the repository folder NAME (every version in it)\n"
          "  unload NAME  unload every version; requests in flight on it are answered\n"
          "  reload NAME  load the folder again and swap it in (requests in flight finish\n"
          "               on the old load)\n"
          "The daemon allows it only with model.control: true, from its own uid or root over\n"
          "the Unix socket. Prints the versions of NAME serving afterwards.\n"
          "\n"
          "Options:\n"
          "  -h, --help  this help\n"
          "\n"
          "Exit: 0 done, 1 refused or failed (the message says why; nothing changed),\n"
          "2 usage or NAME not in the repository, 3 daemon unreachable.\n",
          prog);
}

int pc_cli_model_control_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
    if (c == 'h') {
      pc_cli_model_control_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    }
    return pc_cli_bad_option(g->prog, "model", c, argv);
  }
  if (argc - optind != 2) {
    fprintf(stderr, "%s: model: %s (usage: model load|unload|reload NAME)\n", g->prog,
            argc - optind < 2 ? "an operation and a model name are needed" : "too many arguments");
    pc_cli_try_help(g->prog, "model");
    return PC_CLI_EXIT_USAGE;
  }
  const char *what = argv[optind], *name = argv[optind + 1];
  pc_client_model_op op = !strcmp(what, "load")     ? PC_CLIENT_MODEL_LOAD
                          : !strcmp(what, "unload") ? PC_CLIENT_MODEL_UNLOAD
                          : !strcmp(what, "reload") ? PC_CLIENT_MODEL_RELOAD
                                                    : (pc_client_model_op)0;
  if (!op) {
    fprintf(stderr, "%s: model: unknown operation '%s' (load, unload or reload)\n", g->prog, what);
    return PC_CLI_EXIT_USAGE;
  }
  pc_client *client;
  pc_cli_error err;
  int rc = pc_cli_connect(g, 1, &client, &err);
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    return rc;
  }
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_model_control(client, op, name, &r, &e) != PC_CLIENT_OK) {
    pc_cli_fail(&err, PC_CLI_EXIT_DAEMON, "model %s: %s", what, e.message);
    pc_cli_explain(g, &err);
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (r->kind != PC_CLIENT_RESPONSE_MODEL_CONTROL) {
    fprintf(stderr, "%s: model %s: %s: %s\n", g->prog, what, pc_client_status_name(r->status),
            r->message);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (r->status != PC_CLIENT_STATUS_OK) {
    fprintf(stderr, "%s: model %s %s: %s: %s\n", g->prog, what, name,
            pc_client_status_name(r->status), r->message);
    rc = r->status == PC_CLIENT_STATUS_NOT_FOUND ? PC_CLI_EXIT_USAGE : PC_CLI_EXIT_FAILED;
  } else {
    printf("%s %s: done;", what, name);
    if (!r->u.model_control.n_versions) printf(" no version serving");
    for (size_t i = 0; i < r->u.model_control.n_versions; i++)
      printf("%s%s", i ? ", " : " serving version ", r->u.model_control.versions[i]);
    printf("\n");
  }
  pc_client_response_free(r);
  pc_client_close(client);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: model: writing standard output: %s\n", g->prog,
            strerror(errno ? errno : EIO));
    if (rc == PC_CLI_EXIT_OK) rc = PC_CLI_EXIT_FAILED;
  }
  return rc;
}
