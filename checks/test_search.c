/* checks/test_search.c — what `dath search` is built from: the ranking it prints
 * (kernels/hamming.h's hamming_topk_cpu), the mapped database (host/npy.h's npy_map_u8)
 * and the contact sheet (host/sheet.h).
 *
 *   1. hamming_topk_cpu against a plain stable insertion sort by distance (bit-by-bit
 *      distances) on random codes with many ties, code widths of 1 to 17 bytes (whole
 *      and partial 64-bit words), k from 1 to past the database: the same rows and
 *      distances, in the same order, −1 past D;
 *   2. the same ranking is dath eval's: AP@T and the hits at every N computed from
 *      hamming_topk_cpu's order (k = D) and the labels equal hamming_eval_cpu's (AP
 *      bit for bit: the same sums in the same order);
 *   3. npy_map_u8: the shape and bytes npy_read_u8 reads, the data inside a mapping of
 *      the file (/proc/self/maps names it; nothing was copied), refusals that name the
 *      file, npy_unmap;
 *   4. the PNG sheet, decoded again (stb_image): the size sheet.h's layout gives, every
 *      thumbnail's pixels where its cell is, row by row and rank by rank (the query
 *      first), each frame in its mark's colour, captions drawn in their strip only, an
 *      unreadable image grey and crossed; the HTML sheet's images in rank order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../host/npy.h"
#include "../host/sheet.h"
#include "../kernels/hamming.h"
#include "check.h"

#define STBI_NO_STDIO
#include <stb/stb_image.h>   /* declarations only: loader/image.c compiles its PNG decoder */

static char tmpdir[] = "/tmp/dath_test_search_XXXXXX";

static void path_in(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tmpdir, name); }

static int ref_bit(const uint8_t *code, int j) { return (code[j / 8] >> (7 - j % 8)) & 1; }

/* Random codes of K bits in B bytes, padding zero; with few, only 3 bits vary (ties). */
static void gen_codes(uint8_t *codes, int n, int K, int few, uint64_t *s) {
    const int B = (K + 7) / 8;
    memset(codes, 0, (size_t)n * B);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < K; j++)
            if ((!few || j % 17 < 3) && (check_next(s) & 1)) codes[(size_t)i * B + j / 8] |= 0x80 >> (j % 8);
}

/* The reference ranking of one query: order [D] by distance, ties by row (a stable
 * insertion sort); dist [D] each row's distance. */
static void ref_rank(int *order, int *dist, const uint8_t *qc, const uint8_t *dc, int D, int B) {
    for (int i = 0; i < D; i++) {
        dist[i] = 0;
        for (int j = 0; j < 8 * B; j++) dist[i] += ref_bit(qc, j) != ref_bit(dc + (size_t)i * B, j);
        order[i] = i;
    }
    for (int i = 1; i < D; i++) {
        int v = order[i], k = i;
        while (k > 0 && dist[order[k - 1]] > dist[v]) { order[k] = order[k - 1]; k--; }
        order[k] = v;
    }
}

/* ---- 1. and 2. the ranking ----------------------------------------------------------- */

static void check_topk_case(int K, int few, int Q, int D, int C, uint64_t seed) {
    const int B = (K + 7) / 8;
    uint64_t s = seed;
    /* the database one byte past an aligned start, as a mapped file may lie */
    uint8_t *qc = malloc((size_t)Q * B), *dbuf = malloc((size_t)D * B + 1), *dc = dbuf + 1;
    uint8_t *ql = malloc((size_t)Q * C), *dl = malloc((size_t)D * C);
    gen_codes(qc, Q, K, few, &s);
    gen_codes(dc, D, K, few, &s);
    for (int i = 0; i < Q * C; i++) ql[i] = check_unif(&s) < 0.3;
    for (int i = 0; i < D * C; i++) dl[i] = check_unif(&s) < 0.3;
    int *order = malloc((size_t)D * sizeof *order), *dist = malloc((size_t)D * sizeof *dist);
    const int ks[] = {1, 7, D / 2 > 0 ? D / 2 : 1, D, D + 5};
    int ties = 0;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        const int k = ks[t];
        int32_t *row = malloc((size_t)Q * k * sizeof *row), *dd = malloc((size_t)Q * k * sizeof *dd);
        hamming_topk_cpu(row, dd, qc, dc, Q, D, B, k);
        int ok = 1;
        for (int q = 0; q < Q; q++) {
            ref_rank(order, dist, qc + (size_t)q * B, dc, D, B);
            for (int i = 0; i < k; i++) {
                const int32_t r = row[(size_t)q * k + i], d = dd[(size_t)q * k + i];
                if (i < D) {
                    ok &= r == order[i] && d == dist[order[i]];
                    if (i > 0 && d == dd[(size_t)q * k + i - 1]) ties++;
                } else {
                    ok &= r == -1 && d == -1;
                }
            }
        }
        char name[160];
        snprintf(name, sizeof name, "topk K=%d D=%d k=%d: rows and distances of a stable sort by distance", K, D, k);
        CHECK_TRUE(name, ok);
        free(row);
        free(dd);
    }
    if (D > 10) {
        char name[128];
        snprintf(name, sizeof name, "topk K=%d D=%d: the case has ties (%d), so their order is tested", K, D, ties);
        CHECK_TRUE(name, ties > 0);
    }

    /* 2. the order is hamming_eval's: AP@T and hits at N from it, against the metrics */
    const int Ts[] = {1, 5, D};
    int32_t at[3] = {1, D / 3 > 0 ? D / 3 : 1, D};
    int32_t *row = malloc((size_t)Q * D * sizeof *row), *dd = malloc((size_t)Q * D * sizeof *dd);
    hamming_topk_cpu(row, dd, qc, dc, Q, D, B, D);
    for (size_t t = 0; t < 3; t++) {
        const int T = Ts[t] < D ? Ts[t] : D;
        double *ap = malloc((size_t)Q * sizeof *ap), *mine = malloc((size_t)Q * sizeof *mine);
        int32_t *hk = malloc((size_t)Q * sizeof *hk), *ra = malloc((size_t)Q * sizeof *ra);
        int32_t *hits_at = malloc((size_t)Q * 3 * sizeof *hits_at);
        hamming_eval_cpu(ap, hk, ra, NULL, NULL, hits_at, NULL, NULL, qc, dc, ql, dl, at, 3, Q, D, B, C, T, NULL);
        int same = 1;
        for (int q = 0; q < Q; q++) {
            int cnt = 0, h[3] = {0, 0, 0};
            double sum = 0;
            for (int pos = 0; pos < D; pos++) {
                const int r = row[(size_t)q * D + pos];
                int rel = 0;
                for (int c = 0; c < C; c++) rel |= ql[(size_t)q * C + c] && dl[(size_t)r * C + c];
                cnt += rel;
                if (rel && pos < T) sum += (double)cnt / (pos + 1);
                if (pos + 1 == T) same &= hk[q] == cnt;
                for (int j = 0; j < 3; j++)
                    if (pos + 1 == at[j]) h[j] = cnt;
            }
            int hitsT = hk[q];
            mine[q] = hitsT ? sum / hitsT : 0;
            for (int j = 0; j < 3; j++) same &= hits_at[(size_t)q * 3 + j] == h[j];
        }
        char name[160];
        snprintf(name, sizeof name, "topk K=%d D=%d: AP@%d from its order = hamming_eval's (exactly)", K, D, T);
        check_close_d(name, mine, ap, (size_t)Q, 0, 0);
        snprintf(name, sizeof name, "topk K=%d D=%d T=%d: hits in the top T and at N from its order = hamming_eval's",
                 K, D, T);
        CHECK_TRUE(name, same);
        free(ap); free(mine); free(hk); free(ra); free(hits_at);
    }
    free(row); free(dd); free(qc); free(dbuf); free(ql); free(dl); free(order); free(dist);
}

/* ---- 3. the mapped database -------------------------------------------------------- */

/* 1 when address p lies in a mapping of the file `path` (by /proc/self/maps). */
static int mapped_from(const void *p, const char *path) {
    char real[4096];
    if (!realpath(path, real)) return 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[8192];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2) continue;
        line[strcspn(line, "\n")] = 0;
        size_t n = strlen(line), m = strlen(real);
        if ((unsigned long)p >= lo && (unsigned long)p < hi && n >= m && !strcmp(line + n - m, real)) found = 1;
    }
    fclose(f);
    return found;
}

static void check_map(void) {
    char p[512], err[1024];
    uint64_t s = 11;
    const int64_t shapes[][2] = {{1, 1}, {17, 3}, {5000, 8}, {0, 4}};
    for (int k = 0; k < 4; k++) {
        const int64_t r = shapes[k][0], c = shapes[k][1];
        uint8_t *a = malloc((size_t)(r * c + 1)), *b = NULL;
        for (int64_t i = 0; i < r * c; i++) a[i] = (uint8_t)check_next(&s);
        path_in(p, sizeof p, "map.npy");
        int64_t r2, c2;
        npy_map m;
        int ok = npy_write_u8(p, a, r, c, err, sizeof err) == 0 && npy_read_u8(p, &b, &r2, &c2, err, sizeof err) == 0 &&
                 npy_map_u8(p, &m, err, sizeof err) == 0;
        ok = ok && m.rows == r && m.cols == c && (r * c == 0 ? m.data == NULL : memcmp(m.data, b, (size_t)(r * c)) == 0);
        int in_map = ok && (r * c == 0 || mapped_from(m.data, p));
        char name[128];
        snprintf(name, sizeof name, "npy_map_u8 (%lld, %lld): npy_read_u8's shape and bytes", (long long)r, (long long)c);
        CHECK_TRUE(name, ok);
        snprintf(name, sizeof name, "npy_map_u8 (%lld, %lld): the data lie in a mapping of the file (not copied)",
                 (long long)r, (long long)c);
        CHECK_TRUE(name, in_map);
        if (ok) {
            const void *at = m.data;
            npy_unmap(&m);
            if (r * c != 0) {
                snprintf(name, sizeof name, "npy_unmap (%lld, %lld): the mapping is gone", (long long)r, (long long)c);
                CHECK_TRUE(name, !mapped_from(at, p) && m.data == NULL);
            }
        }
        free(a);
        free(b);
    }
    /* refusals: truncated, too long, a float file, not a .npy */
    uint8_t z[40] = {0};
    path_in(p, sizeof p, "bad.npy");
    npy_write_u8(p, z, 5, 8, err, sizeof err);
    struct stat sb;
    if (stat(p, &sb) || truncate(p, sb.st_size - 1)) perror("truncate");   /* one data byte short */
    npy_map m;
    CHECK_TRUE("npy_map_u8 refuses a truncated file, naming it",
               npy_map_u8(p, &m, err, sizeof err) == -1 && strstr(err, p) && m.data == NULL);
    printf("     (%s)\n", err);
    FILE *f = fopen(p, "ab");
    fwrite(z, 1, 2, f);
    fclose(f);
    CHECK_TRUE("npy_map_u8 refuses a file longer than its shape, naming it",
               npy_map_u8(p, &m, err, sizeof err) == -1 && strstr(err, p));
    float fl[4] = {1, 2, 3, 4};
    npy_write_f32(p, fl, 2, 2, err, sizeof err);
    CHECK_TRUE("npy_map_u8 refuses float32, naming the file and the dtype",
               npy_map_u8(p, &m, err, sizeof err) == -1 && strstr(err, p) && strstr(err, "<f4"));
    printf("     (%s)\n", err);
    f = fopen(p, "wb");
    fputs("not numpy", f);
    fclose(f);
    CHECK_TRUE("npy_map_u8 refuses a file without the magic", npy_map_u8(p, &m, err, sizeof err) == -1 && strstr(err, p));
    path_in(p, sizeof p, "missing.npy");
    CHECK_TRUE("npy_map_u8 refuses a missing file", npy_map_u8(p, &m, err, sizeof err) == -1 && strstr(err, p));
}

/* ---- 4. the sheet ---------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void check_sheet(void) {
    enum { ROWS = 3, COLS = 5, T = 40 };
    uint8_t *thumbs = malloc((size_t)ROWS * COLS * T * T * 3);   /* a distinct pattern a cell */
    uint64_t s = 3;
    for (size_t i = 0; i < (size_t)ROWS * COLS * T * T * 3; i++) thumbs[i] = (uint8_t)(check_next(&s) >> 56);
    sheet_cell cells[ROWS * COLS];
    char caps[ROWS * COLS][16], srcs[ROWS * COLS][32];
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            const int i = r * COLS + c;
            snprintf(caps[i], sizeof caps[i], c ? "d=%d" : "query %d", c ? c + r : r + 1);
            snprintf(srcs[i], sizeof srcs[i], "img/r%dc%d.jpg", r, c);
            cells[i] = (sheet_cell){thumbs + (size_t)i * T * T * 3, srcs[i], NULL, caps[i],
                                    c == 0 ? SHEET_QUERY : (sheet_mark)(1 + (r + c) % 3)};
        }
    cells[1 * COLS + 3].rgb = NULL;       /* unreadable */
    cells[2 * COLS + 2].caption = NULL;   /* no caption */
    char p[512], err[1024];
    path_in(p, sizeof p, "sheet.png");
    CHECK_TRUE("sheet_write_png writes the sheet", sheet_write_png(p, cells, ROWS, COLS, T, err, sizeof err) == 0);
    size_t len = 0;
    uint8_t *png = read_file(p, &len);
    int w = 0, h = 0, ch = 0;
    uint8_t *img = png ? stbi_load_from_memory(png, (int)len, &w, &h, &ch, 3) : NULL;
    CHECK_TRUE("the sheet is a PNG stb_image decodes, RGB", img != NULL && ch == 3);
    /* the layout of sheet.h, written out here */
    const int cell = T + 2 * SHEET_FRAME;
    const int ew = SHEET_PAD + COLS * (cell + SHEET_PAD) + SHEET_GAP, eh = SHEET_PAD + ROWS * (cell + SHEET_CAPTION + SHEET_PAD);
    int sw, shh;
    sheet_size(ROWS, COLS, T, &sw, &shh);
    printf("     sheet %d × %d (expected %d × %d)\n", w, h, ew, eh);
    CHECK_TRUE("the sheet's size is the layout's (width, height)", w == ew && h == eh && sw == ew && shh == eh);
    if (!img || w != ew || h != eh) {
        free(png);
        stbi_image_free(img);
        free(thumbs);
        return;
    }
    int pix_ok = 1, frame_ok = 1, cap_ok = 1, cross_ok = 1;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            const int i = r * COLS + c;
            const int x0 = SHEET_PAD + c * (cell + SHEET_PAD) + (c ? SHEET_GAP : 0);
            const int y0 = SHEET_PAD + r * (cell + SHEET_CAPTION + SHEET_PAD);
            int tx, ty;
            sheet_thumb_origin(r, c, T, &tx, &ty);
            pix_ok &= tx == x0 + SHEET_FRAME && ty == y0 + SHEET_FRAME;
            const uint8_t *col = sheet_colours[cells[i].mark];
            for (int k = 0; k < cell; k++) {   /* the frame's four sides */
                const uint8_t *px[4] = {img + ((size_t)y0 * w + x0 + k) * 3, img + ((size_t)(y0 + cell - 1) * w + x0 + k) * 3,
                                        img + ((size_t)(y0 + k) * w + x0) * 3, img + ((size_t)(y0 + k) * w + x0 + cell - 1) * 3};
                for (int e = 0; e < 4; e++) frame_ok &= !memcmp(px[e], col, 3);
            }
            if (cells[i].rgb) {
                for (int y = 0; y < T; y++)
                    pix_ok &= !memcmp(img + ((size_t)(ty + y) * w + tx) * 3, thumbs + ((size_t)i * T * T + (size_t)y * T) * 3,
                                      (size_t)T * 3);
            } else {   /* grey with dark diagonals */
                const uint8_t *mid = img + ((size_t)(ty + T / 2) * w + tx + T / 2) * 3;
                const uint8_t *off = img + ((size_t)(ty + 2) * w + tx + T / 2) * 3;
                cross_ok &= mid[0] < 120 && off[0] == 200 && off[1] == 200 && off[2] == 200;
            }
            int ink = 0;   /* dark pixels in the caption strip */
            for (int y = y0 + cell; y < y0 + cell + SHEET_CAPTION; y++)
                for (int x = x0; x < x0 + cell; x++) ink += img[((size_t)y * w + x) * 3] < 100;
            cap_ok &= cells[i].caption ? ink > 10 : ink == 0;
        }
    CHECK_TRUE("every thumbnail's pixels are in its cell, the query first in each row, results in rank order", pix_ok);
    CHECK_TRUE("every frame is its mark's colour (query blue, relevant green, not red, unknown grey)", frame_ok);
    CHECK_TRUE("captions are drawn under their cells, none where there is none", cap_ok);
    CHECK_TRUE("an unreadable image is a grey square crossed by dark diagonals", cross_ok);
    /* outside every cell and strip: the white background (between rows 0 and 1) */
    const uint8_t *bg = img + ((size_t)(SHEET_PAD + cell + SHEET_CAPTION + 1) * w + 1) * 3;
    CHECK_TRUE("the background is white", bg[0] == 255 && bg[1] == 255 && bg[2] == 255);
    stbi_image_free(img);
    free(png);

    path_in(p, sizeof p, "sheet.html");
    cells[0].title = "query \"1\" <a&b>";
    CHECK_TRUE("sheet_write_html writes the page", sheet_write_html(p, "t", cells, ROWS, COLS, T, err, sizeof err) == 0);
    char *html = (char *)read_file(p, &len);
    int order_ok = html != NULL;
    const char *at = html;
    for (int i = 0; order_ok && i < ROWS * COLS; i++) {
        char want[64];
        snprintf(want, sizeof want, "src=\"%.40s\"", srcs[i]);
        const char *f = strstr(at, want);
        order_ok = f != NULL;
        if (f) at = f;
    }
    CHECK_TRUE("the HTML sheet refers to every image, row by row and in rank order", order_ok);
    CHECK_TRUE("the HTML sheet escapes titles", html && strstr(html, "query &quot;1&quot; &lt;a&amp;b&gt;"));
    free(html);
    CHECK_TRUE("a sheet of 0 rows is refused, naming the file",
               sheet_write_png(p, cells, 0, COLS, T, err, sizeof err) == -1 && strstr(err, p));
    free(thumbs);
}

int main(void) {
    if (!mkdtemp(tmpdir)) check_skip("cannot create a temporary directory");
    /* K, few varying bits, Q, D, C */
    check_topk_case(8, 0, 20, 300, 5, 1);     /* one byte: 9 distances, ties everywhere */
    check_topk_case(12, 1, 15, 200, 3, 2);    /* padding bits */
    check_topk_case(64, 1, 10, 500, 4, 3);    /* one whole word */
    check_topk_case(72, 0, 10, 250, 7, 4);    /* a word and a byte */
    check_topk_case(136, 1, 6, 120, 2, 5);    /* two words and a byte */
    check_topk_case(16, 0, 3, 1, 2, 6);       /* a database of one */
    check_map();
    check_sheet();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    return check_finish();
}
