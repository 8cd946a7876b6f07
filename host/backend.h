/* host/backend.h — the op table the host code is written against.
 *
 * A backend is a table of memory functions and op function pointers (types from
 * kernels/<family>.h). The model, the training step and encoding call ops only through
 * it, so the host code never branches on the backend beyond choosing it:
 *   backend_cpu()  — the plain-C reference (always present)
 *   backend_cuda() — the CUDA kernels (NULL when built without CUDA or no GPU) */
#ifndef DATH_BACKEND_H
#define DATH_BACKEND_H

#include <stddef.h>
#include "../kernels/common.h"
#include "../kernels/conv.h"
#include "../kernels/linear.h"
#include "../kernels/pool.h"
#include "../kernels/attention.h"
#include "../kernels/fusion.h"
#include "../kernels/loss.h"
#include "../kernels/rmsprop.h"
#include "../kernels/transform.h"
#include "../kernels/hamming.h"

enum { DATH_QUEUE_COMPUTE = 0, DATH_QUEUE_COPY = 1 };

struct dath_comm;   /* host/comm.h */
struct dath_dist;   /* host/dist.h */

typedef struct dath_backend {
    const char *name;            /* "cpu" or "cuda" */
    char device[128];            /* human-readable device description */

    /* context: creates the stream and BLAS handles (CUDA) and the scratch buffer.
     * Returns 0, or -1 with a message in err. */
    int (*ctx_init)(dath_ctx *ctx, size_t work_bytes, int precision, char *err, size_t err_len);
    void (*ctx_free)(dath_ctx *ctx);
    /* A second context beside parent, for work that may run at the same time as the
     * parent's (the network's second stream, host/net.c): on CUDA its own stream, BLAS
     * handles and scratch of parent's size and precision, on the parent's device; on the
     * CPU, where every op completes before it returns, the parent itself (its scratch
     * borrowed). Order the two with fences on DATH_QUEUE_COMPUTE of each; free the child
     * with ctx_free before the parent. Returns 0, or -1 with a message. */
    int (*ctx_fork)(const dath_ctx *parent, dath_ctx *child, char *err, size_t err_len);

    /* backend memory: alloc returns NULL on failure */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    /* host memory the backend copies from fastest (pinned on CUDA; malloc on the CPU) */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    void (*zero)(void *p, size_t bytes, dath_ctx *ctx);
    void (*upload)(void *dst, const void *src, size_t bytes, dath_ctx *ctx);   /* host → backend */
    void (*download)(void *dst, const void *src, size_t bytes, dath_ctx *ctx); /* backend → host, synchronous */
    void (*copy)(void *dst, const void *src, size_t bytes, dath_ctx *ctx);     /* backend → backend */
    void (*sync)(dath_ctx *ctx);
    /* Free and total backend memory in bytes (the host's for the CPU backend). */
    int (*mem_info)(size_t *free_bytes, size_t *total_bytes);

    /* A second queue for uploads (CUDA: the context's copy stream), so that the next
     * batch's copy overlaps the current step. upload_async copies host → backend on
     * the copy queue; src must be host_alloc memory and stay untouched until a fence
     * recorded on the copy queue after it has passed. Fences order the two queues
     * and the host:
     *   fence_record(f, q, ctx)  f passes when everything queued on q so far is done
     *   fence_wait(f, q, ctx)    work queued on q from now on waits for f
     *   fence_sync(f)            the host waits for f
     * On the CPU backend every op completes before it returns: upload_async is a copy
     * and fences are no-ops (fence_create still returns a non-NULL handle). */
    void (*upload_async)(void *dst, const void *src, size_t bytes, dath_ctx *ctx);
    void *(*fence_create)(void);                 /* NULL on failure */
    void (*fence_free)(void *f);
    void (*fence_record)(void *f, int queue, dath_ctx *ctx);
    void (*fence_wait)(void *f, int queue, dath_ctx *ctx);
    void (*fence_sync)(void *f);
    /* CUDA graphs: everything launched on ctx between graph_begin and graph_end is
     * captured into *graph; graph_launch replays it. NULL on the CPU backend, where
     * callers simply run the same code eagerly. Return 0, or -1. */
    int (*graph_begin)(dath_ctx *ctx);
    int (*graph_end)(dath_ctx *ctx, void **graph);
    int (*graph_launch)(dath_ctx *ctx, void *graph);
    void (*graph_free)(void *graph);

    /* Data-parallel ranks in one process. device_count: devices a rank can take (the
     * CPU backend: any number, ranks are threads). set_device: makes device `index`
     * current for the calling thread (CUDA: cudaSetDevice; a no-op on the CPU): call it
     * before ctx_init and before using a rank's context from another thread.
     * comm_create: the communicators of `world` ranks on devices 0..world−1 (CUDA:
     * NCCL, one communicator per device; CPU: threads over host memory, comm.h). Each
     * rank then calls every collective from its own thread. Return 0, or -1 with err.
     * comm_join: this process's communicator in a run of several processes (host/dist.h),
     * made on the current device (CUDA: NCCL, ncclCommInitRank; CPU: MPI's messages,
     * host/comm_mpi.c). */
    int (*device_count)(void);
    int (*set_device)(int index, char *err, size_t err_len);
    int (*comm_create)(const struct dath_backend *be, int world, struct dath_comm **comms, char *err,
                       size_t err_len);
    int (*comm_join)(const struct dath_backend *be, const struct dath_dist *d, struct dath_comm **comm, char *err,
                     size_t err_len);

    /* y[n] += a * x[n] (fan-in of gradients, ...) */
    void (*axpy)(float *y, const float *x, float a, size_t n, dath_ctx *ctx);

    conv2d_forward_fn *conv2d_forward;
    conv2d_backward_fn *conv2d_backward;
    conv2d_forward_multi_fn *conv2d_forward_multi;     /* both streams' conv1: one im2col */
    conv2d_backward_multi_fn *conv2d_backward_multi;
    linear_forward_fn *linear_forward;
    linear_backward_fn *linear_backward;
    maxpool_forward_fn *maxpool_forward;
    maxpool_backward_fn *maxpool_backward;
    avgpool_forward_fn *avgpool_forward;
    avgpool_backward_fn *avgpool_backward;
    pam_forward_fn *pam_forward;
    pam_backward_fn *pam_backward;
    cam_forward_fn *cam_forward;
    cam_backward_fn *cam_backward;
    dropout_forward_fn *dropout_forward;
    dropout_backward_fn *dropout_backward;
    fuse_forward_fn *fuse_forward;
    fuse_backward_fn *fuse_backward;
    tanh_forward_fn *tanh_forward;
    tanh_backward_fn *tanh_backward;
    j1_triplet_fn *j1_triplet;
    j2_class_fn *j2_class;
    j3_quant_fn *j3_quant;
    j3_tanh_backward_fn *j3_tanh_backward;             /* J3 with the tanh backward fused */
    rmsprop_step_fn *rmsprop_step;
    rmsprop_narrow_fn *rmsprop_narrow;
    transform_batch_fn *transform_batch;

    /* Hamming ranking and the per-query retrieval statistics (kernels/hamming.h), on
     * backend memory; hamming_work_bytes is the ctx->work it needs to rank `queries`
     * queries at once (0 on the CPU). host/retrieval.c is the one caller. */
    hamming_eval_fn *hamming_eval;
    size_t (*hamming_work_bytes)(int queries, int D, int B, int C, int depth, int tie_bounds);
} dath_backend;

const dath_backend *backend_cpu(void);

/* The CUDA backend, or NULL when this binary has no CUDA or no GPU is visible.
 * why (may be NULL) receives a one-line reason when NULL is returned. */
const dath_backend *backend_cuda(char *why, size_t why_len);

/* Chooses by name: "auto" (cuda when present, else cpu), "cpu", "cuda".
 * Returns NULL with a message in err when the named backend is not available. */
const dath_backend *backend_choose(const char *name, char *err, size_t err_len);

/* The names of the precisions, indexed by DATH_FP32, DATH_TF32, DATH_BF16, and the
 * names backend_choose takes ("auto" first); NULL-terminated (an option table's
 * choices, host/opts.h). */
extern const char *const backend_precisions[];
/* "implicit", "im2col", NULL: indexed by DATH_CONV_* (an OPT_ENUM's choices for --conv) */
extern const char *const backend_conv_algos[];
extern const char *const backend_devices[];

/* Parses "fp32", "tf32", "bf16" into DATH_*; -1 when unknown. */
int backend_precision_parse(const char *s);
/* --conv: "implicit" → DATH_CONV_IMPLICIT, "im2col" → DATH_CONV_IM2COL (the CUDA
 * convolutions' path, set into dath_ctx.conv_algo after ctx_init; kernels/conv.h), else -1. */
int backend_conv_algo_parse(const char *s);
const char *backend_conv_algo_name(int algo);   /* "implicit" or "im2col" */

#endif
