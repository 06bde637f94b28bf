/* pc_cli_walk: the stream of image paths `classify` reads, one at a time:
 * the command-line arguments in order; a directory is walked recursively
 * (entries sorted by name, hidden ones skipped, only files named
 * *.png, *.jpg, *.jpeg, *.tif or *.tiff in any case, at most PC_CLI_WALK_MAX_DEPTH deep);
 * `-` reads one path per line from a descriptor (stdin), a line naming a
 * directory being walked the same way. The list is read as it arrives: when
 * no complete line is there yet, pc_cli_walk_next says WAIT instead of
 * blocking, so a caller can poll the descriptor together with its socket
 * (`inotifywait ... | plankton-client classify -` answers each crop as soon
 * as it is classified, not when the next path comes). A file named
 * explicitly is passed on whatever its name; a regular file a directory
 * walk leaves out for its name is counted (pc_cli_walk_skipped). Owns the stack of open
 * directory listings, the list's line buffer and the path buffer; nothing is
 * read ahead beyond the directory listings on the stack and the list's bytes
 * already arrived. */
#ifndef PC_CLI_WALK_H
#define PC_CLI_WALK_H

#include "pc_cli.h"
#include "pc_cli_skipped.h"

#define PC_CLI_WALK_MAX_DEPTH 64

enum {
  PC_CLI_WALK_END = 0,
  PC_CLI_WALK_PATH = 1,   /* *path is the next file */
  PC_CLI_WALK_FAILED = 2, /* *path could not be listed (missing, unreadable): err says why */
  PC_CLI_WALK_WAIT = 3,   /* no complete line on the list yet: poll pc_cli_walk_wait_fd */
};

/* A list line (a path) longer than this is an error. */
#define PC_CLI_WALK_MAX_LINE 65536

typedef struct pc_cli_walk pc_cli_walk;

/* args[0..n) as given; list_fd: where `-` reads from (-1: `-` is an
 * error). The descriptor is only polled and read, its flags left alone. */
int pc_cli_walk_open(char *const *args, int n, int list_fd, pc_cli_walk **out, pc_cli_error *err);
/* PC_CLI_WALK_PATH, _FAILED, _WAIT or _END; *path stays valid until the
 * next call. A fatal error (out of memory, reading the list fails, a line
 * over PC_CLI_WALK_MAX_LINE) returns -1 with err set. */
int pc_cli_walk_next(pc_cli_walk *w, const char **path, pc_cli_error *err);
/* The descriptor to poll for input after PC_CLI_WALK_WAIT. */
int pc_cli_walk_wait_fd(const pc_cli_walk *w);
void pc_cli_walk_free(pc_cli_walk *w);
/* The files the directory walks left out for their name, so far. */
const pc_cli_skipped *pc_cli_walk_skipped(const pc_cli_walk *w);

/* How many files the arguments name (walking directories, listing only).
 * -1 when any argument is `-` (unknown in advance). */
long pc_cli_walk_count(char *const *args, int n);

/* True when a file name has an image extension (.png, .jpg, .jpeg, .tif, .tiff). */
int pc_cli_walk_is_image_name(const char *name);

#endif
