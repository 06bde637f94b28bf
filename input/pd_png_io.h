/* pd_png_io: what the 8-bit (pd_image.c) and 16-bit (pd_image16.c) PNG
 * readers share: libpng's read and info structs reading from memory, its
 * error and warning callbacks (an error is recorded in the reader's
 * pd_error and longjmps), the size limits, and the big-endian peek at
 * IHDR. Not for use outside input/. */
#ifndef PD_PNG_IO_H
#define PD_PNG_IO_H

#include <png.h>
#include <stddef.h>
#include <stdint.h>

#include "pd_image.h"

typedef struct pd_png_reader {
  const uint8_t *data;
  size_t len, pos;
  const pd_image_limits *limits;
  pd_error *err;
  png_structp png;
  png_infop info;
} pd_png_reader;

/* Creates the read and info structs over data[0..len); PD_ENOMEM (in err)
 * if libpng cannot. r->png and r->info may be set on failure: close anyway. */
int pd_png_reader_open(pd_png_reader *r, const uint8_t *data, size_t len,
                       const pd_image_limits *limits, pd_error *err);

/* Call right after setjmp(png_jmpbuf(r->png)) returned 0: the memory
 * source, the width/height limits, an 8 MiB chunk allocation bound, and
 * every ancillary chunk but tRNS skipped unread (for a known chunk libpng only
 * warns when its length passes the bound, then allocates that length). */
void pd_png_reader_start(pd_png_reader *r);

void pd_png_reader_close(pd_png_reader *r);

uint32_t pd_png_be32(const uint8_t *p);

#endif
