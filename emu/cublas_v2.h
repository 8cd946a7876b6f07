/* emu/cublas_v2.h — the cuBLAS calls dath makes, emulated on the CPU
 * (emu/README.md, "cuBLAS numerics"). Each output element is one chain over k in
 * index order: CUBLAS_COMPUTE_32F a chain of fp32 FMAs (cuBLAS's CUDA-core kernels);
 * FAST_TF32 / FAST_16BF the operands converted to tf32 / bf16, then block FMAs of 8 / 16
 * exact products as sm_90's tensor cores sum them (aligned, truncated, the sum truncated
 * to fp32); then alpha and beta in fp32 as cuBLAS's epilogue (fma(alpha, acc, beta·C)).
 * DATH_EMU_GEMM=fma|double and DATH_EMU_TC_ROUND=rn|rna|rz choose other models. Not
 * cuBLAS's blocking or split-K order. Arguments are validated as cuBLAS validates them
 * (CUBLAS_STATUS_INVALID_VALUE), and every operand's extent must lie inside one
 * device allocation (else a sticky cudaErrorIllegalAddress, as a GPU would fault).
 * Work goes to the handle's stream: run at once, or recorded while that stream is
 * captured. */
#ifndef DATH_EMU_CUBLAS_V2_H
#define DATH_EMU_CUBLAS_V2_H

#include "cuda_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct emu_blas *cublasHandle_t;

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77
} cublasComputeType_t;

typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;

typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t st);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes);

/* Column-major C [m,n] = alpha · op(A) [m,k] · op(B) [k,n] + beta · C (C not read when
 * beta = 0). Only CUDA_R_32F storage and the 32F compute types. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                            int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t Atype, int lda,
                            const void *B, cudaDataType_t Btype, int ldb, const void *beta,
                            void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha,
                                          const void *A, cudaDataType_t Atype, int lda,
                                          long long strideA,
                                          const void *B, cudaDataType_t Btype, int ldb,
                                          long long strideB, const void *beta,
                                          void *C, cudaDataType_t Ctype, int ldc,
                                          long long strideC, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo);
/* y [n·incy] += alpha · x [n·incx], each element one fp32 FMA (in double, rounded once,
 * under DATH_EMU_GEMM=double). */
cublasStatus_t cublasSaxpy(cublasHandle_t h, int n, const float *alpha, const float *x,
                           int incx, float *y, int incy);

#ifdef __cplusplus
}
#endif

#endif
