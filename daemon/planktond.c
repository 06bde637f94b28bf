/* planktond: the command line. Owns argv parsing only: flags become setting
 * overrides (the same names as the YAML file; the flags, like --help, come
 * from the settings table in pd_config.c), then either the settings are
 * checked (--check-config, --print-config) or the daemon runs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_daemon.h"
#include "pd_log.h"
#include "pd_segment.h"
#ifdef PD_FAULT_INJECTION
#include "pd_fault.h"
#endif

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

/* Leptonica's messages (frame segmentation, pd_segment.h) in the daemon's
 * log as warnings, its trailing newline dropped. */
static void leptonica_log(const char *msg) {
  pd_log lg;
  pd_log_init(&lg, PD_LOG_WARNING);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    n--;
  pd_logf(&lg, PD_LOG_WARNING, "leptonica: %.*s", (int)n, msg);
}

static void usage(FILE *f) {
  char options[8192];
  pd_config_usage(options, sizeof options, default_model_dir());
  fprintf(f,
          "usage: planktond [--config FILE] [OPTION]...\n"
          "       planktond --check-config FILE [OPTION]...\n"
          "       planktond --print-config [--config FILE] [OPTION]...\n"
          "\n"
          "Classifies plankton image crops for clients on a Unix socket (and TCP where set).\n"
          "Settings come from the defaults, then FILE (YAML), then these options.\n"
          "--check-config lists every problem (file:line), loads the model and checks the\n"
          "socket group and the socket's folder, and exits 1 if there is any:\n"
          "%s"
          "  --set SECTION.KEY=VALUE  any setting of the YAML file\n"
          "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads settings and model\n"
          "(Health, Stats and /metrics report the result; `plankton-client reload --pid PID`\n"
          "waits for it).\n",
          options);
}

int main(int argc, char **argv) {
  pd_settings_source src = {.default_model_dir = default_model_dir()};
  pd_segment_set_log(leptonica_log);
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
    const pd_setting *setting = NULL;
    int known = 0;
    if (!strncmp(arg, "--config", name_len) && name_len == 8) known = 1;
    if (!strncmp(arg, "-c", name_len) && name_len == 2) known = 1;
    if (!strncmp(arg, "--check-config", name_len) && name_len == 14) known = 2;
    if (!strncmp(arg, "--set", name_len) && name_len == 5) known = 3;
    if (!known && (setting = pd_config_flag(arg, name_len))) known = 4;
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
      o->flag = known == 3 ? "--set" : setting->flag;
      if (known == 4) {
        o->key = setting->name;
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

  if (check) { /* every problem, and what can be checked without starting */
    pd_config cfg;
    static pd_config_check chk; /* large; main's only */
    pd_settings_check(&src, &cfg, &chk);
    pd_config_check_system(&cfg, &chk);
    if (chk.n_problems) {
      fputs(chk.text, stderr);
      fprintf(stderr, "planktond: %s: %d problem%s\n", check, chk.n_problems,
              chk.n_problems == 1 ? "" : "s");
      return 1;
    }
    if (print) {
      char buf[16384];
      pd_config_format(&cfg, buf, sizeof buf);
      fputs(buf, stdout);
    }
    printf("%s: ok (settings, model %s%s%s)\n", check, cfg.model_dir,
           cfg.socket_path[0] ? ", socket folder" : "",
           cfg.socket_group[0] ? ", socket group" : "");
    return 0;
  }
  if (print) {
    pd_config cfg;
    pd_error err = {0};
    if (pd_settings_build(&src, &cfg, &err) != PD_OK) {
      fprintf(stderr, "planktond: %s\n", err.msg);
      return 1;
    }
    char buf[16384];
    pd_config_format(&cfg, buf, sizeof buf);
    fputs(buf, stdout);
    return 0;
  }
  /* A client that leaves while its answer is being written must cost an
   * EPIPE on that connection, not the process. */
  signal(SIGPIPE, SIG_IGN);
  return pd_daemon_run(&src);
}
