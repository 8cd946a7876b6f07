/* kernels/cuda_check.h — the error macros of the CUDA runtime and cuBLAS, shared by the
 * CUDA op files (through cuda_common.cuh) and the plain-C CUDA backend
 * (host/backend_cuda.c). On an error they print file, line, the library's message and
 * the call, then abort(): a CUDA error leaves the context unusable, and the training
 * loop's last checkpoint is already on disk (written atomically). Functions that can
 * report an error instead use CUDA_TRY, which returns -1. */
#ifndef DATH_CUDA_CHECK_H
#define DATH_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
#define DATH_THREAD_LOCAL thread_local
extern "C" {
#else
#define DATH_THREAD_LOCAL _Thread_local
#endif
/* 1 while host/backend_cuda.c captures a CUDA graph in this thread (defined in
 * kernels/gemm.cu; per thread, as rank threads capture at once). DATH_DEBUG builds
 * synchronise after every launch, which a capture forbids: they skip that
 * synchronisation while this is set. */
extern DATH_THREAD_LOCAL int dath_cuda_capturing;
#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(call)                                                               \
    do {                                                                               \
        cudaError_t err_ = (call);                                                     \
        if (err_ != cudaSuccess) {                                                     \
            fprintf(stderr, "dath: CUDA error %s at %s:%d: %s (%s)\n",                 \
                    cudaGetErrorName(err_), __FILE__, __LINE__,                        \
                    cudaGetErrorString(err_), #call);                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#define CUBLAS_CHECK(call)                                                             \
    do {                                                                               \
        cublasStatus_t st_ = (call);                                                   \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                            \
            fprintf(stderr, "dath: cuBLAS error %d at %s:%d (%s); hint: a shape, "     \
                    "a leading dimension or the workspace is wrong\n",                 \
                    (int)st_, __FILE__, __LINE__, #call);                              \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* For int-returning functions: on error, a line on stderr and return -1. */
#define CUDA_TRY(call)                                                                 \
    do {                                                                               \
        cudaError_t err_ = (call);                                                     \
        if (err_ != cudaSuccess) {                                                     \
            fprintf(stderr, "dath: CUDA error %s at %s:%d: %s (%s)\n",                 \
                    cudaGetErrorName(err_), __FILE__, __LINE__,                        \
                    cudaGetErrorString(err_), #call);                                  \
            return -1;                                                                 \
        }                                                                              \
    } while (0)

#endif
