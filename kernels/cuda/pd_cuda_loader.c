/* pd_cuda_loader: pd_cuda_backend.h and pd_cuda_test.h in every build, over
 * the CUDA backend module planktond-cuda.so (pd_cuda_module.h) loaded at run
 * time, so this program links no CUDA library. Owns nothing: each call
 * opens the module (dlopen; RTLD_NODELETE keeps it mapped once loaded, so a
 * later open is a lookup), calls through its table and closes it again.
 *
 * Where the module is looked for, in order:
 *   - $PLANKTOND_MODULE_DIR when set (only there: tests and prepared
 *     folders name it);
 *   - the folder of the running program (a folder the program was copied
 *     into together with the module);
 *   - the install's module folder, <prefix>/<libdir>/planktond;
 *   - for a program inside the build tree, the module's build folder.
 * A module that is found but does not load (a CUDA library it needs is
 * missing) is reported with dlerror() and not passed over; none found is
 * the same case as a build without CUDA: "cuda support not built or not
 * found", with every path tried. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_cuda_module.h"

#ifndef PD_CUDA_MODULE_INSTALL_DIR
#define PD_CUDA_MODULE_INSTALL_DIR "/usr/local/lib/planktond"
#endif
#ifndef PD_CUDA_MODULE_BUILD_DIR
#define PD_CUDA_MODULE_BUILD_DIR ""
#endif
#ifndef PD_BUILD_ROOT
#define PD_BUILD_ROOT ""
#endif
#define MODULE_DIR_ENV "PLANKTOND_MODULE_DIR"
#define MAX_CANDIDATES 4

typedef struct module_ref {
  void *handle;
  const pd_cuda_module *m;
  char path[PATH_MAX];
} module_ref;

static const char *const k_size_names[PD_CUDA_MODULE_N_SIZES] = {
    "pd_graph", "pd_layer",        "pd_batch",         "pd_backend_ops",
    "pd_error", "pd_cuda_options", "pd_cuda_warp_spec"};

/* The folders to look in (see the top of the file); returns how many. */
static int candidates(char dirs[MAX_CANDIDATES][PATH_MAX]) {
  const char *env = getenv(MODULE_DIR_ENV);
  if (env && *env) {
    snprintf(dirs[0], PATH_MAX, "%s", env);
    return 1;
  }
  int n = 0;
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(dirs[n++], PATH_MAX, "%s", exe);
  }
  snprintf(dirs[n++], PATH_MAX, "%s", PD_CUDA_MODULE_INSTALL_DIR);
  const size_t root = strlen(PD_BUILD_ROOT);
  const char *build_dir = PD_CUDA_MODULE_BUILD_DIR; /* "" where the module is not built */
  if (len > 0 && root > 0 && build_dir[0] != '\0' && strncmp(exe, PD_BUILD_ROOT, root) == 0 &&
      (exe[root] == '/' || exe[root] == '\0'))
    snprintf(dirs[n++], PATH_MAX, "%s", build_dir);
  return n;
}

static int check_abi(const module_ref *r, pd_error *err) {
  if (r->m->abi != PD_BACKEND_ABI)
    return pd_error_set(err, PD_EUNSUPP,
                        "cuda module %s was built for backend interface %u, this program has %u "
                        "(rebuild the module with this planktond)",
                        r->path, (unsigned)r->m->abi, (unsigned)PD_BACKEND_ABI);
  const uint32_t ours[PD_CUDA_MODULE_N_SIZES] = PD_CUDA_MODULE_SIZES;
  for (int i = 0; i < PD_CUDA_MODULE_N_SIZES; i++)
    if (r->m->sizes[i] != ours[i])
      return pd_error_set(err, PD_EUNSUPP,
                          "cuda module %s: sizeof(%s) is %u there, %u here, under the same "
                          "backend interface %u (rebuild the module with this planktond)",
                          r->path, k_size_names[i], (unsigned)r->m->sizes[i], (unsigned)ours[i],
                          (unsigned)PD_BACKEND_ABI);
  return PD_OK;
}

/* Loads the module: its table, checked, in r (close with module_close). */
static int module_open(module_ref *r, pd_error *err) {
  memset(r, 0, sizeof *r);
  char dirs[MAX_CANDIDATES][PATH_MAX];
  const int n = candidates(dirs);
  char tried[512] = "";
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    if (snprintf(r->path, sizeof r->path, "%s/%s", dirs[i], PD_CUDA_MODULE_FILE) >=
        (int)sizeof r->path)
      continue; /* a folder name too long to open */
    const int exists = access(r->path, F_OK) == 0;
    r->handle = dlopen(r->path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!r->handle) {
      const char *why = dlerror();
      if (exists)
        return pd_error_set(err, PD_EUNSUPP, "cuda module not loadable: %s", why ? why : r->path);
      int k = snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "",
                       why ? why : r->path);
      if (k > 0 && (size_t)k < sizeof tried - used) used += (size_t)k;
      continue;
    }
    pd_cuda_module_entry_fn entry;
    *(void **)&entry = dlsym(r->handle, PD_CUDA_MODULE_SYMBOL);
    if (!entry || !(r->m = entry())) {
      const char *why = dlerror();
      pd_error_set(err, PD_EUNSUPP, "cuda module %s: no entry point %s (%s)", r->path,
                   PD_CUDA_MODULE_SYMBOL, why ? why : "it returned nothing");
      dlclose(r->handle);
      return PD_EUNSUPP;
    }
    int rc = check_abi(r, err);
    if (rc != PD_OK) dlclose(r->handle);
    return rc;
  }
  return pd_error_set(err, PD_EUNSUPP,
                      "cuda support not built or not found (tried %s; build with -Dcuda=enabled "
                      "and a CUDA toolkit, or set " MODULE_DIR_ENV ")",
                      tried);
}

static void module_close(module_ref *r) {
  if (r->handle) dlclose(r->handle);
  r->handle = NULL;
}

pd_cuda_options pd_cuda_options_default(void) {
  pd_cuda_options o = {.device = 0, .precision = PD_CUDA_FP32};
  return o;
}

int pd_cuda_built(void) {
  module_ref r;
  pd_error err = {0};
  if (module_open(&r, &err) != PD_OK) return 0;
  module_close(&r);
  return 1;
}

int pd_cuda_module_path(char *buf, size_t len, pd_error *err) {
  module_ref r;
  int rc = module_open(&r, err);
  if (rc != PD_OK) return rc;
  if (buf && len) snprintf(buf, len, "%s (%s)", r.path, r.m->build);
  module_close(&r);
  return PD_OK;
}

int pd_cuda_device_count(int *count, pd_error *err) {
  if (count) *count = 0;
  module_ref r;
  int rc = module_open(&r, err);
  if (rc != PD_OK) return rc;
  rc = r.m->device_count(count, err);
  module_close(&r);
  return rc;
}

int pd_cuda_backend_create(const pd_cuda_options *opt, pd_backend **out, pd_error *err) {
  if (out) *out = NULL;
  module_ref r;
  int rc = module_open(&r, err);
  if (rc != PD_OK) return rc;
  rc = r.m->backend_create(opt, out, err);
  module_close(&r);
  return rc;
}

void pd_cuda_backend_describe(const pd_backend *be, char *buf, size_t len) {
  if (!buf || !len) return;
  module_ref r;
  pd_error err = {0};
  if (module_open(&r, &err) != PD_OK) {
    snprintf(buf, len, "%s", err.msg);
    return;
  }
  r.m->backend_describe(be, buf, len);
  const size_t at = strlen(buf);
  if (at + 1 < len) snprintf(buf + at, len - at, ", module %s", r.path);
  module_close(&r);
}

void pd_cuda_plan_describe(const pd_plan *plan, char *buf, size_t len) {
  if (!buf || !len) return;
  module_ref r;
  pd_error err = {0};
  if (module_open(&r, &err) != PD_OK) {
    snprintf(buf, len, "%s", err.msg);
    return;
  }
  r.m->plan_describe(plan, buf, len);
  module_close(&r);
}

int pd_cuda_plan_trace(pd_plan *plan, const pd_batch *in, pd_cuda_trace_fn fn, void *user,
                       pd_error *err) {
  module_ref r;
  int rc = module_open(&r, err);
  if (rc != PD_OK) return rc;
  rc = r.m->plan_trace(plan, in, fn, user, err);
  module_close(&r);
  return rc;
}

int pd_cuda_warp_check(pd_backend *be, const pd_cuda_warp_spec *spec, const uint8_t *const *pixels,
                       const int *w, const int *h, const double *affines, int count, float *out,
                       pd_error *err) {
  module_ref r;
  int rc = module_open(&r, err);
  if (rc != PD_OK) return rc;
  rc = r.m->warp_check(be, spec, pixels, w, h, affines, count, out, err);
  module_close(&r);
  return rc;
}
