/* kernels/gemm.cuh — the one GEMM helper every CUDA op file uses.
 *
 * Row-major, like the references' cblas_sgemm(CblasRowMajor, ...):
 *   C [M,N] = alpha · op(A) [M,K] · op(B) [K,N] + beta · C
 * op(X) = Xᵀ when the matching trans flag is set; lda/ldb/ldc are row-major leading
 * dimensions (the length of a stored row). Storage is always float32; ctx->precision
 * picks the cuBLAS compute type:
 *   DATH_FP32 → CUBLAS_COMPUTE_32F            (exact fp32, no tensor-core shortcut)
 *   DATH_TF32 → CUBLAS_COMPUTE_32F_FAST_TF32  (tf32 tensor cores, fp32 accumulate)
 *   DATH_BF16 → CUBLAS_COMPUTE_32F_FAST_16BF  (bf16 tensor cores, fp32 accumulate)
 * The backend refuses TF32/BF16 below compute capability 8.0 (backend_cuda.c).
 *
 * The batched form repeats the product `batch` times, operand X of product i
 * starting at X + i·strideX (a stride of 0 reuses one operand, e.g. a weight).
 * Both run on the handle in ctx->blas, which the backend bound to ctx->stream.
 * A cuBLAS failure aborts with file and line (CUBLAS_CHECK). */
#ifndef DATH_GEMM_CUH
#define DATH_GEMM_CUH

#include "cuda_common.cuh"

void gemm_rm(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

void gemm_rm_batched(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
                     float alpha, const float *A, int lda, long long strideA,
                     const float *B, int ldb, long long strideB,
                     float beta, float *C, int ldc, long long strideC, int batch);

#endif
