/* host/backend.c — choosing a backend, and the CPU backend's table. */
#include "backend.h"

#include "comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the CPU backend: host memory, the reference ops ---------------------------- */

static int cpu_ctx_init(dath_ctx *ctx, size_t work_bytes, int precision, char *err, size_t err_len) {
    memset(ctx, 0, sizeof *ctx);
    if (precision != DATH_FP32) {
        snprintf(err, err_len, "--precision %s needs the CUDA backend on a GPU with tensor cores (sm_80+); the CPU backend computes in fp32",
                 precision == DATH_TF32 ? "tf32" : "bf16");
        return -1;
    }
    if (work_bytes) {
        ctx->work = malloc(work_bytes);
        if (!ctx->work) { snprintf(err, err_len, "out of memory (%zu bytes of scratch)", work_bytes); return -1; }
        ctx->work_bytes = work_bytes;
    }
    return 0;
}
static void cpu_ctx_free(dath_ctx *ctx) {
    if (!ctx->borrowed) free(ctx->work);
    memset(ctx, 0, sizeof *ctx);
}
static int cpu_ctx_fork(const dath_ctx *parent, dath_ctx *child, char *err, size_t err_len) {
    *child = *parent;
    child->borrowed = 1;
    return 0;
}
static void *cpu_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes, dath_ctx *ctx) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes, dath_ctx *ctx) {
    if (dst != src) memmove(dst, src, bytes);
}
static void cpu_sync(dath_ctx *ctx) {}
static int cpu_mem_info(size_t *free_bytes, size_t *total_bytes) {
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), all = sysconf(_SC_PHYS_PAGES);
    if (page <= 0 || avail < 0 || all <= 0) return -1;
    *free_bytes = (size_t)avail * (size_t)page;
    *total_bytes = (size_t)all * (size_t)page;
    return 0;
}
static void cpu_upload_async(void *dst, const void *src, size_t bytes, dath_ctx *ctx) { memcpy(dst, src, bytes); }
static char cpu_fence;   /* every CPU op is complete when it returns: one shared handle */
static void *cpu_fence_create(void) { return &cpu_fence; }
static void cpu_fence_free(void *f) {}
static void cpu_fence_record(void *f, int queue, dath_ctx *ctx) {}
static void cpu_fence_wait(void *f, int queue, dath_ctx *ctx) {}
static void cpu_fence_sync(void *f) {}
static int cpu_device_count(void) { return 1 << 16; }
static int cpu_set_device(int index, char *err, size_t err_len) { return 0; }
static int cpu_comm_create(const dath_backend *be, int world, struct dath_comm **comms, char *err, size_t err_len) {
    return comm_threads_create(be, world, comms, err, err_len);
}
static void cpu_axpy(float *y, const float *x, float a, size_t n, dath_ctx *ctx) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* The reference ranks in host memory with no scratch of ctx's. */
static size_t cpu_hamming_work_bytes(int queries, int D, int B, int C, int depth, int tie_bounds) { return 0; }

static dath_backend cpu_backend = {
    .name = "cpu",
    .ctx_init = cpu_ctx_init,
    .ctx_free = cpu_ctx_free,
    .ctx_fork = cpu_ctx_fork,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .host_alloc = cpu_alloc,
    .host_free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .mem_info = cpu_mem_info,
    .upload_async = cpu_upload_async,
    .fence_create = cpu_fence_create,
    .fence_free = cpu_fence_free,
    .fence_record = cpu_fence_record,
    .fence_wait = cpu_fence_wait,
    .fence_sync = cpu_fence_sync,
    .device_count = cpu_device_count,
    .set_device = cpu_set_device,
    .comm_create = cpu_comm_create,
    .comm_join = comm_mpi_create,
    .axpy = cpu_axpy,
    .conv2d_forward = conv2d_forward_cpu,
    .conv2d_backward = conv2d_backward_cpu,
    .conv2d_forward_multi = conv2d_forward_multi_cpu,
    .conv2d_backward_multi = conv2d_backward_multi_cpu,
    .linear_forward = linear_forward_cpu,
    .linear_backward = linear_backward_cpu,
    .maxpool_forward = maxpool_forward_cpu,
    .maxpool_backward = maxpool_backward_cpu,
    .avgpool_forward = avgpool_forward_cpu,
    .avgpool_backward = avgpool_backward_cpu,
    .pam_forward = pam_forward_cpu,
    .pam_backward = pam_backward_cpu,
    .cam_forward = cam_forward_cpu,
    .cam_backward = cam_backward_cpu,
    .dropout_forward = dropout_forward_cpu,
    .dropout_backward = dropout_backward_cpu,
    .fuse_forward = fuse_forward_cpu,
    .fuse_backward = fuse_backward_cpu,
    .tanh_forward = tanh_forward_cpu,
    .tanh_backward = tanh_backward_cpu,
    .j1_triplet = j1_triplet_cpu,
    .j2_class = j2_class_cpu,
    .j3_quant = j3_quant_cpu,
    .j3_tanh_backward = j3_tanh_backward_cpu,
    .rmsprop_step = rmsprop_step_cpu,
    .rmsprop_narrow = rmsprop_narrow_cpu,
    .transform_batch = transform_batch_cpu,
    .hamming_eval = hamming_eval_cpu,
    .hamming_work_bytes = cpu_hamming_work_bytes,
};

const dath_backend *backend_cpu(void) {
    if (!cpu_backend.device[0]) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(cpu_backend.device, sizeof cpu_backend.device, "CPU reference (%ld cores, OpenBLAS, fp32)", n);
    }
    return &cpu_backend;
}

#ifndef DATH_CUDA
const dath_backend *backend_cuda(char *why, size_t why_len) {
    if (why) snprintf(why, why_len, "this dath was built without CUDA (nvcc was not found, or CUDA=0)");
    return NULL;
}
#endif

const dath_backend *backend_choose(const char *name, char *err, size_t err_len) {
    char why[256] = "";
    if (!name || !strcmp(name, "auto")) {
        const dath_backend *be = backend_cuda(why, sizeof why);
        return be ? be : backend_cpu();
    }
    if (!strcmp(name, "cpu")) return backend_cpu();
    if (!strcmp(name, "cuda")) {
        const dath_backend *be = backend_cuda(why, sizeof why);
        if (!be) snprintf(err, err_len, "--device cuda: %s", why);
        return be;
    }
    snprintf(err, err_len, "--device '%s': expected auto, cpu or cuda", name);
    return NULL;
}

const char *const backend_precisions[] = {"fp32", "tf32", "bf16", NULL};
const char *const backend_devices[] = {"auto", "cpu", "cuda", NULL};
const char *const backend_conv_algos[] = {"implicit", "im2col", NULL};   /* DATH_CONV_* order */

int backend_precision_parse(const char *s) {
    for (int i = 0; backend_precisions[i]; i++)
        if (!strcmp(s, backend_precisions[i])) return i;
    return -1;
}

int backend_conv_algo_parse(const char *s) {
    if (!strcmp(s, "implicit")) return DATH_CONV_IMPLICIT;
    if (!strcmp(s, "im2col")) return DATH_CONV_IM2COL;
    return -1;
}

const char *backend_conv_algo_name(int algo) {
    return algo == DATH_CONV_IM2COL ? "im2col" : "implicit";
}
