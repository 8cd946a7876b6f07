/* kernels/rmsprop.c — plain-C reference of the RMSProp step (contract in rmsprop.h).
 * Float arithmetic in the order of torch.optim.RMSprop's step on the CPU
 * (add, mul_, addcmul_, sqrt, add_, addcdiv_; ATen computes addcmul as
 * self + (value·t1)·t2 and addcdiv as self + (value·t1)/t2):
 *   g = grad + wd·θ;  v = v·alpha + ((1 − alpha)·g)·g;  θ = θ + ((−lr)·g) / (√v + eps).
 * Each element is independent, so the parallel loop is deterministic.
 * A non-finite guard value returns before anything is written. copy, when given, gets
 * bf16(θ) of each new θ. */
#include "rmsprop.h"

#include <math.h>

void rmsprop_step_cpu(float *theta, float *v, dath_bf16 *copy, const float *grad, size_t n, float lr,
                      float alpha, float eps, float wd, const float *guard, int nguard,
                      dath_ctx *ctx) {
    if (guard)
        for (int k = 0; k < nguard; k++)
            if (!isfinite(guard[k])) return;    /* skip the step: theta, v unchanged */
    const float one_minus_alpha = 1.0f - alpha, neg_lr = -lr;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + wd * theta[i];
        float vi = v[i] * alpha + one_minus_alpha * g * g;
        v[i] = vi;
        theta[i] = theta[i] + neg_lr * g / (sqrtf(vi) + eps);
        if (copy) copy[i] = dath_bf16_from_float(theta[i]);
    }
}

void rmsprop_narrow_cpu(dath_bf16 *copy, const float *theta, size_t n, dath_ctx *ctx) {
    (void)ctx;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) copy[i] = dath_bf16_from_float(theta[i]);
}
