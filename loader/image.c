/* loader/image.c — decoding and the cached unit (see image.h).
 *
 * stb_image (JPEG, PNG, BMP) is compiled here and only here, with external linkage
 * (demo.c uses its zlib inflater); stb_image_resize is static. Its internal assertions
 * are compiled out so that no input can abort the process: on malformed input stb
 * returns NULL, and we classify the failure ourselves (stbi_failure_reason is never
 * called). The reasons a file is refused:
 *   "missing file", "permission denied", "is a directory", "empty file",
 *   "truncated JPEG (no end-of-image marker)", "truncated PNG (no IEND chunk)",
 *   "unknown format (not JPEG, PNG or BMP)", "image too large (W x H)",
 *   "cannot decode (corrupt JPEG)" and the like.
 * Truncation: stb_image 2.27 (Debian's libstb-dev) itself refuses a JPEG that ends
 * before its EOI marker ("expected marker"), but older versions decoded the part that
 * was there. So the rule does not depend on the stb version, a JPEG is walked marker
 * by marker (segments skipped by their length, entropy-coded data scanned for the next
 * marker) and must reach EOI; a PNG must reach its IEND chunk. Bytes after EOI/IEND
 * are ignored.
 *
 * The transform (IMAGE_TRANSFORM_ID), as torchvision's Resize(R) + CenterCrop(R):
 *   - colour: stb's conversion to 3 channels (grey copied to R, G, B; alpha dropped,
 *     not composited; 16-bit PNGs reduced to 8 bits);
 *   - size: the shorter side becomes R, the longer ⌊R·long/short⌋ (torchvision's rule);
 *   - filter: stb_image_resize's triangle filter on the stored values (no sRGB
 *     linearisation), edges clamped: bilinear when enlarging, and when shrinking a
 *     triangle widened by the scale factor, i.e. antialiased bilinear as PIL's
 *     BILINEAR resize (torchvision's default) computes it;
 *   - crop: the centre R×R window, offset round((size − R)/2) with Python's round
 *     (halves to even), as torchvision's CenterCrop; only that window is computed.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STBI_ASSERT(x) ((void)0)
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STBIR_ASSERT(x) ((void)0)
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#pragma GCC diagnostic pop

enum {
    IMAGE_MAX_FILE = 1 << 30,            /* bytes: a larger file is refused */
};
static const double IMAGE_MAX_PIXELS = 134217728.0;   /* 2^27: larger images are refused */

static int image_fail(char *why, size_t why_len, const char *what) {
    snprintf(why, why_len, "%s", what);
    return -1;
}

/* Reads a whole file. Returns the buffer (caller frees) or NULL with a reason. */
static unsigned char *image_read_file(const char *path, size_t *len, char *why, size_t why_len) {
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC); while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) image_fail(why, why_len, "missing file");
        else if (e == EACCES || e == EPERM) image_fail(why, why_len, "permission denied");
        else if (e == EISDIR) image_fail(why, why_len, "is a directory");
        else snprintf(why, why_len, "cannot open (errno %d)", e);
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        image_fail(why, why_len, "cannot stat");
    } else if (S_ISDIR(st.st_mode)) {
        image_fail(why, why_len, "is a directory");
    } else if (!S_ISREG(st.st_mode)) {
        image_fail(why, why_len, "not a regular file");
    } else if (st.st_size == 0) {
        image_fail(why, why_len, "empty file");
    } else if (st.st_size > IMAGE_MAX_FILE) {
        image_fail(why, why_len, "file too large (over 1 GiB)");
    } else if (!(buf = malloc((size_t)st.st_size))) {
        image_fail(why, why_len, "out of memory");
    } else {
        size_t n = 0, want = (size_t)st.st_size;
        while (n < want) {
            ssize_t got = read(fd, buf + n, want - n);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            n += (size_t)got;
        }
        if (n != want) {
            snprintf(why, why_len, "read error (%zu of %zu bytes)", n, want);
            free(buf);
            buf = NULL;
        }
        *len = n;
    }
    close(fd);
    return buf;
}

/* Walks a JPEG's markers. Returns 0 when it reaches EOI, 1 when the data ends first,
 * 2 when the structure is broken (left to the decoder to refuse). */
static int image_jpeg_truncated(const unsigned char *b, size_t len) {
    size_t pos = 2;   /* after SOI */
    for (;;) {
        if (pos >= len) return 1;
        if (b[pos] != 0xFF) return 2;
        while (pos < len && b[pos] == 0xFF) pos++;   /* fill bytes */
        if (pos >= len) return 1;
        unsigned m = b[pos++];
        if (m == 0xD9) return 0;                                  /* EOI */
        if (m == 0x00) return 2;
        if ((m >= 0xD0 && m <= 0xD7) || m == 0xD8 || m == 0x01) continue;   /* no length */
        if (pos + 2 > len) return 1;
        size_t L = ((size_t)b[pos] << 8) | b[pos + 1];
        if (L < 2) return 2;
        pos += L;
        if (pos > len) return 1;
        if (m == 0xDA) {   /* SOS: entropy-coded data up to the next real marker */
            for (;;) {
                if (pos >= len) return 1;
                if (b[pos] != 0xFF) { pos++; continue; }
                if (pos + 1 >= len) return 1;
                unsigned n = b[pos + 1];
                if (n == 0x00 || (n >= 0xD0 && n <= 0xD7)) { pos += 2; continue; }
                break;   /* a marker (or fill bytes before one) */
            }
        }
    }
}

/* Walks a PNG's chunks: 0 when it reaches IEND, 1 when the data ends first. */
static int image_png_truncated(const unsigned char *b, size_t len) {
    size_t pos = 8;
    for (;;) {
        if (pos + 8 > len) return 1;
        size_t L = ((size_t)b[pos] << 24) | ((size_t)b[pos + 1] << 16) |
                   ((size_t)b[pos + 2] << 8) | b[pos + 3];
        int iend = memcmp(b + pos + 4, "IEND", 4) == 0;
        if (L > len || pos + 12 + L > len) return 1;   /* data and CRC must be there */
        if (iend) return 0;
        pos += 12 + L;
    }
}

/* Python's round(d / 2) for d ≥ 0: halves go to the even neighbour. */
static int image_centre_offset(int d) {
    int k = d / 2;
    if (d % 2 == 0) return k;
    return (k % 2 == 0) ? k : k + 1;
}

int image_load(const char *path, int R, uint8_t *out, char *why, size_t why_len) {
    if (R < 1) return image_fail(why, why_len, "bad output size");
    size_t len = 0;
    unsigned char *file = image_read_file(path, &len, why, why_len);
    if (!file) return -1;

    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    const char *fmt;
    int rc = -1;
    unsigned char *pix = NULL;
    if (len >= 3 && file[0] == 0xFF && file[1] == 0xD8 && file[2] == 0xFF) {
        fmt = "JPEG";
        if (image_jpeg_truncated(file, len) == 1) {
            image_fail(why, why_len, "truncated JPEG (no end-of-image marker)");
            goto done;
        }
    } else if (len >= 8 && memcmp(file, png_sig, 8) == 0) {
        fmt = "PNG";
        if (image_png_truncated(file, len)) {
            image_fail(why, why_len, "truncated PNG (no IEND chunk)");
            goto done;
        }
    } else if (len >= 2 && file[0] == 'B' && file[1] == 'M') {
        fmt = "BMP";
    } else {
        image_fail(why, why_len, "unknown format (not JPEG, PNG or BMP)");
        goto done;
    }
    if (len > (size_t)0x7FFFFFFF) {
        image_fail(why, why_len, "file too large");
        goto done;
    }
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(file, (int)len, &w, &h, &c)) {
        snprintf(why, why_len, "cannot decode (corrupt %s header)", fmt);
        goto done;
    }
    if (w < 1 || h < 1 || (double)w * (double)h > IMAGE_MAX_PIXELS) {
        snprintf(why, why_len, "image too large or empty (%d x %d)", w, h);
        goto done;
    }
    pix = stbi_load_from_memory(file, (int)len, &w, &h, &c, 3);   /* [h, w, 3] */
    if (!pix) {
        snprintf(why, why_len, "cannot decode (corrupt %s)", fmt);
        goto done;
    }
    /* shorter side to R, torchvision's size rule, then the centre R×R window */
    int rw, rh;
    if (w <= h) { rw = R; rh = (int)((double)R * h / w); }
    else        { rh = R; rw = (int)((double)R * w / h); }
    if (rw < R) rw = R;
    if (rh < R) rh = R;
    int ox = image_centre_offset(rw - R), oy = image_centre_offset(rh - R);
    if (!stbir_resize_subpixel(pix, w, h, 3 * w, out, R, R, 3 * R, STBIR_TYPE_UINT8, 3,
                               STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                               STBIR_FILTER_TRIANGLE, STBIR_FILTER_TRIANGLE,
                               STBIR_COLORSPACE_LINEAR, NULL, (float)rw / (float)w,
                               (float)rh / (float)h, (float)ox, (float)oy)) {
        image_fail(why, why_len, "out of memory while resizing");
        goto done;
    }
    rc = 0;
done:
    stbi_image_free(pix);
    free(file);
    return rc;
}
