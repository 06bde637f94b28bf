/* pc_cli_json: writing JSON text: strings with escapes, numbers that read
 * back exactly (non-finite ones as null). The text is always valid UTF-8:
 * a byte that is not part of a valid UTF-8 sequence is written as U+FFFD,
 * and pc_cli_json_bytes keeps such bytes recoverable. Owns nothing; writes
 * to a FILE. */
#ifndef PC_CLI_JSON_H
#define PC_CLI_JSON_H

#include <stdio.h>

/* A JSON string literal, quotes included: valid UTF-8 passes through,
 * each invalid byte becomes \ufffd. */
void pc_cli_json_string(FILE *f, const char *s);
/* A JSON string literal of the bytes of s, lossless: each byte that is not
 * part of valid UTF-8, and each '%', is written as %XX (hex); the rest as
 * pc_cli_json_string writes it. */
void pc_cli_json_bytes(FILE *f, const char *s);
/* A double with 17 significant digits, or null. */
void pc_cli_json_double(FILE *f, double v);
/* A float with 9 significant digits (reads back to the same float), or null. */
void pc_cli_json_float(FILE *f, float v);

#endif
