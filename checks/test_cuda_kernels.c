/* checks/test_cuda_kernels.c — every CUDA op (`<op>_cuda`, kernels/<family>.cu) against
 * its plain-C reference (`<op>_cpu`, kernels/<family>.c) on random inputs: forward outputs, every
 * gradient, saved tensors, the loss scalars and triplet counts. Each CUDA op also runs
 * twice on the same inputs and must give the same bits (determinism).
 *
 *   test_cuda_kernels           small shapes (seconds; what compute-sanitizer runs)
 *   test_cuda_kernels --full    DATH's real shapes: batch 128, 224×224 convolutions,
 *                               N = 13×13 attention with C = 256, Cq = 32, fc 9216 →
 *                               4096 → 4096, K ∈ {16, 64}, C ∈ {21, 80}, J1 at B = 128
 *                               (and the 2-GPU global batch 256)
 *   --precision fp32|tf32|bf16  the CUDA context's GEMM precision (default fp32; the CPU
 *                               reference is always fp32). At tf32/bf16 every tensor a
 *                               GEMM feeds (conv, conv_multi, linear, PAM, CAM) gets, on
 *                               top of its fp32 tolerance, the error band of
 *                               checks/gemm_error.h, element by element; the other ops
 *                               do not touch a GEMM and keep their tolerances (exact
 *                               stays exact).
 *
 * Device memory comes from cudaMalloc directly; the op context (stream, cuBLAS
 * handles, scratch) from backend_cuda()->ctx_init, as dath itself makes it. Outputs
 * that an op assigns are poisoned with NaN on the device first; outputs that
 * accumulate (every gradient, see kernels/common.h) start from random values, so "+="
 * is checked too. Backward ops get the reference forward's saved tensors as inputs on
 * both sides, so a ReLU mask or an argmax is the same for both and each op is judged
 * on its own.
 *
 * Exits 0 when all pass, 1 on any failure, 77 (skip) when built without CUDA or when
 * no GPU is visible. Prints a table: op, tensor, worst error, tolerance, pass/fail. */
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
#include "../host/model.h"
#include "../kernels/rng.h"
#include "gemm_error.h"

/* ---- tolerances: |got − ref| ≤ atol_abs + atol_frac·max|ref| + rtol·|ref| --------- */

typedef struct tol {
    double atol_abs;    /* absolute floor */
    double atol_frac;   /* times the largest |ref| of the tensor (cancellation in sums) */
    double rtol;
} tol;

/* Element-wise ops written to round every operation as the reference does (dropout,
 * fusion, tanh's backward, J3's gradient, RMSProp, the transform, the ReLU-masked
 * dout a backward leaves behind, max-pool values and indices): the same bits. */
static const tol TOL_EXACT = {0.0, 0.0, 0.0};
/* tanhf: CUDA's is within 2 ulp, glibc's within 1 or 2: a few ulp (2⁻²³ ≈ 1.2e-7). */
static const tol TOL_TANH = {1e-12, 0.0, 5e-7};
/* Sums of a few terms in another order (max-pool's backward, where up to four windows
 * overlap; the adaptive average pool's means): a few ulp of the largest term, which
 * may cancel, so also 1e-6 of the tensor's largest value. */
static const tol TOL_SUMFEW = {0.0, 1e-6, 1e-6};
/* Values both sides compute in double and round to float once (J1, J2, J3 losses and
 * J1/J2 gradients): an ulp of float, plus a little where a sum cancels. */
static const tol TOL_DOUBLE = {0.0, 1e-6, 1e-6};
/* A forward GEMM (reduction over Ci·k² ≤ 3456, or I ≤ 9216 for fc6) in fp32: cuBLAS
 * and OpenBLAS sum in different orders; each side's error is ~√K·2⁻²⁴ of the terms'
 * magnitudes (~1e-6), so 1e-4 relative, with 1e-5 of the tensor's largest value for
 * outputs that cancel to near 0. */
static const tol TOL_FWD = {0.0, 1e-5, 1e-4};
/* Input gradients: reductions over Co·k² (≤ 6400) or O (≤ 4096), the same sizes. */
static const tol TOL_DGRAD = {0.0, 2e-5, 1e-4};
/* Softmax probabilities and the attention output (a softmax over N = 169 or C = 256
 * of GEMM outputs, then a GEMM over it): forward GEMM error carried through exp. */
static const tol TOL_ATTN = {0.0, 2e-5, 2e-4};
/* Weight and bias gradients: reductions over every pixel of every image (B·Ho·Wo,
 * 387,200 terms at conv1, 128 for the fc layers). The reference sums biases in double;
 * a float GEMM's error over n terms grows like √n·2⁻²⁴ (4e-5 at conv1) of the
 * magnitude: 1e-4 of the tensor's largest value plus 1e-3 relative still catches any
 * wrong index or missing term (errors of order 1). */
static const tol TOL_WGRAD = {0.0, 1e-4, 1e-3};
/* A scalar float reduction (dγ: Σ dout·o over B·C·N = 5.5 M terms): its error is a
 * multiple of 2⁻²⁴·Σ|terms|; 1e-4·Σ|terms| allows ~1700 ulps of accumulated rounding.
 * (atol_abs is filled in per call from Σ|terms|.) */
#define SCALAR_REDUCE_FRAC 1e-4
#define SCALAR_REDUCE_RTOL 1e-4

/* At --precision tf32 or bf16 every tensor a GEMM feeds keeps its fp32 tolerance above and
 * adds, element by element, the error band of checks/gemm_error.h (its header says why,
 * and what margin it leaves at these shapes): 6σ of the operands' conversion errors
 * (σ = 0.82·u·T2 for one GEMM of exact operands, T2 = √Σ t² of its K terms; u = 2^-11 at
 * tf32, 2^-8 at bf16), the fp32 accumulation of the tensor cores' blocks (3 or 5·2^-24
 * per block of 8 or 16 products, times |y| + T2), and a shrink of 3u a conversion when
 * the probe sees the device truncate the operands. Per tensor, the GEMM behind it (K at
 * --full):
 *   conv.*.out           K = Ci·k² (363 to 3456); T2 from the op on x², w²
 *   conv.*.din           K = Co (64 to 384) a window, up to ⌈k/stride⌉² windows (col2im)
 *   conv.*.dw            K = B·Ho·Wo (387,200 at conv1), one chain a chunk of images
 *   conv_multi.*         as conv, set by set; din sums nw·Co terms
 *   linear.*.out, din, dw  K = I (up to 9216), O (up to 4096), B (128)
 *   attention.pam.q,k,v  K = C (256)
 *   attention.pam.a, o, out  softmax of qᵀk (K = Cq = 32) with q, k's errors; o = v·aᵀ
 *                        (K = N = 169 along a's rows); out = γ·o + x
 *   attention.pam.dx, dw*, db*  the backward's chain, stage by stage (test_pam)
 *   attention.cam.a, o, out, dx  e = x·xᵀ (K = N), softmax(−e), o = a·x (K = C), and
 *                        the backward's chain (test_cam)
 * conv's and linear's db and every dγ are no GEMM's (reductions of dout, o): fp32
 * tolerances, as every other op's, whatever the precision. */

/* ---- the result table ------------------------------------------------------------- */

#define MAX_ROWS 512
typedef struct row {
    char op[48], tensor[48];
    size_t n;
    double err, tol;
    int ok;
} row;
static row rows[MAX_ROWS];
static int nrows;

static void table_add(const char *op, const char *tensor, size_t n, double err, double tl,
                      int ok) {
    if (nrows == MAX_ROWS) return;
    row *r = &rows[nrows++];
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->tensor, sizeof r->tensor, "%s", tensor);
    r->n = n; r->err = err; r->tol = tl; r->ok = ok;
}

static void table_print(void) {
    printf("\n%-28s %-14s %10s %12s %12s  %s  (precision %s)\n", "op", "tensor", "n",
           "worst |err|", "tolerance", "result", GE.name);
    for (int i = 0; i < nrows; i++)
        printf("%-28s %-14s %10zu %12.3e %12.3e  %s\n", rows[i].op, rows[i].tensor, rows[i].n,
               rows[i].err, rows[i].tol, rows[i].ok ? "pass" : "FAIL");
}

/* ---- host and device memory ------------------------------------------------------- */

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

static uint64_t seed_state = 0x5eed0fdad1ull;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "FAIL: out of host memory (%zu bytes)\n", bytes); exit(1); }
    return p;
}
static float *hrand(size_t n, float lo, float hi) {
    float *p = xmalloc(n * sizeof *p);
    check_fill(p, n, lo, hi, &seed_state);
    return p;
}
static float *hcopy(const float *src, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}
static void *dalloc(size_t bytes) {
    void *p = NULL;
    TCUDA(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
/* Device copies are synchronous and followed by a device-wide synchronise, so they
 * are ordered with the ops' stream whatever its flags. */
static void up(void *d, const void *h, size_t bytes) {
    TCUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
}
static void down(void *h, const void *d, size_t bytes) {
    TCUDA(cudaDeviceSynchronize());
    TCUDA(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
static void *dup_dev(const void *h, size_t bytes) {
    void *d = dalloc(bytes);
    up(d, h, bytes);
    return d;
}
static void poison(void *d, size_t bytes) {   /* 0xff bytes: NaN floats, −1 ints */
    TCUDA(cudaMemset(d, 0xff, bytes));
    TCUDA(cudaDeviceSynchronize());
}
static void gsync(void) {
    TCUDA(cudaGetLastError());
    TCUDA(cudaDeviceSynchronize());
}

/* ---- comparisons ------------------------------------------------------------------ */

static int cmp(const char *op, const char *tensor, const float *got, const float *ref,
               size_t n, tol t) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    double atol = t.atol_abs + t.atol_frac * mx;
    /* the element furthest over (or least under) its tolerance; NaN is always over */
    double worst_err = 0.0, worst_tol = atol, worst_excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)ref[i]);
        double tl = atol + t.rtol * fabs((double)ref[i]);
        double ex = isnan(err) ? INFINITY : err - tl;
        if (ex > worst_excess) { worst_excess = ex; worst_err = err; worst_tol = tl; }
    }
    char name[96];
    snprintf(name, sizeof name, "%s.%s", op, tensor);
    int ok = check_close(name, got, ref, n, atol, t.rtol);
    table_add(op, tensor, n, worst_err, worst_tol, ok);
    return ok;
}

static int cmp_i32(const char *op, const char *tensor, const int32_t *got,
                   const int32_t *ref, size_t n) {
    size_t bad = 0, first = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i]) {
            if (!bad) first = i;
            bad++;
            worst = fmax(worst, fabs((double)got[i] - (double)ref[i]));
        }
    char name[128];
    snprintf(name, sizeof name, "%s.%s identical (%zu of %zu differ, first at [%zu])", op,
             tensor, bad, n, first);
    int ok = check_true(name, bad == 0);
    table_add(op, tensor, n, worst, 0.0, ok);
    return ok;
}

/* The two runs of a CUDA op gave the same bits. */
static int same(const char *op, const char *tensor, const void *a, const void *b,
                size_t bytes) {
    int ok = memcmp(a, b, bytes) == 0;
    char name[128], t[40];
    snprintf(name, sizeof name, "%s.%s bit-identical over two runs", op, tensor);
    snprintf(t, sizeof t, "%s(rerun)", tensor);
    check_true(name, ok);
    table_add(op, t, bytes / 4, ok ? 0.0 : NAN, 0.0, ok);
    return ok;
}

/* A tensor a GEMM feeds: the fp32 tolerance t, plus at tf32/bf16 the error band b of
 * checks/gemm_error.h, element by element (b NULL, or fp32: cmp itself). */
static int cmp_band(const char *op, const char *tensor, const float *got, const float *ref,
                    size_t n, tol t, const band *b) {
    if (!b || GE.u == 0.0) return cmp(op, tensor, got, ref, n, t);
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    const double atol = t.atol_abs + t.atol_frac * mx;
    size_t wi = 0;
    double worst_err = 0.0, worst_tol = atol, worst_band = 0.0, worst_excess = -INFINITY;
    double ratio = 0.0;   /* the largest err/tol: how much of the tolerance is used */
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)ref[i]);
        const double bt = band_tol(b, i, ref[i]);
        const double tl = atol + t.rtol * fabs((double)ref[i]) + bt;
        const double ex = (isnan(got[i]) || isnan(ref[i])) ? INFINITY : err - tl;
        if (tl > 0) ratio = fmax(ratio, err / tl);
        if (ex > 0) ok = 0;
        if (ex > worst_excess) {
            worst_excess = ex; wi = i; worst_err = err; worst_tol = tl; worst_band = bt;
        }
    }
    check_count++;
    if (!ok) check_failures++;
    char name[96];
    snprintf(name, sizeof name, "%s.%s", op, tensor);
    printf("%s %-40s n=%-9zu worst |err|=%.3e at [%zu] (got %.7g, ref %.7g; tol %.3e = fp32 "
           "%.1e + %.1e·|ref| + %s band %.3e); max err/tol %.3f\n", ok ? "ok  " : "FAIL", name, n,
           worst_err, wi, n ? got[wi] : 0.0, n ? ref[wi] : 0.0, worst_tol, atol, t.rtol, GE.name,
           worst_band, ratio);
    table_add(op, tensor, n, worst_err, worst_tol, ok);
    return ok;
}

/* ---- contexts --------------------------------------------------------------------- */

static const dath_backend *gpu;
static dath_ctx gctx, cctx;
static int full;
static int precision = DATH_FP32;   /* --precision: the CUDA context's GEMMs */

/* At tf32/bf16: the error bands are computed (they cost a few reference-sized GEMMs). */
static int bands(void) { return GE.u > 0.0; }

static float *hsq(const float *x, size_t n) {   /* x² element-wise */
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = x[i] * x[i];
    return p;
}
static float *hzero(size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memset(p, 0, n * sizeof *p);
    return p;
}
static float *hdiff(const float *a, const float *b, size_t n) {   /* a − b */
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = a[i] - b[i];
    return p;
}

/* ---- convolution ------------------------------------------------------------------ */

static void test_conv(const char *op, int B, int Ci, int H, int Co, int k, int stride,
                      int pad, int with_din) {
    conv2d_shape s = conv2d_make_shape(B, Ci, H, H, Co, k, stride, pad);
    size_t nin = (size_t)B * Ci * H * H, nw = (size_t)Co * Ci * k * k;
    size_t nout = (size_t)B * Co * s.Ho * s.Wo;
    float bound = 1.0f / sqrtf((float)(Ci * k * k));
    float *x = hrand(nin, -1.0f, 1.0f);               /* [B,Ci,H,H] */
    float *w = hrand(nw, -bound, bound);              /* [Co,Ci,k,k] */
    float *b = hrand(Co, -0.1f, 0.1f);                /* [Co] */
    float *out_ref = xmalloc(nout * sizeof(float));   /* [B,Co,Ho,Wo] */
    conv2d_forward_cpu(out_ref, x, w, b, &s, 1, &cctx);

    float *d_x = dup_dev(x, nin * 4), *d_w = dup_dev(w, nw * 4), *d_b = dup_dev(b, Co * 4);
    float *d_out = dalloc(nout * 4);
    float *got[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * 4);
        conv2d_forward_cuda(d_out, d_x, d_w, d_b, &s, 1, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    /* tf32/bf16: T2² = conv(x², w²) and the products y = conv(x, w), neither with bias nor
     * ReLU; R = Ci·k² terms an output, one chain */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *z = hzero(Co);
        float *t2 = xmalloc(nout * 4), *y = xmalloc(nout * 4);
        conv2d_forward_cpu(t2, x2, w2, z, &s, 0, &cctx);
        conv2d_forward_cpu(y, x, w, z, &s, 0, &cctx);
        bo = band_new(nout);
        band_terms(&bo, t2, y, (long long)Ci * k * k, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    cmp_band(op, "out", got[0], out_ref, nout, TOL_FWD, &bo);
    same(op, "out", got[0], got[1], nout * 4);

    /* backward from the reference's out (its ReLU mask) */
    float *g = hrand(nout, -0.5f, 1.0f);                         /* dout [B,Co,Ho,Wo] */
    float *din0 = with_din ? hrand(nin, -0.1f, 0.1f) : NULL;     /* [B,Ci,H,H] */
    float *dw0 = hrand(nw, -0.1f, 0.1f), *db0 = hrand(Co, -0.1f, 0.1f);
    float *din_ref = with_din ? hcopy(din0, nin) : NULL, *dw_ref = hcopy(dw0, nw);
    float *db_ref = hcopy(db0, Co), *g_ref = hcopy(g, nout);
    conv2d_backward_cpu(din_ref, dw_ref, db_ref, g_ref, x, w, out_ref, &s, 1, &cctx);

    up(d_out, out_ref, nout * 4);
    float *d_g = dalloc(nout * 4), *d_dw = dalloc(nw * 4), *d_db = dalloc(Co * 4);
    float *d_din = with_din ? dalloc(nin * 4) : NULL;
    float *gd[2], *gw[2], *gb[2], *gg[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g, nout * 4); up(d_dw, dw0, nw * 4); up(d_db, db0, Co * 4);
        if (with_din) up(d_din, din0, nin * 4);
        conv2d_backward_cuda(d_din, d_dw, d_db, d_g, d_x, d_w, d_out, &s, 1, &gctx);
        gsync();
        gd[r] = with_din ? xmalloc(nin * 4) : NULL;
        gw[r] = xmalloc(nw * 4); gb[r] = xmalloc(Co * 4); gg[r] = xmalloc(nout * 4);
        if (with_din) down(gd[r], d_din, nin * 4);
        down(gw[r], d_dw, nw * 4); down(gb[r], d_db, Co * 4); down(gg[r], d_g, nout * 4);
    }
    /* tf32/bf16: T2² from the backward of the squares (same ReLU mask); din: Co terms a
     * window, up to ⌈k/stride⌉² windows summed by col2im; dw: B·Ho·Wo terms, in chunks
     * of images (at most B more blocks); db is no GEMM (a reduction of dout) */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *g2 = hsq(g, nout);
        float *din2 = with_din ? hzero(nin) : NULL, *dw2 = hzero(nw), *db2 = hzero(Co);
        conv2d_backward_cpu(din2, dw2, db2, g2, x2, w2, out_ref, &s, 1, &cctx);
        if (with_din) {
            const int win = (k + stride - 1) / stride;
            float *y = hdiff(din_ref, din0, nin);
            bdin = band_new(nin);
            band_terms(&bdin, din2, y, Co, (double)win * win);
            free(y);
        }
        float *y = hdiff(dw_ref, dw0, nw);
        bdw = band_new(nw);
        band_terms(&bdw, dw2, y, (long long)B * s.Ho * s.Wo + (long long)GE.bk * B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    if (with_din) { cmp_band(op, "din", gd[0], din_ref, nin, TOL_DGRAD, &bdin); same(op, "din", gd[0], gd[1], nin * 4); }
    cmp_band(op, "dw", gw[0], dw_ref, nw, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nw * 4);
    cmp(op, "db", gb[0], db_ref, Co, TOL_WGRAD); same(op, "db", gb[0], gb[1], Co * 4);
    cmp(op, "dout(masked)", gg[0], g_ref, nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); free(gw[r]); free(gb[r]); free(gg[r]); }
    free(x); free(w); free(b); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_dw); cudaFree(d_db); cudaFree(d_din);
}

/* ---- convolution: several weight sets over one input (conv2d_*_multi) --------------- */

enum { MULTI_EVEN, MULTI_REVERSED, MULTI_UNEVEN };

/* nw convolutions of one input, CUDA multi against the reference multi. The sets'
 * weights, biases and their gradients sit in flat buffers as in dath's parameter
 * buffer: set j at j·gap (MULTI_EVEN), (nw−1−j)·gap (MULTI_REVERSED), or the last set 5
 * floats further (MULTI_UNEVEN: the CUDA version's fallback to nw GEMMs); gap is odd, so
 * sets are not 16-byte aligned. The gradients are compared over the whole flat buffer
 * (the gaps must stay as they were). ctx->work is the op's own: `chunk` images' col and
 * stages, or the whole batch (chunk = 0: conv2d_work_bytes_multi). */
static void test_conv_multi(const char *op, int B, int Ci, int H, int Co, int k, int stride,
                            int pad, int nw, int layout, int chunk, int with_din) {
    conv2d_shape s = conv2d_make_shape(B, Ci, H, H, Co, k, stride, pad);
    size_t nin = (size_t)B * Ci * H * H, nwt = (size_t)Co * Ci * k * k;
    size_t nout = (size_t)B * Co * s.Ho * s.Wo;
    size_t gap = nwt + 37, gapb = (size_t)Co + 3, off[CONV_MULTI_MAX], offb[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        size_t slot = layout == MULTI_REVERSED ? (size_t)(nw - 1 - j) : (size_t)j;
        off[j] = 3 + slot * gap + (layout == MULTI_UNEVEN && j == nw - 1 ? 5 : 0);
        offb[j] = 1 + slot * gapb;
    }
    size_t nflat = 3 + (size_t)nw * gap + 5, nflatb = 1 + (size_t)nw * gapb;
    float bound = 1.0f / sqrtf((float)(Ci * k * k));
    float *x = hrand(nin, -1.0f, 1.0f);                   /* [B,Ci,H,H] */
    float *w = hrand(nflat, -bound, bound);               /* sets of [Co,Ci,k,k] */
    float *b = hrand(nflatb, -0.1f, 0.1f);                /* sets of [Co] */
    float *out_ref = xmalloc((size_t)nw * nout * 4);      /* [nw][B,Co,Ho,Wo] */
    float *po[CONV_MULTI_MAX];
    const float *pw[CONV_MULTI_MAX], *pb[CONV_MULTI_MAX], *pout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        po[j] = out_ref + j * nout;
        pw[j] = w + off[j];
        pb[j] = b + offb[j];
        pout[j] = out_ref + j * nout;
    }
    conv2d_forward_multi_cpu(po, x, pw, pb, nw, &s, 1, &cctx);

    size_t per_image = conv2d_work_bytes_multi(&s, nw) / (size_t)B;
    dath_ctx mctx = gctx;
    mctx.work_bytes = chunk ? chunk * per_image + per_image / 2 : conv2d_work_bytes_multi(&s, nw);
    mctx.work = dalloc(mctx.work_bytes);
    float *d_x = dup_dev(x, nin * 4), *d_w = dup_dev(w, nflat * 4), *d_b = dup_dev(b, nflatb * 4);
    float *d_out = dalloc((size_t)nw * nout * 4);
    float *dpo[CONV_MULTI_MAX];
    const float *dpw[CONV_MULTI_MAX], *dpb[CONV_MULTI_MAX], *dpout[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        dpo[j] = d_out + j * nout;
        dpw[j] = d_w + off[j];
        dpb[j] = d_b + offb[j];
        dpout[j] = d_out + j * nout;
    }
    float *got[2] = {xmalloc((size_t)nw * nout * 4), xmalloc((size_t)nw * nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, (size_t)nw * nout * 4);
        conv2d_forward_multi_cuda(dpo, d_x, dpw, dpb, nw, &s, 1, &mctx);
        gsync();
        down(got[r], d_out, (size_t)nw * nout * 4);
    }
    /* tf32/bf16: as test_conv's, per set */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *z = hzero(nflatb);
        float *t2 = xmalloc((size_t)nw * nout * 4), *y = xmalloc((size_t)nw * nout * 4);
        float *pt[CONV_MULTI_MAX], *py[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX], *pz[CONV_MULTI_MAX];
        for (int j = 0; j < nw; j++) {
            pt[j] = t2 + j * nout; py[j] = y + j * nout; pw2[j] = w2 + off[j]; pz[j] = z + offb[j];
        }
        conv2d_forward_multi_cpu(pt, x2, pw2, pz, nw, &s, 0, &cctx);
        conv2d_forward_multi_cpu(py, x, pw, pz, nw, &s, 0, &cctx);
        bo = band_new((size_t)nw * nout);
        band_terms(&bo, t2, y, (long long)Ci * k * k, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    cmp_band(op, "out", got[0], out_ref, (size_t)nw * nout, TOL_FWD, &bo);
    same(op, "out", got[0], got[1], (size_t)nw * nout * 4);

    /* backward from the reference's out (its ReLU masks) */
    float *g = hrand((size_t)nw * nout, -0.5f, 1.0f);               /* dout [nw][B,Co,Ho,Wo] */
    float *din0 = with_din ? hrand(nin, -0.1f, 0.1f) : NULL;        /* [B,Ci,H,H] */
    float *dw0 = hrand(nflat, -0.1f, 0.1f), *db0 = hrand(nflatb, -0.1f, 0.1f);
    float *din_ref = with_din ? hcopy(din0, nin) : NULL, *dw_ref = hcopy(dw0, nflat);
    float *db_ref = hcopy(db0, nflatb), *g_ref = hcopy(g, (size_t)nw * nout);
    float *pdw[CONV_MULTI_MAX], *pdb[CONV_MULTI_MAX], *pg[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        pdw[j] = dw_ref + off[j];
        pdb[j] = db_ref + offb[j];
        pg[j] = g_ref + j * nout;
    }
    conv2d_backward_multi_cpu(din_ref, pdw, pdb, pg, x, pw, pout, nw, &s, 1, &cctx);

    up(d_out, out_ref, (size_t)nw * nout * 4);
    float *d_g = dalloc((size_t)nw * nout * 4), *d_dw = dalloc(nflat * 4), *d_db = dalloc(nflatb * 4);
    float *d_din = with_din ? dalloc(nin * 4) : NULL;
    float *dpdw[CONV_MULTI_MAX], *dpdb[CONV_MULTI_MAX], *dpg[CONV_MULTI_MAX];
    for (int j = 0; j < nw; j++) {
        dpdw[j] = d_dw + off[j];
        dpdb[j] = d_db + offb[j];
        dpg[j] = d_g + j * nout;
    }
    float *gd[2], *gw[2], *gb[2], *gg[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g, (size_t)nw * nout * 4); up(d_dw, dw0, nflat * 4); up(d_db, db0, nflatb * 4);
        if (with_din) up(d_din, din0, nin * 4);
        conv2d_backward_multi_cuda(d_din, dpdw, dpdb, dpg, d_x, dpw, dpout, nw, &s, 1, &mctx);
        gsync();
        gd[r] = with_din ? xmalloc(nin * 4) : NULL;
        gw[r] = xmalloc(nflat * 4); gb[r] = xmalloc(nflatb * 4);
        gg[r] = xmalloc((size_t)nw * nout * 4);
        if (with_din) down(gd[r], d_din, nin * 4);
        down(gw[r], d_dw, nflat * 4); down(gb[r], d_db, nflatb * 4);
        down(gg[r], d_g, (size_t)nw * nout * 4);
    }
    /* tf32/bf16: as test_conv's; din sums the nw sets' column gradients (nw·Co terms a
     * window); the gaps between the sets have no terms: their band is 0 */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nflat), *g2 = hsq(g, (size_t)nw * nout);
        float *din2 = with_din ? hzero(nin) : NULL, *dw2 = hzero(nflat), *db2 = hzero(nflatb);
        float *pdw2[CONV_MULTI_MAX], *pdb2[CONV_MULTI_MAX], *pg2[CONV_MULTI_MAX];
        const float *pw2[CONV_MULTI_MAX];
        for (int j = 0; j < nw; j++) {
            pdw2[j] = dw2 + off[j]; pdb2[j] = db2 + offb[j]; pg2[j] = g2 + j * nout;
            pw2[j] = w2 + off[j];
        }
        conv2d_backward_multi_cpu(din2, pdw2, pdb2, pg2, x2, pw2, pout, nw, &s, 1, &cctx);
        if (with_din) {
            const int win = (k + stride - 1) / stride;
            float *y = hdiff(din_ref, din0, nin);
            bdin = band_new(nin);
            band_terms(&bdin, din2, y, (long long)nw * Co, (double)win * win);
            free(y);
        }
        float *y = hdiff(dw_ref, dw0, nflat);
        bdw = band_new(nflat);
        band_terms(&bdw, dw2, y, (long long)B * s.Ho * s.Wo + (long long)GE.bk * B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    if (with_din) { cmp_band(op, "din", gd[0], din_ref, nin, TOL_DGRAD, &bdin); same(op, "din", gd[0], gd[1], nin * 4); }
    cmp_band(op, "dw(flat)", gw[0], dw_ref, nflat, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nflat * 4);
    cmp(op, "db(flat)", gb[0], db_ref, nflatb, TOL_WGRAD); same(op, "db", gb[0], gb[1], nflatb * 4);
    cmp(op, "dout(masked)", gg[0], g_ref, (size_t)nw * nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); free(gw[r]); free(gb[r]); free(gg[r]); }
    free(x); free(w); free(b); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_dw); cudaFree(d_db); cudaFree(d_din); cudaFree(mctx.work);
}

/* ---- fully connected ---------------------------------------------------------------- */

static void test_linear(const char *op, int B, int I, int O, int relu) {
    size_t nin = (size_t)B * I, nw = (size_t)O * I, nout = (size_t)B * O;
    float bound = 1.0f / sqrtf((float)I);
    float *x = hrand(nin, -1.0f, 1.0f), *w = hrand(nw, -bound, bound);   /* [B,I], [O,I] */
    float *b = hrand(O, -0.1f, 0.1f);                                    /* [O] */
    float *out_ref = xmalloc(nout * 4);                                  /* [B,O] */
    linear_forward_cpu(out_ref, x, w, b, B, I, O, relu, &cctx);

    float *d_x = dup_dev(x, nin * 4), *d_w = dup_dev(w, nw * 4), *d_b = dup_dev(b, O * 4);
    float *d_out = dalloc(nout * 4);
    float *got[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * 4);
        linear_forward_cuda(d_out, d_x, d_w, d_b, B, I, O, relu, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    /* tf32/bf16: T2² = x²·(w²)ᵀ, y = x·wᵀ (no bias, no ReLU): I terms an output */
    band bo = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *z = hzero(O);
        float *t2 = xmalloc(nout * 4), *y = xmalloc(nout * 4);
        linear_forward_cpu(t2, x2, w2, z, B, I, O, 0, &cctx);
        linear_forward_cpu(y, x, w, z, B, I, O, 0, &cctx);
        bo = band_new(nout);
        band_terms(&bo, t2, y, I, 1.0);
        free(x2); free(w2); free(z); free(t2); free(y);
    }
    cmp_band(op, "out", got[0], out_ref, nout, TOL_FWD, &bo);
    same(op, "out", got[0], got[1], nout * 4);

    float *g = hrand(nout, -0.5f, 1.0f);                                 /* dout [B,O] */
    float *din0 = hrand(nin, -0.1f, 0.1f), *dw0 = hrand(nw, -0.1f, 0.1f);
    float *db0 = hrand(O, -0.1f, 0.1f);
    float *din_ref = hcopy(din0, nin), *dw_ref = hcopy(dw0, nw), *db_ref = hcopy(db0, O);
    float *g_ref = hcopy(g, nout);
    linear_backward_cpu(din_ref, dw_ref, db_ref, g_ref, x, w, out_ref, B, I, O, relu, &cctx);

    up(d_out, out_ref, nout * 4);
    float *d_g = dalloc(nout * 4), *d_din = dalloc(nin * 4), *d_dw = dalloc(nw * 4);
    float *d_db = dalloc(O * 4);
    float *gd[2], *gw[2], *gb[2], *gg[2];
    for (int r = 0; r < 2; r++) {
        up(d_g, g, nout * 4); up(d_din, din0, nin * 4); up(d_dw, dw0, nw * 4); up(d_db, db0, O * 4);
        linear_backward_cuda(d_din, d_dw, d_db, d_g, d_x, d_w, d_out, B, I, O, relu, &gctx);
        gsync();
        gd[r] = xmalloc(nin * 4); gw[r] = xmalloc(nw * 4); gb[r] = xmalloc(O * 4);
        gg[r] = xmalloc(nout * 4);
        down(gd[r], d_din, nin * 4); down(gw[r], d_dw, nw * 4); down(gb[r], d_db, O * 4);
        down(gg[r], d_g, nout * 4);
    }
    /* tf32/bf16: T2² from the backward of the squares (same ReLU mask); din: O terms,
     * dw: B terms; db is no GEMM (a column sum of dout) */
    band bdin = {0}, bdw = {0};
    if (bands()) {
        float *x2 = hsq(x, nin), *w2 = hsq(w, nw), *g2 = hsq(g, nout);
        float *din2 = hzero(nin), *dw2 = hzero(nw), *db2 = hzero(O);
        linear_backward_cpu(din2, dw2, db2, g2, x2, w2, out_ref, B, I, O, relu, &cctx);
        float *y = hdiff(din_ref, din0, nin);
        bdin = band_new(nin);
        band_terms(&bdin, din2, y, O, 1.0);
        free(y);
        y = hdiff(dw_ref, dw0, nw);
        bdw = band_new(nw);
        band_terms(&bdw, dw2, y, B, 1.0);
        free(y); free(x2); free(w2); free(g2); free(din2); free(dw2); free(db2);
    }
    cmp_band(op, "din", gd[0], din_ref, nin, TOL_DGRAD, &bdin); same(op, "din", gd[0], gd[1], nin * 4);
    cmp_band(op, "dw", gw[0], dw_ref, nw, TOL_WGRAD, &bdw); same(op, "dw", gw[0], gw[1], nw * 4);
    cmp(op, "db", gb[0], db_ref, O, TOL_WGRAD); same(op, "db", gb[0], gb[1], O * 4);
    if (relu) cmp(op, "dout(masked)", gg[0], g_ref, nout, TOL_EXACT);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); free(gw[r]); free(gb[r]); free(gg[r]); }
    free(x); free(w); free(b); free(out_ref); free(g); free(din0); free(dw0); free(db0);
    free(din_ref); free(dw_ref); free(db_ref); free(g_ref);
    band_free(&bo); band_free(&bdin); band_free(&bdw);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_g);
    cudaFree(d_din); cudaFree(d_dw); cudaFree(d_db);
}

/* ---- pooling ------------------------------------------------------------------------ */

static void test_maxpool(const char *op, int BC, int H) {
    int Ho = maxpool_out(H);
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho;
    float *x = hrand(nin, -1.0f, 1.0f);                  /* [BC,H,H] */
    float *out_ref = xmalloc(nout * 4);                  /* [BC,Ho,Ho] */
    int32_t *idx_ref = xmalloc(nout * 4);                /* [BC,Ho,Ho] */
    maxpool_forward_cpu(out_ref, idx_ref, x, BC, H, H, &cctx);

    float *d_x = dup_dev(x, nin * 4), *d_out = dalloc(nout * 4);
    int32_t *d_idx = dalloc(nout * 4);
    float *got[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    int32_t *gi[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * 4); poison(d_idx, nout * 4);
        maxpool_forward_cuda(d_out, d_idx, d_x, BC, H, H, &gctx);
        gsync();
        down(got[r], d_out, nout * 4); down(gi[r], d_idx, nout * 4);
    }
    cmp(op, "out", got[0], out_ref, nout, TOL_EXACT);
    cmp_i32(op, "idx", gi[0], idx_ref, nout);
    same(op, "out", got[0], got[1], nout * 4);
    same(op, "idx", gi[0], gi[1], nout * 4);

    float *g = hrand(nout, -1.0f, 1.0f), *din0 = hrand(nin, -0.1f, 0.1f);
    float *din_ref = hcopy(din0, nin);
    maxpool_backward_cpu(din_ref, g, idx_ref, BC, H, H, &cctx);
    up(d_idx, idx_ref, nout * 4);
    float *d_g = dup_dev(g, nout * 4), *d_din = dalloc(nin * 4);
    float *gd[2] = {xmalloc(nin * 4), xmalloc(nin * 4)};
    for (int r = 0; r < 2; r++) {
        up(d_din, din0, nin * 4);
        maxpool_backward_cuda(d_din, d_g, d_idx, BC, H, H, &gctx);
        gsync();
        down(gd[r], d_din, nin * 4);
    }
    cmp(op, "din", gd[0], din_ref, nin, TOL_SUMFEW);
    same(op, "din", gd[0], gd[1], nin * 4);

    for (int r = 0; r < 2; r++) { free(got[r]); free(gi[r]); free(gd[r]); }
    free(x); free(out_ref); free(idx_ref); free(g); free(din0); free(din_ref);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_idx); cudaFree(d_g); cudaFree(d_din);
}

static void test_avgpool(const char *op, int BC, int H, int Ho) {
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho;
    float *x = hrand(nin, -1.0f, 1.0f), *out_ref = xmalloc(nout * 4);
    avgpool_forward_cpu(out_ref, x, BC, H, H, Ho, Ho, &cctx);
    float *d_x = dup_dev(x, nin * 4), *d_out = dalloc(nout * 4);
    float *got[2] = {xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_out, nout * 4);
        avgpool_forward_cuda(d_out, d_x, BC, H, H, Ho, Ho, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    cmp(op, "out", got[0], out_ref, nout, TOL_SUMFEW);
    same(op, "out", got[0], got[1], nout * 4);

    float *g = hrand(nout, -1.0f, 1.0f), *din0 = hrand(nin, -0.1f, 0.1f);
    float *din_ref = hcopy(din0, nin);
    avgpool_backward_cpu(din_ref, g, BC, H, H, Ho, Ho, &cctx);
    float *d_g = dup_dev(g, nout * 4), *d_din = dalloc(nin * 4);
    float *gd[2] = {xmalloc(nin * 4), xmalloc(nin * 4)};
    for (int r = 0; r < 2; r++) {
        up(d_din, din0, nin * 4);
        avgpool_backward_cuda(d_din, d_g, BC, H, H, Ho, Ho, &gctx);
        gsync();
        down(gd[r], d_din, nin * 4);
    }
    cmp(op, "din", gd[0], din_ref, nin, TOL_SUMFEW);
    same(op, "din", gd[0], gd[1], nin * 4);
    for (int r = 0; r < 2; r++) { free(got[r]); free(gd[r]); }
    free(x); free(out_ref); free(g); free(din0); free(din_ref);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_g); cudaFree(d_din);
}

/* ---- attention ---------------------------------------------------------------------- */

/* Tolerance for dγ (a scalar sum of n products): from Σ|dout·o|. */
static tol scalar_reduce_tol(const float *dout, const float *o, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs((double)dout[i] * o[i]);
    tol t = {SCALAR_REDUCE_FRAC * s, 0.0, SCALAR_REDUCE_RTOL};
    return t;
}

/* C [batch][M,N] = op(A)·op(B), row-major (as gemm_rm_batched), in fp32 on the CPU: the
 * attention's intermediate values that the bands need (E = qᵀk, dv, da, dq, dk). */
static void mm(float *Cm, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
               long long sA, const float *Bm, int ldb, long long sB, int ldc, long long sC,
               int batch) {
    for (int i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A + i * sA, lda, Bm + i * sB, ldb, 0.0f, Cm + i * sC, ldc);
}

/* de [R,L] = sign·a⊙(da − Σ_l a_l da_l), row by row (the softmax backward). */
static void softmax_bwd_values(float *de, const float *a, const float *da, size_t R, int L,
                               float sign) {
    for (size_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int l = 0; l < L; l++) s += (double)a[r * L + l] * da[r * L + l];
        for (int l = 0; l < L; l++)
            de[r * L + l] = sign * a[r * L + l] * (float)(da[r * L + l] - s);
    }
}

static void test_pam(const char *op, int B, int C, int Cq, int N) {
    size_t nx = (size_t)B * C * N, nq = (size_t)B * Cq * N, na = (size_t)B * N * N;
    size_t nwq = (size_t)Cq * C, nwv = (size_t)C * C;
    float bd = 1.0f / sqrtf((float)C);
    float *x = hrand(nx, 0.0f, 1.0f);                                   /* [B,C,N] */
    float *wq = hrand(nwq, -bd, bd), *bq_ = hrand(Cq, -bd, bd);         /* [Cq,C], [Cq] */
    float *wk = hrand(nwq, -bd, bd), *bk_ = hrand(Cq, -bd, bd);
    float *wv = hrand(nwv, -bd, bd), *bv_ = hrand(C, -bd, bd);          /* [C,C], [C] */
    float gamma[1] = {0.7f};
    float *out_r = xmalloc(nx * 4), *q_r = xmalloc(nq * 4), *k_r = xmalloc(nq * 4);
    float *v_r = xmalloc(nx * 4), *a_r = xmalloc(na * 4), *o_r = xmalloc(nx * 4);
    pam_forward_cpu(out_r, q_r, k_r, v_r, a_r, o_r, x, wq, bq_, wk, bk_, wv, bv_, gamma, B, C,
                    Cq, N, &cctx);

    float *d_x = dup_dev(x, nx * 4), *d_wq = dup_dev(wq, nwq * 4), *d_bq = dup_dev(bq_, Cq * 4);
    float *d_wk = dup_dev(wk, nwq * 4), *d_bk = dup_dev(bk_, Cq * 4);
    float *d_wv = dup_dev(wv, nwv * 4), *d_bv = dup_dev(bv_, C * 4), *d_gamma = dup_dev(gamma, 4);
    float *d_out = dalloc(nx * 4), *d_q = dalloc(nq * 4), *d_k = dalloc(nq * 4);
    float *d_v = dalloc(nx * 4), *d_a = dalloc(na * 4), *d_o = dalloc(nx * 4);
    float *go[2], *gq[2], *gk[2], *gv[2], *ga[2], *gO[2];
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_q, nq * 4); poison(d_k, nq * 4);
        poison(d_v, nx * 4); poison(d_a, na * 4); poison(d_o, nx * 4);
        pam_forward_cuda(d_out, d_q, d_k, d_v, d_a, d_o, d_x, d_wq, d_bq, d_wk, d_bk, d_wv,
                         d_bv, d_gamma, B, C, Cq, N, &gctx);
        gsync();
        go[r] = xmalloc(nx * 4); gq[r] = xmalloc(nq * 4); gk[r] = xmalloc(nq * 4);
        gv[r] = xmalloc(nx * 4); ga[r] = xmalloc(na * 4); gO[r] = xmalloc(nx * 4);
        down(go[r], d_out, nx * 4); down(gq[r], d_q, nq * 4); down(gk[r], d_k, nq * 4);
        down(gv[r], d_v, nx * 4); down(ga[r], d_a, na * 4); down(gO[r], d_o, nx * 4);
    }
    /* tf32/bf16, the forward's chain: q, k, v (C terms; the bias add keeps the
     * shrink of the product: ρ(q − b) = ρq − ρb), e = qᵀk (Cq terms, q and k with their
     * errors), a = softmax(e), o = v·aᵀ (N terms along a's rows), out = γ·o + x */
    const long long cn = (long long)C * N, qn = (long long)Cq * N, nn = (long long)N * N;
    band bq = {0}, bk = {0}, bv = {0}, be = {0}, ba = {0}, bo = {0}, bout = {0};
    float *e_r = NULL;
    if (bands()) {
        bq = band_new(nq); bk = band_new(nq); bv = band_new(nx); be = band_new(na);
        ba = band_new(na); bo = band_new(nx); bout = band_new(nx);
        band_gemm(&bq, 0, false, false, Cq, N, C, wq, C, 0, NULL, x, N, cn, NULL, N, qn, B);
        band_gemm(&bk, 0, false, false, Cq, N, C, wk, C, 0, NULL, x, N, cn, NULL, N, qn, B);
        band_gemm(&bv, 0, false, false, C, N, C, wv, C, 0, NULL, x, N, cn, NULL, N, cn, B);
        for (size_t i = 0; i < nq; i++) {
            bq.ab[i] += bq.rel * fabs(bq_[(i / N) % Cq]);
            bk.ab[i] += bk.rel * fabs(bk_[(i / N) % Cq]);
        }
        for (size_t i = 0; i < nx; i++) bv.ab[i] += bv.rel * fabs(bv_[(i / N) % C]);
        band_gemm(&be, 0, true, false, N, N, Cq, q_r, N, qn, &bq, k_r, N, qn, &bk, N, nn, B);
        e_r = xmalloc(na * 4);
        mm(e_r, true, false, N, N, Cq, q_r, N, qn, k_r, N, qn, N, nn, B);
        band_softmax(&ba, a_r, e_r, &be, (size_t)B * N, N, 1);
        band_softmax_gemm(&bo, 0, C, N, N, B, v_r, cn, N, 1, &bv, a_r, a_r, e_r, &be, nn, cn, N, 1);
        band_affine(&bout, &bo, gamma[0], o_r);
    }
    cmp_band(op, "out", go[0], out_r, nx, TOL_ATTN, &bout); same(op, "out", go[0], go[1], nx * 4);
    cmp_band(op, "q", gq[0], q_r, nq, TOL_FWD, &bq); same(op, "q", gq[0], gq[1], nq * 4);
    cmp_band(op, "k", gk[0], k_r, nq, TOL_FWD, &bk); same(op, "k", gk[0], gk[1], nq * 4);
    cmp_band(op, "v", gv[0], v_r, nx, TOL_FWD, &bv); same(op, "v", gv[0], gv[1], nx * 4);
    cmp_band(op, "a", ga[0], a_r, na, TOL_ATTN, &ba); same(op, "a", ga[0], ga[1], na * 4);
    cmp_band(op, "o", gO[0], o_r, nx, TOL_ATTN, &bo); same(op, "o", gO[0], gO[1], nx * 4);

    /* backward from the reference's saved tensors */
    float *g = hrand(nx, -0.5f, 1.0f);                                  /* dout [B,C,N] */
    float *dx0 = hrand(nx, -0.1f, 0.1f);
    float *dwq0 = hrand(nwq, -0.1f, 0.1f), *dbq0 = hrand(Cq, -0.1f, 0.1f);
    float *dwk0 = hrand(nwq, -0.1f, 0.1f), *dbk0 = hrand(Cq, -0.1f, 0.1f);
    float *dwv0 = hrand(nwv, -0.1f, 0.1f), *dbv0 = hrand(C, -0.1f, 0.1f);
    float dg0[1] = {0.25f};
    float *dx_r = hcopy(dx0, nx), *dwq_r = hcopy(dwq0, nwq), *dbq_r = hcopy(dbq0, Cq);
    float *dwk_r = hcopy(dwk0, nwq), *dbk_r = hcopy(dbk0, Cq), *dwv_r = hcopy(dwv0, nwv);
    float *dbv_r = hcopy(dbv0, C), dg_r[1] = {dg0[0]};
    pam_backward_cpu(dx_r, dwq_r, dbq_r, dwk_r, dbk_r, dwv_r, dbv_r, dg_r, g, x, q_r, k_r,
                     v_r, a_r, o_r, wq, wk, wv, gamma, B, C, Cq, N, &cctx);

    up(d_q, q_r, nq * 4); up(d_k, k_r, nq * 4); up(d_v, v_r, nx * 4);
    up(d_a, a_r, na * 4); up(d_o, o_r, nx * 4);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dwq = dalloc(nwq * 4);
    float *d_dbq = dalloc(Cq * 4), *d_dwk = dalloc(nwq * 4), *d_dbk = dalloc(Cq * 4);
    float *d_dwv = dalloc(nwv * 4), *d_dbv = dalloc(C * 4), *d_dg = dalloc(4);
    float *r_dx[2], *r_dwq[2], *r_dbq[2], *r_dwk[2], *r_dbk[2], *r_dwv[2], *r_dbv[2];
    float r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4); up(d_dwq, dwq0, nwq * 4); up(d_dbq, dbq0, Cq * 4);
        up(d_dwk, dwk0, nwq * 4); up(d_dbk, dbk0, Cq * 4); up(d_dwv, dwv0, nwv * 4);
        up(d_dbv, dbv0, C * 4); up(d_dg, dg0, 4);
        pam_backward_cuda(d_dx, d_dwq, d_dbq, d_dwk, d_dbk, d_dwv, d_dbv, d_dg, d_g, d_x, d_q,
                          d_k, d_v, d_a, d_o, d_wq, d_wk, d_wv, d_gamma, B, C, Cq, N, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4); r_dwq[r] = xmalloc(nwq * 4); r_dbq[r] = xmalloc(Cq * 4);
        r_dwk[r] = xmalloc(nwq * 4); r_dbk[r] = xmalloc(Cq * 4); r_dwv[r] = xmalloc(nwv * 4);
        r_dbv[r] = xmalloc(C * 4);
        down(r_dx[r], d_dx, nx * 4); down(r_dwq[r], d_dwq, nwq * 4); down(r_dbq[r], d_dbq, Cq * 4);
        down(r_dwk[r], d_dwk, nwq * 4); down(r_dbk[r], d_dbk, Cq * 4);
        down(r_dwv[r], d_dwv, nwv * 4); down(r_dbv[r], d_dbv, C * 4); down(&r_dg[r], d_dg, 4);
    }
    /* tf32/bf16, the backward's chain (as pam_backward_cuda, from the reference's saved
     * tensors): g = γ·dout; dv = g·a (N terms), da = gᵀ·v (C terms), de = softmax
     * backward of da, dq = k·deᵀ (N terms along a's rows), dk = q·de (N terms across
     * them), dw += dy·xᵀ (B·N terms, one GEMM for the batch), db += Σ dy (no GEMM, but dy
     * carries its errors), dx += dout + wᵀ·dy for y = q, k, v (Cq, Cq, C terms).
     * dk's errors from de sum to 0 along its rows (as de's do), so dwk and dbk take them
     * through a virtual stage (gemm_error.h): dwk's error from de is q·(δde·xᵀ), dbk gets
     * none; both keep those of dk's own conversions and their own.
     * dγ = Σ dout·o needs no GEMM: its fp32 tolerance stays. */
    band bdx = {0}, bdwq = {0}, bdbq = {0}, bdwk = {0}, bdbk = {0}, bdwv = {0}, bdbv = {0};
    if (bands()) {
        float *gd = xmalloc(nx * 4), *dv = xmalloc(nx * 4), *da = xmalloc(na * 4);
        float *de = xmalloc(na * 4), *dq = xmalloc(nq * 4), *dk = xmalloc(nq * 4);
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        band bdv = band_new(nx), bda = band_new(na), bde = band_new(na);
        band bdq = band_new(nq), bdk = band_new(nq);
        bdx = band_new(nx); bdwq = band_new(nwq); bdbq = band_new(Cq); bdwk = band_new(nwq);
        bdbk = band_new(Cq); bdwv = band_new(nwv); bdbv = band_new(C);
        band_gemm(&bdv, 0, false, false, C, N, N, gd, N, cn, NULL, a_r, N, nn, NULL, N, cn, B);
        mm(dv, false, false, C, N, N, gd, N, cn, a_r, N, nn, N, cn, B);
        band_gemm(&bda, 0, true, false, N, N, C, gd, N, cn, NULL, v_r, N, cn, NULL, N, nn, B);
        mm(da, true, false, N, N, C, gd, N, cn, v_r, N, cn, N, nn, B);
        band_softmax(&bde, a_r, NULL, &bda, (size_t)B * N, N, 0);
        softmax_bwd_values(de, a_r, da, (size_t)B * N, N, 1.0f);
        band_softmax_gemm(&bdq, 0, Cq, N, N, B, k_r, qn, N, 1, NULL, a_r, de, NULL, &bda, nn, qn, N, 1);
        mm(dq, false, true, Cq, N, N, k_r, N, qn, de, N, nn, N, qn, B);
        band_gemm(&bdk, 0, false, false, Cq, N, N, q_r, N, qn, NULL, de, N, nn, &bde, N, qn, B);
        band bdk_own = band_new(nq), bt = band_new(nx);
        band_gemm(&bdk_own, 0, false, false, Cq, N, N, q_r, N, qn, NULL, de, N, nn, NULL, N, qn, B);
        mm(dk, false, false, Cq, N, N, q_r, N, qn, de, N, nn, N, qn, B);
        band_gemm(&bdwq, 1, false, true, Cq, C, N, dq, N, qn, &bdq, x, N, cn, NULL, C, 0, B);
        band_gemm(&bdwk, 1, false, true, Cq, C, N, dk, N, qn, &bdk_own, x, N, cn, NULL, C, 0, B);
        float *t = xmalloc(nx * 4);                     /* [B,C,N] t = x·deᵀ (virtual) */
        mm(t, false, true, C, N, N, x, N, cn, de, N, nn, N, cn, B);
        GE.virt = 1;
        band_softmax_gemm(&bt, 0, C, N, N, B, x, cn, N, 1, NULL, a_r, de, NULL, &bda, nn, cn, N, 1);
        band_gemm(&bdwk, 1, false, true, Cq, C, N, q_r, N, qn, NULL, t, N, cn, &bt, C, 0, B);
        GE.virt = 0;
        band_gemm(&bdwv, 1, false, true, C, C, N, dv, N, cn, &bdv, x, N, cn, NULL, C, 0, B);
        band_rowsum(&bdbq, &bdq, dq, B, Cq, N);
        band_rowsum(&bdbk, &bdk_own, dk, B, Cq, N);
        band_free(&bdk_own); band_free(&bt); free(t);
        band_rowsum(&bdbv, &bdv, dv, B, C, N);
        band_gemm(&bdx, 1, true, false, C, N, Cq, wq, C, 0, NULL, dq, N, qn, &bdq, N, cn, B);
        band_gemm(&bdx, 1, true, false, C, N, Cq, wk, C, 0, NULL, dk, N, qn, &bdk, N, cn, B);
        band_gemm(&bdx, 1, true, false, C, N, C, wv, C, 0, NULL, dv, N, cn, &bdv, N, cn, B);
        band_free(&bdv); band_free(&bda); band_free(&bde); band_free(&bdq); band_free(&bdk);
        free(gd); free(dv); free(da); free(de); free(dq); free(dk);
    }
    cmp_band(op, "dx", r_dx[0], dx_r, nx, TOL_DGRAD, &bdx); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    cmp_band(op, "dwq", r_dwq[0], dwq_r, nwq, TOL_WGRAD, &bdwq); same(op, "dwq", r_dwq[0], r_dwq[1], nwq * 4);
    cmp_band(op, "dbq", r_dbq[0], dbq_r, Cq, TOL_WGRAD, &bdbq); same(op, "dbq", r_dbq[0], r_dbq[1], Cq * 4);
    cmp_band(op, "dwk", r_dwk[0], dwk_r, nwq, TOL_WGRAD, &bdwk); same(op, "dwk", r_dwk[0], r_dwk[1], nwq * 4);
    cmp_band(op, "dbk", r_dbk[0], dbk_r, Cq, TOL_WGRAD, &bdbk); same(op, "dbk", r_dbk[0], r_dbk[1], Cq * 4);
    cmp_band(op, "dwv", r_dwv[0], dwv_r, nwv, TOL_WGRAD, &bdwv); same(op, "dwv", r_dwv[0], r_dwv[1], nwv * 4);
    cmp_band(op, "dbv", r_dbv[0], dbv_r, C, TOL_WGRAD, &bdbv); same(op, "dbv", r_dbv[0], r_dbv[1], C * 4);
    cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, o_r, nx));
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);

    for (int r = 0; r < 2; r++) {
        free(go[r]); free(gq[r]); free(gk[r]); free(gv[r]); free(ga[r]); free(gO[r]);
        free(r_dx[r]); free(r_dwq[r]); free(r_dbq[r]); free(r_dwk[r]); free(r_dbk[r]);
        free(r_dwv[r]); free(r_dbv[r]);
    }
    free(x); free(wq); free(bq_); free(wk); free(bk_); free(wv); free(bv_); free(e_r);
    band_free(&bq); band_free(&bk); band_free(&bv); band_free(&be); band_free(&ba);
    band_free(&bo); band_free(&bout); band_free(&bdx); band_free(&bdwq); band_free(&bdbq);
    band_free(&bdwk); band_free(&bdbk); band_free(&bdwv); band_free(&bdbv);
    free(out_r); free(q_r); free(k_r); free(v_r); free(a_r); free(o_r); free(g); free(dx0);
    free(dwq0); free(dbq0); free(dwk0); free(dbk0); free(dwv0); free(dbv0);
    free(dx_r); free(dwq_r); free(dbq_r); free(dwk_r); free(dbk_r); free(dwv_r); free(dbv_r);
    cudaFree(d_x); cudaFree(d_wq); cudaFree(d_bq); cudaFree(d_wk); cudaFree(d_bk);
    cudaFree(d_wv); cudaFree(d_bv); cudaFree(d_gamma); cudaFree(d_out); cudaFree(d_q);
    cudaFree(d_k); cudaFree(d_v); cudaFree(d_a); cudaFree(d_o); cudaFree(d_g); cudaFree(d_dx);
    cudaFree(d_dwq); cudaFree(d_dbq); cudaFree(d_dwk); cudaFree(d_dbk); cudaFree(d_dwv);
    cudaFree(d_dbv); cudaFree(d_dg);
}

static void test_cam(const char *op, int B, int C, int N) {
    size_t nx = (size_t)B * C * N, na = (size_t)B * C * C;
    float *x = hrand(nx, 0.0f, 0.5f);                                   /* [B,C,N] */
    float gamma[1] = {0.6f};
    float *out_r = xmalloc(nx * 4), *a_r = xmalloc(na * 4), *o_r = xmalloc(nx * 4);
    cam_forward_cpu(out_r, a_r, o_r, x, gamma, B, C, N, &cctx);

    float *d_x = dup_dev(x, nx * 4), *d_gamma = dup_dev(gamma, 4);
    float *d_out = dalloc(nx * 4), *d_a = dalloc(na * 4), *d_o = dalloc(nx * 4);
    float *go[2], *ga[2], *gO[2];
    for (int r = 0; r < 2; r++) {
        poison(d_out, nx * 4); poison(d_a, na * 4); poison(d_o, nx * 4);
        cam_forward_cuda(d_out, d_a, d_o, d_x, d_gamma, B, C, N, &gctx);
        gsync();
        go[r] = xmalloc(nx * 4); ga[r] = xmalloc(na * 4); gO[r] = xmalloc(nx * 4);
        down(go[r], d_out, nx * 4); down(ga[r], d_a, na * 4); down(gO[r], d_o, nx * 4);
    }
    /* tf32/bf16, the forward's chain: e = x·xᵀ (N terms), a = softmax(−e) (the sign
     * changes no magnitude), o = a·x (C terms along a's rows), out = γ·o + x */
    const long long cn = (long long)C * N, cc = (long long)C * C;
    band be = {0}, ba = {0}, bo = {0}, bout = {0};
    if (bands()) {
        be = band_new(na); ba = band_new(na); bo = band_new(nx); bout = band_new(nx);
        float *e_r = xmalloc(na * 4);
        band_gemm(&be, 0, false, true, C, C, N, x, N, cn, NULL, x, N, cn, NULL, C, cc, B);
        mm(e_r, false, true, C, C, N, x, N, cn, x, N, cn, C, cc, B);
        band_softmax(&ba, a_r, e_r, &be, (size_t)B * C, C, 1);
        band_softmax_gemm(&bo, 0, N, C, C, B, x, cn, 1, N, NULL, a_r, a_r, e_r, &be, cc, cn, 1, N);
        band_affine(&bout, &bo, gamma[0], o_r);
        free(e_r);
    }
    cmp_band(op, "out", go[0], out_r, nx, TOL_ATTN, &bout); same(op, "out", go[0], go[1], nx * 4);
    cmp_band(op, "a", ga[0], a_r, na, TOL_ATTN, &ba); same(op, "a", ga[0], ga[1], na * 4);
    cmp_band(op, "o", gO[0], o_r, nx, TOL_ATTN, &bo); same(op, "o", gO[0], gO[1], nx * 4);

    float *g = hrand(nx, -0.5f, 1.0f), *dx0 = hrand(nx, -0.1f, 0.1f);
    float dg0[1] = {-0.125f};
    float *dx_r = hcopy(dx0, nx), dg_r[1] = {dg0[0]};
    cam_backward_cpu(dx_r, dg_r, g, x, a_r, o_r, gamma, B, C, N, &cctx);
    up(d_a, a_r, na * 4); up(d_o, o_r, nx * 4);
    float *d_g = dup_dev(g, nx * 4), *d_dx = dalloc(nx * 4), *d_dg = dalloc(4);
    float *r_dx[2], r_dg[2];
    for (int r = 0; r < 2; r++) {
        up(d_dx, dx0, nx * 4); up(d_dg, dg0, 4);
        cam_backward_cuda(d_dx, d_dg, d_g, d_x, d_a, d_o, d_gamma, B, C, N, &gctx);
        gsync();
        r_dx[r] = xmalloc(nx * 4);
        down(r_dx[r], d_dx, nx * 4); down(&r_dg[r], d_dg, 4);
    }
    /* tf32/bf16, the backward's chain (as cam_backward_cuda): g = γ·dout; da = g·xᵀ (N
     * terms), dx += aᵀ·g (C terms), de = −softmax backward of da, dx += de·x (C terms
     * along a's rows) + deᵀ·x (C terms across them). dγ: no GEMM, fp32 tolerance. */
    band bdx = {0};
    if (bands()) {
        float *gd = xmalloc(nx * 4), *da = xmalloc(na * 4), *de = xmalloc(na * 4);
        for (size_t i = 0; i < nx; i++) gd[i] = gamma[0] * g[i];
        band bda = band_new(na), bde = band_new(na);
        bdx = band_new(nx);
        band_gemm(&bda, 0, false, true, C, C, N, gd, N, cn, NULL, x, N, cn, NULL, C, cc, B);
        mm(da, false, true, C, C, N, gd, N, cn, x, N, cn, C, cc, B);
        band_gemm(&bdx, 1, true, false, C, N, C, a_r, C, cc, NULL, gd, N, cn, NULL, N, cn, B);
        band_softmax(&bde, a_r, NULL, &bda, (size_t)B * C, C, 0);
        softmax_bwd_values(de, a_r, da, (size_t)B * C, C, -1.0f);
        band_softmax_gemm(&bdx, 1, N, C, C, B, x, cn, 1, N, NULL, a_r, de, NULL, &bda, cc, cn, 1, N);
        band_gemm(&bdx, 1, true, false, C, N, C, de, C, cc, &bde, x, N, cn, NULL, N, cn, B);
        band_free(&bda); band_free(&bde);
        free(gd); free(da); free(de);
    }
    cmp_band(op, "dx", r_dx[0], dx_r, nx, TOL_DGRAD, &bdx); same(op, "dx", r_dx[0], r_dx[1], nx * 4);
    cmp(op, "dgamma", &r_dg[0], dg_r, 1, scalar_reduce_tol(g, o_r, nx));
    same(op, "dgamma", &r_dg[0], &r_dg[1], 4);

    band_free(&be); band_free(&ba); band_free(&bo); band_free(&bout); band_free(&bdx);
    for (int r = 0; r < 2; r++) { free(go[r]); free(ga[r]); free(gO[r]); free(r_dx[r]); }
    free(x); free(out_r); free(a_r); free(o_r); free(g); free(dx0); free(dx_r);
    cudaFree(d_x); cudaFree(d_gamma); cudaFree(d_out); cudaFree(d_a); cudaFree(d_o);
    cudaFree(d_g); cudaFree(d_dx); cudaFree(d_dg);
}

/* ---- dropout and fusion -------------------------------------------------------------- */

#define DROP_SEED 0x0123456789abcdefull

static void test_dropout(const char *op, int B, int D, float p, uint32_t tag,
                         uint32_t step, uint32_t sample0) {
    size_t n = (size_t)B * D;
    float *x = hrand(n, -2.0f, 2.0f), *y_r = xmalloc(n * 4);               /* [B,D] */
    dropout_forward_cpu(y_r, x, B, D, p, DROP_SEED, tag, &step, sample0, &cctx);
    uint32_t *d_step = dup_dev(&step, 4);                                   /* [1] */
    float *d_x = dup_dev(x, n * 4), *d_y = dalloc(n * 4);
    float *got[3] = {xmalloc(n * 4), xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_y, n * 4);
        dropout_forward_cuda(d_y, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, &gctx);
        gsync();
        down(got[r], d_y, n * 4);
    }
    /* in place: y and x the same buffer */
    dropout_forward_cuda(d_x, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, &gctx);
    gsync();
    down(got[2], d_x, n * 4);
    cmp(op, "y", got[0], y_r, n, TOL_EXACT);
    cmp(op, "y(in place)", got[2], y_r, n, TOL_EXACT);
    same(op, "y", got[0], got[1], n * 4);

    /* the step is read on the device when the kernel runs: another value written into
     * the same buffer gives that step's mask (the reference's at step + 1) */
    uint32_t step1 = step + 1;
    float *y1_r = xmalloc(n * 4);
    dropout_forward_cpu(y1_r, x, B, D, p, DROP_SEED, tag, &step1, sample0, &cctx);
    up(d_x, x, n * 4);
    up(d_step, &step1, 4);
    poison(d_y, n * 4);
    dropout_forward_cuda(d_y, d_x, B, D, p, DROP_SEED, tag, d_step, sample0, &gctx);
    gsync();
    down(got[1], d_y, n * 4);
    cmp(op, "y(*step+1)", got[1], y1_r, n, TOL_EXACT);
    if (p > 0.0f && p < 1.0f) {
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += (got[1][i] != 0.0f) != (got[0][i] != 0.0f);
        char name[160];
        snprintf(name, sizeof name, "%s.*step changed on the device -> another mask "
                 "(%zu of %zu differ)", op, differ, n);
        table_add(op, "mask(*step+1)", n, (double)differ, 0.0, check_true(name, differ > 0));
    }
    up(d_step, &step, 4);

    float *dy = hrand(n, -1.0f, 1.0f), *dx0 = hrand(n, -0.5f, 0.5f);
    float *dx_r = hcopy(dx0, n);
    dropout_backward_cpu(dx_r, dy, B, D, p, DROP_SEED, tag, &step, sample0, &cctx);
    float *d_dy = dup_dev(dy, n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_x, dx0, n * 4);
        dropout_backward_cuda(d_x, d_dy, B, D, p, DROP_SEED, tag, d_step, sample0, &gctx);
        gsync();
        down(got[r], d_x, n * 4);
    }
    cmp(op, "dx", got[0], dx_r, n, TOL_EXACT);
    same(op, "dx", got[0], got[1], n * 4);
    for (int r = 0; r < 3; r++) free(got[r]);
    free(x); free(y_r); free(y1_r); free(dy); free(dx0); free(dx_r);
    cudaFree(d_x); cudaFree(d_y); cudaFree(d_dy); cudaFree(d_step);
}

static void test_fuse(const char *op, size_t n, int two) {
    float *a = hrand(n, -1.0f, 1.0f), *b = two ? hrand(n, -1.0f, 1.0f) : NULL;   /* [n] */
    float *f_r = xmalloc(n * 4);
    fuse_forward_cpu(f_r, a, b, n, &cctx);
    float *d_a = dup_dev(a, n * 4), *d_b = two ? dup_dev(b, n * 4) : NULL, *d_f = dalloc(n * 4);
    float *got[2] = {xmalloc(n * 4), xmalloc(n * 4)}, *got_b[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_f, n * 4);
        fuse_forward_cuda(d_f, d_a, d_b, n, &gctx);
        gsync();
        down(got[r], d_f, n * 4);
    }
    cmp(op, "f", got[0], f_r, n, TOL_EXACT);
    same(op, "f", got[0], got[1], n * 4);

    float *df = hrand(n, -1.0f, 1.0f), *da0 = hrand(n, -0.5f, 0.5f), *db0 = hrand(n, -0.5f, 0.5f);
    float *da_r = hcopy(da0, n), *db_r = hcopy(db0, n);
    fuse_backward_cpu(da_r, two ? db_r : NULL, df, a, b, n, &cctx);
    float *d_df = dup_dev(df, n * 4), *d_da = dalloc(n * 4), *d_db = dalloc(n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_da, da0, n * 4); up(d_db, db0, n * 4);
        fuse_backward_cuda(d_da, two ? d_db : NULL, d_df, d_a, d_b, n, &gctx);
        gsync();
        down(got[r], d_da, n * 4); down(got_b[r], d_db, n * 4);
    }
    cmp(op, "da", got[0], da_r, n, TOL_EXACT);
    cmp(op, "db", got_b[0], db_r, n, TOL_EXACT);   /* untouched when one stream */
    same(op, "da", got[0], got[1], n * 4);
    same(op, "db", got_b[0], got_b[1], n * 4);
    for (int r = 0; r < 2; r++) { free(got[r]); free(got_b[r]); }
    free(a); free(b); free(f_r); free(df); free(da0); free(db0); free(da_r); free(db_r);
    cudaFree(d_a); cudaFree(d_b); cudaFree(d_f); cudaFree(d_df); cudaFree(d_da); cudaFree(d_db);
}

/* ---- tanh and the losses -------------------------------------------------------------- */

static void test_tanh(const char *op, size_t n) {
    float *z = hrand(n, -4.0f, 4.0f), *h_r = xmalloc(n * 4);                   /* [n] */
    tanh_forward_cpu(h_r, z, n, &cctx);
    float *d_z = dup_dev(z, n * 4), *d_h = dalloc(n * 4);
    float *got[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        poison(d_h, n * 4);
        tanh_forward_cuda(d_h, d_z, n, &gctx);
        gsync();
        down(got[r], d_h, n * 4);
    }
    cmp(op, "h", got[0], h_r, n, TOL_TANH);
    same(op, "h", got[0], got[1], n * 4);

    float *dh = hrand(n, -1.0f, 1.0f), *dz0 = hrand(n, -0.5f, 0.5f), *dz_r = hcopy(dz0, n);
    tanh_backward_cpu(dz_r, dh, h_r, n, &cctx);
    float *d_dh = dup_dev(dh, n * 4);
    up(d_h, h_r, n * 4);
    for (int r = 0; r < 2; r++) {
        up(d_z, dz0, n * 4);
        tanh_backward_cuda(d_z, d_dh, d_h, n, &gctx);
        gsync();
        down(got[r], d_z, n * 4);
    }
    cmp(op, "dz", got[0], dz_r, n, TOL_EXACT);
    same(op, "dz", got[0], got[1], n * 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(z); free(h_r); free(dh); free(dz0); free(dz_r);
    cudaFree(d_z); cudaFree(d_h); cudaFree(d_dh);
}

/* Labels [B,C]: multi-label (each class on with probability dens, about 1 row in 10
 * with no label at all), or single-label (one-hot). mode 2: every row has class 0
 * only (no negatives: no triplet). */
static float *make_labels(int B, int C, int mode, double dens) {
    float *lab = xmalloc((size_t)B * C * 4);
    for (int b = 0; b < B; b++) {
        float *l = lab + (size_t)b * C;
        for (int c = 0; c < C; c++) l[c] = 0.0f;
        if (mode == 2) { l[0] = 1.0f; continue; }
        if (mode == 0) { l[check_next(&seed_state) % (uint64_t)C] = 1.0f; continue; }
        if (check_unif(&seed_state) < 0.1) continue;     /* unlabeled row */
        for (int c = 0; c < C; c++) l[c] = check_unif(&seed_state) < dens ? 1.0f : 0.0f;
    }
    return lab;
}

#define J1_MARGIN 5.0f
#define LOSS_SCALE 0.75f

static void test_j1(const char *op, int B, int K, int C, int mode) {
    size_t nh = (size_t)B * K;
    float *h = hrand(nh, -1.0f, 1.0f);                                      /* [B,K] */
    float *lab = make_labels(B, C, mode, 3.0 / C);                          /* [B,C] */
    float *dh0 = hrand(nh, -0.01f, 0.01f), *dh_r = hcopy(dh0, nh);
    float loss_r = 0.0f;
    int64_t nt_r = 0;
    j1_triplet_cpu(&loss_r, &nt_r, dh_r, h, lab, B, K, C, J1_MARGIN, LOSS_SCALE, &cctx);

    float *d_h = dup_dev(h, nh * 4), *d_lab = dup_dev(lab, (size_t)B * C * 4);
    float *d_dh = dalloc(nh * 4), *d_loss = dalloc(4);
    int64_t *d_nt = dalloc(8);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[3];
    int64_t nt[3];
    for (int r = 0; r < 2; r++) {
        up(d_dh, dh0, nh * 4); poison(d_loss, 4); poison(d_nt, 8);
        j1_triplet_cuda(d_loss, d_nt, d_dh, d_h, d_lab, B, K, C, J1_MARGIN, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dh, nh * 4); down(&loss[r], d_loss, 4); down(&nt[r], d_nt, 8);
    }
    /* loss only (dh NULL, ntrip NULL) */
    poison(d_loss, 4);
    j1_triplet_cuda(d_loss, NULL, NULL, d_h, d_lab, B, K, C, J1_MARGIN, LOSS_SCALE, &gctx);
    gsync();
    down(&loss[2], d_loss, 4);

    char name[160];
    snprintf(name, sizeof name, "%s.ntrip identical (got %lld, ref %lld)", op,
             (long long)nt[0], (long long)nt_r);
    table_add(op, "ntrip", 1, fabs((double)nt[0] - (double)nt_r), 0.0,
              check_true(name, nt[0] == nt_r && nt[1] == nt_r));
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "loss(no grad)", &loss[2], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dh", got[0], dh_r, nh, TOL_DOUBLE);
    same(op, "dh", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(h); free(lab); free(dh0); free(dh_r);
    cudaFree(d_h); cudaFree(d_lab); cudaFree(d_dh); cudaFree(d_loss); cudaFree(d_nt);
}

static void test_j2(const char *op, int B, int C, int multi) {
    size_t ny = (size_t)B * C;
    float *y = hrand(ny, -10.0f, 10.0f);       /* [B,C]: wide enough for eq. 7's clamp */
    float *lab = make_labels(B, C, multi ? 1 : 0, 2.0 / C);                 /* [B,C] */
    float norm = (float)(2 * B);               /* as if a second rank held B more rows */
    float *dy0 = hrand(ny, -0.01f, 0.01f), *dy_r = hcopy(dy0, ny), loss_r = 0.0f;
    j2_class_cpu(&loss_r, dy_r, y, lab, B, C, multi, norm, LOSS_SCALE, &cctx);

    float *d_y = dup_dev(y, ny * 4), *d_lab = dup_dev(lab, ny * 4), *d_dy = dalloc(ny * 4);
    float *d_loss = dalloc(4), *got[2] = {xmalloc(ny * 4), xmalloc(ny * 4)}, loss[3];
    for (int r = 0; r < 2; r++) {
        up(d_dy, dy0, ny * 4); poison(d_loss, 4);
        j2_class_cuda(d_loss, d_dy, d_y, d_lab, B, C, multi, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dy, ny * 4); down(&loss[r], d_loss, 4);
    }
    poison(d_loss, 4);
    j2_class_cuda(d_loss, NULL, d_y, d_lab, B, C, multi, norm, LOSS_SCALE, &gctx);
    gsync();
    down(&loss[2], d_loss, 4);
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "loss(no grad)", &loss[2], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dy", got[0], dy_r, ny, TOL_DOUBLE);
    same(op, "dy", got[0], got[1], ny * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(y); free(lab); free(dy0); free(dy_r);
    cudaFree(d_y); cudaFree(d_lab); cudaFree(d_dy); cudaFree(d_loss);
}

static void test_j3(const char *op, int B, int K) {
    size_t nh = (size_t)B * K;
    float *h = hrand(nh, -1.0f, 1.0f);                                      /* [B,K] */
    h[0] = 0.0f;                                  /* sign(0) = 0 */
    if (nh > 1) h[1] = 1.0f;                      /* | |h| − 1 | = 0: sign 0 */
    float norm = (float)(2 * B);
    float *dh0 = hrand(nh, -0.01f, 0.01f), *dh_r = hcopy(dh0, nh), loss_r = 0.0f;
    j3_quant_cpu(&loss_r, dh_r, h, B, K, norm, LOSS_SCALE, &cctx);
    float *d_h = dup_dev(h, nh * 4), *d_dh = dalloc(nh * 4), *d_loss = dalloc(4);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[2];
    for (int r = 0; r < 2; r++) {
        up(d_dh, dh0, nh * 4); poison(d_loss, 4);
        j3_quant_cuda(d_loss, d_dh, d_h, B, K, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dh, nh * 4); down(&loss[r], d_loss, 4);
    }
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dh", got[0], dh_r, nh, TOL_EXACT);
    same(op, "dh", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    for (int r = 0; r < 2; r++) free(got[r]);
    free(h); free(dh0); free(dh_r);
    cudaFree(d_h); cudaFree(d_dh); cudaFree(d_loss);
}

/* J3 with tanh's backward fused: the loss (double sums in another order: TOL_DOUBLE)
 * and dz += (dh + scale·dJ3/dh)·(1 − h²) (every operation rounded as the reference:
 * TOL_EXACT), with the other consumers' dh and with dh NULL. h holds exact 0 and ±1. */
static void test_j3_tanh(const char *op, int B, int K, int with_dh) {
    size_t nh = (size_t)B * K;
    float *z = hrand(nh, -3.0f, 3.0f), *h = xmalloc(nh * 4);                /* [B,K] */
    tanh_forward_cpu(h, z, nh, &cctx);
    h[0] = 0.0f;                                  /* sign(0) = 0 */
    if (nh > 1) h[1] = 1.0f;                      /* sign(|h| − 1) = 0 and 1 − h² = 0 */
    if (nh > 2) h[2] = -1.0f;
    float norm = (float)(2 * B);
    float *dh = with_dh ? hrand(nh, -0.05f, 0.05f) : NULL;                  /* [B,K] */
    float *dz0 = hrand(nh, -0.01f, 0.01f), *dz_r = hcopy(dz0, nh), loss_r = 0.0f;
    j3_tanh_backward_cpu(&loss_r, dz_r, dh, h, B, K, norm, LOSS_SCALE, &cctx);
    float *d_h = dup_dev(h, nh * 4), *d_dh = with_dh ? dup_dev(dh, nh * 4) : NULL;
    float *d_dz = dalloc(nh * 4), *d_loss = dalloc(4);
    float *got[2] = {xmalloc(nh * 4), xmalloc(nh * 4)}, loss[2];
    for (int r = 0; r < 2; r++) {
        up(d_dz, dz0, nh * 4); poison(d_loss, 4);
        j3_tanh_backward_cuda(d_loss, d_dz, d_dh, d_h, B, K, norm, LOSS_SCALE, &gctx);
        gsync();
        down(got[r], d_dz, nh * 4); down(&loss[r], d_loss, 4);
    }
    cmp(op, "loss", &loss[0], &loss_r, 1, TOL_DOUBLE);
    cmp(op, "dz", got[0], dz_r, nh, TOL_EXACT);
    same(op, "dz", got[0], got[1], nh * 4);
    same(op, "loss", &loss[0], &loss[1], 4);
    if (with_dh) {   /* dh is read only */
        down(got[1], d_dh, nh * 4);
        int ok = memcmp(got[1], dh, nh * 4) == 0;
        char name[128];
        snprintf(name, sizeof name, "%s.dh untouched (read only)", op);
        table_add(op, "dh(read only)", nh, ok ? 0.0 : NAN, 0.0, check_true(name, ok));
    }
    for (int r = 0; r < 2; r++) free(got[r]);
    free(z); free(h); free(dh); free(dz0); free(dz_r);
    cudaFree(d_h); cudaFree(d_dh); cudaFree(d_dz); cudaFree(d_loss);
}

/* ---- RMSProp and the transform ------------------------------------------------------- */

/* offset 1 (floats) makes the buffers 4 bytes off 16-byte alignment: the scalar path.
 * Run 0 has no guard, run 1 an all-finite guard: the same bits (and the reference's).
 * Then a NaN in the guard's last slot, and −inf in its first: theta and v untouched. */
#define RMS_NGUARD 3                               /* J1, J2, J3 */
static void test_rmsprop(const char *op, size_t n, int offset) {
    const float lr = 1e-3f, alpha = 0.99f, eps = 1e-8f, wd = 1e-2f;
    float *th = hrand(n, -1.0f, 1.0f), *v = hrand(n, 0.0f, 1e-3f), *g = hrand(n, -1.0f, 1.0f);
    v[0] = 0.0f; g[0] = 0.0f; th[0] = 0.0f;              /* √0 + eps: eps alone */
    float *th_r = hcopy(th, n), *v_r = hcopy(v, n);
    rmsprop_step_cpu(th_r, v_r, g, n, lr, alpha, eps, wd, NULL, 0, &cctx);
    size_t bytes = (n + offset) * 4;
    float *d_th = dalloc(bytes), *d_v = dalloc(bytes), *d_g = dalloc(bytes);
    const float finite[RMS_NGUARD] = {4.5f, 0.0f, -3.0e38f};
    float *d_guard = dup_dev(finite, sizeof finite);             /* [RMS_NGUARD] */
    float *gt[2] = {xmalloc(n * 4), xmalloc(n * 4)}, *gv[2] = {xmalloc(n * 4), xmalloc(n * 4)};
    for (int r = 0; r < 2; r++) {
        up(d_th + offset, th, n * 4); up(d_v + offset, v, n * 4); up(d_g + offset, g, n * 4);
        rmsprop_step_cuda(d_th + offset, d_v + offset, d_g + offset, n, lr, alpha, eps, wd,
                          r ? d_guard : NULL, r ? RMS_NGUARD : 0, &gctx);
        gsync();
        down(gt[r], d_th + offset, n * 4); down(gv[r], d_v + offset, n * 4);
    }
    cmp(op, "theta", gt[0], th_r, n, TOL_EXACT);
    cmp(op, "v", gv[0], v_r, n, TOL_EXACT);
    same(op, "theta", gt[0], gt[1], n * 4);     /* guard NULL vs finite guard */
    same(op, "v", gv[0], gv[1], n * 4);
    for (int b = 0; b < 2; b++) {
        float bad[RMS_NGUARD];
        memcpy(bad, finite, sizeof bad);
        if (b == 0) bad[RMS_NGUARD - 1] = NAN; else bad[0] = -INFINITY;
        up(d_guard, bad, sizeof bad);
        up(d_th + offset, th, n * 4); up(d_v + offset, v, n * 4);
        rmsprop_step_cuda(d_th + offset, d_v + offset, d_g + offset, n, lr, alpha, eps, wd,
                          d_guard, RMS_NGUARD, &gctx);
        gsync();
        down(gt[0], d_th + offset, n * 4); down(gv[0], d_v + offset, n * 4);
        int ok = !memcmp(gt[0], th, n * 4) && !memcmp(gv[0], v, n * 4);
        char name[160];
        snprintf(name, sizeof name, "%s.guard %s: theta and v untouched (bitwise)", op,
                 b == 0 ? "NaN in the last slot" : "-inf in the first slot");
        table_add(op, b == 0 ? "skip(NaN)" : "skip(-inf)", n, ok ? 0.0 : NAN, 0.0,
                  check_true(name, ok));
    }
    for (int r = 0; r < 2; r++) { free(gt[r]); free(gv[r]); }
    free(th); free(v); free(g); free(th_r); free(v_r);
    cudaFree(d_th); cudaFree(d_v); cudaFree(d_g); cudaFree(d_guard);
}

/* The transform of a contiguous batch (index NULL) and, from a set of N = B + 2 images,
 * of the rows an index names (out of order, the last and first rows, one repeated):
 * both must be the reference's bits. */
static void test_transform(const char *op, int B, int S) {
    int R = transform_cache_side(S), N = B + 2;
    size_t unit = (size_t)R * R * 3, nin = (size_t)N * unit, nout = (size_t)B * 3 * S * S;
    uint8_t *in = xmalloc(nin);                                     /* [N,R,R,3] */
    for (size_t i = 0; i < nin; i++) in[i] = (uint8_t)(check_next(&seed_state) >> 56);
    int32_t *crop = xmalloc((size_t)B * 3 * 4);                      /* [B,3] */
    for (int b = 0; b < B; b++) {
        crop[3 * b + 0] = (int32_t)(check_next(&seed_state) % (uint64_t)(R - S + 1));
        crop[3 * b + 1] = (int32_t)(check_next(&seed_state) % (uint64_t)(R - S + 1));
        crop[3 * b + 2] = (int32_t)(check_next(&seed_state) & 1);
    }
    crop[0] = crop[1] = 0; crop[2] = 1;                              /* corners */
    if (B > 1) { crop[3] = crop[4] = R - S; crop[5] = 0; }
    int32_t *index = xmalloc((size_t)B * 4);                         /* [B] rows of in */
    for (int b = 0; b < B; b++) index[b] = (int32_t)(check_next(&seed_state) % (uint64_t)N);
    index[0] = N - 1;                                                /* the last row */
    if (B > 1) index[1] = 0;
    if (B > 2) index[B - 1] = index[0];                              /* a repeat */
    float *out_r = xmalloc(nout * 4), *outi_r = xmalloc(nout * 4);   /* [B,3,S,S] */
    transform_batch_cpu(out_r, in, crop, NULL, B, R, S, &cctx);
    transform_batch_cpu(outi_r, in, crop, index, B, R, S, &cctx);
    uint8_t *d_in = dup_dev(in, nin);
    int32_t *d_crop = dup_dev(crop, (size_t)B * 3 * 4), *d_index = dup_dev(index, (size_t)B * 4);
    float *d_out = dalloc(nout * 4), *got[3] = {xmalloc(nout * 4), xmalloc(nout * 4), xmalloc(nout * 4)};
    for (int r = 0; r < 3; r++) {
        poison(d_out, nout * 4);
        transform_batch_cuda(d_out, d_in, d_crop, r == 2 ? d_index : NULL, B, R, S, &gctx);
        gsync();
        down(got[r], d_out, nout * 4);
    }
    cmp(op, "out", got[0], out_r, nout, TOL_EXACT);
    same(op, "out", got[0], got[1], nout * 4);
    cmp(op, "out(index)", got[2], outi_r, nout, TOL_EXACT);
    for (int r = 0; r < 3; r++) free(got[r]);
    free(in); free(crop); free(index); free(out_r); free(outi_r);
    cudaFree(d_in); cudaFree(d_crop); cudaFree(d_index); cudaFree(d_out);
}

/* ---- what the device's GEMMs do at tf32/bf16: two probes ------------------------------- */

/* Both through linear_forward_cuda (out = in·wᵀ + b, b = 0: one GEMM), at B × I → O.
 * Conversion: in[b] = (x1 or x2 for even or odd b, 0, …), w[o] = (1, 0, …): out holds the
 * converted operands. x1 = 1 + 2^-(m+1) is a tie at m mantissa bits, x2 = x1 + 2^-(m+3)
 * just above it: to nearest-even gives (1, 1 + 2^-m), to nearest-away (1 + 2^-m, 1 + 2^-m),
 * truncation (1, 1), no conversion (x1, x2). Accumulation (B = I = O = 64): in[b] = (1, δ,
 * …, δ), 63 terms δ = 3·2^-26, w all ones: an exact sum rounded once is 1 + 24·2^-23, an
 * fp32 chain that rounds to nearest 1, the sm_90 block-FMA model of checks/emu 1 + 15·2^-23
 * (blocks of 8 or 16 products aligned to 2^-25, truncated). Printed; returns 1 unless every
 * conversion probe rounded to nearest (then the tolerances allow no truncation shrink). */
static int probe_tc(int mbits) {
    static const int shapes[2][3] = {{64, 64, 64}, {256, 1024, 128}};   /* B, I, O */
    const float x1 = 1.0f + ldexpf(1.0f, -(mbits + 1)), x2 = x1 + ldexpf(1.0f, -(mbits + 3));
    const float up = 1.0f + ldexpf(1.0f, -mbits);
    int truncates = 0;
    for (int t = 0; t < 3; t++) {
        const int accum = t == 2, B = shapes[accum ? 0 : t][0], I = shapes[accum ? 0 : t][1];
        const int O = shapes[accum ? 0 : t][2];
        float *in = hzero((size_t)B * I), *w = hzero((size_t)O * I), *z = hzero(O);   /* [B,I], [O,I] */
        for (int b = 0; b < B; b++)
            for (int i = 0; i < I; i++)
                in[(size_t)b * I + i] = accum ? (i ? 3.0f * ldexpf(1.0f, -26) : 1.0f)
                                              : (i ? 0.0f : (b & 1) ? x2 : x1);
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++) w[(size_t)o * I + i] = accum || i == 0 ? 1.0f : 0.0f;
        float *d_in = dup_dev(in, (size_t)B * I * 4), *d_w = dup_dev(w, (size_t)O * I * 4);
        float *d_z = dup_dev(z, O * 4), *d_out = dalloc((size_t)B * O * 4);
        float *out = xmalloc((size_t)B * O * 4);
        linear_forward_cuda(d_out, d_in, d_w, d_z, B, I, O, 0, &gctx);
        gsync();
        down(out, d_out, (size_t)B * O * 4);
        if (accum) {
            const double n = (out[0] - 1.0) * 8388608.0;   /* in units of 2^-23 */
            printf("probe: %s accumulation of 1 + 63·(3·2^-26) = 1 + %g·2^-23 (an exact sum "
                   "rounded once: 24; an fp32 chain rounding to nearest: 0; the sm_90 block-FMA "
                   "model: 15)\n", GE.name, n);
        } else {
            const float r1 = out[0], r2 = out[O];
            const char *mode = r1 == 1.0f && r2 == up ? "to nearest, ties to even"
                             : r1 == up && r2 == up ? "to nearest, ties away"
                             : r1 == 1.0f && r2 == 1.0f ? "truncation"
                             : r1 == x1 && r2 == x2 ? "none (not converted)" : "unrecognised";
            if (r2 != up) truncates = 1;
            printf("probe: %s operand conversion at %d×%d→%d: %s (1 + 2^-%d + [0 | 2^-%d] "
                   "came out 1 + %g·2^-%d and 1 + %g·2^-%d)\n", GE.name, B, I, O, mode,
                   mbits + 1, mbits + 3, (r1 - 1.0) * ldexp(1.0, mbits + 3), mbits + 3,
                   (r2 - 1.0) * ldexp(1.0, mbits + 3), mbits + 3);
        }
        free(in); free(w); free(z); free(out);
        cudaFree(d_in); cudaFree(d_w); cudaFree(d_z); cudaFree(d_out);
    }
    printf("probe: %s tolerances %s a truncation shrink of the products (≤ %g·u a conversion)\n",
           GE.name, truncates ? "allow" : "leave out", GE_SHRINK);
    return truncates;
}

/* ---- main ------------------------------------------------------------------------------ */

typedef struct conv_case { const char *name; int Ci, H, Co, k, stride, pad, din; } conv_case;

/* AlexNet's five convolutions at input side S (conv1's input) */
static void conv_cases(conv_case *cc, int S) {
    int h1 = (S + 4 - 11) / 4 + 1, h2 = maxpool_out(h1), h3 = maxpool_out(h2);
    conv_case c[5] = {
        {"conv1", 3, S, 64, 11, 4, 2, 0},     /* the image needs no gradient */
        {"conv2", 64, h2, 192, 5, 1, 2, 1},
        {"conv3", 192, h3, 384, 3, 1, 1, 1},
        {"conv4", 384, h3, 256, 3, 1, 1, 1},
        {"conv5", 256, h3, 256, 3, 1, 1, 1},
    };
    memcpy(cc, c, sizeof c);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            const char *p = argv[++i];
            if (!strcmp(p, "fp32")) precision = DATH_FP32;
            else if (!strcmp(p, "tf32")) precision = DATH_TF32;
            else if (!strcmp(p, "bf16")) precision = DATH_BF16;
            else {
                fprintf(stderr, "%s: --precision %s: expected fp32, tf32 or bf16\n", argv[0], p);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--full] [--precision fp32|tf32|bf16]\n", argv[0]);
            return 2;
        }
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        char why[256];
        snprintf(why, sizeof why, "no GPU visible (cudaGetDeviceCount: %s, %d devices)",
                 e == cudaSuccess ? "ok" : cudaGetErrorString(e), ndev);
        check_skip(why);
    }
    char why[256] = "";
    gpu = backend_cuda(why, sizeof why);
    if (!gpu) check_skip(why);

    /* sizes */
    const int B = full ? 128 : 2;           /* images */
    const int S = full ? 224 : 63;          /* input side (63: the smallest AlexNet takes) */
    const int HID = full ? 4096 : 96;       /* fc6/fc7 width */
    const int C5 = full ? 256 : 32, CQ = full ? 32 : 4;
    conv_case cc[5];
    conv_cases(cc, S);
    if (!full)   /* small channels too: the sanitizer runs this size */
        for (int i = 0; i < 5; i++) {
            static const int ci[5] = {3, 8, 12, 16, 12}, co[5] = {8, 12, 16, 12, 12};
            cc[i].Ci = ci[i]; cc[i].Co = co[i];
        }
    const int h5 = cc[4].H;                 /* conv5's side: 13 at 224, 3 at 63 */
    const int N = full ? h5 * h5 : 5 * 5;   /* attention positions */
    const int P6 = MODEL_POOL;
    const int FLAT = C5 * P6 * P6;        /* fc6's input */

    size_t work = 0;
    for (int i = 0; i < 5; i++) {
        conv2d_shape s = conv2d_make_shape(B, cc[i].Ci, cc[i].H, cc[i].H, cc[i].Co, cc[i].k,
                                           cc[i].stride, cc[i].pad);
        size_t w = conv2d_work_bytes(&s);
        if (w > work) work = w;
    }
    size_t attn = ((size_t)3 * C5 * N + 2 * (size_t)CQ * N + (size_t)N * N) * B * 4 + (1 << 20);
    if (attn > work) work = attn;
    size_t j1 = 8 * ((size_t)256 * 256 + 512);
    if (j1 > work) work = j1;

    char err[256];
    if (gpu->ctx_init(&gctx, work, precision, err, sizeof err)) {
        fprintf(stderr, "FAIL: CUDA ctx_init at --precision %s: %s\n",
                precision == DATH_TF32 ? "tf32" : precision == DATH_BF16 ? "bf16" : "fp32", err);
        return 1;
    }
    struct cudaDeviceProp prop;
    TCUDA(cudaGetDeviceProperties(&prop, 0));
    ge_init(precision, prop.major, 1);
    if (backend_cpu()->ctx_init(&cctx, work, DATH_FP32, err, sizeof err)) {
        fprintf(stderr, "FAIL: CPU ctx_init: %s\n", err);
        return 1;
    }
    printf("device: %s\nshapes: %s (B = %d, S = %d, hidden %d, C5 = %d, Cq = %d, N = %d); "
           "scratch %.1f MB\n", gpu->device, full ? "full" : "small", B, S, HID, C5, CQ, N,
           work / 1e6);
    if (GE.u > 0.0) {
        const int mbits = precision == DATH_TF32 ? 10 : 7;
        ge_init(precision, prop.major, probe_tc(mbits));
        printf("precision: %s: the CUDA GEMMs on %s tensor cores (operands to %d mantissa bits, "
               "u = 2^-%d), the CPU reference in fp32; tolerances: fp32's plus the error band of "
               "checks/gemm_error.h (%gσ of %g·u·T2, shrink ≤ %g·u, %g·2^-24 per block of %d, "
               "sm_%d%d)\n", GE.name, GE.name, mbits, mbits + 1, GE_NSIGMA, GE_SIGMA,
               GE.shrink / GE.u, GE.acc, GE.bk, prop.major, prop.minor);
    } else
        printf("precision: fp32: the CUDA GEMMs in fp32 (CUBLAS_COMPUTE_32F), as the CPU "
               "reference; fp32 tolerances\n");

    double t0 = now_s();
    char name[64];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "conv.%s", cc[i].name);
        test_conv(name, B, cc[i].Ci, cc[i].H, cc[i].Co, cc[i].k, cc[i].stride, cc[i].pad,
                  cc[i].din);
    }
    printf("-- conv: %.1f s\n", now_s() - t0); t0 = now_s();

    /* both streams' conv1 at once: its real shape (small: the small conv1), then small
     * shapes in chunks of two images, with reversed, unevenly spaced and four sets */
    test_conv_multi("conv_multi.conv1", B, 3, S, cc[0].Co, 11, 4, 2, 2, MULTI_EVEN, 0, 0);
    test_conv_multi("conv_multi.chunked.rev", 5, 3, 63, 8, 11, 4, 2, 2, MULTI_REVERSED, 2, 1);
    test_conv_multi("conv_multi.uneven3", 3, 8, 15, 12, 5, 1, 2, 3, MULTI_UNEVEN, 2, 1);
    test_conv_multi("conv_multi.even4", 2, 8, 15, 12, 3, 1, 1, 4, MULTI_EVEN, 0, 1);
    printf("-- conv multi: %.1f s\n", now_s() - t0); t0 = now_s();

    test_linear("linear.fc6", B, FLAT, HID, 1);
    test_linear("linear.fc7", B, HID, HID, 1);
    test_linear("linear.hash16", B, HID, 16, 0);
    test_linear("linear.hash64", B, HID, 64, 0);
    test_linear("linear.cls80", B, 64, 80, 0);
    test_linear("linear.cls21", B, 16, 21, 0);
    printf("-- linear: %.1f s\n", now_s() - t0); t0 = now_s();

    {
        int h1 = (S + 4 - 11) / 4 + 1, h2 = maxpool_out(h1), h3 = maxpool_out(h2);
        test_maxpool("maxpool.pool1", B * cc[0].Co, h1);
        test_maxpool("maxpool.pool2", B * cc[1].Co, h2);
        test_maxpool("maxpool.pool5", B * C5, full ? h3 : 13);
        test_avgpool("avgpool.identity", B * C5, P6, P6);
        test_avgpool("avgpool.13to6", B * (full ? C5 : 4), 13, P6);
        test_avgpool("avgpool.1to6", B * (full ? C5 : 4), 1, P6);
        test_avgpool("avgpool.7to6", B * (full ? C5 : 4), 7, P6);
    }
    printf("-- pool: %.1f s\n", now_s() - t0); t0 = now_s();

    test_pam("attention.pam", B, C5, CQ, N);
    test_cam("attention.cam", B, C5, N);
    printf("-- attention: %.1f s\n", now_s() - t0); t0 = now_s();

    test_dropout("dropout.fc6in", B, FLAT, 0.5f, RNG_DROPOUT + 0, 7, full ? 128 : 3);
    test_dropout("dropout.fc7in", B, HID, 0.5f, RNG_DROPOUT + 3, 123456, 0);
    test_dropout("dropout.p0", B, 100, 0.0f, RNG_DROPOUT + 1, 1, 0);
    test_dropout("dropout.p1", B, 100, 1.0f, RNG_DROPOUT + 1, 1, 0);
    test_fuse("fuse.two", (size_t)B * HID, 1);
    test_fuse("fuse.one", (size_t)B * HID + 3, 0);
    printf("-- fusion: %.1f s\n", now_s() - t0); t0 = now_s();

    const int JB = full ? 128 : 12;
    test_tanh("tanh", (size_t)JB * 64 + 5);
    test_j1("j1.K16C21", JB, 16, 21, 1);
    test_j1("j1.K64C80", JB, 64, 80, 1);
    test_j1("j1.single.K64C21", JB, 64, 21, 0);
    test_j1("j1.no-triplet", JB, 16, 5, 2);
    test_j1("j1.B1", 1, 16, 5, 1);
    if (full) test_j1("j1.B256.K64C80", 256, 64, 80, 1);
    test_j2("j2.single.C21", JB, 21, 0);
    test_j2("j2.single.C80", JB, 80, 0);
    test_j2("j2.multi.C21", JB, 21, 1);
    test_j2("j2.multi.C80", JB, 80, 1);
    test_j3("j3.K16", JB, 16);
    test_j3("j3.K64", JB, 64);
    test_j3_tanh("j3_tanh.K16", JB, 16, 1);
    test_j3_tanh("j3_tanh.K64", JB, 64, 1);
    test_j3_tanh("j3_tanh.K64.dh=NULL", JB, 64, 0);
    printf("-- tanh, losses: %.1f s\n", now_s() - t0); t0 = now_s();

    size_t nparams = 100003;
    if (full) {
        dath_model *m = model_create(VARIANT_DATH, 64, 80, 224, err, sizeof err);
        if (m) { nparams = m->n; model_free(m); } else nparams = (size_t)1 << 27;
    }
    test_rmsprop("rmsprop.aligned", nparams, 0);
    test_rmsprop("rmsprop.unaligned", full ? ((size_t)1 << 20) + 3 : 1003, 1);
    test_transform("transform", full ? B : 3, S == 63 ? 35 : S);
    printf("-- rmsprop (n = %zu), transform: %.1f s\n", nparams, now_s() - t0);

    gpu->ctx_free(&gctx);
    backend_cpu()->ctx_free(&cctx);
    table_print();
    return check_finish();
}

#endif
