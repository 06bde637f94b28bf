/* planktond-model precision-check: bf16 against fp32 on labelled crops
 * (one view each, no TTA; bf16 on every convolution oneDNN can run in bf16,
 * the most any plan uses), and with --write the record that engine.precision
 * auto reads (models/FORMAT.md "Precision"). Exit 0: parity holds; 3: it
 * does not (the record is still written with --write); 1: error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_cpu_choice.h"
#include "pd_dataset.h"
#include "pd_eval.h"
#include "pd_file.h"
#include "pd_precision_pick.h"
#include "pd_sha256.h"
#include "pdm.h"

typedef struct check_run {
  const pd_ensemble *e;
  pd_servable *sv[2]; /* fp32, bf16 */
  pd_eval *ev[2];
  pd_servable_inputs in;
  int *counts, *label;
  float *probs[2];
  long same, compared, failed;
  double max_diff;
} check_run;

static int argmax(const float *p, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (p[i] > p[best]) best = i;
  return best;
}

/* Runs the k images in r->in through both servables and scores them. */
static int run_group(check_run *r, int k, pd_error *err) {
  const int nc = r->e->n_classes;
  for (int v = 0; v < 2; v++)
    PD_TRY(pd_servable_run_slots(r->sv[v], &r->in, k, r->counts, r->probs[v], err));
  for (int i = 0; i < k; i++) {
    const float *a = r->probs[0] + (size_t)i * nc, *b = r->probs[1] + (size_t)i * nc;
    for (int v = 0; v < 2; v++)
      PD_TRY(pd_eval_add(r->ev[v], v ? b : a, r->label[i], err));
    r->same += argmax(a, nc) == argmax(b, nc);
    r->compared++;
    for (int c = 0; c < nc; c++) {
      double d = a[c] > b[c] ? a[c] - b[c] : b[c] - a[c];
      if (d > r->max_diff) r->max_diff = d;
    }
  }
  return PD_OK;
}

static int run_all(check_run *r, const pd_dataset *ds, int group, pd_error *err) {
  const pd_image_limits limits = pd_image_limits_default();
  int k = 0;
  for (int s = 0; s < ds->n; s++) {
    int label = pd_eval_class_index(r->ev[0], ds->samples[s].label);
    if (label < 0) continue;
    pd_gray_image img;
    pd_error ierr = {0};
    int rc = pd_image_load_file(ds->samples[s].path, &limits, &img, &ierr);
    if (rc == PD_OK) {
      rc = pd_servable_inputs_fill(r->e, img.pixels, img.width, img.height, 1, &r->in, k, &ierr);
      pd_gray_image_free(&img);
    }
    if (rc != PD_OK) {
      if (++r->failed <= 10) fprintf(stderr, "precision-check: skipping: %s\n", ierr.msg);
      continue;
    }
    r->counts[k] = 1;
    r->label[k++] = label;
    if (k == group) {
      PD_TRY(run_group(r, k, err));
      k = 0;
    }
  }
  return k ? run_group(r, k, err) : PD_OK;
}

/* model.yaml without its `precision:` block (the key's line and the
 * indented or blank lines after it), then the new record. */
static int write_record(const char *dir, const pd_precision_record *rec, pd_error *err) {
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/model.yaml", dir);
  snprintf(tmp, sizeof tmp, "%s.precision-check.tmp", path);
  unsigned char *text = NULL;
  size_t len = 0;
  PD_TRY(pd_file_read(path, 1 << 24, &text, &len, err));
  FILE *f = fopen(tmp, "w");
  if (!f) {
    free(text);
    return pd_error_set(err, PD_EIO, "cannot write %s", tmp);
  }
  int in_block = 0;
  for (char *line = (char *)text; *line;) {
    char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
    if (!strncmp(line, "precision:", 10))
      in_block = 1;
    else if (in_block && line[0] != ' ' && line[0] != '\n')
      in_block = 0;
    if (!in_block) fwrite(line, 1, n, f);
    line += n;
  }
  if (len && text[len - 1] != '\n') fputc('\n', f);
  free(text);
  fprintf(f,
          "precision:                       # planktond-model precision-check --write "
          "(FORMAT.md \"Precision\")\n"
          "  bf16:\n    weights_sha256: \"%s\"\n    crops: %d\n    top1_same: %.6f\n"
          "    log_loss_fp32: %.6f\n    log_loss_bf16: %.6f\n",
          rec->weights_sha256, rec->crops, rec->top1_same, rec->log_loss_fp32, rec->log_loss_bf16);
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return pd_error_set(err, PD_EIO, "cannot replace %s", path);
  }
  return PD_OK;
}

static int check(const pdm_options *o, const pd_ensemble *e, const pd_dataset *ds) {
  check_run r = {.e = e};
  pd_backend *be[2] = {NULL, NULL};
  pd_error err = {0};
  int status = 1;
  const int group = o->batch;
  r.counts = malloc((size_t)group * sizeof(int));
  r.label = malloc((size_t)group * sizeof(int));
  for (int v = 0; v < 2; v++)
    r.probs[v] = malloc((size_t)group * e->n_classes * sizeof(float));
  if (!r.counts || !r.label || !r.probs[0] || !r.probs[1] ||
      pd_servable_inputs_init(e, group, &r.in, &err) != PD_OK)
    goto fail;
  for (int v = 0; v < 2; v++) {
    if (pd_eval_create(e->n_classes, (const char *const *)e->classes, &r.ev[v], &err) != PD_OK)
      goto fail;
    /* bf16 on every convolution oneDNN runs in bf16, whatever a plan's
     * timing would pick: the record bounds every plan's deviation. */
    pd_cpu_options opt = {.threads = o->threads,
                          .precision = v ? PD_PRECISION_BF16 : PD_PRECISION_FP32,
                          .kernels = v ? PD_CPU_KERNELS_ONEDNN : PD_CPU_KERNELS_AUTO};
    if (pd_cpu_backend_create(&opt, &be[v], &err) != PD_OK ||
        pd_servable_create(be[v], e, group, &r.sv[v], &err) != PD_OK)
      goto fail;
  }
  if (run_all(&r, ds, group, &err) != PD_OK) goto fail;
  if (r.compared == 0) {
    fprintf(stderr, "precision-check: no crop was compared\n");
    goto out;
  }
  pd_eval_summary s[2];
  for (int v = 0; v < 2; v++)
    pd_eval_summarize(r.ev[v], &s[v]);
  pd_precision_record rec = {.present = true,
                             .crops = (int)r.compared,
                             .top1_same = (double)r.same / (double)r.compared,
                             .log_loss_fp32 = s[0].log_loss,
                             .log_loss_bf16 = s[1].log_loss};
  const bool pass = pd_precision_record_passes(&rec);
  printf("precision-check %s: %ld crops (one view each), bf16 vs fp32: same top-1 on %ld "
         "(%.3f%%), log loss %.5f vs %.5f, accuracy %.4f vs %.4f, largest |p diff| %.5f: %s\n",
         e->name, r.compared, r.same, 100 * rec.top1_same, rec.log_loss_bf16, rec.log_loss_fp32,
         s[1].accuracy, s[0].accuracy, r.max_diff, pass ? "parity holds" : "parity fails");
  printf("n=%ld top1_same=%.6f log_loss_fp32=%.6f log_loss_bf16=%.6f max_abs_diff=%.6f pass=%d "
         "failed=%ld\n",
         r.compared, rec.top1_same, rec.log_loss_fp32, rec.log_loss_bf16, r.max_diff, pass,
         r.failed);
  if (o->write) {
    char w[4200];
    snprintf(w, sizeof w, "%s/weights.safetensors", e->members[0]->dir);
    if (pd_sha256_file(w, rec.weights_sha256, &err) != PD_OK ||
        write_record(e->members[0]->dir, &rec, &err) != PD_OK)
      goto fail;
    pd_model *back = NULL;
    if (pd_model_load(e->members[0]->dir, &back, &err) != PD_OK) goto fail;
    pd_model_free(back);
    printf("recorded in %s/model.yaml (weights sha256 %s)\n", e->members[0]->dir,
           rec.weights_sha256);
  }
  status = pass ? 0 : 3;
  goto out;
fail:
  fprintf(stderr, "planktond-model precision-check: %s\n", err.msg[0] ? err.msg : "out of memory");
out:
  for (int v = 0; v < 2; v++) {
    pd_servable_free(r.sv[v]);
    pd_backend_destroy(be[v]);
    pd_eval_free(r.ev[v]);
    free(r.probs[v]);
  }
  pd_servable_inputs_free(&r.in);
  free(r.counts);
  free(r.label);
  return status;
}

int pdm_cmd_precision_check(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 2, &o) != 0) return 2;
  if (o.subset && !o.split) {
    fprintf(stderr, "planktond-model precision-check: --subset needs --split FILE\n");
    return 2;
  }
  if (!pd_cpu_precision_available(PD_PRECISION_BF16)) {
    char cpu[160];
    pd_cpu_features_describe(cpu, sizeof cpu);
    fprintf(stderr, "planktond-model precision-check: this build and CPU do not run bf16 (%s)\n",
            cpu);
    return 1;
  }
  pd_dataset ds = {0};
  pd_error err = {0};
  int rc = o.split
               ? pd_dataset_read_split(o.data_root, o.split, o.subset ? o.subset : "val", &ds, &err)
               : pd_dataset_scan_tree(o.data_root, &ds, &err);
  if (rc != PD_OK) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return 1;
  }
  pd_dataset_limit(&ds, o.limit);
  pd_ensemble *e = pdm_load_or_report(o.model_dir);
  int status = 1;
  if (e && o.write && e->is_ensemble)
    fprintf(stderr, "planktond-model precision-check: --write records one model folder; run it "
                    "on each member folder of this ensemble\n");
  else if (e)
    status = check(&o, e, &ds);
  pd_ensemble_free(e);
  pd_dataset_free(&ds);
  return status;
}
