/* bench_crops: the synthetic crops the load generators send (bench/daemon_load
 * and bench/kserve_load make the same ones, so the native protocol and the
 * KServe front ends see the same pixels): a dark noisy ellipse on white,
 * 40..199 px a side, gray8, and optionally its PNG. The pieces they are
 * made of, the xorshift generator and the 8-bit gray PNG encoder, are the
 * tests' too (tests/support/pd_daemon_test.c makes its crops with them). */
#ifndef BENCH_CROPS_H
#define BENCH_CROPS_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_N_CROPS 64

/* xorshift64: the next value of the stream in *s (never 0 if *s is not). */
static inline uint64_t bench_xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* gray (w x h, 8-bit) as a PNG with libpng's defaults: malloc'ed, *len
 * bytes; NULL on failure. */
uint8_t *bench_png_gray8(const uint8_t *gray, int w, int h, size_t *len);

typedef struct bench_crop {
  int w, h;
  uint8_t *gray, *png; /* png: NULL until bench_crop_png */
  size_t png_len;
} bench_crop;

/* Crop number `seed` (1..): 0, or -1 out of memory. */
int bench_crop_make(bench_crop *c, uint64_t seed);
/* Its PNG (8-bit gray) in c->png: 0, or -1 on failure. */
int bench_crop_png(bench_crop *c);
void bench_crop_free(bench_crop *c);

#endif
