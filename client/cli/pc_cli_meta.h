/* pc_cli_meta: the acquisition metadata `classify --metadata FILE` attaches
 * to each crop in EcoTaxa's TSV. FILE is a table, tab-separated when its
 * header holds a tab, else comma-separated (fields may be quoted with ",
 * "" for a quote inside), UTF-8 (a leading BOM is skipped):
 *  - the header names a key column, `path` (or `img_file_name`), and
 *    columns named object_*, sample_*, acq_* or process_* (lower case
 *    letters, digits and '_' after the prefix; EcoTaxa's tables); a
 *    sample_*, acq_* or process_* column needs sample_id, acq_id or
 *    process_id beside it (EcoTaxa requires it); columns classify writes
 *    itself (img_file_name, object_annotation_*, object_width,
 *    object_height, object_score, object_p_*, object_category_*,
 *    object_score_*) are refused, except object_id, which replaces the
 *    derived id;
 *  - an optional type row right after it: [t] (text) or [f] (number) per
 *    column; without one, a column is [f] when every value given is a
 *    number, else [t] (object_date, object_time and *_id are always [t]);
 *  - then one row per key: a path relative to FILE's folder (or absolute)
 *    naming a crop or a folder; a crop takes the row of its own path, else
 *    of its nearest folder that has one (per-sample rows);
 *  - values are checked: numbers in [f] columns, object_lat in -90..90,
 *    object_lon in -180..180, object_date YYYYMMDD, object_time HHMM or
 *    HHMMSS, no tab or line break; every row has the header's cell count;
 *    keys are unique. Any error names FILE:LINE and the column.
 * Owns the table. */
#ifndef PC_CLI_META_H
#define PC_CLI_META_H

#include <stddef.h>

#include "pc_cli.h"
#include "pc_cli_strmap.h"

typedef struct pc_cli_meta {
  char *file;
  size_t n_cols; /* metadata columns, the key column not counted */
  char **names;  /* [n_cols] lower case */
  char *types;   /* [n_cols] 't' or 'f' */
  size_t n_rows;
  char **cells;       /* [n_rows * n_cols] */
  long object_id;     /* the object_id column, or -1 */
  pc_cli_strmap keys; /* normalised absolute path -> row */
} pc_cli_meta;

/* Reads FILE; cwd: the absolute current folder (relative FILE names). */
int pc_cli_meta_load(const char *file, const char *cwd, pc_cli_meta *out, pc_cli_error *err);
/* The row for the crop at abs (normalised absolute): its own or its
 * nearest folder's; -1 when none. */
long pc_cli_meta_find(const pc_cli_meta *m, const char *abs);
/* Cell (row, col). */
const char *pc_cli_meta_cell(const pc_cli_meta *m, long row, size_t col);
void pc_cli_meta_free(pc_cli_meta *m);

#endif
