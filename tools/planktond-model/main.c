/* planktond-model: inspect, run and benchmark a model folder without the
 * daemon.
 *
 *   planktond-model check DIR
 *   planktond-model run DIR [--threads N] [--batch N] [--probs FILE] [--tta N]
 *                           [--dump-inputs FILE] [--dump-gray FILE] IMAGE...
 *   planktond-model run DIR --inputs FILE --count N [--probs FILE] ...
 *   planktond-model eval DIR DATA_ROOT [--split FILE [--subset NAME]] [--tta N]
 *                        [--batch N] [--threads N] [--confusion FILE.csv] [--limit N]
 *   planktond-model bench DIR [--batch N] [--threads N] [--iters N] [--warmup N]
 *   planktond-model sgemm [--threads N] [--size N]
 *   planktond-model fit-thresholds DIR DATA_ROOT --target-precision Q [--split FILE
 *                        [--subset NAME]] [--tta N] [--write]
 *
 * File layouts (raw little-endian): inputs are float32, for each branch in
 * model order all images' slots one after another; probs are float32
 * [n][classes]; gray dumps are, per image, int32 width, int32 height and the
 * pixels.
 *
 * DIR may be an ensemble folder (models/FORMAT.md "Ensembles") for check,
 * run with images, and eval. --tta N: transforms per image (1 = none; the
 * default is the model's tta.count), averaged (pd_tta.h). `run` with
 * --inputs, --dump-inputs or --dump-gray works on one plain model without
 * TTA (the raw-slot layouts above); without them it goes through
 * pd_servable (identical probabilities at N = 1). eval's last line is
 * machine-readable (models/FORMAT.md "Evaluation"). */
#include <stdio.h>
#include <string.h>

#include "pdm.h"

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    pdm_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return pdm_cmd_check(argc, argv);
  if (!strcmp(argv[1], "run")) return pdm_cmd_run(argc, argv);
  if (!strcmp(argv[1], "eval")) return pdm_cmd_eval(argc, argv);
  if (!strcmp(argv[1], "bench")) return pdm_cmd_bench(argc, argv);
  if (!strcmp(argv[1], "sgemm")) return pdm_cmd_sgemm(argc, argv);
  if (!strcmp(argv[1], "precision-check")) return pdm_cmd_precision_check(argc, argv);
  if (!strcmp(argv[1], "fit-thresholds")) return pdm_cmd_fit_thresholds(argc, argv);
  fprintf(stderr, "planktond-model: unknown command '%s'\n", argv[1]);
  pdm_usage(stderr);
  return 2;
}
