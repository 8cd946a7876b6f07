/* checks/test_linear.c — the fully connected reference (kernels/linear.c) against
 *   - the product in double (forward, and the backward's dw/db/din),
 *   - central finite differences of L = Σ r ⊙ out (double) through the float forward,
 *     on random subsets of in/w/b. With ReLU, r is 0 on every output whose
 *     pre-activation lies within FD_KINK_MARGIN of 0, more than any probe's ±eps can
 *     move it, so L has no kink within a probe's reach;
 *   - the contract: dw, db, din written (=: two calls onto NaN-filled buffers give one
 *     call's gradient, an empty batch zeros, no outputs a zero din), din = NULL, and
 *     dout's documented handling (untouched without ReLU, the pre-ReLU gradient with it). */
#include "check.h"
#include "../kernels/linear.h"

#include <string.h>

/* forward, float vs double: GEMM rounding over I ≤ 2304 terms of size ≤ 1/√I */
#define FWD_ATOL 1e-6
#define FWD_RTOL 1e-6
/* backward vs double: dw and db sum over B ≤ 5 products of size ~0.5 (cancelling:
 * atol, not rtol, carries dw), din over O ≤ 64 terms */
#define BWD_DW_ATOL 3e-7
#define BWD_DW_RTOL 1e-6
#define BWD_DB_ATOL 1e-7
#define BWD_DB_RTOL 2e-7
#define BWD_DIN_ATOL 2e-7
#define BWD_DIN_RTOL 1e-6
/* finite differences through the float forward. The layer is linear in each probed
 * element away from ReLU kinks, so the error is only the forward's rounding divided
 * by 2·eps; eps is large, as FD_KINK_MARGIN leaves room for it. */
#define FD_EPS 1e-2
#define FD_IN_ATOL 4e-5
#define FD_IN_RTOL 1e-4
#define FD_W_ATOL 1e-5
#define FD_W_RTOL 1e-4
#define FD_B_ATOL 1e-5
#define FD_B_RTOL 1e-4
#define FD_PROBES 24          /* probed elements per tensor */
/* A probe moves a pre-activation by at most eps·max(|in|, |w|, 1) = eps (|in| ≤ 1,
 * |w| ≤ 1/√I); twice that keeps every r ≠ 0 output on its side of the kink. */
#define FD_KINK_MARGIN (2 * FD_EPS)

typedef struct lin_case {
    const char *name;
    int B, I, O;
} lin_case;

typedef struct lin_data {
    int B, I, O;
    size_t n_in, n_w, n_out;
    float *in, *w, *b, *r, *out;     /* [B,I] [O,I] [O] [B,O] [B,O] */
    float *din, *dw, *db, *dout;     /* gradients of one backward call from zero */
    double *rout, *rdin, *rdw, *rdb; /* the double reference of out and the gradients */
} lin_data;

static int close_fd(const char *name, const float *got, const double *ref, size_t n,
                    double atol, double rtol) {
    double *g = malloc((n + 1) * sizeof *g);
    for (size_t i = 0; i < n; i++) g[i] = got[i];
    int ok = check_close_d(name, g, ref, n, atol, rtol);
    free(g);
    return ok;
}

/* out [B,O] = in·wᵀ + b in double, ReLU'd when relu. */
static void naive_forward(double *out, const float *in, const float *w, const float *b,
                          int B, int I, int O, int relu) {
    for (int bi = 0; bi < B; bi++)
        for (int o = 0; o < O; o++) {
            double acc = b[o];
            for (int i = 0; i < I; i++) acc += (double)in[(size_t)bi * I + i] * w[(size_t)o * I + i];
            out[(size_t)bi * O + o] = (relu && acc < 0) ? 0.0 : acc;
        }
}

/* g = dout ⊙ (out > 0 when relu); dw = gᵀ·in, db = Σ_b g, din = g·w (assigned). */
static void naive_backward(double *din, double *dw, double *db, const float *dout,
                           const float *in, const float *w, const double *out,
                           int B, int I, int O, int relu) {
    memset(din, 0, (size_t)B * I * sizeof *din);
    memset(dw, 0, (size_t)O * I * sizeof *dw);
    memset(db, 0, (size_t)O * sizeof *db);
    for (int bi = 0; bi < B; bi++)
        for (int o = 0; o < O; o++) {
            size_t j = (size_t)bi * O + o;
            double g = (relu && !(out[j] > 0.0)) ? 0.0 : dout[j];
            db[o] += g;
            for (int i = 0; i < I; i++) {
                dw[(size_t)o * I + i] += g * in[(size_t)bi * I + i];
                din[(size_t)bi * I + i] += g * w[(size_t)o * I + i];
            }
        }
}

static void data_init(lin_data *d, const lin_case *c, int relu, uint64_t *seed) {
    d->B = c->B; d->I = c->I; d->O = c->O;
    d->n_in = (size_t)c->B * c->I;
    d->n_w = (size_t)c->O * c->I;
    d->n_out = (size_t)c->B * c->O;
    d->in = malloc(d->n_in * sizeof(float));
    d->w = malloc(d->n_w * sizeof(float));
    d->b = malloc(c->O * sizeof(float));
    d->r = malloc(d->n_out * sizeof(float));
    d->out = malloc(d->n_out * sizeof(float));
    d->din = calloc(d->n_in, sizeof(float));
    d->dw = calloc(d->n_w, sizeof(float));
    d->db = calloc(c->O, sizeof(float));
    d->dout = malloc(d->n_out * sizeof(float));
    d->rout = malloc(d->n_out * sizeof(double));
    d->rdin = malloc(d->n_in * sizeof(double));
    d->rdw = malloc(d->n_w * sizeof(double));
    d->rdb = malloc(c->O * sizeof(double));
    float a = 1.0f / sqrtf((float)c->I);                      /* keeps out ~ O(1) */
    check_fill(d->in, d->n_in, -1.0f, 1.0f, seed);
    check_fill(d->w, d->n_w, -a, a, seed);
    check_fill(d->b, c->O, -0.2f, 0.2f, seed);
    check_fill(d->r, d->n_out, -1.0f, 1.0f, seed);
    if (relu) {   /* r = 0 near the kinks (pre-activations in double) */
        naive_forward(d->rout, d->in, d->w, d->b, c->B, c->I, c->O, 0);
        for (size_t j = 0; j < d->n_out; j++)
            if (fabs(d->rout[j]) < FD_KINK_MARGIN) d->r[j] = 0.0f;
    }
    naive_forward(d->rout, d->in, d->w, d->b, c->B, c->I, c->O, relu);
    naive_backward(d->rdin, d->rdw, d->rdb, d->r, d->in, d->w, d->rout, c->B, c->I, c->O, relu);
}

static void data_free(lin_data *d) {
    free(d->in); free(d->w); free(d->b); free(d->r); free(d->out);
    free(d->din); free(d->dw); free(d->db); free(d->dout);
    free(d->rout); free(d->rdin); free(d->rdw); free(d->rdb);
}

static void check_against_naive(lin_data *d, const char *name, int relu) {
    char label[160];
    linear_forward_cpu(d->out, d->in, d->w, d->b, d->B, d->I, d->O, relu, NULL, NULL);
    snprintf(label, sizeof label, "%s relu=%d out", name, relu);
    close_fd(label, d->out, d->rout, d->n_out, FWD_ATOL, FWD_RTOL);

    memcpy(d->dout, d->r, d->n_out * sizeof(float));
    linear_backward_cpu(d->din, d->dw, d->db, d->dout, d->in, d->w, d->out,
                        d->B, d->I, d->O, relu, NULL, NULL);
    snprintf(label, sizeof label, "%s relu=%d dw", name, relu);
    close_fd(label, d->dw, d->rdw, d->n_w, BWD_DW_ATOL, BWD_DW_RTOL);
    snprintf(label, sizeof label, "%s relu=%d db", name, relu);
    close_fd(label, d->db, d->rdb, d->O, BWD_DB_ATOL, BWD_DB_RTOL);
    snprintf(label, sizeof label, "%s relu=%d din", name, relu);
    close_fd(label, d->din, d->rdin, d->n_in, BWD_DIN_ATOL, BWD_DIN_RTOL);

    /* dout: untouched without ReLU, r ⊙ (out > 0) with it */
    int same = 1;
    for (size_t j = 0; j < d->n_out; j++) {
        float want = (relu && !(d->out[j] > 0.0f)) ? 0.0f : d->r[j];
        if (d->dout[j] != want) same = 0;
    }
    snprintf(label, sizeof label, "%s relu=%d dout %s", name, relu,
             relu ? "holds the pre-ReLU gradient" : "is untouched");
    CHECK_TRUE(label, same);
}

/* L = Σ r ⊙ out through the float forward. */
static double lin_loss(float *out, const lin_data *d, int relu) {
    linear_forward_cpu(out, d->in, d->w, d->b, d->B, d->I, d->O, relu, NULL, NULL);
    double L = 0.0;
    for (size_t j = 0; j < d->n_out; j++) L += (double)d->r[j] * out[j];
    return L;
}

/* Central differences of L w.r.t. FD_PROBES random elements of x (one of d's in/w/b),
 * compared with the analytic gradient g [n]; the float step xp − xm is the denominator. */
static void fd_tensor(const char *name, float *x, size_t n, const float *g, double atol,
                      double rtol, lin_data *d, int relu, uint64_t *seed) {
    float *out = malloc(d->n_out * sizeof *out);                        /* [B,O] */
    double got[FD_PROBES], ref[FD_PROBES];
    for (int t = 0; t < FD_PROBES; t++) {
        size_t e = (size_t)(check_unif(seed) * n);
        float x0 = x[e];
        float xp = (float)(x0 + FD_EPS), xm = (float)(x0 - FD_EPS);
        x[e] = xp;
        double Lp = lin_loss(out, d, relu);
        x[e] = xm;
        double Lm = lin_loss(out, d, relu);
        x[e] = x0;
        got[t] = g[e];
        ref[t] = (Lp - Lm) / ((double)xp - (double)xm);
    }
    check_close_d(name, got, ref, FD_PROBES, atol, rtol);
    free(out);
}

static void check_fd(lin_data *d, const char *name, int relu, uint64_t *seed) {
    char label[160];
    snprintf(label, sizeof label, "%s relu=%d fd din", name, relu);
    fd_tensor(label, d->in, d->n_in, d->din, FD_IN_ATOL, FD_IN_RTOL, d, relu, seed);
    snprintf(label, sizeof label, "%s relu=%d fd dw", name, relu);
    fd_tensor(label, d->w, d->n_w, d->dw, FD_W_ATOL, FD_W_RTOL, d, relu, seed);
    snprintf(label, sizeof label, "%s relu=%d fd db", name, relu);
    fd_tensor(label, d->b, d->O, d->db, FD_B_ATOL, FD_B_RTOL, d, relu, seed);
}

/* Two backward calls onto NaN-filled din, dw and db: each is one call's gradient, bit
 * for bit (=: whatever they held is gone); a call with din = NULL gives the same dw/db;
 * an empty batch writes zeros, a layer of no outputs a zero din. d holds one call's
 * gradients already. */
static void check_accumulate(lin_data *d, const char *name, int relu) {
    char label[160];
    float *din2 = malloc(d->n_in * sizeof(float)), *dw2 = malloc(d->n_w * sizeof(float));
    float *db2 = malloc(d->O * sizeof(float)), *dout = malloc(d->n_out * sizeof(float));
    check_fill_nan(din2, d->n_in);
    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)d->O);
    for (int call = 0; call < 2; call++) {
        memcpy(dout, d->r, d->n_out * sizeof(float));
        linear_backward_cpu(din2, dw2, db2, dout, d->in, d->w, d->out, d->B, d->I, d->O, relu, NULL, NULL);
    }
    snprintf(label, sizeof label, "%s relu=%d din after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, din2, d->din, d->n_in, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d dw after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, dw2, d->dw, d->n_w, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d db after two calls onto NaN: one call's (=)", name, relu);
    CHECK_CLOSE(label, db2, d->db, d->O, 0.0, 0.0);

    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)d->O);
    linear_backward_cpu(din2, dw2, db2, dout, d->in, d->w, d->out, 0, d->I, d->O, relu, NULL, NULL);
    snprintf(label, sizeof label, "%s relu=%d empty batch: dw = 0", name, relu);
    check_all_zero(label, dw2, d->n_w);
    snprintf(label, sizeof label, "%s relu=%d empty batch: db = 0", name, relu);
    check_all_zero(label, db2, (size_t)d->O);

    check_fill_nan(dw2, d->n_w);
    check_fill_nan(db2, (size_t)d->O);
    memcpy(dout, d->r, d->n_out * sizeof(float));
    linear_backward_cpu(NULL, dw2, db2, dout, d->in, d->w, d->out, d->B, d->I, d->O, relu, NULL, NULL);
    snprintf(label, sizeof label, "%s relu=%d din=NULL: dw unchanged", name, relu);
    CHECK_CLOSE(label, dw2, d->dw, d->n_w, 0.0, 0.0);
    snprintf(label, sizeof label, "%s relu=%d din=NULL: db unchanged", name, relu);
    CHECK_CLOSE(label, db2, d->db, d->O, 0.0, 0.0);

    check_fill_nan(din2, d->n_in);   /* no outputs: no gradient reaches in, din = 0 */
    linear_backward_cpu(din2, dw2, db2, dout, d->in, d->w, d->out, d->B, d->I, 0, relu, NULL, NULL);
    snprintf(label, sizeof label, "%s relu=%d no outputs: din = 0", name, relu);
    check_all_zero(label, din2, d->n_in);
    free(din2); free(dw2); free(db2); free(dout);
}

int main(void) {
    uint64_t seed = 0x11ea4;
    static const lin_case cases[] = {
        { "3x37 -> 19", 3, 37, 19 },
        { "fc-like 5x2304 -> 64", 5, 2304, 64 },
        { "hash-like 4x64 -> 12", 4, 64, 12 },
        { "1x5 -> 1", 1, 5, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int relu = 0; relu <= 1; relu++) {
            lin_data d;
            data_init(&d, &cases[c], relu, &seed);
            check_against_naive(&d, cases[c].name, relu);
            check_fd(&d, cases[c].name, relu, &seed);
            check_accumulate(&d, cases[c].name, relu);
            data_free(&d);
        }
    return check_finish();
}
