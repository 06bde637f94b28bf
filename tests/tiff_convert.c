/* tiff_convert IN OUT.tif OUT.png: decodes the crop IN (PNG, JPEG or TIFF)
 * to gray8 with the daemon's decoder and writes the same pixels as an 8-bit
 * gray TIFF (MinIsBlack, LZW, strips of 16 rows; libtiff's writer) and as
 * an 8-bit gray PNG, so a test can send one crop in both formats. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

#include <tiffio.h>

#include "pd_image.h"
#include "pd_test_tiff.h"

static int write_png(const char *path, const pd_gray_image *img) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < img->height; y++)
    png_write_row(png, img->pixels + (size_t)y * img->width);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tiff_convert IN OUT.tif OUT.png\n");
    return 2;
  }
  pd_gray_image img;
  pd_error err = {0};
  if (pd_image_load_file(argv[1], NULL, &img, &err) != PD_OK) {
    fprintf(stderr, "tiff_convert: %s\n", err.msg);
    return 1;
  }
  pd_test_tiff sp = {.width = (uint32_t)img.width,
                     .height = (uint32_t)img.height,
                     .bits = 8,
                     .samples = 1,
                     .photometric = PHOTOMETRIC_MINISBLACK,
                     .compression = COMPRESSION_LZW,
                     .rows_per_strip = 16,
                     .pixels = img.pixels};
  size_t len = 0;
  uint8_t *t = pd_test_tiff_write(&sp, &len);
  FILE *f = t ? fopen(argv[2], "wb") : NULL;
  int ok = f && fwrite(t, 1, len, f) == len;
  if (f && fclose(f) != 0) ok = 0;
  free(t);
  if (!ok || write_png(argv[3], &img) != 0) {
    fprintf(stderr, "tiff_convert: cannot write %s or %s\n", argv[2], argv[3]);
    pd_gray_image_free(&img);
    return 1;
  }
  printf("%dx%d\n", img.width, img.height);
  pd_gray_image_free(&img);
  return 0;
}
