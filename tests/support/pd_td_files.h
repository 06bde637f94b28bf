/* pd_td_files: synthetic crops written as PNG files in a temporary folder of
 * their own, and the engine's probabilities for them through the real
 * `planktond-model run` ($PLANKTOND_MODEL_TOOL): what the daemon tests that
 * compare the daemon with the engine on files (repository, ensemble) share.
 * The crops are pd_td_crop's, sized by a rule of the caller's. */
#ifndef PD_TD_FILES_H
#define PD_TD_FILES_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd_td_file_crop {
  int w, h;
  uint8_t *gray, *png;
  size_t png_len;
  char path[512];
} pd_td_file_crop;

typedef struct pd_td_crop_files {
  char dir[64]; /* the folder (mkdtemp) holding crop00.png ... */
  int n;
  pd_td_file_crop *c;
} pd_td_crop_files;

/* n crops: crop i is pd_td_crop(seed + i) of (w0 + (i * 41) % w_span) x
 * (h0 + (i * 29) % h_span) pixels. 0, or -1 after saying why. */
int pd_td_crop_files_make(pd_td_crop_files *f, int n, uint64_t seed, int w0, int w_span, int h0,
                          int h_span);
/* Removes the files and the folder and frees the crops. */
void pd_td_crop_files_free(pd_td_crop_files *f);

/* planktond-model run MODEL_DIR --probs FILE [--tta T] <every crop>:
 * n x n_classes probabilities into probs (tta 0: the model's default).
 * 0, or -1 after saying why. */
int pd_td_tool_probs(const pd_td_crop_files *f, const char *model_dir, int tta, float *probs,
                     int n_classes);

#endif
