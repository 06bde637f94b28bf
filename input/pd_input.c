#include "pd_input.h"

#include "pd_tta.h"

static const char *format_name(pd_image_format f) {
  return f == PD_IMAGE_PNG    ? "PNG"
         : f == PD_IMAGE_JPEG ? "JPEG"
         : f == PD_IMAGE_TIFF ? "TIFF"
                              : "not PNG, JPEG or TIFF";
}

int pd_input_decode(const pd_input_bytes *in, const pd_image_limits *limits, pd_gray_image *out,
                    int *owned, pd_error *err) {
  *owned = 0;
  out->pixels = NULL;
  out->width = out->height = 0;
  if (in->raw_width > 0 && in->raw_height > 0) {
    out->pixels = (uint8_t *)in->data;
    out->width = in->raw_width;
    out->height = in->raw_height;
    return PD_OK;
  }
  if (in->declared != PD_IMAGE_UNKNOWN) {
    pd_image_format sniffed = pd_image_sniff(in->data, in->len);
    if (sniffed != PD_IMAGE_UNKNOWN && sniffed != in->declared)
      return pd_error_set(err, PD_EINVAL, "image: declared %s but the bytes are %s",
                          format_name(in->declared), format_name(sniffed));
  }
  int rc = pd_image_decode(in->data, in->len, limits, out, err);
  if (rc != PD_OK) {
    pd_error_prefix(err, "image (%zu bytes)", in->len);
    return rc;
  }
  *owned = 1;
  return PD_OK;
}

size_t pd_input_view_floats(const pd_input_desc *d) {
  size_t n = 0;
  for (int b = 0; b < d->n_branches; b++)
    n += pd_input_branch_len(&d->branches[b]);
  return n;
}

void pd_input_layout(const pd_input_desc *d, float *buf, int n_views, float **first) {
  float *at = buf;
  for (int b = 0; b < d->n_branches; b++) {
    first[b] = at;
    at += (size_t)n_views * pd_input_branch_len(&d->branches[b]);
  }
}

void pd_input_fill_view(const pd_input_desc *d, const uint8_t *px, int w, int h,
                        const pd_warp_aug *aug, float *const *slots) {
  for (int b = 0; b < d->n_branches; b++) {
    const pd_input_branch *br = &d->branches[b];
    if (br->kind == PD_INPUT_IMAGE)
      pd_warp_branch(br, d->norm, px, w, h, aug, slots[b]);
    else
      pd_warp_features(br, w, h, slots[b]);
  }
}

int pd_input_fill(const pd_input_desc *d, const uint8_t *px, int w, int h, int n_views,
                  float *const *first, size_t view_stride, pd_error *err) {
  if (n_views < 1 || n_views > PD_TTA_MAX)
    return pd_error_set(err, PD_EINVAL, "tta: count %d out of range 1..%d", n_views, PD_TTA_MAX);
  float *slots[PD_MAX_BRANCHES];
  for (int t = 0; t < n_views; t++) {
    pd_warp_aug aug = pd_tta_transform_at(d->tta, d->symmetry, t);
    for (int b = 0; b < d->n_branches; b++)
      slots[b] =
          first[b] + (size_t)t * (view_stride ? view_stride : pd_input_branch_len(&d->branches[b]));
    pd_input_fill_view(d, px, w, h, t == 0 ? NULL : &aug, slots);
  }
  return PD_OK;
}

int pd_input_prepare(const pd_input_desc *d, const pd_input_bytes *in,
                     const pd_image_limits *limits, int n_views, float *buf, pd_error *err) {
  pd_gray_image img;
  int owned = 0;
  int rc = pd_input_decode(in, limits, &img, &owned, err);
  if (rc != PD_OK) return rc;
  float *first[PD_MAX_BRANCHES];
  pd_input_layout(d, buf, n_views, first);
  rc = pd_input_fill(d, img.pixels, img.width, img.height, n_views, first, 0, err);
  if (owned) pd_gray_image_free(&img);
  return rc;
}
