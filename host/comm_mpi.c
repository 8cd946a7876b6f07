/* host/comm_mpi.c — the communicator over MPI for the CPU backend (see comm.h): one
 * process a rank, every collective built from non-blocking point-to-point messages on a
 * duplicate of MPI_COMM_WORLD, so that
 *   - a bucket's sum is deterministic: its elements are split into `world` slices
 *     (slice s = [s·n/W, (s+1)·n/W), as comm.c's threads split them), rank s receives
 *     slice s of every rank's bucket and adds them up in rank order (rank 0's first),
 *     then sends the sums to every rank: every rank gets the same bits, equal to the
 *     threads' sums, whatever the timing or the bucket sizes;
 *   - a bucket's messages are posted by reduce_start and tested by reduce_progress
 *     (MPI_Testall), which adds up a slice whose parts have all come and posts its sums,
 *     so the exchange overlaps the rest of the backward; reduce_wait finishes them;
 *   - every wait is bounded by timeout_s and, when it runs out, says which ranks' messages
 *     did not come (they died, hang, or themselves wait for another rank).
 * Messages of one collective carry their own tag (a sequence number every rank counts
 * alike), so buckets in flight never take one another's messages. */
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

#ifdef DATH_MPI

#include <limits.h>
#include <mpi.h>
#include <time.h>

#include "clock.h"

#define MPI_COMM_TAGS 16000   /* tags 1 .. 2·MPI_COMM_TAGS: MPI guarantees 32767 */

enum { MB_EXCHANGE = 1, MB_SHARE = 2, MB_DONE = 3 };

typedef struct mpi_bucket {
    float *buf;               /* the bucket, [count] */
    size_t count;
    int phase;                /* MB_* */
    int tag;
    MPI_Request *req;         /* [2·(W−1)] this phase's messages */
    int *peer;                /* [2·(W−1)] the rank of each */
    int nreq;
    float *parts;             /* [(W−1)·slice] the other ranks' parts of this rank's slice */
    size_t parts_cap;
} mpi_bucket;

typedef struct mpi_impl {
    MPI_Comm comm;
    int W, r;
    unsigned seq;             /* collectives so far (tags) */
    mpi_bucket *bk;           /* [cap] buckets of this step, in start order */
    int nbk, cap, ndone;
    MPI_Request *req;         /* [2·(W−1)] the all-gather's */
    int *peer;
} mpi_impl;

static void slice_of(size_t count, int s, int W, size_t *lo, size_t *hi) {
    *lo = count * (size_t)s / (size_t)W;
    *hi = count * (size_t)(s + 1) / (size_t)W;
}

static int mpi_fail(dath_comm *c, const char *what, int code) {
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", code);
    snprintf(c->err, sizeof c->err, "rank %d: %s: %s", c->rank, what, s);
    return -1;
}

static int mpi_next_tag(mpi_impl *k) { return 1 + 2 * (int)(k->seq++ % MPI_COMM_TAGS); }

/* Waits for req[0..n) within the time limit; on a timeout names the ranks whose messages
 * are still pending. */
static int mpi_wait_all(dath_comm *c, MPI_Request *req, const int *peer, int n, const char *what) {
    double t0 = dath_now();
    long polls = 0;
    for (;;) {
        int flag = 0, rc = MPI_Testall(n, req, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(c, what, rc);
        if (flag) return 0;
        double el = dath_now() - t0;
        if (el > c->timeout_s) {
            char who[256] = "";
            size_t at = 0;
            int named = 0;
            int *seen = calloc((size_t)c->world, sizeof *seen);
            for (int i = 0; i < n; i++) {
                int f = 1;
                if (req[i] != MPI_REQUEST_NULL) MPI_Test(&req[i], &f, MPI_STATUS_IGNORE);
                if (f || !seen || seen[peer[i]]++) continue;
                if (at < sizeof who) at += (size_t)snprintf(who + at, sizeof who - at, "%s%d", named ? ", " : "", peer[i]);
                named++;
            }
            free(seen);
            snprintf(c->err, sizeof c->err, "rank %d: %s: nothing from rank%s %s for %.0f s (--comm-timeout): %s died, "
                     "hang%s, or wait%s for another rank", c->rank, what, named > 1 ? "s" : "", who, c->timeout_s,
                     named > 1 ? "they" : "it", named > 1 ? "" : "s", named > 1 ? "" : "s");
            return -1;
        }
        /* spin briefly, then let the other processes of the node run */
        if (++polls > 200) {
            struct timespec t = {0, el < 0.01 ? 20000 : 200000};
            nanosleep(&t, NULL);
        }
    }
}

static int mpi_all_gather(dath_comm *c, float *recv, const float *send, size_t count, dath_ctx *ctx) {
    mpi_impl *k = c->impl;
    if (count > INT_MAX) {
        snprintf(c->err, sizeof c->err, "rank %d: all-gather of %zu floats (at most %d a message)", c->rank, count, INT_MAX);
        return -1;
    }
    int tag = mpi_next_tag(k), n = 0, rc;
    for (int s = 0; s < k->W; s++) {
        if (s == k->r) continue;
        k->peer[n] = s;
        if ((rc = MPI_Irecv(recv + (size_t)s * count, (int)count, MPI_FLOAT, s, tag, k->comm, &k->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "the all-gather (MPI_Irecv)", rc);
        k->peer[n] = s;
        if ((rc = MPI_Isend(send, (int)count, MPI_FLOAT, s, tag, k->comm, &k->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "the all-gather (MPI_Isend)", rc);
    }
    if (mpi_wait_all(c, k->req, k->peer, n, "the all-gather of h and labels")) return -1;
    float *mine = recv + (size_t)k->r * count;
    if (mine != send) memmove(mine, send, count * sizeof(float));
    return 0;
}

/* Phase 1 of bucket b: this rank's slice s of every other rank's bucket comes to rank s. */
static int mpi_post_exchange(dath_comm *c, mpi_bucket *b) {
    mpi_impl *k = c->impl;
    size_t lo, hi;
    slice_of(b->count, k->r, k->W, &lo, &hi);
    size_t mine = hi - lo, need = (size_t)(k->W - 1) * mine;
    if (need > b->parts_cap) {
        float *p = realloc(b->parts, (need ? need : 1) * sizeof(float));
        if (!p) {
            snprintf(c->err, sizeof c->err, "rank %d: out of memory for a bucket's parts (%zu floats)", c->rank, need);
            return -1;
        }
        b->parts = p;
        b->parts_cap = need;
    }
    int n = 0, rc, j = 0;
    for (int s = 0; s < k->W; s++) {
        if (s == k->r) continue;
        size_t slo, shi;
        slice_of(b->count, s, k->W, &slo, &shi);
        b->peer[n] = s;
        if ((rc = MPI_Irecv(b->parts + (size_t)j++ * mine, (int)mine, MPI_FLOAT, s, b->tag, k->comm, &b->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "a bucket's reduce-scatter (MPI_Irecv)", rc);
        b->peer[n] = s;
        if ((rc = MPI_Isend(b->buf + slo, (int)(shi - slo), MPI_FLOAT, s, b->tag, k->comm, &b->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "a bucket's reduce-scatter (MPI_Isend)", rc);
    }
    b->nreq = n;
    b->phase = MB_EXCHANGE;
    return 0;
}

/* Phase 1 done: this rank's slice summed in rank order, then sent to every rank while
 * the other slices' sums come. */
static int mpi_sum_and_share(dath_comm *c, mpi_bucket *b) {
    mpi_impl *k = c->impl;
    size_t lo, hi;
    slice_of(b->count, k->r, k->W, &lo, &hi);
    size_t mine = hi - lo;
    float *dst = b->buf + lo;
    const float *parts = b->parts;
    int W = k->W, r = k->r;
    #pragma omp parallel for schedule(static) if (mine > 65536)
    for (size_t i = 0; i < mine; i++) {
        /* rank q's part: parts[(q < r ? q : q − 1)·mine + i], this rank's own dst[i] */
        float s = r == 0 ? dst[i] : parts[i];
        for (int q = 1; q < W; q++) s += q == r ? dst[i] : parts[(size_t)(q < r ? q : q - 1) * mine + i];
        dst[i] = s;
    }
    int n = 0, rc;
    for (int s = 0; s < W; s++) {
        if (s == r) continue;
        size_t slo, shi;
        slice_of(b->count, s, W, &slo, &shi);
        b->peer[n] = s;
        if ((rc = MPI_Irecv(b->buf + slo, (int)(shi - slo), MPI_FLOAT, s, b->tag + 1, k->comm, &b->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "a bucket's all-gather (MPI_Irecv)", rc);
        b->peer[n] = s;
        if ((rc = MPI_Isend(dst, (int)mine, MPI_FLOAT, s, b->tag + 1, k->comm, &b->req[n++])) != MPI_SUCCESS)
            return mpi_fail(c, "a bucket's all-gather (MPI_Isend)", rc);
    }
    b->nreq = n;
    b->phase = MB_SHARE;
    return 0;
}

static int mpi_reduce_start(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    mpi_impl *k = c->impl;
    if (count / (size_t)k->W + 1 > INT_MAX) {
        snprintf(c->err, sizeof c->err, "rank %d: a bucket of %zu floats (a slice of at most %d)", c->rank, count, INT_MAX);
        return -1;
    }
    if (k->nbk == k->cap) {
        int nc = k->cap ? 2 * k->cap : 16;
        mpi_bucket *nb = realloc(k->bk, (size_t)nc * sizeof *nb);
        if (!nb) {
            snprintf(c->err, sizeof c->err, "rank %d: out of memory for the buckets", c->rank);
            return -1;
        }
        memset(nb + k->cap, 0, (size_t)(nc - k->cap) * sizeof *nb);
        for (int i = k->cap; i < nc; i++) {
            nb[i].req = calloc((size_t)(2 * k->W), sizeof *nb[i].req);
            nb[i].peer = calloc((size_t)(2 * k->W), sizeof *nb[i].peer);
            if (!nb[i].req || !nb[i].peer) {
                k->bk = nb;
                k->cap = i;
                snprintf(c->err, sizeof c->err, "rank %d: out of memory for the buckets", c->rank);
                return -1;
            }
        }
        k->bk = nb;
        k->cap = nc;
    }
    mpi_bucket *b = &k->bk[k->nbk++];   /* its parts buffer is kept from the last step's same bucket */
    b->buf = buf;
    b->count = count;
    b->tag = mpi_next_tag(k);
    k->seq++;   /* two tags: the exchange's and the share's */
    if (k->W == 1) {
        b->phase = MB_DONE;
        k->ndone++;
        return 0;
    }
    return mpi_post_exchange(c, b);
}

/* Advances every bucket in flight without waiting. Returns the buckets done, or -1. */
static int mpi_reduce_progress(dath_comm *c, dath_ctx *ctx) {
    mpi_impl *k = c->impl;
    for (int i = 0; i < k->nbk; i++) {
        mpi_bucket *b = &k->bk[i];
        if (b->phase == MB_DONE) continue;
        int flag = 0, rc = MPI_Testall(b->nreq, b->req, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(c, "a bucket's all-reduce (MPI_Testall)", rc);
        if (!flag) continue;
        if (b->phase == MB_EXCHANGE) {
            if (mpi_sum_and_share(c, b)) return -1;
        } else {
            b->phase = MB_DONE;
            k->ndone++;
        }
    }
    return k->ndone;
}

static int mpi_reduce_wait(dath_comm *c, dath_ctx *ctx) {
    mpi_impl *k = c->impl;
    int rc = 0;
    for (int i = 0; i < k->nbk && !rc; i++) {
        mpi_bucket *b = &k->bk[i];
        char what[96];
        snprintf(what, sizeof what, "bucket %d of %d (%zu floats)", i, k->nbk, b->count);
        if (b->phase == MB_EXCHANGE) {
            rc = mpi_wait_all(c, b->req, b->peer, b->nreq, what);
            if (!rc) rc = mpi_sum_and_share(c, b);
        }
        if (!rc && b->phase == MB_SHARE) {
            rc = mpi_wait_all(c, b->req, b->peer, b->nreq, what);
            if (!rc) {
                b->phase = MB_DONE;
                k->ndone++;
            }
        }
    }
    k->nbk = 0;
    k->ndone = 0;
    return rc;
}

static int mpi_all_reduce(dath_comm *c, float *buf, size_t count, dath_ctx *ctx) {
    if (mpi_reduce_start(c, buf, count, ctx)) return -1;
    return mpi_reduce_wait(c, ctx);
}

static void mpi_destroy(dath_comm *c) {
    mpi_impl *k = c->impl;
    for (int i = 0; i < k->cap; i++) {
        free(k->bk[i].req);
        free(k->bk[i].peer);
        free(k->bk[i].parts);
    }
    free(k->bk);
    free(k->req);
    free(k->peer);
    if (k->comm != MPI_COMM_NULL) MPI_Comm_free(&k->comm);
    free(k);
    free(c);
}

int comm_mpi_create(const dath_backend *be, const dath_dist *d, dath_comm **out, char *err, size_t err_len) {
    if (!d || d->kind != DIST_MPI) {
        snprintf(err, err_len, "rank %d: the CPU backend's collectives between processes go over MPI: launch with "
                 "mpirun or srun --mpi=pmix (the environment bootstrap serves NCCL)", d ? d->rank : 0);
        return -1;
    }
    mpi_impl *k = calloc(1, sizeof *k);
    if (!k) { snprintf(err, err_len, "rank %d: out of memory", d->rank); return -1; }
    k->W = d->world;
    k->r = d->rank;
    k->comm = MPI_COMM_NULL;
    k->req = calloc((size_t)(2 * k->W), sizeof *k->req);
    k->peer = calloc((size_t)(2 * k->W), sizeof *k->peer);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &k->comm);
    if (rc != MPI_SUCCESS || !k->req || !k->peer) {
        snprintf(err, err_len, "rank %d: MPI_Comm_dup of MPI_COMM_WORLD failed", d->rank);
        free(k->req); free(k->peer); free(k);
        return -1;
    }
    MPI_Comm_set_errhandler(k->comm, MPI_ERRORS_RETURN);
    dath_comm *c = comm_new(be, d->rank, d->world, mpi_all_gather, mpi_all_reduce, mpi_destroy, k);
    if (!c) {
        MPI_Comm_free(&k->comm);
        free(k->req); free(k->peer); free(k);
        snprintf(err, err_len, "rank %d: out of memory", d->rank);
        return -1;
    }
    c->reduce_start = mpi_reduce_start;
    c->reduce_progress = mpi_reduce_progress;
    c->reduce_wait = mpi_reduce_wait;
    c->timeout_s = d->timeout_s > 0 ? d->timeout_s : COMM_DEFAULT_TIMEOUT_S;
    *out = c;
    return 0;
}

#else

int comm_mpi_create(const dath_backend *be, const dath_dist *d, dath_comm **out, char *err, size_t err_len) {
    snprintf(err, err_len, "this dath was built without MPI (mpi.h was not found): several processes on the CPU "
             "backend need it; install libopenmpi-dev and rebuild");
    return -1;
}

#endif
