/* host/comm_nccl_cuda.c — the communicator over NCCL (see comm.h), in two forms:
 *   - comm_nccl_create: one process, one communicator per GPU of this node, made
 *     together by ncclCommInitAll (`--ranks N`); each rank's thread calls the
 *     collectives with its own device current;
 *   - comm_nccl_join: one process a GPU, on any number of nodes (host/dist.h): rank 0
 *     makes the unique id (ncclGetUniqueId), the bootstrap hands it to every rank (MPI's
 *     broadcast, or the rendezvous file), and every rank calls ncclCommInitRank on its
 *     current device.
 * The all-gathers and the small sums run on the context's stream. The gradient buckets
 * run on a communication stream of the rank's device: reduce_start records an event on
 * the compute stream after the kernel that wrote the bucket's last gradient and makes
 * the communication stream wait for it, then queues ncclAllReduce there, so the sum
 * overlaps the rest of the backward; reduce_wait makes the compute stream wait for the
 * communication stream (RMSProp comes after). Both streams' work, events included, is
 * captured when the step is captured in a CUDA graph (the communication stream joins the
 * capture through the event). watch bounds the host's wait for a step: it polls an
 * event after the step and NCCL's asynchronous error, and on an error or after
 * timeout_s aborts the communicator (ncclCommAbort), so no process waits for ever for
 * one that died or hangs.
 * NOT RUN ON A GPU: this file compiles and links with NCCL 2.28 (CUDA 13) here; nothing
 * in it has been executed (README, "Several processes").
 * Built with CUDA; without NCCL (no nccl.h found) the constructors say so. */
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

#ifdef DATH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <time.h>

#include "clock.h"

typedef struct nccl_shared {   /* the communicators made together by ncclCommInitAll */
    int alive;
    pthread_mutex_t lock;
} nccl_shared;

typedef struct nccl_rank {
    ncclComm_t comm;
    nccl_shared *shared;       /* NULL for a joined communicator */
    cudaStream_t cstream;      /* the communication stream (buckets) */
    cudaEvent_t ready, done, fin;   /* compute → comm, comm → compute, the step's end (watch) */
    int aborted;
} nccl_rank;

static int nccl_fail(dath_comm *c, const char *what, ncclResult_t r) {
    snprintf(c->err, sizeof c->err, "rank %d: %s: %s", c->rank, what, ncclGetErrorString(r));
    return -1;
}

static int cuda_fail(dath_comm *c, const char *what, cudaError_t e) {
    snprintf(c->err, sizeof c->err, "rank %d: %s: %s", c->rank, what, cudaGetErrorString(e));
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

static int nccl_reduce_start(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    nccl_rank *k = c->impl;
    cudaError_t e;
    if ((e = cudaEventRecord(k->ready, (cudaStream_t)ctx->stream)) != cudaSuccess)
        return cuda_fail(c, "cudaEventRecord (a bucket's gradients written)", e);
    if ((e = cudaStreamWaitEvent(k->cstream, k->ready, 0)) != cudaSuccess)
        return cuda_fail(c, "cudaStreamWaitEvent (the communication stream)", e);
    ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat, ncclSum, k->comm, k->cstream);
    if (r != ncclSuccess) return nccl_fail(c, "ncclAllReduce (a gradient bucket)", r);
    c->started++;
    return 0;
}

/* The host does not follow the device here (a query would not be allowed inside a graph
 * capture): no bucket is reported complete before reduce_wait. */
static int nccl_reduce_progress(dath_comm *c, dath_ctx *ctx) { return 0; }

static int nccl_reduce_wait(dath_comm *c, dath_ctx *ctx) {
    nccl_rank *k = c->impl;
    cudaError_t e;
    if (c->started) {
        if ((e = cudaEventRecord(k->done, k->cstream)) != cudaSuccess)
            return cuda_fail(c, "cudaEventRecord (the buckets summed)", e);
        if ((e = cudaStreamWaitEvent((cudaStream_t)ctx->stream, k->done, 0)) != cudaSuccess)
            return cuda_fail(c, "cudaStreamWaitEvent (the compute stream)", e);
    }
    c->started = 0;
    return 0;
}

/* Everything queued on ctx's stream done, within timeout_s; NCCL's asynchronous error
 * or the time limit abort the communicator. */
static int nccl_watch(dath_comm *c, dath_ctx *ctx) {
    nccl_rank *k = c->impl;
    cudaError_t e = cudaEventRecord(k->fin, (cudaStream_t)ctx->stream);
    if (e != cudaSuccess) return cuda_fail(c, "cudaEventRecord (the step's end)", e);
    double t0 = dath_now();
    long polls = 0;
    for (;;) {
        e = cudaEventQuery(k->fin);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) return cuda_fail(c, "the step", e);
        ncclResult_t async = ncclSuccess, r = ncclCommGetAsyncError(k->comm, &async);
        if (r != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
            ncclCommAbort(k->comm);
            k->aborted = 1;
            return nccl_fail(c, "NCCL reported an error during the step (another rank died or a link failed); "
                             "communicator aborted", r != ncclSuccess ? r : async);
        }
        if (dath_now() - t0 > c->timeout_s) {
            ncclCommAbort(k->comm);
            k->aborted = 1;
            snprintf(c->err, sizeof c->err, "rank %d: the step's collectives did not complete within %.0f s "
                     "(--comm-timeout): another rank died or hangs; communicator aborted", c->rank, c->timeout_s);
            return -1;
        }
        if (++polls > 1000) {
            struct timespec t = {0, 100000};
            nanosleep(&t, NULL);
        }
    }
}

static void nccl_destroy(dath_comm *c) {
    nccl_rank *k = c->impl;
    if (!k->aborted) ncclCommDestroy(k->comm);
    if (k->ready) cudaEventDestroy(k->ready);
    if (k->done) cudaEventDestroy(k->done);
    if (k->fin) cudaEventDestroy(k->fin);
    if (k->cstream) cudaStreamDestroy(k->cstream);
    if (k->shared) {
        pthread_mutex_lock(&k->shared->lock);
        int last = --k->shared->alive == 0;
        pthread_mutex_unlock(&k->shared->lock);
        if (last) {
            pthread_mutex_destroy(&k->shared->lock);
            free(k->shared);
        }
    }
    free(k);
    free(c);
}

/* The communicator's table and its stream and events, on the current device. */
static dath_comm *nccl_wrap(const dath_backend *be, int rank, int world, ncclComm_t comm, nccl_shared *sh,
                            char *err, size_t err_len) {
    nccl_rank *k = calloc(1, sizeof *k);
    cudaError_t e = cudaErrorMemoryAllocation;
    if (!k || (e = cudaStreamCreateWithFlags(&k->cstream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&k->ready, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&k->done, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&k->fin, cudaEventDisableTiming)) != cudaSuccess) {
        snprintf(err, err_len, "rank %d: the communication stream and its events: %s", rank, cudaGetErrorString(e));
        if (k) {
            if (k->ready) cudaEventDestroy(k->ready);
            if (k->done) cudaEventDestroy(k->done);
            if (k->cstream) cudaStreamDestroy(k->cstream);
            free(k);
        }
        return NULL;
    }
    k->comm = comm;
    k->shared = sh;
    dath_comm *c = comm_new(be, rank, world, nccl_all_gather, nccl_all_reduce, nccl_destroy, k);
    if (!c) {
        snprintf(err, err_len, "rank %d: out of memory", rank);
        return NULL;
    }
    c->reduce_start = nccl_reduce_start;
    c->reduce_progress = nccl_reduce_progress;
    c->reduce_wait = nccl_reduce_wait;
    c->watch = nccl_watch;
    return c;
}

int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    int n = 0, dev0 = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || world < 1 || world > n) {
        cudaGetLastError();
        snprintf(err, err_len, "%d ranks, but %d CUDA devices are visible", world, n);
        return -1;
    }
    cudaGetDevice(&dev0);
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
        cudaSetDevice(r);   /* each rank's stream and events on its device */
        comms[r] = nccl_wrap(be, r, world, cs[r], sh, err, err_len);
        if (!comms[r]) {
            fprintf(stderr, "dath: %s\n", err);
            abort();   /* the other ranks' communicators belong to one clique: none can go on */
        }
    }
    cudaSetDevice(dev0);
    free(cs);
    return 0;
}

int comm_nccl_join(const dath_backend *be, const dath_dist *d, dath_comm **out, char *err, size_t err_len) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (d->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) {
        snprintf(err, err_len, "rank 0: ncclGetUniqueId: %s", ncclGetErrorString(r));
        return -1;
    }
    if (dist_share((dath_dist *)d, &id, sizeof id, err, err_len)) return -1;
    ncclComm_t comm;
    if ((r = ncclCommInitRank(&comm, d->world, id, d->rank)) != ncclSuccess) {
        snprintf(err, err_len, "rank %d: ncclCommInitRank (%d ranks, bootstrap %s): %s", d->rank, d->world,
                 dist_kind_name(d->kind), ncclGetErrorString(r));
        return -1;
    }
    dath_comm *c = nccl_wrap(be, d->rank, d->world, comm, NULL, err, err_len);
    if (!c) {
        ncclCommAbort(comm);
        return -1;
    }
    c->timeout_s = d->timeout_s > 0 ? d->timeout_s : COMM_DEFAULT_TIMEOUT_S;
    *out = c;
    return 0;
}

#else

int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    snprintf(err, err_len, "this dath was built without NCCL (nccl.h was not found): one GPU only");
    return -1;
}

int comm_nccl_join(const dath_backend *be, const dath_dist *d, dath_comm **out, char *err, size_t err_len) {
    snprintf(err, err_len, "rank %d: this dath was built without NCCL (nccl.h was not found): one GPU a run",
             d ? d->rank : 0);
    return -1;
}

#endif
