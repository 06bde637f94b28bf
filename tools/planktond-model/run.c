/* planktond-model run: images (or raw input slots) through the engine;
 * the file layouts are in main.c. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdm.h"

static int write_all(FILE *f, const void *p, size_t bytes) {
  return fwrite(p, 1, bytes, f) == bytes ? 0 : -1;
}

static int write_file(const char *path, const void *data, size_t bytes) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int rc = write_all(f, data, bytes);
  return fclose(f) != 0 || rc != 0 ? -1 : 0;
}

static int inputs_write(const pd_model *m, const pdm_inputs *in, const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int rc = 0;
  for (int b = 0; b < m->n_branches && rc == 0; b++)
    rc = write_all(f, in->branch[b], (size_t)in->n * pd_model_branch_input_len(m, b) * 4);
  return fclose(f) != 0 || rc != 0 ? -1 : 0;
}

static int inputs_read(const pd_model *m, const char *path, pdm_inputs *in) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "planktond-model: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (int b = 0; b < m->n_branches && rc == 0; b++) {
    size_t want = (size_t)in->n * pd_model_branch_input_len(m, b);
    if (fread(in->branch[b], sizeof(float), want, f) != want) rc = -1;
  }
  if (rc == 0 && fgetc(f) != EOF) rc = -1;
  fclose(f);
  if (rc != 0)
    fprintf(stderr, "planktond-model: %s: size does not match %d images of model '%s'\n", path,
            in->n, m->name);
  return rc;
}

/* Decodes and preprocesses every image; appends each decoded crop to `gray` if open. */
static int inputs_from_images(const pd_model *m, char **paths, pdm_inputs *in, FILE *gray) {
  pd_image_limits limits = pd_image_limits_default();
  for (int i = 0; i < in->n; i++) {
    pd_gray_image img;
    pd_error err = {0};
    if (pd_image_load_file(paths[i], &limits, &img, &err) != 0) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      return -1;
    }
    float *slots[PD_MAX_BRANCHES];
    for (int b = 0; b < m->n_branches; b++)
      slots[b] = in->branch[b] + (size_t)i * pd_model_branch_input_len(m, b);
    pd_model_fill_view(m, img.pixels, img.width, img.height, NULL, slots);
    int rc = 0;
    if (gray) {
      int32_t wh[2] = {img.width, img.height};
      rc = write_all(gray, wh, sizeof wh) ||
           write_all(gray, img.pixels, (size_t)img.width * img.height);
    }
    pd_gray_image_free(&img);
    if (rc != 0) {
      fprintf(stderr, "planktond-model: cannot write the gray dump\n");
      return -1;
    }
  }
  return 0;
}

/* Prints one line per image: path, top class, its probability. */
static void print_top(const pd_ensemble *e, const char *name, const float *p) {
  int best = 0;
  for (int c = 1; c < e->n_classes; c++)
    best = p[c] > p[best] ? c : best;
  printf("%s\t%s\t%.6f\n", name, e->classes[best], p[best]);
}

/* `run` on images through pd_ensemble (plain models, ensembles, TTA): groups
 * of max(1, batch / tta) images, each image's slots averaged. */
static int run_ensemble(const pdm_options *o) {
  pd_ensemble *e = pdm_load_or_report(o->model_dir);
  if (!e) return 1;
  const int tta = pdm_resolve_tta(o, e), n = o->n_images;
  const int group = o->batch / tta > 0 ? o->batch / tta : 1;
  int status = 1;
  pd_backend *be = NULL;
  pd_servable *plan = NULL;
  pd_servable_inputs in = {0};
  pd_error err = {0};
  pd_image_limits limits = pd_image_limits_default();
  float *probs = calloc((size_t)n * e->n_classes, sizeof(float));
  int *counts = malloc((size_t)group * sizeof *counts);
  if (!probs || !counts) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", n);
    goto out;
  }
  if (pd_servable_inputs_init(e, group * tta, &in, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    goto out;
  }
  pd_precision prec;
  if (pdm_resolve_precision(o, &prec) != 0 ||
      pdm_make_servable(e, o->threads, o->batch, prec, &be, &plan) != 0)
    goto out;
  for (int first = 0; first < n; first += group) {
    int k = n - first < group ? n - first : group;
    for (int i = 0; i < k; i++) {
      pd_gray_image img;
      if (pd_image_load_file(o->images[first + i], &limits, &img, &err) != 0) {
        fprintf(stderr, "planktond-model: %s\n", err.msg);
        goto out;
      }
      int rc =
          pd_servable_inputs_fill(e, img.pixels, img.width, img.height, tta, &in, i * tta, &err);
      pd_gray_image_free(&img);
      if (rc != 0) {
        fprintf(stderr, "planktond-model: %s\n", err.msg);
        goto out;
      }
      counts[i] = tta;
    }
    if (pd_servable_run_slots(plan, &in, k, counts, probs + (size_t)first * e->n_classes, &err)) {
      fprintf(stderr, "planktond-model: %s\n", err.msg);
      goto out;
    }
  }
  if (o->probs && write_file(o->probs, probs, (size_t)n * e->n_classes * 4) != 0) {
    fprintf(stderr, "planktond-model: cannot write %s\n", o->probs);
    goto out;
  }
  for (int i = 0; i < n; i++)
    print_top(e, o->images[i], probs + (size_t)i * e->n_classes);
  status = 0;
out:
  pd_servable_free(plan);
  pd_backend_destroy(be);
  pd_servable_inputs_free(&in);
  free(probs);
  free(counts);
  pd_ensemble_free(e);
  return status;
}

int pdm_cmd_run(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 1, &o) != 0) return 2;
  if (!o.inputs == !o.n_images) {
    fprintf(stderr, "planktond-model run: give either images or --inputs FILE --count N\n");
    return 2;
  }
  if (o.inputs && !o.count) {
    fprintf(stderr, "planktond-model run: --inputs needs --count N\n");
    return 2;
  }
  bool raw = o.inputs || o.dump_inputs || o.dump_gray;
  if (raw && o.tta > 1) {
    fprintf(stderr, "planktond-model run: --tta cannot be combined with --inputs, --dump-inputs "
                    "or --dump-gray\n");
    return 2;
  }
  if (!raw) return run_ensemble(&o);
  pd_model *m;
  pd_error err = {0};
  if (pd_model_load(o.model_dir, &m, &err) != 0) {
    fprintf(stderr, "planktond-model: %s\n", err.msg);
    if (err.code == PD_EUNSUPP)
      fprintf(stderr, "planktond-model run: --inputs, --dump-inputs and --dump-gray need one "
                      "plain model folder\n");
    return 1;
  }
  int status = 1;
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  FILE *gray = NULL;
  int n = o.inputs ? o.count : o.n_images;
  pdm_inputs in;
  float *probs = calloc((size_t)n * m->n_classes, sizeof(float));
  if (pdm_inputs_alloc(m, n, &in) != 0 || !probs) {
    fprintf(stderr, "planktond-model: out of memory for %d images\n", n);
    goto out;
  }
  if (o.dump_gray && !(gray = fopen(o.dump_gray, "wb"))) {
    fprintf(stderr, "planktond-model: %s: %s\n", o.dump_gray, strerror(errno));
    goto out;
  }
  if (o.inputs ? inputs_read(m, o.inputs, &in) : inputs_from_images(m, o.images, &in, gray))
    goto out;
  if (o.dump_inputs && inputs_write(m, &in, o.dump_inputs) != 0) {
    fprintf(stderr, "planktond-model: cannot write %s\n", o.dump_inputs);
    goto out;
  }
  pd_precision prec;
  if (pdm_resolve_precision(&o, &prec) != 0 ||
      pdm_make_engine(m, o.threads, 0, o.batch, prec, &be, &plan) != 0)
    goto out;
  if (pdm_run_all(m, plan, o.batch, &in, probs) != 0) goto out;
  if (o.probs) {
    FILE *f = fopen(o.probs, "wb");
    if (!f || write_all(f, probs, (size_t)n * m->n_classes * 4) != 0 || fclose(f) != 0) {
      fprintf(stderr, "planktond-model: cannot write %s\n", o.probs);
      goto out;
    }
  }
  for (int i = 0; i < n; i++) {
    const float *p = probs + (size_t)i * m->n_classes;
    int best = 0;
    for (int c = 1; c < m->n_classes; c++)
      best = p[c] > p[best] ? c : best;
    printf("%s\t%s\t%.6f\n", o.inputs ? "-" : o.images[i], m->classes[best], p[best]);
  }
  status = 0;
out:
  if (gray) fclose(gray);
  pd_plan_destroy(plan);
  pd_backend_destroy(be);
  pdm_inputs_free(&in);
  free(probs);
  pd_model_free(m);
  return status;
}
