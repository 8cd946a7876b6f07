/* kernels/rmsprop.h — RMSProp with weight decay over the whole flat parameter buffer,
 * PyTorch's semantics (torch.optim.RMSprop, no momentum, not centred):
 *   g = grad + wd·θ;  v = alpha·v + (1 − alpha)·g²;  θ = θ − lr·g / (sqrt(v) + eps)
 * theta [n] and v [n] are updated in place; grad [n] is not modified.
 *
 * copy [n] (may be NULL): the bf16 copy of theta that `--precision bf16`'s GEMMs read
 * (host/net.c; the fc layers, linear.h). When it is not NULL the same pass writes
 * copy[i] = bf16(new theta[i]) (round to nearest even, common.h's dath_bf16_from_float):
 * 2 bytes an element more, where a separate cast would read theta again. rmsprop_narrow
 * makes the copy from theta where theta came from elsewhere (an upload).
 *
 * Guard: guard [nguard] (backend memory, read when the op runs: the step's loss
 * values) may be NULL. When it is not NULL and any guard[0..nguard) is NaN or ±inf,
 * the whole step is skipped: theta, v and copy are left bit-for-bit as they were. So a
 * captured CUDA step can drop a non-finite step without the host reading the loss
 * between the backward and the optimiser. guard == NULL or nguard ≤ 0: always update. */
#ifndef DATH_RMSPROP_H
#define DATH_RMSPROP_H

#include "common.h"

typedef void rmsprop_step_fn(float *theta, float *v, dath_bf16 *copy, const float *grad, size_t n,
                             float lr, float alpha, float eps, float wd,
                             const float *guard, int nguard, dath_ctx *ctx);
/* copy [n] = bf16(theta [n]), one pass. */
typedef void rmsprop_narrow_fn(dath_bf16 *copy, const float *theta, size_t n, dath_ctx *ctx);

rmsprop_step_fn rmsprop_step_cpu;
rmsprop_narrow_fn rmsprop_narrow_cpu;
#ifdef DATH_CUDA
rmsprop_step_fn rmsprop_step_cuda;
rmsprop_narrow_fn rmsprop_narrow_cuda;
#endif

#endif
