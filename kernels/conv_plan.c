/* kernels/conv_plan.c — the implicit-GEMM convolutions' plan (contract in conv.h): which
 * block tile, math and K split a convolution's forward, data-gradient and weight-gradient
 * GEMM runs with. Plain C, shared by the launchers (kernels/conv_implicit.cu) and the cost
 * model (host/cost.c), so that what is predicted is what is launched.
 *
 * The tile table. Three block tiles, tried in this order, the first one taken that
 * wastes at most 1/8 of its products on padding (rows past M, columns past N) and gives
 * CONV_TARGET_BLOCKS / 2 blocks with the K split K allows (below); when none does, 64×64
 * (the most blocks):
 *
 *   tile      tensor cores (tf32, bf16)          CUDA cores (fp32, and sm_61/75)
 *   128×128   8 warps 2×4, warp tile 64×32,      256 threads, 8×8 outputs each,
 *             BK 32                              BK 8
 *   64×128    4 warps 1×4, warp tile 64×32       128 threads, 8×8 each, BK 8
 *   64×64     4 warps 2×2, warp tile 32×32       64 threads, 8×8 each, BK 8
 *
 * Why these: 128×128 moves the fewest bytes a product (each tile of A and B is used 128
 * times); DATH's M sizes are 64·nw, 192, 256, 384 (Co, Ci), so 64-row tiles take M = 64
 * and 192 without padding (128 rows would waste half of conv1's single-set rows and a
 * quarter of conv2's); 64×64 is for small problems, where the number of blocks matters
 * more than the bytes (the encoder at batch 1, the paper's Table 5). 8×8 outputs a thread
 * is what an FMA kernel needs to keep the CUDA cores busier than shared memory (one
 * 16-byte load a 4 FMAs); the tensor-core warps keep 8 or 4 accumulator fragments.
 *
 * The K split. With fewer than CONV_TARGET_BLOCKS / 2 blocks from the tiles, K is split
 * into parts (up to CONV_TARGET_BLOCKS blocks, at most CONV_SPLIT_MAX parts, each at least
 * CONV_SPLIT_MIN_K of K), each part's product written to ctx->work and the parts added by
 * one reduction kernel in a fixed order. That is the weight gradient's usual case (M·N is
 * the weights, K the batch's pixels: conv1's dW is 3 tiles without it) and the encoder's
 * at batch 1 (conv3-5: 12-18 tiles); the training forward and data gradient have hundreds
 * of tiles. What DATH gets (B = 128, 224×224; tile, parts, blocks):
 *
 *   layer           forward              dX                  dW
 *   conv1 (2 sets)  128×128, 1, 3025     (none: the image)   128×128, 64, 192
 *   conv2           64×128, 1, 2187      64×128, 1, 729      64×128, 7, 273
 *   conv3           128×128, 1, 507      64×128, 1, 507      128×128, 7, 294
 *   conv4           128×128, 1, 338      128×128, 1, 507     128×128, 5, 270
 *   conv5           128×128, 1, 338      128×128, 1, 338     128×128, 8, 288
 *   batch 1: conv1 64×64, 1, 96; conv2 64×64, 3, 108; conv3 64×64, 3, 54;
 *            conv4 64×64, 6, 72; conv5 64×64, 4, 48 (forward only: the encoder)
 * (checks/test_conv.c asserts this table; the CUDA cores get the same tiles and parts,
 * with their own BK and threads.) */
#include "conv.h"

#include <stddef.h>
#include <stdint.h>

static const int tile_bm[CONV_NTILES] = {128, 64, 64};
static const int tile_bn[CONV_NTILES] = {128, 128, 64};
static const int tile_tc_threads[CONV_NTILES] = {256, 128, 128};

const char *conv2d_tile_name(int tile) {
    static const char *n[CONV_NTILES] = {"128x128", "64x128", "64x64"};
    return tile >= 0 && tile < CONV_NTILES ? n[tile] : "?";
}

const char *conv2d_math_name(int math) {
    return math == CONV_MATH_TF32 ? "tf32" : math == CONV_MATH_BF16 ? "bf16" : "ffma";
}

static long long cdiv(long long a, long long b) { return (a + b - 1) / b; }

int conv2d_dx_phase(conv2d_phase *ph, const conv2d_shape *s, int iy0, int ix0) {
    const int st = s->stride, k = s->k;
    ph->iy0 = iy0;
    ph->ix0 = ix0;
    ph->hp = iy0 < s->H ? (s->H - iy0 + st - 1) / st : 0;
    ph->wp = ix0 < s->W ? (s->W - ix0 + st - 1) / st : 0;
    ph->ry = (iy0 + s->pad) % st;
    ph->rx = (ix0 + s->pad) % st;
    ph->kyn = ph->ry < k ? (k - ph->ry + st - 1) / st : 0;
    ph->kxn = ph->rx < k ? (k - ph->rx + st - 1) / st : 0;
    ph->qy = (iy0 + s->pad - ph->ry) / st;
    ph->qx = (ix0 + s->pad - ph->rx) / st;
    return ph->hp > 0 && ph->wp > 0 && ph->kyn > 0 && ph->kxn > 0 ? 0 : -1;
}

int conv2d_plan(conv2d_plan_t *p, int op, const conv2d_shape *s, int nw, const dath_ctx *ctx) {
    const long long P = (long long)s->Ho * s->Wo, kk = (long long)s->k * s->k;
    if (op == CONV_OP_FWD) return conv2d_plan_mnk(p, op, (long long)nw * s->Co, (long long)s->B * P, (long long)s->Ci * kk, ctx);
    if (op == CONV_OP_DW) return conv2d_plan_mnk(p, op, (long long)nw * s->Co, (long long)s->Ci * kk, (long long)s->B * P, ctx);
    conv2d_phase ph;   /* dX: the plan of phase (0, 0), the whole GEMM at stride 1 */
    if (conv2d_dx_phase(&ph, s, 0, 0)) {
        p->op = op;
        p->M = p->N = p->K = 0;
        return -1;
    }
    return conv2d_plan_mnk(p, op, s->Ci, (long long)s->B * ph.hp * ph.wp, (long long)s->Co * ph.kyn * ph.kxn, ctx);
}

int conv2d_plan_mnk(conv2d_plan_t *p, int op, long long M, long long N, long long K, const dath_ctx *ctx) {
    p->op = op;
    p->M = (int)M;
    p->N = (int)N;
    p->K = (int)K;
    if (M <= 0 || N <= 0 || K <= 0) return -1;

    const int sm = ctx ? ctx->sm : 0, prec = ctx ? ctx->precision : DATH_FP32;
    p->math = sm >= 80 && prec == DATH_TF32 ? CONV_MATH_TF32
            : sm >= 80 && prec == DATH_BF16 ? CONV_MATH_BF16 : CONV_MATH_FFMA;
    p->async = sm >= 80 && p->math != CONV_MATH_BF16;

    /* the most parts K allows */
    long long max_parts = K / CONV_SPLIT_MIN_K;
    if (max_parts > CONV_SPLIT_MAX) max_parts = CONV_SPLIT_MAX;
    if (max_parts < 1) max_parts = 1;
    int tile = CONV_TILE_64x64;
    if (ctx && ctx->conv_tile >= 1 && ctx->conv_tile <= CONV_NTILES) tile = ctx->conv_tile - 1;
    else
        for (int t = 0; t < CONV_NTILES; t++) {
            const long long mt = cdiv(M, tile_bm[t]), nt = cdiv(N, tile_bn[t]);
            const double used = (double)M * N / ((double)mt * tile_bm[t] * nt * tile_bn[t]);
            if (used >= 0.875 && mt * nt * max_parts >= CONV_TARGET_BLOCKS / 2) { tile = t; break; }
        }
    p->tile = tile;
    p->bm = tile_bm[tile];
    p->bn = tile_bn[tile];
    if (p->math == CONV_MATH_FFMA) {
        p->bk = 8;
        p->threads = (p->bm / 8) * (p->bn / 8);
    } else {
        p->bk = 32;
        p->threads = tile_tc_threads[tile];
    }
    p->mtiles = (int)cdiv(M, p->bm);
    p->ntiles = (int)cdiv(N, p->bn);
    p->kt = (int)cdiv(K, p->bk);

    /* the K split */
    const long long blocks = (long long)p->mtiles * p->ntiles;
    long long parts = 1;
    if (ctx && ctx->conv_split >= 1) parts = ctx->conv_split;
    else if (blocks < CONV_TARGET_BLOCKS / 2) {
        parts = cdiv(CONV_TARGET_BLOCKS, blocks);
        if (parts > max_parts) parts = max_parts;
    }
    if (parts > p->kt) parts = p->kt;
    if ((double)M * (double)N >= 2147483647.0) parts = 1;   /* the reduction's 32-bit index */
    if (parts < 1) parts = 1;
    if (parts > 1) {   /* the parts' products must fit in the scratch */
        const size_t have = ctx && ctx->work ? ctx->work_bytes / sizeof(float) : 0;
        const size_t fit = have / ((size_t)M * (size_t)N);
        if ((size_t)parts > fit) parts = (long long)fit;
        if (parts < 2) parts = 1;
    }
    p->kt_split = (int)cdiv(p->kt, parts);
    p->splits = (int)cdiv(p->kt, p->kt_split);   /* no empty part */
    p->part_floats = p->splits > 1 ? (size_t)p->splits * (size_t)M * (size_t)N : 0;
    const int esize = p->math == CONV_MATH_BF16 ? 2 : 4;
    p->smem = (size_t)conv_smem_layout(p->bm, p->bn, p->bk, esize).total;
    return 0;
}

int conv2d_bgrad_slices(const conv2d_shape *s, int nw, const dath_ctx *ctx) {
    const long long ch = (long long)nw * s->Co, n = (long long)s->B * s->Ho * s->Wo;
    if (ch <= 0 || n <= 0) return 1;
    long long S = (CONV_BGRAD_BLOCKS + ch - 1) / ch, most = n / CONV_BGRAD_MIN;
    if (S > most) S = most;
    if (S < 2 || !ctx || !ctx->work || ctx->work_bytes < (size_t)(ch * S) * sizeof(double)) return 1;
    return (int)S;
}

int conv_sets_overlap(float *const *p, int nw, size_t n, int *i, int *j) {
    for (int a = 0; a < nw; a++)
        for (int b = a + 1; b < nw; b++)
            if ((uintptr_t)p[a] < (uintptr_t)(p[b] + n) && (uintptr_t)p[b] < (uintptr_t)(p[a] + n)) {
                if (i) *i = a;
                if (j) *j = b;
                return 1;
            }
    return 0;
}

int conv2d_dx_covers(const conv2d_shape *s) {
    for (int iy0 = 0; iy0 < s->stride; iy0++)
        for (int ix0 = 0; ix0 < s->stride; ix0++) {
            conv2d_phase ph;
            if (conv2d_dx_phase(&ph, s, iy0, ix0) && ph.hp > 0 && ph.wp > 0) return 0;
        }
    return 1;
}

int conv2d_store_bf16(const dath_ctx *ctx) {
    return ctx && ctx->precision == DATH_BF16 && ctx->sm >= 80 && ctx->conv_algo == DATH_CONV_IMPLICIT;
}
