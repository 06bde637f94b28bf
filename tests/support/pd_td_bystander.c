/* pd_td_bystander: see pd_td_bystander.h. */
#include "pd_td_bystander.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

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
