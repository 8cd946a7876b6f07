/* kernels/attention.cu — CUDA PAM and CAM (contract in attention.h; the same
 * algebra as attention.c), all images at once with strided-batched cuBLAS GEMMs
 * plus hand-written kernels for what lies between them:
 *   - row softmax, one warp per row (PAM: softmax(e), rows of N; CAM: softmax(−e)
 *     shifted by the row minimum, rows of C), and its backward
 *     de = sign · a ⊙ (da − Σ_j a_j da_j);
 *   - out = γ·o + x, with γ read on the device (a step can be captured in a graph);
 *   - the residual backward dx += dout fused with dγ's partial sums Σ dout ⊙ o:
 *     a fixed number of blocks each write a partial, then one block adds the partials
 *     in order — no float atomics, so dγ is the same on every run.
 *
 * γ lives on the device, so it cannot be a cuBLAS alpha: the backwards first form
 * gd = γ·dout (the gradient reaching o) and run the GEMMs on it.
 *
 * PAM's 1×1-convolution gradients sum over images. dq, dk, dv are written straight
 * into a channel-major layout [Co, nb·N] (the batched GEMM's output leading dimension
 * is nb·N, image stride N) and x is transposed to xT [C, nb·N], so dw += dyT·xTᵀ is
 * one GEMM over all pixels of all images and db is a plain row sum.
 *
 * Scratch (backwards only) comes from ctx->work: ATTN_PARTIALS doubles for dγ (PAM's
 * bias-gradient row sums reuse them once dγ is summed: attention.h), then
 * per image (floats) PAM 3·C·N + 2·Cq·N + N², CAM C·N + C². Images go in chunks of as
 * many as fit (at 224 input the whole batch fits in what conv2d_work_bytes asks for);
 * a work buffer too small for one image is kernels/common.h's scratch policy.
 *
 * bf16 storage (attention.h's st): the same algebra with the saved tensors and the
 * backward's GEMM operands in bf16 (the *16 kernels below and the *_bf16 launchers). A
 * product that a later step rounds or reshapes first lands in fp32 scratch (the
 * projections before their bias, e before the softmax, da before the softmax backward),
 * so the forwards use the scratch too (attention.h's ATTN_BF16_* floats an image, in
 * chunks as the backwards). Every GEMM of this path reads bf16 operands that dath rounded
 * to nearest: PAM's projections are the implicit convolution kernel's (below, both paths:
 * the bias in its epilogue), whose bf16 tiles round x and w on the load and which stores
 * q, k, v in bf16; the backward's GEMMs read the weights' bf16 copies (st); CAM, whose GEMMs
 * read x three times, rounds x into x16 once and saves it. */
#include "cuda_common.cuh"
#include "gemm.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "attention.h"
#include "conv.h"
}

/* ATTN_PARTIALS (attention.h): blocks of the dγ partial reduction (at most; fewer when
 * there is less work); scratch buffers start on ATTN_ALIGN-float boundaries. */
static_assert(ATTN_ROWSUM_PARTIALS <= ATTN_PARTIALS, "the row sums' partials reuse the dγ partials' room");

static size_t attn_align(size_t n) { return (n + ATTN_ALIGN - 1) / ATTN_ALIGN * ATTN_ALIGN; }

__device__ __forceinline__ float attn_warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float attn_warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- kernels ------------------------------------------------------------------ */

/* y [B, Co, N] += b [Co]: the 1×1 convolutions' bias after their cuBLAS GEMM (--conv im2col). */
__global__ void attn_bias_kernel(float *y, const float *b, int B, int Co, int N) {
    const size_t total = (size_t)B * Co * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x)
        y[e] += b[(e / N) % Co];
}

/* Rows of a [R, L] become softmax(sign · row), stably: exp(sign·v − max(sign·v)) / Σ.
 * One warp per row, BLOCK_ROWS / WARP rows a block; each lane strides the row. */
__global__ void attn_softmax_kernel(float *a, int R, int L, float sign) {
    const int row = blockIdx.x * (BLOCK_ROWS / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= R) return;                        /* the whole warp leaves together */
    float *r = a + (size_t)row * L;              /* [L] */
    float m = -INFINITY;
    for (int j = lane; j < L; j += WARP) m = fmaxf(m, sign * r[j]);
    m = attn_warp_max(m);
    float s = 0.0f;
    for (int j = lane; j < L; j += WARP) {
        const float ev = expf(sign * r[j] - m);
        r[j] = ev;
        s += ev;
    }
    const float inv = 1.0f / attn_warp_sum(s);
    for (int j = lane; j < L; j += WARP) r[j] *= inv;
}

/* Softmax backward in place, rows of g [R, L] with a [R, L]:
 * g ← sign · a ⊙ (g − Σ_j a_j g_j). One warp per row. */
__global__ void attn_softmax_backward_kernel(float *g, const float *a, int R, int L,
                                             float sign) {
    const int row = blockIdx.x * (BLOCK_ROWS / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= R) return;
    float *gr = g + (size_t)row * L;             /* [L] */
    const float *ar = a + (size_t)row * L;       /* [L] */
    float dot = 0.0f;
    for (int j = lane; j < L; j += WARP) dot += ar[j] * gr[j];
    dot = attn_warp_sum(dot);
    for (int j = lane; j < L; j += WARP) gr[j] = sign * ar[j] * (gr[j] - dot);
}

/* out [n] = gamma[0] · o + x. */
__global__ void attn_residual_kernel(float *out, const float *o, const float *x,
                                     const float *gamma, size_t n) {
    const float g = gamma[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = g * o[i] + x[i];
}

/* dx [n] = dout (add: +=); partial[blockIdx.x] = this block's share of Σ dout ⊙ o (double;
 * fixed grid-stride subsets and a fixed tree, so the partials depend only on n). */
__global__ void attn_residual_backward_kernel(float *dx, double *partial, const float *dout,
                                              const float *o, size_t n, int add) {
    __shared__ double part[BLOCK_1D];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float d = dout[i];
        acc += (double)d * o[i];
        dx[i] = (add ? dx[i] : 0.0f) + d;
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = part[0];
}

/* dgamma[0] = Σ partial[0..G), one block of BLOCK_1D threads, fixed order. */
__global__ void attn_sum_partials_kernel(float *dgamma, const double *partial, int G) {
    __shared__ double part[BLOCK_1D];
    double acc = 0.0;
    for (int i = threadIdx.x; i < G; i += BLOCK_1D) acc += partial[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) dgamma[0] = (float)part[0];
}

/* gd [n] = gamma[0] · dout: the gradient reaching o. */
__global__ void attn_scale_kernel(float *gd, const float *dout, const float *gamma, size_t n) {
    const float g = gamma[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        gd[i] = g * dout[i];
}

/* xT [C, nb·N] ← x [nb, C, N]: column b·N + n of row c is x[b, c, n]. */
__global__ void attn_transpose_kernel(float *xT, const float *x, int nb, int C, int N) {
    const size_t total = (size_t)nb * C * N, ld = (size_t)nb * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t n = e % N, t = e / N;
        const size_t c = t % C, b = t / C;
        xT[c * ld + b * N + n] = x[e];
    }
}

/* The rows whose sums the PAM backward needs: y[m] [Co[m], L] (fp32, or bf16 with bf16
 * storage), its sums into db[m]. */
template <typename T>
struct attn_rows3 {
    const T *y[3];
    float *db[3];
    int Co[3];
};

__device__ __forceinline__ float attn_f(float v) { return v; }
__device__ __forceinline__ float attn_f(__nv_bfloat16 v) { return __bfloat162float(v); }

/* Row g of the three sets: its row in its set (the return), that row's start in y (y + r·L)
 * and its set's sums. The set's pointers are picked by selects: an index computed at run
 * time into the by-value parameter would copy it to a stack frame (ptxas: 64 bytes). */
template <typename T>
__device__ __forceinline__ int attn_rows_locate(const attn_rows3<T> &t, int g, size_t L,
                                                const T **row, float **db) {
    int r = g;
    const int m = r < t.Co[0] ? 0 : (r -= t.Co[0]) < t.Co[1] ? 1 : (r -= t.Co[1], 2);
    *row = (m == 0 ? t.y[0] : m == 1 ? t.y[1] : t.y[2]) + (size_t)r * L;
    *db = m == 0 ? t.db[0] : m == 1 ? t.db[1] : t.db[2];
    return r;
}

/* Block (s, g): slice s of S of row g of the three sets (attn_row_sum_slices), summed
 * in double by a fixed tree; into partial[g·S + s], or, with S = 1 (partial NULL),
 * onto db (add: +=, else =). */
template <typename T>
__global__ void attn_row_sum_kernel(attn_rows3<T> t, double *partial, size_t L, int S, int add) {
    __shared__ double part[BLOCK_1D];
    const T *row;                                /* [L] */
    float *db;
    const int g = blockIdx.y, s = blockIdx.x, r = attn_rows_locate(t, g, L, &row, &db);
    const size_t lo = L * s / S, hi = L * (s + 1) / S;
    double acc = 0.0;
    for (size_t j = lo + threadIdx.x; j < hi; j += BLOCK_1D) acc += attn_f(row[j]);
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int h = BLOCK_1D / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    if (partial) partial[(size_t)g * S + s] = part[0];
    else db[r] = (add ? db[r] : 0.0f) + (float)part[0];
}

/* db (+)= the S partials of each of the R rows, in slice order. */
template <typename T>
__global__ void attn_row_sum_finish_kernel(attn_rows3<T> t, const double *partial, int R, int S, int add) {
    const int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= R) return;
    const T *row;
    float *db;
    const int r = attn_rows_locate(t, g, 0, &row, &db);
    double v = partial[(size_t)g * S];
    for (int i = 1; i < S; i++) v += partial[(size_t)g * S + i];
    db[r] = (add ? db[r] : 0.0f) + (float)v;
}

/* ---- bf16 storage's kernels (attention.h) ------------------------------------------ */

typedef __nv_bfloat16 bf16;

/* a [R, L] = bf16(softmax(sign · e)) row by row, e fp32 (the scratch's): attn_softmax_kernel's
 * arithmetic, each exp taken again in the last pass instead of stored. One warp a row. */
__global__ void attn_softmax16_kernel(bf16 *a, const float *e, int R, int L, float sign) {
    const int row = blockIdx.x * (BLOCK_ROWS / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= R) return;
    const float *r = e + (size_t)row * L;        /* [L] */
    bf16 *ar = a + (size_t)row * L;
    float m = -INFINITY;
    for (int j = lane; j < L; j += WARP) m = fmaxf(m, sign * r[j]);
    m = attn_warp_max(m);
    float s = 0.0f;
    for (int j = lane; j < L; j += WARP) s += expf(sign * r[j] - m);
    const float inv = 1.0f / attn_warp_sum(s);
    for (int j = lane; j < L; j += WARP) ar[j] = __float2bfloat16(expf(sign * r[j] - m) * inv);
}

/* de [R, L] = bf16(sign · a ⊙ (da − Σ_j a_j da_j)), da fp32, a bf16. One warp a row. */
__global__ void attn_softmax_backward16_kernel(bf16 *de, const float *da, const bf16 *a, int R, int L,
                                               float sign) {
    const int row = blockIdx.x * (BLOCK_ROWS / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= R) return;
    const float *gr = da + (size_t)row * L;      /* [L] */
    const bf16 *ar = a + (size_t)row * L;
    bf16 *dr = de + (size_t)row * L;
    float dot = 0.0f;
    for (int j = lane; j < L; j += WARP) dot += __bfloat162float(ar[j]) * gr[j];
    dot = attn_warp_sum(dot);
    for (int j = lane; j < L; j += WARP) dr[j] = __float2bfloat16(sign * __bfloat162float(ar[j]) * (gr[j] - dot));
}

/* out [n] = gamma[0] · o + x, o bf16. */
__global__ void attn_residual16_kernel(float *out, const bf16 *o, const float *x, const float *gamma, size_t n) {
    const float g = gamma[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = g * __bfloat162float(o[i]) + x[i];
}

/* attn_residual_backward_kernel with o bf16. */
__global__ void attn_residual_backward16_kernel(float *dx, double *partial, const float *dout, const bf16 *o,
                                                size_t n, int add) {
    __shared__ double part[BLOCK_1D];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float d = dout[i];
        acc += (double)d * __bfloat162float(o[i]);
        dx[i] = (add ? dx[i] : 0.0f) + d;
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = part[0];
}

/* gd [n] = bf16(gamma[0] · dout). */
__global__ void attn_scale16_kernel(bf16 *gd, const float *dout, const float *gamma, size_t n) {
    const float g = gamma[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        gd[i] = __float2bfloat16(g * dout[i]);
}

/* xT [C, nb·N] = bf16(x [nb, C, N]) transposed as attn_transpose_kernel's. */
__global__ void attn_transpose16_kernel(bf16 *xT, const float *x, int nb, int C, int N) {
    const size_t total = (size_t)nb * C * N, ld = (size_t)nb * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t n = e % N, t = e / N;
        const size_t c = t % C, b = t / C;
        xT[c * ld + b * N + n] = __float2bfloat16(x[e]);
    }
}

/* y [n] = bf16(x): CAM's x16. */
__global__ void attn_narrow16_kernel(bf16 *y, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[i]);
}

/* ---- launchers ---------------------------------------------------------------- */

static void attn_softmax(float *a, int R, int L, float sign, cudaStream_t st) {
    const int rows_per_block = BLOCK_ROWS / WARP;
    attn_softmax_kernel<<<ceil_div((size_t)R, rows_per_block), BLOCK_ROWS, 0, st>>>(a, R, L, sign);
    CUDA_LAUNCH_CHECK();
}

static void attn_softmax_backward(float *g, const float *a, int R, int L, float sign,
                                  cudaStream_t st) {
    const int rows_per_block = BLOCK_ROWS / WARP;
    attn_softmax_backward_kernel<<<ceil_div((size_t)R, rows_per_block), BLOCK_ROWS, 0, st>>>(
        g, a, R, L, sign);
    CUDA_LAUNCH_CHECK();
}

static void attn_residual(float *out, const float *o, const float *x, const float *gamma,
                          size_t n, cudaStream_t st) {
    attn_residual_kernel<<<grid_1d(n), BLOCK_1D, 0, st>>>(out, o, x, gamma, n);
    CUDA_LAUNCH_CHECK();
}

/* dx = dout (add: dx += dout) and dgamma[0] = Σ dout ⊙ o over n elements; uses the head
 * of ctx->work. */
static void attn_residual_backward(float *dx, float *dgamma, const float *dout, const float *o,
                                   size_t n, int add, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    if (n == 0) {
        CUDA_CHECK(cudaMemsetAsync(dgamma, 0, sizeof(float), st));
        return;
    }
    double *partial = (double *)ctx->work;       /* [ATTN_PARTIALS] */
    unsigned int G = grid_1d(n);
    if (G > ATTN_PARTIALS) G = ATTN_PARTIALS;
    attn_residual_backward_kernel<<<G, BLOCK_1D, 0, st>>>(dx, partial, dout, o, n, add);
    CUDA_LAUNCH_CHECK();
    attn_sum_partials_kernel<<<1, BLOCK_1D, 0, st>>>(dgamma, partial, (int)G);
    CUDA_LAUNCH_CHECK();
}

/* Images per backward chunk: per_image floats each, nbuf buffers (each rounded up
 * to ATTN_ALIGN), after the dγ partials; the scratch policy when not even one fits. */
static int attn_chunk_images(size_t per_image, int nbuf, int B, const dath_ctx *ctx,
                             const char *who) {
    const size_t reserve = attn_align(ATTN_PARTIALS * 2) + (size_t)nbuf * ATTN_ALIGN;
    const size_t have = ctx->work ? ctx->work_bytes / sizeof(float) : 0;
    const size_t nb = have > reserve ? (have - reserve) / per_image : 0;
    if (nb < 1)
        dath_scratch_fail(who, (reserve + per_image) * sizeof(float), ctx->work ? ctx->work_bytes : 0, "ctx->work");
    return nb > (size_t)B ? B : (int)nb;
}

/* y [B, Co, N] = w [Co, C] · x [B, C, N] + b: the 1×1 convolution as the implicit
 * convolution kernel runs it (kernels/conv.h: k = 1 on a 1 × N image), the bias in its
 * epilogue and y stored as out_store. --conv im2col (the cuBLAS path) with an fp32 y: a
 * cuBLAS GEMM and attn_bias_kernel, as the convolutions there; a bf16 y always takes the
 * implicit kernel (the im2col path stores fp32 only). */
static void attn_project(void *y, const float *x, const float *w, const float *b, int B, int C, int Co, int N,
                         int out_store, dath_ctx *ctx) {
    if (Co <= 0) return;
    if (ctx->conv_algo == DATH_CONV_IM2COL && out_store == DATH_STORE_F32) {
        const long long cn = (long long)C * N, yn = (long long)Co * N;
        gemm_rm_batched(ctx, false, false, Co, N, C, 1.0f, w, C, 0, x, N, cn, 0.0f, (float *)y, N, yn, B);
        attn_bias_kernel<<<grid_1d((size_t)B * yn), BLOCK_1D, 0, DATH_STREAM(ctx)>>>((float *)y, b, B, Co, N);
        CUDA_LAUNCH_CHECK();
        return;
    }
    conv2d_shape s = conv2d_make_shape(B, C, 1, N, Co, 1, 1, 0);
    s.out_store = out_store;
    dath_ctx c = *ctx;
    c.conv_algo = DATH_CONV_IMPLICIT;
    conv2d_forward_cuda((float *)y, x, w, b, &s, 0, &c);
}

/* ---- bf16 storage's launchers -------------------------------------------------------- */

/* The next `bytes` of a scratch carve, on an ATTN_ALIGN-float boundary. */
static void *attn_take(char **p, size_t bytes) {
    void *r = *p;
    *p += attn_align((bytes + sizeof(float) - 1) / sizeof(float)) * sizeof(float);
    return r;
}

/* The start of the images' scratch: after the dγ partials. */
static char *attn_scratch_base(const dath_ctx *ctx) { return (char *)(ctx->work + attn_align(ATTN_PARTIALS * 2)); }

static void attn_residual_backward16(float *dx, float *dgamma, const float *dout, const bf16 *o, size_t n, int add,
                                     dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    if (n == 0) {
        CUDA_CHECK(cudaMemsetAsync(dgamma, 0, sizeof(float), st));
        return;
    }
    double *partial = (double *)ctx->work;       /* [ATTN_PARTIALS] */
    unsigned int G = grid_1d(n);
    if (G > ATTN_PARTIALS) G = ATTN_PARTIALS;
    attn_residual_backward16_kernel<<<G, BLOCK_1D, 0, st>>>(dx, partial, dout, o, n, add);
    CUDA_LAUNCH_CHECK();
    attn_sum_partials_kernel<<<1, BLOCK_1D, 0, st>>>(dgamma, partial, (int)G);
    CUDA_LAUNCH_CHECK();
}

static void attn_softmax16(bf16 *a, const float *e, int R, int L, float sign, cudaStream_t st) {
    attn_softmax16_kernel<<<ceil_div((size_t)R, BLOCK_ROWS / WARP), BLOCK_ROWS, 0, st>>>(a, e, R, L, sign);
    CUDA_LAUNCH_CHECK();
}

static void attn_softmax_backward16(bf16 *de, const float *da, const bf16 *a, int R, int L, float sign,
                                    cudaStream_t st) {
    attn_softmax_backward16_kernel<<<ceil_div((size_t)R, BLOCK_ROWS / WARP), BLOCK_ROWS, 0, st>>>(de, da, a, R, L,
                                                                                                 sign);
    CUDA_LAUNCH_CHECK();
}

static void attn_residual16(float *out, const bf16 *o, const float *x, const float *gamma, size_t n, cudaStream_t st) {
    attn_residual16_kernel<<<grid_1d(n), BLOCK_1D, 0, st>>>(out, o, x, gamma, n);
    CUDA_LAUNCH_CHECK();
}

static void pam_forward_bf16(float *out, bf16 *q, bf16 *k, bf16 *v, bf16 *a, bf16 *o, const float *x,
                             const float *wq, const float *bq, const float *wk, const float *bk, const float *wv,
                             const float *bv, const float *gamma, int B, int C, int Cq, int N, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    const size_t cn = (size_t)C * N, qn = (size_t)Cq * N, nn = (size_t)N * N;
    /* q, k, v = bf16(w·x + b): the implicit kernel's bf16 tiles round x and w to nearest on
     * the load, the bias is added in fp32 and the sum rounded once when stored */
    attn_project(q, x, wq, bq, B, C, Cq, N, DATH_STORE_BF16, ctx);
    attn_project(k, x, wk, bk, B, C, Cq, N, DATH_STORE_BF16, ctx);
    attn_project(v, x, wv, bv, B, C, C, N, DATH_STORE_BF16, ctx);
    const int chunk = attn_chunk_images(ATTN_BF16_PAM_FWD(C, Cq, N), 1, B, ctx, "pam_forward_cuda");
    float *e = (float *)attn_scratch_base(ctx);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const bf16 *qc = q + (size_t)b0 * qn, *kc = k + (size_t)b0 * qn, *vc = v + (size_t)b0 * cn;
        bf16 *ac = a + (size_t)b0 * nn, *oc = o + (size_t)b0 * cn;
        /* e [nb,N,N] = qᵀ·k in fp32, a = bf16(softmax(e)), o = bf16(v·aᵀ) */
        gemm_rm_batched_bf16(ctx, true, false, N, N, Cq, 1.0f, qc, N, (long long)qn, kc, N, (long long)qn, 0.0f, e, N,
                             (long long)nn, nb, 0);
        attn_softmax16(ac, e, nb * N, N, 1.0f, st);
        gemm_rm_batched_bf16(ctx, false, true, C, N, N, 1.0f, vc, N, (long long)cn, ac, N, (long long)nn, 0.0f, oc,
                             N, (long long)cn, nb, 1);
        attn_residual16(out + (size_t)b0 * cn, oc, x + (size_t)b0 * cn, gamma, nb * cn, st);
    }
}

static void pam_backward_bf16(float *dx, float *dwq, float *dbq, float *dwk, float *dbk, float *dwv, float *dbv,
                              float *dgamma, const float *dout, const float *x, const bf16 *q, const bf16 *k,
                              const bf16 *v, const bf16 *a, const bf16 *o, const attn_store *w16,
                              const float *gamma, int B, int C, int Cq, int N, int add, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    const size_t cn = (size_t)C * N, qn = (size_t)Cq * N, nn = (size_t)N * N;
    const int chunk = attn_chunk_images(ATTN_BF16_PAM_BWD(C, Cq, N), 7, B, ctx, "pam_backward_cuda");

    attn_residual_backward16(dx, dgamma, dout, o, (size_t)B * cn, add, ctx);

    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int ld = nb * N;                                  /* channel-major row length */
        const float *doutc = dout + (size_t)b0 * cn, *xc = x + (size_t)b0 * cn;
        const bf16 *qc = q + (size_t)b0 * qn, *kc = k + (size_t)b0 * qn, *vc = v + (size_t)b0 * cn;
        const bf16 *ac = a + (size_t)b0 * nn;
        float *dxc = dx + (size_t)b0 * cn;
        char *p = attn_scratch_base(ctx);
        bf16 *gd = (bf16 *)attn_take(&p, nb * cn * 2);          /* [nb,C,N] bf16(γ·dout) */
        bf16 *xT = (bf16 *)attn_take(&p, nb * cn * 2);          /* [C, nb·N] */
        bf16 *dvT = (bf16 *)attn_take(&p, nb * cn * 2);         /* [C, nb·N] */
        bf16 *dqT = (bf16 *)attn_take(&p, nb * qn * 2);         /* [Cq, nb·N] */
        bf16 *dkT = (bf16 *)attn_take(&p, nb * qn * 2);         /* [Cq, nb·N] */
        float *da = (float *)attn_take(&p, nb * nn * 4);        /* [nb,N,N] */
        bf16 *de = (bf16 *)attn_take(&p, nb * nn * 2);          /* [nb,N,N] */

        attn_scale16_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(gd, doutc, gamma, nb * cn);
        CUDA_LAUNCH_CHECK();
        attn_transpose16_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(xT, xc, nb, C, N);
        CUDA_LAUNCH_CHECK();
        /* o = v·aᵀ: dv_b = bf16(gd_b·a_b) (into dvT), da_b = gd_bᵀ·v_b in fp32 */
        gemm_rm_batched_bf16(ctx, false, false, C, N, N, 1.0f, gd, N, (long long)cn, ac, N, (long long)nn, 0.0f, dvT,
                             ld, N, nb, 1);
        gemm_rm_batched_bf16(ctx, true, false, N, N, C, 1.0f, gd, N, (long long)cn, vc, N, (long long)cn, 0.0f, da, N,
                             (long long)nn, nb, 0);
        attn_softmax_backward16(de, da, ac, nb * N, N, 1.0f, st);
        /* e = qᵀk: dq_b = bf16(k_b·de_bᵀ), dk_b = bf16(q_b·de_b) (into dqT, dkT) */
        gemm_rm_batched_bf16(ctx, false, true, Cq, N, N, 1.0f, kc, N, (long long)qn, de, N, (long long)nn, 0.0f, dqT,
                             ld, N, nb, 1);
        gemm_rm_batched_bf16(ctx, false, false, Cq, N, N, 1.0f, qc, N, (long long)qn, de, N, (long long)nn, 0.0f,
                             dkT, ld, N, nb, 1);
        /* the three 1×1 convolutions, as pam_backward_cuda's: dw (+)= dyT·xTᵀ, db (+)= row
         * sums, dx_b += w16ᵀ·dy_b */
        const struct { const bf16 *dyT; const dath_bf16 *w; float *dw, *db; int Co; } conv[3] = {
            { dqT, w16->wq, dwq, dbq, Cq }, { dkT, w16->wk, dwk, dbk, Cq }, { dvT, w16->wv, dwv, dbv, C } };
        attn_rows3<bf16> rows;
        int R = 0;
        for (int c = 0; c < 3; c++) {
            rows.y[c] = conv[c].dyT;
            rows.db[c] = conv[c].db;
            rows.Co[c] = conv[c].Co > 0 ? conv[c].Co : 0;
            R += rows.Co[c];
            if (conv[c].Co <= 0) continue;
            gemm_rm_batched_bf16(ctx, false, true, conv[c].Co, C, ld, 1.0f, conv[c].dyT, ld, 0, xT, ld, 0,
                                 b0 ? 1.0f : 0.0f, conv[c].dw, C, 0, 1, 0);
        }
        if (R > 0) {
            const int S = attn_row_sum_slices(R, ld);
            double *partial = S > 1 ? (double *)ctx->work : NULL;
            attn_row_sum_kernel<bf16><<<dim3((unsigned)S, (unsigned)R), BLOCK_1D, 0, st>>>(rows, partial, (size_t)ld,
                                                                                          S, b0 > 0);
            CUDA_LAUNCH_CHECK();
            if (S > 1) {
                attn_row_sum_finish_kernel<bf16><<<ceil_div((size_t)R, BLOCK_1D), BLOCK_1D, 0, st>>>(rows, partial, R,
                                                                                                    S, b0 > 0);
                CUDA_LAUNCH_CHECK();
            }
        }
        for (int c = 0; c < 3; c++) {
            if (conv[c].Co <= 0) continue;
            gemm_rm_batched_bf16(ctx, true, false, C, N, conv[c].Co, 1.0f, conv[c].w, C, 0, conv[c].dyT, ld, N, 1.0f,
                                 dxc, N, (long long)cn, nb, 0);
        }
    }
}

static void cam_forward_bf16(float *out, bf16 *a, bf16 *o, bf16 *x16, const float *x, const float *gamma, int B,
                             int C, int N, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    const size_t cn = (size_t)C * N, cc = (size_t)C * C;
    attn_narrow16_kernel<<<grid_1d((size_t)B * cn), BLOCK_1D, 0, st>>>(x16, x, (size_t)B * cn);
    CUDA_LAUNCH_CHECK();
    const int chunk = attn_chunk_images(ATTN_BF16_CAM_FWD(C, N), 1, B, ctx, "cam_forward_cuda");
    float *e = (float *)attn_scratch_base(ctx);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const bf16 *xc = x16 + (size_t)b0 * cn;
        bf16 *ac = a + (size_t)b0 * cc, *oc = o + (size_t)b0 * cn;
        /* e [nb,C,C] = x16·x16ᵀ in fp32, a = bf16(softmax(−e)), o = bf16(a·x16) */
        gemm_rm_batched_bf16(ctx, false, true, C, C, N, 1.0f, xc, N, (long long)cn, xc, N, (long long)cn, 0.0f, e, C,
                             (long long)cc, nb, 0);
        attn_softmax16(ac, e, nb * C, C, -1.0f, st);
        gemm_rm_batched_bf16(ctx, false, false, C, N, C, 1.0f, ac, C, (long long)cc, xc, N, (long long)cn, 0.0f, oc,
                             N, (long long)cn, nb, 1);
        attn_residual16(out + (size_t)b0 * cn, oc, x + (size_t)b0 * cn, gamma, nb * cn, st);
    }
}

static void cam_backward_bf16(float *dx, float *dgamma, const float *dout, const bf16 *x16, const bf16 *a,
                              const bf16 *o, const float *gamma, int B, int C, int N, int add, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    const size_t cn = (size_t)C * N, cc = (size_t)C * C;
    const int chunk = attn_chunk_images(ATTN_BF16_CAM_BWD(C, N), 3, B, ctx, "cam_backward_cuda");

    attn_residual_backward16(dx, dgamma, dout, o, (size_t)B * cn, add, ctx);

    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const float *doutc = dout + (size_t)b0 * cn;
        const bf16 *xc = x16 + (size_t)b0 * cn, *ac = a + (size_t)b0 * cc;
        float *dxc = dx + (size_t)b0 * cn;
        char *p = attn_scratch_base(ctx);
        bf16 *gd = (bf16 *)attn_take(&p, nb * cn * 2);          /* [nb,C,N] bf16(γ·dout) */
        float *da = (float *)attn_take(&p, nb * cc * 4);        /* [nb,C,C] */
        bf16 *de = (bf16 *)attn_take(&p, nb * cc * 2);          /* [nb,C,C] */

        attn_scale16_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(gd, doutc, gamma, nb * cn);
        CUDA_LAUNCH_CHECK();
        /* o = a·x: da_b = gd_b·x_bᵀ in fp32, dx_b += a_bᵀ·gd_b */
        gemm_rm_batched_bf16(ctx, false, true, C, C, N, 1.0f, gd, N, (long long)cn, xc, N, (long long)cn, 0.0f, da, C,
                             (long long)cc, nb, 0);
        gemm_rm_batched_bf16(ctx, true, false, C, N, C, 1.0f, ac, C, (long long)cc, gd, N, (long long)cn, 1.0f, dxc,
                             N, (long long)cn, nb, 0);
        attn_softmax_backward16(de, da, ac, nb * C, C, -1.0f, st);
        /* e = x·xᵀ: dx_b += de_b·x_b + de_bᵀ·x_b */
        gemm_rm_batched_bf16(ctx, false, false, C, N, C, 1.0f, de, C, (long long)cc, xc, N, (long long)cn, 1.0f, dxc,
                             N, (long long)cn, nb, 0);
        gemm_rm_batched_bf16(ctx, true, false, C, N, C, 1.0f, de, C, (long long)cc, xc, N, (long long)cn, 1.0f, dxc,
                             N, (long long)cn, nb, 0);
    }
}

extern "C" void pam_forward_cuda(float *out, void *q_, void *k_, void *v_, void *a_, void *o_,
                                 const float *x, const float *wq, const float *bq,
                                 const float *wk, const float *bk, const float *wv,
                                 const float *bv, const float *gamma,
                                 int B, int C, int Cq, int N, const attn_store *sto, dath_ctx *ctx) {
    if (B <= 0 || C <= 0 || N <= 0) return;
    if (sto) {
        pam_forward_bf16(out, (bf16 *)q_, (bf16 *)k_, (bf16 *)v_, (bf16 *)a_, (bf16 *)o_, x, wq, bq, wk, bk, wv, bv,
                         gamma, B, C, Cq, N, ctx);
        return;
    }
    float *q = (float *)q_, *k = (float *)k_, *v = (float *)v_, *a = (float *)a_, *o = (float *)o_;
    cudaStream_t st = DATH_STREAM(ctx);
    const long long cn = (long long)C * N, qn = (long long)Cq * N, nn = (long long)N * N;
    /* q [B,Cq,N] = wq·x + bq, k likewise, v [B,C,N] = wv·x + bv: the 1×1 convolutions,
     * their bias in the implicit kernel's epilogue (attn_project) */
    attn_project(q, x, wq, bq, B, C, Cq, N, DATH_STORE_F32, ctx);
    attn_project(k, x, wk, bk, B, C, Cq, N, DATH_STORE_F32, ctx);
    attn_project(v, x, wv, bv, B, C, C, N, DATH_STORE_F32, ctx);
    /* e [B,N,N] = qᵀ·k, then a = softmax(e) row by row */
    gemm_rm_batched(ctx, true, false, N, N, Cq, 1.0f, q, N, qn, k, N, qn, 0.0f, a, N, nn, B);
    attn_softmax(a, B * N, N, 1.0f, st);
    /* o [B,C,N] = v·aᵀ */
    gemm_rm_batched(ctx, false, true, C, N, N, 1.0f, v, N, cn, a, N, nn, 0.0f, o, N, cn, B);
    attn_residual(out, o, x, gamma, (size_t)B * cn, st);
}

extern "C" void pam_backward_cuda(float *dx, float *dwq, float *dbq, float *dwk, float *dbk,
                                  float *dwv, float *dbv, float *dgamma,
                                  const float *dout, const float *x, const void *q_,
                                  const void *k_, const void *v_, const void *a_, const void *o_,
                                  const float *wq, const float *wk, const float *wv,
                                  const float *gamma, int B, int C, int Cq, int N, int add,
                                  const attn_store *sto, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    const float *q = (const float *)q_, *k = (const float *)k_, *v = (const float *)v_, *a = (const float *)a_,
                *o = (const float *)o_;
    if (B <= 0 || C <= 0 || N <= 0) {   /* an empty batch's gradients are zero */
        const struct { float *p; size_t n; } z[7] = {
            { dwq, (size_t)Cq * C }, { dbq, (size_t)Cq }, { dwk, (size_t)Cq * C }, { dbk, (size_t)Cq },
            { dwv, (size_t)C * C }, { dbv, (size_t)C }, { dgamma, 1 } };
        for (int i = 0; i < 7; i++)
            if (z[i].n) CUDA_CHECK(cudaMemsetAsync(z[i].p, 0, z[i].n * sizeof(float), st));
        return;
    }
    if (sto) {
        pam_backward_bf16(dx, dwq, dbq, dwk, dbk, dwv, dbv, dgamma, dout, x, (const bf16 *)q_, (const bf16 *)k_,
                          (const bf16 *)v_, (const bf16 *)a_, (const bf16 *)o_, sto, gamma, B, C, Cq, N, add, ctx);
        return;
    }
    const size_t cn = (size_t)C * N, qn = (size_t)Cq * N, nn = (size_t)N * N;
    const int chunk = attn_chunk_images(3 * cn + 2 * qn + nn, 6, B, ctx, "pam_backward_cuda");

    attn_residual_backward(dx, dgamma, dout, o, (size_t)B * cn, add, ctx);

    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int ld = nb * N;                                  /* channel-major row length */
        const float *doutc = dout + (size_t)b0 * cn;            /* [nb,C,N] */
        const float *xc = x + (size_t)b0 * cn;                  /* [nb,C,N] */
        const float *qc = q + (size_t)b0 * qn;                  /* [nb,Cq,N] */
        const float *kc = k + (size_t)b0 * qn;                  /* [nb,Cq,N] */
        const float *vc = v + (size_t)b0 * cn;                  /* [nb,C,N] */
        const float *ac = a + (size_t)b0 * nn;                  /* [nb,N,N] */
        float *dxc = dx + (size_t)b0 * cn;                      /* [nb,C,N] */
        float *gd = ctx->work + attn_align(ATTN_PARTIALS * 2);  /* [nb,C,N] γ·dout */
        float *xT = gd + attn_align(nb * cn);                   /* [C, nb·N] */
        float *dvT = xT + attn_align(nb * cn);                  /* [C, nb·N] */
        float *dqT = dvT + attn_align(nb * cn);                 /* [Cq, nb·N] */
        float *dkT = dqT + attn_align(nb * qn);                 /* [Cq, nb·N] */
        float *de = dkT + attn_align(nb * qn);                  /* [nb,N,N] da, then de */

        attn_scale_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(gd, doutc, gamma, nb * cn);
        CUDA_LAUNCH_CHECK();
        attn_transpose_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(xT, xc, nb, C, N);
        CUDA_LAUNCH_CHECK();
        /* o = v·aᵀ: dv_b = gd_b·a_b (into dvT), da_b = gd_bᵀ·v_b */
        gemm_rm_batched(ctx, false, false, C, N, N, 1.0f, gd, N, (long long)cn, ac, N,
                        (long long)nn, 0.0f, dvT, ld, N, nb);
        gemm_rm_batched(ctx, true, false, N, N, C, 1.0f, gd, N, (long long)cn, vc, N,
                        (long long)cn, 0.0f, de, N, (long long)nn, nb);
        attn_softmax_backward(de, ac, nb * N, N, 1.0f, st);
        /* e = qᵀk: dq_b = k_b·de_bᵀ, dk_b = q_b·de_b (into dqT, dkT) */
        gemm_rm_batched(ctx, false, true, Cq, N, N, 1.0f, kc, N, (long long)qn, de, N,
                        (long long)nn, 0.0f, dqT, ld, N, nb);
        gemm_rm_batched(ctx, false, false, Cq, N, N, 1.0f, qc, N, (long long)qn, de, N,
                        (long long)nn, 0.0f, dkT, ld, N, nb);
        /* the three 1×1 convolutions: dw (+)= dyT·xTᵀ, db (+)= row sums, one launch for
         * the three (the first chunk writes, later ones add), dx_b += wᵀ·dy_b */
        const struct { const float *dyT, *w; float *dw, *db; int Co; } conv[3] = {
            { dqT, wq, dwq, dbq, Cq }, { dkT, wk, dwk, dbk, Cq }, { dvT, wv, dwv, dbv, C } };
        attn_rows3<float> rows;
        int R = 0;
        for (int c = 0; c < 3; c++) {
            rows.y[c] = conv[c].dyT;
            rows.db[c] = conv[c].db;
            rows.Co[c] = conv[c].Co > 0 ? conv[c].Co : 0;
            R += rows.Co[c];
            if (conv[c].Co <= 0) continue;
            gemm_rm(ctx, false, true, conv[c].Co, C, ld, 1.0f, conv[c].dyT, ld, xT, ld,
                    b0 ? 1.0f : 0.0f, conv[c].dw, C);
        }
        if (R > 0) {
            const int S = attn_row_sum_slices(R, ld);
            double *partial = S > 1 ? (double *)ctx->work : NULL;   /* the dγ partials' room, free again */
            attn_row_sum_kernel<float><<<dim3((unsigned)S, (unsigned)R), BLOCK_1D, 0, st>>>(rows, partial,
                                                                                           (size_t)ld, S, b0 > 0);
            CUDA_LAUNCH_CHECK();
            if (S > 1) {
                attn_row_sum_finish_kernel<float><<<ceil_div((size_t)R, BLOCK_1D), BLOCK_1D, 0, st>>>(rows, partial,
                                                                                                     R, S, b0 > 0);
                CUDA_LAUNCH_CHECK();
            }
        }
        for (int c = 0; c < 3; c++) {
            if (conv[c].Co <= 0) continue;
            gemm_rm_batched(ctx, true, false, C, N, conv[c].Co, 1.0f, conv[c].w, C, 0,
                            conv[c].dyT, ld, N, 1.0f, dxc, N, (long long)cn, nb);
        }
    }
}

extern "C" void cam_forward_cuda(float *out, void *a_, void *o_, void *x16, const float *x,
                                 const float *gamma, int B, int C, int N, const attn_store *sto, dath_ctx *ctx) {
    if (B <= 0 || C <= 0) return;
    if (sto) {
        cam_forward_bf16(out, (bf16 *)a_, (bf16 *)o_, (bf16 *)x16, x, gamma, B, C, N, ctx);
        return;
    }
    float *a = (float *)a_, *o = (float *)o_;
    cudaStream_t st = DATH_STREAM(ctx);
    const long long cn = (long long)C * N, cc = (long long)C * C;
    /* e [B,C,C] = x·xᵀ, then a = softmax(−e) row by row (shifted by −rowmin(e)) */
    gemm_rm_batched(ctx, false, true, C, C, N, 1.0f, x, N, cn, x, N, cn, 0.0f, a, C, cc, B);
    attn_softmax(a, B * C, C, -1.0f, st);
    /* o [B,C,N] = a·x */
    gemm_rm_batched(ctx, false, false, C, N, C, 1.0f, a, C, cc, x, N, cn, 0.0f, o, N, cn, B);
    attn_residual(out, o, x, gamma, (size_t)B * cn, st);
}

extern "C" void cam_backward_cuda(float *dx, float *dgamma, const float *dout, const float *x,
                                  const void *x16, const void *a_, const void *o_, const float *gamma,
                                  int B, int C, int N, int add, const attn_store *sto, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    if (B <= 0 || C <= 0) {   /* an empty batch's gradient is zero */
        CUDA_CHECK(cudaMemsetAsync(dgamma, 0, sizeof(float), st));
        return;
    }
    if (sto) {
        cam_backward_bf16(dx, dgamma, dout, (const bf16 *)x16, (const bf16 *)a_, (const bf16 *)o_, gamma, B, C, N, add,
                          ctx);
        return;
    }
    const float *a = (const float *)a_, *o = (const float *)o_;
    const size_t cn = (size_t)C * N, cc = (size_t)C * C;
    const int chunk = attn_chunk_images(cn + cc, 2, B, ctx, "cam_backward_cuda");

    attn_residual_backward(dx, dgamma, dout, o, (size_t)B * cn, add, ctx);

    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const float *doutc = dout + (size_t)b0 * cn;            /* [nb,C,N] */
        const float *xc = x + (size_t)b0 * cn;                  /* [nb,C,N] */
        const float *ac = a + (size_t)b0 * cc;                  /* [nb,C,C] */
        float *dxc = dx + (size_t)b0 * cn;                      /* [nb,C,N] */
        float *gd = ctx->work + attn_align(ATTN_PARTIALS * 2);  /* [nb,C,N] γ·dout */
        float *de = gd + attn_align(nb * cn);                   /* [nb,C,C] da, then de */

        attn_scale_kernel<<<grid_1d(nb * cn), BLOCK_1D, 0, st>>>(gd, doutc, gamma, nb * cn);
        CUDA_LAUNCH_CHECK();
        /* o = a·x: da_b = gd_b·x_bᵀ, dx_b += a_bᵀ·gd_b */
        gemm_rm_batched(ctx, false, true, C, C, N, 1.0f, gd, N, (long long)cn, xc, N,
                        (long long)cn, 0.0f, de, C, (long long)cc, nb);
        gemm_rm_batched(ctx, true, false, C, N, C, 1.0f, ac, C, (long long)cc, gd, N,
                        (long long)cn, 1.0f, dxc, N, (long long)cn, nb);
        attn_softmax_backward(de, ac, nb * C, C, -1.0f, st);
        /* e = x·xᵀ: dx_b += de_b·x_b + de_bᵀ·x_b */
        gemm_rm_batched(ctx, false, false, C, N, C, 1.0f, de, C, (long long)cc, xc, N,
                        (long long)cn, 1.0f, dxc, N, (long long)cn, nb);
        gemm_rm_batched(ctx, true, false, C, N, C, 1.0f, de, C, (long long)cc, xc, N,
                        (long long)cn, 1.0f, dxc, N, (long long)cn, nb);
    }
}
