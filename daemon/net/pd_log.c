#include "pd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

const char *pd_log_level_name(pd_log_level level) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  return level >= PD_LOG_ERROR && level <= PD_LOG_DEBUG ? names[level] : "?";
}

void pd_log_init(pd_log *lg, pd_log_level level) {
  lg->level = level;
  lg->journal = getenv("JOURNAL_STREAM") != NULL;
}

void pd_logf(const pd_log *lg, pd_log_level level, const char *fmt, ...) {
  if (!lg || level > lg->level) return;
  static const int priority[] = {3, 4, 6, 7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
  char line[2048];
  int n;
  if (lg->journal) {
    n = snprintf(line, sizeof line, "<%d>", priority[level]);
  } else {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n,
                  ".%03dZ planktond %s: ", (int)(tv.tv_usec / 1000), pd_log_level_name(level));
  }
  va_list ap;
  va_start(ap, fmt);
  if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof line - 1) n = (int)sizeof line - 2;
  line[n++] = '\n';
  fwrite(line, 1, (size_t)n, stderr);
}
