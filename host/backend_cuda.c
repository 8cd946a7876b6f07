/* host/backend_cuda.c — the CUDA backend's table (contract in backend.h): device
 * memory, one stream per context, cuBLAS/cuBLASLt handles bound to it, CUDA graphs,
 * and the `_cuda` ops of the kernels' .cu files. Built only with CUDA (plain C, gcc
 * -DDATH_CUDA).
 *
 * A context works on the device that is current when ctx_init is called (the caller
 * picks it with the CUDA runtime; one context per device). Its cuBLAS handle gets its
 * own workspace (CUDA_BLAS_WORKSPACE bytes), so that GEMMs captured into a graph never
 * allocate; the workspace is found again at ctx_free through a small registry keyed by
 * the handle, because dath_ctx has no field for it.
 *
 * Errors: functions returning int print the CUDA message to stderr (or into err) and
 * return -1; void functions cannot report, so a CUDA error there prints file, line and
 * message and aborts (as kernels/cuda_common.cuh does for the ops). alloc/host_alloc
 * return NULL on failure. */
#include "backend.h"

#include "comm.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_check.h"

#define BK_STREAM(ctx) ((cudaStream_t)(ctx)->stream)
#define BK_CUBLAS(ctx) ((cublasHandle_t)(ctx)->blas)

/* cuBLAS workspace per context: 32 MiB, what NVIDIA recommends for Hopper. */
#define CUDA_BLAS_WORKSPACE ((size_t)32 << 20)

/* ---- the workspace registry: cuBLAS handle → its workspace ------------------------ */

enum { CUDA_MAX_CTX = 64 };
static struct { cublasHandle_t handle; void *ws; } cuda_ws[CUDA_MAX_CTX];
static pthread_mutex_t cuda_ws_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns 0, or -1 when the registry is full. */
static int cuda_ws_add(cublasHandle_t h, void *ws) {
    int rc = -1;
    pthread_mutex_lock(&cuda_ws_lock);
    for (int i = 0; i < CUDA_MAX_CTX; i++)
        if (!cuda_ws[i].handle) {
            cuda_ws[i].handle = h;
            cuda_ws[i].ws = ws;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&cuda_ws_lock);
    return rc;
}

/* Removes h's entry and returns its workspace (NULL when h has none). */
static void *cuda_ws_take(cublasHandle_t h) {
    void *ws = NULL;
    pthread_mutex_lock(&cuda_ws_lock);
    for (int i = 0; i < CUDA_MAX_CTX; i++)
        if (cuda_ws[i].handle == h) {
            ws = cuda_ws[i].ws;
            cuda_ws[i].handle = NULL;
            cuda_ws[i].ws = NULL;
            break;
        }
    pthread_mutex_unlock(&cuda_ws_lock);
    return ws;
}

/* ---- context ----------------------------------------------------------------------- */

static const char *cuda_precision_name(int precision) {
    return precision == DATH_TF32 ? "tf32" : precision == DATH_BF16 ? "bf16" : "fp32";
}

static void cuda_ctx_free(dath_ctx *ctx) {
    if (ctx->stream) CUDA_CHECK(cudaStreamSynchronize(BK_STREAM(ctx)));
    if (ctx->blaslt) cublasLtDestroy((cublasLtHandle_t)ctx->blaslt);
    if (ctx->blas) {
        void *ws = cuda_ws_take(BK_CUBLAS(ctx));
        cublasDestroy(BK_CUBLAS(ctx));
        if (ws) CUDA_CHECK(cudaFree(ws));
    }
    if (ctx->work) CUDA_CHECK(cudaFree(ctx->work));
    if (ctx->copy_stream) {
        CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)ctx->copy_stream));
        CUDA_CHECK(cudaStreamDestroy((cudaStream_t)ctx->copy_stream));
    }
    if (ctx->stream) CUDA_CHECK(cudaStreamDestroy(BK_STREAM(ctx)));
    memset(ctx, 0, sizeof *ctx);
}

static int cuda_ctx_init(dath_ctx *ctx, size_t work_bytes, int precision, char *err,
                         size_t err_len) {
    memset(ctx, 0, sizeof *ctx);
    int dev = 0, major = 0, minor = 0;
    cudaError_t ce;
    cublasStatus_t bs;
    void *ws = NULL;

    if (precision != DATH_FP32 && precision != DATH_TF32 && precision != DATH_BF16) {
        snprintf(err, err_len, "unknown precision %d (expected fp32, tf32 or bf16)", precision);
        return -1;
    }
    if ((ce = cudaGetDevice(&dev)) != cudaSuccess ||
        (ce = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess ||
        (ce = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev)) != cudaSuccess) {
        snprintf(err, err_len, "CUDA device query failed: %s", cudaGetErrorString(ce));
        return -1;
    }
    if (precision != DATH_FP32 && major < 8) {
        snprintf(err, err_len, "--precision %s needs tensor cores with tf32/bf16 (compute "
                 "capability 8.0 or newer); device %d is sm_%d%d: use --precision fp32",
                 cuda_precision_name(precision), dev, major, minor);
        return -1;
    }
    ctx->precision = precision;
    ctx->sm = major * 10 + minor;
    ctx->conv_algo = DATH_CONV_IMPLICIT;   /* built for every architecture (kernels/conv.h) */

    cudaStream_t stream;
    if ((ce = cudaStreamCreate(&stream)) != cudaSuccess) {
        snprintf(err, err_len, "cudaStreamCreate: %s", cudaGetErrorString(ce));
        goto fail;
    }
    ctx->stream = stream;
    cudaStream_t copy_stream;
    if ((ce = cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(err, err_len, "cudaStreamCreate (copy stream): %s", cudaGetErrorString(ce));
        goto fail;
    }
    ctx->copy_stream = copy_stream;

    cublasHandle_t h;
    if ((bs = cublasCreate(&h)) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, err_len, "cublasCreate failed (status %d)", (int)bs);
        goto fail;
    }
    ctx->blas = h;
    /* the stream first: cublasSetStream resets the workspace to cuBLAS's default */
    if ((bs = cublasSetStream(h, stream)) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, err_len, "cublasSetStream failed (status %d)", (int)bs);
        goto fail;
    }
    if ((ce = cudaMalloc(&ws, CUDA_BLAS_WORKSPACE)) != cudaSuccess) {
        snprintf(err, err_len, "cudaMalloc of the %zu-byte cuBLAS workspace: %s",
                 CUDA_BLAS_WORKSPACE, cudaGetErrorString(ce));
        ws = NULL;
        goto fail;
    }
    if ((bs = cublasSetWorkspace(h, ws, CUDA_BLAS_WORKSPACE)) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, err_len, "cublasSetWorkspace failed (status %d)", (int)bs);
        goto fail;
    }
    if (cuda_ws_add(h, ws) != 0) {
        snprintf(err, err_len, "more than %d CUDA contexts at once", CUDA_MAX_CTX);
        goto fail;
    }
    ws = NULL;   /* the registry owns it now; ctx_free releases it */

    cublasLtHandle_t lt;
    if ((bs = cublasLtCreate(&lt)) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, err_len, "cublasLtCreate failed (status %d)", (int)bs);
        goto fail;
    }
    ctx->blaslt = lt;

    if (work_bytes) {
        void *work = NULL;
        if ((ce = cudaMalloc(&work, work_bytes)) != cudaSuccess) {
            snprintf(err, err_len, "cudaMalloc of %zu bytes of scratch: %s", work_bytes,
                     cudaGetErrorString(ce));
            goto fail;
        }
        ctx->work = work;
        ctx->work_bytes = work_bytes;
    }
    return 0;

fail:
    cudaGetLastError();   /* a failed allocation is not sticky: clear it */
    cuda_ctx_free(ctx);
    if (ws) cudaFree(ws); /* after the handle that pointed at it is gone */
    return -1;
}

static int cuda_ctx_fork(const dath_ctx *parent, dath_ctx *child, char *err, size_t err_len) {
    if (cuda_ctx_init(child, parent->work_bytes, parent->precision, err, err_len)) return -1;
    child->conv_algo = parent->conv_algo;   /* the run's choices, not ctx_init's defaults */
    child->conv_tile = parent->conv_tile;
    child->conv_split = parent->conv_split;
    return 0;
}

/* ---- memory ------------------------------------------------------------------------ */

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

static void *cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    /* portable: pinned for every device's context (one process drives all GPUs) */
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_host_free(void *p) {
    if (p) CUDA_CHECK(cudaFreeHost(p));
}

static void cuda_zero(void *p, size_t bytes, dath_ctx *ctx) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, BK_STREAM(ctx)));
}

static void cuda_upload(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, BK_STREAM(ctx)));
}

static void cuda_download(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, BK_STREAM(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(BK_STREAM(ctx)));
}

static void cuda_copy(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    if (bytes && dst != src)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, BK_STREAM(ctx)));
}

static void cuda_sync(dath_ctx *ctx) {
    CUDA_CHECK(cudaStreamSynchronize(BK_STREAM(ctx)));
}

static int cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

/* ---- the copy queue and fences (events without timing) ----------------------------- */

#define BK_QUEUE(ctx, q) ((cudaStream_t)((q) == DATH_QUEUE_COPY ? (ctx)->copy_stream : (ctx)->stream))

static void cuda_upload_async(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                   BK_QUEUE(ctx, DATH_QUEUE_COPY)));
}

static void *cuda_fence_create(void) {
    cudaEvent_t e = NULL;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return e;
}

static void cuda_fence_free(void *f) {
    if (f) CUDA_CHECK(cudaEventDestroy((cudaEvent_t)f));
}

static void cuda_fence_record(void *f, int queue, dath_ctx *ctx) {
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)f, BK_QUEUE(ctx, queue)));
}

static void cuda_fence_wait(void *f, int queue, dath_ctx *ctx) {
    CUDA_CHECK(cudaStreamWaitEvent(BK_QUEUE(ctx, queue), (cudaEvent_t)f, 0));
}

static void cuda_fence_sync(void *f) {
    CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)f));
}

/* ---- ranks -------------------------------------------------------------------------- */

static int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

static int cuda_set_device(int index, char *err, size_t err_len) {
    cudaError_t ce = cudaSetDevice(index);
    if (ce != cudaSuccess) {
        snprintf(err, err_len, "cudaSetDevice(%d): %s", index, cudaGetErrorString(ce));
        return -1;
    }
    return 0;
}

/* ---- graphs ------------------------------------------------------------------------ */

static int cuda_graph_begin(dath_ctx *ctx) {
    /* thread-local: with several ranks, each rank thread captures its own step at once */
    CUDA_TRY(cudaStreamBeginCapture(BK_STREAM(ctx), cudaStreamCaptureModeThreadLocal));
    dath_cuda_capturing = 1;
    return 0;
}

/* *graph receives an instantiated graph (cudaGraphExec_t). */
static int cuda_graph_end(dath_ctx *ctx, void **graph) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    *graph = NULL;
    dath_cuda_capturing = 0;
    CUDA_TRY(cudaStreamEndCapture(BK_STREAM(ctx), &g));
    cudaError_t ce = cudaGraphInstantiateWithFlags(&exec, g, 0);
    cudaGraphDestroy(g);
    if (ce != cudaSuccess) {
        fprintf(stderr, "dath: CUDA error %s at %s:%d: %s (cudaGraphInstantiateWithFlags)\n",
                cudaGetErrorName(ce), __FILE__, __LINE__, cudaGetErrorString(ce));
        return -1;
    }
    *graph = exec;
    return 0;
}

static int cuda_graph_launch(dath_ctx *ctx, void *graph) {
    CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)graph, BK_STREAM(ctx)));
    return 0;
}

static void cuda_graph_free(void *graph) {
    if (graph) CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}

/* ---- axpy -------------------------------------------------------------------------- */

/* y[n] += a·x[n], in pieces of at most INT_MAX elements (cuBLAS counts in int). */
static void cuda_axpy(float *y, const float *x, float a, size_t n, dath_ctx *ctx) {
    while (n) {
        const int m = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        CUBLAS_CHECK(cublasSaxpy(BK_CUBLAS(ctx), m, &a, x, 1, y, 1));
        x += m;
        y += m;
        n -= (size_t)m;
    }
}

/* ---- the table --------------------------------------------------------------------- */

static dath_backend cuda_backend = {
    .name = "cuda",
    .ctx_init = cuda_ctx_init,
    .ctx_free = cuda_ctx_free,
    .ctx_fork = cuda_ctx_fork,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .zero = cuda_zero,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .mem_info = cuda_mem_info,
    .upload_async = cuda_upload_async,
    .fence_create = cuda_fence_create,
    .fence_free = cuda_fence_free,
    .fence_record = cuda_fence_record,
    .fence_wait = cuda_fence_wait,
    .fence_sync = cuda_fence_sync,
    .device_count = cuda_device_count,
    .set_device = cuda_set_device,
    .comm_create = comm_nccl_create,
    .comm_join = comm_nccl_join,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .axpy = cuda_axpy,
    .conv2d_forward = conv2d_forward_cuda,
    .conv2d_backward = conv2d_backward_cuda,
    .conv2d_forward_multi = conv2d_forward_multi_cuda,
    .conv2d_backward_multi = conv2d_backward_multi_cuda,
    .linear_forward = linear_forward_cuda,
    .linear_backward = linear_backward_cuda,
    .maxpool_forward = maxpool_forward_cuda,
    .maxpool_backward = maxpool_backward_cuda,
    .avgpool_forward = avgpool_forward_cuda,
    .avgpool_backward = avgpool_backward_cuda,
    .pam_forward = pam_forward_cuda,
    .pam_backward = pam_backward_cuda,
    .cam_forward = cam_forward_cuda,
    .cam_backward = cam_backward_cuda,
    .dropout_forward = dropout_forward_cuda,
    .dropout_backward = dropout_backward_cuda,
    .fuse_forward = fuse_forward_cuda,
    .fuse_backward = fuse_backward_cuda,
    .tanh_forward = tanh_forward_cuda,
    .tanh_backward = tanh_backward_cuda,
    .j1_triplet = j1_triplet_cuda,
    .j2_class = j2_class_cuda,
    .j3_quant = j3_quant_cuda,
    .j3_tanh_backward = j3_tanh_backward_cuda,
    .rmsprop_step = rmsprop_step_cuda,
    .rmsprop_narrow = rmsprop_narrow_cuda,
    .transform_batch = transform_batch_cuda,
    .hamming_eval = hamming_eval_cuda,
    .hamming_work_bytes = hamming_cuda_work_bytes,
};

const dath_backend *backend_cuda(char *why, size_t why_len) {
    int n = 0, dev = 0;
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        if (why) snprintf(why, why_len, "no usable CUDA device (%s)", cudaGetErrorString(ce));
        return NULL;
    }
    if (n <= 0) {
        if (why) snprintf(why, why_len, "no CUDA device is visible");
        return NULL;
    }
    if (!cuda_backend.device[0]) {
        struct cudaDeviceProp prop;
        if ((ce = cudaGetDevice(&dev)) != cudaSuccess ||
            (ce = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) {
            cudaGetLastError();
            if (why) snprintf(why, why_len, "cannot query the CUDA device (%s)",
                              cudaGetErrorString(ce));
            return NULL;
        }
        const unsigned long long gib = ((unsigned long long)prop.totalGlobalMem + (1ull << 29)) >> 30;
        if (n > 1)
            snprintf(cuda_backend.device, sizeof cuda_backend.device,
                     "%.80s (sm_%d%d, %llu GiB), %d devices", prop.name, prop.major, prop.minor,
                     gib, n);
        else
            snprintf(cuda_backend.device, sizeof cuda_backend.device, "%.80s (sm_%d%d, %llu GiB)",
                     prop.name, prop.major, prop.minor, gib);
    }
    return &cuda_backend;
}
