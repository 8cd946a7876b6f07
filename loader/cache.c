/* loader/cache.c — the decoded image set and its cache file (see cache.h). */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "atomic.h"
#include "image.h"

enum {
    CACHE_VERSION = 1,
    CACHE_HEADER_BYTES = 4096,       /* the header; sections start on 4096-byte boundaries */
    CACHE_WHY_LEN = 96,              /* longest stored reason, with its NUL */
};
static const char CACHE_MAGIC[8] = {'D', 'A', 'T', 'H', 'C', 'C', 'H', '1'};

typedef struct cache_header {
    char magic[8];
    uint32_t version, byte_order;    /* byte_order = 0x01020304 as written */
    uint32_t R, pad0;
    uint64_t n, key;
    uint64_t status_off, pixels_off, pixels_bytes, why_off, why_bytes, total_bytes;
    char transform[512];
    char list[1024];
} cache_header;

/* ---- the key ------------------------------------------------------------------- */

static const uint64_t FNV_OFFSET = 0xcbf29ce484222325ull, FNV_PRIME = 0x100000001b3ull;

static uint64_t cache_fnv(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* Key over the list's bytes, every image's path/size/mtime, R, the transform and the
 * pixel limit.
 * Returns 0, or -1 with a message (the list file cannot be read). */
static int cache_key(const dath_list *l, int R, int64_t max_pixels, uint64_t *key, char *err, size_t err_len) {
    uint64_t h = FNV_OFFSET;
    const char *tag = "dath decoded-image cache";
    h = cache_fnv(h, tag, strlen(tag) + 1);
    const char *tid = image_transform_id();
    h = cache_fnv(h, tid, strlen(tid) + 1);
    int32_t r32 = R;
    h = cache_fnv(h, &r32, sizeof r32);
    h = cache_fnv(h, &max_pixels, sizeof max_pixels);   /* which images the limit refuses */
    FILE *f = fopen(l->file, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot read the list for the cache key: %s", l->file, strerror(errno));
        return -1;
    }
    unsigned char buf[1 << 16];
    size_t got;
    uint64_t total = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        h = cache_fnv(h, buf, got);
        total += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, err_len, "%s: read error while hashing the list", l->file);
        return -1;
    }
    h = cache_fnv(h, &total, sizeof total);
    for (int i = 0; i < l->n; i++) {
        struct stat st;
        int64_t id[3] = {-1, -1, -1};   /* size, mtime s, mtime ns; -1 for a missing file */
        if (stat(l->paths[i], &st) == 0) {
            id[0] = (int64_t)st.st_size;
            id[1] = (int64_t)st.st_mtim.tv_sec;
            id[2] = (int64_t)st.st_mtim.tv_nsec;
        }
        h = cache_fnv(h, l->paths[i], strlen(l->paths[i]) + 1);
        h = cache_fnv(h, id, sizeof id);
    }
    *key = h;
    return 0;
}

/* DIR/<list name>-r<R>-<hash of the list's absolute path>.dcache */
static char *cache_file_name(const char *dir, const char *list_file, int R) {
    char abs[PATH_MAX];
    const char *who = realpath(list_file, abs) ? abs : list_file;
    uint64_t h = cache_fnv(FNV_OFFSET, who, strlen(who));
    char *copy = strdup(list_file);
    if (!copy) return NULL;
    char base[128];
    const char *b = basename(copy);
    size_t k = 0;
    for (; *b && k + 1 < sizeof base; b++)
        base[k++] = (char)((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z') ||
                           (*b >= '0' && *b <= '9') || *b == '-' || *b == '_' || *b == '.' ? *b : '_');
    base[k] = 0;
    free(copy);
    char *dot = strrchr(base, '.');
    if (dot && dot != base) *dot = 0;
    size_t len = strlen(dir) + strlen(base) + 64;
    char *name = malloc(len);
    if (name) snprintf(name, len, "%s/%s-r%d-%08x.dcache", dir, base, R, (unsigned)(h & 0xffffffffu));
    return name;
}

static size_t cache_round_up(size_t x) {
    return (x + CACHE_HEADER_BYTES - 1) / CACHE_HEADER_BYTES * CACHE_HEADER_BYTES;
}

/* ---- statuses -------------------------------------------------------------------- */

int cache_status(const dath_cache *c, int i) {
    return __atomic_load_n(&c->status[i], __ATOMIC_ACQUIRE);
}

static void cache_set_status(dath_cache *c, int i, int st) {
    __atomic_store_n(&c->status[i], (uint8_t)st, __ATOMIC_RELEASE);
}

int cache_complete(const dath_cache *c) {
    for (int i = 0; i < c->n; i++)
        if (cache_status(c, i) == CACHE_UNKNOWN) return 0;
    return 1;
}

/* Number of images with status CACHE_BAD. */
static int cache_bad_count(const dath_cache *c) {
    int bad = 0;
    for (int i = 0; i < c->n; i++) bad += cache_status(c, i) == CACHE_BAD;
    return bad;
}

/* ---- loading the file ------------------------------------------------------------ */

/* Parses the reasons section ("index\treason\n" lines) into c->why. Reads only inside
 * text [len] (the mapped file: not NUL-terminated). */
static int cache_parse_why(dath_cache *c, const char *text, size_t len) {
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) return -1;
        const char *tab = p;
        long i = 0;
        while (tab < eol && *tab >= '0' && *tab <= '9' && i <= c->n) i = i * 10 + (*tab++ - '0');
        if (tab == p || tab >= eol || *tab != '\t' || i >= c->n) return -1;
        free(c->why[i]);
        c->why[i] = strndup(tab + 1, (size_t)(eol - tab - 1));
        if (!c->why[i]) return -1;
        p = eol + 1;
    }
    return 0;
}

/* The sections lie inside the file, in order, without overlapping the header or each
 * other: header | status [n] | … | pixels [pix] | … | reasons [why_bytes] (end = file
 * size). Every sum is checked against the file size before it is formed, so that no
 * offset + length can wrap around 2^64. */
static int cache_sections_fit(const cache_header *hd, uint64_t file_size, uint64_t n, uint64_t pix) {
    if (hd->total_bytes != file_size || hd->pixels_bytes != pix) return 0;
    if (hd->status_off < CACHE_HEADER_BYTES || hd->status_off > file_size || n > file_size - hd->status_off) return 0;
    if (hd->pixels_off < hd->status_off + n || hd->pixels_off > file_size || pix > file_size - hd->pixels_off) return 0;
    if (hd->why_off < hd->pixels_off + pix || hd->why_off > file_size || hd->why_bytes != file_size - hd->why_off)
        return 0;
    return 1;
}

/* Maps a valid cache file. Returns 1 when loaded, 0 when absent or stale (note says
 * which). Never fails the run: an unreadable file is reported as stale. */
static int cache_load(dath_cache *c) {
    int fd = open(c->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(c->note, sizeof c->note, "no cache file %s yet: it is written after the first pass", c->file);
        return 0;
    }
    cache_header hd;
    struct stat st;
    size_t pix = (size_t)c->n * (size_t)c->R * (size_t)c->R * 3;
    const char *stale = NULL;
    if (fstat(fd, &st) != 0 || pread(fd, &hd, sizeof hd, 0) != (ssize_t)sizeof hd) stale = "unreadable header";
    else if (memcmp(hd.magic, CACHE_MAGIC, 8) != 0) stale = "not a dath cache file";
    else if (hd.version != CACHE_VERSION || hd.byte_order != 0x01020304u) stale = "another format version";
    else if (hd.R != (uint32_t)c->R || hd.n != (uint64_t)c->n) stale = "made for another image count or size";
    else if (hd.key != c->key) stale = "made for another list content, other image files or another transform";
    else if (!cache_sections_fit(&hd, (uint64_t)st.st_size, (uint64_t)c->n, pix))
        stale = "incomplete or inconsistent";
    void *map = MAP_FAILED;
    if (!stale) {
        map = mmap(NULL, (size_t)hd.total_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) stale = "cannot be mapped";
    }
    close(fd);
    if (!stale) {
        const uint8_t *status = (const uint8_t *)map + hd.status_off;
        for (int i = 0; i < c->n && !stale; i++)
            if (status[i] != CACHE_OK && status[i] != CACHE_BAD) stale = "holds an unknown image status";
        if (!stale && cache_parse_why(c, (const char *)map + hd.why_off, (size_t)hd.why_bytes))
            stale = "has a broken reasons section";
        if (!stale) {
            free(c->pixels);
            c->pixels = (uint8_t *)map + hd.pixels_off;
            c->map = map;
            c->map_len = (size_t)hd.total_bytes;
            for (int i = 0; i < c->n; i++) {
                if (status[i] == CACHE_BAD && !c->why[i]) c->why[i] = strdup("bad image");
                cache_set_status(c, i, status[i]);
            }
            c->loaded = 1;
            snprintf(c->note, sizeof c->note, "read decoded images from cache file %s (%d bad)",
                     c->file, cache_bad_count(c));
            return 1;
        }
        munmap(map, (size_t)hd.total_bytes);
        for (int i = 0; i < c->n; i++) { free(c->why[i]); c->why[i] = NULL; }
    }
    snprintf(c->note, sizeof c->note, "cache file %s is stale (%s): it will be rebuilt", c->file, stale);
    return 0;
}

/* ---- creation -------------------------------------------------------------------- */

dath_cache *cache_create(const dath_list *l, int R, int64_t max_pixels, const char *dir, char *err, size_t err_len) {
    if (!l || l->n < 1 || R < 1) {
        snprintf(err, err_len, "cache: no images or bad size %d", R);
        return NULL;
    }
    dath_cache *c = calloc(1, sizeof *c);
    size_t pix = (size_t)l->n * (size_t)R * (size_t)R * 3;
    if (!c) goto oom;
    c->n = l->n;
    c->R = R;
    c->max_pixels = max_pixels > 0 ? max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    c->status = calloc((size_t)l->n, 1);
    c->why = calloc((size_t)l->n, sizeof *c->why);
    c->pixels = calloc(pix, 1);   /* lazily committed; bad images stay zero */
    if (!c->status || !c->why || !c->pixels) goto oom;
    if (dir) {
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            snprintf(err, err_len, "%s: cannot make the cache directory: %s", dir, strerror(errno));
            cache_free(c);
            return NULL;
        }
        if (cache_key(l, R, c->max_pixels, &c->key, err, err_len)) {
            cache_free(c);
            return NULL;
        }
        c->file = cache_file_name(dir, l->file, R);
        if (!c->file) goto oom;
        c->list_file = strdup(l->file);
        if (!c->list_file) goto oom;
        uint64_t stale_bytes = 0;
        int stale_tmp = atomic_remove_stale(c->file, &stale_bytes);
        if (!cache_load(c)) {
            /* it will be written after the first pass: room for it is checked now */
            uint64_t need = cache_round_up(CACHE_HEADER_BYTES + (size_t)l->n) + pix + (uint64_t)l->n * 16;
            struct statvfs vs;
            if (statvfs(dir, &vs) == 0 && (uint64_t)vs.f_bavail * vs.f_frsize < need) {
                snprintf(err, err_len, "%s: %.1f MiB free, the decoded-image cache file needs %.1f MiB (--cache: "
                         "free some space or give another directory)", dir,
                         (double)vs.f_bavail * vs.f_frsize / (1 << 20), (double)need / (1 << 20));
                cache_free(c);
                return NULL;
            }
        }
        if (stale_tmp) {
            size_t at = strlen(c->note);
            snprintf(c->note + at, sizeof c->note - at, "; removed %d temporary file%s (%.1f MiB) left by killed runs",
                     stale_tmp, stale_tmp == 1 ? "" : "s", (double)stale_bytes / (1 << 20));
        }
    }
    return c;
oom:
    snprintf(err, err_len, "%s: out of memory for the decoded images (%d x %d x %d x 3 = %.2f GiB)",
             l ? l->file : "cache", l ? l->n : 0, R, R, (double)pix / (1 << 30));
    cache_free(c);
    return NULL;
}

/* ---- decoding -------------------------------------------------------------------- */

int cache_decode(dath_cache *c, const dath_list *l, int i) {
    int st = cache_status(c, i);
    if (st != CACHE_UNKNOWN) return st;
    size_t unit = (size_t)c->R * (size_t)c->R * 3;
    uint8_t *out = c->pixels + (size_t)i * unit;   /* [R, R, 3] */
    char why[CACHE_WHY_LEN];
    if (image_load(l->paths[i], c->R, c->max_pixels, out, why, sizeof why) == 0) {
        cache_set_status(c, i, CACHE_OK);
        return CACHE_OK;
    }
    memset(out, 0, unit);
    c->why[i] = strdup(why);   /* NULL when out of memory: reported as "bad image" */
    cache_set_status(c, i, CACHE_BAD);
    return CACHE_BAD;
}

typedef struct cache_fill_job {
    dath_cache *c;
    const dath_list *l;
    int next;            /* next image to claim (atomic) */
} cache_fill_job;

static void *cache_fill_worker(void *arg) {
    cache_fill_job *job = arg;
    for (;;) {
        int i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (i >= job->c->n) break;
        cache_decode(job->c, job->l, i);
    }
    return NULL;
}

int cache_fill(dath_cache *c, const dath_list *l, int workers, char *err, size_t err_len) {
    if (workers <= 0) workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    if (workers > c->n) workers = c->n;
    cache_fill_job job = {c, l, 0};
    pthread_t *tid = calloc((size_t)workers, sizeof *tid);
    if (!tid) {
        snprintf(err, err_len, "cache: out of memory for %d threads", workers);
        return -1;
    }
    int started = 0;
    sigset_t all, old;   /* helpers block signals: they reach the calling thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int w = 1; w < workers; w++)
        if (pthread_create(&tid[started], NULL, cache_fill_worker, &job) == 0) started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cache_fill_worker(&job);   /* this thread works too */
    for (int w = 0; w < started; w++) pthread_join(tid[w], NULL);
    free(tid);
    return cache_bad_count(c);
}

/* ---- saving ---------------------------------------------------------------------- */

int cache_save(dath_cache *c, const int *cancel, char *err, size_t err_len) {
    if (!c->file) {
        snprintf(err, err_len, "cache: no cache directory was given");
        return -1;
    }
    if (!cache_complete(c)) {
        snprintf(err, err_len, "%s: not every image is decoded yet", c->file);
        return -1;
    }
    /* the reasons section */
    size_t why_cap = 1, why_len = 0;
    for (int i = 0; i < c->n; i++)
        if (cache_status(c, i) == CACHE_BAD) why_cap += 16 + CACHE_WHY_LEN;
    char *why = malloc(why_cap);
    uint8_t *status = malloc((size_t)c->n);
    if (!why || !status) {
        free(why);
        free(status);
        snprintf(err, err_len, "%s: out of memory", c->file);
        return -1;
    }
    for (int i = 0; i < c->n; i++) {
        status[i] = (uint8_t)cache_status(c, i);
        if (status[i] != CACHE_BAD) continue;
        const char *r = c->why[i] ? c->why[i] : "bad image";
        int w = snprintf(why + why_len, why_cap - why_len, "%d\t%.*s\n", i, CACHE_WHY_LEN - 1, r);
        for (int k = 0; k < w - 1; k++)   /* keep the line format: no newline inside */
            if (why[why_len + (size_t)k] == '\n') why[why_len + (size_t)k] = ' ';
        why_len += (size_t)w;
    }
    size_t pix = (size_t)c->n * (size_t)c->R * (size_t)c->R * 3;
    cache_header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, CACHE_MAGIC, 8);
    hd.version = CACHE_VERSION;
    hd.byte_order = 0x01020304u;
    hd.R = (uint32_t)c->R;
    hd.n = (uint64_t)c->n;
    hd.key = c->key;
    hd.status_off = CACHE_HEADER_BYTES;
    hd.pixels_off = cache_round_up(CACHE_HEADER_BYTES + (size_t)c->n);
    hd.pixels_bytes = pix;
    hd.why_off = hd.pixels_off + pix;
    hd.why_bytes = why_len;
    hd.total_bytes = hd.why_off + why_len;
    snprintf(hd.transform, sizeof hd.transform, "%s", image_transform_id());
    snprintf(hd.list, sizeof hd.list, "%s", c->list_file);
    unsigned char head[CACHE_HEADER_BYTES];
    memset(head, 0, sizeof head);
    memcpy(head, &hd, sizeof hd);
    size_t pad = (size_t)hd.pixels_off - CACHE_HEADER_BYTES - (size_t)c->n;
    unsigned char *zeros = calloc(pad + 1, 1);
    int rc = -1;
    if (!zeros) {
        snprintf(err, err_len, "%s: out of memory", c->file);
        goto done;
    }
    const void *parts[5] = {head, status, zeros, c->pixels, why};
    const size_t lens[5] = {sizeof head, (size_t)c->n, pad, pix, why_len};
    char aerr[512];
    if (atomic_write_cancel(c->file, parts, lens, 5, cancel, aerr, sizeof aerr)) {
        snprintf(err, err_len, "%s: cannot write the cache file: %s", c->file, aerr);
        goto done;
    }
    rc = 0;
    snprintf(c->note, sizeof c->note, "wrote cache file %s (%.1f MiB, %d bad images)", c->file,
             (double)hd.total_bytes / (1 << 20), cache_bad_count(c));
done:
    free(zeros);
    free(why);
    free(status);
    return rc;
}

void cache_free(dath_cache *c) {
    if (!c) return;
    if (c->map) munmap(c->map, c->map_len);
    else free(c->pixels);
    if (c->why)
        for (int i = 0; i < c->n; i++) free(c->why[i]);
    free(c->why);
    free(c->status);
    free(c->file);
    free(c->list_file);
    free(c);
}
