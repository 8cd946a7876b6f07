/* kernels/attention.h — DANet's position (PAM) and channel (CAM) attention modules.
 *
 * x [B, C, N] is conv5's output with N = H*W positions (C = 256 in DATH).
 *
 * PAM (Cq = C/8 query/key channels; wq, wk [Cq, C], wv [C, C] are the 1×1 convs, which
 * the CUDA op runs on the implicit convolution kernel, conv.h, with the bias in its epilogue):
 *   q = wq·x + bq [B,Cq,N]   k = wk·x + bk [B,Cq,N]   v = wv·x + bv [B,C,N]
 *   e = qᵀk [B,N,N]          a = softmax over each row of e      [B,N,N]
 *   o = v·aᵀ [B,C,N]         out = gamma[0]*o + x                [B,C,N]
 *   Forward saves q, k, v, a, o for the backward.
 *
 * CAM:
 *   e = x·xᵀ [B,C,C]         a = softmax(rowmax(e) - e) per row (= softmax(-e)), stably
 *   o = a·x [B,C,N]          out = gamma[0]*o + x
 *   Forward saves a, o.
 *
 * Backward: every parameter gradient (dwq, dbq, dwk, dbk, dwv, dbv, dgamma) is written
 * (=: the module is its only writer in a step, so the step never zeroes them; an empty
 * batch writes zeros); dx, with the residual path (dout) in it, is written (add = 0:
 * the module is its only writer) or added to (add = 1: dath-1's CAM after its PAM on the
 * same input), so the step never zeroes it. dout is not modified.
 * gamma and dgamma are 1-element backend buffers.
 *
 * Storage. st == NULL: every tensor fp32. st != NULL (`--precision bf16` on sm_80+,
 * attn_store_bf16; host/net.c): the saved tensors q, k, v, a, o (and CAM's x16 = bf16(x),
 * which it saves for its GEMMs) are stored in bf16, and so are the backward's
 * intermediates that feed its GEMMs (γ·dout, dv, de, dq, dk, xᵀ); x, out, dout, dx, every
 * parameter gradient and dγ stay fp32, and every sum is in fp32 (the tensor cores') or
 * double. Each stored value is rounded once from its fp32 value:
 *   PAM  q, k, v = bf16(bf16(w)·bf16(x) + b) (the implicit convolution kernel's bf16
 *        tiles: attention.cu), e = qᵀk in fp32, a = bf16(softmax(e)), o = bf16(v·aᵀ);
 *        backward gd = bf16(γ·dout), dv = bf16(gd·a), da = gdᵀ·v in fp32,
 *        de = bf16(softmax'(da)), dq = bf16(k·deᵀ), dk = bf16(q·de), dw = dy·bf16(x)ᵀ,
 *        db = Σ dy, dx += w16ᵀ·dy, the w16 the bf16 copies of the weights (host/net.c's,
 *        rmsprop.h);
 *   CAM  x16 = bf16(x), e = x16·x16ᵀ in fp32, a = bf16(softmax(−e)), o = bf16(a·x16);
 *        backward gd = bf16(γ·dout), da = gd·x16ᵀ in fp32, dx += aᵀ·gd,
 *        de = bf16(softmax'(da)), dx += de·x16 + deᵀ·x16;
 *   both out = γ·o + x (fp32 x), dγ = Σ dout·o. */
#ifndef DATH_ATTENTION_H
#define DATH_ATTENTION_H

#include "common.h"

/* PAM backward's bias gradients: the R = 2·Cq + C rows of dqT, dkT, dvT [Co, L] (L the
 * chunk's pixels) are summed by one launch in S slices a row, one block a slice, about
 * ATTN_ROWSUM_BLOCKS blocks (several per multiprocessor) however few rows there are,
 * each slice at least ATTN_ROWSUM_MIN elements, the R·S double partials in the head of
 * ctx->work (ATTN_ROWSUM_PARTIALS) and added up in slice order by a second kernel; S = 1:
 * one block a row writes db directly. It depends on the shape only (the same bits on
 * every run and GPU). kernels/attention.cu launches it; host/cost.c counts it. */
/* The backwards' scratch (kernels/attention.cu; host/cost.c counts the same): at most
 * ATTN_PARTIALS double partials of dγ at the start of ctx->work, then the images' buffers,
 * each on an ATTN_ALIGN-float (256-byte) boundary. */
#define ATTN_PARTIALS 1024
#define ATTN_ALIGN 64
#define ATTN_ROWSUM_BLOCKS 1024
#define ATTN_ROWSUM_MIN 2048
#define ATTN_ROWSUM_PARTIALS 1024   /* = the dγ partials' room: the loop reuses it */
static inline int attn_row_sum_slices(long long R, long long L) {
    if (R <= 0 || L <= 0) return 1;
    long long S = (ATTN_ROWSUM_BLOCKS + R - 1) / R;
    if (S > ATTN_ROWSUM_PARTIALS / R) S = ATTN_ROWSUM_PARTIALS / R;
    if (S > L / ATTN_ROWSUM_MIN) S = L / ATTN_ROWSUM_MIN;
    return S < 2 ? 1 : (int)S;
}

typedef struct attn_store {
    const dath_bf16 *wq, *wk, *wv;   /* PAM: the bf16 copies of wq, wk, wv; CAM: unused */
} attn_store;

typedef void pam_forward_fn(float *out, void *q, void *k, void *v, void *a, void *o,
                            const float *x, const float *wq, const float *bq,
                            const float *wk, const float *bk, const float *wv,
                            const float *bv, const float *gamma,
                            int B, int C, int Cq, int N, const attn_store *st, dath_ctx *ctx);
typedef void pam_backward_fn(float *dx, float *dwq, float *dbq, float *dwk, float *dbk,
                             float *dwv, float *dbv, float *dgamma,
                             const float *dout, const float *x, const void *q,
                             const void *k, const void *v, const void *a, const void *o,
                             const float *wq, const float *wk, const float *wv,
                             const float *gamma, int B, int C, int Cq, int N, int add,
                             const attn_store *st, dath_ctx *ctx);
/* x16 [B,C,N]: written by the forward and read by the backward with bf16 storage (NULL
 * without). */
typedef void cam_forward_fn(float *out, void *a, void *o, void *x16, const float *x,
                            const float *gamma, int B, int C, int N, const attn_store *st, dath_ctx *ctx);
typedef void cam_backward_fn(float *dx, float *dgamma, const float *dout, const float *x,
                             const void *x16, const void *a, const void *o, const float *gamma,
                             int B, int C, int N, int add, const attn_store *st, dath_ctx *ctx);

/* 1 when a context stores the attention in bf16: precision bf16 on sm_80+ (CUDA). */
int attn_store_bf16(const dath_ctx *ctx);
/* The bf16 path's scratch, floats an image (kernels/attention.cu; host/cost.c): forward
 * PAM N² (e), CAM C² (e); backward PAM
 * (3·C·N + 2·Cq·N)/2 + N² + N²/2 (gd, xᵀ, dv, dq, dk in bf16, da fp32, de bf16), CAM
 * C·N/2 + C² + C²/2. */
#define ATTN_BF16_PAM_FWD(C, Cq, N) ((size_t)(N) * (N))
#define ATTN_BF16_CAM_FWD(C, N) ((size_t)(C) * (C))
#define ATTN_BF16_PAM_BWD(C, Cq, N) ((3 * (size_t)(C) * (N) + 2 * (size_t)(Cq) * (N) + 1) / 2 + (size_t)(N) * (N) + ((size_t)(N) * (N) + 1) / 2)
#define ATTN_BF16_CAM_BWD(C, N) (((size_t)(C) * (N) + 1) / 2 + (size_t)(C) * (C) + ((size_t)(C) * (C) + 1) / 2)

pam_forward_fn pam_forward_cpu;
pam_backward_fn pam_backward_cpu;
cam_forward_fn cam_forward_cpu;
cam_backward_fn cam_backward_cpu;
#ifdef DATH_CUDA
pam_forward_fn pam_forward_cuda;
pam_backward_fn pam_backward_cuda;
cam_forward_fn cam_forward_cuda;
cam_backward_fn cam_backward_cuda;
#endif

#endif
