/* Runs the Adam kernels over sizes around the chunk length, 1 to 3 threads,
 * three steps each, against a plain double-precision loop.  Built with
 * AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "adam.h"

static const double B1 = 0.9, B2 = 0.999, STEP = 0.01, EPS = 1e-8;

/* The update as written in adam.h, in double precision. */
static void adam_by_hand(double *p, const double *g, double *m, double *v, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        m[i] = B1 * m[i] + (1 - B1) * g[i];
        v[i] = B2 * v[i] + (1 - B2) * g[i] * g[i];
        p[i] -= STEP * m[i] / (sqrt(v[i]) + EPS);
    }
}

int main(void)
{
    long failures = 0;
    for (ptrdiff_t n = 1; n < 300000; n = n * 3 + 1)
        for (int threads = 1; threads <= 3; threads++) {
            float *p = calloc(n, sizeof *p), *g = calloc(n, sizeof *g);
            float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
            double *pd = calloc(n, sizeof *pd), *gd = calloc(n, sizeof *gd);
            double *md = calloc(n, sizeof *md), *vd = calloc(n, sizeof *vd);
            double *pw = calloc(n, sizeof *pw), *mw = calloc(n, sizeof *mw);
            double *vw = calloc(n, sizeof *vw);
            for (ptrdiff_t i = 0; i < n; i++)
                p[i] = (float)(pd[i] = pw[i] = (double)((i % 17) - 8) / 4);
            for (int step = 0; step < 3; step++) {
                for (ptrdiff_t i = 0; i < n; i++)
                    g[i] = (float)(gd[i] = (double)(((i + step) % 11) - 5) / 8);
                fsm_adam_f32(p, g, m, v, n, (float)B1, (float)B2, (float)STEP, (float)EPS,
                             threads);
                fsm_adam_f64(pd, gd, md, vd, n, B1, B2, STEP, EPS, threads);
                adam_by_hand(pw, gd, mw, vw, n);
            }
            for (ptrdiff_t i = 0; i < n; i++) {
                failures += !(fabs(pd[i] - pw[i]) <= 1e-14 && fabs(md[i] - mw[i]) <= 1e-15
                              && fabs(vd[i] - vw[i]) <= 1e-15);
                failures += !(fabs(p[i] - pw[i]) <= 1e-5 && fabs(m[i] - mw[i]) <= 1e-6
                              && fabs(v[i] - vw[i]) <= 1e-7);
            }
            free(p), free(g), free(m), free(v), free(pd), free(gd), free(md), free(vd);
            free(pw), free(mw), free(vw);
        }
    printf("adam_check: %ld failures\n", failures);
    return failures != 0;
}
