/* host/ranks.h — the ranks of a data-parallel training run in one process (DESIGN.md §6).
 *
 * Rank r has device r, its own context, net, stepper and feed, and rows
 * [r·n/W, (r+1)·n/W) of every global batch of n images (W ranks). The stepper
 * all-gathers h and labels, so triplets are mined over the whole global batch, and
 * sums the gradients (host/step.h), over the backend's communicator: NCCL on CUDA,
 * threads over host memory on the CPU (comm.h). With several ranks each runs in a
 * thread of its own, driven phase by phase by the caller's thread; with one rank
 * everything runs in the caller's thread. A batch whose n is not a multiple of W (an
 * epoch's last) loses its last n mod W rows; --batch must be a multiple of W.
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

typedef struct ranks_config {
    const dath_backend *be;
    const dath_model *m;          /* parameters (and RMSProp state) each rank starts from */
    dath_prefetch *pf;
    int world;                    /* W ranks, devices 0..W−1 */
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
