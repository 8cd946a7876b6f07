/* checks/fuzz/make_seeds.c — the fuzz targets' seed corpus, made here rather than taken
 * from elsewhere: build/fuzz/make_seeds DIR writes DIR/{list,safetensors,npy,cache,image}/.
 *
 *   list         lists as the community writes them (LF, CRLF, a byte-order mark, tabs,
 *                blank lines at the end, one label, absolute paths) and a few wrong ones;
 *   safetensors  files of dath's own writer (a checkpoint's metadata, F32/I64/U8 tensors,
 *                an empty one) and a header with an unknown nested field;
 *   npy          dath's own (3, 4) and (0, 5) codes, numpy's 2.0 header and its '|b1';
 *   cache        a cache file of fuzz_cache.c's list (3 images, R = 4), written by
 *                cache_save: two images decoded, one bad with its reason;
 *   image        JPEGs written with libjpeg (4:2:0, 4:4:4, grey, progressive, restart
 *                markers, CMYK, arithmetic coding, sizes taking each DCT scaling at
 *                R = 16), the JPEG whose Huffman table has more than 256 codes (which
 *                crashed stb_image 2.27), PNGs written here (grey 1/8 bit, palette with
 *                transparency, RGB 16 bit, grey + alpha, RGBA, Adam7 interlaced) and
 *                BMPs (24, 32 bit).
 * Deterministic: the same files every time, but for the cache file's key and list path,
 * which depend on DIR and the time its images were written (fuzz_cache patches the key).
 * Exit status 0, or 1 with a message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../host/npy.h"
#include "../../host/safetensors.h"
#include "../../loader/cache.h"
#include "../../loader/list.h"
#include "../jpeg_fixtures.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

static const char *root;
static int failures;

static void seed_fail(const char *what, const char *path) {
    fprintf(stderr, "make_seeds: %s: %s\n", path, what);
    failures++;
}

static void seed_path(char *dst, size_t len, const char *dir, const char *name) {
    snprintf(dst, len, "%s/%s/%s", root, dir, name);
}

static void seed_bytes(const char *dir, const char *name, const void *data, size_t len) {
    char path[1024];
    seed_path(path, sizeof path, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) seed_fail(strerror(errno), path);
}

static void seed_text(const char *dir, const char *name, const char *text) { seed_bytes(dir, name, text, strlen(text)); }

/* A smooth colour pattern with edges, [h, w, c]. */
static unsigned char *seed_pattern(int w, int h, int c) {
    unsigned char *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                int v = ((x * (ch + 3) + y * 5) * 7) % 256 + ((x / 4 + y / 3) % 2 ? 40 : -40);
                p[((size_t)y * w + x) * c + ch] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return p;
}

/* ---- lists ------------------------------------------------------------------------- */

static void seed_lists(void) {
    seed_text("list", "plain.txt", "images/a.jpg 0 1 0\nimages/b.jpg 1 0 0\nimages/c.jpg 0 0 1\n");
    seed_text("list", "crlf_bom_tabs.txt", "\xEF\xBB\xBF" "a.jpg\t1\t0\r\nb.jpg 1 1  \r\n\n\n");
    seed_text("list", "single.txt", "x/y/z.png 1\n/abs/path.jpg 0\n");
    seed_text("list", "multi.txt", "m1.jpg 1 1 0 0 1 0 0 0 0 1\nm2.jpg 0 0 0 0 0 0 0 0 0 0\n");
    seed_text("list", "bad_label.txt", "a.jpg 0 2\n");
    seed_text("list", "space_path.txt", "a file.jpg 0 1\n");
    seed_text("list", "blank_inside.txt", "a.jpg 0 1\n\nb.jpg 1 0\n");
    seed_text("list", "counts.txt", "a.jpg 0 1\nb.jpg 1\n");
}

/* ---- safetensors ------------------------------------------------------------------- */

static void seed_safetensors(void) {
    char path[1024], err[512];
    float w[6] = {1, -2, 3.5f, 0, -0.0f, 1e-3f};
    int64_t c[2] = {7, -9};
    uint8_t u[3] = {1, 2, 3};
    int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s0[1] = {0};
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "hash.weight", "F32", 2, s23, w, sizeof w);
    st_writer_add(wr, "rmsprop.hash.weight", "F32", 2, s23, w, sizeof w);
    st_writer_add(wr, "count", "I64", 1, s2, c, sizeof c);
    st_writer_add(wr, "bytes", "U8", 1, s3, u, sizeof u);
    st_writer_add(wr, "empty", "F32", 1, s0, w, 0);
    st_writer_meta(wr, "variant", "dath-n");
    st_writer_meta(wr, "bits", "16");
    st_writer_meta(wr, "epoch", "3");
    st_writer_meta(wr, "batch_in_epoch", "0");
    st_writer_meta(wr, "step", "42");
    st_writer_meta(wr, "args", "--train\tl.txt\t--lr\t1e-05");
    st_writer_meta(wr, "escapes", "quote \" backslash \\ tab \t \\u0041");
    seed_path(path, sizeof path, "safetensors", "checkpoint.safetensors");
    if (st_writer_write(wr, path, err, sizeof err)) seed_fail(err, path);
    st_writer_free(wr);
    wr = st_writer_new();
    seed_path(path, sizeof path, "safetensors", "empty.safetensors");
    if (st_writer_write(wr, path, err, sizeof err)) seed_fail(err, path);
    st_writer_free(wr);
    /* an unknown field nested in a tensor's entry (skipped by the reader) */
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
                    "\"extra\":{\"a\":[1,[2,{\"b\":\"c\"}]],\"d\":null}}}";
    size_t hl = strlen(h);
    unsigned char buf[256] = {0};
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, h, hl);
    memcpy(buf + 8 + hl, w, 4);
    seed_bytes("safetensors", "nested.safetensors", buf, 8 + hl + 4);
}

/* ---- npy --------------------------------------------------------------------------- */

static void seed_npy(void) {
    char path[1024], err[512];
    uint8_t a[12] = {0, 1, 2, 3, 255, 254, 7, 8, 9, 10, 11, 12};
    seed_path(path, sizeof path, "npy", "codes_3x4.npy");
    if (npy_write_u8(path, a, 3, 4, err, sizeof err)) seed_fail(err, path);
    seed_path(path, sizeof path, "npy", "empty_0x5.npy");
    if (npy_write_u8(path, a, 0, 5, err, sizeof err)) seed_fail(err, path);
    /* numpy's format 2.0 (4-byte header length) and a boolean dtype */
    const char *dict = "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3), }";
    unsigned char buf[128];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    size_t hl = 128 - 12 - 6;
    buf[8] = (unsigned char)hl; buf[9] = 0; buf[10] = 0; buf[11] = 0;
    memcpy(buf + 12, dict, strlen(dict));
    buf[12 + hl - 1] = '\n';
    memcpy(buf + 12 + hl, "\1\0\1\0\0\1", 6);
    seed_bytes("npy", "v2_bool.npy", buf, 12 + hl + 6);
}

/* ---- JPEG -------------------------------------------------------------------------- */

static void seed_jpeg_file(const char *name, int w, int h, int comps, J_COLOR_SPACE cs, int how) {
    unsigned char *p = seed_pattern(w, h, comps);
    unsigned long len = 0;
    unsigned char *j = fixture_jpeg(p, w, h, comps, cs, w * h > 8000 ? 20 : 75, how, &len);
    seed_bytes("image", name, j, len);
    free(j);
    free(p);
}

static void seed_jpegs(void) {
    seed_jpeg_file("rgb420_24x16.jpg", 24, 16, 3, JCS_RGB, 0);
    seed_jpeg_file("rgb420_48x32.jpg", 48, 32, 3, JCS_RGB, 0);          /* 1/2 at R = 16 */
    seed_jpeg_file("rgb444_80x64.jpg", 80, 64, 3, JCS_RGB, FIXTURE_444);   /* 1/4 */
    seed_jpeg_file("rgb420_160x136.jpg", 160, 136, 3, JCS_RGB, 0);      /* 1/8 */
    seed_jpeg_file("grey_40x24.jpg", 40, 24, 1, JCS_GRAYSCALE, 0);
    seed_jpeg_file("progressive_48x40.jpg", 48, 40, 3, JCS_RGB, FIXTURE_PROGRESSIVE);
    seed_jpeg_file("restart_33x17.jpg", 33, 17, 3, JCS_RGB, FIXTURE_RESTART);
    seed_jpeg_file("cmyk_32x32.jpg", 32, 32, 4, JCS_CMYK, 0);
    seed_jpeg_file("arith_24x24.jpg", 24, 24, 3, JCS_RGB, FIXTURE_ARITH);
    seed_jpeg_file("tall_8x300.jpg", 8, 300, 3, JCS_RGB, 0);
    unsigned char *p = seed_pattern(32, 24, 3);
    unsigned long len = 0;
    unsigned char *j = fixture_jpeg(p, 32, 24, 3, JCS_RGB, 75, 0, &len);
    unsigned char *big = malloc(len * 21 + 1024);
    size_t n = fixture_jpeg_big_dht(big, j, len);
    if (n) seed_bytes("image", "dht_800_codes.jpg", big, n);
    else seed_fail("no SOS marker", "dht_800_codes.jpg");
    free(j);
    j = fixture_jpeg(p, 16, 16, 3, JCS_RGB, 50, FIXTURE_PROGRESSIVE, &len);
    n = fixture_jpeg_many_scans(big, j, len, 20);
    if (n) seed_bytes("image", "progressive_30_scans.jpg", big, n);
    else seed_fail("no scan found", "progressive_30_scans.jpg");
    free(big);
    free(j);
    free(p);
}

/* ---- PNG and BMP --------------------------------------------------------------------- */

static uint32_t seed_crc(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static size_t seed_chunk(unsigned char *out, const char *type, const unsigned char *data, size_t len) {
    out[0] = (unsigned char)(len >> 24); out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8); out[3] = (unsigned char)len;
    memcpy(out + 4, type, 4);
    if (len) memcpy(out + 8, data, len);
    uint32_t c = seed_crc(out + 4, len + 4);
    out[8 + len] = (unsigned char)(c >> 24); out[9 + len] = (unsigned char)(c >> 16);
    out[10 + len] = (unsigned char)(c >> 8); out[11 + len] = (unsigned char)c;
    return 12 + len;
}

/* A PNG of colour type ct and bit depth bits, w × h, the raw (filtered) scanlines given;
 * interlace as the IHDR says (the raw data must match it). plte: palette bytes or NULL. */
static void seed_png(const char *name, int w, int h, int ct, int bits, int interlace, const unsigned char *raw,
                     size_t raw_len, const unsigned char *plte, size_t plte_len, const unsigned char *trns,
                     size_t trns_len) {
    int zlen = 0;
    unsigned char *z = stbi_zlib_compress((unsigned char *)raw, (int)raw_len, &zlen, 8);
    unsigned char *png = malloc((size_t)zlen + plte_len + trns_len + 128);
    size_t at = 8;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w,
                              (unsigned char)(h >> 24), (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h,
                              (unsigned char)bits, (unsigned char)ct, 0, 0, (unsigned char)interlace};
    at += seed_chunk(png + at, "IHDR", ihdr, 13);
    if (plte) at += seed_chunk(png + at, "PLTE", plte, plte_len);
    if (trns) at += seed_chunk(png + at, "tRNS", trns, trns_len);
    at += seed_chunk(png + at, "IDAT", z, (size_t)zlen);
    at += seed_chunk(png + at, "IEND", NULL, 0);
    seed_bytes("image", name, png, at);
    STBIW_FREE(z);
    free(png);
}

/* Raw scanlines of a w × h image of `bpp` bits a pixel: filter byte (cycling 0..4), then
 * pattern bytes. */
static size_t seed_raw(unsigned char *raw, int w, int h, int bpp) {
    size_t row = ((size_t)w * bpp + 7) / 8, at = 0;
    for (int y = 0; y < h; y++) {
        raw[at++] = (unsigned char)(y % 5);
        for (size_t x = 0; x < row; x++) raw[at++] = (unsigned char)((x * 13 + (size_t)y * 7) & 0xFF);
    }
    return at;
}

static void seed_pngs(void) {
    unsigned char raw[40000];
    size_t n;
    n = seed_raw(raw, 20, 12, 8);  seed_png("grey8_20x12.png", 20, 12, 0, 8, 0, raw, n, NULL, 0, NULL, 0);
    n = seed_raw(raw, 33, 9, 1);   seed_png("grey1_33x9.png", 33, 9, 0, 1, 0, raw, n, NULL, 0, NULL, 0);
    unsigned char plte[48], trns[4] = {0, 128, 255, 64};
    for (int k = 0; k < 48; k++) plte[k] = (unsigned char)(k * 5);
    n = seed_raw(raw, 17, 15, 4);  seed_png("palette4_17x15.png", 17, 15, 3, 4, 0, raw, n, plte, 48, trns, 4);
    n = seed_raw(raw, 12, 10, 48); seed_png("rgb16_12x10.png", 12, 10, 2, 16, 0, raw, n, NULL, 0, NULL, 0);
    n = seed_raw(raw, 16, 16, 16); seed_png("greyalpha_16x16.png", 16, 16, 4, 8, 0, raw, n, NULL, 0, NULL, 0);
    n = seed_raw(raw, 40, 30, 32); seed_png("rgba_40x30.png", 40, 30, 6, 8, 0, raw, n, NULL, 0, NULL, 0);
    /* Adam7: 7 passes, each its own scanlines (8×8 tiles: pass sizes from the standard's grid) */
    {
        static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
        static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
        int w = 19, h = 13;
        size_t at = 0;
        for (int p = 0; p < 7; p++) {
            int pw = (w - x0[p] + dx[p] - 1) / dx[p], ph = (h - y0[p] + dy[p] - 1) / dy[p];
            if (pw <= 0 || ph <= 0) continue;
            at += seed_raw(raw + at, pw, ph, 24);
        }
        seed_png("adam7_rgb_19x13.png", w, h, 2, 8, 1, raw, at, NULL, 0, NULL, 0);
    }
    char path[1024];
    unsigned char *p = seed_pattern(13, 7, 4);
    seed_path(path, sizeof path, "image", "rgb24_13x7.bmp");
    if (!stbi_write_bmp(path, 13, 7, 3, p)) seed_fail("cannot write", path);
    seed_path(path, sizeof path, "image", "rgba32_13x7.bmp");
    if (!stbi_write_bmp(path, 13, 7, 4, p)) seed_fail("cannot write", path);
    free(p);
}

/* ---- the cache file ------------------------------------------------------------------ */

/* fuzz_cache.c's list: 3 images, R = 4; here two of them exist, so the file holds two
 * decoded images and one bad one with its reason. */
static void seed_cache(void) {
    char dir[1024], list[1100], cdir[1100], err[1024], img[1200];
    seed_path(dir, sizeof dir, "cache", ".work");
    mkdir(dir, 0755);
    snprintf(list, sizeof list, "%s/l.txt", dir);
    FILE *f = fopen(list, "w");
    for (int i = 0; f && i < 3; i++) fprintf(f, "absent%d.jpg %d 1\n", i, i & 1);
    if (!f || fclose(f)) { seed_fail("cannot write", list); return; }
    unsigned char *p = seed_pattern(12, 8, 3);
    for (int i = 0; i < 2; i++) {
        unsigned long len = 0;
        unsigned char *j = fixture_jpeg(p, 12, 8, 3, JCS_RGB, 80, 0, &len);
        snprintf(img, sizeof img, "%s/absent%d.jpg", dir, i);
        FILE *g = fopen(img, "wb");
        if (!g || fwrite(j, 1, len, g) != len || fclose(g)) seed_fail("cannot write", img);
        free(j);
    }
    free(p);
    snprintf(cdir, sizeof cdir, "%s/c", dir);
    dath_list *l = list_read(list, dir, err, sizeof err);
    dath_cache *c = l ? cache_create(l, 4, 0, cdir, err, sizeof err) : NULL;
    if (!c || cache_fill(c, l, 1, err, sizeof err) != 1 || cache_save(c, NULL, err, sizeof err)) {
        seed_fail(err, list);
    } else {
        FILE *g = fopen(c->file, "rb");
        unsigned char buf[1 << 16];
        size_t n = g ? fread(buf, 1, sizeof buf, g) : 0;
        if (g) fclose(g);
        seed_bytes("cache", "three_images_r4.dcache", buf, n);
    }
    cache_free(c);
    list_free(l);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) seed_fail("cannot remove", dir);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    static const char *dirs[] = {"", "list", "safetensors", "npy", "cache", "image"};
    for (int i = 0; i < 6; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        if (mkdir(path, 0755) && errno != EEXIST) seed_fail(strerror(errno), path);
    }
    if (failures) return 1;
    seed_lists();
    seed_safetensors();
    seed_npy();
    seed_jpegs();
    seed_pngs();
    seed_cache();
    return failures ? 1 : 0;
}
