/* kernels/gemm.cu — row-major GEMMs on cuBLAS (contract in gemm.cuh).
 *
 * cuBLAS is column-major. A row-major C [M,N] is the column-major Cᵀ [N,M], and
 * Cᵀ = op(B)ᵀ · op(A)ᵀ, so a row-major product is the column-major one with the
 * operands swapped (B first), M and N swapped, and the same trans flags and
 * leading dimensions. */
#include "gemm.cuh"

#include <cublasLt.h>

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

void gemm_rm_bf16(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, const void *A, int lda,
                  const void *B, int ldb, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(DATH_CUBLAS(ctx),
                              tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                              N, M, K, &alpha,
                              B, CUDA_R_16BF, ldb,
                              A, CUDA_R_16BF, lda, &beta,
                              C, CUDA_R_32F, ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_rm_batched_bf16(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, float alpha, const void *A,
                          int lda, long long strideA, const void *B, int ldb, long long strideB, float beta,
                          void *C, int ldc, long long strideC, int batch, int c_bf16) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(DATH_CUBLAS(ctx),
                                            tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            N, M, K, &alpha,
                                            B, CUDA_R_16BF, ldb, strideB,
                                            A, CUDA_R_16BF, lda, strideA, &beta,
                                            C, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, ldc, strideC, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* The row-major product as gemm_rm makes it column-major — D [N, M] = op(B) [N, K] ·
 * op(A) [K, M]: cuBLASLt's A is our B, its B our A — so the bias runs along D's N rows,
 * as CUBLASLT_EPILOGUE_BIAS wants (one value a row of D, broadcast over its columns). */
int gemm_rm_bias_typed(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, const void *A, int lda,
                       const void *B, int ldb, void *C, int ldc, const void *bias, int relu, int ab_bf16,
                       int c_bf16) {
    if (M <= 0 || N <= 0) return 0;
    cublasLtHandle_t lt = (cublasLtHandle_t)ctx->blaslt;
    if (!lt) return -1;
    const cublasOperation_t oa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, ob = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t tab = ab_bf16 ? CUDA_R_16BF : CUDA_R_32F, tc = c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    /* bf16 operands: fp32 accumulation on the bf16 tensor cores (the FAST_16BF of fp32 ones) */
    const cublasComputeType_t ct = ab_bf16 ? CUBLAS_COMPUTE_32F : gemm_compute_type(ctx->precision);
    const float alpha = 1.0f, beta = 0.0f;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasStatus_t s = cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    /* the stored matrices, column-major: ours B is [K, N] stored when transposed (tb), else
     * [N, K]; ours A [M, K] when transposed (ta), else [K, M]; D [N, M] */
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&la, tab, tb ? K : N, tb ? N : K, ldb);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&lb, tab, ta ? M : K, ta ? K : M, lda);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&lc, tc, N, M, ldc);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(lt, op, &alpha, B, la, A, lb, &beta, C, lc, C, lc, NULL, NULL, 0, DATH_STREAM(ctx));
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return s == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

int gemm_rm_bias(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                 const float *bias, int relu) {
    return gemm_rm_bias_typed(ctx, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, bias, relu, 0, 0);
}
