/* kernels/pool.cu — CUDA max-pool (3×3, stride 2) and adaptive average pool
 * (contract in pool.h; the same arithmetic as pool.c).
 *
 * Forwards: one thread per output cell. Backwards are atomic-free: one thread per
 * input element gathers, in increasing (oy, ox), the contributions of every window
 * that covers it, starting from din's current value, which is the order in which the
 * reference's plane loop adds them — so the sums round the same way. */
#include "cuda_common.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "pool.h"
}

/* PyTorch's adaptive-pool bin [start, end) of output cell i when n cells cover `in`. */
__device__ __forceinline__ int pool_bin_start(int i, int in, int n) {
    return (int)(((long long)i * in) / n);
}
__device__ __forceinline__ int pool_bin_end(int i, int in, int n) {
    return (int)(((long long)(i + 1) * in + n - 1) / n);
}

/* An element as a float: fp32 or bf16 storage (pool.h's store). */
__device__ __forceinline__ float pool_f(float v) { return v; }
__device__ __forceinline__ float pool_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T pool_t(float v);
template <> __device__ __forceinline__ float pool_t<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 pool_t<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

/* ---- kernels ------------------------------------------------------------------ */

/* out, idx [BC, Ho, Wo] ← max over the 3×3 window at (2oy, 2ox) of in [BC, H, W], idx
 * the argmax's place in the window (dy·3 + dx); the first maximum in row-major window
 * order wins, a NaN beats every number. */
template <class T>
__global__ void maxpool_forward_kernel(T *out, maxpool_arg *idx, const T *in,
                                       int BC, int H, int W, int Ho, int Wo) {
    const size_t total = (size_t)BC * Ho * Wo;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(e % Wo), oy = (int)((e / Wo) % Ho);
        const size_t pl = e / ((size_t)Ho * Wo);
        const T *x = in + pl * H * W;                                      /* [H, W] */
        int best = 0;
        T bt = x[(2 * oy) * W + 2 * ox];
        float bv = pool_f(bt);
        for (int dy = 0; dy < 3; dy++)
            for (int dx = 0; dx < 3; dx++) {
                const T t = x[(2 * oy + dy) * W + 2 * ox + dx];
                const float v = pool_f(t);
                if (v > bv || (isnan(v) && !isnan(bv))) { bv = v; bt = t; best = dy * 3 + dx; }
            }
        out[e] = bt;
        idx[e] = (maxpool_arg)best;
    }
}

/* din [BC, H, W] = Σ dout over every window whose argmax is this element and, with a
 * mask, whose mask is > 0 (0 if none). The windows
 * covering row y are oy ∈ [⌈(y−2)/2⌉, ⌊y/2⌋] ∩ [0, Ho); likewise columns. */
template <class T>
__global__ void maxpool_backward_kernel(T *din, const T *dout, const maxpool_arg *idx,
                                        const T *mask, int BC, int H, int W, int Ho, int Wo) {
    const size_t total = (size_t)BC * H * W;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(e % W), y = (int)((e / W) % H);
        const size_t pl = e / ((size_t)H * W);
        const T *dy = dout + pl * Ho * Wo;                                 /* [Ho, Wo] */
        const maxpool_arg *ix = idx + pl * Ho * Wo;                        /* [Ho, Wo] */
        const T *mk = mask ? mask + pl * Ho * Wo : nullptr;                /* [Ho, Wo] */
        const int oy0 = y >= 2 ? (y - 1) / 2 : 0, oy1 = min(Ho - 1, y / 2);
        const int ox0 = x >= 2 ? (x - 1) / 2 : 0, ox1 = min(Wo - 1, x / 2);
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (ix[oy * Wo + ox] == (y - 2 * oy) * 3 + (x - 2 * ox) && (!mk || pool_f(mk[oy * Wo + ox]) > 0.0f))
                    acc += pool_f(dy[oy * Wo + ox]);
        din[e] = pool_t<T>(acc);
    }
}

/* out [BC, Ho, Wo] = mean of in [BC, H, W] over each adaptive bin (sum in double). */
template <typename To>
__global__ void avgpool_forward_kernel(To *out, const float *in,
                                       int BC, int H, int W, int Ho, int Wo) {
    const size_t total = (size_t)BC * Ho * Wo;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(e % Wo), oy = (int)((e / Wo) % Ho);
        const size_t pl = e / ((size_t)Ho * Wo);
        const float *x = in + pl * H * W;                                  /* [H, W] */
        const int y0 = pool_bin_start(oy, H, Ho), y1 = pool_bin_end(oy, H, Ho);
        const int x0 = pool_bin_start(ox, W, Wo), x1 = pool_bin_end(ox, W, Wo);
        double acc = 0.0;
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++) acc += x[(size_t)yy * W + xx];
        out[e] = pool_t<To>((float)(acc / ((double)(y1 - y0) * (x1 - x0))));
    }
}

/* din [BC, H, W] = Σ dout / |bin| over every bin containing the element (bins may
 * overlap). Rows whose bin misses y are skipped before the columns are looked at. */
__global__ void avgpool_backward_kernel(float *din, const float *dout,
                                        int BC, int H, int W, int Ho, int Wo) {
    const size_t total = (size_t)BC * H * W;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(e % W), y = (int)((e / W) % H);
        const size_t pl = e / ((size_t)H * W);
        const float *dy = dout + pl * Ho * Wo;                             /* [Ho, Wo] */
        float acc = 0.0f;
        for (int oy = 0; oy < Ho; oy++) {
            const int y0 = pool_bin_start(oy, H, Ho), y1 = pool_bin_end(oy, H, Ho);
            if (y < y0 || y >= y1) continue;
            for (int ox = 0; ox < Wo; ox++) {
                const int x0 = pool_bin_start(ox, W, Wo), x1 = pool_bin_end(ox, W, Wo);
                if (x < x0 || x >= x1) continue;
                acc += (float)(dy[oy * Wo + ox] / ((double)(y1 - y0) * (x1 - x0)));
            }
        }
        din[e] = acc;
    }
}

/* ---- launchers ---------------------------------------------------------------- */

extern "C" void maxpool_forward_cuda(float *out, maxpool_arg *idx, const float *in,
                                     int BC, int H, int W, int store, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const size_t n = (size_t)BC * Ho * Wo;
    if (n == 0) return;
    if (store == DATH_STORE_BF16)
        maxpool_forward_kernel<__nv_bfloat16><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            (__nv_bfloat16 *)out, idx, (const __nv_bfloat16 *)in, BC, H, W, Ho, Wo);
    else
        maxpool_forward_kernel<float><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(out, idx, in, BC, H, W, Ho, Wo);
    CUDA_LAUNCH_CHECK();
}

extern "C" void maxpool_backward_cuda(float *din, const float *dout, const maxpool_arg *idx,
                                      const float *mask, int BC, int H, int W, int store, dath_ctx *ctx) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const size_t n = (size_t)BC * H * W;
    if (n == 0) return;
    if (Ho == 0 || Wo == 0) {   /* no window: no gradient reaches din */
        CUDA_CHECK(cudaMemsetAsync(din, 0, n * dath_store_size(store), DATH_STREAM(ctx)));
        return;
    }
    if (store == DATH_STORE_BF16)
        maxpool_backward_kernel<__nv_bfloat16><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            (__nv_bfloat16 *)din, (const __nv_bfloat16 *)dout, idx, (const __nv_bfloat16 *)mask, BC, H, W, Ho, Wo);
    else
        maxpool_backward_kernel<float><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            din, dout, idx, mask, BC, H, W, Ho, Wo);
    CUDA_LAUNCH_CHECK();
}

extern "C" void avgpool_forward_cuda(void *out, const float *in,
                                     int BC, int H, int W, int Ho, int Wo, int out_store, dath_ctx *ctx) {
    if (Ho <= 0 || Wo <= 0 || BC <= 0) return;
    const size_t n = (size_t)BC * Ho * Wo;
    if (out_store == DATH_STORE_BF16)
        avgpool_forward_kernel<__nv_bfloat16><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
            (__nv_bfloat16 *)out, in, BC, H, W, Ho, Wo);
    else
        avgpool_forward_kernel<float><<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>((float *)out, in, BC, H, W, Ho, Wo);
    CUDA_LAUNCH_CHECK();
}

extern "C" void avgpool_backward_cuda(float *din, const float *dout,
                                      int BC, int H, int W, int Ho, int Wo, dath_ctx *ctx) {
    if (BC <= 0 || H <= 0 || W <= 0) return;
    const size_t n = (size_t)BC * H * W;
    if (Ho <= 0 || Wo <= 0) {   /* no bins: no gradient reaches din */
        CUDA_CHECK(cudaMemsetAsync(din, 0, n * sizeof(float), DATH_STREAM(ctx)));
        return;
    }
    avgpool_backward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(
        din, dout, BC, H, W, Ho, Wo);
    CUDA_LAUNCH_CHECK();
}
