/* The daemon serves a model repository (model.repository): $PD_TEST_REPO
 * (tests/make_repository.sh) holds tiny/1 and tiny/2 (the same spec, other
 * weights), other (another spec, unversioned, its model.yaml naming it
 * otherwise), ens (an ensemble folder) and broken (weights cut short). planktond --repository on it
 * starts, logs the broken folder's error and the name warning, and serves
 * the rest: each model's answers, by name, by name:version and by default,
 * equal `planktond-model run` on its folder ($PLANKTOND_MODEL_TOOL) to
 * 1e-5, crop by crop; unknown names and versions get NOT_FOUND naming what
 * there is, the broken one UNAVAILABLE with its error; ModelInfo lists
 * every version with ready and error; Stats and /metrics count each
 * model's requests (a model label in /metrics); the KServe REST front end routes
 * /v2/models/NAME[/versions/V] (ready, metadata, infer: the same answers)
 * to it; so does plankton-client --model NAME[:VERSION]. Without model.default the daemon
 * refuses to start naming the choices; past model.max_loaded too. SIGHUP
 * rescans a copy of the repository: new, removed, fixed, newly broken and
 * unchanged folders. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_files.h"
#include "pd_test_cases.h"

#define N_CROPS 6
#define MAX_CLASSES 64
#define PROB_TOL 1e-5
#define CLI_TOL 1e-4 /* the CSV's printed digits */

static pd_td_crop_files files;
static char dir[] = "/tmp/pd-test-repo-XXXXXX"; /* the rescan's copy, the CLI's output */

static const char *repo(void) {
  const char *r = getenv("PD_TEST_REPO");
  return r ? r : "";
}

/* The engine on REPO/SUB with tta 1: n_classes probabilities per crop. */
static int tool_probs(const char *sub, float *probs, int n_classes) {
  char model[1024];
  snprintf(model, sizeof model, "%s/%s", repo(), sub);
  return pd_td_tool_probs(&files, model, 1, probs, n_classes);
}

/* One classify of crop i naming `model`, with tta 1 and the full distribution. */
static pc_client_response *classify(pc_client *c, const char *model, int i) {
  pc_client_classify_request r = {.id = (uint64_t)i,
                                  .model = model,
                                  .top_k = 1,
                                  .full_distribution = true,
                                  .format = PC_CLIENT_IMAGE_PNG,
                                  .data = files.c[i].png,
                                  .len = files.c[i].png_len,
                                  .tta = 1};
  return pd_td_classify(c, &r);
}

/* Every crop naming `model` answers as the tool on folder `sub`, from
 * model `name` version `version`. */
static void answers_as(pd_test_state *st, pc_client *c, const char *model, const char *sub,
                       const char *name, const char *version) {
  static float want[N_CROPS * MAX_CLASSES];
  int n_classes = 0;
  double worst = 0;
  for (int i = 0; i < N_CROPS; i++) {
    pc_client_response *r = classify(c, model, i);
    PD_CHECK(st, r != NULL);
    if (!r) return;
    PD_CHECK_INT(st, r->status, 0);
    const pc_client_classify_result *cr = &r->u.classify;
    if (r->status == 0) {
      PD_CHECK(st, !strcmp(cr->model_name, name));
      PD_CHECK(st, !strcmp(cr->model_version, version));
      if (i == 0) {
        n_classes = (int)cr->n_distribution;
        PD_CHECK(st, n_classes > 0 && n_classes <= MAX_CLASSES);
        int rc = n_classes > 0 && n_classes <= MAX_CLASSES ? tool_probs(sub, want, n_classes) : -1;
        PD_CHECK_INT(st, rc, 0);
        if (rc != 0) n_classes = 0;
      }
      for (int k = 0; k < n_classes && k < (int)cr->n_distribution; k++) {
        double d = fabs((double)cr->distribution[k] - want[i * n_classes + k]);
        if (d > worst) worst = d;
      }
    } else {
      fprintf(stderr, "'%s' crop %d: %s\n", model, i, r->message);
    }
    pc_client_response_free(r);
  }
  printf("model '%s' (%s %s): %d crops, largest difference from planktond-model run on %s: %.3g\n",
         model, name, version, N_CROPS, sub, worst);
  PD_CHECK(st, n_classes > 0 && worst <= PROB_TOL);
}

/* One request naming `model`: its status, and its message holding each of
 * the NULL-terminated needles. */
static void refused(pd_test_state *st, pc_client *c, const char *model, int status,
                    const char *const *needles) {
  pc_client_response *r = classify(c, model, 0);
  PD_CHECK(st, r != NULL);
  if (!r) return;
  PD_CHECK_INT(st, r->status, status);
  printf("'%s': %s\n", model, r->message);
  for (int i = 0; needles[i]; i++)
    PD_CHECK(st, strstr(r->message, needles[i]) != NULL);
  pc_client_response_free(r);
}

static int start_repo(pd_td *d, const char *const *extra) {
  const char *args[16] = {"--repository", repo(), "--max-batch", "4"};
  int n = 4;
  for (int i = 0; extra && extra[i] && n < 15; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  return pd_td_start(d, args);
}

/* Stats after answers(): a row per model version, the totals beside. */
static void stats_per_model(pd_test_state *st, pc_client *c) {
  pc_client_response *r = NULL;
  pc_client_error err;
  PD_CHECK_INT(st, pc_client_stats(c, &r, &err), PC_CLIENT_OK);
  if (!r) return;
  const pc_client_stats_result *s = &r->u.stats;
  PD_CHECK_INT(st, (int)s->n_models, 4);
  uint64_t ok = 0;
  for (size_t i = 0; i < s->n_models; i++) {
    const pc_client_model_stats *m = &s->models[i];
    printf("Stats: %s %s: %llu OK, %llu images, %.6f s in all\n", m->name, m->version,
           (unsigned long long)m->requests_by_status[0], (unsigned long long)m->images,
           m->request_seconds);
    const bool once =
        !strcmp(m->name, "ens") || (!strcmp(m->name, "tiny") && !strcmp(m->version, "1"));
    PD_CHECK(st, m->requests_by_status[0] == (once ? N_CROPS : 2 * N_CROPS));
    PD_CHECK(st, m->images == m->requests_by_status[0] && m->request_seconds > 0);
    if (!strcmp(m->name, "tiny") && !strcmp(m->version, "2")) /* tiny:9 counts nowhere */
      PD_CHECK(st, m->requests_by_status[5] == 0);
    ok += m->requests_by_status[0];
  }
  PD_CHECK(st, ok == s->requests_by_status[0] && s->requests_by_status[5] == 1);
  pc_client_response_free(r);
}

static const char *const k_serving[] = {"--default-model", "other", "--metrics",
                                        "unix:@DIR@/metrics.sock", NULL};

/* ---- the cases (pd_test_cases.h) ---- */

static void answers(pd_test_state *st) {
  pd_td d;
  int started = start_repo(&d, k_serving);
  PD_CHECK_INT(st, started, 0);
  pc_client *c = started == 0 ? pd_td_connect(&d, 4) : NULL;
  PD_CHECK(st, c != NULL);
  if (c) {
    answers_as(st, c, "tiny", "tiny/2", "tiny", "2");
    answers_as(st, c, "tiny:1", "tiny/1", "tiny", "1");
    answers_as(st, c, "tiny:2", "tiny/2", "tiny", "2");
    answers_as(st, c, "other", "other", "other", "2");
    answers_as(st, c, "", "other", "other", "2");
    answers_as(st, c, "ens", "ens", "ens", "1");
    refused(st, c, "tiny:9", 5, (const char *const[]){"'9'", NULL});
    stats_per_model(st, c);
    pc_client_close(c);
    char sock[400];
    snprintf(sock, sizeof sock, "%s/metrics.sock", d.dir);
    char *m = pd_td_metrics(sock);
    PD_CHECK(st, m != NULL);
    if (m) {
      const double tiny2 = pd_td_metric(
          m, "planktond_model_inference_request_total{model=\"tiny\",version=\"2\",status=\"OK\"}");
      const double tiny1 = pd_td_metric(
          m, "planktond_model_inference_request_total{model=\"tiny\",version=\"1\",status=\"OK\"}");
      const double other = pd_td_metric(
          m,
          "planktond_model_inference_request_total{model=\"other\",version=\"2\",status=\"OK\"}");
      const double total = pd_td_metric(m, "planktond_inference_request_success_total");
      printf("/metrics: tiny 2 %g, tiny 1 %g, other %g OK requests; %g in all\n", tiny2, tiny1,
             other, total);
      PD_CHECK(st, tiny2 == 2 * N_CROPS && tiny1 == N_CROPS && other == 2 * N_CROPS);
      PD_CHECK(st, total == 6 * N_CROPS);
      PD_CHECK(st, pd_td_metric(m, "planktond_model_ready{model=\"broken\",version=\"\"}") == 0);
      PD_CHECK(st, pd_td_metric(m, "planktond_model_ready{model=\"tiny\",version=\"1\"}") == 1);
      PD_CHECK(st, pd_td_metric(m, "planktond_model_inference_request_duration_seconds_count{"
                                   "model=\"tiny\",version=\"1\"}") == N_CROPS);
      free(m);
    }
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

static void errors(pd_test_state *st) {
  pd_td d;
  int started = start_repo(&d, k_serving);
  PD_CHECK_INT(st, started, 0);
  pc_client *c = started == 0 ? pd_td_connect(&d, 4) : NULL;
  PD_CHECK(st, c != NULL);
  if (c) {
    refused(st, c, "nope", 5, (const char *const[]){"'nope'", "'tiny'", "'other'", NULL});
    refused(st, c, "tiny:9", 5, (const char *const[]){"'9'", "'1'", "'2'", NULL});
    refused(st, c, "broken", 14, (const char *const[]){"did not load", "broken", NULL});
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_model_info(c, NULL, &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK_INT(st, r->status, 0);
      PD_CHECK_INT(st, (int)r->u.model_info.n_models, 5);
      for (size_t i = 0; i < r->u.model_info.n_models; i++) {
        const pc_client_model *m = &r->u.model_info.models[i];
        printf("ModelInfo: %s %s ready %d latest %d default %d %s\n", m->name, m->version, m->ready,
               m->latest, m->is_default, m->error);
        const bool broken = !strcmp(m->name, "broken");
        PD_CHECK(st, m->ready == !broken);
        PD_CHECK(st, broken ? strstr(m->error, "weights") != NULL : m->error[0] == '\0');
        PD_CHECK(st, m->is_default == !strcmp(m->name, "other"));
        PD_CHECK(st, m->latest == !(!strcmp(m->name, "tiny") && !strcmp(m->version, "1")));
      }
      pc_client_response_free(r);
    }
    r = NULL;
    PD_CHECK_INT(st, pc_client_model_info(c, "tiny:1", &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK(st, r->status == 0 && r->u.model_info.n_models == 1 &&
                       !strcmp(r->u.model_info.models[0].version, "1"));
      pc_client_response_free(r);
    }
    pc_client_close(c);
  }
  PD_CHECK(st, pd_td_log_count(&d, "/broken (model 'broken'): ") == 1);
  PD_CHECK(st, pd_td_log_count(&d, "names it 'ensemble-b': served as 'other'") == 1);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* METHOD path (with body, may be NULL) over the Unix socket sock: the whole
 * answer (malloc'ed) or NULL. */
static char *http_req(const char *sock, const char *method, const char *path, const char *body) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char head[512];
  const size_t blen = body ? strlen(body) : 0;
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: "
                   "application/json\r\nContent-Length: %zu\r\n\r\n",
                   method, path, blen);
  size_t cap = 1 << 20, len = 0;
  bool sent = send(fd, head, (size_t)n, MSG_NOSIGNAL) == n &&
              (!blen || send(fd, body, blen, MSG_NOSIGNAL) == (ssize_t)blen);
  char *buf = sent ? malloc(cap) : NULL;
  for (ssize_t got = 1; buf && got > 0 && len < cap - 1; len += (size_t)(got > 0 ? got : 0))
    got = recv(fd, buf + len, cap - 1 - len, 0);
  close(fd);
  if (buf) buf[len] = '\0';
  return buf;
}

/* GET path: the answer starts with status line `want` and holds `needle` (may be NULL). */
static void get_is(pd_test_state *st, const char *sock, const char *path, const char *want,
                   const char *needle) {
  char *a = http_req(sock, "GET", path, NULL);
  PD_CHECK(st, a != NULL);
  if (!a) return;
  const char *body = strstr(a, "\r\n\r\n");
  printf("GET %s: %.*s %s\n", path, (int)strcspn(a, "\r"), a, body ? body + 4 : "");
  PD_CHECK(st, strncmp(a, want, strlen(want)) == 0);
  if (needle) PD_CHECK(st, body && strstr(body, needle) != NULL);
  free(a);
}

/* POST /v2/models/PATH/infer for every crop as UINT8 [1,H,W] with tta 1:
 * the probabilities equal the tool's on folder sub. */
static void kserve_infer_as(pd_test_state *st, const char *sock, const char *path,
                            const char *sub) {
  static float want[N_CROPS * MAX_CLASSES];
  int n_classes = 0;
  double worst = 0;
  for (int i = 0; i < N_CROPS; i++) {
    const pd_td_file_crop *c = &files.c[i];
    size_t cap = (size_t)c->w * (size_t)c->h * 4 + 256, o = 0;
    char *body = malloc(cap);
    if (!body) return;
    o += (size_t)snprintf(body, cap,
                          "{\"parameters\":{\"tta\":1},\"inputs\":[{\"name\":\"IMAGE\","
                          "\"datatype\":\"UINT8\",\"shape\":[1,%d,%d],\"data\":[",
                          c->h, c->w);
    for (int k = 0; k < c->w * c->h; k++)
      o += (size_t)snprintf(body + o, cap - o, "%s%u", k ? "," : "", c->gray[k]);
    snprintf(body + o, cap - o, "]}]}");
    char url[200];
    snprintf(url, sizeof url, "/v2/models/%s/infer", path);
    char *a = http_req(sock, "POST", url, body);
    free(body);
    const char *data = a ? strstr(a, "\"data\":[") : NULL;
    PD_CHECK(st, a && !strncmp(a, "HTTP/1.1 200", 12) && data);
    if (!data) {
      fprintf(stderr, "POST %s: %s\n", url, a ? a : "(no answer)");
      free(a);
      return;
    }
    float got[MAX_CLASSES];
    int n = 0;
    for (char *p = (char *)data + 8, *end; n < MAX_CLASSES && *p != ']'; p = end + (*end == ',')) {
      got[n++] = strtof(p, &end);
      if (end == p) break;
    }
    free(a);
    if (i == 0) {
      n_classes = n;
      int rc = tool_probs(sub, want, n_classes);
      PD_CHECK_INT(st, rc, 0);
      if (rc != 0) return;
    }
    PD_CHECK_INT(st, n, n_classes);
    for (int k = 0; k < n && k < n_classes; k++) {
      double d = fabs((double)got[k] - want[i * n_classes + k]);
      if (d > worst) worst = d;
    }
  }
  printf("KServe REST %s: %d crops, largest difference from planktond-model run on %s: %.3g\n",
         path, N_CROPS, sub, worst);
  PD_CHECK(st, n_classes > 0 && worst <= PROB_TOL);
}

static void kserve_routes(pd_test_state *st) {
  if (getenv("PD_HAVE_KSERVE") && !strcmp(getenv("PD_HAVE_KSERVE"), "0")) {
    printf("built without the kserve feature: nothing to check\n");
    return;
  }
  pd_td d;
  const char *const extra[] = {"--default-model", "tiny", "--http", "unix:@DIR@/kserve.sock", NULL};
  int started = start_repo(&d, extra);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    char sock[400];
    snprintf(sock, sizeof sock, "%s/kserve.sock", d.dir);
    get_is(st, sock, "/v2/models/tiny/versions/1/ready", "HTTP/1.1 200", NULL);
    get_is(st, sock, "/v2/models/other/ready", "HTTP/1.1 200", NULL);
    get_is(st, sock, "/v2/models/broken/ready", "HTTP/1.1 503", NULL);
    get_is(st, sock, "/v2/models/tiny/versions/1", "HTTP/1.1 200", "\"1\"");
    get_is(st, sock, "/v2/models/tiny", "HTTP/1.1 200", "\"2\"");
    get_is(st, sock, "/v2/models/nope", "HTTP/1.1 404", "'other'");
    get_is(st, sock, "/v2/models/tiny/versions/7", "HTTP/1.1 404", "its versions are '1', '2'");
    kserve_infer_as(st, sock, "tiny/versions/1", "tiny/1");
    kserve_infer_as(st, sock, "tiny", "tiny/2");
    kserve_infer_as(st, sock, "ens", "ens");
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
}

/* A start the settings refuse, with `needle` in the log. */
static void refuses_to_start(pd_test_state *st, const char *const *extra, const char *needle) {
  pd_td d;
  int started = start_repo(&d, extra);
  PD_CHECK(st, started != 0);
  PD_CHECK(st, pd_td_log_count(&d, needle) >= 1);
  if (pd_td_log_count(&d, needle) < 1) {
    char *log = pd_td_log(&d);
    fprintf(stderr, "log:\n%s\n", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&d);
}

static void default_required(pd_test_state *st) {
  refuses_to_start(st, NULL, "several models ('broken', 'ens', 'other', 'tiny')");
}

static void default_unknown(pd_test_state *st) {
  refuses_to_start(st, (const char *const[]){"--default-model", "nope", NULL},
                   "model.default 'nope' is not in the repository");
}

static void max_loaded(pd_test_state *st) {
  refuses_to_start(
      st, (const char *const[]){"--default-model", "tiny", "--set", "model.max_loaded=2", NULL},
      "more than model.max_loaded 2 model versions");
}

/* A shell command; 0 when it succeeded. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd) == 0 ? 0 : -1;
}

/* SIGHUP rescans: a new folder is loaded, a removed version unloaded, a
 * fixed folder loaded, a folder broken since keeps its previous load, an
 * unchanged one is kept as it is. */
static void rescan(pd_test_state *st) {
  char copy[600];
  snprintf(copy, sizeof copy, "%s/repo", dir);
  PD_CHECK_INT(st, sh("cp -r '%s' '%s'", repo(), copy), 0);
  pd_td d;
  const char *args[] = {"--repository", copy, "--default-model", "other", NULL};
  int started = pd_td_start(&d, args);
  PD_CHECK_INT(st, started, 0);
  pc_client *c = started == 0 ? pd_td_connect(&d, 4) : NULL;
  PD_CHECK(st, c != NULL);
  if (c) {
    answers_as(st, c, "tiny:1", "tiny/1", "tiny", "1");
    PD_CHECK_INT(st, sh("cp -r '%s/tiny/1' '%s/third'", repo(), copy), 0);
    PD_CHECK_INT(st, sh("rm -r '%s/tiny/1' && cp '%s'/tiny/2/* '%s/broken'", copy, repo(), copy),
                 0);
    PD_CHECK_INT(st,
                 sh("head -c 300 '%s/tiny/2/weights.safetensors' > '%s/w' && mv '%s/w' "
                    "'%s/tiny/2/weights.safetensors'",
                    copy, copy, copy, copy),
                 0);
    kill(d.pid, SIGHUP);
    PD_CHECK(st, pd_td_wait_log(&d, "kept model other version 2", 30));
    PD_CHECK(st, pd_td_wait_log(&d, "reloaded: model third", 30));
    answers_as(st, c, "third", "tiny/1", "third", "1");
    answers_as(st, c, "broken", "tiny/2", "broken", "1");
    answers_as(st, c, "tiny", "tiny/2", "tiny", "2"); /* its previous load */
    answers_as(st, c, "", "other", "other", "2");
    refused(st, c, "tiny:1", 5, (const char *const[]){"its versions are '2'", NULL});
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_model_info(c, "tiny", &r, &err), PC_CLIENT_OK);
    if (r && r->status == 0 && r->u.model_info.n_models == 1) {
      const pc_client_model *m = &r->u.model_info.models[0];
      printf("after the rescan: tiny %s ready %d: %s\n", m->version, m->ready, m->error);
      PD_CHECK(st, m->ready && strstr(m->error, "previous load still serves") != NULL);
    } else {
      PD_CHECK(st, false);
    }
    pc_client_response_free(r);
    pc_client_close(c);
  }
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  pd_td_cleanup(&d);
  PD_CHECK_INT(st, sh("rm -r '%s'", copy), 0);
}

/* plankton-client --socket S classify -f csv --probs --tta 1 --model MODEL
 * crops... -o FILE: its exit status; the probabilities in probs. */
static int cli_classify(const pd_td *d, const char *model, float *probs, int n_classes) {
  const char *cli = getenv("PLANKTON_CLIENT");
  char out[600], cmd[8192];
  snprintf(out, sizeof out, "%s/cli.csv", dir);
  int o = snprintf(cmd, sizeof cmd,
                   "'%s' --socket '%s' classify -f csv --probs --tta 1 --model '%s' -o '%s'",
                   cli ? cli : "plankton-client", d->socket, model, out);
  for (int i = 0; i < N_CROPS && o > 0 && (size_t)o < sizeof cmd; i++)
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, " '%s'", files.c[i].path);
  int status = system(cmd);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  FILE *f = code == 0 ? fopen(out, "r") : NULL;
  char line[8192];
  int row = -1; /* the header first */
  while (f && fgets(line, sizeof line, f) && row < N_CROPS) {
    if (row >= 0) {
      char *p = strchr(line, ',');
      for (int k = 0; k < n_classes && p; k++, p = strchr(p + 1, ','))
        probs[row * n_classes + k] = strtof(p + 1, NULL);
    }
    row++;
  }
  if (f) fclose(f);
  unlink(out);
  return code == 0 && row != N_CROPS ? -1 : code;
}

/* The command-line client names repository models as the protocol does. */
static void cli(pd_test_state *st) {
  pd_td d;
  const char *const extra[] = {"--default-model", "other", NULL};
  int started = start_repo(&d, extra);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    static float got[N_CROPS * MAX_CLASSES], want[N_CROPS * MAX_CLASSES];
    const int nc = 12; /* the tiny spec's classes */
    const char *const models[][2] = {{"tiny:1", "tiny/1"}, {"tiny", "tiny/2"}};
    for (int m = 0; m < 2; m++) {
      PD_CHECK_INT(st, cli_classify(&d, models[m][0], got, nc), 0);
      PD_CHECK_INT(st, tool_probs(models[m][1], want, nc), 0);
      double worst = 0;
      for (int i = 0; i < N_CROPS * nc; i++)
        if (fabs((double)got[i] - want[i]) > worst) worst = fabs((double)got[i] - want[i]);
      printf("plankton-client --model %s: largest difference from planktond-model run on %s: "
             "%.3g\n",
             models[m][0], models[m][1], worst);
      PD_CHECK(st, worst <= CLI_TOL);
    }
    PD_CHECK_INT(st, cli_classify(&d, "nope", got, nc), 2); /* usage: it names the models */
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
  return pd_td_crop_files_make(&files, N_CROPS, 300, 20, 120, 17, 110) == 0 ? 0 : 1;
}

static void teardown(void) {
  pd_td_crop_files_free(&files);
  if (rmdir(dir) != 0) fprintf(stderr, "could not remove %s: %s\n", dir, strerror(errno));
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(answers),         PD_TEST_CASE(errors),
    PD_TEST_CASE(kserve_routes),   PD_TEST_CASE(default_required),
    PD_TEST_CASE(default_unknown), PD_TEST_CASE(max_loaded),
    PD_TEST_CASE(rescan),          PD_TEST_CASE(cli),
};

PD_TEST_MAIN("daemon_repository", setup, teardown, k_cases)
