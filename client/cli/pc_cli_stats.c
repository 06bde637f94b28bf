/* pc_cli_stats: the `stats` command: one Stats request, printed as a table
 * for people (counters, rates, and per histogram the count, mean and the
 * bucket bounds holding the 50th, 90th and 99th percentiles) or as one
 * JSON object with every field and the raw buckets (--json). */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "pc_cli.h"
#include "pc_cli_args.h"
#include "pc_cli_json.h"

void pc_cli_stats_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] stats [--json]\n"
          "\n"
          "Prints the daemon's counters: model, backend, the last reload's result, uptime,\n"
          "crops classified, images (views: a crop sent with --tta N counts once in crops\n"
          "and N times in images) and batches computed, the recent rate, requests by\n"
          "status, queue depth, connections, connections closed by the daemon's limits,\n"
          "receive-buffer memory and waits, failed batches, the adaptive TTA's requests and\n"
          "views (batching.adaptive_tta), and the latency and batch-size\n"
          "histograms (count, mean, percentiles as bucket bounds).\n"
          "\n"
          "Options:\n"
          "      --json   one JSON object with every field and the raw histogram buckets\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit: 0 answered, 3 daemon unreachable or failed to answer.\n",
          prog);
}

/* The smallest bucket bound holding quantile q (cumulative counts). */
static void quantile(const pc_client_histogram *h, double q, char *buf, size_t n) {
  if (h->count == 0) {
    snprintf(buf, n, "-");
    return;
  }
  double want = q * (double)h->count;
  for (size_t i = 0; i < h->n_bounds; i++)
    if ((double)h->counts[i] >= want) {
      snprintf(buf, n, "<=%g", h->bounds[i]);
      return;
    }
  snprintf(buf, n, ">%g", h->n_bounds ? h->bounds[h->n_bounds - 1] : 0.0);
}

static void print_table(const pc_client_stats_result *s) {
  printf("%-16s %s %s\n", "model", s->model_name, s->model_version);
  if (s->model_loaded_unix > 0) {
    time_t t = (time_t)s->model_loaded_unix;
    struct tm tm;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    printf("%-16s %s (%llu loads, %llu failed)\n", "model loaded", when,
           (unsigned long long)s->model_loads, (unsigned long long)s->model_load_failures);
  }
  printf("%-16s %s\n", "backend", s->backend);
  if (s->last_reload_unix > 0) {
    time_t t = (time_t)s->last_reload_unix;
    struct tm tm;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    printf("%-16s %s %s%s%s\n", "last reload", when, s->last_reload_failed ? "FAILED" : "ok",
           s->last_reload_failed ? ": " : "", s->last_reload_failed ? s->last_reload_message : "");
  } else {
    printf("%-16s none since start\n", "last reload");
  }
  printf("%-16s %.1f s\n", "uptime", s->uptime_seconds);
  printf("%-16s %llu\n", "crops", (unsigned long long)s->crops);
  printf("%-16s %llu (%.1f/s recently)\n", "images (views)", (unsigned long long)s->images,
         s->images_per_second);
  printf("%-16s %llu", "batches", (unsigned long long)s->batches);
  if (s->batches) printf(" (%.2f images per batch)", (double)s->images / (double)s->batches);
  putchar('\n');
  printf("%-16s", "requests");
  int any = 0;
  for (int i = 0; i < 17; i++)
    if (s->requests_by_status[i]) {
      printf("%s %s %llu", any ? "," : "", pc_client_status_name(i),
             (unsigned long long)s->requests_by_status[i]);
      any = 1;
    }
  printf("%s\n", any ? "" : " none");
  printf("%-16s %u\n", "queue depth", s->queue_depth);
  printf("%-16s %u\n", "in flight", s->in_flight);
  if (s->tta_adaptive_requests)
    printf("%-16s %llu requests, %.2f views each on average, %llu given fewer than the "
           "default\n",
           "adaptive tta", (unsigned long long)s->tta_adaptive_requests,
           (double)s->tta_views / (double)s->tta_adaptive_requests,
           (unsigned long long)s->tta_reduced);
  else
    printf("%-16s none (no request left its views to the daemon, or batching.adaptive_tta is "
           "off)\n",
           "adaptive tta");
  printf("%-16s %llu (dropped before computing: their client had left)\n", "cancelled",
         (unsigned long long)s->requests_cancelled);
  printf("%-16s %u (%llu since start)\n", "connections", s->connections,
         (unsigned long long)s->connections_total);
  printf("%-16s %llu\n", "broken frames", (unsigned long long)s->broken_frames);
  printf("%-16s %llu refused, %llu frame timeouts, %llu idle timeouts, %llu accept errors\n",
         "closed by limits", (unsigned long long)s->connections_refused,
         (unsigned long long)s->frame_timeouts, (unsigned long long)s->idle_timeouts,
         (unsigned long long)s->accept_errors);
  printf("%-16s %llu bytes now, %llu waits\n", "receive buffers",
         (unsigned long long)s->receive_buffer_bytes, (unsigned long long)s->receive_waits);
  printf("%-16s %llu (%llu in a row)\n", "failed batches", (unsigned long long)s->batch_failures,
         (unsigned long long)s->batch_failures_in_a_row);
  for (size_t i = 0; i < s->n_models; i++) {
    const pc_client_model_stats *m = &s->models[i];
    unsigned long long ok = m->requests_by_status[0], failed = 0;
    for (int c = 1; c < 17; c++)
      failed += m->requests_by_status[c];
    char name[160];
    snprintf(name, sizeof name, "model %s:%s", m->name, m->version);
    printf("%-16s %llu OK, %llu failed, %.2f ms per OK request (%.2f queued, %.2f computing)\n",
           name, ok, failed, ok ? m->request_seconds * 1e3 / (double)ok : 0.0,
           ok ? m->queue_seconds * 1e3 / (double)ok : 0.0,
           ok ? m->compute_seconds * 1e3 / (double)ok : 0.0);
  }
  if (!s->n_histograms) return;
  printf("\n%-12s %10s %12s %12s %12s %12s\n", "histogram", "count", "mean", "p50", "p90", "p99");
  for (size_t i = 0; i < s->n_histograms; i++) {
    const pc_client_histogram *h = &s->histograms[i];
    char p50[32], p90[32], p99[32];
    quantile(h, 0.5, p50, sizeof p50);
    quantile(h, 0.9, p90, sizeof p90);
    quantile(h, 0.99, p99, sizeof p99);
    printf("%-12s %10llu %12.1f %12s %12s %12s\n", h->name, (unsigned long long)h->count,
           h->count ? h->sum / (double)h->count : 0.0, p50, p90, p99);
  }
}

/* The members of a "requests" object: "STATUS":count for each status with
 * a count (the braces are the caller's). */
static void json_requests(FILE *f, const uint64_t counts[17]) {
  for (int i = 0, any = 0; i < 17; i++)
    if (counts[i]) {
      fprintf(f, "%s\"%s\":%llu", any ? "," : "", pc_client_status_name(i),
              (unsigned long long)counts[i]);
      any = 1;
    }
}

static void print_json(const pc_client_stats_result *s) {
  FILE *f = stdout;
  fputs("{\"model\":", f);
  pc_cli_json_string(f, s->model_name);
  fputs(",\"model_version\":", f);
  pc_cli_json_string(f, s->model_version);
  fputs(",\"backend\":", f);
  pc_cli_json_string(f, s->backend);
  fprintf(f, ",\"model_loaded_unix\":%lld,\"model_loads\":%llu,\"model_load_failures\":%llu",
          (long long)s->model_loaded_unix, (unsigned long long)s->model_loads,
          (unsigned long long)s->model_load_failures);
  fprintf(f, ",\"last_reload_unix\":%lld,\"last_reload_failed\":%s,\"last_reload_message\":",
          (long long)s->last_reload_unix, s->last_reload_failed ? "true" : "false");
  pc_cli_json_string(f, s->last_reload_message ? s->last_reload_message : "");
  fprintf(f, ",\"crops\":%llu", (unsigned long long)s->crops);
  fputs(",\"uptime_seconds\":", f);
  pc_cli_json_double(f, s->uptime_seconds);
  fprintf(f,
          ",\"images\":%llu,\"batches\":%llu,\"images_per_second\":", (unsigned long long)s->images,
          (unsigned long long)s->batches);
  pc_cli_json_double(f, s->images_per_second);
  fprintf(f, ",\"requests_cancelled\":%llu", (unsigned long long)s->requests_cancelled);
  fprintf(f, ",\"tta_adaptive_requests\":%llu,\"tta_views\":%llu,\"tta_reduced\":%llu",
          (unsigned long long)s->tta_adaptive_requests, (unsigned long long)s->tta_views,
          (unsigned long long)s->tta_reduced);
  fprintf(f,
          ",\"queue_depth\":%u,\"in_flight\":%u,\"connections\":%u,\"connections_total\":%llu"
          ",\"broken_frames\":%llu,\"connections_refused\":%llu,\"frame_timeouts\":%llu"
          ",\"idle_timeouts\":%llu,\"accept_errors\":%llu,\"batch_failures\":%llu"
          ",\"batch_failures_in_a_row\":%llu,\"receive_buffer_bytes\":%llu"
          ",\"receive_waits\":%llu,\"requests\":{",
          s->queue_depth, s->in_flight, s->connections, (unsigned long long)s->connections_total,
          (unsigned long long)s->broken_frames, (unsigned long long)s->connections_refused,
          (unsigned long long)s->frame_timeouts, (unsigned long long)s->idle_timeouts,
          (unsigned long long)s->accept_errors, (unsigned long long)s->batch_failures,
          (unsigned long long)s->batch_failures_in_a_row,
          (unsigned long long)s->receive_buffer_bytes, (unsigned long long)s->receive_waits);
  json_requests(f, s->requests_by_status);
  fputs("},\"models\":[", f);
  for (size_t i = 0; i < s->n_models; i++) {
    const pc_client_model_stats *m = &s->models[i];
    fputs(i ? ",{\"name\":" : "{\"name\":", f);
    pc_cli_json_string(f, m->name);
    fputs(",\"version\":", f);
    pc_cli_json_string(f, m->version);
    fputs(",\"requests\":{", f);
    json_requests(f, m->requests_by_status);
    fprintf(f, "},\"images\":%llu,\"request_seconds\":", (unsigned long long)m->images);
    pc_cli_json_double(f, m->request_seconds);
    fputs(",\"queue_seconds\":", f);
    pc_cli_json_double(f, m->queue_seconds);
    fputs(",\"compute_seconds\":", f);
    pc_cli_json_double(f, m->compute_seconds);
    fputc('}', f);
  }
  fputs("],\"histograms\":{", f);
  for (size_t i = 0; i < s->n_histograms; i++) {
    const pc_client_histogram *h = &s->histograms[i];
    if (i) fputc(',', f);
    pc_cli_json_string(f, h->name);
    fprintf(f, ":{\"count\":%llu,\"sum\":", (unsigned long long)h->count);
    pc_cli_json_double(f, h->sum);
    fputs(",\"bounds\":[", f);
    for (size_t b = 0; b < h->n_bounds; b++) {
      if (b) fputc(',', f);
      pc_cli_json_double(f, h->bounds[b]);
    }
    fputs("],\"counts\":[", f);
    for (size_t b = 0; b < h->n_bounds; b++)
      fprintf(f, "%s%llu", b ? "," : "", (unsigned long long)h->counts[b]);
    fputs("]}", f);
  }
  fputs("}}\n", f);
}

int pc_cli_stats_main(const pc_cli_global *g, int argc, char **argv) {
  static const struct option longs[] = {
      {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
  int json = 0, c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    if (c == 'J')
      json = 1;
    else if (c == 'h') {
      pc_cli_stats_usage(g->prog, stdout);
      return PC_CLI_EXIT_OK;
    } else {
      return pc_cli_bad_option(g->prog, "stats", c, argv);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: stats: unexpected argument '%s'\n", g->prog, argv[optind]);
    return PC_CLI_EXIT_USAGE;
  }
  pc_client *client;
  pc_cli_error err;
  int rc = pc_cli_connect(g, 4, &client, &err);
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    return rc;
  }
  pc_client_response *r = NULL;
  pc_client_error e;
  if (pc_client_stats(client, &r, &e) != PC_CLIENT_OK) {
    pc_cli_fail(&err, PC_CLI_EXIT_DAEMON, "stats: %s", e.message);
    pc_cli_explain(g, &err);
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (r->kind != PC_CLIENT_RESPONSE_STATS || r->status != PC_CLIENT_STATUS_OK) {
    fprintf(stderr, "%s: stats: %s: %s\n", g->prog, pc_client_status_name(r->status), r->message);
    rc = PC_CLI_EXIT_DAEMON;
  } else if (json) {
    print_json(&r->u.stats);
  } else {
    print_table(&r->u.stats);
  }
  pc_client_response_free(r);
  pc_client_close(client);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: stats: writing standard output: %s\n", g->prog,
            strerror(errno ? errno : EIO));
    if (rc == PC_CLI_EXIT_OK) rc = PC_CLI_EXIT_FAILED;
  }
  return rc;
}
