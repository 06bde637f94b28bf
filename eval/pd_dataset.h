/* pd_dataset: the list of labelled image files an evaluation reads. Owns
 * the sample list (paths and labels, copied). Two sources:
 *  - a class-folder tree: ROOT/<label>/<file>.{png,jpg,jpeg,tif,tiff} (any case;
 *    hidden entries skipped), samples sorted by label, then file name;
 *  - a split TSV (train/train.py writes train/splits/ndsb_seed<SEED>.tsv):
 *    a header row naming the columns `path`, `label` and `split` (any order,
 *    other columns ignored), then one row per image; paths are relative to
 *    ROOT unless absolute; rows kept in file order.
 * Reading touches no image. Errors name the file and line. */
#ifndef PD_DATASET_H
#define PD_DATASET_H

#include "pd_error.h"

typedef struct pd_sample {
  char *path; /* as opened: ROOT joined with the relative path */
  char *label;
} pd_sample;

typedef struct pd_dataset {
  int n;
  pd_sample *samples;
} pd_dataset;

/* Errors: ROOT unreadable, or no images in it (PD_EINVAL). */
int pd_dataset_scan_tree(const char *root, pd_dataset *out, pd_error *err);

/* Rows whose split column equals `subset` (NULL or "all": every row).
 * Errors: missing columns, a row with too few fields, no matching rows
 * (the message lists the split values seen). */
int pd_dataset_read_split(const char *root, const char *tsv_path, const char *subset,
                          pd_dataset *out, pd_error *err);

/* Keeps n samples spread evenly over the list (sample floor(i * N / n) for
 * i < n), so a limited run still sees every part of a sorted tree. No-op
 * when n <= 0 or n >= the count. */
void pd_dataset_limit(pd_dataset *d, int n);

void pd_dataset_free(pd_dataset *d);

#endif
