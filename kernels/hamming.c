/* kernels/hamming.c — the reference Hamming ranking and retrieval metrics (see
 * hamming.h).
 *
 * Per query, with R = 8·B the largest distance:
 *   1. one pass over the database records (code words, then label mask words):
 *      distance d (XOR + popcount over 64-bit words; the byte order inside a word does
 *      not matter to a popcount of an XOR) and relevance (AND of the label bit masks),
 *      stored as key = 2·d + rel and counted in a histogram of keys, which gives
 *      n[d] (items at distance d) and r[d] (relevant items at distance d);
 *   2. prefix sums give each bucket's first rank position fill[d] and the relevant items
 *      ranked before it; the radius statistics and rel_all come from them directly;
 *   3. a counting sort: a second pass over the database in its order scatters each
 *      item's relevance bit to rank position fill[d]++ (stable: ties keep database
 *      order), stopping at the deepest rank any output needs (hamming_scatter: the
 *      search, hamming_topk_cpu, ranks with the same two steps, 2 and 3);
 *   4. one walk down the ranked relevance bits gives AP@T and hits at every N;
 *   5. the tie bounds come from the histograms alone, with harmonic numbers
 *      Hn[i] = Σ_{j≤i} 1/j: relevant items at 1-based positions o+1..o+h, the j-th of
 *      them with Rb + j relevant items up to it, sum to precisions
 *      Σ_j (Rb + j)/(o + j) = h + (Rb − o)(Hn[o+h] − Hn[o]).
 * So a query costs O(D + R), and threads over queries write disjoint outputs. */
#include "hamming.h"

#include <stdlib.h>
#include <string.h>

/* The database as one array of records [D, CW + LW] 64-bit words: the code (bytes
 * zero-padded to CW words) then the label bit mask (LW words), so that pass 1 streams
 * one array. out [n, CW+LW]; codes [n, B]; lab [n, C]. */
static void hamming_pack(uint64_t *out, const uint8_t *codes, const uint8_t *lab, int n, int B,
                         int C, int CW, int LW) {
    const int S = CW + LW;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        uint64_t *o = out + (size_t)i * S;
        memset(o, 0, (size_t)S * sizeof *o);
        memcpy(o, codes + (size_t)i * B, (size_t)B);
        for (int c = 0; c < C; c++)
            if (lab[(size_t)i * C + c]) o[CW + (c >> 6)] |= 1ull << (c & 63);
    }
}

/* Pass 1 of one query: key[i] = 2·distance + relevance and hist[key]++ for every
 * database record x [D, CW+LW]; q [CW+LW] the query's record. Inlined with constant
 * CW and LW for the common widths, so the word loops unroll. */
static inline __attribute__((always_inline)) void
hamming_keys(uint16_t *key, int32_t *hist, const uint64_t *x, const uint64_t *q, int D, int CW,
             int LW) {
    const int S = CW + LW;
    for (int i = 0; i < D; i++, x += S) {
        int d = 0;
        uint64_t m = 0;
        for (int w = 0; w < CW; w++) d += __builtin_popcountll(q[w] ^ x[w]);
        for (int w = 0; w < LW; w++) m |= q[CW + w] & x[CW + w];
        int k = 2 * d + (m != 0);
        key[i] = (uint16_t)k;
        hist[k]++;
    }
}

/* Step 2, shared by the metrics and the search: fill[d] = the rank position of bucket
 * d's first item (the items nearer than d), from n [R+1] the items at each distance.
 * Returns kmax: only keys (2·d + rel) below it fall in buckets that start before rank
 * `limit`, so step 3 can skip the rest with one compare. */
static inline int hamming_offsets(int32_t *fill, const int32_t *n, int R, int limit) {
    int32_t cum = 0;
    int kmax = 0;
    for (int d = 0; d <= R; d++) {
        fill[d] = cum;
        if (cum < limit) kmax = 2 * d + 2;
        cum += n[d];
    }
    return kmax;
}

/* Step 3, the one ranking (DESIGN.md §5), shared by the metrics and the search: a
 * counting sort by distance that visits the database in its order, so that ties keep
 * database order (stable). Every item i whose rank position pos = fill[d]++ (d =
 * key[i] >> 1) is below `limit` gets rel[pos] = key[i] & 1, row[pos] = i and
 * dist[pos] = d (each output may be NULL). fill [R+1] from hamming_offsets, advanced. */
static inline void hamming_scatter(uint8_t *rel, int32_t *row, int32_t *dist, int32_t *fill,
                                   const uint16_t *key, int D, int kmax, int limit) {
    for (int i = 0; i < D; i++) {
        const int k = key[i], d = k >> 1;
        if (k < kmax && fill[d] < limit) {
            const int pos = fill[d]++;
            if (rel) rel[pos] = (uint8_t)(k & 1);
            if (row) row[pos] = i;
            if (dist) dist[pos] = d;
        }
    }
}

/* The best or worst AP@T of one query over tie orders, from its histograms (see the
 * header). n, r [R+1] bucket sizes and relevant counts; Hn [D+1] harmonic numbers. */
static void hamming_tie_bounds(double *best, double *worst, const int32_t *n, const int32_t *r,
                               int R, int T, const double *Hn) {
    double sb = 0, sw = 0;   /* sums of precisions at relevant positions, best / worst */
    int o = 0, rb = 0;       /* first position of the bucket, relevant items before it */
    for (int d = 0; d <= R && o < T; d++) {
        int nd = n[d], rd = r[d];
        if (o + nd <= T) {   /* wholly inside the top T */
            if (rd) {
                int e = o + nd;
                sb += rd + (double)(rb - o) * (Hn[o + rd] - Hn[o]);
                sw += rd + (double)(rb + rd - e) * (Hn[e] - Hn[e - rd]);
            }
            o += nd;
            rb += rd;
            continue;
        }
        /* the cut at T splits this bucket: m of its nd items are inside, and h of its
         * rd relevant items among them, hmin ≤ h ≤ hmax */
        int m = T - o;
        int hmin = m - (nd - rd) > 0 ? m - (nd - rd) : 0;
        int hmax = rd < m ? rd : m;
        double bmax = -1, wmin = 2;
        for (int h = hmin; h <= hmax; h++) {
            int tot = rb + h;
            double ab = 0, aw = 0;
            if (tot) {
                ab = (sb + h + (double)(rb - o) * (Hn[o + h] - Hn[o])) / tot;
                aw = (sw + h + (double)(rb + h - T) * (Hn[T] - Hn[T - h])) / tot;
            }
            if (ab > bmax) bmax = ab;
            if (aw < wmin) wmin = aw;
        }
        *best = bmax;
        *worst = wmin;
        return;
    }
    /* T falls on a bucket boundary (or is D): the relevant items in the top T are fixed */
    *best = rb ? sb / rb : 0;
    *worst = rb ? sw / rb : 0;
}

void hamming_eval_cpu(double *ap, int32_t *hits_k, int32_t *rel_all, double *ap_best,
                      double *ap_worst, int32_t *hits_at, int32_t *ret_r, int32_t *rel_r,
                      const uint8_t *qcodes, const uint8_t *dcodes, const uint8_t *qlab,
                      const uint8_t *dlab, const int32_t *at, int n_at, int Q, int D, int B,
                      int C, int topk, dath_ctx *ctx) {
    if (Q <= 0) return;
    const int R = 8 * B;                     /* largest distance */
    const int CW = (B + 7) / 8;              /* code words */
    const int LW = C > 0 ? (C + 63) / 64 : 1; /* label words */
    const int T = topk <= 0 || topk > D ? D : topk;

    const int S = CW + LW;
    uint64_t *qx = malloc((size_t)Q * S * sizeof *qx);            /* [Q, S] query records */
    uint64_t *dx = malloc(((size_t)D * S + 1) * sizeof *dx);      /* [D, S] database records */
    int32_t *ord = malloc(((size_t)n_at + 1) * sizeof *ord);      /* [n_at] at, ascending */
    double *Hn = NULL;                                            /* [D+1] */
    hamming_pack(qx, qcodes, qlab, Q, B, C, CW, LW);
    hamming_pack(dx, dcodes, dlab, D, B, C, CW, LW);

    /* the deepest rank position any output needs, and the N in ascending order */
    int limit = T, n_low = 0;
    for (int j = 0; j < n_at; j++) {
        if (at[j] > limit) limit = at[j];
        int k = j;          /* insertion sort: n_at is small (hundreds) */
        while (k > 0 && at[ord[k - 1]] > at[j]) { ord[k] = ord[k - 1]; k--; }
        ord[k] = j;
    }
    if (limit > D) limit = D;
    while (n_low < n_at && at[ord[n_low]] < 1) n_low++;
    if (ap_best || ap_worst) {
        Hn = malloc(((size_t)D + 1) * sizeof *Hn);
        Hn[0] = 0;
        for (int i = 1; i <= D; i++) Hn[i] = Hn[i - 1] + 1.0 / i;
    }

    #pragma omp parallel
    {
        uint16_t *key = malloc(((size_t)D + 1) * sizeof *key);   /* [D] 2·distance + rel */
        uint8_t *ranked = malloc((size_t)limit + 1);              /* [limit] rel by rank */
        int32_t *hist = malloc((size_t)(2 * R + 2) * sizeof *hist); /* [2R+2] per key */
        int32_t *n = malloc((size_t)(R + 1) * sizeof *n);         /* [R+1] bucket sizes */
        int32_t *r = malloc((size_t)(R + 1) * sizeof *r);         /* [R+1] relevant per bucket */
        int32_t *fill = malloc((size_t)(R + 1) * sizeof *fill);   /* [R+1] next position */

        #pragma omp for schedule(dynamic, 4)
        for (int q = 0; q < Q; q++) {
            const uint64_t *qw = qx + (size_t)q * S;
            memset(hist, 0, (size_t)(2 * R + 2) * sizeof *hist);

            /* 1. distances and relevance */
            if (CW == 1 && LW == 1) hamming_keys(key, hist, dx, qw, D, 1, 1);
            else if (CW == 1 && LW == 2) hamming_keys(key, hist, dx, qw, D, 1, 2);
            else if (CW == 2 && LW == 1) hamming_keys(key, hist, dx, qw, D, 2, 1);
            else if (CW == 2 && LW == 2) hamming_keys(key, hist, dx, qw, D, 2, 2);
            else hamming_keys(key, hist, dx, qw, D, CW, LW);
            for (int d = 0; d <= R; d++) {
                n[d] = hist[2 * d] + hist[2 * d + 1];
                r[d] = hist[2 * d + 1];
            }

            /* 2. bucket offsets; radius statistics */
            const int kmax = hamming_offsets(fill, n, R, limit);
            int32_t cum_r = 0;
            for (int d = 0; d <= R; d++) {
                cum_r += r[d];
                if (ret_r) ret_r[(size_t)q * (R + 1) + d] = fill[d] + n[d];
                if (rel_r) rel_r[(size_t)q * (R + 1) + d] = cum_r;
            }
            rel_all[q] = cum_r;

            /* 3. counting sort of the relevance bits, down to rank `limit` */
            hamming_scatter(ranked, NULL, NULL, fill, key, D, kmax, limit);

            /* 4. AP@T and hits at every N */
            int32_t *hq = hits_at ? hits_at + (size_t)q * n_at : NULL;
            for (int k = 0; k < n_low; k++) hq[ord[k]] = 0;
            int k = n_low, cnt = 0, hitsT = 0;
            double sum = 0;
            for (int pos = 0; pos < limit; pos++) {
                if (ranked[pos]) {
                    cnt++;
                    if (pos < T) sum += (double)cnt / (pos + 1);
                }
                if (pos + 1 == T) hitsT = cnt;
                while (k < n_at && at[ord[k]] == pos + 1) hq[ord[k++]] = cnt;
            }
            while (k < n_at) hq[ord[k++]] = cnt;   /* N beyond D: everything */
            hits_k[q] = hitsT;
            ap[q] = hitsT ? sum / hitsT : 0;

            /* 5. tie bounds */
            if (ap_best || ap_worst) {
                double b, w;
                hamming_tie_bounds(&b, &w, n, r, R, T, Hn);
                if (ap_best) ap_best[q] = b;
                if (ap_worst) ap_worst[q] = w;
            }
        }
        free(key);
        free(ranked);
        free(hist);
        free(n);
        free(r);
        free(fill);
    }
    free(qx);
    free(dx);
    free(ord);
    free(Hn);
}

/* Pass 1 of the search, on the codes as they lie (a mapped file: no alignment, no
 * copy): key[i] = 2·distance (no relevance) and hist[key]++. q [CW] the query's code
 * words, zero-padded. Whole 8-byte words are loaded with memcpy (one unaligned load),
 * the last partial word byte by byte. */
static void hamming_keys_raw(uint16_t *key, int32_t *hist, const uint8_t *dcodes, const uint64_t *q, int D,
                             int B) {
    const int full = B / 8, tail = B % 8;
    uint64_t qt = full < (B + 7) / 8 ? q[full] : 0;
    for (int i = 0; i < D; i++) {
        const uint8_t *x = dcodes + (size_t)i * B;
        int d = 0;
        for (int w = 0; w < full; w++) {
            uint64_t v;
            memcpy(&v, x + 8 * w, 8);
            d += __builtin_popcountll(q[w] ^ v);
        }
        if (tail) {
            uint64_t v = 0;
            memcpy(&v, x + 8 * full, (size_t)tail);
            d += __builtin_popcountll(qt ^ v);
        }
        key[i] = (uint16_t)(2 * d);
        hist[2 * d]++;
    }
}

void hamming_topk_cpu(int32_t *row, int32_t *dist, const uint8_t *qcodes, const uint8_t *dcodes, int Q, int D,
                      int B, int k) {
    if (Q <= 0 || k <= 0) return;
    const int R = 8 * B, CW = (B + 7) / 8;
    const int limit = k < D ? k : D;
    #pragma omp parallel if (Q > 1)
    {
        uint16_t *key = malloc(((size_t)D + 1) * sizeof *key);     /* [D] 2·distance */
        int32_t *hist = malloc((size_t)(2 * R + 2) * sizeof *hist); /* [2R+2] per key */
        int32_t *n = malloc((size_t)(R + 1) * sizeof *n);           /* [R+1] bucket sizes */
        int32_t *fill = malloc((size_t)(R + 1) * sizeof *fill);     /* [R+1] next position */
        uint64_t *qw = calloc((size_t)CW, sizeof *qw);              /* [CW] the query's words */
        #pragma omp for schedule(dynamic, 1)
        for (int q = 0; q < Q; q++) {
            memset(qw, 0, (size_t)CW * sizeof *qw);
            memcpy(qw, qcodes + (size_t)q * B, (size_t)B);
            memset(hist, 0, (size_t)(2 * R + 2) * sizeof *hist);
            hamming_keys_raw(key, hist, dcodes, qw, D, B);
            for (int d = 0; d <= R; d++) n[d] = hist[2 * d] + hist[2 * d + 1];
            const int kmax = hamming_offsets(fill, n, R, limit);
            hamming_scatter(NULL, row + (size_t)q * k, dist + (size_t)q * k, fill, key, D, kmax, limit);
            for (int i = limit; i < k; i++) row[(size_t)q * k + i] = dist[(size_t)q * k + i] = -1;
        }
        free(key);
        free(hist);
        free(n);
        free(fill);
        free(qw);
    }
}

double hamming_mean_ap(const double *ap, const int32_t *hits_k, int Q, int skip_empty,
                       int *n_used) {
    double sum = 0;
    int used = 0;
    for (int q = 0; q < Q; q++) {
        if (skip_empty && hits_k[q] == 0) continue;
        sum += ap[q];
        used++;
    }
    if (n_used) *n_used = used;
    return used ? sum / used : 0;
}

void hamming_curve_at(double *p, double *r, const int32_t *hits_at, const int32_t *rel_all,
                      const int32_t *at, int n_at, int Q) {
    for (int j = 0; j < n_at; j++) {
        double sp = 0, sr = 0;
        int nr = 0;
        for (int q = 0; q < Q; q++) {
            double h = hits_at[(size_t)q * n_at + j];
            sp += at[j] > 0 ? h / at[j] : 0;
            if (rel_all[q] > 0) { sr += h / rel_all[q]; nr++; }
        }
        p[j] = Q ? sp / Q : 0;
        r[j] = nr ? sr / nr : 0;
    }
}

void hamming_curve_radius(double *p, double *rec, const int32_t *ret_r, const int32_t *rel_r,
                          const int32_t *rel_all, int Q, int R) {
    for (int d = 0; d <= R; d++) {
        double sp = 0, sr = 0;
        int nr = 0;
        for (int q = 0; q < Q; q++) {
            int32_t ret = ret_r[(size_t)q * (R + 1) + d], rel = rel_r[(size_t)q * (R + 1) + d];
            if (ret > 0) sp += (double)rel / ret;
            if (rel_all[q] > 0) { sr += (double)rel / rel_all[q]; nr++; }
        }
        p[d] = Q ? sp / Q : 0;
        rec[d] = nr ? sr / nr : 0;
    }
}

int hamming_rank_grid(int32_t *at, int D, int step) {
    int n = 0;
    if (step > 0)
        for (int N = step; N < D; N += step) {
            if (at) at[n] = N;
            n++;
        }
    if (D > 0) {
        if (at) at[n] = D;
        n++;
    }
    return n;
}
