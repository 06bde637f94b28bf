/* fuzz_config: the daemon's settings as planktond.c reads them: the YAML
 * file over the defaults (pd_config_load_mem), --set KEY=VALUE overrides
 * (pd_config_set), the check across settings (pd_config_validate) and the
 * --print-config text (pd_config_format).
 *
 * Input layout: the YAML text, then optionally a NUL byte and --set lines
 * ("section.key=value", one per line).
 *
 * Oracles: a failed load leaves the settings untouched and names the
 * problem; every string setting stays NUL-terminated within its buffer;
 * every integer setting stays in its documented range; the formatted text
 * of valid settings loads back to the same settings. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "pd_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

/* Field by field (a struct's padding bytes carry no value). */
static bool config_equal(const pd_config *a, const pd_config *b) {
  return !strcmp(a->socket_path, b->socket_path) && a->socket_mode == b->socket_mode &&
         !strcmp(a->tcp, b->tcp) && !strcmp(a->metrics, b->metrics) &&
         !strcmp(a->model_dir, b->model_dir) && !strcmp(a->backend, b->backend) &&
         a->device == b->device && a->threads == b->threads &&
         a->decode_threads == b->decode_threads && a->max_batch == b->max_batch &&
         a->max_queue_delay_us == b->max_queue_delay_us && a->max_queue == b->max_queue &&
         a->max_frame_bytes == b->max_frame_bytes && a->max_image_width == b->max_image_width &&
         a->max_image_height == b->max_image_height && a->max_image_pixels == b->max_image_pixels &&
         a->max_in_flight == b->max_in_flight && a->max_connections == b->max_connections &&
         a->max_tta == b->max_tta && a->default_top_k == b->default_top_k &&
         a->drain_timeout_s == b->drain_timeout_s && a->log_level == b->log_level;
}

static void check_ranges(const pd_config *c) {
  PD_FUZZ_ASSERT(memchr(c->socket_path, '\0', sizeof c->socket_path));
  PD_FUZZ_ASSERT(memchr(c->tcp, '\0', sizeof c->tcp));
  PD_FUZZ_ASSERT(memchr(c->metrics, '\0', sizeof c->metrics));
  PD_FUZZ_ASSERT(memchr(c->model_dir, '\0', sizeof c->model_dir));
  PD_FUZZ_ASSERT(memchr(c->backend, '\0', sizeof c->backend));
  PD_FUZZ_ASSERT(c->socket_mode >= 0 && c->socket_mode <= 0777);
  PD_FUZZ_ASSERT(c->device >= 0 && c->device <= 64);
  PD_FUZZ_ASSERT(c->threads >= 0 && c->threads <= 256);
  PD_FUZZ_ASSERT(c->decode_threads >= 0 && c->decode_threads <= 1024);
  PD_FUZZ_ASSERT(c->max_batch >= 1 && c->max_batch <= 4096);
  PD_FUZZ_ASSERT(c->max_queue >= 1);
  PD_FUZZ_ASSERT(c->max_frame_bytes >= 1024 && c->max_frame_bytes <= 256L << 20);
  PD_FUZZ_ASSERT(c->max_image_width >= 1 && c->max_image_width <= 65535);
  PD_FUZZ_ASSERT(c->max_image_height >= 1 && c->max_image_height <= 65535);
  PD_FUZZ_ASSERT(c->max_image_pixels >= 1 && c->max_image_pixels <= 1L << 30);
  PD_FUZZ_ASSERT(c->max_in_flight >= 1 && c->max_tta >= 1 && c->default_top_k >= 1);
  PD_FUZZ_ASSERT(c->log_level >= PD_LOG_ERROR && c->log_level <= PD_LOG_DEBUG);
}

/* Known issue, reported to the daemon's owner (tests/fuzz/regress/config/
 * print_config_*): pd_config_format writes strings between double quotes
 * without escaping, so a value with '"' or '\\' prints as YAML that does not
 * load or loads as another value, and a value set by --set may hold bytes
 * (DEL, invalid UTF-8) that no YAML file can carry. Until the fix lands, the
 * round trip is checked only for settings without those bytes; define
 * PD_FUZZ_STRICT_PRINT_CONFIG to check it always. */
static bool printable_plain(const char *s) {
#ifdef PD_FUZZ_STRICT_PRINT_CONFIG
  (void)s;
  return true;
#else
  for (; *s; s++)
    if (*s == '"' || *s == '\\' || (unsigned char)*s >= 0x7f) return false;
  return true;
#endif
}

/* Applies "key=value" lines; a line without '=' is a key with no value. */
static void apply_sets(pd_config *cfg, const char *text, size_t len) {
  char line[1024];
  size_t pos = 0;
  while (pos < len) {
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
    if (n < sizeof line) {
      memcpy(line, text + pos, n);
      line[n] = '\0';
      char *eq = strchr(line, '=');
      const char *value = "";
      if (eq) {
        *eq = '\0';
        value = eq + 1;
      }
      pd_config before = *cfg;
      pd_error err = {0};
      if (pd_config_set(cfg, line, value, &err) != PD_OK) {
        PD_FUZZ_ASSERT(err.msg[0] != '\0');
        PD_FUZZ_ASSERT(config_equal(&before, cfg));
      }
      check_ranges(cfg);
    }
    pos += n + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  const char *nul = memchr(text, '\0', size);
  size_t yaml_len = nul ? (size_t)(nul - text) : size;

  pd_config cfg, before;
  pd_config_defaults(&cfg, "/usr/share/planktond/models/default");
  before = cfg;
  pd_error err = {0};
  /* the YAML part: no terminating NUL, as a file read into memory */
  char *yaml = malloc(yaml_len ? yaml_len : 1);
  PD_FUZZ_ASSERT(yaml != NULL);
  memcpy(yaml, text, yaml_len);
  int rc = pd_config_load_mem(&cfg, yaml, yaml_len, "fuzz.yaml", &err);
  free(yaml);
  if (rc != PD_OK) {
    PD_FUZZ_ASSERT(rc < 0 && err.msg[0] != '\0');
    PD_FUZZ_ASSERT(config_equal(&before, &cfg));
  }
  check_ranges(&cfg);
  if (nul) apply_sets(&cfg, nul + 1, size - yaml_len - 1);

  if (pd_config_validate(&cfg, &err) != PD_OK) return 0;
  char buf[8192];
  PD_FUZZ_ASSERT(pd_config_format(&cfg, buf, sizeof buf) == PD_OK);
  if (!printable_plain(cfg.socket_path) || !printable_plain(cfg.tcp) ||
      !printable_plain(cfg.metrics) || !printable_plain(cfg.model_dir))
    return 0;
  /* --print-config output is a config file that gives the same settings */
  pd_config again;
  pd_config_defaults(&again, "/elsewhere");
  rc = pd_config_load_mem(&again, buf, strlen(buf), "printed.yaml", &err);
  if (rc != PD_OK) {
    fprintf(stderr, "printed config does not load back: %s\n---\n%s---\n", err.msg, buf);
    PD_FUZZ_ASSERT(rc == PD_OK);
  }
  PD_FUZZ_ASSERT(config_equal(&again, &cfg));
  return 0;
}
