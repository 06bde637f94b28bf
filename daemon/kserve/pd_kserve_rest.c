#include "pd_kserve_rest.h"
#include "pd_kserve_param.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

enum { ST_OK = 0, ST_INVALID_ARGUMENT = 3, ST_RESOURCE_EXHAUSTED = 8 };

/* ---- an arena: everything the request struct points to ---- */

typedef struct arena_block {
  struct arena_block *next;
  max_align_t data[];
} arena_block;

static void *arena_alloc(pd_krest_request *r, size_t n) {
  arena_block *b = calloc(1, sizeof *b + (n ? n : 1));
  if (!b) return NULL;
  b->next = r->arena;
  r->arena = b;
  return b->data;
}

#define OOM(msg, cap) pd_kfail(msg, cap, ST_RESOURCE_EXHAUSTED, "out of memory reading the request")

/* A JSON parameter value as an InferParameter. */
static int param_value(pd_krest_request *r, json_t *v, Inference__InferParameter **out) {
  Inference__InferParameter *p = arena_alloc(r, sizeof *p);
  if (!p) return -1;
  inference__infer_parameter__init(p);
  if (json_is_boolean(v)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
    p->bool_param = json_is_true(v);
  } else if (json_is_integer(v)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    p->int64_param = (int64_t)json_integer_value(v);
  } else if (json_is_real(v)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM;
    p->double_param = json_real_value(v);
  } else if (json_is_string(v)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    p->string_param = (char *)json_string_value(v);
  } /* other values: not set (pd_kserve_infer refuses them where it matters) */
  *out = p;
  return 0;
}

/* A "parameters" object as the entries of a protobuf map (the request's and
 * an output's entries have the same layout). */
typedef struct param_entry {
  ProtobufCMessage base;
  char *key;
  Inference__InferParameter *value;
} param_entry;

static int params(pd_krest_request *r, json_t *obj, const ProtobufCMessageDescriptor *desc,
                  size_t *n_out, void ***out, const char *where, char *msg, size_t cap) {
  *n_out = 0;
  *out = NULL;
  if (!obj) return ST_OK;
  if (!json_is_object(obj))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "%s \"parameters\" is not an object", where);
  size_t n = json_object_size(obj);
  void **arr = arena_alloc(r, n * sizeof *arr);
  if (!arr) return OOM(msg, cap);
  const char *key;
  json_t *v;
  size_t i = 0;
  json_object_foreach(obj, key, v) {
    param_entry *e = arena_alloc(r, sizeof *e);
    if (!e) return OOM(msg, cap);
    protobuf_c_message_init(desc, e);
    e->key = (char *)key;
    if (param_value(r, v, &e->value) != 0) return OOM(msg, cap);
    arr[i++] = e;
  }
  *n_out = i;
  *out = arr;
  return ST_OK;
}

static json_t *param_get(json_t *obj, const char *key) {
  return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* The elements of a nested JSON array, flattened, as integers. */
static int flatten_ints(json_t *a, uint32_t *out, size_t cap, size_t *n, int depth) {
  if (depth > 8) return -1;
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (json_is_array(v)) {
      if (flatten_ints(v, out, cap, n, depth + 1) != 0) return -1;
    } else if (json_is_integer(v)) {
      json_int_t x = json_integer_value(v);
      if (x < 0 || x > 0xffffffffLL || *n >= cap) return -1;
      out[(*n)++] = (uint32_t)x;
    } else {
      return -1;
    }
  }
  return 0;
}

static size_t count_leaves(json_t *a, int depth) {
  if (!json_is_array(a)) return 1;
  if (depth > 8) return 0;
  size_t n = 0, i;
  json_t *v;
  json_array_foreach(a, i, v) n += count_leaves(v, depth + 1);
  return n;
}

static int flatten_strings(json_t *a, ProtobufCBinaryData *out, size_t cap, size_t *n, int depth) {
  if (depth > 8) return -1;
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (json_is_array(v)) {
      if (flatten_strings(v, out, cap, n, depth + 1) != 0) return -1;
    } else if (json_is_string(v) && *n < cap) {
      out[*n].data = (uint8_t *)json_string_value(v);
      out[*n].len = json_string_length(v);
      (*n)++;
    } else {
      return -1;
    }
  }
  return 0;
}

static int parse_input(pd_krest_request *r, json_t *jin, int idx,
                       Inference__ModelInferRequest__InferInputTensor **out, const uint8_t *bin,
                       size_t bin_len, size_t *bin_off, ProtobufCBinaryData *raw, int *has_raw,
                       char *msg, size_t cap) {
  if (!json_is_object(jin))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "inputs[%d] is not an object", idx);
  Inference__ModelInferRequest__InferInputTensor *t = arena_alloc(r, sizeof *t);
  if (!t) return OOM(msg, cap);
  inference__model_infer_request__infer_input_tensor__init(t);
  json_t *name = json_object_get(jin, "name"), *dt = json_object_get(jin, "datatype"),
         *shape = json_object_get(jin, "shape"), *data = json_object_get(jin, "data"),
         *jp = json_object_get(jin, "parameters");
  if (!json_is_string(name) || !json_is_string(dt) || !json_is_array(shape))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "inputs[%d] needs \"name\", \"datatype\" (strings) and \"shape\" (an array)",
                    idx);
  t->name = (char *)json_string_value(name);
  t->datatype = (char *)json_string_value(dt);
  size_t ns = json_array_size(shape);
  if (ns > 8)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "input \"%.64s\": %zu dimensions", t->name, ns);
  t->shape = arena_alloc(r, ns * sizeof *t->shape);
  if (!t->shape) return OOM(msg, cap);
  for (size_t i = 0; i < ns; i++) {
    json_t *d = json_array_get(shape, i);
    if (!json_is_integer(d))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input \"%.64s\": shape[%zu] is not an integer", t->name, i);
    t->shape[i] = (int64_t)json_integer_value(d);
  }
  t->n_shape = ns;
  json_t *bsz = param_get(jp, "binary_data_size");
  if (bsz) {
    if (!json_is_integer(bsz) || json_integer_value(bsz) < 0)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input \"%.64s\": binary_data_size must be a whole number of bytes", t->name);
    json_int_t want = json_integer_value(bsz);
    size_t left = bin_len - *bin_off;
    if ((unsigned long long)want > left)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input \"%.64s\": binary_data_size %lld runs past the end of the body (%zu "
                      "bytes of binary data left)",
                      t->name, (long long)want, left);
    if (data)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "input \"%.64s\" has both \"data\" and binary_data_size; send one", t->name);
    raw->data = (uint8_t *)bin + *bin_off;
    raw->len = (size_t)want;
    *bin_off += (size_t)want;
    *has_raw = 1;
  } else if (data) {
    if (!json_is_array(data))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "input \"%.64s\": \"data\" is not an array",
                      t->name);
    Inference__InferTensorContents *c = arena_alloc(r, sizeof *c);
    if (!c) return OOM(msg, cap);
    inference__infer_tensor_contents__init(c);
    size_t n = count_leaves(data, 0);
    if (strcmp(t->datatype, "BYTES") == 0) {
      c->bytes_contents = arena_alloc(r, n * sizeof *c->bytes_contents);
      if (!c->bytes_contents) return OOM(msg, cap);
      if (flatten_strings(data, c->bytes_contents, n, &c->n_bytes_contents, 0) != 0)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input \"%.64s\": BYTES \"data\" must be strings (send images as binary "
                        "data)",
                        t->name);
    } else {
      c->uint_contents = arena_alloc(r, n * sizeof *c->uint_contents);
      if (!c->uint_contents) return OOM(msg, cap);
      if (flatten_ints(data, c->uint_contents, n, &c->n_uint_contents, 0) != 0)
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                        "input \"%.64s\": \"data\" must be integers 0..255 for UINT8", t->name);
    }
    t->contents = c;
  }
  *out = t;
  return ST_OK;
}

int pd_krest_parse(const uint8_t *body, size_t len, long long header_len, pd_krest_request *out,
                   char *msg, size_t cap) {
  memset(out, 0, sizeof *out);
  inference__model_infer_request__init(&out->req);
  if (cap) msg[0] = 0;
  size_t jlen = len;
  if (header_len >= 0) {
    if ((unsigned long long)header_len > len)
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "Inference-Header-Content-Length %lld is more than the body's %zu bytes",
                      header_len, len);
    jlen = (size_t)header_len;
  }
  const uint8_t *bin = body + jlen;
  size_t bin_len = len - jlen, bin_off = 0;
  json_error_t je;
  json_t *root = json_loadb((const char *)body, jlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (!root)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "the request's JSON does not parse: %s at byte %d", je.text, je.position);
  out->json = root;
  if (!json_is_object(root))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "the request's JSON is not an object");
  Inference__ModelInferRequest *q = &out->req;
  json_t *id = json_object_get(root, "id");
  if (id && !json_is_string(id))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "\"id\" must be a string");
  q->id = (char *)(id ? json_string_value(id) : "");
  json_t *jp = json_object_get(root, "parameters");
  int rc = params(out, jp, &inference__model_infer_request__parameters_entry__descriptor,
                  &q->n_parameters, (void ***)&q->parameters, "the request's", msg, cap);
  if (rc) return rc;
  json_t *bo = param_get(jp, "binary_data_output");
  if (bo) {
    if (!json_is_boolean(bo))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                      "parameter \"binary_data_output\" must be true or false");
    out->binary_output = json_is_true(bo);
  }
  json_t *ins = json_object_get(root, "inputs");
  if (!json_is_array(ins))
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "\"inputs\" must be an array");
  size_t ni = json_array_size(ins);
  if (ni > 16) return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "%zu inputs", ni);
  q->inputs = arena_alloc(out, ni * sizeof(Inference__ModelInferRequest__InferInputTensor *));
  ProtobufCBinaryData *raw = arena_alloc(out, ni * sizeof *raw);
  if (!q->inputs || !raw) return OOM(msg, cap);
  size_t n_raw = 0;
  for (size_t i = 0; i < ni; i++) {
    int has_raw = 0;
    rc = parse_input(out, json_array_get(ins, i), (int)i, &q->inputs[i], bin, bin_len, &bin_off,
                     &raw[i], &has_raw, msg, cap);
    if (rc) return rc;
    n_raw += (size_t)has_raw;
    q->n_inputs = i + 1;
  }
  if (n_raw && n_raw != ni)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "inputs mix binary data and JSON data; send all as one or the other");
  if (n_raw) {
    q->raw_input_contents = raw;
    q->n_raw_input_contents = ni;
  }
  if (bin_off != bin_len)
    return pd_kfail(msg, cap, ST_INVALID_ARGUMENT,
                    "%zu bytes of binary data after the inputs' binary_data_size (%zu bytes)",
                    bin_len - bin_off, bin_off);
  json_t *outs = json_object_get(root, "outputs");
  if (outs) {
    if (!json_is_array(outs))
      return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "\"outputs\" must be an array");
    size_t no = json_array_size(outs);
    if (no > 16) return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "%zu outputs requested", no);
    q->outputs =
        arena_alloc(out, no * sizeof(Inference__ModelInferRequest__InferRequestedOutputTensor *));
    if (!q->outputs) return OOM(msg, cap);
    for (size_t i = 0; i < no; i++) {
      json_t *jo = json_array_get(outs, i), *name = json_object_get(jo, "name");
      if (!json_is_object(jo) || !json_is_string(name))
        return pd_kfail(msg, cap, ST_INVALID_ARGUMENT, "outputs[%zu] needs a \"name\"", i);
      Inference__ModelInferRequest__InferRequestedOutputTensor *o = arena_alloc(out, sizeof *o);
      if (!o) return OOM(msg, cap);
      inference__model_infer_request__infer_requested_output_tensor__init(o);
      o->name = (char *)json_string_value(name);
      rc = params(
          out, json_object_get(jo, "parameters"),
          &inference__model_infer_request__infer_requested_output_tensor__parameters_entry__descriptor,
          &o->n_parameters, (void ***)&o->parameters, "an output's", msg, cap);
      if (rc) return rc;
      q->outputs[i] = o;
      q->n_outputs = i + 1;
    }
  }
  return ST_OK;
}

void pd_krest_request_free(pd_krest_request *r) {
  for (arena_block *b = r->arena; b;) {
    arena_block *n = b->next;
    free(b);
    b = n;
  }
  r->arena = NULL;
  if (r->json) json_decref(r->json);
  r->json = NULL;
}

/* ---- answers ---- */

static int put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
  return 4;
}

int pd_krest_response(const pd_kinfer_request *rq, int binary, const char *model,
                      const char *version, const char *id, int n_classes, const float *probs,
                      const char *const *labels, char **out, size_t *len, size_t *json_len) {
  *out = NULL;
  *len = *json_len = 0;
  json_t *root = json_object();
  json_object_set_new(root, "model_name", json_string(model ? model : ""));
  json_object_set_new(root, "model_version", json_string(version ? version : ""));
  if (id && *id) json_object_set_new(root, "id", json_string(id));
  int oom;
  char *uncl = pd_kinfer_unclassified(rq, n_classes, probs, &oom);
  if (oom) {
    json_decref(root);
    return ST_RESOURCE_EXHAUSTED;
  }
  if (rq->views > 0 || uncl) {
    json_t *params = json_object();
    if (rq->views > 0)
      json_object_set_new(params, PD_KINFER_VIEWS_PARAM, json_integer((json_int_t)rq->views));
    if (uncl) json_object_set_new(params, PD_KINFER_UNCLASSIFIED_PARAM, json_string(uncl));
    json_object_set_new(root, "parameters", params);
  }
  free(uncl);
  json_t *outs = json_array();
  uint8_t *bin = NULL;
  size_t bin_len = 0;
  int k = rq->class_count;
  if (rq->want_probs) {
    json_t *t = json_object();
    json_object_set_new(t, "name", json_string(PD_KINFER_OUTPUT));
    json_object_set_new(t, "datatype", json_string(k > 0 ? "BYTES" : "FP32"));
    json_t *shape = json_array();
    json_array_append_new(shape, json_integer(rq->n));
    json_array_append_new(shape, json_integer(k > 0 ? k : n_classes));
    json_object_set_new(t, "shape", shape);
    size_t cells = (size_t)rq->n * (size_t)(k > 0 ? k : n_classes);
    if (k > 0) {
      int *idx = malloc((size_t)k * sizeof *idx);
      json_t *data = binary ? NULL : json_array();
      if (binary) bin = malloc(cells * (4 + 340) + 1);
      if (!idx || (binary && !bin)) {
        free(idx);
        free(bin);
        json_decref(data);
        json_decref(t);
        json_decref(outs);
        json_decref(root);
        return ST_RESOURCE_EXHAUSTED;
      }
      for (int i = 0; i < rq->n; i++) {
        const float *p = probs + (size_t)i * (size_t)n_classes;
        int got = pd_kinfer_top_k(p, n_classes, k, idx);
        for (int j = 0; j < got; j++) {
          char s[340];
          int sl = pd_kinfer_class_string(p[idx[j]], idx[j], labels ? labels[idx[j]] : NULL, s,
                                          sizeof s);
          if (binary) {
            bin_len += (size_t)put_le32(bin + bin_len, (uint32_t)sl);
            memcpy(bin + bin_len, s, (size_t)sl);
            bin_len += (size_t)sl;
          } else {
            json_array_append_new(data, json_stringn(s, (size_t)sl));
          }
        }
      }
      free(idx);
      if (data) json_object_set_new(t, "data", data);
    } else if (binary) {
      bin_len = cells * sizeof(float);
      bin = malloc(bin_len ? bin_len : 1);
      if (!bin) {
        json_decref(t);
        json_decref(outs);
        json_decref(root);
        return ST_RESOURCE_EXHAUSTED;
      }
      memcpy(bin, probs, bin_len);
    } else {
      json_t *data = json_array();
      for (size_t i = 0; i < cells; i++)
        json_array_append_new(data, json_real((double)probs[i]));
      json_object_set_new(t, "data", data);
    }
    if (binary) {
      json_t *tp = json_object();
      json_object_set_new(tp, "binary_data_size", json_integer((json_int_t)bin_len));
      json_object_set_new(t, "parameters", tp);
    }
    json_array_append_new(outs, t);
  }
  json_object_set_new(root, "outputs", outs);
  size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(9);
  size_t jl = json_dumpb(root, NULL, 0, flags);
  char *buf = malloc(jl + bin_len + 1);
  if (!buf) {
    free(bin);
    json_decref(root);
    return ST_RESOURCE_EXHAUSTED;
  }
  json_dumpb(root, buf, jl, flags);
  if (bin_len) memcpy(buf + jl, bin, bin_len);
  free(bin);
  json_decref(root);
  *out = buf;
  *len = jl + bin_len;
  *json_len = jl;
  return ST_OK;
}

char *pd_krest_error_json(const char *message, size_t *len) {
  json_t *o = json_object();
  json_object_set_new(o, "error", json_string(message && *message ? message : "error"));
  size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT);
  char *buf = malloc(n + 1);
  if (buf) {
    json_dumpb(o, buf, n, JSON_COMPACT);
    buf[n] = 0;
  }
  json_decref(o);
  *len = buf ? n : 0;
  return buf;
}

int pd_krest_http_status(int code) {
  switch (code) {
  case 0:
    return 200;
  case 3:  /* INVALID_ARGUMENT */
  case 9:  /* FAILED_PRECONDITION */
  case 11: /* OUT_OF_RANGE */
    return 400;
  case 5: /* NOT_FOUND */
    return 404;
  case 4: /* DEADLINE_EXCEEDED */
    return 504;
  case 8: /* RESOURCE_EXHAUSTED */
    return 429;
  case 12: /* UNIMPLEMENTED */
    return 501;
  case 14: /* UNAVAILABLE */
    return 503;
  default:
    return 500;
  }
}
