/* kernels/loss.cu — CUDA twin of kernels/loss.c: the hash layer's tanh and DATH's
 * three losses (contract in loss.h).
 *
 * Every reduction that feeds a loss or a gradient has a fixed order: warp shuffles
 * in a fixed butterfly, per-warp partials summed by one thread in warp order, per-
 * anchor partials summed by one thread in anchor order. No float atomics, so two
 * runs give the same bits. Losses are accumulated in double, as in the reference.
 *
 * J1 (online triplet mining, loss and gradient) is two launches on the stream, no
 * host round trip, capturable in a graph:
 *   j1_anchor_kernel  one block per anchor a: row a of Θ = ½ H Hᵀ (double), the
 *                     similarity of a to every row, a's positive and negative lists
 *                     (ordered compaction), then row a of G = dJ/dΘ (times T):
 *                     G_ap = −Σ_n σ(t), G_an = +Σ_p σ(t), t = Θ_an − Θ_ap + margin,
 *                     and a's partial loss Σ softplus(t) and triplet count |P|·|N|.
 *   j1_finish_kernel  T = Σ counts (exact integer sum); block 0 writes loss[0] and
 *                     ntrip[0]; block i adds scale/T · Σ_j ½(G_ij + G_ji) h_j to dh_i.
 * Scratch in ctx->work: G [B,B] double, partial losses [B] double, counts [B] int64
 * (j1 needs 8·(B² + 2B) bytes: 528 KB at B = 256); too little is kernels/common.h's
 * scratch policy. A batch above J1_MAX_B, or K < 1, is outside the op's limits:
 * loss[0] = NaN, ntrip[0] = −1, dh left alone (a line on stderr for the batch), which
 * the step's non-finite-loss guard sees. B = 0: loss 0, no triplet.
 *
 * J2 and J3 are one block each (B·C and B·K are a few ten thousand elements): every
 * thread's share is summed in a fixed order and loss[0] is written by thread 0.
 * j3_tanh_backward is J3's block with tanh's backward done in the same pass: each
 * thread adds (dh + s·sign·sign)·(1 − h²) into dz for its elements, rounded as
 * j3_quant then tanh_backward round it, while the loss is reduced as in J3. */
#include "cuda_common.cuh"

extern "C" {
#include "loss.h"
}

#include <math.h>

/* Block sizes of this file, named once. */
enum {
    J1_ANCHOR_THREADS = 256,   /* per-anchor block of the mining kernel */
    J1_DH_THREADS = 128,       /* per-row block of the gradient (K ≤ 128 in DATH) */
    J2_THREADS = 512,          /* the single J2 block: a warp per row */
    J3_THREADS = 1024,         /* the single J3 block */
    J1_MAX_B = 2048            /* dynamic shared memory 20·B bytes stays under 48 KB */
};

#define FULL_MASK 0xffffffffu

/* ---- deterministic warp reductions ------------------------------------------------ */

/* Butterfly sums and maxima: every lane ends with the same value, computed in the same
 * order on every run. */
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
static __device__ __forceinline__ long long warp_sum_ll(long long v) {
    for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
static __device__ __forceinline__ double warp_max_d(double v) {
    for (int o = WARP / 2; o > 0; o /= 2) v = fmax(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

/* Sum of one double per thread over the block, in a fixed order (butterfly within each
 * warp, then warps in order by thread 0). Returns the total in thread 0 only.
 * `red` is shared scratch of blockDim.x / WARP doubles. */
static __device__ double block_sum_d(double v, double *red) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const int nwarps = blockDim.x / WARP;
    v = warp_sum_d(v);
    __syncthreads();                       /* red may be in use by a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < nwarps; w++) total += red[w];
    return total;
}

/* ---- tanh ------------------------------------------------------------------------- */

static __global__ void tanh_forward_kernel(float *__restrict__ h, const float *__restrict__ z,
                                           size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        h[i] = tanhf(z[i]);
}

/* dz += dh·(1 − h²), rounded step by step as the reference (no contraction to FMA). */
static __global__ void tanh_backward_kernel(float *__restrict__ dz, const float *__restrict__ dh,
                                            const float *__restrict__ h, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float hi = h[i];
        float d = __fmul_rn(dh[i], __fsub_rn(1.0f, __fmul_rn(hi, hi)));
        dz[i] = __fadd_rn(dz[i], d);
    }
}

extern "C" void tanh_forward_cuda(float *h, const float *z, size_t n, dath_ctx *ctx) {
    if (n == 0) return;
    tanh_forward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(h, z, n);
    CUDA_LAUNCH_CHECK();
}

extern "C" void tanh_backward_cuda(float *dz, const float *dh, const float *h, size_t n,
                                   dath_ctx *ctx) {
    if (n == 0) return;
    tanh_backward_kernel<<<grid_1d(n), BLOCK_1D, 0, DATH_STREAM(ctx)>>>(dz, dh, h, n);
    CUDA_LAUNCH_CHECK();
}

/* ---- J1 --------------------------------------------------------------------------- */

/* One (a, p, n) term, as the reference computes it: t = Θ_an + (margin − Θ_ap),
 * softplus(t) = max(t, 0) + log1p(e^−|t|), σ(t) = d softplus / dt. */
static __device__ __forceinline__ void j1_term(double t, double *sp, double *sig) {
    double e = exp(-fabs(t));
    *sig = t >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    *sp = fmax(t, 0.0) + log1p(e);
}

enum { J1_NONE = 0, J1_POS = 1, J1_NEG = 2 };

/* Block a: row a of Θ, a's positives and negatives, row a of G, a's partial loss and
 * triplet count. Dynamic shared memory: th [B] double, kind [B], pos [B], neg [B] int. */
static __global__ void __launch_bounds__(J1_ANCHOR_THREADS)
j1_anchor_kernel(double *__restrict__ G, double *__restrict__ part,
                 long long *__restrict__ cnt, const float *__restrict__ h,
                 const float *__restrict__ lab, int B, int K, int C, double margin) {
    extern __shared__ double j1_smem[];
    double *th = j1_smem;                    /* [B] Θ_a· */
    int *kind = (int *)(th + B);             /* [B] J1_NONE / J1_POS / J1_NEG */
    int *pos = kind + B;                     /* [B] positives of a, in row order */
    int *neg = pos + B;                      /* [B] negatives of a, in row order */
    __shared__ int woff_p[J1_ANCHOR_THREADS / WARP], woff_n[J1_ANCHOR_THREADS / WARP];
    __shared__ double wloss[J1_ANCHOR_THREADS / WARP];
    __shared__ int s_np, s_nn;

    const int a = blockIdx.x;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int nwarps = blockDim.x / WARP;
    const float *ha = h + (size_t)a * K;     /* [K] */
    const float *la = lab + (size_t)a * C;   /* [C] */

    /* Θ_aj and the similarity, a warp per row j (coalesced over k and over c). */
    for (int j = warp; j < B; j += nwarps) {
        const float *hj = h + (size_t)j * K;     /* [K] */
        const float *lj = lab + (size_t)j * C;   /* [C] */
        double s = 0.0;
        for (int k = lane; k < K; k += WARP) s += (double)ha[k] * (double)hj[k];
        s = warp_sum_d(s);
        int shared_label = 0;
        for (int c0 = 0; c0 < C; c0 += WARP) {
            int c = c0 + lane;
            int both = c < C && la[c] > 0.5f && lj[c] > 0.5f;
            if (__any_sync(FULL_MASK, both)) { shared_label = 1; break; }
        }
        if (lane == 0) {
            th[j] = 0.5 * s;
            kind[j] = shared_label ? (j != a ? J1_POS : J1_NONE) : J1_NEG;
        }
    }
    if (tid == 0) { s_np = 0; s_nn = 0; }
    __syncthreads();

    /* Ordered compaction of the positives and negatives (ballot + warp offsets). */
    for (int j0 = 0; j0 < B; j0 += blockDim.x) {
        int j = j0 + tid;
        int k = j < B ? kind[j] : J1_NONE;
        unsigned bp = __ballot_sync(FULL_MASK, k == J1_POS);
        unsigned bn = __ballot_sync(FULL_MASK, k == J1_NEG);
        if (lane == 0) { woff_p[warp] = __popc(bp); woff_n[warp] = __popc(bn); }
        __syncthreads();
        if (tid == 0) {
            int p = s_np, q = s_nn;
            for (int w = 0; w < nwarps; w++) {
                int cp = woff_p[w], cn = woff_n[w];
                woff_p[w] = p; woff_n[w] = q;
                p += cp; q += cn;
            }
            s_np = p; s_nn = q;
        }
        __syncthreads();
        unsigned below = (1u << lane) - 1u;
        if (k == J1_POS) pos[woff_p[warp] + __popc(bp & below)] = j;
        if (k == J1_NEG) neg[woff_n[warp] + __popc(bn & below)] = j;
        __syncthreads();
    }
    const int np = s_np, nn = s_nn;
    double *Ga = G + (size_t)a * B;          /* [B] row a of G */

    /* Entries of row a that are neither positive nor negative (a itself) are 0. */
    for (int j = tid; j < B; j += blockDim.x)
        if (kind[j] == J1_NONE) Ga[j] = 0.0;

    /* G_ap = −Σ_n σ(t) and the loss, a warp per positive, lanes over negatives. */
    double my_loss = 0.0;                    /* lane 0: this warp's positives' terms */
    for (int ip = warp; ip < np; ip += nwarps) {
        int p = pos[ip];
        double base = margin - th[p];
        double sp_sum = 0.0, sig_sum = 0.0;
        for (int in = lane; in < nn; in += WARP) {
            double sp, sig;
            j1_term(th[neg[in]] + base, &sp, &sig);
            sp_sum += sp;
            sig_sum += sig;
        }
        sp_sum = warp_sum_d(sp_sum);
        sig_sum = warp_sum_d(sig_sum);
        if (lane == 0) {
            Ga[p] = -sig_sum;
            my_loss += sp_sum;
        }
    }
    /* G_an = +Σ_p σ(t), a warp per negative, lanes over positives. */
    for (int in = warp; in < nn; in += nwarps) {
        int n = neg[in];
        double thn = th[n];
        double sig_sum = 0.0;
        for (int ip = lane; ip < np; ip += WARP) {
            double sp, sig;
            j1_term(thn + (margin - th[pos[ip]]), &sp, &sig);
            sig_sum += sig;
        }
        sig_sum = warp_sum_d(sig_sum);
        if (lane == 0) Ga[n] = sig_sum;
    }

    if (lane == 0) wloss[warp] = my_loss;
    __syncthreads();
    if (tid == 0) {
        double s = 0.0;
        for (int w = 0; w < nwarps; w++) s += wloss[w];
        part[a] = s;
        cnt[a] = (long long)np * (long long)nn;
    }
}

/* T = Σ cnt; block 0 writes loss and ntrip; with dh, block i adds row i of the
 * gradient. Dynamic shared memory: sym [B] double (row i of ½(G + Gᵀ)). */
static __global__ void __launch_bounds__(J1_DH_THREADS)
j1_finish_kernel(float *__restrict__ loss, int64_t *__restrict__ ntrip,
                 float *__restrict__ dh, const double *__restrict__ G,
                 const double *__restrict__ part, const long long *__restrict__ cnt,
                 const float *__restrict__ h, int B, int K, double scale) {
    extern __shared__ double j1_sym[];       /* [B] */
    __shared__ long long wcnt[J1_DH_THREADS / WARP];
    __shared__ long long s_T;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int nwarps = blockDim.x / WARP;

    long long c = 0;                          /* integer sums are exact in any order */
    for (int a = tid; a < B; a += blockDim.x) c += cnt[a];
    c = warp_sum_ll(c);
    if (lane == 0) wcnt[warp] = c;
    __syncthreads();
    if (tid == 0) {
        long long T = 0;
        for (int w = 0; w < nwarps; w++) T += wcnt[w];
        s_T = T;
        if (blockIdx.x == 0) {
            if (ntrip) ntrip[0] = (int64_t)T;
            double total = 0.0;               /* anchor order, as the reference */
            for (int a = 0; a < B; a++) total += part[a];
            loss[0] = T > 0 ? (float)(total / (double)T) : 0.0f;
        }
    }
    __syncthreads();
    const long long T = s_T;
    if (!dh || T == 0) return;

    const int i = blockIdx.x;
    for (int j = tid; j < B; j += blockDim.x)
        j1_sym[j] = 0.5 * (G[(size_t)i * B + j] + G[(size_t)j * B + i]);
    __syncthreads();
    const double alpha = scale / (double)T;
    for (int k = tid; k < K; k += blockDim.x) {
        double acc = 0.0;
        for (int j = 0; j < B; j++) acc += j1_sym[j] * (double)h[(size_t)j * K + k];
        dh[(size_t)i * K + k] += (float)(alpha * acc);
    }
}

/* The reference's answer to a failed scratch allocation. */
static __global__ void j1_fail_kernel(float *loss, int64_t *ntrip) {
    loss[0] = __int_as_float(0x7fc00000);    /* NaN */
    if (ntrip) ntrip[0] = -1;
}

extern "C" void j1_triplet_cuda(float *loss, int64_t *ntrip, float *dh, const float *h,
                                const float *lab, int B, int K, int C, float margin,
                                float scale, dath_ctx *ctx) {
    cudaStream_t st = DATH_STREAM(ctx);
    if (B <= 0) {
        /* No rows: no triplets. The finish kernel with B = 0 writes 0 and 0. */
        j1_finish_kernel<<<1, J1_DH_THREADS, 0, st>>>(loss, ntrip, NULL, NULL, NULL, NULL,
                                                      h, 0, K, (double)scale);
        CUDA_LAUNCH_CHECK();
        return;
    }
    if (K <= 0) {   /* invalid, as the reference: NaN and −1, dh untouched */
        j1_fail_kernel<<<1, 1, 0, st>>>(loss, ntrip);
        CUDA_LAUNCH_CHECK();
        return;
    }
    size_t need = sizeof(double) * ((size_t)B * B + 2 * (size_t)B);
    if (B > J1_MAX_B) {
        fprintf(stderr, "dath: j1_triplet_cuda: batch %d is above the kernel's %d; loss set to NaN\n",
                B, (int)J1_MAX_B);
        j1_fail_kernel<<<1, 1, 0, st>>>(loss, ntrip);
        CUDA_LAUNCH_CHECK();
        return;
    }
    if (!ctx->work || ctx->work_bytes < need)
        dath_scratch_fail("j1_triplet_cuda", need, ctx->work ? ctx->work_bytes : 0, "ctx->work");
    double *G = (double *)ctx->work;                 /* [B,B] */
    double *part = G + (size_t)B * B;                /* [B] */
    long long *cnt = (long long *)(part + B);        /* [B] */

    size_t smem_anchor = (size_t)B * (sizeof(double) + 3 * sizeof(int));
    j1_anchor_kernel<<<B, J1_ANCHOR_THREADS, smem_anchor, st>>>(G, part, cnt, h, lab, B, K,
                                                                C, (double)margin);
    CUDA_LAUNCH_CHECK();
    j1_finish_kernel<<<dh ? B : 1, J1_DH_THREADS, (size_t)B * sizeof(double), st>>>(
        loss, ntrip, dh, G, part, cnt, h, B, K, (double)scale);
    CUDA_LAUNCH_CHECK();
}

/* ---- J2 --------------------------------------------------------------------------- */

/* One block; a warp per row (rows warp, warp + nwarps, ...), lanes over classes.
 * s = scale / norm for the gradient, lo/hi the clamp of eq. 7. */
static __global__ void __launch_bounds__(J2_THREADS)
j2_class_kernel(float *__restrict__ loss, float *__restrict__ dy,
                const float *__restrict__ y, const float *__restrict__ lab, int B, int C,
                int multi, double norm, double s) {
    __shared__ double red[J2_THREADS / WARP];
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const int nwarps = blockDim.x / WARP;
    const double lo = (double)J2_EPS, hi = 1.0 - (double)J2_EPS;
    double my_total = 0.0;                   /* lane 0: this warp's rows */
    for (int b = warp; b < B; b += nwarps) {
        const float *yb = y + (size_t)b * C;     /* [C] */
        const float *lb = lab + (size_t)b * C;   /* [C] */
        double m = -INFINITY;
        for (int j = lane; j < C; j += WARP) m = fmax(m, (double)yb[j]);
        m = warp_max_d(m);
        double z = 0.0;
        for (int j = lane; j < C; j += WARP) z += exp((double)yb[j] - m);
        z = warp_sum_d(z);
        const double lse = m + log(z);
        double row = 0.0;
        if (!multi) {
            /* −Σ_j l_j (y_j − lse); d/dy_k = (Σ_j l_j) p_k − l_k */
            double lsum = 0.0;
            for (int j = lane; j < C; j += WARP) {
                row += lb[j] * (lse - yb[j]);
                lsum += lb[j];
            }
            row = warp_sum_d(row);
            lsum = warp_sum_d(lsum);
            if (dy)
                for (int k = lane; k < C; k += WARP) {
                    double p = exp((double)yb[k] - lse);
                    dy[(size_t)b * C + k] += (float)(s * (lsum * p - lb[k]));
                }
        } else {
            /* q = clamp(p); the clamp passes no gradient where it is active. */
            double dot = 0.0;
            for (int j = lane; j < C; j += WARP) {
                double p = exp((double)yb[j] - lse);
                double q = fmin(fmax(p, lo), hi);
                row -= lb[j] * log(q) + (1.0 - lb[j]) * log1p(-q);
                if (p >= lo && p <= hi) dot += (-lb[j] / q + (1.0 - lb[j]) / (1.0 - q)) * p;
            }
            row = warp_sum_d(row);
            dot = warp_sum_d(dot);
            if (dy)
                for (int k = lane; k < C; k += WARP) {
                    double p = exp((double)yb[k] - lse);
                    double dp = (p >= lo && p <= hi)
                                    ? -lb[k] / p + (1.0 - lb[k]) / (1.0 - p) : 0.0;
                    dy[(size_t)b * C + k] += (float)(s * p * (dp - dot));
                }
        }
        my_total += row;
    }
    if (lane == 0) red[warp] = my_total;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < nwarps; w++) total += red[w];
        loss[0] = (float)(total / norm);
    }
}

extern "C" void j2_class_cuda(float *loss, float *dy, const float *y, const float *lab,
                              int B, int C, int multi, float norm, float scale,
                              dath_ctx *ctx) {
    j2_class_kernel<<<1, J2_THREADS, 0, DATH_STREAM(ctx)>>>(
        loss, dy, y, lab, B > 0 && C > 0 ? B : 0, C, multi, (double)norm,
        (double)scale / (double)norm);
    CUDA_LAUNCH_CHECK();
}

/* ---- J3 --------------------------------------------------------------------------- */

static __device__ __forceinline__ float sign_f(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

/* One block over all n = B·K elements: loss Σ | |h| − 1 | in double, and
 * dh += s · sign(|h| − 1) · sign(h), s = scale / norm (float, as the reference). */
static __global__ void __launch_bounds__(J3_THREADS)
j3_quant_kernel(float *__restrict__ loss, float *__restrict__ dh,
                const float *__restrict__ h, size_t n, double norm, float s) {
    __shared__ double red[J3_THREADS / WARP];
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        float hi = h[i];
        acc += fabs(fabs((double)hi) - 1.0);
        if (dh) {
            float d = __fmul_rn(__fmul_rn(s, sign_f(__fsub_rn(fabsf(hi), 1.0f))), sign_f(hi));
            dh[i] = __fadd_rn(dh[i], d);
        }
    }
    double total = block_sum_d(acc, red);
    if (threadIdx.x == 0) loss[0] = (float)(total / norm);
}

extern "C" void j3_quant_cuda(float *loss, float *dh, const float *h, int B, int K,
                              float norm, float scale, dath_ctx *ctx) {
    size_t n = B > 0 && K > 0 ? (size_t)B * K : 0;
    j3_quant_kernel<<<1, J3_THREADS, 0, DATH_STREAM(ctx)>>>(loss, dh, h, n, (double)norm,
                                                           scale / norm);
    CUDA_LAUNCH_CHECK();
}

/* One block over all n = B·K elements: the J3 loss as j3_quant_kernel, and
 * dz += (dh + s·sign(|h| − 1)·sign(h))·(1 − h·h), dh == NULL meaning 0, each operation
 * rounded as j3_quant_kernel then tanh_backward_kernel round it. */
static __global__ void __launch_bounds__(J3_THREADS)
j3_tanh_backward_kernel(float *__restrict__ loss, float *__restrict__ dz,
                        const float *__restrict__ dh, const float *__restrict__ h, size_t n,
                        double norm, float s) {
    __shared__ double red[J3_THREADS / WARP];
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        float hi = h[i];
        acc += fabs(fabs((double)hi) - 1.0);
        float dj3 = __fmul_rn(__fmul_rn(s, sign_f(__fsub_rn(fabsf(hi), 1.0f))), sign_f(hi));
        float g = __fadd_rn(dh ? dh[i] : 0.0f, dj3);
        dz[i] = __fadd_rn(dz[i], __fmul_rn(g, __fsub_rn(1.0f, __fmul_rn(hi, hi))));
    }
    double total = block_sum_d(acc, red);
    if (threadIdx.x == 0) loss[0] = (float)(total / norm);
}

extern "C" void j3_tanh_backward_cuda(float *loss, float *dz, const float *dh, const float *h,
                                      int B, int K, float norm, float scale, dath_ctx *ctx) {
    size_t n = B > 0 && K > 0 ? (size_t)B * K : 0;
    j3_tanh_backward_kernel<<<1, J3_THREADS, 0, DATH_STREAM(ctx)>>>(loss, dz, dh, h, n,
                                                                    (double)norm, scale / norm);
    CUDA_LAUNCH_CHECK();
}
