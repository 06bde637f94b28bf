/* pd_log: one line per event on stderr. Owns nothing but the format: under
 * systemd (JOURNAL_STREAM set) each line starts with the sd-daemon priority
 * prefix ("<6>") so journald keeps the level; otherwise with a UTC time and
 * the level name. The logger value belongs to main and is passed down to the
 * few modules that report events (listeners, connections, reload). */
#ifndef PD_LOG_H
#define PD_LOG_H

typedef enum { PD_LOG_ERROR = 0, PD_LOG_WARNING, PD_LOG_INFO, PD_LOG_DEBUG } pd_log_level;

typedef struct pd_log {
  pd_log_level level;
  int journal;
} pd_log;

void pd_log_init(pd_log *lg, pd_log_level level);
void pd_logf(const pd_log *lg, pd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "error", "warning", "info", "debug"; "?" for anything else. */
const char *pd_log_level_name(pd_log_level level);

#endif
