/* bench/bench_peak.c — the GPU's measured ceilings, for judging every other figure
 * against what this GPU does in the same run (not a datasheet):
 *   - GEMM: one N×N×N cuBLAS product (cublasGemmEx), repeated, in a precision:
 *       fp32  fp32 operands, CUBLAS_COMPUTE_32F (no tensor cores)
 *       tf32  fp32 operands, CUBLAS_COMPUTE_32F_FAST_TF32 (what dath's tf32 GEMMs run)
 *       bf16  bf16 operands (--storage bf16, the default for bf16), fp32 accumulation
 *             and output: the tensor cores' bf16 rate; --storage fp32 gives
 *             CUBLAS_COMPUTE_32F_FAST_16BF on fp32 operands instead
 *   - memory: a device-to-device copy of --copy-mb MiB, bytes read plus written.
 *
 *   build/bench/bench_peak [--precision P] [--size N] [--reps R] [--storage fp32|bf16]
 *                          [--copy-mb M] [--json]
 *
 * Timed with the host clock between device synchronisations, after 2 untimed products:
 * the mean over R products (N = 8192 takes ~1 ms a product in bf16 on an H100-class
 * GPU, so launch gaps are far below the timer's resolution). Operands are random, not
 * zeros (tensor cores run zeros faster). Exit 0, 1 on a CUDA or cuBLAS error, 77 when
 * this build has no CUDA. Runs on the CUDA emulator too (emu), where the numbers
 * only show that the code runs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef DATH_CUDA
int main(void) {
    printf("SKIP: this build has no CUDA: no GPU to measure\n");
    return 77;
}
#else

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define PCUDA(call)                                                                    \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "bench_peak: CUDA error %s at %s:%d: %s (%s)\n",           \
                    cudaGetErrorName(e_), __FILE__, __LINE__, cudaGetErrorString(e_),  \
                    #call);                                                            \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)
#define PBLAS(call)                                                                    \
    do {                                                                               \
        cublasStatus_t s_ = (call);                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                             \
            fprintf(stderr, "bench_peak: cuBLAS status %d at %s:%d (%s)\n", (int)s_,   \
                    __FILE__, __LINE__, #call);                                        \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static double peak_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* bf16 of x, rounded to nearest even (x finite) */
static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + (u >> 16 & 1u);
    return (uint16_t)(u >> 16);
}

/* A device buffer of n random values in [-1, 1): fp32, or bf16 when bf16 != 0. */
static void *random_device(size_t n, int bf16, uint64_t seed) {
    size_t esz = bf16 ? 2 : 4;
    unsigned char *h = malloc(n * esz);
    if (!h) { fprintf(stderr, "bench_peak: out of host memory\n"); exit(1); }
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        if (bf16) { uint16_t b = to_bf16(v); memcpy(h + 2 * i, &b, 2); }
        else memcpy(h + 4 * i, &v, 4);
    }
    void *d = NULL;
    PCUDA(cudaMalloc(&d, n * esz));
    PCUDA(cudaMemcpy(d, h, n * esz, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

int main(int argc, char **argv) {
    const char *precision = "bf16", *storage = NULL;
    int N = 8192, reps = 10, json = 0;
    size_t copy_mb = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--precision") && has) precision = argv[++i];
        else if (!strcmp(a, "--size") && has) N = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && has) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--storage") && has) storage = argv[++i];
        else if (!strcmp(a, "--copy-mb") && has) copy_mb = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--json")) json = 1;
        else {
            fprintf(stderr, "bench_peak: unknown or incomplete option '%s' (see the comment at "
                    "the top of bench/bench_peak.c)\n", a);
            return 2;
        }
    }
    cublasComputeType_t ct;
    if (!strcmp(precision, "fp32")) ct = CUBLAS_COMPUTE_32F;
    else if (!strcmp(precision, "tf32")) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
    else if (!strcmp(precision, "bf16")) ct = CUBLAS_COMPUTE_32F_FAST_16BF;
    else { fprintf(stderr, "bench_peak: --precision '%s': fp32, tf32 or bf16\n", precision); return 2; }
    if (!storage) storage = !strcmp(precision, "bf16") ? "bf16" : "fp32";
    int bf16_storage = !strcmp(storage, "bf16");
    if (!bf16_storage && strcmp(storage, "fp32")) {
        fprintf(stderr, "bench_peak: --storage '%s': fp32 or bf16\n", storage);
        return 2;
    }
    if (bf16_storage && strcmp(precision, "bf16")) {
        fprintf(stderr, "bench_peak: --storage bf16 goes with --precision bf16\n");
        return 2;
    }
    if (bf16_storage) ct = CUBLAS_COMPUTE_32F;   /* bf16 operands: the tensor cores' bf16 path */
    if (N < 16 || N > 32768 || reps < 1) {
        fprintf(stderr, "bench_peak: --size %d (16..32768), --reps %d (≥ 1)\n", N, reps);
        return 2;
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no GPU visible\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    PCUDA(cudaGetDeviceProperties(&prop, 0));

    size_t nn = (size_t)N * N;
    void *A = random_device(nn, bf16_storage, 1), *B = random_device(nn, bf16_storage, 2);
    float *C = NULL;
    PCUDA(cudaMalloc((void **)&C, nn * 4));
    cublasHandle_t h;
    PBLAS(cublasCreate(&h));
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t at = bf16_storage ? CUDA_R_16BF : CUDA_R_32F;
#define PEAK_GEMM()                                                                      \
    PBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, A, at, N, B, at, N, &zero, \
                       C, CUDA_R_32F, N, ct, CUBLAS_GEMM_DEFAULT))
    for (int r = 0; r < 2; r++) PEAK_GEMM();
    PCUDA(cudaDeviceSynchronize());
    double t0 = peak_now();
    for (int r = 0; r < reps; r++) PEAK_GEMM();
    PCUDA(cudaDeviceSynchronize());
    double dt = (peak_now() - t0) / reps;
    double tflops = 2.0 * N * (double)N * N / dt / 1e12;

    /* memory: device-to-device copies (skipped when the buffers do not fit) */
    size_t bytes = copy_mb << 20;
    void *s = NULL, *d = NULL;
    double gbs = 0.0;
    if (bytes && cudaMalloc(&s, bytes) == cudaSuccess && cudaMalloc(&d, bytes) == cudaSuccess) {
        PCUDA(cudaMemset(s, 1, bytes));
        PCUDA(cudaMemcpy(d, s, bytes, cudaMemcpyDeviceToDevice));
        PCUDA(cudaDeviceSynchronize());
        const int cr = 5;
        double c0 = peak_now();
        for (int k = 0; k < cr; k++) PCUDA(cudaMemcpy(d, s, bytes, cudaMemcpyDeviceToDevice));
        PCUDA(cudaDeviceSynchronize());
        gbs = 2.0 * bytes * cr / (peak_now() - c0) / 1e9;
    }
    cudaFree(s);
    cudaFree(d);
    cudaGetLastError();   /* a copy buffer that did not fit is not an error */
    if (json)
        printf("{\"device\":\"%s\",\"precision\":\"%s\",\"storage\":\"%s\",\"size\":%d,"
               "\"reps\":%d,\"ms\":%.4f,\"tflops\":%.3f,\"copy_mb\":%zu,\"copy_gbs\":%.2f}\n",
               prop.name, precision, storage, N, reps, dt * 1e3, tflops, copy_mb, gbs);
    else
        printf("%s: %d×%d×%d GEMM, %s (%s operands): %.3f ms, %.1f TFLOP/s; device-to-device "
               "copy of %zu MiB: %.0f GB/s (read + written)\n",
               prop.name, N, N, N, precision, storage, dt * 1e3, tflops, copy_mb, gbs);
    PBLAS(cublasDestroy(h));
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    return 0;
}

#endif
