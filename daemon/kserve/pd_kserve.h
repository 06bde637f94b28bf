/* pd_kserve: the KServe v2 / Open Inference Protocol front ends as
 * pd_frontend constructors (pd_frontend.h): gRPC (inference.
 * GRPCInferenceService and grpc.health.v1.Health, on kserve.grpc_listen)
 * and REST (/v2/..., on kserve.http_listen). Both submit every crop to the
 * daemon's one pipeline (pd_kserve_job), so their requests share batches
 * with every other front end's; the served model's name and version are the
 * protocol's model name and version. A front end whose listen setting is ""
 * listens on nothing and is idle. */
#ifndef PD_KSERVE_H
#define PD_KSERVE_H

#include "pd_frontend.h"

int pd_frontend_kserve_grpc_create(const pd_frontend_env *env, const pd_config *cfg,
                                   pd_frontend **out, pd_error *err);
int pd_frontend_kserve_http_create(const pd_frontend_env *env, const pd_config *cfg,
                                   pd_frontend **out, pd_error *err);

#endif
