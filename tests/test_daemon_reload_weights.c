/* A SIGHUP reload to other weights and another class count under load,
 * every answer matched to the model it claims. The daemon
 * (planktond-faultinject, each plan run slowed by PD_FAULT_INJECT=delay_ms)
 * serves the folder a symlink points at; the test repoints the symlink
 * atomically from daemon_tiny (12 classes, version 1) to reload_b ($PD_TEST_MODEL_B:
 * 7 classes, version 7, other weights) and back, with a SIGHUP each time,
 * while 4 clients pipeline full-distribution requests over 8 crops. Each
 * answer's model name and version say which model answered; its
 * distribution must have that model's class count and equal that model's
 * engine (run in this process) to 1e-5. No request fails, both models
 * answer, requests are in flight at each SIGHUP, and in each connection's
 * id order the model changes at most once per reload (old requests finish
 * on the old model, new ones use the new). */
#include <math.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_wait.h"
#include "pd_test.h"

#define PROB_TOL 1e-5
#define N_CROPS 8
#define N_CLIENTS 4
#define WINDOW 16
#define MAX_SENT 20000
#define MAX_BATCH 4 /* batching.max_batch in the config */

static pd_test_state st;

typedef struct model_ref {
  const char *name, *version;
  int k;
  float *probs[N_CROPS];
  long answers;
  int largest_batch; /* in its answers */
} model_ref;

static model_ref models[2];
static uint8_t *png[N_CROPS];
static size_t png_len[N_CROPS];

typedef struct load {
  pc_client *c[N_CLIENTS];
  bool closed[N_CLIENTS];
  uint64_t sent[N_CLIENTS];
  uint8_t *model_of[N_CLIENTS]; /* per id: 0 unanswered, else 1 + the model index (3: failed) */
  long total, failed, unknown_model, wrong_k, wrong_probs, dup, bad_batch;
  float max_diff;
} load;

static int ref_for(const char *dir, model_ref *m, const char *name, const char *version) {
  pd_td_ref r;
  if (pd_td_ref_open(&r, dir) != 0) return -1;
  m->name = name;
  m->version = version;
  m->k = r.model->n_classes;
  int rc = strcmp(r.model->name, name) == 0 ? 0 : -1;
  for (int i = 0; rc == 0 && i < N_CROPS; i++) {
    int w = 40 + 13 * i, h = 30 + 7 * i;
    uint8_t *g = pd_td_crop(100 + (uint64_t)i, w, h);
    m->probs[i] = malloc((size_t)m->k * sizeof(float));
    rc = g && m->probs[i] ? pd_td_ref_probs(&r, g, w, h, m->probs[i]) : -1;
    if (!png[i] && g) png[i] = pd_td_png(g, w, h, &png_len[i]);
    free(g);
  }
  pd_td_ref_close(&r);
  return rc;
}

static void check_answer(load *l, int client, const pc_client_response *r) {
  if (r->id >= l->sent[client] || l->model_of[client][r->id] != 0) {
    l->dup++;
    return;
  }
  if (r->status != 0) {
    if (l->failed++ < 5)
      fprintf(stderr, "  answer %s: %s\n", pc_client_status_name(r->status), r->message);
    l->model_of[client][r->id] = 3;
    return;
  }
  const pc_client_classify_result *c = &r->u.classify;
  int m = -1;
  for (int i = 0; i < 2; i++)
    if (!strcmp(c->model_name, models[i].name) && !strcmp(c->model_version, models[i].version))
      m = i;
  if (m < 0) {
    l->unknown_model++;
    l->model_of[client][r->id] = 3;
    return;
  }
  l->model_of[client][r->id] = (uint8_t)(m + 1);
  models[m].answers++;
  if (c->batch_size < 1 || c->batch_size > MAX_BATCH) l->bad_batch++;
  if ((int)c->batch_size > models[m].largest_batch) models[m].largest_batch = (int)c->batch_size;
  if ((int)c->n_distribution != models[m].k) {
    l->wrong_k++;
    return;
  }
  const float *want = models[m].probs[r->id % N_CROPS];
  float worst = 0;
  for (int k = 0; k < models[m].k; k++) {
    float d = fabsf(c->distribution[k] - want[k]);
    if (!(d <= worst)) worst = d; /* NaN counts as worst */
  }
  if (!(worst <= l->max_diff)) l->max_diff = worst;
  if (!(worst <= PROB_TOL)) l->wrong_probs++;
}

/* One round: fill the windows (while sending), poll, check answers. */
static void load_step(load *l, bool sending) {
  struct pollfd pf[N_CLIENTS];
  pc_client_error err;
  for (int i = 0; i < N_CLIENTS; i++) {
    pf[i].fd = -1;
    pf[i].revents = 0;
    if (l->closed[i]) continue;
    while (sending && l->sent[i] < MAX_SENT) {
      uint64_t id = l->sent[i];
      pc_client_classify_request rq = {.id = id,
                                       .format = PC_CLIENT_IMAGE_PNG,
                                       .data = png[id % N_CROPS],
                                       .len = png_len[id % N_CROPS],
                                       .full_distribution = true};
      if (pc_client_send_classify(l->c[i], &rq, &err) != PC_CLIENT_OK) break;
      l->sent[i]++;
    }
    pf[i].fd = pc_client_fd(l->c[i]);
    pf[i].events = pc_client_events(l->c[i]);
  }
  poll(pf, N_CLIENTS, 50);
  for (int i = 0; i < N_CLIENTS; i++) {
    if (pf[i].fd < 0 || !pf[i].revents) continue;
    int rc = pc_client_process(l->c[i], pf[i].revents, &err);
    pc_client_response *r;
    while (pc_client_next_response(l->c[i], &r) == PC_CLIENT_OK) {
      l->total++;
      check_answer(l, i, r);
      pc_client_response_free(r);
    }
    if (rc != PC_CLIENT_OK) l->closed[i] = true;
  }
}

static void run_answers(load *l, long n) {
  long target = l->total + n;
  double until = pd_td_now_ms() + pd_td_scaled_ms(60000);
  while (l->total < target && pd_td_now_ms() < until)
    load_step(l, true);
}

static int in_flight(const load *l) {
  int n = 0;
  for (int i = 0; i < N_CLIENTS; i++)
    n += l->closed[i] ? 0 : pc_client_in_flight(l->c[i]);
  return n;
}

/* Points `link` at `target` atomically (a new symlink renamed over it). */
static int repoint(const char *link, const char *target) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.next", link);
  unlink(tmp);
  if (symlink(target, tmp) != 0) return -1;
  return rename(tmp, link);
}

/* Repoints the model, sends SIGHUP under load and keeps the load going
 * until the log shows the reload (count-th such line). Returns the
 * requests in flight at the signal. */
static int reload_to(load *l, const pd_td *d, const char *link, const char *target,
                     const char *needle, int count) {
  PD_CHECK_INT(&st, repoint(link, target), 0);
  int owed = in_flight(l);
  PD_CHECK_INT(&st, kill(d->pid, SIGHUP), 0);
  double until = pd_td_now_ms() + pd_td_scaled_ms(30000);
  while (pd_td_log_count(d, needle) < count && pd_td_now_ms() < until)
    run_answers(l, 20);
  PD_CHECK_INT(&st, pd_td_log_count(d, needle), count);
  return owed;
}

int main(void) {
  if (!pd_td_have_model()) return 77;
  const char *dir_b = getenv("PD_TEST_MODEL_B");
  if (!dir_b || !*dir_b) {
    fprintf(stderr, "set PD_TEST_MODEL_B (meson test builds it)\n");
    return 1;
  }
  if (ref_for(pd_td_model_dir(), &models[0], "daemon-tiny", "1") != 0 ||
      ref_for(dir_b, &models[1], "reload-b", "7") != 0) {
    fprintf(stderr, "cannot run the reference engines\n");
    return 1;
  }
  PD_CHECK(&st, models[0].k != models[1].k); /* the test's own premise */

  char tmp[] = "/tmp/pd-reload-weights-XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  char link[300], cfg[300], text[1200];
  snprintf(link, sizeof link, "%s/current", tmp);
  snprintf(cfg, sizeof cfg, "%s/planktond.yaml", tmp);
  PD_CHECK_INT(&st, repoint(link, pd_td_model_dir()), 0);
  snprintf(text, sizeof text,
           "# written by test_daemon_reload_weights\nmodel:\n  dir: %s\nengine:\n  backend: %s\n"
           "batching:\n  max_batch: %d\n  max_queue_delay_us: 500\n",
           link, pd_td_backend(), MAX_BATCH);
  FILE *f = fopen(cfg, "w");
  PD_CHECK(&st, f && fputs(text, f) >= 0 && fclose(f) == 0);

  const char *bin = getenv("PLANKTOND_FAULTINJECT");
  const char *env[] = {"PD_FAULT_INJECT=delay_ms=15", NULL};
  pd_td_opts o = {.binary = bin, .env = env};
  const char *args[] = {"--config", cfg, NULL};
  pd_td d;
  if (!bin || pd_td_start_opts(&d, &o, args) != 0) {
    PD_CHECK(&st, 0);
    pd_td_cleanup(&d);
    return pd_test_finish(&st, "daemon_reload_weights");
  }
  load l;
  memset(&l, 0, sizeof l);
  for (int i = 0; i < N_CLIENTS; i++) {
    l.c[i] = pd_td_connect(&d, WINDOW);
    l.model_of[i] = calloc(MAX_SENT, 1);
    PD_CHECK(&st, l.c[i] != NULL);
    l.closed[i] = !l.c[i];
  }
  run_answers(&l, 300);
  long a_before = models[0].answers;
  int owed1 = reload_to(&l, &d, link, dir_b, "reloaded: model reload-b", 1);
  run_answers(&l, 300);
  long b_seen = models[1].answers;
  int owed2 = reload_to(&l, &d, link, pd_td_model_dir(), "reloaded: model daemon-tiny ", 1);
  run_answers(&l, 300);
  double until = pd_td_now_ms() + pd_td_scaled_ms(30000);
  while (in_flight(&l) > 0 && pd_td_now_ms() < until)
    load_step(&l, false);

  long sent = 0, unanswered = 0;
  int max_switches = 0;
  bool starts_a = true, ends_a = true;
  for (int i = 0; i < N_CLIENTS; i++) {
    sent += (long)l.sent[i];
    int switches = 0, last = -1;
    for (uint64_t id = 0; id < l.sent[i]; id++) {
      int m = (int)l.model_of[i][id] - 1;
      if (m < 0) {
        unanswered++;
        continue;
      }
      if (last >= 0 && m != last) switches++;
      if (last < 0) starts_a &= m == 0;
      last = m;
    }
    ends_a &= last == 0;
    if (switches > max_switches) max_switches = switches;
  }
  PD_CHECK_INT(&st, unanswered, 0);
  PD_CHECK_INT(&st, l.total, sent);
  PD_CHECK_INT(&st, l.dup, 0);
  PD_CHECK_INT(&st, l.failed, 0);
  PD_CHECK_INT(&st, l.unknown_model, 0);
  PD_CHECK_INT(&st, l.wrong_k, 0);
  PD_CHECK_INT(&st, l.wrong_probs, 0);
  PD_CHECK_INT(&st, l.bad_batch, 0); /* batches within max_batch on both models */
  /* shared batches on both models: a batch mixing them would show above */
  PD_CHECK(&st, models[0].largest_batch > 1 && models[1].largest_batch > 1);
  PD_CHECK(&st, a_before > 0 && b_seen > 0 && models[0].answers > a_before);
  PD_CHECK(&st, owed1 > 0 && owed2 > 0); /* requests were in flight across each reload */
  PD_CHECK(&st, max_switches <= 2);
  PD_CHECK(&st, starts_a && ends_a);
  printf("reload to other weights under load: %ld answers, all OK; %ld from daemon-tiny (%d "
         "classes), %ld from reload-b (%d classes); largest difference from the engine %.2g; "
         "%d and %d requests in flight at the two SIGHUPs; at most %d model changes in a "
         "connection's id order; largest batches %d and %d\n",
         l.total, models[0].answers, models[0].k, models[1].answers, models[1].k,
         (double)l.max_diff, owed1, owed2, max_switches, models[0].largest_batch,
         models[1].largest_batch);
  for (int i = 0; i < N_CLIENTS; i++) {
    pc_client_close(l.c[i]);
    free(l.model_of[i]);
  }
  PD_CHECK_INT(&st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  if (st.failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
  PD_CHECK(&st, unlink(link) == 0 && unlink(cfg) == 0 && rmdir(tmp) == 0);
  for (int m = 0; m < 2; m++)
    for (int i = 0; i < N_CROPS; i++)
      free(models[m].probs[i]);
  for (int i = 0; i < N_CROPS; i++)
    free(png[i]);
  return pd_test_finish(&st, "daemon_reload_weights");
}
