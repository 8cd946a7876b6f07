/* loader/cache.h — the decoded image set: every image of a list as the cached unit of
 * image.h (R×R RGB uint8, HWC), in host memory, optionally backed by a cache file that
 * later runs reuse, so that only one pass over a list ever decodes JPEGs.
 *
 * Memory: pixels [n, R, R, 3] uint8 plus a status per image (unknown, ok, bad). An
 * image is decoded at most once (cache_decode); a bad one keeps zero pixels and the
 * reason it was refused. Nothing is decoded up front by cache_create: the prefetcher
 * decodes during the first epoch (cache_fill decodes everything at once, for callers
 * that want that).
 *
 * The cache file (a directory given): DIR/<list name>-r<R>-<hash of the list's path>.dcache,
 * one per (list file, R). Its key is a 64-bit FNV-1a hash of: the list file's bytes,
 * each image's resolved path, size and modification time (ns), R, image_transform_id()
 * and the pixel limit.
 * A file whose key, size or header differs is stale: it is never read, and it is
 * replaced when the new pass completes. The file is written atomically (temporary file
 * in DIR, fsync, rename, fsync of DIR), so a crash never leaves a broken cache under its
 * name; two runs writing the same cache both leave a valid file. A loaded file is
 * mapped read-only (mmap), so it costs no decoding and no copy.
 * Layout (native little-endian): a 4096-byte header (magic "DATHCCH1", version, R, n,
 * key, section offsets, the transform and the list's path as text), status [n] uint8
 * (1 ok, 2 bad), padding to 4096, pixels [n, R, R, 3], then one "index<TAB>reason\n"
 * line per bad image.
 *
 * Threads: cache_decode may run in several threads at once for different images;
 * cache_status may be read from any thread at any time (an image's pixels and reason
 * are complete before its status says ok or bad). Everything else is single-threaded.
 * Errors: functions returning int give 0 (or a count) on success and -1 with a message
 * in err; the cache owns every buffer it points to, cache_free releases them. */
#ifndef DATH_CACHE_H
#define DATH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"

enum { CACHE_UNKNOWN = 0, CACHE_OK = 1, CACHE_BAD = 2 };

typedef struct dath_cache {
    int n, R;
    int64_t max_pixels;  /* image_load's pixel limit (image.h) */
    uint8_t *pixels;     /* [n, R, R, 3] HWC, one contiguous block (one allocation, or the
                            mapped file); image i valid once its status is known (all
                            zeros when CACHE_BAD) */
    uint8_t *status;     /* [n] CACHE_*; read it with cache_status */
    char **why;          /* [n] reason a CACHE_BAD image was refused, NULL otherwise */
    char *file;          /* the cache file; NULL without a directory */
    int loaded;          /* 1 when pixels and statuses came from the cache file */
    char note[512];      /* what happened with the cache file, for the log ("" without one) */
    /* private */
    uint64_t key;
    char *list_file;
    void *map;
    size_t map_len;
} dath_cache;

/* Allocates the cache for list l at side R (images over max_pixels refused; ≤ 0: the
 * default of image.h) and, when dir is not NULL, opens a valid cache file there
 * (creating dir when missing). A missing or stale file is not an error: note says what
 * was found; temporaries of killed writers are removed (atomic_remove_stale). Returns
 * NULL with a message in err (out of memory, the directory cannot be made, the list
 * file cannot be read for the key, or the file will have to be written and dir's file
 * system has not room for it). */
dath_cache *cache_create(const dath_list *l, int R, int64_t max_pixels, const char *dir, char *err, size_t err_len);

/* CACHE_UNKNOWN, CACHE_OK or CACHE_BAD; safe from any thread. */
int cache_status(const dath_cache *c, int i);

/* Decodes image i of l into the cache, unless its status is known. Returns the status.
 * Never exits; a failure marks the image bad with its reason. */
int cache_decode(dath_cache *c, const dath_list *l, int i);

/* Decodes every image whose status is unknown with `workers` threads (≤ 0: one per
 * core). Returns the number of bad images in the cache, or -1 with a message. */
int cache_fill(dath_cache *c, const dath_list *l, int workers, char *err, size_t err_len);

/* 1 when every image's status is known. */
int cache_complete(const dath_cache *c);

/* Writes the cache file atomically (the cache must be complete and have a file).
 * cancel, when not NULL, is read atomically between chunks: when it becomes non-zero the write
 * stops, the temporary file is removed and -1 is returned. */
int cache_save(dath_cache *c, const int *cancel, char *err, size_t err_len);

void cache_free(dath_cache *c);

#endif
