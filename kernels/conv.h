/* kernels/conv.h — 2-D convolution with bias and optional ReLU (AlexNet's features.*).
 *
 * in  [B, Ci, H, W]      w [Co, Ci, k, k] (PyTorch layout)      b [Co]
 * out [B, Co, Ho, Wo]    Ho = (H + 2*pad - k)/stride + 1 (floor), likewise Wo
 * out = relu ? max(0, conv(in, w) + b) : conv(in, w) + b
 *
 * Backward: dout [B,Co,Ho,Wo] is CLOBBERED (on return it holds the gradient before
 * the ReLU when relu is set). `out` is the forward output (its sign is the ReLU mask).
 * dw, db and din are written (=: the layer is their only writer in a step, so the step
 * never zeroes them; an empty batch writes zeros to dw and db); din may be NULL (the
 * image needs no gradient).
 * Scratch: conv2d_work_bytes(s) is the batched im2col size, (Rp + Co)·B·Ho·Wo floats
 * (columns and a channel-major staging buffer for the whole batch; Rp = conv2d_col_rows,
 * Ci·k·k padded) plus, where Rp > Ci·k·k, 2·Co·Rp for the padded weights and their
 * gradient. The CUDA im2col path needs ctx->work of those and at least one image's share
 * of the rest (it chunks the batch to fit); the implicit path (the default) uses ctx->work only for a K split's parts and
 * takes fewer parts, down to none, in a smaller one (conv2d_plan); the CPU reference uses
 * ctx->work when it holds at least one image (chunking the batch to fit), else
 * allocates its own chunk.
 *
 * Several convolutions of one input (DATH's two streams both read the image):
 *   conv2d_forward_multi(out, in, w, b, nw, s, relu, ctx)
 *   conv2d_backward_multi(din, dw, db, dout, in, w, out, nw, s, relu, ctx)
 * do what nw calls of conv2d_forward / conv2d_backward with out[j], w[j], b[j] (and
 * dw[j], db[j], dout[j]) do, j < nw, all with the same shape s and the same `in`; din
 * (when not NULL) is written with the sum of the nw input gradients. out, w, b, dw, db and
 * dout are HOST arrays of nw backend pointers; each dout[j] is clobbered as above.
 * nw runs from 1 to CONV_MULTI_MAX, and the sets' dw (and db) must not overlap, since
 * each is written (a call outside that is a programming error: both versions abort
 * with a message). The im2col of a chunk of images is made once
 * for all nw weight sets; on CUDA the nw products with it are one strided-batched GEMM
 * where the weight (forward) or weight-gradient (backward) pointers are evenly spaced.
 * Scratch: conv2d_work_bytes_multi(s, nw) = (Rp + nw·Co)·B·Ho·Wo floats (one col
 * and nw staging buffers for the whole batch), and 2·nw·Co·Rp where Rp pads; a smaller ctx->work is used in chunks,
 * as above. With nw = 1 these are conv2d_forward / conv2d_backward exactly. The
 * reference's out, dw, db and dout are bit for bit those of nw single calls that take
 * the batch in the same chunks; din differs by rounding (the nw column gradients are
 * summed before one col2im), and the CUDA GEMMs by cuBLAS's order of summation.
 *
 * Storage (the shape's in_store, out_store: DATH_STORE_*, common.h). A tensor's gradient
 * is stored as the tensor: `in` and `din` as in_store says, `out` (the ReLU mask) and
 * `dout` as out_store says; w, b, dw and db are always fp32. bf16 storage rounds what an
 * op stores to bf16 once — the forward's output after bias and ReLU, din after its fp32
 * sum; dout's mask only zeroes, which is exact — and a bf16 input is read as it is; every
 * sum is fp32 (db's double), so dw and db are fp32 sums of the stored values.
 * conv2d_make_shape makes both fp32. The CPU reference and the implicit CUDA path honour
 * both; the im2col path takes fp32 only (it aborts with a message otherwise), and the
 * implicit path takes bf16 only in its bf16 tensor-core kernels (precision bf16 on
 * sm_80+: conv2d_store_bf16).
 *
 * The layer below's ReLU (the shape's din_relu): when in is a ReLU's output and din is its
 * gradient's only writer, din_relu = 1 has the backward write din = 0 where !(in > 0) —
 * in dX's epilogue (implicit), in col2im (im2col), after the sum (the reference) — so the
 * layer below runs its backward with relu = 0: its mask pass reads its dout once, for db,
 * instead of reading dout and out and writing dout back. Bit for bit what that pass did. */
#ifndef DATH_CONV_H
#define DATH_CONV_H

#include "common.h"

typedef struct conv2d_shape {
    int B, Ci, H, W;     /* input */
    int Co, k, stride, pad;
    int Ho, Wo;          /* output, filled by conv2d_make_shape */
    int in_store, out_store;   /* DATH_STORE_* of in and din, of out and dout (above); 0: fp32 */
    int din_relu;        /* 1: the backward writes din masked by in > 0 (above); 0 by make_shape */
} conv2d_shape;

/* 1 when the convolutions on ctx store their bf16-able activations in bf16: precision
 * bf16, the implicit path, sm_80+ (the bf16 tensor-core kernels, which convert a tile on
 * its way to shared memory anyway). host/net.c then stores conv1-4's outputs and the
 * first two max-pools', and their gradients, in bf16 (conv5's output, the attention's
 * input, stays fp32, and so does its gradient). */
int conv2d_store_bf16(const dath_ctx *ctx);

/* Most weight sets one conv2d_*_multi call takes. */
#define CONV_MULTI_MAX 4

/* Fills Ho/Wo. Returns a shape with Ho = Wo = 0 when the input is too small. */
conv2d_shape conv2d_make_shape(int B, int Ci, int H, int W, int Co, int k, int stride, int pad);
size_t conv2d_work_bytes(const conv2d_shape *s);
size_t conv2d_work_bytes_multi(const conv2d_shape *s, int nw);

/* The im2col path's column rows Rp: R = Ci·k·k rounded up to a multiple of CONV_COL_ALIGN,
 * so that the GEMMs' K (forward: Rp) and the weights' leading dimension are whole 32-byte
 * groups, as cuBLAS's tensor-core kernels want at tf32 and bf16 (conv1's R = 363 → 368;
 * conv2-5's are multiples of 8 already). Where Rp > R the CUDA im2col path writes zero rows
 * below col's R, copies each weight set into a zero-padded [Co, Rp] in the scratch (the
 * parameter buffer keeps [Co, R]), computes dw there and copies it back without the
 * padding (whose gradient is dropped). The CPU reference does not pad. */
#define CONV_COL_ALIGN 8
static inline int conv2d_col_rows(const conv2d_shape *s) {
    const int R = s->Ci * s->k * s->k;
    return (R + CONV_COL_ALIGN - 1) / CONV_COL_ALIGN * CONV_COL_ALIGN;
}
/* Floats of the scratch's fixed part where Rp pads: nw padded weight sets and their
 * gradients, 2·nw·Co·Rp (else 0); the chunks' col and stages come after it. */
static inline size_t conv2d_pad_floats(const conv2d_shape *s, int nw) {
    const int Rp = conv2d_col_rows(s);
    return Rp > s->Ci * s->k * s->k ? 2 * (size_t)nw * s->Co * Rp : 0;
}

typedef void conv2d_forward_fn(float *out, const float *in, const float *w, const float *b,
                               const conv2d_shape *s, int relu, dath_ctx *ctx);
typedef void conv2d_backward_fn(float *din, float *dw, float *db, float *dout,
                                const float *in, const float *w, const float *out,
                                const conv2d_shape *s, int relu, dath_ctx *ctx);
typedef void conv2d_forward_multi_fn(float *const *out, const float *in, const float *const *w,
                                     const float *const *b, int nw, const conv2d_shape *s,
                                     int relu, dath_ctx *ctx);
typedef void conv2d_backward_multi_fn(float *din, float *const *dw, float *const *db,
                                      float *const *dout, const float *in,
                                      const float *const *w, const float *const *out, int nw,
                                      const conv2d_shape *s, int relu, dath_ctx *ctx);

/* ---- the CUDA paths -------------------------------------------------------------------
 *
 * ctx->conv_algo chooses what the _cuda launchers run (kernels/conv.cu):
 *   DATH_CONV_IMPLICIT (the default)  implicit-GEMM kernels, kernels/conv_implicit.cu:
 *       no column buffer; the patches are gathered from the tensors straight into shared
 *       memory, tile by tile (cp.async on sm_80+, double-buffered), bias and ReLU in the
 *       forward's epilogue, din stored (set 0) or added to in the data gradient's epilogue;
 *   DATH_CONV_IM2COL  the column buffer and cuBLAS (the first CUDA path; kept, checked and
 *       timed beside the implicit one: checks/test_conv_cuda.c, bench/bench_gpu_kernels.c).
 * Both honour this header's contract bit for bit where it says so (dout's mask, dw, db
 * and din written, not added to) and agree with the reference within the tolerances of
 * checks/gemm_error.h.
 *
 * Layout. Activations stay NCHW ([B, C, H, W]) everywhere, also inside the trunk. Why:
 *  - every other op (pooling, attention, the fc layers' flatten, the transform), the CPU
 *    reference, the step dumps and the PyTorch comparison are NCHW: channels-last inside
 *    the trunk needs a conversion pass at each end and two layouts in every check;
 *  - the implicit GEMMs' N dimension is the pixels (B·Ho·Wo for the forward, B·H·W for
 *    the data gradient) and their K dimension for the weight gradient is the pixels too:
 *    in NCHW a tile's pixels are consecutive addresses (a row segment of one channel), so
 *    the gathers of the input (stride 1 layers) and the output's stores are coalesced
 *    along the warp, and the weights [Co, Ci·k·k] are already the A operand of the
 *    forward with K contiguous; NHWC would make K (channels) contiguous instead, which
 *    pays for 16-byte vector loads of the gathered operand when Ci is a multiple of 4 —
 *    not conv1 (Ci = 3), and not worth the conversions at DATH's sizes, where the
 *    gathers run from L2 (each input element is read by k² windows);
 *  - what it costs: 4-byte (not 16-byte) asynchronous copies, one per element, with
 *    their index arithmetic (kernels/conv_implicit.cu keeps it to table look-ups and
 *    adds: no division in the main loop).
 *
 * The three GEMMs (nw weight sets; P = Ho·Wo, kk = k·k; K orders as the weights store it):
 *   forward  C [nw·Co, B·P]   = W [nw·Co, Ci·kk] · X̂ [Ci·kk, B·P]       X̂: patches of in
 *            epilogue: out = relu(C + b) (the sets stacked along M share the patch tiles)
 *   dX       C [Ci, B·H·W]    = W̃ [Ci, Co·kk] · D̂ [Co·kk, B·H·W]        per set: set 0
 *            writes din, later ones add (when a phase without taps has pixels —
 *            k < stride, conv2d_dx_covers — din is zeroed first and every set adds)
 *            D̂[(co,ky,kx), (b,y,x)] = dout[b, co, (y+pad−ky)/s, (x+pad−kx)/s] when that is
 *            an output position (else 0): the transposed convolution, no col2im; at
 *            stride s > 1 in s² phases (conv2d_dx_phase) so that no tap is a known zero
 *   dW       C [nw·Co, Ci·kk] = Dout [nw·Co, B·P] · X̂ᵀ [B·P, Ci·kk]      =  dw
 *            K = B·P is split into parts (each a range of images' pixels), each part's
 *            product written to ctx->work, the parts summed in a fixed order by one
 *            reduction kernel (no atomics): deterministic.
 *   db and the ReLU mask: one pass (conv_mask_bgrad_kernel) before the GEMMs: dout is
 *            masked in place as the contract says, and db = Σ dout in double, fixed order.
 * With the shape's din_relu the data gradient's epilogue applies the lower layer's ReLU
 * (din = 0 where !(in > 0), reading in at each output; with a K split the reduction
 * does), so that layer's mask pass only sums db (host/net.c: conv4's and conv5's dX).
 *
 * Tiles (conv2d_plan below, kernels/conv_plan.c): one of three block tiles BM × BN, by
 * shape, with a K split when the tiles alone give too few blocks; the math by precision
 * and device: tf32 / bf16 on sm_80+ run the tensor cores (WMMA, fp32 accumulation), fp32
 * (and anything below sm_80) fused multiply-adds on the CUDA cores. ctx->work holds the
 * split products; the plan takes fewer parts when it is too small (one part needs none). */

/* The GEMM of a convolution pass. */
enum { CONV_OP_FWD = 0, CONV_OP_DX = 1, CONV_OP_DW = 2 };
/* How its products are computed. */
enum { CONV_MATH_FFMA = 0, CONV_MATH_TF32 = 1, CONV_MATH_BF16 = 2 };
/* The block tiles (BM × BN); BK, threads and warps depend on the math: conv2d_plan. */
enum { CONV_TILE_128x128 = 0, CONV_TILE_64x128 = 1, CONV_TILE_64x64 = 2, CONV_NTILES = 3 };

/* The most parts a K split takes, the fewest K elements a part gets, and the blocks the
 * table aims for (about two waves of 132 SMs at one block each, or one at two). */
#define CONV_SPLIT_MAX 64
#define CONV_SPLIT_MIN_K 512
#define CONV_TARGET_BLOCKS 256

/* What the implicit launchers run for one GEMM (filled by conv2d_plan). */
typedef struct conv2d_plan_t {
    int op, math, tile;
    int async;           /* cp.async loads (sm_80+, not bf16 from fp32 storage) or loads
                            through registers */
    int bm, bn, bk, threads;
    int M, N, K;         /* the GEMM (M stacks the nw sets for the forward and dW) */
    int mtiles, ntiles, kt;   /* tiles along M, N, K */
    int splits, kt_split;     /* K in `splits` parts of kt_split tiles (the last may be short) */
    size_t part_floats;  /* ctx->work the parts take: splits·M·N when splits > 1, else 0 */
    size_t smem;         /* dynamic shared memory of a block, bytes */
} conv2d_plan_t;

/* The plan of GEMM `op` for nw sets of shape s on ctx (its precision, sm, work_bytes,
 * conv_tile, conv_split); for dX, of its phase (0, 0) (below; at stride 1 the whole
 * GEMM). conv2d_plan_mnk: the same for an M × N × K GEMM of op. Return 0, or -1 for an
 * empty problem (nothing to launch). */
int conv2d_plan(conv2d_plan_t *p, int op, const conv2d_shape *s, int nw, const dath_ctx *ctx);
int conv2d_plan_mnk(conv2d_plan_t *p, int op, long long M, long long N, long long K, const dath_ctx *ctx);

/* The implicit path's ReLU-mask and bias-gradient pass (conv_mask_bgrad_kernel): each of
 * the nw·Co channels' B·Ho·Wo elements in this many slices, one block a slice, so that
 * the pass has about CONV_BGRAD_BLOCKS blocks (several per multiprocessor on any GPU dath
 * runs on) however few channels a layer has; each slice at least CONV_BGRAD_MIN elements;
 * 1 (one block a channel, db written directly) when ctx->work cannot hold the nw·Co·S
 * double partials that a second kernel sums in slice order. It depends on the shape and
 * ctx->work_bytes only, so db is the same bits on every run and every GPU. */
#define CONV_BGRAD_BLOCKS 1024
#define CONV_BGRAD_MIN 2048
int conv2d_bgrad_slices(const conv2d_shape *s, int nw, const dath_ctx *ctx);

/* 1, with the pair in *i < *j, when two of the nw ranges [p[k], p[k] + n) overlap (the
 * weight sets' outputs or gradients must not: each set's are written), else 0. Both
 * paths' checks (kernels/conv.c, conv.cu, conv_implicit.cu) call it. */
int conv_sets_overlap(float *const *p, int nw, size_t n, int *i, int *j);

/* 1 when every dX phase (conv2d_dx_phase) that has pixels has taps, so that the phases'
 * GEMMs together write every element of din (k ≥ stride; DATH's convolutions); else 0. */
int conv2d_dx_covers(const conv2d_shape *s);

/* The data gradient of a strided convolution in stride² phases: input pixels (iy, ix)
 * with iy ≡ iy0, ix ≡ ix0 (mod stride), iy0, ix0 < stride, take only the taps ky ≡ ry,
 * kx ≡ rx (mod stride), ry = (iy0 + pad) mod stride, and with iy = iy0 + stride·j,
 * ky = ry + stride·t the output row is oy = qy + j − t: per phase a stride-1 correlation
 * on a hp × wp grid with kyn × kxn taps, no tap that is always zero (at stride 1, one
 * phase: the whole dX). Phase (iy0, ix0) of s: 0, or -1 when it is empty (no pixel or
 * no tap: din gets nothing there). */
typedef struct conv2d_phase { int iy0, ix0, hp, wp, ry, rx, kyn, kxn, qy, qx; } conv2d_phase;
int conv2d_dx_phase(conv2d_phase *ph, const conv2d_shape *s, int iy0, int ix0);
const char *conv2d_tile_name(int tile);   /* "128x128", "64x128", "64x64" */
const char *conv2d_math_name(int math);   /* "ffma", "tf32", "bf16" */

/* Shared memory of a block: two stages of the A tile [BK][BM + pad] and the B tile
 * [BK][BN + pad] (k-major; pad: 16 bytes), then the index tables: ktab [2][BK] int4 (a
 * tile's K-side offsets, two tiles ahead), rowa [BM] pointers (the A rows), rowo [BM]
 * pointers (the output rows), bias [BM] floats, colo [BN] ints (the output columns),
 * ntab [BN] int4 (the N side of the B gather). Byte offsets, the total in whole 128-byte
 * lines; the tensor-core epilogue reuses the stages (16×20 floats a warp). One
 * definition for the plan and the kernels. */
typedef struct conv_smem_t { int a, b, ktab, rowa, rowo, bias, colo, ntab, total; } conv_smem_t;
DATH_HD conv_smem_t conv_smem_layout(int bm, int bn, int bk, int esize) {
    conv_smem_t l;
    const int pad = 16 / esize, stage_a = bk * (bm + pad) * esize, stage_b = bk * (bn + pad) * esize;
    l.a = 0;
    l.b = 2 * stage_a;
    l.ktab = (l.b + 2 * stage_b + 15) / 16 * 16;
    l.rowa = l.ktab + 2 * bk * 16;
    l.rowo = l.rowa + bm * 8;
    l.bias = l.rowo + bm * 8;
    l.colo = l.bias + bm * 4;
    l.ntab = (l.colo + bn * 4 + 15) / 16 * 16;
    l.total = (l.ntab + bn * 16 + 127) / 128 * 128;   /* whole 128-byte lines */
    return l;
}

/* Division by an invariant d (1 ≤ d < 2^31) of n < 2^31 with a multiply-high and a shift
 * (no division instruction in the kernels' loops): mul = ⌈2^(31+l)/d⌉, l = ⌈log2 d⌉,
 * q = ⌊n·mul / 2^(31+l)⌋ is exact because mul·d − 2^(31+l) < d ≤ 2^l and n < 2^31.
 * Checked against / over ranges of d and n in checks/test_conv.c. */
typedef struct conv_fdiv { uint32_t d, mul, shift; } conv_fdiv;
DATH_HD conv_fdiv conv_fdiv_make(uint32_t d) {
    conv_fdiv f;
    f.d = d;
    f.mul = 0;
    f.shift = 0;
    if (d > 1) {
        uint32_t l = 0;
        while (((uint64_t)1 << l) < d) l++;
        f.mul = (uint32_t)((((uint64_t)1 << (31 + l)) + d - 1) / d);
        f.shift = l - 1;
    }
    return f;
}
DATH_HD uint32_t conv_fdiv_q(conv_fdiv f, uint32_t n) {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(n, f.mul);
#else
    const uint32_t hi = (uint32_t)(((uint64_t)n * f.mul) >> 32);
#endif
    return f.d == 1 ? n : hi >> f.shift;
}

conv2d_forward_fn conv2d_forward_cpu;
conv2d_backward_fn conv2d_backward_cpu;
conv2d_forward_multi_fn conv2d_forward_multi_cpu;
conv2d_backward_multi_fn conv2d_backward_multi_cpu;
#ifdef DATH_CUDA
conv2d_forward_fn conv2d_forward_cuda;
conv2d_backward_fn conv2d_backward_cuda;
conv2d_forward_multi_fn conv2d_forward_multi_cuda;
conv2d_backward_multi_fn conv2d_backward_multi_cuda;
/* The implicit-GEMM path behind them (kernels/conv_implicit.cu), for nw sets; the _cuda
 * launchers call these unless ctx->conv_algo is DATH_CONV_IM2COL. They need ctx->work only
 * for a K split's parts (conv2d_plan's part_floats; the plan takes fewer parts, down to
 * none, when ctx->work is smaller). */
conv2d_forward_multi_fn conv_implicit_forward;
conv2d_backward_multi_fn conv_implicit_backward;
#endif

#endif
