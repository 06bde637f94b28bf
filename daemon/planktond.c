/* planktond: the command line. Owns argv parsing only: flags become setting
 * overrides (the same names as the YAML file), then either the settings are
 * checked (--check-config, --print-config) or the daemon runs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon.h"
#ifdef PD_FAULT_INJECTION
#include "pd_fault.h"
#endif

static const struct flag {
  const char *name, *key;
} flags[] = {
    {"--socket", "listen.socket"},
    {"--socket-mode", "listen.socket_mode"},
    {"--socket-group", "listen.socket_group"},
    {"--tcp", "listen.tcp"},
    {"--metrics", "metrics.listen"},
    {"--grpc", "kserve.grpc_listen"},
    {"--http", "kserve.http_listen"},
    {"--model", "model.dir"},
    {"--backend", "engine.backend"},
    {"--device", "engine.device"},
    {"--threads", "engine.threads"},
    {"--decode-threads", "engine.decode_threads"},
    {"--max-batch", "batching.max_batch"},
    {"--max-queue-delay-us", "batching.max_queue_delay_us"},
    {"--max-queue", "batching.max_queue"},
    {"--max-frame-bytes", "limits.max_frame_bytes"},
    {"--max-in-flight", "limits.max_in_flight_per_connection"},
    {"--max-connections", "limits.max_connections"},
    {"--max-tta", "limits.max_tta"},
    {"--top-k", "limits.default_top_k"},
    {"--drain-timeout", "limits.drain_timeout_s"},
    {"--frame-timeout-ms", "limits.frame_timeout_ms"},
    {"--idle-timeout", "limits.idle_timeout_s"},
    {"--log-level", "log.level"},
};

/* The shipped model: the installed copy, or the source tree's where this
 * planktond runs uninstalled from its build directory. */
static const char *default_model_dir(void) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return PD_INSTALLED_MODEL_DIR;
  exe[n] = '\0';
  const size_t root = strlen(PD_BUILD_ROOT);
  if (strncmp(exe, PD_BUILD_ROOT, root) == 0 && exe[root] == '/') return PD_SOURCE_MODEL_DIR;
  return PD_INSTALLED_MODEL_DIR;
}

static void usage(FILE *f) {
  const char *default_model = default_model_dir();
  fprintf(f,
          "usage: planktond [--config FILE] [OPTION]...\n"
          "       planktond --check-config FILE [OPTION]...\n"
          "       planktond --print-config [--config FILE] [OPTION]...\n"
          "\n"
          "Classifies plankton image crops for clients on a Unix socket (and TCP where set).\n"
          "Settings come from the defaults, then FILE (YAML), then these options:\n"
          "  --socket PATH            listen.socket (default /run/planktond/planktond.sock)\n"
          "  --socket-mode MODE       listen.socket_mode (default 0660; never world-writable)\n"
          "  --socket-group GROUP     listen.socket_group (default: the daemon's group)\n"
          "  --tcp HOST:PORT          listen.tcp (default off)\n"
          "  --metrics ADDR           metrics.listen: HOST:PORT or unix:PATH (default off)\n"
          "  --grpc ADDR              kserve.grpc_listen: KServe v2 gRPC (default off)\n"
          "  --http ADDR              kserve.http_listen: KServe v2 REST (default off)\n"
          "  --model DIR              model.dir (default %s)\n"
          "  --backend NAME           engine.backend: auto (CUDA when usable), cpu, cuda\n"
          "  --device N               engine.device: CUDA device index (0)\n"
          "  --threads N              engine.threads: CPU engine threads (0 = online CPUs)\n"
          "  --decode-threads N       engine.decode_threads (0 = libuv default)\n"
          "  --max-batch N            batching.max_batch (64)\n"
          "  --max-queue-delay-us N   batching.max_queue_delay_us (2000)\n"
          "  --max-queue N            batching.max_queue (4096)\n"
          "  --max-frame-bytes N      limits.max_frame_bytes (16777216)\n"
          "  --max-in-flight N        limits.max_in_flight_per_connection (256)\n"
          "  --max-connections N      limits.max_connections (1024)\n"
          "  --max-tta N              limits.max_tta (64)\n"
          "  --top-k N                limits.default_top_k (5)\n"
          "  --drain-timeout S        limits.drain_timeout_s (30)\n"
          "  --frame-timeout-ms MS    limits.frame_timeout_ms (30000; 0 = none)\n"
          "  --idle-timeout S         limits.idle_timeout_s (0 = never)\n"
          "  --log-level LEVEL        log.level: error, warning, info, debug\n"
          "  --set SECTION.KEY=VALUE  any setting of the YAML file\n"
          "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads settings and model.\n",
          default_model);
}

int main(int argc, char **argv) {
  pd_settings_source src = {.default_model_dir = default_model_dir()};
#ifdef PD_FAULT_INJECTION /* planktond-faultinject, the tests' binary */
  src.wrap_backend = pd_fault_wrap;
#endif
  const char *check = NULL;
  int print = 0;
  for (int i = 1; i < argc; i++) {
    char *arg = argv[i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(arg, "--version")) {
      printf("planktond %s\n", PD_VERSION);
      return 0;
    }
    if (!strcmp(arg, "--print-config")) {
      print = 1;
      continue;
    }
    /* Every other option takes a value: "--opt VALUE" or "--opt=VALUE". */
    char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
    const char *key = NULL;
    int known = 0;
    if (!strncmp(arg, "--config", name_len) && name_len == 8) known = 1;
    if (!strncmp(arg, "-c", name_len) && name_len == 2) known = 1;
    if (!strncmp(arg, "--check-config", name_len) && name_len == 14) known = 2;
    if (!strncmp(arg, "--set", name_len) && name_len == 5) known = 3;
    for (size_t f = 0; !known && f < sizeof flags / sizeof flags[0]; f++)
      if (strlen(flags[f].name) == name_len && !strncmp(arg, flags[f].name, name_len)) {
        key = flags[f].key;
        known = 4;
      }
    if (!known) {
      fprintf(stderr, "planktond: unknown option '%s' (see --help)\n", arg);
      return 2;
    }
    if (!value) {
      fprintf(stderr, "planktond: option '%s' needs a value\n", arg);
      return 2;
    }
    if (!eq) i++;
    if (known == 1) {
      src.config_path = value;
    } else if (known == 2) {
      check = value;
      src.config_path = value;
    } else {
      if (src.n_overrides == PD_MAX_OVERRIDES) {
        fprintf(stderr, "planktond: more than %d setting options\n", PD_MAX_OVERRIDES);
        return 2;
      }
      pd_override *o = &src.overrides[src.n_overrides++];
      o->flag = known == 3 ? "--set" : flags[0].name;
      if (known == 4) {
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
          if (flags[f].key == key) o->flag = flags[f].name;
        o->key = key;
        o->value = value;
      } else {
        char *kv = (char *)value; /* split in place: argv outlives everything */
        char *sep = strchr(kv, '=');
        if (!sep) {
          fprintf(stderr, "planktond: --set needs SECTION.KEY=VALUE, got '%s'\n", value);
          return 2;
        }
        *sep = '\0';
        o->key = kv;
        o->value = sep + 1;
      }
    }
  }

  if (check || print) {
    pd_config cfg;
    pd_error err = {0};
    if (pd_settings_build(&src, &cfg, &err) != PD_OK) {
      fprintf(stderr, "planktond: %s\n", err.msg);
      return 1;
    }
    if (print) {
      char buf[16384];
      pd_config_format(&cfg, buf, sizeof buf);
      fputs(buf, stdout);
    }
    if (check) printf("%s: ok\n", check);
    return 0;
  }
  /* A client that leaves while its answer is being written must cost an
   * EPIPE on that connection, not the process. */
  signal(SIGPIPE, SIG_IGN);
  return pd_daemon_run(&src);
}
