/* checks/test_graph.c — the training step's CUDA-graph logic, on the CPU.
 *
 * A CUDA graph records the kernels a stream is given during capture and runs none of
 * them; a replay runs the recorded calls with the arguments they had at capture. A
 * step is capturable only if everything that changes from step to step reaches the
 * ops through backend memory (the batch, the step index that keys dropout, the
 * losses RMSProp's guard reads) and the host reads nothing back in between.
 *
 * This check gives the stepper a "recording" backend: the CPU reference with
 * graph_begin/end/launch that behave like CUDA's. Between begin and end every op is
 * recorded with a copy of its by-value arguments (shapes included) instead of being
 * run; upload, download, sync, allocation and fences there are what CUDA forbids in
 * a capture and are counted as violations. Then:
 *   - 6 steps of DATH (two streams, so conv1's shared im2col; PAM and CAM) with
 *     graphs (warm-up, capture, a partial batch of another size in between, which
 *     runs eagerly, replays) against the same 6 steps on the plain CPU backend:
 *     losses, triplet counts, parameters and RMSProp state bit for bit;
 *   - the graph was captured once and replayed, with no violation;
 *   - then a step on a batch with a NaN label (replayed, and eager): stepper_finish
 *     reports it and the parameters and RMSProp state are bit-identical to before
 *     (RMSProp's guard reads the losses on the backend). */
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

enum { B = 6, K = 16, C = 4, NSTEPS = 6 };

/* ---- the recording backend ------------------------------------------------------ */

typedef struct rec_call {
    void (*run)(void *args);
    void *args;
} rec_call;

typedef struct rec_graph {
    rec_call *calls;
    int n, cap;
} rec_graph;

static rec_graph *rec_cur;     /* the graph being captured, or NULL */
static int rec_violations;     /* forbidden calls during a capture */
static long rec_recorded;      /* calls recorded in all */

static void rec_push(void (*run)(void *), const void *args, size_t bytes) {
    rec_graph *g = rec_cur;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->calls = realloc(g->calls, (size_t)g->cap * sizeof *g->calls);
    }
    void *copy = malloc(bytes);
    memcpy(copy, args, bytes);
    g->calls[g->n].run = run;
    g->calls[g->n].args = copy;
    g->n++;
    rec_recorded++;
}

static void rec_forbidden(const char *what) {
    if (!rec_cur) return;
    rec_violations++;
    printf("  capture violation: %s during a capture\n", what);
}

static int rec_graph_begin(dath_ctx *ctx) {
    if (rec_cur) return -1;
    rec_cur = calloc(1, sizeof *rec_cur);
    return 0;
}
static int rec_graph_end(dath_ctx *ctx, void **graph) {
    *graph = rec_cur;
    rec_cur = NULL;
    return *graph ? 0 : -1;
}
static int rec_graph_launch(dath_ctx *ctx, void *graph) {
    rec_graph *g = graph;
    for (int i = 0; i < g->n; i++) g->calls[i].run(g->calls[i].args);
    return 0;
}
static void rec_graph_free(void *graph) {
    rec_graph *g = graph;
    if (!g) return;
    for (int i = 0; i < g->n; i++) free(g->calls[i].args);
    free(g->calls);
    free(g);
}

static const dath_backend *cpu;

/* Memory ops that CUDA forbids in a capture (pageable copies, synchronisation,
 * allocation): counted, then done. */
static void *rec_alloc(size_t bytes) { rec_forbidden("alloc"); return cpu->alloc(bytes); }
static void rec_free(void *p) { rec_forbidden("free"); cpu->free(p); }
static void rec_upload(void *d, const void *s, size_t n, dath_ctx *ctx) { rec_forbidden("upload"); cpu->upload(d, s, n, ctx); }
static void rec_download(void *d, const void *s, size_t n, dath_ctx *ctx) { rec_forbidden("download"); cpu->download(d, s, n, ctx); }
static void rec_sync(dath_ctx *ctx) { rec_forbidden("sync"); }

/* Every op: recorded during a capture, run otherwise. One args struct each. */
#define REC_OP(name, sig, fill, call, ...)                                        \
    typedef struct { __VA_ARGS__ } a_##name;                                             \
    static void r_##name(void *p) { a_##name *a = p; call; }                      \
    static void w_##name sig {                                                    \
        a_##name a_;                                                              \
        a_##name *a = &a_;                                                        \
        fill;                                                                     \
        if (rec_cur) rec_push(r_##name, a, sizeof *a);                            \
        else r_##name(a);                                                         \
    }

REC_OP(zero, (void *p, size_t n, dath_ctx *ctx),
       a->p = p; a->n = n; a->ctx = ctx, cpu->zero(a->p, a->n, a->ctx),
       void *p; size_t n; dath_ctx *ctx;)
REC_OP(copy, (void *d, const void *s, size_t n, dath_ctx *ctx),
       a->d = d; a->s = s; a->n = n; a->ctx = ctx, cpu->copy(a->d, a->s, a->n, a->ctx),
       void *d; const void *s; size_t n; dath_ctx *ctx;)
REC_OP(axpy, (float *y, const float *x, float al, size_t n, dath_ctx *ctx),
       a->y = y; a->x = x; a->al = al; a->n = n; a->ctx = ctx, cpu->axpy(a->y, a->x, a->al, a->n, a->ctx),
       float *y; const float *x; float al; size_t n; dath_ctx *ctx;)
REC_OP(conv_f, (float *out, const float *in, const float *w, const float *b, const conv2d_shape *s, int relu, dath_ctx *ctx),
       a->out = out; a->in = in; a->w = w; a->b = b; a->s = *s; a->relu = relu; a->ctx = ctx,
       conv2d_forward_cpu(a->out, a->in, a->w, a->b, &a->s, a->relu, a->ctx),
       float *out; const float *in, *w, *b; conv2d_shape s; int relu; dath_ctx *ctx;)
REC_OP(conv_b, (float *din, float *dw, float *db, float *dout, const float *in, const float *w, const float *out,
                const conv2d_shape *s, int relu, dath_ctx *ctx),
       a->din = din; a->dw = dw; a->db = db; a->dout = dout; a->in = in; a->w = w; a->out = out; a->s = *s;
       a->relu = relu; a->ctx = ctx,
       conv2d_backward_cpu(a->din, a->dw, a->db, a->dout, a->in, a->w, a->out, &a->s, a->relu, a->ctx),
       float *din, *dw, *db, *dout; const float *in, *w, *out; conv2d_shape s; int relu; dath_ctx *ctx;)
REC_OP(convm_f, (float *const *out, const float *in, const float *const *w, const float *const *b, int nw,
                 const conv2d_shape *s, int relu, dath_ctx *ctx),
       a->in = in; a->nw = nw; a->s = *s; a->relu = relu; a->ctx = ctx;
       for (int i = 0; i < nw; i++) { a->out[i] = out[i]; a->w[i] = w[i]; a->b[i] = b[i]; },
       conv2d_forward_multi_cpu(a->out, a->in, a->w, a->b, a->nw, &a->s, a->relu, a->ctx),
       float *out[MODEL_MAX_STREAMS]; const float *in; const float *w[MODEL_MAX_STREAMS], *b[MODEL_MAX_STREAMS];
       int nw; conv2d_shape s; int relu; dath_ctx *ctx;)
REC_OP(convm_b, (float *din, float *const *dw, float *const *db, float *const *dout, const float *in,
                 const float *const *w, const float *const *out, int nw, const conv2d_shape *s, int relu, dath_ctx *ctx),
       a->din = din; a->in = in; a->nw = nw; a->s = *s; a->relu = relu; a->ctx = ctx;
       for (int i = 0; i < nw; i++) { a->dw[i] = dw[i]; a->db[i] = db[i]; a->dout[i] = dout[i]; a->w[i] = w[i]; a->out[i] = out[i]; },
       conv2d_backward_multi_cpu(a->din, a->dw, a->db, a->dout, a->in, a->w, a->out, a->nw, &a->s, a->relu, a->ctx),
       float *din; float *dw[MODEL_MAX_STREAMS], *db[MODEL_MAX_STREAMS], *dout[MODEL_MAX_STREAMS]; const float *in;
       const float *w[MODEL_MAX_STREAMS], *out[MODEL_MAX_STREAMS]; int nw; conv2d_shape s; int relu; dath_ctx *ctx;)
REC_OP(lin_f, (void *out, const void *in, const float *w, const float *b, int Bn, int In, int Out, int relu,
               const linear_store *st, dath_ctx *ctx),
       a->out = out; a->in = in; a->w = w; a->b = b; a->Bn = Bn; a->In = In; a->Out = Out; a->relu = relu;
       a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       linear_forward_cpu(a->out, a->in, a->w, a->b, a->Bn, a->In, a->Out, a->relu, a->has_st ? &a->st : NULL, a->ctx),
       void *out; const void *in; const float *w, *b; int Bn, In, Out, relu, has_st; linear_store st; dath_ctx *ctx;)
REC_OP(lin_b, (float *din, float *dw, float *db, float *dout, const void *in, const float *w, const void *out, int Bn,
               int In, int Out, int relu, const linear_store *st, dath_ctx *ctx),
       a->din = din; a->dw = dw; a->db = db; a->dout = dout; a->in = in; a->w = w; a->out = out; a->Bn = Bn;
       a->In = In; a->Out = Out; a->relu = relu; a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       linear_backward_cpu(a->din, a->dw, a->db, a->dout, a->in, a->w, a->out, a->Bn, a->In, a->Out, a->relu,
                           a->has_st ? &a->st : NULL, a->ctx),
       float *din, *dw, *db, *dout; const void *in; const float *w; const void *out; int Bn, In, Out, relu, has_st;
       linear_store st; dath_ctx *ctx;)
REC_OP(maxp_f, (float *out, maxpool_arg *idx, const float *in, int P, int H, int W, int st, dath_ctx *ctx),
       a->out = out; a->idx = idx; a->in = in; a->P = P; a->H = H; a->W = W; a->st = st; a->ctx = ctx,
       maxpool_forward_cpu(a->out, a->idx, a->in, a->P, a->H, a->W, a->st, a->ctx),
       float *out; maxpool_arg *idx; const float *in; int P, H, W, st; dath_ctx *ctx;)
REC_OP(maxp_b, (float *din, const float *dout, const maxpool_arg *idx, const float *mask, int P, int H, int W,
                int st, dath_ctx *ctx),
       a->din = din; a->dout = dout; a->idx = idx; a->mask = mask; a->P = P; a->H = H; a->W = W; a->st = st;
       a->ctx = ctx,
       maxpool_backward_cpu(a->din, a->dout, a->idx, a->mask, a->P, a->H, a->W, a->st, a->ctx),
       float *din; const float *dout; const maxpool_arg *idx; const float *mask; int P, H, W, st; dath_ctx *ctx;)
REC_OP(avgp_f, (void *out, const float *in, int P, int H, int W, int Ho, int Wo, int st, dath_ctx *ctx),
       a->out = out; a->in = in; a->P = P; a->H = H; a->W = W; a->Ho = Ho; a->Wo = Wo; a->st = st; a->ctx = ctx,
       avgpool_forward_cpu(a->out, a->in, a->P, a->H, a->W, a->Ho, a->Wo, a->st, a->ctx),
       void *out; const float *in; int P, H, W, Ho, Wo, st; dath_ctx *ctx;)
REC_OP(avgp_b, (float *din, const float *dout, int P, int H, int W, int Ho, int Wo, dath_ctx *ctx),
       a->din = din; a->dout = dout; a->P = P; a->H = H; a->W = W; a->Ho = Ho; a->Wo = Wo; a->ctx = ctx,
       avgpool_backward_cpu(a->din, a->dout, a->P, a->H, a->W, a->Ho, a->Wo, a->ctx),
       float *din; const float *dout; int P, H, W, Ho, Wo; dath_ctx *ctx;)
REC_OP(pam_f, (float *out, void *q, void *k, void *v, void *att, void *o, const float *x, const float *wq,
               const float *bq, const float *wk, const float *bk, const float *wv, const float *bv, const float *g,
               int Bn, int Cn, int Cq, int N, const attn_store *st, dath_ctx *ctx),
       a->out = out; a->q = q; a->k = k; a->v = v; a->att = att; a->o = o; a->x = x; a->wq = wq; a->bq = bq;
       a->wk = wk; a->bk = bk; a->wv = wv; a->bv = bv; a->g = g; a->Bn = Bn; a->Cn = Cn; a->Cq = Cq; a->N = N;
       a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       pam_forward_cpu(a->out, a->q, a->k, a->v, a->att, a->o, a->x, a->wq, a->bq, a->wk, a->bk, a->wv, a->bv,
                       a->g, a->Bn, a->Cn, a->Cq, a->N, a->has_st ? &a->st : NULL, a->ctx),
       float *out; void *q, *k, *v, *att, *o; const float *x, *wq, *bq, *wk, *bk, *wv, *bv, *g; int Bn, Cn, Cq, N;
       int has_st; attn_store st; dath_ctx *ctx;)
REC_OP(pam_b, (float *dx, float *dwq, float *dbq, float *dwk, float *dbk, float *dwv, float *dbv, float *dg,
               const float *dout, const float *x, const void *q, const void *k, const void *v, const void *att,
               const void *o, const float *wq, const float *wk, const float *wv, const float *g, int Bn, int Cn,
               int Cq, int N, int add, const attn_store *st, dath_ctx *ctx),
       a->dx = dx; a->dwq = dwq; a->dbq = dbq; a->dwk = dwk; a->dbk = dbk; a->dwv = dwv; a->dbv = dbv; a->dg = dg;
       a->dout = dout; a->x = x; a->q = q; a->k = k; a->v = v; a->att = att; a->o = o; a->wq = wq; a->wk = wk;
       a->wv = wv; a->g = g; a->Bn = Bn; a->Cn = Cn; a->Cq = Cq; a->N = N; a->add = add;
       a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       pam_backward_cpu(a->dx, a->dwq, a->dbq, a->dwk, a->dbk, a->dwv, a->dbv, a->dg, a->dout, a->x, a->q, a->k,
                        a->v, a->att, a->o, a->wq, a->wk, a->wv, a->g, a->Bn, a->Cn, a->Cq, a->N, a->add,
                        a->has_st ? &a->st : NULL, a->ctx),
       float *dx, *dwq, *dbq, *dwk, *dbk, *dwv, *dbv, *dg; const float *dout, *x; const void *q, *k, *v, *att, *o;
       const float *wq, *wk, *wv, *g; int Bn, Cn, Cq, N, add, has_st; attn_store st; dath_ctx *ctx;)
REC_OP(cam_f, (float *out, void *att, void *o, void *x16, const float *x, const float *g, int Bn, int Cn, int N,
               const attn_store *st, dath_ctx *ctx),
       a->out = out; a->att = att; a->o = o; a->x16 = x16; a->x = x; a->g = g; a->Bn = Bn; a->Cn = Cn; a->N = N;
       a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       cam_forward_cpu(a->out, a->att, a->o, a->x16, a->x, a->g, a->Bn, a->Cn, a->N, a->has_st ? &a->st : NULL,
                       a->ctx),
       float *out; void *att, *o, *x16; const float *x, *g; int Bn, Cn, N, has_st; attn_store st; dath_ctx *ctx;)
REC_OP(cam_b, (float *dx, float *dg, const float *dout, const float *x, const void *x16, const void *att,
               const void *o, const float *g, int Bn, int Cn, int N, int add, const attn_store *st, dath_ctx *ctx),
       a->dx = dx; a->dg = dg; a->dout = dout; a->x = x; a->x16 = x16; a->att = att; a->o = o; a->g = g; a->Bn = Bn;
       a->Cn = Cn; a->N = N; a->add = add; a->has_st = st != NULL; if (st) a->st = *st; a->ctx = ctx,
       cam_backward_cpu(a->dx, a->dg, a->dout, a->x, a->x16, a->att, a->o, a->g, a->Bn, a->Cn, a->N, a->add,
                        a->has_st ? &a->st : NULL, a->ctx),
       float *dx, *dg; const float *dout, *x; const void *x16, *att, *o; const float *g; int Bn, Cn, N, add, has_st;
       attn_store st; dath_ctx *ctx;)
REC_OP(drop_f, (void *y, const void *x, int Bn, int D, float p, uint64_t seed, uint32_t tag, const uint32_t *step,
                uint32_t s0, int st, dath_ctx *ctx),
       a->y = y; a->x = x; a->Bn = Bn; a->D = D; a->p = p; a->seed = seed; a->tag = tag; a->step = step; a->s0 = s0;
       a->st = st; a->ctx = ctx,
       dropout_forward_cpu(a->y, a->x, a->Bn, a->D, a->p, a->seed, a->tag, a->step, a->s0, a->st, a->ctx),
       void *y; const void *x; int Bn, D; float p; uint64_t seed; uint32_t tag; const uint32_t *step; uint32_t s0;
       int st; dath_ctx *ctx;)
REC_OP(drop_b, (float *dx, const float *dy, int Bn, int D, float p, uint64_t seed, uint32_t tag, const uint32_t *step,
                uint32_t s0, dath_ctx *ctx),
       a->dx = dx; a->dy = dy; a->Bn = Bn; a->D = D; a->p = p; a->seed = seed; a->tag = tag; a->step = step;
       a->s0 = s0; a->ctx = ctx,
       dropout_backward_cpu(a->dx, a->dy, a->Bn, a->D, a->p, a->seed, a->tag, a->step, a->s0, a->ctx),
       float *dx; const float *dy; int Bn, D; float p; uint64_t seed; uint32_t tag; const uint32_t *step; uint32_t s0;
       dath_ctx *ctx;)
REC_OP(fuse_f, (float *f, const float *x, const float *y, size_t n, dath_ctx *ctx),
       a->f = f; a->x = x; a->y = y; a->n = n; a->ctx = ctx, fuse_forward_cpu(a->f, a->x, a->y, a->n, a->ctx),
       float *f; const float *x, *y; size_t n; dath_ctx *ctx;)
REC_OP(fuse_b, (float *dx, float *dy, const float *df, const float *x, const float *y, size_t n, dath_ctx *ctx),
       a->dx = dx; a->dy = dy; a->df = df; a->x = x; a->y = y; a->n = n; a->ctx = ctx,
       fuse_backward_cpu(a->dx, a->dy, a->df, a->x, a->y, a->n, a->ctx),
       float *dx, *dy; const float *df, *x, *y; size_t n; dath_ctx *ctx;)
REC_OP(tanh_f, (float *h, const float *z, size_t n, dath_ctx *ctx),
       a->h = h; a->z = z; a->n = n; a->ctx = ctx, tanh_forward_cpu(a->h, a->z, a->n, a->ctx),
       float *h; const float *z; size_t n; dath_ctx *ctx;)
REC_OP(tanh_b, (float *dz, const float *dh, const float *h, size_t n, dath_ctx *ctx),
       a->dz = dz; a->dh = dh; a->h = h; a->n = n; a->ctx = ctx, tanh_backward_cpu(a->dz, a->dh, a->h, a->n, a->ctx),
       float *dz; const float *dh, *h; size_t n; dath_ctx *ctx;)
REC_OP(j1, (float *loss, int64_t *nt, float *dh, const float *h, const float *lab, int Bn, int Kn, int Cn, float margin,
            float scale, dath_ctx *ctx),
       a->loss = loss; a->nt = nt; a->dh = dh; a->h = h; a->lab = lab; a->Bn = Bn; a->Kn = Kn; a->Cn = Cn;
       a->margin = margin; a->scale = scale; a->ctx = ctx,
       j1_triplet_cpu(a->loss, a->nt, a->dh, a->h, a->lab, a->Bn, a->Kn, a->Cn, a->margin, a->scale, a->ctx),
       float *loss; int64_t *nt; float *dh; const float *h, *lab; int Bn, Kn, Cn; float margin, scale; dath_ctx *ctx;)
REC_OP(j2, (float *loss, float *dy, const float *y, const float *lab, int Bn, int Cn, int multi, float norm, float scale,
            dath_ctx *ctx),
       a->loss = loss; a->dy = dy; a->y = y; a->lab = lab; a->Bn = Bn; a->Cn = Cn; a->multi = multi; a->norm = norm;
       a->scale = scale; a->ctx = ctx,
       j2_class_cpu(a->loss, a->dy, a->y, a->lab, a->Bn, a->Cn, a->multi, a->norm, a->scale, a->ctx),
       float *loss, *dy; const float *y, *lab; int Bn, Cn, multi; float norm, scale; dath_ctx *ctx;)
REC_OP(j3, (float *loss, float *dh, const float *h, int Bn, int Kn, float norm, float scale, dath_ctx *ctx),
       a->loss = loss; a->dh = dh; a->h = h; a->Bn = Bn; a->Kn = Kn; a->norm = norm; a->scale = scale; a->ctx = ctx,
       j3_quant_cpu(a->loss, a->dh, a->h, a->Bn, a->Kn, a->norm, a->scale, a->ctx),
       float *loss, *dh; const float *h; int Bn, Kn; float norm, scale; dath_ctx *ctx;)
REC_OP(j3t, (float *loss, float *dz, const float *dh, const float *h, int Bn, int Kn, float norm, float scale,
             dath_ctx *ctx),
       a->loss = loss; a->dz = dz; a->dh = dh; a->h = h; a->Bn = Bn; a->Kn = Kn; a->norm = norm; a->scale = scale;
       a->ctx = ctx,
       j3_tanh_backward_cpu(a->loss, a->dz, a->dh, a->h, a->Bn, a->Kn, a->norm, a->scale, a->ctx),
       float *loss, *dz; const float *dh, *h; int Bn, Kn; float norm, scale; dath_ctx *ctx;)
REC_OP(rms, (float *th, float *v, dath_bf16 *cp, const float *g, size_t n, float lr, float al, float eps, float wd,
             const float *guard, int ng, dath_ctx *ctx),
       a->th = th; a->v = v; a->cp = cp; a->g = g; a->n = n; a->lr = lr; a->al = al; a->eps = eps; a->wd = wd;
       a->guard = guard; a->ng = ng; a->ctx = ctx,
       rmsprop_step_cpu(a->th, a->v, a->cp, a->g, a->n, a->lr, a->al, a->eps, a->wd, a->guard, a->ng, a->ctx),
       float *th, *v; dath_bf16 *cp; const float *g; size_t n; float lr, al, eps, wd; const float *guard; int ng;
       dath_ctx *ctx;)
REC_OP(xform, (float *out, const uint8_t *in, const int32_t *crop, const int32_t *idx, int Bn, int R, int S,
               dath_ctx *ctx),
       a->out = out; a->in = in; a->crop = crop; a->idx = idx; a->Bn = Bn; a->R = R; a->S = S; a->ctx = ctx,
       transform_batch_cpu(a->out, a->in, a->crop, a->idx, a->Bn, a->R, a->S, a->ctx),
       float *out; const uint8_t *in; const int32_t *crop, *idx; int Bn, R, S; dath_ctx *ctx;)

static dath_backend rec;

static void rec_make(void) {
    cpu = backend_cpu();
    rec = *cpu;
    snprintf(rec.device, sizeof rec.device, "CPU reference recording graphs as CUDA does");
    rec.alloc = rec_alloc; rec.free = rec_free; rec.host_alloc = rec_alloc; rec.host_free = rec_free;
    rec.upload = rec_upload; rec.download = rec_download; rec.sync = rec_sync;
    rec.graph_begin = rec_graph_begin; rec.graph_end = rec_graph_end;
    rec.graph_launch = rec_graph_launch; rec.graph_free = rec_graph_free;
    rec.zero = w_zero; rec.copy = w_copy; rec.axpy = w_axpy;
    rec.conv2d_forward = w_conv_f; rec.conv2d_backward = w_conv_b;
    rec.conv2d_forward_multi = w_convm_f; rec.conv2d_backward_multi = w_convm_b;
    rec.linear_forward = w_lin_f; rec.linear_backward = w_lin_b;
    rec.maxpool_forward = w_maxp_f; rec.maxpool_backward = w_maxp_b;
    rec.avgpool_forward = w_avgp_f; rec.avgpool_backward = w_avgp_b;
    rec.pam_forward = w_pam_f; rec.pam_backward = w_pam_b;
    rec.cam_forward = w_cam_f; rec.cam_backward = w_cam_b;
    rec.dropout_forward = w_drop_f; rec.dropout_backward = w_drop_b;
    rec.fuse_forward = w_fuse_f; rec.fuse_backward = w_fuse_b;
    rec.tanh_forward = w_tanh_f; rec.tanh_backward = w_tanh_b;
    rec.j1_triplet = w_j1; rec.j2_class = w_j2; rec.j3_quant = w_j3; rec.j3_tanh_backward = w_j3t;
    rec.rmsprop_step = w_rms; rec.transform_batch = w_xform;
}

/* ---- the runs --------------------------------------------------------------------- */

typedef struct run_out {
    step_losses L[NSTEPS];
    int rc[NSTEPS];
    float *theta, *rms;       /* [n] after the steps */
    long replayed;
    int captured;
} run_out;

/* Batch sizes of the steps: full (first sight: eager warm-up), full (captured, then
 * launched), partial (another key: eager), full (replays). */
static const int STEP_B[NSTEPS] = {B, B, B - 2, B, B, B};

/* Step i's batch: images and labels depend only on i. */
static void batch_make(float *x, float *lab, int S, int i) {
    uint64_t rs = 1000 + (uint64_t)i;
    check_fill(x, (size_t)B * 3 * S * S, -2.0f, 2.0f, &rs);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) lab[b * C + c] = (float)((b + i) % C == c || (b * 7 + c) % 5 == 0);
}

static void run_steps(const dath_backend *be, dath_model *m, int graphs, run_out *o) {
    char err[256], name[160];
    dath_ctx ctx;
    int S = m->S;
    size_t pbytes = m->n * sizeof(float);
    if (be->ctx_init(&ctx, net_work_bytes(m, B, B), DATH_FP32, err, sizeof err)) { printf("ctx: %s\n", err); exit(1); }
    dath_net *n = net_create(be, &ctx, m, B, 1, err, sizeof err);
    dath_comm *comm = comm_single(be);
    dath_stepper *st = stepper_create(n, comm, err, sizeof err);
    if (!n || !st) { printf("%s\n", err); exit(1); }
    stepper_set_graphs(st, graphs);
    net_upload(n, m);
    float *x = be->alloc((size_t)B * 3 * S * S * sizeof(float)), *lab = be->alloc((size_t)B * C * sizeof(float));
    float *hx = malloc((size_t)B * 3 * S * S * sizeof(float)), hl[B * C];
    step_config cfg;
    step_config_default(&cfg);
    /* the default lr: from this init a larger one saturates h to ±1 within the steps,
     * and then no gradient reaches the trunk (where the dropout masks act) */
    cfg.seed = 11;
    for (int i = 0; i <= NSTEPS; i++) {
        batch_make(hx, hl, S, i);
        /* after the NSTEPS steps, one more full batch whose first label is NaN: J2 is
         * NaN, RMSProp's guard must skip the update (a replayed step with graphs on) */
        if (i == NSTEPS) hl[0] = NAN;
        be->upload(x, hx, (size_t)B * 3 * S * S * sizeof(float), &ctx);
        be->upload(lab, hl, sizeof hl, &ctx);
        step_losses L;
        int rc = stepper_run(st, x, lab, i < NSTEPS ? STEP_B[i] : B, (uint32_t)(100 + i), &cfg, 1, &L, err, sizeof err);
        if (i < NSTEPS) {
            o->rc[i] = rc;
            o->L[i] = L;
            if (rc) printf("  step %d: %s\n", i, err);
            if (i == NSTEPS - 1) {
                o->theta = malloc(pbytes);
                o->rms = malloc(pbytes);
                be->download(o->theta, net_theta(n), pbytes, &ctx);
                be->download(o->rms, net_rms(n), pbytes, &ctx);
            }
            continue;
        }
        printf("  NaN step: %s\n", rc ? err : "(no error)");
        float *t2 = malloc(pbytes), *r2 = malloc(pbytes);
        be->download(t2, net_theta(n), pbytes, &ctx);
        be->download(r2, net_rms(n), pbytes, &ctx);
        const char *mode = graphs ? "graphs" : "eager";
        snprintf(name, sizeof name, "%s %s, NaN label: stepper_finish reports it", variant_name(m->variant), mode);
        CHECK_TRUE(name, rc != 0);
        snprintf(name, sizeof name, "%s %s, NaN label: parameters and RMSProp state untouched", variant_name(m->variant), mode);
        CHECK_TRUE(name, !memcmp(t2, o->theta, pbytes) && !memcmp(r2, o->rms, pbytes));
        free(t2);
        free(r2);
    }
    stepper_graph_stats(st, &o->replayed, &o->captured);
    be->free(x);
    be->free(lab);
    free(hx);
    stepper_free(st);
    comm->destroy(comm);
    net_free(n);
    be->ctx_free(&ctx);
}

static void check_variant(dath_variant v) {
    char err[256], name[160];
    dath_model *m = model_create(v, K, C, model_min_input(), err, sizeof err);
    if (!CHECK_TRUE("model_create", m != NULL)) { printf("  %s\n", err); return; }
    model_init_default(m, 5);
    for (int i = 0; i < m->nparams; i++)   /* attention live */
        if (strstr(m->params[i].name, "gamma")) m->theta[m->params[i].offset] = 0.5f;
    run_out eager = {0}, graph = {0};
    run_steps(backend_cpu(), m, 0, &eager);
    rec_violations = 0;
    run_steps(&rec, m, 1, &graph);
    const char *vn = variant_name(v);
    snprintf(name, sizeof name, "%s: every step succeeds", vn);
    int all_ok = 1;
    for (int i = 0; i < NSTEPS; i++) all_ok &= eager.rc[i] == 0 && graph.rc[i] == 0;
    CHECK_TRUE(name, all_ok);
    snprintf(name, sizeof name, "%s: captured once, replayed %ld steps (want %d)", vn, graph.replayed, NSTEPS - 1);
    CHECK_TRUE(name, graph.captured == 1 && graph.replayed == NSTEPS - 1);
    snprintf(name, sizeof name, "%s: no upload/download/sync/alloc inside the capture", vn);
    CHECK_TRUE(name, rec_violations == 0);
    int same = 1;
    for (int i = 0; i < NSTEPS; i++)
        same &= eager.L[i].j1 == graph.L[i].j1 && eager.L[i].j2 == graph.L[i].j2 && eager.L[i].j3 == graph.L[i].j3 &&
                eager.L[i].ntriplets == graph.L[i].ntriplets;
    snprintf(name, sizeof name, "%s: graph steps' losses and triplet counts = eager, bit for bit", vn);
    CHECK_TRUE(name, same);
    snprintf(name, sizeof name, "%s: parameters after %d steps = eager, bit for bit", vn, NSTEPS);
    CHECK_TRUE(name, !memcmp(eager.theta, graph.theta, m->n * sizeof(float)));
    snprintf(name, sizeof name, "%s: RMSProp state = eager, bit for bit", vn);
    CHECK_TRUE(name, !memcmp(eager.rms, graph.rms, m->n * sizeof(float)));
    printf("  %s: J at steps 0..%d:", vn, NSTEPS - 1);
    for (int i = 0; i < NSTEPS; i++) printf(" %.6f (J3 %.4f)", graph.L[i].total, graph.L[i].j3);
    printf("\n");
    free(eager.theta); free(eager.rms); free(graph.theta); free(graph.rms);
    model_free(m);
}

int main(void) {
    rec_make();
    check_variant(VARIANT_DATH);   /* two streams (conv1 shared), both attention modules */
    return check_finish();
}
