#include "pd_kserve_param.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pd_kfail(char *msg, size_t cap, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (cap) vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
  return code;
}

int pd_kparam_int(const Inference__InferParameter *p, long long *v) {
  if (!p) return -1;
  switch (p->parameter_choice_case) {
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
    *v = p->int64_param;
    return 0;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
    if (p->uint64_param > (uint64_t)LLONG_MAX) return -1;
    *v = (long long)p->uint64_param;
    return 0;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM:
    if (!(p->double_param >= -9e18 && p->double_param <= 9e18)) return -1;
    if ((double)(long long)p->double_param != p->double_param) return -1;
    *v = (long long)p->double_param;
    return 0;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: {
    if (!p->string_param || !*p->string_param) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(p->string_param, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
  }
  default:
    return -1;
  }
}

int pd_kparam_double(const Inference__InferParameter *p, double *v) {
  if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM) {
    *v = p->double_param;
    return isfinite(*v) ? 0 : -1;
  }
  if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM &&
      p->string_param && *p->string_param) {
    char *end;
    errno = 0;
    *v = strtod(p->string_param, &end);
    return errno || *end || !isfinite(*v) ? -1 : 0;
  }
  long long x;
  if (pd_kparam_int(p, &x) != 0) return -1;
  *v = (double)x;
  return 0;
}

int pd_kparam_bool(const Inference__InferParameter *p, int *v) {
  if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM) {
    *v = p->bool_param ? 1 : 0;
    return 0;
  }
  if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM &&
      p->string_param && (!strcmp(p->string_param, "true") || !strcmp(p->string_param, "false"))) {
    *v = !strcmp(p->string_param, "true");
    return 0;
  }
  long long x;
  if (pd_kparam_int(p, &x) == 0 && (x == 0 || x == 1)) {
    *v = (int)x;
    return 0;
  }
  return -1;
}

void pd_kparam_text(const Inference__InferParameter *p, char *buf, size_t cap) {
  switch (p ? p->parameter_choice_case : 0) {
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
    snprintf(buf, cap, "%s", p->bool_param ? "true" : "false");
    break;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
    snprintf(buf, cap, "%lld", (long long)p->int64_param);
    break;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
    snprintf(buf, cap, "%llu", (unsigned long long)p->uint64_param);
    break;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM:
    snprintf(buf, cap, "%g", p->double_param);
    break;
  case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
    snprintf(buf, cap, "\"%.40s\"", p->string_param ? p->string_param : "");
    break;
  default:
    snprintf(buf, cap, "(no value)");
  }
}

uint32_t pd_kle32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int pd_khas_typed_contents(const Inference__InferTensorContents *c) {
  return c &&
         (c->n_bool_contents || c->n_int_contents || c->n_int64_contents || c->n_uint_contents ||
          c->n_uint64_contents || c->n_fp32_contents || c->n_fp64_contents || c->n_bytes_contents);
}

int pd_kpack(const ProtobufCMessage *m, uint8_t **out, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return 8;
  protobuf_c_message_pack(m, buf);
  *out = buf;
  *len = n;
  return 0;
}
