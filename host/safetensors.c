/* host/safetensors.c — safetensors reading and writing (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a JSON reader just large enough for the header -------------------------
 * Every read stays inside [p, end): the header is not NUL-terminated (its last byte is
 * followed by the tensor data, or by the end of the buffer). Values nest at most
 * JSON_MAX_DEPTH deep (a safetensors header needs 3), so a crafted header cannot
 * exhaust the stack. */

enum { JSON_MAX_DEPTH = 64 };

typedef struct json_in {
    const char *p, *end;
    int too_deep;             /* set when a value nested deeper than JSON_MAX_DEPTH */
} json_in;

static void json_ws(json_in *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int json_eat(json_in *j, char c) {
    json_ws(j);
    if (j->p < j->end && *j->p == c) { j->p++; return 1; }
    return 0;
}

static int json_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads a string; returns a malloc'd copy with escapes decoded (\uXXXX kept ASCII
 * only, others and \u0000 become '?'), or NULL (malformed, or out of memory). */
static char *json_string(json_in *j) {
    json_ws(j);
    if (j->p >= j->end || *j->p != '"') return NULL;
    j->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end) break;
            char e = *j->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    int d = j->p < j->end ? json_hex(*j->p) : -1;
                    if (d < 0) { free(s); return NULL; }
                    v = v * 16 + (unsigned)d;
                    j->p++;
                }
                c = v > 0 && v < 128 ? (char)v : '?';
                break;
            }
            default: c = e;
            }
        }
        if (n + 2 > cap) {
            char *ns = realloc(s, cap *= 2);
            if (!ns) { free(s); return NULL; }
            s = ns;
        }
        s[n++] = c;
    }
    if (j->p >= j->end) { free(s); return NULL; }
    j->p++;
    s[n] = 0;
    return s;
}

/* A decimal integer (optional '-'), within int64. Returns 0, or -1. */
static int json_int(json_in *j, int64_t *v) {
    json_ws(j);
    const char *q = j->p;
    int neg = q < j->end && *q == '-';
    if (neg) q++;
    if (q >= j->end || *q < '0' || *q > '9') return -1;
    uint64_t x = 0;
    for (; q < j->end && *q >= '0' && *q <= '9'; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (x > (UINT64_C(9223372036854775807) - d) / 10) return -1;   /* beyond int64 */
        x = x * 10 + d;
    }
    j->p = q;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return 0;
}

/* Skips any JSON value (used for unknown fields), at most JSON_MAX_DEPTH deep. */
static int json_skip(json_in *j, int depth) {
    json_ws(j);
    if (depth > JSON_MAX_DEPTH) { j->too_deep = 1; return -1; }
    if (j->p >= j->end) return -1;
    char c = *j->p;
    if (c == '"') { char *s = json_string(j); if (!s) return -1; free(s); return 0; }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (json_eat(j, close)) return 0;
        do {
            if (c == '{') {
                char *k = json_string(j);
                if (!k) return -1;
                free(k);
                if (!json_eat(j, ':')) return -1;
            }
            if (json_skip(j, depth + 1)) return -1;
        } while (json_eat(j, ','));
        return json_eat(j, close) ? 0 : -1;
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') j->p++;
    return 0;
}

/* ---- reading -------------------------------------------------------------------- */

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F64") || !strcmp(d, "I64") || !strcmp(d, "U64")) return 8;
    if (!strcmp(d, "F32") || !strcmp(d, "I32") || !strcmp(d, "U32")) return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "I16") || !strcmp(d, "U16")) return 2;
    if (!strcmp(d, "U8") || !strcmp(d, "I8") || !strcmp(d, "BOOL")) return 1;
    return 0;
}

static int st_parse_tensor(json_in *j, st_tensor *t, int64_t *b, int64_t *e) {
    if (!json_eat(j, '{')) return -1;
    *b = *e = -1;
    t->dtype[0] = 0;
    do {
        char *k = json_string(j);
        if (!k || !json_eat(j, ':')) { free(k); return -1; }
        int rc = 0;
        if (!strcmp(k, "dtype")) {
            char *d = json_string(j);
            if (!d || strlen(d) >= sizeof t->dtype) rc = -1;
            else strcpy(t->dtype, d);
            free(d);
        } else if (!strcmp(k, "shape") || !strcmp(k, "data_offsets")) {
            int is_shape = k[0] == 's';
            int n = 0;
            if (!json_eat(j, '[')) rc = -1;
            else if (!json_eat(j, ']')) {
                do {
                    int64_t v;
                    if (json_int(j, &v) || v < 0) { rc = -1; break; }
                    if (is_shape) { if (n >= ST_MAX_DIMS) { rc = -1; break; } t->shape[n] = v; }
                    else if (n == 0) *b = v;
                    else if (n == 1) *e = v;
                    n++;
                } while (json_eat(j, ','));
                if (!rc && !json_eat(j, ']')) rc = -1;
            }
            if (is_shape) t->ndim = n;
            else if (n != 2) rc = -1;
        } else {
            rc = json_skip(j, 2);
        }
        free(k);
        if (rc) return -1;
    } while (json_eat(j, ','));
    return json_eat(j, '}') ? 0 : -1;
}

st_file *st_read(const char *path, char *err, size_t err_len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    st_file *f = calloc(1, sizeof *f);
    json_in j = {0};
    struct stat sb;
    if (!f) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    if (fstat(fileno(fp), &sb) || sb.st_size < 8) {
        snprintf(err, err_len, "%s: not a safetensors file (too short)", path);
        goto fail;
    }
    f->blob_len = (size_t)sb.st_size;
    f->blob = malloc(f->blob_len);
    if (!f->blob || fread(f->blob, 1, f->blob_len, fp) != f->blob_len) {
        snprintf(err, err_len, "%s: read failed", path);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | ((uint8_t *)f->blob)[i];
    if (hlen > f->blob_len - 8 || hlen < 2) {
        snprintf(err, err_len, "%s: not a safetensors file (header length %" PRIu64 ")", path, hlen);
        goto fail;
    }
    const char *data = (const char *)f->blob + 8 + hlen;
    size_t data_len = f->blob_len - 8 - hlen;
    j.p = (const char *)f->blob + 8;
    j.end = (const char *)f->blob + 8 + hlen;
    int cap = 16;
    f->tensors = calloc((size_t)cap, sizeof *f->tensors);
    if (!f->tensors) goto oom;
    if (!json_eat(&j, '{')) goto bad_header;
    if (!json_eat(&j, '}')) {
        do {
            char *name = json_string(&j);
            if (!name || !json_eat(&j, ':')) { free(name); goto bad_header; }
            if (!strcmp(name, "__metadata__")) {
                free(name);
                if (!json_eat(&j, '{')) goto bad_header;
                if (json_eat(&j, '}')) continue;
                do {
                    char *k = json_string(&j);
                    if (!k || !json_eat(&j, ':')) { free(k); goto bad_header; }
                    char *v = json_string(&j);
                    if (!v) { free(k); goto bad_header; }
                    char **nk = realloc(f->meta_keys, (size_t)(f->nmeta + 1) * sizeof(char *));
                    if (nk) f->meta_keys = nk;
                    char **nv = nk ? realloc(f->meta_values, (size_t)(f->nmeta + 1) * sizeof(char *)) : NULL;
                    if (nv) f->meta_values = nv;
                    if (!nk || !nv) { free(k); free(v); goto oom; }
                    f->meta_keys[f->nmeta] = k;
                    f->meta_values[f->nmeta++] = v;
                } while (json_eat(&j, ','));
                if (!json_eat(&j, '}')) goto bad_header;
                continue;
            }
            if (f->ntensors == cap) {
                st_tensor *nt = realloc(f->tensors, (size_t)cap * 2 * sizeof *f->tensors);
                if (!nt) { free(name); goto oom; }
                f->tensors = nt;
                cap *= 2;
            }
            st_tensor *t = &f->tensors[f->ntensors];
            memset(t, 0, sizeof *t);
            t->name = name;
            f->ntensors++;
            int64_t b, e;
            if (st_parse_tensor(&j, t, &b, &e)) goto bad_header;
            size_t es = dtype_size(t->dtype);
            /* the element count, without overflow: it must fit the data section */
            uint64_t numel = 1, room = es ? data_len / es : 0;
            int fits = es != 0;
            for (int d = 0; d < t->ndim; d++)
                if (t->shape[d] == 0) numel = 0;
            for (int d = 0; d < t->ndim && fits && numel; d++) {
                uint64_t dim = (uint64_t)t->shape[d];   /* > 0 here (st_parse_tensor refuses < 0) */
                if (numel > room / dim) fits = 0;
                else numel *= dim;
            }
            if (!fits || b < 0 || e < b || (uint64_t)e > data_len || (uint64_t)(e - b) != numel * es) {
                snprintf(err, err_len, "%s: tensor '%s': bad dtype, shape or data offsets", path, name);
                goto fail;
            }
            t->nbytes = (size_t)(e - b);
            t->data = data + b;
        } while (json_eat(&j, ','));
        if (!json_eat(&j, '}')) goto bad_header;
    }
    fclose(fp);
    return f;
oom:
    snprintf(err, err_len, "%s: out of memory", path);
    goto fail;
bad_header:
    if (j.too_deep)
        snprintf(err, err_len, "%s: malformed safetensors JSON header (values nested deeper than %d levels)", path,
                 JSON_MAX_DEPTH);
    else
        snprintf(err, err_len, "%s: malformed safetensors JSON header", path);
fail:
    fclose(fp);
    st_close(f);
    return NULL;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->blob);
    free(f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->ntensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

/* ---- writing -------------------------------------------------------------------- */

typedef struct st_entry {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    void *owned;
    size_t nbytes;
} st_entry;

struct st_writer {
    int n, cap;
    st_entry *e;
    int nmeta;
    char **mk, **mv;
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

static int st_writer_push(st_writer *w, const char *name, const char *dtype, int ndim,
                          const int64_t *shape, const void *data, size_t nbytes, int copy) {
    if (ndim > ST_MAX_DIMS || strlen(dtype) >= 8) return -1;
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    strcpy(e->dtype, dtype);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    if (copy) {
        e->owned = malloc(nbytes ? nbytes : 1);
        if (!e->owned) return -1;
        memcpy(e->owned, data, nbytes);
        e->data = e->owned;
    } else {
        e->data = data;
    }
    return 0;
}

int st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                  const int64_t *shape, const void *data, size_t nbytes) {
    return st_writer_push(w, name, dtype, ndim, shape, data, nbytes, 1);
}

int st_writer_add_ref(st_writer *w, const char *name, const char *dtype, int ndim,
                      const int64_t *shape, const void *data, size_t nbytes) {
    return st_writer_push(w, name, dtype, ndim, shape, data, nbytes, 0);
}

int st_writer_meta(st_writer *w, const char *key, const char *value) {
    w->mk = realloc(w->mk, (size_t)(w->nmeta + 1) * sizeof(char *));
    w->mv = realloc(w->mv, (size_t)(w->nmeta + 1) * sizeof(char *));
    w->mk[w->nmeta] = strdup(key);
    w->mv[w->nmeta++] = strdup(value);
    return 0;
}

/* Appends s as a JSON string to the growing buffer. */
static void buf_json_string(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t need = *len + 6 * strlen(s) + 3;
    if (need > *cap) { while (need > *cap) *cap *= 2; *buf = realloc(*buf, *cap); }
    char *o = *buf + *len;
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
        else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
        else *o++ = (char)c;
    }
    *o++ = '"';
    *len = (size_t)(o - *buf);
}

static void buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static void buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if ((size_t)n < *cap - *len) { *len += (size_t)n; return; }
        *cap *= 2;
        *buf = realloc(*buf, *cap);
    }
}

int st_writer_write(st_writer *w, const char *path, char *err, size_t err_len) {
    size_t cap = 4096, len = 0;
    char *h = malloc(cap);
    buf_printf(&h, &len, &cap, "{");
    if (w->nmeta) {
        buf_printf(&h, &len, &cap, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) buf_printf(&h, &len, &cap, ",");
            buf_json_string(&h, &len, &cap, w->mk[i]);
            buf_printf(&h, &len, &cap, ":");
            buf_json_string(&h, &len, &cap, w->mv[i]);
        }
        buf_printf(&h, &len, &cap, "}");
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        st_entry *e = &w->e[i];
        if (i || w->nmeta) buf_printf(&h, &len, &cap, ",");
        buf_json_string(&h, &len, &cap, e->name);
        buf_printf(&h, &len, &cap, ":{\"dtype\":\"%s\",\"shape\":[", e->dtype);
        for (int d = 0; d < e->ndim; d++)
            buf_printf(&h, &len, &cap, "%s%" PRId64, d ? "," : "", e->shape[d]);
        buf_printf(&h, &len, &cap, "],\"data_offsets\":[%zu,%zu]}", off, off + e->nbytes);
        off += e->nbytes;
    }
    buf_printf(&h, &len, &cap, "}");
    while (len % 8) buf_printf(&h, &len, &cap, " ");  /* keep the data 8-byte aligned */
    uint8_t hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (uint8_t)((uint64_t)len >> (8 * i));
    int nparts = 2 + w->n;
    const void **parts = malloc((size_t)nparts * sizeof *parts);
    size_t *lens = malloc((size_t)nparts * sizeof *lens);
    parts[0] = hl; lens[0] = 8;
    parts[1] = h; lens[1] = len;
    for (int i = 0; i < w->n; i++) { parts[2 + i] = w->e[i].data; lens[2 + i] = w->e[i].nbytes; }
    int rc = atomic_write(path, parts, lens, nparts, err, err_len);
    free(parts);
    free(lens);
    free(h);
    return rc;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->e[i].name); free(w->e[i].owned); }
    for (int i = 0; i < w->nmeta; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}
