/* kernels/gemm.cu — row-major GEMMs on cuBLAS (contract in gemm.cuh).
 *
 * cuBLAS is column-major. A row-major C [M,N] is the column-major Cᵀ [N,M], and
 * Cᵀ = op(B)ᵀ · op(A)ᵀ, so a row-major product is the column-major one with the
 * operands swapped (B first), M and N swapped, and the same trans flags and
 * leading dimensions. */
#include "gemm.cuh"

extern "C" DATH_THREAD_LOCAL int dath_cuda_capturing = 0;   /* see cuda_check.h */

static cublasComputeType_t gemm_compute_type(int precision) {
    switch (precision) {
    case DATH_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case DATH_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F;
    }
}

void gemm_rm(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    CUBLAS_CHECK(cublasGemmEx(DATH_CUBLAS(ctx),
                              tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                              N, M, K, &alpha,
                              B, CUDA_R_32F, ldb,
                              A, CUDA_R_32F, lda, &beta,
                              C, CUDA_R_32F, ldc,
                              gemm_compute_type(ctx->precision), CUBLAS_GEMM_DEFAULT));
}

void gemm_rm_batched(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
                     float alpha, const float *A, int lda, long long strideA,
                     const float *B, int ldb, long long strideB,
                     float beta, float *C, int ldc, long long strideC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(DATH_CUBLAS(ctx),
                                            tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            N, M, K, &alpha,
                                            B, CUDA_R_32F, ldb, strideB,
                                            A, CUDA_R_32F, lda, strideA, &beta,
                                            C, CUDA_R_32F, ldc, strideC, batch,
                                            gemm_compute_type(ctx->precision),
                                            CUBLAS_GEMM_DEFAULT));
}
