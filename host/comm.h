/* host/comm.h — the communication a training step needs, over one or many ranks.
 *
 * The training step is written against this interface only: all-gather of the hash
 * outputs and labels (so that triplets are mined over the global batch) and sum
 * all-reduces of the flat gradient buffer, in buckets. comm_single() is the one-rank
 * version; threads (one process), MPI (processes, the CPU backend) and NCCL (GPUs)
 * implement the same table. Buffers are backend memory. Every function returns 0, or
 * -1 with a message in the comm's err that names this rank.
 *
 * Bucketed all-reduce: reduce_start(buf, count) begins the sum over ranks of one
 * bucket and returns without waiting for it; reduce_progress lets the buckets in flight
 * advance (MPI: their messages are tested and each finished exchange starts the next
 * phase) and returns how many of this step's buckets are complete; reduce_wait makes
 * the work queued from now on wait for every bucket started (NCCL: the compute stream
 * waits for the communication stream; MPI and threads: the host waits). Every rank
 * starts the same buckets in the same order. The sum of an element is the same bits on
 * every rank and does not depend on timing (threads and MPI: each element is added up
 * in rank order, 0 first, by one rank and sent to the others; NCCL: its ring or tree
 * order for the given sizes). On CUDA the calls are queued on streams and can be
 * captured in a CUDA graph. A comm without a real asynchronous sum (one rank, threads)
 * completes each bucket inside reduce_start.
 *
 * Time limit: timeout_s bounds every wait (MPI: a message that has not come; NCCL:
 * watch, the host's wait for the step's collectives); the message then names the ranks
 * that hang when the comm can tell (MPI: it asks the ranks it waited for what they wait
 * for, and names the ones that do not answer within a grace apart from those that wait
 * too; NCCL: it cannot). */
#ifndef DATH_COMM_H
#define DATH_COMM_H

#include <stddef.h>
#include "backend.h"

typedef struct dath_comm dath_comm;
struct dath_comm {
    int rank, world;
    double timeout_s;             /* bound of every wait (default COMM_DEFAULT_TIMEOUT_S) */
    char err[512];
    /* recv [world*count] receives every rank's send [count], in rank order */
    int (*all_gather)(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx);
    /* buf [count] becomes the sum over ranks, on every rank (= reduce_start + reduce_wait) */
    int (*all_reduce_sum)(dath_comm *c, float *buf, size_t count, dath_ctx *ctx);
    /* the bucketed all-reduce (above); reduce_progress returns the buckets complete, or -1 */
    int (*reduce_start)(dath_comm *c, float *buf, size_t count, dath_ctx *ctx);
    int (*reduce_progress)(dath_comm *c, dath_ctx *ctx);
    int (*reduce_wait)(dath_comm *c, dath_ctx *ctx);
    /* Before the host reads a step's results: waits, within timeout_s, for everything
     * queued on ctx (NCCL: polls the step's end and NCCL's asynchronous errors, and
     * aborts the communicator on a failure or a timeout). NULL where the backend's
     * ops finish before they return (the CPU). */
    int (*watch)(dath_comm *c, dath_ctx *ctx);
    void (*destroy)(dath_comm *c);
    const dath_backend *be;
    void *impl;
    int started;                  /* buckets started since the last reduce_wait (the defaults') */
};

#define COMM_DEFAULT_TIMEOUT_S 300.0

/* A communicator of rank `rank` of `world` with the given functions and implementation
 * state: what every communicator's constructor fills in. The bucket functions default
 * to a sum inside reduce_start (all_reduce_sum) with nothing to wait for; watch to NULL;
 * a constructor replaces them where it has better. */
dath_comm *comm_new(const dath_backend *be, int rank, int world,
                    int (*all_gather)(dath_comm *, float *, const float *, size_t, dath_ctx *),
                    int (*all_reduce_sum)(dath_comm *, float *, size_t, dath_ctx *),
                    void (*destroy)(dath_comm *), void *impl);

/* One rank: all_gather copies, the sums do nothing. */
dath_comm *comm_single(const dath_backend *be);

/* `world` ranks in one process, one thread each, over host memory: comms[r] is rank
 * r's. For backends whose memory the host addresses (the CPU reference): this is how
 * `--ranks N` runs on the CPU and how the data-parallel step is checked with threads
 * (checks/test_ranks.c). Every rank must call each collective, in the same order, from
 * its own thread. The sum adds the ranks' values in rank order (deterministic); a
 * bucket is summed inside reduce_start (the ranks meet there). Returns 0, or -1 with a
 * message in err; destroy each comm (the shared state goes with the last). */
int comm_threads_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len);

/* `world` ranks on CUDA devices 0..world−1 of this node, one NCCL communicator each
 * (ncclCommInitAll); the collectives run on the ctx's stream (all-gathers) or on a
 * communication stream of the rank's device ordered by events (buckets), and can be
 * captured in a CUDA graph. -1 with a message when built without NCCL. CUDA only
 * (host/comm_nccl_cuda.c). */
int comm_nccl_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len);

struct dath_dist;   /* host/dist.h */

/* This process's rank of a run of several processes (host/dist.h), through NCCL: the
 * unique id made by rank 0 and shared through the bootstrap (MPI, or the rendezvous
 * file), ncclCommInitRank on the current device. CUDA only; -1 with a message when
 * built without NCCL. */
int comm_nccl_join(const dath_backend *be, const struct dath_dist *d, dath_comm **out, char *err, size_t err_len);

/* The same over MPI's point-to-point messages for backends whose memory the host
 * addresses (the CPU reference): the all-gather and, per bucket, a deterministic
 * reduce-scatter (rank s adds up slice s of the bucket in rank order) and all-gather,
 * every message non-blocking, every wait bounded by timeout_s and naming the ranks
 * whose messages did not come. -1 with a message when built without MPI or when d is
 * not an MPI run (host/comm_mpi.c). */
int comm_mpi_create(const dath_backend *be, const struct dath_dist *d, dath_comm **out, char *err, size_t err_len);

#endif
