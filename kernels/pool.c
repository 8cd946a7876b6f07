/* kernels/pool.c — plain-C reference of the pools (contract in pool.h).
 * Planes are independent: OpenMP splits them across threads, and within a plane one
 * thread works in a fixed order, so results (the overlapping windows' accumulations
 * in the backward included) do not depend on the thread count.
 *
 * maxpool: a NaN in a window wins over every number (the first NaN, then), so a NaN
 * input propagates as it does in PyTorch. */
#include "pool.h"

#include <math.h>
#include <string.h>

/* PyTorch's adaptive-pool bin [start, end) of output cell i when n cells cover `in`. */
static inline int pool_bin_start(int i, int in, int n) { return (int)(((int64_t)i * in) / n); }
static inline int pool_bin_end(int i, int in, int n) {
    return (int)(((int64_t)(i + 1) * in + n - 1) / n);
}

void maxpool_forward_cpu(float *out, maxpool_arg *idx, const float *in,
                         int BC, int H, int W, int store, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        const size_t x0 = (size_t)pl * H * W, y0 = (size_t)pl * Ho * Wo;   /* in [H, W], out [Ho, Wo] */
        maxpool_arg *ix = idx + y0;                                       /* [Ho, Wo] */
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = 0;
                float bv = dath_load(in, x0 + (size_t)(2 * oy) * W + 2 * ox, store);
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++) {
                        float v = dath_load(in, x0 + (size_t)(2 * oy + dy) * W + 2 * ox + dx, store);
                        if (v > bv || (isnan(v) && !isnan(bv))) { bv = v; best = dy * 3 + dx; }
                    }
                dath_store(out, y0 + (size_t)oy * Wo + ox, bv, store);   /* exact: bv is an input */
                ix[oy * Wo + ox] = (maxpool_arg)best;
            }
    }
}

void maxpool_backward_cpu(float *din, const float *dout, const maxpool_arg *idx,
                          const float *mask, int BC, int H, int W, int store, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const int n = Ho * Wo;
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        const maxpool_arg *ix = idx + (size_t)pl * n;               /* [Ho, Wo] */
        const size_t m0 = (size_t)pl * n, x0 = (size_t)pl * H * W;  /* dout, mask [Ho, Wo]; din [H, W] */
        /* the plane's fp32 sums: din itself, or (bf16) a copy rounded into it at the end */
        float *dx = store == DATH_STORE_BF16 ? malloc((size_t)H * W * sizeof *dx) : din + x0;
        if (!dx) dath_scratch_fail("maxpool_backward_cpu", (size_t)H * W * sizeof *dx, 0, "a bf16 plane's sums");
        memset(dx, 0, (size_t)H * W * sizeof *dx);                  /* written (=) */
        for (int oy = 0, j = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++, j++)
                if (!mask || dath_load(mask, m0 + j, store) > 0.0f)
                    dx[maxpool_arg_at(oy, ox, W, ix[j])] += dath_load(dout, m0 + j, store);
        if (store == DATH_STORE_BF16) {
            for (size_t e = 0; e < (size_t)H * W; e++) dath_store(din, x0 + e, dx[e], store);
            free(dx);
        }
    }
}

void avgpool_forward_cpu(void *out, const float *in,
                         int BC, int H, int W, int Ho, int Wo, int out_store, dath_ctx *ctx) {
    if (Ho <= 0 || Wo <= 0) return;
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        const float *x = in + (size_t)pl * H * W;                   /* [H, W] */
        const size_t y = (size_t)pl * Ho * Wo;                      /* [Ho, Wo] of out */
        for (int oy = 0; oy < Ho; oy++) {
            const int y0 = pool_bin_start(oy, H, Ho), y1 = pool_bin_end(oy, H, Ho);
            for (int ox = 0; ox < Wo; ox++) {
                const int x0 = pool_bin_start(ox, W, Wo), x1 = pool_bin_end(ox, W, Wo);
                double acc = 0.0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) acc += x[(size_t)yy * W + xx];
                dath_store(out, y + oy * Wo + ox, (float)(acc / ((double)(y1 - y0) * (x1 - x0))), out_store);
            }
        }
    }
}

void avgpool_backward_cpu(float *din, const float *dout,
                          int BC, int H, int W, int Ho, int Wo, dath_ctx *ctx) {
    if (BC <= 0 || H <= 0 || W <= 0) return;
    if (Ho <= 0 || Wo <= 0) {   /* no bins: no gradient reaches din */
        memset(din, 0, (size_t)BC * H * W * sizeof *din);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        float *dx = din + (size_t)pl * H * W;                       /* [H, W] */
        const float *dy = dout + (size_t)pl * Ho * Wo;              /* [Ho, Wo] */
        memset(dx, 0, (size_t)H * W * sizeof *dx);                  /* written (=) */
        for (int oy = 0; oy < Ho; oy++) {
            const int y0 = pool_bin_start(oy, H, Ho), y1 = pool_bin_end(oy, H, Ho);
            for (int ox = 0; ox < Wo; ox++) {
                const int x0 = pool_bin_start(ox, W, Wo), x1 = pool_bin_end(ox, W, Wo);
                const float g = (float)(dy[oy * Wo + ox] / ((double)(y1 - y0) * (x1 - x0)));
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) dx[(size_t)yy * W + xx] += g;
            }
        }
    }
}
