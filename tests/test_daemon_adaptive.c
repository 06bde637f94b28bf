/* Load-adaptive TTA (batching.adaptive_tta, daemon/README.md "Adaptive
 * TTA") against a real daemon: the test model with a default of 8 TTA
 * views, on planktond-faultinject with a slow backend (every network run
 * sleeps DELAY_MS first), so its capacity is known: batches of 16 images,
 * one per ~DELAY_MS, i.e. about 50 crops/s at 8 views and 200 at 2.
 *
 *   low_rate:  adaptive on, 5 crops/s: every answer has the full 8 views.
 *   overload:  adaptive on (min_tta 2), 100 crops/s for 3 s (twice the
 *              full-TTA capacity, half the reduced one) with every tenth
 *              request asking tta 8 itself: no RESOURCE_EXHAUSTED, later
 *              requests get fewer views (>= 2), each answer's
 *              probabilities are the engine's own TTA average for the
 *              views it reports, explicit requests keep their 8; after
 *              the flood the full 8 again; /metrics' planktond_tta_*
 *              counters equal the sums over the answers.
 *   off:       the same flood with adaptive_tta off (the default): never
 *              reduced, and the queue (max_queue 64) overflows.
 *   reload:    off in a settings file, then on by a SIGHUP reload of it:
 *              the flood is reduced, without RESOURCE_EXHAUSTED. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"

#define FULL_VIEWS 8
#define MIN_VIEWS 2
#define DELAY_MS 40
#define N_CROPS 4
#define MAX_REQUESTS 1024

static char model_dir[256];
static pd_td_ref ref;
static int n_classes;

typedef struct crop {
  uint8_t *gray;
  int w, h;
  float *probs[FULL_VIEWS + 1]; /* the engine's TTA average by views (lazy) */
} crop;
static crop crops[N_CROPS];

static const float *ref_probs(int k, int views) {
  crop *c = &crops[k];
  if (!c->probs[views]) {
    c->probs[views] = malloc((size_t)n_classes * sizeof(float));
    if (!c->probs[views] ||
        pd_td_ref_probs_tta(&ref, c->gray, c->w, c->h, views, c->probs[views]) != 0) {
      free(c->probs[views]);
      c->probs[views] = NULL;
    }
  }
  return c->probs[views];
}

/* What a paced stream got back. */
typedef struct stream {
  int sent, ok, exhausted, other, unanswered;
  int adaptive_ok, adaptive_reduced, explicit_ok, explicit_reduced;
  long adaptive_views;
  int out_of_range, wrong_probs;
  int min_seen, max_seen;
  double worst_ms;
} stream;

/* Sends `rate` crops/s for `seconds` on one connection (every
 * explicit_every-th asks tta FULL_VIEWS itself; 0: none) and checks every
 * answer as it comes. */
static void run_stream(pd_test_state *st, const pd_td *d, double rate, double seconds,
                       int explicit_every, stream *s) {
  memset(s, 0, sizeof *s);
  s->min_seen = 1 << 30;
  const double tol = pd_td_prob_tol();
  pc_client *c = pd_td_connect(d, MAX_REQUESTS);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  static double sent_ms[MAX_REQUESTS];
  const int total = (int)(rate * seconds) < MAX_REQUESTS ? (int)(rate * seconds) : MAX_REQUESTS;
  const double t0 = pd_td_now_ms();
  const double give_up = t0 + seconds * 1000 + pd_td_scaled_ms(30000);
  int answered = 0;
  pc_client_error err;
  while (answered < total && pd_td_now_ms() < give_up) {
    while (s->sent < total && pd_td_now_ms() >= t0 + s->sent * 1000.0 / rate) {
      const int id = s->sent, k = id % N_CROPS;
      pc_client_classify_request rq = {.id = (uint64_t)id,
                                       .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                       .data = crops[k].gray,
                                       .len = (size_t)crops[k].w * (size_t)crops[k].h,
                                       .width = (uint32_t)crops[k].w,
                                       .height = (uint32_t)crops[k].h,
                                       .full_distribution = true};
      if (explicit_every && id % explicit_every == explicit_every - 1) rq.tta = FULL_VIEWS;
      if (pc_client_send_classify(c, &rq, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "send %d: %s\n", id, err.message);
        st->failures++;
        pc_client_close(c);
        return;
      }
      sent_ms[id] = pd_td_now_ms();
      s->sent++;
    }
    if (pc_client_wait(c, 1, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "wait: %s\n", err.message);
      st->failures++;
      break;
    }
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      answered++;
      const int id = (int)r->id, k = id % N_CROPS;
      const bool explicit_tta = explicit_every && id % explicit_every == explicit_every - 1;
      const double ms = pd_td_now_ms() - sent_ms[id % MAX_REQUESTS];
      if (ms > s->worst_ms) s->worst_ms = ms;
      if (r->kind != PC_CLIENT_RESPONSE_CLASSIFY || r->status == 8) {
        s->exhausted += r->status == 8;
        s->other += r->status != 8;
        pc_client_response_free(r);
        continue;
      }
      if (r->status != 0) {
        if (s->other++ == 0) fprintf(stderr, "request %d: status %d\n", id, r->status);
        pc_client_response_free(r);
        continue;
      }
      s->ok++;
      const int views = (int)r->u.classify.tta;
      if (views < 1 || views > FULL_VIEWS) {
        s->out_of_range++;
        pc_client_response_free(r);
        continue;
      }
      if (explicit_tta) {
        s->explicit_ok++;
        s->explicit_reduced += views != FULL_VIEWS;
      } else {
        s->adaptive_ok++;
        s->adaptive_views += views;
        s->adaptive_reduced += views < FULL_VIEWS;
        if (views < s->min_seen) s->min_seen = views;
        if (views > s->max_seen) s->max_seen = views;
      }
      /* the views are real: the answer is the engine's average over them */
      const float *want = ref_probs(k, views);
      double worst = want && r->u.classify.n_distribution == (size_t)n_classes ? 0 : INFINITY;
      for (int j = 0; want && j < n_classes && isfinite(worst); j++) {
        double dd = fabs((double)r->u.classify.distribution[j] - want[j]);
        if (dd > worst) worst = dd;
      }
      if (!(worst <= tol) && s->wrong_probs++ == 0)
        fprintf(stderr, "request %d (%d views): max |p - engine| %.3g\n", id, views, worst);
      pc_client_response_free(r);
    }
  }
  s->unanswered = total - answered;
  PD_CHECK_INT(st, s->unanswered, 0);
  PD_CHECK_INT(st, s->other, 0);
  PD_CHECK_INT(st, s->out_of_range, 0);
  PD_CHECK_INT(st, s->wrong_probs, 0);
  pc_client_close(c);
}

static void print_stream(const char *what, const stream *s) {
  printf("%s: %d sent, %d OK, %d RESOURCE_EXHAUSTED; %d adaptive (%d reduced, views %d..%d, "
         "mean %.2f), %d explicit (%d reduced); slowest %.0f ms\n",
         what, s->sent, s->ok, s->exhausted, s->adaptive_ok, s->adaptive_reduced,
         s->adaptive_ok ? s->min_seen : 0, s->max_seen,
         s->adaptive_ok ? (double)s->adaptive_views / s->adaptive_ok : 0.0, s->explicit_ok,
         s->explicit_reduced, s->worst_ms);
}

/* adaptive: batching.adaptive_tta by --set; config: a settings file instead
 * (the model and adaptive_tta come from it), or NULL. */
static bool start(pd_test_state *st, pd_td *d, bool adaptive, const char *config) {
  const char *bin = getenv("PLANKTOND_FAULTINJECT");
  if (!bin || !*bin) {
    pd_test_skip(st, "PLANKTOND_FAULTINJECT is not set");
    return false;
  }
  char rule[64];
  snprintf(rule, sizeof rule, "PD_FAULT_INJECT=delay_ms=%d", DELAY_MS);
  const char *env[] = {rule, NULL};
  const char *args[] = {"--max-batch",
                        "16",
                        "--max-queue",
                        "64",
                        "--max-queue-delay-us",
                        "2000",
                        "--max-in-flight",
                        "1024",
                        "--metrics",
                        "unix:@DIR@/metrics.sock",
                        "--set",
                        "batching.min_tta=2",
                        config ? "--config" : "--set",
                        config     ? config
                        : adaptive ? "batching.adaptive_tta=true"
                                   : "batching.adaptive_tta=false",
                        NULL};
  pd_td_opts o = {.binary = bin, .env = env};
  if (pd_td_start_opts(d, &o, args) == 0) return true;
  st->failures++;
  fprintf(stderr, "planktond-faultinject did not start\n");
  pd_td_cleanup(d);
  return false;
}

/* The planktond_tta_* counters now. */
static void tta_metrics(pd_test_state *st, const pd_td *d, double *requests, double *views,
                        double *reduced) {
  char path[400];
  snprintf(path, sizeof path, "%s/metrics.sock", d->dir);
  char *m = pd_td_metrics(path);
  PD_CHECK(st, m != NULL);
  *requests = m ? pd_td_metric(m, "planktond_tta_adaptive_requests_total") : NAN;
  *views = m ? pd_td_metric(m, "planktond_tta_views_total") : NAN;
  *reduced = m ? pd_td_metric(m, "planktond_tta_reduced_total") : NAN;
  free(m);
}

static void stop(pd_test_state *st, pd_td *d) {
  PD_CHECK_INT(st, pd_td_stop(d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(d);
}

static void low_rate(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, true, NULL)) return;
  stream s;
  run_stream(st, &d, 5, 2, 0, &s);
  print_stream("low rate", &s);
  PD_CHECK_INT(st, s.ok, 10);
  PD_CHECK_INT(st, s.adaptive_reduced, 0);
  PD_CHECK_INT(st, s.min_seen, FULL_VIEWS);
  double req, views, reduced;
  tta_metrics(st, &d, &req, &views, &reduced);
  PD_CHECK_NEAR(st, req, 10, 0);
  PD_CHECK_NEAR(st, views, 10 * FULL_VIEWS, 0);
  PD_CHECK_NEAR(st, reduced, 0, 0);
  stop(st, &d);
}

static void overload(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, true, NULL)) return;
  stream s, after;
  run_stream(st, &d, 100, 3, 10, &s);
  print_stream("overload, adaptive", &s);
  PD_CHECK_INT(st, s.exhausted, 0);
  PD_CHECK_INT(st, s.ok, s.sent);
  PD_CHECK(st, s.adaptive_reduced > 0);
  PD_CHECK(st, s.min_seen >= MIN_VIEWS);
  PD_CHECK_INT(st, s.explicit_reduced, 0);
  PD_CHECK(st, s.explicit_ok > 0);
  /* the views carried 100 crops/s on a backend that computes about 400
   * images/s: a mean of about 4 views or fewer */
  PD_CHECK(st, s.adaptive_views <= 5L * s.adaptive_ok);
  PD_CHECK(st, s.worst_ms < pd_td_scaled_ms(2000));
  /* the queue drained: full TTA again */
  run_stream(st, &d, 5, 2, 0, &after);
  print_stream("after the flood", &after);
  PD_CHECK_INT(st, after.ok, 10);
  PD_CHECK_INT(st, after.adaptive_reduced, 0);
  double req, views, reduced;
  tta_metrics(st, &d, &req, &views, &reduced);
  printf("metrics: tta_adaptive_requests %.0f, tta_views %.0f, tta_reduced %.0f\n", req, views,
         reduced);
  PD_CHECK_NEAR(st, req, s.adaptive_ok + after.adaptive_ok, 0);
  PD_CHECK_NEAR(st, views, (double)(s.adaptive_views + after.adaptive_views), 0);
  PD_CHECK_NEAR(st, reduced, s.adaptive_reduced + after.adaptive_reduced, 0);
  stop(st, &d);
}

static void off(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, false, NULL)) return;
  stream s;
  run_stream(st, &d, 100, 3, 0, &s);
  print_stream("overload, adaptive off", &s);
  PD_CHECK_INT(st, s.adaptive_reduced, 0);
  PD_CHECK(st, s.ok > 0);
  PD_CHECK_INT(st, s.min_seen, FULL_VIEWS);
  PD_CHECK(st, s.exhausted > 0); /* twice its capacity overflows max_queue 64 */
  double req, views, reduced;
  tta_metrics(st, &d, &req, &views, &reduced);
  PD_CHECK_NEAR(st, req, 0, 0);
  PD_CHECK_NEAR(st, views, 0, 0);
  PD_CHECK_NEAR(st, reduced, 0, 0);
  stop(st, &d);
}

/* A settings file naming the model and batching.adaptive_tta. */
static bool write_config(const char *path, bool adaptive) {
  FILE *f = fopen(path, "w");
  if (!f) return false;
  fprintf(f, "model:\n  dir: %s\nbatching:\n  adaptive_tta: %s\n", model_dir,
          adaptive ? "true" : "false");
  return fclose(f) == 0;
}

/* adaptive_tta turned on by a SIGHUP reload of the settings file. */
static void reload(pd_test_state *st) {
  char cfg[400];
  snprintf(cfg, sizeof cfg, "%s/planktond.yaml", model_dir);
  PD_CHECK(st, write_config(cfg, false));
  pd_td d;
  if (!start(st, &d, false, cfg)) return;
  stream s;
  run_stream(st, &d, 100, 1.5, 0, &s);
  print_stream("overload, adaptive off in the file", &s);
  PD_CHECK_INT(st, s.adaptive_reduced, 0);
  PD_CHECK_INT(st, s.min_seen, FULL_VIEWS);
  PD_CHECK(st, write_config(cfg, true));
  kill(d.pid, SIGHUP);
  PD_CHECK(st, pd_td_wait_log(&d, "reloaded:", pd_td_scaled_s(30)));
  run_stream(st, &d, 100, 3, 0, &s);
  print_stream("overload, adaptive on after SIGHUP", &s);
  PD_CHECK_INT(st, s.exhausted, 0);
  PD_CHECK(st, s.adaptive_reduced > 0);
  PD_CHECK(st, s.min_seen >= MIN_VIEWS);
  stop(st, &d);
  unlink(cfg);
}

/* The test model with a default of FULL_VIEWS TTA views: its model.yaml
 * with a tta section added, beside links to its other files. */
static int make_model(void) {
  snprintf(model_dir, sizeof model_dir, "/tmp/pd-adaptive-XXXXXX");
  if (!mkdtemp(model_dir)) return -1;
  const char *src = pd_td_model_dir();
  char path[600], from[600];
  snprintf(path, sizeof path, "%s/model.yaml", src);
  FILE *in = fopen(path, "r");
  snprintf(path, sizeof path, "%s/model.yaml", model_dir);
  FILE *out = fopen(path, "w");
  if (!in || !out) {
    if (in) fclose(in);
    if (out) fclose(out);
    return -1;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    fwrite(buf, 1, n, out);
  fprintf(out, "\ntta:\n  count: %d\n", FULL_VIEWS);
  fclose(in);
  if (fclose(out) != 0) return -1;
  snprintf(from, sizeof from, "%s/weights.safetensors", src);
  snprintf(path, sizeof path, "%s/weights.safetensors", model_dir);
  if (symlink(from, path) != 0) return -1;
  setenv("PD_TEST_MODEL", model_dir, 1);
  return 0;
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (make_model() != 0 || pd_td_ref_open(&ref, model_dir) != 0) {
    fprintf(stderr, "cannot make the TTA %d model in %s\n", FULL_VIEWS, model_dir);
    return 1;
  }
  n_classes = ref.model->n_classes;
  for (int k = 0; k < N_CROPS; k++) {
    crops[k].w = 40 + 17 * k;
    crops[k].h = 52 + 9 * k;
    crops[k].gray = pd_td_crop((uint64_t)k + 11, crops[k].w, crops[k].h);
    if (!crops[k].gray) return 1;
  }
  return 0;
}

static void teardown(void) {
  for (int k = 0; k < N_CROPS; k++) {
    free(crops[k].gray);
    for (int v = 0; v <= FULL_VIEWS; v++)
      free(crops[k].probs[v]);
  }
  pd_td_ref_close(&ref);
  char path[600];
  snprintf(path, sizeof path, "%s/model.yaml", model_dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/weights.safetensors", model_dir);
  unlink(path);
  rmdir(model_dir);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(low_rate),
    PD_TEST_CASE(overload),
    PD_TEST_CASE(off),
    PD_TEST_CASE(reload),
};

PD_TEST_MAIN("daemon_adaptive", setup, teardown, k_cases)
