/* loader/atomic.c — atomic file writes and the cleanup of killed writers' temporaries
 * (see atomic.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* strerror_r returning char * */
#endif
#include "atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const size_t ATOMIC_CHUNK = (size_t)64 << 20;   /* bytes per write(): cancellation's grain */

typedef struct atomic_file {
    char *path, *tmp;
    int done;                 /* renamed */
} atomic_file;

struct atomic_group {
    int n, cap;
    atomic_file *f;
};

static const char *atomic_errno(char *buf, size_t len) { return strerror_r(errno, buf, len); }

/* fsync of the directory holding path, so that a rename in it is durable. */
static void atomic_sync_dir(const char *path) {
    char *dup = strdup(path);
    if (!dup) return;
    int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    free(dup);
}

/* Writes and fsyncs tmp (given up when *cancel, cancel not NULL, becomes non-zero). On
 * failure removes it. */
static int atomic_write_tmp(const char *tmp, const void *const *parts, const size_t *lens, int nparts,
                            const int *cancel, char *err, size_t err_len) {
    char eb[128];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot create: %s", tmp, atomic_errno(eb, sizeof eb));
        return -1;
    }
    for (int i = 0; i < nparts; i++) {
        const char *p = parts[i];
        size_t left = lens[i];
        while (left) {
            if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
                snprintf(err, err_len, "%s: cancelled", tmp);
                close(fd);
                unlink(tmp);
                return -1;
            }
            ssize_t n = write(fd, p, left > ATOMIC_CHUNK ? ATOMIC_CHUNK : left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n == 0) errno = EIO;
                snprintf(err, err_len, "%s: write failed: %s", tmp, atomic_errno(eb, sizeof eb));
                close(fd);
                unlink(tmp);
                return -1;
            }
            p += n;
            left -= (size_t)n;
        }
    }
    if (fsync(fd) || close(fd)) {
        snprintf(err, err_len, "%s: fsync/close failed: %s", tmp, atomic_errno(eb, sizeof eb));
        unlink(tmp);
        return -1;
    }
    return 0;
}

atomic_group *atomic_group_new(void) { return calloc(1, sizeof(atomic_group)); }

/* atomic_group_add, with a cancel flag (see atomic_write_cancel). */
static int atomic_group_add_cancel(atomic_group *g, const char *path, const void *const *parts,
                                   const size_t *lens, int nparts, const int *cancel, char *err,
                                   size_t err_len) {
    static int counter;   /* N of TARGET.tmp.PID.N: two writers of one process never share one */
    if (g->n == g->cap) {
        int nc = g->cap ? 2 * g->cap : 4;
        atomic_file *nf = realloc(g->f, (size_t)nc * sizeof *nf);
        if (!nf) { snprintf(err, err_len, "%s: out of memory", path); return -1; }
        g->f = nf;
        g->cap = nc;
    }
    size_t plen = strlen(path) + 32;
    atomic_file f = {strdup(path), malloc(plen), 0};
    if (!f.path || !f.tmp) {
        free(f.path);
        free(f.tmp);
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    snprintf(f.tmp, plen, "%s.tmp.%ld.%d", path, (long)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    if (atomic_write_tmp(f.tmp, parts, lens, nparts, cancel, err, err_len)) {
        free(f.path);
        free(f.tmp);
        return -1;
    }
    g->f[g->n++] = f;
    return 0;
}

int atomic_group_add(atomic_group *g, const char *path, const void *const *parts, const size_t *lens,
                     int nparts, char *err, size_t err_len) {
    return atomic_group_add_cancel(g, path, parts, lens, nparts, NULL, err, err_len);
}

int atomic_group_commit(atomic_group *g, char *err, size_t err_len) {
    char eb[128];
    for (int i = 0; i < g->n; i++) {
        if (rename(g->f[i].tmp, g->f[i].path)) {
            snprintf(err, err_len, "%s: cannot rename to %s: %s", g->f[i].tmp, g->f[i].path, atomic_errno(eb, sizeof eb));
            return -1;
        }
        g->f[i].done = 1;
    }
    for (int i = 0; i < g->n; i++) atomic_sync_dir(g->f[i].path);
    return 0;
}

void atomic_group_free(atomic_group *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        if (!g->f[i].done) unlink(g->f[i].tmp);
        free(g->f[i].path);
        free(g->f[i].tmp);
    }
    free(g->f);
    free(g);
}

int atomic_write_cancel(const char *path, const void *const *parts, const size_t *lens, int nparts,
                        const int *cancel, char *err, size_t err_len) {
    atomic_group *g = atomic_group_new();
    if (!g) { snprintf(err, err_len, "%s: out of memory", path); return -1; }
    int rc = atomic_group_add_cancel(g, path, parts, lens, nparts, cancel, err, err_len) ||
             atomic_group_commit(g, err, err_len) ? -1 : 0;
    atomic_group_free(g);
    return rc;
}

int atomic_write(const char *path, const void *const *parts, const size_t *lens, int nparts,
                 char *err, size_t err_len) {
    return atomic_write_cancel(path, parts, lens, nparts, NULL, err, err_len);
}

int atomic_remove_stale(const char *path, uint64_t *bytes) {
    if (bytes) *bytes = 0;
    char *d = strdup(path), *b = strdup(path);
    if (!d || !b) { free(d); free(b); return 0; }
    const char *dir = dirname(d), *base = basename(b);
    size_t blen = strlen(base);
    DIR *dh = opendir(dir);
    int removed = 0;
    while (dh) {
        struct dirent *e = readdir(dh);
        if (!e) break;
        const char *name = e->d_name;
        if (strncmp(name, base, blen) || strncmp(name + blen, ".tmp.", 5)) continue;
        const char *q = name + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(q, &end, 10);
        if (end == q || errno || pid <= 0 || (*end && *end != '.')) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* it still runs */
        char full[4096];
        if (snprintf(full, sizeof full, "%s/%s", dir, name) >= (int)sizeof full) continue;
        struct stat st;
        if (lstat(full, &st) || !S_ISREG(st.st_mode)) continue;
        if (unlink(full) == 0) {
            removed++;
            if (bytes) *bytes += (uint64_t)st.st_size;
        }
    }
    if (dh) closedir(dh);
    free(d);
    free(b);
    return removed;
}
