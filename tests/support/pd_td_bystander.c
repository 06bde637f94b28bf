/* pd_td_bystander: see pd_td_bystander.h. */
#include "pd_td_bystander.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pd_td_wait.h"

static void *bystander_main(void *arg) {
  pd_td_bystander *b = arg;
  pc_client *c = pd_td_connect(b->d, 4);
  if (!c) {
    b->failed++;
    return NULL;
  }
  for (uint64_t id = 1; !atomic_load(&b->stop); id++) {
    pc_client_classify_request rq = {.id = id,
                                     .format = PC_CLIENT_IMAGE_PNG,
                                     .data = b->png,
                                     .len = b->png_len,
                                     .full_distribution = true};
    pc_client_response *r = NULL;
    pc_client_error err;
    if (pc_client_classify(c, &rq, &r, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "bystander: %s\n", err.message);
      b->failed++;
      break;
    }
    if (r->status != 0 || r->id != id) {
      fprintf(stderr, "bystander: id %llu: %s: %s\n", (unsigned long long)r->id,
              pc_client_status_name(r->status), r->message);
      b->failed++;
    } else {
      bool right = (int)r->u.classify.n_distribution == b->n_classes;
      for (int j = 0; right && j < b->n_classes; j++)
        right = fabs((double)r->u.classify.distribution[j] - b->want[j]) <= b->tol;
      if (right)
        b->ok++;
      else
        b->wrong++;
    }
    pc_client_response_free(r);
    usleep(1000); /* steady, not flat out: the machine is shared */
  }
  pc_client_close(c);
  return NULL;
}

void pd_td_bystander_start(pd_td_bystander *b) {
  atomic_store(&b->stop, 0);
  atomic_store(&b->ok, 0);
  atomic_store(&b->failed, 0);
  atomic_store(&b->wrong, 0);
  pthread_create(&b->t, NULL, bystander_main, b);
}

bool pd_td_bystander_progress(pd_td_bystander *b, int more) {
  int target = atomic_load(&b->ok) + more;
  double until = pd_td_now_ms() + 60000;
  while (atomic_load(&b->ok) < target && !atomic_load(&b->failed) && pd_td_now_ms() < until)
    usleep(5000);
  return atomic_load(&b->ok) >= target;
}

void pd_td_bystander_stop(pd_td_bystander *b) {
  atomic_store(&b->stop, 1);
  pthread_join(b->t, NULL);
}

bool pd_td_guarded_start(pd_test_state *st, pd_td_guarded *g, const char *const *args,
                         const pd_td_bystander *proto) {
  if (pd_td_start(&g->d, args) != 0) {
    PD_CHECK(st, !"planktond started");
    pd_td_cleanup(&g->d);
    return false;
  }
  g->b = (pd_td_bystander){.d = &g->d,
                           .png = proto->png,
                           .png_len = proto->png_len,
                           .want = proto->want,
                           .n_classes = proto->n_classes,
                           .tol = proto->tol};
  pd_td_bystander_start(&g->b);
  return true;
}

void pd_td_guarded_stop(pd_test_state *st, pd_td_guarded *g) {
  pd_td_bystander_stop(&g->b);
  printf("bystander: %d correct answers, %d failures, %d wrong\n", g->b.ok, g->b.failed,
         g->b.wrong);
  PD_CHECK(st, g->b.ok > 0);
  PD_CHECK_INT(st, g->b.failed, 0);
  PD_CHECK_INT(st, g->b.wrong, 0);
  PD_CHECK_INT(st, pd_td_stop(&g->d, SIGTERM, pd_td_scaled_s(30)), 0);
  if (st->failures) {
    char *log = pd_td_log(&g->d);
    fprintf(stderr, "--- daemon log ---\n%s\n", log ? log : "");
    free(log);
  }
  pd_td_cleanup(&g->d);
}
