/* pc_cli_evaluate: the `evaluate` command: a class-folder tree
 * (models/pd_dataset) classified through the daemon with full
 * distributions (pc_cli_pipe) and scored with the shared metrics library
 * (models/pd_eval: accuracy, top-5, log loss with the competition's
 * clipping, per-class P/R/F1, F1a, confusion matrix). Images whose folder
 * names a class the model does not know are counted and reported, never
 * sent. Output: pd_eval's report, or --json. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pc_cli_args.h"
#include "pc_cli_json.h"
#include "pc_cli_model.h"
#include "pc_cli_pipe.h"
#include "pc_cli_progress.h"
#include "pc_cli_report.h"
#include "pc_cli_skipped.h"
#include "pc_cli_retry.h"
#include "pd_dataset.h"
#include "pd_eval.h"

#define DEFAULT_MAX_FILE ((16u << 20) - 1024u)

void pc_cli_evaluate_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] evaluate [OPTIONS] DIR\n"
          "\n"
          "Scores the daemon's model on labelled crops: DIR holds one folder per class, named\n"
          "by the class label, with *.png, *.jpg, *.jpeg, *.tif or *.tiff crops inside.\n"
          "Reports accuracy, top-5 accuracy, log loss (probabilities clipped to [1e-15,\n"
          "1-1e-15] and each row renormalised, the 2015 NDSB rule), per-class precision,\n"
          "recall and F1, macro F1 and F1a (share of the classes present with F1 > 0.5). Folders\n"
          "whose name is not a class of the model are reported and their images not scored; so\n"
          "are files at the top of DIR, folders inside class folders and files with other\n"
          "names (left out).\n"
          "\n"
          "Options:\n"
          "  -j, --jobs N          requests in flight (default 64)\n"
          "      --tta N           test-time augmentation transforms (default: the model's)\n"
          "      --model NAME      a model the daemon serves (default: its default model)\n"
          "      --confusion FILE  write the confusion matrix as CSV (rows: true class,\n"
          "                        columns: predicted class)\n"
          "      --limit N         score N images spread evenly over the tree\n"
          "      --json            the metrics as one JSON object (every class)\n"
          "      --all-classes     list every class of the model in the report (default: the\n"
          "                        classes in the data or among the predictions)\n"
          "      --max-file-size N larger files fail without being sent (default 16M-1K)\n"
          "      --progress, --no-progress\n"
          "                        progress line on stderr (default: when stderr is a terminal)\n"
          "      --retry-for SEC   on a lost connection or a draining daemon, reconnect and\n"
          "                        resend what is unanswered for up to SEC s (default 30;\n"
          "                        0: no retries)\n"
          "  -h, --help            this help\n"
          "\n"
          "Exit: 0 every image scored, 1 some failed (the report covers the rest) or none\n"
          "could be scored, 2 usage or DIR unreadable, 3 daemon unreachable or lost.\n",
          prog);
}

typedef struct eval_ctx {
  const char *prog;
  const pd_dataset *ds;
  pd_eval *ev;
  size_t n_classes;
  int next; /* next sample to consider */
  pc_cli_progress progress;
  long unscorable; /* answers that pd_eval refused */
} eval_ctx;

/* The samples whose label the model knows; the others are counted as unknown here. */
static int sample_next(void *arg, const char **path, long *tag, pc_cli_error *err) {
  eval_ctx *x = arg;
  while (x->next < x->ds->n) {
    const pd_sample *s = &x->ds->samples[x->next++];
    if (pd_eval_class_index(x->ev, s->label) < 0) {
      pd_error e;
      if (pd_eval_add_unknown(x->ev, s->label, &e) != PD_OK)
        return pc_cli_fail(err, -1, "%s", e.msg);
      continue;
    }
    *path = s->path;
    *tag = x->next - 1;
    return PC_CLI_SOURCE_PATH;
  }
  return PC_CLI_SOURCE_END;
}

static void on_result(void *arg, const pc_cli_result *r) {
  eval_ctx *x = arg;
  char msg[1300];
  msg[0] = '\0';
  if (r->error) {
    snprintf(msg, sizeof msg, "%s", r->error);
  } else if (r->resp->u.classify.n_distribution != x->n_classes) {
    snprintf(msg, sizeof msg, "%s: the answer has %zu probabilities, the model has %zu classes",
             r->path, r->resp->u.classify.n_distribution, x->n_classes);
  } else {
    pd_error e;
    const char *label = x->ds->samples[r->tag].label;
    if (pd_eval_add(x->ev, r->resp->u.classify.distribution, pd_eval_class_index(x->ev, label),
                    &e) != PD_OK)
      snprintf(msg, sizeof msg, "%s: %s", r->path, e.msg);
  }
  if (msg[0]) {
    if (!r->error) x->unscorable++;
    pc_cli_progress_clear(&x->progress);
    fprintf(stderr, "%s: %s\n", x->prog, msg);
  }
  pc_cli_progress_count(&x->progress, msg[0] != '\0');
  pc_cli_progress_draw(&x->progress);
}

static void before_wait(void *arg) {
  pc_cli_progress_draw(&((eval_ctx *)arg)->progress);
}

static void skipped_free(pc_cli_skipped *a, pc_cli_skipped *b, pc_cli_skipped *c) {
  pc_cli_skipped_free(a);
  pc_cli_skipped_free(b);
  pc_cli_skipped_free(c);
}

static void print_json(const pd_eval *ev, const pc_cli_model *m, const char *dir, long images,
                       unsigned long long failed, const pc_cli_skipped *const skipped[3], FILE *f) {
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  fputs("{\"dir\":", f);
  pc_cli_json_string(f, dir);
  fputs(",\"model\":", f);
  pc_cli_json_string(f, m->name);
  fputs(",\"model_version\":", f);
  pc_cli_json_string(f, m->version);
  fprintf(f, ",\"images\":%ld,\"scored\":%lld,\"failed\":%llu,\"unknown\":%lld", images,
          (long long)s.n, failed, (long long)s.n_unknown);
  fputs(",\"accuracy\":", f);
  pc_cli_json_double(f, s.accuracy);
  fputs(",\"top5\":", f);
  pc_cli_json_double(f, s.top5);
  fputs(",\"log_loss\":", f);
  pc_cli_json_double(f, s.log_loss);
  fputs(",\"macro_f1\":", f);
  pc_cli_json_double(f, s.macro_f1);
  fputs(",\"f1a\":", f);
  pc_cli_json_double(f, s.f1a);
  fprintf(f, ",\"classes_present\":%d,\"classes_f1_over_half\":%d", s.n_present, s.n_f1_over_half);
  fprintf(f, ",\"left_out\":{\"top_files\":%ld,\"subfolders\":%ld,\"other_files\":%ld}",
          skipped[0]->n, skipped[1]->n, skipped[2]->n);
  fputs(",\"unknown_labels\":{", f);
  for (int i = 0; i < s.n_unknown_labels; i++) {
    int64_t count = 0;
    const char *label = pd_eval_unknown_label(ev, i, &count);
    if (i) fputc(',', f);
    pc_cli_json_string(f, label);
    fprintf(f, ":%lld", (long long)count);
  }
  fputs("},\"classes\":[", f);
  for (int c = 0; c < pd_eval_n_classes(ev); c++) {
    pd_eval_class_stats cs;
    pd_eval_class(ev, c, &cs);
    fputs(c ? ",{\"label\":" : "{\"label\":", f);
    pc_cli_json_string(f, pd_eval_label(ev, c));
    fprintf(f, ",\"support\":%lld,\"predicted\":%lld,\"tp\":%lld,\"precision\":",
            (long long)cs.support, (long long)cs.predicted, (long long)cs.tp);
    pc_cli_json_double(f, cs.precision);
    fputs(",\"recall\":", f);
    pc_cli_json_double(f, cs.recall);
    fputs(",\"f1\":", f);
    pc_cli_json_double(f, cs.f1);
    fputc('}', f);
  }
  fputs("]}\n", f);
}

enum {
  OPT_TTA = 256,
  OPT_MODEL,
  OPT_CONFUSION,
  OPT_LIMIT,
  OPT_JSON,
  OPT_MAX_FILE,
  OPT_PROGRESS,
  OPT_ALL_CLASSES,
  OPT_NO_PROGRESS,
  OPT_RETRY_FOR
};

int pc_cli_evaluate_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {{"jobs", required_argument, NULL, 'j'},
                                        {"tta", required_argument, NULL, OPT_TTA},
                                        {"model", required_argument, NULL, OPT_MODEL},
                                        {"confusion", required_argument, NULL, OPT_CONFUSION},
                                        {"limit", required_argument, NULL, OPT_LIMIT},
                                        {"json", no_argument, NULL, OPT_JSON},
                                        {"max-file-size", required_argument, NULL, OPT_MAX_FILE},
                                        {"progress", no_argument, NULL, OPT_PROGRESS},
                                        {"all-classes", no_argument, NULL, OPT_ALL_CLASSES},
                                        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                        {"retry-for", required_argument, NULL, OPT_RETRY_FOR},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};
  long jobs = 64, tta = 0, limit = 0;
  double retry_for = PC_CLI_RETRY_DEFAULT_S;
  int progress = -1;
  bool json = false, all_classes = false;
  const char *model = NULL, *confusion = NULL;
  uint64_t max_file = DEFAULT_MAX_FILE;
  pc_cli_error err;
  int rc = PC_CLI_EXIT_OK, c;
  optind = 0;
  opterr = 0;
  while (rc == PC_CLI_EXIT_OK && (c = getopt_long(argc, argv, ":j:h", longs, NULL)) != -1) {
    switch (c) {
    case 'j':
      rc = pc_cli_parse_int("--jobs", optarg, 1, 4096, &jobs, &err);
      break;
    case OPT_TTA:
      rc = pc_cli_parse_int("--tta", optarg, 0, 100000, &tta, &err);
      break;
    case OPT_MODEL:
      model = optarg;
      break;
    case OPT_CONFUSION:
      confusion = optarg;
      break;
    case OPT_LIMIT:
      rc = pc_cli_parse_int("--limit", optarg, 1, 1L << 30, &limit, &err);
      break;
    case OPT_JSON:
      json = true;
      break;
    case OPT_MAX_FILE:
      rc = pc_cli_parse_bytes("--max-file-size", optarg, &max_file, &err);
      break;
    case OPT_PROGRESS:
      progress = 1;
      break;
    case OPT_ALL_CLASSES:
      all_classes = true;
      break;
    case OPT_NO_PROGRESS:
      progress = 0;
      break;
    case OPT_RETRY_FOR:
      rc = pc_cli_retry_parse(optarg, &retry_for, &err);
      break;
    case 'h':
      pc_cli_evaluate_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    default:
      return pc_cli_bad_option(g->prog, "evaluate", c, argv);
    }
  }
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: evaluate: %s\n", g->prog, err.msg);
    return rc;
  }
  if (argc - optind != 1) {
    fprintf(stderr, "%s: evaluate: give exactly one DIR (class-named folders of crops)\n", g->prog);
    pc_cli_try_help(g->prog, "evaluate");
    return PC_CLI_EXIT_USAGE;
  }
  const char *dir = argv[optind];
  pd_dataset ds = {0};
  pd_error pe;
  if (pd_dataset_scan_tree(dir, &ds, &pe) != PD_OK) {
    fprintf(stderr, "%s: evaluate: %s\n", g->prog, pe.msg);
    return PC_CLI_EXIT_USAGE;
  }
  if (limit) pd_dataset_limit(&ds, (int)limit);
  pc_cli_skipped loose = {0}, subfolders = {0}, other = {0};
  pc_cli_skipped_class_tree(dir, &loose, &subfolders, &other);
  FILE *conf = NULL; /* opened now: an unwritable --confusion fails before the run */
  if (confusion && !(conf = fopen(confusion, "w"))) {
    fprintf(stderr, "%s: evaluate: --confusion %s: %s\n", g->prog, confusion, strerror(errno));
    pd_dataset_free(&ds);
    skipped_free(&loose, &subfolders, &other);
    return PC_CLI_EXIT_USAGE;
  }

  pc_client *client = NULL;
  pc_cli_model m = {0};
  pd_eval *ev = NULL;
  rc = pc_cli_connect(g, (int)jobs, &client, &err);
  if (rc == PC_CLI_EXIT_OK) rc = pc_cli_retry_apply(client, retry_for, &err);
  if (rc == PC_CLI_EXIT_OK) {
    rc = pc_cli_model_fetch(client, model, &m, &err);
    if (rc == PC_CLI_EXIT_DAEMON) pc_cli_explain(g, &err);
  }
  if (rc == PC_CLI_EXIT_OK &&
      pd_eval_create((int)m.n_classes, (const char *const *)m.labels, &ev, &pe) != PD_OK)
    rc = pc_cli_fail(&err, PC_CLI_EXIT_DAEMON, "model %s: %s", m.name, pe.msg);
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    pc_cli_model_free(&m);
    pc_client_close(client);
    pd_dataset_free(&ds);
    if (conf) fclose(conf);
    skipped_free(&loose, &subfolders, &other);
    return rc;
  }

  eval_ctx x = {.prog = g->prog, .ds = &ds, .ev = ev, .n_classes = m.n_classes};
  long known = 0;
  for (int i = 0; i < ds.n; i++)
    known += pd_eval_class_index(ev, ds.samples[i].label) >= 0;
  bool show = progress < 0 ? isatty(STDERR_FILENO) : progress == 1;
  pc_cli_progress_init(&x.progress, show, stderr, known);
  pc_cli_source src = {.ctx = &x, .next = sample_next};
  pc_cli_pipe_options po = {.window = (int)jobs,
                            .timeout_ms = g->timeout_ms,
                            .max_file_bytes = max_file,
                            .model = model,
                            .top_k = 1,
                            .full_distribution = true,
                            .tta = (uint32_t)tta,
                            .on_result = on_result,
                            .before_wait = before_wait,
                            .ctx = &x};
  pc_cli_pipe_counts counts;
  rc = pc_cli_pipe_run(client, &po, &src, &counts, &err);
  pc_cli_progress_finish(&x.progress);
  if (rc == PC_CLI_EXIT_DAEMON) {
    fprintf(stderr, "%s: %s; evaluation stopped after %llu images\n", g->prog, err.msg,
            (unsigned long long)counts.ok + counts.failed);
  } else if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_FAILED;
  } else {
    unsigned long long failed = counts.failed + (unsigned long long)x.unscorable;
    pd_eval_summary s;
    pd_eval_summarize(ev, &s);
    if (json) {
      const pc_cli_skipped *sk[3] = {&loose, &subfolders, &other};
      print_json(ev, &m, dir, ds.n, failed, sk, stdout);
    } else {
      printf("model %s %s on %s: %d images\n", m.name, m.version, dir, ds.n);
      pc_cli_report_print(ev, all_classes, stdout);
      if (failed) printf("%llu images failed (messages on stderr), not scored\n", failed);
    }
    if (conf) {
      int bad = pd_eval_write_confusion_csv(ev, conf) != 0 || ferror(conf);
      int e = errno ? errno : EIO;
      if (fclose(conf) != 0 && !bad) {
        bad = 1;
        e = errno ? errno : EIO;
      }
      conf = NULL;
      if (bad) {
        fprintf(stderr, "%s: evaluate: writing --confusion %s: %s\n", g->prog, confusion,
                strerror(e));
        rc = PC_CLI_EXIT_FAILED;
      }
    }
    if (failed) {
      fprintf(stderr, "%s: %llu of %llu images failed\n", g->prog, failed,
              (unsigned long long)counts.ok + counts.failed);
      rc = PC_CLI_EXIT_FAILED;
    }
    if (s.n == 0) {
      fprintf(stderr,
              "%s: evaluate: no image in %s could be scored (%lld with labels the model "
              "does not know)\n",
              g->prog, dir, (long long)s.n_unknown);
      rc = PC_CLI_EXIT_FAILED;
    }
  }
  if (conf) fclose(conf);
  if (loose.n + subfolders.n + other.n) {
    fprintf(stderr, "%s: evaluate: left out of %s: ", g->prog, dir);
    pc_cli_skipped_write(&loose, stderr, "file at the top (not in a class folder)",
                         "files at the top (not in a class folder)");
    fputs(loose.n && subfolders.n ? "; " : "", stderr);
    pc_cli_skipped_write(&subfolders, stderr, "folder inside a class folder",
                         "folders inside class folders");
    fputs((loose.n || subfolders.n) && other.n ? "; " : "", stderr);
    pc_cli_skipped_write(&other, stderr, PC_CLI_SKIPPED_NOT_IMAGE_ONE,
                         PC_CLI_SKIPPED_NOT_IMAGE_MANY);
    fputc('\n', stderr);
  }
  skipped_free(&loose, &subfolders, &other);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: evaluate: writing standard output: %s\n", g->prog,
            strerror(errno ? errno : EIO));
    rc = rc ? rc : PC_CLI_EXIT_FAILED;
  }
  pc_cli_retry_report(g->prog, client, stderr);
  pd_eval_free(ev);
  pc_cli_model_free(&m);
  pc_client_close(client);
  pd_dataset_free(&ds);
  return rc;
}
