/* pd_engine: the engine thread. Owns that thread and its loop: take the
 * next batch from the batcher, gather the requests' input slots into the
 * model's free input slot (pd_servable_stage) while the previous batch
 * computes, when one is ready (else that one is waited for and answered at
 * once), then wait for the previous, answer it and submit this one
 * (pd_servable_submit: two batches in flight; a batch with more views than
 * max_batch runs synchronously in several runs, pd_servable_run),
 * average TTA views (pd_tta_average), time it, and hand every request (computed,
 * failed or expired) to the sink. Never touches sockets; a backend error
 * fails only the requests of that batch. After a sticky device error
 * (PD_EDEVICE) it answers that batch, then has the model rebuilt on the CPU
 * or put out of service (pd_served_device_error) before the next batch. */
#ifndef PD_ENGINE_H
#define PD_ENGINE_H

#include "pd_batcher.h"
#include "pd_stats.h"

typedef struct pd_engine pd_engine;

/* Called on the engine thread for each finished request; must be cheap and
 * thread-safe (it hands the request over to the loop). */
typedef void (*pd_engine_sink)(pd_request *req, void *ctx);

int pd_engine_start(pd_batcher *b, pd_stats *stats, pd_engine_sink sink, void *ctx, pd_engine **out,
                    pd_error *err);
/* Waits for the thread to end (after pd_batcher_stop and an empty queue)
 * and frees the engine. */
void pd_engine_join(pd_engine *e);

#endif
