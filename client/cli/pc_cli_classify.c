/* pc_cli_classify: the `classify` command: options, the model's labels
 * (ModelInfo), the path stream (pc_cli_walk) through the pipelined loop
 * (pc_cli_pipe) into the chosen output format (pc_cli_out), errors per file
 * on stderr, the progress line, and the exit code. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pc_cli_args.h"
#include "pc_cli_model.h"
#include "pc_cli_out.h"
#include "pc_cli_pipe.h"
#include "pc_cli_progress.h"
#include "pc_cli_retry.h"
#include "pc_cli_rollup.h"
#include "pc_cli_walk.h"

#define DEFAULT_MAX_FILE                                                                           \
  ((16u << 20) - 1024u) /* the daemon's default frame limit, less the envelope */

void pc_cli_classify_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] classify [OPTIONS] PATH...\n"
          "\n"
          "Classifies image crops (PNG, JPEG or TIFF) with planktond and writes one line per\n"
          "image.\n"
          "PATH is a file, a directory (walked recursively; only *.png, *.jpg, *.jpeg, *.tif,\n"
          "*.tiff are taken, hidden entries skipped, names sorted; the files left out are\n"
          "counted and named at the end), or - to read one path per line from standard input\n"
          "(find ... | %s classify -).\n"
          "\n"
          "Options:\n"
          "  -j, --jobs N            requests in flight on the connection (default 64)\n"
          "  -k, --top N             classes per image, best first (default 1)\n"
          "      --probs             the full distribution over the model's classes\n"
          "      --tta N             test-time augmentation transforms (default: the model's)\n"
          "      --model NAME        a model the daemon serves (default: its default model)\n"
          "      --rollup LEVEL      probabilities summed to depth LEVEL of the model's lineage\n"
          "                          (1: its first name); the groups replace the classes\n"
          "  -f, --format FMT        table (default), csv, tsv, json (JSON Lines) or ecotaxa\n"
          "  -o, --output FILE       write there instead of standard output (ecotaxa: a bundle,\n"
          "                          DIR/ecotaxa_NAME.tsv, crops outside DIR linked into it)\n"
          "  -u, --completion-order  write lines as answers arrive (default: input order)\n"
          "      --max-file-size N   larger files fail without being sent (default 16M-1K,\n"
          "                          the daemon's default limit; suffixes K, M, G)\n"
          "      --progress, --no-progress\n"
          "                          progress line on stderr (default: when stderr is a terminal)\n"
          "      --metadata FILE     ecotaxa: object_*, sample_*, acq_*, process_* columns per\n"
          "                          crop from a TSV/CSV keyed by path (see the man page)\n"
          "      --id-root DIR       ecotaxa: object ids from the paths below DIR (default: the\n"
          "                          deepest folder holding every PATH)\n"
          "      --retry-for SEC     on a lost connection or a draining daemon, reconnect and\n"
          "                          resend what is unanswered for up to SEC s (default 30;\n"
          "                          0: no retries)\n"
          "  -h, --help              this help\n"
          "\n"
          "csv/tsv write a header: path,label,probability (k = 1),\n"
          "path,label_1,probability_1,...,label_k,probability_k (k > 1), or with --probs\n"
          "path,<label 1>,...,<label N> in the model's class order. ecotaxa writes EcoTaxa's\n"
          "import TSV (UTF-8 with BOM, header row, type row, unique object_id,\n"
          "img_file_name relative to the TSV's folder, object_annotation_status=predicted).\n"
          "A model with thresholds adds `unclassified` to table rows below them, a\n"
          "classification column to csv/tsv, unclassified and threshold to json.\n"
          "A file that fails gets its message on stderr and the run goes on.\n"
          "Exit: 0 all classified, 1 some failed, 2 usage, 3 daemon unreachable or lost.\n",
          prog, prog);
}

typedef struct run_ctx {
  const char *prog;
  const char *out_name; /* for messages: the -o file or "standard output" */
  pc_cli_out out;
  pc_cli_rollup *rollup; /* --rollup: the groups the rows show */
  pc_cli_progress progress;
  long rows_unflushed;
  long bad_rows;
  int out_errno; /* writing the output failed (the run stops) */
} run_ctx;

/* Notes the first write error on the output. */
static void check_output(run_ctx *x) {
  if (!x->out_errno && ferror(x->out.f)) x->out_errno = errno ? errno : EIO;
}

static void on_result(void *arg, const pc_cli_result *r) {
  run_ctx *x = arg;
  pc_cli_error err;
  const char *msg = r->error;
  pc_cli_result rolled;
  if (!msg && x->rollup && pc_cli_rollup_apply(x->rollup, r, &rolled, &err) == PC_CLI_EXIT_OK)
    r = &rolled;
  else if (!msg && x->rollup)
    msg = err.msg;
  if (!msg && pc_cli_out_row(&x->out, r, &err) != PC_CLI_EXIT_OK) {
    msg = err.msg;
    x->bad_rows++;
  }
  if (msg) {
    pc_cli_progress_clear(&x->progress);
    fprintf(stderr, "%s: %s\n", x->prog, msg);
  } else {
    x->rows_unflushed++;
    check_output(x);
  }
  pc_cli_progress_count(&x->progress, msg != NULL);
  pc_cli_progress_draw(&x->progress);
}

static void before_wait(void *arg) {
  run_ctx *x = arg;
  if (x->rows_unflushed) {
    if (fflush(x->out.f) != 0 && !x->out_errno) x->out_errno = errno ? errno : EIO;
    x->rows_unflushed = 0;
  }
  pc_cli_progress_draw(&x->progress);
}

/* The paths to classify: the walk, until writing the output fails. */
typedef struct source_ctx {
  pc_cli_walk *walk;
  const run_ctx *x;
} source_ctx;

static int walk_next(void *ctx, const char **path, long *tag, pc_cli_error *err) {
  const source_ctx *s = ctx;
  *tag = 0;
  if (s->x->out_errno)
    return pc_cli_fail(err, -1, "writing %s: %s", s->x->out_name, strerror(s->x->out_errno));
  int rc = pc_cli_walk_next(s->walk, path, err);
  return rc == PC_CLI_WALK_WAIT ? PC_CLI_SOURCE_WAIT : rc;
}

static int walk_wait_fd(void *ctx) {
  return pc_cli_walk_wait_fd(((const source_ctx *)ctx)->walk);
}

enum {
  OPT_PROBS = 256,
  OPT_TTA,
  OPT_MODEL,
  OPT_MAX_FILE,
  OPT_PROGRESS,
  OPT_NO_PROGRESS,
  OPT_METADATA,
  OPT_ID_ROOT,
  OPT_RETRY_FOR,
  OPT_ROLLUP
};

int pc_cli_classify_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"jobs", required_argument, NULL, 'j'},
                                        {"top", required_argument, NULL, 'k'},
                                        {"probs", no_argument, NULL, OPT_PROBS},
                                        {"tta", required_argument, NULL, OPT_TTA},
                                        {"model", required_argument, NULL, OPT_MODEL},
                                        {"format", required_argument, NULL, 'f'},
                                        {"output", required_argument, NULL, 'o'},
                                        {"completion-order", no_argument, NULL, 'u'},
                                        {"max-file-size", required_argument, NULL, OPT_MAX_FILE},
                                        {"progress", no_argument, NULL, OPT_PROGRESS},
                                        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                        {"metadata", required_argument, NULL, OPT_METADATA},
                                        {"id-root", required_argument, NULL, OPT_ID_ROOT},
                                        {"retry-for", required_argument, NULL, OPT_RETRY_FOR},
                                        {"rollup", required_argument, NULL, OPT_ROLLUP},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};
  long jobs = 64, top = 1, tta = 0;
  double retry_for = PC_CLI_RETRY_DEFAULT_S;
  int progress = -1;
  bool probs = false, completion = false;
  const char *model = NULL, *output = NULL, *metadata = NULL, *id_root = NULL, *rollup = NULL;
  uint64_t max_file = DEFAULT_MAX_FILE;
  pc_cli_format format = PC_CLI_FORMAT_TABLE;
  pc_cli_error err;
  int rc = PC_CLI_EXIT_OK, c;
  optind = 0;
  opterr = 0;
  while (rc == PC_CLI_EXIT_OK && (c = getopt_long(argc, argv, ":j:k:f:o:uh", longs, NULL)) != -1) {
    switch (c) {
    case 'j':
      rc = pc_cli_parse_int("--jobs", optarg, 1, 4096, &jobs, &err);
      break;
    case 'k':
      rc = pc_cli_parse_int("--top", optarg, 1, 100000, &top, &err);
      break;
    case OPT_PROBS:
      probs = true;
      break;
    case OPT_TTA:
      rc = pc_cli_parse_int("--tta", optarg, 0, 100000, &tta, &err);
      break;
    case OPT_MODEL:
      model = optarg;
      break;
    case 'f':
      rc = pc_cli_format_parse(optarg, &format, &err);
      break;
    case 'o':
      output = optarg;
      break;
    case 'u':
      completion = true;
      break;
    case OPT_MAX_FILE:
      rc = pc_cli_parse_bytes("--max-file-size", optarg, &max_file, &err);
      break;
    case OPT_PROGRESS:
      progress = 1;
      break;
    case OPT_NO_PROGRESS:
      progress = 0;
      break;
    case OPT_METADATA:
      metadata = optarg;
      break;
    case OPT_ID_ROOT:
      id_root = optarg;
      break;
    case OPT_RETRY_FOR:
      rc = pc_cli_retry_parse(optarg, &retry_for, &err);
      break;
    case OPT_ROLLUP:
      rollup = optarg;
      break;
    case 'h':
      pc_cli_classify_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    default:
      return pc_cli_bad_option(g->prog, "classify", c, argv);
    }
  }
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: classify: %s\n", g->prog, err.msg);
    return rc;
  }
  char **paths = argv + optind;
  int n_paths = argc - optind;
  if (n_paths == 0) {
    fprintf(stderr, "%s: classify: no PATH given (use - to read paths from standard input)\n",
            g->prog);
    pc_cli_try_help(g->prog, "classify");
    return PC_CLI_EXIT_USAGE;
  }
  pc_cli_ecotaxa *eco = NULL;
  if (format != PC_CLI_FORMAT_ECOTAXA && (metadata || id_root)) {
    fprintf(stderr, "%s: classify: %s goes with --format ecotaxa\n", g->prog,
            metadata ? "--metadata" : "--id-root");
    return PC_CLI_EXIT_USAGE;
  }
  if (format == PC_CLI_FORMAT_ECOTAXA) {
    pc_cli_ecotaxa_options eo = {.output = output,
                                 .args = paths,
                                 .n_args = n_paths,
                                 .id_root = id_root,
                                 .metadata = metadata};
    rc = pc_cli_ecotaxa_open(&eo, &eco, &err);
    if (rc != PC_CLI_EXIT_OK) {
      fprintf(stderr, "%s: classify: %s\n", g->prog, err.msg);
      return rc;
    }
  }

  pc_client *client = NULL;
  rc = pc_cli_connect(g, (int)jobs, &client, &err);
  if (rc == PC_CLI_EXIT_OK && (rc = pc_cli_retry_apply(client, retry_for, &err)) != 0) {
    pc_client_close(client);
    client = NULL;
  }
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    pc_cli_ecotaxa_free(eco);
    return rc;
  }
  pc_cli_model m = {0};
  pc_cli_rollup groups = {0};
  rc = pc_cli_model_fetch(client, model, &m, &err);
  if (rc == PC_CLI_EXIT_DAEMON) pc_cli_explain(g, &err);
  if (rc == PC_CLI_EXIT_OK && rollup) rc = pc_cli_rollup_init(&groups, &m, rollup, &err);
  /* what the rows show: the model's classes, or with --rollup its groups (no thresholds) */
  size_t n_shown = rollup ? groups.n_groups : m.n_classes;
  const char *const *shown = (const char *const *)(rollup ? groups.labels : m.labels);
  if (rc == PC_CLI_EXIT_OK && eco) {
    pc_cli_ecotaxa_outputs(eco, rollup ? shown : (const char *const *)m.lineage,
                           m.has_thresholds && !rollup);
    rc = pc_cli_ecotaxa_columns(eco, (unsigned)top, probs, n_shown, shown, &err);
  }
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    pc_cli_rollup_free(&groups);
    pc_cli_model_free(&m);
    pc_cli_ecotaxa_free(eco);
    pc_client_close(client);
    return rc;
  }
  FILE *out = stdout;
  if (output && !(out = fopen(output, "w"))) {
    fprintf(stderr, "%s: --output %s: %s\n", g->prog, output, strerror(errno));
    pc_cli_rollup_free(&groups);
    pc_cli_model_free(&m);
    pc_cli_ecotaxa_free(eco);
    pc_client_close(client);
    return PC_CLI_EXIT_USAGE;
  }

  run_ctx x = {.prog = g->prog,
               .out_name = output ? output : "standard output",
               .rollup = rollup ? &groups : NULL};
  x.out = (pc_cli_out){.f = out,
                       .format = format,
                       .probs = probs,
                       .top_k = (unsigned)top,
                       .n_labels = n_shown,
                       .labels = shown,
                       .eco = eco,
                       .thresholds = m.has_thresholds && !rollup};
  if (format == PC_CLI_FORMAT_TABLE && probs) { /* every class, best first */
    x.out.probs = false;
    x.out.top_k = (unsigned)n_shown;
  }
  bool show = progress < 0 ? isatty(STDERR_FILENO) : progress == 1;
  pc_cli_progress_init(&x.progress, show, stderr, show ? pc_cli_walk_count(paths, n_paths) : -1);
  pc_cli_out_header(&x.out);

  pc_cli_walk *walk = NULL;
  pc_cli_pipe_counts counts = {0};
  rc = pc_cli_walk_open(paths, n_paths, STDIN_FILENO, &walk, &err);
  if (rc == 0) {
    source_ctx sc = {.walk = walk, .x = &x};
    pc_cli_source src = {.ctx = &sc, .next = walk_next, .wait_fd = walk_wait_fd};
    pc_cli_pipe_options po = {.window = (int)jobs,
                              .completion_order = completion,
                              .timeout_ms = g->timeout_ms,
                              .max_file_bytes = max_file,
                              .model = model,
                              .top_k = rollup ? 1 : x.out.top_k,
                              .full_distribution = probs || rollup,
                              .tta = (uint32_t)tta,
                              .on_result = on_result,
                              .before_wait = before_wait,
                              .ctx = &x};
    rc = pc_cli_pipe_run(client, &po, &src, &counts, &err);
  }
  pc_cli_progress_finish(&x.progress);
  if (walk && pc_cli_walk_skipped(walk)->n) {
    fprintf(stderr, "%s: classify: skipped ", g->prog);
    pc_cli_skipped_write(pc_cli_walk_skipped(walk), stderr, PC_CLI_SKIPPED_NOT_IMAGE_ONE,
                         PC_CLI_SKIPPED_NOT_IMAGE_MANY);
    fputc('\n', stderr);
  }
  pc_cli_walk_free(walk);
  uint64_t failed = counts.failed + (uint64_t)x.bad_rows, total = counts.ok + counts.failed;
  check_output(&x);
  if (fflush(out) != 0 && !x.out_errno) x.out_errno = errno ? errno : EIO;
  if (out != stdout && fclose(out) != 0 && !x.out_errno) x.out_errno = errno ? errno : EIO;
  if (x.out_errno) { /* first: the rest of the run's messages follow from it */
    fprintf(stderr, "%s: classify: writing %s: %s; %llu answered before it failed\n", g->prog,
            x.out_name, strerror(x.out_errno), (unsigned long long)total);
    if (rc == PC_CLI_EXIT_DAEMON) fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_FAILED;
  } else if (rc == PC_CLI_EXIT_DAEMON) {
    fprintf(stderr, "%s: %s; %llu answered, %llu request%s in flight lost, the rest not sent\n",
            g->prog, err.msg, (unsigned long long)total, (unsigned long long)counts.unanswered,
            counts.unanswered == 1 ? "" : "s");
  } else if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_FAILED;
  } else if (total == 0) {
    fprintf(stderr, "%s: classify: no image files found in the given paths\n", g->prog);
    rc = PC_CLI_EXIT_FAILED;
  } else if (failed) {
    fprintf(stderr, "%s: %llu of %llu file%s failed\n", g->prog, (unsigned long long)failed,
            (unsigned long long)total, total == 1 ? "" : "s");
    rc = PC_CLI_EXIT_FAILED;
  }
  if (eco) {
    unsigned long linked = 0, copied = 0;
    pc_cli_ecotaxa_counts(eco, &linked, &copied);
    if (linked + copied)
      fprintf(stderr, "%s: classify: %lu crop%s linked and %lu copied into the bundle beside %s\n",
              g->prog, linked, linked == 1 ? "" : "s", copied, x.out_name);
  }
  pc_cli_retry_report(g->prog, client, stderr);
  pc_cli_ecotaxa_free(eco);
  pc_cli_rollup_free(&groups);
  pc_cli_model_free(&m);
  pc_client_close(client);
  return rc;
}
