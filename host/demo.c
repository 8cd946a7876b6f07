/* host/demo.c — `dath mkdemo`: a small, real multi-label data set from Fashion-MNIST.
 *
 * Each image is a 2×2 mosaic of Fashion-MNIST items (10 classes). Every cell is empty
 * with probability --empty (at least one cell holds an item); an item is scaled to 7/8
 * of its cell with a bilinear filter, placed at a random offset inside the cell and
 * painted on a random dark background in a bright colour: by default its class's own
 * colour (a fixed palette, jittered ±24 per channel), so that a network trained from
 * scratch for a few CPU minutes can learn the task; with --colours random a random
 * colour, so that colour says nothing about the class and only shape does (without
 * ImageNet weights that needs far longer training). The labels are the classes present
 * (a multi-hot row of 10),
 * so two images are similar when they show a common class. Saved as RGB JPEGs.
 *
 * Splits: train and database draw their items from Fashion-MNIST's training images
 * (the first and the second half respectively), test (the queries) from its test
 * images, so no item appears in two splits. Written:
 *   OUT/images/{train,test,database}/NNNNNN.jpg
 *   OUT/train.txt, OUT/test.txt, OUT/database.txt   ("images/train/000000.jpg 0 1 …")
 * paths relative to OUT (train with --root OUT). Everything follows from --seed
 * through the counter-based generator (kernels/rng.h, tag DEMO_RNG below), so the same
 * seed gives the same files.
 *
 * The gzip files are inflated with stb_image's zlib decoder (compiled in image.c),
 * so no other library is needed; the gzip header, CRC-32 and length are checked here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "opts.h"
#include "../kernels/rng.h"

#define STBI_NO_STDIO
#include <stb/stb_image.h>   /* declarations only: the zlib decoder */
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

enum {
    DEMO_RNG = 0x44454D4F,   /* the generator's tag for demo data ("DEMO"), apart from RNG_* */
    DEMO_CLASSES = 10,
    DEMO_TILE = 28,          /* Fashion-MNIST side */
};

static const char *DEMO_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/* ---- gzip ---------------------------------------------------------------------- */

static uint32_t demo_crc32(const unsigned char *p, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t demo_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t demo_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads and inflates a .gz file. Returns the data (caller frees) or NULL with err. */
static unsigned char *demo_gunzip(const char *path, size_t *out_len, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: %s (install Debian's dataset-fashion-mnist, or give --mnist DIR)",
                 path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *gz = len > 18 ? malloc((size_t)len) : NULL;
    size_t got = gz ? fread(gz, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!gz || got != (size_t)len) {
        snprintf(err, err_len, "%s: cannot read the file", path);
        free(gz);
        return NULL;
    }
    const char *bad = NULL;
    size_t pos = 10;
    if (gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8) bad = "not a gzip file";
    else {
        int flg = gz[3];
        if (flg & 4) pos += 2 + (size_t)(gz[10] | gz[11] << 8);                       /* FEXTRA */
        if (flg & 8) { while (pos < (size_t)len && gz[pos]) pos++; pos++; }         /* FNAME */
        if (flg & 16) { while (pos < (size_t)len && gz[pos]) pos++; pos++; }        /* FCOMMENT */
        if (flg & 2) pos += 2;                                                       /* FHCRC */
        if (pos + 8 > (size_t)len) bad = "truncated gzip header";
    }
    unsigned char *data = NULL;
    int n = 0;
    if (!bad) {
        /* the 8-byte trailer is passed too: stb 2.27's inflater refuses a stream that ends
         * less than 2 bytes before its buffer does, and the final block ends it anyway */
        data = (unsigned char *)stbi_zlib_decode_noheader_malloc((const char *)gz + pos,
                                                                (int)((size_t)len - pos), &n);
        if (!data) bad = "corrupt deflate data";
        else if ((uint32_t)n != demo_le32(gz + len - 4)) bad = "length does not match the gzip trailer";
        else if (demo_crc32(data, (size_t)n) != demo_le32(gz + len - 8)) bad = "CRC-32 mismatch";
    }
    free(gz);
    if (bad) {
        snprintf(err, err_len, "%s: %s", path, bad);
        free(data);
        return NULL;
    }
    *out_len = (size_t)n;
    return data;
}

/* One Fashion-MNIST split: images [n, 28, 28] and labels [n]. */
typedef struct demo_set {
    int n;
    unsigned char *images, *labels;   /* point into the inflated buffers */
    unsigned char *image_buf, *label_buf;
} demo_set;

static int demo_load_set(demo_set *s, const char *dir, const char *prefix, char *err, size_t err_len) {
    char path[1024];
    size_t ilen = 0, llen = 0;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    s->image_buf = demo_gunzip(path, &ilen, err, err_len);
    if (!s->image_buf) return -1;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    s->label_buf = demo_gunzip(path, &llen, err, err_len);
    if (!s->label_buf) return -1;
    if (ilen < 16 || demo_be32(s->image_buf) != 0x803 || demo_be32(s->image_buf + 8) != DEMO_TILE ||
        demo_be32(s->image_buf + 12) != DEMO_TILE) {
        snprintf(err, err_len, "%s/%s-images-idx3-ubyte.gz: not an IDX file of 28x28 images", dir, prefix);
        return -1;
    }
    if (llen < 8 || demo_be32(s->label_buf) != 0x801) {
        snprintf(err, err_len, "%s/%s-labels-idx1-ubyte.gz: not an IDX label file", dir, prefix);
        return -1;
    }
    uint32_t n = demo_be32(s->image_buf + 4);
    if (n != demo_be32(s->label_buf + 4) || ilen < 16 + (size_t)n * DEMO_TILE * DEMO_TILE || llen < 8 + n) {
        snprintf(err, err_len, "%s/%s-*: image and label counts disagree or files are short", dir, prefix);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (s->label_buf[8 + i] >= DEMO_CLASSES) {
            snprintf(err, err_len, "%s/%s-labels-idx1-ubyte.gz: label %d of item %u", dir, prefix,
                     s->label_buf[8 + i], i);
            return -1;
        }
    s->n = (int)n;
    s->images = s->image_buf + 16;
    s->labels = s->label_buf + 8;
    return 0;
}

/* ---- mosaics ----------------------------------------------------------------------- */

static float demo_unif(uint64_t seed, uint32_t split, uint32_t k, uint32_t c) {
    return rng_uniform(seed, DEMO_RNG, split, k, c);
}

/* Bilinear sample of a 28×28 tile at (x, y) in tile pixel units (centres at +0.5). */
static float demo_sample(const unsigned char *tile, float x, float y) {
    x -= 0.5f;
    y -= 0.5f;
    int x0 = (int)(x < 0 ? -1 : x), y0 = (int)(y < 0 ? -1 : y);
    float fx = x - (float)x0, fy = y - (float)y0;
    float v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            xx = xx < 0 ? 0 : xx > DEMO_TILE - 1 ? DEMO_TILE - 1 : xx;
            yy = yy < 0 ? 0 : yy > DEMO_TILE - 1 ? DEMO_TILE - 1 : yy;
            float w = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
            v += w * tile[yy * DEMO_TILE + xx];
        }
    return v / 255.0f;
}

/* Renders mosaic k of split `split` into img [side, side, 3] and its labels [10].
 * Items come from set items [lo, hi). */
/* Class colours of --colours class: ten well separated bright colours. */
static const float DEMO_PALETTE[DEMO_CLASSES][3] = {
    {230, 60, 60}, {60, 220, 60}, {70, 90, 255}, {240, 230, 60}, {230, 60, 230},
    {60, 225, 230}, {250, 150, 40}, {150, 70, 250}, {235, 235, 235}, {140, 200, 120}};

static void demo_render(unsigned char *img, unsigned char *labels, const demo_set *set, int lo,
                        int hi, int side, float empty, int class_colours, uint64_t seed,
                        uint32_t split, uint32_t k) {
    uint32_t c = 0;
    float bg[3];
    for (int ch = 0; ch < 3; ch++) bg[ch] = 48.0f * demo_unif(seed, split, k, c++);
    int cell = side / 2, ts = cell - cell / 8;
    int full[4], any = 0;
    for (int q = 0; q < 4; q++) any |= full[q] = demo_unif(seed, split, k, c++) >= empty;
    if (!any) full[rng_u32(seed, DEMO_RNG, split, k, c) % 4] = 1;
    c++;
    memset(labels, 0, DEMO_CLASSES);
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            for (int ch = 0; ch < 3; ch++) img[(y * side + x) * 3 + ch] = (unsigned char)bg[ch];
    for (int q = 0; q < 4; q++) {
        uint32_t cq = 16 + 8 * (uint32_t)q;   /* each cell draws from its own counters */
        if (!full[q]) continue;
        int item = lo + (int)(rng_u32(seed, DEMO_RNG, split, k, cq) % (uint32_t)(hi - lo));
        labels[set->labels[item]] = 1;
        const unsigned char *tile = set->images + (size_t)item * DEMO_TILE * DEMO_TILE;
        float col[3];
        for (int ch = 0; ch < 3; ch++) {
            float u = demo_unif(seed, split, k, cq + 1 + (uint32_t)ch);
            col[ch] = class_colours ? DEMO_PALETTE[set->labels[item]][ch] + 48.0f * (u - 0.5f) : 128.0f + 127.0f * u;
            col[ch] = col[ch] > 255 ? 255 : col[ch];
        }
        int ox = (q % 2) * cell + (int)(rng_u32(seed, DEMO_RNG, split, k, cq + 4) % (uint32_t)(cell - ts + 1));
        int oy = (q / 2) * cell + (int)(rng_u32(seed, DEMO_RNG, split, k, cq + 5) % (uint32_t)(cell - ts + 1));
        for (int y = 0; y < ts; y++)
            for (int x = 0; x < ts; x++) {
                float v = demo_sample(tile, (x + 0.5f) * DEMO_TILE / ts, (y + 0.5f) * DEMO_TILE / ts);
                unsigned char *px = img + ((size_t)(oy + y) * side + (size_t)(ox + x)) * 3;
                for (int ch = 0; ch < 3; ch++) {
                    float out = px[ch] * (1 - v) + col[ch] * v + 0.5f;
                    px[ch] = (unsigned char)(out > 255 ? 255 : out);
                }
            }
    }
}

static int demo_mkdir(const char *path, char *err, size_t err_len) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return 0;
    snprintf(err, err_len, "%.1000s: cannot make the directory: %s", path, strerror(errno));
    return -1;
}

/* Writes one split: its images and its list. Returns 0, or -1 with err. */
static int demo_split(const char *out, const char *name, int count, const demo_set *set, int lo,
                      int hi, int side, float empty, int class_colours, int quality, uint64_t seed, uint32_t split,
                      int *class_count, double *labels_per_image, char *err, size_t err_len) {
    char path[1024], list_tmp[1024], list_path[1024];
    snprintf(path, sizeof path, "%s/images/%s", out, name);
    if (demo_mkdir(path, err, err_len)) return -1;
    snprintf(list_path, sizeof list_path, "%s/%s.txt", out, name);
    snprintf(list_tmp, sizeof list_tmp, "%s/.%s.txt.tmp", out, name);
    FILE *lf = fopen(list_tmp, "w");
    if (!lf) {
        snprintf(err, err_len, "%s: %s", list_tmp, strerror(errno));
        return -1;
    }
    unsigned char *img = malloc((size_t)side * side * 3);   /* [side, side, 3] */
    unsigned char labels[DEMO_CLASSES];
    long total = 0;
    int rc = img ? 0 : -1;
    if (!img) snprintf(err, err_len, "out of memory");
    for (int k = 0; k < count && rc == 0; k++) {
        demo_render(img, labels, set, lo, hi, side, empty, class_colours, seed, split, (uint32_t)k);
        snprintf(path, sizeof path, "%s/images/%s/%06d.jpg", out, name, k);
        if (!stbi_write_jpg(path, side, side, 3, img, quality)) {
            snprintf(err, err_len, "%s: cannot write the JPEG", path);
            rc = -1;
            break;
        }
        fprintf(lf, "images/%s/%06d.jpg", name, k);
        for (int j = 0; j < DEMO_CLASSES; j++) {
            fprintf(lf, " %d", labels[j]);
            class_count[j] += labels[j];
            total += labels[j];
        }
        fputc('\n', lf);
    }
    free(img);
    if (fclose(lf) != 0 && rc == 0) {
        snprintf(err, err_len, "%s: write error", list_tmp);
        rc = -1;
    }
    if (rc == 0 && rename(list_tmp, list_path) != 0) {
        snprintf(err, err_len, "%s: %s", list_path, strerror(errno));
        rc = -1;
    }
    if (rc) remove(list_tmp);
    *labels_per_image = count ? (double)total / count : 0;
    return rc;
}

int cmd_mkdemo(int argc, char **argv) {
    const char *out = NULL, *mnist = NULL;
    int ntrain = 0, ntest = 0, ndb = 0, side = 0, quality = 0;
    uint64_t seed = 0;
    float empty = 0;
    const char *colours = NULL;
    opt_spec spec[] = {
        {"out", OPT_STR, &out, NULL, "output directory (made when missing)", OPT_REQUIRED},
        {"train", OPT_INT, &ntrain, "1000", "training images", 0},
        {"test", OPT_INT, &ntest, "200", "query images", 0},
        {"database", OPT_INT, &ndb, "2000", "database images", 0},
        {"side", OPT_INT, &side, "64", "image side in pixels (even, 16..4096)", 0},
        {"empty", OPT_FLOAT, &empty, "0.5", "probability that a mosaic cell is empty", 0},
        {"colours", OPT_STR, &colours, "class", "item colours: class (each class its own, learnable from scratch) or random (shape only)", 0},
        {"quality", OPT_INT, &quality, "90", "JPEG quality (1..100)", 0},
        {"seed", OPT_U64, &seed, "1", "seed: the same seed gives the same files", 0},
        {"mnist", OPT_STR, &mnist, DEMO_MNIST_DIR, "Fashion-MNIST directory (*-idx*-ubyte.gz)", 0},
        {0},
    };
    char err[2048];
    int npos = 0;
    int rc = opts_parse("dath mkdemo", "--out DIR [options]", spec, argc, argv, NULL, 0, &npos,
                        err, sizeof err);
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "dath mkdemo: %s\n", err);
        return 2;
    }
    int class_colours = !strcmp(colours, "class");
    if (!class_colours && strcmp(colours, "random")) {
        fprintf(stderr, "dath mkdemo: --colours '%s': expected class or random\n", colours);
        return 2;
    }
    if (ntrain < 2 || ntest < 1 || ndb < 1 || side < 16 || side > 4096 || side % 2 ||
        quality < 1 || quality > 100 || !(empty >= 0 && empty < 1)) {
        fprintf(stderr, "dath mkdemo: need --train >= 2, --test >= 1, --database >= 1, an even "
                        "--side in 16..4096, --quality in 1..100 and --empty in [0, 1)\n");
        return 2;
    }
    demo_set train = {0}, test = {0};
    int status = 1;
    if (demo_load_set(&train, mnist, "train", err, sizeof err) ||
        demo_load_set(&test, mnist, "t10k", err, sizeof err)) {
        fprintf(stderr, "dath mkdemo: %s\n", err);
        goto done;
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/images", out);
    if (demo_mkdir(out, err, sizeof err) || demo_mkdir(path, err, sizeof err)) {
        fprintf(stderr, "dath mkdemo: %s\n", err);
        goto done;
    }
    static const char *names[3] = {"train", "test", "database"};
    int counts[3] = {ntrain, ntest, ndb};
    const demo_set *sets[3] = {&train, &test, &train};
    int lo[3] = {0, 0, train.n / 2}, hi[3] = {train.n / 2, test.n, train.n};
    for (int s = 0; s < 3; s++) {
        int class_count[DEMO_CLASSES] = {0};
        double per = 0;
        if (demo_split(out, names[s], counts[s], sets[s], lo[s], hi[s], side, empty, class_colours, quality, seed,
                       (uint32_t)s, class_count, &per, err, sizeof err)) {
            fprintf(stderr, "dath mkdemo: %s\n", err);
            goto done;
        }
        printf("%s/%s.txt: %d images %dx%d, %.2f labels per image, per class:", out, names[s],
               counts[s], side, side, per);
        for (int j = 0; j < DEMO_CLASSES; j++) printf(" %d", class_count[j]);
        printf("\n");
    }
    printf("train with --root %s (paths in the lists are relative to it)\n", out);
    status = 0;
done:
    free(train.image_buf);
    free(train.label_buf);
    free(test.image_buf);
    free(test.label_buf);
    return status;
}
