/* pd_file: reading a whole file into memory, with a size limit, for the
 * loaders (model.yaml, weights, ensemble folders). Owns nothing after it
 * returns: the caller frees the buffer. */
#ifndef PD_FILE_H
#define PD_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "pd_error.h"

/* Reads the regular file `path` of at most max_bytes into *buf (malloc'd,
 * one NUL byte after the data, so text can be parsed in place) and its
 * length into *len. Errors name the path: PD_EIO (cannot open, stat or read;
 * not a regular file), PD_ELIMIT (larger than max_bytes), PD_ENOMEM. */
int pd_file_read(const char *path, off_t max_bytes, unsigned char **buf, size_t *len,
                 pd_error *err);

#endif
