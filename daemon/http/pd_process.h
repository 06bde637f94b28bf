/* pd_process: the standard process_* figures of this process, as the
 * Prometheus client libraries export them (CPU seconds, resident and
 * virtual memory, open and maximum descriptors, start time), read from
 * /proc/self/stat, /proc/self/fd and getrlimit. Owns nothing. */
#ifndef PD_PROCESS_H
#define PD_PROCESS_H

#include "pd_error.h"

typedef struct pd_process_stats {
  double cpu_seconds;        /* user + system */
  double resident_bytes;     /* RSS */
  double virtual_bytes;      /* VSZ */
  double open_fds;           /* entries of /proc/self/fd */
  double max_fds;            /* soft RLIMIT_NOFILE (-1: unlimited) */
  double start_time_seconds; /* since the epoch */
} pd_process_stats;

/* Samples this process now. PD_EIO (naming the file) when /proc cannot be
 * read or parsed. */
int pd_process_sample(pd_process_stats *out, pd_error *err);

#endif
