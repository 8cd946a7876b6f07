/* kernels/linear.cu — CUDA fully connected layer (contract in linear.h).
 *
 *   forward   out [B,O] = (relu) in [B,I] · w [O,I]ᵀ + b  (one cuBLASLt matmul, the bias
 *                                                          and ReLU in its epilogue; where
 *                                                          cuBLASLt declines: cuBLAS, then
 *                                                          the bias pass below)
 *   backward  dout masked by out > 0 when relu            (dout is clobbered)
 *             db [O] = Σ_b dout                           (the same pass as the mask:
 *                                                          8 columns × 32 row groups a block)
 *             dw [O,I] = dout [B,O]ᵀ · in [B,I]           (cuBLAS, beta = 0)
 *             din [B,I] = dout [B,O] · w [O,I]            (cuBLAS, beta = 0)
 *
 * With bf16 storage (linear.h's st): the forward's matmul reads bf16 in and w16 and writes
 * out as stored (a bf16 out with the bf16 bias, cuBLASLt's rule); the backward's pass writes
 * the masked dout as bf16 into the scratch instead of back into dout, and both GEMMs read
 * that and the bf16 in / w16, writing fp32 dw and din. Where cuBLASLt declines, the product
 * goes to fp32 (out, or the scratch for a bf16 out) and the bias pass stores it. */
#include "cuda_common.cuh"
#include "gemm.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "linear.h"
}

/* ---- kernels ------------------------------------------------------------------ */

__device__ __forceinline__ float lin_f(float v) { return v; }
__device__ __forceinline__ float lin_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T lin_t(float v);
template <> __device__ __forceinline__ float lin_t<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 lin_t<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

/* out [B, O] = (relu) acc + b[o] after the GEMM (where cuBLASLt declined): acc is out
 * itself (fp32) or the scratch's fp32 product (a bf16 out); Tb the bias's type. */
template <typename To, typename Tb>
__global__ void linear_bias_relu_kernel(To *out, const float *acc, const Tb *b, int B, int O, int relu) {
    const size_t total = (size_t)B * O;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        float v = acc[e] + lin_f(b[e % O]);
        out[e] = lin_t<To>((relu && v < 0.0f) ? 0.0f : v);
    }
}

enum { BGRAD_COLS = 8, BGRAD_GROUPS = 32 };   /* a block: 8 columns × 32 row groups */

/* The backward's elementwise pass, one read of dout: with relu, dout[b, o] = 0 where
 * out[b, o] <= 0 (or NaN); and db[o] = Σ_b dout[b, o] of the masked values. Thread
 * (x, y) of a block takes column blockIdx.x·8 + x and rows y, y + 32, …, summing in
 * double; the 32 partial sums of a column are then added in group order by one thread,
 * so the result does not depend on timing (no atomics). A warp reads 8 consecutive floats
 * (one 32-byte sector) of each of 4 rows, so every sector it loads is used whole, and
 * the pass has O/8 blocks: 512 for fc6/fc7 (about 4 a multiprocessor on an H200, 18 on
 * a GTX 1080 Ti) where 32 columns a block gave 128. With d16 (bf16 storage) the masked
 * values go to d16 [B, O], rounded to bf16, and dout is only read; Tm is out's type. */
template <typename Tm>
__global__ void __launch_bounds__(BGRAD_COLS * BGRAD_GROUPS)
linear_mask_bgrad_kernel(float *db, float *dout, __nv_bfloat16 *d16, const Tm *out, int B, int O, int relu) {
    __shared__ double part[BGRAD_GROUPS][BGRAD_COLS];
    const int x = threadIdx.x, y = threadIdx.y, o = blockIdx.x * BGRAD_COLS + x;
    double acc = 0.0;
    if (o < O)
        for (int b = y; b < B; b += BGRAD_GROUPS) {
            const size_t j = (size_t)b * O + o;
            float v = dout[j];
            if (relu && !(lin_f(out[j]) > 0.0f)) {
                v = 0.0f;
                if (!d16) dout[j] = 0.0f;
            }
            if (d16) d16[j] = __float2bfloat16(v);
            acc += v;
        }
    part[y][x] = acc;
    __syncthreads();
    if (y == 0 && o < O) {
        double s = part[0][x];
        for (int g = 1; g < BGRAD_GROUPS; g++) s += part[g][x];
        db[o] = (float)s;
    }
}

/* ---- launchers ---------------------------------------------------------------- */

extern "C" void linear_forward_cuda(void *out_, const void *in_, const float *w, const float *b,
                                    int B, int I, int O, int relu, const linear_store *st, dath_ctx *ctx) {
    if (B <= 0 || O <= 0) return;
    const size_t n = (size_t)B * O;
    const dim3 grid = grid_1d(n);
    cudaStream_t cs = DATH_STREAM(ctx);
    if (!st) {
        float *out = (float *)out_;
        const float *in = (const float *)in_;
        /* out [B, O] = (relu) in [B, I] · w [O, I]ᵀ + b, the bias along out's rows */
        if (gemm_rm_bias(ctx, false, true, B, O, I, in, I, w, I, out, O, b, relu) == 0) return;
        gemm_rm(ctx, false, true, B, O, I, 1.0f, in, I, w, I, 0.0f, out, O);
        linear_bias_relu_kernel<float, float><<<grid, BLOCK_1D, 0, cs>>>(out, out, b, B, O, relu);
        CUDA_LAUNCH_CHECK();
        return;
    }
    const int o16 = st->out_store == DATH_STORE_BF16;
    if (gemm_rm_bias_typed(ctx, false, true, B, O, I, in_, I, st->w16, I, out_, O, o16 ? (const void *)st->b16 : b,
                           relu, 1, o16) == 0)
        return;
    float *acc = o16 ? ctx->work : (float *)out_;   /* linear_work_bytes: B·O floats */
    gemm_rm_bf16(ctx, false, true, B, O, I, in_, I, st->w16, I, acc, O);
    if (o16)
        linear_bias_relu_kernel<__nv_bfloat16, __nv_bfloat16><<<grid, BLOCK_1D, 0, cs>>>(
            (__nv_bfloat16 *)out_, acc, (const __nv_bfloat16 *)st->b16, B, O, relu);
    else
        linear_bias_relu_kernel<float, float><<<grid, BLOCK_1D, 0, cs>>>(acc, acc, b, B, O, relu);
    CUDA_LAUNCH_CHECK();
}

extern "C" void linear_backward_cuda(float *din, float *dw, float *db, float *dout,
                                     const void *in, const float *w, const void *out,
                                     int B, int I, int O, int relu, const linear_store *st, dath_ctx *ctx) {
    cudaStream_t cs = DATH_STREAM(ctx);
    if (O <= 0) {   /* no output: no gradient reaches the input */
        if (din && B > 0 && I > 0) CUDA_CHECK(cudaMemsetAsync(din, 0, (size_t)B * I * sizeof(float), cs));
        return;
    }
    if (B <= 0) {   /* an empty batch's gradient is zero */
        CUDA_CHECK(cudaMemsetAsync(db, 0, (size_t)O * sizeof(float), cs));
        if (I > 0) CUDA_CHECK(cudaMemsetAsync(dw, 0, (size_t)O * I * sizeof(float), cs));
        return;
    }
    const dim3 block(BGRAD_COLS, BGRAD_GROUPS), grid((unsigned)ceil_div((size_t)O, BGRAD_COLS));
    if (!st) {
        linear_mask_bgrad_kernel<float><<<grid, block, 0, cs>>>(db, dout, NULL, (const float *)out, B, O, relu);
        CUDA_LAUNCH_CHECK();
        /* dw [O, I] = dout [B, O]ᵀ · in [B, I] */
        gemm_rm(ctx, true, false, O, I, B, 1.0f, dout, O, (const float *)in, I, 0.0f, dw, I);
        /* din [B, I] = dout [B, O] · w [O, I] */
        if (din) gemm_rm(ctx, false, false, B, I, O, 1.0f, dout, O, w, I, 0.0f, din, I);
        return;
    }
    __nv_bfloat16 *d16 = (__nv_bfloat16 *)ctx->work;   /* [B, O], linear_work_bytes */
    if (st->out_store == DATH_STORE_BF16)
        linear_mask_bgrad_kernel<__nv_bfloat16><<<grid, block, 0, cs>>>(db, dout, d16, (const __nv_bfloat16 *)out, B,
                                                                        O, relu);
    else
        linear_mask_bgrad_kernel<float><<<grid, block, 0, cs>>>(db, dout, d16, (const float *)out, B, O, relu);
    CUDA_LAUNCH_CHECK();
    gemm_rm_bf16(ctx, true, false, O, I, B, d16, O, in, I, dw, I);
    if (din) gemm_rm_bf16(ctx, false, false, B, I, O, d16, O, st->w16, I, din, I);
}
