/* fuzz_tiff: the TIFF decoder (input/pd_image_tiff.c, libtiff over the
 * bytes in memory) through pd_image_decode, under the daemon's default
 * limits and under small ones (64 x 64, 2048 pixels), so both the size
 * checks and the strip and tile readers are reached. Inputs that do not
 * start with a TIFF header are skipped (the image target covers the
 * sniffing).
 *
 * Oracles: a decoded image has 1..limit pixels per side and at most the
 * pixel limit, and every pixel is readable (summed: ASan sees the whole
 * buffer); a refusal has one of the decoder's codes and a message naming
 * TIFF; nothing libtiff says reaches its global handlers (they abort
 * here). */
#include <stdarg.h>
#include <string.h>

#include <tiffio.h>

#include "fuzz_target.h"
#include "pd_image.h"

static void global_handler(const char *module, const char *fmt, va_list ap) {
  (void)module;
  (void)ap;
  fprintf(stderr, "fuzz_tiff: a libtiff message reached the global handler: %s\n", fmt);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  TIFFSetErrorHandler(global_handler);
  TIFFSetWarningHandler(global_handler);
  return 0;
}

static void decode_with(const uint8_t *data, size_t size, const pd_image_limits *lim) {
  pd_gray_image img;
  pd_error err = {0};
  int rc = pd_image_decode(data, size, lim, &img, &err);
  if (rc == PD_OK) {
    PD_FUZZ_ASSERT(img.pixels != NULL);
    PD_FUZZ_ASSERT(img.width >= 1 && img.width <= lim->max_width);
    PD_FUZZ_ASSERT(img.height >= 1 && img.height <= lim->max_height);
    PD_FUZZ_ASSERT((long)img.width * img.height <= lim->max_pixels);
    unsigned long sum = 0;
    for (size_t i = 0; i < (size_t)img.width * (size_t)img.height; i++)
      sum += img.pixels[i];
    PD_FUZZ_ASSERT(sum <= 255ul * (size_t)img.width * (size_t)img.height);
    pd_gray_image_free(&img);
    return;
  }
  PD_FUZZ_ASSERT(img.pixels == NULL && img.width == 0 && img.height == 0);
  PD_FUZZ_ASSERT(rc == PD_EFORMAT || rc == PD_EUNSUPP || rc == PD_ELIMIT || rc == PD_ENOMEM);
  PD_FUZZ_ASSERT(err.code == rc);
  PD_FUZZ_ASSERT(strstr(err.msg, "TIFF") != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (pd_image_sniff(data, size) != PD_IMAGE_TIFF) return 0;
  pd_image_limits def = pd_image_limits_default();
  decode_with(data, size, &def);
  pd_image_limits small = {.max_width = 64, .max_height = 64, .max_pixels = 2048};
  decode_with(data, size, &small);
  return 0;
}
