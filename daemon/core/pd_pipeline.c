#include "pd_pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stdbool.h>

#include "pd_engine.h"
#include "pd_tta.h"

struct pd_pipeline {
  uv_loop_t *loop;
  pd_pipeline_limits lim;
  pd_stats *stats;
  pd_repo *repo;
  pd_model_counts counts[PD_REPO_MAX]; /* per model name and version, kept across reloads */
  int n_counts;
  pd_batcher *batcher;
  pd_engine *engine;
  uv_async_t async;
  pthread_mutex_t done_mu;
  pd_request *done_head, *done_tail; /* finished on the engine thread */
  int in_flight;
  uint64_t decode_wait_ns; /* the last decoded request's wait for a decode thread */
  void (*idle_cb)(void *);
  void *idle_data;
};

/* ---- finishing (loop thread) ---- */

/* The counters of s's name and version (a new row the first time). */
static int counts_slot(pd_pipeline *p, const pd_served *s) {
  const pd_model *m = s->model;
  for (int i = 0; i < p->n_counts; i++)
    if (!strcmp(p->counts[i].name, m->name) && !strcmp(p->counts[i].version, m->version)) return i;
  if (p->n_counts == PD_REPO_MAX) return -1; /* counted in the totals only */
  pd_model_counts *c = &p->counts[p->n_counts];
  snprintf(c->name, sizeof c->name, "%s", m->name);
  snprintf(c->version, sizeof c->version, "%s", m->version);
  return p->n_counts++;
}

static void count_model(pd_pipeline *p, const pd_request *req, uint64_t now) {
  if (req->model_slot < 0 || req->model_slot >= p->n_counts) return;
  pd_model_counts *c = &p->counts[req->model_slot];
  c->requests[req->status >= 0 && req->status < PD_STATUS_COUNT ? req->status
                                                                : PD_STATUS_UNKNOWN]++;
  if (req->status != PD_STATUS_OK) return;
  c->latency_us += (now - req->t_recv_ns) / 1000;
  c->queue_us += req->queue_ns / 1000;
  c->compute_us += req->compute_ns / 1000;
  c->images += (uint64_t)req->views;
}

static void finish(pd_pipeline *p, pd_request *req) {
  const uint64_t now = pd_now_ns();
  pd_stats_request_done(p->stats, req, now);
  count_model(p, req, now);
  if (req->dropped) atomic_fetch_add(&p->stats->requests_cancelled, 1);
  if (req->tta_adaptive && req->status == PD_STATUS_OK) {
    atomic_fetch_add(&p->stats->tta_adaptive_requests, 1);
    atomic_fetch_add(&p->stats->tta_views, (uint64_t)req->views);
    if (req->views < req->tta_full) atomic_fetch_add(&p->stats->tta_reduced, 1);
  }
  p->in_flight--;
  atomic_fetch_sub(&p->stats->in_flight, 1);
  req->done(req);
  if (p->in_flight == 0) p->decode_wait_ns = 0;
  if (p->in_flight == 0 && p->idle_cb) p->idle_cb(p->idle_data);
}

static void release_input(pd_request *req) {
  if (req->release_input) req->release_input(req);
  req->release_input = NULL;
  req->data = NULL;
}

/* Engine thread: queue for the loop. */
static void engine_sink(pd_request *req, void *ctx) {
  pd_pipeline *p = ctx;
  req->next = NULL;
  pthread_mutex_lock(&p->done_mu);
  if (p->done_tail)
    p->done_tail->next = req;
  else
    p->done_head = req;
  p->done_tail = req;
  pthread_mutex_unlock(&p->done_mu);
  uv_async_send(&p->async);
}

static void on_async(uv_async_t *h) {
  pd_pipeline *p = h->data;
  pthread_mutex_lock(&p->done_mu);
  pd_request *list = p->done_head;
  p->done_head = p->done_tail = NULL;
  pthread_mutex_unlock(&p->done_mu);
  while (list) {
    pd_request *r = list;
    list = r->next;
    r->next = NULL;
    finish(p, r);
  }
}

/* ---- decode + preprocess (thread pool) ---- */

/* A request no one waits for any more: not decoded, not computed. */
static void drop_cancelled(pd_request *req, const char *where) {
  req->dropped = true;
  pd_request_fail(req, PD_STATUS_CANCELLED,
                  "cancelled %s: the client closed its connection before it was computed", where);
}

static void decode_work(uv_work_t *w) {
  pd_request *req = w->data;
  const pd_served *s = req->served;
  uint64_t t0 = pd_now_ns();
  if (atomic_load(&req->cancelled)) return; /* decode_done drops it */
  const int n = req->views;
  req->input = malloc(pd_servable_input_floats(s->servable, n) * sizeof(float));
  req->probs = malloc((size_t)s->model->n_classes * sizeof(float));
  if (!req->input || !req->probs) {
    pd_request_fail(req, PD_STATUS_RESOURCE_EXHAUSTED,
                    "out of memory for %d input slots of a %zu-byte image", n, req->len);
  } else {
    const bool raw = req->format == PD_FORMAT_RAW_GRAY8;
    const pd_input_bytes in = {.data = req->data,
                               .len = req->len,
                               .declared = req->format == PD_FORMAT_PNG    ? PD_IMAGE_PNG
                                           : req->format == PD_FORMAT_JPEG ? PD_IMAGE_JPEG
                                           : req->format == PD_FORMAT_TIFF ? PD_IMAGE_TIFF
                                                                           : PD_IMAGE_UNKNOWN,
                               .raw_width = raw ? req->width : 0,
                               .raw_height = raw ? req->height : 0};
    pd_error err = {0};
    if (pd_servable_prepare(s->servable, &in, &req->limits, n, req->input, &err) != PD_OK)
      pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT, "%s", err.msg);
  }
  req->decode_ns = pd_now_ns() - t0;
}

static void decode_done(uv_work_t *w, int status) {
  pd_request *req = w->data;
  pd_pipeline *p = req->pipeline;
  req->decode_queued = false;
  release_input(req);
  uint64_t now = pd_now_ns();
  req->t_decoded_ns = now;
  if (status == 0 && now > req->t_recv_ns + req->decode_ns)
    p->decode_wait_ns = now - req->decode_ns - req->t_recv_ns;
  if (atomic_load(&req->cancelled) && req->status == PD_STATUS_OK)
    drop_cancelled(req, status != 0 ? "before its decode" : "after its decode");
  if (status != 0 && req->status == PD_STATUS_OK)
    pd_request_fail(req, PD_STATUS_CANCELLED, "decode cancelled: %s", uv_strerror(status));
  if (req->status == PD_STATUS_OK && req->deadline_ns && now >= req->deadline_ns)
    pd_request_fail(req, PD_STATUS_DEADLINE_EXCEEDED,
                    "deadline passed after %.3f ms, while decoding",
                    (double)(now - req->t_recv_ns) * 1e-6);
  if (req->status != PD_STATUS_OK) {
    pd_batcher_release(p->batcher, req);
    finish(p, req);
    return;
  }
  pd_batcher_submit(p->batcher, req, now);
}

/* ---- admission (loop thread) ---- */

/* Cheap checks before any work; false when the request was refused. */
static bool admit(pd_pipeline *p, pd_request *req, pd_served **model) {
  pd_status code;
  char why[sizeof req->message];
  pd_served *s = pd_repo_served(p->repo, req->model, NULL, &code, why, sizeof why);
  if (!s) {
    pd_request_fail(req, code, "%s", why);
    return false;
  }
  *model = s;
  if (req->tta < 0 || req->tta > p->lim.max_tta || req->tta > PD_TTA_MAX) {
    pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT,
                    "tta %d is out of range 0..%d (limits.max_tta)", req->tta, p->lim.max_tta);
    return false;
  }
  if (req->format == PD_FORMAT_RAW_GRAY8) {
    const pd_image_limits *il = &p->lim.image;
    if (req->width <= 0 || req->height <= 0) {
      pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT, "raw image: size %dx%d is empty", req->width,
                      req->height);
      return false;
    }
    if (req->width > il->max_width || req->height > il->max_height ||
        (long)req->width * req->height > il->max_pixels) {
      pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT,
                      "raw image: %dx%d exceeds the limit of %dx%d, %ld pixels", req->width,
                      req->height, il->max_width, il->max_height, il->max_pixels);
      return false;
    }
    if (req->len != (size_t)req->width * (size_t)req->height) {
      pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT, "raw image: %zu bytes, but %dx%d needs %zu",
                      req->len, req->width, req->height, (size_t)req->width * (size_t)req->height);
      return false;
    }
  } else if (req->format < PD_FORMAT_AUTO || req->format > PD_FORMAT_TIFF) {
    pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT, "image: unknown format %d", (int)req->format);
    return false;
  } else if (req->len == 0) {
    pd_request_fail(req, PD_STATUS_INVALID_ARGUMENT, "image: no bytes");
    return false;
  }
  if (req->deadline_ns && pd_now_ns() >= req->deadline_ns) {
    pd_request_fail(req, PD_STATUS_DEADLINE_EXCEEDED,
                    "deadline passed before the request was read");
    return false;
  }
  pd_error qerr = {0};
  if (pd_batcher_reserve(p->batcher, req, &qerr) != PD_OK) {
    pd_request_fail(req, PD_STATUS_RESOURCE_EXHAUSTED, "%s", qerr.msg);
    return false;
  }
  return true;
}

/* The request's own tta, or the model's default -- fewer while the queue
 * is behind, with batching.adaptive_tta (pd_adaptive.h). */
static void choose_views(pd_pipeline *p, pd_request *req) {
  const int full = pd_tta_default_count(&req->served->model->tta);
  req->tta_full = full;
  req->tta_adaptive = req->tta == 0 && p->lim.adaptive.on;
  if (req->tta > 0) {
    req->views = req->tta;
  } else if (req->tta_adaptive) {
    pd_batcher_load l = pd_batcher_load_get(p->batcher, pd_now_ns());
    /* requests waiting for a decode thread wait too: as long as the last
     * one decoded did, while others are in flight (this one counts) */
    uint64_t wait = l.oldest_wait_ns;
    if (p->in_flight > 1 && p->decode_wait_ns > wait) wait = p->decode_wait_ns;
    req->views = pd_adaptive_views(&p->lim.adaptive, full, wait, l.compute_avg_ns);
  } else {
    req->views = full;
  }
}

void pd_pipeline_submit(pd_pipeline *p, pd_request *req) {
  req->pipeline = p;
  req->tta_adaptive = false;
  req->status = PD_STATUS_OK;
  req->message[0] = '\0';
  req->model_slot = -1;
  p->in_flight++;
  atomic_fetch_add(&p->stats->in_flight, 1);
  pd_served *model = NULL;
  if (!admit(p, req, &model)) {
    if (model) req->model_slot = counts_slot(p, model);
    release_input(req);
    finish(p, req);
    return;
  }
  req->served = pd_served_ref(model);
  req->model_slot = counts_slot(p, model);
  req->limits = p->lim.image;
  choose_views(p, req);
  req->work.data = req;
  int rc = uv_queue_work(p->loop, &req->work, decode_work, decode_done);
  req->decode_queued = rc == 0;
  if (rc != 0) {
    pd_batcher_release(p->batcher, req);
    release_input(req);
    pd_request_fail(req, PD_STATUS_INTERNAL, "cannot queue the decode: %s", uv_strerror(rc));
    finish(p, req);
  }
}

void pd_pipeline_cancel(pd_pipeline *p, pd_request *req) {
  if (atomic_exchange(&req->cancelled, true)) return;
  /* Still waiting for a decode thread: taken off the pool's queue, and
   * decode_done runs with UV_ECANCELED. Decoding now: decode_done drops it.
   * Queued for the engine: the batcher hands it back unbatched. */
  if (req->decode_queued) uv_cancel((uv_req_t *)&req->work);
  pd_batcher_poke(p->batcher);
}

/* ---- lifetime ---- */

int pd_pipeline_create(uv_loop_t *loop, const pd_pipeline_limits *lim, pd_stats *stats,
                       pd_pipeline **out, pd_error *err) {
  pd_pipeline *p = calloc(1, sizeof *p);
  if (!p) return pd_error_set(err, PD_ENOMEM, "pipeline: out of memory");
  p->loop = loop;
  p->lim = *lim;
  p->stats = stats;
  pthread_mutex_init(&p->done_mu, NULL);
  int rc = pd_batcher_create(&lim->batch, &p->batcher, err);
  if (rc == PD_OK) rc = pd_engine_start(p->batcher, stats, engine_sink, p, &p->engine, err);
  if (rc == PD_OK) {
    int uv = uv_async_init(loop, &p->async, on_async);
    if (uv == 0) {
      p->async.data = p;
      *out = p;
      return PD_OK;
    }
    rc = pd_error_set(err, PD_EINTERNAL, "pipeline: uv_async_init: %s", uv_strerror(uv));
    pd_batcher_stop(p->batcher);
    pd_engine_join(p->engine); /* nothing was queued: it ends at once */
  }
  pd_batcher_destroy(p->batcher);
  pthread_mutex_destroy(&p->done_mu);
  free(p);
  return rc;
}

void pd_pipeline_set_limits(pd_pipeline *p, const pd_pipeline_limits *lim) {
  p->lim = *lim;
  pd_batcher_set_limits(p->batcher, &lim->batch);
}

void pd_pipeline_set_model(pd_pipeline *p, pd_served *s) {
  pd_repo *r = NULL;
  pd_error err = {0};
  if (s && pd_repo_single(s, &r, &err) != PD_OK) return; /* out of memory: the old one stays */
  pd_pipeline_set_repo(p, r);
}

void pd_pipeline_set_repo(pd_pipeline *p, pd_repo *r) {
  pd_repo *old = p->repo;
  p->repo = r;
  pd_repo_free(old);
}

const pd_repo *pd_pipeline_repo(const pd_pipeline *p) {
  return p->repo;
}

pd_served *pd_pipeline_model(const pd_pipeline *p) {
  return pd_repo_default(p->repo);
}

pd_served *pd_pipeline_find(const pd_pipeline *p, const char *model, const char *version,
                            pd_status *code, char *why, size_t cap) {
  return pd_repo_served(p->repo, model, version, code, why, cap);
}

const pd_model_counts *pd_pipeline_model_counts(const pd_pipeline *p, int *n) {
  *n = p->n_counts;
  return p->counts;
}

int pd_pipeline_in_flight(const pd_pipeline *p) {
  return p->in_flight;
}

pd_batcher_counts pd_pipeline_queue(pd_pipeline *p) {
  return pd_batcher_counts_get(p->batcher);
}

uv_loop_t *pd_pipeline_loop(const pd_pipeline *p) {
  return p->loop;
}

const pd_pipeline_limits *pd_pipeline_limits_now(const pd_pipeline *p) {
  return &p->lim;
}

pd_stats *pd_pipeline_stats(const pd_pipeline *p) {
  return p->stats;
}

void pd_pipeline_hold(pd_pipeline *p) {
  p->in_flight++;
}

void pd_pipeline_unhold(pd_pipeline *p) {
  p->in_flight--;
  if (p->in_flight == 0 && p->idle_cb) p->idle_cb(p->idle_data);
}

void pd_pipeline_on_idle(pd_pipeline *p, void (*cb)(void *), void *data) {
  p->idle_cb = cb;
  p->idle_data = data;
}

static void async_closed(uv_handle_t *h) {
  pd_pipeline *p = h->data;
  pd_batcher_destroy(p->batcher);
  pthread_mutex_destroy(&p->done_mu);
  free(p);
}

void pd_pipeline_close(pd_pipeline *p) {
  pd_batcher_stop(p->batcher);
  pd_engine_join(p->engine);
  p->engine = NULL;
  on_async(&p->async); /* anything the engine finished after the last wake-up */
  pd_pipeline_set_model(p, NULL);
  uv_close((uv_handle_t *)&p->async, async_closed);
}
