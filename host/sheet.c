/* host/sheet.c — contact sheets as PNG and HTML (see sheet.h). */
#include "sheet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../loader/atomic.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

const uint8_t sheet_colours[4][3] = {
    {40, 90, 220},    /* SHEET_QUERY: blue */
    {30, 160, 60},    /* SHEET_RELEVANT: green */
    {210, 40, 40},    /* SHEET_IRRELEVANT: red */
    {150, 150, 150},  /* SHEET_UNKNOWN: grey */
};

enum { SHEET_MAX_CAPTION = 64 };   /* characters drawn of a caption */

static int sheet_cell_side(int thumb) { return thumb + 2 * SHEET_FRAME; }

void sheet_size(int rows, int cols, int thumb, int *width, int *height) {
    const int W = sheet_cell_side(thumb);
    *width = SHEET_PAD + cols * (W + SHEET_PAD) + SHEET_GAP;
    *height = SHEET_PAD + rows * (W + SHEET_CAPTION + SHEET_PAD);
}

/* The top-left pixel of cell (r, c)'s frame. */
static void sheet_cell_origin(int r, int c, int thumb, int *x, int *y) {
    const int W = sheet_cell_side(thumb);
    *x = SHEET_PAD + c * (W + SHEET_PAD) + (c > 0 ? SHEET_GAP : 0);
    *y = SHEET_PAD + r * (W + SHEET_CAPTION + SHEET_PAD);
}

void sheet_thumb_origin(int r, int c, int thumb, int *x, int *y) {
    sheet_cell_origin(r, c, thumb, x, y);
    *x += SHEET_FRAME;
    *y += SHEET_FRAME;
}

/* A filled rectangle [x0, x1) × [y0, y1) of img [H, Wd, 3], clipped to the image and
 * to the clip box [cx0, cx1) × [cy0, cy1). */
static void sheet_fill(uint8_t *img, int Wd, int H, int x0, int y0, int x1, int y1, const uint8_t rgb[3], int cx0,
                       int cy0, int cx1, int cy1) {
    if (x0 < cx0) x0 = cx0;
    if (y0 < cy0) y0 = cy0;
    if (x1 > cx1) x1 = cx1;
    if (y1 > cy1) y1 = cy1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > Wd) x1 = Wd;
    if (y1 > H) y1 = H;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) memcpy(img + ((size_t)y * Wd + x) * 3, rgb, 3);
}

/* Draws text (printable ASCII; others shown as '?') at (x, y), stb_easy_font's quads
 * scaled by `scale`, clipped to the box. */
static void sheet_text(uint8_t *img, int Wd, int H, int x, int y, int scale, const char *text, int cx0, int cy0,
                       int cx1, int cy1) {
    char t[SHEET_MAX_CAPTION + 1];
    int n = 0;
    for (; text[n] && n < SHEET_MAX_CAPTION; n++) t[n] = text[n] >= 32 && text[n] < 127 ? text[n] : '?';
    t[n] = 0;
    char vbuf[SHEET_MAX_CAPTION * 400];   /* ~270 bytes a character (stb's estimate) */
    int quads = stb_easy_font_print(0, 0, t, NULL, vbuf, (int)sizeof vbuf);
    static const uint8_t ink[3] = {20, 20, 20};
    for (int q = 0; q < quads; q++) {
        const char *v = vbuf + (size_t)q * 64;   /* 4 vertices of x, y, z (floats) and a colour */
        float qx0 = 1e9f, qy0 = 1e9f, qx1 = -1e9f, qy1 = -1e9f;
        for (int k = 0; k < 4; k++) {
            float xy[2];
            memcpy(xy, v + 16 * k, sizeof xy);
            if (xy[0] < qx0) qx0 = xy[0];
            if (xy[0] > qx1) qx1 = xy[0];
            if (xy[1] < qy0) qy0 = xy[1];
            if (xy[1] > qy1) qy1 = xy[1];
        }
        sheet_fill(img, Wd, H, x + (int)(qx0 * scale), y + (int)(qy0 * scale), x + (int)(qx1 * scale),
                   y + (int)(qy1 * scale), ink, cx0, cy0, cx1, cy1);
    }
}

/* stb_image_write's output, gathered in memory so that the file is written atomically. */
typedef struct sheet_buf {
    uint8_t *p;
    size_t n, cap;
    int failed;
} sheet_buf;

static void sheet_sink(void *ctx, void *data, int size) {
    sheet_buf *b = ctx;
    if (b->failed || size <= 0) return;
    if (b->n + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + (size_t)size) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

static int sheet_check(const char *path, int rows, int cols, int thumb, char *err, size_t err_len) {
    if (rows < 1 || cols < 1 || thumb < 16 || thumb > 1024 || rows > 10000 || cols > 1000) {
        snprintf(err, err_len, "%s: a sheet of %d rows, %d cells a row, thumbnails of %d pixels: need 1 to "
                 "10000 rows, 1 to 1000 cells, 16 to 1024 pixels", path, rows, cols, thumb);
        return -1;
    }
    return 0;
}

int sheet_write_png(const char *path, const sheet_cell *cells, int rows, int cols, int thumb, char *err,
                    size_t err_len) {
    if (sheet_check(path, rows, cols, thumb, err, err_len)) return -1;
    int Wd, H;
    sheet_size(rows, cols, thumb, &Wd, &H);
    if ((size_t)Wd * H > (size_t)1 << 28) {
        snprintf(err, err_len, "%s: a sheet of %d × %d pixels is too large; fewer queries or a smaller --thumb",
                 path, Wd, H);
        return -1;
    }
    uint8_t *img = malloc((size_t)Wd * H * 3);   /* [H, Wd, 3] */
    if (!img) {
        snprintf(err, err_len, "%s: out of memory for %d × %d pixels", path, Wd, H);
        return -1;
    }
    memset(img, 255, (size_t)Wd * H * 3);
    const int side = sheet_cell_side(thumb), scale = thumb >= 56 ? 2 : 1;
    static const uint8_t unreadable[3] = {200, 200, 200}, cross[3] = {90, 90, 90};
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const sheet_cell *cell = &cells[(size_t)r * cols + c];
            int x, y;
            sheet_cell_origin(r, c, thumb, &x, &y);
            sheet_fill(img, Wd, H, x, y, x + side, y + side, sheet_colours[cell->mark], 0, 0, Wd, H);
            const int tx = x + SHEET_FRAME, ty = y + SHEET_FRAME;
            if (cell->rgb) {
                for (int i = 0; i < thumb; i++)
                    memcpy(img + ((size_t)(ty + i) * Wd + tx) * 3, cell->rgb + (size_t)i * thumb * 3,
                           (size_t)thumb * 3);
            } else {
                sheet_fill(img, Wd, H, tx, ty, tx + thumb, ty + thumb, unreadable, 0, 0, Wd, H);
                for (int i = 0; i < thumb; i++) {   /* two diagonals, 2 pixels wide */
                    sheet_fill(img, Wd, H, tx + i, ty + i, tx + i + 2, ty + i + 1, cross, tx, ty, tx + thumb, ty + thumb);
                    sheet_fill(img, Wd, H, tx + thumb - 2 - i, ty + i, tx + thumb - i, ty + i + 1, cross, tx, ty,
                               tx + thumb, ty + thumb);
                }
            }
            if (cell->caption)
                sheet_text(img, Wd, H, x + 1, y + side + 2, scale, cell->caption, x, y + side, x + side,
                           y + side + SHEET_CAPTION);
        }
    sheet_buf b = {0};
    int ok = stbi_write_png_to_func(sheet_sink, &b, Wd, H, 3, img, Wd * 3) && !b.failed;
    free(img);
    if (!ok) {
        snprintf(err, err_len, "%s: PNG encoding failed (out of memory?)", path);
        free(b.p);
        return -1;
    }
    const void *parts[1] = {b.p};
    size_t lens[1] = {b.n};
    int rc = atomic_write(path, parts, lens, 1, err, err_len);
    free(b.p);
    return rc;
}

/* ---- HTML ------------------------------------------------------------------------------- */

/* Text escaped for HTML (an attribute or element content). */
static void sheet_html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A path as a URL path: unreserved characters and '/' kept, everything else %XX. */
static void sheet_html_url(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("/-_.~", c))
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

int sheet_write_html(const char *path, const char *heading, const sheet_cell *cells, int rows, int cols, int thumb,
                     char *err, size_t err_len) {
    if (sheet_check(path, rows, cols, thumb, err, err_len)) return -1;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    sheet_html_text(f, heading ? heading : "dath search");
    fprintf(f, "</title>\n<style>\n"
               "body { font-family: sans-serif; }\n"
               "td { padding: %dpx; vertical-align: top; text-align: left; font-size: 12px; }\n"
               "td.gap { padding: 0 %dpx 0 0; }\n"
               "img, .none { width: %dpx; height: %dpx; object-fit: cover; display: block; border: %dpx solid; }\n"
               ".none { background: #c8c8c8; }\n",
            SHEET_PAD / 2, SHEET_GAP, thumb, thumb, SHEET_FRAME);
    static const char *cls[4] = {"query", "rel", "irrel", "unknown"};
    for (int k = 0; k < 4; k++)
        fprintf(f, ".%s { border-color: #%02x%02x%02x; }\n", cls[k], sheet_colours[k][0], sheet_colours[k][1],
                sheet_colours[k][2]);
    fprintf(f, "</style></head><body>\n<h3>");
    sheet_html_text(f, heading ? heading : "dath search");
    fprintf(f, "</h3>\n<p>frames: <span style=\"color:#%02x%02x%02x\">query</span>, "
               "<span style=\"color:#%02x%02x%02x\">relevant</span>, <span style=\"color:#%02x%02x%02x\">not "
               "relevant</span>, <span style=\"color:#%02x%02x%02x\">relevance unknown</span>; d: Hamming "
               "distance</p>\n<table>\n",
            sheet_colours[0][0], sheet_colours[0][1], sheet_colours[0][2], sheet_colours[1][0], sheet_colours[1][1],
            sheet_colours[1][2], sheet_colours[2][0], sheet_colours[2][1], sheet_colours[2][2], sheet_colours[3][0],
            sheet_colours[3][1], sheet_colours[3][2]);
    for (int r = 0; r < rows; r++) {
        fprintf(f, "<tr>");
        for (int c = 0; c < cols; c++) {
            const sheet_cell *cell = &cells[(size_t)r * cols + c];
            fprintf(f, "<td%s>", c == 0 ? " class=\"gap\"" : "");
            if (cell->src) {
                fprintf(f, "<img class=\"%s\" src=\"", cls[cell->mark]);
                sheet_html_url(f, cell->src);
                fprintf(f, "\" alt=\"\"");
            } else {
                fprintf(f, "<div class=\"none %s\"", cls[cell->mark]);
            }
            if (cell->title) {
                fprintf(f, " title=\"");
                sheet_html_text(f, cell->title);
                fprintf(f, "\"");
            }
            fprintf(f, cell->src ? ">" : "></div>");
            if (cell->caption) sheet_html_text(f, cell->caption);
            fprintf(f, "</td>");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n</body></html>\n");
    if (fclose(f) || !text) {
        free(text);
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    const void *parts[1] = {text};
    size_t lens[1] = {len};
    int rc = atomic_write(path, parts, lens, 1, err, err_len);
    free(text);
    return rc;
}
