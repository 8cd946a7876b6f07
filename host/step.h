/* host/step.h — one training step: forward, all-gather of h and labels over the
 * ranks, J1 (mined over the global batch), J2, J3, backward, all-reduce of the
 * gradients, RMSProp. Written against host/comm.h only, so one rank and many ranks
 * run the same code.
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
} step_losses;

typedef struct dath_stepper dath_stepper;

/* Scratch for the global batch (world * Bmax rows). NULL with a message. */
dath_stepper *stepper_create(dath_net *n, dath_comm *c, char *err, size_t err_len);
void stepper_free(dath_stepper *s);

/* One step on this rank's B images x [B,3,S,S] and labels lab [B,C] (backend
 * memory). step is the global step index (dropout keys). When update is 0 the
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

/* Turns graph capture on (1, the default) or off (0: every step eager). Off frees
 * the graphs captured so far. */
void stepper_set_graphs(dath_stepper *s, int on);
/* Steps replayed from a graph, and graphs captured, so far. */
void stepper_graph_stats(const dath_stepper *s, long *replayed, int *captured);

#endif
