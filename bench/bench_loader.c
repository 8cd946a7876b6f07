/* bench/bench_loader.c — loader throughput: decode + resize + centre crop (image_load)
 * in images/s per core, then with every core (cache_fill), then the prefetcher's
 * delivery rate once the images are cached (an epoch after the first).
 *
 *   build/bench/bench_loader [--dir DIR] [--n N]
 * Images are made with `dath mkdemo` (Fashion-MNIST mosaics) in DIR (default: a new
 * temporary directory, removed at the end): the demo's 64×64 JPEGs at R = 64 (the
 * cached side for input size 56), and 480×480 JPEGs at R = 256 (the paper's setting).
 * Mosaics have flat backgrounds, so they decode somewhat faster than photographs of
 * the same size. Prints; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../host/cli.h"
#include "../loader/cache.h"
#include "../loader/image.h"
#include "../loader/list.h"
#include "../loader/prefetch.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int make_set(const char *dir, const char *side, const char *n) {
    char *argv[] = {"mkdemo", "--out", (char *)dir, "--side", (char *)side, "--train", (char *)n,
                    "--test", "1", "--database", "1", NULL};
    return cmd_mkdemo(11, argv);
}

static void bench_set(const char *dir, int R, int n, int cores) {
    char list[1024], err[1024];
    snprintf(list, sizeof list, "%s/train.txt", dir);
    dath_list *l = list_read(list, dir, err, sizeof err);
    if (!l) { fprintf(stderr, "bench_loader: %s\n", err); return; }
    uint8_t *out = malloc((size_t)R * R * 3);   /* [R, R, 3] */
    char why[128];
    int m = l->n < n ? l->n : n, bad = 0;
    for (int i = 0; i < (m < 10 ? m : 10); i++) bad += image_load(l->paths[i], R, out, why, sizeof why) != 0;   /* warm the page cache */
    double t0 = now();
    for (int i = 0; i < m; i++) bad += image_load(l->paths[i], R, out, why, sizeof why) != 0;
    double one = now() - t0;
    free(out);

    dath_cache *c = cache_create(l, R, NULL, err, sizeof err);
    double all = 0;
    if (c) {
        t0 = now();
        cache_fill(c, l, cores, err, sizeof err);
        all = now() - t0;
        cache_free(c);
    }
    printf("%-34s R=%-4d 1 core: %8.0f images/s (%.3f ms/image)   %d cores: %8.0f images/s%s\n",
           dir, R, m / one, 1e3 * one / m, cores, l->n / all, bad ? "  (some images failed!)" : "");

    /* the prefetcher from the cache: epoch 0 decodes, epoch 1 only copies */
    int B = 128 < l->n ? 128 : l->n;
    prefetch_config cfg = {.list = l, .mode = PREFETCH_TRAIN, .R = R, .S = R * 224 / 256, .B = B,
                           .seed = 1, .workers = cores};
    dath_prefetch *p = prefetch_create(&cfg, err, sizeof err);
    if (p) {
        for (int e = 0; e < 2; e++) {
            t0 = now();   /* before begin_epoch: the workers start filling there */
            prefetch_begin_epoch(p, e, err, sizeof err);
            prefetch_batch b;
            int images = 0;
            while (prefetch_next(p, &b, err, sizeof err) == 0) {
                images += b.n;
                prefetch_release(p, &b);
            }
            double dt = now() - t0;
            printf("    prefetcher B=%d, %d workers, epoch %d (%s): %8.0f images/s\n", B, cores, e,
                   e == 0 ? "decoding" : "from the cache", images / dt);
        }
        prefetch_destroy(p);
    }
    list_free(l);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int n = 600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0) n = atoi(argv[i + 1]);
    }
    char tmp[64] = "/tmp/dath_bench_loader_XXXXXX";
    if (!dir) {
        if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
        dir = tmp;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char small[1024], big[1024], count[32], count_big[32];
    snprintf(small, sizeof small, "%s/s64", dir);
    snprintf(big, sizeof big, "%s/s480", dir);
    snprintf(count, sizeof count, "%d", n);
    snprintf(count_big, sizeof count_big, "%d", n / 3 > 2 ? n / 3 : 2);
    printf("loader throughput: decode + resize (triangle) + centre crop, %d cores\n", cores);
    if (make_set(small, "64", count) || make_set(big, "480", count_big)) {
        fprintf(stderr, "bench_loader: cannot make the images (is dataset-fashion-mnist installed?)\n");
        return 1;
    }
    bench_set(small, 64, n, cores);
    bench_set(big, 256, n / 3, cores);
    if (dir == tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "bench_loader: could not remove %s\n", tmp);
    }
    return 0;
}
