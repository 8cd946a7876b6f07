/* checks/cuda_check.h — what the CUDA kernel checks share (checks/test_<family>_cuda.c:
 * conv_layers, linear, pool, attention, fusion, loss, rmsprop, transform): every CUDA op
 * (`<op>_cuda`, kernels/<family>.cu) against its plain-C reference (`<op>_cpu`,
 * kernels/<family>.c) on random inputs: forward outputs, every gradient, saved tensors,
 * the loss scalars and triplet counts. Each CUDA op also runs twice on the same inputs
 * and must give the same bits (determinism).
 *
 * Every family's binary takes the same arguments:
 *   (none)                      small shapes (seconds; what compute-sanitizer runs)
 *   --full                      DATH's real shapes: batch 128, 224×224 convolutions,
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
 * checks/cuda_kernels runs them all and prints one table (checks/device, stage b).
 *
 * Device memory comes from cudaMalloc directly; the op context (stream, cuBLAS
 * handles, scratch) from backend_cuda()->ctx_init, as dath itself makes it. Outputs
 * that an op assigns are poisoned with NaN on the device first; outputs that
 * accumulate (every gradient, see kernels/common.h) start from random values, so "+="
 * is checked too. Backward ops get the reference forward's saved tensors as inputs on
 * both sides, so a ReLU mask or an argmax is the same for both and each op is judged
 * on its own.
 *
 * A family's file: `#include "cuda_check.h"`, its tests inside `#ifdef DATH_CUDA`, and a
 * main that calls cuda_check_start(argc, argv), its tests at the shapes in CS, and
 * returns cuda_check_end(). Exits 0 when all pass, 1 on any failure, 77 (skip) when
 * built without CUDA (this header gives that build its main) or when no GPU is visible.
 * Prints a table: op, tensor, worst error, tolerance, pass/fail.
 *
 * Everything here is static and a family uses part of it: unused-function and
 * unused-variable warnings are off for this header only. */
#ifndef DATH_CUDA_CHECK_H
#define DATH_CUDA_CHECK_H
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
#include "../host/model.h"
#include "../kernels/rng.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-const-variable"
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
/* a − b; where b is NaN (a region the op writes, filled with NaN so that an op that
 * added to it would fail), a. */
static float *hdiff(const float *a, const float *b, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = isnan(b[i]) ? a[i] : a[i] - b[i];
    return p;
}
/* ---- what the device's GEMMs do at tf32/bf16: two probes ------------------------------- */

/* Both through linear_forward_cuda (out = in·wᵀ + b, b = 0: one GEMM), at B × I → O.
 * Conversion: in[b] = (x1 or x2 for even or odd b, 0, …), w[o] = (1, 0, …): out holds the
 * converted operands. x1 = 1 + 2^-(m+1) is a tie at m mantissa bits, x2 = x1 + 2^-(m+3)
 * just above it: to nearest-even gives (1, 1 + 2^-m), to nearest-away (1 + 2^-m, 1 + 2^-m),
 * truncation (1, 1), no conversion (x1, x2). Accumulation (B = I = O = 64): in[b] = (1, δ,
 * …, δ), 63 terms δ = 3·2^-26, w all ones: an exact sum rounded once is 1 + 24·2^-23, an
 * fp32 chain that rounds to nearest 1, the sm_90 block-FMA model of emu 1 + 15·2^-23
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
        linear_forward_cuda(d_out, d_in, d_w, d_z, B, I, O, 0, NULL, &gctx);
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

/* ---- the shapes and the start ------------------------------------------------------- */

typedef struct conv_case { const char *name; int Ci, H, Co, k, stride, pad, din; } conv_case;

/* The shapes every family takes its sizes from (small, or DATH's with --full). */
static struct {
    int B;          /* images */
    int S;          /* input side (63: the smallest AlexNet takes) */
    int HID;        /* fc6/fc7 width */
    int C5, CQ;     /* conv5's channels, the PAM's query channels */
    int N;          /* attention positions */
    int P6, FLAT;   /* the pooled side, fc6's input */
    int JB;         /* the losses' batch */
    int h1, h2, h3; /* conv1's output side, after pool1, after pool2 */
    conv_case cc[5];   /* AlexNet's five convolutions at input side S */
} CS;

static void cuda_check_usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--full] [--precision fp32|tf32|bf16]\n", argv0);
    exit(2);
}

/* Parses the arguments, skips without a GPU, makes the CUDA and CPU contexts (scratch for
 * the largest op of any family at these shapes), sets the error bands and prints the
 * device, the shapes and the precision (with the probes at tf32/bf16). */
static void cuda_check_start(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            const char *p = argv[++i];
            precision = backend_precision_parse(p);
            if (precision < 0) {
                fprintf(stderr, "%s: --precision %s: expected fp32, tf32 or bf16\n", argv[0], p);
                exit(2);
            }
        } else
            cuda_check_usage(argv[0]);
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

    const int S = full ? 224 : 63;
    CS.B = full ? 128 : 2;
    CS.S = S;
    CS.HID = full ? 4096 : 96;
    CS.C5 = full ? 256 : 32;
    CS.CQ = full ? 32 : 4;
    CS.h1 = (S + 4 - 11) / 4 + 1;
    CS.h2 = maxpool_out(CS.h1);
    CS.h3 = maxpool_out(CS.h2);
    const conv_case c[5] = {
        {"conv1", 3, S, 64, 11, 4, 2, 0},     /* the image needs no gradient */
        {"conv2", 64, CS.h2, 192, 5, 1, 2, 1},
        {"conv3", 192, CS.h3, 384, 3, 1, 1, 1},
        {"conv4", 384, CS.h3, 256, 3, 1, 1, 1},
        {"conv5", 256, CS.h3, 256, 3, 1, 1, 1},
    };
    memcpy(CS.cc, c, sizeof c);
    if (!full)   /* small channels too: the sanitizer runs this size */
        for (int i = 0; i < 5; i++) {
            static const int ci[5] = {3, 8, 12, 16, 12}, co[5] = {8, 12, 16, 12, 12};
            CS.cc[i].Ci = ci[i]; CS.cc[i].Co = co[i];
        }
    const int h5 = CS.cc[4].H;              /* conv5's side: 13 at 224, 3 at 63 */
    CS.N = full ? h5 * h5 : 5 * 5;
    CS.P6 = MODEL_POOL;
    CS.FLAT = CS.C5 * CS.P6 * CS.P6;
    CS.JB = full ? 128 : 12;

    size_t work = 0;
    for (int i = 0; i < 5; i++) {
        conv2d_shape s = conv2d_make_shape(CS.B, CS.cc[i].Ci, CS.cc[i].H, CS.cc[i].H, CS.cc[i].Co,
                                           CS.cc[i].k, CS.cc[i].stride, CS.cc[i].pad);
        size_t w = conv2d_work_bytes(&s);
        if (w > work) work = w;
    }
    size_t attn = ((size_t)3 * CS.C5 * CS.N + 2 * (size_t)CS.CQ * CS.N + (size_t)CS.N * CS.N) * CS.B * 4 + (1 << 20);
    if (attn > work) work = attn;
    size_t j1 = 8 * ((size_t)256 * 256 + 512);
    if (j1 > work) work = j1;

    char err[256];
    if (gpu->ctx_init(&gctx, work, precision, err, sizeof err)) {
        fprintf(stderr, "FAIL: CUDA ctx_init at --precision %s: %s\n", backend_precisions[precision], err);
        exit(1);
    }
    struct cudaDeviceProp prop;
    TCUDA(cudaGetDeviceProperties(&prop, 0));
    ge_init(precision, prop.major, 1);
    if (backend_cpu()->ctx_init(&cctx, work, DATH_FP32, err, sizeof err)) {
        fprintf(stderr, "FAIL: CPU ctx_init: %s\n", err);
        exit(1);
    }
    printf("device: %s\nshapes: %s (B = %d, S = %d, hidden %d, C5 = %d, Cq = %d, N = %d); "
           "scratch %.1f MB\n", gpu->device, full ? "full" : "small", CS.B, S, CS.HID, CS.C5, CS.CQ,
           CS.N, work / 1e6);
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
}

/* Frees the contexts, prints the table; the exit status (check_finish). */
static int cuda_check_end(void) {
    gpu->ctx_free(&gctx);
    backend_cpu()->ctx_free(&cctx);
    table_print();
    return check_finish();
}

/* Prints the seconds since *t0 for a group of tests and restarts the clock. */
static void cuda_check_lap(const char *what, double *t0) {
    printf("-- %s: %.1f s\n", what, dath_now() - *t0);
    *t0 = dath_now();
}

#pragma GCC diagnostic pop

#endif /* DATH_CUDA */
#endif
