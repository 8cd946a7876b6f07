/* kernels/conv_implicit.cu — the convolutions as implicit GEMMs (contract and the three
 * GEMMs in conv.h; tiles and K splits in conv_plan.c). No column buffer: each block
 * gathers its tiles of the patch matrix from the tensors into shared memory itself.
 *
 * One kernel template, conv_igemm_kernel<OP, TILE, MATH, ASYNC, Ta, Tb, To>, for the forward
 * (OP = CONV_OP_FWD), the data gradient (CONV_OP_DX) and the weight gradient (CONV_OP_DW):
 *   C [M, N] = A [M, K] · B [K, N] over the block's K tiles, BM × BN outputs a block,
 *   block (x, y, z) = (M tile, N tile, K part). Consecutive blocks share their B tile
 *   (the gathered patches) and differ in M (weights / dout rows, small, in L2).
 *
 * Index arithmetic. Every element address is base + row part + column part:
 *   A (m, k) = rowa[m] + ktab[k].a_off                 rowa: one pointer a row of the block
 *   B (k, n) = x + ktab[k].b_off + ntab[n].b_off,      valid when y = ktab.y + ntab.y and
 *              x = ktab.x + ntab.x fall inside the image (or dout, for dX)
 * so the main loop does table look-ups, adds and two unsigned compares an element. The
 * block's M and N tables are made once; the K table of a tile is made by BK threads two
 * tiles ahead (double-buffered with the tiles, so no extra barrier), with divisions by
 * the shape's invariants done by multiply-high (conv_fdiv, conv.h): no division in a loop.
 *
 * Loads. Two stages of A [BK][BM+pad] and B [BK][BN+pad] (k-major) in shared memory.
 *   ASYNC (sm_80+, fp32 storage in fp32 or tf32 tiles): 4-byte cp.async a element (the
 *     pipeline primitives; zero-filled outside the image or the matrix), committed a tile
 *     a batch; tile t+1 is in flight while tile t is multiplied (wait_prior(1)), then
 *     barrier; a second barrier after the multiply before the stage is refilled.
 *   !ASYNC (sm_61/75, and bf16 tiles from fp32 storage, which need a conversion): tile
 *     t+1 is loaded into registers while tile t is multiplied, then converted and stored
 *     into the other stage; one barrier a tile.
 * Math.
 *   CONV_MATH_TF32 / BF16 (tensor cores, sm_80+): WMMA 16×16×8 (tf32: each element of a
 *     loaded fragment rounded with __float_to_tf32, round to nearest) or 16×16×16 (bf16,
 *     rounded to nearest-even when stored to shared memory), fp32 accumulators; a warp
 *     holds FM × FN fragments (conv_plan.c's table).
 *   CONV_MATH_FFMA: 8 × 8 outputs a thread from two 16-byte shared loads of A and of B
 *     per k, fp32 fused multiply-adds in k order (one chain an output, as cuBLAS's 32F).
 * Epilogue. Outputs go to global memory through the block's output tables (rowo, colo):
 *   forward out = relu(acc + b); dX din = acc (set 0; later sets +=); dW dw = acc; with a
 *   K split every part writes its product to ctx->work [part][M][N] and
 *   conv_split_reduce_kernel sums the parts in order (part 0 first), then does what the
 *   epilogue would have done. The tensor-core epilogue goes through a 16×20 shared
 *   scratch a warp (a fragment at a time; the mapping of fragment elements is
 *   unspecified), the FMA one from registers.
 * Determinism: every output is one thread's sum in a fixed order; no atomics.
 *
 * Element types: the stored types of the A operand (Ta), the B operand (Tb) and the output
 * (To), each float or bf16 as the shape says (conv.h: in and din by in_store, out and dout
 * by out_store): forward Ta = float (w), Tb = in's, To = out's; dX Ta = float (w), Tb =
 * dout's, To = din's; dW Ta = dout's, Tb = in's, To = float (dw). Loads convert to the
 * tile's type, the epilogue rounds to To (dX's += reads To first); cp.async needs the
 * stored types to be the tile's, so bf16 storage runs in the bf16 tiles (loads through
 * registers). Accumulation is fp32 everywhere. The resource report of every instantiation
 * (nvcc -Xptxas -v) is in README.md, "Convolutions on CUDA". */
#include "cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_pipeline_primitives.h>
#include <mma.h>

#include <type_traits>

extern "C" {
#include "conv.h"
}

/* The tensor-core code is compiled where WMMA tf32/bf16 exists (sm_80+), in nvcc's host
 * pass and on the emulator; below sm_80 the MATH != FFMA kernels are never launched
 * (conv2d_plan takes FFMA there) and their bodies trap. */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define CONV_HAVE_TC 1
#else
#define CONV_HAVE_TC 0
#endif

/* Full unrolling of the loops over a thread's elements and fragments: their arrays stay
 * in registers (the resource report, README: no stack frame). */
#if defined(__CUDACC__)
#define CONV_UNROLL _Pragma("unroll")
#else
#define CONV_UNROLL
#endif

namespace {

/* ---- configuration ------------------------------------------------------------------ */

/* Threads of a block (conv_plan.c's table). A function, so that __launch_bounds__ and
 * the emulator's launch check read it the same way. */
__host__ __device__ constexpr int conv_threads(int tile, int math) {
    return math != CONV_MATH_FFMA ? (tile == CONV_TILE_128x128 ? 256 : 128)
                                  : ((tile == CONV_TILE_128x128 ? 128 : 64) / 8) *
                                        ((tile == CONV_TILE_64x64 ? 64 : 128) / 8);
}

/* Blocks an SM should hold (__launch_bounds__'s second argument): a cap of 128 registers a
 * thread (65536 / (threads · 128)), which the FMA kernels and the 128×128 and 64×64
 * tensor-core ones meet without spilling; the 64×128 tf32 kernel (32 B elements a thread
 * to load, 8 accumulator fragments a warp) gets up to 170 (3 blocks of 128 threads), the
 * bf16 kernels of the larger tiles, whose registers also stage a tile's loads, what they
 * need (1). The resource report (README, "Convolutions on CUDA") shows no spill anywhere. */
__host__ __device__ constexpr int conv_min_blocks(int tile, int math) {
    return math == CONV_MATH_BF16 && tile != CONV_TILE_64x64 ? 1
         : math == CONV_MATH_TF32 && tile == CONV_TILE_64x128 ? 3 : 512 / conv_threads(tile, math);
}

template <int TILE, int MATH> struct conv_cfg {
    static constexpr int BM = TILE == CONV_TILE_128x128 ? 128 : 64;
    static constexpr int BN = TILE == CONV_TILE_64x64 ? 64 : 128;
    static constexpr bool TC = MATH != CONV_MATH_FFMA;
    static constexpr int BK = TC ? 32 : 8;
    static constexpr int NT = conv_threads(TILE, MATH);
    static constexpr int ESIZE = MATH == CONV_MATH_BF16 ? 2 : 4;
    static constexpr int LDA = BM + 16 / ESIZE, LDB = BN + 16 / ESIZE;   /* 16-byte pad */
    static constexpr int A_PER = BM * BK / NT, B_PER = BK * BN / NT;    /* elements a thread */
    static_assert(NT % BK == 0 && NT % BN == 0 && (BM * BK) % NT == 0 && (BK * BN) % NT == 0,
                  "a thread's elements of a tile must be one column (or row) of it");
};

/* The tensor cores' warps: WM × WN, each a WTM × WTN tile of FM × FN fragments 16×16×KSTEP. */
template <int TILE, int MATH> struct conv_tc_cfg {
    typedef conv_cfg<TILE, MATH> C;
    static constexpr int WN = TILE == CONV_TILE_64x64 ? 2 : 4;
    static constexpr int WM = C::NT / 32 / WN;
    static constexpr int WTM = C::BM / WM, WTN = C::BN / WN;
    static constexpr int FM = WTM / 16, FN = WTN / 16;
    static constexpr int KSTEP = MATH == CONV_MATH_BF16 ? 16 : 8;
};

template <int MATH> struct conv_tile_type { typedef float T; };
template <> struct conv_tile_type<CONV_MATH_BF16> { typedef __nv_bfloat16 T; };

/* float ↔ a stored or tile element (float, or bf16 rounded to nearest-even) */
template <class S> __device__ __forceinline__ float conv_to_float(S v) {
    if constexpr (std::is_same<S, __nv_bfloat16>::value) return __bfloat162float(v);
    else return v;
}
template <class S> __device__ __forceinline__ S conv_from_float(float v) {
    if constexpr (std::is_same<S, __nv_bfloat16>::value) return __float2bfloat16(v);
    else return v;
}

/* An invalid K or N entry: its y takes every B element of it outside the image. */
enum { CONV_NOWHERE = -(1 << 28) };

/* What a launch of conv_igemm_kernel (and of conv_split_reduce_kernel) needs. */
struct igemm_args {
    int M, N, K, kt, kt_split, splits;
    int B, Ci, H, W, Co, Ho, Wo, k, stride, pad;
    int relu;
    int in_store, out_store;          /* the shape's (conv.h): which stored types the launch takes */
    const void *a[CONV_MULTI_MAX];    /* A rows: FWD w_j, DX w (a[0]), DW dout_j */
    const void *x;                    /* the B operand's tensor: FWD, DW in; DX dout */
    float *o[CONV_MULTI_MAX];         /* FWD out_j, DX din (o[0]), DW dw_j */
    const float *bias[CONV_MULTI_MAX];
    int add;                          /* dX: 1 adds to din, 0 writes it */
    const void *mask;                 /* dX with din_relu (conv.h): in, stored as din; each addend
                                         is 0 where !(in > 0). NULL: none */
    float *part;                      /* splits > 1: [splits][M][N] */
    conv2d_phase ph;                  /* dX: the phase (conv.h) */
    /* divisors: Co, k², k, Ho·Wo, Wo, the GEMM's N; dX's K and N sides by the phase:
     * d_kk kyn·kxn, d_k kxn, d_hw hp·wp, d_w wp */
    conv_fdiv d_co, d_kk, d_k, d_p, d_wo, d_hw, d_w, d_n;
};

template <class P> __device__ __forceinline__ P conv_pick(const P *p, int j) {
    return j == 0 ? p[0] : j == 1 ? p[1] : j == 2 ? p[2] : p[3];   /* no indexed parameter load */
}

/* ---- the index tables ----------------------------------------------------------------- */

/* Row m of the block: where its A row starts (NULL past M), where its outputs go (a To
 * row, or a float row of the parts), its bias. */
template <int OP, class Ta, class To>
__device__ void conv_row_entry(const igemm_args &a, int m, int split, const Ta **rowa, void **rowo,
                               float *bias) {
    *rowa = nullptr;
    *rowo = nullptr;
    *bias = 0.0f;
    if (m >= a.M) return;
    const size_t P = (size_t)a.Ho * a.Wo, kk = (size_t)a.k * a.k;
    float *const part = a.splits > 1 ? a.part + ((size_t)split * a.M + m) * a.N : nullptr;
    if (OP == CONV_OP_DX) {
        *rowa = (const Ta *)a.a[0] + (size_t)m * kk;                        /* w [Co][Ci][kk], ci = m */
        *rowo = part ? (void *)part : (void *)((To *)a.o[0] + (size_t)m * a.H * a.W);   /* din [B][Ci][H·W] */
        return;
    }
    const int j = (int)conv_fdiv_q(a.d_co, (uint32_t)m), co = m - j * a.Co;
    if (OP == CONV_OP_FWD) {
        *rowa = (const Ta *)conv_pick(a.a, j) + (size_t)co * a.K;           /* w_j [Co][Ci·kk] */
        *rowo = part ? (void *)part : (void *)((To *)conv_pick(a.o, j) + (size_t)co * P);   /* out_j [B][Co][P] */
        *bias = conv_pick(a.bias, j)[co];
    } else {
        *rowa = (const Ta *)conv_pick(a.a, j) + (size_t)co * P;             /* dout_j [B][Co][P] */
        *rowo = part ? part : conv_pick(a.o, j) + (size_t)co * a.N;         /* dw_j [Co][Ci·kk] */
    }
}

/* Column n of the block: the N part of its B elements (b_off, y, x) and of its outputs. */
template <int OP>
__device__ void conv_col_entry(const igemm_args &a, int n, int4 *nt, int *colo) {
    nt->x = 0; nt->y = CONV_NOWHERE; nt->z = 0; nt->w = 0;
    *colo = 0;
    if (n >= a.N) return;
    const int HW = a.H * a.W, P = a.Ho * a.Wo;
    if (OP == CONV_OP_FWD) {
        const int b = (int)conv_fdiv_q(a.d_p, (uint32_t)n), p = n - b * P;
        const int oy = (int)conv_fdiv_q(a.d_wo, (uint32_t)p), ox = p - oy * a.Wo;
        const int iy0 = oy * a.stride - a.pad, ix0 = ox * a.stride - a.pad;
        nt->x = b * a.Ci * HW + iy0 * a.W + ix0;
        nt->y = iy0;
        nt->z = ix0;
        *colo = a.splits > 1 ? n : b * a.Co * P + p;
    } else if (OP == CONV_OP_DX) {   /* pixel (iy0 + s·j, ix0 + s·i) of the phase */
        const int hw = a.ph.hp * a.ph.wp;
        const int b = (int)conv_fdiv_q(a.d_hw, (uint32_t)n), q = n - b * hw;
        const int j = (int)conv_fdiv_q(a.d_w, (uint32_t)q), i = q - j * a.ph.wp;
        const int y = a.ph.qy + j, x = a.ph.qx + i;   /* oy + t, ox + u */
        nt->x = b * a.Co * P + y * a.Wo + x;
        nt->y = y;
        nt->z = x;
        *colo = a.splits > 1 ? n : b * a.Ci * HW + (a.ph.iy0 + a.stride * j) * a.W + a.ph.ix0 + a.stride * i;
    } else {
        const int ci = (int)conv_fdiv_q(a.d_kk, (uint32_t)n), r = n - ci * a.k * a.k;
        const int ky = (int)conv_fdiv_q(a.d_k, (uint32_t)r), kx = r - ky * a.k;
        nt->x = ci * HW + ky * a.W + kx;
        nt->y = ky;
        nt->z = kx;
        *colo = n;
    }
}

/* K index k: the K part of its A elements (a_off; −1 past K) and of its B elements. */
template <int OP>
__device__ void conv_k_entry(const igemm_args &a, int k, int4 *kt) {
    kt->x = -1; kt->y = 0; kt->z = CONV_NOWHERE; kt->w = 0;
    if (k >= a.K) return;
    const int HW = a.H * a.W, P = a.Ho * a.Wo, kk = a.k * a.k;
    if (OP == CONV_OP_DW) {
        const int b = (int)conv_fdiv_q(a.d_p, (uint32_t)k), p = k - b * P;
        const int oy = (int)conv_fdiv_q(a.d_wo, (uint32_t)p), ox = p - oy * a.Wo;
        const int iy0 = oy * a.stride - a.pad, ix0 = ox * a.stride - a.pad;
        kt->x = b * a.Co * P + p;
        kt->y = b * a.Ci * HW + iy0 * a.W + ix0;
        kt->z = iy0;
        kt->w = ix0;
        return;
    }
    if (OP == CONV_OP_FWD) {   /* k = (ci, ky, kx) */
        const int c = (int)conv_fdiv_q(a.d_kk, (uint32_t)k), r = k - c * kk;
        const int ky = (int)conv_fdiv_q(a.d_k, (uint32_t)r), kx = r - ky * a.k;
        kt->x = k;
        kt->y = c * HW + ky * a.W + kx;
        kt->z = ky;
        kt->w = kx;
    } else {                   /* k = (co, t, u): tap (ry + s·t, rx + s·u), dout[b, co, oy − t, ox − u] */
        const int taps = a.ph.kyn * a.ph.kxn;
        const int c = (int)conv_fdiv_q(a.d_kk, (uint32_t)k), r = k - c * taps;
        const int t = (int)conv_fdiv_q(a.d_k, (uint32_t)r), u = r - t * a.ph.kxn;
        kt->x = c * a.Ci * kk + (a.ph.ry + a.stride * t) * a.k + a.ph.rx + a.stride * u;
        kt->y = c * P - t * a.Wo - u;
        kt->z = -t;
        kt->w = -u;
    }
}

/* The B element from its K entry (x: a_off, y: b_off, z: y, w: x) and N entry (x: b_off,
 * y: y, z: x): its address, or NULL where it is padding (or past K or N). */
template <int OP, class Tio>
__device__ __forceinline__ const Tio *conv_b_src(const igemm_args &a, const Tio *x, int4 kt, int4 nt) {
    const int y = kt.z + nt.y, xx = kt.w + nt.z;
    const int YL = OP == CONV_OP_DX ? a.Ho : a.H, XL = OP == CONV_OP_DX ? a.Wo : a.W;
    if ((unsigned)y >= (unsigned)YL || (unsigned)xx >= (unsigned)XL) return nullptr;
    return x + (kt.y + nt.x);
}

/* ---- the kernel ------------------------------------------------------------------------ */

template <int OP, int TILE, int MATH, bool ASYNC, class Ta, class Tb, class To>
__global__ void __launch_bounds__(conv_threads(TILE, MATH), conv_min_blocks(TILE, MATH))
conv_igemm_kernel(igemm_args a) {
    typedef conv_cfg<TILE, MATH> C;
    typedef conv_tc_cfg<TILE, MATH> W;
    typedef typename conv_tile_type<MATH>::T S;
    static_assert(!ASYNC || (sizeof(Ta) == sizeof(S) && sizeof(Tb) == sizeof(S)),
                  "cp.async copies the stored type as it is");
    static_assert(OP != CONV_OP_DW || std::is_same<To, float>::value, "dW writes fp32");
    static_assert(OP == CONV_OP_DW || std::is_same<Ta, float>::value, "the weights are fp32");
#if !CONV_HAVE_TC
    if (C::TC) { __trap(); return; }   /* never launched below sm_80 (conv2d_plan) */
#endif
    extern __shared__ __align__(128) unsigned char conv_smem[];
    const conv_smem_t L = conv_smem_layout(C::BM, C::BN, C::BK, C::ESIZE);
    S *const As = (S *)(conv_smem + L.a);                 /* [2][BK][LDA] */
    S *const Bs = (S *)(conv_smem + L.b);                 /* [2][BK][LDB] */
    int4 *const ktab = (int4 *)(conv_smem + L.ktab);      /* [2][BK] */
    const Ta **const rowa = (const Ta **)(conv_smem + L.rowa);        /* [BM] */
    void **const rowo = (void **)(conv_smem + L.rowo);    /* [BM] */
    float *const biasv = (float *)(conv_smem + L.bias);   /* [BM] */
    int *const colo = (int *)(conv_smem + L.colo);        /* [BN] */
    int4 *const ntab = (int4 *)(conv_smem + L.ntab);      /* [BN] */

    const int tid = threadIdx.x;
    const int m0 = blockIdx.x * C::BM, n0 = blockIdx.y * C::BN, split = blockIdx.z;
    const int kt0 = split * a.kt_split;
    const int T = min(kt0 + a.kt_split, a.kt) - kt0;   /* this part's K tiles, ≥ 1 */
    const Tb *const X = (const Tb *)a.x;

    for (int i = tid; i < C::BM; i += C::NT) conv_row_entry<OP, Ta, To>(a, m0 + i, split, &rowa[i], &rowo[i], &biasv[i]);
    for (int i = tid; i < C::BN; i += C::NT) conv_col_entry<OP>(a, n0 + i, &ntab[i], &colo[i]);
    if (tid < C::BK) {
        conv_k_entry<OP>(a, kt0 * C::BK + tid, &ktab[tid]);
        if (T > 1) conv_k_entry<OP>(a, (kt0 + 1) * C::BK + tid, &ktab[C::BK + tid]);
    }
    __syncthreads();

    /* A: a thread's elements are one k column (lanes along k: the contiguous direction of
     * w, and of dout's pixels); B: one n column for the forward and dX (lanes along the
     * pixels), one k column for dW (lanes along the pixels, which are its k). */
    const int a_k = tid % C::BK, a_m = tid / C::BK;
    constexpr int A_STEP = C::NT / C::BK;
    constexpr bool B_ALONG_K = OP == CONV_OP_DW;
    const int b_fix = B_ALONG_K ? tid % C::BK : tid % C::BN;
    const int b_var = B_ALONG_K ? tid / C::BK : tid / C::BN;
    constexpr int B_STEP = B_ALONG_K ? C::NT / C::BK : C::NT / C::BN;
    const int4 my_nt = B_ALONG_K ? make_int4(0, 0, 0, 0) : ntab[b_fix];

    /* element i of the thread's A and B share of tile `slot`: source (NULL: zero) and
     * destination in stage `stage` */
    auto a_src = [&](int slot, int i) -> const Ta * {
        const int4 kt = ktab[slot * C::BK + a_k];
        const Ta *row = rowa[a_m + A_STEP * i];
        return row && kt.x >= 0 ? row + kt.x : nullptr;
    };
    auto a_dst = [&](int stage, int i) -> S * {
        return As + (stage * C::BK + a_k) * C::LDA + a_m + A_STEP * i;
    };
    auto b_src = [&](int slot, int i) -> const Tb * {
        if (B_ALONG_K) return conv_b_src<OP>(a, X, ktab[slot * C::BK + b_fix], ntab[b_var + B_STEP * i]);
        return conv_b_src<OP>(a, X, ktab[slot * C::BK + b_var + B_STEP * i], my_nt);
    };
    auto b_dst = [&](int stage, int i) -> S * {
        return B_ALONG_K ? Bs + (stage * C::BK + b_fix) * C::LDB + b_var + B_STEP * i
                         : Bs + (stage * C::BK + b_var + B_STEP * i) * C::LDB + b_fix;
    };
    auto k_table = [&](int t) {   /* the K table of the part's tile t into slot t % 2 */
        if (tid < C::BK) conv_k_entry<OP>(a, (kt0 + t) * C::BK + tid, &ktab[(t & 1) * C::BK + tid]);
    };

    /* accumulators */
#if CONV_HAVE_TC
    typedef typename std::conditional<MATH == CONV_MATH_BF16, __nv_bfloat16, nvcuda::wmma::precision::tf32>::type WT;
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, W::KSTEP, float> facc[C::TC ? W::FM : 1][C::TC ? W::FN : 1];
    if constexpr (C::TC)
        CONV_UNROLL
        for (int i = 0; i < W::FM; i++)
            CONV_UNROLL
            for (int j = 0; j < W::FN; j++) nvcuda::wmma::fill_fragment(facc[i][j], 0.0f);
    const int warp = tid / WARP, wm = warp / W::WN, wn = warp % W::WN;
#endif
    const int tx = tid % (C::BN / 8), ty = tid / (C::BN / 8);   /* FFMA: the thread's 8×8 */
    float acc[C::TC ? 1 : 8][C::TC ? 1 : 8];
    if constexpr (!C::TC)
        CONV_UNROLL
        for (int i = 0; i < 8; i++)
            CONV_UNROLL
            for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    auto multiply = [&](int stage) {
        const S *Ast = As + stage * C::BK * C::LDA, *Bst = Bs + stage * C::BK * C::LDB;
        if constexpr (C::TC) {
#if CONV_HAVE_TC
            using namespace nvcuda;
            CONV_UNROLL
            for (int ks = 0; ks < C::BK; ks += W::KSTEP) {
                wmma::fragment<wmma::matrix_a, 16, 16, W::KSTEP, WT, wmma::col_major> fa[C::TC ? W::FM : 1];
                wmma::fragment<wmma::matrix_b, 16, 16, W::KSTEP, WT, wmma::row_major> fb[C::TC ? W::FN : 1];
                CONV_UNROLL
                for (int i = 0; i < W::FM; i++) {
                    wmma::load_matrix_sync(fa[i], Ast + ks * C::LDA + wm * W::WTM + 16 * i, C::LDA);
                    if constexpr (MATH == CONV_MATH_TF32)
                        CONV_UNROLL
                        for (int e = 0; e < fa[i].num_elements; e++) fa[i].x[e] = wmma::__float_to_tf32(fa[i].x[e]);
                }
                CONV_UNROLL
                for (int j = 0; j < W::FN; j++) {
                    wmma::load_matrix_sync(fb[j], Bst + ks * C::LDB + wn * W::WTN + 16 * j, C::LDB);
                    if constexpr (MATH == CONV_MATH_TF32)
                        CONV_UNROLL
                        for (int e = 0; e < fb[j].num_elements; e++) fb[j].x[e] = wmma::__float_to_tf32(fb[j].x[e]);
                }
                CONV_UNROLL
                for (int i = 0; i < W::FM; i++)
                    CONV_UNROLL
                    for (int j = 0; j < W::FN; j++) wmma::mma_sync(facc[i][j], fa[i], fb[j], facc[i][j]);
            }
#endif
        } else {
            CONV_UNROLL
            for (int kk = 0; kk < C::BK; kk++) {
                const float *ar = (const float *)Ast + kk * C::LDA, *br = (const float *)Bst + kk * C::LDB;
                const float4 a0 = *(const float4 *)(ar + ty * 4), a1 = *(const float4 *)(ar + C::BM / 2 + ty * 4);
                const float4 b0 = *(const float4 *)(br + tx * 4), b1 = *(const float4 *)(br + C::BN / 2 + tx * 4);
                const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
                CONV_UNROLL
                for (int i = 0; i < 8; i++)
                    CONV_UNROLL
                    for (int j = 0; j < 8; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
            }
        }
    };

    /* ---- the main loop over the part's T tiles ---- */
    if constexpr (ASYNC) {
        auto issue = [&](int t) {   /* tile t (K table slot t % 2) into stage t % 2 */
            const int st = t & 1;
            CONV_UNROLL
            for (int i = 0; i < C::A_PER; i++) {
                const Ta *s = a_src(st, i);
                __pipeline_memcpy_async(a_dst(st, i), s ? s : (const Ta *)X, sizeof(Ta), s ? 0 : sizeof(Ta));
            }
            CONV_UNROLL
            for (int i = 0; i < C::B_PER; i++) {
                const Tb *s = b_src(st, i);
                __pipeline_memcpy_async(b_dst(st, i), s ? s : X, sizeof(Tb), s ? 0 : sizeof(Tb));
            }
            __pipeline_commit();
        };
        issue(0);
        for (int t = 0; t < T; t++) {
            if (t + 1 < T) {
                issue(t + 1);
                __pipeline_wait_prior(1);   /* tile t landed; t + 1 in flight */
            } else {
                __pipeline_wait_prior(0);
            }
            __syncthreads();                /* tile t visible to all; all issued tile t */
            if (t + 2 < T) k_table(t + 2);  /* into slot t % 2, which issuing tile t read */
            multiply(t & 1);
            __syncthreads();                /* stage t % 2 free for tile t + 2, its K table made */
        }
    } else {
        float ra[C::A_PER], rb[C::B_PER];
        auto fetch = [&](int t) {   /* tile t into registers */
            const int st = t & 1;
            CONV_UNROLL
            for (int i = 0; i < C::A_PER; i++) {
                const Ta *s = a_src(st, i);
                ra[i] = s ? conv_to_float(*s) : 0.0f;
            }
            CONV_UNROLL
            for (int i = 0; i < C::B_PER; i++) {
                const Tb *s = b_src(st, i);
                rb[i] = s ? conv_to_float(*s) : 0.0f;
            }
        };
        auto put = [&](int stage) {   /* the registers into a stage, as the tile's type */
            CONV_UNROLL
            for (int i = 0; i < C::A_PER; i++) *a_dst(stage, i) = conv_from_float<S>(ra[i]);
            CONV_UNROLL
            for (int i = 0; i < C::B_PER; i++) *b_dst(stage, i) = conv_from_float<S>(rb[i]);
        };
        fetch(0);
        put(0);
        __syncthreads();
        for (int t = 0; t < T; t++) {
            if (t + 1 < T) fetch(t + 1);    /* loads in flight during the multiply */
            if (t + 2 < T) k_table(t + 2);
            multiply(t & 1);
            if (t + 1 < T) put((t + 1) & 1);
            __syncthreads();
        }
    }

    /* ---- epilogue: the pipeline's shared memory is free (the loop ends on a barrier) ---- */
    const bool part = a.splits > 1;
    auto emit = [&](int ml, int nl, float v) {
        if (m0 + ml >= a.M || n0 + nl >= a.N) return;
        if (part) ((float *)rowo[ml])[colo[nl]] = v;
        else if constexpr (OP == CONV_OP_FWD) {
            v += biasv[ml];
            ((To *)rowo[ml])[colo[nl]] = conv_from_float<To>(a.relu && v < 0.0f ? 0.0f : v);
        } else {   /* dX (To: din's) and dW (float) */
            To *p = (To *)rowo[ml] + colo[nl];
            if constexpr (OP == CONV_OP_DX)   /* the layer below's ReLU: in at din's place */
                if (a.mask && !(conv_to_float(((const To *)a.mask)[p - (To *)a.o[0]]) > 0.0f)) v = 0.0f;
            if (OP == CONV_OP_DX && a.add) v += conv_to_float(*p);
            *p = conv_from_float<To>(v);
        }
    };
    if constexpr (C::TC) {
#if CONV_HAVE_TC
        float *scratch = (float *)(conv_smem + L.a) + warp * 16 * 20;   /* [16][20] */
        const int lane = tid % WARP;
        CONV_UNROLL
        for (int i = 0; i < W::FM; i++)
            CONV_UNROLL
            for (int j = 0; j < W::FN; j++) {
                nvcuda::wmma::store_matrix_sync(scratch, facc[i][j], 20, nvcuda::wmma::mem_row_major);
                __syncwarp();
                CONV_UNROLL
                for (int q = 0; q < 8; q++) {
                    const int e = lane + WARP * q, r = e / 16, c = e % 16;
                    emit(wm * W::WTM + 16 * i + r, wn * W::WTN + 16 * j + c, scratch[r * 20 + c]);
                }
                __syncwarp();
            }
#endif
    } else {
        CONV_UNROLL
        for (int i = 0; i < 8; i++)
            CONV_UNROLL
            for (int j = 0; j < 8; j++)
                emit((i / 4) * (C::BM / 2) + ty * 4 + i % 4, (j / 4) * (C::BN / 2) + tx * 4 + j % 4, acc[i][j]);
    }
}

/* The parts of a split K summed in order (part 0 first, fp32), then the epilogue's work:
 * the forward's bias and ReLU into out_j, dX's din (+)=, dW's dw_j =. One thread an
 * output, grid-stride. */
template <int OP, class To>
__global__ void conv_split_reduce_kernel(igemm_args a) {
    const uint32_t total = (uint32_t)a.M * (uint32_t)a.N;
    const size_t plane = (size_t)total;
    for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
        float acc = a.part[e];
        for (int s = 1; s < a.splits; s++) acc += a.part[(size_t)s * plane + e];
        const int m = (int)conv_fdiv_q(a.d_n, e), n = (int)(e - (uint32_t)m * (uint32_t)a.N);
        if (OP == CONV_OP_DX) {
            const int hw = a.ph.hp * a.ph.wp, b = (int)conv_fdiv_q(a.d_hw, (uint32_t)n), q = n - b * hw;
            const int j = (int)conv_fdiv_q(a.d_w, (uint32_t)q), i = q - j * a.ph.wp;
            const size_t at = (size_t)(a.ph.iy0 + a.stride * j) * a.W + a.ph.ix0 + a.stride * i;
            const size_t off = ((size_t)b * a.Ci + m) * a.H * a.W + at;
            To *d = (To *)a.o[0] + off;
            if (a.mask && !(conv_to_float(((const To *)a.mask)[off]) > 0.0f)) acc = 0.0f;
            *d = conv_from_float<To>(a.add ? conv_to_float(*d) + acc : acc);
            continue;
        }
        const int j = (int)conv_fdiv_q(a.d_co, (uint32_t)m), co = m - j * a.Co;
        if (OP == CONV_OP_DW) {
            conv_pick(a.o, j)[(size_t)co * a.N + n] = acc;
            continue;
        }
        const int P = a.Ho * a.Wo, b = (int)conv_fdiv_q(a.d_p, (uint32_t)n), p = n - b * P;
        const float v = acc + conv_pick(a.bias, j)[co];
        To *out = (To *)conv_pick(a.o, j);
        out[((size_t)b * a.Co + co) * P + p] = conv_from_float<To>(a.relu && v < 0.0f ? 0.0f : v);
    }
}

/* dout.p[j] masked in place by out.p[j] > 0 (relu; out and dout stored as T), and db.p[j][co] = Σ_b Σ_p of it. The
 * channel's B·P elements (image-major) are cut into S slices of L (conv2d_bgrad_slices):
 * block (j·Co + co)·S + s takes slice s; its thread t sums the slice's elements t,
 * t + BLOCK_1D, … in double, then a fixed tree. With S = 1 the block writes db (the order
 * of conv.cu's conv_bias_grad_kernel: db the same bits on both paths); else it writes its
 * double partial and conv_bgrad_sum_kernel adds a channel's S partials in slice order. */
struct conv_ptrs4 { float *p[CONV_MULTI_MAX]; };
struct conv_cptrs4 { const float *p[CONV_MULTI_MAX]; };

template <class T>
__global__ void conv_mask_bgrad_kernel(conv_ptrs4 dout, conv_cptrs4 out, conv_ptrs4 db, double *partial,
                                       int B, int Co, int P, int relu, int S, long long L) {
    __shared__ double part[BLOCK_1D];
    const int ch = blockIdx.x / S, sl = blockIdx.x - ch * S;
    const int j = ch / Co, co = ch % Co;
    T *g = (T *)conv_pick(dout.p, j);
    const T *o = (const T *)conv_pick(out.p, j);
    const long long q0 = sl * L, q1 = min(q0 + L, (long long)B * P);   /* the slice [q0, q1) */
    double acc = 0.0;
    const long long q = q0 + threadIdx.x;
    int b = (int)(q / P), p = (int)(q - (long long)b * P);
    long long left = q < q1 ? (q1 - q + BLOCK_1D - 1) / BLOCK_1D : 0;   /* this thread's elements */
    for (; left > 0; left--) {
        const size_t e = ((size_t)b * Co + co) * P + p;
        float v = conv_to_float(g[e]);
        if (relu && !(conv_to_float(o[e]) > 0.0f)) {
            v = 0.0f;
            g[e] = conv_from_float<T>(0.0f);
        }
        acc += v;
        p += BLOCK_1D;
        while (p >= P) { p -= P; b++; }
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK_1D / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    if (S == 1) conv_pick(db.p, j)[co] = (float)part[0];
    else partial[blockIdx.x] = part[0];
}

/* db.p[j][co] = Σ_s partial[(j·Co + co)·S + s], in slice order: one thread a channel. */
__global__ void conv_bgrad_sum_kernel(conv_ptrs4 db, const double *partial, int nch, int Co, int S) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= nch) return;
    double acc = 0.0;
    for (int s = 0; s < S; s++) acc += partial[(size_t)ch * S + s];
    conv_pick(db.p, ch / Co)[ch % Co] = (float)acc;
}

/* ---- launchers ------------------------------------------------------------------------- */

/* Above 48 KB a kernel's dynamic shared memory must be allowed, once per device: done
 * [64] is the kernel's own record (the bytes allowed on device d). */
template <class K> void conv_allow_smem(K kernel, size_t bytes, int *done) {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    const bool known = dev >= 0 && dev < 64;
    if (known && done[dev] >= (int)bytes) return;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    if (known) done[dev] = (int)bytes;
}

template <int OP, int TILE, int MATH, bool ASYNC, class Ta = float, class Tb = float, class To = float>
void igemm_launch_one(const conv2d_plan_t &p, const igemm_args &a, cudaStream_t st) {
    static int allowed[64];   /* per instantiation */
    const dim3 grid((unsigned)p.mtiles, (unsigned)p.ntiles, (unsigned)p.splits);
    if (p.smem > 48 * 1024) conv_allow_smem(conv_igemm_kernel<OP, TILE, MATH, ASYNC, Ta, Tb, To>, p.smem, allowed);
    conv_igemm_kernel<OP, TILE, MATH, ASYNC, Ta, Tb, To><<<grid, conv_threads(TILE, MATH), p.smem, st>>>(a);
    CUDA_LAUNCH_CHECK();
}

/* The op's stored types (conv.h, above): whether in (and din) and out (and dout) are bf16. */
template <int OP> __host__ __device__ inline bool igemm_bf16_a(const igemm_args &a) {
    return OP == CONV_OP_DW && a.out_store == DATH_STORE_BF16;
}
template <int OP> __host__ __device__ inline bool igemm_bf16_b(const igemm_args &a) {
    return (OP == CONV_OP_DX ? a.out_store : a.in_store) == DATH_STORE_BF16;
}
template <int OP> __host__ __device__ inline bool igemm_bf16_o(const igemm_args &a) {
    return OP != CONV_OP_DW && (OP == CONV_OP_DX ? a.in_store : a.out_store) == DATH_STORE_BF16;
}

/* bf16 storage, in the bf16 tiles only: the op's two stored types that may be bf16 (the
 * forward's and dX's B and output, dW's A and B), three pairs with at least one bf16. */
template <int OP, int TILE, class P, class Q>
void igemm_launch_stored(const conv2d_plan_t &p, const igemm_args &a, cudaStream_t st) {
    if constexpr (OP == CONV_OP_DW) igemm_launch_one<OP, TILE, CONV_MATH_BF16, false, P, Q, float>(p, a, st);
    else igemm_launch_one<OP, TILE, CONV_MATH_BF16, false, float, P, Q>(p, a, st);
}

/* The instantiation the plan names: its tile, math and loads, and the stored types. */
template <int OP, int TILE>
void igemm_launch_tile(const conv2d_plan_t &p, const igemm_args &a, cudaStream_t st) {
    typedef __nv_bfloat16 bf;
    const bool first = OP == CONV_OP_DW ? igemm_bf16_a<OP>(a) : igemm_bf16_b<OP>(a);
    const bool second = OP == CONV_OP_DW ? igemm_bf16_b<OP>(a) : igemm_bf16_o<OP>(a);
    if (first || second) {
        if (p.math != CONV_MATH_BF16) {
            fprintf(stderr, "dath: conv implicit GEMM: bf16 storage runs in the bf16 tensor-core kernels "
                    "(precision bf16 on sm_80+), not in %s ones\n", conv2d_math_name(p.math));
            abort();
        }
        if (first && second) igemm_launch_stored<OP, TILE, bf, bf>(p, a, st);
        else if (first) igemm_launch_stored<OP, TILE, bf, float>(p, a, st);
        else igemm_launch_stored<OP, TILE, float, bf>(p, a, st);
        return;
    }
    if (p.math == CONV_MATH_TF32) igemm_launch_one<OP, TILE, CONV_MATH_TF32, true>(p, a, st);
    else if (p.math == CONV_MATH_BF16) igemm_launch_one<OP, TILE, CONV_MATH_BF16, false>(p, a, st);
    else if (p.async) igemm_launch_one<OP, TILE, CONV_MATH_FFMA, true>(p, a, st);
    else igemm_launch_one<OP, TILE, CONV_MATH_FFMA, false>(p, a, st);
}

template <int OP>
void igemm_launch(const conv2d_plan_t &p, const igemm_args &a, cudaStream_t st) {
    if (p.ntiles > 65535 || p.splits > 65535) {
        fprintf(stderr, "dath: conv implicit GEMM: %d×%d×%d tiles exceed the grid's limits\n", p.mtiles,
                p.ntiles, p.splits);
        abort();
    }
    if (p.tile == CONV_TILE_128x128) igemm_launch_tile<OP, CONV_TILE_128x128>(p, a, st);
    else if (p.tile == CONV_TILE_64x128) igemm_launch_tile<OP, CONV_TILE_64x128>(p, a, st);
    else igemm_launch_tile<OP, CONV_TILE_64x64>(p, a, st);
    if (p.splits > 1) {
        if (igemm_bf16_o<OP>(a))
            conv_split_reduce_kernel<OP, __nv_bfloat16><<<grid_1d((size_t)p.M * p.N), BLOCK_1D, 0, st>>>(a);
        else
            conv_split_reduce_kernel<OP, float><<<grid_1d((size_t)p.M * p.N), BLOCK_1D, 0, st>>>(a);
        CUDA_LAUNCH_CHECK();
    }
}

/* The shape's part of the arguments, the plan's, and the divisors. */
igemm_args igemm_args_for(const conv2d_shape *s, const conv2d_plan_t &p, int relu, dath_ctx *ctx) {
    igemm_args a;
    memset(&a, 0, sizeof a);
    a.M = p.M; a.N = p.N; a.K = p.K; a.kt = p.kt; a.kt_split = p.kt_split; a.splits = p.splits;
    a.B = s->B; a.Ci = s->Ci; a.H = s->H; a.W = s->W; a.Co = s->Co; a.Ho = s->Ho; a.Wo = s->Wo;
    a.k = s->k; a.stride = s->stride; a.pad = s->pad;
    a.relu = relu;
    a.in_store = s->in_store;
    a.out_store = s->out_store;
    a.part = p.splits > 1 ? ctx->work : nullptr;
    a.d_co = conv_fdiv_make((uint32_t)s->Co);
    a.d_kk = conv_fdiv_make((uint32_t)(s->k * s->k));
    a.d_k = conv_fdiv_make((uint32_t)s->k);
    a.d_p = conv_fdiv_make((uint32_t)(s->Ho * s->Wo));
    a.d_wo = conv_fdiv_make((uint32_t)s->Wo);
    a.d_hw = conv_fdiv_make((uint32_t)(s->H * s->W));
    a.d_w = conv_fdiv_make((uint32_t)s->W);
    a.d_n = conv_fdiv_make((uint32_t)p.N);
    return a;
}

/* dX's divisors are its phase's. */
void igemm_args_phase(igemm_args *a, const conv2d_phase &ph) {
    a->ph = ph;
    a->d_kk = conv_fdiv_make((uint32_t)(ph.kyn * ph.kxn));
    a->d_k = conv_fdiv_make((uint32_t)ph.kxn);
    a->d_hw = conv_fdiv_make((uint32_t)(ph.hp * ph.wp));
    a->d_w = conv_fdiv_make((uint32_t)ph.wp);
}

void conv_implicit_check(int nw, const conv2d_shape *s, const char *who) {
    if (nw < 1 || nw > CONV_MULTI_MAX) {
        fprintf(stderr, "dath: %s: %d weight sets, outside 1..%d\n", who, nw, CONV_MULTI_MAX);
        abort();
    }
    /* every index in the kernels is a 32-bit int */
    const double in = (double)s->B * s->Ci * s->H * s->W, out = (double)s->B * s->Co * s->Ho * s->Wo;
    const double w = (double)s->Co * s->Ci * s->k * s->k;
    if (in >= 2147483647.0 || out >= 2147483647.0 || w >= 2147483647.0) {
        fprintf(stderr, "dath: %s: a tensor of more than 2^31 elements is beyond the implicit "
                "kernels' 32-bit indices (use --conv im2col)\n", who);
        abort();
    }
}

}  // namespace

extern "C" void conv_implicit_forward(float *const *out, const float *in, const float *const *w,
                                      const float *const *b, int nw, const conv2d_shape *s, int relu,
                                      dath_ctx *ctx) {
    conv_implicit_check(nw, s, "conv_implicit_forward");
    if (s->B <= 0 || s->Co <= 0 || s->Ho * s->Wo <= 0) return;
    const size_t nout = (size_t)s->B * s->Co * s->Ho * s->Wo;   /* an out_j: its room in floats below */
    if (nw > 1 && conv_sets_overlap(out, nw, s->out_store == DATH_STORE_BF16 ? (nout + 1) / 2 : nout, NULL, NULL)) {   /* one at a time */
        for (int j = 0; j < nw; j++) conv_implicit_forward(&out[j], in, &w[j], &b[j], 1, s, relu, ctx);
        return;
    }
    conv2d_plan_t p;
    if (conv2d_plan(&p, CONV_OP_FWD, s, nw, ctx)) return;
    igemm_args a = igemm_args_for(s, p, relu, ctx);
    for (int j = 0; j < nw; j++) {
        a.a[j] = w[j];
        a.o[j] = out[j];
        a.bias[j] = b[j];
    }
    a.x = in;
    igemm_launch<CONV_OP_FWD>(p, a, DATH_STREAM(ctx));
}

extern "C" void conv_implicit_backward(float *din, float *const *dw, float *const *db, float *const *dout,
                                       const float *in, const float *const *w, const float *const *out,
                                       int nw, const conv2d_shape *s, int relu, dath_ctx *ctx) {
    conv_implicit_check(nw, s, "conv_implicit_backward");
    const int P = s->Ho * s->Wo;
    if (s->B <= 0 || s->Co <= 0 || P <= 0) return;
    cudaStream_t st = DATH_STREAM(ctx);
    /* the ReLU mask and the bias gradient, all sets in one launch */
    conv_ptrs4 g, dbp;
    conv_cptrs4 o;
    for (int j = 0; j < CONV_MULTI_MAX; j++) {
        g.p[j] = dout[j < nw ? j : 0];
        dbp.p[j] = db[j < nw ? j : 0];
        o.p[j] = out[j < nw ? j : 0];
    }
    const int S = conv2d_bgrad_slices(s, nw, ctx), nch = nw * s->Co;
    const long long BP = (long long)s->B * P, L = (BP + S - 1) / S;
    double *partial = S > 1 ? (double *)ctx->work : nullptr;   /* free until dW's parts */
    if (s->out_store == DATH_STORE_BF16)   /* dout and the mask */
        conv_mask_bgrad_kernel<__nv_bfloat16><<<nch * S, BLOCK_1D, 0, st>>>(g, o, dbp, partial, s->B, s->Co, P, relu, S, L);
    else
        conv_mask_bgrad_kernel<float><<<nch * S, BLOCK_1D, 0, st>>>(g, o, dbp, partial, s->B, s->Co, P, relu, S, L);
    CUDA_LAUNCH_CHECK();
    if (S > 1) {
        conv_bgrad_sum_kernel<<<ceil_div((size_t)nch, BLOCK_1D), BLOCK_1D, 0, st>>>(dbp, partial, nch, s->Co, S);
        CUDA_LAUNCH_CHECK();
    }

    /* dW: the sets stacked along M, each dw written (conv.cu's caller checked that the
     * sets' dw do not overlap) */
    conv2d_plan_t p;
    if (!conv2d_plan(&p, CONV_OP_DW, s, nw, ctx)) {
        igemm_args a = igemm_args_for(s, p, 0, ctx);
        for (int j = 0; j < nw; j++) {
            a.a[j] = dout[j];
            a.o[j] = dw[j];
        }
        a.x = in;
        igemm_launch<CONV_OP_DW>(p, a, st);
    }
    if (!din) return;
    /* dX: set by set, phase by phase (one at stride 1): set 0 writes din, later sets add;
     * where some phase with pixels has no taps, din is zeroed first and every set adds */
    const int covers = conv2d_dx_covers(s);
    if (!covers)
        CUDA_CHECK(cudaMemsetAsync(din, 0, (size_t)s->B * s->Ci * s->H * s->W * dath_store_size(s->in_store), st));
    for (int j = 0; j < nw; j++)
        for (int iy0 = 0; iy0 < s->stride; iy0++)
            for (int ix0 = 0; ix0 < s->stride; ix0++) {
                conv2d_phase ph;
                conv2d_plan_t p;
                if (conv2d_dx_phase(&ph, s, iy0, ix0) ||
                    conv2d_plan_mnk(&p, CONV_OP_DX, s->Ci, (long long)s->B * ph.hp * ph.wp,
                                    (long long)s->Co * ph.kyn * ph.kxn, ctx))
                    continue;
                igemm_args a = igemm_args_for(s, p, 0, ctx);
                igemm_args_phase(&a, ph);
                a.add = j > 0 || !covers;
                a.mask = s->din_relu ? in : nullptr;
                a.a[0] = w[j];
                a.o[0] = din;
                a.x = dout[j];
                igemm_launch<CONV_OP_DX>(p, a, st);
            }
}
