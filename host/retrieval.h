/* host/retrieval.h — Hamming ranking and its metrics (DESIGN.md §5) for every command
 * that ranks: `dath eval` (codes from files or from a model), the training loop's
 * periodic MAP, and searches. The ranking runs on a backend (its hamming_eval entry:
 * the CPU reference or the CUDA kernels, the same numbers bit for bit); the means over
 * queries are taken on the host in query order (kernels/hamming.h), so no result
 * depends on the backend or on threads.
 *
 * Ownership: the sides are the caller's host memory, read only; a result's arrays are
 * malloc'd and freed by retrieval_result_free. Functions return 0, or -1 with a
 * message in err. */
#ifndef DATH_RETRIEVAL_H
#define DATH_RETRIEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"
#include "../loader/list.h"

/* One side of a retrieval: n packed codes of B bytes and their C labels (host). */
typedef struct retrieval_side {
    const uint8_t *codes;    /* [n, B] numpy.packbits order */
    const uint8_t *labels;   /* [n, C] 0/1 */
    int n;
} retrieval_side;

/* What to compute. topk 0 (or above the database) means the whole database. at[]
 * (n_at ranks in 1..D, sorted, without repeats; may be NULL with n_at 0) gets P@N and
 * R@N; the radius curve is always computed. */
typedef struct retrieval_request {
    int B, C;                /* bytes per code, classes */
    int topk;
    int skip_empty;          /* MAP over the queries with a relevant item in the top K only */
    int tie_bounds;          /* also the best and worst MAP over orders of equal distances */
    const int32_t *at;
    int n_at;
} retrieval_request;

typedef struct retrieval_result {
    int T;                   /* the K of MAP@K actually used (topk, or D) */
    double map, map_best, map_worst;   /* best/worst: 0 without tie_bounds */
    int queries_in_map;      /* the queries MAP averages over */
    int no_relevant;         /* queries with no relevant item in the whole database */
    double *p_at, *r_at;     /* [n_at] P@N, R@N at N = at[j] */
    double *p_rad, *r_rad;   /* [8·B + 1] precision and recall within radius r */
    double seconds;          /* the ranking's time on the backend */
} retrieval_result;

/* Ranks every query code against the database on `be` (a context of its own, scratch
 * sized by be->hamming_work_bytes) and fills *res. */
int retrieval_evaluate(const dath_backend *be, const retrieval_side *q, const retrieval_side *d,
                       const retrieval_request *rq, retrieval_result *res, char *err, size_t err_len);
void retrieval_result_free(retrieval_result *res);

/* MAP@topk of m on two image lists (DESIGN.md §5; a query with no relevant item in the
 * top K scores 0): both encoded on (be, ctx) in batches of `batch` (encoder.h), then
 * ranked on be. Used by the training loop; `dath eval --model` does the same in steps. */
int retrieval_model_map(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const char *query_list,
                        const char *db_list, const char *root, int batch, int workers, int64_t max_pixels,
                        int topk, double *map, char *err, size_t err_len);

#endif
