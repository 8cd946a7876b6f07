/* host/step.c — one training step over the communicator (see step.h).
 *
 * Rank r holds rows [r·B, (r+1)·B) of the global batch of world·B images.
 *   forward → all-gather h and labels → J1 over the global batch (gradient for all
 *   rows, this rank keeps its slice) → J2 on the local rows → the classification
 *   layer's backward (dh complete but for J3) → J3 fused with the tanh backward (dz)
 *   → the rest of the backward → all-reduce (sum) of the gradients and of J2, J3 →
 *   RMSProp, which reads the three losses and leaves the parameters alone when one
 *   is not finite.
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
    free(s);
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

    net_zero_grad(n);
    net_forward(n, x, B, &r);
    if (c->all_gather(c, s->hg, net_h(n), (size_t)B * K, ctx) ||
        c->all_gather(c, s->labg, lab, (size_t)B * C, ctx))
        return -1;
    float *dh = net_dh(n), *dy = net_dy(n);
    const float *h = net_h(n), *y = net_y(n);
    if (c->world == 1) {
        be->j1_triplet(s->loss + 0, s->ntrip, dh, s->hg, s->labg, Bg, K, C, cfg->margin, cfg->w1, ctx);
    } else {
        be->zero(s->dhg, (size_t)Bg * K * sizeof(float), ctx);
        be->j1_triplet(s->loss + 0, s->ntrip, s->dhg, s->hg, s->labg, Bg, K, C, cfg->margin, cfg->w1, ctx);
        be->axpy(dh, s->dhg + (size_t)c->rank * B * K, 1.0f, (size_t)B * K, ctx);
    }
    be->j2_class(s->loss + 1, dy, y, lab, B, C, cfg->multi, (float)Bg, cfg->beta, ctx);
    net_backward_head(n, B);
    be->j3_tanh_backward(s->loss + 2, net_dz(n), dh, h, B, K, (float)Bg, cfg->gamma, ctx);
    net_backward_body(n, x, B, &r);

    /* J2 and J3 are sums over this rank's rows: the global value is their sum over
     * ranks; J1 is already global. */
    if (c->world > 1) {
        be->zero(s->loss + 3, sizeof(float), ctx);
        if (c->all_reduce_sum(c, net_grad(n), m->n, ctx) || c->all_reduce_sum(c, s->loss + 1, 2, ctx))
            return -1;
    }
    if (update)
        be->rmsprop_step(net_theta(n), net_rms(n), net_grad(n), m->n, cfg->lr, cfg->alpha, cfg->eps, cfg->wd,
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
        snprintf(err, err_len, "step %u: launching the step's CUDA graph failed", step);
        s->pending = 0;
        return -1;
    }
    if (stepper_enqueue(s, x, lab, B, cfg, update)) {
        snprintf(err, err_len, "step %u: %s", step, c->err);
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
    float lv[3];
    int64_t nt = 0;
    be->download(lv, s->loss, sizeof lv, ctx);
    be->download(&nt, s->ntrip, sizeof nt, ctx);
    out->j1 = lv[0];
    out->j2 = lv[1];
    out->j3 = lv[2];
    out->ntriplets = nt;
    out->total = (double)s->p_w1 * lv[0] + (double)s->p_beta * lv[1] + (double)s->p_gamma * lv[2];
    if (!isfinite(lv[0]) || !isfinite(lv[1]) || !isfinite(lv[2])) {
        snprintf(err, err_len, "step %u: the loss is not finite (J1 %g, J2 %g, J3 %g); parameters left unchanged",
                 s->p_step, lv[0], lv[1], lv[2]);
        return -1;
    }
    return 0;
}

int stepper_run(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                const step_config *cfg, int update, step_losses *out, char *err, size_t err_len) {
    if (stepper_launch(s, x, lab, B, step, cfg, update, err, err_len)) return -1;
    return stepper_finish(s, out, err, err_len);
}
