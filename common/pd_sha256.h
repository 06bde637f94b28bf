/* pd_sha256: SHA-256 (FIPS 180-4) of a file, as the lowercase hex that
 * sha256sum prints; used to tie a record in a model folder to the weights
 * it was measured on. */
#ifndef PD_SHA256_H
#define PD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"

#define PD_SHA256_HEX_LEN 64

/* hex: PD_SHA256_HEX_LEN + 1 chars. Errors name the file. */
int pd_sha256_file(const char *path, char hex[PD_SHA256_HEX_LEN + 1], pd_error *err);

/* The digest of a buffer (for tests). */
void pd_sha256_buf(const void *data, size_t len, char hex[PD_SHA256_HEX_LEN + 1]);

#endif
