/* checks/test_transform.c — the input transform reference (kernels/transform.c):
 * crop/flip/normalise of tiny images against a per-pixel reference in double, the
 * centre-crop offset, the values of known pixels (0 → (0 − mean)/std,
 * 255 → (1 − mean)/std), and the gather: with a row index, the transform of a set's
 * rows equals the contiguous transform of those images copied out, bit for bit. */
#include "check.h"
#include "../kernels/transform.h"

#include <string.h>

/* float kernel against the formula in double: a division, a subtraction, a division */
#define TF_ATOL 2e-7     /* (v/255 − mean) cancels: ~ulp(0.5)/std near 0 */
#define TF_RTOL 1.2e-7   /* one float ulp */

static dath_ctx ctx;

/* out[b,c,y,x] = (in[b, cy+y, cx + (flip ? S−1−x : x), c] / 255 − mean_c) / std_c */
static void transform_ref(float *out, const uint8_t *in, const int32_t *crop, int B, int R,
                          int S) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int cx = crop[3 * b], cy = crop[3 * b + 1], flip = crop[3 * b + 2];
                    int sx = cx + (flip ? S - 1 - x : x), sy = cy + y;
                    double p = in[(((size_t)b * R + sy) * R + sx) * 3 + c];
                    out[(((size_t)b * 3 + c) * S + y) * S + x] =
                        (float)((p / 255.0 - TRANSFORM_MEAN[c]) / TRANSFORM_STD[c]);
                }
}

static float norm_of(double v, int c) {
    return (float)((v - TRANSFORM_MEAN[c]) / TRANSFORM_STD[c]);
}

int main(void) {
    uint64_t rs = 99;
    enum { R = 9, S = 7, B = 4 };
    uint8_t in[B * R * R * 3];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)(check_next(&rs) & 0xff);

    /* Sample 0: centre (1,1), no flip; 1: centre, flipped; 2: (2,0) flipped;
     * 3: (0,2) no flip. */
    const int c0 = (R - S) / 2;
    const int32_t crop[B * 3] = {c0, c0, 0, c0, c0, 1, 2, 0, 1, 0, 2, 0};
    CHECK_TRUE("transform.centre offset (9-7)/2 = 1", c0 == 1);

    /* Known pixels: in sample 0, the window's top-left is 0 and its top-right 255 in
     * every channel; in sample 1 (flipped) the same source pixels land mirrored. */
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++) {
            in[(((size_t)b * R + c0) * R + c0) * 3 + c] = 0;
            in[(((size_t)b * R + c0) * R + c0 + S - 1) * 3 + c] = 255;
        }

    float out[B * 3 * S * S], ref[B * 3 * S * S];
    transform_batch_cpu(out, in, crop, NULL, B, R, S, &ctx);
    transform_ref(ref, in, crop, B, R, S);
    CHECK_CLOSE("transform.R9 S7 vs per-pixel reference (flip and offsets)", out, ref,
                B * 3 * S * S, TF_ATOL, TF_RTOL);

    float got[12], want[12];
    for (int c = 0; c < 3; c++) {
        got[4 * c + 0] = out[((0 * 3 + c) * S + 0) * S + 0];          /* 0, no flip */
        got[4 * c + 1] = out[((0 * 3 + c) * S + 0) * S + S - 1];      /* 255, no flip */
        got[4 * c + 2] = out[((1 * 3 + c) * S + 0) * S + S - 1];      /* 0, flipped */
        got[4 * c + 3] = out[((1 * 3 + c) * S + 0) * S + 0];          /* 255, flipped */
        want[4 * c + 0] = want[4 * c + 2] = norm_of(0.0, c);
        want[4 * c + 1] = want[4 * c + 3] = norm_of(1.0, c);
    }
    CHECK_CLOSE("transform.known pixels 0 and 255 -> (0|1 - mean)/std", got, want, 12,
                TF_ATOL, TF_RTOL);

    /* Flip mirrors: sample 1 is sample 0 with x reversed only if their sources agree;
     * make sample 1's image a copy of sample 0's and compare. */
    memcpy(in + (size_t)R * R * 3, in, (size_t)R * R * 3);
    transform_batch_cpu(out, in, crop, NULL, 2, R, S, &ctx);
    int mirrored = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                if (out[((0 * 3 + c) * S + y) * S + x] !=
                    out[((1 * 3 + c) * S + y) * S + (S - 1 - x)])
                    mirrored = 0;
    CHECK_TRUE("transform.flip mirrors the window exactly", mirrored);

    /* The centre crop floors: R = 10, S = 7 → offset 1 (not 2). */
    enum { R2 = 10 };
    uint8_t in2[R2 * R2 * 3];
    for (size_t i = 0; i < sizeof in2; i++) in2[i] = (uint8_t)(check_next(&rs) & 0xff);
    const int32_t crop2[3] = {(R2 - S) / 2, (R2 - S) / 2, 0};
    float out2[3 * S * S], ref2[3 * S * S];
    transform_batch_cpu(out2, in2, crop2, NULL, 1, R2, S, &ctx);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                ref2[(c * S + y) * S + x] =
                    norm_of(in2[((1 + y) * R2 + 1 + x) * 3 + c] / 255.0, c);
    CHECK_TRUE("transform.centre offset (10-7)/2 floors to 1", crop2[0] == 1);
    CHECK_CLOSE("transform.R10 S7 centre crop reads from (1,1)", out2, ref2, 3 * S * S,
                TF_ATOL, TF_RTOL);

    /* Every byte value maps to (v/255 − mean)/std: a 1-pixel crop of a 16×16 image
     * whose pixels run through 0..255. */
    enum { R3 = 16 };
    uint8_t in3[R3 * R3 * 3];
    for (int i = 0; i < R3 * R3; i++)
        for (int c = 0; c < 3; c++) in3[i * 3 + c] = (uint8_t)i;
    float all[256 * 3], allref[256 * 3];
    int32_t crop3[256 * 3];
    uint8_t *in3b = malloc((size_t)256 * sizeof in3);
    for (int i = 0; i < 256; i++) {
        memcpy(in3b + (size_t)i * sizeof in3, in3, sizeof in3);
        crop3[3 * i] = i % R3; crop3[3 * i + 1] = i / R3; crop3[3 * i + 2] = i & 1;
    }
    transform_batch_cpu(all, in3b, crop3, NULL, 256, R3, 1, &ctx);
    for (int i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++) allref[i * 3 + c] = norm_of(i / 255.0, c);
    CHECK_CLOSE("transform.all 256 byte values (S = 1)", all, allref, 256 * 3, TF_ATOL,
                TF_RTOL);
    free(in3b);

    /* The gather: a set of N images, a batch of B4 rows of it in a shuffled order with
     * repeats, the first and the last row; the result must be the bits of the contiguous
     * transform of those rows copied into a batch. */
    enum { N4 = 6, B4 = 9, R4 = 11, S4 = 8 };
    const size_t unit4 = (size_t)R4 * R4 * 3;
    uint8_t *set4 = malloc(N4 * unit4);                        /* [N4,R4,R4,3] */
    uint8_t *batch4 = malloc(B4 * unit4);                      /* [B4,R4,R4,3] the gathered rows */
    const int32_t index4[B4] = {5, 0, 3, 3, 1, 5, 2, 4, 0};    /* [B4] every row, 0, 3, 5 twice */
    int32_t crop4[B4 * 3];                                     /* [B4,3] */
    for (size_t i = 0; i < N4 * unit4; i++) set4[i] = (uint8_t)(check_next(&rs) & 0xff);
    for (int b = 0; b < B4; b++) {
        memcpy(batch4 + b * unit4, set4 + (size_t)index4[b] * unit4, unit4);
        crop4[3 * b + 0] = (int32_t)(check_next(&rs) % (R4 - S4 + 1));
        crop4[3 * b + 1] = (int32_t)(check_next(&rs) % (R4 - S4 + 1));
        crop4[3 * b + 2] = b & 1;
    }
    float *gather = malloc(sizeof(float) * B4 * 3 * S4 * S4);  /* [B4,3,S4,S4] */
    float *contig = malloc(sizeof(float) * B4 * 3 * S4 * S4);  /* [B4,3,S4,S4] */
    float *ref4 = malloc(sizeof(float) * B4 * 3 * S4 * S4);    /* [B4,3,S4,S4] */
    transform_batch_cpu(gather, set4, crop4, index4, B4, R4, S4, &ctx);
    transform_batch_cpu(contig, batch4, crop4, NULL, B4, R4, S4, &ctx);
    transform_ref(ref4, batch4, crop4, B4, R4, S4);
    CHECK_TRUE("transform.gather by index == contiguous transform of the gathered rows (bits)",
               memcmp(gather, contig, sizeof(float) * B4 * 3 * S4 * S4) == 0);
    CHECK_CLOSE("transform.gather by index vs per-pixel reference", gather, ref4,
                B4 * 3 * S4 * S4, TF_ATOL, TF_RTOL);
    /* the index 0, 1, …, N−1 reads what the NULL index reads */
    const int32_t ident[N4] = {0, 1, 2, 3, 4, 5};          /* [N4] */
    transform_batch_cpu(gather, set4, crop4, ident, N4, R4, S4, &ctx);
    transform_batch_cpu(contig, set4, crop4, NULL, N4, R4, S4, &ctx);
    CHECK_TRUE("transform.identity index == NULL index (bits)",
               memcmp(gather, contig, sizeof(float) * N4 * 3 * S4 * S4) == 0);
    free(set4); free(batch4); free(gather); free(contig); free(ref4);

    CHECK_TRUE("transform.cache side 256 at S = 224", transform_cache_side(224) == 256);
    return check_finish();
}
