/* kernels/rng.h — the counter-based generator (Philox-4x32-10, Salmon et al. 2011).
 *
 * Every random number in dath is a pure function of (seed, tag, a, b, c): no state,
 * no order dependence, the same on the host, in any worker thread and on the device.
 *   seed : the run's --seed
 *   tag  : what the number is for (RNG_* below)
 *   a    : epoch (shuffle, crop, flip) or step (dropout)
 *   b    : global sample index (or 0)
 *   c    : element index within the sample (unit of a layer, 0/1/2 for crop x/y/flip)
 * Usable from C and CUDA (DATH_HD). */
#ifndef DATH_RNG_H
#define DATH_RNG_H

#include "common.h"

enum {
    RNG_SHUFFLE = 1,     /* a = epoch, b = position, used for the epoch permutation */
    RNG_CROP = 2,        /* a = epoch, b = sample index, c = 0 (x), 1 (y), 2 (flip) */
    RNG_INIT = 3,        /* a = parameter index, b = 0, c = element: weight init */
    RNG_DROPOUT = 16     /* + 2*stream + layer (layer 0: before fc6, 1: before fc7) */
};

DATH_HD uint32_t rng_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox-4x32-10: counter (c0..c3), key (k0,k1). Returns the first output word;
 * out4, when not NULL, receives all four. */
DATH_HD uint32_t rng_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                            uint32_t k0, uint32_t k1, uint32_t *out4) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = rng_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = rng_mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    if (out4) { out4[0] = c0; out4[1] = c1; out4[2] = c2; out4[3] = c3; }
    return c0;
}

/* One uniform 32-bit word for (seed, tag, a, b, c). */
DATH_HD uint32_t rng_u32(uint64_t seed, uint32_t tag, uint32_t a, uint32_t b, uint32_t c) {
    return rng_philox(tag, a, b, c, (uint32_t)seed, (uint32_t)(seed >> 32), 0);
}

/* Uniform float in [0,1): 24 high bits. */
DATH_HD float rng_uniform(uint64_t seed, uint32_t tag, uint32_t a, uint32_t b, uint32_t c) {
    return (float)(rng_u32(seed, tag, a, b, c) >> 8) * (1.0f / 16777216.0f);
}

/* Dropout keep test for one unit: kept when uniform >= p. */
DATH_HD int rng_keep(uint64_t seed, uint32_t tag, uint32_t step, uint32_t sample,
                     uint32_t unit, float p) {
    return rng_uniform(seed, tag, step, sample, unit) >= p;
}

#endif
