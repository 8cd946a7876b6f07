/* host/cmd_model.c — `dath init` and `dath info`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "opts.h"

int cmd_init(int argc, char **argv) {
    const char *variant = NULL, *out = NULL, *alexnet = NULL;
    int bits = 0, classes = 0, size = 224;
    uint64_t seed = 0;
    opt_spec spec[] = {
        {"variant", OPT_STR, &variant, "dath", "dath, dath-s, dath-c, dath-n or dath-1"},
        {"bits", OPT_INT, &bits, NULL, "hash code length K", OPT_REQUIRED},
        {"classes", OPT_INT, &classes, NULL, "number of classes C", OPT_REQUIRED},
        {"input-size", OPT_INT, &size, "224", "input side S (at least 63)"},
        {"seed", OPT_U64, &seed, "0", "seed of the default (Kaiming-uniform) initialisation"},
        {"init", OPT_STR, &alexnet, NULL, "torchvision AlexNet safetensors file for the trunks (weights/README.md)"},
        {"out", OPT_STR, &out, NULL, "model file to write (.safetensors)", OPT_REQUIRED},
        {0}};
    char err[512];
    int rc = opts_parse("dath init", "--bits K --classes C --out M.safetensors [options]", spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) { if (rc < 0) fprintf(stderr, "dath init: %s\n", err); return rc < 0 ? 2 : 0; }
    dath_variant v;
    if (variant_parse(variant, &v)) {
        fprintf(stderr, "dath init: --variant '%s': expected dath, dath-s, dath-c, dath-n or dath-1\n", variant);
        return 2;
    }
    dath_model *m = model_create(v, bits, classes, size, err, sizeof err);
    if (!m) { fprintf(stderr, "dath init: %s\n", err); return 2; }
    model_init_default(m, seed);
    if (alexnet && model_init_alexnet(m, alexnet, err, sizeof err)) {
        fprintf(stderr, "dath init: --init %s\n", err);
        model_free(m);
        return 1;
    }
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, seed);
    const char *keys[] = {"seed", "init"}, *vals[] = {seedbuf, alexnet ? alexnet : "kaiming-uniform"};
    rc = model_save(m, out, 0, 2, keys, vals, err, sizeof err);
    if (rc) fprintf(stderr, "dath init: %s\n", err);
    else printf("wrote %s: %s, %d bits, %d classes, input %d, %zu parameters\n", out, variant_name(v), bits, classes, size, m->count);
    model_free(m);
    return rc ? 1 : 0;
}

int cmd_info(int argc, char **argv) {
    int tensors = 0;
    opt_spec spec[] = {{"tensors", OPT_FLAG, &tensors, "0", "also list every tensor with its shape"}, {0}};
    char err[512], *pos[1];
    int npos = 0;
    int rc = opts_parse("dath info", "M.safetensors [--tensors]", spec, argc, argv, pos, 1, &npos, err, sizeof err);
    if (rc) { if (rc < 0) fprintf(stderr, "dath info: %s\n", err); return rc < 0 ? 2 : 0; }
    if (npos != 1) { fprintf(stderr, "dath info: give one model or checkpoint file (see dath info --help)\n"); return 2; }
    dath_model *m = model_load(pos[0], err, sizeof err);
    if (!m) { fprintf(stderr, "dath info: %s\n", err); return 1; }
    printf("file        %s\nvariant     %s\nbits        %d\nclasses     %d\ninput size  %d\nstreams    ",
           pos[0], variant_name(m->variant), m->K, m->C, m->S);
    for (int s = 0; s < m->nstreams; s++) printf(" %s", m->streams[s].prefix);
    printf("\nparameters  %zu (%d tensors, %.1f MiB)\nrmsprop     %s\n", m->count, m->nparams,
           m->count * 4.0 / 1048576.0, m->rms ? "present (a checkpoint)" : "absent");
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_keys[i], "variant") && strcmp(m->meta_keys[i], "bits") &&
            strcmp(m->meta_keys[i], "classes") && strcmp(m->meta_keys[i], "input_size"))
            printf("meta        %s = %s\n", m->meta_keys[i], m->meta_values[i]);
    if (tensors)
        for (int i = 0; i < m->nparams; i++) {
            const model_param *p = &m->params[i];
            printf("  %-36s [", p->name);
            for (int d = 0; d < p->ndim; d++) printf("%s%" PRId64, d ? ", " : "", p->shape[d]);
            printf("]\n");
        }
    model_free(m);
    return 0;
}
