/* fuzz_image: the decode thread's work on one request's image bytes, the
 * one input path (input/pd_input.h) the daemon runs: pd_input_decode (PNG
 * or JPEG, sniffed) under the daemon's default limits, then the
 * preprocessing warp into a model's input slots, once without TTA
 * (pd_input_fill_view) and once with TTA transforms (pd_input_fill).
 *
 * The model is built once, in memory, by LLVMFuzzerInitialize: two image
 * branches (fit-to-size 15x15 and fixed-factor 11x11) and a size-feature
 * branch with every feature, D4 symmetry and TTA with flips and wide
 * ranges, so every path of the warp is reachable. It is never written
 * after that (the only global beyond libFuzzer's own).
 *
 * PNG chunks carry a CRC that libpng checks first, so nearly every mutation
 * of a PNG would stop there: the target rewrites each chunk's CRC (in its
 * own copy of the input) before decoding, as fuzzing harnesses of libpng
 * do, so the mutations reach the chunk parsers and the pixel path.
 *
 * Then every decoded crop also goes through pd_warp_branch with branch and
 * augmentation parameters at the edges of what the model loader and TTA
 * accept (patch 1 and 64 pixels, fit_size and factor near 0 and at their
 * maximum, zoom 0.01 and 100, shear 80 degrees, stretch 100, translation
 * 1024), so the warp's clipping and sampling meet extreme affine maps.
 *
 * Oracles: a decoded image has 1..limit pixels per side; every input value
 * is finite; TTA transform 0 (the identity) fills exactly the slots that
 * pd_input_fill_view fills. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "pd_image.h"
#include "pd_input.h"
#include "pd_model.h"
#include "pd_test_model.h"
#include "pd_tta.h"
#include "pd_warp.h"

#define FUZZ_VIEWS 4

static const char k_yaml[] =
    "format: 1\n"
    "name: fuzz-image\n"
    "version: \"1\"\n"
    "classes: [a, b, c]\n"
    "symmetry: d4\n"
    "input: {invert: true, background: 255, mean: 0.05, std: 0.15}\n"
    "branches:\n"
    "  - name: fit\n"
    "    input: {kind: image, size: 15, rescale: fit, fit_size: 13}\n"
    "    layers: [{type: global_avg_pool}]\n"
    "  - name: fixed\n"
    "    input: {kind: image, size: 11, rescale: fixed, factor: 4}\n"
    "    layers: [{type: global_avg_pool}]\n"
    "  - name: size\n"
    "    input: {kind: size_features, features: [log_long, log_short, log_area, log_elongation]}\n"
    "head:\n"
    "  layers: [{type: dense, units: 3, name: logits}, {type: softmax}]\n"
    "tta: {count: 4, zoom: [0.5, 2.0], rotation: [0, 360], shear: [-30, 30],\n"
    "      translate: [-20, 20], stretch: 1.5, flip: true}\n";

static const pd_test_tensor k_tensors[] = {
    {"logits.weight", 2, {3, 6}},
    {"logits.bias", 1, {3}},
};

static pd_model *g_model; /* set once by LLVMFuzzerInitialize, read-only after */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  pd_error err = {0};
  if (pd_test_load_model(k_yaml, k_tensors, 2, 1, &g_model, &err) != PD_OK) {
    fprintf(stderr, "fuzz_image: the built-in model does not load: %s\n", err.msg);
    abort();
  }
  return 0;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* Rewrites the CRC of every whole chunk after the PNG signature. */
static void fix_png_crcs(uint8_t *d, size_t len) {
  if (pd_image_sniff(d, len) != PD_IMAGE_PNG) return;
  size_t pos = 8;
  while (len - pos >= 12) {
    uint32_t n = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 | (uint32_t)d[pos + 2] << 8 |
                 d[pos + 3];
    if (n > len - pos - 12) break;
    uint32_t crc = crc32_png(d + pos + 4, (size_t)n + 4);
    uint8_t *at = d + pos + 8 + n;
    at[0] = (uint8_t)(crc >> 24);
    at[1] = (uint8_t)(crc >> 16);
    at[2] = (uint8_t)(crc >> 8);
    at[3] = (uint8_t)crc;
    pos += 12 + (size_t)n;
  }
}

static void check_finite(const float *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    PD_FUZZ_ASSERT(isfinite(v[i]));
}

static void extreme_warps(const pd_model *m, const pd_gray_image *img) {
  static const struct {
    int size;
    pd_rescale rescale;
    float fit_size, factor;
  } branches[] = {
      {1, PD_RESCALE_FIT, 1e-3f, 0},   {64, PD_RESCALE_FIT, 1e5f, 0},
      {17, PD_RESCALE_FIXED, 0, 1e4f}, {33, PD_RESCALE_FIXED, 0, 1e-4f},
      {64, PD_RESCALE_FIT, 0.5f, 0},
  };
  static const pd_warp_aug augs[] = {
      {.zoom = 0.01,
       .rotation_deg = 359.9,
       .shear_deg = 80,
       .tx = 1024,
       .ty = -1024,
       .stretch = 100,
       .flip = true},
      {.zoom = 100,
       .rotation_deg = -360,
       .shear_deg = -80,
       .tx = -0.5,
       .ty = 0.5,
       .stretch = 0.01,
       .flip = false},
      {.zoom = 1, .rotation_deg = 45, .shear_deg = 0, .tx = 0, .ty = 0, .stretch = 1, .flip = true},
  };
  float out[64 * 64];
  for (size_t b = 0; b < sizeof branches / sizeof branches[0]; b++) {
    pd_input_branch br;
    memset(&br, 0, sizeof br);
    br.kind = PD_INPUT_IMAGE;
    br.size = branches[b].size;
    br.rescale = branches[b].rescale;
    br.fit_size = branches[b].fit_size;
    br.factor = branches[b].factor;
    for (size_t a = 0; a <= sizeof augs / sizeof augs[0]; a++) {
      const pd_warp_aug *aug = a < sizeof augs / sizeof augs[0] ? &augs[a] : NULL;
      pd_warp_branch(&br, &m->input, img->pixels, img->width, img->height, aug, out);
      check_finite(out, (size_t)br.size * br.size);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_model) LLVMFuzzerInitialize(NULL, NULL);
  const pd_model *m = g_model;
  const pd_image_limits lim = pd_image_limits_default();
  pd_gray_image img = {0};
  pd_error err = {0};
  uint8_t *bytes = malloc(size ? size : 1);
  PD_FUZZ_ASSERT(bytes != NULL);
  memcpy(bytes, data, size);
  fix_png_crcs(bytes, size);
  const pd_input_bytes in = {.data = bytes, .len = size, .declared = PD_IMAGE_UNKNOWN};
  int owned = 0;
  int rc = pd_input_decode(&in, &lim, &img, &owned, &err);
  free(bytes);
  if (rc != PD_OK) {
    PD_FUZZ_ASSERT(rc < 0 && img.pixels == NULL);
    PD_FUZZ_ASSERT(err.msg[0] != '\0');
    return 0;
  }
  PD_FUZZ_ASSERT(img.pixels != NULL && owned);
  PD_FUZZ_ASSERT(img.width >= 1 && img.width <= lim.max_width);
  PD_FUZZ_ASSERT(img.height >= 1 && img.height <= lim.max_height);
  PD_FUZZ_ASSERT((long)img.width * img.height <= lim.max_pixels);

  /* slots as the pipeline lays them out: branch-major, FUZZ_VIEWS per branch */
  size_t slot_floats = 0;
  for (int b = 0; b < m->n_branches; b++)
    slot_floats += pd_model_branch_input_len(m, b);
  float *plain = malloc(slot_floats * sizeof *plain);
  float *tta = malloc(FUZZ_VIEWS * slot_floats * sizeof *tta);
  PD_FUZZ_ASSERT(plain && tta);
  float *plain_at[PD_MAX_BRANCHES], *tta_at[PD_MAX_BRANCHES];
  float *p = plain, *t = tta;
  for (int b = 0; b < m->n_branches; b++) {
    plain_at[b] = p;
    tta_at[b] = t;
    p += pd_model_branch_input_len(m, b);
    t += FUZZ_VIEWS * pd_model_branch_input_len(m, b);
  }
  const pd_input_desc desc = pd_model_input(m);
  pd_input_fill_view(&desc, img.pixels, img.width, img.height, NULL, plain_at);
  check_finite(plain, slot_floats);

  PD_FUZZ_ASSERT(pd_input_fill(&desc, img.pixels, img.width, img.height, FUZZ_VIEWS, tta_at, 0,
                               &err) == PD_OK);
  check_finite(tta, FUZZ_VIEWS * slot_floats);
  for (int b = 0; b < m->n_branches; b++)
    PD_FUZZ_ASSERT(
        memcmp(plain_at[b], tta_at[b], pd_model_branch_input_len(m, b) * sizeof(float)) == 0);
  extreme_warps(m, &img);
  free(plain);
  free(tta);
  pd_gray_image_free(&img);
  return 0;
}
