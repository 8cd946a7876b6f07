/* kernels/linear.h — fully connected layer with optional ReLU (fc6, fc7, hash, cls).
 *
 * in [B, In]   w [Out, In] (PyTorch layout)   b [Out]   out [B, Out]
 * out = relu ? max(0, in·wᵀ + b) : in·wᵀ + b
 *
 * Backward: dout [B,Out] is CLOBBERED when relu is set (it becomes the pre-ReLU
 * gradient). `out` is the forward output (ReLU mask). dw, db and din are written (=:
 * the layer is their only writer in a step — the classifier's din, dh, is written before
 * J1 adds to it — so the step never zeroes them; B = 0 writes zeros, Out = 0 a zero
 * din); din may be NULL.
 *
 * Storage. st == NULL: every tensor fp32. Otherwise (`--precision bf16` on sm_80+,
 * linear_store_bf16; host/net.c gives it to fc6 and fc7, which hold 95% of the weights):
 *   in [B, In] is stored in bf16, and both GEMMs read st->w16 [Out, In], the bf16 copy of
 *   w that the optimiser keeps (rmsprop.h), instead of w;
 *   out [B, Out] is stored as st->out_store (DATH_STORE_*, common.h); a bf16 out gets the
 *   bias from st->b16 (bf16(b), the copy's: cuBLASLt adds a bias of the output's type), an
 *   fp32 out from b;
 *   the gradients stay fp32 (dout, din, dw, db, every sum in fp32 or double); the backward
 *   masks dout into the scratch (ctx->work, linear_work_bytes), rounded to bf16 once, for
 *   its two GEMMs, and leaves dout itself untouched.
 * The values are those fp32 operands would give with `--precision bf16`'s GEMMs, which
 * round every operand to bf16 anyway; only a bf16 out is rounded where fp32 storage is not. */
#ifndef DATH_LINEAR_H
#define DATH_LINEAR_H

#include "common.h"

typedef struct linear_store {
    const dath_bf16 *w16, *b16;   /* [Out, In], [Out]: the bf16 copies of w and b */
    int out_store;                /* DATH_STORE_* of out */
} linear_store;

typedef void linear_forward_fn(void *out, const void *in, const float *w, const float *b,
                               int B, int In, int Out, int relu, const linear_store *st, dath_ctx *ctx);
typedef void linear_backward_fn(float *din, float *dw, float *db, float *dout,
                                const void *in, const float *w, const void *out,
                                int B, int In, int Out, int relu, const linear_store *st, dath_ctx *ctx);

/* The scratch (ctx->work) a layer needs: with bf16 storage B·Out floats (the backward's
 * bf16 dout; the forward's fp32 product where cuBLASLt declines a bf16 out), else 0. */
size_t linear_work_bytes(int B, int Out, int bf16);
/* 1 when a context stores the fc layers in bf16: precision bf16 on sm_80+ (CUDA). */
int linear_store_bf16(const dath_ctx *ctx);

linear_forward_fn linear_forward_cpu;
linear_backward_fn linear_backward_cpu;
#ifdef DATH_CUDA
linear_forward_fn linear_forward_cuda;
linear_backward_fn linear_backward_cuda;
#endif

#endif
