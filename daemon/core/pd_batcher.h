/* pd_batcher: the one queue between every front end and the engine. Owns
 * the order of decoded requests across all clients and decides when a batch
 * closes: when it holds max_batch images, or when its oldest request has
 * waited max_queue_delay. A batch takes everything already waiting (up to
 * max_batch) -- under load the engine is busy while the next batch fills, so
 * there are no lone zero-delay batches. Requests whose deadline has passed
 * are handed back as expired, never batched. Thread-safe; knows nothing of
 * sockets or of libuv.
 *
 * Fair to every client (req->client, a key the front end sets, with
 * req->client_weight): each client has its own FIFO queue, and a batch is
 * filled by deficit round robin over the clients with requests waiting --
 * each visit adds the client's weight to its deficit (in images) and takes
 * its oldest requests while their images fit the deficit -- so a client
 * with one request waiting gets it into the next batch whatever others have
 * queued (when fewer clients wait than a batch holds images). A batch runs
 * one model. A model's batch is ready when it is full or its oldest request
 * waited its model's delay (a model's own max_batch and delay, model.yaml
 * serving:, else the limits'); of the ready models, one that was ready when
 * another's batch closed goes first, else the one with the oldest request:
 * a flooded model (its backlog always the oldest) gets most batches, and a
 * ready model waits for at most one batch of another; a client whose oldest
 * request is of another model sits that batch out. When a client has earned its next
 * request but the batch has no room left for it, the batch closes and the
 * next one starts with that client.
 *
 * Admission is bounded and fair too: a front end reserves a place before
 * decoding and turns it into a queued request with pd_batcher_submit. While
 * fewer than max_queue places are taken, any client gets one. Beyond, only
 * a client holding less than its share -- max_queue x its weight / the
 * weights of every client holding places, itself included -- gets one (so a
 * lone client may use the whole queue, and a newcomer is still let in when
 * others filled it), up to 2 x max_queue places in all; the others are
 * refused. */
#ifndef PD_BATCHER_H
#define PD_BATCHER_H

#include <stdint.h>

#include "pd_error.h"
#include "pd_request.h"

typedef struct pd_batcher pd_batcher;

typedef struct pd_batcher_limits {
  int max_batch; /* images per batch (also capped by the model's plan) */
  uint64_t max_queue_delay_ns;
  int max_queue; /* places: reserved + queued requests */
} pd_batcher_limits;

enum { PD_BATCHER_STOPPED = 1 };

int pd_batcher_create(const pd_batcher_limits *lim, pd_batcher **out, pd_error *err);
void pd_batcher_destroy(pd_batcher *b);

/* New limits (on reload); batches closing from now on use them. */
void pd_batcher_set_limits(pd_batcher *b, const pd_batcher_limits *lim);

/* Takes one place for req's client (req->client, req->client_weight);
 * PD_ELIMIT (the message says whose share and how many places) when the
 * admission rule above refuses it, PD_ENOMEM when no client record can be
 * made. */
int pd_batcher_reserve(pd_batcher *b, pd_request *req, pd_error *err);
/* Gives req's place back (it failed before it was queued). */
void pd_batcher_release(pd_batcher *b, pd_request *req);
/* Queues a decoded request in the place reserved for it. Its images
 * (req->views) must not exceed its model's plan size. */
void pd_batcher_submit(pd_batcher *b, pd_request *req, uint64_t now_ns);

/* Engine side: blocks until a batch closes. Fills batch[0..*n) (requests
 * of one model, at most `cap` of them; each with batches_waited set) and
 * *expired (a list linked through ->next, possibly with *n == 0): requests
 * whose deadline passed or that were cancelled. Returns
 * PD_OK, or PD_BATCHER_STOPPED once stopped and empty. */
int pd_batcher_next(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired);
/* The same without blocking: a batch only if one closes now, else *n == 0
 * (never PD_BATCHER_STOPPED). The engine asks while a batch is in flight. */
int pd_batcher_try_next(pd_batcher *b, pd_request **batch, int cap, int *n, pd_request **expired);

/* Wakes the engine side: requests were cancelled (req->cancelled), and
 * pd_batcher_next hands them back like expired ones, never batched. */
void pd_batcher_poke(pd_batcher *b);

/* After this, batches close without waiting for the delay, and
 * pd_batcher_next returns PD_BATCHER_STOPPED when nothing is left. */
void pd_batcher_stop(pd_batcher *b);

typedef struct pd_batcher_counts {
  int queued;   /* requests waiting for the engine */
  int reserved; /* places taken, queued included */
  int clients;  /* clients holding places */
} pd_batcher_counts;

pd_batcher_counts pd_batcher_counts_get(pd_batcher *b);

/* Engine side: a batch took ns to compute (kept as a moving average, 1/8
 * weight to each new batch, for the adaptive TTA bound, pd_adaptive.h). */
void pd_batcher_computed(pd_batcher *b, uint64_t ns);

typedef struct pd_batcher_load {
  uint64_t oldest_wait_ns; /* now minus the receipt of the oldest queued request; 0: none */
  uint64_t compute_avg_ns; /* the moving average of a batch's compute; 0: none yet */
} pd_batcher_load;

pd_batcher_load pd_batcher_load_get(pd_batcher *b, uint64_t now_ns);

#endif
