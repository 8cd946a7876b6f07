/* host/step.c — one training step over the communicator (see step.h).
 *
 * Rank r holds rows [r·B, (r+1)·B) of the global batch of world·B images.
 *   forward → all-gather h and labels → J2 on the local rows → the classification
 *   layer's backward (it writes dh) → J1 over the global batch (gradient for all rows,
 *   this rank adds its slice to dh: complete but for J3) → J3 fused with the tanh
 *   backward (dz)
 *   → the rest of the backward, each bucket of gradients all-reduced (sum) as soon as
 *   the backward has written it (the gradient hook, stepper_on_grad) → wait for every
 *   bucket → all-reduce of J2, J3 and the stop votes → RMSProp, which reads the three
 *   losses and leaves the parameters alone when one is not finite.
 * J2 and J3 are normalised by the global batch, so summing the ranks' gradients gives
 * exactly the one-GPU gradient of the global batch.
 *
 * Everything between stepper_launch's step-index upload and its end is queued on the
 * backend without the host reading anything back, which is what lets a CUDA graph
 * capture it (step.h). */
#include "step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../loader/atomic.h"
#include "clock.h"

#define STEPPER_GRAPHS 4   /* distinct (x, lab, B, update, cfg) keys kept */

typedef struct step_graph {
    const float *x, *lab;
    int B, update;
    step_config cfg;
    void *exec;               /* NULL until captured (the key was seen once: warm-up) */
} step_graph;

struct dath_stepper {
    dath_net *net;
    dath_comm *comm;
    float *hg, *labg, *dhg;   /* [world·Bmax, K], [world·Bmax, C], [world·Bmax, K] */
    float *loss;              /* [4]: j1, j2, j3, spare */
    int64_t *ntrip;           /* [1] */
    uint32_t *step;           /* [1] the step index the dropout ops read */
    int graphs;               /* 1: capture and replay (when the backend has graphs) */
    step_graph g[STEPPER_GRAPHS];
    int ng;
    long replayed;
    int captured;
    /* the step in flight */
    int pending;
    uint32_t p_step;
    float p_w1, p_beta, p_gamma;
    float vote;               /* stepper_vote: this rank's wish to stop after the next step */
    /* buckets (step.h): learned from the first backward, then the schedule */
    size_t bucket_cap;        /* floats a bucket holds at most (SIZE_MAX: one bucket) */
    int *order, norder;       /* [nparams] parameters in the order the backward finished them */
    uint8_t *seen;            /* [nparams] learning: reported already */
    dath_ctx **p_ctx;         /* [nparams] learning: the queue that wrote each gradient */
    step_bucket *bk;          /* [nbk] the schedule, in start order */
    int nbk;
    int *bucket_of;           /* [nparams] the bucket of each parameter */
    int *left;                /* [nbk] this step: parameters still to be written */
    int next_start;           /* this step: buckets started */
    int done_seen;            /* this step: buckets complete as reduce_progress last said */
    int hook_failed;
    char hook_err[400];       /* what failed in the hook (it cannot return a status) */
    /* the trace of the last step enqueued eagerly */
    step_event *ev;
    int nev, cap_ev;
    double t0;
};

void step_config_default(step_config *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1e-5f; c->wd = 1e-5f; c->alpha = 0.99f; c->eps = 1e-8f;
    c->w1 = 1.0f; c->beta = 1.0f; c->gamma = 0.01f; c->margin = 5.0f;
    c->multi = 1; c->dropout = 1; c->seed = 0;
}

dath_stepper *stepper_create(dath_net *n, dath_comm *c, char *err, size_t err_len) {
    const dath_backend *be = c->be;
    const dath_model *m = net_model(n);
    size_t rows = (size_t)c->world * (size_t)net_bmax(n);
    dath_stepper *s = calloc(1, sizeof *s);
    s->net = n;
    s->comm = c;
    s->graphs = 1;
    s->hg = be->alloc(rows * m->K * sizeof(float));
    s->labg = be->alloc(rows * m->C * sizeof(float));
    s->dhg = be->alloc(rows * m->K * sizeof(float));
    s->loss = be->alloc(4 * sizeof(float));
    s->ntrip = be->alloc(sizeof(int64_t));
    s->step = be->alloc(sizeof(uint32_t));
    s->bucket_cap = (size_t)STEP_BUCKET_MB_DEFAULT * (1 << 20) / sizeof(float);
    int np = m->nparams;
    s->order = calloc((size_t)np, sizeof *s->order);
    s->seen = calloc((size_t)np, 1);
    s->p_ctx = calloc((size_t)np, sizeof *s->p_ctx);
    s->bk = calloc((size_t)np, sizeof *s->bk);
    s->bucket_of = calloc((size_t)np, sizeof *s->bucket_of);
    s->left = calloc((size_t)np, sizeof *s->left);
    s->cap_ev = 3 * np + 8;
    s->ev = calloc((size_t)s->cap_ev, sizeof *s->ev);
    if (!s->order || !s->seen || !s->p_ctx || !s->bk || !s->bucket_of || !s->left || !s->ev) {
        snprintf(err, err_len, "out of host memory for the bucket schedule");
        stepper_free(s);
        return NULL;
    }
    if (!s->hg || !s->labg || !s->dhg || !s->loss || !s->ntrip || !s->step) {
        snprintf(err, err_len, "out of %s memory for the step's scratch", be->name);
        stepper_free(s);
        return NULL;
    }
    return s;
}

static void stepper_drop_graphs(dath_stepper *s) {
    const dath_backend *be = s->comm->be;
    for (int i = 0; i < s->ng; i++)
        if (s->g[i].exec) be->graph_free(s->g[i].exec);
    memset(s->g, 0, sizeof s->g);
    s->ng = 0;
}

void stepper_free(dath_stepper *s) {
    if (!s) return;
    const dath_backend *be = s->comm->be;
    if (s->pending) be->sync(net_ctx(s->net));
    stepper_drop_graphs(s);
    be->free(s->hg); be->free(s->labg); be->free(s->dhg); be->free(s->loss); be->free(s->ntrip);
    be->free(s->step);
    free(s->order); free(s->seen); free(s->p_ctx); free(s->bk); free(s->bucket_of); free(s->left); free(s->ev);
    free(s);
}

void stepper_vote(dath_stepper *s, int stop) { s->vote = stop ? 1.0f : 0.0f; }

void stepper_set_buckets(dath_stepper *s, size_t bucket_bytes) {
    s->bucket_cap = bucket_bytes ? bucket_bytes / sizeof(float) : SIZE_MAX;
    if (s->bucket_cap == 0) s->bucket_cap = 1;
    s->nbk = 0;   /* made again from the learned order by the next step */
    if (s->norder) s->nbk = -1;
}

void stepper_buckets(const dath_stepper *s, const step_bucket **b, int *nbuckets, const step_event **ev,
                     int *nevents) {
    *b = s->bk;
    *nbuckets = s->nbk > 0 ? s->nbk : 0;
    *ev = s->ev;
    *nevents = s->nev;
}

int stepper_write_trace(const dath_stepper *s, const char *path, uint32_t step, char *err, size_t err_len) {
    const dath_model *m = net_model(s->net);
    size_t cap = 4096 + (size_t)(s->nbk > 0 ? s->nbk : 0) * (256 + 80 * (size_t)m->nparams) + (size_t)s->nev * 160;
    char *t = malloc(cap);
    if (!t) {
        snprintf(err, err_len, "%s: out of memory for the trace", path);
        return -1;
    }
    size_t at = 0;
#define PUT(...) (at += (size_t)snprintf(t + at, at < cap ? cap - at : 0, __VA_ARGS__))
    PUT("{\"trace\":\"buckets\",\"rank\":%d,\"world\":%d,\"step\":%u,\"cap_floats\":%zu,\"floats\":%zu,\"buckets\":%d}\n",
        s->comm->rank, s->comm->world, step, s->bucket_cap, m->n, s->nbk > 0 ? s->nbk : 0);
    for (int b = 0; b < s->nbk; b++) {
        const step_bucket *k = &s->bk[b];
        PUT("{\"bucket\":%d,\"offset\":%zu,\"floats\":%zu,\"queue\":%d,\"params\":[", b, k->offset, k->count,
            k->ctx == net_ctx(s->net) ? 0 : 1);
        for (int p = k->p_first; p <= k->p_last; p++) PUT("%s\"%s\"", p > k->p_first ? "," : "", m->params[p].name);
        PUT("]}\n");
    }
    static const char *const kind[] = {"grad", "start", "done", "backward_end", "wait_end"};
    for (int e = 0; e < s->nev; e++) {
        const step_event *v = &s->ev[e];
        PUT("{\"event\":\"%s\"", kind[v->kind]);
        if (v->kind == STEP_EV_GRAD) PUT(",\"param\":\"%s\"", m->params[v->index].name);
        if (v->kind == STEP_EV_START) PUT(",\"bucket\":%d", v->index);
        if (v->kind == STEP_EV_DONE) PUT(",\"buckets_done\":%d", v->index);
        PUT(",\"ms\":%.3f}\n", v->t * 1e3);
    }
#undef PUT
    int rc = -1;
    if (at >= cap) snprintf(err, err_len, "%s: the trace outgrew its buffer", path);
    else {
        const void *parts[1] = {t};
        rc = atomic_write(path, parts, &at, 1, err, err_len);
    }
    free(t);
    return rc;
}

static void stepper_trace(dath_stepper *s, int kind, int index, const dath_ctx *ctx) {
    if (s->nev < s->cap_ev) s->ev[s->nev++] = (step_event){kind, index, dath_now() - s->t0, ctx};
}

/* The schedule from the learned order (step.h): walking the parameters in the order the
 * backward finished them, a bucket grows by a parameter next to it in the buffer, written
 * on the same queue, while it stays within the cap; otherwise the parameter opens the
 * next bucket. */
static void stepper_plan(dath_stepper *s) {
    const dath_model *m = net_model(s->net);
    if (s->bucket_cap == SIZE_MAX) {   /* --bucket-mb 0: the whole buffer once the backward has
                                        * written it all, on net_ctx (joined with every queue) */
        for (int p = 0; p < m->nparams; p++) s->bucket_of[p] = 0;
        s->bk[0] = (step_bucket){0, m->n, 0, m->nparams - 1, net_ctx(s->net)};
        s->nbk = 1;
        return;
    }
    int nb = 0, lo = 0, hi = 0;
    size_t size = 0;
    for (int k = 0; k < s->norder; k++) {
        int p = s->order[k];
        size_t e = m->params[p].numel;
        if (k > 0 && (p == lo - 1 || p == hi + 1) && size + e <= s->bucket_cap && s->p_ctx[p] == s->p_ctx[s->order[k - 1]]) {
            if (p < lo) lo = p; else hi = p;
            size += e;
        } else {
            if (k > 0) s->bk[nb++] = (step_bucket){0, 0, lo, hi, s->p_ctx[s->order[k - 1]]};
            lo = hi = p;
            size = e;
        }
        s->bucket_of[p] = nb;
    }
    s->bk[nb++] = (step_bucket){0, 0, lo, hi, s->p_ctx[s->order[s->norder - 1]]};
    for (int b = 0; b < nb; b++) {
        step_bucket *k = &s->bk[b];
        k->offset = m->params[k->p_first].offset;
        size_t end = k->p_last + 1 < m->nparams ? m->params[k->p_last + 1].offset : m->n;
        k->count = end - k->offset;
    }
    s->nbk = nb;
}

/* Starts every bucket whose parameters are all written, in schedule order (so the
 * order of the sums is the schedule's on every rank, whatever the backward did). */
static void stepper_start_ready(dath_stepper *s) {
    dath_comm *c = s->comm;
    float *g = net_grad(s->net);
    while (!s->hook_failed && s->next_start < s->nbk && s->left[s->next_start] == 0) {
        const step_bucket *k = &s->bk[s->next_start];
        stepper_trace(s, STEP_EV_START, s->next_start, k->ctx);
        if (c->reduce_start(c, g + k->offset, k->count, k->ctx)) {
            s->hook_failed = 1;
            snprintf(s->hook_err, sizeof s->hook_err, "bucket %d of %d: %.360s", s->next_start, s->nbk, c->err);
            return;
        }
        s->next_start++;
    }
}

/* net.h's gradient hook: parameter p's gradient is written. */
static void stepper_on_grad(void *user, int p, dath_ctx *ctx) {
    dath_stepper *s = user;
    const dath_model *m = net_model(s->net);
    stepper_trace(s, STEP_EV_GRAD, p, ctx);
    if (s->hook_failed) return;
    if (s->nbk <= 0) {   /* learning the order */
        if (s->seen[p]++) {
            s->hook_failed = 1;
            snprintf(s->hook_err, sizeof s->hook_err, "the backward reported %s's gradient twice", m->params[p].name);
            return;
        }
        s->order[s->norder++] = p;
        s->p_ctx[p] = ctx;
        return;
    }
    int b = s->bucket_of[p];
    if (ctx != s->bk[b].ctx && s->bucket_cap != SIZE_MAX) {
        s->hook_failed = 1;
        snprintf(s->hook_err, sizeof s->hook_err, "%s's gradient came on another queue than the first step's", m->params[p].name);
        return;
    }
    if (s->left[b] <= 0) {
        s->hook_failed = 1;
        snprintf(s->hook_err, sizeof s->hook_err, "the backward reported %s's gradient twice", m->params[p].name);
        return;
    }
    if (--s->left[b] == 0) stepper_start_ready(s);
    int done = s->comm->reduce_progress(s->comm, net_ctx(s->net));
    if (done < 0) {
        s->hook_failed = 1;
        snprintf(s->hook_err, sizeof s->hook_err, "%.399s", s->comm->err);
    } else if (done > s->done_seen) {
        s->done_seen = done;
        stepper_trace(s, STEP_EV_DONE, done, NULL);
    }
}

/* Before a backward: every bucket waits for all its parameters. */
static void stepper_arm(dath_stepper *s) {
    const dath_model *m = net_model(s->net);
    if (s->nbk < 0) stepper_plan(s);
    for (int b = 0; b < s->nbk; b++) s->left[b] = s->bk[b].p_last - s->bk[b].p_first + 1;
    s->next_start = 0;
    s->done_seen = 0;
    s->hook_failed = 0;
    s->hook_err[0] = 0;
    if (s->nbk == 0) {
        s->norder = 0;
        memset(s->seen, 0, (size_t)m->nparams);
    }
}

/* After the backward: the gradients are summed (buckets started, or, the first time,
 * the whole buffer), and the schedule is made from the learned order. */
static int stepper_reduce(dath_stepper *s) {
    dath_comm *c = s->comm;
    const dath_model *m = net_model(s->net);
    dath_ctx *ctx = net_ctx(s->net);
    stepper_trace(s, STEP_EV_BACKWARD_END, 0, NULL);
    if (s->hook_failed) {
        snprintf(c->err, sizeof c->err, "%s", s->hook_err);
        return -1;
    }
    if (s->nbk == 0) {
        for (int p = 0; p < m->nparams; p++)
            if (!s->seen[p]) {
                snprintf(c->err, sizeof c->err, "the backward did not report %s's gradient (host/net.c)", m->params[p].name);
                return -1;
            }
        if (c->reduce_start(c, net_grad(s->net), m->n, ctx)) return -1;
        stepper_plan(s);
    } else if (s->next_start != s->nbk) {
        snprintf(c->err, sizeof c->err, "bucket %d of %d was never complete (host/net.c's gradient hook)", s->next_start, s->nbk);
        return -1;
    }
    if (c->reduce_wait(c, ctx)) return -1;
    stepper_trace(s, STEP_EV_WAIT_END, 0, NULL);
    return 0;
}

void stepper_set_graphs(dath_stepper *s, int on) {
    if (!on) stepper_drop_graphs(s);
    s->graphs = on;
}

void stepper_graph_stats(const dath_stepper *s, long *replayed, int *captured) {
    *replayed = s->replayed;
    *captured = s->captured;
}

/* The whole step as backend work, nothing read back: what a graph captures. */
static int stepper_enqueue(dath_stepper *s, const float *x, const float *lab, int B,
                           const step_config *cfg, int update) {
    dath_net *n = s->net;
    dath_comm *c = s->comm;
    const dath_backend *be = c->be;
    const dath_model *m = net_model(n);
    dath_ctx *ctx = net_ctx(n);
    int K = m->K, C = m->C, Bg = B * c->world;
    net_run r = {cfg->dropout, cfg->seed, s->step, (uint32_t)(c->rank * B)};

    s->nev = 0;
    s->t0 = dath_now();
    net_zero_grad(n);
    net_forward(n, x, B, &r);
    if (c->all_gather(c, s->hg, net_h(n), (size_t)B * K, ctx) ||
        c->all_gather(c, s->labg, lab, (size_t)B * C, ctx))
        return -1;
    float *dh = net_dh(n), *dy = net_dy(n);
    const float *h = net_h(n), *y = net_y(n);
    be->j2_class(s->loss + 1, dy, y, lab, B, C, cfg->multi, (float)Bg, cfg->beta, ctx);
    if (c->world > 1) {
        stepper_arm(s);
        net_set_grad_hook(n, stepper_on_grad, s);
    }
    net_backward_head(n, B);   /* writes dh: the classifier's share; J1 adds its own */
    if (c->world == 1) {
        be->j1_triplet(s->loss + 0, s->ntrip, dh, s->hg, s->labg, Bg, K, C, cfg->margin, cfg->w1, ctx);
    } else {
        be->zero(s->dhg, (size_t)Bg * K * sizeof(float), ctx);
        be->j1_triplet(s->loss + 0, s->ntrip, s->dhg, s->hg, s->labg, Bg, K, C, cfg->margin, cfg->w1, ctx);
        be->axpy(dh, s->dhg + (size_t)c->rank * B * K, 1.0f, (size_t)B * K, ctx);
    }
    be->j3_tanh_backward(s->loss + 2, net_dz(n), dh, h, B, K, (float)Bg, cfg->gamma, ctx);
    net_backward_body(n, x, B, &r);
    net_set_grad_hook(n, NULL, NULL);

    /* J2 and J3 are sums over this rank's rows: the global value is their sum over
     * ranks (with loss[3], the stop votes uploaded by stepper_launch); J1 is already
     * global. */
    if (c->world > 1 && (stepper_reduce(s) || c->all_reduce_sum(c, s->loss + 1, 3, ctx))) return -1;
    if (update)
        be->rmsprop_step(net_theta(n), net_rms(n), net_wcopy(n), net_grad(n), m->n, cfg->lr, cfg->alpha, cfg->eps, cfg->wd,
                         s->loss, 3, ctx);
    return 0;
}

static step_graph *stepper_find(dath_stepper *s, const float *x, const float *lab, int B, int update,
                                const step_config *cfg) {
    for (int i = 0; i < s->ng; i++) {
        step_graph *g = &s->g[i];
        if (g->x == x && g->lab == lab && g->B == B && g->update == update && !memcmp(&g->cfg, cfg, sizeof *cfg))
            return g;
    }
    return NULL;
}

int stepper_launch(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                   const step_config *cfg, int update, char *err, size_t err_len) {
    dath_comm *c = s->comm;
    const dath_backend *be = c->be;
    dath_ctx *ctx = net_ctx(s->net);
    if (s->pending) {
        snprintf(err, err_len, "stepper_launch: the previous step was not finished");
        return -1;
    }
    be->upload(s->step, &step, sizeof step, ctx);
    if (c->world > 1) be->upload(s->loss + 3, &s->vote, sizeof s->vote, ctx);   /* summed by the step */
    s->pending = 1;
    s->p_step = step;
    s->p_w1 = cfg->w1; s->p_beta = cfg->beta; s->p_gamma = cfg->gamma;

    step_graph *g = NULL;
    if (s->graphs && be->graph_begin) {
        g = stepper_find(s, x, lab, B, update, cfg);
        if (!g && s->ng < STEPPER_GRAPHS) {   /* first sight: remember, run eagerly */
            g = &s->g[s->ng++];
            memset(g, 0, sizeof *g);
            g->x = x; g->lab = lab; g->B = B; g->update = update; g->cfg = *cfg;
            g = NULL;
        } else if (g && !g->exec) {           /* second sight: capture */
            if (be->graph_begin(ctx) == 0) {
                int rc = stepper_enqueue(s, x, lab, B, cfg, update);
                void *exec = NULL;
                if (be->graph_end(ctx, &exec) == 0 && rc == 0) {
                    g->exec = exec;
                    s->captured++;
                } else {
                    if (exec) be->graph_free(exec);
                    fprintf(stderr, "dath: capturing the training step in a CUDA graph failed; steps run without graphs\n");
                    stepper_set_graphs(s, 0);
                    g = NULL;
                }
            } else {
                fprintf(stderr, "dath: cannot begin a CUDA graph capture; steps run without graphs\n");
                stepper_set_graphs(s, 0);
                g = NULL;
            }
        }
    }
    if (g && g->exec) {
        if (be->graph_launch(ctx, g->exec) == 0) {
            s->replayed++;
            return 0;
        }
        snprintf(err, err_len, "step %u: launching the step's CUDA graph failed", step + 1);
        s->pending = 0;
        return -1;
    }
    if (stepper_enqueue(s, x, lab, B, cfg, update)) {
        snprintf(err, err_len, "step %u: %s", step + 1, c->err);
        s->pending = 0;
        return -1;
    }
    return 0;
}

int stepper_finish(dath_stepper *s, step_losses *out, char *err, size_t err_len) {
    const dath_backend *be = s->comm->be;
    dath_ctx *ctx = net_ctx(s->net);
    if (!s->pending) {
        snprintf(err, err_len, "stepper_finish: no step in flight");
        return -1;
    }
    s->pending = 0;
    dath_comm *c = s->comm;
    if (c->watch && c->watch(c, ctx)) {
        snprintf(err, err_len, "step %u: %s", s->p_step + 1, c->err);
        return -1;
    }
    float lv[4] = {0, 0, 0, 0};   /* j1, j2, j3 and (several ranks) the stop votes */
    int64_t nt = 0;
    be->download(lv, s->loss, (c->world > 1 ? 4 : 3) * sizeof(float), ctx);
    be->download(&nt, s->ntrip, sizeof nt, ctx);
    out->j1 = lv[0];
    out->j2 = lv[1];
    out->j3 = lv[2];
    out->ntriplets = nt;
    out->stop_votes = c->world > 1 ? lv[3] : s->vote;
    out->total = (double)s->p_w1 * lv[0] + (double)s->p_beta * lv[1] + (double)s->p_gamma * lv[2];
    if (!isfinite(lv[0]) || !isfinite(lv[1]) || !isfinite(lv[2])) {
        snprintf(err, err_len, "step %u: the loss is not finite (J1 %g, J2 %g, J3 %g); parameters left unchanged",
                 s->p_step + 1, lv[0], lv[1], lv[2]);
        return -1;
    }
    return 0;
}

int stepper_run(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                const step_config *cfg, int update, step_losses *out, char *err, size_t err_len) {
    if (stepper_launch(s, x, lab, B, step, cfg, update, err, err_len)) return -1;
    return stepper_finish(s, out, err, err_len);
}
