/* checks/test_linear_cuda.c — the fully connected layers (linear_*_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- fully connected ---------------------------------------------------------------- */

/* An array of n bf16 of the floats x (linear.h's bf16 copies). */
static dath_bf16 *narrow16(const float *x, size_t n) {
    dath_bf16 *h = xmalloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = dath_bf16_from_float(x[i]);
    return h;
}

/* stored: bf16 storage (linear.h's st, as host/net.c gives fc6 and fc7 where
 * linear_store_bf16 holds): in is bf16 and the GEMMs read w16, the bf16 copy of w; out is
 * stored as os (fc6 bf16, fc7 fp32). Both sides read the same bf16 bytes; a bf16 out is
 * rounded once by each side from sums that differ within the band, so their widened values
 * may differ by that and one bf16 ulp (2^-7 |ref|) more. dout stays untouched (the masked
 * copy is the layer's scratch). */
static void test_linear(const char *op, int B, int I, int O, int relu, int stored, int os) {
    size_t nin = (size_t)B * I, nw = (size_t)O * I, nout = (size_t)B * O;
    const size_t xe = stored ? 2 : 4, oe = stored ? dath_store_size(os) : 4;
    float bound = 1.0f / sqrtf((float)I);
    float *x = hrand(nin, -1.0f, 1.0f), *w = hrand(nw, -bound, bound);   /* [B,I], [O,I] */
    float *b = hrand(O, -0.1f, 0.1f);                                    /* [O] */
    dath_bf16 *x16 = NULL, *w16 = NULL, *b16 = NULL;
    float *wv = w;   /* the weights the GEMMs multiply: w, or w16's values */
    if (stored) {
        x16 = narrow16(x, nin); w16 = narrow16(w, nw); b16 = narrow16(b, O);
        free(x);
        x = check_widen(x16, nin, DATH_STORE_BF16);
        wv = check_widen(w16, nw, DATH_STORE_BF16);
    }
    const void *xs = stored ? (const void *)x16 : x;                     /* in as stored */
    const linear_store hst = {w16, b16, os};
    void *out_st = xmalloc(nout * oe);                                   /* [B,O] as stored */
    linear_forward_cpu(out_st, xs, w, b, B, I, O, relu, stored ? &hst : NULL, &cctx);
    float *out_ref = check_widen(out_st, nout, stored ? os : DATH_STORE_F32);

    void *d_x = dup_dev(xs, nin * xe);
    float *d_w = dup_dev(w, nw * 4), *d_b = dup_dev(b, O * 4);
    dath_bf16 *d_w16 = stored ? dup_dev(w16, nw * 2) : NULL, *d_b16 = stored ? dup_dev(b16, O * 2) : NULL;
    const linear_store dst = {d_w16, d_b16, os};
    void *d_out = dalloc(nout * oe), *gst = xmalloc(nout * oe);
    float *got[2];
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * oe);
        linear_forward_cuda(d_out, d_x, d_w, d_b, B, I, O, relu, stored ? &dst : NULL, &gctx);
        gsync();
        down(gst, d_out, nout * oe);
        got[r] = check_widen(gst, nout, stored ? os : DATH_STORE_F32);
    }
    /* tf32/bf16: T2² = x²·(w²)ᵀ, y = x·wᵀ (no bias, no ReLU): I terms an output */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(wv, nw), *z = hzero(O);
        float *t2 = xmalloc(nout * 4), *y = xmalloc(nout * 4);
        linear_forward_cpu(t2, x2, w2, z, B, I, O, 0, NULL, &cctx);
        linear_forward_cpu(y, x, wv, z, B, I, O, 0, NULL, &cctx);
        bo = band_new(nout);
        band_terms(&bo, t2, y, I, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    tol tf = TOL_FWD;
    if (stored && os == DATH_STORE_BF16) tf.rtol += 1.0 / 128;   /* one bf16 ulp of the stored out */
    cmp_band(op, "out", got[0], out_ref, nout, tf, &bo);
    same(op, "out", got[0], got[1], nout * 4);

    float *g = hrand(nout, -0.5f, 1.0f);                                 /* dout [B,O] */
    float *din0 = hrand(nin, -0.1f, 0.1f), *dw0 = hrand(nw, -0.1f, 0.1f);
    float *db0 = hrand(O, -0.1f, 0.1f);
    check_fill_nan(din0, nin); check_fill_nan(dw0, nw); check_fill_nan(db0, O);   /* written (=) */
    float *din_ref = hcopy(din0, nin), *dw_ref = hcopy(dw0, nw), *db_ref = hcopy(db0, O);
    float *g_ref = hcopy(g, nout);
    linear_backward_cpu(din_ref, dw_ref, db_ref, g_ref, xs, w, out_st, B, I, O, relu, stored ? &hst : NULL, &cctx);

    up(d_out, out_st, nout * oe);
    float *d_g = dalloc(nout * 4), *d_din = dalloc(nin * 4), *d_dw = dalloc(nw * 4);
    float *d_db = dalloc(O * 4);
    float *gd[2], *gw[2], *gb[2], *gg[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g, nout * 4); up(d_din, din0, nin * 4); up(d_dw, dw0, nw * 4); up(d_db, db0, O * 4);
        linear_backward_cuda(d_din, d_dw, d_db, d_g, d_x, d_w, d_out, B, I, O, relu, stored ? &dst : NULL, &gctx);
        gsync();
        gd[r] = xmalloc(nin * 4); gw[r] = xmalloc(nw * 4); gb[r] = xmalloc(O * 4);
        gg[r] = xmalloc(nout * 4);
        down(gd[r], d_din, nin * 4); down(gw[r], d_dw, nw * 4); down(gb[r], d_db, O * 4);
        down(gg[r], d_g, nout * 4);
    }
    /* tf32/bf16: T2² from the backward of the squares (same ReLU mask); din: O terms,
     * dw: B terms; db is no GEMM (a column sum of dout) */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(wv, nw), *g2 = hsq(g, nout);
        float *din2 = hzero(nin), *dw2 = hzero(nw), *db2 = hzero(O);
        linear_backward_cpu(din2, dw2, db2, g2, x2, w2, out_ref, B, I, O, relu, NULL, &cctx);
        float *y = hdiff(din_ref, din0, nin);
        bdin = band_new(nin);
        band_terms(&bdin, din2, y, O, 1.0);
        free(y);
        y = hdiff(dw_ref, dw0, nw);
        bdw = band_new(nw);
        band_terms(&bdw, dw2, y, B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    cmp_band(op, "din", gd[0], din_ref, nin, TOL_DGRAD, &bdin); same(op, "din", gd[0], gd[1], nin * 4);
    cmp_band(op, "dw", gw[0], dw_ref, nw, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nw * 4);
    cmp(op, "db", gb[0], db_ref, O, TOL_WGRAD); same(op, "db", gb[0], gb[1], O * 4);
    if (relu && !stored) cmp(op, "dout(masked)", gg[0], g_ref, nout, TOL_EXACT);
    if (stored) cmp(op, "dout(untouched)", gg[0], g, nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); free(gw[r]); free(gb[r]); free(gg[r]); }
    free(x); free(w); free(b); free(out_ref); free(out_st); free(gst); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref);
    if (stored) { free(x16); free(w16); free(b16); free(wv); }
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_din); cudaFree(d_dw); cudaFree(d_db); cudaFree(d_w16); cudaFree(d_b16);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_linear("linear.fc6", B, FLAT, HID, 1, 0, 0);
    test_linear("linear.fc7", B, HID, HID, 1, 0, 0);
    test_linear("linear.hash16", B, HID, 16, 0, 0, 0);
    test_linear("linear.hash64", B, HID, 64, 0, 0, 0);
    test_linear("linear.cls80", B, 64, 80, 0, 0, 0);
    test_linear("linear.cls21", B, 16, 21, 0, 0, 0);
    cuda_check_lap("linear", &t0);
    /* bf16 storage where the context has it (precision bf16 on sm_80+), as host/net.c
     * stores fc6 (bf16 out, ReLU) and fc7 (fp32 out); the ReLU with an fp32 out too */
    if (linear_store_bf16(&gctx)) {
        test_linear("linear.fc6 bf16", B, FLAT, HID, 1, 1, DATH_STORE_BF16);
        test_linear("linear.fc7 bf16", B, HID, HID, 0, 1, DATH_STORE_F32);
        test_linear("linear.fc7 bf16 relu", B, HID, HID, 1, 1, DATH_STORE_F32);
        cuda_check_lap("linear bf16 storage", &t0);
    } else {
        printf("linear bf16 storage: not at this precision and device (precision %s, sm %d; it needs bf16 on sm_80+)\n",
               backend_precisions[gctx.precision], gctx.sm);
    }
    return cuda_check_end();
}

#endif
