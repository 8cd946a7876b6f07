/* bench/bench_loader.c — loader throughput: decode + resize + centre crop (image_load)
 * in images/s per core, then with every core (cache_fill), then the prefetcher's
 * delivery rate once the images are cached (an epoch after the first).
 *
 *   build/bench/bench_loader [--dir DIR] [--n N]
 * Images are made with `dath mkdemo` (Fashion-MNIST mosaics) in DIR (default: a new
 * temporary directory, removed at the end): the demo's 64×64 JPEGs at R = 64 (the
 * cached side for input size 56), 480×480 JPEGs at R = 256 (the paper's setting), and
 * the photo sizes of MS-COCO and NUS-WIDE at R = 256: 640×480 and 1024×768, the centre
 * windows of 1024×1024 mosaics re-encoded with libjpeg (quality 90, 4:2:0 chroma, as
 * most camera JPEGs). Mosaics are upscaled items on flat backgrounds, so they decode
 * somewhat faster than photographs of the same size. Prints; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../host/cli.h"
#include "../loader/cache.h"
#include "../loader/image.h"
#include "../loader/list.h"
#include "../loader/prefetch.h"

#include <jpeglib.h>

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

/* Decodes a JPEG to RGB. Returns the pixels [h, w, 3] (caller frees) or NULL. No error
 * handler beyond libjpeg's default (which exits): the inputs are the bench's own files. */
static unsigned char *bench_read_jpeg(const char *path, int *w, int *h) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr jerr;
    d.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&d);
    jpeg_stdio_src(&d, f);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    jpeg_start_decompress(&d);
    *w = (int)d.output_width;
    *h = (int)d.output_height;
    unsigned char *p = malloc((size_t)*w * *h * 3);
    while (p && d.output_scanline < d.output_height) {
        JSAMPROW row = p + (size_t)d.output_scanline * *w * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    fclose(f);
    return p;
}

/* Writes rows [h, w, 3] (row stride `stride` bytes) as a JPEG of the given quality. */
static int bench_write_jpeg(const char *path, const unsigned char *p, int w, int h, size_t stride, int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(p + (size_t)c.next_scanline * stride);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) ? -1 : 0;
}

/* dst/train.txt and dst/NNNNNN.jpg: the centre W×H window of each image of src's list. */
static int make_cropped(const char *src, const char *dst, int W, int H) {
    char list[1024], err[1024], path[1200];
    snprintf(list, sizeof list, "%s/train.txt", src);
    dath_list *l = list_read(list, src, err, sizeof err);
    if (!l || mkdir(dst, 0755)) { fprintf(stderr, "bench_loader: %s\n", l ? dst : err); list_free(l); return -1; }
    snprintf(path, sizeof path, "%s/train.txt", dst);
    FILE *lf = fopen(path, "w");
    int rc = lf ? 0 : -1;
    for (int i = 0; i < l->n && rc == 0; i++) {
        int w, h;
        unsigned char *p = bench_read_jpeg(l->paths[i], &w, &h);   /* [h, w, 3] */
        if (!p || w < W || h < H) { free(p); rc = -1; break; }
        const unsigned char *win = p + ((size_t)((h - H) / 2) * w + (size_t)((w - W) / 2)) * 3;
        snprintf(path, sizeof path, "%s/%06d.jpg", dst, i);
        rc = bench_write_jpeg(path, win, W, H, (size_t)w * 3, 90);
        free(p);
        fprintf(lf, "%06d.jpg", i);
        for (int j = 0; j < l->C; j++) fprintf(lf, " %d", l->labels[(size_t)i * l->C + j]);
        fputc('\n', lf);
    }
    if (lf && fclose(lf)) rc = -1;
    list_free(l);
    if (rc) fprintf(stderr, "bench_loader: cannot make the %dx%d set in %s\n", W, H, dst);
    return rc;
}

static void bench_set(const char *dir, int R, int n, int cores) {
    char list[1024], err[1024];
    snprintf(list, sizeof list, "%s/train.txt", dir);
    dath_list *l = list_read(list, dir, err, sizeof err);
    if (!l) { fprintf(stderr, "bench_loader: %s\n", err); return; }
    uint8_t *out = malloc((size_t)R * R * 3);   /* [R, R, 3] */
    char why[128];
    int m = l->n < n ? l->n : n, bad = 0;
    for (int i = 0; i < (m < 10 ? m : 10); i++) bad += image_load(l->paths[i], R, 0, out, why, sizeof why) != 0;   /* warm the page cache */
    double t0 = now();
    for (int i = 0; i < m; i++) bad += image_load(l->paths[i], R, 0, out, why, sizeof why) != 0;
    double one = now() - t0;
    free(out);

    dath_cache *c = cache_create(l, R, 0, NULL, err, sizeof err);
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
    char small[1024], big[1024], huge[1024], vga[1024], xga[1024], count[32], count_big[32];
    snprintf(small, sizeof small, "%s/s64", dir);
    snprintf(big, sizeof big, "%s/s480", dir);
    snprintf(huge, sizeof huge, "%s/s1024", dir);
    snprintf(vga, sizeof vga, "%s/640x480", dir);
    snprintf(xga, sizeof xga, "%s/1024x768", dir);
    snprintf(count, sizeof count, "%d", n);
    snprintf(count_big, sizeof count_big, "%d", n / 3 > 2 ? n / 3 : 2);
    printf("loader throughput: decode + resize (triangle) + centre crop, %d cores\n", cores);
    if (make_set(small, "64", count) || make_set(big, "480", count_big) || make_set(huge, "1024", count_big)) {
        fprintf(stderr, "bench_loader: cannot make the images (is dataset-fashion-mnist installed?)\n");
        return 1;
    }
    if (make_cropped(huge, vga, 640, 480) || make_cropped(huge, xga, 1024, 768)) return 1;
    bench_set(small, 64, n, cores);
    bench_set(big, 256, n / 3, cores);
    bench_set(vga, 256, n / 3, cores);
    bench_set(xga, 256, n / 3, cores);
    if (dir == tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "bench_loader: could not remove %s\n", tmp);
    }
    return 0;
}
