/* kserve_load: the gRPC load generator of bench/kserve. N clients talk to
 * planktond's KServe v2 gRPC front end (inference.GRPCInferenceService) the
 * way a Triton client does: each over its own channel (its own HTTP/2
 * connection), with gRPC core's C API, keeping one request in flight
 * (closed loop, like bench/daemon_load with --window 1). --mode stream: one
 * ModelStreamInfer call per client for the whole run, one message out and
 * its answer back at a time; --mode unary: a ModelInfer call per request.
 * The crops are bench/daemon_load's (bench_crops.c): raw as a UINT8
 * [1,H,W] tensor in raw_input_contents, png as a BYTES [1] tensor (4-byte
 * little-endian length, then the PNG). --threads T spreads the clients over
 * T threads, each with its own completion queue. After a warm-up, a
 * measured period; prints one line:
 *   requests=N seconds=S rps=R p50_ms=A p99_ms=B errors=E answered=T mode=M
 * (latency: send to answer, requests sent in the measured period; errors:
 * every non-OK status, stream error_message, unreadable or empty answer in
 * the whole run, the first one also on stderr; answered: every good answer,
 * warm-up and tail included). Exit 0, or 1 when there was any error. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "bench_crops.h"
#include "grpc_service.pb-c.h"

#define SVC "/inference.GRPCInferenceService/"
#define CONNECT_S 10
#define UNARY_DEADLINE_S 30
#define STALL_S 30 /* after the end, what is still unanswered is cancelled */

typedef enum mode { MODE_STREAM, MODE_UNARY } mode;

typedef struct config {
  const char *address, *model;
  int clients, threads;
  mode m;
  double t_measure, t_end;
  grpc_slice msgs[BENCH_N_CROPS]; /* the packed ModelInferRequest of each crop */
} config;

typedef enum tag_kind { T_SEND, T_RECV, T_CLOSE, T_STATUS, T_UNARY } tag_kind;

struct client;
typedef struct ctag {
  tag_kind kind;
  struct client *c;
} ctag;

struct worker;
typedef struct client {
  struct worker *w;
  int index;
  grpc_channel *ch;
  grpc_call *call; /* stream: the one call; unary: the current one */
  uint64_t seq;    /* requests sent */
  double t0;
  int pending; /* batches started and not completed */
  bool sending, want_send, closing, want_close, failed;
  grpc_byte_buffer *send_bb, *recv_bb;
  grpc_metadata_array md_initial, md_trailing;
  grpc_status_code status;
  grpc_slice details;
  ctag t_send, t_recv, t_close, t_status, t_unary;
} client;

typedef struct worker {
  const config *cfg;
  grpc_completion_queue *cq;
  client **cs;
  int n, live;
  double *lat;
  size_t n_lat, cap_lat;
  long measured, errors, answered;
  char first_error[300];
  pthread_t th;
} worker;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static gpr_timespec in_seconds(double s) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_micros((int64_t)(s * 1e6), GPR_TIMESPAN));
}

static void fail(client *c, const char *what, const char *detail) {
  worker *w = c->w;
  w->errors++;
  if (!w->first_error[0])
    snprintf(w->first_error, sizeof w->first_error, "client %d: %s%s%s", c->index, what,
             detail && *detail ? ": " : "", detail ? detail : "");
}

static int pack_request(const config *cfg, const bench_crop *cr, bool png, grpc_slice *out) {
  Inference__ModelInferRequest rq = INFERENCE__MODEL_INFER_REQUEST__INIT;
  Inference__ModelInferRequest__InferInputTensor in =
      INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
  Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
  int64_t shape[3] = {1, cr->h, cr->w};
  ProtobufCBinaryData raw;
  uint8_t *bytes = NULL;
  rq.model_name = (char *)cfg->model;
  in.name = (char *)"IMAGE";
  in.shape = shape;
  if (png) {
    in.datatype = (char *)"BYTES";
    in.n_shape = 1;
    bytes = malloc(4 + cr->png_len);
    if (!bytes) return -1;
    for (int i = 0; i < 4; i++)
      bytes[i] = (uint8_t)(cr->png_len >> (8 * i));
    memcpy(bytes + 4, cr->png, cr->png_len);
    raw.data = bytes;
    raw.len = 4 + cr->png_len;
  } else {
    in.datatype = (char *)"UINT8";
    in.n_shape = 3;
    raw.data = cr->gray;
    raw.len = (size_t)cr->w * (size_t)cr->h;
  }
  rq.n_inputs = 1;
  rq.inputs = ins;
  rq.n_raw_input_contents = 1;
  rq.raw_input_contents = &raw;
  size_t len = inference__model_infer_request__get_packed_size(&rq);
  *out = grpc_slice_malloc(len);
  inference__model_infer_request__pack(&rq, GRPC_SLICE_START_PTR(*out));
  free(bytes);
  return 0;
}

/* The answer's bytes, unpacked: NULL (and the error counted) when the
 * message cannot be read, carries an error or holds no output. */
static grpc_slice read_bb(grpc_byte_buffer *bb, bool *ok) {
  grpc_byte_buffer_reader rd;
  *ok = grpc_byte_buffer_reader_init(&rd, bb) != 0;
  if (!*ok) return grpc_empty_slice();
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  return s;
}

static bool check_answer(client *c, grpc_byte_buffer *bb, bool stream) {
  bool ok;
  grpc_slice s = read_bb(bb, &ok);
  if (!ok) {
    fail(c, "an answer message could not be read", NULL);
    return false;
  }
  const uint8_t *p = GRPC_SLICE_START_PTR(s);
  size_t n = GRPC_SLICE_LENGTH(s);
  bool good = false;
  if (stream) {
    Inference__ModelStreamInferResponse *r =
        inference__model_stream_infer_response__unpack(NULL, n, p);
    if (!r)
      fail(c, "a ModelStreamInferResponse could not be parsed", NULL);
    else if (r->error_message && r->error_message[0])
      fail(c, "stream error_message", r->error_message);
    else if (!r->infer_response || r->infer_response->n_outputs < 1)
      fail(c, "a stream answer without outputs", NULL);
    else
      good = true;
    if (r) inference__model_stream_infer_response__free_unpacked(r, NULL);
  } else {
    Inference__ModelInferResponse *r = inference__model_infer_response__unpack(NULL, n, p);
    if (!r)
      fail(c, "a ModelInferResponse could not be parsed", NULL);
    else if (r->n_outputs < 1)
      fail(c, "an answer without outputs", NULL);
    else
      good = true;
    if (r) inference__model_infer_response__free_unpacked(r, NULL);
  }
  grpc_slice_unref(s);
  return good;
}

static void record(client *c, double t) {
  worker *w = c->w;
  w->answered++;
  if (c->t0 < w->cfg->t_measure || c->t0 >= w->cfg->t_end) return;
  w->measured++;
  if (w->n_lat == w->cap_lat) {
    size_t cap = w->cap_lat ? w->cap_lat * 2 : 1 << 16;
    double *grown = realloc(w->lat, cap * sizeof *grown);
    if (!grown) return; /* the latency is lost, the count is not */
    w->lat = grown;
    w->cap_lat = cap;
  }
  w->lat[w->n_lat++] = (t - c->t0) * 1e3;
}

static grpc_byte_buffer *next_message(client *c) {
  const config *cfg = c->w->cfg;
  grpc_slice s = cfg->msgs[(c->seq * 7 + (uint64_t)c->index) % BENCH_N_CROPS];
  c->seq++;
  return grpc_raw_byte_buffer_create(&s, 1); /* takes its own ref: no copy */
}

static bool batch(client *c, const grpc_op *ops, size_t n, ctag *t) {
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
  if (e != GRPC_CALL_OK) {
    char d[32];
    snprintf(d, sizeof d, "grpc_call_error %d", (int)e);
    fail(c, "a batch could not be started", d);
    return false;
  }
  c->pending++;
  return true;
}

/* ---- streaming ---- */

static void stream_send(client *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  c->send_bb = next_message(c);
  op.data.send_message.send_message = c->send_bb;
  c->t0 = now_s();
  c->want_send = false;
  if (batch(c, &op, 1, &c->t_send)) c->sending = true;
}

static void stream_recv(client *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  batch(c, &op, 1, &c->t_recv);
}

static void stream_close(client *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  c->want_close = false;
  c->closing = true;
  batch(c, &op, 1, &c->t_close);
}

static void stream_start(client *c) {
  c->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->w->cq,
                                     grpc_slice_from_static_string(SVC "ModelStreamInfer"), NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &c->md_trailing;
  ops[0].data.recv_status_on_client.status = &c->status;
  ops[0].data.recv_status_on_client.status_details = &c->details;
  if (!batch(c, ops, 1, &c->t_status)) return;
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = 0;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  c->send_bb = next_message(c);
  ops[1].data.send_message.send_message = c->send_bb;
  c->t0 = now_s();
  if (batch(c, ops, 2, &c->t_send)) c->sending = true;
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &c->recv_bb;
  batch(c, ops, 2, &c->t_recv);
}

static void on_stream_event(client *c, tag_kind k, bool ok) {
  switch (k) {
  case T_SEND:
    c->sending = false;
    grpc_byte_buffer_destroy(c->send_bb);
    c->send_bb = NULL;
    if (!ok) {
      c->failed = true; /* the status says why */
      break;
    }
    if (c->want_send) stream_send(c);
    if (c->want_close && !c->sending) stream_close(c);
    break;
  case T_RECV: {
    grpc_byte_buffer *bb = c->recv_bb;
    c->recv_bb = NULL;
    if (!ok || !bb) {
      /* the stream ended: after our close, as it should; else the status
       * (counted there when not OK) says why, or it ended early */
      if (!c->closing) c->failed = true;
      break;
    }
    double t = now_s();
    bool good = check_answer(c, bb, true);
    grpc_byte_buffer_destroy(bb);
    if (good) record(c, t);
    if (c->closing) {
      fail(c, "an answer after the client closed its side", NULL);
    } else if (t < c->w->cfg->t_end) {
      if (c->sending)
        c->want_send = true;
      else
        stream_send(c);
    } else if (c->sending) {
      c->want_close = true;
    } else {
      stream_close(c);
    }
    stream_recv(c); /* the next answer, or the end of the stream */
    break;
  }
  case T_CLOSE:
    break;
  case T_STATUS:
    if (c->status != GRPC_STATUS_OK) {
      char *d = grpc_slice_to_c_string(c->details);
      char what[64];
      snprintf(what, sizeof what, "stream status %d", (int)c->status);
      fail(c, what, d);
      gpr_free(d);
    } else if (c->failed) {
      fail(c, "the stream ended with status OK before the client closed it", NULL);
    }
    break;
  case T_UNARY:
    break;
  }
}

/* ---- unary ---- */

static void unary_start(client *c) {
  c->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->w->cq,
                                     grpc_slice_from_static_string(SVC "ModelInfer"), NULL,
                                     in_seconds(UNARY_DEADLINE_S), NULL);
  c->recv_bb = NULL;
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  c->send_bb = next_message(c);
  ops[1].data.send_message.send_message = c->send_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->recv_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->md_trailing;
  ops[5].data.recv_status_on_client.status = &c->status;
  ops[5].data.recv_status_on_client.status_details = &c->details;
  c->t0 = now_s();
  batch(c, ops, 6, &c->t_unary);
}

static void unary_end_call(client *c) {
  grpc_byte_buffer_destroy(c->send_bb);
  c->send_bb = NULL;
  if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
  c->recv_bb = NULL;
  grpc_metadata_array_destroy(&c->md_initial);
  grpc_metadata_array_destroy(&c->md_trailing);
  grpc_metadata_array_init(&c->md_initial); /* main destroys them once more */
  grpc_metadata_array_init(&c->md_trailing);
  grpc_slice_unref(c->details);
  c->details = grpc_empty_slice();
  grpc_call_unref(c->call);
  c->call = NULL;
}

static void on_unary_event(client *c, bool ok) {
  double t = now_s();
  if (!ok) {
    fail(c, "the ModelInfer batch failed", NULL);
  } else if (c->status != GRPC_STATUS_OK) {
    char *d = grpc_slice_to_c_string(c->details);
    char what[64];
    snprintf(what, sizeof what, "ModelInfer status %d", (int)c->status);
    fail(c, what, d);
    gpr_free(d);
  } else if (!c->recv_bb) {
    fail(c, "ModelInfer answered OK without a message", NULL);
  } else if (check_answer(c, c->recv_bb, false)) {
    record(c, t);
  }
  unary_end_call(c);
  if (t < c->w->cfg->t_end) unary_start(c);
}

/* ---- the threads ---- */

static void dispatch(worker *w, ctag *t, bool ok) {
  client *c = t->c;
  c->pending--;
  if (t->kind == T_UNARY)
    on_unary_event(c, ok);
  else
    on_stream_event(c, t->kind, ok);
  if (c->pending == 0) w->live--; /* this client is done */
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (int i = 0; i < w->n; i++) {
    if (w->cfg->m == MODE_STREAM)
      stream_start(w->cs[i]);
    else
      unary_start(w->cs[i]);
    if (w->cs[i]->pending == 0) w->live--;
  }
  bool cancelled = false;
  while (w->live > 0) {
    grpc_event e = grpc_completion_queue_next(w->cq, in_seconds(0.2), NULL);
    if (e.type == GRPC_OP_COMPLETE) dispatch(w, e.tag, e.success != 0);
    if (!cancelled && now_s() > w->cfg->t_end + STALL_S) {
      cancelled = true;
      for (int i = 0; i < w->n; i++)
        if (w->cs[i]->pending > 0 && w->cs[i]->call) {
          fail(w->cs[i], "no answer within 30 s after the end; call cancelled", NULL);
          grpc_call_cancel(w->cs[i]->call, NULL);
        }
    }
  }
  return NULL;
}

static int connect_channel(client *c, grpc_completion_queue *cq, const char *address) {
  grpc_arg args[1];
  memset(args, 0, sizeof args);
  /* a connection of its own, like a Triton client per InferenceServerClient
   * (channels of one process would otherwise share a subchannel) */
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
  args[0].value.integer = 1;
  grpc_channel_args cargs = {1, args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create(address, creds, &cargs);
  grpc_channel_credentials_release(creds);
  double end = now_s() + CONNECT_S;
  grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->ch, 1);
  while (st != GRPC_CHANNEL_READY && now_s() < end) {
    grpc_channel_watch_connectivity_state(c->ch, st, in_seconds(end - now_s()), cq, NULL);
    grpc_event e = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    (void)e;
    st = grpc_channel_check_connectivity_state(c->ch, 1);
  }
  return st == GRPC_CHANNEL_READY ? 0 : -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: kserve_load --address HOST:PORT|unix:PATH --model NAME [--mode stream|unary]\n"
          "                   [--clients N] [--format raw|png] [--seconds S] [--warmup S]\n"
          "                   [--threads T]\n"
          "N clients (default 8), each on its own gRPC channel with one request in flight,\n"
          "against planktond's KServe gRPC front end; T threads (default 1), one completion\n"
          "queue each. Prints: requests= seconds= rps= p50_ms= p99_ms= errors= answered= mode=\n");
}

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end || !(x >= lo && x <= hi)) {
    fprintf(stderr, "kserve_load: %s \"%s\": want a number from %g to %g\n", opt, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

int main(int argc, char **argv) {
  config cfg = {.clients = 8, .threads = 1, .m = MODE_STREAM};
  const char *format = "raw";
  double seconds = 5, warmup = 1, x;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "kserve_load: %s needs a value\n", o);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(o, "--address")) {
      cfg.address = v;
    } else if (!strcmp(o, "--model")) {
      cfg.model = v;
    } else if (!strcmp(o, "--format")) {
      if (strcmp(v, "raw") != 0 && strcmp(v, "png") != 0) {
        fprintf(stderr, "kserve_load: --format \"%s\": want raw or png\n", v);
        return 2;
      }
      format = v;
    } else if (!strcmp(o, "--mode")) {
      if (strcmp(v, "stream") != 0 && strcmp(v, "unary") != 0) {
        fprintf(stderr, "kserve_load: --mode \"%s\": want stream or unary\n", v);
        return 2;
      }
      cfg.m = !strcmp(v, "stream") ? MODE_STREAM : MODE_UNARY;
    } else if (!strcmp(o, "--clients")) {
      if (parse_num(o, v, 1, 4096, &x)) return 2;
      cfg.clients = (int)x;
    } else if (!strcmp(o, "--threads")) {
      if (parse_num(o, v, 1, 64, &x)) return 2;
      cfg.threads = (int)x;
    } else if (!strcmp(o, "--seconds")) {
      if (parse_num(o, v, 0.01, 86400, &seconds)) return 2;
    } else if (!strcmp(o, "--warmup")) {
      if (parse_num(o, v, 0, 86400, &warmup)) return 2;
    } else {
      fprintf(stderr, "kserve_load: unknown option %s\n", o);
      usage(stderr);
      return 2;
    }
  }
  if (!cfg.address || !cfg.model) {
    fprintf(stderr, "kserve_load: --address and --model are required\n");
    usage(stderr);
    return 2;
  }
  if (cfg.threads > cfg.clients) cfg.threads = cfg.clients;
  bool png = !strcmp(format, "png");
  for (int i = 0; i < BENCH_N_CROPS; i++) {
    bench_crop cr;
    if (bench_crop_make(&cr, (uint64_t)i + 1) != 0 || (png && bench_crop_png(&cr) != 0) ||
        pack_request(&cfg, &cr, png, &cfg.msgs[i]) != 0) {
      fprintf(stderr, "kserve_load: out of memory for the crops\n");
      return 1;
    }
    bench_crop_free(&cr);
  }

  grpc_init();
  worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
  client *cs = calloc((size_t)cfg.clients, sizeof *cs);
  if (!ws || !cs) {
    fprintf(stderr, "kserve_load: out of memory\n");
    return 1;
  }
  for (int t = 0; t < cfg.threads; t++) {
    ws[t].cfg = &cfg;
    ws[t].cq = grpc_completion_queue_create_for_next(NULL);
    ws[t].cs = calloc((size_t)cfg.clients / (size_t)cfg.threads + 1, sizeof(client *));
    if (!ws[t].cs) {
      fprintf(stderr, "kserve_load: out of memory\n");
      return 1;
    }
  }
  for (int i = 0; i < cfg.clients; i++) {
    client *c = &cs[i];
    worker *w = &ws[i % cfg.threads];
    c->w = w;
    c->index = i;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    c->t_send = (ctag){T_SEND, c};
    c->t_recv = (ctag){T_RECV, c};
    c->t_close = (ctag){T_CLOSE, c};
    c->t_status = (ctag){T_STATUS, c};
    c->t_unary = (ctag){T_UNARY, c};
    w->cs[w->n++] = c;
    if (connect_channel(c, w->cq, cfg.address) != 0) {
      fprintf(stderr, "kserve_load: client %d: cannot connect to %s within %d s\n", i, cfg.address,
              CONNECT_S);
      return 1;
    }
  }
  double t0 = now_s();
  cfg.t_measure = t0 + warmup;
  cfg.t_end = cfg.t_measure + seconds;
  for (int t = 0; t < cfg.threads; t++) {
    ws[t].live = ws[t].n;
    if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) {
      fprintf(stderr, "kserve_load: cannot start thread %d\n", t);
      return 1;
    }
  }
  long measured = 0, errors = 0, answered = 0;
  size_t n_lat = 0;
  for (int t = 0; t < cfg.threads; t++) {
    pthread_join(ws[t].th, NULL);
    measured += ws[t].measured;
    errors += ws[t].errors;
    answered += ws[t].answered;
    n_lat += ws[t].n_lat;
    if (ws[t].first_error[0] && ws[t].errors)
      fprintf(stderr, "kserve_load: %ld errors on thread %d, the first: %s\n", ws[t].errors, t,
              ws[t].first_error);
  }
  double *lat = malloc((n_lat ? n_lat : 1) * sizeof *lat);
  if (!lat) {
    fprintf(stderr, "kserve_load: out of memory for the latencies\n");
    return 1;
  }
  size_t k = 0;
  for (int t = 0; t < cfg.threads; t++) {
    if (ws[t].n_lat) memcpy(lat + k, ws[t].lat, ws[t].n_lat * sizeof *lat);
    k += ws[t].n_lat;
  }
  qsort(lat, n_lat, sizeof *lat, cmp_double);
  printf("requests=%ld seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%ld answered=%ld "
         "mode=%s\n",
         measured, seconds, (double)measured / seconds, n_lat ? lat[n_lat / 2] : 0.0,
         n_lat ? lat[(size_t)(0.99 * (double)(n_lat - 1))] : 0.0, errors, answered,
         cfg.m == MODE_STREAM ? "stream" : "unary");
  fflush(stdout);

  for (int i = 0; i < cfg.clients; i++) {
    client *c = &cs[i];
    if (c->call) grpc_call_unref(c->call);
    if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
    if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->details);
    grpc_channel_destroy(c->ch);
  }
  for (int t = 0; t < cfg.threads; t++) {
    grpc_completion_queue_shutdown(ws[t].cq);
    while (grpc_completion_queue_next(ws[t].cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(ws[t].cq);
    free(ws[t].cs);
    free(ws[t].lat);
  }
  for (int i = 0; i < BENCH_N_CROPS; i++)
    grpc_slice_unref(cfg.msgs[i]);
  free(lat);
  free(cs);
  free(ws);
  grpc_shutdown();
  return errors ? 1 : 0;
}
