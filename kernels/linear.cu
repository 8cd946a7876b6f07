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
 *             din [B,I] = dout [B,O] · w [O,I]            (cuBLAS, beta = 0) */
#include "cuda_common.cuh"
#include "gemm.cuh"

extern "C" {
#include "linear.h"
}

/* ---- kernels ------------------------------------------------------------------ */

/* out [B, O] = (relu) out + b[o], in place after the GEMM (where cuBLASLt declined). */
__global__ void linear_bias_relu_kernel(float *out, const float *b, int B, int O, int relu) {
    const size_t total = (size_t)B * O;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        float v = out[e] + b[e % O];
        out[e] = (relu && v < 0.0f) ? 0.0f : v;
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
 * a GTX 1080 Ti) where 32 columns a block gave 128. */
__global__ void __launch_bounds__(BGRAD_COLS * BGRAD_GROUPS)
linear_mask_bgrad_kernel(float *db, float *dout, const float *out, int B, int O, int relu) {
    __shared__ double part[BGRAD_GROUPS][BGRAD_COLS];
    const int x = threadIdx.x, y = threadIdx.y, o = blockIdx.x * BGRAD_COLS + x;
    double acc = 0.0;
    if (o < O)
        for (int b = y; b < B; b += BGRAD_GROUPS) {
            const size_t j = (size_t)b * O + o;
            float v = dout[j];
            if (relu && !(out[j] > 0.0f)) {
                v = 0.0f;
                dout[j] = 0.0f;
            }
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

extern "C" void linear_forward_cuda(float *out, const float *in, const float *w, const float *b,
                                    int B, int I, int O, int relu, dath_ctx *ctx) {
    if (B <= 0 || O <= 0) return;
    /* out [B, O] = (relu) in [B, I] · w [O, I]ᵀ + b, the bias along out's rows */
    if (gemm_rm_bias(ctx, false, true, B, O, I, in, I, w, I, out, O, b, relu) == 0) return;
    gemm_rm(ctx, false, true, B, O, I, 1.0f, in, I, w, I, 0.0f, out, O);
    const size_t n = (size_t)B * O;
    linear_bias_relu_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(out, b, B, O, relu);
    CUDA_LAUNCH_CHECK();
}

extern "C" void linear_backward_cuda(float *din, float *dw, float *db, float *dout,
                                     const float *in, const float *w, const float *out,
                                     int B, int I, int O, int relu, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    if (O <= 0) {   /* no output: no gradient reaches the input */
        if (din && B > 0 && I > 0) CUDA_CHECK(cudaMemsetAsync(din, 0, (size_t)B * I * sizeof(float), st));
        return;
    }
    if (B <= 0) {   /* an empty batch's gradient is zero */
        CUDA_CHECK(cudaMemsetAsync(db, 0, (size_t)O * sizeof(float), st));
        if (I > 0) CUDA_CHECK(cudaMemsetAsync(dw, 0, (size_t)O * I * sizeof(float), st));
        return;
    }
    const dim3 block(BGRAD_COLS, BGRAD_GROUPS);
    linear_mask_bgrad_kernel<<<(unsigned)ceil_div((size_t)O, BGRAD_COLS), block, 0, st>>>(db, dout, out, B, O, relu);
    CUDA_LAUNCH_CHECK();
    /* dw [O, I] = dout [B, O]ᵀ · in [B, I] */
    gemm_rm(ctx, true, false, O, I, B, 1.0f, dout, O, in, I, 0.0f, dw, I);
    /* din [B, I] = dout [B, O] · w [O, I] */
    if (din) gemm_rm(ctx, false, false, B, I, O, 1.0f, dout, O, w, I, 0.0f, din, I);
}
