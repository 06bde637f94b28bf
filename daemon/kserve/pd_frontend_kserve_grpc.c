/* The KServe gRPC front end: pd_kserve_grpc (the transport) behind the
 * pd_frontend ops, answering inference.GRPCInferenceService and
 * grpc.health.v1.Health from the daemon's pipeline, model and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "health.pb-c.h"
#include "model_config.pb-c.h"
#include "pd_kserve.h"
#include "pd_kserve_frame.h"
#include "pd_kserve_grpc.h"
#include "pd_kserve_infer.h"
#include "pd_kserve_job.h"
#include "pd_listener.h"

/* Health says NOT_SERVING after this many failed network runs in a row,
 * as the native Health does. */
#define KSERVE_FAILING_RUNS 3

enum {
  M_SERVER_LIVE,
  M_SERVER_READY,
  M_MODEL_READY,
  M_SERVER_METADATA,
  M_MODEL_METADATA,
  M_MODEL_INFER,
  M_MODEL_STREAM_INFER,
  M_MODEL_CONFIG,
  M_MODEL_STATISTICS,
  M_REPOSITORY_INDEX,
  M_REPOSITORY_MODEL_LOAD,
  M_REPOSITORY_MODEL_UNLOAD,
  M_HEALTH_CHECK,
  M_COUNT
};

#define SVC "/inference.GRPCInferenceService/"
static const pd_kgrpc_method k_methods[M_COUNT] = {
    [M_SERVER_LIVE] = {SVC "ServerLive", PD_KGRPC_UNARY},
    [M_SERVER_READY] = {SVC "ServerReady", PD_KGRPC_UNARY},
    [M_MODEL_READY] = {SVC "ModelReady", PD_KGRPC_UNARY},
    [M_SERVER_METADATA] = {SVC "ServerMetadata", PD_KGRPC_UNARY},
    [M_MODEL_METADATA] = {SVC "ModelMetadata", PD_KGRPC_UNARY},
    [M_MODEL_INFER] = {SVC "ModelInfer", PD_KGRPC_UNARY},
    [M_MODEL_STREAM_INFER] = {SVC "ModelStreamInfer", PD_KGRPC_STREAM},
    [M_MODEL_CONFIG] = {SVC "ModelConfig", PD_KGRPC_UNARY},
    [M_MODEL_STATISTICS] = {SVC "ModelStatistics", PD_KGRPC_UNARY},
    [M_REPOSITORY_INDEX] = {SVC "RepositoryIndex", PD_KGRPC_UNARY},
    [M_REPOSITORY_MODEL_LOAD] = {SVC "RepositoryModelLoad", PD_KGRPC_UNARY},
    [M_REPOSITORY_MODEL_UNLOAD] = {SVC "RepositoryModelUnload", PD_KGRPC_UNARY},
    [M_HEALTH_CHECK] = {"/grpc.health.v1.Health/Check", PD_KGRPC_UNARY},
};

typedef struct kgrpc_fe {
  pd_frontend fe; /* first */
  pd_frontend_env env;
  pd_config cfg; /* the listen address (restart-only) */
  long max_crops, max_queue_delay_us;
  bool control_on; /* model.control, and the listener reaches this host only */
  pd_kgrpc *grpc;
  bool draining, closing;
  int jobs; /* inference requests in the pipeline */
  void (*on_empty)(void *);
  void *on_empty_data;
} kgrpc_fe;

/* One ModelInfer (or one message of a stream) in the pipeline: N crops
 * (job) or, for a frames model, one frame (frame). */
typedef struct kgrpc_job {
  pd_kjob job;
  bool is_frame;
  pd_frame_job frame;
  pd_kframe_request kf;
  char frames_name[80]; /* the name it answers as ("M.frames") */
  kgrpc_fe *k;
  pd_kgrpc_call *call;
  int stream;
  Inference__ModelInferRequest *req; /* holds the crops' bytes */
  struct kgrpc_job *prev, *next;     /* the call's jobs (a stream has several) */
} kgrpc_job;

/* The jobs of a call, listed from its user pointer, so that a call whose
 * client went away drops what it has not computed yet. */
static void call_link(kgrpc_job *j) {
  j->next = pd_kgrpc_user(j->call);
  if (j->next) j->next->prev = j;
  pd_kgrpc_set_user(j->call, j);
}

static void call_unlink(kgrpc_job *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    pd_kgrpc_set_user(j->call, j->next);
  if (j->next) j->next->prev = j->prev;
}

static void on_cancel(pd_kgrpc_call *call, void *data) {
  (void)data;
  for (kgrpc_job *j = pd_kgrpc_user(call); j; j = j->next)
    if (j->is_frame)
      pd_frame_job_cancel(&j->frame);
    else
      pd_kjob_cancel(&j->job);
}

static void maybe_empty(kgrpc_fe *k);

/* ---- answers ---- */

static void finish_msg(pd_kgrpc_call *call, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    pd_kgrpc_finish(call, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory for the answer", NULL, 0);
    return;
  }
  protobuf_c_message_pack(m, buf);
  pd_kgrpc_finish(call, 0, NULL, buf, n);
  free(buf);
}

/* An inference error: the RPC's status (unary), or one stream answer
 * carrying the message (the stream lives on). */
static void infer_error(pd_kgrpc_call *call, int stream, int status, const char *message) {
  if (!stream) {
    pd_kgrpc_finish(call, status, message, NULL, 0);
    return;
  }
  char text[512];
  snprintf(text, sizeof text, "%s: %s", pd_status_name(status), message);
  uint8_t *buf = NULL;
  size_t len = 0;
  if (pd_kinfer_pack_stream_error(text, &buf, &len) != 0) buf = NULL, len = 0;
  pd_kgrpc_stream_reply(call, buf, len);
  free(buf);
}

static pd_served *model_now(const kgrpc_fe *k) {
  return pd_pipeline_model(k->env.pipeline);
}

/* The model name/version name; NULL when none, answering the call (if
 * any) with NOT_FOUND (naming the models served) or UNAVAILABLE (its load
 * error). */
static pd_served *model_named(const kgrpc_fe *k, pd_kgrpc_call *call, const char *name,
                              const char *version) {
  char key[64], msg[400], base[64];
  pd_status code;
  const bool frames = pd_kframe_base_name(name, base, sizeof base); /* its frames variant */
  pd_served *s =
      pd_kjob_model(k->env.pipeline, frames ? base : name, version, key, &code, msg, sizeof msg);
  if (!s && frames) pd_kframe_not_found(name, base, msg, sizeof msg);
  if (!s && call) pd_kgrpc_finish(call, code, msg, NULL, 0);
  return s;
}

/* Not while a sticky device error has the model out of service (pd_served.h). */
static bool serving(const pd_served *s) {
  return s && pd_served_device_state(s) != PD_DEVICE_FAILING;
}

static bool ready(const kgrpc_fe *k) {
  if (!serving(model_now(k))) return false;
  pd_stats_report r;
  pd_stats_report_fill(k->env.stats, pd_now_ns(), &r);
  if (k->env.report) k->env.report(k->env.report_ctx, &r); /* r.draining: a SIGTERM's grace */
  return !k->draining && !r.draining && model_now(k) &&
         r.batch_failures_in_a_row < KSERVE_FAILING_RUNS;
}

/* ModelConfig's one instance group: the backend serving the model now. */
static void instance_group(const pd_served *s, Inference__ModelInstanceGroup *ig) {
  ig->name = (char *)pd_served_backend_now(s);
  ig->count = 1;
  ig->kind = strcmp(pd_served_backend_now(s), "cuda") == 0
                 ? INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_GPU
                 : INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU;
}

static void bad_request(pd_kgrpc_call *call, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "the %s message does not parse", what);
  pd_kgrpc_finish(call, PD_STATUS_INVALID_ARGUMENT, msg, NULL, 0);
}

/* ---- inference ---- */

static void job_done(pd_kjob *job) {
  kgrpc_job *j = job->owner;
  kgrpc_fe *k = j->k;
  call_unlink(j);
  if (job->status != 0) {
    infer_error(j->call, j->stream, job->status, job->message);
  } else {
    const pd_model *m = job->served->model;
    uint8_t *buf = NULL;
    size_t len = 0;
    job->kr.thresholds = m->thresholds;
    int rc =
        pd_kinfer_pack_response(&job->kr, m->name, m->version, j->req->id, job->n_classes,
                                job->probs, (const char *const *)m->classes, j->stream, &buf, &len);
    if (rc != 0)
      infer_error(j->call, j->stream, rc, "out of memory for the answer");
    else if (j->stream)
      pd_kgrpc_stream_reply(j->call, buf, len);
    else
      pd_kgrpc_finish(j->call, 0, NULL, buf, len);
    free(buf);
  }
  pd_kjob_dispose(job);
  inference__model_infer_request__free_unpacked(j->req, NULL);
  free(j);
  k->jobs--;
  maybe_empty(k);
}

/* ---- frames ("M.frames": one frame per request, pd_frame_job) ---- */

static void frame_done(pd_frame_job *fj) {
  kgrpc_job *j = fj->owner;
  kgrpc_fe *k = j->k;
  call_unlink(j);
  const int bad = fj->status == PD_STATUS_OK ? pd_kframe_failed_object(fj) : -1;
  if (fj->status != PD_STATUS_OK) {
    infer_error(j->call, j->stream, fj->status, fj->message);
  } else if (bad >= 0) {
    char m[400];
    snprintf(m, sizeof m, "object %d: %s", bad, fj->objects[bad].message);
    infer_error(j->call, j->stream,
                fj->objects[bad].status ? (int)fj->objects[bad].status : PD_STATUS_INTERNAL, m);
  } else {
    const pd_model *m = fj->served->model;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc =
        pd_kframe_pack_response(&j->kf, fj, j->frames_name, m->version, j->req->id, m->n_classes,
                                (const char *const *)m->classes, j->stream, &buf, &len);
    if (rc != 0)
      infer_error(j->call, j->stream, rc, "out of memory for the answer");
    else if (j->stream)
      pd_kgrpc_stream_reply(j->call, buf, len);
    else
      pd_kgrpc_finish(j->call, 0, NULL, buf, len);
    free(buf);
  }
  pd_frame_job_dispose(fj);
  pd_kframe_request_free(&j->kf);
  inference__model_infer_request__free_unpacked(j->req, NULL);
  free(j);
  k->jobs--;
  maybe_empty(k);
}

/* Takes req. base: the model's own name. */
static void handle_frame(kgrpc_fe *k, pd_kgrpc_call *call, int stream,
                         Inference__ModelInferRequest *req, const char *base) {
  char key[64], m[400];
  pd_status code;
  pd_served *s = pd_kjob_model(k->env.pipeline, base, req->model_version, key, &code, m, sizeof m);
  if (!s) pd_kframe_not_found(req->model_name, base, m, sizeof m);
  kgrpc_job *j = s ? calloc(1, sizeof *j) : NULL;
  if (!j) {
    infer_error(call, stream, s ? PD_STATUS_RESOURCE_EXHAUSTED : (int)code,
                s ? "out of memory" : m);
    inference__model_infer_request__free_unpacked(req, NULL);
    return;
  }
  int rc = pd_kframe_parse(req, s->model->n_classes, &j->kf, &j->frame, m, sizeof m);
  if (rc != 0) {
    infer_error(call, stream, rc, m);
    pd_kframe_request_free(&j->kf);
    inference__model_infer_request__free_unpacked(req, NULL);
    free(j);
    return;
  }
  j->is_frame = true;
  j->k = k;
  j->call = call;
  j->stream = stream;
  j->req = req;
  snprintf(j->frames_name, sizeof j->frames_name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  pd_frame_job *fj = &j->frame;
  snprintf(fj->model, sizeof fj->model, "%s", key);
  fj->t_recv_ns = pd_now_ns();
  uint64_t deadline = pd_kgrpc_deadline_ns(call);
  if (j->kf.timeout_us) {
    uint64_t t = fj->t_recv_ns + j->kf.timeout_us * 1000u;
    if (!deadline || t < deadline) deadline = t;
  }
  fj->deadline_ns = deadline;
  /* its objects share the connection's fair share, as its crops would */
  fj->client = PD_KJOB_CLIENT_GRPC | pd_kgrpc_conn_key(call);
  fj->done = frame_done;
  fj->owner = j;
  k->jobs++;
  call_link(j);
  pd_frame_job_submit(k->env.pipeline, fj);
}

static void handle_infer(kgrpc_fe *k, pd_kgrpc_call *call, int stream, const uint8_t *msg,
                         size_t len) {
  /* while draining the transport still hands over the calls gRPC took
   * before its GOAWAY (streams read nothing more): those are answered;
   * only a close without a drain refuses what is left */
  if (k->closing) {
    infer_error(call, stream, PD_STATUS_UNAVAILABLE,
                "draining: the daemon is shutting down; send it to another server");
    return;
  }
  Inference__ModelInferRequest *req = inference__model_infer_request__unpack(NULL, len, msg);
  if (!req) {
    infer_error(call, stream, PD_STATUS_INVALID_ARGUMENT,
                "the ModelInferRequest message does not parse");
    return;
  }
  char key[64], m[400], base[64];
  if (pd_kframe_base_name(req->model_name, base, sizeof base)) {
    handle_frame(k, call, stream, req, base);
    return;
  }
  pd_status code;
  pd_served *s =
      pd_kjob_model(k->env.pipeline, req->model_name, req->model_version, key, &code, m, sizeof m);
  if (!s) {
    infer_error(call, stream, code, m);
    inference__model_infer_request__free_unpacked(req, NULL);
    return;
  }
  kgrpc_job *j = calloc(1, sizeof *j);
  if (!j) {
    infer_error(call, stream, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    inference__model_infer_request__free_unpacked(req, NULL);
    return;
  }
  char why[400];
  int rc =
      pd_kinfer_parse(req, (int)k->max_crops, s->model->n_classes, &j->job.kr, why, sizeof why);
  if (rc != 0) {
    infer_error(call, stream, rc, why);
    pd_kinfer_request_free(&j->job.kr);
    inference__model_infer_request__free_unpacked(req, NULL);
    free(j);
    return;
  }
  j->k = k;
  j->call = call;
  j->stream = stream;
  j->req = req;
  j->job.done = job_done;
  j->job.owner = j;
  /* one fair share per connection (a channel), as the native front end's */
  j->job.client = PD_KJOB_CLIENT_GRPC | pd_kgrpc_conn_key(call);
  uint64_t deadline = pd_kgrpc_deadline_ns(call);
  if (j->job.kr.timeout_us) {
    uint64_t t = pd_now_ns() + j->job.kr.timeout_us * 1000u;
    if (!deadline || t < deadline) deadline = t;
  }
  k->jobs++;
  call_link(j);
  pd_kjob_submit(&j->job, k->env.pipeline, key, deadline);
}

/* ---- the other RPCs ---- */

/* The frames variant's metadata: FRAME and BACKGROUND (BYTES [1] as
 * declared; UINT8 / UINT16 [H,W] pixels are taken too), BOXES, AREAS and
 * PROBABILITIES for n objects. */
static void frames_metadata(pd_kgrpc_call *call, const pd_served *s) {
  Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
  Inference__ModelMetadataResponse__TensorMetadata t[5];
  Inference__ModelMetadataResponse__TensorMetadata *ins[2] = {&t[0], &t[1]},
                                                   *outs[3] = {&t[2], &t[3], &t[4]};
  static const char *const names[5] = {PD_KFRAME_INPUT, PD_KFRAME_BACKGROUND, PD_KFRAME_BOXES,
                                       PD_KFRAME_AREAS, PD_KFRAME_PROBS};
  static const char *const types[5] = {"BYTES", "BYTES", "INT32", "INT32", "FP32"};
  int64_t shapes[5][2] = {{1, 0}, {1, 0}, {-1, 4}, {-1, 0}, {-1, s->model->n_classes}};
  const size_t dims[5] = {1, 1, 2, 1, 2};
  for (int i = 0; i < 5; i++) {
    inference__model_metadata_response__tensor_metadata__init(&t[i]);
    t[i].name = (char *)names[i];
    t[i].datatype = (char *)types[i];
    t[i].shape = shapes[i];
    t[i].n_shape = dims[i];
  }
  char name[80];
  snprintf(name, sizeof name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  char *versions[1] = {(char *)s->model->version};
  r.name = name;
  r.versions = versions;
  r.n_versions = 1;
  r.platform = (char *)"planktond";
  r.inputs = ins;
  r.n_inputs = 2;
  r.outputs = outs;
  r.n_outputs = 3;
  finish_msg(call, &r.base);
}

/* The frames variant's config: one frame per request (max_batch_size 0, no
 * dynamic batching of its own: its objects join the model's batches). */
static void frames_config(kgrpc_fe *k, pd_kgrpc_call *call, const pd_served *s) {
  (void)k;
  Inference__ModelConfig c = INFERENCE__MODEL_CONFIG__INIT;
  Inference__ModelInput in[2];
  Inference__ModelOutput out[3];
  Inference__ModelInput *ins[2] = {&in[0], &in[1]};
  Inference__ModelOutput *outs[3] = {&out[0], &out[1], &out[2]};
  Inference__ModelInstanceGroup ig = INFERENCE__MODEL_INSTANCE_GROUP__INIT;
  Inference__ModelInstanceGroup *igs[1] = {&ig};
  int64_t in_dims[1] = {1}, box_dims[2] = {-1, 4}, area_dims[1] = {-1},
          prob_dims[2] = {-1, s->model->n_classes};
  char name[80];
  snprintf(name, sizeof name, "%s" PD_KFRAME_SUFFIX, s->model->name);
  c.name = name;
  c.platform = (char *)"planktond";
  c.backend = (char *)pd_served_backend_now(s);
  c.max_batch_size = 0;
  for (int i = 0; i < 2; i++) {
    inference__model_input__init(&in[i]);
    in[i].name = (char *)(i ? PD_KFRAME_BACKGROUND : PD_KFRAME_INPUT);
    in[i].data_type = INFERENCE__DATA_TYPE__TYPE_STRING;
    in[i].dims = in_dims;
    in[i].n_dims = 1;
    in[i].optional = i == 1;
  }
  const char *onames[3] = {PD_KFRAME_BOXES, PD_KFRAME_AREAS, PD_KFRAME_PROBS};
  int64_t *odims[3] = {box_dims, area_dims, prob_dims};
  const size_t on[3] = {2, 1, 2};
  for (int i = 0; i < 3; i++) {
    inference__model_output__init(&out[i]);
    out[i].name = (char *)onames[i];
    out[i].data_type = i == 2 ? INFERENCE__DATA_TYPE__TYPE_FP32 : INFERENCE__DATA_TYPE__TYPE_INT32;
    out[i].dims = odims[i];
    out[i].n_dims = on[i];
  }
  c.input = ins;
  c.n_input = 2;
  c.output = outs;
  c.n_output = 3;
  instance_group(s, &ig);
  c.instance_group = igs;
  c.n_instance_group = 1;
  Inference__ModelConfigResponse r = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
  r.config = &c;
  finish_msg(call, &r.base);
}

static void handle_model_metadata(kgrpc_fe *k, pd_kgrpc_call *call, const uint8_t *msg,
                                  size_t len) {
  Inference__ModelMetadataRequest *rq = inference__model_metadata_request__unpack(NULL, len, msg);
  if (!rq) {
    bad_request(call, "ModelMetadataRequest");
    return;
  }
  char base[64];
  pd_served *s = model_named(k, call, rq->name, rq->version);
  if (s && pd_kframe_base_name(rq->name, base, sizeof base)) {
    frames_metadata(call, s);
  } else if (s) {
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    Inference__ModelMetadataResponse__TensorMetadata in =
        INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
    Inference__ModelMetadataResponse__TensorMetadata out =
        INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
    Inference__ModelMetadataResponse__TensorMetadata *ins[1] = {&in}, *outs[1] = {&out};
    int64_t in_shape[2] = {-1, 1}, out_shape[2] = {-1, s->model->n_classes};
    char *versions[1] = {(char *)s->model->version};
    r.name = (char *)s->model->name;
    r.versions = versions;
    r.n_versions = 1;
    r.platform = (char *)"planktond";
    in.name = (char *)PD_KINFER_INPUT;
    in.datatype = (char *)"BYTES";
    in.shape = in_shape;
    in.n_shape = 2;
    out.name = (char *)PD_KINFER_OUTPUT;
    out.datatype = (char *)"FP32";
    out.shape = out_shape;
    out.n_shape = 2;
    r.inputs = ins;
    r.n_inputs = 1;
    r.outputs = outs;
    r.n_outputs = 1;
    finish_msg(call, &r.base);
  }
  inference__model_metadata_request__free_unpacked(rq, NULL);
}

static void handle_model_config(kgrpc_fe *k, pd_kgrpc_call *call, const uint8_t *msg, size_t len) {
  Inference__ModelConfigRequest *rq = inference__model_config_request__unpack(NULL, len, msg);
  if (!rq) {
    bad_request(call, "ModelConfigRequest");
    return;
  }
  char base[64];
  pd_served *s = model_named(k, call, rq->name, rq->version);
  if (s && pd_kframe_base_name(rq->name, base, sizeof base)) {
    frames_config(k, call, s);
  } else if (s) {
    Inference__ModelConfig c = INFERENCE__MODEL_CONFIG__INIT;
    Inference__ModelInput in = INFERENCE__MODEL_INPUT__INIT;
    Inference__ModelOutput out = INFERENCE__MODEL_OUTPUT__INIT;
    Inference__ModelDynamicBatching db = INFERENCE__MODEL_DYNAMIC_BATCHING__INIT;
    Inference__ModelInstanceGroup ig = INFERENCE__MODEL_INSTANCE_GROUP__INIT;
    Inference__ModelInput *ins[1] = {&in};
    Inference__ModelOutput *outs[1] = {&out};
    Inference__ModelInstanceGroup *igs[1] = {&ig};
    int64_t in_dims[1] = {1}, out_dims[1] = {s->model->n_classes};
    c.name = (char *)s->model->name;
    c.platform = (char *)"planktond";
    c.backend = (char *)pd_served_backend_now(s);
    c.max_batch_size = (int32_t)(s->own_max_batch ? s->max_batch : k->max_crops);
    in.name = (char *)PD_KINFER_INPUT;
    in.data_type = INFERENCE__DATA_TYPE__TYPE_STRING;
    in.dims = in_dims;
    in.n_dims = 1;
    out.name = (char *)PD_KINFER_OUTPUT;
    out.data_type = INFERENCE__DATA_TYPE__TYPE_FP32;
    out.dims = out_dims;
    out.n_dims = 1;
    c.input = ins;
    c.n_input = 1;
    c.output = outs;
    c.n_output = 1;
    db.max_queue_delay_microseconds =
        s->own_max_queue_delay ? s->max_queue_delay_ns / 1000 : (uint64_t)k->max_queue_delay_us;
    c.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
    c.dynamic_batching = &db;
    instance_group(s, &ig);
    c.instance_group = igs;
    c.n_instance_group = 1;
    /* the model's thresholds and lineage (models/FORMAT.md): parameters, JSON label -> value */
    const pd_model *m = s->model;
    char *maps[2] = {
        m->thresholds
            ? pd_kinfer_json_map(m->n_classes, (const char *const *)m->classes, m->thresholds, NULL)
            : NULL,
        m->lineage ? pd_kinfer_json_map(m->n_classes, (const char *const *)m->classes, NULL,
                                        (const char *const *)m->lineage)
                   : NULL};
    static const char *const map_keys[2] = {"thresholds", "lineage"};
    Inference__ModelParameter mp[2] = {INFERENCE__MODEL_PARAMETER__INIT,
                                       INFERENCE__MODEL_PARAMETER__INIT};
    Inference__ModelConfig__ParametersEntry pe[2] = {
        INFERENCE__MODEL_CONFIG__PARAMETERS_ENTRY__INIT,
        INFERENCE__MODEL_CONFIG__PARAMETERS_ENTRY__INIT};
    Inference__ModelConfig__ParametersEntry *pes[2];
    for (int i = 0; i < 2; i++) {
      if (!maps[i]) continue;
      mp[i].string_value = maps[i];
      pe[i].key = (char *)map_keys[i];
      pe[i].value = &mp[i];
      pes[c.n_parameters++] = &pe[i];
    }
    c.parameters = pes;
    Inference__ModelConfigResponse r = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
    r.config = &c;
    finish_msg(call, &r.base);
    free(maps[0]);
    free(maps[1]);
  }
  inference__model_config_request__free_unpacked(rq, NULL);
}

static Inference__StatisticDuration duration(uint64_t count, double sum_us) {
  Inference__StatisticDuration d = INFERENCE__STATISTIC_DURATION__INIT;
  d.count = count;
  d.ns = (uint64_t)(sum_us * 1000.0);
  return d;
}

/* The same numbers as /metrics: requests by status, the request, queue,
 * decode and compute histograms, and batches by size (each bucket of the
 * batch-size histogram as the batch size of its upper bound). */
static void handle_model_statistics(kgrpc_fe *k, pd_kgrpc_call *call, const uint8_t *msg,
                                    size_t len) {
  Inference__ModelStatisticsRequest *rq =
      inference__model_statistics_request__unpack(NULL, len, msg);
  if (!rq) {
    bad_request(call, "ModelStatisticsRequest");
    return;
  }
  pd_served *s = rq->name[0] ? model_named(k, call, rq->name, rq->version) : model_now(k);
  if (rq->name[0] && !s) {
    inference__model_statistics_request__free_unpacked(rq, NULL);
    return;
  }
  pd_stats_report r;
  pd_stats_report_fill(k->env.stats, pd_now_ns(), &r);
  if (k->env.report) k->env.report(k->env.report_ctx, &r);
  uint64_t fails = 0;
  for (int i = 1; i < PD_STATUS_COUNT; i++)
    fails += r.requests[i];
  Inference__InferStatistics is = INFERENCE__INFER_STATISTICS__INIT;
  const pd_hist_report *hq = &r.hist[PD_HIST_QUEUE], *hd = &r.hist[PD_HIST_DECODE],
                       *hc = &r.hist[PD_HIST_COMPUTE], *hr = &r.hist[PD_HIST_REQUEST],
                       *hb = &r.hist[PD_HIST_BATCH];
  /* per request, as Triton counts them (perf_analyzer wants the three
   * compute counts equal): the requests answered OK, each batch's compute
   * time shared out among its requests, no separate output stage */
  uint64_t n_ok = hd->count;
  Inference__StatisticDuration d_ok = duration(r.requests[PD_STATUS_OK], hr->sum),
                               d_fail = duration(fails, 0), d_q = duration(n_ok, hq->sum),
                               d_in = duration(n_ok, hd->sum), d_inf = duration(n_ok, hc->sum),
                               d_out = duration(n_ok, 0);
  is.success = &d_ok;
  is.fail = &d_fail;
  is.queue = &d_q;
  is.compute_input = &d_in;
  is.compute_infer = &d_inf;
  is.compute_output = &d_out;
  Inference__InferBatchStatistics bs[PD_HIST_MAX_BOUNDS];
  Inference__InferBatchStatistics *bsp[PD_HIST_MAX_BOUNDS];
  Inference__StatisticDuration bd[PD_HIST_MAX_BOUNDS];
  size_t nb = 0;
  uint64_t below = 0;
  for (int i = 0; i < hb->n_bounds; i++) {
    uint64_t in_bucket = hb->cumulative[i] - below;
    below = hb->cumulative[i];
    if (!in_bucket) continue;
    bs[nb] = (Inference__InferBatchStatistics)INFERENCE__INFER_BATCH_STATISTICS__INIT;
    bd[nb] = duration(in_bucket, 0);
    bs[nb].batch_size = (uint64_t)hb->bounds[i];
    bs[nb].compute_infer = &bd[nb];
    bsp[nb] = &bs[nb];
    nb++;
  }
  Inference__ModelStatistics ms = INFERENCE__MODEL_STATISTICS__INIT;
  Inference__ModelStatistics *msp[1] = {&ms};
  ms.name = (char *)(s ? s->model->name : "");
  ms.version = (char *)(s ? s->model->version : "");
  ms.inference_count = r.requests[PD_STATUS_OK];
  ms.execution_count = r.batches;
  ms.inference_stats = &is;
  ms.batch_stats = bsp;
  ms.n_batch_stats = nb;
  Inference__ModelStatisticsResponse resp = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
  resp.model_stats = msp;
  resp.n_model_stats = s ? 1 : 0;
  finish_msg(call, &resp.base);
  inference__model_statistics_request__free_unpacked(rq, NULL);
}

static void handle_health(kgrpc_fe *k, pd_kgrpc_call *call, const uint8_t *msg, size_t len) {
  Grpc__Health__V1__HealthCheckRequest *rq =
      grpc__health__v1__health_check_request__unpack(NULL, len, msg);
  if (!rq) {
    bad_request(call, "HealthCheckRequest");
    return;
  }
  if (rq->service[0] && strcmp(rq->service, "inference.GRPCInferenceService") != 0) {
    char m[200];
    snprintf(m, sizeof m,
             "unknown service \"%.64s\": ask for \"\" or inference.GRPCInferenceService",
             rq->service);
    pd_kgrpc_finish(call, PD_STATUS_NOT_FOUND, m, NULL, 0);
  } else {
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = ready(k) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    finish_msg(call, &r.base);
  }
  grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
}

/* ---- RepositoryModelLoad / RepositoryModelUnload (model.control) ---- */

typedef struct kgrpc_control {
  pd_model_control mc;
  kgrpc_fe *k;
  pd_kgrpc_call *call;
  bool load;
} kgrpc_control;

static void control_done(pd_model_control *mc) {
  kgrpc_control *c = mc->owner;
  kgrpc_fe *k = c->k;
  if (mc->status != PD_STATUS_OK) {
    pd_kgrpc_finish(c->call, mc->status, mc->message, NULL, 0);
  } else if (c->load) {
    Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
    finish_msg(c->call, &r.base);
  } else {
    Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
    finish_msg(c->call, &r.base);
  }
  k->jobs--;
  free(c);
  maybe_empty(k);
}

/* Load (or reload, as Triton's RepositoryModelLoad of a loaded model) or
 * unload, by the daemon (pd_model_control.h); repository_name is not
 * looked at (there is one repository), a load's parameters (Triton's
 * "config", "file:...") are refused. */
static void handle_repository_control(kgrpc_fe *k, pd_kgrpc_call *call, bool load,
                                      const uint8_t *msg, size_t len) {
  char name[64] = "", param[64] = "";
  size_t n_params = 0;
  if (load) {
    Inference__RepositoryModelLoadRequest *rq =
        inference__repository_model_load_request__unpack(NULL, len, msg);
    if (!rq) {
      bad_request(call, "RepositoryModelLoadRequest");
      return;
    }
    snprintf(name, sizeof name, "%s", rq->model_name ? rq->model_name : "");
    n_params = rq->n_parameters;
    snprintf(param, sizeof param, "%s", n_params ? rq->parameters[0]->key : "");
    inference__repository_model_load_request__free_unpacked(rq, NULL);
  } else {
    Inference__RepositoryModelUnloadRequest *rq =
        inference__repository_model_unload_request__unpack(NULL, len, msg);
    if (!rq) {
      bad_request(call, "RepositoryModelUnloadRequest");
      return;
    }
    snprintf(name, sizeof name, "%s", rq->model_name ? rq->model_name : "");
    inference__repository_model_unload_request__free_unpacked(rq, NULL);
  }
  char why[200];
  if (n_params) {
    snprintf(why, sizeof why,
             "RepositoryModelLoad parameter '%.60s' is not supported: the model loads from its "
             "repository folder as it is",
             param);
    pd_kgrpc_finish(call, PD_STATUS_INVALID_ARGUMENT, why, NULL, 0);
    return;
  }
  kgrpc_control *c = k->env.control && !k->draining ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    pd_kgrpc_finish(call, k->draining ? PD_STATUS_UNAVAILABLE : PD_STATUS_UNIMPLEMENTED,
                    k->draining ? "draining: the daemon is shutting down"
                                : "model control is not available here",
                    NULL, 0);
    return;
  }
  c->k = k;
  c->call = call;
  c->load = load;
  pd_model_control *mc = &c->mc;
  mc->op = load ? PD_REPO_LOAD : PD_REPO_UNLOAD;
  mc->load_or_reload = load;
  snprintf(mc->name, sizeof mc->name, "%s", name);
  mc->via = load ? "KServe gRPC RepositoryModelLoad" : "KServe gRPC RepositoryModelUnload";
  mc->peer_uid = -1; /* gRPC core does not tell a Unix peer's uid */
  mc->loopback = pd_listener_address_local(k->cfg.kserve_grpc);
  snprintf(mc->peer, sizeof mc->peer, "a client of %.80s", k->cfg.kserve_grpc);
  mc->done = control_done;
  mc->owner = c;
  k->jobs++;
  k->env.control(k->env.control_ctx, mc);
}

static void on_request(pd_kgrpc_call *call, int method, const uint8_t *msg, size_t len,
                       void *data) {
  kgrpc_fe *k = data;
  switch (method) {
  case M_SERVER_LIVE: {
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = 1;
    finish_msg(call, &r.base);
    return;
  }
  case M_SERVER_READY: {
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    r.ready = ready(k);
    finish_msg(call, &r.base);
    return;
  }
  case M_MODEL_READY: {
    Inference__ModelReadyRequest *rq = inference__model_ready_request__unpack(NULL, len, msg);
    if (!rq) {
      bad_request(call, "ModelReadyRequest");
      return;
    }
    Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
    r.ready = ready(k) && serving(model_named(k, NULL, rq->name, rq->version));
    finish_msg(call, &r.base);
    inference__model_ready_request__free_unpacked(rq, NULL);
    return;
  }
  case M_SERVER_METADATA: {
    static char *const ext[] = {(char *)"classification", (char *)"model_configuration",
                                (char *)"statistics", (char *)"binary_tensor_data",
                                (char *)"model_repository"};
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    r.name = (char *)"planktond";
    r.version = (char *)PD_VERSION;
    r.extensions = (char **)ext;
    /* model_repository (load and unload) only where model control is on */
    r.n_extensions = sizeof ext / sizeof ext[0] - (k->control_on ? 0 : 1);
    finish_msg(call, &r.base);
    return;
  }
  case M_MODEL_METADATA:
    handle_model_metadata(k, call, msg, len);
    return;
  case M_MODEL_INFER:
    handle_infer(k, call, 0, msg, len);
    return;
  case M_MODEL_STREAM_INFER:
    handle_infer(k, call, 1, msg, len);
    return;
  case M_MODEL_CONFIG:
    handle_model_config(k, call, msg, len);
    return;
  case M_MODEL_STATISTICS:
    handle_model_statistics(k, call, msg, len);
    return;
  case M_REPOSITORY_INDEX: {
    const pd_repo *repo = pd_pipeline_repo(k->env.pipeline);
    Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
    /* every model version, then its frames variant ("M.frames") */
    Inference__RepositoryIndexResponse__ModelIndex mi[2 * PD_REPO_MAX];
    Inference__RepositoryIndexResponse__ModelIndex *mis[2 * PD_REPO_MAX];
    char fnames[PD_REPO_MAX][80];
    for (int i = 0; repo && i < 2 * repo->n; i++) {
      const pd_repo_entry *e = &repo->e[i / 2];
      inference__repository_index_response__model_index__init(&mi[i]);
      if (i % 2) snprintf(fnames[i / 2], sizeof fnames[0], "%s" PD_KFRAME_SUFFIX, e->name);
      mi[i].name = (char *)(i % 2 ? fnames[i / 2] : e->name);
      mi[i].version = (char *)e->version;
      mi[i].state = (char *)(serving(e->served) && ready(k) ? "READY" : "UNAVAILABLE");
      mi[i].reason = (char *)e->error;
      mis[i] = &mi[i];
    }
    r.models = mis;
    r.n_models = repo ? 2 * (size_t)repo->n : 0;
    finish_msg(call, &r.base);
    return;
  }
  case M_REPOSITORY_MODEL_LOAD:
  case M_REPOSITORY_MODEL_UNLOAD:
    handle_repository_control(k, call, method == M_REPOSITORY_MODEL_LOAD, msg, len);
    return;
  case M_HEALTH_CHECK:
    handle_health(k, call, msg, len);
    return;
  default:
    pd_kgrpc_finish(call, PD_STATUS_UNIMPLEMENTED, "not served", NULL, 0);
  }
}

/* ---- the pd_frontend ops ---- */

static void on_grpc_gone(void *data) {
  kgrpc_fe *k = data;
  k->grpc = NULL;
  if (k->closing) {
    free(k);
    return;
  }
  maybe_empty(k);
}

static void maybe_empty(kgrpc_fe *k) {
  if (!k->draining || k->grpc || k->jobs > 0 || !k->on_empty) return;
  void (*cb)(void *) = k->on_empty;
  k->on_empty = NULL;
  cb(k->on_empty_data);
}

static void kgrpc_limits(kgrpc_fe *k, const pd_config *c) {
  k->max_crops = c->max_batch;
  k->max_queue_delay_us = c->max_queue_delay_us;
  k->control_on = c->model_control && pd_listener_address_local(k->cfg.kserve_grpc);
}

static int kgrpc_listen(pd_frontend *fe, const int *fds, int n_fds, bool activated, pd_error *err) {
  kgrpc_fe *k = (kgrpc_fe *)fe;
  (void)fds;
  (void)activated;
  if (n_fds > 0)
    return pd_error_set(err, PD_EUNSUPP,
                        "kserve.grpc_listen: gRPC core cannot adopt an inherited listening socket "
                        "(%d given as kserve-grpc); give the address in kserve.grpc_listen instead",
                        n_fds);
  if (!k->cfg.kserve_grpc[0]) return PD_OK;
  pd_kgrpc_options o = {
      .methods = k_methods,
      .n_methods = M_COUNT,
      .listen = {k->cfg.kserve_grpc},
      .n_listen = 1,
      .socket_mode = (int)k->cfg.socket_mode,
      .max_receive_message = k->cfg.max_frame_bytes,
      .max_concurrent_streams = (int)k->cfg.max_in_flight,
      .max_stream_in_flight = (int)k->cfg.max_in_flight,
      .idle_timeout_ms = k->cfg.idle_timeout_s * 1000,
      .on_request = on_request,
      .on_cancel = on_cancel,
      .data = k,
  };
  int rc = pd_kgrpc_start(k->env.loop, &o, &k->grpc, err);
  if (rc != PD_OK) return pd_error_prefix(err, "kserve.grpc_listen");
  pd_logf(k->env.log, PD_LOG_INFO, "KServe gRPC listening on %s", k->cfg.kserve_grpc);
  return PD_OK;
}

static void kgrpc_set_limits(pd_frontend *fe, const pd_config *cfg) {
  kgrpc_limits((kgrpc_fe *)fe, cfg);
}

static void kgrpc_drain(pd_frontend *fe, void (*on_empty)(void *), void *data) {
  kgrpc_fe *k = (kgrpc_fe *)fe;
  k->draining = true;
  k->on_empty = on_empty;
  k->on_empty_data = data;
  if (k->grpc) pd_kgrpc_shutdown(k->grpc, on_grpc_gone, k);
  maybe_empty(k);
}

static int kgrpc_busy(const pd_frontend *fe) {
  const kgrpc_fe *k = (const kgrpc_fe *)fe;
  return (k->grpc ? pd_kgrpc_calls(k->grpc) : 0) + k->jobs;
}

static void kgrpc_close_all(pd_frontend *fe) {
  kgrpc_fe *k = (kgrpc_fe *)fe;
  if (k->grpc) pd_kgrpc_cancel_all(k->grpc);
}

static void kgrpc_close(pd_frontend *fe) {
  kgrpc_fe *k = (kgrpc_fe *)fe;
  k->closing = true;
  k->on_empty = NULL;
  if (!k->grpc) {
    free(k);
    return;
  }
  if (!k->draining) {
    k->draining = true;
    pd_kgrpc_shutdown(k->grpc, on_grpc_gone, k);
  }
  /* what is still open is cut (an exit without a drain, or after its
   * timeout); a finished drain has nothing left and the GOAWAY stays clean */
  if (pd_kgrpc_calls(k->grpc) > 0) pd_kgrpc_cancel_all(k->grpc);
}

static const pd_frontend_ops kgrpc_ops = {
    .name = "kserve-grpc",
    .fd_name = "kserve-grpc",
    .listen = kgrpc_listen,
    .set_limits = kgrpc_set_limits,
    .report = NULL,
    .drain = kgrpc_drain,
    .busy = kgrpc_busy,
    .close_all = kgrpc_close_all,
    .close = kgrpc_close,
};

int pd_frontend_kserve_grpc_create(const pd_frontend_env *env, const pd_config *cfg,
                                   pd_frontend **out, pd_error *err) {
  kgrpc_fe *k = calloc(1, sizeof *k);
  if (!k) return pd_error_set(err, PD_ENOMEM, "kserve gRPC: out of memory");
  k->fe.ops = &kgrpc_ops;
  k->env = *env;
  k->cfg = *cfg;
  kgrpc_limits(k, cfg);
  *out = &k->fe;
  return PD_OK;
}
