/* kernels/conv.h — 2-D convolution with bias and optional ReLU (AlexNet's features.*).
 *
 * in  [B, Ci, H, W]      w [Co, Ci, k, k] (PyTorch layout)      b [Co]
 * out [B, Co, Ho, Wo]    Ho = (H + 2*pad - k)/stride + 1 (floor), likewise Wo
 * out = relu ? max(0, conv(in, w) + b) : conv(in, w) + b
 *
 * Backward: dout [B,Co,Ho,Wo] is CLOBBERED (on return it holds the gradient before
 * the ReLU when relu is set). `out` is the forward output (its sign is the ReLU mask).
 * dw, db and din accumulate (+=); din may be NULL (the image needs no gradient).
 * Scratch: conv2d_work_bytes(s) is the batched im2col size, (Ci·k·k + Co)·B·Ho·Wo
 * floats (columns and a channel-major staging buffer for the whole batch). The CUDA
 * version needs ctx->work that large; the CPU reference uses ctx->work when it holds
 * at least one image (chunking the batch to fit), else allocates its own chunk.
 *
 * Several convolutions of one input (DATH's two streams both read the image):
 *   conv2d_forward_multi(out, in, w, b, nw, s, relu, ctx)
 *   conv2d_backward_multi(din, dw, db, dout, in, w, out, nw, s, relu, ctx)
 * do what nw calls of conv2d_forward / conv2d_backward with out[j], w[j], b[j] (and
 * dw[j], db[j], dout[j]) do, j < nw, all with the same shape s and the same `in`; din
 * (when not NULL) accumulates the sum of the nw input gradients. out, w, b, dw, db and
 * dout are HOST arrays of nw backend pointers; each dout[j] is clobbered as above.
 * nw runs from 1 to CONV_MULTI_MAX (a call outside it is a programming error: both
 * versions abort with a message). The im2col of a chunk of images is made once
 * for all nw weight sets; on CUDA the nw products with it are one strided-batched GEMM
 * where the weight (forward) or weight-gradient (backward) pointers are evenly spaced.
 * Scratch: conv2d_work_bytes_multi(s, nw) = (Ci·k·k + nw·Co)·B·Ho·Wo floats (one col
 * and nw staging buffers for the whole batch); a smaller ctx->work is used in chunks,
 * as above. With nw = 1 these are conv2d_forward / conv2d_backward exactly. The
 * reference's out, dw, db and dout are bit for bit those of nw single calls that take
 * the batch in the same chunks; din differs by rounding (the nw column gradients are
 * summed before one col2im), and the CUDA GEMMs by cuBLAS's order of summation. */
#ifndef DATH_CONV_H
#define DATH_CONV_H

#include "common.h"

typedef struct conv2d_shape {
    int B, Ci, H, W;     /* input */
    int Co, k, stride, pad;
    int Ho, Wo;          /* output, filled by conv2d_make_shape */
} conv2d_shape;

/* Most weight sets one conv2d_*_multi call takes. */
#define CONV_MULTI_MAX 4

/* Fills Ho/Wo. Returns a shape with Ho = Wo = 0 when the input is too small. */
conv2d_shape conv2d_make_shape(int B, int Ci, int H, int W, int Co, int k, int stride, int pad);
size_t conv2d_work_bytes(const conv2d_shape *s);
size_t conv2d_work_bytes_multi(const conv2d_shape *s, int nw);

typedef void conv2d_forward_fn(float *out, const float *in, const float *w, const float *b,
                               const conv2d_shape *s, int relu, dath_ctx *ctx);
typedef void conv2d_backward_fn(float *din, float *dw, float *db, float *dout,
                                const float *in, const float *w, const float *out,
                                const conv2d_shape *s, int relu, dath_ctx *ctx);
typedef void conv2d_forward_multi_fn(float *const *out, const float *in, const float *const *w,
                                     const float *const *b, int nw, const conv2d_shape *s,
                                     int relu, dath_ctx *ctx);
typedef void conv2d_backward_multi_fn(float *din, float *const *dw, float *const *db,
                                      float *const *dout, const float *in,
                                      const float *const *w, const float *const *out, int nw,
                                      const conv2d_shape *s, int relu, dath_ctx *ctx);

conv2d_forward_fn conv2d_forward_cpu;
conv2d_backward_fn conv2d_backward_cpu;
conv2d_forward_multi_fn conv2d_forward_multi_cpu;
conv2d_backward_multi_fn conv2d_backward_multi_cpu;
#ifdef DATH_CUDA
conv2d_forward_fn conv2d_forward_cuda;
conv2d_backward_fn conv2d_backward_cuda;
conv2d_forward_multi_fn conv2d_forward_multi_cuda;
conv2d_backward_multi_fn conv2d_backward_multi_cuda;
#endif

#endif
