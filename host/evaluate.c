/* host/evaluate.c — encoding image lists to packed codes, and the MAP of a model
 * (see evaluate.h).
 *
 * Encoding runs window by window of `batch` list rows: the window's images are decoded
 * into the cached unit (side R = transform_cache_side(S)) by OpenMP threads, those that
 * fail are dropped and the rest packed together, then the encoder (host/encoder.h:
 * one upload, the centre-crop transform and a forward pass without dropout, replayed
 * from a CUDA graph for full batches), and the sign bits of h packed as
 * numpy.packbits packs them. */
#include "evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kernels/hamming.h"
#include "../loader/image.h"
#include "encoder.h"

#define ENCODE_NAMED_FAILURES 5   /* failures named one by one; the rest are counted */
#define ENCODE_WHY_LEN 160

static double encode_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void encode_progress(const char *file, int done, int n, double t0) {
    const int width = 30;
    int fill = n ? (int)((long long)done * width / n) : width;
    double dt = encode_now() - t0;
    fprintf(stderr, "\rencode %s [%.*s%*s] %d/%d  %.1f img/s ", file, fill,
            "##############################", width - fill, "", done, n, dt > 0 ? done / dt : 0.0);
    fflush(stderr);
}

/* Packs the signs of h [B, K] into codes [B, (K+7)/8]: bit j is 1 when h_j >= 0. */
static void encode_pack(uint8_t *codes, const float *h, int B, int K) {
    const int nb = (K + 7) / 8;
    memset(codes, 0, (size_t)B * nb);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < K; j++)
            if (h[(size_t)b * K + j] >= 0) codes[(size_t)b * nb + j / 8] |= (uint8_t)(0x80u >> (j % 8));
}

int evaluate_encode(const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                    const dath_list *list, int batch, int64_t max_pixels, int progress, uint8_t **codes,
                    int **kept, int *n_ok, char *err, size_t err_len) {
    *codes = NULL;
    *kept = NULL;
    *n_ok = 0;
    if (batch < 1) {
        snprintf(err, err_len, "batch %d: expected at least 1", batch);
        return -1;
    }
    const int K = m->K, S = m->S, R = transform_cache_side(S), nb = (K + 7) / 8, n = list->n;
    const size_t unit = (size_t)R * R * 3;
    if (batch > n && n > 0) batch = n;
    dath_encoder *enc = encoder_create(be, ctx, m, batch, err, err_len);
    if (!enc) return -1;
    uint8_t *img = encoder_images(enc);                                 /* [batch, R, R, 3] host (pinned) */
    float *h = malloc((size_t)batch * K * sizeof *h);                  /* [batch, K] host */
    int *ok = malloc((size_t)batch * sizeof *ok);                      /* [batch] */
    char (*why)[ENCODE_WHY_LEN] = malloc((size_t)batch * sizeof *why); /* [batch] reasons */
    uint8_t *out = malloc((size_t)(n ? n : 1) * nb);                   /* [n, nb] */
    int *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);            /* [n] */
    int rc = -1;
    if (!h || !ok || !why || !out || !rows) {
        snprintf(err, err_len, "out of memory for a batch of %d images of %d×%d", batch, R, R);
        goto done;
    }

    const int bar = progress && isatty(STDERR_FILENO);
    int n_good = 0, n_bad = 0;
    double t0 = encode_now();
    for (int start = 0; start < n; start += batch) {
        const int cnt = n - start < batch ? n - start : batch;
        #pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < cnt; i++)
            ok[i] = image_load(list->paths[start + i], R, max_pixels, img + (size_t)i * unit, why[i],
                               ENCODE_WHY_LEN) == 0;
        int B = 0;
        for (int i = 0; i < cnt; i++) {
            if (!ok[i]) {
                if (n_bad < ENCODE_NAMED_FAILURES)
                    fprintf(stderr, "%sencode: %s:%d: %s: %s; left out\n", bar ? "\n" : "",
                            list->file, list->lines[start + i], list->paths[start + i], why[i]);
                n_bad++;
                continue;
            }
            if (B != i) memcpy(img + (size_t)B * unit, img + (size_t)i * unit, unit);
            rows[n_good + B] = start + i;
            B++;
        }
        if (B) {
            if (encoder_run(enc, B, h, err, err_len)) goto done;
            encode_pack(out + (size_t)n_good * nb, h, B, K);
            n_good += B;
        }
        if (bar) encode_progress(list->file, start + cnt, n, t0);
    }
    if (bar) fputc('\n', stderr);
    if (n_bad)
        fprintf(stderr, "encode: %s: %d of %d images could not be read%s; their rows are left out\n",
                list->file, n_bad, n, n_bad > ENCODE_NAMED_FAILURES ? " (the first few named above)" : "");
    *codes = out;
    *kept = rows;
    *n_ok = n_good;
    out = NULL;
    rows = NULL;
    rc = 0;
done:
    encoder_free(enc);
    free(h);
    free(ok);
    free(why);
    free(out);
    free(rows);
    return rc;
}

int evaluate_model_map(const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                       const char *query_list, const char *db_list, const char *root,
                       int topk, int64_t max_pixels, double *map, char *err, size_t err_len) {
    dath_list *lists[2] = {NULL, NULL};
    uint8_t *codes[2] = {NULL, NULL}, *labs[2] = {NULL, NULL};
    int *kept[2] = {NULL, NULL}, n[2] = {0, 0};
    const char *files[2] = {query_list, db_list};
    int rc = -1;
    for (int s = 0; s < 2; s++) {
        if (!(lists[s] = list_read(files[s], root, err, err_len))) goto done;
        if (evaluate_encode(be, ctx, m, lists[s], 256, max_pixels, 0, &codes[s], &kept[s], &n[s], err, err_len))
            goto done;
        if (n[s] == 0) {
            snprintf(err, err_len, "%s: no image could be read", files[s]);
            goto done;
        }
        const int C = lists[s]->C;
        labs[s] = malloc((size_t)n[s] * C);   /* [n, C] labels of the encoded rows */
        for (int i = 0; i < n[s]; i++)
            memcpy(labs[s] + (size_t)i * C, lists[s]->labels + (size_t)kept[s][i] * C, (size_t)C);
    }
    if (lists[0]->C != lists[1]->C) {
        snprintf(err, err_len, "%s has %d labels a line but %s has %d", query_list, lists[0]->C,
                 db_list, lists[1]->C);
        goto done;
    }
    {
        const int Q = n[0], D = n[1];
        double *ap = malloc((size_t)Q * sizeof *ap);          /* [Q] */
        int32_t *hits = malloc((size_t)Q * sizeof *hits);     /* [Q] */
        int32_t *rel = malloc((size_t)Q * sizeof *rel);       /* [Q] */
        hamming_eval_cpu(ap, hits, rel, NULL, NULL, NULL, NULL, NULL, codes[0], codes[1], labs[0],
                         labs[1], NULL, 0, Q, D, (m->K + 7) / 8, lists[0]->C, topk, NULL);
        *map = hamming_mean_ap(ap, hits, Q, 0, NULL);
        free(ap);
        free(hits);
        free(rel);
    }
    rc = 0;
done:
    for (int s = 0; s < 2; s++) {
        if (lists[s]) list_free(lists[s]);
        free(codes[s]);
        free(labs[s]);
        free(kept[s]);
    }
    return rc;
}
