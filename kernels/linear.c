/* kernels/linear.c — plain-C reference of the fully connected layer (contract in
 * linear.h): three OpenBLAS SGEMMs, bias and ReLU in plain loops.
 *   forward   out [B,O] = b (broadcast), then out += in [B,I] · w [O,I]ᵀ, then ReLU
 *   backward  dout ← dout ⊙ (out > 0) when relu (in place, as the header allows)
 *             db [O]    = Σ_b dout[b,:]          (in batch order, in double)
 *             dw [O,I]  = dout [B,O]ᵀ · in [B,I]  (GEMM beta = 0)
 *             din[B,I] += dout [B,O] · w [O,I]   (skipped when din is NULL)
 * With relu = 0, dout is left untouched.
 * The loops around the GEMMs are serial on purpose (O(B·O) against the GEMMs' O(B·O·I)):
 * an OpenMP region next to a GEMM fights OpenBLAS's still-spinning threads for the
 * cores (see conv.c). */
#include "linear.h"

#include <cblas.h>
#include <string.h>
/* OpenBLAS's cblas.h pulls in <complex.h>, whose macro I would replace linear.h's
 * dimension name I. */
#undef I

void linear_forward_cpu(float *out, const float *in, const float *w, const float *b,
                        int B, int I, int O, int relu, dath_ctx *ctx) {
    if (B <= 0 || O <= 0) return;
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

void linear_backward_cpu(float *din, float *dw, float *db, float *dout,
                         const float *in, const float *w, const float *out,
                         int B, int I, int O, int relu, dath_ctx *ctx) {
    if (O <= 0) {   /* no output: no gradient reaches the input */
        if (din && B > 0 && I > 0) memset(din, 0, (size_t)B * I * sizeof(float));
        return;
    }
    if (B <= 0) {   /* an empty batch's gradient is zero */
        memset(db, 0, (size_t)O * sizeof(float));
        if (I > 0) memset(dw, 0, (size_t)O * I * sizeof(float));
        return;
    }
    if (relu) {
        const size_t n = (size_t)B * O;
        for (size_t j = 0; j < n; j++)
            if (!(out[j] > 0.0f)) dout[j] = 0.0f;
    }
    for (int o = 0; o < O; o++) {
        double acc = 0.0;
        for (int bi = 0; bi < B; bi++) acc += dout[(size_t)bi * O + o];
        db[o] = (float)acc;
    }
    if (I <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B,
                1.0f, dout, O, in, I, 0.0f, dw, I);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O,
                    1.0f, dout, O, w, I, 0.0f, din, I);
}
