/* kernels/cuda_common.cuh — what every CUDA op file shares: one error macro per
 * library, launch checking, block sizes, the stream and handles from dath_ctx.
 *
 * Kernels below the CLI do not exit on a CUDA error they cannot recover from: the
 * macros print file, line, the library's message and a hint, then abort() — a CUDA
 * error inside a step leaves the context unusable, and the training loop's last
 * checkpoint is already on disk (written atomically). With DEBUG=1 (DATH_DEBUG),
 * every launch is followed by a device synchronise so the failing kernel is named. */
#ifndef DATH_CUDA_COMMON_CUH
#define DATH_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "common.h"
}
#include "cuda_check.h"

/* After every launch (DATH_DEBUG: also wait for it, except inside a graph capture). */
#ifdef DATH_DEBUG
#define CUDA_LAUNCH_CHECK()                                                            \
    do {                                                                               \
        CUDA_CHECK(cudaGetLastError());                                                \
        if (!dath_cuda_capturing) CUDA_CHECK(cudaDeviceSynchronize());                 \
    } while (0)
#else
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())
#endif

#define DATH_STREAM(ctx) ((cudaStream_t)(ctx)->stream)
#define DATH_CUBLAS(ctx) ((cublasHandle_t)(ctx)->blas)

/* Block sizes, named once. */
enum { BLOCK_1D = 256, BLOCK_ROWS = 128, WARP = 32 };

static inline unsigned int ceil_div(size_t a, size_t b) { return (unsigned int)((a + b - 1) / b); }

/* Grid for n elements with a grid-stride loop, capped so huge n stays legal. */
static inline unsigned int grid_1d(size_t n) {
    size_t g = (n + BLOCK_1D - 1) / BLOCK_1D;
    return (unsigned int)(g > 65535u * 8 ? 65535u * 8 : (g ? g : 1));
}

#endif
