/* pd_error: the one error value every planktond module returns.
 * Functions return 0 on success or a negative PD_E* code, and fill a
 * caller-owned pd_error with a message that names the thing (file, layer,
 * field, limit) and the value. Nothing below main() prints. */
#ifndef PD_ERROR_H
#define PD_ERROR_H

#include <stddef.h>

enum {
  PD_OK = 0,
  PD_EINVAL = -1,    /* bad argument or malformed input */
  PD_ENOMEM = -2,    /* allocation failed */
  PD_EIO = -3,       /* file could not be read */
  PD_ELIMIT = -4,    /* input exceeds a configured limit */
  PD_EFORMAT = -5,   /* file is not in the expected format (corrupt, truncated) */
  PD_EUNSUPP = -6,   /* valid but unsupported (e.g. an unknown image type) */
  PD_EINTERNAL = -7, /* a bug or a backend/device failure */
  PD_EDEVICE = -8,   /* a sticky device error: the plan is out of service for good */
};

typedef struct pd_error {
  int code;
  char msg[512];
} pd_error;

/* Sets err (if non-NULL) and returns code, so callers can `return pd_error_set(...)`. */
int pd_error_set(pd_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "<prefix>: " (for adding context on the way up). */
int pd_error_prefix(pd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *pd_error_code_name(int code);

/* Evaluates expr (a call returning PD_OK or a negative PD_E* code) and
 * returns its code from the enclosing function when it is not PD_OK. */
#define PD_TRY(expr)                                                                               \
  do {                                                                                             \
    int pd_try_rc_ = (expr);                                                                       \
    if (pd_try_rc_ != PD_OK) return pd_try_rc_;                                                    \
  } while (0)

#endif
