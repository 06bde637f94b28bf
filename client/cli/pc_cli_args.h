/* pc_cli_args: reading option values (integers and durations with their
 * ranges), the messages for bad options, and setting the shared error
 * value. A bad value gets a message that names the option and the value
 * given; every message starts with the program's name. */
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

/* After getopt_long (opterr = 0, an optstring that starts with ':')
 * returned c for a bad option (':' a missing value, '?' an unknown option):
 * prints "PROG: CMD: ..." and the help hint on stderr and returns
 * PC_CLI_EXIT_USAGE. cmd NULL: the global options. */
int pc_cli_bad_option(const char *prog, const char *cmd, int c, char *const *argv);
/* "PROG: try 'PROG [CMD] --help'" on stderr. */
void pc_cli_try_help(const char *prog, const char *cmd);

#endif
