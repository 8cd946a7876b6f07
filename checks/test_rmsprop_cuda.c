/* checks/test_rmsprop_cuda.c — the RMSProp update (rmsprop_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- RMSProp and the transform ------------------------------------------------------- */

/* offset 1 (floats) makes the buffers 4 bytes off 16-byte alignment (and the bf16 copy 2
 * bytes off 8): the scalar path. Run 0 has no guard and no copy, run 1 an all-finite guard
 * and the bf16 copy: the same theta and v bits (and the reference's), and the copy the
 * reference's bf16(theta). Then a NaN in the guard's last slot, and −inf in its first:
 * theta, v and the copy untouched. Last, rmsprop_narrow alone against its reference. */
#define RMS_NGUARD 3                               /* J1, J2, J3 */
static void test_rmsprop(const char *op, size_t n, int offset) {
    const float lr = 1e-3f, alpha = 0.99f, eps = 1e-8f, wd = 1e-2f;
    float *th = hrand(n, -1.0f, 1.0f), *v = hrand(n, 0.0f, 1e-3f), *g = hrand(n, -1.0f, 1.0f);
    v[0] = 0.0f; g[0] = 0.0f; th[0] = 0.0f;              /* √0 + eps: eps alone */
    float *th_r = hcopy(th, n), *v_r = hcopy(v, n);
    dath_bf16 *c_r = xmalloc(n * 2), *c_g = xmalloc(n * 2), *c_0 = xmalloc(n * 2);
    rmsprop_step_cpu(th_r, v_r, c_r, g, n, lr, alpha, eps, wd, NULL, 0, &cctx);
    size_t bytes = (n + offset) * 4;
    float *d_th = dalloc(bytes), *d_v = dalloc(bytes), *d_g = dalloc(bytes);
    dath_bf16 *d_c = dalloc((n + offset) * 2);
    for (size_t i = 0; i < n; i++) c_0[i] = (dath_bf16)(0x7fc1u + i % 7);   /* a pattern no step writes */
    const float finite[RMS_NGUARD] = {4.5f, 0.0f, -3.0e38f};
    float *d_guard = dup_dev(finite, sizeof finite);             /* [RMS_NGUARD] */
    float *gt[2] = {xmalloc(n * 4), xmalloc(n * 4)}, *gv[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        up(d_th + offset, th, n * 4); up(d_v + offset, v, n * 4); up(d_g + offset, g, n * 4);
        rmsprop_step_cuda(d_th + offset, d_v + offset, r ? d_c + offset : NULL, d_g + offset, n, lr, alpha,
                          eps, wd, r ? d_guard : NULL, r ? RMS_NGUARD : 0, &gctx);
        gsync();
        down(gt[r], d_th + offset, n * 4); down(gv[r], d_v + offset, n * 4);
    }
    down(c_g, d_c + offset, n * 2);
    {
        char name[160];
        snprintf(name, sizeof name, "%s.bf16 copy == bf16(reference theta) (bitwise)", op);
        const int ok = !memcmp(c_g, c_r, n * 2);
        table_add(op, "copy", n, ok ? 0.0 : NAN, 0.0, check_true(name, ok));
    }
    up(d_c + offset, c_0, n * 2);
    cmp(op, "theta", gt[0], th_r, n, TOL_EXACT);
    cmp(op, "v", gv[0], v_r, n, TOL_EXACT);
    same(op, "theta", gt[0], gt[1], n * 4);     /* guard NULL vs finite guard */
    same(op, "v", gv[0], gv[1], n * 4);
    for (int b = 0; b < 2; b++) {
        float bad[RMS_NGUARD];
        memcpy(bad, finite, sizeof bad);
        if (b == 0) bad[RMS_NGUARD - 1] = NAN; else bad[0] = -INFINITY;
        up(d_guard, bad, sizeof bad);
        up(d_th + offset, th, n * 4); up(d_v + offset, v, n * 4);
        rmsprop_step_cuda(d_th + offset, d_v + offset, d_c + offset, d_g + offset, n, lr, alpha, eps, wd,
                          d_guard, RMS_NGUARD, &gctx);
        gsync();
        down(gt[0], d_th + offset, n * 4); down(gv[0], d_v + offset, n * 4); down(c_g, d_c + offset, n * 2);
        int ok = !memcmp(gt[0], th, n * 4) && !memcmp(gv[0], v, n * 4) && !memcmp(c_g, c_0, n * 2);
        char name[160];
        snprintf(name, sizeof name, "%s.guard %s: theta, v and the copy untouched (bitwise)", op,
                 b == 0 ? "NaN in the last slot" : "-inf in the first slot");
        table_add(op, b == 0 ? "skip(NaN)" : "skip(-inf)", n, ok ? 0.0 : NAN, 0.0,
                  check_true(name, ok));
    }
    rmsprop_narrow_cpu(c_r, th, n, &cctx);
    up(d_th + offset, th, n * 4);
    rmsprop_narrow_cuda(d_c + offset, d_th + offset, n, &gctx);
    gsync();
    down(c_g, d_c + offset, n * 2);
    {
        char name[160];
        snprintf(name, sizeof name, "%s.narrow: bf16(theta) == the reference's (bitwise)", op);
        const int ok = !memcmp(c_g, c_r, n * 2);
        table_add(op, "narrow", n, ok ? 0.0 : NAN, 0.0, check_true(name, ok));
    }
    for (int r = 0; r < 2; r++) { free(gt[r]); free(gv[r]); }
    free(th); free(v); free(g); free(th_r); free(v_r); free(c_r); free(c_g); free(c_0);
    cudaFree(d_th); cudaFree(d_v); cudaFree(d_g); cudaFree(d_guard); cudaFree(d_c);
}

/* The transform of a contiguous batch (index NULL) and, from a set of N = B + 2 images,
 * of the rows an index names (out of order, the last and first rows, one repeated):
 * both must be the reference's bits. */

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    char err[256];
    size_t nparams = 100003;
    if (full) {
        dath_model *m = model_create(VARIANT_DATH, 64, 80, 224, err, sizeof err);
        if (m) { nparams = m->n; model_free(m); } else nparams = (size_t)1 << 27;
    }
    test_rmsprop("rmsprop.aligned", nparams, 0);
    test_rmsprop("rmsprop.unaligned", full ? ((size_t)1 << 20) + 3 : 1003, 1);
    printf("-- rmsprop (n = %zu): %.1f s\n", nparams, dath_now() - t0);
    return cuda_check_end();
}

#endif
