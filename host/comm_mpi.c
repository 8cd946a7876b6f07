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
 *   - every wait is bounded by timeout_s. When it runs out, the rank does not stop at the
 *     ranks whose messages did not come (a rank that itself waits for a hung one looks the
 *     same): it asks them, on tags of their own, what they wait for, and those ranks' own
 *     asks, transitively, so that its error names the ranks that do not answer (they died
 *     or hang) apart from those that answer and wait too. Every rank answers such an ask
 *     while it waits (mpi_wait_all) or advances its buckets (reduce_progress), so an
 *     answer takes milliseconds; a rank that gives none within the grace (timeout_s / 2,
 *     1 to 30 s) is the one that hangs.
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
#define TAG_ASK (2 * MPI_COMM_TAGS + 1)     /* "what do you wait for?": the ask's number */
#define TAG_ANSWER (2 * MPI_COMM_TAGS + 2)  /* {number, waiting, n, the n ranks waited for} */
#define ANSWER_RANKS 61                     /* at most this many ranks an answer (256 bytes: eager) */
#define ANSWER_INTS (3 + ANSWER_RANKS)

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
    /* the wait in progress (what an answer reports): its requests and their ranks */
    MPI_Request *wait_req;
    const int *wait_peer;
    int wait_n;
    /* a timeout's asks and the answers to others' asks, one slot a rank */
    int ask_no;               /* asks so far (their numbers) */
    int *ask_buf;             /* [W] the number of the ask in flight to each rank */
    MPI_Request *ask_req;     /* [W] */
    int *ans_buf;             /* [W·ANSWER_INTS] the answer in flight to each rank */
    MPI_Request *ans_req;     /* [W] */
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

/* The ranks of req[0..n) (peer[i] each) whose requests have not completed, each once, in
 * list order, at most cap of them; their number. Does not complete any request. */
static int mpi_pending(const MPI_Request *req, const int *peer, int n, int *out, int cap) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int f = 1;
        if (req[i] != MPI_REQUEST_NULL) MPI_Request_get_status(req[i], &f, MPI_STATUS_IGNORE);
        if (f) continue;
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) dup = out[j] == peer[i];
        if (!dup && m < cap) out[m++] = peer[i];
    }
    return m;
}

/* Answers every ask that has come: what this rank waits for now (nothing when it is not
 * in a wait: it works). An answer still in flight to the same rank drops the new ask. */
static void mpi_answer(mpi_impl *k) {
    for (int guard = 0; guard < 4 * k->W; guard++) {
        int flag = 0, no;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, k->comm, &flag, &st) != MPI_SUCCESS || !flag) return;
        int s = st.MPI_SOURCE;
        if (MPI_Recv(&no, 1, MPI_INT, s, TAG_ASK, k->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
        if (k->ans_req[s] != MPI_REQUEST_NULL) {
            int f = 0;
            MPI_Test(&k->ans_req[s], &f, MPI_STATUS_IGNORE);
            if (!f) continue;
        }
        int *a = k->ans_buf + (size_t)s * ANSWER_INTS;
        a[0] = no;
        a[1] = k->wait_n > 0;
        a[2] = k->wait_n > 0 ? mpi_pending(k->wait_req, k->wait_peer, k->wait_n, a + 3, ANSWER_RANKS) : 0;
        MPI_Isend(a, 3 + a[2], MPI_INT, s, TAG_ANSWER, k->comm, &k->ans_req[s]);
    }
}

/* "rank 2" or "ranks 1, 3" from the ranks r with state[r] == want, into s[len]; how many. */
static int mpi_rank_list(char *s, size_t len, const char *state, int W, int want) {
    size_t at = 0;
    int m = 0, total = 0;
    for (int r = 0; r < W; r++) total += state[r] == want;
    if (len) s[0] = 0;
    for (int r = 0; r < W && at < len; r++) {
        if (state[r] != want) continue;
        at += (size_t)snprintf(s + at, len - at, "%s%d", m ? ", " : total > 1 ? "ranks " : "rank ", r);
        m++;
    }
    return total;
}

enum { ASK_NONE, ASK_SENT, ASK_WAITING, ASK_WORKING, ASK_SILENT };

/* A wait ran out: asks the ranks it waits for what they wait for, and the ranks those
 * wait for, until every asked rank answered or had its grace; writes the error and
 * returns -1, or 0 when nothing is pending any more (the wait is over). */
static int mpi_diagnose(dath_comm *c, const char *what, const MPI_Request *req, const int *peer, int n) {
    mpi_impl *k = c->impl;
    int W = k->W;
    char *state = calloc((size_t)W, 1);
    double *sent = calloc((size_t)W, sizeof *sent);
    int *wait = malloc((size_t)W * sizeof *wait), nwait = wait ? mpi_pending(req, peer, n, wait, W) : 1;
    char waited[200];
    if (!state || !sent || !wait || !nwait) {
        free(state); free(sent); free(wait);
        if (!nwait) return 0;
        snprintf(c->err, sizeof c->err, "rank %d: %s: nothing from another rank for %.0f s (--comm-timeout) "
                 "(out of memory to ask which)", c->rank, what, c->timeout_s);
        return -1;
    }
    for (int i = 0; i < nwait; i++) state[wait[i]] = 1;   /* the ranks waited for, named */
    mpi_rank_list(waited, sizeof waited, state, W, 1);
    memset(state, ASK_NONE, (size_t)W);
    double grace = c->timeout_s / 2;
    if (grace < 1) grace = 1;
    if (grace > 30) grace = 30;
    int no = ++k->ask_no;
    /* wait[0..queue_n) the ranks to ask: the ones waited for first, then the ones their
     * answers name; wait[0..asked) asked */
    int queue_n = nwait, asked = 0;
    for (;;) {
        double now = dath_now();
        for (; asked < queue_n; asked++) {
            int t = wait[asked];
            if (state[t] != ASK_NONE) continue;
            state[t] = ASK_SENT;
            sent[t] = now;
            if (k->ask_req[t] != MPI_REQUEST_NULL) {
                int f = 0;
                MPI_Test(&k->ask_req[t], &f, MPI_STATUS_IGNORE);
                if (!f) continue;   /* the last ask has not left: its answer counts */
            }
            k->ask_buf[t] = no;
            if (MPI_Isend(&k->ask_buf[t], 1, MPI_INT, t, TAG_ASK, k->comm, &k->ask_req[t]) != MPI_SUCCESS)
                state[t] = ASK_SILENT;
        }
        mpi_answer(k);
        int flag = 0, got[ANSWER_INTS], cnt = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ANSWER, k->comm, &flag, &st) == MPI_SUCCESS && flag) {
            int s = st.MPI_SOURCE;
            if (MPI_Recv(got, ANSWER_INTS, MPI_INT, s, TAG_ANSWER, k->comm, &st) == MPI_SUCCESS &&
                MPI_Get_count(&st, MPI_INT, &cnt) == MPI_SUCCESS && cnt >= 3 && got[0] == k->ask_buf[s] &&
                state[s] == ASK_SENT) {
                state[s] = got[1] ? ASK_WAITING : ASK_WORKING;
                for (int i = 0; i < got[2] && 3 + i < cnt; i++) {
                    int t = got[3 + i];
                    if (t < 0 || t >= W || t == c->rank || state[t] != ASK_NONE) continue;
                    int dup = 0;
                    for (int j = asked; j < queue_n && !dup; j++) dup = wait[j] == t;
                    if (!dup && queue_n < W) wait[queue_n++] = t;
                }
            }
            continue;   /* more answers may be there */
        }
        int open = 0;
        for (int r = 0; r < W; r++) {
            if (state[r] != ASK_SENT) continue;
            if (now - sent[r] > grace) state[r] = ASK_SILENT;
            else open++;
        }
        if (!open && asked == queue_n) break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    char silent[200], waiting[200], working[200];
    int ns = mpi_rank_list(silent, sizeof silent, state, W, ASK_SILENT);
    int nw = mpi_rank_list(waiting, sizeof waiting, state, W, ASK_WAITING);
    int nk = mpi_rank_list(working, sizeof working, state, W, ASK_WORKING);
    char tail[420] = "";
    size_t at = 0;
    if (nw && at < sizeof tail)
        at += (size_t)snprintf(tail + at, sizeof tail - at, "; %s answer%s, waiting too", waiting, nw > 1 ? "" : "s");
    if (nk && at < sizeof tail)
        at += (size_t)snprintf(tail + at, sizeof tail - at, "; %s answer%s, not waiting (slow?)", working, nk > 1 ? "" : "s");
    if (ns)
        snprintf(c->err, sizeof c->err, "rank %d: %s: nothing from %s for %.0f s (--comm-timeout); %s do%s not answer: "
                 "died or hang%s%s", c->rank, what, waited, c->timeout_s, silent, ns > 1 ? "" : "es",
                 ns > 1 ? "" : "s", tail);
    else
        snprintf(c->err, sizeof c->err, "rank %d: %s: nothing from %s for %.0f s (--comm-timeout); every rank asked "
                 "answers%s", c->rank, what, waited, c->timeout_s, tail);
    free(state);
    free(sent);
    free(wait);
    return -1;
}

/* Waits for req[0..n) within the time limit, answering other ranks' asks while it waits;
 * on a timeout finds which ranks hang (mpi_diagnose). */
static int mpi_wait_all(dath_comm *c, MPI_Request *req, const int *peer, int n, const char *what) {
    mpi_impl *k = c->impl;
    double t0 = dath_now();
    long polls = 0;
    k->wait_req = req;
    k->wait_peer = peer;
    k->wait_n = n;
    int rc = 0;
    for (;;) {
        int flag = 0, e = MPI_Testall(n, req, &flag, MPI_STATUSES_IGNORE);
        if (e != MPI_SUCCESS) { rc = mpi_fail(c, what, e); break; }
        if (flag) break;
        double el = dath_now() - t0;
        if (el > c->timeout_s && mpi_diagnose(c, what, req, peer, n)) {
            rc = -1;
            break;
        }
        /* spin briefly, then answer any ask and let the other processes of the node run */
        if (++polls > 200) {
            mpi_answer(k);
            struct timespec t = {0, el < 0.01 ? 20000 : 200000};
            nanosleep(&t, NULL);
        }
    }
    k->wait_n = 0;
    return rc;
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
    mpi_answer(k);   /* a rank that timed out may ask: this one works */
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

/* Frees k's arrays and k (not its communicator). */
static void mpi_impl_free(mpi_impl *k) {
    for (int i = 0; i < k->cap; i++) {
        free(k->bk[i].req);
        free(k->bk[i].peer);
        free(k->bk[i].parts);
    }
    free(k->bk);
    free(k->req);
    free(k->peer);
    free(k->ask_buf);
    free(k->ask_req);
    free(k->ans_buf);
    free(k->ans_req);
    free(k);
}

static void mpi_destroy(dath_comm *c) {
    mpi_impl *k = c->impl;
    for (int r = 0; r < k->W; r++) {   /* sends of 4 to 256 bytes: they go on */
        if (k->ask_req[r] != MPI_REQUEST_NULL) MPI_Request_free(&k->ask_req[r]);
        if (k->ans_req[r] != MPI_REQUEST_NULL) MPI_Request_free(&k->ans_req[r]);
    }
    if (k->comm != MPI_COMM_NULL) MPI_Comm_free(&k->comm);
    mpi_impl_free(k);
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
    k->ask_buf = calloc((size_t)k->W, sizeof *k->ask_buf);
    k->ask_req = malloc((size_t)k->W * sizeof *k->ask_req);
    k->ans_buf = calloc((size_t)k->W * ANSWER_INTS, sizeof *k->ans_buf);
    k->ans_req = malloc((size_t)k->W * sizeof *k->ans_req);
    if (!k->req || !k->peer || !k->ask_buf || !k->ask_req || !k->ans_buf || !k->ans_req) {
        snprintf(err, err_len, "rank %d: out of memory", d->rank);
        mpi_impl_free(k);
        return -1;
    }
    for (int r = 0; r < k->W; r++) k->ask_req[r] = k->ans_req[r] = MPI_REQUEST_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &k->comm);
    if (rc != MPI_SUCCESS) {
        snprintf(err, err_len, "rank %d: MPI_Comm_dup of MPI_COMM_WORLD failed", d->rank);
        mpi_impl_free(k);
        return -1;
    }
    MPI_Comm_set_errhandler(k->comm, MPI_ERRORS_RETURN);
    dath_comm *c = comm_new(be, d->rank, d->world, mpi_all_gather, mpi_all_reduce, mpi_destroy, k);
    if (!c) {
        MPI_Comm_free(&k->comm);
        mpi_impl_free(k);
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
