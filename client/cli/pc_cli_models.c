/* pc_cli_models: the `models` command: one ModelInfo request, printed as
 * a table (name, version, default, symmetry, classes, TTA, max batch,
 * parameters, folder), with --classes each model's labels in class order,
 * or as JSON (--json). */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "pc_cli_json.h"
#include "pc_cli.h"
#include "pc_cli_args.h"

void pc_cli_models_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] models [--classes] [--json] [NAME]\n"
          "\n"
          "Lists the models the daemon serves (or the one named NAME): name, version, whether\n"
          "it is the default, symmetry, class count, default TTA, largest batch, parameters\n"
          "and folder.\n"
          "\n"
          "Options:\n"
          "      --classes  also list every class label, in the model's class order\n"
          "      --json     one JSON object: {\"models\": [...]} with the labels\n"
          "  -h, --help     this help\n"
          "\n"
          "Exit: 0 answered, 2 NAME not served, 3 daemon unreachable or failed to answer.\n",
          prog);
}

static void print_json(const pc_client_response *r) {
  FILE *f = stdout;
  fputs("{\"models\":[", f);
  for (size_t i = 0; i < r->u.model_info.n_models; i++) {
    const pc_client_model *m = &r->u.model_info.models[i];
    fputs(i ? ",{\"name\":" : "{\"name\":", f);
    pc_cli_json_string(f, m->name);
    fputs(",\"version\":", f);
    pc_cli_json_string(f, m->version);
    fprintf(f, ",\"default\":%s,\"symmetry\":", m->is_default ? "true" : "false");
    pc_cli_json_string(f, m->symmetry);
    fprintf(f, ",\"default_tta\":%u,\"max_batch\":%u,\"parameters\":%llu,\"dir\":", m->default_tta,
            m->max_batch, (unsigned long long)m->parameters);
    pc_cli_json_string(f, m->dir);
    fputs(",\"classes\":[", f);
    for (size_t k = 0; k < m->n_classes; k++) {
      if (k) fputc(',', f);
      pc_cli_json_string(f, m->classes[k]);
    }
    fputs("]}", f);
  }
  fputs("]}\n", f);
}

static void print_table(const pc_client_response *r, int classes) {
  printf("%-24s %-10s %-7s %-8s %7s %5s %9s %12s  %s\n", "name", "version", "default", "symmetry",
         "classes", "tta", "max_batch", "parameters", "dir");
  for (size_t i = 0; i < r->u.model_info.n_models; i++) {
    const pc_client_model *m = &r->u.model_info.models[i];
    printf("%-24s %-10s %-7s %-8s %7zu %5u %9u %12llu  %s\n", m->name, m->version,
           m->is_default ? "yes" : "no", m->symmetry, m->n_classes, m->default_tta, m->max_batch,
           (unsigned long long)m->parameters, m->dir);
  }
  for (size_t i = 0; classes && i < r->u.model_info.n_models; i++) {
    const pc_client_model *m = &r->u.model_info.models[i];
    printf("\nclasses of %s %s:\n", m->name, m->version);
    for (size_t k = 0; k < m->n_classes; k++)
      printf("%5zu  %s\n", k, m->classes[k]);
  }
}

int pc_cli_models_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"json", no_argument, NULL, 'J'},
                                        {"classes", no_argument, NULL, 'C'},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};
  int json = 0, classes = 0, c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    if (c == 'J')
      json = 1;
    else if (c == 'C')
      classes = 1;
    else if (c == 'h') {
      pc_cli_models_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    } else {
      return pc_cli_bad_option(g->prog, "models", c, argv);
    }
  }
  if (argc - optind > 1) {
    fprintf(stderr, "%s: models: unexpected argument '%s'\n", g->prog, argv[optind + 1]);
    return PC_CLI_EXIT_USAGE;
  }
  const char *name = optind < argc ? argv[optind] : NULL;
  pc_client *client;
  pc_cli_error err;
  int rc = pc_cli_connect(g, 1, &client, &err);
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    return rc;
  }
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_model_info(client, name, &r, &e) != PC_CLIENT_OK) {
    pc_cli_fail(&err, PC_CLI_EXIT_DAEMON, "models: %s", e.message);
    pc_cli_explain(g, &err);
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (r->kind == PC_CLIENT_RESPONSE_MODEL_INFO && r->status == PC_CLIENT_STATUS_NOT_FOUND) {
    fprintf(stderr, "%s: models: %s\n", g->prog, r->message);
    rc = PC_CLI_EXIT_USAGE;
  } else if (r->kind != PC_CLIENT_RESPONSE_MODEL_INFO || r->status != PC_CLIENT_STATUS_OK) {
    fprintf(stderr, "%s: models: %s: %s\n", g->prog, pc_client_status_name(r->status), r->message);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (json) {
    print_json(r);
  } else {
    print_table(r, classes);
  }
  pc_client_response_free(r);
  pc_client_close(client);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: models: writing standard output: %s\n", g->prog,
            strerror(errno ? errno : EIO));
    if (rc == PC_CLI_EXIT_OK) rc = PC_CLI_EXIT_FAILED;
  }
  return rc;
}
