/* host/encoder.c — the encode pass (see encoder.h). */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

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
    const dath_backend *be = e->be;
    dath_ctx *ctx = e->ctx;
    if (B < 1 || B > e->batch) {
        snprintf(err, err_len, "encoder_run: %d images (1 to %d)", B, e->batch);
        return -1;
    }
    be->upload(e->d_img, e->img, (size_t)B * e->R * e->R * 3, ctx);
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
    be->download(h, net_h(e->net), (size_t)B * e->K * sizeof *h, ctx);
    return 0;
}
