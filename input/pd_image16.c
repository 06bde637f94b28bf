/* pd_image16: 16-bit gray PNG at full depth (pd_image16.h). */
#include "pd_image16.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "pd_image_internal.h"
#include "pd_png_io.h"

typedef struct png16_job {
  pd_png_reader r;
  uint16_t *pixels;
  png_bytep *rows;
  png_uint_32 width, height;
} png16_job;

/* The only function that calls setjmp; all state lives in *job. */
static int decode_job(png16_job *job) {
  if (setjmp(png_jmpbuf(job->r.png))) return job->r.err->code ? job->r.err->code : PD_EFORMAT;
  pd_png_reader_start(&job->r);
  png_read_info(job->r.png, job->r.info);
  int depth, ctype;
  png_get_IHDR(job->r.png, job->r.info, &job->width, &job->height, &depth, &ctype, NULL, NULL,
               NULL);
  if (depth != 16 || (ctype != PNG_COLOR_TYPE_GRAY && ctype != PNG_COLOR_TYPE_GRAY_ALPHA))
    return PD_EUNSUPP; /* the header said otherwise than IHDR's bytes: not ours */
  int rc = pd_image_check_dims("PNG", job->width, job->height, job->r.limits, job->r.err);
  if (rc) return rc;
  if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(job->r.png);
  const uint16_t one = 1;
  if (*(const uint8_t *)&one == 1) png_set_swap(job->r.png); /* PNG is big endian */
  png_set_interlace_handling(job->r.png);
  png_read_update_info(job->r.png, job->r.info);
  const size_t w = job->width, h = job->height;
  if (png_get_rowbytes(job->r.png, job->r.info) != w * 2)
    return pd_error_set(job->r.err, PD_EINTERNAL, "PNG: unexpected 16-bit layout (%zu bytes/row)",
                        (size_t)png_get_rowbytes(job->r.png, job->r.info));
  job->pixels = (uint16_t *)pd_image_alloc_pixels(w, h, 2);
  job->rows = job->pixels ? malloc(h * sizeof *job->rows) : NULL;
  if (!job->rows) return pd_error_set(job->r.err, PD_ENOMEM, "PNG: no memory for %zux%zu", w, h);
  for (size_t y = 0; y < h; y++)
    job->rows[y] = (png_bytep)(job->pixels + y * w);
  png_read_image(job->r.png, job->rows);
  png_read_end(job->r.png, NULL);
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
  int rc = pd_image_check_dims("PNG", pd_png_be32(data + 16), pd_png_be32(data + 20), limits, err);
  if (rc) return rc;
  png16_job job = {0};
  rc = pd_png_reader_open(&job.r, data, len, limits, err);
  if (!rc) rc = decode_job(&job);
  pd_png_reader_close(&job.r);
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
