/* Resolving engine.precision per model folder (the parity record and the CPU). */
#include "pd_precision_pick.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pd_cpu_backend.h"
#include "pd_sha256.h"

bool pd_precision_record_passes(const pd_precision_record *r) {
  /* 1e-9: the record's six decimals, so a bound met exactly passes */
  return r->present && r->top1_same >= PD_BF16_MIN_TOP1_SAME - 1e-9 &&
         fabs(r->log_loss_bf16 - r->log_loss_fp32) <= PD_BF16_MAX_LOG_LOSS_DIFF + 1e-9;
}

/* Whether member m's record holds for its weights now; why says why not. */
static int member_ok(const pd_model *m, const char *dir, bool *ok, char *why, size_t len,
                     pd_error *err) {
  const pd_precision_record *r = &m->bf16;
  *ok = false;
  if (!r->present) {
    snprintf(why, len,
             "auto: fp32 (%s/model.yaml records no bf16 parity check; planktond-model "
             "precision-check %s DATA --write records one)",
             dir, dir);
    return PD_OK;
  }
  char path[4200], hex[PD_SHA256_HEX_LEN + 1];
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  PD_TRY(pd_sha256_file(path, hex, err));
  if (strcmp(hex, r->weights_sha256) != 0) {
    snprintf(why, len,
             "auto: fp32 (the bf16 parity record in %s/model.yaml is stale: it was measured on "
             "weights sha256 %.12s..., the weights are now %.12s...; re-run planktond-model "
             "precision-check --write)",
             dir, r->weights_sha256, hex);
    return PD_OK;
  }
  if (!pd_precision_record_passes(r)) {
    snprintf(why, len,
             "auto: fp32 (bf16 failed parity in %s/model.yaml: same top-1 on %.2f%% of %d crops, "
             "log loss %.4f vs fp32 %.4f; needs >= %.1f%% and within %.2f)",
             dir, 100 * r->top1_same, r->crops, r->log_loss_bf16, r->log_loss_fp32,
             100 * PD_BF16_MIN_TOP1_SAME, PD_BF16_MAX_LOG_LOSS_DIFF);
    return PD_OK;
  }
  *ok = true;
  snprintf(why, len, "same top-1 on %.2f%% of %d crops, log loss %.4f vs fp32 %.4f",
           100 * r->top1_same, r->crops, r->log_loss_bf16, r->log_loss_fp32);
  return PD_OK;
}

int pd_precision_pick(const pd_ensemble *e, pd_precision asked, pd_precision *out, char *why,
                      size_t len, pd_error *err) {
  *out = asked;
  if (asked != PD_PRECISION_AUTO) {
    snprintf(why, len, "%s (requested)", pd_precision_name(asked));
    return PD_OK;
  }
  *out = PD_PRECISION_FP32;
  if (!pd_cpu_precision_available(PD_PRECISION_BF16)) {
    char cpu[160];
    pd_cpu_features_describe(cpu, sizeof cpu);
    snprintf(why, len, "auto: fp32 (this build and CPU do not run bf16: %s)", cpu);
    return PD_OK;
  }
  char detail[512] = "";
  for (int i = 0; i < e->n_members; i++) {
    bool ok = false;
    PD_TRY(member_ok(e->members[i], e->members[i]->dir, &ok, i ? why : detail,
                     i ? len : sizeof detail, err));
    if (!ok) {
      if (i == 0) snprintf(why, len, "%s", detail);
      return PD_OK;
    }
  }
  *out = PD_PRECISION_BF16;
  snprintf(why, len, "auto: bf16 (this CPU runs bf16; parity recorded: %s%s)", detail,
           e->n_members > 1 ? ", and in every member" : "");
  return PD_OK;
}
