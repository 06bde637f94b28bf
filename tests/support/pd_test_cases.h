/* pd_test_cases: a test program's scenarios as a registered list (libuv's
 * test-list.h is the model). A program lists its cases once:
 *
 *   static const pd_test_case k_cases[] = {
 *       PD_TEST_CASE(pipelining),
 *       PD_TEST_CASE(tta),
 *   };
 *   PD_TEST_MAIN("daemon_load", setup, teardown, k_cases)
 *
 * and each case is `static void pipelining(pd_test_state *st)`. The program
 * runs every case with no argument, the named ones with names, and prints
 * the names with --list. tests/meson.build reads the PD_TEST_CASE( entries
 * of the source and registers each case as a meson test of its own
 * (PROGRAM_CASE), so one scenario runs alone by name (`meson test
 * daemon_load_tta`) and a failure names its scenario.
 *
 * A case that cannot run on this machine calls pd_test_skip(st, "why"): the
 * program then exits 77 if every case it ran skipped, and names the reason.
 * setup (optional) runs once before the cases: 0 to go on, 77 to skip them
 * all (it says why), anything else fails; teardown (optional) after. */
#ifndef PD_TEST_CASES_H
#define PD_TEST_CASES_H

#include "pd_test.h"

typedef struct pd_test_case {
  const char *name;
  void (*run)(pd_test_state *st);
} pd_test_case;

typedef struct pd_test_suite {
  const char *name;
  int (*setup)(void);
  void (*teardown)(void);
  const pd_test_case *cases;
  int n_cases;
} pd_test_suite;

#define PD_TEST_CASE(fn)                                                                           \
  { #fn, fn }
#define PD_TEST_N(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* The program's main: runs the cases of `cases` (an array of pd_test_case)
 * as pd_test_cases_main says; setup and teardown may be NULL. */
#define PD_TEST_MAIN(name, setup, teardown, cases)                                                 \
  int main(int argc, char **argv) {                                                                \
    const pd_test_suite suite_ = {name, setup, teardown, cases, PD_TEST_N(cases)};                 \
    return pd_test_cases_main(argc, argv, &suite_);                                                \
  }

/* Marks the running case skipped (the reason is printed). */
static inline void pd_test_skip(pd_test_state *st, const char *why) {
  st->skipped = 1;
  printf("skipped: %s\n", why);
}

static inline int pd_test__find(const pd_test_suite *s, const char *name) {
  for (int i = 0; i < s->n_cases; i++)
    if (!strcmp(s->cases[i].name, name)) return i;
  return -1;
}

static inline int pd_test_cases_main(int argc, char **argv, const pd_test_suite *s) {
  if (argc == 2 && !strcmp(argv[1], "--list")) {
    for (int i = 0; i < s->n_cases; i++)
      printf("%s\n", s->cases[i].name);
    return 0;
  }
  for (int a = 1; a < argc; a++) {
    if (pd_test__find(s, argv[a]) < 0) {
      fprintf(stderr, "%s: no case \"%s\"; the cases are:", s->name, argv[a]);
      for (int i = 0; i < s->n_cases; i++)
        fprintf(stderr, " %s", s->cases[i].name);
      fprintf(stderr, " (or --list)\n");
      return 2;
    }
  }
  if (s->setup) {
    int rc = s->setup();
    if (rc == 77) return 77;
    if (rc != 0) {
      fprintf(stderr, "%s: setup failed (%d)\n", s->name, rc);
      return 1;
    }
  }
  int n_run = argc > 1 ? argc - 1 : s->n_cases, n_failed = 0, n_skipped = 0, checks = 0;
  for (int k = 0; k < n_run; k++) {
    const pd_test_case *c = &s->cases[argc > 1 ? pd_test__find(s, argv[k + 1]) : k];
    pd_test_state st = {0};
    printf("--- %s %s\n", s->name, c->name);
    fflush(stdout);
    c->run(&st);
    checks += st.checks;
    const char *verdict = st.failures ? "FAILED" : st.skipped ? "skipped" : "ok";
    printf("--- %s %s: %s (%d checks, %d failed)\n", s->name, c->name, verdict, st.checks,
           st.failures);
    fflush(stdout);
    n_failed += st.failures > 0;
    n_skipped += !st.failures && st.skipped;
  }
  if (s->teardown) s->teardown();
  printf("%s: %d cases, %d failed, %d skipped, %d checks\n", s->name, n_run, n_failed, n_skipped,
         checks);
  if (n_failed) return 1;
  return n_skipped == n_run ? 77 : 0;
}

#endif
