/* host/comm_nccl_cuda.c — the communicator over NCCL (see comm.h): one process, one
 * communicator per GPU of this node, made together by ncclCommInitAll. Each rank's
 * thread calls the collectives on its own context's stream; NCCL orders them with the
 * step's kernels, and a step captured in a CUDA graph captures them too.
 * Built with CUDA; without NCCL (no nccl.h found) comm_nccl_create says so. */
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef DATH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>

typedef struct nccl_shared {
    int alive;
    pthread_mutex_t lock;
} nccl_shared;

typedef struct nccl_rank {
    ncclComm_t comm;
    nccl_shared *shared;
} nccl_rank;

static int nccl_fail(dath_comm *c, const char *what, ncclResult_t r) {
    snprintf(c->err, sizeof c->err, "%s: %s", what, ncclGetErrorString(r));
    return -1;
}

static int nccl_all_gather(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx) {
    nccl_rank *k = c->impl;
    ncclResult_t r = ncclAllGather(send, recv, count, ncclFloat, k->comm, (cudaStream_t)ctx->stream);
    return r == ncclSuccess ? 0 : nccl_fail(c, "ncclAllGather", r);
}

static int nccl_all_reduce(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    nccl_rank *k = c->impl;
    ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat, ncclSum, k->comm, (cudaStream_t)ctx->stream);
    return r == ncclSuccess ? 0 : nccl_fail(c, "ncclAllReduce", r);
}

static void nccl_destroy(dath_comm *c) {
    nccl_rank *k = c->impl;
    ncclCommDestroy(k->comm);
    pthread_mutex_lock(&k->shared->lock);
    int last = --k->shared->alive == 0;
    pthread_mutex_unlock(&k->shared->lock);
    if (last) {
        pthread_mutex_destroy(&k->shared->lock);
        free(k->shared);
    }
    free(k);
    free(c);
}

int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || world < 1 || world > n) {
        cudaGetLastError();
        snprintf(err, err_len, "%d ranks, but %d CUDA devices are visible", world, n);
        return -1;
    }
    ncclComm_t *cs = calloc((size_t)world, sizeof *cs);
    int *devs = calloc((size_t)world, sizeof *devs);
    for (int r = 0; r < world; r++) devs[r] = r;
    ncclResult_t rc = ncclCommInitAll(cs, world, devs);
    free(devs);
    if (rc != ncclSuccess) {
        snprintf(err, err_len, "ncclCommInitAll over %d GPUs: %s", world, ncclGetErrorString(rc));
        free(cs);
        return -1;
    }
    nccl_shared *sh = calloc(1, sizeof *sh);
    sh->alive = world;
    pthread_mutex_init(&sh->lock, NULL);
    for (int r = 0; r < world; r++) {
        nccl_rank *k = calloc(1, sizeof *k);
        k->comm = cs[r];
        k->shared = sh;
        comms[r] = comm_new(be, r, world, nccl_all_gather, nccl_all_reduce, nccl_destroy, k);
    }
    free(cs);
    return 0;
}

#else

int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    snprintf(err, err_len, "this dath was built without NCCL (nccl.h was not found): one GPU only");
    return -1;
}

#endif
