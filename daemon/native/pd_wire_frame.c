/* pd_wire_frame: FrameRequest -> pd_frame_job and pd_frame_job ->
 * FrameResponse (pd_wire.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_frame.h"
#include "pd_served.h"
#include "pd_wire.h"

static int clamp_int(uint32_t v) {
  return v > INT_MAX ? INT_MAX : (int)v;
}

static void image_input(const Plankton__Image *im, pd_frame_image *out) {
  memset(out, 0, sizeof *out);
  out->format = (pd_input_format)im->format;
  out->data = im->data.data;
  out->len = im->data.len;
  out->width = clamp_int(im->width);
  out->height = clamp_int(im->height);
  out->significant_bits = clamp_int(im->significant_bits);
}

void pd_wire_frame_input(const Plankton__FrameRequest *f, uint64_t now_ns, int default_top_k,
                         pd_frame_job *job) {
  job->id = f->id;
  snprintf(job->model, sizeof job->model, "%s", f->model ? f->model : "");
  if (f->model && strlen(f->model) >= sizeof job->model) /* cannot match any model name */
    snprintf(job->model, sizeof job->model, "%.60s...", f->model);
  memset(&job->frame, 0, sizeof job->frame);
  if (f->image) image_input(f->image, &job->frame);
  job->has_background = f->background != NULL;
  if (f->background) image_input(f->background, &job->background);
  pd_frame_options *o = &job->opt;
  memset(o, 0, sizeof *o);
  o->keep_edge = -1;
  o->background = -1;
  const Plankton__SegmentSettings *s = f->segment;
  if (s) {
    o->threshold = s->threshold;
    o->min_area = s->min_area;
    o->max_area = s->max_area;
    o->padding = clamp_int(s->padding);
    o->max_objects = clamp_int(s->max_objects);
    if (s->edge_objects == PLANKTON__EDGE_OBJECTS__EDGE_OBJECTS_KEEP) o->keep_edge = 1;
    if (s->edge_objects == PLANKTON__EDGE_OBJECTS__EDGE_OBJECTS_DROP) o->keep_edge = 0;
    if (s->background == PLANKTON__BACKGROUND_METHOD__BACKGROUND_COLUMN_MEDIAN)
      o->background = PD_SEGMENT_BG_COLUMN_MEDIAN;
    if (s->background == PLANKTON__BACKGROUND_METHOD__BACKGROUND_MORPH)
      o->background = PD_SEGMENT_BG_MORPH;
  }
  o->return_crops = f->return_crops;
  job->top_k = f->top_k == 0 ? default_top_k : clamp_int(f->top_k);
  job->full_distribution = f->full_distribution;
  job->tta = clamp_int(f->tta);
  job->t_recv_ns = now_ns;
  job->deadline_ns = pd_wire_deadline_ns(now_ns, f->deadline_us);
}

/* ---- packing ---- */

uint8_t *pd_wire_frame_error(uint64_t id, int code, const char *msg, size_t *len) {
  Plankton__Status st;
  pd_wire_status(&st, code, msg);
  Plankton__FrameResponse fr = PLANKTON__FRAME_RESPONSE__INIT;
  fr.id = id;
  fr.status = &st;
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_FRAME;
  resp.frame = &fr;
  return pd_wire_pack_response(&resp, len);
}

/* What one object's message points into (freed after packing). */
typedef struct object_parts {
  Plankton__FrameObject obj;
  Plankton__Status st;
  Plankton__ClassScore *scores;
  Plankton__ClassScore **ptrs;
  int *idx;
} object_parts;

static bool fill_object(const pd_frame_job *job, int i, object_parts *op) {
  const pd_segment_object *o = &job->seg.objects[i];
  const pd_request *r = &job->objects[i];
  Plankton__FrameObject *fo = &op->obj;
  plankton__frame_object__init(fo);
  fo->x = (uint32_t)o->x;
  fo->y = (uint32_t)o->y;
  fo->width = (uint32_t)o->width;
  fo->height = (uint32_t)o->height;
  fo->area = (uint64_t)o->area;
  fo->centroid_x = o->cx;
  fo->centroid_y = o->cy;
  fo->major_axis = o->major_axis;
  fo->minor_axis = o->minor_axis;
  fo->orientation_deg = o->orientation_deg;
  fo->mean_gray = o->mean_gray;
  fo->min_gray = (uint32_t)o->min_gray;
  fo->crop_x = (uint32_t)o->crop_x;
  fo->crop_y = (uint32_t)o->crop_y;
  fo->crop_width = (uint32_t)o->crop_width;
  fo->crop_height = (uint32_t)o->crop_height;
  if (job->opt.return_crops && o->crop) {
    fo->crop.data = (uint8_t *)o->crop;
    fo->crop.len = (size_t)o->crop_width * (size_t)o->crop_height;
  }
  pd_wire_status(&op->st, r->status, r->message);
  fo->status = &op->st;
  if (r->status != PD_STATUS_OK || !r->served || !r->probs) return true;
  const pd_model *m = r->served->model;
  int k = r->top_k < m->n_classes ? r->top_k : m->n_classes;
  if (k < 1) k = 1;
  op->idx = malloc((size_t)k * sizeof *op->idx);
  op->scores = malloc((size_t)k * sizeof *op->scores);
  /* an array of pointers: sizeof *ptrs is meant */
  // NOLINTNEXTLINE(bugprone-sizeof-expression)
  op->ptrs = malloc((size_t)k * sizeof *op->ptrs);
  if (!op->idx || !op->scores || !op->ptrs) return false;
  pd_wire_top_indices(r->probs, m->n_classes, k, op->idx);
  for (int c = 0; c < k; c++) {
    plankton__class_score__init(&op->scores[c]);
    op->scores[c].index = (uint32_t)op->idx[c];
    op->scores[c].label = m->classes[op->idx[c]];
    op->scores[c].probability = r->probs[op->idx[c]];
    op->ptrs[c] = &op->scores[c];
  }
  fo->n_top = (size_t)k;
  fo->top = op->ptrs;
  if (r->full_distribution) {
    fo->n_distribution = (size_t)m->n_classes;
    fo->distribution = r->probs;
  }
  return true;
}

uint8_t *pd_wire_frame_answer(const pd_frame_job *job, size_t *len) {
  const int n = job->objects ? job->seg.count : 0;
  if (job->status != PD_STATUS_OK && n == 0)
    return pd_wire_frame_error(job->id, job->status, job->message, len);
  object_parts *parts = n ? calloc((size_t)n, sizeof *parts) : NULL;
  // NOLINTNEXTLINE(bugprone-sizeof-expression)
  Plankton__FrameObject **objs = n ? calloc((size_t)n, sizeof *objs) : NULL;
  bool ok = n == 0 || (parts && objs);
  for (int i = 0; ok && i < n; i++) {
    ok = fill_object(job, i, &parts[i]);
    objs[i] = &parts[i].obj;
  }
  uint8_t *frame = NULL;
  if (ok) {
    Plankton__Status st;
    pd_wire_status(&st, job->status, job->message);
    const pd_segment_stats *ss = &job->seg.stats;
    Plankton__FrameDropped dr = PLANKTON__FRAME_DROPPED__INIT;
    dr.small = (uint64_t)ss->dropped_small;
    dr.large = (uint64_t)ss->dropped_large;
    dr.edge = (uint64_t)ss->dropped_edge;
    dr.cap = (uint64_t)ss->dropped_cap;
    dr.absorbed = (uint64_t)ss->absorbed;
    Plankton__FrameTimings tm = PLANKTON__FRAME_TIMINGS__INIT;
    tm.decode_us = job->decode_ns / 1000;
    tm.segment_us = job->segment_ns / 1000;
    tm.queue_us = job->queue_ns / 1000;
    tm.compute_us = job->compute_ns / 1000;
    Plankton__FrameResponse fr = PLANKTON__FRAME_RESPONSE__INIT;
    fr.id = job->id;
    fr.status = &st;
    fr.n_objects = (size_t)n;
    fr.objects = objs;
    fr.objects_found = ss->found > UINT32_MAX ? UINT32_MAX : (uint32_t)ss->found;
    fr.dropped = &dr;
    fr.timings = &tm;
    if (job->served) {
      fr.model_name = (char *)job->served->model->name;
      fr.model_version = (char *)job->served->model->version;
    }
    fr.width = (uint32_t)job->width;
    fr.height = (uint32_t)job->height;
    Plankton__Response resp = PLANKTON__RESPONSE__INIT;
    resp.body_case = PLANKTON__RESPONSE__BODY_FRAME;
    resp.frame = &fr;
    frame = pd_wire_pack_response(&resp, len);
  }
  for (int i = 0; parts && i < n; i++) {
    free(parts[i].idx);
    free(parts[i].scores);
    free(parts[i].ptrs);
  }
  free(parts);
  free(objs);
  return frame;
}
