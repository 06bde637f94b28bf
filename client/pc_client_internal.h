/* pc_client_internal: what the client's files share and callers never see:
 * the connection state, the answer queue and the protobuf conversions. */
#ifndef PC_CLIENT_INTERNAL_H
#define PC_CLIENT_INTERNAL_H

#include "plankton.pb-c.h"
#include "plankton_client.h"

#define PC_CLIENT_HEADER 4

struct pc_client {
  int fd;
  pc_client_options opt;
  uint8_t *out; /* bytes to write: out[out_off .. out_len) */
  size_t out_off, out_len, out_cap;
  uint8_t *in; /* bytes read, not yet whole frames */
  size_t in_len, in_cap;
  int in_flight;
  pc_client_response *ready_head, *ready_tail;
  int failed; /* a PC_CLIENT_E* once the connection is unusable */
  char failed_msg[400];
  uint64_t next_id; /* ids of the blocking stats/health/model calls */
};

/* Sets err (if any) and returns code. */
int pc_client__fail(pc_client_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frames and queues one request; counts it in flight. */
int pc_client__queue(pc_client *c, const Plankton__Request *rq, pc_client_error *err);

/* Decodes one Response frame body into a public response (NULL: not a Response or out of memory;
 * *oom says which). */
pc_client_response *pc_client__decode(const uint8_t *msg, size_t len, int *oom);
pc_client_response *pc_client__response_next(pc_client_response *r);
void pc_client__response_set_next(pc_client_response *r, pc_client_response *next);

/* Unlinks and returns the first queued answer of this kind and id, or NULL. */
pc_client_response *pc_client__take(pc_client *c, pc_client_response_kind kind, uint64_t id);

#endif
