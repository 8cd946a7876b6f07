/* kernels/transform.c — plain-C reference of the input transform (contract in
 * transform.h): crop the S×S window at (cx, cy), mirror it when flip is set,
 * scale to [0,1] and normalise per channel, HWC uint8 → CHW float; sample b reads
 * image index[b] (or b when index is NULL).
 * The crop offsets are the caller's to keep inside the image: 0 ≤ cx, cy ≤ R − S. */
#include "transform.h"

void transform_batch_cpu(float *out, const uint8_t *in, const int32_t *crop,
                         const int32_t *index, int B, int R, int S, dath_ctx *ctx) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * S * S > 65536)
    for (int b = 0; b < B; b++) {
        for (int y = 0; y < S; y++) {
            const int cx = crop[3 * b + 0], cy = crop[3 * b + 1], flip = crop[3 * b + 2];
            const size_t i = index ? (size_t)index[b] : (size_t)b;        /* source image */
            const uint8_t *row = in + ((i * R + cy + y) * R) * 3;          /* [R,3] */
            for (int c = 0; c < 3; c++) {
                float *o = out + (((size_t)b * 3 + c) * S + y) * S;         /* [S] */
                const float mean = TRANSFORM_MEAN[c], std = TRANSFORM_STD[c];
                for (int x = 0; x < S; x++) {
                    int sx = cx + (flip ? S - 1 - x : x);
                    o[x] = ((float)row[(size_t)sx * 3 + c] / 255.0f - mean) / std;
                }
            }
        }
    }
}
