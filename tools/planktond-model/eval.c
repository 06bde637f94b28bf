/* planktond-model eval: accuracy, log loss and the confusion matrix of a
 * folder on a labelled dataset (models/FORMAT.md "Evaluation"); the same
 * run hands each scored crop's probabilities to another command
 * (pdm_eval_run: fit-thresholds). */
#include <pthread.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_dataset.h"
#include "pd_eval.h"
#include "pdm.h"

/* The eval pipeline: a loader thread decodes and preprocesses step k + 1
 * into one inputs buffer while the main thread runs the engine on step k
 * from the other, then scores it. A step is `per_step` consecutive samples. */

enum { SAMPLE_RUN = 0, SAMPLE_UNKNOWN, SAMPLE_FAILED };
enum { BUF_EMPTY = 0, BUF_READY };
#define EVAL_MAX_REPORTED_FAILURES 10

typedef struct eval_buf {
  pd_servable_inputs in;
  int state, step;
  int n_run;           /* images in `in` */
  int *counts;         /* [per_step] slots per image run */
  unsigned char *what; /* [per_step] SAMPLE_* per sample of the step */
} eval_buf;

typedef struct eval_pipe {
  const pd_ensemble *e;
  const pd_dataset *ds;
  const int *label_of; /* per sample: class index or -1 */
  const pdm_eval_hook *hook;
  int tta, per_step, n_steps;
  eval_buf buf[2];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  long failed;                     /* written by the loader, read after join */
  double load_s, wait_s, engine_s; /* loader busy; engine waiting for input; engine running */
} eval_pipe;

static void fill_step(eval_pipe *p, eval_buf *b, int step) {
  const pd_image_limits limits = pd_image_limits_default();
  const int first = step * p->per_step;
  const int k = p->ds->n - first < p->per_step ? p->ds->n - first : p->per_step;
  b->n_run = 0;
  b->step = step;
  for (int i = 0; i < k; i++) {
    const pd_sample *smp = &p->ds->samples[first + i];
    if (p->label_of[first + i] < 0) {
      b->what[i] = SAMPLE_UNKNOWN;
      continue;
    }
    pd_gray_image img;
    pd_error err = {0};
    int rc = pd_image_load_file(smp->path, &limits, &img, &err);
    if (rc == 0) {
      rc = pd_servable_inputs_fill(p->e, img.pixels, img.width, img.height, p->tta, &b->in,
                                   b->n_run * p->tta, &err);
      pd_gray_image_free(&img);
    }
    if (rc != 0) {
      b->what[i] = SAMPLE_FAILED;
      if (++p->failed <= EVAL_MAX_REPORTED_FAILURES)
        fprintf(stderr, "planktond-model eval: skipping an image: %s\n", err.msg);
      continue;
    }
    b->what[i] = SAMPLE_RUN;
    b->counts[b->n_run++] = p->tta;
  }
}

static void *loader_main(void *arg) {
  eval_pipe *p = arg;
  for (int step = 0; step < p->n_steps; step++) {
    eval_buf *b = &p->buf[step % 2];
    pthread_mutex_lock(&p->mu);
    while (b->state != BUF_EMPTY && !p->stop)
      pthread_cond_wait(&p->cv, &p->mu);
    int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (stop) break;
    double t0 = pdm_now_seconds();
    fill_step(p, b, step);
    p->load_s += pdm_now_seconds() - t0; /* read by the main thread after join */
    pthread_mutex_lock(&p->mu);
    b->state = BUF_READY;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  return NULL;
}

/* Runs the pipeline; scores into ev. Returns 0 or -1 (message printed). */
static int eval_run(eval_pipe *p, pd_servable *plan, pd_eval *ev, float *probs) {
  pthread_t tid;
  if (pthread_create(&tid, NULL, loader_main, p) != 0) {
    fprintf(stderr, "planktond-model eval: cannot start the loader thread\n");
    return -1;
  }
  int status = 0;
  double t0 = pdm_now_seconds(), last = t0;
  long done = 0;
  for (int step = 0; step < p->n_steps && status == 0; step++) {
    eval_buf *b = &p->buf[step % 2];
    double tw = pdm_now_seconds();
    pthread_mutex_lock(&p->mu);
    while (b->state != BUF_READY)
      pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    double tr = pdm_now_seconds();
    pd_error err = {0};
    if (pd_servable_run_slots(plan, &b->in, b->n_run, b->counts, probs, &err) != 0) {
      fprintf(stderr, "planktond-model eval: %s\n", err.msg);
      status = -1;
    }
    p->wait_s += tr - tw;
    p->engine_s += pdm_now_seconds() - tr;
    const int first = step * p->per_step;
    const int k = p->ds->n - first < p->per_step ? p->ds->n - first : p->per_step;
    for (int i = 0, r = 0; status == 0 && i < k; i++) {
      const pd_sample *smp = &p->ds->samples[first + i];
      if (b->what[i] == SAMPLE_UNKNOWN && pd_eval_add_unknown(ev, smp->label, &err) != 0)
        status = -1;
      if (b->what[i] != SAMPLE_RUN) continue;
      const float *pr = probs + (size_t)r++ * p->e->n_classes;
      if (pd_eval_add(ev, pr, p->label_of[first + i], &err)) {
        status = -1;
        pd_error_prefix(&err, "%s", smp->path);
      } else if (p->hook && p->hook->on_crop(p->hook->ctx, pr, p->label_of[first + i]) != 0) {
        status = -1;
        pd_error_set(&err, PD_ENOMEM, "%s: out of memory", smp->path);
      }
      if (status) fprintf(stderr, "planktond-model eval: %s\n", err.msg);
    }
    done += k;
    double now = pdm_now_seconds();
    if (now - last >= 10.0) {
      fprintf(stderr, "eval: %ld/%d images, %.1f images/s\n", done, p->ds->n, done / (now - t0));
      last = now;
    }
    pthread_mutex_lock(&p->mu);
    b->state = BUF_EMPTY;
    if (status) p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_join(tid, NULL);
  return status;
}

static int load_dataset(const pdm_options *o, pd_dataset *ds) {
  pd_error err = {0};
  int rc = o->split ? pd_dataset_read_split(o->data_root, o->split, o->subset ? o->subset : "val",
                                            ds, &err)
                    : pd_dataset_scan_tree(o->data_root, ds, &err);
  if (rc != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    return -1;
  }
  pd_dataset_limit(ds, o->limit);
  return 0;
}

int pdm_cmd_eval(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 2, &o) != 0) return 2;
  if (o.subset && !o.split) {
    fprintf(stderr, "planktond-model eval: --subset needs --split FILE\n");
    return 2;
  }
  return pdm_eval_run(&o, NULL);
}

int pdm_eval_run(const pdm_options *opt, const pdm_eval_hook *hook) {
  const pdm_options o = *opt;
  pd_dataset ds = {0};
  if (load_dataset(&o, &ds) != 0) return 1;
  pd_ensemble *e = pdm_load_or_report(o.model_dir);
  if (!e) {
    pd_dataset_free(&ds);
    return 1;
  }
  int status = 1;
  pd_error err = {0};
  pd_backend *be = NULL;
  pd_servable *plan = NULL;
  pd_eval *ev = NULL;
  eval_pipe p = {.e = e, .ds = &ds, .tta = pdm_resolve_tta(&o, e), .hook = hook};
  /* About 4 engine batches of inputs per step (at least one image), so that
   * the partial last batch of a step costs little. */
  long target = 4L * o.batch > p.tta ? 4L * o.batch : p.tta;
  long want = target / p.tta;
  p.per_step = (int)(want < 1 ? 1 : want > ds.n ? ds.n : want);
  p.n_steps = (ds.n + p.per_step - 1) / p.per_step;
  int *label_of = malloc((size_t)ds.n * sizeof *label_of);
  float *probs = malloc((size_t)p.per_step * e->n_classes * sizeof *probs);
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.cv, NULL);
  if (!label_of || !probs) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", ds.n);
    goto out;
  }
  if (pd_eval_create(e->n_classes, (const char *const *)e->classes, &ev, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  for (int i = 0; i < ds.n; i++)
    label_of[i] = pd_eval_class_index(ev, ds.samples[i].label);
  p.label_of = label_of;
  for (int k = 0; k < 2; k++) {
    p.buf[k].counts = malloc((size_t)p.per_step * sizeof(int));
    p.buf[k].what = malloc((size_t)p.per_step);
    if (!p.buf[k].counts || !p.buf[k].what ||
        pd_servable_inputs_init(e, p.per_step * p.tta, &p.buf[k].in, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg[0] ? err.msg : "out of memory");
      goto out;
    }
  }
  pd_precision prec;
  if (pdm_resolve_precision(&o, &prec) != 0 ||
      pdm_make_servable(e, o.threads, o.batch, prec, &be, &plan) != 0)
    goto out;
  fprintf(stderr, "eval: %d images, model %s (%d member%s), tta %d, batch %d, precision %s\n", ds.n,
          e->name, e->n_members, e->n_members == 1 ? "" : "s", p.tta, o.batch,
          pd_precision_name(prec));
  double t0 = pdm_now_seconds();
  if (eval_run(&p, plan, ev, probs) != 0) goto out;
  double secs = pdm_now_seconds() - t0;
  pd_eval_summary s;
  pd_eval_summarize(ev, &s);
  printf("model %s, %s %s%s%s, tta %d: %d images in %.1f s (%.1f images/s)\n", e->name,
         o.split ? "split" : "tree", o.split ? o.split : o.data_root, o.split ? " subset " : "",
         o.split ? (o.subset ? o.subset : "val") : "", p.tta, ds.n, secs, ds.n / secs);
  printf("time: engine %.1f s, waiting for input %.1f s; decode + preprocess %.1f s (in a "
         "second thread)\n",
         p.engine_s, p.wait_s, p.load_s);
  if (p.failed) printf("%ld images could not be read or decoded (not scored)\n", p.failed);
  pd_eval_print_report(ev, stdout);
  printf("n=%lld accuracy=%.6f top5=%.6f log_loss=%.6f macro_f1=%.6f f1a=%.6f unknown=%lld "
         "failed=%ld\n",
         (long long)s.n, s.accuracy, s.top5, s.log_loss, s.macro_f1, s.f1a, (long long)s.n_unknown,
         p.failed);
  if (o.confusion && pd_eval_save_confusion_csv(ev, o.confusion, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  status = s.n > 0 ? 0 : 1;
  if (s.n == 0) fprintf(stderr, "planktond-model eval: no image was scored\n");
  if (status == 0 && hook && hook->on_done(hook->ctx, e) != 0) status = 1;
out:
  pd_servable_free(plan);
  pd_backend_destroy(be);
  for (int k = 0; k < 2; k++) {
    pd_servable_inputs_free(&p.buf[k].in);
    free(p.buf[k].counts);
    free(p.buf[k].what);
  }
  pthread_mutex_destroy(&p.mu);
  pthread_cond_destroy(&p.cv);
  pd_eval_free(ev);
  free(label_of);
  free(probs);
  pd_ensemble_free(e);
  pd_dataset_free(&ds);
  return status;
}
