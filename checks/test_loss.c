/* checks/test_loss.c — the loss references (kernels/loss.c) against central finite
 * differences, a brute-force triplet loop, and hand-computed values.
 *
 * Finite differences: the kernel's own float loss at x ± e and x ± 2e in one input,
 * combined in double by the fourth-order central stencil. Inputs are first rounded to
 * multiples of 2⁻¹⁶ and the steps are powers of two, so every stepped input is exact.
 * The noise is about ulp(loss) / e, which sets the atols; J2 and J3 are differenced
 * one row at a time (rows are independent there), which keeps the loss, and so its
 * ulp, small. */
#include "check.h"
#include "../kernels/loss.h"

#include <omp.h>
#include <string.h>
#include <time.h>

/* Finite-difference steps (powers of two) and the tolerances they hold to. */
#define TANH_FD_EPS 0x1p-5
#define TANH_FD_ATOL 4e-6
#define TANH_FD_RTOL 1e-5
#define J1_FD_EPS 0x1p-2
#define J1_FD_ATOL 4e-6
#define J1_FD_RTOL 1e-4
#define J2_FD_EPS 0x1p-4
#define J2_FD_ATOL 4e-6
#define J2_FD_RTOL 1e-4
#define J3_FD_EPS 0x1p-5
#define J3_FD_ATOL 3e-6
#define J3_FD_RTOL 0
/* j3_tanh_backward's dz against finite differences of scale·J3(tanh z) + <dh, tanh z>
 * (row by row, global norm 2B so a row's loss stays below 2): the float loss's ulp and
 * tanhf's ulp over the stencil, about 18·6e-8 / (12·2⁻⁵) ≈ 3e-6 each. */
#define J3T_FD_EPS 0x1p-5
#define J3T_FD_ATOL 8e-6
#define J3T_FD_RTOL 0
/* j3_tanh_backward against j3_quant into dh then tanh_backward: the same float
 * operations in the same order, so the same bits on this build (x86-64-v2, no FMA).
 * A compiler that contracted h·h or g·(1 − h²) into an FMA in one of the two would
 * move a result by a rounding of |g| + |dz| (≤ 2.5 here): 2⁻²² · 2.5 ≈ 6e-7. */
#define J3T_SEQ_ATOL 6e-7
#define J3T_SEQ_RTOL 0
/* The float reference against values computed in double (rounding of float outputs). */
#define EXACT_ATOL 3e-8
#define EXACT_RTOL 1.2e-7   /* one float ulp: outputs are double results rounded */
/* J1's dh against the brute-force loop: both in double, the kernel's rounded to float */
#define J1_BRUTE_DH_ATOL 1e-12
#define J1_BRUTE_DH_RTOL 1.2e-7

#define J1_MARGIN 5.0f

static dath_ctx ctx;

/* ---- finite differences ------------------------------------------------------- */

typedef double loss_of_fn(const float *x, void *arg);

/* Rounds x to multiples of 2⁻¹⁶, so that x ± k·2⁻ᵐ (m ≤ 16, |x| < 64) is exact. */
static void fd_quantise(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = ldexpf(nearbyintf(ldexpf(x[i], 16)), -16);
}

/* g[i] ≈ d f / d x_i, (−f(x+2e) + 8f(x+e) − 8f(x−e) + f(x−2e)) / 12e; x is restored. */
static void fd_grad(double *g, float *x, size_t n, double eps, loss_of_fn *f, void *arg) {
    static const double w[4] = {1.0, -8.0, 8.0, -1.0};   /* at −2e, −e, +e, +2e */
    static const int k[4] = {-2, -1, 1, 2};
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        double s = 0.0;
        for (int j = 0; j < 4; j++) {
            x[i] = (float)(x0 + k[j] * eps);
            s += w[j] * f(x, arg);
        }
        x[i] = x0;
        g[i] = s / (12.0 * eps);
    }
}

static int close_fd(const char *name, const float *got, const double *ref, size_t n,
                    double atol, double rtol) {
    double *g = malloc(n * sizeof *g);    /* [n] */
    for (size_t i = 0; i < n; i++) g[i] = got[i];
    int ok = check_close_d(name, g, ref, n, atol, rtol);
    free(g);
    return ok;
}

/* ---- tanh --------------------------------------------------------------------- */

typedef struct { size_t n; const double *w; } tanh_arg;

/* Σ_i w_i tanh(z_i), in double over the kernel's float outputs. */
static double tanh_weighted(const float *z, void *argp) {
    tanh_arg *a = argp;
    float *h = malloc(a->n * sizeof *h);  /* [n] */
    tanh_forward_cpu(h, z, a->n, &ctx);
    double s = 0.0;
    for (size_t i = 0; i < a->n; i++) s += a->w[i] * h[i];
    free(h);
    return s;
}

static void test_tanh(uint64_t *rs) {
    enum { N = 64 };
    float z[N], h[N], dh[N], dz[N], href[N];
    double w[N], fd[N];
    check_fill(z, N, -3.0f, 3.0f, rs);
    fd_quantise(z, N);
    check_fill(dh, N, -1.0f, 1.0f, rs);
    for (int i = 0; i < N; i++) w[i] = dh[i];
    tanh_forward_cpu(h, z, N, &ctx);
    for (int i = 0; i < N; i++) href[i] = (float)tanh((double)z[i]);
    CHECK_CLOSE("tanh.forward", h, href, N, EXACT_ATOL, EXACT_RTOL);

    for (int i = 0; i < N; i++) dz[i] = 0.25f;   /* accumulates on top of this */
    tanh_backward_cpu(dz, dh, h, N, &ctx);
    tanh_arg arg = {N, w};
    fd_grad(fd, z, N, TANH_FD_EPS, tanh_weighted, &arg);
    for (int i = 0; i < N; i++) fd[i] += 0.25;
    close_fd("tanh.backward (+= on 0.25) vs fd", dz, fd, N, TANH_FD_ATOL, TANH_FD_RTOL);
}

/* ---- J1 ----------------------------------------------------------------------- */

static int brute_similar(const float *li, const float *lj, int C) {
    for (int c = 0; c < C; c++)
        if (li[c] != 0.0f && lj[c] != 0.0f) return 1;
    return 0;
}

/* Explicit triplets, all in double: returns the mean term; dh [B,K] (may be NULL)
 * receives d mean / dh; *T the triplet count. For one triplet, with
 * s = d softplus(−x)/dx = −σ(−x): dh_a += s·½(h_p − h_n), dh_p += s·½h_a,
 * dh_n −= s·½h_a. */
static double j1_brute(double *dh, int64_t *T, const float *h, const float *lab,
                       int B, int K, int C, double margin) {
    double sum = 0.0;
    int64_t t = 0;
    if (dh) memset(dh, 0, (size_t)B * K * sizeof *dh);
    for (int a = 0; a < B; a++)
        for (int p = 0; p < B; p++) {
            if (p == a || !brute_similar(lab + (size_t)a * C, lab + (size_t)p * C, C)) continue;
            for (int n = 0; n < B; n++) {
                if (brute_similar(lab + (size_t)a * C, lab + (size_t)n * C, C)) continue;
                const float *ha = h + (size_t)a * K, *hp = h + (size_t)p * K,
                            *hn = h + (size_t)n * K;
                double tap = 0, tan_ = 0;
                for (int k = 0; k < K; k++) {
                    tap += 0.5 * ha[k] * hp[k];
                    tan_ += 0.5 * ha[k] * hn[k];
                }
                double x = tap - tan_ - margin;
                sum += log1p(exp(-x));                 /* |x| stays small here */
                t++;
                if (dh) {
                    double s = -1.0 / (1.0 + exp(x));
                    for (int k = 0; k < K; k++) {
                        dh[(size_t)a * K + k] += s * 0.5 * ((double)hp[k] - (double)hn[k]);
                        dh[(size_t)p * K + k] += s * 0.5 * ha[k];
                        dh[(size_t)n * K + k] -= s * 0.5 * ha[k];
                    }
                }
            }
        }
    *T = t;
    if (t && dh)
        for (size_t i = 0; i < (size_t)B * K; i++) dh[i] /= (double)t;
    return t ? sum / (double)t : 0.0;
}

typedef struct { const float *lab; int B, K, C; } j1_arg;

static double j1_value(const float *h, void *argp) {
    j1_arg *a = argp;
    float loss;
    j1_triplet_cpu(&loss, NULL, NULL, h, a->lab, a->B, a->K, a->C, J1_MARGIN, 1.0f, &ctx);
    return loss;
}

/* Random multi-labels: each label on with probability q. */
static void random_labels(float *lab, int B, int C, double q, uint64_t *rs) {
    for (int i = 0; i < B * C; i++) lab[i] = check_unif(rs) < q ? 1.0f : 0.0f;
}

static void test_j1_random(uint64_t *rs) {
    enum { B = 12, K = 16, C = 5 };
    float h[B * K], lab[B * C], dh[B * K], loss;
    double fd[B * K], ref[B * K];
    int64_t nt = -7, tb;
    check_fill(h, B * K, -1.0f, 1.0f, rs);
    fd_quantise(h, B * K);
    random_labels(lab, B, C, 0.3, rs);
    memset(lab, 0, C * sizeof *lab);          /* row 0 unlabeled */
    memset(dh, 0, sizeof dh);
    j1_triplet_cpu(&loss, &nt, dh, h, lab, B, K, C, J1_MARGIN, 1.0f, &ctx);
    double lb = j1_brute(ref, &tb, h, lab, B, K, C, J1_MARGIN);
    printf("     J1 random: B=%d K=%d C=%d, %lld triplets, loss %.6f\n", B, K, C,
           (long long)nt, loss);
    CHECK_TRUE("j1.random ntrip == brute force", nt == tb && tb > 0);
    check_close_d("j1.random loss vs brute force", &(double){loss}, &lb, 1, EXACT_ATOL,
                  EXACT_RTOL);
    close_fd("j1.random dh vs brute force", dh, ref, B * K, J1_BRUTE_DH_ATOL,
             J1_BRUTE_DH_RTOL);

    j1_arg arg = {lab, B, K, C};
    fd_grad(fd, h, B * K, J1_FD_EPS, j1_value, &arg);
    close_fd("j1.random dh vs fd", dh, fd, B * K, J1_FD_ATOL, J1_FD_RTOL);

    /* A larger batch, brute force only (K = 64, B = 40). */
    enum { B2 = 40, K2 = 64, C2 = 8 };
    float *h2 = malloc(B2 * K2 * sizeof *h2), *lab2 = malloc(B2 * C2 * sizeof *lab2);
    float *dh2 = calloc(B2 * K2, sizeof *dh2);
    double *ref2 = malloc(B2 * K2 * sizeof *ref2);
    check_fill(h2, B2 * K2, -1.0f, 1.0f, rs);
    random_labels(lab2, B2, C2, 0.2, rs);
    j1_triplet_cpu(&loss, &nt, dh2, h2, lab2, B2, K2, C2, J1_MARGIN, 1.0f, &ctx);
    lb = j1_brute(ref2, &tb, h2, lab2, B2, K2, C2, J1_MARGIN);
    CHECK_TRUE("j1.B40 ntrip == brute force", nt == tb && tb > 0);
    check_close_d("j1.B40 loss vs brute force", &(double){loss}, &lb, 1, EXACT_ATOL,
                  EXACT_RTOL);
    close_fd("j1.B40 dh vs brute force", dh2, ref2, B2 * K2, J1_BRUTE_DH_ATOL,
             J1_BRUTE_DH_RTOL);
    free(h2); free(lab2); free(dh2); free(ref2);
}

/* Runs J1 on a hand-built label set with random h; dh starts at a sentinel so that
 * "zero gradient" means "left exactly as it was". Returns the triplet count. */
static int64_t j1_count(const float *lab, int B, int C, float *loss_out, int *dh_untouched,
                        uint64_t *rs) {
    enum { K = 4 };
    float *h = malloc((size_t)B * K * sizeof *h), *dh = malloc((size_t)B * K * sizeof *dh);
    check_fill(h, (size_t)B * K, -1.0f, 1.0f, rs);
    for (int i = 0; i < B * K; i++) dh[i] = 0.125f;
    int64_t nt = -1;
    j1_triplet_cpu(loss_out, &nt, dh, h, lab, B, K, C, J1_MARGIN, 1.0f, &ctx);
    *dh_untouched = 1;
    for (int i = 0; i < B * K; i++)
        if (dh[i] != 0.125f) *dh_untouched = 0;
    free(h); free(dh);
    return nt;
}

static void test_j1_mining(uint64_t *rs) {
    float loss;
    int same;
    int64_t nt;

    /* Everyone shares label 0: no negative anywhere. */
    const float all_share[3 * 3] = {1, 0, 0, 1, 1, 0, 1, 0, 1};
    nt = j1_count(all_share, 3, 3, &loss, &same, rs);
    CHECK_TRUE("j1.mining all share a label: ntrip 0, loss 0, dh untouched",
               nt == 0 && loss == 0.0f && same);

    /* Disjoint singletons: no positive anywhere. */
    const float singletons[3 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    nt = j1_count(singletons, 3, 3, &loss, &same, rs);
    CHECK_TRUE("j1.mining disjoint singletons: ntrip 0, loss 0, dh untouched",
               nt == 0 && loss == 0.0f && same);

    /* Multi-label: A=[1,1,0] B=[0,1,1] Cc=[1,0,0] D=[0,0,1].
     * A~B, A~Cc, B~D; A≁D, B≁Cc, Cc≁D ([1,0,0] vs [0,0,1] not similar).
     * A: P{B,Cc} N{D} → 2; B: P{A,D} N{Cc} → 2; Cc: P{A} N{B,D} → 2; D: P{B} N{A,Cc} → 2. */
    const float multi[4 * 3] = {1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1};
    nt = j1_count(multi, 4, 3, &loss, &same, rs);
    CHECK_TRUE("j1.mining multi-label (share >= 1 label): ntrip == 8", nt == 8 && !same);

    /* Four distinct singletons plus a duplicate of the first (row 4):
     * anchors 0 and 4 each have one positive (each other) and 3 negatives → 6;
     * rows 1..3 have no positive (an image is never its own positive). */
    const float dup[5 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0};
    nt = j1_count(dup, 5, 4, &loss, &same, rs);
    CHECK_TRUE("j1.mining never its own positive: ntrip == 6", nt == 6);

    /* An unlabeled row (row 2) is a negative for everyone, never an anchor or positive:
     * anchors 0, 1: P{the other} N{2, 3} → 2 each; rows 2, 3: no positive → T = 4. */
    const float unl[4 * 2] = {1, 0, 1, 0, 0, 0, 0, 1};
    nt = j1_count(unl, 4, 2, &loss, &same, rs);
    CHECK_TRUE("j1.mining unlabeled row never a positive: ntrip == 4", nt == 4);
    /* Two unlabeled rows are not similar to each other: T = 2·2 = 4 again. */
    const float unl2[4 * 2] = {1, 0, 1, 0, 0, 0, 0, 0};
    nt = j1_count(unl2, 4, 2, &loss, &same, rs);
    CHECK_TRUE("j1.mining two unlabeled rows not similar: ntrip == 4", nt == 4);
    /* All unlabeled: nothing. */
    const float none[3 * 2] = {0};
    nt = j1_count(none, 3, 2, &loss, &same, rs);
    CHECK_TRUE("j1.mining all unlabeled: ntrip 0, loss 0, dh untouched",
               nt == 0 && loss == 0.0f && same);

    /* An empty batch: no triplet, loss 0. */
    nt = -1;
    loss = 1.0f;
    j1_triplet_cpu(&loss, &nt, NULL, NULL, NULL, 0, 4, 3, J1_MARGIN, 1.0f, &ctx);
    CHECK_TRUE("j1.mining empty batch (B = 0): ntrip 0, loss 0", nt == 0 && loss == 0.0f);

    /* Random label sets: the count matches the explicit enumeration. */
    int counts_ok = 1;
    for (int rep = 0; rep < 20; rep++) {
        enum { B = 9, C = 3 };
        float lab[B * C], h[B * 2] = {0};
        random_labels(lab, B, C, 0.3, rs);
        int64_t tb;
        j1_brute(NULL, &tb, h, lab, B, 2, C, J1_MARGIN);
        nt = j1_count(lab, B, C, &loss, &same, rs);
        if (nt != tb) counts_ok = 0;
    }
    CHECK_TRUE("j1.mining ntrip == explicit enumeration on 20 random label sets",
               counts_ok);
}

static void test_j1_hand(void) {
    /* h = 0: every Θ = 0, x = −5, term = softplus(5) = log(1 + e⁵); dh = ½(G+Gᵀ)·0 = 0. */
    const float lab4[4 * 3] = {1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1};
    float h0[4 * 2] = {0}, dh0[4 * 2] = {0}, loss;
    int64_t nt;
    j1_triplet_cpu(&loss, &nt, dh0, h0, lab4, 4, 2, 3, J1_MARGIN, 1.0f, &ctx);
    double want = log1p(exp(5.0));
    check_close_d("j1.hand h=0 loss = log(1+e^5)", &(double){loss}, &want, 1, EXACT_ATOL,
                  EXACT_RTOL);
    float zero[4 * 2] = {0};
    CHECK_CLOSE("j1.hand h=0 dh = 0", dh0, zero, 8, 0.0, 0.0);

    /* B = 3, K = 2: rows 0, 1 share label 0, row 2 has label 1.
     * h0 = (1,0), h1 = (1,0), h2 = (−1,0). Triplets (0,1,2) and (1,0,2), T = 2.
     * Θ01 = ½, Θ02 = Θ12 = −½ → x = ½ + ½ − 5 = −4 for both; loss = softplus(4).
     * d term/dx = −σ(4). (0,1,2): dx/dh0 = ½(h1−h2) = (1,0), dx/dh1 = ½h0 = (½,0),
     * dx/dh2 = −½h0 = (−½,0); (1,0,2) symmetric. Σ: dh0 = dh1 = (1.5,0), dh2 = (−1,0),
     * times −σ(4)/T. With scale 3 and dh starting at 1. */
    const float lab3[3 * 2] = {1, 0, 1, 0, 0, 1};
    float h3[3 * 2] = {1, 0, 1, 0, -1, 0}, dh3[3 * 2];
    for (int i = 0; i < 6; i++) dh3[i] = 1.0f;
    j1_triplet_cpu(&loss, &nt, dh3, h3, lab3, 3, 2, 2, J1_MARGIN, 3.0f, &ctx);
    double sig4 = 1.0 / (1.0 + exp(-4.0));
    double wl = log1p(exp(4.0)), s = -sig4 / 2.0 * 3.0;
    double wdh[6] = {1 + 1.5 * s, 1, 1 + 1.5 * s, 1, 1 - 1.0 * s, 1};
    CHECK_TRUE("j1.hand B=3 ntrip == 2", nt == 2);
    check_close_d("j1.hand B=3 loss = softplus(4)", &(double){loss}, &wl, 1, EXACT_ATOL,
                  EXACT_RTOL);
    close_fd("j1.hand B=3 dh (scale 3, on top of 1)", dh3, wdh, 6, EXACT_ATOL, EXACT_RTOL);

    /* NULL dh and NULL ntrip are allowed and give the same loss. */
    float loss2;
    j1_triplet_cpu(&loss2, NULL, NULL, h3, lab3, 3, 2, 2, J1_MARGIN, 3.0f, &ctx);
    CHECK_TRUE("j1.hand NULL dh/ntrip: same loss", loss2 == loss);

    /* Large |x| stays finite: h0 = 1, h1 = −1, h2 = 1 (K = 1536) give
     * (0,1,2): Θ01 = −768, Θ02 = 768, x = −1541 (a naive log(1 + e¹⁵⁴¹) overflows,
     * even in double); (1,0,2): Θ10 = Θ12 = −768, x = −5. */
    enum { KB = 1536 };
    static float hb[3 * KB], dhb[3 * KB];
    for (int k = 0; k < KB; k++) { hb[k] = 1; hb[KB + k] = -1; hb[2 * KB + k] = 1; }
    j1_triplet_cpu(&loss, &nt, dhb, hb, lab3, 3, KB, 2, J1_MARGIN, 1.0f, &ctx);
    double x1 = -768.0 - 768.0 - 5.0, x2 = -768.0 - (-768.0) - 5.0;
    double wbig = 0.5 * ((x1 < 0 ? -x1 + log1p(exp(x1)) : log1p(exp(-x1))) + log1p(exp(-x2)));
    int fin = 1;
    for (int i = 0; i < 3 * KB; i++) fin &= isfinite(dhb[i]);
    check_close_d("j1.hand large |x| loss (stable softplus)", &(double){loss}, &wbig, 1,
                  EXACT_ATOL, EXACT_RTOL);
    CHECK_TRUE("j1.hand large |x| finite gradient", fin);
}

/* Scale semantics: dh ← dh + scale · dJ1/dh. */
static void test_j1_scale(uint64_t *rs) {
    enum { B = 10, K = 8, C = 4 };
    float h[B * K], lab[B * C], g1[B * K] = {0}, g2[B * K], want[B * K], loss;
    check_fill(h, B * K, -1.0f, 1.0f, rs);
    random_labels(lab, B, C, 0.35, rs);
    j1_triplet_cpu(&loss, NULL, g1, h, lab, B, K, C, J1_MARGIN, 1.0f, &ctx);
    check_fill(g2, B * K, -1.0f, 1.0f, rs);
    for (int i = 0; i < B * K; i++) want[i] = g2[i] + 0.5f * g1[i];
    j1_triplet_cpu(&loss, NULL, g2, h, lab, B, K, C, J1_MARGIN, 0.5f, &ctx);
    CHECK_CLOSE("j1.scale dh += 0.5 * grad", g2, want, B * K, EXACT_ATOL, EXACT_RTOL);
}

/* ---- J2 ----------------------------------------------------------------------- */

typedef struct { const float *lab; int B, C, multi; float norm; } j2_arg;

static double j2_value(const float *y, void *argp) {
    j2_arg *a = argp;
    float loss;
    j2_class_cpu(&loss, NULL, y, a->lab, a->B, a->C, a->multi, a->norm, 1.0f, &ctx);
    return loss;
}

static void test_j2_fd(uint64_t *rs) {
    enum { B = 6, C = 5 };
    float y[B * C], lab[B * C], dy[B * C];
    double fd[B * C];
    for (int multi = 0; multi <= 1; multi++) {
        check_fill(y, B * C, -3.0f, 3.0f, rs);
        if (!multi) {
            memset(lab, 0, sizeof lab);
            for (int b = 0; b < B; b++) lab[b * C + (int)(check_unif(rs) * C)] = 1.0f;
        } else {
            random_labels(lab, B, C, 0.4, rs);
            /* One row whose first probability sits under J2_EPS (clamped, no gradient
             * through it) and one with a probability above 1 − J2_EPS. */
            y[0] = -25.0f;
            y[C + 2] = 25.0f;
        }
        fd_quantise(y, B * C);
        memset(dy, 0, sizeof dy);
        float loss;
        j2_class_cpu(&loss, dy, y, lab, B, C, multi, (float)B, 1.0f, &ctx);
        for (int b = 0; b < B; b++) {   /* row b alone, with the batch's norm */
            j2_arg arg = {lab + b * C, 1, C, multi, (float)B};
            fd_grad(fd + b * C, y + b * C, C, J2_FD_EPS, j2_value, &arg);
        }
        close_fd(multi ? "j2.multi (eq. 7, clamped rows) dy vs fd" : "j2.single dy vs fd",
                 dy, fd, B * C, J2_FD_ATOL, J2_FD_RTOL);
    }
}

static void test_j2_hand(void) {
    /* Single-label, two rows, norm 2:
     *   y = (1,2,3), l = (0,0,1): CE = log(e¹+e²+e³) − 3; dy = softmax − l.
     *   y = (0,0,0), l = (1,0,0): CE = log 3; dy = (1/3 − 1, 1/3, 1/3). */
    const float y[6] = {1, 2, 3, 0, 0, 0}, lab[6] = {0, 0, 1, 1, 0, 0};
    float dy[6] = {0}, loss;
    j2_class_cpu(&loss, dy, y, lab, 2, 3, 0, 2.0f, 1.0f, &ctx);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    double want = ((log(z) - 3.0) + log(3.0)) / 2.0;
    double wdy[6] = {exp(1.0) / z / 2, exp(2.0) / z / 2, (exp(3.0) / z - 1) / 2,
                     (1.0 / 3 - 1) / 2, 1.0 / 3 / 2, 1.0 / 3 / 2};
    check_close_d("j2.single hand loss", &(double){loss}, &want, 1, EXACT_ATOL, EXACT_RTOL);
    close_fd("j2.single hand dy", dy, wdy, 6, EXACT_ATOL, EXACT_RTOL);

    /* Eq. 7: y = (0, ln 2, ln 3) → p = (1/6, 1/3, 1/2); l = (1, 0, 1):
     *   L = −[log(1/6) + log(1 − 1/3) + log(1/2)] = log 18;
     *   dL/dp = (−6, 1.5, −2), Σ dL/dp·p = −1.5, dy_k = p_k (dL/dp_k + 1.5)
     *         = (−0.75, 1, −0.25). norm 1. */
    const float y7[3] = {0.0f, (float)log(2.0), (float)log(3.0)}, l7[3] = {1, 0, 1};
    float dy7[3] = {0};
    j2_class_cpu(&loss, dy7, y7, l7, 1, 3, 1, 1.0f, 1.0f, &ctx);
    double w7 = log(18.0), wdy7[3] = {-0.75, 1.0, -0.25};
    check_close_d("j2.multi eq. 7 hand loss = log 18", &(double){loss}, &w7, 1, EXACT_ATOL,
                  EXACT_RTOL);
    close_fd("j2.multi eq. 7 hand dy", dy7, wdy7, 3, EXACT_ATOL, EXACT_RTOL);

    /* The clamp: y = (1, 1, 100) (a logit 100× the others), l = (1, 0, 0).
     * p0 = p1 ≈ e⁻⁹⁹ < eps → q = eps; p2 ≈ 1 > 1 − eps → q = 1 − eps.
     * L = −[log eps + log(1 − eps) + log(eps)]; every p clamped → dy = 0. */
    const float yc[3] = {1.0f, 1.0f, 100.0f}, lc[3] = {1, 0, 0};
    float dyc[3] = {0};
    j2_class_cpu(&loss, dyc, yc, lc, 1, 3, 1, 1.0f, 1.0f, &ctx);
    double e = (double)J2_EPS, wc = -(2.0 * log(e) + log1p(-e));
    float zero[3] = {0};
    CHECK_TRUE("j2.multi clamp: finite loss and gradient",
               isfinite(loss) && isfinite(dyc[0]) && isfinite(dyc[1]) && isfinite(dyc[2]));
    check_close_d("j2.multi clamp loss = -2 log eps - log(1-eps)", &(double){loss}, &wc, 1,
                  EXACT_ATOL, EXACT_RTOL);
    CHECK_CLOSE("j2.multi clamp: no gradient through the clamp", dyc, zero, 3, 0.0, 0.0);
    /* Single-label with the same logits stays finite too: CE = 99 + log(1 + 2e⁻⁹⁹)... */
    j2_class_cpu(&loss, dyc, yc, lc, 1, 3, 0, 1.0f, 1.0f, &ctx);
    double ws = 100.0 + log1p(2.0 * exp(-99.0)) - 1.0;
    check_close_d("j2.single large logit loss", &(double){loss}, &ws, 1, EXACT_ATOL,
                  EXACT_RTOL);
}

/* norm and scale: loss = Σ rows / norm; two ranks' halves with the global norm add up
 * to the whole batch; dy ← dy + scale · dL/dy. */
static void test_j2_norm_scale(uint64_t *rs) {
    enum { B = 8, C = 4 };
    float y[B * C], lab[B * C], g1[B * C] = {0}, g2[B * C], gh[B * C] = {0}, want[B * C];
    check_fill(y, B * C, -2.0f, 2.0f, rs);
    random_labels(lab, B, C, 0.4, rs);
    for (int multi = 0; multi <= 1; multi++) {
        const char *tag = multi ? "multi" : "single";
        char name[96];
        float lall, lh1, lh2, l2;
        memset(g1, 0, sizeof g1);
        memset(gh, 0, sizeof gh);
        j2_class_cpu(&lall, g1, y, lab, B, C, multi, (float)B, 1.0f, &ctx);
        j2_class_cpu(&lh1, gh, y, lab, B / 2, C, multi, (float)B, 1.0f, &ctx);
        j2_class_cpu(&lh2, gh + B / 2 * C, y + B / 2 * C, lab + B / 2 * C, B / 2, C, multi,
                     (float)B, 1.0f, &ctx);
        double sum = (double)lh1 + lh2, all = lall;
        snprintf(name, sizeof name, "j2.%s norm: halves sum to the batch", tag);
        check_close_d(name, &sum, &all, 1, EXACT_ATOL, EXACT_RTOL);
        snprintf(name, sizeof name, "j2.%s norm: halves' dy = batch dy", tag);
        CHECK_CLOSE(name, gh, g1, B * C, EXACT_ATOL, EXACT_RTOL);
        j2_class_cpu(&l2, NULL, y, lab, B, C, multi, 2.0f * B, 1.0f, &ctx);
        double half = lall / 2.0, got = l2;
        snprintf(name, sizeof name, "j2.%s norm 2B halves the loss", tag);
        check_close_d(name, &got, &half, 1, EXACT_ATOL, EXACT_RTOL);
        check_fill(g2, B * C, -1.0f, 1.0f, rs);
        for (int i = 0; i < B * C; i++) want[i] = g2[i] - 2.0f * g1[i];
        j2_class_cpu(&l2, g2, y, lab, B, C, multi, (float)B, -2.0f, &ctx);
        snprintf(name, sizeof name, "j2.%s scale: dy += -2 * grad", tag);
        CHECK_CLOSE(name, g2, want, B * C, EXACT_ATOL, EXACT_RTOL);
    }
}

/* ---- J3 ----------------------------------------------------------------------- */

typedef struct { int B, K; float norm; } j3_arg;

static double j3_value(const float *h, void *argp) {
    j3_arg *a = argp;
    float loss;
    j3_quant_cpu(&loss, NULL, h, a->B, a->K, a->norm, 1.0f, &ctx);
    return loss;
}

static void test_j3(uint64_t *rs) {
    /* Hand values, one row of 8, norm 2: terms | |h| − 1 | = 1, .5, .5, .5, .5, 0, 0, .75
     * → 3.75 / 2; gradient sign(|h|−1)·sign(h) = 0 (h = 0), −1, 1, 1, −1, 0 (|h| = 1),
     * 0, −1, then / 2 and × scale 4. */
    const float h[8] = {0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 1.0f, -1.0f, 0.25f};
    float dh[8] = {0}, loss;
    j3_quant_cpu(&loss, dh, h, 1, 8, 2.0f, 4.0f, &ctx);
    double want = 3.75 / 2.0;
    const float wdh[8] = {0, -2, 2, 2, -2, 0, 0, -2};
    check_close_d("j3.hand loss", &(double){loss}, &want, 1, EXACT_ATOL, EXACT_RTOL);
    CHECK_CLOSE("j3.hand dh (sign(0) = 0, norm 2, scale 4)", dh, wdh, 8, 0.0, 0.0);

    /* Finite differences away from the kinks (|h| near 0 or 1). */
    enum { B = 5, K = 12 };
    float hr[B * K], dr[B * K] = {0};
    double fd[B * K];
    for (int i = 0; i < B * K; i++) {
        float v;
        do v = (float)(-1.6 + 3.2 * check_unif(rs));
        while (fabsf(v) < 0.1f || fabsf(fabsf(v) - 1.0f) < 0.1f);   /* 2·eps < 0.1 */
        hr[i] = v;
    }
    fd_quantise(hr, B * K);
    j3_quant_cpu(&loss, dr, hr, B, K, (float)B, 1.0f, &ctx);
    for (int b = 0; b < B; b++) {   /* row b alone, with the batch's norm */
        j3_arg arg = {1, K, (float)B};
        fd_grad(fd + b * K, hr + b * K, K, J3_FD_EPS, j3_value, &arg);
    }
    close_fd("j3.random dh vs fd", dr, fd, B * K, J3_FD_ATOL, J3_FD_RTOL);

    /* norm: two halves with the global norm add up to the batch. */
    float l1, l2, lall;
    j3_quant_cpu(&lall, NULL, hr, B, K, (float)B, 1.0f, &ctx);
    j3_quant_cpu(&l1, NULL, hr, 2, K, (float)B, 1.0f, &ctx);
    j3_quant_cpu(&l2, NULL, hr + 2 * K, B - 2, K, (float)B, 1.0f, &ctx);
    double sum = (double)l1 + l2, all = lall;
    check_close_d("j3.norm halves sum to the batch", &sum, &all, 1, EXACT_ATOL, EXACT_RTOL);
}

/* ---- J3 with tanh's backward fused ------------------------------------------------ */

typedef struct { int B, K; float norm, scale; const float *dh; } j3t_arg;

/* scale·J3(tanh z) + Σ dh·tanh z over the kernel's float outputs (J3 from the fused
 * op's own loss), dh NULL meaning 0. */
static double j3t_value(const float *z, void *argp) {
    j3t_arg *a = argp;
    size_t n = (size_t)a->B * a->K;
    float *h = malloc(n * sizeof *h), *dz = calloc(n, sizeof *dz), loss;   /* [B,K] */
    tanh_forward_cpu(h, z, n, &ctx);
    j3_tanh_backward_cpu(&loss, dz, a->dh, h, a->B, a->K, a->norm, a->scale, &ctx);
    double f = (double)a->scale * loss;
    if (a->dh)
        for (size_t i = 0; i < n; i++) f += (double)a->dh[i] * h[i];
    free(h); free(dz);
    return f;
}

/* The fused op against j3_quant (accumulating into a copy of dh) followed by
 * tanh_backward, on z with exact zeros (h = 0: sign 0) and |z| = 10 (tanhf = ±1:
 * sign(|h| − 1) = 0 and 1 − h² = 0), dz accumulating onto nonzero values. */
static void j3t_vs_sequence(const char *name, int B, int K, int with_dh, uint64_t *rs) {
    size_t n = (size_t)B * K;
    float *z = malloc(n * sizeof *z), *h = malloc(n * sizeof *h);             /* [B,K] */
    float *dh = malloc(n * sizeof *dh), *dh_copy = malloc(n * sizeof *dh_copy); /* [B,K] */
    float *tmp = malloc(n * sizeof *tmp);                                     /* [B,K] */
    float *dz = malloc(n * sizeof *dz), *dz_ref = malloc(n * sizeof *dz_ref); /* [B,K] */
    check_fill(z, n, -3.0f, 3.0f, rs);
    for (size_t i = 0; i < n; i += 7) z[i] = 0.0f;
    for (size_t i = 3; i < n; i += 11) z[i] = (i & 1) ? 10.0f : -10.0f;
    tanh_forward_cpu(h, z, n, &ctx);
    check_fill(dh, n, -1.0f, 1.0f, rs);
    memcpy(dh_copy, dh, n * sizeof *dh);
    check_fill(dz, n, -0.5f, 0.5f, rs);
    memcpy(dz_ref, dz, n * sizeof *dz);
    const float norm = (float)(2 * B), scale = 0.75f;

    float loss_ref, loss;
    if (with_dh) memcpy(tmp, dh, n * sizeof *tmp);
    else memset(tmp, 0, n * sizeof *tmp);
    j3_quant_cpu(&loss_ref, tmp, h, B, K, norm, scale, &ctx);
    tanh_backward_cpu(dz_ref, tmp, h, n, &ctx);
    j3_tanh_backward_cpu(&loss, dz, with_dh ? dh : NULL, h, B, K, norm, scale, &ctx);

    char nm[128];
    snprintf(nm, sizeof nm, "%s loss == j3_quant's (bitwise)", name);
    CHECK_TRUE(nm, memcmp(&loss, &loss_ref, sizeof loss) == 0);
    snprintf(nm, sizeof nm, "%s dz vs j3_quant + tanh_backward", name);
    CHECK_CLOSE(nm, dz, dz_ref, n, J3T_SEQ_ATOL, J3T_SEQ_RTOL);
    if (with_dh) {
        snprintf(nm, sizeof nm, "%s dh read only", name);
        CHECK_TRUE(nm, memcmp(dh, dh_copy, n * sizeof *dh) == 0);
    }
    free(z); free(h); free(dh); free(dh_copy); free(tmp); free(dz); free(dz_ref);
}

static void test_j3_tanh(uint64_t *rs) {
    j3t_vs_sequence("j3_tanh.B5K12 dh", 5, 12, 1, rs);
    j3t_vs_sequence("j3_tanh.B5K12 dh=NULL", 5, 12, 0, rs);
    j3t_vs_sequence("j3_tanh.B128K64 dh", 128, 64, 1, rs);
    j3t_vs_sequence("j3_tanh.B1100K64 dh (parallel loop)", 1100, 64, 1, rs);

    /* Hand values, one row of 4, norm 2, scale 4, dh = 0.5 everywhere:
     * h = 0: sign 0, dz += 0.5·1; h = 0.5: dJ3/dh = −1/2, dz += (0.5 − 2)·0.75;
     * h = −0.5: dJ3/dh = +1/2, dz += (0.5 + 2)·0.75; h = 1: 1 − h² = 0, dz += 0.
     * J3 = (1 + .5 + .5 + 0) / 2 = 1. */
    const float hh[4] = {0.0f, 0.5f, -0.5f, 1.0f}, dhh[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const float want[4] = {0.5f, -1.125f, 1.875f, 0.0f};
    float dzh[4] = {0}, lh;
    j3_tanh_backward_cpu(&lh, dzh, dhh, hh, 1, 4, 2.0f, 4.0f, &ctx);
    CHECK_CLOSE("j3_tanh.hand dz", dzh, want, 4, 0.0, 0.0);
    CHECK_TRUE("j3_tanh.hand loss == 1", lh == 1.0f);

    /* Finite differences of scale·J3(tanh z) + <dh, tanh z> w.r.t. z, row by row, away
     * from the kink at h = 0 (|z| ≥ 0.1 > 2·eps); |z| ≤ 2.5 keeps |h| < 1. */
    enum { B = 5, K = 12 };
    const float norm = 2.0f * B, scale = 0.5f;
    float z[B * K], h[B * K], dh[B * K], dz[B * K];
    double fd[B * K];
    for (int i = 0; i < B * K; i++) {
        float v;
        do v = (float)(-2.5 + 5.0 * check_unif(rs));
        while (fabsf(v) < 0.1f);
        z[i] = v;
    }
    fd_quantise(z, B * K);
    check_fill(dh, B * K, -1.0f, 1.0f, rs);
    tanh_forward_cpu(h, z, B * K, &ctx);
    for (int with_dh = 1; with_dh >= 0; with_dh--) {
        float loss;
        memset(dz, 0, sizeof dz);
        j3_tanh_backward_cpu(&loss, dz, with_dh ? dh : NULL, h, B, K, norm, scale, &ctx);
        for (int b = 0; b < B; b++) {   /* row b alone, with the batch's norm */
            j3t_arg arg = {1, K, norm, scale, with_dh ? dh + b * K : NULL};
            fd_grad(fd + b * K, z + b * K, K, J3T_FD_EPS, j3t_value, &arg);
        }
        close_fd(with_dh ? "j3_tanh.dz vs fd of scale*J3(tanh z) + <dh, tanh z>"
                         : "j3_tanh.dz (dh = NULL) vs fd of scale*J3(tanh z)",
                 dz, fd, B * K, J3T_FD_ATOL, J3T_FD_RTOL);
    }
}

/* ---- timing ------------------------------------------------------------------- */

static void time_j1(uint64_t *rs) {
    enum { B = 128, K = 64, C = 21 };
    float *h = malloc(B * K * sizeof *h), *lab = malloc(B * C * sizeof *lab);
    float *dh = calloc(B * K, sizeof *dh), loss;
    int64_t nt;
    check_fill(h, B * K, -1.0f, 1.0f, rs);
    /* The most triplets a batch can hold: two classes, half and half, so every anchor
     * has B/2 − 1 positives and B/2 negatives: B (B/2 − 1) B/2 = 516096. */
    memset(lab, 0, B * C * sizeof *lab);
    for (int b = 0; b < B; b++) lab[b * C + b % 2] = 1.0f;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    j1_triplet_cpu(&loss, &nt, dh, h, lab, B, K, C, J1_MARGIN, 1.0f, &ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
    printf("     J1 timing: B=%d K=%d, %lld triplets, loss %.4f, one call %.2f ms (%d threads)\n",
           B, K, (long long)nt, loss, ms, omp_get_max_threads());
    CHECK_TRUE("j1.B128 two balanced classes: ntrip == B(B/2-1)B/2, finite loss",
               nt == (int64_t)B * (B / 2 - 1) * (B / 2) && isfinite(loss));

    /* Determinism: one thread gives the same bits as several. */
    float *dh1 = calloc(B * K, sizeof *dh1), loss1;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    j1_triplet_cpu(&loss1, NULL, dh1, h, lab, B, K, C, J1_MARGIN, 1.0f, &ctx);
    omp_set_num_threads(threads);
    CHECK_TRUE("j1.B128 one thread == several threads (loss, bitwise)", loss1 == loss);
    CHECK_CLOSE("j1.B128 one thread == several threads (dh)", dh1, dh, B * K, 0.0, 0.0);
    free(h); free(lab); free(dh); free(dh1);
}

int main(int argc, char **argv) {
    uint64_t rs = argc > 1 ? strtoull(argv[1], NULL, 10) : 12345;
    test_tanh(&rs);
    test_j1_random(&rs);
    test_j1_mining(&rs);
    test_j1_hand();
    test_j1_scale(&rs);
    test_j2_fd(&rs);
    test_j2_hand();
    test_j2_norm_scale(&rs);
    test_j3(&rs);
    test_j3_tanh(&rs);
    time_j1(&rs);
    return check_finish();
}
