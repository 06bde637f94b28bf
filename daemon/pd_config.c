#include "pd_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_yaml.h"

static const char *const level_names[] = {"error", "warning", "info", "debug", NULL};
static const char *const backend_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const precision_names[] = {"auto", "fp32", "bf16", "int8", "tf32", "fp16", NULL};
static const char *const on_device_error_names[] = {"auto", "cpu", "fail", NULL};

/* (sec and k are string literals, joined: they cannot be parenthesized) */
/* NOLINTNEXTLINE(bugprone-macro-parentheses) */
#define FIELD(sec, k, m) .name = sec "." k, .section = sec, .key = k, .off = offsetof(pd_config, m)
#define TEXT(m) .cap = sizeof(((pd_config *)0)->m)
#define RELOAD 1
#define RESTART 0

/* The settings. A row: the name and field, the type, the default (and
 * range), the flag, whether a reload may change it, its help. */
static const pd_setting settings[] = {
    {FIELD("listen", "socket", socket_path), TEXT(socket_path), .type = PD_SET_PATH,
     .def_text = "/run/planktond/planktond.sock", .flag = "--socket", .arg = "PATH",
     .reloadable = RESTART,
     .help = "Unix socket for the protocol; \"\" = none (ignored under socket activation)"},
    {FIELD("listen", "socket_mode", socket_mode), .type = PD_SET_MODE, .lo = 0, .hi = 0777,
     .def = 0660, .flag = "--socket-mode", .arg = "MODE", .reloadable = RESTART,
     .help = "octal file mode of that socket (never world-writable)"},
    {FIELD("listen", "socket_group", socket_group), TEXT(socket_group), .type = PD_SET_GROUP,
     .def_text = "", .flag = "--socket-group", .arg = "GROUP", .reloadable = RESTART,
     .help = "group owning that socket (name or number); \"\" = the daemon's"},
    {FIELD("listen", "tcp", tcp), TEXT(tcp), .type = PD_SET_TCP, .def_text = "", .flag = "--tcp",
     .arg = "HOST:PORT", .reloadable = RESTART,
     .help = "HOST:PORT for the protocol over TCP; \"\" = off"},
    {FIELD("metrics", "listen", metrics), TEXT(metrics), .type = PD_SET_LISTEN, .def_text = "",
     .flag = "--metrics", .arg = "ADDR", .reloadable = RESTART,
     .help = "GET /metrics: HOST:PORT or unix:PATH; \"\" = off"},
    {FIELD("metrics", "max_connections", metrics_max_connections), .type = PD_SET_INT, .lo = 1,
     .hi = 10000, .def = 16, .reloadable = RESTART,
     .help = "scrapers at once; more are closed at once"},
    {FIELD("metrics", "idle_timeout_s", metrics_idle_timeout_s), .type = PD_SET_INT, .lo = 1,
     .hi = 86400, .def = 300, .reloadable = RESTART,
     .help = "close a keep-alive scrape connection silent this long"},
    {FIELD("kserve", "grpc_listen", kserve_grpc), TEXT(kserve_grpc), .type = PD_SET_LISTEN,
     .def_text = "", .flag = "--grpc", .arg = "ADDR", .reloadable = RESTART,
     .help = "KServe v2 gRPC: HOST:PORT or unix:PATH; \"\" = off"},
    {FIELD("kserve", "http_listen", kserve_http), TEXT(kserve_http), .type = PD_SET_LISTEN,
     .def_text = "", .flag = "--http", .arg = "ADDR", .reloadable = RESTART,
     .help = "KServe v2 REST (/v2/...): HOST:PORT or unix:PATH; \"\" = off"},
    {FIELD("model", "dir", model_dir), TEXT(model_dir), .type = PD_SET_PATH, .def_text = NULL,
     .flag = "--model", .arg = "DIR", .reloadable = RELOAD,
     .help = "the model folder (model.yaml + weights.safetensors)"},
    {FIELD("model", "repository", model_repository), TEXT(model_repository), .type = PD_SET_PATH,
     .def_text = "", .flag = "--repository", .arg = "DIR", .reloadable = RELOAD,
     .help = "serve every model folder in DIR, each by its folder name (model.dir is then unused)"},
    {FIELD("model", "default", model_default), TEXT(model_default), .type = PD_SET_PATH,
     .def_text = "", .flag = "--default-model", .arg = "NAME", .reloadable = RELOAD,
     .help = "the repository model requests without a model name get; \"\" = the only one"},
    {FIELD("model", "max_loaded", model_max_loaded), .type = PD_SET_INT, .lo = 1, .hi = 64,
     .def = 16, .reloadable = RELOAD,
     .help = "most model versions loaded at once; a repository needing more fails to start"},
    {FIELD("model", "control", model_control), .type = PD_SET_BOOL, .def = 0, .reloadable = RELOAD,
     .help = "allow load/unload/reload at run time (ModelControl from the daemon's uid or root; "
             "KServe only on loopback)"},
    {FIELD("engine", "backend", backend), TEXT(backend), .type = PD_SET_CHOICE, .def_text = "auto",
     .choices = backend_names, .flag = "--backend", .arg = "NAME", .reloadable = RELOAD,
     .help = "auto (CUDA when usable, else CPU), cpu or cuda"},
    {FIELD("engine", "precision", precision), TEXT(precision), .type = PD_SET_CHOICE,
     .def_text = "fp32", .choices = precision_names, .flag = "--precision", .arg = "NAME",
     .reloadable = RELOAD,
     .help = "auto (bf16 if the CPU runs it and the model records parity), fp32, bf16, int8; "
             "tf32 or fp16 (CUDA only)"},
    {FIELD("engine", "device", device), .type = PD_SET_INT, .lo = 0, .hi = 64, .def = 0,
     .flag = "--device", .arg = "N", .reloadable = RELOAD, .help = "CUDA device index"},
    {FIELD("engine", "cuda_graphs", cuda_graphs), .type = PD_SET_BOOL, .def = 0,
     .flag = "--cuda-graphs", .arg = "BOOL", .reloadable = RELOAD,
     .help = "CUDA: run each batch size as a CUDA graph captured at plan time"},
    {FIELD("engine", "cuda_workspace_mb", cuda_workspace_mb), .type = PD_SET_INT, .lo = 1,
     .hi = 1L << 20, .def = 256, .flag = "--cuda-workspace-mb", .arg = "MIB", .reloadable = RELOAD,
     .help = "CUDA: most cuDNN workspace one convolution may use, MiB"},
    {FIELD("engine", "cuda_algo_cache_dir", cuda_algo_cache_dir), TEXT(cuda_algo_cache_dir),
     .type = PD_SET_PATH, .def_text = "", .flag = "--cuda-algo-cache", .arg = "DIR",
     .reloadable = RELOAD,
     .help = "CUDA: keep the convolution algorithm choices in DIR across restarts; \"\" = off"},
    {FIELD("engine", "threads", threads), .type = PD_SET_INT, .lo = 0, .hi = 256, .def = 0,
     .flag = "--threads", .arg = "N", .reloadable = RELOAD,
     .help = "CPU engine threads; 0 = every online CPU"},
    {FIELD("engine", "on_device_error", on_device_error), TEXT(on_device_error),
     .type = PD_SET_CHOICE, .def_text = "auto", .choices = on_device_error_names,
     .flag = "--on-device-error", .arg = "WHAT", .reloadable = RELOAD,
     .help = "after a sticky device error: cpu (rebuild the plan on the CPU), fail (stay failing), "
             "auto (fail under backend cuda, else cpu)"},
    {FIELD("engine", "decode_threads", decode_threads), .type = PD_SET_INT, .lo = 0, .hi = 1024,
     .def = 0, .flag = "--decode-threads", .arg = "N", .reloadable = RESTART,
     .help = "image decode threads (libuv pool); 0 = 4"},
    {FIELD("batching", "max_batch", max_batch), .type = PD_SET_INT, .lo = 1, .hi = 4096, .def = 64,
     .flag = "--max-batch", .arg = "N", .reloadable = RELOAD,
     .help = "images per network run (TTA transforms count each)"},
    {FIELD("batching", "max_queue_delay_us", max_queue_delay_us), .type = PD_SET_INT, .lo = 0,
     .hi = 10000000, .def = 2000, .flag = "--max-queue-delay-us", .arg = "N", .reloadable = RELOAD,
     .help = "close a batch when its oldest request waited this long"},
    {FIELD("batching", "max_queue", max_queue), .type = PD_SET_INT, .lo = 1, .hi = 1000000,
     .def = 4096, .flag = "--max-queue", .arg = "N", .reloadable = RELOAD,
     .help = "requests decoding or waiting; beyond: RESOURCE_EXHAUSTED"},
    {FIELD("batching", "adaptive_tta", adaptive_tta), .type = PD_SET_BOOL, .def = 0,
     .reloadable = RELOAD,
     .help = "requests without their own tta get fewer views while the queue is behind"},
    {FIELD("batching", "min_tta", min_tta), .type = PD_SET_INT, .lo = 1, .hi = 1024, .def = 1,
     .reloadable = RELOAD, .help = "the fewest TTA views adaptive_tta goes down to"},
    {FIELD("batching", "adaptive_tta_wait_us", adaptive_tta_wait_us), .type = PD_SET_INT, .lo = 0,
     .hi = 60000000, .def = 0, .reloadable = RELOAD,
     .help = "halve the views per this wait of the oldest queued request; 0 = 2 batch computes"},
    {FIELD("limits", "max_frame_bytes", max_frame_bytes), .type = PD_SET_INT, .lo = 1024,
     .hi = 256L << 20, .def = 16L << 20, .flag = "--max-frame-bytes", .arg = "N",
     .reloadable = RELOAD, .help = "one request message; a longer frame closes the connection"},
    {FIELD("limits", "max_receive_bytes", max_receive_bytes), .type = PD_SET_INT, .lo = 1024,
     .hi = 1L << 40, .def = 256L << 20, .reloadable = RELOAD,
     .help = "receive buffers of all connections beyond 256 KiB each; at least max_frame_bytes"},
    {FIELD("limits", "max_image_width", max_image_width), .type = PD_SET_INT, .lo = 1, .hi = 65535,
     .def = 4096, .reloadable = RELOAD, .help = "pixels"},
    {FIELD("limits", "max_image_height", max_image_height), .type = PD_SET_INT, .lo = 1,
     .hi = 65535, .def = 4096, .reloadable = RELOAD, .help = "pixels"},
    {FIELD("limits", "max_image_pixels", max_image_pixels), .type = PD_SET_INT, .lo = 1,
     .hi = 1L << 30, .def = 16L << 20, .reloadable = RELOAD, .help = "width x height"},
    {FIELD("limits", "max_frame_pixels", max_frame_pixels), .type = PD_SET_INT, .lo = 1,
     .hi = 1L << 32, .def = 64L << 20, .flag = "--max-frame-pixels", .arg = "N",
     .reloadable = RELOAD, .help = "a frame request's width x height (segmented, then classified)"},
    {FIELD("limits", "max_in_flight_per_connection", max_in_flight), .type = PD_SET_INT, .lo = 1,
     .hi = 65536, .def = 256, .flag = "--max-in-flight", .arg = "N", .reloadable = RELOAD,
     .help = "answers owed before the connection stops being read"},
    {FIELD("limits", "max_connections", max_connections), .type = PD_SET_INT, .lo = 1, .hi = 100000,
     .def = 1024, .flag = "--max-connections", .arg = "N", .reloadable = RELOAD,
     .help = "beyond: RESOURCE_EXHAUSTED, then close"},
    {FIELD("limits", "frame_timeout_ms", frame_timeout_ms), .type = PD_SET_INT, .lo = 0,
     .hi = 3600000, .def = 30000, .flag = "--frame-timeout-ms", .arg = "MS", .reloadable = RELOAD,
     .help = "a frame (or HTTP request) begun must arrive within this; 0 = no limit"},
    {FIELD("limits", "idle_timeout_s", idle_timeout_s), .type = PD_SET_INT, .lo = 0, .hi = 604800,
     .def = 0, .flag = "--idle-timeout", .arg = "S", .reloadable = RELOAD,
     .help = "close a connection silent this long with nothing owed; 0 = never"},
    {FIELD("limits", "max_tta", max_tta), .type = PD_SET_INT, .lo = 1, .hi = 1024, .def = 64,
     .flag = "--max-tta", .arg = "N", .reloadable = RELOAD,
     .help = "largest TTA count a request may ask for"},
    {FIELD("limits", "default_top_k", default_top_k), .type = PD_SET_INT, .lo = 1, .hi = 100000,
     .def = 5, .flag = "--top-k", .arg = "N", .reloadable = RELOAD,
     .help = "classes in an answer when the request says 0"},
    {FIELD("limits", "drain_timeout_s", drain_timeout_s), .type = PD_SET_INT, .lo = 0, .hi = 86400,
     .def = 30, .flag = "--drain-timeout", .arg = "S", .reloadable = RELOAD,
     .help = "SIGTERM: close connections still owed answers after this"},
    {FIELD("limits", "drain_grace_ms", drain_grace_ms), .type = PD_SET_INT, .lo = 0, .hi = 600000,
     .def = 0, .flag = "--drain-grace-ms", .arg = "MS", .reloadable = RELOAD,
     .help = "SIGTERM: first report not ready and serve on this long, so a balancer's health "
             "check sees it before the drain; 0 = drain at once"},
    {FIELD("log", "level", log_level), .type = PD_SET_LEVEL, .def = PD_LOG_INFO,
     .choices = level_names, .flag = "--log-level", .arg = "LEVEL", .reloadable = RELOAD,
     .help = "error, warning, info or debug"},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

/* What the example config says of a section beyond its settings. */
static const struct {
  const char *section, *help;
} section_help[] = {
    {"kserve", "KServe v2 / Open Inference Protocol (Triton's clients)"},
};

const pd_setting *pd_config_settings(size_t *n) {
  *n = N_SETTINGS;
  return settings;
}

const pd_setting *pd_config_flag(const char *flag, size_t len) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (settings[i].flag && strlen(settings[i].flag) == len &&
        !strncmp(settings[i].flag, flag, len))
      return &settings[i];
  return NULL;
}

/* The sections, in the table's order ("a, b, c" for messages). */
static int section_list(const char **out, int cap) {
  int n = 0;
  for (size_t i = 0; i < N_SETTINGS; i++) {
    bool seen = false; /* an earlier row of the same section */
    for (size_t j = 0; j < i && !seen; j++)
      seen = !strcmp(settings[j].section, settings[i].section);
    if (!seen && n < cap - 1) out[n++] = settings[i].section;
  }
  out[n] = NULL;
  return n;
}

void pd_config_defaults(pd_config *cfg, const char *default_model_dir) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const pd_setting *f = &settings[i];
    char *base = (char *)cfg + f->off;
    switch (f->type) {
    case PD_SET_INT:
    case PD_SET_MODE:
    case PD_SET_BOOL:
      *(long *)base = f->def;
      break;
    case PD_SET_LEVEL:
      *(pd_log_level *)base = (pd_log_level)f->def;
      break;
    default: {
      const char *text = f->def_text ? f->def_text : default_model_dir ? default_model_dir : "";
      snprintf(base, f->cap, "%s", text);
      break;
    }
    }
  }
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

/* "host:port" or "[v6]:port", port 0..65535 (0: any free port; the listener logs the one bound). */
static bool valid_host_port(const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s) return false;
  if (s[0] == '[' && colon[-1] != ']') return false;
  long port;
  return parse_long(colon + 1, 10, &port) && port >= 0 && port <= 65535;
}

/* Sets field f from text; on failure writes the reason to why. `plain` is
 * false for a quoted YAML scalar (numbers must not be quoted). */
static int field_from_text(const pd_setting *f, pd_config *cfg, const char *text, bool plain,
                           char *why, size_t why_len) {
  char *base = (char *)cfg + f->off;
  switch (f->type) {
  case PD_SET_INT: {
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
  case PD_SET_MODE: {
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
  case PD_SET_BOOL:
    if (!plain || (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)) {
      snprintf(why, why_len, "expected true or false, got '%s'", text);
      return PD_EINVAL;
    }
    *(long *)base = !strcmp(text, "true");
    return PD_OK;
  case PD_SET_LEVEL:
  case PD_SET_CHOICE: {
    int n = 0;
    for (; f->choices[n]; n++)
      if (!strcmp(text, f->choices[n])) {
        if (f->type == PD_SET_LEVEL)
          *(pd_log_level *)base = (pd_log_level)n;
        else
          snprintf(base, f->cap, "%s", f->choices[n]);
        return PD_OK;
      }
    size_t used = (size_t)snprintf(why, why_len, "expected ");
    for (int i = 0; i < n && used < why_len; i++)
      used += (size_t)snprintf(why + used, why_len - used, "%s%s", f->choices[i],
                               i + 2 < n    ? ", "
                               : i + 2 == n ? " or "
                                            : "");
    if (used < why_len) snprintf(why + used, why_len - used, ", got '%s'", text);
    return PD_EINVAL;
  }
  case PD_SET_PATH:
  case PD_SET_GROUP:
  case PD_SET_TCP:
  case PD_SET_LISTEN: {
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
    if (f->type == PD_SET_GROUP)
      for (size_t i = 0; i < len; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
              (text[i] >= '0' && text[i] <= '9') || strchr("_-.", text[i]))) {
          snprintf(why, why_len, "expected a group name or number, got '%s'", text);
          return PD_EINVAL;
        }
    bool unix_addr = f->type == PD_SET_LISTEN && !strncmp(text, "unix:", 5) && text[5];
    if (len && (f->type == PD_SET_TCP || f->type == PD_SET_LISTEN) && !unix_addr &&
        !valid_host_port(text)) {
      snprintf(why, why_len, "expected %s, got '%s'",
               f->type == PD_SET_TCP ? "HOST:PORT (port 0..65535)" : "HOST:PORT or unix:PATH",
               text);
      return PD_EINVAL;
    }
    memcpy(base, text, len + 1);
    return PD_OK;
  }
  }
  snprintf(why, why_len, "unknown field type");
  return PD_EINTERNAL;
}

static const pd_setting *find_field(const char *section, size_t section_len, const char *key) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (strlen(settings[i].section) == section_len &&
        !strncmp(settings[i].section, section, section_len) && !strcmp(settings[i].key, key))
      return &settings[i];
  return NULL;
}

/* A text setting may be empty ("" = off or none); the others need a value. */
static bool is_text(const pd_setting *f) {
  return f->type == PD_SET_PATH || f->type == PD_SET_GROUP || f->type == PD_SET_TCP ||
         f->type == PD_SET_LISTEN;
}

int pd_config_set(pd_config *cfg, const char *key, const char *value, pd_error *err) {
  const char *dot = strchr(key, '.');
  const pd_setting *f = dot ? find_field(key, (size_t)(dot - key), dot + 1) : NULL;
  if (!f) {
    char known[1536];
    size_t used = 0;
    known[0] = '\0';
    for (size_t i = 0; i < N_SETTINGS && used < sizeof known; i++)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                               settings[i].name);
    return pd_error_set(err, PD_EINVAL, "unknown setting '%s' (known: %s)", key, known);
  }
  char why[400];
  int rc = field_from_text(f, cfg, value, true, why, sizeof why);
  if (rc != PD_OK) return pd_error_set(err, rc, "%s: %s", key, why);
  return PD_OK;
}

/* ---- every problem at once ---- */

_Static_assert(N_SETTINGS <= PD_CONFIG_MAX_SETTINGS, "PD_CONFIG_MAX_SETTINGS is too small");

void pd_config_check_init(pd_config_check *chk) {
  memset(chk, 0, sizeof *chk);
}

void pd_config_problem(pd_config_check *chk, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  chk->n_problems++;
  size_t left = sizeof chk->text - chk->len;
  int n = snprintf(chk->text + chk->len, left, "%s\n", line);
  chk->len +=
      n > 0 && (size_t)n < left ? (size_t)n : 0; /* a problem that no longer fits is counted only */
}

static void report_problem(void *ctx, const pd_error *e) {
  pd_config_problem(ctx, "%s", e->msg);
}

const char *pd_config_origin(const pd_config_check *chk, const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, "default");
  for (size_t i = 0; chk && i < N_SETTINGS; i++) {
    if (strcmp(settings[i].name, name) != 0) continue;
    if (chk->flag[i])
      snprintf(buf, cap, "%s", chk->flag[i]);
    else if (chk->line[i] > 0)
      snprintf(buf, cap, "%s:%d", chk->file, chk->line[i]);
  }
  return buf;
}

/* ---- YAML ---- */

/* With chk, each problem is added to it and the reading goes on (the
 * return code is the first problem's); without, the first one ends it. */
static int load_section(pd_config *cfg, const pd_yaml_node *map, const char *section,
                        pd_config_check *chk, pd_error *err) {
  const char *allowed[N_SETTINGS + 1];
  int n = 0;
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (!strcmp(settings[i].section, section)) allowed[n++] = settings[i].key;
  allowed[n] = NULL;
  int rc = chk ? pd_yaml_check_keys_all(map, allowed, err, report_problem, chk)
               : pd_yaml_check_keys(map, allowed, err);
  if (rc != PD_OK && (!chk || pd_yaml_kind_of(map) != PD_YAML_MAP)) return rc;
  int first = rc;
  for (int i = 0; i < n; i++) {
    pd_yaml_node v = pd_yaml_get(map, allowed[i]);
    if (!pd_yaml_present(&v)) continue;
    const pd_setting *f = find_field(section, strlen(section), allowed[i]);
    char text[PD_PATH_LEN + 8] = "";
    rc = PD_OK;
    if (!pd_yaml_is_null(&v)) {
      size_t len;
      const char *s = pd_yaml_scalar(&v, &len);
      if (!s) {
        rc = pd_yaml_fail(&v, err, PD_EINVAL, "expected a scalar value");
      } else if (len >= sizeof text) {
        rc = pd_yaml_fail(&v, err, PD_ELIMIT, "value longer than %zu bytes", sizeof text - 1);
      } else if (memchr(s, '\0', len)) {
        rc = pd_yaml_fail(&v, err, PD_EINVAL, "NUL byte in value");
      } else {
        memcpy(text, s, len);
        text[len] = '\0';
      }
    } else if (!is_text(f)) {
      rc = pd_yaml_fail(&v, err, PD_EINVAL, "a value is required");
    }
    if (rc == PD_OK) {
      char why[400];
      rc = field_from_text(f, cfg, text, pd_yaml_is_plain(&v), why, sizeof why);
      if (rc != PD_OK) pd_yaml_fail(&v, err, rc, "%s", why);
    }
    if (rc == PD_OK) {
      if (chk) chk->line[f - settings] = pd_yaml_line(&v);
      continue;
    }
    if (!chk) return rc;
    report_problem(chk, err);
    if (first == PD_OK) first = rc;
  }
  return first;
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

/* As load_section: with chk, every problem is added and the good settings
 * still apply. */
static int load_mem(pd_config *cfg, const char *text, size_t len, const char *name,
                    pd_config_check *chk, pd_error *err) {
  if (only_comments(text, len)) return PD_OK;
  pd_yaml *y;
  int rc = pd_yaml_load(text, len, name, &y, err);
  if (rc != PD_OK) {
    if (chk) report_problem(chk, err);
    return rc;
  }
  pd_config tmp = *cfg;
  pd_yaml_node root = pd_yaml_root(y);
  const char *sections[N_SETTINGS + 1];
  section_list(sections, (int)N_SETTINGS + 1);
  rc = chk ? pd_yaml_check_keys_all(&root, sections, err, report_problem, chk)
           : pd_yaml_check_keys(&root, sections, err);
  const bool go_on = chk && pd_yaml_kind_of(&root) == PD_YAML_MAP;
  int first = rc;
  for (int i = 0; (rc == PD_OK || go_on) && sections[i]; i++) {
    pd_yaml_node sec = pd_yaml_get(&root, sections[i]);
    if (pd_yaml_present(&sec) && !pd_yaml_is_null(&sec))
      rc = load_section(&tmp, &sec, sections[i], chk, err);
    if (first == PD_OK) first = rc;
  }
  pd_yaml_free(y);
  if (first == PD_OK || chk) *cfg = tmp;
  return first;
}

int pd_config_load_mem(pd_config *cfg, const char *text, size_t len, const char *name,
                       pd_error *err) {
  return load_mem(cfg, text, len, name, NULL, err);
}

/* The file's bytes (malloc'ed, may be NULL when empty). */
static int read_file(const char *path, char **out, size_t *out_len, pd_error *err) {
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
  if (rc != PD_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = len;
  return PD_OK;
}

int pd_config_load_file(pd_config *cfg, const char *path, pd_error *err) {
  char *buf = NULL;
  size_t len = 0;
  int rc = read_file(path, &buf, &len, err);
  if (rc == PD_OK) rc = pd_config_load_mem(cfg, buf ? buf : "", len, path, err);
  free(buf);
  return rc;
}

void pd_config_check_file(pd_config *cfg, const char *path, pd_config_check *chk) {
  snprintf(chk->file, sizeof chk->file, "%s", path);
  char *buf = NULL;
  size_t len = 0;
  pd_error err = {0};
  if (read_file(path, &buf, &len, &err) != PD_OK)
    pd_config_problem(chk, "%s", err.msg);
  else
    load_mem(cfg, buf ? buf : "", len, path, chk, &err);
  free(buf);
}

void pd_config_check_set(pd_config *cfg, const char *flag, const char *key, const char *value,
                         pd_config_check *chk) {
  pd_error err = {0};
  if (pd_config_set(cfg, key, value, &err) != PD_OK) {
    pd_config_problem(chk, "%s: %s", flag, err.msg);
    return;
  }
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (!strcmp(settings[i].name, key)) chk->flag[i] = flag;
}

/* Sets err; with chk, adds it too. Returns code. */
static int check_fail(pd_config_check *chk, pd_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int check_fail(pd_config_check *chk, pd_error *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->code = code;
  if (chk) pd_config_problem(chk, "%s", err->msg);
  return code;
}

/* "FILE:LINE: " (or "--flag: ") for the setting a message is about; "" when
 * its value is the default or there is no record. */
static const char *lead(const pd_config_check *chk, const char *name, char *buf, size_t cap) {
  char o[PD_PATH_LEN + 16];
  pd_config_origin(chk, name, o, sizeof o);
  if (!chk || !strcmp(o, "default"))
    buf[0] = '\0';
  else
    snprintf(buf, cap, "%s: ", o);
  return buf;
}

/* ", FILE:LINE" (or ", --flag", ", default") for the other setting of a
 * message; "" without a record. */
static const char *also(const pd_config_check *chk, const char *name, char *buf, size_t cap) {
  char o[PD_PATH_LEN + 16];
  if (!chk)
    buf[0] = '\0';
  else
    snprintf(buf, cap, ", %s", pd_config_origin(chk, name, o, sizeof o));
  return buf;
}

/* With chk, every check runs and each failure is added; without, the first
 * failure is the answer. */
static int validate(const pd_config *cfg, pd_config_check *chk, pd_error *err) {
  int first = PD_OK, rc;
  char a[PD_PATH_LEN + 32], b[PD_PATH_LEN + 32];
#define PD_CHECK_DONE()                                                                            \
  do {                                                                                             \
    if (!chk) return rc;                                                                           \
    if (!first) first = rc;                                                                        \
  } while (0)
  if (!cfg->model_dir[0]) {
    rc = check_fail(chk, err, PD_EINVAL, "%smodel.dir: no model folder given",
                    lead(chk, "model.dir", a, sizeof a));
    PD_CHECK_DONE();
  }
#ifndef PD_HAVE_KSERVE
  if (cfg->kserve_grpc[0] || cfg->kserve_http[0]) {
    const char *key = cfg->kserve_grpc[0] ? "kserve.grpc_listen" : "kserve.http_listen";
    rc = check_fail(chk, err, PD_EUNSUPP,
                    "%s%s: this planktond was built without the kserve feature (gRPC "
                    "and jansson); rebuild with -Dkserve=enabled or leave it \"\"",
                    lead(chk, key, a, sizeof a), key);
    PD_CHECK_DONE();
  }
#endif
  if (cfg->max_queue < cfg->max_batch) {
    rc = check_fail(chk, err, PD_EINVAL,
                    "%sbatching.max_queue (%ld) must be at least batching.max_batch (%ld%s)",
                    lead(chk, "batching.max_queue", a, sizeof a), cfg->max_queue, cfg->max_batch,
                    also(chk, "batching.max_batch", b, sizeof b));
    PD_CHECK_DONE();
  }
  if (cfg->max_image_pixels > cfg->max_image_width * cfg->max_image_height) {
    char c[PD_PATH_LEN + 32];
    rc = check_fail(chk, err, PD_EINVAL,
                    "%slimits.max_image_pixels (%ld) exceeds max_image_width x "
                    "max_image_height (%ld%s x %ld%s)",
                    lead(chk, "limits.max_image_pixels", a, sizeof a), cfg->max_image_pixels,
                    cfg->max_image_width, also(chk, "limits.max_image_width", b, sizeof b),
                    cfg->max_image_height, also(chk, "limits.max_image_height", c, sizeof c));
    PD_CHECK_DONE();
  }
  if (cfg->max_receive_bytes < cfg->max_frame_bytes) {
    rc = check_fail(chk, err, PD_EINVAL,
                    "%slimits.max_receive_bytes (%ld) must be at least limits.max_frame_bytes "
                    "(%ld%s): one frame of the largest size must fit",
                    lead(chk, "limits.max_receive_bytes", a, sizeof a), cfg->max_receive_bytes,
                    cfg->max_frame_bytes, also(chk, "limits.max_frame_bytes", b, sizeof b));
    PD_CHECK_DONE();
  }
  if (!strcmp(cfg->backend, "cpu") &&
      (!strcmp(cfg->precision, "tf32") || !strcmp(cfg->precision, "fp16"))) {
    rc = check_fail(chk, err, PD_EINVAL,
                    "%sengine.precision %s runs on the CUDA backend only, and engine.backend is "
                    "cpu%s (the CPU runs fp32 or bf16)",
                    lead(chk, "engine.precision", a, sizeof a), cfg->precision,
                    also(chk, "engine.backend", b, sizeof b));
    PD_CHECK_DONE();
  }
  if (cfg->socket_path[0] && cfg->socket_path[0] != '/') {
    rc = check_fail(chk, err, PD_EINVAL, "%slisten.socket: '%s' is not an absolute path",
                    lead(chk, "listen.socket", a, sizeof a), cfg->socket_path);
    PD_CHECK_DONE();
  }
  if (strlen(cfg->socket_path) >= 108) {
    rc = check_fail(chk, err, PD_ELIMIT, "%slisten.socket: '%s' is longer than 107 bytes",
                    lead(chk, "listen.socket", a, sizeof a), cfg->socket_path);
    PD_CHECK_DONE();
  }
#undef PD_CHECK_DONE
  return first;
}

int pd_config_validate(const pd_config *cfg, pd_error *err) {
  return validate(cfg, NULL, err);
}

void pd_config_check_settings(const pd_config *cfg, pd_config_check *chk) {
  pd_error err = {0};
  validate(cfg, chk, &err);
}

int pd_config_format(const pd_config *cfg, char *buf, size_t cap) {
  size_t used = 0;
  const char *section = "";
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const pd_setting *f = &settings[i];
    const char *base = (const char *)cfg + f->off;
    int n = 0;
    if (strcmp(section, f->section) != 0)
      n += snprintf(buf + used, used < cap ? cap - used : 0, "%s:\n", f->section);
    section = f->section;
    used += (size_t)n;
    char *at = buf + (used < cap ? used : cap);
    size_t left = used < cap ? cap - used : 0;
    switch (f->type) {
    case PD_SET_INT:
      n = snprintf(at, left, "  %s: %ld\n", f->key, *(const long *)base);
      break;
    case PD_SET_MODE:
      n = snprintf(at, left, "  %s: 0%03lo\n", f->key, *(const long *)base);
      break;
    case PD_SET_LEVEL:
      n = snprintf(at, left, "  %s: %s\n", f->key, pd_log_level_name(*(const pd_log_level *)base));
      break;
    case PD_SET_BOOL:
      n = snprintf(at, left, "  %s: %s\n", f->key, *(const long *)base ? "true" : "false");
      break;
    default:
      n = snprintf(at, left, "  %s: \"%s\"\n", f->key, base);
      break;
    }
    used += (size_t)n;
  }
  return used < cap ? PD_OK : PD_ELIMIT;
}

/* ---- reload ---- */

static bool same_value(const pd_setting *f, const pd_config *a, const pd_config *b) {
  const char *x = (const char *)a + f->off, *y = (const char *)b + f->off;
  switch (f->type) {
  case PD_SET_INT:
  case PD_SET_MODE:
  case PD_SET_BOOL:
    return *(const long *)x == *(const long *)y;
  case PD_SET_LEVEL:
    return *(const pd_log_level *)x == *(const pd_log_level *)y;
  default:
    return strcmp(x, y) == 0;
  }
}

int pd_config_keep_restart_only(pd_config *next, const pd_config *running, char *names,
                                size_t cap) {
  int n = 0;
  size_t used = 0;
  if (cap) names[0] = '\0';
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const pd_setting *f = &settings[i];
    if (f->reloadable || same_value(f, next, running)) continue;
    size_t size = f->type == PD_SET_INT || f->type == PD_SET_MODE || f->type == PD_SET_BOOL
                      ? sizeof(long)
                  : f->type == PD_SET_LEVEL ? sizeof(pd_log_level)
                                            : f->cap;
    memcpy((char *)next + f->off, (const char *)running + f->off, size);
    if (used < cap)
      used += (size_t)snprintf(names + used, cap - used, "%s%s", n ? ", " : "", f->name);
    n++;
  }
  return n;
}

/* ---- --help and the example ---- */

/* The default as --help and the example show it. */
static void default_text(const pd_setting *f, const char *model_dir, char *out, size_t cap) {
  switch (f->type) {
  case PD_SET_INT:
    snprintf(out, cap, "%ld", f->def);
    break;
  case PD_SET_MODE:
    snprintf(out, cap, "0%03lo", (unsigned long)f->def);
    break;
  case PD_SET_LEVEL:
    snprintf(out, cap, "%s", f->choices[f->def]);
    break;
  case PD_SET_BOOL:
    snprintf(out, cap, "%s", f->def ? "true" : "false");
    break;
  default: {
    const char *t = f->def_text ? f->def_text : model_dir ? model_dir : "";
    snprintf(out, cap, "%s", t[0] ? t : "\"\"");
    break;
  }
  }
}

/* Appends to buf[cap] at *used; false once it no longer fits. */
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + (*used < cap ? *used : cap), *used < cap ? cap - *used : 0, fmt, ap);
  va_end(ap);
  *used += n > 0 ? (size_t)n : 0;
  return *used < cap;
}

int pd_config_usage(char *buf, size_t cap, const char *default_model_dir) {
  size_t used = 0;
  if (cap) buf[0] = '\0';
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const pd_setting *f = &settings[i];
    if (!f->flag) continue;
    char opt[64], def[PD_PATH_LEN];
    snprintf(opt, sizeof opt, "%s %s", f->flag, f->arg);
    default_text(f, default_model_dir, def, sizeof def);
    put(buf, cap, &used, "  %-24s %s (default %s%s)\n  %-24s %s\n", opt, f->name, def,
        f->reloadable ? "" : "; restart-only", "", f->help);
  }
  return used < cap ? PD_OK : PD_ELIMIT;
}

#define PD_EXAMPLE_COMMENT_COLUMN 42

int pd_config_example(char *buf, size_t cap, const char *model_dir) {
  size_t used = 0;
  if (cap) buf[0] = '\0';
  put(buf, cap, &used,
      "# /etc/planktond/planktond.yaml: every setting of planktond, with its default.\n"
      "# Unknown keys are errors. Check a file with `planktond --check-config FILE`;\n"
      "# command-line options override it (`planktond --help`), and SIGHUP\n"
      "# (systemctl reload planktond) re-reads it together with the model: a file or\n"
      "# model that fails to load is reported and the running ones keep serving.\n"
      "# These take effect at the next restart only (a reload that changes one logs\n"
      "# that it needs a restart):");
  size_t line = 28; /* the length of the line so far */
  bool first = true;
  for (size_t i = 0; i < N_SETTINGS; i++) {
    if (settings[i].reloadable) continue;
    size_t len = strlen(settings[i].name) + 2;
    if (line + len > 78) {
      put(buf, cap, &used, "%s\n#", first ? "" : ",");
      line = 1;
    } else if (!first) {
      put(buf, cap, &used, ",");
      line++;
    }
    put(buf, cap, &used, " %s", settings[i].name);
    line += len - 1;
    first = false;
  }
  put(buf, cap, &used,
      ".\n# This file is the settings table's (daemon/pd_config.c): test_daemon_config\n"
      "# compares the two.\n");
  const char *section = "";
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const pd_setting *f = &settings[i];
    if (strcmp(section, f->section) != 0) {
      const char *help = NULL;
      for (size_t j = 0; j < sizeof section_help / sizeof section_help[0]; j++)
        if (!strcmp(section_help[j].section, f->section)) help = section_help[j].help;
      int n = snprintf(NULL, 0, "%s:", f->section);
      put(buf, cap, &used, "\n%s:", f->section);
      if (help) put(buf, cap, &used, "%*s# %s", PD_EXAMPLE_COMMENT_COLUMN - 1 - n, "", help);
      put(buf, cap, &used, "\n");
      section = f->section;
    }
    char def[PD_PATH_LEN];
    default_text(f, model_dir, def, sizeof def);
    int n = snprintf(NULL, 0, "  %s: %s", f->key, def);
    int pad = PD_EXAMPLE_COMMENT_COLUMN - 1 - n;
    put(buf, cap, &used, "  %s: %s%*s# %s\n", f->key, def, pad < 2 ? 2 : pad, "", f->help);
  }
  return used < cap ? PD_OK : PD_ELIMIT;
}
