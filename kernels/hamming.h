/* kernels/hamming.h — Hamming ranking and the retrieval metrics (DESIGN.md §5).
 *
 * Inputs, in backend memory:
 *   qcodes [Q, B], dcodes [D, B]  packed codes, B = bytes per code (1..4095), as numpy.packbits
 *                                 packs them (bit j of the code is bit 7 − j%8 of byte
 *                                 j/8). Distances count differing bits over all 8·B
 *                                 bits, so padding bits must be equal (zero) on both
 *                                 sides, as packbits leaves them.
 *   qlab [Q, C], dlab [D, C]      0/1 labels (any non-zero byte counts as 1).
 *
 * Ranking: database items by increasing Hamming distance to the query, ties in
 * database order (a stable sort). Relevant: shares at least one label with the query;
 * an item or query with no label is never relevant.
 *
 * hamming_eval computes per-query statistics only; the means over queries are taken
 * by the hamming_mean_* / hamming_curve_* helpers below on the host, in query order,
 * so the result does not depend on threads or on the backend. With T = topk (0 or
 * larger than D means D), for each query q:
 *   ap[q]       AP@T = (1/R_T) Σ_{i≤T, rel_i} P@i, R_T the relevant items in the top
 *               T; 0 when R_T = 0.
 *   hits_k[q]   R_T.
 *   rel_all[q]  relevant items in the whole database.
 *   ap_best[q], ap_worst[q]  (may be NULL) the largest and smallest AP@T that any
 *               order of the items within each distance bucket gives. In every bucket
 *               wholly inside the top T the relevant items go first (best) or last
 *               (worst); in the bucket that the cut at T splits, the number of its
 *               relevant items that fall inside the top T is chosen to maximise
 *               (minimise) AP, because the normaliser R_T moves with it.
 *   hits_at[q, j]  (n_at may be 0, then NULL) relevant items in the top at[j]
 *               (stable order); at[j] in 1..D, any order.
 *   ret_r[q, r], rel_r[q, r]  (may be NULL) items, and relevant items, within Hamming
 *               radius r (distance ≤ r), r = 0..8·B.
 * All outputs are assigned (=), none accumulate. */
#ifndef DATH_HAMMING_H
#define DATH_HAMMING_H

#include "common.h"

typedef void hamming_eval_fn(double *ap, int32_t *hits_k, int32_t *rel_all, double *ap_best,
                             double *ap_worst, int32_t *hits_at, int32_t *ret_r,
                             int32_t *rel_r, const uint8_t *qcodes, const uint8_t *dcodes,
                             const uint8_t *qlab, const uint8_t *dlab, const int32_t *at,
                             int n_at, int Q, int D, int B, int C, int topk, dath_ctx *ctx);

/* The reference: OpenMP threads over queries; counting sort by distance, O(D + 8·B)
 * per query; host memory. */
hamming_eval_fn hamming_eval_cpu;
#ifdef DATH_CUDA
/* The CUDA version (kernels/hamming.cu): device memory, the same outputs bit for bit.
 * It reads at[] back to the host (synchronously) and needs ctx->work scratch of at
 * least hamming_cuda_work_bytes(1, …); more lets more queries run at once. */
hamming_eval_fn hamming_eval_cuda;
/* Scratch bytes for ranking `queries` queries at once against D codes of B bytes with
 * C classes, down to rank `depth` (the largest of T and the at[]; clamped to D), with
 * or without tie bounds. */
size_t hamming_cuda_work_bytes(int queries, int D, int B, int C, int depth, int tie_bounds);
#endif

/* The ranking itself, for searches: row[q, i] and dist[q, i] (i < k) the database row
 * and the distance of query q's i-th item in the order above (ties in database order),
 * computed by the reference's own steps (its counting sort), so that the items equal
 * the order hamming_eval ranks. k may exceed D: the entries past D are −1. Host memory
 * only (not a backend op: a search ranks one or a few queries, where the upload of the
 * database would cost more than the ranking); dcodes is read in place, row by row, with
 * no alignment needed (a memory-mapped .npy file). OpenMP threads over queries.
 * row, dist [Q, k]. */
void hamming_topk_cpu(int32_t *row, int32_t *dist, const uint8_t *qcodes, const uint8_t *dcodes, int Q, int D,
                      int B, int k);

/* ---- means over queries (host memory, summed in query order) ---------------------- */

/* MAP: the mean of ap[0..Q-1]. skip_empty 0: every query counts (a query with
 * hits_k = 0 scores 0, DeepHash-pytorch's convention); 1: queries with hits_k = 0
 * are left out (HashNet's). *n_used (may be NULL) receives the number of queries in
 * the mean. Returns 0 when no query is used. */
double hamming_mean_ap(const double *ap, const int32_t *hits_k, int Q, int skip_empty,
                       int *n_used);

/* P@N and R@N at N = at[j]: p[j] = mean over all queries of hits_at/N (a query
 * with no relevant item scores 0); r[j] = mean over the queries with rel_all > 0 of
 * hits_at/rel_all (recall is undefined for the others; 0 when there are none).
 * p, r [n_at]. */
void hamming_curve_at(double *p, double *r, const int32_t *hits_at, const int32_t *rel_all,
                      const int32_t *at, int n_at, int Q);

/* Precision and recall within Hamming radius r = 0..R (R = 8·B): p[r] = mean over
 * all queries of rel_r/ret_r (0 for a query with nothing within r); rec[r] = mean
 * over the queries with rel_all > 0 of rel_r/rel_all. p, rec [R+1]. P@r<=2 = p[2]. */
void hamming_curve_radius(double *p, double *rec, const int32_t *ret_r, const int32_t *rel_r,
                          const int32_t *rel_all, int Q, int R);

/* The rank grid of the curves: N = step, 2·step, … below D, then D. Returns the
 * count and fills at (NULL: count only). */
int hamming_rank_grid(int32_t *at, int D, int step);

#endif
