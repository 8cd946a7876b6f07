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

/* C [M,N] = op(A)·op(B) + bias[n] on every row (relu: then max(0, ·)), C written (β = 0),
 * in one cuBLASLt matmul (ctx->blaslt) whose epilogue adds the bias and applies the ReLU
 * (CUBLASLT_EPILOGUE_BIAS, _RELU_BIAS): no second pass over C. The compute type is
 * gemm_rm's; the descriptors are made and freed in the call (host work only, so a graph
 * captures the one matmul). Returns 0, or -1 when there is no cuBLASLt handle or cuBLASLt
 * declines the problem: then nothing was queued, and the caller does gemm_rm and its own
 * bias pass. */
int gemm_rm_bias(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                 const float *bias, int relu);

/* The same with stored types: ab_bf16, A and B are bf16 (the product then on cuBLAS's
 * CUBLAS_COMPUTE_32F: bf16 tensor cores, fp32 accumulation); c_bf16, C is bf16 (the
 * epilogue's fp32 value rounded to nearest) and so is the bias (cuBLASLt's bias is of C's
 * type), else both fp32. */
int gemm_rm_bias_typed(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, const void *A, int lda,
                       const void *B, int ldb, void *C, int ldc, const void *bias, int relu, int ab_bf16,
                       int c_bf16);

/* C [M,N] (fp32) = op(A)·op(B), β = 0, of bf16 A and B (cublasGemmEx, CUBLAS_COMPUTE_32F:
 * bf16 tensor cores, fp32 accumulation; sm_80+). */
void gemm_rm_bf16(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, const void *A, int lda,
                  const void *B, int ldb, float *C, int ldc);

/* gemm_rm_batched on bf16 A and B (strides in elements), C fp32 or (c_bf16) bf16, the
 * epilogue's fp32 alpha·AB + beta·C rounded to nearest once for a bf16 C. */
void gemm_rm_batched_bf16(dath_ctx *ctx, bool ta, bool tb, int M, int N, int K, float alpha, const void *A,
                          int lda, long long strideA, const void *B, int ldb, long long strideB, float beta,
                          void *C, int ldc, long long strideC, int batch, int c_bf16);

#endif
