/* loader/prefetch.h — worker threads that fill a ring of batch buffers while the
 * consumer (the training loop, the encoder) works on the current batch.
 *
 * Usage:
 *   prefetch_config cfg = {.list = l, .mode = PREFETCH_TRAIN, .R = 256, .S = 224,
 *                          .B = 128, .seed = seed, .host_alloc = be->host_alloc,
 *                          .host_free = be->host_free};
 *   dath_prefetch *p = prefetch_create(&cfg, err, sizeof err);
 *   for (epoch = 0; epoch < E; epoch++) {
 *       prefetch_begin_epoch(p, epoch, err, sizeof err);
 *       prefetch_batch b;
 *       while ((rc = prefetch_next(p, &b, err, sizeof err)) == 0) {
 *           ... upload b.images / b.labels / b.crops, train ...
 *           prefetch_release(p, &b);
 *       }
 *       if (rc < 0) ... err names the file, the line and what is wrong ...
 *   }
 *   prefetch_destroy(p);
 *
 * Batches (PREFETCH_TRAIN):
 *   - the epoch's order is a permutation of the list: indices sorted by
 *     rng_u32(seed, RNG_SHUFFLE, epoch, i, 0), ties by index (prefetch_permutation);
 *   - batch k holds the next B good images of the permutation after batch k−1's:
 *     a bad image is skipped and the batch filled from the images after it, so which
 *     images a batch holds depends only on (seed, epoch, the list), never on the
 *     number of workers or their timing;
 *   - the last batch is kept when it is partial (n < B), as PyTorch's DataLoader does
 *     by default, unless it holds a single image (no pairs, no triplets): a lone last
 *     image is left out of that epoch. So an epoch has ⌈good/B⌉ batches, one fewer
 *     when good ≡ 1 (mod B) and B > 1;
 *   - crops [b] = (x, y, flip) of sample s = samples[b]:
 *     x = rng_u32(seed, RNG_CROP, epoch, s, 0) % (R−S+1), y likewise with c = 1,
 *     flip = rng_u32(seed, RNG_CROP, epoch, s, 2) & 1 (prefetch_crop);
 *   - images come from the decoded cache (cache.h), filled during the first epoch:
 *     workers decode ahead in the epoch's order while earlier batches are consumed,
 *     so the first epoch decodes every image once and later epochs only copy. With a
 *     cache directory, a valid cache file is mapped instead (no decoding at all), and
 *     once every image is decoded a worker writes the file in the background.
 * Batches (PREFETCH_ENCODE): the list in order, batch k from rows [kB, (k+1)B) less
 *   the bad ones (so n ≤ B; a batch whose images are all bad is not delivered; samples
 *   says which rows a batch holds), centre crops ((R−S)/2, (R−S)/2, 0). Images are
 *   decoded straight into the batch buffers, or kept in a decoded cache when `keep`
 *   or `cache_dir` is set (for repeated passes over the same list).
 *
 * The decoded set on the device: once every image's status is known (the end of the
 * first epoch at the latest, or at once when a cache file was mapped), prefetch_images
 * gives the whole decoded set as one [n, R, R, 3] array in list order. A consumer that
 * uploads it once can call prefetch_set_pixels(p, 0): from the next epoch on, batches
 * carry samples, labels and crops but no pixels (workers skip the copy, images is
 * NULL), and the consumer uploads `samples` as the transform's row index
 * (kernels/transform.h). Which samples, labels and crops a batch holds does not change.
 *
 * Bad images (missing, empty, truncated, corrupt, unreadable, see image.h): skipped.
 * The first max_warnings of them are named through cfg.warn, in the order the
 * consumer meets them; stats count them. With `strict`, the batch at which the first
 * bad image is met (in epoch order) is not delivered: prefetch_next returns −1 with
 * "LIST:LINE: PATH: reason", and so does every later call in that epoch.
 *
 * Threads: the consumer calls every function from one thread. cfg.warn runs in the
 * consumer's thread, inside prefetch_next. Workers block all signals (SIGINT and
 * SIGTERM reach the consumer's thread). Workers never exit or block the process:
 * a failure becomes a bad image or a message. prefetch_destroy stops the workers and
 * joins them, also mid-epoch; after an epoch consumed to its end it first lets the
 * cache file be finished (the decode-ahead of the images no batch took, then the write),
 * with one process (below: several never decode the whole list, and do not wait).
 *
 * Several processes (cfg.shard_world W > 1, this one shard_rank r; train mode): every
 * process plans the same global batches, and fills with pixels only the rows it trains,
 * r's slice [r·(n/W), (r+1)·(n/W)) of a batch of n (host/ranks.h's split); the other
 * rows carry samples, labels and crops. Planning needs every image's status, and a
 * status is known only once the image is decoded, so before the first epoch the
 * processes share that work out: prefetch_share_statuses decodes this process's share,
 * the images that fall in its slice of that epoch's batches if every image is readable
 * (exactly the images it then trains in that epoch, when every one is), and gives their
 * statuses; the caller adds them up over the processes (each image is in one share) and
 * hands the sum to prefetch_set_statuses. From then on a batch is planned exactly as one
 * process would plan it, and a fill task decodes a row of its slice that this process
 * has not decoded yet (after a bad image the slices shift; each later epoch's order
 * brings new images into them). So the cache of a process holds the images it has
 * trained so far: about n/W after the first epoch, n·(1 − (1 − 1/W)^e) after e epochs;
 * it is complete (prefetch_images, the decoded set on the device, prefetch_set_pixels)
 * only when a cache file gave it every image. There is no decode-ahead beyond the ring;
 * only shard_rank 0 writes a cache file, once its cache is complete.
 *
 * Memory: the batch buffers come from cfg.host_alloc (pinned on CUDA; malloc when
 * NULL) and are valid until prefetch_release. The consumer may hold up to ring − 1
 * batches at once; asking for another is an error, not a hang. The list must outlive
 * the prefetcher. Functions returning int give −1 with a message in err on error. */
#ifndef DATH_PREFETCH_H
#define DATH_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"

enum { PREFETCH_TRAIN = 0, PREFETCH_ENCODE = 1 };

typedef struct prefetch_config {
    const dath_list *list;
    int mode;                 /* PREFETCH_TRAIN or PREFETCH_ENCODE */
    int R, S, B;              /* cached side, crop side (S ≤ R), batch size */
    uint64_t seed;
    int workers;              /* worker threads; ≤ 0: one per core */
    int ring;                 /* batch buffers; ≤ 0: 3 (at least 2) */
    int strict;               /* 1: the first bad image is an error */
    int keep;                 /* encode: keep decoded images in memory across passes */
    const char *cache_dir;    /* cache file directory (cache.h); NULL: memory only */
    void *(*host_alloc)(size_t bytes);   /* NULL: malloc */
    void (*host_free)(void *p);          /* NULL: free */
    void (*warn)(void *user, const char *msg);   /* NULL: "warning: msg" on stderr */
    void *warn_user;
    int max_warnings;         /* bad images named; 0: 10; < 0: none */
    int64_t max_pixels;       /* larger images are bad (image.h); ≤ 0: 64 MP */
    int shard_rank, shard_world;   /* several processes (above); shard_world ≤ 1: this one alone */
} prefetch_config;

typedef struct prefetch_batch {
    int n;                    /* images in this batch (B, or fewer: see above) */
    int index;                /* batch number within the epoch (train: 0, 1, …) */
    int epoch;
    uint8_t *images;          /* [B, R, R, 3] HWC, the first n filled; NULL when the epoch
                                 began with pixels off (prefetch_set_pixels) */
    float *labels;            /* [B, C] 0/1 */
    int32_t *crops;           /* [B, 3] x, y, flip */
    int32_t *samples;         /* [B] the list rows */
    int slot;                 /* private */
} prefetch_batch;

typedef struct prefetch_stats {
    int n;                    /* images in the list */
    int epoch;                /* the current epoch */
    int batches, images;      /* delivered in this epoch so far */
    int skipped;              /* bad images skipped in this epoch so far */
    int bad;                  /* distinct bad images found so far */
    int decoded;              /* images decoded by this prefetcher so far */
    int batches_total;        /* batches in this epoch once known, else −1 */
    int batches_estimate;     /* batches_total when known, else from n and B */
    int cache_loaded;         /* 1 when the images came from a cache file */
    int cache_saved;          /* 1 once this prefetcher wrote the cache file */
} prefetch_stats;

typedef struct dath_prefetch dath_prefetch;

/* Validates cfg, allocates the ring, opens the cache (and cache file) and starts the
 * workers; nothing is delivered before prefetch_begin_epoch. Returns NULL with a
 * message in err. */
dath_prefetch *prefetch_create(const prefetch_config *cfg, char *err, size_t err_len);

/* Starts epoch `epoch` (≥ 0; train: keys the order and the crops). Every batch must
 * have been released. An unfinished epoch is abandoned. Returns 0, or −1. */
int prefetch_begin_epoch(dath_prefetch *p, int epoch, char *err, size_t err_len);

/* Waits for the next batch. Returns 0 with *b filled, 1 at the end of the epoch, −1
 * on error (strict mode's bad image, a batch held too long, no epoch begun). Before it
 * returns 1 for a training epoch it waits for the images no batch took to be decoded
 * ahead, so prefetch_images is non-NULL from the first epoch's end on. */
int prefetch_next(dath_prefetch *p, prefetch_batch *b, char *err, size_t err_len);

/* Gives the batch's buffers back to the ring. */
void prefetch_release(dath_prefetch *p, prefetch_batch *b);

void prefetch_stats_get(dath_prefetch *p, prefetch_stats *s);

/* The decoded set: every image of the list, [n, R, R, 3] uint8 HWC in list order, one
 * contiguous block (the cache's allocation, or the mapped cache file), with *count = n
 * (count may be NULL). A bad image's slot is all zeros. Returns NULL (and *count = 0)
 * until every image's status is known: before the first epoch ends unless a cache file
 * was mapped, and always in encode mode without `keep` or `cache_dir` (no cache). Once
 * non-NULL it stays so, its bytes never change, and it is valid until prefetch_destroy;
 * read-only (a mapped file is mapped read-only). Host memory, not pinned. */
const uint8_t *prefetch_images(dath_prefetch *p, size_t *count);

/* Pixels in the batches of the epochs begun from now on (the current epoch's batches
 * are not affected): on = 1 (the default) copies them, on = 0 leaves them out (images
 * NULL; samples, labels, crops and everything else unchanged). Turning pixels off is
 * refused, and nothing changes, while prefetch_images() is NULL. Returns the setting in
 * effect for the next epoch: 1 pixels, 0 none (so 1 after a refused 0). */
int prefetch_set_pixels(dath_prefetch *p, int on);

/* Several processes, before the first epoch (above): decodes this process's share of
 * epoch `epoch` with `workers` threads and fills status [n] with 1 (readable) or 2
 * (bad) for the images of its share, 0 for the others. Returns 0, or −1 with a message. */
int prefetch_share_statuses(dath_prefetch *p, int epoch, float *status, char *err, size_t err_len);

/* Every image's status, status [n] the sum over the processes of what
 * prefetch_share_statuses gave: planning follows it from now on. A bad image this
 * process has not decoded is decoded here for its reason. Returns 0, or −1 with a
 * message when a value is not 1 or 2 (an image in no share, or in two). */
int prefetch_set_statuses(dath_prefetch *p, const float *status, char *err, size_t err_len);

/* Stops and joins the workers, frees everything. NULL is allowed. */
void prefetch_destroy(dath_prefetch *p);

/* The epoch order: perm [n] gets the list indices sorted by
 * rng_u32(seed, RNG_SHUFFLE, epoch, i, 0), ties by index. Returns 0, or −1 when out
 * of memory. */
int prefetch_permutation(int *perm, int n, uint64_t seed, int epoch);

/* crop [3] for sample s in a training epoch (see above). */
void prefetch_crop(int32_t *crop, uint64_t seed, int epoch, int s, int R, int S);

#endif
