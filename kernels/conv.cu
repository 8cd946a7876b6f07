/* kernels/conv.cu — CUDA convolution (contract in conv.h; the same algorithm as
 * the reference in conv.c): im2col + one cuBLAS GEMM per chunk of images.
 *
 * For a chunk of nb images (P = Ho*Wo, R = Ci*k*k, N = nb*P), in ctx->work:
 *   col   [R, N]    patches, row (ci*k + ky)*k + kx, column i*P + oy*Wo + ox
 *   stage [Co, N]   the chunk's output (or output gradient), channel-major
 *   forward   stage = w·col, then out = (relu) stage + b     (epilogue kernel)
 *   backward  dout masked by out > 0 (relu), db += Σ dout   (reduction kernel)
 *             stage ← dout,  dw += stage·colᵀ  (K = all pixels of the chunk)
 *             col = wᵀ·stage, din += col2im(col)  (one thread per input element,
 *             gathering its contributions in a fixed order: no atomics)
 * conv2d_work_bytes(s) is col + stage for the whole batch, so a ctx->work of that
 * size does the batch in one chunk; a smaller one is used in chunks of as many
 * images as fit (the chunk size depends only on the shape and work_bytes, so a call
 * is deterministic). A work buffer too small for one image aborts with a message. */
#include "cuda_common.cuh"
#include "gemm.cuh"

extern "C" {
#include "conv.h"
}

/* ---- kernels ------------------------------------------------------------------ */

/* col [R, N] ← patches of in [nb, Ci, H, W] (zero in the padding); N = nb*Ho*Wo.
 * One thread per col element, grid-stride; consecutive threads write consecutive
 * columns. */
__global__ void conv_im2col_kernel(float *col, const float *in, int nb, int Ci, int H, int W,
                                   int k, int stride, int pad, int Ho, int Wo) {
    const size_t P = (size_t)Ho * Wo, N = (size_t)nb * P;
    const size_t total = (size_t)Ci * k * k * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / N, c = e - r * N;
        const int kx = (int)(r % k), ky = (int)((r / k) % k), ci = (int)(r / ((size_t)k * k));
        const size_t i = c / P, p = c - i * P;
        const int oy = (int)(p / Wo), ox = (int)(p - (size_t)oy * Wo);
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            v = in[((i * Ci + ci) * H + iy) * W + ix];
        col[e] = v;
    }
}

/* out [nb, Co, P] = stage [Co, N] + b (then max(0, ·) when relu); N = nb*P. */
__global__ void conv_bias_relu_kernel(float *out, const float *stage, const float *b,
                                      int nb, int Co, int P, int relu) {
    const size_t N = (size_t)nb * P, total = (size_t)nb * Co * P;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t p = e % P, t = e / P;
        const size_t co = t % Co, i = t / Co;
        float v = stage[co * N + i * P + p] + b[co];
        out[e] = (relu && v < 0.0f) ? 0.0f : v;
    }
}

/* dout[j] = 0 where out[j] <= 0 (or NaN), as the reference's !(out > 0). */
__global__ void conv_relu_mask_kernel(float *dout, const float *out, size_t n) {
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n;
         j += (size_t)gridDim.x * blockDim.x)
        if (!(out[j] > 0.0f)) dout[j] = 0.0f;
}

/* db[co] += Σ_b Σ_p dout[b, co, p]. One block of BLOCK_1D threads per channel; each
 * thread sums a fixed strided subset in double, then a fixed-shape tree: the result
 * depends only on the shape. */
__global__ void conv_bias_grad_kernel(float *db, const float *dout, int B, int Co, int P) {
    __shared__ double part[BLOCK_1D];
    const int co = blockIdx.x;
    const size_t total = (size_t)B * P;
    double acc = 0.0;
    for (size_t j = threadIdx.x; j < total; j += BLOCK_1D) {
        const size_t bi = j / P, p = j - bi * P;
        acc += dout[(bi * Co + co) * P + p];
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[co] += (float)part[0];
}

/* stage [Co, N] ← dout [nb, Co, P] (the chunk's images, channel-major). */
__global__ void conv_stage_kernel(float *stage, const float *dout, int nb, int Co, int P) {
    const size_t N = (size_t)nb * P, total = (size_t)nb * Co * P;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t p = e % P, t = e / P;
        const size_t co = t % Co, i = t / Co;
        stage[co * N + i * P + p] = dout[e];
    }
}

/* din [nb, Ci, H, W] += col2im(col [R, N]), the adjoint of im2col. One thread per
 * input element gathers every (ky, kx) whose window position lands on it, in
 * increasing ky, kx, starting from din's value (the order in which conv.c adds them):
 * deterministic, no atomics. */
__global__ void conv_col2im_kernel(float *din, const float *col, int nb, int Ci, int H, int W,
                                   int k, int stride, int pad, int Ho, int Wo) {
    const size_t P = (size_t)Ho * Wo, N = (size_t)nb * P;
    const size_t total = (size_t)nb * Ci * H * W;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(e % W), y = (int)((e / W) % H);
        const size_t plane = e / ((size_t)H * W);          /* i*Ci + ci */
        const int ci = (int)(plane % Ci);
        const size_t i = plane / Ci;
        const int ty = y + pad, tx = x + pad;               /* = oy*stride + ky */
        float acc = din[e];                                 /* the reference's order */
        for (int ky = ty % stride; ky < k; ky += stride) {
            if (ty - ky < 0) break;                         /* oy only falls from here */
            const int oy = (ty - ky) / stride;              /* exact: ky ≡ ty (mod stride) */
            if (oy >= Ho) continue;
            for (int kx = tx % stride; kx < k; kx += stride) {
                if (tx - kx < 0) break;
                const int ox = (tx - kx) / stride;
                if (ox >= Wo) continue;
                const size_t r = ((size_t)ci * k + ky) * k + kx;
                acc += col[r * N + i * P + (size_t)oy * Wo + ox];
            }
        }
        din[e] = acc;
    }
}

/* ---- launchers ---------------------------------------------------------------- */

/* Images per chunk that fit in ctx->work (col + stage), at most B. Aborts when not
 * even one image fits. */
static int conv_chunk_images(const conv2d_shape *s, const dath_ctx *ctx, const char *who) {
    const size_t R = (size_t)s->Ci * s->k * s->k, P = (size_t)s->Ho * s->Wo;
    const size_t per_image = (R + (size_t)s->Co) * P * sizeof(float);
    size_t nb = ctx->work ? ctx->work_bytes / per_image : 0;
    if (nb < 1) {
        fprintf(stderr, "dath: %s: ctx->work holds %zu bytes, one image needs %zu "
                "(size it with conv2d_work_bytes)\n", who, ctx->work ? ctx->work_bytes : 0,
                per_image);
        abort();
    }
    return nb > (size_t)s->B ? s->B : (int)nb;
}

extern "C" void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b,
                                    const conv2d_shape *s, int relu, dath_ctx *ctx) {
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const int P = s->Ho * s->Wo, R = Ci * s->k * s->k;
    const size_t in_image = (size_t)Ci * s->H * s->W;
    if (B <= 0 || Co <= 0 || P <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);
    const int chunk = conv_chunk_images(s, ctx, "conv2d_forward_cuda");
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        float *col = ctx->work;                          /* [R, N] */
        float *stage = col + (size_t)R * N;              /* [Co, N] */
        const size_t ncol = (size_t)R * N, nout = (size_t)nb * Co * P;
        conv_im2col_kernel<<<grid_1d(ncol), BLOCK_1D, 0, st>>>(
            col, in + (size_t)b0 * in_image, nb, Ci, s->H, s->W, s->k, s->stride, s->pad,
            s->Ho, s->Wo);
        CUDA_LAUNCH_CHECK();
        /* stage [Co, N] = w [Co, R] · col [R, N] */
        gemm_rm(ctx, false, false, Co, N, R, 1.0f, w, R, col, N, 0.0f, stage, N);
        conv_bias_relu_kernel<<<grid_1d(nout), BLOCK_1D, 0, st>>>(
            out + (size_t)b0 * Co * P, stage, b, nb, Co, P, relu);
        CUDA_LAUNCH_CHECK();
    }
}

extern "C" void conv2d_backward_cuda(float *din, float *dw, float *db, float *dout,
                                     const float *in, const float *w, const float *out,
                                     const conv2d_shape *s, int relu, dath_ctx *ctx) {
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const int P = s->Ho * s->Wo, R = Ci * s->k * s->k;
    const size_t in_image = (size_t)Ci * s->H * s->W;
    const size_t n_out = (size_t)B * Co * P;
    if (B <= 0 || Co <= 0 || P <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);

    if (relu) {   /* dout becomes the pre-ReLU gradient */
        conv_relu_mask_kernel<<<grid_1d(n_out), BLOCK_1D, 0, st>>>(dout, out, n_out);
        CUDA_LAUNCH_CHECK();
    }
    conv_bias_grad_kernel<<<Co, BLOCK_1D, 0, st>>>(db, dout, B, Co, P);
    CUDA_LAUNCH_CHECK();

    const int chunk = conv_chunk_images(s, ctx, "conv2d_backward_cuda");
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        float *col = ctx->work;                          /* [R, N] */
        float *stage = col + (size_t)R * N;              /* [Co, N] */
        const size_t ncol = (size_t)R * N, nstage = (size_t)nb * Co * P;
        conv_stage_kernel<<<grid_1d(nstage), BLOCK_1D, 0, st>>>(
            stage, dout + (size_t)b0 * Co * P, nb, Co, P);
        CUDA_LAUNCH_CHECK();
        conv_im2col_kernel<<<grid_1d(ncol), BLOCK_1D, 0, st>>>(
            col, in + (size_t)b0 * in_image, nb, Ci, s->H, s->W, s->k, s->stride, s->pad,
            s->Ho, s->Wo);
        CUDA_LAUNCH_CHECK();
        /* dw [Co, R] += stage [Co, N] · col [R, N]ᵀ */
        gemm_rm(ctx, false, true, Co, R, N, 1.0f, stage, N, col, N, 1.0f, dw, R);
        if (!din) continue;
        /* col [R, N] = w [Co, R]ᵀ · stage [Co, N] */
        gemm_rm(ctx, true, false, R, N, Co, 1.0f, w, R, stage, N, 0.0f, col, N);
        const size_t nin = (size_t)nb * in_image;
        conv_col2im_kernel<<<grid_1d(nin), BLOCK_1D, 0, st>>>(
            din + (size_t)b0 * in_image, col, nb, Ci, s->H, s->W, s->k, s->stride, s->pad,
            s->Ho, s->Wo);
        CUDA_LAUNCH_CHECK();
    }
}
