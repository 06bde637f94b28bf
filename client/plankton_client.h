/* plankton_client.h: libplankton-client, the C client of planktond.
 *
 * One pc_client is one connection (Unix socket or TCP) to the daemon. Many
 * requests may be in flight on it (pipelining, up to a window the caller
 * chooses); answers arrive in any order and carry the id the caller gave.
 *
 * Two ways to drive it:
 *  - poll-style, from the caller's own event loop: pc_client_fd() and
 *    pc_client_events() say what to wait for, pc_client_process() does the
 *    non-blocking I/O after a wake-up, pc_client_send_classify() queues a
 *    request (PC_CLIENT_EAGAIN when the window is full) and
 *    pc_client_next_response() pops answers as they complete;
 *    pc_client_wait() is a ready-made poll() for callers without a loop;
 *  - blocking, one call per answer: pc_client_classify(), pc_client_stats(),
 *    pc_client_health(), pc_client_model_info().
 *
 * Errors are negative PC_CLIENT_E* values with a message in a caller-owned
 * pc_client_error. No global state; a client is used by one thread at a
 * time (distinct clients in distinct threads are fine). SIGPIPE is never
 * raised by the library.
 */
#ifndef PLANKTON_CLIENT_H
#define PLANKTON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  PC_CLIENT_OK = 0,
  PC_CLIENT_EAGAIN = 1,  /* not an error: window full, or nothing ready yet */
  PC_CLIENT_EINVAL = -1, /* bad argument */
  PC_CLIENT_ENOMEM = -2,
  PC_CLIENT_ECONNECT = -3, /* cannot connect (daemon down, wrong address) */
  PC_CLIENT_EIO = -4,      /* the connection failed while in use */
  PC_CLIENT_ECLOSED = -5,  /* the daemon closed the connection */
  PC_CLIENT_ETIMEDOUT = -6,
  PC_CLIENT_EPROTO = -7, /* the daemon sent something that is not a Response */
};

typedef struct pc_client_error {
  int code;
  char message[512];
} pc_client_error;

/* gRPC status codes carried by every answer (plankton.proto StatusCode). */
enum {
  PC_CLIENT_STATUS_OK = 0,
  PC_CLIENT_STATUS_INVALID_ARGUMENT = 3,
  PC_CLIENT_STATUS_DEADLINE_EXCEEDED = 4,
  PC_CLIENT_STATUS_NOT_FOUND = 5,
  PC_CLIENT_STATUS_RESOURCE_EXHAUSTED = 8,
  PC_CLIENT_STATUS_UNIMPLEMENTED = 12,
  PC_CLIENT_STATUS_INTERNAL = 13,
  PC_CLIENT_STATUS_UNAVAILABLE = 14,
};
const char *pc_client_status_name(int status);
const char *pc_client_strerror(int code);

typedef struct pc_client_options {
  int window;       /* most requests in flight (default 64) */
  int timeout_ms;   /* connect and blocking calls (default 30000; <0: none) */
  size_t max_frame; /* largest answer accepted (default 64 MiB) */
} pc_client_options;

typedef struct pc_client pc_client;

/* address: "unix:PATH", a PATH containing '/', "tcp:HOST:PORT" or
 * "HOST:PORT". opt may be NULL (defaults). */
int pc_client_connect(const char *address, const pc_client_options *opt, pc_client **out,
                      pc_client_error *err);
/* Closes the connection and frees everything, answers not yet popped included. */
void pc_client_close(pc_client *c);

/* ---- requests ---- */

typedef enum pc_client_image_format {
  PC_CLIENT_IMAGE_AUTO = 0, /* PNG, JPEG or TIFF, recognised by the daemon */
  PC_CLIENT_IMAGE_PNG = 1,
  PC_CLIENT_IMAGE_JPEG = 2,
  PC_CLIENT_IMAGE_RAW_GRAY8 = 3, /* width * height bytes */
  PC_CLIENT_IMAGE_TIFF = 4,
  PC_CLIENT_IMAGE_RAW_GRAY16 = 5, /* frames only: width * height 16-bit words, little endian */
} pc_client_image_format;

typedef struct pc_client_classify_request {
  uint64_t id;       /* yours; echoed in the answer */
  const char *model; /* NULL or "": the daemon's default */
  pc_client_image_format format;
  const void *data; /* copied by the send call */
  size_t len;
  uint32_t width, height; /* RAW_GRAY8 only */
  uint32_t top_k;         /* 0: the daemon's default */
  bool full_distribution;
  uint32_t tta;         /* 0: the model's default */
  uint64_t deadline_us; /* 0: none */
} pc_client_classify_request;

/* A whole frame: the daemon segments it and classifies every object
 * (plankton.proto's FrameRequest; each 0 below means the daemon's default). */
typedef struct pc_client_image {
  pc_client_image_format format;
  const void *data; /* copied by the send call */
  size_t len;
  uint32_t width, height;    /* raw formats only */
  uint32_t significant_bits; /* bits a sample uses (10-12 bit cameras); 0: all */
} pc_client_image;

typedef struct pc_client_frame_request {
  uint64_t id;
  const char *model;
  pc_client_image image;
  const pc_client_image *background; /* NULL: estimated from the frame */
  /* FrameRequest.background_id: with background, the daemon also keeps it
   * on this connection under this name; without, the frame uses the one
   * kept (a new connection, e.g. after a reconnect, keeps none). NULL: "" */
  const char *background_id;
  float threshold;             /* (0, 1) relative to the background; 0: 0.1 */
  uint32_t min_area, max_area; /* pixels; 0: 16 and 4 Mpx */
  uint32_t padding;            /* crop margin; 0: 10 */
  int edge_objects;            /* 0 default (kept), 1 kept, 2 dropped */
  uint32_t max_objects;        /* 0: 1000 */
  int background_method;       /* 0 default, 1 column median, 2 morphological */
  uint32_t top_k;
  bool full_distribution;
  uint32_t tta;
  uint64_t deadline_us;
  bool return_crops; /* each object's crop (gray8) comes back */
} pc_client_frame_request;

/* ---- answers ---- */

typedef enum pc_client_response_kind {
  PC_CLIENT_RESPONSE_CLASSIFY = 1,
  PC_CLIENT_RESPONSE_STATS,
  PC_CLIENT_RESPONSE_HEALTH,
  PC_CLIENT_RESPONSE_MODEL_INFO,
  PC_CLIENT_RESPONSE_ERROR, /* the daemon is closing the connection (broken frame) */
  PC_CLIENT_RESPONSE_FRAME,
  PC_CLIENT_RESPONSE_MODEL_CONTROL,
} pc_client_response_kind;

typedef struct pc_client_class_score {
  uint32_t index;
  const char *label;
  float probability;
} pc_client_class_score;

typedef struct pc_client_classify_result {
  size_t n_top;
  const pc_client_class_score *top; /* best first */
  size_t n_distribution;            /* 0 unless full_distribution was asked */
  const float *distribution;        /* in the model's class order */
  const char *model_name, *model_version;
  uint64_t queue_us, decode_us, compute_us;
  uint32_t batch_size, tta;
  /* the model's thresholds: the top class is below its threshold (the
   * scores above are the raw ones); always false without thresholds */
  bool unclassified;
  float threshold; /* the top class's threshold (0: none) */
} pc_client_classify_result;

typedef struct pc_client_frame_object {
  uint32_t x, y, width, height; /* tight box, frame pixels */
  uint64_t area;
  double centroid_x, centroid_y, major_axis, minor_axis, orientation_deg;
  double mean_gray; /* on the frame's own sample scale */
  uint32_t min_gray;
  uint32_t crop_x, crop_y, crop_width, crop_height; /* what the model saw */
  int status;                                       /* this object's classification */
  const char *message;
  size_t n_top;
  const pc_client_class_score *top;
  size_t n_distribution;
  const float *distribution;
  const uint8_t *crop; /* return_crops: crop_width * crop_height gray8; else NULL */
  size_t crop_len;
} pc_client_frame_object;

typedef struct pc_client_frame_result {
  size_t n_objects;
  const pc_client_frame_object *objects; /* by box top, then left */
  uint32_t objects_found, width, height;
  uint64_t dropped_small, dropped_large, dropped_edge, dropped_cap, absorbed;
  uint64_t decode_us, segment_us, queue_us, compute_us;
  const char *model_name, *model_version;
} pc_client_frame_result;

typedef struct pc_client_histogram {
  const char *name; /* queue_us, decode_us, compute_us, request_us, batch_size */
  size_t n_bounds;
  const double *bounds;
  const uint64_t *counts; /* cumulative: observations <= bounds[i] */
  double sum;
  uint64_t count;
} pc_client_histogram;

/* One model version's figures (the daemon's per-model rows). */
typedef struct pc_client_model_stats {
  const char *name, *version;
  uint64_t requests_by_status[17];                        /* index: status code */
  uint64_t images;                                        /* images computed for the OK ones */
  double request_seconds, queue_seconds, compute_seconds; /* sums over the OK ones */
} pc_client_model_stats;

typedef struct pc_client_stats {
  uint64_t requests_by_status[17]; /* index: status code */
  uint64_t images, batches, connections_total, broken_frames, model_loads, model_load_failures;
  double images_per_second, uptime_seconds;
  uint32_t queue_depth, in_flight, connections;
  size_t n_histograms;
  const pc_client_histogram *histograms;
  size_t n_models; /* per model; the other fields are the totals */
  const pc_client_model_stats *models;
  const char *model_name, *model_version, *backend;
  int64_t model_loaded_unix;
  /* the daemon's limits at work (the counters of the same names in /metrics) */
  uint64_t connections_refused, frame_timeouts, idle_timeouts, accept_errors;
  uint64_t batch_failures, batch_failures_in_a_row; /* 3+ in a row: Health "failing" */
  uint64_t receive_buffer_bytes, receive_waits;     /* limits.max_receive_bytes */
  uint64_t requests_cancelled; /* dropped before computing: their connection had closed */
  uint64_t crops;              /* classify requests computed (`images` counts each TTA view) */
  /* the last SIGHUP reload: when it ended (0: none since start), whether it
   * failed (the daemon serves what it had) and why ("" when it did not) */
  int64_t last_reload_unix;
  bool last_reload_failed;
  const char *last_reload_message;
  /* batching.adaptive_tta: requests answered with views the daemon chose
   * (they asked for no tta of their own), the views computed for them (mean
   * = tta_views / tta_adaptive_requests), and how many got fewer views
   * than the model's default */
  uint64_t tta_adaptive_requests, tta_views, tta_reduced;
} pc_client_stats_result;

typedef struct pc_client_model {
  const char *name, *version, *symmetry, *dir;
  size_t n_classes;
  const char *const *classes;
  uint32_t default_tta, max_batch;
  uint64_t parameters;
  bool is_default;
  bool ready;        /* loaded and serving; false: error says why */
  const char *error; /* why it did not load ("" when ready) */
  bool latest;       /* the highest version of its name */
  /* n_thresholds and n_lineage: n_classes when the model has them, else 0;
   * thresholds per class (0: none), lineage per class "Root>...>Taxon" */
  size_t n_thresholds;
  const float *thresholds;
  size_t n_lineage;
  const char *const *lineage;
} pc_client_model;

typedef struct pc_client_response {
  pc_client_response_kind kind;
  uint64_t id;
  int status;          /* PC_CLIENT_STATUS_* */
  const char *message; /* "" when OK */
  union {
    pc_client_classify_result classify;
    pc_client_frame_result frame;
    pc_client_stats_result stats;
    struct {
      const char *state;               /* "serving", "draining" or "failing" */
      int64_t last_reload_unix;        /* the last SIGHUP reload ended (0: none since start) */
      bool last_reload_failed;         /* it failed: the daemon serves what it had */
      const char *last_reload_message; /* what failed ("" when it did not) */
    } health;
    struct {
      size_t n_models;
      const pc_client_model *models;
    } model_info;
    struct {
      const char *model;
      size_t n_versions; /* the versions of model serving after the change */
      const char *const *versions;
    } model_control;
  } u;
  void *priv_; /* the library's */
} pc_client_response;

void pc_client_response_free(pc_client_response *r);

/* ---- poll-style API ---- */

/* The socket to wait on. */
int pc_client_fd(const pc_client *c);
/* POLLIN and/or POLLOUT (from <poll.h>): what the client wants to wait for. */
short pc_client_events(const pc_client *c);
/* After poll() reported revents on the fd: reads and writes what it can
 * without blocking and decodes complete answers. Returns PC_CLIENT_OK or an
 * error (the connection is then unusable; answers already decoded can still
 * be popped). */
int pc_client_process(pc_client *c, short revents, pc_client_error *err);
/* Queues a request (copying the image) and writes what it can.
 * PC_CLIENT_EAGAIN when the window is full: process answers first. */
int pc_client_send_classify(pc_client *c, const pc_client_classify_request *req,
                            pc_client_error *err);
int pc_client_send_frame(pc_client *c, const pc_client_frame_request *req, pc_client_error *err);
int pc_client_send_stats(pc_client *c, uint64_t id, pc_client_error *err);
int pc_client_send_health(pc_client *c, uint64_t id, pc_client_error *err);
int pc_client_send_model_info(pc_client *c, uint64_t id, const char *model, pc_client_error *err);
/* Run-time model control (the daemon's model.control): load, unload or
 * reload every version of repository model `model`. */
typedef enum pc_client_model_op {
  PC_CLIENT_MODEL_LOAD = 1,
  PC_CLIENT_MODEL_UNLOAD = 2,
  PC_CLIENT_MODEL_RELOAD = 3,
} pc_client_model_op;
int pc_client_send_model_control(pc_client *c, uint64_t id, pc_client_model_op op,
                                 const char *model, pc_client_error *err);
/* Pops the oldest decoded answer: PC_CLIENT_OK with *out (free it with
 * pc_client_response_free), or PC_CLIENT_EAGAIN when none is ready. */
int pc_client_next_response(pc_client *c, pc_client_response **out);
/* Requests sent (or queued) and not yet answered. */
int pc_client_in_flight(const pc_client *c);
/* Bytes queued and not yet written to the socket. */
size_t pc_client_unsent(const pc_client *c);
/* One poll() of at most timeout_ms (-1: no limit) followed by
 * pc_client_process. PC_CLIENT_OK after progress or a quiet timeout. */
int pc_client_wait(pc_client *c, int timeout_ms, pc_client_error *err);

/* ---- retries: rolling restarts and crashes cost no request ---- */

/* With a retry policy set, the client survives the loss of its daemon: on a
 * lost connection with requests unanswered, on a classify answer
 * UNAVAILABLE (the daemon is draining, or has no model) and on a drain
 * notice, it reconnects to the same address (behind a load balancer that
 * reaches another daemon) after a pause that doubles from
 * backoff_initial_ms up to backoff_max_ms, each drawn at random between
 * half and all of it (jitter), and resends every request not yet answered,
 * in the order they were first sent. Every request is idempotent, so a
 * resend is safe; each is answered to the caller once: an answer for an id
 * that is not owed (already answered, or a stray duplicate) is dropped and
 * counted. A draining connection gets no new request: they wait for the
 * next connection. Each connection opens with a Hello asking for drain
 * notices (plankton.proto), whose answer is never handed out; a daemon
 * older than Hello answers it UNIMPLEMENTED, which is taken quietly.
 *
 * One outage lasts from the first loss to the first answer on a new
 * connection. It may take at most retry_for_s seconds and max_attempts
 * connection attempts (a connection that the other end closes before
 * answering counts as a failed attempt); past either, every request still
 * owed is answered once by the library itself, with the request's kind and
 * id, status PC_CLIENT_STATUS_UNAVAILABLE and a message that says why, and
 * pc_client_process() then fails as it does without retries. A connection
 * lost while nothing is owed is re-established by the next send.
 *
 * What changes for a poll-style caller: the descriptor of pc_client_fd()
 * changes after a reconnect, and during a pause it is a timer that turns
 * readable when the next attempt is due, so ask pc_client_fd() and
 * pc_client_events() before every poll(); pc_client_process() may block in
 * connect() for at most the connect timeout (or the budget left). The
 * budget is checked whenever pc_client_process() runs: so that a new
 * connection that neither answers nor closes ends the outage in time, poll
 * for at most pc_client_timeout_ms() (pc_client_wait() does). */
typedef struct pc_client_retry_policy {
  double retry_for_s;     /* time budget of one outage in seconds; 0: no retries (the default) */
  int max_attempts;       /* connection attempts per outage (0: 100) */
  int backoff_initial_ms; /* the first pause (0: 25) */
  int backoff_max_ms;     /* the longest pause (0: 2000) */
} pc_client_retry_policy;

#define PC_CLIENT_RETRY_FOR_DEFAULT_S 30.0

/* Sets (policy NULL: retry_for_s = PC_CLIENT_RETRY_FOR_DEFAULT_S, the rest
 * default) or, with retry_for_s 0, turns off the retry policy. Call it
 * before any request is sent. PC_CLIENT_EINVAL for negative values or a
 * client with requests already in flight. */
int pc_client_set_retry(pc_client *c, const pc_client_retry_policy *policy, pc_client_error *err);

typedef struct pc_client_retry_counters {
  uint64_t reconnects;           /* connections re-established */
  uint64_t attempts;             /* connection attempts, failed ones included */
  uint64_t resent;               /* requests sent again on a new connection */
  uint64_t unavailable;          /* UNAVAILABLE answers taken as "resend elsewhere" */
  uint64_t duplicates_dropped;   /* answers for ids not owed, never handed out */
  uint64_t failed_after_retries; /* requests answered UNAVAILABLE by the library */
  uint64_t drain_notices;        /* drain notices received */
} pc_client_retry_counters;

/* Milliseconds until pc_client_process() must run even without an event on
 * the descriptor (the retry budget of an outage runs out on a connection
 * that stays silent); -1: no such moment. A poll timeout for your loop. */
int pc_client_timeout_ms(const pc_client *c);

/* The counters since the client was made (all 0 without a retry policy). */
void pc_client_retry_stats(const pc_client *c, pc_client_retry_counters *out);

/* ---- blocking calls (each waits up to the client's timeout) ---- */

/* Sends one request and waits for its answer; answers to other requests
 * that arrive meanwhile stay queued for pc_client_next_response. *out holds
 * the daemon's status: check (*out)->status. */
int pc_client_classify(pc_client *c, const pc_client_classify_request *req,
                       pc_client_response **out, pc_client_error *err);
/* A frame's answer: (*out)->u.frame (kind PC_CLIENT_RESPONSE_FRAME). */
int pc_client_frame(pc_client *c, const pc_client_frame_request *req, pc_client_response **out,
                    pc_client_error *err);
int pc_client_stats(pc_client *c, pc_client_response **out, pc_client_error *err);
int pc_client_health(pc_client *c, pc_client_response **out, pc_client_error *err);
int pc_client_model_info(pc_client *c, const char *model, pc_client_response **out,
                         pc_client_error *err);
/* Answered once the change took effect or failed ((*out)->status and
 * message: PERMISSION_DENIED, NOT_FOUND, ...); u.model_control. */
int pc_client_model_control(pc_client *c, pc_client_model_op op, const char *model,
                            pc_client_response **out, pc_client_error *err);

#ifdef __cplusplus
}
#endif

#endif
