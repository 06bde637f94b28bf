/* pd_test_tiff: writes real TIFF files into memory with libtiff's writer,
 * for the decoder's tests, the fuzz seed corpus and the CLI's TIFF crops. */
#ifndef PD_TEST_TIFF_H
#define PD_TEST_TIFF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd_test_tiff {
  uint32_t width, height;
  int bits;                         /* bits per sample: 8 or 16 (others to test refusals) */
  int samples;                      /* samples per pixel: 1 gray, 3 RGB */
  int photometric;                  /* PHOTOMETRIC_* */
  int sample_format;                /* SAMPLEFORMAT_*; 0: not written */
  int compression;                  /* COMPRESSION_*; 0: none */
  uint32_t rows_per_strip;          /* 0: libtiff's default */
  uint32_t tile_width, tile_height; /* both > 0: tiled (multiples of 16) */
  int big_endian;                   /* "MM" instead of the host's order */
  const void *pixels; /* width * height * samples samples of bits/8 bytes, host order */
} pd_test_tiff;

/* The file's bytes (malloc'ed; *len set), or NULL when libtiff refused. */
uint8_t *pd_test_tiff_write(const pd_test_tiff *spec, size_t *len);

#endif
