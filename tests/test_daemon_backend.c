/* test_daemon_backend: the real planktond choosing its backend with the CUDA
 * module (planktond-cuda.so) missing, present, unloadable or built for
 * another backend interface, on this machine (no GPU needed: each case
 * checks what the machine has). `auto` must serve on the CPU and log why;
 * `cuda` must fail at start with an error naming the step. The module's
 * folder is chosen with PLANKTOND_MODULE_DIR. With a GPU, plan_faults
 * injects a failure at each plan stage (PD_CUDA_FAULT_INJECT): `auto` must
 * serve on the CPU, `cuda` must fail naming the stage; then a sticky error
 * injected in a run must put the model out of service under `cuda` and
 * have it rebuilt on the CPU under `auto`; it skips without one.
 * links_no_cuda reads planktond's DT_NEEDED entries: no CUDA library.
 * device_error_cpu and device_error_fail run the engine's handling of a
 * sticky device error without a GPU: planktond-faultinject
 * (PD_FAULT_INJECT=device_error=N makes run N return PD_EDEVICE, as the CUDA
 * plan does after an illegal address) under engine.on_device_error cpu (the
 * plan rebuilt on the CPU, every later request answered once and right) and
 * fail (every later one INTERNAL naming the error; KServe ready 503).
 * cuda_settings_shown: engine.cuda_graphs and engine.cuda_workspace_mb
 * from flags and from planktond.yaml appear in the start-up log line and in
 * /metrics' backend info (also where the CPU serves: "(unused)"), and so
 * does engine.cuda_algo_cache_dir.
 *
 * $PD_CUDA_MODULE: the built module ("" where nvcc was not found);
 * $PD_FAKE_CUDA_MODULE: a module reporting another backend interface. */
#include <elf.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef PD_TD_GRPC
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#endif

#include "cuda/pd_cuda_backend.h"
#include "pd_daemon_test.h"
#include "pd_test_cases.h"

static pd_td_ref ref;
static pd_td_crop_ref crop;
static char scratch[] = "/tmp/pd-backend-XXXXXX";

static const char *real_module(void) {
  const char *m = getenv("PD_CUDA_MODULE");
  return m && *m && access(m, R_OK) == 0 ? m : NULL;
}

/* DIR under the scratch folder, made empty. */
static void subdir(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", scratch, name);
  mkdir(out, 0755);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = n > 0 ? malloc((size_t)n) : NULL;
  *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  return buf;
}

/* Copies src to dir/planktond-cuda.so, with the first `from` in it (a
 * needed library's name) replaced by `to` (as long); 0 on success. */
static int copy_module(const char *src, const char *dir, const char *from, const char *to) {
  size_t len = 0;
  char *buf = slurp(src, &len);
  if (!buf) return -1;
  if (from) {
    const size_t n = strlen(from);
    char *at = NULL;
    for (size_t i = 0; i + n <= len && !at; i++)
      if (!memcmp(buf + i, from, n)) at = buf + i;
    if (!at || strlen(to) != n) {
      fprintf(stderr, "%s: no '%s' to replace\n", src, from);
      free(buf);
      return -1;
    }
    memcpy(at, to, n);
  }
  char path[512];
  snprintf(path, sizeof path, "%s/planktond-cuda.so", dir);
  FILE *f = fopen(path, "wb");
  const int ok = f && fwrite(buf, 1, len, f) == len;
  if (f) fclose(f);
  free(buf);
  return ok ? 0 : -1;
}

/* One crop through the daemon: its probabilities are the CPU engine's. */
static void check_serves(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 1);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  pc_client_classify_request rq = pd_td_crop_request(&crop, 1, true);
  pc_client_response *r = NULL;
  PD_CHECK(st, pc_client_classify(c, &rq, &r, NULL) == PC_CLIENT_OK);
  PD_CHECK(st, r && r->status == 0);
  if (r && r->status == 0)
    PD_CHECK(st, pd_td_crop_diff(&crop, &ref, r->u.classify.distribution,
                                 r->u.classify.n_distribution) <= pd_td_prob_tol());
  pc_client_response_free(r);
  pc_client_close(c);
}

/* Starts the daemon with `backend` and the module folder `dir` (NULL: the
 * default search) and extra_env ("NAME=VALUE" or NULL); with `want_start`
 * it must serve and its log contain `want` (and want2), else it must fail at
 * start with them in its log. */
static void run_daemon2(pd_test_state *st, const char *backend, const char *dir, bool want_start,
                        const char *want, const char *want2, const char *extra_env) {
  char env_dir[600];
  snprintf(env_dir, sizeof env_dir, "PLANKTOND_MODULE_DIR=%s", dir ? dir : "");
  const char *env[] = {env_dir, extra_env, NULL};
  const char *args[] = {"--backend", backend, NULL};
  pd_td_opts o = {.env = dir ? env : extra_env ? env + 1 : NULL};
  pd_td d = {0};
  const int started = pd_td_start_opts(&d, &o, args) == 0;
  PD_CHECK(st, started == want_start);
  if (started) {
    check_serves(st, &d);
    PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  }
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", want);
  if (want2) PD_CHECK_CONTAINS(st, log ? log : "", want2);
  if (!want_start) PD_CHECK_CONTAINS(st, log ? log : "", "start-up failed");
  free(log);
  pd_td_cleanup(&d);
}

static void run_daemon(pd_test_state *st, const char *backend, const char *dir, bool want_start,
                       const char *want, const char *extra_env) {
  run_daemon2(st, backend, dir, want_start, want, NULL, extra_env);
}

/* The DT_NEEDED names of the ELF file at path, "name\n" each, into out; 0 on success. */
static int needed_libs(const char *path, char *out, size_t cap) {
  size_t len = 0;
  char *f = path ? slurp(path, &len) : NULL;
  out[0] = '\0';
  if (!f || len < sizeof(Elf64_Ehdr) || memcmp(f, ELFMAG, SELFMAG) != 0 ||
      f[EI_CLASS] != ELFCLASS64) {
    free(f);
    return -1;
  }
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff);
  const Elf64_Dyn *dyn = NULL;
  size_t n_dyn = 0;
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC && ph[i].p_offset + ph[i].p_filesz <= len) {
      dyn = (const Elf64_Dyn *)(f + ph[i].p_offset);
      n_dyn = ph[i].p_filesz / sizeof *dyn;
    }
  Elf64_Addr strtab = 0;
  for (size_t i = 0; i < n_dyn; i++)
    if (dyn[i].d_tag == DT_STRTAB) strtab = dyn[i].d_un.d_ptr;
  size_t str_off = 0; /* the string table's file offset, through the segment that maps it */
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && strtab >= ph[i].p_vaddr &&
        strtab < ph[i].p_vaddr + ph[i].p_filesz)
      str_off = ph[i].p_offset + (strtab - ph[i].p_vaddr);
  size_t used = 0;
  for (size_t i = 0; i < n_dyn && str_off; i++)
    if (dyn[i].d_tag == DT_NEEDED && str_off + dyn[i].d_un.d_val < len) {
      int k = snprintf(out + used, cap - used, "%.200s\n", f + str_off + dyn[i].d_un.d_val);
      if (k > 0 && (size_t)k < cap - used) used += (size_t)k;
    }
  free(f);
  return dyn && str_off ? 0 : -1;
}

/* planktond links no CUDA library (the module does, when built). */
static void links_no_cuda(pd_test_state *st) {
  char libs[4096];
  PD_CHECK_INT(st, needed_libs(getenv("PLANKTOND"), libs, sizeof libs), 0);
  printf("planktond needs:\n%s", libs);
  PD_CHECK_CONTAINS(st, libs, "libc.so.6"); /* the reader works */
  PD_CHECK(st, !strstr(libs, "libcuda") && !strstr(libs, "libcudnn") && !strstr(libs, "libcublas"));
  const char *m = real_module();
  if (m) {
    PD_CHECK_INT(st, needed_libs(m, libs, sizeof libs), 0);
    PD_CHECK_CONTAINS(st, libs, "libcudnn.so");
  }
}

/* Whether the module in dir finds a device (in this process, as the daemon would). */
static bool has_device(const char *dir) {
  setenv("PLANKTOND_MODULE_DIR", dir, 1);
  int count = 0;
  pd_error err = {0};
  const bool yes = pd_cuda_device_count(&count, &err) == PD_OK && count > 0;
  unsetenv("PLANKTOND_MODULE_DIR");
  return yes;
}

static void module_missing(pd_test_state *st) {
  char dir[400], want[600];
  subdir(dir, sizeof dir, "empty");
  snprintf(want, sizeof want,
           "cuda support not built or not found (tried %s/planktond-cuda.so: cannot open shared "
           "object file",
           dir);
  char line[700];
  snprintf(line, sizeof line, "backend cpu: cuda unavailable: %s", want);
  run_daemon(st, "auto", dir, true, line, NULL);
  snprintf(line, sizeof line, "backend cuda unavailable: %s", want);
  run_daemon(st, "cuda", dir, false, line, NULL);
}

/* The built module next to no device; in a build without it, the default
 * search must say it found none. */
static void module_no_device(pd_test_state *st) {
  const char *m = real_module();
  if (!m) {
    run_daemon(st, "auto", NULL, true,
               "backend cpu: cuda unavailable: cuda support not built or not found (tried ", NULL);
    return;
  }
  char dir[400];
  subdir(dir, sizeof dir, "real");
  PD_CHECK_INT(st, copy_module(m, dir, NULL, NULL), 0);
  if (has_device(dir)) {
    run_daemon(st, "auto", dir, true, "backend cuda: auto found a working CUDA device", NULL);
    run_daemon(st, "cuda", dir, true, "backend cuda: requested", NULL);
    return;
  }
  /* no driver: the device count fails; a driver without a GPU: none present */
  setenv("PLANKTOND_MODULE_DIR", dir, 1);
  int count = 0;
  pd_error why = {0};
  pd_cuda_device_count(&count, &why);
  unsetenv("PLANKTOND_MODULE_DIR");
  PD_CHECK(st, strstr(why.msg, "cudaGetDeviceCount: cuda") || strstr(why.msg, "no CUDA device"));
  char line[700];
  snprintf(line, sizeof line, "backend cpu: cuda unavailable: %.500s", why.msg);
  run_daemon(st, "auto", dir, true, line, NULL);
  snprintf(line, sizeof line, "backend cuda unavailable: %.500s", why.msg);
  run_daemon(st, "cuda", dir, false, line, NULL);
  /* the fault-injection setting is checked before the device */
  run_daemon(st, "cuda", dir, false, "PD_CUDA_FAULT_INJECT 'nowhere': unknown stage (probe, ",
             "PD_CUDA_FAULT_INJECT=nowhere");
}

/* A module whose needed library is not on this host (the CUDA libraries
 * missing): dlerror() names it; the real module when built (cuDNN), else
 * the test module (libm). */
static void module_unloadable(pd_test_state *st) {
  const char *m = real_module();
  const char *src = m ? m : getenv("PD_FAKE_CUDA_MODULE");
  const char *from = m ? "libcudnn.so.9" : "libm.so.6", *to = m ? "libcudnX.so.9" : "libq.so.6";
  char dir[400], want[700];
  subdir(dir, sizeof dir, "unloadable");
  PD_CHECK_INT(st, copy_module(src, dir, from, to), 0);
  snprintf(want, sizeof want, "cuda module not loadable: %s: cannot open shared object file", to);
  char line[800];
  snprintf(line, sizeof line, "backend cpu: cuda unavailable: %s", want);
  run_daemon(st, "auto", dir, true, line, NULL);
  run_daemon(st, "cuda", dir, false, want, NULL);
}

static void module_other_abi(pd_test_state *st) {
  char dir[400], want[700];
  subdir(dir, sizeof dir, "abi");
  PD_CHECK_INT(st, copy_module(getenv("PD_FAKE_CUDA_MODULE"), dir, NULL, NULL), 0);
  snprintf(want, sizeof want,
           "cuda module %s/planktond-cuda.so was built for backend interface %d, this program "
           "has %d (rebuild the module with this planktond)",
           dir, PD_BACKEND_ABI + 1, PD_BACKEND_ABI);
  char line[800];
  snprintf(line, sizeof line, "backend cpu: cuda unavailable: %s", want);
  run_daemon(st, "auto", dir, true, line, NULL);
  run_daemon(st, "cuda", dir, false, want, NULL);
}

/* A sticky device error in a run (injected): that batch fails INTERNAL.
 * Under cuda (engine.on_device_error auto: fail) every later one does too,
 * at once, naming the first error; under auto the plan is rebuilt on the
 * CPU and the next request is answered right. */
static void run_sticky(pd_test_state *st, const char *dir, const char *backend) {
  const bool cuda = strcmp(backend, "cuda") == 0;
  char env_dir[600];
  snprintf(env_dir, sizeof env_dir, "PLANKTOND_MODULE_DIR=%s", dir);
  const char *env[] = {env_dir, "PD_CUDA_FAULT_INJECT=run", NULL};
  const char *args[] = {"--backend", backend, NULL};
  pd_td_opts o = {.env = env};
  pd_td d = {0};
  PD_CHECK(st, pd_td_start_opts(&d, &o, args) == 0);
  pc_client *c = d.pid > 0 ? pd_td_connect(&d, 1) : NULL;
  for (int k = 0; c && k < 2; k++) {
    pc_client_classify_request rq = pd_td_crop_request(&crop, (uint64_t)k + 1, true);
    pc_client_response *r = NULL;
    PD_CHECK(st, pc_client_classify(c, &rq, &r, NULL) == PC_CLIENT_OK);
    if (k == 1 && !cuda) {
      PD_CHECK(st, r && r->status == 0);
      if (r && r->status == 0)
        PD_CHECK(st, pd_td_crop_diff(&crop, &ref, r->u.classify.distribution,
                                     r->u.classify.n_distribution) <= pd_td_prob_tol());
    } else {
      PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_INTERNAL);
      if (r) PD_CHECK_CONTAINS(st, r->message, "cudaErrorIllegalAddress");
      if (r && k == 1) PD_CHECK_CONTAINS(st, r->message, "out of service since a sticky");
    }
    pc_client_response_free(r);
  }
  if (c) pc_client_close(c);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "",
                    cuda ? "engine.on_device_error fail: out of service"
                         : "rebuilt on the CPU in ");
  free(log);
  pd_td_cleanup(&d);
}

/* Each plan stage failing on a device: needs a GPU. */
static void plan_faults(pd_test_state *st) {
  const char *m = real_module();
  char dir[400];
  subdir(dir, sizeof dir, "faults");
  if (!m || copy_module(m, dir, NULL, NULL) != 0 || !has_device(dir)) {
    pd_test_skip(st, "no CUDA module or no CUDA device (scripts/gpu-check runs this on a GPU)");
    return;
  }
  static const struct {
    const char *stage, *step;
  } k[] = {
      {"probe", "probe: cudnnCreate (injected): "},
      {"handles", "plan: stream and handles: cudnnCreate (injected)"},
      {"weights", "plan: weights: cudaMalloc (injected): cudaErrorMemoryAllocation"},
      {"buffers", "plan: input and output buffers: cudaHostAlloc (injected)"},
      {"descriptors", "cudnnSetTensor4dDescriptor (injected): CUDNN_STATUS_BAD_PARAM"},
      {"algorithms", "cuDNN offers no forward algorithm"},
      {"workspace", "plan: convolution workspace: cudaMalloc (injected)"},
      {"warm-up", "plan: warm-up run: cudaStreamSynchronize (injected): cudaErrorLaunchFailure"},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    char env[64], line[400];
    snprintf(env, sizeof env, "PD_CUDA_FAULT_INJECT=%s", k[i].stage);
    snprintf(line, sizeof line, "backend cpu: cuda %s", i == 0 ? "unavailable: " : "plan failed: ");
    run_daemon2(st, "auto", dir, true, line, k[i].step, env);
    run_daemon(st, "cuda", dir, false, k[i].step, env);
  }
  run_sticky(st, dir, "cuda");
  run_sticky(st, dir, "auto");
}

/* The HTTP status of GET `path` on the Unix socket at unix_path; -1: no answer. */
static int http_status(const char *unix_path, const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", unix_path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  char req[512], buf[64] = "";
  const int n =
      snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t got = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? recv(fd, buf, sizeof buf - 1, 0) : -1;
  close(fd);
  int status = -1;
  if (got > 0) buf[got] = '\0', sscanf(buf, "HTTP/1.1 %d", &status);
  return status;
}

/* Whether the daemon has the KServe front ends ($PD_HAVE_KSERVE). */
static bool have_kserve(void) {
  const char *k = getenv("PD_HAVE_KSERVE");
  return !k || strcmp(k, "0") != 0;
}

/* grpc.health.v1 Health/Check on the Unix socket at path, through gRPC's own
 * client: 1 SERVING, 2 NOT_SERVING, 0 another answer, -1 none (or no gRPC
 * client in this build). */
static int grpc_health(const char *path) {
#ifdef PD_TD_GRPC
  char target[600];
  snprintf(target, sizeof target, "unix:%s", path);
  grpc_init();
  grpc_channel_credentials *cred = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, cred, NULL);
  grpc_channel_credentials_release(cred);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  const gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(10000, GPR_TIMESPAN));
  grpc_slice method = grpc_slice_from_static_string("/grpc.health.v1.Health/Check");
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
  grpc_slice empty = grpc_empty_slice(); /* HealthCheckRequest{}: no bytes */
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&empty, 1);
  grpc_byte_buffer *recv = NULL;
  grpc_metadata_array md0, md1;
  grpc_metadata_array_init(&md0);
  grpc_metadata_array_init(&md1);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md0;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &md1;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  int answer = -1;
  if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK &&
      grpc_completion_queue_pluck(cq, (void *)1, deadline, NULL).type == GRPC_OP_COMPLETE) {
    answer = 0;
    if (status == GRPC_STATUS_OK && recv) {
      grpc_byte_buffer_reader rd;
      grpc_byte_buffer_reader_init(&rd, recv);
      grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
      const uint8_t *b = GRPC_SLICE_START_PTR(sl);
      /* HealthCheckResponse{status: 1 SERVING or 2 NOT_SERVING}: field 1, a varint */
      if (GRPC_SLICE_LENGTH(sl) == 2 && b[0] == 0x08 && (b[1] == 1 || b[1] == 2)) answer = b[1];
      grpc_slice_unref(sl);
      grpc_byte_buffer_reader_destroy(&rd);
    }
  }
  grpc_slice_unref(details);
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_metadata_array_destroy(&md0);
  grpc_metadata_array_destroy(&md1);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, deadline, NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(ch);
  grpc_shutdown();
  return answer;
#else
  (void)path;
  return -1;
#endif
}

/* One classify answer for id (NULL after saying why). */
static pc_client_response *classify_one(pc_client *c, uint64_t id) {
  pc_client_classify_request rq = pd_td_crop_request(&crop, id, true);
  return pd_td_classify(c, &rq);
}

/* planktond-faultinject on the CPU with run `bad` a sticky device error and
 * engine.on_device_error `action`; KServe REST and /metrics on Unix sockets. */
static bool start_device_error(pd_test_state *st, pd_td *d, const char *action, int bad,
                               const char *more) {
  char rule[96];
  snprintf(rule, sizeof rule, "PD_FAULT_INJECT=device_error=%d%s", bad, more);
  const char *env[] = {rule, NULL};
  /* KServe REST and gRPC only where the daemon has them */
  const char *args[] = {"--backend",
                        "cpu",
                        "--on-device-error",
                        action,
                        "--metrics",
                        "unix:@DIR@/metrics.sock",
                        have_kserve() ? "--http" : NULL,
                        "unix:@DIR@/kserve.sock",
                        "--grpc",
                        "unix:@DIR@/grpc.sock",
                        NULL};
  pd_td_opts o = {.binary = getenv("PLANKTOND_FAULTINJECT"), .env = env};
  const bool ok = o.binary && pd_td_start_opts(d, &o, args) == 0;
  PD_CHECK(st, ok);
  return ok;
}

static void check_ok(pd_test_state *st, const pc_client_response *r) {
  PD_CHECK(st, r && r->status == 0);
  if (r && r->status == 0)
    PD_CHECK(st, pd_td_crop_diff(&crop, &ref, r->u.classify.distribution,
                                 r->u.classify.n_distribution) <= pd_td_prob_tol());
}

/* on_device_error cpu: run 2's batch fails INTERNAL naming the error, the
 * plan is rebuilt on the CPU, and the requests sent with it and after it
 * are each answered once, right; metrics and the log say what happened. */
static void device_error_cpu(pd_test_state *st) {
  pd_td d = {0};
  /* every run takes 200 ms: what is sent during run 2 waits in the queue
   * through it and the rebuild */
  if (!start_device_error(st, &d, "cpu", 2, ",delay_ms=200")) return;
  char ks[400], ms[400], path[300];
  snprintf(ks, sizeof ks, "%s/kserve.sock", d.dir);
  snprintf(ms, sizeof ms, "%s/metrics.sock", d.dir);
  pc_client *c = pd_td_connect(&d, 16);
  PD_CHECK(st, c != NULL);
  pc_client_response *r = c ? classify_one(c, 1) : NULL; /* run 1 */
  check_ok(st, r);
  pc_client_response_free(r);
  /* id 2, then ids 3..10 while it runs: run 2 is id 2's batch (and any that
   * came in time), the rest wait for the rebuild */
  enum { FIRST = 2, LAST = 10 };
  int answers[LAST + 1] = {0}, failed = 0, got = 0;
  for (uint64_t id = FIRST; c && id <= LAST; id++) {
    pc_client_classify_request rq = pd_td_crop_request(&crop, id, true);
    PD_CHECK_INT(st, pc_client_send_classify(c, &rq, NULL), PC_CLIENT_OK);
    if (id == FIRST) usleep(50 * 1000);
  }
  const double t_end = pd_td_now_ms() + 30000 * pd_td_timeout_scale();
  while (c && got < LAST - FIRST + 1 && pd_td_now_ms() < t_end) {
    if (pc_client_wait(c, 1000, NULL) != PC_CLIENT_OK) break;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      got++;
      const uint64_t id = r->id;
      if (id >= FIRST && id <= LAST) answers[id]++;
      if (id == FIRST) PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_INTERNAL);
      if (r->status == PC_CLIENT_STATUS_INTERNAL) {
        failed++;
        PD_CHECK_CONTAINS(st, r->message, "injected sticky device error on run 2");
      } else {
        check_ok(st, r);
      }
      pc_client_response_free(r);
    }
  }
  for (int id = FIRST; id <= LAST; id++)
    PD_CHECK_INT(st, answers[id], 1);
  PD_CHECK(st, failed >= 1 && failed <= LAST - FIRST + 1);
  printf("device error on run 2: %d of %d requests failed with it, the rest answered after the "
         "rebuild\n",
         failed, LAST - FIRST + 1);
  for (uint64_t id = 11; c && id <= 13; id++) { /* after the rebuild */
    r = classify_one(c, id);
    check_ok(st, r);
    pc_client_response_free(r);
  }
  char gs[400];
  snprintf(gs, sizeof gs, "%s/grpc.sock", d.dir);
  snprintf(path, sizeof path, "/v2/models/%s/ready", ref.model->name);
  if (have_kserve()) {
    PD_CHECK_INT(st, http_status(ks, "/v2/health/ready"), 200);
    PD_CHECK_INT(st, http_status(ks, path), 200);
    const int g = grpc_health(gs);
    if (g != -1) PD_CHECK_INT(st, g, 1); /* SERVING */
  }
  pc_client_response *h = NULL;
  PD_CHECK(st, c && pc_client_health(c, &h, NULL) == PC_CLIENT_OK);
  PD_CHECK(st, h && h->u.health.state && !strcmp(h->u.health.state, "serving"));
  pc_client_response_free(h);
  char *m = pd_td_metrics(ms);
  PD_CHECK(st, m != NULL);
  PD_CHECK(st, pd_td_metric(m, "planktond_device_errors_total") == 1.0);
  PD_CHECK_CONTAINS(st, m, "planktond_backend_info{backend=\"cpu\"");
  PD_CHECK_CONTAINS(st, m, "on_device_error=\"cpu\",device_state=\"rebuilt_on_cpu\"");
  free(m);
  if (c) pc_client_close(c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "",
                    "sticky device error on backend cpu: injected sticky device error on run 2");
  PD_CHECK_CONTAINS(st, log ? log : "",
                    "engine.on_device_error cpu: rebuilding its plan on the CPU");
  PD_CHECK_CONTAINS(st, log ? log : "", "rebuilt on the CPU in ");
  free(log);
  pd_td_cleanup(&d);
}

/* on_device_error fail: run 1 fails, then every request INTERNAL naming it
 * without reaching the backend; KServe says not ready; metrics say failing. */
static void device_error_fail(pd_test_state *st) {
  pd_td d = {0};
  if (!start_device_error(st, &d, "fail", 1, "")) return;
  char ks[400], ms[400], path[300];
  snprintf(ks, sizeof ks, "%s/kserve.sock", d.dir);
  snprintf(ms, sizeof ms, "%s/metrics.sock", d.dir);
  char gs[400];
  snprintf(gs, sizeof gs, "%s/grpc.sock", d.dir);
  const bool grpc = have_kserve() && grpc_health(gs) != -1;
  if (have_kserve()) PD_CHECK_INT(st, http_status(ks, "/v2/health/ready"), 200);
  if (grpc) PD_CHECK_INT(st, grpc_health(gs), 1); /* SERVING */
  pc_client *c = pd_td_connect(&d, 1);
  PD_CHECK(st, c != NULL);
  /* after the one failed batch (fewer than the 3 in a row that make Health
   * failing by themselves), and after two more */
  snprintf(path, sizeof path, "/v2/models/%s/ready", ref.model->name);
  for (uint64_t id = 1; c && id <= 3; id++) {
    pc_client_response *r = classify_one(c, id);
    PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_INTERNAL);
    if (r) PD_CHECK_CONTAINS(st, r->message, "injected sticky device error on run 1");
    if (r && id > 1) PD_CHECK_CONTAINS(st, r->message, "model out of service since a sticky");
    pc_client_response_free(r);
    if (id == 2) continue;
    if (have_kserve()) {
      PD_CHECK_INT(st, http_status(ks, "/v2/health/ready"), 503);
      PD_CHECK_INT(st, http_status(ks, path), 503);
    }
    if (grpc) PD_CHECK_INT(st, grpc_health(gs), 2); /* NOT_SERVING */
  }
  pc_client_response *h = NULL; /* the native Health too */
  PD_CHECK(st, c && pc_client_health(c, &h, NULL) == PC_CLIENT_OK);
  PD_CHECK(st, h && h->u.health.state && !strcmp(h->u.health.state, "failing"));
  if (h) PD_CHECK_CONTAINS(st, h->message, "out of service since a sticky device error (injected");
  pc_client_response_free(h);
  char *m = pd_td_metrics(ms);
  PD_CHECK(st, m != NULL);
  PD_CHECK(st, pd_td_metric(m, "planktond_device_errors_total") == 1.0);
  PD_CHECK_CONTAINS(st, m, "on_device_error=\"fail\",device_state=\"failing\"");
  free(m);
  if (c) pc_client_close(c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", "engine.on_device_error fail: out of service");
  free(log);
  pd_td_cleanup(&d);
}

/* Starts the daemon with args (NULL-terminated, --metrics added); its log
 * must hold want_log and /metrics want_metric. */
static void settings_shown(pd_test_state *st, const char *const *args, const char *want_log,
                           const char *want_metric) {
  const char *all[16];
  int n = 0;
  for (; n < 12 && args[n]; n++)
    all[n] = args[n];
  all[n++] = "--metrics";
  all[n++] = "unix:@DIR@/metrics.sock";
  all[n] = NULL;
  pd_td d = {0};
  PD_CHECK_INT(st, pd_td_start(&d, all), 0);
  char ms[400];
  snprintf(ms, sizeof ms, "%s/metrics.sock", d.dir);
  char *m = d.pid > 0 ? pd_td_metrics(ms) : NULL;
  PD_CHECK(st, m != NULL);
  PD_CHECK_CONTAINS(st, m ? m : "", want_metric);
  free(m);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, 30), 0);
  char *log = pd_td_log(&d);
  PD_CHECK_CONTAINS(st, log ? log : "", want_log);
  free(log);
  pd_td_cleanup(&d);
}

static void cuda_settings_shown(pd_test_state *st) {
  settings_shown(st, (const char *const[]){"--backend", "cpu", NULL},
                 "CUDA graphs off, workspace 256 MiB, no algorithm cache (unused); on device error "
                 "cpu;",
                 "cuda=\"graphs off, workspace 256 MiB, no algorithm cache\"} 1");
  const char *flags[] = {"--backend",
                         "cpu",
                         "--cuda-graphs",
                         "true",
                         "--cuda-workspace-mb",
                         "64",
                         "--on-device-error",
                         "fail",
                         "--cuda-algo-cache",
                         "/var/cache/pd-algo",
                         NULL};
  settings_shown(
      st, flags,
      "CUDA graphs on, workspace 64 MiB, algorithm cache /var/cache/pd-algo (unused); on "
      "device error fail;",
      "on_device_error=\"fail\",device_state=\"ok\",cuda=\"graphs on, workspace 64 "
      "MiB, algorithm cache /var/cache/pd-algo\"} 1");
  char cfg[400];
  snprintf(cfg, sizeof cfg, "%s/engine.yaml", scratch);
  FILE *f = fopen(cfg, "w");
  PD_CHECK(st, f != NULL);
  if (!f) return;
  fprintf(f,
          "model: {dir: %s}\n"
          "engine: {backend: cpu, cuda_graphs: true, cuda_workspace_mb: 2048, "
          "cuda_algo_cache_dir: /tmp/algo}\n",
          pd_td_model_dir());
  PD_CHECK(st, fclose(f) == 0);
  settings_shown(st, (const char *const[]){"--config", cfg, NULL},
                 "CUDA graphs on, workspace 2048 MiB, algorithm cache /tmp/algo (unused)",
                 "cuda=\"graphs on, workspace 2048 MiB, algorithm cache /tmp/algo\"} 1");
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (!mkdtemp(scratch)) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  return pd_td_crops_make(&crop, 1, &ref, 7, 60, 1, 50, 1) != 0 ? 1 : 0;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void teardown(void) {
  pd_td_crops_free(&crop, 1);
  pd_td_ref_close(&ref);
  if (nftw(scratch, remove_one, 8, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "cannot remove %s\n", scratch);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(module_missing),      PD_TEST_CASE(module_no_device),
    PD_TEST_CASE(module_unloadable),   PD_TEST_CASE(module_other_abi),
    PD_TEST_CASE(plan_faults),         PD_TEST_CASE(links_no_cuda),
    PD_TEST_CASE(device_error_cpu),    PD_TEST_CASE(device_error_fail),
    PD_TEST_CASE(cuda_settings_shown),
};

int main(int argc, char **argv) {
  return pd_test_cases_main(
      argc, argv, &(pd_test_suite){"daemon_backend", setup, teardown, k_cases, PD_TEST_N(k_cases)});
}
