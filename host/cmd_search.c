/* host/cmd_search.c — `dath search`: the database items nearest to a query by Hamming
 * distance, as a user of a retrieval system sees them.
 *
 * Queries: images (--image, --list with --model: encoded as `dath encode` encodes them,
 * centre crop, no dropout) or codes (--codes Q.npy, with their list or --labels for
 * relevance). Database: packed codes (--db D.npy, mapped, not read into memory: a
 * million 64-bit codes are 8 MB of page cache) and, optionally, its list (--db-list, row
 * i of the list is row i of the codes: paths and labels) or its labels (--db-labels,
 * mapped too). Ranking: kernels/hamming.h's hamming_topk_cpu, the reference ranking's
 * own counting sort, so the order is `dath eval`'s exactly (ties in database order).
 *
 * Output on stdout: a table per query (rank, distance, relevance, row, path, labels),
 * or with --json one JSON object a query (a line each). --sheet OUT.png or OUT.html:
 * the contact sheet (host/sheet.h). Timings on stderr: the database's mapping, the
 * model's setup, each batch of queries' decode and encode, and the ranking. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../kernels/hamming.h"
#include "../loader/image.h"
#include "../loader/list.h"
#include "backend.h"
#include "cli.h"
#include "clock.h"
#include "encoder.h"
#include "model.h"
#include "npy.h"
#include "opts.h"
#include "sheet.h"

#define SEARCH_IMAGE_BATCH 32   /* --image queries encoded this many at a time */

/* The queries: codes [Q, B], labels [Q, C] or NULL, a name each (a path, or "FILE:ROW"). */
typedef struct search_queries {
    uint8_t *codes;
    uint8_t *labels;
    char **names;        /* [Q] malloc'd each */
    const char **paths;  /* [Q] the image to show (NULL: none); point into names or a list */
    int Q, B, C;
    double encode_s, decode_s;   /* time spent decoding and encoding query images */
} search_queries;

static void search_queries_free(search_queries *q) {
    for (int i = 0; q->names && i < q->Q; i++) free(q->names[i]);
    free(q->names);
    free(q->paths);
    free(q->codes);
    free(q->labels);
}

static char *search_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Allocates names and paths for Q queries. */
static int search_queries_alloc(search_queries *q, int Q, char *err, size_t err_len) {
    q->Q = Q;
    q->names = calloc((size_t)Q, sizeof *q->names);
    q->paths = calloc((size_t)Q, sizeof *q->paths);
    if (!q->names || !q->paths) {
        snprintf(err, err_len, "out of memory for %d queries", Q);
        return -1;
    }
    return 0;
}

/* Queries from image files: decoded (loader/image.h, the cached unit at the model's
 * side) and encoded SEARCH_IMAGE_BATCH at a time. An image that cannot be read is an
 * error (a search for it would answer nothing). */
static int search_encode_images(search_queries *q, const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                                const opt_list *images, int64_t max_pixels, char *err, size_t err_len) {
    const int n = images->n, K = m->K, R = transform_cache_side(m->S);
    const int batch = n < SEARCH_IMAGE_BATCH ? n : SEARCH_IMAGE_BATCH;
    if (search_queries_alloc(q, n, err, err_len)) return -1;
    q->B = (K + 7) / 8;
    q->codes = malloc((size_t)n * q->B);
    float *h = malloc((size_t)batch * K * sizeof *h);   /* [batch, K] */
    dath_encoder *enc = NULL;
    int rc = -1;
    if (!q->codes || !h) {
        snprintf(err, err_len, "out of memory for %d query images", n);
        goto done;
    }
    double t0 = dath_now();
    if (!(enc = encoder_create(be, ctx, m, batch, err, err_len))) goto done;
    fprintf(stderr, "dath search: %s, %d bits, input %d, on %s: set up in %.1f ms\n", variant_name(m->variant), K,
            m->S, be->device, (dath_now() - t0) * 1e3);
    uint8_t *img = encoder_images(enc);   /* [batch, R, R, 3] */
    for (int at = 0; at < n; at += batch) {
        const int b = n - at < batch ? n - at : batch;
        double t1 = dath_now();
        for (int i = 0; i < b; i++) {
            const char *path = images->v[at + i];
            char why[512];
            if (image_load(path, R, max_pixels, img + (size_t)i * R * R * 3, why, sizeof why)) {
                snprintf(err, err_len, "--image %s: %s", path, why);
                goto done;
            }
            if (!(q->names[at + i] = search_strdup(path))) {
                snprintf(err, err_len, "out of memory");
                goto done;
            }
            q->paths[at + i] = q->names[at + i];
        }
        double t2 = dath_now();
        if (encoder_run(enc, b, h, err, err_len)) goto done;
        encoder_pack(q->codes + (size_t)at * q->B, h, b, K);
        double t3 = dath_now();
        q->decode_s += t2 - t1;
        q->encode_s += t3 - t2;
    }
    rc = 0;
done:
    encoder_free(enc);
    free(h);
    return rc;
}

/* Queries from an image list, encoded through the prefetcher (encoder_encode_list);
 * images that cannot be read are left out (and named), as `dath encode` does. */
static int search_encode_list(search_queries *q, const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                              const dath_list *l, int batch, int workers, int64_t max_pixels, char *err,
                              size_t err_len) {
    int *kept = NULL, n = 0;
    double t0 = dath_now();
    if (encoder_encode_list(be, ctx, m, l, batch, workers, max_pixels, 1, &q->codes, &kept, &n, err, err_len))
        return -1;
    q->encode_s = dath_now() - t0;
    int rc = -1;
    if (n == 0) {
        snprintf(err, err_len, "%s: no image could be read", l->file);
        goto done;
    }
    if (search_queries_alloc(q, n, err, err_len)) goto done;
    q->B = (m->K + 7) / 8;
    q->C = l->C;
    if (!(q->labels = list_rows_labels(l, kept, n))) {
        snprintf(err, err_len, "%s: out of memory", l->file);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (!(q->names[i] = search_strdup(l->names[kept[i]]))) {
            snprintf(err, err_len, "out of memory");
            goto done;
        }
        q->paths[i] = l->paths[kept[i]];
    }
    rc = 0;
done:
    free(kept);
    return rc;
}

/* Queries from a codes file, named by its list (paths, labels: row i of the list is row
 * i of the codes) or by their row, labels from --labels. */
static int search_read_codes(search_queries *q, const char *codes, const char *labels, const dath_list *l,
                             char *err, size_t err_len) {
    int64_t rows, cols;
    if (npy_read_u8(codes, &q->codes, &rows, &cols, err, err_len)) return -1;
    if (rows < 1 || rows > 1000000 || cols < 1 || cols > 4095) {
        snprintf(err, err_len, "--codes %s: %" PRId64 " rows of %" PRId64 " bytes (need 1 to 1e6 rows of 1 to "
                 "4095 bytes)", codes, rows, cols);
        return -1;
    }
    if (search_queries_alloc(q, (int)rows, err, err_len)) return -1;
    q->B = (int)cols;
    if (l && l->n != rows) {
        snprintf(err, err_len, "--codes %s has %" PRId64 " rows but --list %s has %d; row i of the list must be "
                 "row i of the codes", codes, rows, l->file, l->n);
        return -1;
    }
    if (labels) {
        int64_t lr, lc;
        if (npy_read_u8(labels, &q->labels, &lr, &lc, err, err_len)) return -1;
        if (lr != rows || lc < 1 || lc > 1000000) {
            snprintf(err, err_len, "--labels %s has %" PRId64 " rows of %" PRId64 " classes but --codes %s has %"
                     PRId64 " rows", labels, lr, lc, codes, rows);
            return -1;
        }
        q->C = (int)lc;
    } else if (l) {
        q->labels = malloc((size_t)l->n * l->C);
        if (!q->labels) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        memcpy(q->labels, l->labels, (size_t)l->n * l->C);
        q->C = l->C;
    }
    for (int i = 0; i < q->Q; i++) {
        char name[4200];
        if (l) snprintf(name, sizeof name, "%s", l->names[i]);
        else snprintf(name, sizeof name, "%s:%d", codes, i);
        if (!(q->names[i] = search_strdup(name))) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        q->paths[i] = l ? l->paths[i] : NULL;
    }
    return 0;
}

/* 1 when label rows a and b [C] share a label (DESIGN.md §5: an unlabelled item is never
 * relevant). */
static int search_relevant(const uint8_t *a, const uint8_t *b, int C) {
    for (int c = 0; c < C; c++)
        if (a[c] && b[c]) return 1;
    return 0;
}

/* The classes of a label row as "2 5 7" ("-" when none) into buf. */
static const char *search_label_text(char *buf, size_t len, const uint8_t *lab, int C) {
    size_t at = 0;
    buf[0] = 0;
    for (int c = 0; c < C && at + 12 < len; c++)
        if (lab[c]) at += (size_t)snprintf(buf + at, len - at, "%s%d", at ? " " : "", c);
    if (!at) snprintf(buf, len, "-");
    return buf;
}

static void search_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void search_json_labels(FILE *f, const uint8_t *lab, int C) {
    if (!lab) {
        fputs("null", f);
        return;
    }
    fputc('[', f);
    int first = 1;
    for (int c = 0; c < C; c++)
        if (lab[c]) {
            fprintf(f, "%s%d", first ? "" : ",", c);
            first = 0;
        }
    fputc(']', f);
}

/* What the database brings besides its codes. */
typedef struct search_db {
    npy_map codes, labels;       /* labels: --db-labels, mapped (or none) */
    const dath_list *list;       /* --db-list (or NULL) */
    const uint8_t *lab;          /* [D, C] from the list or the labels file, or NULL */
    int D, B, C;
} search_db;

/* The results as text or JSON lines. row, dist [Q, K]. */
static void search_print(const search_queries *q, const search_db *db, const int32_t *row, const int32_t *dist,
                         int K, int json, double rank_s) {
    const int rel_known = q->labels && db->lab;
    char lq[4096], ld[4096];
    for (int i = 0; i < q->Q; i++) {
        const uint8_t *ql = q->labels ? q->labels + (size_t)i * q->C : NULL;
        if (json) {
            printf("{\"query\":%d,\"name\":", i + 1);
            search_json_str(stdout, q->names[i]);
            printf(",\"labels\":");
            search_json_labels(stdout, ql, q->C);
            printf(",\"results\":[");
            for (int k = 0; k < K; k++) {
                const int r = row[(size_t)i * K + k];
                printf("%s{\"rank\":%d,\"row\":%d,\"distance\":%d,\"path\":", k ? "," : "", k + 1, r,
                       dist[(size_t)i * K + k]);
                if (db->list) search_json_str(stdout, db->list->names[r]);
                else printf("null");
                printf(",\"labels\":");
                search_json_labels(stdout, db->lab ? db->lab + (size_t)r * db->C : NULL, db->C);
                printf(",\"relevant\":%s}",
                       rel_known ? (search_relevant(ql, db->lab + (size_t)r * db->C, db->C) ? "true" : "false")
                                 : "null");
            }
            printf("],\"rank_ms\":%.3f}\n", rank_s * 1e3 / q->Q);
            continue;
        }
        printf("%squery %d of %d: %s", i ? "\n" : "", i + 1, q->Q, q->names[i]);
        if (ql) printf("  (labels %s)", search_label_text(lq, sizeof lq, ql, q->C));
        printf("\n  %4s  %4s  %-3s  %9s  %s\n", "rank", "dist", "rel", "row", db->list ? "path  (labels)" :
               db->lab ? "labels" : "");
        for (int k = 0; k < K; k++) {
            const int r = row[(size_t)i * K + k];
            const uint8_t *dl = db->lab ? db->lab + (size_t)r * db->C : NULL;
            printf("  %4d  %4d  %-3s  %9d  ", k + 1, dist[(size_t)i * K + k],
                   rel_known ? (search_relevant(ql, dl, db->C) ? "yes" : "no") : "?", r);
            if (db->list) printf("%s", db->list->names[r]);
            if (dl) printf("%s%s%s", db->list ? "  (" : "", search_label_text(ld, sizeof ld, dl, db->C),
                           db->list ? ")" : "");
            printf("\n");
        }
    }
    fflush(stdout);
}

/* 1 when path ends with suffix (case-insensitive). */
static int search_ends_with(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcasecmp(path + n - k, suffix) == 0;
}

/* The contact sheet: one row a query, the query's image then its K results'. */
static int search_sheet(const char *out, int thumb, const search_queries *q, const search_db *db,
                        const int32_t *row, const int32_t *dist, int K, int64_t max_pixels, char *err,
                        size_t err_len) {
    const int html = search_ends_with(out, ".html") || search_ends_with(out, ".htm");
    const int rows = q->Q, cols = K + 1, rel_known = q->labels && db->lab;
    const size_t cells = (size_t)rows * cols, unit = (size_t)thumb * thumb * 3;
    sheet_cell *cell = calloc(cells, sizeof *cell);
    uint8_t *pix = html ? NULL : malloc(cells * unit);        /* [rows·cols, thumb, thumb, 3] */
    char (*caption)[32] = calloc(cells, sizeof *caption);
    char **text = calloc(cells * 2, sizeof *text);            /* [cells, 2]: src and title, malloc'd */
    int rc = -1, unreadable = 0;
    if (!cell || (!html && !pix) || !caption || !text) {
        snprintf(err, err_len, "%s: out of memory for %zu thumbnails", out, cells);
        goto done;
    }
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            const size_t at = (size_t)i * cols + c;
            const int r = c ? row[(size_t)i * K + c - 1] : -1;
            const char *path = c ? db->list->paths[r] : q->paths[i];
            char lab[4096], title[8192];
            const uint8_t *l = c ? (db->lab ? db->lab + (size_t)r * db->C : NULL)
                                 : (q->labels ? q->labels + (size_t)i * q->C : NULL);
            if (c == 0) {
                snprintf(caption[at], sizeof caption[at], "query %d", i + 1);
                snprintf(title, sizeof title, "query %d: %s  labels %s", i + 1, q->names[i],
                         l ? search_label_text(lab, sizeof lab, l, q->C) : "unknown");
                cell[at].mark = SHEET_QUERY;
            } else {
                const int d = dist[(size_t)i * K + c - 1];
                snprintf(caption[at], sizeof caption[at], "d=%d", d);
                snprintf(title, sizeof title, "rank %d, distance %d, row %d: %s  labels %s", c, d, r,
                         db->list->names[r], l ? search_label_text(lab, sizeof lab, l, db->C) : "unknown");
                cell[at].mark = !rel_known ? SHEET_UNKNOWN
                                : search_relevant(q->labels + (size_t)i * q->C, l, db->C) ? SHEET_RELEVANT
                                                                                         : SHEET_IRRELEVANT;
            }
            cell[at].caption = caption[at];
            if (!(text[2 * at + 1] = search_strdup(title))) goto oom;
            cell[at].title = text[2 * at + 1];
            if (html) {
                if (path) {
                    char *abs = realpath(path, NULL);   /* the page may be opened from anywhere */
                    if (!(text[2 * at] = abs ? abs : search_strdup(path))) goto oom;
                    cell[at].src = text[2 * at];
                }
            } else if (path) {
                char why[512];
                if (image_load(path, thumb, max_pixels, pix + at * unit, why, sizeof why) == 0)
                    cell[at].rgb = pix + at * unit;
                else if (unreadable++ < 5)
                    fprintf(stderr, "dath search: --sheet: %s: %s (drawn as a crossed grey square)\n", path, why);
            }
        }
    rc = html ? sheet_write_html(out, "dath search", cell, rows, cols, thumb, err, err_len)
              : sheet_write_png(out, cell, rows, cols, thumb, err, err_len);
    if (rc == 0) {
        int w, h;
        sheet_size(rows, cols, thumb, &w, &h);
        if (html) fprintf(stderr, "dath search: contact sheet %s: %d rows of 1 + %d images\n", out, rows, K);
        else fprintf(stderr, "dath search: contact sheet %s: %d × %d pixels, %d rows of 1 + %d thumbnails of %d px\n",
                     out, w, h, rows, K, thumb);
    }
    goto done;
oom:
    snprintf(err, err_len, "%s: out of memory", out);
done:
    for (size_t i = 0; text && i < 2 * cells; i++) free(text[i]);
    free(text);
    free(caption);
    free(pix);
    free(cell);
    return rc;
}

int cmd_search(int argc, char **argv) {
    const char *model_path = NULL, *list_path = NULL, *codes = NULL, *labels = NULL, *db_path = NULL;
    const char *db_list_path = NULL, *db_labels = NULL, *root = "", *sheet = NULL;
    opt_list images = {0};
    int top = 10, json = 0, thumb = 96, batch = 64, workers = 0, device = 0, precision = DATH_FP32;
    int conv = DATH_CONV_IMPLICIT;
    float max_mp = 64;
    opt_spec spec[] = {
        {"model", OPT_STR, &model_path, NULL, "model (.safetensors) that encodes query images", 0},
        {"image", OPT_LIST, &images, NULL, "query image(s): --image a.jpg b.jpg ... (with --model)", 0},
        {"list", OPT_STR, &list_path, NULL, "query list (path and labels a line): with --model the images to "
         "encode; with --codes the codes' rows", 0},
        {"codes", OPT_STR, &codes, NULL, "query codes (.npy, uint8 packed bits) instead of images", 0},
        {"labels", OPT_STR, &labels, NULL, "with --codes and no --list: the queries' labels (.npy)", 0},
        {"db", OPT_STR, &db_path, NULL, "database codes (.npy; mapped, not read)", OPT_REQUIRED},
        {"db-list", OPT_STR, &db_list_path, NULL, "the database's list: row i is row i of --db (paths, labels)", 0},
        {"db-labels", OPT_STR, &db_labels, NULL, "without --db-list: the database's labels (.npy; mapped)", 0},
        {"root", OPT_STR, &root, "", "directory the lists' paths are relative to", 0},
        {"top", OPT_INT, &top, "10", "results a query", OPT_POSITIVE},
        {"json", OPT_FLAG, &json, "0", "one JSON object a query (a line each) instead of the table", 0},
        {"sheet", OPT_STR, &sheet, NULL, "write a contact sheet: OUT.png (thumbnails) or OUT.html (needs --db-list)", 0},
        {"thumb", OPT_INT, &thumb, "96", "the sheet's thumbnail side in pixels (16 to 1024)", OPT_POSITIVE},
        {"batch", OPT_INT, &batch, "64", "with --list and --model: images per forward pass", OPT_POSITIVE},
        {"workers", OPT_INT, &workers, "0", "with --list and --model: decoding threads (0: one per core)", OPT_NONNEG},
        {"max-megapixels", OPT_FLOAT, &max_mp, "64", "refuse images of more pixels (read from the header)", OPT_POSITIVE},
        {"device", OPT_ENUM, &device, "auto", "where query images are encoded (the ranking runs on the CPU)", 0,
         backend_devices},
        {"precision", OPT_ENUM, &precision, "fp32", "GEMM precision of the encoding (tf32, bf16: CUDA, sm_80+)", 0,
         backend_precisions},
        {"conv", OPT_ENUM, &conv, "implicit", "CUDA convolutions: implicit GEMMs or im2col + cuBLAS", 0, backend_conv_algos},
        {0}};
    static const char *synopsis =
        "--model M --image A.jpg [B.jpg ...] --db D.npy --db-list D.txt --root DIR [--top K] [options]\n"
        "       dath search --model M --list Q.txt --db D.npy --db-list D.txt --root DIR [--sheet S.png]\n"
        "       dath search --codes Q.npy [--list Q.txt | --labels QL.npy] --db D.npy [--db-list D.txt | --db-labels DL.npy]";
    char err[8192];
    int rc = opts_parse("dath search", synopsis, spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath search: %s\n", err);
        opt_list_free(&images);
        return rc < 0 ? 2 : 0;
    }
    const int n_sources = (images.n > 0) + (codes != NULL) + (list_path && !codes);
    const char *usage = NULL;
    if (n_sources != 1) usage = "give the queries one way: --image (with --model), --list (with --model), or --codes";
    else if (!codes && !model_path) usage = "query images need --model to encode them";
    else if (codes && model_path) usage = "--codes are already encoded: leave out --model";
    else if (labels && (!codes || list_path)) usage = "--labels goes with --codes when there is no --list";
    else if (db_list_path && db_labels) usage = "give the database's labels once: --db-list or --db-labels";
    else if (sheet && !db_list_path) usage = "--sheet needs --db-list (the database's images)";
    else if (thumb < 16 || thumb > 1024) usage = "--thumb: 16 to 1024 pixels";
    if (usage) {
        fprintf(stderr, "dath search: %s (see dath search --help)\n", usage);
        opt_list_free(&images);
        return 2;
    }
    const int64_t max_pixels = (int64_t)((double)max_mp * 1e6);
    search_db db = {0};
    search_queries q = {0};
    dath_list *dbl = NULL, *ql = NULL;
    dath_model *m = NULL;
    const dath_backend *be = NULL;
    dath_ctx ctx;
    int32_t *row = NULL, *dist = NULL;
    rc = 1;

    /* the database: mapped codes, then its list or labels */
    double t0 = dath_now();
    if (npy_map_u8(db_path, &db.codes, err, sizeof err)) goto fail;
    if (db.codes.rows < 1 || db.codes.rows > INT_MAX - 1 || db.codes.cols < 1 || db.codes.cols > 4095) {
        snprintf(err, sizeof err, "--db %s: %" PRId64 " rows of %" PRId64 " bytes (need at least one row of 1 to "
                 "4095 bytes)", db_path, db.codes.rows, db.codes.cols);
        goto fail;
    }
    db.D = (int)db.codes.rows;
    db.B = (int)db.codes.cols;
    if (db_list_path) {
        if (!(dbl = list_read(db_list_path, root, err, sizeof err))) goto fail;
        if (dbl->n != db.D) {
            snprintf(err, sizeof err, "--db %s has %d rows but --db-list %s has %d; row i of the list must be row "
                     "i of the codes (dath encode lists the images it left out in %s.skipped.txt: remove those "
                     "lines from the list)", db_path, db.D, db_list_path, dbl->n, db_path);
            goto fail;
        }
        db.list = dbl;
        db.lab = dbl->labels;
        db.C = dbl->C;
    } else if (db_labels) {
        if (npy_map_u8(db_labels, &db.labels, err, sizeof err)) goto fail;
        if (db.labels.rows != db.D || db.labels.cols < 1) {
            snprintf(err, sizeof err, "--db-labels %s has %" PRId64 " rows of %" PRId64 " classes but --db %s has "
                     "%d rows", db_labels, db.labels.rows, db.labels.cols, db_path, db.D);
            goto fail;
        }
        db.lab = db.labels.data;
        db.C = (int)db.labels.cols;
    }
    fprintf(stderr, "dath search: database %s: %d codes of %d bytes, mapped (%.1f MB)%s%s in %.1f ms\n", db_path, db.D,
            db.B, (double)db.D * db.B / 1e6, db_list_path ? ", list " : "", db_list_path ? db_list_path : "",
            (dath_now() - t0) * 1e3);

    /* the queries */
    if (list_path && !(ql = list_read(list_path, root, err, sizeof err))) goto fail;
    if (codes) {
        if (search_read_codes(&q, codes, labels, ql, err, sizeof err)) goto fail;
    } else {
        if (!(m = model_load(model_path, err, sizeof err))) goto fail;
        if (!(be = backend_choose(backend_devices[device], err, sizeof err))) goto fail;
        int eb = images.n ? (images.n < SEARCH_IMAGE_BATCH ? images.n : SEARCH_IMAGE_BATCH) : batch;
        if (be->ctx_init(&ctx, encoder_work_bytes(m, eb), precision, err, sizeof err)) {
            be = NULL;
            goto fail;
        }
        ctx.conv_algo = conv;
        if (images.n) {
            if (search_encode_images(&q, be, &ctx, m, &images, max_pixels, err, sizeof err)) goto fail;
        } else {
            fprintf(stderr, "dath search: encoding %s (%d images) with %s, %d bits, on %s\n", list_path, ql->n,
                    variant_name(m->variant), m->K, be->device);
            if (search_encode_list(&q, be, &ctx, m, ql, batch, workers, max_pixels, err, sizeof err)) goto fail;
        }
        if (images.n)
            fprintf(stderr, "dath search: %d query image%s: decoded in %.1f ms, encoded in %.1f ms (%.1f ms an "
                    "image)\n", q.Q, q.Q == 1 ? "" : "s", q.decode_s * 1e3, q.encode_s * 1e3, q.encode_s * 1e3 / q.Q);
        else
            fprintf(stderr, "dath search: %d query images decoded and encoded in %.1f ms\n", q.Q, q.encode_s * 1e3);
    }
    if (q.B != db.B) {
        snprintf(err, sizeof err, "the queries' codes have %d bytes (%d bits)%s%s but --db %s has %d (%d bits); "
                 "both need codes of the same width", q.B, 8 * q.B, model_path ? " from " : "",
                 model_path ? model_path : "", db_path, db.B, 8 * db.B);
        goto fail;
    }
    if (q.labels && db.lab && q.C != db.C) {
        snprintf(err, sizeof err, "the queries have %d classes but the database %d; relevance needs the same "
                 "classes", q.C, db.C);
        goto fail;
    }

    /* the ranking */
    const int K = top < db.D ? top : db.D;
    row = malloc((size_t)q.Q * K * sizeof *row);
    dist = malloc((size_t)q.Q * K * sizeof *dist);
    if (!row || !dist) {
        snprintf(err, sizeof err, "out of memory for %d × %d results", q.Q, K);
        goto fail;
    }
    double t1 = dath_now();
    hamming_topk_cpu(row, dist, q.codes, db.codes.data, q.Q, db.D, db.B, K);
    double rank_s = dath_now() - t1;
    fprintf(stderr, "dath search: ranked %d quer%s against %d codes in %.2f ms (%.2f ms a query, CPU)\n", q.Q,
            q.Q == 1 ? "y" : "ies", db.D, rank_s * 1e3, rank_s * 1e3 / q.Q);
    search_print(&q, &db, row, dist, K, json, rank_s);
    if (sheet && search_sheet(sheet, thumb, &q, &db, row, dist, K, max_pixels, err, sizeof err)) goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "dath search: %s\n", err);
out:
    free(row);
    free(dist);
    search_queries_free(&q);
    if (be) be->ctx_free(&ctx);
    model_free(m);
    if (ql) list_free(ql);
    if (dbl) list_free(dbl);
    npy_unmap(&db.codes);
    npy_unmap(&db.labels);
    opt_list_free(&images);
    return rc;
}
