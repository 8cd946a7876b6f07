/* checks/test_conv_layers_cuda.c — the convolutions at AlexNet's five layers and several weight sets over one input (conv2d_*_cuda, conv2d_*_multi_cuda: the path ctx_init sets, the implicit GEMMs; checks/test_conv_cuda.c takes both paths tile by tile) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- convolution ------------------------------------------------------------------ */

/* xs, os: how in and din, out and dout are stored (conv.h; DATH_STORE_BF16 only where
 * conv2d_store_bf16 holds: the bf16 tiles). A bf16 input (x, dout) is rounded to bf16,
 * the same bytes on both sides; a bf16 output (out, din) is rounded once by each side from
 * sums that differ within the band, so their widened values may differ by that and one
 * bf16 ulp (2^-7 |ref|) more; the masked dout is exact. */
static void test_conv(const char *op, int B, int Ci, int H, int Co, int k, int stride,
                      int pad, int with_din, int xs, int os, int din_relu) {
    conv2d_shape s = conv2d_make_shape(B, Ci, H, H, Co, k, stride, pad);
    s.in_store = xs;
    s.out_store = os;
    s.din_relu = din_relu;   /* din masked by in > 0, as the net's conv4 and conv5 (conv.h) */
    conv2d_shape s32 = s;                /* fp32 tensors (the bands) */
    s32.in_store = s32.out_store = DATH_STORE_F32;
    size_t nin = (size_t)B * Ci * H * H, nw = (size_t)Co * Ci * k * k;
    size_t nout = (size_t)B * Co * s.Ho * s.Wo, xe = dath_store_size(xs), oe = dath_store_size(os);
    float bound = 1.0f / sqrtf((float)(Ci * k * k));
    float *x = hrand(nin, -1.0f, 1.0f);               /* [B,Ci,H,H], bf16 values with xs bf16 */
    void *xst = xmalloc(nin * xe);                    /* x as stored */
    for (size_t i = 0; i < nin; i++) {
        dath_store(xst, i, x[i], xs);
        x[i] = dath_load(xst, i, xs);
    }
    float *w = hrand(nw, -bound, bound);              /* [Co,Ci,k,k] */
    float *b = hrand(Co, -0.1f, 0.1f);                /* [Co] */
    void *out_st = xmalloc(nout * oe);                /* [B,Co,Ho,Wo] as stored */
    conv2d_forward_cpu(out_st, xst, w, b, &s, 1, &cctx);
    float *out_ref = check_widen(out_st, nout, os);

    float *d_x = dup_dev(xst, nin * xe), *d_w = dup_dev(w, nw * 4), *d_b = dup_dev(b, Co * 4);
    float *d_out = dalloc(nout * oe);
    float *got[2];
    void *gst[2] = {xmalloc(nout * oe), xmalloc(nout * oe)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * oe);
        conv2d_forward_cuda(d_out, d_x, d_w, d_b, &s, 1, &gctx);
        gsync();
        down(gst[r], d_out, nout * oe);
        got[r] = check_widen(gst[r], nout, os);
    }
    /* tf32/bf16: T2² = conv(x², w²) and the products y = conv(x, w), neither with bias nor
     * ReLU; R = Ci·k² terms an output, one chain */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *z = hzero(Co);
        float *t2 = xmalloc(nout * 4), *y = xmalloc(nout * 4);
        conv2d_forward_cpu(t2, x2, w2, z, &s32, 0, &cctx);
        conv2d_forward_cpu(y, x, w, z, &s32, 0, &cctx);
        bo = band_new(nout);
        band_terms(&bo, t2, y, (long long)Ci * k * k, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    tol tf = TOL_FWD;
    if (os == DATH_STORE_BF16) tf.rtol += 1.0 / 128;   /* one bf16 ulp of the stored out */
    cmp_band(op, "out", got[0], out_ref, nout, tf, &bo);
    same(op, "out", gst[0], gst[1], nout * oe);

    /* backward from the reference's out (its ReLU mask, as stored); dout and din stored as
     * out and in are (din starts as NaN in either: written) */
    float *g = hrand(nout, -0.5f, 1.0f);                         /* dout [B,Co,Ho,Wo] */
    float *din0 = with_din ? hrand(nin, -0.1f, 0.1f) : NULL;     /* [B,Ci,H,H] */
    if (din0) check_fill_nan(din0, nin);                                   /* written (=) */
    float *dw0 = hrand(nw, -0.1f, 0.1f), *db0 = hrand(Co, -0.1f, 0.1f);
    check_fill_nan(dw0, nw); check_fill_nan(db0, Co);                                /* written by the op (=) */
    void *g_st = xmalloc(nout * oe), *g_ref = xmalloc(nout * oe), *din_st = with_din ? xmalloc(nin * xe) : NULL;
    for (size_t i = 0; i < nout; i++) dath_store(g_st, i, g[i], os);
    for (size_t i = 0; with_din && i < nin; i++) dath_store(din_st, i, din0[i], xs);
    memcpy(g_ref, g_st, nout * oe);
    void *din_rst = with_din ? xmalloc(nin * xe) : NULL;
    if (with_din) memcpy(din_rst, din_st, nin * xe);
    float *dw_ref = hcopy(dw0, nw), *db_ref = hcopy(db0, Co);
    conv2d_backward_cpu(din_rst, dw_ref, db_ref, g_ref, xst, w, out_st, &s, 1, &cctx);
    float *din_ref = with_din ? check_widen(din_rst, nin, xs) : NULL, *g_refw = check_widen(g_ref, nout, os);

    up(d_out, out_st, nout * oe);
    float *d_g = dalloc(nout * oe), *d_dw = dalloc(nw * 4), *d_db = dalloc(Co * 4);
    float *d_din = with_din ? dalloc(nin * xe) : NULL;
    float *gd[2] = {NULL, NULL}, *gw[2], *gb[2], *gg[2];
    void *gdst[2] = {NULL, NULL}, *ggst[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g_st, nout * oe); up(d_dw, dw0, nw * 4); up(d_db, db0, Co * 4);
        if (with_din) up(d_din, din_st, nin * xe);
        conv2d_backward_cuda(d_din, d_dw, d_db, d_g, d_x, d_w, d_out, &s, 1, &gctx);
        gsync();
        gw[r] = xmalloc(nw * 4); gb[r] = xmalloc(Co * 4); ggst[r] = xmalloc(nout * oe);
        if (with_din) { gdst[r] = xmalloc(nin * xe); down(gdst[r], d_din, nin * xe); gd[r] = check_widen(gdst[r], nin, xs); }
        down(gw[r], d_dw, nw * 4); down(gb[r], d_db, Co * 4); down(ggst[r], d_g, nout * oe);
        gg[r] = check_widen(ggst[r], nout, os);
    }
    for (size_t i = 0; i < nout; i++) g[i] = dath_load(g_st, i, os);   /* the dout both sides read */
    /* tf32/bf16: T2² from the backward of the squares (same ReLU mask); din: Co terms a
     * window, up to ⌈k/stride⌉² windows summed by col2im; dw: B·Ho·Wo terms, in chunks
     * of images (at most B more blocks); db is no GEMM (a reduction of dout) */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *g2 = hsq(g, nout);
        float *din2 = with_din ? hzero(nin) : NULL, *dw2 = hzero(nw), *db2 = hzero(Co);
        conv2d_backward_cpu(din2, dw2, db2, g2, x2, w2, out_ref, &s32, 1, &cctx);   /* the same mask, widened */
        if (with_din) {
            const int win = (k + stride - 1) / stride;
            float *y = hdiff(din_ref, din0, nin);
            bdin = band_new(nin);
            band_terms(&bdin, din2, y, Co, (double)win * win);
            free(y);
        }
        float *y = hdiff(dw_ref, dw0, nw);
        bdw = band_new(nw);
        band_terms(&bdw, dw2, y, (long long)B * s.Ho * s.Wo + (long long)GE.bk * B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    tol td = TOL_DGRAD;
    if (xs == DATH_STORE_BF16) td.rtol += 1.0 / 128;   /* one bf16 ulp of the stored din */
    if (with_din) { cmp_band(op, "din", gd[0], din_ref, nin, td, &bdin); same(op, "din", gdst[0], gdst[1], nin * xe); }
    cmp_band(op, "dw", gw[0], dw_ref, nw, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nw * 4);
    cmp(op, "db", gb[0], db_ref, Co, TOL_WGRAD); same(op, "db", gb[0], gb[1], Co * 4);
    cmp(op, "dout(masked)", gg[0], g_refw, nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) {
        free(got[r]); free(gst[r]); free(gd[r]); free(gdst[r]); free(gw[r]); free(gb[r]); free(gg[r]); free(ggst[r]);
    }
    free(x); free(xst); free(w); free(b); free(out_st); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref); free(g_refw); free(g_st); free(din_st); free(din_rst);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_dw); cudaFree(d_db); cudaFree(d_din);
}

/* ---- convolution: several weight sets over one input (conv2d_*_multi) --------------- */

enum { MULTI_EVEN, MULTI_REVERSED, MULTI_UNEVEN };

/* nw convolutions of one input, CUDA multi against the reference multi. The sets'
 * weights, biases and their gradients sit in flat buffers as in dath's parameter
 * buffer: set j at j·gap (MULTI_EVEN), (nw−1−j)·gap (MULTI_REVERSED), or the last set 5
 * floats further (MULTI_UNEVEN: the CUDA version's fallback to nw GEMMs); gap is odd, so
 * sets are not 16-byte aligned. The gradients are compared over the whole flat buffer
 * (the gaps must stay as they were). ctx->work is the op's own: `chunk` images' col and
 * stages, or the whole batch (chunk = 0: conv2d_work_bytes_multi). */
static void test_conv_multi(const char *op, int B, int Ci, int H, int Co, int k, int stride,
                            int pad, int nw, int layout, int chunk, int with_din, int os) {
    conv2d_shape s = conv2d_make_shape(B, Ci, H, H, Co, k, stride, pad), s32;
    s.out_store = os;   /* out as stored (test_conv); the bands' outputs fp32 */
    s32 = s;
    s32.out_store = DATH_STORE_F32;
    const size_t oe = dath_store_size(os);
    size_t nin = (size_t)B * Ci * H * H, nwt = (size_t)Co * Ci * k * k;
    size_t nout = (size_t)B * Co * s.Ho * s.Wo;
    size_t gap = nwt + 37, gapb = (size_t)Co + 3, off[CONV_MULTI_MAX], offb[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        size_t slot = layout == MULTI_REVERSED ? (size_t)(nw - 1 - j) : (size_t)j;
        off[j] = 3 + slot * gap + (layout == MULTI_UNEVEN && j == nw - 1 ? 5 : 0);
        offb[j] = 1 + slot * gapb;
    }
    size_t nflat = 3 + (size_t)nw * gap + 5, nflatb = 1 + (size_t)nw * gapb;
    float bound = 1.0f / sqrtf((float)(Ci * k * k));
    float *x = hrand(nin, -1.0f, 1.0f);                   /* [B,Ci,H,H] */
    float *w = hrand(nflat, -bound, bound);               /* sets of [Co,Ci,k,k] */
    float *b = hrand(nflatb, -0.1f, 0.1f);                /* sets of [Co] */
    char *out_st = xmalloc((size_t)nw * nout * oe);      /* [nw][B,Co,Ho,Wo] as stored */
    float *po[CONV_MULTI_MAX];
    const float *pw[CONV_MULTI_MAX], *pb[CONV_MULTI_MAX], *pout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        po[j] = (float *)(out_st + j * nout * oe);
        pw[j] = w + off[j];
        pb[j] = b + offb[j];
        pout[j] = po[j];
    }
    conv2d_forward_multi_cpu(po, x, pw, pb, nw, &s, 1, &cctx);
    float *out_ref = check_widen(out_st, (size_t)nw * nout, os);

    size_t per_image = conv2d_work_bytes_multi(&s, nw) / (size_t)B;
    dath_ctx mctx = gctx;
    mctx.work_bytes = chunk ? chunk * per_image + per_image / 2 : conv2d_work_bytes_multi(&s, nw);
    mctx.work = dalloc(mctx.work_bytes);
    float *d_x = dup_dev(x, nin * 4), *d_w = dup_dev(w, nflat * 4), *d_b = dup_dev(b, nflatb * 4);
    char *d_out = dalloc((size_t)nw * nout * oe);
    float *dpo[CONV_MULTI_MAX];
    const float *dpw[CONV_MULTI_MAX], *dpb[CONV_MULTI_MAX], *dpout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        dpo[j] = (float *)(d_out + j * nout * oe);
        dpw[j] = d_w + off[j];
        dpb[j] = d_b + offb[j];
        dpout[j] = dpo[j];
    }
    float *got[2];
    void *gst[2] = {xmalloc((size_t)nw * nout * oe), xmalloc((size_t)nw * nout * oe)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, (size_t)nw * nout * oe);
        conv2d_forward_multi_cuda(dpo, d_x, dpw, dpb, nw, &s, 1, &mctx);
        gsync();
        down(gst[r], d_out, (size_t)nw * nout * oe);
        got[r] = check_widen(gst[r], (size_t)nw * nout, os);
    }
    /* tf32/bf16: as test_conv's, per set */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *z = hzero(nflatb);
        float *t2 = xmalloc((size_t)nw * nout * 4), *y = xmalloc((size_t)nw * nout * 4);
        float *pt[CONV_MULTI_MAX], *py[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX], *pz[CONV_MULTI_MAX];
        for (int j = 0; j < nw; j++) {
            pt[j] = t2 + j * nout; py[j] = y + j * nout; pw2[j] = w2 + off[j]; pz[j] = z + offb[j];
        }
        conv2d_forward_multi_cpu(pt, x2, pw2, pz, nw, &s32, 0, &cctx);
        conv2d_forward_multi_cpu(py, x, pw, pz, nw, &s32, 0, &cctx);
        bo = band_new((size_t)nw * nout);
        band_terms(&bo, t2, y, (long long)Ci * k * k, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    tol tf = TOL_FWD;
    if (os == DATH_STORE_BF16) tf.rtol += 1.0 / 128;   /* one bf16 ulp of the stored out */
    cmp_band(op, "out", got[0], out_ref, (size_t)nw * nout, tf, &bo);
    same(op, "out", gst[0], gst[1], (size_t)nw * nout * oe);
    if (os != DATH_STORE_F32) {   /* the forward only: test_conv_cuda.c runs the multi backward at bf16 storage */
        for (int r = 0; r < 2; r++) { free(got[r]); free(gst[r]); }
        free(x); free(w); free(b); free(out_st); free(out_ref);
        band_free(&bo);
        cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(mctx.work);
        return;
    }

    /* backward from the reference's out (its ReLU masks) */
    float *g = hrand((size_t)nw * nout, -0.5f, 1.0f);               /* dout [nw][B,Co,Ho,Wo] */
    float *din0 = with_din ? hrand(nin, -0.1f, 0.1f) : NULL;        /* [B,Ci,H,H] */
    if (din0) check_fill_nan(din0, nin);                                      /* written (=) */
    float *dw0 = hrand(nflat, -0.1f, 0.1f), *db0 = hrand(nflatb, -0.1f, 0.1f);
    for (int j = 0; j < nw; j++) {   /* the sets' gradients are written (=); the gaps left */
        check_fill_nan(dw0 + off[j], (size_t)Co * Ci * k * k);
        check_fill_nan(db0 + offb[j], (size_t)Co);
    }
    float *din_ref = with_din ? hcopy(din0, nin) : NULL, *dw_ref = hcopy(dw0, nflat);
    float *db_ref = hcopy(db0, nflatb), *g_ref = hcopy(g, (size_t)nw * nout);
    float *pdw[CONV_MULTI_MAX], *pdb[CONV_MULTI_MAX], *pg[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        pdw[j] = dw_ref + off[j];
        pdb[j] = db_ref + offb[j];
        pg[j] = g_ref + j * nout;
    }
    conv2d_backward_multi_cpu(din_ref, pdw, pdb, pg, x, pw, pout, nw, &s, 1, &cctx);

    up(d_out, out_st, (size_t)nw * nout * oe);
    float *d_g = dalloc((size_t)nw * nout * 4), *d_dw = dalloc(nflat * 4), *d_db = dalloc(nflatb * 4);
    float *d_din = with_din ? dalloc(nin * 4) : NULL;
    float *dpdw[CONV_MULTI_MAX], *dpdb[CONV_MULTI_MAX], *dpg[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        dpdw[j] = d_dw + off[j];
        dpdb[j] = d_db + offb[j];
        dpg[j] = d_g + j * nout;
    }
    float *gd[2], *gw[2], *gb[2], *gg[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g, (size_t)nw * nout * 4); up(d_dw, dw0, nflat * 4); up(d_db, db0, nflatb * 4);
        if (with_din) up(d_din, din0, nin * 4);
        conv2d_backward_multi_cuda(d_din, dpdw, dpdb, dpg, d_x, dpw, dpout, nw, &s, 1, &mctx);
        gsync();
        gd[r] = with_din ? xmalloc(nin * 4) : NULL;
        gw[r] = xmalloc(nflat * 4); gb[r] = xmalloc(nflatb * 4);
        gg[r] = xmalloc((size_t)nw * nout * 4);
        if (with_din) down(gd[r], d_din, nin * 4);
        down(gw[r], d_dw, nflat * 4); down(gb[r], d_db, nflatb * 4);
        down(gg[r], d_g, (size_t)nw * nout * 4);
    }
    /* tf32/bf16: as test_conv's; din sums the nw sets' column gradients (nw·Co terms a
     * window); the gaps between the sets have no terms: their band is 0 */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *g2 = hsq(g, (size_t)nw * nout);
        float *din2 = with_din ? hzero(nin) : NULL, *dw2 = hzero(nflat), *db2 = hzero(nflatb);
        float *pdw2[CONV_MULTI_MAX], *pdb2[CONV_MULTI_MAX], *pg2[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX];
        for (int j = 0; j < nw; j++) {
            pdw2[j] = dw2 + off[j]; pdb2[j] = db2 + offb[j]; pg2[j] = g2 + j * nout;
            pw2[j] = w2 + off[j];
        }
        conv2d_backward_multi_cpu(din2, pdw2, pdb2, pg2, x2, pw2, pout, nw, &s, 1, &cctx);
        if (with_din) {
            const int win = (k + stride - 1) / stride;
            float *y = hdiff(din_ref, din0, nin);
            bdin = band_new(nin);
            band_terms(&bdin, din2, y, (long long)nw * Co, (double)win * win);
            free(y);
        }
        float *y = hdiff(dw_ref, dw0, nflat);
        bdw = band_new(nflat);
        band_terms(&bdw, dw2, y, (long long)B * s.Ho * s.Wo + (long long)GE.bk * B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    if (with_din) { cmp_band(op, "din", gd[0], din_ref, nin, TOL_DGRAD, &bdin); same(op, "din", gd[0], gd[1], nin * 4); }
    cmp_band(op, "dw(flat)", gw[0], dw_ref, nflat, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nflat * 4);
    cmp(op, "db(flat)", gb[0], db_ref, nflatb, TOL_WGRAD); same(op, "db", gb[0], gb[1], nflatb * 4);
    cmp(op, "dout(masked)", gg[0], g_ref, (size_t)nw * nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gst[r]); free(gd[r]); free(gw[r]); free(gb[r]); free(gg[r]); }
    free(x); free(w); free(b); free(out_st); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_dw); cudaFree(d_db); cudaFree(d_din); cudaFree(mctx.work);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    char name[64];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "conv.%s", cc[i].name);
        test_conv(name, B, cc[i].Ci, cc[i].H, cc[i].Co, cc[i].k, cc[i].stride, cc[i].pad,
                  cc[i].din, DATH_STORE_F32, DATH_STORE_F32, i == 3 || i == 4);
    }
    cuda_check_lap("conv", &t0);
    /* bf16 storage where the context has it (precision bf16 on sm_80+), as host/net.c
     * stores the layers: conv1 reads the fp32 image, conv5 writes fp32 for the attention */
    if (conv2d_store_bf16(&gctx)) {
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "conv.%s bf16", cc[i].name);
            test_conv(name, B, cc[i].Ci, cc[i].H, cc[i].Co, cc[i].k, cc[i].stride, cc[i].pad, cc[i].din,
                      i == 0 ? DATH_STORE_F32 : DATH_STORE_BF16, i == 4 ? DATH_STORE_F32 : DATH_STORE_BF16,
                      i == 3 || i == 4);
        }
        cuda_check_lap("conv bf16 storage", &t0);
    } else {
        printf("conv bf16 storage: not at this precision and device (precision %s, sm %d; it needs bf16 on sm_80+)\n",
               GE.name, gctx.sm);
    }

    /* both streams' conv1 at once: its real shape (small: the small conv1), then small
     * shapes in chunks of two images, with reversed, unevenly spaced and four sets */
    const int F = DATH_STORE_F32;
    test_conv_multi("conv_multi.conv1", B, 3, S, cc[0].Co, 11, 4, 2, 2, MULTI_EVEN, 0, 0, F);
    test_conv_multi("conv_multi.chunked.rev", 5, 3, 63, 8, 11, 4, 2, 2, MULTI_REVERSED, 2, 1, F);
    test_conv_multi("conv_multi.uneven3", 3, 8, 15, 12, 5, 1, 2, 3, MULTI_UNEVEN, 2, 1, F);
    test_conv_multi("conv_multi.even4", 2, 8, 15, 12, 3, 1, 1, 4, MULTI_EVEN, 0, 1, F);
    if (conv2d_store_bf16(&gctx))   /* both streams' conv1 as the net stores it: bf16 out */
        test_conv_multi("conv_multi.conv1 bf16", B, 3, S, cc[0].Co, 11, 4, 2, 2, MULTI_EVEN, 0, 0, DATH_STORE_BF16);
    cuda_check_lap("conv multi", &t0);
    return cuda_check_end();
}

#endif
