/* Runs the sigmoid and binary cross-entropy kernels over sizes around the
 * chunk length, 1 to 3 threads, against plain double-precision loops.  Built
 * with AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sigmoid.h"

static long double softplus(long double y)
{
    return y > 0 ? y + log1pl(expl(-y)) : log1pl(expl(y));
}

/* The loss by libm in long double, w and p repeating: -p t log(sigmoid(x)) -
 * (1 - t) log(1 - sigmoid(x)), two terms of one sign. */
static long double bce_want(double x, double t, const double *w, ptrdiff_t wp,
                            const double *pw, ptrdiff_t pp, ptrdiff_t i)
{
    const long double p = pw ? pw[i % pp] : 1;
    return (w ? w[i % wp] : 1) * (p * t * softplus(-x) + (1 - (long double)t) * softplus(x));
}

/* fsm_bce_loss_* with every weight / pos_weight combination and period that
 * divides n (chunk edges included): per-element losses within a few ulp, the
 * sum within rounding, and the sum bit for bit the same on 1 to 3 threads. */
static long check_bce(ptrdiff_t n)
{
    long failures = 0;
    double *x = malloc(n * sizeof *x), *t = malloc(n * sizeof *t), *w = malloc(n * sizeof *w);
    double *pw = malloc(n * sizeof *pw), *loss = malloc(n * sizeof *loss);
    float *xf = malloc(n * sizeof *xf), *tf = malloc(n * sizeof *tf), *wf = malloc(n * sizeof *wf);
    float *pwf = malloc(n * sizeof *pwf), *lossf = malloc(n * sizeof *lossf);
    for (ptrdiff_t i = 0; i < n; i++) {
        x[i] = xf[i] = (float)((i * 37 % 401) - 200) * 0.25f; /* [-50, 50] */
        t[i] = tf[i] = (float)(i % 5) / 4;
        w[i] = wf[i] = 0.5f + (float)(i % 7);
        pw[i] = pwf[i] = 0.25f + (float)(i % 3);
    }
    for (ptrdiff_t period = 1; period <= n; period++) {
        if (n % period || (period > 13 && period != n))
            continue;
        for (int mask = 0; mask < 4; mask++) {
            const double *wd = mask & 1 ? w : NULL, *pd = mask & 2 ? pw : NULL;
            const float *wfp = mask & 1 ? wf : NULL, *pfp = mask & 2 ? pwf : NULL;
            double sums[2][4];
            for (int threads = 1; threads <= 3; threads++) {
                fsm_bce_loss_f64(x, t, wd, period, pd, period, loss, n, threads);
                fsm_bce_loss_f32(xf, tf, wfp, period, pfp, period, lossf, n, threads);
                long double total = 0;
                for (ptrdiff_t i = 0; i < n; i++) {
                    const long double want = bce_want(x[i], t[i], wd, period, pd, period, i);
                    total += want;
                    failures += !(fabsl(loss[i] - want) <= 1e-15L * fabsl(want) + 1e-300L);
                    failures += !(fabsl(lossf[i] - want) <= 6e-7L * fabsl(want) + 1e-37L);
                }
                sums[0][threads] = fsm_bce_loss_f64(x, t, wd, period, pd, period, NULL, n, threads);
                sums[1][threads] = fsm_bce_loss_f32(xf, tf, wfp, period, pfp, period, NULL, n,
                                                    threads);
                failures += !(fabsl(sums[0][threads] - total) <= 1e-14L * fabsl(total));
                failures += !(fabsl(sums[1][threads] - total) <= 1e-6L * fabsl(total));
            }
            for (int d = 0; d < 2; d++)
                failures += sums[d][2] != sums[d][1] || sums[d][3] != sums[d][1];
        }
    }
    free(x), free(t), free(w), free(pw), free(loss);
    free(xf), free(tf), free(wf), free(pwf), free(lossf);
    return failures;
}

int main(void)
{
    long failures = 0;
    for (ptrdiff_t n = 1; n < 20000; n = n * 3 + 1)
        failures += check_bce(n);
    failures += check_bce(256 * 1024 + 3); /* more tasks than sum blocks */
    for (ptrdiff_t n = 1; n < 20000; n = n * 3 + 1)
        for (int threads = 1; threads <= 3; threads++) {
            float *x = malloc(n * sizeof *x), *out = malloc(n * sizeof *out);
            double *xd = malloc(n * sizeof *xd), *td = malloc(n * sizeof *td);
            double *outd = malloc(n * sizeof *outd), *pw = malloc(n * sizeof *pw);
            for (ptrdiff_t i = 0; i < n; i++) {
                x[i] = (float)((i % 200) - 100) * 0.9f;
                xd[i] = x[i];
                td[i] = (double)(i % 3) / 2;
            }
            fsm_sigmoid_f32(x, out, n, threads);
            for (ptrdiff_t i = 0; i < n; i++) {
                const double want = 1 / (1 + exp(-(double)x[i]));
                failures += !(fabs(out[i] - want) <= 1e-6 * want + 1e-38);
            }
            fsm_sigmoid_minus_f64(xd, td, NULL, 0, outd, n, threads);
            for (ptrdiff_t i = 0; i < n; i++)
                failures += !(fabs(outd[i] - (1 / (1 + exp(-xd[i])) - td[i])) <= 1e-14);
            /* pos_weight of every period that divides n, chunk edges included */
            for (ptrdiff_t period = 1; period <= n; period++) {
                if (n % period || (period > 13 && period != n))
                    continue;
                for (ptrdiff_t j = 0; j < period; j++)
                    pw[j] = 0.5 + (double)j;
                fsm_sigmoid_minus_f64(xd, td, pw, period, outd, n, threads);
                for (ptrdiff_t i = 0; i < n; i++) {
                    const double s = 1 / (1 + exp(-xd[i])), p = pw[i % period];
                    const double want = s - td[i] * (1 + (p - 1) * (1 - s));
                    failures += !(fabs(outd[i] - want) <= 1e-13 * (1 + p));
                }
            }
            fsm_sigmoid_f64(xd, xd, n, threads); /* in place */
            for (ptrdiff_t i = 0; i < n; i++)
                failures += !(fabs(xd[i] - 1 / (1 + exp(-(double)x[i]))) <= 1e-14);
            free(x), free(out), free(xd), free(td), free(outd), free(pw);
        }
    printf("sigmoid_check: %ld failures\n", failures);
    return failures != 0;
}
