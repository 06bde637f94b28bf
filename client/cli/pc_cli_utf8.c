/* pc_cli_utf8: UTF-8 checks (see pc_cli_utf8.h). */
#include "pc_cli_utf8.h"

static bool cont(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

size_t pc_cli_utf8_seq(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  if (p[0] < 0x80) return 1;
  if (p[0] >= 0xC2 && p[0] <= 0xDF) return cont(p[1]) ? 2 : 0;
  if (p[0] >= 0xE0 && p[0] <= 0xEF) {
    if (!cont(p[1]) || !cont(p[2])) return 0;
    if (p[0] == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (p[0] == 0xED && p[1] >= 0xA0) return 0; /* surrogates */
    return 3;
  }
  if (p[0] >= 0xF0 && p[0] <= 0xF4) {
    if (!cont(p[1]) || !cont(p[2]) || !cont(p[3])) return 0;
    if (p[0] == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (p[0] == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
    return 4;
  }
  return 0;
}

bool pc_cli_utf8_valid(const char *s) {
  while (*s) {
    size_t n = pc_cli_utf8_seq(s);
    if (!n) return false;
    s += n;
  }
  return true;
}
