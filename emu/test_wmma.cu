/* emu/test_wmma.cu — the emulator's warp matrix functions and asynchronous copies
 * (emu/mma.h, cuda_pipeline_primitives.h, emu.cpp) against their documented
 * semantics and against the emulated cuBLAS (build/emu/test_emu_wmma; CUDA code, run only
 * on the emulator: on a GPU the same kernels would pass but the fault checks would not
 * fault):
 *   1. a WMMA GEMM (tf32 16×16×8 and bf16 16×16×16, K in fragment steps) equals
 *      cublasGemmEx at FAST_TF32 / FAST_16BF on the same operands (already tf32 / bf16
 *      values) bit for bit: one model of the tensor cores' arithmetic for both;
 *   2. load_matrix_sync of matrix_a row_major from A and col_major from Aᵀ, of matrix_b
 *      likewise, give the same product; an accumulator stored mem_col_major and loaded
 *      back mem_col_major is unchanged; fill_fragment; ldm larger than the tile;
 *   3. __float_to_tf32 rounds to nearest, ties away (cvt.rna), to 10 mantissa bits;
 *      __float2bfloat16 to nearest, ties to even;
 *   4. asynchronous copies: the bytes and the zero fill land by the covering wait; batches
 *      wait_prior(N) does not cover are still allowed to be in flight;
 *   5. what must fail does, each in a child process (the emulator's errors are sticky): a
 *      kernel that relies on the fragments' element mapping, one that reads a copy's
 *      destination before waiting, one that waits but has no barrier before another
 *      thread reads, a copy into a buffer other warps still read (no barrier before
 *      refilling), lanes that disagree on a load's pointer, an ldm that is not a multiple
 *      of 16 bytes, a copy whose destination is not shared memory. */
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_pipeline_primitives.h>
#include <mma.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace nvcuda;

static int checks, failures;
static void check(const char *name, bool ok) {
    checks++;
    if (!ok) failures++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

/* ---- kernels -------------------------------------------------------------------------- */

/* C [M, N] = A [M, K] · B [K, N], row-major, one warp a 16×16 tile (grid N/16 × M/16). */
template <class T, int KS>
__global__ void wmma_gemm(float *C, const float *A, const float *B, int M, int N, int K, int a_col) {
    typedef typename std::conditional<KS == 8, wmma::precision::tf32, __nv_bfloat16>::type WT;
    __shared__ __align__(32) T as[16 * 16], bs[16 * 16];
    const int m0 = blockIdx.y * 16, n0 = blockIdx.x * 16, lane = threadIdx.x;
    wmma::fragment<wmma::accumulator, 16, 16, KS, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k0 = 0; k0 < K; k0 += KS) {
        /* the A tile stored row-major [16][KS], or column-major [KS][16] (a_col) */
        for (int e = lane; e < 16 * KS; e += 32) {
            const int r = e / KS, c = e % KS;
            const float a = A[(size_t)(m0 + r) * K + k0 + c], b = B[(size_t)(k0 + e / 16) * N + n0 + e % 16];
            if constexpr (KS == 8) { (a_col ? as[c * 16 + r] : as[r * KS + c]) = a; bs[e] = b; }
            else { (a_col ? as[c * 16 + r] : as[r * KS + c]) = __float2bfloat16(a); bs[e] = __float2bfloat16(b); }
        }
        __syncwarp();
        wmma::fragment<wmma::matrix_b, 16, 16, KS, WT, wmma::row_major> fb;
        wmma::load_matrix_sync(fb, bs, 16);
        if (a_col) {
            wmma::fragment<wmma::matrix_a, 16, 16, KS, WT, wmma::col_major> fa;
            wmma::load_matrix_sync(fa, as, 16);
            wmma::mma_sync(acc, fa, fb, acc);
        } else {
            wmma::fragment<wmma::matrix_a, 16, 16, KS, WT, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, as, KS);
            if constexpr (KS == 8)
                for (int i = 0; i < fa.num_elements; i++) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        __syncwarp();
    }
    wmma::store_matrix_sync(C + (size_t)m0 * N + n0, acc, N, wmma::mem_row_major);
}

/* acc filled with v, stored col-major with ldm 24, loaded back col-major, stored row-major */
__global__ void wmma_roundtrip(float *out, float v, float *scratch) {
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> f, g;
    wmma::fill_fragment(f, v);
    for (int i = 0; i < f.num_elements; i++) f.x[i] *= 2.0f;   /* element-wise: allowed */
    wmma::store_matrix_sync(scratch, f, 24, wmma::mem_col_major);
    wmma::load_matrix_sync(g, scratch, 24, wmma::mem_col_major);
    wmma::store_matrix_sync(out, g, 16, wmma::mem_row_major);
}

__global__ void tf32_bf16(float *out, const float *in, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        out[2 * i] = wmma::__float_to_tf32(in[i]);
        out[2 * i + 1] = __bfloat162float(__float2bfloat16(in[i]));
    }
}

/* 3 batches of copies of 8, 4 (+ 4 zero), 16 bytes; wait_prior(1) then reads batches 1, 2;
 * wait_prior(0) then batch 3; every thread its own 32 bytes */
__global__ void async_copies(float *out, const float *in) {
    __shared__ __align__(16) float s[64 * 8];
    float *mine = s + threadIdx.x * 8;
    const float *src = in + threadIdx.x * 8;
    __pipeline_memcpy_async(mine, src, 8);
    __pipeline_commit();
    __pipeline_memcpy_async(mine + 2, src + 2, 8, 4);   /* 4 bytes copied, 4 zero */
    __pipeline_commit();
    __pipeline_memcpy_async(mine + 4, src + 4, 16);
    __pipeline_commit();
    __pipeline_wait_prior(1);
    for (int i = 0; i < 4; i++) out[threadIdx.x * 8 + i] = mine[i];
    __pipeline_wait_prior(0);
    for (int i = 4; i < 8; i++) out[threadIdx.x * 8 + i] = mine[i];
}

/* ---- kernels that must fail ----------------------------------------------------------- */

__global__ void relies_on_mapping(float *out) {
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
    wmma::fill_fragment(f, 0.0f);
    if (threadIdx.x == 1) f.x[0] = 1.0f;   /* "element (0, 1)"? the mapping is unspecified */
    wmma::store_matrix_sync(out, f, 16, wmma::mem_row_major);
}
__global__ void read_before_wait(float *out, const float *in) {
    __shared__ __align__(16) float s[64];
    __pipeline_memcpy_async(&s[threadIdx.x], &in[threadIdx.x], 4);
    __pipeline_commit();
    out[threadIdx.x] = s[threadIdx.x];   /* no wait */
    __pipeline_wait_prior(0);
}
__global__ void wait_no_barrier(float *out, const float *in) {
    __shared__ __align__(16) float s[64];
    __pipeline_memcpy_async(&s[threadIdx.x], &in[threadIdx.x], 4);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    out[threadIdx.x] = s[63 - threadIdx.x];   /* another warp's copy, no __syncthreads */
}
__global__ void refill_too_early(float *out, const float *in) {
    __shared__ __align__(16) float s[64];
    s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    const float v = s[63 - threadIdx.x];   /* reads another warp's element ... */
    __pipeline_memcpy_async(&s[threadIdx.x], &in[64 + threadIdx.x], 4);   /* ... refilled without a barrier */
    __pipeline_commit();
    __pipeline_wait_prior(0);
    out[threadIdx.x] = v;
}
__global__ void lanes_disagree(float *out) {
    __shared__ __align__(32) float s[2 * 256];
    for (int i = threadIdx.x; i < 512; i += 32) s[i] = 1.0f;
    __syncwarp();
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
    wmma::load_matrix_sync(f, s + (threadIdx.x == 5 ? 256 : 0), 16, wmma::mem_row_major);
    wmma::store_matrix_sync(out, f, 16, wmma::mem_row_major);
}
__global__ void bad_ldm(float *out) {
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
    wmma::fill_fragment(f, 1.0f);
    wmma::store_matrix_sync(out, f, 18, wmma::mem_row_major);   /* 72 bytes: not a multiple of 16 */
}
__global__ void copy_to_global(float *out, const float *in) {
    __pipeline_memcpy_async(out + threadIdx.x, in + threadIdx.x, 4);
    __pipeline_commit();
    __pipeline_wait_prior(0);
}

/* ---- the host side -------------------------------------------------------------------- */

static float *dev(size_t n) {
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) { printf("FAIL cudaMalloc\n"); exit(1); }
    return (float *)p;
}
static uint64_t rng = 0x77a3;
static float unif() {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float to_tf32(float x) { return wmma::__float_to_tf32(x); }
static float to_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

/* tensor-core GEMM vs cuBLAS, bit for bit */
template <int KS>
static void check_gemm(cublasHandle_t h, int a_col) {
    const int M = 32, N = 48, K = 64;
    float *A = (float *)malloc(M * K * 4), *B = (float *)malloc(K * N * 4);
    float *C1 = (float *)malloc(M * N * 4), *C2 = (float *)malloc(M * N * 4);
    for (int i = 0; i < M * K; i++) A[i] = KS == 8 ? to_tf32(unif() * 3.0f) : to_bf16(unif() * 3.0f);
    for (int i = 0; i < K * N; i++) B[i] = KS == 8 ? to_tf32(unif()) : to_bf16(unif());
    A[5] = 1e6f; B[7] = 3e-5f;   /* a wide range of exponents inside one block */
    float *dA = dev(M * K), *dB = dev(K * N), *dC1 = dev(M * N), *dC2 = dev(M * N);
    cudaMemcpy(dA, A, M * K * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, B, K * N * 4, cudaMemcpyHostToDevice);
    if (KS == 8) wmma_gemm<float, 8><<<dim3(N / 16, M / 16), 32>>>(dC1, dA, dB, M, N, K, a_col);
    else wmma_gemm<__nv_bfloat16, 16><<<dim3(N / 16, M / 16), 32>>>(dC1, dA, dB, M, N, K, a_col);
    const float one = 1.0f, zero = 0.0f;   /* row-major C = A·B as column-major Cᵀ = Bᵀ·Aᵀ */
    const cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, dB, CUDA_R_32F, N, dA,
                                           CUDA_R_32F, K, &zero, dC2, CUDA_R_32F, N,
                                           KS == 8 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF,
                                           CUBLAS_GEMM_DEFAULT);
    cudaDeviceSynchronize();
    cudaMemcpy(C1, dC1, M * N * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(C2, dC2, M * N * 4, cudaMemcpyDeviceToHost);
    int differ = 0;
    double dmax = 0, ymax = 0;
    for (int i = 0; i < M * N; i++) {
        differ += memcmp(&C1[i], &C2[i], 4) != 0;
        dmax = fmax(dmax, fabs((double)C1[i] - C2[i]));
        ymax = fmax(ymax, fabs((double)C2[i]));
    }
    char name[200];
    snprintf(name, sizeof name, "WMMA %s GEMM (A %s) = cublasGemmEx FAST_%s, bit for bit (%d of %d differ, by up to %.3g of %.3g)",
             KS == 8 ? "tf32 16x16x8" : "bf16 16x16x16", a_col ? "col_major" : "row_major", KS == 8 ? "TF32" : "16BF",
             differ, M * N, dmax, ymax);
    check(name, st == CUBLAS_STATUS_SUCCESS && cudaGetLastError() == cudaSuccess && differ == 0);
    free(A); free(B); free(C1); free(C2);
    cudaFree(dA); cudaFree(dB); cudaFree(dC1); cudaFree(dC2);
}

/* runs f in a child process; true when the emulator reported the error `want` there */
static bool fails_with(void (*f)(), cudaError_t want) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        f();
        const cudaError_t e = cudaDeviceSynchronize();
        _exit(e == want ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
static float *g_in, *g_out;
static void run_mapping() { relies_on_mapping<<<1, 32>>>(g_out); }
static void run_before_wait() { read_before_wait<<<1, 64>>>(g_out, g_in); }
static void run_no_barrier() { wait_no_barrier<<<1, 64>>>(g_out, g_in); }
static void run_refill() { refill_too_early<<<1, 64>>>(g_out, g_in); }
static void run_disagree() { lanes_disagree<<<1, 32>>>(g_out); }
static void run_bad_ldm() { bad_ldm<<<1, 32>>>(g_out); }
static void run_to_global() { copy_to_global<<<1, 32>>>(g_out, g_in); }

int main() {
    cublasHandle_t h;
    cublasCreate(&h);
    check_gemm<8>(h, 0);
    check_gemm<8>(h, 1);
    check_gemm<16>(h, 0);
    check_gemm<16>(h, 1);

    float *d = dev(256), *sc = dev(24 * 16), host[256];
    wmma_roundtrip<<<1, 32>>>(d, 1.5f, sc);
    cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
    bool all3 = true;
    for (int i = 0; i < 256; i++) all3 = all3 && host[i] == 3.0f;
    check("accumulator: fill, element-wise ×2, store col-major (ldm 24), load back, store row-major", all3);

    /* rounding: 1 + 2^-11 (a tie at 10 bits: tf32 away → 1 + 2^-10), 1 + 2^-11 + 2^-20 (up),
     * 1 + 2^-8 (a tie at 7 bits: bf16 to even → 1), 1 + 3·2^-8 (tie: to even → 1 + 2^-6) */
    const float in[4] = {1.0f + ldexpf(1, -11), 1.0f + ldexpf(1, -11) + ldexpf(1, -20), 1.0f + ldexpf(1, -8),
                         1.0f + 3 * ldexpf(1, -8)};
    float *din = dev(4), *dout = dev(8), r[8];
    cudaMemcpy(din, in, sizeof in, cudaMemcpyHostToDevice);
    tf32_bf16<<<1, 32>>>(dout, din, 4);
    cudaMemcpy(r, dout, sizeof r, cudaMemcpyDeviceToHost);
    check("__float_to_tf32: to nearest, ties away", r[0] == 1.0f + ldexpf(1, -10) && r[2] == 1.0f + ldexpf(1, -10) &&
                                                       r[4] == 1.0f + ldexpf(1, -8) && r[6] == 1.0f + 3 * ldexpf(1, -8));
    check("__float2bfloat16: to nearest, ties to even", r[1] == 1.0f && r[3] == 1.0f && r[5] == 1.0f &&
                                                          r[7] == 1.0f + ldexpf(1, -6));

    g_in = dev(512);
    g_out = dev(512);
    float src[512], got[512];
    for (int i = 0; i < 512; i++) src[i] = (float)i + 0.5f;
    cudaMemcpy(g_in, src, sizeof src, cudaMemcpyHostToDevice);
    async_copies<<<1, 64>>>(g_out, g_in);
    cudaMemcpy(got, g_out, sizeof got, cudaMemcpyDeviceToHost);
    bool copies = cudaGetLastError() == cudaSuccess;
    for (int t = 0; t < 64; t++)
        for (int i = 0; i < 8; i++) copies = copies && got[t * 8 + i] == (i == 3 ? 0.0f : src[t * 8 + i]);
    check("asynchronous copies of 8, 4 + 4 zero and 16 bytes in three batches, read after the waits that cover them",
          copies);

    check("a kernel relying on the fragments' element mapping: schedule-dependent",
          fails_with(run_mapping, cudaErrorEmuScheduleDependent));
    check("reading a copy's destination before waiting: schedule-dependent",
          fails_with(run_before_wait, cudaErrorEmuScheduleDependent));
    check("reading another warp's copy after the wait but without a barrier: schedule-dependent",
          fails_with(run_no_barrier, cudaErrorEmuScheduleDependent));
    check("refilling a buffer other warps still read (no barrier before the copy): schedule-dependent",
          fails_with(run_refill, cudaErrorEmuScheduleDependent));
    check("lanes passing different pointers to load_matrix_sync: an error",
          fails_with(run_disagree, cudaErrorIllegalAddress));
    check("store_matrix_sync with ldm 18 floats: an error", fails_with(run_bad_ldm, cudaErrorIllegalAddress));
    check("an asynchronous copy into global memory: an error", fails_with(run_to_global, cudaErrorIllegalAddress));
    cublasDestroy(h);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
