/* emu/cuda_bf16.h — the bfloat16 type and conversions dath's kernels use, for the
 * CPU emulator (README.md). __nv_bfloat16 holds the 16 high bits of an IEEE float;
 * __float2bfloat16 / __float2bfloat16_rn round to nearest, ties to even (as CUDA's do), a
 * NaN stays a (quiet) NaN; __bfloat162float is exact. No arithmetic operators: dath's
 * kernels only convert. */
#ifndef DATH_EMU_CUDA_BF16_H
#define DATH_EMU_CUDA_BF16_H

#include "cuda_runtime.h"

#ifdef __cplusplus
struct __nv_bfloat16 {
    unsigned short __x;
};

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) h.__x = (unsigned short)((u >> 16) | 0x0040u);   /* NaN */
    else h.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 h) {
    unsigned int u = (unsigned int)h.__x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
#endif

#endif
