/* pd_frames_bench: runs pd_segment on the synthetic frames that
 * make_frames.py wrote (DIR/frames.tsv, DIR/gt.tsv, the DIR/frame_NNN.pgm files) and reports
 * detection recall and precision at IoU >= 0.5 (each ground-truth box
 * matched at most once, best IoU first) and segmentation milliseconds per
 * frame against objects per frame, on one thread (wall and thread CPU
 * time: the CPU time leaves out the time other processes had the core),
 * with the CPU time of one plain read of the frame's pixels measured in the
 * same run as the reference.
 *
 *   pd_frames_bench DIR [--background column|morph|flat] [--repeat N]
 *       [--threshold T] [--min-area A] [--merge-gap G] [--satellite-area F]
 *       [--detections FILE] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd_segment.h"

typedef struct gray {
  int w, h, bits;
  uint16_t *px;
} gray;

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int pgm_number(FILE *f, long *out) {
  int c;
  for (;;) {
    c = fgetc(f);
    if (c == '#')
      while (c != '\n' && c != EOF)
        c = fgetc(f);
    if (c == EOF) return -1;
    if (c < '0' || c > '9') continue;
    break;
  }
  long v = 0;
  while (c >= '0' && c <= '9') {
    v = v * 10 + (c - '0');
    if (v > 1000000) return -1;
    c = fgetc(f);
  }
  *out = v;
  return 0; /* the one whitespace after the number is consumed */
}

/* P5 with maxval <= 65535; always stored as 16-bit words. */
static int read_pgm(const char *path, gray *g) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "pd_frames_bench: %s: %s\n", path, strerror(errno));
    return -1;
  }
  long w = 0, h = 0, maxval = 0;
  char magic[2];
  if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || magic[1] != '5' || pgm_number(f, &w) ||
      pgm_number(f, &h) || pgm_number(f, &maxval) || w < 1 || h < 1 || maxval < 1 ||
      maxval > 65535) {
    fprintf(stderr, "pd_frames_bench: %s is not a binary PGM (P5) this reads\n", path);
    fclose(f);
    return -1;
  }
  int bits = 1;
  while ((1L << bits) - 1 < maxval)
    bits++;
  size_t n = (size_t)w * (size_t)h, bpp = maxval > 255 ? 2 : 1;
  uint8_t *raw = malloc(n * bpp);
  g->px = calloc(n, sizeof *g->px);
  if (!raw || !g->px || fread(raw, bpp, n, f) != n) {
    fprintf(stderr, "pd_frames_bench: %s: short or unreadable pixels\n", path);
    free(raw);
    free(g->px);
    fclose(f);
    return -1;
  }
  fclose(f);
  for (size_t i = 0; i < n; i++)
    g->px[i] = bpp == 2 ? (uint16_t)(raw[2 * i] << 8 | raw[2 * i + 1]) : raw[i];
  free(raw);
  g->w = (int)w;
  g->h = (int)h;
  g->bits = bits;
  return 0;
}

typedef struct box {
  int x, y, w, h;
} box;

static double iou(box a, box b) {
  int x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
  int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
  int y1 = a.y + a.h < b.y + b.h ? a.y + a.h : b.y + b.h;
  if (x1 <= x0 || y1 <= y0) return 0.0;
  double in = (double)(x1 - x0) * (y1 - y0);
  return in / ((double)a.w * a.h + (double)b.w * b.h - in);
}

typedef struct pair {
  double iou;
  int g, d;
} pair;

static int by_iou_desc(const void *pa, const void *pb) {
  const pair *a = pa, *b = pb;
  return a->iou < b->iou ? 1 : a->iou > b->iou ? -1 : 0;
}

static int cmp_double(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/* Greedy one-to-one matching at IoU >= 0.5; match_d[d] = g or -1. */
static int match(const box *gt, int ng, const pd_segment_result *r, int *match_d, double *iou_d,
                 double *iou_sum) {
  pair *p = malloc(((size_t)ng * (size_t)r->count + 1) * sizeof *p);
  int *used = calloc((size_t)ng + 1, sizeof *used);
  if (!p || !used) abort();
  int np = 0;
  for (int d = 0; d < r->count; d++) {
    match_d[d] = -1;
    iou_d[d] = 0.0;
    const pd_segment_object *o = &r->objects[d];
    box db = {o->x, o->y, o->width, o->height};
    for (int g = 0; g < ng; g++) {
      double v = iou(gt[g], db);
      if (v >= 0.5) p[np++] = (pair){v, g, d};
    }
  }
  qsort(p, (size_t)np, sizeof *p, by_iou_desc);
  int tp = 0;
  for (int i = 0; i < np; i++) {
    if (used[p[i].g] || match_d[p[i].d] >= 0) continue;
    used[p[i].g] = 1;
    match_d[p[i].d] = p[i].g;
    iou_d[p[i].d] = p[i].iou;
    *iou_sum += p[i].iou;
    tp++;
  }
  free(p);
  free(used);
  return tp;
}

/* Splits a TSV line in place into at most n fields; returns the count. */
static int tsv_fields(char *line, char **f, int n) {
  int k = 0;
  line[strcspn(line, "\r\n")] = 0;
  while (k < n) {
    f[k++] = line;
    char *tab = strchr(line, '\t');
    if (!tab) break;
    *tab = 0;
    line = tab + 1;
  }
  return k;
}

/* A non-negative decimal int field, or -1. */
static int tsv_int(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 1000000000L) return -1;
  return (int)v;
}

typedef struct frame_row {
  char name[64], flat[64];
} frame_row;

static void usage(void) {
  fprintf(stderr, "usage: pd_frames_bench DIR [--background column|morph|flat] [--repeat N] "
                  "[--threshold T] [--min-area A] [--merge-gap G] [--satellite-area F] "
                  "[--detections FILE]\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const char *dir = argv[1], *detections = NULL, *mode = "column";
  int repeat = 3;
  pd_segment_settings s = pd_segment_settings_default();
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--background") && i + 1 < argc)
      mode = argv[++i];
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = (int)strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--threshold") && i + 1 < argc)
      s.threshold = strtod(argv[++i], NULL);
    else if (!strcmp(argv[i], "--min-area") && i + 1 < argc)
      s.min_area = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--satellite-area") && i + 1 < argc)
      s.satellite_area = strtod(argv[++i], NULL);
    else if (!strcmp(argv[i], "--merge-gap") && i + 1 < argc)
      s.merge_gap = (int)strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--detections") && i + 1 < argc)
      detections = argv[++i];
    else {
      usage();
      return 2;
    }
  }
  int use_flat = !strcmp(mode, "flat");
  if (!strcmp(mode, "morph"))
    s.background = PD_SEGMENT_BG_MORPH;
  else if (!use_flat && strcmp(mode, "column") != 0) {
    usage();
    return 2;
  }
  if (repeat < 1) repeat = 1;
  char path[4096];
  snprintf(path, sizeof path, "%s/frames.tsv", dir);
  FILE *ft = fopen(path, "r");
  snprintf(path, sizeof path, "%s/gt.tsv", dir);
  FILE *gtf = fopen(path, "r");
  if (!ft || !gtf) {
    fprintf(stderr, "pd_frames_bench: %s has no frames.tsv/gt.tsv (make_frames.py writes them)\n",
            dir);
    return 77;
  }
  FILE *det = detections ? fopen(detections, "w") : NULL;
  if (detections && !det) {
    fprintf(stderr, "pd_frames_bench: %s: %s\n", detections, strerror(errno));
    return 1;
  }
  if (det) fprintf(det, "frame\tobject\tx\ty\twidth\theight\tarea\tgt_object\tiou\n");
  char line[8192];
  if (!fgets(line, sizeof line, ft) || !fgets(line, sizeof line, gtf)) return 1; /* headers */
  /* ground truth, all frames */
  int gcap = 4096, gn = 0;
  char(*gname)[64] = malloc((size_t)gcap * sizeof *gname);
  box *gbox = malloc((size_t)gcap * sizeof *gbox);
  box *gpaste = malloc((size_t)gcap * sizeof *gpaste);
  if (!gname || !gbox || !gpaste) abort();
  while (fgets(line, sizeof line, gtf)) {
    if (gn == gcap) {
      gcap *= 2;
      char(*nn)[64] = realloc(gname, (size_t)gcap * sizeof *gname);
      if (!nn) abort();
      gname = nn;
      box *nb = realloc(gbox, (size_t)gcap * sizeof *gbox);
      if (!nb) abort();
      gbox = nb;
      nb = realloc(gpaste, (size_t)gcap * sizeof *gpaste);
      if (!nb) abort();
      gpaste = nb;
    }
    char *fld[11];
    if (tsv_fields(line, fld, 11) < 11) continue;
    box b = {tsv_int(fld[2]), tsv_int(fld[3]), tsv_int(fld[4]), tsv_int(fld[5])};
    box pb = {tsv_int(fld[7]), tsv_int(fld[8]), tsv_int(fld[9]), tsv_int(fld[10])};
    if (b.x < 0 || b.y < 0 || b.w < 1 || b.h < 1 || pb.x < 0 || pb.y < 0 || pb.w < 1 || pb.h < 1)
      continue;
    gpaste[gn] = pb;
    snprintf(gname[gn], sizeof gname[gn], "%.63s", fld[0]);
    gbox[gn++] = b;
  }
  fclose(gtf);
  printf("# pd_segment on %s: background %s, threshold %g, min_area %ld, %d-connectivity, "
         "merge_gap %d, satellite_area %g, margin %d, median of %d runs, one thread\n",
         dir, mode, s.threshold, s.min_area, s.connectivity, s.merge_gap, s.satellite_area,
         s.margin, repeat);
  printf("%-10s %7s %7s %5s %5s %5s %8s %8s %8s %8s %8s %8s %6s\n", "frame", "objects", "found",
         "tp", "fn", "fp", "seg_ms", "cpu_ms", "bg_ms", "thr_ms", "cc_ms", "crop_ms", "x_read");
  long tot_gt = 0, tot_det = 0, tot_tp = 0, tot_debris = 0;
  double iou_sum = 0.0;
  enum { MAXF = 1024 };
  int fobj[MAXF];
  double fms[MAXF], fcpu[MAXF], fratio[MAXF];
  int nf = 0;
  frame_row fr;
  int rc = 0;
  while (nf < MAXF && fgets(line, sizeof line, ft)) {
    char *fld[3];
    if (tsv_fields(line, fld, 3) < 3) continue;
    snprintf(fr.name, sizeof fr.name, "%.63s", fld[0]);
    snprintf(fr.flat, sizeof fr.flat, "%.63s", fld[2]);
    gray g = {0}, fl = {0};
    snprintf(path, sizeof path, "%s/%s.pgm", dir, fr.name);
    if (read_pgm(path, &g)) {
      rc = 1;
      break;
    }
    if (use_flat) {
      snprintf(path, sizeof path, "%s/%s.pgm", dir, fr.flat);
      if (read_pgm(path, &fl)) {
        free(g.px);
        rc = 1;
        break;
      }
    }
    pd_segment_frame f = {g.w, g.h, 2, g.bits, g.px};
    pd_segment_frame ff = {fl.w, fl.h, 2, fl.bits > g.bits ? fl.bits : g.bits, fl.px};
    /* the reference: one plain read of every pixel */
    double ref[16] = {0}, seg[16] = {0}, cpu[16] = {0};
    int reps = repeat < 16 ? repeat : 16;
    volatile uint64_t sink = 0;
    pd_segment_result r = {0};
    for (int k = 0; k < reps; k++) {
      double t0 = cpu_ms();
      uint64_t sum = 0;
      for (long i = 0; i < (long)g.w * g.h; i++)
        sum += g.px[i];
      sink += sum;
      ref[k] = cpu_ms() - t0;
      const double c0 = cpu_ms();
      if (k) pd_segment_result_free(&r);
      pd_error err = {0};
      if (pd_segment_run(&f, use_flat ? &ff : NULL, &s, &r, &err)) {
        fprintf(stderr, "pd_frames_bench: %s: %s\n", fr.name, err.msg);
        rc = 1;
        break;
      }
      seg[k] = r.stats.total_ms;
      cpu[k] = cpu_ms() - c0;
    }
    if (rc) {
      free(g.px);
      free(fl.px);
      break;
    }
    (void)sink;
    qsort(ref, (size_t)reps, sizeof *ref, cmp_double);
    qsort(seg, (size_t)reps, sizeof *seg, cmp_double);
    qsort(cpu, (size_t)reps, sizeof *cpu, cmp_double);
    int ng = 0, g0 = -1;
    for (int i = 0; i < gn; i++)
      if (!strcmp(gname[i], fr.name)) {
        if (g0 < 0) g0 = i;
        ng++;
      }
    int *md = malloc(((size_t)r.count + 1) * sizeof *md);
    double *mi = malloc(((size_t)r.count + 1) * sizeof *mi);
    if (!md || !mi) abort();
    int tp = ng ? match(gbox + g0, ng, &r, md, mi, &iou_sum) : 0;
    if (!ng)
      for (int d = 0; d < r.count; d++)
        md[d] = -1, mi[d] = 0.0;
    /* unmatched detections inside a pasted crop that touch its edge: pieces
     * of the source crop's neighbours (its cut went through them), real dark
     * objects of the frame that the ground truth does not list */
    int debris = 0;
    for (int d = 0; d < r.count && ng; d++) {
      if (md[d] >= 0) continue;
      const pd_segment_object *o = &r.objects[d];
      for (int k = 0; k < ng; k++) {
        box p = gpaste[g0 + k];
        if (o->x < p.x || o->y < p.y || o->x + o->width > p.x + p.w || o->y + o->height > p.y + p.h)
          continue;
        if (o->x <= p.x + 1 || o->y <= p.y + 1 || o->x + o->width >= p.x + p.w - 1 ||
            o->y + o->height >= p.y + p.h - 1) {
          debris++;
          md[d] = -2;
        }
        break;
      }
    }
    if (det)
      for (int d = 0; d < r.count; d++) {
        const pd_segment_object *o = &r.objects[d];
        fprintf(det, "%s\t%d\t%d\t%d\t%d\t%d\t%ld\t%d\t%.3f\n", fr.name, d, o->x, o->y, o->width,
                o->height, o->area, md[d], mi[d]);
      }
    double ms = seg[reps / 2], cms = cpu[reps / 2], rms = ref[reps / 2];
    printf("%-10s %7d %7d %5d %5d %5d %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %6.1f\n", fr.name, ng,
           r.count, tp, ng - tp, r.count - tp, ms, cms, r.stats.background_ms, r.stats.threshold_ms,
           r.stats.components_ms, r.stats.crops_ms, cms / rms);
    tot_gt += ng;
    tot_det += r.count;
    tot_debris += debris;
    tot_tp += tp;
    fobj[nf] = ng;
    fms[nf] = ms;
    fcpu[nf] = cms;
    fratio[nf] = cms / rms;
    nf++;
    free(md);
    free(mi);
    pd_segment_result_free(&r);
    free(g.px);
    free(fl.px);
  }
  fclose(ft);
  if (det) fclose(det);
  if (rc) {
    free(gname);
    free(gbox);
    free(gpaste);
    return rc;
  }
  double recall = tot_gt ? (double)tot_tp / (double)tot_gt : 0.0;
  double precision = tot_det ? (double)tot_tp / (double)tot_det : 0.0;
  printf("\n# %d frames, %ld organisms, %ld detections, %ld matched (mean IoU %.3f)\n", nf, tot_gt,
         tot_det, tot_tp, tot_tp ? iou_sum / (double)tot_tp : 0.0);
  printf("recall %.4f  precision %.4f  (IoU >= 0.5; targets >= 0.95 both)\n", recall, precision);
  printf("precision %.4f without the %ld unmatched detections that touch the edge of the crop "
         "they lie in (neighbours' pieces the source crop's cut went through; gt_object -2)\n",
         tot_det - tot_debris ? (double)tot_tp / (double)(tot_det - tot_debris) : 0.0, tot_debris);
  printf("\n# segmentation per frame by organisms per frame (medians over frames): wall ms, "
         "thread CPU ms, and x_read = CPU ms / CPU ms of one plain read of the frame's pixels "
         "(same run)\n%8s %7s %8s %8s %8s\n",
         "objects", "frames", "wall_ms", "cpu_ms", "x_read");
  int done[MAXF] = {0};
  for (int i = 0; i < nf; i++) {
    if (done[i]) continue;
    double v[MAXF] = {0}, c[MAXF] = {0}, q[MAXF] = {0};
    int k = 0;
    for (int j = i; j < nf; j++)
      if (!done[j] && fobj[j] == fobj[i]) {
        done[j] = 1;
        v[k] = fms[j];
        c[k] = fcpu[j];
        q[k++] = fratio[j];
      }
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    qsort(c, (size_t)k, sizeof *c, cmp_double);
    qsort(q, (size_t)k, sizeof *q, cmp_double);
    printf("%8d %7d %8.2f %8.2f %8.1f\n", fobj[i], k, v[k / 2], c[k / 2], q[k / 2]);
  }
  free(gname);
  free(gbox);
  free(gpaste);
  return rc;
}
