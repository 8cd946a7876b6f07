/* checks/test_loss_cuda.c — tanh and the three losses J1, J2, J3 (kernels/loss.cu) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- tanh and the losses -------------------------------------------------------------- */

static void test_tanh(const char *op, size_t n) {
    float *z = hrand(n, -4.0f, 4.0f), *h_r = xmalloc(n * 4);                   /* [n] */
    tanh_forward_cpu(h_r, z, n, &cctx);
    float *d_z = dup_dev(z, n * 4), *d_h = dalloc(n * 4);
    float *got[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_h, n * 4);
        tanh_forward_cuda(d_h, d_z, n, &gctx);
        gsync();
        down(got[r], d_h, n * 4);
    }
    cmp(op, "h", got[0], h_r, n, TOL_TANH);
    same(op, "h", got[0], got[1], n * 4);

    float *dh = hrand(n, -1.0f, 1.0f), *dz0 = hrand(n, -0.5f, 0.5f), *dz_r = hcopy(dz0, n);
    tanh_backward_cpu(dz_r, dh, h_r, n, &cctx);
    float *d_dh = dup_dev(dh, n * 4);
    up(d_h, h_r, n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_z, dz0, n * 4);
        tanh_backward_cuda(d_z, d_dh, d_h, n, &gctx);
        gsync();
        down(got[r], d_z, n * 4);
    }
    cmp(op, "dz", got[0], dz_r, n, TOL_EXACT);
    same(op, "dz", got[0], got[1], n * 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(z); free(h_r); free(dh); free(dz0); free(dz_r);
    cudaFree(d_z); cudaFree(d_h); cudaFree(d_dh);
}

/* Labels [B,C]: multi-label (each class on with probability dens, about 1 row in 10
 * with no label at all), or single-label (one-hot). mode 2: every row has class 0
 * only (no negatives: no triplet). */
static float *make_labels(int B, int C, int mode, double dens) {
    float *lab = xmalloc((size_t)B * C * 4);
    for (int b = 0; b < B; b++) {
        float *l = lab + (size_t)b * C;
        for (int c = 0; c < C; c++) l[c] = 0.0f;
        if (mode == 2) { l[0] = 1.0f; continue; }
        if (mode == 0) { l[check_next(&seed_state) % (uint64_t)C] = 1.0f; continue; }
        if (check_unif(&seed_state) < 0.1) continue;     /* unlabeled row */
        for (int c = 0; c < C; c++) l[c] = check_unif(&seed_state) < dens ? 1.0f : 0.0f;
    }
    return lab;
}

#define J1_MARGIN 5.0f
#define LOSS_SCALE 0.75f

static void test_j1(const char *op, int B, int K, int C, int mode) {
    size_t nh = (size_t)B * K;
    float *h = hrand(nh, -1.0f, 1.0f);                                      /* [B,K] */
    float *lab = make_labels(B, C, mode, 3.0 / C);                          /* [B,C] */
    float *dh0 = hrand(nh, -0.01f, 0.01f), *dh_r = hcopy(dh0, nh);
    float loss_r = 0.0f;
    int64_t nt_r = 0;
    j1_triplet_cpu(&loss_r, &nt_r, dh_r, h, lab, B, K, C, J1_MARGIN, LOSS_SCALE, &cctx);

    float *d_h = dup_dev(h, nh * 4), *d_lab = dup_dev(lab, (size_t)B * C * 4);
    float *d_dh = dalloc(nh * 4), *d_loss = dalloc(4);
    int64_t *d_nt = dalloc(8);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[3];
    int64_t nt[3];
    for (int r = 0; r < 2; r++) {
        up(d_dh, dh0, nh * 4); poison(d_loss, 4); poison(d_nt, 8);
        j1_triplet_cuda(d_loss, d_nt, d_dh, d_h, d_lab, B, K, C, J1_MARGIN, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dh, nh * 4); down(&loss[r], d_loss, 4); down(&nt[r], d_nt, 8);
    }
    /* loss only (dh NULL, ntrip NULL) */
    poison(d_loss, 4);
    j1_triplet_cuda(d_loss, NULL, NULL, d_h, d_lab, B, K, C, J1_MARGIN, LOSS_SCALE, &gctx);
    gsync();
    down(&loss[2], d_loss, 4);

    char name[160];
    snprintf(name, sizeof name, "%s.ntrip identical (got %lld, ref %lld)", op,
             (long long)nt[0], (long long)nt_r);
    table_add(op, "ntrip", 1, fabs((double)nt[0] - (double)nt_r), 0.0,
              check_true(name, nt[0] == nt_r && nt[1] == nt_r));
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "loss(no grad)", &loss[2], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dh", got[0], dh_r, nh, TOL_DOUBLE);
    same(op, "dh", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(h); free(lab); free(dh0); free(dh_r);
    cudaFree(d_h); cudaFree(d_lab); cudaFree(d_dh); cudaFree(d_loss); cudaFree(d_nt);
}

static void test_j2(const char *op, int B, int C, int multi) {
    size_t ny = (size_t)B * C;
    float *y = hrand(ny, -10.0f, 10.0f);       /* [B,C]: wide enough for eq. 7's clamp */
    float *lab = make_labels(B, C, multi ? 1 : 0, 2.0 / C);                 /* [B,C] */
    float norm = (float)(2 * B);               /* as if a second rank held B more rows */
    float *dy0 = hrand(ny, -0.01f, 0.01f), *dy_r = hcopy(dy0, ny), loss_r = 0.0f;
    j2_class_cpu(&loss_r, dy_r, y, lab, B, C, multi, norm, LOSS_SCALE, &cctx);

    float *d_y = dup_dev(y, ny * 4), *d_lab = dup_dev(lab, ny * 4), *d_dy = dalloc(ny * 4);
    float *d_loss = dalloc(4), *got[2] = {xmalloc(ny * 4), xmalloc(ny * 4)}, loss[3];
    for (int r = 0; r < 2; r++) {
        up(d_dy, dy0, ny * 4); poison(d_loss, 4);
        j2_class_cuda(d_loss, d_dy, d_y, d_lab, B, C, multi, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dy, ny * 4); down(&loss[r], d_loss, 4);
    }
    poison(d_loss, 4);
    j2_class_cuda(d_loss, NULL, d_y, d_lab, B, C, multi, norm, LOSS_SCALE, &gctx);
    gsync();
    down(&loss[2], d_loss, 4);
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "loss(no grad)", &loss[2], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dy", got[0], dy_r, ny, TOL_DOUBLE);
    same(op, "dy", got[0], got[1], ny * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(y); free(lab); free(dy0); free(dy_r);
    cudaFree(d_y); cudaFree(d_lab); cudaFree(d_dy); cudaFree(d_loss);
}

static void test_j3(const char *op, int B, int K) {
    size_t nh = (size_t)B * K;
    float *h = hrand(nh, -1.0f, 1.0f);                                      /* [B,K] */
    h[0] = 0.0f;                                  /* sign(0) = 0 */
    if (nh > 1) h[1] = 1.0f;                      /* | |h| − 1 | = 0: sign 0 */
    float norm = (float)(2 * B);
    float *dh0 = hrand(nh, -0.01f, 0.01f), *dh_r = hcopy(dh0, nh), loss_r = 0.0f;
    j3_quant_cpu(&loss_r, dh_r, h, B, K, norm, LOSS_SCALE, &cctx);
    float *d_h = dup_dev(h, nh * 4), *d_dh = dalloc(nh * 4), *d_loss = dalloc(4);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[2];
    for (int r = 0; r < 2; r++) {
        up(d_dh, dh0, nh * 4); poison(d_loss, 4);
        j3_quant_cuda(d_loss, d_dh, d_h, B, K, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dh, nh * 4); down(&loss[r], d_loss, 4);
    }
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dh", got[0], dh_r, nh, TOL_EXACT);
    same(op, "dh", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(h); free(dh0); free(dh_r);
    cudaFree(d_h); cudaFree(d_dh); cudaFree(d_loss);
}

/* J3 with tanh's backward fused: the loss (double sums in another order: TOL_DOUBLE)
 * and dz += (dh + scale·dJ3/dh)·(1 − h²) (every operation rounded as the reference:
 * TOL_EXACT), with the other consumers' dh and with dh NULL. h holds exact 0 and ±1. */
static void test_j3_tanh(const char *op, int B, int K, int with_dh) {
    size_t nh = (size_t)B * K;
    float *z = hrand(nh, -3.0f, 3.0f), *h = xmalloc(nh * 4);                /* [B,K] */
    tanh_forward_cpu(h, z, nh, &cctx);
    h[0] = 0.0f;                                  /* sign(0) = 0 */
    if (nh > 1) h[1] = 1.0f;                      /* sign(|h| − 1) = 0 and 1 − h² = 0 */
    if (nh > 2) h[2] = -1.0f;
    float norm = (float)(2 * B);
    float *dh = with_dh ? hrand(nh, -0.05f, 0.05f) : NULL;                  /* [B,K] */
    float *dz0 = hrand(nh, -0.01f, 0.01f), *dz_r = hcopy(dz0, nh), loss_r = 0.0f;
    j3_tanh_backward_cpu(&loss_r, dz_r, dh, h, B, K, norm, LOSS_SCALE, &cctx);
    float *d_h = dup_dev(h, nh * 4), *d_dh = with_dh ? dup_dev(dh, nh * 4) : NULL;
    float *d_dz = dalloc(nh * 4), *d_loss = dalloc(4);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[2];
    for (int r = 0; r < 2; r++) {
        up(d_dz, dz0, nh * 4); poison(d_loss, 4);
        j3_tanh_backward_cuda(d_loss, d_dz, d_dh, d_h, B, K, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dz, nh * 4); down(&loss[r], d_loss, 4);
    }
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dz", got[0], dz_r, nh, TOL_EXACT);
    same(op, "dz", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    if (with_dh) {   /* dh is read only */
        down(got[1], d_dh, nh * 4);
        int ok = memcmp(got[1], dh, nh * 4) == 0;
        char name[128];
        snprintf(name, sizeof name, "%s.dh untouched (read only)", op);
        table_add(op, "dh(read only)", nh, ok ? 0.0 : NAN, 0.0, check_true(name, ok));
    }
    for (int r = 0; r < 2; r++) free(got[r]);
    free(z); free(h); free(dh); free(dz0); free(dz_r);
    cudaFree(d_h); cudaFree(d_dh); cudaFree(d_dz); cudaFree(d_loss);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_tanh("tanh", (size_t)JB * 64 + 5);
    test_j1("j1.K16C21", JB, 16, 21, 1);
    test_j1("j1.K64C80", JB, 64, 80, 1);
    test_j1("j1.single.K64C21", JB, 64, 21, 0);
    test_j1("j1.no-triplet", JB, 16, 5, 2);
    test_j1("j1.B1", 1, 16, 5, 1);
    if (full) test_j1("j1.B256.K64C80", 256, 64, 80, 1);
    test_j2("j2.single.C21", JB, 21, 0);
    test_j2("j2.single.C80", JB, 80, 0);
    test_j2("j2.multi.C21", JB, 21, 1);
    test_j2("j2.multi.C80", JB, 80, 1);
    test_j3("j3.K16", JB, 16);
    test_j3("j3.K64", JB, 64);
    test_j3_tanh("j3_tanh.K16", JB, 16, 1);
    test_j3_tanh("j3_tanh.K64", JB, 64, 1);
    test_j3_tanh("j3_tanh.K64.dh=NULL", JB, 64, 0);
    cuda_check_lap("tanh, losses", &t0);
    return cuda_check_end();
}

#endif
