/* pc_cli_json: writing JSON text: strings with escapes, numbers that read
 * back exactly (non-finite ones as null). Owns nothing; writes to a FILE. */
#ifndef PC_CLI_JSON_H
#define PC_CLI_JSON_H

#include <stdio.h>

/* A JSON string literal, quotes included (bytes >= 0x80 pass through). */
void pc_cli_json_string(FILE *f, const char *s);
/* A double with 17 significant digits, or null. */
void pc_cli_json_double(FILE *f, double v);
/* A float with 9 significant digits (reads back to the same float), or null. */
void pc_cli_json_float(FILE *f, float v);

#endif
