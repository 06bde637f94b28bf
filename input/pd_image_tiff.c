/* pd_image_tiff: TIFF (libtiff) decoding to gray8, from the bytes in memory
 * (TIFFClientOpenExt over read/seek/size procedures; no file, no mapping).
 *
 * Accepted: the first image (directory) of the file, one sample per pixel,
 * 8 or 16 bits, unsigned integers, MinIsBlack or MinIsWhite (inverted, so 0
 * is always black), in strips or tiles, with any compression this libtiff
 * has a codec for. 16-bit samples are scaled to 8 bits by v * 255 / 65535,
 * rounded (as libpng scales 16-bit PNG), not stretched to the image's own
 * maximum: the same pixels give the same answer in every format, and an
 * image's brightness does not depend on its brightest pixel. Orientation
 * tags are ignored (rows are taken top to bottom as stored). Everything
 * else (RGB, palette, floats, signed, several samples, 1/4/12/32 bits) is
 * refused with a message naming the value.
 *
 * The size is checked against the caller's limits once the directory is
 * read, before any pixel or strip buffer exists. libtiff's messages go to
 * per-handle handlers (TIFFOpenOptions, libtiff >= 4.5) that keep the first
 * error for the caller's pd_error: nothing global is changed, nothing is
 * printed. Any error libtiff reports fails the decode, even where libtiff
 * itself would go on (a strip table it cannot read makes it return zeros). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "pd_image16.h"
#include "pd_image_internal.h"

/* The most libtiff may allocate at once (strip buffers, tag arrays): a
 * 4096 x 4096 16-bit strip is 32 MiB. */
#define PD_TIFF_MAX_SINGLE_ALLOC ((tmsize_t)64 * 1024 * 1024)
/* Tiles may be larger than a small image (a 256 x 256 tile of a 100 x 80
 * crop); a tile's pixels are bounded by the larger of this and the limit. */
#define PD_TIFF_MIN_TILE_PIXELS (1024L * 1024)

typedef struct tiff_job {
  const uint8_t *data;
  size_t len, pos;
  pd_error *err;
  char msg[200]; /* libtiff's first error ("" if none) */
  uint8_t *buf;  /* one strip or tile */
  uint8_t *pixels;
  bool keep16; /* 16-bit samples kept at full depth (pd_image_decode_tiff16) */
} tiff_job;

/* ---- I/O over the bytes ---- */

static tmsize_t tiff_read(thandle_t h, void *out, tmsize_t n) {
  tiff_job *job = h;
  if (n <= 0) return 0;
  size_t left = job->pos < job->len ? job->len - job->pos : 0;
  size_t take = (size_t)n < left ? (size_t)n : left;
  if (take) memcpy(out, job->data + job->pos, take);
  job->pos += take;
  return (tmsize_t)take;
}

static tmsize_t tiff_write(thandle_t h, void *in, tmsize_t n) {
  (void)h;
  (void)in;
  (void)n;
  return -1;
}

static toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
  tiff_job *job = h;
  uint64_t base = whence == SEEK_CUR ? job->pos : whence == SEEK_END ? job->len : 0;
  if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
  /* off is unsigned; SEEK_CUR/END with a "negative" offset wraps around */
  uint64_t to = base + off;
  if (to > (uint64_t)SIZE_MAX) return (toff_t)-1;
  job->pos = (size_t)to;
  return to;
}

static int tiff_close(thandle_t h) {
  (void)h;
  return 0;
}

static toff_t tiff_size(thandle_t h) {
  tiff_job *job = h;
  return job->len;
}

static int tiff_map(thandle_t h, void **base, toff_t *size) {
  (void)h;
  (void)base;
  (void)size;
  return 0; /* not mapped: every read goes through tiff_read */
}

static void tiff_unmap(thandle_t h, void *base, toff_t size) {
  (void)h;
  (void)base;
  (void)size;
}

/* ---- messages ---- */

static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif;
  (void)module; /* the function's name: ours says what was being read */
  tiff_job *job = user;
  if (!job->msg[0]) vsnprintf(job->msg, sizeof job->msg, fmt, ap);
  return 1; /* handled: libtiff's global handlers are not called */
}

static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif;
  (void)user;
  (void)module;
  (void)fmt;
  (void)ap;
  return 1;
}

/* A failure of a libtiff call: its own message when it gave one. */
static int tiff_fail(tiff_job *job, const char *what) {
  return pd_error_set(job->err, PD_EFORMAT, "TIFF %s: %s", what,
                      job->msg[0] ? job->msg : "unreadable");
}

/* ---- the kinds accepted ---- */

static const char *photometric_name(unsigned v) {
  switch (v) {
  case PHOTOMETRIC_MINISWHITE:
    return "MinIsWhite";
  case PHOTOMETRIC_MINISBLACK:
    return "MinIsBlack";
  case PHOTOMETRIC_RGB:
    return "RGB";
  case PHOTOMETRIC_PALETTE:
    return "palette";
  case PHOTOMETRIC_MASK:
    return "transparency mask";
  case PHOTOMETRIC_SEPARATED:
    return "separated (CMYK)";
  case PHOTOMETRIC_YCBCR:
    return "YCbCr";
  case PHOTOMETRIC_CIELAB:
  case PHOTOMETRIC_ICCLAB:
  case PHOTOMETRIC_ITULAB:
    return "L*a*b*";
  default:
    return "other";
  }
}

static const char *sample_format_name(unsigned v) {
  switch (v) {
  case SAMPLEFORMAT_UINT:
    return "unsigned integer";
  case SAMPLEFORMAT_INT:
    return "signed integer";
  case SAMPLEFORMAT_IEEEFP:
    return "IEEE floating point";
  case SAMPLEFORMAT_VOID:
    return "untyped";
  default:
    return "complex or other";
  }
}

typedef struct tiff_layout {
  uint32_t width, height;
  int bytes; /* per sample: 1 or 2 */
  bool invert;
} tiff_layout;

static int tiff_check_kind(TIFF *tif, const pd_image_limits *lim, tiff_layout *lay, pd_error *err) {
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, photo = PHOTOMETRIC_MINISBLACK;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
    return pd_error_set(err, PD_EFORMAT, "TIFF: no ImageWidth or ImageLength tag");
  int rc = pd_image_check_dims("TIFF", w, h, lim, err);
  if (rc) return rc;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo)) photo = PHOTOMETRIC_MINISBLACK;
  if (photo != PHOTOMETRIC_MINISBLACK && photo != PHOTOMETRIC_MINISWHITE)
    return pd_error_set(err, PD_EUNSUPP,
                        "TIFF photometric interpretation %s (%u) is not supported "
                        "(gray only: MinIsBlack or MinIsWhite)",
                        photometric_name(photo), photo);
  if (spp != 1)
    return pd_error_set(err, PD_EUNSUPP,
                        "TIFF with %u samples per pixel is not supported (gray only: 1 sample)",
                        spp);
  if (bps != 8 && bps != 16)
    return pd_error_set(err, PD_EUNSUPP,
                        "TIFF with %u bits per sample is not supported (8 or 16 only)", bps);
  if (fmt != SAMPLEFORMAT_UINT)
    return pd_error_set(err, PD_EUNSUPP,
                        "TIFF sample format %s (%u) is not supported (unsigned integers only)",
                        sample_format_name(fmt), fmt);
  lay->width = w;
  lay->height = h;
  lay->bytes = bps / 8;
  lay->invert = photo == PHOTOMETRIC_MINISWHITE;
  return PD_OK;
}

/* ---- pixels ---- */

/* n samples of one row (native byte order: libtiff swaps) to gray8, or
 * with keep16 to gray16 in host order (out then holds 2 bytes a sample). */
static void samples_to_gray(const uint8_t *in, const tiff_layout *lay, size_t n, uint8_t *out,
                            bool keep16) {
  if (keep16) {
    for (size_t i = 0; i < n; i++) {
      uint16_t v;
      memcpy(&v, in + 2 * i, 2);
      if (lay->invert) v = (uint16_t)(65535u - v);
      memcpy(out + 2 * i, &v, 2);
    }
    return;
  }
  if (lay->bytes == 1) {
    for (size_t i = 0; i < n; i++)
      out[i] = lay->invert ? (uint8_t)(255u - in[i]) : in[i];
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t v;
    memcpy(&v, in + 2 * i, 2);
    if (lay->invert) v = (uint16_t)(65535u - v);
    out[i] = (uint8_t)(((uint32_t)v * 255u + 32767u) / 65535u);
  }
}

static size_t out_bytes(const tiff_job *job) {
  return job->keep16 ? 2 : 1;
}

static int tiff_read_strips(TIFF *tif, tiff_job *job, const tiff_layout *lay) {
  const size_t w = lay->width, h = lay->height, row_bytes = w * (size_t)lay->bytes;
  uint32_t rps = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
  if (rps == 0 || rps > h) rps = h > 0 ? (uint32_t)h : 1; /* h > 0: checked */
  const uint32_t strips = TIFFNumberOfStrips(tif);
  const size_t need = ((size_t)h + rps - 1) / rps;
  if (strips < need)
    return pd_error_set(job->err, PD_EFORMAT, "TIFF: %u strips for %zu rows of %u (needs %zu)",
                        strips, h, rps, need);
  job->buf = pd_image_alloc_pixels(row_bytes, rps, 1);
  if (!job->buf)
    return pd_error_set(job->err, PD_ENOMEM, "TIFF: no memory for a strip of %u rows", rps);
  for (size_t s = 0; s < need; s++) {
    const size_t y0 = s * rps, rows = h - y0 < rps ? h - y0 : rps;
    tmsize_t got = TIFFReadEncodedStrip(tif, (uint32_t)s, job->buf, (tmsize_t)(rows * row_bytes));
    if (got < 0 || job->msg[0]) {
      char what[64];
      snprintf(what, sizeof what, "strip %zu of %zu", s + 1, need);
      return tiff_fail(job, what);
    }
    if ((size_t)got < rows * row_bytes)
      return pd_error_set(job->err, PD_EFORMAT,
                          "TIFF: strip %zu of %zu holds %lld bytes, %zu rows need %zu", s + 1, need,
                          (long long)got, rows, rows * row_bytes);
    for (size_t r = 0; r < rows; r++)
      samples_to_gray(job->buf + r * row_bytes, lay, w, job->pixels + (y0 + r) * w * out_bytes(job),
                      job->keep16);
  }
  return PD_OK;
}

static int tiff_read_tiles(TIFF *tif, tiff_job *job, const tiff_layout *lay,
                           const pd_image_limits *lim) {
  uint32_t tw = 0, th = 0;
  if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) ||
      tw == 0 || th == 0)
    return pd_error_set(job->err, PD_EFORMAT, "TIFF: tiled, without a tile size");
  const long long max_tile =
      lim->max_pixels > PD_TIFF_MIN_TILE_PIXELS ? lim->max_pixels : PD_TIFF_MIN_TILE_PIXELS;
  if ((long long)tw * th > max_tile)
    return pd_error_set(job->err, PD_ELIMIT, "TIFF tile %ux%u exceeds the limit of %lld pixels", tw,
                        th, max_tile);
  const size_t w = lay->width, h = lay->height, tile_row = (size_t)tw * (size_t)lay->bytes;
  job->buf = pd_image_alloc_pixels(tile_row, th, 1);
  if (!job->buf)
    return pd_error_set(job->err, PD_ENOMEM, "TIFF: no memory for a %ux%u tile", tw, th);
  for (size_t y0 = 0; y0 < h; y0 += th)
    for (size_t x0 = 0; x0 < w; x0 += tw) {
      uint32_t t = TIFFComputeTile(tif, (uint32_t)x0, (uint32_t)y0, 0, 0);
      tmsize_t got = TIFFReadEncodedTile(tif, t, job->buf, (tmsize_t)(tile_row * th));
      if (got < 0 || job->msg[0]) {
        char what[80];
        snprintf(what, sizeof what, "tile at %zu,%zu", x0, y0);
        return tiff_fail(job, what);
      }
      if ((size_t)got < tile_row * th)
        return pd_error_set(job->err, PD_EFORMAT,
                            "TIFF: tile at %zu,%zu holds %lld bytes, a %ux%u tile needs %zu", x0,
                            y0, (long long)got, tw, th, tile_row * th);
      const size_t cols = w - x0 < tw ? w - x0 : tw, rows = h - y0 < th ? h - y0 : th;
      for (size_t r = 0; r < rows; r++)
        samples_to_gray(job->buf + r * tile_row, lay, cols,
                        job->pixels + ((y0 + r) * w + x0) * out_bytes(job), job->keep16);
    }
  return PD_OK;
}

static int tiff_decode_open(TIFF *tif, tiff_job *job, const pd_image_limits *lim,
                            tiff_layout *lay) {
  if (job->msg[0]) return tiff_fail(job, "first directory");
  int rc = tiff_check_kind(tif, lim, lay, job->err);
  if (rc) return rc;
  if (job->keep16 && lay->bytes != 2) return PD_EUNSUPP; /* 8-bit: pd_image_decode's */
  job->pixels = pd_image_alloc_pixels(lay->width, lay->height, out_bytes(job));
  if (!job->pixels)
    return pd_error_set(job->err, PD_ENOMEM, "TIFF: no memory for %ux%u", lay->width, lay->height);
  return TIFFIsTiled(tif) ? tiff_read_tiles(tif, job, lay, lim) : tiff_read_strips(tif, job, lay);
}

/* The one decode: *pixels (malloc'ed) of lay's size, gray8 or, with keep16,
 * gray16. */
static int decode(const uint8_t *data, size_t len, const pd_image_limits *lim, bool keep16,
                  tiff_layout *out_lay, uint8_t **pixels, pd_error *err) {
  tiff_job job = {.data = data, .len = len, .err = err, .keep16 = keep16};
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  if (!opts) return pd_error_set(err, PD_ENOMEM, "TIFF: cannot create the decoder");
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, PD_TIFF_MAX_SINGLE_ALLOC);
  TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, &job);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, &job);
  /* r: read; m: no mapping; O: strip/tile offsets read when needed, so a
   * declared count of millions allocates nothing up front */
  TIFF *tif = TIFFClientOpenExt("image", "rmO", &job, tiff_read, tiff_write, tiff_seek, tiff_close,
                                tiff_size, tiff_map, tiff_unmap, opts);
  TIFFOpenOptionsFree(opts);
  int rc;
  tiff_layout lay = {0};
  if (!tif)
    rc = tiff_fail(&job, "header or first directory");
  else
    rc = tiff_decode_open(tif, &job, lim, &lay);
  if (tif) TIFFClose(tif);
  free(job.buf);
  if (rc) {
    free(job.pixels);
    return rc;
  }
  *out_lay = lay;
  *pixels = job.pixels;
  return PD_OK;
}

int pd_image_decode_tiff(const uint8_t *data, size_t len, const pd_image_limits *lim,
                         pd_gray_image *out, pd_error *err) {
  tiff_layout lay = {0};
  uint8_t *pixels = NULL;
  int rc = decode(data, len, lim, false, &lay, &pixels, err);
  if (rc) return rc;
  out->width = (int)lay.width;
  out->height = (int)lay.height;
  out->pixels = pixels;
  return PD_OK;
}

int pd_image_decode_tiff16(const uint8_t *data, size_t len, const pd_image_limits *lim,
                           pd_gray16_image *out, pd_error *err) {
  if (pd_image_sniff(data, len) != PD_IMAGE_TIFF) return PD_EUNSUPP;
  tiff_layout lay = {0};
  uint8_t *pixels = NULL;
  int rc = decode(data, len, lim, true, &lay, &pixels, err);
  if (rc) return rc;
  out->width = (int)lay.width;
  out->height = (int)lay.height;
  out->pixels = (uint16_t *)(void *)pixels;
  return PD_OK;
}
