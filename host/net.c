/* host/net.c — DATH's forward and backward over the backend's ops (see net.h).
 *
 * Activations of one stream, for Bmax images (H1 = conv1 side, P1/P2/P5 pool sides,
 * H3 = conv3..5 side, N = H3², G = 256·6·6 = 9216, D = 4096):
 *   c1 [B,64,H1,H1] → p1 [B,64,P1,P1] → c2 [B,192,P1,P1] → p2 [B,192,P2,P2]
 *   → c3 [B,384,N] → c4 [B,256,N] → c5 [B,256,N] → attention a5 [B,256,N]
 *   → p5 [B,256,P5,P5] → g [B,G] → dropout gd → f6 [B,D] → dropout f6d → f7 [B,D]
 * Heads: f [B,D] = relu(f7) (+ relu(f7') with two streams) → z [B,K] → h = tanh(z)
 *   → y [B,C].
 * Storage: every tensor is fp32 but, with bf16 storage (conv2d_store_bf16: precision bf16,
 * the implicit convolutions, sm_80+), c1, p1, c2, p2, c3 and c4 and their gradients (dc1
 * .. dc4), which only the convolutions and the first two max-pools read and write, are
 * stored in bf16: half their bytes, and the values the bf16 GEMM tiles round them to
 * anyway; every sum is still fp32 (conv.h, pool.h). conv5's output c5, which the attention
 * reads, and its gradient dc5 stay fp32, as do the parameter gradients.
 * With fc storage in bf16 (linear_store_bf16: precision bf16 on sm_80+, either convolution
 * path) the fc6 and fc7 layers' inputs and fc6's output — g, gd, f6, f6d — are bf16 too
 * (their gradients fp32), and their GEMMs read wcopy, a bf16 copy of every parameter that
 * net_upload makes and RMSProp keeps (rmsprop.h): fc6 and fc7 are 95% of the weights, and
 * --precision bf16's GEMMs round the fp32 weights to bf16 anyway. The heads (hash, cls),
 * whose outputs the losses read, stay fp32. With the same condition the attention stores
 * its saved tensors (q, k, v, pa, po; ca, co and CAM's x16 = bf16(c5)) in bf16
 * (attention.h), its weights' GEMMs reading wcopy too; its input c5, output and
 * gradients stay fp32.
 * Every activation has a gradient buffer of the same shape (prefix d), all in one
 * arena: first the two the losses accumulate into (+=: dy, J2's; dz, J3's with the tanh
 * backward), which net_zero_grad zeroes with one memset, then every other one, which its
 * first writer writes (=) and which is never zeroed: a pool's backward (dc1, dc2, da5 —
 * dc5 without attention — and dp5), a convolution's data gradient (dp1, dp2, dc3, dc4),
 * the attention (dc5: PAM writes, dath-1's CAM then adds), a dropout (dg, df6), a linear
 * layer's data gradient (dgd, df6d, df, and dh: the classifier writes it before J1 adds
 * to it, step.c) and the fusion (df7). The parameter gradients are not in it: each has a
 * single writer in the backward, which writes it (=, the ops' contract), so they are
 * zeroed once, at creation, and never again. */
#include "net.h"

#include "../kernels/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct net_stream {
    const stream_params *sp;
    float *c1, *p1, *c2, *p2, *c3, *c4, *c5, *a5, *p5, *g, *gd, *f6, *f6d, *f7;
    float *dc1, *dp1, *dc2, *dp2, *dc3, *dc4, *dc5, *da5, *dp5, *dg, *dgd, *df6, *df6d, *df7;
    maxpool_arg *i1, *i2, *i5;                  /* max-pool argmax, a byte a window */
    float *q, *k, *v, *pa, *po, *pout;          /* PAM: q,k [B,32,N], v,po,pout [B,256,N], pa [B,N,N] */
    float *ca, *co, *cout;                      /* CAM: ca [B,256,256], co, cout [B,256,N] */
    void *cx16;                                 /* CAM with bf16 storage: bf16(c5) [B,256,N]; else NULL */
} net_stream;

struct dath_net {
    const dath_backend *be;
    dath_ctx *ctx;
    const dath_model *m;
    int Bmax, need_grad;
    int store;                                  /* DATH_STORE_* of c1, p1, c2, p2, c3, c4 */
    int fstore;                                 /* DATH_STORE_* of g, gd, f6, f6d (fc6, fc7) */
    int H1, P1, P2, H3, N, P5;
    conv2d_shape conv[5];                       /* for Bmax; B patched per call */
    float *theta, *grad, *rms;                  /* [n] */
    dath_bf16 *wcopy;                           /* [n] bf16(theta), with fstore bf16; else NULL */
    /* dath's two streams run at once: stream 1 on ctx2 (its own CUDA stream, BLAS handles
     * and scratch), forked from ctx after conv1 and joined back before the fusion, and
     * again in the backward (NULL fences: one stream, or a backend without ctx_fork) */
    dath_ctx ctx2;
    int forked;
    void *fork_f[2], *join_f[2];                /* [forward, backward] */
    void *act, *dact, *iact;                    /* arenas */
    size_t act_bytes, dact_bytes, dacc_bytes;   /* dact's accumulated head: dacc_bytes */
    net_stream st[MODEL_MAX_STREAMS];
    float *f, *z, *h, *y, *df, *dz, *dh, *dy;
    net_grad_hook *hook;                        /* parameter gradients done (net.h) */
    void *hook_user;
};

/* ---- arena carving: a first pass with base NULL only counts ---------------------- */

typedef struct arena { char *base; size_t off; } arena;

static void *take(arena *a, size_t bytes) {
    void *p = a->base ? a->base + a->off : NULL;
    a->off += (bytes + 255) & ~(size_t)255;     /* 256-byte aligned for vector loads */
    return p;
}
#define TAKEF(a, n) ((float *)take((a), (size_t)(n) * sizeof(float)))
#define TAKEA(a, n) ((maxpool_arg *)take((a), (size_t)(n) * sizeof(maxpool_arg)))

/* dact: the accumulated activation gradients (dy, dz); dwr: the written ones (the top). */
static void net_layout(dath_net *n, arena *act, arena *dact, arena *dwr, arena *iact) {
    const dath_model *m = n->m;
    size_t B = (size_t)n->Bmax, N = (size_t)n->N, D = MODEL_HIDDEN;
    size_t G = (size_t)MODEL_C5 * MODEL_POOL * MODEL_POOL;
    size_t sz[14] = {
        B * 64 * n->H1 * n->H1, B * 64 * n->P1 * n->P1, B * 192 * n->P1 * n->P1,
        B * 192 * n->P2 * n->P2, B * 384 * N, B * 256 * N, B * 256 * N, B * 256 * N,
        B * 256 * n->P5 * n->P5, B * G, B * G, B * D, B * D, B * D};
    for (int s = 0; s < m->nstreams; s++) {
        net_stream *t = &n->st[s];
        float **fw[14] = {&t->c1, &t->p1, &t->c2, &t->p2, &t->c3, &t->c4, &t->c5, &t->a5,
                          &t->p5, &t->g, &t->gd, &t->f6, &t->f6d, &t->f7};
        float **bw[14] = {&t->dc1, &t->dp1, &t->dc2, &t->dp2, &t->dc3, &t->dc4, &t->dc5, &t->da5,
                          &t->dp5, &t->dg, &t->dgd, &t->df6, &t->df6d, &t->df7};
        const int none = t->sp->attn == ATTN_NONE;
        for (int i = 0; i < 14; i++) {
            if (i == 7 && none) {   /* no attention: a5 is c5 */
                t->a5 = t->c5;
                t->da5 = t->dc5;
                continue;
            }
            /* written by their first writer: pool1 → dc1, conv2 → dp1, pool2 → dc2,
             * conv3 → dp2, conv4 → dc3, conv5 → dc4, the attention (or pool5) → dc5,
             * pool5 → da5, the average pool → dp5, dropout6 (or fc6) → dg, fc6 → dgd,
             * dropout7 (or fc7) → df6, fc7 → df6d, the fusion → df7 */
            /* c1 .. c4 and their gradients as the trunk stores them (n->store); g .. f6d as
             * the fc layers store them (n->fstore), their gradients fp32 */
            const size_t es = i < 6 ? dath_store_size(n->store) : sizeof(float);
            const size_t ef = i >= 9 && i <= 12 ? dath_store_size(n->fstore) : es;
            *fw[i] = (float *)take(act, sz[i] * ef);
            *bw[i] = n->need_grad ? (float *)take(dwr, sz[i] * es) : NULL;
        }
        t->i1 = TAKEA(iact, sz[1]);
        t->i2 = TAKEA(iact, sz[3]);
        t->i5 = TAKEA(iact, sz[8]);
        attn_kind at = t->sp->attn;
        const size_t ea = dath_store_size(n->fstore);   /* the attention's saved tensors */
        if (at == ATTN_PAM || at == ATTN_BOTH) {
            t->q = take(act, B * MODEL_CQ * N * ea);
            t->k = take(act, B * MODEL_CQ * N * ea);
            t->v = take(act, B * MODEL_C5 * N * ea);
            t->pa = take(act, B * N * N * ea);
            t->po = take(act, B * MODEL_C5 * N * ea);
            t->pout = at == ATTN_BOTH ? TAKEF(act, B * MODEL_C5 * N) : t->a5;
        }
        if (at == ATTN_CAM || at == ATTN_BOTH) {
            t->ca = take(act, B * MODEL_C5 * MODEL_C5 * ea);
            t->co = take(act, B * MODEL_C5 * N * ea);
            t->cout = at == ATTN_BOTH ? TAKEF(act, B * MODEL_C5 * N) : t->a5;
            t->cx16 = n->fstore == DATH_STORE_BF16 ? take(act, B * MODEL_C5 * N * sizeof(dath_bf16)) : NULL;
        }
    }
    n->f = TAKEF(act, B * D);
    n->z = TAKEF(act, B * m->K);
    n->h = TAKEF(act, B * m->K);
    n->y = TAKEF(act, B * m->C);
    if (n->need_grad) {
        n->df = TAKEF(dwr, B * D);          /* the hash layer's din */
        n->dz = TAKEF(dact, B * m->K);
        n->dh = TAKEF(dwr, B * m->K);       /* the classifier's din, then J1 adds */
        n->dy = TAKEF(dact, B * m->C);
    }
}

size_t net_work_bytes(const dath_model *m, int Bmax, int Bglobal) {
    conv2d_shape cs[5];
    model_conv_shapes(cs, Bmax, m->S);
    size_t need = 0;
    for (int i = 0; i < 5; i++) {   /* conv1 runs both streams over one im2col */
        size_t w = i == 0 ? conv2d_work_bytes_multi(&cs[0], m->nstreams) : conv2d_work_bytes(&cs[i]);
        if (w > need) need = w;
    }
    int side = cs[4].Ho;
    size_t C = MODEL_C5, N = (size_t)side * side, Cq = MODEL_CQ, B = (size_t)Bmax, Bg = (size_t)Bglobal;
    size_t pam = 8192 + B * (3 * C * N + 2 * Cq * N + N * N) * sizeof(float);
    size_t cam = 8192 + B * (C * N + C * C) * sizeof(float);
    /* the bf16 storage's (attention.h): the forwards use the scratch too */
    size_t pam16 = 8192 + 7 * 256 + B * ATTN_BF16_PAM_BWD(C, Cq, N) * sizeof(float);
    size_t cam16 = 8192 + 3 * 256 + B * ATTN_BF16_CAM_BWD(C, N) * sizeof(float);
    size_t fwd16 = 8192 + 2 * 256 + B * (ATTN_BF16_PAM_FWD(C, Cq, N) > ATTN_BF16_CAM_FWD(C, N) ? ATTN_BF16_PAM_FWD(C, Cq, N)
                                                                                           : ATTN_BF16_CAM_FWD(C, N)) *
                                       sizeof(float);
    for (int co = 0; co < 2; co++) {   /* PAM's 1×1 convolutions on the implicit kernel (attention.cu) */
        conv2d_shape pj = conv2d_make_shape(Bmax, (int)C, 1, (int)N, co ? (int)C : (int)Cq, 1, 1, 0);
        size_t w = conv2d_work_bytes(&pj);
        if (w > need) need = w;
    }
    if (pam16 > pam) pam = pam16;
    if (cam16 > cam) cam = cam16;
    if (fwd16 > pam) pam = fwd16;
    size_t j1 = 8 * (Bg * Bg + 2 * Bg) + 4096;
    if (pam > need) need = pam;
    if (cam > need) need = cam;
    if (j1 > need) need = j1;
    size_t lin = linear_work_bytes(Bmax, MODEL_HIDDEN, 1);   /* fc6/fc7 with bf16 storage */
    if (lin > need) need = lin;
    return need;
}

dath_net *net_create(const dath_backend *be, dath_ctx *ctx, const dath_model *m, int Bmax,
                     int need_grad, char *err, size_t err_len) {
    dath_net *n = calloc(1, sizeof *n);
    n->be = be; n->ctx = ctx; n->m = m; n->Bmax = Bmax; n->need_grad = need_grad;
    n->H1 = (m->S + 4 - 11) / 4 + 1;
    n->P1 = maxpool_out(n->H1);
    n->P2 = maxpool_out(n->P1);
    n->H3 = n->P2;
    n->N = n->H3 * n->H3;
    n->P5 = maxpool_out(n->H3);
    model_conv_shapes(n->conv, Bmax, m->S);
    n->store = conv2d_store_bf16(ctx) ? DATH_STORE_BF16 : DATH_STORE_F32;
    for (int i = 0; i < 5; i++) {   /* conv1 reads the fp32 image, conv5 writes the attention's fp32 input */
        n->conv[i].in_store = i == 0 ? DATH_STORE_F32 : n->store;
        n->conv[i].out_store = i == 4 ? DATH_STORE_F32 : n->store;
        /* conv4's and conv5's inputs are conv3's and conv4's ReLU outputs, whose gradients
         * only their dX writes: it applies that ReLU (conv.h), and conv3, conv4 skip theirs */
        n->conv[i].din_relu = i == 3 || i == 4;
    }
    n->fstore = linear_store_bf16(ctx) ? DATH_STORE_BF16 : DATH_STORE_F32;
    for (int s = 0; s < m->nstreams; s++) n->st[s].sp = &m->streams[s];
    arena a = {0}, d = {0}, dw = {0}, ia = {0};
    net_layout(n, &a, &d, &dw, &ia);
    n->act_bytes = a.off;
    n->dacc_bytes = d.off;
    n->dact_bytes = d.off + dw.off;
    size_t pbytes = m->n * sizeof(float);
    n->act = be->alloc(a.off);
    n->iact = be->alloc(ia.off);
    n->theta = be->alloc(pbytes);
    if (n->fstore == DATH_STORE_BF16) n->wcopy = be->alloc(m->n * sizeof(dath_bf16));
    if (need_grad) {
        n->dact = be->alloc(n->dact_bytes);
        n->grad = be->alloc(pbytes);
        n->rms = be->alloc(pbytes);
    }
    if (!n->act || !n->iact || !n->theta || (n->fstore == DATH_STORE_BF16 && !n->wcopy) ||
        (need_grad && (!n->dact || !n->grad || !n->rms))) {
        snprintf(err, err_len, "out of %s memory for a batch of %d (%.1f GiB of activations, %.1f GiB of parameters)",
                 be->name, Bmax, (a.off + n->dact_bytes + ia.off) / 1073741824.0, pbytes * (need_grad ? 3 : 1) / 1073741824.0);
        net_free(n);
        return NULL;
    }
    a.base = n->act; a.off = 0;
    d.base = n->dact; d.off = 0;
    dw.base = (char *)n->dact + n->dacc_bytes; dw.off = 0;
    ia.base = n->iact; ia.off = 0;
    net_layout(n, &a, &d, &dw, &ia);
    if (m->nstreams > 1 && be->ctx_fork) {
        if (be->ctx_fork(ctx, &n->ctx2, err, err_len)) {
            net_free(n);
            return NULL;
        }
        n->forked = 1;
        for (int k = 0; k < 2; k++) {
            n->fork_f[k] = be->fence_create();
            n->join_f[k] = be->fence_create();
            if (!n->fork_f[k] || !n->join_f[k]) {
                snprintf(err, err_len, "out of %s events for the second stream", be->name);
                net_free(n);
                return NULL;
            }
        }
    }
    if (need_grad) {
        be->zero(n->rms, pbytes, ctx);
        be->zero(n->grad, pbytes, ctx);   /* defined before the first backward writes them */
        be->zero(n->dact, n->dact_bytes, ctx);
    }
    return n;
}

/* The context stream s's work runs on. */
static dath_ctx *stream_ctx(dath_net *n, int s) { return s == 1 && n->forked ? &n->ctx2 : n->ctx; }

/* Stream 1 waits for the main context's work so far (k: 0 forward, 1 backward). */
static void streams_fork(dath_net *n, int k) {
    if (!n->forked) return;
    n->be->fence_record(n->fork_f[k], DATH_QUEUE_COMPUTE, n->ctx);
    n->be->fence_wait(n->fork_f[k], DATH_QUEUE_COMPUTE, &n->ctx2);
}

/* The main context's later work waits for stream 1's. */
static void streams_join(dath_net *n, int k) {
    if (!n->forked) return;
    n->be->fence_record(n->join_f[k], DATH_QUEUE_COMPUTE, &n->ctx2);
    n->be->fence_wait(n->join_f[k], DATH_QUEUE_COMPUTE, n->ctx);
}

void net_free(dath_net *n) {
    if (!n) return;
    const dath_backend *be = n->be;
    for (int k = 0; k < 2; k++) {
        if (n->fork_f[k]) be->fence_free(n->fork_f[k]);
        if (n->join_f[k]) be->fence_free(n->join_f[k]);
    }
    if (n->forked) be->ctx_free(&n->ctx2);
    be->free(n->act); be->free(n->dact); be->free(n->iact);
    be->free(n->theta); be->free(n->grad); be->free(n->rms); be->free(n->wcopy);
    free(n);
}

const dath_model *net_model(const dath_net *n) { return n->m; }
int net_bmax(const dath_net *n) { return n->Bmax; }
int net_storage(const dath_net *n) { return n->store; }
int net_fc_storage(const dath_net *n) { return n->fstore; }
dath_bf16 *net_wcopy(dath_net *n) { return n->wcopy; }
dath_ctx *net_ctx(dath_net *n) { return n->ctx; }
float *net_theta(dath_net *n) { return n->theta; }
float *net_grad(dath_net *n) { return n->grad; }
float *net_rms(dath_net *n) { return n->rms; }
const float *net_h(const dath_net *n) { return n->h; }
const float *net_y(const dath_net *n) { return n->y; }
const float *net_fused(const dath_net *n) { return n->f; }
const float *net_fc7(const dath_net *n, int s) { return s >= 0 && s < n->m->nstreams ? n->st[s].f7 : NULL; }
float *net_dh(dath_net *n) { return n->dh; }
float *net_dy(dath_net *n) { return n->dy; }
float *net_dz(dath_net *n) { return n->dz; }

void net_set_grad_hook(dath_net *n, net_grad_hook *fn, void *user) {
    n->hook = fn;
    n->hook_user = user;
}

/* The gradients of parameters p[0..count) (≤ 8) are final (absent ones, -1, skipped).
 * They are reported from the highest index down: the backward walks the buffer from
 * its end, so the parameters of one op come in the order the buckets grow (step.c). */
static void grads_done(const dath_net *n, dath_ctx *ctx, int count, const int *p) {
    if (!n->hook) return;
    int q[8];
    for (int i = 0; i < count; i++) {
        int v = p[i], k = i;
        for (; k > 0 && q[k - 1] < v; k--) q[k] = q[k - 1];
        q[k] = v;
    }
    for (int i = 0; i < count; i++)
        if (q[i] >= 0) n->hook(n->hook_user, q[i], ctx);
}
/* DONE(n, ctx, params...): the op just queued on ctx wrote these parameters' gradients */
#define DONE(n, ctx, ...) grads_done((n), (ctx), (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__})

void net_upload(dath_net *n, const dath_model *m) {
    size_t bytes = m->n * sizeof(float);
    n->be->upload(n->theta, m->theta, bytes, n->ctx);
    if (n->wcopy) n->be->rmsprop_narrow(n->wcopy, n->theta, m->n, n->ctx);
    if (n->rms) {
        if (m->rms) n->be->upload(n->rms, m->rms, bytes, n->ctx);
        else n->be->zero(n->rms, bytes, n->ctx);
    }
}

void net_download(dath_net *n, dath_model *m) {
    size_t bytes = m->n * sizeof(float);
    n->be->download(m->theta, n->theta, bytes, n->ctx);
    if (n->rms) {
        if (!m->rms) m->rms = malloc(bytes);
        n->be->download(m->rms, n->rms, bytes, n->ctx);
    }
}

void net_zero_grad(dath_net *n) {
    n->be->zero(n->dact, n->dacc_bytes, n->ctx);
}

#define P(i) (n->theta + n->m->params[(i)].offset)
#define DP(i) (n->grad + n->m->params[(i)].offset)
/* a stream's attention storage (attention.h): NULL with fp32 storage (CAM's fields unused:
 * a dath-1 or CAM stream has them too where it has PAM's) */
#define AS(as, sp)                                                                                 \
    (n->wcopy ? (*(as) = (attn_store){(sp)->attn == ATTN_CAM ? NULL : n->wcopy + n->m->params[(sp)->wq].offset, \
                                      (sp)->attn == ATTN_CAM ? NULL : n->wcopy + n->m->params[(sp)->wk].offset, \
                                      (sp)->attn == ATTN_CAM ? NULL : n->wcopy + n->m->params[(sp)->wv].offset}, \
                 (as)) : NULL)
/* fc layer (w, b)'s storage (linear.h): NULL with fp32 fc storage */
#define LS(ls, wi, bi, out)                                                                        \
    (n->wcopy ? (*(ls) = (linear_store){n->wcopy + n->m->params[(wi)].offset,                      \
                                        n->wcopy + n->m->params[(bi)].offset, (out)}, (ls)) : NULL)

static conv2d_shape conv_b(const dath_net *n, int i, int B) {
    conv2d_shape s = n->conv[i];
    s.B = B;
    return s;
}

static uint32_t dropout_tag(int s, int layer) { return RNG_DROPOUT + 2u * (uint32_t)s + (uint32_t)layer; }

static void stream_forward(dath_net *n, net_stream *t, int s, const float *x, int B, const net_run *r) {
    const dath_backend *be = n->be;
    dath_ctx *ctx = stream_ctx(n, s);
    const stream_params *sp = t->sp;
    conv2d_shape cs;
    float *cin[5] = {NULL, t->p1, t->p2, t->c3, t->c4}, *cout[5] = {t->c1, t->c2, t->c3, t->c4, t->c5};
    (void)x;   /* conv1 (c1) was computed for every stream by net_forward */
    be->maxpool_forward(t->p1, t->i1, t->c1, B * 64, n->H1, n->H1, n->store, ctx);
    for (int i = 1; i < 5; i++) {
        cs = conv_b(n, i, B);
        be->conv2d_forward(cout[i], cin[i], P(sp->conv_w[i]), P(sp->conv_b[i]), &cs, 1, ctx);
        if (i == 1) be->maxpool_forward(t->p2, t->i2, t->c2, B * 192, n->P1, n->P1, n->store, ctx);
    }
    int C5 = MODEL_C5, N = n->N;
    /* attention (none: a5 is c5 itself); dath-1 runs both modules on the same conv5
     * output and sums their residual outputs */
    attn_store as;
    if (sp->attn == ATTN_PAM || sp->attn == ATTN_BOTH)
        be->pam_forward(t->pout, t->q, t->k, t->v, t->pa, t->po, t->c5, P(sp->wq), P(sp->bq), P(sp->wk),
                        P(sp->bk), P(sp->wv), P(sp->bv), P(sp->pam_gamma), B, C5, MODEL_CQ, N, AS(&as, sp), ctx);
    if (sp->attn == ATTN_CAM || sp->attn == ATTN_BOTH)
        be->cam_forward(t->cout, t->ca, t->co, t->cx16, t->c5, P(sp->cam_gamma), B, C5, N, AS(&as, sp), ctx);
    if (sp->attn == ATTN_BOTH) {
        be->copy(t->a5, t->pout, (size_t)B * C5 * N * sizeof(float), ctx);
        be->axpy(t->a5, t->cout, 1.0f, (size_t)B * C5 * N, ctx);
    }
    be->maxpool_forward(t->p5, t->i5, t->a5, B * C5, n->H3, n->H3, DATH_STORE_F32, ctx);
    be->avgpool_forward(t->g, t->p5, B * C5, n->P5, n->P5, MODEL_POOL, MODEL_POOL, n->fstore, ctx);
    int G = C5 * MODEL_POOL * MODEL_POOL, D = MODEL_HIDDEN;
    const float *gin = t->g, *f6in = t->f6;
    linear_store l6, l7;
    if (r->dropout) {
        be->dropout_forward(t->gd, t->g, B, G, 0.5f, r->seed, dropout_tag(s, 0), r->step, r->sample0, n->fstore, ctx);
        gin = t->gd;
    }
    be->linear_forward(t->f6, gin, P(sp->fc6_w), P(sp->fc6_b), B, G, D, 1, LS(&l6, sp->fc6_w, sp->fc6_b, n->fstore),
                       ctx);
    if (r->dropout) {
        be->dropout_forward(t->f6d, t->f6, B, D, 0.5f, r->seed, dropout_tag(s, 1), r->step, r->sample0, n->fstore, ctx);
        f6in = t->f6d;
    }
    be->linear_forward(t->f7, f6in, P(sp->fc7_w), P(sp->fc7_b), B, D, D, 0,
                       LS(&l7, sp->fc7_w, sp->fc7_b, DATH_STORE_F32), ctx);
}

/* conv1 of every stream: the streams read the same image, so one im2col serves them
 * all (one batched GEMM on the GPU). */
static void conv1_forward(dath_net *n, const float *x, int B) {
    const dath_model *m = n->m;
    float *out[MODEL_MAX_STREAMS];
    const float *w[MODEL_MAX_STREAMS], *b[MODEL_MAX_STREAMS];
    for (int s = 0; s < m->nstreams; s++) {
        out[s] = n->st[s].c1;
        w[s] = P(n->st[s].sp->conv_w[0]);
        b[s] = P(n->st[s].sp->conv_b[0]);
    }
    conv2d_shape cs = conv_b(n, 0, B);
    n->be->conv2d_forward_multi(out, x, w, b, m->nstreams, &cs, 1, n->ctx);
}

static void conv1_backward(dath_net *n, const float *x, int B) {
    const dath_model *m = n->m;
    float *dw[MODEL_MAX_STREAMS], *db[MODEL_MAX_STREAMS], *dout[MODEL_MAX_STREAMS];
    const float *w[MODEL_MAX_STREAMS], *out[MODEL_MAX_STREAMS];
    for (int s = 0; s < m->nstreams; s++) {
        const net_stream *t = &n->st[s];
        dw[s] = DP(t->sp->conv_w[0]);
        db[s] = DP(t->sp->conv_b[0]);
        dout[s] = t->dc1;
        w[s] = P(t->sp->conv_w[0]);
        out[s] = t->c1;
    }
    conv2d_shape cs = conv_b(n, 0, B);
    /* relu = 0: pool1's backward applied conv1's ReLU (stream_backward) */
    n->be->conv2d_backward_multi(NULL, dw, db, dout, x, w, out, m->nstreams, &cs, 0, n->ctx);
    for (int s = 0; s < m->nstreams; s++) DONE(n, n->ctx, n->st[s].sp->conv_w[0], n->st[s].sp->conv_b[0]);
}

void net_forward(dath_net *n, const float *x, int B, const net_run *r) {
    const dath_backend *be = n->be;
    const dath_model *m = n->m;
    conv1_forward(n, x, B);
    streams_fork(n, 0);
    for (int s = 0; s < m->nstreams; s++) stream_forward(n, &n->st[s], s, x, B, r);
    streams_join(n, 0);
    size_t BD = (size_t)B * MODEL_HIDDEN;
    be->fuse_forward(n->f, n->st[0].f7, m->nstreams > 1 ? n->st[1].f7 : NULL, BD, n->ctx);
    be->linear_forward(n->z, n->f, P(m->hash_w), P(m->hash_b), B, MODEL_HIDDEN, m->K, 0, NULL, n->ctx);
    be->tanh_forward(n->h, n->z, (size_t)B * m->K, n->ctx);
    be->linear_forward(n->y, n->h, P(m->cls_w), P(m->cls_b), B, m->K, m->C, 0, NULL, n->ctx);
}

static void stream_backward(dath_net *n, net_stream *t, int s, const float *x, int B, const net_run *r) {
    const dath_backend *be = n->be;
    dath_ctx *ctx = stream_ctx(n, s);
    const stream_params *sp = t->sp;
    int G = MODEL_C5 * MODEL_POOL * MODEL_POOL, D = MODEL_HIDDEN, C5 = MODEL_C5, N = n->N;
    const float *f6in = r->dropout ? t->f6d : t->f6, *gin = r->dropout ? t->gd : t->g;
    float *df6in = r->dropout ? t->df6d : t->df6, *dgin = r->dropout ? t->dgd : t->dg;
    linear_store l6, l7;
    be->linear_backward(df6in, DP(sp->fc7_w), DP(sp->fc7_b), t->df7, f6in, P(sp->fc7_w), t->f7, B, D, D, 0,
                        LS(&l7, sp->fc7_w, sp->fc7_b, DATH_STORE_F32), ctx);
    DONE(n, ctx, sp->fc7_w, sp->fc7_b);
    if (r->dropout)
        be->dropout_backward(t->df6, t->df6d, B, D, 0.5f, r->seed, dropout_tag(s, 1), r->step, r->sample0, ctx);
    be->linear_backward(dgin, DP(sp->fc6_w), DP(sp->fc6_b), t->df6, gin, P(sp->fc6_w), t->f6, B, G, D, 1,
                        LS(&l6, sp->fc6_w, sp->fc6_b, n->fstore), ctx);
    DONE(n, ctx, sp->fc6_w, sp->fc6_b);
    if (r->dropout)
        be->dropout_backward(t->dg, t->dgd, B, G, 0.5f, r->seed, dropout_tag(s, 0), r->step, r->sample0, ctx);
    be->avgpool_backward(t->dp5, t->dg, B * C5, n->P5, n->P5, MODEL_POOL, MODEL_POOL, ctx);
    /* without attention da5 is dc5, conv5's output gradient: pool5 applies conv5's ReLU
     * (its own output p5 as the mask), and conv5's backward runs without a mask pass */
    be->maxpool_backward(t->da5, t->dp5, t->i5, sp->attn == ATTN_NONE ? t->p5 : NULL, B * C5, n->H3, n->H3,
                        DATH_STORE_F32, ctx);
    /* attention: dc5 receives the residual and the attention path (no attention: da5
     * is dc5 itself); dath-1's sum of two residual branches sends da5 to both modules,
     * PAM writing dc5 and CAM adding to it */
    attn_store as;
    if (sp->attn == ATTN_PAM || sp->attn == ATTN_BOTH)
        be->pam_backward(t->dc5, DP(sp->wq), DP(sp->bq), DP(sp->wk), DP(sp->bk), DP(sp->wv), DP(sp->bv),
                         DP(sp->pam_gamma), t->da5, t->c5, t->q, t->k, t->v, t->pa, t->po, P(sp->wq),
                         P(sp->wk), P(sp->wv), P(sp->pam_gamma), B, C5, MODEL_CQ, N, 0, AS(&as, sp), ctx);
    if (sp->attn == ATTN_PAM || sp->attn == ATTN_BOTH) DONE(n, ctx, sp->wq, sp->bq, sp->wk, sp->bk, sp->wv, sp->bv, sp->pam_gamma);
    if (sp->attn == ATTN_CAM || sp->attn == ATTN_BOTH) {
        be->cam_backward(t->dc5, DP(sp->cam_gamma), t->da5, t->c5, t->cx16, t->ca, t->co, P(sp->cam_gamma), B, C5,
                         N, sp->attn == ATTN_BOTH, AS(&as, sp), ctx);   /* after PAM it adds */
        DONE(n, ctx, sp->cam_gamma);
    }
    (void)x;   /* conv1's backward runs for every stream in net_backward_body */
    float *cin[5] = {NULL, t->p1, t->p2, t->c3, t->c4}, *cout[5] = {t->c1, t->c2, t->c3, t->c4, t->c5};
    float *dcin[5] = {NULL, t->dp1, t->dp2, t->dc3, t->dc4}, *dcout[5] = {t->dc1, t->dc2, t->dc3, t->dc4, t->dc5};
    /* conv2's and conv1's ReLU (and conv5's without attention) are applied by the pool
     * above them, whose backward takes its own output as the mask (pool.h), conv3's and
     * conv4's by the dX of the convolution above them (din_relu, conv.h): those layers'
     * backwards get relu = 0 and their mask pass only sums db, the same bits; only
     * conv5's dout, from the attention, is masked by its own pass */
    for (int i = 4; i >= 1; i--) {
        conv2d_shape cs = conv_b(n, i, B);
        const int relu = i == 4 && sp->attn != ATTN_NONE;
        be->conv2d_backward(dcin[i], DP(sp->conv_w[i]), DP(sp->conv_b[i]), dcout[i], cin[i], P(sp->conv_w[i]),
                            cout[i], &cs, relu, ctx);
        DONE(n, ctx, sp->conv_w[i], sp->conv_b[i]);
        if (i == 2) be->maxpool_backward(t->dc2, t->dp2, t->i2, t->p2, B * 192, n->P1, n->P1, n->store, ctx);
        if (i == 1) be->maxpool_backward(t->dc1, t->dp1, t->i1, t->p1, B * 64, n->H1, n->H1, n->store, ctx);
    }
}

void net_backward_head(dath_net *n, int B) {
    const dath_model *m = n->m;
    n->be->linear_backward(n->dh, DP(m->cls_w), DP(m->cls_b), n->dy, n->h, P(m->cls_w), n->y, B, m->K, m->C, 0, NULL, n->ctx);
    DONE(n, n->ctx, m->cls_w, m->cls_b);
}

void net_backward_body(dath_net *n, const float *x, int B, const net_run *r) {
    const dath_backend *be = n->be;
    const dath_model *m = n->m;
    dath_ctx *ctx = n->ctx;
    be->linear_backward(n->df, DP(m->hash_w), DP(m->hash_b), n->dz, n->f, P(m->hash_w), n->z, B, MODEL_HIDDEN, m->K, 0, NULL, ctx);
    DONE(n, ctx, m->hash_w, m->hash_b);
    size_t BD = (size_t)B * MODEL_HIDDEN;
    int two = m->nstreams > 1;
    be->fuse_backward(n->st[0].df7, two ? n->st[1].df7 : NULL, n->df, n->st[0].f7, two ? n->st[1].f7 : NULL, BD, ctx);
    streams_fork(n, 1);
    for (int s = 0; s < m->nstreams; s++) stream_backward(n, &n->st[s], s, x, B, r);
    streams_join(n, 1);
    conv1_backward(n, x, B);
}
