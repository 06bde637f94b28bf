/* pd_listener: one listening socket on the loop: a Unix socket at a path
 * (created with a given mode; a stale socket file left by a dead daemon is
 * replaced, a live one is an error), a TCP address ("host:port",
 * "[v6]:port"), or a socket inherited from systemd (sd_listen_fds). Owns the
 * handle and, for a path it created, the file (removed on close). Accepted
 * connections go to the callback; the protocol server and the /metrics HTTP
 * server both use it. */
#ifndef PD_LISTENER_H
#define PD_LISTENER_H

#include <stdbool.h>

#include <uv.h>

#include "pd_error.h"

typedef union pd_stream {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_pipe_t pipe;
  uv_tcp_t tcp;
} pd_stream;

typedef struct pd_listener pd_listener;
/* status 0: a connection waits for pd_listener_accept; < 0: accepting failed
 * (a libuv error; nothing to accept). When the process runs out of file
 * descriptors libuv's reserved descriptor lets it accept and close the
 * connections waiting, so clients see a prompt close rather than a hang. */
typedef void (*pd_listener_cb)(pd_listener *l, int status, void *data);

struct pd_listener {
  pd_stream h;
  int is_unix;
  char name[600];        /* "unix:/run/planktond/planktond.sock", "tcp:127.0.0.1:7341" */
  char unlink_path[512]; /* "" unless we created the socket file */
  pd_listener_cb cb;
  void *data;
};

/* mode: never world-writable (refused); group: a group name or number to own
 * the socket file, "" or NULL for the process's own. */
int pd_listener_unix(uv_loop_t *loop, const char *path, int mode, const char *group,
                     pd_listener_cb cb, void *data, pd_listener **out, pd_error *err);
int pd_listener_tcp(uv_loop_t *loop, const char *host_port, pd_listener_cb cb, void *data,
                    pd_listener **out, pd_error *err);
/* A listening socket we were given (socket activation). A Unix socket whose
 * file is world-writable is refused. */
int pd_listener_fd(uv_loop_t *loop, int fd, pd_listener_cb cb, void *data, pd_listener **out,
                   pd_error *err);
/* Opens "unix:PATH" (mode 0660) or "HOST:PORT". */
int pd_listener_address(uv_loop_t *loop, const char *address, pd_listener_cb cb, void *data,
                        pd_listener **out, pd_error *err);

/* Whether a listen address reaches this host only: "unix:PATH", or a TCP
 * host of 127.0.0.0/8, [::1] or localhost (a loopback port every local user
 * can connect to; a Unix socket only those its file mode lets in). */
bool pd_listener_address_local(const char *address);
/* The same for a listening socket (socket activation): AF_UNIX or bound
 * to a loopback address. */
bool pd_listener_fd_local(int fd);

/* Initialises `s` for this listener's kind and accepts into it. `s` is
 * initialised whatever the result: the caller closes it on failure. The
 * peer's description goes to peer[cap]. */
int pd_listener_accept(pd_listener *l, pd_stream *s, char *peer, size_t cap);

/* Stops listening, removes the socket file we created, frees on close. */
void pd_listener_close(pd_listener *l);

#endif
