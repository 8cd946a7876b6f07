/* kernels/loss.c — plain-C reference of the hash layer's tanh and DATH's losses
 * (contract in loss.h). Losses are summed in double; the value is written to
 * loss[0], the gradient (when asked for) accumulated as dx += scale · dL/dx.
 *
 * J1 never materialises the triplets. With Θ = ½ H Hᵀ and the similarity matrix,
 * each anchor a walks its positives P_a and negatives N_a (O(B³) in all) and
 * collects dJ/dΘ_ap, dJ/dΘ_an into row a of G [B,B]; then, since
 * dΘ_ij/dh_i = ½ h_j and dΘ_ij/dh_j = ½ h_i, dH = ½ (G + Gᵀ) H. Anchors run in
 * parallel, each writing only its own row of G and its own partial loss, summed
 * afterwards in anchor order: the result does not depend on the thread count.
 *
 * J1 allocates its scratch (O(B² + B·K)) on the heap; a failed allocation is
 * kernels/common.h's scratch policy. K < 1 is invalid: NaN in loss[0], −1 in ntrip[0],
 * dh untouched, so the caller's non-finite-loss check sees it. B = 0 is an empty
 * batch: loss 0, no triplet. */
#include "loss.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void tanh_forward_cpu(float *h, const float *z, size_t n, dath_ctx *ctx) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) h[i] = tanhf(z[i]);
}

void tanh_backward_cpu(float *dz, const float *dh, const float *h, size_t n,
                       dath_ctx *ctx) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dz[i] += dh[i] * (1.0f - h[i] * h[i]);
}

/* ---- J1 ---------------------------------------------------------------------- */

/* Rows i and j share at least one label (lab [B,C], 0/1 as float). */
static int loss_similar(const float *li, const float *lj, int C) {
    for (int c = 0; c < C; c++)
        if (li[c] > 0.5f && lj[c] > 0.5f) return 1;
    return 0;
}

void j1_triplet_cpu(float *loss, int64_t *ntrip, float *dh, const float *h,
                    const float *lab, int B, int K, int C, float margin, float scale,
                    dath_ctx *ctx) {
    if (B <= 0 || K <= 0) {   /* an empty batch has no triplet; K < 1 is invalid */
        loss[0] = B <= 0 ? 0.0f : NAN;
        if (ntrip) ntrip[0] = B <= 0 ? 0 : -1;
        return;
    }
    size_t BB = (size_t)B * B;
    int *pos = malloc(BB * sizeof *pos);    /* [B,B] row a: the positives of anchor a */
    int *neg = malloc(BB * sizeof *neg);    /* [B,B] row a: the negatives of anchor a */
    int *npos = malloc(B * sizeof *npos);   /* [B] */
    int *nneg = malloc(B * sizeof *nneg);   /* [B] */
    if (!pos || !neg || !npos || !nneg)
        dath_scratch_fail("j1_triplet_cpu", BB * 2 * sizeof *pos + 2 * (size_t)B * sizeof *npos, 0,
                          "its host allocation failed");

    /* Mining: p ≠ a similar to a; n dissimilar to a (never a itself, unless a has no
     * label, and then a has no positive). */
    int64_t T = 0;
    for (int a = 0; a < B; a++) {
        const float *la = lab + (size_t)a * C;
        npos[a] = nneg[a] = 0;
        for (int j = 0; j < B; j++) {
            if (loss_similar(la, lab + (size_t)j * C, C)) {
                if (j != a) pos[(size_t)a * B + npos[a]++] = j;
            } else {
                neg[(size_t)a * B + nneg[a]++] = j;
            }
        }
        T += (int64_t)npos[a] * nneg[a];
    }
    if (ntrip) ntrip[0] = T;
    if (T == 0) {
        loss[0] = 0.0f;
        free(pos); free(neg); free(npos); free(nneg);
        return;
    }

    double *hd = malloc((size_t)B * K * sizeof *hd);   /* [B,K] h in double */
    double *theta = malloc(BB * sizeof *theta);        /* [B,B] Θ = ½ H Hᵀ */
    double *g = calloc(BB, sizeof *g);                 /* [B,B] dJ/dΘ (times T) */
    double *la_loss = malloc(B * sizeof *la_loss);     /* [B] each anchor's Σ terms */
    double *dhd = dh ? malloc((size_t)B * K * sizeof *dhd) : NULL; /* [B,K] */
    if (!hd || !theta || !g || !la_loss || (dh && !dhd))
        dath_scratch_fail("j1_triplet_cpu", (BB * 2 + (size_t)B * (2 * (size_t)K + 1)) * sizeof(double), 0,
                          "its host allocation failed");
    for (size_t i = 0; i < (size_t)B * K; i++) hd[i] = h[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, K, 0.5, hd, K, hd, K,
                0.0, theta, B);

    /* For each triplet, t = −x = Θ_an − Θ_ap + margin; term = softplus(t),
     * d term/dΘ_ap = −σ(t), d term/dΘ_an = +σ(t). */
#pragma omp parallel for schedule(dynamic, 1)
    for (int a = 0; a < B; a++) {
        const double *th = theta + (size_t)a * B;   /* [B] row a of Θ */
        double *ga = g + (size_t)a * B;             /* [B] row a of G */
        const int *pa = pos + (size_t)a * B, *na = neg + (size_t)a * B;
        double sum = 0.0;
        for (int ip = 0; ip < npos[a]; ip++) {
            int p = pa[ip];
            double base = margin - th[p];
            double gp = 0.0;
            for (int in = 0; in < nneg[a]; in++) {
                int n = na[in];
                double t = th[n] + base;
                double e = exp(-fabs(t));
                double sig = t >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
                sum += fmax(t, 0.0) + log1p(e);
                gp -= sig;
                ga[n] += sig;
            }
            ga[p] += gp;
        }
        la_loss[a] = sum;
    }
    double total = 0.0;
    for (int a = 0; a < B; a++) total += la_loss[a];
    loss[0] = (float)(total / (double)T);

    if (dh) {
        /* G ← ½ (G + Gᵀ) in place, then dH = G H, scaled by scale / T. */
        for (int i = 0; i < B; i++)
            for (int j = i; j < B; j++) {
                double s = 0.5 * (g[(size_t)i * B + j] + g[(size_t)j * B + i]);
                g[(size_t)i * B + j] = g[(size_t)j * B + i] = s;
            }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, K, B,
                    (double)scale / (double)T, g, B, hd, K, 0.0, dhd, K);
        for (size_t i = 0; i < (size_t)B * K; i++) dh[i] += (float)dhd[i];
    }

    free(hd); free(theta); free(g); free(la_loss); free(dhd);
    free(pos); free(neg); free(npos); free(nneg);
}

/* ---- J2 ---------------------------------------------------------------------- */

void j2_class_cpu(float *loss, float *dy, const float *y, const float *lab, int B,
                  int C, int multi, float norm, float scale, dath_ctx *ctx) {
    const double lo = (double)J2_EPS, hi = 1.0 - (double)J2_EPS;
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *yb = y + (size_t)b * C;   /* [C] */
        const float *lb = lab + (size_t)b * C; /* [C] */
        double m = yb[0];
        for (int j = 1; j < C; j++) m = fmax(m, (double)yb[j]);
        double z = 0.0;
        for (int j = 0; j < C; j++) z += exp((double)yb[j] - m);
        double lse = m + log(z);

        if (!multi) {
            /* −Σ_j l_j (y_j − lse); d/dy_k = (Σ_j l_j) p_k − l_k */
            double lsum = 0.0;
            for (int j = 0; j < C; j++) {
                total += lb[j] * (lse - yb[j]);
                lsum += lb[j];
            }
            if (dy) {
                double s = (double)scale / (double)norm;
                for (int k = 0; k < C; k++) {
                    double p = exp((double)yb[k] - lse);
                    dy[(size_t)b * C + k] += (float)(s * (lsum * p - lb[k]));
                }
            }
        } else {
            /* q = clamp(p); L = −Σ_j [l_j log q_j + (1 − l_j) log(1 − q_j)];
             * dL/dp_j = −l_j/q_j + (1 − l_j)/(1 − q_j) where lo ≤ p_j ≤ hi, else 0;
             * dL/dy_k = p_k (dL/dp_k − Σ_j dL/dp_j p_j). */
            double dot = 0.0;
            for (int j = 0; j < C; j++) {
                double p = exp((double)yb[j] - lse);
                double q = fmin(fmax(p, lo), hi);
                total -= lb[j] * log(q) + (1.0 - lb[j]) * log1p(-q);
                if (p >= lo && p <= hi) dot += (-lb[j] / q + (1.0 - lb[j]) / (1.0 - q)) * p;
            }
            if (dy) {
                double s = (double)scale / (double)norm;
                for (int k = 0; k < C; k++) {
                    double p = exp((double)yb[k] - lse);
                    double dp = (p >= lo && p <= hi)
                                    ? -lb[k] / p + (1.0 - lb[k]) / (1.0 - p) : 0.0;
                    dy[(size_t)b * C + k] += (float)(s * p * (dp - dot));
                }
            }
        }
    }
    loss[0] = (float)(total / (double)norm);
}

/* ---- J3 ---------------------------------------------------------------------- */

static float loss_sign(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

void j3_quant_cpu(float *loss, float *dh, const float *h, int B, int K, float norm,
                  float scale, dath_ctx *ctx) {
    size_t n = (size_t)B * K;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += fabs(fabs((double)h[i]) - 1.0);
    loss[0] = (float)(total / (double)norm);
    if (dh) {
        float s = scale / norm;
        for (size_t i = 0; i < n; i++)
            dh[i] += s * loss_sign(fabsf(h[i]) - 1.0f) * loss_sign(h[i]);
    }
}

/* J3's value as j3_quant_cpu, and dz += (dh + s·sign(|h|−1)·sign(h))·(1 − h·h),
 * each float operation rounded where j3_quant_cpu then tanh_backward_cpu round it. */
void j3_tanh_backward_cpu(float *loss, float *dz, const float *dh, const float *h, int B,
                          int K, float norm, float scale, dath_ctx *ctx) {
    size_t n = B > 0 && K > 0 ? (size_t)B * K : 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += fabs(fabs((double)h[i]) - 1.0);
    loss[0] = (float)(total / (double)norm);
    const float s = scale / norm;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = (dh ? dh[i] : 0.0f) + s * loss_sign(fabsf(h[i]) - 1.0f) * loss_sign(h[i]);
        dz[i] += g * (1.0f - h[i] * h[i]);
    }
}
