/* The daemon serves an ensemble folder (models/FORMAT.md "Ensembles"):
 * $PD_TEST_MODEL is an ensemble of two different random-weight models
 * (tests/make_ensemble_model.sh: other specs, seeds, class orders and TTA
 * ranges; weights 1 and 3; 3 TTA transforms). planktond --model on it starts
 * and reports the ensemble's name; for N_CROPS crops sent as PNG (its
 * default TTA, and 1 and 5 transforms per request) every probability equals
 * what `planktond-model run` ($PLANKTOND_MODEL_TOOL) gives for the same PNG
 * files to 1e-6, crop by crop: one case each (tta_default, tta_1, tta_5), on
 * a daemon of its own. Exit 77 (skipped) without the test model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_test_cases.h"

#define N_CROPS 12
#define N_CLASSES 12
#define PROB_TOL 1e-6

typedef struct crop {
  int w, h;
  uint8_t *png;
  size_t png_len;
  char path[512];
} crop;

static crop crops[N_CROPS];

static int write_crops(const char *dir) {
  for (int i = 0; i < N_CROPS; i++) {
    crop *c = &crops[i];
    c->w = 18 + (i * 41) % 150;
    c->h = 15 + (i * 29) % 130;
    uint8_t *gray = pd_td_crop((uint64_t)i + 100, c->w, c->h);
    c->png = gray ? pd_td_png(gray, c->w, c->h, &c->png_len) : NULL;
    free(gray);
    if (!c->png) return -1;
    snprintf(c->path, sizeof c->path, "%s/crop%02d.png", dir, i);
    FILE *f = fopen(c->path, "wb");
    if (!f) return -1;
    size_t put = fwrite(c->png, 1, c->png_len, f);
    if (fclose(f) != 0 || put != c->png_len) return -1;
  }
  return 0;
}

/* planktond-model run MODEL --tta T --probs FILE crops...: probs[N_CROPS][N_CLASSES]. */
static int tool_probs(const char *dir, int tta, float *probs) {
  const char *tool = getenv("PLANKTOND_MODEL_TOOL");
  if (!tool) {
    fprintf(stderr, "set PLANKTOND_MODEL_TOOL\n");
    return -1;
  }
  char out[512], tta_s[16];
  snprintf(out, sizeof out, "%s/probs-%d.f32", dir, tta);
  snprintf(tta_s, sizeof tta_s, "%d", tta);
  const char *argv[8 + N_CROPS];
  int n = 0;
  argv[n++] = tool;
  argv[n++] = "run";
  argv[n++] = pd_td_model_dir();
  argv[n++] = "--probs";
  argv[n++] = out;
  if (tta > 0) {
    argv[n++] = "--tta";
    argv[n++] = tta_s;
  }
  for (int i = 0; i < N_CROPS; i++)
    argv[n++] = crops[i].path;
  argv[n] = NULL;
  fflush(stdout); /* or the child would print it again */
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout)) _exit(127);
    execv(tool, (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s run failed (status %d)\n", tool, status);
    return -1;
  }
  FILE *f = fopen(out, "rb");
  if (!f) return -1;
  size_t got = fread(probs, sizeof(float), (size_t)N_CROPS * N_CLASSES, f);
  fclose(f);
  return got == (size_t)N_CROPS * N_CLASSES ? 0 : -1;
}

/* Every crop through the daemon with `tta` transforms (0: its default). */
static void compare(pd_test_state *st, const pd_td *d, int tta, const float *want) {
  pc_client *c = pd_td_connect(d, 16);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  double worst = 0;
  for (int i = 0; i < N_CROPS; i++) {
    pc_client_classify_request r = {.id = (uint64_t)i,
                                    .top_k = 1,
                                    .full_distribution = true,
                                    .format = PC_CLIENT_IMAGE_PNG,
                                    .data = crops[i].png,
                                    .len = crops[i].png_len,
                                    .tta = (uint32_t)tta};
    pc_client_response *resp = NULL;
    pc_client_error err;
    int rc = pc_client_classify(c, &r, &resp, &err);
    PD_CHECK_INT(st, rc, PC_CLIENT_OK);
    if (rc != PC_CLIENT_OK) {
      fprintf(stderr, "crop %d: %s\n", i, err.message);
      break;
    }
    PD_CHECK_INT(st, resp->status, 0);
    const pc_client_classify_result *cr = &resp->u.classify;
    if (resp->status == 0) {
      PD_CHECK(st, !strcmp(cr->model_name, "daemon-ensemble"));
      PD_CHECK_INT(st, cr->n_distribution, N_CLASSES);
      for (size_t k = 0; k < cr->n_distribution && k < N_CLASSES; k++) {
        double diff = fabs((double)cr->distribution[k] - want[i * N_CLASSES + (int)k]);
        if (diff > worst) worst = diff;
      }
    } else {
      fprintf(stderr, "crop %d: %s\n", i, resp->message);
    }
    pc_client_response_free(resp);
  }
  printf("tta %d: %d crops, largest difference from planktond-model run %.3g\n", tta, N_CROPS,
         worst);
  PD_CHECK(st, worst <= PROB_TOL);
  pc_client_close(c);
}

/* ---- the cases (pd_test_cases.h) ---- */

static char dir[] = "/tmp/pd-test-ensemble-XXXXXX";

/* The daemon on the ensemble against the tool, `tta` transforms per
 * request (0: the folder's default). */
static void ensemble_at(pd_test_state *st, int tta) {
  pd_td d;
  const char *args[] = {"--max-batch", "4", NULL};
  int started = pd_td_start(&d, args);
  PD_CHECK_INT(st, started, 0);
  if (started == 0) {
    PD_CHECK(st, pd_td_wait_log(&d, "daemon-ensemble", 10));
    static float want[N_CROPS * N_CLASSES];
    int rc = tool_probs(dir, tta, want);
    PD_CHECK_INT(st, rc, 0);
    if (rc == 0) compare(st, &d, tta, want);
    PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  }
  pd_td_cleanup(&d);
  char probs[512];
  snprintf(probs, sizeof probs, "%s/probs-%d.f32", dir, tta);
  unlink(probs);
}

static void tta_default(pd_test_state *st) {
  ensemble_at(st, 0);
}

static void tta_1(pd_test_state *st) {
  ensemble_at(st, 1);
}

static void tta_5(pd_test_state *st) {
  ensemble_at(st, 5);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (!mkdtemp(dir) || write_crops(dir) != 0) {
    fprintf(stderr, "cannot write the crops: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}

static void teardown(void) {
  for (int i = 0; i < N_CROPS; i++) {
    unlink(crops[i].path);
    free(crops[i].png);
  }
  if (rmdir(dir) != 0) fprintf(stderr, "could not remove %s: %s\n", dir, strerror(errno));
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(tta_default),
    PD_TEST_CASE(tta_1),
    PD_TEST_CASE(tta_5),
};

PD_TEST_MAIN("daemon_ensemble", setup, teardown, k_cases)
