/* pc_client_blocking: the one-call-per-answer conveniences over the
 * poll-style API: send (waiting for room in the window), then wait until
 * the answer of that kind and id arrives, within the client's timeout. */
#include <poll.h>
#include <time.h>

#include "pc_client_internal.h"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline) {
  if (deadline < 0) return -1;
  long long left = deadline - now_ms();
  return left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0;
}

typedef int (*send_fn)(pc_client *c, const void *arg, uint64_t id, pc_client_error *err);

static int call(pc_client *c, send_fn send, const void *arg, pc_client_response_kind kind,
                uint64_t id, pc_client_response **out, pc_client_error *err) {
  if (!c || !out) return pc_client__fail(err, PC_CLIENT_EINVAL, "no client or no result pointer");
  *out = NULL;
  long long deadline = c->opt.timeout_ms < 0 ? -1 : now_ms() + c->opt.timeout_ms;
  int rc;
  while ((rc = send(c, arg, id, err)) == PC_CLIENT_EAGAIN) { /* window full */
    if (deadline >= 0 && remaining(deadline) == 0)
      return pc_client__fail(err, PC_CLIENT_ETIMEDOUT, "no room in the window after %d ms",
                             c->opt.timeout_ms);
    rc = pc_client_wait(c, remaining(deadline), err);
    if (rc != PC_CLIENT_OK) return rc;
  }
  if (rc != PC_CLIENT_OK) {
    /* the daemon may have said why it closed before the send failed, or the
     * retry policy gave up and answered the request itself */
    pc_client_response *r = pc_client__take(c, kind, id);
    if (!r) r = pc_client__take(c, PC_CLIENT_RESPONSE_ERROR, 0);
    if (!r) return rc;
    *out = r;
    return PC_CLIENT_OK;
  }
  for (;;) {
    pc_client_response *r = pc_client__take(c, kind, id);
    if (!r) r = pc_client__take(c, PC_CLIENT_RESPONSE_ERROR, 0);
    if (r) {
      *out = r;
      return PC_CLIENT_OK;
    }
    if (deadline >= 0 && remaining(deadline) == 0)
      return pc_client__fail(err, PC_CLIENT_ETIMEDOUT, "no answer from planktond within %d ms",
                             c->opt.timeout_ms);
    rc = pc_client_wait(c, remaining(deadline), err);
    if (rc != PC_CLIENT_OK) {
      /* the answer, or the daemon's reason for closing (an ErrorResponse:
       * too many connections, an idle or frame timeout), may have arrived
       * just before the connection ended */
      r = pc_client__take(c, kind, id);
      if (!r) r = pc_client__take(c, PC_CLIENT_RESPONSE_ERROR, 0);
      if (r) {
        *out = r;
        return PC_CLIENT_OK;
      }
      return rc;
    }
  }
}

static int send_classify(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  (void)id;
  return pc_client_send_classify(c, arg, err);
}

static int send_frame(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  (void)id;
  return pc_client_send_frame(c, arg, err);
}

static int send_stats(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  (void)arg;
  return pc_client_send_stats(c, id, err);
}

static int send_health(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  (void)arg;
  return pc_client_send_health(c, id, err);
}

static int send_model_info(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  return pc_client_send_model_info(c, id, arg, err);
}

typedef struct control_arg {
  pc_client_model_op op;
  const char *model;
} control_arg;

static int send_model_control(pc_client *c, const void *arg, uint64_t id, pc_client_error *err) {
  const control_arg *a = arg;
  return pc_client_send_model_control(c, id, a->op, a->model, err);
}

int pc_client_classify(pc_client *c, const pc_client_classify_request *req,
                       pc_client_response **out, pc_client_error *err) {
  if (!req) return pc_client__fail(err, PC_CLIENT_EINVAL, "no request");
  return call(c, send_classify, req, PC_CLIENT_RESPONSE_CLASSIFY, req->id, out, err);
}

int pc_client_frame(pc_client *c, const pc_client_frame_request *req, pc_client_response **out,
                    pc_client_error *err) {
  if (!req) return pc_client__fail(err, PC_CLIENT_EINVAL, "no request");
  return call(c, send_frame, req, PC_CLIENT_RESPONSE_FRAME, req->id, out, err);
}

int pc_client_stats(pc_client *c, pc_client_response **out, pc_client_error *err) {
  return call(c, send_stats, NULL, PC_CLIENT_RESPONSE_STATS, c ? c->next_id++ : 0, out, err);
}

int pc_client_health(pc_client *c, pc_client_response **out, pc_client_error *err) {
  return call(c, send_health, NULL, PC_CLIENT_RESPONSE_HEALTH, c ? c->next_id++ : 0, out, err);
}

int pc_client_model_info(pc_client *c, const char *model, pc_client_response **out,
                         pc_client_error *err) {
  return call(c, send_model_info, model, PC_CLIENT_RESPONSE_MODEL_INFO, c ? c->next_id++ : 0, out,
              err);
}

int pc_client_model_control(pc_client *c, pc_client_model_op op, const char *model,
                            pc_client_response **out, pc_client_error *err) {
  const control_arg a = {.op = op, .model = model};
  return call(c, send_model_control, &a, PC_CLIENT_RESPONSE_MODEL_CONTROL, c ? c->next_id++ : 0,
              out, err);
}
