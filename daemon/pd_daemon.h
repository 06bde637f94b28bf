/* pd_daemon: planktond as a whole. Owns the loop and the parts it wires
 * together: settings (file + overrides, rebuilt on SIGHUP), the served model,
 * the pipeline, the front ends (pd_frontend.h: the protocol server, the
 * /metrics server), the stats, the signals and systemd notices. Start-up loads the model and builds
 * its plan before any listener opens; SIGTERM/SIGINT drain (stop accepting, answer everything
 * accepted, exit 0); SIGHUP reloads settings and model off the loop and swaps them in only if both
 * are good, and keeps the result (time, failure, message) for Health, Stats and /metrics. */
#ifndef PD_DAEMON_H
#define PD_DAEMON_H

#include "pd_config.h"
#include "pd_error.h"

#define PD_MAX_OVERRIDES 64

typedef struct pd_override {
  const char *flag; /* as given, for messages ("--max-batch") */
  const char *key;  /* "batching.max_batch" */
  const char *value;
} pd_override;

struct pd_backend; /* kernels/pd_backend.h */

typedef struct pd_settings_source {
  const char *config_path; /* NULL: none */
  const char *default_model_dir;
  int n_overrides;
  pd_override overrides[PD_MAX_OVERRIDES];
  /* pd_served_options.wrap_backend for every model load (tests only); NULL: none. */
  int (*wrap_backend)(struct pd_backend **be, pd_error *err);
} pd_settings_source;

/* Defaults, then the file, then the overrides; then the whole is checked.
 * Every problem goes to chk (each with its file:line or option), and the
 * settings that were good still apply to *out. Returns PD_OK when none. */
int pd_settings_check(const pd_settings_source *src, pd_config *out, pd_config_check *chk);
/* The same for start-up and reload: *out only when there is no problem;
 * err: the first problem (and how many more). */
int pd_settings_build(const pd_settings_source *src, pd_config *out, pd_error *err);

/* Runs until drained. Returns the process exit status (0 after a drain). */
int pd_daemon_run(const pd_settings_source *src);

#endif
