/* loader/image.c — decoding and the cached unit (see image.h).
 *
 * JPEG goes through libjpeg-turbo's libjpeg API: a decoder state on the stack, an error
 * manager that longjmps back here with libjpeg's own message (never exit()), warnings
 * (recoverable corrupt data, as PIL also accepts) ignored, a progress monitor that stops
 * progressive files with more than IMAGE_MAX_JPEG_SCANS scans, and a memory cap for its
 * whole-image coefficient buffers. stb_image (PNG, BMP) is compiled here and only here,
 * with external linkage (demo.c uses its zlib inflater); stb_image_resize is static.
 * stb's internal assertions are compiled out so that no input can abort the process:
 * on malformed input stb returns NULL and we classify the failure ourselves
 * (stbi_failure_reason is never called). stb's JPEG decoder is not compiled at all:
 * Debian's snapshot (stb_image 2.27) writes out of bounds on a Huffman table of more
 * than 256 codes (upstream issues 1289 and 1291).
 *
 * The reasons a file is refused:
 *   "missing file", "permission denied", "is a directory", "symbolic link loop",
 *   "empty file", "truncated JPEG (no end-of-image marker)", "truncated PNG (no IEND
 *   chunk)", "unknown format (not JPEG, PNG or BMP)", "image too large: W x H = N MP,
 *   over the M MP limit", "aspect ratio W x H is over 64:1", "cannot decode (corrupt
 *   JPEG: <libjpeg's message>)", "cannot decode (corrupt PNG)" and the like.
 * Truncation: a JPEG is walked marker by marker (segments skipped by their length,
 * entropy-coded data scanned for the next marker) and must reach EOI; a PNG must reach
 * its IEND chunk. (libjpeg itself only warns on a cut file and fills the rest in grey.)
 * Bytes after EOI/IEND are ignored.
 *
 * The transform (image_transform_id), as torchvision's Resize(R) + CenterCrop(R):
 *   - colour: 3 channels (grey copied to R, G, B; alpha dropped, not composited; 16-bit
 *     PNGs reduced to 8 bits; CMYK as Adobe writes it, inverted, R = C·K/255 etc.,
 *     YCCK converted to CMYK by libjpeg first);
 *   - JPEG DCT scaling: the largest d in {1, 2, 4, 8} with shorter side ≥ d·R; libjpeg
 *     then decodes at ⌈w/d⌉ × ⌈h/d⌉ straight from the DCT coefficients (less work, and
 *     a box-like prefilter before the triangle filter below);
 *   - size: the shorter side becomes R, the longer ⌊R·long/short⌋ (torchvision's rule),
 *     computed on the original size whatever d is (the decoded pixel i stands for the
 *     original pixels [d·i, d·i + d), so the geometry does not change with d);
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
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#define STBI_ASSERT(x) ((void)0)
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

#define IMAGE_STR2(x) #x
#define IMAGE_STR(x) IMAGE_STR2(x)

const char *image_transform_id(void) {
    return "jpeg: libjpeg-turbo " IMAGE_STR(LIBJPEG_TURBO_VERSION) " islow, fancy upsampling, DCT scaling 1/d "
           "for short >= d*R; png/bmp: stb_image 2.27; rgb, cmyk inverted; stbir 0.97 triangle linear clamp; "
           "short side R, floor long; centre crop round-half-even; v2";
}

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
        else if (e == ELOOP) image_fail(why, why_len, "symbolic link loop (or too many links)");
        else if (e == ENAMETOOLONG) image_fail(why, why_len, "path too long");
        else {
            char eb[128];
            snprintf(why, why_len, "cannot open: %s", strerror_r(e, eb, sizeof eb));
        }
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

/* The header's limits: 0, or -1 with the reason. */
static int image_check_size(int64_t w, int64_t h, int64_t max_pixels, char *why, size_t why_len) {
    if (max_pixels <= 0) max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    if (w < 1 || h < 1) {
        snprintf(why, why_len, "empty image (%lld x %lld)", (long long)w, (long long)h);
        return -1;
    }
    if (w * h > max_pixels) {   /* both ≤ 2^24 (stb) or 2^16 (JPEG): no overflow */
        snprintf(why, why_len, "image too large: %lld x %lld = %.1f MP, over the %.1f MP limit", (long long)w,
                 (long long)h, (double)(w * h) / 1e6, (double)max_pixels / 1e6);
        return -1;
    }
    int64_t lo = w < h ? w : h, hi = w < h ? h : w;
    if (hi > lo * IMAGE_MAX_ASPECT) {
        snprintf(why, why_len, "aspect ratio %lld x %lld is over %d:1 (cannot be resized to a square crop)",
                 (long long)w, (long long)h, IMAGE_MAX_ASPECT);
        return -1;
    }
    return 0;
}

/* src [sh, sw, 3]: an image of w×h decoded at 1/d of its size (sw = ⌈w/d⌉) → out [R, R, 3]:
 * shorter side to R (torchvision's size rule on w×h), the centre R×R window. */
static int image_resize(const unsigned char *src, int sw, int sh, int w, int h, int d, int R, uint8_t *out,
                        char *why, size_t why_len) {
    int rw, rh;   /* the resized size; ≤ IMAGE_MAX_ASPECT·R by image_check_size */
    if (w <= h) { rw = R; rh = (int)((double)R * h / w); }
    else        { rh = R; rw = (int)((double)R * w / h); }
    if (rw < R) rw = R;
    if (rh < R) rh = R;
    int ox = image_centre_offset(rw - R), oy = image_centre_offset(rh - R);
    if (!stbir_resize_subpixel(src, sw, sh, 3 * sw, out, R, R, 3 * R, STBIR_TYPE_UINT8, 3,
                               STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                               STBIR_FILTER_TRIANGLE, STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, NULL,
                               (float)(rw * d) / (float)w, (float)(rh * d) / (float)h, (float)ox, (float)oy))
        return image_fail(why, why_len, "out of memory while resizing");
    return 0;
}

/* ---- JPEG through libjpeg ------------------------------------------------------------ */

typedef struct image_jpeg_guard {
    struct jpeg_error_mgr err;        /* first: libjpeg's err pointer is a pointer to this */
    struct jpeg_progress_mgr progress;
    jmp_buf back;
    char msg[JMSG_LENGTH_MAX];
    j_decompress_ptr d;
} image_jpeg_guard;

static void image_jpeg_error_exit(j_common_ptr c) {
    image_jpeg_guard *g = (image_jpeg_guard *)c->err;
    c->err->format_message(c, g->msg);
    longjmp(g->back, 1);
}

static void image_jpeg_message(j_common_ptr c, int level) { (void)c; (void)level; }   /* warnings: ignored */

static void image_jpeg_progress(j_common_ptr c) {
    image_jpeg_guard *g = (image_jpeg_guard *)c->err;
    if (g->d->input_scan_number > IMAGE_MAX_JPEG_SCANS) {
        snprintf(g->msg, sizeof g->msg, "more than %d progressive scans", IMAGE_MAX_JPEG_SCANS);
        longjmp(g->back, 1);
    }
}

/* Adobe CMYK, stored inverted: the ink's complement times the black's. */
static unsigned char image_cmyk_mul(unsigned x, unsigned k) { return (unsigned char)((x * k + 127) / 255); }

static int image_decode_jpeg(const unsigned char *data, size_t len, int R, int64_t max_pixels, uint8_t *out,
                             char *why, size_t why_len) {
    struct jpeg_decompress_struct d;
    image_jpeg_guard g;
    unsigned char *volatile pix = NULL, *volatile row = NULL;   /* freed after a longjmp too */
    d.err = jpeg_std_error(&g.err);
    g.err.error_exit = image_jpeg_error_exit;
    g.err.emit_message = image_jpeg_message;
    g.d = &d;
    g.msg[0] = 0;
    if (setjmp(g.back)) {
        jpeg_destroy_decompress(&d);
        free(pix);
        free(row);
        snprintf(why, why_len, "cannot decode (corrupt JPEG: %s)", g.msg);
        return -1;
    }
    jpeg_create_decompress(&d);
    g.progress.progress_monitor = image_jpeg_progress;
    d.progress = &g.progress;
    jpeg_mem_src(&d, data, (unsigned long)len);
    jpeg_read_header(&d, TRUE);
    const int w = (int)d.image_width, h = (int)d.image_height;   /* ≤ 65500 each */
    if (image_check_size(w, h, max_pixels, why, why_len)) {
        jpeg_destroy_decompress(&d);
        return -1;
    }
    /* libjpeg's whole-image buffers (progressive coefficients): at most 8 bytes a pixel */
    d.mem->max_memory_to_use = (long)((max_pixels > 0 ? max_pixels : IMAGE_DEFAULT_MAX_PIXELS) * 8 + (64 << 20));
    const int shorter = w < h ? w : h;
    int f = 1;
    while (f < 8 && shorter >= 2 * f * R) f *= 2;
    d.scale_num = 1;
    d.scale_denom = (unsigned)f;
    const int cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    d.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&d);
    const int sw = (int)d.output_width, sh = (int)d.output_height;
    if (d.output_components != (cmyk ? 4 : 3)) {
        snprintf(g.msg, sizeof g.msg, "%d output components", d.output_components);
        longjmp(g.back, 1);
    }
    pix = malloc((size_t)sw * sh * 3);                       /* [sh, sw, 3] */
    if (cmyk) row = malloc((size_t)sw * 4);                  /* [sw, 4] */
    if (!pix || (cmyk && !row)) {
        snprintf(g.msg, sizeof g.msg, "out of memory for %d x %d pixels", sw, sh);
        longjmp(g.back, 1);
    }
    while (d.output_scanline < d.output_height) {
        unsigned char *dst = pix + (size_t)d.output_scanline * sw * 3;
        JSAMPROW r = cmyk ? row : dst;
        if (jpeg_read_scanlines(&d, &r, 1) != 1) {
            snprintf(g.msg, sizeof g.msg, "no scanline %u", d.output_scanline);
            longjmp(g.back, 1);
        }
        if (cmyk)
            for (int x = 0; x < sw; x++) {
                const unsigned char *p = row + 4 * x;
                dst[3 * x + 0] = image_cmyk_mul(p[0], p[3]);
                dst[3 * x + 1] = image_cmyk_mul(p[1], p[3]);
                dst[3 * x + 2] = image_cmyk_mul(p[2], p[3]);
            }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    int rc = image_resize(pix, sw, sh, w, h, f, R, out, why, why_len);
    free(pix);
    return rc;
}

/* ---- PNG and BMP through stb_image -------------------------------------------------- */

static int image_decode_stb(const unsigned char *data, size_t len, const char *fmt, int R, int64_t max_pixels,
                            uint8_t *out, char *why, size_t why_len) {
    if (len > (size_t)0x7FFFFFFF) return image_fail(why, why_len, "file too large");
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &c)) {
        snprintf(why, why_len, "cannot decode (corrupt %s header)", fmt);
        return -1;
    }
    if (image_check_size(w, h, max_pixels, why, why_len)) return -1;
    unsigned char *pix = stbi_load_from_memory(data, (int)len, &w, &h, &c, 3);   /* [h, w, 3] */
    if (!pix) {
        snprintf(why, why_len, "cannot decode (corrupt %s)", fmt);
        return -1;
    }
    int rc = image_resize(pix, w, h, w, h, 1, R, out, why, why_len);
    stbi_image_free(pix);
    return rc;
}

int image_decode(const unsigned char *data, size_t len, int R, int64_t max_pixels, uint8_t *out,
                 char *why, size_t why_len) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (R < 1) return image_fail(why, why_len, "bad output size");
    if (len == 0) return image_fail(why, why_len, "empty file");
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        if (image_jpeg_truncated(data, len) == 1) return image_fail(why, why_len, "truncated JPEG (no end-of-image marker)");
        return image_decode_jpeg(data, len, R, max_pixels, out, why, why_len);
    }
    if (len >= 8 && memcmp(data, png_sig, 8) == 0) {
        if (image_png_truncated(data, len)) return image_fail(why, why_len, "truncated PNG (no IEND chunk)");
        return image_decode_stb(data, len, "PNG", R, max_pixels, out, why, why_len);
    }
    if (len >= 2 && data[0] == 'B' && data[1] == 'M') return image_decode_stb(data, len, "BMP", R, max_pixels, out, why, why_len);
    return image_fail(why, why_len, "unknown format (not JPEG, PNG or BMP)");
}

int image_load(const char *path, int R, int64_t max_pixels, uint8_t *out, char *why, size_t why_len) {
    if (R < 1) return image_fail(why, why_len, "bad output size");
    size_t len = 0;
    unsigned char *file = image_read_file(path, &len, why, why_len);
    if (!file) return -1;
    int rc = image_decode(file, len, R, max_pixels, out, why, why_len);
    free(file);
    return rc;
}
