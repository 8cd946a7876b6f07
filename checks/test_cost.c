/* checks/test_cost.c — the cost model (host/cost.h) against counts made here, apart:
 *   1. the whole training step's FLOPs for all five variants, input sizes 224 and 112,
 *      batches 128 and 5 (odd: J1's ⌊(B−1)/2⌋·⌈(B−1)/2⌉ triplets): the GEMM FLOPs
 *      against the products of the network's shapes (model_conv_shapes for the
 *      convolutions, host/model.h's fc and attention sizes) and the CUDA-core FLOPs
 *      against a tally of the elementwise kernels from the activations' shapes, both
 *      exactly. The tally restates cost.h's counting rules per tensor here; a change
 *      to one kernel's entry in host/cost.c must be made here too, or this fails;
 *   2. bytes of single kernels worked out by hand (RMSProp, conv1's im2col and batched
 *      GEMM at B = 2, S = 63, the gradient zeroing, conv2's col2im, max-pool 1, fc6's
 *      GEMM), conv1's ideal bytes, and the launchers' chunking (a small scratch splits
 *      the batch; the chunks add up to the whole, the weights are read once a chunk)
 *      and unevenly spaced weight sets (one GEMM a set instead of one batched GEMM);
 *      Both convolution paths: im2col + cuBLAS (DATH_CONV_IM2COL) and the implicit GEMMs
 *      (the default): for these the tally drops the im2col path's bias passes and col2im
 *      and takes the K-split reductions' adds (splits·M·N a split GEMM, from the
 *      launchers' plan, conv2d_plan, which checks/test_conv.c checks against its table),
 *      and conv1's forward, the pam.conv2 backward and a split dW's kernels are tallied by
 *      hand;
 *   3. a pass's totals are the sums of its kernels (floors too), the epoch is the
 *      steps and input passes it is made of, every floor is max(compute, memory);
 *   4. the recording backend has an entry for every op the CPU backend has, so a new
 *      backend op cannot be left out of the model; a bad configuration is an error.
 * (The JSON and the command line are checked by checks/test_cost_cli.py.) */
#include "check.h"

#include <string.h>

#include "../host/cost.h"
#include "../host/net.h"
#include "../kernels/attention.h"
#include "../kernels/pool.h"

static int close_exact(const char *name, double got, double want) {
    return check_close_d(name, &got, &want, 1, 0.0, 0.0);
}

static int close_rel(const char *name, double got, double want, double rtol) {
    return check_close_d(name, &got, &want, 1, 0.0, rtol);
}

/* ---- 1. FLOPs from the shapes ------------------------------------------------------ */

typedef struct net_shape {
    int ns, pam[2], cam[2];   /* streams; the attention each stream runs */
    conv2d_shape cs[5];
    int H1, P1, P2, H3, N, P5;
} net_shape;

static void shape_of(net_shape *n, dath_variant v, int B, int S) {
    memset(n, 0, sizeof *n);
    switch (v) {
    case VARIANT_DATH: n->ns = 2; n->pam[0] = 1; n->cam[1] = 1; break;
    case VARIANT_S: n->ns = 1; n->pam[0] = 1; break;
    case VARIANT_C: n->ns = 1; n->cam[0] = 1; break;
    case VARIANT_N: n->ns = 1; break;
    case VARIANT_1: n->ns = 1; n->pam[0] = n->cam[0] = 1; break;
    }
    model_conv_shapes(n->cs, B, S);
    n->H1 = n->cs[0].Ho;
    n->P1 = maxpool_out(n->H1);
    n->P2 = maxpool_out(n->P1);
    n->H3 = n->cs[4].Ho;
    n->N = n->H3 * n->H3;
    n->P5 = maxpool_out(n->H3);
}

/* padded: the im2col path's K, conv2d_col_rows (conv.h: conv1's 363 → 368 zero-padded,
 * which its three GEMMs multiply too); else the shape's Ci·k·k */
static double conv_macs(const conv2d_shape *c, int padded) {
    return (double)c->B * c->Co * c->Ho * c->Wo * (padded ? conv2d_col_rows(c) : c->Ci * c->k * c->k);
}

/* The matrix products of one step: forward, and for every layer the weight gradient
 * and (but for conv1, whose input is the image) the input gradient; padded as above. */
static double gemm_flops(dath_variant v, int K, int C, int B, int S, int padded) {
    net_shape n;
    shape_of(&n, v, B, S);
    const double b = B, G = MODEL_C5 * MODEL_POOL * MODEL_POOL, D = MODEL_HIDDEN, c5 = MODEL_C5, cq = MODEL_CQ;
    const double N = n.N;
    double f = 0;
    for (int s = 0; s < n.ns; s++) {
        for (int i = 0; i < 5; i++) f += 2 * conv_macs(&n.cs[i], padded) * (i == 0 ? 2 : 3);
        f += 3 * 2 * b * G * D + 3 * 2 * b * D * D;                                          /* fc6, fc7 */
        if (n.pam[s]) f += 3 * (2 * b * N * (2 * cq * c5 + c5 * c5) + 2 * b * N * N * cq + 2 * b * c5 * N * N);
        if (n.cam[s]) f += 3 * (2 * b * c5 * c5 * N + 2 * b * c5 * N * c5);
    }
    f += 3 * 2 * b * D * K + 3 * 2 * b * K * C;                                              /* hash, cls */
    return f;
}

/* Window taps of one axis that land inside the input: for each input row y, the
 * (oy, ky) with oy·stride − pad + ky = y. */
static double taps_axis(int H, int k, int stride, int pad, int Ho) {
    double t = 0;
    for (int y = 0; y < H; y++)
        for (int ky = 0; ky < k; ky++) {
            int r = y + pad - ky;
            if (r >= 0 && r % stride == 0 && r / stride < Ho) t += 1;
        }
    return t;
}

/* Σ of PyTorch's adaptive-pool bin sizes along one axis. */
static double bins_axis(int H, int Ho) {
    double a = 0;
    for (int i = 0; i < Ho; i++) a += (double)(((i + 1) * H + Ho - 1) / Ho - (i * H) / Ho);
    return a;
}

/* The CUDA-core kernels' FLOPs of one step (cost.h's rules), tensor by tensor, for a
 * scratch that holds the whole batch (one chunk: what net_work_bytes gives). */
static double core_flops(dath_variant v, int K, int C, int B, int S, int multi, size_t nparams) {
    net_shape n;
    shape_of(&n, v, B, S);
    const double b = B, G = MODEL_C5 * MODEL_POOL * MODEL_POOL, D = MODEL_HIDDEN, c5 = MODEL_C5, cq = MODEL_CQ;
    const double N = n.N, ns = n.ns, P0 = (double)n.H1 * n.H1;
    const double A = bins_axis(n.P5, MODEL_POOL) * bins_axis(n.P5, MODEL_POOL);   /* avg-pool incidences */
    double gpart = ceil(b * c5 * N / 256.0);                                            /* dγ partials */
    if (gpart > 1024) gpart = 1024;
    double f = 0;
    /* forward: conv1 of all streams (one add an output), then each stream */
    f += ns * b * 64 * P0;
    for (int s = 0; s < n.ns; s++) {
        for (int i = 1; i < 5; i++) f += b * n.cs[i].Co * n.cs[i].Ho * n.cs[i].Wo;     /* bias */
        if (n.pam[s]) f += 2 * b * cq * N + b * c5 * N + 6 * b * N * N + b * N + 2 * b * c5 * N;
        if (n.cam[s]) f += 6 * b * c5 * c5 + b * c5 + 2 * b * c5 * N;
        if (n.pam[s] && n.cam[s]) f += 2 * b * c5 * N;                                   /* a5 += cam */
        f += b * c5 * (A + 2.0 * MODEL_POOL * MODEL_POOL);                                /* avg-pool */
        f += 2 * b * G + 2 * b * D;   /* the dropouts (fc6's and fc7's biases: cuBLASLt's epilogue, no FLOPs) */
    }
    f += (ns > 1 ? b * D : 0) + b * K;   /* fusion, tanh (hash's and cls's biases in their epilogues) */
    /* losses: J1 over the most triplets, J2, J3 with the tanh backward */
    const double np = (double)((B - 1) / 2), nn = (double)(B - 1) - np, T = b * np * nn;
    f += b * b * (2.0 * K + 1) + b * np + 16 * T + b + 2 * b * b + 2 * b * b * K + 2 * b * K;
    f += (3 + (multi ? 15 + 11 : 4 + 6)) * b * C + 2 * b;
    f += (b + 31) * C + 10 * b * K + (b + 31) * K;                                        /* cls, J3, hash (fusion: none) */
    for (int s = 0; s < n.ns; s++) {
        f += (b + 31) * D + 2 * b * D + (b + 31) * D + 2 * b * G;                          /* fc7, dropout, fc6, dropout */
        f += 3 * b * c5 * A + b * c5 * n.P5 * n.P5;                                        /* avg-pool, max-pool 5 */
        if (n.pam[s]) {   /* ... and the bias gradients' row sums, in slices (attention.h) */
            const double R = 2 * cq + c5;
            const int sl = attn_row_sum_slices((long long)R, (long long)(b * N));
            f += 2 * b * c5 * N + gpart + b * c5 * N + 5 * b * N * N + R * b * N + (sl > 1 ? R * (sl - 1) : 0);
        }   /* the residual's dx: written (2 a element), CAM after PAM adds (3) */
        if (n.cam[s]) f += (n.pam[s] ? 3 : 2) * b * c5 * N + gpart + b * c5 * N + 5 * b * c5 * c5;
        for (int i = 4; i >= 1; i--) {
            const conv2d_shape *c = &n.cs[i];
            f += (double)c->Co * b * c->Ho * c->Wo;                                        /* bias gradient */
            f += b * c->Ci * taps_axis(c->H, c->k, c->stride, c->pad, c->Ho) *
                 taps_axis(c->W, c->k, c->stride, c->pad, c->Wo);                          /* col2im */
        }
        f += b * 192 * n.P2 * n.P2 + b * 64 * n.P1 * n.P1;                                 /* max-pool 2, 1 */
    }
    f += ns * 64 * b * P0;                                                                 /* conv1's bias gradient */
    f += 11.0 * (double)nparams;                                                           /* RMSProp */
    return f;
}

/* What the implicit path changes in core_flops' tally: no forward bias passes (the
 * epilogue adds them, uncounted as a GEMM's β) — PAM's three 1×1 convolutions' included,
 * which run on the same kernel (kernels/attention.cu) —, no col2im, and each GEMM whose K
 * is split gets a reduction of splits·M·N adds. The splits are the plan's, on the context the cost
 * model builds (sm_80, the scratch of net_work_bytes). */
static double implicit_core_delta(dath_variant v, int B, int S, int precision) {
    net_shape n;
    shape_of(&n, v, B, S);
    char err[256];
    dath_model *m = model_create(v, 64, 80, S, err, sizeof err);
    if (!m) { printf("     model_create: %s\n", err); return NAN; }
    dath_ctx ctx = {0};
    ctx.sm = 80;
    ctx.precision = precision;
    ctx.work = (float *)&ctx;   /* not dereferenced */
    ctx.work_bytes = net_work_bytes(m, B, B);
    model_free(m);
    const double b = B, P0 = (double)n.H1 * n.H1;
    double d = -(double)n.ns * b * 64 * P0;   /* conv1's bias pass (both streams: one launch) */
    for (int s = 0; s < n.ns; s++)
        for (int i = 1; i < 5; i++) {
            const conv2d_shape *c = &n.cs[i];
            d -= b * c->Co * c->Ho * c->Wo;   /* bias pass */
            d -= b * c->Ci * taps_axis(c->H, c->k, c->stride, c->pad, c->Ho) * taps_axis(c->W, c->k, c->stride, c->pad, c->Wo);
        }
    for (int s = 0; s < n.ns; s++) {
        if (!n.pam[s]) continue;
        const double N = n.N;
        d -= 2 * b * MODEL_CQ * N + b * MODEL_C5 * N;   /* q's, k's and v's bias passes */
        for (int c = 0; c < 3; c++) {
            conv2d_shape pj = conv2d_make_shape(B, MODEL_C5, 1, n.N, c < 2 ? MODEL_CQ : MODEL_C5, 1, 1, 0);
            conv2d_plan_t p;
            if (conv2d_plan(&p, CONV_OP_FWD, &pj, 1, &ctx) == 0 && p.splits > 1) d += (double)p.splits * p.M * p.N;
        }
    }
    for (int i = 0; i < 5; i++) {
        const int sets = i == 0 ? n.ns : 1, reps = i == 0 ? 1 : n.ns;
        /* the bias gradient in slices: S − 1 adds a channel to sum the partials */
        d += reps * (double)sets * n.cs[i].Co * (conv2d_bgrad_slices(&n.cs[i], sets, &ctx) - 1);
        for (int op = 0; op < 3; op++) {
            if (i == 0 && op == CONV_OP_DX) continue;
            conv2d_plan_t p;
            if (conv2d_plan(&p, op, &n.cs[i], sets, &ctx) == 0 && p.splits > 1)   /* dW, dX (one set) written: no += */
                d += reps * (double)(p.splits - (op != CONV_OP_FWD)) * p.M * p.N;
        }
    }
    return d;
}

static void check_step_flops(void) {
    static const dath_variant vs[] = {VARIANT_DATH, VARIANT_S, VARIANT_C, VARIANT_N, VARIANT_1};
    static const int sizes[] = {224, 112}, batches[] = {128, 5};
    static const int algos[] = {DATH_CONV_IM2COL, DATH_CONV_IMPLICIT};
    for (int ai = 0; ai < 2; ai++)
    for (size_t vi = 0; vi < 5; vi++)
        for (int si = 0; si < 2; si++)
            for (int bi = 0; bi < 2; bi++) {
                const int algo = algos[ai];
                const char *an = algo == DATH_CONV_IM2COL ? "im2col" : "implicit";
                cost_config cf = {vs[vi], 64, 80, batches[bi], sizes[si], DATH_TF32, 0, algo};
                cost_model cm;
                char err[256], name[128];
                if (!CHECK_TRUE("cost_build", cost_build(&cm, &cf, err, sizeof err) == 0)) {
                    printf("     %s\n", err);
                    continue;
                }
                double gemm = 0, core = 0;
                int im2col_fwd = 0, igemm_fwd = 0;
                for (int i = 0; i < cm.step.nkernels; i++) {
                    const cost_kernel *k = &cm.step.kernels[i];
                    if (k->unit == COST_UNIT_GEMM) gemm += k->flops;
                    else core += k->flops;
                    if (k->phase == COST_FORWARD && !strcmp(k->kernel, "conv_im2col_kernel")) im2col_fwd++;
                    if (k->phase == COST_FORWARD && !strcmp(k->kernel, "conv_igemm_kernel")) igemm_fwd++;
                }
                net_shape n;
                shape_of(&n, vs[vi], 1, sizes[si]);
                if (algo == DATH_CONV_IM2COL) {
                    snprintf(name, sizeof name, "%s S%d B%d: one im2col a conv (one chunk)", variant_name(vs[vi]), sizes[si],
                             batches[bi]);
                    CHECK_TRUE(name, im2col_fwd == 1 + 4 * n.ns);
                } else {
                    snprintf(name, sizeof name, "%s S%d B%d: one implicit GEMM a forward conv (PAM's three 1×1 ones "
                             "included), no im2col", variant_name(vs[vi]), sizes[si], batches[bi]);
                    int npam = 0;
                    for (int s = 0; s < n.ns; s++) npam += n.pam[s];
                    CHECK_TRUE(name, igemm_fwd == 1 + 4 * n.ns + 3 * npam && im2col_fwd == 0);
                }
                snprintf(name, sizeof name, "%s %s S%d B%d GEMM FLOPs", an, variant_name(vs[vi]), sizes[si], batches[bi]);
                const int padded = algo == DATH_CONV_IM2COL;
                close_exact(name, gemm, gemm_flops(vs[vi], 64, 80, batches[bi], sizes[si], padded));
                snprintf(name, sizeof name, "%s %s S%d B%d step FLOPs", an, variant_name(vs[vi]), sizes[si], batches[bi]);
                close_exact(name, gemm + core,
                            gemm_flops(vs[vi], 64, 80, batches[bi], sizes[si], padded) +
                                core_flops(vs[vi], 64, 80, batches[bi], sizes[si], 1, cm.nparams) +
                                (algo == DATH_CONV_IMPLICIT ? implicit_core_delta(vs[vi], batches[bi], sizes[si], DATH_TF32) : 0));
                cost_free(&cm);
            }
    /* J2 as softmax cross-entropy changes only J2's count */
    cost_config cf = {VARIANT_N, 16, 10, 6, 63, DATH_FP32, 1, DATH_CONV_IM2COL};
    cost_model cm;
    char err[256];
    if (CHECK_TRUE("cost_build (single-label)", cost_build(&cm, &cf, err, sizeof err) == 0)) {
        double f = 0;
        for (int i = 0; i < cm.step.nkernels; i++) f += cm.step.kernels[i].flops;
        close_exact("dath-n S63 B6 single-label step FLOPs", f,
                    gemm_flops(VARIANT_N, 16, 10, 6, 63, 1) + core_flops(VARIANT_N, 16, 10, 6, 63, 0, cm.nparams));
        cost_free(&cm);
    }
}

/* ---- 2. bytes by hand ------------------------------------------------------------------ */

static const cost_kernel *find_kernel(const cost_pass *ps, int phase, const char *kernel, const char *layer, int nth) {
    for (int i = 0; i < ps->nkernels; i++) {
        const cost_kernel *k = &ps->kernels[i];
        if ((phase < 0 || (int)k->phase == phase) && !strcmp(k->kernel, kernel) && (!layer || !strcmp(k->layer, layer)) &&
            nth-- == 0)
            return k;
    }
    return NULL;
}

static void check_kernel(const char *name, const cost_kernel *k, double rd, double wr, double flops) {
    char buf[160];
    if (!CHECK_TRUE(name, k != NULL)) return;
    snprintf(buf, sizeof buf, "%s: bytes read", name);
    close_exact(buf, k->bytes_read, rd);
    snprintf(buf, sizeof buf, "%s: bytes written", name);
    close_exact(buf, k->bytes_written, wr);
    if (flops >= 0) {
        snprintf(buf, sizeof buf, "%s: FLOPs", name);
        close_exact(buf, k->flops, flops);
    }
}

/* The im2col forward of three weight sets of shape s, the last one not evenly spaced
 * after the others (sets at 0, 1 and 3 weight sizes), recorded: what it launches. */
typedef struct uneven_counts { int ok, gemms, batched, cols, pads; double batched_flops; } uneven_counts;
static uneven_counts uneven_sets(const dath_backend *be, conv2d_shape s, const float *in, const float *b, float *out) {
    uneven_counts u = {0};
    dath_ctx ctx;
    cost_pass ps;
    char err[256];
    if (be->ctx_init(&ctx, conv2d_work_bytes_multi(&s, 3), DATH_FP32, err, sizeof err)) return u;
    ctx.conv_algo = DATH_CONV_IM2COL;
    const size_t nw = (size_t)s.Co * s.Ci * s.k * s.k;
    float *wf = be->alloc(4 * nw * sizeof(float));
    const float *ws[3] = {wf, wf + nw, wf + 3 * nw}, *bs[3] = {b, b, b};
    float *outs[3] = {out, out, out};
    cost_record_begin(&ctx, &ps, "conv x3", s.B);
    be->conv2d_forward_multi(outs, in, ws, bs, 3, &s, 1, &ctx);
    u.ok = cost_record_end(&ctx, err, sizeof err) == 0;
    for (int i = 0; i < ps.nkernels; i++) {
        const char *k = ps.kernels[i].kernel;
        u.gemms += !strcmp(k, "cublasGemmEx");
        u.cols += !strcmp(k, "conv_im2col_kernel");
        u.pads += !strcmp(k, "conv_pad_kernel");
        if (!strcmp(k, "cublasGemmStridedBatchedEx")) {
            u.batched++;
            u.batched_flops = ps.kernels[i].flops;
        }
    }
    cost_pass_free(&ps);
    be->free(wf);
    be->ctx_free(&ctx);
    return u;
}

static void check_bytes(void) {
    /* dath (two streams), B = 2, S = 63: conv1 15×15 (k11 s4 p2), pool1 7×7, conv2 7×7 */
    cost_config cf = {VARIANT_DATH, 64, 80, 2, 63, DATH_TF32, 0, DATH_CONV_IM2COL};
    cost_model cm;
    char err[256];
    if (!CHECK_TRUE("cost_build dath B2 S63", cost_build(&cm, &cf, err, sizeof err) == 0)) {
        printf("     %s\n", err);
        return;
    }
    const double n = (double)cm.nparams;
    /* RMSProp: θ, v and g read, θ and v written, 5 × 4 bytes a parameter; and the three
     * losses of the guard every thread reads (12 bytes) */
    check_kernel("rmsprop", find_kernel(&cm.step, COST_UPDATE, "rmsprop_step_kernel", NULL, 0), 12 * n + 12, 8 * n, 11 * n);
    close_exact("rmsprop: 5 x 4 bytes a parameter (+ 12 of guard)",
                find_kernel(&cm.step, COST_UPDATE, "rmsprop_step_kernel", NULL, 0)->bytes_read +
                    find_kernel(&cm.step, COST_UPDATE, "rmsprop_step_kernel", NULL, 0)->bytes_written,
                5 * 4 * n + 12);
    /* no zeroing of the parameter gradients (the backward writes each one); the step's one
     * memset is the activation gradients' */
    CHECK_TRUE("no parameter-gradient zeroing in the step",
               !find_kernel(&cm.step, -1, "cudaMemsetAsync", "zero parameter gradients", 0) &&
                   find_kernel(&cm.step, -1, "cudaMemsetAsync", "zero activation gradients", 0) &&
                   !find_kernel(&cm.step, -1, "cudaMemsetAsync", NULL, 1));
    /* conv1's weights padded (conv.h: R = 363 → Rp = 368): both sets [64, 363] read, [64,
     * 368] written into the scratch */
    check_kernel("conv1 weights padded (forward)", find_kernel(&cm.step, COST_FORWARD, "conv_pad_kernel", NULL, 0),
                 4.0 * 2 * 64 * 363, 4.0 * 2 * 64 * 368, 0);
    /* conv1's im2col: every one of the 2·3·63·63 input pixels is under some window
     * (rows −2..64 are covered by oy·4 − 2 + ky); it writes the column buffer
     * Rp × N = 368 × (2·15·15) floats, the 5 padding rows zero */
    check_kernel("conv1 im2col (forward)", find_kernel(&cm.step, COST_FORWARD, "conv_im2col_kernel", NULL, 0),
                 4.0 * 2 * 3 * 63 * 63, 4.0 * 368 * 450, 0);
    /* both streams' conv1 products, one strided-batched GEMM of 2 with K = 368: each reads
     * its padded weight [64, 368] and the column buffer [368, 450], writes its stage [64, 450] */
    check_kernel("conv1 GEMM (2 streams, forward)", find_kernel(&cm.step, COST_FORWARD, "cublasGemmStridedBatchedEx", NULL, 0),
                 2 * 4.0 * (64 * 368 + 368 * 450), 2 * 4.0 * 64 * 450, 2 * 2.0 * 64 * 450 * 368);
    /* its backward: dW into the scratch's [64, 368] pair, copied into each dw [64, 363]
     * (conv1 has no din: no padded weights for dX) */
    check_kernel("conv1 dw unpadded", find_kernel(&cm.step, COST_BACKWARD, "conv_unpad_kernel", NULL, 0),
                 4.0 * 2 * 64 * 363, 4.0 * 2 * 64 * 363, 0);
    CHECK_TRUE("conv1's backward pads no weights (no din)", !find_kernel(&cm.step, COST_BACKWARD, "conv_pad_kernel", NULL, 0));
    /* its bias + ReLU: reads the 2 stages and the 2 biases, writes both outputs */
    check_kernel("conv1 bias+ReLU", find_kernel(&cm.step, COST_FORWARD, "conv_bias_relu_kernel", NULL, 0),
                 4.0 * (2 * 2 * 64 * 225 + 2 * 64), 4.0 * 2 * 2 * 64 * 225, 2.0 * 2 * 64 * 225);
    /* conv1's ideal: the image once, both weights and biases, both outputs */
    const cost_op *op1 = NULL;
    for (int i = 0; i < cm.step.nops && !op1; i++)
        if (!strcmp(cm.step.ops[i].op, "conv2d_forward_multi")) op1 = &cm.step.ops[i];
    if (CHECK_TRUE("conv1's op", op1 != NULL))
        close_exact("conv1 ideal bytes", op1->ideal_bytes,
                    4.0 * (2 * 3 * 63 * 63 + 2 * 64 * 363 + 2 * 64 + 2 * 2 * 64 * 225));
    /* max-pool 1 of stream pam: reads all 2·64·15·15 inputs, writes 7×7 outputs and
     * their one-byte argmax */
    check_kernel("pam.pool1 forward", find_kernel(&cm.step, COST_FORWARD, "maxpool_forward_kernel", "pam.pool1", 0),
                 4.0 * 2 * 64 * 15 * 15, 5.0 * 2 * 64 * 7 * 7, 0);
    /* conv2's col2im (64 → 192, 7×7, k5 p2): per axis the taps inside the input are
     * 3 + 4 + 5 + 5 + 5 + 4 + 3 = 29, so 2·64·29² column elements are gathered, and din
     * [2,64,7,7] is written (not read: the op writes it) */
    check_kernel("pam.conv2 col2im", find_kernel(&cm.step, COST_BACKWARD, "conv_col2im_kernel", "pam.conv2", 0),
                 4.0 * 2 * 64 * 29 * 29, 4.0 * 2 * 64 * 49, 2.0 * 64 * 29 * 29);
    /* fc6's forward, one cuBLASLt matmul: in [2, 9216], w [4096, 9216] and b [4096] read,
     * out [2, 4096] written (bias and ReLU in its epilogue); no bias pass after it */
    check_kernel("pam.fc6 GEMM", find_kernel(&cm.step, COST_FORWARD, "cublasLtMatmul", "pam.fc6", 0),
                 4.0 * (2 * 9216 + 4096.0 * 9216 + 4096), 4.0 * 2 * 4096, 2.0 * 2 * 4096 * 9216);
    CHECK_TRUE("no fc bias pass", !find_kernel(&cm.step, -1, "linear_bias_relu_kernel", NULL, 0));
    /* its weight gradient (β = 0: dw is written, not read) */
    check_kernel("pam.fc6 dW GEMM", find_kernel(&cm.step, COST_BACKWARD, "cublasGemmEx", "pam.fc6", 0),
                 4.0 * (2 * 4096 + 2 * 9216), 4.0 * 4096 * 9216, 2.0 * 4096 * 9216 * 2);
    cost_free(&cm);

    /* chunking: conv2 at B = 5 with a scratch for 2 images gives chunks of 2, 2, 1 */
    const dath_backend *be = cost_backend();
    conv2d_shape s = conv2d_make_shape(5, 64, 27, 27, 192, 5, 1, 2);
    dath_ctx ctx;
    size_t per_image = (size_t)(64 * 25 + 192) * 27 * 27 * sizeof(float);
    if (!CHECK_TRUE("cost ctx", be->ctx_init(&ctx, 2 * per_image + 100, DATH_FP32, err, sizeof err) == 0)) return;
    ctx.conv_algo = DATH_CONV_IM2COL;   /* the chunks are the im2col path's */
    cost_pass ps;
    float *w = be->alloc(192 * 1600 * 4), *b = be->alloc(192 * 4), *in = be->alloc(5 * 64 * 27 * 27 * 4),
          *out = be->alloc(5 * 192 * 27 * 27 * 4);
    cost_record_begin(&ctx, &ps, "conv2", 5);
    be->conv2d_forward(out, in, w, b, &s, 1, &ctx);
    CHECK_TRUE("chunked conv records", cost_record_end(&ctx, err, sizeof err) == 0);
    int ncol = 0, ngemm = 0;
    double col_rd = 0, gemm_fl = 0, gemm_rd = 0;
    for (int i = 0; i < ps.nkernels; i++) {
        if (!strcmp(ps.kernels[i].kernel, "conv_im2col_kernel")) { ncol++; col_rd += ps.kernels[i].bytes_read; }
        if (ps.kernels[i].unit == COST_UNIT_GEMM) {
            ngemm++;
            gemm_fl += ps.kernels[i].flops;
            gemm_rd += ps.kernels[i].bytes_read;
        }
    }
    CHECK_TRUE("chunks of 2, 2, 1: three im2col, three GEMMs", ncol == 3 && ngemm == 3);
    close_exact("chunked im2col reads the batch once", col_rd, 4.0 * 5 * 64 * 27 * 27);
    close_exact("chunked GEMM FLOPs", gemm_fl, 2.0 * 5 * 192 * 729 * 1600);
    close_exact("chunked GEMMs read w once a chunk", gemm_rd, 4.0 * (3 * 192 * 1600 + 1600.0 * 5 * 729));
    cost_pass_free(&ps);
    /* a scratch that holds no image: an error, as the launcher aborts */
    be->ctx_free(&ctx);
    if (be->ctx_init(&ctx, per_image / 2, DATH_FP32, err, sizeof err) == 0) {
        ctx.conv_algo = DATH_CONV_IM2COL;
        cost_record_begin(&ctx, &ps, "conv2", 5);
        be->conv2d_forward(out, in, w, b, &s, 1, &ctx);
        CHECK_TRUE("too small a scratch is an error", cost_record_end(&ctx, err, sizeof err) == -1 && strstr(err, "scratch"));
        cost_pass_free(&ps);
        be->ctx_free(&ctx);
    }
    /* three weight sets not evenly spaced, K = 8·3·3 = 72 (no padding): three GEMMs (and
     * one im2col) */
    uneven_counts u = uneven_sets(be, conv2d_make_shape(2, 8, 27, 27, 64, 3, 1, 1), in, b, out);
    CHECK_TRUE("uneven weight sets: one im2col, three GEMMs, no batched GEMM", u.ok && u.cols == 1 && u.gemms == 3 && !u.batched);
    /* the same uneven sets at conv1's K = 363: padded into the scratch, evenly spaced
     * there: one pad launch, one batched GEMM with K = 368 */
    u = uneven_sets(be, conv2d_make_shape(2, 3, 63, 63, 64, 11, 4, 2), in, b, out);
    CHECK_TRUE("conv1's uneven sets, padded: one pad, one batched GEMM of K 368",
               u.ok && u.pads == 1 && u.batched == 1 && u.gemms == 0 && u.batched_flops == 3 * 2.0 * 64 * 450 * 368);
}

/* The implicit path's kernels by hand (tf32: BK 32). */
static void check_implicit_bytes(void) {
    /* dath, B = 2, S = 63: conv1 of both streams, 128 × 450 × 363 (M = 2·64 stacked sets,
     * N = 2·15·15, K = 3·11²): 64×64 tiles, 2 × 8 blocks and K too short to split (363 <
     * 512): one launch reading every input pixel (all are under a window), both weights
     * and biases, writing both outputs */
    cost_config cf = {VARIANT_DATH, 64, 80, 2, 63, DATH_TF32, 0, DATH_CONV_IMPLICIT};
    cost_model cm;
    char err[256];
    if (!CHECK_TRUE("cost_build dath B2 S63 implicit", cost_build(&cm, &cf, err, sizeof err) == 0)) {
        printf("     %s\n", err);
        return;
    }
    check_kernel("conv1 implicit GEMM (2 streams, forward)", find_kernel(&cm.step, COST_FORWARD, "conv_igemm_kernel", NULL, 0),
                 4.0 * (2 * 3 * 63 * 63 + 2 * 64 * 363 + 2 * 64), 4.0 * 2 * 2 * 64 * 225, 2.0 * 128 * 450 * 363);
    int fwd_launches = 0, col = 0;
    for (int i = 0; i < cm.step.nkernels; i++) {
        const cost_kernel *k = &cm.step.kernels[i];
        fwd_launches += k->phase == COST_FORWARD && strstr(k->layer, "conv1") != NULL;
        col += !strcmp(k->kernel, "conv_im2col_kernel") || !strcmp(k->kernel, "conv_col2im_kernel");
    }
    CHECK_TRUE("conv1's forward: one launch; no im2col or col2im anywhere", fwd_launches == 1 && col == 0);
    /* pam.conv2's backward (64 → 192, 7×7, k5 p2; its ReLU is applied by pool2's
     * backward, so relu = 0): the db pass reads dout, writes db, B·P adds a channel; dW
     * 192 × 1600 × 98 (K = 2·49 < 512: one part) reads dout and the input (all 2·64·49
     * pixels under a window), writes dw (not read: the op writes it); dX 64 × 98 × 4800 (M = Ci, N = 2·7·7,
     * K = 192·25): 64×64, 2 blocks, split in 9 parts of 17 K tiles (150 tiles), its
     * parts 9 × 64 × 98 written, then the reduction reads them and din, writes din, with
     * 9 adds an element (8 between parts, 1 for +=) */
    const double nout = 2.0 * 192 * 49;
    check_kernel("pam.conv2 mask + db", find_kernel(&cm.step, COST_BACKWARD, "conv_mask_bgrad_kernel", "pam.conv2", 0),
                 4.0 * nout, 4.0 * 192, 192.0 * 2 * 49);
    check_kernel("pam.conv2 dW implicit GEMM", find_kernel(&cm.step, COST_BACKWARD, "conv_igemm_kernel", "pam.conv2", 0),
                 4.0 * (nout + 2 * 64 * 49), 4.0 * 192 * 1600, 2.0 * 192 * 1600 * 98);
    check_kernel("pam.conv2 dX implicit GEMM (9 parts)", find_kernel(&cm.step, COST_BACKWARD, "conv_igemm_kernel", "pam.conv2", 1),
                 4.0 * (nout + 192 * 64 * 25), 4.0 * 9 * 64 * 98, 2.0 * 64 * 98 * 4800);
    check_kernel("pam.conv2 dX reduction of 9 parts",
                 find_kernel(&cm.step, COST_BACKWARD, "conv_split_reduce_kernel", "pam.conv2", 0),
                 4.0 * 9 * 64 * 98, 4.0 * 64 * 98, 8.0 * 64 * 98);
    cost_free(&cm);

    /* a dW split over the batch: conv4-like (384 → 256, 13×13, k3 p1) at B = 8, K = 8·169
     * = 1352 (2 parts of 512 or more), 256 × 3456: 64×128 tiles (4 × 27 blocks, 2 parts
     * give 216), 2 parts of 22 and 21 K tiles; no ReLU (no out read, no dout written) */
    const dath_backend *be = cost_backend();
    conv2d_shape s = conv2d_make_shape(8, 384, 13, 13, 256, 3, 1, 1);
    dath_ctx ctx;
    if (!CHECK_TRUE("cost ctx (implicit)", be->ctx_init(&ctx, conv2d_work_bytes(&s), DATH_TF32, err, sizeof err) == 0)) return;
    float *in = be->alloc(8 * 384 * 169 * 4), *w = be->alloc(256 * 3456 * 4), *dw = be->alloc(256 * 3456 * 4);
    float *db = be->alloc(256 * 4), *dout = be->alloc(8 * 256 * 169 * 4), *out = be->alloc(8 * 256 * 169 * 4);
    cost_pass ps;
    cost_record_begin(&ctx, &ps, "conv4 dW", 8);
    be->conv2d_backward(NULL, dw, db, dout, in, w, out, &s, 0, &ctx);
    CHECK_TRUE("dW split records", cost_record_end(&ctx, err, sizeof err) == 0);
    const double no = 8.0 * 256 * 169, mn = 256.0 * 3456;
    CHECK_TRUE("dW split: mask + db, the GEMM, its reduction", ps.nkernels == 3);
    check_kernel("conv4 dW mask + db (no ReLU)", find_kernel(&ps, -1, "conv_mask_bgrad_kernel", NULL, 0),
                 4.0 * no, 4.0 * 256, 256.0 * 8 * 169);
    check_kernel("conv4 dW implicit GEMM, 2 parts", find_kernel(&ps, -1, "conv_igemm_kernel", NULL, 0),
                 4.0 * (no + 8 * 384 * 169), 4.0 * 2 * mn, 2.0 * mn * 1352);
    check_kernel("conv4 dW reduction of 2 parts", find_kernel(&ps, -1, "conv_split_reduce_kernel", NULL, 0),
                 4.0 * 2 * mn, 4.0 * mn, 1.0 * mn);
    cost_pass_free(&ps);
    be->ctx_free(&ctx);
}

/* ---- 3. totals ----------------------------------------------------------------------- */

static void check_totals(void) {
    cost_config cf = {VARIANT_1, 32, 21, 24, 96, DATH_BF16, 0};
    cost_model cm;
    char err[256];
    if (!CHECK_TRUE("cost_build dath-1 B24 S96", cost_build(&cm, &cf, err, sizeof err) == 0)) return;
    const cost_gpu *g = cost_gpu_find("a100");
    cost_peaks p;
    if (!CHECK_TRUE("a100 bf16 peaks", g && cost_peaks_for(g, DATH_BF16, 0, 0, &p, err, sizeof err) == 0)) return;
    close_exact("a100 bf16 GEMM peak (datasheet)", p.gemm_tflops, 312.0);
    const cost_pass *all[] = {&cm.step, &cm.input, &cm.step_last, &cm.input_last, &cm.encode, &cm.encode_b1};
    int floors_ok = 1, phases_ok = 1;
    for (size_t i = 0; i < 6; i++) {
        cost_totals t;
        cost_pass_totals(all[i], &p, &t);
        double fl = 0, by = 0, fs = 0, id = 0;
        for (int k = 0; k < all[i]->nkernels; k++) {
            const cost_kernel *kk = &all[i]->kernels[k];
            fl += kk->flops;
            by += kk->bytes_read + kk->bytes_written;
            double c = kk->flops / ((kk->unit == COST_UNIT_GEMM ? p.gemm_tflops : p.core_tflops) * 1e12);
            double m = (kk->bytes_read + kk->bytes_written) / (p.gbs * 1e9);
            double f = cost_kernel_floor(kk, &p);
            if (f != (c > m ? c : m) || cost_kernel_compute_bound(kk, &p) != (c > m)) floors_ok = 0;
            fs += f;
            if (!strcmp(all[i]->name, "encode") || !strcmp(all[i]->name, "encode_b1")) phases_ok &= kk->phase == COST_ENCODE;
            else if (!strncmp(all[i]->name, "input", 5)) phases_ok &= kk->phase == COST_INPUT;
            else phases_ok &= kk->phase <= COST_UPDATE;
        }
        int nk = 0;
        for (int o = 0; o < all[i]->nops; o++) {
            id += cost_op_ideal_floor(&all[i]->ops[o], &p);
            nk += all[i]->ops[o].nk;
        }
        char name[96];
        snprintf(name, sizeof name, "%s: FLOPs = Σ kernels", all[i]->name);
        close_exact(name, t.flops, fl);
        snprintf(name, sizeof name, "%s: bytes = Σ kernels", all[i]->name);
        close_exact(name, t.bytes, by);
        snprintf(name, sizeof name, "%s: floor = Σ kernel floors", all[i]->name);
        close_rel(name, t.floor, fs, 1e-12);
        snprintf(name, sizeof name, "%s: ideal = Σ op ideal floors", all[i]->name);
        close_rel(name, t.ideal, id, 1e-12);
        snprintf(name, sizeof name, "%s: every kernel belongs to one op", all[i]->name);
        CHECK_TRUE(name, nk == all[i]->nkernels && t.launches == all[i]->nkernels);
        snprintf(name, sizeof name, "%s: ideal floor at most the floor", all[i]->name);
        CHECK_TRUE(name, t.ideal <= t.floor * (1 + 1e-12));
    }
    CHECK_TRUE("every floor is max(compute, memory), bound its larger term", floors_ok);
    CHECK_TRUE("phases: step forward/backward/update, input, encode", phases_ok);
    /* 10,000 images at 24: 416 full batches and one of 16 */
    CHECK_TRUE("epoch: 416 batches of 24 and one of 16", cm.epoch_full == 416 && cm.epoch_last == 16 &&
                                                           cm.step_last.batch == 16 && cm.input_last.batch == 16);
    cost_totals s, in, sl, il;
    cost_pass_totals(&cm.step, &p, &s);
    cost_pass_totals(&cm.input, &p, &in);
    cost_pass_totals(&cm.step_last, &p, &sl);
    cost_pass_totals(&cm.input_last, &p, &il);
    close_rel("epoch floor = its steps and inputs", cost_epoch_floor(&cm, &p, 0),
              416 * (s.floor + in.floor) + sl.floor + il.floor, 1e-12);
    close_rel("epoch ideal = its steps and inputs", cost_epoch_floor(&cm, &p, 1),
              416 * (s.ideal + in.ideal) + sl.ideal + il.ideal, 1e-12);
    cost_free(&cm);
    /* a batch that divides the epoch leaves no last batch; a remainder of one image is dropped */
    cost_config c2 = {VARIANT_N, 16, 10, 1000, 63, DATH_FP32, 0}, c3 = {VARIANT_N, 16, 10, 9, 63, DATH_FP32, 0};
    if (cost_build(&cm, &c2, err, sizeof err) == 0) {
        CHECK_TRUE("epoch of 10 batches of 1000", cm.epoch_full == 10 && cm.epoch_last == 0 && cm.step_last.nkernels == 0);
        cost_free(&cm);
    }
    if (cost_build(&cm, &c3, err, sizeof err) == 0) {
        CHECK_TRUE("10,000 = 1111·9 + 1: the single image is dropped", cm.epoch_full == 1111 && cm.epoch_last == 0);
        cost_free(&cm);
    }
}

/* ---- 4. coverage and errors -------------------------------------------------------------- */

static void check_coverage_and_errors(void) {
    /* every op slot after the memory functions: where the CPU backend has a function,
     * the recording backend has one (graph_* are NULL in both) */
    const dath_backend *cpu = backend_cpu(), *cost = cost_backend();
    const size_t first = offsetof(dath_backend, ctx_init), slot = sizeof(void (*)(void));
    int missing = 0, slots = 0;
    for (size_t off = first; off + slot <= sizeof(dath_backend); off += slot) {
        void (*a)(void), (*b)(void);
        memcpy(&a, (const char *)cpu + off, slot);
        memcpy(&b, (const char *)cost + off, slot);
        slots++;
        if (a && !b) missing++;
    }
    printf("     %d backend slots compared\n", slots);
    CHECK_TRUE("the recording backend has every op the CPU backend has", missing == 0 && slots > 40);

    char err[256];
    cost_model cm;
    cost_config bad = {VARIANT_DATH, 64, 80, 0, 224, DATH_TF32, 0};
    CHECK_TRUE("batch 0 is an error", cost_build(&cm, &bad, err, sizeof err) == -1 && strstr(err, "batch 0"));
    bad.B = 4096;
    CHECK_TRUE("batch 4096 is an error (J1's limit)", cost_build(&cm, &bad, err, sizeof err) == -1 && strstr(err, "2048"));
    bad.B = 8;
    bad.S = 32;
    CHECK_TRUE("input size 32 is an error", cost_build(&cm, &bad, err, sizeof err) == -1 && strstr(err, "input size 32"));
    cost_peaks p;
    CHECK_TRUE("GTX 1080 Ti has no tf32", cost_peaks_for(cost_gpu_find("gtx1080ti"), DATH_TF32, 0, 0, &p, err, sizeof err) == -1 &&
                                               strstr(err, "tf32"));
    CHECK_TRUE("measured peaks replace the datasheet's",
               cost_peaks_for(cost_gpu_find("h100"), DATH_FP32, 40, 3000, &p, err, sizeof err) == 0 &&
                   p.gemm_tflops == 40 && p.core_tflops == 40 && p.gbs == 3000);
    CHECK_TRUE("device names match their rows", cost_gpu_match("NVIDIA H200 NVL") == cost_gpu_find("h200-nvl") &&
                                                    cost_gpu_match("NVIDIA H100 PCIe") == cost_gpu_find("h100-pcie") &&
                                                    cost_gpu_match("NVIDIA A100-SXM4-40GB") == cost_gpu_find("a100-40gb") &&
                                                    cost_gpu_match("NVIDIA GeForce GTX 1080 Ti") == cost_gpu_find("gtx1080ti") &&
                                                    cost_gpu_match("NVIDIA H200") == cost_gpu_find("h200"));
}

int main(void) {
    check_step_flops();
    check_implicit_bytes();
    check_bytes();
    check_totals();
    check_coverage_and_errors();
    return check_finish();
}
