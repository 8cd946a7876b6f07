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
                         int BC, int H, int W, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        const float *x = in + (size_t)pl * H * W;                   /* [H, W] */
        float *y = out + (size_t)pl * Ho * Wo;                      /* [Ho, Wo] */
        maxpool_arg *ix = idx + (size_t)pl * Ho * Wo;               /* [Ho, Wo] */
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = 0;
                float bv = x[(2 * oy) * W + 2 * ox];
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++) {
                        float v = x[(2 * oy + dy) * W + 2 * ox + dx];
                        if (v > bv || (isnan(v) && !isnan(bv))) { bv = v; best = dy * 3 + dx; }
                    }
                y[oy * Wo + ox] = bv;
                ix[oy * Wo + ox] = (maxpool_arg)best;
            }
    }
}

void maxpool_backward_cpu(float *din, const float *dout, const maxpool_arg *idx,
                          const float *mask, int BC, int H, int W, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const int n = Ho * Wo;
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        float *dx = din + (size_t)pl * H * W;                       /* [H, W] */
        const float *dy = dout + (size_t)pl * n;                    /* [Ho, Wo] */
        const maxpool_arg *ix = idx + (size_t)pl * n;               /* [Ho, Wo] */
        const float *mk = mask ? mask + (size_t)pl * n : NULL;      /* [Ho, Wo] */
        memset(dx, 0, (size_t)H * W * sizeof *dx);                  /* written (=) */
        for (int j = 0; j < n; j++)
            if (!mk || mk[j] > 0.0f) dx[maxpool_arg_at(j / Wo, j % Wo, W, ix[j])] += dy[j];
    }
}

void avgpool_forward_cpu(float *out, const float *in,
                         int BC, int H, int W, int Ho, int Wo, dath_ctx *ctx) {
    if (Ho <= 0 || Wo <= 0) return;
    #pragma omp parallel for schedule(static)
    for (int pl = 0; pl < BC; pl++) {
        const float *x = in + (size_t)pl * H * W;                   /* [H, W] */
        float *y = out + (size_t)pl * Ho * Wo;                      /* [Ho, Wo] */
        for (int oy = 0; oy < Ho; oy++) {
            const int y0 = pool_bin_start(oy, H, Ho), y1 = pool_bin_end(oy, H, Ho);
            for (int ox = 0; ox < Wo; ox++) {
                const int x0 = pool_bin_start(ox, W, Wo), x1 = pool_bin_end(ox, W, Wo);
                double acc = 0.0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) acc += x[(size_t)yy * W + xx];
                y[oy * Wo + ox] = (float)(acc / ((double)(y1 - y0) * (x1 - x0)));
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
