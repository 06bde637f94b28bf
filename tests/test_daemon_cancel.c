/* Cancel on disconnect, on a real daemon: a client pipelines 2,000 classify
 * requests with TTA 16 at a daemon made slow on purpose (one engine thread,
 * one decode thread, 16 images a batch: one request per batch) and closes
 * its connection at once, reading nothing (Ctrl-C in the middle of a
 * classify). Then, from a second connection:
 *  - Stats.requests_cancelled > 0 and equal to /metrics'
 *    planktond_requests_cancelled_total; every cancelled request counted
 *    CANCELLED in the per-status counts;
 *  - far fewer images were computed than the 32,000 asked, and exactly 16
 *    per request answered OK (no cancelled request ran in a batch);
 *  - every request the daemon took is accounted for once: the per-status
 *    counts add up to OK + CANCELLED, and in_flight returns to 0;
 *  - the daemon still answers a new client, with the engine's own
 *    probabilities for the crop. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pd_daemon_test.h"
#include "pd_td_raw.h"
#include "pd_test.h"
#include "plankton.pb-c.h"

#define N_REQUESTS 2000
#define TTA 16
#define CROP_W 60
#define CROP_H 44

static pd_test_state st;

static uint8_t *classify_frame(uint64_t id, const uint8_t *png, size_t png_len, size_t *len) {
  Plankton__Image img = PLANKTON__IMAGE__INIT;
  img.format = PLANKTON__IMAGE_FORMAT__IMAGE_FORMAT_PNG;
  img.data.data = (uint8_t *)png;
  img.data.len = png_len;
  Plankton__ClassifyRequest cr = PLANKTON__CLASSIFY_REQUEST__INIT;
  cr.id = id;
  cr.image = &img;
  cr.tta = TTA;
  Plankton__Request rq = PLANKTON__REQUEST__INIT;
  rq.body_case = PLANKTON__REQUEST__BODY_CLASSIFY;
  rq.classify = &cr;
  return pd_raw_request_frame(&rq, len);
}

/* Writes the frames on a fresh connection as fast as the daemon takes them
 * (at most 5 s), then closes it without reading: how many were written
 * whole. */
static int flood_and_leave(const pd_td *d, const uint8_t *png, size_t png_len) {
  int fd = pd_raw_connect(d->socket);
  if (fd < 0) return -1;
  size_t flen = 0;
  uint8_t *frame = classify_frame(1, png, png_len, &flen);
  size_t total = flen * N_REQUESTS, sent = 0;
  uint8_t *all = frame ? malloc(total) : NULL;
  if (!all) {
    free(frame);
    close(fd);
    return -1;
  }
  for (int i = 0; i < N_REQUESTS; i++)
    memcpy(all + (size_t)i * flen, frame, flen);
  free(frame);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  double until = pd_td_now_ms() + 5000;
  while (sent < total && pd_td_now_ms() < until) {
    ssize_t n = send(fd, all + sent, total - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, 50);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  close(fd); /* the answers are never read */
  free(all);
  return (int)(sent / flen);
}

static pc_client_response *stats_of(pc_client *c) {
  pc_client_response *r = NULL;
  pc_client_error err;
  if (pc_client_stats(c, &r, &err) != PC_CLIENT_OK || r->status != 0) {
    fprintf(stderr, "stats: %s\n", r ? r->message : err.message);
    pc_client_response_free(r);
    return NULL;
  }
  return r;
}

static uint64_t sum_statuses(const pc_client_stats_result *s) {
  uint64_t n = 0;
  for (int i = 0; i < 17; i++)
    n += s->requests_by_status[i];
  return n;
}

int main(void) {
  if (!pd_td_have_model()) return 77;
  pd_td_ref ref;
  if (pd_td_ref_open(&ref, pd_td_model_dir()) != 0) return 1;
  const size_t n_classes = (size_t)ref.model->n_classes;
  uint8_t *gray = pd_td_crop(7, CROP_W, CROP_H);
  size_t png_len = 0;
  uint8_t *png = pd_td_png(gray, CROP_W, CROP_H, &png_len);
  float *want = malloc(n_classes * sizeof *want);
  if (!png || !want || pd_td_ref_probs_tta(&ref, gray, CROP_W, CROP_H, TTA, want) != 0) return 1;

  pd_td d;
  const char *args[] = {"--threads",
                        "1",
                        "--decode-threads",
                        "1",
                        "--max-batch",
                        "16",
                        "--max-in-flight",
                        "4096",
                        "--max-queue",
                        "4096",
                        "--metrics",
                        "unix:@DIR@/metrics.sock",
                        "--max-queue-delay-us",
                        "0",
                        NULL};
  if (pd_td_start(&d, args) != 0) return 1;
  char msock[400];
  snprintf(msock, sizeof msock, "%s/metrics.sock", d.dir);

  pc_client *c = pd_td_connect(&d, 8);
  PD_CHECK(&st, c != NULL);
  if (!c) return 1;
  pc_client_response *before = stats_of(c);
  PD_CHECK(&st, before != NULL);
  if (!before) return 1;

  double t0 = pd_td_now_ms();
  int sent = flood_and_leave(&d, png, png_len);
  printf("sent %d of %d requests (TTA %d) in %.0f ms, then closed\n", sent, N_REQUESTS, TTA,
         pd_td_now_ms() - t0);
  PD_CHECK(&st, sent > 100);

  /* everything the daemon took is answered or dropped: in_flight back to 0 */
  pc_client_response *after = NULL;
  double until = pd_td_now_ms() + 120000;
  for (;;) {
    pc_client_response_free(after);
    after = stats_of(c);
    if (!after || (after->u.stats.in_flight == 0 && after->u.stats.connections == 1) ||
        pd_td_now_ms() > until)
      break;
    usleep(20000);
  }
  PD_CHECK(&st, after != NULL);
  if (!after) return 1;
  const pc_client_stats_result *b = &before->u.stats, *a = &after->u.stats;
  PD_CHECK_INT(&st, a->in_flight, 0);
  PD_CHECK_INT(&st, a->connections, 1);
  const uint64_t taken = sum_statuses(a) - sum_statuses(b);
  const uint64_t ok = a->requests_by_status[0] - b->requests_by_status[0];
  const uint64_t cancelled_status = a->requests_by_status[1] - b->requests_by_status[1];
  const uint64_t dropped = a->requests_cancelled - b->requests_cancelled;
  const uint64_t images = a->images - b->images;
  printf("daemon took %llu: %llu computed OK (%llu images), %llu dropped unstarted, "
         "in %.0f ms\n",
         (unsigned long long)taken, (unsigned long long)ok, (unsigned long long)images,
         (unsigned long long)dropped, pd_td_now_ms() - t0);
  PD_CHECK(&st, dropped > 0);
  PD_CHECK_INT(&st, cancelled_status, dropped);
  PD_CHECK_INT(&st, taken, ok + dropped); /* each once, nothing else */
  PD_CHECK(&st, taken <= (uint64_t)sent);
  PD_CHECK_INT(&st, images, ok * TTA); /* nothing cancelled ran in a batch */
  PD_CHECK(&st, images < (uint64_t)N_REQUESTS * TTA / 4);

  char *m = pd_td_metrics(msock);
  PD_CHECK(&st, m != NULL);
  if (m) {
    PD_CHECK_INT(&st, pd_td_metric(m, "planktond_requests_cancelled_total"), a->requests_cancelled);
    PD_CHECK_INT(&st, pd_td_metric(m, "planktond_inference_in_flight_requests"), 0);
    free(m);
  }

  /* a new client is served, with the engine's answer */
  pc_client *c2 = pd_td_connect(&d, 8);
  PD_CHECK(&st, c2 != NULL);
  if (c2) {
    pc_client_classify_request rq = {.id = 42,
                                     .format = PC_CLIENT_IMAGE_PNG,
                                     .data = png,
                                     .len = png_len,
                                     .tta = TTA,
                                     .full_distribution = true};
    pc_client_response *r = NULL;
    pc_client_error err;
    int rc = pc_client_classify(c2, &rq, &r, &err);
    PD_CHECK_INT(&st, rc, PC_CLIENT_OK);
    if (rc == PC_CLIENT_OK) {
      PD_CHECK_INT(&st, r->status, 0);
      PD_CHECK_INT(&st, r->u.classify.n_distribution, n_classes);
      double worst = r->u.classify.n_distribution == n_classes ? 0 : 1;
      for (size_t j = 0; j < r->u.classify.n_distribution && j < n_classes; j++)
        worst = fmax(worst, fabs((double)r->u.classify.distribution[j] - want[j]));
      PD_CHECK(&st, worst <= pd_td_prob_tol());
      printf("a new client's answer: largest difference from the engine %.3g\n", worst);
    }
    pc_client_response_free(r);
    pc_client_close(c2);
  }
  pc_client_response_free(before);
  pc_client_response_free(after);
  pc_client_close(c);
  PD_CHECK_INT(&st, pd_td_stop(&d, SIGTERM, 60), 0);
  pd_td_cleanup(&d);
  pd_td_ref_close(&ref);
  free(want);
  free(png);
  free(gray);
  return pd_test_finish(&st, "daemon_cancel");
}
