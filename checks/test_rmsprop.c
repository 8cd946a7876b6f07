/* checks/test_rmsprop.c — the RMSProp reference (kernels/rmsprop.c):
 *   1. several steps against the formula evaluated in double,
 *        g = grad + wd·θ;  v = α·v + (1 − α)·g²;  θ = θ − lr·g / (√v + eps),
 *      with weight decay on, v starting at 0, grad left untouched;
 *   2. the first step in closed form: v = (1 − α)g², so θ moves by
 *      lr·g / (√(1 − α)·|g| + eps) ≈ lr·sign(g)/√(1 − α);
 *   3. torch.optim.RMSprop's step replayed in float, op by op
 *      (torch/optim/rmsprop.py, centered=False, momentum=0):
 *        grad = grad.add(param, alpha=weight_decay)            g + wd·θ
 *        square_avg.mul_(alpha)                                 v·α
 *                  .addcmul_(grad, grad, value=1 - alpha)       v + ((1−α)·g)·g
 *        avg = square_avg.sqrt().add_(eps)                      √v + eps
 *        param.addcdiv_(grad, avg, value=-lr)                   θ + ((−lr)·g)/avg
 *      (ATen's CPU addcmul/addcdiv evaluate self + value·t1·t2 and self + value·t1/t2
 *      left to right), which the reference matches to the last bit here; the
 *      tolerance allows one ulp for a compiler that contracts to FMA.
 *      A real torch run differs by a few ulps more: its vectorised CPU kernels may be
 *      contracted to FMA, and it rounds the Python double 1 − alpha to float where we
 *      get float alpha (float(1 − 0.99) vs 1 − 0.99f, ~1e-6 relative in v);
 *   4. the guard: a NaN, +inf or −inf in any one of the guard's slots leaves theta and
 *      v bit-identical (on the small and on the large, parallel, buffer); an all-finite
 *      guard (including 0, huge and denormal values) gives the same bits as guard NULL,
 *      and so does a guard with nguard = 0. */
#include "check.h"
#include "../kernels/rmsprop.h"

#include <string.h>

/* float against the double formula: a few roundings over a few steps */
#define RMS_DOUBLE_ATOL 2e-8
#define RMS_DOUBLE_RTOL 1e-6
#define RMS_DOUBLE_V_ATOL 0.0      /* v is small (1e-7..1e-3): relative only */
#define RMS_DOUBLE_V_RTOL 1e-6
/* float against PyTorch's float op order: one ulp */
#define RMS_TORCH_ATOL 0.0
#define RMS_TORCH_RTOL 1.2e-7

#define N 37
#define STEPS 4

static dath_ctx ctx;

int main(void) {
    uint64_t rs = 2024;
    const float lr = 1e-2f, alpha = 0.99f, eps = 1e-8f, wd = 0.1f;

    float theta[N], v[N], grad[STEPS][N], gcopy[N];
    double td[N], vd[N];
    float tt[N], vt[N];                      /* PyTorch's float replay */
    check_fill(theta, N, -1.0f, 1.0f, &rs);
    theta[0] = 0.0f;                         /* decay on a zero weight: g = grad */
    memset(v, 0, sizeof v);                  /* torch initialises square_avg to 0 */
    for (int s = 0; s < STEPS; s++) check_fill(grad[s], N, -0.5f, 0.5f, &rs);
    grad[0][1] = 0.0f;                       /* zero gradient: only the decay moves it */
    grad[1][2] = 0.0f;
    for (int i = 0; i < N; i++) {
        td[i] = theta[i]; vd[i] = 0.0;
        tt[i] = theta[i]; vt[i] = 0.0f;
    }

    /* Step 1 in closed form, from θ0 and v0 = 0. */
    float first[N];
    for (int i = 0; i < N; i++) {
        double g = (double)grad[0][i] + (double)wd * theta[i];
        first[i] = (float)(theta[i] - lr * g / (sqrt(1.0 - alpha) * fabs(g) + eps));
    }

    int grad_ok = 1;
    for (int s = 0; s < STEPS; s++) {
        memcpy(gcopy, grad[s], sizeof gcopy);
        rmsprop_step_cpu(theta, v, NULL, grad[s], N, lr, alpha, eps, wd, NULL, 0, &ctx);
        if (memcmp(gcopy, grad[s], sizeof gcopy)) grad_ok = 0;

        for (int i = 0; i < N; i++) {        /* the formula, in double */
            double g = (double)grad[s][i] + (double)wd * td[i];
            vd[i] = (double)alpha * vd[i] + (1.0 - (double)alpha) * g * g;
            td[i] -= (double)lr * g / (sqrt(vd[i]) + (double)eps);
        }
        for (int i = 0; i < N; i++) {        /* torch's ops, in float */
            float g = grad[s][i] + wd * tt[i];
            vt[i] = vt[i] * alpha;
            vt[i] = vt[i] + ((1.0f - alpha) * g) * g;
            float avg = sqrtf(vt[i]) + eps;
            tt[i] = tt[i] + ((-lr) * g) / avg;
        }

        if (s == 0) CHECK_CLOSE("rmsprop.step1 closed form theta", theta, first, N,
                                RMS_DOUBLE_ATOL, RMS_DOUBLE_RTOL);
        float tdf[N], vdf[N];
        for (int i = 0; i < N; i++) { tdf[i] = (float)td[i]; vdf[i] = (float)vd[i]; }
        char name[64];
        snprintf(name, sizeof name, "rmsprop.step%d theta vs double formula", s + 1);
        CHECK_CLOSE(name, theta, tdf, N, RMS_DOUBLE_ATOL, RMS_DOUBLE_RTOL);
        snprintf(name, sizeof name, "rmsprop.step%d v vs double formula", s + 1);
        CHECK_CLOSE(name, v, vdf, N, RMS_DOUBLE_V_ATOL, RMS_DOUBLE_V_RTOL);
        snprintf(name, sizeof name, "rmsprop.step%d theta vs torch float ops", s + 1);
        CHECK_CLOSE(name, theta, tt, N, RMS_TORCH_ATOL, RMS_TORCH_RTOL);
        snprintf(name, sizeof name, "rmsprop.step%d v vs torch float ops", s + 1);
        CHECK_CLOSE(name, v, vt, N, RMS_TORCH_ATOL, RMS_TORCH_RTOL);
    }
    CHECK_TRUE("rmsprop.grad untouched (bitwise)", grad_ok);

    /* Weight decay matters: without it, a zero gradient leaves θ where it is. */
    float t1[2] = {0.5f, -0.25f}, v1[2] = {0}, g1[2] = {0};
    rmsprop_step_cpu(t1, v1, NULL, g1, 2, lr, alpha, eps, 0.0f, NULL, 0, &ctx);
    CHECK_TRUE("rmsprop.no decay, zero grad: theta and v unchanged",
               t1[0] == 0.5f && t1[1] == -0.25f && v1[0] == 0.0f && v1[1] == 0.0f);
    /* With it, θ moves against its sign: g = wd·θ, θ − lr·g/(√(1 − α)|g| + eps)
     * ≈ θ − lr·sign(θ)/√(1 − α). */
    rmsprop_step_cpu(t1, v1, NULL, g1, 2, lr, alpha, eps, wd, NULL, 0, &ctx);
    float want[2];
    for (int i = 0; i < 2; i++) {
        double th0 = i ? -0.25 : 0.5, g = (double)wd * th0;
        want[i] = (float)(th0 - lr * g / (sqrt(1.0 - alpha) * fabs(g) + eps));
    }
    CHECK_CLOSE("rmsprop.decay only: first step ~lr/sqrt(1-alpha) toward 0", t1, want, 2,
                RMS_DOUBLE_ATOL, RMS_DOUBLE_RTOL);

    /* A large buffer (parallel path) gives the same as element-by-element calls. */
    enum { NB = 200003 };
    float *tb = malloc(NB * sizeof *tb), *vb = malloc(NB * sizeof *vb),
          *gb = malloc(NB * sizeof *gb), *tc = malloc(NB * sizeof *tc),
          *vc = malloc(NB * sizeof *vc);
    check_fill(tb, NB, -1.0f, 1.0f, &rs);
    check_fill(vb, NB, 0.0f, 0.01f, &rs);
    check_fill(gb, NB, -0.1f, 0.1f, &rs);
    memcpy(tc, tb, NB * sizeof *tc);
    memcpy(vc, vb, NB * sizeof *vc);
    rmsprop_step_cpu(tb, vb, NULL, gb, NB, lr, alpha, eps, wd, NULL, 0, &ctx);
    for (size_t i = 0; i < NB; i += 1000)
        rmsprop_step_cpu(tc + i, vc + i, NULL, gb + i, i + 1000 <= NB ? 1000 : NB - i, lr, alpha,
                         eps, wd, NULL, 0, &ctx);
    CHECK_CLOSE("rmsprop.large buffer theta == chunked", tb, tc, NB, 0.0, 0.0);
    CHECK_CLOSE("rmsprop.large buffer v == chunked", vb, vc, NB, 0.0, 0.0);

    /* With the bf16 copy: theta and v as without it, and the copy each new theta rounded
     * to nearest even (its upper half, within half a bf16 ulp); rmsprop_narrow the same. */
    {
        dath_bf16 *cb = malloc(NB * sizeof *cb), *cn = malloc(NB * sizeof *cn);
        float *t2 = malloc(NB * sizeof *t2), *v2 = malloc(NB * sizeof *v2);
        memcpy(tc, tb, NB * sizeof *tc);   /* tb, vb: after one step; tc, t2 the next */
        memcpy(t2, tb, NB * sizeof *t2);
        memcpy(vc, vb, NB * sizeof *vc);
        memcpy(v2, vb, NB * sizeof *v2);
        rmsprop_step_cpu(tc, vc, NULL, gb, NB, lr, alpha, eps, wd, NULL, 0, &ctx);
        rmsprop_step_cpu(t2, v2, cb, gb, NB, lr, alpha, eps, wd, NULL, 0, &ctx);
        rmsprop_narrow_cpu(cn, t2, NB, &ctx);
        int same = !memcmp(tc, t2, NB * sizeof *tc) && !memcmp(vc, v2, NB * sizeof *vc), near = 1;
        for (size_t i = 0; i < NB; i++) {
            const float c = dath_bf16_to_float(cb[i]);
            near &= fabsf(c - t2[i]) <= ldexpf(fabsf(t2[i]), -8) && cb[i] == cn[i];
        }
        CHECK_TRUE("rmsprop.bf16 copy: theta and v as without it (bitwise)", same);
        CHECK_TRUE("rmsprop.bf16 copy: each theta rounded to bf16 (≤ half an ulp), as rmsprop_narrow", near);
        free(cb); free(cn); free(t2); free(v2);
    }

    /* The guard. Every non-finite value in every slot skips the step, bit for bit. */
    enum { NG = 3 };                          /* J1, J2, J3 */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *bad_name[3] = {"NaN", "+inf", "-inf"};
    float gd[NG];
    for (int sz = 0; sz < 2; sz++) {          /* the small buffer, then the large one */
        size_t n = sz ? (size_t)NB : (size_t)N;
        float *t0 = sz ? tb : theta, *v0 = sz ? vb : v, *g0 = sz ? gb : grad[0];
        float *tsave = malloc(n * sizeof *tsave), *vsave = malloc(n * sizeof *vsave);
        memcpy(tsave, t0, n * sizeof *tsave);
        memcpy(vsave, v0, n * sizeof *vsave);
        int skipped = 1;
        for (int slot = 0; slot < NG; slot++)
            for (int b = 0; b < 3; b++) {
                for (int k = 0; k < NG; k++) gd[k] = 0.5f + k;
                gd[slot] = bad[b];
                rmsprop_step_cpu(t0, v0, NULL, g0, n, lr, alpha, eps, wd, gd, NG, &ctx);
                if (memcmp(t0, tsave, n * sizeof *t0) || memcmp(v0, vsave, n * sizeof *v0)) {
                    printf("     guard slot %d = %s changed theta or v (n = %zu)\n", slot,
                           bad_name[b], n);
                    skipped = 0;
                }
            }
        char name[96];
        snprintf(name, sizeof name, "rmsprop.guard NaN/+inf/-inf in any slot: theta, v "
                 "bit-identical (n = %zu)", n);
        CHECK_TRUE(name, skipped);

        /* finite guards: the same bits as guard NULL */
        const float fin[3][NG] = {{0.0f, 0.0f, 0.0f}, {3.4e38f, -3.4e38f, 1e-40f},
                                  {2.5f, -1.0f, 7.0f}};
        float *tn = malloc(n * sizeof *tn), *vn = malloc(n * sizeof *vn);
        memcpy(tn, tsave, n * sizeof *tn);
        memcpy(vn, vsave, n * sizeof *vn);
        rmsprop_step_cpu(tn, vn, NULL, g0, n, lr, alpha, eps, wd, NULL, 0, &ctx);
        int same = 1;
        for (int f = 0; f <= 3; f++) {
            memcpy(t0, tsave, n * sizeof *t0);
            memcpy(v0, vsave, n * sizeof *v0);
            if (f < 3) rmsprop_step_cpu(t0, v0, NULL, g0, n, lr, alpha, eps, wd, fin[f], NG, &ctx);
            else rmsprop_step_cpu(t0, v0, NULL, g0, n, lr, alpha, eps, wd, bad, 0, &ctx); /* nguard 0 */
            if (memcmp(t0, tn, n * sizeof *t0) || memcmp(v0, vn, n * sizeof *v0)) same = 0;
        }
        snprintf(name, sizeof name, "rmsprop.finite guard (and nguard = 0) == guard NULL, "
                 "bitwise (n = %zu)", n);
        CHECK_TRUE(name, same);
        snprintf(name, sizeof name, "rmsprop.the unguarded step moves theta (n = %zu)", n);
        CHECK_TRUE(name, memcmp(tn, tsave, n * sizeof *tn) != 0);
        free(tsave); free(vsave); free(tn); free(vn);
    }

    free(tb); free(vb); free(gb); free(tc); free(vc);
    return check_finish();
}
