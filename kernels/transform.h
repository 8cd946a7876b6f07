/* kernels/transform.h — the input transform: uint8 cached images → network input.
 *
 * in  [N, R, R, 3] uint8, HWC, the cached unit (R = transform_cache_side(S); 256 at S=224)
 * crop [B, 3] int32: x offset, y offset, flip (0/1) of each sample's S×S window
 * index [B] int32 or NULL: the image of sample b is in[index[b]] (0 ≤ index[b] < N; rows
 *     may repeat and come in any order), so a batch can be gathered from a decoded set
 *     held in backend memory; NULL: in[b] (then N ≥ B). Like crop, backend memory.
 * out [B, 3, S, S] float: ((pixel/255) − mean_c) / std_c, ImageNet mean/std,
 *     out[b,c,y,x] = norm(in[i, cy + y, cx + (flip ? S−1−x : x), c]), i = index ? index[b] : b.
 * Crop offsets come from the caller: random (training; kernels/rng.h RNG_CROP) or the centre crop
 * (encoding): cx = cy = (R − S) / 2 (floor), flip 0. */
#ifndef DATH_TRANSFORM_H
#define DATH_TRANSFORM_H

#include "common.h"

static const float TRANSFORM_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float TRANSFORM_STD[3] = {0.229f, 0.224f, 0.225f};

/* The cached side for input size S: round(256·S/224); 256 at S = 224. */
static inline int transform_cache_side(int S) { return (256 * S + 112) / 224; }

typedef void transform_batch_fn(float *out, const uint8_t *in, const int32_t *crop,
                                const int32_t *index, int B, int R, int S, dath_ctx *ctx);

transform_batch_fn transform_batch_cpu;
#ifdef DATH_CUDA
transform_batch_fn transform_batch_cuda;
#endif

#endif
