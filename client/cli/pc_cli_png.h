/* pc_cli_png: writing an 8-bit gray image as a PNG file (libpng's
 * simplified API): the crops that `segment --save-crops` and `segment
 * --format ecotaxa` write. Owns nothing. */
#ifndef PC_CLI_PNG_H
#define PC_CLI_PNG_H

#include <stdint.h>

#include "pc_cli.h"

/* pixels: height rows of width bytes. Fails (PC_CLI_EXIT_FAILED) naming
 * the path and libpng's message. */
int pc_cli_png_write_gray(const char *path, unsigned width, unsigned height, const uint8_t *pixels,
                          pc_cli_error *err);

#endif
