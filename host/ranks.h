/* host/ranks.h — the ranks of a data-parallel training run (DESIGN.md §6) that this
 * process drives.
 *
 * Rank r of W has its own context, net, stepper and feed, and rows [r·n/W, (r+1)·n/W)
 * of every global batch of n images. The stepper all-gathers h and labels, so triplets
 * are mined over the whole global batch, and sums the gradients in buckets (host/step.h),
 * over the backend's communicator (comm.h). Two ways to have W ranks:
 *   - several processes (dist, host/dist.h: mpirun, srun, the environment bootstrap):
 *     this process is rank dist->rank on device dist->local_rank, over the backend's
 *     comm_join (NCCL across nodes on CUDA, MPI's messages on the CPU);
 *   - threads of this process (world > 1, one node: `--ranks N`): rank r on device r,
 *     over the backend's comm_create (NCCL's ncclCommInitAll on CUDA, host memory on
 *     the CPU), each in a thread of its own, driven phase by phase by the caller's
 *     thread.
 * With one rank in this process everything runs in the caller's thread. A batch whose n
 * is not a multiple of W (an epoch's last) loses its last n mod W rows; --batch must be
 * a multiple of W.
 *
 * Per step: ranks_launch (every rank pops its slice and launches the step) → the
 * caller fetches the next batch (overlapping the step) → ranks_finish (every rank
 * queues the upload of its slice of the next batch, waits for the step, and the
 * losses come back; they are the same on every rank). */
#ifndef DATH_RANKS_H
#define DATH_RANKS_H

#include "../loader/prefetch.h"
#include "backend.h"
#include "model.h"
#include "step.h"

typedef struct train_ranks train_ranks;

struct dath_dist;

typedef struct ranks_config {
    const dath_backend *be;
    const dath_model *m;          /* parameters (and RMSProp state) each rank starts from */
    dath_prefetch *pf;
    const struct dath_dist *dist; /* the processes (NULL or a world of 1: this one alone) */
    int world;                    /* ranks as threads of this process, devices 0..world−1 (1 with dist) */
    size_t bucket_bytes;          /* the gradient buckets' cap (step.h; 0: one after the backward) */
    double comm_timeout_s;        /* every communication wait's bound (comm.h) */
    int B, R, S, C;               /* global batch, cached side, input side, classes */
    int precision, conv_algo, data_mode;   /* DATH_*, DATH_CONV_*, FEED_DATA_* */
    int graphs;                   /* 1: CUDA graphs where the backend has them */
    size_t work0;                 /* rank 0's scratch at least this (evaluation) */
} ranks_config;

/* Creates the communicators and the ranks (each on its device). NULL with a message. */
train_ranks *ranks_create(const ranks_config *c, char *err, size_t err_len);
void ranks_free(train_ranks *t);

/* Rows each rank takes of a batch of n images (0: too few for every rank). */
int ranks_rows(const train_ranks *t, int n);

/* The run's ranks W, and the global rank of this process's first one. */
int ranks_world(const train_ranks *t);
int ranks_first(const train_ranks *t);

/* This process's vote to stop after the next launched step (step.h stepper_vote). */
void ranks_vote(train_ranks *t, int stop);

/* Several processes, before the first epoch: each decodes its share of the list
 * (loader/prefetch.h), the statuses are summed over the processes, and pf plans
 * every epoch from them. Nothing with one process. 0, or -1 with a message. */
int ranks_share(train_ranks *t, dath_prefetch *pf, int epoch, char *err, size_t err_len);

/* Several processes: every rank waits here, without the communication time limit,
 * until every other has come (after rank 0 alone evaluated). 0, or -1 with a message. */
int ranks_meet(train_ranks *t, char *err, size_t err_len);

/* The bucket schedule and trace of this process's first rank (step.h). */
const dath_stepper *ranks_stepper0(const train_ranks *t);

/* Before prefetch_begin_epoch: every rank's feed_epoch; when every rank now holds the
 * decoded set, the prefetcher's pixel copies are turned off. note: a line, or "". */
int ranks_epoch(train_ranks *t, char *note, size_t note_len, char *err, size_t err_len);

/* Queues the upload of every rank's slice of b (ranks_rows(b->n) ≥ 1). */
int ranks_push(train_ranks *t, const prefetch_batch *b, char *err, size_t err_len);

/* Every rank pops its slice and launches the step (returns once they are launched). */
int ranks_launch(train_ranks *t, uint32_t step, const step_config *cfg, char *err, size_t err_len);

/* Queues every rank's slice of next (NULL: none), waits for the step, retires its
 * batch; *L from rank 0. -1 with a message (a non-finite loss, a failed collective). */
int ranks_finish(train_ranks *t, const prefetch_batch *next, step_losses *L, char *err, size_t err_len);

/* Frees every rank's feed slots (end of an epoch, or a stop). */
void ranks_drain(train_ranks *t);

/* Rank 0's parameters and RMSProp state into m (in the caller's thread). */
void ranks_download(train_ranks *t, dath_model *m);

/* Rank 0's context, with device 0 made current in the caller's thread (evaluation). */
dath_ctx *ranks_ctx0(train_ranks *t);

/* Steps replayed from CUDA graphs, and graphs captured, on rank 0. */
void ranks_graph_stats(const train_ranks *t, long *replayed, int *captured);

#endif
