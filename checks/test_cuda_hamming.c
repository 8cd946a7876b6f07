/* checks/test_cuda_hamming.c — hamming_eval_cuda (kernels/hamming.cu) against
 * hamming_eval_cpu (kernels/hamming.c) on random codes with many ties:
 *   8-bit codes (9 distance buckets, thousands of items each: the tie bounds' split
 *   bucket has thousands of choices), 64-bit codes drawn near a few prototypes (many
 *   ties at small distances), 640-bit codes (bucket arrays too large for shared memory,
 *   so they live in scratch), label masks of 1 and 2 words, queries and items without
 *   labels; K = 1, 100, 1000, all (0), beyond D; rank lists unsorted, with repeats,
 *   0 and beyond D; and a scratch of 3 queries, so queries run in chunks.
 * Integer outputs (hits_k, rel_all, hits_at, ret_r, rel_r) must be equal; the doubles
 * (ap, ap_best, ap_worst) within TOL_AP (the kernel mirrors the reference's operation
 * order, so they are expected to be equal too).
 * Exits 77 (skip) when built without CUDA or when no GPU is visible. */
#include "check.h"

#ifndef DATH_CUDA

int main(void) {
    check_skip("this build has no CUDA (DATH_CUDA not defined): hamming_eval_cuda not built");
    return 77;
}

#else

#include <cuda_runtime.h>
#include <string.h>

#include "../kernels/hamming.h"

static const double TOL_AP = 1e-12;   /* |cuda − cpu| for ap, ap_best, ap_worst */

static void *dev_copy(const void *src, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        printf("FAIL cudaMalloc of %zu bytes\n", bytes);
        exit(1);
    }
    if (src && bytes) cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice);
    return p;
}

static void host_copy(void *dst, const void *src, size_t bytes) {
    if (cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        printf("FAIL cudaMemcpy back\n");
        exit(1);
    }
}

static int count_diff(const int32_t *a, const int32_t *b, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] != b[i];
    return k;
}

/* One comparison. protos > 0: codes are one of `protos` random prototypes with each bit
 * flipped with probability 1/16 (ties at small distances); else uniform bits. at_mode 1:
 * the rank grid plus 0, a repeat and D + 3, unsorted. small_work: scratch for 3 queries. */
static void run_case(const char *name, int Q, int D, int bits, int C, int protos, int topk,
                     int at_mode, int small_work, uint64_t seed) {
    const int B = (bits + 7) / 8, R = 8 * B;
    uint64_t s = seed;
    uint8_t *qc = calloc((size_t)Q * B, 1), *dc = calloc((size_t)D * B, 1);   /* [Q,B], [D,B] */
    uint8_t *ql = calloc((size_t)Q * C + 1, 1), *dl = calloc((size_t)D * C + 1, 1); /* [Q,C], [D,C] */
    uint8_t *proto = calloc((size_t)(protos ? protos : 1) * B, 1);            /* [protos, B] */
    for (size_t i = 0; i < (size_t)(protos ? protos : 1) * B; i++) proto[i] = (uint8_t)check_next(&s);
    for (int side = 0; side < 2; side++) {
        uint8_t *c = side ? dc : qc, *l = side ? dl : ql;
        int rows = side ? D : Q;
        for (int i = 0; i < rows; i++) {
            const uint8_t *pr = proto + (size_t)(check_next(&s) % (uint64_t)(protos ? protos : 1)) * B;
            for (int b = 0; b < B; b++) {
                uint8_t v = protos ? pr[b] : (uint8_t)check_next(&s);
                if (protos)
                    for (int j = 0; j < 8; j++)
                        if (check_next(&s) % 16 == 0) v ^= (uint8_t)(1u << j);
                if (8 * b + 8 > bits) v &= (uint8_t)(0xff00u >> (bits - 8 * b));   /* padding 0 */
                c[(size_t)i * B + b] = v;
            }
            if (check_next(&s) % 10 == 0) continue;   /* no label at all */
            for (int k = 0; k < C; k++) l[(size_t)i * C + k] = check_next(&s) % 4 == 0;
        }
    }
    int32_t at[64];   /* [n_at] */
    int n_at = 0;
    if (at_mode) {
        at[n_at++] = D;
        for (int N = 1; N < D && n_at < 50; N = N * 3 + 1) at[n_at++] = N;
        at[n_at++] = 0;
        at[n_at++] = 7 < D ? 7 : D;
        at[n_at++] = 7 < D ? 7 : D;
        at[n_at++] = D + 3;
    } else {
        at[n_at++] = D / 2 > 0 ? D / 2 : 1;
    }

    /* the reference */
    double *ap = malloc(Q * sizeof *ap), *best = malloc(Q * sizeof *best), *worst = malloc(Q * sizeof *worst);
    int32_t *hk = malloc(Q * sizeof *hk), *ra = malloc(Q * sizeof *ra);
    int32_t *ha = malloc((size_t)Q * n_at * sizeof *ha);                       /* [Q, n_at] */
    int32_t *rr = malloc((size_t)Q * (R + 1) * sizeof *rr), *lr = malloc((size_t)Q * (R + 1) * sizeof *lr);
    hamming_eval_cpu(ap, hk, ra, best, worst, ha, rr, lr, qc, dc, ql, dl, at, n_at, Q, D, B, C, topk, NULL);

    /* the CUDA version */
    uint8_t *d_qc = dev_copy(qc, (size_t)Q * B), *d_dc = dev_copy(dc, (size_t)D * B);
    uint8_t *d_ql = dev_copy(ql, (size_t)Q * C), *d_dl = dev_copy(dl, (size_t)D * C);
    int32_t *d_at = dev_copy(at, (size_t)n_at * sizeof *at);
    double *d_ap = dev_copy(NULL, Q * sizeof(double)), *d_best = dev_copy(NULL, Q * sizeof(double));
    double *d_worst = dev_copy(NULL, Q * sizeof(double));
    int32_t *d_hk = dev_copy(NULL, Q * sizeof(int32_t)), *d_ra = dev_copy(NULL, Q * sizeof(int32_t));
    int32_t *d_ha = dev_copy(NULL, (size_t)Q * n_at * sizeof(int32_t));
    int32_t *d_rr = dev_copy(NULL, (size_t)Q * (R + 1) * sizeof(int32_t));
    int32_t *d_lr = dev_copy(NULL, (size_t)Q * (R + 1) * sizeof(int32_t));
    int depth = topk <= 0 || topk > D ? D : topk;
    for (int j = 0; j < n_at; j++) if (at[j] > depth) depth = at[j];
    size_t work_bytes = hamming_cuda_work_bytes(small_work ? 3 : Q, D, B, C, depth, 1);
    dath_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cudaStream_t st;
    cudaStreamCreate(&st);
    ctx.stream = st;
    ctx.work = dev_copy(NULL, work_bytes);
    ctx.work_bytes = work_bytes;
    hamming_eval_cuda(d_ap, d_hk, d_ra, d_best, d_worst, d_ha, d_rr, d_lr, d_qc, d_dc, d_ql, d_dl,
                      d_at, n_at, Q, D, B, C, topk, &ctx);
    cudaError_t e = cudaStreamSynchronize(st);
    char label[160];
    snprintf(label, sizeof label, "%s: no CUDA error (%s)", name, cudaGetErrorString(e));
    CHECK_TRUE(label, e == cudaSuccess);

    double *g_ap = malloc(Q * sizeof *g_ap), *g_best = malloc(Q * sizeof *g_best), *g_worst = malloc(Q * sizeof *g_worst);
    int32_t *g_hk = malloc(Q * sizeof *g_hk), *g_ra = malloc(Q * sizeof *g_ra);
    int32_t *g_ha = malloc((size_t)Q * n_at * sizeof *g_ha);
    int32_t *g_rr = malloc((size_t)Q * (R + 1) * sizeof *g_rr), *g_lr = malloc((size_t)Q * (R + 1) * sizeof *g_lr);
    host_copy(g_ap, d_ap, Q * sizeof(double));
    host_copy(g_best, d_best, Q * sizeof(double));
    host_copy(g_worst, d_worst, Q * sizeof(double));
    host_copy(g_hk, d_hk, Q * sizeof(int32_t));
    host_copy(g_ra, d_ra, Q * sizeof(int32_t));
    host_copy(g_ha, d_ha, (size_t)Q * n_at * sizeof(int32_t));
    host_copy(g_rr, d_rr, (size_t)Q * (R + 1) * sizeof(int32_t));
    host_copy(g_lr, d_lr, (size_t)Q * (R + 1) * sizeof(int32_t));

    struct { const char *what; const int32_t *got, *ref; size_t n; } ints[5] = {
        {"hits_k", g_hk, hk, (size_t)Q}, {"rel_all", g_ra, ra, (size_t)Q},
        {"hits_at", g_ha, ha, (size_t)Q * n_at}, {"ret_r", g_rr, rr, (size_t)Q * (R + 1)},
        {"rel_r", g_lr, lr, (size_t)Q * (R + 1)}};
    for (int k = 0; k < 5; k++) {
        int nd = count_diff(ints[k].got, ints[k].ref, ints[k].n);
        snprintf(label, sizeof label, "%s: %s equal (%d of %zu differ)", name, ints[k].what, nd, ints[k].n);
        CHECK_TRUE(label, nd == 0);
    }
    snprintf(label, sizeof label, "%s: ap", name);
    check_close_d(label, g_ap, ap, Q, TOL_AP, 0);
    snprintf(label, sizeof label, "%s: ap_best", name);
    check_close_d(label, g_best, best, Q, TOL_AP, 0);
    snprintf(label, sizeof label, "%s: ap_worst", name);
    check_close_d(label, g_worst, worst, Q, TOL_AP, 0);

    cudaFree(d_qc); cudaFree(d_dc); cudaFree(d_ql); cudaFree(d_dl); cudaFree(d_at);
    cudaFree(d_ap); cudaFree(d_best); cudaFree(d_worst); cudaFree(d_hk); cudaFree(d_ra);
    cudaFree(d_ha); cudaFree(d_rr); cudaFree(d_lr); cudaFree(ctx.work);
    cudaStreamDestroy(st);
    free(qc); free(dc); free(ql); free(dl); free(proto);
    free(ap); free(best); free(worst); free(hk); free(ra); free(ha); free(rr); free(lr);
    free(g_ap); free(g_best); free(g_worst); free(g_hk); free(g_ra); free(g_ha); free(g_rr); free(g_lr);
}

int main(void) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        char why[256];
        snprintf(why, sizeof why, "no GPU visible (cudaGetDeviceCount: %s, %d devices)",
                 e == cudaSuccess ? "ok" : cudaGetErrorString(e), ndev);
        check_skip(why);
    }
    /* name, Q, D, bits, C, prototypes, topk, at_mode, small scratch, seed */
    run_case("8 bits K=100", 40, 5000, 8, 5, 0, 100, 1, 0, 1);
    run_case("8 bits K=all", 40, 5000, 8, 5, 0, 0, 1, 0, 2);
    run_case("8 bits K=1", 40, 3000, 8, 3, 0, 1, 0, 0, 3);
    run_case("8 bits K>D, chunks", 20, 20000, 8, 70, 0, 25000, 1, 1, 4);
    run_case("64 bits K=1000", 60, 4000, 64, 10, 6, 1000, 1, 0, 5);
    run_case("64 bits K=all, 2 label words", 30, 4000, 64, 100, 4, 0, 1, 0, 6);
    run_case("64 bits K=100, chunks", 25, 3000, 64, 10, 3, 100, 0, 1, 7);
    run_case("60 bits K=500", 20, 2500, 60, 8, 5, 500, 1, 0, 8);
    run_case("640 bits K=all (buckets in scratch)", 10, 2000, 640, 10, 3, 0, 1, 1, 9);
    run_case("16 bits D=1", 5, 1, 16, 4, 0, 0, 1, 0, 10);
    return check_finish();
}

#endif
