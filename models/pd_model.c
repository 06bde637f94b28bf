/* The model loader: model.yaml (through pd_yaml) and weights.safetensors
 * (through pd_safetensors) into a validated pd_model. Three stages, each
 * stopping at the first error: parse the description (keys, types, ranges,
 * defaults), infer and check every layer's shapes and the symmetry rules,
 * then check the tensors against the layers and convert them into one float
 * allocation in the engine's layouts (pd_model_parse.c, pd_model_shape.c,
 * pd_model_weights.c; pd_model_internal.h is what they share). */
#include "pd_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_file.h"
#include "pd_model_internal.h"
#include "pd_yaml.h"

/* ---- messages shared by the stages ---- */

const char *pd_model__describe_layer(const pd_layer *l, char *buf, size_t cap) {
  switch (l->kind) {
  case PD_LAYER_CONV:
    snprintf(buf, cap, "conv %d %dx%d/%d pad %d", l->filters, l->kernel, l->kernel, l->stride,
             l->pad);
    break;
  case PD_LAYER_MAXPOOL:
    snprintf(buf, cap, "maxpool %d/%d", l->pool_size, l->pool_stride);
    break;
  case PD_LAYER_DENSE:
    snprintf(buf, cap, "dense %d", l->units);
    break;
  case PD_LAYER_MAXOUT:
    snprintf(buf, cap, "maxout %d", l->pieces);
    break;
  case PD_LAYER_CYCLIC_POOL:
    snprintf(buf, cap, "cyclic_pool %s", pd_model__cpool_names[l->cpool_mode]);
    break;
  default:
    snprintf(buf, cap, "%s", pd_layer_kind_name(l->kind));
    break;
  }
  return buf;
}

const char *pd_model__describe_shape(pd_shape s, char *buf, size_t cap) {
  snprintf(buf, cap, "%d view%s of %dx%dx%d", s.views, s.views == 1 ? "" : "s", s.h, s.w, s.c);
  return buf;
}

int pd_model__layer_fail(const load_ctx *c, const pd_layer *l, int code, const char *fmt, ...) {
  char msg[320], desc[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return pd_error_set(c->err, code, "%s:%d: layer %s (%s): %s", c->yaml_name, l->line, l->name,
                      pd_model__describe_layer(l, desc, sizeof desc), msg);
}

/* ---- public ---- */

int pd_model_load_mem(const char *yaml, size_t yaml_len, const char *yaml_name,
                      const unsigned char *weights, size_t weights_len, const char *weights_name,
                      pd_model **out, pd_error *err) {
  *out = NULL;
  load_ctx *c = calloc(1, sizeof *c);
  pd_model *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return pd_error_set(err, PD_ENOMEM, "out of memory for a model");
  }
  c->m = m;
  c->yaml_name = yaml_name ? yaml_name : "model.yaml";
  c->weights_name = weights_name ? weights_name : "weights.safetensors";
  c->err = err;
  pd_yaml *y = NULL;
  int rc = pd_yaml_load(yaml ? yaml : "", yaml ? yaml_len : 0, c->yaml_name, &y, err);
  if (rc == PD_OK) {
    pd_yaml_node root = pd_yaml_root(y);
    rc = pd_yaml_expect_map(&root, err);
    if (rc == PD_OK) rc = pd_model__parse(c, &root);
  }
  pd_yaml_free(y);
  if (rc == PD_OK) rc = pd_model__infer(c);
  if (rc == PD_OK)
    rc = pd_model__load_weights(c, weights ? weights : (const unsigned char *)"",
                                weights ? weights_len : 0);
  free(c);
  if (rc != PD_OK) {
    pd_model_free(m);
    return rc;
  }
  *out = m;
  return PD_OK;
}

int pd_model_load(const char *dir, pd_model **out, pd_error *err) {
  *out = NULL;
  char yaml_path[4096 + 32], weights_path[4096 + 32];
  const size_t dlen = dir ? strlen(dir) : 0;
  if (!dir || dlen == 0 || dlen >= sizeof((pd_model *)0)->dir)
    return pd_error_set(err, PD_EINVAL, "model directory name is empty or too long (%zu bytes)",
                        dlen);
  snprintf(yaml_path, sizeof yaml_path, "%s/model.yaml", dir);
  snprintf(weights_path, sizeof weights_path, "%s/weights.safetensors", dir);
  unsigned char *yaml = NULL, *weights = NULL;
  size_t yaml_len = 0, weights_len = 0;
  int rc = pd_file_read(yaml_path, PD_MAX_YAML_BYTES, &yaml, &yaml_len, err);
  if (rc == PD_OK)
    rc = pd_file_read(weights_path, PD_MAX_WEIGHT_BYTES, &weights, &weights_len, err);
  if (rc == PD_EIO && yaml) {
    /* An ensemble folder has no weights: say what it is rather than what is missing. */
    pd_yaml *y = NULL;
    pd_error yerr = {0};
    if (pd_yaml_load((const char *)yaml, yaml_len, yaml_path, &y, &yerr) == PD_OK) {
      pd_yaml_node root = pd_yaml_root(y);
      if (pd_yaml_kind_of(&root) == PD_YAML_MAP &&
          pd_model__refuse_ensemble(&root, &yerr) != PD_OK) {
        rc = yerr.code;
        if (err) *err = yerr;
      }
    }
    pd_yaml_free(y);
  }
  if (rc == PD_OK)
    rc = pd_model_load_mem((const char *)yaml, yaml_len, yaml_path, weights, weights_len,
                           weights_path, out, err);
  free(yaml);
  free(weights);
  if (rc == PD_OK && *out) memcpy((*out)->dir, dir, dlen + 1);
  return rc;
}

void pd_model_free(pd_model *m) {
  if (!m) return;
  for (int i = 0; m->classes && i < m->n_classes; i++)
    free(m->classes[i]);
  free(m->classes);
  for (int i = 0; m->lineage && i < m->n_classes; i++)
    free(m->lineage[i]);
  free(m->lineage);
  free(m->thresholds);
  free(m->weights);
  free(m);
}

size_t pd_model_branch_input_len(const pd_model *m, int b) {
  if (!m || b < 0 || b >= m->n_branches) return 0;
  return pd_input_branch_len(&m->branches[b]);
}

double pd_model_flops_per_image(const pd_model *m) {
  return pd_graph_flops_per_image(&m->graph);
}

pd_input_desc pd_model_input(const pd_model *m) {
  pd_input_desc d = {.norm = &m->input,
                     .n_branches = m->n_branches,
                     .branches = m->branches,
                     .symmetry = m->symmetry,
                     .tta = &m->tta};
  return d;
}

void pd_model_fill_view(const pd_model *m, const uint8_t *px, int w, int h, const pd_warp_aug *aug,
                        float *const *slots) {
  const pd_input_desc d = pd_model_input(m);
  pd_input_fill_view(&d, px, w, h, aug, slots);
}

void pd_model_fill_views(const pd_model *m, const uint8_t *px, int w, int h,
                         const pd_warp_aug *augs, int n, float *const *first) {
  const pd_input_desc d = pd_model_input(m);
  float *slots[PD_MAX_BRANCHES];
  for (int t = 0; t < n; t++) {
    for (int b = 0; b < m->n_branches; b++)
      slots[b] = first[b] + (size_t)t * pd_model_branch_input_len(m, b);
    pd_input_fill_view(&d, px, w, h, augs ? &augs[t] : NULL, slots);
  }
}
