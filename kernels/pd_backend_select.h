/* pd_backend_select: the backend registry, and the choice of a backend by
 * the name a configuration gives ("auto", "cpu" or "cuda"). Makes the
 * backend and says which one it made and why, in one line fit for a
 * start-up log, a --version style report or a /metrics label. Owns nothing
 * after it returns: the caller owns the backend (pd_backend_destroy).
 *
 *   auto  the CUDA backend on `device` if it can be created (a device is
 *         present, the driver, cuDNN and cuBLAS work, this build has a
 *         kernel image for it), else the CPU backend; the reason then says
 *         why CUDA was not used, e.g. "cpu: cuda unavailable:
 *         cudaGetDeviceCount: cudaErrorInsufficientDriver (CUDA driver
 *         version is insufficient for CUDA runtime version)" or
 *         "cpu: cuda unavailable: cuda support not built or not found
 *         (tried ...)" (the CUDA backend is a module, pd_cuda_module.h).
 *         A plan that then fails on CUDA falls back too: pd_backend_fall_back.
 *   cpu   the CPU backend ("cpu: requested").
 *   cuda  the CUDA backend or an error saying why not (never the CPU).
 *
 * Registry: each backend this build has is one pd_backend_entry (its name,
 * how to make it from a pd_backend_request, how to describe what it made),
 * listed in pd_backend_select.c, the one place a backend hooks in; lookups
 * go through pd_backend_find(). A backend loaded at run time (cuda) is
 * always registered: its loader answers "not built or not found" as one case,
 * naming the paths it tried and dlerror(). */
#ifndef PD_BACKEND_SELECT_H
#define PD_BACKEND_SELECT_H

#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "cuda/pd_cuda_backend.h"

typedef struct pd_backend_reason {
  char name[16];  /* the backend made: "cpu" or "cuda" ("" on failure) */
  char text[768]; /* "<name>: <why>", e.g. "cuda: auto: device 0: NVIDIA H100 ..." */
} pd_backend_reason;

/* Everything a configuration may set. name: "auto", "cpu" or "cuda". */
typedef struct pd_backend_request {
  const char *name;
  pd_cpu_options cpu;   /* used when the CPU backend is made */
  pd_cuda_options cuda; /* used when the CUDA backend is tried */
} pd_backend_request;

/* A request with the defaults: "auto", CPU threads 0 (online CPUs), CUDA device 0, FP32. */
pd_backend_request pd_backend_request_default(void);

typedef struct pd_backend_entry {
  const char *name;
  /* Makes the backend from its part of req; errors say why. */
  int (*create)(const pd_backend_request *req, pd_backend **out, pd_error *err);
  /* One line about what was made (device, precision); NULL: nothing to add. */
  void (*describe)(const pd_backend *be, char *buf, size_t len);
} pd_backend_entry;

/* The entry registered under `name` in this build, or NULL. */
const pd_backend_entry *pd_backend_find(const char *name);

/* Whether `name` is a backend this project has (built here or not). */
int pd_backend_known(const char *name);

/* Why `name` cannot be made here: a known backend not in this build: PD_EUNSUPP, "<name> support
 * not built (configure with -D<name>=enabled and <what it needs>)"; an unknown name: PD_EINVAL,
 * "unknown backend '<name>' (auto, cpu or cuda)". */
int pd_backend_unavailable(const char *name, pd_error *err);

int pd_backend_create_request(const pd_backend_request *req, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err);

/* After a plan failed (plan_err) on the backend `chosen` made for req: under
 * "auto", when chosen is not the CPU, makes the CPU backend instead, reason
 * "cpu: <chosen> plan failed: <plan_err>". Otherwise (or if the CPU fails
 * too) an error: plan_err as it was, so `cuda` stays an error that names
 * the failed step. */
int pd_backend_fall_back(const pd_backend_request *req, const pd_backend_reason *chosen,
                         const pd_error *plan_err, pd_backend **out, pd_backend_reason *reason,
                         pd_error *err);

/* The common case: name, CUDA device index, CPU worker threads (0 = online CPUs). */
int pd_backend_create_by_name(const char *name, int device, int cpu_threads, pd_backend **out,
                              pd_backend_reason *reason, pd_error *err);

#endif
