#include "pd_listener.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PD_BACKLOG 511

static void on_connection(uv_stream_t *server, int status) {
  pd_listener *l = server->data;
  l->cb(l, status, l->data);
}

static pd_listener *listener_new(pd_listener_cb cb, void *data) {
  pd_listener *l = calloc(1, sizeof *l);
  if (l) {
    l->cb = cb;
    l->data = data;
    l->h.handle.data = l;
  }
  return l;
}

static void free_on_close(uv_handle_t *h) {
  free(h->data);
}

static int fail_close(pd_listener *l, int rc) {
  uv_close(&l->h.handle, free_on_close);
  return rc;
}

/* Creates the folders above the socket that are missing (0755, as
 * mkdir -p; listen.socket's folder need not exist yet). */
static int make_parents(const char *path, pd_error *err) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      return pd_error_set(err, PD_EIO, "listen %s: cannot create its folder %s: %s", path, dir,
                          strerror(errno));
    *p = '/';
  }
  return PD_OK;
}

/* Unlinks a socket file nobody listens on; an error for a live one or a non-socket. */
static int clear_stale(const char *path, pd_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0) return PD_OK;
  if (!S_ISSOCK(st.st_mode))
    return pd_error_set(err, PD_EINVAL, "listen %s: exists and is not a socket", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return pd_error_set(err, PD_EIO, "listen %s: socket: %s", path, strerror(errno));
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  int e = errno;
  close(fd);
  if (live) return pd_error_set(err, PD_EIO, "listen %s: another process is serving it", path);
  if (e != ECONNREFUSED)
    return pd_error_set(err, PD_EIO, "listen %s: cannot tell whether it is in use: %s", path,
                        strerror(e));
  if (unlink(path) != 0)
    return pd_error_set(err, PD_EIO, "listen %s: cannot remove the stale socket: %s", path,
                        strerror(errno));
  return PD_OK;
}

/* A group name or number to a gid. */
static int group_id(const char *group, gid_t *gid, pd_error *err) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(group, &end, 10);
  if (*group >= '0' && *group <= '9' && !*end && !errno && n < (gid_t)-1) {
    *gid = (gid_t)n;
    return PD_OK;
  }
  struct group gr, *found = NULL;
  char buf[4096];
  int e = getgrnam_r(group, &gr, buf, sizeof buf, &found);
  if (!found)
    return pd_error_set(err, PD_EINVAL, "listen.socket_group: no group '%s'%s%s", group,
                        e ? ": " : "", e ? strerror(e) : "");
  *gid = gr.gr_gid;
  return PD_OK;
}

int pd_listener_unix(uv_loop_t *loop, const char *path, int mode, const char *group,
                     pd_listener_cb cb, void *data, pd_listener **out, pd_error *err) {
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return pd_error_set(err, PD_ELIMIT, "listen %s: path longer than %zu bytes", path,
                        sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
  if (mode & ~0777 || mode & 0002)
    return pd_error_set(err, PD_EINVAL, "listen %s: mode %04o: a socket must not be world-writable",
                        path, mode);
  gid_t gid = (gid_t)-1;
  int rc = group && group[0] ? group_id(group, &gid, err) : PD_OK;
  if (rc == PD_OK && path[0] == '/') rc = make_parents(path, err);
  if (rc != PD_OK) return rc;
  rc = clear_stale(path, err);
  if (rc != PD_OK) return rc;
  pd_listener *l = listener_new(cb, data);
  if (!l) return pd_error_set(err, PD_ENOMEM, "listen %s: out of memory", path);
  l->is_unix = 1;
  snprintf(l->name, sizeof l->name, "unix:%s", path);
  uv_pipe_init(loop, &l->h.pipe, 0);
  /* The socket file gets its mode at bind time: no window with a wider one. */
  mode_t old = umask((mode_t)(~mode & 0777));
  int uv = uv_pipe_bind(&l->h.pipe, path);
  umask(old);
  if (uv != 0)
    return fail_close(l, pd_error_set(err, PD_EIO, "listen %s: bind: %s", path, uv_strerror(uv)));
  snprintf(l->unlink_path, sizeof l->unlink_path, "%s", path);
  if (gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) != 0) {
    int e = errno;
    unlink(path);
    return fail_close(
        l, pd_error_set(err, PD_EIO, "listen %s: group %s: %s", path, group, strerror(e)));
  }
  if (chmod(path, (mode_t)mode) != 0) {
    unlink(path);
    return fail_close(
        l, pd_error_set(err, PD_EIO, "listen %s: chmod %04o: %s", path, mode, strerror(errno)));
  }
  uv = uv_listen(&l->h.stream, PD_BACKLOG, on_connection);
  if (uv != 0) {
    unlink(path);
    return fail_close(l, pd_error_set(err, PD_EIO, "listen %s: %s", path, uv_strerror(uv)));
  }
  *out = l;
  return PD_OK;
}

int pd_listener_tcp(uv_loop_t *loop, const char *host_port, pd_listener_cb cb, void *data,
                    pd_listener **out, pd_error *err) {
  char host[300];
  const char *colon = strrchr(host_port, ':');
  if (!colon || colon == host_port || (size_t)(colon - host_port) >= sizeof host)
    return pd_error_set(err, PD_EINVAL, "listen tcp '%s': expected HOST:PORT", host_port);
  memcpy(host, host_port, (size_t)(colon - host_port));
  host[colon - host_port] = '\0';
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  uv_getaddrinfo_t req;
  int uv = uv_getaddrinfo(loop, &req, NULL, host, colon + 1, &hints); /* synchronous */
  if (uv != 0)
    return pd_error_set(err, PD_EINVAL, "listen tcp '%s': %s", host_port, uv_strerror(uv));
  pd_listener *l = listener_new(cb, data);
  if (!l) {
    uv_freeaddrinfo(req.addrinfo);
    return pd_error_set(err, PD_ENOMEM, "listen tcp '%s': out of memory", host_port);
  }
  snprintf(l->name, sizeof l->name, "tcp:%s", host_port);
  uv_tcp_init(loop, &l->h.tcp);
  uv = uv_tcp_bind(&l->h.tcp, req.addrinfo->ai_addr, 0);
  uv_freeaddrinfo(req.addrinfo);
  if (uv == 0) uv = uv_listen(&l->h.stream, PD_BACKLOG, on_connection);
  if (uv != 0)
    return fail_close(l,
                      pd_error_set(err, PD_EIO, "listen tcp '%s': %s", host_port, uv_strerror(uv)));
  /* the name carries the port bound, so that port 0 (any free port) is logged as the real one */
  struct sockaddr_storage ss = {0};
  int sl = (int)sizeof ss;
  if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &sl) == 0) {
    int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->name, sizeof l->name, "tcp:%.*s:%d", (int)(colon - host_port), host_port, port);
  }
  *out = l;
  return PD_OK;
}

int pd_listener_fd(uv_loop_t *loop, int fd, pd_listener_cb cb, void *data, pd_listener **out,
                   pd_error *err) {
  struct sockaddr_storage ss = {0};
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return pd_error_set(err, PD_EIO, "inherited socket fd %d: %s", fd, strerror(errno));
  pd_listener *l = listener_new(cb, data);
  if (!l) return pd_error_set(err, PD_ENOMEM, "inherited socket fd %d: out of memory", fd);
  int uv;
  if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    struct stat st;
    if (len > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0] == '/' &&
        len - offsetof(struct sockaddr_un, sun_path) < sizeof sun->sun_path) {
      char path[sizeof sun->sun_path + 1];
      size_t n = len - offsetof(struct sockaddr_un, sun_path);
      memcpy(path, sun->sun_path, n);
      path[n] = '\0';
      if (stat(path, &st) == 0 && (st.st_mode & 0002)) {
        free(l);
        return pd_error_set(err, PD_EINVAL,
                            "inherited socket %s (fd %d) is world-writable (mode %04o): refusing "
                            "it; set SocketMode=0660",
                            path, fd, (unsigned)(st.st_mode & 07777));
      }
    }
    l->is_unix = 1;
    uv_pipe_init(loop, &l->h.pipe, 0);
    uv = uv_pipe_open(&l->h.pipe, fd);
    const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
    snprintf(l->name, sizeof l->name, "unix:%.*s (fd %d)",
             (int)(len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0),
             su->sun_path, fd);
  } else {
    uv_tcp_init(loop, &l->h.tcp);
    uv = uv_tcp_open(&l->h.tcp, fd);
    snprintf(l->name, sizeof l->name, "tcp:fd %d", fd);
  }
  if (uv == 0) uv = uv_listen(&l->h.stream, PD_BACKLOG, on_connection);
  if (uv != 0)
    return fail_close(l,
                      pd_error_set(err, PD_EIO, "inherited socket fd %d: %s", fd, uv_strerror(uv)));
  *out = l;
  return PD_OK;
}

int pd_listener_address(uv_loop_t *loop, const char *address, pd_listener_cb cb, void *data,
                        pd_listener **out, pd_error *err) {
  if (!strncmp(address, "unix:", 5))
    return pd_listener_unix(loop, address + 5, 0660, NULL, cb, data, out, err);
  return pd_listener_tcp(loop, address, cb, data, out, err);
}

int pd_listener_accept(pd_listener *l, pd_stream *s, char *peer, size_t cap) {
  if (l->is_unix)
    uv_pipe_init(l->h.handle.loop, &s->pipe, 0);
  else
    uv_tcp_init(l->h.handle.loop, &s->tcp);
  int rc = uv_accept(&l->h.stream, &s->stream);
  if (rc != 0) return rc;
  if (l->is_unix) {
    snprintf(peer, cap, "%s", l->name);
  } else {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      }
    }
    snprintf(peer, cap, "tcp:%s:%d", ip, port);
    uv_tcp_nodelay(&s->tcp, 1);
  }
  return 0;
}

void pd_listener_close(pd_listener *l) {
  if (!l) return;
  if (l->unlink_path[0]) unlink(l->unlink_path);
  uv_close(&l->h.handle, free_on_close);
}

bool pd_listener_address_local(const char *address) {
  if (!address) return false;
  if (!strncmp(address, "unix:", 5)) return true;
  return !strncmp(address, "127.", 4) || !strncmp(address, "localhost:", 10) ||
         !strncmp(address, "[::1]:", 6);
}

bool pd_listener_fd_local(int fd) {
  struct sockaddr_storage ss = {0};
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return false;
  if (ss.ss_family == AF_UNIX) return true;
  if (ss.ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}
