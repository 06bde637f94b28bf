/* fuzz_config: the daemon's settings as planktond.c reads them: the YAML
 * file over the defaults (pd_config_load_mem), --set KEY=VALUE overrides
 * (pd_config_set), the check across settings (pd_config_validate) and the
 * --print-config text (pd_config_format).
 *
 * Input layout: the YAML text, then optionally a NUL byte and --set lines
 * ("section.key=value", one per line).
 *
 * Oracles: a failed load or --set leaves the settings untouched (the same
 * --print-config text) and names the problem; every string setting stays
 * NUL-terminated within its buffer; the main integer settings stay in their
 * documented ranges and the socket is never world-writable; the printed
 * text of valid settings loads back to the same settings (compared as
 * printed text, so settings added later are covered without changes
 * here). */
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

/* --print-config text of c (every setting, in the table's order). */
static void print_config(const pd_config *c, char *buf, size_t cap) {
  PD_FUZZ_ASSERT(pd_config_format(c, buf, cap) == PD_OK);
}

static void check_ranges(const pd_config *c) {
  PD_FUZZ_ASSERT(memchr(c->socket_path, '\0', sizeof c->socket_path));
  PD_FUZZ_ASSERT(memchr(c->socket_group, '\0', sizeof c->socket_group));
  PD_FUZZ_ASSERT(memchr(c->tcp, '\0', sizeof c->tcp));
  PD_FUZZ_ASSERT(memchr(c->metrics, '\0', sizeof c->metrics));
  PD_FUZZ_ASSERT(memchr(c->model_dir, '\0', sizeof c->model_dir));
  PD_FUZZ_ASSERT(memchr(c->backend, '\0', sizeof c->backend));
  PD_FUZZ_ASSERT(c->socket_mode >= 0 && c->socket_mode <= 0777 && !(c->socket_mode & 0002));
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
 * without escaping, so a value with '"' or a backslash prints as YAML that
 * does not load or loads as another value, and a value set by --set may hold
 * bytes (DEL, invalid UTF-8) that no YAML file can carry. Until the fix
 * lands, the round trip is checked only for printed text without those
 * bytes; define PD_FUZZ_STRICT_PRINT_CONFIG to check it always. */
static bool printable_plain(const char *text) {
#ifdef PD_FUZZ_STRICT_PRINT_CONFIG
  (void)text;
  return true;
#else
  int quotes = 0;
  for (const char *s = text; *s; s++) {
    if (*s == '\\' || (unsigned char)*s >= 0x7f) return false;
    if (*s == '"') quotes++;
    if (*s == '\n') {
      if (quotes != 0 && quotes != 2) return false;
      quotes = 0;
    }
  }
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
      char before[8192], after[8192];
      print_config(cfg, before, sizeof before);
      pd_error err = {0};
      if (pd_config_set(cfg, line, value, &err) != PD_OK) {
        PD_FUZZ_ASSERT(err.msg[0] != '\0');
        print_config(cfg, after, sizeof after);
        PD_FUZZ_ASSERT(strcmp(before, after) == 0);
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

  char before[8192], buf[8192], again_buf[8192];
  pd_config cfg;
  pd_config_defaults(&cfg, "/usr/share/planktond/models/default");
  print_config(&cfg, before, sizeof before);
  pd_error err = {0};
  /* the YAML part: no terminating NUL, as a file read into memory */
  char *yaml = malloc(yaml_len ? yaml_len : 1);
  PD_FUZZ_ASSERT(yaml != NULL);
  memcpy(yaml, text, yaml_len);
  int rc = pd_config_load_mem(&cfg, yaml, yaml_len, "fuzz.yaml", &err);
  free(yaml);
  if (rc != PD_OK) { /* a file that fails to load changes nothing */
    PD_FUZZ_ASSERT(rc < 0 && err.msg[0] != '\0');
    print_config(&cfg, buf, sizeof buf);
    PD_FUZZ_ASSERT(strcmp(before, buf) == 0);
  }
  check_ranges(&cfg);
  if (nul) apply_sets(&cfg, nul + 1, size - yaml_len - 1);

  if (pd_config_validate(&cfg, &err) != PD_OK) return 0;
  print_config(&cfg, buf, sizeof buf);
  if (!printable_plain(buf)) return 0;
  /* --print-config output is a config file that gives the same settings */
  pd_config again;
  pd_config_defaults(&again, "/elsewhere");
  rc = pd_config_load_mem(&again, buf, strlen(buf), "printed.yaml", &err);
  if (rc != PD_OK) {
    fprintf(stderr, "printed config does not load back: %s\n---\n%s---\n", err.msg, buf);
    PD_FUZZ_ASSERT(rc == PD_OK);
  }
  print_config(&again, again_buf, sizeof again_buf);
  if (strcmp(buf, again_buf) != 0) {
    fprintf(stderr, "printed config loads back as other settings:\n---\n%s---\n%s---\n", buf,
            again_buf);
    PD_FUZZ_ASSERT(strcmp(buf, again_buf) == 0);
  }
  return 0;
}
