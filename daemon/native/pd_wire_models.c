/* ModelInfo answers: every model of the repository (or the one a filter
 * names), each with whether it is ready and, if not, why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_wire.h"

typedef struct info_buf {
  Plankton__ModelInfo mi;
  Plankton__BranchInfo branches[PD_MAX_BRANCHES];
  Plankton__BranchInfo *bptrs[PD_MAX_BRANCHES];
} info_buf;

static void fill_info(info_buf *b, const pd_repo_entry *e, bool is_default) {
  static const char *const sym[] = {"none", "c4", "d4"};
  Plankton__ModelInfo *mi = &b->mi;
  plankton__model_info__init(mi);
  mi->name = (char *)e->name;
  mi->version = (char *)e->version;
  mi->dir = (char *)e->dir;
  mi->is_default = is_default;
  mi->latest = e->latest;
  mi->ready = e->served != NULL;
  mi->error = (char *)e->error;
  const pd_served *s = e->served;
  if (!s) return;
  const pd_model *m = s->model;
  for (int i = 0; i < m->n_branches; i++) {
    plankton__branch_info__init(&b->branches[i]);
    b->branches[i].name = (char *)m->branches[i].name;
    b->branches[i].kind =
        (char *)(m->branches[i].kind == PD_INPUT_IMAGE ? "image" : "size_features");
    b->branches[i].size = m->branches[i].kind == PD_INPUT_IMAGE ? (uint32_t)m->branches[i].size : 0;
    b->bptrs[i] = &b->branches[i];
  }
  mi->n_classes = (size_t)m->n_classes;
  mi->classes = m->classes;
  mi->symmetry = (char *)sym[m->symmetry];
  mi->default_tta = (uint32_t)m->tta.count;
  mi->max_batch = (uint32_t)s->max_batch;
  mi->n_branches = (size_t)m->n_branches;
  mi->branches = b->bptrs;
  mi->parameters = m->n_params;
  if (m->thresholds) {
    mi->n_thresholds = (size_t)m->n_classes;
    mi->thresholds = m->thresholds;
  }
  if (m->lineage) {
    mi->n_lineage = (size_t)m->n_classes;
    mi->lineage = m->lineage;
  }
}

uint8_t *pd_wire_model_info_repo(uint64_t id, const char *filter, const pd_repo *r, size_t *len) {
  Plankton__Status st;
  Plankton__ModelInfoResponse mr = PLANKTON__MODEL_INFO_RESPONSE__INIT;
  mr.id = id;
  mr.status = &st;
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  resp.body_case = PLANKTON__RESPONSE__BODY_MODEL_INFO;
  resp.model_info = &mr;
  if (!r || r->n == 0) {
    pd_wire_status(&st, PD_STATUS_UNAVAILABLE, "no model is loaded");
    return pd_wire_pack_response(&resp, len);
  }
  const pd_repo_entry *only = NULL;
  if (filter && filter[0]) {
    pd_status code;
    char why[256];
    only = pd_repo_find(r, filter, NULL, &code, why, sizeof why);
    if (!only) {
      pd_wire_status(&st, code, why);
      return pd_wire_pack_response(&resp, len);
    }
  }
  const int n = only ? 1 : r->n;
  info_buf *bufs = calloc((size_t)n, sizeof *bufs);
  Plankton__ModelInfo **ptrs = calloc((size_t)n, sizeof(Plankton__ModelInfo *));
  if (!bufs || !ptrs) {
    free(bufs);
    free(ptrs);
    pd_wire_status(&st, PD_STATUS_RESOURCE_EXHAUSTED, "out of memory for the model list");
    return pd_wire_pack_response(&resp, len);
  }
  for (int i = 0; i < n; i++) {
    const pd_repo_entry *e = only ? only : &r->e[i];
    fill_info(&bufs[i], e, r->default_entry >= 0 && e == &r->e[r->default_entry]);
    ptrs[i] = &bufs[i].mi;
  }
  pd_wire_status(&st, PD_STATUS_OK, "");
  mr.n_models = (size_t)n;
  mr.models = ptrs;
  uint8_t *out = pd_wire_pack_response(&resp, len);
  free(bufs);
  free(ptrs);
  return out;
}

uint8_t *pd_wire_model_info(uint64_t id, const char *filter, const pd_served *s, size_t *len) {
  if (!s) return pd_wire_model_info_repo(id, filter, NULL, len);
  pd_repo *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  pd_repo_entry *e = &r->e[0];
  r->n = 1;
  snprintf(e->name, sizeof e->name, "%s", s->model->name);
  snprintf(e->version, sizeof e->version, "%s", s->model->version);
  snprintf(e->dir, sizeof e->dir, "%s", s->model->dir);
  e->served = (pd_served *)s; /* borrowed: not freed with r */
  e->latest = true;
  uint8_t *out = pd_wire_model_info_repo(id, filter, r, len);
  free(r);
  return out;
}

size_t pd_wire_model_stats(const pd_model_counts *c, int n, Plankton__ModelStats ***out) {
  *out = NULL;
  if (!c || n <= 0) return 0;
  /* one block: the pointers, the rows, each row's status counts and their pointers */
  typedef struct row {
    Plankton__ModelStats m;
    Plankton__StatusCount counts[PD_STATUS_COUNT];
    Plankton__StatusCount *ptrs[PD_STATUS_COUNT];
  } row;
  void *block = malloc((size_t)n * (sizeof(Plankton__ModelStats *) + sizeof(row)));
  if (!block) return 0;
  Plankton__ModelStats **ptrs = block;
  row *rows = (row *)(ptrs + n);
  for (int i = 0; i < n; i++) {
    row *w = &rows[i];
    plankton__model_stats__init(&w->m);
    w->m.name = (char *)c[i].name;
    w->m.version = (char *)c[i].version;
    w->m.images = c[i].images;
    w->m.request_seconds = (double)c[i].latency_us * 1e-6;
    w->m.queue_seconds = (double)c[i].queue_us * 1e-6;
    w->m.compute_seconds = (double)c[i].compute_us * 1e-6;
    size_t k = 0;
    for (int s = 0; s < PD_STATUS_COUNT; s++) {
      if (!c[i].requests[s] && s != PD_STATUS_OK) continue;
      plankton__status_count__init(&w->counts[k]);
      w->counts[k].code = (Plankton__StatusCode)s;
      w->counts[k].count = c[i].requests[s];
      w->ptrs[k] = &w->counts[k];
      k++;
    }
    w->m.n_requests = k;
    w->m.requests = w->ptrs;
    ptrs[i] = &w->m;
  }
  *out = ptrs;
  return (size_t)n;
}

uint8_t *pd_wire_model_control(uint64_t id, const char *model, int code, const char *msg,
                               const char (*versions)[64], int n, size_t *len) {
  Plankton__Response resp = PLANKTON__RESPONSE__INIT;
  Plankton__ModelControlResponse mr = PLANKTON__MODEL_CONTROL_RESPONSE__INIT;
  Plankton__Status st = PLANKTON__STATUS__INIT;
  char *ptrs[16];
  if (n > 16) n = 16;
  for (int i = 0; i < n; i++)
    ptrs[i] = (char *)versions[i];
  resp.body_case = PLANKTON__RESPONSE__BODY_MODEL_CONTROL;
  resp.model_control = &mr;
  mr.id = id;
  mr.status = &st;
  mr.model = (char *)(model ? model : "");
  mr.n_versions = (size_t)(n > 0 ? n : 0);
  mr.versions = ptrs;
  pd_wire_status(&st, code, msg);
  return pd_wire_pack_response(&resp, len);
}
