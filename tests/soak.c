/* pd_soak SECONDS: the soak run behind scripts/soak. Starts the
 * real planktond (the tiny test model, a temporary socket, /metrics on a
 * Unix socket) and, for SECONDS, drives 64 clients (8 threads x 8
 * connections, 8 requests in flight each) with a mix of good and bad
 * requests: PNG, JPEG and raw crops (some with TTA), corrupt PNGs, raw
 * images of the wrong size, empty images, unknown models, TTA over the
 * limit, deadlines already passed, Stats and Health. Every answer is
 * checked: its id must be one its client has outstanding (else it is
 * misrouted or duplicated), its status the one the request calls for, and
 * a classification the engine's own for that crop (so an answer delivered
 * to the wrong request shows). Beside them a chaos thread keeps opening
 * connections that send garbage or an oversize frame (an error frame and a
 * close expected), that leave with requests in flight, or that connect and
 * close at once.
 *
 * Reports requests, answers by status, chaos by kind, and the daemon's RSS
 * and open descriptors after warm-up, at the end (same connections open),
 * and with every client gone, against the idle figures before the run.
 * Exits 1 on any unanswered, misrouted, duplicated or wrong answer, a
 * chaos connection not answered as it should be, the daemon dying or not
 * draining cleanly, descriptors that do not come back to the idle count
 * or grow while the same clients stay connected (more than SOAK_FD_SLACK
 * above the warm-up count: chaos connections come and go), or RSS that
 * grows after warm-up by more than SOAK_RSS_SLACK_KB plus one byte per
 * request sent after warm-up (a leak of a few bytes per request over a
 * 2-minute run's ~3 million requests fails; measured: ~0.2 bytes per
 * request, allocator noise). The restart variant judges neither (each
 * restart is a new process).
 *
 * pd_soak SECONDS RESTART_S: the restart variant. The same 64 clients, with
 * the client library's retry policy (30 s), and no chaos thread; every
 * RESTART_S seconds the daemon is stopped, by SIGTERM (it drains: must exit
 * 0) and SIGKILL in turn, and started again on the same socket. Nothing may
 * be lost, duplicated or wrong; a Health request may find the daemon
 * draining. Also reports the library's counters summed over the clients. */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_image.h"
#include "pd_td_raw.h"

#define THREADS 8
#define PER_THREAD 8
#define WINDOW 8
#define N_CROPS 16
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */
#define MAX_TTA 16

/* ---- what a request is and what its answer must be ---- */

typedef enum {
  K_PNG,
  K_JPEG,
  K_RAW,
  K_TTA,
  K_CORRUPT,
  K_RAW_SIZE,
  K_EMPTY,
  K_MODEL,
  K_TTA_LIMIT,
  K_DEADLINE,
  K_STATS,
  K_HEALTH,
  K_COUNT
} kind;

static const char *const kind_names[K_COUNT] = {
    "png",   "jpeg",      "raw",       "tta4",     "corrupt_png", "raw_wrong_size",
    "empty", "bad_model", "tta_limit", "deadline", "stats",       "health"};
/* out of 100: the mix */
static const int kind_weight[K_COUNT] = {30, 15, 15, 5, 6, 5, 4, 5, 4, 5, 3, 3};

typedef struct crop {
  int w, h;
  uint8_t *gray, *png, *jpeg, *corrupt;
  size_t png_len, jpeg_len;
  float *probs, *probs_jpeg, *probs_tta;
} crop;

static crop crops[N_CROPS];
static int K;
static pd_td daemon_;

/* ---- totals ---- */

static atomic_long sent_n, answered_n, by_status[17], by_kind[K_COUNT];
static atomic_long misrouted, duplicated, wrong, failed_clients;
static atomic_long chaos_n[4], chaos_bad;
static atomic_int stop_sending, stop_chaos;
static double restart_every_s; /* 0: the daemon runs throughout */
static atomic_long lib_reconnects, lib_resent, lib_unavailable, lib_dropped, lib_failed;

static const char *const chaos_names[4] = {"garbage_frame", "oversize_frame", "leave_in_flight",
                                           "connect_close"};

/* ---- one client: outstanding requests by id ---- */

typedef struct client {
  pc_client *c;
  uint64_t next;
  unsigned char kind_of[1 << 16]; /* id % 65536 -> kind+1 (0: none outstanding) */
  unsigned char crop_of[1 << 16];
  int in_flight;
  bool dead;
} client;

static unsigned long long rng_next(unsigned long long *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static kind pick_kind(unsigned long long *s) {
  int r = (int)(rng_next(s) % 100);
  for (int k = 0; k < K_COUNT; k++) {
    if (r < kind_weight[k]) return (kind)k;
    r -= kind_weight[k];
  }
  return K_PNG;
}

static int send_one(client *cl, kind k, int ci) {
  uint64_t id = cl->next;
  const crop *cr = &crops[ci];
  pc_client_classify_request rq = {.id = id, .full_distribution = true, .top_k = 3};
  pc_client_error err;
  int rc;
  switch (k) {
  case K_STATS:
    rc = pc_client_send_stats(cl->c, id, &err);
    break;
  case K_HEALTH:
    rc = pc_client_send_health(cl->c, id, &err);
    break;
  default:
    rq.format = PC_CLIENT_IMAGE_PNG;
    rq.data = cr->png;
    rq.len = cr->png_len;
    if (k == K_JPEG) {
      rq.format = PC_CLIENT_IMAGE_JPEG;
      rq.data = cr->jpeg;
      rq.len = cr->jpeg_len;
    } else if (k == K_RAW || k == K_RAW_SIZE) {
      rq.format = PC_CLIENT_IMAGE_RAW_GRAY8;
      rq.data = cr->gray;
      rq.width = (uint32_t)cr->w;
      rq.height = (uint32_t)cr->h;
      rq.len = (size_t)cr->w * cr->h - (k == K_RAW_SIZE ? 1 : 0);
    } else if (k == K_TTA) {
      rq.tta = 4;
    } else if (k == K_CORRUPT) {
      rq.data = cr->corrupt;
    } else if (k == K_EMPTY) {
      rq.data = NULL;
      rq.len = 0;
    } else if (k == K_MODEL) {
      rq.model = "no-such-model";
    } else if (k == K_TTA_LIMIT) {
      rq.tta = MAX_TTA + 1;
    } else if (k == K_DEADLINE) {
      rq.deadline_us = 1;
    }
    rc = pc_client_send_classify(cl->c, &rq, &err);
    break;
  }
  if (rc != PC_CLIENT_OK) return rc;
  cl->kind_of[id & 0xffff] = (unsigned char)(k + 1);
  cl->crop_of[id & 0xffff] = (unsigned char)ci;
  cl->next++;
  cl->in_flight++;
  atomic_fetch_add(&sent_n, 1);
  atomic_fetch_add(&by_kind[k], 1);
  return PC_CLIENT_OK;
}

static bool same_probs(const pc_client_response *r, const float *want) {
  const pc_client_classify_result *c = &r->u.classify;
  if ((int)c->n_distribution != K || c->n_top != 3) return false;
  int best = 0;
  for (int j = 0; j < K; j++) {
    if (!(fabs((double)c->distribution[j] - want[j]) <= PROB_TOL)) return false;
    if (want[j] > want[best]) best = j;
  }
  return (int)c->top[0].index == best || fabs(want[c->top[0].index] - want[best]) <= PROB_TOL;
}

static void check_answer(client *cl, pc_client_response *r) {
  atomic_fetch_add(&answered_n, 1);
  if (r->status >= 0 && r->status < 17) atomic_fetch_add(&by_status[r->status], 1);
  if (r->kind == PC_CLIENT_RESPONSE_ERROR) { /* the daemon closing us: never expected */
    atomic_fetch_add(&wrong, 1);
    fprintf(stderr, "soak: error frame: %s\n", r->message);
    return;
  }
  uint64_t id = r->id;
  if (id >= cl->next || cl->next - id > 0xffff || !cl->kind_of[id & 0xffff]) {
    atomic_fetch_add(cl->kind_of[id & 0xffff] || id >= cl->next ? &misrouted : &duplicated, 1);
    return;
  }
  kind k = (kind)(cl->kind_of[id & 0xffff] - 1);
  const crop *cr = &crops[cl->crop_of[id & 0xffff]];
  cl->kind_of[id & 0xffff] = 0;
  cl->in_flight--;
  bool ok;
  switch (k) {
  case K_PNG:
  case K_RAW:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == 0 && same_probs(r, cr->probs);
    break;
  case K_JPEG:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == 0 && same_probs(r, cr->probs_jpeg);
    break;
  case K_TTA:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == 0 && same_probs(r, cr->probs_tta);
    break;
  case K_CORRUPT:
  case K_RAW_SIZE:
  case K_EMPTY:
  case K_TTA_LIMIT:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == PC_CLIENT_STATUS_INVALID_ARGUMENT;
    break;
  case K_MODEL:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == PC_CLIENT_STATUS_NOT_FOUND;
    break;
  case K_DEADLINE:
    ok = r->kind == PC_CLIENT_RESPONSE_CLASSIFY && r->status == PC_CLIENT_STATUS_DEADLINE_EXCEEDED;
    break;
  case K_STATS:
    ok = r->kind == PC_CLIENT_RESPONSE_STATS && r->status == 0;
    break;
  default: /* a restart's drain may be what Health finds */
    ok = r->kind == PC_CLIENT_RESPONSE_HEALTH &&
         (r->status == 0 || (restart_every_s > 0 && r->status == PC_CLIENT_STATUS_UNAVAILABLE &&
                             !strcmp(r->u.health.state, "draining")));
    break;
  }
  if (!ok) {
    long n = atomic_fetch_add(&wrong, 1);
    if (n < 10)
      fprintf(stderr, "soak: wrong answer to a %s request (id %llu): %s: %s\n", kind_names[k],
              (unsigned long long)id, pc_client_status_name(r->status), r->message);
  }
}

static void *client_thread(void *arg) {
  int t = (int)(long)arg;
  client *cls = calloc(PER_THREAD, sizeof *cls);
  unsigned long long seed = 0x9E3779B97F4A7C15ull * (unsigned long long)(t + 1);
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", daemon_.socket);
  for (int i = 0; i < PER_THREAD; i++) {
    pc_client_options o = {.window = WINDOW, .timeout_ms = 30000};
    pc_client_error err;
    pc_client_retry_policy rp = {.retry_for_s = 30};
    if (pc_client_connect(addr, &o, &cls[i].c, &err) != PC_CLIENT_OK ||
        (restart_every_s > 0 && pc_client_set_retry(cls[i].c, &rp, &err) != PC_CLIENT_OK)) {
      fprintf(stderr, "soak: connect: %s\n", err.message);
      cls[i].dead = true;
      atomic_fetch_add(&failed_clients, 1);
    }
  }
  double quiet_until = 0;
  for (;;) {
    bool sending = !atomic_load(&stop_sending);
    int busy = 0;
    struct pollfd pf[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
      client *cl = &cls[i];
      pf[i].fd = -1;
      pf[i].events = 0;
      if (cl->dead) continue;
      while (sending && cl->in_flight < WINDOW) {
        kind k = pick_kind(&seed);
        if (send_one(cl, k, (int)(rng_next(&seed) % N_CROPS)) != PC_CLIENT_OK) break;
      }
      busy += cl->in_flight > 0;
      pf[i].fd = pc_client_fd(cl->c);
      pf[i].events = pc_client_events(cl->c);
    }
    if (!sending && busy == 0) break;
    if (!sending && quiet_until == 0) quiet_until = pd_td_now_ms() + 60000;
    if (quiet_until && pd_td_now_ms() > quiet_until) break; /* the rest is unanswered */
    poll(pf, PER_THREAD, 200);
    for (int i = 0; i < PER_THREAD; i++) {
      client *cl = &cls[i];
      if (cl->dead || !pf[i].revents) continue;
      pc_client_error err;
      int rc = pc_client_process(cl->c, pf[i].revents, &err);
      pc_client_response *r;
      while (pc_client_next_response(cl->c, &r) == PC_CLIENT_OK) {
        check_answer(cl, r);
        pc_client_response_free(r);
      }
      if (rc != PC_CLIENT_OK) {
        fprintf(stderr, "soak: client %d.%d: %s\n", t, i, err.message);
        cl->dead = true;
        atomic_fetch_add(&failed_clients, 1);
      }
    }
  }
  long left = 0;
  for (int i = 0; i < PER_THREAD; i++) {
    left += cls[i].in_flight;
    if (cls[i].c) {
      pc_client_retry_counters k;
      pc_client_retry_stats(cls[i].c, &k);
      atomic_fetch_add(&lib_reconnects, (long)k.reconnects);
      atomic_fetch_add(&lib_resent, (long)k.resent);
      atomic_fetch_add(&lib_unavailable, (long)k.unavailable);
      atomic_fetch_add(&lib_dropped, (long)k.duplicates_dropped);
      atomic_fetch_add(&lib_failed, (long)k.failed_after_retries);
    }
    pc_client_close(cls[i].c);
  }
  free(cls);
  return (void *)left;
}

/* ---- chaos ---- */

static void *chaos_thread(void *arg) {
  (void)arg;
  unsigned long long seed = 12345;
  size_t flen;
  uint8_t *frame = pd_raw_classify_frame(1, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, crops[0].png,
                                         crops[0].png_len, &flen);
  while (!atomic_load(&stop_chaos)) {
    int what = (int)(rng_next(&seed) % 4);
    int fd = pd_raw_connect(daemon_.socket);
    if (fd < 0) {
      atomic_fetch_add(&chaos_bad, 1);
      usleep(50000);
      continue;
    }
    bool ok = true;
    if (what == 0 || what == 1) {
      /* garbage reads as a huge length; an oversize header says so outright */
      const char *garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      uint8_t over[4] = {0x7f, 0xff, 0xff, 0xff};
      if (what == 0)
        pd_raw_write(fd, garbage, strlen(garbage));
      else
        pd_raw_write(fd, over, 4);
      Plankton__Response *r = pd_raw_read_response(fd, 30000);
      ok = r && r->body_case == PLANKTON__RESPONSE__BODY_ERROR &&
           r->error->status->code == PLANKTON__STATUS_CODE__RESOURCE_EXHAUSTED &&
           pd_raw_closed(fd, 30000);
      if (r) plankton__response__free_unpacked(r, NULL);
    } else if (what == 2) {
      for (int i = 0; i < 10; i++)
        pd_raw_write(fd, frame, flen);
    }
    close(fd);
    atomic_fetch_add(&chaos_n[what], 1);
    if (!ok) atomic_fetch_add(&chaos_bad, 1);
    usleep(20000);
  }
  free(frame);
  return NULL;
}

/* ---- restarts ---- */

/* Stops the daemon with sig, starts it again on the same socket with the
 * same arguments, and waits until it serves. Returns the old one's exit
 * code (pd_td_stop's) in *code; 0 when the new one serves within 60 s. */
static int restart_daemon(const char *const *args, int sig, int *code) {
  *code = pd_td_stop(&daemon_, sig, 60);
  const char *argv[40];
  char expanded[16][512];
  int n = 0, n_expanded = 0;
  argv[n++] = getenv("PLANKTOND");
  argv[n++] = "--socket";
  argv[n++] = daemon_.socket;
  argv[n++] = "--model";
  argv[n++] = pd_td_model_dir();
  for (int i = 0; args[i] && n < 38; i++) {
    const char *at = strstr(args[i], "@DIR@");
    if (at && n_expanded < 16) {
      snprintf(expanded[n_expanded], sizeof expanded[0], "%.*s%s%s", (int)(at - args[i]), args[i],
               daemon_.dir, at + 5);
      argv[n++] = expanded[n_expanded++];
    } else {
      argv[n++] = args[i];
    }
  }
  argv[n] = NULL;
  int logfd = open(daemon_.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    if (logfd >= 0) dup2(logfd, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  if (logfd >= 0) close(logfd);
  if (pid < 0) return -1;
  daemon_.pid = pid;
  char addr[400];
  snprintf(addr, sizeof addr, "unix:%s", daemon_.socket);
  for (double until = pd_td_now_ms() + 60000; pd_td_now_ms() < until; usleep(20000)) {
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      daemon_.pid = 0;
      return -1;
    }
    pc_client_options o = {.window = 1, .timeout_ms = 1000};
    pc_client *c = NULL;
    pc_client_response *r = NULL;
    bool ok = pc_client_connect(addr, &o, &c, NULL) == PC_CLIENT_OK &&
              pc_client_health(c, &r, NULL) == PC_CLIENT_OK && r->status == 0;
    pc_client_response_free(r);
    pc_client_close(c);
    if (ok) return 0;
  }
  return -1;
}

/* ---- figures ---- */

enum { SOAK_RSS_SLACK_KB = 4096, SOAK_FD_SLACK = 8 };

typedef struct figures {
  long rss_kb;
  int fds;
  uint32_t connections;
  long requests; /* sent by then */
} figures;

static figures measure(void) {
  figures f = {pd_raw_rss_kb(daemon_.pid), pd_raw_open_fds(daemon_.pid), 0, atomic_load(&sent_n)};
  pc_client *c = pd_td_connect(&daemon_, 2);
  pc_client_response *r = NULL;
  if (c && pc_client_stats(c, &r, NULL) == PC_CLIENT_OK) f.connections = r->u.stats.connections - 1;
  pc_client_response_free(r);
  pc_client_close(c);
  return f;
}

static int make_crops(void) {
  pd_td_ref ref;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return -1;
  K = ref.model->n_classes;
  pd_image_limits lim = pd_image_limits_default();
  for (int i = 0; i < N_CROPS; i++) {
    crop *c = &crops[i];
    c->w = 16 + (i * 29) % 120;
    c->h = 12 + (i * 41) % 100;
    c->gray = pd_td_crop((uint64_t)i + 100, c->w, c->h);
    c->png = pd_td_png(c->gray, c->w, c->h, &c->png_len);
    c->jpeg = pd_td_jpeg(c->gray, c->w, c->h, &c->jpeg_len);
    c->corrupt = malloc(c->png_len);
    memcpy(c->corrupt, c->png, c->png_len);
    for (size_t k = 40; k < c->png_len; k += 5)
      c->corrupt[k] ^= 0x5a;
    c->probs = malloc((size_t)K * sizeof(float));
    c->probs_jpeg = malloc((size_t)K * sizeof(float));
    c->probs_tta = malloc((size_t)K * sizeof(float));
    pd_gray_image dec = {0};
    pd_error err = {0};
    if (pd_td_ref_probs(&ref, c->gray, c->w, c->h, c->probs) != 0 ||
        pd_td_ref_probs_tta(&ref, c->gray, c->w, c->h, 4, c->probs_tta) != 0 ||
        pd_image_decode(c->jpeg, c->jpeg_len, &lim, &dec, &err) != PD_OK ||
        pd_td_ref_probs(&ref, dec.pixels, dec.width, dec.height, c->probs_jpeg) != 0) {
      fprintf(stderr, "soak: reference: %s\n", err.msg);
      return -1;
    }
    pd_gray_image_free(&dec);
  }
  pd_td_ref_close(&ref);
  return 0;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 120;
  if (seconds <= 0) seconds = 120;
  restart_every_s = argc > 2 ? atof(argv[2]) : 0;
  if (!(restart_every_s > 0)) restart_every_s = 0;
  if (!pd_td_have_model()) return 77;
  signal(SIGPIPE, SIG_IGN);
  pd_raw_raise_nofile(4096);
  if (make_crops() != 0) return 1;
  char tta[16];
  snprintf(tta, sizeof tta, "%d", MAX_TTA);
  const char *args[] = {"--metrics",
                        "unix:@DIR@/metrics.sock",
                        "--max-tta",
                        tta,
                        "--frame-timeout-ms",
                        "10000",
                        "--log-level",
                        "warning",
                        NULL};
  if (pd_td_start(&daemon_, args) != 0) {
    pd_td_cleanup(&daemon_);
    return 1;
  }
  figures idle0 = measure();
  if (restart_every_s > 0)
    printf("soak: %.0f s, %d clients (%d threads x %d, window %d) with retries; the daemon "
           "restarted every %.0f s (SIGTERM and SIGKILL in turn); daemon pid %d\n",
           seconds, THREADS * PER_THREAD, THREADS, PER_THREAD, WINDOW, restart_every_s,
           (int)daemon_.pid);
  else
    printf(
        "soak: %.0f s, %d clients (%d threads x %d, window %d) and a chaos thread; daemon pid %d\n",
        seconds, THREADS * PER_THREAD, THREADS, PER_THREAD, WINDOW, (int)daemon_.pid);
  printf("soak: idle before: RSS %ld kB, %d fds\n", idle0.rss_kb, idle0.fds);
  fflush(stdout);

  pthread_t th[THREADS], chaos;
  for (int t = 0; t < THREADS; t++)
    pthread_create(&th[t], NULL, client_thread, (void *)(long)t);
  if (!restart_every_s) pthread_create(&chaos, NULL, chaos_thread, NULL);

  double t0 = pd_td_now_ms(), end = t0 + seconds * 1000;
  double warm = t0 + (seconds * 1000 * 0.2 < 20000 ? seconds * 1000 * 0.2 : 20000);
  figures start = {0}, last = {0};
  bool have_start = false, died = false;
  double next_report = t0 + 60000, next_restart = t0 + restart_every_s * 1000;
  long restarts = 0, bad_drains = 0;
  while (pd_td_now_ms() < end) {
    usleep(200000);
    if (restart_every_s > 0 && pd_td_now_ms() >= next_restart) {
      int sig = restarts % 2 ? SIGKILL : SIGTERM, code = 0;
      if (restart_daemon(args, sig, &code) != 0) {
        fprintf(stderr, "soak: the daemon did not come back after %s\n",
                sig == SIGTERM ? "SIGTERM" : "SIGKILL");
        died = true;
        break;
      }
      if (sig == SIGTERM && code != 0) {
        fprintf(stderr, "soak: the daemon exited %d after SIGTERM (want 0: drained)\n", code);
        bad_drains++;
      }
      restarts++;
      printf("soak: %4.0f s: restart %ld (%s), %ld requests, %ld answered; daemon pid %d\n",
             (pd_td_now_ms() - t0) / 1000, restarts, sig == SIGTERM ? "drained" : "killed",
             atomic_load(&sent_n), atomic_load(&answered_n), (int)daemon_.pid);
      fflush(stdout);
      next_restart = pd_td_now_ms() + restart_every_s * 1000;
    }
    if (kill(daemon_.pid, 0) != 0) {
      died = true;
      break;
    }
    if (!have_start && pd_td_now_ms() >= warm) {
      start = measure();
      have_start = true;
      printf("soak: after warm-up (%.0f s): RSS %ld kB, %d fds, %u connections, %ld requests\n",
             (pd_td_now_ms() - t0) / 1000, start.rss_kb, start.fds, start.connections,
             atomic_load(&sent_n));
      fflush(stdout);
    }
    if (pd_td_now_ms() >= next_report) {
      figures f = measure();
      printf("soak: %4.0f s: %ld requests, %ld answered; RSS %ld kB, %d fds, %u connections\n",
             (pd_td_now_ms() - t0) / 1000, atomic_load(&sent_n), atomic_load(&answered_n), f.rss_kb,
             f.fds, f.connections);
      fflush(stdout);
      next_report += 60000;
    }
  }
  if (!died) last = measure();
  atomic_store(&stop_chaos, 1);
  if (!restart_every_s) pthread_join(chaos, NULL);
  atomic_store(&stop_sending, 1);
  long unanswered = 0;
  for (int t = 0; t < THREADS; t++) {
    void *left;
    pthread_join(th[t], &left);
    unanswered += (long)left;
  }
  figures idle1 = {0};
  if (!died) {
    double until = pd_td_now_ms() + 10000; /* closed connections go away */
    do {
      idle1 = measure();
      if (idle1.fds <= idle0.fds) break;
      usleep(100000);
    } while (pd_td_now_ms() < until);
  }
  char mpath[400];
  snprintf(mpath, sizeof mpath, "%s/metrics.sock", daemon_.dir);
  char *metrics = died ? NULL : pd_raw_metrics(mpath);
  int code = died ? -3 : pd_td_stop(&daemon_, SIGTERM, 60);

  double secs = (pd_td_now_ms() - t0) / 1000;
  printf("soak: %ld requests in %.0f s (%.0f/s), %ld answered, %ld unanswered, %ld misrouted, "
         "%ld duplicated, %ld wrong, %ld clients failed\n",
         atomic_load(&sent_n), secs, atomic_load(&sent_n) / secs, atomic_load(&answered_n),
         unanswered, atomic_load(&misrouted), atomic_load(&duplicated), atomic_load(&wrong),
         atomic_load(&failed_clients));
  printf("soak: requests by kind:");
  for (int k = 0; k < K_COUNT; k++)
    printf(" %s=%ld", kind_names[k], atomic_load(&by_kind[k]));
  printf("\nsoak: answers by status:");
  for (int s = 0; s < 17; s++)
    if (atomic_load(&by_status[s]))
      printf(" %s=%ld", pc_client_status_name(s), atomic_load(&by_status[s]));
  printf("\nsoak: chaos connections:");
  for (int k = 0; k < 4; k++)
    printf(" %s=%ld", chaos_names[k], atomic_load(&chaos_n[k]));
  printf(" (%ld not answered as expected)\n", atomic_load(&chaos_bad));
  if (restart_every_s > 0)
    printf("soak: %ld restarts; clients: %ld reconnects, %ld requests resent, %ld UNAVAILABLE "
           "answers resent elsewhere, %ld duplicate answers dropped, %ld failed after retries\n",
           restarts, atomic_load(&lib_reconnects), atomic_load(&lib_resent),
           atomic_load(&lib_unavailable), atomic_load(&lib_dropped), atomic_load(&lib_failed));
  if (metrics) {
    printf("soak: daemon: %.0f connections opened, %.0f broken frames, %.0f images, %.0f batches\n",
           pd_raw_metric(metrics, "planktond_connections_opened_total"),
           pd_raw_metric(metrics, "planktond_broken_frames_total"),
           pd_raw_metric(metrics, "planktond_inference_count_total"),
           pd_raw_metric(metrics, "planktond_inference_exec_count_total"));
    free(metrics);
  }
  printf("soak: RSS kB: idle %ld, after warm-up %ld, end %ld, idle after %ld\n", idle0.rss_kb,
         start.rss_kb, last.rss_kb, idle1.rss_kb);
  printf("soak: open fds: idle %d, after warm-up %d, end %d, idle after %d\n", idle0.fds, start.fds,
         last.fds, idle1.fds);
  printf("soak: daemon exit after SIGTERM: %d\n", code);

  int fail = 0;
  if (died) fprintf(stderr, "soak: FAIL: the daemon died\n"), fail = 1;
  if (unanswered) fprintf(stderr, "soak: FAIL: %ld unanswered\n", unanswered), fail = 1;
  if (atomic_load(&misrouted) || atomic_load(&duplicated))
    fprintf(stderr, "soak: FAIL: misrouted or duplicated answers\n"), fail = 1;
  if (atomic_load(&wrong)) fprintf(stderr, "soak: FAIL: wrong answers\n"), fail = 1;
  if (atomic_load(&failed_clients)) fprintf(stderr, "soak: FAIL: clients lost\n"), fail = 1;
  if (atomic_load(&chaos_bad)) fprintf(stderr, "soak: FAIL: chaos not handled\n"), fail = 1;
  if (!died && idle1.fds > idle0.fds)
    fprintf(stderr, "soak: FAIL: %d fds idle after, %d before\n", idle1.fds, idle0.fds), fail = 1;
  if (have_start && last.fds != start.fds)
    printf("soak: note: fds after warm-up %d, at the end %d (chaos connections come and go)\n",
           start.fds, last.fds);
  if (!died && have_start && restart_every_s <= 0) {
    long rss_bound = start.rss_kb + SOAK_RSS_SLACK_KB + (last.requests - start.requests) / 1024;
    if (last.rss_kb > rss_bound)
      fprintf(stderr,
              "soak: FAIL: RSS grew from %ld kB after warm-up to %ld kB at the end (bound %ld kB: "
              "%d kB + 1 byte per request)\n",
              start.rss_kb, last.rss_kb, rss_bound, SOAK_RSS_SLACK_KB),
          fail = 1;
    if (last.fds > start.fds + SOAK_FD_SLACK)
      fprintf(stderr, "soak: FAIL: %d fds at the end, %d after warm-up (slack %d)\n", last.fds,
              start.fds, SOAK_FD_SLACK),
          fail = 1;
  }
  if (code != 0) fprintf(stderr, "soak: FAIL: daemon exit %d\n", code), fail = 1;
  if (bad_drains) fprintf(stderr, "soak: FAIL: %ld drains not clean\n", bad_drains), fail = 1;
  if (restart_every_s > 0 && restarts == 0)
    fprintf(stderr, "soak: FAIL: no restart happened (run longer than %.0f s)\n", restart_every_s),
        fail = 1;
  if (fail) {
    char *log = pd_td_log(&daemon_);
    fprintf(stderr, "--- daemon log (last 4000 bytes) ---\n%s\n",
            log ? log + (strlen(log) > 4000 ? strlen(log) - 4000 : 0) : "");
    free(log);
  }
  printf("soak: %s\n", fail ? "FAILED" : "passed");
  pd_td_cleanup(&daemon_);
  return fail;
}
