/* pc_cli_load: plankton-client-load, the reference load that bench/client
 * compares the CLI against: C concurrent connections to the daemon, each
 * with one classify request in flight at a time (like C independent
 * clients), cycling over image files read into memory before the clock
 * starts, all driven from one poll() loop. Prints one line:
 *   clients=C requests=N failed=F seconds=S images_per_s=X
 * Usage: plankton-client-load ADDRESS CLIENTS REQUESTS FILE... */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plankton_client.h"

typedef struct blob {
  uint8_t *data;
  size_t len;
} blob;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int read_all(const char *path, blob *b) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "plankton-client-load: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = (size_t)1 << 16, n;
  b->data = malloc(cap);
  b->len = 0;
  while (b->data && (n = fread(b->data + b->len, 1, cap - b->len, f)) > 0) {
    b->len += n;
    if (b->len < cap) continue;
    uint8_t *grown = realloc(b->data, cap * 2);
    if (!grown) {
      free(b->data);
      b->data = NULL;
      break;
    }
    b->data = grown;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (!b->data || bad) {
    fprintf(stderr, "plankton-client-load: %s: %s\n", path, bad ? "read error" : "out of memory");
    return -1;
  }
  return 0;
}

/* A positive decimal integer no larger than max, or -1. */
static long parse_positive(const char *s, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > max) return -1;
  return v;
}

typedef struct load {
  const char *addr;
  int clients, n_files;
  long requests, sent, done, failed;
  blob *files;
  pc_client **conns;
  struct pollfd *pfd;
} load;

static int send_next(load *ld, pc_client *c) {
  const blob *b = &ld->files[ld->sent % ld->n_files];
  pc_client_classify_request rq = {
      .id = (uint64_t)ld->sent, .data = b->data, .len = b->len, .top_k = 1};
  pc_client_error err;
  ld->sent++;
  if (pc_client_send_classify(c, &rq, &err) == PC_CLIENT_OK) return 0;
  fprintf(stderr, "plankton-client-load: %s\n", err.message);
  return -1;
}

/* Drives every connection until ld->requests answers have come back. */
static int run_load(load *ld) {
  pc_client_error err;
  for (int i = 0; i < ld->clients && ld->sent < ld->requests; i++)
    if (send_next(ld, ld->conns[i]) != 0) return -1;
  while (ld->done < ld->requests) {
    for (int i = 0; i < ld->clients; i++)
      ld->pfd[i] = (struct pollfd){pc_client_fd(ld->conns[i]), pc_client_events(ld->conns[i]), 0};
    if (poll(ld->pfd, (nfds_t)ld->clients, 60000) <= 0) {
      fprintf(stderr, "plankton-client-load: no answer for 60 s\n");
      return -1;
    }
    for (int i = 0; i < ld->clients; i++) {
      if (!ld->pfd[i].revents) continue;
      if (pc_client_process(ld->conns[i], ld->pfd[i].revents, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "plankton-client-load: %s\n", err.message);
        return -1;
      }
      pc_client_response *r;
      while (pc_client_next_response(ld->conns[i], &r) == PC_CLIENT_OK) {
        ld->done++;
        if (r->status != PC_CLIENT_STATUS_OK) ld->failed++;
        pc_client_response_free(r);
        if (ld->sent < ld->requests && send_next(ld, ld->conns[i]) != 0) return -1;
      }
    }
  }
  return 0;
}

static int setup(load *ld, char **paths) {
  ld->files = calloc((size_t)ld->n_files, sizeof *ld->files);
  /* an array of pointers: the pointer's size is meant */
  ld->conns = calloc((size_t)ld->clients, sizeof *ld->conns); // NOLINT(bugprone-sizeof-expression)
  ld->pfd = calloc((size_t)ld->clients, sizeof *ld->pfd);
  if (!ld->files || !ld->conns || !ld->pfd) {
    fprintf(stderr, "plankton-client-load: out of memory\n");
    return 1;
  }
  for (int i = 0; i < ld->n_files; i++)
    if (read_all(paths[i], &ld->files[i]) != 0) return 1;
  pc_client_options o = {.window = 1, .timeout_ms = 60000};
  pc_client_error err;
  for (int i = 0; i < ld->clients; i++)
    if (pc_client_connect(ld->addr, &o, &ld->conns[i], &err) != PC_CLIENT_OK) {
      fprintf(stderr, "plankton-client-load: %s\n", err.message);
      return 3;
    }
  return 0;
}

static void teardown(load *ld) {
  for (int i = 0; ld->conns && i < ld->clients; i++)
    if (ld->conns[i]) pc_client_close(ld->conns[i]);
  for (int i = 0; ld->files && i < ld->n_files; i++)
    free(ld->files[i].data);
  free(ld->files);
  free(ld->conns);
  free(ld->pfd);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: plankton-client-load ADDRESS CLIENTS REQUESTS FILE...\n");
    return 2;
  }
  load ld = {.addr = argv[1], .n_files = argc - 4};
  long clients = parse_positive(argv[2], 65536);
  ld.requests = parse_positive(argv[3], LONG_MAX);
  if (clients < 0 || ld.requests < 0) {
    fprintf(stderr,
            "plankton-client-load: CLIENTS (1..65536) and REQUESTS must be positive "
            "integers, not '%s' and '%s'\n",
            argv[2], argv[3]);
    return 2;
  }
  ld.clients = (int)clients;
  int rc = setup(&ld, argv + 4);
  if (rc == 0) {
    double t0 = now_s();
    if (run_load(&ld) != 0) {
      rc = 3;
    } else {
      double secs = now_s() - t0;
      printf("clients=%d requests=%ld failed=%ld seconds=%.3f images_per_s=%.1f\n", ld.clients,
             ld.requests, ld.failed, secs, (double)ld.requests / secs);
      rc = ld.failed ? 1 : 0;
    }
  }
  teardown(&ld);
  return rc;
}
