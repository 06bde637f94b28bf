#include "pd_backend_select.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pd_backend_request pd_backend_request_default(void) {
  pd_backend_request r = {.name = "auto", .cuda = pd_cuda_options_default()};
  return r;
}

/* ---- registry ---- */

/* Every backend the project has, and what a build needs for it. */
static const struct {
  const char *name;
  const char *needs;
} k_known[] = {
    {"cpu", "OpenBLAS"},
    {"cuda", "a CUDA toolkit"},
};

static int cpu_create(const pd_backend_request *req, pd_backend **out, pd_error *err) {
  return pd_cpu_backend_create(&req->cpu, out, err);
}

static const pd_backend_entry k_cpu = {"cpu", cpu_create, NULL};

/* A module loaded at run time (pd_cuda_loader.c): always registered; not
 * built and not found are one case, the loader's error naming the paths. */
static int cuda_create(const pd_backend_request *req, pd_backend **out, pd_error *err) {
  return pd_cuda_backend_create(&req->cuda, out, err);
}

static const pd_backend_entry k_cuda = {"cuda", cuda_create, pd_cuda_backend_describe};

/* The backends this build registers. */
static const pd_backend_entry *const k_registered[] = {&k_cpu, &k_cuda};

const pd_backend_entry *pd_backend_find(const char *name) {
  for (size_t i = 0; name && i < sizeof k_registered / sizeof k_registered[0]; i++)
    if (strcmp(k_registered[i]->name, name) == 0) return k_registered[i];
  return NULL;
}

int pd_backend_known(const char *name) {
  for (size_t i = 0; name && i < sizeof k_known / sizeof k_known[0]; i++)
    if (strcmp(k_known[i].name, name) == 0) return 1;
  return 0;
}

int pd_backend_unavailable(const char *name, pd_error *err) {
  for (size_t i = 0; name && i < sizeof k_known / sizeof k_known[0]; i++)
    if (strcmp(k_known[i].name, name) == 0)
      return pd_error_set(err, PD_EUNSUPP,
                          "%s support not built (configure with -D%s=enabled and %s)", name, name,
                          k_known[i].needs);
  return pd_error_set(err, PD_EINVAL, "unknown backend '%s' (auto, cpu or cuda)", name ? name : "");
}

/* ---- selection ---- */

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

/* Makes the registered backend `name`, or says why it cannot; desc gets its description. */
static int make(const char *name, const pd_backend_request *req, pd_backend **out, char *desc,
                size_t cap, pd_error *err) {
  desc[0] = 0;
  const pd_backend_entry *e = pd_backend_find(name);
  if (!e) return pd_backend_unavailable(name, err);
  int rc = e->create(req, out, err);
  if (rc == PD_OK && e->describe) e->describe(*out, desc, cap);
  return rc;
}

int pd_backend_create_request(const pd_backend_request *req, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err) {
  if (reason) memset(reason, 0, sizeof *reason);
  if (!req || !out) return pd_error_set(err, PD_EINVAL, "backend selection: null argument");
  *out = NULL;
  const char *name = req->name ? req->name : "auto";
  char desc[512];

  if (strcmp(name, "auto") == 0) {
    pd_error gpu_err = {0};
    int rc = make("cuda", req, out, desc, sizeof desc, &gpu_err);
    if (rc == PD_OK) {
      set_reason(reason, "cuda", "auto found a working CUDA device: %s", desc);
      return PD_OK;
    }
    rc = make("cpu", req, out, desc, sizeof desc, err);
    if (rc != PD_OK) {
      pd_error_prefix(err, "backend cpu");
      pd_error_prefix(err, "auto: cuda unavailable (%s), and", gpu_err.msg);
      return rc;
    }
    set_reason(reason, "cpu", "cuda unavailable: %s", gpu_err.msg);
    return PD_OK;
  }

  if (!pd_backend_known(name)) return pd_backend_unavailable(name, err);
  int rc = make(name, req, out, desc, sizeof desc, err);
  if (rc != PD_OK) {
    if (strcmp(name, "cpu") == 0)
      pd_error_prefix(err, "backend cpu");
    else
      pd_error_prefix(err, "backend %s unavailable", name);
    return rc;
  }
  if (desc[0])
    set_reason(reason, name, "requested; %s", desc);
  else
    set_reason(reason, name, "requested");
  return PD_OK;
}

int pd_backend_fall_back(const pd_backend_request *req, const pd_backend_reason *chosen,
                         const pd_error *plan_err, pd_backend **out, pd_backend_reason *reason,
                         pd_error *err) {
  if (reason) memset(reason, 0, sizeof *reason);
  if (!req || !chosen || !plan_err || !out)
    return pd_error_set(err, PD_EINVAL, "backend fallback: null argument");
  *out = NULL;
  if (!req->name || strcmp(req->name, "auto") != 0 || strcmp(chosen->name, "cpu") == 0)
    return pd_error_set(err, plan_err->code, "%s", plan_err->msg);
  char desc[512];
  int rc = make("cpu", req, out, desc, sizeof desc, err);
  if (rc != PD_OK) {
    pd_error_prefix(err, "backend cpu");
    pd_error_prefix(err, "auto: %s plan failed (%s), and", chosen->name, plan_err->msg);
    return rc;
  }
  set_reason(reason, "cpu", "%s plan failed: %s", chosen->name, plan_err->msg);
  return PD_OK;
}

int pd_backend_create_by_name(const char *name, int device, int cpu_threads, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err) {
  pd_backend_request req = pd_backend_request_default();
  req.name = name;
  req.cuda.device = device;
  req.cpu.threads = cpu_threads;
  return pd_backend_create_request(&req, out, reason, err);
}
