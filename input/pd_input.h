/* pd_input: the one input path, bytes -> decoded gray image -> a model's
 * per-branch input slots with its TTA views. The daemon's decode workers,
 * planktond-model, the ensemble code, the tests and the fuzz targets all go
 * through it. Owns nothing after a call returns (a decoded image it hands
 * out is the caller's); reads only the immutable description, so any
 * thread may call it.
 *
 * Slot layout of one image with n views (branch-major, as the engine's
 * batches are): branch b's n slots of pd_input_branch_len() floats each lie
 * one after another from first[b]; view t is TTA transform t (pd_tta.h;
 * view 0 is the identity, so n = 1 is no TTA). Size-feature branches get
 * the same features in every view (they describe the crop as sent). */
#ifndef PD_INPUT_H
#define PD_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"
#include "pd_image.h"
#include "pd_input_spec.h"
#include "pd_warp.h"

/* A crop as a client sends it. */
typedef struct pd_input_bytes {
  const uint8_t *data;
  size_t len;
  /* PD_IMAGE_UNKNOWN: sniff PNG, JPEG or TIFF; PD_IMAGE_PNG / _JPEG / _TIFF: must be that */
  pd_image_format declared;
  /* raw gray8: width x height bytes, no decoding (both > 0); else 0 */
  int raw_width, raw_height;
} pd_input_bytes;

/* Decodes (or, for raw gray8, borrows) the crop. out->pixels is owned when
 * *owned is set (free with pd_gray_image_free), else it points into in->data.
 * Errors (PD_EINVAL, PD_EUNSUPP, PD_EFORMAT, PD_ELIMIT, PD_ENOMEM) are whole
 * messages: "image: declared PNG but the bytes are JPEG", "image (123 bytes):
 * <what the decoder said>". */
int pd_input_decode(const pd_input_bytes *in, const pd_image_limits *limits, pd_gray_image *out,
                    int *owned, pd_error *err);

/* Floats of one view over all branches. */
size_t pd_input_view_floats(const pd_input_desc *d);

/* Points first[b] into buf (n_views * pd_input_view_floats floats) by the layout above. */
void pd_input_layout(const pd_input_desc *d, float *buf, int n_views, float **first);

/* Fills one view of every branch from a gray crop with transform aug (NULL:
 * identity): slots[b] gets pd_input_branch_len(&d->branches[b]) floats. */
void pd_input_fill_view(const pd_input_desc *d, const uint8_t *px, int w, int h,
                        const pd_warp_aug *aug, float *const *slots);

/* Fills views 0..n_views-1 (TTA transforms of d->tta): view t of branch b
 * at first[b] + t * stride, where stride is view_stride floats, or (0) the
 * branch's own slot length (the layout above). n_views in 1..PD_TTA_MAX
 * (PD_EINVAL otherwise). */
int pd_input_fill(const pd_input_desc *d, const uint8_t *px, int w, int h, int n_views,
                  float *const *first, size_t view_stride, pd_error *err);

/* The whole path for one model: decode + fill + free, into buf laid out as
 * pd_input_layout says. */
int pd_input_prepare(const pd_input_desc *d, const pd_input_bytes *in,
                     const pd_image_limits *limits, int n_views, float *buf, pd_error *err);

#endif
