/* kernels/pool.h — 3×3 stride-2 max-pool and adaptive average pool.
 *
 * Planes: BC = B*C independent H×W planes, in [BC, H, W].
 * maxpool: 3×3 window, stride 2, no padding, floor mode: Ho = (H-3)/2 + 1.
 *   idx [BC, Ho, Wo] (maxpool_arg, one byte) records the argmax's place in its window,
 *   dy*3 + dx (maxpool_arg_at gives its position y*W+x in the plane): a quarter of the
 *   bytes of an int32 position, written by the forward and read by the backward; the
 *   first maximum in row-major window order wins (as PyTorch's CPU kernel).
 * avgpool: adaptive to Ho×Wo with PyTorch's bin edges
 *   start = floor(i*H/Ho), end = ceil((i+1)*H/Ho).
 * Backward: din is written (=): each element gets the sum of the gradients that reach
 * it, in window (bin) order, 0 where none does; the pool is its input gradient's only
 * writer in a step, so the step never zeroes it.
 * maxpool's backward takes mask [BC, Ho, Wo] or NULL: a window's gradient counts only
 * where mask > 0. With the forward's own out as the mask this is the ReLU of the layer
 * below (out of a window = in at its argmax, so in[e] > 0 exactly where a window whose
 * argmax is e has out > 0): din comes out masked, bit for bit what masking it afterwards
 * by in > 0 gives, and that layer's backward can run without its own mask pass.
 * maxpool's store (DATH_STORE_*, common.h) is how its tensors are stored, fp32 or bf16:
 * in and out (forward), dout, mask and din (backward; a gradient is stored as its tensor).
 * A window's max is one of its inputs, so a bf16 out is exact; din is summed in fp32 and
 * rounded once. idx is the byte above in both. avgpool's forward takes the store of its
 * out (in is fp32; fc6's input with bf16 storage, linear.h), its mean rounded once. */
#ifndef DATH_POOL_H
#define DATH_POOL_H

#include "common.h"

static inline int maxpool_out(int H) { return H >= 3 ? (H - 3) / 2 + 1 : 0; }

typedef uint8_t maxpool_arg;   /* the argmax's place in its 3×3 window: dy*3 + dx */
/* The plane position y*W + x of window (oy, ox)'s argmax a. */
static inline int maxpool_arg_at(int oy, int ox, int W, maxpool_arg a) {
    return (2 * oy + a / 3) * W + 2 * ox + a % 3;
}

typedef void maxpool_forward_fn(float *out, maxpool_arg *idx, const float *in,
                                int BC, int H, int W, int store, dath_ctx *ctx);
typedef void maxpool_backward_fn(float *din, const float *dout, const maxpool_arg *idx,
                                 const float *mask, int BC, int H, int W, int store, dath_ctx *ctx);
typedef void avgpool_forward_fn(void *out, const float *in,
                                int BC, int H, int W, int Ho, int Wo, int out_store, dath_ctx *ctx);
typedef void avgpool_backward_fn(float *din, const float *dout,
                                 int BC, int H, int W, int Ho, int Wo, dath_ctx *ctx);

maxpool_forward_fn maxpool_forward_cpu;
maxpool_backward_fn maxpool_backward_cpu;
avgpool_forward_fn avgpool_forward_cpu;
avgpool_backward_fn avgpool_backward_cpu;
#ifdef DATH_CUDA
maxpool_forward_fn maxpool_forward_cuda;
maxpool_backward_fn maxpool_backward_cuda;
avgpool_forward_fn avgpool_forward_cuda;
avgpool_backward_fn avgpool_backward_cuda;
#endif

#endif
