/* pd_cpu_ops: the CPU arithmetic of each layer kind, on NHWC maps with the
 * views of one image adjacent ([image][view][h][w][c]). Pure functions over
 * caller-owned buffers: nothing here allocates, locks or keeps state, so the
 * backend may call them from any number of threads. */
#ifndef PD_CPU_OPS_H
#define PD_CPU_OPS_H

#include <stddef.h>

#include "pd_graph.h"

/* Convolution of `images` images of layer->in (all views), output layer->out.
 * col is scratch of col_cap floats (at least the layer's pd_cpu_conv_col_rows() * K). */
void pd_cpu_conv(const pd_layer *layer, int images, const float *in, float *out, float *col,
                 size_t col_cap);
/* Rows of the im2col block the conv uses given col_cap floats (0 if a 1x1 conv needs none). */
size_t pd_cpu_conv_col_floats(const pd_layer *layer, size_t max_block_bytes);

/* Dense over rows = images * views; input rows flattened h*w*c (already in HWC order). */
void pd_cpu_dense(const pd_layer *layer, int images, const float *in, float *out);

void pd_cpu_bias_act(float *x, size_t rows, int cols, const float *bias, pd_activation act,
                     float slope);
void pd_cpu_leaky_relu(float *x, size_t n, float slope);
void pd_cpu_maxpool(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_cyclic_slice(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_cyclic_roll(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_cyclic_pool(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_maxout(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_global_avg_pool(const pd_layer *layer, int images, const float *in, float *out);
void pd_cpu_softmax(float *x, size_t rows, int cols);

/* Runs any layer (dispatch on kind). Layers that work in place (leaky ReLU,
 * dropout, softmax) may get in == out. Returns 1 if the result is in `in`
 * (in-place layer), 0 if it is in `out`. */
int pd_cpu_layer_forward(const pd_layer *layer, int images, float *in, float *out, float *col,
                         size_t col_cap);

#endif
