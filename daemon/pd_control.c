#include "pd_control.h"

#include <stdio.h>
#include <unistd.h>

pd_status pd_control_allowed(const pd_config *c, const pd_model_control *mc, char *why,
                             size_t cap) {
  const char *via = mc->via ? mc->via : "model control";
  if (!c->model_control) {
    snprintf(why, cap,
             "%s refused: model control is off (set model.control: true in the daemon's "
             "settings to load, unload and reload models at run time)",
             via);
    return PD_STATUS_PERMISSION_DENIED;
  }
  if (mc->peer_uid >= 0) {
    const long own = (long)geteuid();
    if (mc->peer_uid == own || mc->peer_uid == 0) return PD_STATUS_OK;
    snprintf(why, cap,
             "%s refused: the peer's uid %ld is neither the daemon's (uid %ld) nor root "
             "(model.control)",
             via, mc->peer_uid, own);
    return PD_STATUS_PERMISSION_DENIED;
  }
  if (mc->loopback) return PD_STATUS_OK;
  snprintf(why, cap,
           "%s refused from %s: over TCP the peer's uid cannot be checked (use the Unix socket%s)",
           via, mc->peer[0] ? mc->peer : "a TCP peer",
           mc->via && mc->via[0] == 'K' ? ", or bind the KServe listener to loopback only" : "");
  return PD_STATUS_PERMISSION_DENIED;
}
