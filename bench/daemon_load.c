/* daemon_load: the load generator of bench/daemon. N clients of the real
 * client library, each keeping `window` requests in flight, driven from one
 * poll() loop, send synthetic crops (raw gray8 or PNG) to a running
 * planktond for a warm-up and then a measured period. Prints one line:
 * requests=N seconds=S rps=R p50_ms=A p99_ms=B errors=E mean_batch=M answered=T
 * mean_compute_ms=C (the mean compute time of the batches the N clients' requests ran in)
 * (latency: send to answer, measured period only; answered: every answer to
 * the N clients, warm-up and the tail included, for CPU per request). With --polite 1, one
 * more client sends one crop at a time beside them (window 1), counted
 * apart: polite_requests, polite_p50_ms, polite_p99_ms, polite_errors and
 * polite_compute_ms (the median compute time of the batches its requests
 * ran in) are added to the line. --model NAME and --polite-model NAME name
 * the model the N clients and the polite one ask for (a repository's; none:
 * the daemon's default). */
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_crops.h"
#include "plankton_client.h"

#define N_CROPS BENCH_N_CROPS
typedef bench_crop crop;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *address = NULL, *format = "raw", *model = NULL, *polite_model = NULL;
  int clients = 8, window = 1, polite = 0;
  double seconds = 5, warmup = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *v = argv[i + 1];
    char *end = NULL;
    if (!strcmp(argv[i], "--address"))
      address = v;
    else if (!strcmp(argv[i], "--clients"))
      clients = (int)strtol(v, &end, 10);
    else if (!strcmp(argv[i], "--window"))
      window = (int)strtol(v, &end, 10);
    else if (!strcmp(argv[i], "--format"))
      format = v;
    else if (!strcmp(argv[i], "--seconds"))
      seconds = strtod(v, &end);
    else if (!strcmp(argv[i], "--warmup"))
      warmup = strtod(v, &end);
    else if (!strcmp(argv[i], "--polite"))
      polite = strtol(v, &end, 10) ? 1 : 0;
    else if (!strcmp(argv[i], "--model"))
      model = v;
    else if (!strcmp(argv[i], "--polite-model"))
      polite_model = v;
    else {
      fprintf(stderr, "daemon_load: unknown option %s\n", argv[i]);
      return 2;
    }
    if (end && (end == v || *end)) {
      fprintf(stderr, "daemon_load: %s \"%s\": want a number\n", argv[i], v);
      return 2;
    }
  }
  if (!address || clients < 1 || window < 1) {
    fprintf(stderr, "usage: daemon_load --address ADDR [--clients N] [--window W] "
                    "[--format raw|png] [--seconds S] [--warmup S] [--polite 0|1] "
                    "[--model NAME] [--polite-model NAME]\n");
    return 2;
  }
  bool png = !strcmp(format, "png");
  crop crops[N_CROPS] = {0};
  for (int i = 0; i < N_CROPS; i++) {
    if (bench_crop_make(&crops[i], (uint64_t)i + 1) != 0 ||
        (png && bench_crop_png(&crops[i]) != 0)) {
      fprintf(stderr, "daemon_load: out of memory for the crops\n");
      return 1;
    }
  }
  const int conns = clients + polite; /* the polite client is the last */
  pc_client **cs = calloc((size_t)conns, sizeof(pc_client *));
  struct pollfd *pf = calloc((size_t)conns, sizeof *pf);
  double **sent_at = calloc((size_t)conns, sizeof *sent_at); /* ring by id % its window */
  uint64_t *next_id = calloc((size_t)conns, sizeof *next_id);
  int *win = calloc((size_t)conns, sizeof *win);
  pc_client_error err;
  for (int i = 0; i < conns; i++) {
    win[i] = i < clients ? window : 1;
    pc_client_options o = {.window = win[i], .timeout_ms = 30000};
    if (pc_client_connect(address, &o, &cs[i], &err) != PC_CLIENT_OK) {
      fprintf(stderr, "daemon_load: %s\n", err.message);
      return 1;
    }
    sent_at[i] = calloc((size_t)win[i], sizeof(double));
  }
  size_t lat_cap = 1 << 20, n_lat = 0, p_cap = 1 << 16, n_plat = 0;
  double *lat = malloc(lat_cap * sizeof *lat);
  double *plat = malloc(p_cap * sizeof *plat), *pcompute = malloc(p_cap * sizeof *pcompute);
  long errors = 0, measured = 0, p_errors = 0, answered = 0;
  double batch_sum = 0, compute_sum = 0;
  double t_start = now_s(), t_measure = t_start + warmup, t_end = t_measure + seconds;
  bool sending = true;
  int in_flight_total = 0;
  for (;;) {
    double now = now_s();
    if (now >= t_end) sending = false;
    if (!sending && in_flight_total == 0) break;
    for (int i = 0; i < conns; i++) {
      while (sending) {
        uint64_t id = next_id[i];
        const crop *c = &crops[(id * 7 + (uint64_t)i) % N_CROPS];
        pc_client_classify_request rq = {
            .id = id, .top_k = 5, .model = i < clients ? model : polite_model};
        if (png) {
          rq.format = PC_CLIENT_IMAGE_PNG;
          rq.data = c->png;
          rq.len = c->png_len;
        } else {
          rq.format = PC_CLIENT_IMAGE_RAW_GRAY8;
          rq.data = c->gray;
          rq.len = (size_t)c->w * c->h;
          rq.width = (uint32_t)c->w;
          rq.height = (uint32_t)c->h;
        }
        int rc = pc_client_send_classify(cs[i], &rq, &err);
        if (rc == PC_CLIENT_EAGAIN) break;
        if (rc != PC_CLIENT_OK) {
          fprintf(stderr, "daemon_load: %s\n", err.message);
          return 1;
        }
        sent_at[i][id % (uint64_t)win[i]] = now_s();
        next_id[i]++;
        in_flight_total++;
      }
      pf[i].fd = pc_client_fd(cs[i]);
      pf[i].events = pc_client_events(cs[i]);
    }
    if (conns < 1 || poll(pf, (nfds_t)(unsigned)conns, 1000) < 0) break;
    for (int i = 0; i < conns; i++) {
      if (!pf[i].revents) continue;
      if (pc_client_process(cs[i], pf[i].revents, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "daemon_load: %s\n", err.message);
        return 1;
      }
      pc_client_response *r;
      while (pc_client_next_response(cs[i], &r) == PC_CLIENT_OK) {
        double t = now_s();
        double t0 = sent_at[i][r->id % (uint64_t)win[i]];
        in_flight_total--;
        if (i < clients) answered++;
        if (i == clients && t0 >= t_measure && t0 < t_end && n_plat < p_cap) {
          if (r->status != 0) p_errors++;
          pcompute[n_plat] = (double)r->u.classify.compute_us / 1e3;
          plat[n_plat++] = (t - t0) * 1e3;
        } else if (i < clients && t0 >= t_measure && t0 < t_end) {
          measured++;
          if (r->status != 0) errors++;
          batch_sum += r->u.classify.batch_size;
          compute_sum += (double)r->u.classify.compute_us / 1e3;
          if (n_lat == lat_cap) {
            double *grown = realloc(lat, 2 * lat_cap * sizeof *lat);
            if (!grown) {
              fprintf(stderr, "daemon_load: out of memory for the latencies\n");
              return 1;
            }
            lat = grown;
            lat_cap *= 2;
          }
          lat[n_lat++] = (t - t0) * 1e3;
        }
        pc_client_response_free(r);
      }
    }
  }
  qsort(lat, n_lat, sizeof *lat, cmp_double);
  double p50 = n_lat ? lat[n_lat / 2] : 0,
         p99 = n_lat ? lat[(size_t)(0.99 * (double)(n_lat - 1))] : 0;
  printf("requests=%ld seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%ld mean_batch=%.2f "
         "answered=%ld mean_compute_ms=%.3f",
         measured, seconds, (double)measured / seconds, p50, p99, errors,
         measured ? batch_sum / (double)measured : 0.0, answered,
         measured ? compute_sum / (double)measured : 0.0);
  if (polite) {
    qsort(plat, n_plat, sizeof *plat, cmp_double);
    qsort(pcompute, n_plat, sizeof *pcompute, cmp_double);
    printf(" polite_requests=%zu polite_p50_ms=%.3f polite_p99_ms=%.3f polite_errors=%ld "
           "polite_compute_ms=%.3f",
           n_plat, n_plat ? plat[n_plat / 2] : 0,
           n_plat ? plat[(size_t)(0.99 * (double)(n_plat - 1))] : 0, p_errors,
           n_plat ? pcompute[n_plat / 2] : 0);
  }
  printf("\n");
  for (int i = 0; i < conns; i++) {
    pc_client_close(cs[i]);
    free(sent_at[i]);
  }
  for (int i = 0; i < N_CROPS; i++)
    bench_crop_free(&crops[i]);
  free(cs);
  free(pf);
  free(sent_at);
  free(next_id);
  free(win);
  free(lat);
  free(plat);
  free(pcompute);
  return errors || p_errors ? 1 : 0;
}
