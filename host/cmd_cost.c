/* host/cmd_cost.c — `dath cost`: the cost model's table (host/cost.h) for a variant,
 * sizes, precision and GPU: every kernel of the training step, of the input transform
 * and of the encode pass (batch B and batch 1) with its FLOPs, bytes, floor and bound,
 * the step's kernel families, and the totals (step, epoch, encode) beside the ideal
 * floor; with --json one object with the same figures. A model's prediction, not a
 * measurement: it says so in its first line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "cli.h"
#include "cost.h"
#include "opts.h"

/* Display width of a UTF-8 string (code points). */
static int utf8_width(const char *s) {
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* s, then spaces up to width columns. */
static void put_padded(FILE *f, const char *s, int width) {
    fputs(s, f);
    for (int w = utf8_width(s); w < width; w++) fputc(' ', f);
}

static void print_kernels(const cost_pass *ps, const cost_peaks *p, const char *title) {
    printf("\n%s\n", title);
    printf("%5s  %-8s  ", "#", "phase");
    put_padded(stdout, "layer", 30);
    put_padded(stdout, "kernel", 32);
    put_padded(stdout, "shape", 36);
    printf("%12s %11s %11s  %s\n", "GFLOP", "MB", "floor µs", "bound");
    for (int i = 0; i < ps->nkernels; i++) {
        const cost_kernel *k = &ps->kernels[i];
        printf("%5d  %-8s  ", i + 1, cost_phase_name(k->phase));
        put_padded(stdout, k->layer, 30);
        put_padded(stdout, k->kernel, 32);
        put_padded(stdout, k->shape, 36);
        printf("%12.3f %11.2f %11.2f  %s\n", k->flops / 1e9, (k->bytes_read + k->bytes_written) / 1e6,
               cost_kernel_floor(k, p) * 1e6, cost_kernel_compute_bound(k, p) ? "compute" : "memory");
    }
}

typedef struct family_row {
    const char *family;
    int launches, compute;
    double flops, bytes, floor;
} family_row;

static int family_cmp(const void *a, const void *b) {
    double x = ((const family_row *)a)->floor, y = ((const family_row *)b)->floor;
    return (x < y) - (x > y);
}

static void print_families(const cost_pass *ps, const cost_peaks *p, const char *title) {
    family_row rows[64];
    int n = 0;
    double total = 0;
    for (int i = 0; i < ps->nkernels; i++) {
        const cost_kernel *k = &ps->kernels[i];
        int r = 0;
        while (r < n && strcmp(rows[r].family, k->family)) r++;
        if (r == n) {
            if (n == 64) continue;
            memset(&rows[n], 0, sizeof rows[n]);
            rows[n++].family = k->family;
        }
        double fl = cost_kernel_floor(k, p);
        rows[r].launches++;
        rows[r].flops += k->flops;
        rows[r].bytes += k->bytes_read + k->bytes_written;
        rows[r].floor += fl;
        if (cost_kernel_compute_bound(k, p)) rows[r].compute++;
        total += fl;
    }
    qsort(rows, (size_t)n, sizeof rows[0], family_cmp);
    printf("\n%s\n", title);
    put_padded(stdout, "  family", 28);
    printf("%9s %12s %10s %10s %7s  %s\n", "launches", "GFLOP", "GB", "floor ms", "share", "bound");
    for (int r = 0; r < n; r++) {
        printf("  ");
        put_padded(stdout, rows[r].family, 26);
        const char *bound = rows[r].compute == rows[r].launches ? "compute" : rows[r].compute ? "mixed" : "memory";
        printf("%9d %12.1f %10.3f %10.3f %6.1f%%  %s\n", rows[r].launches, rows[r].flops / 1e9, rows[r].bytes / 1e9,
               rows[r].floor * 1e3, total > 0 ? 100 * rows[r].floor / total : 0.0, bound);
    }
}

/* ---- JSON --------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_pass(FILE *f, const cost_pass *ps, const cost_peaks *p, int *first) {
    for (int i = 0; i < ps->nkernels; i++) {
        const cost_kernel *k = &ps->kernels[i];
        fprintf(f, "%s\n  {\"pass\":", *first ? "" : ",");
        *first = 0;
        json_str(f, ps->name);
        fprintf(f, ",\"batch\":%d,\"phase\":", ps->batch);
        json_str(f, cost_phase_name(k->phase));
        fprintf(f, ",\"layer\":");
        json_str(f, k->layer);
        fprintf(f, ",\"name\":");
        json_str(f, k->kernel);
        fprintf(f, ",\"family\":");
        json_str(f, k->family);
        fprintf(f, ",\"shape\":");
        json_str(f, k->shape);
        fprintf(f, ",\"unit\":\"%s\",\"flops\":%.17g,\"bytes\":%.17g,\"bytes_read\":%.17g,\"bytes_written\":%.17g,"
                   "\"floor_us\":%.17g,\"bound\":\"%s\"}",
                k->unit == COST_UNIT_GEMM ? "gemm" : "cuda_core", k->flops, k->bytes_read + k->bytes_written,
                k->bytes_read, k->bytes_written, cost_kernel_floor(k, p) * 1e6,
                cost_kernel_compute_bound(k, p) ? "compute" : "memory");
    }
}

static void json_ops(FILE *f, const cost_pass *ps, const cost_peaks *p, int *first) {
    for (int i = 0; i < ps->nops; i++) {
        const cost_op *o = &ps->ops[i];
        fprintf(f, "%s\n  {\"pass\":", *first ? "" : ",");
        *first = 0;
        json_str(f, ps->name);
        fprintf(f, ",\"phase\":");
        json_str(f, cost_phase_name(o->phase));
        fprintf(f, ",\"layer\":");
        json_str(f, o->layer);
        fprintf(f, ",\"op\":");
        json_str(f, o->op);
        fprintf(f, ",\"kernels\":%d,\"gemm_flops\":%.17g,\"core_flops\":%.17g,\"ideal_bytes\":%.17g,"
                   "\"ideal_floor_us\":%.17g}",
                o->nk, o->gemm_flops, o->core_flops, o->ideal_bytes, cost_op_ideal_floor(o, p) * 1e6);
    }
}

static void print_json(const cost_model *cm, const cost_peaks *p, const char *gpu) {
    const cost_config *c = &cm->cfg;
    cost_totals st, in, sl, il, en, e1;
    cost_pass_totals(&cm->step, p, &st);
    cost_pass_totals(&cm->input, p, &in);
    cost_pass_totals(&cm->step_last, p, &sl);
    cost_pass_totals(&cm->input_last, p, &il);
    cost_pass_totals(&cm->encode, p, &en);
    cost_pass_totals(&cm->encode_b1, p, &e1);
    const char *prec = c->precision == DATH_TF32 ? "tf32" : c->precision == DATH_BF16 ? "bf16" : "fp32";
    printf("{\"what\":\"dath cost: a model's prediction (host/cost.h), not a measurement\",\"variant\":\"%s\","
           "\"bits\":%d,\"classes\":%d,\"batch\":%d,\"input_size\":%d,\"precision\":\"%s\",\"conv\":\"%s\","
           "\"j2\":\"%s\",\"gpu\":",
           variant_name(c->variant), c->K, c->C, c->B, c->S, prec, backend_conv_algo_name(c->conv_algo),
           c->single_label ? "eq. 6" : "eq. 7");
    json_str(stdout, gpu);
    printf(",\"peaks\":{\"gemm_tflops\":%.17g,\"cuda_core_tflops\":%.17g,\"bandwidth_gbs\":%.17g,\"source\":",
           p->gemm_tflops, p->core_tflops, p->gbs);
    json_str(stdout, p->source);
    printf("},\"parameters\":%zu", cm->nparams);
    printf(",\"step_flops\":%.17g,\"step_gemm_flops\":%.17g,\"step_bytes\":%.17g,\"step_launches\":%d,"
           "\"step_floor_ms\":%.17g,\"ideal_step_floor_ms\":%.17g",
           st.flops, st.gemm_flops, st.bytes, st.launches, st.floor * 1e3, st.ideal * 1e3);
    printf(",\"step_host_bytes_up\":%.17g,\"step_host_bytes_down\":%.17g", cm->step.host_up, cm->step.host_down);
    printf(",\"input_floor_ms\":%.17g,\"ideal_input_floor_ms\":%.17g", in.floor * 1e3, in.ideal * 1e3);
    printf(",\"epoch_images\":%d,\"epoch_full_batches\":%d,\"epoch_last_batch\":%d", COST_EPOCH_IMAGES,
           cm->epoch_full, cm->epoch_last);
    printf(",\"step_last_floor_ms\":%.17g,\"input_last_floor_ms\":%.17g", sl.floor * 1e3, il.floor * 1e3);
    printf(",\"epoch_floor_s\":%.17g,\"ideal_epoch_floor_s\":%.17g", cost_epoch_floor(cm, p, 0),
           cost_epoch_floor(cm, p, 1));
    printf(",\"encode_b1_floor_ms\":%.17g,\"ideal_encode_b1_floor_ms\":%.17g", e1.floor * 1e3, e1.ideal * 1e3);
    printf(",\"encode_floor_ms\":%.17g,\"ideal_encode_floor_ms\":%.17g,\"encode_flops\":%.17g,\"encode_bytes\":%.17g",
           en.floor * 1e3, en.ideal * 1e3, en.flops, en.bytes);
    printf(",\"encode_host_bytes_up\":%.17g,\"encode_host_bytes_down\":%.17g", cm->encode.host_up,
           cm->encode.host_down);
    printf(",\"kernels\":[");
    int first = 1;
    const cost_pass *all[] = {&cm->step, &cm->input, &cm->step_last, &cm->input_last, &cm->encode, &cm->encode_b1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) json_pass(stdout, all[i], p, &first);
    printf("\n],\"ops\":[");
    first = 1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) json_ops(stdout, all[i], p, &first);
    printf("\n]}\n");
}

/* ---- text ---------------------------------------------------------------------------- */

static void print_text(const cost_model *cm, const cost_peaks *p, int summary) {
    const cost_config *c = &cm->cfg;
    const char *prec = c->precision == DATH_TF32 ? "tf32" : c->precision == DATH_BF16 ? "bf16" : "fp32";
    printf("dath cost: %s, %d bits, %d classes, batch %d, %d×%d, %s, %s convolutions — a model's prediction, not a "
           "measurement\n",
           variant_name(c->variant), c->K, c->C, c->B, c->S, c->S, prec, backend_conv_algo_name(c->conv_algo));
    printf("peaks: %s\n", p->source);
    printf("floor of a kernel = max(FLOPs / peak of its unit, bytes / bandwidth); no launch latency; "
           "conventions in host/cost.h\n");
    char title[160];
    if (!summary) {
        snprintf(title, sizeof title, "training step, batch %d (the step's graph: forward, backward, update):", c->B);
        print_kernels(&cm->step, p, title);
        snprintf(title, sizeof title, "input, each batch of %d (feed_pop, before the step's graph):", c->B);
        print_kernels(&cm->input, p, title);
        snprintf(title, sizeof title, "encode pass, batch %d (transform + forward, no dropout):", c->B);
        print_kernels(&cm->encode, p, title);
        print_kernels(&cm->encode_b1, p, "encode pass, batch 1:");
    }
    snprintf(title, sizeof title, "training step, batch %d, by kernel family:", c->B);
    print_families(&cm->step, p, title);
    cost_totals st, in, sl, en, e1;
    cost_pass_totals(&cm->step, p, &st);
    cost_pass_totals(&cm->input, p, &in);
    cost_pass_totals(&cm->step_last, p, &sl);
    cost_pass_totals(&cm->encode, p, &en);
    cost_pass_totals(&cm->encode_b1, p, &e1);
    printf("\ntotals (each the sum of its kernels' floors; ideal: each op one kernel, each tensor read and "
           "written once)\n");
    printf("  step, batch %d      %.4g TFLOP (GEMM %.4g), %.3f GB, %d launches: floor %.3f ms, ideal %.3f ms\n",
           c->B, st.flops / 1e12, st.gemm_flops / 1e12, st.bytes / 1e9, st.launches, st.floor * 1e3, st.ideal * 1e3);
    printf("  input, batch %d     %.3f GB, %d launches: floor %.3f ms, ideal %.3f ms\n", c->B, in.bytes / 1e9,
           in.launches, in.floor * 1e3, in.ideal * 1e3);
    char last[64] = "";
    if (cm->epoch_last) snprintf(last, sizeof last, " + one of %d (step floor %.3f ms)", cm->epoch_last, sl.floor * 1e3);
    printf("  epoch, %d images: %d steps of %d%s: floor %.3f s, ideal %.3f s\n", COST_EPOCH_IMAGES, cm->epoch_full,
           c->B, last, cost_epoch_floor(cm, p, 0), cost_epoch_floor(cm, p, 1));
    printf("  encode, batch 1      %.4g GFLOP, %.3f GB, %d launches: floor %.3f ms, ideal %.3f ms\n", e1.flops / 1e9,
           e1.bytes / 1e9, e1.launches, e1.floor * 1e3, e1.ideal * 1e3);
    printf("  encode, batch %d    %.4g TFLOP, %.3f GB, %d launches: floor %.3f ms (%.4f ms an image), ideal %.3f ms\n",
           c->B, en.flops / 1e12, en.bytes / 1e9, en.launches, en.floor * 1e3, en.floor * 1e3 / c->B, en.ideal * 1e3);
    printf("  host transfers, not in any floor: step %.0f B up, %.0f B down; encode batch %d %.0f B up, %.0f B down\n",
           cm->step.host_up, cm->step.host_down, c->B, cm->encode.host_up, cm->encode.host_down);
}

static void print_gpus(void) {
    printf("%-10s %-32s %5s %9s %9s %9s %9s\n", "--gpu", "device", "sm", "fp32", "tf32", "bf16", "GB/s");
    for (int i = 0; i < cost_ngpus; i++) {
        const cost_gpu *g = &cost_gpus[i];
        printf("%-10s %-32s %5d %9.2f %9.2f %9.2f %9.0f\n", g->name, g->label, g->sm, g->fp32, g->tf32, g->bf16, g->gbs);
    }
    printf("dense TFLOP/s from NVIDIA's datasheets (sources in host/cost.c); 0: no such unit\n");
}

int cmd_cost(int argc, char **argv) {
    const char *variant = "dath", *precision = "tf32", *gpu = "h200";
    int bits = 64, classes = 80, batch = 128, size = 224, json = 0, summary = 0, single = 0, list = 0;
    int conv = DATH_CONV_IMPLICIT;
    float peak = NAN, bw = NAN;   /* NaN: not given (the parser refuses non-finite values) */
    opt_spec spec[] = {
        {"variant", OPT_STR, &variant, "dath", "dath, dath-s, dath-c, dath-n or dath-1"},
        {"bits", OPT_INT, &bits, "64", "hash code length K"},
        {"classes", OPT_INT, &classes, "80", "number of classes C"},
        {"batch", OPT_INT, &batch, "128", "images a training step (and an encode batch), 1 to 2048"},
        {"input-size", OPT_INT, &size, "224", "input side S (at least 63)"},
        {"precision", OPT_STR, &precision, "tf32", "fp32, tf32 or bf16: the GEMMs' unit"},
        {"conv", OPT_ENUM, &conv, "implicit", "the convolutions' path: implicit GEMMs or im2col + cuBLAS", 0, backend_conv_algos},
        {"gpu", OPT_STR, &gpu, "h200", "the datasheet row (--list-gpus shows them)"},
        {"peak-tflops", OPT_FLOAT, &peak, NULL, "measured GEMM TFLOP/s at the precision (bench_peak), replaces the datasheet's"},
        {"bandwidth-gbs", OPT_FLOAT, &bw, NULL, "measured device memory GB/s (bench_peak's copy), replaces the datasheet's"},
        {"single-label", OPT_FLAG, &single, "0", "J2 as softmax cross-entropy (eq. 6) instead of eq. 7"},
        {"summary", OPT_FLAG, &summary, "0", "only the step's kernel families and the totals"},
        {"json", OPT_FLAG, &json, "0", "one JSON object instead of the tables"},
        {"list-gpus", OPT_FLAG, &list, "0", "print the GPU table and exit"},
        {0}};
    char err[512];
    int rc = opts_parse("dath cost", "[--variant V --bits K --batch B --input-size S --precision P --gpu NAME] [options]",
                        spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath cost: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    if (list) {
        print_gpus();
        return 0;
    }
    cost_config cf = {0};
    if (variant_parse(variant, &cf.variant)) {
        fprintf(stderr, "dath cost: --variant '%s': expected dath, dath-s, dath-c, dath-n or dath-1\n", variant);
        return 2;
    }
    cf.conv_algo = conv;
    cf.precision = backend_precision_parse(precision);
    if (cf.precision < 0) {
        fprintf(stderr, "dath cost: --precision '%s': expected fp32, tf32 or bf16\n", precision);
        return 2;
    }
    const cost_gpu *g = cost_gpu_find(gpu);
    if (!g) {
        fprintf(stderr, "dath cost: --gpu '%s': unknown; one of", gpu);
        for (int i = 0; i < cost_ngpus; i++) fprintf(stderr, " %s", cost_gpus[i].name);
        fprintf(stderr, " (or give --peak-tflops and --bandwidth-gbs with the nearest row)\n");
        return 2;
    }
    if (!isnan(peak) && !(peak > 0)) {
        fprintf(stderr, "dath cost: --peak-tflops %g: expected a positive TFLOP/s\n", (double)peak);
        return 2;
    }
    if (!isnan(bw) && !(bw > 0)) {
        fprintf(stderr, "dath cost: --bandwidth-gbs %g: expected a positive GB/s\n", (double)bw);
        return 2;
    }
    if (batch < 1 || batch > 2048) {
        fprintf(stderr, "dath cost: --batch %d: expected 1 to 2048 (J1's CUDA kernel mines at most 2048 rows)\n", batch);
        return 2;
    }
    cost_peaks pk;
    if (cost_peaks_for(g, cf.precision, isnan(peak) ? 0 : peak, isnan(bw) ? 0 : bw, &pk, err, sizeof err)) {
        fprintf(stderr, "dath cost: --gpu %s --precision %s: %s\n", gpu, precision, err);
        return 2;
    }
    cf.K = bits;
    cf.C = classes;
    cf.B = batch;
    cf.S = size;
    cf.single_label = single;
    cost_model cm;
    if (cost_build(&cm, &cf, err, sizeof err)) {
        fprintf(stderr, "dath cost: %s\n", err);
        return 2;
    }
    if (json) print_json(&cm, &pk, gpu);
    else print_text(&cm, &pk, summary);
    cost_free(&cm);
    return 0;
}
