/* make_tiff_corpus DIR: writes the tiff target's seeds into DIR, tiny real
 * files from libtiff's writer (tests/support/pd_test_tiff.c): 8- and 16-bit gray in
 * both byte orders, MinIsWhite, several strips, tiles, each compression
 * this libtiff writes, and the refused kinds (RGB, palette, float, two
 * samples). Deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "pd_test_tiff.h"

static int put(const char *dir, const char *name, const pd_test_tiff *sp) {
  size_t len = 0;
  uint8_t *t = pd_test_tiff_write(sp, &len);
  if (!t) {
    fprintf(stderr, "make_tiff_corpus: libtiff could not write %s\n", name);
    return 1;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.tif", dir, name);
  FILE *f = fopen(path, "wb");
  int bad = !f || fwrite(t, 1, len, f) != len;
  if (f && fclose(f) != 0) bad = 1;
  free(t);
  if (bad) fprintf(stderr, "make_tiff_corpus: cannot write %s\n", path);
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_tiff_corpus DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  uint8_t px[24 * 20 * 4];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (uint8_t)(i * 29 + (i >> 5));
  const pd_test_tiff gray = {.width = 24,
                             .height = 20,
                             .bits = 8,
                             .samples = 1,
                             .photometric = PHOTOMETRIC_MINISBLACK,
                             .rows_per_strip = 6,
                             .pixels = px};
  int bad = 0;
  pd_test_tiff s = gray;
  bad |= put(dir, "gray8_strips", &s);
  s.big_endian = 1;
  bad |= put(dir, "gray8_be", &s);
  s = gray;
  s.bits = 16;
  s.width = 12; /* the same bytes as 16-bit samples */
  bad |= put(dir, "gray16", &s);
  s.big_endian = 1;
  bad |= put(dir, "gray16_be", &s);
  s = gray;
  s.photometric = PHOTOMETRIC_MINISWHITE;
  bad |= put(dir, "gray8_miniswhite", &s);
  s = gray;
  s.tile_width = s.tile_height = 16;
  bad |= put(dir, "gray8_tiles", &s);
  s.bits = 16;
  s.width = 12;
  bad |= put(dir, "gray16_tiles", &s);
  static const struct {
    int codec;
    const char *name;
  } codecs[] = {{COMPRESSION_LZW, "gray8_lzw"},
                {COMPRESSION_ADOBE_DEFLATE, "gray8_deflate"},
                {COMPRESSION_PACKBITS, "gray8_packbits"}};
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
    if (!TIFFIsCODECConfigured((uint16_t)codecs[i].codec)) continue;
    s = gray;
    s.compression = codecs[i].codec;
    bad |= put(dir, codecs[i].name, &s);
  }
  s = gray;
  s.width = 8;
  s.samples = 3;
  s.photometric = PHOTOMETRIC_RGB;
  bad |= put(dir, "rgb8", &s);
  s = gray;
  s.photometric = PHOTOMETRIC_PALETTE;
  bad |= put(dir, "palette8", &s);
  s = gray;
  s.width = 6;
  s.bits = 32;
  s.sample_format = SAMPLEFORMAT_IEEEFP;
  bad |= put(dir, "float32", &s);
  s = gray;
  s.width = 12;
  s.samples = 2;
  bad |= put(dir, "gray_alpha8", &s);
  return bad;
}
