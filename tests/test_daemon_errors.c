/* Every bad input (frames, requests, images) gets its status, and the daemon keeps
 * answering another client all along (pd_td_bystander: a thread classifying
 * in a loop that must see only correct answers): truncated and corrupted PNG and JPEG, zero and
 * oversize dimensions, a raw image whose byte count is not width x height,
 * PNG bytes declared JPEG, TIFF crops (8- and 16-bit gray: the PNG's answer
 * exactly; declared the wrong format either way, RGB: refused), no image, an
 * unknown model, a TTA count over the
 * limit, a deadline that has passed, a request without a body (answered, the
 * connection lives), an oversize frame and garbage bytes (an error frame,
 * then the connection closes), a client that disconnects with requests in
 * flight, a client that never reads its answers (the daemon stops reading it
 * at the window and keeps its memory bounded), and a full queue
 * (RESOURCE_EXHAUSTED, on a second daemon with a tiny queue). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_bystander.h"
#include "pd_td_raw.h"
#include "pd_td_wait.h"
#include "pd_test_cases.h"
#include "pd_test_tiff.h"
#include "plankton.pb-c.h"

#include <tiffio.h>

#define WINDOW 16
#define PROB_TOL pd_td_prob_tol() /* pd_daemon_test.h */

static uint8_t *gray, *png, *jpeg;
static size_t png_len, jpeg_len;
static const int W = 64, H = 48;

/* ---- requests with a bad input: answered with a status, connection lives ---- */

static void expect(pd_test_state *st, pc_client *c, const char *what, pc_client_classify_request rq,
                   int status, const char *needle) {
  static uint64_t id = 1000;
  rq.id = ++id;
  pc_client_response *r = pd_td_classify(c, &rq);
  PD_CHECK(st, r != NULL);
  if (!r) return;
  PD_CHECK_INT(st, r->id, id);
  PD_CHECK_INT(st, r->status, status);
  if (needle) PD_CHECK_CONTAINS(st, r->message, needle);
  printf("%-34s -> %s: %s\n", what, pc_client_status_name(r->status), r->message);
  pc_client_response_free(r);
}

static pc_client_classify_request image(pc_client_image_format f, const void *data, size_t len) {
  pc_client_classify_request rq = {.format = f, .data = data, .len = len};
  return rq;
}

/* The full distribution of one request (NULL when not OK; free it). */
static float *distribution(pc_client *c, pc_client_classify_request rq, size_t *n) {
  rq.full_distribution = true;
  pc_client_response *r = pd_td_classify(c, &rq);
  float *out = NULL;
  *n = 0;
  if (r && r->status == 0 && r->u.classify.n_distribution) {
    *n = r->u.classify.n_distribution;
    out = malloc(*n * sizeof *out);
    memcpy(out, r->u.classify.distribution, *n * sizeof *out);
  }
  pc_client_response_free(r);
  return out;
}

/* TIFF over the native protocol: declared or sniffed, 8- and 16-bit gray
 * (values g * 257, which scale back to g exactly) give the PNG's answer to
 * the last digit; the wrong format declared either way, and RGB, are
 * refused naming what they are. */
static void tiff_requests_on(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 8);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  const int INV = PC_CLIENT_STATUS_INVALID_ARGUMENT;
  size_t t8_len = 0, t16_len = 0, rgb_len = 0;
  pd_test_tiff sp = {.width = (uint32_t)W,
                     .height = (uint32_t)H,
                     .bits = 8,
                     .samples = 1,
                     .photometric = PHOTOMETRIC_MINISBLACK,
                     .rows_per_strip = 5,
                     .pixels = gray};
  uint8_t *t8 = pd_test_tiff_write(&sp, &t8_len);
  uint16_t *g16 = malloc((size_t)W * H * 2);
  for (int i = 0; i < W * H; i++)
    g16[i] = (uint16_t)(gray[i] * 257u);
  sp.bits = 16;
  sp.pixels = g16;
  sp.tile_width = sp.tile_height = 16;
  uint8_t *t16 = pd_test_tiff_write(&sp, &t16_len);
  uint8_t *rgb_px = malloc((size_t)W * H * 3);
  memset(rgb_px, 200, (size_t)W * H * 3);
  pd_test_tiff rgb = {.width = (uint32_t)W,
                      .height = (uint32_t)H,
                      .bits = 8,
                      .samples = 3,
                      .photometric = PHOTOMETRIC_RGB,
                      .pixels = rgb_px};
  uint8_t *trgb = pd_test_tiff_write(&rgb, &rgb_len);
  PD_CHECK(st, t8 && t16 && trgb);
  if (t8 && t16 && trgb) {
    size_t np = 0, n8 = 0, n8a = 0, n16 = 0;
    float *p = distribution(c, image(PC_CLIENT_IMAGE_PNG, png, png_len), &np);
    float *a8 = distribution(c, image(PC_CLIENT_IMAGE_TIFF, t8, t8_len), &n8);
    float *a8s = distribution(c, image(PC_CLIENT_IMAGE_AUTO, t8, t8_len), &n8a);
    float *a16 = distribution(c, image(PC_CLIENT_IMAGE_TIFF, t16, t16_len), &n16);
    PD_CHECK(st, p && a8 && a8s && a16 && np > 0 && n8 == np && n8a == np && n16 == np);
    if (p && a8 && a8s && a16 && n8 == np && n8a == np && n16 == np) {
      PD_CHECK(st, !memcmp(a8, p, np * sizeof *p));
      PD_CHECK(st, !memcmp(a8s, p, np * sizeof *p));
      PD_CHECK(st, !memcmp(a16, p, np * sizeof *p));
      printf("%-34s -> the PNG's distribution, every bit\n", "TIFF 8-bit, 16-bit tiled");
    }
    free(p);
    free(a8);
    free(a8s);
    free(a16);
    expect(st, c, "PNG bytes declared TIFF", image(PC_CLIENT_IMAGE_TIFF, png, png_len), INV,
           "declared TIFF but the bytes are PNG");
    expect(st, c, "TIFF bytes declared PNG", image(PC_CLIENT_IMAGE_PNG, t8, t8_len), INV,
           "declared PNG but the bytes are TIFF");
    expect(st, c, "RGB TIFF", image(PC_CLIENT_IMAGE_AUTO, trgb, rgb_len), INV,
           "photometric interpretation RGB (2)");
    expect(st, c, "truncated TIFF", image(PC_CLIENT_IMAGE_TIFF, t8, t8_len / 2), INV, "TIFF");
  }
  free(t8);
  free(t16);
  free(trgb);
  free(g16);
  free(rgb_px);
  pc_client_close(c);
}

static void bad_requests_on(pd_test_state *st, const pd_td *d) {
  pc_client *c = pd_td_connect(d, 8);
  PD_CHECK(st, c != NULL);
  if (!c) return;
  const int INV = PC_CLIENT_STATUS_INVALID_ARGUMENT;
  uint8_t *bad = malloc(png_len + jpeg_len + 1000);

  expect(st, c, "good PNG", image(PC_CLIENT_IMAGE_PNG, png, png_len), 0, NULL);
  expect(st, c, "good JPEG", image(PC_CLIENT_IMAGE_JPEG, jpeg, jpeg_len), 0, NULL);
  expect(st, c, "truncated PNG", image(PC_CLIENT_IMAGE_PNG, png, png_len / 2), INV, "image");
  expect(st, c, "PNG cut in its header", image(PC_CLIENT_IMAGE_AUTO, png, 20), INV, "image");
  memcpy(bad, png, png_len);
  for (size_t i = 40; i < png_len; i += 7)
    bad[i] ^= 0x5a;
  expect(st, c, "corrupted PNG", image(PC_CLIENT_IMAGE_PNG, bad, png_len), INV, "image");
  expect(st, c, "truncated JPEG", image(PC_CLIENT_IMAGE_JPEG, jpeg, jpeg_len / 3), INV, "image");
  memcpy(bad, jpeg, jpeg_len);
  for (size_t i = 2; i < jpeg_len; i += 5)
    bad[i] ^= 0xa5;
  expect(st, c, "corrupted JPEG", image(PC_CLIENT_IMAGE_JPEG, bad, jpeg_len), INV, "image");
  expect(st, c, "PNG bytes declared JPEG", image(PC_CLIENT_IMAGE_JPEG, png, png_len), INV,
         "declared JPEG");
  memset(bad, 0x37, 1000);
  expect(st, c, "not an image", image(PC_CLIENT_IMAGE_AUTO, bad, 1000), INV, "image");
  expect(st, c, "no image", image(PC_CLIENT_IMAGE_AUTO, NULL, 0), INV, "no bytes");

  pc_client_classify_request raw = image(PC_CLIENT_IMAGE_RAW_GRAY8, gray, (size_t)W * H);
  raw.width = W;
  raw.height = H;
  expect(st, c, "good raw", raw, 0, NULL);
  pc_client_classify_request r2 = raw;
  r2.len = (size_t)W * H - 1;
  expect(st, c, "raw: bytes != width x height", r2, INV, "needs 3072");
  r2 = raw;
  r2.width = 0;
  r2.height = 0;
  r2.len = 0;
  expect(st, c, "raw: zero size", r2, INV, "0x0");
  r2 = raw;
  r2.width = 1001; /* limits.max_image_width 1000 */
  r2.height = 1;
  r2.len = 1001;
  uint8_t *wide = malloc(1001);
  memset(wide, 200, 1001);
  r2.data = wide;
  expect(st, c, "raw: wider than the limit", r2, INV, "1001x1");
  /* a PNG whose header declares 2000 x 2000 (over the limit) */
  size_t big_len;
  uint8_t *big_gray = calloc((size_t)2000 * 2000, 1);
  uint8_t *big_png = pd_td_png(big_gray, 2000, 2000, &big_len);
  expect(st, c, "PNG: 2000x2000 over the limit", image(PC_CLIENT_IMAGE_PNG, big_png, big_len), INV,
         "2000");
  free(big_gray);
  free(big_png);
  free(wide);

  pc_client_classify_request m = image(PC_CLIENT_IMAGE_PNG, png, png_len);
  m.model = "copepod-9000";
  expect(st, c, "unknown model", m, PC_CLIENT_STATUS_NOT_FOUND, "copepod-9000");
  m = image(PC_CLIENT_IMAGE_PNG, png, png_len);
  m.tta = 65; /* limits.max_tta 64 */
  expect(st, c, "TTA over the limit", m, INV, "tta 65");
  m = image(PC_CLIENT_IMAGE_PNG, png, png_len);
  m.deadline_us = 1;
  expect(st, c, "deadline already passed", m, PC_CLIENT_STATUS_DEADLINE_EXCEEDED, "deadline");
  expect(st, c, "good PNG after all that", image(PC_CLIENT_IMAGE_PNG, png, png_len), 0, NULL);
  free(bad);
  pc_client_close(c);
}

/* ---- raw sockets (pd_td_raw.h) ---- */

/* Sends bytes, expects one error frame with `status`, then the close. */
static void expect_broken(pd_test_state *st, const pd_td *d, const char *what, const uint8_t *bytes,
                          size_t len, int status) {
  int fd = pd_raw_connect(d->socket);
  PD_CHECK(st, fd >= 0);
  if (fd < 0) return;
  pd_raw_write(fd, bytes, len); /* the daemon may close before taking it all */
  bool ok = pd_raw_error_then_close(fd, status, NULL, pd_td_scaled_ms(10000));
  PD_CHECK(st, ok);
  printf("%-34s -> %s\n", what, ok ? "an error frame with its status, then the close" : "NOT SO");
  close(fd);
}

static uint8_t *classify_frame(uint64_t id, size_t *len) {
  return pd_raw_classify_frame(id, PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG, png, png_len, len);
}

static void broken_frames_on(pd_test_state *st, const pd_td *d) {
  /* over limits.max_frame_bytes (65536): refused at the header */
  uint8_t hdr[4] = {0, 2, 0, 0}; /* 131072 */
  expect_broken(st, d, "oversize frame (128 KiB)", hdr, 4, PC_CLIENT_STATUS_RESOURCE_EXHAUSTED);
  /* garbage: "GET / HTTP/1.1" reads as a ~1.2 GB length */
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  expect_broken(st, d, "garbage (an HTTP request)", (const uint8_t *)http, strlen(http),
                PC_CLIENT_STATUS_RESOURCE_EXHAUSTED);
  /* a frame of the right length whose bytes are not a Request */
  uint8_t junk[4 + 64];
  junk[0] = junk[1] = junk[2] = 0;
  junk[3] = 64;
  for (int i = 0; i < 64; i++)
    junk[4 + i] = (uint8_t)(0xff - i);
  expect_broken(st, d, "undecodable frame", junk, sizeof junk, PC_CLIENT_STATUS_INVALID_ARGUMENT);

  /* a request without a body is answered, and the connection lives */
  int fd = pd_raw_connect(d->socket);
  uint8_t empty[4] = {0, 0, 0, 0};
  pd_raw_write(fd, empty, 4);
  Plankton__Response *r = pd_raw_read_response(fd, pd_td_scaled_ms(10000));
  PD_CHECK(st, r && r->body_case == PLANKTON__RESPONSE__BODY_ERROR &&
                   r->error->status->code == PLANKTON__STATUS_CODE__UNIMPLEMENTED);
  if (r) plankton__response__free_unpacked(r, NULL);
  size_t flen;
  uint8_t *frame = classify_frame(77, &flen);
  pd_raw_write(fd, frame, flen);
  r = pd_raw_read_response(fd, pd_td_scaled_ms(10000));
  PD_CHECK(st, r && r->body_case == PLANKTON__RESPONSE__BODY_CLASSIFY && r->classify->id == 77 &&
                   r->classify->status->code == 0);
  printf("%-34s -> UNIMPLEMENTED, then the connection still classifies\n",
         "request without a body");
  if (r) plankton__response__free_unpacked(r, NULL);
  free(frame);
  close(fd);
  /* the broken connections are logged as closed */
  PD_CHECK(st, pd_td_wait_log(d, "closing", pd_td_scaled_s(1)));
}

/* Stats shows only the bystander (one connection, at most one request in
 * flight) besides the Stats connection itself. */
static bool only_bystander(const pc_client_stats_result *s, void *ctx) {
  (void)ctx;
  return s->connections <= 2 && s->in_flight <= 1;
}

/* Clients that send 50 requests each and leave at once: afterwards the
 * daemon's connections and requests in flight are back where they were
 * (polled, with a bounded wait), and it still serves. */
static void disconnect_in_flight_on(pd_test_state *st, const pd_td *d) {
  pc_client_response *before = NULL, *after = NULL;
  PD_CHECK(st, pd_td_poll_stats(d, only_bystander, NULL, 10000, &before));
  for (int k = 0; k < 3; k++) {
    pc_client *c = pd_td_connect(d, 64);
    for (int i = 0; c && i < 50; i++) {
      pc_client_classify_request rq = image(PC_CLIENT_IMAGE_PNG, png, png_len);
      rq.id = (uint64_t)i;
      pc_client_send_classify(c, &rq, NULL);
    }
    pc_client_close(c);
  }
  bool settled = pd_td_poll_stats(d, only_bystander, NULL, 10000, &after);
  PD_CHECK(st, settled);
  PD_CHECK(st, before && after);
  if (before && after) {
    const pc_client_stats_result *a = &after->u.stats, *b = &before->u.stats;
    PD_CHECK(st, a->connections_total >= b->connections_total + 3); /* the storm came */
    PD_CHECK(st, a->connections <= b->connections);
    printf("%-34s -> connections %u (before %u), in flight %u (before %u)\n",
           "3 clients leave with 50 in flight", a->connections, b->connections, a->in_flight,
           b->in_flight);
  }
  pc_client_response_free(before);
  pc_client_response_free(after);
}

static uint32_t stats_in_flight(const pd_td *d) {
  pc_client *c = pd_td_connect(d, 2);
  pc_client_response *r = NULL;
  uint32_t v = 0;
  if (c && pc_client_stats(c, &r, NULL) == PC_CLIENT_OK) v = r->u.stats.in_flight;
  pc_client_response_free(r);
  pc_client_close(c);
  return v;
}

/* A client that writes requests and never reads: the daemon stops reading
 * it once WINDOW answers are owed, so its writes block. */
static void never_reads_on(pd_test_state *st, const pd_td *d) {
  int fd = pd_raw_connect(d->socket);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  size_t flen;
  uint8_t *frame = classify_frame(1, &flen);
  /* write until the socket stays full for a second */
  bool blocked;
  long sent = pd_raw_fill(fd, frame, flen, 0, 1000, 20000, &blocked);
  PD_CHECK(st, blocked); /* the writes did block */
  uint32_t in_flight = stats_in_flight(d);
  /* owed answers on that connection are capped by the window: the daemon
   * holds at most WINDOW of them, whatever the client keeps sending */
  PD_CHECK(st, in_flight <= WINDOW);
  printf("%-34s -> daemon stopped reading after %ld frames (window %d, in flight %u)\n",
         "a client that never reads", sent, WINDOW, in_flight);
  free(frame);
  close(fd);
}

/* ---- the cases (pd_test_cases.h): each on a daemon of its own with the
 * limits below and a bystander client, which must still be served, with
 * only correct answers, when the case is done ---- */

static pd_td_crop_ref crop; /* gray, png and want_probs are its */
static float *want_probs;
static int n_classes;

static bool start(pd_test_state *st, pd_td_guarded *g) {
  const char *args[] = {"--max-in-flight",
                        "16",
                        "--max-frame-bytes",
                        "65536",
                        "--set",
                        "limits.max_image_width=1000",
                        "--set",
                        "limits.max_image_height=1000",
                        "--set",
                        "limits.max_image_pixels=1000000",
                        "--log-level",
                        "debug",
                        NULL};
  const pd_td_bystander by = {
      .png = png, .png_len = png_len, .want = want_probs, .n_classes = n_classes, .tol = PROB_TOL};
  if (!pd_td_guarded_start(st, g, args, &by)) return false;
  /* the bystander is connected and served before the case begins (the
   * connection counts of disconnect_in_flight include it) */
  PD_CHECK(st, pd_td_bystander_progress(&g->b, 5));
  return true;
}

static void stop(pd_test_state *st, pd_td_guarded *g) {
  /* and the bystander is still served */
  PD_CHECK(st, pd_td_bystander_progress(&g->b, 20));
  pd_td_guarded_stop(st, g);
}

/* One case on the shared daemon shape: start, the scenario, stop. */
#define ON_DAEMON(name)                                                                            \
  static void name(pd_test_state *st) {                                                            \
    pd_td_guarded f;                                                                               \
    if (!start(st, &f)) return;                                                                    \
    name##_on(st, &f.d);                                                                           \
    stop(st, &f);                                                                                  \
  }
/* A full queue, on a daemon of its own with a tiny queue: RESOURCE_EXHAUSTED. */
static void queue_full(pd_test_state *st) {
  pd_td d;
  const char *args[] = {"--max-batch", "4",         "--max-queue", "4", "--max-queue-delay-us",
                        "200000",      "--threads", "1",           NULL};
  if (pd_td_start(&d, args) != 0) {
    PD_CHECK(st, 0);
    pd_td_cleanup(&d);
    return;
  }
  pc_client *c = pd_td_connect(&d, 64);
  enum { N = 64 };
  for (int i = 0; i < N; i++) {
    pc_client_classify_request rq = image(PC_CLIENT_IMAGE_PNG, png, png_len);
    rq.id = (uint64_t)i;
    PD_CHECK_INT(st, pc_client_send_classify(c, &rq, NULL), PC_CLIENT_OK);
  }
  int answered = 0, ok = 0, exhausted = 0;
  pc_client_error err;
  while (answered < N && pc_client_wait(c, 10000, &err) == PC_CLIENT_OK) {
    pc_client_response *r;
    while (pc_client_next_response(c, &r) == PC_CLIENT_OK) {
      answered++;
      ok += r->status == 0;
      exhausted += r->status == PC_CLIENT_STATUS_RESOURCE_EXHAUSTED;
      if (r->status == PC_CLIENT_STATUS_RESOURCE_EXHAUSTED)
        PD_CHECK_CONTAINS(st, r->message, "max_queue");
      pc_client_response_free(r);
    }
  }
  PD_CHECK_INT(st, answered, N);
  PD_CHECK_INT(st, ok + exhausted, N);
  PD_CHECK(st, exhausted > 0 && ok >= 4);
  printf("%-34s -> %d OK, %d RESOURCE_EXHAUSTED\n", "64 pipelined, max_queue 4", ok, exhausted);
  pc_client_close(c);
  PD_CHECK_INT(st, pd_td_stop(&d, SIGTERM, pd_td_scaled_s(30)), 0);
  pd_td_cleanup(&d);
}

ON_DAEMON(bad_requests)
ON_DAEMON(tiff_requests)
ON_DAEMON(broken_frames)
ON_DAEMON(disconnect_in_flight)
ON_DAEMON(never_reads)

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  if (pd_td_crop_one(&crop, 5, W, H, &n_classes) != 0) return 1;
  gray = crop.gray;
  png = crop.png;
  png_len = crop.png_len;
  want_probs = crop.probs;
  jpeg = pd_td_jpeg(gray, W, H, &jpeg_len);
  return jpeg ? 0 : 1;
}

static void teardown(void) {
  pd_td_crops_free(&crop, 1);
  free(jpeg);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(bad_requests),         PD_TEST_CASE(tiff_requests), PD_TEST_CASE(broken_frames),
    PD_TEST_CASE(disconnect_in_flight), PD_TEST_CASE(never_reads),   PD_TEST_CASE(queue_full),
};

PD_TEST_MAIN("daemon_errors", setup, teardown, k_cases)
