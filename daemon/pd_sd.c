#include "pd_sd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void pd_sd_notify(const char *state) {
  sd_notify(0, state);
}

#else

int pd_sd_listen_fds(pd_sd_fds *out) {
  memset(out, 0, sizeof *out);
  return 0;
}

void pd_sd_notify(const char *state) {
  (void)state;
}

#endif
