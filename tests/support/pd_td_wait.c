#include "pd_td_wait.h"

#include <stdlib.h>
#include <unistd.h>

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
