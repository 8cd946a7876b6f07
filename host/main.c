/* host/main.c — `dath`: the subcommand table. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    {"init", cmd_init, "write a fresh model (Kaiming-uniform or from torchvision AlexNet)"},
    {"info", cmd_info, "print a model's or checkpoint's variant, sizes and metadata"},
    {"step", cmd_step, "one forward/backward pass on a list as one batch; dump every tensor"},
    {"train", cmd_train, "train on an image list (checkpoints, resume, periodic MAP)"},
    {"encode", cmd_encode, "encode an image list to packed binary codes (.npy)"},
    {"eval", cmd_eval, "Hamming ranking: MAP@K, P@N, R@N, P@r<=2, PR curves and plots"},
    {"search", cmd_search, "the database images nearest a query image or code: a table, JSON, a contact sheet"},
    {"features", cmd_features, "fc7 features of an image list (.npy float32 [N, 4096]): DATH's fused fc7 or a stream's"},
    {"baseline", cmd_baseline, "LSH, PCAH, ITQ, ITQ-CCA, SDH on feature vectors: learn, encode to codes (.npy)"},
    {"mkdemo", cmd_mkdemo, "build the demo data set (Fashion-MNIST mosaics, multi-label)"},
    {"cost", cmd_cost, "the cost model: every CUDA kernel's FLOPs, bytes and floor on a GPU"},
};

static void usage(FILE *f) {
    fprintf(f, "dath — Dual Attention Triplet Hashing: train, encode, evaluate\n\n"
               "usage: dath COMMAND [options]   (dath COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dath: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
