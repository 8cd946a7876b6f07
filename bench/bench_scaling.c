/* bench/bench_scaling.c — the scaling model of issue 14: predicted training step time and
 * scaling efficiency on 1–8 GPUs, from the cost model's compute time (host/cost.c, the
 * kernels' floors on a datasheet row, as `dath cost` prints them) and the bucket schedule
 * the training step really uses (host/step.c, learned on the recording backend).
 *
 *   build/bench/bench_scaling [--gpu h200 --precision tf32 --variant dath --bits 64
 *                             --classes 80 --input-size 224 --batch 128 --bucket-mb 32]
 *                             [--per-gpu] [--check]
 *
 * Strong scaling by default: the global batch (--batch, the run's) is split over N GPUs,
 * rows for the N in 1..8 that divide it (host/ranks.c needs equal slices); --per-gpu
 * keeps --batch on every GPU instead (weak scaling, every N from 1 to 8). For each N:
 *   compute  = the step's and the input transform's floors at the per-GPU batch b;
 *   buckets  = stepper_buckets after two steps of a net of b images with --bucket-mb;
 *              bucket k is ready when the backward has written its last gradient:
 *              ready_k = −(floors of the backward's kernels queued after that gradient),
 *              seconds before the backward's end (a net driven here, net.h's hook
 *              counting the kernels recorded so far);
 *   comm     = each bucket's ring all-reduce, lat + 2(N−1)/N · bytes / busbw (NCCL's
 *              bus-bandwidth convention), on one communication stream in schedule order:
 *              end_k = max(ready_k, end_{k−1}) + comm_k; exposed = max(0, end_last);
 *              plus the all-gather of h and labels and the losses' sum, each
 *              lat + (N−1)/N · bytes / busbw, on the step's path;
 *   step     = compute + exposed + the two small collectives; serial = the same with
 *              one all-reduce of the whole buffer after the backward (no overlap);
 *   efficiency = the images a second of N GPUs over N times one GPU's: strong scaling
 *              t1 / (N · tN), weak scaling t1 / tN.
 * The links (datasheet-class figures, not measured; a measured busbw replaces them):
 *   nvlink  H200 SXM node, NVLink 4 / NVSwitch: NCCL all-reduce bus bandwidth ≈ 475 GB/s
 *           (issue 14's datasheet-class figure), lat 10 µs;
 *   pcie    GPUs on PCIe Gen5 ×16 through the host (no NVLink): 64 GB/s a direction on
 *           the datasheet, busbw taken as 50 GB/s (the protocol's overhead), lat 20 µs;
 *   ib400   two nodes, N/2 GPUs each on NVLink, one 400 Gb/s NIC a node: the ring
 *           crosses the NICs, busbw ≤ 50 GB/s (400 Gb/s), lat 30 µs;
 *   ib100   the same with 100 Gb/s NICs: busbw ≤ 12.5 GB/s, lat 30 µs.
 * What it leaves out: NCCL's kernels sharing SMs and memory bandwidth with the backward
 * (it slows both), the hierarchical algorithms NCCL may pick across nodes, launch gaps.
 * The compute floors are lower bounds (cost.h), so the model's efficiency is a
 * pessimistic figure for comm being exposed: a slower real step hides more of it.
 *
 * --check: the numbers are self-consistent (exit 1 naming the first that is not): at
 * N = 1 the step is the compute time and the efficiency 1; every efficiency in (0, 1];
 * bucketed ≤ serial; the buckets tile the gradient buffer; every bucket is ready before
 * the backward's end, the first before the last; efficiency does not grow as the link
 * gets slower (nvlink ≥ pcie ≥ ib400 ≥ ib100 for each N); exposed ≤ the whole buffer's
 * all-reduce; --bucket-mb 0 is one bucket, the serial step. Exit 0, 1 on a failed check, 2 on a bad option or a cost model error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/backend.h"
#include "../host/comm.h"
#include "../host/cost.h"
#include "../host/model.h"
#include "../host/net.h"
#include "../host/opts.h"
#include "../host/step.h"

enum { MAXN = 8, NLINKS = 4 };

typedef struct link {
    const char *name, *label;
    double busbw_gbs, lat_us;
    int nodes;   /* 2: N must be even, the ring crosses two NICs */
} link;

static const link links[NLINKS] = {
    {"nvlink", "H200 NVLink node (busbw 475 GB/s)", 475, 10, 1},
    {"pcie", "PCIe Gen5 box (busbw 50 GB/s)", 50, 20, 1},
    {"ib400", "2 nodes, 400 Gb/s (busbw 50 GB/s)", 50, 30, 2},
    {"ib100", "2 nodes, 100 Gb/s (busbw 12.5 GB/s)", 12.5, 30, 2},
};

/* The bucket schedule at per-GPU batch b: buckets (start order) with their sizes and
 * their ready times (seconds before the backward's end). */
typedef struct sched {
    int nb;
    double bytes[4096], ready[4096];
    size_t floats, tiled;
    double t_backward;   /* the backward's floors (the driven net's) */
} sched;

typedef struct hook_rec {
    cost_pass *ps;
    int *kat;   /* [nparams] kernels recorded when the gradient was reported */
} hook_rec;

static void on_grad(void *user, int p, dath_ctx *ctx) {
    hook_rec *r = user;
    (void)ctx;   /* the recording backend's fork is its parent: one queue */
    r->kat[p] = r->ps->nkernels;
}

/* Rank 0 of 2 whose collectives move nothing: the recording backend never reads its
 * memory, and a world above 1 is what makes the step bucket its gradients. */
static int rec_gather(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx) {
    (void)c; (void)recv; (void)send; (void)count; (void)ctx;
    return 0;
}
static int rec_sum(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    (void)c; (void)buf; (void)count; (void)ctx;
    return 0;
}
static void rec_destroy(dath_comm *c) { free(c); }

static int schedule(const cost_config *cf, const cost_peaks *pk, size_t bucket_bytes, sched *out, char *err,
                    size_t err_len) {
    const dath_backend *be = cost_backend();
    dath_model *m = model_create(cf->variant, cf->K, cf->C, cf->S, err, err_len);
    if (!m) return -1;
    model_init_default(m, 1);
    int B = cf->B, rc = -1;
    dath_ctx ctx;
    if (be->ctx_init(&ctx, net_work_bytes(m, B, 2 * B), cf->precision, err, err_len)) {
        model_free(m);
        return -1;
    }
    dath_net *n = net_create(be, &ctx, m, B, 1, err, err_len);
    dath_comm *c = comm_new(be, 0, 2, rec_gather, rec_sum, rec_destroy, NULL);
    dath_stepper *s = n ? stepper_create(n, c, err, err_len) : NULL;
    float *x = be->alloc((size_t)B * 3 * cf->S * cf->S * sizeof(float));   /* [B,3,S,S] */
    float *lab = be->alloc((size_t)B * cf->C * sizeof(float));              /* [B,C] */
    uint32_t *stepi = be->alloc(sizeof(uint32_t));
    int *kat = calloc((size_t)m->nparams, sizeof *kat);
    cost_pass ps;
    memset(&ps, 0, sizeof ps);
    if (!s || !kat) goto out;
    stepper_set_buckets(s, bucket_bytes);
    step_config cfg;
    step_config_default(&cfg);
    step_losses L;
    for (int i = 0; i < 2; i++)
        if (stepper_run(s, x, lab, B, (uint32_t)(i + 1), &cfg, 1, &L, err, err_len)) goto out;
    const step_bucket *bk;
    const step_event *ev;
    int nev;
    stepper_buckets(s, &bk, &out->nb, &ev, &nev);
    if (out->nb < 1 || out->nb > 4096) {
        snprintf(err, err_len, "%d buckets", out->nb);
        goto out;
    }
    /* the backward alone, the hook counting kernels */
    net_run run = {1, 0, stepi, 0};
    hook_rec hr = {&ps, kat};
    cost_record_begin(&ctx, &ps, "backward", B);
    net_forward(n, x, B, &run);
    int k_bwd = ps.nkernels;
    net_set_grad_hook(n, on_grad, &hr);
    net_backward_head(n, B);
    net_backward_body(n, x, B, &run);
    net_set_grad_hook(n, NULL, NULL);
    if (cost_record_end(&ctx, err, err_len)) goto out;
    double *after = calloc((size_t)ps.nkernels + 1, sizeof *after);   /* floors of kernels [i, end) */
    for (int i = ps.nkernels - 1; i >= 0; i--) after[i] = after[i + 1] + cost_kernel_floor(&ps.kernels[i], pk);
    out->t_backward = after[k_bwd];
    out->floats = m->n;
    out->tiled = 0;
    for (int k = 0; k < out->nb; k++) {
        int kmax = 0;   /* the bucket is ready at its latest gradient: the largest kernel count */
        for (int p = bk[k].p_first; p <= bk[k].p_last; p++)
            if (kat[p] > kmax) kmax = kat[p];
        out->ready[k] = -after[kmax];
        out->bytes[k] = (double)bk[k].count * sizeof(float);
        out->tiled += bk[k].count;
    }
    free(after);
    rc = 0;
out:
    cost_pass_free(&ps);
    free(kat);
    be->free(x);
    be->free(lab);
    be->free(stepi);
    stepper_free(s);
    if (c) c->destroy(c);
    net_free(n);
    be->ctx_free(&ctx);
    model_free(m);
    return rc;
}

/* A ring all-reduce of bytes over N GPUs (NCCL's busbw: t = lat + 2(N−1)/N · bytes / busbw). */
static double allreduce_s(const link *l, int N, double bytes) {
    if (N == 1) return 0;
    return l->lat_us * 1e-6 + 2.0 * (N - 1) / N * bytes / (l->busbw_gbs * 1e9);
}
static double allgather_s(const link *l, int N, double bytes) {
    if (N == 1) return 0;
    return l->lat_us * 1e-6 + (double)(N - 1) / N * bytes / (l->busbw_gbs * 1e9);
}

typedef struct row {
    int N, b, ok;
    double compute, t_bwd, step[NLINKS], serial[NLINKS], exposed[NLINKS], eff[NLINKS], whole[NLINKS];
    int nb;
} row;

static int fails;
static void expect(int cond, const char *what, int N, const char *lk) {
    if (cond) return;
    if (!fails) printf("FAIL --check: %s (N=%d%s%s)\n", what, N, lk ? ", " : "", lk ? lk : "");
    fails++;
}

int main(int argc, char **argv) {
    const char *gpu = NULL, *precision = NULL, *variant = NULL;
    int bits = 0, classes = 0, size = 0, batch = 0, per_gpu = 0, check = 0;
    float bucket_mb = 0;
    opt_spec spec[] = {
        {"gpu", OPT_STR, &gpu, "h200", "the datasheet row for the compute (dath cost --list-gpus)"},
        {"precision", OPT_STR, &precision, "tf32", "fp32, tf32 or bf16: the GEMMs' unit"},
        {"variant", OPT_STR, &variant, "dath", "dath, dath-s, dath-c, dath-n or dath-1"},
        {"bits", OPT_INT, &bits, "64", "hash code length K"},
        {"classes", OPT_INT, &classes, "80", "number of classes C"},
        {"input-size", OPT_INT, &size, "224", "input side S"},
        {"batch", OPT_INT, &batch, "128", "the global batch (--per-gpu: every GPU's)", OPT_POSITIVE},
        {"bucket-mb", OPT_FLOAT, &bucket_mb, "32", "gradient bucket cap in MiB (dath train --bucket-mb; 0: no cap)",
         OPT_NONNEG},
        {"per-gpu", OPT_FLAG, &per_gpu, "0", "weak scaling: --batch images on every GPU"},
        {"check", OPT_FLAG, &check, "0", "verify the numbers are self-consistent (exit 1 if not)"},
        {0}};
    char err[512];
    int rc = opts_parse("bench_scaling", "[--gpu G --precision P --batch B --bucket-mb M] [--per-gpu] [--check]", spec,
                        argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "bench_scaling: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    cost_config cf = {0};
    if (variant_parse(variant, &cf.variant)) {
        fprintf(stderr, "bench_scaling: --variant '%s': unknown\n", variant);
        return 2;
    }
    cf.precision = backend_precision_parse(precision);
    const cost_gpu *g = cost_gpu_find(gpu);
    if (cf.precision < 0 || !g) {
        fprintf(stderr, "bench_scaling: --gpu '%s' --precision '%s': unknown\n", gpu, precision);
        return 2;
    }
    cost_peaks pk;
    if (cost_peaks_for(g, cf.precision, 0, 0, &pk, err, sizeof err)) {
        fprintf(stderr, "bench_scaling: %s\n", err);
        return 2;
    }
    cf.K = bits;
    cf.C = classes;
    cf.S = size;
    size_t bucket_bytes = (size_t)((double)bucket_mb * (1 << 20));
    row rows[MAXN];
    int nr = 0;
    for (int N = 1; N <= MAXN; N++) {
        if (!per_gpu && batch % N) continue;
        row *r = &rows[nr];
        memset(r, 0, sizeof *r);
        r->N = N;
        r->b = per_gpu ? batch : batch / N;
        cf.B = r->b;
        cost_model cm;
        if (cost_build(&cm, &cf, err, sizeof err)) {
            fprintf(stderr, "bench_scaling: the cost model at batch %d: %s\n", r->b, err);
            return 2;
        }
        cost_totals ts, ti;
        cost_pass_totals(&cm.step, &pk, &ts);
        cost_pass_totals(&cm.input, &pk, &ti);
        r->compute = ts.floor + ti.floor;
        cost_free(&cm);
        static sched sc;
        if (schedule(&cf, &pk, bucket_bytes, &sc, err, sizeof err)) {
            fprintf(stderr, "bench_scaling: the bucket schedule at batch %d: %s\n", r->b, err);
            return 2;
        }
        r->nb = sc.nb;
        r->t_bwd = sc.t_backward;
        double gbytes = (double)sc.floats * sizeof(float);
        double small = (double)r->b * N * (cf.K + cf.C) * sizeof(float);   /* h and labels gathered */
        if (check) {
            expect(sc.tiled == sc.floats, "the buckets tile the gradient buffer", N, NULL);
            for (int k = 0; k < sc.nb; k++) expect(sc.ready[k] <= 0 && sc.ready[k] >= -sc.t_backward,
                                                   "every bucket ready within the backward", N, NULL);
            expect(sc.nb < 2 || sc.ready[0] < sc.ready[sc.nb - 1], "the first bucket ready before the last", N, NULL);
            expect(sc.t_backward < r->compute, "the backward is part of the step", N, NULL);
        }
        for (int l = 0; l < NLINKS; l++) {
            const link *lk = &links[l];
            if (lk->nodes == 2 && N % 2) { r->step[l] = NAN; continue; }
            double end = -INFINITY;
            for (int k = 0; k < sc.nb; k++) end = fmax(end, sc.ready[k]) + allreduce_s(lk, N, sc.bytes[k]);
            double extra = allgather_s(lk, N, small) + allreduce_s(lk, N, 4 * sizeof(float));
            r->exposed[l] = N == 1 ? 0 : fmax(0, end);
            r->whole[l] = allreduce_s(lk, N, gbytes);
            r->step[l] = r->compute + r->exposed[l] + extra;
            r->serial[l] = r->compute + r->whole[l] + extra;
        }
        nr++;
    }
    /* efficiency: images a second of N GPUs over N times one GPU's */
    for (int i = 0; i < nr; i++)
        for (int l = 0; l < NLINKS; l++) {
            row *r = &rows[i];
            double ips_n = (double)r->N * r->b / r->step[l], ips_1 = (double)rows[0].b / rows[0].step[0];
            r->eff[l] = isnan(r->step[l]) ? NAN : ips_n / (r->N * ips_1);
        }
    printf("scaling model: %s, %d bits, %d classes, input %d, %s on %s (compute: the cost model's floors), "
           "buckets of %g MiB; %s batch %d\n", variant_name(cf.variant), cf.K, cf.C, cf.S, backend_precisions[cf.precision],
           g->label, (double)bucket_mb, per_gpu ? "per-GPU" : "global", batch);
    printf("%2s %5s %9s %9s %4s", "N", "b/GPU", "compute", "backward", "bkts");
    for (int l = 0; l < NLINKS; l++) printf(" | %-6s %8s %8s %5s", links[l].name, "step", "serial", "eff");
    printf("\n");
    for (int i = 0; i < nr; i++) {
        const row *r = &rows[i];
        printf("%2d %5d %7.2fms %7.2fms %4d", r->N, r->b, r->compute * 1e3, r->t_bwd * 1e3, r->nb);
        for (int l = 0; l < NLINKS; l++) {
            if (isnan(r->step[l])) printf(" | %-6s %8s %8s %5s", "", "-", "-", "-");
            else printf(" | %-6s %6.2fms %6.2fms %4.0f%%", "", r->step[l] * 1e3, r->serial[l] * 1e3, r->eff[l] * 100);
        }
        printf("\n");
    }
    for (int l = 0; l < NLINKS; l++) printf("  %-6s %s, latency %g us a collective\n", links[l].name, links[l].label, links[l].lat_us);
    printf("  step: compute + the buckets' all-reduce not hidden by the backward + h/labels' all-gather and the "
           "losses' sum; serial: one all-reduce of the whole buffer after the backward; eff: images/s of N GPUs "
           "over N × one GPU's\n");
    if (!check) return 0;
    for (int i = 0; i < nr; i++) {
        const row *r = &rows[i];
        for (int l = 0; l < NLINKS; l++) {
            if (isnan(r->step[l])) continue;
            const char *ln = links[l].name;
            expect(r->step[l] <= r->serial[l] + 1e-12, "bucketed step ≤ serial", r->N, ln);
            expect(r->eff[l] > 0 && r->eff[l] <= 1 + 1e-9, "efficiency in (0, 1]", r->N, ln);
            expect(r->exposed[l] >= 0 && r->exposed[l] <= r->whole[l] + 1e-12, "0 ≤ exposed ≤ the whole all-reduce", r->N, ln);
            if (r->N == 1) expect(r->step[l] == r->compute && fabs(r->eff[l] - 1) < 1e-12, "N=1: step = compute, eff 1",
                                  r->N, ln);
            if (bucket_bytes == 0) expect(r->step[l] == r->serial[l] && r->nb == 1, "--bucket-mb 0: one bucket, the serial step",
                                          r->N, ln);
            if (l > 0 && !isnan(r->step[l - 1]))
                expect(r->eff[l] <= r->eff[l - 1] + 1e-12, "a slower link never scales better", r->N, ln);
        }
        if (r->N > 1 && !isnan(r->step[3])) expect(r->eff[3] < r->eff[0], "100 Gb/s below NVLink", r->N, NULL);
    }
    printf("%s: %d row%s, %d inconsistenc%s\n", fails ? "FAIL" : "ok", nr, nr == 1 ? "" : "s", fails, fails == 1 ? "y" : "ies");
    return fails ? 1 : 0;
}
