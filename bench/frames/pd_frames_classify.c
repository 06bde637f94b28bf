/* pd_frames_classify: the classification half of bench/frames, through a
 * running planktond. Reads make_frames.py's DIR (frames.tsv, gt.tsv, the
 * frame_NNN.pgm and flat_NNN.pgm files; the source crops under --data),
 * then:
 *  1. sends every organism's source crop alone (its validation JPEG, as a
 *     ClassifyRequest, 64 in flight) and keeps the top-1 class;
 *  2. sends every frame as a FrameRequest (raw gray16 with the frame's
 *     significant bits; with --flat its flat field as the background),
 *     --clients connections at once, one frame in flight on each, and
 *     times it end to end;
 *  3. matches each frame's objects to the ground-truth boxes one-to-one at
 *     IoU >= 0.5 (best IoU first) and reports recall, precision, how often
 *     a matched object's top-1 equals its source crop's top-1 sent alone,
 *     the frame path's accuracy against the true labels next to the crop
 *     path's, and frames/s and objects/s.
 *
 *   pd_frames_classify DIR --socket PATH --data NDSB_TRAIN [--flat]
 *       [--clients N] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plankton_client.h"

#define MAX_FRAMES 256

typedef struct gt {
  int frame, x, y, w, h;
  char label[96], path[256];
  char crop_top1[96];  /* the source crop's top-1, sent alone */
  char frame_top1[96]; /* the matched object's top-1 in the frame ("" unmatched) */
} gt;

typedef struct frame_rec {
  char name[64], flat[64];
  int first_gt, n_gt;
  int detections, matched;
  double ms;
  uint64_t segment_us;
} frame_rec;

typedef struct bench {
  const char *dir, *socket, *data;
  bool flat;
  gt *gts;
  int n_gt;
  frame_rec frames[MAX_FRAMES];
  int n_frames;
  pthread_mutex_t mu;
  int next_frame;
  int failures;
} bench;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = n > 0 ? malloc((size_t)n) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = b ? (size_t)n : 0;
  return b;
}

/* A P5 PGM as raw gray16 little endian (8-bit files widened). */
static uint8_t *read_pgm16(const char *path, int *w, int *h, int *bits, size_t *len) {
  size_t n = 0;
  uint8_t *b = read_all(path, &n);
  if (!b) return NULL;
  long v[3];
  size_t at = 2;
  for (int i = 0; i < 3; i++) {
    while (at < n && (b[at] < '0' || b[at] > '9'))
      at++;
    v[i] = 0;
    while (at < n && b[at] >= '0' && b[at] <= '9')
      v[i] = v[i] * 10 + (b[at++] - '0');
  }
  at++; /* the one whitespace after maxval */
  const size_t px = (size_t)v[0] * (size_t)v[1], bpp = v[2] > 255 ? 2 : 1;
  if (b[0] != 'P' || b[1] != '5' || at + px * bpp > n) {
    free(b);
    return NULL;
  }
  uint8_t *out = malloc(px * 2);
  for (size_t i = 0; out && i < px; i++) {
    unsigned s = bpp == 2 ? (unsigned)b[at + 2 * i] << 8 | b[at + 2 * i + 1] : b[at + i];
    out[2 * i] = (uint8_t)s;
    out[2 * i + 1] = (uint8_t)(s >> 8);
  }
  free(b);
  *w = (int)v[0];
  *h = (int)v[1];
  *bits = 1;
  while ((1L << *bits) - 1 < v[2])
    (*bits)++;
  *len = px * 2;
  return out;
}

/* Splits line at tabs (the newline dropped): the field count, at most max. */
static int split_tabs(char *line, char **f, int max) {
  line[strcspn(line, "\r\n")] = '\0';
  int n = 0;
  for (char *p = line; n < max;) {
    f[n++] = p;
    p = strchr(p, '\t');
    if (!p) break;
    *p++ = '\0';
  }
  return n;
}

static int to_int(const char *s) {
  return (int)strtol(s, NULL, 10);
}

static int load_frames(bench *b, FILE *ft) {
  char line[2048], *f[4];
  if (!fgets(line, sizeof line, ft)) return -1; /* header */
  while (b->n_frames < MAX_FRAMES && fgets(line, sizeof line, ft)) {
    frame_rec *fr = &b->frames[b->n_frames];
    if (split_tabs(line, f, 4) != 3) continue;
    snprintf(fr->name, sizeof fr->name, "%.63s", f[0]);
    snprintf(fr->flat, sizeof fr->flat, "%.63s", f[2]);
    b->n_frames++;
  }
  return 0;
}

static int load_gt(bench *b, FILE *fg) {
  char line[2048], *f[14];
  int cap = 4096;
  b->gts = calloc((size_t)cap, sizeof *b->gts);
  if (!b->gts || !fgets(line, sizeof line, fg)) return -1; /* header */
  while (fgets(line, sizeof line, fg)) {
    if (b->n_gt == cap) {
      gt *more = realloc(b->gts, (size_t)cap * 2 * sizeof *b->gts);
      if (!more) return -1;
      b->gts = more;
      cap *= 2;
    }
    if (split_tabs(line, f, 14) != 13) continue;
    gt *g = &b->gts[b->n_gt];
    memset(g, 0, sizeof *g);
    g->x = to_int(f[2]);
    g->y = to_int(f[3]);
    g->w = to_int(f[4]);
    g->h = to_int(f[5]);
    snprintf(g->label, sizeof g->label, "%.95s", f[11]);
    snprintf(g->path, sizeof g->path, "%.255s", f[12]);
    g->frame = -1;
    for (int i = 0; i < b->n_frames; i++)
      if (!strcmp(b->frames[i].name, f[0])) g->frame = i;
    if (g->frame < 0) continue;
    frame_rec *fr = &b->frames[g->frame];
    if (fr->n_gt == 0) fr->first_gt = b->n_gt;
    fr->n_gt++;
    b->n_gt++;
  }
  return 0;
}

/* frames.tsv and gt.tsv (a frame's organisms are consecutive rows). */
static int load(bench *b) {
  char path[1024];
  snprintf(path, sizeof path, "%s/frames.tsv", b->dir);
  FILE *ft = fopen(path, "r");
  snprintf(path, sizeof path, "%s/gt.tsv", b->dir);
  FILE *fg = fopen(path, "r");
  int rc = ft && fg ? 0 : -1;
  if (rc) fprintf(stderr, "pd_frames_classify: %s has no frames.tsv/gt.tsv\n", b->dir);
  if (rc == 0) rc = load_frames(b, ft);
  if (rc == 0) rc = load_gt(b, fg);
  if (ft) fclose(ft);
  if (fg) fclose(fg);
  return rc;
}

/* 1: every source crop alone, 64 in flight. */
static int crops_alone(bench *b, double *ms) {
  pc_client_options opt = {.window = 64, .timeout_ms = 600000};
  pc_client *c = NULL;
  pc_client_error err;
  if (pc_client_connect(b->socket, &opt, &c, &err) != PC_CLIENT_OK) {
    fprintf(stderr, "pd_frames_classify: %s\n", err.message);
    return -1;
  }
  double t0 = now_ms();
  int sent = 0, answered = 0;
  while (answered < b->n_gt) {
    while (sent < b->n_gt && pc_client_in_flight(c) < 64) {
      char path[1024];
      snprintf(path, sizeof path, "%s/%s", b->data, b->gts[sent].path);
      size_t len = 0;
      uint8_t *img = read_all(path, &len);
      pc_client_classify_request rq = {.id = (uint64_t)sent, .data = img, .len = len, .top_k = 1};
      int rc = img ? pc_client_send_classify(c, &rq, &err) : PC_CLIENT_EINVAL;
      free(img);
      if (rc != PC_CLIENT_OK) {
        fprintf(stderr, "pd_frames_classify: %s: %s\n", path, img ? err.message : "unreadable");
        pc_client_close(c);
        return -1;
      }
      sent++;
    }
    if (pc_client_wait(c, 600000, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "pd_frames_classify: %s\n", err.message);
      pc_client_close(c);
      return -1;
    }
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      if (r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->id < (uint64_t)b->n_gt) {
        if (r->status == PC_CLIENT_STATUS_OK && r->u.classify.n_top)
          snprintf(b->gts[r->id].crop_top1, sizeof b->gts[r->id].crop_top1, "%s",
                   r->u.classify.top[0].label);
        else
          b->failures++;
        answered++;
      }
      pc_client_response_free(r);
    }
  }
  *ms = now_ms() - t0;
  pc_client_close(c);
  return 0;
}

static double iou(int ax, int ay, int aw, int ah, int bx, int by, int bw, int bh) {
  int x0 = ax > bx ? ax : bx, y0 = ay > by ? ay : by;
  int x1 = ax + aw < bx + bw ? ax + aw : bx + bw, y1 = ay + ah < by + bh ? ay + ah : by + bh;
  if (x1 <= x0 || y1 <= y0) return 0;
  double in = (double)(x1 - x0) * (y1 - y0);
  return in / ((double)aw * ah + (double)bw * bh - in);
}

/* One frame's objects against its ground truth: greedy, best IoU first. */
static void match(bench *b, frame_rec *fr, const pc_client_frame_result *res) {
  fr->detections = (int)res->n_objects;
  const int n = fr->n_gt, m = (int)res->n_objects;
  bool *gt_used = calloc((size_t)n + 1, 1), *det_used = calloc((size_t)m + 1, 1);
  for (;;) {
    double best = 0.5;
    int bg = -1, bd = -1;
    for (int i = 0; i < n; i++) {
      if (gt_used[i]) continue;
      const gt *g = &b->gts[fr->first_gt + i];
      for (int j = 0; j < m; j++) {
        if (det_used[j]) continue;
        const pc_client_frame_object *o = &res->objects[j];
        double v = iou(g->x, g->y, g->w, g->h, (int)o->x, (int)o->y, (int)o->width, (int)o->height);
        if (v >= best) {
          best = v;
          bg = i;
          bd = j;
        }
      }
    }
    if (bg < 0) break;
    gt_used[bg] = det_used[bd] = true;
    const pc_client_frame_object *o = &res->objects[bd];
    gt *g = &b->gts[fr->first_gt + bg];
    if (o->status == PC_CLIENT_STATUS_OK && o->n_top)
      snprintf(g->frame_top1, sizeof g->frame_top1, "%s", o->top[0].label);
    fr->matched++;
  }
  free(gt_used);
  free(det_used);
}

static void *frame_worker(void *arg) {
  bench *b = arg;
  pc_client_options opt = {.window = 2, .timeout_ms = 600000};
  pc_client *c = NULL;
  pc_client_error err;
  if (pc_client_connect(b->socket, &opt, &c, &err) != PC_CLIENT_OK) {
    fprintf(stderr, "pd_frames_classify: %s\n", err.message);
    pthread_mutex_lock(&b->mu);
    b->failures++;
    pthread_mutex_unlock(&b->mu);
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(&b->mu);
    int i = b->next_frame++;
    pthread_mutex_unlock(&b->mu);
    if (i >= b->n_frames) break;
    frame_rec *fr = &b->frames[i];
    char path[1024];
    int w = 0, h = 0, bits = 0, fw = 0, fh = 0, fbits = 0;
    size_t len = 0, flen = 0;
    snprintf(path, sizeof path, "%s/%s.pgm", b->dir, fr->name);
    uint8_t *px = read_pgm16(path, &w, &h, &bits, &len);
    uint8_t *flat = NULL;
    if (b->flat) {
      snprintf(path, sizeof path, "%s/%s.pgm", b->dir, fr->flat);
      flat = read_pgm16(path, &fw, &fh, &fbits, &flen);
    }
    pc_client_image bg = {.format = PC_CLIENT_IMAGE_RAW_GRAY16,
                          .data = flat,
                          .len = flen,
                          .width = (uint32_t)fw,
                          .height = (uint32_t)fh,
                          .significant_bits = (uint32_t)fbits};
    pc_client_frame_request rq = {.id = (uint64_t)i,
                                  .image = {.format = PC_CLIENT_IMAGE_RAW_GRAY16,
                                            .data = px,
                                            .len = len,
                                            .width = (uint32_t)w,
                                            .height = (uint32_t)h,
                                            .significant_bits = (uint32_t)bits},
                                  .background = flat ? &bg : NULL,
                                  .top_k = 1};
    pc_client_response *r = NULL;
    double t0 = now_ms();
    int rc = px ? pc_client_frame(c, &rq, &r, &err) : PC_CLIENT_EINVAL;
    fr->ms = now_ms() - t0;
    free(px);
    free(flat);
    if (rc != PC_CLIENT_OK || !r || r->status != PC_CLIENT_STATUS_OK) {
      fprintf(stderr, "pd_frames_classify: %s: %s\n", fr->name,
              rc != PC_CLIENT_OK ? err.message
              : r                ? r->message
                                 : "no answer");
      pthread_mutex_lock(&b->mu);
      b->failures++;
      pthread_mutex_unlock(&b->mu);
    } else {
      fr->segment_us = r->u.frame.segment_us;
      match(b, fr, &r->u.frame);
    }
    pc_client_response_free(r);
  }
  pc_client_close(c);
  return NULL;
}

int main(int argc, char **argv) {
  bench b = {.mu = PTHREAD_MUTEX_INITIALIZER};
  int clients = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--socket") && i + 1 < argc)
      b.socket = argv[++i];
    else if (!strcmp(argv[i], "--data") && i + 1 < argc)
      b.data = argv[++i];
    else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
      clients = (int)strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--flat"))
      b.flat = true;
    else if (!b.dir && argv[i][0] != '-')
      b.dir = argv[i];
    else {
      fprintf(stderr, "usage: pd_frames_classify DIR --socket PATH --data NDSB_TRAIN [--flat] "
                      "[--clients N]\n");
      return 2;
    }
  }
  if (!b.dir || !b.socket || !b.data || clients < 1 || clients > 64) {
    fprintf(stderr, "pd_frames_classify: DIR, --socket and --data are needed\n");
    return 2;
  }
  double crop_ms = 0;
  if (load(&b) != 0 || crops_alone(&b, &crop_ms) != 0) {
    free(b.gts);
    return 1;
  }
  pthread_t t[64];
  double t0 = now_ms();
  for (int i = 0; i < clients; i++)
    pthread_create(&t[i], NULL, frame_worker, &b);
  for (int i = 0; i < clients; i++)
    pthread_join(t[i], NULL);
  double frames_ms = now_ms() - t0;
  long det = 0, matched = 0, same = 0, frame_ok = 0, crop_ok = 0, crop_ok_matched = 0, objs = 0;
  double seg_us = 0;
  for (int i = 0; i < b.n_frames; i++) {
    det += b.frames[i].detections;
    matched += b.frames[i].matched;
    seg_us += (double)b.frames[i].segment_us;
  }
  for (int i = 0; i < b.n_gt; i++) {
    const gt *g = &b.gts[i];
    crop_ok += !strcmp(g->crop_top1, g->label);
    if (!g->frame_top1[0]) continue;
    objs++;
    same += !strcmp(g->frame_top1, g->crop_top1);
    frame_ok += !strcmp(g->frame_top1, g->label);
    crop_ok_matched += !strcmp(g->crop_top1, g->label);
  }
  printf("frames=%d organisms=%d detections=%ld matched=%ld failures=%d background=%s clients=%d\n",
         b.n_frames, b.n_gt, det, matched, b.failures, b.flat ? "flat" : "column-median", clients);
  printf("recall=%.4f precision=%.4f\n", b.n_gt ? (double)matched / b.n_gt : 0,
         det ? (double)matched / det : 0);
  printf("same_top1=%.4f (%ld of %ld matched organisms: the frame's top-1 = its source crop's "
         "sent alone)\n",
         objs ? (double)same / objs : 0, same, objs);
  printf("accuracy_frame_matched=%.4f accuracy_crop_matched=%.4f (the same %ld organisms)\n",
         objs ? (double)frame_ok / objs : 0, objs ? (double)crop_ok_matched / objs : 0, objs);
  printf("accuracy_frame_all=%.4f (unmatched counted wrong) accuracy_crop_all=%.4f\n",
         b.n_gt ? (double)frame_ok / b.n_gt : 0, b.n_gt ? (double)crop_ok / b.n_gt : 0);
  printf("frames_per_s=%.3f objects_per_s=%.1f (end to end: read, send, segment, classify, "
         "answer; %.0f ms for all frames) segment_ms_mean=%.1f crops_alone_per_s=%.1f\n",
         b.n_frames * 1e3 / frames_ms, det * 1e3 / frames_ms, frames_ms,
         b.n_frames ? seg_us / b.n_frames / 1e3 : 0, b.n_gt * 1e3 / crop_ms);
  free(b.gts);
  return b.failures ? 1 : 0;
}
