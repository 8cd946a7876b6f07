/* loader/prefetch.c — the batch prefetcher (see prefetch.h): its workers and the consumer's side;
 * what goes into which batch is prefetch_plan.c's (prefetch_impl.h).
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
#include "prefetch_impl.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

/* ---- workers --------------------------------------------------------------------- */

/* The next image to decode ahead, or −1 (under the lock). */
static int prefetch_claim_decode(dath_prefetch *p) {
    if (!p->cache || !p->unclaimed || !p->active || p->cfg.mode != PREFETCH_TRAIN || p->cfg.shard_world > 1) return -1;
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
                if (p->cache) {   /* a decode into the cache (encode with keep; a slice's row) */
                    p->known++;
                    p->claimed[s->samples[j]] = 1;
                    if (decoded == 2 && !p->gstatus) p->bad_known++;
                    if (decoded == 2 && p->gstatus && p->gstatus[s->samples[j]] == CACHE_OK) {
                        char msg[PREFETCH_MSG_LEN];
                        int i = s->samples[j];
                        snprintf(msg, sizeof msg, "%s:%d: %s: readable when the processes shared out the list, not now "
                                 "(%s): its pixels are zeros in this batch", p->l->file, p->l->lines[i], p->l->paths[i],
                                 p->cache->why[i] ? p->cache->why[i] : "bad image");
                        prefetch_queue(p, msg);
                    }
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
            if (p->known == p->n) pthread_cond_broadcast(&p->ready);   /* an epoch's end may wait */
            continue;   /* planning may now advance */
        }
        if (p->cache && p->cache->file && !p->cache->loaded && !p->saving && !p->saved &&
            !p->save_failed && p->known == p->n && (p->cfg.shard_world <= 1 || p->cfg.shard_rank == 0)) {
            p->saving = 1;
            pthread_mutex_unlock(&p->mu);
            char err[PREFETCH_MSG_LEN];
            int rc = cache_save(p->cache, NULL, err, sizeof err);
            pthread_mutex_lock(&p->mu);
            p->saving = 0;
            if (rc == 0) {
                p->saved = 1;
            } else {
                p->save_failed = 1;
                char msg[PREFETCH_MSG_LEN + 64];
                snprintf(msg, sizeof msg, "%s (continuing without it)", err);
                prefetch_queue(p, msg);
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
    free(p->gstatus);
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
    if (cfg->shard_world > 1 && (cfg->mode != PREFETCH_TRAIN || cfg->shard_rank < 0 || cfg->shard_rank >= cfg->shard_world ||
                                 cfg->B % cfg->shard_world)) {
        snprintf(err, err_len, "prefetch: process %d of %d: shares are for training batches that split evenly (B %d)",
                 cfg->shard_rank, cfg->shard_world, cfg->B);
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
    if (p->cfg.shard_world > 1 && !p->gstatus) {
        snprintf(err, err_len, "prefetch: process %d of %d: share the statuses out first (prefetch_set_statuses)",
                 p->cfg.shard_rank, p->cfg.shard_world);
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
        if (p->total >= 0 && p->consume_k >= p->total) {
            /* the end of a training epoch: the images no batch took may still be decoding
             * ahead; wait for them, so that the decoded set is whole after any epoch (one
             * process: several decode only their shares, so theirs is never whole) */
            if (p->cfg.mode == PREFETCH_TRAIN && p->cfg.shard_world <= 1 && p->cache && p->known < p->n) {
                pthread_cond_wait(&p->ready, &p->mu);
                continue;
            }
            rc = 1;
            break;
        }
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

/* ---- several processes: sharing out the statuses ------------------------------------ */

typedef struct share_job {
    dath_prefetch *p;
    const int *idx;           /* [count] images to decode */
    int count, next;
    pthread_mutex_t mu;
} share_job;

static void *share_worker(void *arg) {
    share_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int k = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (k >= j->count) return NULL;
        cache_decode(j->p->cache, j->p->l, j->idx[k]);
    }
}

/* Decodes idx[0..count) with the configured number of threads (outside the lock; no
 * epoch is active, so the prefetcher's workers are idle). */
static void share_decode(dath_prefetch *p, const int *idx, int count) {
    share_job j = {p, idx, count, 0, PTHREAD_MUTEX_INITIALIZER};
    int workers = p->cfg.workers > 0 ? p->cfg.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    if (workers > count) workers = count > 0 ? count : 1;
    pthread_t *tid = calloc((size_t)workers, sizeof *tid);
    int started = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int w = 0; tid && w < workers; w++)
        if (pthread_create(&tid[w], NULL, share_worker, &j) == 0) started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started == 0) share_worker(&j);
    for (int w = 0; w < started; w++) pthread_join(tid[w], NULL);
    free(tid);
    pthread_mutex_destroy(&j.mu);
}

/* Recounts what the cache knows (under the lock). */
static void share_recount(dath_prefetch *p) {
    int known = 0;
    for (int i = 0; i < p->n; i++)
        if (cache_status(p->cache, i) != CACHE_UNKNOWN) { known++; p->claimed[i] = 1; }
    p->decoded += known - p->known;
    p->known = known;
    p->unclaimed = p->n - known;
}

int prefetch_share_statuses(dath_prefetch *p, int epoch, float *status, char *err, size_t err_len) {
    int W = p->cfg.shard_world, r = p->cfg.shard_rank, n = p->n;
    if (W <= 1 || !p->cache) {
        snprintf(err, err_len, "prefetch: not one of several processes");
        return -1;
    }
    int *perm = malloc((size_t)n * sizeof *perm), *mine = malloc((size_t)n * sizeof *mine);
    if (!perm || !mine || prefetch_permutation(perm, n, p->cfg.seed, epoch)) {
        free(perm); free(mine);
        snprintf(err, err_len, "prefetch: out of memory for the share of process %d", r);
        return -1;
    }
    int count = 0;
    for (int pos = 0; pos < n; pos++) {
        status[perm[pos]] = 0;
        if (prefetch_share_owner(pos, n, p->B, W) == r) mine[count++] = perm[pos];
    }
    share_decode(p, mine, count);
    for (int k = 0; k < count; k++) status[mine[k]] = (float)cache_status(p->cache, mine[k]);
    pthread_mutex_lock(&p->mu);
    share_recount(p);
    pthread_mutex_unlock(&p->mu);
    free(perm);
    free(mine);
    return 0;
}

int prefetch_set_statuses(dath_prefetch *p, const float *status, char *err, size_t err_len) {
    int n = p->n;
    uint8_t *g = malloc((size_t)n);
    int *bad = malloc((size_t)n * sizeof *bad), nbad = 0, remote = 0;
    if (!g || !bad) {
        free(g); free(bad);
        snprintf(err, err_len, "prefetch: out of memory for the statuses");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        float v = status[i];
        if (v != (float)CACHE_OK && v != (float)CACHE_BAD) {
            snprintf(err, err_len, "prefetch: image %d (%s:%d) has status %g after the processes shared out the list "
                     "(1 or 2 expected: in no share, or in two)", i, p->l->file, p->l->lines[i], v);
            free(g); free(bad);
            return -1;
        }
        g[i] = (uint8_t)v;
        if (g[i] == CACHE_BAD) {
            nbad++;
            if (cache_status(p->cache, i) == CACHE_UNKNOWN) bad[remote++] = i;
        }
    }
    share_decode(p, bad, remote);   /* their reasons, for the warnings */
    pthread_mutex_lock(&p->mu);
    free(p->gstatus);
    p->gstatus = g;
    p->bad_known = nbad;
    share_recount(p);
    pthread_mutex_unlock(&p->mu);
    free(bad);
    return 0;
}

void prefetch_destroy(dath_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    /* An epoch consumed to its end while the cache file is still being made (the images
     * no batch took are still decoding ahead, or the file is being written): finish it,
     * so that a one-epoch run leaves its cache. A destroy mid-epoch does not wait, nor
     * one of several processes (none decodes the whole list: no file is made there). */
    int ended = p->active && p->total >= 0 && p->consume_k >= p->total && !p->failed && p->cfg.shard_world <= 1;
    while (ended && p->cache && p->cache->file && !p->cache->loaded && !p->saved && !p->save_failed)
        pthread_cond_wait(&p->ready, &p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int w = 0; w < p->nthreads; w++) pthread_join(p->threads[w], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    prefetch_free_all(p);
}
