/* pc_cli_imgsize: width and height from PNG/JPEG headers (see pc_cli_imgsize.h). */
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

int pc_cli_imgsize(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h) {
  if (!data) return -1;
  if (png_size(data, len, w, h) == 0) return 0;
  return jpeg_size(data, len, w, h);
}
