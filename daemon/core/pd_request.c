#include "pd_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "pd_clock.h" /* pd_now_ns, defined in common/pd_clock.c */
#include "pd_served.h"

const char *pd_status_name(int code) {
  static const char *const names[PD_STATUS_COUNT] = {"OK",
                                                     "CANCELLED",
                                                     "UNKNOWN",
                                                     "INVALID_ARGUMENT",
                                                     "DEADLINE_EXCEEDED",
                                                     "NOT_FOUND",
                                                     "ALREADY_EXISTS",
                                                     "PERMISSION_DENIED",
                                                     "RESOURCE_EXHAUSTED",
                                                     "FAILED_PRECONDITION",
                                                     "ABORTED",
                                                     "OUT_OF_RANGE",
                                                     "UNIMPLEMENTED",
                                                     "INTERNAL",
                                                     "UNAVAILABLE",
                                                     "DATA_LOSS",
                                                     "UNAUTHENTICATED"};
  return code >= 0 && code < PD_STATUS_COUNT ? names[code] : "UNKNOWN";
}

void pd_request_fail(pd_request *req, pd_status status, const char *fmt, ...) {
  req->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(req->message, sizeof req->message, fmt, ap);
  va_end(ap);
}

void pd_request_dispose(pd_request *req) {
  free(req->input);
  req->input = NULL;
  free(req->probs);
  req->probs = NULL;
  free(req->rows);
  req->rows = NULL;
  pd_served_unref(req->served);
  req->served = NULL;
}
