/* A SIGHUP reload's result is reported, not only logged: the real daemon
 * with a config file, reloaded through `plankton-client reload --pid`
 * (what the systemd unit's ExecReload= runs) and by a bare SIGHUP.
 *  - none yet: Health and Stats say no reload, /metrics success 1;
 *  - a config made invalid (a value out of range): `reload` exits 1 naming
 *    file:line, Health and Stats say last_reload_failed with that message,
 *    /metrics shows success 0, a failure counted and the time; the daemon
 *    still serves the old model;
 *  - a model folder that does not load (bare SIGHUP): failed, naming it;
 *  - a fixed config (another model): `reload` exits 0, Health ok, the new
 *    model answers, /metrics success 1 again;
 *  - each reload's sd_notify notices (the harness's NOTIFY_SOCKET):
 *    RELOADING=1 with MONOTONIC_USEC, then READY=1 with STATUS= saying
 *    "reload failed: <message>; still serving ..." or "serving <model>". */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_test.h"

static pd_test_state st;

static void write_config(const char *path, const char *model_dir, const char *max_batch) {
  FILE *f = fopen(path, "w");
  PD_CHECK(&st, f != NULL);
  if (!f) return;
  /* line 5 is batching.max_batch */
  fprintf(f, "# written by test_daemon_reload\nmodel:\n  dir: %s\nbatching:\n  max_batch: %s\n",
          model_dir, max_batch);
  fclose(f);
}

/* `plankton-client --socket S ARGS`: its exit code, its output (stdout
 * and stderr) in out. */
static int cli(const pd_td *d, const char *args, char *out, size_t cap) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "'%s' --socket '%s' %s 2>&1", getenv("PLANKTON_CLIENT"), d->socket,
           args);
  FILE *p = popen(cmd, "r");
  size_t len = p ? fread(out, 1, cap - 1, p) : 0;
  out[len] = '\0';
  int status = p ? pclose(p) : -1;
  printf("$ plankton-client %s -> %d:\n%s", args, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
         out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `plankton-client reload --pid PID --wait 60` (the unit's ExecReload=). */
static int cli_reload(const pd_td *d, char *out, size_t cap) {
  char args[64];
  snprintf(args, sizeof args, "reload --pid %d --wait 60", (int)d->pid);
  return cli(d, args, out, cap);
}

typedef struct health {
  int status;
  char state[32], message[600];
  int64_t when;
  bool failed;
} health;

static health ask_health(const pd_td *d) {
  health h = {.status = -1};
  pc_client *c = pd_td_connect(d, 1);
  pc_client_response *r = NULL;
  if (c && pc_client_health(c, &r, NULL) == PC_CLIENT_OK && r->kind == PC_CLIENT_RESPONSE_HEALTH) {
    h.status = r->status;
    snprintf(h.state, sizeof h.state, "%s", r->u.health.state);
    snprintf(h.message, sizeof h.message, "%s", r->u.health.last_reload_message);
    h.when = r->u.health.last_reload_unix;
    h.failed = r->u.health.last_reload_failed;
  }
  pc_client_response_free(r);
  if (c) pc_client_close(c);
  return h;
}

/* The sd_notify datagrams the daemon sent since the last call (the
 * harness's NOTIFY_SOCKET), joined with " | ". */
static void notices(const pd_td *d, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (char buf[1200];;) {
    ssize_t got = d->notify_fd >= 0 ? recv(d->notify_fd, buf, sizeof buf - 1, 0) : -1;
    if (got <= 0) break;
    buf[got] = '\0';
    int n = snprintf(out + len, cap - len, "%s%s", len ? " | " : "", buf);
    if (n < 0 || (size_t)n >= cap - len) break;
    len += (size_t)n;
  }
  printf("notices: %s\n", out);
}

/* Stats' view of the last reload must be Health's. */
static void check_stats(const pd_td *d, const health *h) {
  pc_client *c = pd_td_connect(d, 1);
  pc_client_response *r = NULL;
  PD_CHECK(&st, c && pc_client_stats(c, &r, NULL) == PC_CLIENT_OK);
  if (r && r->kind == PC_CLIENT_RESPONSE_STATS) {
    PD_CHECK_INT(&st, r->u.stats.last_reload_unix, h->when);
    PD_CHECK_INT(&st, r->u.stats.last_reload_failed, h->failed);
    PD_CHECK(&st, !strcmp(r->u.stats.last_reload_message, h->message));
  }
  pc_client_response_free(r);
  if (c) pc_client_close(c);
}

/* The model that answers a classify request now. */
static void check_serves(const pd_td *d, const char *model) {
  pc_client *c = pd_td_connect(d, 1);
  uint8_t *gray = pd_td_crop(7, 40, 30);
  pc_client_classify_request rq = {.id = 1,
                                   .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                   .data = gray,
                                   .len = 40 * 30,
                                   .width = 40,
                                   .height = 30};
  pc_client_response *r = NULL;
  PD_CHECK(&st, c && pc_client_classify(c, &rq, &r, NULL) == PC_CLIENT_OK);
  PD_CHECK(&st, r && r->status == 0 && !strcmp(r->u.classify.model_name, model));
  pc_client_response_free(r);
  if (c) pc_client_close(c);
  free(gray);
}

/* info: the planktond_last_reload_info line expected (its labels). */
static void check_metrics(const char *msock, double success, double failures, int64_t when,
                          const char *info) {
  char *m = pd_td_metrics(msock);
  PD_CHECK(&st, m != NULL);
  if (!m) return;
  PD_CHECK_CONTAINS(&st, m, info);
  const char *tool = getenv("PROMTOOL"); /* the message as a label value must still parse */
  if (tool && *tool) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' check metrics >/dev/null", tool);
    FILE *p = popen(cmd, "w");
    if (p) fputs(m, p);
    PD_CHECK_INT(&st, p ? pclose(p) : -1, 0);
  }
  PD_CHECK(&st, pd_td_metric(m, "planktond_last_reload_success") == success);
  PD_CHECK(&st, pd_td_metric(m, "planktond_reload_failures_total") == failures);
  PD_CHECK(&st, pd_td_metric(m, "planktond_last_reload_timestamp_seconds") == (double)when);
  PD_CHECK_CONTAINS(&st, m, "# TYPE planktond_reload_failures_total counter");
  free(m);
}

int main(void) {
  if (!pd_td_have_model()) return 77;
  if (!getenv("PLANKTON_CLIENT")) {
    fprintf(stderr, "PLANKTON_CLIENT (the plankton-client binary) is not set\n");
    return 1;
  }
  char tmp[] = "/tmp/pd-reload-XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  char model_b[300], cfg[300], missing[300], cmd[1200], out[32768], msock[400];
  snprintf(model_b, sizeof model_b, "%s/model-b", tmp);
  snprintf(missing, sizeof missing, "%s/no-such-model", tmp);
  snprintf(cfg, sizeof cfg, "%s/planktond.yaml", tmp);
  PD_CHECK_INT(&st, pd_td_model_renamed(model_b, "daemon-tiny-b"), 0);
  write_config(cfg, pd_td_model_dir(), "16");
  pd_td d;
  const char *args[] = {"--config", cfg, "--metrics", "unix:@DIR@/metrics.sock", NULL};
  if (pd_td_start(&d, args) != 0) {
    pd_td_cleanup(&d);
    return 1;
  }
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);

  health h = ask_health(&d);
  PD_CHECK_INT(&st, h.status, 0);
  PD_CHECK_INT(&st, h.when, 0);
  PD_CHECK(&st, !h.failed && !h.message[0]);
  check_stats(&d, &h);
  check_metrics(msock, 1, 0, 0, "planktond_last_reload_info{result=\"none\",message=\"\"} 1\n");
  char sd[4096];
  notices(&d, sd, sizeof sd); /* what start-up sent */

  /* 1: a value out of range, at line 5 of the file */
  const int64_t t0 = (int64_t)time(NULL);
  write_config(cfg, pd_td_model_dir(), "0");
  PD_CHECK_INT(&st, cli_reload(&d, out, sizeof out), 1);
  char where[400];
  snprintf(where, sizeof where, "%s:5", cfg);
  PD_CHECK_CONTAINS(&st, out, where);
  PD_CHECK_CONTAINS(&st, out, "reload failed");
  h = ask_health(&d);
  PD_CHECK_INT(&st, h.status, 0); /* still serving */
  PD_CHECK(&st, !strcmp(h.state, "serving"));
  PD_CHECK(&st, h.failed);
  PD_CHECK_CONTAINS(&st, h.message, where);
  PD_CHECK_CONTAINS(&st, h.message, "max_batch");
  PD_CHECK(&st, h.when >= t0 && h.when <= (int64_t)time(NULL));
  printf("health after a bad config: %s, last reload failed: %s\n", h.state, h.message);
  /* systemd hears of it: RELOADING=1 with the time, then READY=1 and the failure */
  notices(&d, sd, sizeof sd);
  PD_CHECK_CONTAINS(&st, sd, "RELOADING=1\nMONOTONIC_USEC=");
  PD_CHECK_CONTAINS(&st, sd, "READY=1\nSTATUS=reload failed: ");
  PD_CHECK_CONTAINS(&st, sd, where);
  PD_CHECK_CONTAINS(&st, sd, "; still serving daemon-tiny ");
  check_stats(&d, &h);
  char info[800];
  snprintf(info, sizeof info, "planktond_last_reload_info{result=\"failed\",message=\"%s\"} 1\n",
           h.message);
  check_metrics(msock, 0, 1, h.when, info);
  check_serves(&d, "daemon-tiny");
  PD_CHECK_INT(&st, cli(&d, "health", out, sizeof out), 0); /* serving: exit 0, but said */
  PD_CHECK_CONTAINS(&st, out, "serving (last reload failed: ");
  PD_CHECK_CONTAINS(&st, out, where);
  PD_CHECK_INT(&st, cli(&d, "stats", out, sizeof out), 0);
  PD_CHECK_CONTAINS(&st, out, "FAILED: ");
  PD_CHECK_CONTAINS(&st, out, where);
  PD_CHECK_INT(&st, cli(&d, "stats --json", out, sizeof out), 0);
  PD_CHECK_CONTAINS(&st, out, "\"last_reload_failed\":true");

  /* 2: a model folder that does not load, by a bare SIGHUP */
  write_config(cfg, missing, "16");
  const int64_t before = h.when;
  while ((int64_t)time(NULL) <= before) /* a later second than the last reload */
    usleep(50000);
  kill(d.pid, SIGHUP);
  double until = pd_td_now_ms() + 30000;
  do {
    usleep(50000);
    h = ask_health(&d);
  } while (h.when == before && pd_td_now_ms() < until);
  PD_CHECK(&st, h.when > before);
  PD_CHECK(&st, h.failed);
  PD_CHECK_CONTAINS(&st, h.message, "no-such-model");
  printf("health after a missing model: last reload failed: %s\n", h.message);
  notices(&d, sd, sizeof sd);
  PD_CHECK_CONTAINS(&st, sd, "READY=1\nSTATUS=reload failed: ");
  PD_CHECK_CONTAINS(&st, sd, "no-such-model");
  check_stats(&d, &h);
  snprintf(info, sizeof info, "planktond_last_reload_info{result=\"failed\",message=\"%s\"} 1\n",
           h.message);
  check_metrics(msock, 0, 2, h.when, info);
  check_serves(&d, "daemon-tiny");

  /* 3: fixed, with another model */
  write_config(cfg, model_b, "16");
  PD_CHECK_INT(&st, cli_reload(&d, out, sizeof out), 0);
  PD_CHECK_CONTAINS(&st, out, "reload ok");
  h = ask_health(&d);
  PD_CHECK_INT(&st, h.status, 0);
  PD_CHECK(&st, !h.failed && !h.message[0] && h.when > before);
  notices(&d, sd, sizeof sd);
  PD_CHECK_CONTAINS(&st, sd, "RELOADING=1\nMONOTONIC_USEC=");
  PD_CHECK_CONTAINS(&st, sd, "READY=1\nSTATUS=serving daemon-tiny-b ");
  PD_CHECK(&st, !strstr(sd, "reload failed"));
  check_stats(&d, &h);
  check_metrics(msock, 1, 2, h.when, "planktond_last_reload_info{result=\"ok\",message=\"\"} 1\n");
  check_serves(&d, "daemon-tiny-b");
  PD_CHECK_INT(&st, cli(&d, "health", out, sizeof out), 0);
  PD_CHECK(&st, !strcmp(out, "serving\n"));

  /* usage errors of the command itself */
  snprintf(cmd, sizeof cmd, "'%s' --socket '%s' reload >/dev/null 2>&1", getenv("PLANKTON_CLIENT"),
           d.socket);
  int rc = system(cmd);
  PD_CHECK_INT(&st, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 2);

  if (st.failures) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "--- daemon log ---\n%s", log ? log : "");
    free(log);
  }
  PD_CHECK_INT(&st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  PD_CHECK_INT(&st, system(cmd), 0);
  return pd_test_finish(&st, "daemon_reload");
}
