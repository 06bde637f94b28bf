/* fuzz_target.h: the libFuzzer entry points every target in tests/fuzz
 * defines (LLVMFuzzerTestOneInput) or may define (LLVMFuzzerInitialize).
 * The same target file links either with libFuzzer (clang,
 * -fsanitize=fuzzer: the fuzz_<target> programs of -Dfuzz=true) or with
 * fuzz_regress_main.c (any compiler: the fuzz_regress_<target> programs
 * that replay the committed corpus and crash regression files). */
#ifndef PD_FUZZ_TARGET_H
#define PD_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A violated invariant of the code under test: libFuzzer (and the
 * regression runner) treat the abort as a crash and keep the input. */
#define PD_FUZZ_ASSERT(cond)                                                                       \
  do {                                                                                             \
    if (!(cond)) pd_fuzz_fail(__FILE__, __LINE__, #cond);                                          \
  } while (0)

__attribute__((noreturn, unused)) static void pd_fuzz_fail(const char *file, int line,
                                                           const char *what);

#include <stdio.h>
#include <stdlib.h>

static void pd_fuzz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
  abort();
}

#endif
