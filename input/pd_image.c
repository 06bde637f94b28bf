/* pd_image: PNG (libpng, classic API) and JPEG (libjpeg-turbo) decoding to
 * gray8, and the entry points (TIFF is in pd_image_tiff.c). Each decoder keeps everything it
 * allocates in a job struct owned by the caller of the setjmp-ing function, so a longjmp from the
 * library's error handler leaks nothing and reads no clobbered locals. Dimensions are checked
 * against the caller's limits from the header, before any pixel buffer exists; the libraries never
 * print. */
#include "pd_image.h"
#include "pd_image_internal.h"
#include "pd_png_io.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>
#include <setjmp.h>

#include <jpeglib.h>
#include <jerror.h>

#define PD_IMAGE_MAX_FILE_BYTES (64L * 1024 * 1024)
#define PD_JPEG_MAX_SCANS 1000

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const uint8_t jpeg_soi[3] = {0xff, 0xd8, 0xff};
static const uint8_t tiff_le[4] = {'I', 'I', 42, 0}, tiff_be[4] = {'M', 'M', 0, 42};

pd_image_limits pd_image_limits_default(void) {
  pd_image_limits l = {.max_width = 4096, .max_height = 4096, .max_pixels = 16L * 1024 * 1024};
  return l;
}

pd_image_format pd_image_sniff(const uint8_t *data, size_t len) {
  if (!data) return PD_IMAGE_UNKNOWN;
  if (len >= sizeof png_signature && !memcmp(data, png_signature, sizeof png_signature))
    return PD_IMAGE_PNG;
  if (len >= sizeof jpeg_soi && !memcmp(data, jpeg_soi, sizeof jpeg_soi)) return PD_IMAGE_JPEG;
  if (len >= sizeof tiff_le &&
      (!memcmp(data, tiff_le, sizeof tiff_le) || !memcmp(data, tiff_be, sizeof tiff_be)))
    return PD_IMAGE_TIFF;
  return PD_IMAGE_UNKNOWN;
}

void pd_gray_image_free(pd_gray_image *img) {
  if (!img) return;
  free(img->pixels);
  img->pixels = NULL;
  img->width = img->height = 0;
}

/* Zero size, then each side, then the pixel count (the product cannot overflow
 * once both sides are within int limits). */
int pd_image_check_dims(const char *fmt, unsigned long w, unsigned long h,
                        const pd_image_limits *lim, pd_error *err) {
  if (w == 0 || h == 0)
    return pd_error_set(err, PD_ELIMIT, "%s %lux%lu has zero width or height", fmt, w, h);
  if ((long long)w > (long long)lim->max_width || (long long)h > (long long)lim->max_height)
    return pd_error_set(err, PD_ELIMIT, "%s %lux%lu exceeds the limit of %dx%d pixels", fmt, w, h,
                        lim->max_width, lim->max_height);
  unsigned long long pixels = (unsigned long long)w * h;
  if (lim->max_pixels < 0 || pixels > (unsigned long long)lim->max_pixels)
    return pd_error_set(err, PD_ELIMIT, "%s %lux%lu (%llu pixels) exceeds the limit of %ld pixels",
                        fmt, w, h, pixels, lim->max_pixels);
  return PD_OK;
}

/* w * h bytes, or NULL if that does not fit in size_t or malloc fails. */
uint8_t *pd_image_alloc_pixels(size_t w, size_t h, size_t bytes_per_pixel) {
  if (w == 0 || h == 0 || bytes_per_pixel == 0) return NULL;
  if (w > SIZE_MAX / h || w * h > SIZE_MAX / bytes_per_pixel) return NULL;
  return malloc(w * h * bytes_per_pixel);
}

/* ---- colour reduction (shared by PNG rows) ---- */

/* Luma x 1000 of an 8-bit RGB triple: 299 R + 587 G + 114 B (0..255000). */
static inline unsigned luma1000(const uint8_t *p) {
  return 299u * p[0] + 587u * p[1] + 114u * p[2];
}

/* One row of 1..4 channels (G, GA, RGB, RGBA; 8-bit) to gray8, luma rounded
 * and alpha composited on white with a single rounding. */
static void row_to_gray(const uint8_t *in, int channels, size_t w, uint8_t *out) {
  switch (channels) {
  case 1:
    memcpy(out, in, w);
    break;
  case 2:
    for (size_t x = 0; x < w; x++, in += 2) {
      unsigned a = in[1];
      out[x] = (uint8_t)((in[0] * a + 255u * (255u - a) + 127u) / 255u);
    }
    break;
  case 3:
    for (size_t x = 0; x < w; x++, in += 3)
      out[x] = (uint8_t)((luma1000(in) + 500u) / 1000u);
    break;
  default:
    for (size_t x = 0; x < w; x++, in += 4) {
      unsigned a = in[3];
      out[x] = (uint8_t)((luma1000(in) * a + 255000u * (255u - a) + 127500u) / 255000u);
    }
    break;
  }
}

/* ---- PNG ---- */

typedef struct png_job {
  pd_png_reader r;
  uint8_t *rowbuf; /* one row, or the whole image when interlaced */
  png_bytep *rows;
  uint8_t *pixels;
  png_uint_32 width, height;
} png_job;

/* Reads IHDR's size straight from the bytes so an oversized or empty image is
 * refused before libpng runs at all; malformed headers are left to libpng. */
static int png_precheck(const uint8_t *d, size_t len, const pd_image_limits *lim, pd_error *err) {
  if (len < 24 || memcmp(d + 12, "IHDR", 4) != 0) return PD_OK;
  return pd_image_check_dims("PNG", pd_png_be32(d + 16), pd_png_be32(d + 20), lim, err);
}

/* After png_read_info: expand everything to 8-bit G/GA/RGB/RGBA. */
static int png_setup_transforms(png_job *job, int *channels) {
  png_structp png = job->r.png;
  int depth, ctype, interlace;
  png_get_IHDR(png, job->r.info, &job->width, &job->height, &depth, &ctype, &interlace, NULL, NULL);
  int rc = pd_image_check_dims("PNG", job->width, job->height, job->r.limits, job->r.err);
  if (rc) return rc;
  png_set_expand(png); /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
  if (depth == 16) png_set_scale_16(png);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, job->r.info);
  *channels = png_get_channels(png, job->r.info);
  size_t rowbytes = png_get_rowbytes(png, job->r.info);
  if (png_get_bit_depth(png, job->r.info) != 8 || *channels < 1 || *channels > 4 ||
      rowbytes != (size_t)job->width * (size_t)*channels)
    return pd_error_set(job->r.err, PD_EINTERNAL,
                        "PNG: unexpected layout after transforms (%d channels, %zu bytes/row)",
                        *channels, rowbytes);
  return passes;
}

static int png_read_pixels(png_job *job, int channels, int passes) {
  size_t w = job->width, h = job->height, ch = (size_t)channels;
  job->pixels = pd_image_alloc_pixels(w, h, 1);
  if (!job->pixels) return pd_error_set(job->r.err, PD_ENOMEM, "PNG: no memory for %zux%zu", w, h);
  if (passes <= 1) {
    job->rowbuf = pd_image_alloc_pixels(w, 1, ch);
    if (!job->rowbuf) return pd_error_set(job->r.err, PD_ENOMEM, "PNG: no memory for a row");
    for (size_t y = 0; y < h; y++) {
      png_read_row(job->r.png, job->rowbuf, NULL);
      row_to_gray(job->rowbuf, channels, w, job->pixels + y * w);
    }
    return PD_OK;
  }
  job->rowbuf = pd_image_alloc_pixels(w, h, ch);
  job->rows = job->rowbuf ? malloc(h * sizeof *job->rows) : NULL;
  if (!job->rows)
    return pd_error_set(job->r.err, PD_ENOMEM, "PNG: no memory for interlaced %zux%zu", w, h);
  for (size_t y = 0; y < h; y++)
    job->rows[y] = job->rowbuf + y * w * ch;
  png_read_image(job->r.png, job->rows);
  for (size_t y = 0; y < h; y++)
    row_to_gray(job->rows[y], channels, w, job->pixels + y * w);
  return PD_OK;
}

/* The only function that calls setjmp; all state lives in *job. */
static int png_decode_job(png_job *job) {
  if (setjmp(png_jmpbuf(job->r.png))) return job->r.err->code ? job->r.err->code : PD_EFORMAT;
  pd_png_reader_start(&job->r);
  png_read_info(job->r.png, job->r.info);
  int channels = 0;
  int passes = png_setup_transforms(job, &channels);
  if (passes < 0) return passes;
  int rc = png_read_pixels(job, channels, passes);
  if (rc) return rc;
  png_read_end(job->r.png, NULL);
  return PD_OK;
}

static int decode_png(const uint8_t *data, size_t len, const pd_image_limits *lim,
                      pd_gray_image *out, pd_error *err) {
  int rc = png_precheck(data, len, lim, err);
  if (rc) return rc;
  png_job job = {0};
  rc = pd_png_reader_open(&job.r, data, len, lim, err);
  if (!rc) rc = png_decode_job(&job);
  pd_png_reader_close(&job.r);
  free(job.rows);
  free(job.rowbuf);
  if (rc) {
    free(job.pixels);
    return rc;
  }
  out->width = (int)job.width;
  out->height = (int)job.height;
  out->pixels = job.pixels;
  return PD_OK;
}

/* ---- JPEG ---- */

typedef struct jpeg_job {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  const pd_image_limits *limits;
  pd_error *err;
  uint8_t *pixels;
} jpeg_job;

static int jpeg_error_code(int msg_code) {
  switch (msg_code) {
  case JERR_EMPTY_IMAGE:
  case JERR_IMAGE_TOO_BIG:
    return PD_ELIMIT;
  case JERR_BAD_PRECISION:
  case JERR_CONVERSION_NOTIMPL:
    return PD_EUNSUPP;
  case JERR_OUT_OF_MEMORY:
    return PD_ENOMEM;
  default:
    return PD_EFORMAT;
  }
}

static _Noreturn void jpeg_fail(j_common_ptr c) {
  jpeg_job *job = c->client_data;
  j_decompress_ptr d = &job->cinfo;
  if (c->err->msg_code == JERR_EMPTY_IMAGE && (d->image_width == 0 || d->image_height == 0)) {
    pd_image_check_dims("JPEG", d->image_width, d->image_height, job->limits, job->err);
  } else {
    char buf[JMSG_LENGTH_MAX];
    c->err->format_message(c, buf);
    pd_error_set(job->err, jpeg_error_code(c->err->msg_code), "JPEG: %s", buf);
  }
  longjmp(job->jump, 1);
}

/* Warnings that mean the pixels are wrong (truncation, corrupt entropy data)
 * are errors here; the rest (e.g. extraneous bytes) are ignored silently. */
static void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  c->err->num_warnings++;
  switch (c->err->msg_code) {
  case JWRN_JPEG_EOF:
  case JWRN_HIT_MARKER:
  case JWRN_HUFF_BAD_CODE:
  case JWRN_ARITH_BAD_CODE:
  case JWRN_MUST_RESYNC:
    jpeg_fail(c);
  default:
    break;
  }
}

static void jpeg_on_output(j_common_ptr c) {
  (void)c;
}

/* Bounds the work a progressive file with endless scans can cause. */
static void jpeg_on_progress(j_common_ptr c) {
  jpeg_job *job = c->client_data;
  if (job->cinfo.input_scan_number > PD_JPEG_MAX_SCANS) {
    pd_error_set(job->err, PD_EFORMAT, "JPEG: %d scans exceed the limit of %d",
                 job->cinfo.input_scan_number, PD_JPEG_MAX_SCANS);
    longjmp(job->jump, 1);
  }
}

static const char *jpeg_space_name(J_COLOR_SPACE cs) {
  switch (cs) {
  case JCS_CMYK:
    return "CMYK";
  case JCS_YCCK:
    return "YCCK";
  default:
    return "unknown";
  }
}

static int jpeg_read_pixels(jpeg_job *job) {
  j_decompress_ptr c = &job->cinfo;
  size_t w = c->output_width, h = c->output_height;
  if (w != c->image_width || h != c->image_height || c->output_components != 1)
    return pd_error_set(job->err, PD_EINTERNAL, "JPEG: unexpected output %zux%zux%d", w, h,
                        c->output_components);
  job->pixels = pd_image_alloc_pixels(w, h, 1);
  if (!job->pixels) return pd_error_set(job->err, PD_ENOMEM, "JPEG: no memory for %zux%zu", w, h);
  while (c->output_scanline < c->output_height) {
    JSAMPROW row = job->pixels + (size_t)c->output_scanline * w;
    if (jpeg_read_scanlines(c, &row, 1) != 1)
      return pd_error_set(job->err, PD_EFORMAT, "JPEG: decoder stopped at row %u of %zu",
                          c->output_scanline, h);
  }
  return PD_OK;
}

/* The only function that calls setjmp; all state lives in *job. */
static int jpeg_decode_job(jpeg_job *job, const uint8_t *data, size_t len) {
  j_decompress_ptr c = &job->cinfo;
  if (setjmp(job->jump)) return job->err->code ? job->err->code : PD_EFORMAT;
  jpeg_create_decompress(c);
  c->progress = &job->progress;
  jpeg_mem_src(c, data, (unsigned long)len);
  jpeg_read_header(c, TRUE);
  if (c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK)
    return pd_error_set(job->err, PD_EUNSUPP,
                        "JPEG colour space %s (%d components) is not supported",
                        jpeg_space_name(c->jpeg_color_space), c->num_components);
  int rc = pd_image_check_dims("JPEG", c->image_width, c->image_height, job->limits, job->err);
  if (rc) return rc;
  c->out_color_space = JCS_GRAYSCALE;
  jpeg_start_decompress(c);
  rc = jpeg_read_pixels(job);
  if (rc) return rc;
  jpeg_finish_decompress(c);
  return PD_OK;
}

static int decode_jpeg(const uint8_t *data, size_t len, const pd_image_limits *lim,
                       pd_gray_image *out, pd_error *err) {
  if ((unsigned long long)len > ULONG_MAX)
    return pd_error_set(err, PD_ELIMIT, "JPEG: %zu bytes is too large", len);
  jpeg_job *job = calloc(1, sizeof *job);
  if (!job) return pd_error_set(err, PD_ENOMEM, "JPEG: cannot create the decoder");
  job->limits = lim;
  job->err = err;
  err->code = PD_OK;
  job->cinfo.err = jpeg_std_error(&job->jerr);
  job->jerr.error_exit = jpeg_fail;
  job->jerr.emit_message = jpeg_on_message;
  job->jerr.output_message = jpeg_on_output;
  job->progress.progress_monitor = jpeg_on_progress;
  job->cinfo.client_data = job;
  int rc = jpeg_decode_job(job, data, len);
  jpeg_destroy_decompress(&job->cinfo);
  if (rc) {
    free(job->pixels);
  } else {
    out->width = (int)job->cinfo.image_width;
    out->height = (int)job->cinfo.image_height;
    out->pixels = job->pixels;
  }
  free(job);
  return rc;
}

/* ---- entry points ---- */

static int unknown_format(const uint8_t *data, size_t len, pd_error *err) {
  if (len < sizeof png_signature && !memcmp(data, png_signature, len))
    return pd_error_set(err, PD_EFORMAT, "truncated PNG (%zu bytes)", len);
  if (len < sizeof jpeg_soi && !memcmp(data, jpeg_soi, len))
    return pd_error_set(err, PD_EFORMAT, "truncated JPEG (%zu bytes)", len);
  if (len < sizeof tiff_le && (!memcmp(data, tiff_le, len) || !memcmp(data, tiff_be, len)))
    return pd_error_set(err, PD_EFORMAT, "truncated TIFF (%zu bytes)", len);
  char hex[3 * 8 + 1] = "";
  for (size_t i = 0; i < len && i < 8; i++)
    snprintf(hex + 3 * i, 4, " %02x", data[i]);
  return pd_error_set(err, PD_EUNSUPP,
                      "unknown image format (not PNG, JPEG or TIFF), first bytes:%s", hex);
}

int pd_image_decode(const uint8_t *data, size_t len, const pd_image_limits *limits,
                    pd_gray_image *out, pd_error *err) {
  pd_error local;
  if (!err) err = &local;
  if (!out) return pd_error_set(err, PD_EINVAL, "pd_image_decode: no output image");
  out->width = out->height = 0;
  out->pixels = NULL;
  if (!data && len) return pd_error_set(err, PD_EINVAL, "pd_image_decode: no data");
  if (len == 0) return pd_error_set(err, PD_EFORMAT, "empty image data (0 bytes)");
  pd_image_limits lim = limits ? *limits : pd_image_limits_default();
  switch (pd_image_sniff(data, len)) {
  case PD_IMAGE_PNG:
    return decode_png(data, len, &lim, out, err);
  case PD_IMAGE_JPEG:
    return decode_jpeg(data, len, &lim, out, err);
  case PD_IMAGE_TIFF:
    return pd_image_decode_tiff(data, len, &lim, out, err);
  default:
    return unknown_format(data, len, err);
  }
}

/* Reads the whole stream into *buf (grown as needed), at most
 * PD_IMAGE_MAX_FILE_BYTES. */
static int read_stream(FILE *f, const char *path, size_t hint, uint8_t **buf, size_t *len,
                       pd_error *err) {
  size_t cap = hint ? hint + 1 : (size_t)64 * 1024, n = 0;
  uint8_t *b = malloc(cap);
  for (;;) {
    if (!b) return pd_error_set(err, PD_ENOMEM, "%s: no memory to read %zu bytes", path, cap);
    n += fread(b + n, 1, cap - n, f);
    if (n > (size_t)PD_IMAGE_MAX_FILE_BYTES) {
      free(b);
      return pd_error_set(err, PD_ELIMIT, "%s: file exceeds the limit of %ld bytes", path,
                          PD_IMAGE_MAX_FILE_BYTES);
    }
    if (n < cap) break;
    size_t grown =
        cap > (size_t)PD_IMAGE_MAX_FILE_BYTES / 2 ? (size_t)PD_IMAGE_MAX_FILE_BYTES + 1 : cap * 2;
    uint8_t *nb = realloc(b, grown);
    if (!nb) free(b);
    b = nb;
    cap = grown;
  }
  if (ferror(f)) {
    int e = errno;
    free(b);
    return pd_error_set(err, PD_EIO, "%s: read error: %s", path, strerror(e));
  }
  *buf = b;
  *len = n;
  return PD_OK;
}

static int read_file(const char *path, uint8_t **buf, size_t *len, pd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return pd_error_set(err, PD_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  size_t hint = 0;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    if (st.st_size > PD_IMAGE_MAX_FILE_BYTES) {
      fclose(f);
      return pd_error_set(err, PD_ELIMIT, "%s: file of %lld bytes exceeds the limit of %ld bytes",
                          path, (long long)st.st_size, PD_IMAGE_MAX_FILE_BYTES);
    }
    hint = (size_t)st.st_size;
  }
  int rc = read_stream(f, path, hint, buf, len, err);
  fclose(f);
  return rc;
}

int pd_image_load_file(const char *path, const pd_image_limits *limits, pd_gray_image *out,
                       pd_error *err) {
  pd_error local;
  if (!err) err = &local;
  if (out) {
    out->width = out->height = 0;
    out->pixels = NULL;
  }
  if (!path || !out) return pd_error_set(err, PD_EINVAL, "pd_image_load_file: NULL argument");
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = read_file(path, &data, &len, err);
  if (rc) return rc;
  rc = pd_image_decode(data, len, limits, out, err);
  free(data);
  if (rc) pd_error_prefix(err, "%s", path);
  return rc;
}
