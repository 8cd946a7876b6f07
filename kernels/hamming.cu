/* kernels/hamming.cu — CUDA twin of kernels/hamming.c: Hamming ranking and the
 * per-query retrieval statistics (contract in hamming.h). Every output equals the
 * reference's bit for bit: counts are integers, and every double is computed with the
 * same operations in the same order (products are written __dmul_rn so that nvcc
 * cannot fuse them into an FMA that the x86-64 reference does not use).
 *
 * One call:
 *   1. hamming_pack_kernel turns codes and labels into records [n, CW+LW] of 64-bit
 *      words, as the reference does (the database once, the queries chunk by chunk);
 *      hamming_harmonic_kernel (one thread) builds Hn [D+1] when tie bounds are asked.
 *   2. hamming_rank_kernel, one block of HAMMING_THREADS threads per query. The
 *      database is split into HAMMING_WARPS contiguous segments, one per warp:
 *        a. each warp histograms the keys 2·d + rel of its segment (XOR + __popcll,
 *           AND of label masks), so wh[w][key] counts segment w;
 *        b. n[d], r[d] are summed over warps; thread 0 takes the prefix sums (the
 *           bucket starts fill[d], ret_r, rel_r, rel_all), and wh[w][2d] becomes the
 *           first rank of segment w's items at distance d: fill[d] plus the items at d
 *           in the segments before w;
 *        c. the counting sort: each warp walks its segment 32 items at a time in
 *           database order; lanes with the same distance find each other by ballots
 *           over the bits of d, and lane i's rank is its group's counter plus the
 *           group's lanes before i. So ranks are stable (ties keep database order),
 *           exactly the reference's; the relevance bits of ranks < `limit` are
 *           scattered to ranked [limit] in global scratch;
 *        d. hits at N (and R_T) from per-thread chunk counts of ranked and their
 *           prefix; AP@T by thread 0 walking ranked in rank order (the double sum
 *           Σ cnt/(pos+1) in the reference's order; zero words are skipped 8 at a
 *           time); the tie bounds by thread 0 over whole buckets, then the split
 *           bucket's choices h in parallel with a max/min reduction (max and min do
 *           not depend on the order).
 *   Launch: grid = the queries of a chunk (one block each), HAMMING_THREADS = 256
 *   threads. The bucket arrays wh [8][2(R+1)], n, r, fill [R+1] (int32, 76·(R+1)
 *   bytes) are dynamic shared memory when they fit in HAMMING_SHARED_MAX bytes
 *   (R ≤ 537 bits), else a per-block slice of the scratch.
 *
 * Scratch (ctx->work, see hamming_cuda_work_bytes): database records [D, S] words,
 * Hn [D+1] when tie bounds are asked, then per query of a chunk: query record
 * [S] words, ranked [limit] bytes, and the bucket arrays when not in shared memory.
 * Queries run in chunks of as many as the scratch holds. Too little scratch for one
 * query is kernels/common.h's scratch policy.
 * The function reads at[] back to the host (a synchronous copy) to size the ranking
 * depth, so it cannot be captured in a CUDA graph. */
#include "cuda_common.cuh"

extern "C" {
#include "hamming.h"
}

/* Block shape and shared-memory budget of this file, named once. */
enum {
    HAMMING_THREADS = 256,                          /* one block per query */
    HAMMING_WARPS = HAMMING_THREADS / WARP,         /* database segments per query */
    HAMMING_SHARED_MAX = 40 * 1024,                 /* bucket arrays in shared memory up to this */
    HAMMING_ALIGN = 256                             /* scratch regions start on this */
};

#define FULL_MASK 0xffffffffu

static size_t hamming_round(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* int32 entries of one block's bucket arrays: wh [W][2(R+1)], n, r, fill [R+1]. */
static size_t hamming_bucket_ints(int R) {
    return (size_t)(2 * HAMMING_WARPS + 3) * (size_t)(R + 1);
}

/* ---- kernels ------------------------------------------------------------------------ */

/* Records out [n, CW+LW]: word w < CW holds code bytes 8w..8w+7 (little-endian, zero
 * past B), word CW + v holds label bits 64v..64v+63 (zero past C). One thread a word. */
static __global__ void hamming_pack_kernel(uint64_t *__restrict__ out,
                                           const uint8_t *__restrict__ codes,
                                           const uint8_t *__restrict__ lab, int n, int B, int C,
                                           int CW, int LW) {
    const int S = CW + LW;
    const size_t total = (size_t)n * S;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / S;
        const int w = (int)(i % S);
        uint64_t v = 0;
        if (w < CW) {
            for (int b = 0; b < 8 && 8 * w + b < B; b++)
                v |= (uint64_t)codes[row * B + 8 * w + b] << (8 * b);
        } else {
            const int c0 = 64 * (w - CW);
            for (int b = 0; b < 64 && c0 + b < C; b++)
                if (lab[row * C + c0 + b]) v |= 1ull << b;
        }
        out[i] = v;
    }
}

/* Hn [D+1]: Hn[0] = 0, Hn[i] = Hn[i−1] + 1/i, sequentially as the reference sums them. */
static __global__ void hamming_harmonic_kernel(double *Hn, int D) {
    if (blockIdx.x || threadIdx.x) return;
    double h = 0;
    Hn[0] = 0;
    for (int i = 1; i <= D; i++) {
        h = __dadd_rn(h, 1.0 / i);
        Hn[i] = h;
    }
}

/* Lanes of the warp whose v equals this lane's, from ballots over bits 0..nb of v
 * (v ≥ 0 below 2^nb, or −1 for a lane without an item). Every lane must call it. */
static __device__ __forceinline__ unsigned hamming_match(int v, int nb) {
    unsigned m = FULL_MASK;
    for (int b = 0; b <= nb; b++) {
        const unsigned bal = __ballot_sync(FULL_MASK, (v >> b) & 1);
        m &= ((v >> b) & 1) ? bal : ~bal;
    }
    return m;
}

/* Distance and relevance of database record x against query record q. */
static __device__ __forceinline__ int hamming_key(const uint64_t *__restrict__ x,
                                                  const uint64_t *__restrict__ q, int CW,
                                                  int S) {
    int d = 0;
    uint64_t m = 0;
    for (int w = 0; w < CW; w++) d += __popcll(q[w] ^ x[w]);
    for (int w = CW; w < S; w++) m |= q[w] & x[w];
    return 2 * d + (m != 0);
}

/* Relevant items in the top n ranks (stable order): 0 for n < 1, all of ranked for
 * n ≥ limit. base [HAMMING_THREADS] holds the relevant items before each chunk of L
 * ranks. ranked is written earlier in the same kernel, so it is read through plain
 * (coherent) loads: no __restrict__, which could let the compiler use the read-only
 * cache. */
static __device__ int hamming_hits(const uint8_t *ranked, const int *base, int L,
                                   int limit, int n) {
    if (n > limit) n = limit;
    if (n < 1) return 0;
    const int c = (n - 1) / L;
    int s = base[c];
    for (int p = c * L; p < n; p++) s += ranked[p] != 0;
    return s;
}

/* One block per query q = q0 + blockIdx.x; qx [chunk, S] this chunk's query records,
 * dx [D, S] the database; ranked_all [chunk, slot] and buckets_all [chunk, slot] the
 * per-block scratch (buckets_all unused when the bucket arrays fit in shared memory). */
static __global__ void __launch_bounds__(HAMMING_THREADS)
hamming_rank_kernel(double *ap, int32_t *hits_k, int32_t *rel_all, double *ap_best,
                    double *ap_worst, int32_t *hits_at, int32_t *ret_r, int32_t *rel_r,
                    const uint64_t *__restrict__ qx, const uint64_t *__restrict__ dx,
                    const int32_t *__restrict__ at, const double *__restrict__ Hn,
                    uint8_t *ranked_all, size_t ranked_stride, int32_t *buckets_all,
                    size_t buckets_stride, int n_at, int q0, int D, int R, int CW, int S,
                    int T, int limit, int nb) {
    extern __shared__ int32_t hamming_smem[];
    __shared__ int base[HAMMING_THREADS];            /* relevant items before each chunk */
    __shared__ double red_b[HAMMING_WARPS], red_w[HAMMING_WARPS];
    __shared__ double s_sb, s_sw;                    /* tie bounds: sums over whole buckets */
    __shared__ int s_split, s_o, s_rb, s_hmin, s_hmax;

    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int q = q0 + blockIdx.x;
    const int R1 = R + 1;
    const uint64_t *qw = qx + (size_t)blockIdx.x * S;
    uint8_t *ranked = ranked_all + (size_t)blockIdx.x * ranked_stride;  /* [limit] */
    int32_t *bk = buckets_all ? buckets_all + (size_t)blockIdx.x * buckets_stride : hamming_smem;
    int32_t *wh = bk;                                /* [W, 2(R+1)] per-segment key counts */
    int32_t *n = bk + (size_t)HAMMING_WARPS * 2 * R1; /* [R+1] bucket sizes */
    int32_t *r = n + R1;                             /* [R+1] relevant per bucket */
    int32_t *fill = r + R1;                          /* [R+1] first rank of each bucket */

    for (int i = tid; i < HAMMING_WARPS * 2 * R1; i += HAMMING_THREADS) wh[i] = 0;
    __syncthreads();

    /* a. per-segment key histograms */
    const int seg = (D + HAMMING_WARPS - 1) / HAMMING_WARPS;
    const int lo = warp * seg < D ? warp * seg : D;
    const int hi = lo + seg < D ? lo + seg : D;
    int32_t *mine = wh + (size_t)warp * 2 * R1;
    for (int i = lo + lane; i < hi; i += WARP)
        atomicAdd(&mine[hamming_key(dx + (size_t)i * S, qw, CW, S)], 1);
    __syncthreads();

    /* b. bucket sizes, prefix sums, radius statistics, segment starts */
    for (int d = tid; d < R1; d += HAMMING_THREADS) {
        int nd = 0, rd = 0;
        for (int w = 0; w < HAMMING_WARPS; w++) {
            nd += wh[(size_t)w * 2 * R1 + 2 * d] + wh[(size_t)w * 2 * R1 + 2 * d + 1];
            rd += wh[(size_t)w * 2 * R1 + 2 * d + 1];
        }
        n[d] = nd;
        r[d] = rd;
    }
    __syncthreads();
    if (tid == 0) {
        int32_t cum_n = 0, cum_r = 0;
        for (int d = 0; d < R1; d++) {
            fill[d] = cum_n;
            cum_n += n[d];
            cum_r += r[d];
            if (ret_r) ret_r[(size_t)q * R1 + d] = cum_n;
            if (rel_r) rel_r[(size_t)q * R1 + d] = cum_r;
        }
        rel_all[q] = cum_r;
    }
    __syncthreads();
    for (int d = tid; d < R1; d += HAMMING_THREADS) {
        int32_t run = fill[d];
        for (int w = 0; w < HAMMING_WARPS; w++) {
            int32_t *h = wh + (size_t)w * 2 * R1 + 2 * d;
            const int32_t c = h[0] + h[1];
            h[0] = run;   /* from here on: the next rank of segment w's items at d */
            run += c;
        }
    }
    __syncthreads();

    /* c. stable counting sort of the relevance bits, ranks below limit */
    for (int i0 = lo; i0 < hi; i0 += WARP) {
        const int i = i0 + lane;
        int k = -1;
        if (i < hi) k = hamming_key(dx + (size_t)i * S, qw, CW, S);
        const int d = k >> 1;   /* −1 for a lane without an item */
        const unsigned same = hamming_match(d, nb);
        const int leader = __ffs(same) - 1;
        int start = 0;
        if (k >= 0 && lane == leader) start = mine[2 * d];
        start = __shfl_sync(FULL_MASK, start, leader);
        if (k >= 0) {
            const int pos = start + __popc(same & ((1u << lane) - 1u));
            if (pos < limit) ranked[pos] = (uint8_t)(k & 1);
            if (lane == leader) mine[2 * d] = start + __popc(same);
        }
        __syncwarp();
    }
    __syncthreads();

    /* d. hits at every N and R_T */
    const int L = limit > 0 ? (limit + HAMMING_THREADS - 1) / HAMMING_THREADS : 1;
    {
        int c = 0;
        const int p1 = (tid + 1) * L < limit ? (tid + 1) * L : limit;
        for (int p = tid * L; p < p1; p++) c += ranked[p] != 0;
        base[tid] = c;
    }
    __syncthreads();
    if (tid == 0) {
        int run = 0;
        for (int t = 0; t < HAMMING_THREADS; t++) {
            const int c = base[t];
            base[t] = run;
            run += c;
        }
    }
    __syncthreads();
    if (hits_at)
        for (int j = tid; j < n_at; j += HAMMING_THREADS)
            hits_at[(size_t)q * n_at + j] = hamming_hits(ranked, base, L, limit, at[j]);

    /* AP@T in rank order */
    if (tid == 0) {
        const int hitsT = hamming_hits(ranked, base, L, limit, T);
        const uint64_t *rw = (const uint64_t *)ranked;
        int cnt = 0;
        double sum = 0;
        for (int pos = 0; pos < T;) {
            if ((pos & 7) == 0 && pos + 8 <= T && rw[pos >> 3] == 0) {
                pos += 8;
                continue;
            }
            if (ranked[pos]) {
                cnt++;
                sum = __dadd_rn(sum, (double)cnt / (pos + 1));
            }
            pos++;
        }
        hits_k[q] = hitsT;
        ap[q] = hitsT ? sum / hitsT : 0;
    }

    /* tie bounds */
    if (!ap_best && !ap_worst) return;
    if (tid == 0) {
        double sb = 0, sw = 0;
        int o = 0, rb = 0, split = 0;
        for (int d = 0; d <= R && o < T; d++) {
            const int nd = n[d], rd = r[d];
            if (o + nd <= T) {
                if (rd) {
                    const int e = o + nd;
                    sb = __dadd_rn(sb, __dadd_rn((double)rd,
                                                 __dmul_rn((double)(rb - o), Hn[o + rd] - Hn[o])));
                    sw = __dadd_rn(sw, __dadd_rn((double)rd,
                                                 __dmul_rn((double)(rb + rd - e), Hn[e] - Hn[e - rd])));
                }
                o += nd;
                rb += rd;
                continue;
            }
            const int m = T - o;
            s_hmin = m - (nd - rd) > 0 ? m - (nd - rd) : 0;
            s_hmax = rd < m ? rd : m;
            split = 1;
            break;
        }
        s_sb = sb;
        s_sw = sw;
        s_o = o;
        s_rb = rb;
        s_split = split;
    }
    __syncthreads();
    const double sb = s_sb, sw = s_sw;
    const int o = s_o, rb = s_rb;
    if (!s_split) {   /* T on a bucket boundary: the relevant items in the top T are fixed */
        if (tid == 0) {
            if (ap_best) ap_best[q] = rb ? sb / rb : 0;
            if (ap_worst) ap_worst[q] = rb ? sw / rb : 0;
        }
        return;
    }
    double bmax = -1, wmin = 2;
    for (int h = s_hmin + tid; h <= s_hmax; h += HAMMING_THREADS) {
        const int tot = rb + h;
        double ab = 0, aw = 0;
        if (tot) {
            ab = __dadd_rn(__dadd_rn(sb, (double)h),
                           __dmul_rn((double)(rb - o), Hn[o + h] - Hn[o])) / tot;
            aw = __dadd_rn(__dadd_rn(sw, (double)h),
                           __dmul_rn((double)(rb + h - T), Hn[T] - Hn[T - h])) / tot;
        }
        if (ab > bmax) bmax = ab;
        if (aw < wmin) wmin = aw;
    }
    for (int off = WARP / 2; off > 0; off /= 2) {
        const double ob = __shfl_xor_sync(FULL_MASK, bmax, off);
        const double ow = __shfl_xor_sync(FULL_MASK, wmin, off);
        if (ob > bmax) bmax = ob;
        if (ow < wmin) wmin = ow;
    }
    if (lane == 0) {
        red_b[warp] = bmax;
        red_w[warp] = wmin;
    }
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < HAMMING_WARPS; w++) {
            if (red_b[w] > bmax) bmax = red_b[w];
            if (red_w[w] < wmin) wmin = red_w[w];
        }
        if (ap_best) ap_best[q] = bmax;
        if (ap_worst) ap_worst[q] = wmin;
    }
}

/* ---- launchers ---------------------------------------------------------------------- */

/* Byte sizes of the scratch regions. */
typedef struct hamming_layout {
    size_t db, harmonic;      /* database records; Hn (0 without tie bounds) */
    size_t query, ranked;     /* per query: its record; ranked ranks */
    size_t buckets;           /* per query: bucket arrays in scratch (0: in shared memory) */
} hamming_layout;

static hamming_layout hamming_plan(int D, int B, int C, int depth, int tie_bounds) {
    const int S = (B + 7) / 8 + (C > 0 ? (C + 63) / 64 : 1);
    const int R = 8 * B;
    const size_t bucket_bytes = hamming_bucket_ints(R) * sizeof(int32_t);
    hamming_layout l;
    l.db = hamming_round(((size_t)(D > 0 ? D : 1)) * S * sizeof(uint64_t), HAMMING_ALIGN);
    l.harmonic = tie_bounds ? hamming_round(((size_t)D + 1) * sizeof(double), HAMMING_ALIGN) : 0;
    l.query = (size_t)S * sizeof(uint64_t);
    l.ranked = hamming_round((size_t)(depth > 0 ? depth : 1), 8);
    l.buckets = bucket_bytes <= HAMMING_SHARED_MAX ? 0 : hamming_round(bucket_bytes, 8);
    return l;
}

extern "C" size_t hamming_cuda_work_bytes(int queries, int D, int B, int C, int depth,
                                          int tie_bounds) {
    if (depth > D) depth = D;
    const hamming_layout l = hamming_plan(D, B, C, depth, tie_bounds);
    const size_t q = (size_t)(queries > 0 ? queries : 1);
    return l.db + l.harmonic + hamming_round(q * l.query, HAMMING_ALIGN) +
           hamming_round(q * l.ranked, HAMMING_ALIGN) + hamming_round(q * l.buckets, HAMMING_ALIGN);
}

extern "C" void hamming_eval_cuda(double *ap, int32_t *hits_k, int32_t *rel_all, double *ap_best,
                                  double *ap_worst, int32_t *hits_at, int32_t *ret_r,
                                  int32_t *rel_r, const uint8_t *qcodes, const uint8_t *dcodes,
                                  const uint8_t *qlab, const uint8_t *dlab, const int32_t *at,
                                  int n_at, int Q, int D, int B, int C, int topk, dath_ctx *ctx) {
    if (Q <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);
    const int R = 8 * B;
    const int CW = (B + 7) / 8;
    const int LW = C > 0 ? (C + 63) / 64 : 1;
    const int S = CW + LW;
    const int T = topk <= 0 || topk > D ? D : topk;
    const int tie_bounds = ap_best || ap_worst;

    /* the deepest rank any output needs: at[] is read back to the host */
    int limit = T;
    if (n_at > 0) {
        int32_t *at_h = (int32_t *)malloc((size_t)n_at * sizeof *at_h);   /* [n_at] */
        if (!at_h) {
            fprintf(stderr, "dath: hamming_eval_cuda: out of host memory for %d ranks\n", n_at);
            CUDA_CHECK(cudaMemsetAsync(ap, 0xff, (size_t)Q * sizeof *ap, st));
            CUDA_CHECK(cudaMemsetAsync(hits_k, 0xff, (size_t)Q * sizeof *hits_k, st));
            CUDA_CHECK(cudaMemsetAsync(rel_all, 0xff, (size_t)Q * sizeof *rel_all, st));
            return;
        }
        CUDA_CHECK(cudaMemcpyAsync(at_h, at, (size_t)n_at * sizeof *at_h, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        for (int j = 0; j < n_at; j++)
            if (at_h[j] > limit) limit = at_h[j];
        free(at_h);
    }
    if (limit > D) limit = D;

    /* scratch: how many queries fit at once */
    const hamming_layout l = hamming_plan(D, B, C, limit, tie_bounds);
    const size_t fixed = l.db + l.harmonic;
    const size_t per_query = l.query + l.ranked + l.buckets;
    const size_t need = hamming_cuda_work_bytes(1, D, B, C, limit, tie_bounds);
    if (!ctx->work || ctx->work_bytes < need)
        dath_scratch_fail("hamming_eval_cuda", need, ctx->work ? ctx->work_bytes : 0,
                          "ctx->work, sized by hamming_cuda_work_bytes");
    /* the largest chunk whose rounded regions still fit */
    size_t chunk = (ctx->work_bytes - fixed) / per_query;
    if (chunk > (size_t)Q) chunk = (size_t)Q;
    while (chunk > 1 && hamming_cuda_work_bytes((int)chunk, D, B, C, limit, tie_bounds) > ctx->work_bytes)
        chunk--;

    uint8_t *w = (uint8_t *)ctx->work;
    uint64_t *dx = (uint64_t *)w;                                       /* [D, S] */
    double *Hn = tie_bounds ? (double *)(w + l.db) : NULL;              /* [D+1] */
    uint8_t *p = w + fixed;
    uint64_t *qx = (uint64_t *)p;                                       /* [chunk, S] */
    p += hamming_round(chunk * l.query, HAMMING_ALIGN);
    uint8_t *ranked = p;                                                /* [chunk, l.ranked] */
    p += hamming_round(chunk * l.ranked, HAMMING_ALIGN);
    int32_t *buckets = l.buckets ? (int32_t *)p : NULL;                 /* [chunk, l.buckets/4] */

    int nb = 0;   /* bits of the largest distance */
    while ((1 << nb) <= R) nb++;
    const size_t smem = l.buckets ? 0 : hamming_bucket_ints(R) * sizeof(int32_t);

    if (D > 0) {
        hamming_pack_kernel<<<grid_1d((size_t)D * S), BLOCK_1D, 0, st>>>(dx, dcodes, dlab, D, B,
                                                                          C, CW, LW);
        CUDA_LAUNCH_CHECK();
    }
    if (tie_bounds) {
        hamming_harmonic_kernel<<<1, 1, 0, st>>>(Hn, D);
        CUDA_LAUNCH_CHECK();
    }
    for (int q0 = 0; q0 < Q; q0 += (int)chunk) {
        const int nq = Q - q0 < (int)chunk ? Q - q0 : (int)chunk;
        hamming_pack_kernel<<<grid_1d((size_t)nq * S), BLOCK_1D, 0, st>>>(
            qx, qcodes + (size_t)q0 * B, qlab + (size_t)q0 * C, nq, B, C, CW, LW);
        CUDA_LAUNCH_CHECK();
        hamming_rank_kernel<<<nq, HAMMING_THREADS, smem, st>>>(
            ap, hits_k, rel_all, ap_best, ap_worst, hits_at, ret_r, rel_r, qx, dx, at, Hn, ranked,
            l.ranked, buckets, l.buckets / sizeof(int32_t), n_at, q0, D, R, CW, S, T, limit, nb);
        CUDA_LAUNCH_CHECK();
    }
}
