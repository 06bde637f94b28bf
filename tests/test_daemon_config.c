/* pd_config: defaults, a full YAML file, errors that name the file, line,
 * key and value (unknown keys, bad values, quoted numbers, wrong types),
 * --set overrides, the checks across settings, and the example
 * systemd/planktond.yaml ($PD_EXAMPLE_CONFIG), which must be exactly what
 * the settings table prints (regenerate it with
 * `test_daemon_config --write-example systemd/planktond.yaml`).
 *
 * Then every row of the settings table: the default in pd_config, in the
 * example and in --help agree; the YAML key, --set and the flag set the
 * same field; each end of an integer's range is accepted, one past it
 * refused with file:line and the range; a reload keeps the running value
 * of exactly the restart-only rows and names them. */
#include <stdlib.h>

#include "pd_config.h"
#include "pd_test.h"

static int load(pd_config *c, const char *text, pd_error *err) {
  pd_config_defaults(c, "/models/x");
  return pd_config_load_mem(c, text, strlen(text), "test.yaml", err);
}

#define EXAMPLE_MODEL_DIR "/usr/local/share/planktond/models/ndsb-seed"

/* The engine settings the CUDA backend and the device-error handling read:
 * good values land in their fields, bad ones are refused naming the key and
 * the value, and a GPU precision with backend cpu is refused across settings. */
static void engine_keys(pd_test_state *st) {
  pd_config c;
  pd_error err = {0};
  PD_CHECK_INT(st, load(&c, "", &err), 0);
  PD_CHECK_INT(st, c.cuda_graphs, 0);
  PD_CHECK_INT(st, c.cuda_workspace_mb, 256);
  PD_CHECK(st, !strcmp(c.on_device_error, "auto"));
  PD_CHECK(st, c.cuda_algo_cache_dir[0] == '\0');
  PD_CHECK_INT(st,
               load(&c,
                    "engine: {backend: cuda, precision: fp16, cuda_graphs: true, "
                    "cuda_workspace_mb: 1024, on_device_error: fail, cuda_algo_cache_dir: "
                    "/var/cache/planktond}\n",
                    &err),
               0);
  PD_CHECK_INT(st, c.cuda_graphs, 1);
  PD_CHECK_INT(st, c.cuda_workspace_mb, 1024);
  PD_CHECK(st, !strcmp(c.precision, "fp16"));
  PD_CHECK(st, !strcmp(c.on_device_error, "fail"));
  PD_CHECK(st, !strcmp(c.cuda_algo_cache_dir, "/var/cache/planktond"));
  PD_CHECK_INT(st, pd_config_validate(&c, &err), 0);
  PD_CHECK_INT(st, load(&c, "engine: {precision: tf32, on_device_error: cpu}\n", &err), 0);
  PD_CHECK(st, !strcmp(c.precision, "tf32"));
  PD_CHECK_INT(st, pd_config_validate(&c, &err), 0); /* backend auto: the GPU may run it */
  struct {
    const char *yaml, *needles[3];
  } bad[] = {
      {"engine:\n  cuda_graphs: yes please\n", {"test.yaml:2", "cuda_graphs", "yes please"}},
      {"engine:\n  cuda_workspace_mb: 0\n",
       {"test.yaml:2", "cuda_workspace_mb", "0 is out of range 1..1048576"}},
      {"engine:\n  cuda_workspace_mb: lots\n", {"test.yaml:2", "cuda_workspace_mb", "lots"}},
      {"engine:\n  precision: fp8\n", {"test.yaml:2", "precision", "fp8"}},
      {"engine:\n  on_device_error: retry\n",
       {"test.yaml:2", "on_device_error", "expected auto, cpu or fail, got 'retry'"}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    const int rc = load(&c, bad[i].yaml, &err);
    PD_CHECK(st, rc != 0);
    for (int k = 0; k < 3; k++)
      PD_CHECK_CONTAINS(st, err.msg, bad[i].needles[k]);
  }
  for (int gpu = 0; gpu < 2; gpu++) {
    const char *p = gpu ? "fp16" : "tf32";
    char yaml[80], want[120];
    snprintf(yaml, sizeof yaml, "engine: {backend: cpu, precision: %s}\n", p);
    PD_CHECK_INT(st, load(&c, yaml, &err), 0);
    PD_CHECK(st, pd_config_validate(&c, &err) != 0);
    snprintf(want, sizeof want, "engine.precision %s runs on the CUDA backend only", p);
    PD_CHECK_CONTAINS(st, err.msg, want);
    PD_CHECK_CONTAINS(st, err.msg, "engine.backend is cpu");
  }
  /* flags: --set and the flag reach the same fields */
  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(st, pd_config_set(&c, "engine.cuda_graphs", "true", &err), 0);
  PD_CHECK_INT(st, c.cuda_graphs, 1);
  PD_CHECK(st, pd_config_set(&c, "engine.cuda_workspace_mb", "-5", &err) != 0);
  PD_CHECK_CONTAINS(st, err.msg, "engine.cuda_workspace_mb: -5 is out of range");
  size_t n = strlen("--cuda-workspace-mb");
  const pd_setting *f = pd_config_flag("--cuda-workspace-mb", n);
  PD_CHECK(st, f && !strcmp(f->name, "engine.cuda_workspace_mb"));
  f = pd_config_flag("--cuda-graphs", strlen("--cuda-graphs"));
  PD_CHECK(st, f && !strcmp(f->name, "engine.cuda_graphs"));
  f = pd_config_flag("--cuda-algo-cache", strlen("--cuda-algo-cache"));
  PD_CHECK(st, f && !strcmp(f->name, "engine.cuda_algo_cache_dir"));
  f = pd_config_flag("--on-device-error", strlen("--on-device-error"));
  PD_CHECK(st, f && !strcmp(f->name, "engine.on_device_error"));
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 20);
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
  (void)n;
  fclose(f);
  return buf;
}

/* The field a row names, as text ("64", "0660", "info", "/run/x"). */
static void field_text(const pd_setting *f, const pd_config *c, char *out, size_t cap) {
  const char *base = (const char *)c + f->off;
  switch (f->type) {
  case PD_SET_INT:
    snprintf(out, cap, "%ld", *(const long *)base);
    break;
  case PD_SET_MODE:
    snprintf(out, cap, "0%03lo", (unsigned long)*(const long *)base);
    break;
  case PD_SET_LEVEL:
    snprintf(out, cap, "%s", f->choices[*(const pd_log_level *)base]);
    break;
  case PD_SET_BOOL:
    snprintf(out, cap, "%s", *(const long *)base ? "true" : "false");
    break;
  default:
    snprintf(out, cap, "%s", base);
    break;
  }
}

/* A value of the row other than its default, valid for it. */
static const char *other_value(const pd_setting *f, char *buf, size_t cap) {
  switch (f->type) {
  case PD_SET_INT:
    snprintf(buf, cap, "%ld", f->def == f->hi ? f->lo : f->def + 1);
    break;
  case PD_SET_MODE:
    snprintf(buf, cap, "0600");
    break;
  case PD_SET_LEVEL:
    snprintf(buf, cap, "%s", f->choices[f->def ? 0 : 1]);
    break;
  case PD_SET_BOOL:
    snprintf(buf, cap, "%s", f->def ? "false" : "true");
    break;
  case PD_SET_CHOICE: /* a choice of the row's own other than its default */
    snprintf(buf, cap, "%s", !strcmp(f->def_text, f->choices[0]) ? f->choices[1] : f->choices[0]);
    break;
  case PD_SET_GROUP:
    snprintf(buf, cap, "plankton");
    break;
  case PD_SET_TCP:
    snprintf(buf, cap, "127.0.0.1:7999");
    break;
  case PD_SET_LISTEN:
    snprintf(buf, cap, "unix:/run/x.sock");
    break;
  case PD_SET_PATH:
    snprintf(buf, cap, "/srv/other");
    break;
  }
  return buf;
}

static void table_rows(pd_test_state *st) {
  size_t n = 0;
  const pd_setting *rows = pd_config_settings(&n);
  PD_CHECK(st, n > 20);
  pd_config def;
  pd_config_defaults(&def, "/models/default");
  char example[65536], usage[16384];
  PD_CHECK_INT(st, pd_config_example(example, sizeof example, "/models/default"), 0);
  PD_CHECK_INT(st, pd_config_usage(usage, sizeof usage, "/models/default"), 0);
  pd_error err = {0};
  int restart_only = 0;
  for (size_t i = 0; i < n; i++) {
    const pd_setting *f = &rows[i];
    char want[600], got[600], line[800], name[128];
    snprintf(name, sizeof name, "%s.%s", f->section, f->key);
    PD_CHECK(st, !strcmp(name, f->name));
    for (size_t j = 0; j < i; j++) { /* names and flags are unique */
      PD_CHECK(st, strcmp(rows[j].name, f->name) != 0);
      if (f->flag && rows[j].flag) PD_CHECK(st, strcmp(rows[j].flag, f->flag) != 0);
    }
    PD_CHECK(st, f->help && f->help[0]);
    /* the default: in pd_config, in the example and in --help */
    field_text(f, &def, got, sizeof got);
    if (f->type == PD_SET_INT || f->type == PD_SET_MODE || f->type == PD_SET_LEVEL ||
        f->type == PD_SET_BOOL)
      snprintf(want, sizeof want, "%s", got);
    else
      snprintf(want, sizeof want, "%s", f->def_text ? f->def_text : "/models/default");
    PD_CHECK(st, !strcmp(got, want));
    snprintf(line, sizeof line, "\n  %s: %s ", f->key, want[0] ? want : "\"\"");
    PD_CHECK_CONTAINS(st, example, line);
    if (f->flag) {
      PD_CHECK(st, !strncmp(f->flag, "--", 2) && f->arg);
      PD_CHECK(st, pd_config_flag(f->flag, strlen(f->flag)) == f);
      snprintf(line, sizeof line, "%s %s", f->flag, f->arg);
      PD_CHECK_CONTAINS(st, usage, line);
      snprintf(line, sizeof line, "%s (default %s%s)\n", f->name, want[0] ? want : "\"\"",
               f->reloadable ? "" : "; restart-only");
      PD_CHECK_CONTAINS(st, usage, line);
      snprintf(line, sizeof line, " %s\n", f->help);
      PD_CHECK_CONTAINS(st, usage, line);
    }
    /* the YAML key and --set give the same field */
    char value[600];
    other_value(f, value, sizeof value);
    pd_config a, b;
    pd_config_defaults(&a, "/models/default");
    pd_config_defaults(&b, "/models/default");
    char yaml[900];
    snprintf(yaml, sizeof yaml, "%s:\n  %s: %s\n", f->section, f->key, value);
    PD_CHECK_INT(st, pd_config_load_mem(&a, yaml, strlen(yaml), "row.yaml", &err), 0);
    PD_CHECK_INT(st, pd_config_set(&b, f->name, value, &err), 0);
    PD_CHECK(st, !memcmp(&a, &b, sizeof a));
    field_text(f, &a, got, sizeof got);
    PD_CHECK(st, !strcmp(got, value));
    if (strcmp(got, value)) fprintf(stderr, "  %s: set %s, got %s\n", f->name, value, got);
    /* an integer's range: both ends in, one past each end out, with file:line */
    if (f->type == PD_SET_INT) {
      long ends[2] = {f->lo, f->hi}, past[2] = {f->lo - 1, f->hi + 1};
      for (int k = 0; k < 2; k++) {
        snprintf(yaml, sizeof yaml, "# a comment\n%s:\n  %s: %ld\n", f->section, f->key, ends[k]);
        PD_CHECK_INT(st, pd_config_load_mem(&a, yaml, strlen(yaml), "row.yaml", &err), 0);
        snprintf(yaml, sizeof yaml, "# a comment\n%s:\n  %s: %ld\n", f->section, f->key, past[k]);
        PD_CHECK(st, pd_config_load_mem(&a, yaml, strlen(yaml), "row.yaml", &err) != 0);
        PD_CHECK_CONTAINS(st, err.msg, "row.yaml:3");
        snprintf(line, sizeof line, "%ld is out of range %ld..%ld", past[k], f->lo, f->hi);
        PD_CHECK_CONTAINS(st, err.msg, line);
      }
    }
    /* a reload: restart-only rows keep the running value and are named */
    pd_config running = def, next = def;
    PD_CHECK_INT(st, pd_config_set(&next, f->name, value, &err), 0);
    char names[1024];
    int changed = pd_config_keep_restart_only(&next, &running, names, sizeof names);
    PD_CHECK_INT(st, changed, f->reloadable ? 0 : 1);
    if (f->reloadable) {
      field_text(f, &next, got, sizeof got);
      PD_CHECK(st, !strcmp(got, value));
    } else {
      PD_CHECK(st, !memcmp(&next, &running, sizeof next));
      PD_CHECK(st, !strcmp(names, f->name));
      snprintf(line, sizeof line, " %s", f->name); /* the example names it */
      PD_CHECK_CONTAINS(st, example, line);
      restart_only++;
    }
  }
  /* the example gives the defaults */
  pd_config ex;
  pd_config_defaults(&ex, "/elsewhere");
  PD_CHECK_INT(st, pd_config_load_mem(&ex, example, strlen(example), "example", &err), 0);
  PD_CHECK(st, !memcmp(&ex, &def, sizeof ex));
  /* several restart-only changes at once: all named */
  pd_config running = def, next = def;
  PD_CHECK_INT(st, pd_config_set(&next, "listen.tcp", "127.0.0.1:7000", &err), 0);
  PD_CHECK_INT(st, pd_config_set(&next, "engine.decode_threads", "3", &err), 0);
  PD_CHECK_INT(st, pd_config_set(&next, "batching.max_batch", "8", &err), 0);
  char names[1024];
  PD_CHECK_INT(st, pd_config_keep_restart_only(&next, &running, names, sizeof names), 2);
  PD_CHECK(st, !strcmp(names, "listen.tcp, engine.decode_threads"));
  PD_CHECK_INT(st, next.max_batch, 8);
  PD_CHECK(st, restart_only >= 8);
  printf("settings table: %zu rows, %d restart-only\n", n, restart_only);
}

int main(int argc, char **argv) {
  pd_test_state st = {0};
  pd_config c;
  pd_error err = {0};
  if (argc == 3 && !strcmp(argv[1], "--write-example")) {
    static char text[65536];
    FILE *f = fopen(argv[2], "w");
    if (!f || pd_config_example(text, sizeof text, EXAMPLE_MODEL_DIR) != PD_OK) return 1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : 1;
  }

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
    /* it is what the table prints, byte for byte */
    static char want[65536];
    PD_CHECK_INT(&st, pd_config_example(want, sizeof want, EXAMPLE_MODEL_DIR), 0);
    char *have = read_all(example);
    PD_CHECK(&st, have && !strcmp(have, want));
    if (have && strcmp(have, want))
      fprintf(stderr,
              "  %s differs from the settings table: regenerate it with\n"
              "  test_daemon_config --write-example %s\n",
              example, example);
    free(have);
  }
  table_rows(&st);
  engine_keys(&st);
  return pd_test_finish(&st, "daemon_config");
}
