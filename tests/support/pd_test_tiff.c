#include "pd_test_tiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

typedef struct tiff_mem {
  uint8_t *data;
  size_t len, cap, pos;
} tiff_mem;

static tmsize_t mem_read(thandle_t h, void *out, tmsize_t n) {
  tiff_mem *m = h;
  size_t left = m->pos < m->len ? m->len - m->pos : 0;
  size_t take = (size_t)n < left ? (size_t)n : left;
  memcpy(out, m->data + m->pos, take);
  m->pos += take;
  return (tmsize_t)take;
}

static tmsize_t mem_write(thandle_t h, void *in, tmsize_t n) {
  tiff_mem *m = h;
  size_t end = m->pos + (size_t)n;
  if (end > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < end)
      cap *= 2;
    uint8_t *d = realloc(m->data, cap);
    if (!d) return -1;
    memset(d + m->cap, 0, cap - m->cap);
    m->data = d;
    m->cap = cap;
  }
  memcpy(m->data + m->pos, in, (size_t)n);
  m->pos = end;
  if (end > m->len) m->len = end;
  return n;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  tiff_mem *m = h;
  uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->len : 0;
  m->pos = (size_t)(base + off);
  return m->pos;
}

static int mem_close(thandle_t h) {
  (void)h;
  return 0;
}

static toff_t mem_size(thandle_t h) {
  return ((tiff_mem *)h)->len;
}

static int mem_map(thandle_t h, void **base, toff_t *size) {
  (void)h;
  (void)base;
  (void)size;
  return 0;
}

static void mem_unmap(thandle_t h, void *base, toff_t size) {
  (void)h;
  (void)base;
  (void)size;
}

static int write_pixels(TIFF *tif, const pd_test_tiff *sp) {
  const size_t px = (size_t)(sp->bits / 8 > 0 ? sp->bits / 8 : 1) * (size_t)sp->samples;
  const size_t row = (size_t)sp->width * px;
  const uint8_t *in = sp->pixels;
  if (sp->tile_width && sp->tile_height) {
    size_t tile_bytes = (size_t)sp->tile_width * sp->tile_height * px;
    uint8_t *tile = malloc(tile_bytes);
    if (!tile) return -1;
    for (uint32_t y0 = 0; y0 < sp->height; y0 += sp->tile_height)
      for (uint32_t x0 = 0; x0 < sp->width; x0 += sp->tile_width) {
        memset(tile, 0, tile_bytes);
        for (uint32_t r = 0; r < sp->tile_height && y0 + r < sp->height; r++)
          for (uint32_t c = 0; c < sp->tile_width && x0 + c < sp->width; c++)
            memcpy(tile + ((size_t)r * sp->tile_width + c) * px,
                   in + (size_t)(y0 + r) * row + (size_t)(x0 + c) * px, px);
        if (TIFFWriteTile(tif, tile, x0, y0, 0, 0) < 0) {
          free(tile);
          return -1;
        }
      }
    free(tile);
    return 0;
  }
  uint8_t *line = malloc(row);
  if (!line) return -1;
  for (uint32_t y = 0; y < sp->height; y++) {
    memcpy(line, in + (size_t)y * row, row); /* TIFFWriteScanline may modify its buffer */
    if (TIFFWriteScanline(tif, line, y, 0) < 0) {
      free(line);
      return -1;
    }
  }
  free(line);
  return 0;
}

uint8_t *pd_test_tiff_write(const pd_test_tiff *sp, size_t *len) {
  tiff_mem m = {0};
  TIFF *tif = TIFFClientOpen("test", sp->big_endian ? "wb" : "wl", &m, mem_read, mem_write,
                             mem_seek, mem_close, mem_size, mem_map, mem_unmap);
  if (!tif) return NULL;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, sp->width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, sp->height);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, sp->bits);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, sp->samples);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, sp->photometric);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, sp->compression ? sp->compression : COMPRESSION_NONE);
  if (sp->sample_format) TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, sp->sample_format);
  uint16_t map[256];
  if (sp->photometric == PHOTOMETRIC_PALETTE && sp->bits == 8) { /* a gray colour map */
    for (int i = 0; i < 256; i++)
      map[i] = (uint16_t)(i * 257);
    TIFFSetField(tif, TIFFTAG_COLORMAP, map, map, map);
  }
  if (sp->samples == 2) { /* gray + alpha */
    uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
  }
  if (sp->tile_width && sp->tile_height) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, sp->tile_width);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, sp->tile_height);
  } else {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP,
                 sp->rows_per_strip ? sp->rows_per_strip : TIFFDefaultStripSize(tif, 0));
  }
  int rc = write_pixels(tif, sp);
  if (rc == 0 && !TIFFWriteDirectory(tif)) rc = -1;
  TIFFClose(tif);
  if (rc != 0) {
    free(m.data);
    return NULL;
  }
  *len = m.len;
  return m.data;
}
