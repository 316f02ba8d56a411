/* Runs every softmax-family kernel over edge shapes and compares it with a
 * plain double-precision loop, in both builds of the kernels (softmax.c's,
 * and softmax_avx512.c's where the CPU runs it).  Built with AddressSanitizer and
 * UndefinedBehaviorSanitizer by the Makefile beside it, so any read or write
 * outside the arrays, or any undefined arithmetic, stops the run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "softmax.h"

FSM_DECLARE_SOFTMAX(float, f32_base)
FSM_DECLARE_SOFTMAX(double, f64_base)
#if FSM_AVX512_BUILD
FSM_DECLARE_SOFTMAX(float, f32_avx512)
FSM_DECLARE_SOFTMAX(double, f64_avx512)
#endif

static int failures;

static void check(const char *what, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, double got,
                  double want, double tol)
{
    if (!(fabs(got - want) <= tol * (1 + fabs(want)))) {
        if (failures++ < 10)
            fprintf(stderr, "%s (%td, %td, %td): got %.9g, want %.9g\n", what, outer, n, inner,
                    got, want);
    }
}

/* The family in double for slice (o, j): softmax, log_softmax, hardmax, and
 * the two backward passes of grad g (log_softmax_backward taking x as logp). */
typedef struct {
    double *soft, *logsoft, *hard, *dsoft, *dlogsoft;
} expected;

static void reference(const double *x, const double *g, expected e, ptrdiff_t outer,
                      ptrdiff_t n, ptrdiff_t inner)
{
    for (ptrdiff_t o = 0; o < outer; o++)
        for (ptrdiff_t j = 0; j < inner; j++) {
            const double *xs = x + o * n * inner + j, *gs = g + o * n * inner + j;
            const ptrdiff_t base = o * n * inner + j;
            double m = -INFINITY, s = 0, gy = 0, gsum = 0;
            ptrdiff_t best = 0;
            for (ptrdiff_t i = 0; i < n; i++) {
                if (xs[i * inner] > xs[best * inner]) best = i;
                m = fmax(m, xs[i * inner]);
            }
            for (ptrdiff_t i = 0; i < n; i++) s += exp(xs[i * inner] - m);
            for (ptrdiff_t i = 0; i < n; i++) {
                gy += gs[i * inner] * (exp(xs[i * inner] - m) / s);
                gsum += gs[i * inner];
            }
            for (ptrdiff_t i = 0; i < n; i++) {
                const ptrdiff_t k = base + i * inner;
                const double y = exp(x[k] - m) / s;
                e.soft[k] = y;
                e.logsoft[k] = x[k] - m - log(s);
                e.hard[k] = i == best;
                e.dsoft[k] = y * (g[k] - gy);
                e.dlogsoft[k] = g[k] - exp(x[k]) * gsum;
            }
        }
}

static double *zeros(ptrdiff_t size) { return calloc((size_t)size, sizeof(double)); }

#define CHECK_ALL(REAL, SUF)                                                                 \
    static void check_all_##SUF(const char *what, const REAL *got, const double *want,       \
                                ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, double tol)   \
    {                                                                                        \
        for (ptrdiff_t k = 0; k < outer * n * inner; k++)                                    \
            check(what, outer, n, inner, got[k], want[k], tol);                              \
    }

CHECK_ALL(float, f32)
CHECK_ALL(double, f64)

/* run_SUF##ISA: the checks of one dtype on one build. */
#define RUN_CHECKS(REAL, SUF, ISA, TOL)                                                      \
    static void run_##SUF##ISA(ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads)   \
    {                                                                                        \
        const ptrdiff_t size = outer * n * inner;                                            \
        REAL *x = calloc(size, sizeof *x), *out = calloc(size, sizeof *out);                 \
        REAL *g = calloc(size, sizeof *g), *y = calloc(size, sizeof *y);                     \
        double *xd = zeros(size), *gd = zeros(size);                                         \
        expected e = {zeros(size), zeros(size), zeros(size), zeros(size), zeros(size)};      \
        for (ptrdiff_t k = 0; k < size; k++) {                                               \
            x[k] = (REAL)(((k * 7919) % 1000) / 97.0 - 5);                                   \
            g[k] = (REAL)(((k * 104729) % 1000) / 500.0 - 1);                                \
            xd[k] = x[k];                                                                    \
            gd[k] = g[k];                                                                    \
        }                                                                                    \
        reference(xd, gd, e, outer, n, inner);                                               \
        fsm_softmax_##SUF##ISA(x, out, outer, n, inner, threads);                                 \
        check_all_##SUF("softmax_" #SUF, out, e.soft, outer, n, inner, TOL);                 \
        fsm_log_softmax_##SUF##ISA(x, out, outer, n, inner, threads);                             \
        check_all_##SUF("log_softmax_" #SUF, out, e.logsoft, outer, n, inner, TOL);          \
        fsm_hardmax_##SUF##ISA(x, out, outer, n, inner, threads);                                 \
        check_all_##SUF("hardmax_" #SUF, out, e.hard, outer, n, inner, 0);                   \
        for (ptrdiff_t k = 0; k < size; k++) y[k] = (REAL)e.soft[k];                         \
        fsm_softmax_backward_##SUF##ISA(g, y, out, outer, n, inner, threads);                     \
        check_all_##SUF("softmax_backward_" #SUF, out, e.dsoft, outer, n, inner, 10 * TOL);  \
        fsm_log_softmax_backward_##SUF##ISA(g, x, out, outer, n, inner, threads);                 \
        check_all_##SUF("log_softmax_backward_" #SUF, out, e.dlogsoft, outer, n, inner,      \
                        10 * TOL);                                                           \
        /* In place over the input: the same result as out of place. */                     \
        fsm_softmax_##SUF##ISA(x, x, outer, n, inner, threads);                                   \
        check_all_##SUF("softmax_in_place_" #SUF, x, e.soft, outer, n, inner, TOL);          \
        free(x), free(out), free(g), free(y), free(xd), free(gd);                            \
        free(e.soft), free(e.logsoft), free(e.hard), free(e.dsoft), free(e.dlogsoft);        \
    }

RUN_CHECKS(float, f32, _base, 1e-5)
RUN_CHECKS(double, f64, _base, 1e-12)
#if FSM_AVX512_BUILD
RUN_CHECKS(float, f32, _avx512, 1e-5)
RUN_CHECKS(double, f64, _avx512, 1e-12)
#endif

static void run_both(ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads, int dtypes)
{
    if (dtypes & 1) run_f32_base(outer, n, inner, threads);
    if (dtypes & 2) run_f64_base(outer, n, inner, threads);
#if FSM_AVX512_BUILD
    if (!fsm_avx512_usable()) return;
    if (dtypes & 1) run_f32_avx512(outer, n, inner, threads);
    if (dtypes & 2) run_f64_avx512(outer, n, inner, threads);
#endif
}

int main(void)
{
    /* Every short length up to 17 (the tiles of 4 doubles and 8 floats and
     * the columns left over), lengths around the short-row limit (64), the
     * slab width and the float sums' flush block (128), the scratch sizes,
     * and the longest rows of each dtype that softmax pipelines (4 KB) and
     * one more; row counts around the blocks of short rows moved into lanes
     * together (4 vectors: 16 doubles, 32 floats) and the rows per task (256). */
    const ptrdiff_t lengths[] = {1,  2,  3,  4,  5,  6,  7,   8,   9,   10,  11,  12, 13,
                                 14, 15, 16, 17, 23, 31, 33,  63,  64,  65,  127, 128, 129,
                                 136, 255, 257, 512, 513, 1024, 1025, 4097};
    const ptrdiff_t counts[] = {1, 2, 3, 8, 15, 16, 17, 31, 32, 33, 129, 257, 401};
    const int nl = sizeof lengths / sizeof *lengths, nc = sizeof counts / sizeof *counts;
    for (int a = 0; a < nl; a++)
        for (int b = 0; b < nc; b++)
            for (int threads = 1; threads <= 3; threads += 2) {
                ptrdiff_t n = lengths[a], outer = counts[b];
                if (n * outer > 300000) continue;
                run_both(outer, n, 1, threads, 3);
                run_both(2, n, outer, threads, 1); /* columns: inner > 1 */
                run_both(1, n, outer, threads, 2);
            }
    /* Results of 4 MB and more, also with a partial block of short rows and
     * with rows that start off the 16-byte alignment. */
    run_both(20000, 60, 1, 2, 1);
    run_both(20001, 57, 1, 2, 1);
    run_both(1100, 1000, 1, 2, 1);
    run_both(1100, 1001, 1, 2, 1);
    run_both(600, 1000, 1, 2, 2);
    if (failures) {
        fprintf(stderr, "softmax_check: %d mismatches\n", failures);
        return 1;
    }
    printf("softmax_check: all kernels agree with the reference\n");
    return 0;
}
