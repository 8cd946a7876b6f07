/* checks/test_attention_cuda.c — the position and channel attention modules (pam_*_cuda, cam_*_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- attention ---------------------------------------------------------------------- */

/* Tolerance for dγ (a scalar sum of n products): from Σ|dout·o|. */
static tol scalar_reduce_tol(const float *dout, const float *o, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs((double)dout[i] * o[i]);
    tol t = {SCALAR_REDUCE_FRAC * s, 0.0, SCALAR_REDUCE_RTOL};
    return t;
}

/* C [batch][M,N] = op(A)·op(B), row-major (as gemm_rm_batched), in fp32 on the CPU: the
 * attention's intermediate values that the bands need (E = qᵀk, dv, da, dq, dk). */
static void mm(float *Cm, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
               long long sA, const float *Bm, int ldb, long long sB, int ldc, long long sC,
               int batch) {
    for (int i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A + i * sA, lda, Bm + i * sB, ldb, 0.0f, Cm + i * sC, ldc);
}

/* de [R,L] = sign·a⊙(da − Σ_l a_l da_l), row by row (the softmax backward). */
static void softmax_bwd_values(float *de, const float *a, const float *da, size_t R, int L,
                               float sign) {
    for (size_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int l = 0; l < L; l++) s += (double)a[r * L + l] * da[r * L + l];
        for (int l = 0; l < L; l++)
            de[r * L + l] = sign * a[r * L + l] * (float)(da[r * L + l] - s);
    }
}

/* add: dx is added to (from random values) or written (onto NaN). */
static void test_pam(const char *op, int B, int C, int Cq, int N, int add) {
    size_t nx = (size_t)B * C * N, nq = (size_t)B * Cq * N, na = (size_t)B * N * N;
    size_t nwq = (size_t)Cq * C, nwv = (size_t)C * C;
    float bd = 1.0f / sqrtf((float)C);
    float *x = hrand(nx, 0.0f, 1.0f);                                   /* [B,C,N] */
    float *wq = hrand(nwq, -bd, bd), *bq_ = hrand(Cq, -bd, bd);         /* [Cq,C], [Cq] */
    float *wk = hrand(nwq, -bd, bd), *bk_ = hrand(Cq, -bd, bd);
    float *wv = hrand(nwv, -bd, bd), *bv_ = hrand(C, -bd, bd);          /* [C,C], [C] */
    float gamma[1] = {0.7f};
    float *out_r = xmalloc(nx * 4), *q_r = xmalloc(nq * 4), *k_r = xmalloc(nq * 4);
    float *v_r = xmalloc(nx * 4), *a_r = xmalloc(na * 4), *o_r = xmalloc(nx * 4);
    pam_forward_cpu(out_r, q_r, k_r, v_r, a_r, o_r, x, wq, bq_, wk, bk_, wv, bv_, gamma, B, C,
                    Cq, N, NULL, &cctx);

    float *d_x = dup_dev(x, nx * 4), *d_wq = dup_dev(wq, nwq * 4), *d_bq = dup_dev(bq_, Cq * 4);
    float *d_wk = dup_dev(wk, nwq * 4), *d_bk = dup_dev(bk_, Cq * 4);
    float *d_wv = dup_dev(wv, nwv * 4), *d_bv = dup_dev(bv_, C * 4), *d_gamma = dup_dev(gamma, 4);
    float *d_out = dalloc(nx * 4), *d_q = dalloc(nq * 4), *d_k = dalloc(nq * 4);
    float *d_v = dalloc(nx * 4), *d_a = dalloc(na * 4), *d_o = dalloc(nx * 4);
    float *go[2], *gq[2], *gk[2], *gv[2], *ga[2], *gO[2];
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_q, nq * 4); poison(d_k, nq * 4);
        poison(d_v, nx * 4); poison(d_a, na * 4); poison(d_o, nx * 4);
        pam_forward_cuda(d_out, d_q, d_k, d_v, d_a, d_o, d_x, d_wq, d_bq, d_wk, d_bk, d_wv,
                         d_bv, d_gamma, B, C, Cq, N, NULL, &gctx);
        gsync();
        go[r] = xmalloc(nx * 4); gq[r] = xmalloc(nq * 4); gk[r] = xmalloc(nq * 4);
        gv[r] = xmalloc(nx * 4); ga[r] = xmalloc(na * 4); gO[r] = xmalloc(nx * 4);
        down(go[r], d_out, nx * 4); down(gq[r], d_q, nq * 4); down(gk[r], d_k, nq * 4);
        down(gv[r], d_v, nx * 4); down(ga[r], d_a, na * 4); down(gO[r], d_o, nx * 4);
    }
    /* tf32/bf16, the forward's chain: q, k, v (C terms; the bias add keeps the
     * shrink of the product: ρ(q − b) = ρq − ρb), e = qᵀk (Cq terms, q and k with their
     * errors), a = softmax(e), o = v·aᵀ (N terms along a's rows), out = γ·o + x */
    const long long cn = (long long)C * N, qn = (long long)Cq * N, nn = (long long)N * N;
    band bq = {0}, bk = {0}, bv = {0}, be = {0}, ba = {0}, bo = {0}, bout = {0};
    float *e_r = NULL;
    if (bands()) {
        bq = band_new(nq); bk = band_new(nq); bv = band_new(nx); be = band_new(na);
        ba = band_new(na); bo = band_new(nx); bout = band_new(nx);
        band_gemm(&bq, 0, false, false, Cq, N, C, wq, C, 0, NULL, x, N, cn, NULL, N, qn, B);
        band_gemm(&bk, 0, false, false, Cq, N, C, wk, C, 0, NULL, x, N, cn, NULL, N, qn, B);
        band_gemm(&bv, 0, false, false, C, N, C, wv, C, 0, NULL, x, N, cn, NULL, N, cn, B);
        for (size_t i = 0; i < nq; i++) {
            bq.ab[i] += bq.rel * fabs(bq_[(i / N) % Cq]);
            bk.ab[i] += bk.rel * fabs(bk_[(i / N) % Cq]);
        }
        for (size_t i = 0; i < nx; i++) bv.ab[i] += bv.rel * fabs(bv_[(i / N) % C]);
        band_gemm(&be, 0, true, false, N, N, Cq, q_r, N, qn, &bq, k_r, N, qn, &bk, N, nn, B);
        e_r = xmalloc(na * 4);
        mm(e_r, true, false, N, N, Cq, q_r, N, qn, k_r, N, qn, N, nn, B);
        band_softmax(&ba, a_r, e_r, &be, (size_t)B * N, N, 1);
        band_softmax_gemm(&bo, 0, C, N, N, B, v_r, cn, N, 1, &bv, a_r, a_r, e_r, &be, nn, cn, N, 1);
        band_affine(&bout, &bo, gamma[0], o_r);
    }
    cmp_band(op, "out", go[0], out_r, nx, TOL_ATTN, &bout); same(op, "out", go[0], go[1], nx * 4);
    cmp_band(op, "q", gq[0], q_r, nq, TOL_FWD, &bq); same(op, "q", gq[0], gq[1], nq * 4);
    cmp_band(op, "k", gk[0], k_r, nq, TOL_FWD, &bk); same(op, "k", gk[0], gk[1], nq * 4);
    cmp_band(op, "v", gv[0], v_r, nx, TOL_FWD, &bv); same(op, "v", gv[0], gv[1], nx * 4);
    cmp_band(op, "a", ga[0], a_r, na, TOL_ATTN, &ba); same(op, "a", ga[0], ga[1], na * 4);
    cmp_band(op, "o", gO[0], o_r, nx, TOL_ATTN, &bo); same(op, "o", gO[0], gO[1], nx * 4);

    /* backward from the reference's saved tensors */
    float *g = hrand(nx, -0.5f, 1.0f);                                  /* dout [B,C,N] */
    float *dx0 = hrand(nx, -0.1f, 0.1f);
    float *dwq0 = hrand(nwq, -0.1f, 0.1f), *dbq0 = hrand(Cq, -0.1f, 0.1f);
    float *dwk0 = hrand(nwq, -0.1f, 0.1f), *dbk0 = hrand(Cq, -0.1f, 0.1f);
    float *dwv0 = hrand(nwv, -0.1f, 0.1f), *dbv0 = hrand(C, -0.1f, 0.1f);
    float dg0[1] = {NAN};
    if (!add) check_fill_nan(dx0, nx);
    /* the parameter gradients are written (=): NaN fails an op that adds to them */
    check_fill_nan(dwq0, nwq); check_fill_nan(dbq0, Cq); check_fill_nan(dwk0, nwq); check_fill_nan(dbk0, Cq); check_fill_nan(dwv0, nwv); check_fill_nan(dbv0, C);
    float *dx_r = hcopy(dx0, nx), *dwq_r = hcopy(dwq0, nwq), *dbq_r = hcopy(dbq0, Cq);
    float *dwk_r = hcopy(dwk0, nwq), *dbk_r = hcopy(dbk0, Cq), *dwv_r = hcopy(dwv0, nwv);
    float *dbv_r = hcopy(dbv0, C), dg_r[1] = {dg0[0]};
    pam_backward_cpu(dx_r, dwq_r, dbq_r, dwk_r, dbk_r, dwv_r, dbv_r, dg_r, g, x, q_r, k_r,
                     v_r, a_r, o_r, wq, wk, wv, gamma, B, C, Cq, N, add, NULL, &cctx);

    up(d_q, q_r, nq * 4); up(d_k, k_r, nq * 4); up(d_v, v_r, nx * 4);
    up(d_a, a_r, na * 4); up(d_o, o_r, nx * 4);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dwq = dalloc(nwq * 4);
    float *d_dbq = dalloc(Cq * 4), *d_dwk = dalloc(nwq * 4), *d_dbk = dalloc(Cq * 4);
    float *d_dwv = dalloc(nwv * 4), *d_dbv = dalloc(C * 4), *d_dg = dalloc(4);
    float *r_dx[2], *r_dwq[2], *r_dbq[2], *r_dwk[2], *r_dbk[2], *r_dwv[2], *r_dbv[2];
    float r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4); up(d_dwq, dwq0, nwq * 4); up(d_dbq, dbq0, Cq * 4);
        up(d_dwk, dwk0, nwq * 4); up(d_dbk, dbk0, Cq * 4); up(d_dwv, dwv0, nwv * 4);
        up(d_dbv, dbv0, C * 4); up(d_dg, dg0, 4);
        pam_backward_cuda(d_dx, d_dwq, d_dbq, d_dwk, d_dbk, d_dwv, d_dbv, d_dg, d_g, d_x, d_q,
                          d_k, d_v, d_a, d_o, d_wq, d_wk, d_wv, d_gamma, B, C, Cq, N, add, NULL, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4); r_dwq[r] = xmalloc(nwq * 4); r_dbq[r] = xmalloc(Cq * 4);
        r_dwk[r] = xmalloc(nwq * 4); r_dbk[r] = xmalloc(Cq * 4); r_dwv[r] = xmalloc(nwv * 4);
        r_dbv[r] = xmalloc(C * 4);
        down(r_dx[r], d_dx, nx * 4); down(r_dwq[r], d_dwq, nwq * 4); down(r_dbq[r], d_dbq, Cq * 4);
        down(r_dwk[r], d_dwk, nwq * 4); down(r_dbk[r], d_dbk, Cq * 4);
        down(r_dwv[r], d_dwv, nwv * 4); down(r_dbv[r], d_dbv, C * 4); down(&r_dg[r], d_dg, 4);
    }
    /* tf32/bf16, the backward's chain (as pam_backward_cuda, from the reference's saved
     * tensors): g = γ·dout; dv = g·a (N terms), da = gᵀ·v (C terms), de = softmax
     * backward of da, dq = k·deᵀ (N terms along a's rows), dk = q·de (N terms across
     * them), dw += dy·xᵀ (B·N terms, one GEMM for the batch), db += Σ dy (no GEMM, but dy
     * carries its errors), dx += dout + wᵀ·dy for y = q, k, v (Cq, Cq, C terms).
     * dk's errors from de sum to 0 along its rows (as de's do), so dwk and dbk take them
     * through a virtual stage (gemm_error.h): dwk's error from de is q·(δde·xᵀ), dbk gets
     * none; both keep those of dk's own conversions and their own.
     * dγ = Σ dout·o needs no GEMM: its fp32 tolerance stays. */
    /* dbk = Σ dk is 0 in exact arithmetic (a row's softmax ignores a shift, and bk shifts
     * row i of e by q_iᵀbk): both sides' values are rounding, so its floor is that of a
     * float reduction of a channel's B·N terms, each with its GEMM's rounding: 1e-5 of
     * Σ|dk| (~170 ulps of the terms' sum; the observed error is ~3e-8 of it) */
    tol tol_dbk = TOL_WGRAD;
    {
        float *gd = xmalloc(nx * 4), *da = xmalloc(na * 4), *de = xmalloc(na * 4), *dk = xmalloc(nq * 4);
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        mm(da, true, false, N, N, C, gd, N, cn, v_r, N, cn, N, nn, B);
        softmax_bwd_values(de, a_r, da, (size_t)B * N, N, 1.0f);
        mm(dk, false, false, Cq, N, N, q_r, N, qn, de, N, nn, N, qn, B);
        double worst = 0.0;
        for (int c = 0; c < Cq; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++)
                for (int n = 0; n < N; n++) s += fabs(dk[(size_t)b * qn + (size_t)c * N + n]);
            if (s > worst) worst = s;
        }
        tol_dbk.atol_abs = 1e-5 * worst;
        free(gd); free(da); free(de); free(dk);
    }
    band bdx = {0}, bdwq = {0}, bdbq = {0}, bdwk = {0}, bdbk = {0}, bdwv = {0}, bdbv = {0};
    if (bands()) {
        float *gd = xmalloc(nx * 4), *dv = xmalloc(nx * 4), *da = xmalloc(na * 4);
        float *de = xmalloc(na * 4), *dq = xmalloc(nq * 4), *dk = xmalloc(nq * 4);
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        band bdv = band_new(nx), bda = band_new(na), bde = band_new(na);
        band bdq = band_new(nq), bdk = band_new(nq);
        bdx = band_new(nx); bdwq = band_new(nwq); bdbq = band_new(Cq); bdwk = band_new(nwq);
        bdbk = band_new(Cq); bdwv = band_new(nwv); bdbv = band_new(C);
        band_gemm(&bdv, 0, false, false, C, N, N, gd, N, cn, NULL, a_r, N, nn, NULL, N, cn, B);
        mm(dv, false, false, C, N, N, gd, N, cn, a_r, N, nn, N, cn, B);
        band_gemm(&bda, 0, true, false, N, N, C, gd, N, cn, NULL, v_r, N, cn, NULL, N, nn, B);
        mm(da, true, false, N, N, C, gd, N, cn, v_r, N, cn, N, nn, B);
        band_softmax(&bde, a_r, NULL, &bda, (size_t)B * N, N, 0);
        softmax_bwd_values(de, a_r, da, (size_t)B * N, N, 1.0f);
        band_softmax_gemm(&bdq, 0, Cq, N, N, B, k_r, qn, N, 1, NULL, a_r, de, NULL, &bda, nn, qn, N, 1);
        mm(dq, false, true, Cq, N, N, k_r, N, qn, de, N, nn, N, qn, B);
        band_gemm(&bdk, 0, false, false, Cq, N, N, q_r, N, qn, NULL, de, N, nn, &bde, N, qn, B);
        band bdk_own = band_new(nq), bt = band_new(nx);
        band_gemm(&bdk_own, 0, false, false, Cq, N, N, q_r, N, qn, NULL, de, N, nn, NULL, N, qn, B);
        mm(dk, false, false, Cq, N, N, q_r, N, qn, de, N, nn, N, qn, B);
        band_gemm(&bdwq, 1, false, true, Cq, C, N, dq, N, qn, &bdq, x, N, cn, NULL, C, 0, B);
        band_gemm(&bdwk, 1, false, true, Cq, C, N, dk, N, qn, &bdk_own, x, N, cn, NULL, C, 0, B);
        float *t = xmalloc(nx * 4);                     /* [B,C,N] t = x·deᵀ (virtual) */
        mm(t, false, true, C, N, N, x, N, cn, de, N, nn, N, cn, B);
        GE.virt = 1;
        band_softmax_gemm(&bt, 0, C, N, N, B, x, cn, N, 1, NULL, a_r, de, NULL, &bda, nn, cn, N, 1);
        band_gemm(&bdwk, 1, false, true, Cq, C, N, q_r, N, qn, NULL, t, N, cn, &bt, C, 0, B);
        GE.virt = 0;
        band_gemm(&bdwv, 1, false, true, C, C, N, dv, N, cn, &bdv, x, N, cn, NULL, C, 0, B);
        band_rowsum(&bdbq, &bdq, dq, B, Cq, N);
        band_rowsum(&bdbk, &bdk_own, dk, B, Cq, N);
        band_free(&bdk_own); band_free(&bt); free(t);
        band_rowsum(&bdbv, &bdv, dv, B, C, N);
        band_gemm(&bdx, 1, true, false, C, N, Cq, wq, C, 0, NULL, dq, N, qn, &bdq, N, cn, B);
        band_gemm(&bdx, 1, true, false, C, N, Cq, wk, C, 0, NULL, dk, N, qn, &bdk, N, cn, B);
        band_gemm(&bdx, 1, true, false, C, N, C, wv, C, 0, NULL, dv, N, cn, &bdv, N, cn, B);
        band_free(&bdv); band_free(&bda); band_free(&bde); band_free(&bdq); band_free(&bdk);
        free(gd); free(dv); free(da); free(de); free(dq); free(dk);
    }
    cmp_band(op, "dx", r_dx[0], dx_r, nx, TOL_DGRAD, &bdx); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    cmp_band(op, "dwq", r_dwq[0], dwq_r, nwq, TOL_WGRAD, &bdwq); same(op, "dwq", r_dwq[0], r_dwq[1], nwq * 4);
    cmp_band(op, "dbq", r_dbq[0], dbq_r, Cq, TOL_WGRAD, &bdbq); same(op, "dbq", r_dbq[0], r_dbq[1], Cq * 4);
    cmp_band(op, "dwk", r_dwk[0], dwk_r, nwq, TOL_WGRAD, &bdwk); same(op, "dwk", r_dwk[0], r_dwk[1], nwq * 4);
    cmp_band(op, "dbk", r_dbk[0], dbk_r, Cq, tol_dbk, &bdbk); same(op, "dbk", r_dbk[0], r_dbk[1], Cq * 4);
    cmp_band(op, "dwv", r_dwv[0], dwv_r, nwv, TOL_WGRAD, &bdwv); same(op, "dwv", r_dwv[0], r_dwv[1], nwv * 4);
    cmp_band(op, "dbv", r_dbv[0], dbv_r, C, TOL_WGRAD, &bdbv); same(op, "dbv", r_dbv[0], r_dbv[1], C * 4);
    cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, o_r, nx));
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);

    for (int r = 0; r < 2; r++) {
        free(go[r]); free(gq[r]); free(gk[r]); free(gv[r]); free(ga[r]); free(gO[r]);
        free(r_dx[r]); free(r_dwq[r]); free(r_dbq[r]); free(r_dwk[r]); free(r_dbk[r]);
        free(r_dwv[r]); free(r_dbv[r]);
    }
    free(x); free(wq); free(bq_); free(wk); free(bk_); free(wv); free(bv_); free(e_r);
    band_free(&bq); band_free(&bk); band_free(&bv); band_free(&be); band_free(&ba);
    band_free(&bo); band_free(&bout); band_free(&bdx); band_free(&bdwq); band_free(&bdbq);
    band_free(&bdwk); band_free(&bdbk); band_free(&bdwv); band_free(&bdbv);
    free(out_r); free(q_r); free(k_r); free(v_r); free(a_r); free(o_r); free(g); free(dx0);
    free(dwq0); free(dbq0); free(dwk0); free(dbk0); free(dwv0); free(dbv0);
    free(dx_r); free(dwq_r); free(dbq_r); free(dwk_r); free(dbk_r); free(dwv_r); free(dbv_r);
    cudaFree(d_x); cudaFree(d_wq); cudaFree(d_bq); cudaFree(d_wk); cudaFree(d_bk);
    cudaFree(d_wv); cudaFree(d_bv); cudaFree(d_gamma); cudaFree(d_out); cudaFree(d_q);
    cudaFree(d_k); cudaFree(d_v); cudaFree(d_a); cudaFree(d_o); cudaFree(d_g); cudaFree(d_dx);
    cudaFree(d_dwq); cudaFree(d_dbq); cudaFree(d_dwk); cudaFree(d_dbk); cudaFree(d_dwv);
    cudaFree(d_dbv); cudaFree(d_dg);
}

static void test_cam(const char *op, int B, int C, int N, int add) {
    size_t nx = (size_t)B * C * N, na = (size_t)B * C * C;
    float *x = hrand(nx, 0.0f, 0.5f);                                   /* [B,C,N] */
    float gamma[1] = {0.6f};
    float *out_r = xmalloc(nx * 4), *a_r = xmalloc(na * 4), *o_r = xmalloc(nx * 4);
    cam_forward_cpu(out_r, a_r, o_r, NULL, x, gamma, B, C, N, NULL, &cctx);

    float *d_x = dup_dev(x, nx * 4), *d_gamma = dup_dev(gamma, 4);
    float *d_out = dalloc(nx * 4), *d_a = dalloc(na * 4), *d_o = dalloc(nx * 4);
    float *go[2], *ga[2], *gO[2];
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_a, na * 4); poison(d_o, nx * 4);
        cam_forward_cuda(d_out, d_a, d_o, NULL, d_x, d_gamma, B, C, N, NULL, &gctx);
        gsync();
        go[r] = xmalloc(nx * 4); ga[r] = xmalloc(na * 4); gO[r] = xmalloc(nx * 4);
        down(go[r], d_out, nx * 4); down(ga[r], d_a, na * 4); down(gO[r], d_o, nx * 4);
    }
    /* tf32/bf16, the forward's chain: e = x·xᵀ (N terms), a = softmax(−e) (the sign
     * changes no magnitude), o = a·x (C terms along a's rows), out = γ·o + x */
    const long long cn = (long long)C * N, cc = (long long)C * C;
    band be = {0}, ba = {0}, bo = {0}, bout = {0};
    if (bands()) {
        be = band_new(na); ba = band_new(na); bo = band_new(nx); bout = band_new(nx);
        float *e_r = xmalloc(na * 4);
        band_gemm(&be, 0, false, true, C, C, N, x, N, cn, NULL, x, N, cn, NULL, C, cc, B);
        mm(e_r, false, true, C, C, N, x, N, cn, x, N, cn, C, cc, B);
        band_softmax(&ba, a_r, e_r, &be, (size_t)B * C, C, 1);
        band_softmax_gemm(&bo, 0, N, C, C, B, x, cn, 1, N, NULL, a_r, a_r, e_r, &be, cc, cn, 1, N);
        band_affine(&bout, &bo, gamma[0], o_r);
        free(e_r);
    }
    cmp_band(op, "out", go[0], out_r, nx, TOL_ATTN, &bout); same(op, "out", go[0], go[1], nx * 4);
    cmp_band(op, "a", ga[0], a_r, na, TOL_ATTN, &ba); same(op, "a", ga[0], ga[1], na * 4);
    cmp_band(op, "o", gO[0], o_r, nx, TOL_ATTN, &bo); same(op, "o", gO[0], gO[1], nx * 4);

    float *g = hrand(nx, -0.5f, 1.0f), *dx0 = hrand(nx, -0.1f, 0.1f);
    float dg0[1] = {NAN};   /* written (=) */
    if (!add) check_fill_nan(dx0, nx);
    float *dx_r = hcopy(dx0, nx), dg_r[1] = {dg0[0]};
    cam_backward_cpu(dx_r, dg_r, g, x, NULL, a_r, o_r, gamma, B, C, N, add, NULL, &cctx);
    up(d_a, a_r, na * 4); up(d_o, o_r, nx * 4);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dg = dalloc(4);
    float *r_dx[2], r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4); up(d_dg, dg0, 4);
        cam_backward_cuda(d_dx, d_dg, d_g, d_x, NULL, d_a, d_o, d_gamma, B, C, N, add, NULL, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4);
        down(r_dx[r], d_dx, nx * 4); down(&r_dg[r], d_dg, 4);
    }
    /* tf32/bf16, the backward's chain (as cam_backward_cuda): g = γ·dout; da = g·xᵀ (N
     * terms), dx += aᵀ·g (C terms), de = −softmax backward of da, dx += de·x (C terms
     * along a's rows) + deᵀ·x (C terms across them). dγ: no GEMM, fp32 tolerance. */
    band bdx = {0};
    if (bands()) {
        float *gd = xmalloc(nx * 4), *da = xmalloc(na * 4), *de = xmalloc(na * 4);
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        band bda = band_new(na), bde = band_new(na);
        bdx = band_new(nx);
        band_gemm(&bda, 0, false, true, C, C, N, gd, N, cn, NULL, x, N, cn, NULL, C, cc, B);
        mm(da, false, true, C, C, N, gd, N, cn, x, N, cn, C, cc, B);
        band_gemm(&bdx, 1, true, false, C, N, C, a_r, C, cc, NULL, gd, N, cn, NULL, N, cn, B);
        band_softmax(&bde, a_r, NULL, &bda, (size_t)B * C, C, 0);
        softmax_bwd_values(de, a_r, da, (size_t)B * C, C, -1.0f);
        band_softmax_gemm(&bdx, 1, N, C, C, B, x, cn, 1, N, NULL, a_r, de, NULL, &bda, cc, cn, 1, N);
        band_gemm(&bdx, 1, true, false, C, N, C, de, C, cc, &bde, x, N, cn, NULL, N, cn, B);
        band_free(&bda); band_free(&bde);
        free(gd); free(da); free(de);
    }
    cmp_band(op, "dx", r_dx[0], dx_r, nx, TOL_DGRAD, &bdx); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, o_r, nx));
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);

    band_free(&be); band_free(&ba); band_free(&bo); band_free(&bout); band_free(&bdx);
    for (int r = 0; r < 2; r++) { free(go[r]); free(ga[r]); free(gO[r]); free(r_dx[r]); }
    free(x); free(out_r); free(a_r); free(o_r); free(g); free(dx0); free(dx_r);
    cudaFree(d_x); cudaFree(d_gamma); cudaFree(d_out); cudaFree(d_a); cudaFree(d_o);
    cudaFree(d_g); cudaFree(d_dx); cudaFree(d_dg);
}

/* ---- bf16 storage (attention.h's st) -------------------------------------------------- */

static dath_bf16 *to16(const float *x, size_t n) {
    dath_bf16 *h = xmalloc((n ? n : 1) * 2);
    for (size_t i = 0; i < n; i++) h[i] = dath_bf16_from_float(x[i]);
    return h;
}

/* Both sides round the same fp32 values at the same points (attention.h), from products
 * of the same bf16 operands summed in other orders (~K·2^-24 relative apart): a stored
 * value agrees bit for bit unless its fp32 value lies that close to a rounding boundary,
 * then by one bf16 ulp (≤ 2^-7 relative), in a fraction ~K·2^-16 of the elements; what is
 * computed from a flipped value moves by its share of a sum, far less. TOL16_FWD: a saved
 * tensor within two ulps (a GPU's other summation orders: margin over the one ulp seen),
 * plus 2^-12 of its largest value; TOL16_BWD: an fp32 gradient within 2^-7 relative plus
 * 2^-10 of its largest value; out as tol16_out. On the
 * emulator at the small shapes the worst errors are 0 for the stored tensors and ≤ 2e-5
 * for the fp32 ones; at --full 0.02% of PAM's o are one ulp off (the table). dbk (0 in exact arithmetic, as the fp32 test's tol_dbk) is bounded by 2^-7
 * of Σ|dk|: bf16 rounds dk before its sum. */
static const tol TOL16_FWD = {0.0, 1.0 / 4096, 1.0 / 64};
static const tol TOL16_BWD = {0.0, 1.0 / 1024, 1.0 / 128};

/* out = γ·o + x, where o may be an ulp off (≤ 2^-7 of max|o|): γ times that, absolute
 * (x + γ·o can cancel to near 0 where o moved), on top of TOL16_FWD. */
static tol tol16_out(const dath_bf16 *o_ref, size_t n, float gamma) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)dath_bf16_to_float(o_ref[i])));
    tol t = TOL16_FWD;
    t.atol_abs = fabs((double)gamma) * mx / 128;
    return t;
}

/* The saved tensor widened, compared with the reference's. */
static void cmp16(const char *op, const char *tensor, const dath_bf16 *got, const dath_bf16 *ref, size_t n, tol t) {
    float *g = check_widen(got, n, DATH_STORE_BF16), *r = check_widen(ref, n, DATH_STORE_BF16);
    cmp(op, tensor, g, r, n, t);
    free(g); free(r);
}

static void test_pam16(const char *op, int B, int C, int Cq, int N, int add) {
    size_t nx = (size_t)B * C * N, nq = (size_t)B * Cq * N, na = (size_t)B * N * N;
    size_t nwq = (size_t)Cq * C, nwv = (size_t)C * C;
    float bd = 1.0f / sqrtf((float)C);
    float *x = hrand(nx, 0.0f, 1.0f);
    float *wq = hrand(nwq, -bd, bd), *bq_ = hrand(Cq, -bd, bd), *wk = hrand(nwq, -bd, bd), *bk_ = hrand(Cq, -bd, bd);
    float *wv = hrand(nwv, -bd, bd), *bv_ = hrand(C, -bd, bd);
    float gamma[1] = {0.7f};
    dath_bf16 *wq16 = to16(wq, nwq), *wk16 = to16(wk, nwq), *wv16 = to16(wv, nwv);
    const attn_store hst = {wq16, wk16, wv16};
    float *out_r = xmalloc(nx * 4);
    dath_bf16 *q_r = xmalloc(nq * 2), *k_r = xmalloc(nq * 2), *v_r = xmalloc(nx * 2), *a_r = xmalloc(na * 2);
    dath_bf16 *o_r = xmalloc(nx * 2);
    pam_forward_cpu(out_r, q_r, k_r, v_r, a_r, o_r, x, wq, bq_, wk, bk_, wv, bv_, gamma, B, C, Cq, N, &hst, &cctx);

    float *d_x = dup_dev(x, nx * 4), *d_wq = dup_dev(wq, nwq * 4), *d_bq = dup_dev(bq_, Cq * 4);
    float *d_wk = dup_dev(wk, nwq * 4), *d_bk = dup_dev(bk_, Cq * 4), *d_wv = dup_dev(wv, nwv * 4);
    float *d_bv = dup_dev(bv_, C * 4), *d_gamma = dup_dev(gamma, 4), *d_out = dalloc(nx * 4);
    const attn_store dst = {dup_dev(wq16, nwq * 2), dup_dev(wk16, nwq * 2), dup_dev(wv16, nwv * 2)};
    void *d_q = dalloc(nq * 2), *d_k = dalloc(nq * 2), *d_v = dalloc(nx * 2), *d_a = dalloc(na * 2);
    void *d_o = dalloc(nx * 2);
    float *go[2] = {xmalloc(nx * 4), xmalloc(nx * 4)};
    dath_bf16 *gq = xmalloc(nq * 2), *gk = xmalloc(nq * 2), *gv = xmalloc(nx * 2), *ga = xmalloc(na * 2);
    dath_bf16 *gO = xmalloc(nx * 2);
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_q, nq * 2); poison(d_k, nq * 2); poison(d_v, nx * 2);
        poison(d_a, na * 2); poison(d_o, nx * 2);
        pam_forward_cuda(d_out, d_q, d_k, d_v, d_a, d_o, d_x, d_wq, d_bq, d_wk, d_bk, d_wv, d_bv, d_gamma, B, C, Cq,
                         N, &dst, &gctx);
        gsync();
        down(go[r], d_out, nx * 4);
    }
    down(gq, d_q, nq * 2); down(gk, d_k, nq * 2); down(gv, d_v, nx * 2); down(ga, d_a, na * 2);
    down(gO, d_o, nx * 2);
    cmp(op, "out", go[0], out_r, nx, tol16_out(o_r, nx, gamma[0])); same(op, "out", go[0], go[1], nx * 4);
    cmp16(op, "q", gq, q_r, nq, TOL16_FWD);
    cmp16(op, "k", gk, k_r, nq, TOL16_FWD);
    cmp16(op, "v", gv, v_r, nx, TOL16_FWD);
    cmp16(op, "a", ga, a_r, na, TOL16_FWD);
    cmp16(op, "o", gO, o_r, nx, TOL16_FWD);

    /* backward from the reference's saved tensors */
    float *g = hrand(nx, -0.5f, 1.0f), *dx0 = hrand(nx, -0.1f, 0.1f);
    if (!add) check_fill_nan(dx0, nx);
    float *dx_r = hcopy(dx0, nx), *dwq_r = hzero(nwq), *dbq_r = hzero(Cq), *dwk_r = hzero(nwq), *dbk_r = hzero(Cq);
    float *dwv_r = hzero(nwv), *dbv_r = hzero(C), dg_r[1];
    pam_backward_cpu(dx_r, dwq_r, dbq_r, dwk_r, dbk_r, dwv_r, dbv_r, dg_r, g, x, q_r, k_r, v_r, a_r, o_r, wq, wk, wv,
                     gamma, B, C, Cq, N, add, &hst, &cctx);
    up(d_q, q_r, nq * 2); up(d_k, k_r, nq * 2); up(d_v, v_r, nx * 2); up(d_a, a_r, na * 2); up(d_o, o_r, nx * 2);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dwq = dalloc(nwq * 4), *d_dbq = dalloc(Cq * 4);
    float *d_dwk = dalloc(nwq * 4), *d_dbk = dalloc(Cq * 4), *d_dwv = dalloc(nwv * 4), *d_dbv = dalloc(C * 4);
    float *d_dg = dalloc(4);
    float *r_dx[2], *r_dwq = xmalloc(nwq * 4), *r_dbq = xmalloc(Cq * 4), *r_dwk = xmalloc(nwq * 4);
    float *r_dbk = xmalloc(Cq * 4), *r_dwv = xmalloc(nwv * 4), *r_dbv = xmalloc(C * 4), r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4);
        poison(d_dwq, nwq * 4); poison(d_dbq, Cq * 4); poison(d_dwk, nwq * 4); poison(d_dbk, Cq * 4);
        poison(d_dwv, nwv * 4); poison(d_dbv, C * 4); poison(d_dg, 4);   /* written (=) */
        pam_backward_cuda(d_dx, d_dwq, d_dbq, d_dwk, d_dbk, d_dwv, d_dbv, d_dg, d_g, d_x, d_q, d_k, d_v, d_a, d_o,
                          d_wq, d_wk, d_wv, d_gamma, B, C, Cq, N, add, &dst, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4);
        down(r_dx[r], d_dx, nx * 4); down(&r_dg[r], d_dg, 4);
    }
    down(r_dwq, d_dwq, nwq * 4); down(r_dbq, d_dbq, Cq * 4); down(r_dwk, d_dwk, nwq * 4);
    down(r_dbk, d_dbk, Cq * 4); down(r_dwv, d_dwv, nwv * 4); down(r_dbv, d_dbv, C * 4);
    cmp(op, "dx", r_dx[0], dx_r, nx, TOL16_BWD); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    cmp(op, "dwq", r_dwq, dwq_r, nwq, TOL16_BWD);
    cmp(op, "dbq", r_dbq, dbq_r, Cq, TOL16_BWD);
    cmp(op, "dwk", r_dwk, dwk_r, nwq, TOL16_BWD);
    {   /* dbk: rounding noise about 0 on both sides, bounded by Σ|dk| (of the reference's dk) */
        double sk = 0.0;
        float *dk = xmalloc(nq * 4), *de = xmalloc(na * 4), *qf = check_widen(q_r, nq, DATH_STORE_BF16);
        float *af = check_widen(a_r, na, DATH_STORE_BF16), *vf = check_widen(v_r, nx, DATH_STORE_BF16);
        float *gd = xmalloc(nx * 4), *da = xmalloc(na * 4);
        const long long cn = (long long)C * N, qn = (long long)Cq * N, nn = (long long)N * N;
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        mm(da, true, false, N, N, C, gd, N, cn, vf, N, cn, N, nn, B);
        softmax_bwd_values(de, af, da, (size_t)B * N, N, 1.0f);
        mm(dk, false, false, Cq, N, N, qf, N, qn, de, N, nn, N, qn, B);
        for (int c = 0; c < Cq; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++)
                for (int n = 0; n < N; n++) s += fabs(dk[(size_t)b * qn + (size_t)c * N + n]);
            sk = fmax(sk, s);
        }
        tol t = {sk / 128, 0.0, 0.0};
        cmp(op, "dbk", r_dbk, dbk_r, Cq, t);
        free(dk); free(de); free(qf); free(af); free(vf); free(gd); free(da);
    }
    cmp(op, "dwv", r_dwv, dwv_r, nwv, TOL16_BWD);
    cmp(op, "dbv", r_dbv, dbv_r, C, TOL16_BWD);
    {
        float *of = check_widen(o_r, nx, DATH_STORE_BF16);
        cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, of, nx));
        free(of);
    }
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);

    for (int r = 0; r < 2; r++) { free(go[r]); free(r_dx[r]); }
    free(x); free(wq); free(bq_); free(wk); free(bk_); free(wv); free(bv_); free(wq16); free(wk16); free(wv16);
    free(out_r); free(q_r); free(k_r); free(v_r); free(a_r); free(o_r); free(gq); free(gk); free(gv); free(ga);
    free(gO); free(g); free(dx0); free(dx_r); free(dwq_r); free(dbq_r); free(dwk_r); free(dbk_r); free(dwv_r);
    free(dbv_r); free(r_dwq); free(r_dbq); free(r_dwk); free(r_dbk); free(r_dwv); free(r_dbv);
    cudaFree(d_x); cudaFree(d_wq); cudaFree(d_bq); cudaFree(d_wk); cudaFree(d_bk); cudaFree(d_wv); cudaFree(d_bv);
    cudaFree(d_gamma); cudaFree(d_out); cudaFree((void *)dst.wq); cudaFree((void *)dst.wk); cudaFree((void *)dst.wv);
    cudaFree(d_q); cudaFree(d_k); cudaFree(d_v); cudaFree(d_a); cudaFree(d_o); cudaFree(d_g); cudaFree(d_dx);
    cudaFree(d_dwq); cudaFree(d_dbq); cudaFree(d_dwk); cudaFree(d_dbk); cudaFree(d_dwv); cudaFree(d_dbv);
    cudaFree(d_dg);
}

static void test_cam16(const char *op, int B, int C, int N, int add) {
    size_t nx = (size_t)B * C * N, na = (size_t)B * C * C;
    float *x = hrand(nx, 0.0f, 0.5f);
    float gamma[1] = {0.6f};
    const attn_store st = {NULL, NULL, NULL};
    float *out_r = xmalloc(nx * 4);
    dath_bf16 *a_r = xmalloc(na * 2), *o_r = xmalloc(nx * 2), *x16_r = xmalloc(nx * 2);
    cam_forward_cpu(out_r, a_r, o_r, x16_r, x, gamma, B, C, N, &st, &cctx);
    float *d_x = dup_dev(x, nx * 4), *d_gamma = dup_dev(gamma, 4), *d_out = dalloc(nx * 4);
    void *d_a = dalloc(na * 2), *d_o = dalloc(nx * 2), *d_x16 = dalloc(nx * 2);
    float *go[2] = {xmalloc(nx * 4), xmalloc(nx * 4)};
    dath_bf16 *ga = xmalloc(na * 2), *gO = xmalloc(nx * 2), *gx = xmalloc(nx * 2);
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_a, na * 2); poison(d_o, nx * 2); poison(d_x16, nx * 2);
        cam_forward_cuda(d_out, d_a, d_o, d_x16, d_x, d_gamma, B, C, N, &st, &gctx);
        gsync();
        down(go[r], d_out, nx * 4);
    }
    down(ga, d_a, na * 2); down(gO, d_o, nx * 2); down(gx, d_x16, nx * 2);
    {
        char name[128];
        snprintf(name, sizeof name, "%s.x16 = bf16(x), bit for bit", op);
        const int ok = !memcmp(gx, x16_r, nx * 2);
        table_add(op, "x16", nx, ok ? 0.0 : NAN, 0.0, check_true(name, ok));
    }
    cmp(op, "out", go[0], out_r, nx, tol16_out(o_r, nx, gamma[0])); same(op, "out", go[0], go[1], nx * 4);
    cmp16(op, "a", ga, a_r, na, TOL16_FWD);
    cmp16(op, "o", gO, o_r, nx, TOL16_FWD);

    float *g = hrand(nx, -0.5f, 1.0f), *dx0 = hrand(nx, -0.1f, 0.1f);
    if (!add) check_fill_nan(dx0, nx);
    float *dx_r = hcopy(dx0, nx), dg_r[1];
    cam_backward_cpu(dx_r, dg_r, g, x, x16_r, a_r, o_r, gamma, B, C, N, add, &st, &cctx);
    up(d_a, a_r, na * 2); up(d_o, o_r, nx * 2); up(d_x16, x16_r, nx * 2);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dg = dalloc(4);
    float *r_dx[2], r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4); poison(d_dg, 4);
        cam_backward_cuda(d_dx, d_dg, d_g, d_x, d_x16, d_a, d_o, d_gamma, B, C, N, add, &st, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4);
        down(r_dx[r], d_dx, nx * 4); down(&r_dg[r], d_dg, 4);
    }
    cmp(op, "dx", r_dx[0], dx_r, nx, TOL16_BWD); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    {
        float *of = check_widen(o_r, nx, DATH_STORE_BF16);
        cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, of, nx));
        free(of);
    }
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);
    for (int r = 0; r < 2; r++) { free(go[r]); free(r_dx[r]); }
    free(x); free(out_r); free(a_r); free(o_r); free(x16_r); free(ga); free(gO); free(gx); free(g); free(dx0);
    free(dx_r);
    cudaFree(d_x); cudaFree(d_gamma); cudaFree(d_out); cudaFree(d_a); cudaFree(d_o); cudaFree(d_x16); cudaFree(d_g);
    cudaFree(d_dx); cudaFree(d_dg);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_pam("attention.pam", B, C5, CQ, N, 0);
    if (!full) {   /* PAM's bias-gradient row sums in slices, its chunks adding: B 128, 8×8, a
                    * scratch of 64 images (2 chunks of ld = 4096 pixels: 2 slices a row) */
        const size_t per = 3 * 32 * 64 + 2 * 4 * 64 + 64 * 64;
        dath_ctx keep = gctx;
        char err[256];
        if (gpu->ctx_init(&gctx, (2048 + 6 * 64 + 64 * per + 100) * sizeof(float), precision, err, sizeof err)) {
            printf("FAIL attention: ctx_init: %s\n", err);
            exit(1);
        }
        test_pam("attention.pam B128 8x8 2 chunks dx+=", 128, 32, 4, 64, 1);
        gpu->ctx_free(&gctx);
        gctx = keep;
    }
    test_cam("attention.cam", B, C5, N, 0);
    test_cam("attention.cam dx+=", B, C5, N, 1);   /* dath-1: after PAM */
    cuda_check_lap("attention", &t0);
    /* bf16 storage where the context has it (precision bf16 on sm_80+), as host/net.c */
    if (attn_store_bf16(&gctx)) {
        test_pam16("attention.pam bf16", B, C5, CQ, N, 0);
        test_cam16("attention.cam bf16", B, C5, N, 0);
        test_cam16("attention.cam bf16 dx+=", B, C5, N, 1);
        if (!full) {   /* chunks: a scratch of half the batch's images */
            dath_ctx keep = gctx;
            char err[256];
            const size_t per = ATTN_BF16_PAM_BWD(32, 4, 64);
            if (gpu->ctx_init(&gctx, (2048 + 7 * 64 + 4 * per + 100) * sizeof(float), precision, err, sizeof err)) {
                printf("FAIL attention: ctx_init: %s\n", err);
                exit(1);
            }
            test_pam16("attention.pam bf16 B8 8x8 2 chunks dx+=", 8, 32, 4, 64, 1);
            gpu->ctx_free(&gctx);
            gctx = keep;
        }
        cuda_check_lap("attention bf16 storage", &t0);
    } else {
        printf("attention bf16 storage: not at this precision and device (precision %s, sm %d; it needs bf16 on "
               "sm_80+)\n", backend_precisions[gctx.precision], gctx.sm);
    }
    return cuda_check_end();
}

#endif
