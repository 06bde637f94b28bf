/* Tests of evaluation: the metric library (pd_eval) on a hand-computed
 * confusion (accuracy, top-5 with ties, clipped and renormalised log loss,
 * per-class precision / recall / F1, macro F1, F1a, unknown labels, the
 * confusion CSV), the dataset readers (pd_dataset: class-folder trees, split
 * TSVs, --limit spreading), and, with the argument `e2e`, the whole path on
 * real NDSB crops: a random-weight model written to disk, the metrics
 * computed here through pd_ensemble + pd_eval, and `planktond-model eval`
 * (tree and split TSV, TTA, an ensemble folder, an unknown label and a
 * broken file) giving the same numbers. e2e exits 77 (skip) without the
 * data at $PLANKTON_DATA/train or without $PLANKTOND_MODEL_TOOL. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_cpu_backend.h"
#include "pd_dataset.h"
#include "pd_ensemble.h"
#include "pd_servable.h"
#include "pd_eval.h"
#include "pd_image.h"
#include "pd_test.h"
#include "pd_test_model.h"

/* ---- metrics on a hand-computed case ---- */

/* -ln of q_y after the competition's clip-and-renormalise, written out plainly. */
static double ref_loss(const float *p, int n, int y) {
  double sum = 0, qy = 0;
  for (int c = 0; c < n; c++) {
    double v = p[c];
    if (v < 1e-15) v = 1e-15;
    if (v > 1 - 1e-15) v = 1 - 1e-15;
    sum += v;
    if (c == y) qy = v;
  }
  return -log(qy / sum);
}

static void test_metrics(pd_test_state *st) {
  static const char *const labels[3] = {"a", "b", "c"};
  pd_eval *ev = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_eval_create(3, labels, &ev, &err), PD_OK);
  if (!ev) return;
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  PD_CHECK_INT(st, s.n, 0);
  PD_CHECK_NEAR(st, s.accuracy + s.log_loss + s.f1a, 0, 0);

  static const float rows[8][3] = {
      {0.7f, 0.2f, 0.1f}, /* a -> a */
      {0.1f, 0.8f, 0.1f}, /* b -> b */
      {0.6f, 0.3f, 0.1f}, /* b -> a */
      {0.2f, 0.2f, 0.6f}, /* c -> c */
      {0.5f, 0.5f, 0.0f}, /* b -> a (tie: the lower index wins) */
      {1.0f, 0.0f, 0.0f}, /* c -> a, q_c clipped to 1e-15 */
      {0.1f, 0.1f, 0.8f}, /* c -> c */
      {0.2f, 0.7f, 0.1f}, /* b -> b */
  };
  static const int truth[8] = {0, 1, 1, 2, 1, 2, 2, 1};
  double loss = 0;
  for (int i = 0; i < 8; i++) {
    PD_CHECK_INT(st, pd_eval_add(ev, rows[i], truth[i], &err), PD_OK);
    loss += ref_loss(rows[i], 3, truth[i]);
  }
  pd_eval_summarize(ev, &s);
  PD_CHECK_INT(st, s.n, 8);
  PD_CHECK_NEAR(st, s.accuracy, 5.0 / 8, 1e-15);
  PD_CHECK_NEAR(st, s.top5, 1.0, 0);
  PD_CHECK_NEAR(st, s.log_loss, loss / 8, 1e-12);
  /* By hand: -ln of .7 .8 .3 .6 .5 1e-15 .8 .7 (rows sum to 1 but for float rounding). */
  double hand =
      -(log(0.7) + log(0.8) + log(0.3) + log(0.6) + log(0.5) + log(1e-15) + log(0.8) + log(0.7)) /
      8;
  PD_CHECK_NEAR(st, s.log_loss, hand, 1e-6);
  /* confusion: a [1 0 0]; b [2 2 0]; c [1 0 2] */
  static const int conf[3][3] = {{1, 0, 0}, {2, 2, 0}, {1, 0, 2}};
  for (int t = 0; t < 3; t++)
    for (int p = 0; p < 3; p++)
      PD_CHECK_INT(st, pd_eval_confusion(ev, t, p), conf[t][p]);
  pd_eval_class_stats cs;
  pd_eval_class(ev, 0, &cs); /* a: tp 1, support 1, predicted 4 */
  PD_CHECK_INT(st, cs.tp, 1);
  PD_CHECK_INT(st, cs.support, 1);
  PD_CHECK_INT(st, cs.predicted, 4);
  PD_CHECK_NEAR(st, cs.precision, 0.25, 1e-15);
  PD_CHECK_NEAR(st, cs.recall, 1.0, 1e-15);
  PD_CHECK_NEAR(st, cs.f1, 0.4, 1e-15);
  pd_eval_class(ev, 1, &cs); /* b: tp 2, support 4, predicted 2 */
  PD_CHECK_NEAR(st, cs.precision, 1.0, 1e-15);
  PD_CHECK_NEAR(st, cs.recall, 0.5, 1e-15);
  PD_CHECK_NEAR(st, cs.f1, 2.0 / 3, 1e-15);
  pd_eval_class(ev, 2, &cs); /* c: tp 2, support 3, predicted 2 */
  PD_CHECK_NEAR(st, cs.precision, 1.0, 1e-15);
  PD_CHECK_NEAR(st, cs.recall, 2.0 / 3, 1e-15);
  PD_CHECK_NEAR(st, cs.f1, 0.8, 1e-15);
  PD_CHECK_INT(st, s.n_present, 3);
  PD_CHECK_INT(st, s.n_f1_over_half, 2);
  PD_CHECK_NEAR(st, s.f1a, 2.0 / 3, 1e-15);
  PD_CHECK_NEAR(st, s.macro_f1, (0.4 + 2.0 / 3 + 0.8) / 3, 1e-15);

  /* Unknown labels: counted by name, in order of appearance, not scored. */
  int known = -1;
  PD_CHECK_INT(st, pd_eval_add_label(ev, rows[0], "zeta", &known, &err), PD_OK);
  PD_CHECK_INT(st, known, 0);
  PD_CHECK_INT(st, pd_eval_add_label(ev, rows[0], "eta", &known, &err), PD_OK);
  PD_CHECK_INT(st, pd_eval_add_unknown(ev, "zeta", &err), PD_OK);
  PD_CHECK_INT(st, pd_eval_add_label(ev, rows[1], "b", &known, &err), PD_OK);
  PD_CHECK_INT(st, known, 1);
  pd_eval_summarize(ev, &s);
  PD_CHECK_INT(st, s.n, 9);
  PD_CHECK_INT(st, s.n_unknown, 3);
  PD_CHECK_INT(st, s.n_unknown_labels, 2);
  int64_t count = 0;
  PD_CHECK(st, !strcmp(pd_eval_unknown_label(ev, 0, &count), "zeta"));
  PD_CHECK_INT(st, count, 2);
  PD_CHECK(st, !strcmp(pd_eval_unknown_label(ev, 1, &count), "eta"));
  PD_CHECK_INT(st, count, 1);
  PD_CHECK(st, pd_eval_unknown_label(ev, 2, &count) == NULL);

  /* Bad rows change nothing. */
  const float nan_row[3] = {0.5f, NAN, 0.5f}, neg_row[3] = {0.5f, -0.1f, 0.6f};
  PD_CHECK_INT(st, pd_eval_add(ev, nan_row, 0, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "class 1 ('b')");
  PD_CHECK_INT(st, pd_eval_add(ev, neg_row, 0, &err), PD_EINVAL);
  PD_CHECK_INT(st, pd_eval_add(ev, rows[0], 3, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "true class 3");
  pd_eval_summarize(ev, &s);
  PD_CHECK_INT(st, s.n, 9);

  /* The report names the unknown labels. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  pd_eval_print_report(ev, f);
  fclose(f);
  PD_CHECK_CONTAINS(st, buf, "3 images with 2 labels the model does not know");
  PD_CHECK_CONTAINS(st, buf, "zeta (2), eta (1)");
  PD_CHECK_CONTAINS(st, buf, "F1a 0.6667");
  free(buf);
  pd_eval_free(ev);
}

static void test_topk(pd_test_state *st) {
  static const char *const labels[7] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6"};
  pd_eval *ev = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_eval_create(7, labels, &ev, &err), PD_OK);
  if (!ev) return;
  /* true class 6 has four classes above it: rank 4, a top-5 hit */
  const float r1[7] = {0.2f, 0.2f, 0.2f, 0.2f, 0.05f, 0.05f, 0.1f};
  /* true class 6 ties with class 5 (lower index first) behind four: rank 5, a miss */
  const float r2[7] = {0.2f, 0.2f, 0.2f, 0.2f, 0.0f, 0.1f, 0.1f};
  /* true class 4 ties with classes 5 and 6 behind four: rank 4, a hit */
  const float r3[7] = {0.2f, 0.2f, 0.2f, 0.2f, 0.1f, 0.1f, 0.1f};
  /* a row summing to 0.6 is renormalised: q = 0.3 / 0.6 */
  const float r4[7] = {0.1f, 0.2f, 0.3f, 0, 0, 0, 0};
  PD_CHECK_INT(st, pd_eval_add(ev, r1, 6, &err), PD_OK);
  PD_CHECK_INT(st, pd_eval_add(ev, r2, 6, &err), PD_OK);
  PD_CHECK_INT(st, pd_eval_add(ev, r3, 4, &err), PD_OK);
  PD_CHECK_INT(st, pd_eval_add(ev, r4, 2, &err), PD_OK);
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  PD_CHECK_NEAR(st, s.top5, 3.0 / 4, 1e-15);
  PD_CHECK_NEAR(st, s.accuracy, 1.0 / 4, 1e-15);
  PD_CHECK_INT(st, pd_eval_confusion(ev, 6, 0), 2);
  PD_CHECK_INT(st, s.n_present, 3); /* classes 2, 4, 6 */
  PD_CHECK_NEAR(
      st, s.log_loss,
      (ref_loss(r1, 7, 6) + ref_loss(r2, 7, 6) + ref_loss(r3, 7, 4) + ref_loss(r4, 7, 2)) / 4,
      1e-12);
  PD_CHECK_NEAR(st, ref_loss(r4, 7, 2), -log(0.5), 1e-6); /* renormalised */
  PD_CHECK_INT(st, pd_eval_class_index(ev, "c5"), 5);
  PD_CHECK_INT(st, pd_eval_class_index(ev, "c7"), -1);
  pd_eval_free(ev);

  static const char *const dup[3] = {"x", "y", "x"};
  PD_CHECK_INT(st, pd_eval_create(3, dup, &ev, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "'x' appears twice");
}

static void test_csv(pd_test_state *st) {
  static const char *const labels[3] = {"plain", "with,comma", "say \"hi\""};
  pd_eval *ev = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_eval_create(3, labels, &ev, &err), PD_OK);
  if (!ev) return;
  const float r0[3] = {0.1f, 0.8f, 0.1f}, r1[3] = {0.1f, 0.1f, 0.8f};
  pd_eval_add(ev, r0, 0, &err);
  pd_eval_add(ev, r0, 1, &err);
  pd_eval_add(ev, r1, 1, &err);
  pd_eval_add(ev, r1, 1, &err);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  PD_CHECK_INT(st, pd_eval_write_confusion_csv(ev, f), 0);
  fclose(f);
  PD_CHECK(st, !strcmp(buf, "true\\predicted,plain,\"with,comma\",\"say \"\"hi\"\"\"\n"
                            "plain,0,1,0\n"
                            "\"with,comma\",0,1,2\n"
                            "\"say \"\"hi\"\"\",0,0,0\n"));
  if (strcmp(buf, "true\\predicted,plain,\"with,comma\",\"say \"\"hi\"\"\"\n"
                  "plain,0,1,0\n\"with,comma\",0,1,2\n\"say \"\"hi\"\"\",0,0,0\n"))
    fprintf(stderr, "  csv:\n%s", buf);
  free(buf);
  PD_CHECK_INT(st, pd_eval_save_confusion_csv(ev, "/nonexistent-dir/x.csv", &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, "/nonexistent-dir/x.csv");
  pd_eval_free(ev);
}

/* ---- datasets ---- */

static void make_dir(const char *path) {
  if (mkdir(path, 0700) != 0) {
    perror(path);
    exit(1);
  }
}

static void put(const char *dir, const char *name, const char *text) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (pd_test_write_file(path, text, strlen(text)) != 0) {
    perror(path);
    exit(1);
  }
}

static void rm_rf(const char *dir) {
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void test_datasets(pd_test_state *st) {
  char root[] = "/tmp/pd-test-eval-XXXXXX";
  if (!mkdtemp(root)) exit(1);
  char d1[4200], d2[4200], d3[4200];
  snprintf(d1, sizeof d1, "%s/zoo", root);
  snprintf(d2, sizeof d2, "%s/alga", root);
  snprintf(d3, sizeof d3, "%s/.hidden", root);
  make_dir(d1);
  make_dir(d2);
  make_dir(d3);
  put(d1, "b.PNG", "x");
  put(d1, "a.jpg", "x");
  put(d1, "notes.txt", "x");
  put(d1, ".c.jpg", "x");
  put(d2, "z.jpeg", "x");
  put(d3, "h.jpg", "x");
  put(root, "top.jpg", "x"); /* files at the top are not in a class */
  pd_dataset ds;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_dataset_scan_tree(root, &ds, &err), PD_OK);
  PD_CHECK_INT(st, ds.n, 3);
  if (ds.n == 3) {
    PD_CHECK(st, !strcmp(ds.samples[0].label, "alga"));
    PD_CHECK(st, !strcmp(ds.samples[1].label, "zoo") && !strcmp(ds.samples[2].label, "zoo"));
    PD_CHECK_CONTAINS(st, ds.samples[1].path, "/zoo/a.jpg");
    PD_CHECK_CONTAINS(st, ds.samples[2].path, "/zoo/b.PNG");
    PD_CHECK(st, !strncmp(ds.samples[0].path, root, strlen(root)));
  }
  pd_dataset_free(&ds);
  PD_CHECK_INT(st, pd_dataset_scan_tree(d3, &ds, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "no images");
  PD_CHECK_INT(st, pd_dataset_scan_tree("/nonexistent-dir", &ds, &err), PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, "/nonexistent-dir");

  /* Split TSV: columns in any order, extra columns, CRLF, subset filter, absolute paths. */
  put(root, "split.tsv",
      "id\tsplit\tlabel\tpath\r\n"
      "1\ttrain\tzoo\tzoo/a.jpg\r\n"
      "2\tval\tzoo\tzoo/b.PNG\r\n"
      "3\tval\talga\t/abs/z.jpeg\r\n"
      "\r\n"
      "4\ttest\talga\talga/z.jpeg\r\n");
  char tsv[4200];
  snprintf(tsv, sizeof tsv, "%s/split.tsv", root);
  PD_CHECK_INT(st, pd_dataset_read_split(root, tsv, "val", &ds, &err), PD_OK);
  PD_CHECK_INT(st, ds.n, 2);
  if (ds.n == 2) {
    char want[4200];
    snprintf(want, sizeof want, "%s/zoo/b.PNG", root);
    PD_CHECK(st, !strcmp(ds.samples[0].path, want));
    PD_CHECK(st, !strcmp(ds.samples[1].path, "/abs/z.jpeg"));
    PD_CHECK(st, !strcmp(ds.samples[1].label, "alga"));
  }
  pd_dataset_free(&ds);
  PD_CHECK_INT(st, pd_dataset_read_split(root, tsv, "all", &ds, &err), PD_OK);
  PD_CHECK_INT(st, ds.n, 4);
  pd_dataset_free(&ds);
  PD_CHECK_INT(st, pd_dataset_read_split(root, tsv, "holdout", &ds, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(st, err.msg, "no rows with split 'holdout'");
  PD_CHECK_CONTAINS(st, err.msg, "'train', 'val', 'test'");
  put(root, "bad.tsv", "path\tlabel\n");
  snprintf(tsv, sizeof tsv, "%s/bad.tsv", root);
  PD_CHECK_INT(st, pd_dataset_read_split(root, tsv, "val", &ds, &err), PD_EFORMAT);
  PD_CHECK_CONTAINS(st, err.msg, "bad.tsv:1");
  PD_CHECK_CONTAINS(st, err.msg, "missing 'split'");
  put(root, "short.tsv", "path\tlabel\tsplit\nzoo/a.jpg\tzoo\n");
  snprintf(tsv, sizeof tsv, "%s/short.tsv", root);
  PD_CHECK_INT(st, pd_dataset_read_split(root, tsv, "val", &ds, &err), PD_EFORMAT);
  PD_CHECK_CONTAINS(st, err.msg, "short.tsv:2: 2 fields");

  /* --limit keeps an even spread. */
  pd_dataset big = {.n = 10, .samples = calloc(10, sizeof(pd_sample))};
  for (int i = 0; i < 10; i++) {
    char name[16];
    snprintf(name, sizeof name, "%d", i);
    big.samples[i].path = strdup(name);
    big.samples[i].label = strdup("x");
  }
  pd_dataset_limit(&big, 3);
  PD_CHECK_INT(st, big.n, 3);
  PD_CHECK(st, !strcmp(big.samples[0].path, "0") && !strcmp(big.samples[1].path, "3") &&
                   !strcmp(big.samples[2].path, "6"));
  pd_dataset_limit(&big, 5);
  PD_CHECK_INT(st, big.n, 3);
  pd_dataset_free(&big);
  rm_rf(root);
}

/* ---- end to end on real crops ---- */

static const char *const k_e2e_classes[4] = {"acantharia_protist", "amphipods", "copepod_calanoid",
                                             "detritus_other"};
#define E2E_UNKNOWN "fish_larvae_thin_body"
#define E2E_PER_CLASS 4

static const char k_e2e_yaml[] =
    "format: 1\n"
    "name: e2e-c4\n"
    "version: \"1\"\n"
    "classes: [acantharia_protist, amphipods, copepod_calanoid, detritus_other]\n"
    "symmetry: c4\n"
    "input: {mean: 0.05, std: 0.15}\n"
    "branches:\n"
    "  - name: a\n"
    "    input: {kind: image, size: 20, rescale: fit, fit_size: 18}\n"
    "    layers:\n"
    "      - {type: cyclic_slice}\n"
    "      - {type: conv, filters: 4, kernel: 3}\n"
    "      - {type: maxpool}\n"
    "      - {type: cyclic_roll}\n"
    "      - {type: conv, filters: 6, kernel: 3}\n"
    "      - {type: global_avg_pool}\n"
    "      - {type: cyclic_pool, mode: rms}\n"
    "  - name: size\n"
    "    input: {kind: size_features, features: [log_long, log_short]}\n"
    "head:\n"
    "  layers:\n"
    "    - {type: dense, units: 4}\n"
    "    - {type: softmax}\n"
    "tta: {count: 3, zoom: [0.8, 1.25], translate: [-2, 2]}\n";

static const pd_test_tensor k_e2e_tensors[] = {
    {"a.1.weight", 4, {4, 1, 3, 3}},  {"a.1.bias", 1, {4}},
    {"a.4.weight", 4, {6, 16, 3, 3}}, {"a.4.bias", 1, {6}},
    {"head.0.weight", 2, {4, 8}},     {"head.0.bias", 1, {4}},
};

typedef struct tool_result {
  int ok;
  long long n, unknown, failed;
  double accuracy, top5, log_loss, macro_f1, f1a;
} tool_result;

static tool_result run_tool(const char *tool, const char *args) {
  tool_result r = {0};
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' eval %s", tool, args);
  FILE *p = popen(cmd, "r");
  if (!p) return r;
  char line[4096];
  while (fgets(line, sizeof line, p))
    if (!strncmp(line, "n=", 2) &&
        sscanf(line,
               "n=%lld accuracy=%lf top5=%lf log_loss=%lf macro_f1=%lf f1a=%lf "
               "unknown=%lld failed=%lld",
               &r.n, &r.accuracy, &r.top5, &r.log_loss, &r.macro_f1, &r.f1a, &r.unknown,
               &r.failed) == 8)
      r.ok = 1;
  int status = pclose(p);
  if (status != 0) {
    fprintf(stderr, "  `%s` exited with status %d\n", cmd, status);
    r.ok = 0;
  }
  return r;
}

/* The metrics computed in-process: pd_ensemble (tta transforms) + pd_eval. */
/* One model folder's probabilities (after its TTA mean) for every sample of ds:
 * out[i * 16 + c]; a sample whose file does not decode gets ok[i] = 0. */
static int member_probs(pd_test_state *st, const char *model_dir, const pd_dataset *ds, int tta,
                        float *out, char *ok, int *n_classes, pd_eval **ev_out) {
  pd_ensemble *e = NULL;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_ensemble_load(model_dir, &e, &err), PD_OK);
  if (!e) {
    fprintf(stderr, "  %s\n", err.msg);
    return -1;
  }
  pd_backend *be = NULL;
  pd_cpu_options opt = {.threads = 1};
  pd_servable *plan = NULL;
  pd_servable_inputs in;
  PD_CHECK_INT(st, pd_cpu_backend_create(&opt, &be, &err), PD_OK);
  PD_CHECK_INT(st, pd_servable_create(be, e, 5, &plan, &err), PD_OK);
  PD_CHECK_INT(st, pd_servable_inputs_init(e, tta, &in, &err), PD_OK);
  if (ev_out)
    PD_CHECK_INT(st, pd_eval_create(e->n_classes, (const char *const *)e->classes, ev_out, &err),
                 PD_OK);
  *n_classes = e->n_classes;
  pd_image_limits limits = pd_image_limits_default();
  for (int i = 0; i < ds->n; i++) {
    pd_gray_image img;
    ok[i] = pd_image_load_file(ds->samples[i].path, &limits, &img, &err) == PD_OK;
    if (!ok[i]) continue;
    int count = tta;
    PD_CHECK_INT(st,
                 pd_servable_inputs_fill(e, img.pixels, img.width, img.height, tta, &in, 0, &err),
                 PD_OK);
    PD_CHECK_INT(st, pd_servable_run_slots(plan, &in, 1, &count, out + (size_t)i * 16, &err),
                 PD_OK);
    pd_gray_image_free(&img);
  }
  pd_servable_inputs_free(&in);
  pd_servable_free(plan);
  pd_backend_destroy(be);
  pd_ensemble_free(e);
  return 0;
}

/* The metrics the tool should print for ds: members[0..n-1] (single model
 * folders), each run alone, their probabilities mixed here with weights[]
 * (normalised), so an ensemble's weighting is checked against arithmetic done
 * outside pd_ensemble. */
static pd_eval *expected_mix(pd_test_state *st, const char *const *members, const double *weights,
                             int n, const pd_dataset *ds, int tta, long long *failed) {
  pd_eval *ev = NULL;
  pd_error err = {0};
  float *mix = calloc((size_t)ds->n * 16, sizeof(float));
  float *one = calloc((size_t)ds->n * 16, sizeof(float));
  char *ok = calloc((size_t)ds->n, 1);
  double wsum = 0;
  for (int m = 0; m < n; m++)
    wsum += weights[m];
  int k = 0;
  for (int m = 0; m < n && mix && one && ok; m++) {
    if (member_probs(st, members[m], ds, tta, one, ok, &k, m == 0 ? &ev : NULL) != 0) break;
    for (size_t j = 0; j < (size_t)ds->n * 16; j++)
      mix[j] += (float)(weights[m] / wsum) * one[j];
  }
  *failed = 0;
  for (int i = 0; ev && i < ds->n; i++) {
    if (pd_eval_class_index(ev, ds->samples[i].label) < 0) {
      pd_eval_add_unknown(ev, ds->samples[i].label, &err);
    } else if (!ok[i]) {
      ++*failed;
    } else {
      PD_CHECK_INT(
          st, pd_eval_add_label(ev, mix + (size_t)i * 16, ds->samples[i].label, NULL, &err), PD_OK);
    }
  }
  PD_CHECK(st, k > 0 && k <= 16);
  free(mix);
  free(one);
  free(ok);
  return ev;
}

static pd_eval *expected_metrics(pd_test_state *st, const char *model_dir, const pd_dataset *ds,
                                 int tta, long long *failed) {
  const double one = 1;
  return expected_mix(st, &model_dir, &one, 1, ds, tta, failed);
}

static void compare(pd_test_state *st, const char *what, const tool_result *r, const pd_eval *ev,
                    long long failed) {
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  PD_CHECK(st, r->ok);
  if (!r->ok) {
    fprintf(stderr, "  %s: no summary line from the tool\n", what);
    return;
  }
  printf("%s: n=%lld accuracy=%.6f top5=%.6f log_loss=%.6f f1a=%.6f unknown=%lld failed=%lld\n",
         what, r->n, r->accuracy, r->top5, r->log_loss, r->f1a, r->unknown, r->failed);
  PD_CHECK_INT(st, r->n, s.n);
  PD_CHECK_INT(st, r->unknown, s.n_unknown);
  PD_CHECK_INT(st, r->failed, failed);
  PD_CHECK_NEAR(st, r->accuracy, s.accuracy, 1.5e-6);
  PD_CHECK_NEAR(st, r->top5, s.top5, 1.5e-6);
  PD_CHECK_NEAR(st, r->log_loss, s.log_loss, 1.5e-6);
  PD_CHECK_NEAR(st, r->macro_f1, s.macro_f1, 1.5e-6);
  PD_CHECK_NEAR(st, r->f1a, s.f1a, 1.5e-6);
}

static int test_e2e(pd_test_state *st) {
  const char *data = getenv("PLANKTON_DATA");
  const char *tool = getenv("PLANKTOND_MODEL_TOOL");
  char train[4200];
  snprintf(train, sizeof train, "%s/train", data ? data : "../shared/data/ndsb");
  struct stat sb;
  if (stat(train, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    printf("SKIP: NDSB crops not found at %s (set PLANKTON_DATA)\n", train);
    return 77;
  }
  if (!tool || access(tool, X_OK) != 0) {
    printf("SKIP: PLANKTOND_MODEL_TOOL is not set to the planktond-model binary\n");
    return 77;
  }
  char root[] = "/tmp/pd-test-eval-e2e-XXXXXX";
  if (!mkdtemp(root)) exit(1);
  char tree[512], model[512], model_b[512], ens[512], path[1024], src[2048];
  snprintf(tree, sizeof tree, "%s/tree", root);
  snprintf(model, sizeof model, "%s/model", root);
  snprintf(model_b, sizeof model_b, "%s/model_b", root);
  snprintf(ens, sizeof ens, "%s/ens", root);
  make_dir(tree);
  make_dir(model);
  make_dir(model_b);
  make_dir(ens);
  PD_CHECK_INT(st, pd_test_write_model(model, k_e2e_yaml, k_e2e_tensors, 6, 5), 0);
  /* a second member with other weights: a weighting bug changes the ensemble's figures */
  PD_CHECK_INT(st, pd_test_write_model(model_b, k_e2e_yaml, k_e2e_tensors, 6, 11), 0);
  put(ens, "model.yaml",
      "format: 1\nname: e2e-pair\nversion: \"1\"\n"
      "ensemble: {members: [../model, ../model_b], weights: [1, 3]}\n");
  /* The tree: E2E_PER_CLASS real crops of each class (symlinks), 2 of a label the
   * model does not know, and one broken file. */
  pd_dataset all;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_dataset_scan_tree(train, &all, &err), PD_OK);
  int linked = 0;
  for (int c = 0; c < 5; c++) {
    const char *label = c < 4 ? k_e2e_classes[c] : E2E_UNKNOWN;
    int want = c < 4 ? E2E_PER_CLASS : 2, k = 0;
    snprintf(path, sizeof path, "%s/%s", tree, label);
    make_dir(path);
    for (int i = 0; i < all.n && k < want; i++) {
      if (strcmp(all.samples[i].label, label)) continue;
      const char *name = strrchr(all.samples[i].path, '/') + 1;
      snprintf(src, sizeof src, "%s/%s/%s", tree, label, name);
      if (symlink(all.samples[i].path, src) == 0) linked++;
      k++;
    }
    PD_CHECK_INT(st, k, want);
  }
  pd_dataset_free(&all);
  PD_CHECK_INT(st, linked, 4 * E2E_PER_CLASS + 2);
  snprintf(path, sizeof path, "%s/amphipods", tree);
  put(path, "zz_broken.jpg", "\xff\xd8\xff\xe0 this is not a JPEG");

  pd_dataset ds;
  PD_CHECK_INT(st, pd_dataset_scan_tree(tree, &ds, &err), PD_OK);
  PD_CHECK_INT(st, ds.n, 4 * E2E_PER_CLASS + 3);

  /* Tree, TTA 3 (the model's default), engine batches of 4 slots. */
  long long failed = 0;
  pd_eval *ev = expected_metrics(st, model, &ds, 3, &failed);
  PD_CHECK_INT(st, failed, 1);
  char csv[600], args[8192];
  snprintf(csv, sizeof csv, "%s/confusion.csv", root);
  snprintf(args, sizeof args, "'%s' '%s' --batch 4 --threads 1 --confusion '%s'", model, tree, csv);
  tool_result r = run_tool(tool, args);
  if (ev) compare(st, "tree tta 3", &r, ev, failed);
  pd_eval_summary s;
  if (ev) pd_eval_summarize(ev, &s);
  PD_CHECK_INT(st, ev ? s.n : 0, 4 * E2E_PER_CLASS);
  PD_CHECK_INT(st, ev ? s.n_unknown : 0, 2);
  /* The CSV holds the same confusion. */
  if (ev) {
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    pd_eval_write_confusion_csv(ev, f);
    fclose(f);
    FILE *g = fopen(csv, "r");
    char got[4096] = "";
    size_t n = g ? fread(got, 1, sizeof got - 1, g) : 0;
    got[n] = 0;
    if (g) fclose(g);
    PD_CHECK(st, !strcmp(got, want));
    PD_CHECK(st, !strncmp(got, "true\\predicted,acantharia_protist,amphipods,", 44));
    free(want);
  }
  /* The ensemble of two different members, weights 1 and 3, against the members
   * run alone and mixed here; and it differs from either member alone (so the
   * comparison can see a weighting bug). */
  pd_eval_free(ev);
  const char *members[2] = {model, model_b};
  const double w13[2] = {1, 3}, w11[2] = {1, 1};
  ev = expected_mix(st, members, w13, 2, &ds, 3, &failed);
  pd_eval *ev_b = expected_metrics(st, model_b, &ds, 3, &failed);
  pd_eval *ev_even = expected_mix(st, members, w11, 2, &ds, 3, &failed);
  snprintf(args, sizeof args, "'%s' '%s' --batch 7 --threads 2", ens, tree);
  r = run_tool(tool, args);
  if (ev) compare(st, "ensemble tta 3", &r, ev, failed);
  if (ev && ev_b && ev_even) {
    pd_eval_summary sb, se, sm;
    pd_eval_summarize(ev, &sm);
    pd_eval_summarize(ev_b, &sb);
    pd_eval_summarize(ev_even, &se);
    printf("ensemble log loss %.6f; member b alone %.6f; weights 1:1 %.6f\n", sm.log_loss,
           sb.log_loss, se.log_loss);
    PD_CHECK(st, fabs(sm.log_loss - sb.log_loss) > 1e-4);
    PD_CHECK(st, fabs(sm.log_loss - se.log_loss) > 1e-4);
    PD_CHECK(st, fabs(r.log_loss - se.log_loss) > 1e-4);
  }
  pd_eval_free(ev_b);
  pd_eval_free(ev_even);
  pd_eval_free(ev);

  /* Split TSV, subset val, no TTA, paths relative to DATA_ROOT = tree. */
  char tsv[600];
  snprintf(tsv, sizeof tsv, "%s/split.tsv", root);
  FILE *f = fopen(tsv, "w");
  fprintf(f, "path\tlabel\tsplit\n");
  for (int i = 0; i < ds.n; i++) {
    const char *rel = ds.samples[i].path + strlen(tree) + 1;
    fprintf(f, "%s\t%s\t%s\n", rel, ds.samples[i].label, i % 3 ? "val" : "train");
  }
  fclose(f);
  pd_dataset val;
  PD_CHECK_INT(st, pd_dataset_read_split(tree, tsv, "val", &val, &err), PD_OK);
  ev = expected_metrics(st, model, &val, 1, &failed);
  snprintf(args, sizeof args, "'%s' '%s' --split '%s' --subset val --tta 1 --batch 3", model, tree,
           tsv);
  r = run_tool(tool, args);
  if (ev) compare(st, "split val tta 1", &r, ev, failed);
  pd_eval_free(ev);
  pd_dataset_free(&val);

  /* --limit 6 over the tree: an even spread, so more than one class. */
  pd_dataset_limit(&ds, 6);
  ev = expected_metrics(st, model, &ds, 2, &failed);
  snprintf(args, sizeof args, "'%s' '%s' --limit 6 --tta 2", model, tree);
  r = run_tool(tool, args);
  if (ev) compare(st, "limit 6 tta 2", &r, ev, failed);
  if (ev) {
    pd_eval_summarize(ev, &s);
    PD_CHECK(st, s.n_present >= 2);
  }
  pd_eval_free(ev);
  pd_dataset_free(&ds);
  rm_rf(root);
  return 0;
}

int main(int argc, char **argv) {
  pd_test_state st = {0};
  if (argc > 1 && !strcmp(argv[1], "e2e")) {
    int rc = test_e2e(&st);
    if (rc == 77) return 77;
    return pd_test_finish(&st, "test_eval e2e");
  }
  test_metrics(&st);
  test_topk(&st);
  test_csv(&st);
  test_datasets(&st);
  return pd_test_finish(&st, "test_eval");
}
