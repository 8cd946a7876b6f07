/* checks/test_attention.c — the PAM/CAM references (kernels/attention.c) against a
 * naive double-precision implementation (loops) and central finite differences.
 *
 *   forward : out and every saved buffer (q, k, v, a, o) against the double loops,
 *             γ = 0.7 (a fresh model's γ = 0 would hide the attention path) and γ = 0
 *   backward: every input and parameter gradient against central differences of
 *             L = Σ r ⊙ out taken on the double implementation, on random subsets of
 *             elements; γ = 0.7 and γ = 0 (dγ must still be right)
 *   contract: dx is written (add = 0: onto NaN, the gradient above bit for bit) or
 *             accumulated (add = 1: +=), the parameter gradients are written (=: onto
 *             NaN they are the gradients above, bit for bit; an empty batch writes
 *             zeros), dout is left untouched
 *   CAM stability: x scaled by 100 (e ~ 1e6) gives finite outputs equal to the reference
 * Shapes: (B,C,Cq,N) = (2,16,2,9) and (2,32,4,13·13). */
#include <string.h>

#include "check.h"
#include "../kernels/attention.h"

/* Central differences on the double implementation: truncation ~ FD_EPS² and rounding
 * ~ 1e-16/FD_EPS, both far below the float errors of the op under test. */
#define FD_EPS 1e-4
#define FD_SAMPLES 24              /* elements checked per tensor (all when fewer) */

/* Forward, op vs double loops, x ~ U(-1,1): |got − ref| ≤ atol + rtol·|ref|. CAM's
 * e = x·xᵀ sums N products (|e| up to ~N/3), and the softmax turns e's float rounding
 * into an absolute error of a, so its atol is larger. */
#define PAM_FWD_ATOL 2e-6
#define PAM_FWD_RTOL 1e-5
#define CAM_FWD_ATOL 8e-6
#define CAM_FWD_RTOL 1e-5
/* dx's += contract: backward onto a random dx vs (that dx + backward onto 0). */
#define ACC_ATOL 1e-6
#define ACC_RTOL 1e-6
/* CAM with x scaled by CAM_BIG: the softmax is nearly one-hot; atol is relative to the
 * scale of x (out = γ·o + x cancels down from |x| ~ CAM_BIG). */
#define CAM_BIG 100.0f
#define BIG_ATOL 2e-7
#define BIG_RTOL 1e-6

enum { PAM_X, PAM_WQ, PAM_BQ, PAM_WK, PAM_BK, PAM_WV, PAM_BV, PAM_GAMMA, PAM_NT };
enum { CAM_X, CAM_GAMMA, CAM_NT };

/* Backward tolerances per tensor (analytic float gradient vs double central differences). */
typedef struct grad_tol { const char *name; double atol, rtol; } grad_tol;
/* dq and dk go through the softmax backward and sums over N, hence the looser wq..bk;
 * bk's true gradient is 0 (a row shift of e), so only atol applies there. dgamma sums
 * B·C·N products dout·o. */
static const grad_tol pam_tol[PAM_NT] = {
    {"dx", 1e-6, 1e-5}, {"dwq", 1e-5, 1e-4}, {"dbq", 1e-5, 1e-4}, {"dwk", 1e-5, 1e-4},
    {"dbk", 1e-5, 1e-4}, {"dwv", 2e-6, 1e-5}, {"dbv", 1e-6, 1e-5}, {"dgamma", 1e-5, 1e-6},
};
static const grad_tol cam_tol[CAM_NT] = {{"dx", 1e-6, 1e-5}, {"dgamma", 1e-5, 1e-6}};

/* One tensor in two precisions: f is handed to the op, d to the double implementation. */
typedef struct tensor { size_t n; float *f; double *d; } tensor;

static void *xalloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "test_attention: out of memory\n"); exit(1); }
    return p;
}
static float *falloc(size_t n) { return xalloc(n * sizeof(float)); }
static double *dalloc(size_t n) { return xalloc(n * sizeof(double)); }

static void tensor_init(tensor *t, size_t n, float lo, float hi, uint64_t *s) {
    t->n = n;
    t->f = falloc(n);
    t->d = dalloc(n);
    check_fill(t->f, n, lo, hi, s);
    for (size_t i = 0; i < n; i++) t->d[i] = t->f[i];
}
static void tensor_set(tensor *t, float v) {
    for (size_t i = 0; i < t->n; i++) { t->f[i] = v; t->d[i] = v; }
}
static void tensor_free(tensor *t) { free(t->f); free(t->d); }

/* Rows of a [R, L] ← softmax(sign·row) in double, shifted by the row's max of sign·row. */
static void ref_softmax_rows(double *a, int R, int L, double sign) {
    for (int i = 0; i < R; i++) {
        double *row = a + (size_t)i * L, m = sign * row[0], s = 0;
        for (int j = 1; j < L; j++) if (sign * row[j] > m) m = sign * row[j];
        for (int j = 0; j < L; j++) { row[j] = exp(sign * row[j] - m); s += row[j]; }
        for (int j = 0; j < L; j++) row[j] /= s;
    }
}

/* y [Co,N] = w [Co,C]·x [C,N] + b [Co], loops. */
static void ref_conv1x1(double *y, const double *w, const double *b, const double *x,
                        int Co, int C, int N) {
    for (int o = 0; o < Co; o++)
        for (int n = 0; n < N; n++) {
            double s = b[o];
            for (int c = 0; c < C; c++) s += w[(size_t)o * C + c] * x[(size_t)c * N + n];
            y[(size_t)o * N + n] = s;
        }
}

/* PAM in double, straight from the header's equations. Fills out, q, k, v, a, o. */
static void ref_pam(double *out, double *q, double *k, double *v, double *a, double *o,
                    const tensor *t, int B, int C, int Cq, int N) {
    double g = t[PAM_GAMMA].d[0];
    for (int b = 0; b < B; b++) {
        const double *xb = t[PAM_X].d + (size_t)b * C * N;   /* [C,N] */
        double *qb = q + (size_t)b * Cq * N, *kb = k + (size_t)b * Cq * N;
        double *vb = v + (size_t)b * C * N, *ab = a + (size_t)b * N * N;
        double *ob = o + (size_t)b * C * N, *outb = out + (size_t)b * C * N;
        ref_conv1x1(qb, t[PAM_WQ].d, t[PAM_BQ].d, xb, Cq, C, N);
        ref_conv1x1(kb, t[PAM_WK].d, t[PAM_BK].d, xb, Cq, C, N);
        ref_conv1x1(vb, t[PAM_WV].d, t[PAM_BV].d, xb, C, C, N);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int d = 0; d < Cq; d++) s += qb[(size_t)d * N + i] * kb[(size_t)d * N + j];
                ab[(size_t)i * N + j] = s;
            }
        ref_softmax_rows(ab, N, N, 1.0);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int j = 0; j < N; j++) s += vb[(size_t)c * N + j] * ab[(size_t)i * N + j];
                ob[(size_t)c * N + i] = s;
                outb[(size_t)c * N + i] = g * s + xb[(size_t)c * N + i];
            }
    }
}

/* CAM in double: a = softmax(rowmax(e) − e), evaluated as exp(rowmin(e) − e) / Σ. */
static void ref_cam(double *out, double *a, double *o, const tensor *t, int B, int C, int N) {
    double g = t[CAM_GAMMA].d[0];
    for (int b = 0; b < B; b++) {
        const double *xb = t[CAM_X].d + (size_t)b * C * N;   /* [C,N] */
        double *ab = a + (size_t)b * C * C, *ob = o + (size_t)b * C * N;
        double *outb = out + (size_t)b * C * N;
        for (int c = 0; c < C; c++)
            for (int d = 0; d < C; d++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += xb[(size_t)c * N + n] * xb[(size_t)d * N + n];
                ab[(size_t)c * C + d] = s;
            }
        for (int c = 0; c < C; c++) {
            double *row = ab + (size_t)c * C, mn = row[0], s = 0;
            for (int d = 1; d < C; d++) if (row[d] < mn) mn = row[d];
            for (int d = 0; d < C; d++) { row[d] = exp(mn - row[d]); s += row[d]; }
            for (int d = 0; d < C; d++) row[d] /= s;
        }
        for (int c = 0; c < C; c++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int d = 0; d < C; d++) s += ab[(size_t)c * C + d] * xb[(size_t)d * N + n];
                ob[(size_t)c * N + n] = s;
                outb[(size_t)c * N + n] = g * s + xb[(size_t)c * N + n];
            }
    }
}

static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

typedef struct attn_case {
    int pam;                 /* 1: PAM, 0: CAM */
    int B, C, Cq, N;
    int nt;                  /* PAM_NT or CAM_NT */
    tensor t[PAM_NT];        /* inputs and parameters */
    tensor r;                /* [B,C,N] loss weights: L = Σ r ⊙ out, so dout = r */
} attn_case;

/* L = Σ r ⊙ out on the double implementation. */
static double ref_loss(const attn_case *ac) {
    int B = ac->B, C = ac->C, Cq = ac->Cq, N = ac->N;
    size_t cn = (size_t)B * C * N;
    double *out = dalloc(cn), *o = dalloc(cn);
    double L;
    if (ac->pam) {
        double *q = dalloc((size_t)B * Cq * N), *k = dalloc((size_t)B * Cq * N);
        double *v = dalloc(cn), *a = dalloc((size_t)B * N * N);
        ref_pam(out, q, k, v, a, o, ac->t, B, C, Cq, N);
        free(q); free(k); free(v); free(a);
    } else {
        double *a = dalloc((size_t)B * C * C);
        ref_cam(out, a, o, ac->t, B, C, N);
        free(a);
    }
    L = dot_d(out, ac->r.d, cn);
    free(out); free(o);
    return L;
}

static void case_init(attn_case *ac, int pam, int B, int C, int Cq, int N, float gamma,
                      float xscale, uint64_t seed) {
    uint64_t s = seed;
    memset(ac, 0, sizeof *ac);
    ac->pam = pam; ac->B = B; ac->C = C; ac->Cq = Cq; ac->N = N;
    size_t cn = (size_t)B * C * N;
    if (pam) {
        ac->nt = PAM_NT;
        tensor_init(&ac->t[PAM_X], cn, -xscale, xscale, &s);
        tensor_init(&ac->t[PAM_WQ], (size_t)Cq * C, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_BQ], (size_t)Cq, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_WK], (size_t)Cq * C, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_BK], (size_t)Cq, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_WV], (size_t)C * C, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_BV], (size_t)C, -0.5f, 0.5f, &s);
        tensor_init(&ac->t[PAM_GAMMA], 1, 0, 0, &s);
        tensor_set(&ac->t[PAM_GAMMA], gamma);
    } else {
        ac->nt = CAM_NT;
        tensor_init(&ac->t[CAM_X], cn, -xscale, xscale, &s);
        tensor_init(&ac->t[CAM_GAMMA], 1, 0, 0, &s);
        tensor_set(&ac->t[CAM_GAMMA], gamma);
    }
    tensor_init(&ac->r, cn, -1, 1, &s);
}

static void case_free(attn_case *ac) {
    for (int i = 0; i < ac->nt; i++) tensor_free(&ac->t[i]);
    tensor_free(&ac->r);
}

/* Saved forward buffers of the op under test, and of the double implementation. */
typedef struct fwd_bufs {
    float *out, *q, *k, *v, *a, *o;
    double *out_d, *q_d, *k_d, *v_d, *a_d, *o_d;
} fwd_bufs;

static void fwd_run(fwd_bufs *fb, const attn_case *ac, dath_ctx *ctx) {
    int B = ac->B, C = ac->C, Cq = ac->Cq, N = ac->N;
    size_t cn = (size_t)B * C * N, qn = (size_t)B * Cq * N;
    size_t an = ac->pam ? (size_t)B * N * N : (size_t)B * C * C;
    memset(fb, 0, sizeof *fb);
    fb->out = falloc(cn); fb->o = falloc(cn); fb->a = falloc(an);
    fb->out_d = dalloc(cn); fb->o_d = dalloc(cn); fb->a_d = dalloc(an);
    const tensor *t = ac->t;
    if (ac->pam) {
        fb->q = falloc(qn); fb->k = falloc(qn); fb->v = falloc(cn);
        fb->q_d = dalloc(qn); fb->k_d = dalloc(qn); fb->v_d = dalloc(cn);
        pam_forward_cpu(fb->out, fb->q, fb->k, fb->v, fb->a, fb->o, t[PAM_X].f,
                        t[PAM_WQ].f, t[PAM_BQ].f, t[PAM_WK].f, t[PAM_BK].f, t[PAM_WV].f,
                        t[PAM_BV].f, t[PAM_GAMMA].f, B, C, Cq, N, NULL, ctx);
        ref_pam(fb->out_d, fb->q_d, fb->k_d, fb->v_d, fb->a_d, fb->o_d, t, B, C, Cq, N);
    } else {
        cam_forward_cpu(fb->out, fb->a, fb->o, NULL, t[CAM_X].f, t[CAM_GAMMA].f, B, C, N, NULL, ctx);
        ref_cam(fb->out_d, fb->a_d, fb->o_d, t, B, C, N);
    }
}

static void fwd_free(fwd_bufs *fb) {
    free(fb->out); free(fb->q); free(fb->k); free(fb->v); free(fb->a); free(fb->o);
    free(fb->out_d); free(fb->q_d); free(fb->k_d); free(fb->v_d); free(fb->a_d); free(fb->o_d);
}

static int close_fd(const char *name, const float *got, const double *ref, size_t n,
                    double atol, double rtol) {
    double *g = dalloc(n);
    for (size_t i = 0; i < n; i++) g[i] = got[i];
    int ok = check_close_d(name, g, ref, n, atol, rtol);
    free(g);
    return ok;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
    return 1;
}

/* Calls the op's backward with dout = r into grads[i] (one per tensor), for B images. */
static void bwd_run_b(float **grads, const float *dout, const fwd_bufs *fb,
                      const attn_case *ac, int B, int add, dath_ctx *ctx) {
    const tensor *t = ac->t;
    if (ac->pam)
        pam_backward_cpu(grads[PAM_X], grads[PAM_WQ], grads[PAM_BQ], grads[PAM_WK],
                         grads[PAM_BK], grads[PAM_WV], grads[PAM_BV], grads[PAM_GAMMA],
                         dout, t[PAM_X].f, fb->q, fb->k, fb->v, fb->a, fb->o,
                         t[PAM_WQ].f, t[PAM_WK].f, t[PAM_WV].f, t[PAM_GAMMA].f,
                         B, ac->C, ac->Cq, ac->N, add, NULL, ctx);
    else
        cam_backward_cpu(grads[CAM_X], grads[CAM_GAMMA], dout, t[CAM_X].f, NULL, fb->a, fb->o,
                         t[CAM_GAMMA].f, B, ac->C, ac->N, add, NULL, ctx);
}

static void bwd_run(float **grads, const float *dout, const fwd_bufs *fb,
                    const attn_case *ac, dath_ctx *ctx) {
    bwd_run_b(grads, dout, fb, ac, ac->B, 0, ctx);
}

/* Forward against the double loops, then the backward against central differences,
 * the += contract and dout's constancy. */
static void run_case(const char *label, int pam, int B, int C, int Cq, int N, float gamma,
                     uint64_t seed) {
    dath_ctx ctx = {0};
    attn_case ac;
    fwd_bufs fb;
    char name[128];
    case_init(&ac, pam, B, C, Cq, N, gamma, 1.0f, seed);
    fwd_run(&fb, &ac, &ctx);
    size_t cn = (size_t)B * C * N, qn = (size_t)B * Cq * N;
    size_t an = pam ? (size_t)B * N * N : (size_t)B * C * C;

    double fatol = pam ? PAM_FWD_ATOL : CAM_FWD_ATOL, frtol = pam ? PAM_FWD_RTOL : CAM_FWD_RTOL;
#define FWD(buf, n) do { snprintf(name, sizeof name, "%s.%s", label, #buf); \
        close_fd(name, fb.buf, fb.buf##_d, n, fatol, frtol); } while (0)
    FWD(out, cn); FWD(a, an); FWD(o, cn);
    if (pam) { FWD(q, qn); FWD(k, qn); FWD(v, cn); }
#undef FWD
    if (gamma == 0.0f) {
        snprintf(name, sizeof name, "%s.out == x exactly (gamma = 0)", label);
        CHECK_TRUE(name, memcmp(fb.out, ac.t[0].f, cn * sizeof(float)) == 0);
    }

    /* backward onto zeroed gradients */
    float *grads[PAM_NT], *acc[PAM_NT];
    float *dout = falloc(cn);                      /* [B,C,N] = r */
    memcpy(dout, ac.r.f, cn * sizeof(float));
    for (int i = 0; i < ac.nt; i++) grads[i] = falloc(ac.t[i].n);
    bwd_run(grads, dout, &fb, &ac, &ctx);
    snprintf(name, sizeof name, "%s.dout unchanged", label);
    CHECK_TRUE(name, memcmp(dout, ac.r.f, cn * sizeof(float)) == 0);

    /* central differences of L on the double implementation */
    const grad_tol *tol = pam ? pam_tol : cam_tol;
    uint64_t s = seed ^ 0x5eedULL;
    for (int i = 0; i < ac.nt; i++) {
        tensor *t = &ac.t[i];
        size_t m = t->n < FD_SAMPLES ? t->n : FD_SAMPLES;
        double got[FD_SAMPLES], fd[FD_SAMPLES];
        for (size_t j = 0; j < m; j++) {
            size_t idx = t->n <= FD_SAMPLES ? j : (size_t)(check_next(&s) % t->n);
            double keep = t->d[idx];
            t->d[idx] = keep + FD_EPS;
            double lp = ref_loss(&ac);
            t->d[idx] = keep - FD_EPS;
            double lm = ref_loss(&ac);
            t->d[idx] = keep;
            fd[j] = (lp - lm) / (2 * FD_EPS);
            got[j] = grads[i][idx];
        }
        snprintf(name, sizeof name, "%s.%s vs central diff", label, tol[i].name);
        check_close_d(name, got, fd, m, tol[i].atol, tol[i].rtol);
    }

    /* dx (tensor 0) with add = 1 (+=): backward onto a random dx equals that dx + the
     * backward above; the parameter gradients (=): backward onto NaN gives the gradients
     * above exactly; then dx with add = 0 (=): onto NaN, the backward above exactly */
    s = seed ^ 0xacc0ULL;
    for (int i = 0; i < ac.nt; i++) {
        acc[i] = falloc(ac.t[i].n);
        if (i == 0) check_fill(acc[i], ac.t[i].n, -1, 1, &s);
        else check_fill_nan(acc[i], ac.t[i].n);
    }
    float *start[PAM_NT];
    for (int i = 0; i < ac.nt; i++) {
        start[i] = falloc(ac.t[i].n);
        memcpy(start[i], acc[i], ac.t[i].n * sizeof(float));
    }
    bwd_run_b(acc, dout, &fb, &ac, ac.B, 1, &ctx);
    for (int i = 0; i < ac.nt; i++) {
        if (i == 0) {
            for (size_t j = 0; j < ac.t[i].n; j++) start[i][j] += grads[i][j];
            snprintf(name, sizeof name, "%s.%s add = 1 accumulates (+=)", label, tol[i].name);
            CHECK_CLOSE(name, acc[i], start[i], ac.t[i].n, ACC_ATOL, ACC_RTOL);
        } else {
            snprintf(name, sizeof name, "%s.%s written onto NaN (=)", label, tol[i].name);
            CHECK_CLOSE(name, acc[i], grads[i], ac.t[i].n, 0.0, 0.0);
        }
    }
    check_fill_nan(acc[0], ac.t[0].n);
    bwd_run_b(acc, dout, &fb, &ac, ac.B, 0, &ctx);
    snprintf(name, sizeof name, "%s.%s add = 0 written onto NaN (=)", label, tol[0].name);
    CHECK_CLOSE(name, acc[0], grads[0], ac.t[0].n, 0.0, 0.0);
    /* an empty batch: the parameter gradients are zero */
    for (int i = 1; i < ac.nt; i++)
        check_fill_nan(acc[i], ac.t[i].n);
    bwd_run_b(acc, dout, &fb, &ac, 0, 0, &ctx);
    for (int i = 1; i < ac.nt; i++) {
        memset(start[i], 0, ac.t[i].n * sizeof(float));
        snprintf(name, sizeof name, "%s.%s empty batch: 0", label, tol[i].name);
        CHECK_CLOSE(name, acc[i], start[i], ac.t[i].n, 0.0, 0.0);
    }
    for (int i = 0; i < ac.nt; i++) { free(acc[i]); free(start[i]); free(grads[i]); }
    free(dout);
    fwd_free(&fb);
    case_free(&ac);
}

/* CAM with x scaled by CAM_BIG: e ≈ 1e6 on the diagonal, exp(−e) unrepresentable
 * without the shift. The output must be finite and equal the double implementation. */
static void run_cam_big(const char *label, int B, int C, int N, uint64_t seed) {
    dath_ctx ctx = {0};
    attn_case ac;
    fwd_bufs fb;
    char name[128];
    case_init(&ac, 0, B, C, 0, N, 0.7f, CAM_BIG, seed);
    fwd_run(&fb, &ac, &ctx);
    size_t cn = (size_t)B * C * N;
    snprintf(name, sizeof name, "%s.out finite", label);
    CHECK_TRUE(name, all_finite(fb.out, cn) && all_finite(fb.a, (size_t)B * C * C));
    snprintf(name, sizeof name, "%s.out", label);
    close_fd(name, fb.out, fb.out_d, cn, BIG_ATOL * CAM_BIG, BIG_RTOL);
    snprintf(name, sizeof name, "%s.o", label);
    close_fd(name, fb.o, fb.o_d, cn, BIG_ATOL * CAM_BIG, BIG_RTOL);

    /* the backward stays finite too */
    float *dx = falloc(cn), *dg = falloc(1);
    cam_backward_cpu(dx, dg, ac.r.f, ac.t[CAM_X].f, NULL, fb.a, fb.o, ac.t[CAM_GAMMA].f,
                     B, C, N, 0, NULL, &ctx);
    snprintf(name, sizeof name, "%s.backward finite", label);
    CHECK_TRUE(name, all_finite(dx, cn) && isfinite(dg[0]));
    free(dx); free(dg);
    fwd_free(&fb);
    case_free(&ac);
}

int main(void) {
    run_case("pam[2,16,2,9] g=0.7", 1, 2, 16, 2, 9, 0.7f, 11);
    run_case("pam[2,16,2,9] g=0", 1, 2, 16, 2, 9, 0.0f, 12);
    run_case("pam[2,32,4,169] g=0.7", 1, 2, 32, 4, 169, 0.7f, 13);
    run_case("pam[2,32,4,169] g=0", 1, 2, 32, 4, 169, 0.0f, 14);
    run_case("cam[2,16,9] g=0.7", 0, 2, 16, 0, 9, 0.7f, 21);
    run_case("cam[2,16,9] g=0", 0, 2, 16, 0, 9, 0.0f, 22);
    run_case("cam[2,32,169] g=0.7", 0, 2, 32, 0, 169, 0.7f, 23);
    run_case("cam[2,32,169] g=0", 0, 2, 32, 0, 169, 0.0f, 24);
    run_cam_big("cam[2,16,9] x*100", 2, 16, 9, 31);
    run_cam_big("cam[2,32,169] x*100", 2, 32, 169, 32);
    return check_finish();
}
