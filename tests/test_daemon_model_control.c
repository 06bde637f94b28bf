/* Run-time model control (model.control, ModelControl, plankton-client
 * model): the daemon serves a copy of $PD_TEST_REPO (tests/make_repository.sh)
 * without its ensemble: tiny (versions 1 and 2), other (the default) and
 * broken, three models, one broken. While a bystander keeps classifying on
 * the default model (every answer checked against the first), a fourth
 * model (the ensemble folder, copied in) is loaded, tiny is unloaded while a
 * client keeps 16 requests to it in flight (each answered exactly once: OK
 * for those read before the change, then UNAVAILABLE saying it is
 * unloaded), and reloaded while the same client sends to it (no failure at
 * all); each change shows in ModelInfo and /metrics, and the bystander
 * never fails. Refusals: model.control off, a peer of another uid (a child
 * that became nobody), TCP peers, past model.max_loaded, a folder that is
 * not there, an unknown name. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_bystander.h"
#include "pd_test_cases.h"

static char dir[] = "/tmp/pd-test-mc-XXXXXX";
static char copy[600];    /* the repository the daemon serves */
static char ens_src[600]; /* the ensemble folder, outside it */
static uint8_t *png;
static size_t png_len;

static const char *repo(void) {
  const char *r = getenv("PD_TEST_REPO");
  return r ? r : "";
}

__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd) == 0 ? 0 : -1;
}

/* A fresh copy of the repository without ens/ (kept beside it). */
static int fresh_copy(void) {
  return sh("rm -rf '%s' '%s' && cp -r '%s' '%s' && mv '%s/ens' '%s'", copy, ens_src, repo(), copy,
            copy, ens_src);
}

static int start(pd_td *d, const char *const *extra) {
  const char *args[24] = {
      "--repository",       copy,        "--default-model",  "other", "--max-batch", "4", "--set",
      "model.control=true", "--metrics", "unix:@DIR@/m.sock"};
  int n = 10;
  for (int i = 0; extra && extra[i] && n < 23; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  return pd_td_start(d, args);
}

/* One ModelControl: the answer's status, its message in msg (may be NULL). */
static int control(const pd_td *d, pc_client_model_op op, const char *name, char *msg, size_t cap,
                   char *versions, size_t vcap) {
  pc_client *c = pd_td_connect(d, 1);
  if (!c) return -1;
  pc_client_response *r = NULL;
  pc_client_error err;
  int status = -1;
  if (pc_client_model_control(c, op, name, &r, &err) == PC_CLIENT_OK &&
      r->kind == PC_CLIENT_RESPONSE_MODEL_CONTROL) {
    status = r->status;
    if (msg) snprintf(msg, cap, "%s", r->message);
    if (versions) {
      versions[0] = '\0';
      for (size_t i = 0; i < r->u.model_control.n_versions; i++)
        snprintf(versions + strlen(versions), vcap - strlen(versions), "%s%s", i ? "," : "",
                 r->u.model_control.versions[i]);
    }
    printf("ModelControl %d '%s': %s: %s\n", (int)op, name, pc_client_status_name(r->status),
           r->message);
  } else {
    fprintf(stderr, "ModelControl '%s': %s\n", name, r ? r->message : err.message);
  }
  pc_client_response_free(r);
  pc_client_close(c);
  return status;
}

/* A control whose answer has `status` and a message holding needle. */
static void control_is(pd_test_state *st, const pd_td *d, pc_client_model_op op, const char *name,
                       int status, const char *needle) {
  char msg[1024] = "";
  PD_CHECK_INT(st, control(d, op, name, msg, sizeof msg, NULL, 0), status);
  if (needle) PD_CHECK_CONTAINS(st, msg, needle);
}

/* ModelInfo's entries of name: how many versions are ready, and whether
 * every entry's error holds needle (NULL: no error). -1: none, or no answer. */
static int ready_versions(const pd_td *d, const char *name, const char *needle, bool *errors_ok) {
  pc_client *c = pd_td_connect(d, 1);
  if (!c) return -1;
  pc_client_response *r = NULL;
  pc_client_error err;
  int ready = -1;
  *errors_ok = true;
  if (pc_client_model_info(c, NULL, &r, &err) == PC_CLIENT_OK && r->status == 0) {
    for (size_t i = 0; i < r->u.model_info.n_models; i++) {
      const pc_client_model *m = &r->u.model_info.models[i];
      if (strcmp(m->name, name) != 0) continue;
      if (ready < 0) ready = 0;
      printf("ModelInfo: %s %s ready %d %s\n", m->name, m->version, m->ready, m->error);
      ready += m->ready;
      *errors_ok = *errors_ok && (needle ? strstr(m->error, needle) != NULL : !m->error[0]);
    }
  }
  pc_client_response_free(r);
  pc_client_close(c);
  return ready;
}

static void info_is(pd_test_state *st, const pd_td *d, const char *name, int ready,
                    const char *needle) {
  bool errors_ok = false;
  PD_CHECK_INT(st, ready_versions(d, name, needle, &errors_ok), ready);
  PD_CHECK(st, errors_ok);
}

/* planktond_model_ready{model=name,version=version} in /metrics (NAN: none). */
static double ready_metric(const pd_td *d, const char *name, const char *version) {
  char sock[400], sample[200];
  snprintf(sock, sizeof sock, "%s/m.sock", d->dir);
  snprintf(sample, sizeof sample, "planktond_model_ready{model=\"%s\",version=\"%s\"}", name,
           version);
  char *m = pd_td_metrics(sock);
  double v = m ? pd_td_metric(m, sample) : -1;
  free(m);
  printf("/metrics %s: %g\n", sample, v);
  return v;
}

/* ---- a client that keeps requests in flight to one model ---- */

#define FLOW_MAX_IDS (1u << 20)

typedef struct flow {
  const pd_td *d;
  const char *model; /* what it names */
  bool allow_unloaded;
  int window;
  pthread_t t;
  atomic_int stop;
  atomic_int ok, unloaded, failed, twice;
  atomic_ullong sent;
  uint64_t max_ok_id, min_unloaded_id;
  uint8_t *seen;
} flow;

static void flow_account(flow *f, const pc_client_response *r) {
  if (r->kind != PC_CLIENT_RESPONSE_CLASSIFY || r->id == 0 || r->id >= FLOW_MAX_IDS) {
    fprintf(stderr, "flow %s: answer of kind %d id %llu: %s\n", f->model, (int)r->kind,
            (unsigned long long)r->id, r->message);
    f->failed++;
    return;
  }
  if (f->seen[r->id]++) f->twice++;
  if (r->status == 0 && !strcmp(r->u.classify.model_name, f->model)) {
    f->ok++;
    if (r->id > f->max_ok_id) f->max_ok_id = r->id;
  } else if (f->allow_unloaded && r->status == 14 && strstr(r->message, "is unloaded")) {
    f->unloaded++;
    if (!f->min_unloaded_id || r->id < f->min_unloaded_id) f->min_unloaded_id = r->id;
  } else {
    fprintf(stderr, "flow %s: id %llu: %s: %s\n", f->model, (unsigned long long)r->id,
            pc_client_status_name(r->status), r->message);
    f->failed++;
  }
}

static void *flow_main(void *arg) {
  flow *f = arg;
  pc_client *c = pd_td_connect(f->d, f->window);
  if (!c) {
    f->failed++;
    return NULL;
  }
  uint64_t id = 0;
  double quiet_since = pd_td_now_ms();
  for (;;) {
    const bool stopping = atomic_load(&f->stop);
    while (!stopping && pc_client_in_flight(c) < f->window && id + 1 < FLOW_MAX_IDS) {
      pc_client_classify_request rq = {.id = id + 1,
                                       .model = f->model,
                                       .format = PC_CLIENT_IMAGE_PNG,
                                       .data = png,
                                       .len = png_len,
                                       .top_k = 1,
                                       .tta = 1};
      pc_client_error e;
      int rc = pc_client_send_classify(c, &rq, &e);
      if (rc == PC_CLIENT_EAGAIN) break;
      if (rc != PC_CLIENT_OK) {
        fprintf(stderr, "flow %s: send: %s\n", f->model, e.message);
        f->failed++;
        goto out;
      }
      id++;
    }
    f->sent = id;
    if (stopping && pc_client_in_flight(c) == 0) break;
    pc_client_error e;
    if (pc_client_wait(c, 200, &e) != PC_CLIENT_OK) {
      fprintf(stderr, "flow %s: %s\n", f->model, e.message);
      f->failed++;
      break;
    }
    pc_client_response *r = NULL;
    bool got = false;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      flow_account(f, r);
      pc_client_response_free(r);
      got = true;
    }
    if (got) quiet_since = pd_td_now_ms();
    if (pd_td_now_ms() - quiet_since > 60000 * pd_td_timeout_scale()) {
      fprintf(stderr, "flow %s: no answer for 60 s with %d in flight\n", f->model,
              pc_client_in_flight(c));
      f->failed++;
      break;
    }
  }
out:
  pc_client_close(c);
  return NULL;
}

static void flow_start(flow *f, const pd_td *d, const char *model, bool allow_unloaded) {
  memset(f, 0, sizeof *f);
  f->d = d;
  f->model = model;
  f->allow_unloaded = allow_unloaded;
  f->window = 16;
  f->seen = calloc(FLOW_MAX_IDS, 1);
  pthread_create(&f->t, NULL, flow_main, f);
}

/* Waits until the flow has `more` further answers (a bound: up to 60 s). */
static bool flow_progress(flow *f, int more) {
  const int want = f->ok + f->unloaded + more;
  for (double t0 = pd_td_now_ms(); pd_td_now_ms() - t0 < 60000 * pd_td_timeout_scale();) {
    if (f->ok + f->unloaded >= want) return true;
    if (f->failed) return false;
    usleep(2000);
  }
  return false;
}

static void flow_stop(flow *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->t, NULL);
  free(f->seen);
  printf("flow %s: %llu sent, %d OK, %d UNAVAILABLE (unloaded), %d failed, %d answered twice; "
         "last OK id %llu, first unloaded id %llu\n",
         f->model, (unsigned long long)f->sent, f->ok, f->unloaded, f->failed, f->twice,
         (unsigned long long)f->max_ok_id, (unsigned long long)f->min_unloaded_id);
}

/* Every request sent was answered once. */
static void flow_check(pd_test_state *st, const flow *f) {
  PD_CHECK_INT(st, f->failed, 0);
  PD_CHECK_INT(st, f->twice, 0);
  PD_CHECK(st, (uint64_t)f->ok + (uint64_t)f->unloaded == f->sent);
}

/* The bystander on the default model, its reference the engine's answer on its folder. */
static float bystander_want[64];

static bool guarded(pd_test_state *st, pd_td_guarded *g, const char *const *extra) {
  if (fresh_copy() != 0) {
    PD_CHECK(st, false);
    return false;
  }
  char other[700];
  snprintf(other, sizeof other, "%s/other", copy);
  pd_td_ref ref;
  int n = 0;
  if (pd_td_ref_open(&ref, other) == 0) {
    uint8_t *gray = pd_td_crop(777, 61, 47);
    if (gray && ref.model->n_classes <= 64 &&
        pd_td_ref_probs_tta(&ref, gray, 61, 47, ref.model->tta.count, bystander_want) == 0)
      n = ref.model->n_classes;
    free(gray);
    pd_td_ref_close(&ref);
  }
  PD_CHECK(st, n > 0);
  if (n == 0) return false;
  const char *args[24] = {
      "--repository",       copy,        "--default-model",  "other", "--max-batch", "4", "--set",
      "model.control=true", "--metrics", "unix:@DIR@/m.sock"};
  int k = 10;
  for (int i = 0; extra && extra[i] && k < 23; i++)
    args[k++] = extra[i];
  args[k] = NULL;
  const pd_td_bystander proto = {.png = png,
                                 .png_len = png_len,
                                 .want = bystander_want,
                                 .n_classes = n,
                                 .tol = pd_td_prob_tol()};
  return pd_td_guarded_start(st, g, args, &proto);
}

/* ---- the cases (pd_test_cases.h) ---- */

/* A fourth model loaded while the bystander classifies; it then answers. */
static void load_fourth(pd_test_state *st) {
  pd_td_guarded g;
  if (!guarded(st, &g, NULL)) return;
  pd_td *d = &g.d;
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 20));
  info_is(st, d, "tiny", 2, NULL);
  control_is(st, d, PC_CLIENT_MODEL_LOAD, "ens", 5, "has no folder 'ens'");
  PD_CHECK_INT(st, sh("cp -r '%s' '%s/ens'", ens_src, copy), 0);
  char versions[200] = "";
  PD_CHECK_INT(st, control(d, PC_CLIENT_MODEL_LOAD, "ens", NULL, 0, versions, sizeof versions), 0);
  PD_CHECK(st, !strcmp(versions, "1"));
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 20));
  info_is(st, d, "ens", 1, NULL);
  PD_CHECK(st, ready_metric(d, "ens", "1") == 1);
  flow f;
  flow_start(&f, d, "ens", false);
  PD_CHECK(st, flow_progress(&f, 32));
  flow_stop(&f);
  flow_check(st, &f);
  PD_CHECK(st, f.ok > 0);
  control_is(st, d, PC_CLIENT_MODEL_LOAD, "ens", 6, "already loaded");
  control_is(st, d, PC_CLIENT_MODEL_LOAD, "broken", 14, "did not load, nothing changed");
  control_is(st, d, PC_CLIENT_MODEL_UNLOAD, "nope", 5, "'nope' is not loaded");
  control_is(st, d, PC_CLIENT_MODEL_LOAD, "../tiny", 3, "not a folder name");
  PD_CHECK(st, pd_td_log_count(d, "model control: loaded model ens version 1") == 1);
  pd_td_guarded_stop(st, &g);
}

/* tiny unloaded while a client keeps 16 requests to it in flight. */
static void unload_under_load(pd_test_state *st) {
  pd_td_guarded g;
  if (!guarded(st, &g, NULL)) return;
  pd_td *d = &g.d;
  flow f;
  flow_start(&f, d, "tiny", true);
  PD_CHECK(st, flow_progress(&f, 32));
  char versions[200] = "x";
  PD_CHECK_INT(st, control(d, PC_CLIENT_MODEL_UNLOAD, "tiny", NULL, 0, versions, sizeof versions),
               0);
  PD_CHECK(st, versions[0] == '\0');
  const int ok_at_answer = f.ok;
  const unsigned long long sent_at_answer = f.sent;
  PD_CHECK(st, flow_progress(&f, 32)); /* now UNAVAILABLE ones */
  flow_stop(&f);
  printf("when the unload was answered: %llu sent, %d answered OK\n", sent_at_answer, ok_at_answer);
  flow_check(st, &f);
  PD_CHECK(st, f.ok > 0 && f.unloaded > 0);
  PD_CHECK(st, f.max_ok_id < f.min_unloaded_id); /* in the order they were read */
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 20));
  info_is(st, d, "tiny", 0, "unloaded");
  PD_CHECK(st, ready_metric(d, "tiny", "2") == 0);
  PD_CHECK(st, ready_metric(d, "tiny", "1") == 0);
  PD_CHECK(st, ready_metric(d, "other", "2") == 1);
  control_is(st, d, PC_CLIENT_MODEL_UNLOAD, "tiny", 5, "not loaded");
  control_is(st, d, PC_CLIENT_MODEL_RELOAD, "tiny", 5, "not loaded");
  /* loaded again, it serves again */
  PD_CHECK_INT(st, control(d, PC_CLIENT_MODEL_LOAD, "tiny", NULL, 0, versions, sizeof versions), 0);
  PD_CHECK(st, !strcmp(versions, "1,2"));
  info_is(st, d, "tiny", 2, NULL);
  PD_CHECK(st, ready_metric(d, "tiny", "2") == 1);
  flow_start(&f, d, "tiny", false);
  PD_CHECK(st, flow_progress(&f, 16));
  flow_stop(&f);
  flow_check(st, &f);
  pd_td_guarded_stop(st, &g);
}

/* tiny reloaded twice while a client keeps requests to it in flight (the
 * second beside a SIGHUP rescan): none fails. */
static void reload_under_load(pd_test_state *st) {
  pd_td_guarded g;
  if (!guarded(st, &g, NULL)) return;
  pd_td *d = &g.d;
  flow f;
  flow_start(&f, d, "tiny", false);
  PD_CHECK(st, flow_progress(&f, 32));
  char versions[200] = "";
  for (int i = 0; i < 2; i++) {
    if (i == 1) kill(d->pid, SIGHUP); /* a rescan beside the change: one runs after the other */
    PD_CHECK_INT(st, control(d, PC_CLIENT_MODEL_RELOAD, "tiny", NULL, 0, versions, sizeof versions),
                 0);
    PD_CHECK(st, !strcmp(versions, "1,2"));
    PD_CHECK(st, flow_progress(&f, 32));
  }
  PD_CHECK(st, pd_td_wait_log(d, "kept model other version 2", 30)); /* the rescan ran */
  PD_CHECK(st, flow_progress(&f, 32));
  flow_stop(&f);
  flow_check(st, &f);
  PD_CHECK(st, f.ok > 0);
  PD_CHECK(st, pd_td_bystander_progress(&g.b, 20));
  info_is(st, d, "tiny", 2, NULL);
  PD_CHECK(st, ready_metric(d, "tiny", "1") == 1);
  PD_CHECK(st, pd_td_log_count(d, "model control: loaded model tiny version 2") == 2);
  pc_client *c = pd_td_connect(d, 1);
  pc_client_response *r = NULL;
  pc_client_error err;
  PD_CHECK(st, c && pc_client_stats(c, &r, &err) == PC_CLIENT_OK);
  if (r) { /* tiny 1, tiny 2, other at start; tiny's two versions twice since (the
            * rescan kept every model: unchanged) */
    printf("Stats: %llu model loads\n", (unsigned long long)r->u.stats.model_loads);
    PD_CHECK(st, r->u.stats.model_loads == 7);
  }
  pc_client_response_free(r);
  pc_client_close(c);
  pd_td_guarded_stop(st, &g);
}

/* Past model.max_loaded: refused, naming it; nothing changes. */
static void max_loaded(pd_test_state *st) {
  PD_CHECK_INT(st, fresh_copy(), 0);
  PD_CHECK_INT(st, sh("cp -r '%s/tiny' '%s/third'", copy, copy), 0);
  pd_td d;
  const char *const extra[] = {"--set", "model.max_loaded=4", NULL};
  PD_CHECK_INT(st, sh("mv '%s/third' '%s/third-later'", copy, dir), 0);
  int started = start(&d, extra);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    PD_CHECK_INT(st, sh("mv '%s/third-later' '%s/third'", dir, copy), 0);
    control_is(st, &d, PC_CLIENT_MODEL_LOAD, "third", 8, "model.max_loaded 4");
    info_is(st, &d, "third", -1, NULL); /* not known: NOT_FOUND */
    control_is(st, &d, PC_CLIENT_MODEL_UNLOAD, "other", 9, "is model.default");
    control_is(st, &d, PC_CLIENT_MODEL_UNLOAD, "tiny", 0, NULL);
    control_is(st, &d, PC_CLIENT_MODEL_LOAD, "third", 0, NULL);
    info_is(st, &d, "third", 2, NULL);
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* model.control off; on without a repository; on, from another uid, and
 * over TCP. */
static void refused(pd_test_state *st) {
  PD_CHECK_INT(st, fresh_copy(), 0);
  pd_td d;
  const char *const off[] = {"--set", "model.control=false", NULL};
  int started = start(&d, off);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    control_is(st, &d, PC_CLIENT_MODEL_UNLOAD, "tiny", 7, "model.control: true");
    info_is(st, &d, "tiny", 2, NULL);
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);

  /* model.dir alone (a repository of one): nothing to load from */
  const char *const single[] = {"--set", "model.control=true", NULL};
  started = pd_td_start(&d, single);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) control_is(st, &d, PC_CLIENT_MODEL_RELOAD, "tiny", 9, "needs model.repository");
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);

  const struct passwd *nobody = getpwnam("nobody");
  char gid[32];
  snprintf(gid, sizeof gid, "%d", nobody ? (int)nobody->pw_gid : 0);
  const char *const on[] = {"--tcp", "127.0.0.1:0", "--socket-group", gid, NULL};
  started = start(&d, on);
  PD_CHECK_INT(st, started, 0);
  if (started == 0 && nobody && geteuid() == 0) {
    /* a child that is nobody: refused, naming its uid */
    chmod(d.dir, 0755);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      if (setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0) _exit(90);
      char msg[1024] = "";
      int s = control(&d, PC_CLIENT_MODEL_UNLOAD, "tiny", msg, sizeof msg, NULL, 0);
      char want[64];
      snprintf(want, sizeof want, "uid %d", (int)nobody->pw_uid);
      _exit(s == 7 && strstr(msg, want) ? 0 : 91);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    printf("as uid %d: exit %d\n", (int)nobody->pw_uid,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    PD_CHECK(st, WIFEXITED(status) && WEXITSTATUS(status) == 0);
  } else if (started == 0) {
    printf("not root or no user nobody: the other-uid refusal is not checked\n");
  }
  if (started == 0) {
    /* over TCP: the port from the log */
    char *log = pd_td_log(&d);
    const char *at = log ? strstr(log, "listening on tcp:127.0.0.1:") : NULL;
    PD_CHECK(st, at != NULL);
    if (at) {
      char addr[64];
      snprintf(addr, sizeof addr, "127.0.0.1:%d", atoi(at + strlen("listening on tcp:127.0.0.1:")));
      pc_client_error err;
      pc_client *c = NULL;
      PD_CHECK_INT(st, pc_client_connect(addr, NULL, &c, &err), PC_CLIENT_OK);
      pc_client_response *r = NULL;
      if (c &&
          pc_client_model_control(c, PC_CLIENT_MODEL_UNLOAD, "tiny", &r, &err) == PC_CLIENT_OK) {
        printf("over TCP: %s: %s\n", pc_client_status_name(r->status), r->message);
        PD_CHECK_INT(st, r->status, 7);
        PD_CHECK_CONTAINS(st, r->message, "over TCP");
      } else {
        PD_CHECK(st, false);
      }
      pc_client_response_free(r);
      pc_client_close(c);
    }
    free(log);
    info_is(st, &d, "tiny", 2, NULL);
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* plankton-client model load|unload|reload: exit codes and lines. */
static void cli(pd_test_state *st) {
  PD_CHECK_INT(st, fresh_copy(), 0);
  pd_td d;
  int started = start(&d, NULL);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    const char *cli = getenv("PLANKTON_CLIENT");
    char out[600], cmd[2048];
    snprintf(out, sizeof out, "%s/cli.txt", dir);
    const struct {
      const char *args;
      int code;
      const char *needle;
    } runs[] = {
        {"model unload tiny", 0, "unload tiny: done; no version serving"},
        {"model unload tiny", 2, "NOT_FOUND"},
        {"model load tiny", 0, "load tiny: done; serving version 1, 2"},
        {"model reload tiny", 0, "reload tiny: done; serving version 1, 2"},
        {"model load nope", 2, "has no folder 'nope'"},
        {"model frob tiny", 2, "unknown operation 'frob'"},
        {"model load", 2, "a model name"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
      snprintf(cmd, sizeof cmd, "'%s' --socket '%s' %s > '%s' 2>&1", cli ? cli : "plankton-client",
               d.socket, runs[i].args, out);
      int status = system(cmd);
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      char text[2048] = "";
      FILE *f = fopen(out, "r");
      size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
      text[got] = '\0';
      if (f) fclose(f);
      printf("plankton-client %s: exit %d: %s", runs[i].args, code, text);
      PD_CHECK_INT(st, code, runs[i].code);
      PD_CHECK_CONTAINS(st, text, runs[i].needle);
    }
    unlink(out);
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* ModelInfo max_batch of name version (-1: none). */
static int info_max_batch(const pd_td *d, const char *name, const char *version) {
  pc_client *c = pd_td_connect(d, 1);
  pc_client_response *r = NULL;
  pc_client_error err;
  int mb = -1;
  if (c && pc_client_model_info(c, NULL, &r, &err) == PC_CLIENT_OK && r->status == 0)
    for (size_t i = 0; i < r->u.model_info.n_models; i++) {
      const pc_client_model *m = &r->u.model_info.models[i];
      if (!strcmp(m->name, name) && !strcmp(m->version, version)) mb = (int)m->max_batch;
    }
  pc_client_response_free(r);
  pc_client_close(c);
  return mb;
}

/* n requests to model pipelined on one connection: the largest batch_size
 * among the answers (-1 when one failed). */
static int largest_batch(const pd_td *d, const char *model, int n) {
  pc_client *c = pd_td_connect(d, n);
  if (!c) return -1;
  int largest = 0, answered = 0;
  pc_client_error e;
  for (int i = 0; i < n; i++) {
    pc_client_classify_request rq = {.id = (uint64_t)i + 1,
                                     .model = model,
                                     .format = PC_CLIENT_IMAGE_PNG,
                                     .data = png,
                                     .len = png_len,
                                     .top_k = 1,
                                     .tta = 1};
    if (pc_client_send_classify(c, &rq, &e) != PC_CLIENT_OK) largest = -1;
  }
  while (largest >= 0 && answered < n) {
    if (pc_client_wait(c, 10000, &e) != PC_CLIENT_OK) {
      largest = -1;
      break;
    }
    pc_client_response *r = NULL;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      answered++;
      if (r->status != 0) {
        fprintf(stderr, "%s: %s\n", model, r->message);
        largest = -1;
      } else if (largest >= 0 && (int)r->u.classify.batch_size > largest) {
        largest = (int)r->u.classify.batch_size;
      }
      pc_client_response_free(r);
    }
  }
  pc_client_close(c);
  printf("%d requests to %s: largest batch %d\n", n, model, largest);
  return largest;
}

/* model.yaml serving: max_batch: tiny 2's own batch size (ModelInfo, the
 * answers' batch_size) beside tiny 1 at the daemon's; changed and applied
 * by a ModelControl reload; a bad value is refused naming it. */
static void serving_settings(pd_test_state *st) {
  PD_CHECK_INT(st, fresh_copy(), 0);
  PD_CHECK_INT(st, sh("printf 'serving:\\n  max_batch: 2\\n' >> '%s/tiny/2/model.yaml'", copy), 0);
  pd_td d;
  const char *const extra[] = {"--max-batch", "8", "--max-queue-delay-us", "200000", NULL};
  int started = start(&d, extra);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    PD_CHECK_INT(st, info_max_batch(&d, "tiny", "2"), 2);
    PD_CHECK_INT(st, info_max_batch(&d, "tiny", "1"), 8);
    int own = largest_batch(&d, "tiny:2", 16);
    PD_CHECK(st, own >= 1 && own <= 2);
    PD_CHECK(st, largest_batch(&d, "tiny:1", 16) >= 1);
    PD_CHECK_INT(st, sh("sed -i 's/^  max_batch: 2$/  max_batch: 3/' '%s/tiny/2/model.yaml'", copy),
                 0);
    control_is(st, &d, PC_CLIENT_MODEL_RELOAD, "tiny", 0, NULL);
    PD_CHECK_INT(st, info_max_batch(&d, "tiny", "2"), 3);
    own = largest_batch(&d, "tiny:2", 16);
    PD_CHECK(st, own >= 1 && own <= 3);
    PD_CHECK_INT(st, sh("sed -i 's/^  max_batch: 3$/  max_batch: 0/' '%s/tiny/2/model.yaml'", copy),
                 0);
    control_is(st, &d, PC_CLIENT_MODEL_RELOAD, "tiny", 14, "max_batch");
    PD_CHECK_INT(st, info_max_batch(&d, "tiny", "2"), 3); /* nothing changed */
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

static int setup(void) {
  if (!pd_td_have_model() || !*repo()) return 77;
  if (!mkdtemp(dir)) {
    fprintf(stderr, "cannot make %s: %s\n", dir, strerror(errno));
    return 1;
  }
  chmod(dir, 0755); /* the other-uid case's child reaches the socket below it */
  snprintf(copy, sizeof copy, "%s/repo", dir);
  snprintf(ens_src, sizeof ens_src, "%s/ens-later", dir);
  uint8_t *gray = pd_td_crop(777, 61, 47);
  png = gray ? pd_td_png(gray, 61, 47, &png_len) : NULL;
  free(gray);
  return png ? 0 : 1;
}

static void teardown(void) {
  free(png);
  sh("rm -rf '%s'", dir);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(load_fourth),       PD_TEST_CASE(unload_under_load),
    PD_TEST_CASE(reload_under_load), PD_TEST_CASE(max_loaded),
    PD_TEST_CASE(refused),           PD_TEST_CASE(cli),
    PD_TEST_CASE(serving_settings),
};

PD_TEST_MAIN("daemon_model_control", setup, teardown, k_cases)
