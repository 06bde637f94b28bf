/* pd_image16: 16-bit gray PNG at full depth (pd_image16.h). */
#include "pd_image16.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "pd_image_internal.h"

#define PNG16_CHUNK_MALLOC_MAX (8u << 20)

typedef struct png16_job {
  const uint8_t *data;
  size_t len, pos;
  const pd_image_limits *limits;
  pd_error *err;
  png_structp png;
  png_infop info;
  uint16_t *pixels;
  png_bytep *rows;
  png_uint_32 width, height;
} png16_job;

static void on_error(png_structp png, png_const_charp msg) {
  png16_job *job = png_get_error_ptr(png);
  pd_error_set(job->err, PD_EFORMAT, "PNG: %s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void read_mem(png_structp png, png_bytep out, size_t n) {
  png16_job *job = png_get_io_ptr(png);
  if (n > job->len - job->pos) {
    pd_error_set(job->err, PD_EFORMAT, "PNG: truncated (needs %zu bytes at offset %zu of %zu)", n,
                 job->pos, job->len);
    png_longjmp(png, 1);
  }
  memcpy(out, job->data + job->pos, n);
  job->pos += n;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static png_uint_32 clamp_limit(long v) {
  return v < 1 ? 1 : v > 0x7fffffffL ? 0x7fffffffu : (png_uint_32)v;
}

/* The only function that calls setjmp; all state lives in *job. */
static int decode_job(png16_job *job) {
  if (setjmp(png_jmpbuf(job->png))) return job->err->code ? job->err->code : PD_EFORMAT;
  png_set_read_fn(job->png, job, read_mem);
  png_set_user_limits(job->png, clamp_limit(job->limits->max_width),
                      clamp_limit(job->limits->max_height));
  png_set_chunk_malloc_max(job->png, PNG16_CHUNK_MALLOC_MAX);
  png_set_keep_unknown_chunks(job->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
  png_read_info(job->png, job->info);
  int depth, ctype;
  png_get_IHDR(job->png, job->info, &job->width, &job->height, &depth, &ctype, NULL, NULL, NULL);
  if (depth != 16 || (ctype != PNG_COLOR_TYPE_GRAY && ctype != PNG_COLOR_TYPE_GRAY_ALPHA))
    return PD_EUNSUPP; /* the header said otherwise than IHDR's bytes: not ours */
  int rc = pd_image_check_dims("PNG", job->width, job->height, job->limits, job->err);
  if (rc) return rc;
  if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(job->png);
  const uint16_t one = 1;
  if (*(const uint8_t *)&one == 1) png_set_swap(job->png); /* PNG is big endian */
  png_set_interlace_handling(job->png);
  png_read_update_info(job->png, job->info);
  const size_t w = job->width, h = job->height;
  if (png_get_rowbytes(job->png, job->info) != w * 2)
    return pd_error_set(job->err, PD_EINTERNAL, "PNG: unexpected 16-bit layout (%zu bytes/row)",
                        (size_t)png_get_rowbytes(job->png, job->info));
  job->pixels = (uint16_t *)pd_image_alloc_pixels(w, h, 2);
  job->rows = job->pixels ? malloc(h * sizeof *job->rows) : NULL;
  if (!job->rows) return pd_error_set(job->err, PD_ENOMEM, "PNG: no memory for %zux%zu", w, h);
  for (size_t y = 0; y < h; y++)
    job->rows[y] = (png_bytep)(job->pixels + y * w);
  png_read_image(job->png, job->rows);
  png_read_end(job->png, NULL);
  return PD_OK;
}

int pd_image_decode_png16(const uint8_t *data, size_t len, const pd_image_limits *limits,
                          pd_gray16_image *out, pd_error *err) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  /* IHDR's depth and colour type straight from the bytes: anything but
   * 16-bit gray goes to the 8-bit decoder without libpng running here */
  if (len < 33 || memcmp(data, sig, 8) != 0 || memcmp(data + 12, "IHDR", 4) != 0 ||
      data[24] != 16 || (data[25] != 0 && data[25] != 4))
    return PD_EUNSUPP;
  int rc = pd_image_check_dims("PNG", be32(data + 16), be32(data + 20), limits, err);
  if (rc) return rc;
  png16_job job = {.data = data, .len = len, .limits = limits, .err = err};
  err->code = PD_OK;
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
  job.info = job.png ? png_create_info_struct(job.png) : NULL;
  if (!job.info)
    rc = pd_error_set(err, PD_ENOMEM, "PNG: cannot create the decoder");
  else
    rc = decode_job(&job);
  png_destroy_read_struct(&job.png, &job.info, NULL);
  free(job.rows);
  if (rc) {
    free(job.pixels);
    return rc;
  }
  out->width = (int)job.width;
  out->height = (int)job.height;
  out->pixels = job.pixels;
  return PD_OK;
}
