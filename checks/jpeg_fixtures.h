/* checks/jpeg_fixtures.h — JPEG files the checks make themselves (test_loader.c, and the
 * fuzz seeds of checks/fuzz/make_seeds.c): written with libjpeg, and two crafted ones.
 *
 *   fixture_jpeg(p, w, h, comps, colour space, quality, flags, &len)   p [h, w, comps] → bytes
 *   fixture_jpeg_big_dht(out, jpg, len)      a Huffman table of 800 codes before the scan
 *   fixture_jpeg_many_scans(out, jpg, len, k) a progressive JPEG's last scan repeated k times
 * Buffers from fixture_jpeg are malloc'd by libjpeg (free them); the crafted ones are
 * written into out, which must hold len + 1024 (big_dht) or len · (k + 1) bytes. */
#ifndef DATH_JPEG_FIXTURES_H
#define DATH_JPEG_FIXTURES_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

enum { FIXTURE_444 = 1, FIXTURE_PROGRESSIVE = 2, FIXTURE_RESTART = 4, FIXTURE_ARITH = 8 };

static inline unsigned char *fixture_jpeg(const unsigned char *p, int w, int h, int comps, J_COLOR_SPACE cs,
                                          int quality, int flags, unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *mem = NULL;
    *len = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if ((flags & FIXTURE_444) && comps == 3)
        for (int k = 0; k < 3; k++) c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
    if (flags & FIXTURE_PROGRESSIVE) jpeg_simple_progression(&c);
    if (flags & FIXTURE_RESTART) c.restart_in_rows = 1;
    if (flags & FIXTURE_ARITH) c.arith_code = TRUE;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(p + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return mem;
}

/* Offset of the first SOS marker (0xFFDA), walking the marker segments; 0 when none. */
static inline size_t fixture_jpeg_sos(const unsigned char *jpg, size_t len) {
    size_t at = 2;
    while (at + 4 <= len && !(jpg[at] == 0xFF && jpg[at + 1] == 0xDA))
        at += 2 + ((size_t)jpg[at + 2] << 8 | jpg[at + 3]);
    return at + 4 <= len ? at : 0;
}

/* A Huffman table (DHT, DC table 0) of 800 codes — 100 of each length from 9 to 16 bits,
 * a valid prefix code, but over the 256 a table can hold — put just before the first
 * scan, so that the scan uses it. stb_image 2.27 writes past its tables on it and then
 * crashes decoding the scan (SIGSEGV, every time). Returns the new length, 0 when jpg
 * has no scan. */
static inline size_t fixture_jpeg_big_dht(unsigned char *out, const unsigned char *jpg, size_t len) {
    size_t sos = fixture_jpeg_sos(jpg, len), at;
    if (!sos) return 0;
    memcpy(out, jpg, sos);
    at = sos;
    const size_t n = 800, seg = 2 + 1 + 16 + n;   /* length, class/id, 16 counts, the symbols */
    out[at++] = 0xFF;
    out[at++] = 0xC4;
    out[at++] = (unsigned char)(seg >> 8);
    out[at++] = (unsigned char)seg;
    out[at++] = 0x00;
    for (int k = 0; k < 16; k++) out[at++] = k >= 8 ? 100 : 0;
    for (size_t k = 0; k < n; k++) out[at++] = (unsigned char)(k % 12);
    memcpy(out + at, jpg + sos, len - sos);
    return at + len - sos;
}

/* The last scan of a progressive JPEG (its SOS segment and entropy-coded data, up to
 * EOI) repeated k more times before EOI: a file of many scans, each a pass over the
 * image. Returns the new length, 0 when the structure is not found. */
static inline size_t fixture_jpeg_many_scans(unsigned char *out, const unsigned char *jpg, size_t len, int k) {
    size_t last = 0;
    for (size_t at = 2; at + 1 < len; at++)
        if (jpg[at] == 0xFF && jpg[at + 1] == 0xDA) last = at;   /* no 0xFFDA inside scan data (stuffed) */
    if (!last || len < 2 || jpg[len - 2] != 0xFF || jpg[len - 1] != 0xD9) return 0;
    size_t scan = len - 2 - last, at = len - 2;
    memcpy(out, jpg, len - 2);
    for (int r = 0; r < k; r++, at += scan) memcpy(out + at, jpg + last, scan);
    out[at++] = 0xFF;
    out[at++] = 0xD9;
    return at;
}

#endif
