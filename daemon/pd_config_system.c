/* pd_config_check_system: what --check-config can check of the settings
 * against this machine without starting the daemon: the model folder loads
 * and validates (a single model or an ensemble, as the daemon loads it),
 * the socket group exists, and the Unix socket's folder exists or can be
 * created. Each problem names the setting, where it came from and the
 * value. */
#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd_config.h"
#include "pd_ensemble.h"

static void check_model(const pd_config *cfg, pd_config_check *chk) {
  if (!cfg->model_dir[0]) return; /* pd_config_check_settings says so */
  char o[PD_PATH_LEN + 16];
  pd_ensemble *e = NULL;
  pd_error err = {0};
  if (pd_ensemble_load(cfg->model_dir, &e, &err) != PD_OK)
    pd_config_problem(chk, "%s: model.dir: '%s' does not load: %s",
                      pd_config_origin(chk, "model.dir", o, sizeof o), cfg->model_dir, err.msg);
  else
    pd_ensemble_free(e);
}

static void check_group(const pd_config *cfg, pd_config_check *chk) {
  const char *g = cfg->socket_group;
  if (!g[0]) return;
  bool numeric = strspn(g, "0123456789") == strlen(g);
  errno = 0;
  struct group *gr = numeric ? getgrgid((gid_t)strtoul(g, NULL, 10)) : getgrnam(g);
  if (gr) return;
  char o[PD_PATH_LEN + 16];
  pd_config_problem(chk, "%s: listen.socket_group: no group '%s' on this system%s%s",
                    pd_config_origin(chk, "listen.socket_group", o, sizeof o), g, errno ? ": " : "",
                    errno ? strerror(errno) : "");
}

/* The socket's folder, or the nearest folder above it that exists, must be
 * a folder the daemon could use (write and search: create the socket, or
 * the folders missing below it). */
static void check_socket_dir(const pd_config *cfg, pd_config_check *chk) {
  if (cfg->socket_path[0] != '/') return; /* relative or none: pd_config_check_settings */
  char dir[PD_PATH_LEN], o[PD_PATH_LEN + 16];
  snprintf(dir, sizeof dir, "%s", cfg->socket_path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  const char *origin = pd_config_origin(chk, "listen.socket", o, sizeof o);
  bool missing = false;
  for (;;) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
      if (!S_ISDIR(sb.st_mode)) {
        pd_config_problem(chk, "%s: listen.socket: '%s': '%s' is not a folder", origin,
                          cfg->socket_path, dir);
      } else if (access(dir, W_OK | X_OK) != 0) {
        pd_config_problem(chk, "%s: listen.socket: '%s': %s '%s' %s: %s", origin, cfg->socket_path,
                          missing ? "its folder cannot be created in" : "folder", dir,
                          missing ? "(not writable)" : "is not writable", strerror(errno));
      }
      return;
    }
    if (errno != ENOENT) {
      pd_config_problem(chk, "%s: listen.socket: '%s': %s: %s", origin, cfg->socket_path, dir,
                        strerror(errno));
      return;
    }
    missing = true;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
      snprintf(dir, sizeof dir, "/");
    } else {
      *slash = '\0';
    }
  }
}

void pd_config_check_system(const pd_config *cfg, pd_config_check *chk) {
  check_model(cfg, chk);
  check_group(cfg, chk);
  check_socket_dir(cfg, chk);
}
