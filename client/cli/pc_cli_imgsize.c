/* pc_cli_imgsize: width and height from PNG/JPEG/TIFF headers (see pc_cli_imgsize.h). */
#include "pc_cli_imgsize.h"

#include <string.h>

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int png_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (len < 24 || memcmp(d, sig, 8) != 0 || memcmp(d + 12, "IHDR", 4) != 0) return -1;
  *w = be32(d + 16);
  *h = be32(d + 20);
  return *w && *h ? 0 : -1;
}

static int jpeg_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
  if (len < 4 || d[0] != 0xFF || d[1] != 0xD8) return -1;
  size_t i = 2;
  while (i + 4 <= len) {
    if (d[i] != 0xFF) return -1;
    uint8_t m = d[i + 1];
    if (m == 0xFF) { /* fill byte */
      i++;
      continue;
    }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
      i += 2;
      continue;
    }
    size_t seg = (size_t)d[i + 2] << 8 | d[i + 3];
    if (seg < 2) return -1;
    int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (i + 9 > len || seg < 7) return -1;
      *h = (uint32_t)d[i + 5] << 8 | d[i + 6];
      *w = (uint32_t)d[i + 7] << 8 | d[i + 8];
      return *w && *h ? 0 : -1;
    }
    if (m == 0xDA || m == 0xD9) return -1; /* scan or end before any frame header */
    i += 2 + seg;
  }
  return -1;
}

/* TIFF: ImageWidth (256) and ImageLength (257), SHORT or LONG, in the
 * first directory. */
static uint32_t tiff_u(const uint8_t *p, int n, int big) {
  uint32_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint32_t)p[big ? n - 1 - i : i] << (8 * i);
  return v;
}

static int tiff_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
  if (len < 8) return -1;
  int big = d[0] == 'M';
  if (!(d[0] == 'I' && d[1] == 'I') && !(big && d[1] == 'M')) return -1;
  if (tiff_u(d + 2, 2, big) != 42) return -1;
  uint32_t ifd = tiff_u(d + 4, 4, big);
  if (ifd > len - 2) return -1;
  uint32_t n = tiff_u(d + ifd, 2, big);
  *w = *h = 0;
  for (size_t i = 0; i < n && (size_t)ifd + 2 + 12 * (i + 1) <= len; i++) {
    const uint8_t *e = d + ifd + 2 + 12 * i;
    uint32_t tag = tiff_u(e, 2, big), type = tiff_u(e + 2, 2, big);
    uint32_t v = type == 3 ? tiff_u(e + 8, 2, big) : type == 4 ? tiff_u(e + 8, 4, big) : 0;
    if (tag == 256) *w = v;
    if (tag == 257) *h = v;
  }
  return *w && *h ? 0 : -1;
}

int pc_cli_imgsize(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h) {
  if (!data) return -1;
  if (png_size(data, len, w, h) == 0) return 0;
  if (tiff_size(data, len, w, h) == 0) return 0;
  return jpeg_size(data, len, w, h);
}
