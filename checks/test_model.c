/* checks/test_model.c — the whole model, every variant, on a tiny input: the gradient
 * of J1, J2 and J3 (each alone) against central finite differences.
 *
 * The parameters number ~57M a stream and each element's gradient is tiny, so a
 * single-element difference drowns in float32 rounding of the loss. Instead, for a
 * random subset of tensors and, in each, a random subset of M elements, two
 * directional derivatives are compared with their finite differences:
 *   u = g_S / |g_S| (the gradient restricted to the subset: derivative |g_S|)
 *   u = random signs / √M on the subset (derivative Σ ±g_i / √M).
 * Dropout is off; γ of the attention modules is set to 0.5 so that attention's
 * gradients are not trivially those of γ = 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/backend.h"
#include "../host/comm.h"
#include "../host/model.h"
#include "../host/net.h"
#include "../host/step.h"
#include "check.h"

enum { B = 4, S = 64, K = 16, C = 5, M = 48, NTENSORS = 5 };
static const double FD_EPS = 2e-3;   /* step along the unit direction */
/* |fd − analytic| ≤ atol·|g_S| + rtol·|analytic|: the atol term scales with the size of
 * the gradient on the subset, since float32 rounding of J is what limits the
 * difference */
static const double FD_ATOL = 2e-2, FD_RTOL = 2e-2;

static const dath_backend *be;
static dath_ctx ctx;

/* J = w·(J1, J2, J3) at the current parameters (forward only). */
static double loss_at(dath_net *n, const float *x, const float *lab, const float w[3], int multi, float *tmp) {
    net_run r = {0, 0, 0, 0};
    net_forward(n, x, B, &r);
    float l[3];
    be->j1_triplet(&l[0], NULL, NULL, net_h(n), lab, B, K, C, 5.0f, 1.0f, &ctx);
    be->j2_class(&l[1], NULL, net_y(n), lab, B, C, multi, (float)B, 1.0f, &ctx);
    be->j3_quant(&l[2], NULL, net_h(n), B, K, (float)B, 1.0f, &ctx);
    (void)tmp;
    return (double)w[0] * l[0] + (double)w[1] * l[1] + (double)w[2] * l[2];
}

static void check_variant(dath_variant v, uint64_t *rs) {
    char err[256];
    dath_model *m = model_create(v, K, C, S, err, sizeof err);
    if (!CHECK_TRUE("model_create", m != NULL)) { printf("  %s\n", err); return; }
    model_init_default(m, 7 + (uint64_t)v);
    for (int i = 0; i < m->nparams; i++)
        if (strstr(m->params[i].name, "gamma")) m->theta[m->params[i].offset] = 0.5f;
    dath_net *n = net_create(be, &ctx, m, B, 1, err, sizeof err);
    dath_comm *comm = comm_single(be);
    dath_stepper *st = stepper_create(n, comm, err, sizeof err);
    float *x = malloc((size_t)B * 3 * S * S * sizeof(float));
    check_fill(x, (size_t)B * 3 * S * S, -2.0f, 2.0f, rs);
    /* labels: 0,1 share class 0; 2 has classes 1 and 2; 3 class 3 → triplets exist */
    float lab[B * C] = {0};
    lab[0 * C + 0] = 1; lab[1 * C + 0] = 1; lab[1 * C + 4] = 1; lab[2 * C + 1] = 1; lab[2 * C + 2] = 1; lab[3 * C + 3] = 1;
    const char *lname[3] = {"J1", "J2", "J3"};
    float *g = malloc(m->n * sizeof(float));
    for (int which = 0; which < 3; which++) {
        float w[3] = {0, 0, 0};
        w[which] = 1;
        step_config cfg;
        step_config_default(&cfg);
        cfg.w1 = w[0]; cfg.beta = w[1]; cfg.gamma = w[2];
        cfg.dropout = 0;
        cfg.multi = 1;
        net_upload(n, m);
        step_losses L;
        if (!CHECK_TRUE("stepper_run", stepper_run(st, x, lab, B, 0, &cfg, 0, &L, err, sizeof err) == 0)) continue;
        memcpy(g, net_grad(n), m->n * sizeof(float));
        /* tensors: hash weight, cls weight, a gamma if any, and random others */
        int pick[NTENSORS + 2], np = 0;
        pick[np++] = m->hash_w;
        pick[np++] = m->streams[0].conv_w[0];
        for (int i = 0; i < m->nparams && np < 3; i++)
            if (strstr(m->params[i].name, "gamma")) pick[np++] = i;
        while (np < NTENSORS + 2) pick[np++] = (int)(check_next(rs) % (uint64_t)m->hash_w);
        if (which == 1) pick[0] = m->cls_w;  /* J2 reaches cls directly */
        for (int t = 0; t < np; t++) {
            const model_param *p = &m->params[pick[t]];
            size_t cnt = p->numel < M ? p->numel : M;
            size_t idx[M];
            for (size_t j = 0; j < cnt; j++) idx[j] = cnt == p->numel ? j : check_next(rs) % p->numel;
            double gs = 0;
            for (size_t j = 0; j < cnt; j++) gs += (double)g[p->offset + idx[j]] * g[p->offset + idx[j]];
            gs = sqrt(gs);
            for (int dir = 0; dir < 2; dir++) {
                double u[M], an = 0;
                for (size_t j = 0; j < cnt; j++) {
                    double gi = g[p->offset + idx[j]];
                    u[j] = dir == 0 ? (gs > 0 ? gi / gs : 0) : ((check_next(rs) & 1) ? 1 : -1) / sqrt((double)cnt);
                    an += gi * u[j];
                }
                if (dir == 0 && gs == 0) continue;
                float *th = m->theta + p->offset;
                float save[M];
                for (size_t j = 0; j < cnt; j++) save[j] = th[idx[j]];
                for (size_t j = 0; j < cnt; j++) th[idx[j]] = (float)(save[j] + FD_EPS * u[j]);
                net_upload(n, m);
                double lp = loss_at(n, x, lab, w, 1, NULL);
                for (size_t j = 0; j < cnt; j++) th[idx[j]] = (float)(save[j] - FD_EPS * u[j]);
                net_upload(n, m);
                double lm = loss_at(n, x, lab, w, 1, NULL);
                for (size_t j = 0; j < cnt; j++) th[idx[j]] = save[j];
                /* the perturbation actually applied is the float-rounded one */
                double fd = (lp - lm) / (2 * FD_EPS);
                char name[160];
                snprintf(name, sizeof name, "%s %s d%s/d%s[%s]", variant_name(v), lname[which], lname[which], p->name,
                         dir ? "random" : "grad");
                double an1 = an;
                check_close_d(name, &fd, &an1, 1, FD_ATOL * gs + 1e-6, FD_RTOL);
            }
        }
        net_upload(n, m);
    }
    free(g);
    free(x);
    stepper_free(st);
    comm->destroy(comm);
    net_free(n);
    model_free(m);
}

int main(void) {
    be = backend_cpu();
    char err[256];
    if (be->ctx_init(&ctx, 0, DATH_FP32, err, sizeof err)) { printf("%s\n", err); return 1; }
    uint64_t rs = 12345;
    for (int v = 0; v < 5; v++) check_variant((dath_variant)v, &rs);
    be->ctx_free(&ctx);
    return check_finish();
}
