/* Runs the cross-entropy kernels over edge shapes and every option
 * combination (weights, label smoothing, index and probability targets):
 * exact-size buffers, 1 and 3 threads bit-identical, the loss compared with
 * plain double-precision loops, the in-place gradient equal to the other,
 * the AVX-512 build equal to the other.  Built with AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "xent.h"

#if FSM_AVX512_BUILD
FSM_DECLARE_XENT(float, f32_base)
FSM_DECLARE_XENT(float, f32_avx512)
#endif

/* Whether the AVX-512 build, where the CPU runs it, differs from the other
 * one: they use the same lanes, so they must give the same bits. */
static int builds_differ(const float *x, const int64_t *t, const float *p, const float *w,
                         double eps, float *g1, float *g2, ptrdiff_t outer, ptrdiff_t n,
                         ptrdiff_t inner)
{
#if FSM_AVX512_BUILD
    if (!fsm_avx512_usable()) return 0;
    const size_t bytes = (size_t)(outer * n * inner) * sizeof *g1;
    const double l1 = p ? fsm_xent_prob_f32_base(x, p, w, eps, 0.5, g1, NULL, outer, n, inner, 2)
                        : fsm_xent_index_f32_base(x, t, w, -100, eps, 0.5, g1, NULL, outer, n,
                                                  inner, 2);
    const double l2 = p ? fsm_xent_prob_f32_avx512(x, p, w, eps, 0.5, g2, NULL, outer, n, inner, 2)
                        : fsm_xent_index_f32_avx512(x, t, w, -100, eps, 0.5, g2, NULL, outer, n,
                                                    inner, 2);
    return l1 != l2 || memcmp(g1, g2, bytes) != 0;
#else
    (void)x, (void)t, (void)p, (void)w, (void)eps, (void)g1, (void)g2, (void)outer, (void)n;
    (void)inner;
    return 0;
#endif
}

static double naive_index(const float *x, const int64_t *t, const float *w, double eps,
                          ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner)
{
    double total = 0;
    for (ptrdiff_t o = 0; o < outer; o++)
        for (ptrdiff_t j = 0; j < inner; j++) {
            int64_t y = t[o * inner + j];
            if (y == -100) continue;
            double m = -INFINITY, s = 0;
            for (ptrdiff_t i = 0; i < n; i++) m = fmax(m, x[(o * n + i) * inner + j]);
            for (ptrdiff_t i = 0; i < n; i++) s += exp(x[(o * n + i) * inner + j] - m);
            double lse = m + log(s), sm = 0;
            for (ptrdiff_t i = 0; i < n; i++) sm += (w ? w[i] : 1) * (lse - x[(o * n + i) * inner + j]);
            total += (1 - eps) * (w ? w[y] : 1) * (lse - x[(o * n + y) * inner + j]) + eps / n * sm;
        }
    return total;
}

int main(void)
{
    const ptrdiff_t ns[] = {1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 129};
    const ptrdiff_t inners[] = {1, 2, 7, 127, 128, 129};
    const ptrdiff_t outers[] = {1, 3, 127, 128, 129, 300};
    long checks = 0, failures = 0;
    srand(1);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof inners / sizeof *inners; b++)
    for (size_t d = 0; d < sizeof outers / sizeof *outers; d++) {
        ptrdiff_t n = ns[a], inner = inners[b], outer = outers[d];
        if (outer * inner > 5000 && n > 16) continue;
        ptrdiff_t size = outer * n * inner, samples = outer * inner;
        float *x = malloc(size * sizeof *x), *g = malloc(size * sizeof *g);
        float *g3 = malloc(size * sizeof *g3), *p = malloc(size * sizeof *p);
        float *loss = malloc(samples * sizeof *loss), *w = malloc(n * sizeof *w);
        int64_t *t = malloc(samples * sizeof *t);
        for (ptrdiff_t k = 0; k < size; k++) { x[k] = (float)(rand() % 2000) / 100 - 10; p[k] = (float)(rand() % 100) / 100; }
        for (ptrdiff_t k = 0; k < samples; k++) t[k] = k % 5 == 4 ? -100 : rand() % n;
        for (ptrdiff_t i = 0; i < n; i++) w[i] = 0.5f + (float)(rand() % 100) / 100;
        double ws;
        if (fsm_xent_check_index_f32(t, samples, n, -100, w, &ws) != -1) { printf("check failed\n"); failures++; }
        for (int opt = 0; opt < 8; opt++) {
            const float *wp = opt & 1 ? w : NULL;
            double eps = opt & 2 ? 0.2 : 0;
            int prob = opt & 4;
            double l1, l3;
            if (prob) {
                l1 = fsm_xent_prob_f32(x, p, wp, eps, 0.5, g, loss, outer, n, inner, 1);
                l3 = fsm_xent_prob_f32(x, p, wp, eps, 0.5, g3, NULL, outer, n, inner, 3);
                double l0 = fsm_xent_prob_f32(x, p, wp, eps, 0.5, NULL, NULL, outer, n, inner, 2);
                if (l0 != l1) failures++;
            } else {
                l1 = fsm_xent_index_f32(x, t, wp, -100, eps, 0.5, g, loss, outer, n, inner, 1);
                l3 = fsm_xent_index_f32(x, t, wp, -100, eps, 0.5, g3, NULL, outer, n, inner, 3);
                double l0 = fsm_xent_index_f32(x, t, wp, -100, eps, 0.5, NULL, NULL, outer, n, inner, 2);
                double expected = naive_index(x, t, wp, eps, outer, n, inner);
                if (l0 != l1 || fabs(l1 - expected) > 1e-6 * (1 + fabs(expected))) {
                    printf("loss mismatch n=%td inner=%td outer=%td opt=%d: %.17g vs %.17g\n", n, inner, outer, opt, l1, expected);
                    failures++;
                }
            }
            if (l1 != l3 || memcmp(g, g3, size * sizeof *g)) {
                printf("thread mismatch n=%td inner=%td outer=%td opt=%d\n", n, inner, outer, opt);
                failures++;
            }
            /* in place: the gradient over a copy of the logits */
            memcpy(g3, x, size * sizeof *x);
            if (prob) fsm_xent_prob_f32(g3, p, wp, eps, 0.5, g3, NULL, outer, n, inner, 2);
            else fsm_xent_index_f32(g3, t, wp, -100, eps, 0.5, g3, NULL, outer, n, inner, 2);
            if (memcmp(g, g3, size * sizeof *g)) { printf("in-place mismatch n=%td inner=%td outer=%td opt=%d\n", n, inner, outer, opt); failures++; }
            if (builds_differ(x, t, prob ? p : NULL, wp, eps, g, g3, outer, n, inner)) {
                printf("build mismatch n=%td inner=%td outer=%td opt=%d\n", n, inner, outer, opt);
                failures++;
            }
            checks++;
        }
        free(x); free(g); free(g3); free(p); free(loss); free(w); free(t);
    }
    printf("xent_check: %ld option/shape combinations, %ld failures\n", checks, failures);
    return failures != 0;
}
