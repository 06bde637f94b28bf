/* pd_kserve_job: one KServe inference request (N crops) on the core: each
 * crop becomes a pd_request submitted to the same pipeline and batcher as
 * every other front end's, and the job's callback runs once, on the loop,
 * when the last crop is answered. Owns the core requests and the gathered
 * probabilities; the crops' bytes are the caller's until then. A failed
 * crop fails the job with the crop's own status and a message naming its
 * index (the lowest failing index when several fail). */
#ifndef PD_KSERVE_JOB_H
#define PD_KSERVE_JOB_H

#include <stdint.h>

#include "pd_kserve_infer.h"
#include "pd_pipeline.h"

typedef struct pd_kjob pd_kjob;
typedef void (*pd_kjob_done_fn)(pd_kjob *job);

/* Fair-batcher client keys (pd_request.client) of the KServe front ends,
 * apart from the native front end's (connection serials, far below 2^62)
 * and from each other: gRPC, a connection's pd_kgrpc_conn_key with bit 63
 * set; REST, a connection's serial with bit 62 set. */
#define PD_KJOB_CLIENT_GRPC (UINT64_C(1) << 63)
#define PD_KJOB_CLIENT_REST (UINT64_C(1) << 62)

struct pd_kjob {
  /* ---- set by the caller ---- */
  pd_kinfer_request kr; /* the crops */
  uint64_t client;      /* the fair batcher's key for every crop (0: the shared one) */
  pd_kjob_done_fn done;
  void *owner;
  /* ---- the result ---- */
  int status; /* gRPC code (pd_status) */
  char message[400];
  pd_served *served; /* the model the crops ran on (a reference; NULL when none ran) */
  int n_classes;
  float *probs; /* n x n_classes when status is 0 */
  /* ---- private ---- */
  pd_request *reqs; /* a crop's done is cleared once it is answered */
  pd_pipeline *pipeline;
  int pending;
  int failed_index;
};

/* Submits every crop. `model`: the name the client asked for ("" = the
 * served one); deadline_ns: CLOCK_MONOTONIC, 0 = none. job->done runs
 * exactly once (possibly before this returns, when every crop is refused
 * up front). */
void pd_kjob_submit(pd_kjob *job, pd_pipeline *p, const char *model, uint64_t deadline_ns);

/* No one waits for the answer any more (the client went away): every crop
 * not answered yet is dropped before it is computed (CANCELLED, counted in
 * requests_cancelled; one already in a batch finishes). job->done still
 * runs exactly once, later, on the loop. */
void pd_kjob_cancel(pd_kjob *job);

/* The model a KServe request's model_name and model_version name (""
 * version: the highest), or NULL with *code (NOT_FOUND naming the models
 * served, UNAVAILABLE for one that did not load) and why. key gets the
 * name pd_kjob_submit wants for it ("name" or "name:version"). */
pd_served *pd_kjob_model(const pd_pipeline *p, const char *name, const char *version, char key[64],
                         pd_status *code, char *why, size_t cap);

/* Frees what the job holds (not the job itself). */
void pd_kjob_dispose(pd_kjob *job);

#endif
