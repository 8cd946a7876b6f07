/* checks/check.h — what every compiled check shares: tolerances as data, the worst
 * element printed, a non-zero exit on any failure.
 *
 *   CHECK_CLOSE("conv.dw", got, ref, n, atol, rtol)   |got − ref| ≤ atol + rtol·|ref|
 *   CHECK_TRUE("name", cond)
 *   check_fill_nan(p, n), check_all_zero("name", got, n)   outputs that must be written
 *   check_widen(p, n, store)   a tensor stored as DATH_STORE_* says, as a malloc'ed fp32 copy
 *   return check_finish();   0 when all passed, 1 otherwise
 * A check that cannot run here calls check_skip("why"), which exits 77.
 * Nothing passes by accident: a comparison of no values fails (an empty tensor is a
 * mistake in the check, not a pass), and check_finish fails when no check ran. */
#ifndef DATH_CHECK_H
#define DATH_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../kernels/common.h"

static int check_failures, check_count;

/* n elements stored as `store` says (kernels/common.h: fp32 or bf16), widened into a
 * malloc'ed fp32 copy the caller frees; aborts when the host is out of memory. */
static inline float *check_widen(const void *p, size_t n, int store) {
    float *w = (float *)malloc((n ? n : 1) * sizeof *w);
    if (!w) {
        fprintf(stderr, "check_widen: out of memory for %zu floats\n", n);
        abort();
    }
    for (size_t i = 0; i < n; i++) w[i] = dath_load(p, i, store);
    return w;
}

/* Compares n values; prints one line with the worst element (by excess over the
 * tolerance). Returns 1 when every element is within tolerance. NaN always fails, and
 * so does n = 0 (nothing was compared). */
static inline int check_close_d(const char *name, const double *got, const double *ref,
                                size_t n, double atol, double rtol) {
    size_t worst = 0;
    double worst_excess = -INFINITY, worst_err = 0;
    int ok = n > 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]);
        double tol = atol + rtol * fabs(ref[i]);
        double excess = (isnan(got[i]) || isnan(ref[i])) ? INFINITY : err - tol;
        if (excess > 0) ok = 0;
        if (excess > worst_excess) { worst_excess = excess; worst = i; worst_err = err; }
    }
    check_count++;
    if (!ok) check_failures++;
    printf("%s %-40s n=%-9zu worst |err|=%.3e at [%zu] (got %.7g, ref %.7g; atol %.1e rtol %.1e)\n",
           ok ? "ok  " : "FAIL", name, n, worst_err, worst, n ? got[worst] : 0.0,
           n ? ref[worst] : 0.0, atol, rtol);
    return ok;
}

static inline int check_close(const char *name, const float *got, const float *ref,
                              size_t n, double atol, double rtol) {
    double *g = malloc((n + 1) * sizeof *g), *r = malloc((n + 1) * sizeof *r);
    for (size_t i = 0; i < n; i++) { g[i] = got[i]; r[i] = ref[i]; }
    int ok = check_close_d(name, g, r, n, atol, rtol);
    free(g); free(r);
    return ok;
}
#define CHECK_CLOSE(name, got, ref, n, atol, rtol) check_close(name, got, ref, n, atol, rtol)

/* p[0..n) = NaN: an output the op must write (=), not add to. */
static inline void check_fill_nan(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* got[0..n) all exactly 0 (an empty batch's gradient). */
static inline int check_all_zero(const char *name, const float *got, size_t n) {
    float *zero = calloc(n + 1, sizeof *zero);
    int ok = check_close(name, got, zero, n, 0.0, 0.0);
    free(zero);
    return ok;
}

static inline int check_true(const char *name, int cond) {
    check_count++;
    if (!cond) check_failures++;
    printf("%s %s\n", cond ? "ok  " : "FAIL", name);
    return cond;
}
#define CHECK_TRUE(name, cond) check_true(name, (cond))

static inline int check_finish(void) {
    printf("%d checks, %d failed\n", check_count, check_failures);
    if (check_count == 0) {
        printf("FAIL no check ran\n");
        return 1;
    }
    return check_failures ? 1 : 0;
}

static inline void check_skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

/* A small deterministic generator for test data (splitmix64). */
static inline uint64_t check_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double check_unif(uint64_t *s) { return (check_next(s) >> 11) * (1.0 / 9007199254740992.0); }
static inline void check_fill(float *x, size_t n, float lo, float hi, uint64_t *s) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)check_unif(s);
}

#endif
