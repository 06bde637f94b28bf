/* The daemon is fair to every client, through real clients on a real
 * socket: eight connections each keeping 256 crops in flight (a camera at
 * full rate, on a thread of their own) and one polite client sending one
 * crop at a time; raw protocol clients, so the test reads each answer's
 * timings.batches_waited.
 *  - every polite request is answered OK, with the engine's own
 *    probabilities for its crop, and none is refused, though the queue
 *    (max_queue 1024, below the floods' 2048 in flight) is full;
 *  - every polite request went into the first batch the daemon formed after
 *    it was queued (batches_waited 0), while the floods' requests waited for
 *    several: what the batcher did, not a timing;
 *  - every flood request is answered exactly once, OK with the engine's
 *    probabilities or RESOURCE_EXHAUSTED naming its share of max_queue.
 * two_models: across models, the same way: a repository of two models
 * (copies of the test model, so the engine's answers hold for both), 64
 * connections with 32 crops in flight each flooding the default one, and a
 * polite client sending one crop at a time to the other:
 *  - every polite request is answered OK by the model it named, with the
 *    engine's probabilities, none refused; none waited for more than one
 *    batch of the flooded model (its model's delay is 0, so it is ready
 *    when queued: batches_waited <= 1), though the flood's backlog is
 *    older;
 *  - every flood request is answered exactly once, as above.
 * The polite client's latency and the floods' throughput are reported,
 * never compared with thresholds (bench/daemon measures them). Cases
 * (pd_test_cases.h): polite_first, two_models. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_test_cases.h"
#include "plankton.pb-c.h"

#define N_CROPS 16
#define FLOODS 8
#define FLOOD_WINDOW 256
#define MAX_FLOODS 64
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */

static pd_td_crop_ref crops[N_CROPS];
static pd_td_ref ref;

/* Largest |p - engine| over the classes; 1 when the sizes differ. */
static double worst_diff(const float *got, size_t n, int k) {
  return pd_td_crop_diff(&crops[k], &ref, got, n);
}

/* ---- raw protocol clients ---- */

/* Sends a classify request for crop k (raw gray8 or PNG), tta 1, with the
 * full distribution. */
static int send_classify(int fd, uint64_t id, int k, bool png, const char *model) {
  const pd_td_crop_ref *c = &crops[k];
  Plankton__Image img = PLANKTON__IMAGE__INIT;
  if (png) {
    img.format = PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG;
    img.data.data = c->png;
    img.data.len = c->png_len;
  } else {
    img.format = PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_RAW_GRAY8;
    img.data.data = c->gray;
    img.data.len = (size_t)c->w * c->h;
    img.width = (uint32_t)c->w;
    img.height = (uint32_t)c->h;
  }
  Plankton__ClassifyRequest cr = PLANKTON__CLASSIFY_REQUEST__INIT;
  cr.id = id;
  cr.image = &img;
  cr.top_k = 1;
  cr.full_distribution = true;
  cr.tta = 1;
  if (model) cr.model = (char *)model;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_CLASSIFY;
  rq.classify = &cr;
  size_t len;
  uint8_t *f = pd_raw_request_frame(&rq, &len);
  if (!f) return -1;
  int rc = pd_raw_write(fd, f, len);
  free(f);
  return rc;
}

/* A connection's received bytes; whole frames are taken off the front. */
typedef struct rx {
  uint8_t *buf;
  size_t have, cap;
} rx;

/* Reads what is there; -1 when the peer closed or failed. */
static int rx_read(rx *r, int fd) {
  if (r->cap - r->have < 65536) {
    size_t cap = r->cap ? r->cap * 2 : 1 << 17;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb) return -1;
    r->buf = nb;
    r->cap = cap;
  }
  ssize_t n = recv(fd, r->buf + r->have, r->cap - r->have, 0);
  if (n <= 0) return -1;
  r->have += (size_t)n;
  return 0;
}

/* The next whole answer (unpacked), or NULL; *bad on garbage. */
static Plankton__Response *rx_next(rx *r, bool *bad) {
  if (r->have < 4) return NULL;
  size_t len =
      (size_t)r->buf[0] << 24 | (size_t)r->buf[1] << 16 | (size_t)r->buf[2] << 8 | r->buf[3];
  if (r->have < 4 + len) return NULL;
  Plankton__Response *m = plankton__response__unpack(NULL, len, r->buf + 4);
  if (!m || m->body_case != PLANKTON__RESPONSE__BODY_CLASSIFY) *bad = true;
  memmove(r->buf, r->buf + 4 + len, r->have - 4 - len);
  r->have -= 4 + len;
  return m;
}

/* ---- the floods (a thread) ---- */

typedef struct flood {
  const pd_td *d;
  int conns, window; /* 0: FLOODS, FLOOD_WINDOW */
  atomic_bool stop;
  atomic_long answered; /* all connections, while running */
  long sent, ok, refused, failures;
  long waited_sum, waited_max; /* batches_waited over the OK answers */
  double worst;
} flood;

static void flood_answer(flood *f, const Plankton__ClassifyResponse *cr) {
  int k = (int)(cr->id % N_CROPS);
  int code = cr->status ? (int)cr->status->code : 0;
  const char *msg = cr->status && cr->status->message ? cr->status->message : "";
  if (code == PC_CLIENT_STATUS_RESOURCE_EXHAUSTED) {
    if (!strstr(msg, "max_queue") || !strstr(msg, "share")) {
      f->failures++;
      fprintf(stderr, "flood: refusal without the share: %s\n", msg);
    }
    f->refused++;
    return;
  }
  if (code != 0 || !cr->timings) {
    f->failures++;
    fprintf(stderr, "flood: id %llu: %s: %s\n", (unsigned long long)cr->id,
            pc_client_status_name(code), msg);
    return;
  }
  double w = worst_diff(cr->distribution, cr->n_distribution, k);
  if (w > f->worst) f->worst = w;
  if (w > PROB_TOL) f->failures++;
  f->ok++;
  f->waited_sum += cr->timings->batches_waited;
  if (cr->timings->batches_waited > f->waited_max) f->waited_max = cr->timings->batches_waited;
}

static void *flood_main(void *arg) {
  flood *f = arg;
  const int nf = f->conns ? f->conns : FLOODS, window = f->window ? f->window : FLOOD_WINDOW;
  int fd[MAX_FLOODS];
  rx in[MAX_FLOODS];
  struct pollfd pf[MAX_FLOODS];
  long seq[MAX_FLOODS] = {0}, owed[MAX_FLOODS] = {0}, answered = 0;
  memset(in, 0, sizeof in);
  for (int i = 0; i < nf; i++)
    if ((fd[i] = pd_raw_connect(f->d->socket)) < 0) {
      f->failures++;
      return NULL;
    }
  for (;;) {
    bool stopping = atomic_load(&f->stop);
    long total_owed = 0;
    for (int i = 0; i < nf; i++) {
      while (!stopping && owed[i] < window) {
        long s = seq[i]++;
        int k = (int)((s + i) % N_CROPS);
        if (send_classify(fd[i], (uint64_t)i << 40 | ((uint64_t)s * N_CROPS + (uint64_t)k), k,
                          false, NULL) != 0) {
          fprintf(stderr, "flood %d: send failed\n", i);
          f->failures++;
          return NULL;
        }
        owed[i]++;
        f->sent++;
      }
      total_owed += owed[i];
      pf[i] = (struct pollfd){.fd = fd[i], .events = POLLIN};
    }
    if (stopping && total_owed == 0) break;
    if (poll(pf, (nfds_t)nf, 30000) <= 0) {
      fprintf(stderr, "flood: no progress for 30 s\n");
      f->failures++;
      break;
    }
    for (int i = 0; i < nf; i++) {
      if (!pf[i].revents) continue;
      if (rx_read(&in[i], fd[i]) != 0) {
        fprintf(stderr, "flood %d: the daemon closed the connection\n", i);
        f->failures++;
        return NULL;
      }
      Plankton__Response *m;
      bool bad = false;
      while ((m = rx_next(&in[i], &bad)) != NULL || bad) {
        if (bad || (int)(m->classify->id >> 40) != i) {
          f->failures++;
          fprintf(stderr, "flood %d: an unexpected answer\n", i);
        } else {
          flood_answer(f, m->classify);
        }
        if (m) plankton__response__free_unpacked(m, NULL);
        bad = false;
        owed[i]--;
        answered++;
      }
    }
    atomic_store(&f->answered, answered);
  }
  for (int i = 0; i < nf; i++) {
    close(fd[i]);
    free(in[i].buf);
  }
  return NULL;
}

/* ---- the polite client ---- */

/* One answer; NULL on timeout, close or garbage. */
static Plankton__Response *read_response(int fd, rx *in, int timeout_ms) {
  for (;;) {
    bool bad = false;
    Plankton__Response *m = rx_next(in, &bad);
    if (m || bad) return m;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0 || rx_read(in, fd) != 0) return NULL;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct polite_result {
  int answered, ok, refused, first_batch, max_waited;
  double p50_ms, p99_ms, max_ms, queue_p50_ms, compute_p50_ms;
} polite_result;

/* n requests one at a time to `model` (NULL: the default); each must have
 * waited for at most max_waited batches. */
static void polite(pd_test_state *st, const pd_td *d, int n, const char *model, int max_waited,
                   polite_result *out) {
  memset(out, 0, sizeof *out);
  int fd = pd_raw_connect(d->socket);
  PD_CHECK(st, fd >= 0);
  if (fd < 0) return;
  rx in = {0};
  double *lat = calloc((size_t)n, sizeof *lat), *queue = calloc((size_t)n, sizeof *queue),
         *compute = calloc((size_t)n, sizeof *compute);
  for (int i = 0; i < n; i++) {
    int k = i % N_CROPS;
    double t0 = pd_td_now_ms();
    PD_CHECK_INT(st, send_classify(fd, (uint64_t)i, k, true, model), 0);
    Plankton__Response *r = read_response(fd, &in, 60000);
    lat[out->answered] = pd_td_now_ms() - t0;
    PD_CHECK(st, r && r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY);
    if (!r || r->body_case != PLANKTON__RESPONSE__BODY_CLASSIFY) {
      if (r) plankton__response__free_unpacked(r, NULL);
      break;
    }
    const Plankton__ClassifyResponse *cr = r->classify;
    int code = cr->status ? (int)cr->status->code : 0;
    PD_CHECK_INT(st, cr->id, i);
    PD_CHECK_INT(st, code, 0);
    out->refused += code == PC_CLIENT_STATUS_RESOURCE_EXHAUSTED;
    if (code != 0) {
      fprintf(stderr, "polite %d: %s: %s\n", i, pc_client_status_name(code),
              cr->status ? cr->status->message : "");
    } else {
      double w = worst_diff(cr->distribution, cr->n_distribution, k);
      PD_CHECK(st, w <= PROB_TOL);
      PD_CHECK(st, cr->timings != NULL);
      if (model) PD_CHECK(st, cr->model_name && !strcmp(cr->model_name, model));
      if (cr->timings) {
        PD_CHECK(st, (int)cr->timings->batches_waited <= max_waited);
        if ((int)cr->timings->batches_waited > out->max_waited)
          out->max_waited = (int)cr->timings->batches_waited;
        out->first_batch += cr->timings->batches_waited == 0;
        queue[out->ok] = (double)cr->timings->queue_us / 1000;
        compute[out->ok] = (double)cr->timings->compute_us / 1000;
      }
      out->ok++;
    }
    out->answered++;
    plankton__response__free_unpacked(r, NULL);
  }
  close(fd);
  free(in.buf);
  if (out->answered > 0) {
    qsort(lat, (size_t)out->answered, sizeof *lat, cmp_double);
    out->p50_ms = lat[out->answered / 2];
    out->p99_ms = lat[(out->answered * 99) / 100];
    out->max_ms = lat[out->answered - 1];
  }
  if (out->ok > 0) {
    qsort(queue, (size_t)out->ok, sizeof *queue, cmp_double);
    qsort(compute, (size_t)out->ok, sizeof *compute, cmp_double);
    out->queue_p50_ms = queue[out->ok / 2];
    out->compute_p50_ms = compute[out->ok / 2];
  }
  free(lat);
  free(queue);
  free(compute);
}

/* The floods (f, set up by the caller) on a thread; once their first
 * windows were answered twice over, the polite client's n requests to
 * `model`; then the floods stop. Checks what both cases share: every polite
 * request answered OK, none refused, no flood failure. Returns the floods'
 * answers per second while the polite client ran. */
static double flood_and_polite(pd_test_state *st, const pd_td *d, flood *f, int n,
                               const char *model, int max_waited, polite_result *p) {
  pthread_t t;
  PD_CHECK_INT(st, pthread_create(&t, NULL, flood_main, f), 0);
  const long warm = 2L * (f->conns ? f->conns : FLOODS) * (f->window ? f->window : FLOOD_WINDOW);
  double until = pd_td_now_ms() + 60000;
  while (atomic_load(&f->answered) < warm && pd_td_now_ms() < until)
    usleep(10000);
  long before = atomic_load(&f->answered);
  double t0 = pd_td_now_ms();
  polite(st, d, n, model, max_waited, p);
  double dt = (pd_td_now_ms() - t0) / 1000;
  long during = atomic_load(&f->answered) - before;
  atomic_store(&f->stop, true);
  pthread_join(t, NULL);
  PD_CHECK_INT(st, p->answered, n);
  PD_CHECK_INT(st, p->ok, n);
  PD_CHECK_INT(st, p->refused, 0);
  PD_CHECK_INT(st, f->failures, 0);
  PD_CHECK(st, f->ok > 0);
  return dt > 0 ? (double)during / dt : 0;
}

/* ---- the case (pd_test_cases.h) ---- */

static void polite_first(pd_test_state *st) {
  int n_polite = getenv("PD_TEST_POLITE") ? atoi(getenv("PD_TEST_POLITE")) : 50;
  pd_td d;
  const char *args[] = {"--max-batch",          "32",   "--max-queue", "1024",
                        "--max-queue-delay-us", "2000", NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  flood f = {.d = &d};
  polite_result p;
  /* the polite client starts once the floods have kept the daemon busy
   * for a while (their first full windows answered) */
  double rate = flood_and_polite(st, &d, &f, n_polite, NULL, 0, &p);
  PD_CHECK_INT(st, p.first_batch, n_polite);
  double flood_waited = f.ok ? (double)f.waited_sum / (double)f.ok : 0;
  printf("floods: %d x %d in flight: %ld sent, %ld OK, %ld RESOURCE_EXHAUSTED, "
         "batches waited mean %.1f max %ld, max |p - engine| %.2g, %.0f answers/s while the "
         "polite client ran\n",
         FLOODS, FLOOD_WINDOW, f.sent, f.ok, f.refused, flood_waited, f.waited_max, f.worst, rate);
  printf("polite: %d requests, %d OK, %d refused, %d in the first batch after they were queued; "
         "latency p50 %.2f ms, p99 %.2f ms, max %.2f ms (queue p50 %.2f ms, batch compute p50 "
         "%.2f ms, max_queue_delay 2 ms)\n",
         p.answered, p.ok, p.refused, p.first_batch, p.p50_ms, p.p99_ms, p.max_ms, p.queue_p50_ms,
         p.compute_p50_ms);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* ---- two models: the flood on one, the polite client on the other ---- */

static void two_models(pd_test_state *st) {
  int n_polite = getenv("PD_TEST_POLITE") ? atoi(getenv("PD_TEST_POLITE")) : 50;
  char repo[] = "/tmp/pd-test-two-XXXXXX", dir[600];
  PD_CHECK(st, mkdtemp(repo) != NULL);
  bool made = true;
  const char *names[] = {"flooded", "quiet"};
  for (int i = 0; i < 2; i++) {
    snprintf(dir, sizeof dir, "%s/%s", repo, names[i]);
    made &= pd_td_model_renamed(dir, names[i]) == 0;
  }
  /* the quiet model's own delay 0 (model.yaml serving:): each of its
   * requests is ready when queued, so what it waits for is the batcher's
   * choice alone: at most the one other batch it may be passed over for */
  snprintf(dir, sizeof dir, "%s/quiet/model.yaml", repo);
  FILE *y = made ? fopen(dir, "a") : NULL;
  made &= y && fputs("serving:\n  max_queue_delay_us: 0\n", y) >= 0;
  if (y) fclose(y);
  PD_CHECK(st, made);
  pd_td d;
  const char *args[] = {
      "--repository", repo,   "--default-model",      "flooded", "--max-batch", "32",
      "--max-queue",  "1024", "--max-queue-delay-us", "2000",    NULL};
  if (!made || pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  flood f = {.d = &d, .conns = MAX_FLOODS, .window = 32};
  polite_result p;
  double rate = flood_and_polite(st, &d, &f, n_polite, "quiet", 1, &p);
  printf("two models: %d connections x 32 in flight on 'flooded': %ld sent, %ld OK, %ld "
         "RESOURCE_EXHAUSTED, batches waited mean %.1f max %ld, max |p - engine| %.2g, %.0f "
         "answers/s while the polite client ran\n",
         MAX_FLOODS, f.sent, f.ok, f.refused, f.ok ? (double)f.waited_sum / (double)f.ok : 0,
         f.waited_max, f.worst, rate);
  printf("two models: polite client on 'quiet': %d requests, %d OK, %d refused, %d in the first "
         "batch after they were queued, at most %d batch waited; latency p50 %.2f ms, p99 %.2f "
         "ms, max %.2f ms (queue p50 %.2f ms, batch compute p50 %.2f ms, max_queue_delay 2 ms)\n",
         p.answered, p.ok, p.refused, p.first_batch, p.max_waited, p.p50_ms, p.p99_ms, p.max_ms,
         p.queue_p50_ms, p.compute_p50_ms);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", repo);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", repo);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  return pd_td_crops_make(crops, N_CROPS, &ref, 101, 24, 90, 20, 80) != 0 ? 1 : 0;
}

static void teardown(void) {
  pd_td_crops_free(crops, N_CROPS);
  pd_td_ref_close(&ref);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(polite_first),
    PD_TEST_CASE(two_models),
};

PD_TEST_MAIN("daemon_fair", setup, teardown, k_cases)
