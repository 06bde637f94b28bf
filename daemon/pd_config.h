/* pd_config: the daemon's settings. Owns their defaults, their names (one
 * table: "section.key", the YAML layout and the --set syntax are the same),
 * their ranges, the YAML reader (unknown keys and bad values are errors that
 * name the file, line, key and value) and the check of the settings as a
 * whole. A pd_config is a plain value: copy it freely. Nothing here prints. */
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
  /* engine */
  char backend[16];    /* "auto" (CUDA when usable, else CPU), "cpu" or "cuda" */
  long device;         /* CUDA device index */
  long threads;        /* CPU engine threads; 0 = online CPUs */
  long decode_threads; /* libuv thread pool size; 0 = libuv's default */
  /* batching */
  long max_batch;
  long max_queue_delay_us;
  long max_queue;
  /* limits */
  long max_frame_bytes;
  long max_receive_bytes; /* receive buffers of all connections, beyond 256 KiB each */
  long max_image_width, max_image_height, max_image_pixels;
  long max_in_flight; /* per connection */
  long max_connections;
  long frame_timeout_ms; /* a frame begun must be complete within this; 0 = no limit */
  long idle_timeout_s;   /* close a connection silent (nothing owed) this long; 0 = never */
  long max_tta;
  long default_top_k;
  long drain_timeout_s;
  /* log */
  pd_log_level log_level;
} pd_config;

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

/* Writes every setting as YAML (for --print-config and the start-up log). */
int pd_config_format(const pd_config *cfg, char *buf, size_t cap);

#endif
