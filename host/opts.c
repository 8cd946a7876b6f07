/* host/opts.c — the option table parser (see opts.h). */
#include "opts.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const opt_spec *opts_find(const opt_spec *spec, const char *name, size_t len) {
    for (const opt_spec *o = spec; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

/* 1 when text is a decimal number: [+-]digits[.digits][(e|E)[+-]digits] (or .digits). */
static int opts_decimal(const char *t, int integer) {
    if (*t == '+' || *t == '-') t++;
    int digits = 0;
    while (*t >= '0' && *t <= '9') { t++; digits++; }
    if (!integer && *t == '.') {
        t++;
        while (*t >= '0' && *t <= '9') { t++; digits++; }
    }
    if (!digits) return 0;
    if (!integer && (*t == 'e' || *t == 'E')) {
        t++;
        if (*t == '+' || *t == '-') t++;
        if (!(*t >= '0' && *t <= '9')) return 0;
        while (*t >= '0' && *t <= '9') t++;
    }
    return *t == 0;
}

/* The range of flags: 0 when v is inside it, else -1 with a message. */
static int opts_range(const opt_spec *o, const char *text, double v, char *err, size_t err_len) {
    if ((o->flags & OPT_POSITIVE) && !(v > 0)) {
        snprintf(err, err_len, "--%s: '%s' must be greater than 0", o->name, text);
        return -1;
    }
    if ((o->flags & OPT_NONNEG) && !(v >= 0)) {
        snprintf(err, err_len, "--%s: '%s' must be 0 or more", o->name, text);
        return -1;
    }
    return 0;
}

/* "--name 'text': expected a, b or c". Returns -1. */
static int opts_choices_error(const opt_spec *o, const char *text, char *err, size_t err_len) {
    int n = 0, at = snprintf(err, err_len, "--%s '%s': expected ", o->name, text);
    while (o->choices[n]) n++;
    for (int i = 0; i < n && at > 0 && (size_t)at < err_len; i++)
        at += snprintf(err + at, err_len - (size_t)at, "%s%s", o->choices[i],
                       i + 2 < n ? ", " : i + 2 == n ? " or " : "");
    return -1;
}

/* Stores text into the option's variable. Returns 0, or -1 with a message. */
static int opts_set(const opt_spec *o, const char *text, char *err, size_t err_len) {
    char *end = NULL;
    errno = 0;
    if ((o->type == OPT_INT || o->type == OPT_U64 || o->type == OPT_FLOAT) &&
        !opts_decimal(text, o->type != OPT_FLOAT))
        goto bad;
    switch (o->type) {
    case OPT_STR:
        *(const char **)o->ptr = text;
        return 0;
    case OPT_FLAG:
        *(int *)o->ptr = text ? atoi(text) != 0 : 1;
        return 0;
    case OPT_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < -2147483647L || v > 2147483647L) break;
        if (opts_range(o, text, (double)v, err, err_len)) return -1;
        *(int *)o->ptr = (int)v;
        return 0;
    }
    case OPT_U64: {
        if (text[0] == '-') break;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end) break;
        if (opts_range(o, text, (double)v, err, err_len)) return -1;
        *(uint64_t *)o->ptr = (uint64_t)v;
        return 0;
    }
    case OPT_FLOAT: {
        float v = strtof(text, &end);
        if (errno || end == text || *end || !isfinite(v)) break;
        if (opts_range(o, text, (double)v, err, err_len)) return -1;
        *(float *)o->ptr = v;
        return 0;
    }
    case OPT_LIST: {
        opt_list *l = o->ptr;
        const char **v = realloc(l->v, (size_t)(l->n + 1) * sizeof *v);
        if (!v) {
            snprintf(err, err_len, "--%s: out of memory", o->name);
            return -1;
        }
        v[l->n++] = text;
        l->v = v;
        return 0;
    }
    case OPT_ENUM:
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(text, o->choices[i])) {
                *(int *)o->ptr = i;
                return 0;
            }
        return opts_choices_error(o, text, err, err_len);
    }
bad:;
    static const char *what[] = {"text", "an integer", "a non-negative integer", "a number", "a flag", "a choice", "text"};
    snprintf(err, err_len, "--%s: '%s' is not %s", o->name, text, what[o->type]);
    return -1;
}

int opts_parse(const char *cmd, const char *synopsis, const opt_spec *spec, int argc,
               char **argv, char **positional, int max_pos, int *npos, char *err,
               size_t err_len) {
    int seen[128] = {0};
    int n = 0;
    for (const opt_spec *o = spec; o->name; o++)
        if (o->def && opts_set(o, o->def, err, err_len)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            opts_usage(stdout, cmd, synopsis, spec);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (n >= max_pos) {
                snprintf(err, err_len, "unexpected argument '%s' (see %s --help)", a, cmd);
                return -1;
            }
            positional[n++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_spec *o = opts_find(spec, name, len);
        if (!o) {
            snprintf(err, err_len, "unknown option '--%.*s' (see %s --help)", (int)len, name, cmd);
            return -1;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (o->type != OPT_FLAG && !val) {
            if (i + 1 >= argc) {
                snprintf(err, err_len, "--%s needs a value", o->name);
                return -1;
            }
            val = argv[++i];
        }
        if (opts_set(o, val, err, err_len)) return -1;
        /* a list also takes every argument after its first value up to the next --option */
        while (o->type == OPT_LIST && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            if (opts_set(o, argv[++i], err, err_len)) return -1;
        seen[o - spec < 128 ? o - spec : 127] = 1;
    }
    for (const opt_spec *o = spec; o->name; o++) {
        if ((o->flags & OPT_REQUIRED) && !seen[o - spec] && !o->def) {
            snprintf(err, err_len, "--%s is required (see %s --help)", o->name, cmd);
            return -1;
        }
    }
    if (npos) *npos = n;
    return 0;
}

void opts_usage(FILE *f, const char *cmd, const char *synopsis, const opt_spec *spec) {
    fprintf(f, "usage: %s %s\n\noptions:\n", cmd, synopsis ? synopsis : "[options]");
    static const char *meta[] = {"TEXT", "N", "N", "X", "", "NAME", "TEXT..."};
    for (const opt_spec *o = spec; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", o->name, meta[o->type]);
        fprintf(f, "  %-24s %s", left, o->help ? o->help : "");
        if (o->type == OPT_ENUM) {
            fprintf(f, " (");
            for (int i = 0; o->choices[i]; i++) fprintf(f, "%s%s", i ? ", " : "", o->choices[i]);
            fprintf(f, ")");
        }
        const char *range = (o->flags & OPT_POSITIVE) ? "> 0" : (o->flags & OPT_NONNEG) ? ">= 0" : NULL;
        if (o->flags & OPT_REQUIRED) fprintf(f, " (required%s%s)", range ? ", " : "", range ? range : "");
        else if (o->def && *o->def && o->type != OPT_FLAG)
            fprintf(f, " (default %s%s%s)", o->def, range ? "; " : "", range ? range : "");
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "--help", "print this help");
}

int opts_to_json(const opt_spec *spec, int mask, char *buf, size_t len) {
    size_t at = 0;
    int w = snprintf(buf, len, "{");
    if (w < 0 || (size_t)w >= len) return -1;
    at = (size_t)w;
    for (const opt_spec *o = spec; o->name; o++) {
        if (mask && !(o->flags & mask)) continue;
        const char *sep = at == 1 ? "" : ",";
        switch (o->type) {
        case OPT_STR: {
            const char *s = *(const char **)o->ptr;
            if (!s) { w = snprintf(buf + at, len - at, "%s\"%s\":null", sep, o->name); break; }
            w = snprintf(buf + at, len - at, "%s\"%s\":\"", sep, o->name);
            if (w < 0 || (size_t)w >= len - at) return -1;
            at += (size_t)w;
            for (; *s; s++) {  /* escape quotes, backslashes and control characters */
                if (at + 8 >= len) return -1;
                if (*s == '"' || *s == '\\') { buf[at++] = '\\'; buf[at++] = *s; }
                else if ((unsigned char)*s < 0x20) at += (size_t)snprintf(buf + at, len - at, "\\u%04x", *s);
                else buf[at++] = *s;
            }
            w = snprintf(buf + at, len - at, "\"");
            break;
        }
        case OPT_INT: w = snprintf(buf + at, len - at, "%s\"%s\":%d", sep, o->name, *(int *)o->ptr); break;
        case OPT_FLAG: w = snprintf(buf + at, len - at, "%s\"%s\":%s", sep, o->name, *(int *)o->ptr ? "true" : "false"); break;
        case OPT_U64: w = snprintf(buf + at, len - at, "%s\"%s\":%" PRIu64, sep, o->name, *(uint64_t *)o->ptr); break;
        case OPT_FLOAT: w = snprintf(buf + at, len - at, "%s\"%s\":%.9g", sep, o->name, (double)*(float *)o->ptr); break;
        case OPT_ENUM: w = snprintf(buf + at, len - at, "%s\"%s\":\"%s\"", sep, o->name, o->choices[*(int *)o->ptr]); break;
        case OPT_LIST: {   /* an array of strings, escaped as OPT_STR's */
            const opt_list *l = o->ptr;
            w = snprintf(buf + at, len - at, "%s\"%s\":[", sep, o->name);
            for (int k = 0; k < l->n && w >= 0 && (size_t)w < len - at; k++) {
                at += (size_t)w;
                w = snprintf(buf + at, len - at, "%s\"", k ? "," : "");
                if (w < 0 || (size_t)w >= len - at) return -1;
                at += (size_t)w;
                for (const char *s = l->v[k]; *s; s++) {
                    if (at + 8 >= len) return -1;
                    if (*s == '"' || *s == '\\') { buf[at++] = '\\'; buf[at++] = *s; }
                    else if ((unsigned char)*s < 0x20) at += (size_t)snprintf(buf + at, len - at, "\\u%04x", *s);
                    else buf[at++] = *s;
                }
                w = snprintf(buf + at, len - at, "\"");
            }
            if (w < 0 || (size_t)w >= len - at) return -1;
            at += (size_t)w;
            w = snprintf(buf + at, len - at, "]");
            break;
        }
        }
        if (w < 0 || (size_t)w >= len - at) return -1;
        at += (size_t)w;
    }
    w = snprintf(buf + at, len - at, "}");
    if (w < 0 || (size_t)w >= len - at) return -1;
    return (int)(at + (size_t)w);
}

int opts_to_args(const opt_spec *spec, int mask, char *buf, size_t len) {
    size_t at = 0;
    if (len) buf[0] = 0;
    for (const opt_spec *o = spec; o->name; o++) {
        if (mask && !(o->flags & mask)) continue;
        const char *sep = at ? "\t" : "";
        int w = 0;
        switch (o->type) {
        case OPT_STR: {
            const char *s = *(const char **)o->ptr;
            if (!s) continue;
            w = snprintf(buf + at, len - at, "%s--%s\t%s", sep, o->name, s);
            break;
        }
        case OPT_FLAG:
            if (!*(int *)o->ptr) continue;
            w = snprintf(buf + at, len - at, "%s--%s", sep, o->name);
            break;
        case OPT_INT: w = snprintf(buf + at, len - at, "%s--%s\t%d", sep, o->name, *(int *)o->ptr); break;
        case OPT_U64: w = snprintf(buf + at, len - at, "%s--%s\t%" PRIu64, sep, o->name, *(uint64_t *)o->ptr); break;
        case OPT_FLOAT: w = snprintf(buf + at, len - at, "%s--%s\t%.9g", sep, o->name, (double)*(float *)o->ptr); break;
        case OPT_ENUM: w = snprintf(buf + at, len - at, "%s--%s\t%s", sep, o->name, o->choices[*(int *)o->ptr]); break;
        case OPT_LIST: {   /* --name v1 v2 ...: read back as one list */
            const opt_list *l = o->ptr;
            if (!l->n) continue;
            w = snprintf(buf + at, len - at, "%s--%s", sep, o->name);
            for (int k = 0; k < l->n && w >= 0 && (size_t)w < len - at; k++) {
                at += (size_t)w;
                w = snprintf(buf + at, len - at, "\t%s", l->v[k]);
            }
            break;
        }
        }
        if (w < 0 || (size_t)w >= len - at) return -1;
        at += (size_t)w;
    }
    return (int)at;
}

void opt_list_free(opt_list *l) {
    if (!l) return;
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
