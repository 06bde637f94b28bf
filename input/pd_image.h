/* pd_image: decode PNG, JPEG and TIFF crops to 8-bit gray. Owns the decoded pixel
 * buffer it returns. Dimensions are checked against the caller's limits
 * from the file's header, before any pixel buffer is allocated. */
#ifndef PD_IMAGE_H
#define PD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"

typedef struct pd_image_limits {
  int max_width;   /* pixels */
  int max_height;  /* pixels */
  long max_pixels; /* width * height */
} pd_image_limits;

/* Defaults: 4096 x 4096, 16 Mpixel. */
pd_image_limits pd_image_limits_default(void);

typedef enum { PD_IMAGE_UNKNOWN = 0, PD_IMAGE_PNG, PD_IMAGE_JPEG, PD_IMAGE_TIFF } pd_image_format;

typedef struct pd_gray_image {
  int width, height;
  uint8_t *pixels; /* width * height bytes, row-major; owned; free with pd_gray_image_free */
} pd_gray_image;

pd_image_format pd_image_sniff(const uint8_t *data, size_t len);

/* Decodes PNG (8/16-bit; gray, gray+alpha, RGB, RGBA, palette; interlaced) or
 * JPEG (gray, YCbCr/RGB, CMYK refused) or TIFF (the first image; 8/16-bit
 * gray, MinIsBlack/MinIsWhite, strips or tiles; 16 bits scaled by 255/65535;
 * colour, palette, float refused: pd_image_tiff.c) to gray8. Colour is
 * reduced with the luma weights 0.299/0.587/0.114; alpha is composited on
 * white (the crops' background). Errors: PD_EUNSUPP (not PNG/JPEG/TIFF, or a
 * kind of those not handled), PD_EFORMAT (corrupt or
 * truncated), PD_ELIMIT (too large, zero size), PD_ENOMEM. */
int pd_image_decode(const uint8_t *data, size_t len, const pd_image_limits *limits,
                    pd_gray_image *out, pd_error *err);

/* Reads a whole file and decodes it; error messages name the path. */
int pd_image_load_file(const char *path, const pd_image_limits *limits, pd_gray_image *out,
                       pd_error *err);

void pd_gray_image_free(pd_gray_image *img);

#endif
