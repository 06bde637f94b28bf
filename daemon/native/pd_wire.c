#include "pd_wire.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_frame.h"

Plankton__Request *pd_wire_unpack(const uint8_t *msg, size_t len) {
  return plankton__request__unpack(NULL, len, msg);
}

void pd_wire_free(Plankton__Request *r) {
  if (r) plankton__request__free_unpacked(r, NULL);
}

void pd_wire_classify_input(const Plankton__ClassifyRequest *c, uint64_t now_ns, int default_top_k,
                            pd_request *req) {
  req->id = c->id;
  snprintf(req->model, sizeof req->model, "%s", c->model ? c->model : "");
  if (c->model && strlen(c->model) >= sizeof req->model) /* cannot match any model name */
    snprintf(req->model, sizeof req->model, "%.60s...", c->model);
  req->format = PD_FORMAT_AUTO;
  req->data = NULL;
  req->len = 0;
  if (c->image) {
    req->format = (pd_input_format)c->image->format;
    req->data = c->image->data.data;
    req->len = c->image->data.len;
    req->width = c->image->width > INT_MAX ? INT_MAX : (int)c->image->width;
    req->height = c->image->height > INT_MAX ? INT_MAX : (int)c->image->height;
  }
  req->top_k = c->top_k == 0 ? default_top_k : c->top_k > INT_MAX ? INT_MAX : (int)c->top_k;
  req->full_distribution = c->full_distribution;
  req->tta = c->tta > INT_MAX ? INT_MAX : (int)c->tta;
  req->t_recv_ns = now_ns;
  req->deadline_ns = pd_wire_deadline_ns(now_ns, c->deadline_us);
}

uint64_t pd_wire_deadline_ns(uint64_t now_ns, uint64_t deadline_us) {
  const uint64_t max_us = UINT64_C(1) << 40; /* ~12 days: beyond that, no deadline */
  return deadline_us && deadline_us < max_us ? now_ns + deadline_us * 1000 : 0;
}

/* ---- packing ---- */

uint8_t *pd_wire_pack_response(const Plankton__Response *resp, size_t *len) {
  size_t body = plankton__response__get_packed_size(resp);
  uint8_t *frame = malloc(PD_FRAME_HEADER + body);
  if (!frame) return NULL;
  pd_frame_header(frame, (uint32_t)body);
  plankton__response__pack(resp, frame + PD_FRAME_HEADER);
  *len = PD_FRAME_HEADER + body;
  return frame;
}

void pd_wire_status(Plankton__Status *st, int code, const char *msg) {
  plankton__status__init(st);
  st->code = (Plankton__StatusCode)code;
  st->message = (char *)(msg ? msg : "");
}

uint8_t *pd_wire_classify_error(uint64_t id, int code, const char *msg, size_t *len) {
  Plankton__Status st;
  pd_wire_status(&st, code, msg);
  Plankton__ClassifyResponse cr = PLANKTON__CLASSIFY_RESPONSE__INIT;
  cr.id = id;
  cr.status = &st;
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_CLASSIFY;
  resp.classify = &cr;
  return pd_wire_pack_response(&resp, len);
}

/* Indices of the k largest probabilities, best first (ties: lower index first). */
void pd_wire_top_indices(const float *p, int n, int k, int *out) {
  for (int i = 0; i < k; i++)
    out[i] = -1;
  for (int c = 0; c < n; c++) {
    int pos = k;
    while (pos > 0 && (out[pos - 1] < 0 || p[c] > p[out[pos - 1]]))
      pos--;
    if (pos >= k) continue;
    memmove(out + pos + 1, out + pos, (size_t)(k - pos - 1) * sizeof *out);
    out[pos] = c;
  }
}

uint8_t *pd_wire_classify_answer(const pd_request *req, size_t *len) {
  if (req->status != PD_STATUS_OK || !req->served || !req->probs)
    return pd_wire_classify_error(req->id, req->status, req->message, len);
  const pd_model *m = req->served->model;
  int k = req->top_k < m->n_classes ? req->top_k : m->n_classes;
  if (k < 1) k = 1;
  int *idx = malloc((size_t)k * sizeof *idx);
  Plankton__ClassScore *scores = malloc((size_t)k * sizeof *scores);
  /* an array of pointers: sizeof *ptrs is meant */
  // NOLINTNEXTLINE(bugprone-sizeof-expression)
  Plankton__ClassScore **ptrs = malloc((size_t)k * sizeof *ptrs);
  uint8_t *frame = NULL;
  if (idx && scores && ptrs) {
    pd_wire_top_indices(req->probs, m->n_classes, k, idx);
    for (int i = 0; i < k; i++) {
      plankton__class_score__init(&scores[i]);
      scores[i].index = (uint32_t)idx[i];
      scores[i].label = m->classes[idx[i]];
      scores[i].probability = req->probs[idx[i]];
      ptrs[i] = &scores[i];
    }
    Plankton__Status st;
    pd_wire_status(&st, PD_STATUS_OK, "");
    Plankton__Timings tm = PLANKTON__TIMINGS__INIT;
    tm.queue_us = req->queue_ns / 1000;
    tm.decode_us = req->decode_ns / 1000;
    tm.compute_us = req->compute_ns / 1000;
    tm.batch_size = (uint32_t)req->batch_size;
    tm.tta = (uint32_t)req->views;
    tm.batches_waited = (uint32_t)req->batches_waited;
    Plankton__ClassifyResponse cr = PLANKTON__CLASSIFY_RESPONSE__INIT;
    cr.id = req->id;
    cr.status = &st;
    cr.n_top = (size_t)k;
    cr.top = ptrs;
    if (req->full_distribution) {
      cr.n_distribution = (size_t)m->n_classes;
      cr.distribution = req->probs;
    }
    cr.model_name = (char *)m->name;
    cr.model_version = (char *)m->version;
    cr.timings = &tm;
    if (m->thresholds) { /* below its class's threshold: unclassified, the scores as they are */
      cr.threshold = m->thresholds[idx[0]];
      cr.unclassified = req->probs[idx[0]] < cr.threshold;
    }
    Plankton__Response resp = PLANKTON__RESPONSE__INIT;
    resp.body_case = PLANKTON__RESPONSE__BODY_CLASSIFY;
    resp.classify = &cr;
    frame = pd_wire_pack_response(&resp, len);
  }
  free(idx);
  free(scores);
  free(ptrs);
  return frame;
}

uint8_t *pd_wire_error(int code, const char *msg, size_t *len) {
  Plankton__Status st;
  pd_wire_status(&st, code, msg);
  Plankton__ErrorResponse er = PLANKTON__ERROR_RESPONSE__INIT;
  er.status = &st;
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_ERROR;
  resp.error = &er;
  return pd_wire_pack_response(&resp, len);
}

uint8_t *pd_wire_health(uint64_t id, bool draining, uint64_t failures_in_a_row,
                        const char *out_of_service, const pd_reload_report *reload, size_t *len) {
  Plankton__Status st;
  char msg[700];
  const char *state = "serving";
  if (draining) {
    state = "draining";
    pd_wire_status(&st, PD_STATUS_UNAVAILABLE, "draining: shutting down");
  } else if (out_of_service) {
    state = "failing";
    snprintf(msg, sizeof msg,
             "model out of service since a sticky device error (%.500s); a reload (SIGHUP) makes a "
             "new plan",
             out_of_service);
    pd_wire_status(&st, PD_STATUS_UNAVAILABLE, msg);
  } else if (failures_in_a_row >= PD_HEALTH_FAILING_RUNS) {
    state = "failing";
    snprintf(msg, sizeof msg,
             "the backend failed the last %llu batches (see the log); serving again once one "
             "succeeds",
             (unsigned long long)failures_in_a_row);
    pd_wire_status(&st, PD_STATUS_UNAVAILABLE, msg);
  } else {
    pd_wire_status(&st, PD_STATUS_OK, "");
  }
  Plankton__HealthResponse hr = PLANKTON__HEALTH_RESPONSE__INIT;
  hr.id = id;
  hr.status = &st;
  hr.state = (char *)state;
  if (reload) {
    hr.last_reload_unix = reload->unix_time;
    hr.last_reload_failed = reload->failed != 0;
    hr.last_reload_message = (char *)reload->message;
  }
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_HEALTH;
  resp.health = &hr;
  return pd_wire_pack_response(&resp, len);
}

uint8_t *pd_wire_hello(uint64_t id, const char *daemon_version, uint32_t max_frame_bytes,
                       bool drain_notices, size_t *len) {
  Plankton__Status st;
  pd_wire_status(&st, PD_STATUS_OK, "");
  Plankton__HelloResponse hr = PLANKTON__HELLO_RESPONSE__INIT;
  hr.id = id;
  hr.status = &st;
  hr.protocol_version = 1;
  hr.daemon_version = (char *)daemon_version;
  hr.max_frame_bytes = max_frame_bytes;
  hr.drain_notices = drain_notices;
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_HELLO;
  resp.hello = &hr;
  return pd_wire_pack_response(&resp, len);
}

uint8_t *pd_wire_drain_notice(uint64_t requests_read, const char *msg, size_t *len) {
  Plankton__DrainNotice dn = PLANKTON__DRAIN_NOTICE__INIT;
  dn.requests_read = requests_read;
  dn.message = (char *)(msg ? msg : "");
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_DRAIN;
  resp.drain = &dn;
  return pd_wire_pack_response(&resp, len);
}

uint8_t *pd_wire_stats(uint64_t id, const pd_stats_report *r, const pd_model_counts *models,
                       int n_models, size_t *len) {
  Plankton__Status st;
  pd_wire_status(&st, PD_STATUS_OK, "");
  Plankton__StatusCount counts[PD_STATUS_COUNT], *count_ptrs[PD_STATUS_COUNT];
  size_t n_counts = 0;
  for (int c = 0; c < PD_STATUS_COUNT; c++) {
    if (r->requests[c] == 0 && c != PD_STATUS_OK) continue;
    plankton__status_count__init(&counts[n_counts]);
    counts[n_counts].code = (Plankton__StatusCode)c;
    counts[n_counts].count = r->requests[c];
    count_ptrs[n_counts] = &counts[n_counts];
    n_counts++;
  }
  Plankton__Histogram hists[PD_HIST_COUNT], *hist_ptrs[PD_HIST_COUNT];
  double bounds[PD_HIST_COUNT][PD_HIST_MAX_BOUNDS];
  uint64_t cum[PD_HIST_COUNT][PD_HIST_MAX_BOUNDS];
  for (int h = 0; h < PD_HIST_COUNT; h++) {
    const pd_hist_report *hr = &r->hist[h];
    plankton__histogram__init(&hists[h]);
    hists[h].name = (char *)pd_hist_name((pd_hist_id)h);
    memcpy(bounds[h], hr->bounds, sizeof bounds[h]);
    memcpy(cum[h], hr->cumulative, sizeof cum[h]);
    hists[h].n_bounds = (size_t)hr->n_bounds;
    hists[h].bounds = bounds[h];
    hists[h].n_counts = (size_t)hr->n_bounds;
    hists[h].counts = cum[h];
    hists[h].sum = hr->sum;
    hists[h].count = hr->count;
    hist_ptrs[h] = &hists[h];
  }
  Plankton__StatsResponse sr = PLANKTON__STATS_RESPONSE__INIT;
  sr.id = id;
  sr.status = &st;
  sr.n_requests = n_counts;
  sr.requests = count_ptrs;
  sr.images = r->images;
  sr.batches = r->batches;
  sr.images_per_second = r->images_per_second;
  sr.queue_depth = (uint32_t)r->queue_depth;
  sr.in_flight = (uint32_t)r->in_flight;
  sr.connections = (uint32_t)r->connections;
  sr.connections_total = r->connections_total;
  sr.n_histograms = PD_HIST_COUNT;
  sr.histograms = hist_ptrs;
  sr.model_name = (char *)r->model_name;
  sr.model_version = (char *)r->model_version;
  sr.model_loaded_unix = r->model_loaded_unix;
  sr.model_loads = r->model_loads;
  sr.model_load_failures = r->model_load_failures;
  sr.uptime_seconds = r->uptime_seconds;
  sr.backend = (char *)r->backend;
  sr.broken_frames = r->broken_frames;
  sr.connections_refused = r->connections_refused;
  sr.frame_timeouts = r->frame_timeouts;
  sr.idle_timeouts = r->idle_timeouts;
  sr.accept_errors = r->accept_errors;
  sr.batch_failures = r->batch_failures;
  sr.batch_failures_in_a_row = r->batch_failures_in_a_row;
  sr.receive_buffer_bytes = r->receive_buffer_bytes;
  sr.receive_waits = r->receive_waits;
  sr.requests_cancelled = r->requests_cancelled;
  sr.crops = r->crops;
  sr.tta_adaptive_requests = r->tta_adaptive_requests;
  sr.tta_views = r->tta_views;
  sr.tta_reduced = r->tta_reduced;
  sr.last_reload_unix = r->last_reload.unix_time;
  sr.last_reload_failed = r->last_reload.failed != 0;
  sr.last_reload_message = (char *)r->last_reload.message;
  sr.n_models = pd_wire_model_stats(models, n_models, &sr.models);
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_STATS;
  resp.stats = &sr;
  uint8_t *out = pd_wire_pack_response(&resp, len);
  free(sr.models);
  return out;
}
