/* pc_cli_walk: the stream of image paths (see pc_cli_walk.h). */
#include "pc_cli_walk.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct dir_frame {
  char *dir;    /* the folder's path, no trailing '/' (except "/") */
  char **names; /* sorted entries still to visit */
  size_t n, pos;
} dir_frame;

struct pc_cli_walk {
  char *const *args;
  int n_args, next_arg;
  int list_fd;      /* -1: no list */
  int reading_list; /* inside a `-` argument */
  dir_frame stack[PC_CLI_WALK_MAX_DEPTH];
  int depth;
  char *path; /* the path handed out last */
  /* the list's bytes arrived and not yet handed out: buf[start, start + len) */
  char *line;
  size_t line_start, line_len, line_cap;
  int list_eof;
  pc_cli_skipped skipped; /* files left out for their name */
};

int pc_cli_walk_is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot || dot == name) return 0;
  return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
         !strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff");
}

int pc_cli_walk_open(char *const *args, int n, int list_fd, pc_cli_walk **out, pc_cli_error *err) {
  pc_cli_walk *w = calloc(1, sizeof *w);
  if (!w) return pc_cli_fail(err, -1, "out of memory");
  w->args = args;
  w->n_args = n;
  w->list_fd = list_fd;
  *out = w;
  return 0;
}

static void frame_free(dir_frame *f) {
  for (size_t i = f->pos; i < f->n; i++)
    free(f->names[i]);
  free(f->names);
  free(f->dir);
  memset(f, 0, sizeof *f);
}

void pc_cli_walk_free(pc_cli_walk *w) {
  if (!w) return;
  while (w->depth > 0)
    frame_free(&w->stack[--w->depth]);
  free(w->path);
  free(w->line);
  pc_cli_skipped_free(&w->skipped);
  free(w);
}

const pc_cli_skipped *pc_cli_walk_skipped(const pc_cli_walk *w) {
  return &w->skipped;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *dir, const char *name) {
  size_t dl = strlen(dir), nl = strlen(name);
  int slash = dl > 0 && dir[dl - 1] != '/';
  const size_t size = dl + (size_t)slash + nl + 1;
  char *p = malloc(size);
  if (p) snprintf(p, size, "%s%s%s", dir, slash ? "/" : "", name);
  return p;
}

/* Lists `dir` (sorted, hidden entries skipped) into a new frame.
 * 0, -1 (fatal: out of memory) or 1 (cannot list: err set). */
static int push_dir(pc_cli_walk *w, const char *dir, pc_cli_error *err) {
  if (w->depth == PC_CLI_WALK_MAX_DEPTH)
    return pc_cli_fail(err, 1, "%s: directories nested more than %d deep (a symbolic link loop?)",
                       dir, PC_CLI_WALK_MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d) return pc_cli_fail(err, 1, "%s: cannot open directory: %s", dir, strerror(errno));
  dir_frame f = {0};
  size_t cap = 0;
  struct dirent *e;
  int rc = 0;
  f.dir = strdup(dir);
  if (!f.dir) rc = -1;
  while (rc == 0 && (errno = 0, e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (f.n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(f.names, cap * sizeof *nn);
      if (!nn) {
        rc = -1;
        break;
      }
      f.names = nn;
    }
    if (!(f.names[f.n] = strdup(e->d_name)))
      rc = -1;
    else
      f.n++;
  }
  if (rc == 0 && errno)
    rc = pc_cli_fail(err, 1, "%s: cannot read directory: %s", dir, strerror(errno));
  closedir(d);
  if (rc != 0) {
    frame_free(&f);
    return rc < 0 ? pc_cli_fail(err, -1, "out of memory listing %s", dir) : rc;
  }
  if (f.n) qsort(f.names, f.n, sizeof *f.names, cmp_names);
  w->stack[w->depth++] = f;
  return 0;
}

/* Hands out `p` (taking ownership). */
static int hand_out(pc_cli_walk *w, char *p, const char **path) {
  free(w->path);
  w->path = p;
  *path = p;
  return PC_CLI_WALK_PATH;
}

/* One path named by the user (argument or list line): a file, a directory
 * to walk, or a failure. */
static int visit_named(pc_cli_walk *w, const char *name, const char **path, pc_cli_error *err) {
  char *p = strdup(name);
  if (!p) return pc_cli_fail(err, -1, "out of memory");
  free(w->path);
  w->path = p;
  *path = p;
  struct stat st;
  if (stat(name, &st) != 0)
    return pc_cli_fail(err, PC_CLI_WALK_FAILED, "%s: %s", name, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return PC_CLI_WALK_PATH;
  int rc = push_dir(w, name, err);
  if (rc < 0) return rc;
  if (rc > 0) return PC_CLI_WALK_FAILED;
  return PC_CLI_WALK_END; /* nothing handed out yet: the caller goes on walking */
}

/* The next file from the directory stack: PATH, FAILED, END (stack empty) or -1. */
static int walk_stack(pc_cli_walk *w, const char **path, pc_cli_error *err) {
  while (w->depth > 0) {
    dir_frame *f = &w->stack[w->depth - 1];
    if (f->pos == f->n) {
      frame_free(f);
      w->depth--;
      continue;
    }
    char *name = f->names[f->pos++];
    char *p = join(f->dir, name);
    int image = pc_cli_walk_is_image_name(name);
    free(name);
    if (!p) return pc_cli_fail(err, -1, "out of memory");
    struct stat st;
    if (stat(p, &st) != 0) {
      if (!image) { /* e.g. a dangling link that is not an image anyway */
        free(p);
        continue;
      }
      pc_cli_fail(err, PC_CLI_WALK_FAILED, "%s: %s", p, strerror(errno));
      hand_out(w, p, path);
      return PC_CLI_WALK_FAILED;
    }
    if (S_ISDIR(st.st_mode)) {
      int rc = push_dir(w, p, err);
      if (rc < 0) {
        free(p);
        return rc;
      }
      if (rc > 0) {
        hand_out(w, p, path);
        return PC_CLI_WALK_FAILED;
      }
      free(p);
      continue;
    }
    if (!image || !S_ISREG(st.st_mode)) {
      if (S_ISREG(st.st_mode)) pc_cli_skipped_add(&w->skipped, p);
      free(p);
      continue;
    }
    return hand_out(w, p, path);
  }
  return PC_CLI_WALK_END;
}

/* Takes the first complete line of the buffer (the last one at the end of
 * the list even without a newline) into *line, NUL-terminated, without its
 * line ending. 1: a line; 0: none yet. */
static int take_line(pc_cli_walk *w, char **line) {
  if (!w->line) return 0;
  char *at = w->line + w->line_start;
  char *nl = w->line_len ? memchr(at, '\n', w->line_len) : NULL;
  size_t n;
  if (nl) {
    n = (size_t)(nl - at);
    w->line_start += n + 1;
    w->line_len -= n + 1;
  } else if (w->list_eof && w->line_len) {
    n = w->line_len; /* the buffer always keeps a byte free for this NUL */
    w->line_start += n;
    w->line_len = 0;
  } else {
    return 0;
  }
  at[n] = '\0';
  while (n > 0 && at[n - 1] == '\r')
    at[--n] = '\0';
  *line = at;
  return 1;
}

/* The next line of the list: 1 (*line), 0 (the list ended), PC_CLI_WALK_WAIT
 * (no complete line has arrived) or -1 (err set). Reads only what poll()
 * says is there, so it never blocks on a pipe or a terminal. */
static int list_line(pc_cli_walk *w, char **line, pc_cli_error *err) {
  for (;;) {
    if (take_line(w, line)) {
      if (strlen(*line) < PC_CLI_WALK_MAX_LINE) return 1;
      break; /* however the bytes arrived */
    }
    if (w->list_eof) return 0;
    if (w->line_start > 0) { /* keep the partial line at the front */
      memmove(w->line, w->line + w->line_start, w->line_len);
      w->line_start = 0;
    }
    if (w->line_len >= PC_CLI_WALK_MAX_LINE) break;
    if (w->line_cap - w->line_len < 4096 + 1) {
      size_t cap = w->line_cap ? w->line_cap * 2 : 8192;
      char *grown = realloc(w->line, cap);
      if (!grown) return pc_cli_fail(err, -1, "out of memory");
      w->line = grown;
      w->line_cap = cap;
    }
    struct pollfd pfd = {.fd = w->list_fd, .events = POLLIN};
    int ready = poll(&pfd, 1, 0);
    if (ready < 0 && errno != EINTR)
      return pc_cli_fail(err, -1, "standard input: poll: %s", strerror(errno));
    if (ready <= 0) return PC_CLI_WALK_WAIT;
    ssize_t n = read(w->list_fd, w->line + w->line_len, w->line_cap - w->line_len - 1);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return PC_CLI_WALK_WAIT;
      return pc_cli_fail(err, -1, "reading paths from standard input: %s", strerror(errno));
    }
    if (n == 0) w->list_eof = 1;
    w->line_len += (size_t)n;
  }
  return pc_cli_fail(err, -1, "standard input: a path longer than %d bytes", PC_CLI_WALK_MAX_LINE);
}

int pc_cli_walk_wait_fd(const pc_cli_walk *w) {
  return w->list_fd;
}

int pc_cli_walk_next(pc_cli_walk *w, const char **path, pc_cli_error *err) {
  for (;;) {
    int rc = walk_stack(w, path, err);
    if (rc != PC_CLI_WALK_END) return rc;
    if (w->reading_list) {
      char *line = NULL;
      rc = list_line(w, &line, err);
      if (rc < 0 || rc == PC_CLI_WALK_WAIT) return rc;
      if (rc == 0) {
        w->reading_list = 0;
        continue;
      }
      if (!line || !line[0]) continue; /* an empty line names nothing */
      rc = visit_named(w, line, path, err);
      if (rc != PC_CLI_WALK_END) return rc;
      continue;
    }
    if (w->next_arg == w->n_args) return PC_CLI_WALK_END;
    const char *a = w->args[w->next_arg++];
    if (!strcmp(a, "-")) {
      if (w->list_fd < 0) return pc_cli_fail(err, -1, "'-' given but no path list to read");
      w->reading_list = 1;
      continue;
    }
    rc = visit_named(w, a, path, err);
    if (rc != PC_CLI_WALK_END) return rc;
  }
}

long pc_cli_walk_count(char *const *args, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(args[i], "-")) return -1;
  pc_cli_walk *w = NULL;
  if (pc_cli_walk_open(args, n, -1, &w, NULL) != 0 || !w) return -1;
  long count = 0;
  const char *p;
  int rc;
  pc_cli_error err;
  while ((rc = pc_cli_walk_next(w, &p, &err)) > 0)
    count++;
  pc_cli_walk_free(w);
  return rc < 0 ? -1 : count;
}
