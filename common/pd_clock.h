/* pd_clock: the one monotonic clock every module times with. Owns nothing. */
#ifndef PD_CLOCK_H
#define PD_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pd_now_ns(void);

#endif
