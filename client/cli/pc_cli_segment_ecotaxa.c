/* pc_cli_segment_ecotaxa: EcoTaxa's TSV and crops for segment (see
 * pc_cli_segment_ecotaxa.h). */
#include "pc_cli_segment_ecotaxa.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_cli_ecotaxa.h"
#include "pc_cli_path.h"
#include "pc_cli_png.h"
#include "pc_cli_strmap.h"

struct pc_cli_segeco {
  char *dir; /* where the crops go: the TSV's folder */
  char *cwd;
  char *root; /* ids are paths below it */
  unsigned top_k;
  pc_cli_strmap ids;
};

static const char *const columns[] = {"img_file_name",
                                      "object_id",
                                      "object_frame",
                                      "object_annotation_category",
                                      "object_annotation_status",
                                      "object_score",
                                      "object_bbox_x",
                                      "object_bbox_y",
                                      "object_width",
                                      "object_height",
                                      "object_area",
                                      "object_centroid_x",
                                      "object_centroid_y",
                                      "object_major",
                                      "object_minor",
                                      "object_angle",
                                      "object_mean",
                                      "object_min"};
static const char types[] = "ttttt"
                            "fffffffffffff";
#define N_COLUMNS (sizeof columns / sizeof columns[0])

int pc_cli_segeco_open(const char *output, char *const *frames, int n_frames, unsigned top_k,
                       pc_cli_segeco **out, pc_cli_error *err) {
  *out = NULL;
  if (output && !pc_cli_ecotaxa_name_ok(output))
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "-o %s: EcoTaxa imports only files named ecotaxa*.tsv: write the TSV as "
                       "DIR/ecotaxa_NAME.tsv (the crops go into DIR beside it)",
                       output);
  pc_cli_segeco *e = calloc(1, sizeof *e);
  if (!e) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  e->top_k = top_k;
  char *cwd = getcwd(NULL, 0);
  e->cwd = cwd ? pc_cli_path_abs(cwd, "/") : NULL;
  free(cwd);
  e->root = e->cwd ? pc_cli_ecotaxa_args_root(frames, n_frames, e->cwd) : NULL;
  const char *slash = output ? strrchr(output, '/') : NULL;
  e->dir = !output || !slash ? strdup(".")
           : slash == output ? strdup("/")
                             : strndup(output, (size_t)(slash - output));
  int rc = PC_CLI_EXIT_OK;
  struct stat st;
  if (!e->cwd || !e->root || !e->dir)
    rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory (or no current folder)");
  else if (stat(e->dir, &st) != 0 && mkdir(e->dir, 0777) != 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "-o %s: cannot make the bundle folder %s: %s", output,
                     e->dir, strerror(errno));
  if (rc != PC_CLI_EXIT_OK) {
    pc_cli_segeco_free(e);
    return rc;
  }
  *out = e;
  return PC_CLI_EXIT_OK;
}

void pc_cli_segeco_header(const pc_cli_segeco *e, FILE *f) {
  fputs("\xEF\xBB\xBF", f); /* UTF-8 BOM: EcoTaxa reads latin-1 without it */
  for (size_t i = 0; i < N_COLUMNS; i++)
    fprintf(f, "%s%s", i ? "\t" : "", columns[i]);
  for (unsigned k = 2; k <= e->top_k; k++)
    fprintf(f, "\tobject_category_%u\tobject_score_%u", k, k);
  fputc('\n', f);
  for (size_t i = 0; i < N_COLUMNS; i++)
    fprintf(f, "%s[%c]", i ? "\t" : "", types[i]);
  for (unsigned k = 2; k <= e->top_k; k++)
    fputs("\t[t]\t[f]", f);
  fputc('\n', f);
}

/* The frame's id stem: its path below the current folder without the
 * extension, as classify writes ids (malloc'ed; NULL: out of memory). */
static char *frame_stem(const pc_cli_segeco *e, const char *frame) {
  char *abs = pc_cli_path_abs(frame, e->cwd);
  if (!abs) return NULL;
  char *base = strrchr(abs, '/');
  char *dot = strrchr(base ? base + 1 : abs, '.');
  if (dot && dot != (base ? base + 1 : abs)) *dot = 0;
  char *id = pc_cli_path_object_id(abs, e->root);
  free(abs);
  return id;
}

static void row(const pc_cli_segeco *e, FILE *f, const char *frame, const char *id,
                const pc_client_frame_object *o) {
  fprintf(f, "%s.png\t", id);
  pc_cli_ecotaxa_field(f, id);
  fputc('\t', f);
  pc_cli_ecotaxa_field(f, frame);
  fputc('\t', f);
  if (o->n_top) pc_cli_ecotaxa_field(f, o->top[0].label);
  fprintf(f, "\tpredicted\t%.9g", o->n_top ? (double)o->top[0].probability : 0.0);
  fprintf(f, "\t%u\t%u\t%u\t%u\t%llu\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%u", o->x, o->y, o->width,
          o->height, (unsigned long long)o->area, o->centroid_x, o->centroid_y, o->major_axis,
          o->minor_axis, o->orientation_deg, o->mean_gray, o->min_gray);
  for (size_t k = 1; k < e->top_k; k++) {
    fputc('\t', f);
    if (k < o->n_top) {
      pc_cli_ecotaxa_field(f, o->top[k].label);
      fprintf(f, "\t%.9g", (double)o->top[k].probability);
    } else {
      fputc('\t', f);
    }
  }
  fputc('\n', f);
}

/* The first of an object's labels with a control byte, or -1. */
static int bad_label(const pc_client_frame_object *o) {
  for (size_t k = 0; k < o->n_top; k++)
    if (pc_cli_ecotaxa_has_control(o->top[k].label)) return (int)k;
  return -1;
}

int pc_cli_segeco_frame(pc_cli_segeco *e, FILE *f, const char *frame,
                        const pc_client_frame_result *fr, pc_cli_error *err) {
  if (pc_cli_ecotaxa_has_control(frame))
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: a tab, line break or control byte in the name: EcoTaxa's reader "
                       "would split the row (rename the frame)",
                       frame);
  char *stem = frame_stem(e, frame);
  if (!stem) return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  size_t cap = strlen(stem) + 24;
  char **ids = calloc(fr->n_objects ? fr->n_objects : 1, sizeof *ids);
  if (!ids) {
    free(stem);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  }
  int rc = PC_CLI_EXIT_OK;
  /* every id new and every crop written before any row is */
  for (size_t i = 0; i < fr->n_objects && rc == PC_CLI_EXIT_OK; i++) {
    const pc_client_frame_object *o = &fr->objects[i];
    if (!(ids[i] = malloc(cap))) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
      break;
    }
    snprintf(ids[i], cap, "%s_%zu", stem, i);
    long first = 0;
    int added = pc_cli_strmap_add(&e->ids, ids[i], 1, &first);
    if (added < 0) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
    } else if (added == 0) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: object id %s is in the TSV already (a frame given twice?): ids are "
                       "unique in a TSV",
                       frame, ids[i]);
    } else if (!o->crop) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: the daemon sent no crop for object %zu", frame,
                       i);
    } else if (bad_label(o) >= 0) {
      rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: object %zu: the model's label \"%s\" holds a tab, line break or "
                       "control byte: EcoTaxa's reader would split the row",
                       frame, i, o->top[bad_label(o)].label);
    } else {
      size_t n = strlen(e->dir) + strlen(ids[i]) + 8;
      char *path = malloc(n);
      if (!path) {
        rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
      } else {
        snprintf(path, n, "%s/%s.png", e->dir, ids[i]);
        rc = pc_cli_png_write_gray(path, o->crop_width, o->crop_height, o->crop, err);
        free(path);
      }
    }
  }
  for (size_t i = 0; i < fr->n_objects && rc == PC_CLI_EXIT_OK; i++)
    row(e, f, frame, ids[i], &fr->objects[i]);
  for (size_t i = 0; i < fr->n_objects; i++)
    free(ids[i]);
  free(ids);
  free(stem);
  return rc;
}

void pc_cli_segeco_free(pc_cli_segeco *e) {
  if (!e) return;
  pc_cli_strmap_free(&e->ids);
  free(e->dir);
  free(e->cwd);
  free(e->root);
  free(e);
}
