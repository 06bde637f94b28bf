/* pd_csv: writing one CSV field (RFC 4180 quoting). Owns nothing. */
#ifndef PD_CSV_H
#define PD_CSV_H

#include <stdio.h>

/* Writes s as one field: as it is, or, when it holds a comma, a double quote
 * or a line break, between double quotes with each quote doubled. */
void pd_csv_field(FILE *f, const char *s);

#endif
