#include "pd_td_files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_daemon_test.h"

int pd_td_crop_files_make(pd_td_crop_files *f, int n, uint64_t seed, int w0, int w_span, int h0,
                          int h_span) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/pd-test-crops-XXXXXX");
  f->c = calloc((size_t)n, sizeof *f->c);
  if (!f->c || !mkdtemp(f->dir)) {
    fprintf(stderr, "crop files: cannot make %s: %s\n", f->dir, strerror(errno));
    f->dir[0] = '\0';
    return -1;
  }
  for (int i = 0; i < n; i++) {
    pd_td_file_crop *c = &f->c[i];
    f->n = i + 1;
    c->w = w0 + (i * 41) % w_span;
    c->h = h0 + (i * 29) % h_span;
    c->gray = pd_td_crop(seed + (uint64_t)i, c->w, c->h);
    c->png = c->gray ? pd_td_png(c->gray, c->w, c->h, &c->png_len) : NULL;
    snprintf(c->path, sizeof c->path, "%s/crop%02d.png", f->dir, i);
    FILE *out = c->png ? fopen(c->path, "wb") : NULL;
    size_t put = out ? fwrite(c->png, 1, c->png_len, out) : 0;
    if (!out || fclose(out) != 0 || put != c->png_len) {
      fprintf(stderr, "crop files: cannot write %s: %s\n", c->path, strerror(errno));
      return -1;
    }
  }
  return 0;
}

void pd_td_crop_files_free(pd_td_crop_files *f) {
  for (int i = 0; i < f->n; i++) {
    unlink(f->c[i].path);
    free(f->c[i].png);
    free(f->c[i].gray);
  }
  if (f->dir[0] && rmdir(f->dir) != 0)
    fprintf(stderr, "crop files: could not remove %s: %s\n", f->dir, strerror(errno));
  free(f->c);
  memset(f, 0, sizeof *f);
}

int pd_td_tool_probs(const pd_td_crop_files *f, const char *model_dir, int tta, float *probs,
                     int n_classes) {
  const char *tool = getenv("PLANKTOND_MODEL_TOOL");
  if (!tool || !*tool) {
    fprintf(stderr, "set PLANKTOND_MODEL_TOOL\n");
    return -1;
  }
  char out[128], tta_s[16];
  snprintf(out, sizeof out, "%s/probs.f32", f->dir);
  snprintf(tta_s, sizeof tta_s, "%d", tta);
  const char **argv = calloc((size_t)f->n + 10, sizeof *argv);
  if (!argv) return -1;
  int n = 0;
  argv[n++] = tool;
  argv[n++] = "run";
  argv[n++] = model_dir;
  argv[n++] = "--probs";
  argv[n++] = out;
  if (tta > 0) {
    argv[n++] = "--tta";
    argv[n++] = tta_s;
  }
  for (int i = 0; i < f->n; i++)
    argv[n++] = f->c[i].path;
  argv[n] = NULL;
  fflush(stdout); /* or the child would print it again */
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout)) _exit(127);
    execv(tool, (char *const *)argv);
    _exit(127);
  }
  free(argv);
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s run %s failed (status %d)\n", tool, model_dir, status);
    return -1;
  }
  FILE *in = fopen(out, "rb");
  size_t want = (size_t)f->n * (size_t)n_classes;
  size_t got = in ? fread(probs, sizeof(float), want, in) : 0;
  if (in) fclose(in);
  unlink(out);
  if (got != want) {
    fprintf(stderr, "%s: %zu of %zu probabilities\n", out, got, want);
    return -1;
  }
  return 0;
}
