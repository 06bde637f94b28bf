#include "pd_frame_job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_image.h"
#include "pd_image16.h"
#include "pd_served.h"
#include "pd_tta.h"

/* A frame failed: status and a printf message. */
__attribute__((format(printf, 3, 4))) static void job_fail(pd_frame_job *job, pd_status st,
                                                           const char *fmt, ...) {
  job->status = st;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->message, sizeof job->message, fmt, ap);
  va_end(ap);
}

static void release_input(pd_frame_job *job) {
  if (job->release_input) job->release_input(job);
  job->release_input = NULL;
  job->frame.data = NULL;
  job->background.data = NULL;
}

/* The job's done, then the pipeline's hold let go (done may free job). */
static void job_finish(pd_frame_job *job) {
  pd_pipeline *p = job->pipeline;
  const pd_segment_stats *ss = &job->seg.stats;
  const uint64_t dropped[4] = {(uint64_t)ss->dropped_small, (uint64_t)ss->dropped_large,
                               (uint64_t)ss->dropped_edge, (uint64_t)ss->dropped_cap};
  pd_stats_frame_done(pd_pipeline_stats(p), job->status, (uint64_t)job->seg.count, dropped,
                      job->segment_ns ? job->decode_ns + job->segment_ns : 0);
  release_input(job);
  job->done(job);
  pd_pipeline_unhold(p);
}

/* ---- checks on the loop ---- */

static bool is_raw(pd_input_format f) {
  return f == PD_FORMAT_RAW_GRAY8 || f == PD_FORMAT_RAW_GRAY16;
}

/* A raw image's sizes, bytes and bits; what: "frame" or "background". */
static bool check_raw(pd_frame_job *job, const pd_frame_image *im, const char *what,
                      long max_pixels) {
  const int bytes = im->format == PD_FORMAT_RAW_GRAY16 ? 2 : 1;
  if (im->width <= 0 || im->height <= 0) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "%s: raw size %dx%d is empty", what, im->width,
             im->height);
    return false;
  }
  if ((long long)im->width * im->height > max_pixels) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT,
             "%s: %dx%d is %lld pixels, over limits.max_frame_pixels %ld", what, im->width,
             im->height, (long long)im->width * im->height, max_pixels);
    return false;
  }
  const size_t want = (size_t)im->width * (size_t)im->height * (size_t)bytes;
  if (im->len != want) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "%s: %zu bytes, but raw gray%d %dx%d needs %zu", what,
             im->len, bytes * 8, im->width, im->height, want);
    return false;
  }
  return true;
}

static bool check_image(pd_frame_job *job, const pd_frame_image *im, const char *what,
                        long max_pixels) {
  if (im->format < PD_FORMAT_AUTO || im->format > PD_FORMAT_RAW_GRAY16) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "%s: unknown format %d", what, (int)im->format);
    return false;
  }
  /* encoded frames: up to 16 here, their depth checked once decoded */
  const int storage = im->format == PD_FORMAT_RAW_GRAY8 ? 8 : 16;
  if (im->significant_bits < 0 || im->significant_bits > storage) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT,
             "%s: significant_bits %d does not fit its %d-bit samples", what, im->significant_bits,
             storage);
    return false;
  }
  if (is_raw(im->format)) return check_raw(job, im, what, max_pixels);
  if (im->len == 0) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "%s: no bytes", what);
    return false;
  }
  return true;
}

static bool admit(pd_pipeline *p, pd_frame_job *job, pd_served **model) {
  const pd_pipeline_limits *lim = pd_pipeline_limits_now(p);
  pd_status code;
  char why[sizeof job->message];
  *model = pd_pipeline_find(p, job->model, NULL, &code, why, sizeof why);
  if (!*model) {
    job_fail(job, code, "%s", why);
    return false;
  }
  const pd_segmentation *seg = &(*model)->servable->e->segmentation;
  job->defaults = seg->present ? &seg->s : NULL;
  if (!pd_frame_job_check(job, lim)) return false;
  if (job->deadline_ns && pd_now_ns() >= job->deadline_ns) {
    job_fail(job, PD_STATUS_DEADLINE_EXCEEDED, "deadline passed before the frame was read");
    return false;
  }
  return true;
}

bool pd_frame_job_check(pd_frame_job *job, const pd_pipeline_limits *lim) {
  job->status = PD_STATUS_OK;
  if (job->tta < 0 || job->tta > lim->max_tta || job->tta > PD_TTA_MAX) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "tta %d is out of range 0..%d (limits.max_tta)",
             job->tta, lim->max_tta);
    return false;
  }
  if (!check_image(job, &job->frame, "frame", lim->max_frame_pixels)) return false;
  if (job->has_background) {
    const pd_frame_image *f = &job->frame, *b = &job->background;
    if (!check_image(job, b, "background", lim->max_frame_pixels)) return false;
    if (is_raw(f->format) && is_raw(b->format) &&
        (f->width != b->width || f->height != b->height || f->format != b->format)) {
      job_fail(job, PD_STATUS_INVALID_ARGUMENT,
               "background: %dx%d gray%d, but the frame is %dx%d gray%d", b->width, b->height,
               b->format == PD_FORMAT_RAW_GRAY16 ? 16 : 8, f->width, f->height,
               f->format == PD_FORMAT_RAW_GRAY16 ? 16 : 8);
      return false;
    }
  }
  /* the request's segmentation choices over the model's (or the built-in)
   * defaults, checked */
  pd_segment_settings st = job->defaults ? *job->defaults : pd_segment_settings_default();
  const pd_frame_options *o = &job->opt;
  if (o->threshold != 0) st.threshold = o->threshold;
  if (o->min_area > 0) st.min_area = o->min_area;
  if (o->max_area > 0) st.max_area = o->max_area;
  if (o->padding > 0) st.margin = o->padding;
  if (o->keep_edge >= 0) st.keep_edge = o->keep_edge;
  if (o->background >= 0) st.background = (pd_segment_background)o->background;
  if (o->max_objects > 0) st.max_objects = o->max_objects;
  st.max_frame_pixels = lim->max_frame_pixels;
  st.crops = 1;
  pd_error err = {0};
  if (pd_segment_settings_check(&st, &err) != PD_OK) {
    job_fail(job, PD_STATUS_INVALID_ARGUMENT, "segment: %s", err.msg);
    return false;
  }
  job->settings = st;
  return true;
}

/* ---- decode + segment (thread pool) ---- */

typedef struct decoded {
  pd_segment_frame f;
  void *owned; /* pixels this side allocated (NULL: f.pixels borrows the request's) */
} decoded;

static int decode_image(const pd_frame_image *im, long max_pixels, const char *what, decoded *out,
                        pd_error *err) {
  memset(out, 0, sizeof *out);
  if (im->format == PD_FORMAT_RAW_GRAY8) {
    out->f = (pd_segment_frame){.width = im->width,
                                .height = im->height,
                                .bytes_per_pixel = 1,
                                .significant_bits = im->significant_bits ? im->significant_bits : 8,
                                .pixels = im->data};
    return PD_OK;
  }
  if (im->format == PD_FORMAT_RAW_GRAY16) {
    const size_t n = (size_t)im->width * (size_t)im->height;
    uint16_t *px = malloc(n * sizeof *px);
    if (!px) return pd_error_set(err, PD_ENOMEM, "%s: out of memory for %zu samples", what, n);
    for (size_t i = 0; i < n; i++) /* little endian on the wire, host order here */
      px[i] = (uint16_t)(im->data[2 * i] | (unsigned)im->data[2 * i + 1] << 8);
    out->owned = px;
    out->f =
        (pd_segment_frame){.width = im->width,
                           .height = im->height,
                           .bytes_per_pixel = 2,
                           .significant_bits = im->significant_bits ? im->significant_bits : 16,
                           .pixels = px};
    return PD_OK;
  }
  const pd_image_limits lim = {.max_width = 65535, .max_height = 65535, .max_pixels = max_pixels};
  const pd_image_format kind = pd_image_sniff(im->data, im->len);
  if (kind == PD_IMAGE_PNG || kind == PD_IMAGE_TIFF) { /* 16-bit gray: at full depth */
    pd_gray16_image g16 = {0};
    int rc = kind == PD_IMAGE_PNG ? pd_image_decode_png16(im->data, im->len, &lim, &g16, err)
                                  : pd_image_decode_tiff16(im->data, im->len, &lim, &g16, err);
    if (rc == PD_OK) {
      out->owned = g16.pixels;
      out->f =
          (pd_segment_frame){.width = g16.width,
                             .height = g16.height,
                             .bytes_per_pixel = 2,
                             .significant_bits = im->significant_bits ? im->significant_bits : 16,
                             .pixels = g16.pixels};
      return PD_OK;
    }
    if (rc != PD_EUNSUPP) {
      char m[sizeof err->msg];
      snprintf(m, sizeof m, "%s", err->msg);
      return pd_error_set(err, rc, "%s: %s (limits.max_frame_pixels %ld)", what, m, max_pixels);
    }
  }
  if (im->significant_bits > 8)
    return pd_error_set(err, PD_EINVAL,
                        "%s: significant_bits %d, but it is an 8-bit image (16 bits: gray PNG, "
                        "gray TIFF or raw gray16)",
                        what, im->significant_bits);
  pd_gray_image g = {0};
  int rc = pd_image_decode(im->data, im->len, &lim, &g, err);
  if (rc != PD_OK) {
    char m[sizeof err->msg];
    snprintf(m, sizeof m, "%s", err->msg);
    return pd_error_set(err, rc, "%s: %s (limits.max_frame_pixels %ld)", what, m, max_pixels);
  }
  out->owned = g.pixels;
  out->f = (pd_segment_frame){.width = g.width,
                              .height = g.height,
                              .bytes_per_pixel = 1,
                              .significant_bits = im->significant_bits ? im->significant_bits : 8,
                              .pixels = g.pixels};
  return PD_OK;
}

static pd_status status_of(int rc) {
  switch (rc) {
  case PD_ENOMEM:
    return PD_STATUS_RESOURCE_EXHAUSTED;
  case PD_EINTERNAL:
    return PD_STATUS_INTERNAL;
  default: /* PD_EINVAL, PD_ELIMIT, PD_EFORMAT, PD_EUNSUPP: the client's bytes */
    return PD_STATUS_INVALID_ARGUMENT;
  }
}

static void segment_work(uv_work_t *w) {
  pd_frame_job *job = w->data;
  if (atomic_load(&job->cancelled)) return;
  pd_frame_job_segment(job);
}

void pd_frame_job_segment(pd_frame_job *job) {
  const long max_pixels = job->settings.max_frame_pixels;
  uint64_t t0 = pd_now_ns();
  decoded fr = {0}, bg = {0};
  pd_error err = {0};
  int rc = decode_image(&job->frame, max_pixels, "frame", &fr, &err);
  if (rc == PD_OK && job->has_background)
    rc = decode_image(&job->background, max_pixels, "background", &bg, &err);
  uint64_t t1 = pd_now_ns();
  job->decode_ns = t1 - t0;
  if (rc == PD_OK) {
    job->width = fr.f.width;
    job->height = fr.f.height;
    rc = pd_segment_run(&fr.f, job->has_background ? &bg.f : NULL, &job->settings, &job->seg, &err);
    job->segment_ns = pd_now_ns() - t1;
  }
  if (rc != PD_OK) job_fail(job, status_of(rc), "%s", err.msg);
  free(fr.owned);
  free(bg.owned);
}

/* ---- objects (loop thread) ---- */

/* Every object answered: the frame's timings and status. */
static void job_complete(pd_frame_job *job) {
  for (int i = 0; i < job->seg.count; i++) {
    const pd_request *r = &job->objects[i];
    if (r->queue_ns > job->queue_ns) job->queue_ns = r->queue_ns;
    bool seen = r->t_batch_ns == 0;
    for (int j = 0; j < i && !seen; j++)
      seen = job->objects[j].t_batch_ns == r->t_batch_ns;
    if (!seen) job->compute_ns += r->compute_ns;
    if (r->status != PD_STATUS_OK && job->status == PD_STATUS_OK) {
      const pd_segment_object *o = &job->seg.objects[i];
      job_fail(job, r->status, "object %d (box %d,%d %dx%d): %s", i, o->x, o->y, o->width,
               o->height, r->message);
    }
  }
  job_finish(job);
}

static void object_done(pd_request *req) {
  pd_frame_job *job = req->owner;
  if (--job->pending == 0) job_complete(job);
}

static void submit_objects(pd_pipeline *p, pd_frame_job *job) {
  const int n = job->seg.count;
  const pd_pipeline_limits *lim = pd_pipeline_limits_now(p);
  const pd_batcher_counts q = pd_pipeline_queue(p);
  const int free_places = lim->batch.max_queue - q.reserved;
  if (n > free_places) {
    job_fail(job, PD_STATUS_RESOURCE_EXHAUSTED,
             "frame: %d objects, but the queue has %d of %d places free (batching.max_queue); "
             "none queued",
             n, free_places < 0 ? 0 : free_places, lim->batch.max_queue);
    job_finish(job);
    return;
  }
  if (n > 0) {
    job->objects = calloc((size_t)n, sizeof *job->objects);
    if (!job->objects) {
      job_fail(job, PD_STATUS_RESOURCE_EXHAUSTED, "frame: out of memory for %d objects", n);
      job_finish(job);
      return;
    }
  }
  job->pending = n + 1; /* + 1 until every object is submitted (some may finish at once) */
  const uint64_t now = pd_now_ns();
  for (int i = 0; i < n; i++) {
    const pd_segment_object *o = &job->seg.objects[i];
    pd_request *r = &job->objects[i];
    r->id = job->id;
    snprintf(r->model, sizeof r->model, "%s", job->model);
    r->format = PD_FORMAT_RAW_GRAY8;
    r->data = o->crop;
    r->len = (size_t)o->crop_width * (size_t)o->crop_height;
    r->width = o->crop_width;
    r->height = o->crop_height;
    r->top_k = job->top_k;
    r->full_distribution = job->full_distribution;
    r->tta = job->tta;
    r->t_recv_ns = now;
    r->deadline_ns = job->deadline_ns;
    r->done = object_done;
    r->owner = job;
    r->client = job->client;
    r->client_weight = job->client_weight;
    atomic_init(&r->cancelled, atomic_load(&job->cancelled));
    pd_pipeline_submit(p, r);
  }
  if (--job->pending == 0) job_complete(job);
}

static void segment_done(uv_work_t *w, int status) {
  pd_frame_job *job = w->data;
  pd_pipeline *p = job->pipeline;
  job->work_queued = false;
  release_input(job);
  if (atomic_load(&job->cancelled) && job->status == PD_STATUS_OK)
    job_fail(job, PD_STATUS_CANCELLED,
             "cancelled: the client closed its connection before the frame was segmented");
  if (status != 0 && job->status == PD_STATUS_OK)
    job_fail(job, PD_STATUS_CANCELLED, "segmentation cancelled: %s", uv_strerror(status));
  if (job->status == PD_STATUS_OK && job->deadline_ns && pd_now_ns() >= job->deadline_ns)
    job_fail(job, PD_STATUS_DEADLINE_EXCEEDED, "deadline passed after %.3f ms, while segmenting",
             (double)(pd_now_ns() - job->t_recv_ns) * 1e-6);
  if (job->status != PD_STATUS_OK) {
    job_finish(job);
    return;
  }
  submit_objects(p, job);
}

void pd_frame_job_submit(pd_pipeline *p, pd_frame_job *job) {
  job->pipeline = p;
  job->status = PD_STATUS_OK;
  job->message[0] = '\0';
  memset(&job->seg, 0, sizeof job->seg);
  job->objects = NULL;
  job->served = NULL;
  job->pending = 0;
  pd_pipeline_hold(p);
  pd_served *model = NULL;
  if (!admit(p, job, &model)) {
    job_finish(job);
    return;
  }
  job->served = pd_served_ref(model);
  job->work.data = job;
  int rc = uv_queue_work(pd_pipeline_loop(p), &job->work, segment_work, segment_done);
  job->work_queued = rc == 0;
  if (rc != 0) {
    job_fail(job, PD_STATUS_INTERNAL, "cannot queue the segmentation: %s", uv_strerror(rc));
    job_finish(job);
  }
}

void pd_frame_job_cancel(pd_frame_job *job) {
  if (atomic_exchange(&job->cancelled, true)) return;
  if (job->work_queued) {
    uv_cancel((uv_req_t *)&job->work);
    return;
  }
  /* objects in the pipeline: each one not answered yet is dropped */
  for (int i = 0; job->objects && i < job->seg.count; i++)
    if (job->objects[i].done && job->objects[i].pipeline && !job->objects[i].dropped)
      pd_pipeline_cancel(job->pipeline, &job->objects[i]);
}

void pd_frame_job_dispose(pd_frame_job *job) {
  for (int i = 0; job->objects && i < job->seg.count; i++)
    pd_request_dispose(&job->objects[i]);
  free(job->objects);
  job->objects = NULL;
  pd_segment_result_free(&job->seg);
  pd_served_unref(job->served);
  job->served = NULL;
}
