/* pc_cli_pipe: the pipelined classification loop shared by `classify` and
 * `evaluate`. Pulls paths from a source one at a time, reads each file only
 * when the window has room (so at most `window` images are in memory or in
 * flight), sends it with pc_client_send_classify, waits with poll() on the
 * client's descriptor, pops answers as they complete and hands every input
 * to a callback exactly once: in input order (a reorder ring of 4 x window
 * slots) or in completion order. With a frame template each file goes as
 * a FrameRequest (segment) instead of a ClassifyRequest. Files that cannot be read and answers
 * with a non-OK status are results with an error; the run goes on. Owns
 * the ring, the answers not yet handed out and the file buffer. */
#ifndef PC_CLI_PIPE_H
#define PC_CLI_PIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "pc_cli.h"

enum {
  PC_CLI_SOURCE_END = 0,
  PC_CLI_SOURCE_PATH = 1,   /* *path to classify, with the caller's *tag */
  PC_CLI_SOURCE_FAILED = 2, /* *path failed before reading (err says why): reported in order */
  PC_CLI_SOURCE_WAIT = 3,   /* nothing yet: ask again once wait_fd is readable */
};

typedef struct pc_cli_source {
  void *ctx;
  /* A PC_CLI_SOURCE_* value, or -1 (fatal, err set). *path is valid until
   * the next call. */
  int (*next)(void *ctx, const char **path, long *tag, pc_cli_error *err);
  /* The descriptor to poll after PC_CLI_SOURCE_WAIT (NULL: never waits).
   * While the source waits, answers keep being handed out as they come. */
  int (*wait_fd)(void *ctx);
} pc_cli_source;

typedef struct pc_cli_result {
  uint64_t seq; /* input position, from 0 */
  const char *path;
  long tag;
  const char *error;              /* NULL when classified; else "PATH: why" */
  const pc_client_response *resp; /* the answer (status OK) when error is NULL */
  uint32_t width, height;         /* from the file's header; 0 when unknown */
} pc_cli_result;

typedef struct pc_cli_pipe_options {
  int window;              /* requests in flight (>= 1) */
  bool completion_order;   /* hand results out as they complete */
  int timeout_ms;          /* longest wait for an answer while requests are in flight */
  uint64_t max_file_bytes; /* larger files fail locally (the daemon's frame limit) */
  const char *model;       /* NULL: the daemon's default */
  uint32_t top_k;
  bool full_distribution;
  uint32_t tta;
  /* non-NULL: each file is sent as a FrameRequest with these settings (the
   * id and the image's bytes are the pipe's; the image's format and
   * significant bits are the template's) and results carry the frame
   * answer; model, top_k, full_distribution and tta above are then unused.
   * A background with a background_id goes with the first frame only (the
   * daemon keeps it by name for the others). */
  const pc_client_frame_request *frame;
  void (*on_result)(void *ctx, const pc_cli_result *r);
  void (*before_wait)(
      void *ctx); /* before each blocking wait (flush output, progress); may be NULL */
  void *ctx;
} pc_cli_pipe_options;

typedef struct pc_cli_pipe_counts {
  uint64_t ok, failed; /* results handed out */
  uint64_t unanswered; /* sent and never answered (the connection was lost) */
} pc_cli_pipe_counts;

/* PC_CLI_EXIT_OK when every input got its result (some may have failed);
 * PC_CLI_EXIT_DAEMON when the connection was lost or the daemon went
 * silent for timeout_ms (results already answered are still handed out);
 * -1 when the source failed (reading stops; the answers in flight are still
 * handed out). err says why. */
int pc_cli_pipe_run(pc_client *c, const pc_cli_pipe_options *o, const pc_cli_source *src,
                    pc_cli_pipe_counts *counts, pc_cli_error *err);

#endif
