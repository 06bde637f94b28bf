/* bench_crops: the synthetic crops the load generators send (bench/daemon_load
 * and bench/kserve_load make the same ones, so the native protocol and the
 * KServe front ends see the same pixels): a dark noisy ellipse on white,
 * 40..199 px a side, gray8, and optionally its PNG. */
#ifndef BENCH_CROPS_H
#define BENCH_CROPS_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_N_CROPS 64

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
