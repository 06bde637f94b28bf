/* pc_cli_args: option values and the error value (see pc_cli_args.h). */
#include "pc_cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pc_cli_fail(pc_cli_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int pc_cli_parse_int(const char *name, const char *s, long lo, long hi, long *out,
                     pc_cli_error *err) {
  char *end = NULL;
  errno = 0;
  long v = s && *s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || errno)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: '%s' is not an integer", name, s ? s : "");
  if (v < lo || v > hi)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: %ld is out of range %ld..%ld", name, v, lo, hi);
  *out = v;
  return PC_CLI_EXIT_OK;
}

int pc_cli_parse_seconds(const char *name, const char *s, int *ms, pc_cli_error *err) {
  char *end = NULL;
  errno = 0;
  double v = s && *s ? strtod(s, &end) : 0;
  if (!s || !*s || *end || errno || !isfinite(v))
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: '%s' is not a number of seconds", name,
                       s ? s : "");
  if (v <= 0 || v > 86400)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: %s s is out of range (0, 86400]", name, s);
  *ms = v * 1000 < 1 ? 1 : (int)(v * 1000);
  return PC_CLI_EXIT_OK;
}

int pc_cli_parse_bytes(const char *name, const char *s, uint64_t *out, pc_cli_error *err) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = s && *s && *s != '-' ? strtoull(s, &end, 10) : 0;
  if (!s || !*s || *s == '-' || errno || end == s)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: '%s' is not a byte count", name, s ? s : "");
  unsigned shift = 0;
  if (*end == 'K' || *end == 'k')
    shift = 10;
  else if (*end == 'M' || *end == 'm')
    shift = 20;
  else if (*end == 'G' || *end == 'g')
    shift = 30;
  if (shift) end++;
  if (*end || v == 0 || v > (1ull << 40) >> shift)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "%s: '%s' is not a byte count in 1..1T", name, s);
  *out = (uint64_t)v << shift;
  return PC_CLI_EXIT_OK;
}

void pc_cli_try_help(const char *prog, const char *cmd) {
  fprintf(stderr, "%s: try '%s%s%s --help'\n", prog, prog, cmd ? " " : "", cmd ? cmd : "");
}

int pc_cli_bad_option(const char *prog, const char *cmd, int c, char *const *argv) {
  const char *arg = optind > 0 ? argv[optind - 1] : "";
  const char *where = cmd ? cmd : "", *colon = cmd ? ": " : "";
  if (c == ':') {
    if (optopt && strncmp(arg, "--", 2) != 0)
      fprintf(stderr, "%s: %s%soption '-%c' needs a value\n", prog, where, colon, optopt);
    else
      fprintf(stderr, "%s: %s%soption '%s' needs a value\n", prog, where, colon, arg);
  } else if (optopt && strncmp(arg, "--", 2) != 0) {
    fprintf(stderr, "%s: %s%sunknown option '-%c'\n", prog, where, colon, optopt);
  } else {
    fprintf(stderr, "%s: %s%sunknown option '%s'\n", prog, where, colon, arg);
  }
  pc_cli_try_help(prog, cmd);
  return PC_CLI_EXIT_USAGE;
}
