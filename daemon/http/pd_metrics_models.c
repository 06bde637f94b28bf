#include "pd_metrics_models.h"

#include <stdio.h>
#include <stdlib.h>

/* A label value with \, " and newline escaped. */
static void label(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf(f, "\\%c", *s);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

static void labels(FILE *f, const char *name, const char *version) {
  fputs("{model=\"", f);
  label(f, name);
  fputs("\",version=\"", f);
  label(f, version);
  fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One summary family (sum and count, in seconds) over every model. */
static void durations(FILE *f, const pd_model_counts *c, int n, const char *name, const char *help,
                      size_t field) {
  head(f, name, "summary", help);
  for (int i = 0; i < n; i++) {
    const uint64_t us = *(const uint64_t *)((const char *)&c[i] + field);
    fprintf(f, "%s_sum", name);
    labels(f, c[i].name, c[i].version);
    fprintf(f, "} %.6f\n%s_count", (double)us * 1e-6, name);
    labels(f, c[i].name, c[i].version);
    fprintf(f, "} %llu\n", (unsigned long long)c[i].requests[PD_STATUS_OK]);
  }
}

char *pd_metrics_models_render(const pd_pipeline *p, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  if (!f) return NULL;
  int n = 0;
  const pd_model_counts *c = pd_pipeline_model_counts(p, &n);
  head(f, "planktond_model_inference_request_total", "counter",
       "Classify requests answered, by model, version and gRPC status.");
  for (int i = 0; i < n; i++)
    for (int s = 0; s < PD_STATUS_COUNT; s++) {
      if (!c[i].requests[s] && s != PD_STATUS_OK) continue;
      fputs("planktond_model_inference_request_total", f);
      labels(f, c[i].name, c[i].version);
      fprintf(f, ",status=\"%s\"} %llu\n", pd_status_name(s), (unsigned long long)c[i].requests[s]);
    }
  head(f, "planktond_model_inference_count_total", "counter",
       "Images run through the network for OK requests, by model (TTA transforms count each).");
  for (int i = 0; i < n; i++) {
    fputs("planktond_model_inference_count_total", f);
    labels(f, c[i].name, c[i].version);
    fprintf(f, "} %llu\n", (unsigned long long)c[i].images);
  }
  durations(f, c, n, "planktond_model_inference_request_duration_seconds",
            "Receipt to answer of OK classify requests, by model.",
            offsetof(pd_model_counts, latency_us));
  durations(f, c, n, "planktond_model_inference_queue_duration_seconds",
            "Time OK requests waited for a decode thread and in the batch queue, by model.",
            offsetof(pd_model_counts, queue_us));
  durations(f, c, n, "planktond_model_inference_compute_infer_duration_seconds",
            "Network time of the batches OK requests ran in, by model.",
            offsetof(pd_model_counts, compute_us));
  const pd_repo *r = pd_pipeline_repo(p);
  head(f, "planktond_model_ready", "gauge",
       "1 for each model version loaded and serving, 0 for one that did not load or that a "
       "sticky device error put out of service.");
  for (int i = 0; r && i < r->n; i++) {
    fputs("planktond_model_ready", f);
    labels(f, r->e[i].name, r->e[i].version);
    const pd_served *s = r->e[i].served;
    fprintf(f, "} %d\n", s && pd_served_device_state(s) != PD_DEVICE_FAILING);
  }
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}
