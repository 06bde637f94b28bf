/* pc_cli_png: gray8 PNG files (pc_cli_png.h). */
#include "pc_cli_png.h"

#include <png.h>
#include <string.h>

int pc_cli_png_write_gray(const char *path, unsigned width, unsigned height, const uint8_t *pixels,
                          pc_cli_error *err) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = width;
  img.height = height;
  img.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&img, path, 0, pixels, (png_int_32)width, NULL))
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: %s", path, img.message);
  return PC_CLI_EXIT_OK;
}
