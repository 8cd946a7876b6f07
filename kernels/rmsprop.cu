/* kernels/rmsprop.cu — CUDA twin of kernels/rmsprop.c: one RMSProp step with weight
 * decay over the whole flat parameter buffer, in ONE launch (contract in rmsprop.h).
 *
 * A grid-stride loop; when theta, v and grad are all 16-byte aligned each thread moves
 * float4s (one 16-byte load of each input and one 16-byte store of each output per
 * four elements), and the n % 4 tail is done by the first threads of the same launch.
 * The arithmetic is the reference's (PyTorch's operation order), rounded one
 * operation at a time (__fmul_rn/__fadd_rn/__fdiv_rn/__fsqrt_rn, no FMA contraction):
 *   g = grad + wd·θ;  v = v·alpha + ((1 − alpha)·g)·g;
 *   θ = θ + ((−lr)·g) / (√v + eps),
 * so the device's parameters are the reference's bits.
 *
 * The guard (the step's few loss values, device memory) is read by every thread at
 * the start of the kernel — nguard loads of the same addresses, served from cache —
 * and a thread that sees a NaN or ±inf writes nothing, so a non-finite step leaves
 * theta and v untouched in the same single launch, with no host round trip.
 *
 * With a bf16 copy (rmsprop.h) each thread also stores bf16(θ) of its new θs: 8 bytes
 * (four bf16) a float4, __float2bfloat16's round to nearest even, the reference's bits
 * (dath_bf16_from_float). rmsprop_narrow_kernel makes the copy alone, the same way. */
#include "cuda_common.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "rmsprop.h"
}

/* One element; returns the new theta and writes the new v. */
static __device__ __forceinline__ float rmsprop_one(float th, float *v, float gr, float neg_lr,
                                                    float alpha, float oma, float eps, float wd) {
    float g = __fadd_rn(gr, __fmul_rn(wd, th));
    float vi = __fadd_rn(__fmul_rn(*v, alpha), __fmul_rn(__fmul_rn(oma, g), g));
    *v = vi;
    return __fadd_rn(th, __fdiv_rn(__fmul_rn(neg_lr, g), __fadd_rn(__fsqrt_rn(vi), eps)));
}

/* The 16 bits of bf16(f) (memcpy: __bfloat16_as_ushort is sm_80+ in CUDA 11). */
static __device__ __forceinline__ unsigned rmsprop_bits(float f) {
    const __nv_bfloat16 h = __float2bfloat16(f);
    unsigned short u;
    memcpy(&u, &h, sizeof u);
    return u;
}

/* Four bf16 of four floats, packed as they lie in memory (element 0 in the low half). */
static __device__ __forceinline__ uint2 rmsprop_pack4(float4 t) {
    return make_uint2(rmsprop_bits(t.x) | (rmsprop_bits(t.y) << 16), rmsprop_bits(t.z) | (rmsprop_bits(t.w) << 16));
}

/* vec: the buffers are 16-byte aligned (the copy 8-byte); the first n/4·4 elements go as float4 and the
 * rest one by one. Otherwise every element one by one. */
static __global__ void rmsprop_step_kernel(float *__restrict__ theta, float *__restrict__ v,
                                           __nv_bfloat16 *__restrict__ copy, const float *__restrict__ grad, size_t n, float neg_lr,
                                           float alpha, float oma, float eps, float wd, int vec,
                                           const float *__restrict__ guard, int nguard) {
    if (guard)
        for (int k = 0; k < nguard; k++)
            if (!isfinite(guard[k])) return;     /* skip the step: nothing written */
    const size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        const size_t n4 = n / 4;
        float4 *t4 = reinterpret_cast<float4 *>(theta);
        float4 *v4 = reinterpret_cast<float4 *>(v);
        const float4 *g4 = reinterpret_cast<const float4 *>(grad);
        for (size_t i = tid; i < n4; i += stride) {
            float4 t = t4[i], s = v4[i], g = g4[i];
            t.x = rmsprop_one(t.x, &s.x, g.x, neg_lr, alpha, oma, eps, wd);
            t.y = rmsprop_one(t.y, &s.y, g.y, neg_lr, alpha, oma, eps, wd);
            t.z = rmsprop_one(t.z, &s.z, g.z, neg_lr, alpha, oma, eps, wd);
            t.w = rmsprop_one(t.w, &s.w, g.w, neg_lr, alpha, oma, eps, wd);
            t4[i] = t;
            v4[i] = s;
            if (copy) reinterpret_cast<uint2 *>(copy)[i] = rmsprop_pack4(t);
        }
        done = n4 * 4;
    }
    for (size_t i = done + tid; i < n; i += stride) {
        float s = v[i];
        const float t = rmsprop_one(theta[i], &s, grad[i], neg_lr, alpha, oma, eps, wd);
        theta[i] = t;
        v[i] = s;
        if (copy) copy[i] = __float2bfloat16(t);
    }
}

static __global__ void rmsprop_narrow_kernel(__nv_bfloat16 *__restrict__ copy, const float *__restrict__ theta,
                                             size_t n, int vec) {
    const size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        const size_t n4 = n / 4;
        for (size_t i = tid; i < n4; i += stride)
            reinterpret_cast<uint2 *>(copy)[i] = rmsprop_pack4(reinterpret_cast<const float4 *>(theta)[i]);
        done = n4 * 4;
    }
    for (size_t i = done + tid; i < n; i += stride) copy[i] = __float2bfloat16(theta[i]);
}

extern "C" void rmsprop_step_cuda(float *theta, float *v, dath_bf16 *copy, const float *grad, size_t n,
                                  float lr, float alpha, float eps, float wd,
                                  const float *guard, int nguard, dath_ctx *ctx) {
    if (n == 0) return;
    int vec = ((uintptr_t)theta % 16 == 0) && ((uintptr_t)v % 16 == 0) &&
              ((uintptr_t)grad % 16 == 0) && ((uintptr_t)copy % 8 == 0);
    size_t work = vec ? (n + 3) / 4 : n;    /* items of the main loop */
    const float oma = 1.0f - alpha, neg_lr = -lr;   /* as the reference */
    rmsprop_step_kernel<<<grid_1d(work), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
        theta, v, (__nv_bfloat16 *)copy, grad, n, neg_lr, alpha, oma, eps, wd, vec, guard, nguard);
    CUDA_LAUNCH_CHECK();
}

extern "C" void rmsprop_narrow_cuda(dath_bf16 *copy, const float *theta, size_t n, dath_ctx *ctx) {
    if (n == 0) return;
    const int vec = ((uintptr_t)theta % 16 == 0) && ((uintptr_t)copy % 8 == 0);
    rmsprop_narrow_kernel<<<grid_1d(vec ? (n + 3) / 4 : n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
        (__nv_bfloat16 *)copy, theta, n, vec);
    CUDA_LAUNCH_CHECK();
}
