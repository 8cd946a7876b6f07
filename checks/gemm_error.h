/* checks/gemm_error.h — how far a CUDA op whose GEMMs run at TF32 or BF16 may be from
 * the fp32 reference: a running error analysis, element by element, that
 * checks/cuda_check.h's families add to their fp32 tolerances (--precision tf32|bf16).
 *
 * The model of one GEMM output y = Σ_k t_k (t_k = a_k·b_k, K terms), on the tensor cores:
 *
 *  1. Conversion. Each operand is cut to the compute type's significand: tf32 keeps 10
 *     explicit bits (unit roundoff u = 2^-11), bf16 7 (u = 2^-8). Rounded to nearest
 *     (RN or RNA), a product is off by a relative δ = ε_a + ε_b, |ε| ≤ u, zero-mean,
 *     std ≈ 0.6u for log-uniform significands; GE_SIGMA = 0.82u per product is used.
 *     The terms' errors are independent: y is off by σ = GE_SIGMA·T2 with
 *     T2 = √(Σ_k t_k²), and the tolerance takes GE_NSIGMA = 6 of them (max of 10^7
 *     Gaussian draws is 5.3σ, and σ is over-estimated by 1.37).
 *     Truncated instead (a kernel that feeds raw fp32 to the tensor cores, which read
 *     only the high bits), each operand shrinks by β ∈ [0, 2u), mean 0.72u: y shrinks by
 *     a common factor ρ ≤ GE_SHRINK = 2u (1.44u expected), plus a random part inside σ.
 *     Which one cuBLAS does is not documented; both are allowed.
 *  2. Accumulation. The exact products are summed by block FMAs of bk products (sm_90:
 *     8 tf32, 16 bf16; sm_80/86/89: 4, 8), each aligning the running fp32 sum and its
 *     products to their largest exponent with x extra bits (sm_90: 2; sm_80: 1),
 *     truncating what falls below, and truncating the block's sum to fp32 (Fasi,
 *     Higham, Mikaitis, Pranesh 2021; Khattak, Mikaitis 2025). Per block that loses at
 *     most 1 ulp of the running sum S plus (bk+1)·2^-(23+x) of its largest term, on
 *     average ≤ 0.72·(1 + bk/2^x)·2^-24·|S|, toward zero. A chain of nb = ⌈K/bk⌉ blocks
 *     whose partial sums average ≤ (|y| + T2)/2 so loses ≤ GE_ACC·2^-24·nb·(|y| + T2),
 *     GE_ACC = 1 + bk/2^x: 2.7 times the mean of a sum that grows steadily, 7 times that
 *     of one that wanders. (cuBLAS may split K over several chains, summed at the end:
 *     one chain, as here and in emu, is the worst case.)
 *  3. Later stages. An op chains GEMMs and element-wise steps (the attention's softmax),
 *     and an error that enters one tensor reaches later ones along several paths, so
 *     what matters is which errors share a source: one rounded weight enters every output
 *     of its row, one rounded x every output of its column, and a later GEMM that sums
 *     along such a row adds those errors linearly, while it adds independent ones in
 *     quadrature (taking them all as independent under-estimates PAM's o 5×, as √N
 *     predicts; taking them all as correlated lets a missing term pass in PAM's backward
 *     at bf16). So each tensor carries a band of std bounds per element, by where its
 *     error's sources are shared: e (by no other element), r (along its stored row), c
 *     (along its stored column), g (anywhere), plus ab (a bound on the systematic rest:
 *     accumulation, propagated shrinks) and rel (a common shrink ρ ∈ [0, rel] of the
 *     values). A GEMM sums e in quadrature, the class shared along its summed index
 *     linearly, the class shared across it in quadrature (and the result is shared by
 *     everything: g); its own conversion errors are shared along the output's row (those
 *     of op(X)) and column (those of op(W)). The two operands may share sources (q and k
 *     both come from x), so what they bring is added linearly, as are the classes when a
 *     tolerance is formed. Images are independent: sums over the batch add in quadrature
 *     (none of the bands summed so comes from a weight). The softmax turns its input's
 *     errors δE into A⊙(δE − Σ A δE), whose row sum is zero: a GEMM that sums along a
 *     softmax row takes that exactly (band_softmax_gemm). Its own rounding is fp32's.
 *
 * The tolerance of element i is then the fp32 one plus GE_NSIGMA·(e+r+c+g)_i + ab_i + rel·|ref_i|.
 * With --precision fp32 nothing here is used (u = 0). All sums are in double (OpenBLAS's
 * dgemm and OpenMP loops); the bands cost a few reference-sized GEMMs per op.
 *
 * Margins at DATH's real shapes (checks/cuda_kernels --full, for an H200), by term:
 *  - conversion: 6σ with σ taken 1.37 times the typical std is 8.2 true σ; the largest
 *    tensors have 25 M elements (conv1's out), whose largest error is ~5.6σ: 0.68 of
 *    the tolerance expected, 0.60-0.63 seen on the emulator at that shape (tf32 and
 *    bf16, operands rounded or truncated): margin 1.6. At the small shapes of make test
 *    (10^3-10^5 elements) it is 0.4-0.55.
 *  - accumulation: GE_ACC is >= 2.7 times the mean loss of a steadily growing sum and 7
 *    times that of a wandering one, over one chain of all K terms, the longest cuBLAS
 *    could run (split-K only shortens it). conv1's weight gradient (K = 387,200: 48,400
 *    blocks at tf32) used 0.15 of its tolerance on the emulator at that shape, 0.28 at
 *    bf16. On sm_80 ge_init takes A100's blocks (4/8 products, 1 extra bit): twice the
 *    blocks, the same GE_ACC.
 *  - truncated operands: 3u a conversion against 1.44u expected (2u at worst): 2.1.
 *  - the attention chains: their bands are upper bounds (correlations taken linearly
 *    where not known independent); at the full shapes on the emulator PAM and CAM used
 *    at most 0.45 (PAM's dwv at bf16 with truncated operands), the forward's q, k, v
 *    0.43, the rest 0.02-0.32.
 * (Not run at full on the emulator: conv2-5, conv_multi, fc7 and the heads, whose K
 * and element counts are within those above.) */
#ifndef DATH_GEMM_ERROR_H
#define DATH_GEMM_ERROR_H

#include <cblas.h>
#undef I   /* OpenBLAS's cblas.h includes <complex.h>, whose I would clash with dimension names */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GE_SIGMA 0.82    /* std of one product's conversion error, in u */
#define GE_SIGMA1 0.58   /* ... of the part from one operand (GE_SIGMA/√2) */
#define GE_NSIGMA 6.0    /* standard deviations in the tolerance */
#define GE_SHRINK 3.0    /* the common shrink allowed when the conversion truncates, in u */
#define GE_ULP32 (1.0 / 16777216.0)   /* 2^-24 */

typedef struct ge_model {
    const char *name;   /* fp32, tf32, bf16 */
    double u;           /* unit roundoff of the converted operands; 0: fp32, nothing added */
    int bk;             /* products per block FMA */
    int extra;          /* alignment bits kept below fp32's 24 */
    double acc;         /* GE_ACC = 1 + bk/2^extra */
    double shrink;      /* GE_SHRINK·u when the conversion may truncate, else 0 */
    int virt;           /* set around a virtual stage: propagation only (see below) */
} ge_model;
static ge_model GE = {"fp32", 0.0, 1, 0, 0.0, 0.0, 0};

/* GE for a precision (0 fp32, 1 tf32, 2 bf16: DATH_FP32/TF32/BF16) on a device of compute
 * capability major (sm_90 and newer: Hopper's blocks; older: Ampere's); truncates: the
 * conversion may truncate (not seen to round to nearest). */
static void ge_init(int precision, int major, int truncates) {
    const int hopper = major >= 9;
    GE.name = precision == 1 ? "tf32" : precision == 2 ? "bf16" : "fp32";
    GE.u = precision == 1 ? ldexp(1.0, -11) : precision == 2 ? ldexp(1.0, -8) : 0.0;
    GE.bk = precision == 2 ? (hopper ? 16 : 8) : (hopper ? 8 : 4);
    GE.extra = hopper ? 2 : 1;
    GE.acc = 1.0 + GE.bk / (double)(1 << GE.extra);
    GE.shrink = truncates ? GE_SHRINK * GE.u : 0.0;
}

/* The accumulation bound of one chain of K terms summing to |y| with T2 = √Σt². */
static double ge_acc(long long K, double y, double t2) {
    if (GE.virt) return 0.0;
    const double nb = (double)((K + GE.bk - 1) / GE.bk);
    return GE.acc * GE_ULP32 * nb * (fabs(y) + t2);
}

/* A virtual stage (GE.virt = 1 around band_gemm / band_softmax_gemm) propagates its
 * operands' bands through a product the CUDA side never forms, to use an association
 * that shows a cancellation: e.g. PAM's dwk = Σ dk·xᵀ with dk = q·de, where every error
 * de brings sums to 0 along de's rows, so Σ_j δde_ij x_j cancels x's mean (a sum along a
 * softmax row: band_softmax_gemm takes it exactly); its error is q·(δde·xᵀ). A virtual
 * stage adds no conversion, accumulation or shrink of its own. */

/* ---- bands ----------------------------------------------------------------------------- */

typedef struct band {
    size_t n;
    double *e, *r, *c, *g;   /* [n] std bounds: sources shared by no other element, along
                                the stored row, along the stored column, anywhere */
    double *ab;              /* [n] bound on the systematic part */
    double rel;              /* the values may be shrunk by a common ρ ∈ [0, rel] */
} band;

static double *ge_dalloc(size_t n) {
    double *p = calloc(n + 1, sizeof(double));
    if (!p) { fprintf(stderr, "FAIL: out of host memory (%zu doubles)\n", n); exit(1); }
    return p;
}

static band band_new(size_t n) {
    band b = {n, ge_dalloc(n), ge_dalloc(n), ge_dalloc(n), ge_dalloc(n), ge_dalloc(n), 0.0};
    return b;
}
static void band_free(band *b) {
    free(b->e); free(b->r); free(b->c); free(b->g); free(b->ab);
    b->e = b->r = b->c = b->g = b->ab = NULL;
}

/* The extra tolerance of element i. */
static double band_tol(const band *b, size_t i, double ref) {
    return GE_NSIGMA * (b->e[i] + b->r[i] + b->c[i] + b->g[i]) + b->ab[i] + b->rel * fabs(ref);
}

/* Band of one GEMM's outputs from its per-element T2² (t2sq: the same op on squared
 * operands) and its products y (the op without bias and ReLU; y = ref − init for an
 * accumulated output): K terms per element, in `chains` chains summed in fp32. For a
 * tensor nothing later consumes (the class does not matter): e holds it all. */
static void band_terms(band *b, const float *t2sq, const float *y, long long K, double chains) {
    for (size_t i = 0; i < b->n; i++) {
        const double t2 = sqrt(fmax(0.0, (double)t2sq[i])), yy = fabs((double)y[i]);
        b->e[i] = GE_SIGMA * GE.u * t2;
        b->ab[i] = GE.shrink * yy + chains * ge_acc(K, yy, t2);
    }
    b->rel = 0.0;
}

/* ---- one GEMM stage -------------------------------------------------------------------- */

/* dst [rows, cols] (dense, double) ← f(op(X)) where op(X)[r][k] = X[ta ? k·ld + r : r·ld + k]
 * and f: 0 value, 1 square, 2 |value|, 3 e², 4 the class shared along op's rows (stored r,
 * or c when transposed), 5 the square of the class shared along op's columns, 6 g, 7 ab,
 * 8 the class shared along op's columns, 9 the square of the one along op's rows. */
static void ge_gather(double *dst, const float *X, const band *bX, size_t off, bool ta, int rows,
                      int cols, int ld, int f) {
    const double *along_row = bX ? (ta ? bX->c : bX->r) : NULL;
    const double *along_col = bX ? (ta ? bX->r : bX->c) : NULL;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const size_t i = off + (ta ? (size_t)c * ld + r : (size_t)r * ld + c);
            double v;
            switch (f) {
            case 0: v = X[i]; break;
            case 1: v = (double)X[i] * X[i]; break;
            case 2: v = fabs((double)X[i]); break;
            case 3: v = bX->e[i] * bX->e[i]; break;
            case 4: v = along_row[i]; break;
            case 5: v = along_col[i] * along_col[i]; break;
            case 6: v = bX->g[i]; break;
            case 7: v = bX->ab[i]; break;
            case 8: v = along_col[i]; break;
            default: v = along_row[i] * along_row[i]; break;
            }
            dst[(size_t)r * cols + c] = v;
        }
}

static void ge_mm(double *C, const double *A, const double *B, int M, int N, int K) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0, A, K, B, N, 0.0, C, N);
}

/* The band of C = op(X)·op(W) as gemm_rm_batched computes it (row-major; product i of the
 * batch at X + i·sX, W + i·sW, C + i·sC), from the values X, W that the CUDA side
 * multiplies and their bands (NULL: exact), indexed like X and W. accumulate: C += the
 * product (beta = 1), the new errors added to out's (linearly: they may share sources);
 * with sC = 0 the products of the whole batch are summed into one C (one GEMM over
 * K·batch terms; images add in quadrature). For the sum over k:
 *   from op(X) [M,K]: e in quadrature and the class along op's rows (the same source for
 *   every k) linearly → C's r; the class along op's columns in quadrature, g linearly → g;
 *   from op(W) [K,N]: e in quadrature and the class along op's columns linearly → C's c;
 *   the class along op's rows in quadrature, g linearly → g;
 *   own conversions: op(X)'s → r, op(W)'s → c (GE_SIGMA1·u·T2 each). */
static void band_gemm(band *out, int accumulate, bool ta, bool tb, int M, int N, int K,
                      const float *X, int ldx, long long sX, const band *bX,
                      const float *W, int ldw, long long sW, const band *bW,
                      int ldc, long long sC, int batch) {
    enum { XV, X2, XA, XE2, XROW, XCOL2, XG, XB, WV, W2, WA, WE2, WCOL, WROW2, WG, WB, NOP };
    const size_t mk = (size_t)M * K, kn = (size_t)K * N, mn = (size_t)M * N;
    double *op[NOP];
    for (int t = 0; t < NOP; t++) op[t] = ge_dalloc(t < WV ? mk : kn);
    enum { Y, T2, RR, RL, GR1, GL1, CR, CL, GR2, GL2, AB, TMP, NRES };
    double *res[NRES];
    for (int t = 0; t < NRES; t++) res[t] = ge_dalloc(mn);
    const int sum = sC == 0 && batch > 1;   /* one C for the whole batch */
    double *sr = sum ? ge_dalloc(mn) : NULL, *sc = sum ? ge_dalloc(mn) : NULL;
    double *sg = sum ? ge_dalloc(mn) : NULL, *sy = sum ? ge_dalloc(mn) : NULL;
    double *st2 = sum ? ge_dalloc(mn) : NULL;
    const double shrink = (bX ? bX->rel : 0.0) + (bW ? bW->rel : 0.0) + (GE.virt ? 0.0 : GE.shrink);
    const double own2 = GE.virt ? 0.0 : GE_SIGMA1 * GE.u * GE_SIGMA1 * GE.u;
    static const int xf[8] = {0, 1, 2, 3, 4, 5, 6, 7}, wf[8] = {0, 1, 2, 3, 8, 9, 6, 7};
    for (int i = 0; i < batch; i++) {
        if (i == 0 || sX)
            for (int t = 0; t < (bX ? 8 : 3); t++)
                ge_gather(op[XV + t], X, bX, (size_t)i * sX, ta, M, K, ldx, xf[t]);
        if (i == 0 || sW)
            for (int t = 0; t < (bW ? 8 : 3); t++)
                ge_gather(op[WV + t], W, bW, (size_t)i * sW, tb, K, N, ldw, wf[t]);
        ge_mm(res[Y], op[XV], op[WV], M, N, K);
        ge_mm(res[T2], op[X2], op[W2], M, N, K);
        for (int t = RR; t <= AB; t++) memset(res[t], 0, mn * sizeof(double));
        if (bX) {
            ge_mm(res[RR], op[XE2], op[W2], M, N, K);
            ge_mm(res[RL], op[XROW], op[WA], M, N, K);
            ge_mm(res[GR1], op[XCOL2], op[W2], M, N, K);
            ge_mm(res[GL1], op[XG], op[WA], M, N, K);
            ge_mm(res[TMP], op[XB], op[WA], M, N, K);
            for (size_t e = 0; e < mn; e++) res[AB][e] += res[TMP][e];
        }
        if (bW) {
            ge_mm(res[CR], op[X2], op[WE2], M, N, K);
            ge_mm(res[CL], op[XA], op[WCOL], M, N, K);
            ge_mm(res[GR2], op[X2], op[WROW2], M, N, K);
            ge_mm(res[GL2], op[XA], op[WG], M, N, K);
            ge_mm(res[TMP], op[XA], op[WB], M, N, K);
            for (size_t e = 0; e < mn; e++) res[AB][e] += res[TMP][e];
        }
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) {
                const size_t e = (size_t)r * N + c, o = (size_t)i * sC + (size_t)r * ldc + c;
                const double y = res[Y][e], t2 = res[T2][e];
                const double br = sqrt(own2 * t2 + res[RR][e] + res[RL][e] * res[RL][e]);
                const double bc = sqrt(own2 * t2 + res[CR][e] + res[CL][e] * res[CL][e]);
                const double bg = sqrt(res[GR1][e]) + res[GL1][e] + sqrt(res[GR2][e]) + res[GL2][e];
                if (sum) {   /* images independent: in quadrature across the batch */
                    sr[e] += br * br; sc[e] += bc * bc; sg[e] += bg * bg;
                    sy[e] += y; st2[e] += t2;
                    out->ab[o] += res[AB][e];
                } else if (accumulate) {
                    out->r[o] += br; out->c[o] += bc; out->g[o] += bg;
                    out->ab[o] += res[AB][e] + ge_acc(K, y, sqrt(t2)) + shrink * fabs(y);
                } else {
                    out->e[o] = 0.0; out->r[o] = br; out->c[o] = bc; out->g[o] = bg;
                    out->ab[o] = res[AB][e] + ge_acc(K, y, sqrt(t2));
                }
            }
    }
    if (sum)   /* one chain of K·batch terms, one shrink of the whole sum */
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) {
                const size_t e = (size_t)r * N + c, o = (size_t)r * ldc + c;
                out->r[o] += sqrt(sr[e]); out->c[o] += sqrt(sc[e]); out->g[o] += sqrt(sg[e]);
                out->ab[o] += ge_acc((long long)K * batch, sy[e], sqrt(st2[e])) +
                              shrink * fabs(sy[e]);
            }
    if (!accumulate && !sum) out->rel = shrink;
    for (int t = 0; t < NOP; t++) free(op[t]);
    for (int t = 0; t < NRES; t++) free(res[t]);
    free(sr); free(sc); free(sg); free(sy); free(st2);
}

/* ---- the softmax and the GEMM that sums along its rows ----------------------------------- */

/* The band of S = A⊙(δP − Σ_l A_l δP_l) row by row (rows of L, stored [R][L]): the
 * softmax's sensitivity to errors δP of its input P (fwd: P = E, S = δA; bwd: P = dA, S =
 * dE = A⊙(dA − Σ A dA)). Per element j of a row: P's own error e_j → A_j(1 − A_j)e_j (e)
 * and, through the row's weighted mean, A_j·√(Σ_{l≠j} A_l² e_l²) shared along the row (r);
 * P's r → linearly (r); P's c (one source per column) → A_j(1 − A_j)c_j (c) and
 * A_j·√(Σ_{l≠j} A_l² c_l²) (g); P's g → linearly (g). fwd: a common shrink ρ of E moves
 * A by ρA⊙(E − Ē), Ē = Σ_l A_l E_l (a bound, into ab); bwd: S is linear in dA, so a
 * shrink of dA shrinks dE alike. */
static void band_softmax(band *bS, const float *A, const float *E, const band *bP, size_t R,
                         int L, int fwd) {
    for (size_t row = 0; row < R; row++) {
        const size_t o = row * L;
        const float *a = A + o;
        double ebar = 0.0, se2 = 0.0, sr = 0.0, sc2 = 0.0, sg = 0.0, sab = 0.0;
        for (int l = 0; l < L; l++) {
            const double al = a[l];
            if (fwd) ebar += al * E[o + l];
            se2 += al * al * bP->e[o + l] * bP->e[o + l];
            sr += al * bP->r[o + l];
            sc2 += al * al * bP->c[o + l] * bP->c[o + l];
            sg += al * bP->g[o + l];
            sab += al * bP->ab[o + l];
        }
        for (int l = 0; l < L; l++) {
            const double al = a[l], k = 1.0 - al;
            const double e = bP->e[o + l], c = bP->c[o + l];
            const double rl = al * (k * bP->r[o + l] + sr - al * bP->r[o + l]);
            const double re = al * sqrt(fmax(0.0, se2 - al * al * e * e));
            bS->e[o + l] = al * k * e;
            bS->r[o + l] = sqrt(re * re + rl * rl);
            bS->c[o + l] = al * k * c;
            bS->g[o + l] = al * sqrt(fmax(0.0, sc2 - al * al * c * c)) +
                           al * (k * bP->g[o + l] + sg - al * bP->g[o + l]);
            bS->ab[o + l] = al * (k * bP->ab[o + l] + sab - al * bP->ab[o + l]) +
                            (fwd ? bP->rel * al * fabs(E[o + l] - ebar) : 0.0);
        }
    }
    bS->rel = fwd ? 0.0 : bP->rel;
}

/* The band of out(p, i) = Σ_j V(p, j)·S(i, j) (L terms) where S is a softmax stage's
 * output (S = A forward, S = dE backward) whose rows are A's: summing along a row, the
 * row-common part of δS does not average out, so the error that comes from the softmax's
 * input P is taken exactly: Σ_j D_j δP_ij with D_j = A_ij (V(p,j) − Σ_l A_il V(p,l)).
 * Indexing (element strides): V at b·sV + p·vp + j·vj, A and S at b·sA + i·L + j, P's
 * band likewise, out at b·sO + p·op + i·oi; bV indexed like V (NULL: exact). The classes:
 * V's own error and its class along j (linearly) reach the outputs of row p of out's
 * (p, ·) — shared along p; P's own error and r (linearly) those of (·, i); V's class
 * across p and P's c (in quadrature) and both g (linearly) anything; the own conversions
 * of V and S are shared along p and along i. fwd: E (P itself, for its shrink) is given;
 * bwd: P's shrink passes to the output. accumulate: add to out's band. */
static void band_softmax_gemm(band *out, int accumulate, int P, int I, int L, int batch,
                              const float *V, long long sV, long long vp, long long vj,
                              const band *bV, const float *A, const float *S, const float *E,
                              const band *bP, long long sA, long long sO, long long op,
                              long long oi) {
    const double own2 = GE.virt ? 0.0 : GE_SIGMA1 * GE.u * GE_SIGMA1 * GE.u;
    const double shrink = (GE.virt ? 0.0 : GE.shrink) + (bV ? bV->rel : 0.0) + (E ? 0.0 : bP->rel);
    const int p_row_V = vp > vj, p_row_out = op > oi;
    const double *v_along = bV ? (p_row_V ? bV->r : bV->c) : NULL;   /* same for all j */
    const double *v_across = bV ? (p_row_V ? bV->c : bV->r) : NULL;  /* same for all p */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++)
        for (int p = 0; p < P; p++)
            for (int i = 0; i < I; i++) {
                const size_t vb = (size_t)b * sV + (size_t)p * vp;
                const size_t ab = (size_t)b * sA + (size_t)i * L;
                double obar = 0.0;
                for (int j = 0; j < L; j++) obar += (double)A[ab + j] * V[vb + j * vj];
                double y = 0.0, t2 = 0.0, pv2 = 0.0, pvl = 0.0, gv2 = 0.0, gvl = 0.0;
                double ip2 = 0.0, ipl = 0.0, gp2 = 0.0, gpl = 0.0, bnd = 0.0, sh = 0.0;
                for (int j = 0; j < L; j++) {
                    const size_t vi = vb + j * vj, pi = ab + j;
                    const double vv = V[vi], ss = S[pi], d = A[pi] * (vv - obar);
                    y += vv * ss;
                    t2 += vv * vv * ss * ss;
                    if (bV) {
                        pv2 += ss * ss * bV->e[vi] * bV->e[vi];
                        pvl += fabs(ss) * v_along[vi];
                        gv2 += ss * ss * v_across[vi] * v_across[vi];
                        gvl += fabs(ss) * bV->g[vi];
                        bnd += fabs(ss) * bV->ab[vi];
                    }
                    ip2 += d * d * bP->e[pi] * bP->e[pi];
                    ipl += fabs(d) * bP->r[pi];
                    gp2 += d * d * bP->c[pi] * bP->c[pi];
                    gpl += fabs(d) * bP->g[pi];
                    bnd += fabs(d) * bP->ab[pi];
                    if (E) sh += d * E[pi];
                }
                const double along_p = sqrt(own2 * t2 + pv2 + pvl * pvl);
                const double along_i = sqrt(own2 * t2 + ip2 + ipl * ipl);
                const double g = sqrt(gv2) + gvl + sqrt(gp2) + gpl;
                bnd += ge_acc(L, y, sqrt(t2)) + (E ? bP->rel * fabs(sh) : 0.0);
                const double br = p_row_out ? along_p : along_i, bc = p_row_out ? along_i : along_p;
                const size_t o = (size_t)b * sO + (size_t)p * op + (size_t)i * oi;
                if (accumulate) {
                    out->r[o] += br; out->c[o] += bc; out->g[o] += g;
                    out->ab[o] += bnd + shrink * fabs(y);
                } else {
                    out->e[o] = 0.0; out->r[o] = br; out->c[o] = bc; out->g[o] = g;
                    out->ab[o] = bnd;
                }
            }
    if (!accumulate) out->rel = shrink;
}

/* out = g·src (+ something exact): the band of src scaled; its shrink becomes a bound on
 * g·|vals| (vals: src's values), since the sum is no longer a pure product. */
static void band_affine(band *out, const band *src, double g, const float *vals) {
    const double ag = fabs(g);
    for (size_t i = 0; i < out->n; i++) {
        out->e[i] = ag * src->e[i]; out->r[i] = ag * src->r[i];
        out->c[i] = ag * src->c[i]; out->g[i] = ag * src->g[i];
        out->ab[i] = ag * (src->ab[i] + src->rel * fabs((double)vals[i]));
    }
    out->rel = 0.0;
}

/* out[c] += Σ_{b,n} src[b][c][n] (a row-sum kernel over rows of length n, batch images):
 * along a row, e and c (one source per column) add in quadrature, r and g linearly;
 * images in quadrature; src's shrink is a bound on |Σ vals|. Into out's e. */
static void band_rowsum(band *out, const band *src, const float *vals, int batch, int C, int n) {
    for (int c = 0; c < C; c++) {
        double var = 0.0, bnd = 0.0, s = 0.0;
        for (int b = 0; b < batch; b++) {
            double q = 0.0, lin = 0.0;
            for (int j = 0; j < n; j++) {
                const size_t i = ((size_t)b * C + c) * n + j;
                q += src->e[i] * src->e[i] + src->c[i] * src->c[i];
                lin += src->r[i] + src->g[i];
                bnd += src->ab[i];
                s += vals[i];
            }
            const double sb = sqrt(q) + lin;
            var += sb * sb;
        }
        out->e[c] += sqrt(var);
        out->ab[c] += bnd + src->rel * fabs(s);
    }
}

#endif
