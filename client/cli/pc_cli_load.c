/* pc_cli_load: plankton-client-load, the reference load that bench/client
 * compares the CLI against: C concurrent connections to the daemon, each
 * with one classify request in flight at a time (like C independent
 * clients), cycling over image files read into memory before the clock
 * starts, all driven from one poll() loop. Prints one line:
 *   clients=C requests=N failed=F seconds=S images_per_s=X
 * Usage: plankton-client-load ADDRESS CLIENTS REQUESTS FILE... */
#include <errno.h>
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
  size_t cap = 1 << 16;
  b->data = malloc(cap);
  b->len = 0;
  size_t n;
  while (b->data && (n = fread(b->data + b->len, 1, cap - b->len, f)) > 0) {
    b->len += n;
    if (b->len == cap) b->data = realloc(b->data, cap *= 2);
  }
  fclose(f);
  return b->data ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: plankton-client-load ADDRESS CLIENTS REQUESTS FILE...\n");
    return 2;
  }
  const char *addr = argv[1];
  int clients = atoi(argv[2]);
  long requests = atol(argv[3]);
  int n_files = argc - 4;
  if (clients < 1 || requests < 1) {
    fprintf(stderr, "plankton-client-load: CLIENTS and REQUESTS must be positive\n");
    return 2;
  }
  blob *files = calloc((size_t)n_files, sizeof *files);
  pc_client **c = calloc((size_t)clients, sizeof *c);
  struct pollfd *pfd = calloc((size_t)clients, sizeof *pfd);
  if (!files || !c || !pfd) return 1;
  for (int i = 0; i < n_files; i++)
    if (read_all(argv[4 + i], &files[i]) != 0) return 1;
  pc_client_options o = {.window = 1, .timeout_ms = 60000};
  pc_client_error err;
  for (int i = 0; i < clients; i++)
    if (pc_client_connect(addr, &o, &c[i], &err) != PC_CLIENT_OK) {
      fprintf(stderr, "plankton-client-load: %s\n", err.message);
      return 3;
    }
  long sent = 0, done = 0, failed = 0;
  double t0 = now_s();
  for (int i = 0; i < clients && sent < requests; i++, sent++) {
    const blob *b = &files[sent % n_files];
    pc_client_classify_request rq = {.id = (uint64_t)sent, .data = b->data, .len = b->len, .top_k = 1};
    if (pc_client_send_classify(c[i], &rq, &err) != PC_CLIENT_OK) {
      fprintf(stderr, "plankton-client-load: %s\n", err.message);
      return 3;
    }
  }
  while (done < requests) {
    for (int i = 0; i < clients; i++) pfd[i] = (struct pollfd){pc_client_fd(c[i]), pc_client_events(c[i]), 0};
    if (poll(pfd, (nfds_t)clients, 60000) <= 0) {
      fprintf(stderr, "plankton-client-load: no answer for 60 s\n");
      return 3;
    }
    for (int i = 0; i < clients; i++) {
      if (!pfd[i].revents) continue;
      if (pc_client_process(c[i], pfd[i].revents, &err) != PC_CLIENT_OK) {
        fprintf(stderr, "plankton-client-load: %s\n", err.message);
        return 3;
      }
      pc_client_response *r;
      while (pc_client_next_response(c[i], &r) == PC_CLIENT_OK) {
        done++;
        if (r->status != PC_CLIENT_STATUS_OK) failed++;
        pc_client_response_free(r);
        if (sent < requests) {
          const blob *b = &files[sent % n_files];
          pc_client_classify_request rq = {.id = (uint64_t)sent, .data = b->data, .len = b->len,
                                           .top_k = 1};
          sent++;
          if (pc_client_send_classify(c[i], &rq, &err) != PC_CLIENT_OK) {
            fprintf(stderr, "plankton-client-load: %s\n", err.message);
            return 3;
          }
        }
      }
    }
  }
  double secs = now_s() - t0;
  printf("clients=%d requests=%ld failed=%ld seconds=%.3f images_per_s=%.1f\n", clients, requests,
         failed, secs, (double)requests / secs);
  for (int i = 0; i < clients; i++) pc_client_close(c[i]);
  for (int i = 0; i < n_files; i++) free(files[i].data);
  free(files);
  free(c);
  free(pfd);
  return failed ? 1 : 0;
}
