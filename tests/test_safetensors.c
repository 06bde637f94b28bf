/* Unit tests of the safetensors reader: valid files in the compact and the
 * spaced JSON that writers emit, F16 widening, unaligned data, and every
 * malformed-file error (each must name the file and the tensor), plus
 * truncation and byte-flip sweeps that must fail cleanly, never crash. */
#include <stdbool.h>
#include <stdint.h>

#include "pd_safetensors.h"
#include "pd_test.h"

#define FILE_NAME "w/weights.safetensors"

/* ---- building files ---- */

typedef struct tspec {
  const char *name, *dtype;
  int ndim;
  long long shape[4];
} tspec;

static size_t dtype_size(const char *dtype) {
  if (!strcmp(dtype, "F16") || !strcmp(dtype, "I16") || !strcmp(dtype, "BF16")) return 2;
  if (!strcmp(dtype, "U8") || !strcmp(dtype, "I8") || !strcmp(dtype, "BOOL")) return 1;
  if (!strcmp(dtype, "F64") || !strcmp(dtype, "I64")) return 8;
  return 4;
}

static float pattern(size_t i) {
  return (float)((int)(i % 61) - 30) * 0.125f;
}

/* Exact for zero and normal halves (all the test patterns). */
static uint16_t to_half(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  int e = (int)((b >> 23) & 0xff) - 127 + 15;
  return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((b >> 13) & 0x3ff));
}

/* A file from a raw header and data (header length written as given). */
static unsigned char *raw_file(const char *header, const void *data, size_t data_len, size_t *len) {
  size_t h = strlen(header);
  *len = 8 + h + data_len;
  unsigned char *buf = malloc(*len ? *len : 1);
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(buf + 8, header, h);
  if (data_len) memcpy(buf + 8 + h, data, data_len);
  return buf;
}

/* Tensors laid out one after another; F32/F16 hold pattern(1000*k + i), others bytes k. */
static unsigned char *build(const tspec *ts, int n, bool spaced, size_t *len) {
  char header[4096];
  size_t off = 0, hl = 0;
  const char *sep = spaced ? ", " : ",", *colon = spaced ? ": " : ":";
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "{\"__metadata__\"%s{\"format\"%s\"pt\"}",
                         colon, colon);
  size_t offsets[16][2];
  for (int k = 0; k < n; k++) {
    size_t numel = 1;
    for (int d = 0; d < ts[k].ndim; d++)
      numel *= (size_t)ts[k].shape[d];
    size_t nb = numel * dtype_size(ts[k].dtype);
    hl += (size_t)snprintf(header + hl, sizeof header - hl,
                           "%s\"%s\"%s{\"dtype\"%s\"%s\"%s\"shape\"%s[", sep, ts[k].name, colon,
                           colon, ts[k].dtype, sep, colon);
    for (int d = 0; d < ts[k].ndim; d++)
      hl +=
          (size_t)snprintf(header + hl, sizeof header - hl, "%s%lld", d ? sep : "", ts[k].shape[d]);
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "]%s\"data_offsets\"%s[%zu%s%zu]}", sep,
                           colon, off, sep, off + nb);
    offsets[k][0] = off;
    offsets[k][1] = off + nb;
    off += nb;
  }
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
  while (hl % 8)
    header[hl++] = ' '; /* writers pad the header with spaces */
  header[hl] = '\0';
  unsigned char *data = calloc(1, off ? off : 1);
  for (int k = 0; k < n; k++) {
    unsigned char *p = data + offsets[k][0];
    size_t es = dtype_size(ts[k].dtype), count = (offsets[k][1] - offsets[k][0]) / es;
    for (size_t i = 0; i < count; i++) {
      float v = pattern(1000 * (size_t)k + i);
      if (!strcmp(ts[k].dtype, "F32"))
        memcpy(p + 4 * i, &v, 4);
      else if (!strcmp(ts[k].dtype, "F16")) {
        uint16_t hv = to_half(v);
        memcpy(p + 2 * i, &hv, 2);
      } else
        memset(p + es * i, k, es);
    }
  }
  unsigned char *buf = raw_file(header, data, off, len);
  free(data);
  return buf;
}

static int parse_header(const char *header, size_t data_len, pd_safetensors_file *f,
                        pd_error *err) {
  unsigned char *zeros = calloc(1, data_len ? data_len : 1);
  size_t len;
  unsigned char *buf = raw_file(header, zeros, data_len, &len);
  int rc = pd_safetensors_parse(buf, len, FILE_NAME, f, err);
  pd_safetensors_free(f);
  free(buf);
  free(zeros);
  return rc;
}

/* Parses header + data_len zero bytes and checks the error code and message parts. */
static void expect_error(pd_test_state *st, const char *header, size_t data_len, int code,
                         const char *needle1, const char *needle2) {
  pd_safetensors_file f;
  pd_error err = {0};
  int rc = parse_header(header, data_len, &f, &err);
  PD_CHECK_INT(st, rc, code);
  if (code == PD_OK) {
    if (rc != PD_OK) fprintf(stderr, "  unexpected error: %s\n", err.msg);
    return;
  }
  PD_CHECK_INT(st, err.code, code);
  PD_CHECK_CONTAINS(st, err.msg, FILE_NAME);
  if (needle1) PD_CHECK_CONTAINS(st, err.msg, needle1);
  if (needle2) PD_CHECK_CONTAINS(st, err.msg, needle2);
}

/* ---- valid files ---- */

static const tspec k_two[] = {
    {"a.weight", "F32", 2, {2, 3}},
    {"a.bias", "F16", 1, {4}},
};

static void check_two(pd_test_state *st, const unsigned char *buf, size_t len) {
  pd_safetensors_file f;
  pd_error err = {0};
  int rc = pd_safetensors_parse(buf, len, FILE_NAME, &f, &err);
  PD_CHECK_INT(st, rc, PD_OK);
  if (rc != PD_OK) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  PD_CHECK_INT(st, f.n_tensors, 2);
  pd_safetensors_tensor *w = pd_safetensors_find(&f, "a.weight"),
                        *b = pd_safetensors_find(&f, "a.bias");
  PD_CHECK(st, w && b && !pd_safetensors_find(&f, "__metadata__") && !pd_safetensors_find(&f, "a"));
  if (w && b) {
    PD_CHECK_INT(st, w->dtype, PD_DTYPE_F32);
    PD_CHECK_INT(st, b->dtype, PD_DTYPE_F16);
    PD_CHECK(st, !strcmp(w->dtype_name, "F32") && !strcmp(b->dtype_name, "F16"));
    PD_CHECK_INT(st, w->ndim, 2);
    PD_CHECK_INT(st, w->shape[0], 2);
    PD_CHECK_INT(st, w->shape[1], 3);
    PD_CHECK_INT(st, w->nbytes, 24);
    PD_CHECK_INT(st, b->nbytes, 8);
    PD_CHECK_INT(st, pd_safetensors_numel(w), 6);
    PD_CHECK_INT(st, b->used, 0);
    float wv[6], bv[4];
    PD_CHECK_INT(st, pd_safetensors_to_f32(w, wv, 6, &err), PD_OK);
    PD_CHECK_INT(st, pd_safetensors_to_f32(b, bv, 4, &err), PD_OK);
    for (int i = 0; i < 6; i++)
      PD_CHECK_NEAR(st, wv[i], pattern((size_t)i), 0);
    for (int i = 0; i < 4; i++)
      PD_CHECK_NEAR(st, bv[i], pattern(1000 + (size_t)i), 0);
    /* the element count must match */
    PD_CHECK_INT(st, pd_safetensors_to_f32(w, wv, 5, &err), PD_EINVAL);
    PD_CHECK_CONTAINS(st, err.msg, "a.weight");
    PD_CHECK_CONTAINS(st, err.msg, "6 elements");
  }
  pd_safetensors_free(&f);
  PD_CHECK_INT(st, f.n_tensors, 0);
}

static void test_valid(pd_test_state *st) {
  size_t len;
  unsigned char *buf = build(k_two, 2, false, &len);
  PD_CHECK(st, memmem(buf, len, "{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}",
                      50) != NULL);
  check_two(st, buf, len);
  free(buf);
  buf = build(k_two, 2, true, &len);
  PD_CHECK(st, memmem(buf, len, "\"shape\": [2, 3]", 15) != NULL);
  check_two(st, buf, len);
  free(buf);
  /* the exact compact header from the format document, no padding */
  float data[6] = {1, 2, 3, 4, 5, 6};
  buf = raw_file("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", data,
                 24, &len);
  pd_safetensors_file f;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_safetensors_parse(buf, len, FILE_NAME, &f, &err), PD_OK);
  PD_CHECK_INT(st, f.n_tensors, 1);
  if (f.n_tensors == 1) {
    float out[6];
    PD_CHECK_INT(st, pd_safetensors_to_f32(&f.tensors[0], out, 6, &err), PD_OK);
    PD_CHECK_NEAR(st, out[5], 6, 0);
  }
  pd_safetensors_free(&f);
  free(buf);
  /* an empty table and a scalar tensor are valid */
  expect_error(st, "{}", 0, PD_OK, NULL, NULL);
}

static void test_sorted_find(pd_test_state *st) {
  const tspec ts[] = {{"z", "F32", 1, {1}},
                      {"m.b", "F32", 0, {0}},
                      {"a", "F32", 1, {2}},
                      {"m.a", "F32", 2, {1, 1}}};
  size_t len;
  unsigned char *buf = build(ts, 4, false, &len);
  pd_safetensors_file f;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_safetensors_parse(buf, len, FILE_NAME, &f, &err), PD_OK);
  PD_CHECK_INT(st, f.n_tensors, 4);
  const char *names[] = {"z", "m.b", "a", "m.a"};
  for (int i = 0; i < 4 && f.n_tensors == 4; i++) {
    pd_safetensors_tensor *t = pd_safetensors_find(&f, names[i]);
    PD_CHECK(st, t && !strcmp(t->name, names[i]));
  }
  pd_safetensors_tensor *scalar = pd_safetensors_find(&f, "m.b");
  if (scalar) {
    PD_CHECK_INT(st, scalar->ndim, 0);
    PD_CHECK_INT(st, pd_safetensors_numel(scalar), 1);
    float v;
    PD_CHECK_INT(st, pd_safetensors_to_f32(scalar, &v, 1, &err), PD_OK);
    PD_CHECK_NEAR(st, v, pattern(1000), 0);
  }
  PD_CHECK(st, pd_safetensors_find(&f, "b") == NULL && pd_safetensors_find(&f, "") == NULL);
  pd_safetensors_free(&f);
  free(buf);
}

/* ---- F16 and unaligned data ---- */

static void test_f16(pd_test_state *st) {
  const uint16_t h[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000,
                        0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x8001, 0xfe01};
  const int n = (int)(sizeof h / sizeof h[0]);
  /* one byte of U8 first, so the F16 data starts at an odd address */
  unsigned char data[1 + sizeof h];
  data[0] = 7;
  memcpy(data + 1, h, sizeof h);
  char header[256];
  snprintf(header, sizeof header,
           "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
           "\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[1,%d]}}",
           n, 1 + 2 * n);
  size_t len;
  unsigned char *buf = raw_file(header, data, sizeof data, &len);
  pd_safetensors_file f;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_safetensors_parse(buf, len, FILE_NAME, &f, &err), PD_OK);
  pd_safetensors_tensor *t = pd_safetensors_find(&f, "h"), *pad = pd_safetensors_find(&f, "pad");
  PD_CHECK(st, t && pad);
  if (t && pad) {
    PD_CHECK_INT(st, pad->dtype, PD_DTYPE_OTHER);
    PD_CHECK(st, !strcmp(pad->dtype_name, "U8"));
    float v[16];
    PD_CHECK_INT(st, pd_safetensors_to_f32(t, v, (size_t)n, &err), PD_OK);
    PD_CHECK(st, v[0] == 0 && !signbit(v[0]));
    PD_CHECK(st, v[1] == 0 && signbit(v[1]));
    PD_CHECK_NEAR(st, v[2], ldexp(1, -24), 0);        /* smallest subnormal */
    PD_CHECK_NEAR(st, v[3], 1023 * ldexp(1, -24), 0); /* largest subnormal */
    PD_CHECK_NEAR(st, v[4], ldexp(1, -14), 0);        /* smallest normal */
    PD_CHECK_NEAR(st, v[5], 1, 0);
    PD_CHECK_NEAR(st, v[6], -2, 0);
    PD_CHECK_NEAR(st, v[7], 65504, 0);
    PD_CHECK(st, isinf(v[8]) && v[8] > 0);
    PD_CHECK(st, isinf(v[9]) && v[9] < 0);
    PD_CHECK(st, isnan(v[10]));
    PD_CHECK_NEAR(st, v[11], 0.333251953125, 0);
    PD_CHECK_NEAR(st, v[12], -ldexp(1, -24), 0);
    PD_CHECK(st, isnan(v[13]) && signbit(v[13]));
    /* U8 cannot be read as float */
    float x;
    PD_CHECK_INT(st, pd_safetensors_to_f32(pad, &x, 1, &err), PD_EUNSUPP);
    PD_CHECK_CONTAINS(st, err.msg, "pad");
    PD_CHECK_CONTAINS(st, err.msg, "U8");
  }
  pd_safetensors_free(&f);
  free(buf);

  /* unaligned F32 too, from an odd buffer address */
  float w[3] = {1.5f, -2.25f, 1e-30f};
  unsigned char *odd = malloc(1 + 8 + 256 + sizeof w);
  const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
  unsigned char *file = raw_file(hdr, w, sizeof w, &len);
  memcpy(odd + 1, file, len);
  PD_CHECK_INT(st, pd_safetensors_parse(odd + 1, len, FILE_NAME, &f, &err), PD_OK);
  if (f.n_tensors == 1) {
    float out[3];
    PD_CHECK_INT(st, pd_safetensors_to_f32(&f.tensors[0], out, 3, &err), PD_OK);
    for (int i = 0; i < 3; i++)
      PD_CHECK_NEAR(st, out[i], w[i], 0);
  }
  pd_safetensors_free(&f);
  free(file);
  free(odd);
}

/* ---- malformed files ---- */

static void test_short_and_lengths(pd_test_state *st) {
  unsigned char small[8] = {0};
  for (size_t n = 0; n < 8; n++) {
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, small, n);
    pd_safetensors_file f;
    pd_error err = {0};
    PD_CHECK_INT(st, pd_safetensors_parse(copy, n, FILE_NAME, &f, &err), PD_EFORMAT);
    PD_CHECK_CONTAINS(st, err.msg, FILE_NAME);
    PD_CHECK_CONTAINS(st, err.msg, "too short");
    free(copy);
  }
  /* header length beyond the file, and absurd */
  const uint64_t lens[] = {
      3, 1000, (uint64_t)100 << 20, ((uint64_t)100 << 20) + 1, UINT64_MAX, (uint64_t)1 << 63};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    unsigned char buf[10] = {0, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    for (int i = 0; i < 8; i++)
      buf[i] = (unsigned char)(lens[k] >> (8 * i));
    pd_safetensors_file f;
    pd_error err = {0};
    PD_CHECK_INT(st, pd_safetensors_parse(buf, sizeof buf, FILE_NAME, &f, &err), PD_EFORMAT);
    PD_CHECK_CONTAINS(st, err.msg, FILE_NAME);
    PD_CHECK_CONTAINS(st, err.msg, lens[k] > ((uint64_t)100 << 20) ? "absurd" : "beyond");
  }
  /* zero-length header */
  unsigned char zero[8] = {0};
  pd_safetensors_file f;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_safetensors_parse(zero, 8, FILE_NAME, &f, &err), PD_EFORMAT);
  PD_CHECK_CONTAINS(st, err.msg, "not a JSON object");
}

static void test_bad_headers(pd_test_state *st) {
  expect_error(st, "[1,2]", 0, PD_EFORMAT, "not a JSON object", NULL);
  expect_error(st, "\"x\"", 0, PD_EFORMAT, "not a JSON object", NULL);
  expect_error(st, "{\"a\":", 0, PD_EFORMAT, "JSON header", NULL);
  expect_error(st, "{\"a\":{\"dtype\":\"F32\"", 0, PD_EFORMAT, "JSON header", NULL);
  expect_error(st, "{\"a\"::}", 0, PD_EFORMAT, "JSON header", NULL);
  expect_error(st, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\n---\n{}", 4,
               PD_EFORMAT, "second", NULL);
  expect_error(st, "{\"a\":1}", 0, PD_EFORMAT, "'a'", "not an object");
  expect_error(st, "{\"a\":[]}", 0, PD_EFORMAT, "'a'", "not an object");
  expect_error(st, "{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, PD_EFORMAT,
               "empty or invalid name", NULL);
  expect_error(st, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "invalid name", NULL);
  /* non-UTF-8 */
  expect_error(st, "{\"\xff\xfe\":{}}", 0, PD_EFORMAT, "JSON header", NULL);
}

static void test_bad_entries(pd_test_state *st) {
  expect_error(st, "{\"t.w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, PD_EFORMAT, "'t.w'",
               "missing 'dtype'");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, PD_EFORMAT, "'t.w'",
               "missing 'shape'");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, PD_EFORMAT, "'t.w'",
               "missing 'data_offsets'");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
               PD_EFORMAT, "'t.w'", "unknown key 'x'");
  expect_error(st,
               "{\"t.w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
               "\"data_offsets\":[0,4]}}",
               4, PD_EFORMAT, "'t.w'", "duplicate key 'dtype'");
  expect_error(st, "{\"t.w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "unknown dtype 'Q4'");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "shape[0] must be a non-negative integer, got -1");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1,2.5],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "shape[1] must be a non-negative integer, got 2.5");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "shape[0]");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "shape[0]");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
               PD_EFORMAT, "'t.w'", "shape is not a list");
  expect_error(st,
               "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
               "\"data_offsets\":[0,4]}}",
               4, PD_EFORMAT, "'t.w'", "9 dimensions");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
               PD_EFORMAT, "'t.w'", "data_offsets");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
               PD_EFORMAT, "'t.w'", "data_offsets[1]");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
               PD_EFORMAT, "'t.w'", "[4, 0] begin after their end");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4,
               PD_EFORMAT, "'t.w'", "beyond the 4 data bytes");
  expect_error(st,
               "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[0,99999999999999999999999]}}",
               4, PD_EFORMAT, "'t.w'", "data_offsets[1]");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
               PD_EFORMAT, "'t.w'", "hold 20 bytes but shape [2, 3] of F32 needs 24");
  expect_error(st, "{\"t.w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24,
               PD_EFORMAT, "'t.w'", "needs 12");
  /* prod(shape) * 4 overflows 64 bits */
  expect_error(st,
               "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
               "\"data_offsets\":[0,0]}}",
               0, PD_EFORMAT, "'t.w'", "overflows");
  expect_error(st,
               "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,0]}}",
               0, PD_EFORMAT, "'t.w'", "overflows");
}

static void test_overlap_and_duplicates(pd_test_state *st) {
  expect_error(st,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, PD_EFORMAT, "'a'", "'b'");
  expect_error(st,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, PD_EFORMAT, "overlap", NULL);
  /* the same range twice */
  expect_error(st,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, PD_EFORMAT, "overlap", NULL);
  /* adjacent and empty tensors do not overlap */
  expect_error(st,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, PD_OK, NULL, NULL);
  expect_error(st,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, PD_EFORMAT, "'a'", "twice");
  /* __metadata__ is ignored whatever it holds */
  expect_error(st, "{\"__metadata__\":{\"x\":[1,{\"y\":null}]}}", 0, PD_OK, NULL, NULL);
}

/* Deep nesting and self-referencing YAML aliases must not hurt. */
static void test_hostile_headers(pd_test_state *st) {
  size_t depth = 100000;
  char *h = malloc(2 * depth + 16);
  size_t k = 0;
  k += (size_t)sprintf(h, "{\"a\":");
  for (size_t i = 0; i < depth; i++)
    h[k++] = '[';
  for (size_t i = 0; i < depth; i++)
    h[k++] = ']';
  h[k++] = '}';
  h[k] = '\0';
  expect_error(st, h, 0, PD_ELIMIT, "nested 100001 levels deep", NULL);
  free(h);
  /* 32 levels (the object, then 31 lists) is still parsed */
  char ok[128];
  k = (size_t)sprintf(ok, "{\"a\":");
  for (int i = 0; i < 31; i++)
    ok[k++] = '[';
  for (int i = 0; i < 31; i++)
    ok[k++] = ']';
  ok[k++] = '}';
  ok[k] = '\0';
  expect_error(st, ok, 0, PD_EFORMAT, "'a'", "not an object");
  expect_error(st, "{\"a\": &x {\"dtype\": *x, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
               PD_EFORMAT, "'a'", "unknown dtype");
  expect_error(st, "{\"__metadata__\": &x [*x]}", 0, PD_OK, NULL, NULL);
  /* too many values for the parser to hold */
  size_t n = (size_t)3 << 20;
  char *many = malloc(2 * n + 16);
  k = (size_t)sprintf(many, "{\"a\":[");
  for (size_t i = 0; i < n; i++)
    many[k++] = '0', many[k++] = ',';
  k--;
  k += (size_t)sprintf(many + k, "]}");
  expect_error(st, many, 0, PD_ELIMIT, "values", NULL);
  free(many);
}

/* Every prefix of a valid file fails cleanly (copied so ASan sees any overread). */
static void test_truncation(pd_test_state *st) {
  const tspec ts[] = {
      {"a.weight", "F32", 2, {3, 2}}, {"a.bias", "F16", 1, {3}}, {"b.weight", "F32", 1, {5}}};
  size_t len;
  unsigned char *buf = build(ts, 3, false, &len);
  int failures = 0;
  for (size_t n = 0; n < len; n++) {
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, buf, n);
    pd_safetensors_file f;
    pd_error err = {0};
    int rc = pd_safetensors_parse(copy, n, FILE_NAME, &f, &err);
    if (rc == PD_OK || !strstr(err.msg, FILE_NAME)) failures++;
    if (rc == PD_OK) pd_safetensors_free(&f);
    free(copy);
  }
  PD_CHECK_INT(st, failures, 0);
  pd_safetensors_file f;
  pd_error err = {0};
  PD_CHECK_INT(st, pd_safetensors_parse(buf, len, FILE_NAME, &f, &err), PD_OK);
  pd_safetensors_free(&f);
  free(buf);
}

/* Flipping header bytes: a clean error or a still-consistent table, never a crash. */
static void test_corruption(pd_test_state *st) {
  const tspec ts[] = {{"a.weight", "F32", 2, {3, 2}}, {"a.bias", "F16", 1, {3}}};
  size_t len;
  unsigned char *buf = build(ts, 2, false, &len);
  const unsigned char flips[] = {0xff, 0x01, 0x20, 0x80, '"', '{', '1', '\\', 0};
  int bad = 0, errors = 0;
  for (size_t pos = 0; pos < len; pos++) {
    for (size_t k = 0; k < sizeof flips; k++) {
      unsigned char *copy = malloc(len);
      memcpy(copy, buf, len);
      copy[pos] = k == 0 ? (unsigned char)(copy[pos] ^ 0xff) : flips[k];
      pd_safetensors_file f;
      pd_error err = {0};
      int rc = pd_safetensors_parse(copy, len, FILE_NAME, &f, &err);
      if (rc != PD_OK) {
        errors++;
        if (!strstr(err.msg, FILE_NAME) || f.n_tensors != 0) bad++;
      } else {
        for (int i = 0; i < f.n_tensors; i++) {
          const pd_safetensors_tensor *t = &f.tensors[i];
          if (t->data < copy + 8 || t->data + t->nbytes > copy + len) bad++;
        }
        pd_safetensors_free(&f);
      }
      free(copy);
    }
  }
  PD_CHECK_INT(st, bad, 0);
  PD_CHECK(st, errors > 0);
  free(buf);
}

int main(void) {
  pd_test_state st = {0};
  test_valid(&st);
  test_sorted_find(&st);
  test_f16(&st);
  test_short_and_lengths(&st);
  test_bad_headers(&st);
  test_bad_entries(&st);
  test_overlap_and_duplicates(&st);
  test_hostile_headers(&st);
  test_truncation(&st);
  test_corruption(&st);
  return pd_test_finish(&st, "safetensors");
}
