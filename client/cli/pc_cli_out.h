/* pc_cli_out: the rows `classify` writes, one per classified image, in the
 * chosen format:
 *  - table: `PATH  LABEL P  LABEL P ...` (top k, probabilities to 4 places);
 *  - csv / tsv: a header row, then `path,label,probability` (k = 1),
 *    `path,label_1,probability_1,...,label_k,probability_k` (k > 1), or with
 *    --probs `path,<label 1>,...,<label N>` in the model's class order;
 *    probabilities with 9 significant digits (they read back exactly); csv
 *    fields quoted as RFC 4180 says (common/pd_csv), tsv ones escaped
 *    (\t \n \r \\);
 *  - json: JSON Lines, one object per image (path, label, probability, top,
 *    and with --probs `probabilities`: label -> probability in class order);
 *    always valid UTF-8: bytes of a name that are not UTF-8 are written as
 *    U+FFFD, and such a path also gets `path_bytes`, the name with those
 *    bytes and '%' as %XX (pc_cli_json_bytes);
 *  - ecotaxa: EcoTaxa's import TSV, written by pc_cli_ecotaxa (see there).
 * When the model has thresholds (models/FORMAT.md "Thresholds"): table rows
 * end with `  unclassified` for a crop below its top class's threshold;
 * csv / tsv get a last column `classification` (the top label, or
 * `unclassified`); json objects get "unclassified" (true/false) and
 * "threshold" (the top class's; 0: none). The scores stay the raw ones.
 * Owns nothing; the caller owns the FILE and the labels. */
#ifndef PC_CLI_OUT_H
#define PC_CLI_OUT_H

#include <stdbool.h>
#include <stdio.h>

#include "pc_cli_ecotaxa.h"
#include "pc_cli_pipe.h"

typedef enum pc_cli_format {
  PC_CLI_FORMAT_TABLE,
  PC_CLI_FORMAT_CSV,
  PC_CLI_FORMAT_TSV,
  PC_CLI_FORMAT_JSON,
  PC_CLI_FORMAT_ECOTAXA,
} pc_cli_format;

/* "table", "csv", "tsv", "json" or "ecotaxa". */
int pc_cli_format_parse(const char *s, pc_cli_format *out, pc_cli_error *err);

typedef struct pc_cli_out {
  FILE *f;
  pc_cli_format format;
  bool probs;      /* rows carry the full distribution */
  unsigned top_k;  /* columns of top classes (>= 1) */
  size_t n_labels; /* the model's classes (needed with probs) */
  const char *const *labels;
  pc_cli_ecotaxa *eco; /* the ecotaxa writer (format ecotaxa) */
  bool thresholds;     /* the model has thresholds: the unclassified column */
} pc_cli_out;

/* One tsv field: tab, line breaks and backslash written as \t \n \r \\. */
void pc_cli_out_tsv_field(FILE *f, const char *s);
/* A JSON object's classification members, each after a comma: "label" and
 * "probability" of the best class (when there is one), then "top": the
 * first top_k of top[0..n_top) with label, index and probability. */
void pc_cli_out_json_top(FILE *f, const pc_client_class_score *top, size_t n_top, size_t top_k);

/* The header row(s) of the format (none for table and json). */
void pc_cli_out_header(const pc_cli_out *o);
/* One classified image. Fails (nothing written) when the answer's
 * distribution does not have n_labels entries. */
int pc_cli_out_row(const pc_cli_out *o, const pc_cli_result *r, pc_cli_error *err);

#endif
