/* pd_model_control: one run-time model change a front end hands to the
 * daemon (native ModelControl, KServe RepositoryModelLoad/Unload, REST
 * /v2/repository/models/NAME/load|unload): what to do, who asks, and, once
 * done, the result. The front end owns it; the daemon checks the caller
 * (model.control, the peer's uid or a loopback-only listener), runs the
 * change off the loop (pd_repo_change, one change at a time, SIGHUP
 * rescans included), swaps the new table in and calls done on the loop
 * thread, exactly once, after the change took effect or failed. */
#ifndef PD_MODEL_CONTROL_H
#define PD_MODEL_CONTROL_H

#include <stdbool.h>

#include "pd_repo.h"
#include "pd_request.h"

#define PD_MODEL_CONTROL_VERSIONS 16

typedef struct pd_model_control {
  /* set by the front end */
  pd_repo_op op;
  bool load_or_reload; /* load of a loaded model reloads it (Triton's load) */
  char name[64];
  const char *via; /* "native", "KServe gRPC", "KServe REST": for messages and the log */
  long peer_uid;   /* a Unix-socket peer's uid (SO_PEERCRED); -1: a TCP peer */
  bool loopback;   /* a TCP peer on a listener bound to loopback only */
  char peer[96];   /* for the log */
  void (*done)(struct pd_model_control *mc);
  void *owner;
  /* the result */
  pd_status status;
  char message[640];
  int n_versions; /* the versions of name serving afterwards */
  char versions[PD_MODEL_CONTROL_VERSIONS][64];
  struct pd_model_control *next; /* the daemon's queue */
} pd_model_control;

/* Takes mc; mc->done runs later (or at once for a refusal), on the loop. */
typedef void (*pd_model_control_fn)(void *ctx, pd_model_control *mc);

#endif
