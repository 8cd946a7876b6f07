/* kernels/linear.c — plain-C reference of the fully connected layer (contract in
 * linear.h): three OpenBLAS SGEMMs, bias and ReLU in plain loops.
 *   forward   out [B,O] = b (broadcast), then out += in [B,I] · w [O,I]ᵀ, then ReLU
 *   backward  dout ← dout ⊙ (out > 0) when relu (in place, as the header allows)
 *             db [O]    = Σ_b dout[b,:]          (in batch order, in double)
 *             dw [O,I]  = dout [B,O]ᵀ · in [B,I]  (GEMM beta = 0)
 *             din[B,I] += dout [B,O] · w [O,I]   (skipped when din is NULL)
 * With relu = 0, dout is left untouched.
 * With bf16 storage (st, linear.h) the stored operands are widened to fp32 copies and the
 * same product taken; the output, and the backward's masked dout, rounded to bf16 where
 * the CUDA layer stores them so.
 * The loops around the GEMMs are serial on purpose (O(B·O) against the GEMMs' O(B·O·I)):
 * an OpenMP region next to a GEMM fights OpenBLAS's still-spinning threads for the
 * cores (see conv.c). */
#include "linear.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* OpenBLAS's cblas.h pulls in <complex.h>, whose macro I would replace linear.h's
 * dimension name I. */
#undef I

size_t linear_work_bytes(int B, int Out, int bf16) {
    return bf16 && B > 0 && Out > 0 ? (size_t)B * Out * sizeof(float) : 0;
}

int linear_store_bf16(const dath_ctx *ctx) { return ctx && ctx->precision == DATH_BF16 && ctx->sm >= 80; }

static float *lin_alloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "linear: out of memory for a %zu-float copy\n", n);
        abort();
    }
    return p;
}

/* An fp32 copy of a bf16 array (free it). */
static float *lin_widen(const dath_bf16 *x, size_t n) {
    float *p = lin_alloc(n);
    for (size_t i = 0; i < n; i++) p[i] = dath_bf16_to_float(x[i]);
    return p;
}

static void linear_forward_f32(float *out, const float *in, const float *w, const float *b, int B, int I, int O,
                               int relu) {
    for (int bi = 0; bi < B; bi++) {
        float *row = out + (size_t)bi * O;                                      /* [O] */
        for (int o = 0; o < O; o++) row[o] = b[o];
    }
    if (I > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, I,
                    1.0f, in, I, w, I, 1.0f, out, O);
    if (relu) {
        const size_t n = (size_t)B * O;
        for (size_t j = 0; j < n; j++)
            if (out[j] < 0.0f) out[j] = 0.0f;
    }
}

void linear_forward_cpu(void *out, const void *in, const float *w, const float *b,
                        int B, int I, int O, int relu, const linear_store *st, dath_ctx *ctx) {
    (void)ctx;
    if (B <= 0 || O <= 0) return;
    if (!st) {
        linear_forward_f32(out, in, w, b, B, I, O, relu);
        return;
    }
    const size_t ni = (size_t)B * I, nw = (size_t)O * I, no = (size_t)B * O;
    float *fi = lin_widen(in, ni), *fw = lin_widen(st->w16, nw), *fb = NULL;
    const int o16 = st->out_store == DATH_STORE_BF16;
    if (o16) fb = lin_widen(st->b16, (size_t)O);
    float *fo = o16 ? lin_alloc(no) : out;
    linear_forward_f32(fo, fi, fw, o16 ? fb : b, B, I, O, relu);
    if (o16)
        for (size_t j = 0; j < no; j++) ((dath_bf16 *)out)[j] = dath_bf16_from_float(fo[j]);
    if (o16) free(fo);
    free(fi); free(fw); free(fb);
}

void linear_backward_cpu(float *din, float *dw, float *db, float *dout,
                         const void *in_, const float *w_, const void *out_,
                         int B, int I, int O, int relu, const linear_store *st, dath_ctx *ctx) {
    (void)ctx;
    if (O <= 0) {   /* no output: no gradient reaches the input */
        if (din && B > 0 && I > 0) memset(din, 0, (size_t)B * I * sizeof(float));
        return;
    }
    if (B <= 0) {   /* an empty batch's gradient is zero */
        memset(db, 0, (size_t)O * sizeof(float));
        if (I > 0) memset(dw, 0, (size_t)O * I * sizeof(float));
        return;
    }
    const size_t n = (size_t)B * O;
    const float *in = in_, *w = w_, *out = out_;
    float *fi = NULL, *fw = NULL, *fo = NULL;
    if (st) {   /* the stored operands as fp32; dout masked into a copy, rounded to bf16 */
        if (I > 0) fi = lin_widen(in_, (size_t)B * I);
        if (I > 0 && din) fw = lin_widen(st->w16, (size_t)O * I);
        if (relu && st->out_store == DATH_STORE_BF16) fo = lin_widen(out_, n);
        in = fi; w = fw;
        if (fo) out = fo;
        float *dm = lin_alloc(n);
        memcpy(dm, dout, n * sizeof *dm);
        dout = dm;
    }
    if (relu)
        for (size_t j = 0; j < n; j++)
            if (!(out[j] > 0.0f)) dout[j] = 0.0f;
    for (int o = 0; o < O; o++) {
        double acc = 0.0;
        for (int bi = 0; bi < B; bi++) acc += dout[(size_t)bi * O + o];
        db[o] = (float)acc;
    }
    if (st)
        for (size_t j = 0; j < n; j++) dout[j] = dath_bf16_to_float(dath_bf16_from_float(dout[j]));
    if (I > 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B,
                    1.0f, dout, O, in, I, 0.0f, dw, I);
        if (din)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O,
                        1.0f, dout, O, w, I, 0.0f, din, I);
    }
    if (st) free(dout);
    free(fi); free(fw); free(fo);
}
