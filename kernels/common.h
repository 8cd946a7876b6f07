/* kernels/common.h — what every op family shares.
 *
 * Conventions for every op in kernels/:
 *   - Tensors are float32, row-major, NCHW for images ([B,C,H,W]), [B,D] for vectors;
 *     the convolutions' and max-pools' activations may be bf16 where their shape or
 *     store argument says so (DATH_STORE_BF16 below).
 *   - Every op family is declared once in kernels/<family>.h as a function *type*
 *     (`typedef void conv2d_forward_fn(...)`); the plain-C reference defines
 *     `<op>_cpu` in kernels/<family>.c and the CUDA version `<op>_cuda` in
 *     kernels/<family>.cu, both declared with that type, so their signatures cannot
 *     drift apart.
 *   - Argument order: outputs first, then const inputs, then sizes and scalars,
 *     then the context (stream, BLAS handle, scratch) last.
 *   - Gradient contract: each op's header says whether a gradient output is written
 *     (=) or added to (+=). Parameter gradients are written (each has one writer a
 *     step), and so is every activation gradient with one writer (host/net.c lists
 *     them); a second writer adds (dath-1's CAM after PAM), and the losses add into the
 *     dy and dz the caller zeroes.
 *   - A backward op may clobber the `dout` it is given only where its header says so.
 *   - Pointers are backend memory: host memory on the CPU backend, device memory on
 *     the CUDA backend. Scalars (losses) are written to a 1-element backend buffer,
 *     never returned, so that a CUDA step can be captured in a graph.
 *   - Scratch is part of an op's contract, one policy for every op: an op uses
 *     ctx->work, sized by its family's *_work_bytes for the shapes at hand (the CUDA
 *     ops), or allocates its own host scratch (the references). An op given less
 *     scratch than its contract asks for, or whose own allocation fails, cannot do its
 *     job: it calls dath_scratch_fail, which names the op, the bytes needed and the
 *     bytes it had, and aborts. Never a property of the input (the sizes come from the
 *     same shapes) but a sizing bug or an exhausted host; going on with poisoned outputs
 *     would be worse, since a backward op's NaN reaches the parameters without passing
 *     the step's non-finite-loss guard. (Arguments outside an op's limits, e.g. J1's
 *     batch above J1_MAX_B, are not scratch: they give the NaN loss the guard sees.)
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
    int borrowed;      /* 1: made by ctx_fork where nothing needs its own (the CPU):
                          work and the rest belong to the parent context */
    int conv_algo;     /* DATH_CONV_IMPLICIT (default, 0) or DATH_CONV_IM2COL: the CUDA
                          convolutions' path (kernels/conv.h); the CPU reference ignores it */
    int sm;            /* compute capability × 10 of the context's device (CUDA), 0 on the CPU:
                          which implicit-GEMM kernels run (tensor cores, cp.async from 80) */
    int conv_tile;     /* checks and bench only: 0 the implicit convolutions' tile table, else
                          CONV_TILE_* + 1 forced (kernels/conv.h) */
    int conv_split;    /* checks and bench only: 0 the table's K split, else that many parts */
} dath_ctx;

enum { DATH_FP32 = 0, DATH_TF32 = 1, DATH_BF16 = 2 };

/* How an activation tensor is stored, where an op says it may be either (conv.h's shape,
 * pool.h's store argument): fp32, or bf16 (the upper 16 bits of the fp32 value, rounded
 * to nearest-even; 2 bytes an element at the same pointer, which keeps its float * type in
 * the op's signature). The bf16 storage of `--precision bf16` (host/net.c, conv2d_store_bf16). */
enum { DATH_STORE_F32 = 0, DATH_STORE_BF16 = 1 };

/* bf16 ↔ float on the host (the references and the checks), as CUDA's __float2bfloat16 and
 * __bfloat162float: round to nearest-even, a NaN stays a (quiet) NaN. */
typedef uint16_t dath_bf16;
static inline dath_bf16 dath_bf16_from_float(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (dath_bf16)((v.u >> 16) | 0x40u);
    return (dath_bf16)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
static inline float dath_bf16_to_float(dath_bf16 h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
/* Element i of a tensor stored as `store` says, as a float; and the store of v there. */
static inline float dath_load(const void *p, size_t i, int store) {
    return store == DATH_STORE_BF16 ? dath_bf16_to_float(((const dath_bf16 *)p)[i]) : ((const float *)p)[i];
}
static inline void dath_store(void *p, size_t i, float v, int store) {
    if (store == DATH_STORE_BF16) ((dath_bf16 *)p)[i] = dath_bf16_from_float(v);
    else ((float *)p)[i] = v;
}
static inline size_t dath_store_size(int store) { return store == DATH_STORE_BF16 ? 2 : 4; }
enum { DATH_CONV_IMPLICIT = 0, DATH_CONV_IM2COL = 1 };

#include <stdio.h>
#include <stdlib.h>
/* The scratch policy above: prints "dath: OP: needs NEED bytes of scratch, has HAVE
 * (WHAT)" and aborts. */
static inline void dath_scratch_fail(const char *op, size_t need, size_t have, const char *what) {
    fprintf(stderr, "dath: %s: needs %zu bytes of scratch, has %zu (%s); aborting: the scratch "
            "is sized from the same shapes, so this is a sizing bug or an exhausted host\n",
            op, need, have, what);
    abort();
}

#endif
