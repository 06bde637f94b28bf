/* pc_cli_segment: the `segment` command: whole camera frames (files,
 * folders, `-` for paths on stdin, as classify takes them) sent one at a
 * time as FrameRequests; one row per object found (its box, area, shape and
 * gray features, its best classes) in table, csv, tsv or json; --save-crops
 * writes the crop each object was classified on as PNG; errors per frame on
 * stderr, the progress line, classify's exit codes. */
#include <errno.h>
#include <getopt.h>
#include <png.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_cli_args.h"
#include "pc_cli_json.h"
#include "pc_cli_out.h"
#include "pc_cli_pipe.h"
#include "pc_cli_png.h"
#include "pc_cli_progress.h"
#include "pc_cli_retry.h"
#include "pc_cli_segment_ecotaxa.h"
#include "pc_cli_walk.h"
#include "pd_csv.h"

#define DEFAULT_MAX_FILE ((16u << 20) - 1024u) /* the daemon's default frame limit */

void pc_cli_segment_usage(const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s [GLOBAL OPTIONS] segment [OPTIONS] FRAME...\n"
          "\n"
          "Sends whole camera frames (PNG, JPEG or TIFF; a 16-bit gray PNG keeps its\n"
          "depth) to planktond, which finds every organism in each, cuts its crop and\n"
          "classifies it;\n"
          "writes one line per object. FRAME is a file, a directory (walked as classify walks\n"
          "it) or - to read one path per line from standard input.\n"
          "\n"
          "Options:\n"
          "  -j, --jobs N            frames in flight on the connection (default 2)\n"
          "  -u, --completion-order  write a frame's lines as its answer arrives (default:\n"
          "                          in input order)\n"
          "  -k, --top N             classes per object, best first (default 1)\n"
          "      --tta N             test-time augmentation transforms (default: the model's)\n"
          "      --model NAME        a model the daemon serves (default: its default model)\n"
          "  -f, --format FMT        table (default), csv, tsv, json (JSON Lines) or ecotaxa\n"
          "  -o, --output FILE       write there instead of standard output (ecotaxa:\n"
          "                          DIR/ecotaxa_NAME.tsv, with the crops beside it)\n"
          "      --save-crops DIR    write each object's crop (what the model saw) as\n"
          "                          DIR/FRAMENAME_OBJECT.png (DIR is created)\n"
          "      --threshold T       darker than background x (1 - T) is an object (default 0.1)\n"
          "      --min-area N        smaller objects dropped (pixels, default 16)\n"
          "      --max-area N        larger objects dropped (pixels, default 4194304)\n"
          "      --padding N         crop margin around the object (pixels, default 10)\n"
          "      --max-objects N     the largest N kept per frame (default 1000)\n"
          "      --bits N            significant bits of 16-bit PNG frames (default 16)\n"
          "      --drop-edge         drop objects touching the frame's edge (default: kept)\n"
          "      --background M      column-median (default; line-scan shadowgraphs) or morph\n"
          "      --flat-field FILE   the frames' flat field (same size and depth as they are),\n"
          "                          sent once: the daemon keeps it for the other frames\n"
          "      --max-file-size N   larger files fail without being sent (default 16M-1K)\n"
          "      --progress, --no-progress\n"
          "                          progress line on stderr (default: when stderr is a terminal)\n"
          "      --retry-for SEC     on a lost connection, reconnect and resend (default 30)\n"
          "  -h, --help              this help\n"
          "\n"
          "csv/tsv write a header: frame,object,x,y,width,height,area,centroid_x,centroid_y,\n"
          "major_axis,minor_axis,orientation,mean_gray,min_gray,label,probability (k = 1) or\n"
          "label_1,probability_1,...,label_k,probability_k (k > 1); x,y,width,height is the\n"
          "object's tight box in frame pixels. A frame with no object writes no line.\n"
          "ecotaxa: EcoTaxa's import TSV (BOM, header and type rows) with one row per\n"
          "object: img_file_name (its crop, written as OBJECT_ID.png beside the TSV),\n"
          "object_id (the frame's path below the folder holding every FRAME, '/' as __,\n"
          "then _INDEX), object_frame, the top\n"
          "class as object_annotation_category (status predicted) and object_score, and\n"
          "the box, area, centroid, axes, angle, mean and min gray as [f] columns.\n"
          "A frame that fails gets its message on stderr and the run goes on.\n"
          "Exit: 0 all frames answered, 1 some failed, 2 usage, 3 daemon unreachable or lost.\n",
          prog);
}

typedef struct seg_ctx {
  const char *prog;
  FILE *f;
  pc_cli_format format;
  unsigned top_k;
  const char *crops_dir;
  pc_cli_segeco *eco; /* format ecotaxa */
  pc_cli_progress progress;
  bool unflushed;
  long frames_ok, frames_failed, objects;
} seg_ctx;

static void field(const seg_ctx *x, const char *s) {
  if (x->format == PC_CLI_FORMAT_CSV)
    pd_csv_field(x->f, s);
  else
    pc_cli_out_tsv_field(x->f, s);
}

static void header(const seg_ctx *x) {
  if (x->format != PC_CLI_FORMAT_CSV && x->format != PC_CLI_FORMAT_TSV) return;
  const char sep = x->format == PC_CLI_FORMAT_CSV ? ',' : '\t';
  static const char *const cols[] = {"frame",      "object",     "x",          "y",
                                     "width",      "height",     "area",       "centroid_x",
                                     "centroid_y", "major_axis", "minor_axis", "orientation",
                                     "mean_gray",  "min_gray"};
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
    fprintf(x->f, "%s%s", i ? (sep == ',' ? "," : "\t") : "", cols[i]);
  if (x->top_k <= 1)
    fprintf(x->f, "%clabel%cprobability", sep, sep);
  else
    for (unsigned k = 1; k <= x->top_k; k++)
      fprintf(x->f, "%clabel_%u%cprobability_%u", sep, k, sep, k);
  fputc('\n', x->f);
}

static void row(const seg_ctx *x, const char *path, size_t i, const pc_client_frame_object *o) {
  FILE *f = x->f;
  switch (x->format) {
  case PC_CLI_FORMAT_TABLE:
    fprintf(f, "%s  %zu  %u,%u %ux%u  area %llu", path, i, o->x, o->y, o->width, o->height,
            (unsigned long long)o->area);
    for (size_t k = 0; k < o->n_top && k < x->top_k; k++)
      fprintf(f, "  %s %.4f", o->top[k].label, (double)o->top[k].probability);
    fputc('\n', f);
    break;
  case PC_CLI_FORMAT_CSV:
  case PC_CLI_FORMAT_TSV: {
    const char sep = x->format == PC_CLI_FORMAT_CSV ? ',' : '\t';
    field(x, path);
    fprintf(f, "%c%zu%c%u%c%u%c%u%c%u%c%llu%c%.6g%c%.6g%c%.6g%c%.6g%c%.6g%c%.6g%c%u", sep, i, sep,
            o->x, sep, o->y, sep, o->width, sep, o->height, sep, (unsigned long long)o->area, sep,
            o->centroid_x, sep, o->centroid_y, sep, o->major_axis, sep, o->minor_axis, sep,
            o->orientation_deg, sep, o->mean_gray, sep, o->min_gray);
    for (size_t k = 0; k < x->top_k; k++) {
      fputc(sep, f);
      if (k < o->n_top) {
        field(x, o->top[k].label);
        fprintf(f, "%c%.9g", sep, (double)o->top[k].probability);
      } else {
        fputc(sep, f);
      }
    }
    fputc('\n', f);
    break;
  }
  default: /* json */
    fputs("{\"frame\":", f);
    pc_cli_json_string(f, path);
    fprintf(f,
            ",\"object\":%zu,\"x\":%u,\"y\":%u,\"width\":%u,\"height\":%u,\"area\":%llu,"
            "\"centroid_x\":",
            i, o->x, o->y, o->width, o->height, (unsigned long long)o->area);
    pc_cli_json_double(f, o->centroid_x);
    fputs(",\"centroid_y\":", f);
    pc_cli_json_double(f, o->centroid_y);
    fputs(",\"major_axis\":", f);
    pc_cli_json_double(f, o->major_axis);
    fputs(",\"minor_axis\":", f);
    pc_cli_json_double(f, o->minor_axis);
    fputs(",\"orientation\":", f);
    pc_cli_json_double(f, o->orientation_deg);
    fputs(",\"mean_gray\":", f);
    pc_cli_json_double(f, o->mean_gray);
    fprintf(f, ",\"min_gray\":%u", o->min_gray);
    pc_cli_out_json_top(f, o->top, o->n_top, x->top_k);
    fputs("}\n", f);
    break;
  }
}

/* DIR/NAME_OBJECT.png, NAME the frame's file name without its extension. */
static int save_crop(const seg_ctx *x, const char *path, size_t i, const pc_client_frame_object *o,
                     pc_cli_error *err) {
  if (!o->crop || o->crop_len != (size_t)o->crop_width * o->crop_height)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: object %zu: the answer has no crop", path, i);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
  char out[4096];
  int n = snprintf(out, sizeof out, "%s/%.*s_%zu.png", x->crops_dir, stem, base, i);
  if (n < 0 || (size_t)n >= sizeof out)
    return pc_cli_fail(err, PC_CLI_EXIT_FAILED, "%s: crop path too long", path);
  int rc = pc_cli_png_write_gray(out, o->crop_width, o->crop_height, o->crop, err);
  if (rc != PC_CLI_EXIT_OK) return pc_cli_fail(err, rc, "--save-crops: %s", err->msg);
  return PC_CLI_EXIT_OK;
}

/* One frame's result from the pipe: its rows (and crops) written, or its
 * error on stderr; counted either way. */
static void on_result(void *arg, const pc_cli_result *r) {
  seg_ctx *x = arg;
  pc_cli_error err;
  const char *msg = r->error;
  int rc = PC_CLI_EXIT_OK;
  if (!msg) {
    const pc_client_frame_result *fr = &r->resp->u.frame;
    if (x->eco) rc = pc_cli_segeco_frame(x->eco, x->f, r->path, fr, &err);
    for (size_t i = 0; i < fr->n_objects && rc == PC_CLI_EXIT_OK; i++) {
      if (!x->eco) row(x, r->path, i, &fr->objects[i]);
      if (x->crops_dir) rc = save_crop(x, r->path, i, &fr->objects[i], &err);
    }
    if (rc != PC_CLI_EXIT_OK) msg = err.msg;
    x->objects += (long)fr->n_objects;
  }
  if (msg) {
    pc_cli_progress_clear(&x->progress);
    fprintf(stderr, "%s: %s\n", x->prog, msg);
    x->frames_failed++;
  } else {
    x->frames_ok++;
    x->unflushed = true;
  }
  pc_cli_progress_count(&x->progress, msg != NULL);
  pc_cli_progress_draw(&x->progress);
}

static void before_wait(void *arg) {
  seg_ctx *x = arg;
  if (x->unflushed) fflush(x->f);
  x->unflushed = false;
  pc_cli_progress_draw(&x->progress);
}

/* The frames: the walk's paths. */
static int walk_next(void *ctx, const char **path, long *tag, pc_cli_error *err) {
  *tag = 0;
  int rc = pc_cli_walk_next(ctx, path, err);
  return rc == PC_CLI_WALK_WAIT ? PC_CLI_SOURCE_WAIT : rc;
}

static int walk_wait_fd(void *ctx) {
  return pc_cli_walk_wait_fd(ctx);
}

enum {
  OPT_TTA = 256,
  OPT_MODEL,
  OPT_SAVE_CROPS,
  OPT_THRESHOLD,
  OPT_MIN_AREA,
  OPT_MAX_AREA,
  OPT_PADDING,
  OPT_MAX_OBJECTS,
  OPT_DROP_EDGE,
  OPT_BITS,
  OPT_BACKGROUND,
  OPT_FLAT_FIELD,
  OPT_MAX_FILE,
  OPT_PROGRESS,
  OPT_NO_PROGRESS,
  OPT_RETRY_FOR
};

static const struct option k_longs[] = {{"jobs", required_argument, NULL, 'j'},
                                        {"completion-order", no_argument, NULL, 'u'},
                                        {"top", required_argument, NULL, 'k'},
                                        {"tta", required_argument, NULL, OPT_TTA},
                                        {"model", required_argument, NULL, OPT_MODEL},
                                        {"format", required_argument, NULL, 'f'},
                                        {"output", required_argument, NULL, 'o'},
                                        {"save-crops", required_argument, NULL, OPT_SAVE_CROPS},
                                        {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                        {"min-area", required_argument, NULL, OPT_MIN_AREA},
                                        {"max-area", required_argument, NULL, OPT_MAX_AREA},
                                        {"padding", required_argument, NULL, OPT_PADDING},
                                        {"max-objects", required_argument, NULL, OPT_MAX_OBJECTS},
                                        {"drop-edge", no_argument, NULL, OPT_DROP_EDGE},
                                        {"bits", required_argument, NULL, OPT_BITS},
                                        {"background", required_argument, NULL, OPT_BACKGROUND},
                                        {"flat-field", required_argument, NULL, OPT_FLAT_FIELD},
                                        {"max-file-size", required_argument, NULL, OPT_MAX_FILE},
                                        {"progress", no_argument, NULL, OPT_PROGRESS},
                                        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                        {"retry-for", required_argument, NULL, OPT_RETRY_FOR},
                                        {"help", no_argument, NULL, 'h'},
                                        {0, 0, 0, 0}};

typedef struct seg_opts {
  long jobs, top, tta, min_area, max_area, padding, max_objects, bits;
  bool completion;
  double threshold, retry_for;
  int progress, background;
  bool drop_edge;
  const char *model, *output, *crops_dir, *flat_field;
  uint8_t *flat; /* --flat-field's bytes, read before anything is sent */
  size_t flat_len;
  uint64_t max_file;
  pc_cli_format format;
} seg_opts;

static int parse_threshold(const char *s, double *out, pc_cli_error *err) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0 && v < 1))
    return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--threshold: '%s' is not a number in (0, 1)", s);
  *out = v;
  return PC_CLI_EXIT_OK;
}

static int parse_opts(const pc_cli_global *g, int argc, char **argv, seg_opts *o,
                      pc_cli_error *err) {
  int rc = PC_CLI_EXIT_OK, c;
  optind = 0;
  opterr = 0;
  while (rc == PC_CLI_EXIT_OK &&
         (c = getopt_long(argc, argv, ":j:uk:f:o:h", k_longs, NULL)) != -1) {
    switch (c) {
    case 'j':
      rc = pc_cli_parse_int("--jobs", optarg, 1, 1024, &o->jobs, err);
      break;
    case 'u':
      o->completion = true;
      break;
    case 'k':
      rc = pc_cli_parse_int("--top", optarg, 1, 100000, &o->top, err);
      break;
    case OPT_TTA:
      rc = pc_cli_parse_int("--tta", optarg, 0, 100000, &o->tta, err);
      break;
    case OPT_MODEL:
      o->model = optarg;
      break;
    case 'f':
      rc = pc_cli_format_parse(optarg, &o->format, err);
      break;
    case 'o':
      o->output = optarg;
      break;
    case OPT_SAVE_CROPS:
      o->crops_dir = optarg;
      break;
    case OPT_THRESHOLD:
      rc = parse_threshold(optarg, &o->threshold, err);
      break;
    case OPT_MIN_AREA:
      rc = pc_cli_parse_int("--min-area", optarg, 1, 1L << 31, &o->min_area, err);
      break;
    case OPT_MAX_AREA:
      rc = pc_cli_parse_int("--max-area", optarg, 1, 1L << 31, &o->max_area, err);
      break;
    case OPT_PADDING:
      rc = pc_cli_parse_int("--padding", optarg, 1, 1024, &o->padding, err);
      break;
    case OPT_MAX_OBJECTS:
      rc = pc_cli_parse_int("--max-objects", optarg, 1, 1000000, &o->max_objects, err);
      break;
    case OPT_DROP_EDGE:
      o->drop_edge = true;
      break;
    case OPT_BITS:
      rc = pc_cli_parse_int("--bits", optarg, 1, 16, &o->bits, err);
      break;
    case OPT_BACKGROUND:
      if (!strcmp(optarg, "column-median"))
        o->background = 1;
      else if (!strcmp(optarg, "morph"))
        o->background = 2;
      else
        rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--background: '%s' is not column-median or morph",
                         optarg);
      break;
    case OPT_FLAT_FIELD:
      o->flat_field = optarg;
      break;
    case OPT_MAX_FILE:
      rc = pc_cli_parse_bytes("--max-file-size", optarg, &o->max_file, err);
      break;
    case OPT_PROGRESS:
      o->progress = 1;
      break;
    case OPT_NO_PROGRESS:
      o->progress = 0;
      break;
    case OPT_RETRY_FOR:
      rc = pc_cli_retry_parse(optarg, &o->retry_for, err);
      break;
    case 'h':
      pc_cli_segment_usage(g->prog, stdout);
      return -1;
    default:
      return -2 - pc_cli_bad_option(g->prog, "segment", c, argv);
    }
  }
  return rc;
}

/* FILE's bytes (malloc'ed), at most max bytes. */
static int read_flat_field(const char *path, uint64_t max, uint8_t **out, size_t *len,
                           pc_cli_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--flat-field %s: %s", path, strerror(errno));
  uint8_t *buf = NULL;
  size_t n = 0, cap = 0;
  int rc = PC_CLI_EXIT_OK;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 1 << 16;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) {
        rc = pc_cli_fail(err, PC_CLI_EXIT_FAILED, "--flat-field %s: out of memory", path);
        break;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n > max) {
      rc =
          pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--flat-field %s: larger than --max-file-size (%llu)",
                      path, (unsigned long long)max);
      break;
    }
    if (got == 0) {
      if (ferror(f)) rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--flat-field %s: read error", path);
      break;
    }
  }
  fclose(f);
  if (rc == PC_CLI_EXIT_OK && n == 0)
    rc = pc_cli_fail(err, PC_CLI_EXIT_USAGE, "--flat-field %s: empty file", path);
  if (rc != PC_CLI_EXIT_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return PC_CLI_EXIT_OK;
}

static int run(const pc_cli_global *g, const seg_opts *o, char **paths, int n_paths, seg_ctx *x,
               pc_client *client, pc_cli_error *err) {
  uint8_t *flat = o->flat;
  size_t flat_len = o->flat_len;
  pc_client_image flat_image = {.format = PC_CLIENT_IMAGE_AUTO,
                                .data = flat,
                                .len = flat_len,
                                .significant_bits = (uint32_t)o->bits};
  pc_client_frame_request rq = {
      .model = o->model,
      .image = {.format = PC_CLIENT_IMAGE_AUTO, .significant_bits = (uint32_t)o->bits},
      .threshold = (float)o->threshold,
      .min_area = (uint32_t)o->min_area,
      .max_area = (uint32_t)o->max_area,
      .padding = (uint32_t)o->padding,
      .edge_objects = o->drop_edge ? 2 : 0,
      .max_objects = (uint32_t)o->max_objects,
      .background_method = o->background,
      .top_k = (uint32_t)o->top,
      .tta = (uint32_t)o->tta,
      .return_crops = o->crops_dir != NULL || o->format == PC_CLI_FORMAT_ECOTAXA,
      .background = flat ? &flat_image : NULL,
      .background_id = flat ? "plankton-client flat field" : NULL};
  bool show = o->progress < 0 ? isatty(STDERR_FILENO) : o->progress == 1;
  pc_cli_progress_init(&x->progress, show, stderr, show ? pc_cli_walk_count(paths, n_paths) : -1);
  pc_cli_walk *walk = NULL;
  int rc = pc_cli_walk_open(paths, n_paths, STDIN_FILENO, &walk, err);
  if (rc == PC_CLI_EXIT_OK) {
    pc_cli_source src = {.ctx = walk, .next = walk_next, .wait_fd = walk_wait_fd};
    pc_cli_pipe_options po = {.window = (int)o->jobs,
                              .completion_order = o->completion,
                              .timeout_ms = g->timeout_ms,
                              .max_file_bytes = o->max_file,
                              .frame = &rq,
                              .on_result = on_result,
                              .before_wait = before_wait,
                              .ctx = x};
    pc_cli_pipe_counts counts = {0};
    rc = pc_cli_pipe_run(client, &po, &src, &counts, err);
    if (rc < 0) rc = PC_CLI_EXIT_FAILED;
  }
  pc_cli_progress_finish(&x->progress);
  pc_cli_walk_free(walk);
  return rc;
}

int pc_cli_segment_main(const pc_cli_global *g, int argc, char **argv) {
  seg_opts o = {.jobs = 2,
                .top = 1,
                .retry_for = PC_CLI_RETRY_DEFAULT_S,
                .progress = -1,
                .max_file = DEFAULT_MAX_FILE,
                .format = PC_CLI_FORMAT_TABLE};
  pc_cli_error err;
  int rc = parse_opts(g, argc, argv, &o, &err);
  if (rc == -1) return PC_CLI_EXIT_OK;
  if (rc < -1) return -2 - rc;
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: segment: %s\n", g->prog, err.msg);
    return rc;
  }
  char **paths = argv + optind;
  int n_paths = argc - optind;
  if (n_paths == 0) {
    fprintf(stderr, "%s: segment: no FRAME given (use - to read paths from standard input)\n",
            g->prog);
    pc_cli_try_help(g->prog, "segment");
    return PC_CLI_EXIT_USAGE;
  }
  if (o.crops_dir && mkdir(o.crops_dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "%s: --save-crops %s: %s\n", g->prog, o.crops_dir, strerror(errno));
    return PC_CLI_EXIT_USAGE;
  }
  if (o.flat_field &&
      (rc = read_flat_field(o.flat_field, o.max_file, &o.flat, &o.flat_len, &err)) != 0) {
    fprintf(stderr, "%s: segment: %s\n", g->prog, err.msg);
    return rc;
  }
  pc_cli_segeco *eco = NULL;
  if (o.format == PC_CLI_FORMAT_ECOTAXA &&
      (rc = pc_cli_segeco_open(o.output, paths, n_paths, (unsigned)o.top, &eco, &err)) !=
          PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: segment: %s\n", g->prog, err.msg);
    free(o.flat);
    return rc;
  }
  pc_client *client = NULL;
  rc = pc_cli_connect(g, (int)o.jobs, &client, &err);
  if (rc == PC_CLI_EXIT_OK && (rc = pc_cli_retry_apply(client, o.retry_for, &err)) != 0) {
    pc_client_close(client);
    client = NULL;
  }
  if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    pc_cli_segeco_free(eco);
    free(o.flat);
    return rc;
  }
  FILE *out = stdout;
  if (o.output && !(out = fopen(o.output, "w"))) {
    fprintf(stderr, "%s: --output %s: %s\n", g->prog, o.output, strerror(errno));
    pc_client_close(client);
    pc_cli_segeco_free(eco);
    free(o.flat);
    return PC_CLI_EXIT_USAGE;
  }
  seg_ctx x = {.prog = g->prog,
               .f = out,
               .format = o.format,
               .top_k = (unsigned)o.top,
               .crops_dir = o.crops_dir,
               .eco = eco};
  if (eco)
    pc_cli_segeco_header(eco, out);
  else
    header(&x);
  rc = run(g, &o, paths, n_paths, &x, client, &err);
  free(o.flat);
  o.flat = NULL;
  int werr = ferror(out) || fflush(out) != 0 ? (errno ? errno : EIO) : 0;
  if (out != stdout && fclose(out) != 0 && !werr) werr = errno ? errno : EIO;
  long total = x.frames_ok + x.frames_failed;
  if (werr) {
    fprintf(stderr, "%s: segment: writing %s: %s\n", g->prog,
            o.output ? o.output : "standard output", strerror(werr));
    rc = PC_CLI_EXIT_FAILED;
  } else if (rc == PC_CLI_EXIT_DAEMON) {
    pc_cli_explain(g, &err);
    fprintf(stderr, "%s: %s; %ld frames answered, the rest not sent\n", g->prog, err.msg,
            x.frames_ok);
  } else if (rc != PC_CLI_EXIT_OK) {
    fprintf(stderr, "%s: %s\n", g->prog, err.msg);
    rc = PC_CLI_EXIT_FAILED;
  } else if (total == 0) {
    fprintf(stderr, "%s: segment: no image files found in the given paths\n", g->prog);
    rc = PC_CLI_EXIT_FAILED;
  } else if (x.frames_failed) {
    fprintf(stderr, "%s: %ld of %ld frame%s failed\n", g->prog, x.frames_failed, total,
            total == 1 ? "" : "s");
    rc = PC_CLI_EXIT_FAILED;
  }
  pc_cli_retry_report(g->prog, client, stderr);
  pc_client_close(client);
  pc_cli_segeco_free(eco);
  return rc;
}
