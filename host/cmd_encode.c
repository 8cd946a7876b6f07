/* host/cmd_encode.c — `dath encode`: an image list to packed binary codes (.npy).
 *
 * Writes, atomically and together (loader/atomic.h: every file is complete on disk before
 * any of them replaces its target, so a full disk leaves none of them half there):
 *   OUT                  uint8 [n_ok, (K+7)/8], numpy.packbits order (DESIGN.md §7)
 *   OUT.skipped.txt      the list rows left out because their image could not be read:
 *                        "LINE PATH" a line (LINE 1-based in the list, PATH as written
 *                        there); always written, empty when every image was encoded
 *   --labels FILE        uint8 [n_ok, C] 0/1, the labels of the encoded rows */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../loader/list.h"
#include "backend.h"
#include "cli.h"
#include "clock.h"
#include "encoder.h"
#include "net.h"
#include "model.h"
#include "npy.h"
#include "opts.h"
#include "safetensors.h"

/* The skipped rows as text ("LINE PATH\n" each); *len its length. malloc'd. */
static char *encode_skipped_text(const dath_list *l, const int *kept, int n_ok, size_t *len) {
    size_t cap = 1, at = 0;
    for (int i = 0; i < l->n; i++) cap += strlen(l->names[i]) + 16;
    char *s = malloc(cap);
    int k = 0;
    for (int i = 0; i < l->n; i++) {
        if (k < n_ok && kept[k] == i) { k++; continue; }
        at += (size_t)snprintf(s + at, cap - at, "%d %s\n", l->lines[i], l->names[i]);
    }
    *len = at;
    return s;
}

int cmd_encode(int argc, char **argv) {
    const char *model_path = NULL, *list_path = NULL, *root = "", *out = NULL, *labels_out = NULL;
    int batch = 256, workers = 0, device = 0, precision = DATH_FP32, conv = DATH_CONV_IMPLICIT;
    float max_mp = 64;
    opt_spec spec[] = {
        {"model", OPT_STR, &model_path, NULL, "model or checkpoint (.safetensors)", OPT_REQUIRED},
        {"list", OPT_STR, &list_path, NULL, "image list: path and C labels a line", OPT_REQUIRED},
        {"root", OPT_STR, &root, "", "directory the list's paths are relative to", 0},
        {"batch", OPT_INT, &batch, "256", "images per forward pass", OPT_POSITIVE},
        {"max-megapixels", OPT_FLOAT, &max_mp, "64", "refuse (leave out) images of more pixels, read from the header before decoding", OPT_POSITIVE},
        {"workers", OPT_INT, &workers, "0", "decoding threads (0: one per core)", OPT_NONNEG},
        {"device", OPT_ENUM, &device, "auto", "where to encode", 0, backend_devices},
        {"precision", OPT_ENUM, &precision, "fp32", "GEMM precision (tf32, bf16: CUDA, sm_80+)", 0, backend_precisions},
        {"conv", OPT_ENUM, &conv, "implicit", "CUDA convolutions: implicit GEMMs or im2col + cuBLAS", 0, backend_conv_algos},
        {"out", OPT_STR, &out, NULL, "codes file (.npy, uint8, numpy.packbits order)", OPT_REQUIRED},
        {"labels", OPT_STR, &labels_out, NULL, "also write the encoded rows' labels here (.npy)", 0},
        {0}};
    char err[4096];
    int rc = opts_parse("dath encode", "--model M --list L --root DIR --out CODES.npy [options]",
                        spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath encode: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    dath_model *m = model_load(model_path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "dath encode: %s\n", err);
        return 1;
    }
    dath_list *l = list_read(list_path, root, err, sizeof err);
    if (!l) {
        fprintf(stderr, "dath encode: %s\n", err);
        model_free(m);
        return 1;
    }
    const dath_backend *be = backend_choose(backend_devices[device], err, sizeof err);
    dath_ctx ctx;
    uint8_t *codes = NULL, *lab = NULL;
    int *kept = NULL, n_ok = 0;
    char *skipped = NULL;
    atomic_group *group = NULL;
    rc = 1;
    if (!be) { fprintf(stderr, "dath encode: %s\n", err); goto out; }
    if (be->ctx_init(&ctx, encoder_work_bytes(m, batch), precision, err, sizeof err)) {
        fprintf(stderr, "dath encode: %s\n", err);
        be = NULL;
        goto out;
    }
    ctx.conv_algo = conv;
    fprintf(stderr, "dath encode: %s, %d bits, input %d, on %s, %s: %d images of %s\n",
            variant_name(m->variant), m->K, m->S, be->device, backend_precisions[precision], l->n, list_path);
    double t0 = dath_now();
    if (encoder_encode_list(be, &ctx, m, l, batch, workers, (int64_t)((double)max_mp * 1e6), 1, &codes, &kept, &n_ok,
                            err, sizeof err)) {
        fprintf(stderr, "dath encode: %s\n", err);
        goto out;
    }
    double secs = dath_now() - t0;
    const int nb = (m->K + 7) / 8;
    char skipped_path[4096];
    snprintf(skipped_path, sizeof skipped_path, "%s.skipped.txt", out);
    size_t slen;
    skipped = encode_skipped_text(l, kept, n_ok, &slen);
    const void *parts[1] = {skipped};
    if (labels_out) lab = list_rows_labels(l, kept, n_ok);   /* [n_ok, C] */
    group = atomic_group_new();
    if (!skipped || (labels_out && !lab) || !group) {
        fprintf(stderr, "dath encode: out of memory\n");
        goto out;
    }
    /* labels and the skipped rows first, the codes last: all complete before any rename */
    if ((labels_out && npy_add_u8(group, labels_out, lab, n_ok, l->C, err, sizeof err)) ||
        atomic_group_add(group, skipped_path, parts, &slen, 1, err, sizeof err) ||
        npy_add_u8(group, out, codes, n_ok, nb, err, sizeof err) || atomic_group_commit(group, err, sizeof err)) {
        fprintf(stderr, "dath encode: %s\ndath encode: nothing written (%s%s%s and %s are as they were)\n", err, out,
                labels_out ? ", " : "", labels_out ? labels_out : "", skipped_path);
        goto out;
    }
    fprintf(stderr, "dath encode: %d codes of %d bytes → %s%s%s; %d skipped (listed in %s); "
            "%.2f s, %.1f images/s\n", n_ok, nb, out, labels_out ? ", labels → " : "",
            labels_out ? labels_out : "", l->n - n_ok, skipped_path, secs,
            secs > 0 ? l->n / secs : 0.0);
    if (n_ok == 0) fprintf(stderr, "dath encode: no image of %s could be read\n", list_path);
    rc = n_ok ? 0 : 1;
out:
    atomic_group_free(group);   /* removes the temporaries of a failed write */
    if (be) be->ctx_free(&ctx);
    free(codes);
    free(lab);
    free(kept);
    free(skipped);
    list_free(l);
    model_free(m);
    return rc;
}
