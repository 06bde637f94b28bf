/* pd_image_internal: what the decoders of input/ share (pd_image.c holds
 * PNG, JPEG and the entry points; pd_image_tiff.c holds TIFF). Not for use
 * outside input/. */
#ifndef PD_IMAGE_INTERNAL_H
#define PD_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pd_image.h"

/* PD_ELIMIT, naming fmt and the size, when w x h is empty or beyond lim. */
int pd_image_check_dims(const char *fmt, unsigned long w, unsigned long h,
                        const pd_image_limits *lim, pd_error *err);

/* w * h * bytes_per_pixel bytes, or NULL on overflow or no memory. */
uint8_t *pd_image_alloc_pixels(size_t w, size_t h, size_t bytes_per_pixel);

/* TIFF (pd_image_tiff.c): the bytes start with a TIFF header. */
int pd_image_decode_tiff(const uint8_t *data, size_t len, const pd_image_limits *lim,
                         pd_gray_image *out, pd_error *err);

#endif
