/* kernels/rmsprop.h — RMSProp with weight decay over the whole flat parameter buffer,
 * PyTorch's semantics (torch.optim.RMSprop, no momentum, not centred):
 *   g = grad + wd·θ;  v = alpha·v + (1 − alpha)·g²;  θ = θ − lr·g / (sqrt(v) + eps)
 * theta [n] and v [n] are updated in place; grad [n] is not modified. */
#ifndef DATH_RMSPROP_H
#define DATH_RMSPROP_H

#include "common.h"

typedef void rmsprop_step_fn(float *theta, float *v, const float *grad, size_t n,
                             float lr, float alpha, float eps, float wd, dath_ctx *ctx);

rmsprop_step_fn rmsprop_step_cpu;
#ifdef DATH_CUDA
rmsprop_step_fn rmsprop_step_cuda;
#endif

#endif
