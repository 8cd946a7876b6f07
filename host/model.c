/* host/model.c — DATH's parameter layout, initialisation, loading and saving. */
#include "model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/pool.h"
#include "../kernels/rng.h"
#include "safetensors.h"

const char *const variant_names[] = {"dath", "dath-s", "dath-c", "dath-n", "dath-1", NULL};

const char *variant_name(dath_variant v) { return variant_names[v]; }

int variant_parse(const char *s, dath_variant *v) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, variant_names[i])) { *v = (dath_variant)i; return 0; }
    return -1;
}

/* AlexNet's convolutions: (out, in, k, stride, pad) and their torchvision indices. */
static const int conv_geom[5][5] = {
    {64, 3, 11, 4, 2}, {192, 64, 5, 1, 2}, {384, 192, 3, 1, 1}, {256, 384, 3, 1, 1}, {256, 256, 3, 1, 1}};
static const int conv_index[5] = {0, 3, 6, 8, 10};

void model_conv_shapes(conv2d_shape shapes[5], int B, int S) {
    int ci = 3, side = S;
    for (int i = 0; i < 5; i++) {
        shapes[i] = conv2d_make_shape(B, ci, side, side, conv_geom[i][0], conv_geom[i][2], conv_geom[i][3], conv_geom[i][4]);
        ci = conv_geom[i][0];
        side = shapes[i].Ho;
        if (i < 2) side = maxpool_out(side);
    }
}

/* Spatial side after the trunk's convolutions and pools for input S (0 when too small). */
static int trunk_side(int S) {
    if (S + 4 < 11) return 0;
    conv2d_shape c[5];
    model_conv_shapes(c, 1, S);
    return maxpool_out(c[4].Ho);   /* pool5 */
}

int model_min_input(void) {
    int S = 11;
    while (trunk_side(S) < 1) S++;
    return S;
}

static int add_param(dath_model *m, const char *name, int ndim, const int64_t *shape, int fan_in) {
    model_param *p = &m->params[m->nparams];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) { p->shape[i] = shape[i]; p->numel *= (size_t)shape[i]; }
    p->offset = (m->n + MODEL_ALIGN_FLOATS - 1) / MODEL_ALIGN_FLOATS * MODEL_ALIGN_FLOATS;
    p->fan_in = fan_in;
    m->n = p->offset + p->numel;
    m->count += p->numel;
    return m->nparams++;
}

static int add_fmt(dath_model *m, int ndim, const int64_t *shape, int fan_in, const char *fmt,
                   const char *a, const char *b) {
    char name[64];
    snprintf(name, sizeof name, fmt, a, b);
    return add_param(m, name, ndim, shape, fan_in);
}

/* A weight [out, in(, k, k)] and its bias [out] under "<prefix>.<key>". */
static void add_layer(dath_model *m, const char *prefix, const char *key, int out, int in, int k,
                      int *w, int *b) {
    int64_t ws[4] = {out, in, k, k}, bs[1] = {out};
    int fan_in = k ? in * k * k : in;
    *w = add_fmt(m, k ? 4 : 2, ws, fan_in, "%s.%s.weight", prefix, key);
    *b = add_fmt(m, 1, bs, fan_in, "%s.%s.bias", prefix, key);
}

static void add_stream(dath_model *m, const char *prefix, attn_kind attn) {
    stream_params *s = &m->streams[m->nstreams++];
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    s->attn = attn;
    s->wq = s->bq = s->wk = s->bk = s->wv = s->bv = s->pam_gamma = s->cam_gamma = -1;
    char key[32];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "features.%d", conv_index[i]);
        add_layer(m, prefix, key, conv_geom[i][0], conv_geom[i][1], conv_geom[i][2], &s->conv_w[i], &s->conv_b[i]);
    }
    int64_t one[1] = {1};
    /* dath-1's trunk names its modules trunk.pam.* / trunk.cam.gamma; the streams attn.* */
    const char *pam = attn == ATTN_BOTH ? "pam" : "attn", *cam = attn == ATTN_BOTH ? "cam" : "attn";
    if (attn == ATTN_PAM || attn == ATTN_BOTH) {
        char pre[32];
        snprintf(pre, sizeof pre, "%s.%s", prefix, pam);
        add_layer(m, pre, "query", MODEL_CQ, MODEL_C5, 1, &s->wq, &s->bq);
        add_layer(m, pre, "key", MODEL_CQ, MODEL_C5, 1, &s->wk, &s->bk);
        add_layer(m, pre, "value", MODEL_C5, MODEL_C5, 1, &s->wv, &s->bv);
        s->pam_gamma = add_fmt(m, 1, one, 0, "%s.%s.gamma", prefix, pam);
    }
    if (attn == ATTN_CAM || attn == ATTN_BOTH)
        s->cam_gamma = add_fmt(m, 1, one, 0, "%s.%s.gamma", prefix, cam);
    add_layer(m, prefix, "classifier.1", MODEL_HIDDEN, MODEL_C5 * MODEL_POOL * MODEL_POOL, 0, &s->fc6_w, &s->fc6_b);
    add_layer(m, prefix, "classifier.4", MODEL_HIDDEN, MODEL_HIDDEN, 0, &s->fc7_w, &s->fc7_b);
}

dath_model *model_create(dath_variant v, int K, int C, int S, char *err, size_t err_len) {
    if (K < 1 || K > 4096) { snprintf(err, err_len, "bits %d out of range (1..4096)", K); return NULL; }
    if (C < 1 || C > 100000) { snprintf(err, err_len, "classes %d out of range (1..100000)", C); return NULL; }
    if (S < model_min_input() || S > 1024) {
        snprintf(err, err_len, "input size %d out of range (%d..1024)", S, model_min_input());
        return NULL;
    }
    dath_model *m = calloc(1, sizeof *m);
    m->variant = v; m->K = K; m->C = C; m->S = S;
    switch (v) {
    case VARIANT_DATH: add_stream(m, "pam", ATTN_PAM); add_stream(m, "cam", ATTN_CAM); break;
    case VARIANT_S: add_stream(m, "pam", ATTN_PAM); break;
    case VARIANT_C: add_stream(m, "cam", ATTN_CAM); break;
    case VARIANT_N: add_stream(m, "plain", ATTN_NONE); break;
    case VARIANT_1: add_stream(m, "trunk", ATTN_BOTH); break;
    }
    add_layer(m, "hash", "", K, MODEL_HIDDEN, 0, &m->hash_w, &m->hash_b);
    add_layer(m, "cls", "", C, K, 0, &m->cls_w, &m->cls_b);
    /* "hash..weight" → "hash.weight" */
    for (int i = m->hash_w; i < m->nparams; i++) {
        char *dd = strstr(m->params[i].name, "..");
        if (dd) memmove(dd, dd + 1, strlen(dd));
    }
    m->theta = calloc(m->n, sizeof(float));
    if (!m->theta) {
        snprintf(err, err_len, "out of memory for %zu parameters", m->n);
        free(m);
        return NULL;
    }
    return m;
}

void model_free(dath_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nmeta; i++) { free(m->meta_keys[i]); free(m->meta_values[i]); }
    free(m->meta_keys);
    free(m->meta_values);
    free(m->theta);
    free(m->rms);
    free(m);
}

int model_find(const dath_model *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

void model_init_default(dath_model *m, uint64_t seed) {
    for (int i = 0; i < m->nparams; i++) {
        const model_param *p = &m->params[i];
        float *t = m->theta + p->offset;
        if (!p->fan_in) {  /* gamma */
            for (size_t j = 0; j < p->numel; j++) t[j] = 0.0f;
            continue;
        }
        /* kaiming_uniform_(a=√5) and the bias default both give U(−1/√fan_in, 1/√fan_in) */
        float bound = 1.0f / sqrtf((float)p->fan_in);
        for (size_t j = 0; j < p->numel; j++)
            t[j] = bound * (2.0f * rng_uniform(seed, RNG_INIT, (uint32_t)i, (uint32_t)(j >> 32), (uint32_t)j) - 1.0f);
    }
}

int model_init_alexnet(dath_model *m, const char *path, char *err, size_t err_len) {
    st_file *f = st_read(path, err, err_len);
    if (!f) return -1;
    int rc = 0;
    for (int s = 0; s < m->nstreams && !rc; s++) {
        const stream_params *sp = &m->streams[s];
        int idx[14], n = 0;
        for (int i = 0; i < 5; i++) { idx[n++] = sp->conv_w[i]; idx[n++] = sp->conv_b[i]; }
        idx[n++] = sp->fc6_w; idx[n++] = sp->fc6_b; idx[n++] = sp->fc7_w; idx[n++] = sp->fc7_b;
        for (int i = 0; i < n; i++) {
            const model_param *p = &m->params[idx[i]];
            const char *key = p->name + strlen(sp->prefix) + 1;  /* "features.0.weight" */
            const st_tensor *t = st_find(f, key);
            if (!t) { snprintf(err, err_len, "%s: no tensor '%s' (is it a torchvision AlexNet file?)", path, key); rc = -1; break; }
            int same = !strcmp(t->dtype, "F32") && t->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
            if (!same) { snprintf(err, err_len, "%s: tensor '%s' is not F32 of the shape AlexNet's %s has", path, key, key); rc = -1; break; }
            memcpy(m->theta + p->offset, t->data, p->numel * sizeof(float));
        }
    }
    st_close(f);
    return rc;
}

static void shape_str(const int64_t *s, int nd, char *buf, size_t len) {
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && at < len; i++) at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? "," : "", (long long)s[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

int model_save(const dath_model *m, const char *path, int with_rms, int nextra,
               const char *const *extra_keys, const char *const *extra_values,
               char *err, size_t err_len) {
    st_writer *w = st_writer_new();
    char buf[32];
    st_writer_meta(w, "format", "dath");
    st_writer_meta(w, "variant", variant_name(m->variant));
    snprintf(buf, sizeof buf, "%d", m->K); st_writer_meta(w, "bits", buf);
    snprintf(buf, sizeof buf, "%d", m->C); st_writer_meta(w, "classes", buf);
    snprintf(buf, sizeof buf, "%d", m->S); st_writer_meta(w, "input_size", buf);
    for (int i = 0; i < nextra; i++) st_writer_meta(w, extra_keys[i], extra_values[i]);
    for (int i = 0; i < m->nparams; i++) {
        const model_param *p = &m->params[i];
        st_writer_add_ref(w, p->name, "F32", p->ndim, p->shape, m->theta + p->offset, p->numel * sizeof(float));
    }
    if (with_rms && m->rms) {
        for (int i = 0; i < m->nparams; i++) {
            const model_param *p = &m->params[i];
            char name[80];
            snprintf(name, sizeof name, "rmsprop.%s", p->name);
            st_writer_add_ref(w, name, "F32", p->ndim, p->shape, m->rms + p->offset, p->numel * sizeof(float));
        }
    }
    int rc = st_writer_write(w, path, err, err_len);
    st_writer_free(w);
    return rc;
}

static int meta_int(const st_file *f, const char *path, const char *key, int *v, char *err, size_t err_len) {
    const char *s = st_meta(f, key);
    char *end;
    if (!s) { snprintf(err, err_len, "%s: metadata has no '%s' (not a dath model?)", path, key); return -1; }
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < INT_MIN || x > INT_MAX) {
        snprintf(err, err_len, "%s: metadata '%s' = '%.40s' is not an integer", path, key, s);
        return -1;
    }
    *v = (int)x;
    return 0;
}

dath_model *model_load(const char *path, char *err, size_t err_len) {
    st_file *f = st_read(path, err, err_len);
    if (!f) return NULL;
    dath_model *m = NULL;
    const char *vs = st_meta(f, "variant");
    dath_variant v;
    int K, C, S;
    if (!vs) { snprintf(err, err_len, "%s: metadata has no 'variant' (not a dath model?)", path); goto out; }
    if (variant_parse(vs, &v)) { snprintf(err, err_len, "%s: unknown variant '%s'", path, vs); goto out; }
    if (meta_int(f, path, "bits", &K, err, err_len) || meta_int(f, path, "classes", &C, err, err_len) ||
        meta_int(f, path, "input_size", &S, err, err_len))
        goto out;
    char e2[200];
    m = model_create(v, K, C, S, e2, sizeof e2);
    if (!m) { snprintf(err, err_len, "%s: %s", path, e2); goto out; }
    int nrms = 0;
    for (int i = 0; i < m->nparams; i++) {
        const model_param *p = &m->params[i];
        for (int pass = 0; pass < 2; pass++) {
            char name[80];
            snprintf(name, sizeof name, pass ? "rmsprop.%s" : "%s", p->name);
            const st_tensor *t = st_find(f, name);
            if (!t) {
                if (pass) continue;
                snprintf(err, err_len, "%s: missing tensor '%s'", path, name);
                goto fail;
            }
            int same = !strcmp(t->dtype, "F32") && t->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
            if (!same) {
                char want[64];
                shape_str(p->shape, p->ndim, want, sizeof want);
                snprintf(err, err_len, "%s: tensor '%s' should be F32 %s", path, name, want);
                goto fail;
            }
            if (pass) {
                if (!m->rms) m->rms = calloc(m->n, sizeof(float));
                nrms++;
            }
            memcpy((pass ? m->rms : m->theta) + p->offset, t->data, p->numel * sizeof(float));
        }
    }
    if (nrms && nrms != m->nparams) { snprintf(err, err_len, "%s: RMSProp state for only %d of %d tensors", path, nrms, m->nparams); goto fail; }
    m->nmeta = f->nmeta;
    m->meta_keys = calloc((size_t)f->nmeta + 1, sizeof(char *));
    m->meta_values = calloc((size_t)f->nmeta + 1, sizeof(char *));
    for (int i = 0; i < f->nmeta; i++) { m->meta_keys[i] = strdup(f->meta_keys[i]); m->meta_values[i] = strdup(f->meta_values[i]); }
    goto out;
fail:
    model_free(m);
    m = NULL;
out:
    st_close(f);
    return m;
}

const char *model_meta(const dath_model *m, const char *key) {
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta_keys[i], key)) return m->meta_values[i];
    return NULL;
}
