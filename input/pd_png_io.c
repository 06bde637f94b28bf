/* pd_png_io: libpng from memory, shared by the PNG readers (pd_png_io.h). */
#include "pd_png_io.h"

#include <string.h>

#define CHUNK_MALLOC_MAX (8L * 1024 * 1024)

static void on_error(png_structp png, png_const_charp msg) {
  pd_png_reader *r = png_get_error_ptr(png);
  pd_error_set(r->err, PD_EFORMAT, "PNG: %s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void read_mem(png_structp png, png_bytep out, size_t n) {
  pd_png_reader *r = png_get_io_ptr(png);
  if (n > r->len - r->pos) {
    pd_error_set(r->err, PD_EFORMAT, "PNG: truncated (needs %zu bytes at offset %zu of %zu)", n,
                 r->pos, r->len);
    png_longjmp(png, 1);
  }
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

static png_uint_32 clamp_limit(long v) {
  return v < 1 ? 1 : v > 0x7fffffffL ? 0x7fffffffu : (png_uint_32)v;
}

int pd_png_reader_open(pd_png_reader *r, const uint8_t *data, size_t len,
                       const pd_image_limits *limits, pd_error *err) {
  *r = (pd_png_reader){.data = data, .len = len, .limits = limits, .err = err};
  err->code = PD_OK;
  r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, on_error, on_warning);
  r->info = r->png ? png_create_info_struct(r->png) : NULL;
  if (!r->info) return pd_error_set(err, PD_ENOMEM, "PNG: cannot create the decoder");
  return PD_OK;
}

void pd_png_reader_start(pd_png_reader *r) {
  png_set_read_fn(r->png, r, read_mem);
  png_set_user_limits(r->png, clamp_limit(r->limits->max_width),
                      clamp_limit(r->limits->max_height));
  png_set_chunk_malloc_max(r->png, CHUNK_MALLOC_MAX);
  png_set_keep_unknown_chunks(r->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
}

void pd_png_reader_close(pd_png_reader *r) {
  png_destroy_read_struct(&r->png, &r->info, NULL);
}

uint32_t pd_png_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
