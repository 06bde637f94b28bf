/* pd_daemon_test: what the daemon tests share. Runs a real planktond
 * (the binary from $PLANKTOND) on a socket in a fresh temporary folder, with
 * the test model from $PD_TEST_MODEL, its stderr in a log file, and waits for
 * it to be ready (sd_notify READY=1 on a NOTIFY_SOCKET the harness owns, or
 * a Health answer). Makes deterministic synthetic crops (raw gray8, PNG) and
 * computes the engine's own answer for a crop (the model and plan run
 * directly, batch of 1) to compare the daemon's answers against. */
#ifndef PD_DAEMON_TEST_H
#define PD_DAEMON_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pd_backend.h"
#include "pd_model.h"
#include "plankton_client.h"

typedef struct pd_td {
  pid_t pid;
  char dir[256];
  char socket[320];
  char log_path[320];
  int notify_fd;
  bool ready_notified;
} pd_td;

/* Starts planktond --socket DIR/planktond.sock --model $PD_TEST_MODEL ARGS...
 * (args NULL-terminated, may be NULL; with "--config" among them the model
 * comes from the file; "@DIR@" in an argument stands for the temporary
 * folder). 0 when ready within 60 s. */
int pd_td_start(pd_td *d, const char *const *args);

/* The same with choices: another binary (NULL: $PLANKTOND), a lower
 * RLIMIT_NOFILE for the daemon (0: inherited), extra environment
 * ("NAME=VALUE" strings, NULL-terminated; may be NULL).
 * $PD_DAEMON_WRAPPER (e.g. "valgrind --error-exitcode=99 ...", split at
 * spaces, then $PD_DAEMON_WRAPPER_EXTRA) runs in front of the daemon in
 * every start (scripts/valgrind). */
typedef struct pd_td_opts {
  const char *binary;
  long nofile;
  const char *const *env;
} pd_td_opts;
int pd_td_start_opts(pd_td *d, const pd_td_opts *o, const char *const *args);
/* Sends sig (0: none, just waits) and waits up to timeout_s for the exit;
 * returns the exit status, -2 if killed by a signal, -1 on timeout. */
int pd_td_stop(pd_td *d, int sig, int timeout_s);
/* Kills if still running; removes the folder. */
void pd_td_cleanup(pd_td *d);
/* The daemon's log so far (malloc'ed). */
char *pd_td_log(const pd_td *d);
/* Waits until the log contains `needle` (up to timeout_s). */
bool pd_td_wait_log(const pd_td *d, const char *needle, int timeout_s);
/* How many times the log holds `needle` so far. */
int pd_td_log_count(const pd_td *d, const char *needle);
pc_client *pd_td_connect(const pd_td *d, int window);
/* One classify answer (free it), or NULL after saying why on stderr. */
pc_client_response *pd_td_classify(pc_client *c, const pc_client_classify_request *rq);
const char *pd_td_model_dir(void);
/* A copy of the test model in folder `to` (made) under the name `name`: the
 * same weights, another model for a reload to switch to. 0 or -1. */
int pd_td_model_renamed(const char *to, const char *name);
/* False (after saying why) when the test model could not be made: the
 * test should exit 77 (skipped). */
bool pd_td_have_model(void);
/* The backend every daemon the harness starts runs on ($PD_TEST_BACKEND,
 * default "cpu"; passed as --backend unless the test gives one or a config). */
const char *pd_td_backend(void);
/* The tolerance for a daemon's probabilities against the engine run in the
 * test (pd_td_ref_*): on the CPU the same kernels give the same answer up to
 * the per-layer kernel choice (measured 0 to 2.7e-7), so 2e-6; another
 * backend against the CPU reference: 1e-4. */
double pd_td_prob_tol(void);
/* The factor every timeout of the tests is multiplied by: $PD_TEST_TIMEOUT_SCALE
 * when set (a number >= 1), else 20 when the daemon runs under a wrapper
 * ($PD_DAEMON_WRAPPER: valgrind), else 3 in a build with AddressSanitizer,
 * else 1. The harness's own waits (start, connect, stop, logs) use it. */
double pd_td_timeout_scale(void);

/* A deterministic crop w x h: a dark blob and strands on white. */
uint8_t *pd_td_crop(uint64_t seed, int w, int h);
/* The crop as a PNG (malloc'ed, *len bytes). */
uint8_t *pd_td_png(const uint8_t *gray, int w, int h, size_t *len);

/* The crop as a baseline gray JPEG, quality 90 (malloc'ed, *len bytes). */
uint8_t *pd_td_jpeg(const uint8_t *gray, int w, int h, size_t *len);

/* The engine run directly: a model with a plan for batch 1. */
typedef struct pd_td_ref {
  pd_model *model;
  pd_backend *backend;
  pd_plan *plan;
} pd_td_ref;
int pd_td_ref_open(pd_td_ref *r, const char *dir);
/* probs[n_classes] for a gray crop. */
int pd_td_ref_probs(pd_td_ref *r, const uint8_t *gray, int w, int h, float *probs);
/* The same with n TTA transforms (input/pd_tta.h), averaged. */
int pd_td_ref_probs_tta(pd_td_ref *r, const uint8_t *gray, int w, int h, int n, float *probs);
void pd_td_ref_close(pd_td_ref *r);

/* The synthetic crops the daemon tests send, each with the engine's own
 * answer for it (pd_td_ref_probs, no TTA). */
typedef struct pd_td_crop_ref {
  int w, h;
  uint8_t *gray, *png;
  size_t png_len;
  float *probs; /* the model's n_classes probabilities */
} pd_td_crop_ref;
/* n crops: crop i is w_min + (i * 37) % w_span wide, h_min + (i * 53) % h_span
 * high, pd_td_crop(seed + i); 0, or -1 (the array is then freed). */
int pd_td_crops_make(pd_td_crop_ref *c, int n, pd_td_ref *ref, uint64_t seed, int w_min, int w_span,
                     int h_min, int h_span);
void pd_td_crops_free(pd_td_crop_ref *c, int n);
/* One crop pd_td_crop(seed, w, h) with the test model's answer for it (the
 * engine opened and closed here); *n_classes (may be NULL) the model's
 * class count. 0, or -1 (nothing to free). */
int pd_td_crop_one(pd_td_crop_ref *c, uint64_t seed, int w, int h, int *n_classes);
/* max |got[j] - c->probs[j]|; 1 when n is not the model's class count. */
double pd_td_crop_diff(const pd_td_crop_ref *c, const pd_td_ref *ref, const float *got, size_t n);
/* A classify request for c (PNG or raw gray8) with top 3 and the full distribution. */
pc_client_classify_request pd_td_crop_request(const pd_td_crop_ref *c, uint64_t id, bool png);

/* Milliseconds on the monotonic clock. */
double pd_td_now_ms(void);

/* GET /metrics over the Unix socket at unix_path (Connection: close, up to
 * 10 s): the body (malloc'ed), or NULL when no 200 answer came. */
char *pd_td_metrics(const char *unix_path);
/* The value of the sample `name` (labels included, as written) in a
 * /metrics text; NAN when it is not there. */
double pd_td_metric(const char *text, const char *name);

#endif
