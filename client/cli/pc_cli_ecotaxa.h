/* pc_cli_ecotaxa: `classify --format ecotaxa`, the TSV that EcoTaxa
 * imports, written so that EcoTaxa's importer accepts it as it is:
 *  - UTF-8 with a BOM (EcoTaxa reads a TSV as latin-1 without one); a
 *    header row, then the type row ([t] text, [f] number);
 *  - columns: img_file_name, object_id, object_annotation_category (the
 *    top class), object_annotation_status (predicted), object_width,
 *    object_height (pixels, from the file's header), object_score (top-1
 *    probability); with -k K > 1, object_category_2, object_score_2, ...
 *    object_category_K, object_score_K; with --probs one object_p_<label>
 *    column per class (the label in lower case, other bytes '_'; a name
 *    that is taken gets _<class index> appended until it is unique); when
 *    the model carries a lineage, object_annotation_hierarchy (the top
 *    class's "Root>...>Taxon"); when it has thresholds, object_unclassified
 *    (1: the top class is below its threshold; the category and scores
 *    stay the raw top class, EcoTaxa having no "unclassified" taxon) and
 *    object_threshold (the top class's threshold, 0: none); then the
 *    --metadata columns (pc_cli_meta.h);
 *  - object_id: the --metadata object_id when given, else derived from the
 *    crop's path below the id root (pc_cli_path_object_id: '/' as "__").
 *    The id root is --id-root, else the deepest folder holding every
 *    argument (a folder argument itself, a file's folder, the current
 *    folder for `-`). An id used twice (a file listed twice) fails that
 *    row: ids are unique in a TSV;
 *  - img_file_name is relative to the folder the TSV sits in: -o's folder
 *    (which must be named ecotaxa*.tsv: EcoTaxa picks up only those), or
 *    the current folder for standard output. With -o, a crop outside that
 *    folder is hard-linked (or, across file systems, copied) into it, named
 *    by its object_id: the folder is a bundle to zip or upload as it is.
 *    On standard output such a crop fails (nothing can be copied);
 *  - a file name with a tab, line break or other control byte fails its
 *    row (EcoTaxa's reader would split it); so does a name that is not
 *    UTF-8 and must be named in place (a copy is named by its id, which
 *    is UTF-8). A field holding '"' is quoted (EcoTaxa's csv reader).
 * Owns the id root, the folder names, the metadata, the label column
 * names and the set of ids written. */
#ifndef PC_CLI_ECOTAXA_H
#define PC_CLI_ECOTAXA_H

#include <stdbool.h>
#include <stdio.h>

#include "pc_cli_pipe.h"

typedef struct pc_cli_ecotaxa pc_cli_ecotaxa;

typedef struct pc_cli_ecotaxa_options {
  const char *output; /* -o PATH; NULL: standard output */
  char *const *args;  /* classify's PATH arguments */
  int n_args;
  const char *id_root;  /* --id-root DIR; NULL: from the arguments */
  const char *metadata; /* --metadata FILE; NULL: none */
} pc_cli_ecotaxa_options;

/* Checks -o's name (ecotaxa*.tsv) and makes its folder, finds the id root
 * and reads the metadata. Errors are usage errors (PC_CLI_EXIT_USAGE). */
int pc_cli_ecotaxa_open(const pc_cli_ecotaxa_options *o, pc_cli_ecotaxa **out, pc_cli_error *err);
/* Before pc_cli_ecotaxa_columns: the lineage per label (borrowed; NULL:
 * none) and whether the model has thresholds (the columns they add). */
void pc_cli_ecotaxa_outputs(pc_cli_ecotaxa *e, const char *const *lineage, bool thresholds);
/* The model's columns (the labels stay the caller's). Fails when a
 * metadata column has the name of one of them. */
int pc_cli_ecotaxa_columns(pc_cli_ecotaxa *e, unsigned top_k, bool probs, size_t n_labels,
                           const char *const *labels, pc_cli_error *err);
void pc_cli_ecotaxa_header(const pc_cli_ecotaxa *e, FILE *f);
/* One classified crop; nothing is written when it fails (err says why). */
int pc_cli_ecotaxa_row(pc_cli_ecotaxa *e, FILE *f, const pc_cli_result *r, pc_cli_error *err);
/* Crops hard-linked and copied into the bundle so far. */
void pc_cli_ecotaxa_counts(const pc_cli_ecotaxa *e, unsigned long *linked, unsigned long *copied);
void pc_cli_ecotaxa_free(pc_cli_ecotaxa *e);

/* What the segment command's EcoTaxa writer (pc_cli_segment_ecotaxa.h)
 * shares: whether a TSV's file name is one EcoTaxa imports (ecotaxa*.tsv),
 * and a value written as EcoTaxa's reader wants it (between quotes, '"'
 * doubled, when it holds a '"'). */
bool pc_cli_ecotaxa_name_ok(const char *path);
/* A tab, line break or other control byte: EcoTaxa's reader would split the row. */
bool pc_cli_ecotaxa_has_control(const char *s);
/* The id root of these arguments: the deepest folder holding every one (a
 * folder argument itself, a file's folder, cwd for `-`); cwd when there
 * are none. Normalised absolute, malloc'ed; NULL: out of memory. */
char *pc_cli_ecotaxa_args_root(char *const *args, int n_args, const char *cwd);
void pc_cli_ecotaxa_field(FILE *f, const char *s);

#endif
