/* host/cmd_eval.c — `dath eval`: Hamming ranking of database codes for every query
 * code, MAP@K, P@N, R@N, precision within Hamming radius 2, tie bounds, PR curves and
 * their plots (DESIGN.md §5). Codes and labels come from .npy files, or from a model
 * that encodes two image lists first (encoder_encode_list); the ranking and the metrics
 * are host/retrieval.h's, as for the training loop's MAP.
 *
 * Output on stdout, one result a line (or, with --json, one JSON object instead):
 *   MAP@<K>: v          K = all when --topk is 0 or larger than the database
 *   P@r<=2: v
 *   P@<K>: v, R@<K>: v
 *   tie bounds of MAP@<K>: worst v, best v     (--tie-bounds)
 * Sizes, timings and notes go to stderr, with the device that ranked the codes:
 * --device auto (a GPU when the binary has CUDA and one is visible, else the CPU),
 * cpu or cuda; with --model the same device encodes the images. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../kernels/hamming.h"
#include "../kernels/rng.h"
#include "../loader/list.h"
#include "backend.h"
#include "cli.h"
#include "encoder.h"
#include "net.h"
#include "model.h"
#include "npy.h"
#include "opts.h"
#include "plot.h"
#include "retrieval.h"
#include "clock.h"

#define EVAL_CURVE_STEP 100   /* P@N / R@N every 100 ranks, as the papers plot them */

/* Codes and labels of both sides, host memory, owned. */
typedef struct eval_data {
    uint8_t *qc, *dc;        /* [Q, B], [D, B] packed codes */
    uint8_t *ql, *dl;        /* [Q, C], [D, C] 0/1 labels */
    int Q, D, B, C;
    int bits;                /* K when known (a model), else 8·B (a .npy does not record K) */
} eval_data;

static void eval_data_free(eval_data *e) {
    free(e->qc);
    free(e->dc);
    free(e->ql);
    free(e->dl);
}

/* Every byte of lab [n, C] is 0 or 1; else an error naming the file, row and column. */
static int eval_check_labels(const uint8_t *lab, int64_t n, int64_t C, const char *file,
                             char *err, size_t err_len) {
    for (int64_t i = 0; i < n * C; i++)
        if (lab[i] > 1) {
            snprintf(err, err_len, "%s: row %lld, column %lld holds %d; labels must be 0 or 1",
                     file, (long long)(i / C), (long long)(i % C), lab[i]);
            return -1;
        }
    return 0;
}

/* Reads the four .npy files and checks that they fit together. */
static int eval_load_files(eval_data *e, const char *qc, const char *ql, const char *dc,
                           const char *dl, char *err, size_t err_len) {
    int64_t r[4], c[4];
    uint8_t **dst[4] = {&e->qc, &e->ql, &e->dc, &e->dl};
    const char *files[4] = {qc, ql, dc, dl};
    for (int i = 0; i < 4; i++)
        if (npy_read_u8(files[i], dst[i], &r[i], &c[i], err, err_len)) return -1;
    for (int s = 0; s < 4; s += 2) {
        const char *side = s ? "--db" : "--query";
        if (r[s] != r[s + 1]) {
            snprintf(err, err_len, "%s %s has %lld rows but %s-labels %s has %lld; codes and "
                     "labels must match row for row", side, files[s], (long long)r[s], side,
                     files[s + 1], (long long)r[s + 1]);
            return -1;
        }
        if (r[s] == 0 || r[s] > 2000000000) {
            snprintf(err, err_len, "%s %s has %lld rows (need 1 to 2e9)", side, files[s],
                     (long long)r[s]);
            return -1;
        }
    }
    if (c[0] != c[2] || c[0] == 0) {
        snprintf(err, err_len, "--query %s has %lld bytes per code (%lld bits) but --db %s has "
                 "%lld (%lld bits); both sides need codes of the same width", qc,
                 (long long)c[0], (long long)c[0] * 8, dc, (long long)c[2], (long long)c[2] * 8);
        return -1;
    }
    if (c[1] != c[3] || c[1] == 0) {
        snprintf(err, err_len, "--query-labels %s has %lld classes but --db-labels %s has %lld; "
                 "both sides need the same classes", ql, (long long)c[1], dl, (long long)c[3]);
        return -1;
    }
    if (c[0] > 4095 || c[1] > 1000000) {
        snprintf(err, err_len, "%s: %lld bytes per code or %s: %lld classes is too many", qc,
                 (long long)c[0], ql, (long long)c[1]);
        return -1;
    }
    e->Q = (int)r[0];
    e->D = (int)r[2];
    e->B = (int)c[0];
    e->C = (int)c[1];
    e->bits = 8 * e->B;
    if (eval_check_labels(e->ql, r[1], c[1], ql, err, err_len)) return -1;
    return eval_check_labels(e->dl, r[3], c[3], dl, err, err_len);
}

/* Encodes one list with the model: codes of the images that decode, and their labels. */
static int eval_encode_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l,
                            int batch, int workers, int64_t max_pixels, uint8_t **codes, uint8_t **lab, int *n,
                            char *err, size_t err_len) {
    int *kept = NULL;
    if (encoder_encode_list(be, ctx, m, l, batch, workers, max_pixels, 1, codes, &kept, n, err, err_len)) return -1;
    *lab = list_rows_labels(l, kept, *n);
    free(kept);
    if (!*lab) {
        snprintf(err, err_len, "%s: out of memory", l->file);
        return -1;
    }
    if (*n == 0) {
        snprintf(err, err_len, "%s: no image could be read", l->file);
        return -1;
    }
    return 0;
}

/* Encodes both lists with the model in model_path. */
static int eval_load_model(eval_data *e, const char *model_path, const char *qlist,
                           const char *dlist, const char *root, int batch, int workers, int64_t max_pixels,
                           const char *device, int precision, int conv, char *err, size_t err_len) {
    dath_model *m = NULL;
    dath_list *q = NULL, *d = NULL;
    const dath_backend *be = NULL;
    dath_ctx ctx;
    int rc = -1;
    if (!(m = model_load(model_path, err, err_len))) goto out;
    if (!(q = list_read(qlist, root, err, err_len))) goto out;
    if (!(d = list_read(dlist, root, err, err_len))) goto out;
    if (q->C != d->C) {
        snprintf(err, err_len, "--query-list %s has %d labels a line but --db-list %s has %d",
                 qlist, q->C, dlist, d->C);
        goto out;
    }
    if (!(be = backend_choose(device, err, err_len))) goto out;
    if (be->ctx_init(&ctx, encoder_work_bytes(m, batch), precision, err, err_len)) { be = NULL; goto out; }
    ctx.conv_algo = conv;
    fprintf(stderr, "dath eval: encoding %s (%d images) and %s (%d images) with %s, %d bits, on %s, %s\n",
            qlist, q->n, dlist, d->n, variant_name(m->variant), m->K, be->device, backend_precisions[precision]);
    if (eval_encode_list(be, &ctx, m, q, batch, workers, max_pixels, &e->qc, &e->ql, &e->Q, err, err_len)) goto out;
    if (eval_encode_list(be, &ctx, m, d, batch, workers, max_pixels, &e->dc, &e->dl, &e->D, err, err_len)) goto out;
    e->B = (m->K + 7) / 8;
    e->C = q->C;
    e->bits = m->K;
    rc = 0;
out:
    if (be) be->ctx_free(&ctx);
    if (q) list_free(q);
    if (d) list_free(d);
    if (m) model_free(m);
    return rc;
}

/* The rank positions the curves use: every EVAL_CURVE_STEP up to D and D itself (the
 * P@N/R@N grid), a few early ranks for the start of the PR curve, and T. Sorted,
 * without duplicates. Returns the count; *at is malloc'd. */
static int eval_positions(int32_t **at, int D, int T, int curves) {
    static const int early[] = {1, 2, 5, 10, 20, 50};
    int ng = curves ? hamming_rank_grid(NULL, D, EVAL_CURVE_STEP) : 0;
    int32_t *a = malloc(((size_t)ng + 8) * sizeof *a);
    int n = 0;
    if (curves) {
        for (int i = 0; i < 6; i++)
            if (early[i] < D) a[n++] = early[i];
        n += hamming_rank_grid(a + n, D, EVAL_CURVE_STEP);
    }
    a[n++] = T;
    for (int i = 1; i < n; i++)   /* insertion sort, then drop repeats */
        for (int k = i; k > 0 && a[k - 1] > a[k]; k--) { int32_t t = a[k]; a[k] = a[k - 1]; a[k - 1] = t; }
    int u = 0;
    for (int i = 0; i < n; i++)
        if (!u || a[u - 1] != a[i]) a[u++] = a[i];
    *at = a;
    return u;
}

/* The curves as CSV files in dir, and their plots. Returns 0, or -1 with a message. */
static int eval_write_curves(const char *dir, const int32_t *at, const double *p_at,
                             const double *r_at, int n_at, const double *p_rad,
                             const double *r_rad, int bits, int D, char *err, size_t err_len) {
    if (mkdir(dir, 0777) && errno != EEXIST) {
        snprintf(err, err_len, "--curves %s: cannot create the directory: %s", dir, strerror(errno));
        return -1;
    }
    static const char *names[3] = {"p_r_at_n.csv", "pr_rank.csv", "pr_radius.csv"};
    for (int k = 0; k < 3; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = fopen(path, "w");
        if (!f) {
            snprintf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
            return -1;
        }
        if (k == 0) {
            fprintf(f, "N,precision,recall\n");
            for (int j = 0; j < n_at; j++)
                if (at[j] % EVAL_CURVE_STEP == 0 || at[j] == D)
                    fprintf(f, "%d,%.9g,%.9g\n", at[j], p_at[j], r_at[j]);
        } else if (k == 1) {
            fprintf(f, "N,recall,precision\n");
            for (int j = 0; j < n_at; j++) fprintf(f, "%d,%.9g,%.9g\n", at[j], r_at[j], p_at[j]);
        } else {
            fprintf(f, "radius,recall,precision\n");
            for (int d = 0; d <= bits; d++) fprintf(f, "%d,%.9g,%.9g\n", d, r_rad[d], p_rad[d]);
        }
        if (fclose(f)) {
            snprintf(err, err_len, "%s: write failed: %s", path, strerror(errno));
            return -1;
        }
    }
    const plot_series s_p = {"p_r_at_n.csv", 1, 2, "P@N"}, s_r = {"p_r_at_n.csv", 1, 3, "R@N"},
                      s_rank = {"pr_rank.csv", 2, 3, "by rank position"},
                      s_rad = {"pr_radius.csv", 2, 3, "by Hamming radius"};
    struct { const char *png, *title, *x, *y; const plot_series *s; } plots[4] = {
        {"p_at_n.png", "Precision of the top N", "N (retrieved items)", "precision", &s_p},
        {"r_at_n.png", "Recall of the top N", "N (retrieved items)", "recall", &s_r},
        {"pr_rank.png", "Precision-recall by rank position", "recall", "precision", &s_rank},
        {"pr_radius.png", "Precision-recall by Hamming radius", "recall", "precision", &s_rad},
    };
    for (int k = 0; k < 4; k++) {
        int rc = plot_png(dir, plots[k].png, plots[k].title, plots[k].x, plots[k].y, plots[k].s, 1,
                          0, 1, err, err_len);
        if (rc < 0) return -1;
        if (rc > 0) {
            fprintf(stderr, "dath eval: gnuplot not found (Debian: apt-get install gnuplot-nox): "
                    "plots skipped; the CSVs are in %s\n", dir);
            return 0;
        }
    }
    fprintf(stderr, "dath eval: curves in %s: p_r_at_n.csv, pr_rank.csv, pr_radius.csv and "
            "p_at_n.png, r_at_n.png, pr_rank.png, pr_radius.png (gnuplot %s)\n", dir,
            plot_terminal());
    return 0;
}

/* Ranks on `device`, computes the metrics, prints them and writes the curves. */
static int eval_report(const eval_data *e, int topk, int skip_empty, int tie_bounds,
                       const char *curves, int json, const char *device) {
    const int Q = e->Q, D = e->D;
    const int T = topk <= 0 || topk > D ? D : topk;
    char kname[16];
    if (topk <= 0 || topk > D) snprintf(kname, sizeof kname, "all");
    else snprintf(kname, sizeof kname, "%d", T);

    int32_t *at;
    int n_at = eval_positions(&at, D, T, curves != NULL);
    char err[4096 + 256];
    const dath_backend *be = backend_choose(device, err, sizeof err);
    const retrieval_side q = {e->qc, e->ql, Q}, d = {e->dc, e->dl, D};
    const retrieval_request rq = {.B = e->B, .C = e->C, .topk = topk, .skip_empty = skip_empty,
                                  .tie_bounds = tie_bounds, .at = at, .n_at = n_at};
    retrieval_result res;
    if (!be || retrieval_evaluate(be, &q, &d, &rq, &res, err, sizeof err)) {
        fprintf(stderr, "dath eval: %s\n", err);
        free(at);
        return 1;
    }
    fprintf(stderr, "dath eval: ranked on %s (%s)\n", be->name, be->device);
    int jT = 0;
    while (at[jT] != T) jT++;
    fprintf(stderr, "dath eval: %d queries against %d database codes of %d bits, %d classes: "
            "ranked in %.3f s (%.0f queries/s)\n", Q, D, e->bits, e->C, res.seconds,
            res.seconds > 0 ? Q / res.seconds : 0.0);
    if (res.no_relevant)
        fprintf(stderr, "dath eval: %d queries have no relevant item in the database (they score "
                "0 in P@N and are left out of R@N)\n", res.no_relevant);
    if (skip_empty)
        fprintf(stderr, "dath eval: --skip-empty-queries: MAP@%s over %d of %d queries (%d have "
                "no relevant item in the top %s)\n", kname, res.queries_in_map, Q, Q - res.queries_in_map, kname);
    if (json) {
        printf("{\"topk\":%s%s%s,\"queries\":%d,\"database\":%d,\"bits\":%d,\"classes\":%d,"
               "\"skip_empty_queries\":%s,\"queries_in_map\":%d,\"map\":%.9g,",
               T == topk ? "" : "\"", kname, T == topk ? "" : "\"", Q, D, e->bits, e->C,
               skip_empty ? "true" : "false", res.queries_in_map, res.map);
        if (tie_bounds) printf("\"map_worst\":%.9g,\"map_best\":%.9g,", res.map_worst, res.map_best);
        printf("\"p_r2\":%.9g,\"p_at_k\":%.9g,\"r_at_k\":%.9g,\"seconds\":%.6f}\n", res.p_rad[2],
               res.p_at[jT], res.r_at[jT], res.seconds);
    } else {
        printf("MAP@%s: %.6f\n", kname, res.map);
        printf("P@r<=2: %.6f\n", res.p_rad[2]);
        printf("P@%s: %.6f\n", kname, res.p_at[jT]);
        printf("R@%s: %.6f\n", kname, res.r_at[jT]);
        if (tie_bounds)
            printf("tie bounds of MAP@%s: worst %.6f, best %.6f\n", kname, res.map_worst, res.map_best);
    }
    fflush(stdout);

    int rc = 0;
    if (curves && eval_write_curves(curves, at, res.p_at, res.r_at, n_at, res.p_rad, res.r_rad, e->bits, D, err,
                                    sizeof err)) {
        fprintf(stderr, "dath eval: %s\n", err);
        rc = 1;
    }
    free(at);
    retrieval_result_free(&res);
    return rc;
}

/* MAP@topk of random codes of the same shape (uniform bits from the counter-based
 * generator, keyed by seed), ranked on the CPU: the chance level the learned codes are
 * judged against. NaN when out of memory. */
static double eval_random_map(const eval_data *e, int topk, int skip_empty, uint64_t seed) {
    const int Q = e->Q, D = e->D, R = 8 * e->B;
    uint8_t *qc = malloc((size_t)Q * e->B), *dc = malloc((size_t)D * e->B);   /* [Q, B], [D, B] */
    double map = NAN;
    if (qc && dc) {
        /* bits past the code length stay 0, as in real codes */
        for (int side = 0; side < 2; side++) {
            uint8_t *c = side ? dc : qc;
            int rows = side ? D : Q;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < R; j++) {
                    uint8_t *byte = &c[(size_t)i * e->B + j / 8];
                    if (j % 8 == 0) *byte = 0;
                    if (j < e->bits && (rng_u32(seed, RNG_INIT, 1000u + (uint32_t)side, (uint32_t)i, (uint32_t)j) & 1))
                        *byte |= (uint8_t)(0x80u >> (j % 8));
                }
        }
        const retrieval_side q = {qc, e->ql, Q}, d = {dc, e->dl, D};
        const retrieval_request rq = {.B = e->B, .C = e->C, .topk = topk, .skip_empty = skip_empty};
        retrieval_result res;
        char err[256];
        if (retrieval_evaluate(backend_cpu(), &q, &d, &rq, &res, err, sizeof err) == 0) {
            map = res.map;
            retrieval_result_free(&res);
        }
    }
    free(qc);
    free(dc);
    return map;
}

int cmd_eval(int argc, char **argv) {
    const char *query = NULL, *query_labels = NULL, *db = NULL, *db_labels = NULL;
    const char *model = NULL, *query_list = NULL, *db_list = NULL, *root = "";
    const char *curves = NULL;
    int topk = 5000, skip_empty = 0, tie_bounds = 0, json = 0, batch = 256, random_baseline = 0;
    int workers = 0, device = 0, precision = DATH_FP32, conv = DATH_CONV_IMPLICIT;
    float max_mp = 64;
    opt_spec spec[] = {
        {"query", OPT_STR, &query, NULL, "query codes (.npy, uint8 packed bits)", 0},
        {"query-labels", OPT_STR, &query_labels, NULL, "query labels (.npy, uint8 0/1 rows)", 0},
        {"db", OPT_STR, &db, NULL, "database codes (.npy)", 0},
        {"db-labels", OPT_STR, &db_labels, NULL, "database labels (.npy)", 0},
        {"model", OPT_STR, &model, NULL, "encode with this model instead of reading codes", 0},
        {"query-list", OPT_STR, &query_list, NULL, "with --model: query image list", 0},
        {"db-list", OPT_STR, &db_list, NULL, "with --model: database image list", 0},
        {"root", OPT_STR, &root, "", "with --model: directory the lists' paths are relative to", 0},
        {"batch", OPT_INT, &batch, "256", "with --model: images per forward pass", OPT_POSITIVE},
        {"workers", OPT_INT, &workers, "0", "with --model: decoding threads (0: one per core)", OPT_NONNEG},
        {"precision", OPT_ENUM, &precision, "fp32", "with --model: GEMM precision (tf32, bf16: CUDA, sm_80+)", 0, backend_precisions},
        {"conv", OPT_ENUM, &conv, "implicit", "with --model: CUDA convolutions: implicit GEMMs or im2col + cuBLAS", 0, backend_conv_algos},
        {"max-megapixels", OPT_FLOAT, &max_mp, "64", "with --model: refuse (leave out) images of more pixels", OPT_POSITIVE},
        {"device", OPT_ENUM, &device, "auto", "where codes are encoded (--model) and ranked", 0, backend_devices},
        {"topk", OPT_INT, &topk, "5000", "K of MAP@K (0: the whole database)", 0},
        {"skip-empty-queries", OPT_FLAG, &skip_empty, "0",
         "leave queries with no relevant item in the top K out of MAP (HashNet); default: they score 0", 0},
        {"tie-bounds", OPT_FLAG, &tie_bounds, "0", "also the best and worst MAP over orders of equal-distance items", 0},
        {"curves", OPT_STR, &curves, NULL, "write P@N, R@N and PR curves (CSV) and PNG plots into this directory", 0},
        {"json", OPT_FLAG, &json, "0", "print one JSON object instead of the text lines", 0},
        {"random-baseline", OPT_FLAG, &random_baseline, "0", "also print the MAP of random codes of the same shape (chance level)", 0},
        {0}};
    static const char *synopsis =
        "--query Q.npy --query-labels QL.npy --db D.npy --db-labels DL.npy [options]\n"
        "       dath eval --model M.safetensors --query-list Q.txt --db-list D.txt --root DIR [options]";
    char err[4096];
    int rc = opts_parse("dath eval", synopsis, spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath eval: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    int files = query || query_labels || db || db_labels;
    if (model && files) {
        fprintf(stderr, "dath eval: give either --model with --query-list/--db-list, or the four "
                ".npy files, not both\n");
        return 2;
    }
    if (model && (!query_list || !db_list)) {
        fprintf(stderr, "dath eval: --model needs --query-list and --db-list\n");
        return 2;
    }
    if (!model && (!query || !query_labels || !db || !db_labels)) {
        fprintf(stderr, "dath eval: need --query, --query-labels, --db and --db-labels (or --model "
                "with --query-list and --db-list); see dath eval --help\n");
        return 2;
    }
    if (topk < 0) {
        fprintf(stderr, "dath eval: --topk %d: expected 0 (all) or a positive count\n", topk);
        return 2;
    }
    if (!model && (query_list || db_list)) {
        fprintf(stderr, "dath eval: --query-list and --db-list need --model\n");
        return 2;
    }
    eval_data e = {0};
    rc = model ? eval_load_model(&e, model, query_list, db_list, root, batch, workers, (int64_t)((double)max_mp * 1e6),
                                 backend_devices[device], precision, conv, err, sizeof err)
               : eval_load_files(&e, query, query_labels, db, db_labels, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dath eval: %s\n", err);
        eval_data_free(&e);
        return 1;
    }
    rc = eval_report(&e, topk, skip_empty, tie_bounds, curves, json, backend_devices[device]);
    if (!rc && random_baseline) {
        char kname[16];
        if (topk <= 0 || topk > e.D) snprintf(kname, sizeof kname, "all");
        else snprintf(kname, sizeof kname, "%d", topk);
        printf("MAP@%s of random codes: %.6f\n", kname, eval_random_map(&e, topk, skip_empty, 1));
    }
    eval_data_free(&e);
    return rc;
}
