/* host/cost.c — the cost model (see cost.h): the GPU table, floors, the recording
 * backend whose ops are the CUDA launchers of kernels/<family>.cu written as cost
 * entries, and the drivers that run the real step, input and encode code on it.
 *
 * Layout of this file:
 *   1. GPUs (datasheet table) and floors
 *   2. the trace: what the recording backend appends to, labels for its entries
 *   3. memory and the cuBLAS axpy (host/backend_cuda.c)
 *   4. one section per kernels/<family>.cu file: gemm first (every other section uses
 *      it), then in the order of kernels/: attention, conv, fusion, linear, loss, pool,
 *      rmsprop, transform. Each backend op is the launcher of the same name written as
 *      entries, launch by launch, in its order; a change to a kernel or a launcher is a
 *      change to the function of its name here (and to checks/test_cost.c's tally).
 *   5. the backend table
 *   6. cost_build: the passes, by running stepper_run / feed's transform / encoder_run
 *
 * Every entry counts its FLOPs and bytes by the conventions of cost.h: 4 bytes a float,
 * 8 a double or int64; elements read once, written once; GEMMs A + B (+ C when β ≠ 0)
 * read and C written. The comment above each entry says what it reads and writes. */
#include "cost.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/attention.h"
#include "../kernels/pool.h"
#include "../kernels/rng.h"
#include "../kernels/transform.h"
#include "comm.h"
#include "encoder.h"
#include "net.h"
#include "step.h"

/* ==== 1. GPUs and floors ============================================================== */

/* Dense rates (no 2:4 sparsity: the datasheets' starred figures halved) and memory
 * bandwidth, as NVIDIA's own documents print them. Looked up with the search tool; the
 * stored pages that reproduce each document's table are named after it.
 *   H200 SXM / H200 NVL: "NVIDIA H200 Tensor Core GPU" datasheet — FP32 67 / 60 TFLOPS,
 *     TF32 Tensor Core 989* / 835*, BFLOAT16 Tensor Core 1,979* / 1,671*, GPU memory
 *     bandwidth 4.8 TB/s (* with sparsity).
 *   H100 SXM / H100 PCIe: "NVIDIA H100 Tensor Core GPU" datasheet — FP32 67 / 51,
 *     TF32 989* / 756*, BFLOAT16 1,979* / 1,513*, 3,350 / 2,000 GB/s (the datasheet's
 *     table as archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html reproduces it).
 *   A100: "NVIDIA A100 Tensor Core GPU" datasheet (nvidia-a100-datasheet-us-nvidia-1758950
 *     -r4-web.pdf, cited by glennklockwood.com/garden/processors/A100) — FP32 19.5,
 *     TF32 156 (312*), BFLOAT16 312 (624*); 2,039 GB/s (80 GB SXM), 1,935 GB/s (80 GB
 *     PCIe), 1,555 GB/s (40 GB).
 *   L40S: "NVIDIA L40S" datasheet — FP32 91.6, TF32 183 | 366*, BFLOAT16 362.05 | 733*,
 *     864 GB/s.
 *   GeForce RTX 4090: "NVIDIA Ada GPU Architecture" whitepaper (v2.01), its RTX 4090
 *     table — FP32 82.6, TF32 Tensor 82.6 (165.2*), BF16 Tensor with FP32 accumulate
 *     165.2 (330.4*), 1,008 GB/s. (dath's bf16 GEMMs accumulate in fp32: the 165.2 row.)
 *   GeForce GTX 1080 Ti: NVIDIA's product specifications — 3,584 CUDA cores, boost clock
 *     1,582 MHz (fp32 = 3,584 × 2 × 1.582 GHz = 11.34 TFLOP/s), 11 Gbps GDDR5X on a
 *     352-bit bus = 484 GB/s; no tensor cores.
 *   Tesla V100 SXM2: "NVIDIA Tesla V100 GPU" datasheet — FP32 15.7 TFLOPS, 900 GB/s; its
 *     tensor cores do fp16 only (no tf32, no bf16).
 * Rows whose match strings are more specific come first (cost_gpu_match takes the
 * first row that matches). */
const cost_gpu cost_gpus[] = {
    {"h200-nvl", "NVIDIA H200 NVL", 90, 60.0, 417.5, 835.5, 4800.0, {"H200 NVL"}},
    {"h200", "NVIDIA H200 SXM 141GB", 90, 67.0, 494.5, 989.5, 4800.0, {"H200"}},
    {"h100-pcie", "NVIDIA H100 PCIe 80GB", 90, 51.0, 378.0, 756.5, 2000.0, {"H100 PCIe"}},
    {"h100", "NVIDIA H100 SXM 80GB", 90, 67.0, 494.5, 989.5, 3350.0, {"H100 80GB HBM3", "H100 SXM"}},
    {"a100-40gb", "NVIDIA A100 40GB (SXM or PCIe)", 80, 19.5, 156.0, 312.0, 1555.0,
     {"A100-SXM4-40GB", "A100-PCIE-40GB"}},
    {"a100-pcie", "NVIDIA A100 80GB PCIe", 80, 19.5, 156.0, 312.0, 1935.0, {"A100 80GB PCIe", "A100-PCIE-80GB"}},
    {"a100", "NVIDIA A100 80GB SXM", 80, 19.5, 156.0, 312.0, 2039.0, {"A100"}},
    {"l40s", "NVIDIA L40S", 89, 91.6, 183.0, 362.05, 864.0, {"L40S"}},
    {"rtx4090", "NVIDIA GeForce RTX 4090", 89, 82.6, 82.6, 165.2, 1008.0, {"RTX 4090"}},
    {"v100", "NVIDIA Tesla V100 SXM2", 70, 15.7, 0.0, 0.0, 900.0, {"V100"}},
    {"gtx1080ti", "NVIDIA GeForce GTX 1080 Ti", 61, 11.34, 0.0, 0.0, 484.0, {"1080 Ti"}},
};
const int cost_ngpus = (int)(sizeof cost_gpus / sizeof cost_gpus[0]);

const cost_gpu *cost_gpu_find(const char *name) {
    for (int i = 0; i < cost_ngpus; i++)
        if (!strcmp(cost_gpus[i].name, name)) return &cost_gpus[i];
    return NULL;
}

const cost_gpu *cost_gpu_match(const char *device_name) {
    for (int i = 0; i < cost_ngpus; i++)
        for (int j = 0; j < 3 && cost_gpus[i].match[j]; j++)
            if (strstr(device_name, cost_gpus[i].match[j])) return &cost_gpus[i];
    return NULL;
}

static const char *cost_precision_name(int precision) {
    return precision == DATH_TF32 ? "tf32" : precision == DATH_BF16 ? "bf16" : "fp32";
}

int cost_peaks_for(const cost_gpu *g, int precision, double measured_tflops, double measured_gbs,
                   cost_peaks *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    double gemm = precision == DATH_TF32 ? g->tf32 : precision == DATH_BF16 ? g->bf16 : g->fp32;
    if (precision != DATH_FP32 && (g->sm < 80 || gemm <= 0.0)) {
        snprintf(err, err_len, "%s (sm_%d) has no %s tensor cores; dath's CUDA backend refuses "
                 "--precision %s below compute capability 8.0: use fp32", g->label, g->sm,
                 cost_precision_name(precision), cost_precision_name(precision));
        return -1;
    }
    out->gemm_tflops = gemm;
    out->core_tflops = g->fp32;
    out->gbs = g->gbs;
    const char *gsrc = "datasheet", *bsrc = "datasheet";
    if (measured_tflops > 0.0) {
        out->gemm_tflops = measured_tflops;
        if (precision == DATH_FP32) out->core_tflops = measured_tflops;
        gsrc = "measured";
    }
    if (measured_gbs > 0.0) {
        out->gbs = measured_gbs;
        bsrc = "measured";
    }
    snprintf(out->source, sizeof out->source, "%s: GEMM %.1f TFLOP/s %s (%s), CUDA cores %.1f TFLOP/s, "
             "memory %.0f GB/s (%s)", g->label, out->gemm_tflops, cost_precision_name(precision), gsrc,
             out->core_tflops, out->gbs, bsrc);
    return 0;
}

static double cost_compute_s(double flops, cost_unit u, const cost_peaks *p) {
    double tf = u == COST_UNIT_GEMM ? p->gemm_tflops : p->core_tflops;
    return flops > 0.0 ? flops / (tf * 1e12) : 0.0;
}

double cost_kernel_floor(const cost_kernel *k, const cost_peaks *p) {
    double c = cost_compute_s(k->flops, k->unit, p);
    double m = (k->bytes_read + k->bytes_written) / (p->gbs * 1e9);
    return c > m ? c : m;
}

int cost_kernel_compute_bound(const cost_kernel *k, const cost_peaks *p) {
    return cost_compute_s(k->flops, k->unit, p) > (k->bytes_read + k->bytes_written) / (p->gbs * 1e9);
}

double cost_op_ideal_floor(const cost_op *o, const cost_peaks *p) {
    double c = cost_compute_s(o->gemm_flops, COST_UNIT_GEMM, p) + cost_compute_s(o->core_flops, COST_UNIT_CORE, p);
    double m = o->ideal_bytes / (p->gbs * 1e9);
    return c > m ? c : m;
}

void cost_pass_totals(const cost_pass *ps, const cost_peaks *p, cost_totals *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < ps->nkernels; i++) {
        const cost_kernel *k = &ps->kernels[i];
        t->flops += k->flops;
        if (k->unit == COST_UNIT_GEMM) t->gemm_flops += k->flops;
        t->bytes += k->bytes_read + k->bytes_written;
        t->floor += cost_kernel_floor(k, p);
    }
    for (int i = 0; i < ps->nops; i++) t->ideal += cost_op_ideal_floor(&ps->ops[i], p);
    t->launches = ps->nkernels;
}

double cost_epoch_floor(const cost_model *cm, const cost_peaks *p, int ideal) {
    cost_totals s, in, sl, il;
    cost_pass_totals(&cm->step, p, &s);
    cost_pass_totals(&cm->input, p, &in);
    cost_pass_totals(&cm->step_last, p, &sl);
    cost_pass_totals(&cm->input_last, p, &il);
    if (ideal) return cm->epoch_full * (s.ideal + in.ideal) + sl.ideal + il.ideal;
    return cm->epoch_full * (s.floor + in.floor) + sl.floor + il.floor;
}

const char *cost_phase_name(cost_phase p) {
    static const char *n[] = {"forward", "backward", "update", "input", "encode"};
    return n[p];
}

/* ==== 2. the trace ====================================================================== */

/* Families: the groups of the summaries. */
static const char F_IM2COL[] = "im2col", F_CONV_GEMM[] = "conv GEMM", F_COL2IM[] = "col2im",
                  F_STAGE[] = "conv staging", F_BIAS[] = "bias (+ReLU) pass", F_MASK[] = "ReLU mask pass",
                  F_BGRAD[] = "bias-gradient reduction", F_FC_GEMM[] = "fc GEMM",
                  F_CONV_IGEMM[] = "conv implicit GEMM", F_CONV_SPLIT[] = "conv K-split reduction",
                  F_MASK_BGRAD[] = "ReLU mask + bias gradient",
                  F_ATT_GEMM[] = "attention GEMM", F_SOFTMAX[] = "softmax",
                  F_ATT_EW[] = "attention elementwise", F_POOL[] = "pooling", F_DROPOUT[] = "dropout",
                  F_FUSION[] = "fusion", F_LOSS[] = "tanh + losses", F_ZERO[] = "gradient zeroing",
                  F_COPY[] = "copies and axpy", F_RMSPROP[] = "RMSProp", F_TRANSFORM[] = "input transform";

typedef struct cost_label {
    const void *p;
    char s[64];
} cost_label;

typedef struct cost_trace {
    const dath_model *m;
    const float *theta, *grad;   /* the net's flat buffers, to name parameter pointers */
    cost_pass *pass;             /* recording into; NULL: not recording */
    int kcap, ocap;
    cost_phase phase;            /* of the op being recorded */
    int forced;                  /* >= 0: every entry of the pass gets this phase */
    char stream[16];             /* the stream the last named op belongs to */
    cost_op cur;                 /* the op being recorded */
    cost_label *labels;
    int nlabels, lcap;
    char err[200];
} cost_trace;

#define TRACE(ctx) ((cost_trace *)(ctx)->stream)

static void trace_fail(cost_trace *t, const char *fmt, ...) {
    if (t->err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
}

static void label_set(cost_trace *t, const void *p, const char *s) {
    if (!p) return;
    for (int i = 0; i < t->nlabels; i++)
        if (t->labels[i].p == p) { snprintf(t->labels[i].s, sizeof t->labels[i].s, "%s", s); return; }
    if (t->nlabels == t->lcap) {
        t->lcap = t->lcap ? 2 * t->lcap : 64;
        t->labels = realloc(t->labels, (size_t)t->lcap * sizeof *t->labels);
    }
    t->labels[t->nlabels].p = p;
    snprintf(t->labels[t->nlabels].s, sizeof t->labels[t->nlabels].s, "%s", s);
    t->nlabels++;
}

static const char *label_get(const cost_trace *t, const void *p) {
    for (int i = 0; i < t->nlabels; i++)
        if (t->labels[i].p == p) return t->labels[i].s;
    return NULL;
}

/* The layer a parameter (or parameter-gradient) pointer belongs to, e.g. "pam.conv2"
 * for pam.features.3.weight, "trunk.pam" for trunk.pam.query.weight; NULL when p is
 * not the start of a parameter tensor. Also notes the stream it is in. */
static const char *param_layer(cost_trace *t, const float *p, char *buf, size_t len) {
    if (!t->m || !p) return NULL;
    const float *bases[2] = {t->theta, t->grad};
    for (int b = 0; b < 2; b++) {
        if (!bases[b] || p < bases[b] || p >= bases[b] + t->m->n) continue;
        size_t off = (size_t)(p - bases[b]);
        for (int i = 0; i < t->m->nparams; i++) {
            if (t->m->params[i].offset != off) continue;
            char s[64];
            snprintf(s, sizeof s, "%s", t->m->params[i].name);
            static const char *tails[] = {".weight", ".bias", ".gamma", ".query", ".key", ".value"};
            for (int pass = 0; pass < 2; pass++)
                for (size_t k = 0; k < sizeof tails / sizeof tails[0]; k++) {
                    size_t ls = strlen(s), lt = strlen(tails[k]);
                    if (ls > lt && !strcmp(s + ls - lt, tails[k])) s[ls - lt] = 0;
                }
            char *f = strstr(s, "features.");
            if (f) {   /* torchvision's indices 0, 3, 6, 8, 10 are conv1..conv5 */
                int idx = atoi(f + 9);
                snprintf(f, sizeof s - (size_t)(f - s), "conv%d", idx == 0 ? 1 : idx == 3 ? 2 : idx == 6 ? 3 : idx == 8 ? 4 : 5);
            }
            char *c = strstr(s, "classifier.");
            if (c) snprintf(c, sizeof s - (size_t)(c - s), "fc%d", atoi(c + 11) == 1 ? 6 : 7);
            for (int st = 0; st < t->m->nstreams; st++) {
                size_t lp = strlen(t->m->streams[st].prefix);
                if (!strncmp(s, t->m->streams[st].prefix, lp) && s[lp] == '.')
                    snprintf(t->stream, sizeof t->stream, "%s", t->m->streams[st].prefix);
            }
            snprintf(buf, len, "%s", s);
            return buf;
        }
    }
    return NULL;
}

/* Starts the entries of one backend op. phase < 0 keeps the current phase (memory ops
 * take the phase of the op around them). */
static int op_begin(cost_trace *t, const char *op, const char *layer, int phase) {
    if (!t->pass) return 0;
    if (phase >= 0) t->phase = (cost_phase)phase;
    memset(&t->cur, 0, sizeof t->cur);
    size_t n = strlen(layer);   /* a longer name is cut to the field */
    if (n >= sizeof t->cur.layer) n = sizeof t->cur.layer - 1;
    memcpy(t->cur.layer, layer, n);
    t->cur.op = op;
    t->cur.phase = t->forced >= 0 ? (cost_phase)t->forced : t->phase;
    t->cur.k0 = t->pass->nkernels;
    return 1;
}

/* Closes the op: its FLOPs by unit from its kernels, and its ideal bytes. */
static void op_end(cost_trace *t, double ideal_bytes) {
    cost_pass *ps = t->pass;
    if (!ps) return;
    cost_op *o = &t->cur;
    o->nk = ps->nkernels - o->k0;
    for (int i = o->k0; i < ps->nkernels; i++) {
        if (ps->kernels[i].unit == COST_UNIT_GEMM) o->gemm_flops += ps->kernels[i].flops;
        else o->core_flops += ps->kernels[i].flops;
    }
    o->ideal_bytes = ideal_bytes;
    if (ps->nops == t->ocap) {
        t->ocap = t->ocap ? 2 * t->ocap : 64;
        ps->ops = realloc(ps->ops, (size_t)t->ocap * sizeof *ps->ops);
    }
    ps->ops[ps->nops++] = *o;
}

/* One launch of the current op. rd, wr: bytes read, written. */
static void emit(cost_trace *t, const char *kernel, const char *family, cost_unit unit, double flops,
                 double rd, double wr, const char *fmt, ...) {
    cost_pass *ps = t->pass;
    if (!ps) return;
    if (ps->nkernels == t->kcap) {
        t->kcap = t->kcap ? 2 * t->kcap : 256;
        ps->kernels = realloc(ps->kernels, (size_t)t->kcap * sizeof *ps->kernels);
    }
    cost_kernel *k = &ps->kernels[ps->nkernels++];
    memset(k, 0, sizeof *k);
    snprintf(k->layer, sizeof k->layer, "%s", t->cur.layer);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->shape, sizeof k->shape, fmt, ap);
    va_end(ap);
    k->kernel = kernel;
    k->family = family;
    k->phase = t->cur.phase;
    k->unit = unit;
    k->flops = flops;
    k->bytes_read = rd;
    k->bytes_written = wr;
}

/* grid_1d of kernels/cuda_common.cuh: blocks of 256 for n elements, capped. */
static double cost_grid_1d(double n) {
    double g = ceil(n / 256.0);
    if (g > 65535.0 * 8) g = 65535.0 * 8;
    return g < 1.0 ? 1.0 : g;
}

/* ==== 3. memory and axpy (host/backend_cuda.c) ========================================= */

/* Fake device addresses: never dereferenced; 256-byte aligned, a gap between buffers. */
static uintptr_t cost_next_addr = (uintptr_t)1 << 44;

static void *cost_alloc(size_t bytes) {
    uintptr_t p = cost_next_addr;
    cost_next_addr += ((bytes + 255) & ~(uintptr_t)255) + 256;
    return (void *)p;
}
static void cost_free_mem(void *p) { (void)p; }
static void *cost_host_alloc(size_t bytes) { return cost_alloc(bytes); }
static void cost_host_free(void *p) { (void)p; }

/* cudaMemsetAsync: writes bytes. */
static void cost_zero(void *p, size_t bytes, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!bytes) return;
    const char *l = label_get(t, p);
    char layer[80];
    snprintf(layer, sizeof layer, "zero %s", l ? l : "activation gradients");
    if (!op_begin(t, "zero", layer, -1)) return;
    emit(t, "cudaMemsetAsync", F_ZERO, COST_UNIT_CORE, 0, 0, (double)bytes, "%.0f bytes", (double)bytes);
    op_end(t, 0);   /* ideal: the first writer of each gradient overwrites it */
}

static void cost_upload(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (t->pass) t->pass->host_up += (double)bytes;
}

static void cost_download(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    memset(dst, 0, bytes);   /* losses read back as 0: finite, the step goes on */
    if (t->pass) t->pass->host_down += (double)bytes;
}

/* cudaMemcpyAsync device to device: reads and writes bytes (nothing when dst == src). */
static void cost_copy(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!bytes || dst == src) return;
    const char *l = label_get(t, src);
    char layer[80];
    snprintf(layer, sizeof layer, "copy of %s", l ? l : "a buffer");
    if (!op_begin(t, "copy", layer, -1)) return;
    emit(t, "cudaMemcpyAsync", F_COPY, COST_UNIT_CORE, 0, (double)bytes, (double)bytes, "%.0f bytes", (double)bytes);
    op_end(t, 0);   /* ideal: the reader reads the source itself */
    if (!label_get(t, dst)) label_set(t, dst, l ? l : "a copy");
}

static void cost_sync(dath_ctx *ctx) { (void)ctx; }
static int cost_mem_info(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = (size_t)1 << 40;
    return 0;
}
static void cost_upload_async(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    cost_upload(dst, src, bytes, ctx);
}
static char cost_fence_obj;
static void *cost_fence_create(void) { return &cost_fence_obj; }
static void cost_fence_free(void *f) { (void)f; }
static void cost_fence_record(void *f, int q, dath_ctx *ctx) { (void)f; (void)q; (void)ctx; }
static void cost_fence_wait(void *f, int q, dath_ctx *ctx) { (void)f; (void)q; (void)ctx; }
static void cost_fence_sync(void *f) { (void)f; }
static int cost_device_count(void) { return 1; }
static int cost_set_device(int index, char *err, size_t err_len) {
    if (index == 0) return 0;
    snprintf(err, err_len, "the cost backend has one device");
    return -1;
}
static int cost_comm_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    snprintf(err, err_len, "the cost model is for one rank");
    return -1;
}
static int cost_comm_join(const dath_backend *be, const struct dath_dist *d, dath_comm **comm, char *err, size_t err_len) {
    snprintf(err, err_len, "the cost model is for one rank");
    return -1;
}

/* cuda_axpy: cublasSaxpy in pieces of at most INT_MAX elements; each reads x and y and
 * writes y, 2 FLOPs an element. */
static void cost_axpy(float *y, const float *x, float a, size_t n, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const char *l = label_get(t, x);
    char layer[80];
    snprintf(layer, sizeof layer, "%s (y += x)", l ? l : "axpy");
    if (!n || !op_begin(t, "axpy", layer, -1)) return;
    for (size_t left = n; left;) {
        double m = left > (size_t)INT_MAX ? (double)INT_MAX : (double)left;
        emit(t, "cublasSaxpy", F_COPY, COST_UNIT_CORE, 2 * m, 8 * m, 4 * m, "n %.0f", m);
        left -= (size_t)m;
    }
    op_end(t, 12.0 * (double)n);
}

/* ==== 4. the kernels, one section per kernels/<family>.cu ====================================== */

/* ---- kernels/gemm.cu (used by every section below; listed first for them) ------------ */

/* gemm_rm: one cublasGemmEx, C [M,N] = op(A) [M,K] · op(B) [K,N] (+ C when beta): reads
 * A and B, and C when beta ≠ 0; writes C. Nothing when M or N is 0. */
static void cost_gemm_rm(cost_trace *t, const char *family, int ta, int tb, int M, int N, int K, int beta) {
    if (M <= 0 || N <= 0) return;
    double m = M, n = N, k = K;
    emit(t, "cublasGemmEx", family, COST_UNIT_GEMM, 2 * m * n * k, 4 * (m * k + k * n + (beta ? m * n : 0)),
         4 * m * n, "%d×%d×%d%s%s%s", M, N, K, ta ? " Aᵀ" : "", tb ? " Bᵀ" : "", beta ? " β=1" : "");
}

/* gemm_rm_bf16: bf16 A and B (2 bytes an element), fp32 C, β = 0. */
static void cost_gemm_rm_bf16(cost_trace *t, const char *family, int ta, int tb, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    double m = M, n = N, k = K;
    emit(t, "cublasGemmEx", family, COST_UNIT_GEMM, 2 * m * n * k, 2 * (m * k + k * n), 4 * m * n,
         "%d×%d×%d%s%s bf16", M, N, K, ta ? " Aᵀ" : "", tb ? " Bᵀ" : "");
}

/* gemm_rm_batched: one cublasGemmStridedBatchedEx of `batch` products, each counted as
 * gemm_rm counts it (a stride-0 operand is read by every product). */
static void cost_gemm_batched(cost_trace *t, const char *family, int ta, int tb, int M, int N, int K, int beta,
                              int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    double m = M, n = N, k = K, b = batch;
    emit(t, "cublasGemmStridedBatchedEx", family, COST_UNIT_GEMM, 2 * m * n * k * b,
         4 * b * (m * k + k * n + (beta ? m * n : 0)), 4 * b * m * n, "%d×%d×%d ×%d%s%s%s", M, N, K, batch,
         ta ? " Aᵀ" : "", tb ? " Bᵀ" : "", beta ? " β=1" : "");
}

/* gemm_rm_batched_bf16: bf16 A and B, C fp32 or (c16) bf16 (2 bytes an element). */
static void cost_gemm_batched_bf16(cost_trace *t, const char *family, int ta, int tb, int M, int N, int K, int beta,
                                   int batch, int c16) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    double m = M, n = N, k = K, b = batch, ec = c16 ? 2 : 4;
    emit(t, "cublasGemmStridedBatchedEx", family, COST_UNIT_GEMM, 2 * m * n * k * b,
         b * (2 * (m * k + k * n) + (beta ? ec * m * n : 0)), ec * b * m * n, "%d×%d×%d ×%d%s%s%s bf16%s", M, N, K,
         batch, ta ? " Aᵀ" : "", tb ? " Bᵀ" : "", beta ? " β=1" : "", c16 ? ", C bf16" : "");
}

/* ---- kernels/attention.cu ------------------------------------------------------------- */

static void conv_forward_implicit(const conv2d_shape *s, int nw, dath_ctx *ctx);

/* PAM's 1×1 convolution y [B, Co, N] = w·x + b on the implicit convolution kernel
 * (kernels/attention.cu's attn_project: k = 1 on a 1 × N image, the bias in the epilogue,
 * y stored as out_store), counted as conv2d_forward counts it; with --conv im2col and an
 * fp32 y the cuBLAS GEMM and its bias pass. */
static void attn_project(int B, int C, int Co, int N, int out_store, dath_ctx *ctx) {
    if (Co <= 0) return;
    if (ctx->conv_algo == DATH_CONV_IM2COL && out_store == DATH_STORE_F32) {
        /* the cuBLAS GEMM (the weights with stride 0), then attn_bias_kernel: y += b (reads y
         * and b, writes y; one add) */
        const double yn = (double)B * Co * N;
        cost_gemm_batched(TRACE(ctx), F_ATT_GEMM, 0, 0, Co, N, C, 0, B);
        emit(TRACE(ctx), "attn_bias_kernel", F_BIAS, COST_UNIT_CORE, yn, 4 * (yn + Co), 4 * yn, "%d×%d×%d", B, Co, N);
        return;
    }
    conv2d_shape s = conv2d_make_shape(B, C, 1, N, Co, 1, 1, 0);
    s.out_store = out_store;
    dath_ctx c = *ctx;
    c.conv_algo = DATH_CONV_IMPLICIT;
    conv_forward_implicit(&s, 1, &c);
}

/* attn_align / attn_chunk_images: images per backward chunk after the dγ partials. */
static double attn_align(double n) { return ceil(n / ATTN_ALIGN) * ATTN_ALIGN; }

static int attn_chunk(cost_trace *t, const dath_ctx *ctx, double per_image, int nbuf, int B, const char *who) {
    double reserve = attn_align(ATTN_PARTIALS * 2) + nbuf * (double)ATTN_ALIGN;   /* the dγ partials, the alignment */
    double have = ctx->work ? (double)(ctx->work_bytes / sizeof(float)) : 0;
    double nb = have > reserve ? floor((have - reserve) / per_image) : 0;
    if (nb < 1) {
        trace_fail(t, "%s: the scratch holds %zu bytes, less than one image needs (the CUDA launcher aborts)",
                   who, ctx->work_bytes);
        return B;
    }
    return nb > B ? B : (int)nb;
}

/* attn_softmax_kernel over R rows of L: each row read and written once (a warp holds it);
 * per element 6 FLOPs (sign·v; sign·v − m, exp, Σ; ×1/Σ), per row one division. */
static void attn_softmax(cost_trace *t, double R, double L) {
    emit(t, "attn_softmax_kernel", F_SOFTMAX, COST_UNIT_CORE, 6 * R * L + R, 4 * R * L, 4 * R * L,
         "%.0f rows × %.0f", R, L);
}

/* attn_softmax_backward_kernel: reads g and a, writes g; per element 5 FLOPs
 * (a·g and its sum; g − dot, a·(…), sign·(…)). */
static void attn_softmax_backward(cost_trace *t, double R, double L) {
    emit(t, "attn_softmax_backward_kernel", F_SOFTMAX, COST_UNIT_CORE, 5 * R * L, 8 * R * L, 4 * R * L,
         "%.0f rows × %.0f", R, L);
}

/* attn_residual_kernel: out = γ·o + x: reads o, x and γ, writes out; 2 FLOPs. */
static void attn_residual(cost_trace *t, double n) {
    emit(t, "attn_residual_kernel", F_ATT_EW, COST_UNIT_CORE, 2 * n, 8 * n + 4, 4 * n, "n %.0f", n);
}

/* attn_residual_backward: dx += dout and dγ's partials over G blocks (reads dout, o, dx;
 * writes dx and G doubles; 3 FLOPs an element: dout·o, its sum, dx + dout), then
 * attn_sum_partials_kernel (reads the G partials, writes dγ; G adds). */
/* attn_residual_backward_kernel: dx = dout (add: += dout, reading dx), the dγ partials
 * Σ dout·o (reads dout, o; a multiply and an add, + 1 with add) */
static void attn_residual_backward(cost_trace *t, double n, int add) {
    if (n == 0) return;
    double G = cost_grid_1d(n);
    if (G > ATTN_PARTIALS) G = ATTN_PARTIALS;
    emit(t, "attn_residual_backward_kernel", F_ATT_EW, COST_UNIT_CORE, (2 + add) * n, (8 + 4 * add) * n,
         4 * n + 8 * G, "n %.0f, %.0f blocks%s", n, G, add ? ", dx +=" : "");
    emit(t, "attn_sum_partials_kernel", F_ATT_EW, COST_UNIT_CORE, G, 8 * G, 4, "%.0f partials", G);
}

/* The bf16 storage's kernels (kernels/attention.cu's *16), as their fp32 twins above but
 * with the bf16 tensors at 2 bytes: softmax16 reads e (fp32) and writes a; its backward
 * reads da (fp32) and a, writes de; residual16 reads o (bf16) and x; its backward reads o
 * (bf16); scale16 writes bf16; transpose16 reads fp32 x and writes bf16; narrow16 reads
 * fp32 and writes bf16; bias16 reads the fp32 product and b, writes bf16. */
static void attn_softmax16(cost_trace *t, double R, double L) {
    emit(t, "attn_softmax16_kernel", F_SOFTMAX, COST_UNIT_CORE, 6 * R * L + R, 4 * R * L, 2 * R * L,
         "%.0f rows × %.0f, a bf16", R, L);
}
static void attn_softmax_backward16(cost_trace *t, double R, double L) {
    emit(t, "attn_softmax_backward16_kernel", F_SOFTMAX, COST_UNIT_CORE, 5 * R * L, 6 * R * L, 2 * R * L,
         "%.0f rows × %.0f, de bf16", R, L);
}
static void attn_residual16(cost_trace *t, double n) {
    emit(t, "attn_residual16_kernel", F_ATT_EW, COST_UNIT_CORE, 2 * n, 6 * n + 4, 4 * n, "n %.0f, o bf16", n);
}
static void attn_residual_backward16(cost_trace *t, double n, int add) {
    if (n == 0) return;
    double G = cost_grid_1d(n);
    if (G > ATTN_PARTIALS) G = ATTN_PARTIALS;
    emit(t, "attn_residual_backward16_kernel", F_ATT_EW, COST_UNIT_CORE, (2 + add) * n, (6 + 4 * add) * n,
         4 * n + 8 * G, "n %.0f, %.0f blocks%s, o bf16", n, G, add ? ", dx +=" : "");
    emit(t, "attn_sum_partials_kernel", F_ATT_EW, COST_UNIT_CORE, G, 8 * G, 4, "%.0f partials", G);
}

static void cost_pam_forward16(const char *layer, int B, int C, int Cq, int N, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const double cn = (double)C * N, qn = (double)Cq * N, nn = (double)N * N;
    attn_project(B, C, Cq, N, DATH_STORE_BF16, ctx);   /* q, k, v = bf16(w·x + b) */
    attn_project(B, C, Cq, N, DATH_STORE_BF16, ctx);
    attn_project(B, C, C, N, DATH_STORE_BF16, ctx);
    const int chunk = attn_chunk(t, ctx, ATTN_BF16_PAM_FWD(C, Cq, N), 1, B, "pam_forward_cuda");
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 1, 0, N, N, Cq, 0, nb, 0);   /* e = qᵀk, fp32 */
        attn_softmax16(t, (double)nb * N, N);
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 1, C, N, N, 0, nb, 1);    /* o = bf16(v·aᵀ) */
        attn_residual16(t, nb * cn);
    }
    /* ideal: reads x, the six 1×1-conv tensors, γ; writes out; q, k, v, a, o in bf16 */
    const double b = B;
    op_end(t, 4 * (b * cn + 2.0 * Cq * C + 2.0 * Cq + (double)C * C + C + 1 + b * cn) + 2 * b * (2 * cn + 2 * qn + nn));
    (void)layer;
}

static void cost_pam_forward(float *out, void *q, void *k, void *v, void *a, void *o, const float *x,
                             const float *wq, const float *bq, const float *wk, const float *bk,
                             const float *wv, const float *bv, const float *gamma, int B, int C, int Cq, int N,
                             const attn_store *st, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    if (!param_layer(t, wq, layer, sizeof layer)) snprintf(layer, sizeof layer, "pam");
    if (B <= 0 || C <= 0 || N <= 0 || !op_begin(t, "pam_forward", layer, COST_FORWARD)) return;
    if (st) {
        cost_pam_forward16(layer, B, C, Cq, N, ctx);
        label_set(t, out, layer);
        return;
    }
    const double b = B, cn = (double)C * N, qn = (double)Cq * N, nn = (double)N * N;
    /* q, k [B,Cq,N] = wq·x + bq, wk·x + bk; v [B,C,N] = wv·x + bv: the implicit kernel */
    attn_project(B, C, Cq, N, DATH_STORE_F32, ctx);
    attn_project(B, C, Cq, N, DATH_STORE_F32, ctx);
    attn_project(B, C, C, N, DATH_STORE_F32, ctx);
    cost_gemm_batched(t, F_ATT_GEMM, 1, 0, N, N, Cq, 0, B);   /* e = qᵀk */
    attn_softmax(t, b * N, N);
    cost_gemm_batched(t, F_ATT_GEMM, 0, 1, C, N, N, 0, B);    /* o = v·aᵀ */
    attn_residual(t, b * cn);
    /* ideal: reads x, the six 1×1-conv tensors, γ; writes out, q, k, v, a, o */
    op_end(t, 4 * (b * cn + 2.0 * Cq * C + 2.0 * Cq + (double)C * C + C + 1 + b * (3 * cn + 2 * qn + nn)));
    label_set(t, out, layer);
}

/* The R rows' sums of the PAM backward (attn_row_sum_kernel, attention.h's slices), rows
 * of es bytes an element. */
static void attn_row_sums(cost_trace *t, int R, double ld, int add, double es) {
    if (R <= 0) return;
    const int S = attn_row_sum_slices(R, (long long)ld);
    if (S == 1)
        emit(t, "attn_row_sum_kernel", F_BGRAD, COST_UNIT_CORE, R * (ld + add), es * R * ld + 4.0 * add * R, 4.0 * R,
             "%d rows × %.0f%s", R, ld, es == 2 ? ", bf16" : "");
    else {
        emit(t, "attn_row_sum_kernel", F_BGRAD, COST_UNIT_CORE, R * ld, es * R * ld, 8.0 * R * S,
             "%d rows × %.0f, %d slices%s", R, ld, S, es == 2 ? ", bf16" : "");
        emit(t, "attn_row_sum_finish_kernel", F_BGRAD, COST_UNIT_CORE, (double)R * (S - 1 + add),
             8.0 * R * S + 4.0 * add * R, 4.0 * R, "%d rows × %d slices", R, S);
    }
}

static void cost_pam_backward16(int B, int C, int Cq, int N, int add, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const double cn = (double)C * N, qn = (double)Cq * N, nn = (double)N * N;
    const int chunk = attn_chunk(t, ctx, ATTN_BF16_PAM_BWD(C, Cq, N), 7, B, "pam_backward_cuda");
    attn_residual_backward16(t, (double)B * cn, add);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const double ld = (double)nb * N;
        emit(t, "attn_scale16_kernel", F_ATT_EW, COST_UNIT_CORE, nb * cn, 4 * (nb * cn + 1), 2 * nb * cn,
             "n %.0f, bf16", nb * cn);
        emit(t, "attn_transpose16_kernel", F_ATT_EW, COST_UNIT_CORE, 0, 4 * nb * cn, 2 * nb * cn, "%d×%d×%d, bf16", nb,
             C, N);
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 0, C, N, N, 0, nb, 1);    /* dv = bf16(gd·a) */
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 1, 0, N, N, C, 0, nb, 0);    /* da = gdᵀ·v */
        attn_softmax_backward16(t, (double)nb * N, N);
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 1, Cq, N, N, 0, nb, 1);   /* dq = bf16(k·deᵀ) */
        cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 0, Cq, N, N, 0, nb, 1);   /* dk = bf16(q·de) */
        const int Co[3] = {Cq, Cq, C}, acc = b0 > 0;
        int R = 0;
        for (int c = 0; c < 3; c++) {
            if (Co[c] <= 0) continue;
            R += Co[c];
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 1, Co[c], C, (int)ld, acc, 1, 0);   /* dw (+)= dyT·xTᵀ */
        }
        attn_row_sums(t, R, ld, acc, 2);
        for (int c = 0; c < 3; c++)
            if (Co[c] > 0) cost_gemm_batched_bf16(t, F_ATT_GEMM, 1, 0, C, N, Co[c], 1, nb, 0);   /* dx += w16ᵀ·dy */
    }
    /* ideal: reads dout, x (fp32); q, k, v, a, o (bf16); the weights' bf16 copies, γ; writes
     * dx, the 1×1-conv gradients and dγ */
    const double bb = B, w = 2.0 * Cq * C + (double)C * C;
    op_end(t, 4 * (2 * bb * cn) + 2 * bb * (2 * cn + 2 * qn + nn) + 2 * w + 4 + 4 * (bb * cn + w + 2.0 * Cq + C + 1));
}

static void cost_pam_backward(float *dx, float *dwq, float *dbq, float *dwk, float *dbk, float *dwv, float *dbv,
                              float *dgamma, const float *dout, const float *x, const void *q, const void *k,
                              const void *v, const void *a, const void *o, const float *wq, const float *wk,
                              const float *wv, const float *gamma, int B, int C, int Cq, int N, int add,
                              const attn_store *st, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    if (!param_layer(t, wq, layer, sizeof layer)) snprintf(layer, sizeof layer, "pam");
    if (B <= 0 || C <= 0 || N <= 0 || !op_begin(t, "pam_backward", layer, COST_BACKWARD)) return;
    if (st) {
        cost_pam_backward16(B, C, Cq, N, add, ctx);
        return;
    }
    const double cn = (double)C * N, qn = (double)Cq * N, nn = (double)N * N;
    const int chunk = attn_chunk(t, ctx, 3 * cn + 2 * qn + nn, 6, B, "pam_backward_cuda");
    attn_residual_backward(t, (double)B * cn, add);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const double ld = (double)nb * N;
        /* attn_scale_kernel: gd = γ·dout (reads dout, γ; writes gd; one multiply) */
        emit(t, "attn_scale_kernel", F_ATT_EW, COST_UNIT_CORE, nb * cn, 4 * (nb * cn + 1), 4 * nb * cn, "n %.0f", nb * cn);
        /* attn_transpose_kernel: xT [C, nb·N] ← x (reads and writes nb·C·N) */
        emit(t, "attn_transpose_kernel", F_ATT_EW, COST_UNIT_CORE, 0, 4 * nb * cn, 4 * nb * cn, "%d×%d×%d", nb, C, N);
        cost_gemm_batched(t, F_ATT_GEMM, 0, 0, C, N, N, 0, nb);    /* dv = gd·a */
        cost_gemm_batched(t, F_ATT_GEMM, 1, 0, N, N, C, 0, nb);    /* da = gdᵀ·v */
        attn_softmax_backward(t, (double)nb * N, N);
        cost_gemm_batched(t, F_ATT_GEMM, 0, 1, Cq, N, N, 0, nb);   /* dq = k·deᵀ */
        cost_gemm_batched(t, F_ATT_GEMM, 0, 0, Cq, N, N, 0, nb);   /* dk = q·de */
        const int Co[3] = {Cq, Cq, C}, add = b0 > 0;   /* the first chunk writes dw and db, later ones add */
        int R = 0;
        for (int c = 0; c < 3; c++) {
            if (Co[c] <= 0) continue;
            R += Co[c];
            cost_gemm_rm(t, F_ATT_GEMM, 0, 1, Co[c], C, (int)ld, add);   /* dw (+)= dyT·xTᵀ */
        }
        if (R > 0) {
            /* attn_row_sum_kernel: db (+)= row sums of the R rows of dqT, dkT, dvT [Co, ld]
             * in S slices a row (attention.h); S = 1: reads db when it adds, writes db;
             * S > 1: writes R·S double partials that attn_row_sum_finish_kernel adds up
             * (S − 1 adds a row, + 1 when it adds) */
            const int S = attn_row_sum_slices(R, (long long)ld);
            if (S == 1)
                emit(t, "attn_row_sum_kernel", F_BGRAD, COST_UNIT_CORE, R * (ld + add), 4 * (R * ld + add * R), 4.0 * R,
                     "%d rows × %.0f", R, ld);
            else {
                emit(t, "attn_row_sum_kernel", F_BGRAD, COST_UNIT_CORE, R * ld, 4 * R * ld, 8.0 * R * S,
                     "%d rows × %.0f, %d slices", R, ld, S);
                emit(t, "attn_row_sum_finish_kernel", F_BGRAD, COST_UNIT_CORE, (double)R * (S - 1 + add),
                     8.0 * R * S + 4.0 * add * R, 4.0 * R, "%d rows × %d slices", R, S);
            }
        }
        for (int c = 0; c < 3; c++)
            if (Co[c] > 0) cost_gemm_batched(t, F_ATT_GEMM, 1, 0, C, N, Co[c], 1, nb);   /* dx += wᵀ·dy */
    }
    /* ideal: reads dout, x, q, k, v, a, o, wq, wk, wv, γ; writes dx, the 1×1-conv
     * gradients and dγ */
    const double bb = B, w = 2.0 * Cq * C + (double)C * C;
    op_end(t, 4 * (bb * (4 * cn + 2 * qn + nn) + w + 1 + bb * cn + w + 2.0 * Cq + C + 1));
}

static void cost_cam_forward(float *out, void *a, void *o, void *x16, const float *x, const float *gamma, int B, int C,
                             int N, const attn_store *st, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    if (!param_layer(t, gamma, layer, sizeof layer)) snprintf(layer, sizeof layer, "cam");
    if (B <= 0 || C <= 0 || !op_begin(t, "cam_forward", layer, COST_FORWARD)) return;
    const double b = B, cn = (double)C * N, cc = (double)C * C;
    if (st) {   /* x16 = bf16(x), then per chunk e (fp32), a, o (bf16), out */
        emit(t, "attn_narrow16_kernel", F_ATT_EW, COST_UNIT_CORE, 0, 4 * b * cn, 2 * b * cn, "n %.0f, bf16", b * cn);
        const int chunk = attn_chunk(t, ctx, ATTN_BF16_CAM_FWD(C, N), 1, B, "cam_forward_cuda");
        for (int b0 = 0; b0 < B; b0 += chunk) {
            const int nb = B - b0 < chunk ? B - b0 : chunk;
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 1, C, C, N, 0, nb, 0);   /* e = x16·x16ᵀ */
            attn_softmax16(t, (double)nb * C, C);
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 0, C, N, C, 0, nb, 1);   /* o = bf16(a·x16) */
            attn_residual16(t, nb * cn);
        }
        op_end(t, 4 * (b * cn + 1 + b * cn) + 2 * b * (2 * cn + cc));   /* reads x, γ; writes out; x16, a, o bf16 */
        label_set(t, out, layer);
        return;
    }
    cost_gemm_batched(t, F_ATT_GEMM, 0, 1, C, C, N, 0, B);   /* e = x·xᵀ */
    attn_softmax(t, b * C, C);
    cost_gemm_batched(t, F_ATT_GEMM, 0, 0, C, N, C, 0, B);   /* o = a·x */
    attn_residual(t, b * cn);
    op_end(t, 4 * (b * cn + 1 + b * (2 * cn + cc)));   /* reads x, γ; writes out, a, o */
    label_set(t, out, layer);
}

static void cost_cam_backward(float *dx, float *dgamma, const float *dout, const float *x, const void *x16,
                              const void *a, const void *o, const float *gamma, int B, int C, int N, int add,
                              const attn_store *st, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    if (!param_layer(t, gamma, layer, sizeof layer)) snprintf(layer, sizeof layer, "cam");
    if (B <= 0 || C <= 0 || !op_begin(t, "cam_backward", layer, COST_BACKWARD)) return;
    const double cn = (double)C * N, cc = (double)C * C;
    if (st) {
        const int chunk = attn_chunk(t, ctx, ATTN_BF16_CAM_BWD(C, N), 3, B, "cam_backward_cuda");
        attn_residual_backward16(t, (double)B * cn, add);
        for (int b0 = 0; b0 < B; b0 += chunk) {
            const int nb = B - b0 < chunk ? B - b0 : chunk;
            emit(t, "attn_scale16_kernel", F_ATT_EW, COST_UNIT_CORE, nb * cn, 4 * (nb * cn + 1), 2 * nb * cn,
                 "n %.0f, bf16", nb * cn);
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 1, C, C, N, 0, nb, 0);   /* da = gd·x16ᵀ */
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 1, 0, C, N, C, 1, nb, 0);   /* dx += aᵀ·gd */
            attn_softmax_backward16(t, (double)nb * C, C);
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 0, 0, C, N, C, 1, nb, 0);   /* dx += de·x16 */
            cost_gemm_batched_bf16(t, F_ATT_GEMM, 1, 0, C, N, C, 1, nb, 0);   /* dx += deᵀ·x16 */
        }
        const double b = B;
        op_end(t, 4 * b * cn + 2 * b * (2 * cn + cc) + 4 + 4 * (b * cn + 1));   /* reads dout; x16, a, o; γ; writes dx, dγ */
        return;
    }
    const int chunk = attn_chunk(t, ctx, cn + cc, 2, B, "cam_backward_cuda");
    attn_residual_backward(t, (double)B * cn, add);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        emit(t, "attn_scale_kernel", F_ATT_EW, COST_UNIT_CORE, nb * cn, 4 * (nb * cn + 1), 4 * nb * cn, "n %.0f", nb * cn);
        cost_gemm_batched(t, F_ATT_GEMM, 0, 1, C, C, N, 0, nb);   /* da = gd·xᵀ */
        cost_gemm_batched(t, F_ATT_GEMM, 1, 0, C, N, C, 1, nb);   /* dx += aᵀ·gd */
        attn_softmax_backward(t, (double)nb * C, C);
        cost_gemm_batched(t, F_ATT_GEMM, 0, 0, C, N, C, 1, nb);   /* dx += de·x */
        cost_gemm_batched(t, F_ATT_GEMM, 1, 0, C, N, C, 1, nb);   /* dx += deᵀ·x */
    }
    const double b = B;
    op_end(t, 4 * (b * (3 * cn + cc) + 1 + b * cn + 1));   /* reads dout, x, a, o, γ; writes dx, dγ */
}

/* ---- kernels/conv.cu ---------------------------------------------------------------- */

/* Input rows (or columns) of a side H that some window of the conv reads: the union of
 * [oy·stride − pad, oy·stride − pad + k) over oy < Ho, inside [0, H). */
static double conv_covered(int H, int k, int stride, int pad, int Ho) {
    double n = 0;
    long long next = 0;   /* first row not yet counted */
    for (int oy = 0; oy < Ho; oy++) {
        long long lo = (long long)oy * stride - pad, hi = lo + k;   /* [lo, hi) */
        if (lo < next) lo = next;
        if (hi > H) hi = H;
        if (hi > lo) { n += (double)(hi - lo); next = hi; }
    }
    return n;
}

/* (oy, ky) pairs whose input row oy·stride − pad + ky lies inside [0, H): the column
 * elements of one axis that are not padding (col2im gathers exactly these). */
static double conv_taps(int H, int k, int stride, int pad, int Ho) {
    double n = 0;
    for (int oy = 0; oy < Ho; oy++)
        for (int ky = 0; ky < k; ky++) {
            long long y = (long long)oy * stride - pad + ky;
            if (y >= 0 && y < H) n += 1;
        }
    return n;
}

/* conv_chunk_images: images whose col and nw stages fit in ctx->work. */
static int conv_chunk(cost_trace *t, const conv2d_shape *s, int nw, const dath_ctx *ctx, const char *who) {
    const double Rp = conv2d_col_rows(s), P = (double)s->Ho * s->Wo;
    const double per_image = (Rp + (double)nw * s->Co) * P * sizeof(float);
    const double fixed = (double)conv2d_pad_floats(s, nw) * sizeof(float);   /* the padded weights */
    double nb = ctx->work && ctx->work_bytes > fixed ? floor(((double)ctx->work_bytes - fixed) / per_image) : 0;
    if (nb < 1) {
        trace_fail(t, "%s: the scratch holds %zu bytes, one image needs %.0f (the CUDA launcher aborts)", who,
                   ctx->work_bytes, per_image);
        return s->B;
    }
    return nb > s->B ? s->B : (int)nb;
}

/* conv_even_spacing: whether nw pointers, sorted by address, are evenly spaced a whole
 * number of floats apart, at least min_stride floats (then one strided-batched GEMM
 * takes the nw products). */
static int conv_even(const float *const *p, int nw, long long min_stride) {
    if (nw < 2) return 1;
    uintptr_t a[CONV_MULTI_MAX] = {0};
    for (int j = 0; j < nw; j++) {   /* insertion sort by address */
        int i = j;
        while (i > 0 && a[i - 1] > (uintptr_t)p[j]) { a[i] = a[i - 1]; i--; }
        a[i] = (uintptr_t)p[j];
    }
    uintptr_t step = a[1] - a[0];
    if (step % sizeof(float)) return 0;
    for (int j = 2; j < nw; j++)
        if (a[j] - a[0] != (uintptr_t)j * step) return 0;
    return (long long)(step / sizeof(float)) >= min_stride;
}

/* The layer name of nw weight sets ("pam.conv2", or "pam+cam.conv1" for conv1 of two
 * streams), from the parameter pointers. */
static void conv_layer(cost_trace *t, const float *const *w, int nw, char *layer, size_t len) {
    char one[64];
    if (!param_layer(t, w[0], one, sizeof one)) { snprintf(layer, len, "conv"); return; }
    if (nw == 1) { snprintf(layer, len, "%s", one); return; }
    const char *dot = strrchr(one, '.');
    size_t at = 0;
    layer[0] = 0;
    for (int j = 0; j < nw; j++) {
        char lj[64];
        if (!param_layer(t, w[j], lj, sizeof lj)) snprintf(lj, sizeof lj, "?");
        char *d = strrchr(lj, '.');
        if (d) *d = 0;
        at += (size_t)snprintf(layer + at, at < len ? len - at : 0, "%s%s", j ? "+" : "", lj);
    }
    if (at < len) snprintf(layer + at, len - at, "%s", dot ? dot : "");
}

/* conv_forward_sets: per chunk of nb images (N = nb·Ho·Wo columns, R = Ci·k·k rows)
 * one im2col, one strided-batched GEMM for the nw sets (nw GEMMs when the weights are
 * not evenly spaced; one GEMM for nw = 1), one bias/ReLU launch. */
/* ---- the implicit GEMMs (kernels/conv_implicit.cu), the default path ----
 * conv_igemm_kernel: the FLOPs of its GEMM, 2·M·N·K, as a cuBLAS GEMM's (its epilogue's
 * bias add or +=, like cuBLAS's β = 1, is not counted); it reads each element of its operands
 * it loads once (the covered input, dout, the weights; reuse across blocks is the
 * cache's) and writes its outputs once (+= outputs are read too), or with a K split its
 * parts [splits, M, N] into the scratch. conv_split_reduce_kernel: reads the parts (and
 * the bias, or the output it adds to: din; dw is written), writes the output; splits − 1
 * adds an output to
 * sum them and one for the bias or the +=. The plan is the launchers' (conv2d_plan). */
static void igemm_entry(cost_trace *t, const conv2d_plan_t *p, double rd, double acc_out, double out_size,
                        double mask_rd, const char *what, const conv2d_shape *s) {
    const double mn = (double)p->M * p->N, parts = p->splits;
    const double flops = 2.0 * mn * p->K;
    const double wr = parts > 1 ? 4.0 * parts * mn : out_size * mn;
    /* the tensors stored in bf16 (conv.h): in / din by in_store, out / dout by out_store */
    const int bin = s->in_store == DATH_STORE_BF16, bout = s->out_store == DATH_STORE_BF16;
    const char *x = p->op == CONV_OP_DX ? ", din bf16" : ", x bf16", *o = p->op == CONV_OP_FWD ? ", out bf16" : ", dout bf16";
    /* mask_rd: dX's epilogue reading in for din_relu (the reduction's, with a split) */
    emit(t, "conv_igemm_kernel", F_CONV_IGEMM, COST_UNIT_GEMM, flops, rd + (parts > 1 ? 0.0 : acc_out + mask_rd), wr,
         "%s %d×%d×%d %s %s, %d part%s (k%d s%d)%s%s%s", what, p->M, p->N, p->K, conv2d_tile_name(p->tile),
         conv2d_math_name(p->math), p->splits, p->splits > 1 ? "s" : "", s->k, s->stride, bin ? x : "", bout ? o : "",
         mask_rd > 0 ? ", ReLU mask" : "");
    if (parts > 1)
        emit(t, "conv_split_reduce_kernel", F_CONV_SPLIT, COST_UNIT_CORE, (parts - (acc_out > 0 ? 0 : 1)) * mn,
             4.0 * parts * mn + acc_out + mask_rd,
             out_size * mn, "%s %d parts of %d×%d", what, p->splits, p->M, p->N);
}

static void conv_forward_implicit(const conv2d_shape *s, int nw, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const double cov = conv_covered(s->H, s->k, s->stride, s->pad, s->Ho) * conv_covered(s->W, s->k, s->stride, s->pad, s->Wo);
    conv2d_plan_t p;
    if (conv2d_plan(&p, CONV_OP_FWD, s, nw, ctx)) return;   /* an empty GEMM launches nothing */
    /* reads the covered input, the weights and the biases; the bias is read by the
     * reduction instead when K is split */
    const double bias = 4.0 * nw * s->Co, xs = (double)dath_store_size(s->in_store);
    igemm_entry(t, &p, xs * s->B * s->Ci * cov + 4.0 * nw * s->Co * s->Ci * s->k * s->k + (p.splits > 1 ? 0 : bias),
                p.splits > 1 ? bias : 0.0, (double)dath_store_size(s->out_store), 0.0, "fwd", s);
}

/* conv_mask_bgrad_kernel (reads dout and, with relu, out; writes dout where masked,
 * counted in full, and db: B·P adds a channel); then dW (the sets stacked along M,
 * written) and dX (set by set, phase by phase, added to din). in and din are of
 * in_store's size, out and dout of out_store's (conv.h). */
static void conv_backward_implicit(float *din, int nw, const conv2d_shape *s, int relu, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const int B = s->B, Ci = s->Ci, Co = s->Co, P = s->Ho * s->Wo;
    const double n_out = (double)B * Co * P, sets = nw;
    const double xs = (double)dath_store_size(s->in_store), os = (double)dath_store_size(s->out_store);
    /* in S slices a channel (conv2d_bgrad_slices): the slices' double partials, then
     * conv_bgrad_sum_kernel (reads them, writes db; S − 1 adds a channel) */
    const int S = conv2d_bgrad_slices(s, nw, ctx);
    emit(t, "conv_mask_bgrad_kernel", F_MASK_BGRAD, COST_UNIT_CORE, sets * Co * (double)B * P,
         os * sets * n_out * (relu ? 2 : 1), os * (relu ? sets * n_out : 0) + (S > 1 ? 8.0 * S : 4.0) * sets * Co,
         "%d×%d channels × %.0f%s%s, %d slice%s", nw, Co, (double)B * P, relu ? ", masked" : "", os == 2 ? ", bf16" : "",
         S, S > 1 ? "s" : "");
    if (S > 1)
        emit(t, "conv_bgrad_sum_kernel", F_BGRAD, COST_UNIT_CORE, sets * Co * (S - 1.0), 8.0 * S * sets * Co,
             4.0 * sets * Co, "%d×%d channels × %d slices", nw, Co, S);
    const double cov = conv_covered(s->H, s->k, s->stride, s->pad, s->Ho) * conv_covered(s->W, s->k, s->stride, s->pad, s->Wo);
    conv2d_plan_t p;
    if (conv2d_plan(&p, CONV_OP_DW, s, nw, ctx)) return;
    /* dW: reads dout and the covered input, writes dw (not read: the op writes it) */
    igemm_entry(t, &p, os * sets * n_out + xs * B * Ci * cov, 0.0, 4.0, 0.0, "dW", s);
    if (!din) return;
    /* set 0 writes din, later sets add (all add onto a zeroed din when a phase with
     * pixels has no taps: conv2d_dx_covers) */
    const int covers = conv2d_dx_covers(s);
    if (!covers) {
        const double nb = xs * B * Ci * s->H * s->W;
        emit(t, "cudaMemsetAsync", F_ZERO, COST_UNIT_CORE, 0, 0, nb, "%.0f bytes (din, dX without full cover)", nb);
    }
    for (int j = 0; j < nw; j++)
        for (int iy0 = 0; iy0 < s->stride; iy0++)
            for (int ix0 = 0; ix0 < s->stride; ix0++) {
                conv2d_phase ph;
                if (conv2d_dx_phase(&ph, s, iy0, ix0) ||
                    conv2d_plan_mnk(&p, CONV_OP_DX, Ci, (long long)B * ph.hp * ph.wp, (long long)Co * ph.kyn * ph.kxn, ctx))
                    continue;
                /* reads the set's dout and the phase's taps of w; din written (set 0) or
                 * added to (read too) on the phase's pixels */
                igemm_entry(t, &p, os * n_out + 4.0 * Co * Ci * ph.kyn * ph.kxn,
                            j > 0 || !covers ? xs * B * Ci * ph.hp * ph.wp : 0.0, xs,
                            s->din_relu ? xs * B * Ci * ph.hp * ph.wp : 0.0, "dX", s);
            }
}

static void conv_forward_sets(float *const *out, const float *in, const float *const *w, const float *const *b,
                              int nw, const conv2d_shape *s, int relu, dath_ctx *ctx, const char *op) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    conv_layer(t, w, nw, layer, sizeof layer);
    const int B = s->B, Ci = s->Ci, Co = s->Co, P = s->Ho * s->Wo, R = Ci * s->k * s->k;
    if (B <= 0 || Co <= 0 || P <= 0 || !op_begin(t, op, layer, COST_FORWARD)) return;
    const double cov = conv_covered(s->H, s->k, s->stride, s->pad, s->Ho) * conv_covered(s->W, s->k, s->stride, s->pad, s->Wo);
    if (ctx->conv_algo != DATH_CONV_IM2COL) {
        conv_forward_implicit(s, nw, ctx);
        op_end(t, dath_store_size(s->in_store) * (double)B * Ci * cov + 4.0 * ((double)nw * Co * R + (double)nw * Co) +
                      dath_store_size(s->out_store) * (double)nw * B * Co * P);
        for (int j = 0; j < nw; j++) {
            char lj[64];
            if (param_layer(t, w[j], lj, sizeof lj)) label_set(t, out[j], lj);
        }
        return;
    }
    const int chunk = conv_chunk(t, s, nw, ctx, op);
    const int Rp = conv2d_col_rows(s), pad = Rp > R;
    /* padded (conv.h): conv_pad_kernel copies the sets into [Co, Rp] (evenly spaced) */
    if (pad)
        emit(t, "conv_pad_kernel", F_STAGE, COST_UNIT_CORE, 0, 4.0 * nw * Co * R, 4.0 * nw * Co * Rp,
             "%d×%d×%d → %d", nw, Co, R, Rp);
    const int batched = (pad || conv_even(w, nw, 0)) && nw > 1;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        /* conv_im2col_kernel: reads the chunk's input elements some window covers,
         * writes col [Rp, N] (the padding rows zero) */
        emit(t, "conv_im2col_kernel", F_IM2COL, COST_UNIT_CORE, 0, 4.0 * nb * Ci * cov, 4.0 * Rp * N,
             "col %d×%d (k%d s%d)", Rp, N, s->k, s->stride);
        if (batched) cost_gemm_batched(t, F_CONV_GEMM, 0, 0, Co, N, Rp, 0, nw);   /* stage = w·col */
        else
            for (int q = 0; q < nw; q++) cost_gemm_rm(t, F_CONV_GEMM, 0, 0, Co, N, Rp, 0);
        /* conv_bias_relu_kernel: out = (relu) stage + b (reads stage and b, writes out;
         * one add) */
        const double e = (double)nw * nb * Co * P;
        emit(t, "conv_bias_relu_kernel", F_BIAS, COST_UNIT_CORE, e, 4 * (e + (double)nw * Co), 4 * e,
             "%d×%d×%d×%d", nw, nb, Co, P);
    }
    /* ideal: reads the covered input, w, b; writes out */
    op_end(t, 4 * ((double)B * Ci * cov + (double)nw * Co * R + (double)nw * Co + (double)nw * B * Co * P));
    for (int j = 0; j < nw; j++) {
        char lj[64];
        if (param_layer(t, w[j], lj, sizeof lj)) label_set(t, out[j], lj);
    }
}

/* conv_backward_sets: one ReLU-mask launch (reads out, writes dout: conditional stores
 * counted in full) and one bias-gradient launch for all sets; per chunk one staging
 * launch, one im2col, the nw weight-gradient GEMMs (one strided-batched GEMM when the
 * dw's are evenly spaced and do not overlap), and with din the nw column-gradient GEMMs
 * (the first with β = 0) and one col2im. */
static void conv_backward_sets(float *din, float *const *dw, float *const *db, float *const *dout, const float *in,
                               const float *const *w, const float *const *out, int nw, const conv2d_shape *s,
                               int relu, dath_ctx *ctx, const char *op) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    conv_layer(t, w, nw, layer, sizeof layer);
    const int B = s->B, Ci = s->Ci, Co = s->Co, P = s->Ho * s->Wo, R = Ci * s->k * s->k;
    if (B <= 0 || Co <= 0 || P <= 0 || !op_begin(t, op, layer, COST_BACKWARD)) return;
    const double n_out = (double)B * Co * P, sets = nw;
    const double cov = conv_covered(s->H, s->k, s->stride, s->pad, s->Ho) * conv_covered(s->W, s->k, s->stride, s->pad, s->Wo);
    const double taps = conv_taps(s->H, s->k, s->stride, s->pad, s->Ho) * conv_taps(s->W, s->k, s->stride, s->pad, s->Wo);
    const double in_image = (double)Ci * s->H * s->W;
    if (ctx->conv_algo != DATH_CONV_IM2COL) {
        conv_backward_implicit(din, nw, s, relu, ctx);
        const double xs = (double)dath_store_size(s->in_store), os = (double)dath_store_size(s->out_store);
        op_end(t, os * sets * n_out * (relu ? 2 : 1) + xs * B * Ci * cov + (din ? xs * B * in_image : 0) +
                      (din && s->din_relu ? xs * B * in_image : 0) + 4 * ((din ? sets * Co * R : 0) + sets * Co * R + sets * Co));
        return;
    }
    if (relu)
        emit(t, "conv_relu_mask_kernel", F_MASK, COST_UNIT_CORE, 0, 4 * sets * n_out, 4 * sets * n_out, "%d×%.0f", nw, n_out);
    /* conv_bias_grad_kernel: db = Σ dout (reads dout, writes db; B·P adds a channel) */
    emit(t, "conv_bias_grad_kernel", F_BGRAD, COST_UNIT_CORE, sets * Co * (double)B * P,
         4 * sets * n_out, 4 * sets * Co, "%d×%d channels × %.0f", nw, Co, (double)B * P);
    const int chunk = conv_chunk(t, s, nw, ctx, op);
    const int Rp = conv2d_col_rows(s), pad = Rp > R;
    /* padded (conv.h): the weights copied into [Co, Rp] for dX; dw's GEMMs into the
     * scratch's [nw, Co, Rp], copied out at the end */
    if (pad && din)
        emit(t, "conv_pad_kernel", F_STAGE, COST_UNIT_CORE, 0, 4.0 * nw * Co * R, 4.0 * nw * Co * Rp,
             "%d×%d×%d → %d", nw, Co, R, Rp);
    const int batched = (pad || conv_even((const float *const *)dw, nw, (long long)Co * R)) && nw > 1;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        const int N = nb * P;
        const double st = sets * nb * Co * P;
        /* conv_stage_kernel: stage [nw, Co, N] ← dout (reads and writes it) */
        emit(t, "conv_stage_kernel", F_STAGE, COST_UNIT_CORE, 0, 4 * st, 4 * st, "%d×%d×%d×%d", nw, nb, Co, P);
        emit(t, "conv_im2col_kernel", F_IM2COL, COST_UNIT_CORE, 0, 4.0 * nb * Ci * cov, 4.0 * Rp * N,
             "col %d×%d (k%d s%d)", Rp, N, s->k, s->stride);
        /* dw (+)= stage·colᵀ: the first chunk writes (β = 0), later ones add */
        if (batched) cost_gemm_batched(t, F_CONV_GEMM, 0, 1, Co, Rp, N, b0 > 0, nw);
        else
            for (int q = 0; q < nw; q++) cost_gemm_rm(t, F_CONV_GEMM, 0, 1, Co, Rp, N, b0 > 0);
        if (!din) continue;
        for (int j = 0; j < nw; j++) cost_gemm_rm(t, F_CONV_GEMM, 1, 0, Rp, N, Co, j > 0);   /* col = Σ wᵀ·stage */
        /* conv_col2im_kernel: din = col2im(col): reads the column elements that are not
         * padding (and in, with din_relu), writes din; one add a gathered element (onto 0) */
        const double g = (double)nb * Ci * taps, ni = nb * in_image;
        emit(t, "conv_col2im_kernel", F_COL2IM, COST_UNIT_CORE, g, 4 * g + (s->din_relu ? 4 * ni : 0), 4 * ni,
             "%d×%d×%d×%d%s", nb, Ci, s->H, s->W, s->din_relu ? ", ReLU mask" : "");
    }
    /* conv_unpad_kernel: each set's dw [Co, R] from the scratch's [Co, Rp] */
    if (pad)
        emit(t, "conv_unpad_kernel", F_STAGE, COST_UNIT_CORE, 0, 4.0 * nw * Co * R, 4.0 * nw * Co * R,
             "%d×%d×%d ← %d", nw, Co, R, Rp);
    /* ideal: reads dout, out (the ReLU mask), the covered input, w (for din); writes dw,
     * db, din */
    op_end(t, 4 * (sets * n_out * (relu ? 2 : 1) + (double)B * Ci * cov + (din ? sets * Co * R : 0) + sets * Co * R +
                   sets * Co + (din ? (double)B * in_image * (s->din_relu ? 2 : 1) : 0)));
}

static void cost_conv2d_forward(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s,
                                int relu, dath_ctx *ctx) {
    conv_forward_sets(&out, in, &w, &b, 1, s, relu, ctx, "conv2d_forward");
}

static void cost_conv2d_backward(float *din, float *dw, float *db, float *dout, const float *in, const float *w,
                                 const float *out, const conv2d_shape *s, int relu, dath_ctx *ctx) {
    conv_backward_sets(din, &dw, &db, &dout, in, &w, &out, 1, s, relu, ctx, "conv2d_backward");
}

static void cost_conv2d_forward_multi(float *const *out, const float *in, const float *const *w,
                                      const float *const *b, int nw, const conv2d_shape *s, int relu,
                                      dath_ctx *ctx) {
    if (nw < 1 || nw > CONV_MULTI_MAX) {
        trace_fail(TRACE(ctx), "conv2d_forward_multi: %d weight sets (the CUDA launcher aborts)", nw);
        return;
    }
    conv_forward_sets(out, in, w, b, nw, s, relu, ctx, "conv2d_forward_multi");
}

static void cost_conv2d_backward_multi(float *din, float *const *dw, float *const *db, float *const *dout,
                                       const float *in, const float *const *w, const float *const *out, int nw,
                                       const conv2d_shape *s, int relu, dath_ctx *ctx) {
    if (nw < 1 || nw > CONV_MULTI_MAX) {
        trace_fail(TRACE(ctx), "conv2d_backward_multi: %d weight sets (the CUDA launcher aborts)", nw);
        return;
    }
    conv_backward_sets(din, dw, db, dout, in, w, out, nw, s, relu, ctx, "conv2d_backward_multi");
}

/* ---- kernels/fusion.cu --------------------------------------------------------------- */

/* The stream and layer a dropout tag (RNG_DROPOUT + 2·stream + layer) names. */
static void dropout_layer(cost_trace *t, uint32_t tag, char *layer, size_t len) {
    int s = (int)(tag - RNG_DROPOUT) / 2, l = (int)(tag - RNG_DROPOUT) % 2;
    const char *pre = t->m && s >= 0 && s < t->m->nstreams ? t->m->streams[s].prefix : "?";
    snprintf(t->stream, sizeof t->stream, "%s", pre);
    snprintf(layer, len, "%s.dropout%d", pre, l ? 7 : 6);
}

/* dropout_forward_kernel: reads x and the step, writes y (each as store says); per element
 * the uniform's scaling and x·scale (Philox is integer work). */
static void cost_dropout_forward(void *y, const void *x, int B, int D, float p, uint64_t seed, uint32_t tag,
                                 const uint32_t *step, uint32_t sample0, int store, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    dropout_layer(t, tag, layer, sizeof layer);
    if (B <= 0 || D <= 0 || !op_begin(t, "dropout_forward", layer, COST_FORWARD)) return;
    const double n = (double)B * D, es = (double)dath_store_size(store);
    emit(t, "dropout_forward_kernel", F_DROPOUT, COST_UNIT_CORE, 2 * n, es * n + 4, es * n, "%d×%d%s", B, D,
         store == DATH_STORE_BF16 ? " bf16" : "");
    op_end(t, 2 * es * n + 4);
    label_set(t, y, layer);
}

/* dropout_backward_kernel: dx = dy·scale where kept, else 0 (written: the op is dx's only
 * writer): reads dy, the step; writes dx; 2 FLOPs (uniform, multiply). */
static void cost_dropout_backward(float *dx, const float *dy, int B, int D, float p, uint64_t seed, uint32_t tag,
                                  const uint32_t *step, uint32_t sample0, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    dropout_layer(t, tag, layer, sizeof layer);
    if (B <= 0 || D <= 0 || !op_begin(t, "dropout_backward", layer, COST_BACKWARD)) return;
    const double n = (double)B * D;
    emit(t, "dropout_backward_kernel", F_DROPOUT, COST_UNIT_CORE, 2 * n, 4 * n + 4, 4 * n, "%d×%d", B, D);
    op_end(t, 8 * n + 4);
}

/* fuse_forward_kernel: f = relu(a) (+ relu(b)): reads a (and b), writes f; one add with
 * two streams. */
static void cost_fuse_forward(float *f, const float *a, const float *b, size_t n, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "fuse_forward", "fusion", COST_FORWARD)) return;
    const double e = (double)n, ins = b ? 2 : 1;
    emit(t, "fuse_forward_kernel", F_FUSION, COST_UNIT_CORE, b ? e : 0, 4 * ins * e, 4 * e, "n %.0f", e);
    op_end(t, 4 * (ins + 1) * e);
    label_set(t, f, "fusion");
}

/* fuse_backward_kernel: da = df·(a > 0), db likewise (written: the streams' fc7 output
 * gradients have no other writer): reads df, a (b), writes da (db); no arithmetic. */
static void cost_fuse_backward(float *da, float *db, const float *df, const float *a, const float *b, size_t n,
                               dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "fuse_backward", "fusion", COST_BACKWARD)) return;
    const double e = (double)n, two = b ? 2 : 1;
    emit(t, "fuse_backward_kernel", F_FUSION, COST_UNIT_CORE, 0, 4 * (1 + two) * e, 4 * two * e, "n %.0f", e);
    op_end(t, 4 * (1 + two + two) * e);   /* reads df, a (b); writes da (db) */
}

/* ---- kernels/linear.cu --------------------------------------------------------------- */

static void linear_layer(cost_trace *t, const float *w, char *layer, size_t len) {
    if (!param_layer(t, w, layer, len)) snprintf(layer, len, "linear");
}

/* forward: one cuBLASLt matmul (kernels/gemm.cu's gemm_rm_bias[_typed]): reads in, w and b,
 * writes out; its epilogue's bias add and ReLU, like a conv epilogue's, count no FLOPs
 * (where cuBLASLt declined, the cuBLAS GEMM and linear_bias_relu_kernel would run instead).
 * With bf16 storage (st) in and w16 are 2 bytes an element, and out and its bias as
 * out_store says. */
static void cost_linear_forward(void *out, const void *in, const float *w, const float *b, int B, int I, int O,
                                int relu, const linear_store *st, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    linear_layer(t, w, layer, sizeof layer);
    if (B <= 0 || O <= 0 || !op_begin(t, "linear_forward", layer, COST_FORWARD)) return;
    const double n = (double)B * O, ea = st ? 2 : 4, eo = st ? (double)dath_store_size(st->out_store) : 4;
    const double rd = ea * ((double)B * I + (double)O * I) + eo * O;
    emit(t, "cublasLtMatmul", F_FC_GEMM, COST_UNIT_GEMM, 2.0 * n * I, rd, eo * n,
         "%d×%d×%d Bᵀ, %s epilogue%s%s", B, O, I, relu ? "bias+ReLU" : "bias", st ? ", bf16" : "",
         st && eo == 2 ? ", out bf16" : "");
    op_end(t, rd + eo * n);   /* reads in, w, b; writes out */
    label_set(t, out, layer);
}

/* backward: linear_mask_bgrad_kernel, one pass of O/8 blocks (reads dout and, when relu,
 * out; writes the masked dout in full when relu, and db; B adds a column into 32 partial
 * sums, 31 to combine them), then dw = doutᵀ·in and din = dout·w (cuBLAS, β = 0: the op
 * writes both). With bf16 storage the pass writes the masked dout as bf16 (always, into the
 * scratch) and the two GEMMs read it and the bf16 in / w16. */
static void cost_linear_backward(float *din, float *dw, float *db, float *dout, const void *in, const float *w,
                                 const void *out, int B, int I, int O, int relu, const linear_store *st,
                                 dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    linear_layer(t, w, layer, sizeof layer);
    if (B <= 0 || O <= 0 || !op_begin(t, "linear_backward", layer, COST_BACKWARD)) return;
    const double n = (double)B * O, wi = (double)O * I, bi = (double)B * I;
    const double eo = st ? (double)dath_store_size(st->out_store) : 4;
    if (!st) {
        emit(t, "linear_mask_bgrad_kernel", F_BGRAD, COST_UNIT_CORE, ((double)B + 31) * O,
             4 * n * (relu ? 2 : 1), 4 * ((relu ? n : 0) + O), "%d columns × %d, %d blocks%s", O, B, (O + 7) / 8,
             relu ? ", ReLU mask" : "");
        cost_gemm_rm(t, F_FC_GEMM, 1, 0, O, I, B, 0);
        if (din) cost_gemm_rm(t, F_FC_GEMM, 0, 0, B, I, O, 0);
    } else {
        emit(t, "linear_mask_bgrad_kernel", F_BGRAD, COST_UNIT_CORE, ((double)B + 31) * O,
             4 * n + (relu ? eo * n : 0), 2 * n + 4 * O, "%d columns × %d, %d blocks%s, dout to bf16", O, B,
             (O + 7) / 8, relu ? ", ReLU mask" : "");
        cost_gemm_rm_bf16(t, F_FC_GEMM, 1, 0, O, I, B);
        if (din) cost_gemm_rm_bf16(t, F_FC_GEMM, 0, 0, B, I, O);
    }
    /* ideal: reads dout, out (mask), in, w (for din); writes dw, db, din */
    const double ea = st ? 2 : 4;
    op_end(t, 4 * n + (relu ? eo * n : 0) + ea * bi + (din ? ea * wi : 0) + 4 * (wi + O + (din ? bi : 0)));
}

/* ---- kernels/loss.cu ----------------------------------------------------------------- */

/* tanh_forward_kernel: reads z, writes h; one tanh. */
static void cost_tanh_forward(float *h, const float *z, size_t n, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "tanh_forward", "hash.tanh", COST_FORWARD)) return;
    emit(t, "tanh_forward_kernel", F_LOSS, COST_UNIT_CORE, (double)n, 4.0 * n, 4.0 * n, "n %zu", n);
    op_end(t, 8.0 * n);
    label_set(t, h, "hash.tanh");
}

/* tanh_backward_kernel: dz += dh·(1 − h²): reads dz, dh, h, writes dz; 4 FLOPs. */
static void cost_tanh_backward(float *dz, const float *dh, const float *h, size_t n, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "tanh_backward", "hash.tanh", COST_BACKWARD)) return;
    emit(t, "tanh_backward_kernel", F_LOSS, COST_UNIT_CORE, 4.0 * n, 12.0 * n, 4.0 * n, "n %zu", n);
    op_end(t, 12.0 * n);   /* reads dh, h; writes dz */
}

#define COST_J1_MAX_B 2048   /* J1_MAX_B of kernels/loss.cu */

/* j1_triplet_cuda: j1_anchor_kernel (block a: Θ_a· from h, a's positives and negatives
 * from lab, row a of G, a's loss and count) and j1_finish_kernel (T, the loss, and with
 * dh row i of ½(G + Gᵀ)·h). The triplets: the bound of cost.h, every
 * anchor with ⌊(B−1)/2⌋ positives and ⌈(B−1)/2⌉ negatives. FLOPs (doubles):
 *   anchor  Θ: B²·(2K + 1); per positive: margin − Θ_ap; per triplet 8 in the positives'
 *           loop (t, exp, 1 + e, σ's division, log1p, softplus's add, two sums) and 8 in
 *           the negatives' (margin − Θ_ap, t, exp, 1 + e, division, log1p, add, the sum)
 *   finish  the loss sum B; ½(G_ij + G_ji) 2B²; dh: 2B a element, then ·α and the add.
 * Bytes: the anchor kernel reads h and lab and writes G [B,B], the partial losses and
 * counts (doubles); the finish kernel reads the counts, partials, G, h and dh, writes dh,
 * the loss and the count. Too large a batch or too little scratch: one j1_fail_kernel
 * writing the NaN loss and the count. */
static void cost_j1_triplet(float *loss, int64_t *ntrip, float *dh, const float *h, const float *lab, int B, int K,
                            int C, float margin, float scale, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!op_begin(t, "j1_triplet", "J1 (mining, loss, gradient)", COST_BACKWARD)) return;
    const double b = B, k = K, c = C, out = ntrip ? 12 : 4;   /* the loss and the count */
    if (B <= 0) {
        emit(t, "j1_finish_kernel", F_LOSS, COST_UNIT_CORE, 0, 0, out, "B 0");
        op_end(t, out);
        return;
    }
    size_t need = sizeof(double) * ((size_t)B * B + 2 * (size_t)B);
    if (K <= 0 || B > COST_J1_MAX_B || !ctx->work || ctx->work_bytes < need) {
        emit(t, "j1_fail_kernel", F_LOSS, COST_UNIT_CORE, 0, 0, out, "B %d (fails)", B);
        op_end(t, out);
        return;
    }
    const double npos = (double)((B - 1) / 2), nneg = (double)(B - 1) - npos, T = b * npos * nneg;
    emit(t, "j1_anchor_kernel", F_LOSS, COST_UNIT_CORE, b * b * (2 * k + 1) + b * npos + 16 * T, 4 * (b * k + b * c),
         8 * (b * b + 2 * b), "%d anchors, K %d, %.0f triplets", B, K, T);
    if (dh)
        emit(t, "j1_finish_kernel", F_LOSS, COST_UNIT_CORE, b + 2 * b * b + 2 * b * b * k + 2 * b * k,
             8 * (2 * b + b * b) + 8 * b * k, 4 * b * k + out, "%d rows", B);
    else
        emit(t, "j1_finish_kernel", F_LOSS, COST_UNIT_CORE, b, 16 * b, out, "1 block");
    op_end(t, 4 * (b * k + b * c) + out + (dh ? 4 * b * k : 0));   /* reads h, lab; writes loss, count, dh */
}

/* j2_class_kernel, one block: reads y, lab and dy, writes dy and the loss. FLOPs an
 * element: the normaliser 3 (y − m, exp, sum); eq. 7 15 (p; log q, l·log q, 1 − l,
 * log1p(−q), its product, the row's two; the dot: −l/q, 1 − l, 1 − q, its division, the
 * add, ·p, the sum) and its gradient 11 (p; −l/p, 1 − l, 1 − p, division, add;
 * dp − dot, ·p, ·s; the add); eq. 6 4 (lse − y, ·l, the row sum, Σl) and 6 (p, Σl·p − l,
 * ·s, the add). Per row lse = m + log z: 2. */
static void cost_j2_class(float *loss, float *dy, const float *y, const float *lab, int B, int C, int multi,
                          float norm, float scale, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!op_begin(t, "j2_class", "J2 (classification)", COST_BACKWARD)) return;
    const double n = B > 0 && C > 0 ? (double)B * C : 0, rows = B > 0 && C > 0 ? B : 0;
    const double per = 3 + (multi ? 15 : 4) + (dy ? (multi ? 11 : 6) : 0);
    emit(t, "j2_class_kernel", F_LOSS, COST_UNIT_CORE, per * n + 2 * rows, 4 * (2 * n + (dy ? n : 0)),
         4 * (dy ? n : 0) + 4, "%d×%d %s", B, C, multi ? "eq. 7" : "eq. 6");
    op_end(t, 4 * (2 * n + (dy ? n : 0)) + 4);   /* reads y, lab; writes dy, the loss */
}

/* j3_quant_kernel, one block: reads h (and dh), writes the loss (and dh); 2 FLOPs an
 * element for the loss (|h| − 1, the sum), 4 for the gradient. */
static void cost_j3_quant(float *loss, float *dh, const float *h, int B, int K, float norm, float scale,
                          dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!op_begin(t, "j3_quant", "J3 (quantisation)", COST_BACKWARD)) return;
    const double n = B > 0 && K > 0 ? (double)B * K : 0;
    emit(t, "j3_quant_kernel", F_LOSS, COST_UNIT_CORE, (dh ? 6 : 2) * n, 4 * n * (dh ? 2 : 1), 4 * (dh ? n : 0) + 4,
         "%d×%d", B, K);
    op_end(t, 4 * n * (dh ? 2 : 1) + 4);
}

/* j3_tanh_backward_kernel, one block: reads h, dh and dz, writes dz and the loss; 10
 * FLOPs an element (|h| − 1 and the sum; |h| − 1, two products, + dh; h², 1 − h², the
 * product, the add). */
static void cost_j3_tanh_backward(float *loss, float *dz, const float *dh, const float *h, int B, int K, float norm,
                                  float scale, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (!op_begin(t, "j3_tanh_backward", "J3 + tanh backward", COST_BACKWARD)) return;
    const double n = B > 0 && K > 0 ? (double)B * K : 0;
    emit(t, "j3_tanh_backward_kernel", F_LOSS, COST_UNIT_CORE, 10 * n, 4 * n * (dh ? 3 : 2), 4 * n + 4, "%d×%d", B, K);
    op_end(t, 4 * n * (dh ? 2 : 1) + 4 * n + 4);   /* reads h, dh; writes dz, the loss */
}

/* ---- kernels/pool.cu ----------------------------------------------------------------- */

/* The pool after a layer: conv1 → pool1, conv2 → pool2, conv5 / attention → pool5. */
static void pool_layer(cost_trace *t, const void *in, char *layer, size_t len) {
    const char *l = label_get(t, in);
    if (!l) { snprintf(layer, len, "%s.pool", t->stream); return; }
    const char *dot = strchr(l, '.');
    size_t lp = dot ? (size_t)(dot - l) : strlen(l);
    snprintf(t->stream, sizeof t->stream, "%.*s", (int)lp, l);
    int which = strstr(l, "conv1") ? 1 : strstr(l, "conv2") ? 2 : 5;
    snprintf(layer, len, "%.*s.pool%d", (int)lp, l, which);
}

/* maxpool_forward_kernel: reads the input elements some 3×3 window covers, writes out
 * and idx (1 byte: maxpool_arg) a window; in and out of `store`'s size (4 or 2 bytes). */
static void cost_maxpool_forward(float *out, maxpool_arg *idx, const float *in, int BC, int H, int W, int store,
                                 dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const double n = (double)BC * Ho * Wo;
    char layer[64];
    pool_layer(t, in, layer, sizeof layer);
    if (n == 0 || !op_begin(t, "maxpool_forward", layer, COST_FORWARD)) return;
    const double es = (double)dath_store_size(store);
    const double rd = es * BC * conv_covered(H, 3, 2, 0, Ho) * conv_covered(W, 3, 2, 0, Wo);
    emit(t, "maxpool_forward_kernel", F_POOL, COST_UNIT_CORE, 0, rd, (es + 1) * n, "%d×%d×%d → %d×%d%s", BC, H, W, Ho,
         Wo, store == DATH_STORE_BF16 ? " bf16" : "");
    op_end(t, rd + (es + 1) * n);
    label_set(t, out, layer);
    label_set(t, idx, layer);
}

/* maxpool_backward_kernel: din = Σ dout at its argmax (a gather, din written, not read):
 * reads dout, idx and the mask (of `store`'s size) when there is one, writes din; one add
 * per output (each window's gradient lands once). */
static void cost_maxpool_backward(float *din, const float *dout, const maxpool_arg *idx, const float *mask, int BC, int H,
                                  int W, int store, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const int Ho = maxpool_out(H), Wo = maxpool_out(W);
    const double n_in = (double)BC * H * W, n_out = (double)BC * Ho * Wo;
    const char *l = label_get(t, idx);
    char layer[64];
    snprintf(layer, sizeof layer, "%s", l ? l : "maxpool");
    if (n_in == 0 || Ho == 0 || Wo == 0 || !op_begin(t, "maxpool_backward", layer, COST_BACKWARD)) return;
    const double es = (double)dath_store_size(store);   /* dout, the mask, din */
    const double rd = (es + 1.0 + (mask ? es : 0.0)) * n_out;
    emit(t, "maxpool_backward_kernel", F_POOL, COST_UNIT_CORE, n_out, rd, es * n_in,
         "%d×%d×%d ← %d×%d%s%s", BC, H, W, Ho, Wo, mask ? ", ReLU mask" : "", store == DATH_STORE_BF16 ? ", bf16" : "");
    op_end(t, rd + es * n_in);   /* reads dout, idx (the mask); writes din */
}

/* Σ over the adaptive bins of one axis of their sizes (PyTorch's bin edges). */
static double avgpool_bins(int H, int Ho) {
    double a = 0;
    for (int i = 0; i < Ho; i++) {
        long long s = (long long)i * H / Ho, e = ((long long)(i + 1) * H + Ho - 1) / Ho;
        a += (double)(e - s);
    }
    return a;
}

/* avgpool_forward_kernel: reads in (the bins cover it), writes out; per output the bin's
 * adds, its area and the division. */
static void cost_avgpool_forward(void *out, const float *in, int BC, int H, int W, int Ho, int Wo, int out_store,
                                 dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    const char *l = label_get(t, in);
    char layer[64];
    if (l) {
        const char *dot = strchr(l, '.');
        snprintf(t->stream, sizeof t->stream, "%.*s", (int)(dot ? dot - l : (long)strlen(l)), l);
    }
    snprintf(layer, sizeof layer, "%s.avgpool", t->stream);
    if (Ho <= 0 || Wo <= 0 || BC <= 0 || !op_begin(t, "avgpool_forward", layer, COST_FORWARD)) return;
    const double A = avgpool_bins(H, Ho) * avgpool_bins(W, Wo), n_in = (double)BC * H * W, n_out = (double)BC * Ho * Wo;
    const double eo = (double)dath_store_size(out_store);
    emit(t, "avgpool_forward_kernel", F_POOL, COST_UNIT_CORE, BC * A + 2 * n_out, 4 * n_in, eo * n_out,
         "%d×%d×%d → %d×%d%s", BC, H, W, Ho, Wo, out_store == DATH_STORE_BF16 ? ", out bf16" : "");
    op_end(t, 4 * n_in + eo * n_out);
    label_set(t, out, layer);
}

/* avgpool_backward_kernel: reads dout, writes din (a gather: din written, not read); per
 * (element, bin) the area, the division and the add. */
static void cost_avgpool_backward(float *din, const float *dout, int BC, int H, int W, int Ho, int Wo,
                                  dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    char layer[64];
    snprintf(layer, sizeof layer, "%s.avgpool", t->stream);
    if (Ho <= 0 || Wo <= 0 || BC <= 0 || H <= 0 || W <= 0 || !op_begin(t, "avgpool_backward", layer, COST_BACKWARD))
        return;
    const double A = avgpool_bins(H, Ho) * avgpool_bins(W, Wo), n_in = (double)BC * H * W, n_out = (double)BC * Ho * Wo;
    emit(t, "avgpool_backward_kernel", F_POOL, COST_UNIT_CORE, 3 * BC * A, 4 * n_out, 4 * n_in,
         "%d×%d×%d ← %d×%d", BC, H, W, Ho, Wo);
    op_end(t, 4 * (n_out + n_in));   /* reads dout; writes din */
}

/* ---- kernels/rmsprop.cu -------------------------------------------------------------- */

/* rmsprop_step_kernel, one launch over the flat buffer: reads θ, v, g and the guard's
 * losses, writes θ and v, and with the bf16 copy bf16(θ) (2 bytes); 11 FLOPs an element
 * (wd·θ, + g, v·α, (1 − α)·g, ·g, +, √, + eps, −lr·g, the division, the add). */
static void cost_rmsprop_step(float *theta, float *v, dath_bf16 *copy, const float *grad, size_t n, float lr,
                              float alpha, float eps, float wd, const float *guard, int nguard, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "rmsprop_step", "rmsprop", COST_UPDATE)) return;
    const double e = (double)n, gd = guard && nguard > 0 ? 4.0 * nguard : 0, ce = copy ? 2 * e : 0;
    emit(t, "rmsprop_step_kernel", F_RMSPROP, COST_UNIT_CORE, 11 * e, 12 * e + gd, 8 * e + ce, "n %zu%s", n,
         copy ? ", bf16 copy" : "");
    op_end(t, 20 * e + ce + gd);
}

/* rmsprop_narrow_kernel: reads θ, writes its bf16 copy (where θ was uploaded). */
static void cost_rmsprop_narrow(dath_bf16 *copy, const float *theta, size_t n, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (n == 0 || !op_begin(t, "rmsprop_narrow", "bf16 copy of the parameters", COST_UPDATE)) return;
    const double e = (double)n;
    emit(t, "rmsprop_narrow_kernel", F_RMSPROP, COST_UNIT_CORE, 0, 4 * e, 2 * e, "n %zu", n);
    op_end(t, 6 * e);
}

/* ---- kernels/transform.cu ------------------------------------------------------------ */

/* transform_batch_kernel: reads the crop window's bytes (three a pixel), the crops (and
 * rows), writes [B,3,S,S] floats; each block first builds its 3×256 table (two divisions
 * and a subtraction an entry; min(⌈B·S²/256⌉, 4096) blocks). */
static void cost_transform_batch(float *out, const uint8_t *in, const int32_t *crop, const int32_t *index, int B,
                                 int R, int S, dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (B <= 0 || S <= 0 || !op_begin(t, "transform_batch", "input transform", COST_FORWARD)) return;
    const double px = (double)B * S * S;
    double blocks = ceil(px / 256.0);
    if (blocks > 4096) blocks = 4096;   /* TRANSFORM_MAX_BLOCKS */
    const double rd = 3 * px + 12.0 * B + (index ? 4.0 * B : 0);
    emit(t, "transform_batch_kernel", F_TRANSFORM, COST_UNIT_CORE, blocks * 3 * 256 * 3, rd, 12 * px,
         "%d×%d² from %d²", B, S, R);
    op_end(t, rd + 12 * px);
    label_set(t, out, "input");
}

/* ---- kernels/hamming.cu ------------------------------------------------------------- */

/* The ranking is not part of a training step or an encode pass, the passes this model
 * costs: recording it is an error that names it, so that a pass that starts to rank
 * cannot be costed without a model of hamming_rank_kernel being written here first. */
static void cost_hamming_eval(double *ap, int32_t *hits_k, int32_t *rel_all, double *ap_best, double *ap_worst,
                              int32_t *hits_at, int32_t *ret_r, int32_t *rel_r, const uint8_t *qcodes,
                              const uint8_t *dcodes, const uint8_t *qlab, const uint8_t *dlab, const int32_t *at,
                              int n_at, int Q, int D, int B, int C, int topk, dath_ctx *ctx) {
    trace_fail(TRACE(ctx), "hamming_eval (%d queries against %d codes): the cost model has no entry for the ranking",
               Q, D);
}

static size_t cost_hamming_work_bytes(int queries, int D, int B, int C, int depth, int tie_bounds) { return 0; }

/* ==== 5. the backend table ============================================================== */

static int cost_ctx_init(dath_ctx *ctx, size_t work_bytes, int precision, char *err, size_t err_len) {
    memset(ctx, 0, sizeof *ctx);
    if (precision != DATH_FP32 && precision != DATH_TF32 && precision != DATH_BF16) {
        snprintf(err, err_len, "unknown precision %d (expected fp32, tf32 or bf16)", precision);
        return -1;
    }
    cost_trace *t = calloc(1, sizeof *t);
    t->forced = -1;
    snprintf(t->stream, sizeof t->stream, "?");
    ctx->stream = t;
    ctx->precision = precision;
    ctx->sm = 80;   /* the model's kernels: sm_80 and newer's (tensor cores at tf32/bf16); at fp32
                       sm_61/75 run the same plan, loading through registers */
    if (work_bytes) {
        ctx->work = cost_alloc(work_bytes);
        ctx->work_bytes = work_bytes;
    }
    return 0;
}

/* The model costs the work of both contexts in one trace, one kernel after another: a
 * sum, an upper bound on a step whose two streams overlap. */
static int cost_ctx_fork(const dath_ctx *parent, dath_ctx *child, char *err, size_t err_len) {
    *child = *parent;
    child->borrowed = 1;
    return 0;
}

static void cost_ctx_free(dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    if (t && !ctx->borrowed) {
        free(t->labels);
        free(t);
    }
    memset(ctx, 0, sizeof *ctx);
}

static const dath_backend cost_backend_table = {
    .name = "cost",
    .device = "the cost model's recording backend (nothing runs)",
    .ctx_init = cost_ctx_init,
    .ctx_free = cost_ctx_free,
    .ctx_fork = cost_ctx_fork,
    .alloc = cost_alloc,
    .free = cost_free_mem,
    .host_alloc = cost_host_alloc,
    .host_free = cost_host_free,
    .zero = cost_zero,
    .upload = cost_upload,
    .download = cost_download,
    .copy = cost_copy,
    .sync = cost_sync,
    .mem_info = cost_mem_info,
    .upload_async = cost_upload_async,
    .fence_create = cost_fence_create,
    .fence_free = cost_fence_free,
    .fence_record = cost_fence_record,
    .fence_wait = cost_fence_wait,
    .fence_sync = cost_fence_sync,
    .device_count = cost_device_count,
    .set_device = cost_set_device,
    .comm_create = cost_comm_create,
    .comm_join = cost_comm_join,
    .axpy = cost_axpy,
    .conv2d_forward = cost_conv2d_forward,
    .conv2d_backward = cost_conv2d_backward,
    .conv2d_forward_multi = cost_conv2d_forward_multi,
    .conv2d_backward_multi = cost_conv2d_backward_multi,
    .linear_forward = cost_linear_forward,
    .linear_backward = cost_linear_backward,
    .maxpool_forward = cost_maxpool_forward,
    .maxpool_backward = cost_maxpool_backward,
    .avgpool_forward = cost_avgpool_forward,
    .avgpool_backward = cost_avgpool_backward,
    .pam_forward = cost_pam_forward,
    .pam_backward = cost_pam_backward,
    .cam_forward = cost_cam_forward,
    .cam_backward = cost_cam_backward,
    .dropout_forward = cost_dropout_forward,
    .dropout_backward = cost_dropout_backward,
    .fuse_forward = cost_fuse_forward,
    .fuse_backward = cost_fuse_backward,
    .tanh_forward = cost_tanh_forward,
    .tanh_backward = cost_tanh_backward,
    .j1_triplet = cost_j1_triplet,
    .j2_class = cost_j2_class,
    .j3_quant = cost_j3_quant,
    .j3_tanh_backward = cost_j3_tanh_backward,
    .rmsprop_step = cost_rmsprop_step,
    .rmsprop_narrow = cost_rmsprop_narrow,
    .transform_batch = cost_transform_batch,
    .hamming_eval = cost_hamming_eval,
    .hamming_work_bytes = cost_hamming_work_bytes,
};

const dath_backend *cost_backend(void) { return &cost_backend_table; }

/* ==== 6. the passes ===================================================================== */

static void pass_begin(dath_ctx *ctx, cost_pass *ps, const char *name, int batch, cost_phase phase, int forced) {
    cost_trace *t = TRACE(ctx);
    memset(ps, 0, sizeof *ps);
    ps->name = name;
    ps->batch = batch;
    t->pass = ps;
    t->kcap = t->ocap = 0;
    t->phase = phase;
    t->forced = forced;
}

static void pass_end(dath_ctx *ctx) {
    cost_trace *t = TRACE(ctx);
    t->pass = NULL;
    t->forced = -1;
}

void cost_record_begin(dath_ctx *ctx, cost_pass *ps, const char *name, int batch) {
    TRACE(ctx)->err[0] = 0;
    pass_begin(ctx, ps, name, batch, COST_FORWARD, -1);
}

int cost_record_end(dath_ctx *ctx, char *err, size_t err_len) {
    pass_end(ctx);
    if (!TRACE(ctx)->err[0]) return 0;
    snprintf(err, err_len, "%s", TRACE(ctx)->err);
    return -1;
}

static void trace_params(dath_ctx *ctx, const dath_model *m, const float *theta, const float *grad) {
    cost_trace *t = TRACE(ctx);
    t->m = m;
    t->theta = theta;
    t->grad = grad;
    if (grad) label_set(t, grad, "parameter gradients");
}

/* The training step (and the epoch's last batch, and the input transform of each) on a
 * net of B images: what host/ranks.c sets up for one rank (comm_single, a scratch of
 * net_work_bytes(m, B, B)) and host/feed.c's feed_pop queues before each step. */
static int build_train(cost_model *cm, const dath_model *m, char *err, size_t err_len) {
    const dath_backend *be = cost_backend();
    const cost_config *cf = &cm->cfg;
    const int B = cf->B, S = cf->S, C = cf->C, R = transform_cache_side(S);
    dath_ctx ctx;
    if (be->ctx_init(&ctx, net_work_bytes(m, B, B), cf->precision, err, err_len)) return -1;
    ctx.conv_algo = cf->conv_algo;
    int rc = -1;
    dath_net *n = net_create(be, &ctx, m, B, 1, err, err_len);
    dath_comm *c = comm_single(be);
    dath_stepper *s = n ? stepper_create(n, c, err, err_len) : NULL;
    if (!s) goto out;
    trace_params(&ctx, m, net_theta(n), net_grad(n));
    float *x = be->alloc((size_t)B * 3 * S * S * sizeof(float));     /* [B,3,S,S] feed's fixed x */
    float *lab = be->alloc((size_t)B * C * sizeof(float));           /* [B,C] feed's fixed labels */
    uint8_t *set = be->alloc((size_t)COST_EPOCH_IMAGES * R * R * 3);  /* the decoded set on the device */
    int32_t *crop = be->alloc((size_t)B * 3 * sizeof(int32_t)), *index = be->alloc((size_t)B * sizeof(int32_t));
    float *slot_lab = be->alloc((size_t)B * C * sizeof(float));
    label_set(TRACE(&ctx), lab, "labels");
    label_set(TRACE(&ctx), slot_lab, "the labels' upload slot");
    step_config cfg;
    step_config_default(&cfg);
    cfg.multi = !cf->single_label;
    step_losses losses;
    cost_pass *steps[2] = {&cm->step, &cm->step_last}, *inputs[2] = {&cm->input, &cm->input_last};
    const char *sname[2] = {"step", "step_last"}, *iname[2] = {"input", "input_last"};
    int nb[2] = {B, cm->epoch_last};
    for (int i = 0; i < 2; i++) {
        if (nb[i] <= 0) continue;
        /* the activation-gradient zeroing opens the step: it is there for the backward */
        pass_begin(&ctx, steps[i], sname[i], nb[i], COST_BACKWARD, -1);
        int r = stepper_run(s, x, lab, nb[i], (uint32_t)(i + 1), &cfg, 1, &losses, err, err_len);
        pass_end(&ctx);
        if (r) goto out;
        /* feed_pop: the transform gathers the batch from the decoded set, then the
         * labels' copy into the fixed buffer */
        pass_begin(&ctx, inputs[i], iname[i], nb[i], COST_INPUT, COST_INPUT);
        be->transform_batch(x, set, crop, index, nb[i], R, S, &ctx);
        be->copy(lab, slot_lab, (size_t)nb[i] * C * sizeof(float), &ctx);
        pass_end(&ctx);
    }
    rc = 0;
out:
    if (rc == 0 && TRACE(&ctx)->err[0]) {
        snprintf(err, err_len, "%s", TRACE(&ctx)->err);
        rc = -1;
    }
    stepper_free(s);
    if (c) c->destroy(c);
    net_free(n);
    be->ctx_free(&ctx);
    return rc;
}

/* The encode pass of an encoder of `batch` images (host/encoder.c): its scratch of
 * encoder_work_bytes, one full batch through encoder_run. */
static int build_encode(cost_model *cm, cost_pass *ps, const char *name, int batch, const dath_model *m, char *err,
                        size_t err_len) {
    const dath_backend *be = cost_backend();
    dath_ctx ctx;
    if (be->ctx_init(&ctx, encoder_work_bytes(m, batch), cm->cfg.precision, err, err_len)) return -1;
    ctx.conv_algo = cm->cfg.conv_algo;
    int rc = -1;
    float *h = malloc((size_t)batch * m->K * sizeof *h);   /* [batch, K] host */
    dath_encoder *e = encoder_create(be, &ctx, m, batch, err, err_len);
    if (e) {
        trace_params(&ctx, m, net_theta(encoder_net(e)), NULL);
        pass_begin(&ctx, ps, name, batch, COST_ENCODE, COST_ENCODE);
        rc = encoder_run(e, batch, h, err, err_len);
        pass_end(&ctx);
        if (rc == 0 && TRACE(&ctx)->err[0]) {
            snprintf(err, err_len, "%s", TRACE(&ctx)->err);
            rc = -1;
        }
    }
    encoder_free(e);
    free(h);
    be->ctx_free(&ctx);
    return rc;
}

void cost_pass_free(cost_pass *ps) {
    free(ps->kernels);
    free(ps->ops);
    memset(ps, 0, sizeof *ps);
}

void cost_free(cost_model *cm) {
    cost_pass *all[] = {&cm->step, &cm->input, &cm->step_last, &cm->input_last, &cm->encode, &cm->encode_b1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cost_pass_free(all[i]);
}

int cost_build(cost_model *cm, const cost_config *cfg, char *err, size_t err_len) {
    memset(cm, 0, sizeof *cm);
    cm->cfg = *cfg;
    if (cfg->B < 1 || cfg->B > COST_J1_MAX_B) {
        snprintf(err, err_len, "batch %d out of range (1..%d: J1's CUDA kernel mines at most %d rows, "
                 "kernels/loss.cu)", cfg->B, COST_J1_MAX_B, COST_J1_MAX_B);
        return -1;
    }
    dath_model *m = model_create(cfg->variant, cfg->K, cfg->C, cfg->S, err, err_len);
    if (!m) return -1;
    cm->nparams = m->n;
    /* the epoch: its consecutive batches; the last partial one is kept unless it holds a
     * single image (README, Conventions) */
    cm->epoch_full = COST_EPOCH_IMAGES / cfg->B;
    int rest = COST_EPOCH_IMAGES % cfg->B;
    cm->epoch_last = rest >= 2 ? rest : 0;
    int rc = build_train(cm, m, err, err_len);
    if (!rc) rc = build_encode(cm, &cm->encode, "encode", cfg->B, m, err, err_len);
    if (!rc) rc = build_encode(cm, &cm->encode_b1, "encode_b1", 1, m, err, err_len);
    model_free(m);
    if (rc) cost_free(cm);
    return rc;
}
