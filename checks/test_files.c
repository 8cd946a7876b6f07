/* checks/test_files.c — safetensors round trip, model save/load bit-identity, the
 * parameter layout's keys and shapes (DESIGN.md §1), and malformed files: among them
 * those fuzzing found (issue 10) — a header nested 200,000 deep, a header that ends
 * inside a number or an escape (read past the buffer before: seen by the sanitizer
 * build, test_files_san), a shape whose element count overflows int64, offsets beyond
 * int64, model metadata beyond int. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../host/model.h"
#include "../host/safetensors.h"
#include "check.h"

static void test_roundtrip(const char *dir) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    float a[6] = {1.5f, -2.25f, 3e-38f, 1e38f, 0.0f, -0.0f};
    int64_t ia[2] = {-7, 1234567890123LL};
    int64_t sa[2] = {2, 3}, si[1] = {2}, s0[1] = {0};
    st_writer *w = st_writer_new();
    st_writer_add(w, "a.weight", "F32", 2, sa, a, sizeof a);
    st_writer_add(w, "count", "I64", 1, si, ia, sizeof ia);
    st_writer_add(w, "empty", "F32", 1, s0, a, 0);
    st_writer_meta(w, "note", "quote \" backslash \\ newline \n end");
    CHECK_TRUE("safetensors write", st_writer_write(w, path, err, sizeof err) == 0);
    st_writer_free(w);
    st_file *f = st_read(path, err, sizeof err);
    if (!CHECK_TRUE("safetensors read back", f != NULL)) { printf("  %s\n", err); return; }
    const st_tensor *t = st_find(f, "a.weight");
    CHECK_TRUE("tensor a.weight: shape and bytes",
               t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && !memcmp(t->data, a, sizeof a));
    t = st_find(f, "count");
    CHECK_TRUE("tensor count: I64 bytes", t && !strcmp(t->dtype, "I64") && !memcmp(t->data, ia, sizeof ia));
    t = st_find(f, "empty");
    CHECK_TRUE("empty tensor", t && t->nbytes == 0);
    const char *note = st_meta(f, "note");
    CHECK_TRUE("metadata escapes", note && !strcmp(note, "quote \" backslash \\ newline \n end"));
    st_close(f);
    /* header length is a multiple of 8 so tensors stay aligned */
    FILE *fp = fopen(path, "rb");
    unsigned char hl[8] = {0};
    size_t got = fread(hl, 1, 8, fp);
    fclose(fp);
    CHECK_TRUE("header padded to 8 bytes", got == 8 && hl[0] % 8 == 0);
    /* no temporary file is left behind */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    CHECK_TRUE("no temporary file left", system(cmd) != 0);

    /* malformed files are errors naming the file */
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    fp = fopen(path, "wb");
    fwrite("\x10\0\0\0\0\0\0\0{\"x\":{\"dtype\":", 1, 21, fp);
    fclose(fp);
    f = st_read(path, err, sizeof err);
    CHECK_TRUE("truncated header is an error naming the file", !f && strstr(err, "bad.safetensors"));
    printf("  (%s)\n", err);
    f = st_read("/nonexistent/x.safetensors", err, sizeof err);
    CHECK_TRUE("missing file is an error", !f && strstr(err, "/nonexistent/x.safetensors"));
}

/* Writes a safetensors file of header h (not padded) followed by data [dlen]. */
static void write_st(const char *path, const char *h, size_t hlen, const void *data, size_t dlen) {
    FILE *fp = fopen(path, "wb");
    unsigned char hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fwrite(hl, 1, 8, fp);
    fwrite(h, 1, hlen, fp);
    if (dlen) fwrite(data, 1, dlen, fp);
    fclose(fp);
}

static void expect_refused(const char *dir, const char *name, const char *h, size_t hlen, const void *data,
                           size_t dlen, const char *what) {
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_st(path, h, hlen, data, dlen);
    st_file *f = st_read(path, err, sizeof err);
    char label[200];
    snprintf(label, sizeof label, "%s refused: %s", name, what);
    if (!CHECK_TRUE(label, !f && strstr(err, path) && strstr(err, what))) printf("  got: %s\n", f ? "(accepted)" : err);
    st_close(f);
}

static void test_malformed(const char *dir) {
    /* an unknown field nested 200,000 deep (the recursion had no limit: a segfault) */
    const int deep = 200000;
    const char *pre = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"e\":";
    size_t pl = strlen(pre), hl = pl + 2 * (size_t)deep + 2;
    char *h = malloc(hl);
    memcpy(h, pre, pl);
    memset(h + pl, '[', (size_t)deep);
    memset(h + pl + deep, ']', (size_t)deep);
    memcpy(h + pl + 2 * (size_t)deep, "}}", 2);
    float one = 1;
    expect_refused(dir, "deep.safetensors", h, hl, &one, 4, "nested deeper than 64");
    /* the same at depth 60 is read */
    hl = pl + 2 * 60 + 2;
    memset(h + pl, '[', 60);
    memset(h + pl + 60, ']', 60);
    memcpy(h + pl + 120, "}}", 2);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/nested60.safetensors", dir);
    write_st(path, h, hl, &one, 4);
    st_file *f = st_read(path, err, sizeof err);
    CHECK_TRUE("an unknown field nested 60 deep is skipped", f && f->ntensors == 1 && st_find(f, "x"));
    st_close(f);
    free(h);
    /* headers that end inside a number, an escape: nothing past the header is read */
    const char *cut[] = {"{\"x\":{\"dtype\":\"F32\",\"shape\":[", "{\"x\":{\"dtype\":\"F32\",\"shape\":[12",
                         "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,", "{\"\\u00", "{\"a\\"};
    for (int k = 0; k < 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "cut%d.safetensors", k);
        expect_refused(dir, name, cut[k], strlen(cut[k]), NULL, 0, "malformed");
    }
    /* an escape read with sscanf, which ran strlen past the end of the file's buffer */
    const char *esc = "{\"\\u0041\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    snprintf(path, sizeof path, "%s/escape.safetensors", dir);
    write_st(path, esc, strlen(esc), "A", 1);   /* the file ends without a NUL byte */
    f = st_read(path, err, sizeof err);
    CHECK_TRUE("a \\u escape in a name is decoded, nothing read past the file", f && st_find(f, "A"));
    st_close(f);
    /* [2^32, 2^32] F32 is 2^66 bytes: its element count wrapped to 0 and matched [0, 0] */
    const char *wrap = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}";
    expect_refused(dir, "wrap.safetensors", wrap, strlen(wrap), NULL, 0, "bad dtype, shape or data offsets");
    const char *wrap8 = "{\"x\":{\"dtype\":\"U8\",\"shape\":[4,4611686018427387904],\"data_offsets\":[0,0]}}";
    expect_refused(dir, "wrap8.safetensors", wrap8, strlen(wrap8), NULL, 0, "bad dtype, shape or data offsets");
    const char *big = "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}";
    expect_refused(dir, "offset_over_int64.safetensors", big, strlen(big), NULL, 0, "malformed");
    /* a zero dimension beside a large one is an empty tensor */
    const char *empty = "{\"x\":{\"dtype\":\"F32\",\"shape\":[0,4611686018427387904],\"data_offsets\":[0,0]}}";
    snprintf(path, sizeof path, "%s/zero_dim.safetensors", dir);
    write_st(path, empty, strlen(empty), NULL, 0);
    f = st_read(path, err, sizeof err);
    CHECK_TRUE("shape [0, 2^62]: an empty tensor", f && st_find(f, "x") && st_find(f, "x")->nbytes == 0);
    st_close(f);
    /* model metadata beyond int: 2^32 + 16 bits read as 16 before */
    st_writer *w = st_writer_new();
    st_writer_meta(w, "variant", "dath-n");
    st_writer_meta(w, "bits", "4294967312");
    st_writer_meta(w, "classes", "10");
    st_writer_meta(w, "input_size", "96");
    snprintf(path, sizeof path, "%s/bits.safetensors", dir);
    st_writer_write(w, path, err, sizeof err);
    st_writer_free(w);
    dath_model *m = model_load(path, err, sizeof err);
    CHECK_TRUE("model metadata bits = 2^32 + 16 is refused, naming the key", !m && strstr(err, "'bits'"));
    printf("  (%s)\n", m ? "(accepted)" : err);
    model_free(m);
}

static void test_layout(void) {
    char err[256];
    dath_model *m = model_create(VARIANT_DATH, 64, 80, 224, err, sizeof err);
    CHECK_TRUE("dath layout: pam.features.0.weight [64,3,11,11]",
               model_find(m, "pam.features.0.weight") >= 0 && m->params[model_find(m, "pam.features.0.weight")].shape[3] == 11);
    CHECK_TRUE("dath layout: pam.attn.query.weight [32,256,1,1]",
               model_find(m, "pam.attn.query.weight") >= 0 && m->params[model_find(m, "pam.attn.query.weight")].shape[0] == 32);
    CHECK_TRUE("dath layout: cam.attn.gamma, no cam.attn.query",
               model_find(m, "cam.attn.gamma") >= 0 && model_find(m, "cam.attn.query.weight") < 0);
    CHECK_TRUE("dath layout: cam.classifier.1.weight [4096,9216]",
               m->params[model_find(m, "cam.classifier.1.weight")].shape[1] == 9216);
    CHECK_TRUE("dath layout: hash.weight [64,4096], cls.bias [80]",
               m->params[model_find(m, "hash.weight")].shape[0] == 64 && m->params[model_find(m, "cls.bias")].shape[0] == 80);
    /* one stream: 2,469,696 conv + 37,752,832 fc6 + 16,781,312 fc7 = 57,003,840 */
    size_t trunk = 57003840, pam = 32 * 256 * 2 + 64 + 256 * 256 + 256 + 1, heads = 64 * 4096 + 64 + 80 * 64 + 80;
    CHECK_TRUE("dath parameter count", m->count == 2 * trunk + pam + 1 + heads);
    {   /* every tensor 128-byte aligned in the flat buffer, in order, gaps under 128 bytes */
        int aligned = 1;
        size_t end = 0;
        for (int i = 0; i < m->nparams; i++) {
            const model_param *p = &m->params[i];
            aligned &= p->offset % MODEL_ALIGN_FLOATS == 0 && p->offset >= end && p->offset - end < MODEL_ALIGN_FLOATS;
            end = p->offset + p->numel;
        }
        CHECK_TRUE("dath layout: every tensor starts at a multiple of 128 bytes, no gap of 128 or more", aligned && m->n == end);
    }
    model_free(m);
    m = model_create(VARIANT_1, 16, 21, 224, err, sizeof err);
    CHECK_TRUE("dath-1 layout: trunk.pam.key.bias, trunk.pam.gamma, trunk.cam.gamma",
               model_find(m, "trunk.pam.key.bias") >= 0 && model_find(m, "trunk.pam.gamma") >= 0 && model_find(m, "trunk.cam.gamma") >= 0);
    model_free(m);
    m = model_create(VARIANT_N, 16, 21, 224, err, sizeof err);
    CHECK_TRUE("dath-n layout: plain.*, no attention", model_find(m, "plain.features.10.bias") >= 0 && m->count == trunk + 16 * 4096 + 16 + 21 * 16 + 21);
    model_free(m);
    CHECK_TRUE("input 62 refused, 63 accepted",
               !model_create(VARIANT_N, 16, 21, 62, err, sizeof err) && strstr(err, "63"));
    m = model_create(VARIANT_N, 16, 21, 63, err, sizeof err);
    CHECK_TRUE("input 63 accepted", m != NULL);
    model_free(m);
}

static void test_model_files(const char *dir) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    for (int v = 0; v < 5; v++) {
        dath_model *m = model_create((dath_variant)v, 16, 10, 96, err, sizeof err);
        model_init_default(m, 42);
        m->rms = calloc(m->n, sizeof(float));   /* the gaps between tensors stay zero */
        for (int t = 0; t < m->nparams; t++)
            for (size_t i = m->params[t].offset; i < m->params[t].offset + m->params[t].numel; i++)
                m->rms[i] = (float)i * 1e-9f;
        const char *k[] = {"epoch"}, *val[] = {"3"};
        CHECK_TRUE("model_save", model_save(m, path, 1, 1, k, val, err, sizeof err) == 0);
        dath_model *r = model_load(path, err, sizeof err);
        char name[128];
        snprintf(name, sizeof name, "%s: save/load is bit-identical (theta, rmsprop, meta)", variant_name((dath_variant)v));
        CHECK_TRUE(name, r && r->n == m->n && r->variant == m->variant && r->S == 96 &&
                             !memcmp(r->theta, m->theta, m->n * 4) && r->rms && !memcmp(r->rms, m->rms, m->n * 4) &&
                             model_meta(r, "epoch") && !strcmp(model_meta(r, "epoch"), "3"));
        /* the same seed gives the same bits; another seed other bits */
        dath_model *m2 = model_create((dath_variant)v, 16, 10, 96, err, sizeof err);
        model_init_default(m2, 42);
        int same = !memcmp(m2->theta, m->theta, m->n * 4);
        model_init_default(m2, 43);
        CHECK_TRUE("init is a function of the seed", same && memcmp(m2->theta, m->theta, m->n * 4));
        model_free(m2);
        model_free(r);
        model_free(m);
    }
    /* default init: bounds 1/sqrt(fan_in), gamma 0 */
    dath_model *m = model_create(VARIANT_DATH, 16, 10, 96, err, sizeof err);
    model_init_default(m, 1);
    int ok = 1;
    for (int i = 0; i < m->nparams; i++) {
        const model_param *p = &m->params[i];
        double bound = p->fan_in ? 1.0 / sqrt((double)p->fan_in) : 0, mx = 0;
        for (size_t j = 0; j < p->numel; j++) mx = fmax(mx, fabs(m->theta[p->offset + j]));
        int is_gamma = strstr(p->name, "gamma") != NULL;
        if (is_gamma != !p->fan_in || mx > bound * (1 + 1e-6) || (!is_gamma && mx < (p->numel > 100 ? 0.9 : 0.05) * bound)) { ok = 0; printf("  %s: max %g bound %g\n", p->name, mx, bound); }
    }
    CHECK_TRUE("Kaiming-uniform bounds and gamma = 0", ok);
    model_free(m);
    /* a file missing a tensor is refused, naming it */
    st_writer *w = st_writer_new();
    st_writer_meta(w, "variant", "dath-n");
    st_writer_meta(w, "bits", "16");
    st_writer_meta(w, "classes", "10");
    st_writer_meta(w, "input_size", "96");
    st_writer_write(w, path, err, sizeof err);
    st_writer_free(w);
    dath_model *r = model_load(path, err, sizeof err);
    CHECK_TRUE("missing tensor names the key", !r && strstr(err, "plain.features.0.weight"));
    printf("  (%s)\n", err);
}

int main(void) {
    char dir[] = "/tmp/dath-test-files-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_roundtrip(dir);
    test_malformed(dir);
    test_layout();
    test_model_files(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return check_finish();
}
