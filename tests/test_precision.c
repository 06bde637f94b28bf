/* The pieces of engine.precision below the daemon: pd_precision's names,
 * SHA-256 against the FIPS 180-4 examples, the precision.bf16 record in a
 * model.yaml (a copy of $PD_TEST_MODEL, the shipped model, with the record
 * replaced): parsed, and refused with the line and key when malformed; the
 * parity bounds; and the CPU backend's refusals (int8 always, tf32 and fp16:
 * CUDA only, auto). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_cpu_backend.h"
#include "pd_file.h"
#include "pd_model.h"
#include "pd_precision_pick.h"
#include "pd_sha256.h"
#include "pd_test.h"

static pd_test_state st;

static void names(void) {
  pd_precision p = PD_PRECISION_FP32;
  pd_error err = {0};
  PD_CHECK_INT(&st, pd_precision_parse("bf16", &p, &err), PD_OK);
  PD_CHECK_INT(&st, p, PD_PRECISION_BF16);
  PD_CHECK_INT(&st, pd_precision_parse("int8", &p, &err), PD_OK);
  PD_CHECK_INT(&st, pd_precision_parse("tf32", &p, &err), PD_OK);
  PD_CHECK_INT(&st, p, PD_PRECISION_TF32);
  PD_CHECK_INT(&st, pd_precision_parse("fp16", &p, &err), PD_OK);
  PD_CHECK_INT(&st, p, PD_PRECISION_FP16);
  PD_CHECK_INT(&st, pd_precision_parse("fp8", &p, &err), PD_EINVAL);
  PD_CHECK_CONTAINS(&st, err.msg, "unknown precision 'fp8' (auto, fp32, bf16, int8, tf32 or fp16)");
  PD_CHECK(&st, !strcmp(pd_precision_name(PD_PRECISION_AUTO), "auto"));
}

static void sha256(void) {
  char hex[PD_SHA256_HEX_LEN + 1];
  pd_sha256_buf("abc", 3, hex);
  PD_CHECK(&st, !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  pd_sha256_buf(two, strlen(two), hex);
  PD_CHECK(&st, !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  pd_sha256_buf("", 0, hex);
  PD_CHECK(&st, !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  pd_error err = {0};
  PD_CHECK_INT(&st, pd_sha256_file("/nonexistent/w", hex, &err), PD_EIO);
  PD_CHECK_CONTAINS(&st, err.msg, "/nonexistent/w");
}

/* The shipped model.yaml without its precision block, plus `record`,
 * loaded with the shipped weights. */
static int load_with(const char *record, pd_model **m, pd_error *err) {
  char path[4200];
  unsigned char *yaml = NULL, *w = NULL;
  size_t yl = 0, wl = 0;
  snprintf(path, sizeof path, "%s/model.yaml", getenv("PD_TEST_MODEL"));
  PD_TRY(pd_file_read(path, 1 << 24, &yaml, &yl, err));
  char *cut = strstr((char *)yaml, "\nprecision:");
  if (cut) cut[1] = '\0';
  size_t base = strlen((char *)yaml), rl = strlen(record);
  char *text = malloc(base + rl + 1);
  memcpy(text, yaml, base);
  memcpy(text + base, record, rl + 1);
  free(yaml);
  snprintf(path, sizeof path, "%s/weights.safetensors", getenv("PD_TEST_MODEL"));
  int rc = pd_file_read(path, 1 << 28, &w, &wl, err);
  if (rc == PD_OK)
    rc = pd_model_load_mem(text, base + rl, "model.yaml", w, wl, "weights.safetensors", m, err);
  free(text);
  free(w);
  return rc;
}

#define HEX "4339743346a54fa5afeb853f6834558686d5b63883e9cc7f42a651c2e71ab921"

static void record(void) {
  pd_model *m = NULL;
  pd_error err = {0};
  PD_CHECK_INT(&st, load_with("", &m, &err), PD_OK);
  PD_CHECK(&st, m && !m->bf16.present);
  pd_model_free(m);
  m = NULL;
  PD_CHECK_INT(&st,
               load_with("precision:\n  bf16:\n    weights_sha256: \"" HEX "\"\n    crops: 10\n"
                         "    top1_same: 0.995\n    log_loss_fp32: 0.5\n    log_loss_bf16: 0.51\n",
                         &m, &err),
               PD_OK);
  PD_CHECK(&st,
           m && m->bf16.present && m->bf16.crops == 10 && !strcmp(m->bf16.weights_sha256, HEX));
  if (m) PD_CHECK(&st, pd_precision_record_passes(&m->bf16));
  pd_model_free(m);
  m = NULL;
  const struct {
    const char *yaml, *want;
  } bad[] = {
      {"precision:\n  bf16: {weights_sha256: \"abc\", crops: 1, top1_same: 1, log_loss_fp32: 1, "
       "log_loss_bf16: 1}\n",
       "weights_sha256 must be 64 lowercase hex digits"},
      {"precision:\n  bf16: {weights_sha256: \"" HEX "\", crops: 1, top1_same: 1.5, "
       "log_loss_fp32: 1, log_loss_bf16: 1}\n",
       "1.5"},
      {"precision:\n  bf16: {weights_sha256: \"" HEX "\", crops: 1, top1_same: 1, "
       "log_loss_fp32: 1, log_loss_bf16: 1, pass: true}\n",
       "pass"},
      {"precision:\n  fp16: {}\n", "fp16"},
      {"precision:\n  bf16: {weights_sha256: \"" HEX "\", crops: 1}\n", "top1_same"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    PD_CHECK(&st, load_with(bad[i].yaml, &m, &err) != PD_OK);
    PD_CHECK_CONTAINS(&st, err.msg, bad[i].want);
    PD_CHECK_CONTAINS(&st, err.msg, "model.yaml:2");
  }
}

static void bounds(void) {
  pd_precision_record r = {
      .present = true, .top1_same = 0.995, .log_loss_fp32 = 0.7, .log_loss_bf16 = 0.709};
  PD_CHECK(&st, pd_precision_record_passes(&r));
  r.top1_same = 0.9949;
  PD_CHECK(&st, !pd_precision_record_passes(&r));
  r.top1_same = 1.0;
  r.log_loss_bf16 = 0.7102;
  PD_CHECK(&st, !pd_precision_record_passes(&r));
  r.log_loss_bf16 = 0.6905;
  PD_CHECK(&st, pd_precision_record_passes(&r));
  r.present = false;
  PD_CHECK(&st, !pd_precision_record_passes(&r));
}

static void backend_refusals(void) {
  pd_backend *be = NULL;
  pd_error err = {0};
  pd_cpu_options o = {.threads = 1, .precision = PD_PRECISION_INT8};
  PD_CHECK_INT(&st, pd_cpu_backend_create(&o, &be, &err), PD_EUNSUPP);
  PD_CHECK_CONTAINS(&st, err.msg, "precision int8 is not implemented; this CPU runs: fp32");
  o.precision = PD_PRECISION_TF32;
  PD_CHECK_INT(&st, pd_cpu_backend_create(&o, &be, &err), PD_EUNSUPP);
  PD_CHECK_CONTAINS(&st, err.msg,
                    "precision tf32 runs on the CUDA backend only; this CPU runs: fp32");
  o.precision = PD_PRECISION_FP16;
  PD_CHECK_INT(&st, pd_cpu_backend_create(&o, &be, &err), PD_EUNSUPP);
  PD_CHECK_CONTAINS(&st, err.msg,
                    "precision fp16 runs on the CUDA backend only; this CPU runs: fp32");
  o.precision = PD_PRECISION_AUTO;
  PD_CHECK_INT(&st, pd_cpu_backend_create(&o, &be, &err), PD_EINVAL);
  o.precision = PD_PRECISION_BF16;
  int rc = pd_cpu_backend_create(&o, &be, &err);
  PD_CHECK_INT(&st, rc, pd_cpu_precision_available(PD_PRECISION_BF16) ? PD_OK : PD_EUNSUPP);
  if (rc != PD_OK) PD_CHECK_CONTAINS(&st, err.msg, "it runs: fp32");
  pd_backend_destroy(be);
  char can[32];
  pd_cpu_precisions(can, sizeof can);
  printf("this build and CPU run: %s\n", can);
}

int main(void) {
  if (!getenv("PD_TEST_MODEL")) {
    fprintf(stderr, "set PD_TEST_MODEL\n");
    return 1;
  }
  names();
  sha256();
  record();
  bounds();
  backend_refusals();
  return pd_test_finish(&st, "precision");
}
