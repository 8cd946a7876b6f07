/* host/net.h — a model running on a backend: parameters, gradients and RMSProp state
 * as flat backend buffers (layout of model.h), activations for up to Bmax images,
 * forward and backward over the ops of host/backend.h.
 *
 * Ownership: net_create allocates everything on the backend; net_free releases it.
 * The net keeps a pointer to the model (for its shapes) but not to its theta. */
#ifndef DATH_NET_H
#define DATH_NET_H

#include <stdint.h>
#include "backend.h"
#include "model.h"

typedef struct dath_net dath_net;

/* How one pass runs. Dropout masks are keyed by (seed, *step, sample0 + row). The
 * step is read from backend memory when the dropout ops run, so that a pass captured
 * once in a CUDA graph uses the current step at every replay. */
typedef struct net_run {
    int dropout;            /* 1: dropout 0.5 active (training); 0: off */
    uint64_t seed;
    const uint32_t *step;   /* [1] backend memory: the global step index (unused without dropout) */
    uint32_t sample0;       /* global index of row 0 of this batch (rank offset) */
} net_run;

/* Bytes of ctx->work the ops of a net of Bmax images need (the largest batched
 * im2col, the attention backwards' scratch, J1's over Bglobal rows). Pass it to the
 * backend's ctx_init. */
size_t net_work_bytes(const dath_model *m, int Bmax, int Bglobal);

/* need_grad = 0 builds an inference-only net (no gradients, no saved tensors beyond
 * what the forward needs, no RMSProp state). Returns NULL with a message. */
dath_net *net_create(const dath_backend *be, dath_ctx *ctx, const dath_model *m, int Bmax,
                     int need_grad, char *err, size_t err_len);
void net_free(dath_net *n);

const dath_model *net_model(const dath_net *n);
/* How the convolution trunk's activations and their gradients (c1-c4, p1, p2: host/net.c) are stored:
 * DATH_STORE_BF16 where conv2d_store_bf16(ctx) held at net_create, else DATH_STORE_F32. */
int net_storage(const dath_net *n);
/* How fc6's and fc7's inputs and fc6's output are stored (host/net.c): DATH_STORE_BF16 where
 * linear_store_bf16(ctx) held at net_create, else DATH_STORE_F32. */
int net_fc_storage(const dath_net *n);
/* [n] bf16 copy of theta the bf16 fc layers read (net_upload makes it, RMSProp keeps it:
 * pass it to rmsprop_step), or NULL with fp32 fc storage. */
dath_bf16 *net_wcopy(dath_net *n);
dath_ctx *net_ctx(dath_net *n);        /* the context every op of this net runs on */
int net_bmax(const dath_net *n);

/* Flat backend buffers, [n] floats each (grad and rms NULL without need_grad). */
float *net_theta(dath_net *n);
float *net_grad(dath_net *n);
float *net_rms(dath_net *n);

/* theta (and rms when the model has it, else zero) host → backend, and back. */
void net_upload(dath_net *n, const dath_model *m);
void net_download(dath_net *n, dath_model *m);

/* Forward of B <= Bmax images x [B,3,S,S] (backend memory). */
void net_forward(dath_net *n, const float *x, int B, const net_run *r);
/* Outputs of the last forward: h [B,K] (tanh outputs), y [B,C] (logits). */
const float *net_h(const dath_net *n);
const float *net_y(const dath_net *n);
/* Features of the last forward, [B, 4096] backend memory each (no dropout: the model's
 * own features, as `dath features` writes them): net_fused is f = Σ_s ReLU(fc7_s), what
 * the hash layer reads (one stream: ReLU(fc7), AlexNet's DeCAF7 for a torchvision trunk);
 * net_fc7 is stream s's fc7 before its ReLU (0 ≤ s < the model's nstreams, in model.h's
 * order: pam then cam for dath), NULL for another s. */
const float *net_fused(const dath_net *n);
const float *net_fc7(const dath_net *n, int s);
/* Gradient inputs of the backward, [Bmax,K] and [Bmax,C]. dy is zeroed by net_zero_grad
 * (J2 adds to it); dh is written by net_backward_head (the classifier's din), so a loss
 * adds its share after that (the training step: J1). */
float *net_dh(dath_net *n);
float *net_dy(dath_net *n);
/* Zeroes the activation gradients the losses accumulate into: dy and dz (0.1 MB at batch
 * 128, 64 bits). Every other one, and every parameter gradient, needs no zeroing: its
 * first writer in the backward writes it. */
void net_zero_grad(dath_net *n);
/* Backward of the last forward (same x, B, r), from dh and dy, writing the parameter
 * gradients (net_grad: this backward's, whatever they held), in two halves with the hash layer's tanh backward between them
 * (the training step fuses it with J3's gradient, loss.h):
 * the classification layer's backward: dh = dy·W_cls (written), and its weight gradients. */
void net_backward_head(dath_net *n, int B);
/* Everything below the hash layer's tanh, from dz (net_dz). */
void net_backward_body(dath_net *n, const float *x, int B, const net_run *r);
/* The gradient w.r.t. the hash layer's pre-activation z, [Bmax, K]; zeroed by net_zero_grad
 * (the training step's j3_tanh_backward adds to it). */
float *net_dz(dath_net *n);

/* The gradient hook: net_backward_head and net_backward_body call fn(user, p, ctx) for
 * parameter p (an index into the model's params) as soon as the op that writes its
 * gradient has been queued (every parameter gradient is written by one op), in the
 * order the backward finishes them, each parameter once a backward. ctx is the context
 * whose queue that op went to: net_ctx, or the second stream's own (a two-stream
 * variant on a backend with ctx_fork), so whatever reads the gradient is ordered after
 * that queue, not net_ctx's. The training step starts a bucket's all-reduce there
 * (host/step.c). fn NULL: no hook. */
typedef void net_grad_hook(void *user, int param, dath_ctx *ctx);
void net_set_grad_hook(dath_net *n, net_grad_hook *fn, void *user);

#endif
