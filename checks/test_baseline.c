/* checks/test_baseline.c — float .npy files and the baselines' known answers (host/npy.h,
 * host/baseline.h). The comparison with a numpy version of every method, the command line
 * and the MAPs through `dath eval` are in checks/test_baseline.py.
 *
 * .npy float32/float64:
 *   - npy_write_f32 → npy_read_f32 round trip, bit for bit; a 0-row file;
 *   - '<f8' converted, '>f4' byte-swapped; a float64 value outside float32's range refused;
 *   - the size is checked before allocation: a header of (10⁶, 10⁶) over a few bytes of data
 *     says "truncated" (a reader that allocated first would fail with "out of memory" or
 *     take 4 TB); an overflowing shape is "too large"; too much data, another dtype, Fortran
 *     order and an empty file are errors naming the file.
 * Known answers:
 *   - PCAH on data built to have covariance Q·diag(s²)·Qᵀ exactly: its directions are Q's
 *     first K columns (canonical sign) within 2e-5 and its eigenvalues s² within 1e-4
 *     relative (the data are stored as float32, 6e-8 relative, and the gaps are ≥ 0.3 s²);
 *   - ITQ: the quantisation error ‖B − VR‖² never rises from one round to the next (printed),
 *     and falls overall; R is orthogonal to 1e-12;
 *   - LSH: over 8 seeds × 512 bits on data offset far from the origin, every bit's mean over
 *     1,000 points is 0.5 within 6 binomial standard deviations, and all bits' mean within 4;
 *     the same check on the uncentred projections fails (a negative control: the check
 *     would catch a missing centring);
 *   - SDH: its objective never rises over its steps;
 *   - a model saved and loaded encodes to the same codes; a model file with a wrong shape
 *     or without the format's metadata is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../host/baseline.h"
#include "../host/npy.h"
#include "../host/safetensors.h"
#include "check.h"

static char tmpdir[] = "/tmp/dath-baseline-XXXXXX";

static const char *tmp(const char *name) {
    static char buf[4][256];
    static int at;
    char *b = buf[at++ % 4];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}

/* Writes a .npy file by hand: header dict text, then n bytes of data. */
static void write_npy(const char *path, const char *dict, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 255),
                             (unsigned char)((total - 10) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, dl, f);
    for (size_t i = 10 + dl; i < total - 1; i++) fputc(' ', f);
    fputc('\n', f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* 1 when reading path fails with a message that holds both the file's name and `want`. */
static int read_fails(const char *path, const char *want) {
    float *d = NULL;
    int64_t r, c;
    char err[512] = "";
    int rc = npy_read_f32(path, &d, &r, &c, err, sizeof err);
    free(d);
    int ok = rc != 0 && strstr(err, path) && strstr(err, want);
    if (!ok) printf("     got rc %d, message: %s\n", rc, err);
    return ok;
}

static void check_npy(void) {
    char err[512];
    uint64_t s = 5;
    float a[7 * 3], *b = NULL;
    check_fill(a, 21, -3, 3, &s);
    a[4] = -0.0f;
    a[5] = 1e-40f;   /* a subnormal */
    int64_t r = 0, c = 0;
    CHECK_TRUE("npy f32: write", npy_write_f32(tmp("a.npy"), a, 7, 3, err, sizeof err) == 0);
    CHECK_TRUE("npy f32: read back bit for bit",
               npy_read_f32(tmp("a.npy"), &b, &r, &c, err, sizeof err) == 0 && r == 7 && c == 3 &&
                   memcmp(a, b, sizeof a) == 0);
    free(b); b = NULL;
    CHECK_TRUE("npy f32: a 0-row file", npy_write_f32(tmp("z.npy"), a, 0, 3, err, sizeof err) == 0 &&
                                            npy_read_f32(tmp("z.npy"), &b, &r, &c, err, sizeof err) == 0 && r == 0 && c == 3);
    free(b); b = NULL;
    double d8[6] = {1.5, -2.25, 1e-3, 3.0e38, -7, 0.1};
    write_npy(tmp("d.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d8, sizeof d8);
    int ok = npy_read_f32(tmp("d.npy"), &b, &r, &c, err, sizeof err) == 0 && r == 2 && c == 3;
    for (int i = 0; ok && i < 6; i++) ok = b[i] == (float)d8[i];
    CHECK_TRUE("npy '<f8' read and converted to float32", ok);
    free(b); b = NULL;
    uint8_t be[8];
    float two[2] = {1.0f, -3.5f};
    for (int i = 0; i < 2; i++) {
        uint8_t *p = (uint8_t *)&two[i];
        for (int k = 0; k < 4; k++) be[4 * i + k] = p[3 - k];
    }
    write_npy(tmp("be.npy"), "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), }", be, 8);
    CHECK_TRUE("npy '>f4' byte-swapped", npy_read_f32(tmp("be.npy"), &b, &r, &c, err, sizeof err) == 0 &&
                                             b[0] == 1.0f && b[1] == -3.5f);
    free(b); b = NULL;
    double big[2] = {1.0, 1e300};
    write_npy(tmp("big.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", big, 16);
    CHECK_TRUE("npy: float64 outside float32's range refused", read_fails(tmp("big.npy"), "outside float32's range"));
    write_npy(tmp("huge.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", a, 16);
    CHECK_TRUE("npy: (10^6, 10^6) over 16 bytes: 'truncated', before any allocation",
               read_fails(tmp("huge.npy"), "truncated"));
    write_npy(tmp("ovf.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", a, 16);
    CHECK_TRUE("npy: an overflowing shape is 'too large'", read_fails(tmp("ovf.npy"), "too large"));
    write_npy(tmp("long.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }", a, 16);
    CHECK_TRUE("npy: more data than the shape says", read_fails(tmp("long.npy"), "too long"));
    write_npy(tmp("i8.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", a, 16);
    CHECK_TRUE("npy: dtype '<i8' refused, named", read_fails(tmp("i8.npy"), "dtype '<i8' is not float32"));
    write_npy(tmp("u1.npy"), "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 16), }", a, 16);
    CHECK_TRUE("npy: dtype '|u1' refused for features", read_fails(tmp("u1.npy"), "dtype '|u1'"));
    write_npy(tmp("fo.npy"), "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", a, 16);
    CHECK_TRUE("npy: Fortran order refused", read_fails(tmp("fo.npy"), "Fortran order"));
    write_npy(tmp("3d.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", a, 16);
    CHECK_TRUE("npy: three dimensions refused", read_fails(tmp("3d.npy"), "3 dimensions"));
    FILE *f = fopen(tmp("empty.npy"), "wb");
    fclose(f);
    CHECK_TRUE("npy: an empty file", read_fails(tmp("empty.npy"), "not a .npy file"));
    CHECK_TRUE("npy: a missing file", read_fails(tmp("none.npy"), "cannot open"));
    uint8_t *u = NULL;
    CHECK_TRUE("npy_read_u8 still refuses a float file",
               npy_read_u8(tmp("a.npy"), &u, &r, &c, err, sizeof err) != 0 && strstr(err, "not uint8"));
    free(u);
}

/* Orthonormal columns of A [n, k] in place (modified Gram-Schmidt, twice), double. */
static void orthonormalise(double *A, int n, int k) {
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < k; j++) {
            for (int p = 0; p < j; p++) {
                double dot = 0;
                for (int i = 0; i < n; i++) dot += A[(size_t)i * k + j] * A[(size_t)i * k + p];
                for (int i = 0; i < n; i++) A[(size_t)i * k + j] -= dot * A[(size_t)i * k + p];
            }
            double nn = 0;
            for (int i = 0; i < n; i++) nn += A[(size_t)i * k + j] * A[(size_t)i * k + j];
            for (int i = 0; i < n; i++) A[(size_t)i * k + j] /= sqrt(nn);
        }
}

static double gauss_check(uint64_t *s) {   /* test data only */
    double u1 = check_unif(s), u2 = check_unif(s);
    return sqrt(-2 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

static void check_pcah(void) {
    enum { N = 400, D = 12, K = 5 };
    uint64_t s = 11;
    double *Z = malloc(sizeof(double) * N * (D + 1)), Q[D * D], sv[D];
    /* Z [N, D]: orthonormal columns, each orthogonal to the ones vector (so centred) */
    for (int i = 0; i < N; i++) {
        Z[(size_t)i * (D + 1)] = 1.0;
        for (int j = 1; j <= D; j++) Z[(size_t)i * (D + 1) + j] = gauss_check(&s);
    }
    orthonormalise(Z, N, D + 1);
    for (int i = 0; i < D * D; i++) Q[i] = gauss_check(&s);
    orthonormalise(Q, D, D);
    for (int j = 0; j < D; j++) sv[j] = 10.0 * pow(0.7, j);   /* distinct: eigenvalue gaps ≥ 0.5·s² */
    float *X = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) {
            double v = 3.0 + 0.5 * d;   /* an offset: centring matters */
            for (int j = 0; j < D; j++) v += sqrt((double)N) * Z[(size_t)i * (D + 1) + 1 + j] * sv[j] * Q[d * D + j];
            X[(size_t)i * D + d] = (float)v;
        }
    baseline_opts o = baseline_opts_default();
    o.method = BASELINE_PCAH;
    o.bits = K;
    baseline_model m;
    char err[512];
    if (!CHECK_TRUE("pcah: learns", baseline_learn(&m, &o, X, N, D, NULL, 0, "pcah data", err, sizeof err) == 0)) {
        printf("     %s\n", err);
        goto out;
    }
    double want[D * K], got[D * K], wv[K];
    for (int d = 0; d < D; d++)
        for (int k = 0; k < K; k++) want[d * K + k] = Q[d * D + k];
    for (int k = 0; k < K; k++) {   /* canonical sign of the expected directions too */
        int best = 0;
        for (int d = 1; d < D; d++) if (fabs(want[d * K + k]) > fabs(want[best * K + k])) best = d;
        if (want[best * K + k] < 0) for (int d = 0; d < D; d++) want[d * K + k] = -want[d * K + k];
        wv[k] = sv[k] * sv[k];
    }
    memcpy(got, m.proj, sizeof got);
    check_close_d("pcah: projections = top-K principal directions", got, want, D * K, 2e-5, 0);
    check_close_d("pcah: eigenvalues = s^2", m.vals, wv, K, 0, 1e-4);
    baseline_model_free(&m);
out:
    free(Z); free(X);
}

/* Gaussian data with a spread spectrum, offset from the origin: X [N, D]. */
static float *spread_data(int N, int D, uint64_t seed) {
    uint64_t s = seed;
    float *X = malloc(sizeof(float) * N * D);
    double mix[32 * 32];
    for (int i = 0; i < D * D; i++) mix[i] = gauss_check(&s);
    for (int i = 0; i < N; i++) {
        double z[32];
        for (int j = 0; j < D; j++) z[j] = gauss_check(&s) * 4.0 / (1.0 + j);
        for (int d = 0; d < D; d++) {
            double v = 5.0;
            for (int j = 0; j < D; j++) v += mix[d * D + j] * z[j];
            X[(size_t)i * D + d] = (float)v;
        }
    }
    return X;
}

static void check_itq(void) {
    const int cases[3][3] = {{300, 16, 8}, {500, 24, 16}, {200, 8, 8}};   /* N, D, K */
    for (int c = 0; c < 3; c++) {
        const int N = cases[c][0], D = cases[c][1], K = cases[c][2];
        float *X = spread_data(N, D, 100 + c);
        baseline_opts o = baseline_opts_default();
        o.method = BASELINE_ITQ;
        o.bits = K;
        o.seed = 7 + c;
        baseline_model m;
        char err[512], name[128];
        if (baseline_learn(&m, &o, X, N, D, NULL, 0, "itq data", err, sizeof err)) {
            CHECK_TRUE(err, 0);
            free(X);
            continue;
        }
        printf("     itq N=%d D=%d K=%d: ‖B − VR‖² by round:", N, D, K);
        int rises = 0;
        for (int t = 0; t < m.ntrace; t++) {
            printf("%s%.6f", t % 6 ? " " : "\n       ", m.trace[t]);
            if (t && m.trace[t] > m.trace[t - 1] * (1 + 1e-12)) rises++;
        }
        printf("\n");
        snprintf(name, sizeof name, "itq N=%d D=%d K=%d: the error never rises (%d rounds)", N, D, K, m.ntrace - 1);
        CHECK_TRUE(name, m.ntrace == 51 && rises == 0);
        snprintf(name, sizeof name, "itq N=%d D=%d K=%d: and falls overall (%.4f → %.4f)", N, D, K, m.trace[0],
                 m.trace[m.ntrace - 1]);
        CHECK_TRUE(name, m.trace[m.ntrace - 1] < 0.99 * m.trace[0]);
        double worst = 0;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                double dot = 0;
                for (int k = 0; k < K; k++) dot += m.rotation[k * K + i] * m.rotation[k * K + j];
                worst = fmax(worst, fabs(dot - (i == j)));
            }
        snprintf(name, sizeof name, "itq N=%d D=%d K=%d: R orthogonal (worst |RᵀR − I| %.1e)", N, D, K, worst);
        CHECK_TRUE(name, worst < 1e-12);
        baseline_model_free(&m);
        free(X);
    }
}

/* Per-bit means of codes [N, K] packed; returns the largest |mean − 0.5| and adds to *sum. */
static double bit_balance(const uint8_t *codes, int N, int K, double *sum) {
    const int B = (K + 7) / 8;
    double worst = 0;
    for (int k = 0; k < K; k++) {
        int ones = 0;
        for (int i = 0; i < N; i++) ones += codes[(size_t)i * B + k / 8] >> (7 - k % 8) & 1;
        double mean = (double)ones / N;
        *sum += mean;
        worst = fmax(worst, fabs(mean - 0.5));
    }
    return worst;
}

static void check_lsh(void) {
    enum { N = 1000, D = 16, K = 512, SEEDS = 8 };
    float *X = spread_data(N, D, 3);
    for (size_t i = 0; i < (size_t)N * D; i++) X[i] += 20.0f;   /* far from the origin, like ReLU features */
    uint8_t *codes = malloc((size_t)N * K / 8);
    double worst = 0, sum = 0, worst_raw = 0, sum_raw = 0;
    char err[512];
    int ok = 1;
    for (int seed = 1; seed <= SEEDS && ok; seed++) {
        baseline_opts o = baseline_opts_default();
        o.method = BASELINE_LSH;
        o.bits = K;
        o.seed = (uint64_t)seed;
        baseline_model m;
        ok = baseline_learn(&m, &o, X, N, D, NULL, 0, "lsh data", err, sizeof err) == 0 &&
             baseline_encode(codes, &m, X, N, err, sizeof err) == 0;
        if (!ok) break;
        worst = fmax(worst, bit_balance(codes, N, K, &sum));
        memset(m.mean, 0, sizeof(double) * D);   /* the negative control: no centring */
        ok = baseline_encode(codes, &m, X, N, err, sizeof err) == 0;
        worst_raw = fmax(worst_raw, bit_balance(codes, N, K, &sum_raw));
        baseline_model_free(&m);
    }
    if (!CHECK_TRUE("lsh: learns and encodes", ok)) printf("     %s\n", err);
    const double sd = 0.5 / sqrt((double)N), mean = sum / ((double)SEEDS * K);
    printf("     lsh: %d seeds x %d bits x %d points: bit means 0.5 ± %.4f at worst, all bits %.5f "
           "(binomial sd per bit %.4f); uncentred: ± %.4f at worst\n", SEEDS, K, N, worst, mean, sd, worst_raw);
    CHECK_TRUE("lsh: every bit balanced over the points (within 6 sd)", worst < 6 * sd);
    CHECK_TRUE("lsh: all bits' mean 0.5 (within 4 sd of the mean of 4096 bits)",
               fabs(mean - 0.5) < 4 * sd / sqrt((double)SEEDS * K));
    CHECK_TRUE("lsh: negative control: without centring the per-bit check fails", worst_raw > 6 * sd);
    free(codes);
    free(X);
}

static void check_sdh_and_files(void) {
    enum { N = 300, D = 10, C = 3, K = 12 };
    uint64_t s = 21;
    float *X = malloc(sizeof(float) * N * D);
    uint8_t *Y = calloc((size_t)N * C, 1);
    for (int i = 0; i < N; i++) {
        int cls = i % C;
        Y[i * C + cls] = 1;
        if (i % 7 == 0) Y[i * C + (cls + 1) % C] = 1;   /* a few multi-label rows */
        for (int d = 0; d < D; d++) X[i * D + d] = (float)(gauss_check(&s) + (d == cls ? 3.0 : 0.0));
    }
    baseline_opts o = baseline_opts_default();
    o.method = BASELINE_SDH;
    o.bits = K;
    o.sdh_anchors = 60;
    baseline_model m, m2;
    char err[512];
    if (!CHECK_TRUE("sdh: learns", baseline_learn(&m, &o, X, N, D, Y, C, "sdh data", err, sizeof err) == 0)) {
        printf("     %s\n", err);
        goto out;
    }
    int rises = 0;
    printf("     sdh objective by step:");
    for (int t = 0; t < m.ntrace; t++) {
        printf(" %.6g", m.trace[t]);
        if (t && m.trace[t] > m.trace[t - 1] * (1 + 1e-12)) rises++;
    }
    printf("\n");
    CHECK_TRUE("sdh: the objective never rises (15 steps)", m.ntrace == 15 && rises == 0);
    CHECK_TRUE("sdh: and falls overall", m.trace[m.ntrace - 1] < 0.5 * m.trace[0]);
    uint8_t c1[N * 2], c2[N * 2];
    CHECK_TRUE("model file: save", baseline_save(&m, tmp("m.safetensors"), "sdh data", err, sizeof err) == 0);
    int ok = baseline_load(&m2, tmp("m.safetensors"), err, sizeof err) == 0;
    if (!CHECK_TRUE("model file: load", ok)) printf("     %s\n", err);
    else {
        CHECK_TRUE("model file: the loaded model encodes to the same codes",
                   baseline_encode(c1, &m, X, N, err, sizeof err) == 0 &&
                       baseline_encode(c2, &m2, X, N, err, sizeof err) == 0 && memcmp(c1, c2, sizeof c1) == 0);
        baseline_model_free(&m2);
    }
    /* a wrong shape, and a file without the format's metadata */
    st_writer *w = st_writer_new();
    int64_t sh[2] = {D, K + 1};
    double *junk = calloc((size_t)D * (K + 1), sizeof(double));
    st_writer_meta(w, "dath_baseline", "1");
    st_writer_meta(w, "method", "itq");
    st_writer_meta(w, "bits", "12");
    st_writer_meta(w, "dim", "10");
    st_writer_add(w, "mean", "F64", 1, sh, junk, sizeof(double) * D);
    st_writer_add(w, "proj", "F64", 2, sh, junk, sizeof(double) * D * (K + 1));
    st_writer_write(w, tmp("bad.safetensors"), err, sizeof err);
    st_writer_free(w);
    ok = baseline_load(&m2, tmp("bad.safetensors"), err, sizeof err) != 0;
    printf("     %s\n", err);
    CHECK_TRUE("model file: a proj of the wrong shape is refused, named",
               ok && strstr(err, "'proj'") && strstr(err, "[10, 12]"));
    w = st_writer_new();
    st_writer_add(w, "proj", "F64", 2, sh, junk, sizeof(double) * D * (K + 1));
    st_writer_write(w, tmp("plain.safetensors"), err, sizeof err);
    st_writer_free(w);
    ok = baseline_load(&m2, tmp("plain.safetensors"), err, sizeof err) != 0;
    CHECK_TRUE("model file: a safetensors file that is no baseline model is refused",
               ok && strstr(err, "not a dath baseline model"));
    free(junk);
    baseline_model_free(&m);
out:
    free(X); free(Y);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    check_npy();
    check_pcah();
    check_itq();
    check_lsh();
    check_sdh_and_files();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    return check_finish();
}
