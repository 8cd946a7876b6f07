/* host/step.h — one training step: forward, all-gather of h and labels over the
 * ranks, J1 (mined over the global batch), J2, J3, backward, all-reduce of the
 * gradients in buckets while the backward runs, RMSProp. Written against host/comm.h
 * only, so one rank and many ranks run the same code.
 *
 * Buckets (several ranks): the flat gradient buffer is cut into contiguous ranges of
 * whole parameters, at most bucket_bytes each (a larger tensor is a bucket of its own),
 * formed in the order the backward finishes the parameters (net.h's gradient hook) and
 * from parameters next to each other in the buffer. The first step of a stepper learns
 * that order (its gradients are summed in one piece after the backward); from then on
 * each bucket's sum is started (comm.h reduce_start) as soon as its last parameter's
 * gradient is written, so it overlaps the rest of the backward, and RMSProp waits for
 * all of them (reduce_wait). The schedule depends only on the model and bucket_bytes,
 * so it is the same on every rank.
 *
 * Loss weights: J = w1·J1 + beta·J2 + gamma·J3 (w1 = 1 in training; the checks set
 * one weight at a time to test each loss's gradient separately). */
#ifndef DATH_STEP_H
#define DATH_STEP_H

#include <stdint.h>
#include "comm.h"
#include "net.h"

typedef struct step_config {
    float lr, wd, alpha, eps;      /* RMSProp (DESIGN.md §3): 1e-5, 1e-5, 0.99, 1e-8 */
    float w1, beta, gamma;         /* loss weights: 1, 1, 0.01 */
    float margin;                  /* α of J1: 5 */
    int multi;                     /* J2: 1 multi-label (eq. 7), 0 single-label (eq. 6) */
    int dropout;                   /* 1 in training */
    uint64_t seed;
} step_config;

void step_config_default(step_config *c);

typedef struct step_losses {
    double j1, j2, j3, total;
    int64_t ntriplets;
    double stop_votes;             /* ranks that asked to stop after this step (stepper_vote) */
} step_losses;

#define STEP_BUCKET_MB_DEFAULT 32  /* --bucket-mb's default (README: the scaling model) */

typedef struct dath_stepper dath_stepper;

/* Scratch for the global batch (world * Bmax rows). NULL with a message. */
dath_stepper *stepper_create(dath_net *n, dath_comm *c, char *err, size_t err_len);
void stepper_free(dath_stepper *s);

/* One step on this rank's B images x [B,3,S,S] and labels lab [B,C] (backend
 * memory). step is the global step index (dropout keys), from 0; messages number the
 * steps from 1, as the training log does (index 4 is "step 5"). When update is 0 the
 * gradients are left in net_grad and the parameters are not changed.
 * Returns 0, or -1 with a message in err (a comm failure, or a non-finite loss:
 * then the parameters are untouched). stepper_run = stepper_launch + stepper_finish. */
int stepper_run(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                const step_config *cfg, int update, step_losses *out, char *err,
                size_t err_len);

/* The step in two halves, so that the host can prepare the next batch while the
 * backend computes: stepper_launch queues the whole step (parameters updated on the
 * backend unless a loss is not finite: RMSProp reads the losses and skips itself);
 * stepper_finish waits for it, reads the losses and reports a non-finite one. One
 * step may be in flight. Both return 0, or -1 with a message in err.
 *
 * CUDA graphs: with graphs on (the default) and a backend that has them, a step is
 * captured into a graph the second time the same (x, lab, B, update, cfg) is seen
 * (the first runs eagerly: a warm-up outside capture) and replayed from then on, so a
 * step costs one graph launch. The step index reaches the dropout ops through backend
 * memory, written before each launch, so a replay uses the current step. A step of
 * another batch size (an epoch's last, partial batch) simply runs eagerly or gets its
 * own graph. Eager and graph steps compute the same thing in the same order. */
int stepper_launch(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                   const step_config *cfg, int update, char *err, size_t err_len);
int stepper_finish(dath_stepper *s, step_losses *out, char *err, size_t err_len);

/* This rank's vote for the next launched step: 1 to stop after it (a signal), 0 not.
 * The votes are summed over ranks with J2 and J3, so every rank reads the same
 * stop_votes after the same step and they stop together. */
void stepper_vote(dath_stepper *s, int stop);

/* The bucket cap in bytes (0: one all-reduce of the whole buffer after the backward).
 * Call before the first step; the default is STEP_BUCKET_MB_DEFAULT MiB. */
void stepper_set_buckets(dath_stepper *s, size_t bucket_bytes);

/* The bucket schedule and what the last eagerly run step did with it (the recorded
 * trace): buckets in the order they are started, each a range of the gradient buffer
 * holding parameters p_first..p_last whose gradients one context's queue writes (a
 * bucket never mixes the two streams' queues, net.h's hook), its all-reduce ordered
 * after that queue; events in the order they happened. Buckets are known from the
 * second step on (nbuckets 0 before). */
typedef struct step_bucket {
    size_t offset, count;          /* floats of the gradient buffer */
    int p_first, p_last;           /* parameter indices (model.h), p_first ≤ p_last */
    dath_ctx *ctx;                 /* the queue that writes its gradients (net_ctx or the second stream's) */
} step_bucket;
enum { STEP_EV_GRAD, STEP_EV_START, STEP_EV_DONE, STEP_EV_BACKWARD_END, STEP_EV_WAIT_END };
typedef struct step_event {
    int kind;                      /* STEP_EV_* */
    int index;                     /* GRAD: the parameter; START: the bucket; DONE: buckets complete */
    double t;                      /* seconds since the step's launch */
    const dath_ctx *ctx;           /* GRAD: the queue that wrote it; START: the one the sum waits for; else NULL */
} step_event;
void stepper_buckets(const dath_stepper *s, const step_bucket **b, int *nbuckets, const step_event **ev,
                     int *nevents);

/* Writes the schedule and the trace (stepper_buckets) to path as JSON lines, atomically:
 * a {"trace":…} header (rank, world, step: the caller's label, cap), one {"bucket":k,…} line a bucket (its
 * range and parameters), then one {"event":…,"ms":…} line an event. 0, or -1 with a
 * message. */
int stepper_write_trace(const dath_stepper *s, const char *path, uint32_t step, char *err, size_t err_len);

/* Turns graph capture on (1, the default) or off (0: every step eager). Off frees
 * the graphs captured so far. */
void stepper_set_graphs(dath_stepper *s, int on);
/* Steps replayed from a graph, and graphs captured, so far. */
void stepper_graph_stats(const dath_stepper *s, long *replayed, int *captured);

#endif
