/* host/retrieval.c — Hamming ranking and its metrics on a backend (see retrieval.h).
 *
 * retrieval_evaluate copies both sides into backend memory (a copy on the CPU backend,
 * an upload on CUDA), runs the backend's hamming_eval with a context whose scratch
 * holds RETRIEVAL_QUERIES_AT_ONCE queries (the CUDA version ranks in chunks of as many
 * as fit), brings the per-query statistics back and takes the means on the host. */
#include "retrieval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "encoder.h"

#define RETRIEVAL_QUERIES_AT_ONCE 1024   /* sizes the ranking's scratch on a GPU */

void retrieval_result_free(retrieval_result *res) {
    if (!res) return;
    free(res->p_at);
    free(res->r_at);
    free(res->p_rad);
    free(res->r_rad);
    memset(res, 0, sizeof *res);
}

/* The per-query statistics, in backend memory and on the host. */
typedef struct rank_bufs {
    uint8_t *qc, *dc, *ql, *dl;           /* [Q, B], [D, B], [Q, C], [D, C] */
    int32_t *at;                          /* [n_at] */
    double *ap, *best, *worst;            /* [Q] (best/worst without tie bounds: NULL) */
    int32_t *hits_k, *rel_all;            /* [Q] */
    int32_t *hits_at;                     /* [Q, n_at] */
    int32_t *ret_r, *rel_r;               /* [Q, R+1] */
} rank_bufs;

static void rank_bufs_free(const dath_backend *be, rank_bufs *b, int device) {
    void (*f)(void *) = device ? be->free : free;
    f(b->qc); f(b->dc); f(b->ql); f(b->dl); f(b->at); f(b->ap); f(b->best); f(b->worst);
    f(b->hits_k); f(b->rel_all); f(b->hits_at); f(b->ret_r); f(b->rel_r);
}

/* Allocates every buffer with alloc (the backend's or malloc). Returns 0, or -1. */
static int rank_bufs_alloc(rank_bufs *b, void *(*alloc)(size_t), int with_inputs, int Q, int D, int B, int C,
                           int n_at, int R, int bounds) {
    memset(b, 0, sizeof *b);
    const size_t q = (size_t)Q, rr = (size_t)Q * (R + 1), ha = (size_t)Q * (n_at ? n_at : 1);
    if (with_inputs) {
        b->qc = alloc(q * B); b->dc = alloc((size_t)D * B);
        b->ql = alloc(q * C); b->dl = alloc((size_t)D * C);
        b->at = alloc((size_t)(n_at ? n_at : 1) * sizeof *b->at);
        if (!b->qc || !b->dc || !b->ql || !b->dl || !b->at) return -1;
    }
    b->ap = alloc(q * sizeof *b->ap);
    b->best = bounds ? alloc(q * sizeof *b->best) : NULL;
    b->worst = bounds ? alloc(q * sizeof *b->worst) : NULL;
    b->hits_k = alloc(q * sizeof *b->hits_k);
    b->rel_all = alloc(q * sizeof *b->rel_all);
    b->hits_at = alloc(ha * sizeof *b->hits_at);
    b->ret_r = alloc(rr * sizeof *b->ret_r);
    b->rel_r = alloc(rr * sizeof *b->rel_r);
    return b->ap && (!bounds || (b->best && b->worst)) && b->hits_k && b->rel_all && b->hits_at && b->ret_r &&
                   b->rel_r
               ? 0
               : -1;
}

int retrieval_evaluate(const dath_backend *be, const retrieval_side *q, const retrieval_side *d,
                       const retrieval_request *rq, retrieval_result *res, char *err, size_t err_len) {
    memset(res, 0, sizeof *res);
    const int Q = q->n, D = d->n, B = rq->B, C = rq->C, R = 8 * B, n_at = rq->n_at;
    const int T = rq->topk <= 0 || rq->topk > D ? D : rq->topk;
    if (Q < 1 || D < 1 || B < 1 || C < 1) {
        snprintf(err, err_len, "retrieval: %d queries, %d database codes, %d bytes a code, %d classes: "
                 "each must be at least 1", Q, D, B, C);
        return -1;
    }
    int depth = T;
    for (int j = 0; j < n_at; j++)
        if (rq->at[j] > depth) depth = rq->at[j];
    rank_bufs dev, host;
    dath_ctx ctx;
    size_t work = be->hamming_work_bytes(Q < RETRIEVAL_QUERIES_AT_ONCE ? Q : RETRIEVAL_QUERIES_AT_ONCE, D, B,
                                         C, depth, rq->tie_bounds);
    if (be->ctx_init(&ctx, work, DATH_FP32, err, err_len)) return -1;
    int rc = -1;
    const size_t qn = (size_t)Q, rn = (size_t)Q * (R + 1), hn = (size_t)Q * n_at;
    int dev_ok = rank_bufs_alloc(&dev, be->alloc, 1, Q, D, B, C, n_at, R, rq->tie_bounds) == 0;
    int host_ok = rank_bufs_alloc(&host, malloc, 0, Q, D, B, C, n_at, R, rq->tie_bounds) == 0;
    res->p_at = malloc((size_t)(n_at ? n_at : 1) * sizeof *res->p_at);
    res->r_at = malloc((size_t)(n_at ? n_at : 1) * sizeof *res->r_at);
    res->p_rad = malloc((size_t)(R + 1) * sizeof *res->p_rad);
    res->r_rad = malloc((size_t)(R + 1) * sizeof *res->r_rad);
    if (!dev_ok || !host_ok || !res->p_at || !res->r_at || !res->p_rad || !res->r_rad) {
        snprintf(err, err_len, "out of %s memory for ranking %d query and %d database codes",
                 dev_ok ? "host" : be->name, Q, D);
        goto out;
    }
    double t0 = dath_now();
    be->upload(dev.qc, q->codes, qn * B, &ctx);
    be->upload(dev.dc, d->codes, (size_t)D * B, &ctx);
    be->upload(dev.ql, q->labels, qn * C, &ctx);
    be->upload(dev.dl, d->labels, (size_t)D * C, &ctx);
    if (n_at) be->upload(dev.at, rq->at, (size_t)n_at * sizeof *rq->at, &ctx);
    be->hamming_eval(dev.ap, dev.hits_k, dev.rel_all, dev.best, dev.worst, n_at ? dev.hits_at : NULL,
                     dev.ret_r, dev.rel_r, dev.qc, dev.dc, dev.ql, dev.dl, n_at ? dev.at : NULL, n_at, Q, D, B,
                     C, T, &ctx);
    be->download(host.ap, dev.ap, qn * sizeof *host.ap, &ctx);
    if (rq->tie_bounds) {
        be->download(host.best, dev.best, qn * sizeof *host.best, &ctx);
        be->download(host.worst, dev.worst, qn * sizeof *host.worst, &ctx);
    }
    be->download(host.hits_k, dev.hits_k, qn * sizeof *host.hits_k, &ctx);
    be->download(host.rel_all, dev.rel_all, qn * sizeof *host.rel_all, &ctx);
    if (n_at) be->download(host.hits_at, dev.hits_at, hn * sizeof *host.hits_at, &ctx);
    be->download(host.ret_r, dev.ret_r, rn * sizeof *host.ret_r, &ctx);
    be->download(host.rel_r, dev.rel_r, rn * sizeof *host.rel_r, &ctx);
    res->seconds = dath_now() - t0;

    res->T = T;
    res->map = hamming_mean_ap(host.ap, host.hits_k, Q, rq->skip_empty, &res->queries_in_map);
    if (rq->tie_bounds) {
        res->map_best = hamming_mean_ap(host.best, host.hits_k, Q, rq->skip_empty, NULL);
        res->map_worst = hamming_mean_ap(host.worst, host.hits_k, Q, rq->skip_empty, NULL);
    }
    if (n_at) hamming_curve_at(res->p_at, res->r_at, host.hits_at, host.rel_all, rq->at, n_at, Q);
    hamming_curve_radius(res->p_rad, res->r_rad, host.ret_r, host.rel_r, host.rel_all, Q, R);
    for (int i = 0; i < Q; i++) res->no_relevant += host.rel_all[i] == 0;
    rc = 0;
out:
    rank_bufs_free(be, &dev, 1);
    rank_bufs_free(be, &host, 0);
    be->ctx_free(&ctx);
    if (rc) retrieval_result_free(res);
    return rc;
}

int retrieval_model_map(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const char *query_list,
                        const char *db_list, const char *root, int batch, int workers, int64_t max_pixels,
                        int topk, double *map, char *err, size_t err_len) {
    dath_list *lists[2] = {NULL, NULL};
    uint8_t *codes[2] = {NULL, NULL}, *labs[2] = {NULL, NULL};
    int *kept[2] = {NULL, NULL}, n[2] = {0, 0};
    const char *files[2] = {query_list, db_list};
    int rc = -1;
    for (int s = 0; s < 2; s++) {
        if (!(lists[s] = list_read(files[s], root, err, err_len))) goto done;
        if (encoder_encode_list(be, ctx, m, lists[s], batch, workers, max_pixels, 0, &codes[s], &kept[s], &n[s],
                                err, err_len))
            goto done;
        if (n[s] == 0) {
            snprintf(err, err_len, "%s: no image could be read", files[s]);
            goto done;
        }
        if (!(labs[s] = list_rows_labels(lists[s], kept[s], n[s]))) {
            snprintf(err, err_len, "%s: out of memory", files[s]);
            goto done;
        }
    }
    if (lists[0]->C != lists[1]->C) {
        snprintf(err, err_len, "%s has %d labels a line but %s has %d", query_list, lists[0]->C, db_list,
                 lists[1]->C);
        goto done;
    }
    {
        const retrieval_side q = {codes[0], labs[0], n[0]}, d = {codes[1], labs[1], n[1]};
        const retrieval_request rq = {.B = (m->K + 7) / 8, .C = lists[0]->C, .topk = topk};
        retrieval_result res;
        if (retrieval_evaluate(be, &q, &d, &rq, &res, err, err_len)) goto done;
        *map = res.map;
        retrieval_result_free(&res);
    }
    rc = 0;
done:
    for (int s = 0; s < 2; s++) {
        if (lists[s]) list_free(lists[s]);
        free(codes[s]);
        free(labs[s]);
        free(kept[s]);
    }
    return rc;
}
