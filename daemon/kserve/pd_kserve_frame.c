#include "pd_kserve_frame.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pd_kserve_infer.h"
#include "pd_kserve_param.h"

/* gRPC status codes used here (google.rpc.Code) */
enum { ST_OK = 0, ST_INVALID_ARGUMENT = 3, ST_RESOURCE_EXHAUSTED = 8 };

/* the largest side of a raw frame the protocol layer lets through (the
 * core applies limits.max_frame_pixels after, naming the sizes) */
#define PD_KFRAME_MAX_SIDE (1 << 20)

int pd_kframe_base_name(const char *name, char *base, size_t cap) {
  const size_t n = name ? strlen(name) : 0, s = strlen(PD_KFRAME_SUFFIX);
  if (n <= s || strcmp(name + n - s, PD_KFRAME_SUFFIX) != 0 || n - s >= cap) return 0;
  memcpy(base, name, n - s);
  base[n - s] = 0;
  return 1;
}

void pd_kframe_not_found(const char *name, const char *base, char *msg, size_t cap) {
  char why[400];
  snprintf(why, sizeof why, "%s", msg);
  snprintf(msg, cap, "'%.80s' (the frames variant of '%.64s'): %s", name, base, why);
}

/* ---- parameters ---- */

/* An integer parameter in lo..hi, or INVALID_ARGUMENT naming it and its value. */
static int int_in(const Inference__InferParameter *p, const char *key, long long lo, long long hi,
                  long long *v, char *msg, size_t cap) {
  if (pd_kparam_int(p, v) == 0 && *v >= lo && *v <= hi) return ST_OK;
  char t[64];
  pd_kparam_text(p, t, sizeof t);
  return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                  "parameter \"%s\" is %s: want an integer %lld..%lld", key, t, lo, hi);
}

static int parse_params(const Inference__ModelInferRequest *req, pd_kframe_request *out,
                        pd_frame_job *job, int *sig_bits, char *msg, size_t cap) {
  pd_frame_options *o = &job->opt;
  for (size_t i = 0; i < req->n_parameters; i++) {
    const Inference__ModelInferRequest__ParametersEntry *e = req->parameters[i];
    if (!e || !e->key) continue;
    const Inference__InferParameter *p = e->value;
    const char *k = e->key;
    long long v = 0;
    int rc = ST_OK;
    char t[64];
    if (!strcmp(k, "threshold")) {
      double d;
      if (pd_kparam_double(p, &d) != 0 || !(d > 0 && d < 1)) {
        pd_kparam_text(p, t, sizeof t);
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "parameter \"threshold\" is %s: want a number between 0 and 1 (exclusive; "
                        "dark = below background x (1 - threshold))",
                        t);
      }
      o->threshold = d;
    } else if (!strcmp(k, "min_area")) {
      rc = int_in(p, k, 1, LONG_MAX, &v, msg, cap);
      o->min_area = (long)v;
    } else if (!strcmp(k, "max_area")) {
      rc = int_in(p, k, 1, LONG_MAX, &v, msg, cap);
      o->max_area = (long)v;
    } else if (!strcmp(k, "padding")) {
      rc = int_in(p, k, 1, PD_SEGMENT_MAX_MARGIN, &v, msg, cap);
      o->padding = (int)v;
    } else if (!strcmp(k, "max_objects")) {
      rc = int_in(p, k, 1, PD_SEGMENT_MAX_OBJECTS, &v, msg, cap);
      o->max_objects = (int)v;
    } else if (!strcmp(k, "tta")) {
      rc = int_in(p, k, 0, 1024, &v, msg, cap);
      job->tta = (int)v;
    } else if (!strcmp(k, "top_k")) {
      rc = int_in(p, k, 0, INT_MAX, &v, msg, cap);
      if (v > 0) out->class_count = (int)v;
    } else if (!strcmp(k, "timeout")) {
      rc = int_in(p, k, 0, LLONG_MAX / 1000, &v, msg, cap);
      out->timeout_us = (uint64_t)v;
    } else if (!strcmp(k, "significant_bits")) {
      rc = int_in(p, k, 1, 16, &v, msg, cap);
      *sig_bits = (int)v;
    } else if (!strcmp(k, "keep_edge")) {
      int b;
      if (pd_kparam_bool(p, &b) != 0) {
        pd_kparam_text(p, t, sizeof t);
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "parameter \"keep_edge\" is %s: want true or false", t);
      }
      o->keep_edge = b;
    } else if (!strcmp(k, "background")) {
      const char *s =
          p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM
              ? p->string_param
              : NULL;
      if (s && !strcmp(s, "column_median"))
        o->background = PD_SEGMENT_BG_COLUMN_MEDIAN;
      else if (s && !strcmp(s, "morph"))
        o->background = PD_SEGMENT_BG_MORPH;
      else {
        pd_kparam_text(p, t, sizeof t);
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "parameter \"background\" is %s: want \"column_median\" or \"morph\"", t);
      }
    }
    /* other parameters (priority, binary_data_output, a client's own) are
     * not ours to refuse */
    if (rc != ST_OK) return rc;
  }
  return ST_OK;
}

static int parse_outputs(const Inference__ModelInferRequest *req, int n_classes,
                         pd_kframe_request *out, char *msg, size_t cap) {
  static const char *const names[PD_KFRAME_OUTS] = {PD_KFRAME_BOXES, PD_KFRAME_AREAS,
                                                    PD_KFRAME_PROBS};
  if (req->n_outputs == 0) {
    for (int i = 0; i < PD_KFRAME_OUTS; i++)
      out->want[i] = 1;
  }
  for (size_t i = 0; i < req->n_outputs; i++) {
    const Inference__ModelInferRequest__InferRequestedOutputTensor *o = req->outputs[i];
    const char *name = o && o->name ? o->name : "";
    int w = -1;
    for (int j = 0; j < PD_KFRAME_OUTS; j++)
      if (!strcmp(name, names[j])) w = j;
    if (w < 0)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "unknown output \"%.64s\": the frames model answers " PD_KFRAME_BOXES
                      ", " PD_KFRAME_AREAS " and " PD_KFRAME_PROBS,
                      name);
    if (out->want[w])
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "output %s is requested more than once", name);
    out->want[w] = 1;
    for (size_t j = 0; j < o->n_parameters; j++) {
      const Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry *e =
          o->parameters[j];
      if (!e || !e->key) continue;
      if (!strcmp(e->key, "classification") || !strcmp(e->key, "class_count")) {
        long long k;
        if (w != PD_KFRAME_OUT_PROBS || pd_kparam_int(e->value, &k) != 0 || k < 0)
          return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                          "output %s parameter \"%s\": want a class count >= 0 on " PD_KFRAME_PROBS,
                          name, e->key);
        if (k > 0) out->class_count = (int)k;
      } else if (!strcmp(e->key, "binary_data")) {
        int b;
        if (pd_kparam_bool(e->value, &b) != 0)
          return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                          "output %s parameter \"binary_data\": want true or false", name);
        out->binary[w] = b;
      }
    }
  }
  if (out->class_count > n_classes) out->class_count = n_classes;
  return ST_OK;
}

/* ---- inputs ---- */

static void shape_text(const int64_t *s, size_t n, char *buf, size_t cap) {
  size_t used = (size_t)snprintf(buf, cap, "[");
  for (size_t i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)s[i]);
  if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* One image input (FRAME or BACKGROUND) into im; raw is its raw contents
 * or NULL (then its typed contents). */
static int parse_image(const Inference__ModelInferRequest__InferInputTensor *in,
                       const ProtobufCBinaryData *raw, int sig_bits, pd_frame_image *im,
                       uint8_t **owned, char *msg, size_t cap) {
  const char *name = in->name;
  char shp[96];
  shape_text(in->shape, in->n_shape, shp, sizeof shp);
  const char *dt = in->datatype ? in->datatype : "";
  const int bytes = !strcmp(dt, "BYTES"), u8 = !strcmp(dt, "UINT8"), u16 = !strcmp(dt, "UINT16");
  memset(im, 0, sizeof *im);
  if (!bytes && !u8 && !u16)
    return pd_kfail(
        msg, cap, ST_INVALID_ARGUMENT,
        "input %s has datatype \"%.32s\": want BYTES [1] (PNG/JPEG/TIFF), UINT8 [H,W] or "
        "UINT16 [H,W] (gray pixels)",
        name, dt);
  if (bytes) {
    if (!((in->n_shape == 1 && in->shape[0] == 1) ||
          (in->n_shape == 2 && in->shape[0] == 1 && in->shape[1] == 1)))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input %s BYTES shape %s: want [1] (one frame per request)", name, shp);
    im->format = PD_FORMAT_AUTO;
    im->significant_bits = sig_bits;
    if (raw) {
      if (raw->len < 4 || pd_kle32(raw->data) != raw->len - 4)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input %s: raw contents of %zu bytes are not one element (a 4-byte "
                        "little-endian length, then that many bytes)",
                        name, raw->len);
      im->data = raw->data + 4;
      im->len = raw->len - 4;
    } else {
      const Inference__InferTensorContents *c = in->contents;
      if (!c || c->n_bytes_contents != 1)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input %s: shape [1] but bytes_contents has %zu elements", name,
                        c ? c->n_bytes_contents : 0);
      im->data = c->bytes_contents[0].data;
      im->len = c->bytes_contents[0].len;
    }
    if (im->len == 0)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input %s is empty (want PNG, JPEG or TIFF bytes)", name);
    return ST_OK;
  }
  if (!(in->n_shape == 2 || (in->n_shape == 3 && in->shape[2] == 1)))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "input %s %s shape %s: want [H,W] or [H,W,1]",
                    name, dt, shp);
  if (in->shape[0] < 0 || in->shape[0] > PD_KFRAME_MAX_SIDE || in->shape[1] < 0 ||
      in->shape[1] > PD_KFRAME_MAX_SIDE)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input %s %s shape %s: height and width must be 0..%d", name, dt, shp,
                    PD_KFRAME_MAX_SIDE);
  if (u8 && sig_bits > 8)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "parameter \"significant_bits\" is %d, but input %s is UINT8 (8-bit samples)",
                    sig_bits, name);
  im->format = u8 ? PD_FORMAT_RAW_GRAY8 : PD_FORMAT_RAW_GRAY16;
  im->height = (int)in->shape[0];
  im->width = (int)in->shape[1];
  im->significant_bits = sig_bits;
  if (raw) { /* its size against height x width is the core's check, naming both */
    im->data = raw->data;
    im->len = raw->len;
    return ST_OK;
  }
  const Inference__InferTensorContents *c = in->contents;
  const size_t n = c ? c->n_uint_contents : 0, px = (size_t)im->width * (size_t)im->height;
  if (n != px)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input %s: %s %s needs %zu values, uint_contents "
                    "has %zu",
                    name, dt, shp, px, n);
  const unsigned max = u8 ? 255u : 65535u;
  *owned = malloc(n * (u8 ? 1 : 2) + 1);
  if (!*owned) return pd_kfail(msg, cap, ST_RESOURCE_EXHAUSTED, "out of memory for %zu pixels", n);
  for (size_t i = 0; i < n; i++) {
    const uint32_t v = c->uint_contents[i];
    if (v > max)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "input %s: pixel %zu is %u (%s is 0..%u)",
                      name, i, v, dt, max);
    if (u8) {
      (*owned)[i] = (uint8_t)v;
    } else { /* little endian, as raw contents are */
      (*owned)[2 * i] = (uint8_t)v;
      (*owned)[2 * i + 1] = (uint8_t)(v >> 8);
    }
  }
  im->data = *owned;
  im->len = n * (u8 ? 1 : 2);
  return ST_OK;
}

int pd_kframe_parse(const Inference__ModelInferRequest *req, int n_classes, pd_kframe_request *out,
                    pd_frame_job *job, char *msg, size_t cap) {
  memset(out, 0, sizeof *out);
  if (cap) msg[0] = 0;
  memset(&job->frame, 0, sizeof job->frame);
  memset(&job->background, 0, sizeof job->background);
  job->has_background = false;
  memset(&job->opt, 0, sizeof job->opt);
  job->opt.keep_edge = -1;
  job->opt.background = -1;
  job->tta = 0;
  int sig_bits = 0;
  int rc = parse_params(req, out, job, &sig_bits, msg, cap);
  if (rc) return rc;
  rc = parse_outputs(req, n_classes, out, msg, cap);
  if (rc) return rc;
  job->top_k = out->class_count > 0 ? out->class_count : 1;
  job->full_distribution = true;
  if (req->n_raw_input_contents && req->n_raw_input_contents != req->n_inputs)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "%zu raw_input_contents for %zu inputs (want one per input, or none)",
                    req->n_raw_input_contents, req->n_inputs);
  int have_frame = 0;
  for (size_t i = 0; i < req->n_inputs; i++) {
    const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[i];
    const char *name = in && in->name ? in->name : "";
    const int is_frame = !strcmp(name, PD_KFRAME_INPUT),
              is_bg = !strcmp(name, PD_KFRAME_BACKGROUND);
    if (!is_frame && !is_bg)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "unknown input \"%.64s\": the frames model takes " PD_KFRAME_INPUT
                      " and optionally " PD_KFRAME_BACKGROUND,
                      name);
    if ((is_frame && have_frame) || (is_bg && job->has_background))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "input %s is given more than once", name);
    const ProtobufCBinaryData *raw = req->n_raw_input_contents ? &req->raw_input_contents[i] : NULL;
    if (raw && pd_khas_typed_contents(in->contents))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input %s has both raw_input_contents and contents; send one", name);
    rc = parse_image(in, raw, sig_bits, is_frame ? &job->frame : &job->background,
                     &out->owned[is_frame ? 0 : 1], msg, cap);
    if (rc) return rc;
    if (is_frame)
      have_frame = 1;
    else
      job->has_background = true;
  }
  if (!have_frame)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "no input " PD_KFRAME_INPUT
                    ": send the frame as BYTES [1] (PNG/JPEG/TIFF), UINT8 [H,W] or UINT16 [H,W]");
  if (job->has_background && job->background.format != job->frame.format &&
      (job->frame.format != PD_FORMAT_AUTO) != (job->background.format != PD_FORMAT_AUTO))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "input " PD_KFRAME_BACKGROUND " is %s but " PD_KFRAME_INPUT
                    " is %s: send both encoded or both as pixels of one type",
                    job->background.format == PD_FORMAT_AUTO ? "encoded" : "pixels",
                    job->frame.format == PD_FORMAT_AUTO ? "encoded" : "pixels");
  return ST_OK;
}

void pd_kframe_request_free(pd_kframe_request *r) {
  free(r->owned[0]);
  free(r->owned[1]);
  r->owned[0] = r->owned[1] = NULL;
}

int pd_kframe_failed_object(const pd_frame_job *job) {
  const int n = job->objects ? job->seg.count : 0;
  for (int i = 0; i < n; i++)
    if (job->objects[i].status != PD_STATUS_OK || !job->objects[i].probs) return i;
  return -1;
}

/* ---- answers ---- */

/* One output tensor: its bytes as raw contents (BYTES: length-framed). */
typedef struct ktensor {
  const char *name, *datatype;
  int64_t shape[2];
  size_t n_shape;
  uint8_t *raw;
  size_t len;
  int which;
} ktensor;

#define N_PARAMS 13
typedef struct kanswer {
  ktensor t[PD_KFRAME_OUTS];
  int n;
  const char *keys[N_PARAMS];
  int64_t values[N_PARAMS];
  int n_params;
} kanswer;

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void answer_free(kanswer *a) {
  for (int i = 0; i < a->n; i++)
    free(a->t[i].raw);
}

static int answer_build(const pd_kframe_request *rq, const pd_frame_job *job, int n_classes,
                        const char *const *labels, kanswer *a) {
  memset(a, 0, sizeof *a);
  const int n = job->objects ? job->seg.count : 0;
  const pd_segment_stats *ss = &job->seg.stats;
  int views = 0;
  for (int i = 0; i < n; i++)
    if (views == 0 || job->objects[i].views < views) views = job->objects[i].views;
  /* the native FrameResponse's per-frame numbers; tta last, only with objects */
  const char *keys[N_PARAMS] = {"frame_width",
                                "frame_height",
                                "objects_found",
                                "dropped_small",
                                "dropped_large",
                                "dropped_edge",
                                "dropped_cap",
                                "absorbed",
                                "decode_us",
                                "segment_us",
                                "queue_us",
                                "compute_us",
                                "tta"};
  const int64_t vals[N_PARAMS] = {job->width,
                                  job->height,
                                  ss->found,
                                  ss->dropped_small,
                                  ss->dropped_large,
                                  ss->dropped_edge,
                                  ss->dropped_cap,
                                  ss->absorbed,
                                  (int64_t)(job->decode_ns / 1000),
                                  (int64_t)(job->segment_ns / 1000),
                                  (int64_t)(job->queue_ns / 1000),
                                  (int64_t)(job->compute_ns / 1000),
                                  views};
  for (int i = 0; i < N_PARAMS; i++) {
    if (i == N_PARAMS - 1 && views == 0) break;
    a->keys[a->n_params] = keys[i];
    a->values[a->n_params++] = vals[i];
  }
  if (rq->want[PD_KFRAME_OUT_BOXES]) {
    ktensor *t = &a->t[a->n++];
    *t = (ktensor){PD_KFRAME_BOXES, "INT32", {n, 4}, 2, NULL, (size_t)n * 16, PD_KFRAME_OUT_BOXES};
    t->raw = malloc(t->len + 1);
    if (!t->raw) return ST_RESOURCE_EXHAUSTED;
    for (int i = 0; i < n; i++) {
      const pd_segment_object *o = &job->seg.objects[i];
      const int32_t b[4] = {o->x, o->y, o->width, o->height};
      memcpy(t->raw + (size_t)i * 16, b, 16);
    }
  }
  if (rq->want[PD_KFRAME_OUT_AREAS]) {
    ktensor *t = &a->t[a->n++];
    *t = (ktensor){PD_KFRAME_AREAS, "INT32", {n, 0}, 1, NULL, (size_t)n * 4, PD_KFRAME_OUT_AREAS};
    t->raw = malloc(t->len + 1);
    if (!t->raw) return ST_RESOURCE_EXHAUSTED;
    for (int i = 0; i < n; i++) {
      const long ar = job->seg.objects[i].area;
      const int32_t v = ar > INT32_MAX ? INT32_MAX : (int32_t)ar;
      memcpy(t->raw + (size_t)i * 4, &v, 4);
    }
  }
  if (rq->want[PD_KFRAME_OUT_PROBS]) {
    ktensor *t = &a->t[a->n++];
    const int k = rq->class_count;
    *t = (ktensor){
        PD_KFRAME_PROBS,    k > 0 ? "BYTES" : "FP32", {n, k > 0 ? k : n_classes}, 2, NULL, 0,
        PD_KFRAME_OUT_PROBS};
    if (k == 0) {
      t->len = (size_t)n * (size_t)n_classes * sizeof(float);
      t->raw = malloc(t->len + 1);
      if (!t->raw) return ST_RESOURCE_EXHAUSTED;
      for (int i = 0; i < n; i++)
        memcpy(t->raw + (size_t)i * (size_t)n_classes * sizeof(float), job->objects[i].probs,
               (size_t)n_classes * sizeof(float));
    } else {
      size_t cap = (size_t)n * (size_t)k * 84 + 1;
      for (int c = 0; labels && c < n_classes; c++)
        cap += (size_t)n * (labels[c] ? strlen(labels[c]) : 0);
      int *idx = malloc((size_t)k * sizeof *idx);
      t->raw = malloc(cap);
      if (!idx || !t->raw) {
        free(idx);
        return ST_RESOURCE_EXHAUSTED;
      }
      for (int i = 0; i < n; i++) {
        const float *p = job->objects[i].probs;
        const int got = pd_kinfer_top_k(p, n_classes, k, idx);
        for (int j = 0; j < got; j++) {
          const int s = pd_kinfer_class_string(p[idx[j]], idx[j], labels ? labels[idx[j]] : NULL,
                                               (char *)t->raw + t->len + 4, cap - t->len - 4);
          put_le32(t->raw + t->len, (uint32_t)s);
          t->len += 4 + (size_t)s;
        }
      }
      free(idx);
    }
  }
  return ST_OK;
}

int pd_kframe_pack_response(const pd_kframe_request *rq, const pd_frame_job *job, const char *model,
                            const char *version, const char *id, int n_classes,
                            const char *const *labels, int stream, uint8_t **out, size_t *len) {
  kanswer a;
  int rc = answer_build(rq, job, n_classes, labels, &a);
  if (rc) {
    answer_free(&a);
    return rc;
  }
  Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  Inference__ModelInferResponse__InferOutputTensor t[PD_KFRAME_OUTS], *tp[PD_KFRAME_OUTS];
  ProtobufCBinaryData raw[PD_KFRAME_OUTS];
  Inference__InferParameter pv[N_PARAMS];
  Inference__ModelInferResponse__ParametersEntry pe[N_PARAMS], *pp[N_PARAMS];
  resp.model_name = (char *)(model ? model : "");
  resp.model_version = (char *)(version ? version : "");
  resp.id = (char *)(id ? id : "");
  for (int i = 0; i < a.n_params; i++) {
    inference__infer_parameter__init(&pv[i]);
    pv[i].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    pv[i].int64_param = a.values[i];
    inference__model_infer_response__parameters_entry__init(&pe[i]);
    pe[i].key = (char *)a.keys[i];
    pe[i].value = &pv[i];
    pp[i] = &pe[i];
  }
  resp.n_parameters = (size_t)a.n_params;
  resp.parameters = pp;
  for (int i = 0; i < a.n; i++) {
    inference__model_infer_response__infer_output_tensor__init(&t[i]);
    t[i].name = (char *)a.t[i].name;
    t[i].datatype = (char *)a.t[i].datatype;
    t[i].shape = a.t[i].shape;
    t[i].n_shape = a.t[i].n_shape;
    tp[i] = &t[i];
    raw[i].data = a.t[i].raw;
    raw[i].len = a.t[i].len;
  }
  resp.n_outputs = resp.n_raw_output_contents = (size_t)a.n;
  resp.outputs = tp;
  resp.raw_output_contents = raw;
  if (stream) {
    Inference__ModelStreamInferResponse s = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    s.infer_response = &resp;
    rc = pd_kpack(&s.base, out, len);
  } else {
    rc = pd_kpack(&resp.base, out, len);
  }
  answer_free(&a);
  return rc;
}

/* A tensor's values as a flat JSON array. */
static json_t *json_data(const ktensor *t) {
  json_t *d = json_array();
  if (!strcmp(t->datatype, "INT32")) {
    for (size_t i = 0; i + 4 <= t->len; i += 4) {
      int32_t v;
      memcpy(&v, t->raw + i, 4);
      json_array_append_new(d, json_integer(v));
    }
  } else if (!strcmp(t->datatype, "FP32")) {
    for (size_t i = 0; i + 4 <= t->len; i += 4) {
      float v;
      memcpy(&v, t->raw + i, 4);
      json_array_append_new(d, json_real((double)v));
    }
  } else {
    for (size_t i = 0; i + 4 <= t->len;) {
      const uint32_t l = pd_kle32(t->raw + i);
      json_array_append_new(d, json_stringn((const char *)t->raw + i + 4, l));
      i += 4 + l;
    }
  }
  return d;
}

int pd_kframe_rest_response(const pd_kframe_request *rq, const pd_frame_job *job, int binary,
                            const char *model, const char *version, const char *id, int n_classes,
                            const char *const *labels, char **out, size_t *len, size_t *json_len) {
  *out = NULL;
  *len = *json_len = 0;
  kanswer a;
  int rc = answer_build(rq, job, n_classes, labels, &a);
  if (rc) {
    answer_free(&a);
    return rc;
  }
  json_t *root = json_object(), *params = json_object(), *outs = json_array();
  json_object_set_new(root, "model_name", json_string(model ? model : ""));
  json_object_set_new(root, "model_version", json_string(version ? version : ""));
  if (id && *id) json_object_set_new(root, "id", json_string(id));
  for (int i = 0; i < a.n_params; i++)
    json_object_set_new(params, a.keys[i], json_integer((json_int_t)a.values[i]));
  json_object_set_new(root, "parameters", params);
  size_t bin_len = 0;
  for (int i = 0; i < a.n; i++) {
    const ktensor *t = &a.t[i];
    json_t *o = json_object(), *shape = json_array();
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "datatype", json_string(t->datatype));
    for (size_t d = 0; d < t->n_shape; d++)
      json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
    json_object_set_new(o, "shape", shape);
    if (binary || rq->binary[t->which]) {
      json_object_set_new(o, "parameters",
                          json_pack("{s:I}", "binary_data_size", (json_int_t)t->len));
      bin_len += t->len;
    } else {
      json_object_set_new(o, "data", json_data(t));
    }
    json_array_append_new(outs, o);
  }
  json_object_set_new(root, "outputs", outs);
  const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(9);
  const size_t jl = json_dumpb(root, NULL, 0, flags);
  char *buf = jl ? malloc(jl + bin_len + 1) : NULL;
  if (!buf) {
    json_decref(root);
    answer_free(&a);
    return ST_RESOURCE_EXHAUSTED;
  }
  json_dumpb(root, buf, jl, flags);
  size_t at = jl;
  for (int i = 0; i < a.n; i++)
    if (binary || rq->binary[a.t[i].which]) {
      if (a.t[i].len) memcpy(buf + at, a.t[i].raw, a.t[i].len);
      at += a.t[i].len;
    }
  json_decref(root);
  answer_free(&a);
  *out = buf;
  *len = at;
  *json_len = (binary || bin_len) ? jl : 0;
  return ST_OK;
}
