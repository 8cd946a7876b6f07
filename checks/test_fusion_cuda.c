/* checks/test_fusion_cuda.c — dropout and the fusion of the two streams (dropout_*_cuda, fuse_*_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- dropout and fusion -------------------------------------------------------------- */

#define DROP_SEED 0x0123456789abcdefull

static void test_dropout(const char *op, int B, int D, float p, uint32_t tag,
                         uint32_t step, uint32_t sample0) {
    size_t n = (size_t)B * D;
    float *x = hrand(n, -2.0f, 2.0f), *y_r = xmalloc(n * 4);               /* [B,D] */
    dropout_forward_cpu(y_r, x, B, D, p, DROP_SEED, tag, &step, sample0, DATH_STORE_F32, &cctx);
    uint32_t *d_step = dup_dev(&step, 4);                                   /* [1] */
    float *d_x = dup_dev(x, n * 4), *d_y = dalloc(n * 4);
    float *got[3] = {xmalloc(n * 4), xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_y, n * 4);
        dropout_forward_cuda(d_y, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, DATH_STORE_F32, &gctx);
        gsync();
        down(got[r], d_y, n * 4);
    }
    /* in place: y and x the same buffer */
    dropout_forward_cuda(d_x, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, DATH_STORE_F32, &gctx);
    gsync();
    down(got[2], d_x, n * 4);
    cmp(op, "y", got[0], y_r, n, TOL_EXACT);
    cmp(op, "y(in place)", got[2], y_r, n, TOL_EXACT);
    same(op, "y", got[0], got[1], n * 4);

    /* the step is read on the device when the kernel runs: another value written into
     * the same buffer gives that step's mask (the reference's at step + 1) */
    uint32_t step1 = step + 1;
    float *y1_r = xmalloc(n * 4);
    dropout_forward_cpu(y1_r, x, B, D, p, DROP_SEED, tag, &step1, sample0, DATH_STORE_F32, &cctx);
    up(d_x, x, n * 4);
    up(d_step, &step1, 4);
    poison(d_y, n * 4);
    dropout_forward_cuda(d_y, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, DATH_STORE_F32, &gctx);
    gsync();
    down(got[1], d_y, n * 4);
    cmp(op, "y(*step+1)", got[1], y1_r, n, TOL_EXACT);
    if (p > 0.0f && p < 1.0f) {
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += (got[1][i] != 0.0f) != (got[0][i] != 0.0f);
        char name[160];
        snprintf(name, sizeof name, "%s.*step changed on the device -> another mask "
                 "(%zu of %zu differ)", op, differ, n);
        table_add(op, "mask(*step+1)", n, (double)differ, 0.0, check_true(name, differ > 0));
    }
    up(d_step, &step, 4);

    float *dy = hrand(n, -1.0f, 1.0f), *dx0 = hrand(n, -0.5f, 0.5f);
    check_fill_nan(dx0, n);   /* dx is written (=), not added to */
    float *dx_r = hcopy(dx0, n);
    dropout_backward_cpu(dx_r, dy, B, D, p, DROP_SEED, tag, &step, sample0, &cctx);
    float *d_dy = dup_dev(dy, n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_x, dx0, n * 4);
        dropout_backward_cuda(d_x, d_dy, B, D, p, DROP_SEED, tag, d_step, sample0, &gctx);
        gsync();
        down(got[r], d_x, n * 4);
    }
    cmp(op, "dx", got[0], dx_r, n, TOL_EXACT);
    same(op, "dx", got[0], got[1], n * 4);
    for (int r = 0; r < 3; r++) free(got[r]);
    free(x); free(y_r); free(y1_r); free(dy); free(dx0); free(dx_r);
    cudaFree(d_x); cudaFree(d_y); cudaFree(d_dy); cudaFree(d_step);
}

static void test_fuse(const char *op, size_t n, int two) {
    float *a = hrand(n, -1.0f, 1.0f), *b = two ? hrand(n, -1.0f, 1.0f) : NULL;   /* [n] */
    float *f_r = xmalloc(n * 4);
    fuse_forward_cpu(f_r, a, b, n, &cctx);
    float *d_a = dup_dev(a, n * 4), *d_b = two ? dup_dev(b, n * 4) : NULL, *d_f = dalloc(n * 4);
    float *got[2] = {xmalloc(n * 4), xmalloc(n * 4)}, *got_b[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_f, n * 4);
        fuse_forward_cuda(d_f, d_a, d_b, n, &gctx);
        gsync();
        down(got[r], d_f, n * 4);
    }
    cmp(op, "f", got[0], f_r, n, TOL_EXACT);
    same(op, "f", got[0], got[1], n * 4);

    float *df = hrand(n, -1.0f, 1.0f), *da0 = hrand(n, -0.5f, 0.5f), *db0 = hrand(n, -0.5f, 0.5f);
    check_fill_nan(da0, n);   /* da and db are written (=); db untouched with one stream */
    if (two) check_fill_nan(db0, n);
    float *da_r = hcopy(da0, n), *db_r = hcopy(db0, n);
    fuse_backward_cpu(da_r, two ? db_r : NULL, df, a, b, n, &cctx);
    float *d_df = dup_dev(df, n * 4), *d_da = dalloc(n * 4), *d_db = dalloc(n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_da, da0, n * 4); up(d_db, db0, n * 4);
        fuse_backward_cuda(d_da, two ? d_db : NULL, d_df, d_a, d_b, n, &gctx);
        gsync();
        down(got[r], d_da, n * 4); down(got_b[r], d_db, n * 4);
    }
    cmp(op, "da", got[0], da_r, n, TOL_EXACT);
    cmp(op, "db", got_b[0], db_r, n, TOL_EXACT);   /* untouched when one stream */
    same(op, "da", got[0], got[1], n * 4);
    same(op, "db", got_b[0], got_b[1], n * 4);
    for (int r = 0; r < 2; r++) { free(got[r]); free(got_b[r]); }
    free(a); free(b); free(f_r); free(df); free(da0); free(db0); free(da_r); free(db_r);
    cudaFree(d_a); cudaFree(d_b); cudaFree(d_f); cudaFree(d_df); cudaFree(d_da); cudaFree(d_db);
}

/* bf16 storage of x and y (fc6's and fc7's inputs, host/net.c): the same bf16 bytes in, and
 * each side rounds the same fp32 product once: the reference's bits, in place too. */
static void test_dropout_bf16(const char *op, int B, int D, float p, uint32_t tag, uint32_t step, uint32_t sample0) {
    size_t n = (size_t)B * D;
    float *x = hrand(n, -2.0f, 2.0f);
    dath_bf16 *x16 = xmalloc(n * 2), *y_r = xmalloc(n * 2), *got = xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) x16[i] = dath_bf16_from_float(x[i]);
    dropout_forward_cpu(y_r, x16, B, D, p, DROP_SEED, tag, &step, sample0, DATH_STORE_BF16, &cctx);
    uint32_t *d_step = dup_dev(&step, 4);
    void *d_x = dup_dev(x16, n * 2), *d_y = dalloc(n * 2);
    poison(d_y, n * 2);
    dropout_forward_cuda(d_y, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, DATH_STORE_BF16, &gctx);
    gsync();
    down(got, d_y, n * 2);
    float *gw = check_widen(got, n, DATH_STORE_BF16), *rw = check_widen(y_r, n, DATH_STORE_BF16);
    cmp(op, "y", gw, rw, n, TOL_EXACT);
    dropout_forward_cuda(d_x, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, DATH_STORE_BF16, &gctx);
    gsync();
    down(got, d_x, n * 2);
    free(gw);
    gw = check_widen(got, n, DATH_STORE_BF16);
    cmp(op, "y(in place)", gw, rw, n, TOL_EXACT);
    free(x); free(x16); free(y_r); free(got); free(gw); free(rw);
    cudaFree(d_step); cudaFree(d_x); cudaFree(d_y);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_dropout("dropout.fc6in", B, FLAT, 0.5f, RNG_DROPOUT + 0, 7, full ? 128 : 3);
    test_dropout("dropout.fc7in", B, HID, 0.5f, RNG_DROPOUT + 3, 123456, 0);
    test_dropout("dropout.p0", B, 100, 0.0f, RNG_DROPOUT + 1, 1, 0);
    test_dropout("dropout.p1", B, 100, 1.0f, RNG_DROPOUT + 1, 1, 0);
    test_dropout_bf16("dropout.fc6in bf16", B, FLAT, 0.5f, RNG_DROPOUT + 0, 7, 3);
    test_dropout_bf16("dropout.fc7in bf16", B, HID, 0.5f, RNG_DROPOUT + 3, 123456, 0);
    test_fuse("fuse.two", (size_t)B * HID, 1);
    test_fuse("fuse.one", (size_t)B * HID + 3, 0);
    cuda_check_lap("fusion", &t0);
    return cuda_check_end();
}

#endif
