/* kernels/fusion.h — dropout and the fc7 fusion of the two streams.
 *
 * Dropout (inverted, drop probability p): y = x * keep / (1 - p), where keep for
 * element (i, j) of x [B, D] is rng_keep(seed, tag, *step, sample0 + i, j, p) from
 * kernels/rng.h. The mask is never stored: the backward regenerates it.
 * `step` is a 1-element backend buffer (host memory on the CPU, device memory on
 * CUDA), read when the op runs, not when it is called: a captured CUDA graph replays
 * the same call while the host advances *step between replays.
 * `tag` is RNG_DROPOUT + 2*stream + layer; `sample0` is the global index of row 0
 * (so a run gives the same masks whatever the number of GPUs).
 * y and x may alias (in place). Backward: dx = dy * keep / (1 - p), written (=: in
 * DATH a dropout is its input gradient's only writer, so the step never zeroes it).
 *
 * The forward's store (DATH_STORE_*, common.h) is how x and y are stored, fp32 or bf16
 * (the fc layers' inputs with bf16 storage, linear.h): a bf16 y is the fp32 product x·scale
 * rounded once. The gradients dx and dy are fp32.
 *
 * Fusion: f [B,D] = relu(a) + relu(b); b == NULL means one stream, f = relu(a).
 * Backward: da = df * (a > 0), db = df * (b > 0), written (=, the streams' fc7 output
 * gradients have no other writer; db ignored when b is NULL). */
#ifndef DATH_FUSION_H
#define DATH_FUSION_H

#include "common.h"

typedef void dropout_forward_fn(void *y, const void *x, int B, int D, float p,
                                uint64_t seed, uint32_t tag, const uint32_t *step,
                                uint32_t sample0, int store, dath_ctx *ctx);
typedef void dropout_backward_fn(float *dx, const float *dy, int B, int D, float p,
                                 uint64_t seed, uint32_t tag, const uint32_t *step,
                                 uint32_t sample0, dath_ctx *ctx);
typedef void fuse_forward_fn(float *f, const float *a, const float *b, size_t n,
                             dath_ctx *ctx);
typedef void fuse_backward_fn(float *da, float *db, const float *df, const float *a,
                              const float *b, size_t n, dath_ctx *ctx);

dropout_forward_fn dropout_forward_cpu;
dropout_backward_fn dropout_backward_cpu;
fuse_forward_fn fuse_forward_cpu;
fuse_backward_fn fuse_backward_cpu;
#ifdef DATH_CUDA
dropout_forward_fn dropout_forward_cuda;
dropout_backward_fn dropout_backward_cuda;
fuse_forward_fn fuse_forward_cuda;
fuse_backward_fn fuse_backward_cuda;
#endif

#endif
