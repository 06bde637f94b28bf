/* pd_config: the daemon's settings. Owns the settings table: one row per
 * setting with its name ("section.key": the YAML layout and the --set
 * syntax are the same), type, default, range, command-line flag, whether a
 * reload may change it and its help line. Everything else reads that table:
 * the YAML reader (unknown keys and bad values are errors that name the
 * file, line, key and value), --set and the flags, --help, --print-config,
 * the example config (systemd/planktond.yaml, checked against the table by
 * test_daemon_config) and the reload (which settings a SIGHUP may change).
 * A new setting is one row (and its field below). Also owns the check of
 * the settings as a whole. A pd_config is a plain value: copy it freely.
 * Nothing here prints. */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stddef.h>

#include "pd_error.h"
#include "pd_log.h"

#define PD_PATH_LEN 512
#define PD_ADDR_LEN 300

typedef struct pd_config {
  /* listen */
  char socket_path[PD_PATH_LEN]; /* Unix socket for the protocol; "" = none */
  long socket_mode;              /* file mode of the socket (octal in YAML; never o+w) */
  char socket_group[64];         /* group owning the socket (name or number); "" = ours */
  char tcp[PD_ADDR_LEN];         /* "host:port" for the protocol over TCP; "" = off */
  /* metrics */
  char metrics[PD_ADDR_LEN]; /* HTTP /metrics: "host:port" or "unix:PATH"; "" = off */
  long metrics_max_connections;
  long metrics_idle_timeout_s; /* close a keep-alive /metrics connection silent this long */
  /* kserve: the Open Inference Protocol front ends ("" = off) */
  char kserve_grpc[PD_ADDR_LEN]; /* gRPC: "host:port" or "unix:PATH" */
  char kserve_http[PD_ADDR_LEN]; /* REST: "host:port" or "unix:PATH" */
  /* model */
  char model_dir[PD_PATH_LEN];
  char model_repository[PD_PATH_LEN]; /* "" = serve model_dir alone */
  char model_default[64];             /* repository: the name unnamed requests get */
  long model_max_loaded;              /* repository: versions loaded at once */
  long model_control;                 /* 0/1: run-time load/unload/reload (pd_control.h) */
  /* engine */
  char backend[16];       /* "auto" (CUDA when usable, else CPU), "cpu" or "cuda" */
  char precision[8];      /* "auto", "fp32", "bf16", "int8", "tf32", "fp16" (pd_precision.h) */
  long device;            /* CUDA device index */
  long cuda_graphs;       /* 0/1: CUDA graphs per batch bucket (pd_cuda_options.graphs) */
  long cuda_workspace_mb; /* most cuDNN workspace per convolution, MiB */
  /* where CUDA plans keep their algorithm choices (pd_algo_cache.h); "": off */
  char cuda_algo_cache_dir[256];
  long threads;            /* CPU engine threads; 0 = online CPUs */
  char on_device_error[8]; /* "auto", "cpu" or "fail" (pd_served.h) */
  long decode_threads;     /* libuv thread pool size; 0 = libuv's default */
  /* batching */
  long max_batch;
  long max_queue_delay_us;
  long max_queue;
  long adaptive_tta;         /* 0/1: fewer TTA views while the queue is behind */
  long min_tta;              /* the fewest views adaptive TTA goes down to */
  long adaptive_tta_wait_us; /* the wait bound; 0 = two batch computes (moving average) */
  /* limits */
  long max_frame_bytes;
  long max_receive_bytes; /* receive buffers of all connections, beyond 256 KiB each */
  long max_image_width, max_image_height, max_image_pixels;
  long max_frame_pixels; /* frame requests: width x height */
  long max_in_flight;    /* per connection */
  long max_connections;
  long frame_timeout_ms; /* a frame begun must be complete within this; 0 = no limit */
  long idle_timeout_s;   /* close a connection silent (nothing owed) this long; 0 = never */
  long max_tta;
  long default_top_k;
  long drain_timeout_s;
  long drain_grace_ms;
  /* log */
  pd_log_level log_level;
} pd_config;

/* ---- the table ---- */

typedef enum pd_setting_type {
  PD_SET_INT,    /* a decimal integer in lo..hi */
  PD_SET_MODE,   /* an octal file mode, never world-writable */
  PD_SET_PATH,   /* text ("" = none) */
  PD_SET_GROUP,  /* a group name or number ("" = the daemon's) */
  PD_SET_TCP,    /* HOST:PORT ("" = off) */
  PD_SET_LISTEN, /* HOST:PORT or unix:PATH ("" = off) */
  PD_SET_CHOICE, /* one of `choices`, kept as text */
  PD_SET_LEVEL,  /* one of `choices`, kept as a pd_log_level */
  PD_SET_BOOL,   /* true or false, kept as a long 1 or 0 */
} pd_setting_type;

typedef struct pd_setting {
  const char *name;          /* "batching.max_batch" */
  const char *section, *key; /* "batching", "max_batch" */
  pd_setting_type type;
  size_t off, cap;            /* the field in pd_config; cap: a text field's size */
  long lo, hi;                /* PD_SET_INT's range */
  long def;                   /* the default of a number, mode or level */
  const char *def_text;       /* the default of text (model.dir: the build's) */
  const char *const *choices; /* PD_SET_CHOICE, PD_SET_LEVEL; NULL-terminated */
  const char *flag, *arg;     /* "--max-batch", "N"; NULL: only --set */
  int reloadable;             /* a SIGHUP may change it; else it needs a restart */
  const char *help;           /* one line, for --help and the example config */
} pd_setting;

/* Every setting, in the order of the YAML layout. */
const pd_setting *pd_config_settings(size_t *n);
/* The setting with this command-line flag ("--max-batch", len bytes of
 * it), or NULL. */
const pd_setting *pd_config_flag(const char *flag, size_t len);

/* The restart-only settings of *next that differ from *running get their
 * running values back (a reload cannot change them). Returns how many
 * differed; their names go to names[cap] ("listen.tcp, metrics.listen"). */
int pd_config_keep_restart_only(pd_config *next, const pd_config *running, char *names, size_t cap);

/* The options part of --help, one line per flag (default_model_dir: the
 * default shown for model.dir). */
int pd_config_usage(char *buf, size_t cap, const char *default_model_dir);
/* The example config: every setting with its default and help, the
 * restart-only ones named (systemd/planktond.yaml is this text for
 * model_dir /usr/local/share/planktond/models/ndsb-seed). */
int pd_config_example(char *buf, size_t cap, const char *model_dir);

/* ---- values ---- */

/* Compiled-in defaults; model_dir is the build's default model folder. */
void pd_config_defaults(pd_config *cfg, const char *default_model_dir);

/* Reads a YAML file over *cfg (keys it does not name keep their values). */
int pd_config_load_file(pd_config *cfg, const char *path, pd_error *err);
/* The same from memory; `name` is used in messages. */
int pd_config_load_mem(pd_config *cfg, const char *text, size_t len, const char *name,
                       pd_error *err);

/* Sets one setting by its dotted name ("batching.max_batch") from text, with
 * the YAML reader's checks. Errors name the key and the value. */
int pd_config_set(pd_config *cfg, const char *key, const char *value, pd_error *err);

/* Checks the settings together (e.g. at least one listener). */
int pd_config_validate(const pd_config *cfg, pd_error *err);

/* ---- every problem at once (--check-config, and the messages of start-up
 * and reload) ---- */

#define PD_CONFIG_MAX_SETTINGS 64

/* Where each setting's value came from and every problem found so far
 * (one per line, "FILE:LINE: key: what", in the order found). */
typedef struct pd_config_check {
  char file[PD_PATH_LEN];           /* the config file; "" when none */
  int line[PD_CONFIG_MAX_SETTINGS]; /* per table row: its line in the file; 0 if not set there */
  const char *flag[PD_CONFIG_MAX_SETTINGS]; /* per table row: the option that set it, or NULL */
  int n_problems;
  size_t len;
  char text[16384];
} pd_config_check;

void pd_config_check_init(pd_config_check *chk);
/* Adds one problem (a line of its own). */
void pd_config_problem(pd_config_check *chk, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reads a YAML file over *cfg as pd_config_load_file does, but keeps going
 * past each bad key or value (the others still apply) and adds every
 * problem to chk, with the line each setting came from. */
void pd_config_check_file(pd_config *cfg, const char *path, pd_config_check *chk);
/* pd_config_set, its problem added to chk (prefixed with flag) and its
 * origin kept. */
void pd_config_check_set(pd_config *cfg, const char *flag, const char *key, const char *value,
                         pd_config_check *chk);
/* pd_config_validate's checks, every one, each naming where both of the
 * settings it involves came from ("FILE:LINE", the option, or "default"). */
void pd_config_check_settings(const pd_config *cfg, pd_config_check *chk);
/* What can be checked without starting (pd_config_system.c): the model
 * folder loads and validates, the socket group exists, the socket's folder
 * exists or can be created. */
void pd_config_check_system(const pd_config *cfg, pd_config_check *chk);
/* Where setting `name` came from, as above, into buf[cap]. */
const char *pd_config_origin(const pd_config_check *chk, const char *name, char *buf, size_t cap);

/* Writes every setting as YAML (for --print-config and the start-up log). */
int pd_config_format(const pd_config *cfg, char *buf, size_t cap);

#endif
