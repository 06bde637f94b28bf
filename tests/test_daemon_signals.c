/* Signals under load, through the real client library:
 *  - sigterm: 16 clients pipelining; the clients stop sending when the
 *    signal goes; every request sent gets exactly one answer (OK, or
 *    UNAVAILABLE for one the daemon read after the drain began), new
 *    connections are refused, and the daemon exits 0;
 *  - sighup: 16 clients pipelining without pause while the config file
 *    switches the model (to a copy under another name), then points at a
 *    missing model and then holds an unknown key (both reloads fail and the
 *    previous model keeps serving), then switches back with other batching
 *    limits: no request fails, and the answers' model name follows the
 *    successful reloads. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_test_cases.h"

static uint8_t *png;
static size_t png_len;

#define N_CLIENTS 16
#define WINDOW 8
#define MAX_SENT 200000

typedef struct load {
  pc_client *c[N_CLIENTS];
  struct pollfd pf[N_CLIENTS];
  bool sending, closed[N_CLIENTS];
  uint64_t sent[N_CLIENTS];
  unsigned char *answered[N_CLIENTS]; /* per request: answers seen */
  long ok, unavailable, other, dup, total;
  char last_model[64];
  long by_model[3]; /* answers from daemon-tiny, daemon-tiny-b, other */
  int model_switches;
} load;

static int load_open(load *l, const pd_td *d) {
  memset(l, 0, sizeof *l);
  l->sending = true;
  for (int i = 0; i < N_CLIENTS; i++) {
    l->c[i] = pd_td_connect(d, WINDOW);
    l->answered[i] = calloc(MAX_SENT, 1);
    if (!l->c[i]) return -1;
  }
  return 0;
}

static void load_close(load *l) {
  for (int i = 0; i < N_CLIENTS; i++) {
    pc_client_close(l->c[i]);
    free(l->answered[i]);
  }
}

/* One round: send while the windows have room, poll, take answers.
 * Returns the number of clients still connected. */
static int load_step(load *l, int timeout_ms) {
  pc_client_error err;
  int open = 0;
  for (int i = 0; i < N_CLIENTS; i++) {
    l->pf[i].fd = -1;
    if (l->closed[i]) continue;
    open++;
    while (l->sending && l->sent[i] < MAX_SENT) {
      pc_client_classify_request rq = {
          .id = l->sent[i], .format = PC_CLIENT_IMAGE_PNG, .data = png, .len = png_len};
      int rc = pc_client_send_classify(l->c[i], &rq, &err);
      if (rc != PC_CLIENT_OK) break;
      l->sent[i]++;
    }
    l->pf[i].fd = pc_client_fd(l->c[i]);
    l->pf[i].events = pc_client_events(l->c[i]);
    l->pf[i].revents = 0;
  }
  if (!open) return 0;
  poll(l->pf, N_CLIENTS, timeout_ms);
  for (int i = 0; i < N_CLIENTS; i++) {
    if (l->closed[i] || !l->pf[i].revents) continue;
    int rc = pc_client_process(l->c[i], l->pf[i].revents, &err);
    pc_client_response *r;
    while (pc_client_next_response(l->c[i], &r) == PC_CLIENT_OK) {
      l->total++;
      if (r->id >= l->sent[i] || l->answered[i][r->id]++) {
        l->dup++;
      } else if (r->status == 0) {
        l->ok++;
        const char *m = r->u.classify.model_name;
        int k = !strcmp(m, "daemon-tiny") ? 0 : !strcmp(m, "daemon-tiny-b") ? 1 : 2;
        l->by_model[k]++;
        if (strcmp(m, l->last_model)) {
          if (l->last_model[0]) l->model_switches++;
          snprintf(l->last_model, sizeof l->last_model, "%s", m);
        }
      } else if (r->status == PC_CLIENT_STATUS_UNAVAILABLE) {
        l->unavailable++;
      } else {
        l->other++;
        if (l->other < 5)
          fprintf(stderr, "answer %s: %s\n", pc_client_status_name(r->status), r->message);
      }
      pc_client_response_free(r);
    }
    if (rc != PC_CLIENT_OK) l->closed[i] = true;
  }
  return open;
}

static long unanswered(const load *l) {
  long n = 0;
  for (int i = 0; i < N_CLIENTS; i++)
    for (uint64_t k = 0; k < l->sent[i]; k++)
      n += !l->answered[i][k];
  return n;
}

static void run_until(load *l, long answers, double max_ms) {
  double until = pd_td_now_ms() + max_ms;
  long target = l->total + answers;
  while (l->total < target && pd_td_now_ms() < until)
    load_step(l, 100);
}

/* ---- SIGTERM ---- */

static void sigterm(pd_test_state *st) {
  pd_td d;
  if (pd_td_start(&d, NULL) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  load l;
  PD_CHECK_INT(st, load_open(&l, &d), 0);
  run_until(&l, 2000, 30000);
  l.sending = false;
  kill(d.pid, SIGTERM);
  double until = pd_td_now_ms() + 30000;
  long left;
  while ((left = unanswered(&l)) > 0 && pd_td_now_ms() < until)
    if (load_step(&l, 100) == 0) break;
  PD_CHECK(st, pd_td_wait_log(&d, "draining", 10));
  pc_client *late = NULL;
  pc_client_options o = {.timeout_ms = 1000};
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", d.socket);
  PD_CHECK(st, pc_client_connect(addr, &o, &late, NULL) != PC_CLIENT_OK); /* no new connections */
  pc_client_close(late);
  long sent = 0;
  for (int i = 0; i < N_CLIENTS; i++)
    sent += (long)l.sent[i];
  PD_CHECK_INT(st, left, 0);
  PD_CHECK_INT(st, l.dup, 0);
  PD_CHECK_INT(st, l.other, 0);
  PD_CHECK_INT(st, l.ok + l.unavailable, sent);
  /* Already exiting: wait for it without a second signal (which could land
   * after the daemon has closed its signal handlers and kill it). */
  int code = pd_td_stop(&d, 0, 30);
  PD_CHECK_INT(st, code, 0);
  PD_CHECK(st, pd_td_wait_log(&d, "drained", 1));
  printf("SIGTERM under load: %ld sent, %ld OK, %ld UNAVAILABLE, %ld unanswered, exit %d\n", sent,
         l.ok, l.unavailable, left, code);
  load_close(&l);
  if (st->failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
}

/* ---- SIGHUP ---- */

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static void write_config(pd_test_state *st, const char *path, const char *model_dir, int max_batch,
                         bool bad_key) {
  char text[2048];
  snprintf(text, sizeof text,
           "# written by test_daemon_signals\nmodel:\n  dir: %s\nbatching:\n  max_batch: %d\n"
           "  max_queue_delay_us: 500\n%s",
           model_dir, max_batch, bad_key ? "limits:\n  max_batchh: 3\n" : "");
  PD_CHECK_INT(st, write_file(path, text), 0);
}

/* Sends SIGHUP and waits for the log to show the outcome (count-th time). */
static bool hup(load *l, const pd_td *d, const char *needle, int count) {
  kill(d->pid, SIGHUP);
  double until = pd_td_now_ms() + 30000;
  while (pd_td_now_ms() < until) {
    run_until(l, 200, 1000);
    if (pd_td_log_count(d, needle) >= count) return true;
  }
  return false;
}

static void sighup(pd_test_state *st) {
  char tmp[] = "/tmp/pd-sighup-XXXXXX";
  if (!mkdtemp(tmp)) return;
  char model_b[300], cfg[300], cmd[1200];
  snprintf(model_b, sizeof model_b, "%s/model-b", tmp);
  snprintf(cfg, sizeof cfg, "%s/planktond.yaml", tmp);
  /* model B: the same weights under another name */
  PD_CHECK_INT(st, pd_td_model_renamed(model_b, "daemon-tiny-b"), 0);
  write_config(st, cfg, pd_td_model_dir(), 16, false);
  pd_td d;
  const char *args[] = {"--config", cfg, NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  load l;
  PD_CHECK_INT(st, load_open(&l, &d), 0);
  run_until(&l, 1000, 30000);
  PD_CHECK(st, !strcmp(l.last_model, "daemon-tiny"));

  write_config(st, cfg, model_b, 16, false); /* 1: switch to model B */
  PD_CHECK(st, hup(&l, &d, "reloaded: model daemon-tiny-b", 1));
  run_until(&l, 1000, 30000);
  PD_CHECK(st, !strcmp(l.last_model, "daemon-tiny-b"));

  char missing[400];
  snprintf(missing, sizeof missing, "%s/no-such-model", tmp);
  write_config(st, cfg, missing, 16, false); /* 2: a model that does not load */
  PD_CHECK(st, hup(&l, &d, "reload failed", 1));
  write_config(st, cfg, model_b, 16, true); /* 3: a config with an unknown key */
  PD_CHECK(st, hup(&l, &d, "reload failed", 2));
  run_until(&l, 1000, 30000);
  PD_CHECK(st, !strcmp(l.last_model, "daemon-tiny-b")); /* B kept serving */

  write_config(st, cfg, pd_td_model_dir(), 4, false); /* 4: back to A, smaller batches */
  PD_CHECK(st, hup(&l, &d, "reloaded: model daemon-tiny ", 1));
  run_until(&l, 1000, 30000);
  PD_CHECK(st, !strcmp(l.last_model, "daemon-tiny"));

  l.sending = false;
  double until = pd_td_now_ms() + 30000;
  while (unanswered(&l) > 0 && pd_td_now_ms() < until)
    load_step(&l, 100);
  PD_CHECK_INT(st, unanswered(&l), 0);
  PD_CHECK_INT(st, l.dup, 0);
  PD_CHECK_INT(st, l.other, 0);
  PD_CHECK_INT(st, l.unavailable, 0);
  PD_CHECK(st, l.by_model[0] > 0 && l.by_model[1] > 0);
  PD_CHECK_INT(st, l.by_model[2], 0);
  printf("SIGHUP under load: %ld answers, all OK: %ld from daemon-tiny, %ld from daemon-tiny-b; "
         "%d model switches seen by the clients\n",
         l.total, l.by_model[0], l.by_model[1], l.model_switches);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", "no-such-model");
  PD_CHECK_CONTAINS(st, log ? log : "", "max_batchh");
  PD_CHECK_CONTAINS(st, log ? log : "", "max_batch 4,");
  if (st->failures) fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
  free(log);
  load_close(&l);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  PD_CHECK_INT(st, system(cmd), 0);
}

static uint8_t *gray;

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  gray = pd_td_crop(9, 80, 60);
  png = pd_td_png(gray, 80, 60, &png_len);
  return png ? 0 : 1;
}

static void teardown(void) {
  free(gray);
  free(png);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(sigterm),
    PD_TEST_CASE(sighup),
};

PD_TEST_MAIN("daemon_signals", setup, teardown, k_cases)
