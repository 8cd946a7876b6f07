/* host/encoder.c — the encode pass (see encoder.h). */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../loader/prefetch.h"
#include "clock.h"
#include "net.h"

#define ENCODE_NAMED_FAILURES 5   /* bad images named one by one; the rest are counted */

struct dath_encoder {
    const dath_backend *be;
    dath_ctx *ctx;
    dath_net *net;
    int batch, K, R, S;
    uint8_t *img;             /* [batch, R, R, 3] host (pinned) */
    uint8_t *d_img;           /* [batch, R, R, 3] backend */
    int32_t *d_crop;          /* [batch, 3] backend: the centre crop, no flip */
    float *d_x;               /* [batch, 3, S, S] backend */
    int graphs, seen_full;    /* full batches run so far (the first is the warm-up) */
    void *graph;              /* transform + forward of a full batch, once captured */
    long replayed;
};

size_t encoder_work_bytes(const dath_model *m, int batch) { return net_work_bytes(m, batch, batch); }

void encoder_free(dath_encoder *e) {
    if (!e) return;
    const dath_backend *be = e->be;
    if (e->graph) be->graph_free(e->graph);
    net_free(e->net);
    be->host_free(e->img);
    be->free(e->d_img);
    be->free(e->d_crop);
    be->free(e->d_x);
    free(e);
}

dath_encoder *encoder_create(const dath_backend *be, dath_ctx *ctx, const dath_model *m, int batch,
                             char *err, size_t err_len) {
    if (batch < 1) {
        snprintf(err, err_len, "batch %d: expected at least 1", batch);
        return NULL;
    }
    dath_encoder *e = calloc(1, sizeof *e);
    e->be = be;
    e->ctx = ctx;
    e->batch = batch;
    e->K = m->K;
    e->S = m->S;
    e->R = transform_cache_side(m->S);
    e->graphs = 1;
    const size_t unit = (size_t)e->R * e->R * 3;
    e->net = net_create(be, ctx, m, batch, 0, err, err_len);
    if (!e->net) {
        free(e);
        return NULL;
    }
    e->img = be->host_alloc((size_t)batch * unit);
    e->d_img = be->alloc((size_t)batch * unit);
    e->d_crop = be->alloc((size_t)batch * 3 * sizeof(int32_t));
    e->d_x = be->alloc((size_t)batch * 3 * e->S * e->S * sizeof(float));
    int32_t *crop = malloc((size_t)batch * 3 * sizeof *crop);   /* [batch, 3] host */
    if (!e->img || !e->d_img || !e->d_crop || !e->d_x || !crop) {
        snprintf(err, err_len, "out of %s memory for a batch of %d images of %d×%d", be->name, batch, e->R, e->R);
        free(crop);
        encoder_free(e);
        return NULL;
    }
    for (int b = 0; b < batch; b++) {
        crop[3 * b] = crop[3 * b + 1] = (e->R - e->S) / 2;
        crop[3 * b + 2] = 0;
    }
    be->upload(e->d_crop, crop, (size_t)batch * 3 * sizeof *crop, ctx);
    be->sync(ctx);
    free(crop);
    net_upload(e->net, m);
    return e;
}

uint8_t *encoder_images(dath_encoder *e) { return e->img; }
long encoder_replayed(const dath_encoder *e) { return e->replayed; }
dath_net *encoder_net(dath_encoder *e) { return e->net; }

void encoder_set_graphs(dath_encoder *e, int on) {
    if (!on && e->graph) {
        e->be->graph_free(e->graph);
        e->graph = NULL;
    }
    e->graphs = on;
}

/* transform + forward of B images: what the graph holds */
static void encoder_enqueue(dath_encoder *e, int B) {
    const net_run run = {0};   /* no dropout */
    e->be->transform_batch(e->d_x, e->d_img, e->d_crop, NULL, B, e->R, e->S, e->ctx);
    net_forward(e->net, e->d_x, B, &run);
}

int encoder_run(dath_encoder *e, int B, float *h, char *err, size_t err_len) {
    return encoder_run_from(e, e->img, B, h, err, err_len);
}

/* Uploads B images and runs the transform and the forward (a graph replay for a full
 * batch once captured). Returns 0, or -1 with a message. */
static int encoder_pass(dath_encoder *e, const uint8_t *images, int B, char *err, size_t err_len) {
    const dath_backend *be = e->be;
    dath_ctx *ctx = e->ctx;
    if (B < 1 || B > e->batch) {
        snprintf(err, err_len, "encoder_run: %d images (1 to %d)", B, e->batch);
        return -1;
    }
    be->upload(e->d_img, images, (size_t)B * e->R * e->R * 3, ctx);
    int full = B == e->batch;
    if (full && e->graphs && be->graph_begin && !e->graph && e->seen_full > 0) {
        void *g = NULL;
        if (be->graph_begin(ctx) == 0) {
            encoder_enqueue(e, B);
            if (be->graph_end(ctx, &g) == 0) e->graph = g;
        }
        if (!e->graph) {
            fprintf(stderr, "dath: capturing the encode pass in a CUDA graph failed; encoding without graphs\n");
            e->graphs = 0;
        }
    }
    if (full) e->seen_full++;
    if (full && e->graph) {
        if (be->graph_launch(ctx, e->graph)) {
            snprintf(err, err_len, "launching the encode pass's CUDA graph failed");
            return -1;
        }
        e->replayed++;
    } else {
        encoder_enqueue(e, B);
    }
    return 0;
}

int encoder_run_from(dath_encoder *e, const uint8_t *images, int B, float *h, char *err, size_t err_len) {
    if (encoder_pass(e, images, B, err, err_len)) return -1;
    e->be->download(h, net_h(e->net), (size_t)B * e->K * sizeof *h, e->ctx);
    return 0;
}

int encoder_features_from(dath_encoder *e, const uint8_t *images, int B, int stream, float *feat, char *err,
                          size_t err_len) {
    const dath_model *m = net_model(e->net);
    if (stream != ENCODER_FUSED && (stream < 0 || stream >= m->nstreams)) {
        snprintf(err, err_len, "stream %d: %s has %d stream%s", stream, variant_name(m->variant), m->nstreams,
                 m->nstreams == 1 ? "" : "s");
        return -1;
    }
    if (encoder_pass(e, images, B, err, err_len)) return -1;
    const size_t n = (size_t)B * MODEL_HIDDEN;
    e->be->download(feat, stream == ENCODER_FUSED ? net_fused(e->net) : net_fc7(e->net, stream), n * sizeof *feat,
                    e->ctx);
    if (stream != ENCODER_FUSED)   /* fc7 is kept before its ReLU (the fusion applies it) */
        for (size_t i = 0; i < n; i++) feat[i] = feat[i] > 0 ? feat[i] : 0;
    return 0;
}

/* ---- a whole list ------------------------------------------------------------------- */

typedef struct encode_warn {
    int bar;                  /* a progress bar is on the line: start a new one */
} encode_warn;

static void encode_warn_line(void *user, const char *msg) {
    const encode_warn *w = user;
    fprintf(stderr, "%sencode: %s\n", w->bar ? "\n" : "", msg);
}

static void encode_progress(const char *file, int done, int n, double t0) {
    const int width = 30;
    int fill = n ? (int)((long long)done * width / n) : width;
    double dt = dath_now() - t0;
    fprintf(stderr, "\rencode %s [%.*s%*s] %d/%d  %.1f img/s ", file, fill,
            "##############################", width - fill, "", done, n, dt > 0 ? done / dt : 0.0);
    fflush(stderr);
}

void encoder_pack(uint8_t *codes, const float *h, int B, int K) {
    const int nb = (K + 7) / 8;
    memset(codes, 0, (size_t)B * nb);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < K; j++)
            if (h[(size_t)b * K + j] >= 0) codes[(size_t)b * nb + j / 8] |= (uint8_t)(0x80u >> (j % 8));
}

/* The list pass of encoder_encode_list (stream ENCODE_CODES: codes [n_ok, (K+7)/8]) and
 * encoder_features_list (a stream: features [n_ok, 4096] as floats) into *out. */
enum { ENCODE_CODES = -2 };
static int encoder_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l, int batch,
                        int workers, int64_t max_pixels, int progress, int stream, void **out_p, int **kept,
                        int *n_ok, char *err, size_t err_len) {
    *out_p = NULL;
    *kept = NULL;
    *n_ok = 0;
    if (batch < 1) {
        snprintf(err, err_len, "batch %d: expected at least 1", batch);
        return -1;
    }
    const int K = m->K, S = m->S, R = transform_cache_side(S), nb = (K + 7) / 8, n = l->n;
    /* bytes of one image's output, and floats of one batch's host buffer */
    const size_t row = stream == ENCODE_CODES ? (size_t)nb : MODEL_HIDDEN * sizeof(float);
    const size_t width = stream == ENCODE_CODES ? (size_t)K : MODEL_HIDDEN;
    if (batch > n && n > 0) batch = n;
    encode_warn warn = {progress && isatty(STDERR_FILENO)};
    prefetch_config pc = {.list = l, .mode = PREFETCH_ENCODE, .R = R, .S = S, .B = batch, .workers = workers,
                          .ring = 3, .host_alloc = be->host_alloc, .host_free = be->host_free,
                          .warn = encode_warn_line, .warn_user = &warn,
                          .max_warnings = ENCODE_NAMED_FAILURES, .max_pixels = max_pixels};
    dath_prefetch *pf = NULL;
    dath_encoder *enc = NULL;
    float *h = malloc((size_t)batch * width * sizeof *h);              /* [batch, K or 4096] host */
    uint8_t *out = malloc((size_t)(n ? n : 1) * row);                  /* [n, row bytes] */
    int *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);            /* [n] */
    int rc = -1;
    if (!h || !out || !rows) {
        snprintf(err, err_len, "out of memory for encoding %d images (%.1f MB of output)", n, (double)n * row / 1e6);
        goto done;
    }
    if (n == 0) {
        rc = 0;
        goto done;
    }
    if (!(enc = encoder_create(be, ctx, m, batch, err, err_len))) goto done;
    if (!(pf = prefetch_create(&pc, err, err_len)) || prefetch_begin_epoch(pf, 0, err, err_len)) goto done;
    int n_good = 0, r;
    double t0 = dath_now();
    prefetch_batch b;
    while ((r = prefetch_next(pf, &b, err, err_len)) == 0) {
        int ok;
        if (stream == ENCODE_CODES) {
            ok = encoder_run_from(enc, b.images, b.n, h, err, err_len) == 0;
            if (ok) encoder_pack(out + (size_t)n_good * row, h, b.n, K);
        } else {
            ok = encoder_features_from(enc, b.images, b.n, stream, h, err, err_len) == 0;
            if (ok) memcpy(out + (size_t)n_good * row, h, (size_t)b.n * row);
        }
        if (ok) {
            memcpy(rows + n_good, b.samples, (size_t)b.n * sizeof *rows);
            n_good += b.n;
        }
        int last_row = b.n ? b.samples[b.n - 1] + 1 : 0;
        prefetch_release(pf, &b);
        if (!ok) goto done;
        if (warn.bar) encode_progress(l->file, last_row, n, t0);
    }
    if (r < 0) goto done;
    if (warn.bar) fputc('\n', stderr);
    prefetch_stats ps;
    prefetch_stats_get(pf, &ps);
    if (ps.bad)
        fprintf(stderr, "encode: %s: %d of %d images could not be read%s; their rows are left out\n", l->file,
                ps.bad, n, ps.bad > ENCODE_NAMED_FAILURES ? " (the first few named above)" : "");
    *out_p = out;
    *kept = rows;
    *n_ok = n_good;
    out = NULL;
    rows = NULL;
    rc = 0;
done:
    prefetch_destroy(pf);
    encoder_free(enc);
    free(h);
    free(out);
    free(rows);
    return rc;
}

int encoder_encode_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l,
                        int batch, int workers, int64_t max_pixels, int progress, uint8_t **codes, int **kept,
                        int *n_ok, char *err, size_t err_len) {
    void *out;
    int rc = encoder_list(be, ctx, m, l, batch, workers, max_pixels, progress, ENCODE_CODES, &out, kept, n_ok, err,
                          err_len);
    *codes = out;
    return rc;
}

int encoder_features_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l,
                          int batch, int workers, int64_t max_pixels, int progress, int stream, float **feat,
                          int **kept, int *n_ok, char *err, size_t err_len) {
    *feat = NULL;
    if (stream != ENCODER_FUSED && (stream < 0 || stream >= m->nstreams)) {
        snprintf(err, err_len, "stream %d: %s has %d stream%s", stream, variant_name(m->variant), m->nstreams,
                 m->nstreams == 1 ? "" : "s");
        return -1;
    }
    void *out;
    int rc = encoder_list(be, ctx, m, l, batch, workers, max_pixels, progress, stream, &out, kept, n_ok, err,
                          err_len);
    *feat = out;
    return rc;
}
