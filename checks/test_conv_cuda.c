/* checks/test_conv_cuda.c — the CUDA convolutions on both paths (kernels/conv.h): the
 * implicit GEMMs (kernels/conv_implicit.cu, the default) and im2col + cuBLAS
 * (kernels/conv.cu), each against the plain-C reference (kernels/conv.c): forward out,
 * and din, dw, db and the masked dout of the backward, through the backend's multi ops
 * (nw weight sets over one input; nw = 1 is the single op), every output run twice
 * (the same bits: deterministic). Tolerances: fp32's as checks/cuda_check.h's,
 * plus at tf32/bf16 the error band of checks/gemm_error.h, element by element.
 *
 * What runs (no arguments; a few seconds on the emulator, emu):
 *   paths     implicit at fp32 (sm_80+'s cp.async loads), fp32 as sm_61/75 run it (the
 *             context's sm lowered to 75: loads through registers), tf32 and bf16
 *             (tensor cores; skipped below sm_80), bf16 with in and out stored in bf16
 *             (conv.h: every bf16-storage instantiation through the tiles below), and
 *             im2col at fp32, tf32, bf16;
 *   shapes    small AlexNet-like layers: conv1-like (3 → 8, k11 s4 p2: the strided dX
 *             in 16 phases), conv2-like (k5 p2), M past a tile (Co 70), two and three
 *             weight sets (evenly and unevenly spaced, not 16-byte aligned), with and
 *             without din, k1 s2 (dX phases without taps: din zeroed first); each
 *             set's dw and db, and din, start as NaN (the op writes them), the
 *             gaps between sets as random numbers (the op must leave them);
 *   tiles     on the implicit path every tile (128×128, 64×128, 64×64) forced, with K
 *             in one part and in three (the split reduction of the forward, dX and dW),
 *             so every kernel instantiation a device can run is run; with no scratch
 *             at all (ctx->work NULL: no column buffer, no parts); and the bias gradient
 *             in 4 slices a channel (2 sets of 4 channels, B·P = 9216);
 *   real      one real layer: conv3 of DATH at batch 1 (192 → 384, 13×13, k3 p1), every
 *             implicit path and precision.
 * Exits 0 when all pass, 1 on a failure, 77 without CUDA or a GPU. Beside it,
 * checks/test_conv_layers_cuda.c checks the default path at AlexNet's five layers and
 * with several weight sets, on checks/cuda_check.h as the other kernel families. */
#include "check.h"

#ifndef DATH_CUDA

int main(void) {
    check_skip("this build has no CUDA (DATH_CUDA not defined): no CUDA kernels to compare");
    return 77;
}

#else

#include <cuda_runtime.h>
#include <string.h>
#include <time.h>

#include "../host/backend.h"
#include "../host/clock.h"
#pragma GCC diagnostic ignored "-Wunused-function"   /* gemm_error.h: the bands conv does not need */
#include "gemm_error.h"

/* fp32 tolerances: |got − ref| ≤ atol_frac·max|ref| + rtol·|ref| (+ the band) — as
 * checks/cuda_check.h's TOL_FWD, TOL_DGRAD, TOL_WGRAD (its comments say why) */
typedef struct tol { double atol_frac, rtol; } tol;
static const tol TOL_FWD = {1e-5, 1e-4}, TOL_DGRAD = {2e-5, 1e-4}, TOL_WGRAD = {1e-4, 1e-3};

#define TCUDA(call)                                                                    \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "FAIL: CUDA error %s at %s:%d: %s (%s)\n",                 \
                    cudaGetErrorName(e_), __FILE__, __LINE__, cudaGetErrorString(e_),  \
                    #call);                                                            \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static uint64_t seed_state = 0x5eedc0de5ull;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "FAIL: out of host memory\n"); exit(1); }
    return p;
}
static float *hrand(size_t n, float lo, float hi) {
    float *p = xmalloc(n * sizeof *p);
    check_fill(p, n, lo, hi, &seed_state);
    return p;
}
static float *hcopy(const float *x, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memcpy(p, x, n * sizeof *p);
    return p;
}
static float *hsq(const float *x, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = x[i] * x[i];
    return p;
}
static float *hzero(size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memset(p, 0, n * sizeof *p);
    return p;
}
/* a − b; where b is NaN (a region the op writes, filled with NaN so that an op that
 * added to it would fail), a. */
static float *hdiff(const float *a, const float *b, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = isnan(b[i]) ? a[i] : a[i] - b[i];
    return p;
}
static void *dalloc(size_t bytes) {
    void *p = NULL;
    TCUDA(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
static void up(void *d, const void *h, size_t bytes) {
    TCUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
}
static void down(void *h, const void *d, size_t bytes) {
    TCUDA(cudaDeviceSynchronize());
    TCUDA(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
static void poison(void *d, size_t bytes) {
    TCUDA(cudaMemset(d, 0xff, bytes));
    TCUDA(cudaDeviceSynchronize());
}
static void gsync(void) {
    TCUDA(cudaGetLastError());
    TCUDA(cudaDeviceSynchronize());
}

/* got against ref: the fp32 tolerance plus, at tf32/bf16, the band b (NULL: none). */
static int cmp(const char *what, const char *tensor, const float *got, const float *ref, size_t n,
               tol t, const band *b) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    const double atol = t.atol_frac * mx;
    size_t wi = 0;
    double worst = -INFINITY, werr = 0, wtol = 0, ratio = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)ref[i]);
        const double tl = atol + t.rtol * fabs((double)ref[i]) + (b && GE.u > 0 ? band_tol(b, i, ref[i]) : 0.0);
        const double ex = (isnan(got[i]) || isnan(ref[i])) ? INFINITY : err - tl;
        if (tl > 0) ratio = fmax(ratio, err / tl);
        if (ex > 0) ok = 0;
        if (ex > worst) { worst = ex; wi = i; werr = err; wtol = tl; }
    }
    check_count++;
    if (!ok) check_failures++;
    printf("%s %s.%-12s n=%-7zu worst |err| %.3e at [%zu] (got %.7g, ref %.7g; tol %.3e); max err/tol %.3f\n",
           ok ? "ok  " : "FAIL", what, tensor, n, werr, wi, n ? got[wi] : 0.0, n ? ref[wi] : 0.0, wtol, ratio);
    return ok;
}

static int same(const char *what, const char *tensor, const void *a, const void *b, size_t bytes) {
    char name[200];
    snprintf(name, sizeof name, "%s.%s bit-identical over two runs", what, tensor);
    return check_true(name, memcmp(a, b, bytes) == 0);
}

/* ---- one case on one path ------------------------------------------------------------- */

typedef struct conv_case {
    const char *name;
    int B, Ci, H, Co, k, stride, pad;
    int nw;        /* weight sets over the input */
    int uneven;    /* 1: the last set 5 floats further than even spacing */
    int din;       /* the backward computes din */
    int tile;      /* ctx->conv_tile (0: the table's), implicit only */
    int split;     /* ctx->conv_split (0: the table's) */
    int nowork;    /* ctx->work NULL (implicit only) */
    int din_relu;  /* the shape's din_relu: din masked by in > 0 (conv.h) */
} conv_case;

/* sm 0: the device's; store: DATH_STORE_BF16 stores in and out in bf16 (conv.h; the bf16
 * tiles only) */
typedef struct path { const char *name; int algo, precision, sm, store; } path;

static const dath_backend *gpu;
static dath_ctx cctx;
static int dev_major;

static void run_case(const path *pa, dath_ctx *base, const conv_case *c) {
    const double t0 = dath_now();
    const int nw = c->nw, relu = 1;
    conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->H, c->Co, c->k, c->stride, c->pad);
    s.in_store = s.out_store = pa->store;
    s.din_relu = c->din_relu;
    conv2d_shape s32 = s;   /* fp32 tensors (the bands) */
    s32.in_store = s32.out_store = DATH_STORE_F32;
    const size_t nin = (size_t)c->B * c->Ci * c->H * c->H, nwt = (size_t)c->Co * c->Ci * c->k * c->k;
    const size_t nout = (size_t)c->B * c->Co * s.Ho * s.Wo, es = dath_store_size(pa->store);
    char what[160];
    snprintf(what, sizeof what, "%s[%s]", c->name, pa->name);

    dath_ctx ctx = *base;
    ctx.conv_tile = c->tile;
    ctx.conv_split = c->split;
    if (c->nowork) { ctx.work = NULL; ctx.work_bytes = 0; }
    ge_init(pa->precision, dev_major, pa->algo == DATH_CONV_IM2COL);   /* implicit kernels round */

    /* the sets in flat buffers, as in dath's parameter buffer: set j at 3 + j·gap (odd gaps) */
    const size_t gap = nwt + 37, gapb = (size_t)c->Co + 3;
    size_t off[CONV_MULTI_MAX], offb[CONV_MULTI_MAX], offd[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        off[j] = 3 + j * gap + (c->uneven == 1 && j == nw - 1 ? 5 : 0);
        offd[j] = off[j];
        offb[j] = 1 + j * gapb;
    }
    const size_t nflat = 3 + nw * gap + 5, nflatb = 1 + nw * gapb;
    const float bound = 1.0f / sqrtf((float)(c->Ci * c->k * c->k));
    float *x = hrand(nin, -1.0f, 1.0f), *w = hrand(nflat, -bound, bound), *b = hrand(nflatb, -0.1f, 0.1f);
    char *xst = xmalloc(nin * es);    /* x as stored (bf16: x rounded, the same bytes on both sides) */
    for (size_t i = 0; i < nin; i++) {
        dath_store(xst, i, x[i], pa->store);
        x[i] = dath_load(xst, i, pa->store);
    }
    char *out_st = xmalloc(nw * nout * es);   /* the sets' outputs as stored */
    float *po[CONV_MULTI_MAX], *pdw[CONV_MULTI_MAX], *pdb[CONV_MULTI_MAX], *pg[CONV_MULTI_MAX];
    const float *pw[CONV_MULTI_MAX], *pb[CONV_MULTI_MAX], *pout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        po[j] = (float *)(out_st + j * nout * es);
        pout[j] = po[j];
        pw[j] = w + off[j];
        pb[j] = b + offb[j];
    }
    conv2d_forward_multi_cpu(po, (const float *)xst, pw, pb, nw, &s, relu, &cctx);
    float *out_ref = check_widen(out_st, nw * nout, pa->store);

    float *d_x = dalloc(nin * es), *d_w = dalloc(nflat * 4), *d_b = dalloc(nflatb * 4);
    char *d_out = dalloc(nw * nout * es);
    up(d_x, xst, nin * es); up(d_w, w, nflat * 4); up(d_b, b, nflatb * 4);
    float *dpo[CONV_MULTI_MAX], *dpdw[CONV_MULTI_MAX], *dpdb[CONV_MULTI_MAX], *dpg[CONV_MULTI_MAX];
    const float *dpw[CONV_MULTI_MAX], *dpb[CONV_MULTI_MAX], *dpout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        dpo[j] = (float *)(d_out + j * nout * es);
        dpout[j] = dpo[j];
        dpw[j] = d_w + off[j];
        dpb[j] = d_b + offb[j];
    }
    float *got[2];
    char *gst[2] = {xmalloc(nw * nout * es), xmalloc(nw * nout * es)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nw * nout * es);
        gpu->conv2d_forward_multi(dpo, d_x, dpw, dpb, nw, &s, relu, &ctx);
        gsync();
        down(gst[r], d_out, nw * nout * es);
        got[r] = check_widen(gst[r], nw * nout, pa->store);
    }
    /* tf32/bf16: T2² = conv(x², w²) and y = conv(x, w) without bias or ReLU; Ci·k² terms,
     * in as many chains as K parts (each with at most one short block more) */
    conv2d_plan_t pf;
    const int fparts = pa->algo == DATH_CONV_IMPLICIT && !conv2d_plan(&pf, CONV_OP_FWD, &s, nw, &ctx) ? pf.splits : 1;
    band bo = {0};
    if (GE.u > 0) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *z = hzero(nflatb);
        float *t2 = xmalloc(nw * nout * 4), *y = xmalloc(nw * nout * 4);
        float *pt[CONV_MULTI_MAX], *py[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX], *pz[CONV_MULTI_MAX];
        for (int j = 0; j < nw; j++) { pt[j] = t2 + j * nout; py[j] = y + j * nout; pw2[j] = w2 + off[j]; pz[j] = z + offb[j]; }
        conv2d_forward_multi_cpu(pt, x2, pw2, pz, nw, &s32, 0, &cctx);
        conv2d_forward_multi_cpu(py, x, pw, pz, nw, &s32, 0, &cctx);
        bo = band_new(nw * nout);
        band_terms(&bo, t2, y, (long long)c->Ci * c->k * c->k + (long long)GE.bk * fparts, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    tol tf = TOL_FWD;
    if (pa->store == DATH_STORE_BF16) tf.rtol += 1.0 / 128;   /* one bf16 ulp of the stored out */
    cmp(what, "out", got[0], out_ref, nw * nout, tf, &bo);
    same(what, "out", gst[0], gst[1], nw * nout * es);

    /* backward from the reference's outputs (their ReLU masks); dout and din stored as out
     * and in are (conv.h; din starts as NaN: written) */
    float *g = hrand(nw * nout, -0.5f, 1.0f);
    float *din0 = c->din ? hrand(nin, -0.1f, 0.1f) : NULL;
    if (din0) check_fill_nan(din0, nin);              /* din is written (=), not added to */
    float *dw0 = hrand(nflat, -0.1f, 0.1f), *db0 = hrand(nflatb, -0.1f, 0.1f);
    for (int j = 0; j < nw; j++) { check_fill_nan(dw0 + offd[j], nwt); check_fill_nan(db0 + offb[j], (size_t)c->Co); }
    char *g_st = xmalloc(nw * nout * es), *g_rst = xmalloc(nw * nout * es);
    char *din_st = c->din ? xmalloc(nin * es) : NULL, *din_rst = c->din ? xmalloc(nin * es) : NULL;
    for (size_t i = 0; i < nw * nout; i++) {
        dath_store(g_st, i, g[i], pa->store);
        g[i] = dath_load(g_st, i, pa->store);   /* the dout both sides read */
    }
    for (size_t i = 0; c->din && i < nin; i++) dath_store(din_st, i, din0[i], pa->store);
    memcpy(g_rst, g_st, nw * nout * es);
    if (c->din) memcpy(din_rst, din_st, nin * es);
    float *dw_ref = hcopy(dw0, nflat), *db_ref = hcopy(db0, nflatb);
    for (int j = 0; j < nw; j++) { pdw[j] = dw_ref + offd[j]; pdb[j] = db_ref + offb[j]; pg[j] = (float *)(g_rst + j * nout * es); }
    conv2d_backward_multi_cpu((float *)din_rst, pdw, pdb, pg, (const float *)xst, pw, pout, nw, &s, relu, &cctx);
    float *din_ref = c->din ? check_widen(din_rst, nin, pa->store) : NULL, *g_ref = check_widen(g_rst, nw * nout, pa->store);

    up(d_out, out_st, nw * nout * es);
    char *d_g = dalloc(nw * nout * es);
    float *d_dw = dalloc(nflat * 4), *d_db = dalloc(nflatb * 4);
    float *d_din = c->din ? dalloc(nin * es) : NULL;
    for (int j = 0; j < nw; j++) { dpdw[j] = d_dw + offd[j]; dpdb[j] = d_db + offb[j]; dpg[j] = (float *)(d_g + j * nout * es); }
    float *gd[2] = {NULL, NULL}, *gw[2], *gb[2], *gg[2];
    char *gdst[2] = {NULL, NULL}, *ggst[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g_st, nw * nout * es); up(d_dw, dw0, nflat * 4); up(d_db, db0, nflatb * 4);
        if (c->din) up(d_din, din_st, nin * es);
        gpu->conv2d_backward_multi(d_din, dpdw, dpdb, dpg, d_x, dpw, dpout, nw, &s, relu, &ctx);
        gsync();
        if (c->din) { gdst[r] = xmalloc(nin * es); down(gdst[r], d_din, nin * es); gd[r] = check_widen(gdst[r], nin, pa->store); }
        gw[r] = xmalloc(nflat * 4); gb[r] = xmalloc(nflatb * 4); ggst[r] = xmalloc(nw * nout * es);
        down(gw[r], d_dw, nflat * 4); down(gb[r], d_db, nflatb * 4); down(ggst[r], d_g, nw * nout * es);
        gg[r] = check_widen(ggst[r], nw * nout, pa->store);
    }
    /* bands: din Co terms a window, up to ⌈k/stride⌉² windows and nw sets; dw B·Ho·Wo terms
     * in chunks of images or K parts (at most B + parts short blocks more) */
    conv2d_plan_t pw_;
    const int wparts = pa->algo == DATH_CONV_IMPLICIT && !conv2d_plan(&pw_, CONV_OP_DW, &s, nw, &ctx) ? pw_.splits : 1;
    band bdin = {0}, bdw = {0};
    if (GE.u > 0) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *g2 = hsq(g, nw * nout);
        float *din2 = c->din ? hzero(nin) : NULL, *dw2 = hzero(nflat), *db2 = hzero(nflatb);
        float *pdw2[CONV_MULTI_MAX], *pdb2[CONV_MULTI_MAX], *pg2[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX];
        const float *po32[CONV_MULTI_MAX];   /* the same masks, widened */
        for (int j = 0; j < nw; j++) {
            pdw2[j] = dw2 + offd[j]; pdb2[j] = db2 + offb[j]; pg2[j] = g2 + j * nout; pw2[j] = w2 + off[j];
            po32[j] = out_ref + j * nout;
        }
        conv2d_backward_multi_cpu(din2, pdw2, pdb2, pg2, x2, pw2, po32, nw, &s32, relu, &cctx);
        if (c->din) {
            const int win = (c->k + c->stride - 1) / c->stride;
            float *y = hdiff(din_ref, din0, nin);
            bdin = band_new(nin);
            band_terms(&bdin, din2, y, c->Co, (double)nw * win * win);
            free(y);
        }
        float *y = hdiff(dw_ref, dw0, nflat);
        bdw = band_new(nflat);
        band_terms(&bdw, dw2, y, (long long)c->B * s.Ho * s.Wo + (long long)GE.bk * (c->B + wparts),
                   1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    if (c->din) {
        tol td = TOL_DGRAD;
        if (pa->store == DATH_STORE_BF16) td.rtol += 1.0 / 128;   /* one bf16 ulp of the stored din */
        cmp(what, "din", gd[0], din_ref, nin, td, &bdin);
        same(what, "din", gdst[0], gdst[1], nin * es);
    }
    cmp(what, "dw(flat)", gw[0], dw_ref, nflat, TOL_WGRAD, &bdw);
    same(what, "dw", gw[0], gw[1], nflat * 4);
    cmp(what, "db(flat)", gb[0], db_ref, nflatb, TOL_WGRAD, NULL);
    same(what, "db", gb[0], gb[1], nflatb * 4);
    char name[240];
    snprintf(name, sizeof name, "%s.dout masked by out > 0 as the reference (bit for bit)", what);
    check_true(name, memcmp(gg[0], g_ref, nw * nout * 4) == 0 && memcmp(ggst[0], g_rst, nw * nout * es) == 0);
    printf("     %s: %.2f s\n", what, dath_now() - t0);

    for (int r = 0; r < 2; r++) {
        free(got[r]); free(gst[r]); free(gd[r]); free(gdst[r]); free(gw[r]); free(gb[r]); free(gg[r]); free(ggst[r]);
    }
    free(x); free(xst); free(out_st); free(w); free(b); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref); free(g_st); free(g_rst); free(din_st); free(din_rst);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_dw); cudaFree(d_db); cudaFree(d_din);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) check_skip("no GPU visible");
    char why[256] = "", err[256];
    gpu = backend_cuda(why, sizeof why);
    if (!gpu) check_skip(why);
    struct cudaDeviceProp prop;
    TCUDA(cudaGetDeviceProperties(&prop, 0));
    dev_major = prop.major;
    const int dev_sm = prop.major * 10 + prop.minor;

    /* the cases: name, B, Ci, H, Co, k, stride, pad, nw, uneven, din, tile, split, nowork */
    static const conv_case small[] = {
        {"conv1-like x2", 2, 3, 23, 8, 11, 4, 2, 2, 0, 1, 0, 0, 0},
        {"conv2-like", 2, 8, 9, 12, 5, 1, 2, 1, 0, 1, 0, 0, 0},
        {"Co70 uneven x3", 2, 6, 7, 70, 3, 1, 1, 3, 1, 1, 0, 0, 0},
        {"x2 without din", 2, 5, 6, 9, 3, 1, 1, 2, 0, 0, 0, 0, 0},
        {"k1 s2 x2 (dX phases without taps)", 2, 4, 7, 6, 1, 2, 0, 2, 0, 1, 0, 0, 0},
        {"conv1-like x2, din masked by in > 0", 2, 3, 23, 8, 11, 4, 2, 2, 0, 1, 0, 0, 0, 1},
        {"conv2-like, din masked by in > 0", 2, 8, 9, 12, 5, 1, 2, 1, 0, 1, 0, 0, 0, 1},
    };
    static const conv_case tiles[] = {   /* implicit only: every tile, K whole and in 3 parts */
        {"t128x128", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_128x128 + 1, 1, 0},
        {"t128x128 3 parts", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_128x128 + 1, 3, 0},
        {"t64x128", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_64x128 + 1, 1, 0},
        {"t64x128 3 parts", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_64x128 + 1, 3, 0},
        {"t64x64", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_64x64 + 1, 1, 0},
        {"t64x64 3 parts", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_64x64 + 1, 3, 0},
        {"t64x128 3 parts, din masked", 2, 12, 9, 20, 3, 1, 1, 2, 0, 1, CONV_TILE_64x128 + 1, 3, 0, 1},
        {"no scratch", 2, 12, 9, 20, 3, 1, 1, 1, 0, 1, 0, 4, 1},
        {"db in 4 slices x2", 4, 2, 48, 4, 3, 1, 1, 2, 0, 1, 0, 0, 0},   /* B·P = 9216 */
    };
    static const conv_case real[] = {
        {"conv3 B1 (DATH's, 192->384 13x13 k3 p1)", 1, 192, 13, 384, 3, 1, 1, 1, 0, 1, 0, 0, 0},
    };
    const path paths[] = {
        {"implicit fp32", DATH_CONV_IMPLICIT, DATH_FP32, 0, 0},
        {"implicit fp32 sm_75", DATH_CONV_IMPLICIT, DATH_FP32, 75, 0},
        {"implicit tf32", DATH_CONV_IMPLICIT, DATH_TF32, 0, 0},
        {"implicit bf16", DATH_CONV_IMPLICIT, DATH_BF16, 0, 0},
        {"implicit bf16, bf16 storage", DATH_CONV_IMPLICIT, DATH_BF16, 0, DATH_STORE_BF16},
        {"im2col fp32", DATH_CONV_IM2COL, DATH_FP32, 0, 0},
        {"im2col tf32", DATH_CONV_IM2COL, DATH_TF32, 0, 0},
        {"im2col bf16", DATH_CONV_IM2COL, DATH_BF16, 0, 0},
    };
    /* one scratch for every case: the im2col path's need (the implicit path's parts fit) */
    size_t work = 0;
    const conv_case *all[3] = {small, tiles, real};
    const size_t nall[3] = {sizeof small / sizeof small[0], sizeof tiles / sizeof tiles[0], 1};
    for (int g = 0; g < 3; g++)
        for (size_t i = 0; i < nall[g]; i++) {
            const conv_case *c = &all[g][i];
            conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->H, c->Co, c->k, c->stride, c->pad);
            size_t b = conv2d_work_bytes_multi(&s, c->nw);
            if (b > work) work = b;
        }
    if (backend_cpu()->ctx_init(&cctx, work, DATH_FP32, err, sizeof err)) {
        fprintf(stderr, "FAIL: CPU ctx_init: %s\n", err);
        return 1;
    }
    printf("device: %s (sm_%d)\n", gpu->device, dev_sm);
    const double t0 = dath_now();
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        const path *pa = &paths[p];
        if (pa->precision != DATH_FP32 && dev_sm < 80) {
            printf("skip %s: tf32/bf16 need sm_80 (this is sm_%d)\n", pa->name, dev_sm);
            continue;
        }
        dath_ctx ctx;
        if (gpu->ctx_init(&ctx, work, pa->precision, err, sizeof err)) {
            fprintf(stderr, "FAIL: CUDA ctx_init (%s): %s\n", pa->name, err);
            return 1;
        }
        ctx.conv_algo = pa->algo;
        if (pa->sm && pa->sm < ctx.sm) ctx.sm = pa->sm;
        if (p == 0) {   /* the slices case takes the two-kernel bias gradient, the others one */
            const conv_case *c = &tiles[nall[1] - 1];
            conv2d_shape s = conv2d_make_shape(c->B, c->Ci, c->H, c->H, c->Co, c->k, c->stride, c->pad);
            conv2d_shape s2 = conv2d_make_shape(2, 8, 9, 12, 5, 1, 2, 1);
            CHECK_TRUE("\"db in 4 slices x2\" sums its bias gradient in 4 slices, conv2-like in 1",
                       conv2d_bgrad_slices(&s, c->nw, &ctx) == 4 && conv2d_bgrad_slices(&s2, 1, &ctx) == 1);
            conv2d_shape s3 = conv2d_make_shape(2, 4, 7, 7, 6, 1, 2, 0);
            conv2d_shape s4 = conv2d_make_shape(1, 3, 63, 63, 8, 11, 4, 2);
            CHECK_TRUE("k1 s2: dX phases without taps (din zeroed, then added to); k3 s1 and k11 s4 covered",
                       !conv2d_dx_covers(&s3) && conv2d_dx_covers(&s) && conv2d_dx_covers(&s4));
        }
        printf("-- %s (sm %d as the kernels see it)\n", pa->name, ctx.sm);
        for (size_t i = 0; i < nall[0]; i++) run_case(pa, &ctx, &small[i]);
        if (pa->algo == DATH_CONV_IMPLICIT) {
            for (size_t i = 0; i < nall[1]; i++) run_case(pa, &ctx, &tiles[i]);
            run_case(pa, &ctx, &real[0]);
        }
        gpu->ctx_free(&ctx);
    }
    printf("-- all paths: %.1f s\n", dath_now() - t0);
    backend_cpu()->ctx_free(&cctx);
    return check_finish();
}

#endif
