/* fuzz_model: the model loader as a reload runs it: model.yaml and
 * weights.safetensors from memory through pd_model_load_mem (the same code
 * pd_model_load runs after reading the two files), and the safetensors
 * container on its own through pd_safetensors_parse and pd_safetensors_to_f32, so the header
 * parser is reached even when the YAML part is not a valid model.
 *
 * Input layout: the model.yaml text, a NUL byte, then the bytes of
 * weights.safetensors (no NUL: an empty weights file). Both parts are
 * copied into buffers of exactly their size, as read from files.
 *
 * A model that loads and is small (at most 4 MFLOP and 256 Ki floats per
 * activation) then runs as the daemon would serve it: a CPU backend with
 * one thread, a plan for batches of 2, and one batch of a synthetic crop
 * preprocessed as the pipeline does, so a model that passes validation but
 * breaks the engine (the daemon would crash on its reload) is found too.
 *
 * Oracles: a failed load returns no model and a message; a loaded model's
 * layers have the shapes and weight counts their spec implies; every
 * tensor of a parsed safetensors file lies inside the buffer, has the
 * byte count its dtype and shape imply, and can be found by name. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "pd_backend.h"
#include "pd_cpu_backend.h"
#include "pd_model.h"
#include "pd_safetensors.h"
#include "pd_test_model.h"
#include "pd_warp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

static size_t dtype_size(const pd_safetensors_tensor *t) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8},     {"I64", 8},
               {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
               {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(t->dtype_name, sizes[i].name)) return sizes[i].size;
  PD_FUZZ_ASSERT(!"a tensor with a dtype the format does not define");
  return 0;
}

static void fuzz_safetensors(const uint8_t *buf, size_t len) {
  pd_safetensors_file st;
  pd_error err = {0};
  if (pd_safetensors_parse(buf, len, "fuzz.safetensors", &st, &err) != PD_OK) {
    PD_FUZZ_ASSERT(st.n_tensors == 0 && st.tensors == NULL);
    PD_FUZZ_ASSERT(err.msg[0] != '\0');
    return;
  }
  for (int i = 0; i < st.n_tensors; i++) {
    pd_safetensors_tensor *t = &st.tensors[i];
    PD_FUZZ_ASSERT(t->name && t->name[0]);
    PD_FUZZ_ASSERT(pd_safetensors_find(&st, t->name) == t);
    PD_FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= PD_ST_MAX_DIMS);
    PD_FUZZ_ASSERT(t->data >= buf + 8 && t->nbytes <= len && t->data + t->nbytes <= buf + len);
    size_t numel = pd_safetensors_numel(t);
    PD_FUZZ_ASSERT(numel * dtype_size(t) == t->nbytes);
    char shape[256];
    pd_safetensors_format_shape(t->shape, t->ndim, shape, sizeof shape);
    if (t->dtype == PD_DTYPE_OTHER || numel > (1u << 20)) continue;
    float *f = malloc((numel ? numel : 1) * sizeof *f);
    PD_FUZZ_ASSERT(f != NULL);
    PD_FUZZ_ASSERT(pd_safetensors_to_f32(t, f, numel, &err) == PD_OK);
    free(f);
  }
  pd_safetensors_free(&st);
}

static void check_layers(const pd_layer *layers, int n) {
  for (int i = 0; i < n; i++) {
    const pd_layer *l = &layers[i];
    PD_FUZZ_ASSERT(l->out.views >= 1 && l->out.h >= 1 && l->out.w >= 1 && l->out.c >= 1);
    if (l->kind == PD_LAYER_CONV) {
      PD_FUZZ_ASSERT(l->weight_len == (size_t)l->filters * l->kernel * l->kernel * (size_t)l->in.c);
      PD_FUZZ_ASSERT(l->bias_len == (size_t)l->filters && l->weight && l->bias);
    } else if (l->kind == PD_LAYER_DENSE) {
      PD_FUZZ_ASSERT(l->weight_len == (size_t)l->units * l->in.h * l->in.w * (size_t)l->in.c);
      PD_FUZZ_ASSERT(l->bias_len == (size_t)l->units && l->weight && l->bias);
    } else {
      PD_FUZZ_ASSERT(l->weight == NULL && l->weight_len == 0);
    }
    if (i > 0) PD_FUZZ_ASSERT(memcmp(&l->in, &layers[i - 1].out, sizeof l->in) == 0);
  }
}

static bool small_layers(const pd_layer *layers, int n) {
  for (int i = 0; i < n; i++) {
    const pd_shape o = layers[i].out;
    if ((size_t)o.views * o.h * o.w * o.c > (1u << 18)) return false;
  }
  return true;
}

static void run_engine(const pd_model *m) {
  if (pd_model_flops_per_image(m) > 4e6 || !small_layers(m->graph.head, m->graph.n_head)) return;
  size_t slot = 0;
  for (int b = 0; b < m->n_branches; b++) {
    if (!small_layers(m->graph.branches[b].layers, m->graph.branches[b].n_layers)) return;
    slot += pd_model_branch_input_len(m, b);
  }
  enum { N = 2, W = 23, H = 17 };
  uint8_t crop[W * H];
  pd_test_crop(W, H, 1, crop);
  float *in = malloc(N * slot * sizeof *in),
        *probs = malloc(N * (size_t)m->n_classes * sizeof *probs);
  PD_FUZZ_ASSERT(in && probs);
  pd_batch batch = {.n = N};
  float *slots[PD_MAX_BRANCHES];
  float *at = in;
  for (int b = 0; b < m->n_branches; b++) { /* branch-major, N slots each */
    batch.branch[b] = at;
    slots[b] = at;
    at += N * pd_model_branch_input_len(m, b);
  }
  for (int i = 0; i < N; i++) {
    pd_model_fill_view(m, crop, W - 6 * i, H, NULL, slots);
    for (int b = 0; b < m->n_branches; b++)
      slots[b] += pd_model_branch_input_len(m, b);
  }
  pd_cpu_options opt = {.threads = 1};
  pd_backend *be = NULL;
  pd_plan *plan = NULL;
  pd_error err = {0};
  PD_FUZZ_ASSERT(pd_cpu_backend_create(&opt, &be, &err) == PD_OK);
  if (pd_plan_create(be, &m->graph, N, &plan, &err) == PD_OK) {
    if (pd_plan_run(plan, &batch, probs, &err) != PD_OK) PD_FUZZ_ASSERT(err.msg[0] != '\0');
    pd_plan_destroy(plan);
  } else {
    PD_FUZZ_ASSERT(err.msg[0] != '\0');
  }
  pd_backend_destroy(be);
  free(in);
  free(probs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, '\0', size);
  size_t yaml_len = nul ? (size_t)(nul - data) : size;
  size_t weights_len = nul ? size - yaml_len - 1 : 0;
  char *yaml = malloc(yaml_len ? yaml_len : 1);
  unsigned char *weights = malloc(weights_len ? weights_len : 1);
  PD_FUZZ_ASSERT(yaml && weights);
  memcpy(yaml, data, yaml_len);
  if (weights_len) memcpy(weights, nul + 1, weights_len);

  fuzz_safetensors(weights, weights_len);

  pd_model *m = NULL;
  pd_error err = {0};
  int rc = pd_model_load_mem(yaml, yaml_len, "fuzz/model.yaml", weights, weights_len,
                             "fuzz/weights.safetensors", &m, &err);
  if (rc != PD_OK) {
    PD_FUZZ_ASSERT(rc < 0 && m == NULL && err.msg[0] != '\0');
  } else {
    PD_FUZZ_ASSERT(m != NULL);
    PD_FUZZ_ASSERT(m->n_classes >= 2 && m->n_branches >= 1 && m->graph.n_head >= 2);
    for (int c = 0; c < m->n_classes; c++)
      PD_FUZZ_ASSERT(m->classes[c] && m->classes[c][0]);
    int head_in = 0;
    for (int b = 0; b < m->n_branches; b++) {
      const pd_graph_branch *br = &m->graph.branches[b];
      PD_FUZZ_ASSERT(pd_model_branch_input_len(m, b) > 0);
      check_layers(br->layers, br->n_layers);
      PD_FUZZ_ASSERT(br->out.views == 1 && br->out.h == 1 && br->out.w == 1);
      head_in += br->out.c;
    }
    PD_FUZZ_ASSERT(head_in == m->graph.head_in);
    check_layers(m->graph.head, m->graph.n_head);
    PD_FUZZ_ASSERT(m->graph.head[m->graph.n_head - 1].kind == PD_LAYER_SOFTMAX);
    PD_FUZZ_ASSERT(m->graph.head[m->graph.n_head - 1].out.c == m->n_classes);
    PD_FUZZ_ASSERT(pd_model_flops_per_image(m) >= 0);
    run_engine(m);
    pd_model_free(m);
  }
  free(yaml);
  free(weights);
  return 0;
}
