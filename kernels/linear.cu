/* kernels/linear.cu — CUDA fully connected layer (contract in linear.h).
 *
 *   forward   out [B,O] = in [B,I] · w [O,I]ᵀ            (cuBLAS)
 *             out = (relu) out + b                        (epilogue kernel)
 *   backward  dout masked by out > 0 when relu            (dout is clobbered)
 *             db [O] += Σ_b dout                          (one thread per column)
 *             dw [O,I] += dout [B,O]ᵀ · in [B,I]          (cuBLAS, beta = 1)
 *             din [B,I] += dout [B,O] · w [O,I]           (cuBLAS, beta = 1) */
#include "cuda_common.cuh"
#include "gemm.cuh"

extern "C" {
#include "linear.h"
}

/* ---- kernels ------------------------------------------------------------------ */

/* out [B, O] = (relu) out + b[o], in place after the GEMM. */
__global__ void linear_bias_relu_kernel(float *out, const float *b, int B, int O, int relu) {
    const size_t total = (size_t)B * O;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        float v = out[e] + b[e % O];
        out[e] = (relu && v < 0.0f) ? 0.0f : v;
    }
}

/* dout[j] = 0 where out[j] <= 0 (or NaN). */
__global__ void linear_relu_mask_kernel(float *dout, const float *out, size_t n) {
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n;
         j += (size_t)gridDim.x * blockDim.x)
        if (!(out[j] > 0.0f)) dout[j] = 0.0f;
}

/* db[o] += Σ_b dout[b, o]: one thread per column, rows in order, in double
 * (coalesced across o; deterministic). */
__global__ void linear_bias_grad_kernel(float *db, const float *dout, int B, int O) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= O) return;
    double acc = 0.0;
    for (int b = 0; b < B; b++) acc += dout[(size_t)b * O + o];
    db[o] += (float)acc;
}

/* ---- launchers ---------------------------------------------------------------- */

extern "C" void linear_forward_cuda(float *out, const float *in, const float *w, const float *b,
                                    int B, int I, int O, int relu, dath_ctx *ctx) {
    if (B <= 0 || O <= 0) return;
    /* out [B, O] = in [B, I] · w [O, I]ᵀ */
    gemm_rm(ctx, false, true, B, O, I, 1.0f, in, I, w, I, 0.0f, out, O);
    const size_t n = (size_t)B * O;
    linear_bias_relu_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(out, b, B, O, relu);
    CUDA_LAUNCH_CHECK();
}

extern "C" void linear_backward_cuda(float *din, float *dw, float *db, float *dout,
                                     const float *in, const float *w, const float *out,
                                     int B, int I, int O, int relu, dath_ctx *ctx) {
    if (B <= 0 || O <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);
    const size_t n = (size_t)B * O;
    if (relu) {
        linear_relu_mask_kernel<<<grid_1d(n), BLOCK_1D, 0, st>>>(dout, out, n);
        CUDA_LAUNCH_CHECK();
    }
    linear_bias_grad_kernel<<<ceil_div((size_t)O, BLOCK_1D), BLOCK_1D, 0, st>>>(db, dout, B, O);
    CUDA_LAUNCH_CHECK();
    /* dw [O, I] += dout [B, O]ᵀ · in [B, I] */
    gemm_rm(ctx, true, false, O, I, B, 1.0f, dout, O, in, I, 1.0f, dw, I);
    /* din [B, I] += dout [B, O] · w [O, I] */
    if (din) gemm_rm(ctx, false, false, B, I, O, 1.0f, dout, O, w, I, 1.0f, din, I);
}
