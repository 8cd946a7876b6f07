/* loader/prefetch.c — the batch prefetcher (see prefetch.h).
 *
 * Everything shared lives under one mutex. Workers pick, in this order:
 *   1. planning (train): walk the epoch's permutation, skipping bad images, and give
 *      batch k its B samples once every image it needs has a known status and batch
 *      k's ring slot is free (encode: batch k is rows [kB, (k+1)B));
 *   2. fill tasks: one image of the earliest planned batch: copy it from the cache
 *      (or decode it, encode), with its labels and crop; with pixels off for the
 *      epoch (prefetch_set_pixels), its labels and crop only;
 *   3. decode-ahead (train, and encode with a cache): the next image of the epoch's
 *      order whose status is unknown, decoded into the cache;
 *   4. writing the cache file, once every image's status is known;
 * and otherwise wait. Planning is sequential and follows the permutation, so batch
 * contents, warnings and the strict-mode error do not depend on the workers' timing.
 *
 * Slot life: FREE → PLANNING (train, samples accumulating) → FILLING (tasks claimed
 * by next_j, counted by done_j) → READY → HELD (the consumer) → FREE. busy counts fill
 * tasks running outside the lock; begin_epoch waits for it to reach 0. */
#include "prefetch.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/rng.h"
#include "cache.h"
#include "image.h"

enum { SLOT_FREE, SLOT_PLANNING, SLOT_FILLING, SLOT_READY, SLOT_HELD };
enum {
    PREFETCH_DEFAULT_RING = 3,
    PREFETCH_DEFAULT_WARNINGS = 10,
    PREFETCH_WHY_LEN = 96,
    PREFETCH_MSG_LEN = 1024,
};

typedef struct prefetch_slot {
    int state;
    int k;                    /* batch number in the epoch */
    int count;                /* samples in the batch (encode: before dropping bad ones) */
    int next_j, done_j;       /* fill tasks claimed / finished */
    int32_t *samples;         /* [B] list rows */
    uint8_t *images;          /* [B, R, R, 3] */
    float *labels;            /* [B, C] */
    int32_t *crops;           /* [B, 3] */
    uint8_t *ok;              /* [B] encode: 1 when image j decoded */
    char (*why)[PREFETCH_WHY_LEN];   /* [B] encode: reason image j is bad */
    int good;                 /* encode: images left after dropping the bad ones */
    int32_t *bad_rows;        /* [B] encode: the rows dropped, in order */
    char (*bad_why)[PREFETCH_WHY_LEN];   /* [B] encode: their reasons */
    int has_err;              /* strict: this batch delivers err instead */
    char err[PREFETCH_MSG_LEN];
} prefetch_slot;

struct dath_prefetch {
    prefetch_config cfg;
    char *cache_dir;
    const dath_list *l;
    int n, C, R, S, B, ring, max_warn;
    dath_cache *cache;        /* train always; encode with keep or cache_dir */
    prefetch_slot *slots;     /* [ring] */

    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    pthread_t *threads;
    int nthreads, stop;

    /* the epoch */
    int active, epoch;
    int *perm;                /* [n] the epoch's order */
    int plan_k, plan_pos, plan_done;
    int total;                /* batches this epoch, −1 until known */
    int consume_k;
    int busy;                 /* fill tasks running outside the lock */
    int failed;               /* strict error delivered: sticky */
    char fail_msg[PREFETCH_MSG_LEN];

    /* decode-ahead */
    uint8_t *claimed;         /* [n] 1 once a worker took image i */
    int decode_pos, unclaimed, known;

    /* pixels in the batches: `pixels` for the current epoch, `pixels_next` from the
     * next begin_epoch on (prefetch_set_pixels) */
    int pixels, pixels_next;

    /* cache file */
    int saving, saved, save_failed;
    char note[PREFETCH_MSG_LEN];

    /* warnings, stats */
    uint8_t *warned;          /* [n] */
    int nwarned;
    char **pending;           /* warnings waiting for the consumer's thread */
    int npending, pending_cap;
    int bad_known, decoded, skipped, delivered_batches, delivered_images;
};

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
static void prefetch_queue(dath_prefetch *p, const char *msg) {
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
static void prefetch_warn_bad(dath_prefetch *p, int i, const char *why) {
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

static void prefetch_strict_msg(dath_prefetch *p, int i, const char *why, char *out, size_t len) {
    snprintf(out, len, "%s:%d: %s: %s (--strict stops at the first bad image)", p->l->file,
             p->l->lines[i], p->l->paths[i], why ? why : "bad image");
}

/* Calls cfg.warn for every queued message, outside the lock. */
static void prefetch_drain(dath_prefetch *p) {
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

static void prefetch_start_fill(dath_prefetch *p, prefetch_slot *s) {
    s->state = SLOT_FILLING;
    s->next_j = s->done_j = 0;
    pthread_cond_broadcast(&p->work);
}

/* Advances planning as far as it can. Returns 1 when anything changed. */
static int prefetch_plan(dath_prefetch *p) {
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
        int st = cache_status(p->cache, i);
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
static prefetch_slot *prefetch_find_task(dath_prefetch *p) {
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
static int prefetch_fill_one(dath_prefetch *p, prefetch_slot *s, int j) {
    size_t unit = (size_t)p->R * (size_t)p->R * 3;
    int i = s->samples[j];
    int decoded = 0;
    uint8_t *dst = s->images + (size_t)j * unit;   /* [R, R, 3] */
    if (p->cfg.mode == PREFETCH_TRAIN) {
        if (p->pixels) memcpy(dst, p->cache->pixels + (size_t)i * unit, unit);
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
static void prefetch_compact(dath_prefetch *p, prefetch_slot *s) {
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

/* ---- workers --------------------------------------------------------------------- */

/* The next image to decode ahead, or −1 (under the lock). */
static int prefetch_claim_decode(dath_prefetch *p) {
    if (!p->cache || !p->unclaimed || !p->active || p->cfg.mode != PREFETCH_TRAIN) return -1;
    while (p->decode_pos < p->n) {
        int i = p->perm[p->decode_pos++];
        if (!p->claimed[i]) {
            p->claimed[i] = 1;
            p->unclaimed--;
            return i;
        }
    }
    return -1;
}

static void *prefetch_worker(void *arg) {
    dath_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (p->active && prefetch_plan(p)) continue;
        prefetch_slot *s = p->active ? prefetch_find_task(p) : NULL;
        if (s) {
            int j = s->next_j++;
            p->busy++;
            pthread_mutex_unlock(&p->mu);
            int decoded = prefetch_fill_one(p, s, j);
            pthread_mutex_lock(&p->mu);
            if (decoded) {
                p->decoded++;
                if (p->cache) {   /* a decode into the cache (encode with keep) */
                    p->known++;
                    if (decoded == 2) p->bad_known++;
                }
            }
            if (++s->done_j == s->count) {
                if (p->cfg.mode == PREFETCH_ENCODE) {
                    pthread_mutex_unlock(&p->mu);
                    prefetch_compact(p, s);
                    pthread_mutex_lock(&p->mu);
                }
                s->state = SLOT_READY;
                pthread_cond_broadcast(&p->ready);
            }
            if (--p->busy == 0) pthread_cond_broadcast(&p->ready);
            continue;
        }
        int i = prefetch_claim_decode(p);
        if (i >= 0) {
            pthread_mutex_unlock(&p->mu);
            int st = cache_decode(p->cache, p->l, i);
            pthread_mutex_lock(&p->mu);
            p->decoded++;
            p->known++;
            if (st == CACHE_BAD) p->bad_known++;
            continue;   /* planning may now advance */
        }
        if (p->cache && p->cache->file && !p->cache->loaded && !p->saving && !p->saved &&
            !p->save_failed && p->known == p->n) {
            p->saving = 1;
            pthread_mutex_unlock(&p->mu);
            char err[PREFETCH_MSG_LEN];
            int rc = cache_save(p->cache, NULL, err, sizeof err);
            pthread_mutex_lock(&p->mu);
            p->saving = 0;
            if (rc == 0) {
                p->saved = 1;
                snprintf(p->note, sizeof p->note, "%s", p->cache->note);
            } else {
                p->save_failed = 1;
                char msg[PREFETCH_MSG_LEN + 64];
                snprintf(msg, sizeof msg, "%s (continuing without it)", err);
                prefetch_queue(p, msg);
                snprintf(p->note, sizeof p->note, "%s", err);
            }
            pthread_cond_broadcast(&p->ready);
            continue;
        }
        pthread_cond_wait(&p->work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the consumer's side ----------------------------------------------------------- */

static void prefetch_free_all(dath_prefetch *p) {
    void (*hfree)(void *) = p->cfg.host_free ? p->cfg.host_free : free;
    if (p->slots) {
        for (int r = 0; r < p->ring; r++) {
            prefetch_slot *s = &p->slots[r];
            if (s->samples) hfree(s->samples);
            if (s->images) hfree(s->images);
            if (s->labels) hfree(s->labels);
            if (s->crops) hfree(s->crops);
            free(s->ok);
            free(s->why);
            free(s->bad_rows);
            free(s->bad_why);
        }
        free(p->slots);
    }
    for (int k = 0; k < p->npending; k++) free(p->pending[k]);
    free(p->pending);
    cache_free(p->cache);
    free(p->perm);
    free(p->claimed);
    free(p->warned);
    free(p->threads);
    free(p->cache_dir);
    free(p);
}

dath_prefetch *prefetch_create(const prefetch_config *cfg, char *err, size_t err_len) {
    const dath_list *l = cfg->list;
    if (!l || l->n < 1) {
        snprintf(err, err_len, "prefetch: no list");
        return NULL;
    }
    if (cfg->mode != PREFETCH_TRAIN && cfg->mode != PREFETCH_ENCODE) {
        snprintf(err, err_len, "prefetch: unknown mode %d", cfg->mode);
        return NULL;
    }
    if (cfg->S < 1 || cfg->R < cfg->S || cfg->B < 1) {
        snprintf(err, err_len, "prefetch: bad sizes (R %d, S %d, B %d): need 1 <= S <= R, B >= 1",
                 cfg->R, cfg->S, cfg->B);
        return NULL;
    }
    if ((cfg->host_alloc == NULL) != (cfg->host_free == NULL)) {
        snprintf(err, err_len, "prefetch: host_alloc and host_free go together");
        return NULL;
    }
    dath_prefetch *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_len, "prefetch: out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->l = l;
    p->n = l->n;
    p->C = l->C;
    p->R = cfg->R;
    p->S = cfg->S;
    p->B = cfg->B;
    p->ring = cfg->ring > 0 ? (cfg->ring < 2 ? 2 : cfg->ring) : PREFETCH_DEFAULT_RING;
    p->max_warn = cfg->max_warnings == 0 ? PREFETCH_DEFAULT_WARNINGS : (cfg->max_warnings < 0 ? -1 : cfg->max_warnings);
    p->total = -1;
    p->pixels = p->pixels_next = 1;
    if (cfg->cache_dir && !(p->cache_dir = strdup(cfg->cache_dir))) goto oom;
    p->cfg.cache_dir = p->cache_dir;

    p->perm = malloc((size_t)p->n * sizeof *p->perm);
    p->claimed = calloc((size_t)p->n, 1);
    p->warned = calloc((size_t)p->n, 1);
    p->slots = calloc((size_t)p->ring, sizeof *p->slots);
    if (!p->perm || !p->claimed || !p->warned || !p->slots) goto oom;
    void *(*halloc)(size_t) = cfg->host_alloc ? cfg->host_alloc : malloc;
    size_t unit = (size_t)p->R * (size_t)p->R * 3;
    for (int r = 0; r < p->ring; r++) {
        prefetch_slot *s = &p->slots[r];
        s->samples = halloc((size_t)p->B * sizeof *s->samples);
        s->images = halloc((size_t)p->B * unit);
        s->labels = halloc((size_t)p->B * (size_t)p->C * sizeof *s->labels);
        s->crops = halloc((size_t)p->B * 3 * sizeof *s->crops);
        if (!s->samples || !s->images || !s->labels || !s->crops) {
            snprintf(err, err_len, "prefetch: cannot allocate %d batch buffers of %.1f MiB (host memory)",
                     p->ring, (double)p->B * (double)unit / (1 << 20));
            prefetch_free_all(p);
            return NULL;
        }
        if (cfg->mode == PREFETCH_ENCODE) {
            s->ok = calloc((size_t)p->B, 1);
            s->why = calloc((size_t)p->B, sizeof *s->why);
            s->bad_rows = calloc((size_t)p->B, sizeof *s->bad_rows);
            s->bad_why = calloc((size_t)p->B, sizeof *s->bad_why);
            if (!s->ok || !s->why || !s->bad_rows || !s->bad_why) goto oom;
        }
    }
    if (cfg->mode == PREFETCH_TRAIN || cfg->keep || cfg->cache_dir) {
        p->cache = cache_create(l, p->R, cfg->max_pixels, p->cache_dir, err, err_len);
        if (!p->cache) {
            prefetch_free_all(p);
            return NULL;
        }
        snprintf(p->note, sizeof p->note, "%s", p->cache->note);
        for (int i = 0; i < p->n; i++) {
            int st = cache_status(p->cache, i);
            if (st != CACHE_UNKNOWN) { p->claimed[i] = 1; p->known++; }
            if (st == CACHE_BAD) p->bad_known++;
        }
    }
    p->unclaimed = p->n - p->known;

    int workers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    if (pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->work, NULL) ||
        pthread_cond_init(&p->ready, NULL)) {
        snprintf(err, err_len, "prefetch: cannot initialise the lock");
        prefetch_free_all(p);
        return NULL;
    }
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    if (!p->threads) goto oom_sync;
    /* workers block every signal, so SIGINT/SIGTERM reach the consumer's thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int w = 0; w < workers; w++)
        if (pthread_create(&p->threads[p->nthreads], NULL, prefetch_worker, p) == 0) p->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nthreads == 0) {
        snprintf(err, err_len, "prefetch: cannot start any worker thread");
        goto fail_sync;
    }
    return p;
oom_sync:
    snprintf(err, err_len, "prefetch: out of memory");
fail_sync:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    prefetch_free_all(p);
    return NULL;
oom:
    snprintf(err, err_len, "prefetch: out of memory");
    prefetch_free_all(p);
    return NULL;
}

int prefetch_begin_epoch(dath_prefetch *p, int epoch, char *err, size_t err_len) {
    if (epoch < 0) {
        snprintf(err, err_len, "prefetch: epoch %d is negative", epoch);
        return -1;
    }
    int *perm = malloc((size_t)p->n * sizeof *perm);   /* [n], computed outside the lock */
    if (!perm) {
        snprintf(err, err_len, "prefetch: out of memory");
        return -1;
    }
    if (p->cfg.mode == PREFETCH_TRAIN) {
        if (prefetch_permutation(perm, p->n, p->cfg.seed, epoch)) {
            free(perm);
            snprintf(err, err_len, "prefetch: out of memory for the epoch's order");
            return -1;
        }
    } else {
        for (int i = 0; i < p->n; i++) perm[i] = i;
    }
    pthread_mutex_lock(&p->mu);
    for (int r = 0; r < p->ring; r++) {
        if (p->slots[r].state == SLOT_HELD) {
            pthread_mutex_unlock(&p->mu);
            free(perm);
            snprintf(err, err_len, "prefetch: release every batch before starting epoch %d", epoch);
            return -1;
        }
    }
    p->active = 0;   /* no new fill task from here; wait for those running */
    while (p->busy) pthread_cond_wait(&p->ready, &p->mu);
    for (int r = 0; r < p->ring; r++) p->slots[r].state = SLOT_FREE;
    free(p->perm);
    p->perm = perm;
    p->epoch = epoch;
    p->pixels = p->pixels_next;
    p->plan_k = p->plan_pos = p->plan_done = 0;
    p->total = -1;
    p->consume_k = 0;
    p->decode_pos = 0;
    p->failed = 0;
    p->skipped = p->delivered_batches = p->delivered_images = 0;
    p->active = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int prefetch_next(dath_prefetch *p, prefetch_batch *b, char *err, size_t err_len) {
    pthread_mutex_lock(&p->mu);
    int rc;
    for (;;) {
        prefetch_drain(p);
        if (p->failed) {
            snprintf(err, err_len, "%s", p->fail_msg);
            rc = -1;
            break;
        }
        if (!p->active) {
            snprintf(err, err_len, "prefetch: call prefetch_begin_epoch first");
            rc = -1;
            break;
        }
        if (p->total >= 0 && p->consume_k >= p->total) { rc = 1; break; }
        prefetch_slot *s = &p->slots[p->consume_k % p->ring];
        if (s->state == SLOT_HELD) {
            snprintf(err, err_len, "prefetch: all %d batch buffers are held: release batch %d first",
                     p->ring, p->consume_k - p->ring);
            rc = -1;
            break;
        }
        if (s->state != SLOT_READY || s->k != p->consume_k) {
            pthread_cond_wait(&p->ready, &p->mu);
            continue;
        }
        if (p->cfg.mode == PREFETCH_ENCODE) {   /* name the bad rows, in order */
            for (int k = 0; k < s->count - s->good; k++) {
                int i = s->bad_rows[k];
                p->skipped++;
                if (!p->cache && !p->warned[i]) p->bad_known++;   /* no cache: first pass counts */
                if (p->cfg.strict) {
                    if (!s->has_err) prefetch_strict_msg(p, i, s->bad_why[k], s->err, sizeof s->err);
                    s->has_err = 1;
                    p->warned[i] = 1;
                } else {
                    prefetch_warn_bad(p, i, s->bad_why[k]);
                }
            }
            prefetch_drain(p);
        }
        if (s->has_err) {
            p->failed = 1;
            snprintf(p->fail_msg, sizeof p->fail_msg, "%s", s->err);
            s->state = SLOT_FREE;
            continue;
        }
        int n = p->cfg.mode == PREFETCH_ENCODE ? s->good : s->count;
        p->consume_k++;
        if (n == 0) {   /* encode: every image of this range was bad */
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&p->work);
            continue;
        }
        s->state = SLOT_HELD;
        b->n = n;
        b->index = s->k;
        b->epoch = p->epoch;
        b->images = p->pixels ? s->images : NULL;
        b->labels = s->labels;
        b->crops = s->crops;
        b->samples = s->samples;
        b->slot = (int)(s - p->slots);
        p->delivered_batches++;
        p->delivered_images += n;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void prefetch_release(dath_prefetch *p, prefetch_batch *b) {
    if (!b || b->slot < 0 || b->slot >= p->ring) return;
    pthread_mutex_lock(&p->mu);
    prefetch_slot *s = &p->slots[b->slot];
    if (s->state == SLOT_HELD && s->samples == b->samples) {
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&p->work);
    }
    b->slot = -1;
    pthread_mutex_unlock(&p->mu);
}

/* Every image's status known (under the lock): the cache's pixels are final. */
static int prefetch_all_known(const dath_prefetch *p) {
    return p->cache && p->known == p->n;
}

const uint8_t *prefetch_images(dath_prefetch *p, size_t *count) {
    pthread_mutex_lock(&p->mu);
    const uint8_t *px = prefetch_all_known(p) ? p->cache->pixels : NULL;
    pthread_mutex_unlock(&p->mu);
    if (count) *count = px ? (size_t)p->n : 0;
    return px;
}

int prefetch_set_pixels(dath_prefetch *p, int on) {
    pthread_mutex_lock(&p->mu);
    if (on || prefetch_all_known(p)) p->pixels_next = on ? 1 : 0;
    int now = p->pixels_next;
    pthread_mutex_unlock(&p->mu);
    return now;
}

void prefetch_stats_get(dath_prefetch *p, prefetch_stats *st) {
    pthread_mutex_lock(&p->mu);
    memset(st, 0, sizeof *st);
    st->n = p->n;
    st->epoch = p->epoch;
    st->batches = p->delivered_batches;
    st->images = p->delivered_images;
    st->skipped = p->skipped;
    st->bad = p->bad_known;
    st->decoded = p->decoded;
    st->batches_total = p->total;
    st->batches_estimate = p->total >= 0 ? p->total : (p->n + p->B - 1) / p->B;
    st->cache_loaded = p->cache ? p->cache->loaded : 0;
    st->cache_saved = p->saved;
    pthread_mutex_unlock(&p->mu);
}

void prefetch_note(dath_prefetch *p, char *buf, size_t len) {
    pthread_mutex_lock(&p->mu);
    snprintf(buf, len, "%s", p->note);
    pthread_mutex_unlock(&p->mu);
}

void prefetch_destroy(dath_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int w = 0; w < p->nthreads; w++) pthread_join(p->threads[w], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    prefetch_free_all(p);
}
