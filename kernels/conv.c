/* kernels/conv.c — plain-C reference of the convolution (contract in conv.h):
 * im2col + OpenBLAS SGEMM.
 *
 * Images are taken in chunks of nb. For one chunk (P = Ho*Wo, R = Ci*k*k):
 *   col   [R, nb*P]    input patches of the chunk's images side by side:
 *                      row (ci*k + ky)*k + kx, column i*P + oy*Wo + ox
 *   stage [Co, nb*P]   the chunk's output (or output gradient), channel-major
 * so that one GEMM covers the whole chunk:
 *   forward   stage = w·col                     then out[b,co,:] = stage[co, i*P:] + b[co]
 *   backward  stage = dout (ReLU-masked), transposed to channel-major
 *             dw    = stage·colᵀ                inner dimension: all pixels of all images
 *                                               (beta 0 for the first chunk, 1 after)
 *             col   = wᵀ·stage                  the column gradient, in col's memory
 *             din   = col2im(col)              (the chunk's din zeroed, then added to)
 * The multi ops (nw weight sets over one input) share the chunk's col: stage becomes
 * nw stages [nw, Co, nb*P], set j's GEMMs read stage j, and the backward sums the nw
 * column gradients in col (set 0 first, GEMM beta = 1 after it) before one col2im.
 * The single ops are the multi code with nw = 1.
 * Everything is in a fixed order and the chunk size depends only on the shape, nw and
 * the scratch given, so a call gives the same result every time.
 *
 * Threads: only the GEMMs are parallel (OpenBLAS's threads). The loops around them are
 * serial on purpose: OpenBLAS's pthreads keep spinning for a while after each GEMM, and
 * an OpenMP region between two GEMMs fights them for the cores — it made AlexNet's
 * five convolutions about 2× slower on the shared 2-core build machine — while im2col
 * and the transposes are a small part of the time.
 *
 * Scratch: col + stage(s). conv2d_work_bytes is what the CUDA version needs to do the
 * batch with one GEMM (conv.h: its col has Ci*k*k padded to conv2d_col_rows, and padded
 * weights), at least this reference's (Ci*k*k + nw*Co)*B*Ho*Wo. This reference uses
 * ctx->work (and clobbers it) when it holds at least one image's col + stages, taking
 * as many images a chunk as fit; otherwise it mallocs a chunk of at most
 * CONV_CHUNK_FLOATS (at least one image) per call. Handing it a
 * ctx->work avoids the per-call allocation, whose fresh pages cost as much as a
 * conv1 GEMM. If even a one-image chunk cannot be allocated: kernels/common.h's scratch
 * policy. */
#include "conv.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cap of a malloc'ed chunk's col + stages, in floats (32 MiB): enough columns (nb*P)
 * for OpenBLAS to run at full speed, little enough to be harmless at batch 128. */
#define CONV_CHUNK_FLOATS ((size_t)8 << 20)

/* Invalid sizes (no channels, k or stride < 1, pad < 0) also give Ho = Wo = 0. */
conv2d_shape conv2d_make_shape(int B, int Ci, int H, int W, int Co, int k, int stride, int pad) {
    conv2d_shape s = { B, Ci, H, W, Co, k, stride, pad, 0, 0, DATH_STORE_F32, DATH_STORE_F32, 0 };
    if (Ci <= 0 || Co <= 0 || k <= 0 || stride <= 0 || pad < 0) return s;
    if (H + 2 * pad < k || W + 2 * pad < k) return s;
    s.Ho = (H + 2 * pad - k) / stride + 1;
    s.Wo = (W + 2 * pad - k) / stride + 1;
    return s;
}

size_t conv2d_work_bytes(const conv2d_shape *s) {
    return conv2d_work_bytes_multi(s, 1);
}

size_t conv2d_work_bytes_multi(const conv2d_shape *s, int nw) {
    size_t Rp = (size_t)conv2d_col_rows(s);
    size_t N = (size_t)s->B * s->Ho * s->Wo;
    return ((Rp + (size_t)nw * s->Co) * N + conv2d_pad_floats(s, nw)) * sizeof(float);
}

/* One chunk's scratch: col [R, nb*P] then nw stages [Co, nb*P], contiguous. */
typedef struct conv_scratch {
    float *owned;   /* malloc'ed block to free, or NULL when col lives in ctx->work */
    float *col;     /* [R, nb*P] */
    float *stage;   /* [nw, Co, nb*P] */
    int nb;
} conv_scratch;

/* Takes ctx->work when one image's col and nw stages fit in it, else mallocs the
 * largest chunk under the cap, halving on failure down to one image; when not even one
 * image's fits, kernels/common.h's scratch policy. */
static void conv_scratch_get(conv_scratch *sc, const conv2d_shape *s, int nw,
                             const dath_ctx *ctx, const char *who) {
    const size_t R = (size_t)s->Ci * s->k * s->k, P = (size_t)s->Ho * s->Wo;
    const size_t per_image = (R + (size_t)nw * s->Co) * P;          /* floats */
    size_t nb;
    sc->owned = NULL;
    if (ctx && ctx->work && ctx->work_bytes / sizeof(float) >= per_image) {
        nb = ctx->work_bytes / sizeof(float) / per_image;
        if (nb > (size_t)s->B) nb = (size_t)s->B;
        sc->col = ctx->work;
    } else {
        nb = CONV_CHUNK_FLOATS / per_image;
        if (nb < 1) nb = 1;
        if (nb > (size_t)s->B) nb = (size_t)s->B;
        for (;;) {
            sc->owned = malloc(nb * per_image * sizeof(float));
            if (sc->owned) break;
            if (nb == 1)
                dath_scratch_fail(who, per_image * sizeof(float), ctx && ctx->work ? ctx->work_bytes : 0,
                                  "ctx->work holds no image and the host allocation failed");
            nb = (nb + 1) / 2;
        }
        sc->col = sc->owned;
    }
    sc->nb = (int)nb;
    sc->stage = sc->col + nb * R * P;
}

/* The output columns ox whose tap kx lands inside the image: ix = ox*st - pad + kx
 * in [0, W) exactly for ox in [*lo, *hi). */
static void conv_valid_range(int *lo, int *hi, int kx, int W, int Wo, int st, int pad) {
    int a = pad - kx;                                 /* ox*st >= a */
    int l = a <= 0 ? 0 : (a + st - 1) / st;
    int b = W - 1 + pad - kx;                         /* ox*st <= b */
    int h = b < 0 ? 0 : b / st + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col [R, ldc] (columns i*P.. of each row, for images i < nb) ← patches of
 * in [nb, Ci, H, W]; zero where the window hangs over the padding. */
static void conv_im2col(float *col, size_t ldc, const float *in, int nb, const conv2d_shape *s) {
    const int Ci = s->Ci, H = s->H, W = s->W, k = s->k, st = s->stride, pad = s->pad;
    const int Ho = s->Ho, Wo = s->Wo;
    const size_t P = (size_t)Ho * Wo;
    for (int ci = 0; ci < Ci; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                int lo, hi;
                conv_valid_range(&lo, &hi, kx, W, Wo, st, pad);
                float *row = col + ((size_t)(ci * k + ky) * k + kx) * ldc;   /* [nb*P] */
                for (int i = 0; i < nb; i++) {
                    const float *x = in + ((size_t)i * Ci + ci) * H * W;    /* [H, W] */
                    for (int oy = 0; oy < Ho; oy++) {
                        int iy = oy * st - pad + ky;
                        float *dst = row + i * P + (size_t)oy * Wo;        /* [Wo] */
                        if (iy < 0 || iy >= H) {
                            for (int ox = 0; ox < Wo; ox++) dst[ox] = 0.0f;
                            continue;
                        }
                        const float *src = x + (size_t)iy * W;             /* [W] */
                        for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                        for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox * st + kx - pad];
                        for (int ox = hi; ox < Wo; ox++) dst[ox] = 0.0f;
                    }
                }
            }
}

/* din [nb, Ci, H, W] += the column gradient col [R, ldc] folded back onto the images
 * (the adjoint of conv_im2col). */
static void conv_col2im(float *din, const float *col, size_t ldc, int nb, const conv2d_shape *s) {
    const int Ci = s->Ci, H = s->H, W = s->W, k = s->k, st = s->stride, pad = s->pad;
    const int Ho = s->Ho, Wo = s->Wo;
    const size_t P = (size_t)Ho * Wo;
    for (int ci = 0; ci < Ci; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                int lo, hi;
                conv_valid_range(&lo, &hi, kx, W, Wo, st, pad);
                const float *row = col + ((size_t)(ci * k + ky) * k + kx) * ldc; /* [nb*P] */
                for (int i = 0; i < nb; i++) {
                    float *dx = din + ((size_t)i * Ci + ci) * H * W;         /* [H, W] */
                    for (int oy = 0; oy < Ho; oy++) {
                        int iy = oy * st - pad + ky;
                        if (iy < 0 || iy >= H) continue;
                        const float *src = row + i * P + (size_t)oy * Wo;    /* [Wo] */
                        float *dst = dx + (size_t)iy * W;                    /* [W] */
                        for (int ox = lo; ox < hi; ox++) dst[ox * st + kx - pad] += src[ox];
                    }
                }
            }
}

/* A bf16-stored input as fp32 (the reference's im2col reads fp32): a copy the caller
 * frees, or NULL when in is fp32 already (*use is then in itself). */
static float *conv_widen(const float *in, size_t n, int store, const float **use, const char *who) {
    *use = in;
    if (store != DATH_STORE_BF16) return NULL;
    float *x = malloc((n ? n : 1) * sizeof(float));
    if (!x) dath_scratch_fail(who, n * sizeof(float), 0, "a bf16 input widened to fp32");
    for (size_t i = 0; i < n; i++) x[i] = dath_load(in, i, DATH_STORE_BF16);
    *use = x;
    return x;
}

/* The nw convolutions of one input (conv2d_forward_multi's contract): one im2col a
 * chunk, then one GEMM and one bias/ReLU pass per weight set. With nw = 1 this is
 * conv2d_forward_cpu. */
static void conv_forward_sets(float *const *out, const float *in, const float *const *w,
                              const float *const *b, int nw, const conv2d_shape *s, int relu,
                              dath_ctx *ctx, const char *who) {
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const size_t P = (size_t)s->Ho * s->Wo, R = (size_t)Ci * s->k * s->k;
    const size_t in_image = (size_t)Ci * s->H * s->W;
    if (B <= 0 || Co <= 0 || P == 0) return;
    const float *x;
    float *wide = conv_widen(in, (size_t)B * in_image, s->in_store, &x, who);
    const int os = s->out_store;
    conv_scratch sc;
    conv_scratch_get(&sc, s, nw, ctx, who);
    for (int b0 = 0; b0 < B; b0 += sc.nb) {
        const int nb = B - b0 < sc.nb ? B - b0 : sc.nb;
        const size_t N = (size_t)nb * P;
        conv_im2col(sc.col, N, x + (size_t)b0 * in_image, nb, s);
        for (int j = 0; j < nw; j++) {
            float *stage = sc.stage + (size_t)j * Co * N;                      /* [Co, N] */
            /* stage [Co, N] = w[j] [Co, R] · col [R, N] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, (int)N, (int)R,
                        1.0f, w[j], (int)R, sc.col, (int)N, 0.0f, stage, (int)N);
            for (int i = 0; i < nb; i++)
                for (int co = 0; co < Co; co++) {
                    const float *src = stage + (size_t)co * N + (size_t)i * P;       /* [P] */
                    const size_t at = ((size_t)(b0 + i) * Co + co) * P;             /* out[j] [P] */
                    const float bias = b[j][co];
                    for (size_t p = 0; p < P; p++) {
                        float v = src[p] + bias;
                        dath_store(out[j], at + p, (relu && v < 0.0f) ? 0.0f : v, os);
                    }
                }
        }
    }
    free(sc.owned);
    free(wide);
}

/* The backward of conv_forward_sets: per set the ReLU mask and the bias gradient, then
 * a chunk at a time one im2col, nw weight-gradient GEMMs, and (din) the nw column
 * gradients summed in col (set 0 first) and folded back by one col2im. With nw = 1
 * this is conv2d_backward_cpu. */
static void conv_backward_sets(float *din, float *const *dw, float *const *db,
                               float *const *dout, const float *in, const float *const *w,
                               const float *const *out, int nw, const conv2d_shape *s,
                               int relu, dath_ctx *ctx, const char *who) {
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const size_t P = (size_t)s->Ho * s->Wo, R = (size_t)Ci * s->k * s->k;
    const size_t in_image = (size_t)Ci * s->H * s->W;
    const size_t n_out = (size_t)B * Co * P;
    if (Co <= 0) return;
    if (B <= 0 || P == 0) {   /* an empty batch's (or output's) gradient is zero */
        for (int j = 0; j < nw; j++) {
            memset(dw[j], 0, (size_t)Co * R * sizeof(float));
            memset(db[j], 0, (size_t)Co * sizeof(float));
        }
        if (din && B > 0) memset(din, 0, (size_t)B * in_image * dath_store_size(s->in_store));
        return;
    }
    /* bf16 dout and din (conv.h's storage): the fp32 code on widened copies, the masked
     * dout (exact) and din narrowed back at the end */
    float *gw[CONV_MULTI_MAX] = {NULL}, *dinw = NULL, *din_st = din;
    float *const *dout_st = dout;
    if (s->out_store == DATH_STORE_BF16) {
        const float *unused;
        for (int j = 0; j < nw; j++) gw[j] = conv_widen(dout[j], n_out, DATH_STORE_BF16, &unused, who);
        dout = gw;
    }
    if (din && s->in_store == DATH_STORE_BF16) {
        dinw = malloc((size_t)B * in_image * sizeof(float));
        if (!dinw) dath_scratch_fail(who, (size_t)B * in_image * sizeof(float), 0, "a bf16 din's fp32 sums");
        din = dinw;
    }

    for (int j = 0; j < nw; j++) {
        float *g = dout[j];                                               /* [B, Co, P] */
        if (relu)     /* g becomes the pre-ReLU gradient (out > 0 is the mask) */
            for (size_t e = 0; e < n_out; e++)
                if (!(dath_load(out[j], e, s->out_store) > 0.0f)) g[e] = 0.0f;
        /* db[co] = Σ_b Σ_p g[b,co,p], summed in image order in double */
        for (int co = 0; co < Co; co++) {
            double acc = 0.0;
            for (int bi = 0; bi < B; bi++) {
                const float *gp = g + ((size_t)bi * Co + co) * P;                /* [P] */
                for (size_t p = 0; p < P; p++) acc += gp[p];
            }
            db[j][co] = (float)acc;
        }
    }

    const float *x;
    float *wide = conv_widen(in, (size_t)B * in_image, s->in_store, &x, who);
    conv_scratch sc;
    conv_scratch_get(&sc, s, nw, ctx, who);
    for (int b0 = 0; b0 < B; b0 += sc.nb) {
        const int nb = B - b0 < sc.nb ? B - b0 : sc.nb;
        const size_t N = (size_t)nb * P;
        /* stage j [Co, N] ← dout[j] [nb, Co, P] */
        for (int j = 0; j < nw; j++)
            for (int i = 0; i < nb; i++)
                for (int co = 0; co < Co; co++)
                    memcpy(sc.stage + ((size_t)j * Co + co) * N + (size_t)i * P,
                           dout[j] + ((size_t)(b0 + i) * Co + co) * P, P * sizeof(float));
        conv_im2col(sc.col, N, x + (size_t)b0 * in_image, nb, s);
        /* dw[j] [Co, R] (+)= stage j [Co, N] · col [R, N]ᵀ: the first chunk writes */
        for (int j = 0; j < nw; j++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, (int)R, (int)N,
                        1.0f, sc.stage + (size_t)j * Co * N, (int)N, sc.col, (int)N,
                        b0 ? 1.0f : 0.0f, dw[j], (int)R);
        if (!din) continue;
        /* col [R, N] = Σ_j w[j] [Co, R]ᵀ · stage j [Co, N] */
        for (int j = 0; j < nw; j++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)N, Co,
                        1.0f, w[j], (int)R, sc.stage + (size_t)j * Co * N, (int)N,
                        j ? 1.0f : 0.0f, sc.col, (int)N);
        memset(din + (size_t)b0 * in_image, 0, (size_t)nb * in_image * sizeof(float));   /* written */
        conv_col2im(din + (size_t)b0 * in_image, sc.col, N, nb, s);
    }
    free(sc.owned);
    if (din && s->din_relu)   /* the layer below's ReLU (conv.h): din = 0 where !(in > 0) */
        for (size_t e = 0; e < (size_t)B * in_image; e++)
            if (!(x[e] > 0.0f)) din[e] = 0.0f;
    free(wide);
    if (dout != dout_st)
        for (int j = 0; j < nw; j++) {
            for (size_t e = 0; e < n_out; e++) dath_store(dout_st[j], e, gw[j][e], DATH_STORE_BF16);
            free(gw[j]);
        }
    if (dinw) {
        for (size_t e = 0; e < (size_t)B * in_image; e++) dath_store(din_st, e, dinw[e], DATH_STORE_BF16);
        free(dinw);
    }
}

void conv2d_forward_cpu(float *out, const float *in, const float *w, const float *b,
                        const conv2d_shape *s, int relu, dath_ctx *ctx) {
    conv_forward_sets(&out, in, &w, &b, 1, s, relu, ctx, "conv2d_forward_cpu");
}

void conv2d_backward_cpu(float *din, float *dw, float *db, float *dout,
                         const float *in, const float *w, const float *out,
                         const conv2d_shape *s, int relu, dath_ctx *ctx) {
    conv_backward_sets(din, &dw, &db, &dout, in, &w, &out, 1, s, relu, ctx,
                       "conv2d_backward_cpu");
}

/* Aborts unless 1 <= nw <= CONV_MULTI_MAX, as the CUDA version does (a caller's bug:
 * the model has one or two streams). */
static void conv_check_count(int nw, const char *who) {
    if (nw >= 1 && nw <= CONV_MULTI_MAX) return;
    fprintf(stderr, "dath: %s: %d weight sets, outside 1..%d\n", who, nw, CONV_MULTI_MAX);
    abort();
}

/* Aborts when two sets' gradients overlap ([p, p + n) of the nw pointers): each set's dw
 * and db are written, so overlapping ones would lose a set's gradient. */
static void conv_check_disjoint(float *const *p, int nw, size_t n, const char *what, const char *who) {
    int i, j;
    if (!conv_sets_overlap(p, nw, n, &i, &j)) return;
    fprintf(stderr, "dath: %s: the %s of weight sets %d and %d overlap (each is written)\n", who, what, i, j);
    abort();
}

void conv2d_forward_multi_cpu(float *const *out, const float *in, const float *const *w,
                              const float *const *b, int nw, const conv2d_shape *s, int relu,
                              dath_ctx *ctx) {
    conv_check_count(nw, "conv2d_forward_multi_cpu");
    conv_forward_sets(out, in, w, b, nw, s, relu, ctx, "conv2d_forward_multi_cpu");
}

void conv2d_backward_multi_cpu(float *din, float *const *dw, float *const *db,
                               float *const *dout, const float *in, const float *const *w,
                               const float *const *out, int nw, const conv2d_shape *s,
                               int relu, dath_ctx *ctx) {
    conv_check_count(nw, "conv2d_backward_multi_cpu");
    conv_check_disjoint(dw, nw, (size_t)s->Co * s->Ci * s->k * s->k, "dw", "conv2d_backward_multi_cpu");
    conv_check_disjoint(db, nw, (size_t)s->Co, "db", "conv2d_backward_multi_cpu");
    conv_backward_sets(din, dw, db, dout, in, w, out, nw, s, relu, ctx,
                       "conv2d_backward_multi_cpu");
}
