/* checks/fuzz/fuzz_cache.c — libFuzzer target: the decoded-image cache file
 * (loader/cache.c, cache_load through cache_create), as `dath train --cache DIR` maps it.
 *
 * A list of FUZZ_N images (absent: their stat is the same every time) fixes the cache
 * file's name and key; the input is the file. Its 64-bit key (bytes 32..39 of the
 * header) is overwritten with the right one, which a mutation could not find, so that
 * the section offsets, the statuses and the reasons behind it are what gets fuzzed.
 * cache_create must treat the file as stale, or load it with every image's status ok or
 * bad, every pixel byte readable (read here) inside the file, and a reason for each bad
 * image. */
#include "../../loader/cache.h"
#include "fuzz.h"

enum { FUZZ_N = 3, FUZZ_R = 4, FUZZ_KEY_AT = 32 };

static dath_list *fuzz_l;
static char fuzz_cache_dir[600], fuzz_file[1200];
static uint8_t fuzz_key[8];

/* The list, and the key and file name a cache for it gets (from a file written once). */
static void fuzz_setup(void) {
    char list[600], err[1024];
    fuzz_path(list, sizeof list, "l.txt");
    FILE *f = fopen(list, "w");
    for (int i = 0; f && i < FUZZ_N; i++) fprintf(f, "absent%d.jpg %d 1\n", i, i & 1);
    if (!f || fclose(f)) abort();
    fuzz_path(fuzz_cache_dir, sizeof fuzz_cache_dir, "cache");
    fuzz_l = list_read(list, fuzz_dir(), err, sizeof err);
    dath_cache *c = fuzz_l ? cache_create(fuzz_l, FUZZ_R, 0, fuzz_cache_dir, err, sizeof err) : NULL;
    if (!c || cache_fill(c, fuzz_l, 1, err, sizeof err) != FUZZ_N || cache_save(c, NULL, err, sizeof err)) {
        fprintf(stderr, "fuzz_cache: setup: %s\n", err);
        abort();
    }
    snprintf(fuzz_file, sizeof fuzz_file, "%s", c->file);
    f = fopen(fuzz_file, "rb");
    if (!f || fseek(f, FUZZ_KEY_AT, SEEK_SET) || fread(fuzz_key, 1, 8, f) != 8) abort();
    fclose(f);
    cache_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_l) fuzz_setup();
    uint8_t *file = malloc(size + 1);
    memcpy(file, data, size);
    if (size >= FUZZ_KEY_AT + 8) memcpy(file + FUZZ_KEY_AT, fuzz_key, 8);
    fuzz_write(fuzz_file, file, size);
    free(file);
    char err[1024];
    dath_cache *c = cache_create(fuzz_l, FUZZ_R, 0, fuzz_cache_dir, err, sizeof err);
    if (!c) fuzz_fail(err);
    if (c->loaded) {
        if (!cache_complete(c)) fuzz_fail("a loaded cache with unknown statuses");
        for (int i = 0; i < FUZZ_N; i++) {
            int st = cache_status(c, i);
            if (st != CACHE_OK && st != CACHE_BAD) fuzz_fail("a bad status");
            if (st == CACHE_BAD && !c->why[i]) fuzz_fail("a bad image without its reason");
            if (c->why[i]) fuzz_touch(c->why[i], strlen(c->why[i]));
        }
        fuzz_touch(c->pixels, (size_t)FUZZ_N * FUZZ_R * FUZZ_R * 3);
    }
    cache_free(c);
    return 0;
}
