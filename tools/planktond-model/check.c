/* planktond-model check DIR: loads the folder (a model or an ensemble) and
 * prints every member's layers with their shapes. */
#include <stdio.h>

#include "pdm.h"

static const char *symmetry_name(pd_symmetry s) {
  return s == PD_SYM_C4 ? "c4" : s == PD_SYM_D4 ? "d4" : "none";
}

static void print_layers(const pd_layer *layers, int n, const char *indent) {
  for (int i = 0; i < n; i++) {
    const pd_layer *l = &layers[i];
    printf("%s%-18s %-16s %dx%dx%dx%d -> %dx%dx%dx%d\n", indent, l->name,
           pd_layer_kind_name(l->kind), l->in.views, l->in.h, l->in.w, l->in.c, l->out.views,
           l->out.h, l->out.w, l->out.c);
  }
}

static void print_model(const pd_model *m, const char *indent) {
  printf("%smodel %s version %s: %d classes, symmetry %s, %zu parameters, %.3f GFLOP per image, "
         "tta count %d\n",
         indent, m->name, m->version, m->n_classes, symmetry_name(m->symmetry), m->n_params,
         pd_model_flops_per_image(m) / 1e9, m->tta.count);
  char sub[16];
  snprintf(sub, sizeof sub, "%s  ", indent);
  for (int b = 0; b < m->n_branches; b++) {
    const pd_input_branch *br = &m->branches[b];
    const pd_graph_branch *gb = &m->graph.branches[b];
    if (br->kind == PD_INPUT_IMAGE)
      printf("%sbranch %s: image %dx%d, %s\n", indent, br->name, br->size, br->size,
             br->rescale == PD_RESCALE_FIT ? "fit" : "fixed factor");
    else
      printf("%sbranch %s: %d size features\n", indent, br->name, br->n_features);
    print_layers(gb->layers, gb->n_layers, sub);
  }
  printf("%shead: %d inputs\n", indent, m->graph.head_in);
  print_layers(m->graph.head, m->graph.n_head, sub);
}

int pdm_cmd_check(int argc, char **argv) {
  pdm_options o;
  if (pdm_parse_options(argc, argv, 1, &o) != 0) return 2;
  pd_ensemble *e = pdm_load_or_report(o.model_dir);
  if (!e) return 1;
  if (!e->is_ensemble) {
    print_model(e->members[0], "");
  } else {
    printf("ensemble %s version %s: %d members, %d classes, tta count %d\n", e->name, e->version,
           e->n_members, e->n_classes, e->tta_count);
    for (int i = 0; i < e->n_members; i++) {
      printf("member %d: %s, weight %.6g%s\n", i, e->member_dir[i], e->weights[i],
             e->perm[i] ? " (class order differs from member 0: mapped)" : "");
      print_model(e->members[i], "  ");
    }
  }
  pd_ensemble_free(e);
  return 0;
}
