/* pc_cli_out: classify's output rows in each format (see pc_cli_out.h). */
#include "pc_cli_out.h"

#include <string.h>

#include "pc_cli_json.h"
#include "pc_cli_utf8.h"
#include "pd_csv.h"

int pc_cli_format_parse(const char *s, pc_cli_format *out, pc_cli_error *err) {
  static const struct {
    const char *name;
    pc_cli_format f;
  } names[] = {{"table", PC_CLI_FORMAT_TABLE},
               {"csv", PC_CLI_FORMAT_CSV},
               {"tsv", PC_CLI_FORMAT_TSV},
               {"json", PC_CLI_FORMAT_JSON},
               {"ecotaxa", PC_CLI_FORMAT_ECOTAXA}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i].name)) {
      *out = names[i].f;
      return PC_CLI_EXIT_OK;
    }
  return pc_cli_fail(err, PC_CLI_EXIT_USAGE,
                     "--format: '%s' is not one of table, csv, tsv, json, ecotaxa", s);
}

/* TSV has no quoting: tab, line breaks and backslash become \t \n \r \\. */
void pc_cli_out_json_top(FILE *f, const pc_client_class_score *top, size_t n_top, size_t top_k) {
  if (n_top) {
    fputs(",\"label\":", f);
    pc_cli_json_string(f, top[0].label);
    fputs(",\"probability\":", f);
    pc_cli_json_float(f, top[0].probability);
  }
  fputs(",\"top\":[", f);
  for (size_t i = 0; i < n_top && i < top_k; i++) {
    fputs(i ? ",{\"label\":" : "{\"label\":", f);
    pc_cli_json_string(f, top[i].label);
    fprintf(f, ",\"index\":%u,\"probability\":", top[i].index);
    pc_cli_json_float(f, top[i].probability);
    fputc('}', f);
  }
  fputc(']', f);
}

void pc_cli_out_tsv_field(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '\t':
      fputs("\\t", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    default:
      fputc(*s, f);
    }
  }
}

static void field(const pc_cli_out *o, const char *s) {
  if (o->format == PC_CLI_FORMAT_CSV)
    pd_csv_field(o->f, s);
  else
    pc_cli_out_tsv_field(o->f, s);
}

void pc_cli_out_header(const pc_cli_out *o) {
  FILE *f = o->f;
  if (o->format == PC_CLI_FORMAT_CSV || o->format == PC_CLI_FORMAT_TSV) {
    char sep = o->format == PC_CLI_FORMAT_CSV ? ',' : '\t';
    fputs("path", f);
    if (o->probs) {
      for (size_t i = 0; i < o->n_labels; i++) {
        fputc(sep, f);
        field(o, o->labels[i]);
      }
    } else if (o->top_k <= 1) {
      fprintf(f, "%clabel%cprobability", sep, sep);
    } else {
      for (unsigned k = 1; k <= o->top_k; k++)
        fprintf(f, "%clabel_%u%cprobability_%u", sep, k, sep, k);
    }
    if (o->thresholds) fprintf(f, "%cclassification", sep);
    fputc('\n', f);
  } else if (o->format == PC_CLI_FORMAT_ECOTAXA) {
    pc_cli_ecotaxa_header(o->eco, f);
  }
}

static void row_json(const pc_cli_out *o, const pc_cli_result *r) {
  FILE *f = o->f;
  const pc_client_classify_result *c = &r->resp->u.classify;
  fputs("{\"path\":", f);
  pc_cli_json_string(f, r->path);
  if (!pc_cli_utf8_valid(r->path)) { /* the exact bytes, recoverable */
    fputs(",\"path_bytes\":", f);
    pc_cli_json_bytes(f, r->path);
  }
  pc_cli_out_json_top(f, c->top, c->n_top, o->top_k);
  if (o->thresholds) {
    fprintf(f, ",\"unclassified\":%s,\"threshold\":", c->unclassified ? "true" : "false");
    pc_cli_json_float(f, c->threshold);
  }
  if (o->probs) {
    fputs(",\"probabilities\":{", f);
    for (size_t i = 0; i < o->n_labels; i++) {
      if (i) fputc(',', f);
      pc_cli_json_string(f, o->labels[i]);
      fputc(':', f);
      pc_cli_json_float(f, c->distribution[i]);
    }
    fputc('}', f);
  }
  fputs(",\"model\":", f);
  pc_cli_json_string(f, c->model_name);
  fputs(",\"model_version\":", f);
  pc_cli_json_string(f, c->model_version);
  if (r->width && r->height) fprintf(f, ",\"width\":%u,\"height\":%u", r->width, r->height);
  fputs("}\n", f);
}

int pc_cli_out_row(const pc_cli_out *o, const pc_cli_result *r, pc_cli_error *err) {
  const pc_client_classify_result *c = &r->resp->u.classify;
  if (o->probs && c->n_distribution != o->n_labels)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED,
                       "%s: the answer has %zu probabilities, the model %s has %zu classes "
                       "(was it reloaded?)",
                       r->path, c->n_distribution, c->model_name, o->n_labels);
  if (c->n_top == 0)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: the answer has no top class", r->path);
  FILE *f = o->f;
  switch (o->format) {
  case PC_CLI_FORMAT_TABLE:
    fputs(r->path, f);
    for (size_t i = 0; i < c->n_top && i < o->top_k; i++)
      fprintf(f, "  %s %.4f", c->top[i].label, (double)c->top[i].probability);
    if (o->thresholds && c->unclassified) fputs("  unclassified", f);
    fputc('\n', f);
    break;
  case PC_CLI_FORMAT_CSV:
  case PC_CLI_FORMAT_TSV: {
    char sep = o->format == PC_CLI_FORMAT_CSV ? ',' : '\t';
    field(o, r->path);
    if (o->probs) {
      for (size_t i = 0; i < o->n_labels; i++)
        fprintf(f, "%c%.9g", sep, (double)c->distribution[i]);
    } else {
      for (size_t i = 0; i < o->top_k; i++) {
        fputc(sep, f);
        if (i < c->n_top) {
          field(o, c->top[i].label);
          fprintf(f, "%c%.9g", sep, (double)c->top[i].probability);
        } else {
          fputc(sep, f); /* fewer classes than k: empty cells keep the columns */
        }
      }
    }
    if (o->thresholds) {
      fputc(sep, f);
      field(o, c->unclassified ? "unclassified" : c->top[0].label);
    }
    fputc('\n', f);
    break;
  }
  case PC_CLI_FORMAT_JSON:
    row_json(o, r);
    break;
  case PC_CLI_FORMAT_ECOTAXA:
    return pc_cli_ecotaxa_row(o->eco, f, r, err);
  }
  return PC_CLI_EXIT_OK;
}
