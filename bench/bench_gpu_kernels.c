/* bench/bench_gpu_kernels.c — the time of each CUDA op at DATH's real shapes, called
 * through the backend table (backend_cuda()), timed with CUDA events on the op
 * context's stream: a few warm-up calls, then the median of --reps timed calls. For
 * each op it prints the median in ms, the achieved TFLOP/s (GEMM-shaped ops, from the
 * FLOP count of the op) or GB/s (element-wise ops, from the fewest bytes the op must
 * move), and the fraction of the GPU's peak.
 *
 *   bench_gpu_kernels [--reps N] [--batch B] [--precision fp32|tf32|bf16]
 *                     [--csv FILE] [--md FILE]
 *   bench_gpu_kernels --step-flops VARIANT [--bits K] [--classes C] [--batch B]
 *                     [--input-size S]      FLOPs of one training step: the cost model's
 *                                           (host/cost.h) sum over every kernel the step
 *                                           launches (`dath cost` prints them one by one)
 *   bench_gpu_kernels --peak fp32|tf32|bf16 the GPU's peak TFLOP/s and where it came from
 *
 * The convolutions run on both CUDA paths (ctx->conv_algo: the implicit GEMMs, the
 * default, and im2col + cuBLAS, the first path), each layer's forward, dX and dW timed
 * apart (dW: the backward without din, with its ReLU mask and bias gradient; dX: the
 * backward with din less that), each beside the cost model's floor of the same
 * kernels (host/cost.h: the launches of the path, with this GPU's datasheet peaks or,
 * unmatched, the ones below) and the ratio of the time to it.
 *
 * Peak: the cost model's table of datasheet dense rates, matched by device name
 * (cost_gpu_match: H200, H100 SXM/PCIe, A100, L40S, RTX 4090, V100, GTX 1080 Ti);
 * otherwise SMs × clock × FLOPs per clock per SM for the compute capability (an
 * estimate, labelled as such). Exit 1 without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/backend.h"
#include "../host/cost.h"
#include "../host/model.h"
#include "../kernels/rng.h"

static const char *arg_after(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static int step_flops_main(int argc, char **argv, const char *vname) {
    dath_variant v;
    if (variant_parse(vname, &v)) {
        fprintf(stderr, "bench_gpu_kernels: unknown variant '%s'\n", vname);
        return 2;
    }
    cost_config cf = {0};
    cf.variant = v;
    cf.K = atoi(arg_after(argc, argv, "--bits", "64"));
    cf.C = atoi(arg_after(argc, argv, "--classes", "80"));
    cf.B = atoi(arg_after(argc, argv, "--batch", "128"));
    cf.S = atoi(arg_after(argc, argv, "--input-size", "224"));
    cf.precision = DATH_FP32;   /* FLOPs do not depend on the GEMMs' unit */
    cost_model cm;
    char err[256];
    if (cost_build(&cm, &cf, err, sizeof err)) {
        fprintf(stderr, "bench_gpu_kernels: --step-flops: %s\n", err);
        return 2;
    }
    double flops = 0;
    for (int i = 0; i < cm.step.nkernels; i++) flops += cm.step.kernels[i].flops;
    cost_free(&cm);
    printf("%.6e\n", flops);
    return 0;
}

#ifndef DATH_CUDA

int main(int argc, char **argv) {
    const char *v = arg_after(argc, argv, "--step-flops", NULL);
    if (v) return step_flops_main(argc, argv, v);
    fprintf(stderr, "bench_gpu_kernels: this build has no CUDA (nvcc not found, or CUDA=0)\n");
    return 1;
}

#else

#include <cuda_runtime.h>

/* ---- FLOP counts (2 per multiply-add) of one op, for its TFLOP/s line ------------------ */
/* The GEMM products of the op (the cost model counts the same ones launch by launch,
 * host/cost.c; the step's total, --step-flops, is the model's). */

static double conv_flops(const conv2d_shape *s) {
    return 2.0 * s->B * s->Co * s->Ho * s->Wo * (double)s->Ci * s->k * s->k;
}
static double linear_flops(int B, int I, int O) { return 2.0 * B * (double)I * O; }
static double pam_flops(int B, int C, int Cq, int N) {
    return 2.0 * B * N * (2.0 * Cq * C + (double)C * C)   /* q, k, v */
         + 2.0 * B * (double)N * N * Cq                   /* e = qᵀk */
         + 2.0 * B * (double)C * N * N;                   /* o = v·aᵀ */
}
static double cam_flops(int B, int C, int N) { return 2.0 * 2.0 * B * (double)C * C * N; }

#define BCUDA(call)                                                                    \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "bench_gpu_kernels: CUDA error %s at %s:%d: %s (%s)\n",    \
                    cudaGetErrorName(e_), __FILE__, __LINE__, cudaGetErrorString(e_),  \
                    #call);                                                            \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* ---- the GPU's peak ------------------------------------------------------------------- */

/* FP32 lanes per SM by compute capability (×2 FLOPs a clock), and dense tensor FLOPs
 * per clock per SM for tf32 and bf16 (data-centre parts; GeForce parts may run bf16 at
 * half this with fp32 accumulation). */
static void per_sm(int major, int minor, double *fp32, double *tf32, double *bf16) {
    int cc = major * 10 + minor;
    *fp32 = (cc == 60 || cc == 70 || cc == 72 || cc == 75 || cc == 80) ? 128.0 : 256.0;
    *tf32 = *bf16 = 0.0;
    if (cc >= 90) { *tf32 = 2048.0; *bf16 = 4096.0; }
    else if (cc >= 80) { *tf32 = 1024.0; *bf16 = 2048.0; }
    if (cc == 86 || cc == 89) { *tf32 = 512.0; *bf16 = 1024.0; }
}

/* Peak TFLOP/s of device 0 for a precision; src receives where it came from. */
static double gpu_peak(int precision, char *src, size_t src_len) {
    struct cudaDeviceProp p;
    BCUDA(cudaGetDeviceProperties(&p, 0));
    const cost_gpu *g = cost_gpu_match(p.name);   /* the cost model's datasheet table */
    if (g) {
        double v = precision == DATH_TF32 ? g->tf32 : precision == DATH_BF16 ? g->bf16 : g->fp32;
        snprintf(src, src_len, "datasheet dense rate for %s (%.80s; host/cost.c)", g->label, p.name);
        return v;
    }
    int khz = 0;
    BCUDA(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
    double fp32, tf32, bf16;
    per_sm(p.major, p.minor, &fp32, &tf32, &bf16);
    double per = precision == DATH_TF32 ? tf32 : precision == DATH_BF16 ? bf16 : fp32;
    snprintf(src, src_len, "estimate: %d SMs x %.0f MHz x %.0f FLOP/clk/SM (sm_%d%d, %.80s)",
             p.multiProcessorCount, khz / 1e3, per, p.major, p.minor, p.name);
    return p.multiProcessorCount * (khz * 1e3) * per / 1e12;
}

/* ---- timing ----------------------------------------------------------------------------- */

static int reps = 20;
static const int WARMUP = 3;
static const dath_backend *be;
static dath_ctx ctx;
static cudaEvent_t ev0, ev1;
static double peak_gemm, peak_fp32;
static double hbm_gbs;          /* theoretical memory bandwidth from the device */
static FILE *csv, *md;
static int precision = DATH_FP32;
static cost_peaks floor_peaks;  /* the cost model's floors: this GPU's datasheet row, or the
                                   peaks measured below */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void op_fn(void *arg);

/* Times op(arg): WARMUP calls, then the median of reps, in ms. */
static double time_op(op_fn *op, void *arg) {
    cudaStream_t st = (cudaStream_t)ctx.stream;
    for (int i = 0; i < WARMUP; i++) op(arg);
    BCUDA(cudaStreamSynchronize(st));
    double *t = malloc(reps * sizeof *t);
    for (int i = 0; i < reps; i++) {
        BCUDA(cudaEventRecord(ev0, st));
        op(arg);
        BCUDA(cudaEventRecord(ev1, st));
        BCUDA(cudaEventSynchronize(ev1));
        float ms = 0.0f;
        BCUDA(cudaEventElapsedTime(&ms, ev0, ev1));
        t[i] = ms;
    }
    BCUDA(cudaGetLastError());
    qsort(t, reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(t);
    return med;
}

/* One result line: flops > 0 gives TFLOP/s against the GEMM peak (or fp32 peak when
 * gemm is 0), bytes > 0 gives GB/s against the memory bandwidth. */
static void report_floor(const char *op, const char *shape, double ms, double flops, double bytes,
                         int gemm, double floor_ms) {
    double tf = flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0;
    double gbs = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : 0.0;
    double pk = gemm ? peak_gemm : peak_fp32;
    char rate[64] = "", frac[32] = "";
    if (flops > 0) {
        snprintf(rate, sizeof rate, "%.2f TFLOP/s", tf);
        if (pk > 0) snprintf(frac, sizeof frac, "%.1f%%", 100.0 * tf / pk);
    } else if (bytes > 0) {
        snprintf(rate, sizeof rate, "%.0f GB/s", gbs);
        if (hbm_gbs > 0) snprintf(frac, sizeof frac, "%.1f%%", 100.0 * gbs / hbm_gbs);
    }
    char fl[64] = "", flc[48] = ",", flm[48] = " | |";
    if (floor_ms > 0) {
        snprintf(fl, sizeof fl, "  floor %.4f ms, %.2fx", floor_ms, ms / floor_ms);
        snprintf(flc, sizeof flc, "%.5f,%.3f", floor_ms, ms / floor_ms);
        snprintf(flm, sizeof flm, " %.4f | %.2f |", floor_ms, ms / floor_ms);
    }
    printf("%-26s %-30s %10.4f  %-16s %-6s%s\n", op, shape, ms, rate, frac, fl);
    if (csv) fprintf(csv, "%s,%s,%.5f,%.4f,%.2f,%s,%s\n", op, shape, ms, tf, gbs, frac, flc);
    if (md) fprintf(md, "| %s | %s | %.4f | %s | %s |%s\n", op, shape, ms, rate, frac, flm);
}

static void report(const char *op, const char *shape, double ms, double flops, double bytes, int gemm) {
    report_floor(op, shape, ms, flops, bytes, gemm, 0.0);
}

/* ---- the ops, each with its own argument block ---------------------------------------- */

static void *dev(size_t bytes) {
    void *p = be->alloc(bytes);
    if (!p) { fprintf(stderr, "bench_gpu_kernels: out of device memory (%zu bytes)\n", bytes); exit(1); }
    return p;
}

/* Device buffer of n floats, uniform in [lo, hi) (filled on the host once). */
static float *dev_rand(size_t n, float lo, float hi) {
    float *h = malloc(n * sizeof *h);
    uint64_t s = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
    float *d = dev(n * sizeof *d);
    be->upload(d, h, n * sizeof *d, &ctx);
    be->sync(&ctx);
    free(h);
    return d;
}

typedef struct conv_arg {
    conv2d_shape s;
    float *in, *w, *b, *out, *din, *dw, *db, *dout;
    int what;   /* 0 forward, 1 backward without din (dW, db, mask), 2 backward with din */
    dath_ctx *c;
} conv_arg;
static void conv_op(void *p) {
    conv_arg *a = p;
    if (a->what == 0) be->conv2d_forward(a->out, a->in, a->w, a->b, &a->s, 1, a->c);
    else be->conv2d_backward(a->what == 2 ? a->din : NULL, a->dw, a->db, a->dout, a->in, a->w, a->out, &a->s, 1, a->c);
}

/* The cost model's floor (ms) of one conv call as path `algo` launches it: what (0, 1, 2)
 * as conv_arg's, nw sets through the multi ops when nw > 1 (dX then absent), on a
 * scratch of work bytes. */
static double conv_floor(int algo, int what, const conv2d_shape *s, int nw, size_t work) {
    const dath_backend *cb = cost_backend();
    dath_ctx c;
    char err[200];
    if (cb->ctx_init(&c, work, precision, err, sizeof err)) return 0.0;
    c.conv_algo = algo;
    const size_t nin = (size_t)s->B * s->Ci * s->H * s->W, nwt = (size_t)s->Co * s->Ci * s->k * s->k;
    const size_t nout = (size_t)s->B * s->Co * s->Ho * s->Wo;
    float *in = cb->alloc(nin * 4), *din = cb->alloc(nin * 4), *out[2], *dout[2], *dw[2], *db[2];
    const float *w[2], *b[2], *outc[2];
    for (int j = 0; j < 2; j++) {
        out[j] = cb->alloc(nout * 4); dout[j] = cb->alloc(nout * 4); outc[j] = out[j];
        w[j] = cb->alloc(nwt * 4); dw[j] = cb->alloc(nwt * 4); b[j] = cb->alloc(s->Co * 4); db[j] = cb->alloc(s->Co * 4);
    }
    cost_pass ps;
    cost_record_begin(&c, &ps, "bench", s->B);
    if (nw > 1 && what == 0) cb->conv2d_forward_multi(out, in, w, b, nw, s, 1, &c);
    else if (nw > 1) cb->conv2d_backward_multi(NULL, dw, db, dout, in, w, outc, nw, s, 1, &c);
    else if (what == 0) cb->conv2d_forward(out[0], in, w[0], b[0], s, 1, &c);
    else cb->conv2d_backward(what == 2 ? din : NULL, dw[0], db[0], dout[0], in, w[0], out[0], s, 1, &c);
    double ms = 0.0;
    if (cost_record_end(&c, err, sizeof err) == 0) {
        cost_totals t;
        cost_pass_totals(&ps, &floor_peaks, &t);
        ms = t.floor * 1e3;
    }
    cost_pass_free(&ps);
    cb->ctx_free(&c);
    return ms;
}

/* One layer of model_conv_shapes (s), forward, dX (din) and dW on both paths, each with
 * its floor; with xs or os (DATH_STORE_BF16: the net's bf16 storage at this layer,
 * conv2d_store_bf16) the implicit path a third time with in / out so stored. */
static void bench_conv(const char *name, const conv2d_shape *s, int din, int xs, int os) {
    conv_arg a;
    memset(&a, 0, sizeof a);
    a.s = *s;
    const int B = s->B, Ci = s->Ci, H = s->H, Co = s->Co, k = s->k, st = s->stride;
    size_t nin = (size_t)B * Ci * H * s->W, nw = (size_t)Co * Ci * k * k;
    size_t nout = (size_t)B * Co * a.s.Ho * a.s.Wo;
    a.in = dev_rand(nin, -1, 1); a.w = dev_rand(nw, -0.05f, 0.05f); a.b = dev_rand(Co, -0.1f, 0.1f);
    a.out = dev_rand(nout, -1, 1); a.dout = dev_rand(nout, -1, 1);
    a.din = din ? dev_rand(nin, 0, 0) : NULL; a.dw = dev_rand(nw, 0, 0); a.db = dev_rand(Co, 0, 0);
    char shape[64], op[48];
    snprintf(shape, sizeof shape, "B%d %d->%d %dx%d k%d s%d", B, Ci, Co, H, H, k, st);
    const double f = conv_flops(s);
    static const int algos[3] = {DATH_CONV_IMPLICIT, DATH_CONV_IM2COL, DATH_CONV_IMPLICIT};
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !xs && !os) break;
        dath_ctx c = ctx;
        c.conv_algo = algos[i];
        a.c = &c;
        a.s.in_store = i == 2 ? xs : DATH_STORE_F32;   /* the buffers hold floats: room for either */
        a.s.out_store = i == 2 ? os : DATH_STORE_F32;
        const char *an = i == 2 ? "implicit bf16-stored" : backend_conv_algo_name(algos[i]);
        a.what = 0;
        snprintf(op, sizeof op, "%s fwd %s", name, an);
        report_floor(op, shape, time_op(conv_op, &a), f, 0, 1, conv_floor(algos[i], 0, &a.s, 1, ctx.work_bytes));
        a.what = 1;
        const double t_dw = time_op(conv_op, &a), fl_dw = conv_floor(algos[i], 1, &a.s, 1, ctx.work_bytes);
        snprintf(op, sizeof op, "%s dW %s", name, an);
        report_floor(op, shape, t_dw, f, 0, 1, fl_dw);
        if (din) {
            a.what = 2;
            const double t = time_op(conv_op, &a) - t_dw, fl = conv_floor(algos[i], 2, &a.s, 1, ctx.work_bytes) - fl_dw;
            snprintf(op, sizeof op, "%s dX %s", name, an);
            report_floor(op, shape, t, f, 0, 1, fl);
        }
    }
    be->free(a.in); be->free(a.w); be->free(a.b); be->free(a.out); be->free(a.dout);
    be->free(a.din); be->free(a.dw); be->free(a.db);
}

/* conv1 of dath's two streams (they read the same image): one conv2d_*_multi call (one
 * im2col, one strided-batched GEMM) against two single calls. Weights and their
 * gradients sit at the pam and cam streams' real offsets into the flat parameter
 * buffer (same stride, same 16-byte alignment), the image needs no gradient (din
 * NULL), and the op gets its own scratch of conv2d_work_bytes_multi. */
typedef struct conv_multi_arg {
    conv2d_shape s;
    dath_ctx *c;
    float *in, *out[2], *dw[2], *db[2], *dout[2];
    const float *w[2], *b[2];
    int bwd, multi;
} conv_multi_arg;
static void conv_multi_op(void *p) {
    conv_multi_arg *a = p;
    if (a->multi && !a->bwd) be->conv2d_forward_multi(a->out, a->in, a->w, a->b, 2, &a->s, 1, a->c);
    else if (a->multi) {
        const float *out[2] = {a->out[0], a->out[1]};
        be->conv2d_backward_multi(NULL, a->dw, a->db, a->dout, a->in, a->w, out, 2, &a->s, 1, a->c);
    } else
        for (int j = 0; j < 2; j++) {
            if (!a->bwd) be->conv2d_forward(a->out[j], a->in, a->w[j], a->b[j], &a->s, 1, a->c);
            else be->conv2d_backward(NULL, a->dw[j], a->db[j], a->dout[j], a->in, a->w[j], a->out[j],
                                     &a->s, 1, a->c);
        }
}

/* conv1 of both streams (s: model_conv_shapes' conv1), as two calls and as one multi call. */
static void bench_conv1_streams(const conv2d_shape *s) {
    const int B = s->B;
    char err[128];
    dath_model *m = model_create(VARIANT_DATH, 64, 80, 224, err, sizeof err);
    if (!m) { fprintf(stderr, "bench_gpu_kernels: conv1 multi: %s\n", err); return; }
    size_t off0 = m->params[m->streams[0].conv_w[0]].offset;      /* pam.features.0.weight */
    size_t off1 = m->params[m->streams[1].conv_w[0]].offset;      /* cam.features.0.weight */
    model_free(m);
    conv_multi_arg a;
    memset(&a, 0, sizeof a);
    a.s = *s;
    const int Co = s->Co;
    size_t nin = (size_t)B * s->Ci * s->H * s->W, nw = (size_t)Co * s->Ci * s->k * s->k;
    size_t nout = (size_t)B * Co * a.s.Ho * a.s.Wo;
    size_t lo = off0 < off1 ? off0 : off1, hi = off0 < off1 ? off1 : off0;
    size_t span = hi - lo + nw + lo % 4;                           /* keeps off mod 4 floats */
    float *wflat = dev_rand(span, -0.05f, 0.05f), *gflat = dev_rand(span, 0, 0);
    a.in = dev_rand(nin, -1, 1);
    for (int j = 0; j < 2; j++) {
        size_t o = (j ? off1 : off0) - lo + lo % 4;
        a.w[j] = wflat + o; a.dw[j] = gflat + o;
        a.b[j] = dev_rand(Co, -0.1f, 0.1f); a.db[j] = dev_rand(Co, 0, 0);
        a.out[j] = dev_rand(nout, -1, 1); a.dout[j] = dev_rand(nout, -1, 1);
    }
    dath_ctx mctx = ctx;
    mctx.work_bytes = conv2d_work_bytes_multi(&a.s, 2);
    mctx.work = dev(mctx.work_bytes);
    a.c = &mctx;
    char shape[64];
    snprintf(shape, sizeof shape, "B%d %d->%d %dx%d k%d s%d, x2", B, s->Ci, Co, s->H, s->W, s->k, s->stride);
    double f = 2.0 * conv_flops(s);
    static const char *names[2][2] = {{"conv1x2 fwd 2 calls", "conv1x2 fwd multi"},
                                      {"conv1x2 dW 2 calls", "conv1x2 dW multi"}};
    static const int algos[2] = {DATH_CONV_IMPLICIT, DATH_CONV_IM2COL};
    for (int i = 0; i < 2; i++) {
        mctx.conv_algo = algos[i];
        for (a.bwd = 0; a.bwd < 2; a.bwd++)
            for (a.multi = 0; a.multi < 2; a.multi++) {
                char op[48];
                snprintf(op, sizeof op, "%s %s", names[a.bwd][a.multi], backend_conv_algo_name(algos[i]));
                const double fl = a.multi ? conv_floor(algos[i], a.bwd, &a.s, 2, mctx.work_bytes)
                                          : 2.0 * conv_floor(algos[i], a.bwd, &a.s, 1, mctx.work_bytes);
                report_floor(op, shape, time_op(conv_multi_op, &a), f, 0, 1, fl);
            }
    }
    be->free(wflat); be->free(gflat); be->free(a.in); be->free(mctx.work);
    for (int j = 0; j < 2; j++) {
        be->free((void *)a.b[j]); be->free(a.db[j]); be->free(a.out[j]); be->free(a.dout[j]);
    }
}

typedef struct lin_arg {
    int B, I, O, relu, bwd;
    float *in, *w, *b, *out, *din, *dw, *db, *dout;
    const linear_store *st;   /* bf16 storage: in and (with st->out_store) out hold bf16 */
} lin_arg;
static void lin_op(void *p) {
    lin_arg *a = p;
    if (!a->bwd) be->linear_forward(a->out, a->in, a->w, a->b, a->B, a->I, a->O, a->relu, a->st, &ctx);
    else be->linear_backward(a->din, a->dw, a->db, a->dout, a->in, a->w, a->out, a->B, a->I,
                             a->O, a->relu, a->st, &ctx);
}
/* os < 0: fp32 storage (the path before bf16 storage, kept for comparison); else the bf16
 * storage of host/net.c with out stored as os (needs linear_store_bf16: bf16 on sm_80+). */
static void bench_linear(const char *name, int B, int I, int O, int relu, int os) {
    lin_arg a;
    memset(&a, 0, sizeof a);
    a.B = B; a.I = I; a.O = O; a.relu = relu;
    a.in = dev_rand((size_t)B * I, -1, 1); a.w = dev_rand((size_t)O * I, -0.02f, 0.02f);
    a.b = dev_rand(O, -0.1f, 0.1f); a.out = dev_rand((size_t)B * O, -1, 1);
    a.dout = dev_rand((size_t)B * O, -1, 1); a.din = dev_rand((size_t)B * I, 0, 0);
    a.dw = dev_rand((size_t)O * I, 0, 0); a.db = dev_rand(O, 0, 0);
    linear_store st;
    dath_bf16 *w16 = NULL, *b16 = NULL;
    float *in32 = a.in;
    if (os >= 0) {   /* a bf16 out lies in out's first half, its values the random floats' halves */
        if (!linear_store_bf16(&ctx) || ctx.work_bytes < linear_work_bytes(B, O, 1)) {
            be->free(a.in); be->free(a.w); be->free(a.b); be->free(a.out); be->free(a.dout);
            be->free(a.din); be->free(a.dw); be->free(a.db);
            return;
        }
        w16 = dev((size_t)O * I * 2); b16 = dev((size_t)O * 2);
        dath_bf16 *in16 = dev((size_t)B * I * 2);
        be->rmsprop_narrow(w16, a.w, (size_t)O * I, &ctx);
        be->rmsprop_narrow(b16, a.b, (size_t)O, &ctx);
        be->rmsprop_narrow(in16, in32, (size_t)B * I, &ctx);
        a.in = (float *)in16;
        st = (linear_store){w16, b16, os};
        a.st = &st;
    }
    char shape[64], op[48];
    snprintf(shape, sizeof shape, "B%d %d->%d", B, I, O);
    snprintf(op, sizeof op, "%s fwd%s", name, os >= 0 ? " bf16-stored" : "");
    report(op, shape, time_op(lin_op, &a), linear_flops(B, I, O), 0, 1);
    a.bwd = 1;
    snprintf(op, sizeof op, "%s bwd%s", name, os >= 0 ? " bf16-stored" : "");
    report(op, shape, time_op(lin_op, &a), 2 * linear_flops(B, I, O), 0, 1);
    if (a.in != in32) be->free(in32);
    be->free(a.in); be->free(a.w); be->free(a.b); be->free(a.out); be->free(a.dout);
    be->free(a.din); be->free(a.dw); be->free(a.db); be->free(w16); be->free(b16);
}

typedef struct pool_arg { int BC, H, bwd; float *in, *out, *din, *dout; maxpool_arg *idx; } pool_arg;
static void pool_op(void *p) {
    pool_arg *a = p;
    if (!a->bwd) be->maxpool_forward(a->out, a->idx, a->in, a->BC, a->H, a->H, DATH_STORE_F32, &ctx);
    else be->maxpool_backward(a->din, a->dout, a->idx, a->out, a->BC, a->H, a->H, DATH_STORE_F32, &ctx);   /* ReLU mask, as the step */
}
static void bench_maxpool(const char *name, int BC, int H) {
    int Ho = maxpool_out(H);
    size_t nin = (size_t)BC * H * H, nout = (size_t)BC * Ho * Ho;
    pool_arg a = {BC, H, 0, dev_rand(nin, -1, 1), dev_rand(nout, 0, 0), dev_rand(nin, 0, 0),
                  dev_rand(nout, -1, 1), dev(nout * sizeof(maxpool_arg))};
    char shape[64], op[40];
    snprintf(shape, sizeof shape, "%d planes %dx%d", BC, H, H);
    snprintf(op, sizeof op, "%s fwd", name);
    report(op, shape, time_op(pool_op, &a), 0, 4.0 * (nin + nout) + nout, 0);
    a.bwd = 1;
    snprintf(op, sizeof op, "%s bwd", name);
    report(op, shape, time_op(pool_op, &a), 0, 4.0 * (nin + 2 * nout) + nout, 0);
    be->free(a.in); be->free(a.out); be->free(a.din); be->free(a.dout); be->free(a.idx);
}

typedef struct attn_arg {
    int B, C, Cq, N, bwd, cam;
    float *x, *out, *q, *k, *v, *a, *o, *wq, *bq, *wk, *bk, *wv, *bv, *gamma;
    float *dx, *dwq, *dbq, *dwk, *dbk, *dwv, *dbv, *dgamma, *dout;
    const attn_store *st;   /* bf16 storage: q .. o and x16 hold bf16 (attention.h) */
    void *x16;
} attn_arg;
static void attn_op(void *p) {
    attn_arg *t = p;
    if (t->cam) {
        if (!t->bwd) be->cam_forward(t->out, t->a, t->o, t->x16, t->x, t->gamma, t->B, t->C, t->N, t->st, &ctx);
        else be->cam_backward(t->dx, t->dgamma, t->dout, t->x, t->x16, t->a, t->o, t->gamma, t->B, t->C,
                              t->N, 0, t->st, &ctx);
    } else if (!t->bwd) {
        be->pam_forward(t->out, t->q, t->k, t->v, t->a, t->o, t->x, t->wq, t->bq, t->wk, t->bk,
                        t->wv, t->bv, t->gamma, t->B, t->C, t->Cq, t->N, t->st, &ctx);
    } else {
        be->pam_backward(t->dx, t->dwq, t->dbq, t->dwk, t->dbk, t->dwv, t->dbv, t->dgamma,
                         t->dout, t->x, t->q, t->k, t->v, t->a, t->o, t->wq, t->wk, t->wv,
                         t->gamma, t->B, t->C, t->Cq, t->N, 0, t->st, &ctx);
    }
}
static void bench_attention(int B, int C, int Cq, int N) {
    attn_arg t;
    memset(&t, 0, sizeof t);
    t.B = B; t.C = C; t.Cq = Cq; t.N = N;
    size_t nx = (size_t)B * C * N, nq = (size_t)B * Cq * N;
    size_t na = (size_t)B * (N > C ? N : C) * (N > C ? N : C);
    t.x = dev_rand(nx, 0, 1); t.out = dev_rand(nx, 0, 0); t.q = dev_rand(nq, 0, 0);
    t.k = dev_rand(nq, 0, 0); t.v = dev_rand(nx, 0, 0); t.a = dev_rand(na, 0, 0);
    t.o = dev_rand(nx, 0, 0);
    t.wq = dev_rand((size_t)Cq * C, -0.06f, 0.06f); t.bq = dev_rand(Cq, -0.06f, 0.06f);
    t.wk = dev_rand((size_t)Cq * C, -0.06f, 0.06f); t.bk = dev_rand(Cq, -0.06f, 0.06f);
    t.wv = dev_rand((size_t)C * C, -0.06f, 0.06f); t.bv = dev_rand(C, -0.06f, 0.06f);
    t.gamma = dev_rand(1, 0.5f, 0.5f);
    t.dx = dev_rand(nx, 0, 0); t.dwq = dev_rand((size_t)Cq * C, 0, 0); t.dbq = dev_rand(Cq, 0, 0);
    t.dwk = dev_rand((size_t)Cq * C, 0, 0); t.dbk = dev_rand(Cq, 0, 0);
    t.dwv = dev_rand((size_t)C * C, 0, 0); t.dbv = dev_rand(C, 0, 0); t.dgamma = dev_rand(1, 0, 0);
    t.dout = dev_rand(nx, -1, 1);
    char shape[64];
    snprintf(shape, sizeof shape, "B%d C%d Cq%d N%d", B, C, Cq, N);
    double fp = pam_flops(B, C, Cq, N), fc = cam_flops(B, C, N);
    report("pam fwd", shape, time_op(attn_op, &t), fp, 0, 1);
    t.bwd = 1;
    report("pam bwd", shape, time_op(attn_op, &t), 2 * fp, 0, 1);
    t.cam = 1; t.bwd = 0;
    snprintf(shape, sizeof shape, "B%d C%d N%d", B, C, N);
    report("cam fwd", shape, time_op(attn_op, &t), fc, 0, 1);
    t.bwd = 1;
    report("cam bwd", shape, time_op(attn_op, &t), 2 * fc, 0, 1);
    /* bf16 storage (host/net.c's at --precision bf16 on sm_80+): the same four with the
     * saved tensors in bf16 (in the first half of the same buffers) and the weights' bf16
     * copies; the rows above are the fp32-stored path it replaces there */
    if (attn_store_bf16(&ctx)) {
        dath_bf16 *w16[3] = {dev((size_t)Cq * C * 2), dev((size_t)Cq * C * 2), dev((size_t)C * C * 2)};
        be->rmsprop_narrow(w16[0], t.wq, (size_t)Cq * C, &ctx);
        be->rmsprop_narrow(w16[1], t.wk, (size_t)Cq * C, &ctx);
        be->rmsprop_narrow(w16[2], t.wv, (size_t)C * C, &ctx);
        const attn_store st = {w16[0], w16[1], w16[2]};
        t.st = &st;
        t.x16 = dev(nx * 2);
        t.cam = 0; t.bwd = 0;
        snprintf(shape, sizeof shape, "B%d C%d Cq%d N%d", B, C, Cq, N);
        report("pam fwd bf16-stored", shape, time_op(attn_op, &t), fp, 0, 1);
        t.bwd = 1;
        report("pam bwd bf16-stored", shape, time_op(attn_op, &t), 2 * fp, 0, 1);
        t.cam = 1; t.bwd = 0;
        snprintf(shape, sizeof shape, "B%d C%d N%d", B, C, N);
        report("cam fwd bf16-stored", shape, time_op(attn_op, &t), fc, 0, 1);
        t.bwd = 1;
        report("cam bwd bf16-stored", shape, time_op(attn_op, &t), 2 * fc, 0, 1);
        for (int i = 0; i < 3; i++) be->free(w16[i]);
        be->free(t.x16);
        t.st = NULL;
    }
    float *bufs[] = {t.x, t.out, t.q, t.k, t.v, t.a, t.o, t.wq, t.bq, t.wk, t.bk, t.wv, t.bv,
                     t.gamma, t.dx, t.dwq, t.dbq, t.dwk, t.dbk, t.dwv, t.dbv, t.dgamma, t.dout};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(bufs[i]);
}

typedef struct ew_arg {
    int kind, B, D, K, C;
    size_t n;
    float *x, *y, *z, *w, *loss;
    int64_t *ntrip;
    uint8_t *img;
    int32_t *crop;
    uint32_t *step;             /* [1] dropout's step, read on the device */
    float *guard;               /* [EW_NGUARD] RMSProp's guard (finite: the step runs) */
} ew_arg;
enum { EW_DROP_F, EW_DROP_B, EW_FUSE_F, EW_FUSE_B, EW_TANH_F, EW_TANH_B, EW_J1, EW_J2S,
       EW_J2M, EW_J3, EW_J3T, EW_RMS, EW_TRANSFORM };
enum { EW_NGUARD = 3 };         /* the step's losses J1, J2, J3 */
static void ew_op(void *p) {
    ew_arg *a = p;
    switch (a->kind) {
    case EW_DROP_F: be->dropout_forward(a->y, a->x, a->B, a->D, 0.5f, 1, RNG_DROPOUT, a->step, 0, DATH_STORE_F32, &ctx); break;
    case EW_DROP_B: be->dropout_backward(a->y, a->x, a->B, a->D, 0.5f, 1, RNG_DROPOUT, a->step, 0, &ctx); break;
    case EW_FUSE_F: be->fuse_forward(a->z, a->x, a->y, a->n, &ctx); break;
    case EW_FUSE_B: be->fuse_backward(a->z, a->w, a->x, a->x, a->y, a->n, &ctx); break;
    case EW_TANH_F: be->tanh_forward(a->y, a->x, a->n, &ctx); break;
    case EW_TANH_B: be->tanh_backward(a->z, a->x, a->y, a->n, &ctx); break;
    case EW_J1: be->j1_triplet(a->loss, a->ntrip, a->y, a->x, a->z, a->B, a->K, a->C, 5.0f, 1.0f, &ctx); break;
    case EW_J2S: be->j2_class(a->loss, a->y, a->x, a->z, a->B, a->C, 0, (float)a->B, 1.0f, &ctx); break;
    case EW_J2M: be->j2_class(a->loss, a->y, a->x, a->z, a->B, a->C, 1, (float)a->B, 1.0f, &ctx); break;
    case EW_J3: be->j3_quant(a->loss, a->y, a->x, a->B, a->K, (float)a->B, 0.01f, &ctx); break;
    case EW_J3T: be->j3_tanh_backward(a->loss, a->z, a->y, a->x, a->B, a->K, (float)a->B, 0.01f, &ctx); break;
    case EW_RMS: be->rmsprop_step(a->x, a->y, NULL, a->z, a->n, 1e-5f, 0.99f, 1e-8f, 1e-5f, a->guard, EW_NGUARD, &ctx); break;
    case EW_TRANSFORM: be->transform_batch(a->x, a->img, a->crop, NULL, a->B, a->D, a->K, &ctx); break;
    }
}
static void ew_free(ew_arg *a) {
    be->free(a->x); be->free(a->y); be->free(a->z); be->free(a->w); be->free(a->loss);
    be->free(a->ntrip); be->free(a->img); be->free(a->crop); be->free(a->step); be->free(a->guard);
}

/* Labels [B,C] with 1–3 classes each (one in 20 rows empty); single: one-hot. */
static float *dev_labels(int B, int C, int single) {
    float *h = calloc((size_t)B * C, sizeof *h);
    uint64_t s = 12345;
    for (int b = 0; b < B; b++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int k = single ? 1 : (int)((s >> 33) % 4);
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            h[(size_t)b * C + (s >> 33) % (uint64_t)C] = 1.0f;
        }
    }
    float *d = dev((size_t)B * C * sizeof *d);
    be->upload(d, h, (size_t)B * C * sizeof *d, &ctx);
    be->sync(&ctx);
    free(h);
    return d;
}

static void bench_fused(int B) {
    char shape[64];
    const int D6 = MODEL_C5 * MODEL_POOL * MODEL_POOL, H = MODEL_HIDDEN;
    ew_arg a;
    /* transform */
    {
        int S = 224, R = transform_cache_side(S);
        memset(&a, 0, sizeof a);
        a.kind = EW_TRANSFORM; a.B = B; a.D = R; a.K = S;
        a.img = dev((size_t)B * R * R * 3);
        be->zero(a.img, (size_t)B * R * R * 3, &ctx);
        int32_t *crop = malloc((size_t)B * 3 * sizeof *crop);
        for (int b = 0; b < B; b++) { crop[3 * b] = b % 32; crop[3 * b + 1] = (b * 7) % 32; crop[3 * b + 2] = b & 1; }
        a.crop = dev((size_t)B * 3 * 4);
        be->upload(a.crop, crop, (size_t)B * 3 * 4, &ctx);
        be->sync(&ctx);
        free(crop);
        a.x = dev((size_t)B * 3 * S * S * 4);
        snprintf(shape, sizeof shape, "B%d %d->%d", B, R, S);
        report("transform", shape, time_op(ew_op, &a), 0, (double)B * S * S * 3 * (1 + 4), 0);
        ew_free(&a);
    }
    /* dropout before fc6 and before fc7 */
    int dims[2] = {D6, H};
    for (int i = 0; i < 2; i++) {
        memset(&a, 0, sizeof a);
        a.B = B; a.D = dims[i];
        size_t n = (size_t)B * dims[i];
        a.x = dev_rand(n, -1, 1); a.y = dev_rand(n, 0, 0);
        const uint32_t step = 1;
        a.step = dev(sizeof step);
        be->upload(a.step, &step, sizeof step, &ctx);
        be->sync(&ctx);
        snprintf(shape, sizeof shape, "B%d D%d", B, dims[i]);
        a.kind = EW_DROP_F;
        report(i ? "dropout fc7in fwd" : "dropout fc6in fwd", shape, time_op(ew_op, &a), 0, 8.0 * n, 0);
        a.kind = EW_DROP_B;
        report(i ? "dropout fc7in bwd" : "dropout fc6in bwd", shape, time_op(ew_op, &a), 0, 12.0 * n, 0);
        ew_free(&a);
    }
    /* fusion */
    memset(&a, 0, sizeof a);
    a.n = (size_t)B * H;
    a.x = dev_rand(a.n, -1, 1); a.y = dev_rand(a.n, -1, 1); a.z = dev_rand(a.n, 0, 0); a.w = dev_rand(a.n, 0, 0);
    snprintf(shape, sizeof shape, "B%d D%d", B, H);
    a.kind = EW_FUSE_F;
    report("fuse fwd", shape, time_op(ew_op, &a), 0, 12.0 * a.n, 0);
    a.kind = EW_FUSE_B;
    report("fuse bwd", shape, time_op(ew_op, &a), 0, 28.0 * a.n, 0);
    ew_free(&a);
    /* tanh and the losses, K = 64, C = 80 (and the 2-GPU global batch for J1) */
    const int K = 64, C = 80;
    memset(&a, 0, sizeof a);
    a.n = (size_t)B * K;
    a.x = dev_rand(a.n, -1, 1); a.y = dev_rand(a.n, 0, 0); a.z = dev_rand(a.n, 0, 0);
    snprintf(shape, sizeof shape, "n%zu", a.n);
    a.kind = EW_TANH_F;
    report("tanh fwd", shape, time_op(ew_op, &a), 0, 8.0 * a.n, 0);
    a.kind = EW_TANH_B;
    report("tanh bwd", shape, time_op(ew_op, &a), 0, 16.0 * a.n, 0);
    ew_free(&a);
    for (int g = 1; g <= 2; g++) {
        memset(&a, 0, sizeof a);
        a.kind = EW_J1; a.B = B * g; a.K = K; a.C = C;
        a.x = dev_rand((size_t)a.B * K, -1, 1); a.y = dev_rand((size_t)a.B * K, 0, 0);
        a.z = dev_labels(a.B, C, 0); a.loss = dev(4); a.ntrip = dev(8);
        snprintf(shape, sizeof shape, "B%d K%d C%d", a.B, K, C);
        report(g == 1 ? "j1 (mine+loss+grad)" : "j1 global batch", shape, time_op(ew_op, &a), 0, 0, 0);
        ew_free(&a);
    }
    memset(&a, 0, sizeof a);
    a.B = B; a.C = C;
    a.x = dev_rand((size_t)B * C, -5, 5); a.y = dev_rand((size_t)B * C, 0, 0);
    a.z = dev_labels(B, C, 0); a.loss = dev(4);
    snprintf(shape, sizeof shape, "B%d C%d", B, C);
    a.kind = EW_J2M;
    report("j2 multi (eq. 7)", shape, time_op(ew_op, &a), 0, 12.0 * B * C, 0);
    a.kind = EW_J2S;
    report("j2 single (eq. 6)", shape, time_op(ew_op, &a), 0, 12.0 * B * C, 0);
    ew_free(&a);
    memset(&a, 0, sizeof a);
    a.kind = EW_J3; a.B = B; a.K = K;
    a.x = dev_rand((size_t)B * K, -1, 1); a.y = dev_rand((size_t)B * K, 0, 0); a.loss = dev(4);
    snprintf(shape, sizeof shape, "B%d K%d", B, K);
    report("j3", shape, time_op(ew_op, &a), 0, 12.0 * B * K, 0);
    ew_free(&a);
    /* J3 with tanh's backward fused: reads h, dh and dz, writes dz */
    memset(&a, 0, sizeof a);
    a.kind = EW_J3T; a.B = B; a.K = K;
    a.x = dev_rand((size_t)B * K, -1, 1); a.y = dev_rand((size_t)B * K, -0.1f, 0.1f);
    a.z = dev_rand((size_t)B * K, 0, 0); a.loss = dev(4);
    report("j3 + tanh bwd (fused)", shape, time_op(ew_op, &a), 0, 16.0 * B * K, 0);
    ew_free(&a);
    /* RMSProp over the dath variant's whole parameter buffer */
    char err[128];
    dath_model *m = model_create(VARIANT_DATH, K, C, 224, err, sizeof err);
    memset(&a, 0, sizeof a);
    a.kind = EW_RMS;
    a.n = m ? m->n : (size_t)1 << 27;
    if (m) model_free(m);
    a.x = dev_rand(a.n, -0.01f, 0.01f); a.y = dev_rand(a.n, 0, 1e-6f); a.z = dev_rand(a.n, -1e-3f, 1e-3f);
    a.guard = dev_rand(EW_NGUARD, 1, 2);   /* finite losses: the guarded step runs */
    snprintf(shape, sizeof shape, "n%zu (dath K64)", a.n);
    report("rmsprop", shape, time_op(ew_op, &a), 0, 20.0 * a.n, 0);
    ew_free(&a);
}

int main(int argc, char **argv) {
    const char *v = arg_after(argc, argv, "--step-flops", NULL);
    if (v) return step_flops_main(argc, argv, v);
    char why[256] = "";
    be = backend_cuda(why, sizeof why);
    if (!be) {
        fprintf(stderr, "bench_gpu_kernels: no CUDA backend: %s\n", why);
        return 1;
    }
    precision = backend_precision_parse(arg_after(argc, argv, "--precision", "fp32"));
    if (precision < 0) { fprintf(stderr, "bench_gpu_kernels: --precision: fp32, tf32 or bf16\n"); return 2; }
    const char *pk = arg_after(argc, argv, "--peak", NULL);
    if (pk) {
        int p = backend_precision_parse(pk);
        if (p < 0) { fprintf(stderr, "bench_gpu_kernels: --peak: fp32, tf32 or bf16\n"); return 2; }
        char src[256];
        double t = gpu_peak(p, src, sizeof src);
        printf("%.1f %s\n", t, src);
        return 0;
    }
    reps = atoi(arg_after(argc, argv, "--reps", "20"));
    if (reps < 1) reps = 1;
    int B = atoi(arg_after(argc, argv, "--batch", "128"));
    const char *csv_path = arg_after(argc, argv, "--csv", NULL);
    const char *md_path = arg_after(argc, argv, "--md", NULL);

    /* the five layers at 224 (the model's own geometry); scratch: what conv1 and conv2
     * (the largest im2col) ask for at this batch */
    conv2d_shape cs[5];
    model_conv_shapes(cs, B, 224);
    size_t work = conv2d_work_bytes(&cs[1]);
    if (conv2d_work_bytes(&cs[0]) > work) work = conv2d_work_bytes(&cs[0]);
    char err[256];
    if (be->ctx_init(&ctx, work, precision, err, sizeof err)) {
        fprintf(stderr, "bench_gpu_kernels: %s\n", err);
        return 1;
    }
    BCUDA(cudaEventCreate(&ev0));
    BCUDA(cudaEventCreate(&ev1));
    char src_g[256], src_f[256];
    peak_gemm = gpu_peak(precision, src_g, sizeof src_g);
    peak_fp32 = gpu_peak(DATH_FP32, src_f, sizeof src_f);
    int mem_khz = 0, bus = 0;
    if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess)
        hbm_gbs = 2.0 * mem_khz * 1e3 * (bus / 8.0) / 1e9;   /* double data rate */
    cudaGetLastError();
    /* the floors' peaks: the datasheet row of this GPU, else what was found above */
    struct cudaDeviceProp prop;
    BCUDA(cudaGetDeviceProperties(&prop, 0));
    const cost_gpu *g = cost_gpu_match(prop.name);
    if (!g || cost_peaks_for(g, precision, 0.0, 0.0, &floor_peaks, err, sizeof err)) {
        memset(&floor_peaks, 0, sizeof floor_peaks);
        floor_peaks.gemm_tflops = peak_gemm;
        floor_peaks.core_tflops = peak_fp32;
        floor_peaks.gbs = hbm_gbs > 0 ? hbm_gbs : 1000.0;
        snprintf(floor_peaks.source, sizeof floor_peaks.source, "the peaks above");
    }
    if (csv_path && !(csv = fopen(csv_path, "w"))) { perror(csv_path); return 1; }
    if (md_path && !(md = fopen(md_path, "w"))) { perror(md_path); return 1; }

    const char *pname = precision == DATH_TF32 ? "tf32" : precision == DATH_BF16 ? "bf16" : "fp32";
    printf("device: %s; precision %s; median of %d after %d warm-up calls\n", be->device,
           pname, reps, WARMUP);
    printf("peak (GEMM ops, %s): %.1f TFLOP/s — %s\n", pname, peak_gemm, src_g);
    printf("peak (fp32): %.1f TFLOP/s — %s\n", peak_fp32, src_f);
    printf("memory bandwidth (from the memory clock and bus width): %.0f GB/s\n", hbm_gbs);
    printf("convolution floors (host/cost.h, the kernels each path launches): %s\n\n", floor_peaks.source);
    printf("%-26s %-30s %10s  %-16s %s\n", "op", "shape", "ms", "rate", "of peak");
    if (csv) fprintf(csv, "op,shape,ms,tflops,gbs,of_peak,floor_ms,x_floor\n");
    if (md) {
        fprintf(md, "Device: %s, precision %s, median of %d. Peak %.1f TFLOP/s (%s); "
                    "memory %.0f GB/s. Floors: %s.\n\n| op | shape | ms | rate | of peak | floor ms | × floor |\n"
                    "|---|---|---|---|---|---|---|\n",
                be->device, pname, reps, peak_gemm, src_g, hbm_gbs, floor_peaks.source);
    }

    bench_fused(B);
    /* the net's storage (host/net.c): at bf16 on sm_80+ conv1-4's outputs and conv2-5's
     * inputs (and their gradients) in bf16 */
    const int bs = conv2d_store_bf16(&ctx) ? DATH_STORE_BF16 : DATH_STORE_F32;
    bench_conv("conv1", &cs[0], 0, DATH_STORE_F32, bs);   /* the image needs no gradient */
    bench_conv1_streams(&cs[0]);
    static const char *conv_names[5] = {"conv1", "conv2", "conv3", "conv4", "conv5"};
    for (int i = 1; i < 5; i++) bench_conv(conv_names[i], &cs[i], 1, bs, i == 4 ? DATH_STORE_F32 : bs);
    bench_maxpool("maxpool1", B * cs[0].Co, cs[0].Ho);   /* after conv1, conv2, conv5 */
    bench_maxpool("maxpool2", B * cs[1].Co, cs[1].Ho);
    bench_maxpool("maxpool5", B * cs[4].Co, cs[4].Ho);
    bench_attention(B, MODEL_C5, MODEL_CQ, cs[4].Ho * cs[4].Wo);
    bench_linear("fc6", B, MODEL_C5 * MODEL_POOL * MODEL_POOL, MODEL_HIDDEN, 1, -1);
    bench_linear("fc7", B, MODEL_HIDDEN, MODEL_HIDDEN, 1, -1);
    bench_linear("fc6", B, MODEL_C5 * MODEL_POOL * MODEL_POOL, MODEL_HIDDEN, 1, DATH_STORE_BF16);
    bench_linear("fc7", B, MODEL_HIDDEN, MODEL_HIDDEN, 0, DATH_STORE_F32);
    bench_linear("hash", B, MODEL_HIDDEN, 64, 0, -1);
    bench_linear("cls", B, 64, 80, 0, -1);

    if (csv) fclose(csv);
    if (md) fclose(md);
    cudaEventDestroy(ev0);
    cudaEventDestroy(ev1);
    be->ctx_free(&ctx);
    return 0;
}

#endif
