/* checks/test_loader.c — decoding, the decoded cache and the prefetcher (loader/).
 *
 * Fixtures are made here, in a temporary directory: JPEGs and PNGs written with
 * stb_image_write, and the bad set (a missing file, a zero-byte file, a JPEG cut in
 * half, a JPEG without its last 2 bytes (EOI), random bytes, a JPEG header followed
 * by garbage, a PNG cut in half). Checked:
 *   - image_load classifies each bad file with its own reason and decodes the good
 *     ones, a PNG with alpha and a grey PNG included;
 *   - the resize + centre crop matches an independent double-precision reference of
 *     the triangle filter and torchvision's size and crop rules, within 1 grey level
 *     (stb resamples in float and rounds once);
 *   - the cache marks exactly the bad images and its pixels equal a fresh decode;
 *   - the prefetcher, with 1 and with 4 workers, gives identical batches (samples,
 *     images, labels, crops) for the same seed and epoch; each epoch holds every good
 *     image once in the permutation's order, never a bad one; the bad ones are named
 *     once each; crops follow the counter-based formula; epochs differ;
 *   - --strict stops at the first bad image of the epoch's order;
 *   - encode mode keeps the list order and centre crops;
 *   - the cache file is written, read back (no decoding, same batches), and a changed
 *     list or a touched image makes it stale;
 *   - holding every ring buffer is an error, not a hang; destroy mid-epoch returns;
 *   - the decoded set (prefetch_images): NULL before the first epoch, then every image
 *     in list order (bad ones all zeros), also straight from a mapped cache file; with
 *     pixels off (prefetch_set_pixels), 1 and 4 workers give the samples, labels and
 *     crops of pixels on, no images, and gathering the set by samples gives the pixels
 *     a batch with pixels carries; refused before the set is complete; an epoch
 *     already begun keeps its pixels. */
#include <fcntl.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../kernels/rng.h"
#include "../loader/cache.h"
#include "../loader/image.h"
#include "../loader/list.h"
#include "../loader/prefetch.h"
#include "../host/cli.h"

#include "jpeg_fixtures.h"

/* The decoder dath used before libjpeg-turbo (stb_image 2.27's JPEG decoder and the same
 * resize), compiled here as the reference "today's pixels" are compared with, on good
 * files only. */
#define STBI_ASSERT(x) ((void)0)   /* as image.c compiled them: no assertion aborts */
#define STBIR_ASSERT(x) ((void)0)
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
/* stb_image.h declares every decoder's entry point static; with STBI_ONLY_JPEG most are
 * never defined, which GCC reports at the end of the file */
#pragma GCC diagnostic ignored "-Wunused-function"

/* Tolerance of the resize against the double-precision reference, in grey levels. */
static const double RESIZE_ATOL = 1.0, RESIZE_RTOL = 0.0;

enum { C = 5, NGOOD = 18, NBAD = 7 };

static char dir[64];
static char list_path[256];
static uint64_t rs = 12345;

/* ---- fixtures ----------------------------------------------------------------------- */

/* A smooth colour pattern with edges: [h, w, c]. */
static unsigned char *pattern(int w, int h, int c, int variant) {
    unsigned char *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double v = 128 + 90 * sin(0.21 * x * (ch + 1) + 0.13 * y + variant) +
                           ((x / 7 + y / 5 + variant) % 3 == 0 ? 30 : -20) + (check_unif(&rs) - 0.5) * 20;
                p[((size_t)y * w + x) * c + ch] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return p;
}

static void path_of(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%.150s", dir, name); }

static void write_jpg(const char *name, int w, int h, int variant) {
    char path[256];
    path_of(path, sizeof path, name);
    unsigned char *p = pattern(w, h, 3, variant);
    if (!stbi_write_jpg(path, w, h, 3, p, 90)) check_skip("cannot write a fixture JPEG");
    free(p);
}

static void write_png(const char *name, int w, int h, int c, int variant) {
    char path[256];
    path_of(path, sizeof path, name);
    unsigned char *p = pattern(w, h, c, variant);
    if (!stbi_write_png(path, w, h, c, p, w * c)) check_skip("cannot write a fixture PNG");
    free(p);
}

static unsigned char *read_all(const char *name, size_t *len) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    if (!f) check_skip("cannot read a fixture");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) check_skip("short read of a fixture");
    fclose(f);
    return b;
}

static void write_bytes(const char *name, const void *data, size_t len) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) check_skip("cannot write a fixture");
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

/* The list: good and bad images interleaved. names[i], bad[i] (expected reason or NULL). */
static const char *names[NGOOD + NBAD];
static const char *bad_reason[NGOOD + NBAD];

static void make_fixtures(void) {
    static char good_names[NGOOD][32];
    int sizes[NGOOD][2] = {{90, 60}, {48, 72}, {40, 40}, {64, 64}, {100, 37}, {33, 50},
                           {70, 70}, {32, 32}, {120, 90}, {45, 45}, {60, 80}, {37, 36},
                           {80, 40}, {50, 50}, {44, 66}, {99, 98}, {36, 90}, {72, 48}};
    for (int g = 0; g < NGOOD; g++) {
        if (g == 2) { snprintf(good_names[g], 32, "rgba.png"); write_png(good_names[g], 70, 50, 4, g); }
        else if (g == 5) { snprintf(good_names[g], 32, "grey.png"); write_png(good_names[g], 40, 40, 1, g); }
        else if (g == 7) { snprintf(good_names[g], 32, "trailing.jpg"); }
        else { snprintf(good_names[g], 32, "g%02d.jpg", g); write_jpg(good_names[g], sizes[g][0], sizes[g][1], g); }
    }
    /* a JPEG followed by junk after its EOI: still good */
    write_jpg("base.jpg", 64, 48, 99);
    size_t len;
    unsigned char *jpg = read_all("base.jpg", &len);
    unsigned char *junk = malloc(len + 100);
    memcpy(junk, jpg, len);
    for (int k = 0; k < 100; k++) junk[len + (size_t)k] = (unsigned char)check_next(&rs);
    write_bytes("trailing.jpg", junk, len + 100);
    free(junk);
    /* the bad set */
    write_bytes("empty.jpg", "", 0);
    write_bytes("trunc.jpg", jpg, len / 2);
    write_bytes("noeoi.jpg", jpg, len - 2);
    unsigned char rnd[3000];
    for (size_t k = 0; k < sizeof rnd; k++) rnd[k] = (unsigned char)check_next(&rs);
    write_bytes("corrupt.jpg", rnd, sizeof rnd);
    rnd[0] = 0xFF; rnd[1] = 0xD8; rnd[2] = 0xFF; rnd[3] = 0xDB; rnd[4] = 0x00; rnd[5] = 0x03;
    write_bytes("badheader.jpg", rnd, sizeof rnd);
    free(jpg);
    write_png("cut_src.png", 60, 60, 3, 7);
    unsigned char *png = read_all("cut_src.png", &len);
    write_bytes("trunc.png", png, len / 2);
    free(png);

    static const char *bad_names[NBAD] = {"missing.jpg", "empty.jpg", "trunc.jpg", "noeoi.jpg",
                                          "corrupt.jpg", "badheader.jpg", "trunc.png"};
    static const char *bad_why[NBAD] = {"missing file", "empty file", "truncated JPEG",
                                        "truncated JPEG", "unknown format", "cannot decode",
                                        "truncated PNG"};
    int g = 0, b = 0;
    for (int i = 0; i < NGOOD + NBAD; i++) {
        int take_bad = (i % 3 == 1) && b < NBAD;   /* rows 1, 4, 7, …, 19: bad */
        if (take_bad) { names[i] = bad_names[b]; bad_reason[i] = bad_why[b]; b++; }
        else { names[i] = good_names[g++]; bad_reason[i] = NULL; }
    }
    snprintf(list_path, sizeof list_path, "%s/list.txt", dir);
    FILE *f = fopen(list_path, "w");
    for (int i = 0; i < NGOOD + NBAD; i++) {
        fprintf(f, "%s", names[i]);
        for (int j = 0; j < C; j++) fprintf(f, " %d", (int)((check_next(&rs) >> 20) & 1));
        fprintf(f, "\n");
    }
    fclose(f);
}

/* ---- the resize reference ------------------------------------------------------------ */

/* Python's round(d / 2) (halves to even). */
static int ref_offset(int d) {
    double h = d / 2.0, fl = floor(h);
    if (h - fl != 0.5) return (int)floor(h + 0.5);
    return ((long)fl % 2 == 0) ? (int)fl : (int)fl + 1;
}

/* One axis of the triangle filter: out[o] for o in [0, R), source size n, scale s, shift off. */
static void ref_weights(double *wt, int *lo, int *hi, int o, int n, double s, double off) {
    double c = (o + 0.5 + off) / s;                 /* centre in source coordinates */
    double r = s < 1 ? 1 / s : 1;                   /* support radius in source pixels */
    *lo = (int)floor(c - r) - 1;
    *hi = (int)ceil(c + r) + 1;
    double sum = 0;
    for (int k = *lo; k <= *hi; k++) {
        double t = fabs(k + 0.5 - c) / r;
        wt[k - *lo] = t < 1 ? 1 - t : 0;
        sum += wt[k - *lo];
    }
    for (int k = *lo; k <= *hi; k++) wt[k - *lo] /= sum;
    (void)n;
}

/* Reference of image_load's transform on decoded pixels src [h, w, 3] → out [R, R, 3]. */
static void ref_transform(double *out, const unsigned char *src, int w, int h, int R) {
    int rw, rh;
    if (w <= h) { rw = R; rh = (int)((double)R * h / w); }
    else { rh = R; rw = (int)((double)R * w / h); }
    double sx = (double)rw / w, sy = (double)rh / h;
    int ox = ref_offset(rw - R), oy = ref_offset(rh - R);
    double *tmp = calloc((size_t)h * R * 3, sizeof *tmp);   /* [h, R, 3] horizontal pass */
    double wt[4096];
    for (int x = 0; x < R; x++) {
        int lo, hi;
        ref_weights(wt, &lo, &hi, x, w, sx, ox);
        for (int y = 0; y < h; y++)
            for (int ch = 0; ch < 3; ch++) {
                double v = 0;
                for (int k = lo; k <= hi; k++) {
                    int kk = k < 0 ? 0 : k >= w ? w - 1 : k;
                    v += wt[k - lo] * src[((size_t)y * w + kk) * 3 + ch];
                }
                tmp[((size_t)y * R + x) * 3 + ch] = v;
            }
    }
    for (int y = 0; y < R; y++) {
        int lo, hi;
        ref_weights(wt, &lo, &hi, y, h, sy, oy);
        for (int x = 0; x < R; x++)
            for (int ch = 0; ch < 3; ch++) {
                double v = 0;
                for (int k = lo; k <= hi; k++) {
                    int kk = k < 0 ? 0 : k >= h ? h - 1 : k;
                    v += wt[k - lo] * tmp[((size_t)kk * R + x) * 3 + ch];
                }
                out[((size_t)y * R + x) * 3 + ch] = v;
            }
    }
    free(tmp);
}

/* Writes a lossless PNG with c channels, loads it through image_load at side R and
 * compares with the reference on its RGB (grey expanded, alpha dropped). */
static void check_resize(const char *name, int w, int h, int c, int R) {
    unsigned char *p = pattern(w, h, c, w + h);
    char path[256];
    path_of(path, sizeof path, name);
    stbi_write_png(path, w, h, c, p, w * c);
    unsigned char *rgb = malloc((size_t)w * h * 3);   /* [h, w, 3] */
    for (size_t k = 0; k < (size_t)w * h; k++)
        for (int ch = 0; ch < 3; ch++) rgb[k * 3 + ch] = p[k * c + (c >= 3 ? ch : 0)];
    uint8_t *got = malloc((size_t)R * R * 3);
    double *ref = malloc((size_t)R * R * 3 * sizeof *ref), *g = malloc((size_t)R * R * 3 * sizeof *g);
    char why[128];
    int rc = image_load(path, R, 0, got, why, sizeof why);
    char label[128];
    snprintf(label, sizeof label, "%s %dx%dx%d loads at R=%d", name, w, h, c, R);
    CHECK_TRUE(label, rc == 0);
    ref_transform(ref, rgb, w, h, R);
    for (size_t k = 0; k < (size_t)R * R * 3; k++) g[k] = got[k];
    snprintf(label, sizeof label, "resize+crop %s vs reference", name);
    check_close_d(label, g, ref, (size_t)R * R * 3, RESIZE_ATOL, RESIZE_RTOL);
    free(p); free(rgb); free(got); free(ref); free(g);
}

/* ---- prefetcher runs ---------------------------------------------------------------- */

typedef struct run {
    int nb;                   /* batches */
    int n[64], index[64];
    int32_t samples[64][32], crops[64][32 * 3];
    float labels[64][32 * C];
    uint8_t *images[64];      /* [n, R, R, 3] copies; NULL when the batch had none */
    prefetch_stats st;
    int rc_end;
    char err[512];
    int nwarn;
    char warn[32][512];
} run;

static void collect_warn(void *user, const char *msg) {
    run *r = user;
    if (r->nwarn < 32) snprintf(r->warn[r->nwarn], sizeof r->warn[0], "%s", msg);
    r->nwarn++;
}

static void run_free(run *r) {
    for (int k = 0; k < r->nb; k++) free(r->images[k]);
    memset(r, 0, sizeof *r);
}

/* Runs one epoch of an already-created prefetcher into r. */
static void run_epoch(dath_prefetch *p, run *r, int epoch, int R) {
    char err[512];
    if (prefetch_begin_epoch(p, epoch, err, sizeof err)) {
        snprintf(r->err, sizeof r->err, "%s", err);
        r->rc_end = -1;
        return;
    }
    prefetch_batch b;
    int rc;
    size_t unit = (size_t)R * R * 3;
    while ((rc = prefetch_next(p, &b, err, sizeof err)) == 0 && r->nb < 64) {
        int k = r->nb++;
        r->n[k] = b.n;
        r->index[k] = b.index;
        memcpy(r->samples[k], b.samples, (size_t)b.n * sizeof *b.samples);
        memcpy(r->crops[k], b.crops, (size_t)b.n * 3 * sizeof *b.crops);
        memcpy(r->labels[k], b.labels, (size_t)b.n * C * sizeof *b.labels);
        if (b.images) {
            r->images[k] = malloc((size_t)b.n * unit);
            memcpy(r->images[k], b.images, (size_t)b.n * unit);
        }
        prefetch_release(p, &b);
    }
    r->rc_end = rc;
    if (rc < 0) snprintf(r->err, sizeof r->err, "%s", err);
    prefetch_stats_get(p, &r->st);
}

/* Same batches: counts, numbers, samples, crops, labels and (with_images) pixels. */
static int runs_same(const run *a, const run *b, int R, int with_images) {
    if (a->nb != b->nb || a->rc_end != b->rc_end) return 0;
    for (int k = 0; k < a->nb; k++) {
        if (a->n[k] != b->n[k] || a->index[k] != b->index[k]) return 0;
        if (memcmp(a->samples[k], b->samples[k], (size_t)a->n[k] * sizeof(int32_t))) return 0;
        if (memcmp(a->crops[k], b->crops[k], (size_t)a->n[k] * 3 * sizeof(int32_t))) return 0;
        if (memcmp(a->labels[k], b->labels[k], (size_t)a->n[k] * C * sizeof(float))) return 0;
        if (with_images && (!a->images[k] || !b->images[k] ||
                            memcmp(a->images[k], b->images[k], (size_t)a->n[k] * R * R * 3)))
            return 0;
    }
    return 1;
}

static int runs_equal(const run *a, const run *b, int R) { return runs_same(a, b, R, 1); }

/* Batches with no images at all (pixels off). */
static int run_has_no_images(const run *r) {
    for (int k = 0; k < r->nb; k++)
        if (r->images[k]) return 0;
    return r->nb > 0;
}

/* Each batch's pixels are the decoded set's rows named by its samples: what a consumer
 * gets by gathering the set with samples as the index. */
static int run_is_gather(const run *r, const uint8_t *set, size_t unit) {
    for (int k = 0; k < r->nb; k++)
        for (int j = 0; j < r->n[k]; j++)
            if (!r->images[k] || memcmp(r->images[k] + (size_t)j * unit, set + (size_t)r->samples[k][j] * unit, unit))
                return 0;
    return r->nb > 0;
}

/* prefetch_images' block: n images in list order, each the decode (ref, a filled cache),
 * a bad image all zeros. */
static int set_is_decode(const uint8_t *set, size_t count, const dath_cache *ref, size_t unit) {
    if (!set || count != (size_t)ref->n) return 0;
    for (int i = 0; i < ref->n; i++) {
        const uint8_t *img = set + (size_t)i * unit;   /* [R, R, 3] */
        if (cache_status(ref, i) == CACHE_OK) {
            if (memcmp(img, ref->pixels + (size_t)i * unit, unit)) return 0;
        } else {
            for (size_t b = 0; b < unit; b++)
                if (img[b]) return 0;
        }
    }
    return 1;
}

static dath_prefetch *make(const dath_list *l, int mode, int R, int S, int B, int workers, int strict,
                           const char *cache_dir, run *warn_to, int ring) {
    prefetch_config cfg = {.list = l, .mode = mode, .R = R, .S = S, .B = B, .seed = 7,
                           .workers = workers, .strict = strict, .cache_dir = cache_dir,
                           .warn = collect_warn, .warn_user = warn_to, .ring = ring};
    char err[512];
    dath_prefetch *p = prefetch_create(&cfg, err, sizeof err);
    if (!p) printf("     prefetch_create: %s\n", err);
    return p;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The epoch's order, computed here from rng_u32 directly. */
static void expected_order(int *perm, int n, int epoch) {
    uint64_t *key = malloc((size_t)n * sizeof *key);
    for (int i = 0; i < n; i++)
        key[i] = (uint64_t)rng_u32(7, RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i, 0) << 32 | (uint32_t)i;
    qsort(key, (size_t)n, sizeof *key, cmp_u64);
    for (int i = 0; i < n; i++) perm[i] = (int)(key[i] & 0xffffffffu);
    free(key);
}

/* ---- issue 10: limits, crafted files, libjpeg-turbo against stb_image ---------------- */

/* Tolerances of libjpeg-turbo's decode + resize against stb_image's (what dath cached
 * before) on the same JPEG, in grey levels of the cached uint8 pixels:
 *   - no DCT scaling (shorter side < 2R): every value within 3, mean within 0.2: the two
 *     decoders' integer IDCTs, chroma upsampling and colour conversion round differently
 *     (measured: max 2, mean 0.01-0.08 here; max 2, mean 0.17 on a 720x477 photograph);
 *   - DCT scaling 1/2, 1/4, 1/8: decoding at 1/d keeps the low frequencies of each 8x8
 *     block exactly (a sharp cut, some ringing) where the triangle filter alone blurs
 *     them, so detailed images differ most: on pattern(), per-pixel noise and stripes of
 *     5-15 pixels, the hardest case, mean within 6 (10 for CMYK, whose four channels are
 *     scaled before they are multiplied), 99.9% of values within 48, all within 64
 *     (measured mean 2.1-5.0, CMYK 7.5, 99.9% within 41, max 46); on Fashion-MNIST
 *     mosaics (real, smooth) mean within 0.5, 99.9% within 8, all within 16 (measured
 *     mean 0.11-0.24, 99.9% within 7, max 10). A 720x477 photograph of a circuit board
 *     measured mean 1.7 (R = 128, 1/2) to 3.3 (R = 73, 1/2), max 24 (README). */
typedef struct tolerance { double max, mean, p999; } tolerance;
static const tolerance TOL_UNSCALED = {3, 0.2, 3};
static const tolerance TOL_PATTERN = {64, 6, 48}, TOL_PATTERN_CMYK = {64, 10, 48};
static const tolerance TOL_MOSAIC = {16, 0.5, 8};

/* The stb path dath used before: decode the JPEG, shorter side to R, centre crop. */
static int stb_reference(const unsigned char *jpg, size_t len, int R, uint8_t *out) {
    int w, h, c;
    unsigned char *pix = stbi_load_from_memory(jpg, (int)len, &w, &h, &c, 3);
    if (!pix) return -1;
    int rw, rh;
    if (w <= h) { rw = R; rh = (int)((double)R * h / w); }
    else { rh = R; rw = (int)((double)R * w / h); }
    int ox = ref_offset(rw - R), oy = ref_offset(rh - R);
    int ok = stbir_resize_subpixel(pix, w, h, 3 * w, out, R, R, 3 * R, STBIR_TYPE_UINT8, 3, STBIR_ALPHA_CHANNEL_NONE, 0,
                                   STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE, STBIR_FILTER_TRIANGLE,
                                   STBIR_COLORSPACE_LINEAR, NULL, (float)rw / (float)w, (float)rh / (float)h, (float)ox,
                                   (float)oy);
    stbi_image_free(pix);
    return ok ? 0 : -1;
}

/* The DCT scaling image.c takes: the largest d in {1, 2, 4, 8} with shorter side ≥ d·R. */
static int dct_scale(int w, int h, int R) {
    int s = w < h ? w : h, d = 1;
    while (d < 8 && s >= 2 * d * R) d *= 2;
    return d;
}

typedef struct diff_stats { double max, mean, p999; } diff_stats;

/* Largest, mean and 99.9th-percentile |a − b| over n values. */
static diff_stats diff_of(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t hist[256] = {0};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        hist[d]++;
        sum += d;
    }
    diff_stats st = {0, sum / (double)n, -1};
    size_t acc = 0;
    for (int d = 0; d < 256; d++) {
        if (hist[d]) st.max = d;
        acc += hist[d];
        if (st.p999 < 0 && (double)acc >= 0.999 * (double)n) st.p999 = d;
    }
    return st;
}

/* One JPEG through image_decode against the stb reference: within TOL_UNSCALED when no
 * DCT scaling applies, else within `scaled`. */
static void check_against_stb(const char *what, const unsigned char *jpg, size_t len, int w, int h, int R,
                              tolerance scaled) {
    uint8_t *got = malloc((size_t)R * R * 3), *ref = malloc((size_t)R * R * 3);   /* [R, R, 3] */
    char why[256] = "", label[400];
    int d = dct_scale(w, h, R);
    int rc = image_decode(jpg, len, R, 0, got, why, sizeof why);
    int rr = stb_reference(jpg, len, R, ref);
    if (rc || rr) {
        snprintf(label, sizeof label, "%s: decodes (%s)", what, rc ? why : "stb refused it");
        CHECK_TRUE(label, 0);
    } else {
        diff_stats st = diff_of(got, ref, (size_t)R * R * 3);
        tolerance t = d == 1 ? TOL_UNSCALED : scaled;
        snprintf(label, sizeof label, "%s %dx%d at R=%d (DCT 1/%d) vs stb_image: max %.0f, mean %.3f, 99.9%% within "
                 "%.0f (tolerance %.0f, %.1f, %.0f)", what, w, h, R, d, st.max, st.mean, st.p999, t.max, t.mean, t.p999);
        CHECK_TRUE(label, st.max <= t.max && st.mean <= t.mean && st.p999 <= t.p999);
    }
    free(got);
    free(ref);
}

/* A JPEG of pattern() pixels [h, w, comps]. */
static unsigned char *pattern_jpeg(int w, int h, int comps, J_COLOR_SPACE cs, int flags, unsigned long *len) {
    unsigned char *p = pattern(w, h, comps, w + 3 * h);
    unsigned char *j = fixture_jpeg(p, w, h, comps, cs, 90, flags, len);
    free(p);
    return j;
}

/* Rewrites the first SOF0/SOF2 frame size of a JPEG (the data stays as it was). */
static void jpeg_set_size(unsigned char *j, size_t len, int w, int h) {
    for (size_t at = 2; at + 9 < len; at++)
        if (j[at] == 0xFF && (j[at + 1] == 0xC0 || j[at + 1] == 0xC2)) {
            j[at + 5] = (unsigned char)(h >> 8); j[at + 6] = (unsigned char)h;
            j[at + 7] = (unsigned char)(w >> 8); j[at + 8] = (unsigned char)w;
            return;
        }
}

/* A PNG header declaring w × h (8-bit RGB), a few junk IDAT bytes, IEND. */
static size_t png_header_only(unsigned char *out, int w, int h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w,
                              (unsigned char)(h >> 24), (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h,
                              8, 2, 0, 0, 0};
    size_t at = 0;
    memcpy(out, sig, 8);
    at = 8;
    const char *types[3] = {"IHDR", "IDAT", "IEND"};
    const unsigned char idat[6] = {0x78, 0x9C, 0x03, 0x00, 0x00, 0x00};
    const unsigned char *data[3] = {ihdr, idat, NULL};
    const size_t lens[3] = {13, 6, 0};
    for (int c = 0; c < 3; c++) {
        out[at++] = 0; out[at++] = 0; out[at++] = 0; out[at++] = (unsigned char)lens[c];
        memcpy(out + at, types[c], 4);
        uint32_t crc = 0xFFFFFFFFu;   /* CRC-32 of type and data */
        for (size_t k = 0; k < 4 + lens[c]; k++) {
            crc ^= k < 4 ? (unsigned char)types[c][k] : data[c][k - 4];
            for (int b = 0; b < 8; b++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        }
        crc ^= 0xFFFFFFFFu;
        if (lens[c]) memcpy(out + at + 4, data[c], lens[c]);
        at += 4 + lens[c];
        out[at++] = (unsigned char)(crc >> 24); out[at++] = (unsigned char)(crc >> 16);
        out[at++] = (unsigned char)(crc >> 8); out[at++] = (unsigned char)crc;
    }
    return at;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A cache header field (loader/cache.c's layout: magic 8, version 4, byte order 4, R 4,
 * pad 4, n 8, key 8, then status_off, pixels_off, pixels_bytes, why_off, why_bytes,
 * total_bytes, 8 bytes each, native little-endian). */
enum { HD_STATUS = 40, HD_PIXELS = 48, HD_WHY = 64, HD_WHY_BYTES = 72 };
static uint64_t hd_get(const unsigned char *h, int at) { uint64_t v; memcpy(&v, h + at, 8); return v; }
static void hd_set(unsigned char *h, int at, uint64_t v) { memcpy(h + at, &v, 8); }

static void check_issue10(const dath_list *l) {
    char path[256], why[256], err[512];
    const int R = 32;
    uint8_t *out = malloc((size_t)R * R * 3);
    int rc;

    /* the cache file's sections: offsets that wrap around 2^64 are refused */
    {
        char cdir[128];
        snprintf(cdir, sizeof cdir, "%s/cache_wrap", dir);
        dath_cache *c = cache_create(l, R, 0, cdir, err, sizeof err);
        int made = c && cache_fill(c, l, 2, err, sizeof err) == NBAD && cache_save(c, NULL, err, sizeof err) == 0;
        char file[512];
        snprintf(file, sizeof file, "%s", c ? c->file : "");
        cache_free(c);
        FILE *f = fopen(file, "rb");
        unsigned char *img = NULL;
        size_t len = 0;
        if (made && f) {
            fseek(f, 0, SEEK_END);
            len = (size_t)ftell(f);
            rewind(f);
            img = malloc(len);
            made = fread(img, 1, len, f) == len;
        }
        if (f) fclose(f);
        CHECK_TRUE("cache file for the crafted headers written", made);
        if (made) {
            c = cache_create(l, R, 0, cdir, err, sizeof err);
            CHECK_TRUE("cache file: the untouched file loads", c && c->loaded);
            cache_free(c);
            const uint64_t pix = (uint64_t)l->n * R * R * 3;
            struct { const char *what; int field; uint64_t value; int field2; uint64_t value2; } v[] = {
                {"pixels past 2^64 (wrapping to the start)", HD_PIXELS, 0 - pix + 8192, 0, 0},
                {"pixels 64 KiB before the mapping", HD_PIXELS, 0 - (uint64_t)65536, 0, 0},
                {"reasons 100 bytes before the mapping", HD_WHY, 0 - (uint64_t)100, HD_WHY_BYTES, 110},
                {"statuses before the mapping", HD_STATUS, 0 - (uint64_t)l->n, 0, 0},
                {"statuses inside the header", HD_STATUS, 64, 0, 0},
            };
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
                unsigned char *bad = malloc(len);
                memcpy(bad, img, len);
                hd_set(bad, v[k].field, v[k].value);
                if (v[k].field2) hd_set(bad, v[k].field2, v[k].value2);
                FILE *g = fopen(file, "wb");
                fwrite(bad, 1, len, g);
                fclose(g);
                free(bad);
                c = cache_create(l, R, 0, cdir, err, sizeof err);
                char label[160];
                snprintf(label, sizeof label, "cache file with %s: stale, not loaded", v[k].what);
                if (!CHECK_TRUE(label, c && !c->loaded && strstr(c->note, "incomplete or inconsistent")))
                    printf("     %s\n", c ? c->note : err);
                cache_free(c);
            }
            (void)hd_get;
        }
        free(img);
    }

    /* limits read from the header, before decoding */
    {
        unsigned long len;
        unsigned char *j = pattern_jpeg(64, 48, 3, JCS_RGB, 0, &len);
        jpeg_set_size(j, len, 20000, 20000);
        double t0 = seconds();
        rc = image_decode(j, len, R, 0, out, why, sizeof why);
        double dt = seconds() - t0;
        CHECK_TRUE("a JPEG declaring 20000 x 20000 is refused from its header, naming the 64 MP limit",
                   rc == -1 && strstr(why, "image too large: 20000 x 20000 = 400.0 MP, over the 64.0 MP limit") && dt < 1);
        free(j);
        j = pattern_jpeg(400, 300, 3, JCS_RGB, 0, &len);
        CHECK_TRUE("a 400 x 300 JPEG under a 0.1 MP limit is refused, under 0.12 MP decoded",
                   image_decode(j, len, R, 100000, out, why, sizeof why) == -1 && strstr(why, "over the 0.1 MP limit") &&
                       image_decode(j, len, R, 120000, out, why, sizeof why) == 0);
        free(j);
        unsigned char png[128];
        size_t plen = png_header_only(png, 1, 16777216);
        rc = image_decode(png, plen, 224, 0, out, why, sizeof why);
        CHECK_TRUE("a PNG of 1 x 16,777,216 is refused from its header (aspect ratio)",
                   rc == -1 && strstr(why, "aspect ratio 1 x 16777216 is over 64:1"));
        if (rc == 0 || !strstr(why, "aspect")) printf("     got: %s\n", rc ? why : "(decoded)");
        write_png("aspect65.png", 1, 65, 3, 1);
        write_png("aspect64.png", 64, 1, 3, 1);
        char p64[256];
        path_of(path, sizeof path, "aspect65.png");
        path_of(p64, sizeof p64, "aspect64.png");
        CHECK_TRUE("1 x 65 refused (aspect over 64:1), 64 x 1 decoded",
                   image_load(path, R, 0, out, why, sizeof why) == -1 && strstr(why, "aspect ratio 1 x 65") &&
                       image_load(p64, R, 0, out, why, sizeof why) == 0);
    }

    /* crafted JPEGs: a Huffman table of 800 codes, 300 progressive scans */
    {
        unsigned long len;
        unsigned char *j = pattern_jpeg(64, 48, 3, JCS_RGB, 0, &len);
        unsigned char *big = malloc(len * 302 + 1024);
        size_t n = fixture_jpeg_big_dht(big, j, len);
        rc = image_decode(big, n, R, 0, out, why, sizeof why);
        CHECK_TRUE("a JPEG whose Huffman table has 800 codes is refused (it crashed stb_image)",
                   n && rc == -1 && strstr(why, "cannot decode (corrupt JPEG: Bogus Huffman table"));
        if (rc == 0 || !strstr(why, "Huffman")) printf("     got: %s\n", rc ? why : "(decoded)");
        free(j);
        j = pattern_jpeg(64, 48, 3, JCS_RGB, FIXTURE_PROGRESSIVE, &len);
        n = fixture_jpeg_many_scans(big, j, len, 300);
        double t0 = seconds();
        rc = image_decode(big, n, R, 0, out, why, sizeof why);
        double dt = seconds() - t0;
        CHECK_TRUE("a progressive JPEG of 300+ scans is refused", n && rc == -1 && strstr(why, "more than 256 progressive scans"));
        printf("     (%.1f ms)\n", dt * 1e3);
        n = fixture_jpeg_many_scans(big, j, len, 100);
        CHECK_TRUE("one of 100+ scans decodes", n && image_decode(big, n, R, 0, out, why, sizeof why) == 0);
        free(big);
        free(j);
    }

    /* a symbolic link loop is named as one */
    {
        char a[256], b[256];
        path_of(a, sizeof a, "loop_a.jpg");
        path_of(b, sizeof b, "loop_b.jpg");
        int made = symlink(b, a) == 0 && symlink(a, b) == 0;
        CHECK_TRUE("a symbolic link loop is reported as one",
                   made && image_load(a, R, 0, out, why, sizeof why) == -1 && strstr(why, "symbolic link loop"));
    }

    /* today's pixels: libjpeg-turbo + DCT scaling against stb_image on the same files */
    {
        static const struct { int w, h, R, comps, flags; const char *what; } cases[] = {
            {640, 480, 256, 3, 0, "4:2:0"},        {1024, 768, 256, 3, 0, "4:2:0"},
            {2048, 1536, 256, 3, 0, "4:2:0"},      {1024, 768, 64, 3, 0, "4:2:0"},
            {640, 480, 256, 1, 0, "grey"},         {1024, 768, 256, 3, FIXTURE_444, "4:4:4"},
            {1024, 768, 256, 3, FIXTURE_PROGRESSIVE, "progressive"}, {700, 500, 73, 3, 0, "4:2:0"},
            {480, 640, 256, 3, 0, "4:2:0 portrait"}, {400, 300, 256, 4, 0, "CMYK"}, {400, 300, 64, 4, 0, "CMYK"},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            unsigned long len;
            J_COLOR_SPACE cs = cases[k].comps == 1 ? JCS_GRAYSCALE : cases[k].comps == 4 ? JCS_CMYK : JCS_RGB;
            unsigned char *j = pattern_jpeg(cases[k].w, cases[k].h, cases[k].comps, cs, cases[k].flags, &len);
            check_against_stb(cases[k].what, j, len, cases[k].w, cases[k].h, cases[k].R,
                              cases[k].comps == 4 ? TOL_PATTERN_CMYK : TOL_PATTERN);
            free(j);
        }
        /* real images: Fashion-MNIST mosaics of 1024 x 1024 (dath mkdemo), when the data set is there */
        char mdir[256];
        path_of(mdir, sizeof mdir, "mosaics");
        char *av[] = {"mkdemo", "--out", mdir, "--side", "1024", "--train", "2", "--test", "1", "--database", "1", NULL};
        fflush(stdout);
        int saved = dup(1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        int made = cmd_mkdemo(11, av) == 0;
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        close(devnull);
        if (!made) printf("note: dath mkdemo could not make mosaics (dataset-fashion-mnist?): photo-like checks only\n");
        for (int k = 0; made && k < 2; k++) {
            char img[320];
            snprintf(img, sizeof img, "%s/images/train/%06d.jpg", mdir, k);
            FILE *f = fopen(img, "rb");
            if (!f) break;
            unsigned char *j = malloc(1 << 22);
            size_t len = fread(j, 1, 1 << 22, f);
            fclose(f);
            check_against_stb("mosaic", j, len, 1024, 1024, 256, TOL_MOSAIC);
            check_against_stb("mosaic", j, len, 1024, 1024, 73, TOL_MOSAIC);
            free(j);
        }
    }
    free(out);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dath_test_loader_XXXXXX");
    if (!mkdtemp(dir)) check_skip("cannot make a temporary directory");
    make_fixtures();
    const int N = NGOOD + NBAD;
    char err[512];
    dath_list *l = list_read(list_path, dir, err, sizeof err);
    if (!l) { printf("list: %s\n", err); return 1; }

    /* 1. image_load: reasons */
    {
        int R = 32;
        uint8_t *out = malloc((size_t)R * R * 3);
        int all_ok = 1;
        for (int i = 0; i < N; i++) {
            char why[128] = "";
            int rc = image_load(l->paths[i], R, 0, out, why, sizeof why);
            int ok = bad_reason[i] ? rc == -1 && strstr(why, bad_reason[i]) != NULL : rc == 0;
            if (!ok) {
                printf("     %s: rc %d, why '%s', expected %s\n", names[i], rc, why,
                       bad_reason[i] ? bad_reason[i] : "success");
                all_ok = 0;
            }
        }
        CHECK_TRUE("image_load: each bad file refused with its reason, every good one decoded", all_ok);
        char why[128] = "";
        CHECK_TRUE("image_load: a directory is refused",
                   image_load(dir, R, 0, out, why, sizeof why) == -1 && strstr(why, "directory"));
        free(out);
    }

    /* 2. the transform against the reference */
    check_resize("down_rgb.png", 97, 61, 3, 40);    /* shrink, odd centre offset (round half even) */
    check_resize("down_tall.png", 50, 131, 3, 32);  /* shrink, portrait */
    check_resize("up_rgb.png", 23, 31, 3, 40);      /* enlarge */
    check_resize("grey.png", 45, 60, 1, 24);        /* grey → RGB */
    check_resize("rgba.png", 66, 44, 4, 30);        /* alpha dropped */
    check_resize("same.png", 36, 36, 3, 36);        /* identity size */

    /* 3. the cache */
    const int R = 32, S = 28;
    size_t unit = (size_t)R * R * 3;
    dath_cache *cache = cache_create(l, R, 0, NULL, err, sizeof err);
    CHECK_TRUE("cache_create", cache != NULL);
    if (!cache) return check_finish();
    int nbad = cache_fill(cache, l, 2, err, sizeof err);
    int marks_ok = nbad == NBAD, pixels_ok = 1;
    uint8_t *fresh = malloc(unit);
    for (int i = 0; i < N; i++) {
        int st = cache_status(cache, i);
        if ((st == CACHE_BAD) != (bad_reason[i] != NULL)) marks_ok = 0;
        if (st == CACHE_BAD && !(cache->why[i] && strstr(cache->why[i], bad_reason[i]))) marks_ok = 0;
        char why[128];
        if (st == CACHE_OK &&
            (image_load(l->paths[i], R, 0, fresh, why, sizeof why) || memcmp(fresh, cache->pixels + i * unit, unit)))
            pixels_ok = 0;
    }
    CHECK_TRUE("cache: exactly the bad images are marked bad, with their reasons", marks_ok);
    CHECK_TRUE("cache: pixels equal a fresh decode", pixels_ok);

    /* 4. the prefetcher: 1 vs 4 workers, epochs 0 and 1 */
    int B = 4;
    run r1[2], r4[2];
    memset(r1, 0, sizeof r1);
    memset(r4, 0, sizeof r4);
    dath_prefetch *p1 = make(l, PREFETCH_TRAIN, R, S, B, 1, 0, NULL, &r1[0], 0);
    dath_prefetch *p4 = make(l, PREFETCH_TRAIN, R, S, B, 4, 0, NULL, &r4[0], 0);
    CHECK_TRUE("prefetch_create (1 and 4 workers)", p1 && p4);
    if (!p1 || !p4) return check_finish();
    run_epoch(p1, &r1[0], 0, R);
    run_epoch(p4, &r4[0], 0, R);
    /* epoch 1: warnings of the second epoch go to r?[1] (none expected) */
    prefetch_destroy(p1);
    prefetch_destroy(p4);
    p1 = make(l, PREFETCH_TRAIN, R, S, B, 1, 0, NULL, &r1[1], 0);
    p4 = make(l, PREFETCH_TRAIN, R, S, B, 4, 0, NULL, &r4[1], 0);
    run scratch;
    memset(&scratch, 0, sizeof scratch);
    run_epoch(p1, &scratch, 0, R);   /* epoch 0 first, as a training run would */
    run_free(&scratch);
    int warn_epoch0 = r1[1].nwarn;
    run_epoch(p1, &r1[1], 1, R);
    memset(&scratch, 0, sizeof scratch);
    run_epoch(p4, &scratch, 0, R);
    run_free(&scratch);
    run_epoch(p4, &r4[1], 1, R);
    CHECK_TRUE("1 vs 4 workers: identical batches in epoch 0", runs_equal(&r1[0], &r4[0], R));
    CHECK_TRUE("1 vs 4 workers: identical batches in epoch 1", runs_equal(&r1[1], &r4[1], R));
    CHECK_TRUE("second epoch: no new warnings (each bad image named once)", r1[1].nwarn == warn_epoch0);
    for (int e = 0; e < 2; e++) {
        run *r = &r1[e];
        int perm[NGOOD + NBAD], order[NGOOD + NBAD], m = 0;
        expected_order(perm, N, e);
        for (int k = 0; k < N; k++)
            if (!bad_reason[perm[k]]) order[m++] = perm[k];
        /* 18 good, B = 4: 4 full batches and a partial one of 2 */
        int pos = 0, seq_ok = r->rc_end == 1 && r->nb == 5, crops_ok = 1, labels_ok = 1, pix_ok = 1;
        for (int k = 0; k < r->nb && seq_ok; k++) {
            if (r->n[k] != (k < 4 ? 4 : 2) || r->index[k] != k) seq_ok = 0;
            for (int j = 0; j < r->n[k] && seq_ok; j++) {
                int s = r->samples[k][j];
                if (pos >= m || s != order[pos++]) { seq_ok = 0; break; }
                int32_t want[3] = {(int32_t)(rng_u32(7, RNG_CROP, (uint32_t)e, (uint32_t)s, 0) % (R - S + 1)),
                                   (int32_t)(rng_u32(7, RNG_CROP, (uint32_t)e, (uint32_t)s, 1) % (R - S + 1)),
                                   (int32_t)(rng_u32(7, RNG_CROP, (uint32_t)e, (uint32_t)s, 2) & 1)};
                if (memcmp(want, &r->crops[k][3 * j], sizeof want)) crops_ok = 0;
                for (int c = 0; c < C; c++)
                    if (r->labels[k][j * C + c] != (float)l->labels[s * C + c]) labels_ok = 0;
                if (memcmp(r->images[k] + (size_t)j * unit, cache->pixels + (size_t)s * unit, unit)) pix_ok = 0;
            }
        }
        char label[128];
        snprintf(label, sizeof label, "epoch %d: every good image once, in the permutation's order, 5 batches", e);
        CHECK_TRUE(label, seq_ok && pos == m);
        snprintf(label, sizeof label, "epoch %d: crops = rng_u32(seed, RNG_CROP, epoch, sample, c)", e);
        CHECK_TRUE(label, crops_ok);
        snprintf(label, sizeof label, "epoch %d: labels and pixels of each sample", e);
        CHECK_TRUE(label, labels_ok && pix_ok);
        snprintf(label, sizeof label, "epoch %d: stats: %d skipped, %d bad, %d images, 5 batches", e, NBAD, NBAD, NGOOD);
        CHECK_TRUE(label, r->st.skipped == NBAD && r->st.bad == NBAD && r->st.images == NGOOD &&
                              r->st.batches == 5 && r->st.batches_total == 5);
    }
    {
        int named = r1[0].nwarn == NBAD;
        for (int i = 0; i < N && named; i++) {
            if (!bad_reason[i]) continue;
            int hits = 0;
            char want[300];
            snprintf(want, sizeof want, "%s:%d: %s: ", list_path, l->lines[i], l->paths[i]);
            for (int k = 0; k < r1[0].nwarn && k < 32; k++)
                if (strncmp(r1[0].warn[k], want, strlen(want)) == 0 && strstr(r1[0].warn[k], bad_reason[i])) hits++;
            if (hits != 1) named = 0;
        }
        if (!named)
            for (int k = 0; k < r1[0].nwarn && k < 32; k++) printf("     warning: %s\n", r1[0].warn[k]);
        CHECK_TRUE("warnings name each bad image once: LIST:LINE: PATH: reason", named);
    }
    {
        int differ = 0;
        for (int k = 0; k < r1[0].nb; k++)
            if (memcmp(r1[0].samples[k], r1[1].samples[k], sizeof r1[0].samples[k])) differ = 1;
        CHECK_TRUE("epochs 0 and 1 give different orders", differ);
    }
    prefetch_destroy(p1);
    prefetch_destroy(p4);
    for (int e = 0; e < 2; e++) { run_free(&r1[e]); run_free(&r4[e]); }

    /* a lone last image is left out: 18 good, B = 17 → one batch of 17 */
    {
        run r;
        memset(&r, 0, sizeof r);
        dath_prefetch *p = make(l, PREFETCH_TRAIN, R, S, 17, 3, 0, NULL, &r, 0);
        run_epoch(p, &r, 0, R);
        CHECK_TRUE("B = 17: one batch of 17, the lone 18th image left out", r.rc_end == 1 && r.nb == 1 && r.n[0] == 17);
        prefetch_destroy(p);
        run_free(&r);
    }

    /* the permutation on a large list (ties between rng words happen): same as qsort */
    {
        int big = 200000;
        int *pa = malloc((size_t)big * sizeof *pa), *pb = malloc((size_t)big * sizeof *pb);
        int ok = prefetch_permutation(pa, big, 7, 3) == 0;
        expected_order(pb, big, 3);
        CHECK_TRUE("prefetch_permutation (n = 200000) = sort by (rng word, index)",
                   ok && memcmp(pa, pb, (size_t)big * sizeof *pa) == 0);
        free(pa);
        free(pb);
    }

    /* 5. strict: stops at the first bad image in the epoch's order */
    {
        run r;
        memset(&r, 0, sizeof r);
        dath_prefetch *p = make(l, PREFETCH_TRAIN, R, S, B, 3, 1, NULL, &r, 0);
        run_epoch(p, &r, 0, R);
        int perm[NGOOD + NBAD], first = -1, before = 0;
        expected_order(perm, N, 0);
        for (int k = 0; k < N && first < 0; k++) {
            if (bad_reason[perm[k]]) first = perm[k];
            else before++;
        }
        char want[300];
        snprintf(want, sizeof want, "%s:%d: %s: ", list_path, l->lines[first], l->paths[first]);
        int delivered = 0;
        for (int k = 0; k < r.nb; k++) delivered += r.n[k];
        CHECK_TRUE("strict: prefetch_next fails naming the first bad image of the order",
                   r.rc_end == -1 && strncmp(r.err, want, strlen(want)) == 0 && strstr(r.err, bad_reason[first]));
        CHECK_TRUE("strict: only the full batches before it were delivered", delivered == before / B * B);
        prefetch_batch b;
        CHECK_TRUE("strict: the error stays", prefetch_next(p, &b, err, sizeof err) == -1);
        if (r.rc_end != -1) printf("     rc %d, err %s\n", r.rc_end, r.err);
        prefetch_destroy(p);
        run_free(&r);
    }

    /* 6. encode: list order, centre crops, bad rows dropped */
    {
        run r;
        memset(&r, 0, sizeof r);
        int BE = 5;
        dath_prefetch *p = make(l, PREFETCH_ENCODE, R, S, BE, 3, 0, NULL, &r, 0);
        run_epoch(p, &r, 0, R);
        int pos = 0, ok = r.rc_end == 1, crops = 1, pix = 1;
        for (int k = 0; k < r.nb; k++)
            for (int j = 0; j < r.n[k]; j++) {
                while (pos < N && bad_reason[pos]) pos++;
                int s = r.samples[k][j];
                if (s != pos || s / BE != r.index[k]) ok = 0;
                pos++;
                if (r.crops[k][3 * j] != (R - S) / 2 || r.crops[k][3 * j + 1] != (R - S) / 2 || r.crops[k][3 * j + 2]) crops = 0;
                if (memcmp(r.images[k] + (size_t)j * unit, cache->pixels + (size_t)s * unit, unit)) pix = 0;
            }
        while (pos < N && bad_reason[pos]) pos++;
        CHECK_TRUE("encode: good rows in list order, batch k within rows [kB, (k+1)B)", ok && pos == N);
        CHECK_TRUE("encode: centre crops, pixels equal the decode", crops && pix);
        CHECK_TRUE("encode: bad rows counted and named", r.st.skipped == NBAD && r.nwarn == NBAD);
        prefetch_destroy(p);
        run_free(&r);
    }

    /* 7. the cache file */
    {
        char cdir[128];
        snprintf(cdir, sizeof cdir, "%s/cache", dir);
        run a, b, c;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        memset(&c, 0, sizeof c);
        dath_prefetch *p = make(l, PREFETCH_TRAIN, R, S, B, 2, 0, cdir, &a, 0);
        run_epoch(p, &a, 0, R);
        prefetch_destroy(p);   /* waits for the cache file being written */
        p = make(l, PREFETCH_TRAIN, R, S, B, 2, 0, cdir, &b, 0);
        size_t nfile = 0;
        const uint8_t *from_file = prefetch_images(p, &nfile);   /* before any epoch */
        CHECK_TRUE("cache file: prefetch_images at once (mapped), every image in list order, bad ones zero",
                   set_is_decode(from_file, nfile, cache, unit));
        run_epoch(p, &b, 0, R);
        CHECK_TRUE("cache file: a second run reads it (no decoding)", b.st.cache_loaded == 1 && b.st.decoded == 0);
        CHECK_TRUE("cache file: same batches as decoding", runs_equal(&a, &b, R));
        CHECK_TRUE("cache file: bad images named again with their reasons",
                   b.nwarn == NBAD && a.nwarn == NBAD && memcmp(a.warn, b.warn, sizeof a.warn) == 0);
        CHECK_TRUE("cache file: pixels off allowed once mapped", prefetch_set_pixels(p, 0) == 0);
        run b_off;
        memset(&b_off, 0, sizeof b_off);
        run_epoch(p, &b_off, 0, R);
        CHECK_TRUE("cache file: pixels off: same samples, labels, crops, no images",
                   run_has_no_images(&b_off) && runs_same(&a, &b_off, R, 0));
        run_free(&b_off);
        prefetch_destroy(p);

        /* a changed list: one label flipped */
        FILE *f = fopen(list_path, "r+");
        char line[256];
        if (!f || !fgets(line, sizeof line, f)) check_skip("cannot reopen the list");
        long at = (long)strlen(line) - 2;   /* the last label of line 1 */
        fseek(f, at, SEEK_SET);
        fputc(line[at] == '0' ? '1' : '0', f);
        fclose(f);
        dath_list *l2 = list_read(list_path, dir, err, sizeof err);
        dath_cache *stale = cache_create(l2, R, 0, cdir, err, sizeof err);
        CHECK_TRUE("cache file: a changed list makes it stale", stale && !stale->loaded && strstr(stale->note, "stale"));
        if (stale) printf("     note: %s\n", stale->note);
        cache_free(stale);
        p = make(l2, PREFETCH_TRAIN, R, S, B, 2, 0, cdir, &c, 0);
        run_epoch(p, &c, 0, R);
        /* decoded, not loaded: every delivered image (the decode-ahead of the images no batch
         * took may still be running: prefetch_destroy waits for it and the file) */
        CHECK_TRUE("cache file: the changed list decodes again",
                   c.st.cache_loaded == 0 && c.st.decoded >= c.st.images && c.st.images > 0);
        prefetch_destroy(p);   /* rewrites the cache for the new list */
        dath_cache *fresh_c = cache_create(l2, R, 0, cdir, err, sizeof err);
        CHECK_TRUE("cache file: rewritten for the new list", fresh_c && fresh_c->loaded);
        cache_free(fresh_c);
        /* a touched image (new modification time) */
        char img[256];
        path_of(img, sizeof img, names[0]);
        struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
        utimensat(AT_FDCWD, img, ts, 0);
        stale = cache_create(l2, R, 0, cdir, err, sizeof err);
        CHECK_TRUE("cache file: a touched image makes it stale", stale && !stale->loaded);
        cache_free(stale);
        list_free(l2);
        run_free(&a);
        run_free(&b);
        run_free(&c);
    }

    /* 8. holding every buffer is an error; destroy mid-epoch returns */
    {
        run r;
        memset(&r, 0, sizeof r);
        dath_prefetch *p = make(l, PREFETCH_TRAIN, R, S, 2, 4, 0, NULL, &r, 2);
        prefetch_begin_epoch(p, 0, err, sizeof err);
        prefetch_batch b0, b1, b2;
        int rc0 = prefetch_next(p, &b0, err, sizeof err);
        int rc1 = prefetch_next(p, &b1, err, sizeof err);
        int rc2 = prefetch_next(p, &b2, err, sizeof err);
        CHECK_TRUE("ring of 2: a third held batch is refused with a message", rc0 == 0 && rc1 == 0 && rc2 == -1 &&
                                                                                  strstr(err, "release batch 0"));
        prefetch_release(p, &b0);
        CHECK_TRUE("after a release the next batch comes", prefetch_next(p, &b2, err, sizeof err) == 0 && b2.index == 2);
        CHECK_TRUE("begin_epoch refuses while batches are held", prefetch_begin_epoch(p, 1, err, sizeof err) == -1);
        prefetch_destroy(p);   /* mid-epoch, with batches held */
        CHECK_TRUE("destroy mid-epoch returns", 1);
        run_free(&r);
    }

    /* 9. the decoded set and batches without pixels, 1 and 4 workers */
    {
        run on[2], off[2];
        memset(on, 0, sizeof on);
        memset(off, 0, sizeof off);
        int null_before = 1, refused = 1, complete_when_seen = 1, set_ok = 1, gather_ok = 1, none_ok = 1;
        int begun_keeps = 1;
        for (int w = 0; w < 2; w++) {
            run warm, e0;
            memset(&warm, 0, sizeof warm);
            memset(&e0, 0, sizeof e0);
            dath_prefetch *p = make(l, PREFETCH_TRAIN, R, S, B, w ? 4 : 1, 0, NULL, &warm, 0);
            if (!CHECK_TRUE("the decoded set: prefetch_create", p != NULL)) return check_finish();
            size_t cnt = 99;
            if (prefetch_images(p, &cnt) != NULL || cnt != 0) null_before = 0;
            if (prefetch_set_pixels(p, 0) != 1) refused = 0;
            /* epoch 0, the first: whenever the set shows up, every image is decoded */
            prefetch_begin_epoch(p, 0, err, sizeof err);
            prefetch_batch b;
            int rc;
            while ((rc = prefetch_next(p, &b, err, sizeof err)) == 0) {
                prefetch_stats st;
                prefetch_stats_get(p, &st);
                if (!b.images) refused = 0;   /* the refused 0 left pixels on */
                if (prefetch_images(p, &cnt) && st.decoded != N) complete_when_seen = 0;
                prefetch_release(p, &b);
            }
            const uint8_t *set = prefetch_images(p, &cnt);
            if (rc != 1 || !set_is_decode(set, cnt, cache, unit)) set_ok = 0;
            /* epoch 1 with pixels, then with none, then epoch 2 begun with pixels and
             * switched off after its first batch: it keeps them */
            run_epoch(p, &on[w], 1, R);
            if (prefetch_set_pixels(p, 0) != 0) none_ok = 0;
            run_epoch(p, &off[w], 1, R);
            if (!run_is_gather(&on[w], set, unit) || !run_has_no_images(&off[w])) gather_ok = 0;
            if (prefetch_set_pixels(p, 1) != 1) none_ok = 0;
            prefetch_begin_epoch(p, 2, err, sizeof err);
            int first = 1;
            while ((rc = prefetch_next(p, &b, err, sizeof err)) == 0) {
                if (!b.images) begun_keeps = 0;
                if (first) { prefetch_set_pixels(p, 0); first = 0; }
                prefetch_release(p, &b);
            }
            run_epoch(p, &e0, 3, R);
            if (!run_has_no_images(&e0) || prefetch_images(p, NULL) != set) begun_keeps = 0;
            prefetch_destroy(p);
            run_free(&warm);
            run_free(&e0);
        }
        CHECK_TRUE("prefetch_images: NULL (count 0) before the first epoch", null_before);
        CHECK_TRUE("prefetch_set_pixels(0) before the set is complete: refused (returns 1), pixels stay", refused);
        CHECK_TRUE("prefetch_images: never seen before every image is decoded", complete_when_seen);
        CHECK_TRUE("prefetch_images after the first epoch: every image in list order, bad ones zero (1, 4 workers)", set_ok);
        CHECK_TRUE("pixels off: identical samples, labels, crops to pixels on (1 worker)", runs_same(&on[0], &off[0], R, 0));
        CHECK_TRUE("pixels off: identical samples, labels, crops to pixels on (4 workers)", runs_same(&on[1], &off[1], R, 0));
        CHECK_TRUE("pixels off: 1 and 4 workers identical", runs_same(&off[0], &off[1], R, 0) && runs_equal(&on[0], &on[1], R));
        CHECK_TRUE("pixels off: images NULL; pixels on = the set gathered by samples", gather_ok && none_ok);
        CHECK_TRUE("pixels off asked mid-epoch: that epoch keeps its pixels, the next has none", begun_keeps);
        for (int w = 0; w < 2; w++) { run_free(&on[w]); run_free(&off[w]); }
    }

    /* 10. encode with a kept cache: the set after the first pass, batches without pixels */
    {
        run a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        prefetch_config cfg = {.list = l, .mode = PREFETCH_ENCODE, .R = R, .S = S, .B = 5, .workers = 3,
                               .keep = 1, .warn = collect_warn, .warn_user = &a};
        dath_prefetch *p = prefetch_create(&cfg, err, sizeof err);
        CHECK_TRUE("encode keep: prefetch_create", p != NULL);
        if (!p) return check_finish();
        size_t cnt = 0;
        int before = prefetch_images(p, &cnt) == NULL && prefetch_set_pixels(p, 0) == 1;
        run_epoch(p, &a, 0, R);
        const uint8_t *set = prefetch_images(p, &cnt);
        CHECK_TRUE("encode keep: the set NULL before the first pass, the decode after it",
                   before && set_is_decode(set, cnt, cache, unit));
        int off = prefetch_set_pixels(p, 0) == 0;
        run_epoch(p, &b, 0, R);
        CHECK_TRUE("encode keep: pixels off: same rows, labels, crops; no images; the set gathered = pixels on",
                   off && runs_same(&a, &b, R, 0) && run_has_no_images(&b) && run_is_gather(&a, set, unit));
        prefetch_destroy(p);
        run_free(&a);
        run_free(&b);
        /* without a cache there is no set, and pixels stay on */
        memset(&a, 0, sizeof a);
        cfg.keep = 0;
        cfg.warn_user = &a;
        p = prefetch_create(&cfg, err, sizeof err);
        if (!CHECK_TRUE("encode without a cache: prefetch_create", p != NULL)) return check_finish();
        run_epoch(p, &a, 0, R);
        CHECK_TRUE("encode without a cache: no set, pixels off refused",
                   prefetch_images(p, &cnt) == NULL && cnt == 0 && prefetch_set_pixels(p, 0) == 1);
        prefetch_destroy(p);
        run_free(&a);
    }

    /* 11. issue 10: limits, crafted files, libjpeg-turbo against stb_image */
    check_issue10(l);

    cache_free(cache);
    list_free(l);
    free(fresh);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return check_finish();
}
