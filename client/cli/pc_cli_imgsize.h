/* pc_cli_imgsize: an image's width and height read from its header bytes
 * (PNG IHDR, JPEG SOF marker, TIFF ImageWidth/ImageLength), without decoding it, for the size
 * columns of the EcoTaxa output. Owns nothing. */
#ifndef PC_CLI_IMGSIZE_H
#define PC_CLI_IMGSIZE_H

#include <stddef.h>
#include <stdint.h>

/* 0 with *w, *h set; -1 when the bytes are not a PNG, JPEG or TIFF header it knows. */
int pc_cli_imgsize(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h);

#endif
