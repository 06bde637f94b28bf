/* pc_cli_utf8: checking bytes for UTF-8 (shortest forms only, no
 * surrogates, at most U+10FFFF), for the outputs that must be UTF-8 (JSON,
 * EcoTaxa's TSV) whatever bytes a file name holds. Owns nothing. */
#ifndef PC_CLI_UTF8_H
#define PC_CLI_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length (1..4) of the valid UTF-8 sequence that starts at s, or 0
 * when the bytes there do not form one. s points at a non-NUL byte. */
size_t pc_cli_utf8_seq(const char *s);
/* True when the whole NUL-terminated string is valid UTF-8. */
bool pc_cli_utf8_valid(const char *s);

#endif
