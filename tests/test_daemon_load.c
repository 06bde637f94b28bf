/* The daemon under load, through the real client library on a real socket:
 *  1. pipelining: one connection, valid and invalid requests interleaved;
 *     answers come back out of order and each id exactly once;
 *  2. 64 concurrent clients x N requests (N = $PD_TEST_REQUESTS, default
 *     1000), raw gray8 and PNG, driven from one poll() loop: every request is
 *     answered exactly once, with its id, and with the probabilities the
 *     engine gives for that crop when run directly;
 *  3. TTA: 4 and 40 transforms (40 > max_batch: the engine runs one
 *     request in several runs) give the engine's own TTA average;
 *  4. batching really happens: the batch-size histogram (Stats) shows
 *     batches > 1; a daemon with max_batch 1 runs only batches of 1. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pd_daemon_test.h"
#include "pd_test_cases.h"

#define N_CROPS 32
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */

static pd_td_crop_ref crops[N_CROPS];
static pd_td_ref ref;

static pc_client_classify_request crop_request(uint64_t id, int k, bool png) {
  return pd_td_crop_request(&crops[k], id, png);
}

/* Checks an OK answer against the engine's probabilities for crop k. */
static double check_answer(pd_test_state *st, const pc_client_response *r, int k) {
  const pc_client_classify_result *c = &r->u.classify;
  const int K = ref.model->n_classes;
  PD_CHECK_INT(st, r->status, 0);
  if (r->status != 0) {
    fprintf(stderr, "  id %llu: %s: %s\n", (unsigned long long)r->id,
            pc_client_status_name(r->status), r->message);
    return 1.0;
  }
  PD_CHECK_INT(st, c->n_distribution, K);
  PD_CHECK_INT(st, c->n_top, 3);
  if ((int)c->n_distribution != K || c->n_top != 3) return 1.0;
  double worst = pd_td_crop_diff(&crops[k], &ref, c->distribution, c->n_distribution);
  int best = 0;
  for (int j = 0; j < K; j++)
    if (crops[k].probs[j] > crops[k].probs[best]) best = j;
  PD_CHECK(st, worst <= PROB_TOL);
  PD_CHECK_INT(st, c->top[0].index, best);
  PD_CHECK(st, !strcmp(c->top[0].label, ref.model->classes[best]));
  PD_CHECK(st, c->top[0].probability >= c->top[1].probability);
  PD_CHECK(st, !strcmp(c->model_name, ref.model->name));
  return worst;
}

/* ---- 1. pipelining ---- */

static void test_pipelining(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 64);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  enum { N = 40 };
  int order[N], n_answers = 0, seen[N] = {0};
  pc_client_error err;
  for (int i = 0; i < N; i++) {
    pc_client_classify_request r = crop_request((uint64_t)i, i % N_CROPS, i % 2 == 0);
    if (i % 4 == 3) r.model = "no-such-model"; /* answered at once, on the loop */
    PD_CHECK_INT(st, pc_client_send_classify(c, &r, &err), PC_CLIENT_OK);
  }
  while (n_answers < N) {
    if (pc_client_wait(c, 10000, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "pipelining: %s\n", err.message);
      PD_CHECK(st, 0);
      break;
    }
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      PD_CHECK_INT(st, r->kind, PC_CLIENT_RESPONSE_CLASSIFY);
      int id = (int)r->id;
      PD_CHECK(st, id >= 0 && id < N);
      if (id >= 0 && id < N) {
        PD_CHECK_INT(st, seen[id], 0);
        seen[id]++;
        if (id % 4 == 3) {
          PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_NOT_FOUND);
          PD_CHECK_CONTAINS(st, r->message, "no-such-model");
        } else {
          check_answer(st, r, id % N_CROPS);
        }
        order[n_answers++] = id;
      }
      pc_client_response_free(r);
    }
  }
  int out_of_order = 0;
  for (int i = 1; i < n_answers; i++)
    out_of_order += order[i] < order[i - 1];
  PD_CHECK(st, out_of_order > 0);
  PD_CHECK_INT(st, pc_client_in_flight(c), 0);
  printf("pipelining: %d answers, %d out of order\n", n_answers, out_of_order);
  pc_client_close(c);
}

/* ---- 3. TTA ---- */

static void test_tta(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 8);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  const int K = ref.model->n_classes;
  float *want = malloc((size_t)K * sizeof(float));
  const int counts[] = {4, 40};
  for (int i = 0; i < 2; i++) {
    const pd_td_crop_ref *cr = &crops[i + 3];
    PD_CHECK_INT(st, pd_td_ref_probs_tta(&ref, cr->gray, cr->w, cr->h, counts[i], want), 0);
    pc_client_classify_request rq = crop_request((uint64_t)i, i + 3, true);
    rq.tta = (uint32_t)counts[i];
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_classify(c, &rq, &r, &err), PC_CLIENT_OK);
    if (!r) continue;
    PD_CHECK_INT(st, r->status, 0);
    PD_CHECK_INT(st, r->u.classify.tta, counts[i]);
    PD_CHECK_INT(st, r->u.classify.n_distribution, K);
    double worst = 0, diff_plain = 0;
    for (int j = 0; j < K && r->u.classify.n_distribution == (size_t)K; j++) {
      double dd = fabs((double)r->u.classify.distribution[j] - want[j]);
      if (dd > worst) worst = dd;
      diff_plain += fabs((double)want[j] - cr->probs[j]);
    }
    PD_CHECK(st, worst <= PROB_TOL);
    PD_CHECK(st, diff_plain > 1e-4); /* TTA really changed the answer */
    printf("tta %d: max |p - engine| %.2g (batch %u)\n", counts[i], worst,
           r->u.classify.batch_size);
    pc_client_response_free(r);
  }
  free(want);
  pc_client_close(c);
}

/* ---- 4. many clients ---- */

typedef struct load_client {
  pc_client *c;
  int sent, answered;
  unsigned char *seen;
} load_client;

/* Runs n_clients x per_client requests with `window` in flight per client. */
static int run_load(pd_test_state *st, const pd_td *d, int n_clients, int per_client, int window,
                    double *worst_out) {
  load_client *lc = calloc((size_t)n_clients, sizeof *lc);
  struct pollfd *pf = calloc((size_t)n_clients, sizeof *pf);
  int failures = 0;
  double worst = 0;
  for (int i = 0; i < n_clients; i++) {
    lc[i].c = pd_td_connect(d, window);
    lc[i].seen = calloc((size_t)per_client, 1);
    if (!lc[i].c) return -1;
  }
  int done = 0;
  pc_client_error err;
  while (done < n_clients) {
    for (int i = 0; i < n_clients; i++) {
      load_client *l = &lc[i];
      while (l->sent < per_client) {
        int seq = l->sent;
        pc_client_classify_request r = crop_request((uint64_t)i << 32 | (uint64_t)seq,
                                                    (seq + i) % N_CROPS, (seq + i) % 3 == 0);
        int rc = pc_client_send_classify(l->c, &r, &err);
        if (rc == PC_CLIENT_EAGAIN) break;
        if (rc != PC_CLIENT_OK) {
          fprintf(stderr, "client %d: send: %s\n", i, err.message);
          return -1;
        }
        l->sent++;
      }
      pf[i].fd = pc_client_fd(l->c);
      pf[i].events = l->answered < per_client ? pc_client_events(l->c) : 0;
      pf[i].revents = 0;
    }
    if (poll(pf, (nfds_t)n_clients, 30000) <= 0) {
      fprintf(stderr, "load: no progress for 30 s\n");
      return -1;
    }
    for (int i = 0; i < n_clients; i++) {
      load_client *l = &lc[i];
      if (!pf[i].revents) continue;
      if (pc_client_process(l->c, pf[i].revents, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "client %d: %s\n", i, err.message);
        return -1;
      }
      pc_client_response *r;
      while (pc_client_next_response(l->c, &r) == PC_CLIENT_OK) {
        uint64_t who = r->id >> 32;
        int seq = (int)(r->id & 0xffffffffu);
        if (who != (uint64_t)i || seq >= per_client || l->seen[seq]) {
          failures++;
          fprintf(stderr, "client %d: unexpected answer id %llx\n", i, (unsigned long long)r->id);
        } else {
          l->seen[seq] = 1;
          double w = check_answer(st, r, (seq + i) % N_CROPS);
          if (w > worst) worst = w;
          if (r->status != 0) failures++;
        }
        l->answered++;
        if (l->answered == per_client) done++;
        pc_client_response_free(r);
      }
    }
  }
  for (int i = 0; i < n_clients; i++) {
    for (int s = 0; s < per_client; s++)
      if (!lc[i].seen[s]) failures++;
    PD_CHECK_INT(st, pc_client_in_flight(lc[i].c), 0);
    pc_client_close(lc[i].c);
    free(lc[i].seen);
  }
  free(lc);
  free(pf);
  *worst_out = worst;
  return failures;
}

/* The batch-size histogram from a Stats answer. */
static void batch_stats(pd_test_state *st, const pd_td *d, uint64_t *batches, uint64_t *singles,
                        double *mean) {
  pc_client *c = pd_td_connect(d, 4);
  pc_client_response *r = NULL;
  pc_client_error err;
  *batches = *singles = 0;
  *mean = 0;
  PD_CHECK(st, c && pc_client_stats(c, &r, &err) == PC_CLIENT_OK);
  if (r) {
    const pc_client_stats_result *s = &r->u.stats;
    for (size_t h = 0; h < s->n_histograms; h++) {
      const pc_client_histogram *hg = &s->histograms[h];
      if (strcmp(hg->name, "batch_size")) continue;
      *batches = hg->count;
      *singles = hg->n_bounds > 0 && hg->bounds[0] == 1 ? hg->counts[0] : 0;
      *mean = hg->count ? hg->sum / (double)hg->count : 0;
      printf("batch sizes:");
      uint64_t prev = 0;
      for (size_t i = 0; i < hg->n_bounds; i++) {
        if (hg->counts[i] != prev)
          printf(" <=%g: %llu", hg->bounds[i], (unsigned long long)(hg->counts[i] - prev));
        prev = hg->counts[i];
      }
      printf(" (batches %llu, images %llu, mean %.2f)\n", (unsigned long long)hg->count,
             (unsigned long long)s->images, *mean);
    }
    PD_CHECK_INT(st, s->batches, *batches);
  }
  pc_client_response_free(r);
  pc_client_close(c);
}

/* ---- the cases (pd_test_cases.h) ---- */

static bool start(pd_test_state *st, pd_td *d, const char *const *args) {
  if (pd_td_start(d, args) == 0) return true;
  st->checks++;
  st->failures++;
  fprintf(stderr, "planktond did not start\n");
  pd_td_cleanup(d);
  return false;
}

static void stop(pd_test_state *st, pd_td *d) {
  PD_CHECK_INT(st, pd_td_stop(d, SIGTERM, 30), 0);
  pd_td_cleanup(d);
}

static const char *const k_batching_args[] = {"--max-batch", "32", "--max-queue-delay-us", "1000",
                                              NULL};

static void pipelining(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, k_batching_args)) return;
  PD_CHECK(st, d.ready_notified);
  test_pipelining(st, &d);
  stop(st, &d);
}

static void tta(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, k_batching_args)) return;
  test_tta(st, &d);
  stop(st, &d);
}

static void clients_64(pd_test_state *st) {
  int per_client = getenv("PD_TEST_REQUESTS") ? atoi(getenv("PD_TEST_REQUESTS")) : 1000;
  pd_td d;
  if (!start(st, &d, k_batching_args)) return;
  double t0 = pd_td_now_ms(), worst = 0;
  int failures = run_load(st, &d, 64, per_client, 16, &worst);
  double dt = pd_td_now_ms() - t0;
  PD_CHECK_INT(st, failures, 0);
  printf("64 clients x %d requests: %d failures, %.1f s, %.0f requests/s, max |p - engine| %.2g\n",
         per_client, failures, dt / 1000, 64.0 * per_client / (dt / 1000), worst);
  uint64_t batches, singles;
  double mean;
  batch_stats(st, &d, &batches, &singles, &mean);
  PD_CHECK(st, batches > 0 && singles < batches); /* some batches > 1 */
  PD_CHECK(st, mean > 1.5);
  stop(st, &d);
}

/* max_batch 1: every batch is a single image. */
static void max_batch_1(pd_test_state *st) {
  const char *args1[] = {"--max-batch", "1", NULL};
  pd_td d;
  if (!start(st, &d, args1)) return;
  double worst = 0;
  PD_CHECK_INT(st, run_load(st, &d, 8, 50, 8, &worst), 0);
  uint64_t batches, singles;
  double mean;
  batch_stats(st, &d, &batches, &singles, &mean);
  PD_CHECK_INT(st, batches, 8 * 50);
  PD_CHECK_INT(st, singles, batches);
  stop(st, &d);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  return pd_td_crops_make(crops, N_CROPS, &ref, 1, 20, 180, 16, 150) != 0 ? 1 : 0;
}

static void teardown(void) {
  pd_td_crops_free(crops, N_CROPS);
  pd_td_ref_close(&ref);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(pipelining),
    PD_TEST_CASE(tta),
    PD_TEST_CASE(clients_64),
    PD_TEST_CASE(max_batch_1),
};

PD_TEST_MAIN("daemon_load", setup, teardown, k_cases)
