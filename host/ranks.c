/* host/ranks.c — the ranks of a data-parallel training run this process drives (see
 * ranks.h).
 *
 * With W > 1 ranks, each rank's thread loops: wait at `go`, do the posted job, wait
 * at `done`. The caller posts a job, passes `go`, and (later) `done`: between the two
 * it is free (ranks_launch returns after `go`, so the caller fetches the next batch
 * while the ranks launch their steps). Every CUDA call of a rank is made in its own
 * thread, with its device current. */
#include "ranks.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "dist.h"
#include "feed.h"
#include "net.h"

enum { OP_INIT, OP_EPOCH, OP_PUSH, OP_LAUNCH, OP_FINISH, OP_DRAIN, OP_QUIT };

typedef struct rank {
    int r;                        /* this process's r-th rank: global rank t->first + r */
    int device;
    train_ranks *t;
    dath_ctx ctx;
    int ctx_ok;
    dath_comm *comm;
    dath_net *net;
    dath_stepper *st;
    dath_feed *feed;
    float *one;                   /* [1] backend: ranks_meet's sum */
    pthread_t th;
    int rc;                       /* the last job's status */
    char err[512], note[256];
    step_losses L;
} rank;

struct train_ranks {
    ranks_config c;
    int W;                        /* ranks in this process (threads when > 1) */
    int world, first;             /* ranks of the run; the global rank of rk[0] */
    rank *rk;                     /* [W] */
    pthread_barrier_t go, done;
    int threads;                  /* rank threads running */
    /* the posted job */
    int op;
    const prefetch_batch *b;
    uint32_t step;
    const step_config *cfg;
};

static void rank_job(rank *k, int op) {
    train_ranks *t = k->t;
    const ranks_config *c = &t->c;
    const dath_backend *be = c->be;
    int W = t->world, Bl = c->B / W;   /* the run's ranks, the rows of one */
    k->rc = 0;
    switch (op) {
    case OP_INIT: {
        size_t work = net_work_bytes(c->m, Bl, c->B);
        if (k->r == 0 && c->work0 > work) work = c->work0;
        if (be->set_device(k->device, k->err, sizeof k->err) ||
            be->ctx_init(&k->ctx, work, c->precision, k->err, sizeof k->err)) {
            k->rc = -1;
            break;
        }
        k->ctx_ok = 1;
        k->ctx.conv_algo = c->conv_algo;   /* before net_create: its second stream's context copies it */
        k->one = be->alloc(sizeof(float));
        k->net = k->one ? net_create(be, &k->ctx, c->m, Bl, 1, k->err, sizeof k->err) : NULL;
        k->st = k->net ? stepper_create(k->net, k->comm, k->err, sizeof k->err) : NULL;
        k->feed = k->st ? feed_create(be, &k->ctx, c->pf, Bl, c->R, c->S, c->C, c->data_mode, k->err,
                                      sizeof k->err) : NULL;
        if (!k->feed) { k->rc = -1; break; }
        stepper_set_graphs(k->st, c->graphs);
        stepper_set_buckets(k->st, c->bucket_bytes);
        net_upload(k->net, c->m);
        be->sync(&k->ctx);
        break;
    }
    case OP_EPOCH:
        k->rc = feed_epoch(k->feed, k->note, sizeof k->note, k->err, sizeof k->err);
        break;
    case OP_PUSH: {
        int n = ranks_rows(t, t->b->n);
        k->rc = feed_push(k->feed, t->b, (t->first + k->r) * n, n, k->err, sizeof k->err);
        break;
    }
    case OP_LAUNCH: {
        const float *x, *lab;
        int n;
        k->rc = feed_pop(k->feed, &x, &lab, &n, k->err, sizeof k->err);
        if (!k->rc) k->rc = stepper_launch(k->st, x, lab, n, t->step, t->cfg, 1, k->err, sizeof k->err);
        break;
    }
    case OP_FINISH:
        if (t->b) {
            int n = ranks_rows(t, t->b->n);
            k->rc = feed_push(k->feed, t->b, (t->first + k->r) * n, n, k->err, sizeof k->err);
        }
        if (stepper_finish(k->st, &k->L, k->err, sizeof k->err)) k->rc = -1;
        feed_retire(k->feed);
        break;
    case OP_DRAIN:
        feed_drain(k->feed);
        break;
    case OP_QUIT:
        if (k->ctx_ok) be->set_device(k->device, k->err, sizeof k->err);
        feed_free(k->feed);
        stepper_free(k->st);
        net_free(k->net);
        if (k->one) be->free(k->one);
        if (k->comm) k->comm->destroy(k->comm);
        if (k->ctx_ok) be->ctx_free(&k->ctx);
        k->feed = NULL; k->st = NULL; k->net = NULL; k->comm = NULL; k->ctx_ok = 0; k->one = NULL;
        break;
    }
}

static void *rank_main(void *arg) {
    rank *k = arg;
    train_ranks *t = k->t;
    for (;;) {
        pthread_barrier_wait(&t->go);
        int op = t->op;
        rank_job(k, op);
        pthread_barrier_wait(&t->done);
        if (op == OP_QUIT) return NULL;
    }
}

/* Posts op; with threads, passes `go` (and `done` too when wait is set). */
static void ranks_post(train_ranks *t, int op, int wait) {
    t->op = op;
    if (t->W == 1) {
        rank_job(&t->rk[0], op);
        return;
    }
    pthread_barrier_wait(&t->go);
    if (wait) pthread_barrier_wait(&t->done);
}

/* The first rank's error, if any rank failed (the messages of comms and steppers of
 * several ranks already name theirs). */
static int ranks_status(train_ranks *t, char *err, size_t err_len) {
    for (int r = 0; r < t->W; r++)
        if (t->rk[r].rc) {
            char who[32];
            snprintf(who, sizeof who, "rank %d: ", t->first + r);
            if (t->world > 1 && !strstr(t->rk[r].err, who)) snprintf(err, err_len, "%s%s", who, t->rk[r].err);
            else snprintf(err, err_len, "%s", t->rk[r].err);
            return -1;
        }
    return 0;
}

int ranks_rows(const train_ranks *t, int n) { return n / t->world; }
int ranks_world(const train_ranks *t) { return t->world; }
int ranks_first(const train_ranks *t) { return t->first; }

train_ranks *ranks_create(const ranks_config *c, char *err, size_t err_len) {
    const dath_backend *be = c->be;
    const dath_dist *d = c->dist && c->dist->world > 1 ? c->dist : NULL;
    int W = c->world, world = d ? d->world : W, first = d ? d->rank : 0;
    if (d && W != 1) {
        snprintf(err, err_len, "rank %d: --ranks %d with %d processes: each process is one rank (leave --ranks at 1)",
                 d->rank, W, d->world);
        return NULL;
    }
    if (W < 1 || c->B % world || c->B / world < 1) {
        snprintf(err, err_len, "%d ranks: the batch of %d must split into equal slices of at least 1", world, c->B);
        return NULL;
    }
    int devices = be->device_count();
    if (!d && W > devices) {
        snprintf(err, err_len, "%d ranks, but %d %s devices are visible", W, devices, be->name);
        return NULL;
    }
    if (d && d->local_rank >= devices) {
        snprintf(err, err_len, "rank %d: local rank %d on %s, but %d %s device%s visible", d->rank, d->local_rank,
                 d->host, devices, be->name, devices == 1 ? " is" : "s are");
        return NULL;
    }
    train_ranks *t = calloc(1, sizeof *t);
    t->c = *c;
    t->W = W;
    t->world = world;
    t->first = first;
    t->rk = calloc((size_t)W, sizeof *t->rk);
    dath_comm **comms = calloc((size_t)W, sizeof *comms);
    int rc = 0;
    if (d) {   /* NCCL makes its communicator on the current device */
        rc = be->set_device(d->local_rank, err, err_len) || be->comm_join(be, d, &comms[0], err, err_len);
    } else if (W == 1) {
        comms[0] = comm_single(be);
    } else {
        rc = be->comm_create(be, W, comms, err, err_len);
    }
    if (rc) {
        free(comms);
        free(t->rk);
        free(t);
        return NULL;
    }
    for (int r = 0; r < W; r++) {
        t->rk[r].r = r;
        t->rk[r].device = d ? d->local_rank : r;
        t->rk[r].t = t;
        t->rk[r].comm = comms[r];
        if (c->comm_timeout_s > 0) comms[r]->timeout_s = c->comm_timeout_s;
    }
    free(comms);
    if (W > 1) {
        pthread_barrier_init(&t->go, NULL, (unsigned)W + 1);
        pthread_barrier_init(&t->done, NULL, (unsigned)W + 1);
        /* signals stay with the caller's thread (SIGINT/SIGTERM end a run cleanly) */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        for (int r = 0; r < W; r++) {
            if (pthread_create(&t->rk[r].th, NULL, rank_main, &t->rk[r])) {
                snprintf(err, err_len, "cannot start the thread of rank %d", r);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                abort();   /* the other ranks wait at a barrier sized for all */
            }
            t->threads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    ranks_post(t, OP_INIT, 1);
    if (ranks_status(t, err, err_len)) {
        ranks_free(t);
        return NULL;
    }
    return t;
}

void ranks_free(train_ranks *t) {
    if (!t) return;
    ranks_post(t, OP_QUIT, 1);
    for (int r = 0; r < t->threads; r++) pthread_join(t->rk[r].th, NULL);
    if (t->W > 1) {
        pthread_barrier_destroy(&t->go);
        pthread_barrier_destroy(&t->done);
    }
    free(t->rk);
    free(t);
}

int ranks_epoch(train_ranks *t, char *note, size_t note_len, char *err, size_t err_len) {
    note[0] = 0;
    ranks_post(t, OP_EPOCH, 1);
    if (ranks_status(t, err, err_len)) return -1;
    int all = 1;
    for (int r = 0; r < t->W; r++) all &= feed_data_on_device(t->rk[r].feed);
    if (all && t->rk[0].note[0]) {
        prefetch_set_pixels(t->c.pf, 0);
        if (t->W > 1) snprintf(note, note_len, "%s (on each of the %d ranks)", t->rk[0].note, t->W);
        else snprintf(note, note_len, "%s", t->rk[0].note);
    }
    return 0;
}

int ranks_push(train_ranks *t, const prefetch_batch *b, char *err, size_t err_len) {
    t->b = b;
    ranks_post(t, OP_PUSH, 1);
    return ranks_status(t, err, err_len);
}

int ranks_launch(train_ranks *t, uint32_t step, const step_config *cfg, char *err, size_t err_len) {
    t->step = step;
    t->cfg = cfg;
    ranks_post(t, OP_LAUNCH, 0);
    return t->W == 1 ? ranks_status(t, err, err_len) : 0;
}

int ranks_finish(train_ranks *t, const prefetch_batch *next, step_losses *L, char *err, size_t err_len) {
    if (t->W > 1) {
        pthread_barrier_wait(&t->done);   /* the launches */
        if (ranks_status(t, err, err_len)) {
            /* every rank is between jobs: finish what was launched so nothing is left in flight */
            t->b = NULL;
            ranks_post(t, OP_FINISH, 1);
            return -1;
        }
    }
    t->b = next;
    ranks_post(t, OP_FINISH, 1);
    *L = t->rk[0].L;
    return ranks_status(t, err, err_len);
}

void ranks_drain(train_ranks *t) { ranks_post(t, OP_DRAIN, 1); }

void ranks_download(train_ranks *t, dath_model *m) {
    char err[256];
    t->c.be->set_device(t->rk[0].device, err, sizeof err);
    net_download(t->rk[0].net, m);
}

dath_ctx *ranks_ctx0(train_ranks *t) {
    char err[256];
    t->c.be->set_device(t->rk[0].device, err, sizeof err);
    return &t->rk[0].ctx;
}

void ranks_vote(train_ranks *t, int stop) {
    for (int r = 0; r < t->W; r++) stepper_vote(t->rk[r].st, stop);
}

int ranks_meet(train_ranks *t, char *err, size_t err_len) {
    if (t->W != 1 || t->world == 1) return 0;   /* threads of one process meet at their barriers */
    rank *k = &t->rk[0];
    const dath_backend *be = t->c.be;
    dath_comm *c = k->comm;
    double keep = c->timeout_s;
    c->timeout_s = 1e12;   /* rank 0's evaluation takes as long as it takes */
    be->set_device(k->device, err, err_len);
    be->zero(k->one, sizeof(float), &k->ctx);
    int rc = c->all_reduce_sum(c, k->one, 1, &k->ctx) || (c->watch && c->watch(c, &k->ctx));
    be->sync(&k->ctx);
    c->timeout_s = keep;
    if (rc) snprintf(err, err_len, "%s", c->err);
    return rc ? -1 : 0;
}

int ranks_share(train_ranks *t, dath_prefetch *pf, int epoch, char *err, size_t err_len) {
    if (t->W != 1 || t->world == 1) return 0;
    rank *k = &t->rk[0];
    const dath_backend *be = t->c.be;
    dath_comm *c = k->comm;
    prefetch_stats ps;
    prefetch_stats_get(pf, &ps);
    size_t n = (size_t)ps.n;
    float *host = malloc(n * sizeof(float)), *dev = be->alloc(n * sizeof(float));   /* [n] statuses */
    int rc = -1;
    if (!host || !dev) {
        snprintf(err, err_len, "rank %d: out of memory for %zu statuses", t->first, n);
        goto out;
    }
    if (prefetch_share_statuses(pf, epoch, host, err, err_len)) goto out;
    be->set_device(k->device, err, err_len);
    be->upload(dev, host, n * sizeof(float), &k->ctx);
    if (c->all_reduce_sum(c, dev, n, &k->ctx) || (c->watch && c->watch(c, &k->ctx))) {
        snprintf(err, err_len, "sharing the images' statuses out: %s", c->err);
        goto out;
    }
    be->download(host, dev, n * sizeof(float), &k->ctx);
    rc = prefetch_set_statuses(pf, host, err, err_len);
out:
    free(host);
    if (dev) be->free(dev);
    return rc;
}

const dath_stepper *ranks_stepper0(const train_ranks *t) { return t->rk[0].st; }

void ranks_graph_stats(const train_ranks *t, long *replayed, int *captured) {
    stepper_graph_stats(t->rk[0].st, replayed, captured);
}
