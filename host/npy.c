/* host/npy.c — 2-D uint8 .npy reading and writing (see npy.h).
 *
 * The format: the magic "\x93NUMPY", a major and minor version byte, the header
 * length (2 bytes little-endian in 1.0, 4 bytes in 2.0/3.0), then a Python dict
 * literal {'descr': '|u1', 'fortran_order': False, 'shape': (R, C), } padded with
 * spaces and ended by '\n' so that the data starts at a multiple of 64 bytes. */
#include "npy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../loader/atomic.h"

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Finds the value that follows 'key': in the header dict; NULL when absent. */
static const char *npy_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(hdr, pat);
    }
    if (!p) return NULL;
    p += strlen(pat);
    while (isspace((unsigned char)*p)) p++;
    if (*p != ':') return NULL;
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* Parses the header dict: the dtype text into descr (16 bytes), the shape into rows/cols;
 * checks the order and that there are two dimensions. The dtype is the caller's to check. */
static int npy_parse_dict(const char *path, const char *hdr, char *descr, int64_t *rows,
                          int64_t *cols, char *err, size_t err_len) {
    const char *d = npy_value(hdr, "descr"), *f = npy_value(hdr, "fortran_order"),
               *s = npy_value(hdr, "shape");
    if (!d || !f || !s) {
        snprintf(err, err_len, "%s: not a .npy header (no descr, fortran_order or shape): %.80s",
                 path, hdr);
        return -1;
    }
    memset(descr, 0, 16);
    if (*d == '\'' || *d == '"') sscanf(d + 1, "%15[^'\"]", descr);
    if (strncmp(f, "False", 5) != 0) {
        snprintf(err, err_len, "%s: Fortran order is not supported; save a C-ordered array "
                 "(numpy.ascontiguousarray)", path);
        return -1;
    }
    if (*s != '(') {
        snprintf(err, err_len, "%s: cannot read the shape in the header", path);
        return -1;
    }
    int64_t dims[8];
    int nd = 0;
    const char *p = s + 1;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || nd == 8) {
            snprintf(err, err_len, "%s: cannot read the shape in the header", path);
            return -1;
        }
        dims[nd++] = v;
        p = end;
        while (*p == 'L') p++;
    }
    if (nd != 2) {
        snprintf(err, err_len, "%s: array has %d dimension%s, expected 2 (rows, bytes per row)",
                 path, nd, nd == 1 ? "" : "s");
        return -1;
    }
    *rows = dims[0];
    *cols = dims[1];
    return 0;
}

/* Parses the header dict into rows/cols; checks dtype (uint8) and order. */
static int npy_parse_header(const char *path, const char *hdr, int64_t *rows, int64_t *cols,
                            char *err, size_t err_len) {
    char descr[16];
    if (npy_parse_dict(path, hdr, descr, rows, cols, err, err_len)) return -1;
    if (strcmp(descr, "|u1") && strcmp(descr, "<u1") && strcmp(descr, ">u1") &&
        strcmp(descr, "|b1")) {
        snprintf(err, err_len, "%s: dtype '%s' is not uint8 ('|u1'); save with "
                 "numpy.save(path, array.astype(numpy.uint8))", path, descr);
        return -1;
    }
    return 0;
}

int npy_read_u8(const char *path, uint8_t **data, int64_t *rows, int64_t *cols, char *err,
                size_t err_len) {
    *data = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t pre[12];
    char *hdr = NULL;
    int rc = -1;
    size_t got = fread(pre, 1, 10, fp);
    if (got < 10 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        snprintf(err, err_len, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    int major = pre[6];
    size_t hlen;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            snprintf(err, err_len, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        snprintf(err, err_len, "%s: .npy format version %d.%d is not supported", path, major, pre[7]);
        goto done;
    }
    if (hlen > (1u << 20)) {
        snprintf(err, err_len, "%s: .npy header of %zu bytes is implausible", path, hlen);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, err_len, "%s: out of memory for the .npy header", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        snprintf(err, err_len, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (npy_parse_header(path, hdr, rows, cols, err, err_len)) goto done;
    if (*cols > 0 && *rows > (int64_t)(SIZE_MAX / 2) / *cols) {
        snprintf(err, err_len, "%s: shape (%" PRId64 ", %" PRId64 ") is too large", path, *rows, *cols);
        goto done;
    }
    size_t n = (size_t)*rows * (size_t)*cols;
    /* the file must hold exactly that much data: checked before anything is allocated */
    struct stat st;
    long at = ftell(fp);
    if (at < 0 || fstat(fileno(fp), &st) != 0) {
        snprintf(err, err_len, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    uint64_t held = (uint64_t)st.st_size > (uint64_t)at ? (uint64_t)st.st_size - (uint64_t)at : 0;
    if (held < n) {
        snprintf(err, err_len, "%s: truncated: header says (%" PRId64 ", %" PRId64 ") = %zu bytes "
                 "of data, the file holds %" PRIu64, path, *rows, *cols, n, held);
        goto done;
    }
    if (held > n) {
        snprintf(err, err_len, "%s: the file holds more data than its shape (%" PRId64 ", %" PRId64
                 ") says", path, *rows, *cols);
        goto done;
    }
    *data = malloc(n ? n : 1);
    if (!*data) {
        snprintf(err, err_len, "%s: out of memory for %zu bytes", path, n);
        goto done;
    }
    got = fread(*data, 1, n, fp);
    if (got != n) {
        snprintf(err, err_len, "%s: truncated: header says (%" PRId64 ", %" PRId64 ") = %zu bytes "
                 "of data, the file holds %zu", path, *rows, *cols, n, got);
        goto done;
    }
    if (fgetc(fp) != EOF) {
        snprintf(err, err_len, "%s: the file holds more data than its shape (%" PRId64 ", %" PRId64
                 ") says", path, *rows, *cols);
        goto done;
    }
    rc = 0;
done:
    if (rc) { free(*data); *data = NULL; }
    free(hdr);
    fclose(fp);
    return rc;
}

int npy_add_u8(atomic_group *g, const char *path, const uint8_t *data, int64_t rows, int64_t cols, char *err,
               size_t err_len) {
    if (rows < 0 || cols < 0) {
        snprintf(err, err_len, "%s: negative shape (%" PRId64 ", %" PRId64 ")", path, rows, cols);
        return -1;
    }
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%"
                      PRId64 ", %" PRId64 "), }", rows, cols);
    /* magic 6 + version 2 + length 2 + dict + padding + '\n', a multiple of 64 */
    size_t total = ((size_t)(10 + dl + 1) + 63) / 64 * 64;
    size_t hlen = total - 10;
    char head[192];
    memcpy(head, NPY_MAGIC, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (char)(hlen & 0xff);
    head[9] = (char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)dl);
    memset(head + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    head[total - 1] = '\n';
    const void *parts[2] = {head, data};
    size_t lens[2] = {total, (size_t)rows * (size_t)cols};
    return atomic_group_add(g, path, parts, lens, lens[1] ? 2 : 1, err, err_len);
}

int npy_write_u8(const char *path, const uint8_t *data, int64_t rows, int64_t cols, char *err,
                 size_t err_len) {
    atomic_group *g = atomic_group_new();
    if (!g) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = npy_add_u8(g, path, data, rows, cols, err, err_len) || atomic_group_commit(g, err, err_len) ? -1 : 0;
    atomic_group_free(g);
    return rc;
}

/* ---- float32 2-D files (features) -----------------------------------------------------
 * Kept apart from the uint8 reader above: they share the header dict parser
 * (npy_parse_dict); the preamble is read by npy_open_2d, which also checks the file's
 * size against rows × cols × itemsize before the caller allocates anything. */

/* 1 when this machine stores numbers little-endian. */
static int npy_host_little(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* An opened .npy file positioned at its first data byte. */
typedef struct npy_in {
    FILE *fp;
    char descr[16];     /* the dtype as the header writes it, e.g. "<f4" */
    int64_t rows, cols;
    size_t bytes;       /* rows × cols × itemsize, equal to what the file holds after the header */
} npy_in;

/* Opens path, reads the magic, version, header length and header dict, and checks that
 * the data after the header is exactly rows × cols × item bytes (overflow-safe; the
 * dtype's item size is given by item(descr), 0 for a dtype the caller refuses, in which
 * case *bad_dtype is set and err explains). Nothing is allocated for the data. Returns 0
 * with in->fp open (the caller fcloses it), or -1 with a message and the file closed. */
static int npy_open_2d(npy_in *in, const char *path, size_t (*item)(const char *descr),
                       int *bad_dtype, char *err, size_t err_len) {
    memset(in, 0, sizeof *in);
    *bad_dtype = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t pre[12];
    char *hdr = NULL;
    size_t hlen;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        snprintf(err, err_len, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto fail;
    }
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            snprintf(err, err_len, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        snprintf(err, err_len, "%s: .npy format version %d.%d is not supported", path, pre[6], pre[7]);
        goto fail;
    }
    if (hlen > (1u << 20)) {
        snprintf(err, err_len, "%s: .npy header of %zu bytes is implausible", path, hlen);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, err_len, "%s: out of memory for the .npy header", path);
        goto fail;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        snprintf(err, err_len, "%s: truncated .npy header", path);
        goto fail;
    }
    hdr[hlen] = 0;
    if (npy_parse_dict(path, hdr, in->descr, &in->rows, &in->cols, err, err_len)) goto fail;
    size_t is = item(in->descr);
    if (!is) {
        *bad_dtype = 1;
        goto fail;
    }
    if (in->cols > 0 && in->rows > (int64_t)((uint64_t)INT64_MAX / is) / in->cols) {
        snprintf(err, err_len, "%s: shape (%" PRId64 ", %" PRId64 ") is too large", path, in->rows, in->cols);
        goto fail;
    }
    uint64_t need = (uint64_t)in->rows * (uint64_t)in->cols * is;
    if (need > SIZE_MAX / 2) {
        snprintf(err, err_len, "%s: shape (%" PRId64 ", %" PRId64 ") is too large for this machine", path,
                 in->rows, in->cols);
        goto fail;
    }
    off_t at = ftello(fp), end;
    if (at < 0 || fseeko(fp, 0, SEEK_END) != 0 || (end = ftello(fp)) < 0 || fseeko(fp, at, SEEK_SET) != 0) {
        snprintf(err, err_len, "%s: cannot find the file's size: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t held = (uint64_t)(end - at);
    if (held != need) {
        snprintf(err, err_len, "%s: %s: header says (%" PRId64 ", %" PRId64 ") of '%s' = %" PRIu64
                 " bytes of data, the file holds %" PRIu64, path, held < need ? "truncated" : "too long",
                 in->rows, in->cols, in->descr, need, held);
        goto fail;
    }
    free(hdr);
    in->fp = fp;
    in->bytes = (size_t)need;
    return 0;
fail:
    free(hdr);
    fclose(fp);
    return -1;
}

/* Item size of the float dtypes npy_read_f32 reads; 0 for any other. */
static size_t npy_float_item(const char *descr) {
    if (!strcmp(descr, "<f4") || !strcmp(descr, ">f4")) return 4;
    if (!strcmp(descr, "<f8") || !strcmp(descr, ">f8")) return 8;
    return 0;
}

static void npy_swap(uint8_t *p, size_t n, size_t item) {
    for (size_t i = 0; i < n; i++, p += item)
        for (size_t a = 0, b = item - 1; a < b; a++, b--) {
            uint8_t t = p[a]; p[a] = p[b]; p[b] = t;
        }
}

int npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols, char *err,
                 size_t err_len) {
    *data = NULL;
    npy_in in;
    int bad_dtype;
    if (npy_open_2d(&in, path, npy_float_item, &bad_dtype, err, err_len)) {
        if (bad_dtype)
            snprintf(err, err_len, "%s: dtype '%s' is not float32 ('<f4') or float64 ('<f8'); save with "
                     "numpy.save(path, array.astype(numpy.float32))", path, in.descr);
        return -1;
    }
    const size_t item = npy_float_item(in.descr);
    const size_t n = (size_t)in.rows * (size_t)in.cols;   /* in.bytes = n × item fits */
    const int swap = (in.descr[0] == '<') != npy_host_little();
    int rc = -1;
    float *out = malloc(n ? n * sizeof(float) : 1);
    if (!out) {
        snprintf(err, err_len, "%s: out of memory for %zu floats", path, n);
        goto done;
    }
    if (item == 4) {
        if (fread(out, 4, n, in.fp) != n) {
            snprintf(err, err_len, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (swap) npy_swap((uint8_t *)out, n, 4);
    } else {
        /* float64: converted a chunk at a time, so no second full-size buffer */
        enum { CHUNK = 1 << 16 };
        double *buf = malloc(CHUNK * sizeof *buf);   /* [CHUNK] */
        if (!buf) {
            snprintf(err, err_len, "%s: out of memory", path);
            goto done;
        }
        for (size_t at = 0; at < n; at += CHUNK) {
            size_t c = n - at < CHUNK ? n - at : CHUNK;
            if (fread(buf, 8, c, in.fp) != c) {
                snprintf(err, err_len, "%s: read failed: %s", path, strerror(errno));
                free(buf);
                goto done;
            }
            if (swap) npy_swap((uint8_t *)buf, c, 8);
            for (size_t i = 0; i < c; i++) {
                double v = buf[i];
                if (v > 3.4028234663852886e38 || v < -3.4028234663852886e38) {   /* FLT_MAX */
                    size_t k = at + i;
                    snprintf(err, err_len, "%s: value %g at row %zu, column %zu is outside float32's range",
                             path, v, k / (size_t)in.cols, k % (size_t)in.cols);
                    free(buf);
                    goto done;
                }
                out[at + i] = (float)v;   /* NaN stays NaN; the caller decides about it */
            }
        }
        free(buf);
    }
    *rows = in.rows;
    *cols = in.cols;
    *data = out;
    out = NULL;
    rc = 0;
done:
    free(out);
    fclose(in.fp);
    return rc;
}

int npy_add_f32(atomic_group *g, const char *path, const float *data, int64_t rows, int64_t cols, char *err,
                size_t err_len) {
    if (rows < 0 || cols < 0 || (cols > 0 && rows > (int64_t)(SIZE_MAX / 8) / cols)) {
        snprintf(err, err_len, "%s: bad shape (%" PRId64 ", %" PRId64 ")", path, rows, cols);
        return -1;
    }
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%"
                      PRId64 ", %" PRId64 "), }", npy_host_little() ? "<f4" : ">f4", rows, cols);
    /* magic 6 + version 2 + length 2 + dict + padding + '\n', a multiple of 64 */
    size_t total = ((size_t)(10 + dl + 1) + 63) / 64 * 64;
    size_t hlen = total - 10;
    char head[192];
    memcpy(head, NPY_MAGIC, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (char)(hlen & 0xff);
    head[9] = (char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)dl);
    memset(head + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    head[total - 1] = '\n';
    const void *parts[2] = {head, data};
    size_t lens[2] = {total, (size_t)rows * (size_t)cols * sizeof(float)};
    return atomic_group_add(g, path, parts, lens, lens[1] ? 2 : 1, err, err_len);
}

int npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, char *err,
                  size_t err_len) {
    atomic_group *g = atomic_group_new();
    if (!g) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = npy_add_f32(g, path, data, rows, cols, err, err_len) || atomic_group_commit(g, err, err_len) ? -1 : 0;
    atomic_group_free(g);
    return rc;
}

/* ---- uint8 files mapped (a search's database) ------------------------------------------ */

/* Item size of the dtypes npy_read_u8 reads (1); 0 for any other. */
static size_t npy_u8_item(const char *descr) {
    return !strcmp(descr, "|u1") || !strcmp(descr, "<u1") || !strcmp(descr, ">u1") || !strcmp(descr, "|b1");
}

int npy_map_u8(const char *path, npy_map *m, char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    npy_in in;
    int bad_dtype;
    if (npy_open_2d(&in, path, npy_u8_item, &bad_dtype, err, err_len)) {
        if (bad_dtype)
            snprintf(err, err_len, "%s: dtype '%s' is not uint8 ('|u1'); save with "
                     "numpy.save(path, array.astype(numpy.uint8))", path, in.descr);
        return -1;
    }
    off_t at = ftello(in.fp);
    int rc = -1;
    if (at < 0) {
        snprintf(err, err_len, "%s: cannot tell the header's end: %s", path, strerror(errno));
        goto done;
    }
    m->rows = in.rows;
    m->cols = in.cols;
    if (in.bytes) {
        size_t len = (size_t)at + in.bytes;
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fileno(in.fp), 0);
        if (p == MAP_FAILED) {
            snprintf(err, err_len, "%s: cannot map %zu bytes: %s", path, len, strerror(errno));
            goto done;
        }
        m->base = p;
        m->len = len;
        m->data = (const uint8_t *)p + at;
    }
    rc = 0;
done:
    fclose(in.fp);   /* the mapping stays valid without the descriptor */
    if (rc) memset(m, 0, sizeof *m);
    return rc;
}

void npy_unmap(npy_map *m) {
    if (m && m->base) munmap(m->base, m->len);
    if (m) memset(m, 0, sizeof *m);
}
