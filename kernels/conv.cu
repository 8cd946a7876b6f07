/* kernels/conv.cu — CUDA convolution (contract in conv.h; the same algorithm as
 * the reference in conv.c): im2col + one cuBLAS GEMM per chunk of images.
 *
 * For a chunk of nb images (P = Ho*Wo, R = Ci*k*k, N = nb*P), in ctx->work:
 *   col   [Rp, N]   patches, row (ci*k + ky)*k + kx, column i*P + oy*Wo + ox; rows R..Rp
 *                   zero (Rp = conv2d_col_rows: R padded to a multiple of 8, conv.h)
 *   stage [Co, N]   the chunk's output (or output gradient), channel-major
 *   forward   stage = w·col, then out = (relu) stage + b     (epilogue kernel)
 *   backward  dout masked by out > 0 (relu), db = Σ dout    (reduction kernel)
 *             stage ← dout,  dw (+)= stage·colᵀ (K = all pixels of the chunk; the
 *             first chunk writes, beta 0, later ones add)
 *             col = wᵀ·stage, din = col2im(col)   (one thread per input element,
 *             gathering its contributions in a fixed order: no atomics)
 * The multi ops (nw weight sets over the same input, e.g. both streams' conv1) make
 * the chunk's col once: stage becomes [nw, Co, N] and the nw products with col are ONE
 * cublasGemmStridedBatchedEx (gemm_rm_batched, honouring ctx->precision as gemm_rm
 * does) whenever the nw weight pointers (forward) or weight-gradient pointers
 * (backward) are evenly spaced once sorted by address (always so for nw = 2; the
 * stride is their difference, col's stride 0), else nw GEMMs; the bias/ReLU epilogue,
 * the ReLU mask, the bias gradients and the staging are one launch each for all sets;
 * din sums the nw column gradients in col (GEMM beta = 1 after set 0), then one
 * col2im. The single ops are the multi code with nw = 1.
 * conv2d_work_bytes_multi(s, nw) is col + nw stages for the whole batch, so a
 * ctx->work of that size does the batch in one chunk; a smaller one is used in chunks
 * of as many images as fit (the chunk size depends only on the shape, nw and
 * work_bytes, so a call is deterministic). A work buffer too small for one image is
 * kernels/common.h's scratch policy; nw outside 1..CONV_MULTI_MAX aborts too.
 * Padding (Rp > R: conv1's 363 → 368): the scratch starts with the nw weight sets copied
 * into [Co, Rp] with zero columns (conv_pad_kernel, in the order of the sorted sets, so
 * evenly spaced: one strided-batched GEMM) and their gradients' [Co, Rp] (dw's GEMMs go
 * there; conv_unpad_kernel copies them into each dw without the padding at the end): every
 * GEMM then has K and leading dimensions that are multiples of 8. */
#include "cuda_common.cuh"
#include "gemm.cuh"

extern "C" {
#include "conv.h"
}

/* nw backend pointers (one a weight set), handed to a kernel by value. */
typedef struct conv_ptrs { float *p[CONV_MULTI_MAX]; } conv_ptrs;
typedef struct conv_cptrs { const float *p[CONV_MULTI_MAX]; } conv_cptrs;

/* ---- kernels ------------------------------------------------------------------ */

/* col [R, N] ← patches of in [nb, Ci, H, W] (zero in the padding); N = nb*Ho*Wo.
 * One thread per col element, grid-stride; consecutive threads write consecutive
 * columns. */
__global__ void conv_im2col_kernel(float *col, const float *in, int nb, int Ci, int H, int W,
                                   int k, int stride, int pad, int Ho, int Wo, int Rp) {
    const size_t P = (size_t)Ho * Wo, N = (size_t)nb * P, R = (size_t)Ci * k * k;
    const size_t total = (size_t)Rp * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / N, c = e - r * N;
        if (r >= R) {   /* a padding row */
            col[e] = 0.0f;
            continue;
        }
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

/* wp [nw, Co, Rp] ← w.p[q] [Co, R] with zero columns R..Rp (the padded weights). */
__global__ void conv_pad_kernel(float *wp, conv_cptrs w, int nw, int Co, int R, int Rp) {
    const size_t total = (size_t)nw * Co * Rp;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(e % Rp);
        const size_t t = e / Rp;
        const int q = (int)(t / Co), co = (int)(t % Co);
        wp[e] = r < R ? w.p[q][(size_t)co * R + r] : 0.0f;
    }
}

/* dw.p[q] [Co, R] ← dwp [nw, Co, Rp] without its padding columns. */
__global__ void conv_unpad_kernel(conv_ptrs dw, const float *dwp, int nw, int Co, int R, int Rp) {
    const size_t total = (size_t)nw * Co * R;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(e % R);
        const size_t t = e / R;
        const int q = (int)(t / Co), co = (int)(t % Co);
        dw.p[q][(size_t)co * R + r] = dwp[((size_t)q * Co + co) * Rp + r];
    }
}

/* out.p[j] [nb, Co, P] = stage j [Co, N] + b.p[j] (then max(0, ·) when relu), for the
 * nw sets j at once; stage is [nw, Co, N], N = nb*P. */
__global__ void conv_bias_relu_kernel(conv_ptrs out, const float *stage, conv_cptrs b, int nw,
                                      int nb, int Co, int P, int relu) {
    const size_t N = (size_t)nb * P, per = (size_t)nb * Co * P, total = (size_t)nw * per;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(e / per);
        const size_t r = e - (size_t)j * per;
        const size_t p = r % P, t = r / P;
        const size_t co = t % Co, i = t / Co;
        float v = stage[((size_t)j * Co + co) * N + i * P + p] + b.p[j][co];
        out.p[j][r] = (relu && v < 0.0f) ? 0.0f : v;
    }
}

/* dout.p[j][e] = 0 where out.p[j][e] <= 0 (or NaN), as the reference's !(out > 0);
 * n elements a set, nw sets. */
__global__ void conv_relu_mask_kernel(conv_ptrs dout, conv_cptrs out, int nw, size_t n) {
    const size_t total = (size_t)nw * n;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(e / n);
        const size_t r = e - (size_t)j * n;
        if (!(out.p[j][r] > 0.0f)) dout.p[j][r] = 0.0f;
    }
}

/* db.p[j][co] = Σ_b Σ_p dout.p[j][b, co, p]. One block of BLOCK_1D threads per (set,
 * channel), block j*Co + co; each thread sums a fixed strided subset in double, then a
 * fixed-shape tree: the result depends only on the shape. */
__global__ void conv_bias_grad_kernel(conv_ptrs db, conv_cptrs dout, int B, int Co, int P) {
    __shared__ double part[BLOCK_1D];
    const int j = blockIdx.x / Co, co = blockIdx.x % Co;
    const float *g = dout.p[j];                                   /* [B, Co, P] */
    const size_t total = (size_t)B * P;
    double acc = 0.0;
    for (size_t t = threadIdx.x; t < total; t += BLOCK_1D) {
        const size_t bi = t / P, p = t - bi * P;
        acc += g[(bi * Co + co) * P + p];
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) db.p[j][co] = (float)part[0];
}

/* stage [nw, Co, N] ← dout.p[j] [nb, Co, P] (each set's chunk, channel-major). */
__global__ void conv_stage_kernel(float *stage, conv_cptrs dout, int nw, int nb, int Co, int P) {
    const size_t N = (size_t)nb * P, per = (size_t)nb * Co * P, total = (size_t)nw * per;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(e / per);
        const size_t r = e - (size_t)j * per;
        const size_t p = r % P, t = r / P;
        const size_t co = t % Co, i = t / Co;
        stage[((size_t)j * Co + co) * N + i * P + p] = dout.p[j][r];
    }
}

/* din [nb, Ci, H, W] += col2im(col [R, N]), the adjoint of im2col. One thread per
 * input element gathers every (ky, kx) whose window position lands on it, in
 * increasing ky, kx, from 0 (the order in which conv.c adds them onto its zeroed din),
 * and writes the sum: deterministic, no atomics. mask (in, or NULL: conv.h's din_relu):
 * 0 where !(mask > 0). */
__global__ void conv_col2im_kernel(float *din, const float *col, const float *mask, int nb, int Ci, int H, int W,
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
        float acc = 0.0f;                                   /* the reference's order */
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
        din[e] = mask && !(mask[e] > 0.0f) ? 0.0f : acc;
    }
}

/* ---- launchers ---------------------------------------------------------------- */

/* Aborts unless 1 <= nw <= CONV_MULTI_MAX (the pointer structs' size). */
static void conv_check_count(int nw, const char *who) {
    if (nw >= 1 && nw <= CONV_MULTI_MAX) return;
    fprintf(stderr, "dath: %s: %d weight sets, outside 1..%d\n", who, nw, CONV_MULTI_MAX);
    abort();
}

/* What both paths' backward check first: nw in range and the sets' dw and db disjoint
 * (each is written; a caller's bug otherwise: abort). Returns 1, with dw, db (and din)
 * zeroed, when the batch or the output is empty (no gradient) and there is nothing else
 * to do. */
static int conv_backward_prologue(float *din, float *const *dw, float *const *db, int nw,
                                  const conv2d_shape *s, dath_ctx *ctx, const char *who) {
    conv_check_count(nw, who);
    const size_t nwt = (size_t)s->Co * s->Ci * s->k * s->k;
    int i, j;
    if (conv_sets_overlap(dw, nw, nwt, &i, &j) || conv_sets_overlap(db, nw, (size_t)s->Co, &i, &j)) {
        fprintf(stderr, "dath: %s: the gradients of weight sets %d and %d overlap (each is written)\n", who, i, j);
        abort();
    }
    if (s->Co <= 0) return 1;
    if (s->B > 0 && s->Ho * s->Wo > 0) return 0;
    for (int j = 0; j < nw; j++) {
        CUDA_CHECK(cudaMemsetAsync(dw[j], 0, nwt * sizeof(float), DATH_STREAM(ctx)));
        CUDA_CHECK(cudaMemsetAsync(db[j], 0, (size_t)s->Co * sizeof(float), DATH_STREAM(ctx)));
    }
    if (din && s->B > 0)   /* no output: no gradient reaches the input */
        CUDA_CHECK(cudaMemsetAsync(din, 0, (size_t)s->B * s->Ci * s->H * s->W * dath_store_size(s->in_store),
                                   DATH_STREAM(ctx)));
    return 1;
}

/* Images per chunk whose col and nw stages fit in ctx->work, at most B; the scratch
 * policy (kernels/common.h) when not even one image fits. */
static int conv_chunk_images(const conv2d_shape *s, int nw, const dath_ctx *ctx,
                             const char *who) {
    const size_t Rp = (size_t)conv2d_col_rows(s), P = (size_t)s->Ho * s->Wo;
    const size_t per_image = (Rp + (size_t)nw * s->Co) * P * sizeof(float);
    const size_t fixed = conv2d_pad_floats(s, nw) * sizeof(float);   /* the padded weights first */
    size_t nb = ctx->work && ctx->work_bytes > fixed ? (ctx->work_bytes - fixed) / per_image : 0;
    if (nb < 1)
        dath_scratch_fail(who, fixed + per_image, ctx->work ? ctx->work_bytes : 0,
                          nw > 1 ? "ctx->work, sized by conv2d_work_bytes_multi" : "ctx->work, sized by conv2d_work_bytes");
    return nb > (size_t)s->B ? s->B : (int)nb;
}

/* ord [nw] ← the sets by increasing address of p[j] (ties in set order). Returns 1, with
 * *stride the spacing in floats, when the sorted pointers are evenly spaced at least
 * min_stride apart, so that one strided-batched GEMM (product i at p[ord[0]] + i·stride)
 * can take them; else 0 (ord still sorted). min_stride is 0 for an operand that is only
 * read, the operand's size for one that is written (the products must not overlap). */
static int conv_even_spacing(const float *const *p, int nw, long long min_stride, int *ord,
                             long long *stride) {
    for (int j = 0; j < nw; j++) {
        int t = j;
        while (t > 0 && (uintptr_t)p[ord[t - 1]] > (uintptr_t)p[j]) { ord[t] = ord[t - 1]; t--; }
        ord[t] = j;
    }
    *stride = 0;
    if (nw < 2) return 1;
    const uintptr_t base = (uintptr_t)p[ord[0]], step = (uintptr_t)p[ord[1]] - base;
    if (step % sizeof(float) != 0) return 0;
    for (int j = 2; j < nw; j++)
        if ((uintptr_t)p[ord[j]] - base != (uintptr_t)j * step) return 0;
    if ((long long)(step / sizeof(float)) < min_stride) return 0;
    *stride = (long long)(step / sizeof(float));
    return 1;
}

/* The nw convolutions of one input: per chunk one im2col, one strided-batched GEMM
 * (nw GEMMs when the weights are not evenly spaced), one bias/ReLU launch. Stage slot
 * q holds set ord[q]. With nw = 1: one GEMM, as conv2d_forward_cuda always did. */
static void conv_forward_sets(float *const *out, const float *in, const float *const *w,
                              const float *const *b, int nw, const conv2d_shape *s, int relu,
                              dath_ctx *ctx, const char *who) {
    conv_check_count(nw, who);
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const int P = s->Ho * s->Wo, R = Ci * s->k * s->k, Rp = conv2d_col_rows(s);
    const size_t in_image = (size_t)Ci * s->H * s->W;
    if (B <= 0 || Co <= 0 || P <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);
    const int chunk = conv_chunk_images(s, nw, ctx, who);
    int ord[CONV_MULTI_MAX];
    long long w_stride;
    int batched = conv_even_spacing(w, nw, 0, ord, &w_stride) && nw > 1;
    const float *wq[CONV_MULTI_MAX];   /* set ord[q]'s weights [Co, ldw] */
    for (int q = 0; q < nw; q++) wq[q] = w[ord[q]];
    int ldw = R;
    float *const base = ctx->work + conv2d_pad_floats(s, nw);   /* after the padded weights */
    if (Rp > R) {   /* the sets padded to [Co, Rp] at the scratch's start, evenly spaced */
        conv_cptrs wc;
        for (int q = 0; q < nw; q++) wc.p[q] = wq[q];
        conv_pad_kernel<<<grid_1d((size_t)nw * Co * Rp), BLOCK_1D, 0, st>>>(ctx->work, wc, nw, Co, R, Rp);
        CUDA_LAUNCH_CHECK();
        for (int q = 0; q < nw; q++) wq[q] = ctx->work + (size_t)q * Co * Rp;
        ldw = Rp;
        w_stride = (long long)Co * Rp;
        batched = nw > 1;
    }
    conv_cptrs bias;
    for (int q = 0; q < nw; q++) bias.p[q] = b[ord[q]];
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        float *col = base;                               /* [Rp, N] */
        float *stage = col + (size_t)Rp * N;             /* [nw, Co, N] */
        const size_t ncol = (size_t)Rp * N, nout = (size_t)nb * Co * P;
        conv_im2col_kernel<<<grid_1d(ncol), BLOCK_1D, 0, st>>>(
            col, in + (size_t)b0 * in_image, nb, Ci, s->H, s->W, s->k, s->stride, s->pad,
            s->Ho, s->Wo, Rp);
        CUDA_LAUNCH_CHECK();
        /* stage q [Co, N] = w[ord[q]] [Co, Rp] · col [Rp, N] */
        if (batched)
            gemm_rm_batched(ctx, false, false, Co, N, Rp, 1.0f, wq[0], ldw, w_stride, col, N,
                            0, 0.0f, stage, N, (long long)Co * N, nw);
        else
            for (int q = 0; q < nw; q++)
                gemm_rm(ctx, false, false, Co, N, Rp, 1.0f, wq[q], ldw, col, N, 0.0f,
                        stage + (size_t)q * Co * N, N);
        conv_ptrs o;
        for (int q = 0; q < nw; q++) o.p[q] = out[ord[q]] + (size_t)b0 * Co * P;
        conv_bias_relu_kernel<<<grid_1d((size_t)nw * nout), BLOCK_1D, 0, st>>>(
            o, stage, bias, nw, nb, Co, P, relu);
        CUDA_LAUNCH_CHECK();
    }
}

/* The backward of conv_forward_sets: one ReLU-mask and one bias-gradient launch for
 * all sets, then per chunk one staging launch, one im2col, the nw weight-gradient
 * GEMMs as one strided-batched GEMM (when dw's are evenly spaced and do not overlap;
 * stage slot q holds set ord[q]), and for din the nw column gradients summed in col
 * (set 0 first) before one col2im. */
static void conv_backward_sets(float *din, float *const *dw, float *const *db,
                               float *const *dout, const float *in, const float *const *w,
                               const float *const *out, int nw, const conv2d_shape *s,
                               int relu, dath_ctx *ctx, const char *who) {
    conv_check_count(nw, who);
    const int B = s->B, Ci = s->Ci, Co = s->Co;
    const int P = s->Ho * s->Wo, R = Ci * s->k * s->k, Rp = conv2d_col_rows(s);
    const size_t in_image = (size_t)Ci * s->H * s->W;
    const size_t n_out = (size_t)B * Co * P;
    if (B <= 0 || Co <= 0 || P <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);

    conv_ptrs g, dbp;
    conv_cptrs gc, o;
    for (int j = 0; j < nw; j++) {
        g.p[j] = dout[j];
        gc.p[j] = dout[j];
        o.p[j] = out[j];
        dbp.p[j] = db[j];
    }
    if (relu) {   /* dout becomes the pre-ReLU gradient */
        conv_relu_mask_kernel<<<grid_1d((size_t)nw * n_out), BLOCK_1D, 0, st>>>(g, o, nw, n_out);
        CUDA_LAUNCH_CHECK();
    }
    conv_bias_grad_kernel<<<nw * Co, BLOCK_1D, 0, st>>>(dbp, gc, B, Co, P);
    CUDA_LAUNCH_CHECK();

    const int chunk = conv_chunk_images(s, nw, ctx, who);
    int ord[CONV_MULTI_MAX], slot[CONV_MULTI_MAX];
    long long dw_stride;
    int batched = conv_even_spacing((const float *const *)dw, nw, (long long)Co * R, ord,
                                    &dw_stride) && nw > 1;
    for (int q = 0; q < nw; q++) slot[ord[q]] = q;
    /* set ord[q]'s dw [Co, lddw] and set j's w [Co, ldw]: the parameters', or, padded, the
     * scratch's [nw, Co, Rp] pair (weights then gradients), in slot order */
    float *dwq[CONV_MULTI_MAX];
    const float *wj[CONV_MULTI_MAX];
    for (int q = 0; q < nw; q++) { dwq[q] = dw[ord[q]]; wj[q] = w[q]; }
    int ldw = R;
    const int pad = Rp > R;
    float *const wp = ctx->work, *const dwp = ctx->work + (size_t)nw * Co * Rp;
    float *const base = ctx->work + conv2d_pad_floats(s, nw);
    if (pad) {
        if (din) {
            conv_cptrs wc;
            for (int q = 0; q < nw; q++) wc.p[q] = w[ord[q]];
            conv_pad_kernel<<<grid_1d((size_t)nw * Co * Rp), BLOCK_1D, 0, st>>>(wp, wc, nw, Co, R, Rp);
            CUDA_LAUNCH_CHECK();
        }
        for (int q = 0; q < nw; q++) {
            dwq[q] = dwp + (size_t)q * Co * Rp;
            wj[q] = wp + (size_t)slot[q] * Co * Rp;
        }
        ldw = Rp;
        dw_stride = (long long)Co * Rp;
        batched = nw > 1;
    }
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        float *col = base;                               /* [Rp, N] */
        float *stage = col + (size_t)Rp * N;             /* [nw, Co, N] */
        const size_t ncol = (size_t)Rp * N, nstage = (size_t)nb * Co * P;
        conv_cptrs gq;
        for (int q = 0; q < nw; q++) gq.p[q] = dout[ord[q]] + (size_t)b0 * Co * P;
        conv_stage_kernel<<<grid_1d((size_t)nw * nstage), BLOCK_1D, 0, st>>>(
            stage, gq, nw, nb, Co, P);
        CUDA_LAUNCH_CHECK();
        conv_im2col_kernel<<<grid_1d(ncol), BLOCK_1D, 0, st>>>(
            col, in + (size_t)b0 * in_image, nb, Ci, s->H, s->W, s->k, s->stride, s->pad,
            s->Ho, s->Wo, Rp);
        CUDA_LAUNCH_CHECK();
        /* dw[ord[q]] [Co, Rp] (+)= stage q [Co, N] · col [Rp, N]ᵀ: the first chunk writes
         * (padded: into the scratch's gradients, copied out after the last chunk) */
        const int ldd = pad ? Rp : R;
        const float beta = b0 ? 1.0f : 0.0f;
        if (batched)
            gemm_rm_batched(ctx, false, true, Co, ldd, N, 1.0f, stage, N, (long long)Co * N, col,
                            N, 0, beta, dwq[0], ldd, dw_stride, nw);
        else
            for (int q = 0; q < nw; q++)
                gemm_rm(ctx, false, true, Co, ldd, N, 1.0f, stage + (size_t)q * Co * N, N, col, N,
                        beta, dwq[q], ldd);
        if (!din) continue;
        /* col [Rp, N] = Σ_j w[j] [Co, Rp]ᵀ · stage slot[j] [Co, N], set 0 first (the padding
         * rows come out zero; col2im reads rows < R) */
        for (int j = 0; j < nw; j++)
            gemm_rm(ctx, true, false, ldw, N, Co, 1.0f, wj[j], ldw, stage + (size_t)slot[j] * Co * N,
                    N, j ? 1.0f : 0.0f, col, N);
        const size_t nin = (size_t)nb * in_image;
        conv_col2im_kernel<<<grid_1d(nin), BLOCK_1D, 0, st>>>(
            din + (size_t)b0 * in_image, col, s->din_relu ? in + (size_t)b0 * in_image : nullptr, nb, Ci, s->H,
            s->W, s->k, s->stride, s->pad, s->Ho, s->Wo);
        CUDA_LAUNCH_CHECK();
    }
    if (pad) {   /* each set's dw without the padding */
        conv_ptrs d;
        for (int q = 0; q < nw; q++) d.p[q] = dw[ord[q]];
        conv_unpad_kernel<<<grid_1d((size_t)nw * Co * R), BLOCK_1D, 0, st>>>(d, dwp, nw, Co, R, Rp);
        CUDA_LAUNCH_CHECK();
    }
}

/* The backend's ops: the implicit GEMMs (kernels/conv_implicit.cu) unless ctx->conv_algo
 * asks for this file's im2col + cuBLAS path, which stores fp32 only (conv.h). */
static void conv_im2col_fp32_only(const conv2d_shape *s, const char *who) {
    if (s->in_store == DATH_STORE_F32 && s->out_store == DATH_STORE_F32) return;
    fprintf(stderr, "dath: %s: bf16 storage of in or out is for the implicit path (--conv implicit); "
            "the im2col path takes fp32 tensors\n", who);
    abort();
}

extern "C" void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b,
                                    const conv2d_shape *s, int relu, dath_ctx *ctx) {
    if (ctx->conv_algo != DATH_CONV_IM2COL) conv_implicit_forward(&out, in, &w, &b, 1, s, relu, ctx);
    else {
        conv_im2col_fp32_only(s, "conv2d_forward_cuda");
        conv_forward_sets(&out, in, &w, &b, 1, s, relu, ctx, "conv2d_forward_cuda");
    }
}

extern "C" void conv2d_backward_cuda(float *din, float *dw, float *db, float *dout,
                                     const float *in, const float *w, const float *out,
                                     const conv2d_shape *s, int relu, dath_ctx *ctx) {
    if (conv_backward_prologue(din, &dw, &db, 1, s, ctx, "conv2d_backward_cuda")) return;
    if (ctx->conv_algo != DATH_CONV_IM2COL)
        conv_implicit_backward(din, &dw, &db, &dout, in, &w, &out, 1, s, relu, ctx);
    else {
        conv_im2col_fp32_only(s, "conv2d_backward_cuda");
        conv_backward_sets(din, &dw, &db, &dout, in, &w, &out, 1, s, relu, ctx, "conv2d_backward_cuda");
    }
}

extern "C" void conv2d_forward_multi_cuda(float *const *out, const float *in,
                                          const float *const *w, const float *const *b, int nw,
                                          const conv2d_shape *s, int relu, dath_ctx *ctx) {
    if (ctx->conv_algo != DATH_CONV_IM2COL) conv_implicit_forward(out, in, w, b, nw, s, relu, ctx);
    else {
        conv_im2col_fp32_only(s, "conv2d_forward_multi_cuda");
        conv_forward_sets(out, in, w, b, nw, s, relu, ctx, "conv2d_forward_multi_cuda");
    }
}

extern "C" void conv2d_backward_multi_cuda(float *din, float *const *dw, float *const *db,
                                           float *const *dout, const float *in,
                                           const float *const *w, const float *const *out,
                                           int nw, const conv2d_shape *s, int relu,
                                           dath_ctx *ctx) {
    if (conv_backward_prologue(din, dw, db, nw, s, ctx, "conv2d_backward_multi_cuda")) return;
    if (ctx->conv_algo != DATH_CONV_IM2COL)
        conv_implicit_backward(din, dw, db, dout, in, w, out, nw, s, relu, ctx);
    else {
        conv_im2col_fp32_only(s, "conv2d_backward_multi_cuda");
        conv_backward_sets(din, dw, db, dout, in, w, out, nw, s, relu, ctx, "conv2d_backward_multi_cuda");
    }
}
