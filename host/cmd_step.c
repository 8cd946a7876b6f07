/* host/cmd_step.c — `dath step`: one forward and backward pass with every image of a
 * list as one batch, and a dump of every tensor (the comparison point with PyTorch; also
 * the forward's features f and fc7.<stream>, which `dath features` is checked against).
 * The images are decoded as everywhere else, by the prefetcher (one batch of the whole
 * list, in list order); the crops are training's of epoch 0 (prefetch_crop), or the
 * centre with --no-augment. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../loader/list.h"
#include "../loader/prefetch.h"
#include "backend.h"
#include "cli.h"
#include "comm.h"
#include "model.h"
#include "net.h"
#include "opts.h"
#include "safetensors.h"
#include "step.h"

static void step_warn(void *user, const char *msg) { fprintf(stderr, "dath step: %s\n", msg); }

/* Decodes every image of l into img [n, R, R, 3] through the prefetcher: one batch of
 * the whole list. Returns the number of images that could not be read (each named on
 * stderr), or -1 with a message in err. */
static int step_load_images(const dath_backend *be, const dath_list *l, int R, int S, uint8_t *img, char *err,
                            size_t err_len) {
    prefetch_config pc = {.list = l, .mode = PREFETCH_ENCODE, .R = R, .S = S, .B = l->n, .ring = 2,
                          .host_alloc = be->host_alloc, .host_free = be->host_free, .warn = step_warn,
                          .max_warnings = l->n};
    dath_prefetch *pf = prefetch_create(&pc, err, err_len);
    prefetch_batch b;
    int r = pf ? prefetch_begin_epoch(pf, 0, err, err_len) : -1;
    if (r == 0) r = prefetch_next(pf, &b, err, err_len);
    int bad = -1;
    if (r == 0) {
        memcpy(img, b.images, (size_t)b.n * R * R * 3);
        bad = l->n - b.n;
        prefetch_release(pf, &b);
    } else if (r == 1) {
        bad = l->n;   /* not one image could be read: no batch */
    }
    prefetch_destroy(pf);
    return bad;
}

static void dump_add(st_writer *w, const char *name, const float *x, int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    st_writer_add(w, name, "F32", ndim, shape, x, n * sizeof(float));
}

int cmd_step(int argc, char **argv) {
    const char *model_path = NULL, *list_path = NULL, *root = "", *dump = NULL;
    int size = 0, no_augment = 0, no_dropout = 0, update = 0, steps = 1, device = 0, precision = DATH_FP32, conv = DATH_CONV_IMPLICIT;
    uint64_t seed = 0;
    step_config cfg;
    step_config_default(&cfg);
    opt_spec spec[] = {
        {"model", OPT_STR, &model_path, NULL, "model or checkpoint (.safetensors)", OPT_REQUIRED},
        {"list", OPT_STR, &list_path, NULL, "image list: path and C labels a line", OPT_REQUIRED},
        {"root", OPT_STR, &root, "", "directory the list's paths are relative to"},
        {"input-size", OPT_INT, &size, "0", "input side S (0: the model's)"},
        {"no-augment", OPT_FLAG, &no_augment, "0", "centre crop, no flip (else random crop and flip of epoch 0)"},
        {"no-dropout", OPT_FLAG, &no_dropout, "0", "no dropout (else dropout of step 0)"},
        {"update", OPT_FLAG, &update, "0", "also apply one RMSProp step and dump param.<key>"},
        {"steps", OPT_INT, &steps, "1", "with --update: N steps on the same batch, a JSON line of losses each (the dump is the last's)"},
        {"dump", OPT_STR, &dump, NULL, "write every tensor here (.safetensors)", OPT_REQUIRED},
        {"lr", OPT_FLOAT, &cfg.lr, "1e-5", "RMSProp learning rate"},
        {"wd", OPT_FLOAT, &cfg.wd, "1e-5", "weight decay"},
        {"beta", OPT_FLOAT, &cfg.beta, "1", "weight of J2 (classification)"},
        {"gamma", OPT_FLOAT, &cfg.gamma, "0.01", "weight of J3 (quantisation)"},
        {"margin", OPT_FLOAT, &cfg.margin, "5", "triplet margin α of J1"},
        {"seed", OPT_U64, &seed, "0", "seed of crops, flips and dropout"},
        {"device", OPT_ENUM, &device, "auto", "where to run", 0, backend_devices},
        {"precision", OPT_ENUM, &precision, "fp32", "GEMM precision (tf32, bf16: CUDA, sm_80+)", 0, backend_precisions},
        {"conv", OPT_ENUM, &conv, "implicit", "CUDA convolutions: implicit GEMMs or im2col + cuBLAS (the CPU ignores it)", 0, backend_conv_algos},
        {0}};
    char err[1024];
    int rc = opts_parse("dath step", "--model M --list L --root DIR --dump D.safetensors [options]", spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) { if (rc < 0) fprintf(stderr, "dath step: %s\n", err); return rc < 0 ? 2 : 0; }
    if (steps < 1 || (steps > 1 && !update)) {
        fprintf(stderr, "dath step: --steps %d: at least 1, and more than 1 only with --update\n", steps);
        return 2;
    }
    cfg.seed = seed;
    cfg.dropout = !no_dropout;
    const dath_backend *be = backend_choose(backend_devices[device], err, sizeof err);
    if (!be) { fprintf(stderr, "dath step: %s\n", err); return 2; }

    dath_model *m = model_load(model_path, err, sizeof err);
    if (!m) { fprintf(stderr, "dath step: %s\n", err); return 1; }
    if (size) {
        if (size < model_min_input()) { fprintf(stderr, "dath step: --input-size %d: at least %d\n", size, model_min_input()); model_free(m); return 2; }
        m->S = size;
    }
    dath_list *l = list_read(list_path, root, err, sizeof err);
    if (!l) { fprintf(stderr, "dath step: %s\n", err); model_free(m); return 1; }
    if (l->C != m->C) {
        fprintf(stderr, "dath step: %s has %d labels a line but %s has %d classes\n", list_path, l->C, model_path, m->C);
        list_free(l); model_free(m);
        return 1;
    }
    cfg.multi = l->multi;
    int B = l->n, S = m->S, R = transform_cache_side(S), C = m->C, K = m->K;
    uint8_t *img = malloc((size_t)B * R * R * 3);   /* [B, R, R, 3] */
    int bad = img ? step_load_images(be, l, R, S, img, err, sizeof err) : -1;
    if (bad) {
        if (bad < 0) fprintf(stderr, "dath step: %s\n", img ? err : "out of memory");
        else fprintf(stderr, "dath step: %d images of %s could not be read; the batch must be whole\n", bad, list_path);
        free(img); list_free(l); model_free(m);
        return 1;
    }
    int32_t *crop = malloc((size_t)B * 3 * sizeof(int32_t));
    float *lab = malloc((size_t)B * C * sizeof(float));
    for (int i = 0; i < B; i++) {
        if (no_augment) {
            crop[3 * i] = crop[3 * i + 1] = (R - S) / 2;
            crop[3 * i + 2] = 0;
        } else {
            prefetch_crop(crop + 3 * i, seed, 0, i, R, S);   /* training's crop of sample i in epoch 0 */
        }
        for (int j = 0; j < C; j++) lab[(size_t)i * C + j] = l->labels[(size_t)i * C + j];
    }

    dath_ctx ctx;
    dath_net *n = NULL;
    dath_comm *comm = NULL;
    dath_stepper *st = NULL;
    rc = 1;
    if (be->ctx_init(&ctx, net_work_bytes(m, B, B), precision, err, sizeof err)) { fprintf(stderr, "dath step: %s\n", err); be = NULL; goto out; }
    ctx.conv_algo = conv;   /* before net_create: the second stream's context copies it */
    fprintf(stderr, "dath step: %s on %s, batch %d, input %d\n", variant_name(m->variant), be->device, B, S);
    n = net_create(be, &ctx, m, B, 1, err, sizeof err);
    comm = comm_single(be);
    st = n ? stepper_create(n, comm, err, sizeof err) : NULL;
    if (!st) { fprintf(stderr, "dath step: %s\n", err); goto out; }
    net_upload(n, m);
    size_t xin = (size_t)B * 3 * S * S;
    uint8_t *d_img = be->alloc((size_t)B * R * R * 3);
    int32_t *d_crop = be->alloc((size_t)B * 3 * sizeof(int32_t));
    float *d_x = be->alloc(xin * sizeof(float)), *d_lab = be->alloc((size_t)B * C * sizeof(float));
    be->upload(d_img, img, (size_t)B * R * R * 3, &ctx);
    be->upload(d_crop, crop, (size_t)B * 3 * sizeof(int32_t), &ctx);
    be->upload(d_lab, lab, (size_t)B * C * sizeof(float), &ctx);
    be->transform_batch(d_x, d_img, d_crop, NULL, B, R, S, &ctx);
    step_losses L;
    int failed = 0;
    for (int i = 0; i < steps && !failed; i++) {   /* step i keys dropout */
        failed = stepper_run(st, d_x, d_lab, B, (uint32_t)i, &cfg, update, &L, err, sizeof err) != 0;
        if (!failed && steps > 1)
            printf("{\"step\":%d,\"j1\":%.9g,\"j2\":%.9g,\"j3\":%.9g,\"total\":%.9g,\"ntriplets\":%" PRId64 "}\n", i,
                   L.j1, L.j2, L.j3, L.total, L.ntriplets);
    }
    if (failed) {
        fprintf(stderr, "dath step: %s\n", err);
    } else {
        if (steps == 1)
            printf("J %.9g  J1 %.9g  J2 %.9g  J3 %.9g  triplets %" PRId64 "\n", L.total, L.j1, L.j2, L.j3, L.ntriplets);
        st_writer *w = st_writer_new();
        float *x = malloc(xin * sizeof(float)), *h = malloc((size_t)B * K * sizeof(float)), *y = malloc((size_t)B * C * sizeof(float));
        float *g = malloc(m->n * sizeof(float));
        be->download(x, d_x, xin * sizeof(float), &ctx);
        be->download(h, net_h(n), (size_t)B * K * sizeof(float), &ctx);
        be->download(y, net_y(n), (size_t)B * C * sizeof(float), &ctx);
        be->download(g, net_grad(n), m->n * sizeof(float), &ctx);
        int64_t sx[4] = {B, 3, S, S}, sl[2] = {B, C}, sh[2] = {B, K}, one[1] = {1};
        float lv[4] = {(float)L.j1, (float)L.j2, (float)L.j3, (float)L.total};
        dump_add(w, "input", x, 4, sx);
        dump_add(w, "labels", lab, 2, sl);
        dump_add(w, "h", h, 2, sh);
        dump_add(w, "y", y, 2, sl);
        /* the features of the same forward: the fused f and each stream's fc7 (before its
         * ReLU), what `dath features` writes (checks/test_features.py) */
        {
            size_t nf = (size_t)B * MODEL_HIDDEN;
            float *fb = malloc(nf * sizeof *fb);
            int64_t sf[2] = {B, MODEL_HIDDEN};
            be->download(fb, net_fused(n), nf * sizeof *fb, &ctx);
            dump_add(w, "f", fb, 2, sf);
            for (int s = 0; s < m->nstreams; s++) {
                char name[48];
                snprintf(name, sizeof name, "fc7.%s", m->streams[s].prefix);
                be->download(fb, net_fc7(n, s), nf * sizeof *fb, &ctx);
                dump_add(w, name, fb, 2, sf);
            }
            free(fb);
        }
        dump_add(w, "loss.j1", lv + 0, 1, one);
        dump_add(w, "loss.j2", lv + 1, 1, one);
        dump_add(w, "loss.j3", lv + 2, 1, one);
        dump_add(w, "loss.total", lv + 3, 1, one);
        st_writer_add(w, "triplets", "I64", 1, one, &L.ntriplets, sizeof L.ntriplets);
        for (int i = 0; i < m->nparams; i++) {
            char name[96];
            snprintf(name, sizeof name, "grad.%s", m->params[i].name);
            dump_add(w, name, g + m->params[i].offset, m->params[i].ndim, m->params[i].shape);
        }
        if (update) {
            net_download(n, m);
            for (int i = 0; i < m->nparams; i++) {
                char name[96];
                snprintf(name, sizeof name, "param.%s", m->params[i].name);
                dump_add(w, name, m->theta + m->params[i].offset, m->params[i].ndim, m->params[i].shape);
            }
        }
        st_writer_meta(w, "variant", variant_name(m->variant));
        st_writer_meta(w, "device", be->name);
        st_writer_meta(w, "precision", backend_precisions[precision]);
        if (!strcmp(be->name, "cuda")) st_writer_meta(w, "conv", backend_conv_algo_name(conv));
        st_writer_meta(w, "storage", net_storage(n) == DATH_STORE_BF16 ? "bf16" : "fp32");
        st_writer_meta(w, "fc_storage", net_fc_storage(n) == DATH_STORE_BF16 ? "bf16" : "fp32");
        if (st_writer_write(w, dump, err, sizeof err)) fprintf(stderr, "dath step: %s\n", err);
        else rc = 0;
        st_writer_free(w);
        free(x); free(h); free(y); free(g);
    }
    be->free(d_img); be->free(d_crop); be->free(d_x); be->free(d_lab);
out:
    stepper_free(st);
    if (comm) comm->destroy(comm);
    net_free(n);
    if (be) be->ctx_free(&ctx);
    free(img); free(crop); free(lab);
    list_free(l);
    model_free(m);
    return rc;
}
