/* pc_cli_path: textual path rules (see pc_cli_path.h). */
#include "pc_cli_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli_utf8.h"

char *pc_cli_path_abs(const char *path, const char *base) {
  const size_t pl = strlen(path), bl = path[0] == '/' ? 0 : strlen(base);
  char *out = malloc(bl + pl + 3);
  if (!out) return NULL;
  size_t n = 0; /* out[0, n): the result so far, without a trailing '/' */
  for (int part = path[0] == '/' ? 1 : 0; part < 2; part++) {
    const char *s = part == 0 ? base : path;
    while (*s) {
      while (*s == '/')
        s++;
      const char *e = strchr(s, '/');
      size_t len = e ? (size_t)(e - s) : strlen(s);
      if (len == 0) break;
      if (len == 1 && s[0] == '.') {
        /* nothing */
      } else if (len == 2 && s[0] == '.' && s[1] == '.') {
        while (n > 0 && out[n - 1] != '/')
          n--;
        if (n > 0) n--; /* the '/' before it */
      } else {
        out[n++] = '/';
        memcpy(out + n, s, len);
        n += len;
      }
      s += len;
    }
  }
  if (n == 0) out[n++] = '/';
  out[n] = '\0';
  return out;
}

void pc_cli_path_parent(char *abs) {
  char *slash = strrchr(abs, '/');
  if (!slash) return;
  if (slash == abs)
    abs[1] = '\0';
  else
    *slash = '\0';
}

const char *pc_cli_path_below(const char *abs, const char *root) {
  size_t rl = strlen(root);
  if (rl == 1 && root[0] == '/') return abs[0] == '/' && abs[1] ? abs + 1 : NULL;
  if (strncmp(abs, root, rl) != 0 || abs[rl] != '/' || !abs[rl + 1]) return NULL;
  return abs + rl + 1;
}

void pc_cli_path_common(char *a, const char *b) {
  while (strcmp(a, "/") != 0) {
    size_t al = strlen(a);
    if (!strcmp(a, b) || (!strncmp(a, b, al) && b[al] == '/')) return;
    pc_cli_path_parent(a);
  }
}

char *pc_cli_path_object_id(const char *abs, const char *root) {
  const char *rest = pc_cli_path_below(abs, root);
  const char *s = rest ? rest : abs;
  size_t len = strlen(s);
  char *out = malloc(3 * len + 1);
  if (!out) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    const unsigned char b = (unsigned char)s[i];
    size_t seq = pc_cli_utf8_seq(s + i);
    int escape = b == '%' || b < 0x20 || b == 0x7f || seq == 0;
    if (b == '_') {
      const int prev = i > 0 && (s[i - 1] == '_' || s[i - 1] == '/');
      const int next = s[i + 1] == '_' || s[i + 1] == '/';
      escape = prev || next;
    }
    if (b == '/') {
      out[n++] = '_';
      out[n++] = '_';
      i++;
    } else if (escape) {
      snprintf(out + n, 4, "%%%02X", b);
      n += 3;
      i++;
    } else {
      memcpy(out + n, s + i, seq);
      n += seq;
      i += seq;
    }
  }
  out[n] = '\0';
  return out;
}
