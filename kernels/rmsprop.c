/* kernels/rmsprop.c — plain-C reference of the RMSProp step (contract in rmsprop.h).
 * Float arithmetic in the order torch.optim.RMSprop's single-tensor path uses:
 *   g = grad + wd·θ;  v = alpha·v + (1 − alpha)·g·g;  θ = θ − lr · (g / (√v + eps)).
 * Each element is independent, so the parallel loop is deterministic. */
#include "rmsprop.h"

#include <math.h>

void rmsprop_step_cpu(float *theta, float *v, const float *grad, size_t n, float lr,
                      float alpha, float eps, float wd, dath_ctx *ctx) {
    const float one_minus_alpha = 1.0f - alpha;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + wd * theta[i];
        float vi = alpha * v[i] + one_minus_alpha * g * g;
        v[i] = vi;
        theta[i] -= lr * (g / (sqrtf(vi) + eps));
    }
}
