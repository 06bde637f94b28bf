/* pc_cli_args: reading option values (integers and durations with their
 * ranges) and setting the shared error value. A bad value gets a message
 * that names the option and the value given. */
#ifndef PC_CLI_ARGS_H
#define PC_CLI_ARGS_H

#include <stdint.h>

#include "pc_cli.h"

/* Parses a decimal integer in [lo, hi] for option `name`. */
int pc_cli_parse_int(const char *name, const char *s, long lo, long hi, long *out,
                     pc_cli_error *err);
/* Parses seconds (decimal, > 0, at most a day) into milliseconds. */
int pc_cli_parse_seconds(const char *name, const char *s, int *ms, pc_cli_error *err);
/* Parses a byte count with an optional K, M or G suffix (powers of 1024). */
int pc_cli_parse_bytes(const char *name, const char *s, uint64_t *out, pc_cli_error *err);

#endif
