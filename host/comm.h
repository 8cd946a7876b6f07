/* host/comm.h — the communication a training step needs, over one or many ranks.
 *
 * The training step is written against this interface only: all-gather of the hash
 * outputs and labels (so that triplets are mined over the global batch) and a sum
 * all-reduce of the flat gradient buffer. comm_single() is the one-rank version;
 * the NCCL version implements the same table. Buffers are backend memory.
 * Every function returns 0, or -1 with a message in the comm's err. */
#ifndef DATH_COMM_H
#define DATH_COMM_H

#include <stddef.h>
#include "backend.h"

typedef struct dath_comm dath_comm;
struct dath_comm {
    int rank, world;
    char err[256];
    /* recv [world*count] receives every rank's send [count], in rank order */
    int (*all_gather)(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx);
    /* buf [count] becomes the sum over ranks, on every rank */
    int (*all_reduce_sum)(dath_comm *c, float *buf, size_t count, dath_ctx *ctx);
    void (*destroy)(dath_comm *c);
    const dath_backend *be;
    void *impl;
};

/* A communicator of rank `rank` of `world` with the given functions and implementation
 * state: what every communicator's constructor fills in. */
dath_comm *comm_new(const dath_backend *be, int rank, int world,
                    int (*all_gather)(dath_comm *, float *, const float *, size_t, dath_ctx *),
                    int (*all_reduce_sum)(dath_comm *, float *, size_t, dath_ctx *),
                    void (*destroy)(dath_comm *), void *impl);

/* One rank: all_gather copies, all_reduce_sum does nothing. */
dath_comm *comm_single(const dath_backend *be);

/* `world` ranks in one process, one thread each, over host memory: comms[r] is rank
 * r's. For backends whose memory the host addresses (the CPU reference): this is how
 * the data-parallel step is checked without GPUs (checks/test_ranks.c); GPUs use NCCL.
 * Every rank must call each collective, in the same order, from its own thread. The
 * sum adds the ranks' values in rank order (deterministic). Returns 0, or -1 with a
 * message in err; destroy each comm (the shared state goes with the last). */
int comm_threads_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len);

/* `world` ranks on CUDA devices 0..world−1 of this node, one NCCL communicator each
 * (ncclCommInitAll); the collectives run on the ctx's stream they are given (and can
 * be captured in a CUDA graph). -1 with a message when built without NCCL. CUDA only
 * (host/comm_nccl_cuda.c). */
int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len);

#endif
