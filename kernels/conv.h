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
 * at least one image (chunking the batch to fit), else allocates its own chunk. */
#ifndef DATH_CONV_H
#define DATH_CONV_H

#include "common.h"

typedef struct conv2d_shape {
    int B, Ci, H, W;     /* input */
    int Co, k, stride, pad;
    int Ho, Wo;          /* output, filled by conv2d_make_shape */
} conv2d_shape;

/* Fills Ho/Wo. Returns a shape with Ho = Wo = 0 when the input is too small. */
conv2d_shape conv2d_make_shape(int B, int Ci, int H, int W, int Co, int k, int stride, int pad);
size_t conv2d_work_bytes(const conv2d_shape *s);

typedef void conv2d_forward_fn(float *out, const float *in, const float *w, const float *b,
                               const conv2d_shape *s, int relu, dath_ctx *ctx);
typedef void conv2d_backward_fn(float *din, float *dw, float *db, float *dout,
                                const float *in, const float *w, const float *out,
                                const conv2d_shape *s, int relu, dath_ctx *ctx);

conv2d_forward_fn conv2d_forward_cpu;
conv2d_backward_fn conv2d_backward_cpu;
#ifdef DATH_CUDA
conv2d_forward_fn conv2d_forward_cuda;
conv2d_backward_fn conv2d_backward_cuda;
#endif

#endif
