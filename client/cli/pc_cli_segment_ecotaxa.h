/* pc_cli_segment_ecotaxa: `segment --format ecotaxa`: the objects found in
 * frames as the TSV that EcoTaxa imports, with each object's crop beside
 * it (the folder is a bundle to zip or upload as it is):
 *  - UTF-8 with a BOM, a header row, then the type row ([t] text, [f]
 *    number), as classify's (pc_cli_ecotaxa.h);
 *  - one row per object: img_file_name (its crop, the gray8 image the
 *    model classified, written as OBJECT_ID.png into the TSV's folder),
 *    object_id, object_frame (the frame's file as given),
 *    object_annotation_category (the top class), object_annotation_status
 *    (predicted), object_score, then its features as numbers:
 *    object_bbox_x, object_bbox_y, object_width, object_height (the tight
 *    box in frame pixels), object_area (pixels), object_centroid_x,
 *    object_centroid_y, object_major, object_minor (axes from the image
 *    moments), object_angle (degrees), object_mean, object_min (gray on
 *    the frame's own depth); with -k K > 1 object_category_2,
 *    object_score_2 ... object_category_K, object_score_K;
 *  - object_id: the frame's path below the id root (the deepest folder
 *    holding every FRAME argument, as classify's; its extension dropped;
 *    '/' written "__": pc_cli_path_object_id), "_", the object's index in
 *    the frame. An id used twice (a frame given
 *    twice) fails that frame: ids are unique in a TSV, and its crop would
 *    overwrite another's;
 *  - the TSV is -o DIR/ecotaxa*.tsv (EcoTaxa picks up only those names;
 *    DIR is made) or standard output (the crops then go into the current
 *    folder);
 *  - a frame path with a tab, line break or other control byte fails its
 *    rows (EcoTaxa's reader would split them).
 * Owns the bundle folder's name and the set of ids written. */
#ifndef PC_CLI_SEGMENT_ECOTAXA_H
#define PC_CLI_SEGMENT_ECOTAXA_H

#include <stdio.h>

#include "pc_cli.h"
#include "plankton_client.h"

typedef struct pc_cli_segeco pc_cli_segeco;

/* output: -o's path (NULL: standard output); frames: the FRAME arguments
 * (for the id root). Checks its name and makes its
 * folder; errors are usage errors (PC_CLI_EXIT_USAGE). */
int pc_cli_segeco_open(const char *output, char *const *frames, int n_frames, unsigned top_k,
                       pc_cli_segeco **out, pc_cli_error *err);
void pc_cli_segeco_header(const pc_cli_segeco *e, FILE *f);
/* The rows of one answered frame and their crops: all or, on a failure
 * (err says why), none of its rows written (crops already written stay). */
int pc_cli_segeco_frame(pc_cli_segeco *e, FILE *f, const char *frame,
                        const pc_client_frame_result *fr, pc_cli_error *err);
void pc_cli_segeco_free(pc_cli_segeco *e);

#endif
