/* kernels/common.h — what every op family shares.
 *
 * Conventions for every op in kernels/:
 *   - Tensors are float32, row-major, NCHW for images ([B,C,H,W]), [B,D] for vectors.
 *   - Every op family is declared once in kernels/<family>.h as a function *type*
 *     (`typedef void conv2d_forward_fn(...)`); the plain-C reference defines
 *     `<op>_cpu` in kernels/<family>.c and the CUDA version `<op>_cuda` in
 *     kernels/<family>.cu, both declared with that type, so their signatures cannot
 *     drift apart.
 *   - Argument order: outputs first, then const inputs, then sizes and scalars,
 *     then the context (stream, BLAS handle, scratch) last.
 *   - Gradient contract: EVERY gradient output, parameter or activation, accumulates
 *     (`+=`). The caller zeroes gradient buffers before a backward pass. This makes
 *     fan-out (one tensor read by two ops) a plain second accumulation.
 *   - A backward op may clobber the `dout` it is given only where its header says so.
 *   - Pointers are backend memory: host memory on the CPU backend, device memory on
 *     the CUDA backend. Scalars (losses) are written to a 1-element backend buffer,
 *     never returned, so that a CUDA step can be captured in a graph.
 */
#ifndef DATH_KERNELS_COMMON_H
#define DATH_KERNELS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DATH_HD __host__ __device__ __forceinline__
#else
#define DATH_HD static inline
#endif

/* Execution context handed to every op. The CPU backend ignores stream/blas. */
typedef struct dath_ctx {
    void *stream;      /* cudaStream_t on the CUDA backend, NULL on the CPU */
    void *copy_stream; /* cudaStream_t for uploads beside `stream` (CUDA), NULL on the CPU */
    void *blas;        /* cublasHandle_t on the CUDA backend, NULL on the CPU */
    void *blaslt;      /* cublasLtHandle_t on the CUDA backend, NULL on the CPU */
    float *work;       /* backend scratch, at least work_bytes long */
    size_t work_bytes;
    int precision;     /* DATH_FP32, DATH_TF32 or DATH_BF16 (GEMM inputs only) */
    int conv_algo;     /* DATH_CONV_IMPLICIT (default, 0) or DATH_CONV_IM2COL: the CUDA
                          convolutions' path (kernels/conv.h); the CPU reference ignores it */
    int sm;            /* compute capability × 10 of the context's device (CUDA), 0 on the CPU:
                          which implicit-GEMM kernels run (tensor cores, cp.async from 80) */
    int conv_tile;     /* checks and bench only: 0 the implicit convolutions' tile table, else
                          CONV_TILE_* + 1 forced (kernels/conv.h) */
    int conv_split;    /* checks and bench only: 0 the table's K split, else that many parts */
} dath_ctx;

enum { DATH_FP32 = 0, DATH_TF32 = 1, DATH_BF16 = 2 };
enum { DATH_CONV_IMPLICIT = 0, DATH_CONV_IM2COL = 1 };

#endif
