/* pc_cli_progress: the progress line on stderr (see pc_cli_progress.h). */
#include "pc_cli_progress.h"

#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void pc_cli_progress_init(pc_cli_progress *p, bool on, FILE *f, long total) {
  *p = (pc_cli_progress){.on = on, .f = f, .total = total, .start_ms = now_ms()};
}

void pc_cli_progress_count(pc_cli_progress *p, bool failed) {
  p->done++;
  if (failed) p->failed++;
}

static void fmt_duration(char *buf, size_t n, double s) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void pc_cli_progress_draw(pc_cli_progress *p) {
  if (!p->on) return;
  double now = now_ms();
  if (p->visible && now - p->drawn_ms < 100) return;
  p->drawn_ms = now;
  double secs = (now - p->start_ms) / 1e3;
  double rate = secs > 0 ? p->done / secs : 0;
  char line[200], eta[32] = "";
  int n = 0;
  if (p->total > 0) {
    const int width = 24;
    int fill = (int)((double)p->done / p->total * width);
    if (fill > width) fill = width;
    n = snprintf(line, sizeof line, "[%.*s%.*s] %ld/%ld %3d%%", fill, "########################",
                 width - fill, "........................", p->done, p->total,
                 (int)(100.0 * p->done / p->total));
    if (rate > 0 && p->done < p->total) {
      fmt_duration(eta, sizeof eta, (p->total - p->done) / rate);
    }
  } else {
    n = snprintf(line, sizeof line, "%ld done", p->done);
  }
  if (n < 0 || n >= (int)sizeof line) n = 0;
  n += snprintf(line + n, sizeof line - (size_t)n, "  %.0f/s", rate);
  if (eta[0]) n += snprintf(line + n, sizeof line - (size_t)n, "  ETA %s", eta);
  if (p->failed) snprintf(line + n, sizeof line - (size_t)n, "  %ld failed", p->failed);
  fprintf(p->f, "\r\033[K%s", line);
  fflush(p->f);
  p->visible = true;
}

void pc_cli_progress_clear(pc_cli_progress *p) {
  if (!p->on || !p->visible) return;
  fputs("\r\033[K", p->f);
  p->visible = false;
}

void pc_cli_progress_finish(pc_cli_progress *p) {
  pc_cli_progress_clear(p);
  if (p->on) fflush(p->f);
}
