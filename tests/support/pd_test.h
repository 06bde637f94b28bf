/* pd_test: the few assertion macros the C unit tests share. Each test
 * program runs its cases, prints one line per failure with file:line and
 * the values, and exits non-zero if any check failed. */
#ifndef PD_TEST_H
#define PD_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pd_test_state {
  int checks, failures;
  int skipped; /* set by pd_test_skip (pd_test_cases.h) */
} pd_test_state;

#define PD_CHECK(st, cond)                                                                         \
  do {                                                                                             \
    (st)->checks++;                                                                                \
    if (!(cond)) {                                                                                 \
      (st)->failures++;                                                                            \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
    }                                                                                              \
  } while (0)

#define PD_CHECK_INT(st, got, want)                                                                \
  do {                                                                                             \
    long long g_ = (long long)(got), w_ = (long long)(want);                                       \
    (st)->checks++;                                                                                \
    if (g_ != w_) {                                                                                \
      (st)->failures++;                                                                            \
      fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_);          \
    }                                                                                              \
  } while (0)

#define PD_CHECK_NEAR(st, got, want, tol)                                                          \
  do {                                                                                             \
    double g_ = (double)(got), w_ = (double)(want);                                                \
    (st)->checks++;                                                                                \
    if (!(fabs(g_ - w_) <= (tol))) {                                                               \
      (st)->failures++;                                                                            \
      fprintf(stderr, "%s:%d: %s = %.9g, want %.9g (tol %g)\n", __FILE__, __LINE__, #got, g_, w_,  \
              (double)(tol));                                                                      \
    }                                                                                              \
  } while (0)

/* Checks that `msg` contains `needle` (for error messages that must name things). */
#define PD_CHECK_CONTAINS(st, msg, needle)                                                         \
  do {                                                                                             \
    const char *pd_m_ = (msg); /* NULL (no message at all) fails the check */                      \
    (st)->checks++;                                                                                \
    if (!pd_m_ || !strstr(pd_m_, (needle))) {                                                      \
      (st)->failures++;                                                                            \
      fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,                  \
              pd_m_ ? pd_m_ : "(none)", (needle));                                                 \
    }                                                                                              \
  } while (0)

static inline int pd_test_finish(const pd_test_state *st, const char *name) {
  printf("%s: %d checks, %d failed\n", name, st->checks, st->failures);
  return st->failures ? 1 : 0;
}

#endif
