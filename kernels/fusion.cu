/* kernels/fusion.cu — CUDA twin of kernels/fusion.c: inverted dropout with masks
 * regenerated from the counter-based generator (kernels/rng.h), and the fc7 fusion
 * f = relu(a) + relu(b) (contract in fusion.h).
 *
 * All four kernels are element-wise grid-stride loops, one thread an element; each
 * element is written by exactly one thread, so results do not depend on the launch.
 * Products and sums are rounded one at a time (__fmul_rn, __fadd_rn) so the compiler
 * cannot contract them into an FMA: the results are the reference's bits.
 *
 * Dropout indexes a [B, D] matrix as a flat [B·D] range; the row i = idx / D gives
 * the sample (sample0 + i) and the column j = idx % D the unit. The mask is
 * rng_keep(seed, tag, *step, sample0 + i, j, p), identical on host and device. The
 * step is a device pointer that every thread dereferences when the kernel runs (one
 * 4-byte load, served from cache after the first), never copied to the host: a CUDA
 * graph that captured the launch sees the step the host wrote before each replay. */
#include "cuda_common.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "fusion.h"
#include "rng.h"
}

/* The factor a kept unit is multiplied by; 0 when every unit is dropped (p ≥ 1),
 * as the reference. */
static float fusion_dropout_scale(float p) { return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p); }

__device__ __forceinline__ float drop_f(float v) { return v; }
__device__ __forceinline__ float drop_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void drop_put(float *p, float v) { *p = v; }
__device__ __forceinline__ void drop_put(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

/* T: how x and y are stored (fusion.h's store) */
template <typename T>
static __global__ void dropout_forward_kernel(T *y, const T *x, size_t n, int D, float p,
                                              float scale, uint64_t seed, uint32_t tag,
                                              const uint32_t *__restrict__ step,
                                              uint32_t sample0) {
    const uint32_t st = *step;
    /* y and x may alias (in place): each element is read, then written, by one thread. */
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n;
         idx += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = (uint32_t)(idx / (size_t)D), j = (uint32_t)(idx % (size_t)D);
        int keep = rng_keep(seed, tag, st, sample0 + i, j, p);
        float xv = drop_f(x[idx]);
        drop_put(&y[idx], keep ? __fmul_rn(xv, scale) : 0.0f);
    }
}

static __global__ void dropout_backward_kernel(float *__restrict__ dx, const float *__restrict__ dy,
                                               size_t n, int D, float p, float scale,
                                               uint64_t seed, uint32_t tag,
                                               const uint32_t *__restrict__ step,
                                               uint32_t sample0) {
    const uint32_t st = *step;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n;
         idx += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = (uint32_t)(idx / (size_t)D), j = (uint32_t)(idx % (size_t)D);
        dx[idx] = rng_keep(seed, tag, st, sample0 + i, j, p) ? __fmul_rn(dy[idx], scale) : 0.0f;
    }
}

extern "C" void dropout_forward_cuda(void *y, const void *x, int B, int D, float p,
                                     uint64_t seed, uint32_t tag, const uint32_t *step,
                                     uint32_t sample0, int store, dath_ctx *ctx) {
    if (B <= 0 || D <= 0) return;
    size_t n = (size_t)B * D;
    if (store == DATH_STORE_BF16)
        dropout_forward_kernel<__nv_bfloat16><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            (__nv_bfloat16 *)y, (const __nv_bfloat16 *)x, n, D, p, fusion_dropout_scale(p), seed, tag, step, sample0);
    else
        dropout_forward_kernel<float><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            (float *)y, (const float *)x, n, D, p, fusion_dropout_scale(p), seed, tag, step, sample0);
    CUDA_LAUNCH_CHECK();
}

extern "C" void dropout_backward_cuda(float *dx, const float *dy, int B, int D, float p,
                                      uint64_t seed, uint32_t tag, const uint32_t *step,
                                      uint32_t sample0, dath_ctx *ctx) {
    if (B <= 0 || D <= 0) return;
    size_t n = (size_t)B * D;
    dropout_backward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
        dx, dy, n, D, p, fusion_dropout_scale(p), seed, tag, step, sample0);
    CUDA_LAUNCH_CHECK();
}

/* f = relu(a) + relu(b); b == NULL: f = relu(a). */
static __global__ void fuse_forward_kernel(float *__restrict__ f, const float *__restrict__ a,
                                           const float *__restrict__ b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float av = a[i];
        float s = av > 0.0f ? av : 0.0f;
        if (b) {
            float bv = b[i];
            if (bv > 0.0f) s = __fadd_rn(s, bv);
        }
        f[i] = s;
    }
}

/* da = df·(a > 0), db = df·(b > 0) (written). da and db may not alias each other. */
static __global__ void fuse_backward_kernel(float *__restrict__ da, float *__restrict__ db,
                                            const float *__restrict__ df,
                                            const float *__restrict__ a,
                                            const float *__restrict__ b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float d = df[i];
        da[i] = a[i] > 0.0f ? d : 0.0f;
        if (b) db[i] = b[i] > 0.0f ? d : 0.0f;
    }
}

extern "C" void fuse_forward_cuda(float *f, const float *a, const float *b, size_t n,
                                  dath_ctx *ctx) {
    if (n == 0) return;
    fuse_forward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(f, a, b, n);
    CUDA_LAUNCH_CHECK();
}

extern "C" void fuse_backward_cuda(float *da, float *db, const float *df, const float *a,
                                   const float *b, size_t n, dath_ctx *ctx) {
    if (n == 0) return;
    fuse_backward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(da, b ? db : NULL,
                                                                         df, a, b, n);
    CUDA_LAUNCH_CHECK();
}
