/* pc_cli_rollup: probabilities summed to a coarser level of the lineage
 * (see pc_cli_rollup.h). */
#include "pc_cli_rollup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli_strmap.h"

/* Names in "A>B>C". */
static int depth_of(const char *s) {
  int d = 1;
  for (; *s; s++)
    d += *s == '>';
  return d;
}

/* The first `level` names of s, malloc'ed. */
static char *cut(const char *s, int level) {
  const char *p = s;
  for (int d = 1; d <= level; d++) {
    const char *end = strchr(p, '>');
    if (!end || d == level) return end ? strndup(s, (size_t)(end - s)) : strdup(s);
    p = end + 1;
  }
  return strdup(s);
}

void pc_cli_rollup_free(pc_cli_rollup *r) {
  for (size_t i = 0; r->labels && i < r->n_groups; i++)
    free(r->labels[i]);
  free(r->labels);
  free(r->group_of);
  free(r->p);
  free(r->sum);
  free(r->top);
  memset(r, 0, sizeof *r);
}

int pc_cli_rollup_init(pc_cli_rollup *r, const pc_cli_model *m, const char *level,
                       pc_cli_error *err) {
  memset(r, 0, sizeof *r);
  if (!m->lineage)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "--rollup: model %s carries no lineage (model.yaml's lineage:, "
                       "models/FORMAT.md)",
                       m->name);
  int deepest = 1;
  for (size_t i = 0; i < m->n_classes; i++)
    if (depth_of(m->lineage[i]) > deepest) deepest = depth_of(m->lineage[i]);
  char *end = NULL;
  errno = 0;
  long v = strtol(level, &end, 10);
  if (!*level || *end || errno || v < 1 || v > deepest)
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                       "--rollup: '%s' is not a depth of model %s's lineages (a number from 1 to "
                       "%d, its deepest lineage)",
                       level, m->name, deepest);
  r->level = (int)v;
  r->n_classes = m->n_classes;
  const size_t n = m->n_classes ? m->n_classes : 1;
  r->labels = calloc(n, sizeof *r->labels);
  r->group_of = calloc(n, sizeof *r->group_of);
  r->p = calloc(n, sizeof *r->p);
  r->sum = calloc(n, sizeof *r->sum);
  r->top = calloc(n, sizeof *r->top);
  pc_cli_strmap seen = {0};
  int rc = r->labels && r->group_of && r->p && r->sum && r->top ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < m->n_classes; i++) {
    char *g = cut(m->lineage[i], r->level);
    long at = (long)r->n_groups;
    int added = g ? pc_cli_strmap_add(&seen, g, at, &at) : -1;
    if (added < 0) {
      free(g);
      rc = -1;
    } else if (added == 0) {
      free(g);
    } else {
      r->labels[r->n_groups++] = g;
    }
    r->group_of[i] = (size_t)at;
  }
  pc_cli_strmap_free(&seen);
  if (rc < 0) {
    pc_cli_rollup_free(r);
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "out of memory");
  }
  return PC_CLI_EXIT_OK;
}

static int by_probability(const void *a, const void *b) {
  const pc_client_class_score *x = a, *y = b;
  if (x->probability != y->probability) return x->probability < y->probability ? 1 : -1;
  return (x->index > y->index) - (x->index < y->index);
}

int pc_cli_rollup_apply(pc_cli_rollup *r, const pc_cli_result *in, pc_cli_result *out,
                        pc_cli_error *err) {
  const pc_client_classify_result *c = &in->resp->u.classify;
  if (c->n_distribution != r->n_classes)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: the answer has %zu probabilities, the model %s has %zu classes (was "
                       "it reloaded?)",
                       in->path, c->n_distribution, c->model_name, r->n_classes);
  double *sum = r->sum;
  memset(sum, 0, r->n_groups * sizeof *sum);
  for (size_t i = 0; i < r->n_classes; i++)
    sum[r->group_of[i]] += c->distribution[i];
  for (size_t g = 0; g < r->n_groups; g++) {
    r->p[g] = (float)sum[g];
    r->top[g] = (pc_client_class_score){
        .index = (uint32_t)g, .label = r->labels[g], .probability = r->p[g]};
  }
  qsort(r->top, r->n_groups, sizeof *r->top, by_probability);
  r->view = *in->resp;
  pc_client_classify_result *v = &r->view.u.classify;
  v->n_top = r->n_groups;
  v->top = r->top;
  v->n_distribution = r->n_groups;
  v->distribution = r->p;
  v->unclassified = false;
  v->threshold = 0;
  *out = *in;
  out->resp = &r->view;
  return PC_CLI_EXIT_OK;
}
