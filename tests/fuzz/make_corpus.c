/* make_corpus: writes the seed corpora of the fuzz targets that the
 * project's own code can make (tests/fuzz/make_corpus runs it and adds the
 * files made by other tools). Deterministic: the same build writes the same
 * bytes.
 *
 * usage: fuzz_make_corpus OUT_DIR   (OUT_DIR/<target>/ must exist)
 *
 *   frame/  byte streams of Request frames packed by the protoc-c code
 *           (2 control bytes first, see fuzz_frame.c)
 *   image/  small PNGs (libpng: every colour type and bit depth, palette
 *           with transparency, interlaced) and JPEGs (libjpeg: gray, YCbCr
 *           4:2:0 and 4:4:4, RGB, progressive, restart markers, arithmetic)
 *   model/  model.yaml NUL weights.safetensors, three tiny models that use
 *           every layer type, weights from tests/support/pd_test_model.h
 *   config/ a few daemon configs (the example file is added by the script)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "pd_frame.h"
#include "pd_model.h"
#include "pd_test_model.h"
#include "plankton.pb-c.h"

static const char *g_out;
static int g_files;

static void die(const char *what) {
  fprintf(stderr, "make_corpus: %s\n", what);
  exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
  if (pd_test_write_file(path, data, len) != 0) {
    fprintf(stderr, "make_corpus: cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  g_files++;
}

/* ---- a growing byte buffer ---- */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void buf_add(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) die("out of memory");
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

/* ---- images ---- */

static void png_write_cb(png_structp png, png_bytep data, size_t n) {
  buf_add(png_get_io_ptr(png), data, n);
}
static void png_flush_cb(png_structp png) {
  (void)png;
}

/* A w x h crop as a PNG of the given colour type and depth (8 or 16; 1/2/4
 * for gray and palette). */
static buf make_png(int w, int h, int ctype, int depth, int interlace, uint64_t seed) {
  uint8_t *gray = malloc((size_t)w * h);
  if (!gray) die("out of memory");
  pd_test_crop(w, h, seed, gray);
  buf out = {0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) die("libpng failed");
  png_set_write_fn(png, &out, png_write_cb, png_flush_cb);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (ctype == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[16];
    png_byte alpha[16];
    for (int i = 0; i < 16; i++) {
      pal[i].red = (png_byte)(i * 17);
      pal[i].green = (png_byte)(255 - i * 17);
      pal[i].blue = (png_byte)(i * 8);
      alpha[i] = (png_byte)(i < 4 ? 64 * i : 255);
    }
    int n = 1 << (depth < 4 ? depth : 4);
    png_set_PLTE(png, info, pal, n);
    png_set_tRNS(png, info, alpha, n, NULL);
  }
  png_write_info(png, info);
  int channels = ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_PALETTE ? 1
                 : ctype == PNG_COLOR_TYPE_GRAY_ALPHA                            ? 2
                 : ctype == PNG_COLOR_TYPE_RGB                                   ? 3
                                                                                 : 4;
  size_t rowbytes = ((size_t)w * channels * depth + 7) / 8;
  png_bytep *rows = malloc((size_t)h * sizeof *rows);
  uint8_t *pix = calloc((size_t)h, rowbytes);
  if (!rows || !pix) die("out of memory");
  for (int y = 0; y < h; y++) {
    rows[y] = pix + (size_t)y * rowbytes;
    for (int x = 0; x < w; x++) {
      uint8_t g = gray[(size_t)y * w + x];
      uint8_t v[4] = {g, (uint8_t)(255 - g / 2), (uint8_t)(g / 3 + x), (uint8_t)(200 + y)};
      if (channels == 2) v[1] = (uint8_t)(128 + x * 7);
      if (ctype == PNG_COLOR_TYPE_PALETTE && depth == 8) v[0] = g >> 4; /* 16 entries */
      for (int c = 0; c < channels; c++) {
        if (depth == 16) {
          rows[y][2 * ((size_t)x * channels + c)] = v[c];
          rows[y][2 * ((size_t)x * channels + c) + 1] = (uint8_t)(v[c] ^ 0x5a);
        } else if (depth == 8) {
          rows[y][(size_t)x * channels + c] = v[c];
        } else { /* 1, 2, 4 bits, one channel */
          unsigned val = (unsigned)v[0] >> (8 - depth);
          size_t bit = (size_t)x * depth;
          rows[y][bit / 8] |= (uint8_t)(val << (8 - depth - bit % 8));
        }
      }
    }
  }
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(rows);
  free(pix);
  free(gray);
  return out;
}

typedef enum { J_GRAY, J_YCC420, J_YCC444, J_RGB } jpeg_kind;

static buf make_jpeg(int w, int h, jpeg_kind kind, int progressive, int restart, int arith,
                     int quality, uint64_t seed) {
  uint8_t *gray = malloc((size_t)w * h);
  uint8_t *rgb = malloc((size_t)w * h * 3);
  if (!gray || !rgb) die("out of memory");
  pd_test_crop(w, h, seed, gray);
  for (size_t i = 0; i < (size_t)w * h; i++) {
    rgb[3 * i] = gray[i];
    rgb[3 * i + 1] = (uint8_t)(255 - gray[i] / 2);
    rgb[3 * i + 2] = (uint8_t)(gray[i] / 3 + i % 17);
  }
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  unsigned char *mem = NULL;
  unsigned long mem_len = 0;
  jpeg_mem_dest(&c, &mem, &mem_len);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = kind == J_GRAY ? 1 : 3;
  c.in_color_space = kind == J_GRAY ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  if (kind == J_RGB) jpeg_set_colorspace(&c, JCS_RGB);
  if (kind == J_YCC444)
    for (int i = 0; i < c.num_components; i++)
      c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  if (progressive) jpeg_simple_progression(&c);
  if (restart) c.restart_interval = (unsigned)restart;
  if (arith) c.arith_code = TRUE;
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row =
        kind == J_GRAY ? gray + (size_t)c.next_scanline * w : rgb + (size_t)c.next_scanline * w * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  buf out = {0};
  buf_add(&out, mem, mem_len);
  free(mem);
  free(gray);
  free(rgb);
  return out;
}

static void image_corpus(void) {
  struct {
    const char *name;
    int w, h, ctype, depth, interlace;
  } pngs[] = {
      {"gray8.png", 17, 13, PNG_COLOR_TYPE_GRAY, 8, 0},
      {"gray1.png", 9, 5, PNG_COLOR_TYPE_GRAY, 1, 0},
      {"gray2.png", 6, 7, PNG_COLOR_TYPE_GRAY, 2, 0},
      {"gray4.png", 5, 9, PNG_COLOR_TYPE_GRAY, 4, 0},
      {"gray16.png", 8, 6, PNG_COLOR_TYPE_GRAY, 16, 0},
      {"gray_alpha8.png", 7, 7, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0},
      {"gray_alpha16.png", 4, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0},
      {"rgb8.png", 11, 9, PNG_COLOR_TYPE_RGB, 8, 0},
      {"rgb16.png", 5, 4, PNG_COLOR_TYPE_RGB, 16, 0},
      {"rgba8.png", 9, 11, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0},
      {"rgba16.png", 3, 6, PNG_COLOR_TYPE_RGB_ALPHA, 16, 0},
      {"palette4_trns.png", 10, 6, PNG_COLOR_TYPE_PALETTE, 4, 0},
      {"palette8_trns.png", 6, 10, PNG_COLOR_TYPE_PALETTE, 8, 0},
      {"palette1.png", 12, 3, PNG_COLOR_TYPE_PALETTE, 1, 0},
      {"gray8_interlaced.png", 13, 11, PNG_COLOR_TYPE_GRAY, 8, 1},
      {"rgba8_interlaced.png", 9, 9, PNG_COLOR_TYPE_RGB_ALPHA, 8, 1},
      {"gray8_1x1.png", 1, 1, PNG_COLOR_TYPE_GRAY, 8, 0},
      {"gray8_wide.png", 64, 2, PNG_COLOR_TYPE_GRAY, 8, 0},
      {"gray8_tall.png", 2, 50, PNG_COLOR_TYPE_GRAY, 8, 0},
  };
  for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
    buf b = make_png(pngs[i].w, pngs[i].h, pngs[i].ctype, pngs[i].depth, pngs[i].interlace, i);
    put("image", pngs[i].name, b.p, b.len);
    free(b.p);
  }
  struct {
    const char *name;
    int w, h;
    jpeg_kind kind;
    int progressive, restart, arith, quality;
  } jpegs[] = {
      {"gray.jpg", 17, 13, J_GRAY, 0, 0, 0, 75},
      {"ycc420.jpg", 19, 15, J_YCC420, 0, 0, 0, 75},
      {"ycc444.jpg", 9, 17, J_YCC444, 0, 0, 0, 90},
      {"rgb.jpg", 8, 8, J_RGB, 0, 0, 0, 60},
      {"gray_progressive.jpg", 16, 12, J_GRAY, 1, 0, 0, 75},
      {"ycc420_progressive.jpg", 21, 18, J_YCC420, 1, 0, 0, 50},
      {"gray_restart.jpg", 24, 16, J_GRAY, 0, 1, 0, 75},
      {"gray_arith.jpg", 12, 12, J_GRAY, 0, 0, 1, 75},
      {"ycc420_arith_progressive.jpg", 16, 16, J_YCC420, 1, 0, 1, 40},
      {"gray_1x1.jpg", 1, 1, J_GRAY, 0, 0, 0, 75},
  };
  for (size_t i = 0; i < sizeof jpegs / sizeof jpegs[0]; i++) {
    buf b = make_jpeg(jpegs[i].w, jpegs[i].h, jpegs[i].kind, jpegs[i].progressive, jpegs[i].restart,
                      jpegs[i].arith, jpegs[i].quality, 100 + i);
    put("image", jpegs[i].name, b.p, b.len);
    free(b.p);
  }
}

/* ---- frames ---- */

static void add_frame(buf *b, const Plankton__Request *r) {
  size_t n = plankton__request__get_packed_size(r);
  uint8_t *body = malloc(n ? n : 1);
  if (!body) die("out of memory");
  plankton__request__pack(r, body);
  uint8_t hdr[PD_FRAME_HEADER];
  pd_frame_header(hdr, (uint32_t)n);
  buf_add(b, hdr, sizeof hdr);
  buf_add(b, body, n);
  free(body);
}

static void add_raw_frame(buf *b, const void *body, size_t n, uint32_t claimed) {
  uint8_t hdr[PD_FRAME_HEADER];
  pd_frame_header(hdr, claimed);
  buf_add(b, hdr, sizeof hdr);
  buf_add(b, body, n);
}

static void add_classify(buf *b, uint64_t id, int format, const uint8_t *data, size_t len,
                         uint32_t w, uint32_t h, const char *model, uint32_t top_k, int full,
                         uint32_t tta, uint64_t deadline_us) {
  Plankton__Image img = PLANKTON__IMAGE__INIT;
  img.format = (Plankton__ImageFormat)format;
  img.data.data = (uint8_t *)data;
  img.data.len = len;
  img.width = w;
  img.height = h;
  Plankton__ClassifyRequest cr = PLANKTON__CLASSIFY_REQUEST__INIT;
  cr.id = id;
  cr.model = (char *)(model ? model : "");
  cr.image = &img;
  cr.top_k = top_k;
  cr.full_distribution = full;
  cr.tta = tta;
  cr.deadline_us = deadline_us;
  Plankton__Request r = PLANKTON__REQUEST__INIT;
  r.body_case = PLANKTON__REQUEST__BODY_CLASSIFY;
  r.classify = &cr;
  add_frame(b, &r);
}

static void add_simple(buf *b, int kind, uint64_t id, const char *model) {
  Plankton__Request r = PLANKTON__REQUEST__INIT;
  Plankton__StatsRequest s = PLANKTON__STATS_REQUEST__INIT;
  Plankton__HealthRequest hr = PLANKTON__HEALTH_REQUEST__INIT;
  Plankton__ModelInfoRequest mi = PLANKTON__MODEL_INFO_REQUEST__INIT;
  switch (kind) {
  case 0:
    s.id = id;
    r.body_case = PLANKTON__REQUEST__BODY_STATS;
    r.stats = &s;
    break;
  case 1:
    hr.id = id;
    r.body_case = PLANKTON__REQUEST__BODY_HEALTH;
    r.health = &hr;
    break;
  case 2:
    mi.id = id;
    mi.model = (char *)(model ? model : "");
    r.body_case = PLANKTON__REQUEST__BODY_MODEL_INFO;
    r.model_info = &mi;
    break;
  default: /* no body */
    break;
  }
  add_frame(b, &r);
}

static void put_stream(const char *name, uint8_t ctl0, uint8_t ctl1, const buf *stream) {
  buf f = {0};
  uint8_t ctl[2] = {ctl0, ctl1};
  buf_add(&f, ctl, 2);
  buf_add(&f, stream->p, stream->len);
  put("frame", name, f.p, f.len);
  free(f.p);
}

/* ctl0: bits 0-1 frame limit (0: 1 KiB, 1: 4 KiB, 2: 64 KiB, 3: 16 MiB),
 * bits 2-4 read cap (0: 1 byte, 1: 3, 2: 7, 3: 64, 4: 4096, 5: 65536, 6-7: all). */
#define CTL(limit, cap) ((uint8_t)((limit) | (cap) << 2))

static void frame_corpus(void) {
  buf png = make_png(12, 10, PNG_COLOR_TYPE_GRAY, 8, 0, 7);
  buf jpg = make_jpeg(10, 8, J_GRAY, 0, 0, 0, 75, 8);
  uint8_t raw[6 * 5];
  pd_test_crop(6, 5, 9, raw);
  buf b = {0};

  add_classify(&b, 1, 0, png.p, png.len, 0, 0, NULL, 0, 0, 0, 0);
  put_stream("classify_png.bin", CTL(1, 6), 0, &b);
  put_stream("classify_png_bytewise.bin", CTL(1, 0), 0, &b);
  b.len = 0;
  add_classify(&b, 2, 2, jpg.p, jpg.len, 0, 0, "daemon-tiny", 3, 1, 8, 250000);
  put_stream("classify_jpeg_options.bin", CTL(3, 2), 1, &b);
  b.len = 0;
  add_classify(&b, 3, 3, raw, sizeof raw, 6, 5, NULL, 1, 0, 0, 0);
  put_stream("classify_raw.bin", CTL(0, 3), 2, &b);
  b.len = 0;
  add_classify(&b, 4, 1, jpg.p, jpg.len, 0, 0,
               "a-model-name-that-is-far-too-long-to-be-any-"
               "model-name-that-the-daemon-could-serve",
               0, 0, 1025, UINT64_MAX);
  put_stream("classify_odd_fields.bin", CTL(2, 6), 3, &b);
  b.len = 0;
  add_simple(&b, 0, 10, NULL);
  put_stream("stats.bin", CTL(1, 6), 0, &b);
  b.len = 0;
  add_simple(&b, 1, 11, NULL);
  put_stream("health.bin", CTL(1, 6), 0, &b);
  b.len = 0;
  add_simple(&b, 2, 12, "daemon-tiny");
  put_stream("model_info.bin", CTL(1, 1), 5, &b);
  b.len = 0;
  add_simple(&b, 3, 0, NULL);
  put_stream("no_body.bin", CTL(1, 6), 0, &b);

  /* pipelined: many requests in one stream, read in odd pieces */
  b.len = 0;
  for (int i = 0; i < 3; i++) {
    add_simple(&b, i, 100 + (uint64_t)i, "");
    add_classify(&b, 200 + (uint64_t)i, i == 2 ? 3 : 0, i == 2 ? raw : png.p,
                 i == 2 ? sizeof raw : png.len, 6, 5, NULL, 2, i & 1, 0, 0);
  }
  add_raw_frame(&b, "", 0, 0); /* a zero-length frame: an empty Request */
  put_stream("pipelined.bin", CTL(1, 3), 77, &b);
  put_stream("pipelined_bytewise.bin", CTL(1, 0), 0, &b);
  put_stream("pipelined_small_reads.bin", CTL(1, 1), 200, &b);

  /* broken frames: bytes that are not a Request, a header over the limit,
   * a frame cut short, a header alone */
  b.len = 0;
  add_simple(&b, 1, 1, NULL);
  add_raw_frame(&b, "\xff\xff\xff\xff\x0f", 5, 5);
  add_simple(&b, 1, 2, NULL);
  put_stream("garbage_frame.bin", CTL(1, 6), 0, &b);
  b.len = 0;
  add_simple(&b, 1, 1, NULL);
  add_raw_frame(&b, "\x0a\x02", 2, 2000);
  put_stream("oversize_1k.bin", CTL(0, 6), 0, &b);
  b.len = 0;
  add_raw_frame(&b, "", 0, 0xffffffffu);
  put_stream("oversize_4g.bin", CTL(3, 6), 0, &b);
  b.len = 0;
  add_classify(&b, 5, 0, png.p, png.len, 0, 0, NULL, 0, 0, 0, 0);
  b.len -= 10; /* cut short: pending at the end */
  put_stream("truncated.bin", CTL(1, 4), 9, &b);
  b.len = 0;
  add_raw_frame(&b, "\x0a", 1, 3);
  put_stream("header_only.bin", CTL(1, 0), 0, &b);
  free(b.p);
  free(png.p);
  free(jpg.p);
}

/* ---- models ---- */

static void put_model(const char *name, const char *yaml, const pd_test_tensor *ts, int n) {
  size_t wlen = 0;
  unsigned char *w = ts ? pd_test_weights(ts, n, 5, &wlen) : NULL;
  if (ts) {
    pd_model *m = NULL;
    pd_error err = {0};
    if (pd_model_load_mem(yaml, strlen(yaml), name, w, wlen, "weights", &m, &err) != PD_OK) {
      fprintf(stderr, "make_corpus: model %s does not load: %s\n", name, err.msg);
      exit(1);
    }
    pd_model_free(m);
  }
  buf b = {0};
  buf_add(&b, yaml, strlen(yaml));
  if (ts) {
    buf_add(&b, "", 1);
    buf_add(&b, w, wlen);
  }
  put("model", name, b.p, b.len);
  free(b.p);
  free(w);
}

static void model_corpus(void) {
  static const char m1[] =
      "format: 1\nname: m1\nversion: \"1.0\"\nclasses: [x, y, z]\nsymmetry: none\n"
      "input: {invert: false, background: 0, mean: 0.5, std: 0.25}\n"
      "branches:\n"
      "  - name: img\n"
      "    input: {kind: image, size: 9, rescale: fit}\n"
      "    layers:\n"
      "      - {type: conv, filters: 2, kernel: 3}\n"
      "      - {type: maxpool, size: 2, stride: 2}\n"
      "      - {type: leaky_relu, slope: 0.2}\n"
      "      - {type: dropout, rate: 0.1}\n"
      "      - {type: dense, units: 4, activation: leaky_relu}\n"
      "      - {type: maxout, pieces: 2}\n"
      "head:\n"
      "  layers:\n"
      "    - {type: dense, units: 3, name: logits}\n"
      "    - {type: softmax}\n"
      "tta: {count: 2}\n";
  static const pd_test_tensor t1[] = {
      {"img.0.weight", 4, {2, 1, 3, 3}}, {"img.0.bias", 1, {2}},
      {"img.4.weight", 2, {4, 32}},      {"img.4.bias", 1, {4}},
      {"logits.weight", 2, {3, 2}},      {"logits.bias", 1, {3}},
  };
  static const char m2[] = "format: 1\nname: m2\nversion: 2\nclasses: [p, q]\nsymmetry: c4\n"
                           "input: {std: 1}\n"
                           "branches:\n"
                           "  - name: a\n"
                           "    input: {kind: image, size: 7, rescale: fixed, factor: 2.5}\n"
                           "    layers:\n"
                           "      - {type: cyclic_slice}\n"
                           "      - {type: conv, filters: 2, kernel: 3}\n"
                           "      - {type: cyclic_roll}\n"
                           "      - {type: conv, filters: 2, kernel: 3, stride: 2, pad: 0}\n"
                           "      - {type: global_avg_pool}\n"
                           "      - {type: cyclic_roll}\n"
                           "      - {type: dense, units: 3}\n"
                           "      - {type: cyclic_pool, mode: rms}\n"
                           "  - name: s\n"
                           "    input: {kind: size_features, features: [log_area, aspect]}\n"
                           "    layers: [{type: dense, units: 2, name: s_fc}]\n"
                           "head:\n"
                           "  layers: [{type: dense, units: 2, name: logits}, {type: softmax}]\n";
  static const pd_test_tensor t2[] = {
      {"a.1.weight", 4, {2, 1, 3, 3}}, {"a.1.bias", 1, {2}},
      {"a.3.weight", 4, {2, 8, 3, 3}}, {"a.3.bias", 1, {2}},
      {"a.6.weight", 2, {3, 8}},       {"a.6.bias", 1, {3}},
      {"s_fc.weight", 2, {2, 2}},      {"s_fc.bias", 1, {2}},
      {"logits.weight", 2, {2, 5}},    {"logits.bias", 1, {2}},
  };
  static const char m3[] =
      "format: 1\nname: m3\nversion: 3.1-rc+x\nclasses: [a, b, c, d]\nsymmetry: d4\n"
      "input: {invert: true, background: 250, mean: 0, std: 0.5}\n"
      "branches:\n"
      "  - name: d\n"
      "    input: {kind: image, size: 8}\n"
      "    layers:\n"
      "      - {type: cyclic_slice}\n"
      "      - {type: conv, filters: 1, kernel: 1, activation: none}\n"
      "      - {type: maxpool}\n"
      "      - {type: cyclic_roll}\n"
      "      - {type: dense, units: 2}\n"
      "      - {type: cyclic_pool, mode: max}\n"
      "head:\n"
      "  layers: [{type: dense, units: 4, name: out}, {type: softmax}]\n"
      "tta: {count: 8, flip: true, zoom: [0.9, 1.1], rotation: [-10, 10], shear: [0, 0],\n"
      "      translate: [-1, 1], stretch: 1.1}\n";
  static const pd_test_tensor t3[] = {
      {"d.1.weight", 4, {1, 1, 1, 1}}, {"d.1.bias", 1, {1}},
      {"d.4.weight", 2, {2, 72}},      {"d.4.bias", 1, {2}},
      {"out.weight", 2, {4, 2}},       {"out.bias", 1, {4}},
  };
  put_model("m1_none.bin", m1, t1, 6);
  put_model("m2_c4.bin", m2, t2, 10);
  put_model("m3_d4.bin", m3, t3, 6);
  put_model("m1_yaml_only.bin", m1, NULL, 0);
  put_model("ensemble_yaml_only.bin",
            "ensemble:\n  - {dir: a, weight: 1}\n  - {dir: b, weight: 2}\n", NULL, 0);
}

/* ---- config ---- */

static void config_corpus(void) {
  static const char full[] =
      "listen:\n  socket: /run/p.sock\n  socket_mode: 0600\n  tcp: 127.0.0.1:7341\n"
      "metrics:\n  listen: unix:/run/m.sock\n"
      "model:\n  dir: /srv/model\n"
      "engine: {backend: cpu, threads: 2, decode_threads: 3}\n"
      "batching:\n  max_batch: 16\n  max_queue_delay_us: 500\n  max_queue: 100\n"
      "limits:\n  max_frame_bytes: 2048\n  max_in_flight_per_connection: 8\n"
      "  max_image_width: 100\n  max_image_height: 100\n  max_image_pixels: 10000\n"
      "  max_connections: 3\n  max_tta: 8\n  default_top_k: 2\n  drain_timeout_s: 0\n"
      "log: {level: debug}\n";
  put("config", "full.yaml", full, strlen(full));
  static const char tcp6[] = "listen: {socket: \"\", tcp: \"[::1]:7341\"}\nmetrics: {listen: "
                             "0.0.0.0:9100}\nlog: {level: warning}\n";
  put("config", "tcp6.yaml", tcp6, strlen(tcp6));
  static const char empty_values[] = "listen:\n  tcp:\nmetrics:\nmodel:\n  dir: ~\n";
  put("config", "empty_values.yaml", empty_values, strlen(empty_values));
  static const char comments[] = "# nothing but comments\n\n   # indented\n";
  put("config", "comments.yaml", comments, strlen(comments));
  static const char bad[] = "batching:\n  max_batch: \"8\"\n  max_queue: 0x10\n";
  put("config", "quoted_number.yaml", bad, strlen(bad));
  static const char anchors[] = "limits: &l\n  max_tta: 4\nlog: *l\n";
  put("config", "anchors.yaml", anchors, strlen(anchors));
  /* YAML, NUL, --set lines */
  static const char sets[] =
      "log: {level: info}\n\0batching.max_batch=32\nlisten.socket_mode=0640\n"
      "metrics.listen=unix:/tmp/m\nlimits.max_tta=\nnope=1\nlog.level=error\n";
  put("config", "with_sets.bin", sets, sizeof sets - 1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR (with frame/ image/ model/ config/ in it)\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  image_corpus();
  frame_corpus();
  model_corpus();
  config_corpus();
  printf("make_corpus: %d files in %s\n", g_files, g_out);
  return 0;
}
