/* pd_control: who may change the models at run time. model.control: true
 * must be set; then a Unix-socket peer whose uid (SO_PEERCRED) is the
 * daemon's or root's may, and a TCP peer only on a KServe listener bound to
 * loopback alone (over TCP the uid cannot be checked: every local user can
 * reach a loopback port, so model.control: true with a KServe TCP listener
 * on loopback trusts every local user; native TCP peers are always
 * refused). Owns nothing; reads the settings. */
#ifndef PD_CONTROL_H
#define PD_CONTROL_H

#include <stddef.h>

#include "pd_config.h"
#include "pd_model_control.h"

/* PD_STATUS_OK, or PERMISSION_DENIED (FAILED_PRECONDITION without a
 * repository) with why[cap] naming the setting, the uid or the listener. */
pd_status pd_control_allowed(const pd_config *c, const pd_model_control *mc, char *why, size_t cap);

#endif
