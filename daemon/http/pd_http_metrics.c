#include "pd_http_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "pd_metrics.h"
#include "pd_metrics_models.h"

static void metrics_handler(pd_http_request *req, void *data) {
  const pd_http_metrics_source *src = data;
  pd_stats_report r;
  src->fill(src->ctx, &r);
  pd_process_stats proc;
  pd_error err = {0};
  const bool have_proc = pd_process_sample(&proc, &err) == PD_OK; /* else left out */
  size_t len = 0;
  char *body = pd_metrics_render(&r, have_proc ? &proc : NULL, &len);
  size_t more_len = 0;
  char *more = body && src->pipeline ? pd_metrics_models_render(src->pipeline, &more_len) : NULL;
  char *joined = more ? realloc(body, len + more_len + 1) : NULL;
  if (joined) {
    memcpy(joined + len, more, more_len + 1);
    body = joined;
    len += more_len;
  }
  free(more);
  if (!body) {
    pd_http_respond_text(req, 500, "out of memory\n", true);
    return;
  }
  pd_http_respond(req, 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", body, len,
                  false);
}

int pd_http_metrics_route(pd_http *h, const char *path, const pd_http_metrics_source *src,
                          pd_error *err) {
  return pd_http_route(h, "GET", path, metrics_handler, (void *)src, err);
}
