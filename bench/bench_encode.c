/* bench/bench_encode.c — encoding latency, as the paper's Table 5 reports it: the time
 * to turn images into codes, per image, at batch 1 and at batch 128.
 *
 *   build/bench/bench_encode [--variant V] [--bits K] [--classes C] [--input-size S]
 *                            [--batches 1,128] [--reps N] [--precision P] [--device D]
 *                            [--no-graphs] [--warmup W] [--json]
 *
 * What is timed: one encoder_run (host/encoder.h) — the upload of B decoded images of
 * the cached unit (uint8, R×R×3, from pinned memory), the centre-crop transform, the
 * forward pass without dropout (one CUDA graph replay after a warm-up) and the
 * download of h — repeated N times after W warm-ups (default 3); the median and the minimum over
 * the repetitions, per batch and per image. JPEG decoding is not included (it is the
 * loader's, measured by bench_loader). Random weights and images: the work does not
 * depend on the values. On the CPU backend the same numbers are the CPU's latency. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../host/backend.h"
#include "../host/encoder.h"
#include "../host/model.h"

static double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *variant = "dath", *batches = "1,128", *precision = "fp32", *device = "auto";
    int K = 64, C = 80, S = 224, reps = 30, graphs = 1, json = 0, warmup = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--variant") && v) variant = argv[++i];
        else if (!strcmp(a, "--bits") && v) K = atoi(argv[++i]);
        else if (!strcmp(a, "--classes") && v) C = atoi(argv[++i]);
        else if (!strcmp(a, "--input-size") && v) S = atoi(argv[++i]);
        else if (!strcmp(a, "--batches") && v) batches = argv[++i];
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--precision") && v) precision = argv[++i];
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--no-graphs")) graphs = 0;
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--json")) json = 1;
        else {
            fprintf(stderr, "bench_encode: unknown or incomplete option '%s' (see the comment at the top of bench/bench_encode.c)\n", a);
            return 2;
        }
    }
    char err[512];
    dath_variant var;
    if (variant_parse(variant, &var)) { fprintf(stderr, "bench_encode: --variant '%s'\n", variant); return 2; }
    int prec = backend_precision_parse(precision);
    if (prec < 0) { fprintf(stderr, "bench_encode: --precision '%s'\n", precision); return 2; }
    if (reps < 1) reps = 1;
    if (warmup < 1) warmup = 1;   /* the first run captures the graph */
    const dath_backend *be = backend_choose(device, err, sizeof err);
    if (!be) { fprintf(stderr, "bench_encode: %s\n", err); return 2; }
    dath_model *m = model_create(var, K, C, S, err, sizeof err);
    if (!m) { fprintf(stderr, "bench_encode: %s\n", err); return 2; }
    model_init_default(m, 1);
    if (!json) printf("encoding latency: %s, %d bits, input %d, %s, on %s%s\n", variant, K, S, precision, be->device,
                      graphs ? "" : " (no graphs)");
    int rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int B = atoi(tok);
        if (B < 1) { fprintf(stderr, "bench_encode: --batches: '%s'\n", tok); rc = 2; break; }
        dath_ctx ctx;
        if (be->ctx_init(&ctx, encoder_work_bytes(m, B), prec, err, sizeof err)) {
            fprintf(stderr, "bench_encode: %s\n", err);
            rc = 1;
            break;
        }
        dath_encoder *e = encoder_create(be, &ctx, m, B, err, sizeof err);
        if (!e) { fprintf(stderr, "bench_encode: %s\n", err); be->ctx_free(&ctx); rc = 1; break; }
        encoder_set_graphs(e, graphs);
        size_t unit = (size_t)transform_cache_side(S) * transform_cache_side(S) * 3;
        uint8_t *img = encoder_images(e);
        uint64_t s = 12345;
        for (size_t i = 0; i < (size_t)B * unit; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            img[i] = (uint8_t)(s >> 56);
        }
        float *h = malloc((size_t)B * K * sizeof *h);   /* [B, K] */
        double *t = malloc((size_t)reps * sizeof *t);   /* [reps] seconds */
        int ok = 1;
        for (int i = 0; i < warmup + reps && ok; i++) {
            double t0 = bench_now();
            ok = encoder_run(e, B, h, err, sizeof err) == 0;
            if (i >= warmup) t[i - warmup] = bench_now() - t0;
        }
        if (!ok) { fprintf(stderr, "bench_encode: %s\n", err); rc = 1; }
        else {
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            double med = t[reps / 2], best = t[0];
            if (json)
                printf("{\"variant\":\"%s\",\"bits\":%d,\"precision\":\"%s\",\"batch\":%d,\"ms_per_batch\":%.4f,"
                       "\"ms_per_image\":%.5f,\"ms_per_batch_min\":%.4f,\"graph_replays\":%ld,\"device\":\"%s\"}\n",
                       variant, K, precision, B, med * 1e3, med * 1e3 / B, best * 1e3, encoder_replayed(e), be->device);
            else
                printf("batch %4d: %9.3f ms per batch (min %.3f), %8.4f ms per image, %8.1f images/s  [%ld graph replays]\n",
                       B, med * 1e3, best * 1e3, med * 1e3 / B, B / med, encoder_replayed(e));
        }
        free(h);
        free(t);
        encoder_free(e);
        be->ctx_free(&ctx);
        if (rc) break;
    }
    model_free(m);
    return rc;
}
