/* pc_client_msg: turns a plankton.Response into the public
 * pc_client_response. Owns the decoded message and the small arrays the
 * public view needs; strings point into the message, so the response stays
 * valid until pc_client_response_free. */
#include <stdlib.h>
#include <string.h>

#include "pc_client_internal.h"

typedef struct resp_priv {
  Plankton__Response *msg;
  void *arrays[3];
  pc_client_response *next;
} resp_priv;

pc_client_response *pc_client__response_next(pc_client_response *r) {
  return ((resp_priv *)r->priv_)->next;
}

void pc_client__response_set_next(pc_client_response *r, pc_client_response *next) {
  ((resp_priv *)r->priv_)->next = next;
}

void pc_client_response_free(pc_client_response *r) {
  if (!r) return;
  resp_priv *p = r->priv_;
  if (p) {
    if (p->msg) plankton__response__free_unpacked(p->msg, NULL);
    for (int i = 0; i < 3; i++)
      free(p->arrays[i]);
    free(p);
  }
  free(r);
}

static void set_status(pc_client_response *r, const Plankton__Status *st) {
  r->status = st ? (int)st->code : 0;
  r->message = st && st->message ? st->message : "";
}

static int fill_classify(pc_client_response *r, resp_priv *p, const Plankton__ClassifyResponse *m) {
  r->id = m->id;
  set_status(r, m->status);
  pc_client_classify_result *c = &r->u.classify;
  if (m->n_top) {
    pc_client_class_score *top = calloc(m->n_top, sizeof *top);
    if (!top) return -1;
    for (size_t i = 0; i < m->n_top; i++) {
      top[i].index = m->top[i]->index;
      top[i].label = m->top[i]->label;
      top[i].probability = m->top[i]->probability;
    }
    p->arrays[0] = top;
    c->top = top;
    c->n_top = m->n_top;
  }
  c->n_distribution = m->n_distribution;
  c->distribution = m->distribution;
  c->model_name = m->model_name;
  c->model_version = m->model_version;
  c->unclassified = m->unclassified;
  c->threshold = m->threshold;
  if (m->timings) {
    c->queue_us = m->timings->queue_us;
    c->decode_us = m->timings->decode_us;
    c->compute_us = m->timings->compute_us;
    c->batch_size = m->timings->batch_size;
    c->tta = m->timings->tta;
  }
  return 0;
}

/* The objects and every object's scores: arrays[0] and arrays[2]. */
static int fill_frame(pc_client_response *r, resp_priv *p, const Plankton__FrameResponse *m) {
  r->id = m->id;
  set_status(r, m->status);
  pc_client_frame_result *f = &r->u.frame;
  f->objects_found = m->objects_found;
  f->width = m->width;
  f->height = m->height;
  if (m->dropped) {
    f->dropped_small = m->dropped->small;
    f->dropped_large = m->dropped->large;
    f->dropped_edge = m->dropped->edge;
    f->dropped_cap = m->dropped->cap;
    f->absorbed = m->dropped->absorbed;
  }
  if (m->timings) {
    f->decode_us = m->timings->decode_us;
    f->segment_us = m->timings->segment_us;
    f->queue_us = m->timings->queue_us;
    f->compute_us = m->timings->compute_us;
  }
  f->model_name = m->model_name ? m->model_name : "";
  f->model_version = m->model_version ? m->model_version : "";
  if (!m->n_objects) return 0;
  size_t n_scores = 0;
  for (size_t i = 0; i < m->n_objects; i++)
    n_scores += m->objects[i]->n_top;
  pc_client_frame_object *objs = calloc(m->n_objects, sizeof *objs);
  pc_client_class_score *scores = n_scores ? calloc(n_scores, sizeof *scores) : NULL;
  p->arrays[0] = objs;
  p->arrays[2] = scores;
  if (!objs || (n_scores && !scores)) return -1;
  size_t at = 0;
  for (size_t i = 0; i < m->n_objects; i++) {
    const Plankton__FrameObject *o = m->objects[i];
    pc_client_frame_object *d = &objs[i];
    d->x = o->x;
    d->y = o->y;
    d->width = o->width;
    d->height = o->height;
    d->area = o->area;
    d->centroid_x = o->centroid_x;
    d->centroid_y = o->centroid_y;
    d->major_axis = o->major_axis;
    d->minor_axis = o->minor_axis;
    d->orientation_deg = o->orientation_deg;
    d->mean_gray = o->mean_gray;
    d->min_gray = o->min_gray;
    d->crop_x = o->crop_x;
    d->crop_y = o->crop_y;
    d->crop_width = o->crop_width;
    d->crop_height = o->crop_height;
    d->status = o->status ? (int)o->status->code : 0;
    d->message = o->status && o->status->message ? o->status->message : "";
    d->top = scores ? scores + at : NULL;
    d->n_top = o->n_top;
    for (size_t k = 0; scores && k < o->n_top; k++, at++) {
      scores[at].index = o->top[k]->index;
      scores[at].label = o->top[k]->label;
      scores[at].probability = o->top[k]->probability;
    }
    d->n_distribution = o->n_distribution;
    d->distribution = o->distribution;
    d->crop = o->crop.len ? o->crop.data : NULL;
    d->crop_len = o->crop.len;
  }
  f->objects = objs;
  f->n_objects = m->n_objects;
  return 0;
}

static int fill_stats(pc_client_response *r, resp_priv *p, const Plankton__StatsResponse *m) {
  r->id = m->id;
  set_status(r, m->status);
  pc_client_stats_result *s = &r->u.stats;
  for (size_t i = 0; i < m->n_requests; i++)
    if ((unsigned)m->requests[i]->code < 17)
      s->requests_by_status[m->requests[i]->code] = m->requests[i]->count;
  s->images = m->images;
  s->batches = m->batches;
  s->connections_total = m->connections_total;
  s->broken_frames = m->broken_frames;
  s->model_loads = m->model_loads;
  s->model_load_failures = m->model_load_failures;
  s->images_per_second = m->images_per_second;
  s->uptime_seconds = m->uptime_seconds;
  s->queue_depth = m->queue_depth;
  s->in_flight = m->in_flight;
  s->connections = m->connections;
  s->model_name = m->model_name;
  s->model_version = m->model_version;
  s->backend = m->backend;
  s->model_loaded_unix = m->model_loaded_unix;
  s->connections_refused = m->connections_refused;
  s->frame_timeouts = m->frame_timeouts;
  s->idle_timeouts = m->idle_timeouts;
  s->accept_errors = m->accept_errors;
  s->batch_failures = m->batch_failures;
  s->batch_failures_in_a_row = m->batch_failures_in_a_row;
  s->receive_buffer_bytes = m->receive_buffer_bytes;
  s->receive_waits = m->receive_waits;
  s->requests_cancelled = m->requests_cancelled;
  s->crops = m->crops;
  s->tta_adaptive_requests = m->tta_adaptive_requests;
  s->tta_views = m->tta_views;
  s->tta_reduced = m->tta_reduced;
  s->last_reload_unix = m->last_reload_unix;
  s->last_reload_failed = m->last_reload_failed;
  s->last_reload_message = m->last_reload_message ? m->last_reload_message : "";
  if (m->n_histograms) {
    pc_client_histogram *h = calloc(m->n_histograms, sizeof *h);
    if (!h) return -1;
    for (size_t i = 0; i < m->n_histograms; i++) {
      const Plankton__Histogram *src = m->histograms[i];
      h[i].name = src->name;
      h[i].n_bounds = src->n_bounds < src->n_counts ? src->n_bounds : src->n_counts;
      h[i].bounds = src->bounds;
      h[i].counts = src->counts;
      h[i].sum = src->sum;
      h[i].count = src->count;
    }
    p->arrays[0] = h;
    s->histograms = h;
    s->n_histograms = m->n_histograms;
  }
  if (m->n_models) {
    pc_client_model_stats *ms = calloc(m->n_models, sizeof *ms);
    if (!ms) return -1;
    for (size_t i = 0; i < m->n_models; i++) {
      const Plankton__ModelStats *src = m->models[i];
      ms[i].name = src->name;
      ms[i].version = src->version;
      for (size_t k = 0; k < src->n_requests; k++)
        if ((unsigned)src->requests[k]->code < 17)
          ms[i].requests_by_status[src->requests[k]->code] = src->requests[k]->count;
      ms[i].images = src->images;
      ms[i].request_seconds = src->request_seconds;
      ms[i].queue_seconds = src->queue_seconds;
      ms[i].compute_seconds = src->compute_seconds;
    }
    p->arrays[1] = ms;
    s->models = ms;
    s->n_models = m->n_models;
  }
  return 0;
}

static int fill_models(pc_client_response *r, resp_priv *p, const Plankton__ModelInfoResponse *m) {
  r->id = m->id;
  set_status(r, m->status);
  if (!m->n_models) return 0;
  pc_client_model *models = calloc(m->n_models, sizeof *models);
  if (!models) return -1;
  p->arrays[0] = models;
  for (size_t i = 0; i < m->n_models; i++) {
    const Plankton__ModelInfo *src = m->models[i];
    models[i].name = src->name;
    models[i].version = src->version;
    models[i].symmetry = src->symmetry;
    models[i].dir = src->dir;
    models[i].n_classes = src->n_classes;
    models[i].classes = (const char *const *)src->classes;
    models[i].default_tta = src->default_tta;
    models[i].max_batch = src->max_batch;
    models[i].parameters = src->parameters;
    models[i].is_default = src->is_default;
    models[i].ready = src->ready;
    models[i].error = src->error;
    models[i].latest = src->latest;
    models[i].n_thresholds = src->n_thresholds == src->n_classes ? src->n_thresholds : 0;
    models[i].thresholds = src->thresholds;
    models[i].n_lineage = src->n_lineage == src->n_classes ? src->n_lineage : 0;
    models[i].lineage = (const char *const *)src->lineage;
  }
  r->u.model_info.models = models;
  r->u.model_info.n_models = m->n_models;
  return 0;
}

pc_client_response *pc_client__synth(pc_client_response_kind kind, uint64_t id, int status,
                                     const char *msg) {
  pc_client_response *r = calloc(1, sizeof *r);
  resp_priv *p = calloc(1, sizeof *p);
  char *text = strdup(msg ? msg : "");
  if (!r || !p || !text) {
    free(r);
    free(p);
    free(text);
    return NULL;
  }
  p->arrays[1] = text;
  r->priv_ = p;
  r->kind = kind;
  r->id = id;
  r->status = status;
  r->message = text;
  if (kind == PC_CLIENT_RESPONSE_HEALTH) r->u.health.state = r->u.health.last_reload_message = "";
  return r;
}

pc_client_response *pc_client__decode(const uint8_t *msg, size_t len, int *oom) {
  *oom = 0;
  Plankton__Response *m = plankton__response__unpack(NULL, len, msg);
  if (!m) return NULL;
  pc_client_response *r = calloc(1, sizeof *r);
  resp_priv *p = calloc(1, sizeof *p);
  if (!r || !p) {
    free(r);
    free(p);
    plankton__response__free_unpacked(m, NULL);
    *oom = 1;
    return NULL;
  }
  p->msg = m;
  r->priv_ = p;
  r->message = "";
  int rc = 0;
  switch (m->body_case) {
  case PLANKTON__RESPONSE__BODY_CLASSIFY:
    r->kind = PC_CLIENT_RESPONSE_CLASSIFY;
    rc = fill_classify(r, p, m->classify);
    break;
  case PLANKTON__RESPONSE__BODY_FRAME:
    r->kind = PC_CLIENT_RESPONSE_FRAME;
    rc = fill_frame(r, p, m->frame);
    break;
  case PLANKTON__RESPONSE__BODY_STATS:
    r->kind = PC_CLIENT_RESPONSE_STATS;
    rc = fill_stats(r, p, m->stats);
    break;
  case PLANKTON__RESPONSE__BODY_HEALTH:
    r->kind = PC_CLIENT_RESPONSE_HEALTH;
    r->id = m->health->id;
    set_status(r, m->health->status);
    r->u.health.state = m->health->state;
    r->u.health.last_reload_unix = m->health->last_reload_unix;
    r->u.health.last_reload_failed = m->health->last_reload_failed;
    r->u.health.last_reload_message =
        m->health->last_reload_message ? m->health->last_reload_message : "";
    break;
  case PLANKTON__RESPONSE__BODY_MODEL_INFO:
    r->kind = PC_CLIENT_RESPONSE_MODEL_INFO;
    rc = fill_models(r, p, m->model_info);
    break;
  case PLANKTON__RESPONSE__BODY_MODEL_CONTROL:
    r->kind = PC_CLIENT_RESPONSE_MODEL_CONTROL;
    r->id = m->model_control->id;
    set_status(r, m->model_control->status);
    r->u.model_control.model = m->model_control->model ? m->model_control->model : "";
    r->u.model_control.n_versions = m->model_control->n_versions;
    r->u.model_control.versions = (const char *const *)m->model_control->versions;
    break;
  case PLANKTON__RESPONSE__BODY_ERROR:
    r->kind = PC_CLIENT_RESPONSE_ERROR;
    r->id = m->error->id;
    set_status(r, m->error->status);
    break;
  case PLANKTON__RESPONSE__BODY_DRAIN: /* its id: the requests the daemon read and answers */
    r->kind = PC_CLIENT__RESPONSE_DRAIN;
    r->id = m->drain->requests_read;
    r->message = m->drain->message ? m->drain->message : "";
    break;
  case PLANKTON__RESPONSE__BODY_HELLO:
    r->kind = PC_CLIENT__RESPONSE_HELLO;
    r->id = m->hello->id;
    set_status(r, m->hello->status);
    break;
  default: /* a body this library does not know */
    pc_client_response_free(r);
    return NULL;
  }
  if (rc != 0) {
    pc_client_response_free(r);
    *oom = 1;
    return NULL;
  }
  return r;
}
