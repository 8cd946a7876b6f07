/* checks/test_mpi.c — the data-parallel step over processes (host/comm_mpi.c, one MPI
 * process a rank, the CPU backend) against one process on the whole batch and against
 * ranks as threads of one process (host/comm.c), and the bucket schedule's trace.
 *
 * Run as it is (make test), it launches itself with mpirun: 2 processes of DATH (two
 * streams, both attention modules), 4 of DATH-N and 4 of the hang (--oversubscribe: this
 * machine may have fewer cores; as root with --allow-run-as-root), and fails when any
 * fails.
 * Skips without MPI (a dath built without it, or no mpirun).
 *
 * Each process runs NSTEPS steps of its slice of the global batch, with gradient
 * buckets of BUCKET_BYTES (so the model makes several); rank 0 then runs the same steps
 * on one process (comm_single, the whole batch) and on W threads (comm_threads_create,
 * the same slices), and checks, as checks/test_ranks.c does for threads:
 *   - J1 and the triplet count equal to one process's; J2, J3 within LOSS_RTOL;
 *   - step 0's gradients within GRAD_MREL of each tensor's largest element of one
 *     process's; parameters within 20·lr of one process's;
 *   - gradients and parameters identical on every rank (64-bit hashes gathered) and
 *     bit for bit equal to the threads' (both add up every element in rank order, so
 *     buckets, their order and the messages' timing cannot change a bit);
 *   - step 1 (the first with buckets): its trace: the buckets tile the gradient buffer
 *     (contiguous, disjoint, every parameter in one), none above the cap unless it is a
 *     single tensor, started once each in schedule order (the order the backward
 *     finishes their parameters) as soon as its last gradient was written, every one
 *     before the backward ended, the first while most gradients were still to come.
 * A third run (--worker hang, 4 processes) checks the time limit: one rank silent, one
 * late; the others stop within the limit and the grace of their asks, and name the
 * silent rank as the one that does not answer, the late one as waiting (worker_hang). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../host/backend.h"
#include "../host/clock.h"
#include "../host/comm.h"
#include "../host/dist.h"
#include "../host/model.h"
#include "../host/net.h"
#include "../host/step.h"
#include "check.h"

#ifdef DATH_MPI
#include <mpi.h>
#endif

enum { BG = 8, K = 16, C = 4, NSTEPS = 2, MAXW = 8 };
static const double LOSS_RTOL = 1e-6;
static const double GRAD_MREL = 2e-6;
static const double GRAD_ATOL = 1e-9;   /* PAM's key bias: a gradient of exactly 0 (test_ranks.c) */
static const float LR = 1e-5f;
static const size_t BUCKET_BYTES = 4u << 20;   /* 4 MiB: fc6 and fc7 alone, the convolutions in a few */
#define PARAM_ATOL (20.0 * LR)

typedef struct job {
    const dath_backend *be;
    const dath_model *m;
    dath_comm *comm;
    const float *x, *lab;            /* the global batch */
    int B, keep;                     /* rows; keep: copy grad/theta after each step */
    step_losses L[NSTEPS];
    uint64_t hg[NSTEPS], ht[NSTEPS]; /* hashes of grad and theta after each step */
    float *grad[NSTEPS], *theta[NSTEPS];
    step_bucket *bk;                 /* step 1's schedule and trace (copies) */
    int nbk, nev;
    step_event *ev;
    int rc;
    char err[600];
} job;

static uint64_t fnv(const float *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void *job_main(void *arg) {
    job *j = arg;
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
        stepper_set_buckets(st, BUCKET_BYTES);
        net_upload(n, m);
        step_config cfg;
        step_config_default(&cfg);
        cfg.lr = LR;
        cfg.seed = 21;
        const float *x = j->x + (size_t)r * j->B * 3 * S * S, *lab = j->lab + (size_t)r * j->B * C;
        j->rc = 0;
        for (int i = 0; i < NSTEPS && !j->rc; i++) {
            j->rc = stepper_run(st, x, lab, j->B, (uint32_t)(7 + i), &cfg, 1, &j->L[i], j->err, sizeof j->err);
            j->hg[i] = fnv(net_grad(n), m->n);
            j->ht[i] = fnv(net_theta(n), m->n);
            if (j->keep) {
                j->grad[i] = malloc(m->n * sizeof(float));
                j->theta[i] = malloc(m->n * sizeof(float));
                memcpy(j->grad[i], net_grad(n), m->n * sizeof(float));
                memcpy(j->theta[i], net_theta(n), m->n * sizeof(float));
            }
            if (i == 1) {
                const step_bucket *b;
                const step_event *ev;
                stepper_buckets(st, &b, &j->nbk, &ev, &j->nev);
                j->bk = malloc(((size_t)j->nbk + 1) * sizeof *j->bk);
                j->ev = malloc(((size_t)j->nev + 1) * sizeof *j->ev);
                memcpy(j->bk, b, (size_t)j->nbk * sizeof *b);
                memcpy(j->ev, ev, (size_t)j->nev * sizeof *ev);
            }
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

/* The trace of the first bucketed step (see the file's comment). */
static void check_trace(const job *j, const dath_model *m, const char *vn, int W) {
    char name[256];
    const step_bucket *b = j->bk;
    int nb = j->nbk, ok = nb > 1;
    size_t at = 0, cap = BUCKET_BYTES / sizeof(float);
    for (int k = 0; k < nb && ok; k++) {
        ok &= b[k].offset == m->params[b[k].p_first].offset && b[k].p_first <= b[k].p_last;
        size_t end = b[k].p_last + 1 < m->nparams ? m->params[b[k].p_last + 1].offset : m->n;
        ok &= b[k].count == end - b[k].offset && (b[k].count <= cap || b[k].p_first == b[k].p_last);
    }
    /* tiling: sorted by offset they follow one another from 0 to n */
    int *by = malloc((size_t)(nb + 1) * sizeof *by);
    for (int k = 0; k < nb; k++) by[k] = k;
    for (int a = 1; a < nb; a++)
        for (int c = a; c > 0 && b[by[c]].offset < b[by[c - 1]].offset; c--) { int t = by[c]; by[c] = by[c - 1]; by[c - 1] = t; }
    for (int k = 0; k < nb && ok; k++) {
        ok &= b[by[k]].offset == at;
        at += b[by[k]].count;
    }
    ok &= at == m->n;
    free(by);
    snprintf(name, sizeof name, "%s W=%d: %d buckets of at most %zu MiB (or one tensor) tile the %zu gradients", vn, W, nb,
             BUCKET_BYTES >> 20, m->n);
    CHECK_TRUE(name, ok);
    /* the events: each bucket started once, in order, after its last parameter's gradient */
    int next = 0, order_ok = 1, before_end = 0, ended = 0, grads_after_first = 0, grads = 0;
    double t_end = 0, t_wait = 0;
    int *left = calloc((size_t)nb, sizeof *left);
    for (int k = 0; k < nb; k++) left[k] = b[k].p_last - b[k].p_first + 1;
    printf("     trace of step 1 on rank 0 (ms since the launch):\n");
    for (int e = 0; e < j->nev; e++) {
        const step_event *v = &j->ev[e];
        if (v->kind == STEP_EV_GRAD) {
            grads++;
            if (next > 0) grads_after_first++;
            for (int k = 0; k < nb; k++)
                if (v->index >= b[k].p_first && v->index <= b[k].p_last) left[k]--;
        } else if (v->kind == STEP_EV_START) {
            int k = v->index;
            order_ok &= k == next++ && k < nb && left[k] == 0;
            if (!ended) before_end++;
            printf("       %8.2f  start bucket %2d: %-36s %9zu floats\n", v->t * 1e3, k, m->params[b[k].p_first].name,
                   b[k].count);
        } else if (v->kind == STEP_EV_DONE) {
            printf("       %8.2f  %d bucket%s summed\n", v->t * 1e3, v->index, v->index == 1 ? "" : "s");
        } else if (v->kind == STEP_EV_BACKWARD_END) {
            ended = 1;
            t_end = v->t;
            printf("       %8.2f  backward ends\n", v->t * 1e3);
        } else if (v->kind == STEP_EV_WAIT_END) {
            t_wait = v->t;
            printf("       %8.2f  every bucket summed (RMSProp may run)\n", v->t * 1e3);
        }
    }
    free(left);
    /* the queues: each bucket's sum waits for the queue that wrote every one of its
     * gradients (two-stream variants: the second stream's buckets for its own queue) */
    const dath_ctx *qs[2] = {NULL, NULL};
    int nq = 0, queue_ok = 1;
    for (int k = 0; k < nb; k++) {
        const dath_ctx *q = NULL;
        for (int e = 0; e < j->nev; e++) {
            const step_event *v = &j->ev[e];
            if (v->kind == STEP_EV_START && v->index == k) queue_ok &= v->ctx == b[k].ctx;
            if (v->kind == STEP_EV_GRAD && v->index >= b[k].p_first && v->index <= b[k].p_last) {
                queue_ok &= v->ctx == b[k].ctx && v->ctx != NULL;
                q = v->ctx;
            }
        }
        if (q && q != qs[0] && q != qs[1] && nq < 2) qs[nq++] = q;
    }
    int want_q = m->nstreams > 1 ? 2 : 1;
    snprintf(name, sizeof name, "%s W=%d: each bucket's sum waits for the queue that wrote its gradients (%d queue%s, "
             "%d expected)", vn, W, nq, nq == 1 ? "" : "s", want_q);
    CHECK_TRUE(name, queue_ok && nq == want_q);
    snprintf(name, sizeof name, "%s W=%d: every bucket started once, in schedule order, when its last gradient was written", vn, W);
    CHECK_TRUE(name, order_ok && next == nb);
    snprintf(name, sizeof name, "%s W=%d: %d of %d buckets started before the backward ended (at %.1f ms; all summed at "
             "%.1f ms), the first with %d of %d gradients to come", vn, W, before_end, nb, t_end * 1e3, t_wait * 1e3,
             grads_after_first, grads);
    CHECK_TRUE(name, ended && before_end == nb && t_wait >= t_end && grads_after_first * 2 > grads);
}

#ifdef DATH_MPI
/* The processes' side: every rank its slice; rank 0 the references and the checks. */
static int worker(const char *variant) {
    char err[600], name[256];
    dath_dist d;
    if (dist_init(&d, 120, err, sizeof err) || d.kind != DIST_MPI) {
        printf("FAIL dist_init: %s\n", d.kind != DIST_MPI ? "not launched by MPI" : err);
        if (d.mpi_inited) dist_abort(&d, 1);
        return 1;
    }
    int W = d.world, me = d.rank;
    dath_variant v;
    if (variant_parse(variant, &v) || W > MAXW || BG % W) {
        printf("FAIL rank %d: variant '%s', %d ranks\n", me, variant, W);
        dist_abort(&d, 1);
    }
    const dath_backend *be = backend_cpu();
    dath_model *m = model_create(v, K, C, model_min_input(), err, sizeof err);
    if (!m) { printf("FAIL model_create: %s\n", err); dist_abort(&d, 1); }
    model_init_default(m, 3);
    for (int i = 0; i < m->nparams; i++)
        if (strstr(m->params[i].name, "gamma")) m->theta[m->params[i].offset] = 0.5f;
    int S = m->S;
    float *x = malloc((size_t)BG * 3 * S * S * sizeof(float)), lab[BG * C];
    uint64_t rs = 99;
    check_fill(x, (size_t)BG * 3 * S * S, -2.0f, 2.0f, &rs);
    for (int b = 0; b < BG; b++)
        for (int c = 0; c < C; c++) lab[b * C + c] = (float)((b / 2) % C == c || (b == 5 && c == 0));

    dath_comm *comm = NULL;
    if (comm_mpi_create(be, &d, &comm, err, sizeof err)) { printf("FAIL %s\n", err); dist_abort(&d, 1); }
    job mine = {be, m, comm, x, lab, BG / W, me == 0};
    job_main(&mine);
    int rc_all = mine.rc, bad = mine.rc != 0;
    if (bad) printf("FAIL rank %d: %s\n", me, mine.err);
    uint64_t hashes[2 * NSTEPS], *all = malloc((size_t)W * sizeof hashes);
    for (int i = 0; i < NSTEPS; i++) { hashes[2 * i] = mine.hg[i]; hashes[2 * i + 1] = mine.ht[i]; }
    MPI_Gather(hashes, 2 * NSTEPS, MPI_UINT64_T, all, 2 * NSTEPS, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &rc_all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    int fail = 0;
    if (me == 0 && rc_all == 0) {
        const char *vn = variant_name(v);
        printf("%s over %d MPI processes, batch %d (%d a process), input %d, buckets of %zu MiB\n", vn, W, BG, BG / W, S,
               BUCKET_BYTES >> 20);
        job one = {be, m, comm_single(be), x, lab, BG, 1};
        job_main(&one);
        job th[MAXW];
        dath_comm *tc[MAXW];
        pthread_t tid[MAXW];
        int ok = one.rc == 0 && comm_threads_create(be, W, tc, err, sizeof err) == 0;
        for (int r = 0; ok && r < W; r++) {
            th[r] = (job){be, m, tc[r], x, lab, BG / W, r == 0};
            pthread_create(&tid[r], NULL, job_main, &th[r]);
        }
        for (int r = 0; ok && r < W; r++) pthread_join(tid[r], NULL);
        for (int r = 0; ok && r < W; r++) ok &= th[r].rc == 0;
        snprintf(name, sizeof name, "%s W=%d: the references ran (one process on the batch, %d threads)", vn, W, W);
        if (!CHECK_TRUE(name, ok)) printf("  one process: %s\n", one.rc ? one.err : "ok");
        for (int i = 0; ok && i < NSTEPS; i++) {
            const step_losses *a = &mine.L[i], *b = &one.L[i];
            snprintf(name, sizeof name, "%s W=%d step %d: J1 (%.9g) and triplets (%lld) as one process", vn, W, i, a->j1,
                     (long long)a->ntriplets);
            CHECK_TRUE(name, fabs(a->j1 - b->j1) <= 1e-7 * fabs(b->j1) && a->ntriplets == b->ntriplets);
            double got[2] = {a->j2, a->j3}, ref[2] = {b->j2, b->j3};
            snprintf(name, sizeof name, "%s W=%d step %d: J2, J3", vn, W, i);
            check_close_d(name, got, ref, 2, 0.0, LOSS_RTOL);
            if (i == 0) {
                double worst = 0;
                const char *wn = "";
                for (int p = 0; p < m->nparams; p++) {
                    const model_param *mp = &m->params[p];
                    const float *g = mine.grad[i] + mp->offset, *ref_g = one.grad[i] + mp->offset;
                    double mx = max_abs(ref_g, mp->numel), e = 0;
                    for (size_t q = 0; q < mp->numel; q++) e = fmax(e, fabs(g[q] - ref_g[q]));
                    double rel = e <= GRAD_ATOL ? 0 : mx > 0 ? e / mx : e;
                    if (rel > worst) { worst = rel; wn = mp->name; }
                }
                snprintf(name, sizeof name, "%s W=%d step %d: every gradient within %.0e of its max (worst %.2e, %s)", vn, W,
                         i, GRAD_MREL, worst, wn);
                CHECK_TRUE(name, worst <= GRAD_MREL);
            }
            int same = 1;
            for (int r = 1; r < W; r++) same &= all[r * 2 * NSTEPS + 2 * i] == all[2 * i] && all[r * 2 * NSTEPS + 2 * i + 1] == all[2 * i + 1];
            snprintf(name, sizeof name, "%s W=%d step %d: gradients and parameters identical on every rank", vn, W, i);
            CHECK_TRUE(name, same);
            snprintf(name, sizeof name, "%s W=%d step %d: gradients and parameters bit for bit the %d threads'", vn, W, i, W);
            CHECK_TRUE(name, !memcmp(mine.grad[i], th[0].grad[i], m->n * sizeof(float)) &&
                                 !memcmp(mine.theta[i], th[0].theta[i], m->n * sizeof(float)));
            double pe = 0;
            for (size_t q = 0; q < m->n; q++) pe = fmax(pe, fabs(mine.theta[i][q] - one.theta[i][q]));
            snprintf(name, sizeof name, "%s W=%d step %d: parameters within 20·lr of one process's (worst %.2e)", vn, W, i, pe);
            CHECK_TRUE(name, pe <= PARAM_ATOL);
        }
        if (ok) check_trace(&mine, m, vn, W);
        fail = check_finish();
    } else if (me == 0) {
        printf("FAIL some rank's steps failed\n");
        fail = 1;
    }
    MPI_Bcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
    comm->destroy(comm);
    dist_finalize(&d);
    return fail;
}
#endif

#ifdef DATH_MPI
/* A rank that hangs, and one that comes late (--worker hang, 4 processes): rank 2 is
 * silent for HANG_SILENT_S (it sleeps, outside MPI), rank 3 sleeps HANG_LATE_S, ranks 0
 * and 1 all-gather at once; every comm's timeout is HANG_TIMEOUT_S (grace: half of it).
 *   - ranks 0 and 1 wait for ranks 2 and 3, time out, ask both: rank 3, by then in its
 *     all-gather, answers that it waits too; rank 2 does not. Their errors, within the
 *     timeout and the grace (+ HANG_SLACK_S), name rank 2 alone as the one that does
 *     not answer and rank 3 as waiting;
 *   - rank 3 times out on rank 2 alone, and names it;
 *   - rank 2, late, finds every message there: its all-gather completes, right. */
enum { HANG_N = 3 };
static const double HANG_TIMEOUT_S = 3.0, HANG_LATE_S = 3.75, HANG_SILENT_S = 10.0, HANG_SLACK_S = 1.5;

static int worker_hang(void) {
    char err[600];
    dath_dist d;
    if (dist_init(&d, 120, err, sizeof err) || d.kind != DIST_MPI) {
        printf("FAIL dist_init: %s\n", d.kind != DIST_MPI ? "not launched by MPI" : err);
        if (d.mpi_inited) dist_abort(&d, 1);
        return 1;
    }
    int W = d.world, me = d.rank, fail = 0;
    dath_comm *comm = NULL;
    if (W != 4 || comm_mpi_create(backend_cpu(), &d, &comm, err, sizeof err)) {
        printf("FAIL rank %d: %s\n", me, W != 4 ? "--worker hang needs 4 processes" : err);
        dist_abort(&d, 1);
    }
    comm->timeout_s = HANG_TIMEOUT_S;
    float send[HANG_N], recv[4 * HANG_N];
    for (int i = 0; i < HANG_N; i++) send[i] = (float)(10 * me + i);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = dath_now(), late = me == 2 ? HANG_SILENT_S : me == 3 ? HANG_LATE_S : 0;
    if (late > 0) {
        struct timespec ts = {(time_t)late, (long)((late - (double)(time_t)late) * 1e9)};
        while (nanosleep(&ts, &ts)) {}
    }
    int rc = comm->all_gather(comm, recv, send, HANG_N, NULL);
    double el = dath_now() - t0, grace = HANG_TIMEOUT_S / 2;
    char name[900];
    if (me == 2) {
        int right = rc == 0;
        for (int r = 0; right && r < 4; r++)
            for (int i = 0; i < HANG_N; i++) right &= recv[r * HANG_N + i] == (float)(10 * r + i);
        snprintf(name, sizeof name, "hang: rank 2, %.1f s late, all-gathers every rank's values (%s)", el,
                 rc ? comm->err : "ok");
        fail = !right;
    } else {
        double lo = late + HANG_TIMEOUT_S, hi = lo + grace + HANG_SLACK_S;
        int named = rc != 0 && strstr(comm->err, "; rank 2 does not answer: died or hangs") != NULL;
        if (me != 3) named &= strstr(comm->err, "nothing from ranks 2, 3 for 3 s") && strstr(comm->err, "; rank 3 answers, waiting too");
        else named &= strstr(comm->err, "nothing from rank 2 for 3 s") && !strstr(comm->err, "answers");
        snprintf(name, sizeof name, "hang: rank %d stops after %.2f s (%.2f to %.2f): \"%s\"", me, el, lo, hi,
                 rc ? comm->err : "no error");
        fail = !(named && el >= lo && el < hi);
    }
    printf("%s %s\n", fail ? "FAIL" : "ok  ", name);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    comm->destroy(comm);
    dist_finalize(&d);
    return fail;
}
#endif

/* make test's side: mpirun with 2 and 4 processes of this binary. */
static int driver(const char *self) {
    if (!dist_have_mpi()) check_skip("this dath was built without MPI (no mpicc or mpi.h when it was built)");
    if (system("command -v mpirun >/dev/null 2>&1") != 0) check_skip("no mpirun on the PATH (Debian: openmpi-bin)");
    const char *root = geteuid() == 0 ? "--allow-run-as-root " : "";
    struct { int np; const char *variant; } runs[] = {{2, "dath"}, {4, "dath-n"}, {4, "hang"}};
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "mpirun %s--oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np %d %s --worker %s 2>&1",
                 root, runs[i].np, self, runs[i].variant);
        printf("$ %s\n", cmd);
        fflush(stdout);
        int st = system(cmd);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        printf("%s mpirun -np %d (%s): exit %d\n", code ? "FAIL" : "ok  ", runs[i].np, runs[i].variant, code);
        failed |= code != 0;
    }
    printf("%s\n", failed ? "FAILED" : "all passed");
    return failed;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--worker")) {
#ifdef DATH_MPI
        return !strcmp(argv[2], "hang") ? worker_hang() : worker(argv[2]);
#else
        printf("FAIL --worker: built without MPI\n");
        return 1;
#endif
    }
    return driver(argv[0]);
}
