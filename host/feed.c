/* host/feed.c — batches from the prefetcher to the backend (see feed.h). */
#include "feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FEED_EMPTY = 0, FEED_PUSHED = 1, FEED_POPPED = 2 };

typedef struct feed_slot {
    uint8_t *img;             /* [B, R, R, 3] backend (NULL once the set is on the backend) */
    int32_t *crop;            /* [B, 3] backend */
    int32_t *index;           /* [B] backend: list rows, for the gather from the set */
    float *lab;               /* [B, C] backend */
    void *copied, *consumed;  /* fences: upload done (copy queue), transform done (compute) */
    int state, pixels;        /* FEED_*; 1 when img holds this batch's pixels */
    int n;                    /* rows of the batch in this slot */
} feed_slot;

struct dath_feed {
    const dath_backend *be;
    dath_ctx *ctx;
    dath_prefetch *pf;
    int B, R, S, C, data_mode;
    float *x, *lab;           /* [B, 3, S, S], [B, C] backend: what the step reads */
    uint8_t *set;             /* [n, R, R, 3] backend: the decoded set, or NULL */
    feed_slot slot[2];
    int push_at, pop_at;      /* the slot the next push / pop uses */
};

dath_feed *feed_create(const dath_backend *be, dath_ctx *ctx, dath_prefetch *pf, int B, int R,
                       int S, int C, int data_on_device, char *err, size_t err_len) {
    dath_feed *f = calloc(1, sizeof *f);
    f->be = be; f->ctx = ctx; f->pf = pf;
    f->B = B; f->R = R; f->S = S; f->C = C; f->data_mode = data_on_device;
    f->x = be->alloc((size_t)B * 3 * S * S * sizeof(float));
    f->lab = be->alloc((size_t)B * C * sizeof(float));
    int ok = f->x && f->lab;
    for (int k = 0; k < 2 && ok; k++) {
        feed_slot *s = &f->slot[k];
        s->img = be->alloc((size_t)B * R * R * 3);
        s->crop = be->alloc((size_t)B * 3 * sizeof(int32_t));
        s->index = be->alloc((size_t)B * sizeof(int32_t));
        s->lab = be->alloc((size_t)B * C * sizeof(float));
        s->copied = be->fence_create();
        s->consumed = be->fence_create();
        ok = s->img && s->crop && s->index && s->lab && s->copied && s->consumed;
    }
    if (!ok) {
        snprintf(err, err_len, "out of %s memory for two batches of %d images of %d×%d", be->name, B, R, R);
        feed_free(f);
        return NULL;
    }
    return f;
}

void feed_free(dath_feed *f) {
    if (!f) return;
    const dath_backend *be = f->be;
    feed_drain(f);
    be->sync(f->ctx);
    for (int k = 0; k < 2; k++) {
        feed_slot *s = &f->slot[k];
        if (s->copied) be->fence_sync(s->copied);
        be->free(s->img); be->free(s->crop); be->free(s->index); be->free(s->lab);
        if (s->copied) be->fence_free(s->copied);
        if (s->consumed) be->fence_free(s->consumed);
    }
    be->free(f->x); be->free(f->lab); be->free(f->set);
    free(f);
}

int feed_data_on_device(const dath_feed *f) { return f->set != NULL; }

int feed_epoch(dath_feed *f, char *note, size_t note_len, char *err, size_t err_len) {
    const dath_backend *be = f->be;
    note[0] = 0;
    if (f->set || f->data_mode == FEED_DATA_NO) return 0;
    size_t n = 0;
    const uint8_t *images = prefetch_images(f->pf, &n);
    if (!images || !n) return 0;
    size_t bytes = n * (size_t)f->R * f->R * 3, avail = 0, total = 0;
    if (f->data_mode == FEED_DATA_AUTO && (be->mem_info(&avail, &total) || bytes > avail / 2)) return 0;
    f->set = be->alloc(bytes);
    if (!f->set) {
        if (f->data_mode == FEED_DATA_AUTO) return 0;
        snprintf(err, err_len, "--data-on-device yes: %zu images of %d×%d (%.2f GiB) do not fit in %s memory",
                 n, f->R, f->R, bytes / 1073741824.0, be->name);
        return -1;
    }
    be->upload(f->set, images, bytes, f->ctx);
    be->sync(f->ctx);
    snprintf(note, note_len, "the %zu decoded images (%.2f GiB) are now in %s memory; batches carry rows only",
             n, bytes / 1073741824.0, be->name);
    return 0;
}

int feed_push(dath_feed *f, const prefetch_batch *b, int row0, int n, char *err, size_t err_len) {
    const dath_backend *be = f->be;
    feed_slot *s = &f->slot[f->push_at];
    if (s->state != FEED_EMPTY) {
        snprintf(err, err_len, "feed_push: both slots are busy (retire the finished batch first)");
        return -1;
    }
    if (n < 1 || n > f->B || row0 < 0 || row0 + n > b->n) {
        snprintf(err, err_len, "feed_push: rows %d to %d of a batch of %d (at most %d a feed)", row0, row0 + n, b->n, f->B);
        return -1;
    }
    if (f->set == NULL && b->images == NULL) {
        snprintf(err, err_len, "feed_push: a batch without pixels, and the decoded set is not in %s memory", be->name);
        return -1;
    }
    dath_ctx *ctx = f->ctx;
    size_t r0 = (size_t)row0;
    be->fence_wait(s->consumed, DATH_QUEUE_COPY, ctx);   /* the previous transform from this slot */
    s->pixels = f->set == NULL;
    if (s->pixels) be->upload_async(s->img, b->images + r0 * f->R * f->R * 3, (size_t)n * f->R * f->R * 3, ctx);
    else be->upload_async(s->index, b->samples + r0, (size_t)n * sizeof(int32_t), ctx);
    be->upload_async(s->crop, b->crops + 3 * r0, (size_t)n * 3 * sizeof(int32_t), ctx);
    be->upload_async(s->lab, b->labels + r0 * f->C, (size_t)n * f->C * sizeof(float), ctx);
    be->fence_record(s->copied, DATH_QUEUE_COPY, ctx);
    s->n = n;
    s->state = FEED_PUSHED;
    f->push_at ^= 1;
    return 0;
}

int feed_pop(dath_feed *f, const float **x, const float **lab, int *n, char *err, size_t err_len) {
    const dath_backend *be = f->be;
    feed_slot *s = &f->slot[f->pop_at];
    if (s->state != FEED_PUSHED) {
        snprintf(err, err_len, "feed_pop: no batch was pushed");
        return -1;
    }
    dath_ctx *ctx = f->ctx;
    int nb = s->n;
    be->fence_wait(s->copied, DATH_QUEUE_COMPUTE, ctx);
    if (s->pixels) be->transform_batch(f->x, s->img, s->crop, NULL, nb, f->R, f->S, ctx);
    else be->transform_batch(f->x, f->set, s->crop, s->index, nb, f->R, f->S, ctx);
    be->copy(f->lab, s->lab, (size_t)nb * f->C * sizeof(float), ctx);
    be->fence_record(s->consumed, DATH_QUEUE_COMPUTE, ctx);
    s->state = FEED_POPPED;
    f->pop_at ^= 1;
    *x = f->x;
    *lab = f->lab;
    *n = nb;
    return 0;
}

void feed_retire(dath_feed *f) {
    for (int k = 0; k < 2; k++) {
        feed_slot *s = &f->slot[k];
        if (s->state != FEED_POPPED) continue;
        f->be->fence_sync(s->copied);   /* the pinned buffers are no longer read */
        s->state = FEED_EMPTY;
    }
}

void feed_drain(dath_feed *f) {
    for (int k = 0; k < 2; k++) {
        feed_slot *s = &f->slot[k];
        if (s->state == FEED_EMPTY) continue;
        f->be->fence_sync(s->copied);
        s->state = FEED_EMPTY;
    }
    f->push_at = f->pop_at = 0;
}
