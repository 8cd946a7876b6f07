/* checks/test_pool_cuda.c — max-pooling and the adaptive average pool (maxpool_*_cuda, avgpool_*_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- pooling ------------------------------------------------------------------------ */

/* mask: the backward takes the forward's out as its mask (the ReLU below, as the step).
 * store: how in, out, the mask, dout and din are stored (pool.h); with bf16 both sides
 * read the same bf16 input and dout (the input has ties in many windows: the first maximum
 * must win on both), out (an input element) is compared widened, bit for bit, and din
 * (its fp32 sum rounded once) as at fp32, widened. */
static void test_maxpool(const char *op, int BC, int H, int mask, int store) {
    int Ho = maxpool_out(H);
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho, es = dath_store_size(store);
    float *x32 = hrand(nin, -1.0f, 1.0f);                /* [BC,H,H] */
    void *x = xmalloc(nin * es);                         /* x32 as stored */
    for (size_t i = 0; i < nin; i++) dath_store(x, i, x32[i], store);
    void *out_ref = xmalloc(nout * es);                  /* [BC,Ho,Ho] */
    maxpool_arg *idx_ref = xmalloc(nout);                /* [BC,Ho,Ho], a byte a window */
    maxpool_forward_cpu(out_ref, idx_ref, x, BC, H, H, store, &cctx);

    float *d_x = dup_dev(x, nin * es), *d_out = dalloc(nout * es);
    maxpool_arg *d_idx = dalloc(nout);
    void *got[2] = {xmalloc(nout * es), xmalloc(nout * es)};
    maxpool_arg *gi[2] = {xmalloc(nout), xmalloc(nout)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * es); poison(d_idx, nout);
        maxpool_forward_cuda(d_out, d_idx, d_x, BC, H, H, store, &gctx);
        gsync();
        down(got[r], d_out, nout * es); down(gi[r], d_idx, nout);
    }
    int32_t *wide[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};   /* the places, widened */
    for (size_t i = 0; i < nout; i++) { wide[0][i] = gi[0][i]; wide[1][i] = idx_ref[i]; }
    float *og = check_widen(got[0], nout, store), *orf = check_widen(out_ref, nout, store);
    cmp(op, "out", og, orf, nout, TOL_EXACT);
    cmp_i32(op, "idx", wide[0], wide[1], nout);
    same(op, "out", got[0], got[1], nout * es);
    same(op, "idx", gi[0], gi[1], nout);
    free(wide[0]); free(wide[1]); free(og); free(orf);

    float *g32 = hrand(nout, -1.0f, 1.0f), *din32 = hrand(nin, -0.1f, 0.1f);
    check_fill_nan(din32, nin);                                  /* din is written (=), not added to */
    void *g = xmalloc(nout * es), *din0 = xmalloc(nin * es), *din_rst = xmalloc(nin * es);
    for (size_t i = 0; i < nout; i++) dath_store(g, i, g32[i], store);
    for (size_t i = 0; i < nin; i++) dath_store(din0, i, din32[i], store);
    memcpy(din_rst, din0, nin * es);
    maxpool_backward_cpu(din_rst, g, idx_ref, mask ? out_ref : NULL, BC, H, H, store, &cctx);
    float *din_ref = check_widen(din_rst, nin, store);
    up(d_idx, idx_ref, nout);
    float *d_g = dup_dev(g, nout * es), *d_din = dalloc(nin * es);
    void *gd[2] = {xmalloc(nin * es), xmalloc(nin * es)};
    for (int r = 0; r < 2; r++) {
        up(d_din, din0, nin * es);
        maxpool_backward_cuda(d_din, d_g, d_idx, mask ? d_out : NULL, BC, H, H, store, &gctx);
        gsync();
        down(gd[r], d_din, nin * es);
    }
    float *gdw = check_widen(gd[0], nin, store);
    cmp(op, "din", gdw, din_ref, nin, TOL_SUMFEW);
    same(op, "din", gd[0], gd[1], nin * es);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gi[r]); free(gd[r]); }
    free(x32); free(x); free(out_ref); free(idx_ref); free(g); free(g32); free(din0); free(din32); free(din_rst);
    free(din_ref); free(gdw);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_idx); cudaFree(d_g); cudaFree(d_din);
}

/* A bf16 out (fc6's input with bf16 storage, host/net.c): each side rounds its fp32 mean
 * once, so the widened values agree within the fp32 tolerance and one bf16 ulp. */
static void test_avgpool_bf16(const char *op, int BC, int H, int Ho) {
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho;
    float *x = hrand(nin, -1.0f, 1.0f);
    dath_bf16 *o_r = xmalloc(nout * 2), *o_g = xmalloc(nout * 2);
    avgpool_forward_cpu(o_r, x, BC, H, H, Ho, Ho, DATH_STORE_BF16, &cctx);
    float *d_x = dup_dev(x, nin * 4);
    void *d_out = dalloc(nout * 2);
    poison(d_out, nout * 2);
    avgpool_forward_cuda(d_out, d_x, BC, H, H, Ho, Ho, DATH_STORE_BF16, &gctx);
    gsync();
    down(o_g, d_out, nout * 2);
    float *gw = check_widen(o_g, nout, DATH_STORE_BF16), *rw = check_widen(o_r, nout, DATH_STORE_BF16);
    tol t = TOL_SUMFEW;
    t.rtol += 1.0 / 128;
    cmp(op, "out", gw, rw, nout, t);
    free(x); free(o_r); free(o_g); free(gw); free(rw);
    cudaFree(d_x); cudaFree(d_out);
}

static void test_avgpool(const char *op, int BC, int H, int Ho) {
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho;
    float *x = hrand(nin, -1.0f, 1.0f), *out_ref = xmalloc(nout * 4);
    avgpool_forward_cpu(out_ref, x, BC, H, H, Ho, Ho, DATH_STORE_F32, &cctx);
    float *d_x = dup_dev(x, nin * 4), *d_out = dalloc(nout * 4);
    float *got[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * 4);
        avgpool_forward_cuda(d_out, d_x, BC, H, H, Ho, Ho, DATH_STORE_F32, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    cmp(op, "out", got[0], out_ref, nout, TOL_SUMFEW);
    same(op, "out", got[0], got[1], nout * 4);

    float *g = hrand(nout, -1.0f, 1.0f), *din0 = hrand(nin, -0.1f, 0.1f);
    check_fill_nan(din0, nin);                                   /* din is written (=), not added to */
    float *din_ref = hcopy(din0, nin);
    avgpool_backward_cpu(din_ref, g, BC, H, H, Ho, Ho, &cctx);
    float *d_g = dup_dev(g, nout * 4), *d_din = dalloc(nin * 4);
    float *gd[2] = {xmalloc(nin * 4), xmalloc(nin * 4)};
    for (int r = 0; r < 2; r++) {
        up(d_din, din0, nin * 4);
        avgpool_backward_cuda(d_din, d_g, BC, H, H, Ho, Ho, &gctx);
        gsync();
        down(gd[r], d_din, nin * 4);
    }
    cmp(op, "din", gd[0], din_ref, nin, TOL_SUMFEW);
    same(op, "din", gd[0], gd[1], nin * 4);
    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); }
    free(x); free(out_ref); free(g); free(din0); free(din_ref);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_g); cudaFree(d_din);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_maxpool("maxpool.pool1 (ReLU mask)", B * cc[0].Co, CS.h1, 1, DATH_STORE_F32);
    test_maxpool("maxpool.pool2 (ReLU mask)", B * cc[1].Co, CS.h2, 1, DATH_STORE_F32);
    test_maxpool("maxpool.pool1 bf16 (ReLU mask)", B * cc[0].Co, CS.h1, 1, DATH_STORE_BF16);
    test_maxpool("maxpool.pool2 bf16 (ReLU mask)", B * cc[1].Co, CS.h2, 1, DATH_STORE_BF16);
    test_maxpool("maxpool.pool5", B * C5, full ? CS.h3 : 13, 0, DATH_STORE_F32);
    test_maxpool("maxpool.pool5 (ReLU mask)", B * C5, full ? CS.h3 : 13, 1, DATH_STORE_F32);
    test_avgpool("avgpool.identity", B * C5, P6, P6);
    test_avgpool("avgpool.13to6", B * (full ? C5 : 4), 13, P6);
    test_avgpool("avgpool.1to6", B * (full ? C5 : 4), 1, P6);
    test_avgpool("avgpool.7to6", B * (full ? C5 : 4), 7, P6);
    test_avgpool_bf16("avgpool.identity bf16", B * C5, P6, P6);
    test_avgpool_bf16("avgpool.13to6 bf16", B * (full ? C5 : 4), 13, P6);
    cuda_check_lap("pool", &t0);
    return cuda_check_end();
}

#endif
