/* The CUDA backend: a plan's convolution algorithm choices kept across
 * restarts (pd_algo_cache.h) when the options name a folder
 * (algo_cache_dir). The key: the device's name and compute capability, the
 * cuDNN version, the precision and a SHA-256 of the plan's convolution
 * geometry (every conv layer's input and output shape, kernel, stride, pad:
 * what the choices depend on; the weights do not change them). A cached
 * choice is used once cuDNN accepts it again under the precision's math
 * type within the workspace limit; anything else is searched as before and
 * the whole set is written back when something new was measured. A missing,
 * stale or corrupt file is ignored: the note says so (pd_cuda_plan_describe's
 * first line, which the daemon logs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "pd_sha256.h"

/* The conv layers' geometry, hashed. */
static void geometry_sha256(const cuda_plan *p, char hex[65]) {
  int buf[PD_MAX_BRANCHES + 1][PD_MAX_LAYERS][14];
  size_t n = 0;
  int *at = &buf[0][0][0];
  for (int list = 0; list <= HEAD; list++)
    for (int i = 0; i < p->n_layers[list]; i++) {
      const pd_layer *l = p->layers[list][i].l;
      if (l->kind != PD_LAYER_CONV) continue;
      const int g[14] = {list,      i,        l->in.views, l->in.h,          l->in.w,
                         l->in.c,   l->out.h, l->out.w,    l->out.c,         l->kernel,
                         l->stride, l->pad,   l->filters,  p->base.max_batch};
      memcpy(at, g, sizeof g);
      at += 14;
      n += sizeof g;
    }
  pd_sha256_buf(buf, n, hex);
}

int pd_cuda__algo_index(const cuda_plan *p, const dev_layer *d) {
  for (int list = 0; list <= HEAD; list++)
    if (d >= p->layers[list] && d < p->layers[list] + PD_MAX_LAYERS)
      return list * PD_MAX_LAYERS + (int)(d - p->layers[list]);
  return -1;
}

void pd_cuda__algo_open(cuda_plan *p) {
  p->algo_note[0] = '\0';
  p->algo_hits = p->algo_tried = 0;
  if (!p->opt.algo_cache_dir[0]) return;
  pd_algo_cache *c = calloc(1, sizeof *c);
  struct cudaDeviceProp prop;
  pd_error err = {0};
  if (!c || cudaGetDeviceProperties(&prop, p->device) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(p->algo_note, sizeof p->algo_note, "algorithm cache: not used (%s)",
             c ? "cudaGetDeviceProperties failed" : "out of memory");
    free(c);
    return;
  }
  pd_algo_key *k = &c->key;
  snprintf(k->device, sizeof k->device, "%.95s", prop.name);
  for (char *q = k->device; *q; q++)
    if (*q == '\n') *q = ' ';
  k->cc_major = prop.major;
  k->cc_minor = prop.minor;
  k->cudnn = (int)cudnnGetVersion();
  snprintf(k->precision, sizeof k->precision, "%s", pd_cuda__precision_name(p->opt.precision));
  geometry_sha256(p, k->model_sha256);
  const pd_algo_key want = *k;
  if (pd_algo_cache_path(p->opt.algo_cache_dir, &want, p->algo_path, sizeof p->algo_path, &err) !=
      PD_OK) {
    free(c);
    snprintf(p->algo_note, sizeof p->algo_note, "algorithm cache: not used: %.300s", err.msg);
    return;
  }
  const int rc = pd_algo_cache_load(p->algo_path, &want, c, &err);
  c->key = want;
  if (rc != PD_OK) {
    c->n = 0;
    snprintf(p->algo_note, sizeof p->algo_note, "%.380s%s", err.msg,
             rc == PD_EIO ? "" : "; ignored, searching again");
  }
  p->algo_cache = c;
}

const pd_algo_choice *pd_cuda__algo_cached(cuda_plan *p, const dev_layer *d, int bucket) {
  if (!p->algo_cache) return NULL;
  p->algo_tried++;
  return pd_algo_cache_find(p->algo_cache, pd_cuda__algo_index(p, d), bucket);
}

void pd_cuda__algo_close(cuda_plan *p, int planned) {
  pd_algo_cache *c = p->algo_cache;
  p->algo_cache = NULL;
  if (!c) return;
  char note[sizeof p->algo_note];
  snprintf(note, sizeof note, "%s", p->algo_note);
  if (planned && p->algo_hits < p->algo_tried) {
    c->n = 0;
    for (int list = 0; list <= HEAD; list++)
      for (int i = 0; i < p->n_layers[list]; i++) {
        const dev_layer *d = &p->layers[list][i];
        for (int b = 0; d->cb && b < p->n_buckets && c->n < PD_ALGO_CACHE_MAX; b++)
          c->e[c->n++] = (pd_algo_choice){.layer = pd_cuda__algo_index(p, d),
                                          .bucket = p->buckets[b],
                                          .algo = (int)d->cb[b].algo,
                                          .math = (int)d->cb[b].math,
                                          .workspace = d->cb[b].ws,
                                          .ms = d->cb[b].ms};
      }
    pd_error err = {0};
    if (pd_algo_cache_save(p->algo_path, c, &err) == PD_OK)
      snprintf(p->algo_note, sizeof p->algo_note,
               "%.300s%salgorithm cache %.300s: %d of %d choices "
               "from it, written",
               note, note[0] ? "; " : "", p->algo_path, p->algo_hits, p->algo_tried);
    else
      snprintf(p->algo_note, sizeof p->algo_note, "%.380s%s%.300s", note, note[0] ? "; " : "",
               err.msg);
  } else if (planned) {
    snprintf(p->algo_note, sizeof p->algo_note, "algorithm cache %.300s: all %d choices from it",
             p->algo_path, p->algo_tried);
  }
  free(c);
}
