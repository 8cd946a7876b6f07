/* host/comm.c — the one-rank communicator, the defaults every communicator starts
 * from, and ranks as threads over host memory (see comm.h). */
#include "comm.h"

#include <stdlib.h>

/* The bucket functions of a comm that sums inside reduce_start. */
static int default_reduce_start(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    if (c->all_reduce_sum(c, buf, count, ctx)) return -1;
    c->started++;
    return 0;
}
static int default_reduce_progress(dath_comm *c, dath_ctx *ctx) { return c->started; }
static int default_reduce_wait(dath_comm *c, dath_ctx *ctx) {
    c->started = 0;
    return 0;
}

static int single_all_gather(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx) {
    if (recv != send) c->be->copy(recv, send, count * sizeof(float), ctx);
    return 0;
}
static int single_all_reduce(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) { return 0; }
static void single_destroy(dath_comm *c) { free(c); }

dath_comm *comm_new(const dath_backend *be, int rank, int world,
                    int (*all_gather)(dath_comm *, float *, const float *, size_t, dath_ctx *),
                    int (*all_reduce_sum)(dath_comm *, float *, size_t, dath_ctx *),
                    void (*destroy)(dath_comm *), void *impl) {
    dath_comm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->rank = rank;
    c->world = world;
    c->timeout_s = COMM_DEFAULT_TIMEOUT_S;
    c->all_gather = all_gather;
    c->all_reduce_sum = all_reduce_sum;
    c->reduce_start = default_reduce_start;
    c->reduce_progress = default_reduce_progress;
    c->reduce_wait = default_reduce_wait;
    c->watch = NULL;
    c->destroy = destroy;
    c->be = be;
    c->impl = impl;
    return c;
}

dath_comm *comm_single(const dath_backend *be) {
    return comm_new(be, 0, 1, single_all_gather, single_all_reduce, single_destroy, NULL);
}

/* ---- ranks as threads over host memory ---------------------------------------------- */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct threads_shared {
    int world, alive;
    pthread_barrier_t bar;
    pthread_mutex_t lock;
    const float **send;        /* [world] what each rank contributes to the current call */
    float **buf;               /* [world] each rank's buffer */
} threads_shared;

static int threads_all_gather(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx) {
    threads_shared *t = c->impl;
    t->send[c->rank] = send;
    pthread_barrier_wait(&t->bar);
    for (int r = 0; r < t->world; r++)   /* recv may alias this rank's send: copy it last */
        if (r != c->rank) memcpy(recv + (size_t)r * count, t->send[r], count * sizeof(float));
    float *mine = recv + (size_t)c->rank * count;
    if (mine != send) memmove(mine, send, count * sizeof(float));
    pthread_barrier_wait(&t->bar);   /* no rank changes its send before all have read it */
    return 0;
}

/* The slice [lo, hi) of count elements that rank s of W adds up: the same split as
 * comm_mpi.c's, so that both give the same bits. */
static void threads_slice(size_t count, int s, int W, size_t *lo, size_t *hi) {
    *lo = count * (size_t)s / (size_t)W;
    *hi = count * (size_t)(s + 1) / (size_t)W;
}

static int threads_all_reduce(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    threads_shared *t = c->impl;
    int W = t->world, r = c->rank;
    t->buf[r] = buf;
    pthread_barrier_wait(&t->bar);
    /* rank r sums slice r of every rank's buffer into rank 0's, in rank order */
    size_t lo, hi;
    threads_slice(count, r, W, &lo, &hi);
    float *dst = t->buf[0];
    for (size_t i = lo; i < hi; i++) {
        float s = dst[i];
        for (int k = 1; k < W; k++) s += t->buf[k][i];
        dst[i] = s;
    }
    pthread_barrier_wait(&t->bar);
    if (r != 0) memcpy(buf, dst, count * sizeof(float));
    pthread_barrier_wait(&t->bar);   /* rank 0's buffer is read until here */
    return 0;
}

static void threads_destroy(dath_comm *c) {
    threads_shared *t = c->impl;
    pthread_mutex_lock(&t->lock);
    int last = --t->alive == 0;
    pthread_mutex_unlock(&t->lock);
    if (last) {
        pthread_barrier_destroy(&t->bar);
        pthread_mutex_destroy(&t->lock);
        free(t->send);
        free(t->buf);
        free(t);
    }
    free(c);
}

int comm_threads_create(const dath_backend *be, int world, dath_comm **comms, char *err, size_t err_len) {
    if (world < 1) {
        snprintf(err, err_len, "comm_threads_create: %d ranks", world);
        return -1;
    }
    threads_shared *t = calloc(1, sizeof *t);
    t->world = t->alive = world;
    t->send = calloc((size_t)world, sizeof *t->send);
    t->buf = calloc((size_t)world, sizeof *t->buf);
    pthread_barrier_init(&t->bar, NULL, (unsigned)world);
    pthread_mutex_init(&t->lock, NULL);
    for (int r = 0; r < world; r++)
        comms[r] = comm_new(be, r, world, threads_all_gather, threads_all_reduce, threads_destroy, t);
    return 0;
}
