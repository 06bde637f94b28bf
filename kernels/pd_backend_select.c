#include "pd_backend_select.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pd_backend_request pd_backend_request_default(void) {
  pd_backend_request r = {.name = "auto", .cuda = pd_cuda_options_default()};
  return r;
}

/* reason->name = name; reason->text = "<name>: <why>". */
__attribute__((format(printf, 3, 4))) static void set_reason(pd_backend_reason *r, const char *name,
                                                             const char *fmt, ...) {
  if (!r) return;
  snprintf(r->name, sizeof r->name, "%s", name);
  int n = snprintf(r->text, sizeof r->text, "%s: ", name);
  if (n < 0 || (size_t)n >= sizeof r->text) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->text + n, sizeof r->text - (size_t)n, fmt, ap);
  va_end(ap);
}

static int make_cpu(const pd_backend_request *req, pd_backend **out, pd_error *err) {
  int rc = pd_cpu_backend_create(&req->cpu, out, err);
  if (rc != PD_OK) pd_error_prefix(err, "backend cpu");
  return rc;
}

int pd_backend_create_request(const pd_backend_request *req, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err) {
  if (reason) memset(reason, 0, sizeof *reason);
  if (!req || !out) return pd_error_set(err, PD_EINVAL, "backend selection: null argument");
  *out = NULL;
  const char *name = req->name ? req->name : "auto";
  char desc[512];

  if (strcmp(name, "cpu") == 0) {
    int rc = make_cpu(req, out, err);
    if (rc == PD_OK) set_reason(reason, "cpu", "requested");
    return rc;
  }

  if (strcmp(name, "cuda") == 0) {
    int rc = pd_cuda_backend_create(&req->cuda, out, err);
    if (rc != PD_OK) {
      pd_error_prefix(err, "backend cuda unavailable");
      return rc;
    }
    pd_cuda_backend_describe(*out, desc, sizeof desc);
    set_reason(reason, "cuda", "requested; %s", desc);
    return PD_OK;
  }

  if (strcmp(name, "auto") == 0) {
    pd_error cuda_err = {0};
    int rc = pd_cuda_backend_create(&req->cuda, out, &cuda_err);
    if (rc == PD_OK) {
      pd_cuda_backend_describe(*out, desc, sizeof desc);
      set_reason(reason, "cuda", "auto found a working CUDA device: %s", desc);
      return PD_OK;
    }
    rc = make_cpu(req, out, err);
    if (rc != PD_OK) {
      pd_error_prefix(err, "auto: cuda unavailable (%s), and", cuda_err.msg);
      return rc;
    }
    set_reason(reason, "cpu", "cuda unavailable: %s", cuda_err.msg);
    return PD_OK;
  }

  return pd_error_set(err, PD_EINVAL, "unknown backend '%s' (auto, cpu or cuda)", name);
}

int pd_backend_create_by_name(const char *name, int device, int cpu_threads, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err) {
  pd_backend_request req = pd_backend_request_default();
  req.name = name;
  req.cuda.device = device;
  req.cpu.threads = cpu_threads;
  return pd_backend_create_request(&req, out, reason, err);
}
