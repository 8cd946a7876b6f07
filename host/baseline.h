/* host/baseline.h — the traditional hashing methods of the paper's Table 2, learned on
 * feature vectors (DeCAF7: AlexNet's fc7 after ReLU) and applied to others:
 *
 *   lsh      random Gaussian projections of the centred features, sign
 *   pcah     the top-K principal directions of the centred features, sign
 *   itq      PCA to K, then the orthogonal rotation R of Gong & Lazebnik (2011/2013):
 *            `iters` rounds of B = sign(V R), R from the SVD of Bᵀ V (orthogonal Procrustes)
 *   itq-cca  CCA between the centred features and labels (ridge-regularised), the top K
 *            canonical directions scaled by their correlations, then ITQ's rotation
 *   sdh      Supervised Discrete Hashing (Shen, Shen, Liu, Shao 2015): RBF features of m
 *            anchors, alternating G-step (ridge regression of labels on codes), F-step
 *            (ridge regression of codes on the RBF features) and B-step (discrete cyclic
 *            coordinate descent, DCC)
 *
 * Shapes: N training rows, D feature dimensions, C classes, K bits, m anchors. Features
 * are float32 row-major [N, D]; labels uint8 [N, C] (non-zero = 1). All arithmetic that
 * matters (covariances, eigen- and singular-value decompositions, regressions) is double.
 * A bit is 1 when its projection is ≥ 0 (DESIGN.md §5); codes are packed as
 * numpy.packbits packs them (bit k of a code is bit 7 − k%8 of byte k/8).
 *
 * Eigen- and singular vectors are made unique by sign: the component of largest magnitude
 * (the first such, by index) of each direction is positive. Random numbers come from
 * kernels/rng.h's counter-based generator keyed by the seed, with the tags below.
 *
 * Functions return 0, or -1 with a message in err. Ownership: a baseline_model owns every
 * buffer it points to; baseline_model_free frees them. */
#ifndef DATH_BASELINE_H
#define DATH_BASELINE_H

#include <stddef.h>
#include <stdint.h>

/* rng tags of the baselines (kernels/rng.h's RNG_* use 1..3 and 16..21) */
enum {
    BASELINE_RNG_LSH = 64,      /* a = bit k, b = dimension d: projection [d, k] */
    BASELINE_RNG_ITQ = 65,      /* a = row, b = column: the Gaussian matrix whose QR starts R */
    BASELINE_RNG_SDH = 66       /* a = 0, b = row: anchor order; a = 1, b = row, c = bit: B's start */
};

typedef enum { BASELINE_LSH, BASELINE_PCAH, BASELINE_ITQ, BASELINE_ITQ_CCA, BASELINE_SDH } baseline_method;

enum { BASELINE_MAX_BITS = 4096 };

/* The method's name as the command line writes it ("itq-cca"). */
const char *baseline_method_name(baseline_method m);
/* Parses a name; returns the method, or -1 for an unknown one. */
int baseline_method_parse(const char *name);
/* 1 when the method learns from labels (itq-cca, sdh). */
int baseline_supervised(baseline_method m);

typedef struct baseline_opts {
    baseline_method method;
    int bits;                /* K, 1..BASELINE_MAX_BITS (≤ D for pcah, itq, itq-cca) */
    uint64_t seed;
    int itq_iters;           /* ITQ's rotation rounds (Gong & Lazebnik: 50) */
    double cca_reg;          /* CCA ridge: r·tr(Cxx)/D added to Cxx's diagonal, r·tr(Cyy)/C to Cyy's */
    int sdh_anchors;         /* m (Shen et al.: 1000) */
    double sdh_lambda;       /* λ, the G-step's ridge (Shen et al.: 1) */
    double sdh_nu;           /* ν, the weight of ‖B − F(X)‖² (Shen et al.: 1e-5) */
    double sdh_delta;        /* the F-step's ridge, relative: δ·tr(ΦᵀΦ)/(m+1) (dath's: 1e-6) */
    int sdh_iters;           /* outer G/F/B rounds (Shen et al.: t = 5) */
    int sdh_dcc;             /* DCC sweeps over the bits per B-step, at most (dath's: 5) */
} baseline_opts;

/* The defaults above. */
baseline_opts baseline_opts_default(void);

typedef struct baseline_model {
    baseline_method method;
    int K, D;                /* bits, feature dimensions */
    /* How codes are computed (the only fields baseline_encode reads):
     *   linear methods: code = [ (x − mean) · proj ≥ 0 ]
     *   sdh:            code = [ [φ(x), 1] · proj ≥ 0 ],
     *                   φ_j(x) = exp(−‖x − anchors_j‖² / (2 σ²)) */
    double *mean;            /* [D] the training mean (linear methods; NULL for sdh) */
    double *proj;            /* [D, K] (linear) or [m + 1, K] (sdh) */
    int m;                   /* sdh: anchors */
    float *anchors;          /* [m, D] sdh: training rows, copied */
    double sigma;            /* sdh: the RBF width, the mean distance of training rows to anchors */
    /* What the learner found, saved for inspection (NULL / 0 where the method has none): */
    double *dirs;            /* [D, K] pcah, itq: principal directions; itq-cca: canonical
                              * directions scaled by their correlations */
    double *vals;            /* [K] pcah, itq: the covariance's eigenvalues (1/N normalised);
                              * itq-cca: the canonical correlations */
    double *rotation;        /* [K, K] itq, itq-cca: R (proj = dirs · R) */
    double *trace;           /* [ntrace] itq, itq-cca: ‖B − VR‖² after round t = 0..iters
                              * (t = 0: the random start); sdh: the objective after every step */
    int ntrace;
    int64_t train_rows;
    baseline_opts opts;      /* as learned (for the model file's metadata) */
} baseline_model;

/* Learns m from features X [N, D] (and labels Y [N, C] for itq-cca and sdh; may be NULL
 * otherwise). Checks the sizes (K against D, N and 4096; m against N) and that X is finite;
 * messages name `what` (the features file) and the value. On failure m holds nothing. */
int baseline_learn(baseline_model *m, const baseline_opts *o, const float *X, int64_t N, int D,
                   const uint8_t *Y, int C, const char *what, char *err, size_t err_len);

/* codes [N, (K+7)/8] from features X [N, D] (D = m->D); padding bits are 0. X must be
 * finite (baseline_check_finite). */
int baseline_encode(uint8_t *codes, const baseline_model *m, const float *X, int64_t N, char *err,
                    size_t err_len);

/* Returns 0 when every value of X [N, D] is finite, else -1 naming `what`, the row and column. */
int baseline_check_finite(const float *X, int64_t N, int D, const char *what, char *err, size_t err_len);

/* The model file: safetensors (host/safetensors.h), written atomically. Metadata
 * "dath_baseline" = "1" (the format's version), "method", "bits", "dim", "seed",
 * "train_rows", the options; tensors F64 "mean" [D] and "proj" [D, K] (linear methods)
 * or F32 "anchors" [m, D], F64 "sigma" [1] and "proj" [m+1, K] (sdh), and, when the
 * method has them, F64 "dirs" [D, K], "vals" [K], "rotation" [K, K], "trace" [n].
 * `source` (may be NULL) is stored as metadata "train_features". */
int baseline_save(const baseline_model *m, const char *path, const char *source, char *err,
                  size_t err_len);
/* Reads what baseline_encode needs (and the inspection tensors when present). Every
 * field is checked: version, method, sizes, each tensor's dtype and exact shape, finite
 * values; anything else is an error naming the file and the field. */
int baseline_load(baseline_model *m, const char *path, char *err, size_t err_len);

void baseline_model_free(baseline_model *m);

#endif
