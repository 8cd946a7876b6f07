/* kernels/loss.h — the hash layer's tanh and DATH's three losses (DESIGN.md §2).
 *
 * tanh: h = tanh(z), both [n]; backward dz += dh * (1 - h²).
 *
 * Every loss writes its value to loss[0] (a 1-element backend buffer, assigned) and,
 * when the gradient pointer is not NULL, accumulates scale * d(loss)/d(input) into it.
 * Labels are float 0/1, lab [B, C]. "Similar" = sharing at least one label.
 *
 * J1 (triplet likelihood, DTSH), h [B,K]: over every (a, p, n) with a != p,
 *   sim(a,p), !sim(a,n): x = Θ_ap − Θ_an − margin, Θ_ij = ½ h_iᵀh_j,
 *   term = softplus(−x); loss = mean over the mined triplets (0 when none).
 *   ntrip[0] (int64 backend buffer, may be NULL) receives the number of triplets.
 *   Mining is over all B rows given (on several GPUs: the all-gathered batch);
 *   dh receives the gradient for all B rows.
 *
 * J2 (classification), y [B,C] logits:
 *   multi == 0: softmax cross-entropy −Σ_j l_j log softmax(y)_j (eq. 6);
 *   multi == 1: eq. 7, p = softmax(y) clamped to [J2_EPS, 1 − J2_EPS] (the clamp
 *   passes no gradient where it is active):  −Σ_j [l_j log p_j + (1−l_j) log(1−p_j)].
 *   loss = (Σ over the B rows) / norm.
 *
 * J3 (quantisation), h [B,K]: Σ_j | |h_ij| − 1 |, loss = (Σ over rows) / norm;
 *   gradient sign(|h|−1)·sign(h) (sign(0) = 0, as PyTorch).
 *
 * J3 with tanh's backward fused (j3_tanh_backward), h = tanh(z) [B,K]: loss[0] is
 *   J3 of h exactly as j3_quant computes it (assigned), and
 *     dz [B,K] += (dh + scale·dJ3/dh)·(1 − h²),
 *   where dh [B,K] is h's gradient from every other consumer of h (J1, the
 *   classification layer), read only, NULL meaning 0, and dJ3/dh is what j3_quant
 *   accumulates, sign(|h|−1)·sign(h)/norm. The floats are rounded in the order of
 *   j3_quant into dh followed by tanh_backward (g = dh + (scale/norm)·sign·sign;
 *   dz += g·(1 − h·h)), so the fused op gives the same bits as those two. dz must
 *   not alias dh or h. On CUDA it is one launch (loss reduced in a fixed order).
 *
 * `norm` is the global batch size (the mean is over the global batch; each rank
 * passes its own rows and the host sums the ranks' losses). */
#ifndef DATH_LOSS_H
#define DATH_LOSS_H

#include "common.h"

#define J2_EPS 1e-7f

typedef void tanh_forward_fn(float *h, const float *z, size_t n, dath_ctx *ctx);
typedef void tanh_backward_fn(float *dz, const float *dh, const float *h, size_t n,
                              dath_ctx *ctx);
typedef void j1_triplet_fn(float *loss, int64_t *ntrip, float *dh, const float *h,
                           const float *lab, int B, int K, int C, float margin,
                           float scale, dath_ctx *ctx);
typedef void j2_class_fn(float *loss, float *dy, const float *y, const float *lab,
                         int B, int C, int multi, float norm, float scale, dath_ctx *ctx);
typedef void j3_quant_fn(float *loss, float *dh, const float *h, int B, int K,
                         float norm, float scale, dath_ctx *ctx);
typedef void j3_tanh_backward_fn(float *loss, float *dz, const float *dh, const float *h,
                                 int B, int K, float norm, float scale, dath_ctx *ctx);

tanh_forward_fn tanh_forward_cpu;
tanh_backward_fn tanh_backward_cpu;
j1_triplet_fn j1_triplet_cpu;
j2_class_fn j2_class_cpu;
j3_quant_fn j3_quant_cpu;
j3_tanh_backward_fn j3_tanh_backward_cpu;
#ifdef DATH_CUDA
tanh_forward_fn tanh_forward_cuda;
tanh_backward_fn tanh_backward_cuda;
j1_triplet_fn j1_triplet_cuda;
j2_class_fn j2_class_cuda;
j3_quant_fn j3_quant_cuda;
j3_tanh_backward_fn j3_tanh_backward_cuda;
#endif

#endif
