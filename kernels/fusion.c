/* kernels/fusion.c — plain-C reference of dropout and the fc7 fusion (contract in
 * fusion.h). Element-wise; rows (dropout) or elements (fusion) are split across
 * OpenMP threads, each element written by one thread, so results do not depend on the
 * thread count.
 *
 * p ≥ 1 drops every unit (y = 0, dx += 0) instead of scaling by 1/(1 − p) = ∞. */
#include "fusion.h"
#include "rng.h"

/* The factor a kept unit is multiplied by; 0 when every unit is dropped. */
static float dropout_scale(float p) {
    return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
}

void dropout_forward_cpu(void *y, const void *x, int B, int D, float p,
                         uint64_t seed, uint32_t tag, const uint32_t *step,
                         uint32_t sample0, int store, dath_ctx *ctx) {
    const float scale = dropout_scale(p);
    const uint32_t st = *step;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        uint32_t sample = sample0 + (uint32_t)i;
        const size_t r = (size_t)i * D;              /* row i, [D] */
        for (int j = 0; j < D; j++)
            dath_store(y, r + j, rng_keep(seed, tag, st, sample, (uint32_t)j, p) ? dath_load(x, r + j, store) * scale : 0.0f,
                       store);
    }
}

void dropout_backward_cpu(float *dx, const float *dy, int B, int D, float p,
                          uint64_t seed, uint32_t tag, const uint32_t *step,
                          uint32_t sample0, dath_ctx *ctx) {
    const float scale = dropout_scale(p);
    const uint32_t st = *step;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        const float *dyi = dy + (size_t)i * D;       /* [D] */
        float *dxi = dx + (size_t)i * D;             /* [D] */
        uint32_t sample = sample0 + (uint32_t)i;
        for (int j = 0; j < D; j++)
            dxi[j] = rng_keep(seed, tag, st, sample, (uint32_t)j, p) ? dyi[j] * scale : 0.0f;
    }
}

void fuse_forward_cpu(float *f, const float *a, const float *b, size_t n, dath_ctx *ctx) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = a[i] > 0.0f ? a[i] : 0.0f;
        if (b && b[i] > 0.0f) s += b[i];
        f[i] = s;
    }
}

void fuse_backward_cpu(float *da, float *db, const float *df, const float *a,
                       const float *b, size_t n, dath_ctx *ctx) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        da[i] = a[i] > 0.0f ? df[i] : 0.0f;
        if (b) db[i] = b[i] > 0.0f ? df[i] : 0.0f;
    }
}
