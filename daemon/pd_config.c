#include "pd_config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_yaml.h"

typedef enum { F_INT, F_STR, F_MODE, F_ADDR, F_METRICS, F_LEVEL, F_BACKEND, F_GROUP } field_type;

typedef struct field {
  const char *section, *key;
  field_type type;
  size_t off, cap; /* cap: string buffer size */
  long lo, hi;     /* F_INT range */
} field;

#define INT_FIELD(sec, k, member, lo, hi)                                                          \
  { sec, k, F_INT, offsetof(pd_config, member), 0, lo, hi }
#define STR_FIELD(sec, k, type, member)                                                            \
  { sec, k, type, offsetof(pd_config, member), sizeof(((pd_config *)0)->member), 0, 0 }

static const field fields[] = {
    STR_FIELD("listen", "socket", F_STR, socket_path),
    {"listen", "socket_mode", F_MODE, offsetof(pd_config, socket_mode), 0, 0, 0777},
    STR_FIELD("listen", "socket_group", F_GROUP, socket_group),
    STR_FIELD("listen", "tcp", F_ADDR, tcp),
    STR_FIELD("metrics", "listen", F_METRICS, metrics),
    INT_FIELD("metrics", "max_connections", metrics_max_connections, 1, 10000),
    INT_FIELD("metrics", "idle_timeout_s", metrics_idle_timeout_s, 1, 86400),
    STR_FIELD("kserve", "grpc_listen", F_METRICS, kserve_grpc),
    STR_FIELD("kserve", "http_listen", F_METRICS, kserve_http),
    STR_FIELD("model", "dir", F_STR, model_dir),
    STR_FIELD("engine", "backend", F_BACKEND, backend),
    INT_FIELD("engine", "device", device, 0, 64),
    INT_FIELD("engine", "threads", threads, 0, 256),
    INT_FIELD("engine", "decode_threads", decode_threads, 0, 1024),
    INT_FIELD("batching", "max_batch", max_batch, 1, 4096),
    INT_FIELD("batching", "max_queue_delay_us", max_queue_delay_us, 0, 10000000),
    INT_FIELD("batching", "max_queue", max_queue, 1, 1000000),
    INT_FIELD("limits", "max_frame_bytes", max_frame_bytes, 1024, 256L << 20),
    INT_FIELD("limits", "max_receive_bytes", max_receive_bytes, 1024, 1L << 40),
    INT_FIELD("limits", "max_image_width", max_image_width, 1, 65535),
    INT_FIELD("limits", "max_image_height", max_image_height, 1, 65535),
    INT_FIELD("limits", "max_image_pixels", max_image_pixels, 1, 1L << 30),
    INT_FIELD("limits", "max_in_flight_per_connection", max_in_flight, 1, 65536),
    INT_FIELD("limits", "max_connections", max_connections, 1, 100000),
    INT_FIELD("limits", "frame_timeout_ms", frame_timeout_ms, 0, 3600000),
    INT_FIELD("limits", "idle_timeout_s", idle_timeout_s, 0, 604800),
    INT_FIELD("limits", "max_tta", max_tta, 1, 1024),
    INT_FIELD("limits", "default_top_k", default_top_k, 1, 100000),
    INT_FIELD("limits", "drain_timeout_s", drain_timeout_s, 0, 86400),
    {"log", "level", F_LEVEL, offsetof(pd_config, log_level), 0, 0, 0},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static const char *const sections[] = {"listen",   "metrics", "kserve", "model", "engine",
                                       "batching", "limits",  "log",    NULL};
static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const char *const backend_names[] = {"auto", "cpu", "cuda"};

void pd_config_defaults(pd_config *cfg, const char *default_model_dir) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->socket_path, sizeof cfg->socket_path, "/run/planktond/planktond.sock");
  cfg->socket_mode = 0660;
  snprintf(cfg->model_dir, sizeof cfg->model_dir, "%s", default_model_dir ? default_model_dir : "");
  snprintf(cfg->backend, sizeof cfg->backend, "auto");
  cfg->threads = 0;
  cfg->decode_threads = 0;
  cfg->max_batch = 64;
  cfg->max_queue_delay_us = 2000;
  cfg->max_queue = 4096;
  cfg->max_frame_bytes = 16L << 20;
  cfg->max_receive_bytes = 256L << 20;
  cfg->max_image_width = 4096;
  cfg->max_image_height = 4096;
  cfg->max_image_pixels = 16L << 20;
  cfg->max_in_flight = 256;
  cfg->max_connections = 1024;
  cfg->frame_timeout_ms = 30000;
  cfg->idle_timeout_s = 0;
  cfg->metrics_max_connections = 16;
  cfg->metrics_idle_timeout_s = 300;
  cfg->max_tta = 64;
  cfg->default_top_k = 5;
  cfg->drain_timeout_s = 30;
  cfg->log_level = PD_LOG_INFO;
}

/* ---- values from text (shared by YAML and --set) ---- */

static bool parse_long(const char *s, int base, long *out) {
  if (!*s) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (p == s && (*p == '-' || *p == '+')))) return false;
  errno = 0;
  char *end;
  long v = strtol(s, &end, base);
  if (errno || *end) return false;
  *out = v;
  return true;
}

/* "host:port" or "[v6]:port", port 1..65535. */
static bool valid_host_port(const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s) return false;
  if (s[0] == '[' && colon[-1] != ']') return false;
  long port;
  return parse_long(colon + 1, 10, &port) && port >= 1 && port <= 65535;
}

/* Sets field f from text; on failure writes the reason to why. `plain` is
 * false for a quoted YAML scalar (numbers must not be quoted). */
static int field_from_text(const field *f, pd_config *cfg, const char *text, bool plain, char *why,
                           size_t why_len) {
  char *base = (char *)cfg + f->off;
  switch (f->type) {
  case F_INT: {
    long v;
    if (!plain || !parse_long(text, 10, &v)) {
      snprintf(why, why_len, "expected an integer in %ld..%ld, got '%s'", f->lo, f->hi, text);
      return PD_EINVAL;
    }
    if (v < f->lo || v > f->hi) {
      snprintf(why, why_len, "%ld is out of range %ld..%ld", v, f->lo, f->hi);
      return PD_ELIMIT;
    }
    *(long *)base = v;
    return PD_OK;
  }
  case F_MODE: {
    long v;
    if (!parse_long(text, 8, &v) || v < 0 || v > 0777) {
      snprintf(why, why_len, "expected an octal file mode such as 0660, got '%s'", text);
      return PD_EINVAL;
    }
    if (v & 0002) { /* connecting to a Unix socket takes write permission */
      snprintf(why, why_len,
               "%04lo would let every local user use the daemon: the socket must not be "
               "world-writable (use 0660 and listen.socket_group)",
               (unsigned long)v);
      return PD_EINVAL;
    }
    *(long *)base = v;
    return PD_OK;
  }
  case F_LEVEL:
  case F_BACKEND: {
    const char *const *names = f->type == F_LEVEL ? level_names : backend_names;
    int n = f->type == F_LEVEL ? 4 : 3;
    for (int i = 0; i < n; i++)
      if (!strcmp(text, names[i])) {
        if (f->type == F_LEVEL)
          *(pd_log_level *)base = (pd_log_level)i;
        else
          snprintf(base, f->cap, "%s", names[i]);
        return PD_OK;
      }
    snprintf(why, why_len, "expected %s, got '%s'",
             f->type == F_LEVEL ? "error, warning, info or debug" : "auto, cpu or cuda", text);
    return PD_EINVAL;
  }
  case F_STR:
  case F_GROUP:
  case F_ADDR:
  case F_METRICS: {
    size_t len = strlen(text);
    if (len >= f->cap) {
      snprintf(why, why_len, "longer than %zu bytes: '%.40s...'", f->cap - 1, text);
      return PD_ELIMIT;
    }
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)text[i] < 0x20) {
        snprintf(why, why_len, "control character at byte %zu", i);
        return PD_EINVAL;
      }
    if (f->type == F_GROUP)
      for (size_t i = 0; i < len; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
              (text[i] >= '0' && text[i] <= '9') || strchr("_-.", text[i]))) {
          snprintf(why, why_len, "expected a group name or number, got '%s'", text);
          return PD_EINVAL;
        }
    bool unix_addr = f->type == F_METRICS && !strncmp(text, "unix:", 5) && text[5];
    if (len && (f->type == F_ADDR || f->type == F_METRICS) && !unix_addr &&
        !valid_host_port(text)) {
      snprintf(why, why_len, "expected %s, got '%s'",
               f->type == F_ADDR ? "HOST:PORT (port 1..65535)" : "HOST:PORT or unix:PATH", text);
      return PD_EINVAL;
    }
    memcpy(base, text, len + 1);
    return PD_OK;
  }
  }
  snprintf(why, why_len, "unknown field type");
  return PD_EINTERNAL;
}

static const field *find_field(const char *section, size_t section_len, const char *key) {
  for (size_t i = 0; i < N_FIELDS; i++)
    if (strlen(fields[i].section) == section_len &&
        !strncmp(fields[i].section, section, section_len) && !strcmp(fields[i].key, key))
      return &fields[i];
  return NULL;
}

int pd_config_set(pd_config *cfg, const char *key, const char *value, pd_error *err) {
  const char *dot = strchr(key, '.');
  const field *f = dot ? find_field(key, (size_t)(dot - key), dot + 1) : NULL;
  if (!f) {
    char known[1024];
    size_t used = 0;
    known[0] = '\0';
    for (size_t i = 0; i < N_FIELDS && used < sizeof known; i++)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s.%s", i ? ", " : "",
                               fields[i].section, fields[i].key);
    return pd_error_set(err, PD_EINVAL, "unknown setting '%s' (known: %s)", key, known);
  }
  char why[400];
  int rc = field_from_text(f, cfg, value, true, why, sizeof why);
  if (rc != PD_OK) return pd_error_set(err, rc, "%s: %s", key, why);
  return PD_OK;
}

/* ---- YAML ---- */

static int load_section(pd_config *cfg, const pd_yaml_node *map, const char *section,
                        pd_error *err) {
  const char *allowed[N_FIELDS + 1];
  int n = 0;
  for (size_t i = 0; i < N_FIELDS; i++)
    if (!strcmp(fields[i].section, section)) allowed[n++] = fields[i].key;
  allowed[n] = NULL;
  int rc = pd_yaml_check_keys(map, allowed, err);
  if (rc != PD_OK) return rc;
  for (int i = 0; i < n; i++) {
    pd_yaml_node v = pd_yaml_get(map, allowed[i]);
    if (!pd_yaml_present(&v)) continue;
    const field *f = find_field(section, strlen(section), allowed[i]);
    char text[PD_PATH_LEN + 8] = "";
    if (!pd_yaml_is_null(&v)) {
      size_t len;
      const char *s = pd_yaml_scalar(&v, &len);
      if (!s) return pd_yaml_fail(&v, err, PD_EINVAL, "expected a scalar value");
      if (len >= sizeof text)
        return pd_yaml_fail(&v, err, PD_ELIMIT, "value longer than %zu bytes", sizeof text - 1);
      memcpy(text, s, len);
      text[len] = '\0';
      if (memchr(s, '\0', len)) return pd_yaml_fail(&v, err, PD_EINVAL, "NUL byte in value");
    } else if (f->type != F_STR && f->type != F_GROUP && f->type != F_ADDR &&
               f->type != F_METRICS) {
      return pd_yaml_fail(&v, err, PD_EINVAL, "a value is required");
    }
    char why[400];
    rc = field_from_text(f, cfg, text, pd_yaml_is_plain(&v), why, sizeof why);
    if (rc != PD_OK) return pd_yaml_fail(&v, err, rc, "%s", why);
  }
  return PD_OK;
}

/* A file of blank and comment lines only: YAML's empty document. */
static bool only_comments(const char *text, size_t len) {
  bool line_start = true, in_comment = false;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    if (ch == '\n') {
      line_start = true;
      in_comment = false;
    } else if (in_comment || ch == ' ' || ch == '\t' || ch == '\r') {
      continue;
    } else if (ch == '#' && line_start) {
      in_comment = true;
    } else {
      return false;
    }
  }
  return true;
}

int pd_config_load_mem(pd_config *cfg, const char *text, size_t len, const char *name,
                       pd_error *err) {
  if (only_comments(text, len)) return PD_OK;
  pd_yaml *y;
  int rc = pd_yaml_load(text, len, name, &y, err);
  if (rc != PD_OK) return rc;
  pd_config tmp = *cfg;
  pd_yaml_node root = pd_yaml_root(y);
  rc = pd_yaml_check_keys(&root, sections, err);
  for (int i = 0; rc == PD_OK && sections[i]; i++) {
    pd_yaml_node sec = pd_yaml_get(&root, sections[i]);
    if (pd_yaml_present(&sec) && !pd_yaml_is_null(&sec))
      rc = load_section(&tmp, &sec, sections[i], err);
  }
  pd_yaml_free(y);
  if (rc == PD_OK) *cfg = tmp;
  return rc;
}

int pd_config_load_file(pd_config *cfg, const char *path, pd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return pd_error_set(err, PD_EIO, "config %s: %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = PD_OK;
  for (;;) {
    if (cap - len < 4096) {
      if (cap >= (1u << 20)) {
        rc = pd_error_set(err, PD_ELIMIT, "config %s: larger than 1 MiB", path);
        break;
      }
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        rc = pd_error_set(err, PD_ENOMEM, "config %s: out of memory", path);
        break;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) rc = pd_error_set(err, PD_EIO, "config %s: read error", path);
      break;
    }
  }
  fclose(f);
  if (rc == PD_OK) rc = pd_config_load_mem(cfg, buf ? buf : "", len, path, err);
  free(buf);
  return rc;
}

int pd_config_validate(const pd_config *cfg, pd_error *err) {
  if (!cfg->model_dir[0]) return pd_error_set(err, PD_EINVAL, "model.dir: no model folder given");
  if (cfg->max_queue < cfg->max_batch)
    return pd_error_set(err, PD_EINVAL,
                        "batching.max_queue (%ld) must be at least batching.max_batch (%ld)",
                        cfg->max_queue, cfg->max_batch);
  if (cfg->max_image_pixels > cfg->max_image_width * cfg->max_image_height)
    return pd_error_set(err, PD_EINVAL,
                        "limits.max_image_pixels (%ld) exceeds max_image_width x "
                        "max_image_height (%ld x %ld)",
                        cfg->max_image_pixels, cfg->max_image_width, cfg->max_image_height);
  if (cfg->max_receive_bytes < cfg->max_frame_bytes)
    return pd_error_set(err, PD_EINVAL,
                        "limits.max_receive_bytes (%ld) must be at least limits.max_frame_bytes "
                        "(%ld): one frame of the largest size must fit",
                        cfg->max_receive_bytes, cfg->max_frame_bytes);
  if (cfg->socket_path[0] && cfg->socket_path[0] != '/')
    return pd_error_set(err, PD_EINVAL, "listen.socket: '%s' is not an absolute path",
                        cfg->socket_path);
  if (strlen(cfg->socket_path) >= 108)
    return pd_error_set(err, PD_ELIMIT, "listen.socket: '%s' is longer than 107 bytes",
                        cfg->socket_path);
  return PD_OK;
}

int pd_config_format(const pd_config *cfg, char *buf, size_t cap) {
  size_t used = 0;
  const char *section = "";
  for (size_t i = 0; i < N_FIELDS; i++) {
    const field *f = &fields[i];
    const char *base = (const char *)cfg + f->off;
    int n = 0;
    if (strcmp(section, f->section) != 0)
      n += snprintf(buf + used, used < cap ? cap - used : 0, "%s:\n", f->section);
    section = f->section;
    used += (size_t)n;
    char *at = buf + (used < cap ? used : cap);
    size_t left = used < cap ? cap - used : 0;
    switch (f->type) {
    case F_INT:
      n = snprintf(at, left, "  %s: %ld\n", f->key, *(const long *)base);
      break;
    case F_MODE:
      n = snprintf(at, left, "  %s: 0%03lo\n", f->key, *(const long *)base);
      break;
    case F_LEVEL:
      n = snprintf(at, left, "  %s: %s\n", f->key, pd_log_level_name(*(const pd_log_level *)base));
      break;
    default:
      n = snprintf(at, left, "  %s: \"%s\"\n", f->key, base);
      break;
    }
    used += (size_t)n;
  }
  return used < cap ? PD_OK : PD_ELIMIT;
}
