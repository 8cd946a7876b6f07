/* checks/test_retrieval.c — the retrieval metrics (kernels/hamming.c), the .npy files
 * (host/npy.c) and `dath eval` on files (host/cmd_eval.c).
 *
 *   1. hamming_eval_cpu against a brute-force reference written plainly here (bit-by-bit
 *      distances, a full stable insertion sort by distance, AP summed down the list) on
 *      random codes with many ties, for several code widths, label widths and K
 *      (including K = all and K larger than the database): AP, hits, P@N, R@N, radius
 *      counts, MAP in both conventions, P@r<=2. Counts must be equal; AP within 1e-12.
 *   2. the tie bounds against every order of the ties (all permutations of a database
 *      of 7 items), and bracketing the stable AP on the random cases;
 *   3. small cases computed by hand (the arithmetic is in the comments);
 *   4. .npy: round trips, numpy's exact header bytes, and bad files;
 *   5. `dath eval`: the printed MAP against the reference, K = all naming, the JSON
 *      object, --curves files, and the mismatch errors naming both files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/hamming.h"
#include "../host/cli.h"
#include "../host/npy.h"
#include "../host/plot.h"
#include "check.h"

static const double AP_ATOL = 1e-12;   /* AP and means: sums of at most a few thousand terms */
static const double PRINT_ATOL = 6e-7; /* values printed by dath eval with %.6f */

/* ---- the brute-force reference ----------------------------------------------------- */

/* Per-query statistics, as hamming_eval's outputs. */
typedef struct ref_stats {
    double ap;
    int hits_k, rel_all;
    int hits_at[16];
    int ret_r[1025], rel_r[1025];
} ref_stats;

static int ref_bit(const uint8_t *code, int j) { return (code[j / 8] >> (7 - j % 8)) & 1; }

static void ref_query(ref_stats *st, const uint8_t *qc, const uint8_t *dc, const uint8_t *ql,
                      const uint8_t *dl, const int32_t *at, int n_at, int D, int B, int C, int T) {
    int *dist = malloc(D * sizeof *dist), *rel = malloc(D * sizeof *rel), *order = malloc(D * sizeof *order);
    for (int i = 0; i < D; i++) {
        dist[i] = 0;
        for (int j = 0; j < 8 * B; j++) dist[i] += ref_bit(qc, j) != ref_bit(dc + (size_t)i * B, j);
        rel[i] = 0;
        for (int c = 0; c < C; c++)
            if (ql[c] && dl[(size_t)i * C + c]) rel[i] = 1;
        order[i] = i;
    }
    /* stable insertion sort by distance: an item moves left only past larger distances */
    for (int i = 1; i < D; i++) {
        int v = order[i], k = i;
        while (k > 0 && dist[order[k - 1]] > dist[v]) { order[k] = order[k - 1]; k--; }
        order[k] = v;
    }
    int cnt = 0;
    double sum = 0;
    for (int pos = 0; pos < T; pos++)
        if (rel[order[pos]]) { cnt++; sum += (double)cnt / (pos + 1); }
    st->hits_k = cnt;
    st->ap = cnt ? sum / cnt : 0;
    st->rel_all = 0;
    for (int i = 0; i < D; i++) st->rel_all += rel[i];
    for (int j = 0; j < n_at; j++) {
        st->hits_at[j] = 0;
        for (int pos = 0; pos < at[j]; pos++) st->hits_at[j] += rel[order[pos]];
    }
    for (int r = 0; r <= 8 * B; r++) {
        st->ret_r[r] = st->rel_r[r] = 0;
        for (int i = 0; i < D; i++)
            if (dist[i] <= r) { st->ret_r[r]++; st->rel_r[r] += rel[i]; }
    }
    free(dist); free(rel); free(order);
}

/* Random codes of K bits packed as numpy.packbits does (padding bits zero). When
 * few is set, only the first 3 bits vary, so distances collide even more. */
static void gen_codes(uint8_t *codes, int n, int K, int few, uint64_t *s) {
    int B = (K + 7) / 8;
    memset(codes, 0, (size_t)n * B);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < K; j++)
            if ((!few || j < 3) && (check_next(s) & 1)) codes[(size_t)i * B + j / 8] |= 0x80 >> (j % 8);
}

/* Random multi-label rows: each label on with probability p; about 10 % of rows empty. */
static void gen_labels(uint8_t *lab, int n, int C, double p, uint64_t *s) {
    for (int i = 0; i < n; i++) {
        int empty = check_unif(s) < 0.1;
        for (int c = 0; c < C; c++) lab[(size_t)i * C + c] = !empty && check_unif(s) < p;
    }
}

/* ---- 1. against the reference -------------------------------------------------------- */

static void check_random_case(int K, int C, double p, int few, int Q, int D, uint64_t seed) {
    const int B = (K + 7) / 8, R = 8 * B;
    uint64_t s = seed;
    uint8_t *qc = malloc((size_t)Q * B), *dc = malloc((size_t)D * B);
    uint8_t *ql = malloc((size_t)Q * C), *dl = malloc((size_t)D * C);
    gen_codes(qc, Q, K, few, &s);
    gen_codes(dc, D, K, few, &s);
    gen_labels(ql, Q, C, p, &s);
    gen_labels(dl, D, C, p, &s);
    int32_t at[] = {1, 3, 10, D / 2, D - 1, D};
    const int n_at = 6;
    const int topks[] = {0, 1, 7, 50, D - 1, D, D + 13};
    ref_stats *ref = malloc((size_t)Q * sizeof *ref);
    double *ap = malloc(Q * sizeof *ap), *best = malloc(Q * sizeof *best), *worst = malloc(Q * sizeof *worst);
    double *ref_ap = malloc(Q * sizeof *ref_ap);
    int32_t *hits = malloc(Q * sizeof *hits), *rel = malloc(Q * sizeof *rel);
    int32_t *hits_at = malloc((size_t)Q * n_at * sizeof *hits_at);
    int32_t *ret_r = malloc((size_t)Q * (R + 1) * sizeof *ret_r), *rel_r = malloc((size_t)Q * (R + 1) * sizeof *rel_r);
    for (size_t t = 0; t < sizeof topks / sizeof topks[0]; t++) {
        const int topk = topks[t], T = topk <= 0 || topk > D ? D : topk;
        hamming_eval_cpu(ap, hits, rel, best, worst, hits_at, ret_r, rel_r, qc, dc, ql, dl, at, n_at,
                         Q, D, B, C, topk, NULL);
        int counts_ok = 1, bracket_ok = 1;
        for (int q = 0; q < Q; q++) {
            ref_query(&ref[q], qc + (size_t)q * B, dc, ql + (size_t)q * C, dl, at, n_at, D, B, C, T);
            ref_ap[q] = ref[q].ap;
            counts_ok &= hits[q] == ref[q].hits_k && rel[q] == ref[q].rel_all;
            for (int j = 0; j < n_at; j++) counts_ok &= hits_at[(size_t)q * n_at + j] == ref[q].hits_at[j];
            for (int r = 0; r <= R; r++)
                counts_ok &= ret_r[(size_t)q * (R + 1) + r] == ref[q].ret_r[r] &&
                             rel_r[(size_t)q * (R + 1) + r] == ref[q].rel_r[r];
            bracket_ok &= worst[q] <= ap[q] + AP_ATOL && ap[q] <= best[q] + AP_ATOL;
        }
        char name[160];
        snprintf(name, sizeof name, "K=%d C=%d D=%d topk=%d: AP@K", K, C, D, topk);
        check_close_d(name, ap, ref_ap, Q, AP_ATOL, 0);
        snprintf(name, sizeof name, "K=%d C=%d D=%d topk=%d: hits, P@N/R@N and radius counts", K, C, D, topk);
        CHECK_TRUE(name, counts_ok);
        snprintf(name, sizeof name, "K=%d C=%d D=%d topk=%d: tie bounds bracket AP", K, C, D, topk);
        CHECK_TRUE(name, bracket_ok);

        /* the means, against plain loops over the reference */
        double m0 = 0, m1 = 0, got[4], want[4];
        int used = 0;
        for (int q = 0; q < Q; q++) {
            m0 += ref[q].ap;
            if (ref[q].hits_k) { m1 += ref[q].ap; used++; }
        }
        got[0] = hamming_mean_ap(ap, hits, Q, 0, NULL);
        got[1] = hamming_mean_ap(ap, hits, Q, 1, NULL);
        want[0] = m0 / Q;
        want[1] = used ? m1 / used : 0;
        double pr[R + 1], rr[R + 1];
        hamming_curve_radius(pr, rr, ret_r, rel_r, rel, Q, R);
        double p2 = 0;
        for (int q = 0; q < Q; q++)
            p2 += ref[q].ret_r[2] ? (double)ref[q].rel_r[2] / ref[q].ret_r[2] : 0;
        got[2] = pr[2];
        want[2] = p2 / Q;
        double pa[6], ra[6];
        hamming_curve_at(pa, ra, hits_at, rel, at, n_at, Q);
        double pn = 0, rn = 0;
        int nr = 0;
        for (int q = 0; q < Q; q++) {
            pn += (double)ref[q].hits_at[3] / at[3];
            if (ref[q].rel_all) { rn += (double)ref[q].hits_at[3] / ref[q].rel_all; nr++; }
        }
        got[3] = pa[3] + ra[3];
        want[3] = pn / Q + (nr ? rn / nr : 0);
        snprintf(name, sizeof name, "K=%d C=%d topk=%d: MAP (0 / skip), P@r<=2, P@N+R@N", K, C, topk);
        check_close_d(name, got, want, 4, AP_ATOL, 0);
    }
    free(qc); free(dc); free(ql); free(dl); free(ref); free(ap); free(best); free(worst);
    free(ref_ap); free(hits); free(rel); free(hits_at); free(ret_r); free(rel_r);
}

/* ---- 2. tie bounds against every order ------------------------------------------------ */

/* AP@T of the ranking `order` (relevance rel). */
static double ap_of(const int *order, const int *rel, int D, int T) {
    int cnt = 0;
    double sum = 0;
    for (int pos = 0; pos < T && pos < D; pos++)
        if (rel[order[pos]]) { cnt++; sum += (double)cnt / (pos + 1); }
    return cnt ? sum / cnt : 0;
}

static void check_tie_bounds_exhaustive(void) {
    enum { D = 7, C = 3, Q = 12 };
    uint64_t s = 99;
    uint8_t qc[Q], dc[D], ql[Q * C], dl[D * C];
    gen_codes(qc, Q, 8, 1, &s);   /* 3 varying bits: distances 0..3, many ties */
    gen_codes(dc, D, 8, 1, &s);
    gen_labels(ql, Q, C, 0.4, &s);
    gen_labels(dl, D, C, 0.4, &s);
    double got_b[Q * D], got_w[Q * D], want_b[Q * D], want_w[Q * D];
    for (int T = 1; T <= D; T++) {
        double ap[Q], best[Q], worst[Q];
        int32_t hits[Q], rel_all[Q];
        hamming_eval_cpu(ap, hits, rel_all, best, worst, NULL, NULL, NULL, qc, dc, ql, dl, NULL, 0, Q,
                         D, 1, C, T, NULL);
        for (int q = 0; q < Q; q++) {
            int dist[D], rel[D], perm[D], c[D] = {0};
            for (int i = 0; i < D; i++) {
                dist[i] = __builtin_popcount(qc[q] ^ dc[i]);
                rel[i] = 0;
                for (int k = 0; k < C; k++) rel[i] |= ql[q * C + k] && dl[i * C + k];
                perm[i] = i;
            }
            /* Heap's algorithm over all D! orders; keep those sorted by distance */
            double bmax = -1, wmin = 2;
            int i = 0;
            for (;;) {
                int sorted = 1;
                for (int k = 1; k < D; k++) sorted &= dist[perm[k - 1]] <= dist[perm[k]];
                if (sorted) {
                    double a = ap_of(perm, rel, D, T);
                    if (a > bmax) bmax = a;
                    if (a < wmin) wmin = a;
                }
                while (i < D && c[i] >= i) c[i++] = 0;
                if (i == D) break;
                int j = i % 2 ? c[i] : 0, t = perm[j];
                perm[j] = perm[i];
                perm[i] = t;
                c[i]++;
                i = 0;
            }
            got_b[(T - 1) * Q + q] = best[q];
            got_w[(T - 1) * Q + q] = worst[q];
            want_b[(T - 1) * Q + q] = bmax;
            want_w[(T - 1) * Q + q] = wmin;
        }
    }
    check_close_d("tie bounds: best AP = max over all tie orders (D=7, every K)", got_b, want_b, Q * D, AP_ATOL, 0);
    check_close_d("tie bounds: worst AP = min over all tie orders (D=7, every K)", got_w, want_w, Q * D, AP_ATOL, 0);
}

/* ---- 3. by hand -------------------------------------------------------------------------- */

static void check_hand_cases(void) {
    /* 8-bit codes, 2 classes. Database (index: code, distance to 0x00, labels):
     *   0: 0x03 d=2 {0}     1: 0x00 d=0 {1}     2: 0x01 d=1 {0,1}
     *   3: 0x00 d=0 {}      4: 0xFF d=8 {0}
     * Stable ranking by distance: 1, 3 (d=0, database order), 2 (d=1), 0 (d=2), 4 (d=8).
     * Query a: 0x00 {0}: relevant 0, 2, 4 (3 has no label: never relevant).
     *   ranked relevance 0 0 1 1 1: AP@all = (1/3 + 2/4 + 3/5)/3 = (10+15+18)/30/3 = 43/90
     *   AP@3 = (1/3)/1 = 1/3; AP@2 = 0 (no hit).
     * Query b: 0x00 {1}: relevant 1, 2.  ranked relevance 1 0 1 0 0:
     *   AP@all = (1/1 + 2/3)/2 = 5/6. Tie orders: bucket d=0 holds 1 (rel) and 3; worst
     *   puts 3 first: 0 1 1 0 0 → (1/2 + 2/3)/2 = 7/12; best = the stable order = 5/6.
     *   AP@1 = 1; worst AP@1: 3 first, no hit in the top 1 → 0.
 * AP@2: a 0 (no hit), b (1/1)/1 = 1, c 0.
     * Query c: 0x00 {} (no label): nothing relevant, AP 0, rel_all 0.
     * MAP@all, zero-hit queries 0: (43/90 + 5/6 + 0)/3 = (43 + 75)/90/3 = 59/135
     * MAP@all, skipping them:      (43/90 + 75/90)/2 = 59/90
     * P@r<=2 (items 1,3,2,0 within radius 2): a 2/4, b 2/4, c 0/4 → (1/2+1/2+0)/3 = 1/3
     * P@4: a 2/4, b 2/4, c 0 → 1/3. R@4: a 2/3, b 2/2, c left out → (2/3 + 1)/2 = 5/6 */
    const uint8_t dc[5] = {0x03, 0x00, 0x01, 0x00, 0xFF}, qc[3] = {0, 0, 0};
    const uint8_t dl[10] = {1, 0, 0, 1, 1, 1, 0, 0, 1, 0}, ql[6] = {1, 0, 0, 1, 0, 0};
    const int32_t at[1] = {4};
    double ap[3], best[3], worst[3], pa[1], ra[1], pr[9], rr[9];
    int32_t hits[3], rel[3], hits_at[3], ret_r[27], rel_r[27];
    hamming_eval_cpu(ap, hits, rel, best, worst, hits_at, ret_r, rel_r, qc, dc, ql, dl, at, 1, 3, 5, 1, 2, 0, NULL);
    hamming_curve_at(pa, ra, hits_at, rel, at, 1, 3);
    hamming_curve_radius(pr, rr, ret_r, rel_r, rel, 3, 8);
    double got[] = {ap[0], ap[1], ap[2], worst[1], best[1], hamming_mean_ap(ap, hits, 3, 0, NULL),
                    hamming_mean_ap(ap, hits, 3, 1, NULL), pr[2], pa[0], ra[0], rel[0], rel[1], rel[2]};
    double want[] = {43.0 / 90, 5.0 / 6, 0, 7.0 / 12, 5.0 / 6, 59.0 / 135, 59.0 / 90, 1.0 / 3,
                     1.0 / 3, 5.0 / 6, 3, 2, 0};
    check_close_d("hand: AP@all, tie bounds, MAP both ways, P@r<=2, P@4, R@4", got, want, 13, AP_ATOL, 0);

    hamming_eval_cpu(ap, hits, rel, best, worst, NULL, NULL, NULL, qc, dc, ql, dl, NULL, 0, 3, 5, 1, 2, 3, NULL);
    /* top 3 = items 1, 3, 2: a 0 0 1 → (1/3)/1 = 1/3; b 1 0 1 → (1/1 + 2/3)/2 = 5/6 */
    double got3[] = {ap[0], ap[1], hits[0], hits[1]}, want3[] = {1.0 / 3, 5.0 / 6, 1, 2};
    check_close_d("hand: AP@3 (a 1/3, b 5/6) and hits (1, 2)", got3, want3, 4, AP_ATOL, 0);
    hamming_eval_cpu(ap, hits, rel, best, worst, NULL, NULL, NULL, qc, dc, ql, dl, NULL, 0, 3, 5, 1, 2, 2, NULL);
    /* AP@2: a has no hit (0), b 1, c 0. MAP@2 = 1/3 counting zero-hit queries, 1 without */
    double got2[] = {ap[0], hamming_mean_ap(ap, hits, 3, 0, NULL), hamming_mean_ap(ap, hits, 3, 1, NULL)};
    double want2[] = {0, 1.0 / 3, 1.0};
    check_close_d("hand: zero-hit query at K=2, MAP@2 both conventions", got2, want2, 3, AP_ATOL, 0);
    hamming_eval_cpu(ap, hits, rel, best, worst, NULL, NULL, NULL, qc, dc, ql, dl, NULL, 0, 3, 5, 1, 2, 1, NULL);
    double got1[] = {ap[1], best[1], worst[1]}, want1[] = {1, 1, 0};
    check_close_d("hand: AP@1 of b, its tie bounds (1, and 0 when the unlabeled item goes first)", got1, want1, 3, AP_ATOL, 0);

    /* Relevant-first is not always the best order: with the normaliser R_K, a relevant
     * item that enters the top K late can lower AP. Query 0x00 {0}, K = 5; database
     *   d=0: 0x00 {0}, 0x00 {1}, 0x00 {1}, 0x00 {1};   d=1: 0x01 {0}, 0x01 {1}
     * stable: 1 0 0 0 1 | 0 → AP@5 = (1/1 + 2/5)/2 = 0.7
     * best: relevant first in d=0, but the irrelevant one first in d=1: 1 0 0 0 0 → 1
     * worst: relevant last in d=0: 0 0 0 1, then in d=1 either 0 → (1/4)/1 = 0.25,
     *   or 1 → (1/4 + 2/5)/2 = 0.325; the smaller: 0.25 */
    const uint8_t dc2[6] = {0, 0, 0, 0, 1, 1}, qc2[1] = {0}, ql2[2] = {1, 0};
    const uint8_t dl2[12] = {1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1};
    hamming_eval_cpu(ap, hits, rel, best, worst, NULL, NULL, NULL, qc2, dc2, ql2, dl2, NULL, 0, 1, 6, 1, 2, 5, NULL);
    double g4[] = {ap[0], best[0], worst[0]}, w4[] = {0.7, 1.0, 0.25};
    check_close_d("hand: tie bounds where the cut splits a bucket (0.7 in [0.25, 1])", g4, w4, 3, AP_ATOL, 0);

    /* wider codes: 100 bits (13 bytes, two 64-bit words) and 70 classes (two words):
     * a query equal to item 1 except bit 99 (the last byte's bit 7 − 3 = 4), and item 0
     * differing in every bit. Only class 69 is shared, with item 0. */
    uint8_t q3[13], d3[26], ql3[70] = {0}, dl3[140] = {0};
    memset(q3, 0, 13);
    memset(d3, 0xFF, 13);
    d3[12] = 0xF0;          /* packbits leaves the 4 padding bits zero */
    memset(d3 + 13, 0, 13);
    d3[13 + 12] = 0x10;     /* bit 99 */
    ql3[69] = 1;
    dl3[69] = 1;
    dl3[70 + 3] = 1;
    int32_t rr3[105], rt3[105];   /* [1, 8·13 + 1] */
    hamming_eval_cpu(ap, hits, rel, best, worst, NULL, rt3, rr3, q3, d3, ql3, dl3, NULL, 0, 1, 2, 13, 70, 0, NULL);
    /* ranking: item 1 (d=1), item 0 (d=100, relevant) → AP@all = (1/2)/1 = 0.5 */
    double g5[] = {ap[0], rt3[0], rt3[1], rt3[99], rt3[100], rr3[100]}, w5[] = {0.5, 0, 1, 1, 2, 1};
    check_close_d("hand: 100-bit codes, 70 classes (multi-word)", g5, w5, 6, 0, 0);
}

/* ---- 4. .npy ----------------------------------------------------------------------------- */

static char tmpdir[] = "/tmp/dath_test_retrieval_XXXXXX";

static void path_in(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tmpdir, name); }

static void write_raw(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static void check_npy(void) {
    char p[512], err[1024];
    uint64_t s = 5;
    const int64_t shapes[][2] = {{0, 5}, {3, 1}, {17, 13}, {1000, 8}};
    for (int k = 0; k < 4; k++) {
        int64_t r = shapes[k][0], c = shapes[k][1], r2 = -1, c2 = -1;
        uint8_t *a = malloc((size_t)(r * c + 1)), *b = NULL;
        for (int64_t i = 0; i < r * c; i++) a[i] = (uint8_t)check_next(&s);
        path_in(p, sizeof p, "rt.npy");
        int ok = npy_write_u8(p, a, r, c, err, sizeof err) == 0 &&
                 npy_read_u8(p, &b, &r2, &c2, err, sizeof err) == 0 && r2 == r && c2 == c &&
                 memcmp(a, b, (size_t)(r * c)) == 0;
        struct stat st;
        ok &= stat(p, &st) == 0 && (st.st_size - r * c) % 64 == 0;
        char name[96];
        snprintf(name, sizeof name, "npy round trip (%lld, %lld), header padded to 64",
                 (long long)r, (long long)c);
        if (!CHECK_TRUE(name, ok)) printf("  %s\n", err);
        free(a);
        free(b);
    }
    /* the exact bytes numpy.save writes for a uint8 (3, 4) array */
    uint8_t a[12] = {0}, *b = NULL;
    path_in(p, sizeof p, "exact.npy");
    npy_write_u8(p, a, 3, 4, err, sizeof err);
    char want[128];
    memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
    const char *dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4), }";
    memset(want + 10, ' ', 118);
    memcpy(want + 10, dict, strlen(dict));
    want[127] = '\n';
    char got[140] = {0};
    FILE *f = fopen(p, "rb");
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    CHECK_TRUE("npy header byte-identical to numpy.save's", n == 140 && memcmp(got, want, 128) == 0);

    /* bad files: each error names the file */
    struct { const char *name, *head; size_t data; const char *expect; } bad[] = {
        {"magic.npy", "NOTNPY", 0, "magic"},
        {"f4.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 16, "dtype"},
        {"1d.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", 4, "dimension"},
        {"fortran.npy", "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2), }", 4, "Fortran"},
        {"short.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 5, "truncated"},
        {"long.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 7, "more data"},
        /* a header promising 20 GB, or 10^18 bytes: refused from the file's size before
         * anything is allocated (it allocated them first, and 10^18 failed as out of memory) */
        {"20gb.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (20000000000, 1), }", 4, "truncated"},
        {"1e18.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000000, 1000), }", 4, "truncated"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char buf[256] = {0};
        size_t len;
        if (bad[k].head[0] == '{') {
            memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
            memset(buf + 10, ' ', 118);
            memcpy(buf + 10, bad[k].head, strlen(bad[k].head));
            buf[127] = '\n';
            len = 128 + bad[k].data;
        } else {
            len = strlen(bad[k].head);
            memcpy(buf, bad[k].head, len);
        }
        path_in(p, sizeof p, bad[k].name);
        write_raw(p, buf, len);
        int64_t r, c;
        err[0] = 0;
        /* 20 GB would be allocated lazily and freed unnoticed: an address-space limit of
         * what the process maps now plus 8 GB makes such an allocation fail (not under ASan,
         * whose shadow needs far more) */
        struct rlimit was;
        int limited = 0;
#ifndef __SANITIZE_ADDRESS__
        FILE *statm = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (statm) {
            if (fscanf(statm, "%lu", &pages) != 1) pages = 0;
            fclose(statm);
        }
        if (!strcmp(bad[k].name, "20gb.npy") && pages && getrlimit(RLIMIT_AS, &was) == 0) {
            struct rlimit lim = was;
            lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)8 << 30);
            if (was.rlim_max == RLIM_INFINITY || was.rlim_max > lim.rlim_cur) limited = setrlimit(RLIMIT_AS, &lim) == 0;
        }
#endif
        int rc = npy_read_u8(p, &b, &r, &c, err, sizeof err);
        if (limited) setrlimit(RLIMIT_AS, &was);
        char name[96];
        snprintf(name, sizeof name, "npy rejects %s, naming the file", bad[k].name);
        if (!CHECK_TRUE(name, rc == -1 && b == NULL && strstr(err, p) && strstr(err, bad[k].expect)))
            printf("  got: %s\n", err);
    }
    path_in(p, sizeof p, "missing.npy");
    int64_t r, c;
    CHECK_TRUE("npy: a missing file is an error naming it",
               npy_read_u8(p, &b, &r, &c, err, sizeof err) == -1 && strstr(err, p));
}

/* ---- 5. dath eval ----------------------------------------------------------------------- */

/* Runs cmd_eval with stdout and stderr captured into out / errs. Returns its status. */
static int run_eval(char *out, size_t out_len, char *errs, size_t err_len, int argc, char **argv) {
    char po[512], pe[512];
    path_in(po, sizeof po, "stdout.txt");
    path_in(pe, sizeof pe, "stderr.txt");
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    int rc = cmd_eval(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    const char *paths[2] = {po, pe};
    char *bufs[2] = {out, errs};
    size_t lens[2] = {out_len, err_len};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "r");
        size_t n = fread(bufs[k], 1, lens[k] - 1, f);
        bufs[k][n] = 0;
        fclose(f);
    }
    return rc;
}

/* The number after `key` in text, or NAN. */
static double value_after(const char *text, const char *key) {
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void check_cli(void) {
    enum { Q = 30, D = 250, K = 16, C = 6 };
    const int B = (K + 7) / 8;
    uint64_t s = 1234;
    uint8_t qc[Q * B], dc[D * B], ql[Q * C], dl[D * C];
    gen_codes(qc, Q, K, 0, &s);
    gen_codes(dc, D, K, 0, &s);
    gen_labels(ql, Q, C, 0.2, &s);
    gen_labels(dl, D, C, 0.2, &s);
    char fq[512], fql[512], fd[512], fdl[512], fbad[512], err[1024];
    path_in(fq, sizeof fq, "q.npy");
    path_in(fql, sizeof fql, "ql.npy");
    path_in(fd, sizeof fd, "d.npy");
    path_in(fdl, sizeof fdl, "dl.npy");
    npy_write_u8(fq, qc, Q, B, err, sizeof err);
    npy_write_u8(fql, ql, Q, C, err, sizeof err);
    npy_write_u8(fd, dc, D, B, err, sizeof err);
    npy_write_u8(fdl, dl, D, C, err, sizeof err);

    /* the reference MAP@20, both conventions, and MAP@all */
    double m20 = 0, m20s = 0, mall = 0;
    int used = 0;
    ref_stats *st = malloc(sizeof *st);
    for (int q = 0; q < Q; q++) {
        ref_query(st, qc + q * B, dc, ql + q * C, dl, NULL, 0, D, B, C, 20);
        m20 += st->ap;
        if (st->hits_k) { m20s += st->ap; used++; }
        ref_query(st, qc + q * B, dc, ql + q * C, dl, NULL, 0, D, B, C, D);
        mall += st->ap;
    }
    free(st);
    m20 /= Q;
    m20s = used ? m20s / used : 0;
    mall /= Q;

    static char out[1 << 16], errs[1 << 16];
    char *a1[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl, "--topk", "20"};
    int rc = run_eval(out, sizeof out, errs, sizeof errs, 11, a1);
    double got[3] = {value_after(out, "MAP@20: ")}, want[3] = {m20};
    CHECK_TRUE("dath eval --topk 20: exit 0, MAP@20 and P@r<=2 lines", rc == 0 && strstr(out, "\nP@r<=2: "));
    char *a2[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl, "--topk", "20", "--skip-empty-queries"};
    rc |= run_eval(out, sizeof out, errs, sizeof errs, 12, a2);
    got[1] = value_after(out, "MAP@20: ");
    want[1] = m20s;
    char *a3[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl, "--topk", "0"};
    rc |= run_eval(out, sizeof out, errs, sizeof errs, 11, a3);
    got[2] = value_after(out, "MAP@all: ");
    want[2] = mall;
    check_close_d("dath eval: MAP@20 (zero / skip), MAP@all as printed", got, want, 3, PRINT_ATOL, 0);
    char *a4[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl, "--topk", "100000", "--json", "--tie-bounds"};
    rc |= run_eval(out, sizeof out, errs, sizeof errs, 13, a4);
    double gj[1] = {value_after(out, "\"map\":")}, wj[1] = {mall};
    check_close_d("dath eval --topk > database --json: \"map\" = MAP@all", gj, wj, 1, 1e-8, 0);
    CHECK_TRUE("dath eval --json: one JSON object, topk \"all\", tie bounds",
               rc == 0 && out[0] == '{' && strstr(out, "\"topk\":\"all\"") && strstr(out, "\"map_best\":") &&
               strchr(out, '\n') == out + strlen(out) - 1);

    /* --curves */
    char cdir[512], cf[600];
    path_in(cdir, sizeof cdir, "curves");
    char *a5[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl, "--curves", cdir};
    rc = run_eval(out, sizeof out, errs, sizeof errs, 11, a5);
    /* P@N grid: 100, 200, then 250 (the end), plus the header */
    snprintf(cf, sizeof cf, "%s/p_r_at_n.csv", cdir);
    int l1 = count_lines(cf);
    snprintf(cf, sizeof cf, "%s/pr_rank.csv", cdir);
    int l2 = count_lines(cf);   /* 1, 2, 5, 10, 20, 50, 100, 200, 250 */
    snprintf(cf, sizeof cf, "%s/pr_radius.csv", cdir);
    int l3 = count_lines(cf);   /* radius 0..16 */
    if (!CHECK_TRUE("dath eval --curves: CSVs with the expected rows", rc == 0 && l1 == 4 && l2 == 10 && l3 == 18))
        printf("  rc %d, lines %d %d %d\n%s", rc, l1, l2, l3, errs);
    if (plot_terminal()) {
        struct stat stt;
        int pngs = 1;
        const char *names[4] = {"p_at_n.png", "r_at_n.png", "pr_rank.png", "pr_radius.png"};
        for (int k = 0; k < 4; k++) {
            snprintf(cf, sizeof cf, "%s/%s", cdir, names[k]);
            pngs &= stat(cf, &stt) == 0 && stt.st_size > 1000;
        }
        CHECK_TRUE("dath eval --curves: four PNG plots (gnuplot present)", pngs);
    } else {
        printf("note: gnuplot not found; the PNG plots are not checked\n");
    }

    /* mismatches: errors naming both files */
    path_in(fbad, sizeof fbad, "bad.npy");
    npy_write_u8(fbad, ql, Q - 1, C, err, sizeof err);
    char *b1[] = {"eval", "--query", fq, "--query-labels", fbad, "--db", fd, "--db-labels", fdl};
    rc = run_eval(out, sizeof out, errs, sizeof errs, 9, b1);
    CHECK_TRUE("dath eval: query codes/labels rows differ → exit 1 naming both files",
               rc == 1 && strstr(errs, fq) && strstr(errs, fbad));
    npy_write_u8(fbad, dc, D / 2, 2 * B, err, sizeof err);   /* same bytes, other width */
    npy_write_u8(fdl, dl, D / 2, C, err, sizeof err);
    char *b2[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fbad, "--db-labels", fdl};
    rc = run_eval(out, sizeof out, errs, sizeof errs, 9, b2);
    CHECK_TRUE("dath eval: code widths differ → exit 1 naming both files",
               rc == 1 && strstr(errs, fq) && strstr(errs, fbad) && strstr(errs, "bits"));
    npy_write_u8(fdl, dl, D / (C + 1), C + 1, err, sizeof err);
    npy_write_u8(fd, dc, D / (C + 1), B, err, sizeof err);
    char *b3[] = {"eval", "--query", fq, "--query-labels", fql, "--db", fd, "--db-labels", fdl};
    rc = run_eval(out, sizeof out, errs, sizeof errs, 9, b3);
    CHECK_TRUE("dath eval: label widths differ → exit 1 naming both files",
               rc == 1 && strstr(errs, fql) && strstr(errs, fdl) && strstr(errs, "classes"));
    uint8_t two[Q * C];
    memcpy(two, ql, sizeof two);
    two[7] = 2;
    npy_write_u8(fbad, two, Q, C, err, sizeof err);
    char *b4[] = {"eval", "--query", fq, "--query-labels", fbad, "--db", fd, "--db-labels", fdl};
    rc = run_eval(out, sizeof out, errs, sizeof errs, 9, b4);
    CHECK_TRUE("dath eval: a label that is not 0/1 → exit 1 naming the file", rc == 1 && strstr(errs, fbad));
    char *b5[] = {"eval", "--query", fq, "--db", fd};
    CHECK_TRUE("dath eval: missing --query-labels → usage error (2)",
               run_eval(out, sizeof out, errs, sizeof errs, 5, b5) == 2);
}

int main(void) {
    if (!mkdtemp(tmpdir)) check_skip("cannot create a temporary directory");
    /* K, C, label density, few varying bits, Q, D */
    check_random_case(8, 5, 0.3, 0, 40, 300, 1);     /* 9 distances: ties everywhere */
    check_random_case(12, 3, 0.3, 1, 25, 200, 2);    /* 3 varying bits, padding bits */
    check_random_case(64, 70, 0.03, 0, 20, 400, 3);  /* two label words */
    check_random_case(100, 80, 0.05, 0, 15, 150, 4); /* two code words */
    check_tie_bounds_exhaustive();
    check_hand_cases();
    check_npy();
    check_cli();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    return check_finish();
}
