#include "pd_sd.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void pd_sd_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = path ? strlen(path) : 0;
  if (n < 2 || n >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) return;
  memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0'; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, len);
  close(fd);
}

#ifdef PD_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

int pd_sd_listen_fds(pd_sd_fds *out) {
  memset(out, 0, sizeof *out);
  char **names = NULL;
  int n = sd_listen_fds_with_names(1, &names);
  if (n <= 0) return n;
  for (int i = 0; i < n; i++) {
    if (i < PD_SD_MAX_FDS) {
      out->fd[i] = SD_LISTEN_FDS_START + i;
      snprintf(out->name[i], sizeof out->name[i], "%s", names && names[i] ? names[i] : "");
    }
    if (names) free(names[i]);
  }
  free(names);
  out->n = n < PD_SD_MAX_FDS ? n : PD_SD_MAX_FDS;
  return out->n;
}

#else

int pd_sd_listen_fds(pd_sd_fds *out) {
  memset(out, 0, sizeof *out);
  return 0;
}

#endif
