#include "pd_stats.h"

#include <string.h>

static const double latency_bounds[] = {50,     100,   250,   500,   1000,   2500,
                                        5000,   10000, 25000, 50000, 100000, 250000,
                                        500000, 1e6,   2.5e6, 5e6,   10e6};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *pd_hist_name(pd_hist_id h) {
  static const char *const names[PD_HIST_COUNT] = {"queue_us",   "decode_us",  "compute_us",
                                                   "request_us", "batch_size", "segment_us"};
  return h >= 0 && h < PD_HIST_COUNT ? names[h] : "?";
}

void pd_stats_init(pd_stats *s) {
  memset(s, 0, sizeof *s);
  for (int h = 0; h < PD_HIST_COUNT; h++) {
    s->hist[h].bounds = h == PD_HIST_BATCH ? batch_bounds : latency_bounds;
    s->hist[h].n_bounds = h == PD_HIST_BATCH ? COUNT_OF(batch_bounds) : COUNT_OF(latency_bounds);
  }
  s->start_ns = pd_now_ns();
}

void pd_stats_observe(pd_stats *s, pd_hist_id h, uint64_t value) {
  pd_histogram *hg = &s->hist[h];
  int i = 0;
  while (i < hg->n_bounds && (double)value > hg->bounds[i])
    i++;
  atomic_fetch_add_explicit(&hg->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&hg->sum, value, memory_order_relaxed);
  atomic_fetch_add_explicit(&hg->count, 1, memory_order_relaxed);
}

void pd_stats_request_done(pd_stats *s, const pd_request *req, uint64_t now_ns) {
  int code = req->status >= 0 && req->status < PD_STATUS_COUNT ? (int)req->status : 2;
  atomic_fetch_add_explicit(&s->requests[code], 1, memory_order_relaxed);
  if (req->t_recv_ns) pd_stats_observe(s, PD_HIST_REQUEST, (now_ns - req->t_recv_ns) / 1000);
  if (req->status == PD_STATUS_OK) {
    pd_stats_observe(s, PD_HIST_QUEUE, req->queue_ns / 1000);
    pd_stats_observe(s, PD_HIST_DECODE, req->decode_ns / 1000);
  }
}

void pd_stats_frame_done(pd_stats *s, pd_status status, uint64_t objects, const uint64_t dropped[4],
                         uint64_t segment_ns) {
  int code = status >= 0 && status < PD_STATUS_COUNT ? (int)status : 2;
  atomic_fetch_add_explicit(&s->frames[code], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->frame_objects, objects, memory_order_relaxed);
  for (int i = 0; i < 4; i++)
    atomic_fetch_add_explicit(&s->frame_dropped[i], dropped[i], memory_order_relaxed);
  if (segment_ns) pd_stats_observe(s, PD_HIST_SEGMENT, segment_ns / 1000);
}

const char *pd_stats_frame_filter(int i) {
  static const char *const names[4] = {"small", "large", "edge", "cap"};
  return i >= 0 && i < 4 ? names[i] : "?";
}

void pd_stats_tick(pd_stats *s, uint64_t now_ns) {
  s->rate_t[s->rate_pos] = now_ns;
  s->rate_images[s->rate_pos] = atomic_load(&s->images);
  s->rate_pos = (s->rate_pos + 1) % PD_RATE_SAMPLES;
  if (s->rate_n < PD_RATE_SAMPLES) s->rate_n++;
}

/* Rate over the sampled window, extended to now. */
static double images_rate(const pd_stats *s, uint64_t now_ns, uint64_t images_now) {
  if (s->rate_n == 0) {
    double dt = (double)(now_ns - s->start_ns) * 1e-9;
    return dt > 0 ? (double)images_now / dt : 0.0;
  }
  int oldest = s->rate_n < PD_RATE_SAMPLES ? 0 : s->rate_pos;
  double dt = (double)(now_ns - s->rate_t[oldest]) * 1e-9;
  return dt > 0 ? (double)(images_now - s->rate_images[oldest]) / dt : 0.0;
}

void pd_stats_report_fill(pd_stats *s, uint64_t now_ns, pd_stats_report *r) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < PD_STATUS_COUNT; i++)
    r->requests[i] = atomic_load(&s->requests[i]);
  r->images = atomic_load(&s->images);
  r->batches = atomic_load(&s->batches);
  r->crops = atomic_load(&s->crops);
  r->connections_total = atomic_load(&s->connections_total);
  r->broken_frames = atomic_load(&s->broken_frames);
  r->model_loads = atomic_load(&s->model_loads);
  r->model_load_failures = atomic_load(&s->model_load_failures);
  r->batch_failures = atomic_load(&s->batch_failures);
  r->batch_failures_in_a_row = atomic_load(&s->batch_failures_in_a_row);
  r->device_errors = atomic_load(&s->device_errors);
  r->batches_overlapped = atomic_load(&s->batches_overlapped);
  r->requests_cancelled = atomic_load(&s->requests_cancelled);
  r->tta_adaptive_requests = atomic_load(&s->tta_adaptive_requests);
  r->tta_views = atomic_load(&s->tta_views);
  r->tta_reduced = atomic_load(&s->tta_reduced);
  r->connections_refused = atomic_load(&s->connections_refused);
  r->frame_timeouts = atomic_load(&s->frame_timeouts);
  r->idle_timeouts = atomic_load(&s->idle_timeouts);
  r->accept_errors = atomic_load(&s->accept_errors);
  r->connections = atomic_load(&s->connections);
  r->in_flight = atomic_load(&s->in_flight);
  for (int i = 0; i < PD_STATUS_COUNT; i++)
    r->frames[i] = atomic_load(&s->frames[i]);
  r->frame_objects = atomic_load(&s->frame_objects);
  for (int i = 0; i < 4; i++)
    r->frame_dropped[i] = atomic_load(&s->frame_dropped[i]);
  for (int h = 0; h < PD_HIST_COUNT; h++) {
    pd_histogram *hg = &s->hist[h];
    pd_hist_report *hr = &r->hist[h];
    hr->n_bounds = hg->n_bounds;
    uint64_t run = 0;
    for (int i = 0; i < hg->n_bounds; i++) {
      hr->bounds[i] = hg->bounds[i];
      run += atomic_load(&hg->buckets[i]);
      hr->cumulative[i] = run;
    }
    /* the count is the +Inf bucket, so that the two always agree */
    run += atomic_load(&hg->buckets[hg->n_bounds]);
    hr->count = run;
    hr->sum = (double)atomic_load(&hg->sum);
  }
  r->images_per_second = images_rate(s, now_ns, r->images);
  r->uptime_seconds = (double)(now_ns - s->start_ns) * 1e-9;
}
