/* kernels/linear.h — fully connected layer with optional ReLU (fc6, fc7, hash, cls).
 *
 * in [B, In]   w [Out, In] (PyTorch layout)   b [Out]   out [B, Out]
 * out = relu ? max(0, in·wᵀ + b) : in·wᵀ + b
 *
 * Backward: dout [B,Out] is CLOBBERED when relu is set (it becomes the pre-ReLU
 * gradient). `out` is the forward output (ReLU mask). dw, db and din are written (=:
 * the layer is their only writer in a step — the classifier's din, dh, is written before
 * J1 adds to it — so the step never zeroes them; B = 0 writes zeros, Out = 0 a zero
 * din); din may be NULL. */
#ifndef DATH_LINEAR_H
#define DATH_LINEAR_H

#include "common.h"

typedef void linear_forward_fn(float *out, const float *in, const float *w, const float *b,
                               int B, int In, int Out, int relu, dath_ctx *ctx);
typedef void linear_backward_fn(float *din, float *dw, float *db, float *dout,
                                const float *in, const float *w, const float *out,
                                int B, int In, int Out, int relu, dath_ctx *ctx);

linear_forward_fn linear_forward_cpu;
linear_backward_fn linear_backward_cpu;
#ifdef DATH_CUDA
linear_forward_fn linear_forward_cuda;
linear_backward_fn linear_backward_cuda;
#endif

#endif
