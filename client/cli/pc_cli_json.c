/* pc_cli_json: JSON strings and numbers (see pc_cli_json.h). */
#include "pc_cli_json.h"

#include <math.h>
#include <stdbool.h>

#include "pc_cli_utf8.h"

/* One string literal; percent: invalid bytes and '%' as %XX instead of U+FFFD. */
static void string(FILE *f, const char *s, bool percent) {
  fputc('"', f);
  const char *p = s ? s : "";
  while (*p) {
    const unsigned char b = (unsigned char)*p;
    size_t n = pc_cli_utf8_seq(p);
    if (n == 0 || (percent && b == '%')) {
      if (percent)
        fprintf(f, "%%%02X", b);
      else
        fputs("\\ufffd", f);
      p++;
      continue;
    }
    switch (b) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (b < 0x20 || b == 0x7f)
        fprintf(f, "\\u%04x", b);
      else
        fwrite(p, 1, n, f);
    }
    p += n;
  }
  fputc('"', f);
}

void pc_cli_json_string(FILE *f, const char *s) {
  string(f, s, false);
}

void pc_cli_json_bytes(FILE *f, const char *s) {
  string(f, s, true);
}

void pc_cli_json_double(FILE *f, double v) {
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  else
    fputs("null", f);
}

void pc_cli_json_float(FILE *f, float v) {
  if (isfinite(v))
    fprintf(f, "%.9g", (double)v);
  else
    fputs("null", f);
}
