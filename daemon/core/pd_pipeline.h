/* pd_pipeline: the core a front end submits classify requests to. Owns the
 * current model (a pd_served reference, swapped atomically on reload), the
 * batcher, the engine thread and the hand-back of finished requests to the
 * loop (uv_async). A request's path: checks on the loop (model, sizes,
 * deadline, a place in the queue), decode + preprocess on the libuv thread
 * pool, the batcher, the engine thread, and back to the loop, where its
 * done callback runs exactly once. Every failure becomes a status on the
 * request; nothing is printed. Loop-thread API except where noted. */
#ifndef PD_PIPELINE_H
#define PD_PIPELINE_H

#include <uv.h>

#include "pd_adaptive.h"
#include "pd_batcher.h"
#include "pd_image.h"
#include "pd_repo.h"
#include "pd_request.h"
#include "pd_served.h"
#include "pd_stats.h"

typedef struct pd_pipeline pd_pipeline;

typedef struct pd_pipeline_limits {
  pd_batcher_limits batch;
  pd_image_limits image;
  int max_tta;
  pd_adaptive_tta adaptive; /* views for requests without a tta of their own */
  long max_frame_pixels;    /* frame requests (pd_frame_job.h): width x height */
} pd_pipeline_limits;

int pd_pipeline_create(uv_loop_t *loop, const pd_pipeline_limits *lim, pd_stats *stats,
                       pd_pipeline **out, pd_error *err);
void pd_pipeline_set_limits(pd_pipeline *p, const pd_pipeline_limits *lim);

/* Makes `s` the one model new requests run on (a repository of one),
 * taking over the caller's reference; requests already accepted finish on
 * the model they started on. */
void pd_pipeline_set_model(pd_pipeline *p, pd_served *s);
/* Makes `r` the models new requests run on, taking it over (the old one is
 * freed; its models live on while requests hold them). */
void pd_pipeline_set_repo(pd_pipeline *p, pd_repo *r);
const pd_repo *pd_pipeline_repo(const pd_pipeline *p);
/* The default model (borrowed; NULL before the first set_model or when it
 * did not load). */
pd_served *pd_pipeline_model(const pd_pipeline *p);
/* The model a request names (pd_repo_served: "", "name", "name:version"). */
pd_served *pd_pipeline_find(const pd_pipeline *p, const char *model, const char *version,
                            pd_status *code, char *why, size_t cap);

/* Requests finished per model name and version (loop thread; rows are
 * never removed, so counters survive reloads). */
typedef struct pd_model_counts {
  char name[64], version[64];
  uint64_t requests[PD_STATUS_COUNT];        /* by status */
  uint64_t latency_us, queue_us, compute_us; /* sums over the OK ones */
  uint64_t images;                           /* views computed for the OK ones */
} pd_model_counts;
const pd_model_counts *pd_pipeline_model_counts(const pd_pipeline *p, int *n);

/* Takes the request; req->done runs later (or now, for a request refused up
 * front) on the loop thread. */
void pd_pipeline_submit(pd_pipeline *p, pd_request *req);

/* Nobody waits for req's answer any more (a request submitted, whose done
 * has not run yet): if it has not started computing it is dropped -- not
 * decoded if its decode has not begun, never batched -- and finishes with
 * PD_STATUS_CANCELLED, req->dropped set and stats->requests_cancelled
 * counted; one already in a batch finishes normally. Either way done runs
 * once, as for every request. */
void pd_pipeline_cancel(pd_pipeline *p, pd_request *req);

/* Requests submitted and not yet done. */
int pd_pipeline_in_flight(const pd_pipeline *p);
pd_batcher_counts pd_pipeline_queue(pd_pipeline *p);

/* For work of the core beyond single requests (frames, pd_frame_job.h):
 * the loop, the limits now, and a hold that counts as one request in
 * flight (so a drain waits for it) until pd_pipeline_unhold. */
uv_loop_t *pd_pipeline_loop(const pd_pipeline *p);
const pd_pipeline_limits *pd_pipeline_limits_now(const pd_pipeline *p);
/* The stats the pipeline records into (for the frame jobs). */
pd_stats *pd_pipeline_stats(const pd_pipeline *p);
void pd_pipeline_hold(pd_pipeline *p);
void pd_pipeline_unhold(pd_pipeline *p);

/* Called on the loop whenever the in-flight count drops to zero. */
void pd_pipeline_on_idle(pd_pipeline *p, void (*cb)(void *data), void *data);

/* Stops the engine (it finishes what is queued), drops the model and frees
 * the pipeline once its handles are closed. Call when nothing is in flight. */
void pd_pipeline_close(pd_pipeline *p);

#endif
