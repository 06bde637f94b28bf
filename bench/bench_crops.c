#include "bench_crops.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

int bench_crop_make(bench_crop *c, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  memset(c, 0, sizeof *c);
  c->w = 40 + (int)(bench_xorshift(&s) % 160);
  c->h = 40 + (int)(bench_xorshift(&s) % 160);
  c->gray = malloc((size_t)c->w * (size_t)c->h);
  if (!c->gray) return -1;
  double cx = c->w / 2.0, cy = c->h / 2.0, rx = c->w * 0.35, ry = c->h * 0.3;
  for (int y = 0; y < c->h; y++)
    for (int x = 0; x < c->w; x++) {
      double dx = (x - cx) / rx, dy = (y - cy) / ry;
      double r = dx * dx + dy * dy;
      c->gray[(size_t)y * (size_t)c->w + (size_t)x] =
          r < 1 ? (uint8_t)(40 + r * 120 + (double)(bench_xorshift(&s) % 30))
                : (uint8_t)(245 + bench_xorshift(&s) % 11);
    }
  return 0;
}

typedef struct mem {
  uint8_t *buf;
  size_t len, cap;
  int failed;
} mem;

static void png_write(png_structp p, png_bytep d, png_size_t n) {
  mem *m = png_get_io_ptr(p);
  if (m->failed) return;
  if (m->len + n > m->cap) {
    size_t cap = (m->cap + n) * 2;
    uint8_t *grown = realloc(m->buf, cap);
    if (!grown) {
      m->failed = 1;
      return;
    }
    m->buf = grown;
    m->cap = cap;
  }
  memcpy(m->buf + m->len, d, n);
  m->len += n;
}

static void png_flush(png_structp p) {
  (void)p;
}

uint8_t *bench_png_gray8(const uint8_t *gray, int w, int h, size_t *len) {
  mem m = {0};
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  if (!p) return NULL;
  png_infop info = png_create_info_struct(p);
  if (!info || setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    free(m.buf);
    return NULL;
  }
  png_set_write_fn(p, &m, png_write, png_flush);
  png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(p, info);
  for (int y = 0; y < h; y++)
    png_write_row(p, gray + (size_t)y * (size_t)w);
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
  if (m.failed) {
    free(m.buf);
    return NULL;
  }
  *len = m.len;
  return m.buf;
}

int bench_crop_png(bench_crop *c) {
  c->png = bench_png_gray8(c->gray, c->w, c->h, &c->png_len);
  return c->png ? 0 : -1;
}

void bench_crop_free(bench_crop *c) {
  free(c->gray);
  free(c->png);
  memset(c, 0, sizeof *c);
}
