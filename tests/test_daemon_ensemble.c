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
#include "pd_td_files.h"
#include "pd_test_cases.h"

#define N_CROPS 12
#define N_CLASSES 12
#define PROB_TOL 1e-6

static pd_td_crop_files files;

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
                                    .data = files.c[i].png,
                                    .len = files.c[i].png_len,
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
    int rc = pd_td_tool_probs(&files, pd_td_model_dir(), tta, want, N_CLASSES);
    PD_CHECK_INT(st, rc, 0);
    if (rc == 0) compare(st, &d, tta, want);
    PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  }
  pd_td_cleanup(&d);
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
  return pd_td_crop_files_make(&files, N_CROPS, 100, 18, 150, 15, 130) == 0 ? 0 : 1;
}

static void teardown(void) {
  pd_td_crop_files_free(&files);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(tta_default),
    PD_TEST_CASE(tta_1),
    PD_TEST_CASE(tta_5),
};

PD_TEST_MAIN("daemon_ensemble", setup, teardown, k_cases)
