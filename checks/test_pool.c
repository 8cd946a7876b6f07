/* checks/test_pool.c — the pooling references (kernels/pool.c):
 *   maxpool: output sizes; forward and argmax against a direct scan of each window
 *     (distinct values); the first-maximum tie rule (row-major window order) and NaN
 *     propagation; backward against the direct scatter and against central finite
 *     differences of L = Σ r ⊙ out (values at least FD_GAP apart, more than 2·eps, so
 *     no probe changes an argmax); the `=` contract (din written).
 *   avgpool: PyTorch's bin edges written out by hand (13→6, 8→6, 1→6, 6→6, 5→3, on
 *     non-square planes so rows and columns cannot be swapped); the forward on planes
 *     whose bin means are exact (y + 1000·x); the backward of a one-hot dout, which
 *     must be 1/|bin| on exactly the bin; finite differences; the `=` contract. */
#include "check.h"
#include "../kernels/pool.h"

#include <string.h>

/* maxpool forward copies values, so out and idx must match exactly */
#define MAX_FWD_ATOL 0.0
/* maxpool backward: at most four dout values summed, in float */
#define MAX_BWD_ATOL 1e-7
#define MAX_BWD_RTOL 1e-6
/* maxpool finite differences: with its argmaxes fixed the pool copies the probed
 * element, so only the double sum's rounding, divided by 2·eps, remains */
#define FD_EPS 1e-3
#define FD_GAP 1e-2          /* spacing of the maxpool test values */
#define FD_ATOL 1e-7
#define FD_RTOL 1e-6
#define FD_PROBES 32
/* avgpool: float sums of ≤ 9 values vs double */
#define AVG_FWD_ATOL 1e-7
#define AVG_FWD_RTOL 1e-6
#define AVG_BWD_ATOL 1e-7
#define AVG_BWD_RTOL 1e-6
/* avgpool finite differences: the forward rounds each of the ≤ 4 outputs a probe
 * moves to float (~6e-8 each); a large eps (no kinks) keeps that small over 2·eps */
#define AVG_FD_EPS 0.25
#define AVG_FD_ATOL 2e-7
#define AVG_FD_RTOL 1e-6

static double *to_double(const float *x, size_t n) {
    double *d = malloc((n + 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* A plane set of n values spaced FD_GAP apart, in a shuffled order. */
static void fill_distinct(float *x, size_t n, uint64_t *seed) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)i - n / 2.0) * FD_GAP);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(check_unif(seed) * (i + 1));
        float t = x[i]; x[i] = x[j]; x[j] = t;
    }
}

static void check_maxpool_sizes(void) {
    CHECK_TRUE("maxpool_out(55) = 27", maxpool_out(55) == 27);
    CHECK_TRUE("maxpool_out(27) = 13", maxpool_out(27) == 13);
    CHECK_TRUE("maxpool_out(13) = 6", maxpool_out(13) == 6);
    CHECK_TRUE("maxpool_out(4) = 1 (floor mode)", maxpool_out(4) == 1);
    CHECK_TRUE("maxpool_out(3) = 1", maxpool_out(3) == 1);
    CHECK_TRUE("maxpool_out(2) = 0", maxpool_out(2) == 0);
}

/* The direct scan: for each window, the first (row-major) position holding its max. */
static void naive_maxpool(double *out, int32_t *idx, const float *in, int BC, int H, int W) {
    int Ho = maxpool_out(H), Wo = maxpool_out(W);
    for (int pl = 0; pl < BC; pl++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                const float *x = in + (size_t)pl * H * W;
                double m = -INFINITY;
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++) m = fmax(m, x[(2 * oy + dy) * W + 2 * ox + dx]);
                int first = -1;
                for (int dy = 0; dy < 3 && first < 0; dy++)
                    for (int dx = 0; dx < 3 && first < 0; dx++)
                        if (x[(2 * oy + dy) * W + 2 * ox + dx] == m) first = (2 * oy + dy) * W + 2 * ox + dx;
                size_t o = ((size_t)pl * Ho + oy) * Wo + ox;
                out[o] = m;
                idx[o] = first;
            }
}

/* The plane positions y·W + x of the op's window places (maxpool_arg_at). */
static void arg_positions(int32_t *pos, const maxpool_arg *idx, int BC, int H, int W) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    for (size_t o = 0; o < (size_t)BC * Ho * Wo; o++) {
        const int j = (int)(o % ((size_t)Ho * Wo));
        pos[o] = maxpool_arg_at(j / Wo, j % Wo, W, idx[o]);
    }
}

static double maxpool_loss(float *out, maxpool_arg *idx, const float *in, const float *r,
                           int BC, int H, int W) {
    maxpool_forward_cpu(out, idx, in, BC, H, W, DATH_STORE_F32, NULL);
    size_t n = (size_t)BC * maxpool_out(H) * maxpool_out(W);
    double L = 0.0;
    for (size_t j = 0; j < n; j++) L += (double)r[j] * out[j];
    return L;
}

static void check_maxpool(int BC, int H, int W, uint64_t *seed) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const size_t n_in = (size_t)BC * H * W, n_out = (size_t)BC * Ho * Wo;
    float *in = malloc(n_in * sizeof *in);                    /* [BC,H,W] */
    float *out = malloc(n_out * sizeof *out);                 /* [BC,Ho,Wo] */
    float *r = malloc(n_out * sizeof *r);                     /* [BC,Ho,Wo] */
    float *din = calloc(n_in, sizeof *din);                   /* [BC,H,W] */
    float *din2 = calloc(n_in, sizeof *din2);                 /* [BC,H,W] */
    maxpool_arg *idx = malloc(n_out * sizeof *idx);
    int32_t *pos = malloc(n_out * sizeof *pos), *ridx = malloc(n_out * sizeof *ridx);
    double *rout = malloc(n_out * sizeof *rout), *rdin = calloc(n_in, sizeof *rdin);
    char label[128];
    fill_distinct(in, n_in, seed);
    check_fill(r, n_out, -1.0f, 1.0f, seed);

    maxpool_forward_cpu(out, idx, in, BC, H, W, DATH_STORE_F32, NULL);
    naive_maxpool(rout, ridx, in, BC, H, W);
    double *g = to_double(out, n_out);
    snprintf(label, sizeof label, "maxpool %dx%dx%d out", BC, H, W);
    check_close_d(label, g, rout, n_out, MAX_FWD_ATOL, 0.0);
    free(g);
    snprintf(label, sizeof label, "maxpool %dx%dx%d idx (the argmax's place in its window)", BC, H, W);
    arg_positions(pos, idx, BC, H, W);
    CHECK_TRUE(label, memcmp(pos, ridx, n_out * sizeof *pos) == 0);

    /* backward vs the direct scatter (windows overlap: an input can take several) */
    maxpool_backward_cpu(din, r, idx, NULL, BC, H, W, DATH_STORE_F32, NULL);
    for (int pl = 0; pl < BC; pl++)
        for (int j = 0; j < Ho * Wo; j++)
            rdin[(size_t)pl * H * W + ridx[(size_t)pl * Ho * Wo + j]] += r[(size_t)pl * Ho * Wo + j];
    g = to_double(din, n_in);
    snprintf(label, sizeof label, "maxpool %dx%dx%d din", BC, H, W);
    check_close_d(label, g, rdin, n_in, MAX_BWD_ATOL, MAX_BWD_RTOL);
    free(g);

    /* finite differences */
    double got[FD_PROBES], ref[FD_PROBES];
    for (int t = 0; t < FD_PROBES; t++) {
        size_t e = (size_t)(check_unif(seed) * n_in);
        float x0 = in[e], xp = (float)(x0 + FD_EPS), xm = (float)(x0 - FD_EPS);
        in[e] = xp;
        double Lp = maxpool_loss(out, idx, in, r, BC, H, W);
        in[e] = xm;
        double Lm = maxpool_loss(out, idx, in, r, BC, H, W);
        in[e] = x0;
        got[t] = din[e];
        ref[t] = (Lp - Lm) / ((double)xp - (double)xm);
    }
    snprintf(label, sizeof label, "maxpool %dx%dx%d fd din", BC, H, W);
    check_close_d(label, got, ref, FD_PROBES, FD_ATOL, FD_RTOL);

    /* = : two calls onto NaN give one call's din, bit for bit (din is written) */
    maxpool_forward_cpu(out, idx, in, BC, H, W, DATH_STORE_F32, NULL);
    check_fill_nan(din2, n_in);
    maxpool_backward_cpu(din2, r, idx, NULL, BC, H, W, DATH_STORE_F32, NULL);
    maxpool_backward_cpu(din2, r, idx, NULL, BC, H, W, DATH_STORE_F32, NULL);
    snprintf(label, sizeof label, "maxpool %dx%dx%d din after two calls onto NaN (=)", BC, H, W);
    CHECK_CLOSE(label, din2, din, n_in, 0.0, 0.0);

    /* the forward's out as the mask: din masked by in > 0 afterwards, bit for bit. in is
     * shifted down by the windows' median maximum, so that half the windows have a
     * maximum ≤ 0 and the mask has something to remove. */
    float *srt = malloc(n_out * sizeof *srt);
    memcpy(srt, out, n_out * sizeof *srt);
    for (size_t i = 1; i < n_out; i++)   /* insertion sort: a few hundred values */
        for (size_t j = i; j > 0 && srt[j - 1] > srt[j]; j--) { float t = srt[j]; srt[j] = srt[j - 1]; srt[j - 1] = t; }
    const float med = srt[n_out / 2];
    free(srt);
    for (size_t i = 0; i < n_in; i++) in[i] -= med;
    maxpool_forward_cpu(out, idx, in, BC, H, W, DATH_STORE_F32, NULL);
    maxpool_backward_cpu(din, r, idx, NULL, BC, H, W, DATH_STORE_F32, NULL);
    maxpool_backward_cpu(din2, r, idx, out, BC, H, W, DATH_STORE_F32, NULL);
    int masked = 0;
    for (size_t i = 0; i < n_in; i++)
        if (!(in[i] > 0.0f)) { masked += din[i] != 0.0f; din[i] = 0.0f; }
    snprintf(label, sizeof label, "maxpool %dx%dx%d din with out as the mask = din masked by in > 0", BC, H, W);
    CHECK_CLOSE(label, din2, din, n_in, 0.0, 0.0);
    snprintf(label, sizeof label, "maxpool %dx%dx%d: the mask removed some gradient", BC, H, W);
    CHECK_TRUE(label, masked > 0);

    free(in); free(out); free(r); free(din); free(din2);
    free(idx); free(pos); free(ridx); free(rout); free(rdin);
}

/* Ties: the first maximum in row-major window order wins; a NaN wins over numbers. */
static void check_maxpool_ties(void) {
    enum { H = 5, W = 5 };
    float in[3][H * W];                                        /* [3,5,5] */
    float out[3][4];                                           /* [3,2,2] */
    maxpool_arg idx[3][4];                                     /* [3,2,2] */
    for (int i = 0; i < H * W; i++) in[0][i] = 1.0f;           /* all equal */
    for (int i = 0; i < H * W; i++) in[1][i] = 0.0f;
    in[1][0 * W + 2] = 5.0f;   /* window (0,0): maxima at (0,2) and (1,0): (0,2) first */
    in[1][1 * W + 0] = 5.0f;
    in[1][2 * W + 2] = 7.0f;   /* shared corner of all four windows: wins in each */
    in[1][4 * W + 4] = 7.0f;   /* window (1,1) also has 7 at (4,4), later in the order */
    for (int i = 0; i < H * W; i++) in[2][i] = (float)i;
    in[2][1 * W + 1] = NAN;    /* window (0,0) holds a NaN */
    maxpool_forward_cpu(&out[0][0], &idx[0][0], &in[0][0], 3, H, W, DATH_STORE_F32, NULL);
#define AT(p, j) maxpool_arg_at((j) / 2, (j) % 2, W, idx[p][j])   /* window j's argmax, y·W + x */
    CHECK_TRUE("maxpool ties: equal window -> its top-left position (place 0)",
               idx[0][0] == 0 && idx[0][1] == 0 && idx[0][2] == 0 && idx[0][3] == 0 &&
               AT(0, 0) == 0 && AT(0, 1) == 2 && AT(0, 2) == 2 * W && AT(0, 3) == 2 * W + 2);
    CHECK_TRUE("maxpool: 7 at (2,2) beats the two 5s", out[1][0] == 7.0f && AT(1, 0) == 2 * W + 2 && idx[1][0] == 8);
    CHECK_TRUE("maxpool ties: shared 7 at (2,2) before (4,4)",
               AT(1, 1) == 2 * W + 2 && AT(1, 2) == 2 * W + 2 && AT(1, 3) == 2 * W + 2);
    CHECK_TRUE("maxpool NaN propagates", isnan(out[2][0]) && AT(2, 0) == 1 * W + 1 &&
               out[2][3] == 24.0f && AT(2, 3) == 24);

    /* the plain two-way tie, without the 7 */
    in[1][2 * W + 2] = 0.0f;
    maxpool_forward_cpu(&out[1][0], &idx[1][0], &in[1][0], 1, H, W, DATH_STORE_F32, NULL);
    CHECK_TRUE("maxpool ties: 5 at (0,2) and (1,0) -> index 2", out[1][0] == 5.0f && AT(1, 0) == 2);
#undef AT
}

/* bf16 storage (pool.h's store): in, out and the mask in bf16; the same places and, widened,
 * the same values as the fp32 pool of the widened input, and the same din (the mask read
 * as bf16). The input is shifted so that the mask removes something, and rounded values
 * tie in many windows (the first maximum wins on both). */
static void check_maxpool_bf16(int BC, int H, int W, uint64_t *seed) {
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const size_t n_in = (size_t)BC * H * W, n_out = (size_t)BC * Ho * Wo;
    dath_bf16 *in = malloc(n_in * sizeof *in), *out = malloc(n_out * sizeof *out);   /* bf16 */
    float *in32 = malloc(n_in * sizeof *in32), *out32 = malloc(n_out * sizeof *out32);
    dath_bf16 *r = malloc(n_out * sizeof *r), *din = malloc(n_in * sizeof *din);   /* dout, din in bf16 too */
    float *r32 = malloc(n_out * sizeof *r32), *din32 = malloc(n_in * sizeof *din32), *dinw = malloc(n_in * sizeof *dinw);
    maxpool_arg *idx = malloc(n_out), *idx32 = malloc(n_out);
    for (size_t i = 0; i < n_in; i++) {
        const double u = check_unif(seed);   /* a third on a coarse grid: windows with tied maxima */
        in[i] = dath_bf16_from_float(i % 3 ? (float)(2.0 * u - 1.3) : (float)(floor(u * 8) / 4 - 1.0));
        in32[i] = dath_bf16_to_float(in[i]);
    }
    for (size_t i = 0; i < n_out; i++) {
        r[i] = dath_bf16_from_float((float)(2.0 * check_unif(seed) - 1.0));
        r32[i] = dath_bf16_to_float(r[i]);
    }
    maxpool_forward_cpu((float *)out, idx, (const float *)in, BC, H, W, DATH_STORE_BF16, NULL);
    maxpool_forward_cpu(out32, idx32, in32, BC, H, W, DATH_STORE_F32, NULL);
    int same_out = 1, ties = 0;
    for (size_t i = 0; i < n_out; i++) same_out &= dath_bf16_to_float(out[i]) == out32[i];
    for (size_t o = 0; o < n_out; o++) {   /* windows whose maximum is there twice */
        const size_t pl = o / ((size_t)Ho * Wo), q = o % ((size_t)Ho * Wo);
        const int oy = (int)(q / Wo), ox = (int)(q % Wo);
        int c = 0;
        for (int dy = 0; dy < 3; dy++)
            for (int dx = 0; dx < 3; dx++) c += in32[pl * H * W + (size_t)(2 * oy + dy) * W + 2 * ox + dx] == out32[o];
        ties += c > 1;
    }
    char label[160];
    snprintf(label, sizeof label, "maxpool bf16 %dx%dx%d: out and idx = the fp32 pool's of the widened input", BC, H, W);
    CHECK_TRUE(label, same_out && memcmp(idx, idx32, n_out) == 0);
    snprintf(label, sizeof label, "maxpool bf16 %dx%dx%d: windows with a tied maximum (%d)", BC, H, W, ties);
    CHECK_TRUE(label, ties > 0);
    maxpool_backward_cpu((float *)din, (const float *)r, idx, (const float *)out, BC, H, W, DATH_STORE_BF16, NULL);
    maxpool_backward_cpu(din32, r32, idx32, out32, BC, H, W, DATH_STORE_F32, NULL);
    for (size_t i = 0; i < n_in; i++) {   /* fp32's sums rounded once */
        dinw[i] = dath_bf16_to_float(din[i]);
        din32[i] = dath_bf16_to_float(dath_bf16_from_float(din32[i]));
    }
    snprintf(label, sizeof label, "maxpool bf16 %dx%dx%d: din (bf16 dout, the bf16 out as the mask) = fp32's, rounded", BC, H, W);
    CHECK_CLOSE(label, dinw, din32, n_in, 0.0, 0.0);
    free(in); free(out); free(in32); free(out32); free(r); free(r32); free(din); free(din32); free(dinw);
    free(idx); free(idx32);
}

/* ---- adaptive average pool ------------------------------------------------------- */

/* PyTorch's bins, written out by hand: start = floor(i*in/out), end = ceil((i+1)*in/out). */
typedef struct avg_bins {
    int in, out;
    int start[6], end[6];
} avg_bins;

static const avg_bins BINS_13_6 = { 13, 6, { 0, 2, 4, 6, 8, 10 }, { 3, 5, 7, 9, 11, 13 } };
static const avg_bins BINS_8_6 = { 8, 6, { 0, 1, 2, 4, 5, 6 }, { 2, 3, 4, 6, 7, 8 } };
static const avg_bins BINS_1_6 = { 1, 6, { 0, 0, 0, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1 } };
static const avg_bins BINS_6_6 = { 6, 6, { 0, 1, 2, 3, 4, 5 }, { 1, 2, 3, 4, 5, 6 } };
static const avg_bins BINS_5_3 = { 5, 3, { 0, 1, 3 }, { 2, 4, 5 } };

/* Planes of rows binned by ry and columns by rx. */
static void check_avgpool_bins(const char *name, const avg_bins *ry, const avg_bins *rx) {
    enum { BC = 2 };
    const int H = ry->in, W = rx->in, Ho = ry->out, Wo = rx->out;
    const size_t n_in = (size_t)BC * H * W, n_out = (size_t)BC * Ho * Wo;
    float *in = malloc(n_in * sizeof *in);                    /* [BC,H,W] */
    float *out = malloc(n_out * sizeof *out);                 /* [BC,Ho,Wo] */
    float *dout = calloc(n_out, sizeof *dout);                /* [BC,Ho,Wo] */
    float *din = malloc(n_in * sizeof *din);                  /* [BC,H,W] */
    double *want = malloc((n_in > n_out ? n_in : n_out) * sizeof *want);
    char label[160];

    /* forward: in = y + 1000·x (+ 100000 on plane 1); a bin's mean is exact */
    for (int pl = 0; pl < BC; pl++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) in[((size_t)pl * H + y) * W + x] = (float)(y + 1000 * x + 100000 * pl);
    avgpool_forward_cpu(out, in, BC, H, W, Ho, Wo, DATH_STORE_F32, NULL);
    for (int pl = 0; pl < BC; pl++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++)
                want[((size_t)pl * Ho + i) * Wo + j] = (ry->start[i] + ry->end[i] - 1) / 2.0 +
                    1000.0 * (rx->start[j] + rx->end[j] - 1) / 2.0 + 100000.0 * pl;
    double *g = to_double(out, n_out);
    snprintf(label, sizeof label, "avgpool %s out (bin means)", name);
    check_close_d(label, g, want, n_out, 0.0, 0.0);
    free(g);

    /* backward of a one-hot dout at every output cell: 1/|bin| on the bin, 0 elsewhere */
    int exact = 1;
    for (int pl = 0; pl < BC; pl++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                size_t o = ((size_t)pl * Ho + i) * Wo + j;
                memset(din, 0, n_in * sizeof *din);
                dout[o] = 1.0f;
                avgpool_backward_cpu(din, dout, BC, H, W, Ho, Wo, NULL);
                dout[o] = 0.0f;
                int count = (ry->end[i] - ry->start[i]) * (rx->end[j] - rx->start[j]);
                for (int q = 0; q < BC; q++)
                    for (int y = 0; y < H; y++)
                        for (int x = 0; x < W; x++) {
                            int inside = q == pl && y >= ry->start[i] && y < ry->end[i] &&
                                         x >= rx->start[j] && x < rx->end[j];
                            float w = inside ? (float)(1.0 / count) : 0.0f;
                            if (fabsf(din[((size_t)q * H + y) * W + x] - w) > 1e-7f * w) exact = 0;
                        }
            }
    snprintf(label, sizeof label, "avgpool %s one-hot backward covers exactly the bin", name);
    CHECK_TRUE(label, exact);
    free(in); free(out); free(dout); free(din); free(want);
}

/* Random planes: forward/backward against direct double loops over PyTorch's bins,
 * finite differences, and the `=` contract. */
static void check_avgpool_random(int BC, int H, int W, int Ho, int Wo, uint64_t *seed) {
    const size_t n_in = (size_t)BC * H * W, n_out = (size_t)BC * Ho * Wo;
    float *in = malloc(n_in * sizeof *in);                    /* [BC,H,W] */
    float *out = malloc(n_out * sizeof *out);                 /* [BC,Ho,Wo] */
    float *r = malloc(n_out * sizeof *r);                     /* [BC,Ho,Wo] */
    float *din = calloc(n_in, sizeof *din), *din2 = calloc(n_in, sizeof *din2);
    double *rout = calloc(n_out, sizeof *rout), *rdin = calloc(n_in, sizeof *rdin);
    char label[128];
    check_fill(in, n_in, -1.0f, 1.0f, seed);
    check_fill(r, n_out, -1.0f, 1.0f, seed);
    for (int pl = 0; pl < BC; pl++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                int y0 = (int)floor((double)i * H / Ho), y1 = (int)ceil((double)(i + 1) * H / Ho);
                int x0 = (int)floor((double)j * W / Wo), x1 = (int)ceil((double)(j + 1) * W / Wo);
                double cnt = (double)(y1 - y0) * (x1 - x0), s = 0.0;
                size_t o = ((size_t)pl * Ho + i) * Wo + j;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        s += in[((size_t)pl * H + y) * W + x];
                        rdin[((size_t)pl * H + y) * W + x] += r[o] / cnt;
                    }
                rout[o] = s / cnt;
            }
    avgpool_forward_cpu(out, in, BC, H, W, Ho, Wo, DATH_STORE_F32, NULL);
    double *g = to_double(out, n_out);
    snprintf(label, sizeof label, "avgpool %dx%dx%d->%dx%d out", BC, H, W, Ho, Wo);
    check_close_d(label, g, rout, n_out, AVG_FWD_ATOL, AVG_FWD_RTOL);
    free(g);
    avgpool_backward_cpu(din, r, BC, H, W, Ho, Wo, NULL);
    g = to_double(din, n_in);
    snprintf(label, sizeof label, "avgpool %dx%dx%d->%dx%d din", BC, H, W, Ho, Wo);
    check_close_d(label, g, rdin, n_in, AVG_BWD_ATOL, AVG_BWD_RTOL);
    free(g);

    double got[FD_PROBES], ref[FD_PROBES];
    for (int t = 0; t < FD_PROBES; t++) {
        size_t e = (size_t)(check_unif(seed) * n_in);
        float x0 = in[e], xp = (float)(x0 + AVG_FD_EPS), xm = (float)(x0 - AVG_FD_EPS);
        double L[2];
        for (int side = 0; side < 2; side++) {
            in[e] = side ? xm : xp;
            avgpool_forward_cpu(out, in, BC, H, W, Ho, Wo, DATH_STORE_F32, NULL);
            L[side] = 0.0;
            for (size_t j = 0; j < n_out; j++) L[side] += (double)r[j] * out[j];
        }
        in[e] = x0;
        got[t] = din[e];
        ref[t] = (L[0] - L[1]) / ((double)xp - (double)xm);
    }
    snprintf(label, sizeof label, "avgpool %dx%dx%d->%dx%d fd din", BC, H, W, Ho, Wo);
    check_close_d(label, got, ref, FD_PROBES, AVG_FD_ATOL, AVG_FD_RTOL);

    check_fill_nan(din2, n_in);
    avgpool_backward_cpu(din2, r, BC, H, W, Ho, Wo, NULL);
    avgpool_backward_cpu(din2, r, BC, H, W, Ho, Wo, NULL);
    snprintf(label, sizeof label, "avgpool %dx%dx%d->%dx%d din after two calls onto NaN (=)", BC, H, W, Ho, Wo);
    CHECK_CLOSE(label, din2, din, n_in, 0.0, 0.0);
    free(in); free(out); free(r); free(din); free(din2); free(rout); free(rdin);
}

int main(void) {
    uint64_t seed = 0x9001;
    check_maxpool_sizes();
    check_maxpool(6, 13, 11, &seed);
    check_maxpool(2, 27, 27, &seed);
    check_maxpool(2, 55, 55, &seed);
    check_maxpool(3, 4, 7, &seed);
    check_maxpool_ties();
    check_maxpool_bf16(4, 27, 27, &seed);
    check_maxpool_bf16(3, 13, 11, &seed);

    check_avgpool_bins("13x5 -> 6x3", &BINS_13_6, &BINS_5_3);
    check_avgpool_bins("5x13 -> 3x6", &BINS_5_3, &BINS_13_6);
    check_avgpool_bins("1x6 -> 6x6", &BINS_1_6, &BINS_6_6);
    check_avgpool_bins("6x1 -> 6x6", &BINS_6_6, &BINS_1_6);
    check_avgpool_bins("8x8 -> 6x6", &BINS_8_6, &BINS_8_6);
    check_avgpool_bins("6x6 -> 6x6 (identity)", &BINS_6_6, &BINS_6_6);
    check_avgpool_random(4, 13, 13, 6, 6, &seed);
    check_avgpool_random(3, 6, 6, 6, 6, &seed);
    check_avgpool_random(3, 7, 10, 6, 6, &seed);
    check_avgpool_random(2, 3, 2, 6, 6, &seed);
    return check_finish();
}
