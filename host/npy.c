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
#include <sys/stat.h>

#include "atomic.h"

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

/* Parses the header dict into rows/cols; checks dtype and order. */
static int npy_parse_header(const char *path, const char *hdr, int64_t *rows, int64_t *cols,
                            char *err, size_t err_len) {
    const char *d = npy_value(hdr, "descr"), *f = npy_value(hdr, "fortran_order"),
               *s = npy_value(hdr, "shape");
    if (!d || !f || !s) {
        snprintf(err, err_len, "%s: not a .npy header (no descr, fortran_order or shape): %.80s",
                 path, hdr);
        return -1;
    }
    char descr[16] = {0};
    if (*d == '\'' || *d == '"') sscanf(d + 1, "%15[^'\"]", descr);
    if (strcmp(descr, "|u1") && strcmp(descr, "<u1") && strcmp(descr, ">u1") &&
        strcmp(descr, "|b1")) {
        snprintf(err, err_len, "%s: dtype '%s' is not uint8 ('|u1'); save with "
                 "numpy.save(path, array.astype(numpy.uint8))", path, descr);
        return -1;
    }
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
