/* pc_cli_progress: the progress line on stderr (`[####....] 1200/5000 24%
 * 812/s ETA 0:05, 2 failed`), drawn at most 10 times a second and only
 * when enabled (the caller enables it when stderr is a terminal). Messages
 * printed meanwhile go through pc_cli_progress_clear first so the bar does
 * not garble them. Owns its counters and clock. */
#ifndef PC_CLI_PROGRESS_H
#define PC_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct pc_cli_progress {
  bool on;
  FILE *f;
  long total; /* < 0: unknown (no bar, no ETA) */
  long done, failed;
  double start_ms, drawn_ms;
  bool visible;
} pc_cli_progress;

void pc_cli_progress_init(pc_cli_progress *p, bool on, FILE *f, long total);
/* Counts one finished input. */
void pc_cli_progress_count(pc_cli_progress *p, bool failed);
/* Redraws if 100 ms have passed since the last drawing. */
void pc_cli_progress_draw(pc_cli_progress *p);
/* Erases the line (before printing a message). */
void pc_cli_progress_clear(pc_cli_progress *p);
/* Erases the line for good. */
void pc_cli_progress_finish(pc_cli_progress *p);

#endif
