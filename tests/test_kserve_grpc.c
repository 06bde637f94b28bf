/* test_kserve_grpc: the KServe front end's gRPC transport (pd_kserve_grpc)
 * on a real libuv loop, called by gRPC's own client (the core C API) from
 * another thread over TCP and a Unix socket: unary answers and statuses,
 * an unknown method, a message over the size limit, the deadline, a
 * bidirectional stream answered in order, and the drain (calls held by the
 * handler when it starts are still answered; an open stream answers what it
 * owes and ends UNAVAILABLE; new calls are refused). Cases
 * (pd_test_cases.h): refusals, unary_answers, message_limit, streams, drain,
 * each on a server of its own. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <uv.h>

#include "pd_kserve_grpc.h"
#include "pd_test_cases.h"

enum { M_UNARY, M_STREAM, M_COUNT };
static const pd_kgrpc_method methods[M_COUNT] = {
    {"/t.Echo/Unary", PD_KGRPC_UNARY},
    {"/t.Echo/Stream", PD_KGRPC_STREAM},
};

typedef struct server_side {
  uv_loop_t *loop;
  pd_kgrpc *srv;
  uv_async_t drain;
  int drained;
  int held; /* "later" answers being held */
  pd_test_state *st;
} server_side;

typedef struct held {
  uv_timer_t timer;
  pd_kgrpc_call *call;
  int stream;
  server_side *ss;
  char text[64];
} held;

static void on_held_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_held(uv_timer_t *t) {
  held *h = t->data;
  char out[96];
  int n = snprintf(out, sizeof out, "late:%s", h->text);
  if (h->stream)
    pd_kgrpc_stream_reply(h->call, (const uint8_t *)out, (size_t)n);
  else
    pd_kgrpc_finish(h->call, 0, NULL, (const uint8_t *)out, (size_t)n);
  h->ss->held--;
  uv_close((uv_handle_t *)&h->timer, on_held_closed);
}

static void on_request(pd_kgrpc_call *call, int method, const uint8_t *msg, size_t len,
                       void *data) {
  server_side *ss = data;
  char text[64];
  size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
  memcpy(text, msg, n);
  text[n] = 0;
  if (strncmp(text, "later", 5) == 0) {
    held *h = calloc(1, sizeof *h);
    h->call = call;
    h->stream = method == M_STREAM;
    h->ss = ss;
    snprintf(h->text, sizeof h->text, "%s", text);
    uv_timer_init(ss->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_held, 300, 0);
    ss->held++;
    return;
  }
  if (strcmp(text, "deadline") == 0) {
    uint64_t d = pd_kgrpc_deadline_ns(call);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    /* the client gave 5 s */
    const char *a = d > now && d <= now + 5100000000u && d > now + 3000000000u ? "ok" : "bad";
    pd_kgrpc_finish(call, 0, NULL, (const uint8_t *)a, strlen(a));
    return;
  }
  if (method == M_UNARY && strncmp(text, "fail:", 5) == 0) {
    pd_kgrpc_finish(call, 3, text + 5, NULL, 0);
    return;
  }
  if (method == M_UNARY && len > 1000) {
    char a[32];
    int k = snprintf(a, sizeof a, "big:%zu", len);
    pd_kgrpc_finish(call, 0, NULL, (const uint8_t *)a, (size_t)k);
    return;
  }
  char out[96];
  int k = snprintf(out, sizeof out, "echo:%s", text);
  if (method == M_STREAM)
    pd_kgrpc_stream_reply(call, (const uint8_t *)out, (size_t)k);
  else
    pd_kgrpc_finish(call, 0, NULL, (const uint8_t *)out, (size_t)k);
}

static void on_drained(void *data) {
  server_side *ss = data;
  ss->drained = 1;
  uv_close((uv_handle_t *)&ss->drain, NULL);
}

static void on_drain(uv_async_t *a) {
  server_side *ss = a->data;
  pd_kgrpc_shutdown(ss->srv, on_drained, ss);
}

/* ---- the client side (its own thread, gRPC's client API) ---- */

typedef struct answer {
  grpc_status_code status;
  char details[256];
  char body[256];
  size_t body_len;
} answer;

static gpr_timespec in_ms(long ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static void bb_text(grpc_byte_buffer *bb, char *out, size_t cap, size_t *len) {
  grpc_byte_buffer_reader rd;
  grpc_byte_buffer_reader_init(&rd, bb);
  grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
  size_t n = GRPC_SLICE_LENGTH(sl);
  *len = n;
  if (n > cap - 1) n = cap - 1;
  memcpy(out, GRPC_SLICE_START_PTR(sl), n);
  out[n] = 0;
  grpc_slice_unref(sl);
  grpc_byte_buffer_reader_destroy(&rd);
}

static void wait_tag(grpc_completion_queue *cq, void *t) {
  grpc_event e = grpc_completion_queue_pluck(cq, t, in_ms(20000), NULL);
  if (e.type != GRPC_OP_COMPLETE) {
    fprintf(stderr, "client: no completion within 20 s\n");
    abort();
  }
}

static answer unary(grpc_channel *ch, const char *method, const void *msg, size_t len,
                    long deadline_ms) {
  answer a;
  memset(&a, 0, sizeof a);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice m = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                             in_ms(deadline_ms), NULL);
  grpc_slice body = grpc_slice_from_copied_buffer(msg, len);
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
  grpc_slice_unref(body);
  grpc_byte_buffer *recv = NULL;
  grpc_metadata_array md0, md1;
  grpc_metadata_array_init(&md0);
  grpc_metadata_array_init(&md1);
  grpc_slice details;
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
  ops[5].data.recv_status_on_client.status = &a.status;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) abort();
  wait_tag(cq, (void *)1);
  if (recv) {
    bb_text(recv, a.body, sizeof a.body, &a.body_len);
    grpc_byte_buffer_destroy(recv);
  }
  char *d = grpc_slice_to_c_string(details);
  snprintf(a.details, sizeof a.details, "%s", d);
  gpr_free(d);
  grpc_slice_unref(details);
  grpc_byte_buffer_destroy(send);
  grpc_metadata_array_destroy(&md0);
  grpc_metadata_array_destroy(&md1);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, in_ms(1000), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return a;
}

/* A stream: sends every message (then half-closes when `close`), reads
 * answers until the status; answers joined with '|'. */
static answer stream(grpc_channel *ch, const char *const *msgs, int n, int close,
                     void (*after_first)(void *), void *arg) {
  answer a;
  memset(&a, 0, sizeof a);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice m = grpc_slice_from_static_string("/t.Echo/Stream");
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, in_ms(20000), NULL);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  grpc_call_start_batch(call, &op, 1, (void *)1, NULL);
  wait_tag(cq, (void *)1);
  grpc_metadata_array md0, md1;
  grpc_metadata_array_init(&md0);
  grpc_metadata_array_init(&md1);
  grpc_slice details;
  grpc_op st[1];
  memset(st, 0, sizeof st);
  st[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st[0].data.recv_status_on_client.trailing_metadata = &md1;
  st[0].data.recv_status_on_client.status = &a.status;
  st[0].data.recv_status_on_client.status_details = &details;
  grpc_call_start_batch(call, st, 1, (void *)9, NULL);
  for (int i = 0; i < n; i++) {
    grpc_slice body = grpc_slice_from_copied_string(msgs[i]);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = send;
    grpc_call_start_batch(call, &op, 1, (void *)2, NULL);
    wait_tag(cq, (void *)2);
    grpc_byte_buffer_destroy(send);
  }
  if (close) {
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    grpc_call_start_batch(call, &op, 1, (void *)3, NULL);
    wait_tag(cq, (void *)3);
  }
  int first = 1;
  size_t used = 0;
  for (;;) {
    grpc_byte_buffer *recv = NULL;
    grpc_op r[2];
    int nr = 0;
    memset(r, 0, sizeof r);
    if (first) {
      r[nr].op = GRPC_OP_RECV_INITIAL_METADATA;
      r[nr++].data.recv_initial_metadata.recv_initial_metadata = &md0;
    }
    r[nr].op = GRPC_OP_RECV_MESSAGE;
    r[nr++].data.recv_message.recv_message = &recv;
    grpc_call_start_batch(call, r, (size_t)nr, (void *)4, NULL);
    wait_tag(cq, (void *)4);
    if (!recv) break;
    char text[128];
    size_t len;
    bb_text(recv, text, sizeof text, &len);
    grpc_byte_buffer_destroy(recv);
    used += (size_t)snprintf(a.body + used, sizeof a.body - used, "%s%s", used ? "|" : "", text);
    if (first && after_first) after_first(arg);
    first = 0;
  }
  wait_tag(cq, (void *)9);
  char *d = grpc_slice_to_c_string(details);
  snprintf(a.details, sizeof a.details, "%s", d);
  gpr_free(d);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md0);
  grpc_metadata_array_destroy(&md1);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, in_ms(1000), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return a;
}

typedef struct client_side client_side;
/* A case's calls, on a TCP and a Unix channel to the server. */
typedef void (*client_calls)(pd_test_state *st, client_side *cs, grpc_channel *tcp,
                             grpc_channel *ux);
struct client_side {
  server_side *ss;
  char tcp[64], unix_target[300];
  pd_test_state *st;
  client_calls calls;
  bool drains; /* the calls start the drain themselves */
};

typedef struct later_call {
  grpc_channel *ch;
  char text[32];
  answer a;
} later_call;

static void *later_main(void *arg) {
  later_call *l = arg;
  l->a = unary(l->ch, "/t.Echo/Unary", l->text, strlen(l->text), 20000);
  return NULL;
}

static void start_drain(void *arg) {
  server_side *ss = arg;
  uv_async_send(&ss->drain);
}

static void *client_main(void *arg) {
  client_side *cs = arg;
  grpc_channel_credentials *cc = grpc_insecure_credentials_create();
  grpc_channel *tcp = grpc_channel_create(cs->tcp, cc, NULL);
  grpc_channel *ux = grpc_channel_create(cs->unix_target, cc, NULL);
  if (cs->calls) cs->calls(cs->st, cs, tcp, ux);
  if (!cs->drains) start_drain(cs->ss); /* the server ends, and with it the loop */
  grpc_channel_destroy(tcp);
  grpc_channel_destroy(ux);
  grpc_channel_credentials_release(cc);
  return NULL;
}

/* Unary calls over TCP and the Unix socket: answers, a status with its
 * details, an unknown method, the deadline the handler sees. */
static void unary_calls(pd_test_state *st, client_side *cs, grpc_channel *tcp, grpc_channel *ux) {
  (void)cs;
  answer a = unary(tcp, "/t.Echo/Unary", "hello", 5, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  PD_CHECK(st, strcmp(a.body, "echo:hello") == 0);

  a = unary(ux, "/t.Echo/Unary", "over unix", 9, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  PD_CHECK(st, strcmp(a.body, "echo:over unix") == 0);

  a = unary(tcp, "/t.Echo/Unary", "fail:element 2 is not an image", 30, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_INVALID_ARGUMENT);
  PD_CHECK_CONTAINS(st, a.details, "element 2 is not an image");
  PD_CHECK_INT(st, a.body_len, 0);

  a = unary(tcp, "/t.Echo/Nothing", "x", 1, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_UNIMPLEMENTED);

  a = unary(tcp, "/t.Echo/Unary", "deadline", 8, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  PD_CHECK(st, strcmp(a.body, "ok") == 0);
}

static void message_limit_calls(pd_test_state *st, client_side *cs, grpc_channel *tcp,
                                grpc_channel *ux) {
  (void)cs;
  (void)ux;
  /* the limit is 64 KiB: 60 KiB passes, 100 KiB is refused by gRPC */
  size_t big = 60 * 1024;
  char *buf = calloc(1, 100 * 1024);
  memset(buf, 'x', 100 * 1024);
  answer a = unary(tcp, "/t.Echo/Unary", buf, big, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  PD_CHECK(st, strcmp(a.body, "big:61440") == 0);
  a = unary(tcp, "/t.Echo/Unary", buf, 100 * 1024, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
  free(buf);
  /* and the connection still serves */
  a = unary(tcp, "/t.Echo/Unary", "after", 5, 5000);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
}

/* Bidirectional streams answered in the order answered. */
static void stream_calls(pd_test_state *st, client_side *cs, grpc_channel *tcp, grpc_channel *ux) {
  (void)cs;
  const char *msgs[] = {"a", "later1", "b", "c", "d"};
  answer a = stream(tcp, msgs, 5, 1, NULL, NULL);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  /* in the order answered: the held one comes last */
  PD_CHECK(st, strcmp(a.body, "echo:a|echo:b|echo:c|echo:d|late:later1") == 0);
  if (strcmp(a.body, "echo:a|echo:b|echo:c|echo:d|late:later1") != 0)
    fprintf(stderr, "stream got \"%s\"\n", a.body);
  a = stream(ux, msgs, 1, 1, NULL, NULL);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_OK);
  PD_CHECK(st, strcmp(a.body, "echo:a") == 0);
}

static void drain_calls(pd_test_state *st, client_side *cs, grpc_channel *tcp, grpc_channel *ux) {
  /* the drain: three held unary calls, and a stream that owes a held answer
   * when the drain starts (started from the stream's first answer) */
  later_call l[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    l[i].ch = i == 1 ? ux : tcp;
    snprintf(l[i].text, sizeof l[i].text, "later-%d", i);
    pthread_create(&th[i], NULL, later_main, &l[i]);
  }
  usleep(100000); /* they are in (held for 300 ms) */
  const char *dmsgs[] = {"later-s", "first"};
  answer a = stream(tcp, dmsgs, 2, 0, start_drain, cs->ss);
  PD_CHECK_INT(st, a.status, GRPC_STATUS_UNAVAILABLE);
  PD_CHECK(st, strcmp(a.body, "echo:first|late:later-s") == 0);
  if (strcmp(a.body, "echo:first|late:later-s") != 0) fprintf(stderr, "got \"%s\"\n", a.body);
  PD_CHECK_CONTAINS(st, a.details, "draining");
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    PD_CHECK_INT(st, l[i].a.status, GRPC_STATUS_OK);
    char want[64];
    snprintf(want, sizeof want, "late:later-%d", i);
    PD_CHECK(st, strcmp(l[i].a.body, want) == 0);
  }
  /* a new call after the drain began: refused */
  a = unary(tcp, "/t.Echo/Unary", "too late", 8, 2000);
  PD_CHECK(st, a.status != GRPC_STATUS_OK);
}

/* ---- the cases (pd_test_cases.h): each on a server of its own, drained at
 * the end ---- */

/* Runs a server on a loop of its own, `calls` against it from a client
 * thread, then the drain; with `refusals`, the bad start-ups first. */
static void serve(pd_test_state *st, client_calls calls, bool drains, bool refusals) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char dir[] = "/tmp/pd-kgrpc-XXXXXX";
  if (!mkdtemp(dir)) {
    PD_CHECK(st, !"mkdtemp");
    return;
  }
  char unix_addr[300];
  snprintf(unix_addr, sizeof unix_addr, "unix:%s/g.sock", dir);

  server_side ss = {.loop = &loop, .st = st};
  pd_kgrpc_options opt = {
      .methods = methods,
      .n_methods = M_COUNT,
      .listen = {"127.0.0.1:0", unix_addr},
      .n_listen = 2,
      .max_receive_message = 64 * 1024,
      .max_concurrent_streams = 16,
      .max_stream_in_flight = 8,
      .on_request = on_request,
      .data = &ss,
  };
  pd_error err = {0};

  pd_kgrpc *none = NULL;
  if (refusals) {
    /* bad addresses are refused with their name */
    pd_kgrpc_options bad = opt;
    bad.listen[0] = "no-port-here";
    bad.n_listen = 1;
    PD_CHECK(st, pd_kgrpc_start(&loop, &bad, &none, &err) != 0);
    PD_CHECK_CONTAINS(st, err.msg, "no-port-here");
    bad.listen[0] = "unix:/tmp/x.sock";
    bad.socket_mode = 0666;
    PD_CHECK(st, pd_kgrpc_start(&loop, &bad, &none, &err) != 0);
    PD_CHECK_CONTAINS(st, err.msg, "world-writable");
  }
  if (pd_kgrpc_start(&loop, &opt, &ss.srv, &err) != 0) {
    fprintf(stderr, "start: %s\n", err.msg);
    PD_CHECK(st, !"the server started");
    return;
  }
  PD_CHECK(st, pd_kgrpc_port(ss.srv, 0) > 0);
  if (refusals) {
    /* a second server on the same Unix path is refused while the first lives */
    pd_kgrpc_options dup = opt;
    dup.listen[0] = unix_addr;
    dup.n_listen = 1;
    PD_CHECK(st, pd_kgrpc_start(&loop, &dup, &none, &err) != 0);
    PD_CHECK_CONTAINS(st, err.msg, "already listening");
  }
  uv_async_init(&loop, &ss.drain, on_drain);
  ss.drain.data = &ss;
  client_side cs = {.ss = &ss, .st = st, .calls = calls, .drains = drains};
  snprintf(cs.tcp, sizeof cs.tcp, "127.0.0.1:%d", pd_kgrpc_port(ss.srv, 0));
  snprintf(cs.unix_target, sizeof cs.unix_target, "%s", unix_addr);
  pthread_t client;
  pthread_create(&client, NULL, client_main, &cs);
  uv_run(&loop, UV_RUN_DEFAULT); /* ends when the server is gone */
  pthread_join(client, NULL);
  PD_CHECK_INT(st, ss.drained, 1);
  PD_CHECK_INT(st, ss.held, 0);
  PD_CHECK_INT(st, uv_loop_close(&loop), 0);
  char path[320];
  snprintf(path, sizeof path, "%s/g.sock", dir);
  unlink(path);
  rmdir(dir);
}

/* Bad addresses are refused with their name, a world-writable socket mode
 * too, and a second server on a live server's Unix path. */
static void refusals(pd_test_state *st) {
  serve(st, NULL, false, true);
}

static void unary_answers(pd_test_state *st) {
  serve(st, unary_calls, false, false);
}

/* The limit is 64 KiB: 60 KiB passes, 100 KiB is refused by gRPC, and the
 * connection still serves. */
static void message_limit(pd_test_state *st) {
  serve(st, message_limit_calls, false, false);
}

static void streams(pd_test_state *st) {
  serve(st, stream_calls, false, false);
}

/* The drain: held calls are still answered, an open stream answers what it
 * owes and ends UNAVAILABLE, a new call is refused. */
static void drain(pd_test_state *st) {
  serve(st, drain_calls, true, false);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(refusals), PD_TEST_CASE(unary_answers), PD_TEST_CASE(message_limit),
    PD_TEST_CASE(streams),  PD_TEST_CASE(drain),
};

PD_TEST_MAIN("kserve_grpc", NULL, NULL, k_cases)
