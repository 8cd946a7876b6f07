/* checks/test_conv.c — the convolution reference (kernels/conv.c) against
 *   - a direct convolution in double (forward, and the backward's dw/db/din),
 *   - central finite differences of L = Σ r ⊙ out (double) through the float forward,
 *     on random subsets of in/w/b. With ReLU, r is 0 on every output whose
 *     pre-activation lies within FD_KINK_MARGIN of 0, more than any probe's ±eps can
 *     move it, so L has no kink within a probe's reach;
 *   - the contract: dw, db written (=: two calls onto NaN-filled buffers give one call's
 *     gradient, an empty batch zeros), din written as well, din = NULL, and dout's
 *     documented clobbering (the pre-ReLU gradient);
 *   - conv2d_make_shape / conv2d_work_bytes(_multi) on AlexNet's shapes;
 *   - the multi ops (nw weight sets over one input, one im2col) against nw single
 *     calls: out, dw, db and the clobbered dout bit for bit when both run the batch in
 *     the same chunks (whole batch, two-image chunks, malloc'ed), din within
 *     MULTI_DIN_* (the multi op sums the nw column gradients before one col2im); nw = 1,
 *     2 and CONV_MULTI_MAX, relu on and off; nw out of range, overlapping dw, or no
 *     scratch, aborts with a message (kernels/common.h's scratch policy).
 * Shapes are AlexNet-like at small sizes; a 224×224 batch runs in several im2col
 * chunks: malloc'ed, in a ctx->work of three images, of the whole batch, and with a
 * ctx->work too small for one image (the malloc fallback).
 * The implicit CUDA path's plain-C parts (kernels/conv.h, kernels/conv_plan.c):
 *   - conv_fdiv (multiply-high division) against `/` for every divisor the kernels use
 *     at DATH's shapes and many others, on dividends up to 2^31 − 1;
 *   - the data gradient's phases: over every pixel and tap of several strided shapes,
 *     each (pixel, tap) pair that reaches an output lies in exactly one phase, at the
 *     output the phase formula gives, and the phases' GEMM sizes add up;
 *   - conv2d_plan: the tile table kernels/conv_plan.c writes down for DATH at batch 128
 *     and 1, forced tiles and parts, and the K split shrinking to fit ctx->work. */
#include "check.h"
#include "../kernels/conv.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* forward, float vs the double direct convolution: GEMM rounding over R ≤ 363 terms */
#define FWD_ATOL 2e-6
#define FWD_RTOL 1e-6
/* backward vs the direct double backward (sums over ≤ 2·16·16 = 512 products for dw) */
#define BWD_DW_ATOL 2e-5
#define BWD_DW_RTOL 1e-5
#define BWD_DB_ATOL 1e-6
#define BWD_DB_RTOL 2e-7
#define BWD_DIN_ATOL 5e-7
#define BWD_DIN_RTOL 5e-7
/* finite differences through the float forward. The conv is linear in each probed
 * element away from ReLU kinks, so the error is only the forward's rounding divided
 * by 2·eps; eps is large, as FD_KINK_MARGIN leaves room for it. */
#define FD_EPS_IN 1e-2
#define FD_EPS_W 1e-2
#define FD_EPS_B 1e-2
#define FD_IN_ATOL 3e-5
#define FD_IN_RTOL 1e-4
#define FD_W_ATOL 5e-5
#define FD_W_RTOL 2e-4
#define FD_B_ATOL 3e-5
#define FD_B_RTOL 1e-4
#define FD_PROBES 24          /* probed elements per tensor */
/* A probe moves a pre-activation by at most eps·max(|in|, |w|, 1) = eps (|in| ≤ 1,
 * |w| ≤ 1/√(Ci·k·k)); twice that keeps every r ≠ 0 output on its side of the kink. */
#define FD_KINK_MARGIN 2e-2
/* the 224×224 batch: dw sums 8·55·55 products of the chunked GEMM, in float */
#define BIG_DW_ATOL 8e-5
#define BIG_DW_RTOL 1e-5
/* multi vs nw single calls, din only (nw >= 2): single calls add each set's col2im
 * to din in turn, the multi op adds set 1's column gradient to set 0's first, then
 * folds once: a different rounding order of the same few terms (|din| ~ 1), a few ulp */
#define MULTI_DIN_ATOL 1e-6
#define MULTI_DIN_RTOL 1e-6

typedef struct conv_case {
    const char *name;
    int B, Ci, H, W, Co, k, stride, pad;
} conv_case;

static double *to_double(const float *x, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static int close_fd(const char *name, const float *got, const double *ref, size_t n,
                    double atol, double rtol) {
    double *g = to_double(got, n);
    int ok = check_close_d(name, g, ref, n, atol, rtol);
    free(g);
    return ok;
}

/* out [B,Co,Ho,Wo] = the direct convolution in double, ReLU'd when relu. */
static void naive_forward(double *out, const float *in, const float *w, const float *b,
                          const conv2d_shape *s, int relu) {
    for (int bi = 0; bi < s->B; bi++)
        for (int co = 0; co < s->Co; co++)
            for (int oy = 0; oy < s->Ho; oy++)
                for (int ox = 0; ox < s->Wo; ox++) {
                    double acc = b[co];
                    for (int ci = 0; ci < s->Ci; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                acc += (double)in[((size_t)(bi * s->Ci + ci) * s->H + iy) * s->W + ix] *
                                       w[((size_t)(co * s->Ci + ci) * s->k + ky) * s->k + kx];
                            }
                    if (relu && acc < 0) acc = 0;
                    out[((size_t)(bi * s->Co + co) * s->Ho + oy) * s->Wo + ox] = acc;
                }
}

/* The direct backward in double: g = dout ⊙ (out > 0 when relu);
 * dw = Σ g·in, db = Σ g, din = Σ g·w (all assigned). */
static void naive_backward(double *din, double *dw, double *db, const float *dout,
                           const float *in, const float *w, const float *out,
                           const conv2d_shape *s, int relu) {
    memset(din, 0, (size_t)s->B * s->Ci * s->H * s->W * sizeof *din);
    memset(dw, 0, (size_t)s->Co * s->Ci * s->k * s->k * sizeof *dw);
    memset(db, 0, (size_t)s->Co * sizeof *db);
    for (int bi = 0; bi < s->B; bi++)
        for (int co = 0; co < s->Co; co++)
            for (int oy = 0; oy < s->Ho; oy++)
                for (int ox = 0; ox < s->Wo; ox++) {
                    size_t o = ((size_t)(bi * s->Co + co) * s->Ho + oy) * s->Wo + ox;
                    double g = (relu && !(out[o] > 0.0f)) ? 0.0 : dout[o];
                    db[co] += g;
                    for (int ci = 0; ci < s->Ci; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                size_t ii = ((size_t)(bi * s->Ci + ci) * s->H + iy) * s->W + ix;
                                size_t wi = ((size_t)(co * s->Ci + ci) * s->k + ky) * s->k + kx;
                                dw[wi] += g * in[ii];
                                din[ii] += g * w[wi];
                            }
                }
}

/* L = Σ r ⊙ out through the float forward. */
static double conv_loss(float *out, const float *in, const float *w, const float *b,
                        const float *r, const conv2d_shape *s, int relu) {
    conv2d_forward_cpu(out, in, w, b, s, relu, NULL);
    size_t n = (size_t)s->B * s->Co * s->Ho * s->Wo;
    double L = 0.0;
    for (size_t i = 0; i < n; i++) L += (double)r[i] * out[i];
    return L;
}

/* Central differences of L w.r.t. FD_PROBES random elements of x (one of in/w/b),
 * compared with the analytic gradient g [n]. The step actually taken, xp − xm in
 * float, is the denominator. */
static void fd_tensor(const char *name, float *x, size_t n, const float *g, double eps,
                      double atol, double rtol, float *in, float *w, float *b,
                      const float *r, const conv2d_shape *s, int relu, uint64_t *seed) {
    float *out = malloc((size_t)s->B * s->Co * s->Ho * s->Wo * sizeof *out);   /* [B,Co,Ho,Wo] */
    double got[FD_PROBES], ref[FD_PROBES];
    for (int t = 0; t < FD_PROBES; t++) {
        size_t e = (size_t)(check_unif(seed) * n);
        float x0 = x[e];
        float xp = (float)(x0 + eps), xm = (float)(x0 - eps);
        x[e] = xp;
        double Lp = conv_loss(out, in, w, b, r, s, relu);
        x[e] = xm;
        double Lm = conv_loss(out, in, w, b, r, s, relu);
        x[e] = x0;
        got[t] = g[e];
        ref[t] = (Lp - Lm) / ((double)xp - (double)xm);
    }
    check_close_d(name, got, ref, FD_PROBES, atol, rtol);
    free(out);
}

typedef struct conv_data {
    conv2d_shape s;
    size_t n_in, n_w, n_out;
    float *in, *w, *b, *r, *out;     /* [B,Ci,H,W] [Co,Ci,k,k] [Co] [B,Co,Ho,Wo] ×2 */
    float *din, *dw, *db, *dout;     /* gradients of one backward call from zero */
} conv_data;

/* Random in/w/b/r; with relu, r = 0 wherever the pre-activation (in double) is within
 * FD_KINK_MARGIN of 0. */
static void data_init(conv_data *d, const conv_case *c, int relu, uint64_t *seed) {
    d->s = conv2d_make_shape(c->B, c->Ci, c->H, c->W, c->Co, c->k, c->stride, c->pad);
    const conv2d_shape *s = &d->s;
    d->n_in = (size_t)s->B * s->Ci * s->H * s->W;
    d->n_w = (size_t)s->Co * s->Ci * s->k * s->k;
    d->n_out = (size_t)s->B * s->Co * s->Ho * s->Wo;
    d->in = malloc(d->n_in * sizeof(float));
    d->w = malloc(d->n_w * sizeof(float));
    d->b = malloc(s->Co * sizeof(float));
    d->r = malloc(d->n_out * sizeof(float));
    d->out = malloc(d->n_out * sizeof(float));
    d->din = calloc(d->n_in, sizeof(float));
    d->dw = calloc(d->n_w, sizeof(float));
    d->db = calloc(s->Co, sizeof(float));
    d->dout = malloc(d->n_out * sizeof(float));
    float a = 1.0f / sqrtf((float)(s->Ci * s->k * s->k));   /* keeps out ~ O(1) */
    check_fill(d->in, d->n_in, -1.0f, 1.0f, seed);
    check_fill(d->w, d->n_w, -a, a, seed);
    check_fill(d->b, s->Co, -0.2f, 0.2f, seed);
    check_fill(d->r, d->n_out, -1.0f, 1.0f, seed);
    if (relu) {
        double *z = malloc(d->n_out * sizeof *z);                 /* [B,Co,Ho,Wo] */
        naive_forward(z, d->in, d->w, d->b, s, 0);
        for (size_t i = 0; i < d->n_out; i++)
            if (fabs(z[i]) < FD_KINK_MARGIN) d->r[i] = 0.0f;
        free(z);
    }
}

static void data_free(conv_data *d) {
    free(d->in); free(d->w); free(d->b); free(d->r); free(d->out);
    free(d->din); free(d->dw); free(d->db); free(d->dout);
}

/* The direct double implementation's out and gradients (dout = r). */
typedef struct conv_ref {
    double *out, *din, *dw, *db;     /* [B,Co,Ho,Wo] [B,Ci,H,W] [Co,Ci,k,k] [Co] */
} conv_ref;

static void ref_init(conv_ref *ref, const conv_data *d, int relu) {
    ref->out = malloc(d->n_out * sizeof(double));
    ref->din = malloc(d->n_in * sizeof(double));
    ref->dw = malloc(d->n_w * sizeof(double));
    ref->db = malloc(d->s.Co * sizeof(double));
    float *mask = malloc(d->n_out * sizeof(float));   /* the double forward's out, for its sign */
    naive_forward(ref->out, d->in, d->w, d->b, &d->s, relu);
    for (size_t i = 0; i < d->n_out; i++) mask[i] = ref->out[i] > 0.0 ? 1.0f : 0.0f;
    naive_backward(ref->din, ref->dw, ref->db, d->r, d->in, d->w, mask, &d->s, relu);
    free(mask);
}

static void ref_free(conv_ref *ref) {
    free(ref->out); free(ref->din); free(ref->dw); free(ref->db);
}

/* Forward, then one backward from zeroed gradients with dout = r, on ctx; compared with
 * ref. Leaves d's out and gradients filled. */
static void check_against_naive(conv_data *d, const conv_ref *ref, const char *name, int relu,
                                dath_ctx *ctx, double dw_atol, double dw_rtol) {
    const conv2d_shape *s = &d->s;
    char label[200];
    conv2d_forward_cpu(d->out, d->in, d->w, d->b, s, relu, ctx);
    snprintf(label, sizeof label, "%s relu=%d out", name, relu);
    close_fd(label, d->out, ref->out, d->n_out, FWD_ATOL, FWD_RTOL);

    memset(d->din, 0, d->n_in * sizeof(float));
    memset(d->dw, 0, d->n_w * sizeof(float));
    memset(d->db, 0, s->Co * sizeof(float));
    memcpy(d->dout, d->r, d->n_out * sizeof(float));
    conv2d_backward_cpu(d->din, d->dw, d->db, d->dout, d->in, d->w, d->out, s, relu, ctx);
    snprintf(label, sizeof label, "%s relu=%d dw", name, relu);
    close_fd(label, d->dw, ref->dw, d->n_w, dw_atol, dw_rtol);
    snprintf(label, sizeof label, "%s relu=%d db", name, relu);
    close_fd(label, d->db, ref->db, s->Co, BWD_DB_ATOL, BWD_DB_RTOL);
    snprintf(label, sizeof label, "%s relu=%d din", name, relu);
    close_fd(label, d->din, ref->din, d->n_in, BWD_DIN_ATOL, BWD_DIN_RTOL);

    /* the header's clobber: dout now holds r ⊙ (out > 0) when relu, r otherwise */
    int same = 1;
    for (size_t i = 0; i < d->n_out; i++) {
        float want = (relu && !(d->out[i] > 0.0f)) ? 0.0f : d->r[i];
        if (d->dout[i] != want) same = 0;
    }
    snprintf(label, sizeof label, "%s relu=%d dout holds the pre-ReLU gradient", name, relu);
    CHECK_TRUE(label, same);
}

static void check_fd(conv_data *d, const char *name, int relu, uint64_t *seed) {
    char label[160];
    snprintf(label, sizeof label, "%s relu=%d fd din", name, relu);
    fd_tensor(label, d->in, d->n_in, d->din, FD_EPS_IN, FD_IN_ATOL, FD_IN_RTOL,
              d->in, d->w, d->b, d->r, &d->s, relu, seed);
    snprintf(label, sizeof label, "%s relu=%d fd dw", name, relu);
    fd_tensor(label, d->w, d->n_w, d->dw, FD_EPS_W, FD_W_ATOL, FD_W_RTOL,
              d->in, d->w, d->b, d->r, &d->s, relu, seed);
    snprintf(label, sizeof label, "%s relu=%d fd db", name, relu);
    fd_tensor(label, d->b, d->s.Co, d->db, FD_EPS_B, FD_B_ATOL, FD_B_RTOL,
              d->in, d->w, d->b, d->r, &d->s, relu, seed);
}

/* Two backward calls, din, dw and db starting at NaN: each is one call's gradient, bit
 * for bit (=: whatever they held is gone);
 * a call with din = NULL gives the same dw/db; an empty batch writes zeros. d holds one
 * call's gradients already. */
static void check_accumulate(conv_data *d, const char *name, int relu) {
    const conv2d_shape *s = &d->s;
    char label[160];
    float *din2 = malloc(d->n_in * sizeof(float)), *dw2 = malloc(d->n_w * sizeof(float));
    float *db2 = malloc(s->Co * sizeof(float)), *dout = malloc(d->n_out * sizeof(float));
    check_fill_nan(din2, d->n_in);
    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)s->Co);
    for (int call = 0; call < 2; call++) {
        memcpy(dout, d->r, d->n_out * sizeof(float));
        conv2d_backward_cpu(din2, dw2, db2, dout, d->in, d->w, d->out, s, relu, NULL);
    }
    snprintf(label, sizeof label, "%s relu=%d din after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, din2, d->din, d->n_in, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d dw after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, dw2, d->dw, d->n_w, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d db after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, db2, d->db, s->Co, 0.0, 0.0);

    conv2d_shape empty = *s;
    empty.B = 0;
    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)s->Co);
    conv2d_backward_cpu(din2, dw2, db2, dout, d->in, d->w, d->out, &empty, relu, NULL);
    snprintf(label, sizeof label, "%s relu=%d empty batch: dw = 0", name, relu);
    check_all_zero(label, dw2, d->n_w);
    snprintf(label, sizeof label, "%s relu=%d empty batch: db = 0", name, relu);
    check_all_zero(label, db2, (size_t)s->Co);

    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)s->Co);
    memcpy(dout, d->r, d->n_out * sizeof(float));
    conv2d_backward_cpu(NULL, dw2, db2, dout, d->in, d->w, d->out, s, relu, NULL);
    snprintf(label, sizeof label, "%s relu=%d din=NULL: dw unchanged", name, relu);
    CHECK_CLOSE(label, dw2, d->dw, d->n_w, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d din=NULL: db unchanged", name, relu);
    CHECK_CLOSE(label, db2, d->db, s->Co, 0.0, 0.0);
    free(din2); free(dw2); free(db2); free(dout);
}

static void check_shapes(void) {
    conv2d_shape s = conv2d_make_shape(128, 3, 224, 224, 64, 11, 4, 2);
    CHECK_TRUE("shape conv1 at 224 is 55x55", s.Ho == 55 && s.Wo == 55);
    /* the CUDA im2col path's need (conv.h): col rows 363 padded to 368, and each set's
     * padded weights and their gradient, 2·64·368 floats */
    CHECK_TRUE("conv1's col rows: 3·11·11 = 363 padded to 368; conv2's 64·25 = 1600 kept",
               conv2d_col_rows(&s) == 368 && conv2d_col_rows(&(conv2d_shape){.Ci = 64, .k = 5}) == 1600);
    CHECK_TRUE("work_bytes conv1 at 224, B=128",
               conv2d_work_bytes(&s) == ((size_t)(368 + 64) * 128 * 55 * 55 + 2 * 64 * 368) * 4);
    CHECK_TRUE("work_bytes_multi conv1 at 224, B=128, two streams",
               conv2d_work_bytes_multi(&s, 2) == ((size_t)(368 + 2 * 64) * 128 * 55 * 55 + 2 * 2 * 64 * 368) * 4);
    CHECK_TRUE("work_bytes_multi with one set is work_bytes",
               conv2d_work_bytes_multi(&s, 1) == conv2d_work_bytes(&s));
    s = conv2d_make_shape(2, 64, 27, 27, 192, 5, 1, 2);
    CHECK_TRUE("shape conv2 at 27 is 27x27", s.Ho == 27 && s.Wo == 27);
    s = conv2d_make_shape(2, 192, 13, 13, 384, 3, 1, 1);
    CHECK_TRUE("shape conv3 at 13 is 13x13", s.Ho == 13 && s.Wo == 13);
    s = conv2d_make_shape(1, 3, 67, 63, 8, 11, 4, 2);
    CHECK_TRUE("shape 67x63 k11 s4 p2 is 16x15", s.Ho == 16 && s.Wo == 15);
    s = conv2d_make_shape(1, 3, 7, 7, 8, 11, 4, 2);
    CHECK_TRUE("shape 7x7 k11 p2 is 1x1 (exact fit)", s.Ho == 1 && s.Wo == 1);
    s = conv2d_make_shape(1, 3, 6, 7, 8, 11, 4, 2);
    CHECK_TRUE("shape 6x7 k11 p2 is too small (0x0)", s.Ho == 0 && s.Wo == 0);
}

/* ---- several weight sets over one input ------------------------------------------- */

enum { MULTI_WHOLE, MULTI_CHUNKS2, MULTI_MALLOC };
static const char *multi_mode_name[] = { "whole batch", "2-image chunks", "malloc'ed" };

/* Scratch for a multi call with nw sets (nstage = nw) or a single call (nstage = 1):
 * MULTI_WHOLE sizes ctx->work for the whole batch, MULTI_CHUNKS2 for two images, so
 * that both calls take the batch in the same chunks; MULTI_MALLOC hands no ctx->work. */
static dath_ctx multi_ctx(const conv2d_shape *s, int nstage, int mode) {
    dath_ctx ctx = { 0 };
    size_t per_image = conv2d_work_bytes_multi(s, nstage) / (size_t)s->B;
    if (mode == MULTI_WHOLE) ctx.work_bytes = conv2d_work_bytes_multi(s, nstage);
    if (mode == MULTI_CHUNKS2) ctx.work_bytes = 2 * per_image + per_image / 2;
    ctx.work = ctx.work_bytes ? malloc(ctx.work_bytes) : NULL;
    return ctx;
}

/* nw sets (weights, biases and their gradients in flat buffers, set j at an offset
 * that leaves a gap, as in dath's parameter buffer) over one input: the multi forward
 * and backward against nw single calls. Gradients start from the same random values
 * on both sides: the sets' dw and db are written, the gaps between them must keep
 * theirs; din is written with the sum of the sets' data gradients (the single calls'
 * dins added in set order). */
static void check_multi(const conv_case *c, int nw, int relu, int with_din, int mode,
                        uint64_t *seed) {
    const conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->W, c->Co, c->k, c->stride, c->pad);
    const size_t n_in = (size_t)s.B * s.Ci * s.H * s.W, n_w = (size_t)s.Co * s.Ci * s.k * s.k;
    const size_t n_out = (size_t)s.B * s.Co * s.Ho * s.Wo;
    const size_t gap_w = n_w + 13, gap_b = (size_t)s.Co + 3;        /* set j at j·gap */
    const size_t flat_w = (size_t)nw * gap_w, flat_b = (size_t)nw * gap_b;
    float *in = malloc(n_in * sizeof(float));                        /* [B,Ci,H,W] */
    float *w = malloc(flat_w * sizeof(float)), *b = malloc(flat_b * sizeof(float));
    float *out_m = malloc(nw * n_out * sizeof(float));               /* [nw][B,Co,Ho,Wo] */
    float *out_s = malloc(nw * n_out * sizeof(float));
    float *g0 = malloc(nw * n_out * sizeof(float));                  /* dout, as given */
    float *g_m = malloc(nw * n_out * sizeof(float)), *g_s = malloc(nw * n_out * sizeof(float));
    float *dw0 = malloc(flat_w * sizeof(float)), *db0 = malloc(flat_b * sizeof(float));
    float *dw_m = malloc(flat_w * sizeof(float)), *dw_s = malloc(flat_w * sizeof(float));
    float *db_m = malloc(flat_b * sizeof(float)), *db_s = malloc(flat_b * sizeof(float));
    float *din0 = malloc(n_in * sizeof(float));
    float *din_m = malloc(n_in * sizeof(float)), *din_s = malloc(n_in * sizeof(float));
    float a = 1.0f / sqrtf((float)(s.Ci * s.k * s.k));
    check_fill(in, n_in, -1.0f, 1.0f, seed);
    check_fill(w, flat_w, -a, a, seed);
    check_fill(b, flat_b, -0.2f, 0.2f, seed);
    check_fill(g0, nw * n_out, -1.0f, 1.0f, seed);
    check_fill(dw0, flat_w, -0.1f, 0.1f, seed);
    check_fill(db0, flat_b, -0.1f, 0.1f, seed);
    check_fill(din0, n_in, -0.1f, 0.1f, seed);

    float *po[CONV_MULTI_MAX], *pdw[CONV_MULTI_MAX], *pdb[CONV_MULTI_MAX], *pg[CONV_MULTI_MAX];
    const float *pw[CONV_MULTI_MAX], *pb[CONV_MULTI_MAX], *pout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        po[j] = out_m + j * n_out;
        pw[j] = w + j * gap_w;
        pb[j] = b + j * gap_b;
    }
    dath_ctx cm = multi_ctx(&s, nw, mode), cs = multi_ctx(&s, 1, mode);

    /* forward */
    conv2d_forward_multi_cpu(po, in, pw, pb, nw, &s, relu, mode == MULTI_MALLOC ? NULL : &cm);
    for (int j = 0; j < nw; j++)
        conv2d_forward_cpu(out_s + j * n_out, in, pw[j], pb[j], &s, relu,
                           mode == MULTI_MALLOC ? NULL : &cs);
    char label[200];
    snprintf(label, sizeof label, "multi %s nw=%d relu=%d %s: out", c->name, nw, relu,
             multi_mode_name[mode]);
    CHECK_CLOSE(label, out_m, out_s, nw * n_out, 0.0, 0.0);

    /* backward, from the single forward's out on both sides */
    memcpy(g_m, g0, nw * n_out * sizeof(float));
    memcpy(g_s, g0, nw * n_out * sizeof(float));
    memcpy(dw_m, dw0, flat_w * sizeof(float)); memcpy(dw_s, dw0, flat_w * sizeof(float));
    memcpy(db_m, db0, flat_b * sizeof(float)); memcpy(db_s, db0, flat_b * sizeof(float));
    memcpy(din_m, din0, n_in * sizeof(float)); memcpy(din_s, din0, n_in * sizeof(float));
    for (int j = 0; j < nw; j++) {
        pdw[j] = dw_m + j * gap_w;
        pdb[j] = db_m + j * gap_b;
        pg[j] = g_m + j * n_out;
        pout[j] = out_s + j * n_out;
    }
    conv2d_backward_multi_cpu(with_din ? din_m : NULL, pdw, pdb, pg, in, pw, pout, nw, &s, relu,
                              mode == MULTI_MALLOC ? NULL : &cm);
    float *din_j = malloc(n_in * sizeof(float));
    for (int j = 0; j < nw; j++) {
        conv2d_backward_cpu(with_din ? din_j : NULL, dw_s + j * gap_w, db_s + j * gap_b,
                            g_s + j * n_out, in, pw[j], pout[j], &s, relu,
                            mode == MULTI_MALLOC ? NULL : &cs);
        if (with_din)
            for (size_t i = 0; i < n_in; i++) din_s[i] = j ? din_s[i] + din_j[i] : din_j[i];
    }
    free(din_j);
    snprintf(label, sizeof label, "multi %s nw=%d relu=%d %s: dw (flat)", c->name, nw, relu,
             multi_mode_name[mode]);
    CHECK_CLOSE(label, dw_m, dw_s, flat_w, 0.0, 0.0);
    snprintf(label, sizeof label, "multi %s nw=%d relu=%d %s: db (flat)", c->name, nw, relu,
             multi_mode_name[mode]);
    CHECK_CLOSE(label, db_m, db_s, flat_b, 0.0, 0.0);
    snprintf(label, sizeof label, "multi %s nw=%d relu=%d %s: dout (clobbered)", c->name, nw,
             relu, multi_mode_name[mode]);
    CHECK_CLOSE(label, g_m, g_s, nw * n_out, 0.0, 0.0);
    snprintf(label, sizeof label, "multi %s nw=%d relu=%d %s: din%s", c->name, nw, relu,
             multi_mode_name[mode], with_din ? "" : " (NULL: untouched)");
    if (!with_din) CHECK_CLOSE(label, din_m, din0, n_in, 0.0, 0.0);
    else if (nw == 1) CHECK_CLOSE(label, din_m, din_s, n_in, 0.0, 0.0);
    else CHECK_CLOSE(label, din_m, din_s, n_in, MULTI_DIN_ATOL, MULTI_DIN_RTOL);

    free(cm.work); free(cs.work);
    free(in); free(w); free(b); free(out_m); free(out_s); free(g0); free(g_m); free(g_s);
    free(dw0); free(db0); free(dw_m); free(dw_s); free(db_m); free(db_s);
    free(din0); free(din_m); free(din_s);
}

/* Runs fn in a child process with stderr in a pipe: 1 when the child aborted (SIGABRT)
 * and its stderr holds `want`. */
static int aborts_saying(void (*fn)(void), const char *want) {
    int fd[2];
    if (pipe(fd)) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        _exit(0);
    }
    close(fd[1]);
    char buf[1024] = "";
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof buf && (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("     child: %s", buf[0] ? buf : "(nothing on stderr)\n");
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, want) != NULL;
}

enum { NW_BAD = CONV_MULTI_MAX + 1 };
static void multi_forward_too_many(void) {
    const conv2d_shape s = conv2d_make_shape(1, 2, 5, 5, 2, 3, 1, 1);
    float in[2 * 5 * 5] = {0}, w[2 * 2 * 3 * 3] = {0}, b[2] = {0}, out[NW_BAD][2 * 5 * 5];
    float *po[NW_BAD];
    const float *pw[NW_BAD], *pb[NW_BAD];
    for (int j = 0; j < NW_BAD; j++) { po[j] = out[j]; pw[j] = w; pb[j] = b; }
    conv2d_forward_multi_cpu(po, in, pw, pb, NW_BAD, &s, 1, NULL);
}
static void multi_backward_too_many(void) {
    const conv2d_shape s = conv2d_make_shape(1, 2, 5, 5, 2, 3, 1, 1);
    float in[2 * 5 * 5] = {0}, w[2 * 2 * 3 * 3] = {0}, din[2 * 5 * 5] = {0};
    float dw[NW_BAD][2 * 2 * 3 * 3], db[NW_BAD][2], g[NW_BAD][2 * 5 * 5], out[2 * 5 * 5] = {0};
    float *pdw[NW_BAD], *pdb[NW_BAD], *pg[NW_BAD];
    const float *pw[NW_BAD], *pout[NW_BAD];
    for (int j = 0; j < NW_BAD; j++) { pdw[j] = dw[j]; pdb[j] = db[j]; pg[j] = g[j]; pw[j] = w; pout[j] = out; }
    conv2d_backward_multi_cpu(din, pdw, pdb, pg, in, pw, pout, NW_BAD, &s, 1, NULL);
}
/* Two sets whose weight gradients share memory: each is written, so one would be lost. */
static void multi_backward_aliased(void) {
    const conv2d_shape s = conv2d_make_shape(1, 2, 5, 5, 2, 3, 1, 1);
    float in[2 * 5 * 5] = {0}, w[2 * 2 * 3 * 3] = {0}, din[2 * 5 * 5] = {0};
    float dw[2 * 2 * 3 * 3], db[2][2], g[2][2 * 5 * 5] = {{0}}, out[2 * 5 * 5] = {0};
    float *pdw[2] = {dw, dw + 1}, *pdb[2] = {db[0], db[1]}, *pg[2] = {g[0], g[1]};
    const float *pw[2] = {w, w}, *pout[2] = {out, out};
    conv2d_backward_multi_cpu(din, pdw, pdb, pg, in, pw, pout, 2, &s, 1, NULL);
}
/* A scratch that fits no image, and a host allocation that cannot succeed (one image's
 * im2col of a 1×1 convolution to 2^20 channels over 256×256 is 256 GiB):
 * kernels/common.h's policy. The op aborts before it writes anything, so out can be small. */
static void forward_no_scratch(void) {
    const conv2d_shape s = conv2d_make_shape(1, 1, 256, 256, 1 << 20, 1, 1, 0);
    float *in = calloc((size_t)256 * 256, sizeof *in), *w = calloc((size_t)1 << 20, sizeof *w);
    float *b = calloc((size_t)1 << 20, sizeof *b), out[16];
    static float tiny[4];
    dath_ctx ctx = {.work = tiny, .work_bytes = sizeof tiny};
    if (in && w && b) conv2d_forward_cpu(out, in, w, b, &s, 1, &ctx);
    free(in); free(w); free(b);
}

/* nw outside 1..CONV_MULTI_MAX is a caller's bug: both versions abort with a message; and
 * an op that cannot get its scratch aborts too (kernels/common.h), never writes NaN. */
static void check_multi_range(uint64_t *seed) {
    (void)seed;
    CHECK_TRUE("multi forward with nw = CONV_MULTI_MAX + 1 aborts, naming it",
               aborts_saying(multi_forward_too_many, "weight sets, outside 1.."));
    CHECK_TRUE("multi backward with nw = CONV_MULTI_MAX + 1 aborts, naming it",
               aborts_saying(multi_backward_too_many, "weight sets, outside 1.."));
    CHECK_TRUE("multi backward with overlapping dw aborts, naming the sets",
               aborts_saying(multi_backward_aliased, "dw of weight sets 0 and 1 overlap"));
    CHECK_TRUE("a forward with no scratch to be had aborts, naming the op and the bytes",
               aborts_saying(forward_no_scratch, "conv2d_forward_cpu: needs"));
}

/* ---- the implicit path's plain-C parts ------------------------------------------------ */

static void check_fdiv(uint64_t *seed) {
    static const uint32_t ds[] = {1, 2, 3, 4, 5, 7, 9, 11, 13, 15, 25, 27, 55, 64, 121, 169, 192, 225,
                                  363, 729, 1600, 1728, 2304, 3025, 3456, 4096, 49729, 65535, 1000003,
                                  (1u << 30) + 7, 2147483647u};
    long bad = 0, n = 0;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        const conv_fdiv f = conv_fdiv_make(ds[i]);
        uint32_t probes[64 + 8] = {0, 1, ds[i] - 1, ds[i], ds[i] + 1, 2147483646u, 2147483647u, 2147483647u - ds[i] % 2147483647u};
        for (int j = 8; j < 72; j++) probes[j] = (uint32_t)(check_next(seed) & 0x7fffffffu);
        for (int j = 0; j < 72; j++) {
            const uint32_t x = probes[j] & 0x7fffffffu;
            n++;
            if (conv_fdiv_q(f, x) != x / ds[i]) bad++;
        }
        for (uint32_t x = 0; x < 20000; x++) {   /* every small dividend, and its multiples */
            n++;
            if (conv_fdiv_q(f, x) != x / ds[i]) bad++;
            const uint64_t y = (uint64_t)x * ds[i] + ds[i] - 1;
            if (y < 2147483648u) {
                n++;
                if (conv_fdiv_q(f, (uint32_t)y) != (uint32_t)(y / ds[i])) bad++;
            }
        }
    }
    char name[96];
    snprintf(name, sizeof name, "conv_fdiv_q = / (%ld dividends, %zu divisors)", n, sizeof ds / sizeof ds[0]);
    CHECK_TRUE(name, bad == 0);
}

static void check_dx_phases(void) {
    static const int shp[][6] = {{23, 19, 11, 4, 2, 0}, {15, 15, 3, 2, 1, 0}, {10, 8, 3, 2, 0, 0},
                                 {9, 9, 5, 1, 2, 0}, {12, 12, 2, 3, 0, 0}, {8, 8, 1, 2, 0, 0}};
    for (size_t c = 0; c < sizeof shp / sizeof shp[0]; c++) {
        const int H = shp[c][0], W = shp[c][1], k = shp[c][2], st = shp[c][3], pad = shp[c][4];
        conv2d_shape s = conv2d_make_shape(1, 1, H, W, 1, k, st, pad);
        long covered = 0, wrong = 0, want = 0, gemm = 0, pixels = 0;
        for (int y = 0; y < H; y++)      /* (pixel, tap) pairs that reach an output */
            for (int x = 0; x < W; x++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const int ty = y + pad - ky, tx = x + pad - kx;
                        want += ty >= 0 && tx >= 0 && ty % st == 0 && tx % st == 0 && ty / st < s.Ho && tx / st < s.Wo;
                    }
        for (int iy0 = 0; iy0 < st; iy0++)
            for (int ix0 = 0; ix0 < st; ix0++) {
                conv2d_phase ph;
                if (conv2d_dx_phase(&ph, &s, iy0, ix0)) continue;
                pixels += (long)ph.hp * ph.wp;
                gemm += (long)ph.hp * ph.wp * ph.kyn * ph.kxn;
                for (int j = 0; j < ph.hp; j++)
                    for (int i = 0; i < ph.wp; i++)
                        for (int t = 0; t < ph.kyn; t++)
                            for (int u = 0; u < ph.kxn; u++) {
                                const int y = iy0 + st * j, x = ix0 + st * i, ky = ph.ry + st * t, kx = ph.rx + st * u;
                                const int oy = ph.qy + j - t, ox = ph.qx + i - u;
                                if (oy < 0 || ox < 0 || oy >= s.Ho || ox >= s.Wo) continue;
                                covered++;
                                /* the formula's output is the one that pixel and tap reach */
                                if (y >= H || x >= W || ky >= k || kx >= k || oy * st != y + pad - ky ||
                                    ox * st != x + pad - kx)
                                    wrong++;
                            }
            }
        char name[128];
        snprintf(name, sizeof name, "dX phases %dx%d k%d s%d p%d: %ld pairs, each in one phase", H, W, k, st, pad, want);
        CHECK_TRUE(name, covered == want && wrong == 0);
        /* every pixel in a phase with taps, unless no tap reaches it (k < stride) */
        snprintf(name, sizeof name, "dX phases %dx%d k%d s%d: pixels %ld, GEMM terms %ld >= pairs", H, W, k, st, pixels, gemm);
        CHECK_TRUE(name, pixels <= (long)H * W && gemm >= want && (k < st || pixels == (long)H * W));
    }
}

/* kernels/conv_plan.c's table for DATH (B = 128 and 1, 224×224, tensor cores and FMA). */
static void check_plan_table(void) {
    static const int L[5][6] = {{3, 224, 64, 11, 4, 2}, {64, 27, 192, 5, 1, 2}, {192, 13, 384, 3, 1, 1},
                                {384, 13, 256, 3, 1, 1}, {256, 13, 256, 3, 1, 1}};
    /* tile, parts, blocks of forward, dX, dW at B = 128; forward at B = 1 */
    static const int want128[5][3][3] = {
        {{CONV_TILE_128x128, 1, 3025}, {-1, 0, 0}, {CONV_TILE_128x128, 64, 192}},
        {{CONV_TILE_64x128, 1, 2187}, {CONV_TILE_64x128, 1, 729}, {CONV_TILE_64x128, 7, 273}},
        {{CONV_TILE_128x128, 1, 507}, {CONV_TILE_64x128, 1, 507}, {CONV_TILE_128x128, 7, 294}},
        {{CONV_TILE_128x128, 1, 338}, {CONV_TILE_128x128, 1, 507}, {CONV_TILE_128x128, 5, 270}},
        {{CONV_TILE_128x128, 1, 338}, {CONV_TILE_128x128, 1, 338}, {CONV_TILE_128x128, 8, 288}}};
    static const int want1[5][3] = {{CONV_TILE_64x64, 1, 96}, {CONV_TILE_64x64, 3, 108}, {CONV_TILE_64x64, 3, 54},
                                    {CONV_TILE_64x64, 6, 72}, {CONV_TILE_64x64, 4, 48}};
    for (int prec = DATH_FP32; prec <= DATH_BF16; prec++) {
        dath_ctx ctx = {0};
        ctx.sm = 90;
        ctx.precision = prec;
        ctx.work = (float *)&ctx;   /* never dereferenced: the plan only sizes the parts */
        ctx.work_bytes = (size_t)1 << 32;
        int bad = 0;
        for (int i = 0; i < 5; i++)
            for (int B = 128; B >= 1; B -= 127) {
                conv2d_shape s = conv2d_make_shape(B, L[i][0], L[i][1], L[i][1], L[i][2], L[i][3], L[i][4], L[i][5]);
                for (int op = 0; op < (B == 1 ? 1 : 3); op++) {
                    if (i == 0 && op == CONV_OP_DX) continue;   /* the image takes no gradient */
                    conv2d_plan_t p;
                    const int *w = B == 1 ? want1[i] : want128[i][op];
                    if (conv2d_plan(&p, op, &s, i == 0 ? 2 : 1, &ctx) || p.tile != w[0] || p.splits != w[1] ||
                        p.mtiles * p.ntiles * p.splits != w[2]) {
                        printf("     conv%d B%d op %d: tile %d parts %d blocks %d, the table says %d %d %d\n", i + 1,
                               B, op, p.tile, p.splits, p.mtiles * p.ntiles * p.splits, w[0], w[1], w[2]);
                        bad++;
                    }
                    if (p.math != (prec == DATH_TF32 ? CONV_MATH_TF32 : prec == DATH_BF16 ? CONV_MATH_BF16 : CONV_MATH_FFMA) ||
                        p.async != (prec != DATH_BF16) || p.smem > 227 * 1024 || p.smem % 128) bad++;
                }
            }
        char name[96];
        snprintf(name, sizeof name, "conv2d_plan: kernels/conv_plan.c's table (%s, sm_90)",
                 prec == DATH_TF32 ? "tf32" : prec == DATH_BF16 ? "bf16" : "fp32");
        CHECK_TRUE(name, bad == 0);
    }
    /* below sm_80: FMA through registers whatever the precision; forced tile and parts;
     * the parts shrink to what ctx->work holds (none without it) */
    conv2d_shape s = conv2d_make_shape(128, 256, 13, 13, 256, 3, 1, 1);
    dath_ctx ctx = {0};
    ctx.sm = 61;
    ctx.precision = DATH_TF32;
    conv2d_plan_t p;
    conv2d_plan(&p, CONV_OP_DW, &s, 1, &ctx);
    CHECK_TRUE("sm_61: FMA, loads through registers, no parts without ctx->work",
               p.math == CONV_MATH_FFMA && !p.async && p.splits == 1 && p.bk == 8 && p.threads == 256);
    ctx.sm = 80;
    ctx.work = (float *)&ctx;
    ctx.work_bytes = (size_t)3 * 256 * 2304 * sizeof(float) + 100;   /* room for 3 parts */
    conv2d_plan(&p, CONV_OP_DW, &s, 1, &ctx);
    CHECK_TRUE("dW parts shrink to the scratch (3 of 8)", p.splits == 3 && p.part_floats == (size_t)3 * 256 * 2304);
    ctx.work_bytes = (size_t)1 << 32;
    ctx.conv_tile = CONV_TILE_64x64 + 1;
    ctx.conv_split = 2;
    conv2d_plan(&p, CONV_OP_FWD, &s, 1, &ctx);
    CHECK_TRUE("forced tile and parts", p.tile == CONV_TILE_64x64 && p.splits == 2 && p.bm == 64 && p.bn == 64 &&
                                            p.threads == 128 && p.kt_split == (p.kt + 1) / 2);
}

/* bf16 storage (conv.h): in and din, out and dout in bf16. The reference widens what it
 * reads and rounds what it stores once, so against its fp32 code on the widened values:
 * out and din the fp32 results rounded to bf16, dw, db and the masked dout equal, bit for
 * bit. The single op with din, and the multi op of two sets. */
static void check_bf16_storage(const conv_case *c, uint64_t *seed) {
    for (int nw = 1; nw <= 2; nw++) {
        conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->W, c->Co, c->k, c->stride, c->pad), sb = s;
        sb.in_store = sb.out_store = DATH_STORE_BF16;
        const size_t nin = (size_t)c->B * c->Ci * c->H * c->W, nwt = (size_t)c->Co * c->Ci * c->k * c->k;
        const size_t nout = (size_t)c->B * c->Co * s.Ho * s.Wo;
        float *x = malloc(nin * 4), *w = malloc(nw * nwt * 4), *b = malloc(nw * (size_t)c->Co * 4);
        float *o32 = malloc(nw * nout * 4), *g32 = malloc(nw * nout * 4), *din32 = malloc(nin * 4);
        float *dw32 = malloc(nw * nwt * 4), *db32 = malloc(nw * (size_t)c->Co * 4);
        float *dw = malloc(nw * nwt * 4), *db = malloc(nw * (size_t)c->Co * 4);
        dath_bf16 *xb = malloc(nin * 2), *ob = malloc(nw * nout * 2), *gb = malloc(nw * nout * 2), *dinb = malloc(nin * 2);
        check_fill(x, nin, -1.0f, 1.0f, seed);
        check_fill(w, nw * nwt, -0.3f, 0.3f, seed);
        check_fill(b, nw * (size_t)c->Co, -0.1f, 0.1f, seed);
        check_fill(g32, nw * nout, -1.0f, 1.0f, seed);
        for (size_t i = 0; i < nin; i++) { xb[i] = dath_bf16_from_float(x[i]); x[i] = dath_bf16_to_float(xb[i]); }
        for (size_t i = 0; i < nw * nout; i++) { gb[i] = dath_bf16_from_float(g32[i]); g32[i] = dath_bf16_to_float(gb[i]); }
        float *po[2], *pob[2], *pdw[2], *pdb[2], *pdw32[2], *pdb32[2], *pg[2], *pgb[2];
        const float *pw[2], *pb[2], *pco[2], *pcob[2];
        for (int j = 0; j < nw; j++) {
            po[j] = o32 + j * nout; pob[j] = (float *)(ob + j * nout); pco[j] = po[j]; pcob[j] = pob[j];
            pw[j] = w + j * nwt; pb[j] = b + j * c->Co;
            pdw[j] = dw + j * nwt; pdb[j] = db + j * c->Co; pdw32[j] = dw32 + j * nwt; pdb32[j] = db32 + j * c->Co;
            pg[j] = g32 + j * nout; pgb[j] = (float *)(gb + j * nout);
        }
        conv2d_forward_multi_cpu(po, x, pw, pb, nw, &s, 1, NULL);
        conv2d_forward_multi_cpu(pob, (const float *)xb, pw, pb, nw, &sb, 1, NULL);
        int same_out = 1;
        for (size_t i = 0; i < nw * nout; i++) {
            same_out &= ob[i] == dath_bf16_from_float(o32[i]);
            o32[i] = dath_bf16_to_float(ob[i]);   /* the mask both backwards see */
        }
        conv2d_backward_multi_cpu(din32, pdw32, pdb32, pg, x, pw, pco, nw, &s, 1, NULL);
        conv2d_backward_multi_cpu((float *)dinb, pdw, pdb, pgb, (const float *)xb, pw, pcob, nw, &sb, 1, NULL);
        int same_din = 1, same_g = 1;
        for (size_t i = 0; i < nin; i++) same_din &= dinb[i] == dath_bf16_from_float(din32[i]);
        for (size_t i = 0; i < nw * nout; i++) same_g &= dath_bf16_to_float(gb[i]) == g32[i];
        char label[200];
        snprintf(label, sizeof label, "%s, %d set%s, bf16 storage: out, din = fp32's rounded; dout masked the same", c->name,
                 nw, nw > 1 ? "s" : "");
        CHECK_TRUE(label, same_out && same_din && same_g);
        snprintf(label, sizeof label, "%s, %d set%s, bf16 storage: dw = fp32's of the widened tensors", c->name, nw, nw > 1 ? "s" : "");
        CHECK_CLOSE(label, dw, dw32, nw * nwt, 0.0, 0.0);
        snprintf(label, sizeof label, "%s, %d set%s, bf16 storage: db = fp32's", c->name, nw, nw > 1 ? "s" : "");
        CHECK_CLOSE(label, db, db32, nw * (size_t)c->Co, 0.0, 0.0);
        free(x); free(w); free(b); free(o32); free(g32); free(din32); free(dw32); free(db32); free(dw); free(db);
        free(xb); free(ob); free(gb); free(dinb);
    }
}

/* din_relu (conv.h): din written as the plain backward's masked by in > 0, bit for bit;
 * dw, db and the masked dout as without it. */
static void check_din_relu(const conv_case *c, uint64_t *seed) {
    conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->W, c->Co, c->k, c->stride, c->pad), sm = s;
    sm.din_relu = 1;
    const size_t nin = (size_t)c->B * c->Ci * c->H * c->W, nwt = (size_t)c->Co * c->Ci * c->k * c->k;
    const size_t nout = (size_t)c->B * c->Co * s.Ho * s.Wo;
    float *x = malloc(nin * 4), *w = malloc(nwt * 4), *b = malloc(c->Co * 4), *o = malloc(nout * 4);
    float *g0 = malloc(nout * 4), *g1 = malloc(nout * 4), *d0 = malloc(nin * 4), *d1 = malloc(nin * 4);
    float *dw0 = malloc(nwt * 4), *dw1 = malloc(nwt * 4), *db0 = malloc(c->Co * 4), *db1 = malloc(c->Co * 4);
    check_fill(x, nin, -1.0f, 1.0f, seed);
    check_fill(w, nwt, -0.3f, 0.3f, seed);
    check_fill(b, c->Co, -0.1f, 0.1f, seed);
    check_fill(g0, nout, -1.0f, 1.0f, seed);
    memcpy(g1, g0, nout * 4);
    conv2d_forward_cpu(o, x, w, b, &s, 1, NULL);
    conv2d_backward_cpu(d0, dw0, db0, g0, x, w, o, &s, 1, NULL);
    conv2d_backward_cpu(d1, dw1, db1, g1, x, w, o, &sm, 1, NULL);
    int masked = 0;
    for (size_t i = 0; i < nin; i++)
        if (!(x[i] > 0.0f)) { masked += d0[i] != 0.0f; d0[i] = 0.0f; }
    char label[160];
    snprintf(label, sizeof label, "%s: din with din_relu = din masked by in > 0", c->name);
    CHECK_CLOSE(label, d1, d0, nin, 0.0, 0.0);
    snprintf(label, sizeof label, "%s: din_relu masked some gradient (%d), and changed neither dw, db nor dout", c->name, masked);
    CHECK_TRUE(label, masked > 0 && !memcmp(dw0, dw1, nwt * 4) && !memcmp(db0, db1, c->Co * 4) && !memcmp(g0, g1, nout * 4));
    free(x); free(w); free(b); free(o); free(g0); free(g1); free(d0); free(d1); free(dw0); free(dw1); free(db0); free(db1);
}

int main(void) {
    uint64_t seed = 0x5eed0c0ffee;
    check_fdiv(&seed);
    check_dx_phases();
    check_plan_table();
    static const conv_case cases[] = {
        { "conv1-like 3->8 k11 s4 p2 67x67", 2, 3, 67, 67, 8, 11, 4, 2 },
        { "conv2-like 4->6 k5 s1 p2 15x15", 3, 4, 15, 15, 6, 5, 1, 2 },
        { "conv3-like 5->4 k3 s1 p1 7x9", 2, 5, 7, 9, 4, 3, 1, 1 },
        { "6->5 k3 s2 p0 10x8", 3, 6, 10, 8, 5, 3, 2, 0 },
        { "pointwise 6->3 k1 5x5", 2, 6, 5, 5, 3, 1, 1, 0 },
    };
    check_shapes();
    check_bf16_storage(&cases[0], &seed);
    check_bf16_storage(&cases[1], &seed);
    check_din_relu(&cases[0], &seed);
    check_din_relu(&cases[2], &seed);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int relu = 0; relu <= 1; relu++) {
            conv_data d;
            conv_ref ref;
            data_init(&d, &cases[c], relu, &seed);
            ref_init(&ref, &d, relu);
            check_against_naive(&d, &ref, cases[c].name, relu, NULL, BWD_DW_ATOL, BWD_DW_RTOL);
            check_fd(&d, cases[c].name, relu, &seed);
            check_accumulate(&d, cases[c].name, relu);
            ref_free(&ref);
            data_free(&d);
        }

    /* 8 images at 224 (col + stage: 4.5 MB an image), in chunks of: 7 + 1 (the 32 MiB
     * malloc cap), 3 + 3 + 2 (ctx->work of three images), 8 (ctx->work of
     * conv2d_work_bytes), and 7 + 1 again (ctx->work short of one image: malloc). */
    static const conv_case big = { "224x224 B=8 3->8 k11 s4 p2", 8, 3, 224, 224, 8, 11, 4, 2 };
    conv_data d;
    conv_ref ref;
    data_init(&d, &big, 1, &seed);
    ref_init(&ref, &d, 1);
    const size_t per_image = conv2d_work_bytes(&d.s) / (size_t)big.B;
    const size_t works[] = { 0, 3 * per_image, conv2d_work_bytes(&d.s), per_image - sizeof(float) };
    const char *how[] = { "malloc", "ctx->work 3 images", "ctx->work whole batch",
                          "ctx->work too small" };
    for (int v = 0; v < 4; v++) {
        dath_ctx ctx = { 0 };
        ctx.work_bytes = works[v];
        ctx.work = works[v] ? malloc(works[v]) : NULL;
        char name[160];
        snprintf(name, sizeof name, "%s, %s", big.name, how[v]);
        check_against_naive(&d, &ref, name, 1, &ctx, BIG_DW_ATOL, BIG_DW_RTOL);
        free(ctx.work);
    }
    ref_free(&ref);
    data_free(&d);

    /* several weight sets over one input: conv1-like (din NULL, as dath's image) and
     * conv2-like (with din), batches of 3 (two chunks of 2 + 1 in MULTI_CHUNKS2) */
    static const conv_case multi_cases[] = {
        { "conv1-like 3->8 k11 s4 p2 67x67", 3, 3, 67, 67, 8, 11, 4, 2 },
        { "conv2-like 4->6 k5 s1 p2 15x15", 3, 4, 15, 15, 6, 5, 1, 2 },
    };
    static const int nws[] = { 1, 2, CONV_MULTI_MAX };
    for (size_t c = 0; c < sizeof multi_cases / sizeof multi_cases[0]; c++)
        for (size_t n = 0; n < sizeof nws / sizeof nws[0]; n++)
            for (int relu = 0; relu <= 1; relu++)
                for (int mode = MULTI_WHOLE; mode <= MULTI_MALLOC; mode++)
                    check_multi(&multi_cases[c], nws[n], relu, (int)c, mode, &seed);
    check_multi_range(&seed);
    return check_finish();
}
