/* pc_cli_retry: --retry-for SECONDS of classify and evaluate: reading the
 * value, setting libplankton-client's retry policy on the connection (so a
 * rolling restart or a crashed daemon costs no image), and the summary
 * line of the retry counters on stderr. Owns nothing. */
#ifndef PC_CLI_RETRY_H
#define PC_CLI_RETRY_H

#include <stdio.h>

#include "pc_cli.h"

#define PC_CLI_RETRY_DEFAULT_S 30.0

/* The option's value: seconds in [0, 86400]; 0 turns retries off. */
int pc_cli_retry_parse(const char *s, double *seconds, pc_cli_error *err);
/* Sets the policy (seconds 0: none) before any request is sent. */
int pc_cli_retry_apply(pc_client *c, double seconds, pc_cli_error *err);
/* One line on f when the connection was lost or re-established, or answers
 * were resent, dropped or failed after retries; nothing otherwise. */
void pc_cli_retry_report(const char *prog, const pc_client *c, FILE *f);

#endif
