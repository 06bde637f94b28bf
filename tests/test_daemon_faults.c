/* Faults under load, through the real client library:
 *  - reloads of a broken model while 8 clients pipeline without pause: the
 *    served model's files are damaged in place (weights truncated, a
 *    garbage safetensors header, garbage model.yaml, a layer whose shape no
 *    longer matches the weights, the weights file gone) and the config is
 *    pointed at a folder that does not exist; each SIGHUP fails, the log
 *    names the file, Stats and /metrics count the failures, the old model
 *    keeps answering every request OK; then a good reload swaps the model
 *    with no request lost;
 *  - a device error, simulated through the backend interface on the CPU
 *    build (planktond-faultinject: a pd_backend wrapper that fails chosen
 *    plan runs and scribbles NaN over their outputs): with batches of one,
 *    exactly the failed runs' requests get INTERNAL; with batches forming
 *    across 8 clients, each failed batch fails exactly its own requests
 *    (the messages name the run and its batch size) and every other answer
 *    is the engine's, bit for bit within tolerance; a device that stays
 *    broken fails every later request with INTERNAL and the daemon keeps
 *    answering, reports itself healthy and exits 0 on SIGTERM;
 *  - a slow device (delay_ms: each batch takes that long from its submit)
 *    under 8 pipelining clients: the engine gathers the next batch into the
 *    free input slot while one is in flight (planktond_batches_overlapped_total
 *    counts them), every request is answered once with the engine's answer,
 *    and a sticky device error in the middle fails exactly its own batch
 *    while the next one, already staged, is answered on the rebuilt plan. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"

#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */
#define N_CROPS 8
#define N_CLIENTS 8
#define WINDOW 8
#define MAX_SENT 100000

static pd_td_ref ref;
static int K;

typedef pd_td_crop_ref crop;
static crop crops[N_CROPS];

static bool right_answer(const pc_client_response *r, int k) {
  const pc_client_classify_result *c = &r->u.classify;
  if ((int)c->n_distribution != K) return false;
  for (int j = 0; j < K; j++)
    if (!(fabs((double)c->distribution[j] - crops[k].probs[j]) <= PROB_TOL)) return false;
  return true;
}

/* ---- load: clients pipelining crops, every answer checked ---- */

typedef struct load {
  int n;
  pc_client *c[N_CLIENTS];
  bool sending, closed[N_CLIENTS];
  uint64_t sent[N_CLIENTS];
  unsigned char *answered[N_CLIENTS];
  long ok, internal, other, dup, wrong, total;
  long by_model[3]; /* daemon-tiny, daemon-tiny-b, other */
  /* failed batches: run number -> (batch size, requests that named it) */
  long fail_run[4096], fail_batch[4096], fail_count[4096];
  int n_fail_runs;
} load;

static int load_open(load *l, const pd_td *d, int n) {
  memset(l, 0, sizeof *l);
  l->n = n;
  l->sending = true;
  for (int i = 0; i < n; i++) {
    l->c[i] = pd_td_connect(d, WINDOW);
    l->answered[i] = calloc(MAX_SENT, 1);
    if (!l->c[i] || !l->answered[i]) return -1;
  }
  return 0;
}

static void load_close(load *l) {
  for (int i = 0; i < l->n; i++) {
    pc_client_close(l->c[i]);
    free(l->answered[i]);
  }
}

static void note_failure(load *l, const char *msg) {
  static const char head[] = "injected device fault on run ", mid[] = " (batch of ";
  static const char sticky[] = "injected sticky device error on run ";
  const char *p = strstr(msg, head);
  size_t skip = sizeof head - 1;
  if (!p && (p = strstr(msg, sticky))) skip = sizeof sticky - 1;
  long run = -1, batch = -1;
  char *end = NULL;
  if (p) run = strtol(p + skip, &end, 10);
  if (end && !strncmp(end, mid, sizeof mid - 1)) batch = strtol(end + sizeof mid - 1, &end, 10);
  if (!p || run < 0 || batch < 0 || !end || *end != ')') {
    l->other++;
    return;
  }
  for (int i = 0; i < l->n_fail_runs; i++)
    if (l->fail_run[i] == run) {
      l->fail_count[i]++;
      return;
    }
  if (l->n_fail_runs < 4096) {
    l->fail_run[l->n_fail_runs] = run;
    l->fail_batch[l->n_fail_runs] = batch;
    l->fail_count[l->n_fail_runs++] = 1;
  }
}

static void load_step(load *l, int timeout_ms) {
  pc_client_error err;
  struct pollfd pf[N_CLIENTS];
  for (int i = 0; i < l->n; i++) {
    pf[i].fd = -1;
    pf[i].events = 0;
    if (l->closed[i]) continue;
    while (l->sending && l->sent[i] < MAX_SENT) {
      int k = (int)((l->sent[i] + (uint64_t)i) % N_CROPS);
      pc_client_classify_request rq = {.id = l->sent[i],
                                       .format = PC_CLIENT_IMAGE_PNG,
                                       .data = crops[k].png,
                                       .len = crops[k].png_len,
                                       .full_distribution = true};
      if (pc_client_send_classify(l->c[i], &rq, &err) != PC_CLIENT_OK) break;
      l->sent[i]++;
    }
    pf[i].fd = pc_client_fd(l->c[i]);
    pf[i].events = pc_client_events(l->c[i]);
  }
  poll(pf, (nfds_t)l->n, timeout_ms);
  for (int i = 0; i < l->n; i++) {
    if (l->closed[i] || !pf[i].revents) continue;
    int rc = pc_client_process(l->c[i], pf[i].revents, &err);
    pc_client_response *r;
    while (pc_client_next_response(l->c[i], &r) == PC_CLIENT_OK) {
      l->total++;
      if (r->id >= l->sent[i] || l->answered[i][r->id]++) {
        l->dup++;
      } else if (r->status == 0) {
        int k = (int)((r->id + (uint64_t)i) % N_CROPS);
        l->ok++;
        if (!right_answer(r, k)) l->wrong++;
        const char *m = r->u.classify.model_name;
        l->by_model[!strcmp(m, "daemon-tiny") ? 0 : !strcmp(m, "daemon-tiny-b") ? 1 : 2]++;
      } else if (r->status == PC_CLIENT_STATUS_INTERNAL) {
        l->internal++;
        note_failure(l, r->message);
      } else {
        l->other++;
        if (l->other < 5)
          fprintf(stderr, "answer %s: %s\n", pc_client_status_name(r->status), r->message);
      }
      pc_client_response_free(r);
    }
    if (rc != PC_CLIENT_OK) {
      fprintf(stderr, "client %d: %s\n", i, err.message);
      l->closed[i] = true;
    }
  }
}

static void run_until(load *l, long answers, double max_ms) {
  double until = pd_td_now_ms() + max_ms;
  long target = l->total + answers;
  while (l->total < target && pd_td_now_ms() < until)
    load_step(l, 100);
}

static long unanswered(const load *l) {
  long n = 0;
  for (int i = 0; i < l->n; i++)
    for (uint64_t k = 0; k < l->sent[i]; k++)
      n += !l->answered[i][k];
  return n;
}

static void drain_load(load *l) {
  l->sending = false;
  double until = pd_td_now_ms() + 60000;
  while (unanswered(l) > 0 && pd_td_now_ms() < until)
    load_step(l, 100);
}

/* ---- helpers ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
  return rc;
}

/* The log line holding the n-th (from 1) `needle` (malloc'ed; "" when none). */
static char *nth_log_line(const pd_td *d, const char *needle, int n) {
  char *log = pd_td_log(d);
  const char *p = log;
  for (int k = 0; p && k < n; k++) {
    p = strstr(p, needle);
    if (p && k < n - 1) p++;
  }
  size_t len = p ? strcspn(p, "\n") : 0;
  char *line = malloc(len + 1);
  if (line) {
    if (len) memcpy(line, p, len);
    line[len] = '\0';
  }
  free(log);
  return line;
}

/* SIGHUP, keeping the load going until the log shows `needle` `count` times. */
static bool hup(load *l, const pd_td *d, const char *needle, int count) {
  kill(d->pid, SIGHUP);
  double until = pd_td_now_ms() + 60000;
  while (pd_td_now_ms() < until) {
    run_until(l, 100, 500);
    if (pd_td_log_count(d, needle) >= count) return true;
  }
  return false;
}

static pc_client_response *get_stats(const pd_td *d) {
  pc_client *c = pd_td_connect(d, 2);
  pc_client_response *r = NULL;
  if (c && pc_client_stats(c, &r, NULL) != PC_CLIENT_OK) r = NULL;
  pc_client_close(c);
  return r;
}

/* ---- 1. reloads of broken models under load ---- */

static void broken_reloads(pd_test_state *st) {
  char tmp[] = "/tmp/pd-faults-XXXXXX";
  if (!mkdtemp(tmp)) return;
  char live[300], good[300], cfg[300], missing[300];
  snprintf(live, sizeof live, "%s/live", tmp);
  snprintf(good, sizeof good, "%s/good", tmp);
  snprintf(cfg, sizeof cfg, "%s/planktond.yaml", tmp);
  snprintf(missing, sizeof missing, "%s/no-such-model", tmp);
  PD_CHECK_INT(
      st,
      sh("cp -r '%s' '%s' && cp -r '%s' '%s'", pd_td_model_dir(), live, pd_td_model_dir(), good),
      0);
  FILE *f = fopen(cfg, "w");
  fprintf(f, "model:\n  dir: %s\nbatching:\n  max_batch: 8\n  max_queue_delay_us: 500\n", live);
  fclose(f);
  pd_td d;
  const char *args[] = {"--config", cfg, "--metrics", "unix:@DIR@/metrics.sock", NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  load l;
  PD_CHECK_INT(st, load_open(&l, &d, N_CLIENTS), 0);
  run_until(&l, 500, 60000);

  struct {
    const char *what, *damage, *names;
  } cases[] = {
      {"weights truncated to half", NULL, "safetensors"}, /* the size is worked out below */
      {"garbage safetensors header",
       "printf '\\377\\377\\377\\377\\377\\377\\377\\177{{{{' | dd of='%s/weights.safetensors' "
       "conv=notrunc status=none",
       "safetensors"},
      {"garbage model.yaml", "printf 'name: [unclosed\\n  - : :\\n' > '%s/model.yaml'",
       "model.yaml"},
      {"layer shape no longer matches",
       "sed -i 's/filters: 4, kernel: 3, stride: 2/filters: 5, kernel: 3, stride: 2/' "
       "'%s/model.yaml'",
       "weights.safetensors"},
      {"weights file removed", "rm '%s/weights.safetensors'", "weights.safetensors"},
  };
  int failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cmd[1024];
    if (i == 0) { /* half the size */
      long size = 0;
      char path[400];
      snprintf(path, sizeof path, "%s/weights.safetensors", live);
      FILE *w = fopen(path, "rb");
      if (w) {
        fseek(w, 0, SEEK_END);
        size = ftell(w);
        fclose(w);
      }
      snprintf(cmd, sizeof cmd, "truncate -s %ld '%s/weights.safetensors'", size / 2, live);
    } else {
      snprintf(cmd, sizeof cmd, cases[i].damage, live);
    }
    PD_CHECK_INT(st, sh("%s", cmd), 0);
    failures++;
    bool failed = hup(&l, &d, "reload failed", failures);
    PD_CHECK(st, failed);
    /* this reload's own failure line names the file the damage is in */
    char *why = nth_log_line(&d, "reload failed", failures);
    PD_CHECK_CONTAINS(st, why ? why : "", cases[i].names);
    free(why);
    run_until(&l, 300, 60000);
    printf("%-34s -> reload failed (%s), %ld answers OK so far, all from daemon-tiny: %s\n",
           cases[i].what, failed ? "logged" : "NOT LOGGED", l.ok,
           l.by_model[1] + l.by_model[2] == 0 ? "yes" : "no");
    PD_CHECK_INT(st, sh("cp '%s'/* '%s'/", good, live), 0); /* repaired, not reloaded */
  }
  /* the config pointing at a folder that does not exist */
  f = fopen(cfg, "w");
  fprintf(f, "model:\n  dir: %s\n", missing);
  fclose(f);
  failures++;
  PD_CHECK(st, hup(&l, &d, "reload failed", failures));
  run_until(&l, 300, 60000);

  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", "weights.safetensors");
  PD_CHECK_CONTAINS(st, log ? log : "", "model.yaml");
  PD_CHECK_CONTAINS(st, log ? log : "", "no-such-model");
  free(log);
  pc_client_response *r = get_stats(&d);
  PD_CHECK(st, r != NULL);
  if (r) {
    PD_CHECK_INT(st, r->u.stats.model_load_failures, failures);
    PD_CHECK_INT(st, r->u.stats.model_loads, 1);
    PD_CHECK(st, !strcmp(r->u.stats.model_name, "daemon-tiny"));
  }
  pc_client_response_free(r);
  char mpath[400];
  snprintf(mpath, sizeof mpath, "%s/metrics.sock", d.dir);
  char *metrics = pd_raw_metrics(mpath);
  PD_CHECK(st, metrics != NULL);
  if (metrics) {
    PD_CHECK_INT(st, pd_raw_metric(metrics, "planktond_model_load_failures_total"), failures);
    PD_CHECK_INT(st, pd_raw_metric(metrics, "planktond_model_loads_total"), 1);
  }
  free(metrics);

  /* a good reload after all that: another model name, swapped under load */
  f = fopen(cfg, "w");
  fprintf(f, "model:\n  dir: %s\nbatching:\n  max_batch: 8\n  max_queue_delay_us: 500\n", live);
  fclose(f);
  PD_CHECK_INT(st, sh("sed -i 's/^name: daemon-tiny$/name: daemon-tiny-b/' '%s/model.yaml'", live),
               0);
  PD_CHECK(st, hup(&l, &d, "reloaded: model daemon-tiny-b", 1));
  run_until(&l, 500, 60000);
  drain_load(&l);
  printf("%-34s -> %ld answers: %ld OK (%ld daemon-tiny, %ld daemon-tiny-b), %ld wrong, "
         "%ld other, %ld duplicates, %ld unanswered\n",
         "good reload after 6 failures", l.total, l.ok, l.by_model[0], l.by_model[1], l.wrong,
         l.other + l.internal, l.dup, unanswered(&l));
  PD_CHECK_INT(st, unanswered(&l), 0);
  PD_CHECK_INT(st, l.ok, l.total);
  PD_CHECK_INT(st, l.wrong, 0);
  PD_CHECK_INT(st, l.dup, 0);
  PD_CHECK(st, l.by_model[0] > 0 && l.by_model[1] > 0);
  PD_CHECK_INT(st, l.by_model[2], 0);
  load_close(&l);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  if (st->failures) {
    log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s\n", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
  sh("rm -rf '%s'", tmp);
}

/* ---- 2. device errors through the backend interface ---- */

static int start_faulty(pd_td *d, const char *rules, const char *const *args) {
  const char *bin = getenv("PLANKTOND_FAULTINJECT");
  if (!bin || !*bin) {
    fprintf(stderr, "set PLANKTOND_FAULTINJECT\n");
    return -1;
  }
  char env[128];
  snprintf(env, sizeof env, "PD_FAULT_INJECT=%s", rules);
  const char *envs[] = {env, NULL};
  pd_td_opts o = {.binary = bin, .env = envs};
  return pd_td_start_opts(d, &o, args);
}

static pc_client_response *classify(pc_client *c, uint64_t id, int k) {
  pc_client_classify_request rq = {.id = id,
                                   .format = PC_CLIENT_IMAGE_PNG,
                                   .data = crops[k].png,
                                   .len = crops[k].png_len,
                                   .full_distribution = true};
  return pd_td_classify(c, &rq);
}

/* Health's state is `want` (OK for serving, UNAVAILABLE otherwise). */
static bool health_state_is(pc_client *c, const char *want) {
  pc_client_response *h = NULL;
  bool ok = pc_client_health(c, &h, NULL) == PC_CLIENT_OK && h->u.health.state &&
            strcmp(h->u.health.state, want) == 0 &&
            h->status == (strcmp(want, "serving") == 0 ? 0 : PC_CLIENT_STATUS_UNAVAILABLE);
  if (!ok)
    fprintf(stderr, "  health: want %s, got %s (%s)\n", want,
            h && h->u.health.state ? h->u.health.state : "no answer", h ? h->message : "");
  pc_client_response_free(h);
  return ok;
}

static void faults_batch_of_one(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "1", "--threads", "1", NULL};
  if (start_faulty(&d, "every=3", args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client *c = pd_td_connect(&d, 4);
  int ok = 0, internal = 0, wrong = 0;
  for (int i = 1; i <= 30; i++) {
    pc_client_response *r = classify(c, (uint64_t)i, i % N_CROPS);
    bool should_fail = i % 3 == 0;
    PD_CHECK(st, r != NULL);
    if (!r) break;
    PD_CHECK_INT(st, r->status, should_fail ? PC_CLIENT_STATUS_INTERNAL : 0);
    if (r->status == 0) {
      ok++;
      wrong += !right_answer(r, i % N_CROPS);
    } else if (r->status == PC_CLIENT_STATUS_INTERNAL) {
      internal++;
      char want[64];
      snprintf(want, sizeof want, "injected device fault on run %d ", i);
      PD_CHECK_CONTAINS(st, r->message, want);
    }
    pc_client_response_free(r);
  }
  printf("%-34s -> %d OK (%d wrong), %d INTERNAL: exactly runs 3, 6, ... 30\n",
         "device error every 3rd batch of 1", ok, wrong, internal);
  PD_CHECK_INT(st, ok, 20);
  PD_CHECK_INT(st, internal, 10);
  PD_CHECK_INT(st, wrong, 0);
  /* one failure at a time (run 30 was one): still "serving" */
  PD_CHECK(st, health_state_is(c, "serving"));
  pc_client_close(c);
  PD_CHECK(st, pd_td_wait_log(&d, "injected device fault", pd_td_scaled_s(1)));
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

static void faults_in_shared_batches(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "8",         "--max-queue-delay-us",    "3000", "--threads",
                        "1",           "--metrics", "unix:@DIR@/metrics.sock", NULL};
  if (start_faulty(&d, "every=4", args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  load l;
  PD_CHECK_INT(st, load_open(&l, &d, N_CLIENTS), 0);
  run_until(&l, 3000, 120000);
  drain_load(&l);
  long exact = 0, failed_requests = 0, multi = 0;
  for (int i = 0; i < l.n_fail_runs; i++) {
    exact += l.fail_count[i] == l.fail_batch[i];
    failed_requests += l.fail_count[i];
    multi += l.fail_batch[i] > 1;
  }
  printf("%-34s -> %ld answers: %ld OK (%ld wrong), %ld INTERNAL from %d failed batches "
         "(%ld of them shared by several requests); each failed batch failed exactly its own "
         "requests: %s\n",
         "device error every 4th batch", l.total, l.ok, l.wrong, l.internal, l.n_fail_runs, multi,
         exact == l.n_fail_runs ? "yes" : "NO");
  PD_CHECK_INT(st, unanswered(&l), 0);
  PD_CHECK_INT(st, l.dup, 0);
  PD_CHECK_INT(st, l.other, 0);
  PD_CHECK_INT(st, l.wrong, 0);
  PD_CHECK(st, l.n_fail_runs > 0 && l.ok > 0);
  PD_CHECK_INT(st, exact, l.n_fail_runs);
  PD_CHECK_INT(st, failed_requests, l.internal);
  PD_CHECK_INT(st, l.ok + l.internal, l.total);
  /* every 4th run failed: failed runs are 4, 8, 12, ... */
  for (int i = 0; i < l.n_fail_runs; i++)
    PD_CHECK_INT(st, l.fail_run[i] % 4, 0);
  char mpath[400];
  snprintf(mpath, sizeof mpath, "%s/metrics.sock", d.dir);
  char *metrics = pd_raw_metrics(mpath);
  PD_CHECK(st, metrics != NULL);
  if (metrics) {
    double fails = pd_raw_metric(metrics, "planktond_inference_exec_failure_total");
    double execs = pd_raw_metric(metrics, "planktond_inference_exec_count_total");
    PD_CHECK_INT(st, fails, l.n_fail_runs);
    PD_CHECK_INT(st, execs / 4, l.n_fail_runs); /* every 4th of all runs */
    PD_CHECK_INT(st,
                 pd_raw_metric(metrics, "planktond_inference_request_total{status=\"INTERNAL\"}"),
                 l.internal);
  }
  free(metrics);
  pc_client_response *r = get_stats(&d);
  PD_CHECK(st, r != NULL);
  if (r) PD_CHECK_INT(st, r->u.stats.batch_failures, l.n_fail_runs);
  pc_client_response_free(r);
  load_close(&l);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

static void slow_device_overlaps(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "8",         "--max-queue-delay-us",    "3000", "--threads",
                        "1",           "--metrics", "unix:@DIR@/metrics.sock", NULL};
  if (start_faulty(&d, "delay_ms=20,device_error=10", args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  load l;
  PD_CHECK_INT(st, load_open(&l, &d, N_CLIENTS), 0);
  run_until(&l, 400, 120000);
  drain_load(&l);
  char mpath[400];
  snprintf(mpath, sizeof mpath, "%s/metrics.sock", d.dir);
  char *metrics = pd_raw_metrics(mpath);
  PD_CHECK(st, metrics != NULL);
  double overlapped = -1, execs = -1;
  if (metrics) {
    overlapped = pd_raw_metric(metrics, "planktond_batches_overlapped_total");
    execs = pd_raw_metric(metrics, "planktond_inference_exec_count_total");
  }
  free(metrics);
  printf("%-34s -> %ld answers: %ld OK (%ld wrong), %ld INTERNAL (run %ld, batch of %ld); "
         "%.0f of %.0f batches gathered while the previous one was in flight\n",
         "slow device (20 ms a batch)", l.total, l.ok, l.wrong, l.internal,
         l.n_fail_runs ? l.fail_run[0] : -1, l.n_fail_runs ? l.fail_batch[0] : -1, overlapped,
         execs);
  PD_CHECK_INT(st, unanswered(&l), 0);
  PD_CHECK_INT(st, l.dup, 0);
  PD_CHECK_INT(st, l.other, 0);
  PD_CHECK_INT(st, l.wrong, 0);
  PD_CHECK_INT(st, l.ok + l.internal, l.total);
  /* the sticky error of run 10: exactly its own batch, once */
  PD_CHECK_INT(st, l.n_fail_runs, 1);
  if (l.n_fail_runs == 1) {
    PD_CHECK_INT(st, l.fail_run[0], 10);
    PD_CHECK_INT(st, l.fail_count[0], l.fail_batch[0]);
    PD_CHECK_INT(st, l.internal, l.fail_batch[0]);
  }
  /* 64 requests outstanding, batches of 8: a next batch is ready while
   * almost every one computes */
  PD_CHECK(st, overlapped > 0 && overlapped < execs);
  load_close(&l);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

static void device_stays_broken(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "1", "--threads", "1", NULL};
  if (start_faulty(&d, "after=5", args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client *c = pd_td_connect(&d, 4);
  int ok = 0, internal = 0;
  for (int i = 1; i <= 20; i++) {
    pc_client_response *r = classify(c, (uint64_t)i, i % N_CROPS);
    if (!r) break;
    ok += r->status == 0;
    internal += r->status == PC_CLIENT_STATUS_INTERNAL;
    pc_client_response_free(r);
  }
  /* answering, but Health says the device is failing (and /metrics why) */
  pc_client_response *h = NULL;
  PD_CHECK(st, pc_client_health(c, &h, NULL) == PC_CLIENT_OK &&
                   h->status == PC_CLIENT_STATUS_UNAVAILABLE && h->u.health.state &&
                   strcmp(h->u.health.state, "failing") == 0 &&
                   strstr(h->message, "failed the last 15 batches"));
  char state[32];
  snprintf(state, sizeof state, "%s", h && h->u.health.state ? h->u.health.state : "?");
  pc_client_response_free(h);
  printf("%-34s -> %d OK, then %d INTERNAL; still answering, Health says %s\n",
         "device broken after run 5", ok, internal, state);
  PD_CHECK_INT(st, ok, 5);
  PD_CHECK_INT(st, internal, 15);
  pc_client_response *s = NULL;
  PD_CHECK(st, pc_client_stats(c, &s, NULL) == PC_CLIENT_OK && s);
  if (s) {
    PD_CHECK_INT(st, s->u.stats.batch_failures, 15);
    PD_CHECK_INT(st, s->u.stats.batch_failures_in_a_row, 15);
  }
  pc_client_response_free(s);
  pc_client_close(c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

/* Runs 3 to 6 fail: "failing" from the third failure in a row, "serving"
 * again after the next success. */
static void device_recovers(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "1", "--threads", "1", NULL};
  if (start_faulty(&d, "runs=3:6", args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client *c = pd_td_connect(&d, 4);
  const char *want[] = {"",        "serving", "serving", "serving", "serving",
                        "failing", "failing", "serving", "serving"};
  int right = 0;
  for (int i = 1; i <= 8; i++) {
    pc_client_response *r = classify(c, (uint64_t)i, i % N_CROPS);
    PD_CHECK(st, r != NULL);
    if (!r) break;
    PD_CHECK_INT(st, r->status, i >= 3 && i <= 6 ? PC_CLIENT_STATUS_INTERNAL : 0);
    pc_client_response_free(r);
    bool ok = health_state_is(c, want[i]);
    PD_CHECK(st, ok);
    right += ok;
  }
  printf("%-34s -> Health after each of 8 runs as expected %d/8 (failing after the 3rd failure "
         "in a row, serving after the next success)\n",
         "device fails runs 3-6", right);
  pc_client_close(c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  K = ref.model->n_classes;
  for (int i = 0; i < N_CROPS; i++) {
    crop *c = &crops[i];
    c->w = 24 + i * 13;
    c->h = 20 + i * 9;
    c->gray = pd_td_crop((uint64_t)i + 40, c->w, c->h);
    c->png = pd_td_png(c->gray, c->w, c->h, &c->png_len);
    c->probs = malloc((size_t)K * sizeof(float));
    if (!c->png || !c->probs || pd_td_ref_probs(&ref, c->gray, c->w, c->h, c->probs) != 0) return 1;
  }
  return 0;
}

static void teardown(void) {
  pd_td_crops_free(crops, N_CROPS);
  pd_td_ref_close(&ref);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(broken_reloads),      PD_TEST_CASE(device_recovers),
    PD_TEST_CASE(faults_batch_of_one), PD_TEST_CASE(faults_in_shared_batches),
    PD_TEST_CASE(device_stays_broken), PD_TEST_CASE(slow_device_overlaps),
};

PD_TEST_MAIN("daemon_faults", setup, teardown, k_cases)
