/* host/sheet.h — contact sheets of search results (`dath search --sheet`): one row a
 * query, its image first, then its top K results, each framed by whether it is
 * relevant, with a caption (the distance) under it.
 *
 * PNG layout, for R rows of C cells (C = 1 + K) of T×T thumbnails, white background:
 *   a cell is the thumbnail inside a frame of SHEET_FRAME pixels, W = T + 2·SHEET_FRAME
 *   on each side, with a caption strip of SHEET_CAPTION pixels under it; cells are
 *   SHEET_PAD apart and from the edges, and the query column is SHEET_GAP further from
 *   the results:
 *     width  = SHEET_PAD + C·(W + SHEET_PAD) + SHEET_GAP
 *     height = SHEET_PAD + R·(W + SHEET_CAPTION + SHEET_PAD)
 *   frames: the query blue, a relevant result green, an irrelevant one red, one whose
 *   relevance is unknown (no labels) grey; an image that could not be read is a grey
 *   square crossed by two dark diagonals. Captions are drawn with stb_easy_font
 *   (Debian's libstb-dev), ASCII only.
 * HTML: a table of the same rows and cells, the images referenced by path (the
 * browser scales them), frames and captions as above; it needs no pixels.
 *
 * Both files are written atomically (loader/atomic.h). Functions return 0, or -1 with
 * a message naming the file in err. */
#ifndef DATH_SHEET_H
#define DATH_SHEET_H

#include <stddef.h>
#include <stdint.h>

enum {
    SHEET_FRAME = 3,       /* pixels of the coloured frame around a thumbnail */
    SHEET_PAD = 6,         /* between cells and around the sheet */
    SHEET_GAP = 14,        /* extra space between the query and its results */
    SHEET_CAPTION = 18,    /* the caption strip under a cell (stb_easy_font at scale 2) */
};

typedef enum { SHEET_QUERY, SHEET_RELEVANT, SHEET_IRRELEVANT, SHEET_UNKNOWN } sheet_mark;

/* The frame colours, indexed by sheet_mark: RGB. */
extern const uint8_t sheet_colours[4][3];

typedef struct sheet_cell {
    const uint8_t *rgb;    /* PNG: [T, T, 3] the thumbnail; NULL: unreadable (grey, crossed) */
    const char *src;       /* HTML: the image's path as the page refers to it (NULL: none) */
    const char *title;     /* HTML: the tooltip (e.g. rank, row, path, labels); may be NULL */
    const char *caption;   /* under the cell, ASCII; may be NULL */
    sheet_mark mark;
} sheet_cell;

/* The PNG's size for rows × cols cells of thumb pixels. */
void sheet_size(int rows, int cols, int thumb, int *width, int *height);
/* The top-left pixel of cell (r, c)'s thumbnail (inside its frame). */
void sheet_thumb_origin(int r, int c, int thumb, int *x, int *y);

/* cells [rows, cols], row-major. thumb 16..1024, rows and cols ≥ 1. */
int sheet_write_png(const char *path, const sheet_cell *cells, int rows, int cols, int thumb, char *err,
                    size_t err_len);
int sheet_write_html(const char *path, const char *heading, const sheet_cell *cells, int rows, int cols, int thumb,
                     char *err, size_t err_len);

#endif
