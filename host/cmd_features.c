/* host/cmd_features.c — `dath features`: fc7 features of an image list, as float32 .npy
 * [N, 4096], for the traditional hashing methods (`dath baseline`) or any other use.
 *
 * The model: any dath model or checkpoint (--model), or a torchvision AlexNet file
 * (--init, weights/README.md), which becomes the one-stream dath-n trunk it initialises
 * (dath init --variant dath-n --init), so that its fc7 after ReLU is AlexNet's: the
 * paper's DeCAF7. Features: the fused f = Σ_s ReLU(fc7_s) that the hash layer reads
 * (the default), or one stream's ReLU(fc7) (--stream pam, cam, plain or trunk). The
 * pass is `dath encode`'s (host/encoder.h: centre crop, no dropout, the prefetcher);
 * net.h's net_fused / net_fc7 name the tensors.
 *
 * Writes, together (each complete before any replaces its target, as dath encode does):
 *   OUT                float32 [n_ok, 4096], C order
 *   OUT.skipped.txt    the list rows whose image could not be read ("LINE PATH")
 *   --labels FILE      uint8 [n_ok, C], the rows' labels */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../loader/list.h"
#include "backend.h"
#include "cli.h"
#include "clock.h"
#include "encoder.h"
#include "model.h"
#include "npy.h"
#include "opts.h"

int cmd_features(int argc, char **argv) {
    const char *model_path = NULL, *init = NULL, *list_path = NULL, *root = "", *out = NULL, *labels_out = NULL;
    const char *stream_name = "fused";
    int batch = 64, workers = 0, device = 0, precision = DATH_FP32, size = 224, conv = DATH_CONV_IMPLICIT;
    float max_mp = 64;
    opt_spec spec[] = {
        {"model", OPT_STR, &model_path, NULL, "dath model or checkpoint (.safetensors)", 0},
        {"init", OPT_STR, &init, NULL, "instead of --model: a torchvision AlexNet (.safetensors): DeCAF7", 0},
        {"input-size", OPT_INT, &size, "224", "with --init: the input side S", OPT_POSITIVE},
        {"list", OPT_STR, &list_path, NULL, "image list: path and C labels a line", OPT_REQUIRED},
        {"root", OPT_STR, &root, "", "directory the list's paths are relative to", 0},
        {"stream", OPT_STR, &stream_name, "fused", "fused (what the hash layer reads), or one stream's ReLU(fc7): "
         "pam, cam (dath), plain (dath-n, --init), trunk (dath-1)", 0},
        {"out", OPT_STR, &out, NULL, "features file (.npy, float32 [N, 4096])", OPT_REQUIRED},
        {"labels", OPT_STR, &labels_out, NULL, "also write the rows' labels here (.npy, uint8)", 0},
        {"batch", OPT_INT, &batch, "64", "images per forward pass", OPT_POSITIVE},
        {"workers", OPT_INT, &workers, "0", "decoding threads (0: one per core)", OPT_NONNEG},
        {"max-megapixels", OPT_FLOAT, &max_mp, "64", "refuse (leave out) images of more pixels", OPT_POSITIVE},
        {"device", OPT_ENUM, &device, "auto", "where to run", 0, backend_devices},
        {"precision", OPT_ENUM, &precision, "fp32", "GEMM precision (tf32, bf16: CUDA, sm_80+)", 0, backend_precisions},
        {"conv", OPT_ENUM, &conv, "implicit", "CUDA convolutions: implicit GEMMs or im2col + cuBLAS", 0, backend_conv_algos},
        {0}};
    char err[4096];
    int rc = opts_parse("dath features", "(--model M | --init ALEXNET) --list L --root DIR --out F.npy [--stream S]",
                        spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath features: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    if (!model_path == !init) {
        fprintf(stderr, "dath features: give --model (a dath model) or --init (a torchvision AlexNet), one of them\n");
        return 2;
    }
    if (init && size < model_min_input()) {
        fprintf(stderr, "dath features: --input-size %d: at least %d\n", size, model_min_input());
        return 2;
    }
    dath_model *m = NULL;
    dath_list *l = NULL;
    const dath_backend *be = NULL;
    dath_ctx ctx;
    float *feat = NULL;
    uint8_t *lab = NULL;
    int *kept = NULL, n_ok = 0;
    char *skipped = NULL;
    atomic_group *group = NULL;
    rc = 1;
    if (init) {
        /* the trunk alone: K and C only size the heads, which fc7 does not reach */
        if (!(m = model_create(VARIANT_N, 8, 1, size, err, sizeof err))) goto fail;
        model_init_default(m, 0);
        if (model_init_alexnet(m, init, err, sizeof err)) goto fail;
    } else if (!(m = model_load(model_path, err, sizeof err))) {
        goto fail;
    }
    int stream = ENCODER_FUSED;
    if (strcmp(stream_name, "fused")) {
        stream = -2;
        for (int s = 0; s < m->nstreams; s++)
            if (!strcmp(stream_name, m->streams[s].prefix)) stream = s;
        if (stream == -2) {
            int at = snprintf(err, sizeof err, "--stream %s: %s has ", stream_name, variant_name(m->variant));
            for (int s = 0; s < m->nstreams; s++)
                at += snprintf(err + at, sizeof err - (size_t)at, "%s%s", s ? " and " : "", m->streams[s].prefix);
            snprintf(err + at, sizeof err - (size_t)at, " (or fused)");
            fprintf(stderr, "dath features: %s\n", err);
            rc = 2;
            goto out;
        }
    }
    if (!(l = list_read(list_path, root, err, sizeof err))) goto fail;
    if (!(be = backend_choose(backend_devices[device], err, sizeof err))) goto fail;
    if (be->ctx_init(&ctx, encoder_work_bytes(m, batch), precision, err, sizeof err)) {
        be = NULL;
        goto fail;
    }
    ctx.conv_algo = conv;
    fprintf(stderr, "dath features: %s fc7 of %s%s (%s, input %d) on %s, %s: %d images of %s\n",
            stream == ENCODER_FUSED ? "fused" : stream_name, init ? "the AlexNet of " : "", init ? init : model_path,
            variant_name(m->variant), m->S, be->device, backend_precisions[precision], l->n, list_path);
    double t0 = dath_now();
    if (encoder_features_list(be, &ctx, m, l, batch, workers, (int64_t)((double)max_mp * 1e6), 1, stream, &feat,
                              &kept, &n_ok, err, sizeof err))
        goto fail;
    double secs = dath_now() - t0;
    char skipped_path[4096];
    snprintf(skipped_path, sizeof skipped_path, "%s.skipped.txt", out);
    size_t slen;
    skipped = list_rows_skipped(l, kept, n_ok, &slen);
    if (labels_out) lab = list_rows_labels(l, kept, n_ok);   /* [n_ok, C] */
    group = atomic_group_new();
    if (!skipped || (labels_out && !lab) || !group) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    const void *parts[1] = {skipped};
    if ((labels_out && npy_add_u8(group, labels_out, lab, n_ok, l->C, err, sizeof err)) ||
        atomic_group_add(group, skipped_path, parts, &slen, 1, err, sizeof err) ||
        npy_add_f32(group, out, feat, n_ok, MODEL_HIDDEN, err, sizeof err) ||
        atomic_group_commit(group, err, sizeof err)) {
        fprintf(stderr, "dath features: %s\ndath features: nothing written\n", err);
        goto out;
    }
    fprintf(stderr, "dath features: %d × %d floats → %s%s%s; %d skipped (listed in %s); %.2f s, %.1f images/s\n",
            n_ok, MODEL_HIDDEN, out, labels_out ? ", labels → " : "", labels_out ? labels_out : "", l->n - n_ok,
            skipped_path, secs, secs > 0 ? l->n / secs : 0.0);
    if (n_ok == 0) fprintf(stderr, "dath features: no image of %s could be read\n", list_path);
    rc = n_ok ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "dath features: %s\n", err);
out:
    atomic_group_free(group);
    if (be) be->ctx_free(&ctx);
    free(feat);
    free(lab);
    free(kept);
    free(skipped);
    if (l) list_free(l);
    model_free(m);
    return rc;
}
