/* pd_stats: the daemon's counters, gauges and histograms. Owns their values
 * (atomics, so the loop, the decode pool and the engine thread record
 * without locks) and the images-per-second estimate. A report is a plain
 * snapshot that the Stats answer and the /metrics page are both made from;
 * the fields the stats do not own (model, backend, queue depth) are filled
 * by whoever assembles the report. */
#ifndef PD_STATS_H
#define PD_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "pd_request.h"

typedef enum {
  PD_HIST_QUEUE = 0, /* us: waiting for a decode thread and in the batch queue */
  PD_HIST_DECODE,    /* us: decode + preprocess */
  PD_HIST_COMPUTE,   /* us: per batch */
  PD_HIST_REQUEST,   /* us: receipt to answer, every classify request */
  PD_HIST_BATCH,     /* images per batch */
  PD_HIST_SEGMENT,   /* us: a frame's decode + segmentation (pd_frame_job) */
  PD_HIST_COUNT
} pd_hist_id;

#define PD_HIST_MAX_BOUNDS 20
#define PD_RATE_SAMPLES 11

typedef struct pd_histogram {
  const double *bounds;
  int n_bounds;
  atomic_uint_fast64_t buckets[PD_HIST_MAX_BOUNDS + 1]; /* last: above every bound */
  atomic_uint_fast64_t sum, count;
} pd_histogram;

typedef struct pd_stats {
  atomic_uint_fast64_t requests[PD_STATUS_COUNT];
  atomic_uint_fast64_t images, batches;
  atomic_uint_fast64_t crops; /* classify requests computed (images counts their TTA views) */
  atomic_uint_fast64_t connections_total, broken_frames;
  atomic_uint_fast64_t model_loads, model_load_failures;
  atomic_uint_fast64_t batch_failures; /* network runs the backend failed */
  atomic_uint_fast64_t device_errors;  /* of them, sticky device errors (PD_EDEVICE) */
  /* batches staged into the free input slot while another was in flight */
  atomic_uint_fast64_t batches_overlapped;
  /* failed runs since the last one that succeeded: at PD_HEALTH_FAILING_RUNS
   * or more, Health says "failing" (a device that stays broken) */
  atomic_uint_fast64_t batch_failures_in_a_row;
  /* classify requests dropped before they were computed because their
   * client left (pd_pipeline_cancel); also counted as CANCELLED */
  atomic_uint_fast64_t requests_cancelled;
  /* batching.adaptive_tta: requests answered whose views it chose, their
   * views, and those of them that got fewer than the model's default */
  atomic_uint_fast64_t tta_adaptive_requests, tta_views, tta_reduced;
  /* connections closed by the daemon's limits: over limits.max_connections,
   * a frame not complete within limits.frame_timeout_ms, silent longer than
   * limits.idle_timeout_s; and accepts that failed (out of descriptors) */
  atomic_uint_fast64_t connections_refused, frame_timeouts, idle_timeouts, accept_errors;
  atomic_int_fast64_t connections, in_flight;
  /* frame requests answered, by status; the objects classified from them;
   * the objects the filters dropped (pd_stats_frame_filter order) */
  atomic_uint_fast64_t frames[PD_STATUS_COUNT], frame_objects, frame_dropped[4];
  pd_histogram hist[PD_HIST_COUNT];
  uint64_t start_ns;
  /* images-per-second samples, one per tick (loop thread only) */
  uint64_t rate_t[PD_RATE_SAMPLES], rate_images[PD_RATE_SAMPLES];
  int rate_n, rate_pos;
} pd_stats;

void pd_stats_init(pd_stats *s);
void pd_stats_observe(pd_stats *s, pd_hist_id h, uint64_t value);
/* Records one answered classify request (status, and its timings when OK). */
void pd_stats_request_done(pd_stats *s, const pd_request *req, uint64_t now_ns);
/* Records one answered frame request: its status, the objects answered,
 * the four filters' drops (small, large, edge, cap) and, when it was
 * segmented, its decode + segmentation time. */
void pd_stats_frame_done(pd_stats *s, pd_status status, uint64_t objects, const uint64_t dropped[4],
                         uint64_t segment_ns);
/* The filters in frame_dropped's order: "small", "large", "edge", "cap". */
const char *pd_stats_frame_filter(int i);
/* Call about once a second from one thread: samples the image counter. */
void pd_stats_tick(pd_stats *s, uint64_t now_ns);

const char *pd_hist_name(pd_hist_id h);

typedef struct pd_hist_report {
  int n_bounds;
  double bounds[PD_HIST_MAX_BOUNDS];
  uint64_t cumulative[PD_HIST_MAX_BOUNDS]; /* observations <= bounds[i] */
  uint64_t count;
  double sum;
} pd_hist_report;

/* The last SIGHUP reload's result (kept by whoever reloads). */
typedef struct pd_reload_report {
  int64_t unix_time; /* when it finished; 0: none since start */
  int failed;
  uint64_t failures; /* reloads that failed since start */
  char message[512]; /* what failed, naming the file:line or the model; "" when ok */
} pd_reload_report;

typedef struct pd_stats_report {
  uint64_t requests[PD_STATUS_COUNT];
  uint64_t images, batches, connections_total, broken_frames, model_loads, model_load_failures;
  uint64_t crops;
  uint64_t batch_failures, connections_refused, frame_timeouts, idle_timeouts, accept_errors;
  uint64_t batch_failures_in_a_row;
  uint64_t device_errors;
  uint64_t batches_overlapped;
  uint64_t requests_cancelled;
  uint64_t tta_adaptive_requests, tta_views, tta_reduced;
  uint64_t frames[PD_STATUS_COUNT], frame_objects, frame_dropped[4];
  int64_t connections, in_flight;
  pd_hist_report hist[PD_HIST_COUNT];
  double images_per_second, uptime_seconds;
  /* filled by the caller */
  int queue_depth;
  uint64_t receive_buffer_bytes, receive_waits; /* limits.max_receive_bytes (pd_conn.h) */
  char model_name[64], model_version[64], backend[16];
  char precision[8], cpu_features[160], kernels[1024]; /* of the plan (pd_served.h) */
  char on_device_error[8], device_state[16]; /* pd_served_on_device_error, _device_state_name */
  char cuda_options[384];                    /* pd_served.cuda_options */
  int64_t model_loaded_unix;
  int draining;
  pd_reload_report last_reload;
} pd_stats_report;

void pd_stats_report_fill(pd_stats *s, uint64_t now_ns, pd_stats_report *r);

#endif
