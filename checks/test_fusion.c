/* checks/test_fusion.c — dropout and the fc7 fusion references (kernels/fusion.c).
 *
 * Dropout:
 *   - the mask is rng_keep(seed, tag, *step, sample0 + i, j, p), and a fixed
 *     (seed, tag, step, sample0) gives the same mask twice and in the backward;
 *   - the step is read through its pointer when the op runs: writing another value
 *     into the same 1-element buffer between two calls gives that step's mask
 *     (forward and backward), as a replayed CUDA graph sees it;
 *   - another step, sample0, tag or seed gives another mask (disagreement ≈ 2p(1−p));
 *   - the kept fraction over a large D is within DROP_SIGMAS binomial sigmas of 1 − p;
 *   - kept values are x / (1 − p), dropped ones 0; in place (y == x) gives the same;
 *   - row i with sample0 = s equals row 0 with sample0 = s + i (so a batch split over
 *     GPUs gives the same masks);
 *   - p = 0 is the identity, forward and backward; p = 1 drops everything;
 *   - the backward writes dx (=): called onto NaN, it gives dy/(1−p) or 0.
 * Fusion: f = relu(a) + relu(b) and f = relu(a) (b == NULL) against loops; the backward
 * writes da and db (=, onto NaN), with gradient 0 at a = 0 exactly; b == NULL leaves db
 * alone. */
#include <string.h>

#include "check.h"
#include "../kernels/fusion.h"
#include "../kernels/rng.h"

#define DROP_B 4                  /* rows of the mask tests */
#define DROP_D 4096               /* units a row in the mask tests */
#define DROP_BIG_D (1 << 20)      /* units for the kept-fraction test */
#define DROP_SIGMAS 5.0           /* allowed deviation of the kept fraction */
/* Two unrelated masks disagree on a fraction 2p(1−p) of units; a mask "differs" when
 * the disagreement is above half that (about 45 sigmas away from 0 at D = 4096). */
#define DROP_DIFF_MIN 0.5
/* Exact arithmetic: the op and the check compute the same float products. */
#define DROP_ATOL 0.0
#define DROP_RTOL 0.0
/* the fusion: the same float operations either way. */
#define FUSE_ATOL 0.0
#define FUSE_RTOL 0.0

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) { fprintf(stderr, "test_fusion: out of memory\n"); exit(1); }
    return p;
}

/* Fraction of the n units where masks of y1 and y2 (nonzero = kept) disagree. */
static double mask_disagreement(const float *y1, const float *y2, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += (y1[i] != 0.0f) != (y2[i] != 0.0f);
    return (double)d / (double)n;
}

static void test_dropout(void) {
    dath_ctx ctx = {0};
    const uint64_t seed = 0x1234abcdULL;
    const uint32_t tag = RNG_DROPOUT + 1, step = 7, s0 = 1000;
    uint32_t step_buf[1] = {step};   /* the op's 1-element step buffer */
    const float p = 0.5f;
    const size_t n = (size_t)DROP_B * DROP_D;
    uint64_t s = 42;
    float *x = falloc(n), *y1 = falloc(n), *y2 = falloc(n), *ref = falloc(n);
    float *dx = falloc(n), *dy = falloc(n), *dref = falloc(n);
    check_fill(x, n, 0.5f, 1.5f, &s);            /* nonzero: y != 0 exactly when kept */

    /* forward against rng_keep directly */
    dropout_forward_cpu(y1, x, DROP_B, DROP_D, p, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    for (int i = 0; i < DROP_B; i++)
        for (int j = 0; j < DROP_D; j++) {
            size_t k = (size_t)i * DROP_D + j;
            ref[k] = rng_keep(seed, tag, step, s0 + i, j, p) ? x[k] * (1.0f / (1.0f - p)) : 0.0f;
        }
    CHECK_CLOSE("dropout.forward == rng_keep mask * x/(1-p)", y1, ref, n, DROP_ATOL, DROP_RTOL);
    int scaled = 1;
    for (size_t k = 0; k < n; k++)
        if (y1[k] != 0.0f && y1[k] != x[k] / (1.0f - p)) scaled = 0;
    CHECK_TRUE("dropout.kept values are x/(1-p), dropped are 0", scaled);

    dropout_forward_cpu(y2, x, DROP_B, DROP_D, p, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    CHECK_TRUE("dropout.same (seed,tag,step,sample0) -> same output twice",
               memcmp(y1, y2, n * sizeof(float)) == 0);

    /* in place */
    memcpy(y2, x, n * sizeof(float));
    dropout_forward_cpu(y2, y2, DROP_B, DROP_D, p, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    CHECK_TRUE("dropout.in place (y == x) gives the same output",
               memcmp(y1, y2, n * sizeof(float)) == 0);

    /* backward: same mask, dx written (onto NaN) */
    check_fill(dy, n, -1, 1, &s);
    check_fill_nan(dx, n);
    for (size_t k = 0; k < n; k++) {
        float keep = y1[k] != 0.0f;
        dref[k] = keep ? dy[k] * (1.0f / (1.0f - p)) : 0.0f;
    }
    dropout_backward_cpu(dx, dy, DROP_B, DROP_D, p, seed, tag, step_buf, s0, &ctx);
    CHECK_CLOSE("dropout.backward: forward's mask, dx = dy/(1-p) onto NaN", dx, dref, n,
                DROP_ATOL, DROP_RTOL);

    /* the step is read through the pointer at each call: the same call with another
     * value in the buffer gives that step's mask, forward and backward */
    step_buf[0] = step + 1;
    dropout_forward_cpu(y2, x, DROP_B, DROP_D, p, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    for (int i = 0; i < DROP_B; i++)
        for (int j = 0; j < DROP_D; j++) {
            size_t k = (size_t)i * DROP_D + j;
            ref[k] = rng_keep(seed, tag, step + 1, s0 + i, j, p) ? x[k] * (1.0f / (1.0f - p)) : 0.0f;
        }
    CHECK_CLOSE("dropout.*step changed in the buffer: forward == rng_keep at the new step",
                y2, ref, n, DROP_ATOL, DROP_RTOL);
    double dis_step = mask_disagreement(y1, y2, n);
    printf("     dropout.*step changed: disagreement %.4f (unrelated masks: %.4f)\n", dis_step,
           2.0 * p * (1.0 - p));
    CHECK_TRUE("dropout.*step changed between two calls -> another mask",
               dis_step > DROP_DIFF_MIN * 2.0 * p * (1.0 - p));
    memset(dx, 0, n * sizeof(float));
    dropout_backward_cpu(dx, dy, DROP_B, DROP_D, p, seed, tag, step_buf, s0, &ctx);
    for (size_t k = 0; k < n; k++) dref[k] = y2[k] != 0.0f ? dy[k] * (1.0f / (1.0f - p)) : 0.0f;
    CHECK_CLOSE("dropout.*step changed: backward uses the new step's mask", dx, dref, n,
                DROP_ATOL, DROP_RTOL);
    step_buf[0] = step;

    /* other keys give other masks */
    struct { const char *name; uint64_t seed; uint32_t tag, step, s0; } other[] = {
        {"dropout.another step -> another mask", seed, tag, step + 1, s0},
        {"dropout.another sample0 -> another mask", seed, tag, step, s0 + DROP_B},
        {"dropout.another tag -> another mask", seed, tag + 1, step, s0},
        {"dropout.another seed -> another mask", seed + 1, tag, step, s0},
    };
    for (size_t t = 0; t < sizeof other / sizeof other[0]; t++) {
        dropout_forward_cpu(y2, x, DROP_B, DROP_D, p, other[t].seed, other[t].tag,
                            &other[t].step, other[t].s0, DATH_STORE_F32, &ctx);
        double dis = mask_disagreement(y1, y2, n);
        printf("     %s: disagreement %.4f (unrelated masks: %.4f)\n", other[t].name, dis,
               2.0 * p * (1.0 - p));
        CHECK_TRUE(other[t].name, dis > DROP_DIFF_MIN * 2.0 * p * (1.0 - p));
    }
    /* rows of one batch differ from each other */
    double rows = mask_disagreement(y1, y1 + DROP_D, DROP_D);
    CHECK_TRUE("dropout.rows 0 and 1 have different masks", rows > DROP_DIFF_MIN * 2.0 * p * (1.0 - p));

    /* row i with sample0 = s0 equals row 0 with sample0 = s0 + i */
    int same_rows = 1;
    for (int i = 0; i < DROP_B; i++) {
        dropout_forward_cpu(y2, x + (size_t)i * DROP_D, 1, DROP_D, p, seed, tag, step_buf,
                            s0 + i, DATH_STORE_F32, &ctx);
        if (memcmp(y2, y1 + (size_t)i * DROP_D, DROP_D * sizeof(float)) != 0) same_rows = 0;
    }
    CHECK_TRUE("dropout.row i at sample0=s == row 0 at sample0=s+i", same_rows);
    /* and a split batch: rows 2..3 run as their own batch starting at s0 + 2 */
    dropout_forward_cpu(y2, x + 2 * (size_t)DROP_D, DROP_B - 2, DROP_D, p, seed, tag, step_buf,
                        s0 + 2, DATH_STORE_F32, &ctx);
    CHECK_TRUE("dropout.batch split in two gives the same rows",
               memcmp(y2, y1 + 2 * (size_t)DROP_D, (DROP_B - 2) * (size_t)DROP_D * sizeof(float)) == 0);

    /* p = 0: identity, forward and backward */
    dropout_forward_cpu(y2, x, DROP_B, DROP_D, 0.0f, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    CHECK_TRUE("dropout.p=0 forward is the identity", memcmp(y2, x, n * sizeof(float)) == 0);
    memset(dx, 0, n * sizeof(float));
    dropout_backward_cpu(dx, dy, DROP_B, DROP_D, 0.0f, seed, tag, step_buf, s0, &ctx);
    CHECK_TRUE("dropout.p=0 backward is the identity", memcmp(dx, dy, n * sizeof(float)) == 0);

    /* p = 1: everything dropped, finite */
    dropout_forward_cpu(y2, x, DROP_B, DROP_D, 1.0f, seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
    int zero = 1;
    for (size_t k = 0; k < n; k++) if (y2[k] != 0.0f) zero = 0;
    CHECK_TRUE("dropout.p=1 drops everything", zero);

    free(x); free(y1); free(y2); free(ref); free(dx); free(dy); free(dref);

    /* kept fraction over a large D, for several p */
    const float ps[] = {0.1f, 0.5f, 0.9f};
    float *xb = falloc(DROP_BIG_D), *yb = falloc(DROP_BIG_D);
    for (size_t k = 0; k < DROP_BIG_D; k++) xb[k] = 1.0f;
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        dropout_forward_cpu(yb, xb, 1, DROP_BIG_D, ps[t], seed, tag, step_buf, s0, DATH_STORE_F32, &ctx);
        size_t kept = 0;
        for (size_t k = 0; k < DROP_BIG_D; k++) kept += yb[k] != 0.0f;
        double frac = (double)kept / DROP_BIG_D, want = 1.0 - ps[t];
        double sigma = sqrt(want * (1.0 - want) / DROP_BIG_D);
        char name[128];
        snprintf(name, sizeof name, "dropout.p=%.1f kept %.5f, want %.5f +- %.0f sigma (%.1f sigma off)",
                 ps[t], frac, want, DROP_SIGMAS, fabs(frac - want) / sigma);
        CHECK_TRUE(name, fabs(frac - want) <= DROP_SIGMAS * sigma);
    }
    free(xb); free(yb);
}

static void test_fuse(void) {
    dath_ctx ctx = {0};
    const size_t n = 1000;
    uint64_t s = 7;
    float *a = falloc(n), *b = falloc(n), *f = falloc(n), *ref = falloc(n);
    float *df = falloc(n), *da = falloc(n), *db = falloc(n), *da_ref = falloc(n), *db_ref = falloc(n);
    check_fill(a, n, -1, 1, &s);
    check_fill(b, n, -1, 1, &s);
    for (size_t i = 0; i < n; i += 10) { a[i] = 0.0f; b[i + 5] = 0.0f; }   /* exact zeros */
    check_fill(df, n, -1, 1, &s);

    fuse_forward_cpu(f, a, b, n, &ctx);
    for (size_t i = 0; i < n; i++) ref[i] = fmaxf(a[i], 0.0f) + fmaxf(b[i], 0.0f);
    CHECK_CLOSE("fuse.forward relu(a)+relu(b)", f, ref, n, FUSE_ATOL, FUSE_RTOL);
    fuse_forward_cpu(f, a, NULL, n, &ctx);
    for (size_t i = 0; i < n; i++) ref[i] = fmaxf(a[i], 0.0f);
    CHECK_CLOSE("fuse.forward relu(a) (b = NULL)", f, ref, n, FUSE_ATOL, FUSE_RTOL);

    /* backward onto NaN: written */
    check_fill_nan(da, n);
    check_fill_nan(db, n);
    for (size_t i = 0; i < n; i++) {
        da_ref[i] = a[i] > 0.0f ? df[i] : 0.0f;
        db_ref[i] = b[i] > 0.0f ? df[i] : 0.0f;
    }
    fuse_backward_cpu(da, db, df, a, b, n, &ctx);
    CHECK_CLOSE("fuse.backward da = df*(a>0) onto NaN", da, da_ref, n, FUSE_ATOL, FUSE_RTOL);
    CHECK_CLOSE("fuse.backward db = df*(b>0) onto NaN", db, db_ref, n, FUSE_ATOL, FUSE_RTOL);

    /* b == NULL: da as before, db (NULL) untouched */
    check_fill_nan(da, n);
    fuse_backward_cpu(da, NULL, df, a, NULL, n, &ctx);
    CHECK_CLOSE("fuse.backward da = df*(a>0) (b = NULL)", da, da_ref, n, FUSE_ATOL, FUSE_RTOL);
    /* b == NULL but a db buffer given: still ignored */
    memcpy(db_ref, db, n * sizeof(float));
    fuse_backward_cpu(da, db, df, a, NULL, n, &ctx);
    CHECK_TRUE("fuse.backward leaves db alone when b = NULL", memcmp(db, db_ref, n * sizeof(float)) == 0);

    int zero_grad = 1;
    memset(da, 0, n * sizeof(float));
    fuse_backward_cpu(da, db, df, a, b, n, &ctx);
    for (size_t i = 0; i < n; i += 10) if (da[i] != 0.0f) zero_grad = 0;
    CHECK_TRUE("fuse.backward gradient 0 at a = 0 exactly", zero_grad);

    free(a); free(b); free(f); free(ref); free(df); free(da); free(db); free(da_ref); free(db_ref);
}

int main(void) {
    test_dropout();
    test_fuse();
    return check_finish();
}
