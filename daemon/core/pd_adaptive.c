#include "pd_adaptive.h"

uint64_t pd_adaptive_bound_ns(const pd_adaptive_tta *a, uint64_t compute_avg_ns) {
  return a->wait_ns ? a->wait_ns : 2 * compute_avg_ns;
}

int pd_adaptive_views(const pd_adaptive_tta *a, int full, uint64_t oldest_wait_ns,
                      uint64_t compute_avg_ns) {
  const uint64_t bound = pd_adaptive_bound_ns(a, compute_avg_ns);
  const int floor_views = a->min_views < 1 ? 1 : a->min_views;
  if (!a->on || full <= floor_views || bound == 0 || oldest_wait_ns <= bound) return full;
  uint64_t halvings = oldest_wait_ns / bound; /* >= 1: it waited more than one bound */
  int views = full;
  for (; halvings > 0 && views > floor_views; halvings--)
    views /= 2;
  return views < floor_views ? floor_views : views;
}
