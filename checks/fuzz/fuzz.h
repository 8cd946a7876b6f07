/* checks/fuzz/fuzz.h — what the libFuzzer targets share.
 *
 * Each target (checks/fuzz/fuzz_*.c) feeds one parser of untrusted bytes the way dath
 * meets them: most read a file by path, so the input is written to a file in a private
 * directory ($TMPDIR, else /tmp: dath-fuzz-XXXXXX, made on the first input) and the
 * parser reads it back. A target checks the parser's promises on what it accepts (sizes
 * that agree, every byte it hands out readable) and calls fuzz_fail, which aborts, when
 * one is broken: libFuzzer records the input as a finding, as for a crash or a sanitizer
 * report. Built with clang -fsanitize=fuzzer,address,undefined (mk/fuzz.mk); run by
 * checks/fuzz/run.sh. */
#ifndef DATH_FUZZ_H
#define DATH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_path[512];

/* The private directory (made once). */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/dath-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("fuzz: mkdtemp");
            abort();
        }
    }
    return fuzz_dir_path;
}

/* dst [len] = DIR/name. */
static inline void fuzz_path(char *dst, size_t len, const char *name) { snprintf(dst, len, "%s/%s", fuzz_dir(), name); }

/* Writes data [size] to path (replacing it). */
static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(path);
        abort();
    }
}

/* A broken promise: print it and abort (a finding). */
static inline void fuzz_fail(const char *what) {
    fprintf(stderr, "fuzz: broken promise: %s\n", what);
    abort();
}

/* Reads every byte of p [n] (so that the sanitizer sees an out-of-bounds pointer) and
 * returns a value that depends on all of them. */
static inline unsigned fuzz_touch(const void *p, size_t n) {
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31u + b[i];
    return s;
}

#endif
