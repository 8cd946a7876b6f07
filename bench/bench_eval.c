/* bench/bench_eval.c — how long Hamming ranking and the retrieval metrics take at the
 * MS-COCO protocol's size: 5,000 queries against 117,218 database codes of 64 bits,
 * 80 classes, multi-label (random codes; 1 to 3 random labels an image).
 *
 *   build/bench/bench_eval [Q D BITS]
 *
 * Times two runs of hamming_eval_cpu on the same data:
 *   MAP@5000      AP, hits and relevant counts only (what training's evaluation needs)
 *   full          also the tie bounds, P@N/R@N at every 100 ranks and the radius counts
 *                 (what `dath eval --tie-bounds --curves` computes)
 * and prints wall seconds, queries per second and CPU seconds (all threads) for each. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/hamming.h"

static uint64_t bench_next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double bench_clock(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static double bench_now(void) { return bench_clock(CLOCK_MONOTONIC); }
static double bench_cpu(void) { return bench_clock(CLOCK_PROCESS_CPUTIME_ID); }

static void bench_fill(uint8_t *codes, uint8_t *lab, int n, int B, int C, uint64_t *s) {
    for (size_t i = 0; i < (size_t)n * B; i++) codes[i] = (uint8_t)bench_next(s);
    memset(lab, 0, (size_t)n * C);
    for (int i = 0; i < n; i++) {
        int k = 1 + (int)(bench_next(s) % 3);
        for (int j = 0; j < k; j++) lab[(size_t)i * C + bench_next(s) % C] = 1;
    }
}

int main(int argc, char **argv) {
    int Q = 5000, D = 117218, K = 64;
    const int C = 80, topk = 5000;
    if (argc == 4) {
        Q = atoi(argv[1]);
        D = atoi(argv[2]);
        K = atoi(argv[3]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [Q D BITS]\n", argv[0]);
        return 2;
    }
    if (Q < 1 || D < 1 || K < 1) {
        fprintf(stderr, "bench_eval: Q, D and BITS must be positive\n");
        return 2;
    }
    const int B = (K + 7) / 8, R = 8 * B;
    uint64_t s = 2021;
    uint8_t *qc = malloc((size_t)Q * B), *dc = malloc((size_t)D * B);     /* [Q,B], [D,B] */
    uint8_t *ql = malloc((size_t)Q * C), *dl = malloc((size_t)D * C);     /* [Q,C], [D,C] */
    bench_fill(qc, ql, Q, B, C, &s);
    bench_fill(dc, dl, D, B, C, &s);
    if (K % 8) {   /* padding bits zero, as numpy.packbits leaves them */
        uint8_t mask = (uint8_t)(0xFF << (8 - K % 8));
        for (int i = 0; i < Q; i++) qc[(size_t)i * B + B - 1] &= mask;
        for (int i = 0; i < D; i++) dc[(size_t)i * B + B - 1] &= mask;
    }
    int n_at = hamming_rank_grid(NULL, D, 100);
    int32_t *at = malloc((size_t)n_at * sizeof *at);                        /* [n_at] */
    hamming_rank_grid(at, D, 100);
    double *ap = malloc((size_t)Q * sizeof *ap);                            /* [Q] */
    double *best = malloc((size_t)Q * sizeof *best), *worst = malloc((size_t)Q * sizeof *worst);
    int32_t *hits = malloc((size_t)Q * sizeof *hits), *rel = malloc((size_t)Q * sizeof *rel);
    int32_t *hits_at = malloc((size_t)Q * n_at * sizeof *hits_at);         /* [Q, n_at] */
    int32_t *ret_r = malloc((size_t)Q * (R + 1) * sizeof *ret_r);          /* [Q, R+1] */
    int32_t *rel_r = malloc((size_t)Q * (R + 1) * sizeof *rel_r);          /* [Q, R+1] */

    printf("bench_eval: %d queries x %d database codes of %d bits, %d classes, %d threads\n",
           Q, D, K, C, omp_get_max_threads());
    double t0 = bench_now(), c0 = bench_cpu();
    hamming_eval_cpu(ap, hits, rel, NULL, NULL, NULL, NULL, NULL, qc, dc, ql, dl, NULL, 0, Q, D,
                     B, C, topk, NULL);
    double t1 = bench_now(), c1 = bench_cpu();
    double map = hamming_mean_ap(ap, hits, Q, 0, NULL);
    printf("MAP@%d only:  %.3f s  %8.0f queries/s  cpu %.2f s  (MAP@%d of random codes %.4f)\n",
           topk, t1 - t0, Q / (t1 - t0), c1 - c0, topk, map);
    t0 = bench_now();
    c0 = bench_cpu();
    hamming_eval_cpu(ap, hits, rel, best, worst, hits_at, ret_r, rel_r, qc, dc, ql, dl, at, n_at, Q,
                     D, B, C, topk, NULL);
    t1 = bench_now();
    c1 = bench_cpu();
    printf("full metrics: %.3f s  %8.0f queries/s  cpu %.2f s  (tie bounds, P@N/R@N at %d ranks, "
           "radius 0..%d)\n", t1 - t0, Q / (t1 - t0), c1 - c0, n_at, R);
    free(qc); free(dc); free(ql); free(dl); free(at); free(ap); free(best); free(worst);
    free(hits); free(rel); free(hits_at); free(ret_r); free(rel_r);
    return 0;
}
