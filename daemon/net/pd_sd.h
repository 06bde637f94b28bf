/* pd_sd: the systemd glue. Owns nothing: readiness and status notices
 * (the sd_notify protocol: a datagram to $NOTIFY_SOCKET; a no-op outside
 * systemd) and the sockets systemd passed us (sd_listen_fds, with their
 * FileDescriptorName). Built without libsystemd, no sockets are inherited.
 * A notice never blocks the loop: it is sent non-blocking and dropped if
 * the receiver's queue is full (libsystemd's sd_notify would wait, and a
 * receiver that stops reading would then stop the daemon). */
#ifndef PD_SD_H
#define PD_SD_H

#define PD_SD_MAX_FDS 16

typedef struct pd_sd_fds {
  int n;
  int fd[PD_SD_MAX_FDS];
  char name[PD_SD_MAX_FDS][64]; /* "metrics" marks the /metrics socket */
} pd_sd_fds;

/* Takes the inherited sockets (and clears LISTEN_* from the environment).
 * Returns their count, or a negative errno. */
int pd_sd_listen_fds(pd_sd_fds *out);

/* "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...". */
void pd_sd_notify(const char *state);

#endif
