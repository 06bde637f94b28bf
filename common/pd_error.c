#include "pd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int pd_error_set(pd_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

int pd_error_prefix(pd_error *err, const char *fmt, ...) {
  if (!err) return PD_EINVAL;
  char prefix[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[sizeof err->msg];
  memcpy(old, err->msg, sizeof old);
  int n = snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
  if (n < 0) memcpy(err->msg, old, sizeof old);
  return err->code;
}

const char *pd_error_code_name(int code) {
  switch (code) {
  case PD_OK:
    return "ok";
  case PD_EINVAL:
    return "invalid";
  case PD_ENOMEM:
    return "out of memory";
  case PD_EIO:
    return "i/o error";
  case PD_ELIMIT:
    return "limit exceeded";
  case PD_EFORMAT:
    return "bad format";
  case PD_EUNSUPP:
    return "unsupported";
  case PD_EINTERNAL:
    return "internal error";
  case PD_EDEVICE:
    return "device error";
  default:
    return "unknown error";
  }
}
