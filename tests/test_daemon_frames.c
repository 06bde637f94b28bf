/* Frame requests on a real daemon (plankton.proto FrameRequest, through the
 * client library's pc_client_frame):
 *  - objects: a made-up 640x480 white frame with 5 pd_td_crop crops pasted
 *    at known places: 5 objects, each box inside its pasted crop and equal
 *    to the bounding box of that crop's dark pixels; the crop the daemon cut
 *    (return_crops) is the frame's pixels there; the object's scores are the
 *    engine's own answer on that crop, and the same crop sent alone as raw
 *    gray8 gets the same answer (to 1e-6);
 *  - gray16: the same frame as raw gray16 with 12 significant bits: the same
 *    boxes and scores, gray features on the 12-bit scale;
 *  - png_16bit: the same 12-bit frame as a 16-bit gray PNG: decoded at full
 *    depth (the same objects and gray features as raw gray16); 12 bits
 *    declared on an 8-bit PNG refused;
 *  - tiff_16bit: the same as 16-bit gray TIFFs (LZW strips; MinIsWhite
 *    big-endian tiles): at full depth too; 12 bits on an 8-bit TIFF refused;
 *  - empty: a white frame is OK with no object;
 *  - bad_input: zero size, significant bits that do not fit, a sample
 *    above them, a background of another size, too few bytes, over
 *    limits.max_frame_pixels: INVALID_ARGUMENT naming the values;
 *  - queue_full: a frame with more objects than batching.max_queue places:
 *    RESOURCE_EXHAUSTED and no object computed;
 *  - concurrent: frames and single crops from 4 clients at once, every
 *    answer checked against the engine;
 *  - cancel_on_close: 20 frames sent and the connection closed unread:
 *    every object request finishes (in_flight back to 0), the next client
 *    is answered, the daemon drains and exits 0;
 *  - model_defaults: a model whose model.yaml has segmentation:
 *    {max_objects: 2, margin: 4} gives the 2 largest objects (3 dropped by
 *    the cap) with 4-pixel margins; a request's max_objects 5 and padding 7
 *    go over them; a model.yaml with segmentation threshold 0 does not load,
 *    the daemon's log naming the setting;
 *  - kept_background (raw protocol: FrameRequest.background_id): a frame
 *    sent with a flat field (darker on the right half, so it changes which
 *    pixels are dark) and background_id "cam", then the same frame with
 *    only the id: the same objects as the first, and not those of the frame
 *    without a background; an unknown id, and "cam" on another connection,
 *    INVALID_ARGUMENT naming it; a fifth name RESOURCE_EXHAUSTED naming the
 *    four kept; a daemon whose limits.max_receive_bytes has no room for the
 *    flat field beside the request that carries it refuses to keep it,
 *    naming the limit, and serves on;
 *  - metrics: after a frame with 5 objects, a white one, one capped at 2
 *    objects and a zero-size one, /metrics counts 3 frames OK and 1
 *    INVALID_ARGUMENT, 7 objects, 3 dropped by the cap, 3 segmentations. */
#include <png.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "pd_daemon_test.h"
#include "pd_td_wait.h"
#include "pd_test.h"
#include "pd_test_cases.h"
#include "pd_test_tiff.h"
#include "pd_td_raw.h"

#define FW 640
#define FH 480
#define N_OBJ 5

static pd_td_ref ref;
static pthread_mutex_t ref_mu = PTHREAD_MUTEX_INITIALIZER; /* ref is one plan: one user */

typedef struct pasted {
  int x, y, w, h;
  int bx, by, bw, bh; /* bounding box of the crop's dark pixels, frame coordinates */
} pasted;

static const pasted k_places[N_OBJ] = {
    {.x = 40, .y = 30, .w = 60, .h = 50},   {.x = 300, .y = 40, .w = 80, .h = 64},
    {.x = 500, .y = 60, .w = 50, .h = 70},  {.x = 80, .y = 280, .w = 90, .h = 72},
    {.x = 380, .y = 300, .w = 70, .h = 56},
};

/* The white frame with the crops pasted (their dark-pixel boxes in *p). */
static uint8_t *make_frame(pasted *p) {
  uint8_t *f = malloc((size_t)FW * FH);
  if (!f) return NULL;
  memset(f, 255, (size_t)FW * FH);
  for (int i = 0; i < N_OBJ; i++) {
    p[i] = k_places[i];
    uint8_t *c = pd_td_crop(100 + (uint64_t)i, p[i].w, p[i].h);
    int x0 = p[i].w, y0 = p[i].h, x1 = -1, y1 = -1;
    for (int y = 0; y < p[i].h; y++)
      for (int x = 0; x < p[i].w; x++) {
        uint8_t v = c[y * p[i].w + x];
        f[(size_t)(p[i].y + y) * FW + (size_t)(p[i].x + x)] = v;
        if (v < 229) { /* dark: below 255 * (1 - 0.1), the default threshold */
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    p[i].bx = p[i].x + x0;
    p[i].by = p[i].y + y0;
    p[i].bw = x1 - x0 + 1;
    p[i].bh = y1 - y0 + 1;
    free(c);
  }
  return f;
}

static pc_client_frame_request raw8_request(uint64_t id, const uint8_t *px, int w, int h) {
  pc_client_frame_request r = {0};
  r.id = id;
  r.image.format = PC_CLIENT_IMAGE_RAW_GRAY8;
  r.image.data = px;
  r.image.len = (size_t)w * (size_t)h;
  r.image.width = (uint32_t)w;
  r.image.height = (uint32_t)h;
  r.full_distribution = true;
  r.top_k = 3;
  r.return_crops = true;
  return r;
}

/* The pasted crop object o lies in (-1: none). */
static int place_of(const pasted *p, const pc_client_frame_object *o) {
  for (int i = 0; i < N_OBJ; i++)
    if ((int)o->x >= p[i].x && (int)o->y >= p[i].y && (int)(o->x + o->width) <= p[i].x + p[i].w &&
        (int)(o->y + o->height) <= p[i].y + p[i].h)
      return i;
  return -1;
}

/* max |a - b| over n floats. */
static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    if (d > m) m = d;
  }
  return m;
}

/* Each object of a frame answer against the places, the frame's pixels,
 * the engine and the same crop sent alone. */
static void check_objects(pd_test_state *st, pc_client *c, const pc_client_response *r,
                          const pasted *p, const uint8_t *frame8) {
  const size_t K = (size_t)ref.model->n_classes;
  float *want = malloc(K * sizeof *want);
  const pc_client_frame_result *f = &r->u.frame;
  PD_CHECK_INT(st, f->n_objects, N_OBJ);
  PD_CHECK_INT(st, f->width, FW);
  PD_CHECK_INT(st, f->height, FH);
  bool seen[N_OBJ] = {0};
  for (size_t i = 0; i < f->n_objects && want; i++) {
    const pc_client_frame_object *o = &f->objects[i];
    int k = place_of(p, o);
    PD_CHECK(st, k >= 0);
    if (k < 0) continue;
    PD_CHECK(st, !seen[k]);
    seen[k] = true;
    PD_CHECK_INT(st, o->x, p[k].bx);
    PD_CHECK_INT(st, o->y, p[k].by);
    PD_CHECK_INT(st, o->width, p[k].bw);
    PD_CHECK_INT(st, o->height, p[k].bh);
    PD_CHECK(st, o->area > 0 && o->area <= (uint64_t)o->width * o->height);
    PD_CHECK(st, o->centroid_x >= o->x && o->centroid_x < o->x + o->width);
    PD_CHECK(st, o->major_axis >= o->minor_axis && o->minor_axis > 0);
    PD_CHECK_INT(st, o->status, PC_CLIENT_STATUS_OK);
    PD_CHECK_INT(st, o->n_distribution, K);
    PD_CHECK_INT(st, o->crop_len, (size_t)o->crop_width * o->crop_height);
    if (!o->crop || o->n_distribution != K) continue;
    /* the crop: the tight box grown by the margin (10), clipped; its pixels
     * are the frame's (255 * v / 255 on a white background) */
    PD_CHECK(st, o->crop_x <= o->x && o->crop_y <= o->y);
    PD_CHECK(st, o->crop_x + o->crop_width >= o->x + o->width);
    int off = 0;
    for (uint32_t y = 0; y < o->crop_height; y++)
      for (uint32_t x = 0; x < o->crop_width; x++) {
        int a = o->crop[y * o->crop_width + x];
        int b = frame8[(size_t)(o->crop_y + y) * FW + o->crop_x + x];
        if (abs(a - b) > 1) off++;
      }
    PD_CHECK_INT(st, off, 0);
    /* the engine on the crop the daemon cut */
    pthread_mutex_lock(&ref_mu);
    PD_CHECK_INT(st, pd_td_ref_probs(&ref, o->crop, (int)o->crop_width, (int)o->crop_height, want),
                 0);
    pthread_mutex_unlock(&ref_mu);
    PD_CHECK(st, max_diff(o->distribution, want, K) <= pd_td_prob_tol());
    /* the same crop sent alone */
    pc_client_classify_request cr = {.id = 1000 + i,
                                     .format = PC_CLIENT_IMAGE_RAW_GRAY8,
                                     .data = o->crop,
                                     .len = o->crop_len,
                                     .width = o->crop_width,
                                     .height = o->crop_height,
                                     .full_distribution = true};
    pc_client_response *alone = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_classify(c, &cr, &alone, &err), PC_CLIENT_OK);
    if (alone) {
      PD_CHECK_INT(st, alone->status, PC_CLIENT_STATUS_OK);
      PD_CHECK_INT(st, alone->u.classify.n_distribution, K);
      if (alone->u.classify.n_distribution == K)
        PD_CHECK(st, max_diff(o->distribution, alone->u.classify.distribution, K) <= 1e-6);
      PD_CHECK(st, o->n_top >= 1 && alone->u.classify.n_top >= 1 &&
                       o->top[0].index == alone->u.classify.top[0].index);
    }
    pc_client_response_free(alone);
  }
  free(want);
}

static bool start(pd_test_state *st, pd_td *d, const char *const *args) {
  if (pd_td_start(d, args) != 0) {
    PD_CHECK(st, !"daemon did not start");
    pd_td_cleanup(d);
    return false;
  }
  return true;
}

static void stop(pd_test_state *st, pd_td *d) {
  PD_CHECK_INT(st, pd_td_stop(d, SIGTERM, 30), 0);
  pd_td_cleanup(d);
}

static void objects(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, NULL)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && frame);
  if (c && frame) {
    pc_client_frame_request rq = raw8_request(7, frame, FW, FH);
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    PD_CHECK(st, r && r->kind == PC_CLIENT_RESPONSE_FRAME);
    if (r) {
      PD_CHECK_INT(st, r->id, 7);
      PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
      PD_CHECK(st, r->u.frame.objects_found >= N_OBJ);
      PD_CHECK(st, r->u.frame.model_name[0] != '\0');
      check_objects(st, c, r, p, frame);
    }
    pc_client_response_free(r);
    /* the same frame as PNG: the same objects */
    size_t png_len = 0;
    uint8_t *png = pd_td_png(frame, FW, FH, &png_len);
    rq.image.format = PC_CLIENT_IMAGE_PNG;
    rq.image.data = png;
    rq.image.len = png_len;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
      check_objects(st, c, r, p, frame);
    }
    pc_client_response_free(r);
    free(png);
  }
  pc_client_close(c);
  free(frame);
  stop(st, &d);
}

/* A frame of the 8-bit frame's values x 16 (12 significant bits, in rq)
 * gives its objects, with gray features 16 times the 8-bit frame's (sent
 * as raw gray8, id8). */
static void deep_matches_8bit(pd_test_state *st, pc_client *c, const pc_client_frame_request *rq,
                              uint64_t id8, const pasted *p, const uint8_t *frame) {
  pc_client_frame_request rq8 = raw8_request(id8, frame, FW, FH);
  pc_client_response *r = NULL, *r8 = NULL;
  pc_client_error err;
  PD_CHECK_INT(st, pc_client_frame(c, rq, &r, &err), PC_CLIENT_OK);
  PD_CHECK_INT(st, pc_client_frame(c, &rq8, &r8, &err), PC_CLIENT_OK);
  if (r && r8) {
    PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
    check_objects(st, c, r, p, frame);
    PD_CHECK_INT(st, r->u.frame.n_objects, r8->u.frame.n_objects);
    for (size_t i = 0; i < r->u.frame.n_objects && i < r8->u.frame.n_objects; i++) {
      const pc_client_frame_object *a = &r->u.frame.objects[i], *b = &r8->u.frame.objects[i];
      PD_CHECK_NEAR(st, a->mean_gray, 16 * b->mean_gray, 1e-6 * a->mean_gray + 1e-9);
      PD_CHECK_INT(st, a->min_gray, 16 * b->min_gray);
    }
  }
  pc_client_response_free(r);
  pc_client_response_free(r8);
}

static void gray16(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, NULL)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  uint8_t *w16 = malloc((size_t)FW * FH * 2);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && frame && w16);
  if (c && frame && w16) {
    for (size_t i = 0; i < (size_t)FW * FH; i++) { /* 12 bits, little endian */
      unsigned v = (unsigned)frame[i] * 16u;
      w16[2 * i] = (uint8_t)v;
      w16[2 * i + 1] = (uint8_t)(v >> 8);
    }
    pc_client_frame_request rq = raw8_request(9, w16, FW, FH);
    rq.image.format = PC_CLIENT_IMAGE_RAW_GRAY16;
    rq.image.len = (size_t)FW * FH * 2;
    rq.image.significant_bits = 12;
    deep_matches_8bit(st, c, &rq, 10, p, frame);
  }
  pc_client_close(c);
  free(frame);
  free(w16);
  stop(st, &d);
}

static void expect_invalid(pd_test_state *st, pc_client *c, const pc_client_frame_request *rq,
                           const char *n1, const char *n2);

/* w x h host-order 16-bit samples as a 16-bit gray PNG (malloc'ed). */
static uint8_t *png16(const uint16_t *px, int w, int h, size_t *len) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = (png_uint_32)w;
  img.height = (png_uint_32)h;
  img.format = PNG_FORMAT_LINEAR_Y;
  png_alloc_size_t n = 0;
  if (!png_image_write_to_memory(&img, NULL, &n, 0, px, w, NULL)) return NULL;
  uint8_t *out = malloc(n);
  if (out && !png_image_write_to_memory(&img, out, &n, 0, px, w, NULL)) {
    free(out);
    return NULL;
  }
  *len = n;
  return out;
}

/* The 12-bit frame as a 16-bit gray PNG: decoded at full depth, the same
 * objects and gray features as the raw gray16 frame. */
static void png_16bit(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, NULL)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  uint16_t *s16 = malloc((size_t)FW * FH * sizeof *s16);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && frame && s16);
  if (c && frame && s16) {
    for (size_t i = 0; i < (size_t)FW * FH; i++)
      s16[i] = (uint16_t)(frame[i] * 16u);
    size_t len = 0;
    uint8_t *png = png16(s16, FW, FH, &len);
    PD_CHECK(st, png != NULL);
    pc_client_frame_request rq = raw8_request(21, png, FW, FH);
    rq.image.format = PC_CLIENT_IMAGE_PNG;
    rq.image.len = len;
    rq.image.width = rq.image.height = 0;
    rq.image.significant_bits = 12;
    deep_matches_8bit(st, c, &rq, 22, p, frame);
    /* 12 significant bits declared on an 8-bit PNG: refused, naming both */
    size_t len8 = 0;
    uint8_t *png8 = pd_td_png(frame, FW, FH, &len8);
    rq.image.data = png8;
    rq.image.len = len8;
    expect_invalid(st, c, &rq, "significant_bits 12", "8-bit");
    free(png8);
    free(png);
  }
  pc_client_close(c);
  free(frame);
  free(s16);
  stop(st, &d);
}

/* The 12-bit frame as a 16-bit gray TIFF (LZW strips, then MinIsWhite
 * tiles): decoded at full depth, the same objects and gray features as the
 * raw gray16 frame; 12 bits declared on an 8-bit TIFF refused. */
static void tiff_16bit(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, NULL)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  uint16_t *s16 = malloc((size_t)FW * FH * sizeof *s16);
  uint16_t *inv = malloc((size_t)FW * FH * sizeof *inv);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && frame && s16 && inv);
  if (c && frame && s16 && inv) {
    for (size_t i = 0; i < (size_t)FW * FH; i++) {
      s16[i] = (uint16_t)(frame[i] * 16u);
      inv[i] = (uint16_t)(65535u - s16[i]);
    }
    const pd_test_tiff kinds[] = {
        {.width = FW,
         .height = FH,
         .bits = 16,
         .samples = 1,
         .photometric = PHOTOMETRIC_MINISBLACK,
         .compression = COMPRESSION_LZW,
         .rows_per_strip = 37,
         .pixels = s16},
        {.width = FW,
         .height = FH,
         .bits = 16,
         .samples = 1,
         .photometric = PHOTOMETRIC_MINISWHITE,
         .tile_width = 128,
         .tile_height = 64,
         .big_endian = 1,
         .pixels = inv},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      size_t len = 0;
      uint8_t *tif = pd_test_tiff_write(&kinds[k], &len);
      PD_CHECK(st, tif != NULL);
      if (!tif) continue;
      pc_client_frame_request rq = raw8_request(31 + 2 * k, tif, FW, FH);
      rq.image.format = PC_CLIENT_IMAGE_TIFF;
      rq.image.len = len;
      rq.image.width = rq.image.height = 0;
      rq.image.significant_bits = 12;
      deep_matches_8bit(st, c, &rq, 32 + 2 * k, p, frame);
      free(tif);
    }
    const pd_test_tiff t8 = {.width = FW,
                             .height = FH,
                             .bits = 8,
                             .samples = 1,
                             .photometric = PHOTOMETRIC_MINISBLACK,
                             .pixels = frame};
    size_t len8 = 0;
    uint8_t *tif8 = pd_test_tiff_write(&t8, &len8);
    PD_CHECK(st, tif8 != NULL);
    if (tif8) {
      pc_client_frame_request rq = raw8_request(39, tif8, FW, FH);
      rq.image.format = PC_CLIENT_IMAGE_TIFF;
      rq.image.len = len8;
      rq.image.width = rq.image.height = 0;
      rq.image.significant_bits = 12;
      expect_invalid(st, c, &rq, "significant_bits 12", "8-bit");
    }
    free(tif8);
  }
  pc_client_close(c);
  free(frame);
  free(s16);
  free(inv);
  stop(st, &d);
}

static void empty(pd_test_state *st) {
  pd_td d;
  if (!start(st, &d, NULL)) return;
  uint8_t *white = malloc((size_t)FW * FH);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && white);
  if (c && white) {
    memset(white, 250, (size_t)FW * FH);
    pc_client_frame_request rq = raw8_request(3, white, FW, FH);
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
      PD_CHECK_INT(st, r->u.frame.n_objects, 0);
      PD_CHECK_INT(st, r->u.frame.objects_found, 0);
      PD_CHECK_INT(st, r->u.frame.width, FW);
    }
    pc_client_response_free(r);
  }
  pc_client_close(c);
  free(white);
  stop(st, &d);
}

/* One bad frame: INVALID_ARGUMENT with each needle in the message. */
static void expect_invalid(pd_test_state *st, pc_client *c, const pc_client_frame_request *rq,
                           const char *n1, const char *n2) {
  pc_client_response *r = NULL;
  pc_client_error err;
  PD_CHECK_INT(st, pc_client_frame(c, rq, &r, &err), PC_CLIENT_OK);
  PD_CHECK(st, r != NULL);
  if (!r) return;
  PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_INVALID_ARGUMENT);
  PD_CHECK_INT(st, r->u.frame.n_objects, 0);
  PD_CHECK_CONTAINS(st, r->message, n1);
  if (n2) PD_CHECK_CONTAINS(st, r->message, n2);
  pc_client_response_free(r);
}

/* The bad frames of bad_input: each INVALID_ARGUMENT naming n1 (and n2). */
typedef struct bad_frame {
  int w, h;
  pc_client_image_format format; /* 0: raw gray8 */
  long len;                      /* -1: w x h */
  int bits;                      /* significant bits; 0: not given */
  float threshold;               /* 0: not given */
  int background;                /* 0: none; 1: gray8 90x100; 2: gray16 100x100 */
  const char *n1, *n2;
} bad_frame;

static const bad_frame k_bad_frames[] = {
    {0, 100, 0, 0, 0, 0, 0, "0x100", "empty"},
    {400, 400, 0, -1, 12, 0, 0, "significant_bits 12", "8-bit"}, /* 160,000 pixels */
    {400, 400, 0, 1000, 0, 0, 0, "1000 bytes", "160000"},
    {500, 500, 0, -1, 0, 0, 0, "250000", "200000"}, /* over --max-frame-pixels */
    /* a 16-bit sample above its 10 significant bits: 200,200 is 51400 > 1023 */
    {100, 100, PC_CLIENT_IMAGE_RAW_GRAY16, 100 * 100 * 2, 10, 0, 0, "10", NULL},
    {100, 100, 0, -1, 0, 0, 1, "background: 90x100", "100x100"}, /* another size */
    {100, 100, 0, -1, 0, 0, 2, "gray16", "gray8"},               /* another depth */
    {0, 0, PC_CLIENT_IMAGE_PNG, 64, 0, 0, 0, "frame", NULL},     /* not an image */
    {100, 100, 0, -1, 0, 1.5f, 0, "threshold", "1.5"},           /* outside (0, 1) */
};

static void bad_input(pd_test_state *st) {
  pd_td d;
  static const char *const args[] = {"--max-frame-pixels", "200000", NULL};
  if (!start(st, &d, args)) return;
  uint8_t *px = calloc((size_t)FW * FH * 2, 1);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && px);
  if (c && px) {
    memset(px, 200, (size_t)FW * FH);
    for (size_t i = 0; i < sizeof k_bad_frames / sizeof k_bad_frames[0]; i++) {
      const bad_frame *b = &k_bad_frames[i];
      pc_client_frame_request rq = raw8_request(1 + i, px, b->w, b->h);
      if (b->format) rq.image.format = b->format;
      if (b->len >= 0) rq.image.len = (size_t)b->len;
      rq.image.significant_bits = (uint32_t)b->bits;
      rq.threshold = b->threshold;
      pc_client_image bg = {.format = b->background == 2 ? PC_CLIENT_IMAGE_RAW_GRAY16
                                                         : PC_CLIENT_IMAGE_RAW_GRAY8,
                            .data = px,
                            .len = b->background == 2 ? (size_t)100 * 100 * 2 : (size_t)90 * 100,
                            .width = b->background == 2 ? 100 : 90,
                            .height = 100};
      if (b->background) rq.background = &bg;
      expect_invalid(st, c, &rq, b->n1, b->n2);
    }
    /* the daemon still answers a good frame */
    memset(px, 255, (size_t)100 * 100);
    pc_client_frame_request rq = raw8_request(99, px, 100, 100);
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_OK);
    pc_client_response_free(r);
  }
  pc_client_close(c);
  free(px);
  stop(st, &d);
}

static void queue_full(pd_test_state *st) {
  pd_td d;
  static const char *const args[] = {"--max-batch", "4", "--max-queue", "4", NULL};
  if (!start(st, &d, args)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, c && frame);
  if (c && frame) {
    pc_client_frame_request rq = raw8_request(11, frame, FW, FH);
    pc_client_response *r = NULL;
    pc_client_error err;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_RESOURCE_EXHAUSTED);
      PD_CHECK_CONTAINS(st, r->message, "5 objects");
      PD_CHECK_CONTAINS(st, r->message, "batching.max_queue");
    }
    pc_client_response_free(r);
    PD_CHECK_INT(st, pc_client_stats(c, &r, &err), PC_CLIENT_OK);
    if (r) PD_CHECK_INT(st, r->u.stats.crops, 0); /* nothing half-done */
    pc_client_response_free(r);
    /* 4 objects fit */
    rq.max_objects = 4;
    PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
    if (r) {
      PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
      PD_CHECK_INT(st, r->u.frame.n_objects, 4);
      PD_CHECK_INT(st, r->u.frame.dropped_cap, 1);
    }
    pc_client_response_free(r);
  }
  pc_client_close(c);
  free(frame);
  stop(st, &d);
}

static bool nothing_in_flight(const pc_client_stats_result *s, void *ctx) {
  (void)ctx;
  return s->in_flight == 0 && s->queue_depth == 0;
}

/* A client that sends frames and leaves at once: every object request is
 * finished (in_flight back to 0), the daemon answers the next client and
 * drains cleanly. */
static void cancel_on_close(pd_test_state *st) {
  pd_td d;
  static const char *const args[] = {"--max-batch", "4", NULL};
  if (!start(st, &d, args)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  pc_client *c = pd_td_connect(&d, 32);
  PD_CHECK(st, c && frame);
  if (c && frame) {
    pc_client_error err;
    for (int i = 0; i < 20; i++) {
      pc_client_frame_request rq = raw8_request((uint64_t)i, frame, FW, FH);
      PD_CHECK_INT(st, pc_client_send_frame(c, &rq, &err), PC_CLIENT_OK);
    }
    pc_client_close(c); /* nothing read */
    pc_client_response *last = NULL;
    PD_CHECK(st, pd_td_poll_stats(&d, nothing_in_flight, NULL, 20000, &last));
    pc_client_response_free(last);
    c = pd_td_connect(&d, 8);
    PD_CHECK(st, c != NULL);
    pc_client_frame_request rq = raw8_request(99, frame, FW, FH);
    pc_client_response *r = NULL;
    if (c) {
      PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
      PD_CHECK(st, r && r->status == PC_CLIENT_STATUS_OK && r->u.frame.n_objects == N_OBJ);
    }
    pc_client_response_free(r);
  }
  pc_client_close(c);
  free(frame);
  stop(st, &d);
}

/* ---- concurrent: frames and crops from 4 clients ---- */

typedef struct worker {
  const pd_td *d;
  bool frames;
  const uint8_t *frame;
  const pasted *p;
  pd_td_crop_ref *crops;
  int n_crops;
  int failures;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  pd_test_state local = {0};
  pc_client *c = pd_td_connect(w->d, 16);
  if (!c) {
    w->failures = 1;
    return NULL;
  }
  pc_client_error err;
  for (int i = 0; i < (w->frames ? 6 : 60); i++) {
    pc_client_response *r = NULL;
    if (w->frames) {
      pc_client_frame_request rq = raw8_request((uint64_t)i, w->frame, FW, FH);
      if (pc_client_frame(c, &rq, &r, &err) != PC_CLIENT_OK || !r ||
          r->status != PC_CLIENT_STATUS_OK) {
        local.failures++;
      } else {
        check_objects(&local, c, r, w->p, w->frame);
      }
    } else {
      const pd_td_crop_ref *cr = &w->crops[i % w->n_crops];
      pc_client_classify_request rq = pd_td_crop_request(cr, (uint64_t)i, i % 2 == 0);
      if (pc_client_classify(c, &rq, &r, &err) != PC_CLIENT_OK || !r ||
          r->status != PC_CLIENT_STATUS_OK ||
          pd_td_crop_diff(cr, &ref, r->u.classify.distribution, r->u.classify.n_distribution) >
              pd_td_prob_tol())
        local.failures++;
    }
    pc_client_response_free(r);
  }
  pc_client_close(c);
  w->failures = local.failures;
  return NULL;
}

static void concurrent(pd_test_state *st) {
  pd_td d;
  static const char *const args[] = {"--max-batch", "16", "--max-queue-delay-us", "3000", NULL};
  if (!start(st, &d, args)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  pd_td_crop_ref crops[8];
  bool have = frame && pd_td_crops_make(crops, 8, &ref, 5, 30, 60, 30, 60) == 0;
  PD_CHECK(st, have);
  if (have) {
    worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
      w[i] =
          (worker){.d = &d, .frames = i < 2, .frame = frame, .p = p, .crops = crops, .n_crops = 8};
      PD_CHECK_INT(st, pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(t[i], NULL);
      PD_CHECK_INT(st, w[i].failures, 0);
    }
    pd_td_crops_free(crops, 8);
  }
  free(frame);
  stop(st, &d);
}

static int setup(void) {
  if (!pd_td_have_model()) return 77;
  return pd_td_ref_open(&ref, pd_td_model_dir()) != 0 ? 1 : 0;
}

static void teardown(void) {
  pd_td_ref_close(&ref);
}

/* A copy of the test model in a temporary folder with `block` appended to
 * its model.yaml; the folder (malloc'ed) or NULL. */
static char *model_with(const char *block) {
  char tmpl[] = "/tmp/pd-test-segdef-XXXXXX";
  if (!mkdtemp(tmpl)) return NULL;
  char *dir = malloc(strlen(tmpl) + 8);
  if (!dir) return NULL;
  sprintf(dir, "%s/model", tmpl);
  char yaml[600];
  snprintf(yaml, sizeof yaml, "%s/model.yaml", dir);
  FILE *f = pd_td_model_renamed(dir, "segdef") == 0 ? fopen(yaml, "a") : NULL;
  if (!f || fputs(block, f) < 0) {
    if (f) fclose(f);
    free(dir);
    return NULL;
  }
  fclose(f);
  return dir;
}

static void remove_model(char *dir) {
  if (!dir) return;
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(dir) - strlen("/model")), dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  free(dir);
}

/* Each object's crop is its box grown by `margin` on every side (the frame
 * is large enough here that none is clipped). */
static int margins_off(const pc_client_frame_result *f, uint32_t margin) {
  int off = 0;
  for (size_t i = 0; i < f->n_objects; i++) {
    const pc_client_frame_object *o = &f->objects[i];
    off += o->crop_x + margin != o->x || o->crop_y + margin != o->y ||
           o->crop_width != o->width + 2 * margin || o->crop_height != o->height + 2 * margin;
  }
  return off;
}

static void model_defaults(pd_test_state *st) {
  char *dir = model_with("segmentation:\n  max_objects: 2\n  margin: 4\n");
  PD_CHECK(st, dir != NULL);
  if (!dir) return;
  const char *args[] = {"--model", dir, NULL};
  pd_td d;
  if (!start(st, &d, args)) {
    remove_model(dir);
    return;
  }
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, frame && c);
  pc_client_frame_request rq = raw8_request(1, frame, FW, FH);
  pc_client_response *r = NULL;
  pc_client_error err;
  PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
  if (r) {
    PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
    PD_CHECK_INT(st, r->u.frame.objects_found, N_OBJ);
    PD_CHECK_INT(st, r->u.frame.n_objects, 2);
    PD_CHECK_INT(st, r->u.frame.dropped_cap, N_OBJ - 2);
    PD_CHECK_INT(st, margins_off(&r->u.frame, 4), 0);
    /* the two kept are the two largest of the five */
    uint64_t kept_min = UINT64_MAX;
    for (size_t i = 0; i < r->u.frame.n_objects; i++)
      if (r->u.frame.objects[i].area < kept_min) kept_min = r->u.frame.objects[i].area;
    printf("model_defaults: model.yaml max_objects 2, margin 4: %zu of %u objects kept "
           "(smallest kept area %llu), %llu dropped by the cap\n",
           r->u.frame.n_objects, r->u.frame.objects_found, (unsigned long long)kept_min,
           (unsigned long long)r->u.frame.dropped_cap);
  }
  pc_client_response_free(r);
  r = NULL;
  rq.id = 2;
  rq.max_objects = N_OBJ; /* the request's own choices over the model's */
  rq.padding = 7;
  PD_CHECK_INT(st, pc_client_frame(c, &rq, &r, &err), PC_CLIENT_OK);
  if (r) {
    PD_CHECK_INT(st, r->status, PC_CLIENT_STATUS_OK);
    PD_CHECK_INT(st, r->u.frame.n_objects, N_OBJ);
    PD_CHECK_INT(st, r->u.frame.dropped_cap, 0);
    PD_CHECK_INT(st, margins_off(&r->u.frame, 7), 0);
  }
  pc_client_response_free(r);
  pc_client_close(c);
  free(frame);
  stop(st, &d);
  remove_model(dir);

  /* a bad value: the model does not load, and the log says which */
  dir = model_with("segmentation:\n  threshold: 0\n");
  PD_CHECK(st, dir != NULL);
  if (!dir) return;
  const char *bad[] = {"--model", dir, NULL};
  pd_td b;
  PD_CHECK(st, pd_td_start(&b, bad) != 0);
  char *log = pd_td_log(&b);
  PD_CHECK(st, log && strstr(log, "segmentation: threshold"));
  if (log) {
    const char *at = strstr(log, "segmentation:");
    printf("model_defaults: threshold 0 refused: %.*s\n", at ? (int)strcspn(at, "\n") : 0,
           at ? at : "");
  }
  free(log);
  pd_td_cleanup(&b);
  remove_model(dir);
}

/* ---- /metrics ---- */

static void metrics(pd_test_state *st) {
  const char *args[] = {"--metrics", "unix:@DIR@/metrics.sock", NULL};
  pd_td d;
  if (!start(st, &d, args)) return;
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p), *white = malloc((size_t)FW * FH);
  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(st, frame && white && c);
  if (frame && white && c) {
    memset(white, 250, (size_t)FW * FH);
    pc_client_frame_request rqs[4] = {raw8_request(1, frame, FW, FH),
                                      raw8_request(2, white, FW, FH),
                                      raw8_request(3, frame, FW, FH), raw8_request(4, frame, 0, 0)};
    rqs[2].max_objects = 2;
    rqs[3].image.len = 0;
    const int want[4] = {PC_CLIENT_STATUS_OK, PC_CLIENT_STATUS_OK, PC_CLIENT_STATUS_OK,
                         PC_CLIENT_STATUS_INVALID_ARGUMENT};
    for (int i = 0; i < 4; i++) {
      pc_client_response *r = NULL;
      pc_client_error err;
      PD_CHECK_INT(st, pc_client_frame(c, &rqs[i], &r, &err), PC_CLIENT_OK);
      PD_CHECK(st, r && r->status == want[i]);
      pc_client_response_free(r);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.sock", d.dir);
    char *m = pd_td_metrics(path);
    PD_CHECK(st, m != NULL);
    if (m) {
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_request_total{status=\"OK\"}") == 3);
      PD_CHECK(st,
               pd_td_metric(m, "planktond_frame_request_total{status=\"INVALID_ARGUMENT\"}") == 1);
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_objects_total") == N_OBJ + 2);
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_objects_dropped_total{filter=\"cap\"}") ==
                       N_OBJ - 2);
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_objects_dropped_total{filter=\"small\"}") == 0);
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_segment_duration_seconds_count") == 3);
      PD_CHECK(st, pd_td_metric(m, "planktond_frame_segment_duration_seconds_sum") > 0);
      printf("metrics: frames OK %g, INVALID_ARGUMENT %g, objects %g, dropped by the cap %g, "
             "segmentations %g taking %.4f s\n",
             pd_td_metric(m, "planktond_frame_request_total{status=\"OK\"}"),
             pd_td_metric(m, "planktond_frame_request_total{status=\"INVALID_ARGUMENT\"}"),
             pd_td_metric(m, "planktond_frame_objects_total"),
             pd_td_metric(m, "planktond_frame_objects_dropped_total{filter=\"cap\"}"),
             pd_td_metric(m, "planktond_frame_segment_duration_seconds_count"),
             pd_td_metric(m, "planktond_frame_segment_duration_seconds_sum"));
    }
    free(m);
  }
  pc_client_close(c);
  free(frame);
  free(white);
  stop(st, &d);
}

/* ---- kept backgrounds, over the raw protocol ---- */

/* One FrameRequest (raw gray8 FW x FH; bg NULL: none) and its answer. */
static Plankton__Response *raw_frame(int fd, uint64_t id, const uint8_t *px, const uint8_t *bg,
                                     const char *bg_id) {
  Plankton__Image img = PLANKTON__IMAGE__INIT, bimg = PLANKTON__IMAGE__INIT;
  img.format = bimg.format = PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_RAW_GRAY8;
  img.data.data = (uint8_t *)px;
  img.data.len = bimg.data.len = (size_t)FW * FH;
  img.width = bimg.width = FW;
  img.height = bimg.height = FH;
  bimg.data.data = (uint8_t *)bg;
  Plankton__FrameRequest fr = PLANKTON__FRAME_REQUEST__INIT;
  fr.id = id;
  fr.image = &img;
  fr.background = bg ? &bimg : NULL;
  fr.background_id = (char *)(bg_id ? bg_id : "");
  fr.top_k = 1;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_FRAME;
  rq.frame = &fr;
  size_t len = 0;
  uint8_t *f = pd_raw_request_frame(&rq, &len);
  int rc = f ? pd_raw_write(fd, f, len) : -1;
  free(f);
  Plankton__Response *r = rc == 0 ? pd_raw_read_response(fd, 30000) : NULL;
  if (r && r->body_case != PLANKTON__RESPONSE__BODY_FRAME) {
    plankton__response__free_unpacked(r, NULL);
    r = NULL;
  }
  return r;
}

static int frame_code(const Plankton__Response *r) {
  return !r ? -1 : r->frame->status ? (int)r->frame->status->code : 0;
}

static const char *frame_msg(const Plankton__Response *r) {
  return r && r->frame->status && r->frame->status->message ? r->frame->status->message : "";
}

/* The two answers list the same boxes and top classes. */
static bool same_objects(const Plankton__Response *a, const Plankton__Response *b) {
  if (!a || !b || a->frame->n_objects != b->frame->n_objects) return false;
  for (size_t i = 0; i < a->frame->n_objects; i++) {
    const Plankton__FrameObject *x = a->frame->objects[i], *y = b->frame->objects[i];
    if (x->x != y->x || x->y != y->y || x->width != y->width || x->height != y->height ||
        x->n_top != y->n_top || (x->n_top && x->top[0]->index != y->top[0]->index))
      return false;
  }
  return true;
}

static void kept_background(pd_test_state *st) {
  pasted p[N_OBJ];
  uint8_t *frame = make_frame(p), *bg = malloc((size_t)FW * FH);
  PD_CHECK(st, frame && bg);
  if (!frame || !bg) {
    free(frame);
    free(bg);
    return;
  }
  for (int y = 0; y < FH; y++) /* a flat field darker on the right half */
    for (int x = 0; x < FW; x++)
      bg[(size_t)y * FW + x] = x < FW / 2 ? 255 : 140;
  pd_td d;
  if (!start(st, &d, NULL)) {
    free(frame);
    free(bg);
    return;
  }
  int a = pd_raw_connect(d.socket), b = pd_raw_connect(d.socket);
  PD_CHECK(st, a >= 0 && b >= 0);
  Plankton__Response *with = raw_frame(a, 1, frame, bg, "cam");
  Plankton__Response *named = raw_frame(a, 2, frame, NULL, "cam");
  Plankton__Response *none = raw_frame(a, 3, frame, NULL, NULL);
  PD_CHECK_INT(st, frame_code(with), 0);
  PD_CHECK_INT(st, frame_code(named), 0);
  PD_CHECK_INT(st, frame_code(none), 0);
  PD_CHECK(st, same_objects(with, named));
  PD_CHECK(st, !same_objects(with, none)); /* the flat field changed what is dark */
  if (with && none)
    printf("kept_background: with the flat field %zu objects, with its name only the same %zu, "
           "without it %zu\n",
           with->frame->n_objects, named ? named->frame->n_objects : 0, none->frame->n_objects);
  Plankton__Response *unknown = raw_frame(a, 4, frame, NULL, "nope");
  PD_CHECK_INT(st, frame_code(unknown), PC_CLIENT_STATUS_INVALID_ARGUMENT);
  PD_CHECK(st, strstr(frame_msg(unknown), "\"nope\"") && strstr(frame_msg(unknown), "\"cam\""));
  printf("kept_background: unknown name: %s\n", frame_msg(unknown));
  Plankton__Response *other = raw_frame(b, 5, frame, NULL, "cam"); /* kept per connection */
  PD_CHECK_INT(st, frame_code(other), PC_CLIENT_STATUS_INVALID_ARGUMENT);
  Plankton__Response *more[4] = {0};
  const char *names[4] = {"b1", "b2", "b3", "b4"}; /* "cam" and 3 more fit, the 4th does not */
  for (int i = 0; i < 4; i++)
    more[i] = raw_frame(a, 10 + (uint64_t)i, frame, bg, names[i]);
  for (int i = 0; i < 3; i++)
    PD_CHECK_INT(st, frame_code(more[i]), 0);
  PD_CHECK_INT(st, frame_code(more[3]), PC_CLIENT_STATUS_RESOURCE_EXHAUSTED);
  PD_CHECK(st, strstr(frame_msg(more[3]), "keeps 4 backgrounds") != NULL);
  Plankton__Response *again = raw_frame(a, 20, frame, NULL, "cam"); /* still there */
  PD_CHECK(st, same_objects(with, again));
  Plankton__Response *rs[] = {with,    named,   none,    unknown, other,
                              more[0], more[1], more[2], more[3], again};
  for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
    if (rs[i]) plankton__response__free_unpacked(rs[i], NULL);
  close(a);
  close(b);
  stop(st, &d);

  /* a receive budget below the flat field: not kept, named; the daemon serves on */
  /* (the receive budget may not be below one request: 700 kB, the frame
   * and its flat field, read while the budget holds them) */
  const char *tight[] = {"--set", "limits.max_frame_bytes=700000", "--set",
                         "limits.max_receive_bytes=700000", NULL};
  if (!start(st, &d, tight)) {
    free(frame);
    free(bg);
    return;
  }
  a = pd_raw_connect(d.socket);
  Plankton__Response *refused = raw_frame(a, 30, frame, bg, "cam");
  PD_CHECK_INT(st, frame_code(refused), PC_CLIENT_STATUS_RESOURCE_EXHAUSTED);
  PD_CHECK(st, strstr(frame_msg(refused), "limits.max_receive_bytes") != NULL);
  printf("kept_background: budget: %s\n", frame_msg(refused));
  Plankton__Response *plain = raw_frame(a, 31, frame, NULL, NULL);
  PD_CHECK_INT(st, frame_code(plain), 0);
  if (refused) plankton__response__free_unpacked(refused, NULL);
  if (plain) plankton__response__free_unpacked(plain, NULL);
  close(a);
  stop(st, &d);
  free(frame);
  free(bg);
}

static const pd_test_case k_cases[] = {
    PD_TEST_CASE(objects),         PD_TEST_CASE(gray16),          PD_TEST_CASE(empty),
    PD_TEST_CASE(bad_input),       PD_TEST_CASE(queue_full),      PD_TEST_CASE(concurrent),
    PD_TEST_CASE(cancel_on_close), PD_TEST_CASE(png_16bit),       PD_TEST_CASE(tiff_16bit),
    PD_TEST_CASE(model_defaults),  PD_TEST_CASE(kept_background), PD_TEST_CASE(metrics),
};

PD_TEST_MAIN("daemon_frames", setup, teardown, k_cases)
