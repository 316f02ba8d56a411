/* Runs the sigmoid kernels over sizes around the chunk length, 1 to 3
 * threads, against plain double-precision loops.  Built with
 * AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sigmoid.h"

int main(void)
{
    long failures = 0;
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
