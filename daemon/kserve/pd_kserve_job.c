#include "pd_kserve_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void job_fail(pd_kjob *job, int index, int status, const char *message) {
  if (job->status != 0 && job->failed_index >= 0 && job->failed_index < index) return;
  job->status = status;
  job->failed_index = index;
  if (index >= 0)
    snprintf(job->message, sizeof job->message, "element %d: %s", index, message);
  else
    snprintf(job->message, sizeof job->message, "%s", message);
}

static void crop_done(pd_request *req) {
  pd_kjob *job = req->owner;
  int i = (int)(req - job->reqs);
  if (req->status != PD_STATUS_OK) {
    job_fail(job, i, (int)req->status, req->message);
  } else if (req->served && req->probs) {
    if (job->kr.views == 0 || req->views < job->kr.views) job->kr.views = req->views;
    int nc = req->served->model->n_classes;
    if (!job->served) {
      job->served = pd_served_ref(req->served);
      job->n_classes = nc;
      job->probs = calloc((size_t)job->kr.n * (size_t)nc, sizeof *job->probs);
      if (!job->probs) job_fail(job, -1, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory for answers");
    }
    if (nc != job->n_classes)
      job_fail(job, i, PD_STATUS_UNAVAILABLE,
               "the model was reloaded while this request ran (its crops got different models); "
               "send it again");
    else if (job->probs)
      memcpy(job->probs + (size_t)i * (size_t)nc, req->probs, (size_t)nc * sizeof *req->probs);
  }
  pd_request_dispose(req);
  req->done = NULL; /* answered: pd_kjob_cancel leaves it alone */
  if (--job->pending == 0) job->done(job);
}

void pd_kjob_submit(pd_kjob *job, pd_pipeline *p, const char *model, uint64_t deadline_ns) {
  job->status = 0;
  job->message[0] = 0;
  job->served = NULL;
  job->probs = NULL;
  job->n_classes = 0;
  job->failed_index = -1;
  job->kr.views = 0;
  job->reqs = calloc((size_t)job->kr.n, sizeof *job->reqs);
  if (!job->reqs || job->kr.n < 1) {
    job_fail(job, -1, job->reqs ? PD_STATUS_INVALID_ARGUMENT : PD_STATUS_RESOURCE_EXHAUSTED,
             job->reqs ? "no crops" : "out of memory");
    job->done(job);
    return;
  }
  uint64_t now = pd_now_ns();
  job->pipeline = p;
  /* held while submitting, so a crop refused at once cannot end the job
   * before the others are in */
  job->pending = job->kr.n + 1;
  for (int i = 0; i < job->kr.n; i++) {
    pd_request *r = &job->reqs[i];
    const pd_kinfer_crop *c = &job->kr.crops[i];
    r->id = (uint64_t)i;
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    r->format = c->gray8 ? PD_FORMAT_RAW_GRAY8 : PD_FORMAT_AUTO;
    r->data = c->data;
    r->len = c->len;
    r->width = c->width;
    r->height = c->height;
    r->top_k = 1;
    r->full_distribution = true;
    r->tta = job->kr.tta > 0 ? (int)job->kr.tta : 0;
    r->t_recv_ns = now;
    r->deadline_ns = deadline_ns;
    r->client = job->client;
    r->release_input = NULL;
    r->done = crop_done;
    r->owner = job;
    pd_pipeline_submit(p, r);
  }
  if (--job->pending == 0) job->done(job);
}

void pd_kjob_cancel(pd_kjob *job) {
  for (int i = 0; job->reqs && i < job->kr.n; i++)
    if (job->reqs[i].done) pd_pipeline_cancel(job->pipeline, &job->reqs[i]);
}

void pd_kjob_dispose(pd_kjob *job) {
  if (job->served) pd_served_unref(job->served);
  job->served = NULL;
  free(job->probs);
  job->probs = NULL;
  free(job->reqs);
  job->reqs = NULL;
  pd_kinfer_request_free(&job->kr);
}

pd_served *pd_kjob_model(const pd_pipeline *p, const char *name, const char *version, char key[64],
                         pd_status *code, char *why, size_t cap) {
  name = name ? name : "";
  version = version ? version : "";
  int n = *version ? snprintf(key, 64, "%s:%s", name, version) : snprintf(key, 64, "%s", name);
  if (n < 0 || n >= 64 || strchr(name, ':')) {
    *code = PD_STATUS_NOT_FOUND;
    snprintf(why, cap, "unknown model \"%.64s\" version \"%.32s\"", name, version);
    key[0] = '\0';
    return NULL;
  }
  return pd_pipeline_find(p, name, version, code, why, cap);
}
