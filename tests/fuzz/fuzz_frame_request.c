/* fuzz_frame_request: a FrameRequest from the wire to its answer, without a
 * pipeline. The input is one serialized plankton.Request (the body of a
 * frame, as pd_native_server hands it on); a frame body goes through
 * pd_wire_frame_input, the core's checks (pd_frame_job_check, with a
 * 64 Kpx frame limit to keep each run short), the decode and segmentation
 * (pd_frame_job_segment, on this thread), then every object is given an OK
 * status without scores and the answer is packed (pd_wire_frame_answer).
 *
 * Oracles: the job carries the message's id, image bytes and background
 * presence, the default top_k for 0, edge and background choices in range;
 * a refused frame has a message and no objects; a segmented frame has at
 * most max_objects objects, each box inside the frame with its area within
 * the settings' bounds and its crop inside the frame around the box, crop
 * bytes of crop_width x crop_height; the answer is one well-formed
 * Response frame: a FrameResponse with the id, the status, one object per
 * object segmented with the same box, and crop bytes exactly when asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "pd_frame.h"
#include "pd_frame_job.h"
#include "pd_wire.h"

#define DEFAULT_TOP_K 5

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void check_input(const Plankton__FrameRequest *f, const pd_frame_job *job) {
  PD_FUZZ_ASSERT(job->id == f->id);
  PD_FUZZ_ASSERT(job->has_background == (f->background != NULL));
  PD_FUZZ_ASSERT(job->frame.len == (f->image ? f->image->data.len : 0));
  PD_FUZZ_ASSERT(f->top_k != 0 || job->top_k == DEFAULT_TOP_K);
  PD_FUZZ_ASSERT(job->opt.keep_edge >= -1 && job->opt.keep_edge <= 1);
  PD_FUZZ_ASSERT(job->opt.background >= -1 && job->opt.background <= 1);
  PD_FUZZ_ASSERT(strlen(job->model) < sizeof job->model);
}

static void check_segmented(const pd_frame_job *job) {
  const pd_segment_result *r = &job->seg;
  const pd_segment_settings *s = &job->settings;
  PD_FUZZ_ASSERT(r->count >= 0 && r->count <= s->max_objects);
  PD_FUZZ_ASSERT(r->stats.found >= r->count);
  for (int i = 0; i < r->count; i++) {
    const pd_segment_object *o = &r->objects[i];
    PD_FUZZ_ASSERT(o->width > 0 && o->height > 0 && o->x >= 0 && o->y >= 0);
    PD_FUZZ_ASSERT(o->x + o->width <= job->width && o->y + o->height <= job->height);
    PD_FUZZ_ASSERT(o->area >= 1 && o->area <= (long)o->width * o->height);
    PD_FUZZ_ASSERT(o->crop != NULL);
    PD_FUZZ_ASSERT(o->crop_x >= 0 && o->crop_y >= 0 && o->crop_x <= o->x && o->crop_y <= o->y);
    PD_FUZZ_ASSERT(o->crop_x + o->crop_width <= job->width);
    PD_FUZZ_ASSERT(o->crop_y + o->crop_height <= job->height);
    PD_FUZZ_ASSERT(o->crop_x + o->crop_width >= o->x + o->width);
    PD_FUZZ_ASSERT(o->crop_y + o->crop_height >= o->y + o->height);
  }
}

static void check_answer(const pd_frame_job *job, uint8_t *frame, size_t len) {
  PD_FUZZ_ASSERT(frame != NULL && len >= PD_FRAME_HEADER);
  PD_FUZZ_ASSERT(be32(frame) == len - PD_FRAME_HEADER);
  Plankton__Response *r =
      plankton__response__unpack(NULL, len - PD_FRAME_HEADER, frame + PD_FRAME_HEADER);
  PD_FUZZ_ASSERT(r != NULL);
  PD_FUZZ_ASSERT(r->body_case == PLANKTON__RESPONSE__BODY_FRAME);
  const Plankton__FrameResponse *fr = r->frame;
  PD_FUZZ_ASSERT(fr->id == job->id && fr->status);
  PD_FUZZ_ASSERT((int)fr->status->code == (int)job->status);
  const int n = job->objects ? job->seg.count : 0;
  PD_FUZZ_ASSERT(fr->n_objects == (size_t)n);
  for (int i = 0; i < n; i++) {
    const Plankton__FrameObject *o = fr->objects[i];
    const pd_segment_object *s = &job->seg.objects[i];
    PD_FUZZ_ASSERT(o->x == (uint32_t)s->x && o->y == (uint32_t)s->y);
    PD_FUZZ_ASSERT(o->width == (uint32_t)s->width && o->height == (uint32_t)s->height);
    PD_FUZZ_ASSERT(o->crop.len ==
                   (job->opt.return_crops ? (size_t)s->crop_width * (size_t)s->crop_height : 0));
  }
  plankton__response__free_unpacked(r, NULL);
  free(frame);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  pd_segment_set_log(NULL); /* leptonica's messages dropped, as the daemon's are */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Plankton__Request *msg = pd_wire_unpack(data, size);
  if (!msg) return 0;
  if (msg->body_case != PLANKTON__REQUEST__BODY_FRAME) {
    pd_wire_free(msg);
    return 0;
  }
  pd_frame_job job;
  memset(&job, 0, sizeof job);
  pd_wire_frame_input(msg->frame, 1000, DEFAULT_TOP_K, &job);
  check_input(msg->frame, &job);
  const pd_pipeline_limits lim = {.max_tta = 64, .max_frame_pixels = 1L << 16};
  if (pd_frame_job_check(&job, &lim)) {
    pd_frame_job_segment(&job);
    if (job.status == PD_STATUS_OK) {
      check_segmented(&job);
      if (job.seg.count > 0) {
        job.objects = calloc((size_t)job.seg.count, sizeof *job.objects);
        PD_FUZZ_ASSERT(job.objects != NULL);
      }
    } else {
      PD_FUZZ_ASSERT(job.message[0] != '\0' && job.seg.count == 0);
    }
  } else {
    PD_FUZZ_ASSERT(job.status != PD_STATUS_OK && job.message[0] != '\0');
  }
  size_t len = 0;
  uint8_t *answer = pd_wire_frame_answer(&job, &len);
  check_answer(&job, answer, len);
  pd_frame_job_dispose(&job);
  pd_wire_free(msg);
  return 0;
}
