/* kernels/attention.c — plain-C reference of DANet's PAM and CAM (contract in
 * attention.h; DESIGN.md §1).
 *
 * Every GEMM goes through cblas_sgemm, one image at a time; OpenBLAS threads each GEMM,
 * which is where nearly all the work is (the softmaxes are O(N²) per image against
 * O(C·N²) for the GEMMs). Images are processed in order, so every sum over the batch
 * (parameter gradients, dgamma) is deterministic.
 *
 * Scratch: the backwards allocate their own (PAM: N·N + C·N + 2·Cq·N floats, CAM:
 * C·C floats); an allocation failure is kernels/common.h's scratch policy.
 *
 * bf16 storage (attention.h's st): the same loops on fp32 copies, each stored tensor
 * rounded to bf16 where attention.h says the CUDA op rounds it (r16 below), the saved
 * tensors written and read as bf16; the projections' operands x and w rounded too (the
 * CUDA op's x16 and the weights' bf16 copies: here w is rounded, which is what the copies
 * hold), and γ·dout formed (and rounded) before the GEMMs that read it. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "attention.h"

int attn_store_bf16(const dath_ctx *ctx) { return ctx && ctx->precision == DATH_BF16 && ctx->sm >= 80; }

/* x rounded to bf16 in place (n values). */
static void r16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = dath_bf16_to_float(dath_bf16_from_float(x[i]));
}

/* n bf16 into fp32 (dst), and back (src already bf16 values: exact). */
static void widen16(float *dst, const void *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dath_bf16_to_float(((const dath_bf16 *)src)[i]);
}
static void narrow16(void *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) ((dath_bf16 *)dst)[i] = dath_bf16_from_float(src[i]);
}

static float *attn_scratch(size_t n, const char *who) {
    float *p = malloc(n * sizeof *p);
    if (!p) dath_scratch_fail(who, n * sizeof *p, 0, "its host allocation failed");
    return p;
}

/* Rows of a [R, L] become softmax(sign·row), computed stably: exp(sign·v − max(sign·v)).
 * sign = +1 for PAM's softmax(e); −1 for CAM's softmax(−e) = softmax(rowmax(e) − e),
 * whose shift is −rowmin(e). */
static void attn_softmax_rows(float *a, int R, int L, float sign) {
    for (int i = 0; i < R; i++) {
        float *row = a + (size_t)i * L;              /* [L] */
        float m = sign * row[0];
        for (int j = 1; j < L; j++) m = fmaxf(m, sign * row[j]);
        double s = 0;
        for (int j = 0; j < L; j++) {
            row[j] = expf(sign * row[j] - m);
            s += row[j];
        }
        float inv = (float)(1.0 / s);
        for (int j = 0; j < L; j++) row[j] *= inv;
    }
}

/* Softmax backward in place, rows of [R, L]: g ← sign · a ⊙ (g − Σ_j a_j g_j), which
 * turns the gradient w.r.t. a = softmax(sign·e) into the gradient w.r.t. e. */
static void attn_softmax_rows_backward(float *g, const float *a, int R, int L, float sign) {
    for (int i = 0; i < R; i++) {
        float *gr = g + (size_t)i * L;               /* [L] */
        const float *ar = a + (size_t)i * L;         /* [L] */
        double dot = 0;
        for (int j = 0; j < L; j++) dot += (double)ar[j] * gr[j];
        float d = (float)dot;
        for (int j = 0; j < L; j++) gr[j] = sign * ar[j] * (gr[j] - d);
    }
}

/* y [Co,N] = w [Co,C] · x [C,N] + b [Co] (a 1×1 convolution of one image). */
static void attn_conv1x1(float *y, const float *w, const float *b, const float *x,
                         int Co, int C, int N) {
    for (int o = 0; o < Co; o++)
        for (int n = 0; n < N; n++) y[(size_t)o * N + n] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, N, C,
                1.0f, w, C, x, N, 1.0f, y, N);
}

/* Backward of attn_conv1x1 for one image: dw [Co,C] += dy·xᵀ, db [Co] += Σ_n dy,
 * dx [C,N] += wᵀ·dy (pam_backward_cpu zeroes dw and db first: the op writes them). */
static void attn_conv1x1_backward(float *dx, float *dw, float *db, const float *dy,
                                  const float *x, const float *w, int Co, int C, int N) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, C, N,
                1.0f, dy, N, x, N, 1.0f, dw, C);
    for (int o = 0; o < Co; o++) {
        double s = 0;
        for (int n = 0; n < N; n++) s += dy[(size_t)o * N + n];
        db[o] += (float)s;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, N, Co,
                1.0f, w, C, dy, N, 1.0f, dx, N);
}

/* out = g·o + x over n elements. */
static void attn_residual(float *out, const float *o, const float *x, float g, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = g * o[i] + x[i];
}

/* Σ dout·o over n elements (the image's share of dgamma); dx = dout (residual), or
 * dx += dout with add. */
static double attn_residual_backward(float *dx, const float *dout, const float *o, size_t n, int add) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)dout[i] * o[i];
        dx[i] = (add ? dx[i] : 0.0f) + dout[i];
    }
    return s;
}

/* The bf16-storage forward of one image (attention.h): q, k, v, a, o as bf16 values in
 * the fp32 buffers qb .. ob; xr and w?r the rounded operands. */
static void pam_forward_image16(float *outb, float *qb, float *kb, float *vb, float *ab, float *ob, const float *xb,
                                const float *xr, const float *wqr, const float *bq, const float *wkr,
                                const float *bk, const float *wvr, const float *bv, float g, int C, int Cq, int N) {
    attn_conv1x1(qb, wqr, bq, xr, Cq, C, N);
    attn_conv1x1(kb, wkr, bk, xr, Cq, C, N);
    attn_conv1x1(vb, wvr, bv, xr, C, C, N);
    r16(qb, (size_t)Cq * N); r16(kb, (size_t)Cq * N); r16(vb, (size_t)C * N);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, Cq, 1.0f, qb, N, kb, N, 0.0f, ab, N);
    attn_softmax_rows(ab, N, N, 1.0f);
    r16(ab, (size_t)N * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N, 1.0f, vb, N, ab, N, 0.0f, ob, N);
    r16(ob, (size_t)C * N);
    attn_residual(outb, ob, xb, g, (size_t)C * N);
}

void pam_forward_cpu(float *out, void *q_, void *k_, void *v_, void *a_, void *o_,
                     const float *x, const float *wq, const float *bq,
                     const float *wk, const float *bk, const float *wv,
                     const float *bv, const float *gamma,
                     int B, int C, int Cq, int N, const attn_store *st, dath_ctx *ctx) {
    const float g = gamma[0];
    if (st) {
        const size_t cn = (size_t)C * N, qn = (size_t)Cq * N, nn = (size_t)N * N;
        float *t = attn_scratch(3 * cn + 2 * qn + nn + 2 * (size_t)Cq * C + (size_t)C * C, "pam_forward_cpu");
        float *xr = t, *qb = xr + cn, *kb = qb + qn, *vb = kb + qn, *ab = vb + cn, *ob = ab + nn;
        float *wqr = ob + cn, *wkr = wqr + (size_t)Cq * C, *wvr = wkr + (size_t)Cq * C;
        memcpy(wqr, wq, (size_t)Cq * C * sizeof *wqr); r16(wqr, (size_t)Cq * C);
        memcpy(wkr, wk, (size_t)Cq * C * sizeof *wkr); r16(wkr, (size_t)Cq * C);
        memcpy(wvr, wv, (size_t)C * C * sizeof *wvr); r16(wvr, (size_t)C * C);
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * cn;
            memcpy(xr, xb, cn * sizeof *xr);
            r16(xr, cn);
            pam_forward_image16(out + (size_t)b * cn, qb, kb, vb, ab, ob, xb, xr, wqr, bq, wkr, bk, wvr, bv, g, C,
                                Cq, N);
            narrow16((dath_bf16 *)q_ + (size_t)b * qn, qb, qn);
            narrow16((dath_bf16 *)k_ + (size_t)b * qn, kb, qn);
            narrow16((dath_bf16 *)v_ + (size_t)b * cn, vb, cn);
            narrow16((dath_bf16 *)a_ + (size_t)b * nn, ab, nn);
            narrow16((dath_bf16 *)o_ + (size_t)b * cn, ob, cn);
        }
        free(t);
        return;
    }
    float *q = q_, *k = k_, *v = v_, *a = a_, *o = o_;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * N;     /* [C,N] */
        float *qb = q + (size_t)b * Cq * N;          /* [Cq,N] */
        float *kb = k + (size_t)b * Cq * N;          /* [Cq,N] */
        float *vb = v + (size_t)b * C * N;           /* [C,N] */
        float *ab = a + (size_t)b * N * N;           /* [N,N] */
        float *ob = o + (size_t)b * C * N;           /* [C,N] */
        attn_conv1x1(qb, wq, bq, xb, Cq, C, N);
        attn_conv1x1(kb, wk, bk, xb, Cq, C, N);
        attn_conv1x1(vb, wv, bv, xb, C, C, N);
        /* e = qᵀk, then a = softmax(e) row by row */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, Cq,
                    1.0f, qb, N, kb, N, 0.0f, ab, N);
        attn_softmax_rows(ab, N, N, 1.0f);
        /* o = v·aᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N,
                    1.0f, vb, N, ab, N, 0.0f, ob, N);
        attn_residual(out + (size_t)b * C * N, ob, xb, g, (size_t)C * N);
    }
}

/* The bf16-storage backward (attention.h): the saved tensors widened image by image. */
static void pam_backward16(float *dx, float *dwq, float *dbq, float *dwk, float *dbk, float *dwv, float *dbv,
                           float *dgamma, const float *dout, const float *x, const void *q, const void *k,
                           const void *v, const void *a, const void *o, const attn_store *st, float g, int B, int C,
                           int Cq, int N, int add) {
    const size_t nn = (size_t)N * N, cn = (size_t)C * N, qn = (size_t)Cq * N, wqn = (size_t)Cq * C, wvn = (size_t)C * C;
    float *t = attn_scratch(2 * nn + 6 * cn + 4 * qn + 2 * wqn + wvn, "pam_backward_cpu");
    float *ab = t, *de = ab + nn, *vb = de + nn, *ob = vb + cn, *gd = ob + cn, *dv = gd + cn, *xr = dv + cn;
    float *dxs = xr + cn, *qb = dxs + cn, *kb = qb + qn, *dq = kb + qn, *dk = dq + qn;
    float *wqr = dk + qn, *wkr = wqr + wqn, *wvr = wkr + wqn;
    (void)dxs;
    widen16(wqr, st->wq, wqn); widen16(wkr, st->wk, wqn); widen16(wvr, st->wv, wvn);
    double dg = 0;
    memset(dwq, 0, wqn * sizeof(float)); memset(dbq, 0, (size_t)Cq * sizeof(float));
    memset(dwk, 0, wqn * sizeof(float)); memset(dbk, 0, (size_t)Cq * sizeof(float));
    memset(dwv, 0, wvn * sizeof(float)); memset(dbv, 0, (size_t)C * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *doutb = dout + (size_t)b * cn;
        float *dxb = dx + (size_t)b * cn;
        widen16(qb, (const dath_bf16 *)q + (size_t)b * qn, qn);
        widen16(kb, (const dath_bf16 *)k + (size_t)b * qn, qn);
        widen16(vb, (const dath_bf16 *)v + (size_t)b * cn, cn);
        widen16(ab, (const dath_bf16 *)a + (size_t)b * nn, nn);
        widen16(ob, (const dath_bf16 *)o + (size_t)b * cn, cn);
        memcpy(xr, x + (size_t)b * cn, cn * sizeof *xr);
        r16(xr, cn);
        dg += attn_residual_backward(dxb, doutb, ob, cn, add);
        for (size_t i = 0; i < cn; i++) gd[i] = g * doutb[i];
        r16(gd, cn);
        /* dv = bf16(gd·a), da = gdᵀ·v, de = bf16(softmax'(da)) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, N, 1.0f, gd, N, ab, N, 0.0f, dv, N);
        r16(dv, cn);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C, 1.0f, gd, N, vb, N, 0.0f, de, N);
        attn_softmax_rows_backward(de, ab, N, N, 1.0f);
        r16(de, nn);
        /* dq = bf16(k·deᵀ), dk = bf16(q·de) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cq, N, N, 1.0f, kb, N, de, N, 0.0f, dq, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cq, N, N, 1.0f, qb, N, de, N, 0.0f, dk, N);
        r16(dq, qn); r16(dk, qn);
        attn_conv1x1_backward(dxb, dwq, dbq, dq, xr, wqr, Cq, C, N);
        attn_conv1x1_backward(dxb, dwk, dbk, dk, xr, wkr, Cq, C, N);
        attn_conv1x1_backward(dxb, dwv, dbv, dv, xr, wvr, C, C, N);
    }
    dgamma[0] = (float)dg;
    free(t);
}

void pam_backward_cpu(float *dx, float *dwq, float *dbq, float *dwk, float *dbk,
                      float *dwv, float *dbv, float *dgamma,
                      const float *dout, const float *x, const void *q_,
                      const void *k_, const void *v_, const void *a_, const void *o_,
                      const float *wq, const float *wk, const float *wv,
                      const float *gamma, int B, int C, int Cq, int N, int add, const attn_store *st,
                      dath_ctx *ctx) {
    const float g = gamma[0];
    if (st) {
        pam_backward16(dx, dwq, dbq, dwk, dbk, dwv, dbv, dgamma, dout, x, q_, k_, v_, a_, o_, st, g, B, C, Cq, N,
                       add);
        return;
    }
    const float *q = q_, *k = k_, *v = v_, *a = a_, *o = o_;
    size_t nn = (size_t)N * N, cn = (size_t)C * N, qn = (size_t)Cq * N;
    float *scratch = attn_scratch(nn + cn + 2 * qn, "pam_backward_cpu");
    float *de = scratch;                             /* [N,N] da, then de in place */
    float *dv = de + nn;                             /* [C,N] */
    float *dq = dv + cn;                             /* [Cq,N] */
    float *dk = dq + qn;                             /* [Cq,N] */
    double dg = 0;
    /* the parameter gradients are written: the images' shares add onto zero */
    memset(dwq, 0, (size_t)Cq * C * sizeof(float)); memset(dbq, 0, (size_t)Cq * sizeof(float));
    memset(dwk, 0, (size_t)Cq * C * sizeof(float)); memset(dbk, 0, (size_t)Cq * sizeof(float));
    memset(dwv, 0, (size_t)C * C * sizeof(float));  memset(dbv, 0, (size_t)C * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *doutb = dout + (size_t)b * cn;  /* [C,N] */
        const float *xb = x + (size_t)b * cn;        /* [C,N] */
        const float *qb = q + (size_t)b * qn;        /* [Cq,N] */
        const float *kb = k + (size_t)b * qn;        /* [Cq,N] */
        const float *vb = v + (size_t)b * cn;        /* [C,N] */
        const float *ab = a + (size_t)b * nn;        /* [N,N] */
        float *dxb = dx + (size_t)b * cn;            /* [C,N] */
        dg += attn_residual_backward(dxb, doutb, o + (size_t)b * cn, cn, add);
        /* o = v·aᵀ with d(o) = g·dout: dv = g·dout·a, da = g·doutᵀ·v */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, N,
                    g, doutb, N, ab, N, 0.0f, dv, N);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C,
                    g, doutb, N, vb, N, 0.0f, de, N);
        attn_softmax_rows_backward(de, ab, N, N, 1.0f);
        /* e = qᵀk: dq = k·deᵀ, dk = q·de */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cq, N, N,
                    1.0f, kb, N, de, N, 0.0f, dq, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cq, N, N,
                    1.0f, qb, N, de, N, 0.0f, dk, N);
        attn_conv1x1_backward(dxb, dwq, dbq, dq, xb, wq, Cq, C, N);
        attn_conv1x1_backward(dxb, dwk, dbk, dk, xb, wk, Cq, C, N);
        attn_conv1x1_backward(dxb, dwv, dbv, dv, xb, wv, C, C, N);
    }
    dgamma[0] = (float)dg;
    free(scratch);
}

void cam_forward_cpu(float *out, void *a_, void *o_, void *x16, const float *x,
                     const float *gamma, int B, int C, int N, const attn_store *st, dath_ctx *ctx) {
    const float g = gamma[0];
    if (st) {   /* x16 = bf16(x), e = x16·x16ᵀ, a = bf16(softmax(−e)), o = bf16(a·x16) */
        const size_t cn = (size_t)C * N, cc = (size_t)C * C;
        float *t = attn_scratch(2 * cn + cc, "cam_forward_cpu");
        float *xr = t, *ob = xr + cn, *ab = ob + cn;
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * cn;
            memcpy(xr, xb, cn * sizeof *xr);
            r16(xr, cn);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, N, 1.0f, xr, N, xr, N, 0.0f, ab, C);
            attn_softmax_rows(ab, C, C, -1.0f);
            r16(ab, cc);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, C, 1.0f, ab, C, xr, N, 0.0f, ob, N);
            r16(ob, cn);
            attn_residual(out + (size_t)b * cn, ob, xb, g, cn);
            narrow16((dath_bf16 *)x16 + (size_t)b * cn, xr, cn);
            narrow16((dath_bf16 *)a_ + (size_t)b * cc, ab, cc);
            narrow16((dath_bf16 *)o_ + (size_t)b * cn, ob, cn);
        }
        free(t);
        return;
    }
    float *a = a_, *o = o_;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * N;     /* [C,N] */
        float *ab = a + (size_t)b * C * C;           /* [C,C] */
        float *ob = o + (size_t)b * C * N;           /* [C,N] */
        /* e = x·xᵀ, then a = softmax(−e) row by row (shifted by −rowmin(e)) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, N,
                    1.0f, xb, N, xb, N, 0.0f, ab, C);
        attn_softmax_rows(ab, C, C, -1.0f);
        /* o = a·x */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, C,
                    1.0f, ab, C, xb, N, 0.0f, ob, N);
        attn_residual(out + (size_t)b * C * N, ob, xb, g, (size_t)C * N);
    }
}

void cam_backward_cpu(float *dx, float *dgamma, const float *dout, const float *x,
                      const void *x16, const void *a_, const void *o_, const float *gamma,
                      int B, int C, int N, int add, const attn_store *st, dath_ctx *ctx) {
    const float g = gamma[0];
    size_t cc = (size_t)C * C, cn = (size_t)C * N;
    if (st) {   /* gd = bf16(γ·dout), da = gd·x16ᵀ, dx += aᵀ·gd, de = bf16(softmax'(da)), dx += (de + deᵀ)·x16 */
        float *t = attn_scratch(3 * cn + 2 * cc, "cam_backward_cpu");
        float *xr = t, *ob = xr + cn, *gd = ob + cn, *ab = gd + cn, *de = ab + cc;
        double dg = 0;
        for (int b = 0; b < B; b++) {
            const float *doutb = dout + (size_t)b * cn;
            float *dxb = dx + (size_t)b * cn;
            widen16(xr, (const dath_bf16 *)x16 + (size_t)b * cn, cn);
            widen16(ob, (const dath_bf16 *)o_ + (size_t)b * cn, cn);
            widen16(ab, (const dath_bf16 *)a_ + (size_t)b * cc, cc);
            dg += attn_residual_backward(dxb, doutb, ob, cn, add);
            for (size_t i = 0; i < cn; i++) gd[i] = g * doutb[i];
            r16(gd, cn);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, N, 1.0f, gd, N, xr, N, 0.0f, de, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, N, C, 1.0f, ab, C, gd, N, 1.0f, dxb, N);
            attn_softmax_rows_backward(de, ab, C, C, -1.0f);
            r16(de, cc);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, C, 1.0f, de, C, xr, N, 1.0f, dxb, N);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, N, C, 1.0f, de, C, xr, N, 1.0f, dxb, N);
        }
        dgamma[0] = (float)dg;
        free(t);
        return;
    }
    const float *a = a_, *o = o_;
    float *de = attn_scratch(cc, "cam_backward_cpu"); /* [C,C] da, then de in place */
    double dg = 0;
    for (int b = 0; b < B; b++) {
        const float *doutb = dout + (size_t)b * cn;  /* [C,N] */
        const float *xb = x + (size_t)b * cn;        /* [C,N] */
        const float *ab = a + (size_t)b * cc;        /* [C,C] */
        float *dxb = dx + (size_t)b * cn;            /* [C,N] */
        dg += attn_residual_backward(dxb, doutb, o + (size_t)b * cn, cn, add);
        /* o = a·x with d(o) = g·dout: da = g·dout·xᵀ, dx += g·aᵀ·dout */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, N,
                    g, doutb, N, xb, N, 0.0f, de, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, N, C,
                    g, ab, C, doutb, N, 1.0f, dxb, N);
        attn_softmax_rows_backward(de, ab, C, C, -1.0f);
        /* e = x·xᵀ: dx += (de + deᵀ)·x */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, C,
                    1.0f, de, C, xb, N, 1.0f, dxb, N);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, N, C,
                    1.0f, de, C, xb, N, 1.0f, dxb, N);
    }
    dgamma[0] = (float)dg;
    free(de);
}
