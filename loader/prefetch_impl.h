/* loader/prefetch_impl.h — the prefetcher's inside, shared by its two files (not for
 * other users: prefetch.h is the interface):
 *   prefetch.c       the workers and the consumer's side (create, epochs, next, release)
 *   prefetch_plan.c  what goes into which batch: the epoch's order, the crops, the
 *                    planning of train and encode batches, their fill tasks, warnings
 * Every function here runs under p->mu unless its comment says otherwise. */
#ifndef DATH_PREFETCH_IMPL_H
#define DATH_PREFETCH_IMPL_H

#include <pthread.h>

#include "cache.h"
#include "prefetch.h"

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

    /* several processes (prefetch.h): every image's status, once known; NULL otherwise */
    uint8_t *gstatus;         /* [n] CACHE_OK or CACHE_BAD */

    /* warnings, stats */
    uint8_t *warned;          /* [n] */
    int nwarned;
    char **pending;           /* warnings waiting for the consumer's thread */
    int npending, pending_cap;
    int bad_known, decoded, skipped, delivered_batches, delivered_images;
};

/* ---- prefetch_plan.c ---------------------------------------------------------------- */

/* Queues a message for the consumer's thread (under the lock). */
void prefetch_queue(dath_prefetch *p, const char *msg);

/* Names bad image i once, up to max_warnings (under the lock). */
void prefetch_warn_bad(dath_prefetch *p, int i, const char *why);

void prefetch_strict_msg(dath_prefetch *p, int i, const char *why, char *out, size_t len);

/* Calls cfg.warn for every queued message, outside the lock. */
void prefetch_drain(dath_prefetch *p);

/* Advances planning as far as it can. Returns 1 when anything changed. */
int prefetch_plan(dath_prefetch *p);

/* Image i's status as planning sees it: the shared one with several processes, else
 * the cache's (any thread). */
int prefetch_status(const dath_prefetch *p, int i);

/* The rank of the process whose share holds position pos of an epoch's order of n
 * images in batches of B split W ways (prefetch.h). */
int prefetch_share_owner(int pos, int n, int B, int W);

/* The earliest FILLING slot with an unclaimed task, or NULL (under the lock). */
prefetch_slot *prefetch_find_task(dath_prefetch *p);

/* Image j of slot s, outside the lock: its pixels (unless p->pixels is 0: then only its
 * labels and crop), labels and crop. Returns 0 when it decoded nothing, 1 when it
 * decoded a good image, 2 a bad one. */
int prefetch_fill_one(dath_prefetch *p, prefetch_slot *s, int j);

/* Encode: moves the good images of a filled slot to the front (samples, images,
 * labels, crops) and lists the bad rows with their reasons, in order. Runs outside the
 * lock, by the worker that finished the slot's last task (nobody else touches it). */
void prefetch_compact(dath_prefetch *p, prefetch_slot *s);

#endif
