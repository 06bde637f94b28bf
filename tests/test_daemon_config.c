/* pd_config: defaults, a full YAML file, errors that name the file, line,
 * key and value (unknown keys, bad values, quoted numbers, wrong types),
 * --set overrides, the checks across settings, and the example
 * systemd/planktond.yaml ($PD_EXAMPLE_CONFIG). */
#include <stdlib.h>

#include "pd_config.h"
#include "pd_test.h"

static int load(pd_config *c, const char *text, pd_error *err) {
  pd_config_defaults(c, "/models/x");
  return pd_config_load_mem(c, text, strlen(text), "test.yaml", err);
}

int main(void) {
  pd_test_state st = {0};
  pd_config c;
  pd_error err = {0};

  pd_config_defaults(&c, "/models/x");
  PD_CHECK_INT(&st, pd_config_validate(&c, &err), 0);
  PD_CHECK_INT(&st, c.max_batch, 64);
  PD_CHECK_INT(&st, c.socket_mode, 0660);
  PD_CHECK(&st, !strcmp(c.model_dir, "/models/x"));

  const char *good = "listen:\n  socket: /run/p.sock\n  socket_mode: 0600\n  tcp: 127.0.0.1:7341\n"
                     "metrics:\n  listen: unix:/run/m.sock\n"
                     "model:\n  dir: /srv/model\n"
                     "engine: {backend: cpu, threads: 2, decode_threads: 3}\n"
                     "batching:\n  max_batch: 16\n  max_queue_delay_us: 500\n  max_queue: 100\n"
                     "limits:\n  max_frame_bytes: 2048\n  max_in_flight_per_connection: 8\n"
                     "log: {level: debug}\n";
  PD_CHECK_INT(&st, load(&c, good, &err), 0);
  PD_CHECK(&st, !strcmp(c.socket_path, "/run/p.sock"));
  PD_CHECK_INT(&st, c.socket_mode, 0600);
  PD_CHECK(&st, !strcmp(c.tcp, "127.0.0.1:7341"));
  PD_CHECK(&st, !strcmp(c.metrics, "unix:/run/m.sock"));
  PD_CHECK(&st, !strcmp(c.model_dir, "/srv/model"));
  PD_CHECK_INT(&st, c.threads, 2);
  PD_CHECK_INT(&st, c.decode_threads, 3);
  PD_CHECK_INT(&st, c.max_batch, 16);
  PD_CHECK_INT(&st, c.max_queue_delay_us, 500);
  PD_CHECK_INT(&st, c.max_queue, 100);
  PD_CHECK_INT(&st, c.max_frame_bytes, 2048);
  PD_CHECK_INT(&st, c.max_in_flight, 8);
  PD_CHECK_INT(&st, c.log_level, PD_LOG_DEBUG);
  PD_CHECK_INT(&st, pd_config_validate(&c, &err), 0);

  /* an empty tcp value turns TCP off; an empty file changes nothing */
  PD_CHECK_INT(&st, load(&c, "listen:\n  tcp:\n", &err), 0);
  PD_CHECK(&st, c.tcp[0] == '\0');
  PD_CHECK_INT(&st, load(&c, "", &err), 0);

  struct {
    const char *yaml, *needles[3];
  } bad[] = {
      {"listen:\n  socket: /a\n  sockett: /b\n", {"test.yaml:3", "sockett", "socket_mode"}},
      {"batching:\n  max_batch: 0\n", {"test.yaml:2", "max_batch", "0 is out of range 1..4096"}},
      {"batching:\n  max_batch: \"8\"\n", {"test.yaml:2", "max_batch", "'8'"}},
      {"batching:\n  max_batch: eight\n", {"test.yaml:2", "expected an integer", "eight"}},
      {"bogus:\n  a: 1\n", {"test.yaml:1", "bogus", "batching"}},
      {"listen:\n  tcp: localhost\n", {"test.yaml:2", "tcp", "HOST:PORT"}},
      {"listen:\n  socket_mode: 0999\n", {"test.yaml:2", "socket_mode", "0999"}},
      {"log:\n  level: loud\n", {"test.yaml:2", "level", "loud"}},
      {"engine:\n  backend: tpu\n", {"test.yaml:2", "auto, cpu or cuda", "tpu"}},
      {"limits:\n  max_tta: [1]\n", {"test.yaml:2", "max_tta", "scalar"}},
      {"limits: 3\n", {"test.yaml:1", "limits", "mapping"}},
      {"batching:\n  max_batch: 4\n  max_batch: 8\n", {"test.yaml:3", "duplicate", "max_batch"}},
      {"batching: {max_batch: 4\n", {"test.yaml", "", ""}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    int rc = load(&c, bad[i].yaml, &err);
    PD_CHECK(&st, rc != 0);
    for (int k = 0; k < 3; k++)
      if (bad[i].needles[k][0]) PD_CHECK_CONTAINS(&st, err.msg, bad[i].needles[k]);
    if (rc == 0) fprintf(stderr, "  accepted: %s\n", bad[i].yaml);
  }
  /* a failing load leaves the settings as they were */
  pd_config_defaults(&c, "/m");
  PD_CHECK(&st, load(&c, "batching:\n  max_batch: 8\n  max_queue: 0\n", &err) != 0);
  PD_CHECK_INT(&st, c.max_batch, 64);

  /* overrides */
  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(&st, pd_config_set(&c, "batching.max_batch", "12", &err), 0);
  PD_CHECK_INT(&st, c.max_batch, 12);
  PD_CHECK_INT(&st, pd_config_set(&c, "listen.socket_mode", "0640", &err), 0);
  PD_CHECK_INT(&st, c.socket_mode, 0640);
  PD_CHECK(&st, pd_config_set(&c, "batching.max_bach", "12", &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "max_bach");
  PD_CHECK_CONTAINS(&st, err.msg, "batching.max_batch");
  PD_CHECK(&st, pd_config_set(&c, "limits.max_tta", "-1", &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "limits.max_tta: -1 is out of range");

  /* across settings */
  pd_config_defaults(&c, "/m");
  c.max_queue = 8;
  PD_CHECK(&st, pd_config_validate(&c, &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "max_queue (8)");
  pd_config_defaults(&c, "/m");
  snprintf(c.socket_path, sizeof c.socket_path, "relative.sock");
  PD_CHECK(&st, pd_config_validate(&c, &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "relative.sock");
  pd_config_defaults(&c, "");
  PD_CHECK(&st, pd_config_validate(&c, &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "model.dir");
  pd_config_defaults(&c, "/m");
  c.max_receive_bytes = c.max_frame_bytes - 1; /* one largest frame must fit */
  PD_CHECK(&st, pd_config_validate(&c, &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "limits.max_receive_bytes (16777215)");
  PD_CHECK_CONTAINS(&st, err.msg, "limits.max_frame_bytes (16777216)");
  c.max_receive_bytes = c.max_frame_bytes;
  PD_CHECK_INT(&st, pd_config_validate(&c, &err), 0);

  /* format then load gives the same settings */
  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(&st, load(&c, good, &err), 0);
  char text[8192];
  PD_CHECK_INT(&st, pd_config_format(&c, text, sizeof text), 0);
  pd_config c2;
  pd_config_defaults(&c2, "/other");
  PD_CHECK_INT(&st, pd_config_load_mem(&c2, text, strlen(text), "formatted", &err), 0);
  PD_CHECK(&st, !memcmp(&c, &c2, sizeof c));

  const char *example = getenv("PD_EXAMPLE_CONFIG");
  if (example) {
    pd_config_defaults(&c, "/m");
    int rc = pd_config_load_file(&c, example, &err);
    PD_CHECK_INT(&st, rc, 0);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    PD_CHECK_INT(&st, pd_config_validate(&c, &err), 0);
  }
  return pd_test_finish(&st, "daemon_config");
}
