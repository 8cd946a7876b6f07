/* host/step.c — one training step over the communicator (see step.h).
 *
 * Rank r holds rows [r·B, (r+1)·B) of the global batch of world·B images.
 *   forward → all-gather h and labels → J1 over the global batch (gradient for all
 *   rows, this rank keeps its slice) → J2, J3 on the local rows, normalised by the
 *   global batch → backward → all-reduce (sum) of the gradients → RMSProp.
 * Summing the ranks' gradients gives exactly the one-GPU gradient of the global batch. */
#include "step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dath_stepper {
    dath_net *net;
    dath_comm *comm;
    float *hg, *labg, *dhg;   /* [world·Bmax, K], [world·Bmax, C], [world·Bmax, K] */
    float *loss;              /* [4]: j1, j2, j3, spare */
    int64_t *ntrip;           /* [1] */
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
    s->hg = be->alloc(rows * m->K * sizeof(float));
    s->labg = be->alloc(rows * m->C * sizeof(float));
    s->dhg = be->alloc(rows * m->K * sizeof(float));
    s->loss = be->alloc(4 * sizeof(float));
    s->ntrip = be->alloc(sizeof(int64_t));
    if (!s->hg || !s->labg || !s->dhg || !s->loss || !s->ntrip) {
        snprintf(err, err_len, "out of %s memory for the step's scratch", be->name);
        stepper_free(s);
        return NULL;
    }
    return s;
}

void stepper_free(dath_stepper *s) {
    if (!s) return;
    const dath_backend *be = s->comm->be;
    be->free(s->hg); be->free(s->labg); be->free(s->dhg); be->free(s->loss); be->free(s->ntrip);
    free(s);
}

int stepper_run(dath_stepper *s, const float *x, const float *lab, int B, uint32_t step,
                const step_config *cfg, int update, step_losses *out, char *err, size_t err_len) {
    dath_net *n = s->net;
    dath_comm *c = s->comm;
    const dath_backend *be = c->be;
    const dath_model *m = net_model(n);
    dath_ctx *ctx = net_ctx(n);
    int K = m->K, C = m->C, Bg = B * c->world;
    net_run r = {cfg->dropout, cfg->seed, step, (uint32_t)(c->rank * B)};

    net_zero_grad(n);
    net_forward(n, x, B, &r);
    if (c->all_gather(c, s->hg, net_h(n), (size_t)B * K, ctx) ||
        c->all_gather(c, s->labg, lab, (size_t)B * C, ctx)) {
        snprintf(err, err_len, "all-gather failed: %s", c->err);
        return -1;
    }
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
    be->j3_quant(s->loss + 2, dh, h, B, K, (float)Bg, cfg->gamma, ctx);
    net_backward(n, x, B, &r);

    /* J2 and J3 are sums over this rank's rows: the global value is their sum over
     * ranks; J1 is already global. Reduce them with the gradients in one call. */
    if (c->world > 1) {
        be->zero(s->loss + 3, sizeof(float), ctx);
        if (c->all_reduce_sum(c, net_grad(n), m->n, ctx) || c->all_reduce_sum(c, s->loss + 1, 2, ctx)) {
            snprintf(err, err_len, "all-reduce failed: %s", c->err);
            return -1;
        }
    }
    float lv[3];
    int64_t nt = 0;
    be->download(lv, s->loss, sizeof lv, ctx);
    be->download(&nt, s->ntrip, sizeof nt, ctx);
    out->j1 = lv[0];
    out->j2 = lv[1];
    out->j3 = lv[2];
    out->ntriplets = nt;
    out->total = (double)cfg->w1 * lv[0] + (double)cfg->beta * lv[1] + (double)cfg->gamma * lv[2];
    if (!isfinite(out->total)) {
        snprintf(err, err_len, "step %u: the loss is not finite (J1 %g, J2 %g, J3 %g); parameters left unchanged",
                 step, lv[0], lv[1], lv[2]);
        return -1;
    }
    if (update)
        be->rmsprop_step(net_theta(n), net_rms(n), net_grad(n), m->n, cfg->lr, cfg->alpha, cfg->eps, cfg->wd, ctx);
    return 0;
}
