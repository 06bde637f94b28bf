/* The KServe REST front end: /v2/... handlers (and /metrics) on a pd_http
 * server behind the pd_frontend ops, answering from the daemon's pipeline,
 * model and stats; inference requests are converted by pd_kserve_rest and
 * checked by pd_kserve_infer as the gRPC ones are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pd_http.h"
#include "pd_http_metrics.h"
#include "pd_kserve.h"
#include "pd_kserve_frame.h"
#include "pd_kserve_infer.h"
#include "pd_kserve_job.h"
#include "pd_kserve_rest.h"
#include "pd_listener.h"

/* as the native Health and the gRPC front end */
#define KSERVE_FAILING_RUNS 3

typedef struct khttp_fe {
  pd_frontend fe; /* first */
  pd_frontend_env env;
  char address[PD_ADDR_LEN]; /* kserve.http_listen (restart-only) */
  pd_http *http;
  pd_http_limits lim;
  pd_http_metrics_source metrics;
  long max_crops, max_queue_delay_us;
  bool draining;
  bool local;      /* every listener reaches this host only (pd_listener_address_local) */
  bool control_on; /* model.control, and local */
} khttp_fe;

/* One POST .../infer in the pipeline: N crops (job) or, for a frames
 * model, one frame (frame). */
typedef struct khttp_job {
  pd_kjob job;
  bool is_frame;
  pd_frame_job frame;
  pd_kframe_request kf;
  char frames_name[80]; /* the name it answers as ("M.frames") */
  khttp_fe *k;
  pd_http_request *hr;
  pd_krest_request rest; /* points into the HTTP body, alive until the answer */
} khttp_job;

static const char k_json[] = "Content-Type: application/json\r\n";

static void respond_json(pd_http_request *r, int status, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) {
    pd_http_respond_text(r, 500, "out of memory\n", true);
    return;
  }
  /* json_dumps' buffer comes from jansson's allocator, which is malloc */
  pd_http_respond(r, status, k_json, s, strlen(s), false);
}

static void respond_error(pd_http_request *r, int grpc_code, const char *message) {
  size_t len;
  char *body = pd_krest_error_json(message, &len);
  if (!body) {
    pd_http_respond_text(r, 500, "out of memory\n", true);
    return;
  }
  pd_http_respond(r, pd_krest_http_status(grpc_code), k_json, body, len, false);
}

static pd_served *model_now(const khttp_fe *k) {
  return pd_pipeline_model(k->env.pipeline);
}

/* Not while a sticky device error has the model out of service (pd_served.h). */
static bool serving(const pd_served *s) {
  return s && pd_served_device_state(s) != PD_DEVICE_FAILING;
}

static bool ready(const khttp_fe *k) {
  if (!serving(model_now(k))) return false;
  pd_stats_report r;
  pd_stats_report_fill(k->env.stats, pd_now_ns(), &r);
  if (k->env.report) k->env.report(k->env.report_ctx, &r); /* r.draining: a SIGTERM's grace */
  return !k->draining && !r.draining && model_now(k) &&
         r.batch_failures_in_a_row < KSERVE_FAILING_RUNS;
}

/* ---- /v2, /v2/health/... ---- */

/* An inference answer (body of len bytes, taken over): JSON, or with
 * binary outputs the JSON header of jlen bytes and the tensors after it. */
static void respond_answer(pd_http_request *hr, int rc, bool binary, char *body, size_t len,
                           size_t jlen) {
  if (rc != 0) {
    respond_error(hr, rc, "out of memory for the answer");
  } else if (binary) {
    char headers[160];
    snprintf(headers, sizeof headers,
             "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n",
             jlen);
    pd_http_respond(hr, 200, headers, body, len, false);
  } else {
    pd_http_respond(hr, 200, k_json, body, len, false);
  }
}

static void on_server_metadata(pd_http_request *r, void *data) {
  json_t *o = json_object(), *ext = json_array();
  json_object_set_new(o, "name", json_string("planktond"));
  json_object_set_new(o, "version", json_string(PD_VERSION));
  const khttp_fe *k = data;
  const char *const names[] = {"classification", "model_configuration", "statistics",
                               "binary_tensor_data", "model_repository"};
  /* model_repository (load and unload) only where model control is on */
  for (size_t i = 0; i < sizeof names / sizeof names[0] - (k->control_on ? 0 : 1); i++)
    json_array_append_new(ext, json_string(names[i]));
  json_object_set_new(o, "extensions", ext);
  respond_json(r, 200, o);
}

static void on_live(pd_http_request *r, void *data) {
  (void)data;
  pd_http_respond(r, 200, NULL, NULL, 0, false);
}

static void on_ready(pd_http_request *r, void *data) {
  pd_http_respond(r, ready(data) ? 200 : 503, NULL, NULL, 0, false);
}

/* ---- /v2/models/... ---- */

static json_t *tensor_meta(const char *name, const char *datatype, long d0, long d1) {
  json_t *t = json_object(), *shape = json_array();
  json_object_set_new(t, "name", json_string(name));
  json_object_set_new(t, "datatype", json_string(datatype));
  json_array_append_new(shape, json_integer(d0));
  json_array_append_new(shape, json_integer(d1));
  json_object_set_new(t, "shape", shape);
  return t;
}

static void model_metadata(khttp_fe *k, pd_http_request *r, const pd_served *s) {
  (void)k;
  json_t *o = json_object(), *v = json_array(), *ins = json_array(), *outs = json_array();
  json_object_set_new(o, "name", json_string(s->model->name));
  json_array_append_new(v, json_string(s->model->version));
  json_object_set_new(o, "versions", v);
  json_object_set_new(o, "platform", json_string("planktond"));
  json_array_append_new(ins, tensor_meta(PD_KINFER_INPUT, "BYTES", -1, 1));
  json_array_append_new(outs, tensor_meta(PD_KINFER_OUTPUT, "FP32", -1, s->model->n_classes));
  json_object_set_new(o, "inputs", ins);
  json_object_set_new(o, "outputs", outs);
  respond_json(r, 200, o);
}

static void model_config(khttp_fe *k, pd_http_request *r, const pd_served *s) {
  json_t *o = json_object(), *in = json_object(), *out = json_object(), *db = json_object(),
         *ig = json_object();
  json_object_set_new(o, "name", json_string(s->model->name));
  json_object_set_new(o, "platform", json_string("planktond"));
  json_object_set_new(o, "backend", json_string(pd_served_backend_now(s)));
  json_object_set_new(o, "max_batch_size",
                      json_integer(s->own_max_batch ? s->max_batch : k->max_crops));
  json_object_set_new(in, "name", json_string(PD_KINFER_INPUT));
  json_object_set_new(in, "data_type", json_string("TYPE_STRING"));
  json_object_set_new(in, "dims", json_pack("[i]", 1));
  json_object_set_new(out, "name", json_string(PD_KINFER_OUTPUT));
  json_object_set_new(out, "data_type", json_string("TYPE_FP32"));
  json_object_set_new(out, "dims", json_pack("[i]", s->model->n_classes));
  json_object_set_new(o, "input", json_pack("[o]", in));
  json_object_set_new(o, "output", json_pack("[o]", out));
  json_object_set_new(db, "max_queue_delay_microseconds",
                      json_integer(s->own_max_queue_delay
                                       ? (json_int_t)(s->max_queue_delay_ns / 1000)
                                       : k->max_queue_delay_us));
  json_object_set_new(o, "dynamic_batching", db);
  /* the model's thresholds and lineage (models/FORMAT.md): parameters, JSON label -> value */
  const pd_model *m = s->model;
  char *maps[2] = {m->thresholds ? pd_kinfer_json_map(m->n_classes, (const char *const *)m->classes,
                                                      m->thresholds, NULL)
                                 : NULL,
                   m->lineage ? pd_kinfer_json_map(m->n_classes, (const char *const *)m->classes,
                                                   NULL, (const char *const *)m->lineage)
                              : NULL};
  if (maps[0] || maps[1]) {
    json_t *params = json_object();
    if (maps[0])
      json_object_set_new(params, "thresholds", json_pack("{s:s}", "string_value", maps[0]));
    if (maps[1])
      json_object_set_new(params, "lineage", json_pack("{s:s}", "string_value", maps[1]));
    json_object_set_new(o, "parameters", params);
  }
  free(maps[0]);
  free(maps[1]);
  json_object_set_new(ig, "name", json_string(pd_served_backend_now(s)));
  json_object_set_new(ig, "count", json_integer(1));
  json_object_set_new(
      ig, "kind",
      json_string(strcmp(pd_served_backend_now(s), "cuda") == 0 ? "KIND_GPU" : "KIND_CPU"));
  json_object_set_new(o, "instance_group", json_pack("[o]", ig));
  respond_json(r, 200, o);
}

static json_t *duration(uint64_t count, double sum_us) {
  return json_pack("{s:I,s:I}", "count", (json_int_t)count, "ns", (json_int_t)(sum_us * 1000.0));
}

/* The same numbers as the gRPC ModelStatistics (and /metrics). */
static void model_stats(khttp_fe *k, pd_http_request *r, const pd_served *s) {
  pd_stats_report rep;
  pd_stats_report_fill(k->env.stats, pd_now_ns(), &rep);
  if (k->env.report) k->env.report(k->env.report_ctx, &rep);
  uint64_t fails = 0;
  for (int i = 1; i < PD_STATUS_COUNT; i++)
    fails += rep.requests[i];
  const pd_hist_report *hq = &rep.hist[PD_HIST_QUEUE], *hd = &rep.hist[PD_HIST_DECODE],
                       *hc = &rep.hist[PD_HIST_COMPUTE], *hr = &rep.hist[PD_HIST_REQUEST],
                       *hb = &rep.hist[PD_HIST_BATCH];
  json_t *is = json_object();
  json_object_set_new(is, "success", duration(rep.requests[PD_STATUS_OK], hr->sum));
  json_object_set_new(is, "fail", duration(fails, 0));
  /* per request, as Triton counts them (perf_analyzer wants the three
   * compute counts equal): the requests answered OK, each batch's compute
   * time shared out among its requests, no separate output stage */
  uint64_t n_ok = hd->count;
  json_object_set_new(is, "queue", duration(n_ok, hq->sum));
  json_object_set_new(is, "compute_input", duration(n_ok, hd->sum));
  json_object_set_new(is, "compute_infer", duration(n_ok, hc->sum));
  json_object_set_new(is, "compute_output", duration(n_ok, 0));
  json_t *bs = json_array();
  uint64_t below = 0;
  for (int i = 0; i < hb->n_bounds; i++) {
    uint64_t in_bucket = hb->cumulative[i] - below;
    below = hb->cumulative[i];
    if (!in_bucket) continue;
    json_array_append_new(bs, json_pack("{s:I,s:o}", "batch_size", (json_int_t)hb->bounds[i],
                                        "compute_infer", duration(in_bucket, 0)));
  }
  json_t *ms = json_object();
  json_object_set_new(ms, "name", json_string(s->model->name));
  json_object_set_new(ms, "version", json_string(s->model->version));
  json_object_set_new(ms, "last_inference", json_integer(0));
  json_object_set_new(ms, "inference_count", json_integer((json_int_t)rep.requests[PD_STATUS_OK]));
  json_object_set_new(ms, "execution_count", json_integer((json_int_t)rep.batches));
  json_object_set_new(ms, "inference_stats", is);
  json_object_set_new(ms, "batch_stats", bs);
  respond_json(r, 200, json_pack("{s:[o]}", "model_stats", ms));
}

static void infer_done(pd_kjob *job) {
  khttp_job *j = job->owner;
  pd_http_request_on_gone(j->hr, NULL, NULL);
  if (job->status != 0) {
    respond_error(j->hr, job->status, job->message);
  } else {
    const pd_model *m = job->served->model;
    int binary = j->rest.binary_output || job->kr.probs_binary;
    char *body = NULL;
    size_t len = 0, jlen = 0;
    job->kr.thresholds = m->thresholds;
    int rc =
        pd_krest_response(&job->kr, binary, m->name, m->version, j->rest.req.id, job->n_classes,
                          job->probs, (const char *const *)m->classes, &body, &len, &jlen);
    respond_answer(j->hr, rc, binary, body, len, jlen);
  }
  pd_kjob_dispose(job);
  pd_krest_request_free(&j->rest);
  free(j);
}

/* The client closed its connection: its crops not computed yet are dropped. */
static void infer_gone(pd_http_request *r, void *data) {
  (void)r;
  khttp_job *j = data;
  if (j->is_frame)
    pd_frame_job_cancel(&j->frame);
  else
    pd_kjob_cancel(&j->job);
}

static void frame_infer(khttp_fe *k, pd_http_request *r, khttp_job *j, const pd_served *s,
                        const char *key);

/* frames: the request is for the model's frames variant */
static void model_infer(khttp_fe *k, pd_http_request *r, const pd_served *s, const char *name,
                        bool frames) {
  if (k->draining) {
    respond_error(r, PD_STATUS_UNAVAILABLE,
                  "draining: the daemon is shutting down; send it to another server");
    return;
  }
  long long hl = -1;
  const char *h = pd_http_request_header(r, "Inference-Header-Content-Length");
  if (h) {
    char *end;
    hl = strtoll(h, &end, 10);
    if (end == h || *end || hl < 0) {
      respond_error(r, PD_STATUS_INVALID_ARGUMENT,
                    "Inference-Header-Content-Length must be a whole number of bytes");
      return;
    }
  }
  khttp_job *j = calloc(1, sizeof *j);
  if (!j) {
    respond_error(r, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t len;
  const uint8_t *body = pd_http_request_body(r, &len);
  char why[400];
  int rc = pd_krest_parse(body, len, hl, &j->rest, why, sizeof why);
  if (rc == 0 && frames) {
    frame_infer(k, r, j, s, name);
    return;
  }
  if (rc == 0) {
    j->rest.req.model_name = (char *)name;
    rc = pd_kinfer_parse(&j->rest.req, (int)k->max_crops, s->model->n_classes, &j->job.kr, why,
                         sizeof why);
  }
  if (rc != 0) {
    respond_error(r, rc, why);
    pd_kinfer_request_free(&j->job.kr);
    pd_krest_request_free(&j->rest);
    free(j);
    return;
  }
  j->k = k;
  j->hr = r;
  j->job.done = infer_done;
  j->job.owner = j;
  /* one fair share per connection, as the native front end's */
  j->job.client = PD_KJOB_CLIENT_REST | pd_http_request_conn(r);
  uint64_t deadline = j->job.kr.timeout_us ? pd_now_ns() + j->job.kr.timeout_us * 1000u : 0;
  pd_http_request_on_gone(r, infer_gone, j);
  pd_kjob_submit(&j->job, k->env.pipeline, name, deadline);
}

/* ---- frames ("M.frames": one frame per request, pd_frame_job) ---- */

static void frames_metadata(pd_http_request *r, const pd_served *s) {
  json_t *o = json_object(), *v = json_array(), *ins = json_array(), *outs = json_array();
  char name[80];
  snprintf(name, sizeof name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  json_object_set_new(o, "name", json_string(name));
  json_array_append_new(v, json_string(s->model->version));
  json_object_set_new(o, "versions", v);
  json_object_set_new(o, "platform", json_string("planktond"));
  json_array_append_new(
      ins, json_pack("{s:s,s:s,s:[i]}", "name", PD_KFRAME_INPUT, "datatype", "BYTES", "shape", 1));
  json_array_append_new(ins, json_pack("{s:s,s:s,s:[i]}", "name", PD_KFRAME_BACKGROUND, "datatype",
                                       "BYTES", "shape", 1));
  json_array_append_new(outs, tensor_meta(PD_KFRAME_BOXES, "INT32", -1, 4));
  json_array_append_new(outs, json_pack("{s:s,s:s,s:[i]}", "name", PD_KFRAME_AREAS, "datatype",
                                        "INT32", "shape", -1));
  json_array_append_new(outs, tensor_meta(PD_KFRAME_PROBS, "FP32", -1, s->model->n_classes));
  json_object_set_new(o, "inputs", ins);
  json_object_set_new(o, "outputs", outs);
  respond_json(r, 200, o);
}

static void frames_config(pd_http_request *r, const pd_served *s) {
  json_t *o = json_object(), *ig = json_object();
  char name[80];
  snprintf(name, sizeof name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "platform", json_string("planktond"));
  json_object_set_new(o, "backend", json_string(pd_served_backend_now(s)));
  json_object_set_new(o, "max_batch_size", json_integer(0));
  json_object_set_new(o, "input",
                      json_pack("[{s:s,s:s,s:[i]},{s:s,s:s,s:[i],s:b}]", "name", PD_KFRAME_INPUT,
                                "data_type", "TYPE_STRING", "dims", 1, "name", PD_KFRAME_BACKGROUND,
                                "data_type", "TYPE_STRING", "dims", 1, "optional", 1));
  json_object_set_new(o, "output",
                      json_pack("[{s:s,s:s,s:[i,i]},{s:s,s:s,s:[i]},{s:s,s:s,s:[i,i]}]", "name",
                                PD_KFRAME_BOXES, "data_type", "TYPE_INT32", "dims", -1, 4, "name",
                                PD_KFRAME_AREAS, "data_type", "TYPE_INT32", "dims", -1, "name",
                                PD_KFRAME_PROBS, "data_type", "TYPE_FP32", "dims", -1,
                                s->model->n_classes));
  json_object_set_new(ig, "name", json_string(pd_served_backend_now(s)));
  json_object_set_new(ig, "count", json_integer(1));
  json_object_set_new(
      ig, "kind",
      json_string(strcmp(pd_served_backend_now(s), "cuda") == 0 ? "KIND_GPU" : "KIND_CPU"));
  json_object_set_new(o, "instance_group", json_pack("[o]", ig));
  respond_json(r, 200, o);
}

static void frame_done(pd_frame_job *fj) {
  khttp_job *j = fj->owner;
  pd_http_request_on_gone(j->hr, NULL, NULL);
  const int bad = fj->status == PD_STATUS_OK ? pd_kframe_failed_object(fj) : -1;
  if (fj->status != PD_STATUS_OK) {
    respond_error(j->hr, fj->status, fj->message);
  } else if (bad >= 0) {
    char m[400];
    snprintf(m, sizeof m, "object %d: %s", bad, fj->objects[bad].message);
    respond_error(j->hr, fj->objects[bad].status ? (int)fj->objects[bad].status : 13, m);
  } else {
    const pd_model *m = fj->served->model;
    char *body = NULL;
    size_t len = 0, jlen = 0;
    int rc = pd_kframe_rest_response(&j->kf, fj, j->rest.binary_output, j->frames_name, m->version,
                                     j->rest.req.id, m->n_classes, (const char *const *)m->classes,
                                     &body, &len, &jlen);
    respond_answer(j->hr, rc, jlen != 0, body, len, jlen);
  }
  pd_frame_job_dispose(fj);
  pd_kframe_request_free(&j->kf);
  pd_krest_request_free(&j->rest);
  free(j);
}

/* j->rest parsed: the frame on the core. */
static void frame_infer(khttp_fe *k, pd_http_request *r, khttp_job *j, const pd_served *s,
                        const char *key) {
  char why[400];
  int rc = pd_kframe_parse(&j->rest.req, s->model->n_classes, &j->kf, &j->frame, why, sizeof why);
  if (rc != 0) {
    respond_error(r, rc, why);
    pd_kframe_request_free(&j->kf);
    pd_krest_request_free(&j->rest);
    free(j);
    return;
  }
  j->is_frame = true;
  j->k = k;
  j->hr = r;
  snprintf(j->frames_name, sizeof j->frames_name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  pd_frame_job *fj = &j->frame;
  snprintf(fj->model, sizeof fj->model, "%s", key);
  fj->t_recv_ns = pd_now_ns();
  fj->deadline_ns = j->kf.timeout_us ? fj->t_recv_ns + j->kf.timeout_us * 1000u : 0;
  fj->client = PD_KJOB_CLIENT_REST | pd_http_request_conn(r);
  fj->done = frame_done;
  fj->owner = j;
  pd_http_request_on_gone(r, infer_gone, j);
  pd_frame_job_submit(k->env.pipeline, fj);
}

/* ---- /v2/repository/... (Triton's model repository extension) ---- */

typedef struct khttp_control {
  pd_model_control mc;
  pd_http_request *hr;
} khttp_control;

static void control_done(pd_model_control *mc) {
  khttp_control *c = mc->owner;
  if (mc->status != PD_STATUS_OK)
    respond_error(c->hr, mc->status, mc->message);
  else
    pd_http_respond(c->hr, 200, NULL, NULL, 0, false);
  free(c);
}

/* POST /v2/repository/index: every model version, its state and reason. */
static void repository_index(khttp_fe *k, pd_http_request *r) {
  size_t len = 0;
  const uint8_t *body = pd_http_request_body(r, &len);
  json_error_t jerr;
  json_t *in = len ? json_loadb((const char *)body, len, 0, &jerr) : NULL;
  const bool only_ready = in && json_is_true(json_object_get(in, "ready"));
  json_decref(in);
  const pd_repo *repo = pd_pipeline_repo(k->env.pipeline);
  json_t *a = json_array();
  for (int i = 0; repo && i < repo->n; i++) {
    const pd_repo_entry *e = &repo->e[i];
    const bool up = serving(e->served) && ready(k);
    if (only_ready && !up) continue;
    for (int f = 0; f < 2; f++) { /* the model, then its frames variant */
      char name[80];
      snprintf(name, sizeof name, "%s%s", e->name, f ? PD_KFRAME_SUFFIX : "");
      json_t *o = json_object();
      json_object_set_new(o, "name", json_string(name));
      json_object_set_new(o, "version", json_string(e->version));
      json_object_set_new(o, "state", json_string(up ? "READY" : "UNAVAILABLE"));
      json_object_set_new(o, "reason", json_string(e->error));
      json_array_append_new(a, o);
    }
  }
  respond_json(r, 200, a);
}

/* POST /v2/repository/models/{m}/load (a loaded one is reloaded, as in
 * Triton) and /unload, by the daemon (pd_model_control.h); a load's
 * parameters (Triton's "config", "file:...") are refused. */
static void repository_control(khttp_fe *k, pd_http_request *r, const char *name, bool load) {
  size_t len = 0;
  const uint8_t *body = pd_http_request_body(r, &len);
  json_error_t jerr;
  json_t *in = len ? json_loadb((const char *)body, len, 0, &jerr) : NULL;
  if (len && !in) {
    char why[300];
    snprintf(why, sizeof why, "the request body is not JSON: %s", jerr.text);
    respond_error(r, PD_STATUS_INVALID_ARGUMENT, why);
    return;
  }
  json_t *params = in ? json_object_get(in, "parameters") : NULL;
  if (load && json_is_object(params) && json_object_size(params) > 0) {
    char why[200];
    snprintf(why, sizeof why,
             "load parameter '%.60s' is not supported: the model loads from its repository "
             "folder as it is",
             json_object_iter_key(json_object_iter(params)));
    json_decref(in);
    respond_error(r, PD_STATUS_INVALID_ARGUMENT, why);
    return;
  }
  json_decref(in);
  khttp_control *c = k->env.control && !k->draining ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    respond_error(r, k->draining ? PD_STATUS_UNAVAILABLE : PD_STATUS_UNIMPLEMENTED,
                  k->draining ? "draining: the daemon is shutting down"
                              : "model control is not available here");
    return;
  }
  c->hr = r;
  pd_model_control *mc = &c->mc;
  mc->op = load ? PD_REPO_LOAD : PD_REPO_UNLOAD;
  mc->load_or_reload = load;
  snprintf(mc->name, sizeof mc->name, "%s", name);
  mc->via = load ? "KServe REST load" : "KServe REST unload";
  mc->peer_uid = -1;
  mc->loopback = k->local;
  snprintf(mc->peer, sizeof mc->peer, "a client of %.80s", pd_http_name(k->http));
  mc->done = control_done;
  mc->owner = c;
  k->env.control(k->env.control_ctx, mc);
}

static void on_repository(pd_http_request *r, void *data) {
  khttp_fe *k = data;
  const char *path = pd_http_request_path(r) + strlen("/v2/repository/");
  if (strcmp(pd_http_request_method(r), "POST") != 0) {
    pd_http_respond(r, 405, "Content-Type: application/json\r\nAllow: POST\r\n",
                    strdup("{\"error\":\"/v2/repository/... takes POST\"}"),
                    strlen("{\"error\":\"/v2/repository/... takes POST\"}"), false);
    return;
  }
  if (!strcmp(path, "index")) {
    repository_index(k, r);
    return;
  }
  const char *slash = !strncmp(path, "models/", 7) ? strchr(path + 7, '/') : NULL;
  char name[128] = "";
  if (slash && (size_t)(slash - (path + 7)) < sizeof name)
    memcpy(name, path + 7, (size_t)(slash - (path + 7)));
  if (!name[0] || (strcmp(slash, "/load") != 0 && strcmp(slash, "/unload") != 0)) {
    char why[300];
    snprintf(why, sizeof why,
             "no such route '/v2/repository/%.120s': index, models/NAME/load, models/NAME/unload",
             path);
    respond_error(r, PD_STATUS_NOT_FOUND, why);
    return;
  }
  repository_control(k, r, name, !strcmp(slash, "/load"));
}

/* /v2/models/{m}[/versions/{v}][/ready|/config|/stats|/infer], and
 * /v2/models/stats (every model's). */
static void on_models(pd_http_request *r, void *data) {
  khttp_fe *k = data;
  const char *path = pd_http_request_path(r) + strlen("/v2/models/");
  char seg[4][128];
  int n = 0;
  while (*path && n < 4) {
    const char *slash = strchr(path, '/');
    size_t l = slash ? (size_t)(slash - path) : strlen(path);
    if (l == 0 || l >= sizeof seg[0]) break;
    memcpy(seg[n], path, l);
    seg[n][l] = 0;
    n++;
    path += l;
    if (*path == '/') path++;
  }
  if (*path || n == 0) {
    respond_error(r, PD_STATUS_NOT_FOUND, "no such path: see /v2/models/{model}[/versions/{v}]");
    return;
  }
  const char *model = seg[0], *version = "", *what = "";
  int i = 1;
  if (n == 1 && strcmp(model, "stats") == 0) {
    model = "";
    what = "stats";
  } else {
    if (i < n && strcmp(seg[i], "versions") == 0) {
      if (i + 1 >= n) {
        respond_error(r, PD_STATUS_NOT_FOUND, "no version after /versions/");
        return;
      }
      version = seg[i + 1];
      i += 2;
    }
    if (i < n) what = seg[i++];
    if (i < n) {
      respond_error(r, PD_STATUS_NOT_FOUND, "no such path below the model");
      return;
    }
  }
  const char *method = pd_http_request_method(r);
  bool post = strcmp(method, "POST") == 0;
  bool is_infer = strcmp(what, "infer") == 0;
  if (is_infer != post && !(strcmp(method, "HEAD") == 0 && !is_infer)) {
    char m[120];
    snprintf(m, sizeof m, "%s is %s only", is_infer ? "infer" : "this path",
             is_infer ? "POST" : "GET or HEAD");
    size_t len;
    char *body = pd_krest_error_json(m, &len);
    pd_http_respond(r, 405,
                    is_infer ? "Content-Type: application/json\r\nAllow: POST\r\n"
                             : "Content-Type: application/json\r\nAllow: GET, HEAD\r\n",
                    body, len, false);
    return;
  }
  char key[64], m[400], base[64];
  pd_status code;
  const bool frames = pd_kframe_base_name(model, base, sizeof base);
  pd_served *s =
      pd_kjob_model(k->env.pipeline, frames ? base : model, version, key, &code, m, sizeof m);
  if (!s && frames) pd_kframe_not_found(model, base, m, sizeof m);
  if (!s) {
    if (strcmp(what, "ready") == 0 && code == PD_STATUS_UNAVAILABLE)
      pd_http_respond(r, 503, NULL, NULL, 0, false); /* there, not loaded */
    else
      respond_error(r, code, m);
    return;
  }
  if (!*what && frames)
    frames_metadata(r, s);
  else if (!*what)
    model_metadata(k, r, s);
  else if (strcmp(what, "ready") == 0)
    pd_http_respond(r, ready(k) && serving(s) ? 200 : 503, NULL, NULL, 0, false);
  else if (strcmp(what, "config") == 0 && frames)
    frames_config(r, s);
  else if (strcmp(what, "config") == 0)
    model_config(k, r, s);
  else if (strcmp(what, "stats") == 0)
    model_stats(k, r, s);
  else if (is_infer)
    model_infer(k, r, s, key, frames);
  else
    respond_error(r, PD_STATUS_NOT_FOUND, "no such path: ready, config, stats or infer");
}

/* ---- the pd_frontend ops ---- */

static pd_http_limits khttp_limits(const pd_config *c) {
  pd_http_limits l = {.max_connections = (int)c->max_connections,
                      .request_timeout_ms = (uint64_t)c->frame_timeout_ms,
                      .idle_timeout_ms = (uint64_t)c->idle_timeout_s * 1000,
                      .max_body = (size_t)c->max_frame_bytes};
  return l;
}

static void fill_metrics(void *ctx, pd_stats_report *r) {
  const khttp_fe *k = ctx;
  pd_stats_report_fill(k->env.stats, pd_now_ns(), r);
  if (k->env.report) k->env.report(k->env.report_ctx, r);
}

static int khttp_listen(pd_frontend *fe, const int *fds, int n_fds, bool activated, pd_error *err) {
  khttp_fe *k = (khttp_fe *)fe;
  (void)activated;
  if (n_fds == 0 && !k->address[0]) return PD_OK; /* off */
  int rc = pd_http_create(k->env.loop, "kserve-http", "kserve", &k->lim, k->env.log, &k->http, err);
  if (rc == PD_OK) rc = pd_http_route(k->http, "GET", "/v2", on_server_metadata, k, err);
  if (rc == PD_OK) rc = pd_http_route(k->http, "GET", "/v2/health/live", on_live, k, err);
  if (rc == PD_OK) rc = pd_http_route(k->http, "GET", "/v2/health/ready", on_ready, k, err);
  if (rc == PD_OK) rc = pd_http_route(k->http, NULL, "/v2/models/*", on_models, k, err);
  if (rc == PD_OK) rc = pd_http_route(k->http, NULL, "/v2/repository/*", on_repository, k, err);
  if (rc == PD_OK) rc = pd_http_metrics_route(k->http, "/metrics", &k->metrics, err);
  for (int i = 0; i < n_fds && rc == PD_OK; i++)
    rc = pd_http_listen(k->http, "", fds[i], err);
  if (rc == PD_OK && n_fds == 0) rc = pd_http_listen(k->http, k->address, -1, err);
  k->local = n_fds > 0 || pd_listener_address_local(k->address);
  for (int i = 0; i < n_fds; i++)
    k->local = k->local && pd_listener_fd_local(fds[i]);
  k->control_on = k->control_on && k->local;
  if (rc != PD_OK) return pd_error_prefix(err, "kserve.http_listen");
  pd_logf(k->env.log, PD_LOG_INFO, "KServe REST listening on http %s /v2", pd_http_name(k->http));
  return PD_OK;
}

static void khttp_set_limits(pd_frontend *fe, const pd_config *cfg) {
  khttp_fe *k = (khttp_fe *)fe;
  k->lim = khttp_limits(cfg);
  k->max_crops = cfg->max_batch;
  k->max_queue_delay_us = cfg->max_queue_delay_us;
  k->control_on = cfg->model_control && (k->local || !k->http); /* listen ANDs local in */
  if (k->http) pd_http_set_limits(k->http, &k->lim);
}

static void khttp_drain(pd_frontend *fe, void (*on_empty)(void *), void *data) {
  khttp_fe *k = (khttp_fe *)fe;
  k->draining = true;
  if (k->http)
    pd_http_drain(k->http, on_empty, data);
  else
    on_empty(data);
}

static int khttp_busy(const pd_frontend *fe) {
  const khttp_fe *k = (const khttp_fe *)fe;
  return k->http ? pd_http_pending(k->http) : 0;
}

static void khttp_close_all(pd_frontend *fe) {
  khttp_fe *k = (khttp_fe *)fe;
  if (k->http) pd_http_close_all(k->http);
}

static void khttp_close(pd_frontend *fe) {
  khttp_fe *k = (khttp_fe *)fe;
  pd_http_close(k->http); /* NULL: nothing to close; it frees once every request is answered */
  free(k);
}

static const pd_frontend_ops khttp_ops = {
    .name = "kserve-http",
    .fd_name = "kserve-http",
    .listen = khttp_listen,
    .set_limits = khttp_set_limits,
    .report = NULL,
    .drain = khttp_drain,
    .busy = khttp_busy,
    .close_all = khttp_close_all,
    .close = khttp_close,
};

int pd_frontend_kserve_http_create(const pd_frontend_env *env, const pd_config *cfg,
                                   pd_frontend **out, pd_error *err) {
  khttp_fe *k = calloc(1, sizeof *k);
  if (!k) return pd_error_set(err, PD_ENOMEM, "kserve REST: out of memory");
  k->fe.ops = &khttp_ops;
  k->env = *env;
  k->metrics.fill = fill_metrics;
  k->metrics.ctx = k;
  snprintf(k->address, sizeof k->address, "%s", cfg->kserve_http);
  khttp_set_limits(&k->fe, cfg);
  *out = &k->fe;
  return PD_OK;
}
