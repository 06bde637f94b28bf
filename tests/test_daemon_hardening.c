/* The hardening that needs no daemon: the config refuses a
 * world-writable socket mode (file and --set) and a malformed socket group,
 * reads the new timeouts and limits with their defaults; the framer does
 * not reserve a whole maximum frame for a header alone (its buffer follows
 * the bytes that arrive, growing by doubling: a few reallocations, not one
 * per read), refuses a header over
 * the limit (4 GiB included) before reserving anything, and still
 * reassembles a maximum-size frame fed in small reads. */
#include <stdbool.h>
#include <stdlib.h>

#include "pd_config.h"
#include "pd_frame.h"
#include "pd_test.h"

static pd_test_state st;

static void config(void) {
  pd_config c;
  pd_error err = {0};
  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(&st, c.frame_timeout_ms, 30000);
  PD_CHECK_INT(&st, c.idle_timeout_s, 0);
  PD_CHECK_INT(&st, c.metrics_max_connections, 16);
  PD_CHECK_INT(&st, c.metrics_idle_timeout_s, 300);
  PD_CHECK(&st, c.socket_group[0] == '\0');
  PD_CHECK(&st, c.tcp[0] == '\0');     /* TCP off unless configured */
  PD_CHECK(&st, c.metrics[0] == '\0'); /* so is /metrics */
  PD_CHECK_INT(&st, c.socket_mode & 0007, 0);

  const char *modes_bad[] = {"0666", "0662", "0777", "0002", "0772"};
  for (size_t i = 0; i < sizeof modes_bad / sizeof modes_bad[0]; i++) {
    pd_config_defaults(&c, "/m");
    PD_CHECK(&st, pd_config_set(&c, "listen.socket_mode", modes_bad[i], &err) != 0);
    PD_CHECK_CONTAINS(&st, err.msg, "world-writable");
    PD_CHECK_INT(&st, c.socket_mode, 0660);
    char yaml[128];
    snprintf(yaml, sizeof yaml, "listen:\n  socket_mode: %s\n", modes_bad[i]);
    pd_config_defaults(&c, "/m");
    PD_CHECK(&st, pd_config_load_mem(&c, yaml, strlen(yaml), "t.yaml", &err) != 0);
    PD_CHECK_CONTAINS(&st, err.msg, "t.yaml:2");
    PD_CHECK_CONTAINS(&st, err.msg, "world-writable");
  }
  const char *modes_ok[] = {"0600", "0660", "0640", "0664", "0770"};
  for (size_t i = 0; i < sizeof modes_ok / sizeof modes_ok[0]; i++) {
    pd_config_defaults(&c, "/m");
    PD_CHECK_INT(&st, pd_config_set(&c, "listen.socket_mode", modes_ok[i], &err), 0);
  }

  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(&st, pd_config_set(&c, "listen.socket_group", "plankton", &err), 0);
  PD_CHECK(&st, !strcmp(c.socket_group, "plankton"));
  PD_CHECK_INT(&st, pd_config_set(&c, "listen.socket_group", "1001", &err), 0);
  PD_CHECK(&st, pd_config_set(&c, "listen.socket_group", "a b", &err) != 0);
  PD_CHECK(&st, pd_config_set(&c, "listen.socket_group", "x;rm", &err) != 0);
  PD_CHECK_CONTAINS(&st, err.msg, "group");

  const char *yaml = "listen:\n  socket_group: plankton\nmetrics:\n  max_connections: 3\n"
                     "  idle_timeout_s: 9\nlimits:\n  frame_timeout_ms: 1500\n"
                     "  idle_timeout_s: 60\n";
  pd_config_defaults(&c, "/m");
  PD_CHECK_INT(&st, pd_config_load_mem(&c, yaml, strlen(yaml), "t.yaml", &err), 0);
  PD_CHECK_INT(&st, c.frame_timeout_ms, 1500);
  PD_CHECK_INT(&st, c.idle_timeout_s, 60);
  PD_CHECK_INT(&st, c.metrics_max_connections, 3);
  PD_CHECK_INT(&st, c.metrics_idle_timeout_s, 9);
  /* and they survive --print-config */
  char text[16384];
  PD_CHECK_INT(&st, pd_config_format(&c, text, sizeof text), 0);
  pd_config c2;
  pd_config_defaults(&c2, "/m"); /* (bytes past a string NUL are compared too) */
  PD_CHECK_INT(&st, pd_config_load_mem(&c2, text, strlen(text), "formatted", &err), 0);
  PD_CHECK(&st, !memcmp(&c, &c2, sizeof c));
  PD_CHECK(&st, pd_config_set(&c, "limits.frame_timeout_ms", "-1", &err) != 0);
}

static void framer(void) {
  const size_t max = 16u << 20;
  pd_framer f;
  pd_error err = {0};
  uint8_t *at;
  size_t avail;
  const uint8_t *msg;
  size_t len;

  /* a header claiming the maximum, then nothing: one read's worth reserved */
  pd_framer_init(&f, max);
  PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
  pd_frame_header(at, (uint32_t)max);
  pd_framer_commit(&f, 4);
  PD_CHECK_INT(&st, pd_framer_next(&f, &msg, &len, &err), 0);
  PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
  PD_CHECK(&st, f.cap <= 2 * 65536 + 4);
  /* then the frame in 1000-byte reads: the buffer never exceeds twice what
   * arrived (past the first read), and the frame comes out whole */
  size_t fed = 4, last_cap = f.cap;
  bool bounded = true;
  int frames = 0, grows = 0;
  while (fed < 4 + max) {
    PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
    grows += f.cap != last_cap;
    last_cap = f.cap;
    size_t n = avail < 1000 ? avail : 1000;
    if (n > 4 + max - fed) n = 4 + max - fed;
    for (size_t i = 0; i < n; i++)
      at[i] = (uint8_t)(fed + i);
    pd_framer_commit(&f, n);
    fed += n;
    if (f.cap > 2 * fed + 65536) bounded = false;
    int rc = pd_framer_next(&f, &msg, &len, &err);
    if (rc == 1) {
      frames++;
      PD_CHECK_INT(&st, len, max);
      PD_CHECK_INT(&st, msg[0], 4);
      PD_CHECK_INT(&st, msg[max - 1], (uint8_t)(max + 3));
    }
  }
  PD_CHECK(&st, bounded);
  PD_CHECK(&st, grows <= 12); /* doubling: a handful of reallocations, not one per read */
  PD_CHECK_INT(&st, frames, 1);
  PD_CHECK(&st, f.cap <= 4 + max + 65536);
  pd_framer_free(&f);

  /* headers over the limit, 4 GiB included: refused, nothing reserved */
  const uint32_t over[] = {0xffffffffu, 0x80000000u, (uint32_t)max + 1};
  for (size_t i = 0; i < 3; i++) {
    pd_framer_init(&f, max);
    PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
    pd_frame_header(at, over[i]);
    pd_framer_commit(&f, 4);
    PD_CHECK_INT(&st, pd_framer_next(&f, &msg, &len, &err), PD_ELIMIT);
    PD_CHECK_CONTAINS(&st, err.msg, "exceeds the limit");
    PD_CHECK_INT(&st, pd_framer_space(&f, 0, &at, &avail), 0);
    PD_CHECK(&st, f.cap <= 65536 + 4);
    pd_framer_free(&f);
  }
}

int main(void) {
  config();
  framer();
  return pd_test_finish(&st, "daemon_hardening");
}
