#include "pd_td_wait.h"

#include <stdlib.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define PD_TD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PD_TD_ASAN 1
#endif
#endif
#ifndef PD_TD_ASAN
#define PD_TD_ASAN 0
#endif

double pd_td_timeout_scale(void) {
  const char *s = getenv("PD_TEST_TIMEOUT_SCALE");
  if (s && *s) {
    double v = strtod(s, NULL);
    return v >= 1 ? v : 1;
  }
  const char *w = getenv("PD_DAEMON_WRAPPER");
  if (w && *w) return 20;
  return PD_TD_ASAN ? 3 : 1;
}

int pd_td_scaled_ms(double ms) {
  return (int)(ms * pd_td_timeout_scale());
}

int pd_td_scaled_s(double s) {
  return (int)(s * pd_td_timeout_scale() + 0.5);
}

pc_client_response *pd_td_get_stats(const pd_td *d) {
  pc_client *c = pd_td_connect(d, 4);
  pc_client_response *r = NULL;
  if (c && pc_client_stats(c, &r, NULL) != PC_CLIENT_OK) r = NULL;
  if (r && (r->status != 0 || r->kind != PC_CLIENT_RESPONSE_STATS)) {
    pc_client_response_free(r);
    r = NULL;
  }
  pc_client_close(c);
  return r;
}

bool pd_td_poll_stats(const pd_td *d, pd_td_stats_cond holds, void *ctx, int timeout_ms,
                      pc_client_response **last) {
  double until = pd_td_now_ms() + pd_td_scaled_ms(timeout_ms);
  pc_client_response *r = NULL;
  bool ok = false;
  do {
    pc_client_response_free(r);
    r = pd_td_get_stats(d);
    ok = r && holds(&r->u.stats, ctx);
    if (!ok) usleep(20000);
  } while (!ok && pd_td_now_ms() < until);
  if (last)
    *last = r;
  else
    pc_client_response_free(r);
  return ok;
}
