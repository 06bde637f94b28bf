#include "pd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pd_file_read(const char *path, off_t max_bytes, unsigned char **buf, size_t *len,
                 pd_error *err) {
  *buf = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return pd_error_set(err, PD_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  int rc = PD_OK;
  if (fstat(fd, &sb) != 0)
    rc = pd_error_set(err, PD_EIO, "cannot stat %s: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    rc = pd_error_set(err, PD_EIO, "%s is not a regular file", path);
  else if (sb.st_size > max_bytes)
    rc = pd_error_set(err, PD_ELIMIT, "%s is %lld bytes (at most %lld)", path,
                      (long long)sb.st_size, (long long)max_bytes);
  unsigned char *data = rc == PD_OK ? malloc((size_t)sb.st_size + 1) : NULL;
  if (!data) {
    close(fd);
    return rc == PD_OK ? pd_error_set(err, PD_ENOMEM, "%s: out of memory", path) : rc;
  }
  size_t got = 0;
  while (rc == PD_OK && got < (size_t)sb.st_size) {
    ssize_t r = read(fd, data + got, (size_t)sb.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      rc = pd_error_set(err, PD_EIO, "cannot read %s: %s", path, strerror(errno));
    else if (r == 0)
      break; /* shrank while reading: parse what is there */
    else
      got += (size_t)r;
  }
  close(fd);
  if (rc != PD_OK) {
    free(data);
    return rc;
  }
  data[got] = 0;
  *buf = data;
  *len = got;
  return PD_OK;
}
