/* host/cost.h — the cost model: every kernel a training step and an encode pass launch
 * on the CUDA backend, with its FLOPs and the bytes of device memory it reads and
 * writes AS THE CODE IS WRITTEN TODAY, and each kernel's floor time on a GPU.
 *
 * How the kernel list is made. The model does not restate the network: it runs the
 * real host code — stepper_run (host/step.c), net_forward / net_backward_* (host/net.c),
 * encoder_run (host/encoder.c) — against a recording backend (cost_backend()) whose ops
 * compute nothing. Each op of that backend is the CUDA launcher of the same name in
 * kernels/<family>.cu, rewritten to append, in launch order, one entry per kernel launch
 * and per cuBLAS call that the launcher issues (chunks, strided-batched GEMMs, ReLU
 * masks and all). So the ORDER and the SET of ops come from the host code itself (a
 * change to net.c or step.c changes the list with no edit here), and each kernel's
 * entry sits in host/cost.c in the section of its kernels/<family>.cu file, in the same order
 * as the launcher: a change to a kernel is a change to the one function beside it.
 *
 * Conventions (host/cost.c states them again where they are used):
 *   - A cuBLAS GEMM C = op(A)·op(B) (+ C) counts 2·M·N·K FLOPs and reads A and B once
 *     and writes C once, plus reads C when beta ≠ 0 (the standard roofline convention);
 *     a strided-batched GEMM counts that for each of its products.
 *   - A hand-written kernel reads each element it loads once (reuse inside a block, a
 *     window overlap or a row held by one warp is cache reuse, not a re-read) and writes
 *     each element it stores once; a conditional store or load (ReLU masks, dropout) is
 *     counted in full (at DATH's ~50 % masks every 32-byte sector is touched).
 *   - Its FLOPs: one per float or double add, subtract, multiply, divide, square root,
 *     exp, log, log1p or tanh in the loop body; compares, min/max, selects, sign and
 *     integer arithmetic are not FLOPs; a reduction of n values counts n adds.
 *   - Host↔device transfers (the batch upload, the step index, the losses read back)
 *     are not device-memory kernels: they are counted apart and are not in any floor.
 *   - J1's work depends on the labels: the model takes every anchor with ⌊(B−1)/2⌋
 *     positives and ⌈(B−1)/2⌉ negatives, a bound no label set exceeds (np + nn = B − 1
 *     for each anchor) and two equal classes reach at even B: 516,096 triplets at 128.
 *
 * Floors. With a GPU's peaks (cost_peaks): a kernel's floor is
 *   max(FLOPs / peak of its unit, bytes / bandwidth),
 * the unit being the GEMM rate at the precision (fp32: CUDA cores, CUBLAS_COMPUTE_32F;
 * tf32/bf16: tensor cores) for the cuBLAS GEMMs, and the fp32 CUDA-core rate for every
 * other kernel. No launch latency, no tail effects: a floor, not a prediction of time.
 *
 * The ideal floor of a pass is the floor of a perfect fused implementation of the same
 * math: each op of the backend table the pass calls (a layer's forward or backward:
 * convolution with its bias and ReLU, pool, attention module, fully connected layer,
 * dropout, fusion, a loss, RMSProp, the input transform) as ONE kernel that reads each
 * tensor of its interface (its header in kernels/) once and writes each output once:
 * no column buffers, stages, transposes or other scratch, no separate bias / ReLU /
 * mask / bias-gradient passes, accumulated gradients written without being read;
 * memsets and copies that only move data (the gradient zeroing, the one-rank
 * all-gather) cost nothing. Its FLOPs are the op's as written (the same math). The
 * op's ideal floor is max(GEMM FLOPs / GEMM peak + other FLOPs / fp32 peak,
 * bytes / bandwidth); a pass's ideal floor is the sum over its ops.
 *
 * Ownership: cost_build fills a cost_model the caller frees with cost_free. Functions
 * returning int give 0, or -1 with a message in err. Not thread-safe (the recording
 * backend's fake address space is one static counter). */
#ifndef DATH_COST_H
#define DATH_COST_H

#include <stddef.h>

#include "backend.h"
#include "model.h"

typedef enum { COST_FORWARD, COST_BACKWARD, COST_UPDATE, COST_INPUT, COST_ENCODE } cost_phase;
typedef enum { COST_UNIT_GEMM, COST_UNIT_CORE } cost_unit;   /* cuBLAS GEMM, CUDA cores */

const char *cost_phase_name(cost_phase p);   /* "forward", "backward", "update", "input", "encode" */

/* One kernel launch or library call. */
typedef struct cost_kernel {
    char layer[64];          /* what it works on: "pam.conv2", "cam.attn", "hash", "rmsprop" */
    char shape[80];          /* its launch shape: "M×N×K" for a GEMM, elements otherwise */
    const char *kernel;      /* "conv_im2col_kernel", "cublasGemmEx", "cudaMemsetAsync", ... */
    const char *family;      /* the group the summaries add up ("im2col", "conv GEMM", ...) */
    cost_phase phase;
    cost_unit unit;
    double flops, bytes_read, bytes_written;
} cost_kernel;

/* One call of a backend op: its kernels and what the ideal implementation moves. */
typedef struct cost_op {
    char layer[64];
    const char *op;          /* the backend op: "conv2d_forward", "pam_backward", ... */
    cost_phase phase;
    int k0, nk;              /* its kernels: kernels[k0 .. k0+nk) of the pass */
    double gemm_flops, core_flops;   /* sums of its kernels' FLOPs by unit */
    double ideal_bytes;      /* its interface's tensors, each read once / written once */
} cost_op;

/* The kernels of one pass (a step, an input transform, an encode), in launch order. */
typedef struct cost_pass {
    const char *name;        /* "step", "input", "step_last", "input_last", "encode", "encode_b1" */
    int batch;
    cost_kernel *kernels;
    int nkernels;
    cost_op *ops;
    int nops;
    double host_up, host_down;   /* bytes copied host → device and back (not in the floor) */
} cost_pass;

/* What the model is built for. */
typedef struct cost_config {
    dath_variant variant;
    int K, C, B, S;          /* bits, classes, batch, input size */
    int precision;           /* DATH_FP32, DATH_TF32, DATH_BF16 */
    int single_label;        /* J2: 1 softmax cross-entropy (eq. 6), 0 eq. 7 (the default) */
    int conv_algo;           /* DATH_CONV_IMPLICIT (0, the CUDA default) or DATH_CONV_IM2COL */
} cost_config;

#define COST_EPOCH_IMAGES 10000   /* the epoch the issue and bench/gpu measure */

typedef struct cost_model {
    cost_config cfg;
    size_t nparams;          /* floats in the flat parameter buffer */
    /* a training step of B images; the per-batch input transform (feed.c's feed_pop:
     * the crop/flip/normalise gather from the decoded set on the device and the labels'
     * copy, outside the step's graph); the same two for the epoch's last, partial batch
     * (epoch_last images, 0 when there is none); the encode pass (transform + forward
     * without dropout) of an encoder of B images and of one of 1 image */
    cost_pass step, input, step_last, input_last, encode, encode_b1;
    int epoch_full, epoch_last;   /* COST_EPOCH_IMAGES = epoch_full·B + last (or a dropped 1) */
} cost_model;

/* Builds every pass by running the host code on the recording backend. */
int cost_build(cost_model *cm, const cost_config *cfg, char *err, size_t err_len);
void cost_free(cost_model *cm);

/* ---- GPUs and floors --------------------------------------------------------------- */

/* A row of the datasheet table (host/cost.c cites each figure's source). */
typedef struct cost_gpu {
    const char *name;        /* what --gpu takes: "h200", "h100", "a100", "rtx4090", ... */
    const char *label;       /* "NVIDIA H200 SXM 141GB" */
    int sm;                  /* compute capability ×10 (tf32/bf16 need 80 or more) */
    double fp32, tf32, bf16; /* dense TFLOP/s: CUDA-core fp32, tensor tf32, tensor bf16 with
                                fp32 accumulation; 0 where the GPU has no such unit */
    double gbs;              /* memory bandwidth, GB/s (10⁹ bytes a second) */
    const char *match[3];    /* substrings of cudaDeviceProp.name that mean this row */
} cost_gpu;

extern const cost_gpu cost_gpus[];
extern const int cost_ngpus;

const cost_gpu *cost_gpu_find(const char *name);          /* by --gpu name; NULL if none */
const cost_gpu *cost_gpu_match(const char *device_name);  /* by CUDA device name; NULL */

/* The peaks a floor divides by. */
typedef struct cost_peaks {
    double gemm_tflops;      /* the cuBLAS GEMMs' unit at the precision */
    double core_tflops;      /* fp32 CUDA cores: every other kernel */
    double gbs;              /* device memory bandwidth */
    char source[200];        /* where the figures came from */
} cost_peaks;

/* The peaks of g at a precision. measured_tflops > 0 replaces the GEMM rate (what
 * bench_peak measures at that precision; at fp32 the GEMMs run on the CUDA cores, so
 * it replaces the CUDA-core rate too); measured_gbs > 0 replaces the bandwidth (a device
 * copy's bytes read plus written per second). -1 with a message when g has no unit for
 * the precision (tf32/bf16 below sm_80, which the CUDA backend refuses as well). */
int cost_peaks_for(const cost_gpu *g, int precision, double measured_tflops, double measured_gbs,
                   cost_peaks *out, char *err, size_t err_len);

/* Seconds. A kernel's floor, and whether its compute term is the larger one. */
double cost_kernel_floor(const cost_kernel *k, const cost_peaks *p);
int cost_kernel_compute_bound(const cost_kernel *k, const cost_peaks *p);
/* An op's ideal floor (cost.h's definition above). */
double cost_op_ideal_floor(const cost_op *o, const cost_peaks *p);

typedef struct cost_totals {
    double flops, gemm_flops, bytes;   /* sums over the pass's kernels */
    double floor, ideal;               /* seconds: Σ kernel floors, Σ op ideal floors */
    int launches;
} cost_totals;

void cost_pass_totals(const cost_pass *ps, const cost_peaks *p, cost_totals *t);

/* Seconds for a COST_EPOCH_IMAGES epoch: epoch_full·(step + input) + the last batch's
 * (step_last + input_last); with ideal, the same with ideal floors. */
double cost_epoch_floor(const cost_model *cm, const cost_peaks *p, int ideal);

/* ---- the recording backend --------------------------------------------------------- */

/* The backend whose ops record kernels instead of running them (the CUDA backend's
 * launchers, as cost entries). Its memory is a fake address space: alloc returns
 * addresses that are never dereferenced (host code never reads backend memory
 * directly), download fills the host buffer with zeros. Its ctx_init keeps the scratch
 * size and precision (the launchers' chunking and GEMM unit depend on them) and puts
 * the recording state in ctx->stream; ctx_free releases it. cost_build drives it. */
const dath_backend *cost_backend(void);

/* Records into ps (emptied first; name and batch are its labels) every kernel that the
 * ops called on ctx (a context of cost_backend()) launch, until cost_record_end, which
 * returns -1 with a message when an op could not have run (too little scratch for a
 * chunk, a weight-set count the launcher refuses). For costing single ops; cost_build
 * uses the same recording. Free ps with cost_pass_free. */
void cost_record_begin(dath_ctx *ctx, cost_pass *ps, const char *name, int batch);
int cost_record_end(dath_ctx *ctx, char *err, size_t err_len);
void cost_pass_free(cost_pass *ps);

#endif
