/* pd_frame_job: one whole camera frame as the core sees it (plankton.proto's
 * FrameRequest, independent of the front end). The frame is decoded and
 * segmented (pd_segment) on the libuv thread pool, never on the loop; back
 * on the loop, each object's crop becomes a pd_request of its own (raw
 * gray8, the frame's classify options and client) submitted to the
 * pipeline, so it is batched with every other client's crops exactly as a
 * crop sent alone would be; the job's done runs once, on the loop, when its
 * last object is answered (at once for a frame with no object or one
 * refused). Before any object is submitted the job checks that the queue
 * (batching.max_queue) has a free place for each one: else the whole frame
 * is RESOURCE_EXHAUSTED and nothing is queued.
 *
 * Memory: the frame's size is checked against the pipeline's
 * max_frame_pixels before its pixels are decoded (raw: before anything);
 * the decoded frame and background are freed once segmented; the crops
 * (pd_segment_result) and the objects' requests live until
 * pd_frame_job_dispose. The front end owns the struct and the input bytes
 * (release_input when the core is done with them). Loop-thread API. */
#ifndef PD_FRAME_JOB_H
#define PD_FRAME_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "pd_pipeline.h"
#include "pd_request.h"
#include "pd_segment.h"

typedef struct pd_frame_job pd_frame_job;

typedef struct pd_frame_image {
  pd_input_format format; /* AUTO, PNG, JPEG, TIFF (decoded to 8 bits), RAW_GRAY8, RAW_GRAY16 */
  const uint8_t *data;    /* borrowed until release_input */
  size_t len;
  int width, height;    /* raw formats only */
  int significant_bits; /* 0: all of the sample (8 or 16) */
} pd_frame_image;

/* The request's segmentation choices; 0 (or < 0 for keep_edge and
 * background) takes pd_segment_settings_default's value. */
typedef struct pd_frame_options {
  double threshold;
  long min_area, max_area;
  int padding;
  int keep_edge;  /* -1 default, 0 drop, 1 keep */
  int background; /* -1 default, else a pd_segment_background */
  int max_objects;
  bool return_crops; /* the front end sends each crop back */
} pd_frame_options;

struct pd_frame_job {
  /* ---- input: set by the front end before pd_frame_job_submit ---- */
  uint64_t id;
  char model[64];
  pd_frame_image frame;
  bool has_background;
  pd_frame_image background;
  pd_frame_options opt;
  /* the model's segmentation defaults (its model.yaml segmentation:), under
   * opt; NULL: pd_segment_settings_default. Set by pd_frame_job_submit. */
  const pd_segment_settings *defaults;
  int top_k, tta;
  bool full_distribution;
  uint64_t t_recv_ns, deadline_ns; /* deadline: monotonic, 0 = none */
  uint64_t client;
  int client_weight;
  void (*release_input)(pd_frame_job *job); /* may be NULL; loop thread */
  void (*done)(pd_frame_job *job);
  void *owner;

  /* ---- result: set by the core ---- */
  pd_status status;
  char message[256];
  int width, height;     /* as decoded */
  pd_segment_result seg; /* objects, crops and the filters' counts */
  pd_request *objects;   /* seg.count requests, one per object, in seg's order */
  uint64_t decode_ns, segment_ns;
  uint64_t queue_ns;        /* the longest an object waited */
  uint64_t compute_ns;      /* summed over the distinct batches of its objects */
  struct pd_served *served; /* the model (a reference) for the answer's names */

  /* ---- core bookkeeping ---- */
  pd_pipeline *pipeline;
  pd_segment_settings settings;
  uv_work_t work;
  bool work_queued;
  int pending; /* objects not yet answered */
  atomic_bool cancelled;
};

/* Takes the job; job->done runs later (or now, for one refused up front)
 * on the loop thread, exactly once. */
void pd_frame_job_submit(pd_pipeline *p, pd_frame_job *job);

/* Nobody waits for the answer any more (its connection closed): objects not
 * yet computed are dropped, a frame not yet segmented is not segmented;
 * done still runs once. */
void pd_frame_job_cancel(pd_frame_job *job);

/* The steps of pd_frame_job_submit that need no pipeline, for the fuzz
 * target (tests/fuzz/fuzz_frame_request.c): check sets job->settings from
 * the options, or fails the job naming the value (false); segment decodes
 * and segments on the calling thread, filling job->seg (or failing it). */
bool pd_frame_job_check(pd_frame_job *job, const pd_pipeline_limits *lim);
void pd_frame_job_segment(pd_frame_job *job);

/* Frees what the core attached (crops, the objects' requests, the model
 * reference). The front end calls it from (or after) its done callback. */
void pd_frame_job_dispose(pd_frame_job *job);

#endif
