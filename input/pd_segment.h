/* pd_segment: finds the organisms in one decoded gray camera frame and cuts
 * each one's crop the way the model's training crops look. Owns the result
 * it returns (objects and their crops); reads the caller's frame and
 * flat-field pixels without keeping them.
 *
 * Steps: background (the caller's flat-field image, else estimated: the
 * per-column median for line-scan shadowgraphs, or a grey closing of the
 * area-reduced frame for other cameras), threshold relative to it (a pixel
 * is dark when value < background * (1 - threshold)), fragments merged (the
 * dark pixels dilated so that pieces up to merge_gap pixels apart join, as
 * the NDSB crops hold an organism's faint, broken parts in one crop),
 * connected components of that (8- or 4-connectivity, leptonica's seed
 * fill), filters (min and max area, objects touching the frame edge), a cap
 * on objects (the largest kept), satellites joined (a small object lying
 * inside a larger one's crop is part of that crop, as in the training
 * crops, and not an object of its own), and per object its box, moments and
 * gray features, all over its own dark pixels only. The crop is the object's
 * tight box grown by `margin` pixels on each side and clipped to the frame
 * (the NDSB training crops have a constant ~10 px margin, clipped at their
 * frame's edge: bench/frames/README.md), as gray8 of the
 * background-normalised frame: 255 * value / background, organism dark on a
 * white (255) background.
 *
 * 16-bit frames declare their significant bits (10-12 bit cameras write
 * 16-bit words); leptonica's morphology sees them brought down to 8 bpp by
 * those bits, everything else (threshold, gray features, crops) uses the
 * original values.
 *
 * Memory: the frame's pixel count is checked against max_frame_pixels before
 * anything is allocated; working memory is three 1-bpp images, a few rows,
 * the background (column median: a 256-bin histogram per column, 1 KiB
 * each; morph: an 8-bpp copy of the frame and the reduced grid; flat field:
 * none), and at most max_objects objects (a heap of the largest while
 * scanning). stats.work_bytes counts it.
 *
 * Threads: Debian's leptonica 1.82 has non-atomic reference counts, so one
 * frame's segmentation runs on one thread; every leptonica object it makes is
 * created and destroyed inside pd_segment_run. Different frames may run on
 * different threads at once. Leptonica's messages never reach stderr on
 * their own: they go to the handler given to pd_segment_set_log (dropped
 * until one is given); failures are returned as pd_error messages naming the
 * leptonica call and the values. Leptonica's file readers are never used:
 * frames arrive decoded by planktond's own decoders. */
#ifndef PD_SEGMENT_H
#define PD_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "pd_error.h"

typedef enum {
  PD_SEGMENT_BG_COLUMN_MEDIAN = 0, /* line-scan shadowgraph: median of each column */
  PD_SEGMENT_BG_MORPH = 1,         /* grey closing of the reduced frame, bilinear back */
} pd_segment_background;

typedef struct pd_segment_settings {
  pd_segment_background background; /* when no flat-field image is given */
  double threshold;                 /* (0, 1): dark = value < background * (1 - threshold) */
  long min_area;                    /* pixels, >= 1: smaller objects dropped */
  long max_area;                    /* pixels, >= min_area: larger objects dropped */
  int connectivity;                 /* 8 (diagonal neighbours join) or 4 */
  int max_objects;                  /* 1..PD_SEGMENT_MAX_OBJECTS: the largest kept */
  int keep_edge;                    /* 1: objects touching the frame edge kept; 0: dropped */
  int margin;                       /* 0..PD_SEGMENT_MAX_MARGIN: crop = box + margin per side */
  int merge_gap;                    /* 0..PD_SEGMENT_MAX_MERGE_GAP: fragments this close join */
  double satellite_area;            /* 0..1: an object of at most this fraction of a larger
                                       one's area, inside that one's crop, joins it; 0: off */
  int crops;                        /* 1: cut each object's crop; 0: boxes and features only */
  int morph_size;                   /* morph background: closing size in frame pixels */
  int morph_reduction;              /* morph background: reduction factor (1..16) */
  long max_frame_pixels;            /* width * height limit */
} pd_segment_settings;

enum {
  PD_SEGMENT_MAX_OBJECTS = 1000000,
  PD_SEGMENT_MAX_MARGIN = 1024,
  PD_SEGMENT_MAX_MERGE_GAP = 64,
};

/* Defaults: column median, threshold 0.1, area 16..4 Mpx, 8-connectivity,
 * 1000 objects, edge objects kept, margin 10, merge_gap 10, satellite_area
 * 0.25, crops on, morph 255 px at reduction 8, 64 Mpx frames. */
pd_segment_settings pd_segment_settings_default(void);

/* PD_EINVAL with a message naming the setting and its value. */
int pd_segment_settings_check(const pd_segment_settings *s, pd_error *err);

typedef struct pd_segment_frame {
  int width, height;
  int bytes_per_pixel;  /* 1: gray8; 2: gray16 in host byte order */
  int significant_bits; /* 1..8 for gray8, 1..16 for gray16; every value < 2^bits */
  const void *pixels;   /* width * height samples, row-major, no row padding */
} pd_segment_frame;

typedef struct pd_segment_object {
  int x, y, width, height;       /* tight box of the object's own pixels, frame pixels */
  long area;                     /* pixels */
  double cx, cy;                 /* centroid (pixel centres at integer coordinates) */
  double major_axis, minor_axis; /* of the ellipse with the same second moments */
  double orientation_deg;        /* major axis from +x, counter-clockwise with y up, (-90, 90] */
  double mean_gray;              /* over the object's pixels, original values */
  int min_gray;                  /* darkest pixel, original value */
  int crop_x, crop_y;            /* crop rectangle in the frame */
  int crop_width, crop_height;   /* 0 when crops are off */
  const uint8_t *crop;           /* crop_width * crop_height gray8 (NULL when off) */
} pd_segment_object;

typedef struct pd_segment_stats {
  long found;         /* connected components */
  long dropped_small; /* area < min_area */
  long dropped_large; /* area > max_area */
  long dropped_edge;  /* touching the frame edge (keep_edge = 0) */
  long dropped_cap;   /* over max_objects (the smallest dropped) */
  long absorbed;      /* satellites joined to a larger object (after the cap) */
  double background_ms, threshold_ms, components_ms, crops_ms, total_ms;
  size_t work_bytes; /* working memory of the run, result excluded */
} pd_segment_stats;

typedef struct pd_segment_result {
  int count;                  /* objects kept */
  pd_segment_object *objects; /* sorted by box top, then left; owned */
  uint8_t *crop_pixels;       /* every crop, one buffer; owned */
  size_t crop_bytes;
  pd_segment_stats stats;
} pd_segment_result;

/* Checks the frame (sizes, depth, pixel limit) without touching its pixels;
 * PD_EINVAL or PD_ELIMIT naming the values. pd_segment_run calls it first. */
int pd_segment_frame_check(const pd_segment_frame *frame, const pd_segment_settings *s,
                           pd_error *err);

/* Segments `frame`. `flat` (may be NULL) is the flat-field (background)
 * image: same width, height and bytes per pixel as the frame. On success
 * fills *out (free with pd_segment_result_free); on failure *out is empty.
 * Errors: PD_EINVAL (settings; zero size; bits outside the storage; a pixel
 * above 2^bits - 1; flat field of another size or depth), PD_ELIMIT (frame
 * over max_frame_pixels), PD_ENOMEM, PD_EINTERNAL (a leptonica call failed). */
int pd_segment_run(const pd_segment_frame *frame, const pd_segment_frame *flat,
                   const pd_segment_settings *s, pd_segment_result *out, pd_error *err);

void pd_segment_result_free(pd_segment_result *r);

/* Sends leptonica's warnings and errors to `fn` (each message one string,
 * leptonica's own text ending in a newline); NULL drops them. Leptonica has
 * one handler per process: call it from main() before segmenting. Until it
 * is called, the first pd_segment_run installs the dropping handler, so
 * leptonica never prints by itself. */
void pd_segment_set_log(void (*fn)(const char *msg));

#endif
