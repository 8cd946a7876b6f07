/* host/rendezvous.c — the rendezvous file of the environment bootstrap (see rendezvous.h). */
#include "rendezvous.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../loader/atomic.h"
#include "clock.h"

#define RDV_MAGIC "dath-rendezvous 1"
#define RDV_NONCE 32   /* hex digits: 128 bits */

/* A fresh nonce: 128 bits from the kernel's generator (getrandom), else from the clock
 * and the process id (never the same twice in one machine's lifetime of pids). */
static void rdv_nonce(char out[RDV_NONCE + 1]) {
    unsigned char b[RDV_NONCE / 2];
    ssize_t got = getrandom(b, sizeof b, 0);
    if (got != (ssize_t)sizeof b) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        unsigned long long x = (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
        unsigned long long y = ((unsigned long long)getpid() << 32) ^ (unsigned long long)clock();
        memcpy(b, &x, 8);
        memcpy(b + 8, &y, 8);
    }
    for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The whole file, NUL-terminated (malloc'd), or NULL when it cannot be read. */
static char *rdv_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (;;) {
        if (!s) break;
        if (n + 1 >= cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) { free(s); s = NULL; break; }
            s = t;
        }
        size_t k = fread(s + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    if (s) s[n] = 0;
    return s;
}

static int rdv_write(const char *path, const char *text, char *err, size_t err_len) {
    const void *parts[1] = {text};
    size_t lens[1] = {strlen(text)};
    return atomic_write(path, parts, lens, 1, err, err_len);
}

/* "P.join.R" or "P.ack.R" */
static void rdv_name(char *out, size_t len, const char *path, const char *what, int r) {
    snprintf(out, len, "%s.%s.%d", path, what, r);
}

/* Reads P.KIND.R and gives its nonce (RDV_NONCE + 1 bytes) when the file is a whole one
 * of rank r in a world of `world`. Returns 1 then, 0 otherwise (missing, another world:
 * *other_world set). */
static int rdv_read_nonce(const char *path, const char *kind, int r, int world, char *nonce, int *other_world) {
    char name[4200];
    rdv_name(name, sizeof name, path, kind, r);
    char *s = rdv_read(name);
    if (!s) return 0;
    char magic_kind[16];
    int fr = -1, fw = -1;
    char nc[RDV_NONCE + 8] = "";
    int ok = 0;
    size_t ml = strlen(RDV_MAGIC);
    if (!strncmp(s, RDV_MAGIC " ", ml + 1)) {
        if (!strcmp(kind, "join"))
            ok = sscanf(s + ml + 1, "%15s %d %d %40s", magic_kind, &fr, &fw, nc) == 4 && !strcmp(magic_kind, "join");
        else
            ok = sscanf(s + ml + 1, "%15s %d %40s", magic_kind, &fr, nc) == 3 && !strcmp(magic_kind, "ack");
    }
    free(s);
    if (!ok || fr != r || strlen(nc) != RDV_NONCE) return 0;
    if (!strcmp(kind, "join") && fw != world) {
        if (other_world) *other_world = fw;
        return 0;
    }
    memcpy(nonce, nc, RDV_NONCE + 1);
    return 1;
}

static void rdv_sleep(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* "r1, r2, r3" of the ranks flagged in miss[1..world), at most 12 named */
static void rdv_list(char *out, size_t len, const unsigned char *miss, int world) {
    size_t at = 0;
    int named = 0, more = 0;
    out[0] = 0;
    for (int r = 1; r < world; r++) {
        if (!miss[r]) continue;
        if (named == 12) { more++; continue; }
        at += (size_t)snprintf(out + at, at < len ? len - at : 0, "%s%d", named ? ", " : "", r);
        if (at >= len) at = len - 1;
        named++;
    }
    if (more) snprintf(out + at, at < len ? len - at : 0, " and %d more", more);
}

static int rdv_rank0(const char *path, int world, const void *blob, size_t len, double timeout_s, char *err,
                     size_t err_len) {
    char name[4200], mine[RDV_NONCE + 1];
    rdv_nonce(mine);
    /* stale files of an earlier run: the main file and the acks (this run has none yet) */
    unlink(path);
    for (int r = 1; r < world; r++) {
        rdv_name(name, sizeof name, path, "ack", r);
        unlink(name);
    }
    char (*joined)[RDV_NONCE + 1] = calloc((size_t)world, sizeof *joined);     /* [world] nonces read */
    char (*published)[RDV_NONCE + 1] = calloc((size_t)world, sizeof *published); /* [world] in P */
    unsigned char *miss = calloc((size_t)world, 1);                           /* [world] */
    size_t text_len = strlen(RDV_MAGIC) + 32 + (size_t)world * (RDV_NONCE + 1) + 2 * len + 8;
    char *text = malloc(text_len);
    int rc = -1, have_published = 0, other_world = 0;
    if (!joined || !published || !miss || !text) {
        snprintf(err, err_len, "rank 0: %s: out of memory", path);
        goto out;
    }
    double t0 = dath_now(), nap = 0.01;
    for (;;) {
        int all_joined = 1;
        for (int r = 1; r < world; r++) {
            miss[r] = !rdv_read_nonce(path, "join", r, world, joined[r], &other_world);
            if (miss[r]) all_joined = 0;
        }
        if (all_joined) {
            int changed = !have_published;
            for (int r = 1; r < world && !changed; r++) changed = strcmp(joined[r], published[r]) != 0;
            if (changed) {
                size_t at = (size_t)snprintf(text, text_len, "%s run %d %s", RDV_MAGIC, world, mine);
                for (int r = 1; r < world; r++) at += (size_t)snprintf(text + at, text_len - at, " %s", joined[r]);
                text[at++] = ' ';
                for (size_t i = 0; i < len; i++) at += (size_t)snprintf(text + at, text_len - at, "%02x", ((const unsigned char *)blob)[i]);
                snprintf(text + at, text_len - at, "\n");
                if (rdv_write(path, text, err, err_len)) goto out;
                memcpy(published, joined, (size_t)world * sizeof *joined);
                have_published = 1;
            }
            int all_acked = 1;
            for (int r = 1; r < world; r++) {
                char ack[RDV_NONCE + 1];
                miss[r] = !rdv_read_nonce(path, "ack", r, world, ack, NULL) || strcmp(ack, published[r]) != 0;
                if (miss[r]) all_acked = 0;
            }
            if (all_acked) { rc = 0; break; }
        }
        if (dath_now() - t0 > timeout_s) {
            char who[160];
            rdv_list(who, sizeof who, miss, world);
            if (!all_joined)
                snprintf(err, err_len, "rank 0: rendezvous %s: rank%s %s did not join within %g s (no %s.join.R of this "
                         "run%s)", path, strchr(who, ',') || strstr(who, "more") ? "s" : "", who, timeout_s, path,
                         other_world ? "; a join file of another DATH_WORLD was found" : "");
            else
                snprintf(err, err_len, "rank 0: rendezvous %s: rank%s %s did not read it within %g s (no %s.ack.R of "
                         "this run)", path, strchr(who, ',') || strstr(who, "more") ? "s" : "", who, timeout_s, path);
            break;
        }
        rdv_sleep(nap);
        if (nap < 0.2) nap *= 1.5;
    }
out:
    /* nothing of this run stays behind, whatever happened */
    unlink(path);
    for (int r = 1; r < world; r++) {
        rdv_name(name, sizeof name, path, "join", r);
        unlink(name);
        rdv_name(name, sizeof name, path, "ack", r);
        unlink(name);
    }
    free(joined);
    free(published);
    free(miss);
    free(text);
    return rc;
}

/* Parses P: the blob when it is this run's file for rank r (its nonce at r). */
static int rdv_parse_run(const char *s, int rank, int world, const char *mine, unsigned char *blob, size_t len,
                         int *foreign) {
    size_t ml = strlen(RDV_MAGIC);
    if (strncmp(s, RDV_MAGIC " run ", ml + 5)) return 0;
    const char *p = s + ml + 5;
    char *end;
    long w = strtol(p, &end, 10);
    if (end == p || w != world) { *foreign = 1; return 0; }
    p = end;
    for (int r = 0; r < world; r++) {
        while (*p == ' ') p++;
        if (strlen(p) < RDV_NONCE) return 0;
        if (r == rank && strncmp(p, mine, RDV_NONCE)) { *foreign = 1; return 0; }
        p += RDV_NONCE;
    }
    while (*p == ' ') p++;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (sscanf(p + 2 * i, "%2x", &v) != 1) return 0;
        blob[i] = (unsigned char)v;
    }
    return 1;
}

static int rdv_rank_r(const char *path, int rank, int world, void *blob, size_t len, double timeout_s, char *err,
                      size_t err_len) {
    char name[4200], mine[RDV_NONCE + 1], text[256];
    rdv_nonce(mine);
    rdv_name(name, sizeof name, path, "join", rank);
    snprintf(text, sizeof text, "%s join %d %d %s\n", RDV_MAGIC, rank, world, mine);
    if (rdv_write(name, text, err, err_len)) return -1;
    double t0 = dath_now(), nap = 0.01;
    int foreign = 0, rc = -1;
    unsigned char *got = malloc(len ? len : 1);
    for (;;) {
        char *s = rdv_read(path);
        int ok = s && rdv_parse_run(s, rank, world, mine, got, len, &foreign);
        free(s);
        if (ok) {
            rdv_name(name, sizeof name, path, "ack", rank);
            snprintf(text, sizeof text, "%s ack %d %s\n", RDV_MAGIC, rank, mine);
            if (rdv_write(name, text, err, err_len)) break;
            memcpy(blob, got, len);
            rc = 0;
            break;
        }
        if (dath_now() - t0 > timeout_s) {
            snprintf(err, err_len, "rank %d: rendezvous %s: rank 0 did not publish this run's file within %g s (%s)",
                     rank, path, timeout_s,
                     foreign ? "the file there is of another run, or DATH_WORLD differs" : "none was found");
            break;
        }
        rdv_sleep(nap);
        if (nap < 0.2) nap *= 1.5;
    }
    free(got);
    return rc;
}

int rdv_exchange(const char *path, int rank, int world, void *blob, size_t len, double timeout_s, char *err,
                 size_t err_len) {
    if (!path || !*path || world < 1 || rank < 0 || rank >= world || len > RDV_MAX_BLOB) {
        snprintf(err, err_len, "rank %d: rendezvous: bad arguments (path '%s', world %d, %zu bytes)", rank,
                 path ? path : "", world, len);
        return -1;
    }
    if (world == 1) return 0;
    return rank == 0 ? rdv_rank0(path, world, blob, len, timeout_s, err, err_len)
                     : rdv_rank_r(path, rank, world, blob, len, timeout_s, err, err_len);
}
