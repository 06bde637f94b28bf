/* pd_yaml: a strict, read-only view of one YAML document (libyaml's document
 * API) for the model and config loaders. Owns the parsed document and a copy
 * of its name; nodes are small values that carry their dotted path
 * ("branches[0].layers[3].filters") so every error can say
 * "<name>:<line>: <path>: <problem>, got '<value>'". Nothing here prints. */
#ifndef PD_YAML_H
#define PD_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "pd_error.h"

struct yaml_node_s;
typedef struct pd_yaml pd_yaml;

typedef enum { PD_YAML_ABSENT = 0, PD_YAML_SCALAR, PD_YAML_SEQ, PD_YAML_MAP } pd_yaml_kind;

/* A node of a loaded document, or an absent one (a key that is not there). */
typedef struct pd_yaml_node {
  pd_yaml *doc;
  struct yaml_node_s *node; /* NULL when absent */
  int line;                 /* 1-based; an absent node has its mapping's line */
  char path[160];
} pd_yaml_node;

/* Parses text[len] (one document; a second one is an error). `name` (e.g. a
 * file path) is copied and used in every error message. */
int pd_yaml_load(const char *text, size_t len, const char *name, pd_yaml **out, pd_error *err);
void pd_yaml_free(pd_yaml *y);
const char *pd_yaml_doc_name(const pd_yaml *y);

pd_yaml_node pd_yaml_root(pd_yaml *y);
pd_yaml_kind pd_yaml_kind_of(const pd_yaml_node *n);
bool pd_yaml_present(const pd_yaml_node *n);
/* An empty plain scalar, `~` or `null`. */
bool pd_yaml_is_null(const pd_yaml_node *n);
/* 1-based line of the node (for an absent node, of the mapping it is missing from). */
int pd_yaml_line(const pd_yaml_node *n);

/* Formats "<name>:<line>: <path>: <message>" into err and returns code. */
int pd_yaml_fail(const pd_yaml_node *n, pd_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- mappings ---- */
int pd_yaml_expect_map(const pd_yaml_node *n, pd_error *err);
/* Checks that every key is a scalar, appears once and is in allowed[]
 * (NULL-terminated); the error for an unknown key lists the allowed ones. */
int pd_yaml_check_keys(const pd_yaml_node *map, const char *const *allowed, pd_error *err);
/* The same, telling report() of every bad key (then going on); returns the
 * first problem's code (err: the last problem), PD_OK when none. */
int pd_yaml_check_keys_all(const pd_yaml_node *map, const char *const *allowed, pd_error *err,
                           void (*report)(void *ctx, const pd_error *e), void *ctx);
/* The value under key (absent node if the key is missing). */
pd_yaml_node pd_yaml_get(const pd_yaml_node *map, const char *key);
/* As pd_yaml_get, but a missing key is an error. */
int pd_yaml_require(const pd_yaml_node *map, const char *key, pd_yaml_node *out, pd_error *err);
int pd_yaml_map_len(const pd_yaml_node *map);
/* Entry i of a mapping: its key text (NULL if the key is not a scalar) and value. */
const char *pd_yaml_map_entry(const pd_yaml_node *map, int i, size_t *key_len, pd_yaml_node *value);

/* ---- sequences ---- */
int pd_yaml_expect_seq(const pd_yaml_node *n, int min_len, int max_len, pd_error *err);
int pd_yaml_seq_len(const pd_yaml_node *seq);
pd_yaml_node pd_yaml_seq_at(const pd_yaml_node *seq, int i);

/* ---- scalars ---- */
/* Raw scalar text and length (NULL if not a scalar). */
const char *pd_yaml_scalar(const pd_yaml_node *n, size_t *len);
/* True for an unquoted scalar (numbers and booleans must be unquoted). */
bool pd_yaml_is_plain(const pd_yaml_node *n);

/* Typed reads with range checks (inclusive). Errors name the path and value. */
int pd_yaml_int(const pd_yaml_node *n, long long lo, long long hi, long long *out, pd_error *err);
int pd_yaml_float(const pd_yaml_node *n, double lo, double hi, double *out, pd_error *err);
int pd_yaml_bool(const pd_yaml_node *n, bool *out, pd_error *err);
/* A scalar of 1..max_len bytes without NUL or control characters. */
int pd_yaml_string(const pd_yaml_node *n, size_t max_len, const char **out, pd_error *err);
/* One of names[0..n_names-1]; *out is the index. */
int pd_yaml_enum(const pd_yaml_node *n, const char *const *names, int n_names, int *out,
                 pd_error *err);

/* Optional keys of a mapping: leave *out (the caller's default) alone when the
 * key is absent, otherwise read it as above. */
int pd_yaml_opt_int(const pd_yaml_node *map, const char *key, int lo, int hi, int *out,
                    pd_error *err);
int pd_yaml_opt_float(const pd_yaml_node *map, const char *key, double lo, double hi, float *out,
                      pd_error *err);
int pd_yaml_opt_bool(const pd_yaml_node *map, const char *key, bool *out, pd_error *err);
int pd_yaml_opt_enum(const pd_yaml_node *map, const char *key, const char *const *names,
                     int n_names, int *out, pd_error *err);

/* Required keys: a missing key is an error. */
int pd_yaml_req_int(const pd_yaml_node *map, const char *key, int lo, int hi, int *out,
                    pd_error *err);
int pd_yaml_req_float(const pd_yaml_node *map, const char *key, double lo, double hi, float *out,
                      pd_error *err);

/* A required identifier: a string of 1..cap-1 characters from [A-Za-z0-9]
 * and `extra`, copied into dst[cap]. The error names the line and the rule. */
int pd_yaml_req_ident(const pd_yaml_node *map, const char *key, const char *extra, char *dst,
                      size_t cap, pd_error *err);

#endif
