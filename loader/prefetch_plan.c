/* loader/prefetch_plan.c — what goes into which batch (see prefetch.h for the rules,
 * prefetch_impl.h for how the files divide the work): the epoch's permutation and the
 * training crops, the planning of train and encode batches in the epoch's order, the
 * fill tasks that copy or decode one image of a planned batch, and the warnings about
 * bad images, in the order the consumer meets them. */
#include "prefetch_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/rng.h"
#include "image.h"

/* ---- helpers ------------------------------------------------------------------- */

int prefetch_permutation(int *perm, int n, uint64_t seed, int epoch) {
    uint64_t *key = malloc((size_t)n * sizeof *key);   /* [n] rng word << 32 | index */
    uint64_t *tmp = malloc((size_t)n * sizeof *tmp);   /* [n] */
    size_t *cnt = malloc(65536 * sizeof *cnt);          /* [65536] radix counts */
    if (!key || !tmp || !cnt) {
        free(key); free(tmp); free(cnt);
        return -1;
    }
    for (int i = 0; i < n; i++)
        key[i] = ((uint64_t)rng_u32(seed, RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i, 0) << 32) | (uint32_t)i;
    /* LSD radix sort on the rng word (two 16-bit passes over the high half): stable, so
     * equal words keep their increasing index order */
    for (int pass = 0; pass < 2; pass++) {
        int shift = 32 + 16 * pass;
        memset(cnt, 0, 65536 * sizeof *cnt);
        for (int i = 0; i < n; i++) cnt[(key[i] >> shift) & 0xffff]++;
        size_t sum = 0;
        for (int b = 0; b < 65536; b++) { size_t c = cnt[b]; cnt[b] = sum; sum += c; }
        for (int i = 0; i < n; i++) tmp[cnt[(key[i] >> shift) & 0xffff]++] = key[i];
        uint64_t *t = key; key = tmp; tmp = t;
    }
    for (int i = 0; i < n; i++) perm[i] = (int)(key[i] & 0xffffffffu);
    free(key); free(tmp); free(cnt);
    return 0;
}

void prefetch_crop(int32_t *crop, uint64_t seed, int epoch, int s, int R, int S) {
    uint32_t span = (uint32_t)(R - S + 1);
    crop[0] = (int32_t)(rng_u32(seed, RNG_CROP, (uint32_t)epoch, (uint32_t)s, 0) % span);
    crop[1] = (int32_t)(rng_u32(seed, RNG_CROP, (uint32_t)epoch, (uint32_t)s, 1) % span);
    crop[2] = (int32_t)(rng_u32(seed, RNG_CROP, (uint32_t)epoch, (uint32_t)s, 2) & 1);
}

/* Queues a message for the consumer's thread (under the lock). */
void prefetch_queue(dath_prefetch *p, const char *msg) {
    if (p->npending == p->pending_cap) {
        int nc = p->pending_cap ? p->pending_cap * 2 : 16;
        char **np = realloc(p->pending, (size_t)nc * sizeof *np);
        if (!np) return;   /* out of memory: the message is dropped, counts stay right */
        p->pending = np;
        p->pending_cap = nc;
    }
    char *m = strdup(msg);
    if (m) p->pending[p->npending++] = m;
}

/* Names bad image i once, up to max_warnings (under the lock). */
void prefetch_warn_bad(dath_prefetch *p, int i, const char *why) {
    if (p->warned[i]) return;
    p->warned[i] = 1;
    if (p->max_warn < 0 || p->nwarned > p->max_warn) return;
    char msg[PREFETCH_MSG_LEN];
    if (p->nwarned == p->max_warn)
        snprintf(msg, sizeof msg, "%s: more bad images are skipped without being named; "
                 "the epoch summary counts them", p->l->file);
    else
        snprintf(msg, sizeof msg, "%s:%d: %s: %s (skipped)", p->l->file, p->l->lines[i],
                 p->l->paths[i], why ? why : "bad image");
    p->nwarned++;
    prefetch_queue(p, msg);
}

void prefetch_strict_msg(dath_prefetch *p, int i, const char *why, char *out, size_t len) {
    snprintf(out, len, "%s:%d: %s: %s (--strict stops at the first bad image)", p->l->file,
             p->l->lines[i], p->l->paths[i], why ? why : "bad image");
}

/* Calls cfg.warn for every queued message, outside the lock. */
void prefetch_drain(dath_prefetch *p) {
    while (p->npending) {
        int n = p->npending;
        char **msgs = malloc((size_t)n * sizeof *msgs);
        if (!msgs) return;
        memcpy(msgs, p->pending, (size_t)n * sizeof *msgs);
        p->npending = 0;
        pthread_mutex_unlock(&p->mu);
        for (int k = 0; k < n; k++) {
            if (p->cfg.warn) p->cfg.warn(p->cfg.warn_user, msgs[k]);
            else fprintf(stderr, "warning: %s\n", msgs[k]);
            free(msgs[k]);
        }
        free(msgs);
        pthread_mutex_lock(&p->mu);
    }
}

/* ---- planning (under the lock) ------------------------------------------------------ */

int prefetch_status(const dath_prefetch *p, int i) {
    return p->gstatus ? p->gstatus[i] : cache_status(p->cache, i);
}

int prefetch_share_owner(int pos, int n, int B, int W) {
    int full = n / B;
    if (pos < full * B) {
        int r = (pos % B) / (B / W);
        return r < W ? r : W - 1;
    }
    int rest = n - full * B, per = rest / W, j = pos - full * B;
    if (per == 0) return j % W;
    return j / per < W ? j / per : W - 1;
}

static void prefetch_start_fill(dath_prefetch *p, prefetch_slot *s) {
    s->state = SLOT_FILLING;
    s->next_j = s->done_j = 0;
    pthread_cond_broadcast(&p->work);
}

/* Advances planning as far as it can. Returns 1 when anything changed. */
int prefetch_plan(dath_prefetch *p) {
    int progress = 0;
    while (p->active && !p->plan_done) {
        prefetch_slot *s = &p->slots[p->plan_k % p->ring];
        if (p->cfg.mode == PREFETCH_ENCODE) {
            if ((size_t)p->plan_k * (size_t)p->B >= (size_t)p->n) {
                p->plan_done = 1;
                p->total = p->plan_k;
                pthread_cond_broadcast(&p->ready);
                return 1;
            }
            if (s->state != SLOT_FREE) return progress;
            s->k = p->plan_k;
            s->count = p->n - p->plan_k * p->B < p->B ? p->n - p->plan_k * p->B : p->B;
            for (int j = 0; j < s->count; j++) s->samples[j] = p->plan_k * p->B + j;
            s->has_err = 0;
            p->plan_k++;
            prefetch_start_fill(p, s);
            progress = 1;
            continue;
        }
        if (s->state == SLOT_FREE) {
            s->state = SLOT_PLANNING;
            s->k = p->plan_k;
            s->count = 0;
            s->has_err = 0;
        } else if (s->state != SLOT_PLANNING || s->k != p->plan_k) {
            return progress;   /* the slot still holds batch k − ring */
        }
        if (p->plan_pos == p->n) {   /* end of the epoch */
            p->plan_done = 1;
            int keep = s->count >= (p->B < 2 ? p->B : 2);
            if (keep) prefetch_start_fill(p, s);
            else s->state = SLOT_FREE;
            p->total = p->plan_k + keep;
            pthread_cond_broadcast(&p->ready);
            return 1;
        }
        int i = p->perm[p->plan_pos];
        int st = prefetch_status(p, i);
        if (st == CACHE_UNKNOWN) return progress;   /* wait for its decode */
        p->plan_pos++;
        progress = 1;
        if (st == CACHE_BAD) {
            p->skipped++;
            if (p->cfg.strict) {
                prefetch_strict_msg(p, i, p->cache->why[i], s->err, sizeof s->err);
                s->has_err = 1;
                s->state = SLOT_READY;
                p->plan_done = 1;
                p->total = p->plan_k + 1;
                pthread_cond_broadcast(&p->ready);
                return 1;
            }
            prefetch_warn_bad(p, i, p->cache->why[i]);
            continue;
        }
        s->samples[s->count++] = i;
        if (s->count == p->B) {
            p->plan_k++;
            prefetch_start_fill(p, s);
        }
    }
    return progress;
}

/* ---- fill tasks ------------------------------------------------------------------ */

/* The earliest FILLING slot with an unclaimed task, or NULL (under the lock). */
prefetch_slot *prefetch_find_task(dath_prefetch *p) {
    prefetch_slot *best = NULL;
    for (int r = 0; r < p->ring; r++) {
        prefetch_slot *s = &p->slots[r];
        if (s->state == SLOT_FILLING && s->next_j < s->count && (!best || s->k < best->k)) best = s;
    }
    return best;
}

/* Image j of slot s, outside the lock: its pixels (unless p->pixels is 0: then only its
 * labels and crop), labels and crop. Returns 0 when it decoded nothing, 1 when it
 * decoded a good image, 2 a bad one. */
int prefetch_fill_one(dath_prefetch *p, prefetch_slot *s, int j) {
    size_t unit = (size_t)p->R * (size_t)p->R * 3;
    int i = s->samples[j];
    int decoded = 0;
    uint8_t *dst = s->images + (size_t)j * unit;   /* [R, R, 3] */
    if (p->cfg.mode == PREFETCH_TRAIN) {
        /* several processes: pixels for this process's slice of the batch only, decoded
         * here when this process has not decoded the image yet */
        int W = p->cfg.shard_world, per = W > 1 ? s->count / W : 0, r = p->cfg.shard_rank;
        int mine = W <= 1 || (j >= r * per && j < (r + 1) * per);
        if (p->pixels && mine) {
            if (W > 1 && cache_status(p->cache, i) == CACHE_UNKNOWN)
                decoded = cache_decode(p->cache, p->l, i) == CACHE_OK ? 1 : 2;
            memcpy(dst, p->cache->pixels + (size_t)i * unit, unit);   /* zeros if it failed here */
        }
        prefetch_crop(s->crops + 3 * j, p->cfg.seed, p->epoch, i, p->R, p->S);
    } else {
        if (p->cache) {
            int known = cache_status(p->cache, i) != CACHE_UNKNOWN;
            int st = cache_decode(p->cache, p->l, i);
            s->ok[j] = st == CACHE_OK;
            decoded = known ? 0 : s->ok[j] ? 1 : 2;
            if (s->ok[j]) {
                if (p->pixels) memcpy(dst, p->cache->pixels + (size_t)i * unit, unit);
            } else {
                snprintf(s->why[j], PREFETCH_WHY_LEN, "%s", p->cache->why[i] ? p->cache->why[i] : "bad image");
            }
        } else {
            s->ok[j] = image_load(p->l->paths[i], p->R, p->cfg.max_pixels, dst, s->why[j], PREFETCH_WHY_LEN) == 0;
            decoded = s->ok[j] ? 1 : 2;
        }
        int32_t *c = s->crops + 3 * j;
        c[0] = c[1] = (p->R - p->S) / 2;
        c[2] = 0;
    }
    for (int k = 0; k < p->C; k++)
        s->labels[(size_t)j * p->C + k] = p->l->labels[(size_t)i * p->C + k];
    return decoded;
}

/* Encode: moves the good images of a filled slot to the front (samples, images,
 * labels, crops) and lists the bad rows with their reasons, in order. Runs outside the
 * lock, by the worker that finished the slot's last task (nobody else touches it). */
void prefetch_compact(dath_prefetch *p, prefetch_slot *s) {
    size_t unit = (size_t)p->R * (size_t)p->R * 3;
    int m = 0, nbad = 0;
    for (int j = 0; j < s->count; j++) {
        if (!s->ok[j]) {
            s->bad_rows[nbad] = s->samples[j];
            memcpy(s->bad_why[nbad], s->why[j], PREFETCH_WHY_LEN);
            nbad++;
            continue;
        }
        if (m != j) {
            s->samples[m] = s->samples[j];
            if (p->pixels) memcpy(s->images + (size_t)m * unit, s->images + (size_t)j * unit, unit);
            memcpy(s->labels + (size_t)m * p->C, s->labels + (size_t)j * p->C, (size_t)p->C * sizeof *s->labels);
            memcpy(s->crops + 3 * m, s->crops + 3 * j, 3 * sizeof *s->crops);
        }
        m++;
    }
    s->good = m;
}

