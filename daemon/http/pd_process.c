#include "pd_process.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Fields of /proc/self/stat (proc(5), counted from 1): */
#define STAT_UTIME 14
#define STAT_STIME 15
#define STAT_STARTTIME 22
#define STAT_VSIZE 23
#define STAT_RSS 24

static int read_stat(char *buf, size_t cap, pd_error *err) {
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return pd_error_set(err, PD_EIO, "/proc/self/stat: %s", strerror(errno));
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n ? PD_OK : pd_error_set(err, PD_EIO, "/proc/self/stat: empty");
}

/* Entries of /proc/self/fd, less the one reading it. */
static int count_fds(double *out, pd_error *err) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return pd_error_set(err, PD_EIO, "/proc/self/fd: %s", strerror(errno));
  long n = 0;
  for (struct dirent *e; (e = readdir(dir));)
    n += e->d_name[0] != '.';
  closedir(dir);
  *out = (double)(n - 1);
  return PD_OK;
}

int pd_process_sample(pd_process_stats *out, pd_error *err) {
  memset(out, 0, sizeof *out);
  char buf[2048];
  int rc = read_stat(buf, sizeof buf, err);
  if (rc != PD_OK) return rc;
  /* the command name (field 2) is in parentheses and may hold anything:
   * the fields after it start after the last ')' */
  char *p = strrchr(buf, ')');
  if (!p) return pd_error_set(err, PD_EIO, "/proc/self/stat: no ')' after the command name");
  unsigned long long field[STAT_RSS + 1] = {0};
  int at = 3; /* p + 2 is field 3, the state letter */
  char *save = NULL;
  for (char *tok = strtok_r(p + 2, " ", &save); tok && at <= STAT_RSS;
       tok = strtok_r(NULL, " ", &save), at++)
    field[at] = at == 3 ? 0 : strtoull(tok, NULL, 10);
  if (at <= STAT_RSS)
    return pd_error_set(err, PD_EIO, "/proc/self/stat: %d fields, not 24", at - 1);
  const long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0)
    return pd_error_set(err, PD_EIO, "sysconf: no clock ticks or page size");
  out->cpu_seconds = (double)(field[STAT_UTIME] + field[STAT_STIME]) / (double)ticks;
  out->virtual_bytes = (double)field[STAT_VSIZE];
  out->resident_bytes = (double)field[STAT_RSS] * (double)page;
  /* The start time is in ticks after boot: the boot-time clock gives the
   * epoch time of boot without /proc/stat (hidden under ProcSubset=pid). */
  struct timespec real, boot;
  if (clock_gettime(CLOCK_REALTIME, &real) != 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
    return pd_error_set(err, PD_EIO, "clock_gettime: %s", strerror(errno));
  const double booted = ((double)real.tv_sec + (double)real.tv_nsec * 1e-9) -
                        ((double)boot.tv_sec + (double)boot.tv_nsec * 1e-9);
  out->start_time_seconds = booted + (double)field[STAT_STARTTIME] / (double)ticks;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return pd_error_set(err, PD_EIO, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
  out->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur;
  return count_fds(&out->open_fds, err);
}
