/* pd_precision_pick: what engine.precision means for one model folder on
 * the CPU. A precision asked by name is passed on (the backend refuses one
 * it cannot run). `auto` is bf16 only where the CPU runs bf16 and every
 * model of the folder records a bf16 parity check (FORMAT.md "Precision")
 * measured on its current weights (the record's sha256 equals the weights
 * file's) that passes: the same top-1 class on at least 99.5% of the crops
 * and a log loss within 0.01 of fp32's. Otherwise fp32; the reason says
 * which condition failed. */
#ifndef PD_PRECISION_PICK_H
#define PD_PRECISION_PICK_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_ensemble.h"
#include "pd_precision.h"

#define PD_BF16_MIN_TOP1_SAME 0.995
#define PD_BF16_MAX_LOG_LOSS_DIFF 0.01

/* Whether a record meets the bounds above (its hash is not checked here). */
bool pd_precision_record_passes(const pd_precision_record *r);

/* *out: the precision to plan with; why: one line, e.g. "auto: bf16 (this
 * CPU runs bf16; parity recorded: ...)". Errors only for an unreadable
 * weights file. */
int pd_precision_pick(const pd_ensemble *e, pd_precision asked, pd_precision *out, char *why,
                      size_t len, pd_error *err);

#endif
