/* pd_image16: 16-bit gray PNG and TIFF decoded at full depth, for whole
 * camera frames (a 10-12 bit camera's frame keeps its values; pd_image.h's
 * crop decoder brings every 16-bit image down to 8 bits). The TIFF reader
 * is pd_image_tiff.c's, with its rules (first directory, strips or tiles,
 * MinIsWhite inverted). Owns the pixel buffer it
 * returns. Dimensions are checked against the caller's limits from the
 * header, before any pixel buffer is allocated; libpng's messages never
 * reach stderr (errors come back as pd_error messages). */
#ifndef PD_IMAGE16_H
#define PD_IMAGE16_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"
#include "pd_image.h"

typedef struct pd_gray16_image {
  int width, height;
  uint16_t *pixels; /* width * height samples, host byte order, row-major; owned (free()) */
} pd_gray16_image;

/* A 16-bit gray (or gray + alpha: the alpha is dropped) PNG, interlaced or
 * not. PD_EUNSUPP (nothing allocated, no message needed) when the bytes are
 * a PNG of another depth or colour type, or not a PNG: the caller decodes
 * them with pd_image_decode. PD_EFORMAT (corrupt, truncated), PD_ELIMIT
 * (zero size, over the limits), PD_ENOMEM. */
int pd_image_decode_png16(const uint8_t *data, size_t len, const pd_image_limits *limits,
                          pd_gray16_image *out, pd_error *err);

/* A 16-bit gray TIFF, as pd_image_decode_png16 for PNG: PD_EUNSUPP
 * (nothing allocated) when the bytes are an 8-bit TIFF or not a TIFF;
 * the kinds pd_image_decode refuses (RGB, floats, ...) fail the same way
 * here, with its message. */
int pd_image_decode_tiff16(const uint8_t *data, size_t len, const pd_image_limits *limits,
                           pd_gray16_image *out, pd_error *err);

#endif
