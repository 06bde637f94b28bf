/* pc_cli_retry: --retry-for and the retry summary (see pc_cli_retry.h). */
#include "pc_cli_retry.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int pc_cli_retry_parse(const char *s, double *seconds, pc_cli_error *err) {
  char *end = NULL;
  errno = 0;
  double v = s && *s ? strtod(s, &end) : 0;
  if (!s || !*s || *end || errno || !isfinite(v))
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--retry-for: '%s' is not a number of seconds",
                       s ? s : "");
  if (v < 0 || v > 86400)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "--retry-for: %s s is out of range [0, 86400] (0: no retries)", s);
  *seconds = v;
  return PC_CLI_EXIT_OK;
}

int pc_cli_retry_apply(pc_client *c, double seconds, pc_cli_error *err) {
  pc_client_retry_policy p = {.retry_for_s = seconds};
  pc_client_error e;
  if (pc_client_set_retry(c, &p, &e) != PC_CLIENT_OK)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--retry-for %g: %s", seconds, e.message);
  return PC_CLI_EXIT_OK;
}

static const char *plural(uint64_t n) {
  return n == 1 ? "" : "s";
}

void pc_cli_retry_report(const char *prog, const pc_client *c, FILE *f) {
  pc_client_retry_counters k;
  pc_client_retry_stats(c, &k);
  if (!k.reconnects && !k.attempts && !k.resent && !k.unavailable && !k.duplicates_dropped &&
      !k.failed_after_retries && !k.drain_notices)
    return;
  fprintf(f,
          "%s: retries: %llu reconnect%s (%llu attempt%s), %llu request%s resent, %llu "
          "UNAVAILABLE answer%s and %llu drain notice%s taken as 'ask elsewhere', %llu duplicate "
          "answer%s dropped, %llu request%s failed after retries\n",
          prog, (unsigned long long)k.reconnects, plural(k.reconnects),
          (unsigned long long)k.attempts, plural(k.attempts), (unsigned long long)k.resent,
          plural(k.resent), (unsigned long long)k.unavailable, plural(k.unavailable),
          (unsigned long long)k.drain_notices, plural(k.drain_notices),
          (unsigned long long)k.duplicates_dropped, plural(k.duplicates_dropped),
          (unsigned long long)k.failed_after_retries, plural(k.failed_after_retries));
}
