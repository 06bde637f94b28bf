/* pd_wire: plankton.proto <-> the core's types, for the protocol front end.
 * Owns no state: it unpacks a Request, copies a ClassifyRequest's fields
 * into a pd_request (the image bytes stay in the unpacked message), and packs
 * every kind of Response into a malloc'ed frame (4-byte header included). */
#ifndef PD_WIRE_H
#define PD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plankton.pb-c.h"
#include "pd_frame_job.h"
#include "pd_pipeline.h"
#include "pd_repo.h"
#include "pd_request.h"
#include "pd_served.h"
#include "pd_stats.h"

/* NULL when the bytes are not a Request. Free with pd_wire_free. */
Plankton__Request *pd_wire_unpack(const uint8_t *msg, size_t len);
void pd_wire_free(Plankton__Request *r);

/* Fills req's input fields from c (the image data pointer borrows from c). */
void pd_wire_classify_input(const Plankton__ClassifyRequest *c, uint64_t now_ns, int default_top_k,
                            pd_request *req);

/* Fills job's input fields from f (the image bytes borrow from f). Never
 * fails: out-of-range values are carried over for the core to refuse with
 * a message naming them. */
void pd_wire_frame_input(const Plankton__FrameRequest *f, uint64_t now_ns, int default_top_k,
                         pd_frame_job *job);

/* out[0..k): the indices of p[0..n)'s k largest values, best first (ties:
 * the lower index first). */
void pd_wire_top_indices(const float *p, int n, int k, int *out);

/* The pieces every packer of this front end shares: resp packed into a
 * malloc'ed frame with its 4-byte header (NULL when out of memory), a
 * Status with code and message (msg borrowed; NULL is ""), and a request's
 * deadline_us as an absolute time (0: none, also beyond ~12 days). */
uint8_t *pd_wire_pack_response(const Plankton__Response *resp, size_t *len);
void pd_wire_status(Plankton__Status *st, int code, const char *msg);
uint64_t pd_wire_deadline_ns(uint64_t now_ns, uint64_t deadline_us);

/* Each returns a frame of *len bytes, or NULL when out of memory. */
/* FrameResponse: the job's objects (with their scores and, when asked,
 * crops), counts and timings; the status and message of a failed job. */
uint8_t *pd_wire_frame_answer(const pd_frame_job *job, size_t *len);
uint8_t *pd_wire_frame_error(uint64_t id, int code, const char *msg, size_t *len);
uint8_t *pd_wire_classify_answer(const pd_request *req, size_t *len);
uint8_t *pd_wire_classify_error(uint64_t id, int code, const char *msg, size_t *len);
uint8_t *pd_wire_error(int code, const char *msg, size_t *len);
/* Health: "draining" (UNAVAILABLE) while shutting down; "failing"
 * (UNAVAILABLE) once the last PD_HEALTH_FAILING_RUNS or more network runs
 * all failed (failures_in_a_row), until one succeeds; else "serving" (OK). */
#define PD_HEALTH_FAILING_RUNS 3
/* out_of_service: the sticky device error that put the model out of
 * service (engine.on_device_error fail, pd_served.h), NULL if none: then
 * "failing" (UNAVAILABLE) naming it, until a reload. reload: the last SIGHUP
 * reload's result, carried as it is (NULL: none). */
uint8_t *pd_wire_health(uint64_t id, bool draining, uint64_t failures_in_a_row,
                        const char *out_of_service, const pd_reload_report *reload, size_t *len);
/* models[0..n_models): the per-model rows (pd_pipeline_model_counts; may be NULL). */
uint8_t *pd_wire_stats(uint64_t id, const pd_stats_report *r, const pd_model_counts *models,
                       int n_models, size_t *len);
/* The ModelStats rows of c[0..n) (malloc'ed, one block: free(*out)); the
 * count, 0 when none or out of memory. */
size_t pd_wire_model_stats(const pd_model_counts *c, int n, Plankton__ModelStats ***out);
/* HelloResponse: protocol version 1, this daemon's version and frame limit,
 * and whether it will send this connection a drain notice. */
uint8_t *pd_wire_hello(uint64_t id, const char *daemon_version, uint32_t max_frame_bytes,
                       bool drain_notices, size_t *len);
/* DrainNotice (not an answer): requests_read requests read on the
 * connection, each still answered. */
uint8_t *pd_wire_drain_notice(uint64_t requests_read, const char *msg, size_t *len);
/* ModelControlResponse: the status and message, and the versions of model
 * serving now (versions may be NULL when n is 0). */
uint8_t *pd_wire_model_control(uint64_t id, const char *model, int code, const char *msg,
                               const char (*versions)[64], int n, size_t *len);
/* filter: "" for every model, "name" or "name:version"; s may be NULL (no
 * model loaded). */
uint8_t *pd_wire_model_info(uint64_t id, const char *filter, const pd_served *s, size_t *len);
/* The same for every model of a repository (r may be NULL): each with
 * ready and the error of one that did not load. */
uint8_t *pd_wire_model_info_repo(uint64_t id, const char *filter, const pd_repo *r, size_t *len);

#endif
