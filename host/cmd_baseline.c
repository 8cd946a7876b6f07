/* host/cmd_baseline.c — `dath baseline`: the traditional hashing methods of the paper's
 * Table 2 (host/baseline.h) learned on training features and applied to others.
 *
 *   learn and apply:  --method M --bits K --train-features F.npy [--train-labels L.npy]
 *                     --features X.npy --out codes.npy [--save-model model.safetensors]
 *   learn only:       --method M --bits K --train-features F.npy ... --save-model model.safetensors
 *   apply a model:    --model model.safetensors --features X.npy --out codes.npy
 *
 * Writes (each atomically): OUT, uint8 [rows of X, (K+7)/8] in numpy.packbits order
 * (DESIGN.md §7), scored by `dath eval` like DATH's codes; --save-model, the model file
 * (format in host/baseline.h). Progress and the learner's trace go to stderr. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baseline.h"
#include "cli.h"
#include "npy.h"
#include "opts.h"
#include "clock.h"

/* The learner's trace on stderr: first and last value, and every one with verbose. */
static void baseline_print_trace(const baseline_model *m, int verbose) {
    if (!m->trace || m->ntrace < 1) return;
    const int sdh = m->method == BASELINE_SDH;
    const char *what = sdh ? "objective ‖Y − BW‖² + λ‖W‖² + ν(‖B − ΦP‖² + δ‖P‖²)" : "quantisation error ‖B − VR‖²";
    int rises = 0;
    for (int t = 1; t < m->ntrace; t++) rises += m->trace[t] > m->trace[t - 1];
    fprintf(stderr, "dath baseline: %s: %s %.6g at the %s, %.6g at the end (%d step%s, %s)\n",
            baseline_method_name(m->method), what, m->trace[0], sdh ? "first F-step" : "random rotation",
            m->trace[m->ntrace - 1], m->ntrace - 1, m->ntrace == 2 ? "" : "s",
            rises ? "it ROSE at some step" : "never rising");
    if (!verbose) return;
    for (int t = 0; t < m->ntrace; t++) {
        if (sdh) {
            /* F, B; then G, F, B per round; the closing F */
            static const char *const kind[3] = {"G", "F", "B"};
            int round = (t + 1) / 3 + 1, step = (t + 1) % 3;
            if (t == m->ntrace - 1) fprintf(stderr, "  sdh final F-step: %.17g\n", m->trace[t]);
            else fprintf(stderr, "  sdh round %d %s-step: %.17g\n", round, kind[step], m->trace[t]);
        } else {
            fprintf(stderr, "  itq round %d: %.17g\n", t, m->trace[t]);
        }
    }
}

int cmd_baseline(int argc, char **argv) {
    const char *method = NULL, *train_features = NULL, *train_labels = NULL, *features = NULL, *out = NULL;
    const char *save_model = NULL, *model_path = NULL;
    int bits = 0, verbose = 0;
    baseline_opts o = baseline_opts_default();
    float cca_reg, sdh_lambda, sdh_nu, sdh_delta;
    opt_spec spec[] = {
        {"method", OPT_STR, &method, NULL, "lsh, pcah, itq, itq-cca or sdh", 0},
        {"bits", OPT_INT, &bits, NULL, "code length K (1 to 4096; at most the feature dimension for pcah, itq, itq-cca)", 0},
        {"train-features", OPT_STR, &train_features, NULL, "features to learn from (.npy float32 or float64, [N, D])", 0},
        {"train-labels", OPT_STR, &train_labels, NULL, "their labels (.npy uint8 0/1, [N, C]); itq-cca and sdh need them", 0},
        {"features", OPT_STR, &features, NULL, "features to encode (.npy, [rows, D])", 0},
        {"out", OPT_STR, &out, NULL, "their codes (.npy uint8, numpy.packbits order)", 0},
        {"seed", OPT_U64, &o.seed, "1", "seed of the random projections (lsh), ITQ's start and SDH's anchors and start", 0},
        {"save-model", OPT_STR, &save_model, NULL, "also write the learned model here (.safetensors)", 0},
        {"model", OPT_STR, &model_path, NULL, "apply this saved model instead of learning one", 0},
        {"itq-iters", OPT_INT, &o.itq_iters, "50", "itq, itq-cca: rounds of the rotation (Gong & Lazebnik: 50)", 0},
        {"cca-reg", OPT_FLOAT, &cca_reg, "1e-4", "itq-cca: ridge r, r·tr(C)/dim added to Cxx's and Cyy's diagonals", 0},
        {"sdh-anchors", OPT_INT, &o.sdh_anchors, "1000", "sdh: RBF anchors m, sampled from the training rows", 0},
        {"sdh-lambda", OPT_FLOAT, &sdh_lambda, "1", "sdh: λ, the G-step's ridge", 0},
        {"sdh-nu", OPT_FLOAT, &sdh_nu, "1e-5", "sdh: ν, the weight of ‖B − F(X)‖²", 0},
        {"sdh-delta", OPT_FLOAT, &sdh_delta, "1e-6", "sdh: the F-step's ridge, times tr(ΦᵀΦ)/(m+1)", 0},
        {"sdh-iters", OPT_INT, &o.sdh_iters, "5", "sdh: rounds of G-, F- and B-steps", 0},
        {"sdh-dcc", OPT_INT, &o.sdh_dcc, "5", "sdh: at most this many DCC sweeps over the bits per B-step", 0},
        {"verbose", OPT_FLAG, &verbose, "0", "print the quantisation error (itq) or objective (sdh) of every step", 0},
        {0}};
    static const char *synopsis =
        "--method lsh|pcah|itq|itq-cca|sdh --bits K --train-features F.npy [--train-labels L.npy]\n"
        "           --features X.npy --out CODES.npy [--seed N] [--save-model M.safetensors] [options]\n"
        "       dath baseline --model M.safetensors --features X.npy --out CODES.npy";
    char err[4096];
    int rc = opts_parse("dath baseline", synopsis, spec, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath baseline: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    o.cca_reg = cca_reg;
    o.sdh_lambda = sdh_lambda;
    o.sdh_nu = sdh_nu;
    o.sdh_delta = sdh_delta;
    if (!features != !out) {
        fprintf(stderr, "dath baseline: --features and --out go together (the codes of --features are written to --out)\n");
        return 2;
    }
    if (model_path) {
        if (method || bits || train_features || train_labels || save_model) {
            fprintf(stderr, "dath baseline: --model applies a saved model: it takes only --features and --out "
                    "(not --method, --bits, --train-features, --train-labels or --save-model)\n");
            return 2;
        }
        if (!features) {
            fprintf(stderr, "dath baseline: --model needs --features and --out\n");
            return 2;
        }
    } else {
        if (!method || !train_features || !bits) {
            fprintf(stderr, "dath baseline: need --method, --bits and --train-features (or --model); see dath baseline --help\n");
            return 2;
        }
        int m = baseline_method_parse(method);
        if (m < 0) {
            fprintf(stderr, "dath baseline: --method '%s': expected lsh, pcah, itq, itq-cca or sdh\n", method);
            return 2;
        }
        o.method = (baseline_method)m;
        if (bits < 1 || bits > BASELINE_MAX_BITS) {
            fprintf(stderr, "dath baseline: --bits %d: expected 1 to %d\n", bits, BASELINE_MAX_BITS);
            return 2;
        }
        o.bits = bits;
        if (!features && !save_model) {
            fprintf(stderr, "dath baseline: nothing to write: give --features and --out, or --save-model\n");
            return 2;
        }
        if (baseline_supervised(o.method) && !train_labels) {
            fprintf(stderr, "dath baseline: %s learns from labels: give --train-labels\n", method);
            return 2;
        }
    }

    baseline_model model = {0};
    float *X = NULL, *T = NULL;
    uint8_t *L = NULL, *codes = NULL;
    rc = 1;
    if (model_path) {
        if (baseline_load(&model, model_path, err, sizeof err)) goto fail;
        fprintf(stderr, "dath baseline: %s, %d bits, %d dimensions, from %s\n", baseline_method_name(model.method),
                model.K, model.D, model_path);
    } else {
        int64_t n, d, ln = 0, lc = 0;
        if (npy_read_f32(train_features, &T, &n, &d, err, sizeof err)) goto fail;
        if (n < 1 || d < 1) {
            fprintf(stderr, "dath baseline: %s: no features to learn from (shape (%" PRId64 ", %" PRId64 "))\n",
                    train_features, n, d);
            goto out;
        }
        if (d > INT32_MAX) {
            fprintf(stderr, "dath baseline: %s: %" PRId64 " columns is too many\n", train_features, d);
            goto out;
        }
        if (train_labels) {
            if (!baseline_supervised(o.method))
                fprintf(stderr, "dath baseline: note: %s is unsupervised; %s is not used\n", method, train_labels);
            else {
                if (npy_read_u8(train_labels, &L, &ln, &lc, err, sizeof err)) goto fail;
                if (ln != n) {
                    fprintf(stderr, "dath baseline: %s has %" PRId64 " rows but %s has %" PRId64
                            ": one label row per feature row\n", train_labels, ln, train_features, n);
                    goto out;
                }
                if (lc < 1 || lc > INT32_MAX) {
                    fprintf(stderr, "dath baseline: %s: %" PRId64 " label columns; expected at least one class\n",
                            train_labels, lc);
                    goto out;
                }
            }
        }
        fprintf(stderr, "dath baseline: learning %s, %d bits, on %s (%" PRId64 " × %" PRId64 ")%s%s\n", method, bits,
                train_features, n, d, L ? " with labels " : "", L ? train_labels : "");
        double t0 = dath_now();
        if (baseline_learn(&model, &o, T, n, (int)d, L, (int)lc, train_features, err, sizeof err)) goto fail;
        double dt = dath_now() - t0;
        if (model.method == BASELINE_SDH)
            fprintf(stderr, "dath baseline: sdh: %d anchors, σ = %.6g (the mean distance of a training row to an anchor)\n",
                    model.m, model.sigma);
        baseline_print_trace(&model, verbose);
        fprintf(stderr, "dath baseline: learned %s in %.2f s\n", method, dt);
        free(T);
        T = NULL;
        free(L);
        L = NULL;
        if (save_model) {
            if (baseline_save(&model, save_model, train_features, err, sizeof err)) goto fail;
            fprintf(stderr, "dath baseline: wrote %s\n", save_model);
        }
    }
    if (features) {
        int64_t n, d;
        if (npy_read_f32(features, &X, &n, &d, err, sizeof err)) goto fail;
        if (d != model.D) {
            fprintf(stderr, "dath baseline: %s has %" PRId64 " columns; the model was learned on %d-dimensional features\n",
                    features, d, model.D);
            goto out;
        }
        if (baseline_check_finite(X, n, model.D, features, err, sizeof err)) goto fail;
        const int B = (model.K + 7) / 8;
        codes = malloc(n ? (size_t)n * B : 1);   /* [n, B]; n × d floats were allocated, so this fits */
        if (!codes) {
            snprintf(err, sizeof err, "out of memory for %" PRId64 " codes", n);
            goto fail;
        }
        double t0 = dath_now();
        if (baseline_encode(codes, &model, X, n, err, sizeof err)) goto fail;
        double dt = dath_now() - t0;
        if (npy_write_u8(out, codes, n, B, err, sizeof err)) goto fail;
        fprintf(stderr, "dath baseline: %" PRId64 " codes of %d bits → %s (encoded in %.2f s)\n", n, model.K, out, dt);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "dath baseline: %s\n", err);
out:
    free(T); free(L); free(X); free(codes);
    baseline_model_free(&model);
    return rc;
}
