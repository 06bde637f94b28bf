/* Unit tests of the image decoders: PNGs of every colour type and depth
 * (written here with libpng, interlaced too) decode to exact gray values;
 * JPEGs (written with libjpeg) decode within +-2; every malformed, truncated,
 * oversized and empty input fails with the right code and a message that
 * names the format and the values; files go through pd_image_load_file; and,
 * when $PLANKTON_DATA is there, real NDSB crops decode to sane images. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>

#include "pd_image.h"
#include "pd_test.h"

/* ---- writing PNGs into memory ---- */

typedef struct membuf {
  unsigned char *data;
  size_t len, cap;
} membuf;

static void mb_write(png_structp png, png_bytep d, size_t n) {
  membuf *m = png_get_io_ptr(png);
  if (m->len + n > m->cap) {
    m->cap = (m->len + n) * 2;
    m->data = realloc(m->data, m->cap);
    if (!m->data) abort();
  }
  memcpy(m->data + m->len, d, n);
  m->len += n;
}

static void mb_flush(png_structp png) {
  (void)png;
}

typedef struct png_spec {
  int w, h, color_type, depth;
  bool interlace;
  const unsigned char *rows; /* packed rows exactly as PNG stores them (16-bit big-endian) */
  const png_color *palette;
  int n_palette;
  const png_byte *trns; /* palette alpha */
  int n_trns;
  const png_color_16 *trns_key; /* gray / RGB colour key */
} png_spec;

static unsigned char *write_png(const png_spec *sp, size_t *len) {
  membuf mb = {NULL, 0, 0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    fprintf(stderr, "test: writing a PNG failed\n");
    abort();
  }
  png_set_write_fn(png, &mb, mb_write, mb_flush);
  png_set_IHDR(png, info, (png_uint_32)sp->w, (png_uint_32)sp->h, sp->depth, sp->color_type,
               sp->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (sp->palette) png_set_PLTE(png, info, sp->palette, sp->n_palette);
  if (sp->trns || sp->trns_key) png_set_tRNS(png, info, sp->trns, sp->n_trns, sp->trns_key);
  png_write_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  png_bytep *rows = malloc(sizeof *rows * (size_t)sp->h);
  for (int y = 0; y < sp->h; y++)
    rows[y] = (png_bytep)sp->rows + (size_t)y * rowbytes;
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(rows);
  *len = mb.len;
  return mb.data;
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* Rewrites IHDR's width and height (and its CRC) in a PNG written above. */
static void patch_ihdr(unsigned char *png, uint32_t w, uint32_t h) {
  put_be32(png + 16, w);
  put_be32(png + 20, h);
  put_be32(png + 29, crc32_of(png + 12, 17));
}

static size_t find_bytes(const unsigned char *d, size_t len, const char *needle, size_t n) {
  for (size_t i = 0; i + n <= len; i++)
    if (!memcmp(d + i, needle, n)) return i;
  return 0;
}

/* ---- writing JPEGs into memory ---- */

typedef struct jpeg_spec {
  int w, h, components;
  J_COLOR_SPACE in_space, file_space;
  const unsigned char *pixels;
  int quality;
  bool progressive;
} jpeg_spec;

static unsigned char *write_jpeg(const jpeg_spec *sp, size_t *len) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  unsigned char *buf = NULL;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = (JDIMENSION)sp->w;
  c.image_height = (JDIMENSION)sp->h;
  c.input_components = sp->components;
  c.in_color_space = sp->in_space;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, sp->file_space);
  jpeg_set_quality(&c, sp->quality, TRUE);
  if (sp->progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row =
        (JSAMPROW)sp->pixels + (size_t)c.next_scanline * (size_t)(sp->w * sp->components);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  *len = size;
  return buf;
}

/* Offset of the 0xFF of the first marker `m` (walking the marker segments). */
static size_t jpeg_find_marker(const unsigned char *d, size_t len, int m) {
  size_t p = 2;
  while (p + 4 <= len && d[p] == 0xff) {
    if (d[p + 1] == m) return p;
    if (d[p + 1] == 0xda) break; /* entropy data follows SOS */
    p += 2 + ((size_t)d[p + 2] << 8 | d[p + 3]);
  }
  return 0;
}

/* ---- helpers ---- */

static int decode(const unsigned char *d, size_t len, const pd_image_limits *lim,
                  pd_gray_image *img, pd_error *err) {
  memset(err, 0, sizeof *err);
  return pd_image_decode(d, len, lim, img, err);
}

/* Decodes and compares every pixel exactly (tol 0) or within tol. */
static void check_decode(pd_test_state *st, const char *what, const unsigned char *d, size_t len,
                         int w, int h, const unsigned char *want, int tol) {
  pd_gray_image img;
  pd_error err;
  int rc = decode(d, len, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc) {
    fprintf(stderr, "  %s: %s\n", what, err.msg);
    return;
  }
  PD_CHECK_INT(st, img.width, w);
  PD_CHECK_INT(st, img.height, h);
  int bad = 0, worst = 0;
  for (int k = 0; k < w * h && img.width == w && img.height == h; k++) {
    int d_ = abs((int)img.pixels[k] - (int)want[k]);
    if (d_ > worst) worst = d_;
    if (d_ > tol && bad++ < 3)
      fprintf(stderr, "  %s: pixel %d = %d, want %d\n", what, k, img.pixels[k], want[k]);
  }
  PD_CHECK_INT(st, bad, 0);
  pd_gray_image_free(&img);
  PD_CHECK(st, img.pixels == NULL && img.width == 0);
}

/* Expects failure with `code` and a message holding each of the needles. */
static void check_fails(pd_test_state *st, const unsigned char *d, size_t len,
                        const pd_image_limits *lim, int code, const char *n1, const char *n2) {
  pd_gray_image img = {7, 7, (uint8_t *)&img};
  pd_error err;
  int rc = decode(d, len, lim, &img, &err);
  PD_CHECK_INT(st, rc, code);
  PD_CHECK_INT(st, err.code, code);
  PD_CHECK(st, img.pixels == NULL && img.width == 0 && img.height == 0);
  if (n1) PD_CHECK_CONTAINS(st, err.msg, n1);
  if (n2) PD_CHECK_CONTAINS(st, err.msg, n2);
  if (rc == PD_OK) pd_gray_image_free(&img);
}

static int round_div(long num, long den) {
  return (int)((num + den / 2) / den);
}

static int luma(int r, int g, int b) {
  return round_div(299L * r + 587L * g + 114L * b, 1000);
}

/* Gray v with alpha a over white, rounded once: (v*a + 255*(255-a)) / 255. */
static int over_white(double v, int a) {
  return (int)floor((v * a + 255.0 * (255 - a)) / 255.0 + 0.5);
}

static void put16(unsigned char *p, int v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

/* ---- PNG: exact values ---- */

static void test_png_gray(pd_test_state *st) {
  enum { W = 7, H = 5 };
  unsigned char rows8[W * H], rows16[W * H * 2], want[W * H], want16[W * H];
  static const int offs[] = {0, 100, 127, 129, 200, 256, 5};
  for (int k = 0; k < W * H; k++) {
    rows8[k] = want[k] = (unsigned char)((k * 53 + 11) % 256);
    int base = (k * 37) % 255, v16 = base * 257 + offs[k % 7];
    put16(rows16 + 2 * k, v16);
    want16[k] = (unsigned char)floor(v16 / 257.0 + 0.5); /* round(v * 255 / 65535) */
  }
  png_spec sp = {W, H, PNG_COLOR_TYPE_GRAY, 8, false, rows8, NULL, 0, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "gray8", png, len, W, H, want, 0);
  free(png);
  sp.interlace = true;
  png = write_png(&sp, &len);
  check_decode(st, "gray8 interlaced", png, len, W, H, want, 0);
  free(png);
  sp = (png_spec){W, H, PNG_COLOR_TYPE_GRAY, 16, false, rows16, NULL, 0, NULL, 0, NULL};
  png = write_png(&sp, &len);
  check_decode(st, "gray16", png, len, W, H, want16, 0);
  free(png);
  sp.interlace = true;
  png = write_png(&sp, &len);
  check_decode(st, "gray16 interlaced", png, len, W, H, want16, 0);
  free(png);
}

/* 1, 2 and 4-bit gray: v scaled to 0..255 by 255 / (2^d - 1). */
static void test_png_low_depth(pd_test_state *st) {
  for (int depth = 1; depth <= 4; depth *= 2) {
    enum { W = 9, H = 3 };
    int per = 8 / depth, maxv = (1 << depth) - 1, rowbytes = (W + per - 1) / per;
    unsigned char rows[3 * 9] = {0}, want[W * H];
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int v = (x + 2 * y) % (maxv + 1);
        rows[y * rowbytes + x / per] |= (unsigned char)(v << (8 - depth * (x % per + 1)));
        want[y * W + x] = (unsigned char)(v * 255 / maxv);
      }
    png_spec sp = {W, H, PNG_COLOR_TYPE_GRAY, depth, depth == 2, rows, NULL, 0, NULL, 0, NULL};
    size_t len;
    unsigned char *png = write_png(&sp, &len);
    check_decode(st, "gray low depth", png, len, W, H, want, 0);
    free(png);
  }
}

static void test_png_gray_alpha(pd_test_state *st) {
  enum { N = 8 };
  static const int v[N] = {100, 100, 100, 0, 255, 37, 200, 0};
  static const int a[N] = {0, 255, 128, 128, 17, 254, 1, 255};
  unsigned char rows8[N * 2], rows16[N * 4], want[N];
  for (int k = 0; k < N; k++) {
    rows8[2 * k] = (unsigned char)v[k];
    rows8[2 * k + 1] = (unsigned char)a[k];
    put16(rows16 + 4 * k, v[k] * 257);
    put16(rows16 + 4 * k + 2, a[k] * 257);
    want[k] = (unsigned char)over_white(v[k], a[k]);
  }
  PD_CHECK_INT(st, want[0], 255); /* transparent -> white */
  PD_CHECK_INT(st, want[1], 100);
  PD_CHECK_INT(st, want[2], 177); /* 100*128/255 + 127 = 177.2 */
  png_spec sp = {4, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, rows8, NULL, 0, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "gray+alpha 8", png, len, 4, 2, want, 0);
  free(png);
  sp = (png_spec){4, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 16, true, rows16, NULL, 0, NULL, 0, NULL};
  png = write_png(&sp, &len);
  check_decode(st, "gray+alpha 16 interlaced", png, len, 4, 2, want, 0);
  free(png);
}

static void test_png_rgb(pd_test_state *st) {
  enum { N = 8 };
  static const int rgb[N][3] = {{255, 0, 0},     {0, 255, 0}, {0, 0, 255},    {10, 20, 30},
                                {255, 255, 255}, {0, 0, 0},   {128, 64, 200}, {1, 254, 77}};
  static const int hand[6] = {76, 150, 29, 18, 255, 0}; /* 76.245, 149.685, 29.07, 18.15 */
  unsigned char rows8[N * 3], rows16[N * 6], want[N];
  for (int k = 0; k < N; k++) {
    for (int c = 0; c < 3; c++) {
      rows8[3 * k + c] = (unsigned char)rgb[k][c];
      put16(rows16 + 6 * k + 2 * c, rgb[k][c] * 257);
    }
    want[k] = (unsigned char)luma(rgb[k][0], rgb[k][1], rgb[k][2]);
    if (k < 6) PD_CHECK_INT(st, want[k], hand[k]);
  }
  png_spec sp = {4, 2, PNG_COLOR_TYPE_RGB, 8, false, rows8, NULL, 0, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "rgb8", png, len, 4, 2, want, 0);
  free(png);
  sp = (png_spec){2, 4, PNG_COLOR_TYPE_RGB, 16, false, rows16, NULL, 0, NULL, 0, NULL};
  png = write_png(&sp, &len);
  check_decode(st, "rgb16", png, len, 2, 4, want, 0);
  free(png);
  /* A colour key (tRNS) makes matching pixels transparent, hence white. */
  png_color_16 key = {0, 10, 20, 30, 0};
  sp = (png_spec){4, 2, PNG_COLOR_TYPE_RGB, 8, false, rows8, NULL, 0, NULL, 0, &key};
  png = write_png(&sp, &len);
  unsigned char want_key[N];
  memcpy(want_key, want, N);
  want_key[3] = 255;
  check_decode(st, "rgb8 + tRNS key", png, len, 4, 2, want_key, 0);
  free(png);
}

static void test_png_rgba(pd_test_state *st) {
  enum { N = 8 };
  static const int px[N][4] = {{255, 0, 0, 0}, {255, 0, 0, 255},  {255, 0, 0, 128}, {0, 0, 0, 128},
                               {0, 0, 0, 0},   {10, 20, 30, 255}, {99, 199, 9, 60}, {0, 255, 0, 1}};
  unsigned char rows8[N * 4], rows16[N * 8], want[N];
  for (int k = 0; k < N; k++) {
    for (int c = 0; c < 4; c++) {
      rows8[4 * k + c] = (unsigned char)px[k][c];
      put16(rows16 + 8 * k + 2 * c, px[k][c] * 257);
    }
    double l = 0.299 * px[k][0] + 0.587 * px[k][1] + 0.114 * px[k][2];
    want[k] = (unsigned char)over_white(l, px[k][3]);
  }
  PD_CHECK_INT(st, want[0], 255); /* transparent red -> white */
  PD_CHECK_INT(st, want[1], 76);
  PD_CHECK_INT(st, want[2], 165); /* 76.245*128/255 + 127 = 165.27 */
  PD_CHECK_INT(st, want[3], 127);
  PD_CHECK_INT(st, want[4], 255);
  png_spec sp = {4, 2, PNG_COLOR_TYPE_RGBA, 8, false, rows8, NULL, 0, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "rgba8", png, len, 4, 2, want, 0);
  free(png);
  sp.interlace = true;
  png = write_png(&sp, &len);
  check_decode(st, "rgba8 interlaced", png, len, 4, 2, want, 0);
  free(png);
  sp = (png_spec){8, 1, PNG_COLOR_TYPE_RGBA, 16, false, rows16, NULL, 0, NULL, 0, NULL};
  png = write_png(&sp, &len);
  check_decode(st, "rgba16", png, len, 8, 1, want, 0);
  free(png);
}

static void test_png_palette(pd_test_state *st) {
  static const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  static const png_byte trns[4] = {255, 128, 255, 0};
  /* 2-bit indices, 6x2: row 0 = 0 1 2 3 0 1, row 1 = 3 2 1 0 3 2 */
  static const int idx[12] = {0, 1, 2, 3, 0, 1, 3, 2, 1, 0, 3, 2};
  unsigned char rows2[4] = {0}, rows8[12], want[12], want_t[12];
  static const int gray[4] = {0, 76, 150, 29}, gray_t[4] = {0, 165, 150, 255};
  for (int k = 0; k < 12; k++) {
    int y = k / 6, x = k % 6;
    rows2[y * 2 + x / 4] |= (unsigned char)(idx[k] << (6 - 2 * (x % 4)));
    rows8[k] = (unsigned char)idx[k];
    want[k] = (unsigned char)gray[idx[k]];
    want_t[k] = (unsigned char)gray_t[idx[k]];
  }
  png_spec sp = {6, 2, PNG_COLOR_TYPE_PALETTE, 8, false, rows8, pal, 4, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "palette8", png, len, 6, 2, want, 0);
  free(png);
  sp = (png_spec){6, 2, PNG_COLOR_TYPE_PALETTE, 2, false, rows2, pal, 4, trns, 4, NULL};
  png = write_png(&sp, &len);
  check_decode(st, "palette2 + tRNS", png, len, 6, 2, want_t, 0);
  free(png);
  sp.interlace = true;
  png = write_png(&sp, &len);
  check_decode(st, "palette2 + tRNS interlaced", png, len, 6, 2, want_t, 0);
  free(png);
}

/* A larger interlaced image: every Adam7 pass non-empty, many rows. */
static void test_png_interlaced_large(pd_test_state *st) {
  enum { W = 131, H = 77 };
  unsigned char *rows = malloc(W * H * 3), *want = malloc(W * H);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      unsigned char *p = rows + 3 * (y * W + x);
      p[0] = (unsigned char)(x * 2);
      p[1] = (unsigned char)(y * 3);
      p[2] = (unsigned char)(x ^ y);
      want[y * W + x] = (unsigned char)luma(p[0], p[1], p[2]);
    }
  png_spec sp = {W, H, PNG_COLOR_TYPE_RGB, 8, true, rows, NULL, 0, NULL, 0, NULL};
  size_t len;
  unsigned char *png = write_png(&sp, &len);
  check_decode(st, "rgb8 interlaced 131x77", png, len, W, H, want, 0);
  free(png);
  free(rows);
  free(want);
}

/* ---- PNG: errors ---- */

static unsigned char *small_gray_png(int w, int h, size_t *len) {
  unsigned char *rows = malloc((size_t)(w * h));
  for (int k = 0; k < w * h; k++)
    rows[k] = (unsigned char)(k * 7);
  png_spec sp = {w, h, PNG_COLOR_TYPE_GRAY, 8, false, rows, NULL, 0, NULL, 0, NULL};
  unsigned char *png = write_png(&sp, len);
  free(rows);
  return png;
}

static void test_png_truncated(pd_test_state *st) {
  size_t len;
  unsigned char *png = small_gray_png(12, 9, &len);
  int bad = 0;
  for (size_t cut = 0; cut < len; cut++) {
    pd_gray_image img;
    pd_error err;
    int rc = decode(png, cut, NULL, &img, &err);
    bad += rc != PD_EFORMAT || img.pixels != NULL ||
           !strstr(err.msg, cut ? "PNG" : "empty image data");
  }
  PD_CHECK_INT(st, bad, 0);
  check_fails(st, png, len - 20, NULL, PD_EFORMAT, "PNG: truncated", NULL);
  check_fails(st, png, 5, NULL, PD_EFORMAT, "truncated PNG (5 bytes)", NULL);
  free(png);
}

static void test_png_corrupt(pd_test_state *st) {
  size_t len;
  unsigned char *png = small_gray_png(12, 9, &len);
  size_t idat = find_bytes(png, len, "IDAT", 4);
  PD_CHECK(st, idat > 0);
  unsigned char *bad = malloc(len);
  memcpy(bad, png, len);
  bad[idat + 6] ^= 0x5a; /* compressed data: zlib or the CRC check catches it */
  check_fails(st, bad, len, NULL, PD_EFORMAT, "PNG: IDAT", NULL);
  memcpy(bad, png, len);
  size_t idat_len = (size_t)png[idat - 4] << 24 | (size_t)png[idat - 3] << 16 |
                    (size_t)png[idat - 2] << 8 | png[idat - 1];
  bad[idat + 4 + idat_len] ^= 0x01; /* the IDAT CRC itself */
  check_fails(st, bad, len, NULL, PD_EFORMAT, "PNG: IDAT", "CRC");
  memcpy(bad, png, len);
  bad[18] ^= 1; /* IHDR width, CRC left stale */
  check_fails(st, bad, len, NULL, PD_EFORMAT, "PNG", "CRC");
  /* Every single-byte corruption fails cleanly or decodes to a sane image. */
  int odd = 0;
  for (size_t k = 0; k < len; k++) {
    memcpy(bad, png, len);
    bad[k] ^= 0xa5;
    pd_gray_image img;
    pd_error err;
    int rc = decode(bad, len, NULL, &img, &err);
    if (rc == PD_OK) {
      odd += img.width < 1 || img.height < 1 || !img.pixels;
      pd_gray_image_free(&img);
    } else {
      odd += (rc != PD_EFORMAT && rc != PD_EUNSUPP && rc != PD_ELIMIT) || !err.msg[0];
    }
  }
  PD_CHECK_INT(st, odd, 0);
  free(bad);
  free(png);
}

static void test_png_limits(pd_test_state *st) {
  size_t len;
  unsigned char *png = small_gray_png(1, 1, &len);
  patch_ihdr(png, 60000, 60000);
  check_fails(st, png, len, NULL, PD_ELIMIT,
              "PNG 60000x60000 exceeds the limit of 4096x4096 pixels", NULL);
  pd_image_limits big = {100000, 100000, 16L * 1024 * 1024};
  check_fails(st, png, len, &big, PD_ELIMIT, "60000x60000 (3600000000 pixels)",
              "limit of 16777216 pixels");
  patch_ihdr(png, 0, 4);
  check_fails(st, png, len, NULL, PD_ELIMIT, "PNG 0x4 has zero width or height", NULL);
  patch_ihdr(png, 4, 0);
  check_fails(st, png, len, NULL, PD_ELIMIT, "PNG 4x0", "zero");
  free(png);

  png = small_gray_png(20, 5, &len);
  pd_image_limits narrow = {10, 100, 1000000};
  check_fails(st, png, len, &narrow, PD_ELIMIT, "PNG 20x5 exceeds the limit of 10x100 pixels",
              NULL);
  pd_image_limits low = {100, 4, 1000000};
  check_fails(st, png, len, &low, PD_ELIMIT, "PNG 20x5 exceeds the limit of 100x4 pixels", NULL);
  pd_image_limits few = {100, 100, 99};
  check_fails(st, png, len, &few, PD_ELIMIT, "PNG 20x5 (100 pixels) exceeds the limit of 99", NULL);
  pd_image_limits exact = {20, 5, 100};
  pd_gray_image img;
  pd_error err;
  PD_CHECK_INT(st, decode(png, len, &exact, &img, &err), PD_OK);
  pd_gray_image_free(&img);
  pd_image_limits def = pd_image_limits_default();
  PD_CHECK(st, def.max_width == 4096 && def.max_height == 4096 && def.max_pixels == 16777216L);
  free(png);
}

/* ---- JPEG ---- */

enum { JW = 64, JH = 48 };

static void smooth_image(unsigned char *gray, unsigned char *rgb) {
  for (int y = 0; y < JH; y++)
    for (int x = 0; x < JW; x++) {
      int v = 60 + 2 * x + y;
      gray[y * JW + x] = (unsigned char)v;
      for (int c = 0; c < 3; c++)
        rgb[3 * (y * JW + x) + c] = (unsigned char)v;
    }
}

static unsigned char *gray_jpeg(size_t *len, bool progressive) {
  unsigned char gray[JW * JH], rgb[JW * JH * 3];
  smooth_image(gray, rgb);
  jpeg_spec sp = {JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, gray, 95, progressive};
  return write_jpeg(&sp, len);
}

static void test_jpeg_decode(pd_test_state *st) {
  unsigned char gray[JW * JH], rgb[JW * JH * 3];
  smooth_image(gray, rgb);
  size_t len;
  unsigned char *jpg = gray_jpeg(&len, false);
  PD_CHECK_INT(st, pd_image_sniff(jpg, len), PD_IMAGE_JPEG);
  check_decode(st, "jpeg gray", jpg, len, JW, JH, gray, 2);
  free(jpg);
  jpg = gray_jpeg(&len, true);
  check_decode(st, "jpeg gray progressive", jpg, len, JW, JH, gray, 2);
  free(jpg);
  jpeg_spec sp = {JW, JH, 3, JCS_RGB, JCS_YCbCr, rgb, 95, false};
  jpg = write_jpeg(&sp, &len);
  check_decode(st, "jpeg ycbcr equal channels", jpg, len, JW, JH, gray, 2);
  free(jpg);
}

static void test_jpeg_cmyk(pd_test_state *st) {
  unsigned char *cmyk = malloc(JW * JH * 4);
  for (int k = 0; k < JW * JH * 4; k++)
    cmyk[k] = (unsigned char)(k % 200);
  jpeg_spec sp = {JW, JH, 4, JCS_CMYK, JCS_CMYK, cmyk, 90, false};
  size_t len;
  unsigned char *jpg = write_jpeg(&sp, &len);
  check_fails(st, jpg, len, NULL, PD_EUNSUPP, "JPEG colour space CMYK", "not supported");
  free(jpg);
  sp.file_space = JCS_YCCK;
  jpg = write_jpeg(&sp, &len);
  check_fails(st, jpg, len, NULL, PD_EUNSUPP, "YCCK", "not supported");
  free(jpg);
  free(cmyk);
}

static void test_jpeg_truncated(pd_test_state *st) {
  size_t len;
  unsigned char *jpg = gray_jpeg(&len, false);
  int bad = 0;
  for (size_t cut = 0; cut < len; cut++) {
    pd_gray_image img;
    pd_error err;
    int rc = decode(jpg, cut, NULL, &img, &err);
    bad += rc != PD_EFORMAT || img.pixels != NULL ||
           !strstr(err.msg, cut ? "JPEG" : "empty image data");
  }
  PD_CHECK_INT(st, bad, 0);
  check_fails(st, jpg, len - 2, NULL, PD_EFORMAT, "JPEG: Premature end of JPEG file", NULL);
  check_fails(st, jpg, 2, NULL, PD_EFORMAT, "truncated JPEG (2 bytes)", NULL);
  free(jpg);
  jpg = gray_jpeg(&len, true);
  bad = 0;
  for (size_t cut = 1; cut < len; cut += 7) {
    pd_gray_image img;
    pd_error err;
    bad += decode(jpg, cut, NULL, &img, &err) != PD_EFORMAT;
  }
  PD_CHECK_INT(st, bad, 0);
  free(jpg);
}

static void test_jpeg_corrupt(pd_test_state *st) {
  size_t len;
  unsigned char *jpg = gray_jpeg(&len, false);
  unsigned char *bad = malloc(len);
  size_t sos = jpeg_find_marker(jpg, len, 0xda);
  PD_CHECK(st, sos > 0);
  /* An EOI in the middle of the entropy-coded data. */
  memcpy(bad, jpg, len);
  size_t mid = (sos + len) / 2;
  bad[mid] = 0xff;
  bad[mid + 1] = 0xd9;
  check_fails(st, bad, len, NULL, PD_EFORMAT, "JPEG: ", "Corrupt JPEG data");
  /* A broken Huffman table definition. */
  size_t dht = jpeg_find_marker(jpg, len, 0xc4);
  PD_CHECK(st, dht > 0);
  memcpy(bad, jpg, len);
  memset(bad + dht + 5, 0xff, 16);
  check_fails(st, bad, len, NULL, PD_EFORMAT, "JPEG: ", NULL);
  /* 12-bit samples are valid JPEG that this decoder does not take. */
  size_t sof = jpeg_find_marker(jpg, len, 0xc0);
  PD_CHECK(st, sof > 0);
  memcpy(bad, jpg, len);
  bad[sof + 4] = 12;
  check_fails(st, bad, len, NULL, PD_EUNSUPP, "JPEG", "precision 12");
  /* Byte sweep: fail cleanly or decode. */
  int odd = 0;
  for (size_t k = 0; k < len; k++) {
    memcpy(bad, jpg, len);
    bad[k] ^= 0x55;
    pd_gray_image img;
    pd_error err;
    int rc = decode(bad, len, NULL, &img, &err);
    if (rc == PD_OK) {
      odd += img.width < 1 || img.height < 1 || !img.pixels;
      pd_gray_image_free(&img);
    } else {
      odd += (rc != PD_EFORMAT && rc != PD_EUNSUPP && rc != PD_ELIMIT) || !err.msg[0];
    }
  }
  PD_CHECK_INT(st, odd, 0);
  free(bad);
  free(jpg);
}

static void test_jpeg_limits(pd_test_state *st) {
  size_t len;
  unsigned char *jpg = gray_jpeg(&len, false);
  size_t sof = jpeg_find_marker(jpg, len, 0xc0);
  unsigned char *bad = malloc(len);
  memcpy(bad, jpg, len);
  bad[sof + 5] = 0xea; /* height 60000 */
  bad[sof + 6] = 0x60;
  bad[sof + 7] = 0xea; /* width 60000 */
  bad[sof + 8] = 0x60;
  check_fails(st, bad, len, NULL, PD_ELIMIT,
              "JPEG 60000x60000 exceeds the limit of 4096x4096 pixels", NULL);
  memcpy(bad, jpg, len);
  bad[sof + 5] = bad[sof + 6] = 0;
  check_fails(st, bad, len, NULL, PD_ELIMIT, "JPEG 64x0 has zero width or height", NULL);
  pd_image_limits narrow = {63, 100, 100000};
  check_fails(st, jpg, len, &narrow, PD_ELIMIT, "JPEG 64x48 exceeds the limit of 63x100", NULL);
  pd_image_limits low = {100, 47, 100000};
  check_fails(st, jpg, len, &low, PD_ELIMIT, "JPEG 64x48 exceeds the limit of 100x47", NULL);
  pd_image_limits few = {100, 100, 3071};
  check_fails(st, jpg, len, &few, PD_ELIMIT, "JPEG 64x48 (3072 pixels)", "limit of 3071 pixels");
  free(bad);
  free(jpg);
}

/* ---- other inputs ---- */

static void test_unknown_and_empty(pd_test_state *st) {
  static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00";
  check_fails(st, gif, sizeof gif - 1, NULL, PD_EUNSUPP, "unknown image format",
              "47 49 46 38 39 61");
  static const unsigned char bmp[] = "BM\x1e\x00\x00\x00";
  check_fails(st, bmp, 6, NULL, PD_EUNSUPP, "not PNG, JPEG or TIFF", NULL);
  check_fails(st, bmp, 1, NULL, PD_EUNSUPP, "first bytes: 42", NULL);
  check_fails(st, gif, 0, NULL, PD_EFORMAT, "empty image data", NULL);
  check_fails(st, NULL, 0, NULL, PD_EFORMAT, "empty image data", NULL);
  check_fails(st, NULL, 10, NULL, PD_EINVAL, "no data", NULL);
  PD_CHECK_INT(st, pd_image_decode(gif, 3, NULL, NULL, NULL), PD_EINVAL);
  PD_CHECK_INT(st, pd_image_decode(gif, sizeof gif - 1, NULL, &(pd_gray_image){0}, NULL),
               PD_EUNSUPP); /* err may be NULL */
  PD_CHECK_INT(st, pd_image_sniff(gif, sizeof gif - 1), PD_IMAGE_UNKNOWN);
  PD_CHECK_INT(st, pd_image_sniff(NULL, 0), PD_IMAGE_UNKNOWN);
  size_t len;
  unsigned char *png = small_gray_png(2, 2, &len);
  PD_CHECK_INT(st, pd_image_sniff(png, len), PD_IMAGE_PNG);
  PD_CHECK_INT(st, pd_image_sniff(png, 7), PD_IMAGE_UNKNOWN);
  free(png);
  pd_gray_image_free(NULL);
}

/* ---- files ---- */

static void write_file(const char *path, const unsigned char *d, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(d, 1, len, f) != len) abort();
  fclose(f);
}

static void test_files(pd_test_state *st) {
  char dir[] = "/tmp/pd_test_image_XXXXXX";
  if (!mkdtemp(dir)) abort();
  char path[256];
  pd_gray_image img;
  pd_error err = {0, ""};

  int rc = pd_image_load_file("/nonexistent/pd/crop.png", NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, "/nonexistent/pd/crop.png");
  PD_CHECK(st, img.pixels == NULL);

  rc = pd_image_load_file(dir, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_EIO);
  PD_CHECK_CONTAINS(st, err.msg, dir);

  size_t len;
  unsigned char *png = small_gray_png(5, 3, &len);
  snprintf(path, sizeof path, "%s/ok.png", dir);
  write_file(path, png, len);
  rc = pd_image_load_file(path, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  PD_CHECK(st, img.width == 5 && img.height == 3 && img.pixels && img.pixels[4] == 28);
  pd_gray_image_free(&img);
  unlink(path);

  snprintf(path, sizeof path, "%s/cut.png", dir);
  write_file(path, png, len / 2);
  rc = pd_image_load_file(path, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_EFORMAT);
  PD_CHECK_CONTAINS(st, err.msg, path);
  PD_CHECK_CONTAINS(st, err.msg, ": PNG");
  unlink(path);

  unsigned char *jpg = gray_jpeg(&len, false);
  snprintf(path, sizeof path, "%s/ok.jpg", dir);
  write_file(path, jpg, len);
  rc = pd_image_load_file(path, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  PD_CHECK(st, img.width == JW && img.height == JH);
  pd_gray_image_free(&img);
  pd_image_limits few = {100, 100, 10};
  rc = pd_image_load_file(path, &few, &img, &err);
  PD_CHECK_INT(st, rc, PD_ELIMIT);
  PD_CHECK_CONTAINS(st, err.msg, path);
  unlink(path);
  free(jpg);

  snprintf(path, sizeof path, "%s/huge.png", dir);
  write_file(path, png, len < 64 ? len : 64);
  if (truncate(path, 65L * 1024 * 1024) != 0) abort(); /* sparse */
  rc = pd_image_load_file(path, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_ELIMIT);
  PD_CHECK_CONTAINS(st, err.msg, path);
  PD_CHECK_CONTAINS(st, err.msg, "exceeds the limit of 67108864 bytes");
  unlink(path);
  free(png);

  PD_CHECK_INT(st, pd_image_load_file(NULL, NULL, &img, &err), PD_EINVAL);
  rmdir(dir);
}

/* ---- real crops ---- */

static int name_filter(const struct dirent *e) {
  return e->d_name[0] != '.';
}

static void check_ndsb_file(pd_test_state *st, const char *path) {
  pd_gray_image img;
  pd_error err = {0, ""};
  int rc = pd_image_load_file(path, NULL, &img, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  PD_CHECK(st, img.width >= 8 && img.width <= 1024 && img.height >= 8 && img.height <= 1024);
  const uint8_t *p = img.pixels;
  int w = img.width, h = img.height, corner = p[0];
  int c[3] = {p[w - 1], p[(size_t)(h - 1) * w], p[(size_t)h * w - 1]};
  for (int k = 0; k < 3; k++)
    corner = c[k] > corner ? c[k] : corner;
  PD_CHECK(st, corner >= 200); /* white background in at least one corner */
  pd_gray_image_free(&img);
}

static void test_ndsb(pd_test_state *st) {
  const char *root = getenv("PLANKTON_DATA");
  char train[4096];
  snprintf(train, sizeof train, "%s/train", root ? root : "");
  struct dirent **classes = NULL;
  int nc = root ? scandir(train, &classes, name_filter, alphasort) : -1;
  if (nc <= 0) {
    printf("skipping NDSB checks: PLANKTON_DATA not found\n");
    free(classes);
    return;
  }
  int files = 0;
  for (int c = 0; c < nc; c++) {
    char cdir[8192];
    snprintf(cdir, sizeof cdir, "%s/%s", train, classes[c]->d_name);
    struct dirent **ents = NULL;
    int ne = c % 20 == 0 ? scandir(cdir, &ents, name_filter, alphasort) : 0;
    for (int k = 0; k < ne; k++) {
      if (k < 3 && strstr(ents[k]->d_name, ".jpg")) {
        char path[12288];
        snprintf(path, sizeof path, "%s/%s", cdir, ents[k]->d_name);
        check_ndsb_file(st, path);
        files++;
      }
      free(ents[k]);
    }
    free(ents);
    free(classes[c]);
  }
  free(classes);
  PD_CHECK(st, files > 0);
  printf("decoded %d NDSB crops\n", files);
}

int main(void) {
  pd_test_state st = {0};
  test_png_gray(&st);
  test_png_low_depth(&st);
  test_png_gray_alpha(&st);
  test_png_rgb(&st);
  test_png_rgba(&st);
  test_png_palette(&st);
  test_png_interlaced_large(&st);
  test_png_truncated(&st);
  test_png_corrupt(&st);
  test_png_limits(&st);
  test_jpeg_decode(&st);
  test_jpeg_cmyk(&st);
  test_jpeg_truncated(&st);
  test_jpeg_corrupt(&st);
  test_jpeg_limits(&st);
  test_unknown_and_empty(&st);
  test_files(&st);
  test_ndsb(&st);
  return pd_test_finish(&st, "image");
}
