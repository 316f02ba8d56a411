/* Runs every batch-norm kernel over edge shapes and compares it with plain
 * double-precision loops; statistics must be bit-identical for 1 to 3
 * threads.  Built with AddressSanitizer and UndefinedBehaviorSanitizer by the
 * Makefile beside it. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchnorm.h"

static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond) && failures++ < 20) {                                                     \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
        }                                                                                     \
    } while (0)

#define RUN(REAL, SUF, TOL, GTOL)                                                             \
static void run_##SUF(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner)                          \
{                                                                                             \
    ptrdiff_t n = outer * C * inner;                                                          \
    /* exact-size allocations so ASan catches any overrun */                                  \
    REAL *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *y = malloc(n * sizeof *y);  \
    REAL *y2 = malloc(n * sizeof *y2);                                                        \
    double *mean = malloc(C * 8), *m2 = malloc(C * 8), *sg = malloc(C * 8), *sgx = malloc(C * 8); \
    double *mean2 = malloc(C * 8), *m22 = malloc(C * 8), *a = malloc(C * 8), *s = malloc(C * 8); \
    double *t = malloc(C * 8);                                                                \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        x[i] = (REAL)(100.0 + sin((double)i * 0.37) * 3);                                     \
        g[i] = (REAL)cos((double)i * 0.11);                                                   \
    }                                                                                         \
    for (int th = 1; th <= 3; th++) {                                                         \
        CHECK(fsm_bn_stats_##SUF(x, outer, C, inner, th == 1 ? mean : mean2,                  \
                                 th == 1 ? m2 : m22, th) == 0, "alloc");                      \
        if (th > 1)                                                                           \
            CHECK(!memcmp(mean, mean2, C * 8) && !memcmp(m2, m22, C * 8),                     \
                  #SUF " stats differ with %d threads (%td,%td,%td)", th, outer, C, inner);   \
    }                                                                                         \
    for (ptrdiff_t c = 0; c < C; c++) {                                                       \
        double sum = 0, sq = 0, cnt = (double)(outer * inner), gs = 0, gxs = 0;               \
        for (ptrdiff_t o = 0; o < outer; o++)                                                 \
            for (ptrdiff_t j = 0; j < inner; j++) sum += x[(o * C + c) * inner + j];          \
        double mu = sum / cnt;                                                                \
        for (ptrdiff_t o = 0; o < outer; o++)                                                 \
            for (ptrdiff_t j = 0; j < inner; j++) {                                           \
                ptrdiff_t k = (o * C + c) * inner + j;                                        \
                sq += (x[k] - mu) * (x[k] - mu);                                              \
                gs += g[k];                                                                   \
                gxs += g[k] * (x[k] - mu);                                                    \
            }                                                                                 \
        CHECK(fabs(mean[c] - mu) <= 1e-12 * fabs(mu), #SUF " mean c=%td", c);                 \
        CHECK(fabs(m2[c] - sq) <= 1e-9 * sq + 1e-9, #SUF " m2 c=%td %g %g", c, m2[c], sq);    \
        a[c] = 1.5; s[c] = 0.5 + c; t[c] = -c;                                                \
        sg[c] = gs; sgx[c] = gxs; /* what the kernel must find */                             \
    }                                                                                         \
    memcpy(mean2, sg, C * 8);                                                                 \
    memcpy(m22, sgx, C * 8);                                                                  \
    CHECK(fsm_bn_grad_sums_##SUF(g, x, outer, C, inner, mean, sg, sgx, 3) == 0, "alloc");     \
    for (ptrdiff_t c = 0; c < C; c++) {                                                       \
        CHECK(fabs(sg[c] - mean2[c]) <= GTOL * (1 + fabs(mean2[c])) * outer * inner,          \
              #SUF " sum_g c=%td", c);                                                        \
        CHECK(fabs(sgx[c] - m22[c]) <= GTOL * (1 + fabs(m22[c])) * outer * inner,             \
              #SUF " sum_gxc c=%td", c);                                                      \
    }                                                                                         \
    CHECK(fsm_bn_apply_##SUF(NULL, x, y, outer, C, inner, NULL, s, mean, t, 2) == 0, "a");    \
    CHECK(fsm_bn_apply_##SUF(g, x, y2, outer, C, inner, a, s, mean, t, 2) == 0, "a");         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        ptrdiff_t c = (i / inner) % C;                                                        \
        double want = s[c] * ((double)x[i] - mean[c]) + t[c];                                 \
        double size = (1 + fabs(s[c] * ((double)x[i] - mean[c])) + fabs(t[c]) + fabs(g[i])) * a[c]; \
        CHECK(fabs(y[i] - want) <= TOL * size, #SUF " apply i=%td got %.9g want %.9g shape %td %td %td", i, (double)y[i], want, outer, C, inner);           \
        want = a[c] * (g[i] + t[c] + s[c] * ((double)x[i] - mean[c]));                        \
        CHECK(fabs(y2[i] - want) <= TOL * size, #SUF " apply2 i=%td", i);         \
    }                                                                                         \
    /* in place, and the g-only form */                                                       \
    memcpy(y, g, n * sizeof *y);                                                              \
    CHECK(fsm_bn_apply_##SUF(y, NULL, y, outer, C, inner, a, NULL, NULL, NULL, 3) == 0, "a"); \
    for (ptrdiff_t i = 0; i < n; i++) CHECK(y[i] == (REAL)((REAL)1.5 * g[i]), #SUF " g-only"); \
    free(x); free(g); free(y); free(y2); free(mean); free(m2); free(sg); free(sgx);            \
    free(mean2); free(m22); free(a); free(s); free(t);                                        \
}

/* GTOL: the gradient sums' tolerance; float data adds its terms in float
 * eight at a time. */
RUN(float, f32, 1e-5, 1e-6)
RUN(double, f64, 1e-12, 1e-9)

/* The one-call training forward: its statistics against fsm_bn_stats (the
 * same bits, but for float data in the column layout, inner < 32, which
 * sums its terms in float first: within TOL), its y against fsm_bn_invstd
 * and fsm_bn_apply of those statistics; bit-identical for 1 to 3 threads,
 * and in place. */
#define RUN_TRAIN(REAL, SUF, TOL)                                                             \
static void train_##SUF(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner)                        \
{                                                                                             \
    ptrdiff_t n = outer * C * inner;                                                          \
    REAL *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want);                        \
    REAL *y = malloc(n * sizeof *y), *y1 = malloc(n * sizeof *y1);                            \
    double *w = malloc(C * 8), *bias = malloc(C * 8), *mean = malloc(C * 8);                  \
    double *m2 = malloc(C * 8), *inv = malloc(C * 8), *scale = malloc(C * 8);                 \
    double *mean1 = malloc(C * 8), *m21 = malloc(C * 8), *inv1 = malloc(C * 8);               \
    double *mean2 = malloc(C * 8), *m22 = malloc(C * 8), *inv2 = malloc(C * 8);               \
    const double tol = sizeof(REAL) < 8 && inner < 32 ? TOL : 0, count = (double)(outer * inner); \
    for (ptrdiff_t i = 0; i < n; i++) x[i] = (REAL)(-50.0 + cos((double)i * 0.23) * 7);       \
    for (ptrdiff_t c = 0; c < C; c++) {                                                       \
        w[c] = 0.5 + 0.25 * (double)c;                                                        \
        bias[c] = 1.0 - (double)c;                                                            \
    }                                                                                         \
    CHECK(fsm_bn_stats_##SUF(x, outer, C, inner, mean, m2, 1) == 0, "alloc");                 \
    CHECK(fsm_bn_train_##SUF(x, y1, outer, C, inner, w, bias, 1e-5, mean1, m21, inv1, 1) == 0, \
          "alloc");                                                                           \
    for (ptrdiff_t c = 0; c < C; c++)                                                         \
        CHECK(fabs(mean1[c] - mean[c]) <= tol * sqrt(m2[c] / count) + tol * fabs(mean[c])     \
              && fabs(m21[c] - m2[c]) <= tol * m2[c],                                         \
              #SUF " train statistics (%td,%td,%td) feature %td: %.17g %.17g, want %.17g %.17g", \
              outer, C, inner, c, mean1[c], m21[c], mean[c], m2[c]);                          \
    fsm_bn_invstd(m21, C, count, 1e-5, w, inv, scale);                                        \
    CHECK(fsm_bn_apply_##SUF(NULL, x, want, outer, C, inner, NULL, scale, mean1, bias, 1) == 0, \
          "alloc");                                                                           \
    CHECK(!memcmp(inv, inv1, C * 8) && !memcmp(want, y1, n * sizeof *y1),                     \
          #SUF " train y differs from its statistics' (%td,%td,%td)", outer, C, inner);       \
    for (int th = 2; th <= 4; th++) {                                                         \
        if (th == 4) { /* in place */                                                         \
            memcpy(y, x, n * sizeof *y);                                                      \
            CHECK(fsm_bn_train_##SUF(y, y, outer, C, inner, w, bias, 1e-5, mean2, m22, inv2,  \
                                     2) == 0, "alloc");                                       \
        } else {                                                                              \
            CHECK(fsm_bn_train_##SUF(x, y, outer, C, inner, w, bias, 1e-5, mean2, m22, inv2,  \
                                     th) == 0, "alloc");                                      \
        }                                                                                     \
        CHECK(!memcmp(mean1, mean2, C * 8) && !memcmp(m21, m22, C * 8)                        \
              && !memcmp(inv1, inv2, C * 8) && !memcmp(y1, y, n * sizeof *y),                 \
              #SUF " train differs, run %d (%td,%td,%td)", th, outer, C, inner);              \
    }                                                                                         \
    free(x); free(want); free(y); free(y1); free(w); free(bias); free(mean); free(m2);        \
    free(inv); free(scale); free(mean1); free(m21); free(inv1); free(mean2); free(m22);       \
    free(inv2);                                                                               \
}

RUN_TRAIN(float, f32, 1e-6)
RUN_TRAIN(double, f64, 0)

/* The one-call training backward: the same bits as fsm_bn_grad_sums,
 * fsm_bn_backward_factors and fsm_bn_apply one after another, for 1 to 3
 * threads, with and without weight, and in place over g and over x. */
#define RUN_BACKWARD(REAL, SUF)                                                               \
static void backward_##SUF(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner)                     \
{                                                                                             \
    ptrdiff_t n = outer * C * inner;                                                          \
    REAL *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *want = malloc(n * sizeof *want); \
    REAL *dx = malloc(n * sizeof *dx);                                                        \
    double *w = malloc(C * 8), *mean = malloc(C * 8), *m2 = malloc(C * 8), *inv = malloc(C * 8); \
    double *sg = malloc(C * 8), *sgx = malloc(C * 8), *sg1 = malloc(C * 8), *sgx1 = malloc(C * 8); \
    double *k = malloc(C * 8), *s = malloc(C * 8), *t = malloc(C * 8);                        \
    const double count = (double)(outer * inner);                                             \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        x[i] = (REAL)(3.0 + sin((double)i * 0.29) * 2);                                       \
        g[i] = (REAL)cos((double)i * 0.13);                                                   \
    }                                                                                         \
    for (ptrdiff_t c = 0; c < C; c++) w[c] = 0.75 - 0.125 * (double)c;                        \
    CHECK(fsm_bn_stats_##SUF(x, outer, C, inner, mean, m2, 1) == 0, "alloc");                 \
    fsm_bn_invstd(m2, C, count, 1e-5, NULL, inv, k);                                          \
    for (int weighted = 0; weighted <= 1; weighted++) {                                       \
        const double *wp = weighted ? w : NULL;                                               \
        CHECK(fsm_bn_grad_sums_##SUF(g, x, outer, C, inner, mean, sg, sgx, 1) == 0, "alloc"); \
        fsm_bn_backward_factors(inv, wp, sg, sgx, C, count, k, s, t);                         \
        CHECK(fsm_bn_apply_##SUF(g, x, want, outer, C, inner, k, s, mean, t, 1) == 0, "alloc"); \
        for (int run = 1; run <= 5; run++) {                                                  \
            const REAL *gin = g, *xin = x;                                                    \
            if (run == 4) gin = memcpy(dx, g, n * sizeof *dx);  /* dx over g */               \
            if (run == 5) xin = memcpy(dx, x, n * sizeof *dx);  /* dx over x */               \
            CHECK(fsm_bn_backward_##SUF(gin, xin, dx, outer, C, inner, mean, inv, wp, sg1,    \
                                        sgx1, run <= 3 ? run : 2) == 0, "alloc");             \
            CHECK(!memcmp(sg, sg1, C * 8) && !memcmp(sgx, sgx1, C * 8)                        \
                  && !memcmp(want, dx, n * sizeof *dx),                                       \
                  #SUF " backward differs from its passes, run %d weighted %d (%td,%td,%td)", \
                  run, weighted, outer, C, inner);                                            \
        }                                                                                     \
    }                                                                                         \
    free(x); free(g); free(want); free(dx); free(w); free(mean); free(m2); free(inv);         \
    free(sg); free(sgx); free(sg1); free(sgx1); free(k); free(s); free(t);                    \
}

RUN_BACKWARD(float, f32)
RUN_BACKWARD(double, f64)

/* Special values, as PyTorch: feature 0 holding v has mean want_mean and m2
 * want_m2 (NaN compared as NaN), from fsm_bn_stats and fsm_bn_train alike;
 * feature 1 (finite) is unaffected. */
#define RUN_SPECIAL(REAL, SUF)                                                                \
static void special_##SUF(ptrdiff_t inner, REAL v, int all, double want_mean, double want_m2) \
{                                                                                             \
    enum { OUTER = 3, C = 2 };                                                                \
    ptrdiff_t n = OUTER * C * inner;                                                          \
    REAL *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);                              \
    double mean[C], m2[C], inv[C];                                                            \
    for (ptrdiff_t i = 0; i < n; i++) x[i] = (REAL)(i % 7);                                   \
    for (ptrdiff_t o = 0; o < OUTER; o++)                                                     \
        for (ptrdiff_t j = 0; j < inner; j++)                                                 \
            if (all || (o == 1 && j == inner / 2)) x[o * C * inner + j] = v;                 \
    for (int train = 0; train < 2; train++) {                                                 \
        if (train)                                                                            \
            CHECK(fsm_bn_train_##SUF(x, y, OUTER, C, inner, NULL, NULL, 1e-5, mean, m2, inv,  \
                                     2) == 0, "alloc");                                       \
        else                                                                                  \
            CHECK(fsm_bn_stats_##SUF(x, OUTER, C, inner, mean, m2, 2) == 0, "alloc");         \
        CHECK((isnan(want_mean) ? isnan(mean[0]) : mean[0] == want_mean)                      \
              && (isnan(want_m2) ? isnan(m2[0]) : m2[0] == want_m2)                           \
              && isfinite(mean[1]) && isfinite(m2[1]),                                        \
              #SUF " special inner %td train %d: mean %g m2 %g", inner, train, mean[0], m2[0]); \
    }                                                                                         \
    free(x);                                                                                  \
    free(y);                                                                                  \
}

RUN_SPECIAL(float, f32)
RUN_SPECIAL(double, f64)

static void specials(void)
{
    const ptrdiff_t inners[] = {1, 40};
    for (int k = 0; k < 2; k++) {
        ptrdiff_t in = inners[k];
        special_f32(in, INFINITY, 0, INFINITY, NAN);
        special_f32(in, -INFINITY, 0, -INFINITY, NAN);
        special_f32(in, NAN, 0, NAN, NAN);
        special_f32(in, FLT_MAX, 1, FLT_MAX, 0);
        special_f64(in, INFINITY, 0, INFINITY, NAN);
        special_f64(in, -INFINITY, 1, -INFINITY, NAN);
        special_f64(in, NAN, 0, NAN, NAN);
        special_f64(in, DBL_MAX / 2, 1, DBL_MAX / 2, 0); /* sums overflow */
        special_f64(in, -DBL_MAX, 1, -DBL_MAX, 0);
    }
}

/* Float gradient sums whose float partial products overflow (g * (x - mean)
 * ~ 1e50) while the double sums are finite: redone in double. */
static void grad_overflow(ptrdiff_t inner)
{
    enum { OUTER = 9, C = 2 }; /* enough for the REAL sums of both layouts */
    ptrdiff_t n = OUTER * C * inner;
    float *g = malloc(n * sizeof *g), *x = malloc(n * sizeof *x);
    double mean[C] = {0, 0}, sg[C], sgx[C];
    for (ptrdiff_t i = 0; i < n; i++) {
        g[i] = (i / inner) % C == 0 ? 1e30f : 1.0f;
        x[i] = (i % 2 ? 1e20f : -3e20f);
    }
    CHECK(fsm_bn_grad_sums_f32(g, x, OUTER, C, inner, mean, sg, sgx, 2) == 0, "alloc");
    for (ptrdiff_t c = 0; c < C; c++) {
        double want_g = 0, want_gx = 0;
        for (ptrdiff_t o = 0; o < OUTER; o++)
            for (ptrdiff_t j = 0; j < inner; j++) {
                ptrdiff_t k = (o * C + c) * inner + j;
                want_g += g[k];
                want_gx += (double)g[k] * (double)x[k];
            }
        CHECK(isfinite(sgx[c]) && fabs(sg[c] - want_g) <= 1e-12 * fabs(want_g)
                  && fabs(sgx[c] - want_gx) <= 1e-12 * fabs(want_gx),
              "f32 grad sums overflow c=%td inner=%td: %g %g, want %g %g", c, inner, sg[c],
              sgx[c], want_g, want_gx);
    }
    free(g);
    free(x);
}

/* The backward factors against their defining expressions (bit for bit),
 * and the float32 conversions of per-feature arrays. */
static void factors(ptrdiff_t C)
{
    double *inv = malloc(C * 8), *w = malloc(C * 8), *sg = malloc(C * 8), *sgx = malloc(C * 8);
    double *k = malloc(C * 8), *s = malloc(C * 8), *t = malloc(C * 8), *back = malloc(C * 8);
    float *f = malloc(C * sizeof *f);
    const double count = 7;
    for (ptrdiff_t c = 0; c < C; c++) {
        inv[c] = 0.5 + 0.01 * (double)c;
        w[c] = 1.0 - 0.3 * (double)c;
        sg[c] = sin((double)c);
        sgx[c] = cos((double)c) * 1e3;
    }
    for (int weighted = 0; weighted < 2; weighted++) {
        fsm_bn_backward_factors(inv, weighted ? w : NULL, sg, sgx, C, count, k, s, t);
        for (ptrdiff_t c = 0; c < C; c++) {
            const double want_s = -inv[c] * inv[c] * sgx[c] / count, want_t = -sg[c] / count;
            CHECK(k[c] == (weighted ? inv[c] * w[c] : inv[c]) && s[c] == want_s && t[c] == want_t,
                  "backward factors c=%td weighted=%d", c, weighted);
        }
    }
    fsm_bn_narrow_f32(sgx, C, f);
    fsm_bn_widen_f32(f, C, back);
    for (ptrdiff_t c = 0; c < C; c++)
        CHECK(f[c] == (float)sgx[c] && back[c] == (double)f[c], "conversions c=%td", c);
    free(inv); free(w); free(sg); free(sgx); free(k); free(s); free(t); free(back); free(f);
}

/* The column-layout pass runs up or down the addresses depending on where
 * its output lies modulo 4096 relative to its inputs: every placement gives
 * the same bits as an output well apart from them. */
static void placements(ptrdiff_t outer, ptrdiff_t C)
{
    const ptrdiff_t n = outer * C;
    float *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *want = malloc(n * sizeof *want);
    char *buf = malloc(n * sizeof(float) + 8192);
    double *a = malloc(C * 8), *s = malloc(C * 8), *mean = malloc(C * 8), *t = malloc(C * 8);
    for (ptrdiff_t i = 0; i < n; i++) {
        x[i] = (float)sin((double)i * 0.37);
        g[i] = (float)cos((double)i * 0.11);
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        a[c] = 1.5; s[c] = 0.5 + c; mean[c] = 0.25; t[c] = -c;
    }
    static const ptrdiff_t offsets[] = {16, 64, 2048, 4032, 4080};
    for (int with_g = 0; with_g < 2; with_g++) {
        const float *gp = with_g ? g : NULL;
        const double *ap = with_g ? a : NULL;
        CHECK(fsm_bn_apply_f32(gp, x, want, outer, C, 1, ap, s, mean, t, 2) == 0, "a");
        for (size_t k = 0; k < sizeof offsets / sizeof *offsets; k++) {
            float *y = (float *)(buf + ((uintptr_t)x + offsets[k] - (uintptr_t)buf) % 4096);
            CHECK(fsm_bn_apply_f32(gp, x, y, outer, C, 1, ap, s, mean, t, 2) == 0, "a");
            CHECK(!memcmp(y, want, n * sizeof *y), "apply with out at x + %td (mod 4096), "
                  "shape (%td, %td), g %d", offsets[k], outer, C, with_g);
        }
    }
    free(x); free(g); free(want); free(buf); free(a); free(s); free(mean); free(t);
}

int main(void)
{
    const ptrdiff_t outers[] = {1, 2, 3, 5, 63, 64, 65, 129, 700};
    const ptrdiff_t Cs[] = {1, 2, 7, 16, 17, 255, 256, 257};
    const ptrdiff_t inners[] = {1, 2, 3, 15, 16, 31, 32, 33, 4095, 4097};
    int cases = 0;
    for (size_t a = 0; a < sizeof outers / sizeof *outers; a++)
        for (size_t b = 0; b < sizeof Cs / sizeof *Cs; b++)
            for (size_t c = 0; c < sizeof inners / sizeof *inners; c++) {
                ptrdiff_t o = outers[a], C = Cs[b], in = inners[c];
                if (o * C * in > 3000000 || o * in < 2) continue;
                run_f32(o, C, in);
                run_f64(o, C, in);
                train_f32(o, C, in);
                train_f64(o, C, in);
                backward_f32(o, C, in);
                backward_f64(o, C, in);
                cases++;
            }
    /* outputs past FSM_BN_STREAM_MIN, runs misaligned: the streamed pass */
    run_f32(2, 3, 700001);
    train_f32(2, 3, 700001);
    backward_f32(2, 3, 700001);
    run_f64(3, 2, 350003);
    train_f64(3, 2, 350003);
    backward_f64(3, 2, 350003);
    /* many features: the training forward's finish shared among threads */
    train_f32(256, 1536, 1);
    train_f64(300, 1100, 1);
    placements(5, 37);
    placements(256, 1024);
    specials();
    factors(1);
    factors(1027);
    grad_overflow(1);
    grad_overflow(300);
    printf("batchnorm_check: %d shapes, %d failures\n", cases, failures);
    return failures != 0;
}
