/* loader/list.c — reading and validating image lists (see list.h).
 *
 * The rules, applied to every line before anything is returned:
 *   - a line ends with LF or CRLF; trailing spaces and tabs are ignored;
 *   - the path is the first field and starts at the first column: a line that starts
 *     with a space or a tab has an empty path;
 *   - the labels follow, separated by spaces or tabs, each exactly "0" or "1"; so a
 *     path cannot hold a space or a tab (HashNet's lists cannot either): when a label is
 *     a word rather than a digit, the message says so;
 *   - the first line fixes C (at least one label); every other line has C labels;
 *   - blank lines (empty or only spaces/tabs) are allowed at the end of the file only:
 *     a blank line followed by more entries is an error, as it is for the community's
 *     own loaders (HashNet, DeepHash-pytorch), which fail on it;
 *   - a UTF-8 byte-order mark at the start of the file is skipped;
 *   - a relative path resolves against root; an absolute path is used as written.
 * Each failure has its own message "FILE:LINE: what is wrong". */
#include "list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole file into a NUL-terminated buffer. Returns NULL with errno set. */
static char *list_slurp(const char *file, size_t *len) {
    FILE *f = fopen(file, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; errno = ENOMEM; break; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) { free(buf); buf = NULL; errno = EIO; }
            break;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    *len = n;
    return buf;
}

static int list_is_blank(char c) { return c == ' ' || c == '\t'; }

/* Appends one image; grows the arrays. Returns 0, or -1 when out of memory. */
static int list_push(dath_list *l, int *cap, const char *name, size_t name_len,
                     const char *root, int line) {
    if (l->n == *cap) {
        int nc = *cap ? *cap * 2 : 1024;
        char **nn = realloc(l->names, (size_t)nc * sizeof *nn);
        if (nn) l->names = nn;
        char **np = realloc(l->paths, (size_t)nc * sizeof *np);
        if (np) l->paths = np;
        int *nl = realloc(l->lines, (size_t)nc * sizeof *nl);
        if (nl) l->lines = nl;
        if (!nn || !np || !nl) return -1;
        *cap = nc;
    }
    char *name_copy = strndup(name, name_len);
    if (!name_copy) return -1;
    char *path;
    if (root && root[0] && name_copy[0] != '/') {
        size_t rl = strlen(root);
        int slash = root[rl - 1] != '/';
        path = malloc(rl + (size_t)slash + name_len + 1);
        if (path) {
            memcpy(path, root, rl);
            if (slash) path[rl] = '/';
            memcpy(path + rl + (size_t)slash, name_copy, name_len + 1);
        }
    } else {
        path = strdup(name_copy);
    }
    if (!path) { free(name_copy); return -1; }
    l->names[l->n] = name_copy;
    l->paths[l->n] = path;
    l->lines[l->n] = line;
    l->n++;
    return 0;
}

dath_list *list_read(const char *file, const char *root, char *err, size_t err_len) {
    size_t len = 0;
    char *text = list_slurp(file, &len);
    if (!text) {
        snprintf(err, err_len, "%s: cannot read the list: %s", file, strerror(errno));
        return NULL;
    }
    dath_list *l = calloc(1, sizeof *l);
    if (!l || !(l->file = strdup(file))) {
        snprintf(err, err_len, "%s: out of memory", file);
        free(l);
        free(text);
        return NULL;
    }
    int cap = 0, first_line = 0, blank_line = 0;
    size_t label_cap = 0;
    const char *oom = NULL;
    char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    for (int line = 1; p < end; line++) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        if (!eol) eol = end;
        if (memchr(p, 0, (size_t)(eol - p))) {
            snprintf(err, err_len, "%s:%d: NUL byte in the line (is this a text list?)", file, line);
            goto fail;
        }
        char *e = eol;   /* strip CR, spaces and tabs at the end */
        while (e > p && (e[-1] == '\r' || list_is_blank(e[-1]))) e--;
        if (e == p) {    /* blank: only allowed when nothing follows */
            if (!blank_line) blank_line = line;
            p = next;
            continue;
        }
        if (blank_line) {
            snprintf(err, err_len, "%s:%d: blank line (blank lines are allowed only at the end of the list)",
                     file, blank_line);
            goto fail;
        }
        if (list_is_blank(*p)) {
            snprintf(err, err_len, "%s:%d: empty path (the line starts with a space or tab)", file, line);
            goto fail;
        }
        char *q = p;
        while (q < e && !list_is_blank(*q)) q++;
        const char *name = p;
        size_t name_len = (size_t)(q - p);
        if (memchr(name, '\r', name_len)) {
            snprintf(err, err_len, "%s:%d: carriage return inside the line", file, line);
            goto fail;
        }
        /* labels: count them first, checking each */
        int count = 0;
        for (char *t = q; t < e;) {
            while (t < e && list_is_blank(*t)) t++;
            if (t == e) break;
            char *te = t;
            while (te < e && !list_is_blank(*te)) te++;
            count++;
            if (te - t != 1 || (*t != '0' && *t != '1')) {
                /* a word, not a number: most likely the rest of a path with a space in it */
                int word = 0;
                for (const char *c = t; c < te; c++) word |= !strchr("0123456789.+-", *c);
                snprintf(err, err_len, "%s:%d: label %d is '%.*s', not 0 or 1%s", file, line, count,
                         (int)(te - t > 24 ? 24 : te - t), t,
                         word ? " (if the path has a space or tab in it: this list format cannot hold one, "
                                "as HashNet's cannot; rename the file or link it under a name without one)"
                              : "");
                goto fail;
            }
            t = te;
        }
        if (!first_line) {
            if (count == 0) {
                snprintf(err, err_len, "%s:%d: no labels after the path '%.*s'", file, line,
                         (int)(name_len > 200 ? 200 : name_len), name);
                goto fail;
            }
            first_line = line;
            l->C = count;
        } else if (count != l->C) {
            snprintf(err, err_len, "%s:%d: %d labels, but the first line (line %d) has %d", file,
                     line, count, first_line, l->C);
            goto fail;
        }
        if (list_push(l, &cap, name, name_len, root, line)) { oom = "paths"; goto oom; }
        if ((size_t)l->n * (size_t)l->C > label_cap) {
            size_t nc = (size_t)cap * (size_t)l->C;
            uint8_t *nl = realloc(l->labels, nc);
            if (!nl) { oom = "labels"; goto oom; }
            l->labels = nl;
            label_cap = nc;
        }
        uint8_t *row = l->labels + (size_t)(l->n - 1) * (size_t)l->C;
        int j = 0;
        for (char *t = q; t < e; t++)
            if (!list_is_blank(*t)) row[j++] = (uint8_t)(*t - '0');
        p = next;
    }
    if (l->n == 0) {
        snprintf(err, err_len, "%s: empty list (no image lines)", file);
        goto fail;
    }
    l->multi = 0;
    for (int i = 0; i < l->n && !l->multi; i++) {
        int ones = 0;
        for (int j = 0; j < l->C; j++) ones += l->labels[(size_t)i * (size_t)l->C + (size_t)j];
        if (ones != 1) l->multi = 1;
    }
    free(text);
    return l;
oom:
    snprintf(err, err_len, "%s: out of memory for the %s", file, oom);
fail:
    free(text);
    list_free(l);
    return NULL;
}

void list_free(dath_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->paths[i]);
    }
    free(l->names);
    free(l->paths);
    free(l->lines);
    free(l->labels);
    free(l->file);
    free(l);
}

uint8_t *list_rows_labels(const dath_list *l, const int *rows, int n) {
    const size_t C = (size_t)l->C;
    uint8_t *out = malloc((n > 0 ? (size_t)n : 1) * C);   /* [n, C] */
    if (!out) return NULL;
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * C, l->labels + (size_t)rows[i] * C, C);
    return out;
}

char *list_rows_skipped(const dath_list *l, const int *rows, int n, size_t *len) {
    size_t cap = 1, at = 0;
    for (int i = 0; i < l->n; i++) cap += strlen(l->names[i]) + 16;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = 0;
    int k = 0;
    for (int i = 0; i < l->n; i++) {
        if (k < n && rows[k] == i) { k++; continue; }
        at += (size_t)snprintf(s + at, cap - at, "%d %s\n", l->lines[i], l->names[i]);
    }
    *len = at;
    return s;
}
