/* pc_cli_model: the model's name and labels (see pc_cli_model.h). */
#include "pc_cli_model.h"

#include <stdlib.h>
#include <string.h>

void pc_cli_model_free(pc_cli_model *m) {
  if (!m) return;
  for (size_t i = 0; m->labels && i < m->n_classes; i++)
    free(m->labels[i]);
  free(m->labels);
  for (size_t i = 0; m->lineage && i < m->n_classes; i++)
    free(m->lineage[i]);
  free(m->lineage);
  free(m->name);
  free(m->version);
  memset(m, 0, sizeof *m);
}

static int copy_model(const pc_client_model *src, pc_cli_model *out, pc_cli_error *err) {
  memset(out, 0, sizeof *out);
  out->name = strdup(src->name);
  out->version = strdup(src->version);
  out->labels = calloc(src->n_classes ? src->n_classes : 1, sizeof *out->labels);
  int ok = out->name && out->version && out->labels;
  for (size_t i = 0; ok && i < src->n_classes; i++) {
    out->labels[i] = strdup(src->classes[i]);
    if (!out->labels[i])
      ok = 0;
    else
      out->n_classes = i + 1;
  }
  out->has_thresholds = src->n_thresholds > 0;
  if (ok && src->n_lineage == src->n_classes && src->n_lineage > 0) {
    out->lineage = calloc(src->n_classes, sizeof *out->lineage);
    ok = out->lineage != NULL;
    for (size_t i = 0; ok && i < src->n_classes; i++)
      ok = (out->lineage[i] = strdup(src->lineage[i])) != NULL;
  }
  if (!ok) {
    pc_cli_model_free(out);
    return pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "out of memory copying the model's labels");
  }
  if (src->n_classes == 0) {
    pc_cli_model_free(out);
    return pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "model %s has no classes", src->name);
  }
  return PC_CLI_EXIT_OK;
}

/* "a, b (default)" for messages. */
static void list_models(pc_client *c, char *buf, size_t n) {
  buf[0] = '\0';
  pc_client_response *r = NULL;
  if (pc_client_model_info(c, NULL, &r, NULL) != PC_CLIENT_OK || r->status != 0) {
    pc_client_response_free(r);
    return;
  }
  size_t used = 0;
  const pc_client_model *ms = r->u.model_info.models;
  for (size_t i = 0; i < r->u.model_info.n_models && used < n; i++) {
    if (i > 0 && !strcmp(ms[i].name, ms[i - 1].name)) continue; /* versions of one model */
    int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", ms[i].name);
    if (w < 0) break;
    used += (size_t)w;
  }
  pc_client_response_free(r);
}

int pc_cli_model_fetch(pc_client *c, const char *name, pc_cli_model *out, pc_cli_error *err) {
  pc_client_response *r = NULL;
  pc_client_error e;
  const char *want = name && *name ? name : NULL;
  if (pc_client_model_info(c, want, &r, &e) != PC_CLIENT_OK)
    return pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "asking planktond for its models: %s", e.message);
  int rc;
  if (r->kind != PC_CLIENT_RESPONSE_MODEL_INFO) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "asking planktond for its models: %s: %s",
                     pc_client_status_name(r->status), r->message);
  } else if (r->status == PC_CLIENT_STATUS_NOT_FOUND ||
             (r->status == 0 && r->u.model_info.n_models == 0 && want)) {
    char served[600];
    pc_client_response_free(r);
    r = NULL;
    list_models(c, served, sizeof served);
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                     "--model: planktond does not serve a model named "
                     "'%s' (it serves: %s)",
                     want ? want : "", served[0] ? served : "none");
  } else if (r->status != 0) {
    rc = pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "asking planktond for its models: %s: %s",
                     pc_client_status_name(r->status), r->message);
  } else {
    const pc_client_model *pick = NULL;
    for (size_t i = 0; i < r->u.model_info.n_models; i++) {
      const pc_client_model *m = &r->u.model_info.models[i];
      if (want ? !strcmp(m->name, want) : m->is_default) pick = m;
    }
    if (!pick && !want && r->u.model_info.n_models == 1) pick = &r->u.model_info.models[0];
    if (!pick && want && r->u.model_info.n_models == 1) pick = &r->u.model_info.models[0];
    rc = pick ? copy_model(pick, out, err)
              : pc_cli_fail(err, PC_CLI_EXIT_DAEMON, "planktond named no %s model",
                            want ? want : "default");
  }
  pc_client_response_free(r);
  return rc;
}
