#include "pd_kserve_infer.h"
#include "pd_kserve_param.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* gRPC status codes used here (google.rpc.Code) */
enum { ST_OK = 0, ST_INVALID_ARGUMENT = 3, ST_RESOURCE_EXHAUSTED = 8, ST_INTERNAL = 13 };

/* the largest side of a raw crop the protocol layer lets through (the
 * pipeline applies the configured image limits after) */
#define PD_KINFER_MAX_SIDE 65535

static int parse_request_params(const Inference__ModelInferRequest *req, pd_kinfer_request *out,
                                char *msg, size_t cap) {
  for (size_t i = 0; i < req->n_parameters; i++) {
    const Inference__ModelInferRequest__ParametersEntry *e = req->parameters[i];
    if (!e || !e->key) continue;
    long long v;
    if (strcmp(e->key, "tta") == 0) {
      if (pd_kparam_int(e->value, &v) != 0 || v < 0 || v > 1024)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "parameter \"tta\": want an integer from 0 (the model's default) to 1024");
      out->tta = (long)v;
    } else if (strcmp(e->key, "timeout") == 0) {
      if (pd_kparam_int(e->value, &v) != 0 || v < 0)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "parameter \"timeout\": want a whole number of microseconds >= 0");
      out->timeout_us = (uint64_t)v;
    }
    /* other parameters (priority, sequence ids, binary_data_output, a
     * client's own) are not ours to refuse */
  }
  return ST_OK;
}

static int parse_outputs(const Inference__ModelInferRequest *req, int n_classes,
                         pd_kinfer_request *out, char *msg, size_t cap) {
  if (req->n_outputs == 0) {
    out->want_probs = 1;
    return ST_OK;
  }
  for (size_t i = 0; i < req->n_outputs; i++) {
    const Inference__ModelInferRequest__InferRequestedOutputTensor *o = req->outputs[i];
    const char *name = o && o->name ? o->name : "";
    if (strcmp(name, PD_KINFER_OUTPUT) != 0)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "unknown output \"%.64s\": this model answers " PD_KINFER_OUTPUT, name);
    if (out->want_probs)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "output " PD_KINFER_OUTPUT " is requested more than once");
    out->want_probs = 1;
    for (size_t j = 0; j < o->n_parameters; j++) {
      const Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry *e =
          o->parameters[j];
      if (!e || !e->key) continue;
      if (strcmp(e->key, "classification") == 0 || strcmp(e->key, "class_count") == 0) {
        long long k;
        if (pd_kparam_int(e->value, &k) != 0 || k < 0)
          return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                          "output " PD_KINFER_OUTPUT " parameter \"%s\": want a class count >= 0",
                          e->key);
        out->class_count = (int)(k > n_classes ? n_classes : k);
      } else if (strcmp(e->key, "binary_data") == 0) {
        int b;
        if (pd_kparam_bool(e->value, &b) != 0)
          return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                          "output " PD_KINFER_OUTPUT
                          " parameter \"binary_data\": want true or false");
        out->probs_binary = b;
      }
    }
  }
  return ST_OK;
}

static int parse_bytes(const Inference__ModelInferRequest__InferInputTensor *in,
                       const ProtobufCBinaryData *raw, int n, pd_kinfer_request *out, char *msg,
                       size_t cap) {
  if (raw) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
      if (raw->len - off < 4)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input " PD_KINFER_INPUT " element %d: the raw contents end before its "
                        "4-byte length (%zu bytes for %d elements)",
                        i, raw->len, n);
      uint32_t len = pd_kle32(raw->data + off);
      off += 4;
      if (len > raw->len - off)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input " PD_KINFER_INPUT " element %d: length %u runs past the end of the "
                        "raw contents (%zu bytes left)",
                        i, len, raw->len - off);
      if (len == 0)
        return pd_kfail(
            msg, cap, ST_INVALID_ARGUMENT,
            "input " PD_KINFER_INPUT " element %d is empty (want PNG, JPEG or TIFF bytes)", i);
      out->crops[i].data = raw->data + off;
      out->crops[i].len = len;
      off += len;
    }
    if (off != raw->len)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input " PD_KINFER_INPUT ": %zu bytes of raw contents after its %d elements",
                      raw->len - off, n);
    return ST_OK;
  }
  const Inference__InferTensorContents *c = in->contents;
  size_t have = c ? c->n_bytes_contents : 0;
  if (have != (size_t)n)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT ": shape says %d elements, bytes_contents has %zu", n,
                    have);
  for (int i = 0; i < n; i++) {
    if (c->bytes_contents[i].len == 0)
      return pd_kfail(
          msg, cap, ST_INVALID_ARGUMENT,
          "input " PD_KINFER_INPUT " element %d is empty (want PNG, JPEG or TIFF bytes)", i);
    out->crops[i].data = c->bytes_contents[i].data;
    out->crops[i].len = c->bytes_contents[i].len;
  }
  return ST_OK;
}

static int parse_uint8(const Inference__ModelInferRequest__InferInputTensor *in,
                       const ProtobufCBinaryData *raw, int n, int h, int w, pd_kinfer_request *out,
                       char *msg, size_t cap) {
  size_t one = (size_t)h * (size_t)w;
  size_t total = one * (size_t)n; /* n <= max_crops, h, w <= 65535: no overflow */
  const uint8_t *px;
  if (raw) {
    if (raw->len != total)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input " PD_KINFER_INPUT
                      ": UINT8 [%d,%d,%d] needs %zu bytes, the raw contents "
                      "have %zu",
                      n, h, w, total, raw->len);
    px = raw->data;
  } else {
    const Inference__InferTensorContents *c = in->contents;
    size_t have = c ? c->n_uint_contents : 0;
    if (have != total)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input " PD_KINFER_INPUT ": UINT8 [%d,%d,%d] needs %zu values, uint_contents "
                      "has %zu",
                      n, h, w, total, have);
    out->owned = malloc(total ? total : 1);
    if (!out->owned)
      return pd_kfail(msg, cap, ST_RESOURCE_EXHAUSTED, "out of memory for %zu pixels", total);
    for (size_t i = 0; i < total; i++) {
      if (c->uint_contents[i] > 255)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input " PD_KINFER_INPUT " element %zu: pixel %zu is %u (UINT8 is 0..255)",
                        i / one, i % one, c->uint_contents[i]);
      out->owned[i] = (uint8_t)c->uint_contents[i];
    }
    px = out->owned;
  }
  for (int i = 0; i < n; i++) {
    out->crops[i].gray8 = 1;
    out->crops[i].data = px + one * (size_t)i;
    out->crops[i].len = one;
    out->crops[i].width = w;
    out->crops[i].height = h;
  }
  return ST_OK;
}

static void shape_text(const int64_t *s, size_t n, char *buf, size_t cap) {
  size_t used = 0;
  used += (size_t)snprintf(buf, cap, "[");
  for (size_t i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)s[i]);
  if (used < cap) snprintf(buf + used, cap - used, "]");
}

int pd_kinfer_parse(const Inference__ModelInferRequest *req, int max_crops, int n_classes,
                    pd_kinfer_request *out, char *msg, size_t cap) {
  memset(out, 0, sizeof *out);
  out->tta = -1;
  if (cap) msg[0] = 0;
  int rc = parse_request_params(req, out, msg, cap);
  if (rc) return rc;
  rc = parse_outputs(req, n_classes, out, msg, cap);
  if (rc) return rc;
  if (req->n_inputs != 1)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "%zu inputs: this model takes one, " PD_KINFER_INPUT
                    " (BYTES [N] of PNG/JPEG/TIFF or UINT8 [N,H,W] of gray pixels)",
                    req->n_inputs);
  const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[0];
  const char *name = in && in->name ? in->name : "";
  if (strcmp(name, PD_KINFER_INPUT) != 0)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "unknown input \"%.64s\": this model takes " PD_KINFER_INPUT, name);
  if (req->n_raw_input_contents > 1)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "%zu raw_input_contents for 1 input (want one per input)",
                    req->n_raw_input_contents);
  const ProtobufCBinaryData *raw = req->n_raw_input_contents ? &req->raw_input_contents[0] : NULL;
  if (raw && pd_khas_typed_contents(in->contents))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT " has both raw_input_contents and contents; send one");
  char shp[96];
  shape_text(in->shape, in->n_shape, shp, sizeof shp);
  const char *dt = in->datatype ? in->datatype : "";
  int bytes = strcmp(dt, "BYTES") == 0;
  int u8 = strcmp(dt, "UINT8") == 0;
  if (!bytes && !u8)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT
                    " has datatype \"%.32s\": want BYTES (PNG/JPEG/TIFF) or UINT8 "
                    "(gray pixels)",
                    dt);
  if (bytes && !(in->n_shape == 1 || (in->n_shape == 2 && in->shape[1] == 1)))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT " BYTES shape %s: want [N] or [N,1]", shp);
  if (u8 && !(in->n_shape == 3 || (in->n_shape == 4 && in->shape[3] == 1)))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT " UINT8 shape %s: want [N,H,W] or [N,H,W,1]", shp);
  int64_t n = in->shape[0];
  if (n < 1 || n > max_crops)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KINFER_INPUT " shape %s: batch size %lld is outside 1..%d", shp,
                    (long long)n, max_crops);
  int h = 0, w = 0;
  if (u8) {
    if (in->shape[1] < 1 || in->shape[1] > PD_KINFER_MAX_SIDE || in->shape[2] < 1 ||
        in->shape[2] > PD_KINFER_MAX_SIDE)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input " PD_KINFER_INPUT " UINT8 shape %s: height and width must be 1..%d",
                      shp, PD_KINFER_MAX_SIDE);
    h = (int)in->shape[1];
    w = (int)in->shape[2];
  }
  out->n = (int)n;
  out->crops = calloc((size_t)n, sizeof *out->crops);
  if (!out->crops)
    return pd_kfail(msg, cap, ST_RESOURCE_EXHAUSTED, "out of memory for %d crops", out->n);
  rc = bytes ? parse_bytes(in, raw, out->n, out, msg, cap)
             : parse_uint8(in, raw, out->n, h, w, out, msg, cap);
  return rc;
}

void pd_kinfer_request_free(pd_kinfer_request *r) {
  free(r->crops);
  free(r->owned);
  r->crops = NULL;
  r->owned = NULL;
  r->n = 0;
}

int pd_kinfer_class_string(float prob, int index, const char *label, char *buf, size_t cap) {
  int n = label && *label ? snprintf(buf, cap, "%f:%d:%s", (double)prob, index, label)
                          : snprintf(buf, cap, "%f:%d", (double)prob, index);
  if (n < 0) n = 0;
  if ((size_t)n >= cap) n = cap ? (int)cap - 1 : 0;
  return n;
}

int pd_kinfer_top_k(const float *probs, int n, int k, int *idx) {
  /* k is small (a client's class count): selection by repeated scans */
  if (k > n) k = n;
  if (k < 0) k = 0;
  for (int j = 0; j < k; j++) {
    int best = -1;
    for (int i = 0; i < n; i++) {
      int taken = 0;
      for (int t = 0; t < j; t++)
        if (idx[t] == i) taken = 1;
      if (taken) continue;
      if (best < 0 || probs[i] > probs[best]) best = i;
    }
    idx[j] = best;
  }
  return k;
}

/* s as a JSON string at *at (room checked by the caller's estimate). */
static char *json_string_at(char *at, const char *s) {
  *at++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      *at++ = '\\';
      *at++ = (char)*p;
    } else if (*p < 0x20) {
      at += sprintf(at, "\\u%04x", *p);
    } else {
      *at++ = (char)*p;
    }
  }
  *at++ = '"';
  return at;
}

char *pd_kinfer_json_map(int n, const char *const *keys, const float *numbers,
                         const char *const *strings) {
  size_t cap = 3;
  for (int i = 0; i < n; i++)
    cap += 6 * strlen(keys[i]) + 4 + (numbers ? 32 : 6 * strlen(strings[i]) + 2);
  char *s = malloc(cap), *at = s;
  if (!s) return NULL;
  *at++ = '{';
  for (int i = 0; i < n; i++) {
    if (i) *at++ = ',';
    at = json_string_at(at, keys[i]);
    *at++ = ':';
    if (numbers) { /* the shortest that reads back as the same float */
      int prec = 6;
      while (prec < 9 && snprintf(at, 24, "%.*g", prec, (double)numbers[i]) > 0 &&
             strtof(at, NULL) != numbers[i])
        prec++;
      at += sprintf(at, "%.*g", prec, (double)numbers[i]);
    } else
      at = json_string_at(at, strings[i]);
  }
  *at++ = '}';
  *at = '\0';
  return s;
}

char *pd_kinfer_unclassified(const pd_kinfer_request *rq, int n_classes, const float *probs,
                             int *oom) {
  *oom = 0;
  if (!rq->thresholds || rq->n <= 0) return NULL;
  char *s = malloc((size_t)rq->n * 2);
  if (!s) {
    *oom = 1;
    return NULL;
  }
  for (int i = 0; i < rq->n; i++) {
    const float *p = probs + (size_t)i * (size_t)n_classes;
    int top = 0;
    pd_kinfer_top_k(p, n_classes, 1, &top);
    s[(size_t)i * 2] = p[top] < rq->thresholds[top] ? '1' : '0';
    s[(size_t)i * 2 + 1] = i + 1 < rq->n ? ',' : '\0';
  }
  return s;
}

/* The classification strings of every crop, BYTES-framed (4-byte length,
 * then the string), into a malloc'ed buffer. */
static int class_strings(const pd_kinfer_request *rq, int n_classes, const float *probs,
                         const char *const *labels, uint8_t **out, size_t *len) {
  int k = rq->class_count;
  size_t cap = (size_t)rq->n * (size_t)k * 80 + 1;
  if (labels)
    for (int c = 0; c < n_classes; c++)
      cap += (size_t)rq->n * (labels[c] ? strlen(labels[c]) : 0);
  uint8_t *buf = malloc(cap);
  int *idx = malloc((size_t)k * sizeof *idx);
  if (!buf || !idx) {
    free(buf);
    free(idx);
    return ST_RESOURCE_EXHAUSTED;
  }
  size_t used = 0;
  for (int i = 0; i < rq->n; i++) {
    const float *p = probs + (size_t)i * (size_t)n_classes;
    int got = pd_kinfer_top_k(p, n_classes, k, idx);
    for (int j = 0; j < got; j++) {
      const char *label = labels ? labels[idx[j]] : NULL;
      if (cap - used < 5) break; /* cannot happen with the estimate above */
      size_t room = cap - used - 4;
      int s = pd_kinfer_class_string(p[idx[j]], idx[j], label, (char *)buf + used + 4, room);
      buf[used] = (uint8_t)s;
      buf[used + 1] = (uint8_t)(s >> 8);
      buf[used + 2] = (uint8_t)(s >> 16);
      buf[used + 3] = (uint8_t)(s >> 24);
      used += 4 + (size_t)s;
    }
  }
  free(idx);
  *out = buf;
  *len = used;
  return ST_OK;
}

int pd_kinfer_pack_response(const pd_kinfer_request *rq, const char *model, const char *version,
                            const char *id, int n_classes, const float *probs,
                            const char *const *labels, int stream, uint8_t **out, size_t *len) {
  Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  Inference__ModelInferResponse__InferOutputTensor t =
      INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
  Inference__ModelInferResponse__InferOutputTensor *outs[1] = {&t};
  ProtobufCBinaryData raw = {0, NULL};
  int64_t shape[2];
  resp.model_name = (char *)(model ? model : "");
  resp.model_version = (char *)(version ? version : "");
  resp.id = (char *)(id ? id : "");
  Inference__InferParameter views = INFERENCE__INFER_PARAMETER__INIT;
  Inference__ModelInferResponse__ParametersEntry views_entry =
      INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
  Inference__InferParameter uncl = INFERENCE__INFER_PARAMETER__INIT;
  Inference__ModelInferResponse__ParametersEntry uncl_entry =
      INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
  Inference__ModelInferResponse__ParametersEntry *params[2];
  resp.parameters = params;
  if (rq->views > 0) {
    views.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    views.int64_param = rq->views;
    views_entry.key = (char *)PD_KINFER_VIEWS_PARAM;
    views_entry.value = &views;
    params[resp.n_parameters++] = &views_entry;
  }
  int oom;
  char *flags = pd_kinfer_unclassified(rq, n_classes, probs, &oom);
  if (oom) return ST_RESOURCE_EXHAUSTED;
  if (flags) {
    uncl.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    uncl.string_param = flags;
    uncl_entry.key = (char *)PD_KINFER_UNCLASSIFIED_PARAM;
    uncl_entry.value = &uncl;
    params[resp.n_parameters++] = &uncl_entry;
  }
  uint8_t *strings = NULL;
  if (rq->want_probs) {
    t.name = (char *)PD_KINFER_OUTPUT;
    shape[0] = rq->n;
    if (rq->class_count > 0) {
      t.datatype = (char *)"BYTES";
      shape[1] = rq->class_count;
      int rc = class_strings(rq, n_classes, probs, labels, &strings, &raw.len);
      if (rc) {
        free(flags);
        return rc;
      }
      raw.data = strings;
    } else {
      t.datatype = (char *)"FP32";
      shape[1] = n_classes;
      raw.data = (uint8_t *)probs;
      raw.len = (size_t)rq->n * (size_t)n_classes * sizeof(float);
    }
    t.n_shape = 2;
    t.shape = shape;
    resp.n_outputs = 1;
    resp.outputs = outs;
    resp.n_raw_output_contents = 1;
    resp.raw_output_contents = &raw;
  }
  int rc;
  if (stream) {
    Inference__ModelStreamInferResponse s = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    s.infer_response = &resp;
    rc = pd_kpack(&s.base, out, len);
  } else {
    rc = pd_kpack(&resp.base, out, len);
  }
  free(strings);
  free(flags);
  return rc;
}

int pd_kinfer_pack_stream_error(const char *message, uint8_t **out, size_t *len) {
  Inference__ModelStreamInferResponse s = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
  s.error_message = (char *)(message && *message ? message : "error");
  return pd_kpack(&s.base, out, len);
}
