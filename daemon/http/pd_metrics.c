#include "pd_metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct text {
  char *buf;
  size_t len, cap;
  bool oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  if (t->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = true;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap * 2 + (size_t)n + 1;
    char *nb = realloc(t->buf, cap);
    if (!nb) {
      t->oom = true;
      return;
    }
    t->buf = nb;
    t->cap = cap;
  }
}

/* A label value with \, " and newline escaped. */
static const char *label(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 3 < cap; s++) {
    if (*s == '\\' || *s == '"') {
      out[o++] = '\\';
      out[o++] = *s;
    } else if (*s == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else {
      out[o++] = *s;
    }
  }
  out[o] = '\0';
  return out;
}

static void head(text *t, const char *name, const char *type, const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(text *t, const char *name, const char *help, unsigned long long v) {
  head(t, name, "counter", help);
  put(t, "%s %llu\n", name, v);
}

static void gauge(text *t, const char *name, const char *help, double v) {
  head(t, name, "gauge", help);
  put(t, "%s %.17g\n", name, v);
}

/* scale: 1e-6 turns microseconds into seconds; 1 leaves counts alone. */
static void histogram(text *t, const char *name, const char *help, const pd_hist_report *h,
                      double scale) {
  head(t, name, "histogram", help);
  for (int i = 0; i < h->n_bounds; i++)
    put(t, "%s_bucket{le=\"%.9g\"} %llu\n", name, h->bounds[i] * scale,
        (unsigned long long)h->cumulative[i]);
  put(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
  put(t, "%s_sum %.17g\n", name, h->sum * scale);
  put(t, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* The standard process_* metrics, with the Prometheus client libraries'
 * names and types. */
static void process(text *t, const pd_process_stats *p) {
  head(t, "process_cpu_seconds_total", "counter",
       "Total user and system CPU time spent in seconds.");
  put(t, "process_cpu_seconds_total %.17g\n", p->cpu_seconds);
  gauge(t, "process_open_fds", "Number of open file descriptors.", p->open_fds);
  gauge(t, "process_max_fds", "Maximum number of open file descriptors.", p->max_fds);
  gauge(t, "process_virtual_memory_bytes", "Virtual memory size in bytes.", p->virtual_bytes);
  gauge(t, "process_resident_memory_bytes", "Resident memory size in bytes.", p->resident_bytes);
  gauge(t, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        p->start_time_seconds);
}

char *pd_metrics_render(const pd_stats_report *r, const pd_process_stats *proc, size_t *len) {
  text t = {.cap = 8192};
  t.buf = malloc(t.cap);
  if (!t.buf) return NULL;
  t.buf[0] = '\0';

  head(&t, "planktond_inference_request_total", "counter",
       "Classify requests answered, by gRPC status.");
  unsigned long long ok = 0, failed = 0;
  for (int c = 0; c < PD_STATUS_COUNT; c++) {
    if (c == PD_STATUS_OK)
      ok = r->requests[c];
    else
      failed += r->requests[c];
    if (r->requests[c] || c == PD_STATUS_OK)
      put(&t, "planktond_inference_request_total{status=\"%s\"} %llu\n", pd_status_name(c),
          (unsigned long long)r->requests[c]);
  }
  counter(&t, "planktond_inference_request_success_total", "Classify requests answered OK.", ok);
  counter(&t, "planktond_inference_request_failure_total",
          "Classify requests answered with an error status.", failed);
  counter(&t, "planktond_inference_count_total",
          "Images run through the network (TTA transforms count each).",
          (unsigned long long)r->images);
  counter(&t, "planktond_inference_crops_total",
          "Crops classified: classify requests computed, once each whatever their TTA views.",
          (unsigned long long)r->crops);
  counter(&t, "planktond_inference_exec_count_total",
          "Network executions (batches); average batch = inference_count / exec_count.",
          (unsigned long long)r->batches);
  gauge(&t, "planktond_inference_images_per_second",
        "Images computed per second over the last ten seconds.", r->images_per_second);
  histogram(&t, "planktond_inference_queue_duration_seconds",
            "Time a request waited for a decode thread and in the batch queue.",
            &r->hist[PD_HIST_QUEUE], 1e-6);
  histogram(&t, "planktond_inference_decode_duration_seconds",
            "Image decode and preprocessing time per request.", &r->hist[PD_HIST_DECODE], 1e-6);
  histogram(&t, "planktond_inference_compute_infer_duration_seconds", "Network time per batch.",
            &r->hist[PD_HIST_COMPUTE], 1e-6);
  histogram(&t, "planktond_inference_request_duration_seconds",
            "Receipt to answer, every classify request.", &r->hist[PD_HIST_REQUEST], 1e-6);
  histogram(&t, "planktond_inference_batch_size", "Images per network execution.",
            &r->hist[PD_HIST_BATCH], 1.0);
  gauge(&t, "planktond_inference_pending_requests", "Requests decoded and waiting for the engine.",
        r->queue_depth);
  head(&t, "planktond_frame_request_total", "counter",
       "Frame requests answered (any front end), by gRPC status.");
  for (int c = 0; c < PD_STATUS_COUNT; c++)
    if (r->frames[c] || c == PD_STATUS_OK)
      put(&t, "planktond_frame_request_total{status=\"%s\"} %llu\n", pd_status_name(c),
          (unsigned long long)r->frames[c]);
  counter(&t, "planktond_frame_objects_total",
          "Objects of answered frames sent to the model (also in inference_request_total).",
          (unsigned long long)r->frame_objects);
  head(&t, "planktond_frame_objects_dropped_total", "counter",
       "Objects found in frames and dropped, by the filter that dropped them.");
  for (int i = 0; i < 4; i++)
    put(&t, "planktond_frame_objects_dropped_total{filter=\"%s\"} %llu\n", pd_stats_frame_filter(i),
        (unsigned long long)r->frame_dropped[i]);
  histogram(&t, "planktond_frame_segment_duration_seconds",
            "A frame's decode and segmentation time (the thread pool).", &r->hist[PD_HIST_SEGMENT],
            1e-6);
  counter(&t, "planktond_requests_cancelled_total",
          "Classify requests dropped before they were computed: their client closed its "
          "connection (also in request_total{status=\"CANCELLED\"}).",
          (unsigned long long)r->requests_cancelled);
  counter(&t, "planktond_tta_adaptive_requests_total",
          "Classify requests answered OK whose TTA views batching.adaptive_tta chose (they "
          "gave no tta of their own).",
          (unsigned long long)r->tta_adaptive_requests);
  counter(&t, "planktond_tta_views_total",
          "TTA views computed for those requests; mean views = this / "
          "tta_adaptive_requests_total.",
          (unsigned long long)r->tta_views);
  counter(&t, "planktond_tta_reduced_total",
          "Of those requests, the ones given fewer views than the model's default (the queue "
          "was behind).",
          (unsigned long long)r->tta_reduced);
  gauge(&t, "planktond_inference_in_flight_requests",
        "Classify requests accepted and not yet answered.", (double)r->in_flight);
  gauge(&t, "planktond_connections", "Open client connections.", (double)r->connections);
  counter(&t, "planktond_connections_opened_total", "Client connections accepted.",
          (unsigned long long)r->connections_total);
  counter(&t, "planktond_broken_frames_total",
          "Connections closed over an oversize or undecodable frame.",
          (unsigned long long)r->broken_frames);
  head(&t, "planktond_connections_closed_by_limit_total", "counter",
       "Connections the daemon refused or closed over a limit.");
  put(&t, "planktond_connections_closed_by_limit_total{limit=\"max_connections\"} %llu\n",
      (unsigned long long)r->connections_refused);
  put(&t, "planktond_connections_closed_by_limit_total{limit=\"frame_timeout\"} %llu\n",
      (unsigned long long)r->frame_timeouts);
  put(&t, "planktond_connections_closed_by_limit_total{limit=\"idle_timeout\"} %llu\n",
      (unsigned long long)r->idle_timeouts);
  gauge(&t, "planktond_receive_buffer_bytes",
        "Receive-buffer bytes beyond each connection's first 256 KiB (bounded by "
        "limits.max_receive_bytes).",
        (double)r->receive_buffer_bytes);
  counter(&t, "planktond_receive_waits_total",
          "Times a connection stopped being read until receive-buffer memory was free.",
          (unsigned long long)r->receive_waits);
  counter(&t, "planktond_accept_errors_total",
          "Failed accepts (e.g. out of file descriptors: waiting connections are closed).",
          (unsigned long long)r->accept_errors);
  counter(&t, "planktond_inference_exec_failure_total",
          "Network executions (batches) the backend failed; their requests got INTERNAL.",
          (unsigned long long)r->batch_failures);
  counter(&t, "planktond_device_errors_total",
          "Sticky device errors the backend reported (engine.on_device_error says what followed).",
          (unsigned long long)r->device_errors);
  counter(&t, "planktond_batches_overlapped_total",
          "Batches gathered into the free input slot while the previous batch computed.",
          (unsigned long long)r->batches_overlapped);
  gauge(&t, "planktond_inference_failures_in_a_row",
        "Batches failed since the last one that succeeded (3 or more: Health says failing).",
        (double)r->batch_failures_in_a_row);
  char name[160], version[160], backend[64];
  head(&t, "planktond_model_info", "gauge", "The model being served (value 1).");
  put(&t, "planktond_model_info{model=\"%s\",version=\"%s\",backend=\"%s\"} 1\n",
      label(r->model_name, name, sizeof name), label(r->model_version, version, sizeof version),
      label(r->backend, backend, sizeof backend));
  gauge(&t, "planktond_model_load_timestamp_seconds",
        "When the served model was loaded, seconds since the epoch.", (double)r->model_loaded_unix);
  counter(&t, "planktond_model_loads_total", "Successful model loads, start-up included.",
          (unsigned long long)r->model_loads);
  counter(&t, "planktond_model_load_failures_total",
          "Model loads that failed (the previous model kept serving).",
          (unsigned long long)r->model_load_failures);
  gauge(&t, "planktond_last_reload_success",
        "1 unless the last SIGHUP reload failed (then the previous settings and model serve).",
        r->last_reload.failed ? 0.0 : 1.0);
  gauge(&t, "planktond_last_reload_timestamp_seconds",
        "When the last SIGHUP reload finished, seconds since the epoch (0: none since start).",
        (double)r->last_reload.unix_time);
  char why[1100];
  head(&t, "planktond_last_reload_info", "gauge",
       "The last SIGHUP reload's result (none, ok or failed) and message (value 1).");
  put(&t, "planktond_last_reload_info{result=\"%s\",message=\"%s\"} 1\n",
      !r->last_reload.unix_time ? "none"
      : r->last_reload.failed   ? "failed"
                                : "ok",
      label(r->last_reload.message, why, sizeof why));
  counter(&t, "planktond_reload_failures_total",
          "SIGHUP reloads that failed (bad settings or a model that did not load).",
          (unsigned long long)r->last_reload.failures);
  head(&t, "planktond_backend_info", "gauge",
       "The compute backend serving now, its precision, the CPU and its features, what runs each "
       "conv and dense layer, what a sticky device error does (on_device_error: cpu or fail) and "
       "whether one did (device_state: ok, rebuilt_on_cpu or failing), and the CUDA plan's "
       "settings (cuda: graphs, workspace) (value 1).");
  char cpu[400], kernels[2100], cuda[800];
  put(&t,
      "planktond_backend_info{backend=\"%s\",precision=\"%s\",cpu=\"%s\",kernels=\"%s\","
      "on_device_error=\"%s\",device_state=\"%s\",cuda=\"%s\"} 1\n",
      backend, r->precision[0] ? r->precision : "none", label(r->cpu_features, cpu, sizeof cpu),
      label(r->kernels, kernels, sizeof kernels),
      r->on_device_error[0] ? r->on_device_error : "none",
      r->device_state[0] ? r->device_state : "none", label(r->cuda_options, cuda, sizeof cuda));
  gauge(&t, "planktond_uptime_seconds", "Seconds since the daemon started.", r->uptime_seconds);
  gauge(&t, "planktond_draining", "1 while shutting down.", r->draining ? 1.0 : 0.0);
  if (proc) process(&t, proc);

  if (t.oom) {
    free(t.buf);
    return NULL;
  }
  *len = t.len;
  return t.buf;
}
