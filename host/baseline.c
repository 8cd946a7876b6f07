/* host/baseline.c — LSH, PCAH, ITQ, ITQ-CCA and SDH (contract in baseline.h).
 *
 * Layout: every matrix is row-major, its shape in a comment beside it. The big products
 * are OpenBLAS cblas calls on row blocks of BL_BLOCK rows converted to double (so a
 * [N, D] double copy of the features never exists); the decompositions are LAPACK's,
 * called through the Fortran interface, which sees a row-major buffer as the transpose.
 * The loops around the BLAS calls are serial on purpose (OpenBLAS's threads keep
 * spinning after each call; see kernels/conv.c), and every sum runs in index order, so a
 * model is the same whatever the number of threads, up to OpenBLAS's own rounding. */
#include "baseline.h"

#include <cblas.h>
#undef I   /* cblas.h pulls in <complex.h> */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/rng.h"
#include "safetensors.h"

/* LAPACK (in Debian's libopenblas, which installs no lapacke.h): the Fortran interface,
 * 32-bit integers, column-major; gfortran passes each character argument's length as a
 * hidden trailing argument. */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
                    const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info,
                    size_t, size_t, size_t);
extern void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
                    const int *lda, double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                    double *work, const int *lwork, int *info, size_t, size_t);
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
extern void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
                    double *b, const int *ldb, int *info, size_t);
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
                    const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
                    const double *tau, double *work, const int *lwork, int *info);

enum { BL_BLOCK = 512 };   /* rows converted to double at a time */

/* ---- names ------------------------------------------------------------------------------ */

static const char *const BL_NAMES[] = {"lsh", "pcah", "itq", "itq-cca", "sdh"};

const char *baseline_method_name(baseline_method m) {
    return (unsigned)m < 5 ? BL_NAMES[m] : "?";
}

int baseline_method_parse(const char *name) {
    for (int i = 0; i < 5; i++)
        if (name && !strcmp(name, BL_NAMES[i])) return i;
    return -1;
}

int baseline_supervised(baseline_method m) { return m == BASELINE_ITQ_CCA || m == BASELINE_SDH; }

baseline_opts baseline_opts_default(void) {
    baseline_opts o = {0};
    o.method = BASELINE_ITQ;
    o.bits = 64;
    o.seed = 1;
    o.itq_iters = 50;
    o.cca_reg = 1e-4;
    o.sdh_anchors = 1000;
    o.sdh_lambda = 1.0;
    o.sdh_nu = 1e-5;
    o.sdh_delta = 1e-6;
    o.sdh_iters = 5;
    o.sdh_dcc = 5;
    return o;
}

void baseline_model_free(baseline_model *m) {
    if (!m) return;
    free(m->mean); free(m->proj); free(m->anchors); free(m->dirs); free(m->vals);
    free(m->rotation); free(m->trace);
    memset(m, 0, sizeof *m);
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* malloc of n × size bytes, overflow-checked; NULL with a message naming `what`. */
static void *bl_alloc(size_t n, size_t size, const char *what, char *err, size_t err_len) {
    if (size && n > SIZE_MAX / size) {
        snprintf(err, err_len, "%s: %zu × %zu bytes is too large", what, n, size);
        return NULL;
    }
    void *p = malloc(n && size ? n * size : 1);
    if (!p) snprintf(err, err_len, "out of memory for %s (%zu bytes)", what, n * size);
    return p;
}

/* One standard normal for (seed, tag, a, b): Box–Muller on the four words of one Philox
 * call, u1 = (53 bits + 1)·2⁻⁵³ ∈ (0, 1], u2 = 53 bits·2⁻⁵³ ∈ [0, 1). */
static double bl_gauss(uint64_t seed, uint32_t tag, uint32_t a, uint32_t b) {
    uint32_t w[4];
    rng_philox(tag, a, b, 0, (uint32_t)seed, (uint32_t)(seed >> 32), w);
    uint64_t x = ((uint64_t)w[0] << 32 | w[1]) >> 11, y = ((uint64_t)w[2] << 32 | w[3]) >> 11;
    double u1 = (double)(x + 1) * (1.0 / 9007199254740992.0), u2 = (double)y * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Makes each column of W [rows, cols] unique by sign: its component of largest
 * magnitude (the first such) positive. */
static void bl_canon_sign(double *W, int rows, int cols) {
    for (int k = 0; k < cols; k++) {
        int best = 0;
        for (int i = 1; i < rows; i++)
            if (fabs(W[(size_t)i * cols + k]) > fabs(W[(size_t)best * cols + k])) best = i;
        if (W[(size_t)best * cols + k] < 0)
            for (int i = 0; i < rows; i++) W[(size_t)i * cols + k] = -W[(size_t)i * cols + k];
    }
}

/* out [r1 − r0, D] = X rows [r0, r1) − mean (mean may be NULL: no centring). */
static void bl_rows(double *out, const float *X, const double *mean, int64_t r0, int64_t r1, int D) {
    for (int64_t i = r0; i < r1; i++) {
        const float *x = X + (size_t)i * D;
        double *o = out + (size_t)(i - r0) * D;
        if (mean) for (int d = 0; d < D; d++) o[d] = (double)x[d] - mean[d];
        else for (int d = 0; d < D; d++) o[d] = (double)x[d];
    }
}

/* mean [D] of X [N, D], summed in row order. */
static void bl_mean(double *mean, const float *X, int64_t N, int D) {
    for (int d = 0; d < D; d++) mean[d] = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *x = X + (size_t)i * D;
        for (int d = 0; d < D; d++) mean[d] += x[d];
    }
    for (int d = 0; d < D; d++) mean[d] /= (double)N;
}

/* Cxx [D, D] = (1/N) Σ (x − μ)(x − μ)ᵀ, both triangles; with Y (may be NULL) also
 * Cxy [D, C] = (1/N) Σ (x − μ)(y − ȳ)ᵀ. work [BL_BLOCK, D], ywork [BL_BLOCK, C]. */
static void bl_cov(double *Cxx, double *Cxy, const float *X, const double *mean, int64_t N, int D,
                   const uint8_t *Y, const double *ymean, int C, double *work, double *ywork) {
    memset(Cxx, 0, (size_t)D * D * sizeof *Cxx);
    if (Y) memset(Cxy, 0, (size_t)D * C * sizeof *Cxy);
    for (int64_t r0 = 0; r0 < N; r0 += BL_BLOCK) {
        int64_t r1 = r0 + BL_BLOCK < N ? r0 + BL_BLOCK : N;
        int b = (int)(r1 - r0);
        bl_rows(work, X, mean, r0, r1, D);
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, D, b, 1.0 / (double)N, work, D, 1.0, Cxx, D);
        if (Y) {
            for (int i = 0; i < b; i++)
                for (int c = 0; c < C; c++)
                    ywork[(size_t)i * C + c] = (Y[(size_t)(r0 + i) * C + c] != 0) - ymean[c];
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, C, b, 1.0 / (double)N, work, D, ywork, C,
                        1.0, Cxy, C);
        }
    }
    for (int i = 0; i < D; i++)
        for (int j = i + 1; j < D; j++) Cxx[(size_t)i * D + j] = Cxx[(size_t)j * D + i];
}

/* V [N, K] = (X − mean) · P, P [D, K]; work [BL_BLOCK, D]. */
static void bl_project(double *V, const float *X, const double *mean, int64_t N, int D, const double *P,
                       int K, double *work) {
    for (int64_t r0 = 0; r0 < N; r0 += BL_BLOCK) {
        int64_t r1 = r0 + BL_BLOCK < N ? r0 + BL_BLOCK : N;
        bl_rows(work, X, mean, r0, r1, D);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), K, D, 1.0, work, D, P, K, 0.0,
                    V + (size_t)r0 * K, K);
    }
}

/* The K largest eigenpairs of the symmetric S [D, D] (destroyed): dirs [D, K] (columns,
 * unit length, largest eigenvalue first, canonical sign), vals [K]. */
static int bl_top_eig(double *dirs, double *vals, double *S, int D, int K, char *err, size_t err_len) {
    int il = D - K + 1, iu = D, found = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    double *w = bl_alloc((size_t)D, sizeof *w, "eigenvalues", err, err_len);          /* [D] */
    double *z = bl_alloc((size_t)D * K, sizeof *z, "eigenvectors", err, err_len);     /* [K, D] col-major */
    int *isuppz = bl_alloc((size_t)2 * K, sizeof *isuppz, "eigenvectors", err, err_len);
    double *work = NULL;
    int *iwork = NULL, rc = -1;
    if (!w || !z || !isuppz) goto done;
    dsyevr_("V", "I", "U", &D, S, &D, &vl, &vu, &il, &iu, &abstol, &found, w, z, &D, isuppz, &wq, &lwork,
            &iwq, &liwork, &info, 1, 1, 1);
    lwork = (int)wq;
    liwork = iwq;
    work = bl_alloc((size_t)lwork, sizeof *work, "LAPACK workspace", err, err_len);
    iwork = bl_alloc((size_t)liwork, sizeof *iwork, "LAPACK workspace", err, err_len);
    if (!work || !iwork) goto done;
    dsyevr_("V", "I", "U", &D, S, &D, &vl, &vu, &il, &iu, &abstol, &found, w, z, &D, isuppz, work, &lwork,
            iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || found != K) {
        snprintf(err, err_len, "dsyevr (the covariance's top %d eigenvectors) failed: info %d, %d found", K,
                 info, found);
        goto done;
    }
    for (int k = 0; k < K; k++) {        /* LAPACK gives them ascending */
        const double *col = z + (size_t)(K - 1 - k) * D;
        vals[k] = w[K - 1 - k];
        for (int i = 0; i < D; i++) dirs[(size_t)i * K + k] = col[i];
    }
    bl_canon_sign(dirs, D, K);
    rc = 0;
done:
    free(w); free(z); free(isuppz); free(work); free(iwork);
    return rc;
}

/* R [K, K] maximising tr(M R) over orthogonal R, M = Bᵀ V [K, K]: with M = P Σ Qᵀ,
 * R = Q Pᵀ (orthogonal Procrustes). LAPACK sees M's buffer as Mᵀ, so it is copied
 * transposed first; then (U·VT) computed column-major is R read row-major.
 * a, u, vt [K, K] scratch, s [K]. */
static int bl_procrustes(double *R, const double *M, int K, double *a, double *u, double *vt, double *s,
                         char *err, size_t err_len) {
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) a[i + (size_t)j * K] = M[(size_t)i * K + j];
    int lwork = -1, info = 0;
    double wq = 0;
    dgesvd_("A", "A", &K, &K, a, &K, s, u, &K, vt, &K, &wq, &lwork, &info, 1, 1);
    lwork = (int)wq;
    double *work = bl_alloc((size_t)lwork, sizeof *work, "LAPACK workspace", err, err_len);
    if (!work) return -1;
    dgesvd_("A", "A", &K, &K, a, &K, s, u, &K, vt, &K, work, &lwork, &info, 1, 1);
    free(work);
    if (info != 0) {
        snprintf(err, err_len, "dgesvd (ITQ's rotation, %d × %d) failed: info %d", K, K, info);
        return -1;
    }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, K, K, K, 1.0, u, K, vt, K, 0.0, R, K);
    return 0;
}

/* R0 [K, K]: a Haar-random orthogonal matrix, the Q of the QR of a Gaussian matrix G
 * (G[i, j] = gauss(seed, BASELINE_RNG_ITQ, i, j)), its columns' signs fixed so that R's
 * diagonal is positive (which makes Q unique). */
static int bl_random_rotation(double *R0, int K, uint64_t seed, char *err, size_t err_len) {
    double *a = bl_alloc((size_t)K * K, sizeof *a, "ITQ's start", err, err_len);   /* [K, K] col-major */
    double *tau = bl_alloc((size_t)K, sizeof *tau, "ITQ's start", err, err_len);
    double *sgn = bl_alloc((size_t)K, sizeof *sgn, "ITQ's start", err, err_len);
    double *work = NULL, wq = 0;
    int lwork = -1, info = 0, rc = -1;
    if (!a || !tau || !sgn) goto done;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) a[i + (size_t)j * K] = bl_gauss(seed, BASELINE_RNG_ITQ, (uint32_t)i, (uint32_t)j);
    dgeqrf_(&K, &K, a, &K, tau, &wq, &lwork, &info);
    lwork = (int)wq > K ? (int)wq : K;
    if (!(work = bl_alloc((size_t)lwork, sizeof *work, "LAPACK workspace", err, err_len))) goto done;
    dgeqrf_(&K, &K, a, &K, tau, work, &lwork, &info);
    if (info != 0) { snprintf(err, err_len, "dgeqrf (ITQ's start) failed: info %d", info); goto done; }
    for (int j = 0; j < K; j++) sgn[j] = a[j + (size_t)j * K] < 0 ? -1.0 : 1.0;
    dorgqr_(&K, &K, &K, a, &K, tau, work, &lwork, &info);
    if (info != 0) { snprintf(err, err_len, "dorgqr (ITQ's start) failed: info %d", info); goto done; }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) R0[(size_t)i * K + j] = a[i + (size_t)j * K] * sgn[j];
    rc = 0;
done:
    free(a); free(tau); free(sgn); free(work);
    return rc;
}

/* ITQ's rotation of V [N, K]: m->rotation [K, K] and m->trace [iters + 1], the
 * quantisation error ‖B_t − V R_t‖² computed element by element, where B_t = sign(V R_{t−1})
 * (B_0 = sign(V R_0)). */
static int bl_itq(baseline_model *m, const double *V, int64_t N, int K, uint64_t seed, int iters, char *err,
                  size_t err_len) {
    size_t nk = (size_t)N * K, kk = (size_t)K * K;
    double *R = bl_alloc(kk, sizeof *R, "ITQ's rotation", err, err_len);         /* [K, K] */
    double *trace = bl_alloc((size_t)iters + 1, sizeof *trace, "ITQ", err, err_len);
    double *VR = bl_alloc(nk, sizeof *VR, "ITQ's V·R", err, err_len);            /* [N, K] */
    double *Bm = bl_alloc(nk, sizeof *Bm, "ITQ's codes", err, err_len);          /* [N, K] ±1 */
    double *M = bl_alloc(kk, sizeof *M, "ITQ", err, err_len);                    /* [K, K] Bᵀ V */
    double *a = bl_alloc(kk, sizeof *a, "ITQ", err, err_len), *u = bl_alloc(kk, sizeof *u, "ITQ", err, err_len);
    double *vt = bl_alloc(kk, sizeof *vt, "ITQ", err, err_len), *s = bl_alloc((size_t)K, sizeof *s, "ITQ", err, err_len);
    int rc = -1;
    if (!R || !trace || !VR || !Bm || !M || !a || !u || !vt || !s) goto done;
    if (bl_random_rotation(R, K, seed, err, err_len)) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K, K, 1.0, V, K, R, K, 0.0, VR, K);
    for (int t = 0; t <= iters; t++) {
        if (t > 0) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, K, (int)N, 1.0, Bm, K, V, K, 0.0, M, K);
            if (bl_procrustes(R, M, K, a, u, vt, s, err, err_len)) goto done;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K, K, 1.0, V, K, R, K, 0.0, VR, K);
        } else {
            for (size_t i = 0; i < nk; i++) Bm[i] = VR[i] >= 0 ? 1.0 : -1.0;
        }
        double q = 0;
        for (size_t i = 0; i < nk; i++) q += (Bm[i] - VR[i]) * (Bm[i] - VR[i]);
        trace[t] = q;
        for (size_t i = 0; i < nk; i++) Bm[i] = VR[i] >= 0 ? 1.0 : -1.0;   /* B_{t+1} */
    }
    m->rotation = R; R = NULL;
    m->trace = trace; trace = NULL;
    m->ntrace = iters + 1;
    rc = 0;
done:
    free(R); free(trace); free(VR); free(Bm); free(M); free(a); free(u); free(vt); free(s);
    return rc;
}

/* ---- the linear methods ----------------------------------------------------------------- */

static int bl_learn_lsh(baseline_model *m, const float *X, int64_t N, int D, int K, uint64_t seed, char *err,
                        size_t err_len) {
    if (!(m->mean = bl_alloc((size_t)D, sizeof(double), "the mean", err, err_len))) return -1;
    if (!(m->proj = bl_alloc((size_t)D * K, sizeof(double), "LSH's projections", err, err_len))) return -1;
    bl_mean(m->mean, X, N, D);
    for (int d = 0; d < D; d++)
        for (int k = 0; k < K; k++)
            m->proj[(size_t)d * K + k] = bl_gauss(seed, BASELINE_RNG_LSH, (uint32_t)k, (uint32_t)d);
    return 0;
}

/* pcah, itq: mean, principal directions; itq also the rotation. */
static int bl_learn_pca(baseline_model *m, const float *X, int64_t N, int D, int K, int itq,
                        const baseline_opts *o, char *err, size_t err_len) {
    double *S = NULL, *work = NULL, *V = NULL;
    int rc = -1;
    if (!(m->mean = bl_alloc((size_t)D, sizeof(double), "the mean", err, err_len))) goto done;
    if (!(m->dirs = bl_alloc((size_t)D * K, sizeof(double), "the principal directions", err, err_len))) goto done;
    if (!(m->vals = bl_alloc((size_t)K, sizeof(double), "the eigenvalues", err, err_len))) goto done;
    if (!(m->proj = bl_alloc((size_t)D * K, sizeof(double), "the projections", err, err_len))) goto done;
    if (!(S = bl_alloc((size_t)D * D, sizeof *S, "the covariance", err, err_len))) goto done;     /* [D, D] */
    if (!(work = bl_alloc((size_t)BL_BLOCK * D, sizeof *work, "a block of rows", err, err_len))) goto done;
    bl_mean(m->mean, X, N, D);
    bl_cov(S, NULL, X, m->mean, N, D, NULL, NULL, 0, work, NULL);
    if (bl_top_eig(m->dirs, m->vals, S, D, K, err, err_len)) goto done;
    if (!itq) {
        memcpy(m->proj, m->dirs, (size_t)D * K * sizeof(double));
        rc = 0;
        goto done;
    }
    if (!(V = bl_alloc((size_t)N * K, sizeof *V, "the projected features", err, err_len))) goto done;   /* [N, K] */
    bl_project(V, X, m->mean, N, D, m->dirs, K, work);
    if (bl_itq(m, V, N, K, o->seed, o->itq_iters, err, err_len)) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, K, K, 1.0, m->dirs, K, m->rotation, K, 0.0, m->proj, K);
    rc = 0;
done:
    free(S); free(work); free(V);
    return rc;
}

/* itq-cca. With Cxx_r = Cxx + r·tr(Cxx)/D·I = Lx Lxᵀ and Cyy_r = Cyy + r·tr(Cyy)/C·I = Ly Lyᵀ,
 * the canonical directions solve Cxy Cyy_r⁻¹ Cyx w = ρ² Cxx_r w; with G = Lx⁻¹ Cxy Ly⁻ᵀ
 * [D, C] = U Σ Vᵀ they are w_i = Lx⁻ᵀ u_i (wᵀ Cxx_r w = 1), ρ_i = σ_i. At most min(D, C)
 * exist; a direction whose σ_i ≤ 1e-10·σ_1 (numerically zero), and the columns past
 * min(D, C) when K is larger, are zero. dirs[:, i] = ρ_i w_i; then ITQ. */
static int bl_learn_cca(baseline_model *m, const float *X, int64_t N, int D, const uint8_t *Y, int C, int K,
                        const baseline_opts *o, const char *what, char *err, size_t err_len) {
    double *Sx = NULL, *Sy = NULL, *Sxy = NULL, *ymean = NULL, *work = NULL, *ywork = NULL;
    double *sv = NULL, *vt = NULL, *svd_work = NULL, *V = NULL;
    int rc = -1, info = 0;
    const int r = D < C ? D : C;
    if (!(m->mean = bl_alloc((size_t)D, sizeof(double), "the mean", err, err_len))) goto done;
    if (!(m->dirs = calloc((size_t)D * K, sizeof(double))) || !(m->vals = calloc((size_t)K, sizeof(double)))) {
        snprintf(err, err_len, "out of memory for the canonical directions");
        goto done;
    }
    if (!(m->proj = bl_alloc((size_t)D * K, sizeof(double), "the projections", err, err_len))) goto done;
    if (!(Sx = bl_alloc((size_t)D * D, sizeof *Sx, "Cxx", err, err_len))) goto done;            /* [D, D] */
    if (!(Sxy = bl_alloc((size_t)D * C, sizeof *Sxy, "Cxy", err, err_len))) goto done;          /* [D, C] */
    if (!(Sy = calloc((size_t)C * C, sizeof *Sy)) || !(ymean = calloc((size_t)C, sizeof *ymean))) {  /* [C, C], [C] */
        snprintf(err, err_len, "out of memory for Cyy");
        goto done;
    }
    if (!(work = bl_alloc((size_t)BL_BLOCK * D, sizeof *work, "a block of rows", err, err_len))) goto done;
    if (!(ywork = bl_alloc((size_t)BL_BLOCK * C, sizeof *ywork, "a block of labels", err, err_len))) goto done;
    bl_mean(m->mean, X, N, D);
    for (int64_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++) ymean[c] += Y[(size_t)i * C + c] != 0;
    for (int c = 0; c < C; c++) ymean[c] /= (double)N;
    for (int64_t i = 0; i < N; i++)
        for (int a = 0; a < C; a++)
            for (int b = 0; b <= a; b++)
                Sy[(size_t)a * C + b] += ((Y[(size_t)i * C + a] != 0) - ymean[a]) * ((Y[(size_t)i * C + b] != 0) - ymean[b]);
    for (int a = 0; a < C; a++)
        for (int b = 0; b <= a; b++) Sy[(size_t)b * C + a] = Sy[(size_t)a * C + b] /= (double)N;
    bl_cov(Sx, Sxy, X, m->mean, N, D, Y, ymean, C, work, ywork);
    double tx = 0, ty = 0;
    for (int d = 0; d < D; d++) tx += Sx[(size_t)d * D + d];
    for (int c = 0; c < C; c++) ty += Sy[(size_t)c * C + c];
    if (!(tx > 0)) { snprintf(err, err_len, "%s: the features do not vary (every row the same)", what); goto done; }
    if (!(ty > 0)) { snprintf(err, err_len, "the labels do not vary (every row the same): CCA has nothing to correlate"); goto done; }
    for (int d = 0; d < D; d++) Sx[(size_t)d * D + d] += o->cca_reg * tx / D;
    for (int c = 0; c < C; c++) Sy[(size_t)c * C + c] += o->cca_reg * ty / C;
    /* dpotrf 'U' on the column-major view = the lower Cholesky factor L in the row-major buffer */
    dpotrf_("U", &D, Sx, &D, &info, 1);
    if (info != 0) { snprintf(err, err_len, "Cholesky of the regularised Cxx failed (info %d); raise --cca-reg", info); goto done; }
    dpotrf_("U", &C, Sy, &C, &info, 1);
    if (info != 0) { snprintf(err, err_len, "Cholesky of the regularised Cyy failed (info %d); raise --cca-reg", info); goto done; }
    /* Sxy ← Lx⁻¹ Sxy Ly⁻ᵀ = G [D, C] */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, D, C, 1.0, Sx, D, Sxy, C);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, D, C, 1.0, Sy, C, Sxy, C);
    /* LAPACK sees G's buffer as Gᵀ [C, D] = U' Σ V'ᵀ: G's left singular vectors are the rows
     * of V'ᵀ [r, D] (column-major), i.e. its buffer read row-major as [D, r]. */
    if (!(sv = bl_alloc((size_t)r, sizeof *sv, "the correlations", err, err_len))) goto done;
    if (!(vt = bl_alloc((size_t)r * D, sizeof *vt, "the canonical directions", err, err_len))) goto done;
    int lwork = -1, ldu = 1;
    double wq = 0, udummy = 0;
    dgesvd_("N", "S", &C, &D, Sxy, &C, sv, &udummy, &ldu, vt, &r, &wq, &lwork, &info, 1, 1);
    lwork = (int)wq;
    if (!(svd_work = bl_alloc((size_t)lwork, sizeof *svd_work, "LAPACK workspace", err, err_len))) goto done;
    dgesvd_("N", "S", &C, &D, Sxy, &C, sv, &udummy, &ldu, vt, &r, svd_work, &lwork, &info, 1, 1);
    if (info != 0) { snprintf(err, err_len, "dgesvd (CCA, %d × %d) failed: info %d", D, C, info); goto done; }
    /* vt as row-major [D, r] holds u_i in column i; w_i = Lx⁻ᵀ u_i */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, D, r, 1.0, Sx, D, vt, r);
    bl_canon_sign(vt, D, r);
    if (!(sv[0] > 0)) { snprintf(err, err_len, "%s: the features are uncorrelated with the labels", what); goto done; }
    const int used = K < r ? K : r;
    for (int i = 0; i < used; i++) {
        double rho = sv[i] > 1e-10 * sv[0] ? sv[i] : 0.0;
        m->vals[i] = rho;
        for (int d = 0; d < D; d++) m->dirs[(size_t)d * K + i] = rho * vt[(size_t)d * r + i];
    }
    if (!(V = bl_alloc((size_t)N * K, sizeof *V, "the projected features", err, err_len))) goto done;   /* [N, K] */
    bl_project(V, X, m->mean, N, D, m->dirs, K, work);
    if (bl_itq(m, V, N, K, o->seed, o->itq_iters, err, err_len)) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, K, K, 1.0, m->dirs, K, m->rotation, K, 0.0, m->proj, K);
    rc = 0;
done:
    free(Sx); free(Sy); free(Sxy); free(ymean); free(work); free(ywork); free(sv); free(vt); free(svd_work); free(V);
    return rc;
}

/* ---- SDH -------------------------------------------------------------------------------- */

/* The RBF features of rows [r0, r1) of X: out [r1 − r0, m + 1] = exp(−‖x − a_j‖²/(2σ²)),
 * then 1 (the bias). With sigma ≤ 0, the squared distances themselves (and 1).
 * Ad [m, D] the anchors as doubles, an [m] their squared norms; work [BL_BLOCK, D]. */
static void bl_rbf(double *out, const float *X, int64_t r0, int64_t r1, int D, const double *Ad,
                   const double *an, int m, double sigma, double *work) {
    int b = (int)(r1 - r0), m1 = m + 1;
    bl_rows(work, X, NULL, r0, r1, D);
    /* out[:, :m] = Xb · Adᵀ (leading dimension m + 1) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, m, D, 1.0, work, D, Ad, D, 0.0, out, m1);
    for (int i = 0; i < b; i++) {
        const double *x = work + (size_t)i * D;
        double xn = 0;
        for (int d = 0; d < D; d++) xn += x[d] * x[d];
        double *o = out + (size_t)i * m1;
        for (int j = 0; j < m; j++) {
            double d2 = xn + an[j] - 2.0 * o[j];
            if (d2 < 0) d2 = 0;
            o[j] = sigma > 0 ? exp(-d2 / (2.0 * sigma * sigma)) : d2;
        }
        o[m] = 1.0;
    }
}

/* SDH's objective (below): Y, B, F [N, ·] as in bl_learn_sdh, W [K, C], P [m+1, K];
 * BW [N, C] scratch. Sums in index order. */
static double bl_sdh_objective(const double *Yd, const double *Bm, const double *W, const double *P,
                               const double *F, double *BW, int64_t N, int C, int K, int M1,
                               const baseline_opts *o, double delta) {
    const size_t nk = (size_t)N * K;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, C, K, 1.0, Bm, K, W, C, 0.0, BW, C);
    double ey = 0, ew = 0, ef = 0, ep = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) ey += (Yd[i] - BW[i]) * (Yd[i] - BW[i]);
    for (size_t i = 0; i < (size_t)K * C; i++) ew += W[i] * W[i];
    for (size_t i = 0; i < nk; i++) ef += (Bm[i] - F[i]) * (Bm[i] - F[i]);
    for (size_t i = 0; i < (size_t)M1 * K; i++) ep += P[i] * P[i];
    return ey + o->sdh_lambda * ew + o->sdh_nu * (ef + delta * ep);
}

typedef struct { uint64_t key; int64_t row; } bl_keyed;

static int bl_keyed_cmp(const void *a, const void *b) {
    const bl_keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* In SDH's notation (row-major, one row a training point): Φ [N, m+1] the RBF features
 * and a bias, B [N, K] ±1, W [K, C], P [m+1, K], F = Φ P.
 *   objective O = ‖Y − B W‖² + λ‖W‖² + ν (‖B − Φ P‖² + δ'‖P‖²),  δ' = δ·tr(ΦᵀΦ)/(m+1)
 *   G-step  W = (BᵀB + λI)⁻¹ BᵀY
 *   F-step  P = (ΦᵀΦ + δ'I)⁻¹ ΦᵀB
 *   B-step  DCC: for each point (points are independent) and bit l in turn,
 *           b_l = sgn(q_l − Σ_{k≠l} b_k (W Wᵀ)_{kl}), q = W y + ν F(x) (sgn(0) keeps b_l),
 *           sweeps until one changes nothing, at most sdh_dcc.
 * Each step minimises O exactly over its block, so O never rises. Rounds: G, F, B, sdh_iters
 * times, then a last F-step so that the hash function fits the final codes. m->trace:
 * O after every step from the first F-step on. */
static int bl_learn_sdh(baseline_model *m, const float *X, int64_t N, int D, const uint8_t *Y, int C, int K,
                        const baseline_opts *o, const char *what, char *err, size_t err_len) {
    const int M = o->sdh_anchors, M1 = M + 1;
    const size_t nk = (size_t)N * K;
    bl_keyed *order = NULL;
    double *Ad = NULL, *an = NULL, *Phi = NULL, *work = NULL, *Yd = NULL, *Bm = NULL, *A = NULL, *T = NULL;
    double *W = NULL, *P = NULL, *F = NULL, *Q = NULL, *Gm = NULL, *BW = NULL, *AK = NULL;
    int rc = -1, info = 0, ntrace = 0;
    const int maxtrace = 3 * o->sdh_iters;   /* F, B; then G, F, B per round; the last F */
    if (!(order = bl_alloc((size_t)N, sizeof *order, "the anchor order", err, err_len))) goto done;
    /* anchors: the m rows of smallest key rng(seed, SDH, 0, row) (ties by row), in that order */
    for (int64_t i = 0; i < N; i++) {
        uint32_t w4[4];
        rng_philox(BASELINE_RNG_SDH, 0, (uint32_t)i, 0, (uint32_t)o->seed, (uint32_t)(o->seed >> 32), w4);
        order[i].key = (uint64_t)w4[0] << 32 | w4[1];
        order[i].row = i;
    }
    qsort(order, (size_t)N, sizeof *order, bl_keyed_cmp);
    m->m = M;
    if (!(m->anchors = bl_alloc((size_t)M * D, sizeof(float), "the anchors", err, err_len))) goto done;  /* [m, D] */
    if (!(Ad = bl_alloc((size_t)M * D, sizeof *Ad, "the anchors", err, err_len))) goto done;            /* [m, D] */
    if (!(an = bl_alloc((size_t)M, sizeof *an, "the anchors", err, err_len))) goto done;                /* [m] */
    for (int j = 0; j < M; j++) {
        memcpy(m->anchors + (size_t)j * D, X + (size_t)order[j].row * D, (size_t)D * sizeof(float));
        an[j] = 0;
        for (int d = 0; d < D; d++) {
            Ad[(size_t)j * D + d] = m->anchors[(size_t)j * D + d];
            an[j] += Ad[(size_t)j * D + d] * Ad[(size_t)j * D + d];
        }
    }
    if (!(Phi = bl_alloc((size_t)N * M1, sizeof *Phi, "the RBF features", err, err_len))) goto done;   /* [N, m+1] */
    if (!(work = bl_alloc((size_t)BL_BLOCK * D, sizeof *work, "a block of rows", err, err_len))) goto done;
    /* squared distances first, σ = their square roots' mean, then the kernel in place */
    for (int64_t r0 = 0; r0 < N; r0 += BL_BLOCK)
        bl_rbf(Phi + (size_t)r0 * M1, X, r0, r0 + BL_BLOCK < N ? r0 + BL_BLOCK : N, D, Ad, an, M, 0.0, work);
    double dsum = 0;
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < M; j++) dsum += sqrt(Phi[(size_t)i * M1 + j]);
    m->sigma = dsum / ((double)N * M);
    if (!(m->sigma > 0)) { snprintf(err, err_len, "%s: every row is at distance 0 from every anchor", what); goto done; }
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            double *p = &Phi[(size_t)i * M1 + j];
            *p = exp(-*p / (2.0 * m->sigma * m->sigma));
        }
    if (!(Yd = bl_alloc((size_t)N * C, sizeof *Yd, "the labels", err, err_len))) goto done;      /* [N, C] */
    for (size_t i = 0; i < (size_t)N * C; i++) Yd[i] = Y[i] != 0;
    if (!(Bm = bl_alloc(nk, sizeof *Bm, "the codes", err, err_len))) goto done;                 /* [N, K] */
    for (int64_t i = 0; i < N; i++)
        for (int k = 0; k < K; k++)
            Bm[(size_t)i * K + k] = rng_u32(o->seed, BASELINE_RNG_SDH, 1, (uint32_t)i, (uint32_t)k) & 1 ? 1.0 : -1.0;
    /* the F-step's matrix, factored once: A = ΦᵀΦ + δ'I [m+1, m+1] */
    if (!(A = bl_alloc((size_t)M1 * M1, sizeof *A, "ΦᵀΦ", err, err_len))) goto done;
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, M1, (int)N, 1.0, Phi, M1, 0.0, A, M1);
    double tr = 0;
    for (int j = 0; j < M1; j++) tr += A[(size_t)j * M1 + j];
    const double delta = o->sdh_delta * tr / M1;
    for (int j = 0; j < M1; j++) A[(size_t)j * M1 + j] += delta;
    dpotrf_("U", &M1, A, &M1, &info, 1);
    if (info != 0) { snprintf(err, err_len, "Cholesky of ΦᵀΦ + δI failed (info %d); raise --sdh-delta", info); goto done; }
    const int cmax = C > M1 ? C : M1;
    if (!(T = bl_alloc((size_t)K * cmax, sizeof *T, "SDH", err, err_len))) goto done;          /* [K, max(C, m+1)] */
    if (!(W = bl_alloc((size_t)K * C, sizeof *W, "SDH's W", err, err_len))) goto done;         /* [K, C] */
    if (!(P = bl_alloc((size_t)M1 * K, sizeof *P, "SDH's P", err, err_len))) goto done;        /* [m+1, K] */
    if (!(F = bl_alloc(nk, sizeof *F, "SDH's F", err, err_len))) goto done;                    /* [N, K] */
    if (!(Q = bl_alloc(nk, sizeof *Q, "SDH's Q", err, err_len))) goto done;                    /* [N, K] */
    if (!(Gm = bl_alloc((size_t)K * K, sizeof *Gm, "SDH", err, err_len))) goto done;           /* [K, K] W Wᵀ */
    if (!(AK = bl_alloc((size_t)K * K, sizeof *AK, "SDH", err, err_len))) goto done;           /* [K, K] */
    if (!(BW = bl_alloc((size_t)N * C, sizeof *BW, "SDH", err, err_len))) goto done;           /* [N, C] */
    if (!(m->trace = bl_alloc((size_t)maxtrace, sizeof(double), "SDH", err, err_len))) goto done;
#define BL_OBJ() (m->trace[ntrace++] = bl_sdh_objective(Yd, Bm, W, P, F, BW, N, C, K, M1, o, delta))
    for (int round = 0; round <= o->sdh_iters; round++) {
        const int last = round == o->sdh_iters;   /* the closing F-step only */
        if (!last) {
            /* G-step: (BᵀB + λI) W = BᵀY; LAPACK solves for the column-major [K, C] = Yᵀ B row-major */
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, K, (int)N, 1.0, Bm, K, 0.0, AK, K);
            for (int k = 0; k < K; k++) AK[(size_t)k * K + k] += o->sdh_lambda;
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, K, (int)N, 1.0, Yd, C, Bm, K, 0.0, T, K);
            dpotrf_("U", &K, AK, &K, &info, 1);
            if (!info) dpotrs_("U", &K, &C, AK, &K, T, &K, &info, 1);
            if (info) { snprintf(err, err_len, "SDH's G-step failed (info %d)", info); goto done; }
            for (int k = 0; k < K; k++)
                for (int c = 0; c < C; c++) W[(size_t)k * C + c] = T[(size_t)c * K + k];
            if (round > 0) BL_OBJ();   /* F (and P) from the previous round */
        }
        /* F-step: A P = ΦᵀB, the right side as column-major [m+1, K] = Bᵀ Φ row-major */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, M1, (int)N, 1.0, Bm, K, Phi, M1, 0.0, T, M1);
        dpotrs_("U", &M1, &K, A, &M1, T, &M1, &info, 1);
        if (info) { snprintf(err, err_len, "SDH's F-step failed (info %d)", info); goto done; }
        for (int j = 0; j < M1; j++)
            for (int k = 0; k < K; k++) P[(size_t)j * K + k] = T[(size_t)k * M1 + j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K, M1, 1.0, Phi, M1, P, K, 0.0, F, K);
        BL_OBJ();
        if (!last) {
            /* B-step */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, K, C, 1.0, Yd, C, W, C, 0.0, Q, K);
            for (size_t i = 0; i < nk; i++) Q[i] += o->sdh_nu * F[i];
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, K, C, 1.0, W, C, W, C, 0.0, Gm, K);
            for (int64_t i = 0; i < N; i++) {
                double *b = Bm + (size_t)i * K;   /* [K] */
                const double *q = Q + (size_t)i * K;
                for (int sweep = 0; sweep < o->sdh_dcc; sweep++) {
                    int changed = 0;
                    for (int l = 0; l < K; l++) {
                        double v = q[l];
                        for (int k = 0; k < K; k++)
                            if (k != l) v -= b[k] * Gm[(size_t)k * K + l];
                        double nb = v > 0 ? 1.0 : v < 0 ? -1.0 : b[l];
                        if (nb != b[l]) { b[l] = nb; changed = 1; }
                    }
                    if (!changed) break;
                }
            }
            BL_OBJ();
        }
    }
#undef BL_OBJ
    m->ntrace = ntrace;
    m->proj = P; P = NULL;
    rc = 0;
done:
    free(order); free(Ad); free(an); free(Phi); free(work); free(Yd); free(Bm); free(A); free(T);
    free(W); free(P); free(F); free(Q); free(Gm); free(BW); free(AK);
    return rc;
}

/* ---- learn, encode ---------------------------------------------------------------------- */

int baseline_check_finite(const float *X, int64_t N, int D, const char *what, char *err, size_t err_len) {
    for (int64_t i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            if (!isfinite(X[(size_t)i * D + d])) {
                snprintf(err, err_len, "%s: row %" PRId64 ", column %d is %g (features must be finite)", what, i, d,
                         (double)X[(size_t)i * D + d]);
                return -1;
            }
    return 0;
}

int baseline_learn(baseline_model *m, const baseline_opts *o, const float *X, int64_t N, int D,
                   const uint8_t *Y, int C, const char *what, char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    const int K = o->bits;
    const char *name = baseline_method_name(o->method);
    if ((unsigned)o->method > BASELINE_SDH) { snprintf(err, err_len, "unknown method %d", (int)o->method); return -1; }
    if (K < 1 || K > BASELINE_MAX_BITS) {
        snprintf(err, err_len, "--bits %d: expected 1 to %d", K, BASELINE_MAX_BITS);
        return -1;
    }
    if (N < 1 || D < 1) {
        snprintf(err, err_len, "%s: no features to learn from (%" PRId64 " rows of %d)", what, N, D);
        return -1;
    }
    if (N > INT32_MAX) { snprintf(err, err_len, "%s: %" PRId64 " rows is too many (at most %d)", what, N, INT32_MAX); return -1; }
    if (o->method == BASELINE_PCAH || o->method == BASELINE_ITQ || o->method == BASELINE_ITQ_CCA) {
        if (K > D) {
            snprintf(err, err_len, "--bits %d is more than the %d dimensions of %s (%s projects onto K of them)", K, D,
                     what, name);
            return -1;
        }
        if (o->method != BASELINE_ITQ_CCA && N <= K) {
            snprintf(err, err_len, "%s: %" PRId64 " rows give at most %" PRId64 " principal directions; %s with --bits %d "
                     "needs at least %d rows", what, N, N - 1, name, K, K + 1);
            return -1;
        }
    }
    if (baseline_supervised(o->method) && (!Y || C < 1)) {
        snprintf(err, err_len, "%s learns from labels: give --train-labels", name);
        return -1;
    }
    if ((o->method == BASELINE_ITQ || o->method == BASELINE_ITQ_CCA) && o->itq_iters < 0) {
        snprintf(err, err_len, "--itq-iters %d: expected 0 or more", o->itq_iters);
        return -1;
    }
    if (o->method == BASELINE_ITQ_CCA && !(o->cca_reg > 0)) {
        snprintf(err, err_len, "--cca-reg %g: expected a positive ridge", o->cca_reg);
        return -1;
    }
    if (o->method == BASELINE_SDH) {
        if (o->sdh_anchors < 1 || o->sdh_anchors > N) {
            snprintf(err, err_len, "--sdh-anchors %d: expected 1 to the %" PRId64 " training rows of %s", o->sdh_anchors, N,
                     what);
            return -1;
        }
        if (!(o->sdh_lambda > 0) || !(o->sdh_nu >= 0) || !(o->sdh_delta > 0) || o->sdh_iters < 1 || o->sdh_dcc < 1) {
            snprintf(err, err_len, "SDH: expected --sdh-lambda > 0 (%g), --sdh-nu ≥ 0 (%g), --sdh-delta > 0 (%g), "
                     "--sdh-iters ≥ 1 (%d), --sdh-dcc ≥ 1 (%d)", o->sdh_lambda, o->sdh_nu, o->sdh_delta, o->sdh_iters,
                     o->sdh_dcc);
            return -1;
        }
    }
    if (baseline_check_finite(X, N, D, what, err, err_len)) return -1;
    m->method = o->method;
    m->K = K;
    m->D = D;
    m->train_rows = N;
    m->opts = *o;
    int rc;
    switch (o->method) {
    case BASELINE_LSH: rc = bl_learn_lsh(m, X, N, D, K, o->seed, err, err_len); break;
    case BASELINE_PCAH: rc = bl_learn_pca(m, X, N, D, K, 0, o, err, err_len); break;
    case BASELINE_ITQ: rc = bl_learn_pca(m, X, N, D, K, 1, o, err, err_len); break;
    case BASELINE_ITQ_CCA: rc = bl_learn_cca(m, X, N, D, Y, C, K, o, what, err, err_len); break;
    default: rc = bl_learn_sdh(m, X, N, D, Y, C, K, o, what, err, err_len); break;
    }
    if (rc) baseline_model_free(m);
    return rc;
}

/* codes rows [r0, r0 + b) from their projections v [b, K] (bit = v ≥ 0). */
static void bl_pack(uint8_t *codes, const double *v, int b, int K) {
    const int B = (K + 7) / 8;
    memset(codes, 0, (size_t)b * B);
    for (int i = 0; i < b; i++)
        for (int k = 0; k < K; k++)
            if (v[(size_t)i * K + k] >= 0) codes[(size_t)i * B + k / 8] |= (uint8_t)(0x80u >> (k % 8));
}

int baseline_encode(uint8_t *codes, const baseline_model *m, const float *X, int64_t N, char *err,
                    size_t err_len) {
    const int K = m->K, D = m->D, B = (K + 7) / 8, sdh = m->method == BASELINE_SDH, M1 = m->m + 1;
    double *work = bl_alloc((size_t)BL_BLOCK * D, sizeof *work, "a block of rows", err, err_len);    /* [BL_BLOCK, D] */
    double *v = bl_alloc((size_t)BL_BLOCK * K, sizeof *v, "a block of projections", err, err_len);   /* [BL_BLOCK, K] */
    double *phi = NULL, *Ad = NULL, *an = NULL;
    int rc = -1;
    if (!work || !v) goto done;
    if (sdh) {
        if (!(phi = bl_alloc((size_t)BL_BLOCK * M1, sizeof *phi, "the RBF features", err, err_len))) goto done;  /* [BL_BLOCK, m+1] */
        if (!(Ad = bl_alloc((size_t)m->m * D, sizeof *Ad, "the anchors", err, err_len))) goto done;             /* [m, D] */
        if (!(an = bl_alloc((size_t)m->m, sizeof *an, "the anchors", err, err_len))) goto done;                 /* [m] */
        for (int j = 0; j < m->m; j++) {
            an[j] = 0;
            for (int d = 0; d < D; d++) {
                Ad[(size_t)j * D + d] = m->anchors[(size_t)j * D + d];
                an[j] += Ad[(size_t)j * D + d] * Ad[(size_t)j * D + d];
            }
        }
    }
    for (int64_t r0 = 0; r0 < N; r0 += BL_BLOCK) {
        int64_t r1 = r0 + BL_BLOCK < N ? r0 + BL_BLOCK : N;
        int b = (int)(r1 - r0);
        if (sdh) {
            bl_rbf(phi, X, r0, r1, D, Ad, an, m->m, m->sigma, work);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, K, M1, 1.0, phi, M1, m->proj, K, 0.0, v, K);
        } else {
            bl_rows(work, X, m->mean, r0, r1, D);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, K, D, 1.0, work, D, m->proj, K, 0.0, v, K);
        }
        bl_pack(codes + (size_t)r0 * B, v, b, K);
    }
    rc = 0;
done:
    free(work); free(v); free(phi); free(Ad); free(an);
    return rc;
}

/* ---- the model file --------------------------------------------------------------------- */

int baseline_save(const baseline_model *m, const char *path, const char *source, char *err,
                  size_t err_len) {
    st_writer *w = st_writer_new();
    if (!w) { snprintf(err, err_len, "%s: out of memory", path); return -1; }
    char v[64];
    int bad = 0;
    const int64_t K = m->K, D = m->D, M1 = m->m + 1;
#define BL_META(key, ...) do { snprintf(v, sizeof v, __VA_ARGS__); bad |= st_writer_meta(w, key, v); } while (0)
#define BL_ADD(name, dtype, nd, shape, data, n) \
    do { if (data) bad |= st_writer_add_ref(w, name, dtype, nd, shape, data, n); } while (0)
    BL_META("dath_baseline", "1");
    BL_META("method", "%s", baseline_method_name(m->method));
    BL_META("bits", "%d", m->K);
    BL_META("dim", "%d", m->D);
    BL_META("seed", "%" PRIu64, m->opts.seed);
    BL_META("train_rows", "%" PRId64, m->train_rows);
    if (source) bad |= st_writer_meta(w, "train_features", source);
    if (m->method == BASELINE_ITQ || m->method == BASELINE_ITQ_CCA) BL_META("itq_iters", "%d", m->opts.itq_iters);
    if (m->method == BASELINE_ITQ_CCA) BL_META("cca_reg", "%.17g", m->opts.cca_reg);
    if (m->method == BASELINE_SDH) {
        BL_META("sdh_anchors", "%d", m->m);
        BL_META("sdh_lambda", "%.17g", m->opts.sdh_lambda);
        BL_META("sdh_nu", "%.17g", m->opts.sdh_nu);
        BL_META("sdh_delta", "%.17g", m->opts.sdh_delta);
        BL_META("sdh_iters", "%d", m->opts.sdh_iters);
        BL_META("sdh_dcc", "%d", m->opts.sdh_dcc);
    }
    const int64_t s_d[1] = {D}, s_k[1] = {K}, s_dk[2] = {D, K}, s_kk[2] = {K, K}, s_ad[2] = {m->m, D},
                  s_pk[2] = {M1, K}, s_1[1] = {1}, s_t[1] = {m->ntrace};
    if (m->method == BASELINE_SDH) {
        BL_ADD("anchors", "F32", 2, s_ad, m->anchors, (size_t)m->m * D * sizeof(float));
        BL_ADD("sigma", "F64", 1, s_1, &m->sigma, sizeof(double));
        BL_ADD("proj", "F64", 2, s_pk, m->proj, (size_t)M1 * K * sizeof(double));
    } else {
        BL_ADD("mean", "F64", 1, s_d, m->mean, (size_t)D * sizeof(double));
        BL_ADD("proj", "F64", 2, s_dk, m->proj, (size_t)D * K * sizeof(double));
    }
    BL_ADD("dirs", "F64", 2, s_dk, m->dirs, (size_t)D * K * sizeof(double));
    BL_ADD("vals", "F64", 1, s_k, m->vals, (size_t)K * sizeof(double));
    BL_ADD("rotation", "F64", 2, s_kk, m->rotation, (size_t)K * K * sizeof(double));
    BL_ADD("trace", "F64", 1, s_t, m->trace, (size_t)m->ntrace * sizeof(double));
#undef BL_META
#undef BL_ADD
    int rc = -1;
    if (bad) snprintf(err, err_len, "%s: out of memory", path);
    else rc = st_writer_write(w, path, err, err_len);
    st_writer_free(w);
    return rc;
}

/* A metadata integer in [lo, hi]; -1 with a message naming the file and key. */
static int bl_meta_int(const st_file *f, const char *path, const char *key, long long lo, long long hi,
                       long long *out, char *err, size_t err_len) {
    const char *s = st_meta(f, key);
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        snprintf(err, err_len, "%s: metadata '%s' is %s%s%s; expected an integer from %lld to %lld", path, key,
                 s ? "'" : "missing", s ? s : "", s ? "'" : "", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* "F64 [10, 12]" into buf. */
static void bl_shape_text(char *buf, size_t len, const char *dtype, const int64_t *shape, int ndim) {
    int at = snprintf(buf, len, "%s [", dtype);
    for (int d = 0; d < ndim && at > 0 && (size_t)at < len; d++)
        at += snprintf(buf + at, len - (size_t)at, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (at > 0 && (size_t)at < len) snprintf(buf + at, len - (size_t)at, "]");
}

/* Copies tensor `name` (dtype, exact shape) into a new buffer *out, checking that every
 * value is finite. A missing optional tensor leaves *out NULL and returns 0. */
static int bl_tensor(const st_file *f, const char *path, const char *name, const char *dtype, int ndim,
                     const int64_t *shape, int required, void **out, char *err, size_t err_len) {
    *out = NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) {
        if (!required) return 0;
        snprintf(err, err_len, "%s: no tensor '%s' (a dath baseline model has one)", path, name);
        return -1;
    }
    int ok = !strcmp(t->dtype, dtype) && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[160], got[160];
        bl_shape_text(want, sizeof want, dtype, shape, ndim);
        bl_shape_text(got, sizeof got, t->dtype, t->shape, t->ndim);
        snprintf(err, err_len, "%s: tensor '%s' is %s; expected %s", path, name, got, want);
        return -1;
    }
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p) { snprintf(err, err_len, "%s: out of memory for '%s'", path, name); return -1; }
    memcpy(p, t->data, t->nbytes);   /* the file's data may be unaligned */
    size_t n = t->nbytes / (dtype[1] == '6' ? 8 : 4);
    for (size_t i = 0; i < n; i++) {
        double x = dtype[1] == '6' ? ((double *)p)[i] : ((float *)p)[i];
        if (!isfinite(x)) {
            snprintf(err, err_len, "%s: tensor '%s' holds a non-finite value at [%zu]", path, name, i);
            free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

int baseline_load(baseline_model *m, const char *path, char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    st_file *f = st_read(path, err, err_len);
    if (!f) return -1;
    int rc = -1;
    long long bits, dim, rows = 0;
    const char *ver = st_meta(f, "dath_baseline"), *method = st_meta(f, "method");
    if (!ver) { snprintf(err, err_len, "%s: not a dath baseline model (no 'dath_baseline' metadata)", path); goto done; }
    if (strcmp(ver, "1")) { snprintf(err, err_len, "%s: dath baseline format version '%s' is not supported (this dath reads 1)", path, ver); goto done; }
    int meth = baseline_method_parse(method);
    if (meth < 0) { snprintf(err, err_len, "%s: metadata 'method' is '%s': expected lsh, pcah, itq, itq-cca or sdh", path, method ? method : "(missing)"); goto done; }
    if (bl_meta_int(f, path, "bits", 1, BASELINE_MAX_BITS, &bits, err, err_len)) goto done;
    if (bl_meta_int(f, path, "dim", 1, INT32_MAX, &dim, err, err_len)) goto done;
    if (st_meta(f, "train_rows") && bl_meta_int(f, path, "train_rows", 1, INT64_MAX, &rows, err, err_len)) goto done;
    m->opts = baseline_opts_default();
    const char *seed = st_meta(f, "seed");
    if (seed) m->opts.seed = strtoull(seed, NULL, 10);
    m->method = (baseline_method)meth;
    m->opts.method = m->method;
    m->opts.bits = m->K = (int)bits;
    m->D = (int)dim;
    m->train_rows = rows;
    const int64_t K = bits, D = dim, s_d[1] = {D}, s_k[1] = {K}, s_dk[2] = {D, K}, s_kk[2] = {K, K};
    if (m->method == BASELINE_SDH) {
        const st_tensor *a = st_find(f, "anchors");
        if (!a || a->ndim != 2 || a->shape[0] < 1 || a->shape[0] > INT32_MAX - 1) {
            snprintf(err, err_len, "%s: no tensor 'anchors' [m, %" PRId64 "] (SDH's)", path, D);
            goto done;
        }
        m->m = (int)a->shape[0];
        const int64_t s_ad[2] = {m->m, D}, s_pk[2] = {m->m + 1, K}, s_1[1] = {1};
        double *sigma = NULL;
        if (bl_tensor(f, path, "anchors", "F32", 2, s_ad, 1, (void **)&m->anchors, err, err_len)) goto done;
        if (bl_tensor(f, path, "proj", "F64", 2, s_pk, 1, (void **)&m->proj, err, err_len)) goto done;
        if (bl_tensor(f, path, "sigma", "F64", 1, s_1, 1, (void **)&sigma, err, err_len)) goto done;
        m->sigma = *sigma;
        free(sigma);
        if (!(m->sigma > 0)) { snprintf(err, err_len, "%s: tensor 'sigma' is %g; expected a positive width", path, m->sigma); goto done; }
    } else {
        if (bl_tensor(f, path, "mean", "F64", 1, s_d, 1, (void **)&m->mean, err, err_len)) goto done;
        if (bl_tensor(f, path, "proj", "F64", 2, s_dk, 1, (void **)&m->proj, err, err_len)) goto done;
    }
    if (bl_tensor(f, path, "dirs", "F64", 2, s_dk, 0, (void **)&m->dirs, err, err_len)) goto done;
    if (bl_tensor(f, path, "vals", "F64", 1, s_k, 0, (void **)&m->vals, err, err_len)) goto done;
    if (bl_tensor(f, path, "rotation", "F64", 2, s_kk, 0, (void **)&m->rotation, err, err_len)) goto done;
    const st_tensor *t = st_find(f, "trace");
    if (t && t->ndim == 1 && t->shape[0] <= INT32_MAX) {
        const int64_t s_t[1] = {t->shape[0]};
        if (bl_tensor(f, path, "trace", "F64", 1, s_t, 0, (void **)&m->trace, err, err_len)) goto done;
        m->ntrace = (int)t->shape[0];
    } else if (t) {
        snprintf(err, err_len, "%s: tensor 'trace' must be one-dimensional", path);
        goto done;
    }
    rc = 0;
done:
    if (rc) baseline_model_free(m);
    st_close(f);
    return rc;
}
