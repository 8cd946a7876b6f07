/* checks/test_transform_cuda.c — the input transform: crop, flip, normalise, by rows of the decoded set (transform_cuda) on CUDA against the C reference (checks/cuda_check.h says
 * how: the arguments, the shapes, the tolerances, the table). */
#include "cuda_check.h"

#ifdef DATH_CUDA

/* ---- the transform ------------------------------------------------------------- */

static void test_transform(const char *op, int B, int S) {
    int R = transform_cache_side(S), N = B + 2;
    size_t unit = (size_t)R * R * 3, nin = (size_t)N * unit, nout = (size_t)B * 3 * S * S;
    uint8_t *in = xmalloc(nin);                                     /* [N,R,R,3] */
    for (size_t i = 0; i < nin; i++) in[i] = (uint8_t)(check_next(&seed_state) >> 56);
    int32_t *crop = xmalloc((size_t)B * 3 * 4);                      /* [B,3] */
    for (int b = 0; b < B; b++) {
        crop[3 * b + 0] = (int32_t)(check_next(&seed_state) % (uint64_t)(R - S + 1));
        crop[3 * b + 1] = (int32_t)(check_next(&seed_state) % (uint64_t)(R - S + 1));
        crop[3 * b + 2] = (int32_t)(check_next(&seed_state) & 1);
    }
    crop[0] = crop[1] = 0; crop[2] = 1;                              /* corners */
    if (B > 1) { crop[3] = crop[4] = R - S; crop[5] = 0; }
    int32_t *index = xmalloc((size_t)B * 4);                         /* [B] rows of in */
    for (int b = 0; b < B; b++) index[b] = (int32_t)(check_next(&seed_state) % (uint64_t)N);
    index[0] = N - 1;                                                /* the last row */
    if (B > 1) index[1] = 0;
    if (B > 2) index[B - 1] = index[0];                              /* a repeat */
    float *out_r = xmalloc(nout * 4), *outi_r = xmalloc(nout * 4);   /* [B,3,S,S] */
    transform_batch_cpu(out_r, in, crop, NULL, B, R, S, &cctx);
    transform_batch_cpu(outi_r, in, crop, index, B, R, S, &cctx);
    uint8_t *d_in = dup_dev(in, nin);
    int32_t *d_crop = dup_dev(crop, (size_t)B * 3 * 4), *d_index = dup_dev(index, (size_t)B * 4);
    float *d_out = dalloc(nout * 4), *got[3] = {xmalloc(nout * 4), xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 3; r++) {
        poison(d_out, nout * 4);
        transform_batch_cuda(d_out, d_in, d_crop, r == 2 ? d_index : NULL, B, R, S, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    cmp(op, "out", got[0], out_r, nout, TOL_EXACT);
    same(op, "out", got[0], got[1], nout * 4);
    cmp(op, "out(index)", got[2], outi_r, nout, TOL_EXACT);
    for (int r = 0; r < 3; r++) free(got[r]);
    free(in); free(crop); free(index); free(out_r); free(outi_r);
    cudaFree(d_in); cudaFree(d_crop); cudaFree(d_index); cudaFree(d_out);
}

int main(int argc, char **argv) {
    cuda_check_start(argc, argv);
    const int B = CS.B, S = CS.S, HID = CS.HID, C5 = CS.C5, CQ = CS.CQ, N = CS.N, P6 = CS.P6;
    const int FLAT = CS.FLAT, JB = CS.JB;
    const conv_case *cc = CS.cc;
    (void)B; (void)S; (void)HID; (void)C5; (void)CQ; (void)N; (void)P6; (void)FLAT; (void)JB; (void)cc;
    double t0 = dath_now();
    test_transform("transform", full ? B : 3, S == 63 ? 35 : S);
    cuda_check_lap("transform", &t0);
    return cuda_check_end();
}

#endif
