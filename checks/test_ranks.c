/* checks/test_ranks.c — the data-parallel step (host/step.c over several ranks) against
 * the same step on one rank, on the CPU: ranks are threads (comm_threads_create), each
 * with its own context, net and stepper and its slice of the global batch.
 *
 * DESIGN.md §6: h and labels are all-gathered so that triplets are mined over the
 * whole global batch; J2 and J3 are normalised by the global batch and summed over
 * ranks; gradients are summed; dropout masks are keyed by the global sample index.
 * So W ranks of B/W images must compute the one-rank step of B images, up to the
 * order of float sums:
 *   - J1 and the triplet count: the same (J1 is computed over the same gathered rows);
 *   - J2, J3: ULPs (a sum of W partial sums);
 *   - every gradient of the first step: within GRAD_MREL of its tensor's largest
 *     element (a GEMM over B/W images summed W times instead of one over B);
 *   - parameters after RMSProp: every rank bit-identical to every other, and within
 *     PARAM_ATOL of the one-rank step (from v = 0 an element moves by about ±10·lr, and
 *     an element whose gradient is near 0 can go either way: ≤ 20·lr);
 * for two steps (the second with other dropout masks and RMSProp state). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/backend.h"
#include "../host/comm.h"
#include "../host/model.h"
#include "../host/net.h"
#include "../host/step.h"
#include "check.h"

enum { BG = 8, K = 16, C = 4, NSTEPS = 2, MAXW = 4 };
static const double LOSS_RTOL = 1e-6;    /* J2, J3: measured ≤ 2e-7 */
static const double GRAD_MREL = 2e-6;    /* measured ≤ 6.6e-7 of the tensor's max */
/* PAM's key bias has a gradient of exactly 0 (adding q·b_k along a row of E leaves the
 * softmax unchanged): both sides give rounding noise, judged absolutely */
static const double GRAD_ATOL = 1e-9;
static const float LR = 1e-5f;
#define PARAM_ATOL (20.0 * LR)

typedef struct rank_job {
    const dath_backend *be;
    const dath_model *m;
    dath_comm *comm;
    const float *x, *lab;            /* the global batch [BG,3,S,S], [BG,C] */
    int B;                           /* this rank's rows */
    step_losses L[NSTEPS];
    float *grad[NSTEPS], *theta[NSTEPS];   /* [n] after each step */
    int rc;
    char err[256];
} rank_job;

static void *rank_main(void *arg) {
    rank_job *j = arg;
    const dath_backend *be = j->be;
    const dath_model *m = j->m;
    int r = j->comm->rank, S = m->S;
    dath_ctx ctx;
    j->rc = -1;
    if (be->ctx_init(&ctx, net_work_bytes(m, j->B, j->B * j->comm->world), DATH_FP32, j->err, sizeof j->err))
        return NULL;
    dath_net *n = net_create(be, &ctx, m, j->B, 1, j->err, sizeof j->err);
    dath_stepper *st = n ? stepper_create(n, j->comm, j->err, sizeof j->err) : NULL;
    if (st) {
        net_upload(n, m);
        step_config cfg;
        step_config_default(&cfg);
        cfg.lr = LR;
        cfg.seed = 21;
        const float *x = j->x + (size_t)r * j->B * 3 * S * S, *lab = j->lab + (size_t)r * j->B * C;
        j->rc = 0;
        for (int i = 0; i < NSTEPS && !j->rc; i++) {
            j->rc = stepper_run(st, x, lab, j->B, (uint32_t)(7 + i), &cfg, 1, &j->L[i], j->err, sizeof j->err);
            j->grad[i] = malloc(m->n * sizeof(float));
            j->theta[i] = malloc(m->n * sizeof(float));
            memcpy(j->grad[i], net_grad(n), m->n * sizeof(float));
            memcpy(j->theta[i], net_theta(n), m->n * sizeof(float));
        }
    }
    stepper_free(st);
    net_free(n);
    be->ctx_free(&ctx);
    return NULL;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* W ranks against one, variant v */
static void check_ranks(dath_variant v, int W) {
    char err[256], name[200];
    const dath_backend *be = backend_cpu();
    dath_model *m = model_create(v, K, C, model_min_input(), err, sizeof err);
    if (!CHECK_TRUE("model_create", m != NULL)) { printf("  %s\n", err); return; }
    model_init_default(m, 3);
    for (int i = 0; i < m->nparams; i++)   /* attention live */
        if (strstr(m->params[i].name, "gamma")) m->theta[m->params[i].offset] = 0.5f;
    int S = m->S;
    float *x = malloc((size_t)BG * 3 * S * S * sizeof(float)), lab[BG * C];
    uint64_t rs = 99;
    check_fill(x, (size_t)BG * 3 * S * S, -2.0f, 2.0f, &rs);
    for (int b = 0; b < BG; b++)   /* rows 0,1 / 2,3 / ... share a class; some two classes */
        for (int c = 0; c < C; c++) lab[b * C + c] = (float)((b / 2) % C == c || (b == 5 && c == 0));

    rank_job one = {be, m, comm_single(be), x, lab, BG};
    rank_main(&one);
    rank_job jobs[MAXW];
    dath_comm *comms[MAXW];
    pthread_t th[MAXW];
    if (comm_threads_create(be, W, comms, err, sizeof err)) { CHECK_TRUE(err, 0); return; }
    for (int r = 0; r < W; r++) {
        jobs[r] = (rank_job){be, m, comms[r], x, lab, BG / W};
        pthread_create(&th[r], NULL, rank_main, &jobs[r]);
    }
    for (int r = 0; r < W; r++) pthread_join(th[r], NULL);
    const char *vn = variant_name(v);
    int ok = one.rc == 0;
    for (int r = 0; r < W; r++) ok &= jobs[r].rc == 0;
    snprintf(name, sizeof name, "%s, %d ranks of %d: every step runs", vn, W, BG / W);
    if (!CHECK_TRUE(name, ok)) {
        printf("  one rank: %s\n", one.rc ? one.err : "ok");
        for (int r = 0; r < W; r++) printf("  rank %d: %s\n", r, jobs[r].rc ? jobs[r].err : "ok");
        return;
    }
    for (int i = 0; i < NSTEPS; i++) {
        for (int r = 0; r < W; r++) {
            const step_losses *a = &jobs[r].L[i], *b = &one.L[i];
            snprintf(name, sizeof name, "%s W=%d step %d rank %d: J1 and triplets as one rank", vn, W, i, r);
            CHECK_TRUE(name, fabs(a->j1 - b->j1) <= 1e-7 * fabs(b->j1) && a->ntriplets == b->ntriplets);
            double got[2] = {a->j2, a->j3}, ref[2] = {b->j2, b->j3};
            snprintf(name, sizeof name, "%s W=%d step %d rank %d: J2, J3", vn, W, i, r);
            check_close_d(name, got, ref, 2, 0.0, LOSS_RTOL);
        }
        /* gradients (all-reduced: rank 0's stands for all), per tensor; after step 0 the
         * parameters differ by up to 20·lr (see above), so the gradients of step 1 are
         * of slightly different parameters: only step 0's are compared */
        if (i == 0) {
            double worst = 0;
            const char *worst_name = "";
            for (int p = 0; p < m->nparams; p++) {
                const model_param *mp = &m->params[p];
                const float *g = jobs[0].grad[i] + mp->offset, *ref = one.grad[i] + mp->offset;
                double mx = max_abs(ref, mp->numel), e = 0;
                for (size_t k = 0; k < mp->numel; k++) e = fmax(e, fabs(g[k] - ref[k]));
                double rel = e <= GRAD_ATOL ? 0 : mx > 0 ? e / mx : e;
                if (rel > worst) { worst = rel; worst_name = mp->name; }
            }
            snprintf(name, sizeof name, "%s W=%d step %d: every gradient within %.0e of its max (worst %.2e, %s)", vn, W, i,
                     GRAD_MREL, worst, worst_name);
            CHECK_TRUE(name, worst <= GRAD_MREL);
        }
        int same = 1;
        for (int r = 1; r < W; r++) same &= !memcmp(jobs[r].theta[i], jobs[0].theta[i], m->n * sizeof(float));
        snprintf(name, sizeof name, "%s W=%d step %d: parameters bit-identical on every rank", vn, W, i);
        CHECK_TRUE(name, same);
        double pe = 0;
        for (size_t k = 0; k < m->n; k++) pe = fmax(pe, fabs(jobs[0].theta[i][k] - one.theta[i][k]));
        snprintf(name, sizeof name, "%s W=%d step %d: parameters within 20·lr of one rank's (worst %.2e)", vn, W, i, pe);
        CHECK_TRUE(name, pe <= PARAM_ATOL);
    }
    for (int i = 0; i < NSTEPS; i++) {
        free(one.grad[i]); free(one.theta[i]);
        for (int r = 0; r < W; r++) { free(jobs[r].grad[i]); free(jobs[r].theta[i]); }
    }
    one.comm->destroy(one.comm);
    for (int r = 0; r < W; r++) comms[r]->destroy(comms[r]);
    free(x);
    model_free(m);
}

int main(void) {
    check_ranks(VARIANT_DATH, 2);   /* two streams, both attention modules */
    check_ranks(VARIANT_N, 4);      /* two ranks' worth of slices of 2 images */
    return check_finish();
}
