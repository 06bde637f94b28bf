/* Unit tests of the TIFF decoder (input/pd_image_tiff.c) on real files
 * written here with libtiff's writer: 8- and 16-bit gray (both byte
 * orders), MinIsWhite, strips of several rows, tiles, compression; and the
 * refusals, each with its code and a message naming the value: RGB,
 * palette, two samples, float, signed, 1 and 32 bits, a size over the
 * limits (read from the header, before any pixel buffer), truncated files.
 * libtiff's global error handler must never be reached (the decoder's
 * per-handle handlers take every message). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "pd_image.h"
#include "pd_test.h"
#include "pd_test_tiff.h"

static int global_messages; /* libtiff messages that reached the global handlers */

static void count_global(const char *module, const char *fmt, va_list ap) {
  (void)module;
  (void)fmt;
  (void)ap;
  global_messages++;
}

static uint8_t *gray8(int w, int h, unsigned seed) {
  uint8_t *p = malloc((size_t)w * h);
  for (int i = 0; i < w * h; i++)
    p[i] = (uint8_t)((i * 37u + seed * 11u + (unsigned)(i / w) * 5u) & 0xff);
  return p;
}

static uint16_t *gray16(int w, int h) {
  uint16_t *p = malloc((size_t)w * h * 2);
  static const uint16_t corners[] = {0, 65535, 128, 127, 32767, 32768, 257, 65280};
  for (int i = 0; i < w * h; i++)
    p[i] = i < 8 ? corners[i] : (uint16_t)((unsigned)i * 2654435761u >> 16);
  return p;
}

static uint8_t scale16(unsigned v) {
  return (uint8_t)((v * 255u + 32767u) / 65535u);
}

static uint8_t *write_or_die(pd_test_state *st, const pd_test_tiff *sp, size_t *len) {
  uint8_t *t = pd_test_tiff_write(sp, len);
  PD_CHECK(st, t != NULL);
  if (!t) {
    fprintf(stderr, "libtiff could not write the test file\n");
    exit(1);
  }
  return t;
}

/* Decodes and compares every pixel exactly. */
static void check_pixels(pd_test_state *st, const char *what, const uint8_t *t, size_t len, int w,
                         int h, const uint8_t *want) {
  PD_CHECK_INT(st, pd_image_sniff(t, len), PD_IMAGE_TIFF);
  pd_gray_image img;
  pd_error err = {0};
  int rc = pd_image_decode(t, len, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc) {
    fprintf(stderr, "  %s: %s\n", what, err.msg);
    return;
  }
  PD_CHECK_INT(st, img.width, w);
  PD_CHECK_INT(st, img.height, h);
  int bad = 0;
  for (int k = 0; k < w * h && img.width == w && img.height == h; k++)
    if (img.pixels[k] != want[k] && bad++ < 3)
      fprintf(stderr, "  %s: pixel %d = %d, want %d\n", what, k, img.pixels[k], want[k]);
  PD_CHECK_INT(st, bad, 0);
  pd_gray_image_free(&img);
}

static void check_fails(pd_test_state *st, const uint8_t *t, size_t len, const pd_image_limits *lim,
                        int code, const char *n1, const char *n2) {
  pd_gray_image img = {7, 7, (uint8_t *)&img};
  pd_error err = {0};
  int rc = pd_image_decode(t, len, lim, &img, &err);
  PD_CHECK_INT(st, rc, code);
  PD_CHECK_INT(st, err.code, code);
  PD_CHECK(st, img.pixels == NULL && img.width == 0 && img.height == 0);
  printf("refused: %s\n", err.msg);
  if (n1) PD_CHECK_CONTAINS(st, err.msg, n1);
  if (n2) PD_CHECK_CONTAINS(st, err.msg, n2);
  if (rc == PD_OK) pd_gray_image_free(&img);
}

/* The files decoded pixel for pixel: each row one file. 8-bit pixels are
 * gray8(w, h, seed), 16-bit ones gray16(w, h) (expected: scale16 of them);
 * MinIsWhite expects the inverse. A codec libtiff lacks skips the row
 * (`optional`) or writes it uncompressed. */
typedef struct roundtrip {
  const char *what;
  int w, h, bits, photometric, rows_per_strip, tile_w, tile_h, big_endian, compression;
  int sample_format; /* 0: the tag not written */
  unsigned seed;
  bool optional;
} roundtrip;

#define MINBLACK PHOTOMETRIC_MINISBLACK
#define MINWHITE PHOTOMETRIC_MINISWHITE
static const roundtrip k_roundtrips[] = {
    {"gray8 strips of 3 rows", 37, 11, 8, MINBLACK, 3, 0, 0, 0, 0, 0, 1, false},
    {"gray8 big-endian, one strip", 37, 11, 8, MINBLACK, 1000, 0, 0, 1, 0, 0, 1, false},
    {"gray8 compression LZW", 37, 11, 8, MINBLACK, 4, 0, 0, 0, COMPRESSION_LZW, 0, 1, true},
    {"gray8 compression deflate", 37, 11, 8, MINBLACK, 4, 0, 0, 0, COMPRESSION_ADOBE_DEFLATE, 0, 1,
     true},
    {"gray8 compression PackBits", 37, 11, 8, MINBLACK, 4, 0, 0, 0, COMPRESSION_PACKBITS, 0, 1,
     true},
    {"gray16 little-endian", 19, 7, 16, MINBLACK, 2, 0, 0, 0, 0, SAMPLEFORMAT_UINT, 0, false},
    {"gray16 big-endian", 19, 7, 16, MINBLACK, 2, 0, 0, 1, 0, SAMPLEFORMAT_UINT, 0, false},
    {"gray8 MinIsWhite", 23, 9, 8, MINWHITE, 0, 0, 0, 0, 0, 0, 3, false},
    {"gray16 MinIsWhite", 23, 9, 16, MINWHITE, 0, 0, 0, 0, 0, 0, 3, false},
    /* neither side a multiple of the tiles */
    {"gray8 16x16 tiles", 40, 23, 8, MINBLACK, 0, 16, 16, 0, 0, 0, 5, false},
    {"gray16 32x16 tiles", 40, 23, 16, MINBLACK, 0, 32, 16, 0, COMPRESSION_LZW, 0, 5, false},
};

static void test_roundtrips(pd_test_state *st) {
  for (size_t i = 0; i < sizeof k_roundtrips / sizeof k_roundtrips[0]; i++) {
    const roundtrip *r = &k_roundtrips[i];
    int compression = r->compression;
    if (compression && !TIFFIsCODECConfigured((uint16_t)compression)) {
      if (r->optional) continue;
      compression = 0;
    }
    const int n = r->w * r->h;
    uint8_t *p8 = r->bits == 8 ? gray8(r->w, r->h, r->seed) : NULL;
    uint16_t *p16 = r->bits == 16 ? gray16(r->w, r->h) : NULL;
    uint8_t *want = malloc((size_t)n);
    bool white = r->photometric == MINWHITE;
    for (int k = 0; k < n; k++)
      want[k] =
          p8 ? (uint8_t)(white ? 255 - p8[k] : p8[k]) : scale16(white ? 65535u - p16[k] : p16[k]);
    pd_test_tiff sp = {.width = (uint32_t)r->w,
                       .height = (uint32_t)r->h,
                       .bits = r->bits,
                       .samples = 1,
                       .photometric = r->photometric,
                       .sample_format = r->sample_format,
                       .rows_per_strip = (uint32_t)r->rows_per_strip,
                       .tile_width = (uint32_t)r->tile_w,
                       .tile_height = (uint32_t)r->tile_h,
                       .big_endian = r->big_endian,
                       .compression = compression,
                       .pixels = p8 ? (const void *)p8 : (const void *)p16};
    size_t len;
    uint8_t *t = write_or_die(st, &sp, &len);
    if (r->big_endian) PD_CHECK(st, t[0] == 'M' && t[1] == 'M');
    check_pixels(st, r->what, t, len, r->w, r->h, want);
    free(t);
    free(want);
    free(p8);
    free(p16);
  }
}

/* scale16 rounds to the nearest 8-bit value, halves up */
static void test_scale16(pd_test_state *st) {
  uint16_t *px = gray16(8, 1);
  static const int want[] = {0, 255, 0, -1, 127, 128, 1, 254}; /* -1: not checked */
  for (int i = 0; i < 8; i++)
    if (want[i] >= 0) PD_CHECK_INT(st, scale16(px[i]), want[i]);
  free(px);
}

static void test_truncated(pd_test_state *st) {
  const int w = 64, h = 48;
  uint8_t *px = gray8(w, h, 7);
  size_t len;
  pd_test_tiff sp = {.width = w,
                     .height = h,
                     .bits = 8,
                     .samples = 1,
                     .photometric = PHOTOMETRIC_MINISBLACK,
                     .rows_per_strip = 8,
                     .pixels = px};
  uint8_t *t = write_or_die(st, &sp, &len);
  /* libtiff writes the pixels first and the directory last: keep the
   * directory, drop the second half of the pixels by moving it away */
  uint32_t ifd;
  memcpy(&ifd, t + 4, 4); /* little-endian file on a little-endian host */
  PD_CHECK(st, ifd > (uint32_t)(w * h) && ifd < len);
  /* a file cut in the middle of the pixel data, the directory kept: strips
   * past the end */
  size_t dir_len = len - ifd;
  size_t cut = 8 + (size_t)w * h / 2;
  uint8_t *c = malloc(cut + dir_len);
  memcpy(c, t, cut);
  memcpy(c + cut, t + ifd, dir_len);
  uint32_t new_ifd = (uint32_t)cut;
  memcpy(c + 4, &new_ifd, 4);
  /* the directory's own offsets (strip tables) still point at the old
   * places, which now lie past the end or inside the directory */
  check_fails(st, c, cut + dir_len, NULL, PD_EFORMAT, "TIFF", NULL);
  free(c);
  /* cut before the directory */
  check_fails(st, t, len / 2, NULL, PD_EFORMAT, "TIFF header or first directory", NULL);
  check_fails(st, t, 8, NULL, PD_EFORMAT, "TIFF header or first directory", NULL);
  check_fails(st, t, 3, NULL, PD_EFORMAT, "truncated TIFF (3 bytes)", NULL);
  free(t);
  free(px);
}

/* Pixels that lie past the end of the file: a valid directory whose strip
 * offsets point beyond the data. */
static void test_strips_past_end(pd_test_state *st) {
  const int w = 32, h = 32;
  uint8_t *px = gray8(w, h, 9);
  size_t len;
  pd_test_tiff sp = {.width = w,
                     .height = h,
                     .bits = 8,
                     .samples = 1,
                     .photometric = PHOTOMETRIC_MINISBLACK,
                     .rows_per_strip = 32,
                     .pixels = px};
  uint8_t *t = write_or_die(st, &sp, &len);
  uint32_t ifd;
  memcpy(&ifd, t + 4, 4);
  uint16_t n;
  memcpy(&n, t + ifd, 2);
  int patched = 0;
  for (uint16_t i = 0; i < n; i++) {
    uint8_t *e = t + ifd + 2 + (size_t)12 * i;
    uint16_t tag;
    memcpy(&tag, e, 2);
    if (tag == TIFFTAG_STRIPOFFSETS) {
      uint32_t far = (uint32_t)len + 1000;
      memcpy(e + 8, &far, 4); /* one strip: the offset is the value itself */
      patched = 1;
    }
  }
  PD_CHECK(st, patched);
  check_fails(st, t, len, NULL, PD_EFORMAT, "TIFF strip 1 of 1", NULL);
  free(t);
  free(px);
}

/* Kinds of TIFF the decoder refuses, each with what its message names. */
typedef struct refused {
  int bits, samples, photometric, sample_format;
  const char *n1, *n2;
} refused;

static const refused k_refused[] = {
    {8, 3, PHOTOMETRIC_RGB, 0, "photometric interpretation RGB (2)", "MinIsBlack or MinIsWhite"},
    {8, 2, MINBLACK, 0, "TIFF with 2 samples per pixel", NULL},
    {32, 1, MINBLACK, SAMPLEFORMAT_IEEEFP, "TIFF with 32 bits per sample", "8 or 16"},
    {16, 1, MINBLACK, SAMPLEFORMAT_INT, "sample format signed integer (2)", NULL},
    {1, 1, MINBLACK, 0, "TIFF with 1 bits per sample", NULL},
    {8, 1, PHOTOMETRIC_PALETTE, 0, "palette (3)", NULL},
};

static void test_refused_kinds(pd_test_state *st) {
  uint8_t px[8 * 4 * 4];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (uint8_t)(i * 7);
  for (size_t i = 0; i < sizeof k_refused / sizeof k_refused[0]; i++) {
    const refused *r = &k_refused[i];
    pd_test_tiff sp = {.width = 8,
                       .height = 4,
                       .bits = r->bits,
                       .samples = r->samples,
                       .photometric = r->photometric,
                       .sample_format = r->sample_format,
                       .pixels = px};
    size_t len;
    uint8_t *t = write_or_die(st, &sp, &len);
    check_fails(st, t, len, NULL, PD_EUNSUPP, r->n1, r->n2);
    free(t);
  }
}

/* Sets the ImageWidth and ImageLength of a little-endian file's first
 * directory (LONG or SHORT values). */
static int patch_size(uint8_t *t, size_t len, uint32_t w, uint32_t h) {
  uint32_t ifd;
  memcpy(&ifd, t + 4, 4);
  if (ifd + 2 > len) return 0;
  uint16_t n;
  memcpy(&n, t + ifd, 2);
  int done = 0;
  for (uint16_t i = 0; i < n && ifd + 2 + 12u * (i + 1) <= len; i++) {
    uint8_t *e = t + ifd + 2 + (size_t)12 * i;
    uint16_t tag, type;
    memcpy(&tag, e, 2);
    memcpy(&type, e + 2, 2);
    if (tag != TIFFTAG_IMAGEWIDTH && tag != TIFFTAG_IMAGELENGTH) continue;
    uint32_t v = tag == TIFFTAG_IMAGEWIDTH ? w : h;
    type = 4; /* LONG */
    memcpy(e + 2, &type, 2);
    memcpy(e + 8, &v, 4);
    done++;
  }
  return done == 2;
}

static void test_limits(pd_test_state *st) {
  const int w = 20, h = 5;
  uint8_t *px = gray8(w, h, 11);
  size_t len;
  pd_test_tiff sp = {.width = w,
                     .height = h,
                     .bits = 8,
                     .samples = 1,
                     .photometric = PHOTOMETRIC_MINISBLACK,
                     .pixels = px};
  uint8_t *t = write_or_die(st, &sp, &len);
  pd_image_limits narrow = {10, 100, 1000000};
  check_fails(st, t, len, &narrow, PD_ELIMIT, "TIFF 20x5 exceeds the limit of 10x100 pixels", NULL);
  pd_image_limits few = {100, 100, 99};
  check_fails(st, t, len, &few, PD_ELIMIT, "TIFF 20x5 (100 pixels) exceeds the limit of 99", NULL);
  pd_image_limits exact = {20, 5, 100};
  pd_gray_image img;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_image_decode(t, len, &exact, &img, &err), PD_OK);
  pd_gray_image_free(&img);
  /* A header that declares 60000 x 60000 (3.6 Gpixel) over 100 bytes of
   * pixels: refused from the header, before anything the size of the image
   * is allocated (the fuzz runs' malloc limit of 96 MiB catches a decoder
   * that allocates first). */
  uint8_t *big = malloc(len);
  memcpy(big, t, len);
  PD_CHECK(st, patch_size(big, len, 60000, 60000));
  check_fails(st, big, len, NULL, PD_ELIMIT, "TIFF 60000x60000 exceeds the limit of 4096x4096",
              NULL);
  pd_image_limits wide = {100000, 100000, 16L * 1024 * 1024};
  check_fails(st, big, len, &wide, PD_ELIMIT, "TIFF 60000x60000 (3600000000 pixels)",
              "limit of 16777216 pixels");
  PD_CHECK(st, patch_size(big, len, 4000000000u, 1));
  check_fails(st, big, len, NULL, PD_ELIMIT, "TIFF 4000000000x1 exceeds", NULL);
  free(big);
  free(t);
  free(px);
}

static void test_sniff(pd_test_state *st) {
  static const uint8_t le[] = {'I', 'I', 42, 0, 8, 0, 0, 0};
  static const uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8};
  static const uint8_t no[] = {'I', 'I', 43, 0, 8, 0, 0, 0}; /* BigTIFF: not recognised */
  PD_CHECK_INT(st, pd_image_sniff(le, sizeof le), PD_IMAGE_TIFF);
  PD_CHECK_INT(st, pd_image_sniff(be, sizeof be), PD_IMAGE_TIFF);
  PD_CHECK_INT(st, pd_image_sniff(le, 3), PD_IMAGE_UNKNOWN);
  PD_CHECK_INT(st, pd_image_sniff(no, sizeof no), PD_IMAGE_UNKNOWN);
  /* a header with no directory behind it */
  check_fails(st, le, sizeof le, NULL, PD_EFORMAT, "TIFF header or first directory", NULL);
  check_fails(st, be, 2, NULL, PD_EFORMAT, "truncated TIFF (2 bytes)", NULL);
  check_fails(st, no, sizeof no, NULL, PD_EUNSUPP, "not PNG, JPEG or TIFF", NULL);
}

int main(void) {
  pd_test_state st = {0};
  TIFFSetErrorHandler(count_global);
  TIFFSetWarningHandler(count_global);
  test_roundtrips(&st);
  test_scale16(&st);
  test_truncated(&st);
  test_strips_past_end(&st);
  test_refused_kinds(&st);
  test_limits(&st);
  test_sniff(&st);
  /* every message above came from the decoder's per-handle handlers (the
   * writer's own messages would count too: it wrote everything cleanly) */
  PD_CHECK_INT(&st, global_messages, 0);
  return pd_test_finish(&st, "image_tiff");
}
