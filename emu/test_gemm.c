/* emu/test_gemm.c — the emulated cuBLAS's arithmetic, bit for bit, on sums built so
 * that each model of emu/emu.cpp (DATH_EMU_GEMM = hw, fma, double; DATH_EMU_TC_ROUND
 * = rn, rna, rz) gives a different answer. It reads the same two variables to know which
 * answer is right; checks/test_cuda_precisions_emu.sh runs it under each. Exit 0 when all
 * pass, 1 otherwise. (Built only against the emulator: on a GPU these are questions, which
 * the kernel checks' probes ask (checks/cuda_check.h).)
 *
 *   32F    1 + 2^-24 + 2^-24: an fp32 chain rounds each add to nearest-even and stays
 *          at 1; a double sum gives 1 + 2^-23.
 *   TF32, BF16 (the probe of checks/cuda_check.h)  1 + 63·(3·2^-26): the sm_90 block FMA
 *          aligns each δ to 2^-25 and truncates it to 2^-25, 7 of them in the first
 *          block (rounded down to 1 + 2^-23), 8 (tf32) or 16 (bf16) a block after that:
 *          1 + 15·2^-23; an fp32 chain 1; a double sum rounded once 1 + 24·2^-23.
 *   TF32   1 − 2^-25 (one block): the block's sum truncated (RZ): 1 − 2^-24; to nearest
 *          (a tie, to even): 1.
 *   TF32, BF16 conversion  (1 + 2^-(m+1)) and (1 + 2^-(m+1) + 2^-(m+3)) times 1, m the
 *          mantissa bits: nearest-even 1 and 1 + 2^-m, nearest-away 1 + 2^-m twice,
 *          truncation 1 twice.
 *   epilogue  alpha = 1 + 2^-12 times acc = 1 + 2^-12, plus beta·C = −1: fused (as cuBLAS
 *          and the double reference) 2^-11 + 2^-24; alpha·acc rounded first 2^-11.
 *   beta = 0  C (NaN) is not read. */
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails, count;

static int env_is(const char *var, const char *val, const char *def) {
    const char *v = getenv(var);
    return !strcmp(v && *v ? v : def, val);
}

/* C (1×1) = alpha · Σ_k a_k b_k + beta · c0 through cublasGemmEx (m = n = 1, k = K). */
static float gemm1(const float *a, const float *b, int K, float alpha, float beta, float c0,
                   cublasComputeType_t ct) {
    static cublasHandle_t h;
    if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) { printf("FAIL: cublasCreate\n"); exit(1); }
    float *dA, *dB, *dC, c = c0;
    if (cudaMalloc((void **)&dA, K * 4) || cudaMalloc((void **)&dB, K * 4) ||
        cudaMalloc((void **)&dC, 4)) { printf("FAIL: cudaMalloc\n"); exit(1); }
    cudaMemcpy(dA, a, K * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, b, K * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dC, &c, 4, cudaMemcpyHostToDevice);
    /* A [1,K] (lda 1), B [K,1] (ldb K) */
    if (cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, K, &alpha, dA, CUDA_R_32F, 1, dB,
                     CUDA_R_32F, K, &beta, dC, CUDA_R_32F, 1, ct, CUBLAS_GEMM_DEFAULT) !=
        CUBLAS_STATUS_SUCCESS) { printf("FAIL: cublasGemmEx\n"); exit(1); }
    cudaMemcpy(&c, dC, 4, cudaMemcpyDeviceToHost);
    cudaFree(dA); cudaFree(dB); cudaFree(dC);
    return c;
}

static void expect(const char *what, float got, float want) {
    count++;
    const int ok = got == want || (isnan(got) && isnan(want));
    if (!ok) fails++;
    printf("%s %-52s got %a, want %a\n", ok ? "ok  " : "FAIL", what, (double)got, (double)want);
}

int main(void) {
    const int hw = env_is("DATH_EMU_GEMM", "hw", "hw"), dbl = env_is("DATH_EMU_GEMM", "double", "hw");
    const int rna = env_is("DATH_EMU_TC_ROUND", "rna", "rn"), rz = env_is("DATH_EMU_TC_ROUND", "rz", "rn");
    printf("emulated cuBLAS arithmetic: DATH_EMU_GEMM=%s DATH_EMU_TC_ROUND=%s\n",
           hw ? "hw" : dbl ? "double" : "fma", rz ? "rz" : rna ? "rna" : "rn");
    float a[64], b[64];
    const float u23 = ldexpf(1.0f, -23);

    a[0] = 1.0f; a[1] = a[2] = ldexpf(1.0f, -24);
    for (int i = 0; i < 3; i++) b[i] = 1.0f;
    expect("32F: 1 + 2^-24 + 2^-24", gemm1(a, b, 3, 1.0f, 0.0f, 0.0f, CUBLAS_COMPUTE_32F),
           dbl ? 1.0f + u23 : 1.0f);

    a[0] = 1.0f;
    for (int i = 1; i < 64; i++) a[i] = 3.0f * ldexpf(1.0f, -26);
    for (int i = 0; i < 64; i++) b[i] = 1.0f;
    const float probe = dbl ? 1.0f + 24 * u23 : hw ? 1.0f + 15 * u23 : 1.0f;
    expect("TF32: 1 + 63·(3·2^-26)", gemm1(a, b, 64, 1.0f, 0.0f, 0.0f, CUBLAS_COMPUTE_32F_FAST_TF32), probe);
    expect("BF16: 1 + 63·(3·2^-26)", gemm1(a, b, 64, 1.0f, 0.0f, 0.0f, CUBLAS_COMPUTE_32F_FAST_16BF), probe);

    a[0] = 1.0f; a[1] = -ldexpf(1.0f, -25); b[0] = b[1] = 1.0f;
    expect("TF32: 1 - 2^-25 (the block's sum truncated)",
           gemm1(a, b, 2, 1.0f, 0.0f, 0.0f, CUBLAS_COMPUTE_32F_FAST_TF32),
           hw ? 1.0f - ldexpf(1.0f, -24) : 1.0f);

    for (int t = 0; t < 2; t++) {
        const int m = t ? 7 : 10;
        const cublasComputeType_t ct = t ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F_FAST_TF32;
        const float x1 = 1.0f + ldexpf(1.0f, -(m + 1)), x2 = x1 + ldexpf(1.0f, -(m + 3));
        const float up = 1.0f + ldexpf(1.0f, -m);
        char what[96];
        b[0] = 1.0f;
        a[0] = x1;
        snprintf(what, sizeof what, "%s conversion of 1 + 2^-%d (a tie)", t ? "BF16" : "TF32", m + 1);
        expect(what, gemm1(a, b, 1, 1.0f, 0.0f, 0.0f, ct), rna ? up : 1.0f);
        a[0] = x2;
        snprintf(what, sizeof what, "%s conversion of 1 + 2^-%d + 2^-%d", t ? "BF16" : "TF32", m + 1, m + 3);
        expect(what, gemm1(a, b, 1, 1.0f, 0.0f, 0.0f, ct), rz ? 1.0f : up);
    }

    a[0] = 1.0f + ldexpf(1.0f, -12); b[0] = 1.0f;
    expect("epilogue: (1 + 2^-12)·(1 + 2^-12) - 1, fused",
           gemm1(a, b, 1, 1.0f + ldexpf(1.0f, -12), 1.0f, -1.0f, CUBLAS_COMPUTE_32F),
           ldexpf(1.0f, -11) + ldexpf(1.0f, -24));
    a[0] = 2.0f;
    expect("beta = 0: C (NaN) not read", gemm1(a, b, 1, 1.0f, 0.0f, NAN, CUBLAS_COMPUTE_32F), 2.0f);

    printf("%d checks, %d failed\n", count, fails);
    return fails ? 1 : 0;
}
