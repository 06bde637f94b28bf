/* pd_request: one classification request as the core (pipeline, batcher,
 * engine) sees it, independent of the front end that received it. The front
 * end owns the struct's memory and fills the "input" part; the core fills
 * the "result" part and owns what it attaches (model reference, input slots,
 * probabilities) until pd_request_dispose. Status codes are gRPC's. */
#ifndef PD_REQUEST_H
#define PD_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pd_image.h"

/* gRPC status codes (same numbers as google.rpc.Code and plankton.proto). */
typedef enum pd_status {
  PD_STATUS_OK = 0,
  PD_STATUS_CANCELLED = 1,
  PD_STATUS_UNKNOWN = 2,
  PD_STATUS_INVALID_ARGUMENT = 3,
  PD_STATUS_DEADLINE_EXCEEDED = 4,
  PD_STATUS_NOT_FOUND = 5,
  PD_STATUS_ALREADY_EXISTS = 6,
  PD_STATUS_PERMISSION_DENIED = 7,
  PD_STATUS_RESOURCE_EXHAUSTED = 8,
  PD_STATUS_FAILED_PRECONDITION = 9,
  PD_STATUS_UNIMPLEMENTED = 12,
  PD_STATUS_INTERNAL = 13,
  PD_STATUS_UNAVAILABLE = 14,
  PD_STATUS_COUNT = 17
} pd_status;

const char *pd_status_name(int code);

typedef enum pd_input_format {
  PD_FORMAT_AUTO = 0, /* PNG, JPEG or TIFF, sniffed */
  PD_FORMAT_PNG,
  PD_FORMAT_JPEG,
  PD_FORMAT_RAW_GRAY8,
  PD_FORMAT_TIFF,      /* the numbers are plankton.proto's ImageFormat */
  PD_FORMAT_RAW_GRAY16 /* frames only (pd_frame_job.h): 16-bit words, little endian */
} pd_input_format;

struct pd_served;
struct pd_batcher_client;
typedef struct pd_request pd_request;

/* Called once per request, on the loop thread, when the answer is ready. */
typedef void (*pd_request_done_fn)(pd_request *req);

struct pd_request {
  /* ---- input: set by the front end before pd_pipeline_submit ---- */
  uint64_t id;
  char model[64]; /* "" = default model */
  pd_input_format format;
  const uint8_t *data; /* borrowed until release_input is called */
  size_t len;
  int width, height; /* RAW_GRAY8 only */
  int top_k;         /* 0 = configured default */
  bool full_distribution;
  int tta;                                /* 0 = the model's default */
  uint64_t t_recv_ns;                     /* monotonic time of receipt */
  uint64_t deadline_ns;                   /* monotonic; 0 = none */
  void (*release_input)(pd_request *req); /* may be NULL; called on the loop thread */
  pd_request_done_fn done;
  void *owner; /* the front end's */
  /* Who sent it, for fair batching and admission (pd_batcher.h): requests
   * with the same key share one client's share; the native and KServe
   * front ends key by connection (each in a range of its own). 0 is one
   * shared anonymous client. */
  uint64_t client;
  int client_weight; /* the client's share relative to others; 0 = 1 */
  /* Set through pd_pipeline_cancel (loop thread) when no one waits for the
   * answer any more (its connection closed); read by the decode pool and the
   * batcher, which drop the request if it has not been computed yet. */
  atomic_bool cancelled;

  /* ---- result: set by the core ---- */
  pd_status status;
  char message[256];
  struct pd_served *served; /* the model this request runs on (a reference) */
  int views;                /* images: TTA transforms, 1 without TTA */
  bool tta_adaptive;        /* views chosen by batching.adaptive_tta (no tta of its own) */
  int tta_full;             /* then: the model's default views (views may be fewer) */
  float *input;             /* branch-major: branch b holds `views` consecutive slots */
  float *rows;              /* views x n_classes engine outputs (NULL when views is 1) */
  float *probs;             /* n_classes: the mean over the views, when status is OK */
  uint64_t decode_ns, queue_ns, compute_ns;
  int batch_size;     /* images in the batch this request ran in */
  int batches_waited; /* batches formed while it was queued (before its own) */
  bool dropped;       /* cancelled before it was computed (stats: requests_cancelled) */
  uint64_t t_decoded_ns, t_queued_ns, t_batch_ns;

  /* ---- core bookkeeping ---- */
  pd_image_limits limits;            /* the limits at admission (the decode thread reads these) */
  pd_request *next, *prev;           /* batcher queue and completion lists */
  struct pd_batcher_client *bclient; /* the batcher's record of `client` */
  pd_request *client_next, *client_prev; /* that client's queue */
  uint64_t batch_seq;                    /* batches formed before it was queued */
  struct pd_pipeline *pipeline;
  int model_slot; /* the pipeline's per-model counters row; -1: none */
  uv_work_t work;
  bool decode_queued; /* work is on the thread pool, decode_done not yet run (loop thread) */
};

/* Monotonic clock in nanoseconds. */
uint64_t pd_now_ns(void);

/* Sets status and a printf message (truncated to fit). */
void pd_request_fail(pd_request *req, pd_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees what the core attached (slots, probabilities, model reference).
 * The front end calls it from (or after) its done callback. */
void pd_request_dispose(pd_request *req);

#endif
